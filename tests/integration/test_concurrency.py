"""Many clients at once, over real HTTP: each receives the transform of its own message."""

from concurrent.futures import ThreadPoolExecutor

from django.test import TransactionTestCase

from relay_app.hops import expected_final_message
from relay_app.models import Transaction

from ..support import relay_over_http, user_with_token

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


class CorrelationTests(TransactionTestCase):
    def test_two_hundred_clients_at_once_each_get_their_own_answer(self) -> None:
        messages = [f"{SAMPLES[i % len(SAMPLES)]} #{i}" for i in range(CLIENTS)]
        _, token = user_with_token("many-clients")
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = list(
                pool.map(lambda message: relay_over_http(message, token=token), messages)
            )
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
        for message, answer in zip(messages, answers, strict=True):
            self.assertEqual(answer.body["request_message"], message)
            self.assertEqual(len(answer.body["hops"]), 8)
