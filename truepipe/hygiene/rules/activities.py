"""Rules about activities: logging lag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.activities.models import ActivityKind, ActivitySource
from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Finding, Rule, as_datetime, iso
from truepipe.hygiene.rules.history import hours_diff, window_start

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

# Captured automatically when it happened: never late.
CAPTURED = (ActivitySource.EMAIL.value, ActivitySource.CALENDAR.value)


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
    fix_minutes = 0  # cannot be fixed afterwards; it expires when it leaves the window

    def query(self, ctx: EvalContext) -> str:
        at = ctx.ts(ctx.as_of)
        start = ctx.ts(window_start(ctx, self.params["window_days"]))
        lag = hours_diff(ctx, "a.logged_at", "a.occurred_at")
        captured = ", ".join(f"'{source}'" for source in CAPTURED)
        # The logged_at range comes first: an index on it keeps this to a week of activities.
        return f"""
            SELECT '{self.key}:a' || a.id AS key, a.id, a.owner_id, a.opportunity_id, a.kind,
                   a.subject, a.occurred_at, a.logged_at, {lag} AS lag_hours
            FROM activities_activity a
            WHERE a.logged_at > {start} AND a.logged_at <= {at}
              AND a.source NOT IN ({captured})
              AND (a.deleted_at IS NULL OR a.deleted_at > {at})
              AND {lag} > {float(self.params["hours"])}{ctx.ids("a.id", "activity")}"""

    def finding(self, ctx: EvalContext, row: dict[str, Any]) -> Finding:
        hours = float(row["lag_hours"])
        occurred, logged = as_datetime(row["occurred_at"]), as_datetime(row["logged_at"])
        late = f"{hours / 24:.0f} days" if hours >= 72 else f"{hours:.0f} hours"
        label = ActivityKind(row["kind"]).label if row["kind"] in ActivityKind.values else row["kind"]
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            activity_id=row["id"],
            summary=f"{label} “{row['subject']}” logged {late} after it happened",
            evidence={
                "opportunity_id": row["opportunity_id"],
                "occurred_at": iso(occurred),
                "logged_at": iso(logged),
                "lag_hours": round(hours, 1),
                "limit_hours": self.params["hours"],
                "window_days": self.params["window_days"],
                "as_of": iso(ctx.as_of),
            },
        )
