"""Rerun from the failed hop, through the real stack: a transaction that failed at the gRPC
hop (its server down) is rerun once the server is back; its first hops are inherited, not
done again (no new Kafka record); the original never changes; compare shows both."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.test import TransactionTestCase, tag

from relay_app.hops import Stage, expected_final_message
from relay_app.management.commands.relay import REFUSED
from relay_app.models import AuditEntry, Transaction

from ..support import (
    expected_log_lines,
    records_for,
    service_stopped,
    signed_in_client,
    user_with_token,
    web,
)
from .test_relay_command import STAMP, relay_command

MESSAGE = "hello rerun"


@tag("postgres")
class RerunTests(TransactionTestCase):
    def setUp(self) -> None:
        _, self.token = user_with_token("rerunner")
        self.client = signed_in_client(self.token)
        _, self.staff_token = user_with_token("operator", staff=True)
        self.staff = signed_in_client(self.staff_token)
        _, other_token = user_with_token("stranger")
        self.stranger = signed_in_client(other_token)

    def get(self, path: str, client: Any = None) -> Any:
        return (client or self.client).get(path, format="json")

    def rerun(self, transaction_id: str, client: Any = None, **body: Any) -> Any:
        headers = body.pop("headers", {})
        return (client or self.client).post(
            f"/api/transactions/{transaction_id}/rerun/", body, format="json", headers=headers
        )

    def test_a_transaction_failed_at_the_grpc_hop_is_rerun_from_hop_4_once_it_is_back(
        self,
    ) -> None:
        with service_stopped("grpc"):
            failed = self.client.post("/api/relay/", {"message": MESSAGE}, format="json")
        self.assertIn(failed.status_code, (503, 504), failed.json())
        original_id = failed.json()["transaction_id"]
        before = self.get(f"/api/transactions/{original_id}/").json()
        self.assertIn(before["failed_stage"], ("grpc_client", "grpc_server"))
        self.assertEqual([hop["position"] for hop in before["hops"]], [1, 2, 3, 4])

        # The owner reruns from the hop that failed; a timeout there names hop 5, so staff
        # (who may choose) rerun that one from hop 4.
        if before["failed_stage"] == "grpc_client":
            answer = self.rerun(original_id, from_hop=4, reason="the gRPC server is back")
        else:
            answer = self.rerun(original_id, self.staff, from_hop=4, reason="back")
        self.assertEqual(answer.status_code, 200, answer.json())
        rerun = answer.json()
        rerun_id = rerun["transaction_id"]
        self.assertNotEqual(rerun_id, original_id)
        self.assertEqual(rerun["status"], "succeeded")
        self.assertEqual(rerun["message"], expected_final_message(MESSAGE))
        self.assertEqual(rerun["owner"], "rerunner")
        self.assertEqual((rerun["rerun_of"], rerun["from_hop"]), (original_id, 4))
        hops = rerun["hops"]
        self.assertEqual([hop["position"] for hop in hops], list(Stage))
        self.assertEqual([hop["inherited"] for hop in hops], [True] * 3 + [False] * 5)
        for inherited, was in zip(hops[:3], before["hops"][:3], strict=True):
            for field in ("text", "started_at", "finished_at", "kafka", "attempts"):
                self.assertEqual(inherited[field], was[field], field)
        self.assertEqual(rerun["unfinished_hops"], [])

        # Hops 2 and 3 were not done again: no record of the rerun on the request topic,
        # the original's one; hop 6 wrote the rerun's own on the reply topic.
        self.assertEqual(records_for(settings.KAFKA_REQUEST_TOPIC, rerun_id), [])
        self.assertEqual(len(records_for(settings.KAFKA_REQUEST_TOPIC, original_id)), 1)
        self.assertEqual(len(records_for(settings.KAFKA_REPLY_TOPIC, rerun_id)), 1)

        # Recorded in the audit trail: who, why, on which transactions.
        [entry] = [
            e for e in AuditEntry.objects.filter(action="rerun") if rerun_id in e.transaction_ids
        ]
        self.assertEqual(entry.transaction_ids, [original_id, rerun_id])
        self.assertIn(entry.actor_name, ("rerunner", "operator"))
        self.assertIn("back", entry.reason)

        # The original is as it was.
        self.assertEqual(self.get(f"/api/transactions/{original_id}/").json(), before)

        compared = self.get(f"/api/transactions/{original_id}/compare/{rerun_id}/")
        self.assertEqual(compared.status_code, 200, compared.json())
        body = compared.json()
        self.assertEqual(body["lineage_root"], original_id)
        self.assertEqual(body["left"]["transaction_id"], original_id)
        self.assertEqual(body["right"]["transaction_id"], rerun_id)
        rows = {row["position"]: row for row in body["hops"]}
        for position in (1, 2, 3):
            self.assertTrue(rows[position]["same_text"])
            self.assertTrue(rows[position]["same_record"])
            self.assertEqual(rows[position]["right"]["state"], "inherited")
        self.assertEqual(rows[5]["left"]["state"], "failed")
        self.assertGreaterEqual(rows[5]["left"]["attempts"], 1)
        self.assertEqual(rows[5]["right"]["state"], "done")
        self.assertEqual(rows[5]["diff"][0]["op"], "insert")

        # Another user's: as unknown as one that never existed.
        self.assertEqual(self.rerun(original_id, self.stranger).status_code, 404)
        path = f"/api/transactions/{original_id}/compare/{rerun_id}/"
        self.assertEqual(self.get(path, self.stranger).status_code, 404)

    def test_staff_rerun_a_succeeded_transaction_from_hop_3_reading_the_inherited_record(
        self,
    ) -> None:
        relayed = self.client.post("/api/relay/", {"message": MESSAGE}, format="json").json()
        original_id = relayed["transaction_id"]
        self.assertEqual(self.rerun(original_id).status_code, 409)  # succeeded, no from_hop
        self.assertEqual(self.rerun(original_id, from_hop=3).status_code, 409)  # not staff

        answer = self.rerun(original_id, self.staff, from_hop=3, reason="check hop 3")
        self.assertEqual(answer.status_code, 200, answer.json())
        rerun = answer.json()
        self.assertEqual(rerun["message"], relayed["message"])
        self.assertEqual(rerun["owner"], "rerunner")  # owned like the original
        # Hop 3 read hop 2's record: the original's, which names the original.
        self.assertEqual(rerun["hops"][2]["kafka"], relayed["hops"][1]["kafka"])
        self.assertFalse(rerun["hops"][2]["inherited"])
        self.assertEqual(records_for(settings.KAFKA_REQUEST_TOPIC, rerun["transaction_id"]), [])

        # A rerun of the rerun, from hop 7, reads the first rerun's record of hop 6.
        again = self.rerun(rerun["transaction_id"], self.staff, from_hop=7, reason="hop 7")
        self.assertEqual(again.status_code, 200, again.json())
        self.assertEqual(again.json()["hops"][6]["kafka"], rerun["hops"][5]["kafka"])
        path = f"/api/transactions/{original_id}/compare/{again.json()['transaction_id']}/"
        self.assertEqual(self.get(path).json()["lineage_root"], original_id)

    def test_a_repeated_idempotency_key_gives_the_same_rerun(self) -> None:
        with service_stopped("grpc"):
            failed = self.client.post(
                "/api/relay/",
                {"message": MESSAGE},
                format="json",
                headers={"Prefer": "respond-async"},
            ).json()
            # The owner cannot rerun it while it is pending.
            self.assertEqual(self.rerun(failed["transaction_id"]).status_code, 409)
            self.client.post(f"/api/transactions/{failed['transaction_id']}/cancel/")
        original_id = failed["transaction_id"]
        key = {"Idempotency-Key": "rerun-1", "Prefer": "respond-async"}
        first = self.rerun(original_id, headers=key)
        self.assertEqual(first.status_code, 202, first.json())
        self.assertEqual(first["Location"], first.json()["url"])
        second = self.rerun(original_id, headers=key)
        self.assertIn(second.status_code, (200, 202), second.json())
        self.assertEqual(second.json()["transaction_id"], first.json()["transaction_id"])
        # Not staff: only from the hop it stopped at.
        stopped = first.json()["from_hop"]
        other = 2 if stopped != 2 else 3
        refused = self.rerun(original_id, from_hop=other)
        self.assertEqual(refused.status_code, 403, refused.json())
        self.assertIn("staff may choose another", refused.json()["detail"])

    def test_the_command_line_reruns_and_prints_the_inherited_hops_as_such(self) -> None:
        relayed = self.client.post("/api/relay/", {"message": MESSAGE}, format="json").json()
        original_id = relayed["transaction_id"]
        refused = relay_command("rerun", original_id, "--from-hop", "4", "--token", self.token)
        self.assertEqual(refused.returncode, REFUSED, refused.stderr)
        self.assertIn("only staff rerun it", refused.stderr)

        run = relay_command(
            "rerun",
            original_id,
            "--from-hop",
            "4",
            "--reason",
            "a check",
            "--token",
            self.staff_token,
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(f"of {original_id} from hop 4", run.stderr)
        lines = [STAMP.sub("", line) for line in run.stdout.splitlines()]
        inherited = [line.removesuffix("\tinherited") for line in lines[:3]]
        self.assertTrue(all(line.endswith("\tinherited") for line in lines[:3]), lines)
        self.assertFalse(any(line.endswith("\tinherited") for line in lines[3:]), lines)
        self.assertEqual(inherited + lines[3:], expected_log_lines(MESSAGE))

    def test_the_same_key_sent_at_once_by_several_clients_makes_one_rerun(self) -> None:
        relayed = self.client.post("/api/relay/", {"message": MESSAGE}, format="json").json()
        original_id = relayed["transaction_id"]

        def rerun(_: int) -> Any:
            return web(self.staff_token).rerun(
                original_id, from_hop=6, respond_async=True, idempotency_key="at-once"
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(rerun, range(4)))
        for answer in answers:
            self.assertIn(answer.status, (200, 202), answer.body)
        self.assertEqual(len({answer.body["transaction_id"] for answer in answers}), 1)
        self.assertEqual(Transaction.objects.filter(rerun_of_id=original_id).count(), 1)
