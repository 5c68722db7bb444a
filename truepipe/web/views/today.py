"""Today: the rep's daily queue ("15 minutes every morning, then done"), each item fixed in place.

The page lists the day's plan (`hygiene.queue.build_queue`) with a progress bar,
the minutes left and the streak. Each item opens a small form (a new close date,
the last touch, the next step, a snooze, a loss, an explanation) that posts with
HTMX; the answer is the item redrawn, plus the progress and any other item on
the same deal, swapped out of band. Every write goes through a service.

A manager (or an admin, or an exec) may look at someone else's queue with
`?rep=<id>` when visibility lets them see that person: read-only, and nothing is
recorded. Anyone else asking for another person's queue gets a 404.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from truepipe.activities.models import ActivityKind
from truepipe.activities.services import log_activity
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.hygiene import queue as daily
from truepipe.hygiene.models import Snooze, Violation
from truepipe.hygiene.policy import current_policy
from truepipe.hygiene.rules.reps import zone_of
from truepipe.hygiene.services import active_snoozes, cancel_snooze, snooze_limits, snooze_opportunity
from truepipe.people.models import Role
from truepipe.pipeline import services as pipeline
from truepipe.web.forms import DateInput, apply_service_error
from truepipe.web.htmx import is_htmx, render_page

LOST_REASONS = (
    "Lost to a competitor",
    "No budget",
    "No decision: went dark",
    "Bad timing",
    "Building it in-house",
)
SNOOZE_REASONS = (
    "Customer on holiday",
    "Waiting for budget approval",
    "Legal / procurement review",
    "Customer asked to reconnect later",
)
READERS = {Role.MANAGER, Role.ADMIN, Role.EXEC}
_NO_RANK = daily.Rank(0, 1, 1, 0)


# ---------------------------------------------------------------- the small forms


class _FixForm(forms.Form):
    def __init__(self, *args: Any, today: dt.date, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.today = today

    def _not_past(self, name: str) -> dt.date:
        value = self.cleaned_data[name]
        if value < self.today:
            raise forms.ValidationError("Pick today or a later date.")
        return value


class CloseDateForm(_FixForm):
    close_date = forms.DateField(label="New close date", widget=DateInput())
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def clean_close_date(self) -> dt.date:
        return self._not_past("close_date")


class TouchForm(_FixForm):
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in (ActivityKind.CALL, ActivityKind.EMAIL, ActivityKind.MEETING)],
        initial=ActivityKind.CALL,
        widget=forms.RadioSelect,
        label="What",
    )
    subject = forms.CharField(max_length=255, label="About", widget=forms.TextInput())
    occurred_on = forms.DateField(label="When", widget=DateInput())

    def clean_occurred_on(self) -> dt.date:
        value = self.cleaned_data["occurred_on"]
        if value > self.today:
            raise forms.ValidationError("A touch that already happened: today or earlier.")
        return value


class NextStepForm(_FixForm):
    next_step = forms.CharField(max_length=255, label="Next step")
    next_step_date = forms.DateField(label="By", widget=DateInput())
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def clean_next_step_date(self) -> dt.date:
        return self._not_past("next_step_date")


class SnoozeForm(_FixForm):
    until = forms.DateField(label="Snooze until", widget=DateInput())
    reason = forms.CharField(max_length=255, label="Why it can wait")


class LostForm(_FixForm):
    lost_reason = forms.CharField(max_length=255, label="Why was it lost")


class ReviewForm(_FixForm):
    note = forms.CharField(
        label="Why the deal is right as it stands",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


@dataclass(frozen=True)
class ActionSpec:
    label: str
    submit: str
    form: type[_FixForm]
    datalist: tuple[str, ...] = ()
    datalist_field: str = ""


ACTIONS: dict[str, ActionSpec] = {
    "close_date": ActionSpec("New close date", "Save date", CloseDateForm),
    "touch": ActionSpec("Log last touch", "Log it", TouchForm),
    "next_step": ActionSpec("Set next step", "Save next step", NextStepForm),
    "snooze": ActionSpec("Snooze", "Snooze", SnoozeForm, SNOOZE_REASONS, "reason"),
    "lost": ActionSpec("Mark lost", "Mark lost", LostForm, LOST_REASONS, "lost_reason"),
    "review": ActionSpec("Explain", "Save note", ReviewForm),
}


@dataclass
class FieldView:
    """One input of a fix form, ready to print (the page has up to a hundred: Django's widget
    templates would cost more than the rest of the page)."""

    name: str
    id: str
    label: str
    kind: str  # text, date, textarea, radio, hidden
    value: str
    errors: list[str]
    choices: list[tuple[str, str]]
    max_length: int | None = None
    datalist: str = ""


def field_views(form: forms.Form) -> list[FieldView]:
    views = []
    for bound in form:
        field, widget = bound.field, bound.field.widget
        if isinstance(widget, forms.HiddenInput):
            kind = "hidden"
        elif isinstance(widget, forms.RadioSelect):
            kind = "radio"
        elif isinstance(widget, forms.Textarea):
            kind = "textarea"
        elif isinstance(field, forms.DateField):
            kind = "date"
        else:
            kind = "text"
        value = bound.value()
        if isinstance(value, dt.date):
            value = value.isoformat()
        choices = (
            [(str(v), str(label)) for v, label in getattr(field, "choices", [])] if kind == "radio" else []
        )
        views.append(
            FieldView(
                name=bound.html_name,
                id=bound.auto_id,
                label=str(bound.label),
                kind=kind,
                value="" if value is None else str(value),
                errors=[str(error) for error in bound.errors],
                choices=choices,
                max_length=getattr(field, "max_length", None),
                datalist=widget.attrs.get("list", ""),
            )
        )
    return views


@dataclass
class ActionView:
    key: str
    label: str
    submit: str
    form: forms.Form
    datalist: tuple[str, ...]
    url: str
    open: bool = False
    primary: bool = False

    @property
    def fields(self) -> list[FieldView]:
        return field_views(self.form)

    @property
    def problems(self) -> list[str]:
        return [str(error) for error in self.form.non_field_errors()] if self.form.is_bound else []


@dataclass
class ItemView:
    """A queue item with its forms, as the template shows it."""

    item: daily.QueueItem
    actions: list[ActionView]
    notice: str = ""


def _initial(key: str, item: daily.QueueItem, today: dt.date, snooze_days: int) -> dict[str, Any]:
    deal = item.deal
    version = deal.version if deal is not None else None
    account = deal.account.name if deal is not None and deal.account is not None else ""
    initial: dict[str, dict[str, Any]] = {
        "close_date": {"close_date": today + dt.timedelta(days=30), "version": version},
        "touch": {
            "kind": ActivityKind.CALL,
            "occurred_on": today,
            "subject": f"Follow-up with {account}" if account else "Follow-up",
        },
        "next_step": {
            "next_step": (deal.next_step if deal is not None else "") or "",
            "next_step_date": today + dt.timedelta(days=7),
            "version": version,
        },
        "snooze": {"until": today + dt.timedelta(days=max(1, min(14, snooze_days)))},
        "lost": {},
        "review": {},
    }
    return initial[key]


def _form(
    key: str, item: daily.QueueItem, today: dt.date, data: Any = None, snooze_days: int = 14
) -> forms.Form:
    spec = ACTIONS[key]
    auto_id = f"q{item.pk}-{key}-%s"
    if data is not None:
        form = spec.form(data, today=today, auto_id=auto_id)
    else:
        form = spec.form(initial=_initial(key, item, today, snooze_days), today=today, auto_id=auto_id)
    if spec.datalist_field:
        form.fields[spec.datalist_field].widget.attrs["list"] = f"q{item.pk}-{key}-list"
    return form


def item_view(
    item: daily.QueueItem,
    today: dt.date,
    *,
    snooze_days: int,
    bound: tuple[str, forms.Form] | None = None,
    notice: str = "",
) -> ItemView:
    actions = []
    root = reverse("today-fix", args=[item.pk, "x"])[: -len("x/")]
    for n, key in enumerate(item.actions):
        spec = ACTIONS[key]
        is_bound = bound is not None and bound[0] == key
        form = (
            bound[1] if bound is not None and is_bound else _form(key, item, today, snooze_days=snooze_days)
        )
        primary = n == 0 and item.rule.key != "missing_stage_fields"
        actions.append(
            ActionView(key, spec.label, spec.submit, form, spec.datalist, f"{root}{key}/", is_bound, primary)
        )
    return ItemView(item, actions, notice)


# ---------------------------------------------------------------- who, and the page


def _whose(request: HttpRequest) -> tuple[Any, bool]:
    """(the rep whose queue is shown, read-only?). Someone else's queue: 404 unless visible to a reader."""
    viewer = request.user
    wanted = request.GET.get("rep", "")
    if not wanted or wanted == str(viewer.pk):
        return viewer, False
    if not wanted.isdigit() or visibility.role_of(viewer) not in READERS:
        raise Http404("No such queue.")
    rep = visibility.visible_users(viewer).select_related("profile").filter(pk=int(wanted)).first()
    if rep is None:
        raise Http404("No such queue.")
    return rep, True


def _local_today(rep: Any) -> dt.date:
    return daily.local_day(rep, timezone.now())


def queue_context(viewer: Any, rep: Any, read_only: bool, **extra: Any) -> dict[str, Any]:
    record = not read_only and visibility.can_create(viewer)
    queue = daily.build_queue(rep, record=record)
    today = queue.day
    snooze_days, max_snoozes = snooze_limits()
    snoozes = list(
        active_snoozes(today)
        .filter(opportunity__owner=rep, opportunity__deleted_at__isnull=True)
        .select_related("opportunity")
        .order_by("until", "id")[:100]
    )
    context = {
        "snooze_days": snooze_days,
        "snoozes": snoozes,
        "max_snoozes": max_snoozes,
        "queue": queue,
        "rep": rep,
        "read_only": read_only,
        "items": [item_view(item, today, snooze_days=snooze_days) for item in queue.items],
        "max_minutes": daily.MAX_MINUTES,
        "min_minutes": daily.MIN_MINUTES,
        "is_reader": visibility.role_of(viewer) in READERS,
    }
    context.update(extra)
    return context


@login_required
@require_GET
def today(request: HttpRequest) -> HttpResponse:
    rep, read_only = _whose(request)
    context = queue_context(request.user, rep, read_only)
    if context["is_reader"] and not is_htmx(request):
        context["people"] = list(
            visibility.visible_users(request.user)
            .filter(is_active=True, profile__role__in=[Role.REP, Role.MANAGER])
            .exclude(pk=request.user.pk)
            .order_by("first_name", "last_name", "username")
            .only("username", "first_name", "last_name")[:300]
        )
    return render_page(request, "web/today/page.html", "web/today/_queue.html", context)


# ---------------------------------------------------------------- fixing an item


def _day(value: dt.date) -> str:
    return f"{value:%b} {value.day}"


def _apply(key: str, user: Any, violation: Violation, data: dict[str, Any], today: dt.date) -> str:
    """Run the fix through its service; return what to tell the rep."""
    deal = violation.opportunity
    assert deal is not None
    if key == "close_date":
        pipeline.update_opportunity(
            user, deal, {"close_date": data["close_date"]}, via=Via.FORM, expected_version=data.get("version")
        )
        return f"Close date moved to {_day(data['close_date'])}."
    if key == "next_step":
        pipeline.update_opportunity(
            user,
            deal,
            {"next_step": data["next_step"], "next_step_date": data["next_step_date"]},
            via=Via.FORM,
            expected_version=data.get("version"),
        )
        return f"Next step set for {_day(data['next_step_date'])}."
    if key == "touch":
        when = data["occurred_on"]
        if when == today:
            occurred = timezone.now()
        else:
            zone = zone_of(getattr(getattr(user, "profile", None), "time_zone", "UTC"))
            occurred = dt.datetime.combine(when, dt.time(12, 0), tzinfo=zone)
        log_activity(
            user,
            via=Via.FORM,
            kind=data["kind"],
            subject=data["subject"],
            occurred_at=occurred,
            opportunity=deal,
        )
        return f"Logged: {data['subject']}"
    if key == "snooze":
        snooze_opportunity(user, deal, data["until"], data["reason"], via=Via.FORM)
        return f"Snoozed until {_day(data['until'])}."
    if key == "lost":
        pipeline.mark_lost(user, [deal], data["lost_reason"], via=Via.FORM)
        return "Marked lost."
    if key == "review":
        daily.review_item(user, violation, data["note"])
        return "Your note is on the deal."
    raise Http404("No such fix.")


@login_required
@require_POST
def fix(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One fix on one item of the rep's own queue: redraws the item, the progress, the deal's other items."""
    user = request.user
    if action not in ACTIONS:
        raise Http404("No such fix.")
    violation = get_object_or_404(
        Violation.objects.select_related("opportunity__account", "opportunity__stage"),
        pk=pk,
        rep=user,
        opportunity__isnull=False,
    )
    today = _local_today(user)
    notice, error, status = "", "", 200
    queue_item = daily.QueueItem(violation, daily.rule_info(current_policy(), violation.rule), _NO_RANK)
    form = _form(action, queue_item, today, request.POST)
    if form.is_valid():
        try:
            notice = _apply(action, user, violation, form.cleaned_data, today)
        except ServiceError as exc:
            apply_service_error(form, exc)
            error, status = exc.message, exc.status
    else:
        error, status = "Check the highlighted field.", 400
    told = _told(request, error, notice)
    if told is not None:
        return told
    context = queue_context(user, user, False)
    queue = context["queue"]
    item = queue.item(pk)
    if item is None:  # not on today's plan (a stale page): redraw the whole queue
        context["notice"], context["error"] = notice, error
        response = render(request, "web/today/_queue.html", context, status=status)
        response["HX-Retarget"] = "#today-queue"
        response["HX-Reswap"] = "outerHTML"
        return response
    if not error and not item.done:
        notice += " Saved, but the rule still flags this item."
    snooze_days = context["snooze_days"]
    target = item_view(
        item, today, snooze_days=snooze_days, bound=(action, form) if error else None, notice=notice
    )
    others = [
        item_view(other, today, snooze_days=snooze_days)
        for other in queue.items_on_deal(violation.opportunity_id)
        if other.pk != item.pk
    ]
    context.update(target=target, others=others)
    return render(request, "web/today/_fixed.html", context, status=status)


def _told(request: HttpRequest, error: str, notice: str) -> HttpResponse | None:
    """Without HTMX: the message goes with a redirect back to the page (None under HTMX)."""
    if is_htmx(request):
        return None
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("today")


def _answer_with_queue(request: HttpRequest, error: str, notice: str) -> HttpResponse:
    """The redrawn queue with the error or notice on it (HTMX), or a redirect with a message."""
    told = _told(request, error, notice)
    if told is not None:
        return told
    user = request.user
    context = queue_context(user, user, False, **({"error": error} if error else {"notice": notice}))
    return render(request, "web/today/_queue.html", context, status=400 if error else 200)


@login_required
@require_POST
def time_box(request: HttpRequest) -> HttpResponse:
    """The rep sets their own time box (or goes back to the policy's); today's plan is re-cut."""
    user = request.user
    raw = (request.POST.get("minutes") or "").strip()
    error = notice = ""
    try:
        minutes = None if request.POST.get("reset") or not raw else int(raw)
        box = daily.set_queue_minutes(user, user, minutes)
    except ValueError:
        error = f"The time box is {daily.MIN_MINUTES} to {daily.MAX_MINUTES} minutes."
    except ServiceError as exc:
        error = exc.message
    else:
        notice = f"Your daily time box is now {box} minutes."
    return _answer_with_queue(request, error, notice)


@login_required
@require_POST
def wake(request: HttpRequest, pk: int) -> HttpResponse:
    """End one of the rep's own snoozes now: the deal's stale clocks count again at once."""
    user = request.user
    snooze = get_object_or_404(
        Snooze.objects.select_related("opportunity"),
        pk=pk,
        opportunity__owner=user,
        cancelled_at__isnull=True,
    )
    error = notice = ""
    try:
        cancel_snooze(user, snooze, via=Via.FORM)
    except ServiceError as exc:
        error = exc.message
    else:
        notice = f"“{snooze.opportunity.name}” is awake: its stale clocks count again."
    return _answer_with_queue(request, error, notice)
