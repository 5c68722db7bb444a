"""The one write path for opportunities (and products on them).

Every entry point (form, board drag, API, import, bulk edit, capture) calls
these functions. They check permissions, validate, enforce the fields a stage
requires, record field history, bump the version and emit a WriteEvent that
later parts (rule evaluation) hook into, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from truepipe.core import hooks
from truepipe.core.errors import InvalidInput, NotFound, StageRequirementsMissing
from truepipe.core.history import check_version, diff, history_rows
from truepipe.core.models import Via
from truepipe.core.permissions import require_assignable, require_change, require_create, require_visible
from truepipe.pipeline.models import (
    ForecastCategory,
    Opportunity,
    OpportunityChange,
    OpportunityProduct,
    Product,
    Stage,
    StageKind,
)

# Fields a writer may set; everything else (version, timestamps) is the service's job.
WRITABLE_FIELDS = (
    "name",
    "account",
    "owner",
    "stage",
    "amount",
    "currency",
    "close_date",
    "probability",
    "forecast_category",
    "next_step",
    "next_step_date",
    "source",
    "competitor",
    "lost_reason",
)
# Fields whose change counts as progress (the engine's "last progress" clock).
PROGRESS_FIELDS = frozenset({"stage", "amount"})


def missing_for_stage(stage: Stage, values: dict[str, Any]) -> list[str]:
    """The stage's required fields that are empty in `values`."""
    return [name for name in stage.required_fields if values.get(name) in (None, "")]


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    """Type and range checks shared by create and update. Returns normalised values."""
    errors: dict[str, str] = {}
    out = dict(values)
    if "name" in out:
        out["name"] = (out["name"] or "").strip()
        if not out["name"]:
            errors["name"] = "A deal needs a name."
        elif len(out["name"]) > 200:
            errors["name"] = "At most 200 characters."
    if out.get("amount") is not None:
        try:
            amount = Decimal(str(out["amount"]))
        except (InvalidOperation, ValueError):
            errors["amount"] = f"{out['amount']!r} is not a number."
        else:
            if not amount.is_finite() or amount < 0:
                errors["amount"] = "The amount must be zero or more."
            elif amount >= Decimal("1e14"):
                errors["amount"] = "The amount is too large."
            else:
                out["amount"] = amount.quantize(Decimal("0.01"))
    if "currency" in out:
        currency = (out["currency"] or "").strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            errors["currency"] = "Use a three-letter currency code such as USD or EUR."
        out["currency"] = currency
    if out.get("probability") is not None:
        try:
            probability = int(out["probability"])
        except (TypeError, ValueError):
            errors["probability"] = "The probability is a whole number from 0 to 100."
        else:
            if not 0 <= probability <= 100:
                errors["probability"] = "The probability is a whole number from 0 to 100."
            out["probability"] = probability
    if out.get("forecast_category") and out["forecast_category"] not in ForecastCategory.values:
        errors["forecast_category"] = f"One of: {', '.join(ForecastCategory.values)}."
    for name in ("close_date", "next_step_date"):
        value = out.get(name)
        if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
            errors[name] = "A date is needed (YYYY-MM-DD)."
    for name, limit in (("next_step", 255), ("source", 80), ("competitor", 120), ("lost_reason", 255)):
        if name in out:
            out[name] = (out[name] or "").strip()
            if len(out[name]) > limit:
                errors[name] = f"At most {limit} characters."
    if "stage" in out and not isinstance(out["stage"], Stage):
        errors["stage"] = "Choose a stage."
    if "owner" in out and out["owner"] is None:
        errors["owner"] = "A deal needs an owner."
    if errors:
        first = next(iter(errors.items()))
        raise InvalidInput(f"{first[0].replace('_', ' ').capitalize()}: {first[1]}", fields=errors)
    return out


def stage_effects(stage: Stage, at: datetime, explicit_category: str | None) -> dict[str, Any]:
    """What entering `stage` does: the closing stamp, and the stage's forecast category
    unless the writer chose one for an open stage in the same write."""
    if stage.kind == StageKind.OPEN:
        return {"closed_at": None, "forecast_category": explicit_category or stage.forecast_category}
    category = ForecastCategory.CLOSED if stage.kind == StageKind.WON else ForecastCategory.OMITTED
    return {"closed_at": at, "forecast_category": category}


def create_opportunity(
    actor,
    *,
    via: str,
    at: datetime | None = None,
    enforce_stage: bool = True,
    **fields: Any,
) -> Opportunity:
    """Create an opportunity. `enforce_stage=False` is for imports, which report gaps as warnings."""
    require_create(actor)
    unknown = set(fields) - set(WRITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    at = at or timezone.now()
    values = _validate(fields)
    values.setdefault("owner", actor)
    if values.get("owner") is None:
        raise InvalidInput("A deal needs an owner.", fields={"owner": "Required."})
    if "name" not in values:
        raise InvalidInput("A deal needs a name.", fields={"name": "Required."})
    stage = values.get("stage") or Stage.objects.filter(kind=StageKind.OPEN, is_active=True).first()
    if stage is None:
        raise InvalidInput("The pipeline has no stages yet: an admin must configure them first.")
    values["stage"] = stage
    require_assignable(actor, values["owner"])
    require_visible(actor, values.get("account"), "account")
    if enforce_stage:
        missing = missing_for_stage(stage, values)
        if missing:
            raise StageRequirementsMissing(stage, missing)
    values["probability_overridden"] = values.get("probability") is not None
    if not values["probability_overridden"]:
        values["probability"] = stage.probability
    values.setdefault("currency", _default_currency())
    values.update(stage_effects(stage, at, values.get("forecast_category")))
    with transaction.atomic():
        opp = Opportunity.objects.create(**values, created_at=at, updated_at=at)
        hooks.emit(
            hooks.WriteEvent(
                kind="opportunity",
                action="create",
                object_ids=[opp.pk],
                changed_fields=frozenset(values),
                actor_id=getattr(actor, "pk", None),
                via=via,
                at=at,
            )
        )
    return opp


def _default_currency() -> str:
    from django.conf import settings

    return settings.TRUEPIPE_DEFAULT_CURRENCY


def update_opportunity(
    actor,
    opportunity: Opportunity | int,
    changes: dict[str, Any],
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
    at: datetime | None = None,
    enforce_stage: bool = True,
) -> Opportunity:
    """Change some fields of an opportunity, with history and a version check.

    Takes a row lock (PostgreSQL) / the write lock (SQLite IMMEDIATE) and diffs
    against the row as stored, so concurrent writers never lose each other's
    changes: a writer with a stale `expected_version` gets ConcurrencyConflict.
    """
    unknown = set(changes) - set(WRITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown or read-only field(s): {', '.join(sorted(unknown))}.")
    at = at or timezone.now()
    values = _validate(changes)
    pk = opportunity.pk if isinstance(opportunity, Opportunity) else opportunity
    with transaction.atomic():
        try:
            opp = (
                Opportunity.objects.select_for_update()
                .select_related("stage")
                .get(pk=pk, deleted_at__isnull=True)
            )
        except Opportunity.DoesNotExist:
            raise NotFound("That opportunity does not exist or was deleted.") from None
        require_change(actor, opp)
        check_version(opp, expected_version, require=require_version)
        if "owner" in values:
            require_assignable(actor, values["owner"])
        if "account" in values:
            require_visible(actor, values["account"], "account")
        # probability=None means "back to the stage's default".
        overridden = opp.probability_overridden
        if "probability" in values:
            overridden = values["probability"] is not None
            if not overridden:
                values.pop("probability")
        stage = values.get("stage", opp.stage)
        changed = diff(opp, values)
        entering = "stage" in changed
        if enforce_stage:
            state = {name: getattr(opp, name) for name in WRITABLE_FIELDS}
            state.update(values)
            missing = missing_for_stage(stage, state)
            # Entering a stage needs all its fields; staying in one forbids clearing them.
            if not entering:
                missing = [name for name in missing if name in changed]
            if missing:
                raise StageRequirementsMissing(stage, missing)
        derived: dict[str, Any] = {}
        if not overridden:
            derived["probability"] = stage.probability
        if entering:
            derived.update(stage_effects(stage, at, values.get("forecast_category")))
        for name, value in derived.items():
            if name != "closed_at" and name not in changed and getattr(opp, name) != value:
                changed[name] = (getattr(opp, name), value)
        overridden_changed = overridden != opp.probability_overridden
        if not changed and not overridden_changed:
            return opp
        for name, (_, new) in changed.items():
            setattr(opp, name, new)
        if "closed_at" in derived:
            opp.closed_at = derived["closed_at"]
        opp.probability_overridden = overridden
        opp.version += 1
        opp.updated_at = at
        opp.save()
        OpportunityChange.objects.bulk_create(
            history_rows(OpportunityChange, "opportunity", opp, changed, actor, via, at)
        )
        hooks.emit(
            hooks.WriteEvent(
                kind="opportunity",
                action="update",
                object_ids=[opp.pk],
                changed_fields=frozenset(changed),
                actor_id=getattr(actor, "pk", None),
                via=via,
                at=at,
            )
        )
    return opp


def move_to_stage(
    actor,
    opportunity: Opportunity | int,
    stage: Stage,
    *,
    via: str = Via.BOARD,
    extra: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> Opportunity:
    """A board drag: the stage plus whatever fields the stage asked for."""
    return update_opportunity(
        actor, opportunity, {"stage": stage, **(extra or {})}, via=via, expected_version=expected_version
    )


def delete_opportunity(
    actor,
    opportunity: Opportunity | int,
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
) -> None:
    """Soft-delete: the row and its history stay for audit and as-of evaluation."""
    pk = opportunity.pk if isinstance(opportunity, Opportunity) else opportunity
    at = timezone.now()
    with transaction.atomic():
        try:
            opp = Opportunity.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Opportunity.DoesNotExist:
            raise NotFound("That opportunity does not exist or was deleted.") from None
        require_change(actor, opp)
        check_version(opp, expected_version, require=require_version)
        opp.deleted_at = at
        opp.version += 1
        opp.save(update_fields=["deleted_at", "version"])
        OpportunityChange.objects.create(
            opportunity=opp,
            field="deleted",
            old_value=None,
            new_value=at.isoformat(),
            changed_by=actor if getattr(actor, "pk", None) else None,
            changed_at=at,
            via=via,
        )
        hooks.emit(
            hooks.WriteEvent(
                "opportunity", "delete", [opp.pk], frozenset({"deleted"}), getattr(actor, "pk", None), via, at
            )
        )


def bulk_update_opportunities(
    actor, opportunities: Iterable[Opportunity | int], changes: dict[str, Any], *, via: str = Via.BULK
) -> list[Opportunity]:
    """Apply the same change to many deals: all or nothing, each through update_opportunity.

    A bulk "mark lost" therefore needs the lost reason exactly as a single edit does.
    """
    with transaction.atomic():
        return [update_opportunity(actor, opp, changes, via=via) for opp in opportunities]


def mark_lost(
    actor, opportunities: Iterable[Opportunity | int], reason: str, *, via: str = Via.BULK
) -> list[Opportunity]:
    if not (reason or "").strip():
        raise InvalidInput(
            "Say why the deal was lost.", fields={"lost_reason": "Required to mark a deal lost."}
        )
    lost = Stage.objects.filter(kind=StageKind.LOST, is_active=True).order_by("order").first()
    if lost is None:
        raise InvalidInput("The pipeline has no lost stage.")
    return bulk_update_opportunities(actor, opportunities, {"stage": lost, "lost_reason": reason}, via=via)


def set_products(
    actor, opportunity: Opportunity, lines: list[tuple[Product, Decimal, Decimal | None]], *, via: str
) -> list[OpportunityProduct]:
    """Replace the product lines of a deal; unit price defaults to the product's list price."""
    require_change(actor, opportunity)
    with transaction.atomic():
        OpportunityProduct.objects.filter(opportunity=opportunity).delete()
        created = OpportunityProduct.objects.bulk_create(
            OpportunityProduct(
                opportunity=opportunity,
                product=product,
                quantity=quantity,
                unit_price=product.list_price if price is None else price,
            )
            for product, quantity, price in lines
        )
        OpportunityChange.objects.create(
            opportunity=opportunity,
            field="products",
            old_value=None,
            new_value=", ".join(f"{line.quantity} x {line.product.name}" for line in created) or None,
            changed_by=actor if getattr(actor, "pk", None) else None,
            changed_at=timezone.now(),
            via=via,
        )
    return created
