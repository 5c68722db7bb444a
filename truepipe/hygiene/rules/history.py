"""Rules that read a deal's field history (pipeline_opportunitychange): pushes, swings, jumps, surprises.

History values are stored as text: dates as ISO text, amounts as decimal text,
stages as the stage's primary key. Every rule reads only the history rows of
its window, as of the evaluation's moment (`changed_at <= as_of`), so a look
at a past day gives the answer an evaluation on that day gave.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Finding, Rule, as_date, as_datetime, as_decimal, iso
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

OPEN = f"s.stage_kind = '{StageKind.OPEN.value}'"
CHANGES = "pipeline_opportunitychange"


# Vendor-neutral SQL pieces the engine's helpers do not cover (SQLite stores timestamps as text).
def day_diff(ctx: EvalContext, later: str, earlier: str) -> str:
    """Whole days from one date expression to another."""
    if ctx.vendor == "sqlite":
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"
    return f"(CAST({later} AS DATE) - CAST({earlier} AS DATE))"


def hours_diff(ctx: EvalContext, later: str, earlier: str) -> str:
    """Hours from one timestamp to another."""
    if ctx.vendor == "sqlite":
        return f"((julianday({later}) - julianday({earlier})) * 24.0)"
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 3600.0)"


def date_of(ctx: EvalContext, timestamp: str) -> str:
    return f"DATE({timestamp})" if ctx.vendor == "sqlite" else f"CAST({timestamp} AS DATE)"


def as_text(ctx: EvalContext, expression: str) -> str:
    return expression if ctx.vendor == "sqlite" else f"CAST({expression} AS TEXT)"


def concat_all(ctx: EvalContext, expression: str) -> str:
    """All values of a group as one ';'-separated text (order not guaranteed: sort after reading)."""
    if ctx.vendor == "sqlite":
        return f"GROUP_CONCAT({expression}, ';')"
    return f"STRING_AGG({expression}, ';')"


def split(text: Any) -> list[str]:
    return sorted(part for part in str(text or "").split(";") if part)


def window_start(ctx: EvalContext, days: Any) -> dt.datetime:
    return ctx.as_of - dt.timedelta(days=float(days))


def _deal_finding(rule: Rule, row: dict[str, Any], summary: str, evidence: dict[str, Any]) -> Finding:
    return Finding(
        key=row["key"],
        rep_id=row["owner_id"],
        opportunity_id=row["id"],
        amount=as_decimal(row["amount"]),
        summary=summary,
        evidence=evidence,
    )


@register
class ClosePushed(Rule):
    key = "close_pushed"
    title = "Close date keeps slipping"
    explanation = (
        "An open deal's close date was pushed later {times} or more times, or by more than "
        "{days} days in total, within the last {period_days} days: the forecast is not believable."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"times": 2, "days": 30, "period_days": 90}
    fix_minutes = 3

    def query(self, ctx: EvalContext) -> str:
        start = ctx.ts(window_start(ctx, self.params["period_days"]))
        at = ctx.ts(ctx.as_of)
        pushed = day_diff(ctx, "c.new_value", "c.old_value")
        pushes = concat_all(
            ctx, f"c.old_value || '>' || c.new_value || '@' || {as_text(ctx, date_of(ctx, 'c.changed_at'))}"
        )
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.name, s.close_date,
                   p.pushes, p.days_pushed, p.history
            FROM {{state}} s
            JOIN (
                SELECT c.opportunity_id, COUNT(*) AS pushes, SUM({pushed}) AS days_pushed, {pushes} AS history
                FROM {CHANGES} c
                WHERE c.field = 'close_date' AND c.old_value IS NOT NULL AND c.new_value IS NOT NULL
                  AND c.old_value <> '' AND c.new_value > c.old_value
                  AND c.changed_at > {start} AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                GROUP BY c.opportunity_id
            ) p ON p.opportunity_id = s.id
            WHERE {OPEN} AND (p.pushes >= {int(self.params["times"])}
                              OR p.days_pushed > {int(self.params["days"])})"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        pushes, days = int(row["pushes"]), int(row["days_pushed"] or 0)
        history = []
        for item in split(row["history"]):
            moved, _, on = item.partition("@")
            old, _, new = moved.partition(">")
            history.append({"from": old, "to": new, "on": on[:10]})
        history.sort(key=lambda push: (push["on"], push["from"]))
        return _deal_finding(
            self,
            row,
            f"{row['name']}: close date pushed {pushes} time{'s' if pushes != 1 else ''} "
            f"(+{days} days) in the last {self.params['period_days']} days",
            {
                "pushes": pushes,
                "days_pushed": days,
                "history": history,
                "close_date": iso(as_date(row["close_date"])),
                "limit_times": self.params["times"],
                "limit_days": self.params["days"],
                "period_days": self.params["period_days"],
                "as_of": iso(ctx.as_of),
            },
        )


@register
class AmountChanged(Rule):
    key = "amount_changed"
    title = "Amount swung near close"
    explanation = (
        "An open deal's amount changed by more than {percent}% within {days} days of its close "
        "date (looked at over the last {period_days} days): late swings make the forecast unreliable."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"percent": 25, "days": 14, "period_days": 30}
    fix_minutes = 2

    def query(self, ctx: EvalContext) -> str:
        start = ctx.ts(window_start(ctx, self.params["period_days"]))
        at = ctx.ts(ctx.as_of)
        old, new = ctx.cast("c.old_value", "num"), ctx.cast("c.new_value", "num")
        # The close date as of the change: the latest close-date change up to it, else the old value
        # of the first one after it, else the current close date.
        close_then = f"""COALESCE(
            (SELECT d.new_value FROM {CHANGES} d WHERE d.opportunity_id = c.opportunity_id
               AND d.field = 'close_date' AND d.changed_at <= c.changed_at
             ORDER BY d.changed_at DESC, d.id DESC LIMIT 1),
            (SELECT d.old_value FROM {CHANGES} d WHERE d.opportunity_id = c.opportunity_id
               AND d.field = 'close_date' AND d.changed_at > c.changed_at
             ORDER BY d.changed_at, d.id LIMIT 1),
            {as_text(ctx, "o.close_date")})"""
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.name,
                   w.old_amount, w.new_amount, w.changed_at, w.close_then, w.days_to_close
            FROM {{state}} s
            JOIN (
                SELECT x.*, ROW_NUMBER() OVER (
                    PARTITION BY x.opportunity_id
                    ORDER BY ABS(x.new_amount - x.old_amount) * 1.0 / x.old_amount DESC, x.changed_at DESC
                ) AS rn
                FROM (
                    SELECT y.*, {day_diff(ctx, "y.close_then", date_of(ctx, "y.changed_at"))} AS days_to_close
                    FROM (
                        SELECT c.opportunity_id, {old} AS old_amount, {new} AS new_amount, c.changed_at,
                               {close_then} AS close_then
                        FROM {CHANGES} c JOIN pipeline_opportunity o ON o.id = c.opportunity_id
                        WHERE c.field = 'amount' AND c.old_value IS NOT NULL AND c.new_value IS NOT NULL
                          AND c.old_value <> '' AND c.new_value <> ''
                          AND c.changed_at > {start} AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                    ) y
                    WHERE y.old_amount > 0 AND y.close_then IS NOT NULL AND y.close_then <> ''
                ) x
                WHERE x.days_to_close <= {int(self.params["days"])}
                  AND ABS(x.new_amount - x.old_amount) * 100 > {float(self.params["percent"])} * x.old_amount
            ) w ON w.opportunity_id = s.id AND w.rn = 1
            WHERE {OPEN}"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        old, new = as_decimal(row["old_amount"]), as_decimal(row["new_amount"])
        assert old is not None and new is not None
        percent = round(float((new - old) / old * 100), 1)
        changed_at = as_datetime(row["changed_at"])
        days = int(row["days_to_close"])
        return _deal_finding(
            self,
            row,
            f"{row['name']}: amount changed {percent:+g}% ({old:,.0f} → {new:,.0f}) "
            f"{days} day{'s' if days != 1 else ''} before the close date",
            {
                "old_amount": str(old),
                "new_amount": str(new),
                "percent": percent,
                "changed_at": iso(changed_at),
                "close_date_then": str(row["close_then"])[:10],
                "days_to_close": days,
                "limit_percent": self.params["percent"],
                "limit_days": self.params["days"],
                "as_of": iso(ctx.as_of),
            },
        )


class StageMoveRule(Rule):
    """Stage changes within a period, with the old and new stage's order; subclasses pick the bad ones."""

    default_severity = 2
    fix_minutes = 2

    def condition(self, ctx: EvalContext) -> str:
        raise NotImplementedError

    def query(self, ctx: EvalContext) -> str:
        start = ctx.ts(window_start(ctx, self.params["period_days"]))
        at = ctx.ts(ctx.as_of)
        old_id, new_id = ctx.cast("c.old_value", "int"), ctx.cast("c.new_value", "int")
        skipped = f"""(SELECT COUNT(*) FROM pipeline_stage k WHERE k.kind = '{StageKind.OPEN.value}'
                        AND k.is_active AND k."order" > os."order" AND k."order" < ns."order")"""
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.name,
                   m.old_stage, m.new_stage, m.changed_at, m.skipped
            FROM {{state}} s
            JOIN (
                SELECT c.opportunity_id, os.name AS old_stage, ns.name AS new_stage, c.changed_at,
                       {skipped} AS skipped,
                       ROW_NUMBER() OVER (
                           PARTITION BY c.opportunity_id ORDER BY c.changed_at DESC, c.id DESC) AS rn
                FROM {CHANGES} c
                JOIN pipeline_stage os ON os.id = {old_id}
                JOIN pipeline_stage ns ON ns.id = {new_id}
                WHERE c.field = 'stage' AND c.old_value IS NOT NULL AND c.new_value IS NOT NULL
                  AND c.changed_at > {start} AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                  AND {self.condition(ctx)}
            ) m ON m.opportunity_id = s.id AND m.rn = 1
            WHERE {OPEN}"""

    def evidence(self, ctx: EvalContext, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "from_stage": row["old_stage"],
            "to_stage": row["new_stage"],
            "changed_at": iso(as_datetime(row["changed_at"])),
            "period_days": self.params["period_days"],
            "as_of": iso(ctx.as_of),
        }


@register
class StageRegressed(StageMoveRule):
    key = "stage_regressed"
    title = "Deal moved backwards"
    explanation = (
        "An open deal moved back to an earlier stage within the last {period_days} days: "
        "it was overstated before, or it is slipping now. Say why in the next step."
    )
    default_params: ClassVar[dict[str, Any]] = {"period_days": 30}

    def condition(self, ctx: EvalContext) -> str:
        return 'ns."order" < os."order"'

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        return _deal_finding(
            self,
            row,
            f"{row['name']}: moved back from {row['old_stage']} to {row['new_stage']}",
            self.evidence(ctx, row),
        )


@register
class StageSkipped(StageMoveRule):
    key = "stage_skipped"
    title = "Deal skipped stages"
    explanation = (
        "An open deal jumped forward over more than {max_skipped} stage(s) at once within the "
        "last {period_days} days: the stages in between were never qualified."
    )
    default_params: ClassVar[dict[str, Any]] = {"max_skipped": 1, "period_days": 30}

    def condition(self, ctx: EvalContext) -> str:
        kind = StageKind.OPEN.value
        return (
            f"os.kind = '{kind}' AND ns.kind = '{kind}' AND ns.\"order\" > os.\"order\""
            f" AND (SELECT COUNT(*) FROM pipeline_stage k WHERE k.kind = '{kind}' AND k.is_active"
            f' AND k."order" > os."order" AND k."order" < ns."order") > {int(self.params["max_skipped"])}'
        )

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        skipped = int(row["skipped"])
        evidence = self.evidence(ctx, row) | {"skipped": skipped, "max_skipped": self.params["max_skipped"]}
        return _deal_finding(
            self,
            row,
            f"{row['name']}: jumped from {row['old_stage']} to {row['new_stage']}, "
            f"skipping {skipped} stage{'s' if skipped != 1 else ''}",
            evidence,
        )


@register
class SurpriseWin(Rule):
    key = "surprise_win"
    title = "Surprise win"
    explanation = (
        "A won deal that was in the CRM for fewer than {min_days} days before closing, or had fewer "
        "than {min_activities} activities logged before it closed, or jumped from an early stage "
        "straight to won. Nobody could forecast it and delivery was not warned. "
        "It counts for {window_days} days after the close."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"min_days": 14, "min_activities": 3, "window_days": 30}
    event = True
    fix_minutes = 0  # nothing to fix afterwards: the lesson is for the next deal

    def early_order(self, ctx: EvalContext) -> int:
        """The order of the second open stage: a jump to won from it or earlier is a surprise."""
        stages = ctx.open_stages
        if not stages:
            return -1
        return stages[min(1, len(stages) - 1)].order

    def query(self, ctx: EvalContext) -> str:
        start = ctx.ts(window_start(ctx, self.params["window_days"]))
        at = ctx.ts(ctx.as_of)
        new_id, old_id = ctx.cast("c.new_value", "int"), ctx.cast("c.old_value", "int")
        # When the deal was won, as of the moment: its latest move into a won stage (a deal
        # reopened later keeps that moment), else its closed_at (created as won).
        won = f"""
            SELECT s.*, COALESCE(m.won_at, s.closed_at, s.created_at) AS won_at
            FROM {{state}} s
            LEFT JOIN (
                SELECT c.opportunity_id, MAX(c.changed_at) AS won_at
                FROM {CHANGES} c JOIN pipeline_stage ns ON ns.id = {new_id}
                WHERE c.field = 'stage' AND c.new_value IS NOT NULL AND ns.kind = '{StageKind.WON.value}'
                  AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                GROUP BY c.opportunity_id
            ) m ON m.opportunity_id = s.id
            WHERE s.stage_kind = '{StageKind.WON.value}'"""
        lifetime = f"{hours_diff(ctx, 'w.won_at', 'w.created_at')} / 24.0"
        return f"""
            SELECT '{self.key}:o' || w.id AS key, w.id, w.owner_id, w.amount, w.name, w.created_at,
                   w.won_at AS closed_at, {lifetime} AS days_open,
                   COALESCE(n.before_close, 0) AS activities, j.from_stage
            FROM ({won}) w
            LEFT JOIN (
                SELECT a.opportunity_id, COUNT(*) AS before_close
                FROM activities_activity a JOIN ({won}) w ON w.id = a.opportunity_id
                WHERE a.occurred_at <= w.won_at AND a.logged_at <= w.won_at
                  AND (a.deleted_at IS NULL OR a.deleted_at > w.won_at)
                GROUP BY a.opportunity_id
            ) n ON n.opportunity_id = w.id
            LEFT JOIN (
                SELECT c.opportunity_id, MIN(os.name) AS from_stage
                FROM {CHANGES} c
                JOIN pipeline_stage ns ON ns.id = {new_id}
                JOIN pipeline_stage os ON os.id = {old_id}
                WHERE c.field = 'stage' AND c.new_value IS NOT NULL AND c.old_value IS NOT NULL
                  AND ns.kind = '{StageKind.WON.value}' AND os.kind = '{StageKind.OPEN.value}'
                  AND os."order" <= {self.early_order(ctx)}
                  AND c.changed_at > {start} AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                GROUP BY c.opportunity_id
            ) j ON j.opportunity_id = w.id
            WHERE w.won_at > {start} AND w.won_at <= {at}
              AND ({lifetime} < {float(self.params["min_days"])}
                   OR COALESCE(n.before_close, 0) < {int(self.params["min_activities"])}
                   OR j.from_stage IS NOT NULL)"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        days_open = float(row["days_open"])
        activities = int(row["activities"])
        reasons = []
        if days_open < float(self.params["min_days"]):
            reasons.append("short_life")
        if activities < int(self.params["min_activities"]):
            reasons.append("few_activities")
        if row["from_stage"]:
            reasons.append("jumped_to_won")
        words = {
            "short_life": f"in the CRM only {days_open:.0f} day{'s' if round(days_open) != 1 else ''}",
            "few_activities": f"{activities} activit{'y' if activities == 1 else 'ies'} logged before close",
            "jumped_to_won": f"jumped from {row['from_stage']} straight to won",
        }
        closed = as_datetime(row["closed_at"])
        return _deal_finding(
            self,
            row,
            f"{row['name']}: surprise win ({'; '.join(words[reason] for reason in reasons)})",
            {
                "reasons": reasons,
                "days_in_crm": round(days_open, 1),
                "activities_before_close": activities,
                "jumped_from_stage": row["from_stage"],
                "created_at": iso(as_datetime(row["created_at"])),
                "closed_at": iso(closed),
                "min_days": self.params["min_days"],
                "min_activities": self.params["min_activities"],
                "window_days": self.params["window_days"],
                "as_of": iso(ctx.as_of),
            },
        )
