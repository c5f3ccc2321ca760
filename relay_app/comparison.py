"""Two transactions of one lineage (a transaction and its reruns) side by side, hop by hop:
what each hop's text was, the differences between the two marked, and how each hop went.

For ``GET /api/transactions/<id>/compare/<other>/`` and the admin's compare page. The
differences are ``difflib``'s, by character, as segments both can draw (``<del>``/``<ins>``
in the admin).
"""

import difflib
from dataclasses import dataclass
from datetime import timedelta

from .errors import RelayError
from .hops import Stage
from .models import Attempt, Hop, Transaction
from .selectors import attempts_by_stage, transaction_lineage


class NotOneLineage(RelayError):
    """Two transactions that are not reruns of one first transaction: nothing to compare."""

    status_code = 409


@dataclass(frozen=True)
class HopSide:
    """One hop of one of the two transactions: ``state`` is ``done``, ``inherited``,
    ``failed`` (attempted, never recorded) or ``not_reached``."""

    state: str
    text: str | None
    attempts: int
    duration_ms: float | None
    kafka_topic: str
    kafka_partition: int | None
    kafka_offset: int | None

    @property
    def inherited(self) -> bool:
        return self.state == "inherited"

    @property
    def label(self) -> str:
        return self.state.replace("_", " ")

    @property
    def kafka(self) -> str:
        """``CommunicationTopic[0]@17``, or empty without a record."""
        if not self.kafka_topic:
            return ""
        return f"{self.kafka_topic}[{self.kafka_partition}]@{self.kafka_offset}"


@dataclass(frozen=True)
class Segment:
    """A stretch of the two texts: ``equal`` (the same on both sides), ``replace``,
    ``delete`` (only on the left) or ``insert`` (only on the right)."""

    op: str
    left: str
    right: str


@dataclass(frozen=True)
class HopRow:
    stage: Stage
    left: HopSide
    right: HopSide
    segments: tuple[Segment, ...]

    @property
    def same_text(self) -> bool:
        return self.left.text == self.right.text

    @property
    def same_record(self) -> bool:
        return self.left.kafka == self.right.kafka

    @property
    def sides(self) -> tuple[dict[str, object], dict[str, object]]:
        """Both sides, for a template: each hop, and whether it is the left one (whose
        text shows what only it has as deleted; the right one's, as inserted)."""
        return {"hop": self.left, "left": True}, {"hop": self.right, "left": False}


@dataclass(frozen=True)
class Comparison:
    root_id: str
    left: Transaction
    right: Transaction
    hops: tuple[HopRow, ...]


def lineage_root(transaction_id: str) -> str:
    """The first transaction of the lineage ``transaction_id`` belongs to (itself if it
    reruns none)."""
    return transaction_lineage(transaction_id=transaction_id)[-1]


def compare(left: Transaction, right: Transaction) -> Comparison:
    """``left`` and ``right`` (each as ``transaction_get`` reads it) hop by hop;
    ``NotOneLineage`` unless both go back to one first transaction."""
    roots = lineage_root(str(left.id)), lineage_root(str(right.id))
    if roots[0] != roots[1]:
        raise NotOneLineage(
            f"transactions {left.id} and {right.id} are not of one lineage (neither reruns"
            " the other, nor do both rerun one transaction): nothing to compare"
        )
    sides = [_sides(left), _sides(right)]
    rows = []
    for stage in Stage:
        a, b = sides[0][stage], sides[1][stage]
        rows.append(HopRow(stage, a, b, diff(a.text or "", b.text or "")))
    return Comparison(root_id=roots[0], left=left, right=right, hops=tuple(rows))


def diff(left: str, right: str) -> tuple[Segment, ...]:
    """The two texts as segments: equal stretches and the changes between them."""
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    return tuple(
        Segment(op, left[i1:i2], right[j1:j2]) for op, i1, i2, j1, j2 in matcher.get_opcodes()
    )


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 3)


def _sides(transaction: Transaction) -> dict[Stage, HopSide]:
    hops: dict[int, Hop] = {hop.stage: hop for hop in transaction.hops.all()}
    tried: dict[int, list[Attempt]] = attempts_by_stage(transaction)
    sides = {}
    for stage in Stage:
        hop = hops.get(stage)
        attempts = tried.get(stage, [])
        if hop is not None:
            sides[stage] = HopSide(
                state="inherited" if hop.inherited else "done",
                text=hop.text,
                attempts=hop.attempt,
                duration_ms=_ms(hop.duration),
                kafka_topic=hop.kafka_topic,
                kafka_partition=hop.kafka_partition,
                kafka_offset=hop.kafka_offset,
            )
        else:
            sides[stage] = HopSide(
                state="failed" if attempts else "not_reached",
                text=None,
                attempts=len(attempts),
                duration_ms=_ms(attempts[-1].finished_at - attempts[0].started_at)
                if attempts
                else None,
                kafka_topic="",
                kafka_partition=None,
                kafka_offset=None,
            )
    return sides
