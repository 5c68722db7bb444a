"""/log: one-line updates. Preview what a line means, then apply it.

    POST /api/v1/log/preview {"line": "acme renewal 48k close mar 14", "choices": {}}
    POST /api/v1/log         {"line": "...", "choices": {"deal": "42"}, "version": 3}

A preview answers 200 even with open questions (each with its choices: send the chosen value back
in `choices` under the question's key) and 400 for an empty line or one that names no deal you
can change. Applying answers 409 while a question is open or when the deal changed since the
version you send, 400 for words not understood or a problem, else the updated deal.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from truepipe.api.common import Id, actor
from truepipe.api.opportunities import OpportunityOut, base_queryset, out
from truepipe.api.schemas import ERRORS, AccountRef, Strict
from truepipe.oneline import services

router = Router(tags=["one-line updates"])


class LineIn(Strict):
    line: str = Field(
        max_length=2000, description="What a rep would type, e.g. acme renewal 48k close mar 14 proposal."
    )
    choices: dict[str, str] = Field(
        default_factory=dict,
        description="Answers to the preview's questions: {question key: the chosen choice's value}.",
    )


class ApplyIn(LineIn):
    version: Id | None = Field(
        None, description="The deal's version from the preview: if the deal changed since, 409."
    )


class ChoiceOut(Schema):
    value: str
    label: str


class QuestionOut(Schema):
    key: str
    text: str
    choices: list[ChoiceOut]


class ChangeOut(Schema):
    field: str
    label: str
    old: str | None = Field(
        description="As the field history records it (ids for stages); null while the deal is asked."
    )
    new: str | None
    old_text: str = Field(description="For people: 'USD 48,000', 'Sat 14 Mar 2026', the stage's name.")
    new_text: str


class DealRef(Schema):
    id: int
    name: str
    account: AccountRef | None
    version: int


class NewDealOut(Schema):
    name: str
    account: AccountRef


class PreviewOut(Schema):
    line: str
    deal: DealRef | None = Field(description="The deal the line is about; null while a question asks which.")
    new_deal: NewDealOut | None = Field(description="Set when the line starts with `new`.")
    version: int | None = Field(description="Send it back when applying: a change since is refused.")
    changes: list[ChangeOut]
    questions: list[QuestionOut]
    unknown: list[str] = Field(description="Words not understood; applying is refused while there are any.")
    problems: list[str]
    readings: list[str] = Field(description="How dates and near-miss words were read.")
    can_apply: bool
    message: str


class AppliedOut(Schema):
    created: bool
    message: str
    changes: list[ChangeOut]
    opportunity: OpportunityOut


def _change(row: services.Row, known: bool = True) -> dict[str, Any]:
    return {
        "field": row.field,
        "label": row.label,
        "old": services.history_value(row.old) if known else None,
        "new": services.history_value(row.new),
        "old_text": row.old_text if known else "",
        "new_text": row.new_text,
    }


def preview_out(preview: services.Preview) -> dict[str, Any]:
    deal, new = preview.deal, preview.new_deal
    return {
        "line": preview.line,
        "deal": {
            "id": deal.pk,
            "name": deal.name,
            "account": {"id": deal.account.pk, "name": deal.account.name} if deal.account else None,
            "version": deal.version,
        }
        if deal
        else None,
        "new_deal": {"name": new.name, "account": {"id": new.account.pk, "name": new.account.name}}
        if new
        else None,
        "version": preview.version,
        "changes": [_change(row, known=bool(deal or new)) for row in preview.rows],
        "questions": [
            {
                "key": q.key,
                "text": q.text,
                "choices": [{"value": c.value, "label": c.label} for c in q.choices],
            }
            for q in preview.questions
        ],
        "unknown": preview.unknown,
        "problems": preview.problems,
        "readings": preview.readings,
        "can_apply": preview.can_apply,
        "message": preview.message,
    }


@router.post("/preview", response={200: PreviewOut, **ERRORS})
def preview_line(request: HttpRequest, payload: LineIn):
    """What the line would change; nothing is written."""
    return preview_out(services.preview(actor(request), payload.line, payload.choices))


@router.post("", response={200: AppliedOut, **ERRORS})
def apply_line(request: HttpRequest, payload: ApplyIn):
    """Apply the line (read again now); 409 while a question is open or the deal changed since `version`."""
    user = actor(request)
    applied = services.apply(
        user, payload.line, payload.choices, via=services.VIA_API, version=payload.version
    )
    return {
        "created": applied.created,
        "message": applied.message,
        "changes": [_change(row) for row in applied.rows],
        "opportunity": out(base_queryset(user).get(pk=applied.deal.pk)),
    }
