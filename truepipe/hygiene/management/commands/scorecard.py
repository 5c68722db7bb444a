"""`truepipe scorecard [--as-of DAY] [--period 7|30|90|week|month] [--under USERNAME] [--format ...]`."""

from __future__ import annotations

import csv
import datetime as dt
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.hygiene import scoring

PERIODS = {"7": 7, "30": 30, "90": 90, "week": 7, "month": 30}


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"Not a date (YYYY-MM-DD): {text!r}") from exc


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


class Command(BaseCommand):
    help = "Print the discipline scorecard: one row per rep, then team roll-ups along the reporting line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", type=_day, help="Last day of the period (default: today).")
        parser.add_argument("--period", default="7", help="7, 30, 90 (days), week or month. Default 7.")
        parser.add_argument("--under", "--team", dest="under", help="Only people under this manager.")
        parser.add_argument("--format", choices=["table", "json", "csv"], default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["period"] not in PERIODS:
            raise CommandError("--period is one of 7, 30, 90, week, month.")
        days = PERIODS[options["period"]]
        as_of = options["as_of"] or timezone.localdate()
        path = None
        if options["under"]:
            user = (
                get_user_model().objects.filter(username=options["under"]).select_related("profile").first()
            )
            if user is None or not hasattr(user, "profile"):
                raise CommandError(f"No such person: {options['under']!r}.")
            path = user.profile.path
        rows = scoring.scorecard(scoring.scored_people(path), as_of, days, under_path=path)
        if options["format"] == "json":
            # One person per line: readable, and each line written by the fast (C) encoder, which
            # json.dumps uses only without indentation (indented, 5,000 rows took a quarter second).
            lines = ",\n  ".join(json.dumps(row.as_dict()) for row in rows)
            self.stdout.write(f"[\n  {lines}\n]" if rows else "[]")
            return
        if options["format"] == "csv":
            fields = list(scoring.ScoreRow(0, "", "", "", "").as_dict())
            writer = csv.DictWriter(self.stdout, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                writer.writerow(row.as_dict())
            return
        self.stdout.write(self.table(rows, as_of, days))

    @staticmethod
    def table(rows: list[scoring.ScoreRow], as_of: dt.date, days: int) -> str:
        header = ("Rep", "Manager", "Score", "Change", "High", "Med", "Low", "Worst rule", "Deals")
        lines = [header]
        for row in rows:
            lines.append(
                (
                    row.name + (f" ({row.reps} reps)" if row.is_team else ""),
                    row.manager,
                    _fmt(row.score),
                    _fmt(row.change, signed=True),
                    str(row.high),
                    str(row.medium),
                    str(row.low),
                    row.worst_rule or "-",
                    str(row.open_deals),
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        numeric = {2, 3, 4, 5, 6, 8}
        out = [f"Discipline scorecard, {days} days to {as_of.isoformat()}"]
        for n, line in enumerate(lines):
            out.append(
                "  ".join(
                    cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                    for i, cell in enumerate(line)
                ).rstrip()
            )
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        if len(lines) == 1:
            out.append("(nobody is scored yet: run `truepipe evaluate`)")
        return "\n".join(out)
