"""A transaction's trace, read back from the stack's Zipkin (its API, ``/api/v2/``), printed as
a tree: ``make trace [ID=<transaction id>]`` (the last transaction traced by default). The
tests read traces the same way (``spans_of``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from typing import Any

import requests

Span = dict[str, Any]


def _normalized(span: dict[str, Any]) -> Span:
    """A Zipkin span as the tree and the tests read it: ids, names, times in ns, tags."""
    tags: dict[str, str] = span.get("tags", {})
    start = int(span.get("timestamp", 0)) * 1000
    return {
        "trace_id": span["traceId"],
        "span_id": span["id"],
        "parent_span_id": span.get("parentId"),
        "name": span.get("name", ""),
        "service": span.get("localEndpoint", {}).get("serviceName", ""),
        "kind": str(span.get("kind", "internal")).lower(),
        "start_ns": start,
        "end_ns": start + int(span.get("duration", 0)) * 1000,
        "status": tags.get("otel.status_code", "unset").lower(),
        "status_message": tags.get("error", ""),
        "attributes": tags,
    }


def spans_of(trace_id: str, *, zipkin: str) -> list[Span]:
    """Every span of the trace Zipkin (at ``zipkin``, host:port) has; none if it has none."""
    answer = requests.get(f"http://{zipkin}/api/v2/trace/{trace_id}", timeout=5)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return [_normalized(span) for span in answer.json()]


def tree(spans: list[Span]) -> list[str]:
    """One line a span, children indented under their parent, in the order they started."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        children[span["parent_span_id"] if span["parent_span_id"] in ids else None].append(span)
    start = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: s["start_ns"]):
            ms, at = (span["end_ns"] - span["start_ns"]) / 1e6, (span["start_ns"] - start) / 1e6
            failed = (
                f"  ERROR {span['status_message']}".rstrip() if span["status"] == "error" else ""
            )
            label = f"{'  ' * depth}{span['name']}"
            lines.append(f"{label:<58} {span['service']:<13} +{at:8.1f} ms {ms:8.1f} ms{failed}")
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return lines


def show(transaction_id: str | None, *, wait: float = 5.0) -> int:
    """Print the transaction's trace; wait up to ``wait`` seconds for its spans to arrive
    (processes send theirs every half second on the local stack)."""
    from django.conf import settings

    from relay_app.models import Transaction

    traced = Transaction.objects.exclude(trace_id="")
    transaction = (traced.filter(id=transaction_id) if transaction_id else traced).first()
    if transaction is None or not settings.ZIPKIN_ADDRESS:
        what = f"transaction {transaction_id}" if transaction_id else "any transaction"
        print(f"no trace of {what}: is the stack up with tracing on (make up)?", file=sys.stderr)
        return 1
    give_up = time.monotonic() + wait
    # Zipkin's own port, on loopback: behind the proxy (secure, cluster) its API is for staff.
    while not (spans := spans_of(transaction.trace_id, zipkin=settings.ZIPKIN_SERVER_ADDRESS)):
        if time.monotonic() > give_up:
            print(f"Zipkin has no span of trace {transaction.trace_id} yet", file=sys.stderr)
            return 1
        time.sleep(0.25)
    print(f"trace {transaction.trace_id}  transaction {transaction.id}")
    print(f"{len(spans)} spans from {', '.join(sorted({s['service'] for s in spans}))}")
    print(f"{settings.RELAY_TRACE_URL.format(trace_id=transaction.trace_id)}\n")
    print("\n".join(tree(spans)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.traces", description=__doc__)
    parser.add_argument("transaction_id", nargs="?", help="default: the last one traced")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.development")
    import django

    django.setup()
    return show(args.transaction_id)


if __name__ == "__main__":
    sys.exit(main())
