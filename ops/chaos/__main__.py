"""``python -m ops.chaos [--quick] [--cluster [--only WORD]]``: the scenarios on a stack of
their own; the last line printed is the run's summary, one JSON object."""

from __future__ import annotations

import argparse
import json
import sys

from ops.chaos import cluster, scenarios
from ops.chaos.run import chaos
from ops.stack import interrupt_on_termination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clients, shorter phases")
    parser.add_argument(
        "--cluster", action="store_true", help="the cluster profile's scenarios (chaos-cluster)"
    )
    parser.add_argument(
        "--only", action="append", help="run the scenarios whose name holds this (repeatable)"
    )
    args = parser.parse_args(argv)
    interrupt_on_termination()
    profile = cluster.PROFILE if args.cluster else scenarios.PROFILE
    summary = chaos(profile, quick=args.quick, only=args.only)
    print(json.dumps(summary), flush=True)
    return 0 if summary["scenarios"] and not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
