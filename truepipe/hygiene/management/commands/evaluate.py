"""`truepipe evaluate [--as-of YYYY-MM-DD] [--from YYYY-MM-DD] [--dry-run]`: run the hygiene rules."""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.hygiene.engine import EvaluationOrderError, end_of_day, evaluate, find_all, latest_run


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"Not a date (YYYY-MM-DD): {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Evaluate the hygiene rules over the whole organisation as of the end of a day (default: now): "
        "open new violations, resolve fixed ones, record the day's scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", type=_day, help="Evaluate as of the end of this day (YYYY-MM-DD).")
        parser.add_argument(
            "--from",
            dest="start",
            type=_day,
            help="Back-fill: evaluate every day from this one up to --as-of (or today), in order.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what the rules find; record nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of_day: dt.date | None = options["as_of"]
        if as_of_day and as_of_day > timezone.localdate():
            raise CommandError("--as-of cannot be in the future.")
        if options["dry_run"]:
            self._dry_run(end_of_day(as_of_day) if as_of_day else timezone.now())
            return
        moments: list[dt.datetime]
        if options["start"]:
            last = as_of_day or timezone.localdate()
            if options["start"] > last:
                raise CommandError("--from must not be after --as-of.")
            days = (last - options["start"]).days + 1
            moments = [end_of_day(options["start"] + dt.timedelta(days=n)) for n in range(days)]
            if not as_of_day:
                moments[-1] = timezone.now()
        else:
            moments = [end_of_day(as_of_day) if as_of_day else timezone.now()]
        latest = latest_run()
        if latest is not None and len(moments) > 1:
            skipped = [m for m in moments if m < latest.as_of]
            moments = [m for m in moments if m >= latest.as_of]
            if skipped:
                self.stderr.write(f"Skipping {len(skipped)} day(s) already evaluated (up to {latest.day}).")
        started = time.perf_counter()
        for index, moment in enumerate(moments, 1):
            label = f"[{index}/{len(moments)}] {timezone.localtime(moment):%Y-%m-%d}"
            try:
                run = evaluate(moment, progress=self._progress(label))
            except EvaluationOrderError as exc:
                raise CommandError(str(exc)) from exc
            self._clear()
            if options["verbosity"] < 1:
                continue
            self.stdout.write(
                f"{label}: {run.opened} opened, {run.resolved} resolved, {run.expired} expired; "
                f"{run.live} live ({run.seconds:.1f} s, policy v{run.policy_version})"
            )
        if len(moments) > 1 and options["verbosity"] >= 1:
            self.stdout.write(f"{len(moments)} days evaluated in {time.perf_counter() - started:.1f} s.")

    def _progress(self, label: str):
        def show(rule: str) -> None:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r\033[K{label}: {rule}…")
                sys.stderr.flush()

        return show

    def _clear(self) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")

    def _dry_run(self, moment: dt.datetime) -> None:
        found = find_all(moment)
        self.stdout.write(f"As of {timezone.localtime(moment):%Y-%m-%d %H:%M} (nothing recorded):")
        for rule, findings in found.items():
            self.stdout.write(f"  {rule:<22} {len(findings):>8}")
        for rule, findings in found.items():
            for finding in findings[:5]:
                self.stdout.write(f"    {rule}: {finding.summary}")
