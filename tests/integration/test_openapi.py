"""The live API against its own OpenAPI schema (the schema itself: tests/unit/test_openapi.py)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.test import TransactionTestCase

from ..support import user_with_token, web

TESTS = Path(__file__).resolve().parent.parent  # schemathesis.toml and its hooks
# Test cases per operation and phase, negative data included: under a minute on two cores.
MAX_EXAMPLES = 150


class LiveApiConformsToSchemaTests(TransactionTestCase):
    """Schemathesis against the web server the runner started, with its own schema.

    Every operation is tested, with valid and invalid (negative) data, in the coverage,
    fuzzing and stateful phases (the last follows the links it infers, e.g. from a relayed
    transaction to its page). ``--checks all`` includes ``not_a_server_error`` (no 5xx),
    ``response_schema_conformance``, ``status_code_conformance`` and
    ``content_type_conformance`` (every response as the schema says), and
    ``negative_data_rejection`` / ``positive_data_acceptance``. ``tests/schemathesis.toml``
    and ``tests/schemathesis_hooks.py`` say what is adjusted and why: 422 for a reused
    Idempotency-Key, and no query strings so long that gunicorn answers them itself.
    The schema and docs endpoints are not in the schema (they describe the API).
    """

    def test_no_5xx_and_every_response_matches_the_schema(self) -> None:
        base = f"http://{settings.HTTP_ADDRESS}"
        # An API client's token, as any client of the API sends it; a staff user's, so that
        # every operation answers it (/metrics is for staff).
        _, token = user_with_token("schemathesis", staff=True)
        # The schema is for signed-in readers: fetched with the token, handed over as a file.
        schema = web(token).get("/api/schema/?format=json").body
        schema_file = Path(settings.RELAY_VAR_DIR) / "schema.json"
        schema_file.write_text(json.dumps(schema))
        operations = sum(len(methods) for methods in schema["paths"].values())
        # One of the user's transactions, ended: what cancel is tried on (tests/schemathesis.toml).
        finished = web(token).relay("cancelled too late").body["transaction_id"]
        # A bulk job with nothing to do (it ends at once): what a job's cancel is tried on.
        nothing = {"status": "pending", "error_contains": "matches no pending transaction"}
        job = web(token).request(
            "POST",
            "/api/transactions/bulk/",
            json_body={"action": "cancel", "filter": nothing, "dry_run": False, "reason": "t"},
        )
        self.assertEqual(job.status, 202, job.body)
        started = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--no-color",
                "--config-file",
                str(TESTS / "schemathesis.toml"),
                "run",
                str(schema_file),
                "--url",
                base,
                "--checks",
                "all",
                "--mode",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                str(MAX_EXAMPLES),
                # One worker: with two, hypothesis's threads sometimes trip CPython 3.11's
                # ast.parse ("AST constructor recursion depth mismatch"), seen once in CI.
                "--workers",
                "1",
                "--request-timeout",
                "15",
                "--header",
                f"Authorization: Bearer {token}",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(TESTS / "schemathesis_hooks.py"),
                "SCHEMATHESIS_FINISHED_TRANSACTION": finished,
                "SCHEMATHESIS_BULK_JOB": job.body["job_id"],
            },
            cwd=settings.RELAY_VAR_DIR,  # its cache (.schemathesis/) stays out of the work tree
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = run.stdout + run.stderr
        log = Path(settings.RELAY_VAR_DIR) / "schemathesis.log"
        log.write_text(output)
        # Reproductions can be very long lines: cut them, so the failures stay in view.
        short = "\n".join(line[:300] for line in output.splitlines())[-12000:]
        self.assertEqual(run.returncode, 0, f"{short}\n(the whole output: {log})")
        self.assertIn("No issues found", output)
        self.assertRegex(output, rf"Tested: {operations}\b")
        generated = int(re.search(r"(\d+) generated", output)[1])  # type: ignore[index]
        self.assertGreater(generated, 3 * MAX_EXAMPLES, output[-2000:])
        print(f"\n  schemathesis: {generated} cases in {time.monotonic() - started:.0f} s")
        # The API is still up and relays after the storm.
        self.assertEqual(web(timeout=5).get("/healthz").status, 200)
