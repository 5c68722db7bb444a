"""Rules about activities: logging lag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.activities.models import ActivityKind
from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Rule, not_captured
from truepipe.hygiene.rules.history import hours_diff, window_start
from truepipe.hygiene.rules.text import round_int, round_tenths, tenths_value

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext


@register
class LoggingLag(Rule):
    key = "logging_lag"
    title = "Activity logged late"
    explanation = (
        "An activity was logged more than {hours} hours after it happened (looked at over the "
        "last {window_days} days). Log calls and meetings the same day, while they still matter "
        "to the forecast. E-mail and calendar capture are never late."
    )
    default_severity = 1
    default_params: ClassVar[dict[str, Any]] = {"hours": 48, "window_days": 7}
    subject = "activity"
    event = True
    reads_activities = True
    reads_captured = False  # capture is never late
    fix_minutes = 0  # cannot be fixed afterwards; it expires when it leaves the window

    def facts(self, ctx: EvalContext) -> str:
        at = ctx.ts(ctx.as_of)
        start = ctx.ts(window_start(ctx, self.params["window_days"]))
        lag = hours_diff(ctx, "a.logged_at", "a.occurred_at")
        # The logged_at range comes first: an index on it keeps this to a week of activities.
        return f"""
            SELECT '{self.key}:a' || a.id AS key, a.id, a.owner_id, a.opportunity_id, a.kind,
                   a.subject, a.occurred_at, a.logged_at, {lag} AS lag_hours
            FROM activities_activity a
            WHERE a.logged_at > {start} AND a.logged_at <= {at}
              AND {not_captured("a.source")}
              AND (a.deleted_at IS NULL OR a.deleted_at > {at})
              AND {lag} > {float(self.params["hours"])}{ctx.ids("a.id", "activity")}"""

    def derived(self, ctx: EvalContext) -> list[dict[str, str]]:
        hours = ctx.float8("f.lag_hours")
        return [
            {
                "d_hours": round_int(ctx, hours),
                "d_days": round_int(ctx, f"{hours} / 24"),
                "d_tenths": round_tenths(ctx, hours),
            }
        ]

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        hours = ctx.float8("f.lag_hours")
        labels = " ".join(
            f"WHEN {ctx.literal(kind)} THEN {ctx.literal(str(label))}" for kind, label in ActivityKind.choices
        )
        late = (
            f"CASE WHEN {hours} >= 72 THEN {ctx.text('f.d_days')} || ' days'"
            f" ELSE {ctx.text('f.d_hours')} || ' hours' END"
        )
        return {
            "rep_id": "f.owner_id",
            "activity_id": "f.id",
            "summary": (
                f"CASE f.kind {labels} ELSE f.kind END || ' “' || f.subject || '” logged '"
                f" || {late} || ' after it happened'"
            ),
            "evidence": ctx.json_object(
                {
                    "opportunity_id": "f.opportunity_id",
                    "occurred_at": ctx.iso_timestamp("f.occurred_at"),
                    "logged_at": ctx.iso_timestamp("f.logged_at"),
                    "lag_hours": tenths_value(ctx, "f.d_tenths"),
                    "limit_hours": ctx.json_value(self.params["hours"]),
                    "window_days": ctx.json_value(self.params["window_days"]),
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }
