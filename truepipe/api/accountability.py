"""/offenses, /consequences, /disputes and /policy/acknowledgements: the accountability loop.

Reads are scoped like every list (records about a person: that person and their
managers, exec and admin everyone). Decisions are POSTs to an action of the record
(`/consequences/{id}/apply`, `/offenses/{id}/dispute`, …), through the same
services as the page: the same permissions, the same audit log.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from truepipe.accountability import services
from truepipe.accountability.fairness import audit
from truepipe.accountability.models import Consequence, Dispute, Offense
from truepipe.api import common
from truepipe.api.common import Id, actor, order, page, visible_one
from truepipe.api.schemas import ERRORS, ListParams, Strict, UserRef, page_of
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.visibility import role_of, visible, visible_users
from truepipe.people.models import Role

offenses_router = Router(tags=["accountability"])
consequences_router = Router(tags=["accountability"])
disputes_router = Router(tags=["accountability"])
policy_router = Router(tags=["accountability"])
fairness_router = Router(tags=["accountability"])


class ConsequenceOut(Schema):
    id: int
    offense: int
    rep: UserRef
    level: int
    name: str
    action: str
    notify: list[str]
    hold_days: int
    owner: UserRef | None
    deadline: date
    state: str
    note: str
    applied_on: date | None
    decided_by: UserRef | None
    decided_at: datetime | None
    escalated_to: UserRef | None
    escalated_at: datetime | None
    replaced_by: int | None


class DisputeOut(Schema):
    id: int
    offense: int
    consequence: int
    raised_by: UserRef
    reason: str
    raised_at: datetime
    state: str
    resolver: UserRef | None
    resolved_by: UserRef | None
    resolved_at: datetime | None
    resolution: str


class OffenseOut(Schema):
    id: int
    rep: UserRef
    week: str
    day: date
    detected_at: datetime
    level: int
    status: str
    summary: str
    unresolved: int
    weekly_score: float | None
    policy_version: int
    acknowledged_at: datetime | None
    violations: list[int] = Field(description="The violations behind it (ids, see the scorecard).")
    consequences: list[ConsequenceOut]
    disputes: list[DisputeOut]


class OffenseFilters(ListParams):
    rep: str | None = Field(None, max_length=150, description="A person's id or username.")
    week: str | None = Field(None, max_length=10, description="ISO week, e.g. 2026-W48.")
    status: Literal["active", "overturned"] | None = None


class ConsequenceFilters(ListParams):
    rep: str | None = Field(None, max_length=150)
    owner: str | None = Field(None, max_length=150)
    state: Literal["pending", "applied", "waived", "disputed", "overturned"] | None = None
    escalated: bool | None = Field(None, description="Only those past their deadline (true) or not.")
    mine: bool | None = Field(None, description="Only those you own or that escalated to you.")


class DisputeFilters(ListParams):
    state: Literal["open", "upheld", "rejected"] | None = None


class Note(Strict):
    note: str = Field(max_length=10_000, description="What was done.")
    on: date | None = Field(None, description="When it was applied; default: today.")


class Reason(Strict):
    reason: str = Field(max_length=10_000)


class Resolution(Strict):
    decision: Literal["uphold", "reject"] = Field(description="uphold overturns the offense.")
    note: str = Field(max_length=10_000)


class AcknowledgementOut(Schema):
    version: int
    at: datetime


def _user(user: Any) -> dict[str, Any] | None:
    return common.user_ref_out(user)


def consequence_out(c: Consequence) -> dict[str, Any]:
    return {
        "id": c.pk,
        "offense": c.offense_id,
        "rep": _user(c.offense.rep),
        "level": c.level,
        "name": c.name,
        "action": c.action,
        "notify": list(c.notify or []),
        "hold_days": c.hold_days,
        "owner": _user(c.owner),
        "deadline": c.deadline,
        "state": c.state,
        "note": c.note,
        "applied_on": c.applied_on,
        "decided_by": _user(c.decided_by),
        "decided_at": c.decided_at,
        "escalated_to": _user(c.escalated_to),
        "escalated_at": c.escalated_at,
        "replaced_by": c.replaced_by_id,
    }


def dispute_out(d: Dispute) -> dict[str, Any]:
    return {
        "id": d.pk,
        "offense": d.offense_id,
        "consequence": d.consequence_id,
        "raised_by": _user(d.raised_by),
        "reason": d.reason,
        "raised_at": d.raised_at,
        "state": d.state,
        "resolver": _user(d.resolver),
        "resolved_by": _user(d.resolved_by),
        "resolved_at": d.resolved_at,
        "resolution": d.resolution,
    }


def offense_out(o: Offense) -> dict[str, Any]:
    return {
        "id": o.pk,
        "rep": _user(o.rep),
        "week": o.week,
        "day": o.day,
        "detected_at": o.detected_at,
        "level": o.level,
        "status": o.status,
        "summary": o.summary,
        "unresolved": o.unresolved,
        "weekly_score": float(o.weekly_score) if o.weekly_score is not None else None,
        "policy_version": o.policy_version,
        "acknowledged_at": o.acknowledged_at,
        "violations": [v.pk for v in o.violations.all()],
        "consequences": [consequence_out(c) for c in o.consequences.all()],
        "disputes": [dispute_out(d) for d in o.disputes.all()],
    }


PEOPLE = ("rep", "owner", "decided_by", "escalated_to")


def offenses_qs(user: Any) -> QuerySet[Offense]:
    consequence_people = [f"consequences__{name}" for name in PEOPLE[1:]]
    return (
        visible(user, Offense)
        .select_related("rep")
        .prefetch_related(
            "violations",
            "consequences__offense__rep",
            *consequence_people,
            "disputes__raised_by",
            "disputes__resolver",
            "disputes__resolved_by",
        )
    )


def consequences_qs(user: Any) -> QuerySet[Consequence]:
    return visible(user, Consequence).select_related("offense__rep", "owner", "decided_by", "escalated_to")


def disputes_qs(user: Any) -> QuerySet[Dispute]:
    return visible(user, Dispute).select_related("raised_by", "resolver", "resolved_by")


@offenses_router.get("", response={200: page_of(OffenseOut, "OffensePage"), **ERRORS})
def list_offenses(request: HttpRequest, filters: Query[OffenseFilters]):
    """Offenses you can see (yours, your team's), newest first."""
    qs = offenses_qs(actor(request))
    if filters.rep:
        qs = common.people_filter(qs, filters.rep, "rep__")
    if filters.week:
        qs = qs.filter(week=filters.week)
    if filters.status:
        qs = qs.filter(status=filters.status)
    qs = order(qs, filters.ordering, {"day": "day", "level": "level", "id": "id"}, ["-day", "-id"])
    return page(request, qs, filters, offense_out)


@offenses_router.get("/{id}", response={200: OffenseOut, **ERRORS})
def get_offense(request: HttpRequest, id: Id):
    user = actor(request)
    return offense_out(visible_one(user, Offense, id, offenses_qs(user)))


@offenses_router.post("/{id}/acknowledge", response={200: OffenseOut, **ERRORS})
def acknowledge_offense(request: HttpRequest, id: Id):
    """The rep has seen it (theirs only)."""
    user = actor(request)
    services.acknowledge_offense(user, visible_one(user, Offense, id))
    return offense_out(offenses_qs(user).get(pk=id))


@offenses_router.post("/{id}/dispute", response={201: DisputeOut, **ERRORS})
def dispute_offense(request: HttpRequest, id: Id, payload: Reason):
    """The rep contests it within the policy's window; its consequence waits for the decision."""
    user = actor(request)
    dispute = services.dispute_offense(user, visible_one(user, Offense, id), payload.reason)
    return Status(201, dispute_out(disputes_qs(user).get(pk=dispute.pk)))


@consequences_router.get("", response={200: page_of(ConsequenceOut, "ConsequencePage"), **ERRORS})
def list_consequences(request: HttpRequest, filters: Query[ConsequenceFilters]):
    """Consequences you can see, soonest deadline first. `mine=true`: what you must decide."""
    user = actor(request)
    qs = consequences_qs(user)
    if filters.rep:
        qs = common.people_filter(qs, filters.rep, "offense__rep__")
    if filters.owner:
        qs = common.people_filter(qs, filters.owner, "owner__")
    if filters.state:
        qs = qs.filter(state=filters.state)
    if filters.escalated is not None:
        qs = qs.filter(escalated_at__isnull=not filters.escalated)
    if filters.mine:
        qs = qs.filter(Q(owner=user) | Q(escalated_to=user))
    qs = order(
        qs, filters.ordering, {"deadline": "deadline", "level": "level", "id": "id"}, ["deadline", "id"]
    )
    return page(request, qs, filters, consequence_out)


@consequences_router.get("/{id}", response={200: ConsequenceOut, **ERRORS})
def get_consequence(request: HttpRequest, id: Id):
    user = actor(request)
    return consequence_out(visible_one(user, Consequence, id, consequences_qs(user)))


@consequences_router.post("/{id}/apply", response={200: ConsequenceOut, **ERRORS})
def apply_consequence(request: HttpRequest, id: Id, payload: Note):
    """Carried out: say what was done (and when, default today)."""
    user = actor(request)
    services.apply_consequence(user, visible_one(user, Consequence, id), payload.note, payload.on)
    return consequence_out(consequences_qs(user).get(pk=id))


@consequences_router.post("/{id}/waive", response={200: ConsequenceOut, **ERRORS})
def waive_consequence(request: HttpRequest, id: Id, payload: Reason):
    """Not carried out, with a mandatory reason (counted in the fairness audit)."""
    user = actor(request)
    services.waive_consequence(user, visible_one(user, Consequence, id), payload.reason)
    return consequence_out(consequences_qs(user).get(pk=id))


@disputes_router.get("", response={200: page_of(DisputeOut, "DisputePage"), **ERRORS})
def list_disputes(request: HttpRequest, filters: Query[DisputeFilters]):
    qs = disputes_qs(actor(request))
    if filters.state:
        qs = qs.filter(state=filters.state)
    qs = order(qs, filters.ordering, {"raised_at": "raised_at", "id": "id"}, ["-raised_at", "-id"])
    return page(request, qs, filters, dispute_out)


@disputes_router.post("/{id}/resolve", response={200: DisputeOut, **ERRORS})
def resolve_dispute(request: HttpRequest, id: Id, payload: Resolution):
    """uphold: the offense is overturned with everything that followed; reject: it stands."""
    user = actor(request)
    services.resolve_dispute(
        user, visible_one(user, Dispute, id), upheld=payload.decision == "uphold", note=payload.note
    )
    return dispute_out(disputes_qs(user).get(pk=id))


class FairnessParams(Strict):
    start: date | None = Field(None, alias="from", description="Default: 90 days before `to`.")
    end: date | None = Field(None, alias="to", description="Default: today.")
    under: str | None = Field(None, max_length=150, description="Only one manager's team (username).")


@fairness_router.get("", response={200: dict[str, Any], **ERRORS})
def fairness(request: HttpRequest, params: Query[FairnessParams]):
    """The fairness audit over what you see: counts by tier, manager and rep, and the checks
    (Fisher's exact test; `verdict` is flag, no difference or too few)."""
    user = actor(request)
    if role_of(user) not in (Role.MANAGER, Role.ADMIN, Role.EXEC):
        raise NotAllowed("The fairness audit is for managers, executives and admins.")
    end = params.end or timezone.localdate()
    start = params.start or end - timedelta(days=90)
    under = None
    if params.under:
        under = visible_users(user).filter(username__iexact=params.under).first()
        if under is None:
            raise InvalidInput(
                f"No one called {params.under!r} that you can see.", fields={"under": "Unknown."}
            )
    return audit(user, start, end, under).as_dict()


@policy_router.post("/acknowledgements", response={201: AcknowledgementOut, **ERRORS})
def acknowledge_policy(request: HttpRequest):
    """You have read the current version of the policy."""
    ack = services.acknowledge_policy(actor(request))
    return Status(201, {"version": ack.version, "at": ack.at})
