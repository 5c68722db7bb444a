"""`truepipe snapshot [--day YYYY-MM-DD] [--from YYYY-MM-DD]`: record (or back-fill) daily snapshots."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.hygiene.snapshots import take_snapshot


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"Not a date (YYYY-MM-DD): {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Record the snapshot of every deal open at the end of a day (default: yesterday), rebuilt from "
        "history; --from back-fills every day up to --day. Taking a day again replaces it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", type=_day, help="The day to snapshot (default: yesterday).")
        parser.add_argument(
            "--from", dest="start", type=_day, help="Back-fill every day from this one up to --day."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.localdate()
        last: dt.date = options["day"] or today - dt.timedelta(days=1)
        if last > today:
            raise CommandError("--day cannot be in the future.")
        first: dt.date = options["start"] or last
        if first > last:
            raise CommandError("--from must not be after --day.")
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        started = time.perf_counter()
        total = 0
        for index, day in enumerate(days, 1):
            begun = time.perf_counter()
            rows = take_snapshot(day)
            total += rows
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"[{index}/{len(days)}] {day}: {rows} open deal(s) ({time.perf_counter() - begun:.2f} s)"
                )
        if len(days) > 1 and options["verbosity"] >= 1:
            self.stdout.write(f"{len(days)} day(s), {total} rows in {time.perf_counter() - started:.1f} s.")
