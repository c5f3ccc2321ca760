"""A test runner that starts the real services around the suite, on the test ports.

Redis, Kafka, the gRPC server and a Celery worker run as real processes (``ops.stack``)
with their data under ``var/test/``; the worker writes to the test database. Views run
in the test process.
"""

import shutil
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test.runner import DiscoverRunner

from ops.stack import Stack

TEST_SERVICES = ("redis", "kafka", "grpc", "worker", "web")


def database_url() -> str:
    """The URL of the database the tests use, for the processes the runner starts."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{db['NAME']}"


class StackTestRunner(DiscoverRunner):
    """Starts the stack once the test database exists; stops it after the suite."""

    #: The running stack, for tests that stop and start a service (``tests.support``).
    stack: Stack | None = None

    def setup_databases(self, **kwargs: Any) -> Any:
        config = super().setup_databases(**kwargs)
        self.stack = StackTestRunner.stack = Stack(
            var_dir=settings.VAR_DIR, env={"DATABASE_URL": database_url()}
        )
        self.stack.down()  # a run that was killed may have left its services behind
        for stale in ("kafka/data", "redis"):
            shutil.rmtree(settings.VAR_DIR / stale, ignore_errors=True)
        settings.TRANSACTION_LOG.unlink(missing_ok=True)
        try:
            self.stack.up(TEST_SERVICES)
        except BaseException:
            self.stack.down()
            raise
        return config

    def suite_result(self, suite: Any, result: Any, **kwargs: Any) -> Any:
        """Close with one plain line of counts, which CI reads whatever the runner."""
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
        print(f"tests: {passed} passed, {failed} failed, {len(result.skipped)} skipped")
        return super().suite_result(suite, result, **kwargs)

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        if self.stack is not None:
            self.stack.down(TEST_SERVICES)
        super().teardown_databases(old_config, **kwargs)
