"""``manage.py relay "hello world"``: send a message through a running stack and print the
original example's log lines live, as its hops complete (and each attempt of a hop that
failed, as it ends); ``manage.py relay cancel ID`` cancels a transaction in flight;
``manage.py relay show ID`` prints one as it is now (its dead letter among the rest);
``manage.py relay rerun ID [--from-hop N] [--reason ...]`` reruns one that ended, printing
its hops as ``relay`` does, the inherited ones marked so.

A thin client of the HTTP API (``relay_app/integrations/relay_api.py``): it relays with
``Prefer: respond-async``, then follows the transaction's event stream. Its exit code says
how the transaction ended (``EXIT_CODES``), so scripts can tell the cases apart.
"""

import argparse
import json
import os
import time
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.hops import Stage
from relay_app.integrations.relay_api import RelayClient
from relay_app.original_log import BANNER, escape

TOKEN_VARIABLE = "RELAY_API_TOKEN"  # noqa: S105 - the variable's name, not a token

SUCCEEDED = 0
BAD_INPUT = 2
TIMED_OUT = 3
UNAVAILABLE = 4
UNREACHABLE = 5
CANCELLED = 6
NOT_FOUND = 7
REFUSED = 8
EXIT_CODES = f"""exit codes:
  {SUCCEEDED}  succeeded (with --async: accepted)
  1  an unexpected answer (a bug: please report it)
  {BAD_INPUT}  bad input or usage: the relay refused the message (400, 413, 415, 422)
  {TIMED_OUT}  timed out: the deadline passed (504, or the transaction ended timed_out)
  {UNAVAILABLE}  a dependency is down, or the relay is at capacity or over your rate
     (503, 429, or the transaction ended failed)
  {UNREACHABLE}  the relay cannot be reached, or refused the credentials (401, 403)
  {CANCELLED}  cancelled (409 while waiting, or the transaction ended cancelled); for
     `relay cancel ID`: it had already ended (409)
  {NOT_FOUND}  `relay cancel ID` or `relay rerun ID`: no such transaction of yours (404)
  {REFUSED}  `relay rerun ID`: refused, and why (409: still pending, or succeeded; 403:
     only staff choose another hop; 400: no such hop to rerun from)

`relay cancel ID` cancels the transaction ID (yours; staff: anyone's) and prints it as JSON.
`relay show ID` prints it as JSON, and on stderr where its dead letter went, if it has one
(exit code 0, or 7 if not found).
`relay rerun ID` reruns it from the hop it stopped at (staff: --from-hop N, any hop whose
input was recorded) as a new transaction, and prints that one's hops as they complete: the
inherited ones (done by the original, not again) end with a tab and `inherited`.
"""
_BY_STATUS = {
    "succeeded": SUCCEEDED,
    "timed_out": TIMED_OUT,
    "failed": UNAVAILABLE,
    "cancelled": CANCELLED,
}
_BY_HTTP_STATUS = {
    400: BAD_INPUT,
    413: BAD_INPUT,
    415: BAD_INPUT,
    422: BAD_INPUT,
    401: UNREACHABLE,
    403: UNREACHABLE,
    429: UNAVAILABLE,
    503: UNAVAILABLE,
    504: TIMED_OUT,
    404: NOT_FOUND,
    409: CANCELLED,
}
# A stream cut short is opened again (from its last event) this many times.
RECONNECTS = 3


class Command(BaseCommand):
    help = (
        "Relay MESSAGE through the running stack and print the original example's log lines"
        " as its hops complete (a progress bar on a terminal), then the closing banner. The"
        f" API token comes from --token or ${TOKEN_VARIABLE}; without one (where anonymous"
        " relays are allowed) the lines come at the end, from the answer."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EXIT_CODES
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        scheme = "https" if settings.HTTP_TLS_CERT_FILE else "http"
        parser.add_argument(
            "message",
            nargs="+",
            help="the text to relay (one argument: quote it); or `cancel ID`, `show ID` or"
            " `rerun ID`",
        )
        parser.add_argument(
            "--url",
            default=f"{scheme}://{settings.HTTP_ADDRESS}",
            help="the relay's web server (default: HTTP_ADDRESS, %(default)s)",
        )
        parser.add_argument(
            "--token",
            default=os.environ.get(TOKEN_VARIABLE, ""),
            help=f"an API token (default ${TOKEN_VARIABLE}); manage.py create_api_token makes one",
        )
        parser.add_argument(
            "--json", action="store_true", help="print only the final transaction, as JSON"
        )
        parser.add_argument(
            "--reason", default="", help="`cancel ID`, `rerun ID`: why (kept in the audit trail)"
        )
        parser.add_argument(
            "--async",
            dest="respond_async",
            action="store_true",
            help="print the transaction's id once accepted, and return at once",
        )
        parser.add_argument(
            "--from-hop",
            type=int,
            choices=range(1, len(Stage) + 1),
            metavar="N",
            help="`relay rerun ID`: the hop to run again from, 1-8 (staff; default: the one"
            " it stopped at)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            help="seconds to wait for the server at any one moment (default %(default)s)",
        )

    failure = ""

    def handle(self, *args: Any, **options: Any) -> None:
        self.options = options
        self.progress = not options["json"] and self.stdout.isatty()
        self.hops_seen: set[int] = set()
        self.attempts_failed = 0
        self.started = time.monotonic()
        words = options["message"]
        operation = (
            words[0] if len(words) == 2 and words[0] in ("cancel", "show", "rerun") else None
        )
        if len(words) > 1 and operation is None:
            raise CommandError(
                "relay one message, quoted as one argument, or `cancel ID`, `show ID` or"
                " `rerun ID`",
                returncode=BAD_INPUT,
            )
        if operation and not _is_uuid(words[1]):
            raise CommandError(f"{words[1]!r} is not a transaction id", returncode=BAD_INPUT)
        try:
            with self.client() as client:
                if operation == "cancel":
                    code = self.cancel(client, words[1])
                elif operation == "show":
                    code = self.show(client, words[1])
                elif operation == "rerun":
                    code = self.rerun(client, words[1])
                else:
                    code = self.run(client, words[0])
        except OSError as exc:  # requests' errors among them: no answer
            raise CommandError(
                f"cannot reach the relay at {options['url']}: {exc}", returncode=UNREACHABLE
            ) from exc
        finally:
            self.clear_progress()
        if code:
            # BaseCommand turns this into the exit code (and prints the message on stderr).
            raise CommandError(self.failure, returncode=code)

    def client(self) -> RelayClient:
        return RelayClient(
            self.options["url"],
            token=self.options["token"] or None,
            ca_file=settings.HTTP_TLS_CA_FILE,
            timeout=self.options["timeout"],
        )

    def run(self, client: RelayClient, message: str) -> int:
        """Relay, follow, print; the exit code."""
        streaming = bool(self.options["token"])  # reading a transaction needs a token
        answer = client.relay(message, respond_async=streaming or self.options["respond_async"])
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 202:
            if self.options["respond_async"]:
                self.stdout.write(body["transaction_id"])
                return SUCCEEDED
            return self.follow(client, body["events"])
        if "transaction_id" in body and "status" in body:
            # Answered at once: settled (no token to follow it), or a repeated key's outcome.
            return self.settled(body)
        return self.refused(answer.status, body)

    def cancel(self, client: RelayClient, transaction_id: str) -> int:
        """Cancel the transaction; print it as it is now (JSON); the exit code."""
        answer = client.cancel(transaction_id, reason=self.options["reason"])
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 200:
            self.stdout.write(json.dumps(body, indent=2))
            return SUCCEEDED
        if answer.status == 409 and "transaction_id" in body:
            self.stdout.write(json.dumps(body, indent=2))
        return self.refused(answer.status, body)

    def show(self, client: RelayClient, transaction_id: str) -> int:
        """Print the transaction as it is now (JSON), and where its dead letter went; the
        exit code."""
        answer = client.get(f"/api/transactions/{transaction_id}/")
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status != 200:
            return self.refused(answer.status, body)
        self.stdout.write(json.dumps(body, indent=2))
        if dead := body.get("dead_letter"):
            self.stderr.write(f"dead letter: {_dead_letter(dead)}")
        return SUCCEEDED

    def rerun(self, client: RelayClient, transaction_id: str) -> int:
        """Rerun the transaction, follow the rerun and print it as ``run`` does; the exit
        code (``REFUSED`` with why, when it was)."""
        if not self.options["token"]:
            self.failure = f"rerunning needs an API token (--token or ${TOKEN_VARIABLE})"
            return UNREACHABLE
        answer = client.rerun(
            transaction_id,
            from_hop=self.options["from_hop"],
            reason=self.options["reason"],
            respond_async=True,
        )
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 202:
            if self.options["respond_async"]:
                self.stdout.write(body["transaction_id"])
                return SUCCEEDED
            if not self.options["json"]:
                self.stderr.write(
                    f"rerun {body['transaction_id']} of {transaction_id} from hop"
                    f" {body['from_hop']}"
                )
            return self.follow(client, body["events"])
        if "transaction_id" in body and "status" in body:
            return self.settled(body)  # from hop 8: done at once
        code = self.refused(answer.status, body)
        return REFUSED if answer.status in (400, 403, 409) else code

    def refused(self, status: int, body: dict[str, Any]) -> int:
        """An answer without a transaction: say why, in the API's words, each field's
        reasons on a line of their own."""
        lines = [str(body.get("detail") or f"HTTP {status}")]
        for field, reasons in (body.get("errors") or {}).items():
            lines += (f"  {field}: {reason}" for reason in reasons)
        self.failure = "\n".join(lines)
        if self.options["json"] and body:
            self.stdout.write(json.dumps(body, indent=2))
        return _BY_HTTP_STATUS.get(status, 1)

    def follow(self, client: RelayClient, events_url: str) -> int:
        """Print each hop as its event arrives, then the end; reconnect a stream cut short."""
        path = events_url[events_url.index("/api/") :]
        for _ in range(RECONNECTS + 1):
            try:
                with client.events(path, last_event_id=max(self.hops_seen, default=0)) as events:
                    if events.status != 200:
                        body = events.answer().body
                        return self.refused(events.status, body if isinstance(body, dict) else {})
                    for event in events:
                        if event.name == "attempt":
                            self.attempt(event.json())
                        elif event.name == "hop":
                            self.hop(event.json())
                        elif event.name in ("settled", "cancelled"):
                            return self.settled(event.json())
            except OSError:
                pass  # cut short: open it again, from the last hop received
        self.failure = "the event stream ended before the transaction did"
        return 1

    def attempt(self, attempt: dict[str, Any]) -> None:
        """An attempt of a hop that did not succeed: a line of its own (on stderr, so that
        stdout keeps the original example's lines alone), and on the progress bar."""
        self.attempts_failed += 1
        then = "; trying again" if attempt["retried"] else ""
        if not self.options["json"]:
            self.clear_progress()
            self.stderr.write(
                f"attempt {attempt['number']} of hop {attempt['position']} ({attempt['stage']})"
                f" {attempt['outcome']}: {attempt['error']}{then}"
            )
        self.show_progress()

    def hop(self, hop: dict[str, Any]) -> None:
        if hop["position"] in self.hops_seen:
            return
        self.hops_seen.add(hop["position"])
        inherited = "\tinherited" if hop.get("inherited") else ""
        self.line(hop["finished_at"], f"{hop['label']}{escape(hop['text'])} {inherited}")
        self.show_progress()

    def settled(self, transaction: dict[str, Any]) -> int:
        for hop in transaction["hops"]:  # any not streamed (an answer without a stream)
            self.hop({**hop, "label": Stage(hop["position"]).spec.log_label})
        status = transaction["status"]
        if self.options["json"]:
            self.stdout.write(json.dumps(transaction, indent=2))
        elif status == "succeeded":
            at = transaction["finished_at"]
            for text in (BANNER, "End of transaction with Message:", transaction["message"]):
                self.line(at, escape(text))
            self.line(at, BANNER)
        self.failure = (
            f"transaction {transaction['transaction_id']} {status}: {transaction['error']}"
        )
        if dead := transaction.get("dead_letter"):
            self.failure += f"; dead letter: {_dead_letter(dead)}"
        return _BY_STATUS.get(status, 1)

    def line(self, at: str, text: str) -> None:
        """One line as the transaction log has it: the original example's timestamp, local time."""
        if self.options["json"]:
            return
        stamp = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone()
        self.clear_progress()
        self.stdout.write(f"{stamp:%Y/%m/%d %H:%M:%S} {text}")

    def show_progress(self) -> None:
        if not self.progress:
            return
        done = len(self.hops_seen)
        bar = "#" * done + "." * (len(Stage) - done)
        seconds = time.monotonic() - self.started
        retries = f", {self.attempts_failed} failed attempt(s)" if self.attempts_failed else ""
        self.stdout.write(f"[{bar}] {done}/{len(Stage)} hops{retries}, {seconds:.1f} s", ending="")
        self.stdout.flush()

    def clear_progress(self) -> None:
        if getattr(self, "progress", False):
            self.stdout.write("\r\033[K", ending="")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _dead_letter(dead: dict[str, Any]) -> str:
    """``CommunicationTopic.DLT[0]@3 (redrive: rerun from hop 4)``."""
    return (
        f"{dead['topic']}[{dead['partition']}]@{dead['offset']}"
        f" (redrive: rerun from hop {dead['redrive_from_hop']})"
    )
