"""What a rule is: a named, explained, set-based SQL check over the evaluation state.

A rule never loops over records in Python. It is two pieces of SQL:

- `facts`: a SELECT whose first column is the finding's `key` (``stale_touch:o42``),
  with the values that make it fail, over the whole organisation or, restricted by
  ids, over the few records a write touched;
- `presentation`: SQL expressions over one row of those facts (alias `f`) giving
  the violation's columns: who it counts against, the record, the summary text and
  the evidence JSON. `derived` may add intermediate columns first (computed once,
  reused by several expressions).

A full evaluation keeps the facts in a temporary table and applies the
presentation only to the new failures, in one INSERT ... SELECT; `find` runs
both as one query and reads the findings back (dry runs, incremental evaluation).
The text helpers in `rules.text` reproduce Python's formatting (rounding, `g`,
thousands separators, month names) so a summary reads the same on either database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from django.utils.dateparse import parse_date, parse_datetime

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

Subject = Literal["opportunity", "activity", "rep_day"]
# What a rule's presentation gives for each finding (evidence is a JSON value).
FINDING_COLUMNS = ("rep_id", "opportunity_id", "activity_id", "day", "amount", "summary", "evidence")


@dataclass
class Finding:
    """One failure: what failed (key), whom it counts against, and why."""

    key: str
    rep_id: int
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    opportunity_id: int | None = None
    activity_id: int | None = None
    day: date | None = None
    amount: Decimal | None = None


class Rule:
    """Base class: subclasses set the class attributes and implement `facts` and `presentation`."""

    key: ClassVar[str]
    title: ClassVar[str]
    # Plain language, with {param} placeholders filled from the policy.
    explanation: ClassVar[str]
    default_severity: ClassVar[int] = 2
    default_params: ClassVar[dict[str, Any]] = {}
    subject: ClassVar[Subject] = "opportunity"
    # State rules resolve when the data is fixed; event rules (a missed day, a late
    # log) cannot be fixed and expire when they leave the window instead.
    event: ClassVar[bool] = False
    # Whether a write to one deal can change this rule's verdict on it (incremental evaluation).
    incremental: ClassVar[bool] = True
    # Whether the verdict reads the deal's activities (its clocks, counts) or the activities
    # themselves: a write of activities alone re-runs only such rules on the deals it touched.
    reads_activities: ClassVar[bool] = False
    # Whether e-mail and meetings that capture adds can change the verdict (a customer touch, an
    # activity count): a capture batch re-runs only such rules. None: as `reads_activities`.
    reads_captured: ClassVar[bool | None] = None
    # Minutes a rep needs to fix one finding (the daily queue's time estimate).
    fix_minutes: ClassVar[int] = 2

    def __init__(self, params: dict[str, Any], severity: int) -> None:
        self.params = params
        self.severity = severity

    def describe(self) -> str:
        try:
            return self.explanation.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return self.explanation

    # --- What subclasses define ---

    def facts(self, ctx: EvalContext) -> str:
        """SQL: one row per failure, `key` first, then the values the presentation reads."""
        raise NotImplementedError

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        """Intermediate columns over the facts (`f`), in layers: each layer may use the previous ones."""
        return []

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        """The facts of a night that follows a night as of `earlier`, or None (the rule does not
        know how): only the failures of the deals in `changed` (a table of ids) and of those
        that did not fail then.

        For a rule that fails a deal by its state row alone, and once for good as time passes
        until the row changes (a clock older than a limit, a date passed), every other deal's
        failure held then already and has its live violation (`engine.narrowing`)."""
        return None

    def slid_since(self, ctx: EvalContext, earlier: EvalContext) -> str | None:
        """With `facts_since`: SQL of the ids of the deals whose verdict may have changed since
        `earlier` with no write to them (a period that slid), whose live violations may close
        too; None when only the written deals' can."""
        return None

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        """SQL over `f` (facts plus derived columns) for each of FINDING_COLUMNS (missing: NULL)."""
        raise NotImplementedError

    @contextmanager
    def prepared(self, ctx: EvalContext) -> Iterator[None]:
        """Anything the facts need while they run (a rule may fill a temporary table)."""
        yield

    # --- Built from them ---

    def derived_sql(self, ctx: EvalContext, source: str) -> str:
        """The facts in `source` (a table, or a parenthesised SELECT) with the derived columns added."""
        # OFFSET 0 keeps each layer a subquery of its own: flattened, every use of a column
        # would repeat (and recompute) the whole expression behind it, and these nest.
        fence = ctx.fence
        sql = f"SELECT * FROM {source} f{fence}"
        for layer in self.derived(ctx):
            columns = "".join(f", {expression} AS {name}" for name, expression in layer.items())
            sql = f"SELECT f.*{columns} FROM ({sql}) f{fence}"
        return sql

    def query(self, ctx: EvalContext, keys: Iterable[str] | None = None) -> str:
        """One SELECT of every finding (or of those keys): key, then FINDING_COLUMNS."""
        columns = self.presentation(ctx)
        select = ", ".join(f"{columns.get(name, 'NULL')} AS {name}" for name in FINDING_COLUMNS)
        facts = f"({ctx.sql(self.facts(ctx))})"
        where = ""
        if keys is not None:
            where = f" WHERE f.key IN ({', '.join(ctx.literal(key) for key in keys) or 'NULL'})"
        return f"SELECT f.key, {select} FROM ({self.derived_sql(ctx, facts)}) f{where}"

    def keys_sql(self, ctx: EvalContext) -> str:
        return f"SELECT f.key FROM ({ctx.sql(self.facts(ctx))}) f"

    def keys(self, ctx: EvalContext) -> set[str]:
        """The keys of every failure: the facts alone (what an incremental evaluation compares)."""
        if self.key in ctx.found:
            return ctx.found[self.key]  # read already, in the evaluation's batch
        with self.prepared(ctx), ctx.cursor() as cursor:
            ctx.execute_repeated(cursor, ctx.keys_sql.get(self.key) or self.keys_sql(ctx))
            return {row[0] for row in cursor.fetchall()}

    def find(self, ctx: EvalContext, keys: Iterable[str] | None = None) -> Iterable[Finding]:
        """Every failure as of the context's moment (or those of the given keys), as Findings."""
        with self.prepared(ctx), ctx.cursor() as cursor:
            cursor.execute(self.query(ctx, keys))
            while batch := cursor.fetchmany(5000):
                for key, rep_id, opportunity_id, activity_id, day, amount, summary, evidence in batch:
                    yield Finding(
                        key=key,
                        rep_id=rep_id,
                        opportunity_id=opportunity_id,
                        activity_id=activity_id,
                        day=as_date(day),
                        amount=as_decimal(amount),
                        summary=summary,
                        evidence=json.loads(evidence) if isinstance(evidence, str | bytes) else evidence,
                    )


def rows(ctx: EvalContext, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[tuple]:
    """Run one SELECT with the context's `{state}` (and other) placeholders filled in."""
    with ctx.cursor() as cursor:
        # No parameters, no placeholder substitution: a literal % (strftime) stays as it is.
        cursor.execute(ctx.sql(sql), params or None)
        while True:
            batch = cursor.fetchmany(5000)
            if not batch:
                return
            yield from batch


def not_captured(column: str) -> str:
    """SQL: the activity in `column`'s row was logged by a person, not by e-mail or calendar capture
    (captured ones are never late and are not the rep's updates)."""
    from truepipe.activities.models import CAPTURED_SOURCES

    return f"{column} NOT IN (" + ", ".join(f"'{source}'" for source in CAPTURED_SOURCES) + ")"


def as_datetime(value: Any) -> datetime | None:
    """A timestamp read back from raw SQL (SQLite returns text, or a naive UTC datetime for a
    column declared as one; PostgreSQL aware datetimes)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if value is None:
        return value
    parsed = parse_datetime(str(value))
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    return parse_date(str(value)[:10])


def as_decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def iso(value: Any) -> str | None:
    """JSON-friendly ISO text for evidence."""
    return value.isoformat() if isinstance(value, date) else value
