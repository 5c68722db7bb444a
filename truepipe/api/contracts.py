"""/shadow-pipeline and /contracts: deals never logged.

- `GET /shadow-pipeline`: the companies reps keep e-mailing and meeting with no deal in
  truepipe (`capture.shadow.shadow_pipeline`): a rep's own, a manager's subtree, everyone's for
  admin and exec; delivery none. Most touched first.
- `GET /contracts`: finance's signed contracts (`truepipe import contracts`), each with the won
  deal it matched or, unmatched, the rep accountable for the unlogged win. Delivery, admin and
  exec read all; a manager their subtree's; a rep their own.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from truepipe.api.common import DEFAULT_LIMIT, MAX_OFFSET, actor, order, page, people_filter, user_ref_out
from truepipe.api.errors import ApiError
from truepipe.api.schemas import ERRORS, AccountRef, ListParams, Strict, UserRef, page_of
from truepipe.capture.shadow import ShadowRow, shadow_pipeline
from truepipe.contracts.models import Contract
from truepipe.core.visibility import visible

router = Router(tags=["deals never logged"])


class SuggestionOut(Schema):
    rep: UserRef
    domain: str
    account: AccountRef | None
    touches: int = Field(description="Captured customer touches in the window (since a 'not now').")
    first_touch: datetime | None
    last_touch: datetime | None
    subjects: list[str] = Field(description="The latest few distinct subjects.")
    flagged: bool = Field(description="Past the rule's threshold: an open unlogged_deal violation.")


class ShadowParams(Strict):
    limit: int | None = Field(None, description="Rows per page (default 50).")
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="Rows to skip.")


class OpportunityBrief(Schema):
    id: int
    name: str


class ContractOut(Schema):
    id: int
    customer: str
    account: AccountRef | None
    amount: Decimal
    currency: str
    signed_on: date
    reference: str
    status: Literal["matched", "unmatched"]
    opportunity: OpportunityBrief | None
    matched_at: datetime | None
    match_note: str
    rep: UserRef | None = Field(description="The rep accountable (the deal's owner once matched).")
    rep_basis: str
    imported_at: datetime
    notified_at: datetime | None


class ContractFilters(ListParams):
    status: Literal["matched", "unmatched"] | None = None
    rep: str | None = Field(None, max_length=150, description="A person's id or username.")


def suggestion_out(row: ShadowRow, usernames: dict[int, str]) -> dict[str, Any]:
    return {
        "rep": {"id": row.rep_id, "username": usernames.get(row.rep_id, ""), "name": row.rep_name},
        "domain": row.domain,
        "account": {"id": row.account_id, "name": row.account_name} if row.account_id else None,
        "touches": row.touches,
        "first_touch": row.first_touch,
        "last_touch": row.last_touch,
        "subjects": row.subjects,
        "flagged": row.flagged,
    }


@router.get("/shadow-pipeline", response={200: page_of(SuggestionOut, "SuggestionPage"), **ERRORS})
def list_suggestions(request: HttpRequest, params: Query[ShadowParams]):
    """Companies with repeated customer touches and no deal, for the deals you may see."""
    unknown = sorted(set(request.GET) - {"limit", "offset"})
    if unknown:
        raise ApiError(
            400,
            f"Unknown query parameter {unknown[0]!r}; this list accepts: limit, offset.",
            fields={name: "Unknown parameter." for name in unknown},
        )
    limit = DEFAULT_LIMIT if params.limit is None else params.limit
    offset = params.offset or 0
    maximum = settings.TRUEPIPE_API_PAGE_SIZE_MAX
    if not 1 <= limit <= maximum:
        raise ApiError(
            400, f"Limit: a whole number from 1 to {maximum}.", fields={"limit": f"1 to {maximum}."}
        )
    rows = shadow_pipeline(actor(request))
    from django.contrib.auth import get_user_model

    shown = rows[offset : offset + limit]
    usernames = dict(
        get_user_model().objects.filter(pk__in={r.rep_id for r in shown}).values_list("pk", "username")
    )
    following = None
    if offset + limit < len(rows):
        following = request.build_absolute_uri(
            f"{request.path}?{urlencode({'limit': limit, 'offset': offset + limit})}"
        )
    return {
        "count": len(rows),
        "count_exact": True,
        "limit": limit,
        "offset": offset,
        "next": following,
        "items": [suggestion_out(row, usernames) for row in shown],
    }


def contract_out(c: Contract) -> dict[str, Any]:
    return {
        "id": c.pk,
        "customer": c.customer,
        "account": {"id": c.account.pk, "name": c.account.name} if c.account else None,
        "amount": c.amount,
        "currency": c.currency,
        "signed_on": c.signed_on,
        "reference": c.reference,
        "status": "matched" if c.opportunity_id else "unmatched",
        "opportunity": {"id": c.opportunity.pk, "name": c.opportunity.name} if c.opportunity else None,
        "matched_at": c.matched_at,
        "match_note": c.match_note,
        "rep": user_ref_out(c.rep),
        "rep_basis": c.rep_basis,
        "imported_at": c.imported_at,
        "notified_at": c.notified_at,
    }


def contracts_qs(user: Any) -> QuerySet[Contract]:
    return visible(user, Contract).select_related("account", "opportunity", "rep")


@router.get("/contracts", response={200: page_of(ContractOut, "ContractPage"), **ERRORS})
def list_contracts(request: HttpRequest, filters: Query[ContractFilters]):
    """Contracts you can see, latest signature first. `status=unmatched`: the unlogged wins."""
    qs = contracts_qs(actor(request))
    if filters.status:
        qs = qs.filter(opportunity__isnull=filters.status == "unmatched")
    if filters.rep:
        qs = people_filter(qs, filters.rep, "rep__")
    qs = order(
        qs,
        filters.ordering,
        {"signed_on": "signed_on", "amount": "amount", "customer": "customer", "id": "id"},
        ["-signed_on", "-id"],
    )
    return page(request, qs, filters, contract_out)
