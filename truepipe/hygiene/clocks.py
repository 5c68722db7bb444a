"""The deals' activity clocks, kept between nights instead of recomputed from every activity.

A full evaluation needs, for each deal, its last customer touch, its activity count and its
last logged activity as of the evaluated moment. Computed from scratch, that is a grouped scan
of every activity the organisation ever logged: at 20 M activities, most of a night's work,
repeated although a night changes a few deals' activities. So the full evaluation keeps them
in `DealClock`, as of the moment of `DealClockMark`, and each later evaluation recomputes only
the deals whose clocks may have moved since:

- the deals whose activities were written since (`DirtyDeal`): database triggers on
  `activities_activity` mark them on every insert, update and delete, whatever wrote it, a
  service, an import, a COPY or a hand-made UPDATE;
- the deals whose clocks move with time alone (`pending_at`): an activity that had not
  happened by the moment (a meeting booked for next week) or not been logged by then starts
  counting later, with no write at all; the cache keeps the earliest such moment per deal.

Anything else (no mark yet, triggers missing: SQLite drops them when a migration rebuilds the
table) rebuilds the whole cache from the activities, once. An evaluation as of a moment before
the cache's uses the activities directly and leaves the cache alone. Dry runs and incremental
evaluation never use it: a write's few deals are read through the activities' index.

On PostgreSQL the refresh locks the marks table (EXCLUSIVE) for its few seconds: a write that
logs activities meanwhile waits, rather than have its mark consumed before its rows are visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from truepipe.activities.models import CUSTOMER_TOUCH_KINDS
from truepipe.hygiene.rules.base import as_datetime, not_captured

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

CLOCK_TABLE = "hygiene_dealclock"
MARK_TABLE = "hygiene_dealclockmark"
DIRTY_TABLE = "hygiene_dirtydeal"
ACTIVITY_TABLE = "activities_activity"
TRIGGERS = ("hygiene_dirty_on_insert", "hygiene_dirty_on_update", "hygiene_dirty_on_delete")
SCRATCH = "hy_dirty"

# SQLite: row triggers (INSERT OR IGNORE into a small keyed table).
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_dirty_on_insert AFTER INSERT ON {ACTIVITY_TABLE}
        WHEN NEW.opportunity_id IS NOT NULL
        BEGIN INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES (NEW.opportunity_id); END""",
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_dirty_on_update
        AFTER UPDATE OF opportunity_id, kind, source, occurred_at, logged_at, deleted_at ON {ACTIVITY_TABLE}
        BEGIN
            INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id)
                SELECT NEW.opportunity_id WHERE NEW.opportunity_id IS NOT NULL;
            INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id)
                SELECT OLD.opportunity_id WHERE OLD.opportunity_id IS NOT NULL;
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_dirty_on_delete AFTER DELETE ON {ACTIVITY_TABLE}
        WHEN OLD.opportunity_id IS NOT NULL
        BEGIN INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES (OLD.opportunity_id); END""",
]

# PostgreSQL: statement triggers over the transition tables (one INSERT per statement, a COPY
# of 75,000 rows included).
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION hygiene_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO {DIRTY_TABLE} (opportunity_id)
            SELECT DISTINCT opportunity_id FROM new_rows WHERE opportunity_id IS NOT NULL
            ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO {DIRTY_TABLE} (opportunity_id)
            SELECT DISTINCT opportunity_id FROM old_rows WHERE opportunity_id IS NOT NULL
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$"""
_PG_TRIGGERS = [
    f"""CREATE TRIGGER hygiene_dirty_on_insert AFTER INSERT ON {ACTIVITY_TABLE}
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hygiene_mark_dirty()""",
    f"""CREATE TRIGGER hygiene_dirty_on_update AFTER UPDATE ON {ACTIVITY_TABLE}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION hygiene_mark_dirty()""",
    f"""CREATE TRIGGER hygiene_dirty_on_delete AFTER DELETE ON {ACTIVITY_TABLE}
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION hygiene_mark_dirty()""",
]


def installed_triggers(cursor: Any, vendor: str) -> set[str]:
    names = ", ".join(f"'{name}'" for name in TRIGGERS)
    if vendor == "sqlite":
        cursor.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{ACTIVITY_TABLE}'"
            f" AND name IN ({names})"
        )
    else:
        cursor.execute(
            f"SELECT tgname FROM pg_trigger"
            f" WHERE tgrelid = '{ACTIVITY_TABLE}'::regclass AND tgname IN ({names})"
        )
    return {row[0] for row in cursor.fetchall()}


def install_triggers(cursor: Any, vendor: str) -> None:
    """Create the triggers that mark written deals dirty (those missing; idempotent)."""
    if vendor == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            cursor.execute(statement)
        return
    present = installed_triggers(cursor, vendor)
    cursor.execute(_PG_FUNCTION)
    for name, statement in zip(TRIGGERS, _PG_TRIGGERS, strict=True):
        if name not in present:
            cursor.execute(statement)


def remove_triggers(cursor: Any, vendor: str) -> None:
    on = "" if vendor == "sqlite" else f" ON {ACTIVITY_TABLE}"
    for name in TRIGGERS:
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
    if vendor != "sqlite":
        cursor.execute("DROP FUNCTION IF EXISTS hygiene_mark_dirty()")


def clocks_sql(ctx: EvalContext, where: str = "", *, pending: bool = True) -> str:
    """Each deal's activity clocks as of the context's moment: its last customer touch, activity
    count and last logged activity, counting what had happened and been logged by then and was
    not deleted by then. With `pending` (the cache), also when they next move by themselves, so
    activities that do not count yet are read too. One definition for the cache and for the
    state's direct read (a write's few deals, a dry run, a past moment): they cannot drift."""
    at = ctx.ts(ctx.as_of)
    counts = f"occurred_at <= {at} AND logged_at <= {at}"
    touch = ", ".join(f"'{kind}'" for kind in CUSTOMER_TOUCH_KINDS)
    alive = f"(deleted_at IS NULL OR deleted_at > {at})"
    # The rep's update clock counts what the rep logged: captured e-mail and meetings are customer
    # touches, not updates (a rainmaker whose mail is captured has still not updated his deals).
    by_rep = not_captured("source")
    if not pending:
        return f"""
        SELECT opportunity_id,
               MAX(CASE WHEN kind IN ({touch}) THEN occurred_at END) AS last_touch_at,
               COUNT(*) AS activity_count, MAX(CASE WHEN {by_rep} THEN logged_at END) AS last_logged_at
        FROM {ACTIVITY_TABLE}
        WHERE {counts} AND {alive}{where}
        GROUP BY opportunity_id"""
    # Rows deleted by the moment never count again (an undelete is an update: marked dirty).
    return f"""
        SELECT opportunity_id,
               MAX(CASE WHEN {counts} AND kind IN ({touch}) THEN occurred_at END) AS last_touch_at,
               SUM(CASE WHEN {counts} THEN 1 ELSE 0 END) AS activity_count,
               MAX(CASE WHEN {counts} AND {by_rep} THEN logged_at END) AS last_logged_at,
               MIN(CASE WHEN NOT ({counts}) THEN {ctx.greatest("occurred_at", "logged_at")}
                        WHEN deleted_at IS NOT NULL THEN deleted_at END) AS pending_at
        FROM {ACTIVITY_TABLE}
        WHERE opportunity_id IS NOT NULL AND {alive}{where}
        GROUP BY opportunity_id"""


def refresh(ctx: EvalContext) -> bool:
    """Bring the cache to the context's moment; False if it cannot serve that moment (earlier
    than the cache's), in which case the caller reads the activities themselves."""
    vendor = ctx.vendor
    at = ctx.ts(ctx.as_of)
    columns = "opportunity_id, last_touch_at, activity_count, last_logged_at, pending_at"
    with transaction.atomic(), ctx.cursor() as cursor:
        # Writers wait from here: SQLite's write lock; PostgreSQL's lock on the marks.
        if vendor == "sqlite":
            cursor.execute(f"UPDATE {MARK_TABLE} SET refreshed_at = refreshed_at")
        else:
            cursor.execute(f"LOCK TABLE {DIRTY_TABLE} IN EXCLUSIVE MODE")
        cursor.execute(f"SELECT as_of FROM {MARK_TABLE}")
        marks = [row[0] for row in cursor.fetchall()]
        mark = as_datetime(marks[0]) if len(marks) == 1 else None
        if mark is not None and mark > ctx.as_of:
            return False
        rebuild = mark is None or installed_triggers(cursor, vendor) != set(TRIGGERS)
        if rebuild:
            install_triggers(cursor, vendor)
            cursor.execute(f"DELETE FROM {DIRTY_TABLE}")
            cursor.execute(f"DELETE FROM {CLOCK_TABLE}")
            cursor.execute(f"INSERT INTO {CLOCK_TABLE} ({columns}) {clocks_sql(ctx)}")
            recomputed = cursor.rowcount
        else:
            cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
            cursor.execute(f"CREATE TEMPORARY TABLE {SCRATCH} (id BIGINT PRIMARY KEY)")
            cursor.execute(
                f"INSERT INTO {SCRATCH} (id) SELECT opportunity_id FROM {DIRTY_TABLE}"
                f" UNION SELECT opportunity_id FROM {CLOCK_TABLE}"
                f" WHERE pending_at IS NOT NULL AND pending_at <= {at}"
            )
            recomputed = cursor.rowcount
            cursor.execute(f"DELETE FROM {DIRTY_TABLE}")
            if vendor == "postgresql":
                cursor.execute(f"ANALYZE {SCRATCH}")
            cursor.execute(f"DELETE FROM {CLOCK_TABLE} WHERE opportunity_id IN (SELECT id FROM {SCRATCH})")
            cursor.execute(
                f"INSERT INTO {CLOCK_TABLE} ({columns}) "
                + clocks_sql(ctx, f" AND opportunity_id IN (SELECT id FROM {SCRATCH})")
            )
            cursor.execute(f"DROP TABLE {SCRATCH}")
        cursor.execute(f"DELETE FROM {MARK_TABLE}")
        cursor.execute(
            f"INSERT INTO {MARK_TABLE} (as_of, refreshed_at, rebuilt, recomputed) VALUES ({at}, %s, %s, %s)",
            [timezone.now(), rebuild, max(recomputed, 0)],
        )
    return True
