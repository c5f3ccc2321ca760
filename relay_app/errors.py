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
    #: What kind of error, as a hop's retry policy names it (``relay_app/retries.py``);
    #: ``""``: none a policy can name, so never retried.
    kind: str = ""
    #: Said after the message: how many attempts were made, or why no further one.
    note: str = ""

    def __str__(self) -> str:
        said = super().__str__()
        return f"{said}; {self.note}" if self.note else said


class DependencyUnavailable(RelayError):
    """A service the relay needs (Kafka, Redis, the gRPC server) did not answer."""

    status_code = 503

    def __init__(self, dependency: str, reason: str, *, internal: str = "", kind: str = "") -> None:
        super().__init__(f"{dependency} is unavailable: {reason}")
        self.dependency = dependency
        self.internal = internal
        self.kind = kind


class DeadlineExceeded(RelayError):
    """The transaction's time budget ran out while waiting on ``stage``."""

    status_code = 504

    def __init__(self, stage: Stage) -> None:
        super().__init__(f"the deadline passed while waiting on {stage.slug}")
        self.stage = stage


class CallRefused(RelayError):
    """The gRPC server refused the call (its status code is the ``kind``): a final error for
    the default policy, such as ``INVALID_ARGUMENT`` or ``PERMISSION_DENIED``."""

    status_code = 503

    def __init__(self, code: str, *, internal: str = "") -> None:
        super().__init__(f"the gRPC server refused the call ({code})")
        self.kind = code
        self.internal = internal


class TransactionEnded(Exception):
    """The transaction ended (cancelled, or settled by someone else) before or while a hop
    worked on it: the hop stops and records nothing."""

    def __init__(self, transaction_id: str, status: str) -> None:
        super().__init__(f"transaction {transaction_id} is {status}")
        self.status = status


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
        self.kind = "mismatch"
