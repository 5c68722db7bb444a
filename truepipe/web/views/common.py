"""Helpers shared by the page views: refusals, history rows, paging and sorting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db.models import F, Model, QuerySet
from django.db.models.expressions import OrderBy
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from truepipe.core.errors import ServiceError
from truepipe.core.models import Via

PAGE_SIZE = 50
VIA_LABELS = dict(Via.choices)


def refuse(request: HttpRequest, error: ServiceError | str, status: int | None = None) -> HttpResponse:
    """A page that says plainly why the request was refused (never a traceback)."""
    message = error.message if isinstance(error, ServiceError) else error
    code = status or (error.status if isinstance(error, ServiceError) else 403)
    return render(request, "web/refused.html", {"message": message}, status=code)


def paginate(request: HttpRequest, queryset: QuerySet, per_page: int = PAGE_SIZE) -> Page:
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def sort_order(request: HttpRequest, columns: dict[str, str], default: str) -> tuple[str, list[OrderBy]]:
    """The requested sort key (validated against `columns`) and the ORDER BY it means.

    Empty values go last in both directions, on SQLite and PostgreSQL alike.
    """
    key = request.GET.get("sort") or default
    name = key.lstrip("-")
    if name not in columns:
        key, name = default, default.lstrip("-")
    field = columns[name]
    if key.startswith("-"):
        return key, [F(field).desc(nulls_last=True), F("id").desc()]
    return key, [F(field).asc(nulls_last=True), F("id").asc()]


@dataclass
class HistoryRow:
    changed_at: datetime
    who: str
    via: str
    field: str
    old: str
    new: str


def person_names(ids: Iterable[Any]) -> dict[str, str]:
    wanted = {int(i) for i in ids if str(i).isdigit()}
    if not wanted:
        return {}
    users = get_user_model().objects.filter(pk__in=wanted).only("username", "first_name", "last_name")
    return {str(u.pk): u.get_full_name() or u.username for u in users}


def names_of(queryset: QuerySet, ids: Iterable[Any], hidden: str) -> dict[str, str]:
    """{id: str(row)} for the ids the queryset (already visibility-scoped) holds, `hidden` otherwise."""
    wanted = {int(i) for i in ids if str(i).isdigit()}
    found = {str(row.pk): str(row) for row in queryset.filter(pk__in=wanted)} if wanted else {}
    return {str(i): found.get(str(i), hidden) for i in wanted}


def history_rows(changes: Iterable[Model], lookups: dict[str, Any]) -> list[HistoryRow]:
    """History rows with ids of related records shown as names, one query per related model.

    `lookups` maps a field name to a function taking the set of ids and returning {id: name}.
    """
    changes = list(changes)
    ids: dict[str, set[str]] = {name: set() for name in lookups}
    for change in changes:
        field = change.field  # type: ignore[attr-defined]
        if field in ids:
            ids[field].update(v for v in (change.old_value, change.new_value) if v)  # type: ignore[attr-defined]
    names = {field: lookups[field](values) for field, values in ids.items()}
    rows = []
    for change in changes:
        field = change.field  # type: ignore[attr-defined]
        mapping = names.get(field, {})
        old, new = change.old_value, change.new_value  # type: ignore[attr-defined]
        by = change.changed_by  # type: ignore[attr-defined]
        rows.append(
            HistoryRow(
                changed_at=change.changed_at,  # type: ignore[attr-defined]
                who=(by.get_full_name() or by.username) if by else "System",
                via=str(VIA_LABELS.get(change.via, change.via)),  # type: ignore[attr-defined]
                field=field.replace("_", " "),
                old=mapping.get(old, old) if old else "—",
                new=mapping.get(new, new) if new else "—",
            )
        )
    return rows
