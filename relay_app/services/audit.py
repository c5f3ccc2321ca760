"""The audit trail: each operator action recorded once, as an ``AuditEntry`` and as one
structured line of the ``relay.audit`` log (fields only: no message, no client's text)."""

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from ..models import AuditEntry, Transaction

audit_log = logging.getLogger("relay.audit")

#: Who acted: a user, or the name of a command-line operator without an account.
Actor = AbstractBaseUser | AnonymousUser | str | None

_ADMIN_ACTIONS = {
    ADDITION: AuditEntry.Action.ADMIN_ADD,
    CHANGE: AuditEntry.Action.ADMIN_CHANGE,
    DELETION: AuditEntry.Action.ADMIN_DELETE,
}
# Set while the admin's bulk deletion runs: it records its own single entry.
_admin_bulk_deletion: ContextVar[bool] = ContextVar("admin_bulk_deletion", default=False)


def _transaction_id(transaction: Transaction | UUID | str) -> str:
    return str(transaction.pk if isinstance(transaction, Transaction) else transaction)


def audit_record(
    *,
    actor: Actor,
    action: str,
    reason: str = "",
    transactions: Iterable[Transaction | UUID | str] = (),
    details: dict[str, Any] | None = None,
    source: str,
) -> AuditEntry:
    """Record that ``actor`` did ``action`` (from ``source``: api, admin, cli or job) to
    ``transactions``, and why; return the entry. It is logged as one line too.

    The entry keeps every id up to ``AuditEntry.TRANSACTION_IDS_KEPT`` and the count of all.
    """
    user = actor if isinstance(actor, User) else None
    if isinstance(actor, str):
        name = actor
    elif isinstance(actor, AbstractBaseUser):
        name = actor.get_username()
    else:
        name = ""
    ids = [_transaction_id(transaction) for transaction in transactions]
    entry = AuditEntry.objects.create(
        actor=user,
        actor_name=name[:150],
        action=action,
        source=source,
        reason=reason,
        transaction_ids=ids[: AuditEntry.TRANSACTION_IDS_KEPT],
        transaction_count=len(ids),
        details=details or {},
    )
    _log(entry)
    return entry


def _log(entry: AuditEntry) -> None:
    """One line of ``key=value`` fields (strings JSON-quoted where they need it); under
    ``RELAY_LOG_FORMAT=json`` the same fields also come as the line's ``audit`` object."""
    fields: dict[str, Any] = {
        "audit_id": entry.pk,
        "action": entry.action,
        "source": entry.source,
        "actor": entry.actor_name,
        "actor_id": entry.actor_id,
        "transactions": entry.transaction_count,
        "transaction_ids": ",".join(entry.transaction_ids),
        "reason": entry.reason,
        "details": json.dumps(entry.details, sort_keys=True, default=str),
    }
    extra: dict[str, Any] = {"audit": fields}
    if entry.transaction_count == 1:
        extra["transaction_id"] = entry.transaction_ids[0]
    audit_log.info(" ".join(f"{key}={_value(value)}" for key, value in fields.items()), extra=extra)


def _value(value: Any) -> str:
    """A value as ``key=value`` logs write it: bare if it is one plain word, else JSON-quoted
    (so a reason with spaces, quotes or line breaks stays one field on one line)."""
    text = "" if value is None else str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return json.dumps(text, ensure_ascii=False)


def audit_admin_log_entry(sender: type[LogEntry], instance: LogEntry, **kwargs: Any) -> None:
    """Record a change made in the admin, as Django's admin logs it (``LogEntry``, connected
    to its ``post_save`` in ``RelayAppConfig.ready``)."""
    if not kwargs.get("created") or _admin_bulk_deletion.get():
        return
    kind = instance.content_type
    model = kind.model_class() if kind is not None else None
    audit_record(
        actor=instance.user,
        action=_ADMIN_ACTIONS.get(instance.action_flag, f"admin_{instance.action_flag}"),
        transactions=[instance.object_id] if model is Transaction and instance.object_id else (),
        details={
            "model": kind.natural_key() if kind is not None else None,
            "object_id": instance.object_id,
            "object": instance.object_repr,
            "change": instance.get_change_message(),
        },
        source=AuditEntry.Source.ADMIN,
    )


@contextmanager
def admin_bulk_deletion() -> Iterator[None]:
    """Around the admin's deletion of selected objects, which Django logs with one
    ``bulk_create`` (no signal) when there are several: ``audit_admin_deletion`` records them
    all in one entry instead."""
    token = _admin_bulk_deletion.set(True)
    try:
        yield
    finally:
        _admin_bulk_deletion.reset(token)


def audit_admin_deletion(
    *, actor: Actor, model: type[Any], objects: list[tuple[str, str]]
) -> AuditEntry:
    """Record the admin's deletion of ``objects`` of ``model``, given as (id, name)."""
    return audit_record(
        actor=actor,
        action=AuditEntry.Action.ADMIN_DELETE,
        transactions=[pk for pk, _ in objects] if model is Transaction else (),
        details={
            "model": [model._meta.app_label, model._meta.model_name],
            "objects": [{"object_id": pk, "object": name} for pk, name in objects[:100]],
            "count": len(objects),
        },
        source=AuditEntry.Source.ADMIN,
    )
