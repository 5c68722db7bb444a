"""The one write path for opportunities (and products on them).

Every entry point (form, board drag, API, import, bulk edit, capture) calls
these functions. They check permissions, validate, enforce the fields a stage
requires, record field history, bump the version and emit a WriteEvent that
later parts (rule evaluation) hook into, all in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from truepipe.core import hooks
from truepipe.core.bulk import copy_rows
from truepipe.core.errors import InvalidInput, NotFound, ServiceError, StageRequirementsMissing
from truepipe.core.history import check_version, current_value, diff, history_rows, serialise
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


def lock_opportunity(opportunity: Opportunity | int) -> Opportunity:
    """The live deal, locked for the rest of the caller's transaction (NotFound if gone)."""
    pk = opportunity.pk if isinstance(opportunity, Opportunity) else opportunity
    try:
        return (
            Opportunity.objects.select_for_update()
            .select_related("stage")
            .get(pk=pk, deleted_at__isnull=True)
        )
    except Opportunity.DoesNotExist:
        raise NotFound("That opportunity does not exist or was deleted.") from None


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
    with transaction.atomic():
        opp = lock_opportunity(opportunity)
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
    actor,
    opportunity: Opportunity,
    lines: list[tuple[Product, Decimal, Decimal | None]],
    *,
    via: str,
    at: datetime | None = None,
) -> list[OpportunityProduct]:
    """Replace the product lines of a deal; unit price defaults to the product's list price."""
    require_change(actor, opportunity)
    at = at or timezone.now()
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
            changed_at=at,
            via=via,
        )
    return created


# --- Bulk import -----------------------------------------------------------------------------------
# The importer's path: the same validation (_validate), the same stage effects and the same
# field history as create_opportunity / update_opportunity, but a batch at a time (one query to
# read the batch's existing rows, bulk inserts), so a million-row file imports in minutes.
# Stage requirements are not enforced; the gaps are returned so the importer reports them.


@dataclass
class OpportunityImport:
    """One row of an import: the fields to set, and the existing deal it updates (pk), if any."""

    fields: dict[str, Any]
    pk: int | None = None
    created_at: datetime | None = None
    product: Product | None = None
    # (system, value) to record as an ExternalId when the row creates a deal.
    external: tuple[str, str] | None = None


@dataclass
class ImportOutcome:
    action: str  # "created", "updated", "unchanged" or "invalid"
    pk: int | None = None
    error: ServiceError | None = None
    stage: Stage | None = None
    # The stage's required fields that are empty: imported anyway, reported as warnings.
    missing: list[str] = field(default_factory=list)


def import_opportunities(
    actor, items: Sequence[OpportunityImport], *, via: str = Via.IMPORT, at: datetime | None = None
) -> list[ImportOutcome]:
    """Create or update many opportunities; one outcome per item, in order.

    An invalid item is skipped (outcome "invalid" with the error); the caller decides whether that
    aborts the whole import. Updates write OpportunityChange rows exactly as update_opportunity does.
    """
    from truepipe.accounts.services import link_external_ids
    from truepipe.core.visibility import assignable_owners

    require_create(actor)
    at = at or timezone.now()
    assignable = None if actor is None else set(assignable_owners(actor).values_list("pk", flat=True))
    existing = Opportunity.objects.select_related("stage").in_bulk([item.pk for item in items if item.pk])
    lines = _product_lines([pk for pk in existing])
    default_stage = Stage.objects.filter(kind=StageKind.OPEN, is_active=True).first()
    currency = _default_currency()
    outcomes: list[ImportOutcome] = []
    created: list[tuple[dict[str, Any], OpportunityImport]] = []
    updated: list[Opportunity] = []
    changed_fields: set[str] = set()
    history: list[OpportunityChange] = []
    new_lines: list[OpportunityProduct] = []
    replaced_lines: list[int] = []
    for item in items:
        try:
            unknown = set(item.fields) - set(WRITABLE_FIELDS)
            if unknown:
                raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
            values = _validate(item.fields)
            if assignable is not None and "owner" in values and values["owner"].pk not in assignable:
                require_assignable(actor, values["owner"])
            if actor is not None:
                require_visible(actor, values.get("account"), "account")
            opp = existing.get(item.pk) if item.pk else None
            if item.pk and (opp is None or opp.deleted_at is not None):
                raise NotFound("That opportunity was deleted in truepipe; restore it or drop the row.")
            if opp is None:
                new, outcome = _import_new(values, item, at, default_stage, currency)
                created.append((new, item))
                outcomes.append(outcome)
                continue
            if actor is not None:
                require_change(actor, opp)
        except ServiceError as exc:
            outcomes.append(ImportOutcome("invalid", item.pk, error=exc))
            continue
        changed = _import_changes(opp, values, at)
        current_lines = lines.get(opp.pk, [])
        products_changed = item.product is not None and [pk for pk, _ in current_lines] != [item.product.pk]
        if products_changed:
            assert item.product is not None
            replaced_lines.append(opp.pk)
            new_lines.append(_line_for(opp, item.product))
            history.append(
                OpportunityChange(
                    opportunity=opp,
                    field="products",
                    old_value=", ".join(label for _, label in current_lines) or None,
                    new_value=f"1 x {item.product.name}",
                    changed_by=actor if getattr(actor, "pk", None) else None,
                    changed_at=at,
                    via=via,
                )
            )
        missing = missing_for_stage(opp.stage, {name: current_value(opp, name) for name in WRITABLE_FIELDS})
        if not changed and not products_changed:
            outcomes.append(ImportOutcome("unchanged", opp.pk, stage=opp.stage, missing=missing))
            continue
        opp.version += 1
        opp.updated_at = at
        updated.append(opp)
        changed_fields.update(changed)
        history.extend(history_rows(OpportunityChange, "opportunity", opp, changed, actor, via, at))
        outcomes.append(ImportOutcome("updated", opp.pk, stage=opp.stage, missing=missing))
    with transaction.atomic():
        if created:
            ids = insert_rows(Opportunity, [row for row, _ in created])
            index = iter(ids)
            for outcome in outcomes:
                if outcome.action == "created":
                    outcome.pk = next(index)
            link_external_ids(
                "opportunity",
                [(*item.external, pk) for pk, (_, item) in zip(ids, created, strict=True) if item.external],
            )
            insert_rows(
                OpportunityProduct,
                [
                    {
                        "opportunity": pk,
                        "product": item.product.pk,
                        "quantity": Decimal(1),
                        "unit_price": row["amount"] or item.product.list_price,
                    }
                    for pk, (row, item) in zip(ids, created, strict=True)
                    if item.product is not None
                ],
                returning=False,
            )
        if updated:
            columns = sorted(
                {*changed_fields, "version", "updated_at", "closed_at", "probability_overridden"}
                - {"products"}
            )
            Opportunity.objects.bulk_update(updated, columns, batch_size=500)
        if replaced_lines:
            OpportunityProduct.objects.filter(opportunity_id__in=replaced_lines).delete()
        for line in new_lines:
            line.opportunity_id = line.opportunity.pk
        OpportunityProduct.objects.bulk_create(new_lines, batch_size=1000)
        OpportunityChange.objects.bulk_create(history, batch_size=1000)
        actor_id = getattr(actor, "pk", None)
        if created:
            hooks.emit(
                hooks.WriteEvent(
                    "opportunity",
                    "create",
                    ids,
                    frozenset(WRITABLE_FIELDS),
                    actor_id,
                    via,
                    at,
                )
            )
        if updated:
            hooks.emit(
                hooks.WriteEvent(
                    "opportunity",
                    "update",
                    [opp.pk for opp in updated],
                    frozenset(changed_fields),
                    actor_id,
                    via,
                    at,
                )
            )
    return outcomes


def _closing_moment(close_date: date | None, at: datetime) -> datetime:
    """When an imported closed deal closed: its close date if known, else the import's moment."""
    if close_date is None:
        return at
    return _noon(close_date)


@functools.lru_cache(maxsize=8192)
def _noon(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(12)))


def _import_new(
    values: dict[str, Any], item: OpportunityImport, at: datetime, default_stage: Stage | None, currency: str
) -> tuple[dict[str, Any], ImportOutcome]:
    """The column values of a new deal (for insert_rows) and the outcome that reports it."""
    if not values.get("name"):
        raise InvalidInput("A deal needs a name.", fields={"name": "Required."})
    if values.get("owner") is None:
        raise InvalidInput("A deal needs an owner.", fields={"owner": "Required."})
    stage = values.get("stage") or default_stage
    if stage is None:
        raise InvalidInput("The pipeline has no stages yet: an admin must configure them first.")
    values["stage"] = stage
    missing = missing_for_stage(stage, values)
    values["probability_overridden"] = values.get("probability") is not None
    if not values["probability_overridden"]:
        values["probability"] = stage.probability
    if not values.get("currency"):
        values["currency"] = currency
    values.update(stage_effects(stage, at, values.get("forecast_category")))
    if stage.is_closed:
        values["closed_at"] = _closing_moment(values.get("close_date"), at)
    row = {**_NEW_DEAL, **values, "created_at": item.created_at or at, "updated_at": at}
    for name in ("owner", "stage", "account"):
        if row[name] is not None:
            row[name] = row[name].pk
    return row, ImportOutcome("created", None, stage=stage, missing=missing)


# Column defaults of a new deal, as the model declares them.
_NEW_DEAL: dict[str, Any] = {
    "account": None,
    "amount": None,
    "close_date": None,
    "next_step": "",
    "next_step_date": None,
    "source": "",
    "competitor": "",
    "lost_reason": "",
    "closed_at": None,
    "version": 1,
    "deleted_at": None,
}


def insert_rows(model: type[Model], rows: list[dict[str, Any]], *, returning: bool = True) -> list[int]:
    """INSERT many rows of plain values (foreign keys as ids); returns the new ids in order.

    bulk_create spends most of its time preparing each field of each instance; for a million
    imported rows that is minutes. This adapts values with the backend's own converters and sends
    multi-row INSERT ... RETURNING statements, which SQLite answers in order; PostgreSQL gets the
    rows by COPY (`_copy_rows`). All rows must have the same keys. The caller has validated the values.
    """
    if not rows:
        return []
    names = list(rows[0])
    by_name = {f.name: f for f in model._meta.concrete_fields}
    fields = [by_name[name] for name in names]
    ops = connection.ops
    adapters: list[Any] = []
    for model_field in fields:
        internal = model_field.get_internal_type()
        if internal == "DateTimeField":
            adapters.append(_memo(ops.adapt_datetimefield_value))
        elif internal == "DateField":
            adapters.append(_memo(ops.adapt_datefield_value))
        elif internal == "DecimalField":
            adapters.append(ops.adapt_decimalfield_value)
        elif internal == "JSONField":
            adapters.append(_json_adapter(model_field))
        else:
            adapters.append(None)
    columns = ", ".join(ops.quote_name(str(f.column)) for f in fields)
    table = ops.quote_name(model._meta.db_table)
    pk_column = ops.quote_name(str(by_name[model._meta.pk.name].column))
    adapted = [(index, adapt) for index, adapt in enumerate(adapters) if adapt is not None]
    if connection.vendor == "postgresql":
        return _copy_rows(model, fields, names, rows, adapted, returning=returning)
    # On SQLite, Django's cursor rewrites every %s of the statement to ? with a regex: with a
    # thousand rows per statement that costs more than the insert, so SQLite gets ? directly.
    sqlite = connection.vendor == "sqlite"
    per_row = "(" + ", ".join(["?" if sqlite else "%s"] * len(fields)) + ")"
    batch = max(1, _max_params() // len(fields))
    ids: list[int] = []
    connection.ensure_connection()
    with connection.cursor() as django_cursor:
        cursor = connection.connection.cursor() if sqlite else django_cursor
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            params: list[Any] = []
            for row in chunk:
                params.extend(_row_values(row, names, adapted))
            sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([per_row] * len(chunk))}"
            if returning:
                cursor.execute(f"{sql} RETURNING {pk_column}", params)
                ids.extend(row[0] for row in cursor.fetchall())
            else:
                cursor.execute(sql, params)
    return ids


def _row_values(row: dict[str, Any], names: list[str], adapted: list[Any]) -> list[Any]:
    """One row's values in column order, adapted for the database where an adapter is given."""
    values = [row[name] for name in names]
    for index, adapt in adapted:
        if values[index] is not None:
            values[index] = adapt(values[index])
    return values


def _copy_rows(
    model: type[Model],
    fields: list[Any],
    names: list[str],
    rows: list[dict[str, Any]],
    adapted: list[Any],
    *,
    returning: bool,
) -> list[int]:
    """PostgreSQL: the rows by COPY, the fastest way in (a multi-row INSERT of thousands of values
    spends longer in the driver, which finds every placeholder of the long statement, than in the
    server). With `returning`, the ids are taken from the table's sequence first, in order."""
    ops = connection.ops
    meta = model._meta
    columns = [str(f.column) for f in fields]
    ids: list[int] = []
    if returning:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, str(meta.pk.column), len(rows)],
            )
            ids = sorted(row[0] for row in cursor.fetchall())
        columns.insert(0, str(meta.pk.column))
    quoted = ", ".join(ops.quote_name(column) for column in columns)
    values = (_row_values(row, names, adapted) for row in rows)
    copy_rows(
        f"{ops.quote_name(meta.db_table)} ({quoted})",
        ([pk, *row] for pk, row in zip(ids, values, strict=True)) if returning else values,
    )
    return ids


def _json_adapter(model_field):  # type: ignore[no-untyped-def]
    """A JSON column's adapter; the empty list and object most rows carry are adapted once."""
    empty: dict[type, Any] = {}

    def adapt(value):  # type: ignore[no-untyped-def]
        if isinstance(value, list | dict) and not value:
            kind = type(value)
            if kind not in empty:
                empty[kind] = model_field.get_db_prep_save(value, connection)
            return empty[kind]
        return model_field.get_db_prep_save(value, connection)

    return adapt


# Adapted date and datetime values, shared across insert_rows calls of one process: a million
# imported rows carry only a few thousand distinct dates. Cleared when it grows large.
_ADAPTED: dict[tuple[str, Any], Any] = {}


def _memo(adapt):
    """Dates repeat across a million rows; adapt each distinct value once."""
    name = adapt.__name__

    def adapted(value):
        key = (name, value)
        try:
            return _ADAPTED[key]
        except KeyError:
            if len(_ADAPTED) > 100_000:
                _ADAPTED.clear()
            result = _ADAPTED[key] = adapt(value)
            return result

    return adapted


def _max_params() -> int:
    if connection.vendor == "sqlite":
        import sqlite3

        raw = connection.connection
        if raw is not None and hasattr(raw, "getlimit"):
            return min(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 30000)
        return 999
    return 30000


def _import_changes(opp: Opportunity, values: dict[str, Any], at: datetime) -> dict[str, tuple[Any, Any]]:
    """Apply `values` to `opp` in memory as update_opportunity would; returns {field: (old, new)}."""
    overridden = opp.probability_overridden
    if "probability" in values:
        overridden = values["probability"] is not None
        if not overridden:
            values.pop("probability")
    stage = values.get("stage", opp.stage)
    changed = diff(opp, values)
    derived: dict[str, Any] = {}
    if not overridden:
        derived["probability"] = stage.probability
    if "stage" in changed:
        derived.update(stage_effects(stage, at, values.get("forecast_category", opp.forecast_category)))
        if stage.is_closed:
            derived["closed_at"] = _closing_moment(values.get("close_date", opp.close_date), at)
    for name, value in derived.items():
        if name != "closed_at" and name not in changed and getattr(opp, name) != value:
            changed[name] = (getattr(opp, name), value)
    if not changed and overridden == opp.probability_overridden:
        return {}
    for name, (_, new) in changed.items():
        setattr(opp, name, new)
    if "closed_at" in derived:
        opp.closed_at = derived["closed_at"]
    if overridden != opp.probability_overridden:
        opp.probability_overridden = overridden
        changed.setdefault("probability", (opp.probability, opp.probability))
    return changed


def _product_lines(opportunity_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """{deal id: [(product id, "2 x Name"), ...]} for the deals of one import batch."""
    lines: dict[int, list[tuple[int, str]]] = {}
    if opportunity_ids:
        rows = OpportunityProduct.objects.filter(opportunity_id__in=opportunity_ids).values_list(
            "opportunity_id", "product_id", "quantity", "product__name"
        )
        for opp_id, product_id, quantity, name in rows:
            lines.setdefault(opp_id, []).append((product_id, f"{serialise(quantity)} x {name}"))
    return lines


def _line_for(opp: Opportunity, product: Product) -> OpportunityProduct:
    """One unit of the product; its price is the deal's amount when there is one, else list price."""
    price = opp.amount if opp.amount else product.list_price
    return OpportunityProduct(opportunity=opp, product=product, quantity=Decimal(1), unit_price=price)


def create_product(
    actor, *, name: str, code: str = "", family: str = "", list_price: Any = 0, currency: str | None = None
) -> Product:
    """Add a product to the catalogue (admins and the system only)."""
    from truepipe.core.errors import NotAllowed
    from truepipe.core.visibility import role_of

    if actor is not None and role_of(actor) != "admin":
        raise NotAllowed("Only an admin may change the product catalogue.")
    values = _validate_product(
        {
            "name": name,
            "code": code,
            "family": family,
            "list_price": list_price,
            "currency": currency or _default_currency(),
        }
    )
    if Product.objects.filter(name__iexact=values["name"]).exists():
        raise InvalidInput(f"There is already a product named {values['name']}.", fields={"name": "Taken."})
    return Product.objects.create(**values)


def update_product(actor, product: Product, changes: dict[str, Any]) -> Product:
    from truepipe.core.errors import NotAllowed
    from truepipe.core.visibility import role_of

    if actor is not None and role_of(actor) != "admin":
        raise NotAllowed("Only an admin may change the product catalogue.")
    values = _validate_product(changes)
    changed = [name for name, value in values.items() if getattr(product, name) != value]
    for name in changed:
        setattr(product, name, values[name])
    if changed:
        product.save(update_fields=changed)
    return product


def _validate_product(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "name" in out:
        out["name"] = (out["name"] or "").strip()
        if not out["name"] or len(out["name"]) > 120:
            raise InvalidInput(
                "A product needs a name of at most 120 characters.", fields={"name": "Required."}
            )
    for name, limit in (("code", 60), ("family", 60)):
        if name in out:
            out[name] = (out[name] or "").strip()[:limit]
    if "list_price" in out:
        try:
            price = Decimal(str(out["list_price"] if out["list_price"] is not None else 0))
        except (InvalidOperation, ValueError):
            raise InvalidInput(
                f"{out['list_price']!r} is not a price.", fields={"list_price": "Not a number."}
            ) from None
        if not price.is_finite() or price < 0 or price >= Decimal("1e12"):
            raise InvalidInput("The list price must be zero or more.", fields={"list_price": "Out of range."})
        out["list_price"] = price.quantize(Decimal("0.01"))
    if "currency" in out:
        out["currency"] = (out["currency"] or "").strip().upper()
        if len(out["currency"]) != 3 or not out["currency"].isalpha():
            raise InvalidInput(
                "Use a three-letter currency code such as USD.", fields={"currency": "Not a code."}
            )
    return out


# --- Pipeline configuration (stages) ---------------------------------------------------------------

STAGE_FIELDS = ("name", "kind", "probability", "forecast_category", "required_fields", "order", "is_active")


def create_stage(
    actor,
    *,
    name: str,
    kind: str = StageKind.OPEN,
    probability: int | None = None,
    forecast_category: str | None = None,
    required_fields: Iterable[str] = (),
    order: int | None = None,
    is_active: bool = True,
) -> Stage:
    """Add a stage to the pipeline (admins and the system only); defaults follow its kind."""
    _require_pipeline_admin(actor)
    values = _validate_stage(
        {"name": name, "kind": kind, "required_fields": list(required_fields), "is_active": is_active}
        | ({"probability": probability} if probability is not None else {})
        | ({"forecast_category": forecast_category} if forecast_category else {})
        | ({"order": order} if order is not None else {})
    )
    if Stage.objects.filter(name__iexact=values["name"]).exists():
        raise InvalidInput(f"There is already a stage named {values['name']}.", fields={"name": "Taken."})
    defaults = {
        StageKind.OPEN: (10, ForecastCategory.PIPELINE),
        StageKind.WON: (100, ForecastCategory.CLOSED),
        StageKind.LOST: (0, ForecastCategory.OMITTED),
    }[values["kind"]]
    values.setdefault("probability", defaults[0])
    values.setdefault("forecast_category", defaults[1])
    if "order" not in values:
        last = Stage.objects.order_by("-order").values_list("order", flat=True).first()
        values["order"] = (last or 0) + 10
    return Stage.objects.create(**values)


def update_stage(actor, stage: Stage, changes: dict[str, Any]) -> Stage:
    """Rename, reorder, re-weight or retire a stage. Its kind is fixed once deals are in it:
    changing it would open or close those deals without a trace in their history."""
    _require_pipeline_admin(actor)
    unknown = set(changes) - set(STAGE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    values = _validate_stage(changes)
    if "name" in values and Stage.objects.filter(name__iexact=values["name"]).exclude(pk=stage.pk).exists():
        raise InvalidInput(f"There is already a stage named {values['name']}.", fields={"name": "Taken."})
    if values.get("kind", stage.kind) != stage.kind and stage.opportunities.exists():
        raise InvalidInput(
            f"Deals are in {stage.name}: move them before changing whether it is open, won or lost.",
            fields={"kind": "The stage has deals."},
        )
    changed = [name for name, value in values.items() if getattr(stage, name) != value]
    for name in changed:
        setattr(stage, name, values[name])
    if changed:
        stage.save(update_fields=changed)
    return stage


def _require_pipeline_admin(actor) -> None:
    from truepipe.core.errors import NotAllowed
    from truepipe.core.visibility import role_of

    if actor is not None and role_of(actor) != "admin":
        raise NotAllowed("Only an admin may change the pipeline's stages.")


def _validate_stage(values: dict[str, Any]) -> dict[str, Any]:
    from truepipe.pipeline.models import REQUIRABLE_FIELDS

    out = dict(values)
    errors: dict[str, str] = {}
    if "name" in out:
        out["name"] = (out["name"] or "").strip()
        if not out["name"] or len(out["name"]) > 80:
            errors["name"] = "A name of 1 to 80 characters."
    if "kind" in out and out["kind"] not in StageKind.values:
        errors["kind"] = f"One of: {', '.join(StageKind.values)}."
    if "probability" in out and (
        isinstance(out["probability"], bool)
        or not isinstance(out["probability"], int)
        or not 0 <= out["probability"] <= 100
    ):
        errors["probability"] = "A whole number from 0 to 100."
    if "forecast_category" in out and out["forecast_category"] not in ForecastCategory.values:
        errors["forecast_category"] = f"One of: {', '.join(ForecastCategory.values)}."
    if "required_fields" in out:
        fields = list(dict.fromkeys(out["required_fields"] or []))
        unknown = [name for name in fields if name not in REQUIRABLE_FIELDS]
        if unknown:
            errors["required_fields"] = f"Not a requirable field: {', '.join(map(str, unknown))}."
        out["required_fields"] = fields
    if "order" in out and (
        isinstance(out["order"], bool) or not isinstance(out["order"], int) or not 0 <= out["order"] < 2**31
    ):
        errors["order"] = "A whole number of zero or more."
    if "is_active" in out:
        out["is_active"] = bool(out["is_active"])
    if errors:
        name, reason = next(iter(errors.items()))
        raise InvalidInput(f"{name.replace('_', ' ').capitalize()}: {reason}", fields=errors)
    return out
