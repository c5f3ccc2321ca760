"""API tokens: made for a user and shown once, checked by their hash, revoked when unwanted."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction as db_transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..models import ApiToken, AuditEntry
from .audit import Actor, audit_record

# Marks a string as this service's token (and lets secret scanners recognise a leaked one).
TOKEN_PREFIX = "rly_"  # noqa: S105 - a marker, not a secret
# How many characters of a token are kept in the clear, to tell tokens apart (e.g. "rly_3kd9Qz0a").
SHOWN_CHARACTERS = len(TOKEN_PREFIX) + 8
# Recording when a token was last used costs a write; once a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is the secret, shown this once; ``record`` is what is kept of it."""

    token: str
    record: ApiToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def api_token_create(
    *,
    user: User,
    name: str = "",
    actor: Actor = None,
    source: str = AuditEntry.Source.CLI,
    reason: str = "",
) -> IssuedToken:
    """Make a new token for ``user``; only its hash and first characters are stored.

    Recorded in the audit trail as made by ``actor`` (a user, or a command-line operator's
    login) from ``source``.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db_transaction.atomic():
        record = ApiToken.objects.create(
            user=user, name=name, prefix=token[:SHOWN_CHARACTERS], digest=_digest(token)
        )
        audit_record(
            actor=actor,
            action=AuditEntry.Action.TOKEN_CREATED,
            reason=reason,
            details=_described(record, user),
            source=source,
        )
    return IssuedToken(token=token, record=record)


def _described(record: ApiToken, user: User) -> dict[str, Any]:
    """A token as the audit trail names it: never the token, only what the admin shows."""
    return {"token": record.prefix, "user": user.get_username(), "name": record.name}


def api_token_authenticate(*, token: str) -> tuple[User, ApiToken] | None:
    """The active user a token belongs to, and the token's record; ``None`` if it opens nothing.

    A revoked token, or one of an inactive user, opens nothing.
    """
    record = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(token), revoked_at__isnull=True)
        .first()
    )
    if record is None or not record.user.is_active:
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        record.last_used_at = now
    return record.user, record


def api_tokens_revoke(
    *, tokens: "QuerySet[ApiToken]", actor: Actor, source: str, reason: str = ""
) -> int:
    """Revoke ``tokens`` (those not revoked yet); how many were. Recorded in the audit trail
    as done by ``actor`` from ``source``, if any was."""
    with db_transaction.atomic():
        active = list(tokens.filter(revoked_at__isnull=True).select_related("user"))
        revoked = ApiToken.objects.filter(
            pk__in=[token.pk for token in active], revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if revoked:
            audit_record(
                actor=actor,
                action=AuditEntry.Action.TOKEN_REVOKED,
                reason=reason,
                details={"tokens": [_described(token, token.user) for token in active]},
                source=source,
            )
    return revoked
