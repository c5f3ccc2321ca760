"""Bounded connections, through the real proxy and web server: one client cannot starve the
web server by reading slowly, sending slowly or holding many event streams; a body is read
whole with its length, chunked or not, and refused unread when too large; every refusal
under /api/ is JSON, in the test stack and in the development profile (DEBUG)."""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.test import SimpleTestCase, TransactionTestCase
from django.utils import timezone

from ops.processes import (
    WEB_KEEP_ALIVE_SECONDS,
    WEB_WORKERS,
    split_address,
    web_binds,
    web_command,
)
from project.webserver import SOCKET_TIMEOUT_SECONDS
from relay_app.api.parsers import max_body_bytes
from relay_app.hops import Stage, expected_final_message
from relay_app.services.transactions import (
    SETTLE_GRACE_SECONDS,
    HopRecord,
    hops_record,
    transaction_start,
)

from ..support import bearer, nginx_seconds, user_with_token, web
from .test_metrics import samples, scrape_web

PROXY = split_address(settings.HTTP_ADDRESS)
# The first web server behind the proxy, for a client that bypasses it.
WEB = split_address(web_binds(settings.HTTP_ADDRESS, settings.RELAY_WEB_SERVERS)[0])
# A client that reads (next to) nothing: the server's writes to it soon block.
TINY_WINDOW = 4096
# How much later than a timeout a connection may be closed, on a shared machine.
MARGIN_SECONDS = 3.0
TCP_ESTABLISHED = 1  # linux/tcp_states.h


@dataclass(frozen=True)
class Head:
    """An answer's status line and headers (names in lower case), and what came after them."""

    status: int
    headers: dict[str, str]
    rest: bytes

    def json(self, sock: socket.socket) -> object:
        """The body, read to its Content-Length."""
        body = self.rest
        while len(body) < int(self.headers["content-length"]):
            body += sock.recv(65536)
        return json.loads(body)


def connect(address: tuple[str, int], *, window: int | None = None) -> socket.socket:
    sock = socket.socket()
    if window:  # before connecting: the receive window is agreed then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
    sock.settimeout(10)
    sock.connect(address)
    return sock


def read_head(sock: socket.socket) -> Head:
    received = b""
    while b"\r\n\r\n" not in received and len(received) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return Head(int(status_line.split()[1]), headers, rest)


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A request's bytes as a client sends them (Host: the one the settings allow)."""
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 8192) -> bytes:
    """``body`` in Transfer-Encoding: chunked."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed (or reset, or answered and closed) ``sock`` within ``wait``
    seconds; what it sent is read and dropped."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b"" or closed_by_server(sock, 0.5)
    except OSError:
        return True


def established(sock: socket.socket) -> bool:
    """Whether ``sock``'s connection is open, as the kernel says (TCP_INFO's first byte, the
    state), without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_ESTABLISHED


def open_streams() -> float:
    """The web server's open event streams, as its metrics say (the scraper's token)."""
    status, body, _ = scrape_web(settings.RELAY_METRICS_TOKEN)
    assert status == 200, body[:500]
    return samples(body)[("relay_event_streams_open", ())]


def large_pending_transaction(owner: User, *, pending_seconds: float = 30.0) -> str:
    """A transaction of ``owner`` with seven hops of the longest message recorded (its event
    stream sends about a megabyte at once), pending for ``pending_seconds`` more."""
    message = "😀" * settings.RELAY_MESSAGE_MAX_LENGTH  # 12 bytes each in an event's JSON
    deadline_at = timezone.now() + timedelta(seconds=pending_seconds)
    transaction = transaction_start(message=message, owner=owner, deadline_at=deadline_at)
    text, now, hops = message, timezone.now(), []
    for stage in list(Stage)[:7]:
        text = stage.spec.apply(text)
        if stage != Stage.REST_REQUEST:
            hops.append(HopRecord(stage, text, now, now))
    hops_record(transaction_id=str(transaction.id), hops=hops)
    return str(transaction.id)


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def seconds_until(condition: Callable[[], bool], at_most: float) -> float | None:
    """Seconds until ``condition()`` held, polled; None if it did not within ``at_most``."""
    started = time.monotonic()
    while time.monotonic() - started < at_most:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    return None


class SlowReaderTests(TransactionTestCase):
    """Event streams whose reader reads nothing (the issue's "one token holder stops the
    web server")."""

    STREAMS = 100

    def setUp(self) -> None:
        self.user, self.token = user_with_token("hoarder")
        self.transaction_id = large_pending_transaction(self.user)
        self.sockets: list[socket.socket] = []
        self.addCleanup(close_all, self.sockets)

    def open_stream(self, address: tuple[str, int]) -> Head:
        """One event stream of the large transaction that is never read past its head."""
        sock = connect(address, window=TINY_WINDOW)
        self.sockets.append(sock)
        path = f"/api/transactions/{self.transaction_id}/events/"
        sock.sendall(request("GET", path, bearer(self.token)))
        return read_head(sock)

    def test_one_user_holding_many_unread_streams_starves_no_one_else(self) -> None:
        _, bystander = user_with_token("bystander")
        heads = [self.open_stream(PROXY) for _ in range(self.STREAMS)]
        statuses = [head.status for head in heads]
        self.assertEqual(set(statuses), {200, 429}, statuses)
        # A few per user in each process of the web server; beyond, 429 and when to retry.
        cap = settings.RELAY_EVENT_STREAMS_PER_USER * WEB_WORKERS
        self.assertLessEqual(statuses.count(200), cap)
        refused = next(i for i, head in enumerate(heads) if head.status == 429)
        self.assertGreater(int(heads[refused].headers["retry-after"]), 0)
        self.assertEqual(heads[refused].headers["content-type"], "application/json")
        detail = heads[refused].json(self.sockets[refused])
        self.assertIn("Too many event streams", detail["detail"])  # type: ignore[index]
        # With them held, the server answers everyone else at once.
        health = web().get("/healthz")
        self.assertEqual(health.status, 200)
        self.assertLess(health.seconds, 1.0)
        relayed = web(bystander).relay("not starved")
        self.assertEqual(relayed.status, 200, relayed.body)
        self.assertEqual(relayed.body["message"], expected_final_message("not starved"))

    def test_a_stream_whose_reader_stops_reading_is_dropped_within_seconds(self) -> None:
        # The proxy drops a client send_timeout after it last managed to write to it; data
        # arriving from the web server restarts that timer (nginx's rule). With the default
        # heartbeat, longer than send_timeout, the client is dropped send_timeout after the
        # proxy's buffers fill (tests/unit/test_deployment_files.py). The tests' streams
        # beat every 0.5 s: here the last data may arrive when the stream ends at its
        # transaction's deadline, or when the web server then closes the kept-alive
        # connection.
        pending = 8.0
        self.transaction_id = large_pending_transaction(self.user, pending_seconds=pending)
        heads = [self.open_stream(PROXY) for _ in range(3)]
        self.assertEqual([head.status for head in heads], [200] * 3)
        self.assertEqual(open_streams(), 3)
        last_data = pending + SETTLE_GRACE_SECONDS + WEB_KEEP_ALIVE_SECONDS
        at_most = last_data + nginx_seconds("send_timeout") + MARGIN_SECONDS
        # Watched without reading: a read would make room and restart the proxy's timer.
        dropped = seconds_until(lambda: not any(map(established, self.sockets)), at_most)
        self.assertIsNotNone(dropped, "the proxy holds a client that reads nothing")
        # ... and with the client's connection, the proxy closed the stream's.
        self.assertIsNotNone(seconds_until(lambda: open_streams() == 0, MARGIN_SECONDS))


class SlowRequestTests(TransactionTestCase):
    """Requests whose headers or body trickle in (the issue's "forty slow request bodies
    held the admission gate")."""

    EACH = 20  # slow headers, and as many slow bodies

    def test_forty_slow_requests_of_one_user_starve_no_one_else_and_are_cut_off(self) -> None:
        _, token = user_with_token("trickler")
        _, bystander = user_with_token("bystander")
        header_timeout = nginx_seconds("client_header_timeout")
        body_timeout = nginx_seconds("client_body_timeout")
        # For each connection, how long the server took to close it after the moment its
        # timeout counts from; None: not closed.
        closed: dict[str, float | None] = {}

        def slow_headers(name: str) -> None:
            with connect(PROXY) as sock:
                started = time.monotonic()
                sock.sendall(b"POST /api/relay/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                for line in range(60):  # a header line a second, for a minute at most
                    if closed_by_server(sock, 1.0):
                        closed[name] = time.monotonic() - started
                        return
                    with suppress(OSError):
                        sock.sendall(b"X-Slow-%d: 1\r\n" % line)
                closed[name] = None

        def slow_body(name: str) -> None:
            head = {**bearer(token), "Content-Type": "application/json", "Content-Length": "50"}
            with connect(PROXY) as sock:
                sock.sendall(request("POST", "/api/relay/", head, b'{"message": "'))
                for _ in range(10):  # a byte each time the timeout has passed, ten at most
                    last = time.monotonic()
                    if closed_by_server(sock, body_timeout + MARGIN_SECONDS):
                        closed[name] = time.monotonic() - last
                        return
                    with suppress(OSError):
                        sock.sendall(b"x")
                closed[name] = None

        threads = [
            threading.Thread(target=work, args=(f"{work.__name__} {n}",), daemon=True)
            for work in (slow_headers, slow_body)
            for n in range(self.EACH)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)  # every slow request under way
        health = web().get("/healthz")
        self.assertEqual((health.status, health.seconds < 1.0), (200, True), health.seconds)
        for n in range(3):
            relayed = web(bystander).relay(f"meanwhile {n}")
            self.assertEqual(relayed.status, 200, relayed.body)
        for thread in threads:
            thread.join(timeout=90)
        self.assertEqual(len(closed), 2 * self.EACH)
        for name, seconds in closed.items():
            timeout = header_timeout if name.startswith("slow_headers") else body_timeout
            with self.subTest(name):
                self.assertIsNotNone(seconds, "a request that trickles in is held open")
                self.assertLess(seconds or 0.0, timeout + MARGIN_SECONDS)


class BodyTests(TransactionTestCase):
    """Chunked bodies are read whole; a body larger than any message is refused, unread."""

    def setUp(self) -> None:
        _, self.token = user_with_token("sender")
        self.headers = {**bearer(self.token), "Content-Type": "application/json"}

    def post(self, address: tuple[str, int], headers: dict[str, str], body: bytes) -> Head:
        with connect(address) as sock:
            sock.sendall(request("POST", "/api/relay/", {**self.headers, **headers}))
            with suppress(OSError):  # a refusal may come, and the connection close, before
                for start in range(0, len(body), 65536):
                    sock.sendall(body[start : start + 65536])
            head = read_head(sock)
            return Head(head.status, head.headers, json.dumps(head.json(sock)).encode())

    def test_a_chunked_body_is_read_whole(self) -> None:
        body = chunked(json.dumps({"message": "sent in chunks"}).encode(), size=5)
        answer = self.post(PROXY, {"Transfer-Encoding": "chunked"}, body)
        self.assertEqual(answer.status, 200, answer.rest)
        final = json.loads(answer.rest)["message"]
        self.assertEqual(final, expected_final_message("sent in chunks"))

    def test_a_body_larger_than_any_message_is_refused_as_json_before_it_is_read(self) -> None:
        limit = max_body_bytes()
        large = json.dumps({"message": "x" * 200_000}).encode()
        cases = {
            "200 kB, chunked": ({"Transfer-Encoding": "chunked"}, chunked(large)),
            "3 MB": ({"Content-Length": str(3_000_000)}, b"x" * 3_000_000),
        }
        for case, (headers, body) in cases.items():
            with self.subTest(case):
                answer = self.post(PROXY, headers, body)
                self.assertEqual(answer.status, 413, answer.rest)
                self.assertEqual(answer.headers["content-type"], "application/json")
                self.assertIn(str(limit), json.loads(answer.rest)["detail"])
        # Refused from its Content-Length alone, the body never sent.
        started = time.monotonic()
        answer = self.post(PROXY, {"Content-Length": str(limit + 1)}, b"")
        self.assertEqual(answer.status, 413, answer.rest)
        self.assertLess(time.monotonic() - started, 1.0)

    def test_a_client_that_bypasses_the_proxy_cannot_hold_a_thread_with_a_stalled_body(
        self,
    ) -> None:
        with connect(WEB) as sock:
            headers = {**self.headers, "Content-Length": "100"}
            sock.sendall(request("POST", "/api/relay/", headers, b'{"message": "'))
            started = time.monotonic()
            head = read_head(sock)
            self.assertLess(time.monotonic() - started, SOCKET_TIMEOUT_SECONDS + MARGIN_SECONDS)
            self.assertEqual(head.status, 400)
            self.assertIn("did not arrive", head.json(sock)["detail"])  # type: ignore[index]

    def test_a_client_that_bypasses_the_proxy_gets_411_for_a_chunked_body(self) -> None:
        body = chunked(json.dumps({"message": "sent in chunks"}).encode())
        answer = self.post(WEB, {"Transfer-Encoding": "chunked"}, body)
        self.assertEqual(answer.status, 411, answer.rest)
        self.assertIn("Content-Length", json.loads(answer.rest)["detail"])


def assert_json_error(test: SimpleTestCase, answer: Head, status: int, detail: str) -> None:
    test.assertEqual(answer.status, status, answer.rest)
    test.assertEqual(answer.headers["content-type"], "application/json")
    test.assertIn(detail, json.loads(answer.rest)["detail"])


def get(address: tuple[str, int], raw: bytes) -> Head:
    """The answer to ``raw`` (a request, however malformed), its body as JSON text."""
    with connect(address) as sock:
        sock.sendall(raw)
        head = read_head(sock)
        return Head(head.status, head.headers, json.dumps(head.json(sock)).encode())


class JsonErrorTests(TransactionTestCase):
    """Whoever refuses a request under /api/, the proxy or Django, answers JSON."""

    def test_refusals_under_api_are_json_in_the_test_stack(self) -> None:
        _, token = user_with_token("lost")
        signed = bearer(token)
        cases = [
            (request("GET", "/api/nope/", signed), 404, "Not found: /api/nope/"),
            (request("GET", "/api/transactions/not-a-uuid/", signed), 404, "Not found"),
            (b"GET /api/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400, "Bad Request"),
            (b"NOT HTTP AT ALL\r\n\r\n", 400, "could not be read"),
            (request("GET", "/api/" + "x" * 20_000, signed), 414, "too long"),
            (request("GET", "/api/", {"X-Large": "x" * 20_000}), 431, "too large"),
        ]
        for raw, status, detail in cases:
            with self.subTest(raw[:40]):
                assert_json_error(self, get(PROXY, raw), status, detail)


class DevelopmentProfileErrorTests(SimpleTestCase):
    """The development profile's web server, DEBUG on: its 400 and 404 under /api/ are JSON
    too, not Django's debug pages (the web server alone: these need no dependency)."""

    def test_refusals_under_api_are_json_with_debug_on(self) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            address = ("127.0.0.1", free.getsockname()[1])
        ours = ("DJANGO_", "RELAY_", "OTEL_", "KAFKA_", "REDIS_", "GRPC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)} | {
            "DJANGO_SETTINGS_MODULE": "project.settings.development",
            "RELAY_VAR_DIR": str(Path(settings.RELAY_VAR_DIR) / "development-profile"),
            # Traced as the profile is (the tracing middleware in place), to nowhere.
            "OTEL_TRACES_EXPORTER": "console",
        }
        command = [
            sys.executable if part == "python" else part
            for part in web_command(f"{address[0]}:{address[1]}")
        ]
        server = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(server.wait, 15)
        self.addCleanup(server.terminate)
        self.assertIsNotNone(
            seconds_until(lambda: listening(address), 30), "gunicorn did not start"
        )
        cases = [
            (request("GET", "/api/nope/", {}), 404, "Not found: /api/nope/"),
            (request("GET", "/api/transactions/not-a-uuid/", {}), 404, "Not found"),
            (b"GET /api/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400, "Bad Request"),
        ]
        for raw, status, detail in cases:
            with self.subTest(raw[:40]):
                assert_json_error(self, get(address, raw), status, detail)


def listening(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(address) == 0
