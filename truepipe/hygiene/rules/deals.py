"""Rules about open deals: stale clocks, past-due close dates, next steps (more in deals_history)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Rule
from truepipe.hygiene.rules.history import day_diff, hours_diff
from truepipe.hygiene.rules.text import (
    g_tenths,
    joined,
    json_list,
    month_day,
    plural,
    round_tenths,
    tenths_value,
)
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

OPEN = f"s.stage_kind = '{StageKind.OPEN.value}'"
# The columns every deal rule's presentation shares.
DEAL = {"rep_id": "f.owner_id", "opportunity_id": "f.id", "amount": "f.amount"}


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


def failing_since(moment_condition: str, changed: str) -> str:
    """`facts_since`'s condition over the state (`s`): the deal was written since (in `changed`),
    or the part of the rule that depends on the moment did not hold at the earlier moment."""
    # The moment's condition first: most deals are settled by it without looking `changed` up.
    return f" AND (CASE WHEN {moment_condition} THEN 1 ELSE 0 END = 0 OR s.id IN (SELECT id FROM {changed}))"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def median_days_to_win(ctx: EvalContext) -> str:
    """SQL: each rep's median days from creation to win, over deals won in the 365 days to the moment."""
    at = ctx.ts(ctx.as_of)
    start = ctx.days_ago(365)
    days = f"{hours_diff(ctx, 'o.closed_at', 'o.created_at')} / 24.0"
    # A few deals: only their owners' medians.
    owners = "" if ctx.full else " AND o.owner_id IN (SELECT owner_id FROM {state})"
    return f"""
        SELECT owner_id, AVG(days) AS median_days FROM (
            SELECT owner_id, days, ROW_NUMBER() OVER (PARTITION BY owner_id ORDER BY days) AS rn,
                   COUNT(*) OVER (PARTITION BY owner_id) AS n
            FROM (
                SELECT o.owner_id, {days} AS days
                FROM pipeline_opportunity o JOIN pipeline_stage w ON w.id = o.stage_id
                WHERE w.kind = '{StageKind.WON.value}' AND o.closed_at > {start} AND o.closed_at <= {at}
                  AND (o.deleted_at IS NULL OR o.deleted_at > {at}){owners}
            ) won
        ) ranked
        WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
        GROUP BY owner_id"""


# Optional: a rep whose deals take long to win gets a longer limit, up to `cycle_factor` times
# their own median days-to-win (never shorter than the stage's limit).
CYCLE: dict[str, Any] = {"relative_to_cycle": False, "cycle_factor": 1.5}


class StaleRule(Rule):
    """One of the three stale clocks; subclasses name the clock."""

    clock: ClassVar[str]
    clock_label: ClassVar[str]
    fix_minutes = 3

    def facts(self, ctx: EvalContext) -> str:
        return self._facts(ctx)

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        if self.params.get("relative_to_cycle"):
            return None  # a rep's cycle moves with other deals' wins: not the deal's row alone
        return self._facts(ctx, failing_since(self._stale(earlier), changed))

    def _stale(self, ctx: EvalContext) -> str:
        """The clock is older than its stage's limit and the deal is not snoozed, at the moment."""
        return (
            f"(s.snoozed_until IS NULL OR s.snoozed_until < {ctx.date(ctx.day)})"
            f" AND {stage_days(ctx, self.params['days'], 's.' + self.clock)}"
        )

    def _facts(self, ctx: EvalContext, narrowed: str = "") -> str:
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
            WHERE {OPEN} AND {self._stale(ctx)}{cycle_condition}{narrowed}"""

    def _limits(self) -> tuple[dict[str, float], float]:
        by_stage = self.params["days"]
        named = {str(name).lower(): float(days) for name, days in by_stage.items() if name != "default"}
        return named, float(by_stage.get("default", 14))

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        named, default = self._limits()
        cases = " ".join(f"WHEN {quote(name)} THEN {days!r}" for name, days in named.items())
        limit = f"CASE LOWER(f.stage_name) {cases} ELSE {default!r} END" if cases else repr(default)
        cases = " ".join(f"WHEN {quote(name)} THEN '{days:g}'" for name, days in named.items())
        limit_text = f"CASE LOWER(f.stage_name) {cases} ELSE '{default:g}' END" if cases else f"'{default:g}'"
        first = {
            "d_days": ctx.days_since("f.clock"),
            "d_never": "CASE WHEN f.clock = f.created_at THEN 1 ELSE 0 END",
            "d_limit": limit,
            "d_limit_text": limit_text,
            "d_cycle": "CAST(NULL AS INTEGER)",
        }
        if self.params.get("relative_to_cycle"):
            # As the Python it replaces: round(cycle_factor * float(median days), 1), in binary floats.
            factor = ctx.float8(repr(float(self.params.get("cycle_factor", 1.0))))
            cycle = round_tenths(ctx, f"{factor} * {ctx.float8('f.cycle_days')}")
            first["d_cycle"] = f"CASE WHEN f.cycle_days IS NULL THEN NULL ELSE {cycle} END"
        longer = f"f.d_cycle IS NOT NULL AND {ctx.float8('f.d_cycle')} / 10 > {ctx.float8('f.d_limit')}"
        return [first, {"d_longer": f"CASE WHEN {longer} THEN 1 ELSE 0 END"}]

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        cycle = tenths_value(ctx, "f.d_cycle")
        limit_text = "f.d_limit_text"
        if self.params.get("relative_to_cycle"):
            limit_text = f"CASE WHEN f.d_longer = 1 THEN {g_tenths(ctx, 'f.d_cycle')} ELSE {limit_text} END"
        return {
            **DEAL,
            "summary": (
                f"f.name || ': no {self.clock_label} for ' || {ctx.text('f.d_days')} || ' days'"
                f" || CASE WHEN f.d_never = 1 THEN ' (none since it was created)' ELSE '' END"
                f" || '; limit ' || {limit_text} || ' in ' || f.stage_name"
            ),
            "evidence": ctx.json_object(
                {
                    "clock": ctx.literal(self.clock_label),
                    "last": f"CASE WHEN f.d_never = 1 THEN NULL ELSE {ctx.iso_timestamp('f.clock')} END",
                    "since_creation": ctx.json_bool("f.d_never = 1"),
                    "days": "f.d_days",
                    "limit_days": f"CASE WHEN f.d_longer = 1 THEN {cycle} ELSE f.d_limit END",
                    "cycle_limit_days": cycle,
                    "stage": "f.stage_name",
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }


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
    reads_activities = True


@register
class StaleUpdate(StaleRule):
    key = "stale_update"
    title = "Stale deal: not updated"
    explanation = (
        "Someone should look at every open deal and update it (any edit, or an activity logged "
        "by hand: captured e-mail and meetings are customer touches) at least every {days[default]} days."
    )
    default_severity = 1
    default_params: ClassVar[dict[str, Any]] = {"days": {"default": 30}, **CYCLE}
    clock = "update_clock"
    clock_label = "update"
    reads_activities = True  # an activity the rep logs is an update
    reads_captured = False  # a captured one is not


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

    def facts(self, ctx: EvalContext) -> str:
        return self._facts(ctx)

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        return self._facts(ctx, failing_since(self._passed(earlier), changed))

    def _passed(self, ctx: EvalContext) -> str:
        cutoff = ctx.day - dt.timedelta(days=int(self.params["grace_days"]))
        return f"s.close_date < {ctx.date(cutoff)}"

    def _facts(self, ctx: EvalContext, narrowed: str = "") -> str:
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.close_date, s.name
            FROM {{state}} s
            WHERE {OPEN} AND {self._passed(ctx)}{narrowed}"""

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        return [{"d_overdue": day_diff(ctx, ctx.date(ctx.day), "f.close_date")}]

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        return {
            **DEAL,
            "summary": (
                f"f.name || ': close date ' || {month_day(ctx, 'f.close_date', year=True)} || ' passed '"
                f" || {ctx.text('f.d_overdue')} || ' day' || {plural('f.d_overdue')} || ' ago'"
            ),
            "evidence": ctx.json_object(
                {
                    "close_date": ctx.iso_date("f.close_date"),
                    "days_overdue": "f.d_overdue",
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }


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

    def facts(self, ctx: EvalContext) -> str:
        return self._facts(ctx)

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        return self._facts(ctx, failing_since(self._lacking(earlier), changed))

    def _lacking(self, ctx: EvalContext) -> str:
        cutoff = ctx.day - dt.timedelta(days=int(self.params["grace_days"]))
        return (
            f"(s.next_step IS NULL OR s.next_step = '' OR s.next_step_date IS NULL"
            f" OR s.next_step_date < {ctx.date(cutoff)})"
        )

    def _facts(self, ctx: EvalContext, narrowed: str = "") -> str:
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.next_step,
                   s.next_step_date, s.name
            FROM {{state}} s
            WHERE {OPEN} AND {self._lacking(ctx)}{narrowed}"""

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        missing = "f.next_step IS NULL OR f.next_step = ''"
        problem = (
            f"CASE WHEN {missing} THEN 'no next step'"
            " WHEN f.next_step_date IS NULL THEN 'next step “' || f.next_step || '” has no date'"
            f" ELSE 'next step “' || f.next_step || '” was due ' || {month_day(ctx, 'f.next_step_date')} END"
        )
        kind = (
            f"CASE WHEN {missing} THEN 'missing'"
            " WHEN f.next_step_date IS NULL THEN 'undated' ELSE 'overdue' END"
        )
        return {
            **DEAL,
            "summary": f"f.name || ': ' || {problem}",
            "evidence": ctx.json_object(
                {
                    "problem": kind,
                    "next_step": "NULLIF(f.next_step, '')",
                    "next_step_date": ctx.iso_date("f.next_step_date"),
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }


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

    def facts(self, ctx: EvalContext) -> str:
        return self._facts(ctx)

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        # Nothing here moves with time: only a deal written since can fail or pass anew (a change
        # to the stages' requirements rebuilds the kept state, and the night is not narrowed).
        return self._facts(ctx, f" AND s.id IN (SELECT id FROM {changed})")

    def _facts(self, ctx: EvalContext, narrowed: str = "") -> str:
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
            WHERE {OPEN} AND ({conditions or "1 = 0"}){narrowed}"""

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        required = self.requirements(ctx)
        labels = " ".join(
            f"WHEN {int(pk)} THEN "
            + joined([(f"f.m_{name} = 1", quote(name.replace("_", " "))) for name in names], ", ")
            for pk, names in required.items()
        )
        missing = " ".join(
            f"WHEN {int(pk)} THEN " + json_list(ctx, [(f"f.m_{name} = 1", name) for name in names])
            for pk, names in required.items()
        )
        return {
            **DEAL,
            "summary": (
                f"f.name || ': ' || f.stage_name || ' needs '"
                f" || CASE f.stage_id {labels or 'WHEN 0 THEN NULL'} END"
            ),
            "evidence": ctx.json_object(
                {
                    "stage": "f.stage_name",
                    "missing": f"CASE f.stage_id {missing or 'WHEN 0 THEN NULL'} END",
                    "required": ctx.json_value(required),
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }
