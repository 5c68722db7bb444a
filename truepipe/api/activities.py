"""/activities: calls, e-mails, meetings, notes and tasks, with their participants.

Activities carry no version (the model has none), so their writes need no If-Match.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from truepipe.accounts.models import Account, Contact
from truepipe.activities import services
from truepipe.activities.models import Activity, ActivitySource
from truepipe.api import common
from truepipe.api.common import Id, actor, order, page, visible_one
from truepipe.api.schemas import (
    ERRORS,
    AccountRef,
    ListParams,
    OpportunityRef,
    PersonKey,
    Strict,
    UserRef,
    page_of,
)
from truepipe.core.errors import InvalidInput
from truepipe.core.models import Via
from truepipe.core.visibility import visible
from truepipe.pipeline.models import Opportunity

router = Router(tags=["activities"])


class ActivityOut(Schema):
    id: int
    kind: str
    occurred_at: datetime
    logged_at: datetime
    subject: str
    body: str
    source: str
    owner: UserRef
    opportunity: OpportunityRef | None
    account: AccountRef | None
    participants: list[int]


class ActivityFields(Strict):
    occurred_at: datetime | None = Field(None, description="When it happened; default: now.")
    body: str | None = Field(None, max_length=100_000)
    source: str | None = Field(None, max_length=16, description="Default: api.")
    owner: PersonKey | None = Field(None, description="A person's id or username; default: you.")
    opportunity: Id | None = None
    account: Id | None = None
    participants: list[Id] | None = Field(None, max_length=200, description="Contact ids.")


class ActivityCreate(ActivityFields):
    kind: str = Field(max_length=16, description="call, email, meeting, note or task.")
    subject: str = Field(max_length=255)


class ActivityPatch(ActivityFields):
    kind: str | None = Field(None, max_length=16)
    subject: str | None = Field(None, max_length=255)


class ActivityFilters(ListParams):
    owner: str | None = Field(None, max_length=150, description="A person's id or username.")
    opportunity: Id | None = None
    account: Id | None = None
    contact: Id | None = None
    kind: str | None = Field(None, max_length=16)
    occurred_from: date | None = None
    occurred_to: date | None = None
    q: str | None = Field(None, max_length=200, description="Text in the subject.")


ORDERING = {"occurred_at": "occurred_at", "logged_at": "logged_at", "kind": "kind", "id": "id"}


def base_queryset(user: Any) -> QuerySet[Activity]:
    return (
        visible(user, Activity)
        .select_related("owner", "opportunity", "account")
        .prefetch_related(Prefetch("participants", queryset=Contact.objects.only("id")))
    )


def out(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.pk,
        "kind": activity.kind,
        "occurred_at": activity.occurred_at,
        "logged_at": activity.logged_at,
        "subject": activity.subject,
        "body": activity.body,
        "source": activity.source,
        "owner": common.user_ref_out(activity.owner),
        "opportunity": (
            {"id": activity.opportunity.pk, "name": activity.opportunity.name}
            if activity.opportunity
            else None
        ),
        "account": {"id": activity.account.pk, "name": activity.account.name} if activity.account else None,
        "participants": sorted(c.pk for c in activity.participants.all()),
    }


def to_changes(user: Any, data: dict[str, Any]) -> tuple[dict[str, Any], list[Contact] | None]:
    changes = dict(data)
    participants = changes.pop("participants", None)
    contacts = common.refs(user, Contact, participants, "participants") if participants is not None else None
    if "owner" in changes:
        if changes["owner"] is None:
            raise InvalidInput("An activity needs an owner.", fields={"owner": "Required."})
        changes["owner"] = common.person_ref(user, changes["owner"])
    if "opportunity" in changes:
        changes["opportunity"] = common.ref(user, Opportunity, changes["opportunity"], "opportunity")
    if "account" in changes:
        changes["account"] = common.ref(user, Account, changes["account"], "account")
    for name in ("kind", "subject", "occurred_at", "source"):
        if name in changes and changes[name] is None:
            raise InvalidInput(
                f"{name.replace('_', ' ').capitalize()} cannot be empty.", fields={name: "Required."}
            )
    if "body" in changes and changes["body"] is None:
        changes["body"] = ""
    return changes, contacts


@router.get("", response={200: page_of(ActivityOut, "ActivityPage"), **ERRORS})
def list_activities(request: HttpRequest, filters: Query[ActivityFilters]):
    """Activities you can see, newest first unless `ordering` says otherwise."""
    f = filters
    qs = base_queryset(actor(request))
    if f.owner:
        qs = common.people_filter(qs, f.owner, "owner__")
    if f.opportunity:
        qs = qs.filter(opportunity_id=f.opportunity)
    if f.account:
        qs = qs.filter(account_id=f.account)
    if f.contact:
        qs = qs.filter(
            pk__in=Activity.participants.through.objects.filter(contact_id=f.contact).values("activity_id")
        )
    if f.kind:
        qs = qs.filter(kind=f.kind)
    if f.occurred_from:
        qs = qs.filter(occurred_at__gte=common.day_start(f.occurred_from))
    if f.occurred_to:
        qs = qs.filter(occurred_at__lt=common.day_start(f.occurred_to, after=True))
    qs = common.text_search(qs, f.q, "subject")
    qs = order(qs, f.ordering, ORDERING, ["-occurred_at", "-id"])
    return page(request, qs, f, out)


@router.post("", response={201: ActivityOut, **ERRORS})
def log_activity(request: HttpRequest, response: HttpResponse, payload: ActivityCreate):
    user = actor(request)
    changes, contacts = to_changes(user, payload.model_dump(exclude_unset=True))
    changes.setdefault("source", ActivitySource.API)
    activity = services.log_activity(user, via=Via.API, participants=contacts, **changes)
    response["Location"] = f"{request.path.rstrip('/')}/{activity.pk}"
    return Status(201, out(base_queryset(user).get(pk=activity.pk)))


@router.get("/{id}", response={200: ActivityOut, **ERRORS})
def get_activity(request: HttpRequest, id: Id):
    user = actor(request)
    return out(visible_one(user, Activity, id, base_queryset(user)))


def _update(request: HttpRequest, pk: int, data: dict[str, Any]) -> dict[str, Any]:
    user = actor(request)
    visible_one(user, Activity, pk)
    changes, contacts = to_changes(user, data)
    services.update_activity(user, pk, changes, via=Via.API, participants=contacts)
    return out(base_queryset(user).get(pk=pk))


@router.patch("/{id}", response={200: ActivityOut, **ERRORS})
def patch_activity(request: HttpRequest, id: Id, payload: ActivityPatch):
    return _update(request, id, payload.model_dump(exclude_unset=True))


@router.put("/{id}", response={200: ActivityOut, **ERRORS})
def put_activity(request: HttpRequest, id: Id, payload: ActivityCreate):
    data = payload.model_dump()
    for name in ("owner", "occurred_at", "source"):
        if data.get(name) is None:
            data.pop(name)
    if data.get("participants") is None:
        data["participants"] = []
    return _update(request, id, data)


@router.delete("/{id}", response={204: None, **ERRORS})
def delete_activity(request: HttpRequest, id: Id):
    user = actor(request)
    visible_one(user, Activity, id)
    services.delete_activity(user, id, via=Via.API)
    return Status(204, None)
