"""Generate a large organisation straight into the database, for benchmarks only.

    python -m bench.datagen --reps 5000 --accounts 100000 --opportunities 1000000 \
        --activities 20000000 [--history-per-opportunity 2] [--seed 7]

Uses TRUEPIPE_DATABASE_URL / TRUEPIPE_HOME like the product. This bypasses the
service layer on purpose: it builds fixtures for benchmarks at a speed the
product's validated paths are not meant to reach (those are measured by
bench_import.py). Rows look like real data: a reporting tree, open deals in
every stage, activities spread over the last 18 months with logging lags.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence

UTC = dt.UTC


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "truepipe.settings")
    import django

    django.setup()


def batched(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Writer:
    """Bulk insert with the fastest portable path per database: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self) -> None:
        from django.db import connection

        connection.ensure_connection()
        self.connection = connection
        self.vendor = connection.vendor
        self.raw = connection.connection
        if self.vendor == "sqlite":
            # A 2 GB page cache for the load (index builds sort in it); the product's own is 64 MB.
            self.raw.execute("PRAGMA cache_size=-2000000")

    def ts(self, value: dt.datetime | None):
        if value is None:
            return None
        # Django stores aware datetimes in SQLite as naive UTC text.
        return value.strftime("%Y-%m-%d %H:%M:%S") if self.vendor == "sqlite" else value

    def secondary_indexes(self, table: str) -> list[tuple[str, str]]:
        """(name, CREATE statement) of the table's indexes that no constraint owns."""
        with self.connection.cursor() as cursor:
            if self.vendor == "sqlite":
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master"
                    " WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                    [table],
                )
            else:
                cursor.execute(
                    """SELECT i.indexname, i.indexdef FROM pg_indexes i
                       WHERE i.tablename = %s AND NOT EXISTS (
                           SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
                    [table],
                )
            return list(cursor.fetchall())

    def insert(
        self, table: str, columns: Sequence[str], rows: Iterator[tuple], total: int, label: str
    ) -> None:
        """Load rows with the table's secondary indexes dropped, then build them once: maintaining
        B-trees row by row is what makes loading tens of millions of rows slow."""
        indexes = self.secondary_indexes(table) if total > 100_000 else []
        with self.connection.cursor() as cursor:
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
        self._insert(table, columns, rows, total, label)
        if indexes:
            from tqdm import tqdm

            with self.connection.cursor() as cursor:
                for _, create in tqdm(indexes, desc=f"{label} indexes", unit="index", file=sys.stderr):
                    cursor.execute(create)

    def _insert(
        self, table: str, columns: Sequence[str], rows: Iterator[tuple], total: int, label: str
    ) -> None:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=label, unit="row", unit_scale=True, file=sys.stderr, mininterval=1)
        cols = ", ".join(columns)
        if self.vendor == "postgresql":
            with self.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    bar.update()
            self.raw.commit()
        else:
            marks = ", ".join("?" for _ in columns)
            cursor = self.raw.cursor()
            for batch in batched(rows, 50_000):
                cursor.execute("BEGIN")
                cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", batch)
                cursor.execute("COMMIT")
                bar.update(len(batch))
        bar.close()

    def max_id(self, table: str) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            return int(cursor.fetchone()[0])

    def reset_sequences(self, tables: Sequence[str]) -> None:
        if self.vendor != "postgresql":
            return
        with self.connection.cursor() as cursor:
            for table in tables:
                last = f"COALESCE((SELECT MAX(id) FROM {table}), 1)"
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})")


def generate(
    *,
    reps: int,
    accounts: int,
    opportunities: int,
    activities: int,
    history_per_opportunity: int = 2,
    seed: int = 7,
    today: dt.date | None = None,
) -> dict[str, int]:
    """Fill the (migrated, empty) database. Returns the counts written."""
    from django.contrib.auth import get_user_model

    from truepipe.people.models import Role, SalesProfile, Team
    from truepipe.pipeline.models import Stage, StageKind

    rng = random.Random(seed)
    today = today or dt.date.today()
    # The start of the day: nothing generated lies in the future of a benchmark run that day (an
    # evening "now" left history and activities ahead of the clock, which no organisation has and
    # which sent every evaluation through the as-of-the-past path).
    now = dt.datetime.combine(today, dt.time(0, 0), tzinfo=UTC)
    writer = Writer()
    User = get_user_model()

    # People: one VP, a manager per 10 reps (tree of depth 3).
    managers = max(1, reps // 10)
    vp = User.objects.create(username="bench-vp", first_name="Bench", last_name="VP")
    SalesProfile.objects.create(user=vp, role=Role.MANAGER, path=f"/{vp.pk}/")
    teams = Team.objects.bulk_create(Team(name=f"Bench team {i}") for i in range(managers))
    manager_users = User.objects.bulk_create(
        User(username=f"bench-mgr-{i}", first_name="Manager", last_name=str(i)) for i in range(managers)
    )
    SalesProfile.objects.bulk_create(
        SalesProfile(user=m, role=Role.MANAGER, manager=vp, team=teams[i], path=f"/{vp.pk}/{m.pk}/")
        for i, m in enumerate(manager_users)
    )
    rep_users = User.objects.bulk_create(
        User(username=f"bench-rep-{i}", first_name="Rep", last_name=str(i), email=f"rep{i}@bench.test")
        for i in range(reps)
    )
    SalesProfile.objects.bulk_create(
        SalesProfile(
            user=u,
            role=Role.REP,
            manager=manager_users[i % managers],
            team=teams[i % managers],
            path=f"/{vp.pk}/{manager_users[i % managers].pk}/{u.pk}/",
        )
        for i, u in enumerate(rep_users)
    )
    rep_ids = [u.pk for u in rep_users]

    first_account = writer.max_id("accounts_account") + 1
    writer.insert(
        "accounts_account",
        ("id", "name", "industry", "employees", "owner_id", "created_at", "updated_at", "version"),
        (
            (
                first_account + i,
                f"Account {i:06d}",
                rng.choice(("software", "retail", "medical", "finance")),
                rng.randint(5, 50_000),
                rep_ids[i % reps],
                writer.ts(now - dt.timedelta(days=400)),
                writer.ts(now - dt.timedelta(days=400)),
                1,
            )
            for i in range(accounts)
        ),
        accounts,
        "accounts",
    )

    stages = list(Stage.objects.filter(kind=StageKind.OPEN).order_by("order"))
    first_opp = writer.max_id("pipeline_opportunity") + 1

    def opportunity_rows() -> Iterator[tuple]:
        for i in range(opportunities):
            stage = stages[i % len(stages)]
            created = now - dt.timedelta(days=rng.randint(1, 360), minutes=rng.randint(0, 1440))
            close = today + dt.timedelta(days=rng.randint(-60, 180))
            yield (
                first_opp + i,
                f"Deal {i:07d}",
                first_account + rng.randrange(accounts) if accounts else None,
                rep_ids[i % reps],
                stage.pk,
                rng.randint(1, 500) * 1000,
                "USD",
                close,
                stage.probability,
                False,
                stage.forecast_category,
                "Follow up" if i % 3 else "",
                close - dt.timedelta(days=rng.randint(0, 30)) if i % 3 else None,
                "",
                "",
                "",
                writer.ts(created),
                writer.ts(created + dt.timedelta(days=rng.randint(0, 30))),
                None,
                1,
            )

    writer.insert(
        "pipeline_opportunity",
        (
            "id name account_id owner_id stage_id amount currency close_date probability "
            "probability_overridden forecast_category next_step next_step_date source competitor "
            "lost_reason created_at updated_at closed_at version"
        ).split(),
        opportunity_rows(),
        opportunities,
        "opportunities",
    )

    fields = ("close_date", "amount", "stage", "next_step")

    def history_values(field: str) -> tuple[str, str]:
        """Old and new values of the right type, so as-of reconstruction reads real dates and amounts."""
        if field == "close_date":
            new_close = today + dt.timedelta(days=rng.randint(-60, 180))
            return (new_close - dt.timedelta(days=rng.randint(7, 60))).isoformat(), new_close.isoformat()
        if field == "amount":
            return str(rng.randint(1, 500) * 1000), str(rng.randint(1, 500) * 1000)
        if field == "stage":
            earlier, later = sorted(rng.sample(range(len(stages)), 2))
            return str(stages[earlier].pk), str(stages[later].pk)
        return "Call back", "Follow up"

    def history_rows() -> Iterator[tuple]:
        for i in range(opportunities * history_per_opportunity):
            opp = first_opp + (i // history_per_opportunity)
            field = fields[i % len(fields)]
            when = now - dt.timedelta(days=rng.randint(0, 120), minutes=rng.randint(0, 1440))
            old, new = history_values(field)
            yield (opp, field, old, new, writer.ts(when), rep_ids[(opp - first_opp) % reps], "form")

    writer.insert(
        "pipeline_opportunitychange",
        ("opportunity_id", "field", "old_value", "new_value", "changed_at", "changed_by_id", "via"),
        history_rows(),
        opportunities * history_per_opportunity,
        "history",
    )

    kinds = ("call", "email", "meeting", "note", "email", "call")

    def activity_rows() -> Iterator[tuple]:
        for i in range(activities):
            opp_index = rng.randrange(opportunities) if opportunities else None
            occurred = now - dt.timedelta(minutes=rng.randint(0, 540 * 1440))
            lag = dt.timedelta(minutes=rng.choice((0, 0, 0, 5, 60, 1440, 4 * 1440)))
            yield (
                kinds[i % len(kinds)],
                writer.ts(occurred),
                writer.ts(min(now, occurred + lag)),
                "Touch",
                "",
                "manual",
                rep_ids[opp_index % reps] if opp_index is not None else rep_ids[0],
                first_opp + opp_index if opp_index is not None else None,
                None,
            )

    writer.insert(
        "activities_activity",
        (
            "kind",
            "occurred_at",
            "logged_at",
            "subject",
            "body",
            "source",
            "owner_id",
            "opportunity_id",
            "account_id",
        ),
        activity_rows(),
        activities,
        "activities",
    )
    writer.reset_sequences(
        ["accounts_account", "pipeline_opportunity", "pipeline_opportunitychange", "activities_activity"]
    )
    with writer.connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "reps": reps,
        "accounts": accounts,
        "opportunities": opportunities,
        "activities": activities,
        "history": opportunities * history_per_opportunity,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=0)
    parser.add_argument("--history-per-opportunity", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    counts = generate(
        reps=args.reps,
        accounts=args.accounts,
        opportunities=args.opportunities,
        activities=args.activities,
        history_per_opportunity=args.history_per_opportunity,
        seed=args.seed,
    )
    print(f"generated {counts} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
