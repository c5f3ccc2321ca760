"""``make audit``: known vulnerabilities in the locked requirements, by pip-audit.

pip-audit asks a vulnerability service about each package. When the service cannot be
reached it does not fail: it skips the package and still prints "No known vulnerabilities
found". This says instead, plainly, that there is no verdict (exit 2), trying PyPI's service
first and then OSV's. Exit 0: every package audited, none vulnerable; 1: vulnerabilities.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The development lock holds every package the runtime one does, each pinned with its hashes:
# audited as installed, without resolving anything.
REQUIREMENTS = ROOT / "requirements-dev.lock"
SERVICES = {
    "pypi": "PyPI's JSON API (pypi.org/pypi/<package>/<version>/json)",
    "osv": "OSV (api.osv.dev)",
}


def _say(message: str) -> None:
    print(f"[audit] {message}", flush=True)


def _audit(service: str) -> dict[str, Any] | str:
    """pip-audit's JSON report from ``service``, or why there is none."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(REQUIREMENTS),
            "--disable-pip",
            "--no-deps",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return f"pip-audit gave no report ({last[:300]})"
    return report


def main() -> int:
    for service, source in SERVICES.items():
        _say(f"resolving {REQUIREMENTS.name} and asking {source} (a minute or two)")
        report = _audit(service)
        if isinstance(report, str):
            _say(f"{source} could not be used: {report}")
            continue
        dependencies = report["dependencies"]
        skipped = [d for d in dependencies if "skip_reason" in d]
        if len(skipped) == len(dependencies):
            _say(
                f"{source} answered for none of the {len(dependencies)} packages: it cannot"
                " be reached from this machine"
            )
            continue
        vulnerable = [d for d in dependencies if d.get("vulns")]
        for dependency in vulnerable:
            for vulnerability in dependency["vulns"]:
                fixed = ", ".join(vulnerability.get("fix_versions") or []) or "no fix yet"
                _say(
                    f"VULNERABLE {dependency['name']} {dependency['version']}:"
                    f" {vulnerability['id']} (fixed in {fixed})"
                )
        for dependency in skipped:
            _say(f"not audited: {dependency['name']}: {dependency['skip_reason']}")
        audited = len(dependencies) - len(skipped)
        _say(
            f"{audited} of {len(dependencies)} packages audited against {source}:"
            f" {len(vulnerable)} with known vulnerabilities"
        )
        if vulnerable:
            return 1
        return 2 if skipped else 0
    _say(
        "NO VERDICT: no vulnerability source could be reached from this machine, so nothing"
        " was checked; run `make audit` where PyPI's JSON API or api.osv.dev is reachable"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
