"""Shared mechanics of a tracked write: diff, history rows, version bump."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import models

from truepipe.core.errors import ConcurrencyConflict, PreconditionRequired


def serialise(value: Any) -> str | None:
    """How a field value is written into history: ids for relations, ISO for dates."""
    if value is None or value == "":
        return None
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def current_value(instance: models.Model, name: str) -> Any:
    field = instance._meta.get_field(name)
    if isinstance(field, models.ForeignKey):
        return getattr(instance, field.attname)
    return getattr(instance, name)


def comparable(instance: models.Model, name: str, value: Any) -> Any:
    field = instance._meta.get_field(name)
    if isinstance(field, models.ForeignKey):
        return value.pk if isinstance(value, models.Model) else value
    return value


def check_version(instance: models.Model, expected_version: int | None, *, require: bool) -> None:
    current = instance.version  # type: ignore[attr-defined]
    if expected_version is None:
        if require:
            raise PreconditionRequired(
                "Send the version you read (If-Match header or a 'version' field) so a stale write cannot "
                "overwrite someone else's change."
            )
        return
    if int(expected_version) != current:
        raise ConcurrencyConflict(instance, int(expected_version), current)


def diff(instance: models.Model, changes: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (old, new)} for the fields whose value actually changes."""
    result = {}
    for name, new in changes.items():
        old = current_value(instance, name)
        if comparable(instance, name, new) != old:
            field = instance._meta.get_field(name)
            if isinstance(field, models.ForeignKey):
                old_obj = getattr(instance, name)
                result[name] = (old_obj, new)
            else:
                result[name] = (old, new)
    return result


def history_rows(history_model, parent_field: str, instance, changed, actor, via: str, at) -> list:
    return [
        history_model(
            **{parent_field: instance},
            field=name,
            old_value=serialise(old),
            new_value=serialise(new),
            changed_by=actor if getattr(actor, "pk", None) else None,
            changed_at=at,
            via=via,
        )
        for name, (old, new) in changed.items()
    ]
