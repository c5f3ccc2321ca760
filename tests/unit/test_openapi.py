"""The OpenAPI schema: valid, true to the input rules, readable in a browser, its docs served
from local files (the live API against it: tests/integration/test_openapi.py)."""

import json
import re
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.test import SimpleTestCase, override_settings
from rest_framework.exceptions import ValidationError

from relay_app.api.serializers import WHITESPACE, MessageField, RelayInputSerializer

# What Chromium asks for when it opens a page.
CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)


class SchemaTests(SimpleTestCase):
    def test_the_schema_is_valid_openapi_3_without_warnings(self) -> None:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            call_command(
                "spectacular",
                "--validate",
                "--fail-on-warn",
                "--format",
                "openapi-json",
                "--file",
                out.name,
            )
            schema = json.loads(Path(out.name).read_text())
        self.assertTrue(schema["openapi"].startswith("3."))
        relay = schema["paths"]["/api/relay/"]["post"]
        self.assertEqual(
            sorted(relay["responses"]),
            ["200", "202", "400", "401", "409", "413", "415", "422", "429", "503", "504"],
        )
        self.assertEqual(
            [parameter["name"] for parameter in relay["parameters"]], ["Idempotency-Key", "Prefer"]
        )
        events = schema["paths"]["/api/transactions/{transaction_id}/events/"]["get"]
        self.assertEqual(list(events["responses"]["200"]["content"]), ["text/event-stream"])
        self.assertIn("Last-Event-ID", [parameter["name"] for parameter in events["parameters"]])
        # Swagger UI's "Authorize" asks for a Bearer token; no operation takes HTTP Basic.
        self.assertEqual(
            schema["components"]["securitySchemes"]["bearerAuth"],
            {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "An API token from `make token NAME=USERNAME`"
                    " (`.venv/bin/python manage.py create_api_token USERNAME`)."
                ),
            },
        )
        self.assertNotIn("basicAuth", schema["components"]["securitySchemes"])
        self.assertIn({"bearerAuth": []}, relay["security"])
        self.assertNotIn({}, relay["security"])  # no anonymous relaying under these settings
        # Anonymous relays, where allowed, are blocking ones: the schema says so.
        self.assertIn("`Prefer: respond-async`", relay["responses"]["401"]["description"])
        self.assertIn("401", relay["parameters"][1]["description"])
        error = schema["components"]["schemas"]["Error"]
        self.assertEqual(sorted(error["properties"]), ["detail", "errors"])
        self.assertEqual(error["required"], ["detail"])

    def test_the_message_pattern_accepts_exactly_what_the_api_accepts(self) -> None:
        pattern = re.compile(MessageField.schema_pattern)
        field = RelayInputSerializer().fields["message"]
        for text in [*WHITESPACE, "", "\ufeff", "\x1b", "a", " a\n", "\x00", "a\x00", "\u3000x"]:
            with self.subTest(text=text):
                try:
                    field.run_validation(text)
                except ValidationError:
                    accepted = False
                else:
                    accepted = True
                self.assertEqual(bool(pattern.fullmatch(text)), accepted)

    @override_settings(RELAY_PUBLIC_API_DOCS=True)  # who may read them: tests/unit/test_api.py
    def test_the_docs_load_swagger_ui_from_this_server_only(self) -> None:
        page = self.client.get("/api/docs/").content.decode()
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        self.assertTrue(any("swagger-ui-bundle.js" in asset for asset in assets), assets)
        for asset in assets:
            with self.subTest(asset=asset):
                self.assertTrue(asset.startswith("/static/"), asset)
        self.assertNotRegex(page, r"https?://")  # no CDN, no online validator


@override_settings(RELAY_PUBLIC_API_DOCS=True)
class SchemaInABrowserTests(SimpleTestCase):
    def test_a_browser_sees_the_schema_on_a_page(self) -> None:
        for accept in (CHROME, "text/html"):
            with self.subTest(accept=accept):
                page = self.client.get("/api/schema/", headers={"Accept": accept})
                self.assertEqual(page.status_code, 200)
                self.assertTrue(page["Content-Type"].startswith("text/html"))
                self.assertNotIn("Content-Disposition", page)  # shown, not downloaded
                self.assertIn("openapi: 3.0.3", page.content.decode())

    def test_programs_get_the_schema_as_before(self) -> None:
        for accept, query, content_type in (
            ("*/*", "", "application/vnd.oai.openapi"),
            ("application/vnd.oai.openapi", "", "application/vnd.oai.openapi"),
            ("application/json", "", "application/json"),
            ("*/*", "?format=json", "application/vnd.oai.openapi+json"),
            (CHROME, "?format=json", "application/vnd.oai.openapi+json"),
        ):
            with self.subTest(accept=accept, query=query):
                answer = self.client.get(f"/api/schema/{query}", headers={"Accept": accept})
                self.assertEqual(answer.status_code, 200)
                self.assertEqual(answer["Content-Type"].split(";")[0], content_type)
                self.assertTrue(answer["Content-Disposition"].startswith("inline;"))
