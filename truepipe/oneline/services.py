"""Preview and apply a one-line update. The write goes through pipeline.services like any other.

    preview(user, line, choices)  ->  Preview: the deal, each field old -> new, questions, unknown words
    apply(user, line, choices, via=..., version=preview.version)  ->  Applied

`apply` reads the line again (never trusting an earlier reading), refuses while a question is
open, a word is not understood or a problem stands, and writes in one transaction through
create_opportunity / update_opportunity, so permissions, stage requirements, field history (with
`via`), the version bump and rule re-evaluation happen exactly as for a form. The version the
preview showed is checked: a deal changed since is refused, not overwritten.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from truepipe.core.errors import ConcurrencyConflict, InvalidInput, ServiceError, StageRequirementsMissing
from truepipe.core.history import serialise
from truepipe.core.models import Via
from truepipe.oneline.parse import (
    NewDeal,
    Proposal,
    Question,
    format_amount,
    format_date,
    parse,
)
from truepipe.pipeline import services as pipeline
from truepipe.pipeline.models import Opportunity, Stage, StageKind

# The entry points of a one-line update, recorded on each history row (Via has the API's own).
VIA_ONELINE = "oneline"
VIA_CLI = "cli"
VIA_API = Via.API

FIELDS = (
    ("name", "Deal"),
    ("account", "Account"),
    ("stage", "Stage"),
    ("amount", "Amount"),
    ("currency", "Currency"),
    ("close_date", "Close date"),
    ("next_step", "Next step"),
    ("next_step_date", "Next step date"),
    ("lost_reason", "Lost reason"),
)
LABELS = dict(FIELDS)


class Unanswered(ServiceError):
    """The line leaves a question open; nothing is written until it is answered."""

    status = 409
    code = "unanswered"

    def __init__(self, questions: list[Question]):
        first = questions[0]
        options = "; ".join(choice.label for choice in first.choices)
        super().__init__(
            f"{first.text} Choose one ({options}) and send it again.",
            fields={question.key: question.text for question in questions},
        )
        self.questions = questions


class StalePreview(ConcurrencyConflict):
    """The deal changed between the preview and the confirmation."""

    def __init__(self, deal: Opportunity, expected: int, current: int):
        super().__init__(deal, expected, current)
        self.message = (
            f"“{deal}” was changed by someone else since your preview (version {expected}, now {current}). "
            "Preview the line again to see its current values."
        )
        self.args = (self.message,)


@dataclass
class Row:
    """One field of the preview: its value now and the value the line gives it."""

    field: str
    label: str
    old: Any
    new: Any
    old_currency: str = ""
    new_currency: str = ""

    @property
    def old_text(self) -> str:
        return display(self.field, self.old, self.old_currency)

    @property
    def new_text(self) -> str:
        return display(self.field, self.new, self.new_currency)


def display(name: str, value: Any, currency: str = "") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, Decimal) and name == "amount":
        return format_amount(value, currency)
    if isinstance(value, dt.date):
        return format_date(value)
    return str(value)


@dataclass
class Preview:
    proposal: Proposal
    rows: list[Row]
    # Fields the line gives that already have that value (said back, not changed).
    same: list[Row]

    @property
    def line(self) -> str:
        return self.proposal.line

    @property
    def deal(self) -> Opportunity | None:
        return self.proposal.deal

    @property
    def new_deal(self) -> NewDeal | None:
        return self.proposal.new_deal

    @property
    def version(self) -> int | None:
        return self.proposal.version

    @property
    def questions(self) -> list[Question]:
        return self.proposal.questions

    @property
    def unknown(self) -> list[str]:
        return self.proposal.unknown

    @property
    def problems(self) -> list[str]:
        return self.proposal.problems

    @property
    def readings(self) -> list[str]:
        return self.proposal.readings

    @property
    def changes(self) -> dict[str, tuple[Any, Any]]:
        return {row.field: (row.old, row.new) for row in self.rows}

    @property
    def can_apply(self) -> bool:
        return bool(
            (self.deal or self.new_deal)
            and self.rows
            and not self.questions
            and not self.unknown
            and not self.problems
        )

    @property
    def title(self) -> str:
        if self.new_deal:
            return f"New deal “{self.new_deal.name}” on {self.new_deal.account.name}"
        if self.deal:
            account = f" ({self.deal.account.name})" if self.deal.account else ""
            return f"{self.deal.name}{account}"
        return "Which deal?"

    @property
    def message(self) -> str:
        """What stands between the preview and applying it, in one sentence."""
        if self.questions:
            return "Answer the question below, then confirm."
        if self.unknown:
            return f"I did not understand: {', '.join(self.unknown)}. Rephrase or remove those words."
        if self.problems:
            return self.problems[0]
        if not self.rows:
            return "Nothing changes: the deal already has these values."
        return "Check the changes, then confirm."


def _old_values(proposal: Proposal) -> dict[str, Any]:
    if proposal.deal is not None:
        deal = proposal.deal
        return {name: getattr(deal, name) for name, _ in FIELDS}
    return {name: None for name, _ in FIELDS}


def _stage_check(proposal: Proposal) -> None:
    """The stage's required fields, checked here so the preview says it before the write refuses."""
    changes = proposal.changes
    if proposal.deal is not None:
        stage = changes.get("stage", proposal.deal.stage)
        entering = "stage" in changes and changes["stage"].pk != proposal.deal.stage_id
        if not entering:
            return
        state = {name: getattr(proposal.deal, name) for name in pipeline.WRITABLE_FIELDS}
    elif proposal.new_deal is not None:
        stage = changes.get("stage") or Stage.objects.filter(kind=StageKind.OPEN, is_active=True).first()
        if stage is None:
            return
        state = {"account": proposal.new_deal.account, "name": proposal.new_deal.name}
    else:
        return
    state.update(changes)
    missing = pipeline.missing_for_stage(stage, state)
    if missing:
        hints = {
            "amount": "an amount (48k)",
            "close_date": "a close date (close mar 14)",
            "next_step": "a next step (next: send SOW friday)",
            "lost_reason": "a reason (lost: went with a rival)",
        }
        said = [hints[name] for name in missing if name in hints]
        message = StageRequirementsMissing(stage, missing).message
        proposal.problems.append(message + (f" Add {' and '.join(said)} to the line." if said else ""))


def preview(
    user: Any,
    line: str,
    choices: dict[str, str] | None = None,
    *,
    now: dt.datetime | None = None,
    day_first: bool | None = None,
) -> Preview:
    """What `line` would change, for `user`. Raises LineNotUnderstood (InvalidInput) when the line
    is empty or names no deal the user may change."""
    proposal = parse(user, line, choices, now=now, day_first=day_first)
    old = _old_values(proposal)
    if proposal.new_deal is not None:
        old_currency = ""
        new_values: dict[str, Any] = {"name": proposal.new_deal.name, "account": proposal.new_deal.account}
    else:
        old_currency = old.get("currency") or ""
        new_values = {}
    new_values.update(proposal.changes)
    new_currency = str(new_values.get("currency") or old_currency or settings.TRUEPIPE_DEFAULT_CURRENCY)
    rows: list[Row] = []
    same: list[Row] = []
    for name, label in FIELDS:
        if name not in new_values:
            continue
        row = Row(name, label, old[name], new_values[name], old_currency, new_currency)
        changed = row.old != row.new
        if isinstance(row.old, Stage) and isinstance(row.new, Stage):
            changed = row.old.pk != row.new.pk
        (rows if changed else same).append(row)
    _value_check(proposal, new_values)
    _stage_check(proposal)
    return Preview(proposal=proposal, rows=rows, same=same)


def _value_check(proposal: Proposal, values: dict[str, Any]) -> None:
    """The deal service's own checks of the values (an amount too large, a next step too long), so
    the preview refuses what the write would."""
    try:
        pipeline._validate(values)
    except InvalidInput as exc:
        for name, reason in (exc.fields or {"": exc.message}).items():
            label = name.replace("_", " ").capitalize()
            proposal.problems.append(f"{label}: {reason}" if name else reason)


@dataclass
class Applied:
    deal: Opportunity
    rows: list[Row]
    created: bool

    @property
    def message(self) -> str:
        verb = "Created" if self.created else "Updated"
        parts = [f"{row.label.lower()} {row.new_text}" for row in self.rows if row.field not in ("name",)]
        return f"{verb} {self.deal.name}: " + "; ".join(parts) + "."


def apply(
    user: Any,
    line: str | Proposal | Preview,
    choices: dict[str, str] | None = None,
    *,
    via: str,
    version: int | None = None,
    now: dt.datetime | None = None,
    day_first: bool | None = None,
) -> Applied:
    """Write what `line` means, if it is unambiguous, understood and still current.

    Given a Preview or a Proposal, its line, choices and the deal version it showed are used.
    `version` (the deal's version the rep saw) makes a change since the preview a StalePreview
    (409); without it the deal's current values are the base. Raises Unanswered (409) while a
    question is open and InvalidInput for words not understood or a problem.
    """
    if isinstance(line, Preview):
        line = line.proposal
    if isinstance(line, Proposal):
        choices = line.choices if choices is None else choices
        version = line.version if version is None else version
        text = line.line
    else:
        text = line
    with transaction.atomic():
        seen = preview(user, text, choices, now=now, day_first=day_first)
        deal = seen.deal
        if deal is not None and version is not None and int(version) != deal.version:
            raise StalePreview(deal, int(version), deal.version)
        if seen.questions:
            raise Unanswered(seen.questions)
        if not seen.can_apply:
            raise InvalidInput(seen.message)
        if seen.new_deal is not None:
            created = pipeline.create_opportunity(
                user,
                via=via,
                name=seen.new_deal.name,
                account=seen.new_deal.account,
                **seen.proposal.changes,
            )
            return Applied(deal=created, rows=seen.rows, created=True)
        assert deal is not None
        try:
            updated = pipeline.update_opportunity(
                user,
                deal,
                dict(seen.proposal.changes),
                via=via,
                expected_version=deal.version,
            )
        except ConcurrencyConflict as exc:  # someone saved in between the read and the lock
            raise StalePreview(deal, exc.expected, exc.current) from None
        return Applied(deal=updated, rows=seen.rows, created=False)


def history_value(value: Any) -> str | None:
    """A value as the field history and the API write it (ids for stages, ISO for dates)."""
    return serialise(value)
