"""Rules about a rep's day: the missed daily update."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from truepipe.core.bulk import copy_rows
from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Rule, as_datetime, not_captured, rows
from truepipe.hygiene.rules.text import plural
from truepipe.people.models import SalesProfile, default_working_days
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

# The rep-day windows to check, one row each (a temporary table while the rule runs).
WINDOWS_TABLE = "hy_windows"


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

    "Had open deals" means: the rep owned deals that were open as the day began (created
    before it, not yet won or lost), whatever became of them since. Any opportunity change made
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
        """(rep, day, local day start, local cut-off, time zone, open deals) for each day to check.

        A day counts when the rep owned open deals as that day began: deals open now and
        older than the look-back are counted per rep in SQL; the few created or closed within
        the look-back are read to tell, day by day, whether they were open yet (or still).
        """
        wanted = int(self.params["working_days"])
        lookback = ctx.as_of - dt.timedelta(days=7 * wanted + 8)
        since = ctx.ts(lookback)
        open_kind = StageKind.OPEN.value
        settled: dict[int, int] = {
            int(owner): int(count)
            for owner, count in rows(
                ctx,
                f"""SELECT s.owner_id, COUNT(*) FROM {{state}} s
                    WHERE s.stage_kind = '{open_kind}' AND s.created_at <= {since} GROUP BY s.owner_id""",
            )
        }
        # Per rep, the recent deals' openings and closings, sorted: the deals open as a day began
        # are those opened by then less those closed by then (two binary searches per day). A
        # deal closed before it was created (imported so) was never open: left out.
        opened: dict[int, list[dt.datetime]] = {}
        closed_by: dict[int, list[dt.datetime]] = {}
        for owner, created, closed, is_open in rows(
            ctx,
            f"""SELECT s.owner_id, s.created_at, s.closed_at,
                       CASE WHEN s.stage_kind = '{open_kind}' THEN 1 ELSE 0 END
                FROM {{state}} s
                WHERE (s.stage_kind = '{open_kind}' AND s.created_at > {since})
                   OR (s.stage_kind <> '{open_kind}' AND s.closed_at > {since})""",
        ):
            created_at = as_datetime(created)
            if created_at is None:
                continue
            ends = None if is_open else as_datetime(closed)
            if ends is not None and ends <= created_at:
                continue
            opened.setdefault(int(owner), []).append(created_at)
            if ends is not None:
                closed_by.setdefault(int(owner), []).append(ends)
        for moments in (*opened.values(), *closed_by.values()):
            moments.sort()
        owners = set(settled) | set(opened)
        if not owners:
            return []
        cutoff = parse_cutoff(self.params["cutoff"])
        profiles = {
            user_id: (zone, days)
            for user_id, zone, days in SalesProfile.objects.filter(user_id__in=owners).values_list(
                "user_id", "time_zone", "working_days"
            )
        }
        result = []
        # Reps share a few time zones: each zone's days (and their bounds) are worked out once.
        days_of: dict[str, list[tuple[dt.date, dt.datetime, dt.datetime]]] = {}
        for rep in owners:
            zone_name, working = profiles.get(rep, ("UTC", default_working_days()))
            working_days = {int(day) for day in (working or [])}
            if not working_days:
                continue
            days = days_of.get(zone_name)
            if days is None:
                days = days_of[zone_name] = self._days(ctx, zone_of(zone_name), cutoff, 7 * wanted + 7)
            found = 0
            for day, starts, ends in days:  # a few calendar days; stops after `wanted` working days
                if day.weekday() in working_days and ends <= ctx.as_of:
                    found += 1
                    open_deals = (
                        settled.get(rep, 0)
                        + bisect_right(opened.get(rep, ()), starts)
                        - bisect_right(closed_by.get(rep, ()), starts)
                    )
                    if open_deals:
                        result.append((rep, day, starts, ends, zone_name or "UTC", open_deals))
                    if found >= wanted:
                        break
        return result

    @staticmethod
    def _days(
        ctx: EvalContext, zone: dt.tzinfo, cutoff: dt.time, count: int
    ) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
        """The `count` calendar days of a time zone up to the moment's, latest first, each with
        its local start and cut-off."""
        day = ctx.as_of.astimezone(zone).date()
        days = []
        for _ in range(count):
            days.append(
                (
                    day,
                    dt.datetime.combine(day, dt.time.min, tzinfo=zone),
                    dt.datetime.combine(day, cutoff, tzinfo=zone),
                )
            )
            day -= dt.timedelta(days=1)
        return days

    @contextmanager
    def prepared(self, ctx: EvalContext) -> Iterator[None]:
        """The windows, with their local labels (time zones are Python's), in a temporary table."""
        sqlite = ctx.vendor == "sqlite"
        types = (
            ("INTEGER", "TEXT", "TEXT", "TEXT")
            if sqlite
            else ("BIGINT", "DATE", "TIMESTAMPTZ", "TIMESTAMPTZ")
        )
        from django.db import connection

        adapted: dict[dt.datetime, Any] = {}  # the windows share a few hundred bounds

        def adapt(value: dt.datetime) -> Any:
            text = adapted.get(value)
            if text is None:
                text = adapted[value] = connection.ops.adapt_datetimefield_value(value)
            return text

        # A window's local labels, by zone and day (the same instant reads differently per zone).
        labels: dict[tuple[str, dt.date], tuple[str, str, str]] = {}

        def label(zone_name: str, day: dt.date, ends: dt.datetime) -> tuple[str, str, str]:
            found = labels.get((zone_name, day))
            if found is None:
                found = labels[(zone_name, day)] = (f"{day:%a %b %d}", f"{ends:%H:%M}", ends.isoformat())
            return found

        rows_in = [
            (
                rep,
                day.isoformat() if sqlite else day,
                adapt(starts) if sqlite else starts,
                adapt(ends) if sqlite else ends,
                *label(zone_name, day, ends)[:2],
                zone_name,
                open_deals,
                label(zone_name, day, ends)[2],
            )
            for rep, day, starts, ends, zone_name, open_deals in self.windows(ctx)
        ]
        with ctx.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {WINDOWS_TABLE}")
            cursor.execute(
                f"""CREATE TEMPORARY TABLE {WINDOWS_TABLE} (
                    rep_id {types[0]}, day {types[1]}, starts {types[2]}, ends {types[3]}, day_label TEXT,
                    cutoff TEXT, time_zone TEXT, open_deals INTEGER, cutoff_at TEXT)"""
            )
            if rows_in and sqlite:
                cursor.executemany(
                    f"INSERT INTO {WINDOWS_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows_in
                )
            elif rows_in:
                # By COPY: 25,000 windows (5,000 reps) took half a second as single-row INSERTs.
                copy_rows(WINDOWS_TABLE, rows_in)
            if not sqlite:
                cursor.execute(f"ANALYZE {WINDOWS_TABLE}")
        try:
            yield
        finally:
            with ctx.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {WINDOWS_TABLE}")

    def facts(self, ctx: EvalContext) -> str:
        """The windows in which the rep logged nothing, changed no deal and created none (captured
        e-mail and meetings are not the rep's updates)."""
        return f"""
            SELECT '{self.key}:r' || w.rep_id || ':' || {ctx.iso_date("w.day")} AS key, w.*
            FROM {WINDOWS_TABLE} w
            WHERE NOT EXISTS (SELECT 1 FROM activities_activity a WHERE a.owner_id = w.rep_id
                                AND a.logged_at >= w.starts AND a.logged_at < w.ends
                                AND {not_captured("a.source")})
              AND NOT EXISTS (SELECT 1 FROM pipeline_opportunitychange c WHERE c.changed_by_id = w.rep_id
                                AND c.changed_at >= w.starts AND c.changed_at < w.ends)
              AND NOT EXISTS (SELECT 1 FROM pipeline_opportunity o WHERE o.owner_id = w.rep_id
                                AND o.created_at >= w.starts AND o.created_at < w.ends)"""

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        return {
            "rep_id": "f.rep_id",
            "day": "f.day",
            "summary": (
                "'No CRM update on ' || f.day_label || ' before ' || f.cutoff"
                " || ' (' || f.time_zone || ') with '"
                f" || {ctx.text('f.open_deals')} || ' open deal' || {plural('f.open_deals')}"
            ),
            "evidence": ctx.json_object(
                {
                    "day": ctx.iso_date("f.day"),
                    "cutoff": "f.cutoff",
                    "time_zone": "f.time_zone",
                    "open_deals": "f.open_deals",
                    "cutoff_at": "f.cutoff_at",
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }
