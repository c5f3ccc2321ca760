"""Metrics from the web server, the worker and the gRPC server, scraped after a few
transactions and read with prometheus_client's own parser: counters moved by as many."""

import urllib.request
from collections.abc import Iterable

from django.conf import settings
from django.test import TransactionTestCase
from prometheus_client.parser import text_string_to_metric_families

from ..support import user_with_token, web

TRANSACTIONS = 3


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_port(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def scrape_web(token: str | None = None) -> tuple[int, str, str]:
    """``GET /metrics`` of the web server: its status, body and content type."""
    answer = web(token, timeout=10).get("/metrics")
    return answer.status, answer.raw.decode(), answer.headers["Content-Type"]


def moved(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    labels: Iterable[tuple[str, str]] = (),
) -> float:
    key = (name, tuple(sorted(labels)))
    return after.get(key, 0.0) - before.get(key, 0.0)


class MetricsTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.staff = user_with_token("metrics-staff", staff=True)
        _, self.client_token = user_with_token("metrics-client")
        self.relayer = web(self.client_token)
        self.addCleanup(self.relayer.close)

    def web(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body, content_type = scrape_web(self.staff)
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain"))
        return samples(body)

    def test_each_process_counts_the_transactions_it_served(self) -> None:
        worker_address = settings.RELAY_WORKER_METRICS_ADDRESS.split(",")[0]
        grpc_address = settings.RELAY_GRPC_METRICS_ADDRESS.split(",")[0]
        web, worker = self.web(), samples(scrape_port(worker_address))
        grpc = samples(scrape_port(grpc_address))
        for number in range(TRANSACTIONS):
            self.assertEqual(self.relayer.relay(f"count me {number}").status, 200)
        web_after = self.web()
        worker_after = samples(scrape_port(worker_address))
        grpc_after = samples(scrape_port(grpc_address))

        succeeded = [("status", "succeeded")]
        self.assertEqual(moved(web, web_after, "relay_transactions_total", succeeded), TRANSACTIONS)
        self.assertEqual(
            moved(web, web_after, "relay_transaction_duration_seconds_count"), TRANSACTIONS
        )
        for stage in ("rest_request", "rest_response"):
            self.assertEqual(
                moved(web, web_after, "relay_hop_duration_seconds_count", [("stage", stage)]),
                TRANSACTIONS,
            )
        self.assertEqual(web_after[("relay_transactions_in_flight", ())], 0)
        for task in ("publish_request", "consume_request", "call_grpc", "publish_reply"):
            labels = [("task", f"relay.{task}"), ("outcome", "succeeded")]
            self.assertEqual(
                moved(worker, worker_after, "relay_celery_tasks_total", labels), TRANSACTIONS
            )
        for stage in ("kafka_publish_request", "grpc_server", "kafka_consume_reply"):
            self.assertEqual(
                moved(worker, worker_after, "relay_hop_duration_seconds_count", [("stage", stage)]),
                TRANSACTIONS,
            )
        self.assertEqual(
            moved(grpc, grpc_after, "relay_grpc_calls_total", [("code", "OK")]), TRANSACTIONS
        )

    def test_the_web_servers_metrics_are_for_staff_and_the_scraper(self) -> None:
        self.assertEqual(scrape_web()[0], 401)
        self.assertEqual(scrape_web(self.client_token)[0], 403)
        status, body, _ = scrape_web(settings.RELAY_METRICS_TOKEN)
        self.assertEqual(status, 200)
        self.assertIn("relay_transactions_in_flight", body)
        self.assertEqual(scrape_web("not-the-token")[0], 401)
