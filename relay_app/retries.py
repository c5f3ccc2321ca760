"""The retry policy of each hop that talks to another server, and what each hop typically takes.

A policy (``policy_for``) says how many attempts a hop makes in all, how long it waits
between them (a first delay growing by a factor up to a largest one, less a random share, the
jitter) and which kinds of error are worth another attempt. It comes from the settings
(``RELAY_RETRY_<HOP>_*``, ``project/settings/relay.py``); a value that cannot work stops the
process at its first use with the variable's name.

Whether another attempt is made also depends on time: only when what is left before the
deadline, after the delay, covers what the hop typically takes (``TypicalDurations``: the
90th percentile of its last successful attempts in this process, seeded from the settings).
"""

import random
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .hops import Stage


class Retried(StrEnum):
    """The hops with a retry policy, by the name their settings carry."""

    GRPC = "grpc"
    KAFKA_PUBLISH = "kafka_publish"
    KAFKA_CONSUME = "kafka_consume"

    @classmethod
    def of(cls, stage: Stage) -> "Retried":
        """The policy of hop ``stage`` (2, 3, 5, 6 or 7)."""
        return _POLICY_OF_STAGE[stage]


_POLICY_OF_STAGE = {
    Stage.KAFKA_PUBLISH_REQUEST: Retried.KAFKA_PUBLISH,
    Stage.KAFKA_CONSUME_REQUEST: Retried.KAFKA_CONSUME,
    Stage.GRPC_SERVER: Retried.GRPC,
    Stage.KAFKA_PUBLISH_REPLY: Retried.KAFKA_PUBLISH,
    Stage.KAFKA_CONSUME_REPLY: Retried.KAFKA_CONSUME,
}

#: The kinds of error each hop can name in its ``RELAY_RETRY_<HOP>_ON``.
KINDS: dict[Retried, frozenset[str]] = {
    # Every gRPC status code but OK.
    Retried.GRPC: frozenset(
        {
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        }
    ),
    # ``failed``: the producer gave up on the record (after its own, idempotent, retries) or
    # the broker refused it: it may have been written, so it is never retried by sending again.
    Retried.KAFKA_PUBLISH: frozenset({"not_queued", "unacknowledged", "failed"}),
    Retried.KAFKA_CONSUME: frozenset({"not_readable", "broker_error"}),
}
#: Kinds that are final whatever the settings say: the same call would be refused the same way.
FINAL = frozenset({"INVALID_ARGUMENT", "PERMISSION_DENIED", "failed"})


@dataclass(frozen=True)
class RetryPolicy:
    """How a hop retries: ``attempts`` in all; the delay before attempt n+1 is ``first_delay``
    times ``backoff`` to the power n-1, at most ``max_delay``, less up to ``jitter`` of it."""

    attempts: int
    first_delay: float
    backoff: float
    max_delay: float
    jitter: float
    retry_on: frozenset[str]
    typical: float

    def delay(self, attempt: int, *, rand: float | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` (1-based) failed."""
        base = min(self.first_delay * self.backoff ** (attempt - 1), self.max_delay)
        share = random.random() if rand is None else rand  # noqa: S311 - spreading, not secrecy
        return base * (1 - self.jitter * share)

    def worth_retrying(self, kind: str) -> bool:
        """Whether an error of ``kind`` is worth another attempt."""
        return kind in self.retry_on and kind not in FINAL


def _setting(hop: Retried, name: str) -> tuple[str, object]:
    variable = f"RELAY_RETRY_{hop.name}_{name}"
    return variable, getattr(settings, variable)


@cache
def policy_for(hop: Retried) -> RetryPolicy:
    """The policy of ``hop`` from the settings (``ImproperlyConfigured`` names a bad one)."""
    values = {}
    for field, name, low in (
        ("attempts", "ATTEMPTS", 1),
        ("first_delay", "FIRST_DELAY_SECONDS", 0),
        ("backoff", "BACKOFF", 1),
        ("max_delay", "MAX_DELAY_SECONDS", 0),
        ("jitter", "JITTER", 0),
        ("typical", "TYPICAL_SECONDS", 0),
    ):
        variable, value = _setting(hop, name)
        if not isinstance(value, int | float) or not low <= value < float("inf"):
            raise ImproperlyConfigured(
                f"{variable} must be a number of at least {low}, not {value!r}"
            )
        values[field] = value
    if values["jitter"] > 1:
        raise ImproperlyConfigured(
            f"RELAY_RETRY_{hop.name}_JITTER is a share of each delay, 0 to 1,"
            f" not {values['jitter']}"
        )
    variable, kinds = _setting(hop, "ON")
    given = frozenset(str(kind).strip() for kind in kinds if str(kind).strip())  # type: ignore[attr-defined]
    unknown = given - KINDS[hop]
    final = given & FINAL
    if unknown or final:
        problem = (
            f"names {', '.join(sorted(unknown))}, which are not among"
            f" {', '.join(sorted(KINDS[hop]))}"
            if unknown
            else f"names {', '.join(sorted(final))}, which are final: the same attempt would"
            " be refused the same way"
        )
        raise ImproperlyConfigured(f"{variable} {problem}")
    return RetryPolicy(retry_on=given, **values)  # type: ignore[arg-type]


class TypicalDurations:
    """What each hop typically takes in this process: the 90th percentile of its last
    ``window`` successful attempts, the policy's seed until it has ``least`` of them."""

    def __init__(self, *, window: int = 200, least: int = 10) -> None:
        self._window, self._least = window, least
        self._lock = threading.Lock()
        self._seen: dict[Retried, deque[float]] = {}

    def observe(self, hop: Retried, seconds: float) -> None:
        """One successful attempt of ``hop`` took ``seconds``."""
        with self._lock:
            self._seen.setdefault(hop, deque(maxlen=self._window)).append(seconds)

    def typical(self, hop: Retried) -> float:
        """Seconds: what an attempt of ``hop`` typically takes (its p90)."""
        with self._lock:
            seen = sorted(self._seen.get(hop, ()))
        if len(seen) < self._least:
            return policy_for(hop).typical
        return seen[min(len(seen) - 1, int(len(seen) * 0.9))]

    def forget(self) -> None:
        """Back to the seeds (tests)."""
        with self._lock:
            self._seen.clear()


TYPICAL = TypicalDurations()
