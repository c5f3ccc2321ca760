"""``python -m ops.bench run [--quick] [--tracing]``, and ``load``, the load client's process."""

from __future__ import annotations

import argparse
import json
import sys

from ops.bench import client
from ops.bench.run import BENCH_ENV, bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole benchmark (default)")
    run.add_argument("--quick", action="store_true", help="fewer transactions, no soak")
    run.add_argument(
        "--tracing", action="store_true", help="trace every process (to measure what it costs)"
    )
    load = sub.add_parser("load", help="(internal) the load client process")
    load.add_argument("--concurrency", type=int, required=True)
    amount = load.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="transactions to send")
    amount.add_argument(
        "--duration", type=float, help="seconds of the overload level: a closed loop instead"
    )
    load.add_argument(
        "--timeout",
        type=float,
        help=f"socket timeout (default {client.LOAD_TIMEOUT:g}, "
        f"{client.OVERLOAD_TIMEOUT:g} with --duration)",
    )
    args = parser.parse_args(argv)
    if args.command == "load":
        default = client.LOAD_TIMEOUT if args.duration is None else client.OVERLOAD_TIMEOUT
        result = client.run(
            BENCH_ENV["RELAY_HTTP_ADDRESS"],
            args.concurrency,
            count=args.count,
            duration=args.duration,
            timeout=default if args.timeout is None else args.timeout,
        )
        print(json.dumps(result))
        return 0
    headline = bench(
        quick=bool(getattr(args, "quick", False)), tracing=bool(getattr(args, "tracing", False))
    )
    print(json.dumps(headline), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
