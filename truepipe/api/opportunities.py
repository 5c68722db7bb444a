"""/opportunities: deals, their product lines and their field history."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from truepipe.accounts.models import Account
from truepipe.api import common
from truepipe.api.common import Id, actor, delete_version, etag, expected_version, order, page, visible_one
from truepipe.api.schemas import (
    ERRORS,
    AccountRef,
    HistoryOut,
    ListParams,
    PersonKey,
    StageKey,
    StageRef,
    Strict,
    UserRef,
    page_of,
)
from truepipe.core.errors import InvalidInput
from truepipe.core.history import check_version
from truepipe.core.models import Via
from truepipe.core.permissions import require_change
from truepipe.core.visibility import visible
from truepipe.pipeline import services
from truepipe.pipeline.models import Opportunity, OpportunityChange, OpportunityProduct, Product, StageKind

router = Router(tags=["opportunities"])


class OpportunityOut(Schema):
    id: int
    name: str
    account: AccountRef | None
    owner: UserRef
    stage: StageRef
    amount: Decimal | None = Field(description="Exact, as a string with two decimals.")
    currency: str
    close_date: date | None
    probability: int
    probability_overridden: bool
    forecast_category: str
    next_step: str
    next_step_date: date | None
    source: str
    competitor: str
    lost_reason: str
    is_open: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int


class OpportunityFields(Strict):
    account: Id | None = None
    owner: PersonKey | None = Field(None, description="A person's id or username; default: you.")
    stage: StageKey | None = Field(None, description="A stage's id or name; default: the first open stage.")
    amount: Decimal | None = Field(None, ge=0, lt=Decimal("1e14"), max_digits=16, decimal_places=2)
    currency: str | None = Field(None, max_length=3)
    close_date: date | None = None
    probability: int | None = Field(None, ge=0, le=100, description="null: the stage's default.")
    forecast_category: str | None = Field(None, max_length=16)
    next_step: str | None = Field(None, max_length=255)
    next_step_date: date | None = None
    source: str | None = Field(None, max_length=80)
    competitor: str | None = Field(None, max_length=120)
    lost_reason: str | None = Field(None, max_length=255)


class OpportunityCreate(OpportunityFields):
    name: str = Field(max_length=200)


class OpportunityPut(OpportunityCreate):
    version: Id | None = Field(None, description="The version you read (or send If-Match).")


class OpportunityPatch(OpportunityFields):
    name: str | None = Field(None, max_length=200)
    version: Id | None = Field(None, description="The version you read (or send If-Match).")


class OpportunityFilters(ListParams):
    owner: str | None = Field(None, max_length=150, description="A person's id or username.")
    stage: str | None = Field(None, max_length=80, description="A stage's id or name.")
    account: Id | None = None
    close_date_from: date | None = None
    close_date_to: date | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_since: datetime | None = None
    is_open: bool | None = None
    q: str | None = Field(None, max_length=200, description="Text in the deal's or the account's name.")


class LineOut(Schema):
    id: int
    product: Id
    product_name: str
    quantity: Decimal
    unit_price: Decimal
    total: Decimal


class LineIn(Strict):
    product: Id
    quantity: Decimal = Field(Decimal(1), gt=0, max_digits=12, decimal_places=2)
    unit_price: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2)


class LinesIn(Strict):
    lines: list[LineIn] = Field(max_length=500)
    version: Id | None = None


class LinesOut(Schema):
    version: int
    lines: list[LineOut]


ORDERING = {
    "name": "name",
    "amount": "amount",
    "close_date": "close_date",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "probability": "probability",
    "stage": "stage__order",
    "owner": "owner__username",
    "account": "account__name",
    "id": "id",
}


def base_queryset(user: Any, action: str = "view") -> QuerySet[Opportunity]:
    return visible(user, Opportunity, action).select_related("account", "owner", "stage")  # type: ignore[arg-type]


def out(opp: Opportunity) -> dict[str, Any]:
    return {
        "id": opp.pk,
        "name": opp.name,
        "account": {"id": opp.account.pk, "name": opp.account.name} if opp.account else None,
        "owner": common.user_ref_out(opp.owner),
        "stage": {"id": opp.stage.pk, "name": opp.stage.name, "kind": opp.stage.kind},
        "amount": opp.amount,
        "currency": opp.currency,
        "close_date": opp.close_date,
        "probability": opp.probability,
        "probability_overridden": opp.probability_overridden,
        "forecast_category": opp.forecast_category,
        "next_step": opp.next_step,
        "next_step_date": opp.next_step_date,
        "source": opp.source,
        "competitor": opp.competitor,
        "lost_reason": opp.lost_reason,
        "is_open": opp.stage.kind == StageKind.OPEN,
        "created_at": opp.created_at,
        "updated_at": opp.updated_at,
        "closed_at": opp.closed_at,
        "version": opp.version,
    }


def detail(request: HttpRequest, response: HttpResponse, pk: int) -> dict[str, Any]:
    opp = visible_one(actor(request), Opportunity, pk, base_queryset(actor(request)))
    response["ETag"] = etag(opp.version)
    return out(opp)


def to_changes(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Body fields -> service values: ids and names become the rows they name."""
    changes = dict(data)
    changes.pop("version", None)
    if "account" in changes:
        changes["account"] = common.ref(user, Account, changes["account"], "account")
    if "owner" in changes:
        if changes["owner"] is None:
            raise InvalidInput("A deal needs an owner.", fields={"owner": "Required."})
        changes["owner"] = common.person_ref(user, changes["owner"])
    if "stage" in changes:
        if changes["stage"] is None:
            raise InvalidInput("Choose a stage.", fields={"stage": "Required."})
        changes["stage"] = common.stage_ref(changes["stage"])
    for name in ("next_step", "source", "competitor", "lost_reason"):
        if name in changes and changes[name] is None:
            changes[name] = ""
    if "forecast_category" in changes and changes["forecast_category"] is None:
        changes.pop("forecast_category")
    if "currency" in changes and changes["currency"] is None:
        changes.pop("currency")
    return changes


@router.get("", response={200: page_of(OpportunityOut, "OpportunityPage"), **ERRORS})
def list_opportunities(request: HttpRequest, filters: Query[OpportunityFilters]):
    """Deals you can see, filtered and ordered; `ordering` defaults to close date."""
    qs = base_queryset(actor(request))
    f = filters
    if f.owner:
        qs = common.people_filter(qs, f.owner, "owner__")
    if f.stage:
        qs = common.stage_filter(qs, f.stage, "stage__")
    if f.account:
        qs = qs.filter(account_id=f.account)
    if f.close_date_from:
        qs = qs.filter(close_date__gte=f.close_date_from)
    if f.close_date_to:
        qs = qs.filter(close_date__lte=f.close_date_to)
    if f.created_from:
        qs = qs.filter(created_at__gte=common.day_start(f.created_from))
    if f.created_to:
        qs = qs.filter(created_at__lt=common.day_start(f.created_to, after=True))
    if f.updated_since:
        qs = qs.filter(updated_at__gte=f.updated_since)
    if f.is_open is not None:
        qs = qs.filter(stage__kind=StageKind.OPEN) if f.is_open else qs.exclude(stage__kind=StageKind.OPEN)
    qs = common.text_search(qs, f.q, "name", "account__name")
    qs = order(qs, f.ordering, ORDERING, ["close_date", "id"])
    return page(request, qs, f, out)


@router.post("", response={201: OpportunityOut, **ERRORS})
def create_opportunity(request: HttpRequest, response: HttpResponse, payload: OpportunityCreate):
    user = actor(request)
    changes = to_changes(user, payload.model_dump(exclude_unset=True))
    opp = services.create_opportunity(user, via=Via.API, **changes)
    response["ETag"] = etag(opp.version)
    response["Location"] = f"{request.path.rstrip('/')}/{opp.pk}"
    return Status(201, out(base_queryset(user).get(pk=opp.pk)))


@router.get("/{id}", response={200: OpportunityOut, **ERRORS})
def get_opportunity(request: HttpRequest, response: HttpResponse, id: Id):
    return detail(request, response, id)


def _update(request: HttpRequest, response: HttpResponse, pk: int, data: dict[str, Any]) -> dict[str, Any]:
    user = actor(request)
    visible_one(user, Opportunity, pk)
    version = expected_version(request, data.get("version"))
    changes = to_changes(user, data)
    services.update_opportunity(
        user, pk, changes, via=Via.API, expected_version=version, require_version=True
    )
    return detail(request, response, pk)


@router.patch("/{id}", response={200: OpportunityOut, **ERRORS})
def patch_opportunity(request: HttpRequest, response: HttpResponse, id: Id, payload: OpportunityPatch):
    """Change the fields you send; requires If-Match or `version`."""
    return _update(request, response, id, payload.model_dump(exclude_unset=True))


@router.put("/{id}", response={200: OpportunityOut, **ERRORS})
def put_opportunity(request: HttpRequest, response: HttpResponse, id: Id, payload: OpportunityPut):
    """Replace every writable field (absent ones are cleared); requires If-Match or `version`."""
    data = payload.model_dump()
    if data.get("owner") is None:
        data.pop("owner")
    if data.get("stage") is None:
        data.pop("stage")
    return _update(request, response, id, data)


@router.delete("/{id}", response={204: None, **ERRORS})
def delete_opportunity(request: HttpRequest, id: Id):
    """Soft-delete (history stays); requires If-Match."""
    user = actor(request)
    visible_one(user, Opportunity, id)
    version = delete_version(request)
    services.delete_opportunity(user, id, via=Via.API, expected_version=version, require_version=True)
    return Status(204, None)


def _lines(opp: Opportunity) -> dict[str, Any]:
    lines = OpportunityProduct.objects.filter(opportunity=opp).select_related("product").order_by("id")
    return {
        "version": opp.version,
        "lines": [
            {
                "id": line.pk,
                "product": line.product_id,
                "product_name": line.product.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "total": line.total,
            }
            for line in lines
        ],
    }


@router.get("/{id}/products", response={200: LinesOut, **ERRORS})
def get_product_lines(request: HttpRequest, response: HttpResponse, id: Id):
    opp = visible_one(actor(request), Opportunity, id)
    response["ETag"] = etag(opp.version)
    return _lines(opp)


@router.put("/{id}/products", response={200: LinesOut, **ERRORS})
def put_product_lines(request: HttpRequest, response: HttpResponse, id: Id, payload: LinesIn):
    """Replace the product lines; unit price defaults to the list price. Requires If-Match or `version`."""
    user = actor(request)
    visible_one(user, Opportunity, id)
    version = expected_version(request, payload.version)
    products = {p.pk: p for p in Product.objects.filter(pk__in=[line.product for line in payload.lines])}
    missing = [line.product for line in payload.lines if line.product not in products]
    if missing:
        raise InvalidInput(
            f"There is no product with id {missing[0]}.",
            fields={"lines": f"No product with id {missing[0]}."},
        )
    with transaction.atomic():
        # Lock the deal so the version check and the replacement are one step.
        opp = Opportunity.objects.select_for_update().get(pk=id)
        require_change(user, opp)
        check_version(opp, version, require=True)
        services.set_products(
            user,
            opp,
            [(products[line.product], line.quantity, line.unit_price) for line in payload.lines],
            via=Via.API,
        )
    response["ETag"] = etag(opp.version)
    return _lines(opp)


@router.get("/{id}/history", response={200: page_of(HistoryOut, "OpportunityHistoryPage"), **ERRORS})
def opportunity_history(request: HttpRequest, id: Id, params: Query[ListParams]):
    """Every recorded field change, oldest first (use ordering=-changed_at for newest first)."""
    opp = visible_one(actor(request), Opportunity, id)
    qs = OpportunityChange.objects.filter(opportunity=opp).select_related("changed_by")
    qs = order(qs, params.ordering, {"changed_at": "changed_at", "field": "field"}, ["changed_at", "id"])
    return page(request, qs, params, history_out)


def history_out(change: Any) -> dict[str, Any]:
    return {
        "id": change.pk,
        "field": change.field,
        "old_value": change.old_value,
        "new_value": change.new_value,
        "changed_at": change.changed_at,
        "changed_by": common.user_ref_out(change.changed_by),
        "via": change.via,
    }
