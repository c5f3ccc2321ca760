"""Why a transaction could not be completed, in terms a client can act on.

The message of a ``RelayError`` is what the client reads and what the transaction records,
so it never names a host, a port or a credential; ``internal`` carries those, for the log.
"""

from .hops import Stage


class RelayError(Exception):
    """Base of the relay's own errors; ``status_code`` is what the HTTP client gets."""

    status_code = 503
    #: Details for the operator's log only (addresses, the library's own error).
    internal: str = ""


class DependencyUnavailable(RelayError):
    """A service the relay needs (Kafka, Redis, the gRPC server) did not answer."""

    status_code = 503

    def __init__(self, dependency: str, reason: str, *, internal: str = "") -> None:
        super().__init__(f"{dependency} is unavailable: {reason}")
        self.dependency = dependency
        self.internal = internal


class DeadlineExceeded(RelayError):
    """The transaction's time budget ran out while waiting on ``stage``."""

    status_code = 504

    def __init__(self, stage: Stage) -> None:
        super().__init__(f"the deadline passed while waiting on {stage.slug}")
        self.stage = stage


class IdempotencyConflict(RelayError):
    """An Idempotency-Key already used for a different message."""

    status_code = 422

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different message;"
            " use a new key for a new message"
        )


class RecordMismatch(RelayError):
    """A Kafka record read back by its coordinates belongs to another transaction."""

    status_code = 503

    def __init__(self, place: str, *, owner: str) -> None:
        # Which other transaction is none of this client's business.
        super().__init__(f"the record read back at {place} belongs to another transaction")
        self.internal = f"it belongs to transaction {owner!r}"
