"""`truepipe demo`: create the demo sales organisation, print who is who, and serve the app."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from tqdm import tqdm

from truepipe.core.errors import ServiceError
from truepipe.demo.backfill import BACKFILL_DAYS, backfill, backfill_days, history_being_written
from truepipe.demo.generator import DEMO_PASSWORD, MAX_REPS, MIN_REPS, DemoError, Generator, Options, cast
from truepipe.demo.stats import rep_stats
from truepipe.hygiene import scoring
from truepipe.pipeline.models import Opportunity
from truepipe.web.management.commands.serve import DEFAULT_BIND, parse_bind

VP = "victoria"
SCORE_DAYS = 30


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--today needs a date as YYYY-MM-DD, not {value!r}.") from None


def _fmt_money(value: Any) -> str:
    return f"{value / 1000:,.0f}k"


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _fmt_hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _fmt_score(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Scores 0-100 as a row of bars, one per day."""
    return "".join(SPARKS[min(len(SPARKS) - 1, int(value / 100 * len(SPARKS)))] for value in values)


class Command(BaseCommand):
    help = (
        "Create a demo sales organisation with months of history on an empty database, "
        "print the team summary and the demo logins, then serve the app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=42, help="Random seed; the same seed gives the same data."
        )
        parser.add_argument("--months", type=int, default=7, help="Months of history (default 7).")
        parser.add_argument(
            "--reps", type=int, default=15, help=f"Number of reps, {MIN_REPS} to {MAX_REPS} (default 15)."
        )
        parser.add_argument(
            "--today",
            type=_date,
            default=None,
            help="Pretend today is YYYY-MM-DD (makes the data reproducible; default: the real date).",
        )
        parser.add_argument(
            "--backfill-days",
            type=int,
            default=BACKFILL_DAYS,
            help=(
                "Evaluate the rules and record scores and snapshots for each of the last N days of the "
                f"history, as the nightly job would have (default {BACKFILL_DAYS}; 0: only as of now)."
            ),
        )
        parser.add_argument("--no-serve", action="store_true", help="Stop after printing; do not serve.")
        parser.add_argument(
            "--bind", default=DEFAULT_BIND, help=f"HOST:PORT to serve on (default {DEFAULT_BIND})."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="On a database that already has data, add nothing and just print and serve.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["months"] <= 36:
            raise CommandError("--months must be between 1 and 36.")
        if not MIN_REPS <= options["reps"] <= MAX_REPS:
            raise CommandError(f"--reps must be between {MIN_REPS} and {MAX_REPS}.")
        if options["backfill_days"] < 0:
            raise CommandError("--backfill-days cannot be negative.")
        if not options["no_serve"]:
            parse_bind(options["bind"])  # a typo should fail now, not after a minute of generating
        call_command("migrate", interactive=False, verbosity=0)
        generated = False
        if self._has_data():
            if not options["force"]:
                raise CommandError(
                    f"The database ({self._where()}) already has data; the demo only fills an empty one.\n"
                    "Point TRUEPIPE_HOME at a new directory, e.g.\n"
                    "    TRUEPIPE_HOME=/tmp/truepipe-demo truepipe demo\n"
                    "or pass --force to add nothing and just serve what is there."
                )
            self.stdout.write("The database already has data: --force adds nothing, it only serves.")
        else:
            self._generate(options)
            generated = True
        User = get_user_model()
        vp = User.objects.filter(username=VP).select_related("profile").first()
        if vp is not None:
            self._summary(vp, options)
            self._scores(options)
            if generated:
                self._logins(options)
        if options["no_serve"]:
            return
        call_command("serve", bind=options["bind"])

    @staticmethod
    def _has_data() -> bool:
        # An emptiness check by the operator's command, not a user's read: no visibility scope applies.
        User = get_user_model()
        demo_names = [person.username for person in cast(MAX_REPS, 0)]
        return Opportunity.objects.exists() or User.objects.filter(username__in=demo_names).exists()

    @staticmethod
    def _where() -> str:
        settings = connection.settings_dict
        return f"{settings['ENGINE'].rsplit('.', 1)[-1]} {settings['NAME']}"

    def _generate(self, options: dict[str, Any]) -> None:
        generator_options = Options(
            seed=options["seed"], today=options["today"], months=options["months"], reps=options["reps"]
        )
        began = time.monotonic()
        bar = tqdm(total=0, unit="deal", desc="Generating history", disable=None, leave=False)
        generator = Generator(generator_options, progress=bar.update)
        bar.total = generator.plan_count()
        bar.refresh()
        try:
            with history_being_written():
                result = generator.run()
        except (DemoError, ServiceError) as exc:
            raise CommandError(f"The demo could not be created: {exc}") from None
        finally:
            bar.close()
        generation = time.monotonic() - began
        self.stdout.write(
            f"Created {len(result.people)} people, {result.deals} deals and {result.activities} activities "
            f"from {result.start} to {result.today} in {generation:.1f} s (seed {options['seed']})."
        )
        # The discipline record: every day evaluated and snapshotted in turn, then as of the demo's now.
        began = time.monotonic()
        days = backfill_days(result.start, result.now, options["backfill_days"])
        bar = tqdm(
            total=len(days), unit="day", desc="Back-filling the discipline record", disable=None, leave=False
        )
        try:
            done = backfill(days, result.now, progress=bar.update)
        finally:
            bar.close()
        span = f" for each day from {days[0]} to {days[-1]} and" if days else ""
        self.stdout.write(
            f"Evaluated the rules{span} as of now ({done.evaluations} evaluations, "
            f"{done.snapshot_rows} snapshot rows) in {time.monotonic() - began:.1f} s."
        )

    def _summary(self, vp, options: dict[str, Any]) -> None:
        generator = Generator(Options(seed=options["seed"], today=options["today"], months=options["months"]))
        labels = {p.username: p.note for p in cast(MAX_REPS, options["seed"]) if p.profile is not None}
        start, today = generator.start, generator.today
        rows = rep_stats(vp, start, today)
        month = timedelta(days=30)
        first = {row.username: row.median_lag_hours for row in rep_stats(vp, start, start + month)}
        last = {row.username: row.median_lag_hours for row in rep_stats(vp, today - month, today)}
        self.stdout.write(f"\nThe region as {VP} (VP) sees it, {generator.start} to {generator.today}:\n")
        self.stdout.write(
            table(
                [
                    "Rep",
                    "Team",
                    "Manager",
                    "Open",
                    "Won",
                    "Quota",
                    "Attain.",
                    "Win rate",
                    "Activities",
                    "Median lag",
                    "1st → last month",
                    "Wins <14d old",
                    "Profile",
                ],
                [
                    [
                        row.username,
                        row.team,
                        row.manager,
                        str(row.open_deals),
                        _fmt_money(row.won_value),
                        _fmt_money(row.quota),
                        _fmt_pct(row.attainment),
                        _fmt_pct(row.win_rate),
                        str(row.activities),
                        _fmt_hours(row.median_lag_hours),
                        f"{_fmt_hours(first.get(row.username))} → {_fmt_hours(last.get(row.username))}",
                        _fmt_pct(row.surprise_share),
                        labels.get(row.username, ""),
                    ]
                    for row in rows
                ],
                right={3, 4, 5, 6, 7, 8, 9, 10, 11},
            )
        )
        self.stdout.write(
            "\nMedian lag: time from a call, e-mail or meeting to its entry in the CRM "
            "(over the whole period, then its first and last 30 days). "
            "Wins <14d old: wins whose deal was created less than 14 days before it closed. "
            "Quota: the quarterly quotas, prorated to the period shown."
        )

    def _scores(self, options: dict[str, Any]) -> None:
        """Each rep's discipline score over the last 30 days, its change and its daily trend."""
        today = Generator(
            Options(seed=options["seed"], today=options["today"], months=options["months"])
        ).today
        labels = {p.username: p.note for p in cast(MAX_REPS, options["seed"]) if p.profile is not None}
        rows = scoring.scorecard(scoring.scored_people(), today, SCORE_DAYS, with_trend=True)
        self.stdout.write(
            f"\nDiscipline scores over the {SCORE_DAYS} days to {today} "
            f"(0-100; change: against the {SCORE_DAYS} days before):\n"
        )
        self.stdout.write(
            table(
                ["Rep", "Manager", "Score", "Change", "Daily, oldest first", "Worst rule", "Profile"],
                [
                    [
                        f"{row.name} ({row.reps} reps)" if row.is_team else row.username,
                        row.manager,
                        _fmt_score(row.score),
                        _fmt_score(row.change, signed=True),
                        sparkline([score for _, score in row.trend]),
                        row.worst_rule or "-",
                        "" if row.is_team else labels.get(row.username, ""),
                    ]
                    for row in rows
                ],
                right={2, 3},
            )
        )
        self.stdout.write(
            "\nScore: the mean of the daily discipline scores (100: nothing open against the rep; "
            "see docs/scoring.md). Worst rule: among the violations open now. "
            "`truepipe scorecard --period 30` prints the full card; the scorecard page charts it."
        )

    def _logins(self, options: dict[str, Any]) -> None:
        people = cast(options["reps"], options["seed"])
        rows = [
            [p.username, p.full_name, p.title, p.note if p.profile is None else p.note or "ordinary rep"]
            for p in people
            if p.profile is None or p.profile.key != "ordinary"
        ]
        ordinary = [p.username for p in people if p.profile is not None and p.profile.key == "ordinary"]
        self.stdout.write(f"\nDemo logins (password for everyone: {DEMO_PASSWORD}):\n")
        self.stdout.write(table(["Username", "Name", "Title", "Look for"], rows, right=set()))
        if ordinary:
            self.stdout.write(f"Ordinary reps: {', '.join(ordinary)}.")
        if not options["no_serve"]:
            host, _ = parse_bind(options["bind"])
            self.stdout.write(f"\nOpen http://{options['bind']}/ and sign in as one of them.")
            if host not in ("127.0.0.1", "localhost", "::1"):
                self.stdout.write(
                    self.style.WARNING(
                        f"Every demo login has the password {DEMO_PASSWORD!r}: "
                        "do not expose this server beyond your own machine."
                    )
                )
