"""Settings from the environment: typed values whose errors name their variable.

Every settings module reads the environment through these, so a wrong value stops the
process at start with the variable's name and what it should be. What the process's
environment does not set comes from the profile in force (``profiles.py``), then from the
setting's own default; nothing is written into the environment.
"""

import os
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

# Variables renamed to the one pattern (<SYSTEM>_ADDRESS, <SYSTEM>_TLS_{CA,CERT,KEY}_FILE), by
# their old name: still read, for one release, where the new one is not set; a system check
# warns of each (relay.W004).
RENAMED = {
    "KAFKA_BOOTSTRAP_SERVERS": "KAFKA_ADDRESS",
    "KAFKA_SSL_CAFILE": "KAFKA_TLS_CA_FILE",
    "KAFKA_SSL_CERTFILE": "KAFKA_TLS_CERT_FILE",
    "KAFKA_SSL_KEYFILE": "KAFKA_TLS_KEY_FILE",
    "GRPC_TLS_CLIENT_CERT_FILE": "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_CLIENT_KEY_FILE": "GRPC_TLS_KEY_FILE",
    "GRPC_TLS_SERVER_CERT_FILE": "GRPC_SERVER_TLS_CERT_FILE",
    "GRPC_TLS_SERVER_KEY_FILE": "GRPC_SERVER_TLS_KEY_FILE",
    "GRPC_TLS_CLIENT_CA_FILE": "GRPC_SERVER_TLS_CA_FILE",
    "RELAY_HTTP_ADDRESS": "HTTP_ADDRESS",
    "RELAY_HTTPS_CERT_FILE": "HTTP_TLS_CERT_FILE",
    "RELAY_HTTPS_KEY_FILE": "HTTP_TLS_KEY_FILE",
    "RELAY_HTTPS_CA_FILE": "HTTP_TLS_CA_FILE",
}
#: The old names this process's environment sets, with their new ones.
RENAMED_IN_USE = {
    old: new for old, new in RENAMED.items() if old in os.environ and new not in os.environ
}
_profile: dict[str, str] = {}

env = environ.Env()
env.ENVIRON = ChainMap(
    os.environ, {new: os.environ[old] for old, new in RENAMED_IN_USE.items()}, _profile
)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a file such as ``.env`` (none if it is missing)."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if not name.startswith("#")}


def use_profile(values: Mapping[str, str]) -> bool:
    """Take ``values`` as the defaults of the environment's variables, unless a profile is in
    force already: the first one wins, so that a profile's module may import the settings of
    another (secure's, development's) without that one's values taking over."""
    if _profile:
        return False
    _profile.update(values)
    return True


_PERIOD_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def rate(name: str, default: str) -> tuple[int, float]:
    """A rate such as ``120/minute``, as (requests, per seconds)."""
    raw = env.str(name, default=default)
    count, _, period = raw.partition("/")
    try:
        parsed = (int(count), _PERIOD_SECONDS[period.strip().lower()])
    except (ValueError, KeyError):
        parsed = (0, 0.0)
    if parsed[0] < 1:
        raise ImproperlyConfigured(
            f"{name} must be N/second, N/minute, N/hour or N/day with N at least 1"
            f" (e.g. 120/minute), not {raw!r}"
        )
    return parsed


def days_or_off(name: str, default: str) -> float | None:
    """A number of days above 0, or ``None`` for ``off``."""
    raw = env.str(name, default=default).strip().lower()
    if raw in ("", "off"):
        return None
    try:
        days = float(raw)
    except ValueError:
        days = 0.0
    if not 0 < days < float("inf"):
        raise ImproperlyConfigured(f"{name} must be a number of days above 0, or off; not {raw!r}")
    return days


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (given in any case)."""
    value = str(env.str(name, default=default)).upper()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def secret_key(name: str) -> str:
    """A secret of the deployment's own: refused if missing, empty, or one of the repository's
    keys (development's and test's, marked ``django-insecure-`` as Django marks its own)."""
    value = str(env.str(name, default=""))
    if not value.strip() or value.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            f"{name} must be a secret of your own (e.g. the output of"
            " `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), not empty and not"
            " one of the repository's django-insecure- keys"
        )
    return value


# The shortest HMAC key production takes: 32 characters, as many bytes as SHA-256's output.
SIGNING_KEY_MIN_LENGTH = 32


def signing_key(name: str) -> str:
    """An HMAC key of the deployment's own: refused if shorter than 32 characters, or one of
    the repository's keys (development's and test's, which start with ``insecure-``)."""
    value = str(env.str(name, default=""))
    if len(value.strip()) < SIGNING_KEY_MIN_LENGTH or value.startswith("insecure-"):
        raise ImproperlyConfigured(
            f"{name} must be a key of your own of at least {SIGNING_KEY_MIN_LENGTH} characters"
            " (e.g. the output of"
            " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), not empty and not"
            " one of the repository's insecure- keys"
        )
    return value


def host_names(name: str) -> list[str]:
    """At least one host name, comma-separated."""
    hosts = [host.strip() for host in env.list(name, default=[]) if host.strip()]
    if not hosts:
        raise ImproperlyConfigured(
            f"{name} must name the host names this server answers for, comma-separated"
            " (e.g. relay.example.com)"
        )
    return hosts


def header_and_value(name: str) -> tuple[str, str] | None:
    """``HTTP_X_FORWARDED_PROTO,https``: a header's WSGI name and a value; ``None`` if unset."""
    raw = env.str(name, default="")
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not header.startswith("HTTP_") or not value:
        raise ImproperlyConfigured(
            f"{name} must be the header's WSGI name and its value,"
            f" e.g. HTTP_X_FORWARDED_PROTO,https; not {raw!r}"
        )
    return header, value


def url_with_password(url: str, password: str, username: str = "") -> str:
    """``url`` with ``password`` (and ``username``) in it, unless it has credentials already
    (the URL's win)."""
    if not password or "@" in url.partition("://")[2].partition("/")[0]:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}"


def addresses(name: str, default: str, *, count: int, step: int) -> str:
    """A comma-separated list of ``count`` host:port addresses: as given, or, from one
    address, that one and the next ``count - 1`` every ``step`` ports (the local stack's
    several brokers or servers). A list of another length than ``count`` is refused, unless
    ``count`` is 1 (a list of its own: a deployment's, not the local stack's)."""
    given = [address.strip() for address in env.str(name, default=default).split(",")]
    if len(given) == 1 and count > 1:
        host, _, port = given[0].rpartition(":")
        given = [f"{host}:{int(port) + step * i}" for i in range(count)]
    if count > 1 and len(given) != count:
        raise ImproperlyConfigured(
            f"{name} names {len(given)} addresses for {count}: give one (the rest follow it)"
            f" or all {count}"
        )
    return ",".join(given)
