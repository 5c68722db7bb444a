"""Benchmark: `truepipe import opportunities` against a raw sqlite3 executemany of the same rows.

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--reps 500] [--accounts 20000]

Both run in this process on fresh SQLite files in a temporary directory: first the people and
accounts are created through the services, a CSV of N opportunities is generated, and it is
imported in-process (parsing, validation through pipeline.services._validate, history-ready
writes, external ids, one transaction). Then the same CSV is read with the csv module and
inserted with executemany into an identical pipeline_opportunity table (same DDL and indexes)
in another fresh database: the floor for "rows into SQLite from Python". Prints rows/s for each
and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

STAGES = ["Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation", "Won", "Lost"]


def generate(path: Path, rows: int, usernames: list[str], accounts: list[str]) -> None:
    rng = random.Random(42)
    start = date(2024, 1, 1)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "external_id",
                "name",
                "account",
                "owner",
                "stage",
                "amount",
                "close_date",
                "created_at",
                "next_step",
            ]
        )
        for n in range(rows):
            stage = STAGES[rng.randrange(len(STAGES))]
            close = start + timedelta(days=rng.randrange(700))
            writer.writerow(
                [
                    f"B{n:08d}",
                    f"Deal {n}",
                    accounts[rng.randrange(len(accounts))],
                    usernames[rng.randrange(len(usernames))],
                    stage,
                    f"{rng.randrange(1000, 500000)}.00",
                    close.isoformat(),
                    (close - timedelta(days=rng.randrange(30, 200))).isoformat(),
                    "Call back" if rng.random() < 0.7 else "",
                ]
            )


def raw_baseline(source_db: Path, target_db: Path, csv_path: Path) -> tuple[int, float]:
    """executemany into a fresh database holding the same opportunity table (DDL and indexes)."""
    ddl = sqlite3.connect(source_db).execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'pipeline_opportunity' AND sql IS NOT NULL "
        "ORDER BY type DESC"
    )
    statements = [row[0] for row in ddl]
    conn = sqlite3.connect(target_db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in statements:
        conn.execute(statement)
    owners = {
        name: pk for pk, name in enumerate(sorted({r["owner"] for r in csv.DictReader(csv_path.open())}), 1)
    }
    account_ids: dict[str, int] = {}
    stage_ids = {name: pk for pk, name in enumerate(STAGES, 1)}
    now = "2026-01-01 00:00:00"
    started = time.perf_counter()
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        batch = []
        count = 0
        sql = (
            "INSERT INTO pipeline_opportunity (name, account_id, owner_id, stage_id, amount, currency,"
            " close_date, probability, probability_overridden, forecast_category, next_step, source,"
            " competitor, lost_reason, created_at, updated_at, version)"
            " VALUES (?, ?, ?, ?, ?, 'USD', ?, 10, 0, 'pipeline', ?, '', '', '', ?, ?, 1)"
        )
        for row in reader:
            account = account_ids.setdefault(row["account"], len(account_ids) + 1)
            batch.append(
                (
                    row["name"],
                    account,
                    owners[row["owner"]],
                    stage_ids[row["stage"]],
                    row["amount"],
                    row["close_date"],
                    row["next_step"],
                    row["created_at"],
                    now,
                )
            )
            if len(batch) >= 10000:
                conn.executemany(sql, batch)
                count += len(batch)
                batch = []
        conn.executemany(sql, batch)
        count += len(batch)
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--progress", action="store_true", help="Show the import's progress bar.")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="truepipe-bench-"))
    os.environ["TRUEPIPE_HOME"] = str(workdir)
    os.environ.pop("TRUEPIPE_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "truepipe.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command

    from truepipe.accounts.services import create_account
    from truepipe.core.models import Via
    from truepipe.importer.importing import ImportOptions, run_import
    from truepipe.people.models import Role
    from truepipe.people.services import create_person
    from truepipe.pipeline.models import Opportunity

    call_command("migrate", verbosity=0)
    print(f"work directory: {workdir}")
    started = time.perf_counter()
    usernames = []
    for n in range(args.reps):
        create_person(None, username=f"rep{n}", full_name=f"Rep Number{n}", role=Role.REP)
        usernames.append(f"rep{n}")
    accounts = [f"Account {n}" for n in range(args.accounts)]
    from django.db import transaction

    with transaction.atomic():
        for name in accounts:
            create_account(None, name=name, owner=None, via=Via.DEMO)
    print(f"set-up: {args.reps} reps, {args.accounts} accounts in {time.perf_counter() - started:.1f} s")

    csv_path = workdir / "opportunities.csv"
    started = time.perf_counter()
    generate(csv_path, args.rows, usernames, accounts)
    size = csv_path.stat().st_size / 1e6
    print(f"generated {args.rows:,} rows ({size:.0f} MB) in {time.perf_counter() - started:.1f} s")

    started, cpu_started = time.perf_counter(), time.process_time()
    report = run_import("opportunities", csv_path, ImportOptions(progress=args.progress))
    import_seconds = time.perf_counter() - started
    import_cpu = time.process_time() - cpu_started
    assert report.committed and report.created == args.rows, report.summary()
    assert Opportunity.objects.count() == args.rows
    print(report.summary())

    raw_rows, raw_seconds = raw_baseline(workdir / "truepipe.sqlite3", workdir / "raw.sqlite3", csv_path)
    import_rate = args.rows / import_seconds
    raw_rate = raw_rows / raw_seconds
    print(
        f"truepipe import: {args.rows:,} rows in {import_seconds:.1f} s = {import_rate:,.0f} rows/s "
        f"({import_cpu:.1f} s of CPU)"
    )
    print(f"raw executemany: {raw_rows:,} rows in {raw_seconds:.1f} s = {raw_rate:,.0f} rows/s")
    print(f"ratio: the import takes {import_seconds / raw_seconds:.1f}x the raw insert's time")


if __name__ == "__main__":
    main()
