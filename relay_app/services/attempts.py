"""The attempts of one hop under its retry policy (``relay_app/retries.py``): each one traced
as a span under the hop's, counted by outcome, and, unless it succeeded, recorded as it ends.

The loop runs inside the hop's task: the chain and its sealed payloads stay as they are, and
every attempt is seen. Another attempt follows a failed one only when its kind of error is
worth it, attempts are left, and the time left after the delay covers what the hop typically
takes; otherwise the error goes on with a note saying why no further attempt was made, and
the hop fails the transaction with it.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.utils import timezone

from .. import tracing
from ..errors import DeadlineExceeded, RelayError, TransactionEnded
from ..hops import Stage
from ..metrics import ATTEMPTS
from ..models import Attempt, Transaction
from ..retries import TYPICAL, Retried, RetryPolicy, policy_for
from ..selectors import attempt_next_number, transaction_status
from .transactions import AttemptRecord, attempt_record

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Succeeded(Generic[T]):
    """What the successful attempt returned, its number and when it started."""

    value: T
    number: int
    started_at: datetime


def attempts_run(
    *, transaction_id: str, deadline: float, stage: Stage, perform: Callable[[], T]
) -> Succeeded[T]:
    """Call ``perform`` until it returns, as hop ``stage``'s policy allows.

    ``perform`` raises a ``RelayError`` whose ``kind`` the policy judges, or
    ``TransactionEnded`` (recorded as a cancelled or timed-out attempt, then raised on). The
    last error is raised with its ``note``: after how many attempts, or why no further one.
    """
    hop = Retried.of(stage)
    policy = policy_for(hop)
    number = attempt_next_number(transaction_id=transaction_id, stage=stage)
    reason = ""  # the last failed attempt's error, said again if the deadline cuts the next
    while True:
        started_at, began = timezone.now(), time.monotonic()
        with tracing.attempt_span(stage, number) as span:
            try:
                value = perform()
            except TransactionEnded as ended:
                outcome = (
                    Attempt.Outcome.TIMED_OUT
                    if ended.status == Transaction.Status.TIMED_OUT
                    else Attempt.Outcome.CANCELLED
                )
                _record(transaction_id, stage, number, started_at, outcome, "", str(ended), False)
                tracing.attempt_outcome(span, outcome)
                raise
            except RelayError as exc:
                if isinstance(exc, DeadlineExceeded) and reason and not exc.note:
                    exc.note = f"attempt {number - 1} failed: {reason}"  # what it still tried
                timed_out = isinstance(exc, DeadlineExceeded) or time.time() >= deadline
                delay = None if timed_out else _another(policy, hop, exc, number, deadline)
                outcome = Attempt.Outcome.TIMED_OUT if timed_out else Attempt.Outcome.FAILED
                retried = delay is not None
                _record(
                    transaction_id, stage, number, started_at, outcome, exc.kind, str(exc), retried
                )
                tracing.attempt_outcome(span, outcome, str(exc))
                if delay is None:
                    raise
                reason = str(exc)
            else:
                TYPICAL.observe(hop, time.monotonic() - began)
                ATTEMPTS.labels(stage.slug, "succeeded").inc()
                tracing.attempt_outcome(span, "succeeded")
                return Succeeded(value, number, started_at)
        logger.info(
            "transaction %s: %s attempt %d failed (%s); attempt %d in %.3f s",
            transaction_id,
            stage.slug,
            number,
            reason,
            number + 1,
            delay,
            extra={"transaction_id": transaction_id, "stage": stage.slug},
        )
        time.sleep(delay)
        status = transaction_status(transaction_id=transaction_id)
        if status != Transaction.Status.PENDING:
            raise TransactionEnded(transaction_id, status)
        number += 1


def _another(
    policy: RetryPolicy, hop: Retried, exc: RelayError, number: int, deadline: float
) -> float | None:
    """The delay before another attempt, or ``None`` (then ``exc.note`` says why not)."""
    if not policy.worth_retrying(exc.kind):
        what = exc.kind or "this error"
        exc.note = f"attempt {number}; {what} is not worth another attempt"
        return None
    if number >= policy.attempts:
        exc.note = f"after {number} attempt{'' if number == 1 else 's'}"
        return None
    delay = policy.delay(number)
    left = deadline - time.time() - delay
    typical = TYPICAL.typical(hop)
    if left < typical:
        exc.note = (
            f"no attempt after attempt {number}: {max(left, 0):.3f} s would be left, less than"
            f" the {typical:.3f} s this hop typically takes"
        )
        return None
    return delay


def _record(
    transaction_id: str,
    stage: Stage,
    number: int,
    started_at: datetime,
    outcome: Attempt.Outcome,
    kind: str,
    error: str,
    retried: bool,
) -> None:
    ATTEMPTS.labels(stage.slug, outcome.value).inc()
    attempt_record(
        transaction_id=transaction_id,
        attempt=AttemptRecord(
            stage=stage,
            number=number,
            started_at=started_at,
            finished_at=timezone.now(),
            outcome=outcome,
            kind=kind,
            error=error,
            retried=retried,
        ),
    )
