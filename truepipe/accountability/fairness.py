"""The fairness audit: is the policy enforced the same way for everyone?

For a period (offenses found in it) and a part of the organisation (what the
viewer sees, optionally under one manager): offenses incurred against
consequences applied, waived, disputed, overturned and still pending, by rep, by
manager (the consequence's owner) and by performance tier (quartile of quota
attainment over the period: won amount ÷ quota prorated to the period).

Then the checks: are the top quartile's consequences waived more often than
everyone else's, and does any manager waive more often than the other managers?
Each is a 2×2 table (waived / applied × group / rest) tested with Fisher's exact
test, which is exact at any sample size: the right test for the handful of
decisions a team makes in a quarter. When the margins are so small that even
the most lopsided table could not reach significance, the report says the
numbers are too small to conclude anything instead of printing a p-value.
(Two-sided p: the sum of the probabilities of every table with the same margins
that is no more likely than the one observed, as in R's fisher.test; ten lines
from the hypergeometric distribution, so no statistics package is needed.)
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from math import comb
from typing import Any

from django.db.models import Sum

from truepipe.accountability.models import Consequence, ConsequenceState, Dispute
from truepipe.core.visibility import visible
from truepipe.people.models import Quota
from truepipe.pipeline.models import Opportunity, StageKind

ALPHA = 0.05
# A difference in waive rates worth flagging, beside being significant (percentage points).
MARKED = 20.0
TIERS = ("top quartile", "second quartile", "third quartile", "bottom quartile", "no quota")


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the table [[a, b], [c, d]]."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0:
        return 1.0
    total = comb(n, col1)

    def prob(x: int) -> float:
        return comb(row1, x) * comb(n - row1, col1 - x) / total

    observed = prob(a)
    low, high = max(0, col1 - (n - row1)), min(row1, col1)
    # A relative tolerance, as R does, so tables as likely as the observed one count despite rounding.
    return min(1.0, sum(p for x in range(low, high + 1) if (p := prob(x)) <= observed * (1 + 1e-7)))


def smallest_p(row1: int, row2: int) -> float:
    """The smallest two-sided p-value any 2×2 table with these row totals could give (the one
    where one group had every waiver and the other none): at or above alpha, nothing can show."""
    return fisher_exact(row1, 0, 0, row2)


@dataclass
class Counts:
    offenses: int = 0
    applied: int = 0
    waived: int = 0
    disputed: int = 0
    overturned: int = 0
    pending: int = 0
    escalated: int = 0

    @property
    def decided(self) -> int:
        return self.applied + self.waived

    @property
    def waive_rate(self) -> float | None:
        return None if not self.decided else 100.0 * self.waived / self.decided

    def as_dict(self) -> dict[str, Any]:
        rate = self.waive_rate
        return {
            "offenses": self.offenses,
            "applied": self.applied,
            "waived": self.waived,
            "disputed": self.disputed,
            "overturned": self.overturned,
            "pending": self.pending,
            "escalated": self.escalated,
            "waive_rate": None if rate is None else round(rate, 1),
        }


@dataclass
class Check:
    """One comparison: a group's waive rate against the rest, with its test."""

    question: str
    group: str
    group_waived: int
    group_decided: int
    rest_waived: int
    rest_decided: int
    p_value: float | None
    verdict: str  # "flag" (more waived), "stricter" (fewer), "no difference", "too few"
    says: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Report:
    start: dt.date
    end: dt.date
    total: Counts
    by_rep: dict[str, Counts]
    by_manager: dict[str, Counts]
    by_tier: dict[str, Counts]
    tier_of: dict[str, str]
    checks: list[Check] = field(default_factory=list)

    @property
    def flags(self) -> list[Check]:
        return [check for check in self.checks if check.verdict == "flag"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "total": self.total.as_dict(),
            "by_tier": {k: v.as_dict() for k, v in self.by_tier.items()},
            "by_manager": {k: v.as_dict() for k, v in self.by_manager.items()},
            "by_rep": {
                k: {**v.as_dict(), "tier": self.tier_of.get(k, "no quota")} for k, v in self.by_rep.items()
            },
            "checks": [c.as_dict() for c in self.checks],
        }


def _name(first: str, last: str, username: str) -> str:
    return f"{first} {last}".strip() or username


def attainment(rep_ids: set[int], start: dt.date, end: dt.date) -> dict[int, float]:
    """Won amount ÷ quota prorated to the period, per rep with a quota (two queries)."""
    won = dict(
        Opportunity.objects.filter(
            owner_id__in=rep_ids,
            stage__kind=StageKind.WON,
            deleted_at__isnull=True,
            closed_at__date__gte=start,
            closed_at__date__lte=end,
        )
        .values("owner_id")
        .annotate(total=Sum("amount"))
        .values_list("owner_id", "total")
    )
    quota: dict[int, float] = defaultdict(float)
    for user_id, q_start, q_end, amount in Quota.objects.filter(
        user_id__in=rep_ids, period_end__gte=start, period_start__lte=end
    ).values_list("user_id", "period_start", "period_end", "amount"):
        overlap = (min(q_end, end) - max(q_start, start)).days + 1
        quota[user_id] += float(amount) * overlap / ((q_end - q_start).days + 1)
    return {rep: float(won.get(rep) or Decimal(0)) / q for rep, q in quota.items() if q > 0}


def tiers(attained: dict[int, float]) -> dict[int, str]:
    """Quartiles of attainment among the reps compared (highest first)."""
    ranked = sorted(attained, key=lambda rep: (-attained[rep], rep))
    n = len(ranked)
    return {rep: TIERS[min(3, (i * 4) // n)] for i, rep in enumerate(ranked)} if n else {}


def audit(user: Any, start: dt.date, end: dt.date, under: Any = None) -> Report:
    """The report over what `user` may see (and, if given, under one manager)."""
    consequences = visible(user, Consequence).filter(offense__day__gte=start, offense__day__lte=end)
    if under is not None:
        path = under.profile.path or f"/{under.pk}/"
        consequences = consequences.filter(offense__rep__profile__path__startswith=path)
    # The consequence that stands for each offense (a replaced one is history).
    rows = list(
        consequences.filter(replaced_by__isnull=True).values_list(
            "offense_id", "offense__rep_id", "offense__rep__username", "offense__rep__first_name",
            "offense__rep__last_name", "owner__username", "owner__first_name", "owner__last_name",
            "state", "escalated_at",
        )
    )  # fmt: skip
    disputed = set(
        Dispute.objects.filter(offense_id__in={r[0] for r in rows}).values_list("offense_id", flat=True)
    )
    reps = {r[1] for r in rows}
    tier_by_id = tiers(attainment(reps, start, end))
    total = Counts()
    by_rep: dict[str, Counts] = defaultdict(Counts)
    by_manager: dict[str, Counts] = defaultdict(Counts)
    by_tier: dict[str, Counts] = {tier: Counts() for tier in TIERS}
    tier_of: dict[str, str] = {}
    for offense_id, rep_id, username, first, last, owner, o_first, o_last, state, escalated in rows:
        rep = _name(first, last, username)
        manager = _name(o_first or "", o_last or "", owner) if owner else "admins"
        tier = tier_by_id.get(rep_id, "no quota")
        tier_of[rep] = tier
        for counts in (total, by_rep[rep], by_manager[manager], by_tier[tier]):
            counts.offenses += 1
            counts.escalated += escalated is not None
            counts.disputed += offense_id in disputed
            if state == ConsequenceState.APPLIED:
                counts.applied += 1
            elif state == ConsequenceState.WAIVED:
                counts.waived += 1
            elif state == ConsequenceState.OVERTURNED:
                counts.overturned += 1
            else:
                counts.pending += 1
    report = Report(start, end, total, dict(by_rep), dict(by_manager), by_tier, tier_of)
    top = by_tier["top quartile"]
    rest = _sum(c for tier, c in by_tier.items() if tier != "top quartile")
    report.checks.append(
        _check(
            "Are the top quartile's consequences waived more often than everyone else's?",
            "top quartile",
            top,
            rest,
        )
    )
    for manager, counts in sorted(by_manager.items()):
        others = _sum(c for name, c in by_manager.items() if name != manager)
        report.checks.append(
            _check(f"Does {manager} waive more often than the other managers?", manager, counts, others)
        )
    return report


def _sum(items) -> Counts:  # type: ignore[no-untyped-def]
    total = Counts()
    for c in items:
        for name in ("offenses", "applied", "waived", "disputed", "overturned", "pending", "escalated"):
            setattr(total, name, getattr(total, name) + getattr(c, name))
    return total


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _check(question: str, group: str, mine: Counts, rest: Counts) -> Check:
    a, b, c, d = mine.waived, mine.applied, rest.waived, rest.applied
    counts = f"{a} of {mine.decided} waived vs {c} of {rest.decided}"

    def check(p_value: float | None, verdict: str, says: str) -> Check:
        return Check(question, group, a, mine.decided, c, rest.decided, p_value, verdict, says)

    if smallest_p(mine.decided, rest.decided) >= ALPHA:
        return check(
            None, "too few", f"{counts}: too few decisions to conclude anything, whatever the rates."
        )
    p = fisher_exact(a, b, c, d)
    gap = (mine.waive_rate or 0.0) - (rest.waive_rate or 0.0)
    if p < ALPHA and gap >= MARKED:
        verdict, says = (
            "flag",
            f"{counts} ({gap:+.0f} points, Fisher's exact p {_p(p)}): markedly more waived.",
        )
    elif p < ALPHA and gap <= -MARKED:
        verdict, says = (
            "stricter",
            f"{counts} ({gap:+.0f} points, Fisher's exact p {_p(p)}): markedly fewer waived.",
        )
    elif p < ALPHA:
        verdict, says = (
            "no difference",
            f"{counts} (Fisher's exact p {_p(p)}): a difference under {MARKED:.0f} points.",
        )
    else:
        verdict, says = "no difference", f"{counts} (Fisher's exact p {_p(p)}): no clear difference."
    return check(round(p, 4), verdict, says)
