"""Benchmark: full hygiene evaluation, per-write overhead and the team scorecard at scale.

    # once: a large organisation (uses TRUEPIPE_DATABASE_URL / TRUEPIPE_HOME like the product)
    python -m bench.datagen --reps 5000 --accounts 100000 --opportunities 1000000 --activities 20000000
    # then, any number of times:
    python -m bench.bench_evaluate [--writes 200] [--skip-full] [--fresh]

Measured in the same run, so the machine's noise affects both sides:

- baseline: one scan, `SELECT opportunity_id, MAX(occurred_at) FROM activities_activity
  GROUP BY opportunity_id`, every row fetched; once to warm the cache, then three times: the
  median of those three is the baseline;
- full evaluation (`engine.evaluate`): the first one after generation opens every violation
  (cold), a second one after a working day's activity (`--day` activities logged on random deals)
  only reconciles (steady state, what runs every night); on PostgreSQL, the database is vacuumed
  and analysed before the baseline and between the two nights, as autovacuum would have;
  each is printed with its ratio to the baseline scan (the aim is within 3x);
- per-write overhead: the same opportunity update through the service layer with incremental
  evaluation on and off, alternating, on the same deals; the median of the differences (aim < 5 ms);
- the team scorecard for every rep (`truepipe scorecard --format json`), median of 5 runs (aim < 1 s):
  as of the latest scored day (each rep's counts as the night recorded them: what a team reads
  every day), and as of a day with no scores recorded (everything counted live).

The bench organisation's reps work every day of the week (set here), so that each night measured
records scores, the costlier night, whatever day the benchmark runs on.

`--fresh` first deletes every violation, evaluation run and score (a benchmark database only!),
so the first evaluation can be measured again on the same data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import time
from collections.abc import Callable


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "truepipe.settings")
    import django

    django.setup()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def baseline_scan() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT opportunity_id, MAX(occurred_at) FROM activities_activity GROUP BY opportunity_id"
        )
        while cursor.fetchmany(10_000):
            pass


def full_evaluation(report: list[str]) -> float:
    from django.utils import timezone

    from truepipe.hygiene.engine import evaluate, latest_run

    # Now, or just after the latest recorded evaluation if one was run as of a later moment.
    latest = latest_run()
    as_of = max(timezone.now(), latest.as_of + dt.timedelta(minutes=1)) if latest else timezone.now()
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    run = evaluate(as_of, trigger="bench", progress=lambda rule: marks.append((rule, time.perf_counter())))
    finished = time.perf_counter()
    seconds = finished - started
    # Time per step: from each rule's start to the next one's (the first step includes the state
    # build, the last one the scores).
    steps: list[tuple[str, float]] = [("state", started), *marks]
    ends = [at for _, at in steps[1:]] + [finished]
    parts = [
        f"{name}{' + scores' if index == len(steps) - 1 else ''} {end - at:.1f}s"
        for index, ((name, at), end) in enumerate(zip(steps, ends, strict=True))
    ]
    report.append(
        f"    opened {run.opened:,}, resolved {run.resolved:,}, expired {run.expired:,}, live {run.live:,}; "
        + ", ".join(parts)
    )
    return seconds


def log_a_day(activities: int) -> None:
    """A working day between two nights: this many activities logged on deals picked at random
    (copies of existing ones, an hour old), in one INSERT ... SELECT: the database's triggers mark
    their deals for the night, as they do for every write."""
    import random

    from django.db import connection, transaction
    from django.utils import timezone

    from truepipe.activities.models import Activity

    if activities <= 0:
        return
    from django.db.models import Max, Min

    bounds = Activity.objects.aggregate(low=Min("id"), high=Max("id"))
    low, high = bounds["low"], bounds["high"]
    # Another day's deals on each run of the benchmark against the same database (a day on the
    # deals an earlier day touched would find them touched already): the seed moves with the
    # activities logged so far.
    ids = random.Random(20261129 + high).sample(range(low, high + 1), min(activities, high - low + 1))
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    columns = "kind, subject, body, source, deleted_at, account_id, opportunity_id, owner_id"
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(ids), 10_000):
            chunk = ", ".join(str(i) for i in ids[start : start + 10_000])
            cursor.execute(
                f"INSERT INTO activities_activity (occurred_at, logged_at, {columns})"
                f" SELECT %s, %s, {columns} FROM activities_activity WHERE id IN ({chunk})",
                [hour_ago - dt.timedelta(minutes=30), hour_ago],
            )
    print(f"a day's activity: {len(ids):,} activities logged", flush=True)


def write_overhead(samples: int) -> tuple[float, float, float]:
    from django.conf import settings
    from django.db import transaction

    from truepipe.core.models import Via
    from truepipe.pipeline import services
    from truepipe.pipeline.models import Opportunity, StageKind

    ids = list(
        Opportunity.objects.filter(stage__kind=StageKind.OPEN, deleted_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[: samples * 50 : 50]
    )
    on: list[float] = []
    off: list[float] = []
    for n, pk in enumerate(ids):
        for enabled in (n % 2 == 0, n % 2 == 1):
            settings.TRUEPIPE_INCREMENTAL_EVALUATION = enabled
            opp = Opportunity.objects.get(pk=pk)
            step = f"Bench step {n} {'on' if enabled else 'off'}"
            started = time.perf_counter()
            with transaction.atomic():
                services.update_opportunity(None, opp, {"next_step": step}, via=Via.SYSTEM)
            (on if enabled else off).append(time.perf_counter() - started)
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = True
    return statistics.median(on), statistics.median(off), statistics.median(on) - statistics.median(off)


def activity_overhead(samples: int) -> tuple[float, float, float]:
    """A call logged on a deal through the activities service, evaluation on versus off (medians)."""
    from django.conf import settings
    from django.db import transaction

    from truepipe.activities import services
    from truepipe.core.models import Via
    from truepipe.pipeline.models import Opportunity, StageKind

    deals = list(
        Opportunity.objects.filter(stage__kind=StageKind.OPEN, deleted_at__isnull=True)
        .select_related("owner", "account")
        .order_by("id")[: samples * 50 : 50]
    )
    on: list[float] = []
    off: list[float] = []
    for n, deal in enumerate(deals):
        for enabled in (n % 2 == 0, n % 2 == 1):
            settings.TRUEPIPE_INCREMENTAL_EVALUATION = enabled
            started = time.perf_counter()
            with transaction.atomic():
                services.log_activity(
                    None,
                    kind="call",
                    subject=f"Bench call {n}",
                    opportunity=deal,
                    owner=deal.owner,
                    via=Via.SYSTEM,
                )
            (on if enabled else off).append(time.perf_counter() - started)
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = True
    return statistics.median(on), statistics.median(off), statistics.median(on) - statistics.median(off)


def scorecard_seconds(runs: int = 5) -> tuple[float, float]:
    """The team scorecard as of the latest scored day, as a team reads it every day (each rep's
    counts as that night's evaluation recorded them), then as of a day with no scores recorded in
    the two weeks before it (a new installation before its first working night: every rep's
    violations and open deals counted live); medians of `runs`."""
    from django.core.management import call_command
    from django.db.models import Max
    from django.utils import timezone

    from truepipe.hygiene.models import RepScore
    from truepipe.hygiene.scoring import RECENT_DAYS

    day = RepScore.objects.aggregate(day=Max("day"))["day"] or timezone.localdate()
    results = []
    for as_of in (day, day + dt.timedelta(days=RECENT_DAYS + 7)):
        args = ["scorecard", "--format", "json", "--as-of", as_of.isoformat()]
        results.append(
            statistics.median(
                timed(lambda args=args: call_command(*args, stdout=io.StringIO())) for _ in range(runs)
            )
        )
    return results[0], results[1]


def as_autovacuum_would() -> None:
    """PostgreSQL: VACUUM ANALYZE, what autovacuum does on a running server between a load (or the
    night that opened millions of violations) and the next night. Without it, reads that should
    come from an index alone visit every row (the visibility map is unset): a server with
    autovacuum off, as some benchmark machines are, would measure a database nobody runs."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        setting = cursor.fetchone()[0]
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE (autovacuum is {setting} here): {time.perf_counter() - started:.1f} s", flush=True)


def every_day_a_working_day() -> None:
    """Every rep works every day of the week here, so that each night measured records every rep's
    scores (the costlier night; a weekend's records none) whatever day the benchmark runs on."""
    from truepipe.people.models import SalesProfile

    changed = SalesProfile.objects.exclude(working_days=list(range(7))).update(working_days=list(range(7)))
    if changed:
        print(f"working days: every day for {changed:,} people (each night measured records scores)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--writes", type=int, default=200, help="Deals updated per side for the write overhead."
    )
    parser.add_argument(
        "--day",
        type=int,
        default=50_000,
        help="Activities logged between the two nights (a working day: 5,000 reps, 10 each).",
    )
    parser.add_argument("--skip-full", action="store_true", help="Skip the full evaluations.")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="Delete every violation, evaluation run and score first (benchmark databases only).",
    )
    args = parser.parse_args(argv)
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from truepipe.activities.models import Activity
    from truepipe.people.models import SalesProfile
    from truepipe.pipeline.models import Opportunity

    call_command("migrate", verbosity=0)
    print(
        f"{connection.vendor}: {Opportunity.objects.count():,} opportunities, "
        f"{Activity.objects.count():,} activities, {SalesProfile.objects.count():,} people",
        flush=True,
    )
    if args.fresh:
        from truepipe.hygiene.models import (
            DealClock,
            DealClockMark,
            DirtyDeal,
            EvaluationRun,
            NewActivity,
            RepScore,
            Violation,
        )

        with connection.cursor() as cursor:
            for model in (
                Violation,
                EvaluationRun,
                RepScore,
                DealClock,
                DealClockMark,
                DirtyDeal,
                NewActivity,
            ):
                cursor.execute(f"DELETE FROM {model._meta.db_table}")
    every_day_a_working_day()
    as_autovacuum_would()
    rows: list[tuple[str, float, str]] = []
    # The first scan reads the files into the cache; ratios use warm scans, like the
    # evaluations after them (which find the same pages cached): the median of three, as one
    # scan alone varied by a fifth from one to the next on a noisy machine.
    cold = timed(baseline_scan)
    rows.append(("baseline scan, cold (not used for ratios)", cold, ""))
    warm = [timed(baseline_scan) for _ in range(3)]
    base = statistics.median(warm)
    spread = f"{min(warm):.2f}-{max(warm):.2f} s"
    rows.append((f"baseline: MAX(occurred_at) per deal, one scan (median of 3: {spread})", base, "1.00x"))
    print(f"baseline scan {base:.1f} s (median of {', '.join(f'{w:.1f}' for w in warm)})", flush=True)
    report: list[str] = []
    if not args.skip_full:
        from truepipe.hygiene.models import Violation

        first = "full evaluation, first run (opens every violation)"
        if Violation.objects.exists():
            first = "full evaluation (violations already recorded)"
        for label in (first, "full evaluation, steady state (after a day's activity)"):
            if label != first:
                as_autovacuum_would()  # a day passes between the two nights
                log_a_day(args.day)
            seconds = full_evaluation(report)
            rows.append((label, seconds, f"{seconds / base:.2f}x baseline"))
            print(f"{label}: {seconds:.1f} s", flush=True)
        base_again = timed(baseline_scan)
        rows.append(("baseline scan again (noise check)", base_again, f"{base_again / base:.2f}x"))
    on, off, extra = write_overhead(args.writes)
    rows.append(("update through the service, evaluation off (median)", off, ""))
    rows.append(
        ("update through the service, evaluation on (median)", on, f"+{extra * 1000:.1f} ms per write")
    )
    on, off, extra = activity_overhead(args.writes)
    rows.append(("a call logged on a deal, evaluation off (median)", off, ""))
    rows.append(("a call logged on a deal, evaluation on (median)", on, f"+{extra * 1000:.1f} ms per write"))
    try:
        recorded, live = scorecard_seconds()
        rows.append(("team scorecard, every rep, as recorded (median of 5)", recorded, ""))
        rows.append(("team scorecard, counted live (no scores recorded)", live, ""))
    except Exception as exc:  # noqa: BLE001 - report and carry on: the other figures still stand
        print(f"scorecard not measured: {exc}", file=sys.stderr)
    print()
    width = max(len(r[0]) for r in rows)
    for label, seconds, ratio in rows:
        shown = f"{seconds * 1000:9.1f} ms" if seconds < 1 else f"{seconds:9.2f} s "
        print(f"{label:<{width}}  {shown}  {ratio}")
    for line in report:
        print(line)


if __name__ == "__main__":
    main()
