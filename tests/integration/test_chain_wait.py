"""Waiting for a chain's end on the real Redis: every waiter wakes, however late it comes."""

import threading
import time
import uuid

from django.test import SimpleTestCase

from relay_app.tasks import chain_wait, chain_wake


class ChainWaitTests(SimpleTestCase):
    def test_every_waiter_wakes_when_the_end_is_stored_and_a_late_one_at_once(self) -> None:
        transaction_id = str(uuid.uuid4())
        woken: list[tuple[bool, float]] = []

        def wait() -> None:
            started = time.monotonic()
            ended = chain_wait(transaction_id, timeout=5.0)
            woken.append((ended, time.monotonic() - started))

        waiters = [threading.Thread(target=wait) for _ in range(3)]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.3)
        chain_wake(transaction_id)
        for waiter in waiters:
            waiter.join(5.0)
        self.assertEqual([ended for ended, _ in woken], [True] * 3)
        self.assertTrue(all(seconds < 1.5 for _, seconds in woken), woken)
        started = time.monotonic()
        self.assertTrue(chain_wait(transaction_id, timeout=2.0))
        self.assertLess(time.monotonic() - started, 0.5)

    def test_a_chain_that_does_not_end_is_waited_for_until_the_timeout(self) -> None:
        started = time.monotonic()
        self.assertFalse(chain_wait(str(uuid.uuid4()), timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - started, 0.29)
        self.assertLess(time.monotonic() - started, 1.0)
