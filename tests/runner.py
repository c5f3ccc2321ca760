"""The test runner: Django's, which also starts the real services when the tests need them.

Tests under ``tests/integration/`` go through the real stack; the runner starts Redis,
Kafka, the gRPC server, a Celery worker and the web server (``ops/stack.py``) on the test
ports, with data under ``var/test/``, once the test database exists, and stops them after
the suite. Tests under ``tests/unit/`` need none of it: ``python manage.py test tests.unit``
(``make test-fast``) starts nothing.
"""

import shutil
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test.runner import DiscoverRunner
from django.test.utils import iter_test_cases  # type: ignore[attr-defined]  # not in the stubs

from ops.stack import Stack

INTEGRATION = "tests.integration."


def database_url() -> str:
    """The URL of the database the tests use, for the processes the runner starts."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{db['NAME']}"


class StackTestRunner(DiscoverRunner):
    """Starts the stack once the test database exists, if a selected test needs it."""

    #: The running stack, for tests that stop and start a service (``tests.support``).
    stack: Stack | None = None

    def build_suite(self, *args: Any, **kwargs: Any) -> Any:
        suite = super().build_suite(*args, **kwargs)
        self.needs_stack = any(
            type(test).__module__.startswith(INTEGRATION) for test in iter_test_cases(suite)
        )
        return suite

    def setup_databases(self, **kwargs: Any) -> Any:
        config = super().setup_databases(**kwargs)
        if not getattr(self, "needs_stack", True):
            return config
        self.stack = StackTestRunner.stack = Stack(
            var_dir=settings.RELAY_VAR_DIR, env={"DATABASE_URL": database_url()}
        )
        self.stack.down()  # a run that was killed may have left its services behind
        for stale in ("kafka/data", "redis"):
            shutil.rmtree(settings.RELAY_VAR_DIR / stale, ignore_errors=True)
        settings.RELAY_TRANSACTION_LOG.unlink(missing_ok=True)
        try:
            self.stack.up()
        except BaseException:
            self.stack.down()
            raise
        return config

    def suite_result(self, suite: Any, result: Any, **kwargs: Any) -> Any:
        """Close with one plain line of counts, which CI reads whatever the runner."""
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        # A class skipped as a whole (in setUpClass) is one skip of tests that never ran.
        skipped_runs = sum(type(test).__name__ != "_ErrorHolder" for test, _ in result.skipped)
        passed = result.testsRun - failed - skipped_runs - len(result.expectedFailures)
        print(
            f"tests: {result.testsRun} ran, {passed} passed, {failed} failed,"
            f" {len(result.skipped)} skipped"
        )
        return super().suite_result(suite, result, **kwargs)

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        if self.stack is not None:
            self.stack.down()
        super().teardown_databases(old_config, **kwargs)
