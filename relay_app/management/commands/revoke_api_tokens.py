"""``manage.py revoke_api_tokens``: refuse a token, or all of a user's, from now on."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.models import AuditEntry
from relay_app.selectors import api_token_list
from relay_app.services.accounts import operator_name
from relay_app.services.tokens import SHOWN_CHARACTERS, api_tokens_revoke


class Command(BaseCommand):
    help = (
        "Revoke API tokens: every token of USERNAME, or the one whose first characters"
        " (as create_api_token and the admin show them) are PREFIX."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--user", metavar="USERNAME", help="every token of this user")
        which.add_argument("--prefix", help=f"the token's first {SHOWN_CHARACTERS} characters")
        parser.add_argument("--reason", default="", help="why (for the audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["user"] is not None:
            tokens = api_token_list(username=options["user"])
        else:
            prefix = options["prefix"][:SHOWN_CHARACTERS]
            tokens = api_token_list(prefix=prefix)
            if tokens.count() > 1:
                raise CommandError(
                    f"{tokens.count()} tokens start with {prefix!r}: revoke them in the admin,"
                    " or all of the user's with --user"
                )
        if not tokens.exists():
            raise CommandError("no such token")
        revoked = api_tokens_revoke(
            tokens=tokens,
            actor=operator_name(),
            source=AuditEntry.Source.CLI,
            reason=options["reason"],
        )
        self.stdout.write(f"revoked {revoked} token(s)")
