"""Admission: take a relay on only if it can be done before its deadline.

A transaction's deadline counts from its request's arrival at the web server
(``project/webserver.py``). When more requests arrive than the stack can carry, taking every
one on makes every one late: each waits behind the others in Celery's queue, times out, and
the work spent on it is lost, which leaves even less for the rest. So each web process
refuses a relay before anything is spent on it (503 with ``Retry-After``, nothing recorded,
``relay_app/api/admission.py``) when, by Little's law, the relays it already has in flight
would not be done in time:

    expected time = relays in flight here / relays this process completed per second

against the time left before the new request's deadline, with some headroom for the
spread around that mean. The rate is measured over the last few seconds of relays that
succeeded. When there are too few of them (a quiet spell), the last rate measured stands in,
halving every ``RELAY_ADMISSION_RATE_HALF_LIFE_SECONDS``: a burst after a pause is taken on as
the stack served it before. After a restart ``RELAY_ADMISSION_INITIAL_RATE`` (if set) does.
With no rate to go by, or when relays finish without succeeding (the stack is failing, not
quiet), a fixed number at once is taken on; never fewer than that.

A refusal's pause (``Overloaded.pause``) is spread at random over up to half as long again,
so that clients refused together do not all come back together; while there are places
(``RefusalHolds``) the answer is held for part of it.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from ..errors import RelayError

# The expected time may use this share of the time left: the mean hides a spread, and a
# relay admitted that then times out costs as much as one that succeeds.
HEADROOM = 0.65
# The rate is measured over relays that succeeded this recently, once there are this many.
RATE_WINDOW_SECONDS = 5.0
RATE_MIN_SAMPLES = 10
# With no rate to go by, at most this many at once; with one, at least this many.
COLD_IN_FLIGHT = 16
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
    much longer than a relay's deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0

    @contextmanager
    def place(self, refusal: Overloaded) -> Iterator[float]:
        """Seconds ``refusal`` is to be held for while the block runs (0: no place)."""
        with self._lock:
            taken = refusal.holdable and self._held < settings.RELAY_ADMISSION_HELD_REFUSALS
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
    """One relay's place at the gate: its deadline, and whether it succeeded."""

    deadline: float
    succeeded: bool = False


class AdmissionGate:
    """Counts this process's relays in flight and the rate at which they succeed."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._succeeded: deque[float] = deque()
        # Spells with nothing in flight: they are no part of the rate (a gap between bursts
        # would otherwise read as a slow stack). Idle from the start.
        self._idle: deque[tuple[float, float]] = deque()
        self._started = clock()
        self._idle_since: float | None = self._started
        # The last rate measured and when; it stands in for a window with too few successes.
        initial = float(settings.RELAY_ADMISSION_INITIAL_RATE)
        self._learned: tuple[float, float] | None = (initial, self._started) if initial else None
        self._failed_in_a_row = 0

    @contextmanager
    def admit(self, *, arrived_at: float) -> Iterator[Place]:
        """Hold a place for one relay while the block runs (set its ``succeeded``).

        Raises ``Overloaded`` at once instead when it could not be done in time.
        """
        place = Place(deadline=arrived_at + settings.RELAY_DEADLINE_SECONDS)
        with self._lock:
            now = self._clock()
            rate, measured = self._rate(now)
            left = place.deadline - now
            if left <= 0:  # it waited out its whole budget for a thread: none to spare
                raise Overloaded(self._pause(rate), holdable=False)
            at_least = 0 if measured else COLD_IN_FLIGHT
            if self._in_flight >= at_least and (
                rate is None or self._in_flight / rate > HEADROOM * left
            ):
                raise Overloaded(self._pause(rate))
            self._in_flight += 1
            if self._idle_since is not None:
                self._idle.append((self._idle_since, now))
                self._idle_since = None
        try:
            yield place
        finally:
            with self._lock:
                now = self._clock()
                self._in_flight -= 1
                if place.succeeded:
                    self._succeeded.append(now)
                    self._failed_in_a_row = 0
                else:
                    self._failed_in_a_row += 1
                    if self._failed_in_a_row >= RATE_MIN_SAMPLES:
                        self._learned = None  # failing, not quiet: what it served is no guide
                if not self._in_flight:
                    self._idle_since = now

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
        """Relays that succeeded per second of busy time lately; None: too few to say.

        Busy time is the window's, less the spells with nothing in flight: not the span
        between its first and last success, which under a burst (relays taken on together
        finish together) is a fraction of the time they took, and made the rate read many
        times the stack's. Only successes count: under overload, relays that time out also
        finish, at the deadline, and counting them would take the stack's wasted work for
        its capacity.
        """
        start = max(now - RATE_WINDOW_SECONDS, self._started)
        while self._succeeded and self._succeeded[0] < start:
            self._succeeded.popleft()
        if len(self._succeeded) < RATE_MIN_SAMPLES:
            return None
        while self._idle and self._idle[0][1] <= start:
            self._idle.popleft()
        spells = [*self._idle, *([(self._idle_since, now)] if self._idle_since is not None else [])]
        idle = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in spells)
        busy = now - start - idle
        return len(self._succeeded) / busy if busy > 0 else None

    def _pause(self, rate: float | None) -> float:
        """Seconds until what is in flight now is done (sooner, the refused clients would
        mostly be refused again, each refusal costing the web server a request), spread at
        random; at least 1, at most the deadline."""
        longest = max(1.0, float(settings.RELAY_DEADLINE_SECONDS))
        expected = 1.0 if rate is None else min(max(1.0, self._in_flight / rate), longest)
        return min(expected * (1 + PAUSE_SPREAD * random.random()), longest)  # noqa: S311


gate = AdmissionGate()
holds = RefusalHolds()
