"""What the accountability pages, the API and the CLI read: each a fixed number of queries.

Whom each answer covers comes from `core.visibility` (records about a person: that
person and their managers; exec and admin everyone; delivery nobody).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from truepipe.accountability.ladder import Step
from truepipe.accountability.models import (
    Consequence,
    ConsequenceState,
    Dispute,
    DisputeState,
    Offense,
    OffenseStatus,
    PolicyAcknowledgement,
)
from truepipe.core.visibility import role_of, visible, visible_users
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.people.models import Role


def offenses(user) -> QuerySet[Offense]:
    return (
        visible(user, Offense)
        .select_related("rep")
        .prefetch_related(
            "consequences__owner", "consequences__escalated_to", "consequences__decided_by", "disputes"
        )
        .order_by("-day", "rep__username")
    )


def to_decide(user) -> QuerySet[Consequence]:
    """Pending consequences this person owns or that escalated to them (an admin: every one)."""
    pending = visible(user, Consequence).filter(state=ConsequenceState.PENDING)
    if role_of(user) != Role.ADMIN:
        pending = pending.filter(Q(owner=user) | Q(escalated_to=user))
    return pending.select_related("offense__rep", "owner", "escalated_to").order_by("deadline", "pk")


def disputes_to_resolve(user) -> QuerySet[Dispute]:
    """Open disputes about the people below this person (never their own)."""
    if role_of(user) not in (Role.MANAGER, Role.ADMIN):
        return Dispute.objects.none()
    return (
        visible(user, Dispute)
        .filter(state=DisputeState.OPEN)
        .exclude(offense__rep=user)
        .select_related("offense__rep", "consequence", "raised_by")
        .order_by("raised_at")
    )


def unenforced(user) -> QuerySet[Consequence]:
    """Consequences past their deadline, neither applied nor waived, among those this person sees."""
    return (
        visible(user, Consequence)
        .filter(state=ConsequenceState.PENDING, escalated_at__isnull=False)
        .select_related("offense__rep", "owner", "escalated_to")
        .order_by("deadline")
    )


@dataclass(frozen=True)
class Bluffer:
    """A manager who let consequences pass their deadline repeatedly."""

    manager_id: int
    name: str
    escalated: int


def reported_managers(user, policy: Policy | None = None, today: dt.date | None = None) -> list[Bluffer]:
    """Owners below this person with at least the policy's number of escalations in the window."""
    policy = policy or current_policy()
    rules = policy.accountability
    today = today or timezone.localdate()
    start_of_today = timezone.make_aware(dt.datetime.combine(today, dt.time.min))
    since = start_of_today - dt.timedelta(days=rules.window_days)
    rows = (
        visible(user, Consequence)
        .filter(escalated_at__gte=since, owner__isnull=False)
        .exclude(owner=user)
        .values("owner_id", "owner__first_name", "owner__last_name", "owner__username")
        .annotate(n=Count("id"))
        .filter(n__gte=max(rules.unenforced_report_after, 1))
        .order_by("-n", "owner__username")
    )
    return [
        Bluffer(
            r["owner_id"],
            f"{r['owner__first_name']} {r['owner__last_name']}".strip() or r["owner__username"],
            r["n"],
        )
        for r in rows
    ]


def unacknowledged(user, policy: Policy | None = None) -> QuerySet:
    """The people this person sees (reps and managers) who have not acknowledged the current version."""
    version = (policy or current_policy()).version
    done = PolicyAcknowledgement.objects.filter(version=version).values("user_id")
    return (
        visible_users(user)
        .filter(profile__role__in=[Role.REP, Role.MANAGER])
        .exclude(pk=user.pk)
        .exclude(pk__in=done)
        .order_by("username")
    )


def acknowledged(user, policy: Policy | None = None) -> PolicyAcknowledgement | None:
    version = (policy or current_policy()).version
    return PolicyAcknowledgement.objects.filter(user=user, version=version).first()


def next_step(rep, policy: Policy | None = None, today: dt.date | None = None) -> tuple[int, Step]:
    """What the rep's next offense would bring: its level and the ladder's step."""
    rules = (policy or current_policy()).accountability
    today = today or timezone.localdate()
    counted = Offense.objects.filter(
        rep=rep, status=OffenseStatus.ACTIVE, day__gt=today - dt.timedelta(days=rules.window_days)
    ).count()
    return counted + 1, rules.step(counted + 1)
