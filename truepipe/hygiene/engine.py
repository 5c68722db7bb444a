"""Evaluation: run the policy's rules over the organisation (or a few deals) as of a moment.

The engine builds one *state* relation, every deal's fields as of the moment
plus its three clocks (last customer touch, last rep update, last progress)
and its activity count, with a handful of set-based SQL statements: current
values, overridden by the earliest later history row where the moment is in
the past. Rules are SQL over that relation. Their findings are reconciled with
the live violations: new failures open, failures that stopped hold resolve
(state rules) or expire (event rules).

Full evaluation materialises the state into a temporary table once; the
incremental evaluation that follows each write uses the same SQL as a
subquery restricted to the written deals, inside the write's transaction.

Each rule is two pieces of SQL (see `rules.base`): its *facts* (the failures,
keyed, with the values that explain them) and its *presentation* (summary text
and evidence JSON built from those facts). A full evaluation keeps the facts in
a temporary table, inserts the new failures with one INSERT ... SELECT that
applies the presentation, and closes the cleared ones with one UPDATE: no
Python per record, however many violations a night opens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from truepipe.core.bulk import checkpoints_beside
from truepipe.hygiene import clocks
from truepipe.hygiene.models import EvaluationRun, Violation, ViolationStatus
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.rules import Finding, Rule
from truepipe.pipeline.models import Stage, StageKind

STATE_TABLE = "hy_state"
# The state kept between nights (`keep_state`): a table of the database, not a temporary one.
KEPT_STATE = "hygiene_dealstate"
CHANGED_LIVE = "hy_changed_live"  # a narrowed night's live violations of the deals rewritten
KEPT_VIEW = "hy_kept"  # the deals of the kept state alive at the evaluated moment
INCREMENTAL_TABLE = "hy_state_few"
# SQLite incremental evaluation: the moments and ids a write's statements compare with, bound
# through these per-connection tables so the statement text repeats (see EvalContext.bound).
BIND_TABLE = "hy_bind"
IDS_TABLE = "hy_ids"
# Opportunity fields the state reconstructs from history, and how to read the stored text back.
HISTORY_FIELDS: dict[str, str] = {
    "owner": "int",
    "stage": "int",
    "amount": "num",
    "close_date": "date",
    "next_step": "text",
    "next_step_date": "date",
}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DAY_US = 86_400_000_000


def end_of_day(day: dt.date) -> dt.datetime:
    """The last moment of a day in the organisation's time zone: what `--as-of DAY` means."""
    zone = timezone.get_default_timezone()
    return dt.datetime.combine(day, dt.time.max).replace(tzinfo=zone)


@dataclass
class Narrowing:
    """A night that follows the last recorded one, with the same policy and the kept state: a rule
    whose `facts_since` can say so looks only at the deals written since (`changed`) and at those
    that did not fail as of the last night (`earlier`); the live violations of every other deal
    are its findings already, and only the written deals' can close, with those of the deals a
    rule over a period names as slid out of it since (`Rule.slid_since`)."""

    earlier: EvalContext
    changed: str
    nothing_changed: bool = False  # no deal rewritten: none of a narrowed rule's violations can close
    # The live violations of the deals rewritten, looked up once for every narrowed rule.
    live: str = CHANGED_LIVE


@dataclass
class EvalContext:
    as_of: dt.datetime
    policy: Policy
    opportunity_ids: list[int] | None = None
    activity_ids: list[int] | None = None
    state: str = STATE_TABLE
    vendor: str = field(default_factory=lambda: connection.vendor)
    # Incremental evaluation reads the live violations of its few records once, for every rule.
    live_in_scope: dict[str, dict[str, int]] | None = None
    # Bound mode (SQLite incremental evaluation): moments and ids are read from small temporary
    # tables instead of written into the SQL, so every write runs the same statement texts and
    # SQLite reuses their compiled programs (compiling them cost more than running them).
    bound: bool = False
    _slots: dict[str, int] = field(default_factory=dict)
    _unwritten: list[tuple[int, str]] = field(default_factory=list)
    # The incremental scratch tables that already existed on this connection.
    scratch: set[str] = field(default_factory=set)
    # Incremental evaluation: each rule's statement, written before any runs, and (PostgreSQL,
    # read in one batch) the keys each found.
    keys_sql: dict[str, str] = field(default_factory=dict)
    found: dict[str, set[str]] = field(default_factory=dict)
    # Incremental evaluation after a write of activities alone (the deals' own fields did not
    # change): only the rules that read activities can change their verdict.
    activities_only: bool = False
    # ... and those activities were all added by capture: only the rules that captured e-mail
    # and meetings can move (`Rule.reads_captured`).
    captured_only: bool = False
    # Full evaluation: the activity clocks come from this cache (`hygiene.clocks`), refreshed
    # for the moment, instead of from every activity.
    clock_table: str | None = None
    # ... as of when they had been refreshed before (None: rebuilt), the deals rewritten since in
    # `clocks.CHANGED`; and whether the kept state was rebuilt whole instead.
    refreshed_since: dt.datetime | None = None
    kept_rebuilt: bool = False
    # A night that follows the last one: the rules that can look at fewer deals do (`Narrowing`).
    narrowing: Narrowing | None = None

    @property
    def day(self) -> dt.date:
        return timezone.localtime(self.as_of).date()

    @property
    def full(self) -> bool:
        return self.opportunity_ids is None and self.activity_ids is None

    # SQL literals for values the engine itself computes (never user input).
    def ts(self, value: dt.datetime) -> str:
        if self.vendor == "sqlite":
            return self._bind(str(connection.ops.adapt_datetimefield_value(value)))
        if self.bound:
            return f"CAST({self._bind(value.astimezone(dt.UTC).isoformat())} AS TIMESTAMPTZ)"
        return f"CAST('{value.astimezone(dt.UTC).isoformat()}' AS TIMESTAMPTZ)"

    def date(self, value: dt.date) -> str:
        if self.vendor == "sqlite":
            return self._bind(value.isoformat())
        if self.bound:
            return f"CAST({self._bind(value.isoformat())} AS DATE)"
        return f"CAST('{value.isoformat()}' AS DATE)"

    def _bind(self, text: str) -> str:
        """The text as a literal or, in bound mode, a read of its slot (numbered in order of first
        use, so the same policy gives the same SQL on every write; `cursor` stores the value)."""
        if not self.bound:
            return f"'{text}'"
        slot = self._slots.get(text)
        if slot is None:
            slot = self._slots[text] = len(self._slots)
            self._unwritten.append((slot, text))
        return f"(SELECT v FROM {BIND_TABLE} WHERE k = {slot})"

    def days_ago(self, days: float) -> str:
        return self.ts(self.as_of - dt.timedelta(days=days))

    def cast(self, expression: str, kind: str) -> str:
        if kind == "int":
            return (
                f"CAST({expression} AS INTEGER)"
                if self.vendor == "sqlite"
                else f"CAST({expression} AS BIGINT)"
            )
        if kind == "num":
            return f"CAST({expression} AS NUMERIC)"
        if kind == "date":
            return expression if self.vendor == "sqlite" else f"CAST({expression} AS DATE)"
        return expression

    def greatest(self, *expressions: str) -> str:
        return ("MAX(" if self.vendor == "sqlite" else "GREATEST(") + ", ".join(expressions) + ")"

    def least(self, *expressions: str) -> str:
        return ("MIN(" if self.vendor == "sqlite" else "LEAST(") + ", ".join(expressions) + ")"

    def ids(self, column: str, kind: str = "opportunity") -> str:
        """`AND column IN (...)` when evaluating a few records, nothing for a full evaluation."""
        ids = self.opportunity_ids if kind == "opportunity" else self.activity_ids
        if ids is None:
            return ""
        if self.bound:
            return f" AND {column} IN (SELECT id FROM {IDS_TABLE} WHERE kind = '{kind[0]}')"
        return f" AND {column} IN ({', '.join(str(int(i)) for i in ids) or 'NULL'})"

    @property
    def fence(self) -> str:
        """Ends a subquery the planner must not flatten into the query around it."""
        return " LIMIT -1 OFFSET 0" if self.vendor == "sqlite" else " OFFSET 0"

    def sql(self, text: str) -> str:
        return text.replace("{state}", self.state)

    # --- Building findings in SQL: literals, JSON, text of timestamps and dates. ---
    # SQL text built with these never goes through parameter substitution, so a `%`
    # (strftime, printf) in it is a plain character.

    def literal(self, value: Any) -> str:
        """A constant the engine or the policy supplies, as an SQL literal."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float | Decimal):
            return repr(value) if isinstance(value, float) else str(value)
        if isinstance(value, dt.datetime):
            return self.ts(value)
        if isinstance(value, dt.date):
            return self.date(value)
        text = "'" + str(value).replace("'", "''") + "'"
        return text if self.vendor == "sqlite" else f"CAST({text} AS TEXT)"

    def json_object(self, pairs: dict[str, str]) -> str:
        """A JSON object from SQL expressions (json_object on SQLite, json_build_object on PostgreSQL)."""
        function = "json_object" if self.vendor == "sqlite" else "json_build_object"
        arguments = ", ".join(f"'{name}', {value}" for name, value in pairs.items())
        return f"{function}({arguments})"

    def json_text(self, expression: str) -> str:
        """SQL text holding a JSON document, as a JSON value (nested, not quoted as a string)."""
        return f"json({expression})" if self.vendor == "sqlite" else f"CAST({expression} AS JSON)"

    def json_value(self, value: Any) -> str:
        """A Python constant (a policy parameter, a list, a mapping) as a JSON value."""
        if value is None or (isinstance(value, int | float | str) and not isinstance(value, bool)):
            return self.literal(value)
        return self.json_text(self.literal(json.dumps(value)))

    def json_bool(self, condition: str) -> str:
        if self.vendor == "sqlite":
            return f"CASE WHEN {condition} THEN json('true') ELSE json('false') END"
        return f"({condition})"

    def text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def float8(self, expression: str) -> str:
        """As a binary float, like Python's float() of a value read back."""
        return f"CAST({expression} AS REAL)" if self.vendor == "sqlite" else f"CAST({expression} AS FLOAT8)"

    def iso_timestamp(self, expression: str) -> str:
        """`datetime.isoformat()` of a stored timestamp read back in UTC (microseconds only when set)."""
        if self.vendor == "sqlite":
            # Django stores aware datetimes as naive UTC text: 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
            return f"(REPLACE({expression}, ' ', 'T') || '+00:00')"
        utc = f"({expression} AT TIME ZONE 'UTC')"
        return (
            f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {utc}) = {utc}"
            f" THEN '' ELSE to_char({utc}, '.US') END || '+00:00')"
        )

    def iso_date(self, expression: str) -> str:
        if self.vendor == "sqlite":
            return f"SUBSTR({expression}, 1, 10)"
        return f"to_char({expression}, 'YYYY-MM-DD')"

    def days_since(self, expression: str) -> str:
        """Whole days from a timestamp to the moment, `(as_of - value).days` (to the microsecond)."""
        if self.vendor == "sqlite":
            micro = int((self.as_of - EPOCH) // dt.timedelta(microseconds=1))
            value = (
                f"(CAST(strftime('%s', SUBSTR({expression}, 1, 19)) AS INTEGER) * 1000000"
                f" + CASE WHEN LENGTH({expression}) > 20 THEN CAST(SUBSTR({expression}, 21, 6) AS INTEGER)"
                f" ELSE 0 END)"
            )
            gap = f"({micro} - {value})"
            return (
                f"CASE WHEN {gap} >= 0 THEN {gap} / {DAY_US} ELSE -((-{gap} + {DAY_US - 1}) / {DAY_US}) END"
            )
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM ({self.ts(self.as_of)} - {expression})) / 86400) AS BIGINT)"

    def floor_int(self, expression: str) -> str:
        """The integer part of a non-negative number."""
        if self.vendor == "sqlite":
            return f"CAST({expression} AS INTEGER)"
        return f"CAST(FLOOR({expression}) AS BIGINT)"

    def cursor(self) -> Any:
        return _BindingCursor(self) if self.bound else connection.cursor()

    def execute_repeated(self, cursor: Any, sql: str) -> None:
        """Run a statement every write repeats word for word (bound mode). PostgreSQL plans
        each statement it receives, and planning the rules cost more than running them: there
        it is prepared once per connection and executed by name."""
        if not (self.bound and self.vendor == "postgresql"):
            cursor.execute(sql)
            return
        self.write_bindings(cursor)
        cursor.execute(f"EXECUTE {_prepared(cursor, sql)}")

    def write_bindings(self, cursor: Any) -> None:
        """Store the slots named since the last statement (before it runs)."""
        if self._unwritten:
            # Slots are new within an evaluation (the table is emptied as it starts).
            rows = ", ".join(["(%s, %s)"] * len(self._unwritten))
            cursor.execute(
                f"INSERT INTO {BIND_TABLE} (k, v) VALUES {rows}", [x for row in self._unwritten for x in row]
            )
            self._unwritten.clear()

    @cached_property
    def open_stages(self) -> list[Stage]:
        """The open stages, read once per evaluation (rules build per-stage thresholds from them)."""
        return list(Stage.objects.filter(kind=StageKind.OPEN).order_by("order"))


# The statements prepared on each PostgreSQL connection (prepared statements outlive
# transactions, rolled back or not, and go with the connection).
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
MAX_PREPARED = 200  # per connection; a policy change leaves the old texts behind
# Above this many bound records, PostgreSQL's scratch tables are analysed once filled (see _batch).
ANALYZE_SCRATCH_AFTER = 100


def _statement_name(sql: str) -> str:
    return "hy_" + hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:20]


def _prepared(cursor: Any, sql: str) -> str:
    """The name of `sql` prepared on the cursor's connection, preparing it the first time."""
    raw = connection.connection
    names = _PREPARED.setdefault(raw, set())
    name = _statement_name(sql)
    if name not in names:
        if len(names) >= MAX_PREPARED:
            cursor.execute("DEALLOCATE ALL")
            names.clear()
        cursor.execute(f"PREPARE {name} AS {sql}")
        names.add(name)
    return name


class _BindingCursor:
    """A cursor that writes the context's new bindings before each statement it runs."""

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.cursor = connection.cursor()

    def execute(self, sql: str, params: Any = None) -> Any:
        self.ctx.write_bindings(self.cursor)
        return self.cursor.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)

    def __enter__(self) -> _BindingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cursor.close()


def _history_after(ctx: EvalContext) -> bool:
    """Whether any opportunity changed after the moment (if not, current values are the as-of values)."""
    with ctx.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM pipeline_opportunitychange WHERE changed_at > {ctx.ts(ctx.as_of)}"
            f"{ctx.ids('opportunity_id')} LIMIT 1"
        )
        return cursor.fetchone() is not None


def _snoozes_after(ctx: EvalContext) -> bool:
    """Whether a snooze was taken or cancelled after the moment (the kept state holds the current ones)."""
    at = ctx.ts(ctx.as_of)
    with ctx.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM hygiene_snooze WHERE created_at > {at} OR cancelled_at > {at} LIMIT 1")
        return cursor.fetchone() is not None


def state_sql(ctx: EvalContext, *, kept: str | None = None) -> str:
    """One SELECT giving every deal's as-of fields and clocks (see the module docstring).

    `kept`: the rows of the kept state (`keep_state`), for the deals in that table of ids (every
    deal if empty): current fields, clocks from their cache, and every deal whenever created or
    deleted (the view over the kept state filters those by the moment)."""
    at = ctx.ts(ctx.as_of)
    only = f" AND {{column}} IN (SELECT id FROM {kept})" if kept else ""
    alive = f"o.created_at <= {at} AND (o.deleted_at IS NULL OR o.deleted_at > {at})"
    if kept is not None:
        alive = "TRUE" + only.format(column="o.id")
    columns = {
        "owner": "o.owner_id",
        "stage": "o.stage_id",
        "amount": "o.amount",
        "close_date": "o.close_date",
        "next_step": "o.next_step",
        "next_step_date": "o.next_step_date",
    }
    later_join = ""
    # A few deals (a write's): always read the later history (an index range that is empty when
    # the moment is now), so the statement's text does not depend on the data.
    if kept is None and (not ctx.full or _history_after(ctx)):
        # The earliest change after the moment holds, as its old value, the value at the moment.
        pivots = ", ".join(
            f"MAX(CASE WHEN field = '{name}' THEN 1 END) AS {name}_c, "
            f"MAX(CASE WHEN field = '{name}' THEN old_value END) AS {name}_v"
            for name in HISTORY_FIELDS
        )
        fields = ", ".join(f"'{name}'" for name in HISTORY_FIELDS)
        later_join = f"""
            LEFT JOIN (
                SELECT opportunity_id, {pivots} FROM (
                    SELECT opportunity_id, field, old_value, ROW_NUMBER() OVER (
                        PARTITION BY opportunity_id, field ORDER BY changed_at, id) AS rn
                    FROM pipeline_opportunitychange
                    WHERE changed_at > {at} AND field IN ({fields}){ctx.ids("opportunity_id")}
                ) first_later WHERE rn = 1 GROUP BY opportunity_id
            ) p ON p.opportunity_id = o.id"""
        for name, kind in HISTORY_FIELDS.items():
            value = ctx.cast(f"p.{name}_v", kind)
            if kind == "text":
                value = f"COALESCE(p.{name}_v, '')"
            columns[name] = f"CASE WHEN p.{name}_c = 1 THEN {value} ELSE {columns[name]} END"
    base = f"""
        SELECT o.id, {columns["owner"]} AS owner_id, {columns["stage"]} AS stage_id,
               {columns["amount"]} AS amount, o.currency, {columns["close_date"]} AS close_date,
               {columns["next_step"]} AS next_step, {columns["next_step_date"]} AS next_step_date,
               o.created_at, o.closed_at, o.name, o.deleted_at
        FROM pipeline_opportunity o{later_join}
        WHERE {alive}{ctx.ids("o.id")}"""
    # The clocks: from their cache (a full evaluation, `hygiene.clocks`), which keeps the history's
    # with the activities'; else read from the activities (`a`) and the history (`h`).
    if kept is not None:
        activity_clocks, history, history_join = clocks.CLOCK_TABLE, "a", ""
    elif ctx.clock_table:
        activity_clocks, history = ctx.clock_table, "a"
        history_join = ""
    else:
        activity_clocks = f"({clocks.clocks_sql(ctx, ctx.ids('opportunity_id'), pending=False)})"
        history = "h"
        changes = clocks.change_clocks_sql(ctx, ctx.ids("opportunity_id"))
        history_join = f"LEFT JOIN ({changes}) h ON h.opportunity_id = b.id"
    # SQLite: the stage by its key for each deal read in table order. Left to itself, with the
    # statistics of a large organisation it read the deals stage by stage through their stage
    # index (a pass over the table per stage: 3x slower); the unary plus rules that index out.
    stage_of = "+b.stage_id" if ctx.vendor == "sqlite" else "b.stage_id"
    # The last day of the deal's snooze, however long ago it ended (the stale rules ask whether it
    # has ended by the day). A kept state keeps the current snoozes (a snooze taken or cancelled
    # marks its deal dirty; a night as of a moment before one is taken or cancelled does not use it).
    snoozed = f"created_at <= {at} AND (cancelled_at IS NULL OR cancelled_at > {at})"
    if kept is not None:
        snoozed = "cancelled_at IS NULL" + only.format(column="opportunity_id")
    last_update = ctx.greatest(
        "b.created_at",
        f"COALESCE({history}.last_change_at, b.created_at)",
        "COALESCE(a.last_logged_at, b.created_at)",
    )
    return f"""
        SELECT b.id, b.owner_id, b.stage_id, st.kind AS stage_kind, st."order" AS stage_order,
               st.name AS stage_name, b.amount, b.currency, b.close_date, b.next_step, b.next_step_date,
               b.created_at, b.closed_at, b.name, b.deleted_at,
               COALESCE(a.last_touch_at, b.created_at) AS touch_clock, a.last_touch_at,
               {last_update} AS update_clock,
               COALESCE({history}.last_progress_at, b.created_at) AS progress_clock,
               COALESCE(a.activity_count, 0) AS activity_count,
               z.snoozed_until
        FROM ({base}) b
        JOIN pipeline_stage st ON st.id = {stage_of}
        {history_join}
        LEFT JOIN {activity_clocks} a ON a.opportunity_id = b.id
        LEFT JOIN (
            SELECT opportunity_id, MAX(until) AS snoozed_until
            FROM hygiene_snooze
            WHERE {snoozed}{ctx.ids("opportunity_id")}
            GROUP BY opportunity_id
        ) z ON z.opportunity_id = b.id"""


def _create_state_table(ctx: EvalContext, cursor: Any, table: str, sql: str, *, temporary: bool) -> None:
    """A table of the state's rows, keyed by the deal's id."""
    what = "TEMPORARY TABLE" if temporary else "TABLE"
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    if ctx.vendor == "sqlite":
        # Keyed by the deal's id as its rowid: the rows go in in that order, appended, and
        # the rules join on them with no index to build (a separate one cost a fifth more).
        # The other columns keep the types a CREATE TABLE AS gives them.
        cursor.execute(f"CREATE TEMPORARY TABLE hy_shape AS SELECT * FROM ({sql}) LIMIT 0")
        cursor.execute("PRAGMA temp.table_info(hy_shape)")
        columns = [
            "id INTEGER PRIMARY KEY" if name == "id" else f'"{name}" {kind}'
            for _, name, kind, *_ in cursor.fetchall()
        ]
        cursor.execute("DROP TABLE hy_shape")
        cursor.execute(f"CREATE {what} {table} ({', '.join(columns)})")
        cursor.execute(f"INSERT INTO {table} {sql}")
    else:
        cursor.execute(f"CREATE {what} {table} AS {sql}")
        cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        if not temporary:
            # Scanned serially, as a temporary table is: in a parallel plan each worker built the
            # whole of the other side (a history rule's grouped changes), 1.3 s against 1.9 s.
            cursor.execute(f"ALTER TABLE {table} SET (parallel_workers = 0)")
        cursor.execute(f"ANALYZE {table}")


def _stages_fingerprint(cursor: Any) -> str:
    """What the state copies from the stages (kind, order, name), the fields they require and
    whether they are active (a narrowed night trusts last night's missing fields and skipped
    stages), hashed: a change rebuilds it."""
    cursor.execute(
        'SELECT id, kind, "order", name, required_fields, is_active FROM pipeline_stage ORDER BY id'
    )
    return hashlib.sha256(repr(cursor.fetchall()).encode()).hexdigest()


def keep_state(ctx: EvalContext) -> clocks.KeepState:
    """The kept state: every deal's row of the state, kept between nights in `KEPT_STATE` like
    their clocks (`hygiene.clocks`), so a night rewrites the rows of the deals written since
    instead of building a million.

    Its rows hold the deals' current fields, their clocks as of the clocks' moment and the last
    day of their snoozes, for every deal however created or deleted; a view
    (`materialised_state`) shows the rules the deals alive at the evaluated moment. A row moves
    only when its deal is marked dirty (a write of its fields, history, activities or snoozes,
    by the triggers) or its clocks move by themselves: the refresh rewrites those deals' clocks
    and, here in the same transaction, their rows. A change to the stages rebuilds it whole."""

    def keep(cursor: Any, kept_stages: str) -> str:
        stages = _stages_fingerprint(cursor)
        ctx.kept_rebuilt = kept_stages != stages or KEPT_STATE not in connection.introspection.table_names(
            cursor
        )
        if ctx.kept_rebuilt:
            _create_state_table(ctx, cursor, KEPT_STATE, state_sql(ctx, kept=""), temporary=False)
            return stages
        # Rewritten in place (each row's page written once, where a delete and an insert wrote it
        # twice); the rows of deals deleted outright are deleted.
        cursor.execute(
            f"DELETE FROM {KEPT_STATE} WHERE id IN (SELECT c.id FROM {clocks.CHANGED} c"
            " WHERE NOT EXISTS (SELECT 1 FROM pipeline_opportunity o WHERE o.id = c.id))"
        )
        columns = connection.introspection.get_table_description(cursor, KEPT_STATE)
        updates = ", ".join(f'"{c.name}" = excluded."{c.name}"' for c in columns if c.name != "id")
        # The WHERE clause keeps SQLite from reading the ON CONFLICT as a join constraint.
        cursor.execute(
            f"INSERT INTO {KEPT_STATE} SELECT * FROM ({state_sql(ctx, kept=clocks.CHANGED)}) r WHERE TRUE"
            f" ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        return stages

    return keep


@contextmanager
def materialised_state(ctx: EvalContext, *, cached_clocks: bool = False) -> Iterator[None]:
    """Full evaluation: compute the state once into a temporary table the rules share (with the
    activity clocks from their cache, brought to the moment, when `cached_clocks`). With the
    cache, the state is the kept one (`keep_state`) seen through a view, unless the history or the
    snoozes hold changes after the moment (then the deals' current fields are not theirs at the
    moment)."""
    kept = False
    if cached_clocks and clocks.refresh(ctx, keep_state(ctx)):
        ctx.clock_table = clocks.CLOCK_TABLE
        kept = not _history_after(ctx) and not _snoozes_after(ctx)
    with ctx.cursor() as cursor:
        if kept:
            at = ctx.ts(ctx.as_of)
            cursor.execute(f"DROP VIEW IF EXISTS {KEPT_VIEW}")
            cursor.execute(
                f"CREATE TEMPORARY VIEW {KEPT_VIEW} AS SELECT * FROM {KEPT_STATE}"
                f" WHERE created_at <= {at} AND (deleted_at IS NULL OR deleted_at > {at})"
            )
            ctx.state = KEPT_VIEW
        else:
            _create_state_table(ctx, cursor, STATE_TABLE, state_sql(ctx), temporary=True)
            ctx.state = STATE_TABLE
    try:
        yield
    finally:
        ctx.narrowing = None
        with ctx.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {CHANGED_LIVE}")
            drop = f"DROP VIEW IF EXISTS {KEPT_VIEW}" if kept else f"DROP TABLE IF EXISTS {STATE_TABLE}"
            cursor.execute(drop)
            cursor.execute(f"DROP TABLE IF EXISTS {clocks.CHANGED}")


@dataclass
class Outcome:
    opened: int = 0
    resolved: int = 0
    expired: int = 0
    by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, rule: str, opened: int, closed: int, event: bool) -> None:
        self.opened += opened
        if event:
            self.expired += closed
        else:
            self.resolved += closed
        self.by_rule[rule] = (opened, closed)


@dataclass
class Resolution:
    """Who and what fixed the data, when an evaluation follows a write."""

    actor_id: int | None = None
    via: str = ""
    note: str = ""


def _in_scope(ctx: EvalContext, rule: Rule) -> bool:
    if ctx.full:
        return True
    if ctx.activities_only and not rule.reads_activities:
        return False
    if ctx.captured_only and not (
        rule.reads_activities if rule.reads_captured is None else rule.reads_captured
    ):
        return False
    if rule.subject == "opportunity":
        return rule.incremental and ctx.opportunity_ids is not None
    if rule.subject == "activity":
        return rule.incremental and ctx.activity_ids is not None
    return False  # rep-day rules only run in full evaluations


def _live(ctx: EvalContext, rule: Rule) -> dict[str, int]:
    """The live violations of a rule within the evaluation's scope, {key: id} (raw SQL: a hot path)."""
    if ctx.full:
        with ctx.cursor() as cursor:
            cursor.execute("SELECT key, id FROM hygiene_violation WHERE live AND rule = %s", [rule.key])
            return dict(cursor.fetchall())
    if ctx.live_in_scope is None:
        with ctx.cursor() as cursor:
            ctx.execute_repeated(cursor, _live_sql(ctx))
            _keep_live(ctx, cursor.fetchall())
    assert ctx.live_in_scope is not None
    return ctx.live_in_scope.get(rule.key, {})


def _live_sql(ctx: EvalContext) -> str:
    # One SELECT per kind of record, each read through its own index, joined by UNION: written as
    # one WHERE with an OR (an activity write binds deals and activities), SQLite scanned every
    # violation of the organisation (a second per logged activity at 3 million violations).
    # A write of activities alone runs a few rules: only their deals' violations are read (found
    # in `violation_live_deal_idx` alone, without reading the other rules' rows). Not in the
    # activities' branch: there SQLite took the rules for the better index and read every live
    # violation of those rules (a quarter of a second per logged call at 2.5 million).
    rules = ""
    if ctx.activities_only or ctx.captured_only:
        keys = sorted(rule.key for rule in ctx.policy.rules if _in_scope(ctx, rule))
        rules = f" AND rule IN ({', '.join(ctx.literal(key) for key in keys) or 'NULL'})"
    parts = []
    if ctx.opportunity_ids is not None and ctx.bound and ctx.vendor == "postgresql":
        # Deal by deal from the index (the fence keeps the nested loop): for a capture batch's
        # 8,000 deals, PostgreSQL had hashed them and read the rules' every live violation instead
        # (a million index entries, a fifth of a second per batch).
        parts.append(
            f"SELECT v.rule, v.key, v.id FROM {IDS_TABLE} i CROSS JOIN LATERAL ("
            f"SELECT rule, key, id FROM hygiene_violation WHERE live AND opportunity_id = i.id{rules}"
            f"{ctx.fence}) v WHERE i.kind = 'o'"
        )
    elif ctx.opportunity_ids is not None:
        parts.append(
            "SELECT rule, key, id FROM hygiene_violation"
            f" WHERE live AND opportunity_id IS NOT NULL{ctx.ids('opportunity_id')}{rules}"
        )
    if ctx.activity_ids is not None:
        parts.append(
            "SELECT rule, key, id FROM hygiene_violation"
            f" WHERE live AND activity_id IS NOT NULL{ctx.ids('activity_id', 'activity')}"
        )
    return " UNION ".join(parts)


def _keep_live(ctx: EvalContext, rows: list[tuple[str, str, int]]) -> None:
    ctx.live_in_scope = {}
    for rule_key, key, pk in rows:
        ctx.live_in_scope.setdefault(rule_key, {})[key] = pk


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def reconcile(ctx: EvalContext, rule: Rule, resolution: Resolution | None = None) -> tuple[int, int]:
    """Incremental evaluation of one rule over a few records: open the new failures and close
    the live violations that no longer fail. Returns (opened, closed).

    Only the rule's facts run on every write (a small query); the presentation runs only when
    something new opened.
    """
    found = rule.keys(ctx)
    live = _live(ctx, rule)
    fresh = sorted(key for key in found if key not in live)
    now = timezone.now()
    new = [
        Violation(
            rule=rule.key,
            key=finding.key,
            rep_id=finding.rep_id,
            opportunity_id=finding.opportunity_id,
            activity_id=finding.activity_id,
            day=finding.day,
            severity=rule.severity,
            amount=finding.amount,
            summary=finding.summary[:255],
            evidence=finding.evidence,
            opened_at=ctx.as_of,
            found_at=now,
            policy_version=ctx.policy.version,
        )
        for finding in (rule.find(ctx, fresh) if fresh else ())
    ]
    cleared = [pk for key, pk in live.items() if key not in found]
    if not new and not cleared:
        return 0, 0
    with transaction.atomic():
        # ignore_conflicts: a write's own evaluation may have opened the same key meanwhile.
        Violation.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
        _close(ctx, rule, resolution, cleared)
    return len(new), len(cleared)


def _closing(ctx: EvalContext, rule: Rule, resolution: Resolution | None) -> tuple[str, list[Any]]:
    """The SET clause (and its parameters) that closes live violations that no longer fail: no
    longer live, and the open ones resolved (state rules) or expired (event rules); a waived one
    keeps its waiver. One definition for a write's evaluation and the night's.

    One statement rewrites each row and its index entries once (two did it twice: capture resolves
    thousands per batch). `resolved_by` is set only when someone resolved it: an open violation's
    is empty, and naming the column would rewrite its index entry all the same. Plain SQL: a write
    that fixes a deal runs it, and the ORM took longer to write it than the database to run it.
    (In an UPDATE every CASE reads the row as it was: `status` below is the old status.)
    """
    at = connection.ops.adapt_datetimefield_value(ctx.as_of)
    status = (ViolationStatus.EXPIRED if rule.event else ViolationStatus.RESOLVED).value
    changes: list[tuple[str, Any]] = [
        ("status", status),
        ("closed_at", at),
        ("resolved_via", resolution.via if resolution else "evaluation"),
    ]
    if resolution is not None:
        changes.append(("resolution", resolution.note[:255]))
        if resolution.actor_id is not None:
            changes.append(("resolved_by_id", resolution.actor_id))
    clause = ", ".join(
        f"{column} = CASE WHEN status = 'open' THEN %s ELSE {column} END" for column, _ in changes
    )
    return f"{clause}, live = %s, cleared_at = %s", [*(value for _, value in changes), False, at]


def _close(ctx: EvalContext, rule: Rule, resolution: Resolution | None, ids: list[int]) -> None:
    """Close these live violations (a write's evaluation: the few that no longer fail)."""
    changes, params = _closing(ctx, rule, resolution)
    with connection.cursor() as cursor:
        for chunk in _chunks(ids):
            ids_sql = ", ".join(str(int(pk)) for pk in chunk)
            cursor.execute(f"UPDATE hygiene_violation SET {changes} WHERE id IN ({ids_sql})", params)


FOUND_TABLE = "hy_found"
# Violation columns an evaluation fills; any other column gets its model default.
_FILLED = {
    "id",
    "rule",
    "key",
    "rep",
    "opportunity",
    "activity",
    "day",
    "severity",
    "amount",
    "summary",
    "evidence",
    "status",
    "live",
    "opened_at",
    "found_at",
}


def _insert_new_sql(ctx: EvalContext, rule: Rule, source: str) -> str:
    """INSERT ... SELECT of the failures in `source` (a relation of the rule's facts) that have no
    live violation yet, with their summary and evidence built by the rule's presentation."""
    columns = rule.presentation(ctx)
    names = ["rule", "key", "severity", "status", "live", "opened_at", "found_at", "policy_version"]
    values = [
        ctx.literal(rule.key),
        "f.key",
        str(int(rule.severity)),
        ctx.literal(ViolationStatus.OPEN.value),
        "TRUE",
        ctx.ts(ctx.as_of),
        ctx.ts(timezone.now()),
        str(int(ctx.policy.version)),
    ]
    for name in ("rep_id", "opportunity_id", "activity_id", "day", "amount"):
        names.append(name)
        values.append(columns.get(name, "NULL"))
    names += ["summary", "evidence"]
    values.append(f"SUBSTR({columns['summary']}, 1, 255)")
    evidence = columns["evidence"]
    values.append(evidence if ctx.vendor == "sqlite" else f"CAST({evidence} AS JSONB)")
    for model_field in Violation._meta.concrete_fields:
        if model_field.name in _FILLED or model_field.column in names:
            continue
        default = model_field.get_default()
        names.append(str(model_field.column))
        values.append(ctx.literal(json.dumps(default) if isinstance(default, dict | list) else default))
    # Keys start with the rule's key, and a live key is unique whatever the rule. PostgreSQL
    # hashes that rule's live violations instead of probing the whole table; SQLite probes the
    # live keys' index alone (checking the rule too read each probed row: 2.3 -> 0.7 s for the
    # 550,000 stale deals of a night).
    rule_match = "" if ctx.vendor == "sqlite" else f" AND v.rule = {ctx.literal(rule.key)}"
    new = f"""(SELECT * FROM {source} n WHERE NOT EXISTS (
                 SELECT 1 FROM hygiene_violation v WHERE v.live AND v.key = n.key{rule_match}))"""
    # The WHERE clause keeps SQLite from reading a following ON CONFLICT as a join constraint.
    return f"""
        INSERT INTO hygiene_violation ({", ".join(names)})
        SELECT {", ".join(values)}
        FROM ({rule.derived_sql(ctx, new)}) f WHERE TRUE"""


@dataclass
class Inserted:
    """What a night's insert of one rule's failures did and, on SQLite, what it saw: the rule's live
    violations and the distinct keys found, counted just before it (`reconcile_in_sql`)."""

    opened: int
    # Whether every failure not inserted was live already (False after a conflict).
    exact: bool
    live: int | None = None
    found: int | None = None

    @property
    def nothing_to_close(self) -> bool:
        """Every live violation was found again: the keys found that were live already (those
        found less those inserted) are as many as the live ones."""
        if self.live is None or self.found is None:
            return False
        return self.exact and self.found - self.opened == self.live


def _insert_new(ctx: EvalContext, rule: Rule, source: str, *, count: bool = True) -> Inserted:
    """Insert the new failures. On SQLite, count first the rule's live violations and the keys
    found: when they show that every live one was found again, the night need not look for each
    among those found. Its writers queue (IMMEDIATE transactions), so the counts and the insert
    see the same violations. Not on PostgreSQL: a write committing in between would make them
    disagree, and counting the distinct keys there costs about what the look-up it saves does.

    A plain INSERT first: a key a concurrent write's own evaluation opened meanwhile (or a key found
    twice) makes it fail, and then it runs again skipping such keys (ON CONFLICT DO NOTHING costs a
    speculative insertion per row, kept for the race)."""
    sql = _insert_new_sql(ctx, rule, source)
    try:
        with transaction.atomic(), ctx.cursor() as cursor:
            live = found = None
            if ctx.vendor == "sqlite" and count:
                cursor.execute("SELECT COUNT(*) FROM hygiene_violation WHERE live AND rule = %s", [rule.key])
                (live,) = cursor.fetchone()
                cursor.execute(f"SELECT COUNT(DISTINCT key) FROM {source}")  # from its key's index
                (found,) = cursor.fetchone()
            cursor.execute(sql)
            return Inserted(max(cursor.rowcount, 0), cursor.rowcount >= 0, live, found)
    except IntegrityError:
        with transaction.atomic(), ctx.cursor() as cursor:
            cursor.execute(f"{sql} ON CONFLICT DO NOTHING")
            return Inserted(max(cursor.rowcount, 0), False)


def reconcile_in_sql(ctx: EvalContext, rule: Rule) -> tuple[int, int]:
    """Full evaluation of one rule, in SQL: its facts go to a temporary table keyed like the
    violations; the new keys are inserted with their summary and evidence (one INSERT ... SELECT);
    live violations whose key was not found are resolved (state rules) or expire (event rules).
    A violation opened after the moment (a live write's, before a back-fill of earlier days)
    is not this evaluation's to judge: it would close before it opened."""
    narrowing = ctx.narrowing
    narrowed = narrowing and rule.facts_since(ctx, narrowing.earlier, narrowing.changed)
    slid = narrowed and narrowing and rule.slid_since(ctx, narrowing.earlier)
    if slid:
        with ctx.cursor() as cursor:  # most nights a period slides past a few deals' changes; some, none
            cursor.execute(f"SELECT 1 FROM ({slid}) s LIMIT 1")
            if cursor.fetchone() is None:
                slid = None
    with rule.prepared(ctx), ctx.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FOUND_TABLE}")
        facts = ctx.sql(narrowed or rule.facts(ctx))
        cursor.execute(f"CREATE TEMPORARY TABLE {FOUND_TABLE} AS SELECT * FROM ({facts}) f")
        if ctx.vendor == "sqlite":
            # SQLite answers the NOT EXISTS below by index lookups.
            cursor.execute(f"CREATE INDEX {FOUND_TABLE}_key ON {FOUND_TABLE} (key)")
        else:
            # PostgreSQL hashes the table. Unanalysed, it was planned at a tenth of its size, and
            # the look-up of what to close sorted both sides on disk to merge them, or hashed
            # them in too many batches: 2.0-2.3 s for the stale-touch rule's 580,000 live
            # violations, 1.3-1.5 s analysed. The key alone: what the joins read, and half the
            # cost of analysing every column.
            cursor.execute(f"ANALYZE {FOUND_TABLE} (key)")
    with transaction.atomic(), ctx.cursor() as cursor:
        inserted = _insert_new(ctx, rule, FOUND_TABLE, count=not narrowed)
        if inserted.nothing_to_close or (narrowed and narrowing and narrowing.nothing_changed and not slid):
            cursor.execute(f"DROP TABLE IF EXISTS {FOUND_TABLE}")
            return inserted.opened, 0
        changes, params = _closing(ctx, rule, None)
        candidates = "v.live AND v.rule = %s"
        if narrowed and narrowing:
            # Only a rewritten deal's violations can close, and those of the deals whose changes
            # left the rule's period since (read by deal: one list of ids, no OR for the planners).
            also = ""
            if slid:
                also = f"""UNION ALL SELECT k.id FROM hygiene_violation k
                           WHERE k.opportunity_id IN ({slid}) AND k.rule = %s AND k.live"""
            candidates = f"""v.id IN (SELECT k.id FROM {narrowing.live} k WHERE k.rule = %s
                                      AND NOT EXISTS (SELECT 1 FROM {FOUND_TABLE} f WHERE f.key = k.key)
                                      {also})
                             AND {candidates}"""
            params += [rule.key, rule.key] if slid else [rule.key]
        elif ctx.vendor == "sqlite":
            # The rule's live keys read from their index alone (a rule's keys are its key and a
            # colon, then the record: in binary order, from "rule:" up to "rule;"), and only the
            # rows to close read from the table: checking the rule and the opening on every live
            # one read half a million rows for a rule's thirty thousand closings.
            candidates = f"""v.id IN (SELECT k.id FROM hygiene_violation k WHERE k.live AND k.key >= %s
                                        AND k.key < %s AND NOT EXISTS (
                                            SELECT 1 FROM {FOUND_TABLE} f WHERE f.key = k.key))
                             AND {candidates}"""
            params += [f"{rule.key}:", f"{rule.key};"]
        cursor.execute(
            f"""UPDATE hygiene_violation AS v SET {changes}
                WHERE {candidates} AND v.opened_at <= {ctx.ts(ctx.as_of)}
                  AND NOT EXISTS (SELECT 1 FROM {FOUND_TABLE} f WHERE f.key = v.key)""",
            [*params, rule.key],
        )
        closed = cursor.rowcount
        cursor.execute(f"DROP TABLE IF EXISTS {FOUND_TABLE}")
    return inserted.opened, closed


def run_rules(
    ctx: EvalContext,
    resolution: Resolution | None = None,
    progress: Callable[[str], None] | None = None,
    committed: Callable[[], None] | None = None,
) -> Outcome:
    """Reconcile every rule in scope; `committed` is called after each rule's transaction."""
    outcome = Outcome()
    for rule in ctx.policy.rules:
        if not _in_scope(ctx, rule):
            continue
        if progress:
            progress(rule.key)
        if ctx.full:
            opened, closed = reconcile_in_sql(ctx, rule)
        else:
            opened, closed = reconcile(ctx, rule, resolution)
        if committed:
            committed()
        outcome.add(rule.key, opened, closed, rule.event)
    if ctx.full:
        _close_disabled_rules(ctx, outcome)
    return outcome


def _close_disabled_rules(ctx: EvalContext, outcome: Outcome) -> None:
    """A rule switched off in the policy stops counting: its live violations expire."""
    disabled = _rules_with_live_violations(ctx) - {rule.key for rule in ctx.policy.rules}
    if not disabled:
        return
    stale = Violation.objects.filter(live=True, rule__in=disabled)
    closed = stale.filter(status=ViolationStatus.OPEN).update(
        status=ViolationStatus.EXPIRED,
        closed_at=ctx.as_of,
        resolved_via="policy",
        resolution=f"Rule switched off in policy v{ctx.policy.version}.",
    )
    stale.update(live=False, cleared_at=ctx.as_of)
    outcome.expired += closed


def _rules_with_live_violations(ctx: EvalContext) -> set[str]:
    """The rules that have live violations, found by skipping from one rule to the next through
    their partial index: a seek per rule (the NOT IN of every enabled rule scanned millions)."""
    with ctx.cursor() as cursor:
        cursor.execute(
            """WITH RECURSIVE r (rule) AS (
                   SELECT MIN(rule) FROM hygiene_violation WHERE live
                   UNION ALL
                   SELECT (SELECT MIN(v.rule) FROM hygiene_violation v WHERE v.live AND v.rule > r.rule)
                   FROM r WHERE r.rule IS NOT NULL
               ) SELECT rule FROM r WHERE rule IS NOT NULL"""
        )
        return {row[0] for row in cursor.fetchall()}


# PostgreSQL: refresh the violations' statistics after an evaluation that changed more than this.
REANALYSE_AFTER = 50_000
# Called after every full evaluation with the run and its policy (see `evaluate`).
AFTER_EVALUATION: list[Callable[[EvaluationRun, Policy], None]] = []


def after_evaluation(
    listener: Callable[[EvaluationRun, Policy], None],
) -> Callable[[EvaluationRun, Policy], None]:
    if listener not in AFTER_EVALUATION:
        AFTER_EVALUATION.append(listener)
    return listener


class EvaluationOrderError(Exception):
    """Evaluating before the latest recorded evaluation would rewrite the record."""


def latest_run() -> EvaluationRun | None:
    return EvaluationRun.objects.filter(finished_at__isnull=False).order_by("-as_of").first()


def evaluate(
    as_of: dt.datetime | None = None,
    *,
    policy: Policy | None = None,
    trigger: str = "cli",
    progress: Callable[[str], None] | None = None,
) -> EvaluationRun:
    """Evaluate the whole organisation as of a moment (default: now) and record the run.

    Runs must move forward in time: the violation record is a history, and a
    run as of an earlier moment than the latest would close violations before
    they were opened. Use `find_all` to look at an earlier moment without writing.
    """
    as_of = as_of or timezone.now()
    latest = latest_run()
    if latest is not None and as_of < latest.as_of:
        raise EvaluationOrderError(
            f"The organisation was already evaluated as of "
            f"{timezone.localtime(latest.as_of):%Y-%m-%d %H:%M}; "
            "an earlier evaluation would rewrite the record. Use --dry-run to see what it finds."
        )
    policy = policy or current_policy()
    ctx = EvalContext(as_of=as_of, policy=policy)
    started = time.perf_counter()
    run = EvaluationRun.objects.create(
        as_of=as_of, day=ctx.day, policy_version=policy.version, trigger=trigger
    )
    from truepipe.hygiene import scoring

    # SQLite: the write-ahead log is folded back into the database by a thread beside the night,
    # after each rule's transaction, instead of inside the night's commits (see `core.bulk`).
    with checkpoints_beside() as checkpointer, materialised_state(ctx, cached_clocks=True):
        ctx.narrowing = _narrowing(ctx, latest)
        committed = checkpointer.after_commit if checkpointer else None
        if committed:
            committed()  # the clocks' refresh
        outcome = run_rules(ctx, progress=progress, committed=committed)
        if (
            ctx.vendor == "postgresql"
            and outcome.opened + outcome.resolved + outcome.expired > REANALYSE_AFTER
        ):
            # Planner statistics from before a night that opened (or closed) this many violations
            # would mislead the scoring and the scorecard's reads by orders of magnitude.
            with ctx.cursor() as cursor:
                cursor.execute("ANALYZE hygiene_violation")
        scoring.record_scores(ctx, materialised=True)  # reads the same state, built once
    run.opened, run.resolved, run.expired = outcome.opened, outcome.resolved, outcome.expired
    run.live = Violation.objects.filter(live=True).count()
    for listener in list(AFTER_EVALUATION):
        listener(run, policy)  # e.g. offenses (truepipe.accountability), as of the same moment
    run.seconds = time.perf_counter() - started
    run.finished_at = timezone.now()
    run.save()
    return run


def _narrowing(ctx: EvalContext, latest: EvaluationRun | None) -> Narrowing | None:
    """A night may narrow its rules (`Narrowing`) when it reads the kept state, refreshed from
    the moment of the last recorded night, which ran to its end with the same policy: the live
    violations are then that night's findings, and the deals rewritten since are known. A night
    that crashed after its refresh, a policy edited since, a rebuilt cache: every deal is read."""
    if (
        ctx.state != KEPT_VIEW
        or ctx.kept_rebuilt
        or ctx.refreshed_since is None
        or latest is None
        or latest.as_of != ctx.refreshed_since
        or latest.policy_version != ctx.policy.version
    ):
        return None
    narrowing = Narrowing(earlier=EvalContext(as_of=latest.as_of, policy=ctx.policy), changed=clocks.CHANGED)
    with ctx.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {clocks.CHANGED} LIMIT 1")
        narrowing.nothing_changed = cursor.fetchone() is None
        cursor.execute(f"DROP TABLE IF EXISTS {narrowing.live}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {narrowing.live} AS SELECT v.id, v.rule, v.key FROM hygiene_violation v"
            f" WHERE v.opportunity_id IN (SELECT id FROM {clocks.CHANGED}) AND v.live"
        )
        cursor.execute(f"CREATE INDEX {narrowing.live}_rule ON {narrowing.live} (rule)")
        if ctx.vendor == "postgresql":
            cursor.execute(f"ANALYZE {narrowing.live}")
    return narrowing


def find_all(as_of: dt.datetime, policy: Policy | None = None) -> dict[str, list[Finding]]:
    """What every rule finds as of a moment, without recording anything (dry runs, past looks)."""
    ctx = EvalContext(as_of=as_of, policy=policy or current_policy())
    with materialised_state(ctx):
        return {rule.key: list(rule.find(ctx)) for rule in ctx.policy.rules}


def evaluate_records(
    *,
    opportunity_ids: list[int] | None = None,
    activity_ids: list[int] | None = None,
    resolution: Resolution | None = None,
    policy: Policy | None = None,
    as_of: dt.datetime | None = None,
    activities_only: bool = False,
    captured_only: bool = False,
) -> Outcome:
    """Incremental evaluation of a few deals or activities, as of now, inside the caller's transaction.

    `activities_only`: the write changed activities and not the deals' own fields, so only the
    rules that read activities run (`Rule.reads_activities`); the others' verdicts cannot change.
    """
    ctx = EvalContext(
        as_of=as_of or timezone.now(),
        policy=policy or current_policy(),
        opportunity_ids=opportunity_ids,
        activity_ids=activity_ids,
        activities_only=activities_only,
        captured_only=captured_only,
    )
    ctx.bound = True
    prepare_incremental(ctx)
    return run_rules(ctx, resolution)


def prepare_incremental(ctx: EvalContext) -> None:
    """Ready a few records' evaluation: the scratch tables, the ids, the moments, the state.

    Every statement is written first, so the moments they read are bound in one go. On
    PostgreSQL, where each statement costs a round trip, the reset of the scratch tables, the
    state, the live violations and every rule's facts then go in one batch (`_batch`).
    """
    if ctx.opportunity_ids is not None:
        ctx.state = INCREMENTAL_TABLE
    state = state_sql(ctx) if ctx.opportunity_ids is not None else ""
    rules = [rule for rule in ctx.policy.rules if _in_scope(ctx, rule)]
    for rule in rules:
        ctx.keys_sql[rule.key] = rule.keys_sql(ctx)
    reset = _prepare_scratch(ctx)
    if ctx.bound and ctx.vendor == "postgresql":
        _batch(ctx, reset, state, rules)
        return
    with connection.cursor() as cursor:
        for statement in reset:
            cursor.execute(statement)
    if state:
        _fill_incremental_state(ctx, state)


def _batch(ctx: EvalContext, reset: list[str], state: str, rules: list[Rule]) -> None:
    """PostgreSQL: one round trip for the whole evaluation's reads, each repeated statement
    prepared once per connection; the rules' keys and the live violations are kept on `ctx`."""
    names = _PREPARED.setdefault(connection.connection, set())
    batch = [] if names else ["DEALLOCATE ALL"]  # a fresh (or reset) record: nothing left over
    batch += reset
    if state and INCREMENTAL_TABLE not in ctx.scratch:
        batch += [
            f"CREATE TEMPORARY TABLE {INCREMENTAL_TABLE} AS SELECT * FROM ({state}) t WHERE 1 = 0",
            f"ANALYZE {INCREMENTAL_TABLE}",
        ]
    # A batch of many records (capture's, an import's) refreshes the scratch tables' statistics
    # once filled: planned on the estimates of an earlier, smaller batch, the reads of 2,000 deals
    # took seconds instead of milliseconds.
    many = len(ctx.opportunity_ids or ()) + len(ctx.activity_ids or ()) > ANALYZE_SCRATCH_AFTER
    if many:
        batch.append(f"ANALYZE {IDS_TABLE}")
    repeated = ([f"INSERT INTO {INCREMENTAL_TABLE} {state}"] if state else []) + [_live_sql(ctx)]
    repeated += [ctx.keys_sql[rule.key] for rule in rules]
    if len(names) + len(repeated) > MAX_PREPARED:
        batch.append("DEALLOCATE ALL")
        names.clear()
    for index, sql in enumerate(repeated):
        name = _statement_name(sql)
        if name not in names:
            batch.append(f"PREPARE {name} AS {sql}")
            names.add(name)
        batch.append(f"EXECUTE {name}")
        if index == 0 and state and many:
            batch.append(f"ANALYZE {INCREMENTAL_TABLE}")
    results: list[list[tuple]] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("; ".join(batch))
            while True:
                if cursor.description is not None:
                    results.append(cursor.fetchall())
                if not cursor.nextset():
                    break
    except Exception:
        names.clear()  # unknown which PREPAREs ran: the next batch starts with DEALLOCATE ALL
        raise
    live, *found = results
    _keep_live(ctx, live)
    ctx.found = {rule.key: {row[0] for row in rows} for rule, rows in zip(rules, found, strict=True)}
    ctx.state = INCREMENTAL_TABLE if state else ctx.state


def _scratch_tables(ctx: EvalContext) -> dict[str, str]:
    """The per-connection temporary tables an incremental evaluation uses, with their definitions
    (the state's is created from its query)."""
    tables = {INCREMENTAL_TABLE: ""}
    if ctx.bound:
        value = "v" if ctx.vendor == "sqlite" else "v TEXT"
        tables[BIND_TABLE] = f"CREATE TEMPORARY TABLE {BIND_TABLE} (k INTEGER PRIMARY KEY, {value})"
        tables[IDS_TABLE] = (
            f"CREATE TEMPORARY TABLE {IDS_TABLE} (kind CHAR(1), id BIGINT, PRIMARY KEY (kind, id))"
        )
    return tables


def _prepare_scratch(ctx: EvalContext) -> list[str]:
    """The statements that create (first write on a connection) or empty the scratch tables and
    bind the records' ids and the moments named so far (run by the caller).

    Created inside the write's transaction: a rollback removes them, and the check notices.
    """
    tables = _scratch_tables(ctx)
    names = ", ".join(ctx.literal(name) for name in tables)
    with connection.cursor() as cursor:
        if ctx.vendor == "sqlite":
            cursor.execute(f"SELECT name FROM sqlite_temp_master WHERE type = 'table' AND name IN ({names})")
        else:
            cursor.execute(
                "SELECT relname FROM pg_class"
                f" WHERE relnamespace = pg_my_temp_schema() AND relname IN ({names})"
            )
        ctx.scratch = {row[0] for row in cursor.fetchall()}
        statements: list[str] = []
        for name, definition in tables.items():
            if name in ctx.scratch:
                statements.append(f"DELETE FROM {name}")
            elif definition:
                statements.append(definition)
                if ctx.vendor == "postgresql":
                    # Known empty, not "never analysed" (which the planner takes for ten pages of
                    # rows): the plans prepared over it expect a few rows.
                    statements.append(f"ANALYZE {name}")
        # Engine-made values only (ids are ints, bindings ISO text): literals, so the batch
        # needs no parameters and PostgreSQL takes it in one round trip.
        ids = [f"('o', {int(pk)})" for pk in sorted(set(ctx.opportunity_ids or ()))]
        ids += [f"('a', {int(pk)})" for pk in sorted(set(ctx.activity_ids or ()))]
        if ids:
            statements.append(f"INSERT INTO {IDS_TABLE} (kind, id) VALUES {', '.join(ids)}")
        if ctx._unwritten:
            binds = ", ".join(f"({slot}, '{text}')" for slot, text in ctx._unwritten)
            statements.append(f"INSERT INTO {BIND_TABLE} (k, v) VALUES {binds}")
            ctx._unwritten.clear()
    return statements


def _fill_incremental_state(ctx: EvalContext, sql: str) -> None:
    """Put the few deals' state into a per-connection temporary table the rules then read.

    One statement computes the state; each rule's query over the small table is
    cheap to prepare. (A subquery per rule would make the database parse and plan
    the large state query once per rule on every write.)
    """
    with ctx.cursor() as cursor:
        if INCREMENTAL_TABLE not in ctx.scratch:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {INCREMENTAL_TABLE} AS SELECT * FROM ({sql}) t WHERE 1 = 0"
            )
            if ctx.vendor == "postgresql":
                cursor.execute(f"ANALYZE {INCREMENTAL_TABLE}")
        ctx.execute_repeated(cursor, f"INSERT INTO {INCREMENTAL_TABLE} {sql}")
    ctx.state = INCREMENTAL_TABLE


def incremental_enabled() -> bool:
    return getattr(settings, "TRUEPIPE_INCREMENTAL_EVALUATION", True)
