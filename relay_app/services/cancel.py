"""Cancel a transaction in flight: it ends ``cancelled`` and everyone concerned learns it now.

The record changes first (one conditional update: ``transaction_cancel``), so a race with
the transaction's last hop ends in exactly one final state. Then whoever waits for it is
woken: a blocked relay request through its chain's result, event streams through the
transaction's notice. Its worker stops by itself: each task reads the record before any
work, and a gRPC call in progress is cancelled once the worker sees the record change.
"""

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from ..metrics import CANCELLATIONS
from ..models import AuditEntry, Transaction
from ..selectors import transaction_get
from ..tasks import chain_wake
from .audit import audit_record
from .transactions import transaction_cancel

logger = logging.getLogger(__name__)


def transaction_cancel_for(
    *,
    transaction_id: str,
    viewer: AbstractBaseUser | AnonymousUser,
    source: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> tuple[Transaction, bool]:
    """Cancel the transaction for ``viewer``; return it as it is now, and whether this
    request cancelled it (``False``: it had already ended, and nothing changed).

    A cancellation is recorded in the audit trail, with ``source`` (api, admin, job),
    ``reason`` and ``details``; a request that changed nothing is not.

    Raises ``Transaction.DoesNotExist`` if ``viewer`` may not see it (its owner and staff
    may), as for reading it.
    """
    transaction_get(transaction_id=transaction_id, viewer=viewer)  # type: ignore[arg-type]
    by = viewer if isinstance(viewer, User) else None
    cancelled = transaction_cancel(transaction_id=transaction_id, by=by)
    CANCELLATIONS.labels("cancelled" if cancelled else "already_finished").inc()
    if cancelled:
        logger.info(
            "transaction %s cancelled by %s",
            transaction_id,
            by.get_username() if by else "nobody",
            extra={"transaction_id": transaction_id},
        )
        audit_record(
            actor=by,
            action=AuditEntry.Action.CANCEL,
            reason=reason,
            transactions=[transaction_id],
            details=details,
            source=source,
        )
        _wake(transaction_id)
    return transaction_get(transaction_id=transaction_id, viewer=None), cancelled


def _wake(transaction_id: str) -> None:
    """Wake a relay request blocked on the transaction. Without Redis it answers at its
    deadline instead (it then reads the cancellation from the record)."""
    try:
        chain_wake(transaction_id)
    except (BrokerError, RedisError) as exc:
        logger.warning(
            "transaction %s: its waiter not woken (Redis: %r); it answers at its deadline",
            transaction_id,
            exc,
            extra={"transaction_id": transaction_id},
        )
