"""/products and /stages: the configuration every deal refers to. Everyone signed in may read them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from truepipe.api.common import Id, actor, order, page
from truepipe.api.errors import ApiError
from truepipe.api.schemas import ERRORS, ListParams, Strict, page_of
from truepipe.pipeline import services
from truepipe.pipeline.models import Product, Stage

products_router = Router(tags=["products"])
stages_router = Router(tags=["stages"])


class ProductOut(Schema):
    id: int
    name: str
    code: str
    family: str
    list_price: Decimal
    currency: str
    is_active: bool


class ProductFilters(ListParams):
    family: str | None = Field(None, max_length=60)
    is_active: bool | None = None
    q: str | None = Field(None, max_length=120, description="Text in the name or code.")


class ProductCreate(Strict):
    name: str = Field(max_length=120)
    code: str = Field("", max_length=60)
    family: str = Field("", max_length=60)
    list_price: Decimal = Field(Decimal(0), ge=0, lt=Decimal("1e12"), max_digits=14, decimal_places=2)
    currency: str | None = Field(None, max_length=3)


class ProductPatch(Strict):
    name: str | None = Field(None, max_length=120)
    code: str | None = Field(None, max_length=60)
    family: str | None = Field(None, max_length=60)
    list_price: Decimal | None = Field(None, ge=0, lt=Decimal("1e12"), max_digits=14, decimal_places=2)
    currency: str | None = Field(None, max_length=3)
    is_active: bool | None = None


class StageOut(Schema):
    id: int
    name: str
    order: int
    kind: str
    probability: int
    forecast_category: str
    required_fields: list[str]
    is_active: bool


class StageCreate(Strict):
    name: str = Field(max_length=80)
    kind: str = Field("open", max_length=8, description="open, won or lost.")
    probability: int | None = Field(None, ge=0, le=100, description="Default: 10 open, 100 won, 0 lost.")
    forecast_category: str | None = Field(None, max_length=16)
    required_fields: list[str] = Field(default_factory=list, max_length=20)
    order: int | None = Field(None, ge=0, lt=2**31, description="Position; default: after the last stage.")
    is_active: bool = True


class StagePatch(Strict):
    name: str | None = Field(None, max_length=80)
    kind: str | None = Field(None, max_length=8)
    probability: int | None = Field(None, ge=0, le=100)
    forecast_category: str | None = Field(None, max_length=16)
    required_fields: list[str] | None = Field(None, max_length=20)
    order: int | None = Field(None, ge=0, lt=2**31)
    is_active: bool | None = None


class StageFilters(ListParams):
    kind: str | None = Field(None, max_length=8)
    is_active: bool | None = None


def product_out(product: Product) -> dict[str, Any]:
    return {
        "id": product.pk,
        "name": product.name,
        "code": product.code,
        "family": product.family,
        "list_price": product.list_price,
        "currency": product.currency,
        "is_active": product.is_active,
    }


def stage_out(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.pk,
        "name": stage.name,
        "order": stage.order,
        "kind": stage.kind,
        "probability": stage.probability,
        "forecast_category": stage.forecast_category,
        "required_fields": list(stage.required_fields or []),
        "is_active": stage.is_active,
    }


@products_router.get("", response={200: page_of(ProductOut, "ProductPage"), **ERRORS})
def list_products(request: HttpRequest, filters: Query[ProductFilters]):
    f = filters
    qs = Product.objects.all()
    if f.family:
        qs = qs.filter(family__iexact=f.family)
    if f.is_active is not None:
        qs = qs.filter(is_active=f.is_active)
    if f.q and f.q.strip():
        qs = qs.filter(Q(name__icontains=f.q.strip()) | Q(code__icontains=f.q.strip()))
    qs = order(
        qs, f.ordering, {"name": "name", "list_price": "list_price", "family": "family", "id": "id"}, ["name"]
    )
    return page(request, qs, f, product_out)


@products_router.get("/{id}", response={200: ProductOut, **ERRORS})
def get_product(request: HttpRequest, id: Id):
    product = Product.objects.filter(pk=id).first()
    if product is None:
        raise ApiError(404, "There is no product with that id.")
    return product_out(product)


@products_router.post("", response={201: ProductOut, **ERRORS})
def create_product(request: HttpRequest, payload: ProductCreate):
    """Admins only."""
    product = services.create_product(actor(request), **payload.model_dump())
    return Status(201, product_out(product))


@products_router.patch("/{id}", response={200: ProductOut, **ERRORS})
def update_product(request: HttpRequest, id: Id, payload: ProductPatch):
    """Admins only."""
    product = Product.objects.filter(pk=id).first()
    if product is None:
        raise ApiError(404, "There is no product with that id.")
    changes = {
        name: value for name, value in payload.model_dump(exclude_unset=True).items() if value is not None
    }
    services.update_product(actor(request), product, changes)
    return product_out(product)


@stages_router.get("", response={200: page_of(StageOut, "StagePage"), **ERRORS})
def list_stages(request: HttpRequest, filters: Query[StageFilters]):
    """The pipeline in order."""
    f = filters
    qs = Stage.objects.all()
    if f.kind:
        qs = qs.filter(kind=f.kind)
    if f.is_active is not None:
        qs = qs.filter(is_active=f.is_active)
    qs = order(
        qs,
        f.ordering,
        {"order": "order", "name": "name", "probability": "probability", "id": "id"},
        ["order"],
    )
    return page(request, qs, f, stage_out)


@stages_router.get("/{id}", response={200: StageOut, **ERRORS})
def get_stage(request: HttpRequest, id: Id):
    stage = Stage.objects.filter(pk=id).first()
    if stage is None:
        raise ApiError(404, "There is no stage with that id.")
    return stage_out(stage)


@stages_router.post("", response={201: StageOut, **ERRORS})
def create_stage(request: HttpRequest, payload: StageCreate):
    """Admins only."""
    stage = services.create_stage(actor(request), **payload.model_dump())
    return Status(201, stage_out(stage))


@stages_router.patch("/{id}", response={200: StageOut, **ERRORS})
def update_stage(request: HttpRequest, id: Id, payload: StagePatch):
    """Admins only. A stage's kind cannot change while deals are in it."""
    stage = Stage.objects.filter(pk=id).first()
    if stage is None:
        raise ApiError(404, "There is no stage with that id.")
    changes = {
        name: value for name, value in payload.model_dump(exclude_unset=True).items() if value is not None
    }
    services.update_stage(actor(request), stage, changes)
    return stage_out(stage)
