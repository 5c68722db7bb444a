"""/capture: what capture logged, the triage list, proposed contacts, and file uploads.

Reads follow the same visibility as the capture page (a person's captured items: theirs
and their team's for a manager). Decisions go through truepipe.capture.services, like the
page's buttons.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import File, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status
from pydantic import Field

from truepipe.api.common import Id, actor, order, page, user_ref_out, visible_one
from truepipe.api.schemas import ERRORS, ListParams, OpportunityRef, Strict, UserRef, page_of
from truepipe.capture import services
from truepipe.capture.models import CapturedItem, ContactProposal, ProposalStatus
from truepipe.capture.uploads import ingest_file
from truepipe.core.errors import NotAllowed
from truepipe.core.models import Via
from truepipe.core.visibility import role_of, visible
from truepipe.people.models import Role
from truepipe.pipeline.models import Opportunity

router = Router(tags=["capture"])


class CapturedOut(Schema):
    id: int
    kind: str
    source: str
    status: str
    reason: str
    owner: UserRef | None
    subject: str
    sender: str
    occurred_at: datetime | None
    captured_at: datetime
    activity: int | None
    opportunity: OpportunityRef | None
    candidates: list[int] = Field(
        description="In triage: the deals it may belong to, most recently active first."
    )
    attachments: list[dict[str, Any]] = Field(description="Described, never stored: name, type, size.")


class CapturedFilters(ListParams):
    status: Literal["logged", "triage", "ignored", "rejected"] | None = None
    source: Literal["imap", "dropbox", "file", "upload", "feed"] | None = None


class TriageChoice(Strict):
    opportunity: int | None = Field(description="The deal to log it on; null: no deal.")


class ProposalOut(Schema):
    id: int
    email: str
    display_name: str
    account: int
    account_name: str
    times_seen: int
    last_seen: datetime
    status: str


class ProposalDecision(Strict):
    decision: Literal["accept", "dismiss"]
    first_name: str = Field("", max_length=100)
    last_name: str = Field("", max_length=100)


class UploadOut(Schema):
    summary: str
    counts: dict[str, int]
    rejected: list[dict[str, str]]


def captured_out(item: CapturedItem) -> dict[str, Any]:
    deal = item.activity.opportunity if item.activity is not None else None
    return {
        "id": item.pk,
        "kind": item.kind,
        "source": item.source,
        "status": item.status,
        "reason": item.reason,
        "owner": user_ref_out(item.owner),
        "subject": item.subject,
        "sender": item.sender,
        "occurred_at": item.occurred_at,
        "captured_at": item.captured_at,
        "activity": item.activity_id,
        "opportunity": {"id": deal.pk, "name": deal.name} if deal is not None else None,
        "candidates": list(item.candidates or []),
        "attachments": list(item.attachments or []),
    }


def captured_qs(user: Any):  # type: ignore[no-untyped-def]
    return visible(user, CapturedItem).select_related("owner", "activity__opportunity")


@router.get("/items", response={200: page_of(CapturedOut, "CapturedPage"), **ERRORS})
def list_captured(request: HttpRequest, filters: Query[CapturedFilters]):
    """Everything capture read for you (or your team), newest first, with its outcome and reason."""
    qs = captured_qs(actor(request))
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.source:
        qs = qs.filter(source=filters.source)
    qs = order(qs, filters.ordering, {"captured_at": "captured_at", "id": "id"}, ["-captured_at", "-id"])
    return page(request, qs, filters, captured_out)


@router.post("/items/{id}/triage", response={200: CapturedOut, **ERRORS})
def decide_triage(request: HttpRequest, id: Id, payload: TriageChoice):
    """Choose the deal of an item waiting in triage (or none)."""
    user = actor(request)
    item = visible_one(user, CapturedItem, id)
    deal = visible_one(user, Opportunity, payload.opportunity) if payload.opportunity is not None else None
    services.decide_triage(user, item, deal, via=Via.API)
    return captured_out(captured_qs(user).get(pk=id))


@router.post("/items/{id}/private", response={200: CapturedOut, **ERRORS})
def mark_private(request: HttpRequest, id: Id):
    """Your conversation is private: its activities are removed and its later mail ignored."""
    user = actor(request)
    services.mark_private(user, visible_one(user, CapturedItem, id), via=Via.API)
    return captured_out(captured_qs(user).get(pk=id))


@router.get("/proposals", response={200: page_of(ProposalOut, "ProposalPage"), **ERRORS})
def list_proposals(request: HttpRequest, filters: Query[ListParams]):
    """Unknown people at your accounts' domains, seen in captured mail, most seen first."""
    qs = visible(actor(request), ContactProposal).filter(status=ProposalStatus.OPEN).select_related("account")
    qs = order(qs, filters.ordering, {"times_seen": "times_seen", "id": "id"}, ["-times_seen", "-id"])
    return page(
        request,
        qs,
        filters,
        lambda p: {
            "id": p.pk,
            "email": p.email,
            "display_name": p.display_name,
            "account": p.account_id,
            "account_name": p.account.name,
            "times_seen": p.times_seen,
            "last_seen": p.last_seen,
            "status": p.status,
        },
    )


@router.post("/proposals/{id}", response={200: dict[str, Any], **ERRORS})
def decide_proposal(request: HttpRequest, id: Id, payload: ProposalDecision):
    """accept: the address becomes a contact of its account; dismiss: it is not proposed again."""
    user = actor(request)
    if payload.decision == "accept":
        contact = services.accept_proposal(
            user, id, first_name=payload.first_name, last_name=payload.last_name, via=Via.API
        )
        return {"decision": "accept", "contact": contact.pk}
    services.dismiss_proposal(user, id)
    return {"decision": "dismiss", "contact": None}


@router.post("/uploads", response={201: UploadOut, **ERRORS})
def upload(request: HttpRequest, file: File[UploadedFile]):
    """Capture an .eml, .mbox or .ics file (multipart field `file`). A rep's file is their own mail."""
    user = actor(request)
    if role_of(user) not in {Role.REP, Role.MANAGER, Role.ADMIN}:
        raise NotAllowed("Your role reads records but does not capture them.")
    report = ingest_file(
        user, file.name or "upload", file.chunks(), owner_id=user.pk if role_of(user) == Role.REP else None
    )
    return Status(
        201,
        {
            "summary": report.summary(),
            "counts": dict(report.counts),
            "rejected": [{"item": origin, "reason": reason} for origin, reason in report.problems],
        },
    )
