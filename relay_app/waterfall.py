"""A transaction's hops laid out on one time axis, for the admin's waterfall, each hop's
attempts that did not succeed drawn on its row before it.

Positions are percentages of the axis so the template can draw the bars with plain
HTML/CSS (no script, no external asset).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .hops import Stage

# A hop shorter than this share of the axis is still drawn this wide, so it stays visible.
MIN_BAR_PERCENT = 0.5
# The axis gets at most this many intervals between its labelled ticks.
MAX_TICK_INTERVALS = 6


class TimedHop(Protocol):
    """What the waterfall needs of a hop (``Hop`` has it)."""

    @property
    def stage(self) -> int: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def finished_at(self) -> datetime: ...


class TimedAttempt(TimedHop, Protocol):
    """What the waterfall needs of an attempt that did not succeed (``Attempt`` has it)."""

    @property
    def number(self) -> int: ...

    @property
    def outcome(self) -> str: ...

    @property
    def error(self) -> str: ...


@dataclass(frozen=True)
class AttemptBar:
    """An attempt that did not succeed, on its hop's row."""

    number: int
    outcome: str
    error: str
    offset_ms: float
    duration_ms: float
    left: float
    width: float

    @property
    def style(self) -> str:
        return f"left: {self.left:.3f}%; width: {self.width:.3f}%"

    @property
    def title(self) -> str:
        return (
            f"attempt {self.number} {self.outcome} at +{self.offset_ms:.2f} ms after"
            f" {self.duration_ms:.2f} ms: {self.error}"
        )


@dataclass(frozen=True)
class Bar:
    """One hop on the axis: when it started and how long it took, in ms and in percent; its
    attempts that did not succeed; ``recorded`` false for a hop only attempted (no bar);
    ``inherited`` for a rerun's hop copied from its original (no bar: it ran then, not on
    this axis; its duration is the original's)."""

    stage: Stage
    offset_ms: float
    duration_ms: float
    left: float
    width: float
    attempts: tuple[AttemptBar, ...] = ()
    recorded: bool = True
    inherited: bool = False

    @property
    def position(self) -> int:
        return self.stage.value

    @property
    def slug(self) -> str:
        return self.stage.slug

    @property
    def label(self) -> str:
        return self.stage.spec.description

    @property
    def kind(self) -> str:
        """``rest``, ``kafka`` or ``grpc``: which system the hop talks to (its colour)."""
        return self.stage.slug.split("_")[0]

    @property
    def style(self) -> str:
        """Inline CSS for the bar; formatted here so no locale can put a comma in it."""
        return f"left: {self.left:.3f}%; width: {self.width:.3f}%"


@dataclass(frozen=True)
class Tick:
    """A labelled mark on the axis, ``ms`` after its origin."""

    ms: float
    left: float

    @property
    def label(self) -> str:
        return f"{self.ms / 1000:g} s" if self.ms >= 1000 else f"{self.ms:g} ms"

    @property
    def style(self) -> str:
        return f"left: {self.left:.3f}%"


@dataclass(frozen=True)
class Waterfall:
    total_ms: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def tick_step(total_ms: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that splits ``total_ms`` into few intervals."""
    if total_ms <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(total_ms / MAX_TICK_INTERVALS))
    for factor in (1, 2, 5, 10):
        step = factor * magnitude
        if total_ms / step <= MAX_TICK_INTERVALS:
            return float(step)
    return float(10 * magnitude)


def waterfall(
    *,
    started_at: datetime,
    finished_at: datetime | None,
    hops: Iterable[TimedHop],
    attempts: Iterable[TimedAttempt] = (),
) -> Waterfall:
    """The hops in stage order on an axis from the transaction's start to its end, each
    with its ``attempts`` that did not succeed (a hop only attempted gets a row too). A hop
    with a true ``inherited`` (a rerun's, copied from its original) gets a row without a
    bar, and stays off the axis: it ran long before.

    The axis starts at the earlier of ``started_at`` and the first hop or attempt, and ends at
    the later of ``finished_at`` and the last, so every bar fits on it.
    """
    every = sorted(hops, key=lambda hop: hop.stage)
    inherited = {hop.stage: hop for hop in every if getattr(hop, "inherited", False)}
    ordered = {hop.stage: hop for hop in every if hop.stage not in inherited}
    tried: dict[int, list[TimedAttempt]] = {}
    for attempt in sorted(attempts, key=lambda a: (a.stage, a.number)):
        if attempt.stage not in inherited:
            tried.setdefault(attempt.stage, []).append(attempt)
    timed: list[TimedHop] = [*ordered.values(), *(a for each in tried.values() for a in each)]
    origin = min([started_at, *(item.started_at for item in timed)])
    end = max([finished_at or origin, *(item.finished_at for item in timed)])
    total_ms = _ms(end - origin)
    scale = 100 / total_ms if total_ms > 0 else 0.0

    def place(item: TimedHop) -> tuple[float, float, float, float]:
        offset_ms = _ms(item.started_at - origin)
        duration_ms = _ms(item.finished_at - item.started_at)
        width = min(max(duration_ms * scale, MIN_BAR_PERCENT), 100.0)
        return offset_ms, duration_ms, min(offset_ms * scale, 100.0 - width), width

    bars = [
        Bar(Stage(stage), 0.0, _ms(hop.finished_at - hop.started_at), 0.0, 0.0, inherited=True)
        for stage, hop in inherited.items()
    ]
    for stage in sorted(ordered.keys() | tried.keys()):
        failed = tuple(
            AttemptBar(a.number, a.outcome, a.error, *place(a)) for a in tried.get(stage, [])
        )
        if stage in ordered:
            bars.append(Bar(Stage(stage), *place(ordered[stage]), attempts=failed))
        else:
            last = failed[-1]
            bars.append(
                Bar(Stage(stage), last.offset_ms, 0.0, last.left, 0.0, failed, recorded=False)
            )
    step = tick_step(total_ms)
    count = math.floor(total_ms / step + 1e-9) if total_ms > 0 else 0
    ticks = tuple(Tick(i * step, i * step * scale) for i in range(count + 1))
    return Waterfall(total_ms=total_ms, bars=tuple(bars), ticks=ticks)


def format_duration(duration: timedelta | None) -> str:
    """``0.42 ms``, ``61.3 ms`` or ``1.25 s``; an em dash while there is none yet."""
    if duration is None:
        return "—"
    ms = _ms(duration)
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"
