"""Many clients at once, over real HTTP: each receives the transform of its own message.

More at once than the stack can finish within the deadline: some are refused (503 with
Retry-After, nothing recorded) and, as clients should, try again when told.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.integrations.relay_api import Answer
from relay_app.models import Transaction

from ..support import user_with_token, web
from .test_metrics import moved, samples, scrape_web

SAMPLES = [
    "hello world",
    "café crème brûlée, naïve façade",
    "Καλημέρα κόσμε",
    "你好，世界",  # noqa: RUF001 - the full-width comma is the point
    "こんにちは世界",
    "안녕하세요",
    "emoji 🚀🔥👩‍💻 and flags 🇬🇷",
    "שלום עולם",
    "مرحبا بالعالم",
    "she said \"hi\" and 'bye'",
    "back\\slash \\n not a newline",
    "line one\nline two\r\nline three\ttabbed",
    "straße ǆ ﬁ ŉ",  # uppercasing changes the length of some of these
    "  leading and trailing spaces  ",
    "<script>alert(1)</script> & {json: true}",
]
CLIENTS = 200
# Each client tries at most this often; every refusal's Retry-After is at most the deadline.
ATTEMPTS = 10


def relay_until_taken_on(message: str, token: str) -> tuple[Answer, int]:
    """The answer to ``message``, trying again as a refusal asks; and how often it was refused."""
    for refused in range(ATTEMPTS):
        answer = web(token).relay(message)
        if answer.status != 503 or "Retry-After" not in answer.headers:
            return answer, refused
        time.sleep(int(answer.headers["Retry-After"]))
    return answer, ATTEMPTS


class CorrelationTests(TransactionTestCase):
    def test_two_hundred_clients_at_once_each_get_their_own_answer(self) -> None:
        messages = [f"{SAMPLES[i % len(SAMPLES)]} #{i}" for i in range(CLIENTS)]
        _, token = user_with_token("many-clients")
        metrics = samples(scrape_web(settings.RELAY_METRICS_TOKEN)[1])
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            outcomes = list(
                pool.map(lambda message: relay_until_taken_on(message, token), messages)
            )
        metrics_after = samples(scrape_web(settings.RELAY_METRICS_TOKEN)[1])
        answers = [answer for answer, _ in outcomes]
        failures = [
            (message, answer.status, answer.body)
            for message, answer in zip(messages, answers, strict=True)
            if answer.status != 200 or answer.body["message"] != expected_final_message(message)
        ]
        self.assertEqual(failures, [], f"{len(failures)} of {CLIENTS} clients got a wrong answer")
        ids = {answer.body["transaction_id"] for answer in answers}
        self.assertEqual(len(ids), CLIENTS)
        recorded = dict(Transaction.objects.filter(id__in=ids).values_list("message", "status"))
        self.assertEqual(recorded, dict.fromkeys(messages, Transaction.Status.SUCCEEDED))
        # A refusal recorded nothing: one transaction per client, however often it was refused.
        self.assertEqual(
            Transaction.objects.filter(owner__username="many-clients").count(), CLIENTS
        )
        for message, answer in zip(messages, answers, strict=True):
            self.assertEqual(answer.body["request_message"], message)
            self.assertEqual(len(answer.body["hops"]), 8)
        # The web server counted each refusal and its thread's CPU, no admitted relay's, and
        # not the pause a refusal was held for (a second at least).
        refusals = sum(refused for _, refused in outcomes)
        at_capacity = [("reason", "at_capacity")]
        self.assertEqual(
            moved(metrics, metrics_after, "relay_refused_requests_total", at_capacity), refusals
        )
        cpu = moved(metrics, metrics_after, "relay_refusal_cpu_seconds_total")
        self.assertEqual(cpu > 0, refusals > 0, (cpu, refusals))
        self.assertLess(cpu, 0.05 * refusals + 0.001, refusals)
