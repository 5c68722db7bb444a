"""`truepipe audit verify [--expect-head HASH]` and `truepipe audit show [--subject KIND:ID] [--limit N]`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from truepipe.audit.log import verify
from truepipe.audit.models import AuditEntry


class Command(BaseCommand):
    help = "The tamper-evident audit log: verify the chain, or show entries."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="verify|show")
        check = actions.add_parser(
            "verify", help="Recompute every entry's hash in order; report the first broken entry."
        )
        check.add_argument(
            "--expect-head",
            metavar="HASH",
            help="The head hash a previous verify printed (kept outside the database): catches a rewrite.",
        )
        check.add_argument("--no-progress", action="store_true", help="No progress bar.")
        show = actions.add_parser("show", help="The latest entries, newest last.")
        show.add_argument("--subject", help="Only entries about one record, e.g. consequence:12.")
        show.add_argument("--limit", type=int, default=50)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "verify":
            self._verify(options)
        else:
            self._show(options)

    def _verify(self, options: dict[str, Any]) -> None:
        total = AuditEntry.objects.count()
        bar = tqdm(
            total=total, unit="entry", disable=options["no_progress"] or total < 10_000, file=self.stderr
        )
        with bar:
            verdict = verify(options.get("expect_head"), progress=bar.update)
        if not verdict.ok:
            raise CommandError(f"audit log BROKEN after {verdict.checked:,} good entries: {verdict.problem}")
        self.stdout.write(
            f"audit log OK: {verdict.checked:,} entries, head #{verdict.head_seq} {verdict.head_hash or '-'}"
        )

    def _show(self, options: dict[str, Any]) -> None:
        entries = AuditEntry.objects.select_related("actor").order_by("-seq")
        if options.get("subject"):
            entries = entries.filter(subject=options["subject"])
        for entry in reversed(list(entries[: max(options["limit"], 0)])):
            who = entry.actor.username if entry.actor else "system"
            self.stdout.write(
                f"#{entry.seq:<6} {timezone.localtime(entry.at):%Y-%m-%d %H:%M}  {who:<14} "
                f"{entry.action:<24} {entry.subject}  {entry.data}"
            )
