"""Benchmark: the /today/ page (the daily queue) for a rep with 500 open deals, most of them flagged.

    python -m bench.bench_queue                        # SQLite in a fresh temporary TRUEPIPE_HOME
    python -m bench.bench_queue --deals 500 --runs 50 --others 20000
    python -m bench.bench_queue --database-url postgresql://postgres@127.0.0.1:5432/truepipe_bench_queue

What it builds (through the service layer, back-dated so the history is real):

- one rep (`bench-queue-rep`) with --deals open deals: ages, amounts and close dates spread so that
  most deals break one or more rules (stale clocks, past-due close dates, missing next steps);
- --others open deals owned by other reps (the organisation the median deal amount comes from);
- a manager above the rep, then one full evaluation (`engine.evaluate`).

What it measures, server side, through Django's test Client in this process (so no network or
WSGI server is counted), median and p90 over --runs requests, with each request's query count:

- baseline: GET /healthz (one `SELECT 1`) through the same client and middleware;
- /today/ as the rep: the first look of the day (plans the queue; the day's plan is deleted
  before each of these runs) and a later look (reads the plan);
- /today/?rep=... as the manager (read-only: plans on the fly, writes nothing);
- one inline fix (POST, HTMX): a next step set on a deal of the queue, then the item redrawn.

Prints a table (median and p90 wall time, median CPU time of this process, queries) with the ratio
of each median to the baseline's, and the load average. The aim: under 100 ms, and the same
number of queries whatever the number of deals (compare a run with --deals 50).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.databases import prepare_database

REP = "bench-queue-rep"
MANAGER = "bench-queue-mgr"


def log(message: str) -> None:
    print(f"[bench_queue] {message}", file=sys.stderr, flush=True)


def build(deals: int, others: int) -> None:
    """The rep, the manager, the other reps and their deals, then one full evaluation."""
    import datetime as dt
    from decimal import Decimal

    from django.utils import timezone

    from truepipe.accounts.services import create_account
    from truepipe.core.models import Via
    from truepipe.hygiene.engine import evaluate
    from truepipe.people.models import Role
    from truepipe.people.services import create_person
    from truepipe.pipeline.models import Stage, StageKind
    from truepipe.pipeline.services import OpportunityImport, import_opportunities

    manager = create_person(None, username=MANAGER, full_name="Queue Manager", role=Role.MANAGER)
    rep = create_person(None, username=REP, full_name="Queue Rep", role=Role.REP, manager=manager)
    peers = [
        create_person(
            None, username=f"bench-queue-peer-{n}", full_name=f"Peer {n}", role=Role.REP, manager=manager
        )
        for n in range(10)
    ]
    stages = list(Stage.objects.filter(kind=StageKind.OPEN, is_active=True).order_by("order"))
    today = timezone.localdate()
    now = timezone.now()

    def rows(owner, count: int, offset: int) -> list[OpportunityImport]:
        account = create_account(owner, name=f"Account of {owner.username}", via=Via.IMPORT)
        result = []
        for n in range(count):
            k = n + offset
            fields = {
                "name": f"Deal {k}",
                "account": account,
                "owner": owner,
                "stage": stages[k % len(stages)],
                "amount": Decimal(2_000 + (k * 7_919) % 250_000),
                "close_date": today + dt.timedelta(days=(k % 90) - 30),  # a third of them past due
            }
            if k % 3:
                fields["next_step"] = "Call the sponsor"
                fields["next_step_date"] = today + dt.timedelta(days=(k % 20) - 8)
            # Created 5 to 125 days ago: most of them stale by now.
            result.append(OpportunityImport(fields=fields, created_at=now - dt.timedelta(days=5 + k % 120)))
        return result

    batches = [(rep, deals, 0)] + [
        (peer, others // len(peers), 10_000 * (i + 1)) for i, peer in enumerate(peers)
    ]
    for owner, count, offset in batches:
        if count:
            import_opportunities(None, rows(owner, count, offset), via=Via.IMPORT)
    started = time.perf_counter()
    run = evaluate()
    log(f"evaluated in {time.perf_counter() - started:.1f}s: {run.opened:,} violations opened")


def measure(fn: Callable[[], tuple[int, int]], runs: int, before: Callable[[], None] | None = None):
    """(median ms, p90 ms, median CPU ms, queries of the last run) of `fn`, which returns
    (status, queries). CPU time is this process's (the SQLite database runs in it too): on a busy
    machine it shows the work done, where the wall clock also counts waiting for a core."""
    times, cpu, queries = [], [], 0
    for _ in range(runs):
        if before:
            before()
        started, started_cpu = time.perf_counter(), time.process_time()
        status, queries = fn()
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        if status >= 400:
            raise SystemExit(f"request failed with HTTP {status}")
    times.sort()
    return (
        statistics.median(times),
        times[min(len(times) - 1, int(0.9 * len(times)))],
        statistics.median(cpu),
        queries,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--deals", type=int, default=500, help="Open deals of the measured rep (default 500)."
    )
    parser.add_argument(
        "--others", type=int, default=5_000, help="Open deals of everyone else (default 5,000)."
    )
    parser.add_argument("--runs", type=int, default=30, help="Requests per measurement (default 30).")
    parser.add_argument("--database-url", help="A PostgreSQL database for the run (default: fresh SQLite).")
    parser.add_argument("--home", help="TRUEPIPE_HOME for the run (default: a new temporary directory).")
    args = parser.parse_args(argv)

    home = Path(args.home or tempfile.mkdtemp(prefix="truepipe-bench-queue-"))
    prepare_database(args.database_url, home)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from truepipe.hygiene.models import QueueDay, Violation, ViolationStatus
    from truepipe.pipeline.models import Opportunity

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    User = get_user_model()
    if not User.objects.filter(username=REP).exists():
        if Opportunity.objects.exists():
            raise SystemExit("The database already holds other data: point --database-url at an empty one.")
        log(f"building: {args.deals:,} deals for the rep, {args.others:,} for the others")
        build(args.deals, args.others)
    rep, manager = User.objects.get(username=REP), User.objects.get(username=MANAGER)
    open_deals = Opportunity.objects.filter(owner=rep, stage__kind="open", deleted_at__isnull=True).count()
    flagged = (
        Violation.objects.filter(rep=rep, live=True, status=ViolationStatus.OPEN)
        .values("opportunity_id")
        .distinct()
        .count()
    )
    violations = Violation.objects.filter(rep=rep, live=True, status=ViolationStatus.OPEN).count()

    as_rep, as_manager = Client(), Client()
    as_rep.force_login(rep)
    as_manager.force_login(manager)

    def get(client: Client, url: str, **headers) -> Callable[[], tuple[int, int]]:
        def run() -> tuple[int, int]:
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url, **headers)
            return response.status_code, len(queries)

        return run

    def forget_plan() -> None:
        QueueDay.objects.filter(rep=rep).delete()

    today, manager_url = reverse("today"), reverse("today") + f"?rep={rep.pk}"
    for _ in range(3):  # warm-up: templates, URL resolver, content types
        get(as_rep, "/healthz")()
        get(as_rep, today)()
        get(as_manager, manager_url)()

    results = []
    base = measure(get(as_rep, "/healthz"), args.runs)
    results.append(("baseline: GET /healthz (SELECT 1)", base))
    results.append(
        ("/today/, first look of the day (plans)", measure(get(as_rep, today), args.runs, forget_plan))
    )
    results.append(("/today/, a later look (reads the plan)", measure(get(as_rep, today), args.runs)))
    results.append(
        ("/today/ fragment (HTMX)", measure(get(as_rep, today, HTTP_HX_REQUEST="true"), args.runs))
    )
    results.append(
        ("/today/?rep= as the manager (read-only)", measure(get(as_manager, manager_url), args.runs))
    )

    # Inline fixes: set a next step on the deals behind the queue's items, one POST each.
    from truepipe.hygiene.queue import build_queue

    targets = [
        item for item in build_queue(rep).items if "next_step" in item.actions or "touch" in item.actions
    ]
    fixes, fixes_cpu, queries_per_fix = [], [], 0
    for item in targets[: args.runs]:
        url = reverse("today-fix", args=[item.pk, "touch" if "touch" in item.actions else "next_step"])
        data = {"kind": "call", "subject": "Bench call", "occurred_on": item.violation.opened_at.date()}
        if "touch" not in item.actions:
            data = {"next_step": "Bench step", "next_step_date": "2100-01-01"}
        with CaptureQueriesContext(connection) as queries:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = as_rep.post(url, data, HTTP_HX_REQUEST="true")
            fixes.append((time.perf_counter() - started) * 1000)
            fixes_cpu.append((time.process_time() - started_cpu) * 1000)
        queries_per_fix = len(queries)
        if response.status_code >= 400:
            log(f"fix answered HTTP {response.status_code}")
    if fixes:
        fixes.sort()
        results.append(
            (
                f"inline fix, POST + redraw ({len(fixes)} fixes)",
                (
                    statistics.median(fixes),
                    fixes[min(len(fixes) - 1, int(0.9 * len(fixes)))],
                    statistics.median(fixes_cpu),
                    queries_per_fix,
                ),
            )
        )

    print()
    print(
        f"{connection.vendor}: rep with {open_deals:,} open deals, {flagged:,} of them flagged "
        f"({violations:,} open violations); {Opportunity.objects.count():,} deals in all; "
        f"{args.runs} runs each"
    )
    width = max(len(label) for label, _ in results)
    print(f"{'':<{width}}  {'median':>9}  {'p90':>9}  {'CPU':>9}  {'queries':>7}  ratio")
    for label, (median, p90, cpu, queries) in results:
        ratio = median / base[0]
        print(f"{label:<{width}}  {median:7.1f}ms  {p90:7.1f}ms  {cpu:7.1f}ms  {queries:>7}  {ratio:6.1f}x")
    page, page_cpu = results[2][1][0], results[2][1][2]
    verdict = "under" if page < 100 else "OVER"
    print(f"\n/today/ (later look): {page:.1f} ms median, {page_cpu:.1f} ms CPU ({verdict} the 100 ms aim)")
    print(f"load average during the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
