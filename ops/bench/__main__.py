"""``python -m ops.bench run [--quick] [--tracing] [--only PART]``, ``profile`` (py-spy on the
stack under load), and ``load``, the load client's process."""

from __future__ import annotations

import argparse
import json
import sys

from ops.bench import client
from ops.bench.run import PARTS, bench
from ops.stack import interrupt_on_termination
from project.settings.profiles import BENCH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole benchmark (default)")
    run.add_argument("--quick", action="store_true", help="fewer transactions, no soak")
    run.add_argument("--tracing", action="store_true", help="every process traced (its cost)")
    run.add_argument(
        "--only",
        choices=PARTS,
        help="only this part, after the warm-up (plain_c128: with the level at 32 it is read"
        " against); its own line, figures in results-<part>.json",
    )
    spy = sub.add_parser("profile", help="py-spy on the stack at steady load: CPU by code part")
    spy.add_argument("--seconds", type=float, default=60.0, help="of load, sampled")
    spy.add_argument("--concurrency", type=int, default=32, help="relays in flight")
    spy.add_argument("--summary", action="store_true", help="only split the last profile again")
    load = sub.add_parser("load", help="(internal) the load client process")
    load.add_argument("--concurrency", type=int, required=True)
    amount = load.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="transactions to send")
    amount.add_argument("--duration", type=float, help="seconds of an overload level")
    args = parser.parse_args(argv)
    if args.command == "load":
        address = BENCH["HTTP_ADDRESS"]
        outcomes = client.run(address, args.concurrency, count=args.count, duration=args.duration)
        print(json.dumps(outcomes))
        return 0
    interrupt_on_termination()
    if args.command == "profile":
        from ops.bench.profile import profile, summary

        if args.summary:
            summary()
        else:
            profile(seconds=args.seconds, concurrency=args.concurrency)
        return 0
    headline = bench(
        quick=getattr(args, "quick", False),
        tracing=getattr(args, "tracing", False),
        only=getattr(args, "only", None),
    )
    print(json.dumps(headline), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
