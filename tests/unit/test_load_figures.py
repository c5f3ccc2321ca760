"""The bench's and chaos's figures from a ledger: answers classed alike, percentiles in any
unit, CPU counted per service (a proxy as the web's), and one summary line for both chaos runs."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from django.test import SimpleTestCase

from ops.bench.__main__ import main
from ops.bench.client import KINDS, classify, outcome
from ops.bench.figures import (
    cpu_ms_per_refusal_derived,
    cpu_per,
    latencies,
    level,
    part_line,
    percentile,
    refusal_cost,
    refusal_cpu,
    refusal_parts,
)
from ops.bench.refusals import main_threads_cpu, web_counts
from ops.bench.usage import Usage, cpu_seconds, service
from ops.chaos.report import Report, summarize
from ops.ledger import Entry
from relay_app.hops import expected_final_message


def entry(status: int, body: object = None, retry_after: str | None = None) -> Entry:
    return Entry(
        "hello", sent_at=0.0, seconds=0.25, status=status, body=body, retry_after=retry_after
    )


def report(name: str, ok: int, *, lost: int = 0, moved: float | None = None) -> Report:
    return Report(
        scenario=name,
        sent=10,
        ok=ok,
        unavailable=10 - ok,
        timed_out=0,
        other=0,
        no_answer=0,
        hung=0,
        wrong_text=0,
        final_states={},
        pending=0,
        lost=lost,
        duplicated=0,
        healed_after_seconds=0.1,
        success_ratio=ok / 10,
        leader_move_s=moved,
    )


class LoadFiguresTests(SimpleTestCase):
    def test_each_answer_is_classed_by_status_text_and_retry_after(self) -> None:
        right = {"message": expected_final_message("hello"), "hops": []}
        cases = [
            (entry(200, right), "ok"),
            (entry(200, {"message": "HELLO"}), "wrong_text"),
            (entry(200, "<html>"), "wrong_text"),
            (entry(503, {"detail": "at capacity"}, retry_after="4"), "shed_503"),
            (entry(503, {"detail": "at capacity"}, retry_after="soon"), "other_503"),
            (entry(503, "<html>bad gateway</html>"), "other_503"),
            (entry(504, {"detail": "deadline"}), "timeouts_504"),
            (entry(400, {"detail": "bad"}), "other"),
            (entry(0), "connection_errors"),
        ]
        for answer, kind in cases:
            with self.subTest(kind=kind, body=answer.body):
                self.assertEqual(classify(answer)[0], kind)
        self.assertEqual({kind for _, kind in cases}, set(KINDS))

    def test_a_retry_after_is_obeyed_only_as_finite_seconds(self) -> None:
        self.assertEqual(entry(503, retry_after="2.5").pause, 2.5)
        for unusable in (None, "", "-1", "inf", "nan", "Wed, 21 Oct 2026 07:28:00 GMT"):
            self.assertIsNone(entry(503, retry_after=unusable).pause, unusable)

    def test_percentiles_by_nearest_rank_in_either_unit(self) -> None:
        self.assertEqual(percentile([], 50), 0.0)
        self.assertEqual(percentile([3.0, 1.0, 2.0, 4.0], 50), 2.0)
        seconds = [i / 1000 for i in range(1, 101)]
        self.assertEqual(latencies(seconds)["p99_ms"], 99.0)
        self.assertEqual(latencies(seconds, "s")["max_s"], 0.1)
        self.assertEqual(latencies(seconds)["mean_ms"], 50.5)

    def test_a_level_counts_refusals_in_latencies_not_in_throughput_or_cpu(self) -> None:
        ok = {"seconds": 0.1, "kind": "ok", "detail": "", "pause": None, "timeline": {"hops": 5.0}}
        shed = {"seconds": 0.01, "kind": "shed_503", "detail": "HTTP 503", "pause": 4.0}
        run = {"seconds": 2.0, "outcomes": [ok, ok, {**shed, "timeline": None}]}
        figures = level(32, [run], {"web": 0.2, "worker": 0.4}, {"web": 100.0})
        self.assertEqual((figures["transactions"], figures["errors"], figures["tps"]), (3, 1, 1.0))
        self.assertEqual(figures["cpu_ms_per_tx"], {"web": 100.0, "worker": 200.0})
        self.assertEqual(figures["cpu_ms_per_tx_total"], 300.0)
        self.assertEqual(figures["timeline_p50_ms"], {"hops": 5.0})
        self.assertEqual(cpu_per({"web": 1.0}, 0, "ok")["cpu_ms_per_ok_total"], None)

    def test_a_refusal_derived_costs_what_the_web_spent_beyond_its_transactions(self) -> None:
        ok = {"seconds": 0.1, "kind": "ok", "detail": "", "pause": None, "timeline": None}
        shed = {**ok, "seconds": 0.01, "kind": "shed_503", "detail": "HTTP 503", "pause": 0.0}
        c32 = level(32, [{"seconds": 1.0, "outcomes": [ok] * 10}], {"web": 0.1}, {})
        run = {"seconds": 1.0, "outcomes": [ok] * 10 + [shed] * 50}
        loaded = level(128, [run], {"web": 0.15, "worker": 9.0}, {})  # the worker: no refusal's
        self.assertEqual(loaded["refused"], 50)
        derived = cpu_ms_per_refusal_derived(loaded["cpu_ms"], served=10, refused=50, c32=c32)
        self.assertEqual(derived, 1.0)  # (150 - 10 x 10) ms / 50
        self.assertIsNone(cpu_ms_per_refusal_derived({"web": 10.0}, served=1, refused=0, c32=c32))

    def test_a_refusal_costs_its_threads_cpu_and_what_any_request_costs(self) -> None:
        # The web server's thread: 30 ms over 20 refusals, 50 ms over 80; gunicorn's main
        # thread and the proxy: per request, of 100 and 400 (refusals and 200s alike).
        plain = refusal_parts(
            {"refusal_cpu_s": 0.03, "refused": 20.0, "main_thread_cpu_s": 0.02, "proxy_cpu_s": 0.1},
            100,
        )
        over = refusal_parts(
            {"refusal_cpu_s": 0.05, "refused": 80.0, "main_thread_cpu_s": 0.08, "proxy_cpu_s": 0.4},
            400,
        )
        self.assertEqual(
            (plain["refused"], plain["requests"], plain["refusal_cpu_ms"]), (20, 100, 30.0)
        )
        cost = refusal_cost([plain, over])
        self.assertEqual(cost["web_thread_cpu_ms_per_refusal"], 0.8)  # 80 ms / 100
        self.assertEqual(cost["web_main_thread_cpu_ms_per_request"], 0.2)  # 100 ms / 500
        self.assertEqual(cost["proxy_cpu_ms_per_request"], 1.0)  # 500 ms / 500
        self.assertEqual(cost["cpu_ms_per_refusal"], 2.0)
        self.assertEqual((cost["refused"], cost["requests"]), (100, 500))
        none = over | {"refused": 0, "refusal_cpu_ms": 0.0}
        self.assertIsNone(refusal_cost([none])["cpu_ms_per_refusal"])

    def test_the_headline_refusal_cpu_is_measured_and_the_derived_kept_apart(self) -> None:
        ok = {"seconds": 0.1, "kind": "ok", "detail": "", "pause": None, "timeline": None}
        shed = {**ok, "seconds": 0.01, "kind": "shed_503", "detail": "HTTP 503", "pause": 0.0}
        c32 = level(32, [{"seconds": 1.0, "outcomes": [ok] * 10}], {"web": 0.1}, {})
        c128 = level(128, [{"seconds": 1.0, "outcomes": [ok] * 10 + [shed] * 10}], {"web": 0.3}, {})
        grown = {"refusal_cpu_s": 0.01, "refused": 10.0, "main_thread_cpu_s": 0.0}
        c128["refusals"] = refusal_parts(grown | {"proxy_cpu_s": 0.02}, 20)
        over = {"ok": 10, "shed_503": 40, "cpu_ms": {"web": 140.0}}
        over["refusals"] = refusal_parts(grown | {"refused": 40.0, "proxy_cpu_s": 0.03}, 50)
        figures = refusal_cpu({"levels": [c32, c128], "overload": over})
        # (10 + 10 ms) / 50 refusals, plus (20 + 30 ms) of the proxy over 70 requests
        self.assertEqual(figures["cpu_ms_per_refusal"], round(0.4 + 50 / 70, 3))
        self.assertEqual(figures["cpu_ms_per_refusal_derived"], 20.0)  # (300 - 10 x 10) / 10
        self.assertEqual(figures["cpu_ms_per_refusal_derived_overload"], 1.0)  # (140 - 100) / 40
        c128["refusals"] = refusal_parts(grown | {"proxy_cpu_s": 0.02}, 20)
        results = {"levels": [c32, c128], "overload": {**over, "refused": 40}}
        line = part_line(mode="quick", part="plain_c128", results=results)
        self.assertEqual(line["cpu_ms_per_refusal"], 2.0)  # 10 ms / 10, and 20 ms / 20
        self.assertEqual(line["cpu_ms_per_refusal_derived"], 20.0)
        self.assertEqual(line["cpu_ms_per_tx"], 10.0)

    def test_a_part_run_alone_has_the_whole_runs_figure_and_target(self) -> None:
        burst = {"sent": 100, "ok": 94, "shed_503": 6}
        line = part_line(mode="quick", part="burst", results={"burst": burst})
        self.assertEqual((line["burst_admitted"], line["targets_met"]), (94, {"burst": False}))
        ok = {"seconds": 0.1, "kind": "ok", "detail": "", "pause": None, "timeline": None}
        late = {**ok, "kind": "timeouts_504", "detail": "HTTP 504"}
        c32 = level(32, [{"seconds": 1.0, "outcomes": [ok] * 10}], {}, {})
        c128 = level(128, [{"seconds": 1.0, "outcomes": [ok] * 9 + [late]}], {}, {})
        line = part_line(mode="quick", part="plain_c128", results={"levels": [c32, c128]})
        self.assertEqual((line["plain_c128_goodput_ratio"], line["timeouts_c128"]), (0.9, 1))
        self.assertEqual(line["targets_met"], {"plain_c128": False})
        over = {"p99_s": 5.2, "max_s": 5.9, "goodput_ratio": 0.95, "deadline_s": 5.0}
        over |= dict.fromkeys(KINDS, 0)
        results = {"levels": [c32], "overload": over}
        line = part_line(mode="quick", part="overload", results=results)
        self.assertEqual(line["targets_met"], {"overload": True})
        results["overload"] = over | {"max_s": 6.6}  # the slowest past deadline + 1.5 s
        line = part_line(mode="quick", part="overload", results=results)
        self.assertEqual(line["targets_met"], {"overload": False})

    def test_only_the_named_parts_run_alone(self) -> None:
        with (
            mock.patch("ops.bench.__main__.bench", return_value={}) as bench,
            mock.patch("ops.bench.__main__.interrupt_on_termination"),
            mock.patch("sys.stdout"),
            mock.patch("sys.stderr"),
        ):
            with self.assertRaises(SystemExit):
                main(["run", "--only", "soak"])  # no part of its own
            main(["run", "--quick", "--only", "burst"])
        bench.assert_called_once_with(quick=True, tracing=False, only="burst")

    def test_the_proxy_and_numbered_processes_count_for_their_service(self) -> None:
        self.assertEqual(
            [service(n) for n in ("web-2", "proxy", "kafka-1", "redis")],
            ["web", "web", "kafka", "redis"],
        )
        usage = Usage({"web-1": os.getpid(), "proxy": os.getppid(), "grpc": None})
        self.assertEqual(dict(usage.roots), {"web": [os.getpid(), os.getppid()]})
        self.assertGreater(cpu_seconds([os.getpid()]), 0.0)
        self.assertGreater(usage.sample()[os.getpid()], 1.0)  # MB of this process
        self.assertEqual(cpu_seconds([]), 0.0)

    def test_the_refusal_meter_reads_the_web_servers_counts_and_main_threads(self) -> None:
        # A process in the web server's place: it counts as the web server does, in a
        # multi-process folder, and spends CPU on its main thread.
        count = (
            "import time; from relay_app.metrics import REFUSAL_CPU, REFUSED;"
            " REFUSAL_CPU.inc(0.25); REFUSED.labels('at_capacity').inc(2);"
            " REFUSED.labels('throttled').inc(); ends = time.thread_time() + 0.2\n"
            "while time.thread_time() < ends: pass\n"
            "print('counted', flush=True); input()"
        )
        with tempfile.TemporaryDirectory() as folder:
            web = subprocess.Popen(
                [sys.executable, "-c", count],
                env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                self.assertEqual(web.stdout.readline() if web.stdout else "", "counted\n")
                missing = Path(folder) / "not-yet"
                self.assertEqual(web_counts([Path(folder), missing]), (0.25, 2.0))
                # This process stands for the web server's arbiter, the child for its worker.
                self.assertGreaterEqual(main_threads_cpu([os.getpid()]), 0.2)
            finally:
                web.communicate("\n", timeout=10)

    def test_outcomes_carry_no_answer_bodies(self) -> None:
        self.assertEqual(
            set(outcome(entry(400, {"detail": "x" * 999}))),
            {"seconds", "kind", "detail", "pause", "timeline"},
        )

    def test_chaos_and_chaos_cluster_share_one_summary_line(self) -> None:
        line = summarize([report("a", 10, moved=1.5), report("b", 7, lost=1)])
        self.assertEqual(
            list(line),
            [
                "scenarios",
                "passed",
                "sent",
                "ok",
                "succeeded",
                "lost",
                "duplicated",
                "pending",
                "hung",
                "success_ratio_min",
                "leader_move_s_max",
                "retried_attempts",
                "failed",
            ],
        )
        self.assertEqual((line["ok"], line["succeeded"], line["passed"]), (17, 17, 1))
        self.assertEqual((line["success_ratio_min"], line["leader_move_s_max"]), (0.7, 1.5))
        self.assertEqual(line["failed"], ["b"])
