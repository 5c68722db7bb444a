"""Rules about a rep's day: the missed daily update."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Finding, Rule, as_datetime, iso, rows
from truepipe.people.models import SalesProfile, default_working_days
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

# SQLite refuses compound SELECTs of more than 500 terms: the rep-day windows go in chunks.
WINDOWS_PER_QUERY = 400


def zone_of(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def parse_cutoff(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(text))
    except ValueError:
        return dt.time(18, 0)


@register
class MissedDailyUpdate(Rule):
    """A working day without a single update from a rep who owns open deals.

    "Had open deals" means: the rep owns open deals as of the evaluation moment, and
    the oldest of them already existed when the day began. Any opportunity change made
    by the rep, any activity they logged, or a deal they created before their local
    cut-off counts as the day's update.
    """

    key = "missed_daily_update"
    title = "Missed daily update"
    explanation = (
        "On a working day a rep with open deals should update the CRM (edit a deal or log an "
        "activity) before {cutoff} their time. Counts over the last {working_days} working days."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"cutoff": "18:00", "working_days": 5}
    subject = "rep_day"
    event = True
    incremental = False
    fix_minutes = 0

    def windows(self, ctx: EvalContext) -> list[tuple[int, dt.date, dt.datetime, dt.datetime, str, int]]:
        """(rep, day, local day start, local cut-off, time zone, open deals) for each day to check."""
        owners = {
            int(owner): (int(count), as_datetime(oldest))
            for owner, count, oldest in rows(
                ctx,
                f"""SELECT s.owner_id, COUNT(*), MIN(s.created_at) FROM {{state}} s
                    WHERE s.stage_kind = '{StageKind.OPEN.value}' GROUP BY s.owner_id""",
            )
        }
        if not owners:
            return []
        cutoff = parse_cutoff(self.params["cutoff"])
        wanted = int(self.params["working_days"])
        profiles = {
            user_id: (zone, days)
            for user_id, zone, days in SalesProfile.objects.filter(user_id__in=owners).values_list(
                "user_id", "time_zone", "working_days"
            )
        }
        result = []
        for rep, (open_deals, oldest) in owners.items():
            zone_name, working = profiles.get(rep, ("UTC", default_working_days()))
            zone = zone_of(zone_name)
            working_days = {int(day) for day in (working or [])}
            if not working_days:
                continue
            day = ctx.as_of.astimezone(zone).date()
            found = 0
            for _ in range(7 * wanted + 7):  # a few calendar days; stops after `wanted` working days
                starts = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
                ends = dt.datetime.combine(day, cutoff, tzinfo=zone)
                if day.weekday() in working_days and ends <= ctx.as_of:
                    found += 1
                    if oldest is not None and oldest <= starts:
                        result.append((rep, day, starts, ends, zone_name or "UTC", open_deals))
                    if found >= wanted:
                        break
                day -= dt.timedelta(days=1)
        return result

    def find(self, ctx: EvalContext) -> Iterable[Finding]:
        windows = self.windows(ctx)
        updated: set[tuple[int, str]] = set()
        for start in range(0, len(windows), WINDOWS_PER_QUERY):
            chunk = windows[start : start + WINDOWS_PER_QUERY]
            values = " UNION ALL ".join(
                f"SELECT {int(rep)} AS rep_id, '{day.isoformat()}' AS day, "
                f"{ctx.ts(starts)} AS starts, {ctx.ts(ends)} AS ends"
                for rep, day, starts, ends, _, _ in chunk
            )
            sql = f"""
                SELECT w.rep_id, w.day FROM ({values}) w
                WHERE EXISTS (SELECT 1 FROM activities_activity a WHERE a.owner_id = w.rep_id
                                AND a.logged_at >= w.starts AND a.logged_at < w.ends)
                   OR EXISTS (SELECT 1 FROM pipeline_opportunitychange c WHERE c.changed_by_id = w.rep_id
                                AND c.changed_at >= w.starts AND c.changed_at < w.ends)
                   OR EXISTS (SELECT 1 FROM pipeline_opportunity o WHERE o.owner_id = w.rep_id
                                AND o.created_at >= w.starts AND o.created_at < w.ends)"""
            updated.update((int(rep), str(day)[:10]) for rep, day in rows(ctx, sql))
        for rep, day, _, ends, zone_name, open_deals in windows:
            if (rep, day.isoformat()) in updated:
                continue
            yield Finding(
                key=f"{self.key}:r{rep}:{day.isoformat()}",
                rep_id=rep,
                day=day,
                summary=(
                    f"No CRM update on {day:%a %b %d} before {ends:%H:%M} ({zone_name}) "
                    f"with {open_deals} open deal{'s' if open_deals != 1 else ''}"
                ),
                evidence={
                    "day": day.isoformat(),
                    "cutoff": f"{ends:%H:%M}",
                    "time_zone": zone_name,
                    "open_deals": open_deals,
                    "cutoff_at": iso(ends),
                    "as_of": iso(ctx.as_of),
                },
            )
