"""Schemas shared by several endpoints: references to related records, pages, errors."""

from __future__ import annotations

from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints

from truepipe.api.common import MAX_OFFSET, Id

# A person or a stage may be named by id or by username / name.
PersonKey = Annotated[int, Field(ge=1, le=2**63 - 1)] | Annotated[str, StringConstraints(max_length=150)]
StageKey = Annotated[int, Field(ge=1, le=2**63 - 1)] | Annotated[str, StringConstraints(max_length=80)]


class Strict(Schema):
    """Input bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class UserRef(Schema):
    id: int
    username: str
    name: str


class AccountRef(Schema):
    id: int
    name: str


class StageRef(Schema):
    id: int
    name: str
    kind: str


class OpportunityRef(Schema):
    id: int
    name: str


class ErrorBody(Schema):
    status: int
    code: str = Field(description="A stable word to switch on: invalid, not_found, conflict, …")
    message: str = Field(description="A sentence a person can act on.")
    fields: dict[str, str] = Field(description="Per-field reasons, keyed by the field's name.")


class Error(Schema):
    error: ErrorBody


class ListParams(Strict):
    """Paging and ordering, common to every list."""

    limit: int | None = Field(
        None, description="Rows per page (default 50, at most TRUEPIPE_API_PAGE_SIZE_MAX)."
    )
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="Rows to skip.")
    ordering: str | None = Field(
        None, max_length=200, description="Comma-separated fields, '-' for descending."
    )


class HistoryOut(Schema):
    id: int
    field: str
    old_value: str | None
    new_value: str | None
    changed_at: Any
    changed_by: UserRef | None
    via: str


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """A list envelope schema for `item` (named for the OpenAPI document)."""
    return type(
        name,
        (Schema,),
        {
            "__annotations__": {
                "count": int,
                "count_exact": bool,
                "limit": int,
                "offset": int,
                "next": str | None,
                "items": list[item],  # type: ignore[valid-type]
            },
            "__module__": __name__,
        },
    )


ERRORS: dict[int | frozenset[int], type[Schema]] = {
    frozenset({400, 401, 403, 404, 409, 415, 428}): Error,
}

__all__ = [
    "AccountRef",
    "Error",
    "HistoryOut",
    "Id",
    "ListParams",
    "OpportunityRef",
    "PersonKey",
    "StageKey",
    "StageRef",
    "Strict",
    "UserRef",
    "page_of",
]
