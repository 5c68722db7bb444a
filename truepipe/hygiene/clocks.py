"""The deals' activity clocks, kept between nights instead of recomputed from every activity.

A full evaluation needs, for each deal, its last customer touch, its activity count and its
last logged activity as of the evaluated moment, and from its field history its last change
and last progress (stage or amount). Computed from scratch, that is a grouped scan of every
activity the organisation ever logged and of every history row: at 20 M activities, most of a
night's work, repeated although a night changes a few deals. So the full evaluation keeps them
in `DealClock`, as of the moment of `DealClockMark`, and each later evaluation recomputes only
the deals whose clocks may have moved since:

- the deals whose activities or history were written since (`DirtyDeal`): database triggers on
  `activities_activity` and `pipeline_opportunitychange` mark them on every update and delete
  and every insert of history, whatever wrote it, a service, an import, a COPY or a hand-made
  UPDATE;
- the deals whose clocks move with time alone (`pending_at`): an activity that had not
  happened by the moment (a meeting booked for next week) or not been logged by then, or a
  change recorded after the moment, starts counting later, with no write at all; the cache
  keeps the earliest such moment per deal.

An activity inserted on a deal is different: the triggers keep its id (`NewActivity`), and the
refresh adds the new activities to their deals' kept clocks (a later touch, a higher count: the
clocks are maxima, sums and minima, which take new rows in without the old ones), reading the
day's new activities instead of every activity of every deal they touched. A deal recomputed
anyway (also dirty, its clocks moving by themselves, or not kept yet) is not folded.

Anything else (no mark yet, triggers missing: SQLite drops them when a migration rebuilds the
table) rebuilds the whole cache from the activities and the history, once. An evaluation as of a moment before
the cache's uses the activities directly and leaves the cache alone. Dry runs and incremental
evaluation never use it: a write's few deals are read through the activities' index.

On PostgreSQL the refresh locks the marks' tables (EXCLUSIVE) for its few seconds: a write that
logs activities meanwhile waits, rather than have its mark consumed before its rows are visible.
Writers take the two tables in the refresh's order (the dirty deals first), so a transaction that
inserts activities and then updates some cannot deadlock with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from truepipe.activities.models import CUSTOMER_TOUCH_KINDS
from truepipe.hygiene.rules.base import as_datetime, not_captured

if TYPE_CHECKING:
    from collections.abc import Callable

    from truepipe.hygiene.engine import EvalContext

    KeepState = Callable[[Any, str], str]

CLOCK_TABLE = "hygiene_dealclock"
MARK_TABLE = "hygiene_dealclockmark"
DIRTY_TABLE = "hygiene_dirtydeal"
NEW_TABLE = "hygiene_newactivity"
ACTIVITY_TABLE = "activities_activity"
CHANGE_TABLE = "pipeline_opportunitychange"
# Field changes that are progress (the rest are updates only).
PROGRESS_FIELDS = ("stage", "amount")
ACTIVITY_TRIGGERS = ("hygiene_dirty_on_insert", "hygiene_dirty_on_update", "hygiene_dirty_on_delete")
CHANGE_TRIGGERS = (
    "hygiene_change_dirty_on_insert",
    "hygiene_change_dirty_on_update",
    "hygiene_change_dirty_on_delete",
)
# The kept state (`engine.keep_state`) holds each deal's own fields as well as its clocks: a write
# of those fields, or of a snooze, marks the deal dirty too.
DEAL_TABLE = "pipeline_opportunity"
SNOOZE_TABLE = "hygiene_snooze"
DEAL_TRIGGERS = (
    "hygiene_deal_dirty_on_insert",
    "hygiene_deal_dirty_on_update",
    "hygiene_deal_dirty_on_delete",
)
SNOOZE_TRIGGERS = (
    "hygiene_snooze_dirty_on_insert",
    "hygiene_snooze_dirty_on_update",
    "hygiene_snooze_dirty_on_delete",
)
# The deal's columns the state reads, and those the missing-fields rule reads from the deal's row
# (an update of any other, its probability say, leaves it be).
DEAL_COLUMNS = (
    "account_id",
    "competitor",
    "lost_reason",
    "source",
    "owner_id",
    "stage_id",
    "amount",
    "currency",
    "close_date",
    "next_step",
    "next_step_date",
    "created_at",
    "closed_at",
    "name",
    "deleted_at",
)
TRIGGERS_BY_TABLE = {
    ACTIVITY_TABLE: ACTIVITY_TRIGGERS,
    CHANGE_TABLE: CHANGE_TRIGGERS,
    DEAL_TABLE: DEAL_TRIGGERS,
    SNOOZE_TABLE: SNOOZE_TRIGGERS,
}
TRIGGERS = ACTIVITY_TRIGGERS + CHANGE_TRIGGERS + DEAL_TRIGGERS + SNOOZE_TRIGGERS
SCRATCH = "hy_dirty"
# The deals whose kept clocks a refresh rewrote (read afresh or folded): their kept state follows.
CHANGED = "hy_changed"


def _sqlite_deal_marks(names: tuple[str, ...], table: str, update_of: str) -> list[str]:
    """SQLite triggers marking a row's deal (its `opportunity_id`) dirty on insert, update and delete."""
    mark = f"INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES"
    on_insert, on_update, on_delete = names
    return [
        f"CREATE TRIGGER IF NOT EXISTS {on_insert} AFTER INSERT ON {table}"
        f" BEGIN {mark} (NEW.opportunity_id); END",
        f"CREATE TRIGGER IF NOT EXISTS {on_update} AFTER UPDATE {update_of}ON {table}"
        f" BEGIN {mark} (NEW.opportunity_id); {mark} (OLD.opportunity_id); END",
        f"CREATE TRIGGER IF NOT EXISTS {on_delete} AFTER DELETE ON {table}"
        f" BEGIN {mark} (OLD.opportunity_id); END",
    ]


# SQLite: row triggers (INSERT OR IGNORE into a small keyed table).
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_dirty_on_insert AFTER INSERT ON {ACTIVITY_TABLE}
        WHEN NEW.opportunity_id IS NOT NULL
        BEGIN INSERT OR IGNORE INTO {NEW_TABLE} (activity_id) VALUES (NEW.id); END""",
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
    # Any column the rules read (a corrected value too: the history rules over a period trust a
    # deal nobody wrote to keep its verdict).
    *_sqlite_deal_marks(
        CHANGE_TRIGGERS, CHANGE_TABLE, "OF opportunity_id, field, old_value, new_value, changed_at "
    ),
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_deal_dirty_on_insert AFTER INSERT ON {DEAL_TABLE}
        BEGIN INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES (NEW.id); END""",
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_deal_dirty_on_update
        AFTER UPDATE OF {", ".join(DEAL_COLUMNS)} ON {DEAL_TABLE}
        BEGIN INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES (NEW.id); END""",
    f"""CREATE TRIGGER IF NOT EXISTS hygiene_deal_dirty_on_delete AFTER DELETE ON {DEAL_TABLE}
        BEGIN INSERT OR IGNORE INTO {DIRTY_TABLE} (opportunity_id) VALUES (OLD.id); END""",
    *_sqlite_deal_marks(SNOOZE_TRIGGERS, SNOOZE_TABLE, ""),
]

# PostgreSQL: statement triggers over the transition tables (one INSERT per statement, a COPY
# of 75,000 rows included).
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION hygiene_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = '{ACTIVITY_TABLE}' AND TG_OP = 'INSERT' THEN
        -- Every writer takes the marks' tables in the refresh's order (the dirty deals first):
        -- a transaction that inserts an activity and then updates one cannot deadlock with it.
        LOCK TABLE {DIRTY_TABLE} IN ROW EXCLUSIVE MODE;
        INSERT INTO {NEW_TABLE} (activity_id)
            SELECT id FROM new_rows WHERE opportunity_id IS NOT NULL
            ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
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
# The deals' own rows: keyed by `id`; an update marks only the deals whose state columns changed.
_PG_DEAL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION hygiene_mark_deal_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {DIRTY_TABLE} (opportunity_id) SELECT id FROM new_rows ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO {DIRTY_TABLE} (opportunity_id)
            SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE ({", ".join(f"n.{c}" for c in DEAL_COLUMNS)})
                  IS DISTINCT FROM ({", ".join(f"o.{c}" for c in DEAL_COLUMNS)})
            ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO {DIRTY_TABLE} (opportunity_id) SELECT id FROM old_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$"""
_PG_FUNCTIONS = {
    ACTIVITY_TABLE: "hygiene_mark_dirty",
    CHANGE_TABLE: "hygiene_mark_dirty",
    SNOOZE_TABLE: "hygiene_mark_dirty",
    DEAL_TABLE: "hygiene_mark_deal_dirty",
}
_PG_TRIGGERS = [
    f"""CREATE TRIGGER {name} AFTER {event} ON {table} {referencing}
        FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTIONS[table]}()"""
    for table, names in TRIGGERS_BY_TABLE.items()
    for name, (event, referencing) in zip(
        names,
        (
            ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
            ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ),
        strict=True,
    )
]


def installed_triggers(cursor: Any, vendor: str) -> set[str]:
    found: set[str] = set()
    for table, triggers in TRIGGERS_BY_TABLE.items():
        names = ", ".join(f"'{name}'" for name in triggers)
        if vendor == "sqlite":
            cursor.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{table}'"
                f" AND name IN ({names})"
            )
        else:
            cursor.execute(
                f"SELECT tgname FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND tgname IN ({names})"
            )
        found.update(row[0] for row in cursor.fetchall())
    return found


def install_triggers(cursor: Any, vendor: str) -> None:
    """Create the triggers that mark written deals dirty (those missing; idempotent)."""
    if vendor == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            cursor.execute(statement)
        return
    present = installed_triggers(cursor, vendor)
    cursor.execute(_PG_FUNCTION)
    cursor.execute(_PG_DEAL_FUNCTION)
    for name, statement in zip(TRIGGERS, _PG_TRIGGERS, strict=True):
        if name not in present:
            cursor.execute(statement)


def remove_triggers(cursor: Any, vendor: str) -> None:
    for table, triggers in TRIGGERS_BY_TABLE.items():
        on = "" if vendor == "sqlite" else f" ON {table}"
        for name in triggers:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
    if vendor != "sqlite":
        cursor.execute("DROP FUNCTION IF EXISTS hygiene_mark_dirty()")
        cursor.execute("DROP FUNCTION IF EXISTS hygiene_mark_deal_dirty()")


def clocks_sql(ctx: EvalContext, where: str = "", *, pending: bool = True) -> str:
    """Each deal's activity clocks as of the context's moment: its last customer touch, activity
    count and last logged activity, counting what had happened and been logged by then and was
    not deleted by then. With `pending` (the cache), also when they next move by themselves, so
    activities that do not count yet are read too. One definition for the cache and for the
    state's direct read (a write's few deals, a dry run, a past moment): they cannot drift."""
    if not pending:
        counts, touch, alive, by_rep = _terms(ctx)
        return f"""
        SELECT opportunity_id,
               MAX(CASE WHEN kind IN ({touch}) THEN occurred_at END) AS last_touch_at,
               COUNT(*) AS activity_count, MAX(CASE WHEN {by_rep} THEN logged_at END) AS last_logged_at
        FROM {ACTIVITY_TABLE}
        WHERE {counts} AND {alive}{where}
        GROUP BY opportunity_id"""
    return _combined(_kept_activities_sql(ctx, where), change_clocks_sql(ctx, where, pending=True))


def _terms(ctx: EvalContext) -> tuple[str, str, str, str]:
    """SQL conditions on an activity at the moment: it counts (had happened and been logged),
    it is a customer touch, it is alive (not deleted by then), the rep logged it."""
    at = ctx.ts(ctx.as_of)
    touch = ", ".join(f"'{kind}'" for kind in CUSTOMER_TOUCH_KINDS)
    # The rep's update clock counts what the rep logged: captured e-mail and meetings are customer
    # touches, not updates (a rainmaker whose mail is captured has still not updated his deals).
    return (
        f"occurred_at <= {at} AND logged_at <= {at}",
        touch,
        f"(deleted_at IS NULL OR deleted_at > {at})",
        not_captured("source"),
    )


def _kept_activities_sql(ctx: EvalContext, where: str) -> str:
    """The activity half of the kept clocks (`clocks_sql` with `pending`), grouped by deal."""
    counts, touch, alive, by_rep = _terms(ctx)
    # Rows deleted by the moment never count again (an undelete is an update: marked dirty).
    return f"""
        SELECT opportunity_id,
               MAX(CASE WHEN {counts} AND kind IN ({touch}) THEN occurred_at END) AS last_touch_at,
               SUM(CASE WHEN {counts} THEN 1 ELSE 0 END) AS activity_count,
               MAX(CASE WHEN {counts} AND {by_rep} THEN logged_at END) AS last_logged_at,
               MIN(CASE WHEN NOT ({counts}) THEN {ctx.greatest("occurred_at", "logged_at")}
                        WHEN deleted_at IS NOT NULL THEN deleted_at END) AS pending_at,
               NULL AS last_change_at, NULL AS last_progress_at
        FROM {ACTIVITY_TABLE}
        WHERE opportunity_id IS NOT NULL AND {alive}{where}
        GROUP BY opportunity_id"""


def _combined(*parts: str) -> str:
    """Clock rows of several parts (each grouped by deal on its own, in its index's order) joined
    by deal: every clock is a maximum, a sum or a minimum, so the parts add up."""
    union = " UNION ALL ".join(parts)
    return f"""
        SELECT opportunity_id, MAX(last_touch_at) AS last_touch_at,
               SUM(activity_count) AS activity_count, MAX(last_logged_at) AS last_logged_at,
               MIN(pending_at) AS pending_at, MAX(last_change_at) AS last_change_at,
               MAX(last_progress_at) AS last_progress_at
        FROM ({union}) c
        GROUP BY opportunity_id"""


def change_clocks_sql(ctx: EvalContext, where: str = "", *, pending: bool = False) -> str:
    """Each deal's last change (any field: the rep's update) and last progress (stage or amount)
    as of the context's moment, from its history; with `pending` (the cache), also the first
    change recorded after the moment (it counts from then on without another write), in the
    columns of `clocks_sql`."""
    at = ctx.ts(ctx.as_of)
    progress = ", ".join(f"'{name}'" for name in PROGRESS_FIELDS)
    if not pending:
        return f"""
            SELECT opportunity_id, MAX(changed_at) AS last_change_at,
                   MAX(CASE WHEN field IN ({progress}) THEN changed_at END) AS last_progress_at
            FROM {CHANGE_TABLE}
            WHERE changed_at <= {at}{where}
            GROUP BY opportunity_id"""
    return f"""
        SELECT opportunity_id, NULL AS last_touch_at, 0 AS activity_count, NULL AS last_logged_at,
               MIN(CASE WHEN changed_at > {at} THEN changed_at END) AS pending_at,
               MAX(CASE WHEN changed_at <= {at} THEN changed_at END) AS last_change_at,
               MAX(CASE WHEN changed_at <= {at} AND field IN ({progress}) THEN changed_at END)
                   AS last_progress_at
        FROM {CHANGE_TABLE}
        WHERE TRUE{where}
        GROUP BY opportunity_id"""


def refresh(ctx: EvalContext, keep: KeepState | None = None) -> bool:
    """Bring the cache to the context's moment; False if it cannot serve that moment (earlier
    than the cache's), in which case the caller reads the activities and history themselves.

    `keep` brings the kept state (`engine.keep_state`) along in the same transaction: it is told
    the stages' fingerprint its rows were built with ('' for none, or a rebuild of the clocks) and
    finds the deals whose clocks were rewritten in `CHANGED`; it returns the fingerprint to keep."""
    vendor = ctx.vendor
    at = ctx.ts(ctx.as_of)
    columns = (
        "opportunity_id, last_touch_at, activity_count, last_logged_at, pending_at, last_change_at,"
        " last_progress_at"
    )
    with transaction.atomic(), ctx.cursor() as cursor:
        # Writers wait from here: SQLite's write lock; PostgreSQL's lock on the marks.
        if vendor == "sqlite":
            cursor.execute(f"UPDATE {MARK_TABLE} SET refreshed_at = refreshed_at")
        else:
            cursor.execute(f"LOCK TABLE {DIRTY_TABLE}, {NEW_TABLE} IN EXCLUSIVE MODE")
        cursor.execute(f"SELECT as_of, state_stages FROM {MARK_TABLE}")
        marks = cursor.fetchall()
        mark = as_datetime(marks[0][0]) if len(marks) == 1 else None
        kept_stages = marks[0][1] if mark is not None else ""
        if mark is not None and mark > ctx.as_of:
            return False
        present = installed_triggers(cursor, vendor)
        # Without the triggers on the activities and the history, the clocks may have missed
        # writes: rebuilt. Without those on the deals and snoozes, only the kept state may have.
        rebuild = mark is None or not set(ACTIVITY_TRIGGERS + CHANGE_TRIGGERS) <= present
        if present != set(TRIGGERS):
            kept_stages = ""
            install_triggers(cursor, vendor)
        folded = 0
        if rebuild:
            cursor.execute(f"DELETE FROM {DIRTY_TABLE}")
            cursor.execute(f"DELETE FROM {NEW_TABLE}")
            cursor.execute(f"DELETE FROM {CLOCK_TABLE}")
            cursor.execute(f"INSERT INTO {CLOCK_TABLE} ({columns}) {clocks_sql(ctx)}")
            recomputed = cursor.rowcount
            kept_stages = ""
            cursor.execute(f"DROP TABLE IF EXISTS {CHANGED}")
        else:
            recomputed, folded = _refresh_written(ctx, cursor, columns)
        stages = keep(cursor, kept_stages) if keep else ""
        # The deals rewritten since the last refresh, as of when, for the night's rules
        # (`engine.Narrowing`); the caller drops the table.
        ctx.refreshed_since = None if rebuild else mark
        cursor.execute(f"DELETE FROM {MARK_TABLE}")
        cursor.execute(
            f"INSERT INTO {MARK_TABLE} (as_of, refreshed_at, rebuilt, recomputed, folded, state_stages)"
            f" VALUES ({at}, %s, %s, %s, %s, %s)",
            [timezone.now(), rebuild, max(recomputed, 0), folded, stages],
        )
    return True


NEW_DEALS = "hy_new_deals"
FOLD = "hy_fold"


def _refresh_written(ctx: EvalContext, cursor: Any, columns: str) -> tuple[int, int]:
    """The kept clocks of the deals written since: the new activities added to their deals'
    clocks; the dirty deals, those whose clocks move by themselves and those not kept yet read
    afresh. Returns (deals read afresh, deals folded)."""
    at = ctx.ts(ctx.as_of)
    analyse = ctx.vendor == "postgresql"
    if analyse:
        # The marks fill up during the day; planned on the statistics of an emptier table (left to
        # autovacuum, which may not have come by), the look-ups of a day's 50,000 new activities by
        # id read every activity instead (2.2 s against 0.09 s for one statement).
        cursor.execute(f"ANALYZE {NEW_TABLE}")
        cursor.execute(f"ANALYZE {DIRTY_TABLE}")
    for table in (SCRATCH, NEW_DEALS, FOLD):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {NEW_DEALS} (id BIGINT PRIMARY KEY)")
    cursor.execute(
        f"INSERT INTO {NEW_DEALS} (id) SELECT DISTINCT opportunity_id FROM {ACTIVITY_TABLE}"
        f" WHERE id IN (SELECT activity_id FROM {NEW_TABLE}) AND opportunity_id IS NOT NULL"
    )
    cursor.execute(f"CREATE TEMPORARY TABLE {SCRATCH} (id BIGINT PRIMARY KEY)")
    cursor.execute(
        f"INSERT INTO {SCRATCH} (id) SELECT opportunity_id FROM {DIRTY_TABLE}"
        f" UNION SELECT opportunity_id FROM {CLOCK_TABLE} WHERE pending_at IS NOT NULL AND pending_at <= {at}"
        f" UNION SELECT n.id FROM {NEW_DEALS} n"
        f" WHERE NOT EXISTS (SELECT 1 FROM {CLOCK_TABLE} c WHERE c.opportunity_id = n.id)"
    )
    recomputed = cursor.rowcount
    if analyse:
        cursor.execute(f"ANALYZE {NEW_DEALS}")
        cursor.execute(f"ANALYZE {SCRATCH}")
    # The folded deals: kept clocks plus their new activities, grouped together.
    fold = (
        f" AND opportunity_id IN (SELECT id FROM {NEW_DEALS})"
        f" AND opportunity_id NOT IN (SELECT id FROM {SCRATCH})"
    )
    kept = f"SELECT {columns} FROM {CLOCK_TABLE} WHERE TRUE{fold}"
    new = _kept_activities_sql(ctx, f" AND id IN (SELECT activity_id FROM {NEW_TABLE}){fold}")
    cursor.execute(f"CREATE TEMPORARY TABLE {FOLD} AS {_combined(kept, new)}")
    cursor.execute(f"SELECT COUNT(*) FROM {FOLD}")
    folded = int(cursor.fetchone()[0])
    if analyse:
        cursor.execute(f"ANALYZE {FOLD}")
    # Rewritten in place (a delete then an insert wrote each row's page twice; PostgreSQL's delete
    # had read the whole cache to find them).
    names = [name.strip() for name in columns.split(",") if name.strip() != "opportunity_id"]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names)
    cursor.execute(
        f"INSERT INTO {CLOCK_TABLE} ({columns}) SELECT {columns} FROM {FOLD} WHERE TRUE"
        f" ON CONFLICT (opportunity_id) DO UPDATE SET {updates}"
    )
    # The others read afresh from every activity and history row.
    cursor.execute(f"DELETE FROM {CLOCK_TABLE} WHERE opportunity_id IN (SELECT id FROM {SCRATCH})")
    cursor.execute(
        f"INSERT INTO {CLOCK_TABLE} ({columns}) "
        + clocks_sql(ctx, f" AND opportunity_id IN (SELECT id FROM {SCRATCH})")
    )
    cursor.execute(f"DELETE FROM {DIRTY_TABLE}")
    cursor.execute(f"DELETE FROM {NEW_TABLE}")
    cursor.execute(f"DROP TABLE IF EXISTS {CHANGED}")
    key = "INTEGER PRIMARY KEY" if ctx.vendor == "sqlite" else "BIGINT PRIMARY KEY"  # SQLite: the rowid
    cursor.execute(f"CREATE TEMPORARY TABLE {CHANGED} (id {key})")
    cursor.execute(
        f"INSERT INTO {CHANGED} (id) SELECT id FROM {SCRATCH} UNION SELECT opportunity_id FROM {FOLD}"
    )
    if analyse:
        cursor.execute(f"ANALYZE {CHANGED}")
    for table in (SCRATCH, NEW_DEALS, FOLD):
        cursor.execute(f"DROP TABLE {table}")
    return recomputed, folded
