"""Helpers for tests that go through the real services."""

import re
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.contrib.auth.models import User
from kafka import KafkaConsumer, TopicPartition
from rest_framework.test import APIClient

from ops.kafka_tools import read_all
from ops.stack import lines_of
from relay_app.hops import HOPS, Stage
from relay_app.integrations.kafka_records import Record, client_options
from relay_app.integrations.relay_api import RelayClient
from relay_app.services.tokens import api_token_create

if TYPE_CHECKING:
    from ops.stack import Stack

ORIGINAL_LINE = re.compile(
    r"^(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) (?P<text>.*?)"
    r"(?:\ttransaction_id=(?P<id>\S+))?$"
)


def nginx_seconds(directive: str) -> float:
    """One of the proxy's timeouts (ops/nginx.conf.template), in seconds."""
    template = (Path(settings.BASE_DIR) / "ops" / "nginx.conf.template").read_text()
    match = re.search(rf"^\s*{directive} (\d+)s;", template, re.MULTILINE)
    assert match, directive
    return float(match[1])


def transaction_log_lines(
    transaction_id: str, *, expected: int = 12, wait: float = 5.0
) -> list[str]:
    """The original example's texts (without timestamp) logged for one transaction, in file
    order."""
    lines = lines_of(
        transaction_id, path=settings.RELAY_TRANSACTION_LOG, expected=expected, wait=wait
    )
    return [line.split(" ", 2)[2] for line in lines]


def expected_log_lines(message: str) -> list[str]:
    """The original example's twelve lines for ``message``: eight hops, then the closing banner."""
    lines, text = [], message
    for stage in Stage:
        text = HOPS[stage].apply(text)
        lines.append(f"{HOPS[stage].log_label}{text} ")
    banner = "#" * 92
    return [*lines, banner, "End of transaction with Message:", text.upper(), banner]


def records_for(topic: str, transaction_id: str) -> list[Record]:
    """Every record on ``topic`` keyed by ``transaction_id``, read by a consumer of its own."""
    return [record for record in read_all([topic]) if record.key == transaction_id]


def running_stack() -> "Stack":
    """The stack the test runner started (tests that stop services need it)."""
    from .runner import StackTestRunner

    if StackTestRunner.stack is None:
        raise unittest.SkipTest("needs the services started by tests.runner.StackTestRunner")
    return StackTestRunner.stack


@contextmanager
def service_stopped(name: str) -> Iterator[None]:
    """Stop one service of the running stack for the block, then start it again."""
    stack = running_stack()
    stack.stop(name)
    try:
        yield
    finally:
        stack.start(name)


def user_with_token(username: str, *, staff: bool = False) -> tuple[User, str]:
    """A user and a new API token of theirs, as ``manage.py create_api_token`` makes them."""
    user = User.objects.create_user(username, is_staff=staff)
    return user, api_token_create(user=user, name="tests").token


def bearer(token: str) -> dict[str, str]:
    """The header that signs a request with ``token``."""
    return {"Authorization": f"Bearer {token}"}


def signed_in_client(token: str) -> APIClient:
    """An API client that sends ``token`` with every request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def web(token: str | None = None, *, timeout: float = 30.0) -> RelayClient:
    """A client of the web server the runner started, over real HTTP, signed with ``token``
    (None: anonymous). One per thread: a client is not shared between threads."""
    return RelayClient(f"http://{settings.HTTP_ADDRESS}", token=token, timeout=timeout)


def task_results_stored() -> int:
    """How many Celery task results Redis holds: grows by one for every task that ran."""
    client = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND, socket_timeout=5)
    try:
        return sum(1 for _ in client.scan_iter("celery-task-meta-*", count=1000))
    finally:
        client.close()


def kafka_end_offsets() -> dict[tuple[str, int], int]:
    """The end offset of every partition of the relay's topics."""
    consumer = KafkaConsumer(**client_options(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in (settings.KAFKA_REQUEST_TOPIC, settings.KAFKA_REPLY_TOPIC)
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        return {
            (tp.topic, tp.partition): end for tp, end in consumer.end_offsets(partitions).items()
        }
    finally:
        consumer.close()
