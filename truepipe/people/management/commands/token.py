"""`truepipe token create|list|revoke`: personal API tokens from the command line.

truepipe token create ravi --name "forecast script"   # prints the token, once
truepipe token list ravi
truepipe token revoke tp_AbC1234
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from truepipe.people import services
from truepipe.people.models import ApiToken


class Command(BaseCommand):
    help = "Create, list or revoke personal API tokens (sent as 'Authorization: Bearer tp_…')."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = actions.add_parser("create", help="Create a token for USERNAME and print it (shown once).")
        create.add_argument("username")
        create.add_argument(
            "--name", default="default", help="A label to tell tokens apart (default: default)."
        )
        listing = actions.add_parser("list", help="List USERNAME's tokens (prefixes only).")
        listing.add_argument("username")
        revoke = actions.add_parser("revoke", help="Revoke the token whose prefix is PREFIX.")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            user = self._user(options["username"])
            _, raw = services.create_token(None, user, name=(options["name"] or "default").strip())
            self.stdout.write(raw)
        elif action == "list":
            user = self._user(options["username"])
            tokens = ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
            if not tokens:
                self.stdout.write(f"{user.username} has no API tokens.")
            for token in tokens:
                used = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else "never"
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                self.stdout.write(
                    f"{token.prefix}  {token.name:<20}  created {token.created_at:%Y-%m-%d}  "
                    f"last used {used}  {state}"
                )
        else:
            self._revoke(options["prefix"])

    def _user(self, username: str) -> Any:
        user = get_user_model().objects.filter(username__iexact=username.strip()).first()
        if user is None:
            raise CommandError(f"There is no user called {username!r}.")
        return user

    def _revoke(self, prefix: str) -> None:
        # Accept the prefix as `token list` prints it, or the whole token pasted by mistake.
        prefix = prefix.strip().rstrip("…")
        candidates = ApiToken.objects.filter(revoked_at__isnull=True, prefix__startswith=prefix[:10])
        if len(prefix) < 6 or not candidates:
            raise CommandError(
                f"No active token starts with {prefix!r} (see `truepipe token list USERNAME`)."
            )
        if len(candidates) > 1:
            raise CommandError(
                f"{len(candidates)} active tokens start with {prefix!r}; revoke them from the API."
            )
        token = candidates[0]
        services.revoke_token(None, token)
        self.stdout.write(f"Revoked {token.prefix}… ({token.name}) of {token.user.username}.")
