"""Admission: take a relay on only if it can be done before its deadline.

A transaction's deadline counts from its request's arrival at the web server
(``project/webserver.py``). When more requests arrive than the stack can carry, taking every
one on makes every one late: Celery's queue is shared, so relays taken on together advance
together and finish together, each about ``relays in flight / rate`` after it started; past
the deadline all of them time out and the work spent on them is lost. So each web process
carries at most ``RELAY_ADMISSION_CONCURRENCY`` relays at once; the rest wait, first come
first served, for a place (a sleeping thread: nothing else is spent on them), and each starts
only while, by Little's law,

    expected time = (relays in flight here + 1) / relays this process completed per second

fits in ``START_HEADROOM`` of the time it has left. A request is refused at once (503 with
``Retry-After``, nothing recorded, ``relay_app/api/admission.py``) when even its place in
line would make it late (``ARRIVAL_HEADROOM``); one that waited and can no longer start in
time is refused then. So the relays taken on finish in about the order they came, the
earliest soonest, and a burst larger than the stack can serve in time loses its last
arrivals, not all of them.

Each relay that succeeded measures the rate it was served at (the relays in flight beside it
on average, over the time it took: Little's law again); the gate goes by the mean of the last
few seconds'. When there are too few of them (a quiet spell), the last rate measured stands
in, halving every ``RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS``: a burst after a pause waits in
line as the stack served before it. After a restart ``RELAY_ADMISSION_INITIAL_RATE`` (if
set) does. With no rate to go by, or when relays finish without succeeding (the stack is
failing, not quiet), as many as the concurrency allows are taken on at once and none waits.

A refusal's pause (``Overloaded.pause``) is spread at random over up to half as long again,
so that clients refused together do not all come back together; while there are places
(``RefusalHolds``) a refusal at arrival is held for part of it.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings

from ..errors import RelayError

# A relay starts only if its expected time fits in this share of the time it has left: the
# mean hides a spread, and a relay started that then times out costs as much as one that
# succeeds. It waits for a place only if its place in line fits in this (larger) share: the
# start is checked again with the rate measured then.
START_HEADROOM = 0.65
ARRIVAL_HEADROOM = 1.0
# Of a web process's 128 threads (ops/processes.py WEB_THREADS), what relays in flight, in
# line and held refusals may take together: the other 32 are for event streams. At most
# MOST_WAITING of them wait in line; held refusals take what the relays leave.
THREADS_FOR_RELAYS = 96
MOST_WAITING = 64
# The rate is measured over relays that succeeded this recently, once there are this many.
RATE_WINDOW_SECONDS = 5.0
RATE_MIN_SAMPLES = 10
# A refusal's pause is its expected wait times a random factor from 1 to 1 + this.
PAUSE_SPREAD = 0.5
# A held refusal is held at most this share of the deadline (the rest of its pause is its
# Retry-After).
HELD_SHARE = 0.5


class Overloaded(RelayError):
    """More relays in flight than this process can finish before the new one's deadline."""

    status_code = 503

    def __init__(self, pause: float, *, holdable: bool = True) -> None:
        retry_after = max(1, math.ceil(pause))
        super().__init__(f"the relay is at capacity: try again in {retry_after} s")
        # Seconds the client should wait (spread), and the same in whole seconds, as HTTP's
        # Retry-After takes it.
        self.pause = pause
        self.retry_after = retry_after
        # Whether the answer may be held for the pause (``RefusalHolds``): not when the
        # process is short of threads.
        self.holdable = holdable


class RefusalHolds:
    """Places for refusals held before they are answered, at most
    ``RELAY_ADMISSION_HELD_REFUSALS`` at once in a process.

    A client that ignores ``Retry-After`` and asks again at once would otherwise turn each
    refusal into a storm of them, each a request's work for the proxy and the web server:
    held, it asks again no sooner than the hold. A held answer costs a sleeping thread and
    nothing else, so only so many are held, the rest answered at once; and for no longer than
    ``HELD_SHARE`` of the deadline, so that no answer, a refusal included, takes a client
    much longer than a relay's deadline. The threads relays in flight and in line (``beside``)
    hold come first: held refusals take no more than ``THREADS_FOR_RELAYS`` leaves.
    """

    def __init__(self, *, beside: Callable[[], int] = lambda: 0) -> None:
        self._lock = threading.Lock()
        self._held = 0
        self._beside = beside

    @contextmanager
    def place(self, refusal: Overloaded) -> Iterator[float]:
        """Seconds ``refusal`` is to be held for while the block runs (0: no place)."""
        with self._lock:
            most = min(settings.RELAY_ADMISSION_HELD_REFUSALS, THREADS_FOR_RELAYS - self._beside())
            taken = refusal.holdable and self._held < most
            self._held += taken
        try:
            longest = HELD_SHARE * float(settings.RELAY_DEADLINE_SECONDS)
            yield min(refusal.pause, longest) if taken else 0.0
        finally:
            if taken:
                with self._lock:
                    self._held -= 1


@dataclass
class Place:
    """One relay's place at the gate: its deadline, and how its relay ended
    (``relay_ended``)."""

    deadline: float
    # None: the request carried no relay to its end (a repeat of an earlier one, an
    # asynchronous one answered at once, one refused for its input or its caller, one
    # cancelled by an operator), so it says nothing of the stack's rate or health.
    succeeded: bool | None = None
    # When it started, and the gate's relay-seconds in flight then (``AdmissionGate._busy``).
    started_at: float = 0.0
    busy_at_start: float = 0.0


@dataclass
class Waiter:
    """A relay waiting for a place: woken when it is given one or refused (``outcome``)."""

    place: Place
    woken: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""  # "started" or "refused" once decided


class AdmissionGate:
    """Counts this process's relays in flight, those waiting for a place, and the rate at
    which they succeed."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        wait: Callable[[threading.Event, float], object] = threading.Event.wait,
    ) -> None:
        self._clock = clock
        self._wait = wait
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiting: deque[Waiter] = deque()
        # Relay-seconds spent in flight so far (the integral of the count in flight), to when.
        self._busy, self._busy_to = 0.0, clock()
        # Each relay that succeeded lately: when, and the rate it measured.
        self._succeeded: deque[tuple[float, float]] = deque()
        # The last rate measured and when; it stands in for a window with too few successes.
        initial = float(settings.RELAY_ADMISSION_INITIAL_RATE)
        self._learned: tuple[float, float] | None = (initial, self._busy_to) if initial else None
        self._failed_in_a_row = 0

    @contextmanager
    def admit(self, *, arrived_at: float) -> Iterator[Place]:
        """Hold a place for one relay while the block runs (set its ``succeeded``), once it
        has one: it may wait for it.

        Raises ``Overloaded`` instead when it could not be done in time.
        """
        place = Place(deadline=arrived_at + settings.RELAY_DEADLINE_SECONDS)
        self._enter(place)
        _carrying.place = place
        try:
            yield place
        finally:
            _carrying.place = None
            self._leave(place)

    def _enter(self, place: Place) -> None:
        """Take a place now, or wait for one; raise ``Overloaded`` when it cannot be in time."""
        deadline = place.deadline
        with self._lock:
            now = self._clock()
            rate, measured = self._rate(now)
            ahead = self._in_flight + len(self._waiting)
            if deadline <= now:  # it waited out its whole budget for a thread: none to spare
                raise Overloaded(self._pause(rate, ahead), holdable=False)
            if not self._waiting and self._in_flight < self._limit():
                # A rate not measured lately (a faded one) does not hold back what the
                # concurrency allows: it may be far below what the stack serves now.
                fresh = rate if measured else None
                if self._in_time(fresh, self._in_flight + 1, deadline - now, START_HEADROOM):
                    self._start(place, now)
                    return
                raise Overloaded(self._pause(rate, ahead))
            late = not self._in_time(rate, ahead + 1, deadline - now, ARRIVAL_HEADROOM)
            if rate is None or late or len(self._waiting) >= MOST_WAITING:
                raise Overloaded(self._pause(rate, ahead))
            waiter = Waiter(place)
            self._waiting.append(waiter)
        while True:
            with self._lock:
                if waiter.outcome == "started":
                    return
                now = self._clock()
                rate, _ = self._rate(now)
                latest = self._latest_start(rate, deadline)
                if waiter.outcome == "refused" or now >= latest:
                    if waiter in self._waiting:
                        self._waiting.remove(waiter)
                    ahead = self._in_flight + len(self._waiting)
                    # It has waited already: answered at once, not held.
                    raise Overloaded(self._pause(rate, ahead), holdable=False)
            self._wait(waiter.woken, latest - now)
            waiter.woken.clear()

    def _leave(self, place: Place) -> None:
        """Give a place back, count how it went, and start whoever waits if still in time."""
        with self._lock:
            now = self._clock()
            self._count_busy(now)
            self._in_flight -= 1
            took = now - place.started_at
            # A place whose relay was not carried to its end (None) is no measure of the stack.
            if place.succeeded:
                self._failed_in_a_row = 0
                if took > 0:
                    # Little's law: the relays in flight beside it on average, over the time
                    # it took, is the rate at which they were being done.
                    beside = (self._busy - place.busy_at_start) / took
                    self._succeeded.append((now, beside / took))
            elif place.succeeded is False:
                self._failed_in_a_row += 1
                if self._failed_in_a_row >= RATE_MIN_SAMPLES:
                    self._learned = None  # failing, not quiet: what it served is no guide
            rate, _ = self._rate(now)
            while self._waiting and self._in_flight < self._limit():
                waiter = self._waiting.popleft()
                if now < self._latest_start(rate, waiter.place.deadline):
                    self._start(waiter.place, now)
                    waiter.outcome = "started"
                else:
                    waiter.outcome = "refused"
                waiter.woken.set()

    def threads(self) -> int:
        """The threads its relays hold, in flight and in line (read without the lock: a
        moment's count)."""
        return self._in_flight + len(self._waiting)

    def _start(self, place: Place, now: float) -> None:
        self._count_busy(now)
        self._in_flight += 1
        place.started_at, place.busy_at_start = now, self._busy

    def _count_busy(self, now: float) -> None:
        """Add the relay-seconds in flight since last counted (before the count changes)."""
        self._busy += self._in_flight * max(0.0, now - self._busy_to)
        self._busy_to = now

    @staticmethod
    def _limit() -> int:
        return max(1, int(settings.RELAY_ADMISSION_CONCURRENCY))

    @staticmethod
    def _in_time(rate: float | None, relays: int, left: float, headroom: float) -> bool:
        """Whether ``relays`` at ``rate`` are done within ``headroom`` of ``left`` seconds;
        with no rate to go by, yes (the concurrency bounds them)."""
        return rate is None or relays / rate <= headroom * left

    def _latest_start(self, rate: float | None, deadline: float) -> float:
        """When a relay waiting for a place can start no longer: with the most in flight
        beside it, it could not be done in time."""
        if rate is None:
            return -math.inf
        return deadline - self._limit() / rate / START_HEADROOM

    def _rate(self, now: float) -> tuple[float | None, bool]:
        """Relays that succeeded per second of busy time lately (and True), else the last
        such rate decayed (and False); None: nothing to go by."""
        measured = self._measured_rate(now)
        if measured is not None:
            self._learned = (measured, now)
            return measured, True
        if self._learned is None:
            return None, False
        rate, at = self._learned
        faded = rate * 0.5 ** ((now - at) / settings.RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS)
        return (faded if faded > 0 else None), False  # a float fades to 0 in the end

    def _measured_rate(self, now: float) -> float | None:
        """The mean rate the relays that succeeded lately measured; None: too few to say.

        Each relay measures the rate while it ran as the relays in flight beside it on
        average over the time it took (Little's law), not as successes per second: relays
        taken on together finish together, so successes counted over a window read the
        stack as many times faster (over their span) or slower (over the time before the
        first could finish) than it is. Idle spells count for nothing. Only successes count:
        under overload, relays that time out also finish, at the deadline, and counting them
        would take the stack's wasted work for its capacity.
        """
        while self._succeeded and self._succeeded[0][0] < now - RATE_WINDOW_SECONDS:
            self._succeeded.popleft()
        if len(self._succeeded) < RATE_MIN_SAMPLES:
            return None
        return sum(rate for _, rate in self._succeeded) / len(self._succeeded)

    @staticmethod
    def _pause(rate: float | None, ahead: int) -> float:
        """Seconds until the ``ahead`` relays in flight and waiting now are done (sooner, the
        refused clients would mostly be refused again, each refusal costing the web server a
        request), spread at random; at least 1, at most the deadline."""
        longest = max(1.0, float(settings.RELAY_DEADLINE_SECONDS))
        expected = 1.0 if rate is None else min(max(1.0, ahead / rate), longest)
        return min(expected * (1 + PAUSE_SPREAD * random.random()), longest)  # noqa: S311


# The place of the relay the current thread carries (a web server's thread serves one
# request at a time, from admission to its answer).
_carrying = threading.local()


def relay_ended(*, succeeded: bool | None) -> None:
    """Tell the gate how the relay this thread started and saw to its end ended: succeeded
    (a measure of the rate), or failed or timed out (the stack is failing); None for an end
    that says neither (an operator's cancel). Nothing outside a place (a task, a command)."""
    place = getattr(_carrying, "place", None)
    if place is not None:
        place.succeeded = succeeded


gate = AdmissionGate()
holds = RefusalHolds(beside=gate.threads)
