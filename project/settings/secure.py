"""The secure profile of the local stack (``make up-secure``, profiles.SECURE): development's
conveniences, with TLS and credentials on every hop and no plaintext port at all.

Kafka listens on SASL_SSL only (SCRAM-SHA-512), Redis on TLS only with a password, the gRPC
server takes mutual TLS only, and nginx in front of the web server serves HTTPS. The
certificates (a local CA) and passwords are made by ``.venv/bin/python -m ops.tls var/secure/tls``,
which writes every setting that carries them to ``transport.env``: its values come with the
profile's. Its data, logs and pids live in ``var/secure/``, apart from the plaintext stack's.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .environment import read_env_file, use_profile
from .profiles import SECURE

_TRANSPORT = (
    Path(os.environ.get("RELAY_VAR_DIR", SECURE["RELAY_VAR_DIR"])) / "tls" / "transport.env"
)
if not _TRANSPORT.exists():
    raise ImproperlyConfigured(
        f"{_TRANSPORT} is missing: `make up-secure` makes it"
        f" (.venv/bin/python -m ops.tls {_TRANSPORT.parent})"
    )
use_profile({**SECURE, **read_env_file(_TRANSPORT)})

from .development import *  # noqa: E402,F403

RELAY_PROFILE = "secure"
