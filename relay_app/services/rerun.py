"""Rerun a finished transaction from one of its hops: a new transaction of the same owner
that inherits the hops before that one, unchanged, and runs its chain from there.

The original never changes. The rerun's inherited hops are copies of the original's (text,
times, Kafka coordinates, the attempts that did not succeed), marked ``inherited``; its chain
starts with the task of the chosen hop, on the text recorded as that hop's input, so a hop
that reads an inherited Kafka record reads the original's record, which names the original
(``services/chain.py`` accepts the records of a transaction's lineage). Kafka hops done again
write new records. A rerun from hop 8 runs no chain: hop 8 is the web server's.

Who may rerun what: a transaction's owner reruns one that failed, timed out or was
cancelled, from the hop it stopped at; staff rerun any finished one from a hop they choose
(one that succeeded only so). Each refusal says why (``RerunRefused``).
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError
from django.db import transaction as db_transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from .. import tracing
from ..errors import RelayError
from ..hops import Stage
from ..models import Attempt, AuditEntry, Hop, Transaction
from ..original_log import log_hop
from ..selectors import is_staff, may_see, transaction_find, transaction_get
from ..tasks import relay_chain
from .audit import REASON_MAX_LENGTH, audit_record
from .chain import ChainPayload, rest_respond
from .relay import redis_unavailable
from .transactions import HopRecord, hops_record

logger = logging.getLogger(__name__)

#: What an owner may rerun (staff: any finished transaction).
RERUNNABLE_BY_OWNER = frozenset(
    {Transaction.Status.FAILED, Transaction.Status.TIMED_OUT, Transaction.Status.CANCELLED}
)

Operator = User | AnonymousUser


class RerunRefused(RelayError):
    """A rerun that makes no sense for this transaction (still pending, say), and why: 409."""

    status_code = 409


class RerunHopInvalid(RerunRefused):
    """A hop the transaction cannot be rerun from (its input was never recorded): 400."""

    status_code = 400


class RerunHopNotAllowed(RerunRefused):
    """A hop other than the one that failed, chosen by someone who is not staff: 403."""

    status_code = 403


class RerunKeyConflict(RerunRefused):
    """An Idempotency-Key already used for another request: 422, as for a relay."""

    status_code = 422


def _named(stage: Stage | None) -> str:
    return f"hop {stage:d}, {stage.slug}" if stage is not None else "none"


def rerun_default_hop(original: Transaction) -> Stage | None:
    """The hop a rerun starts from unless staff choose: the one that failed, timed out or was
    cut off (the first not recorded); ``None`` for a transaction that succeeded."""
    if original.status == Transaction.Status.SUCCEEDED:
        return None
    if original.failed_stage:
        return Stage(original.failed_stage)
    recorded = {hop.stage for hop in original.hops.all()}
    return next((stage for stage in Stage if stage not in recorded), Stage.REST_RESPONSE)


def rerun_hops_allowed(original: Transaction) -> list[Stage]:
    """The hops a rerun of ``original`` could start from: those whose input is recorded."""
    recorded = {hop.stage for hop in original.hops.all()}
    return [
        stage for stage in Stage if all(before in recorded for before in Stage if before < stage)
    ]


def rerun_check(original: Transaction, *, user: Operator, from_hop: int | None = None) -> Stage:
    """The hop a rerun of ``original`` by ``user`` would start from (nothing is done):
    ``from_hop``, or by default the hop that failed. ``RerunRefused`` says why there is none."""
    if original.status == Transaction.Status.PENDING:
        raise RerunRefused(
            f"transaction {original.id} is still pending: wait for it to end, or cancel it"
        )
    if from_hop is not None and from_hop not in {stage.value for stage in Stage}:
        raise RerunHopInvalid(f"from_hop must be a hop's position, 1 to {len(Stage)}")
    default = rerun_default_hop(original)
    staff = is_staff(user)
    if not staff and original.status not in RERUNNABLE_BY_OWNER:
        raise RerunRefused(
            f"transaction {original.id} is {original.status}: only staff rerun it, from a hop"
            " they choose (from_hop)"
        )
    if from_hop is None:
        if default is None:
            raise RerunRefused(
                f"transaction {original.id} succeeded: staff may rerun it from a hop they"
                " choose (from_hop)"
            )
        hop = default
    else:
        hop = Stage(from_hop)
    if not staff and hop != default:
        raise RerunHopNotAllowed(
            f"you may rerun transaction {original.id} from the hop it stopped at only"
            f" ({_named(default)}); staff may choose another"
        )
    recorded = {each.stage: each for each in original.hops.all()}
    if hop not in rerun_hops_allowed(original):
        missing = next(stage for stage in Stage if stage < hop and stage not in recorded)
        raise RerunHopInvalid(
            f"transaction {original.id} cannot be rerun from hop {hop:d} ({hop.slug}): hop"
            f" {missing:d} ({missing.slug}) before it was never recorded"
        )
    given = _INPUTS.get(hop)
    if given and given.reads_record and recorded[given.after].kafka_offset is None:
        raise RerunHopInvalid(
            f"hop {given.after:d} of transaction {original.id} recorded no Kafka record to read"
        )
    return hop


def transaction_rerun(
    original: Transaction,
    *,
    user: Operator,
    from_hop: int | None = None,
    idempotency_key: str | None = None,
    reason: str = "",
    source: str = AuditEntry.Source.API,
) -> Transaction:
    """Start a rerun of ``original`` for ``user`` and return it at once, pending (or already
    failed: Redis is down; or settled: from hop 8), with its inherited hops.

    ``Transaction.DoesNotExist`` if ``user`` may not see ``original`` (its owner and staff
    may), as for reading it; ``RerunRefused`` (or a subclass) with why a rerun is refused.
    The rerun belongs to the original's owner; with an ``idempotency_key`` that owner already
    used for a rerun of ``original`` from the same hop, that rerun comes back instead.

    Each rerun made is recorded in the audit trail (action ``rerun``, from ``source``: api,
    admin, job), with ``reason``, the original and the rerun; a repeated key records nothing.
    """
    if not may_see(user, original):
        raise Transaction.DoesNotExist(f"no transaction {original.id}")
    original = transaction_get(transaction_id=str(original.id), viewer=None)
    if idempotency_key and (
        earlier := transaction_find(owner=original.owner, idempotency_key=idempotency_key)
    ):
        return _same_rerun(earlier, original, from_hop)
    hop = rerun_check(original, user=user, from_hop=from_hop)
    deadline = time.time() + settings.RELAY_DEADLINE_SECONDS
    try:
        rerun = _create(original, hop=hop, deadline=deadline, idempotency_key=idempotency_key)
    except IntegrityError:
        # The same key arrived twice at once; the other request made the rerun.
        earlier = transaction_find(owner=original.owner, idempotency_key=idempotency_key or "")
        if earlier is None:
            raise
        return _same_rerun(earlier, original, from_hop)
    logger.info(
        "transaction %s reruns %s from %s for %s",
        rerun.id,
        original.id,
        hop.slug,
        user.get_username() or "nobody",
        extra={"transaction_id": str(rerun.id)},
    )
    audit_record(
        actor=user,
        action=AuditEntry.Action.RERUN,
        reason=reason[:REASON_MAX_LENGTH],
        transactions=[original.id, rerun.id],
        details={"original": str(original.id), "rerun": str(rerun.id), "from_hop": int(hop)},
        source=source,
    )
    return _start(rerun, hop=hop, deadline=deadline)


def _same_rerun(earlier: Transaction, original: Transaction, from_hop: int | None) -> Transaction:
    """The earlier rerun of a repeated Idempotency-Key, if it reran this transaction from
    this hop."""
    if earlier.rerun_of_id != original.id or (
        from_hop is not None and earlier.from_hop != from_hop
    ):
        raise RerunKeyConflict(
            f"Idempotency-Key {earlier.idempotency_key!r} was already used for another request;"
            " use a new key for a new rerun"
        )
    return transaction_get(transaction_id=str(earlier.id), viewer=None)


_Row = TypeVar("_Row", Hop, Attempt)


def _copied(row: _Row, **changes: Any) -> _Row:
    """A new, unsaved row with ``row``'s every field (a field added later is copied too) but
    ``changes``, keyed as the columns are (``transaction_id``)."""
    fields = {
        f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if not f.primary_key
    }
    return type(row)(**{**fields, **changes})


def _create(
    original: Transaction, *, hop: Stage, deadline: float, idempotency_key: str | None
) -> Transaction:
    """Record the rerun with the original's hops before ``hop`` (and their attempts that did
    not succeed), inherited, in one database transaction; hop 1 done anew if it is ``hop``."""
    with db_transaction.atomic():
        rerun = Transaction.objects.create(
            owner=original.owner,
            message=original.message,
            deadline_at=datetime.fromtimestamp(deadline, UTC),
            idempotency_key=idempotency_key,
            trace_id=tracing.current_trace_id(),
            rerun_of=original,
            from_hop=hop,
        )
        Hop.objects.bulk_create(
            _copied(each, transaction_id=rerun.pk, inherited=True)
            for each in original.hops.all()
            if each.stage < hop
        )
        Attempt.objects.bulk_create(
            _copied(each, transaction_id=rerun.pk)
            for each in original.attempts.all()
            if each.stage < hop
        )
        if hop == Stage.REST_REQUEST:
            now = datetime.now(UTC)
            text = Stage.REST_REQUEST.spec.apply(original.message)
            first = HopRecord(Stage.REST_REQUEST, text, now, datetime.now(UTC))
            hops_record(transaction_id=str(rerun.id), hops=[first], notify=False)
            db_transaction.on_commit(
                lambda: log_hop(Stage.REST_REQUEST, text, transaction_id=rerun.id)
            )
    return rerun


@dataclass(frozen=True)
class _Input:
    """What the chain of a rerun from a hop starts with: the output of the hop before its
    first task's, and the Kafka record that hop wrote when the first task reads it."""

    after: Stage
    reads_record: bool = False


# Hop 5's task is hop 4's (the gRPC call): it starts on hop 3's text, and hop 4, inherited,
# stays as it was (its text is the same: the hop only appends).
_INPUTS = {
    Stage.REST_REQUEST: _Input(Stage.REST_REQUEST),
    Stage.KAFKA_PUBLISH_REQUEST: _Input(Stage.REST_REQUEST),
    Stage.KAFKA_CONSUME_REQUEST: _Input(Stage.KAFKA_PUBLISH_REQUEST, reads_record=True),
    Stage.GRPC_CLIENT: _Input(Stage.KAFKA_CONSUME_REQUEST),
    Stage.GRPC_SERVER: _Input(Stage.KAFKA_CONSUME_REQUEST),
    Stage.KAFKA_PUBLISH_REPLY: _Input(Stage.GRPC_SERVER),
    Stage.KAFKA_CONSUME_REPLY: _Input(Stage.KAFKA_PUBLISH_REPLY, reads_record=True),
}


def _start(rerun: Transaction, *, hop: Stage, deadline: float) -> Transaction:
    """Send the rerun's chain from ``hop`` (hop 8: do it here); the rerun as it starts."""
    transaction_id = str(rerun.id)
    if hop == Stage.REST_RESPONSE:
        rest_respond(transaction_id=transaction_id)
        return transaction_get(transaction_id=transaction_id, viewer=None)
    given = _INPUTS[hop]
    before = Hop.objects.get(transaction_id=transaction_id, stage=given.after)
    payload: ChainPayload = {
        "transaction_id": transaction_id,
        "text": before.text,
        "deadline": deadline,
    }
    if given.reads_record:  # its coordinates were checked by rerun_check
        payload["record"] = {
            "topic": before.kafka_topic,
            "partition": before.kafka_partition or 0,
            "offset": before.kafka_offset or 0,
        }
    # Read before the chain is sent, as an asynchronous relay's answer is.
    started = transaction_get(transaction_id=transaction_id, viewer=None)
    try:
        with tracing.transaction_traced(transaction_id):
            relay_chain(payload, respond_async=True, start=hop).apply_async()
    except (BrokerError, RedisError) as exc:
        redis_unavailable(transaction_id, exc)
        return transaction_get(transaction_id=transaction_id, viewer=None)
    return started
