"""The secure profile (``make up-secure``) on a stack of its own: production settings, a
transaction end to end with TLS and credentials on every hop, and each service refusing
plaintext, strangers and the other services' identities.

The stack is started and stopped as a user does, with ``python -m ops.stack`` under
``project.settings.secure``, on ports of its own; the test then speaks to each service
directly, once as the relay does (which must work) and once as an intruder would.
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import grpc
import redis
import requests
from confluent_kafka import Consumer
from django.conf import settings
from django.test import SimpleTestCase
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from relay.v1 import relay_pb2, relay_pb2_grpc

from ops import tls
from ops.client import issue_token
from project.settings.environment import read_env_file
from relay_app.auth import DEVELOPMENT_PASSWORD, DEVELOPMENT_USERNAME
from relay_app.integrations.relay_api import RelayClient
from relay_app.integrations.relay_rpc import SERVICE_NAME

from ..support import expected_log_lines

VAR = Path(settings.RELAY_VAR_DIR) / "secure"
TLS = VAR / "tls"
KAFKA, REDIS, GRPC, WEB = "127.0.0.1:29092", "127.0.0.1:26379", "127.0.0.1:25051", "127.0.0.1:28000"
ZIPKIN = "127.0.0.1:29411"
# Zipkin itself, behind the proxy on ZIPKIN (the port after it, on loopback).
ZIPKIN_SERVER = "127.0.0.1:29412"
METRICS_GRPC = "127.0.0.1:29474"
SECURE_ENV = {
    "DJANGO_SETTINGS_MODULE": "project.settings.secure",
    "RELAY_VAR_DIR": str(VAR),
    "KAFKA_ADDRESS": KAFKA,
    "REDIS_URL": f"rediss://{REDIS}/0",
    "GRPC_ADDRESS": GRPC,
    "HTTP_ADDRESS": WEB,
    "RELAY_WORKER_METRICS_ADDRESS": "127.0.0.1:29464",
    "RELAY_GRPC_METRICS_ADDRESS": METRICS_GRPC,
    "ZIPKIN_ADDRESS": ZIPKIN,
    "FLOWER_ADDRESS": "127.0.0.1:25555",
    "RELAY_TRANSACTION_LOG_CONSOLE": "false",
}
# Settings of the suite's own (test) stack, which must not leak into the secure one.
OURS = ("DJANGO_", "RELAY_", "KAFKA_", "REDIS_", "GRPC_", "OTEL_", "FLOWER_")


def secure_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(OURS)} | SECURE_ENV


def stack(command: str) -> subprocess.CompletedProcess[str]:
    """``python -m ops.stack COMMAND`` for the secure profile, as ``make`` runs it."""
    env = secure_env()
    return subprocess.run(
        [sys.executable, "-m", "ops.stack", command],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class SecureProfileTests(SimpleTestCase):
    secrets: ClassVar[dict[str, str]]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        shutil.rmtree(VAR, ignore_errors=True)
        cls.secrets = read_env_file(tls.ensure(TLS) / "secrets.env")
        started = stack("up")
        if started.returncode != 0:
            stack("down")
            raise AssertionError(f"the secure stack did not start:\n{started.stdout[-3000:]}")

    @classmethod
    def tearDownClass(cls) -> None:
        stack("down")
        super().tearDownClass()

    # --- as the relay: everything works ------------------------------------------------------

    def test_make_demo_relays_hello_world_through_every_hop_over_tls(self) -> None:
        demo = stack("demo")
        self.assertEqual(demo.returncode, 0, demo.stdout[-3000:])
        self.assertIn(f"POST https://{WEB}/api/relay/", demo.stdout)
        lines = [line[20:] for line in demo.stdout.splitlines() if line[:4].isdigit()]
        self.assertEqual(lines, expected_log_lines("hello world"))
        # Its trace reached the stack's Zipkin through the proxy, over TLS with each process's
        # certificate, from all three kinds of process.
        deadline, services = time.monotonic() + 10, set[str]()
        while services != {"relay-web", "relay-worker", "relay-grpc"}:
            if time.monotonic() > deadline:
                self.fail(f"Zipkin holds no trace from every process: {services}")
            time.sleep(0.2)
            traces = requests.get(f"http://{ZIPKIN_SERVER}/api/v2/traces?limit=5", timeout=5).json()
            services = max(
                ({span["localEndpoint"]["serviceName"] for span in trace} for trace in traces),
                key=len,
                default=set(),
            )

    # --- Kafka: SASL_SSL only -----------------------------------------------------------------

    def kafka_admin(self, **options: Any) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=KAFKA, request_timeout_ms=3000, bootstrap_timeout_ms=3000, **options
        )

    def test_confluent_kafka_authenticates_with_scram_as_docs_show(self) -> None:
        # librdkafka >= 2.6.1 (confluent-kafka bundles one): Kafka 4 accepts its SCRAM, where
        # Debian's kcat (librdkafka 2.0.2) is refused (docs/operations.md, "Kafka clients").
        consumer = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": "docs",
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(TLS / "ca.pem"),
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "relay",
                "sasl.password": self.secrets["KAFKA_RELAY_PASSWORD"],
            }
        )
        try:
            topics = consumer.list_topics(timeout=15).topics
        finally:
            consumer.close()
        self.assertIn(settings.KAFKA_REQUEST_TOPIC, topics)

    def test_kafka_takes_the_relays_credentials_over_tls_and_refuses_the_rest(self) -> None:
        secure = {
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(TLS / "ca.pem"),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "relay",
        }
        admin = self.kafka_admin(**secure, sasl_plain_password=self.secrets["KAFKA_RELAY_PASSWORD"])
        self.assertIn(settings.KAFKA_REQUEST_TOPIC, admin.list_topics())
        admin.close()
        refused = {
            "a plaintext client": {},
            "a wrong password": {**secure, "sasl_plain_password": "not-the-password"},
            "TLS without credentials": {
                "security_protocol": "SSL",
                "ssl_cafile": secure["ssl_cafile"],
            },
        }
        for case, options in refused.items():
            # The client reports each refused attempt in its log (captured here, not printed).
            with self.subTest(case), self.assertRaises(KafkaError), self.assertLogs("kafka"):
                self.kafka_admin(**options).list_topics()

    def test_kafka_allows_the_relays_user_its_topics_alone(self) -> None:
        relay = {
            "bootstrap_servers": KAFKA,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(TLS / "ca.pem"),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "relay",
            "sasl_plain_password": self.secrets["KAFKA_RELAY_PASSWORD"],
        }
        producer = KafkaProducer(**relay, max_block_ms=5000)
        try:
            producer.send(settings.KAFKA_REQUEST_TOPIC, b"allowed").get(timeout=10)
            # The client also logs the refusal (captured here, not printed).
            with self.assertRaises(TopicAuthorizationFailedError), self.assertLogs("kafka"):
                producer.send("not-the-relays-topic", b"refused").get(timeout=10)
        finally:
            producer.close(timeout=5)

    # --- Redis: TLS and an ACL user per role only ---------------------------------------------

    def redis_client(self, **options: Any) -> redis.Redis:
        host, port = split(REDIS)
        return redis.Redis(host, port, socket_timeout=3, socket_connect_timeout=3, **options)

    def test_redis_takes_tls_with_a_roles_user_and_refuses_the_rest(self) -> None:
        tls_options = {
            "ssl": True,
            "ssl_ca_certs": str(TLS / "ca.pem"),
            "ssl_cert_reqs": "required",
        }
        password = self.secrets["REDIS_WEB_PASSWORD"]
        web = self.redis_client(**tls_options, username="web", password=password)
        self.assertTrue(web.ping())
        with self.subTest("a plaintext client"), self.assertRaises(redis.ConnectionError):
            self.redis_client(username="web", password=password).ping()
        with self.subTest("TLS without the password"), self.assertRaises(redis.AuthenticationError):
            self.redis_client(**tls_options).ping()
        with self.subTest("Redis's default user"), self.assertRaises(redis.AuthenticationError):
            self.redis_client(**tls_options, password=password).ping()
        with self.subTest("a server it cannot verify"), self.assertRaises(redis.ConnectionError):
            other_ca = TLS.parent / "other-ca.pem"
            other_ca.write_bytes(tls.pem(tls.certificate_authority("another CA")[0]))
            self.redis_client(**tls_options | {"ssl_ca_certs": str(other_ca)}).ping()
        # A role may do what its ACL says, nothing else.
        refused: dict[str, Callable[[], Any]] = {
            "FLUSHALL": web.flushall,
            "CONFIG": lambda: web.config_get("*"),
            "a key outside its patterns": lambda: web.set("not-the-relays-key", "1"),
        }
        for case, command in refused.items():
            with self.subTest(case), self.assertRaises(redis.exceptions.NoPermissionError):
                command()
        web.close()

    def test_each_redis_role_uses_its_own_channels_alone(self) -> None:
        def role(user: str) -> redis.Redis:
            password = self.secrets[f"REDIS_{user.upper()}_PASSWORD"]
            return self.redis_client(
                ssl=True, ssl_ca_certs=str(TLS / "ca.pem"), username=user, password=password
            )

        def subscribed(client: redis.Redis, pattern: bool, channel: str) -> bool:
            """Whether Redis lets ``client`` (P)SUBSCRIBE to ``channel``."""
            with client.pubsub() as pubsub:  # type: ignore[no-untyped-call]
                (pubsub.psubscribe if pattern else pubsub.subscribe)(channel)
                try:
                    return pubsub.get_message(timeout=3) is not None
                except redis.exceptions.NoPermissionError:
                    return False

        web, worker, monitor = role("web"), role("worker"), role("monitor")
        notice = "relay:transaction:00000000-0000-0000-0000-000000000000"
        # What each role does, as kombu, Celery's results and the notices spell it.
        self.assertTrue(subscribed(web, False, notice))
        self.assertTrue(subscribed(web, False, "celery-task-meta-x"))
        self.assertTrue(subscribed(worker, True, "/0.celery.pidbox"))
        self.assertTrue(subscribed(monitor, True, "/0.celeryev/*"))
        self.assertEqual(worker.publish(notice, "1"), 0)
        # What none of them does.
        for user, client in {"web": web, "worker": worker, "monitor": monitor}.items():
            with self.subTest(user):
                self.assertFalse(subscribed(client, True, "*"))
                self.assertFalse(subscribed(client, False, "not-the-relays-channel"))
                with self.assertRaises(redis.exceptions.NoPermissionError):
                    client.publish("not-the-relays-channel", "1")
        # Flower and readiness read neither a transaction's notices nor its results.
        self.assertFalse(subscribed(monitor, False, notice))
        self.assertFalse(subscribed(monitor, True, "relay:transaction:*"))
        self.assertFalse(subscribed(monitor, False, "celery-task-meta-x"))
        for client in (web, worker, monitor):
            client.close()

    # --- gRPC: mutual TLS only, the workers' certificate for the relay ------------------------

    def credentials(self, service: str) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            (TLS / "ca.pem").read_bytes(),
            (TLS / f"{service}-key.pem").read_bytes(),
            (TLS / f"{service}.pem").read_bytes(),
        )

    def health(self, channel: grpc.Channel) -> Any:
        with channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=3
            )

    def test_grpc_takes_a_client_certificate_of_its_ca_and_refuses_the_rest(self) -> None:
        ca = (TLS / "ca.pem").read_bytes()
        stranger = tls.issue(tls.certificate_authority("another CA"), "worker", [tls.CLIENT])
        channels = {
            "no client certificate": grpc.ssl_channel_credentials(ca),
            "a certificate of another CA": grpc.ssl_channel_credentials(
                ca, tls.key_pem(stranger[1]), tls.pem(stranger[0])
            ),
        }
        serving = self.health(grpc.secure_channel(GRPC, self.credentials("worker")))
        self.assertEqual(serving.status, health_pb2.HealthCheckResponse.SERVING)
        for case, credentials in channels.items():
            with self.subTest(case), self.assertRaises(grpc.RpcError) as raised:
                self.health(grpc.secure_channel(GRPC, credentials))
            self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAVAILABLE)
        with self.subTest("a plaintext client"), self.assertRaises(grpc.RpcError):
            self.health(grpc.insecure_channel(GRPC))

    def test_grpc_relays_for_the_workers_certificate_alone_and_serves_no_reflection(self) -> None:
        request = relay_pb2.ProcessRequest()
        for service in ("web", "probe", "scraper"):
            with (
                self.subTest(service),
                grpc.secure_channel(GRPC, self.credentials(service)) as channel,
                self.assertRaises(grpc.RpcError) as raised,
            ):
                relay_pb2_grpc.RelayStub(channel).Process(request, timeout=3)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
            self.assertIn(f"certificate of {service}", str(raised.exception.details()))
        with grpc.secure_channel(GRPC, self.credentials("worker")) as channel:
            # The worker's own certificate reaches the servicer, which then refuses a request
            # without a capability, as ever.
            with self.assertRaises(grpc.RpcError) as raised:
                relay_pb2_grpc.RelayStub(channel).Process(request, timeout=3)
            self.assertNotIn("certificate", str(raised.exception.details()))
            ask = reflection_pb2.ServerReflectionRequest(list_services="")
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            with self.assertRaises(grpc.RpcError) as raised:
                list(stub.ServerReflectionInfo(iter([ask]), timeout=3))
            self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    # --- the web server: HTTPS only -----------------------------------------------------------

    def test_the_web_server_speaks_https_only(self) -> None:
        host, port = split(WEB)
        context = ssl.create_default_context(cafile=str(TLS / "ca.pem"))
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as secure,
        ):
            secure.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            self.assertTrue(secure.recv(100).startswith(b"HTTP/1.1 200"))
        # nginx terminates TLS and tells the web server so: the links it builds are https.
        token = issue_token("secure-test", name="test_secure_profile", env=secure_env())
        with RelayClient(
            f"https://{WEB}", token=token, ca_file=str(TLS / "ca.pem"), timeout=5
        ) as client:
            links = client.get("/api/", headers={"Accept": "application/json"}).body
        self.assertEqual(links["relay"], f"https://{WEB}/api/relay/")
        with socket.create_connection((host, port), timeout=5) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            try:
                answer = plain.recv(100)
            except ConnectionResetError:
                answer = b""
        self.assertFalse(answer.startswith(b"HTTP/1.1 200"), answer)

    # --- metrics: mutual TLS, a scraper's certificate ----------------------------------------

    def test_the_workers_and_grpc_servers_metrics_take_a_scrapers_certificate_alone(
        self,
    ) -> None:
        ca = str(TLS / "ca.pem")
        scraper = (str(TLS / "scraper.pem"), str(TLS / "scraper-key.pem"))
        for address in (SECURE_ENV["RELAY_WORKER_METRICS_ADDRESS"], METRICS_GRPC):
            with self.subTest(address):
                url = f"https://{address}/metrics"
                answer = requests.get(url, verify=ca, cert=scraper, timeout=5)
                self.assertEqual(answer.status_code, 200)
                with self.assertRaises(requests.exceptions.RequestException):
                    requests.get(url, verify=ca, timeout=5)  # no certificate
                with self.assertRaises(requests.exceptions.RequestException):
                    requests.get(f"http://{address}/metrics", timeout=5)  # plaintext

    # --- traces: over TLS, spans with a certificate of the relay's, the viewer for staff ------

    def test_zipkin_takes_spans_from_the_relays_certificates_and_shows_them_to_staff(
        self,
    ) -> None:
        ca, spans = str(TLS / "ca.pem"), f"https://{ZIPKIN}/api/v2/spans"

        def span(service: str) -> list[dict[str, Any]]:
            trace_id = os.urandom(16).hex()
            return [
                {
                    "traceId": trace_id,
                    "id": trace_id[:16],
                    "name": "probe",
                    "timestamp": int(time.time() * 1e6),
                    "duration": 1,
                    "localEndpoint": {"serviceName": service},
                }
            ]

        def certificate(service: str) -> tuple[str, str]:
            return str(TLS / f"{service}.pem"), str(TLS / f"{service}-key.pem")

        for service in ("web", "worker", "grpc"):
            with self.subTest(service):
                sent = requests.post(
                    spans,
                    json=span(f"probe-{service}"),
                    verify=ca,
                    cert=certificate(service),
                    timeout=5,
                )
                self.assertEqual(sent.status_code, 202, sent.text)
        refused: dict[str, tuple[str, str] | None] = {
            "no certificate": None,
            "the scraper's certificate": certificate("scraper"),
            "the probe's certificate": certificate("probe"),
        }
        for case, cert in refused.items():
            with self.subTest(case):
                answer = requests.post(
                    spans, json=span("intruder"), verify=ca, cert=cert, timeout=5
                )
                self.assertEqual(answer.status_code, 403, answer.text)
        with self.subTest("plaintext"):
            answer = requests.post(
                f"http://{ZIPKIN}/api/v2/spans", json=span("intruder"), timeout=5
            )
            self.assertEqual(answer.status_code, 400)
        services = requests.get(f"http://{ZIPKIN_SERVER}/api/v2/services", timeout=5).json()
        self.assertIn("probe-worker", services)
        self.assertNotIn("intruder", services)
        # The viewer and Zipkin's API: staff only, as Flower.
        api = f"https://{ZIPKIN}/api/v2/services"
        signed_out = requests.get(api, verify=ca, timeout=5, allow_redirects=False)
        self.assertEqual(signed_out.status_code, 302)
        self.assertTrue(signed_out.headers["Location"].endswith("/admin/login/"))
        env = secure_env()
        user = issue_token("secure-zipkin-user", name="test_secure_profile", env=env)
        staff = issue_token("secure-zipkin-staff", name="test_secure_profile", env=env)
        made_staff = subprocess.run(
            [
                *(sys.executable, "manage.py", "shell", "-c"),
                "from django.contrib.auth.models import User;"
                " User.objects.filter(username='secure-zipkin-staff').update(is_staff=True)",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(made_staff.returncode, 0, made_staff.stderr)
        for token, status in ((user, 403), (staff, 200)):
            answer = requests.get(
                api, headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=5
            )
            self.assertEqual(answer.status_code, status, answer.text)
        self.assertIn("probe-worker", answer.json())

    # --- production settings --------------------------------------------------------------

    def test_production_settings_no_debug_page_no_development_login_no_anonymous_relay(
        self,
    ) -> None:
        ca = str(TLS / "ca.pem")
        missing = requests.get(f"https://{WEB}/no-such-page/", verify=ca, timeout=5)
        self.assertEqual(missing.status_code, 404)
        self.assertNotIn("URLconf", missing.text)  # Django's debug page lists its patterns
        with requests.Session() as browser:
            login = f"https://{WEB}/admin/login/"
            browser.get(login, verify=ca, timeout=5)
            answer = browser.post(
                login,
                data={
                    "username": DEVELOPMENT_USERNAME,
                    "password": DEVELOPMENT_PASSWORD,
                    "csrfmiddlewaretoken": browser.cookies.get("csrftoken", ""),
                    "next": "/admin/",
                },
                headers={"Referer": login},
                verify=ca,
                timeout=5,
                allow_redirects=False,
            )
            self.assertNotEqual(answer.status_code, 302, "the development login was taken")
        with RelayClient(f"https://{WEB}", ca_file=ca, timeout=5) as anonymous:
            refused = anonymous.relay("hello world")
        self.assertIn(refused.status, (401, 403))

    def test_every_log_file_is_its_owners_alone(self) -> None:
        files = [path for path in (VAR / "log").rglob("*") if path.is_file()]
        self.assertTrue(files)
        for path in files:
            with self.subTest(path.name):
                self.assertEqual(path.stat().st_mode & 0o077, 0, oct(path.stat().st_mode))
