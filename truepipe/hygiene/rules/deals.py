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
from truepipe.hygiene.rules.history import hours_diff
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


def median_days_to_win(ctx: EvalContext) -> str:
    """SQL: each rep's median days from creation to win, over deals won in the 365 days to the moment."""
    at = ctx.ts(ctx.as_of)
    start = ctx.days_ago(365)
    days = f"{hours_diff(ctx, 'o.closed_at', 'o.created_at')} / 24.0"
    return f"""
        SELECT owner_id, AVG(days) AS median_days FROM (
            SELECT owner_id, days, ROW_NUMBER() OVER (PARTITION BY owner_id ORDER BY days) AS rn,
                   COUNT(*) OVER (PARTITION BY owner_id) AS n
            FROM (
                SELECT o.owner_id, {days} AS days
                FROM pipeline_opportunity o JOIN pipeline_stage w ON w.id = o.stage_id
                WHERE w.kind = '{StageKind.WON.value}' AND o.closed_at > {start} AND o.closed_at <= {at}
                  AND (o.deleted_at IS NULL OR o.deleted_at > {at})
            ) won
        ) ranked
        WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
        GROUP BY owner_id"""


def threshold_for(by_stage: dict[str, Any], stage_name: str) -> float:
    named = {str(name).lower(): float(days) for name, days in by_stage.items() if name != "default"}
    return named.get(stage_name.lower(), float(by_stage.get("default", 14)))


# Optional: a rep whose deals take long to win gets a longer limit, up to `cycle_factor` times
# their own median days-to-win (never shorter than the stage's limit).
CYCLE: dict[str, Any] = {"relative_to_cycle": False, "cycle_factor": 1.5}


class StaleRule(Rule):
    """One of the three stale clocks; subclasses name the clock."""

    clock: ClassVar[str]
    clock_label: ClassVar[str]
    fix_minutes = 3

    def query(self, ctx: EvalContext) -> str:
        cycle_join, cycle_column, cycle_condition = "", "NULL AS cycle_days", ""
        if self.params.get("relative_to_cycle"):
            factor = float(self.params.get("cycle_factor", 1.0))
            age = f"{hours_diff(ctx, ctx.ts(ctx.as_of), 's.' + self.clock)} / 24.0"
            cycle_join = f" LEFT JOIN ({median_days_to_win(ctx)}) cy ON cy.owner_id = s.owner_id"
            cycle_column = "cy.median_days AS cycle_days"
            cycle_condition = f" AND (cy.median_days IS NULL OR {age} > {factor} * cy.median_days)"
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.{self.clock} AS clock,
                   s.stage_name, s.name, s.created_at, {cycle_column}
            FROM {{state}} s{cycle_join}
            WHERE {OPEN} AND s.snoozed_until IS NULL
              AND {stage_days(ctx, self.params["days"], "s." + self.clock)}{cycle_condition}"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        clock_at = as_datetime(row["clock"])
        days = days_between(clock_at, ctx.as_of)
        limit = threshold_for(self.params["days"], row["stage_name"])
        cycle = None
        if row.get("cycle_days") is not None:
            cycle = round(float(self.params.get("cycle_factor", 1.0)) * float(row["cycle_days"]), 1)
            limit = max(limit, cycle)
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
                "cycle_limit_days": cycle,
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
    default_params: ClassVar[dict[str, Any]] = {
        "days": {"default": 21, "Negotiation": 10, "Proposal": 14},
        **CYCLE,
    }
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
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 30}, **CYCLE}
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
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 60, "Prospecting": 45}, **CYCLE}
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


# How each requirable field reads as empty, in SQL over the state (s) and the deal row (o).
MISSING_SQL = {
    "account": "o.account_id IS NULL",
    "amount": "s.amount IS NULL",
    "close_date": "s.close_date IS NULL",
    "next_step": "(s.next_step IS NULL OR s.next_step = '')",
    "next_step_date": "s.next_step_date IS NULL",
    "competitor": "(o.competitor IS NULL OR o.competitor = '')",
    "lost_reason": "(o.lost_reason IS NULL OR o.lost_reason = '')",
    "source": "(o.source IS NULL OR o.source = '')",
}


@register
class MissingStageFields(Rule):
    key = "missing_stage_fields"
    title = "Missing fields for the deal's stage"
    explanation = (
        "An open deal is missing a field its current stage requires (for instance after an "
        "import, or after the stage's requirements changed): fill it in or move the deal back."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {}
    fix_minutes = 2

    def requirements(self, ctx: EvalContext) -> dict[int, list[str]]:
        return {
            stage.pk: [name for name in stage.required_fields if name in MISSING_SQL]
            for stage in ctx.open_stages
            if any(name in MISSING_SQL for name in stage.required_fields)
        }

    def query(self, ctx: EvalContext) -> str:
        required = self.requirements(ctx)
        fields = sorted({name for names in required.values() for name in names})
        conditions = " OR ".join(
            f"(s.stage_id = {int(pk)} AND ({' OR '.join(MISSING_SQL[name] for name in names)}))"
            for pk, names in required.items()
        )
        flags = "".join(f", CASE WHEN {MISSING_SQL[name]} THEN 1 ELSE 0 END AS m_{name}" for name in fields)
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.name, s.stage_id,
                   s.stage_name{flags}
            FROM {{state}} s JOIN pipeline_opportunity o ON o.id = s.id
            WHERE {OPEN} AND ({conditions or "1 = 0"})"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        required = self.requirements(ctx).get(row["stage_id"], [])
        missing = [name for name in required if row.get(f"m_{name}")]
        labels = ", ".join(name.replace("_", " ") for name in missing)
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            opportunity_id=row["id"],
            amount=as_decimal(row["amount"]),
            summary=f"{row['name']}: {row['stage_name']} needs {labels}",
            evidence={
                "stage": row["stage_name"],
                "missing": missing,
                "required": required,
                "as_of": iso(ctx.as_of),
            },
        )
