"""Per-rep numbers for the demo summary: who sells, who keeps the data.

Read as a viewer sees it (`visible(viewer, ...)`), normally the VP, so the
summary never reaches past what that person may see.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from truepipe.activities.models import Activity
from truepipe.core.visibility import visible, visible_users
from truepipe.people.models import Quota, Role
from truepipe.pipeline.models import Opportunity, StageKind

SURPRISE_DAYS = 14


@dataclass
class RepStats:
    username: str
    full_name: str
    team: str
    manager: str
    open_deals: int
    won_value: Decimal
    quota: Decimal
    won: int
    lost: int
    activities: int
    median_lag_hours: float | None
    surprise_wins: int

    @property
    def attainment(self) -> float | None:
        return float(self.won_value / self.quota * 100) if self.quota else None

    @property
    def win_rate(self) -> float | None:
        closed = self.won + self.lost
        return self.won / closed * 100 if closed else None

    @property
    def surprise_share(self) -> float | None:
        return self.surprise_wins / self.won * 100 if self.won else None


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def rep_stats(viewer, since: date, until: date) -> list[RepStats]:
    """Numbers for every rep `viewer` can see, over [since, until] (both days included)."""
    start, end = _moment(since), _moment(until + timedelta(days=1))
    reps = list(
        visible_users(viewer)
        .filter(profile__role=Role.REP)
        .select_related("profile__team", "profile__manager")
        .order_by("profile__team__name", "username")
    )
    rows: dict[int, RepStats] = {}
    for user in reps:
        profile = user.profile
        rows[user.pk] = RepStats(
            username=user.username,
            full_name=user.get_full_name(),
            team=profile.team.name if profile.team else "",
            manager=profile.manager.username if profile.manager else "",
            open_deals=0,
            won_value=Decimal(0),
            quota=Decimal(0),
            won=0,
            lost=0,
            activities=0,
            median_lag_hours=None,
            surprise_wins=0,
        )
    deals = visible(viewer, Opportunity).filter(owner__in=rows.keys())
    for owner_id, kind, amount, created_at, closed_at in deals.values_list(
        "owner_id", "stage__kind", "amount", "created_at", "closed_at"
    ):
        row = rows[owner_id]
        if kind == StageKind.OPEN:
            if created_at < end:
                row.open_deals += 1
            continue
        if closed_at is None or not start <= closed_at < end:
            continue
        if kind == StageKind.WON:
            row.won += 1
            row.won_value += amount or 0
            if closed_at - created_at < timedelta(days=SURPRISE_DAYS):
                row.surprise_wins += 1
        else:
            row.lost += 1
    lags: dict[int, list[float]] = defaultdict(list)
    activities = visible(viewer, Activity).filter(
        owner__in=rows.keys(), occurred_at__gte=start, occurred_at__lt=end
    )
    for owner_id, occurred_at, logged_at in activities.values_list("owner_id", "occurred_at", "logged_at"):
        lags[owner_id].append((logged_at - occurred_at).total_seconds() / 3600)
    for owner_id, values in lags.items():
        rows[owner_id].activities = len(values)
        rows[owner_id].median_lag_hours = statistics.median(values)
    for quota in Quota.objects.filter(user__in=rows.keys()):
        overlap = (min(quota.period_end, until) - max(quota.period_start, since)).days + 1
        if overlap > 0:
            period = (quota.period_end - quota.period_start).days + 1
            rows[quota.user_id].quota += quota.amount * overlap / period
    return list(rows.values())
