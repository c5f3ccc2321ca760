"""One scenario under load, and a whole run of a profile's scenarios on a stack of its own."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ops.chaos.report import Report, check, right, say, status, window, write
from ops.chaos.scenarios import ANSWER_MARGIN_SECONDS, Profile, Scenario
from ops.client import Credentials
from ops.ledger import Entry, Load

if TYPE_CHECKING:
    from ops.stack import Stack

# How much later than the deadline a transaction may get its final state.
SETTLE_GRACE_SECONDS = 5.0


def run_scenario(
    stack: Stack,
    scenario: Scenario,
    *,
    credentials: Credentials,
    clients: int = 6,
    before_seconds: float = 2.0,
    after_seconds: float = 3.0,
    answer_margin: float = ANSWER_MARGIN_SECONDS,
) -> Report:
    """Load, fault, recovery, more load; then check the ledger. The stack must be up.

    A client must get its answer within the deadline plus ``answer_margin``.
    """
    from django.conf import settings

    deadline = float(settings.RELAY_DEADLINE_SECONDS)
    load = Load(settings.HTTP_ADDRESS, credentials, timeout=deadline + 30, reconnect_pause=0.05)
    started_at = time.time()
    load.start(clients, lambda n: (f"chaos c{n} #{i} ü" for i in range(10_000)))
    time.sleep(before_seconds)
    say(f"{scenario.name}: injecting")
    moved = scenario.inject(stack)
    time.sleep(scenario.hold_seconds)
    say(f"{scenario.name}: recovering")
    scenario.recover(stack)
    recovered_at = time.time()
    time.sleep(after_seconds)
    load.stop.set()
    entries = load.join(timeout=deadline + 35)
    healed = healed_after(entries, recovered_at, credentials)
    # Transactions whose answer was cut off still settle within the deadline plus a grace,
    # or, if their waiter died with its web server, once the sweep times them out.
    last_sent = max((entry.sent_at for entry in entries), default=time.time())
    settle = deadline + SETTLE_GRACE_SECONDS
    time.sleep(min(settle, max(0.0, last_sent + settle - time.time())))
    sweep = settings.RELAY_STALE_GRACE_SECONDS + settings.RELAY_SWEEP_INTERVAL_SECONDS
    wait_settled(started_at, sweep + deadline)
    found = check(scenario, entries, started_at, deadline + answer_margin, healed, moved)
    say(describe(found, scenario))
    return found


def healed_after(entries: list[Entry], since: float, credentials: Credentials) -> float | None:
    """Seconds from the fault's removal to the first of 5 200s in a row while the load ran, or
    until 5 new requests in a row succeed now, with nothing else restarted; else None."""
    from django.conf import settings

    after = sorted((e for e in entries if e.sent_at >= since), key=lambda e: e.sent_at)
    healed = next(
        (
            round(after[i].sent_at - since, 2)
            for i in range(len(after) - 4)
            if all(status(entry) == 200 for entry in after[i : i + 5])
        ),
        None,
    )
    probe = Load(settings.HTTP_ADDRESS, credentials, timeout=15)
    probe.start(1, lambda n: (f"after the fault #{i}" for i in range(5)))
    if not all(right(entry) for entry in probe.join()):
        return None
    return healed if healed is not None else round(time.time() - since, 2)


def wait_settled(started_at: float, at_most: float) -> None:
    """Until no transaction of the window is pending, for ``at_most`` seconds."""
    from relay_app.models import Transaction

    give_up = time.monotonic() + at_most
    while time.monotonic() < give_up:
        if not window(started_at).filter(status=Transaction.Status.PENDING).exists():
            return
        time.sleep(0.5)


def describe(report: Report, scenario: Scenario) -> str:
    most = "" if scenario.max_failures is None else f", at most {scenario.max_failures} failed"
    return (
        f"{report.scenario}: sent {report.sent}, 200 {report.ok}, 503 {report.unavailable},"
        f" 504 {report.timed_out}, other {report.other}, no answer {report.no_answer},"
        f" hung {report.hung}, wrong text {report.wrong_text}; final states {report.final_states},"
        f" pending {report.pending}; lost {report.lost}, duplicated {report.duplicated};"
        f" retried attempts {report.retried_attempts};"
        f" healed after {report.healed_after_seconds} s; success ratio {report.success_ratio}"
        f" (at least {scenario.min_success_ratio}{most}) -> {'ok' if report.passed else 'FAILED'}"
    )


def chaos(profile: Profile, *, quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Every scenario of ``profile`` (those whose name holds a word of ``only``) on a fresh
    stack of its own; the run's summary, also written with each report to results.json."""
    from ops.stack import fresh_stack

    stack, credentials = fresh_stack(profile.settings_module, user="chaos")
    clients, (before, after) = (4, profile.quick) if quick else (8, profile.full)
    chosen = [
        scenario
        for scenario in profile.scenarios(clients, not quick)
        if not only or any(word in scenario.name for word in only)
    ]
    reports = []
    try:
        stack.up()
        for scenario in chosen:
            reports.append(
                run_scenario(
                    stack,
                    scenario,
                    credentials=credentials,
                    clients=clients,
                    before_seconds=before,
                    after_seconds=after,
                    answer_margin=profile.margin,
                )
            )
            stack.up()  # every process back, whatever the scenario did
    finally:
        stack.down()
    return write(stack.var_dir / "results.json", reports)
