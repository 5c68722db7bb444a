"""Rules about open deals: stale clocks, past-due close dates, next steps (more in deals_history)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import (
    Finding,
    Rule,
    as_date,
    as_datetime,
    as_decimal,
    days_between,
    iso,
)
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

OPEN = f"s.stage_kind = '{StageKind.OPEN.value}'"


def stage_days(ctx: EvalContext, by_stage: dict[str, Any], column: str) -> str:
    """SQL: `column` is older than the limit of its stage (named in the policy, any case)."""
    default = float(by_stage.get("default", 14))
    cases = [
        f"WHEN {quote(str(name).lower())} THEN {ctx.days_ago(float(days))}"
        for name, days in by_stage.items()
        if name != "default"
    ]
    limit = ctx.days_ago(default)
    if not cases:
        return f"{column} < {limit}"
    return f"{column} < CASE LOWER(s.stage_name) {' '.join(cases)} ELSE {limit} END"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def threshold_for(by_stage: dict[str, Any], stage_name: str) -> float:
    named = {str(name).lower(): float(days) for name, days in by_stage.items() if name != "default"}
    return named.get(stage_name.lower(), float(by_stage.get("default", 14)))


class StaleRule(Rule):
    """One of the three stale clocks; subclasses name the clock."""

    clock: ClassVar[str]
    clock_label: ClassVar[str]
    fix_minutes = 3

    def query(self, ctx: EvalContext) -> str:
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.{self.clock} AS clock,
                   s.stage_name, s.name, s.created_at
            FROM {{state}} s
            WHERE {OPEN} AND s.snoozed_until IS NULL
              AND {stage_days(ctx, self.params["days"], "s." + self.clock)}"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        clock_at = as_datetime(row["clock"])
        days = days_between(clock_at, ctx.as_of)
        limit = threshold_for(self.params["days"], row["stage_name"])
        never = clock_at == as_datetime(row["created_at"])
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            opportunity_id=row["id"],
            amount=as_decimal(row["amount"]),
            summary=(
                f"{row['name']}: no {self.clock_label} for {days} days"
                f"{' (none since it was created)' if never else ''}; limit {limit:g} in {row['stage_name']}"
            ),
            evidence={
                "clock": self.clock_label,
                "last": None if never else iso(clock_at),
                "since_creation": never,
                "days": days,
                "limit_days": limit,
                "stage": row["stage_name"],
                "as_of": iso(ctx.as_of),
            },
        )


@register
class StaleTouch(StaleRule):
    key = "stale_touch"
    title = "Stale deal: no customer touch"
    explanation = (
        "An open deal needs a call, e-mail or meeting with the customer at least every "
        "{days[default]} days (limits per stage in the policy). Editing the deal does not reset this clock."
    )
    default_severity = 3
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 21, "Negotiation": 10, "Proposal": 14}}
    clock = "touch_clock"
    clock_label = "customer touch"


@register
class StaleUpdate(StaleRule):
    key = "stale_update"
    title = "Stale deal: not updated"
    explanation = (
        "Someone should look at every open deal and update it (any edit or logged activity) "
        "at least every {days[default]} days."
    )
    default_severity = 1
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 30}}
    clock = "update_clock"
    clock_label = "update"


@register
class StaleProgress(StaleRule):
    key = "stale_progress"
    title = "Stale deal: no progress"
    explanation = (
        "An open deal should move (stage or amount) at least every {days[default]} days; "
        "a deal that sits still is rotting even when it is being touched."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 60, "Prospecting": 45}}
    clock = "progress_clock"
    clock_label = "stage or amount change"


@register
class PastDueClose(Rule):
    key = "past_due_close"
    title = "Close date in the past"
    explanation = (
        "An open deal's close date is more than {grace_days} day(s) in the past: "
        "move the date, or close the deal as won or lost."
    )
    default_severity = 3
    default_params: ClassVar[dict[str, Any]] = {"grace_days": 0}
    fix_minutes = 1

    def query(self, ctx: EvalContext) -> str:
        cutoff = ctx.day - dt.timedelta(days=int(self.params["grace_days"]))
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.close_date, s.name
            FROM {{state}} s
            WHERE {OPEN} AND s.close_date < {ctx.date(cutoff)}"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        closes = as_date(row["close_date"])
        assert closes is not None
        overdue = (ctx.day - closes).days
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            opportunity_id=row["id"],
            amount=as_decimal(row["amount"]),
            summary=(
                f"{row['name']}: close date {closes:%b %d, %Y} passed "
                f"{overdue} day{'s' if overdue != 1 else ''} ago"
            ),
            evidence={"close_date": iso(closes), "days_overdue": overdue, "as_of": iso(ctx.as_of)},
        )


@register
class NoNextStep(Rule):
    key = "no_next_step"
    title = "No next step, or its date has passed"
    explanation = (
        "Every open deal needs a next step with a date that is not in the past "
        "(more than {grace_days} day(s) overdue counts)."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"grace_days": 1}
    fix_minutes = 1

    def query(self, ctx: EvalContext) -> str:
        cutoff = ctx.day - dt.timedelta(days=int(self.params["grace_days"]))
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.next_step,
                   s.next_step_date, s.name
            FROM {{state}} s
            WHERE {OPEN} AND (s.next_step IS NULL OR s.next_step = '' OR s.next_step_date IS NULL
                              OR s.next_step_date < {ctx.date(cutoff)})"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        next_step, due = row["next_step"], as_date(row["next_step_date"])
        if not next_step:
            problem, kind = "no next step", "missing"
        elif due is None:
            problem, kind = f"next step “{next_step}” has no date", "undated"
        else:
            problem, kind = f"next step “{next_step}” was due {due:%b %d}", "overdue"
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            opportunity_id=row["id"],
            amount=as_decimal(row["amount"]),
            summary=f"{row['name']}: {problem}",
            evidence={
                "problem": kind,
                "next_step": next_step or None,
                "next_step_date": iso(due),
                "as_of": iso(ctx.as_of),
            },
        )
