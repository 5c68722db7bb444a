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
from truepipe.hygiene.rules.base import Rule
from truepipe.hygiene.rules.text import (
    g_tenths,
    joined,
    json_list,
    plural,
    round_int,
    round_tenths,
    tenths_value,
    thousands,
)
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


def window_start(ctx: EvalContext, days: Any) -> dt.datetime:
    """The moment `days` whole days of elapsed time before the evaluated one: counted in UTC, so
    a night as of a local moment and the same moment read back from the database (in UTC) agree
    across a change of daylight saving time (a narrowed night compares the two)."""
    return ctx.as_of.astimezone(dt.UTC) - dt.timedelta(days=float(days))


# The columns every deal rule's presentation shares.
DEAL = {"rep_id": "f.owner_id", "opportunity_id": "f.id", "amount": "f.amount"}


def as_of(ctx: EvalContext) -> str:
    return ctx.literal(ctx.as_of.isoformat())


class SlidingWindow(Rule):
    """A rule over one field's changes within a period up to the moment (`period_days`).

    A night that follows the last one (`engine.Narrowing`) reconsiders only the deals written
    since then and those with a change of the field that has left the period since: every other
    deal has the same changes in its period as then, and so the same verdict. (A new change
    marks its deal written; the period only slides.)"""

    window_field: ClassVar[str]

    def window_facts(self, ctx: EvalContext, reconsidered: str) -> str:
        """The facts, the field's changes read only for the deals `reconsidered` names (an SQL
        condition on `c.opportunity_id`; empty: every deal)."""
        raise NotImplementedError

    def facts(self, ctx: EvalContext) -> str:
        return self.window_facts(ctx, "")

    def slid_since(self, ctx: EvalContext, earlier: EvalContext) -> str | None:
        days = self.params["period_days"]
        return (
            f"SELECT c.opportunity_id FROM {CHANGES} c WHERE c.field = '{self.window_field}'"
            f" AND c.changed_at > {earlier.ts(window_start(earlier, days))}"
            f" AND c.changed_at <= {ctx.ts(window_start(ctx, days))}"
        )

    def facts_since(self, ctx: EvalContext, earlier: EvalContext, changed: str) -> str | None:
        slid = self.slid_since(ctx, earlier)
        return self.window_facts(ctx, f" AND c.opportunity_id IN (SELECT id FROM {changed} UNION {slid})")


@register
class ClosePushed(SlidingWindow):
    key = "close_pushed"
    title = "Close date keeps slipping"
    explanation = (
        "An open deal's close date was pushed later {times} or more times, or by more than "
        "{days} days in total, within the last {period_days} days: the forecast is not believable."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"times": 2, "days": 30, "period_days": 90}
    fix_minutes = 3
    window_field = "close_date"

    def pushes(self, ctx: EvalContext) -> str:
        """SQL condition: change `c` pushed the close date later within the period."""
        start = ctx.ts(window_start(ctx, self.params["period_days"]))
        return (
            "c.field = 'close_date' AND c.old_value IS NOT NULL AND c.new_value IS NOT NULL"
            " AND c.old_value <> '' AND c.new_value > c.old_value"
            f" AND c.changed_at > {start} AND c.changed_at <= {ctx.ts(ctx.as_of)}"
        )

    def window_facts(self, ctx: EvalContext, reconsidered: str) -> str:
        pushed = day_diff(ctx, "c.new_value", "c.old_value")
        # The pushes themselves are read (by `history`) only for the violations that open.
        return f"""
            SELECT '{self.key}:o' || s.id AS key, s.id, s.owner_id, s.amount, s.name, s.close_date,
                   p.pushes, p.days_pushed
            FROM {{state}} s
            JOIN (
                SELECT c.opportunity_id, COUNT(*) AS pushes, SUM({pushed}) AS days_pushed
                FROM {CHANGES} c
                WHERE {self.pushes(ctx)}{ctx.ids("c.opportunity_id")}{reconsidered}
                GROUP BY c.opportunity_id
            ) p ON p.opportunity_id = s.id
            WHERE {OPEN} AND (p.pushes >= {int(self.params["times"])}
                              OR p.days_pushed > {int(self.params["days"])})"""

    def history(self, ctx: EvalContext) -> str:
        """The deal's pushes as a JSON array of {from, to, on}: by day, then old date, then the text
        "new@day" (the order the Python that built it before gave: its items sorted as text)."""
        on = as_text(ctx, date_of(ctx, "c.changed_at"))
        then = f"c.new_value || '@' || {on}"
        if ctx.vendor == "sqlite":
            # SQLite (before 3.44) has no ORDER BY inside an aggregate: the rows come ordered instead.
            push = "json_object('from', h.old_value, 'to', h.new_value, 'on', h.day)"
            return f"""(SELECT json_group_array({push})
                FROM (SELECT c.old_value, c.new_value, {on} AS day FROM {CHANGES} c
                      WHERE c.opportunity_id = f.id AND {self.pushes(ctx)}
                      ORDER BY day, c.old_value, {then}) h)"""
        order = ", ".join(f'({column}) COLLATE "C"' for column in (on, "c.old_value", then))
        return f"""(SELECT json_agg(json_build_object('from', c.old_value, 'to', c.new_value, 'on', {on})
                                    ORDER BY {order})
                FROM {CHANGES} c WHERE c.opportunity_id = f.id AND {self.pushes(ctx)})"""

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        days = "COALESCE(f.days_pushed, 0)"
        return {
            **DEAL,
            "summary": (
                f"f.name || ': close date pushed ' || {ctx.text('f.pushes')}"
                f" || ' time' || {plural('f.pushes')}"
                f" || ' (+' || {ctx.text(days)} || ' days) in the last '"
                f" || {ctx.literal(str(self.params['period_days']))} || ' days'"
            ),
            "evidence": ctx.json_object(
                {
                    "pushes": "f.pushes",
                    "days_pushed": days,
                    "history": self.history(ctx),
                    "close_date": ctx.iso_date("f.close_date"),
                    "limit_times": ctx.json_value(self.params["times"]),
                    "limit_days": ctx.json_value(self.params["days"]),
                    "period_days": ctx.json_value(self.params["period_days"]),
                    "as_of": as_of(ctx),
                }
            ),
        }


@register
class AmountChanged(SlidingWindow):
    key = "amount_changed"
    title = "Amount swung near close"
    explanation = (
        "An open deal's amount changed by more than {percent}% within {days} days of its close "
        "date (looked at over the last {period_days} days): late swings make the forecast unreliable."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"percent": 25, "days": 14, "period_days": 30}
    fix_minutes = 2
    window_field = "amount"

    def window_facts(self, ctx: EvalContext, reconsidered: str) -> str:
        start = ctx.ts(window_start(ctx, self.params["period_days"]))
        at = ctx.ts(ctx.as_of)
        old, new = ctx.cast("c.old_value", "num"), ctx.cast("c.new_value", "num")
        percent = float(self.params["percent"])
        # The close date as of the change: the latest close-date change up to it, else the old value
        # of the first one after it, else the current close date. (Computed once per change, and only
        # for the swings large enough to count: the fences keep the planner from copying the
        # expression into every use of close_then, and the amounts' casts to the amount changes,
        # in whatever order PostgreSQL checks the conditions.)
        close_then = f"""COALESCE(
            (SELECT d.new_value FROM {CHANGES} d WHERE d.opportunity_id = c.opportunity_id
               AND d.field = 'close_date' AND d.changed_at <= c.changed_at
             ORDER BY d.changed_at DESC, d.id DESC LIMIT 1),
            (SELECT d.old_value FROM {CHANGES} d WHERE d.opportunity_id = c.opportunity_id
               AND d.field = 'close_date' AND d.changed_at > c.changed_at
             ORDER BY d.changed_at, d.id LIMIT 1),
            (SELECT {as_text(ctx, "o.close_date")} FROM pipeline_opportunity o
             WHERE o.id = c.opportunity_id))"""
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
                        SELECT c.*, {close_then} AS close_then
                        FROM (
                            SELECT c.opportunity_id, {old} AS old_amount, {new} AS new_amount, c.changed_at
                            FROM {CHANGES} c
                            WHERE c.field = 'amount' AND c.old_value IS NOT NULL AND c.new_value IS NOT NULL
                              AND c.old_value <> '' AND c.new_value <> ''
                              AND c.changed_at > {start} AND c.changed_at <= {at}{ctx.ids("c.opportunity_id")}
                              {reconsidered}
                            {ctx.fence}
                        ) c
                        WHERE c.old_amount > 0
                          AND ABS(c.new_amount - c.old_amount) * 100 > {percent} * c.old_amount
                        {ctx.fence}
                    ) y
                    WHERE y.close_then IS NOT NULL AND y.close_then <> ''
                ) x
                WHERE x.days_to_close <= {int(self.params["days"])}
            ) w ON w.opportunity_id = s.id AND w.rn = 1
            WHERE {OPEN}"""

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        if ctx.vendor == "sqlite":
            # Amounts read back as binary floats: in whole cents the change is exact, and one
            # division rounds the percentage the way float(Decimal) did.
            old, new = (
                "CAST(ROUND(f.old_amount * 100) AS INTEGER)",
                "CAST(ROUND(f.new_amount * 100) AS INTEGER)",
            )
            percent = f"(({new} - {old}) * 100.0 / {old})"
        else:
            percent = "((f.new_amount - f.old_amount) * 100 / f.old_amount)"
        return [{"d_percent": percent}, {"d_tenths": round_tenths(ctx, "f.d_percent")}]

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        days = "f.days_to_close"
        percent = g_tenths(ctx, "f.d_tenths", plus=True, negative=f"{ctx.float8('f.d_percent')} < 0")
        old = thousands(ctx, round_int(ctx, "f.old_amount", exact=True))
        new = thousands(ctx, round_int(ctx, "f.new_amount", exact=True))
        return {
            **DEAL,
            "summary": (
                f"f.name || ': amount changed ' || {percent} || '% (' || {old} || ' → ' || {new} || ') '"
                f" || {ctx.text(days)} || ' day' || {plural(days)} || ' before the close date'"
            ),
            "evidence": ctx.json_object(
                {
                    "old_amount": ctx.text("f.old_amount"),
                    "new_amount": ctx.text("f.new_amount"),
                    "percent": tenths_value(ctx, "f.d_tenths"),
                    "changed_at": ctx.iso_timestamp("f.changed_at"),
                    "close_date_then": f"SUBSTR({as_text(ctx, 'f.close_then')}, 1, 10)",
                    "days_to_close": days,
                    "limit_percent": ctx.json_value(self.params["percent"]),
                    "limit_days": ctx.json_value(self.params["days"]),
                    "as_of": as_of(ctx),
                }
            ),
        }


class StageMoveRule(SlidingWindow):
    """Stage changes within a period, with the old and new stage's order; subclasses pick the bad ones."""

    default_severity = 2
    fix_minutes = 2
    window_field = "stage"

    def condition(self, ctx: EvalContext) -> str:
        raise NotImplementedError

    def window_facts(self, ctx: EvalContext, reconsidered: str) -> str:
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
                  {reconsidered} AND {self.condition(ctx)}
            ) m ON m.opportunity_id = s.id AND m.rn = 1
            WHERE {OPEN}"""

    def evidence(self, ctx: EvalContext) -> dict[str, str]:
        return {
            "from_stage": "f.old_stage",
            "to_stage": "f.new_stage",
            "changed_at": ctx.iso_timestamp("f.changed_at"),
            "period_days": ctx.json_value(self.params["period_days"]),
            "as_of": as_of(ctx),
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

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        return {
            **DEAL,
            "summary": "f.name || ': moved back from ' || f.old_stage || ' to ' || f.new_stage",
            "evidence": ctx.json_object(self.evidence(ctx)),
        }


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

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        evidence = self.evidence(ctx) | {
            "skipped": "f.skipped",
            "max_skipped": ctx.json_value(self.params["max_skipped"]),
        }
        return {
            **DEAL,
            "summary": (
                "f.name || ': jumped from ' || f.old_stage || ' to ' || f.new_stage || ', skipping '"
                f" || {ctx.text('f.skipped')} || ' stage' || {plural('f.skipped')}"
            ),
            "evidence": ctx.json_object(evidence),
        }


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
    reads_activities = True  # how many activities were logged before the close
    fix_minutes = 0  # nothing to fix afterwards: the lesson is for the next deal

    def early_order(self, ctx: EvalContext) -> int:
        """The order of the second open stage: a jump to won from it or earlier is a surprise."""
        stages = ctx.open_stages
        if not stages:
            return -1
        return stages[min(1, len(stages) - 1)].order

    def facts(self, ctx: EvalContext) -> str:
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
                  AND (a.deleted_at IS NULL OR a.deleted_at > w.won_at){ctx.ids("a.opportunity_id")}
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

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        return [
            {
                "d_days": round_int(ctx, "f.days_open"),
                "d_tenths": round_tenths(ctx, "f.days_open"),
                "d_short": (
                    f"CASE WHEN {ctx.float8('f.days_open')} < {float(self.params['min_days'])!r}"
                    " THEN 1 ELSE 0 END"
                ),
                "d_few": f"CASE WHEN f.activities < {int(self.params['min_activities'])} THEN 1 ELSE 0 END",
                "d_jumped": "CASE WHEN f.from_stage IS NOT NULL AND f.from_stage <> '' THEN 1 ELSE 0 END",
            }
        ]

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        reasons = joined(
            [
                (
                    "f.d_short = 1",
                    f"'in the CRM only ' || {ctx.text('f.d_days')} || ' day' || {plural('f.d_days')}",
                ),
                (
                    "f.d_few = 1",
                    f"{ctx.text('f.activities')} || ' activit' || {plural('f.activities', 'ies', 'y')}"
                    " || ' logged before close'",
                ),
                ("f.d_jumped = 1", "'jumped from ' || f.from_stage || ' straight to won'"),
            ],
            "; ",
        )
        return {
            **DEAL,
            "summary": f"f.name || ': surprise win (' || {reasons} || ')'",
            "evidence": ctx.json_object(
                {
                    "reasons": json_list(
                        ctx,
                        [
                            ("f.d_short = 1", "short_life"),
                            ("f.d_few = 1", "few_activities"),
                            ("f.d_jumped = 1", "jumped_to_won"),
                        ],
                    ),
                    "days_in_crm": tenths_value(ctx, "f.d_tenths"),
                    "activities_before_close": "f.activities",
                    "jumped_from_stage": "f.from_stage",
                    "created_at": ctx.iso_timestamp("f.created_at"),
                    "closed_at": ctx.iso_timestamp("f.closed_at"),
                    "min_days": ctx.json_value(self.params["min_days"]),
                    "min_activities": ctx.json_value(self.params["min_activities"]),
                    "window_days": ctx.json_value(self.params["window_days"]),
                    "as_of": as_of(ctx),
                }
            ),
        }
