"""Reruns and comparisons that need no running service: who may rerun what from which hop,
the refusals with their reasons and statuses, what a rerun inherits, and the comparison's
differences (a rerun running through the stack: tests/integration/test_rerun.py)."""

from datetime import timedelta
from typing import Any
from unittest import mock

from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from relay_app.comparison import compare, diff
from relay_app.hops import Stage, expected_final_message
from relay_app.models import Attempt, AuditEntry, Transaction
from relay_app.selectors import transaction_get
from relay_app.services.rerun import rerun_check, transaction_rerun
from relay_app.services.transactions import (
    HopRecord,
    hops_record,
    transaction_cancel,
    transaction_fail,
    transaction_start,
    transactions_purge,
)
from relay_app.waterfall import waterfall

from ..support import signed_in_client, user_with_token


def recorded(owner: User | None, *, upto: Stage, message: str = "ping") -> Transaction:
    """A pending transaction with hops 1 to ``upto`` recorded, each with a Kafka record
    where a Kafka hop has one."""
    transaction = transaction_start(
        message=message, owner=owner, deadline_at=timezone.now() + timedelta(seconds=10)
    )
    text = Stage.REST_REQUEST.spec.apply(message)
    for stage in Stage:
        if stage == Stage.REST_REQUEST or stage > upto:
            continue
        text = stage.spec.apply(text)
        kafka = "KAFKA" in stage.name
        record = {"topic": "T", "partition": 0, "offset": int(stage)} if kafka else None
        now = timezone.now()
        hops_record(
            transaction_id=str(transaction.id),
            hops=[HopRecord(stage, text, now, now, record)],  # type: ignore[arg-type]
        )
    return transaction


def failed_at(owner: User | None, stage: Stage) -> Transaction:
    transaction = recorded(owner, upto=Stage(stage - 1))
    transaction_fail(
        transaction_id=str(transaction.id), timed_out=False, stage=stage, error="it broke"
    )
    return transaction_get(transaction_id=str(transaction.id), viewer=None)


class WhoMayRerunWhatTests(TestCase):
    def setUp(self) -> None:
        self.owner, token = user_with_token("owner")
        self.client = signed_in_client(token)
        self.staff, staff_token = user_with_token("staff", staff=True)
        self.staff_client = signed_in_client(staff_token)

    def rerun(self, transaction: Transaction, client: Any = None, **body: Any) -> Any:
        return (client or self.client).post(
            f"/api/transactions/{transaction.id}/rerun/", body, format="json"
        )

    def test_a_pending_transaction_is_refused_with_409_and_the_reason(self) -> None:
        pending = recorded(self.owner, upto=Stage.KAFKA_PUBLISH_REQUEST)
        answer = self.rerun(pending)
        self.assertEqual(answer.status_code, 409)
        self.assertIn("still pending", answer.json()["detail"])
        self.assertEqual(Transaction.objects.count(), 1)

    def test_the_owner_reruns_from_the_failed_hop_only_staff_from_another(self) -> None:
        failed = failed_at(self.owner, Stage.GRPC_CLIENT)
        self.assertEqual(rerun_check(failed, user=self.owner), Stage.GRPC_CLIENT)
        self.assertEqual(rerun_check(failed, user=self.owner, from_hop=4), Stage.GRPC_CLIENT)
        answer = self.rerun(failed, from_hop=2)
        self.assertEqual(answer.status_code, 403)
        self.assertIn("hop 4, grpc_client", answer.json()["detail"])
        self.assertEqual(rerun_check(failed, user=self.staff, from_hop=2), Stage(2))
        self.assertEqual(Transaction.objects.count(), 1)

    def test_a_hop_whose_input_was_never_recorded_or_no_hop_at_all_is_400(self) -> None:
        failed = failed_at(self.owner, Stage.KAFKA_CONSUME_REQUEST)
        answer = self.rerun(failed, self.staff_client, from_hop=6)
        self.assertEqual(answer.status_code, 400)
        reason = "hop 3 (kafka_consume_request) before it was never recorded"
        self.assertIn(reason, answer.json()["detail"])
        answer = self.rerun(failed, self.staff_client, from_hop=9)
        self.assertEqual(answer.status_code, 400)
        self.assertIn("from_hop", answer.json()["errors"])

    def test_a_succeeded_one_only_by_staff_and_only_with_a_hop(self) -> None:
        transaction = recorded(self.owner, upto=Stage.KAFKA_CONSUME_REPLY)
        Transaction.objects.filter(id=transaction.id).update(status="succeeded")
        self.assertEqual(self.rerun(transaction).status_code, 409)
        answer = self.rerun(transaction, self.staff_client)
        self.assertEqual(answer.status_code, 409)
        self.assertIn("from a hop they choose", answer.json()["detail"])

    def test_a_cancelled_one_starts_from_the_first_hop_not_recorded(self) -> None:
        transaction = recorded(self.owner, upto=Stage.GRPC_CLIENT)
        transaction_cancel(transaction_id=str(transaction.id), by=self.owner)
        cancelled = transaction_get(transaction_id=str(transaction.id), viewer=None)
        self.assertEqual(rerun_check(cancelled, user=self.owner), Stage.GRPC_SERVER)

    def test_another_users_transaction_is_404_for_rerun_and_compare(self) -> None:
        theirs = failed_at(User.objects.create_user("someone"), Stage.GRPC_CLIENT)
        self.assertEqual(self.rerun(theirs).status_code, 404)
        mine = failed_at(self.owner, Stage.GRPC_CLIENT)
        answer = self.client.get(f"/api/transactions/{mine.id}/compare/{theirs.id}/")
        self.assertEqual(answer.status_code, 404)

    def test_two_transactions_of_different_lineages_are_not_compared(self) -> None:
        a, b = failed_at(self.owner, Stage(4)), failed_at(self.owner, Stage(4))
        answer = self.client.get(f"/api/transactions/{a.id}/compare/{b.id}/")
        self.assertEqual(answer.status_code, 409)
        self.assertIn("not of one lineage", answer.json()["detail"])


class WhatARerunInheritsTests(TestCase):
    def test_the_hops_before_its_first_with_their_attempts_and_the_chain_starts_there(
        self,
    ) -> None:
        owner = User.objects.create_user("owner")
        original = recorded(owner, upto=Stage.GRPC_CLIENT)
        now = timezone.now()
        Attempt.objects.create(
            transaction=original, stage=2, number=1, started_at=now, finished_at=now,
            outcome="failed", kind="timeout", error="slow", retried=True,
        )  # fmt: skip
        Attempt.objects.create(
            transaction=original, stage=5, number=1, started_at=now, finished_at=now,
            outcome="failed", kind="UNAVAILABLE", error="down", retried=False,
        )  # fmt: skip
        transaction_fail(
            transaction_id=str(original.id), timed_out=False, stage=Stage(4), error="down"
        )
        original = transaction_get(transaction_id=str(original.id), viewer=None)
        before = [(h.stage, h.text, h.started_at, h.kafka_offset) for h in original.hops.all()]
        with mock.patch("relay_app.services.rerun.relay_chain") as chain:
            rerun = transaction_rerun(original, user=owner, from_hop=4, idempotency_key="k")
        self.assertEqual(rerun.owner, owner)
        self.assertEqual(
            (rerun.rerun_of_id, rerun.from_hop, rerun.status), (original.id, 4, "pending")
        )
        hops = list(rerun.hops.all())
        self.assertEqual(
            [(h.stage, h.text, h.started_at, h.kafka_offset) for h in hops], before[:3]
        )
        self.assertTrue(all(h.inherited for h in hops))
        self.assertEqual([(a.stage, a.error) for a in rerun.attempts.all()], [(2, "slow")])
        payload = chain.call_args.args[0]
        self.assertEqual(payload["text"], before[2][1])  # hop 3's output: hop 4's input
        self.assertEqual(chain.call_args.kwargs["start"], Stage.GRPC_CLIENT)
        # The original is as it was; the same key again is the same rerun.
        still = [(h.stage, h.text, h.started_at, h.kafka_offset) for h in original.hops.all()]
        self.assertEqual(still, before)
        again = transaction_rerun(original, user=owner, idempotency_key="k")
        self.assertEqual(again.id, rerun.id)
        self.assertEqual(chain.call_count, 1)
        # Recorded once, in the audit trail, from the API by default.
        entry = AuditEntry.objects.get(action="rerun")
        self.assertEqual((entry.actor, entry.source), (owner, "api"))

        # Compared: inherited hops the same, the rest not done yet on the rerun's side.
        rows = compare(original, transaction_get(transaction_id=str(rerun.id), viewer=None)).hops
        self.assertEqual([row.right.state for row in rows[:4]], ["inherited"] * 3 + ["not_reached"])
        self.assertEqual(rows[4].left.state, "failed")
        self.assertTrue(all(row.same_text for row in rows[:3]))

        # The waterfall draws the inherited hops without a bar, off the time axis.
        chart = waterfall(started_at=rerun.created_at, finished_at=None, hops=hops)
        self.assertEqual([bar.inherited for bar in chart.bars], [True, True, True])
        self.assertEqual(chart.total_ms, 0.0)

    def test_a_reading_hop_starts_with_the_record_its_inherited_hop_wrote(self) -> None:
        owner = User.objects.create_user("owner")
        original = failed_at(owner, Stage.KAFKA_CONSUME_REPLY)
        with mock.patch("relay_app.services.rerun.relay_chain") as chain:
            transaction_rerun(original, user=owner)
        payload = chain.call_args.args[0]
        self.assertEqual(payload["record"], {"topic": "T", "partition": 0, "offset": 6})


class DiffTests(TestCase):
    def test_segments_mark_what_only_each_side_has(self) -> None:
        segments = diff("hello and gRPC", "hello and gRPC client")
        self.assertEqual([(s.op, s.left, s.right) for s in segments][-1], ("insert", "", " client"))
        self.assertEqual("".join(s.left for s in segments), "hello and gRPC")
        self.assertEqual("".join(s.right for s in segments), "hello and gRPC client")


class AdminRerunTests(TestCase):
    def setUp(self) -> None:
        self.staff = User.objects.create_user("staff", is_staff=True)
        self.client.force_login(self.staff)
        self.owner = User.objects.create_user("owner")

    def test_one_is_rerun_from_the_chosen_hop_only_with_a_reason(self) -> None:
        failed = failed_at(self.owner, Stage.GRPC_CLIENT)
        url = f"/admin/relay_app/transaction/{failed.id}/rerun/"
        page = self.client.get(url)
        self.assertContains(page, "rerun from hop 4 (grpc_client)")
        self.assertContains(page, '<option value="4" selected>4. gRPC client (where it stopped)')
        self.assertNotContains(page, '<option value="5"')  # hop 4's output was never recorded
        with mock.patch("relay_app.services.rerun.relay_chain") as chain:
            blank = self.client.post(url, {"from_hop": "3", "reason": " "})
            self.assertContains(blank, "This field is required")
            done = self.client.post(url, {"from_hop": "3", "reason": "check"})
        rerun = Transaction.objects.get(rerun_of=failed)
        self.assertRedirects(done, f"/admin/relay_app/transaction/{rerun.id}/change/")
        self.assertEqual((rerun.from_hop, rerun.owner), (3, self.owner))
        self.assertEqual(chain.call_count, 1)
        entry = AuditEntry.objects.get(action="rerun")
        self.assertEqual((entry.actor, entry.source, entry.reason), (self.staff, "admin", "check"))
        self.assertEqual(entry.transaction_ids, [str(failed.id), str(rerun.id)])
        self.assertEqual(entry.details["from_hop"], 3)
        page = self.client.get(f"/admin/relay_app/transaction/{rerun.id}/change/")
        self.assertContains(page, f"/admin/relay_app/transaction/compare/{failed.id}/{rerun.id}/")
        self.assertContains(page, "relay-waterfall__row--inherited", count=2)

    def test_the_selected_are_rerun_by_a_bulk_job_not_inside_the_request(self) -> None:
        failed_at(self.owner, Stage.GRPC_CLIENT)  # the list offers actions once it lists any
        page = self.client.get("/admin/relay_app/transaction/").content.decode()
        self.assertIn('value="bulk_rerun"', page)
        self.assertNotIn('value="rerun"', page)

    def test_two_of_one_lineage_side_by_side_with_the_differences_marked(self) -> None:
        failed = failed_at(self.owner, Stage.GRPC_CLIENT)
        with mock.patch("relay_app.services.rerun.relay_chain"):
            rerun = transaction_rerun(failed, user=self.staff, from_hop=3)
        page = self.client.get(f"/admin/relay_app/transaction/compare/{failed.id}/{rerun.id}/")
        self.assertContains(page, "relay-compare__cell--inherited", count=2)
        # Hop 3, done by the original and not yet by the rerun: its text only on the left.
        left = "ping from rest and Kafka publisher and Kafka consumer"
        self.assertContains(page, f'<del class="relay-compare__del">{left}</del>')
        self.assertContains(page, '<div class="relay-compare__text">-</div>', count=11)
        other = failed_at(self.owner, Stage.GRPC_CLIENT)
        page = self.client.get(f"/admin/relay_app/transaction/compare/{failed.id}/{other.id}/")
        self.assertRedirects(page, f"/admin/relay_app/transaction/{failed.id}/change/")


class RetentionTests(TestCase):
    def test_purging_an_original_leaves_its_younger_rerun_whole_without_the_link(self) -> None:
        owner = User.objects.create_user("owner")
        original = failed_at(owner, Stage.GRPC_CLIENT)
        with mock.patch("relay_app.services.rerun.relay_chain"):
            rerun = transaction_rerun(original, user=owner)
        Transaction.objects.filter(id=original.id).update(
            created_at=timezone.now() - timedelta(days=30)
        )
        self.assertEqual(transactions_purge(older_than=timedelta(days=7)), 1)
        rerun.refresh_from_db()
        self.assertIsNone(rerun.rerun_of_id)
        self.assertEqual(rerun.from_hop, Stage.GRPC_CLIENT)
        self.assertEqual(rerun.hops.filter(inherited=True).count(), 3)


class FromHopEightTests(TestCase):
    def test_a_rerun_from_hop_8_runs_no_chain_and_answers_from_the_inherited_records(
        self,
    ) -> None:
        owner = User.objects.create_user("owner")
        staff = User.objects.create_user("staff", is_staff=True)
        original = recorded(owner, upto=Stage.KAFKA_CONSUME_REPLY, message="hello world")
        transaction_fail(
            transaction_id=str(original.id), timed_out=True, stage=Stage(8), error="late"
        )
        original = transaction_get(transaction_id=str(original.id), viewer=None)
        with mock.patch("relay_app.services.rerun.relay_chain") as chain:
            rerun = transaction_rerun(original, user=staff, from_hop=8)
        chain.assert_not_called()
        self.assertEqual(rerun.status, "succeeded")
        self.assertEqual(rerun.final_message, expected_final_message("hello world"))
        self.assertEqual([h.inherited for h in rerun.hops.all()], [True] * 7 + [False])
