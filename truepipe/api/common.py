"""Shared mechanics of the endpoints: the caller, pages, ordering, references and versions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from pydantic import Field

from truepipe.api.auth import JsonParser
from truepipe.api.errors import ApiError
from truepipe.core.errors import InvalidInput, NotFound
from truepipe.core.visibility import visible, visible_users
from truepipe.pipeline.models import Stage

M = TypeVar("M", bound=Model)

# Database ids are 64-bit; anything larger is refused by validation instead of by the driver.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# An offset beyond this is certainly a mistake and would overflow some databases' LIMIT arithmetic.
MAX_OFFSET = 2**31 - 1
DEFAULT_LIMIT = 50


def actor(request: HttpRequest) -> Any:
    """The authenticated user (token or session); endpoints only run once auth succeeded."""
    return request.auth  # type: ignore[attr-defined]


# --- pages ------------------------------------------------------------------------------------------


def page(request: HttpRequest, qs: QuerySet, params: Any, serialise: Callable[[Any], Any]) -> dict[str, Any]:
    """The list envelope: {"count", "count_exact", "limit", "offset", "next", "items"}.

    Three queries plus prefetches: a bounded count, the page's ids, the page's rows.

    `params` is the endpoint's query schema: a parameter it does not declare is refused, so a
    typo (`?onwer=5`) is an error instead of a silently unfiltered list.
    """
    accepted = sorted(type(params).model_fields)
    unknown = sorted(set(request.GET) - set(accepted))
    if unknown:
        raise ApiError(
            400,
            f"Unknown query parameter {unknown[0]!r}; this list accepts: {', '.join(accepted)}.",
            fields={name: "Unknown parameter." for name in unknown},
        )
    maximum = settings.TRUEPIPE_API_PAGE_SIZE_MAX
    limit = DEFAULT_LIMIT if params.limit is None else params.limit
    offset = 0 if params.offset is None else params.offset
    if not 1 <= limit <= maximum:
        raise ApiError(
            400, f"Limit: a whole number from 1 to {maximum}.", fields={"limit": f"1 to {maximum}."}
        )
    if not 0 <= offset <= MAX_OFFSET:
        raise ApiError(400, "Offset: a whole number of zero or more.", fields={"offset": "Zero or more."})
    # Counting a million rows on every page costs more than the page: count exactly up to a
    # ceiling past this page, and beyond it say the count is a lower bound.
    ceiling = offset + limit + settings.TRUEPIPE_API_COUNT_MAX
    count = qs.order_by().values("pk")[: ceiling + 1].count()
    exact = count <= ceiling
    count = min(count, ceiling)
    # The page's ids first, from the listed table alone (an index in list order gives the first
    # rows of a million without a sort), then those rows with their related objects.
    ids = list(qs.values_list("pk", flat=True)[offset : offset + limit])
    found = {row.pk: row for row in qs.order_by().filter(pk__in=ids)}
    rows = [found[pk] for pk in ids if pk in found]
    next_url = None
    if offset + limit < count:
        params = request.GET.copy()
        params["limit"] = str(limit)
        params["offset"] = str(offset + limit)
        next_url = request.build_absolute_uri(
            f"{request.path}?{urlencode(sorted(params.lists()), doseq=True)}"
        )
    items = [serialise(row) for row in rows]
    return {
        "count": count,
        "count_exact": exact,
        "limit": limit,
        "offset": offset,
        "next": next_url,
        "items": items,
    }


def order(
    qs: QuerySet[M], ordering: str | None, allowed: Mapping[str, str], default: Iterable[str]
) -> QuerySet[M]:
    """Apply `?ordering=-amount,close_date` through a whitelist of API name -> ORM path.

    The primary key is always the last key so pages never overlap or skip rows.
    """
    keys: list[str] = []
    if ordering:
        for raw in ordering.split(","):
            item = raw.strip()
            if not item:
                continue
            descending = item.startswith("-")
            name = item.lstrip("-+")
            if name not in allowed:
                choices = ", ".join(sorted(allowed))
                raise ApiError(
                    400,
                    f"Cannot order by {name!r}. Use one or more of: {choices} (prefix '-' for descending).",
                    fields={"ordering": f"Unknown field {name!r}."},
                )
            keys.append(("-" if descending else "") + allowed[name])
    if not keys:
        keys = list(default)
    if not any(key.lstrip("-") in ("id", "pk") for key in keys):
        # The tie-breaker follows the last key's direction, so one index read backwards serves
        # `-amount` (amount, id) as well as `amount`.
        keys.append("-id" if keys[-1].startswith("-") else "id")
    return qs.order_by(*keys)


# --- references in request bodies and filters -------------------------------------------------------


def visible_one(user: Any, model: type[M], pk: int, qs: QuerySet[M] | None = None) -> M:
    """The row if `user` may see it; otherwise the same 404 whether it exists or not."""
    base = visible(user, model) if qs is None else qs
    obj = base.filter(pk=pk).first() if 1 <= pk <= MAX_ID else None
    if obj is None:
        raise NotFound(f"That {model._meta.verbose_name} does not exist or you cannot see it.")
    return obj


def ref(user: Any, model: type[M], pk: int | None, field: str) -> M | None:
    """A referenced row in a body: unknown and invisible ids get the same 400."""
    if pk is None:
        return None
    obj = visible(user, model).filter(pk=pk).first() if 1 <= pk <= MAX_ID else None
    if obj is None:
        label = model._meta.verbose_name
        raise InvalidInput(
            f"{field.replace('_', ' ').capitalize()}: no {label} with id {pk} that you can see.",
            fields={field: f"No {label} with id {pk}."},
        )
    return obj


def refs(user: Any, model: type[M], pks: list[int], field: str) -> list[M]:
    wanted = list(dict.fromkeys(pks))
    found = {obj.pk: obj for obj in visible(user, model).filter(pk__in=[pk for pk in wanted if pk <= MAX_ID])}
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        label = model._meta.verbose_name
        raise InvalidInput(
            f"{field.capitalize()}: no {label} with id {missing[0]} that you can see.",
            fields={field: f"No {label} with id {', '.join(map(str, missing))}."},
        )
    return [found[pk] for pk in wanted]


def person_ref(user: Any, value: int | str | None, field: str = "owner") -> Any:
    """A person by id or username, among the people `user` may see."""
    if value is None:
        return None
    person = people_filter(visible_users(user), value).first()
    if person is None:
        raise InvalidInput(
            f"{field.capitalize()}: nobody called {value!r} that you can see.",
            fields={field: f"No person {value!r}."},
        )
    return person


def people_filter(qs: QuerySet, value: int | str, path: str = "") -> QuerySet:
    """Filter `qs` to one person given as an id or a username (case-insensitive)."""
    text = str(value).strip()
    if text.isdigit():
        pk = int(text)
        return qs.filter(**{f"{path}id": pk}) if pk <= MAX_ID else qs.none()
    # Resolved to ids first (one small query): `owner_id IN (...)` lets the database walk the
    # owner's own index in list order instead of scanning everyone's deals for a join match.
    people = get_user_model().objects.filter(username__iexact=text).values_list("pk", flat=True)
    return qs.filter(**{f"{path}id__in": list(people)})


def stage_ref(value: int | str | None, field: str = "stage") -> Stage | None:
    if value is None:
        return None
    stage = stage_filter(Stage.objects.all(), value).first()
    if stage is None:
        raise InvalidInput(f"There is no stage {value!r}.", fields={field: f"No stage {value!r}."})
    return stage


def stage_filter(qs: QuerySet, value: int | str, path: str = "") -> QuerySet:
    text = str(value).strip()
    if text.isdigit():
        pk = int(text)
        return qs.filter(**{f"{path}id": pk}) if pk <= MAX_ID else qs.none()
    return qs.filter(**{f"{path}name__iexact": text})


def text_search(qs: QuerySet[M], q: str | None, *paths: str) -> QuerySet[M]:
    q = (q or "").strip()
    if not q:
        return qs
    condition = Q()
    for path in paths:
        condition |= Q(**{f"{path}__icontains": q})
    return qs.filter(condition)


def day_start(day: date, *, after: bool = False) -> datetime:
    """Midnight at the start of `day` (or of the next day) in the site's time zone.

    Date filters on timestamps compare against these bounds rather than `__date`, so the
    database can use its index on the timestamp column.
    """
    if after:
        day = day + timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, time.min))


def user_ref_out(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.username, "name": user.get_full_name() or user.username}


User = get_user_model()


# --- optimistic concurrency -------------------------------------------------------------------------

ETAG_RE = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


def expected_version(request: HttpRequest, body_version: int | None) -> int | None:
    """The version the writer read: If-Match ("3", W/"3" or 3) or a `version` field; None if neither."""
    header = request.headers.get("If-Match", "").strip()
    from_header = None
    if header:
        match = ETAG_RE.match(header)
        if match is None:
            raise ApiError(
                400,
                'If-Match must be the ETag you read, such as "3".',
                fields={"If-Match": "Not a version ETag."},
            )
        from_header = int(match.group(1))
    if from_header is not None and body_version is not None and from_header != body_version:
        raise ApiError(
            400,
            f"If-Match says version {from_header} but the body says {body_version}: send one.",
            fields={"version": "Disagrees with If-Match."},
        )
    return from_header if from_header is not None else body_version


def delete_version(request: HttpRequest) -> int | None:
    """The version for a DELETE: If-Match, or a body of {"version": N} for clients that cannot set headers."""
    body_version = None
    if request.body:
        data = JsonParser().parse_body(request)
        unknown = sorted(set(data) - {"version"})
        if unknown:
            raise ApiError(
                400,
                "A DELETE body may only hold the version.",
                fields=dict.fromkeys(unknown, "Unknown field."),
            )
        body_version = data.get("version")
        if body_version is not None and (
            isinstance(body_version, bool)
            or not isinstance(body_version, int)
            or not 1 <= body_version <= MAX_ID
        ):
            raise ApiError(400, "Version: the whole number you read.", fields={"version": "Not a version."})
    return expected_version(request, body_version)


def etag(version: int) -> str:
    return f'"{version}"'
