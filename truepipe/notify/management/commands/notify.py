"""`truepipe notify flush|digests|webhook add|webhook list`: the outbox and webhooks by hand."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from truepipe.notify import send
from truepipe.notify.models import Webhook


class Command(BaseCommand):
    help = "Send what the notification outbox holds, or manage outgoing webhooks."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("flush", help="E-mail immediate notifications and post due webhooks now.")
        actions.add_parser("digests", help="Send the daily digests now.")
        hook = actions.add_parser("webhook", help="Outgoing webhooks.")
        what = hook.add_subparsers(dest="what", required=True)
        add = what.add_parser("add", help="Subscribe a URL to events (prints its signing secret).")
        add.add_argument("name")
        add.add_argument("url")
        add.add_argument("--event", action="append", required=True, help="Event name, repeatable; * for all.")
        what.add_parser("list", help="Every webhook with its events and recent deliveries.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "flush":
            done = send.flush()
            self.stdout.write(
                f"sent {done['emails']} e-mail(s), delivered {done['webhooks']} webhook post(s)"
            )
        elif options["action"] == "digests":
            self.stdout.write(f"sent {send.send_digests()} digest(s)")
        elif options["what"] == "add":
            hook = Webhook(name=options["name"], url=options["url"], events=options["event"])
            try:
                hook.full_clean()
            except ValidationError as exc:
                raise CommandError(
                    "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                ) from None
            hook.save()
            self.stdout.write(
                f"webhook #{hook.pk} {hook.name}: {', '.join(hook.events)}\nsecret: {hook.secret}"
            )
        else:
            for hook in Webhook.objects.order_by("pk"):
                counts = {
                    s: hook.deliveries.filter(status=s).count() for s in ("pending", "delivered", "failed")
                }
                self.stdout.write(
                    f"#{hook.pk} {hook.name} {hook.url} [{', '.join(hook.events)}]"
                    f"{'' if hook.active else ' (off)'} {counts}"
                )
