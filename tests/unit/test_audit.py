"""The audit trail: each operator action recorded with who, what, on which transactions and
why, logged as one line of fields, and read-only in the admin, even to a superuser."""

import json
from datetime import timedelta
from io import StringIO
from unittest import mock

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from relay_app.log_format import JsonFormatter
from relay_app.models import ApiToken, AuditEntry, Transaction
from relay_app.services.audit import audit_record
from relay_app.services.tokens import api_token_create

from ..support import signed_in_client

AUDIT_LIST = "/admin/relay_app/auditentry/"


def pending(owner: User | None = None) -> Transaction:
    return Transaction.objects.create(
        message="m", owner=owner, deadline_at=timezone.now() + timedelta(seconds=30)
    )


class AuditRecordTests(TestCase):
    def test_an_entry_keeps_who_what_why_and_which_and_logs_one_line_of_fields(self) -> None:
        user = get_user_model().objects.create_user("operator")
        ids = [str(pending().id) for _ in range(3)]
        with self.assertLogs("relay.audit", "INFO") as logged:
            entry = audit_record(
                actor=user,
                action="rerun",
                reason='broken "gRPC"\nserver',
                transactions=ids,
                details={"job": 7},
                source="api",
            )
        entry.refresh_from_db()
        self.assertEqual((entry.actor, entry.actor_name), (user, "operator"))
        self.assertEqual((entry.action, entry.source), ("rerun", "api"))
        self.assertEqual(entry.transaction_ids, ids)
        self.assertEqual(entry.transaction_count, 3)
        self.assertEqual(entry.details, {"job": 7})
        (line,) = logged.records
        message = line.getMessage()
        self.assertNotIn("\n", message)
        self.assertIn("action=rerun source=api actor=operator", message)
        self.assertIn(r'reason="broken \"gRPC\"\nserver"', message)
        self.assertIn(f"transaction_ids={','.join(ids)}", message)
        as_json = json.loads(JsonFormatter().format(line))
        self.assertEqual(as_json["logger"], "relay.audit")
        self.assertEqual(as_json["audit"]["reason"], 'broken "gRPC"\nserver')
        self.assertEqual(as_json["audit"]["audit_id"], entry.pk)

    def test_many_transactions_keep_their_count_and_the_first_ids(self) -> None:
        ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(250)]
        entry = audit_record(actor="cli:root", action="bulk_cancel", transactions=ids, source="job")
        self.assertEqual(entry.transaction_count, 250)
        self.assertEqual(entry.transaction_ids, ids[: AuditEntry.TRANSACTION_IDS_KEPT])
        self.assertIsNone(entry.actor)
        self.assertEqual(entry.actor_name, "cli:root")

    def test_the_entry_outlives_its_actor_account(self) -> None:
        user = get_user_model().objects.create_user("leaving")
        entry = audit_record(actor=user, action="cancel", source="admin")
        user.delete()
        entry.refresh_from_db()
        self.assertIsNone(entry.actor)
        self.assertEqual(entry.actor_name, "leaving")


class RecordedActionTests(TestCase):
    def test_a_cancel_through_the_api_names_its_operator_and_reason(self) -> None:
        owner = get_user_model().objects.create_user("owner")
        transaction = pending(owner)
        token = api_token_create(user=owner).token
        with mock.patch("relay_app.services.cancel.chain_wake"):
            answer = signed_in_client(token).post(
                f"/api/transactions/{transaction.id}/cancel/",
                {"reason": "sent by mistake"},
                format="json",
            )
            self.assertEqual(answer.status_code, 200, answer.content)
            # Cancelling again changes nothing, and records nothing.
            again = signed_in_client(token).post(f"/api/transactions/{transaction.id}/cancel/")
            self.assertEqual(again.status_code, 409)
        entry = AuditEntry.objects.get(action="cancel")
        self.assertEqual((entry.actor_name, entry.source), ("owner", "api"))
        self.assertEqual(entry.reason, "sent by mistake")
        self.assertEqual(entry.transaction_ids, [str(transaction.id)])

    def test_a_cancel_refuses_an_unknown_field_or_a_reason_too_long_and_changes_nothing(
        self,
    ) -> None:
        owner = get_user_model().objects.create_user("owner")
        transaction = pending(owner)
        client = signed_in_client(api_token_create(user=owner).token)
        url = f"/api/transactions/{transaction.id}/cancel/"
        for body in ({"reasn": "typo"}, {"reason": "x" * 1001}, {"reason": 5, "x": 1}):
            with self.subTest(body=body):
                answer = client.post(url, body, format="json")
                self.assertEqual(answer.status_code, 400, answer.content)
        transaction.refresh_from_db()
        self.assertEqual(transaction.status, Transaction.Status.PENDING)
        self.assertFalse(AuditEntry.objects.filter(action="cancel").exists())

    def test_tokens_made_and_revoked_by_command_name_the_operator_and_reason(self) -> None:
        call_command("create_api_token", "bob", "--reason", "new client", stdout=StringIO())
        made = AuditEntry.objects.get(action="token_created")
        self.assertEqual(made.source, "cli")
        self.assertTrue(made.actor_name.startswith("cli"), made.actor_name)
        self.assertEqual(made.reason, "new client")
        prefix = ApiToken.objects.get().prefix
        self.assertEqual(made.details["token"], prefix)
        self.assertEqual(made.details["user"], "bob")
        out = StringIO()
        call_command("revoke_api_tokens", "--user", "bob", "--reason", "leaked", stdout=out)
        revoked = AuditEntry.objects.get(action="token_revoked")
        self.assertEqual(revoked.reason, "leaked")
        self.assertEqual(revoked.details["tokens"][0]["token"], prefix)
        # Revoking again revokes nothing, and records nothing.
        call_command("revoke_api_tokens", "--user", "bob", stdout=out)
        self.assertEqual(AuditEntry.objects.filter(action="token_revoked").count(), 1)


class AdminAuditTests(TestCase):
    def setUp(self) -> None:
        self.staff = get_user_model().objects.create_superuser("boss", password="pw-boss-1")
        self.client.force_login(self.staff)

    def test_a_token_revoked_and_a_transaction_cancelled_in_the_admin_are_recorded(self) -> None:
        user = get_user_model().objects.create_user("holder")
        api_token_create(user=user)
        token = ApiToken.objects.get()
        self.client.post(
            "/admin/relay_app/apitoken/",
            {"action": "revoke", "_selected_action": [token.pk]},
        )
        transaction = pending(user)
        with mock.patch("relay_app.services.cancel.chain_wake"):
            self.client.post(
                "/admin/relay_app/transaction/",
                {"action": "cancel", "_selected_action": [transaction.pk]},
            )
        revoked = AuditEntry.objects.get(action="token_revoked")
        self.assertEqual((revoked.actor, revoked.source), (self.staff, "admin"))
        cancelled = AuditEntry.objects.get(action="cancel")
        self.assertEqual((cancelled.actor, cancelled.source), (self.staff, "admin"))
        self.assertEqual(cancelled.transaction_ids, [str(transaction.id)])

    def test_a_change_in_the_admin_is_recorded_from_djangos_admin_log(self) -> None:
        user = get_user_model().objects.create_user("changed")
        page = f"/admin/auth/user/{user.pk}/change/"
        form = {
            "username": "changed",
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        }
        answer = self.client.post(page, form)
        self.assertEqual(answer.status_code, 302, answer.content[:2000])
        entry = AuditEntry.objects.get(action="admin_change")
        self.assertEqual((entry.actor, entry.source), (self.staff, "admin"))
        self.assertEqual(entry.details["model"], ["auth", "user"])
        self.assertEqual(entry.details["object"], "changed")
        self.assertIn("Staff status", entry.details["change"])

    def test_a_deletion_of_several_in_the_admin_is_one_entry(self) -> None:
        users = [get_user_model().objects.create_user(f"gone{n}") for n in range(3)]
        self.client.post(
            "/admin/auth/user/",
            {"action": "delete_selected", "post": "yes", "_selected_action": [u.pk for u in users]},
        )
        self.assertFalse(get_user_model().objects.filter(username__startswith="gone").exists())
        (entry,) = AuditEntry.objects.filter(action="admin_delete")
        self.assertEqual(entry.details["count"], 3)
        self.assertEqual(
            {o["object"] for o in entry.details["objects"]}, {"gone0", "gone1", "gone2"}
        )

    def test_the_audit_list_is_read_only_even_to_a_superuser(self) -> None:
        entry = audit_record(actor=self.staff, action="cancel", reason="why", source="api")
        page = self.client.get(AUDIT_LIST).content.decode()
        self.assertIn("why", page)
        self.assertNotIn("Delete selected", page)
        self.assertNotIn("addlink", page)
        detail = self.client.get(f"{AUDIT_LIST}{entry.pk}/change/").content.decode()
        self.assertNotIn("deletelink", detail)
        self.assertNotIn('name="_save"', detail)
        self.assertEqual(self.client.post(f"{AUDIT_LIST}{entry.pk}/delete/").status_code, 403)
        self.assertEqual(
            self.client.post(f"{AUDIT_LIST}{entry.pk}/change/", {"reason": "x"}).status_code, 403
        )
        self.assertEqual(self.client.post(f"{AUDIT_LIST}add/", {"action": "x"}).status_code, 403)
        bulk = self.client.post(
            AUDIT_LIST, {"action": "delete_selected", "post": "yes", "_selected_action": [entry.pk]}
        )
        self.assertIn(bulk.status_code, (200, 302))
        self.assertTrue(AuditEntry.objects.filter(pk=entry.pk, reason="why").exists())

    def test_staff_filter_by_action_and_actor_and_find_a_transaction_by_id(self) -> None:
        transaction = pending()
        audit_record(actor="cli:ops", action="cancel", transactions=[transaction.id], source="cli")
        audit_record(actor=self.staff, action="token_created", source="cli")

        def results(query: dict[str, str]) -> str:
            page = self.client.get(AUDIT_LIST, query).content.decode()
            return page.split('id="result_list"')[1].split("</table>")[0]

        found = results({"q": str(transaction.id)[:13]})
        self.assertIn("cli:ops", found)
        self.assertNotIn("token created", found)
        by_action = results({"action__exact": "token_created"})
        self.assertIn("token created", by_action)
        self.assertNotIn("cli:ops", by_action)
        by_actor = results({"actor_name": "cli:ops"})
        self.assertIn("cli:ops", by_actor)
        self.assertNotIn("token created", by_actor)

    def test_a_non_staff_user_cannot_read_the_trail(self) -> None:
        get_user_model().objects.create_user("plain", password="pw-plain-1")
        self.client.logout()
        self.client.force_login(get_user_model().objects.get(username="plain"))
        self.assertEqual(self.client.get(AUDIT_LIST).status_code, 302)
