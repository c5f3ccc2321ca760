"""The local stack's identities for the profiles with TLS (secure, cluster): a certificate
authority, one certificate per service naming it, and each identity's passwords and keys.

``python -m ops.tls DIR`` makes them in DIR if any is missing (``make up-secure`` does):

    ca.pem                       the CA's certificate, which every client and server trusts
    <service>.pem, -key.pem      each service's certificate and key (SERVICES)
    kafka-keystore.p12           Kafka's key and certificate for Java, under a password
    secrets.env                  passwords and keys; the stack hands each process its own

The CA's key never reaches DIR, nor any disk: it signs every certificate, then is dropped, so
no process of the stack can issue one. A missing certificate means a new CA and all of them
again, as ``--renew`` does (a rotation: restart the stack); passwords and keys are kept.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ops.processes import ROOT, private_file
from project.settings.environment import read_env_file

CA_DAYS = 3650
LEAF_DAYS = 825
# Where the local stack's servers listen.
SERVER_NAMES: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    *(x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")),
]
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
# Each service's certificate (its common name) and what it may prove: a server's identity,
# a client's, or both for a process that is both.
SERVICES = {
    "proxy": [SERVER],  # nginx: HTTPS, Flower and Zipkin behind it
    "web": [CLIENT],  # the web servers: gRPC health checks for readiness; their spans
    "worker": [SERVER, CLIENT],  # gRPC's client (mutual TLS); its metrics server; its spans
    "grpc": [SERVER, CLIENT],  # the gRPC servers, and their metrics; their spans
    "kafka": [SERVER, CLIENT],  # brokers and controllers, servers and each other's clients
    "redis": [SERVER],
    "probe": [CLIENT],  # the stack's readiness checks (gRPC health)
    "scraper": [CLIENT],  # a Prometheus scraper of the workers' and gRPC servers' metrics
}
# Passwords and keys made once and kept (secrets.env).
# Kafka's SCRAM users: the relay's (the workers), the stack's admin (topics and ACLs), the
# brokers' own; Redis's: a user per role (monitor: Flower and the readiness checks).
SECRETS = [
    *("DJANGO_SECRET_KEY", "RELAY_CHAIN_SIGNING_KEY", "RELAY_GRPC_CAPABILITY_KEY"),
    *("KAFKA_RELAY_PASSWORD", "KAFKA_ADMIN_PASSWORD", "KAFKA_BROKER_PASSWORD"),
    *("KAFKA_KEYSTORE_PASSWORD", "REDIS_WEB_PASSWORD", "REDIS_WORKER_PASSWORD"),
    "REDIS_MONITOR_PASSWORD",
]
# What each role's processes are given of them, and their certificates.
ROLES: dict[str, dict[str, Any]] = tomllib.loads((ROOT / "ops" / "roles.toml").read_text())


def certificate_authority(
    common_name: str = "relay local CA",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA and its key (tests make a second one, to be refused)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    builder = _builder(name, name, key.public_key(), CA_DAYS)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    signs = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    builder = builder.add_extension(signs, critical=True)  # certificates and CRLs, nothing else
    return builder.sign(key, hashes.SHA256()), key


def issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    usages: list[x509.ObjectIdentifier],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``common_name`` signed by ``ca``, good for ``usages`` alone (a server's
    also names the loopback addresses), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name), ca[0].subject, key.public_key(), LEAF_DAYS)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if SERVER in usages:
        builder = builder.add_extension(x509.SubjectAlternativeName(SERVER_NAMES), False)
    return builder.sign(ca[1], hashes.SHA256()), key


def ensure(folder: Path, *, renew: bool = False) -> Path:
    """Make what is missing in ``folder`` (with ``renew``, a new CA and every certificate);
    return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    kept = read_env_file(folder / "secrets.env")
    values = {name: kept.get(name) or secrets.token_urlsafe(32) for name in SECRETS}
    values["DJANGO_SECRET_KEY"] = kept.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
    private_file(folder / "secrets.env", "".join(f"{k}={v}\n" for k, v in values.items()).encode())
    files = [
        "ca.pem",
        "kafka-keystore.p12",
        *(f"{s}{e}" for s in SERVICES for e in (".pem", "-key.pem")),
    ]
    if not renew and all((folder / name).exists() for name in files):
        return folder
    ca = certificate_authority()
    private_file(folder / "ca.pem", pem(ca[0]))
    issued = {service: issue(ca, service, usages) for service, usages in SERVICES.items()}
    for service, (certificate, key) in issued.items():
        private_file(folder / f"{service}.pem", pem(certificate))
        private_file(folder / f"{service}-key.pem", key_pem(key))
    keystore_password = values["KAFKA_KEYSTORE_PASSWORD"].encode()
    private_file(
        folder / "kafka-keystore.p12",
        pkcs12.serialize_key_and_certificates(
            b"kafka",
            issued["kafka"][1],
            issued["kafka"][0],
            [ca[0]],
            serialization.BestAvailableEncryption(keystore_password),
        ),
    )
    return folder


def role_env(folder: Path, role: str) -> dict[str, str]:
    """What a process of ``role`` is given on top of its profile's settings: its own
    certificate and key, passwords and keys, and no other's (``ops/roles.toml``)."""
    s = read_env_file(folder / "secrets.env")
    given = ROLES[role]
    env = {"RELAY_PROCESS_ROLE": role, **given.get("values", {})}
    env |= {name: s[name] for name in given.get("secrets", [])}
    env |= {name: s[secret] for name, secret in given.get("renamed", {}).items()}
    if user := given.get("redis_user"):
        env |= {"REDIS_USERNAME": user, "REDIS_PASSWORD": s[f"REDIS_{user.upper()}_PASSWORD"]}
    for setting, service in given.get("certificates", {}).items():
        env[f"{setting}_CERT_FILE"] = str(folder / f"{service}.pem")
        env[f"{setting}_KEY_FILE"] = str(folder / f"{service}-key.pem")
    if service := given.get("spans"):
        env["OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"] = str(folder / f"{service}.pem")
        env["OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"] = str(folder / f"{service}-key.pem")
    return env


def deployment_env(folder: Path) -> dict[str, str]:
    """A deployment's process whose role is not said, as ``make check-deploy`` checks one:
    TLS and credentials on every hop, every secret (with ``folder``'s identities)."""
    from project.settings.profiles import with_local_tls

    public = with_local_tls({"RELAY_VAR_DIR": str(folder.parent), "REDIS_URL": "redis://"}, {})
    handed = [role_env(folder, role) for role in ("web", "grpc", "worker")]
    return {**public, **{k: v for env in handed for k, v in env.items()}, "RELAY_PROCESS_ROLE": ""}


def _name(common_name: str) -> x509.Name:
    organization = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "relay (local)")
    return x509.Name([organization, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
    )


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.tls", description=__doc__)
    parser.add_argument("folder", type=Path, help="where the certificates and secrets go")
    parser.add_argument("--renew", action="store_true", help="a new CA and every certificate")
    parser.add_argument("--env", choices=["deployment"], help="print a deployment's env")
    args = parser.parse_args(argv)
    ensure(args.folder, renew=args.renew)
    if args.env:
        print("".join(f"{k}={v}\n" for k, v in deployment_env(args.folder).items()), end="")
    else:
        print(f"[tls] a certificate per service and the secrets in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
