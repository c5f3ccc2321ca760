"""What one scenario found, and the one summary format of a run, for ``make chaos`` and
``make chaos-cluster`` alike (keep every field of the line once added: scripts read them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


@dataclass
class Report:
    scenario: str
    sent: int
    ok: int
    unavailable: int
    timed_out: int
    other: int
    no_answer: int
    hung: int
    wrong_text: int
    final_states: dict[str, int]
    pending: int
    lost: int
    duplicated: int
    healed_after_seconds: float | None
    success_ratio: float
    leader_move_s: float | None = None
    requirement_met: bool = True  # the scenario's share of successes and most failures

    @property
    def passed(self) -> bool:
        return (
            self.requirement_met
            and self.lost == 0
            and self.duplicated == 0
            and self.pending == 0
            and self.hung == 0
            and self.wrong_text == 0
            and self.no_answer == 0
            and self.healed_after_seconds is not None
        )


def summarize(reports: list[Report]) -> dict[str, Any]:
    """The run's one line: its figures, and which scenarios failed. ``ok`` and ``succeeded``
    are the same count, the 200s, under the names chaos and chaos-cluster first gave it."""
    moves = [report.leader_move_s for report in reports if report.leader_move_s is not None]
    return {
        "scenarios": len(reports),
        "passed": sum(report.passed for report in reports),
        "sent": sum(report.sent for report in reports),
        "ok": sum(report.ok for report in reports),
        "succeeded": sum(report.ok for report in reports),
        "lost": sum(report.lost for report in reports),
        "duplicated": sum(report.duplicated for report in reports),
        "pending": sum(report.pending for report in reports),
        "hung": sum(report.hung for report in reports),
        "success_ratio_min": min((report.success_ratio for report in reports), default=0.0),
        "leader_move_s_max": max(moves, default=None),
        "failed": [report.scenario for report in reports if not report.passed],
    }


def write(path: Path, reports: list[Report]) -> dict[str, Any]:
    """The run's summary, written with every scenario's report to ``path``."""
    summary = summarize(reports)
    path.parent.mkdir(parents=True, exist_ok=True)
    scenarios = [asdict(report) for report in reports]
    path.write_text(json.dumps({"summary": summary, "scenarios": scenarios}, indent=2))
    return summary
