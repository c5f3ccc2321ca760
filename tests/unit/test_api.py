"""The API's rules that need no running service: who may read its description, what a
browser is offered, anonymous relaying turned off, tokens kept as hashes, the error mapping,
and the transaction's representation (through the live stack: tests/integration/test_access.py)."""

import hashlib
import json
from datetime import timedelta
from io import StringIO
from unittest import mock

from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponseBase
from django.test import SimpleTestCase, TestCase, override_settings, tag
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import ModelSerializer
from rest_framework.test import APIClient

from relay_app.api.errors import exception_handler
from relay_app.api.serializers import HopSerializer, TransactionSerializer
from relay_app.errors import DeadlineExceeded, DependencyUnavailable, IdempotencyConflict
from relay_app.hops import Stage
from relay_app.models import ApiToken, Hop, Transaction

from ..support import signed_in_client, user_with_token

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class WhoMayReadTheApiTests(TestCase):
    def test_the_api_root_schema_and_docs_are_for_signed_in_users(self) -> None:
        _, token = user_with_token("reader")
        for path in ("/api/", "/api/schema/", "/api/docs/"):
            with self.subTest(path):
                self.assertEqual(APIClient().get(path).status_code, 401)
                self.assertEqual(signed_in_client(token).get(path).status_code, 200)

    @override_settings(RELAY_PUBLIC_API_DOCS=True)
    def test_where_public_anyone_reads_them(self) -> None:
        for path in ("/api/", "/api/schema/", "/api/docs/"):
            with self.subTest(path):
                self.assertEqual(APIClient().get(path).status_code, 200)

    def test_the_browsable_api_is_for_people_signed_in(self) -> None:
        anonymous = APIClient().get("/api/transactions/", headers=BROWSER)
        self.assertEqual(anonymous.status_code, 401)
        self.assertEqual(anonymous["Content-Type"], "application/json")
        User.objects.create_user("person", password="a-persons-password-1")
        session = APIClient()
        session.login(request=HttpRequest(), username="person", password="a-persons-password-1")
        page = session.get("/api/transactions/", headers=BROWSER)
        self.assertEqual(page.status_code, 200)
        self.assertTrue(page["Content-Type"].startswith("text/html"))

    @override_settings(RELAY_ALLOW_ANONYMOUS_RELAY=True)
    def test_anonymous_clients_may_not_relay_asynchronously_even_where_allowed(self) -> None:
        with mock.patch("relay_app.api.views.relay_message_async") as relay:
            refused = APIClient().post(
                "/api/relay/",
                {"message": "hi"},
                format="json",
                headers={"Prefer": "respond-async"},
            )
        self.assertEqual(refused.status_code, 401)
        self.assertIn("A token is needed to follow an asynchronous relay", refused.json()["detail"])
        self.assertEqual(refused["WWW-Authenticate"], 'Bearer realm="relay"')
        relay.assert_not_called()
        self.assertFalse(Transaction.objects.exists())
        # Anonymous blocking relays still go through (the whole relay: test_access.py).
        with mock.patch("relay_app.api.views.relay_message") as relay:
            relay.side_effect = RuntimeError("stop here")
            with self.assertRaises(RuntimeError), self.assertLogs("django.request", "ERROR"):
                APIClient().post("/api/relay/", {"message": "hi"}, format="json")
        relay.assert_called_once()

    def test_unknown_fields_are_named_in_the_400(self) -> None:
        _, token = user_with_token("typist")
        answer = signed_in_client(token).post("/api/relay/", {"mesage": "y"}, format="json")
        self.assertEqual(answer.status_code, 400)
        self.assertEqual(answer.json()["detail"], "Invalid request: see errors.")
        self.assertEqual(
            answer.json()["errors"],
            {
                "message": ["This field is required."],
                "mesage": ["Unknown field (did you mean 'message'?): only 'message' is accepted."],
            },
        )
        self.assertFalse(Transaction.objects.exists())

    def test_anonymous_clients_relay_nothing_unless_allowed(self) -> None:
        client = APIClient()
        relayed = client.post("/api/relay/", {"message": "hi"}, format="json")
        self.assertEqual(relayed.status_code, 401)
        self.assertEqual(relayed["WWW-Authenticate"], 'Bearer realm="relay"')
        self.assertEqual(client.get("/communication/restKafkaGRPC/").status_code, 401)
        self.assertFalse(Transaction.objects.exists())


class OriginalEndpointCrossSiteTests(TestCase):
    """The original example's GET relays: a session rides it only from the relay's own pages."""

    def setUp(self) -> None:
        self.user = User.objects.create_user("browser", password="a-password-of-theirs-1")
        self.client.force_login(self.user)
        succeeded = mock.Mock(status=Transaction.Status.SUCCEEDED, final_message="HELLO")
        patcher = mock.patch("relay_app.api.views.relay_message", return_value=succeeded)
        self.relay = patcher.start()
        self.addCleanup(patcher.stop)

    def get(self, **headers: str) -> int:
        return int(self.client.get("/communication/restKafkaGRPC/", headers=headers).status_code)

    def test_a_cross_site_request_with_a_session_relays_nothing(self) -> None:
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Referer": "https://elsewhere.example/page"},
            {},  # no header to tell where it came from: refused too
        ):
            with self.subTest(headers):
                self.assertEqual(self.get(**headers), 403)
        self.relay.assert_not_called()

    def test_the_relays_own_pages_and_a_typed_url_relay_with_a_session(self) -> None:
        for headers in (
            {"Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
            {"Referer": "http://testserver/api/"},
        ):
            with self.subTest(headers):
                self.assertEqual(self.get(**headers), 200)

    def test_a_token_relays_from_anywhere(self) -> None:
        _, token = user_with_token("scripted")
        client = signed_in_client(token)
        answer = client.get(
            "/communication/restKafkaGRPC/", headers={"Sec-Fetch-Site": "cross-site"}
        )
        self.assertEqual(answer.status_code, 200)


@tag("postgres")
class ApiTokenTests(TestCase):
    def test_tokens_are_stored_only_as_their_hash(self) -> None:
        out = StringIO()
        call_command("create_api_token", "bob", stdout=out)
        token = out.getvalue().splitlines()[-1]
        record = ApiToken.objects.get()
        self.assertEqual(record.digest, hashlib.sha256(token.encode()).hexdigest())
        self.assertTrue(token.startswith(record.prefix))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")  # noqa: S608 - our table
            stored = json.dumps(cursor.fetchall(), default=str)
        self.assertNotIn(token, stored)
        self.assertNotIn(token[len(record.prefix) :], stored)

    def test_a_name_the_user_model_refuses_is_a_clear_error(self) -> None:
        with self.assertRaisesMessage(CommandError, "cannot create user"):
            call_command("create_api_token", "no spaces allowed", stdout=StringIO())
        self.assertFalse(User.objects.exists())


class ErrorMappingTests(SimpleTestCase):
    """Every error a client meets is JSON with a reason, the relay's own with their status,
    and none names a host, port or password."""

    def answer(self, exc: Exception) -> tuple[int, dict[str, object]]:
        response = exception_handler(exc, {})
        assert response is not None
        return response.status_code, dict(response.data)

    def test_the_relays_errors_answer_their_own_status(self) -> None:
        kafka = DependencyUnavailable("Kafka", "no answer", internal="10.0.0.7:9092 refused")
        self.assertEqual(self.answer(kafka), (503, {"detail": "Kafka is unavailable: no answer"}))
        deadline = DeadlineExceeded(Stage.GRPC_SERVER)
        self.assertEqual(self.answer(deadline)[0], 504)
        self.assertEqual(self.answer(IdempotencyConflict("k"))[0], 422)

    def test_a_database_or_redis_that_is_down_is_a_503_naming_neither_host_nor_port(self) -> None:
        for exc, reason in (
            (DatabaseError('could not connect to server at "db.internal" port 5432'), "database"),
            (RedisConnectionError("Error 111 connecting to 10.0.0.9:6379."), "Redis"),
        ):
            with self.subTest(reason), self.assertLogs("relay_app", "ERROR"):
                status, body = self.answer(exc)
            self.assertEqual(status, 503)
            self.assertIn(reason, str(body["detail"]))
            for internal in ("db.internal", "5432", "10.0.0.9", "6379"):
                self.assertNotIn(internal, str(body["detail"]))

    def test_invalid_input_lists_its_reasons_per_field(self) -> None:
        status, body = self.answer(ValidationError({"message": "Must be a string, not int."}))
        self.assertEqual(status, 400)
        self.assertEqual(
            body,
            {
                "detail": "Invalid request: see errors.",
                "errors": {"message": ["Must be a string, not int."]},
            },
        )


@override_settings(DEBUG=True)
class JsonErrorsTests(SimpleTestCase):
    """Under /api/, the errors Django answers itself are JSON too, even with DEBUG's pages."""

    def assert_json(self, response: HttpResponseBase, status: int, detail: str) -> None:
        self.assertEqual(response.status_code, status)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.json()["detail"], detail)  # type: ignore[attr-defined]

    def test_a_url_that_matches_no_route_or_a_host_not_allowed_answers_json(self) -> None:
        for path in ("/api/nope/", "/api/transactions/not-a-uuid/"):
            with self.subTest(path):
                self.assert_json(self.client.get(path), 404, f"Not found: {path}")
        with self.assertLogs("django.security", "ERROR"):
            response = self.client.get("/api/transactions/", HTTP_HOST="evil.example")
        self.assert_json(response, 400, "Bad Request.")

    def test_pages_outside_the_api_are_left_alone(self) -> None:
        response = self.client.get("/nope/")
        self.assertEqual(response.status_code, 404)
        self.assertTrue(response["Content-Type"].startswith("text/html"))

    def test_a_chunked_body_is_refused_rather_than_read_as_empty(self) -> None:
        response = self.client.post(
            "/api/relay/", b"{}", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
        )
        self.assertEqual(response.status_code, 411)
        self.assertIn("Content-Length", response.json()["detail"])


@tag("postgres")
class TransactionRepresentationTests(TestCase):
    def test_a_transaction_shows_its_owner_hops_timing_and_kafka_records(self) -> None:
        owner = User.objects.create_user("alice")
        start = timezone.now()
        transaction = Transaction.objects.create(
            owner=owner,
            message="hi",
            status=Transaction.Status.TIMED_OUT,
            failed_stage=Stage.GRPC_SERVER,
            error="the deadline passed while waiting on grpc_server",
            deadline_at=start,
        )
        Transaction.objects.filter(id=transaction.id).update(
            created_at=start, finished_at=start + timedelta(milliseconds=1500)
        )
        Hop.objects.create(
            transaction=transaction,
            stage=Stage.KAFKA_PUBLISH_REQUEST,
            text="hi from rest and Kafka publisher",
            started_at=start,
            finished_at=start + timedelta(microseconds=2500),
            kafka_topic="requests",
            kafka_partition=1,
            kafka_offset=7,
        )
        transaction.refresh_from_db()
        shown = TransactionSerializer(transaction).data
        self.assertEqual(shown["owner"], "alice")
        self.assertEqual(shown["status"], "timed_out")
        self.assertEqual(shown["failed_stage"], "grpc_server")
        self.assertEqual(shown["duration_ms"], 1500.0)
        (hop,) = shown["hops"]
        self.assertEqual(hop["position"], 2)
        self.assertEqual(hop["stage"], "kafka_publish_request")
        self.assertEqual(hop["duration_ms"], 2.5)
        self.assertEqual(hop["kafka"], {"topic": "requests", "partition": 1, "offset": 7})

    def test_the_representation_built_at_once_is_drfs_own(self) -> None:
        start = timezone.now()
        transaction = Transaction.objects.create(
            owner=None, message="hi", deadline_at=start, final_message="HI", status="succeeded"
        )
        for stage, topic in ((Stage.REST_REQUEST, ""), (Stage.KAFKA_CONSUME_REPLY, "replies")):
            Hop.objects.create(
                transaction=transaction,
                stage=stage,
                text="hi é",
                started_at=start,
                finished_at=start + timedelta(microseconds=1234),
                kafka_topic=topic,
                kafka_partition=0 if topic else None,
                kafka_offset=3 if topic else None,
            )
        transaction = Transaction.objects.prefetch_related("hops").get(id=transaction.id)
        serializer = TransactionSerializer(transaction)
        generic = dict(ModelSerializer.to_representation(serializer, transaction))
        generic["hops"] = [
            dict(ModelSerializer.to_representation(HopSerializer(), hop))
            for hop in transaction.hops.all()
        ]
        self.assertEqual(json.loads(json.dumps(serializer.data)), json.loads(json.dumps(generic)))


class ReadinessTests(TestCase):
    def test_a_dependency_that_fails_makes_it_503_and_staff_see_why(self) -> None:
        def down() -> None:
            raise OSError("refused at 10.0.0.7:9092")

        _, staff = user_with_token("ready-staff", staff=True)
        with (
            mock.patch.dict("relay_app.services.health.CHECKS", {"kafka": down}, clear=True),
            mock.patch("relay_app.services.health._last", None),  # no result kept from before
        ):
            anonymous = APIClient().get("/readyz")
            detailed = signed_in_client(staff).get("/readyz")
            alive = APIClient().get("/healthz")
        self.assertEqual(
            (anonymous.status_code, anonymous.json()), (503, {"status": "unavailable"})
        )
        self.assertEqual(detailed.status_code, 503)
        self.assertEqual(
            detailed.json()["checks"]["kafka"]["status"], "unavailable: refused at 10.0.0.7:9092"
        )
        self.assertEqual((alive.status_code, alive.json()), (200, {"status": "ok"}))


PROMETHEUS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class ContentNegotiationTests(TestCase):
    """Scrapers, probes and people get the format they ask for, never a 406."""

    def test_metrics_answer_the_text_format_to_scrapers_and_people_openmetrics_if_asked(
        self,
    ) -> None:
        _, staff = user_with_token("scraper", staff=True)
        client = signed_in_client(staff)
        for accept in ("text/plain", PROMETHEUS, "*/*", None):
            with self.subTest(accept=accept):
                answer = client.get("/metrics", headers={"Accept": accept} if accept else {})
                self.assertEqual(answer.status_code, 200)
                self.assertTrue(answer["Content-Type"].startswith("text/plain"))
                self.assertIn(b"# TYPE relay_transactions_total counter", answer.content)
        answer = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text")
        self.assertEqual(answer.status_code, 200)
        self.assertTrue(answer["Content-Type"].startswith("application/openmetrics-text"))
        self.assertTrue(answer.content.endswith(b"# EOF\n"))
        # Without credentials: refused in JSON, whatever was asked.
        refused = APIClient().get("/metrics", HTTP_ACCEPT="text/plain")
        self.assertEqual((refused.status_code, refused["Content-Type"]), (401, "application/json"))

    def test_health_and_readiness_answer_plain_text_when_asked(self) -> None:
        with mock.patch.dict("relay_app.services.health.CHECKS", {}, clear=True):
            for path in ("/healthz", "/readyz"):
                with self.subTest(path):
                    answer = APIClient().get(path, HTTP_ACCEPT="text/plain")
                    self.assertEqual(answer.status_code, 200)
                    self.assertTrue(answer["Content-Type"].startswith("text/plain"))
                    self.assertEqual(answer.content, b"status: ok\n")
                    self.assertEqual(APIClient().get(path).json(), {"status": "ok"})
