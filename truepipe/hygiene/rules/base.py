"""What a rule is: a named, explained, set-based SQL check over the evaluation state.

A rule never loops over records in Python. `find` runs a few SQL statements
over the whole organisation (or over the few deals a write touched) and returns
only the failures, each as a `Finding` with the evidence that explains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from django.utils.dateparse import parse_date, parse_datetime

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

Subject = Literal["opportunity", "activity", "rep_day"]


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
    """Base class: subclasses set the class attributes and implement `find`."""

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

    def find(self, ctx: EvalContext) -> Iterable[Finding]:
        """Every failure as of the context's moment. Rules either override this, or define
        `query` (SQL whose first column is the finding's key) and `finding` (one row to a
        Finding): then a full evaluation reconciles in SQL and builds Findings only for
        new failures, which keeps a nightly run over a million deals close to one scan."""
        sql = self.query(ctx)
        with ctx.cursor() as cursor:
            cursor.execute(ctx.sql(sql))
            names = [column[0] for column in cursor.description]
            while batch := cursor.fetchmany(5000):
                for row in batch:
                    yield self.finding(ctx, dict(zip(names, row, strict=True)))

    def query(self, ctx: EvalContext) -> str:
        raise NotImplementedError

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        raise NotImplementedError

    @classmethod
    def keyed_in_sql(cls) -> bool:
        return cls.query is not Rule.query


def rows(ctx: EvalContext, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[tuple]:
    """Run one SELECT with the context's `{state}` (and other) placeholders filled in."""
    with ctx.cursor() as cursor:
        cursor.execute(ctx.sql(sql), params)
        while True:
            batch = cursor.fetchmany(5000)
            if not batch:
                return
            yield from batch


def as_datetime(value: Any) -> datetime | None:
    """A timestamp read back from raw SQL (SQLite returns text, PostgreSQL aware datetimes)."""
    if value is None or isinstance(value, datetime):
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


def days_between(earlier: datetime | None, later: datetime) -> int | None:
    return None if earlier is None else (later - earlier).days
