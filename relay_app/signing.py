"""HMAC-SHA256 seals: how a process of the relay proves that a message it left where others
can write (a task on Redis, a call to the gRPC port) is its own.

One mechanism for both places, each with its own key: ``RELAY_CHAIN_SIGNING_KEY`` (web
servers and workers) seals the chain's task messages (``relay_app/services/chain.py``),
``RELAY_GRPC_CAPABILITY_KEY`` (workers and gRPC servers) the gRPC hop's capability
(``relay_app/integrations/relay_rpc.py``). Whoever lacks the key can copy a seal but not make
one: a message can be replayed, never changed or readdressed, so every sealed field names
what it is for (the task or stage it is addressed to first).
"""

import hashlib
import hmac
import json
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Refused(Exception):
    """A message that is not the relay's own: no seal, or one that does not match."""


def seal(key_setting: str, fields: Sequence[object]) -> str:
    """The seal of ``fields`` (JSON values) under the key that ``key_setting`` names, in hex.

    The fields are encoded as canonical JSON (no spaces, keys sorted), so every process that
    holds the same values computes the same seal, whatever order a dict arrived in.
    """
    key: str = getattr(settings, key_setting)
    if not key:
        raise ImproperlyConfigured(f"{key_setting} is empty: set a key of at least 32 characters")
    encoded = json.dumps(list(fields), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hmac.new(key.encode(), encoded.encode(), hashlib.sha256).hexdigest()


def check(key_setting: str, fields: Sequence[object], given: object) -> None:
    """Raise ``Refused`` unless ``given`` is the seal of ``fields`` (compared in constant time)."""
    if not isinstance(given, str) or not given:
        raise Refused("it carries no seal")
    if not hmac.compare_digest(seal(key_setting, fields).encode(), given.encode()):
        raise Refused(
            "its seal does not match (made with another key, altered, or addressed elsewhere)"
        )
