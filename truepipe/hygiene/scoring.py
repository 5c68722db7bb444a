"""Discipline scores: what each live violation costs a rep, and the daily, period and team scores.

The definition (see docs/scoring.md):

- a violation costs its severity's points (policy ``scoring.severity_points``),
  times, for deal-level rules, a value weight: the deal's amount over the
  median open deal amount that day, clamped to [value_weight_min, value_weight_max];
- a rep's daily capacity is ``points_per_open_deal`` x open deals + ``points_per_rep_day``;
- the daily score is 100 x (1 - min(1, points lost / capacity)), rounded to 0.1;
- a violation counts on a day if it was open at the end of it: opened by then
  and not closed (resolved, expired or waived) by then;
- the period score is the mean of the daily scores (written on the rep's working
  days only); a team's score is the mean of its reps' period scores.

Everything is set-based: `record_scores` is a handful of statements for the
whole organisation; `scorecard` is a few aggregate queries whatever the head count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone

from truepipe.hygiene.models import RepScore, Severity, Violation, ViolationStatus
from truepipe.hygiene.policy import DEFAULT_SCORING, Policy
from truepipe.people.models import Role, SalesProfile
from truepipe.pipeline.models import Opportunity, Stage, StageKind

OPEN_TABLE = "hy_score_open"
DEALS_TABLE = "hy_score_deals"
LOST_TABLE = "hy_score_lost"
WORST_TABLE = "hy_score_worst"


def scoring_settings(policy: Policy) -> dict[str, Any]:
    merged = dict(DEFAULT_SCORING)
    merged.update(policy.section("scoring") or {})
    points = dict(DEFAULT_SCORING["severity_points"])
    points.update({str(k): v for k, v in (merged.get("severity_points") or {}).items()})
    merged["severity_points"] = points
    return merged


def severity_points(settings: dict[str, Any], severity: int) -> float:
    return float(settings["severity_points"].get(str(int(severity)), 0))


def value_weight(settings: dict[str, Any], amount: Any, median: float | None, deal_level: bool) -> float:
    """The multiplier a deal-level violation carries for the deal's size (1 when unweighted)."""
    if not deal_level or not settings.get("value_weighting", True) or not median or amount is None:
        return 1.0
    weight = float(amount) / median
    return min(float(settings["value_weight_max"]), max(float(settings["value_weight_min"]), weight))


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _num(value: float) -> str:
    return repr(float(value))


PER_RULE_TABLE = "hy_per_rule"


def record_scores(ctx: Any, *, materialised: bool = False) -> None:
    """Write every rep's RepScore for ctx.day (delete then insert, one transaction: idempotent).

    Reps are people with the rep role, plus managers who own open deals that day,
    and only on their working days. Open deals are the as-of state of the engine:
    its materialised table when the caller built it (`materialised`), else computed here.
    """
    from truepipe.hygiene.engine import state_sql

    state = ctx.state if materialised else f"({state_sql(ctx)})"

    settings = scoring_settings(ctx.policy)
    day = ctx.day
    at = ctx.ts(ctx.as_of)
    with transaction.atomic(), ctx.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {OPEN_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {OPEN_TABLE} AS "
            f"SELECT s.id, s.owner_id, s.amount FROM {state} s WHERE s.stage_kind = 'open'"
        )
        # Open deals per owner, keyed: joined as a subquery, SQLite compared every person with every
        # owner's count (25 M comparisons, 2.4 s for 5,000 reps).
        cursor.execute(f"DROP TABLE IF EXISTS {DEALS_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {DEALS_TABLE} (owner_id BIGINT PRIMARY KEY, n INTEGER NOT NULL)"
        )
        cursor.execute(
            f"INSERT INTO {DEALS_TABLE} (owner_id, n) SELECT owner_id, COUNT(*) FROM {OPEN_TABLE}"
            " WHERE owner_id IS NOT NULL GROUP BY owner_id"
        )
        if ctx.vendor == "postgresql":
            # The same median (the mean of the middle two of an even count), sorted by the server:
            # fetching a million amounts to sort them here took half a second.
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(amount AS DOUBLE PRECISION))"
                f" FROM {OPEN_TABLE} WHERE amount IS NOT NULL"
            )
            (middle,) = cursor.fetchone()
            median = None if middle is None else float(middle)
        else:
            cursor.execute(f"SELECT amount FROM {OPEN_TABLE} WHERE amount IS NOT NULL")
            median = _median([float(row[0]) for row in cursor.fetchall()])
        # The per-violation cost, in SQL.
        sev = (
            "CASE severity "
            + " ".join(
                f"WHEN {int(level)} THEN {_num(severity_points(settings, level))}"
                for level in Severity.values
            )
            + " ELSE 0 END"
        )
        if settings.get("value_weighting", True) and median:
            ratio = f"(CAST(v.amt AS NUMERIC) / {_num(median)})"
            low, high = _num(settings["value_weight_min"]), _num(settings["value_weight_max"])
            weight = (
                f"CASE WHEN v.opportunity_id IS NULL OR v.amt IS NULL THEN 1.0 "
                f"ELSE {ctx.greatest(low, ctx.least(high, ratio))} END"
            )
        else:
            weight = "1.0"
        per_deal, per_day = _num(settings["points_per_open_deal"]), _num(settings["points_per_rep_day"])
        weekday = str(day.weekday())
        working = (
            "p.working_days LIKE %s" if ctx.vendor == "sqlite" else "CAST(p.working_days AS TEXT) LIKE %s"
        )
        cursor.execute("DELETE FROM hygiene_repscore WHERE day = %s", [day])
        lost = "COALESCE(vl.lost, 0)"
        capacity = f"({per_deal} * COALESCE(d.n, 0) + {per_day})"
        # The violations open at the moment, by rep, rule and severity (one scan: their value
        # weights summed, the severity's points applied per group), then per rep: points lost,
        # counts by severity, and the worst rule (most high-severity ones, then most, then the
        # name, as `scorecard` ranks them).
        # The deal's amount is looked up only where the violation did not keep one: most did, and
        # a lookup into the deals for each of millions of violations was most of the cost.
        # Counting at the moment: open (and opened by then), or closed only after it. The status is
        # written into the SQL, so SQLite reads the open ones from their partial index alone; those
        # closed after the moment are found by when they closed (none, for a night run on time).
        # Each of the two is grouped on its own: the open ones stream in their index's order
        # (rep, rule, severity) with no sort; grouping their union instead sorted millions of rows.
        is_open = f"v.status = '{ViolationStatus.OPEN.value}'"
        grouped = [
            f"""SELECT v.rep_id, v.rule, v.severity, SUM({weight}) AS weight, COUNT(*) AS n
                FROM (
                    SELECT v.rep_id, v.rule, v.severity, v.opportunity_id,
                           COALESCE(v.amount, (SELECT o.amount FROM pipeline_opportunity o
                                               WHERE o.id = v.opportunity_id)) AS amt
                    FROM hygiene_violation v WHERE {where} AND v.opened_at <= {at}
                ) v
                GROUP BY v.rep_id, v.rule, v.severity"""
            for where in (is_open, f"v.closed_at > {at} AND NOT {is_open}")
        ]
        cursor.execute(f"DROP TABLE IF EXISTS {PER_RULE_TABLE}")
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE {PER_RULE_TABLE} AS
            SELECT g.rep_id, g.rule, g.severity, SUM(g.weight) AS weight, SUM(g.n) AS n
            FROM ({grouped[0]} UNION ALL {grouped[1]}) g
            GROUP BY g.rep_id, g.rule, g.severity"""
        )
        # Per rep, each into a table keyed by the rep, so the last statement joins people to them by
        # key (joined as subqueries, SQLite compared every person with every row of them).
        cursor.execute(f"DROP TABLE IF EXISTS {LOST_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {LOST_TABLE} (rep_id BIGINT PRIMARY KEY, lost DOUBLE PRECISION,"
            " n INTEGER, high INTEGER, medium INTEGER, low INTEGER)"
        )
        by_severity = ", ".join(f"SUM(CASE WHEN severity = {level} THEN n ELSE 0 END)" for level in (3, 2, 1))
        cursor.execute(
            f"""
            INSERT INTO {LOST_TABLE} (rep_id, lost, n, high, medium, low)
            SELECT rep_id, SUM({sev} * weight), SUM(n), {by_severity}
            FROM {PER_RULE_TABLE} GROUP BY rep_id"""
        )
        cursor.execute(f"DROP TABLE IF EXISTS {WORST_TABLE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {WORST_TABLE} (rep_id BIGINT PRIMARY KEY, rule VARCHAR(40))")
        cursor.execute(
            f"""
            INSERT INTO {WORST_TABLE} (rep_id, rule)
            SELECT rep_id, rule FROM (
                SELECT rep_id, rule, ROW_NUMBER() OVER (
                    PARTITION BY rep_id ORDER BY high DESC, n DESC, rule DESC) AS rn
                FROM (
                    SELECT rep_id, rule, SUM(CASE WHEN severity = 3 THEN n ELSE 0 END) AS high, SUM(n) AS n
                    FROM {PER_RULE_TABLE} GROUP BY rep_id, rule
                ) r
            ) w WHERE rn = 1"""
        )
        cursor.execute(
            f"""
            INSERT INTO hygiene_repscore
                (rep_id, day, score, points_lost, capacity, open_deals, open_violations,
                 high, medium, low, worst_rule, policy_version, computed_at)
            SELECT p.user_id, %s,
                   CASE WHEN {capacity} <= 0 OR {lost} >= {capacity} THEN 0
                        ELSE ROUND(CAST(100 * (1 - {lost} / {capacity}) AS NUMERIC), 1) END,
                   ROUND(CAST({lost} AS NUMERIC), 2), {capacity}, COALESCE(d.n, 0),
                   COALESCE(vl.n, 0), COALESCE(vl.high, 0), COALESCE(vl.medium, 0), COALESCE(vl.low, 0),
                   COALESCE(w.rule, ''), %s, %s
            FROM people_salesprofile p
            JOIN auth_user u ON u.id = p.user_id
            LEFT JOIN {DEALS_TABLE} d ON d.owner_id = p.user_id
            LEFT JOIN {LOST_TABLE} vl ON vl.rep_id = p.user_id
            LEFT JOIN {WORST_TABLE} w ON w.rep_id = p.user_id
            WHERE u.is_active AND {working}
              AND (p.role = %s OR (p.role = %s AND COALESCE(d.n, 0) > 0))""",
            [day, ctx.policy.version, timezone.now(), f"%{weekday}%", Role.REP, Role.MANAGER],
        )
        for table in (PER_RULE_TABLE, LOST_TABLE, WORST_TABLE, DEALS_TABLE, OPEN_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------- reading scores


def current_median_open_amount() -> float | None:
    amounts = Opportunity.objects.filter(
        deleted_at__isnull=True, stage__kind=StageKind.OPEN, amount__isnull=False
    ).values_list("amount", flat=True)
    return _median([float(a) for a in amounts if a is not None])


def violation_costs(violations: list[Violation], policy: Policy) -> dict[int, float]:
    """What each (currently counting) violation costs, with today's median open deal amount."""
    settings = scoring_settings(policy)
    median = current_median_open_amount()
    costs = {}
    for v in violations:
        amount = v.amount if v.amount is not None else getattr(v.opportunity, "amount", None)
        weight = value_weight(settings, amount, median, v.opportunity_id is not None)
        costs[v.pk] = round(severity_points(settings, v.severity) * weight, 2)
    return costs


def period_bounds(as_of: dt.date, days: int) -> tuple[dt.date, dt.date, dt.date]:
    """(previous period start, period start, end): the period is the `days` days ending on as_of."""
    start = as_of - dt.timedelta(days=days - 1)
    return start - dt.timedelta(days=days), start, as_of


def _round(value: Any) -> float | None:
    if value is None:
        return None
    return float(Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


@dataclass
class ScoreRow:
    user_id: int
    username: str
    name: str
    manager: str
    path: str
    is_team: bool = False
    score: float | None = None
    previous: float | None = None
    low: int = 0
    medium: int = 0
    high: int = 0
    worst_rule: str = ""
    open_deals: int = 0
    reps: int = 1
    trend: list[tuple[dt.date, float]] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        if self.score is None or self.previous is None:
            return None
        return round(self.score - self.previous, 1)

    @property
    def open_violations(self) -> int:
        return self.low + self.medium + self.high

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "name": self.name,
            "manager": self.manager,
            "team": self.is_team,
            "reps": self.reps,
            "score": self.score,
            "previous": self.previous,
            "change": self.change,
            "violations_high": self.high,
            "violations_medium": self.medium,
            "violations_low": self.low,
            "worst_rule": self.worst_rule,
            "open_deals": self.open_deals,
        }


def _name(first: str, last: str, username: str) -> str:
    return f"{first} {last}".strip() or username


def scored_people(under_path: str | None = None):
    """Profiles of the people scored (reps; managers with score rows), optionally under a path."""
    qs = SalesProfile.objects.filter(user__is_active=True).filter(
        Q(role=Role.REP) | Q(role=Role.MANAGER, user__scores__isnull=False)
    )
    if under_path:
        qs = qs.filter(path__startswith=under_path)
    return qs.distinct()


def scorecard(
    people,
    as_of: dt.date,
    days: int,
    *,
    with_trend: bool = False,
    teams: bool = True,
    under_path: str | None = None,
) -> list[ScoreRow]:
    """One row per person in `people` (a SalesProfile queryset), then team roll-ups (a few queries)."""
    User = get_user_model()
    previous_start, start, end = period_bounds(as_of, days)
    # Plain tuples, not model instances: thousands of people are read on every scorecard.
    profiles = people.select_related("user", "manager").order_by("path")
    rows = {
        user_id: ScoreRow(
            user_id=user_id,
            username=username,
            name=_name(first, last, username),
            manager=_name(m_first or "", m_last or "", m_username) if m_username else "",
            path=path,
        )
        for user_id, path, username, first, last, m_username, m_first, m_last in profiles.values_list(
            "user_id",
            "path",
            "user__username",
            "user__first_name",
            "user__last_name",
            "manager__username",
            "manager__first_name",
            "manager__last_name",
        )
    }
    if not rows:
        return []
    scope = people.values("user_id")
    scores = RepScore.objects.filter(rep_id__in=scope)
    for entry in (
        scores.filter(day__gte=previous_start, day__lte=end)
        .values("rep_id")
        .annotate(now=Avg("score", filter=Q(day__gte=start)), before=Avg("score", filter=Q(day__lt=start)))
    ):
        row = rows.get(entry["rep_id"])
        if row:
            row.score, row.previous = _round(entry["now"]), _round(entry["before"])
    if with_trend:
        for rep_id, day, score in (
            scores.filter(day__gte=start, day__lte=end).order_by("day").values_list("rep_id", "day", "score")
        ):
            if rep_id in rows:
                rows[rep_id].trend.append((day, float(score)))
    # Open violations by severity and the worst rule, as the latest evaluation up to the period's
    # end recorded them with each rep's score (counting millions of violations live would take
    # seconds); people scored before those were recorded, or never, are counted live.
    recorded = scores.filter(day__lte=end, day__gt=end - dt.timedelta(days=RECENT_DAYS), high__isnull=False)
    known: set[int] = set()
    for rep_id, high, medium, low, worst_rule, open_deals in recorded.order_by("day").values_list(
        "rep_id", "high", "medium", "low", "worst_rule", "open_deals"
    ):
        row = rows.get(rep_id)
        if row:
            row.high, row.medium, row.low, row.worst_rule = high or 0, medium or 0, low or 0, worst_rule
            row.open_deals = open_deals
            known.add(rep_id)
    unknown = [row for rep_id, row in rows.items() if rep_id not in known]
    _count_live(unknown)
    if unknown:
        # The open stages as a list, not a join: the count then reads one index of the live deals
        # (owner, close date, stage) alone, a quarter of the time of looking up every deal's row.
        deals = Opportunity.objects.filter(
            deleted_at__isnull=True, stage_id__in=Stage.objects.filter(kind=StageKind.OPEN).values("id")
        )
        ids = [row.user_id for row in unknown]
        if len(ids) <= 1000:
            deals = deals.filter(owner_id__in=ids)
        for owner_id, n in deals.values("owner_id").annotate(n=Count("*")).values_list("owner_id", "n"):
            if owner_id in rows and owner_id not in known:
                rows[owner_id].open_deals = n
    result = list(rows.values())
    if teams:
        result += _team_rows(result, User, under_path)
    return result


# How far back the scorecard looks for a rep's latest recorded counts.
RECENT_DAYS = 14


def _count_live(rows: list[ScoreRow]) -> None:
    """Counts by severity and the worst rule (most high-severity, then most) from the open
    violations themselves, for a few people (one grouped, index-only read)."""
    if not rows:
        return
    by_id = {row.user_id: row for row in rows}
    worst: dict[int, dict[str, tuple[int, int]]] = {}
    # The status is written into the SQL, not bound: SQLite reads a partial index alone only when
    # the query's condition is its own word for word (bound, it checked every row's status in the
    # table: seconds for 5,000 reps, where the index alone takes a fraction of one).
    reps = ", ".join(str(int(pk)) for pk in by_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rep_id, rule, severity, COUNT(*) FROM hygiene_violation"
            f" WHERE status = '{ViolationStatus.OPEN.value}' AND rep_id IN ({reps})"
            " GROUP BY rep_id, rule, severity"
        )
        counts = cursor.fetchall()
    for rep_id, rule, severity, n in counts:
        row = by_id[rep_id]
        attr = {1: "low", 2: "medium", 3: "high"}[severity]
        setattr(row, attr, getattr(row, attr) + n)
        top, total = worst.setdefault(rep_id, {}).get(rule, (0, 0))
        worst[rep_id][rule] = (top + (n if severity == 3 else 0), total + n)
    for rep_id, rules in worst.items():
        by_id[rep_id].worst_rule = max(rules.items(), key=lambda item: (item[1][0], item[1][1], item[0]))[0]


def _team_rows(rows: list[ScoreRow], User, under_path: str | None = None) -> list[ScoreRow]:
    """Roll up each rep's period score to every manager above them on the reporting line."""
    sums: dict[int, list[ScoreRow]] = {}
    for row in rows:
        for ancestor in [int(part) for part in row.path.strip("/").split("/") if part][:-1]:
            sums.setdefault(ancestor, []).append(row)
    if not sums:
        return []
    managers = User.objects.filter(pk__in=list(sums))
    if under_path:
        managers = managers.filter(profile__path__startswith=under_path)
    teams = []
    for pk, username, first, last, path in managers.values_list(
        "pk", "username", "first_name", "last_name", "profile__path"
    ):
        members = sums[pk]
        scored = [m.score for m in members if m.score is not None]
        before = [m.previous for m in members if m.previous is not None]
        teams.append(
            ScoreRow(
                user_id=pk,
                username=username,
                name=f"Team {_name(first, last, username)}",
                manager="",
                path=path or "",
                is_team=True,
                score=_round(sum(scored) / len(scored)) if scored else None,
                previous=_round(sum(before) / len(before)) if before else None,
                low=sum(m.low for m in members),
                medium=sum(m.medium for m in members),
                high=sum(m.high for m in members),
                open_deals=sum(m.open_deals for m in members),
                reps=len(members),
            )
        )
    teams.sort(key=lambda row: row.path)
    return teams
