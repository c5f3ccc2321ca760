"""``manage.py create_api_token USERNAME``: a new API token, alone on the last line of stdout."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_app.models import AuditEntry
from relay_app.services.accounts import operator_name, user_get_or_create
from relay_app.services.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Make an API token for USERNAME, creating that user if missing (not staff, no"
        " password). An existing user keeps its flags: a staff user gets a staff token. The"
        " token is printed once, alone on the last line, for scripts to capture:"
        " TOKEN=$(.venv/bin/python manage.py create_api_token alice | tail -n 1)"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for (shown in the admin)")
        parser.add_argument("--reason", default="", help="why it is made (for the audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, created = user_get_or_create(username=options["username"])
        except ValidationError as exc:
            reasons = "; ".join(
                message for messages in exc.message_dict.values() for message in messages
            )
            raise CommandError(f"cannot create user {options['username']!r}: {reasons}") from exc
        if not user.is_active:
            raise CommandError(
                f"user {user.get_username()!r} is inactive: its tokens would open nothing"
            )
        issued = api_token_create(
            user=user,
            name=options["name"],
            actor=operator_name(),
            source=AuditEntry.Source.CLI,
            reason=options["reason"],
        )
        role = "staff" if getattr(user, "is_staff", False) else "not staff"
        self.stdout.write(
            f"{'created' if created else 'existing'} user {user.get_username()!r} ({role});"
            f" token {issued.record.prefix}… made: send it as 'Authorization: Bearer <token>'."
            " It is shown only now; revoke it with"
            f" `manage.py revoke_api_tokens --prefix {issued.record.prefix}`."
        )
        self.stdout.write(issued.token)
