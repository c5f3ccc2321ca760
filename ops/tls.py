"""The secure profile's transport security, made by the project: a local certificate
authority, the certificates it signs, and each hop's credentials, in one folder.

``python -m ops.tls DIR`` makes whatever is missing in DIR (``make up-secure`` does):

    ca.pem, ca-key.pem          the local CA, which every client and server of the stack trusts
    server.pem, server-key.pem  the services' certificate, for 127.0.0.1, ::1 and localhost
    client.pem, client-key.pem  the relay's client certificate (gRPC's mutual TLS)
    kafka-keystore.p12          the broker's key and certificate for Java, under a password
    transport.env               every setting that carries them, and the generated passwords

``--renew`` issues new keys and certificates from the same CA and keeps the passwords: a
certificate rotation (restart the stack to use them). Every file is its owner's alone.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from project.settings.environment import read_env_file

# Local certificates live long enough for a machine, not for ever.
CA_DAYS = 3650
LEAF_DAYS = 825
# Where the services listen in the local stack.
SERVER_NAMES = ["localhost"]
SERVER_ADDRESSES = ["127.0.0.1", "::1"]
# The SCRAM users of the Kafka broker: the relay's clients, and the broker's own (inter-broker).
KAFKA_USER = "relay"
KAFKA_BROKER_USER = "broker"


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "relay (local)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def certificate_authority(common_name: str = "relay local CA") -> Identity:
    """A new self-signed CA (tests make a second one, to be refused)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(certificate, key)


def issue(ca: Identity, common_name: str, *, server: bool) -> Identity:
    """A certificate signed by ``ca``: for the services (``server``: their names and
    addresses, good for both ends of a connection, as Kafka's broker is a client of its own
    controller) or for a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return Identity(builder.sign(ca.key, hashes.SHA256()), key)


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` readable and writable by its owner only, from the first byte on."""
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)


def _load(path: Path, key_path: Path) -> Identity:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an elliptic-curve key made by ops.tls")
    return Identity(x509.load_pem_x509_certificate(path.read_bytes()), key)


def ensure(folder: Path, *, renew: bool = False) -> Path:
    """Make the CA, certificates, keystore and credentials that are missing in ``folder``
    (with ``renew``, new leaf certificates from the same CA); return ``transport.env``."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if (folder / "ca.pem").exists():
        ca = _load(folder / "ca.pem", folder / "ca-key.pem")
    else:
        ca = certificate_authority()
        _write(folder / "ca.pem", ca.certificate_pem())
        _write(folder / "ca-key.pem", ca.key_pem())
        renew = True
    env_file = folder / "transport.env"
    previous = read_env_file(env_file)

    def secret(name: str) -> str:
        return previous.get(name) or secrets.token_urlsafe(24)

    passwords = {
        "KAFKA_SASL_PASSWORD": secret("KAFKA_SASL_PASSWORD"),
        "RELAY_KAFKA_BROKER_PASSWORD": secret("RELAY_KAFKA_BROKER_PASSWORD"),
        "RELAY_KAFKA_KEYSTORE_PASSWORD": secret("RELAY_KAFKA_KEYSTORE_PASSWORD"),
        "REDIS_PASSWORD": secret("REDIS_PASSWORD"),
        # Message authentication's keys (docs/security.md): the profile's own, not the
        # repository's.
        "RELAY_CHAIN_SIGNING_KEY": secret("RELAY_CHAIN_SIGNING_KEY"),
        "RELAY_GRPC_CAPABILITY_KEY": secret("RELAY_GRPC_CAPABILITY_KEY"),
    }
    for name, for_server in (("server", True), ("client", False)):
        if renew or not (folder / f"{name}.pem").exists():
            identity = issue(ca, f"relay {name}", server=for_server)
            _write(folder / f"{name}.pem", identity.certificate_pem())
            _write(folder / f"{name}-key.pem", identity.key_pem())
    server = _load(folder / "server.pem", folder / "server-key.pem")
    if renew or not (folder / "kafka-keystore.p12").exists():
        keystore_password = passwords["RELAY_KAFKA_KEYSTORE_PASSWORD"].encode()
        _write(
            folder / "kafka-keystore.p12",
            pkcs12.serialize_key_and_certificates(
                b"kafka",
                server.key,
                server.certificate,
                [ca.certificate],
                serialization.BestAvailableEncryption(keystore_password),
            ),
        )
    files = {
        "KAFKA_TLS_CA_FILE": "ca.pem",
        "REDIS_TLS_CA_FILE": "ca.pem",
        "GRPC_TLS_CA_FILE": "ca.pem",
        "GRPC_TLS_CERT_FILE": "client.pem",
        "GRPC_TLS_KEY_FILE": "client-key.pem",
        "GRPC_SERVER_TLS_CERT_FILE": "server.pem",
        "GRPC_SERVER_TLS_KEY_FILE": "server-key.pem",
        "GRPC_SERVER_TLS_CA_FILE": "ca.pem",
        "HTTP_TLS_CERT_FILE": "server.pem",
        "HTTP_TLS_KEY_FILE": "server-key.pem",
        "HTTP_TLS_CA_FILE": "ca.pem",
        "RELAY_KAFKA_KEYSTORE": "kafka-keystore.p12",
        # What the stack gives the servers it starts (Redis; Kafka has its keystore).
        "RELAY_STACK_CERT_FILE": "server.pem",
        "RELAY_STACK_KEY_FILE": "server-key.pem",
    }
    settings = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": KAFKA_USER,
        "RELAY_KAFKA_BROKER_USER": KAFKA_BROKER_USER,
        **{name: str((folder / file).resolve()) for name, file in files.items()},
        **passwords,
    }
    lines = [
        "# The secure profile's transport settings and credentials, made by `python -m ops.tls`.",
        "# Secrets: readable by their owner only, never committed.",
        *(f"{name}={value}" for name, value in settings.items()),
    ]
    _write(env_file, ("\n".join(lines) + "\n").encode())
    return env_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.tls", description=__doc__)
    parser.add_argument("folder", type=Path, help="where the CA, certificates and credentials go")
    parser.add_argument(
        "--renew", action="store_true", help="new keys and certificates from the same CA"
    )
    args = parser.parse_args(argv)
    env_file = ensure(args.folder, renew=args.renew)
    print(f"[tls] local CA, certificates and credentials in {args.folder} ({env_file.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
