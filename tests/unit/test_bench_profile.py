"""The profile's split of py-spy's collapsed stacks: each stack counted once, by the library
its time is in and by what it was spent for, and a service's CPU shared out by samples."""

from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

from django.test import SimpleTestCase

from ops.bench.profile import CELERY_MAIN, CELERY_TASKS, by_group, collapsed, group, purpose, table

PARENT = 'process 10:"python -m celery worker"'
CHILD = f'{PARENT};process 11:"python -m celery worker"'
RECORD = (
    f"{CHILD};trace_task (celery/app/trace.py:453);consume_request (relay_app/tasks.py:160)"
    ";hops_record (relay_app/services/transactions.py:109)"
    ";execute (django/db/backends/sqlite3/base.py:360)"
)
PUBLISH_NEXT = f"{CHILD};trace_task (celery/app/trace.py:453);publish (kombu/messaging.py:190)"
RECEIVE = f"{PARENT};on_readable (kombu/transport/redis.py:1340)"
LOG_LINE = (
    f"{CHILD};call_grpc (relay_app/tasks.py:190);log_hop (relay_app/original_log.py:67)"
    ";emit (concurrent_log_handler/__init__.py:470)"
)


class ProfileSplitTests(SimpleTestCase):
    def test_a_stack_goes_by_the_innermost_library_it_is_in(self) -> None:
        self.assertEqual(group(RECORD), "database (Django ORM, sqlite3)")
        self.assertEqual(group(PUBLISH_NEXT), "kombu (messages, transport)")

    def test_a_stack_goes_by_what_it_was_spent_for(self) -> None:
        self.assertEqual(purpose(RECORD), "recording the transaction and its hops (database)")
        self.assertEqual(purpose(LOG_LINE), "transaction log and other log lines")
        # Celery's own work: in the pool process around a task, or in the main process.
        self.assertEqual(purpose(PUBLISH_NEXT), CELERY_TASKS)
        self.assertEqual(purpose(RECEIVE), CELERY_MAIN)

    def test_a_service_cpu_is_shared_out_by_samples(self) -> None:
        with TemporaryDirectory() as folder:
            path = Path(folder) / "worker.txt"
            path.write_text(f"{RECORD} 30\n{PUBLISH_NEXT} 10\n{RECORD} 20\n{RECEIVE} 40\n")
            counts = collapsed(path)
        self.assertEqual(counts, Counter({RECORD: 50, PUBLISH_NEXT: 10, RECEIVE: 40}))
        split = table({"worker": 20.0}, {"worker": by_group(counts, purpose)})
        self.assertEqual(split["worker"]["samples"], 100)
        self.assertEqual(
            split["worker"]["parts_ms"],
            {
                "recording the transaction and its hops (database)": 10.0,
                CELERY_MAIN: 8.0,
                CELERY_TASKS: 2.0,
            },
        )
