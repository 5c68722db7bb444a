"""One deal: its fields, the edit form, the activity timeline, field history and products."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from truepipe.accounts.models import Account
from truepipe.activities.models import Activity
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.hygiene.models import Snooze, Violation, ViolationStatus
from truepipe.hygiene.rules import load_all
from truepipe.pipeline import services
from truepipe.pipeline.models import Opportunity, Stage
from truepipe.web.forms import LogTouchForm, OpportunityForm, apply_service_error
from truepipe.web.views.common import history_rows, names_of, person_names, refuse

TIMELINE_LIMIT = 100


def timeline(user: Any, **filters: Any) -> list[Activity]:
    """Visible activities, newest first, with owner and participants in two extra queries."""
    return list(
        visibility.visible(user, Activity)
        .filter(**filters)
        .select_related("owner", "opportunity")
        .prefetch_related("participants")
        .order_by("-occurred_at", "-id")[:TIMELINE_LIMIT]
    )


def opportunity_history(user: Any, deal: Opportunity) -> list:
    changes = deal.changes.select_related("changed_by").order_by("-changed_at", "-id")
    return history_rows(
        changes,
        {
            "owner": person_names,
            "account": lambda ids: names_of(
                visibility.visible(user, Account), ids, "(an account you cannot see)"
            ),
            "stage": lambda ids: names_of(Stage.objects.all(), ids, "(a removed stage)"),
        },
    )


def detail_context(request: HttpRequest, deal: Opportunity, form: OpportunityForm | None = None) -> dict:
    user = request.user
    can_change = visibility.can_change(user, deal)
    return {
        "deal": deal,
        "form": form or (OpportunityForm(user=user, instance=deal) if can_change else None),
        "can_change": can_change,
        "activities": timeline(user, opportunity=deal),
        "history": opportunity_history(user, deal),
        "lines": list(deal.lines.select_related("product")),
        "log_form": LogTouchForm(user=user, opportunity=deal) if visibility.can_create(user) else None,
        "inline_deal": deal,
        **discipline_context(deal),
    }


def discipline_context(deal: Opportunity) -> dict:
    """What the discipline engine currently holds against this deal, and its snooze if any."""
    rules = load_all()
    flags = [
        {"violation": v, "title": rules[v.rule].title if v.rule in rules else v.rule}
        for v in Violation.objects.filter(opportunity=deal, live=True, status=ViolationStatus.OPEN).order_by(
            "-severity", "opened_at"
        )
    ]
    snooze = (
        Snooze.objects.filter(opportunity=deal, cancelled_at__isnull=True, until__gte=timezone.localdate())
        .select_related("created_by")
        .first()
    )
    return {"flags": flags, "snooze": snooze}


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    deal = get_object_or_404(
        visibility.visible(user, Opportunity).select_related("account", "owner", "stage"), pk=pk
    )
    if request.method == "GET":
        return render(request, "web/opportunities/detail.html", detail_context(request, deal))
    form = OpportunityForm(request.POST, user=user, instance=deal)
    if not visibility.can_change(user, deal):
        return refuse(request, f"You may view “{deal.name}” but not change it.")
    status = 400
    if form.is_valid():
        try:
            services.update_opportunity(
                user,
                deal,
                form.changes(),
                via=Via.FORM,
                expected_version=form.cleaned_data.get("version"),
                require_version=True,
            )
        except ServiceError as exc:
            apply_service_error(form, exc)
            status = exc.status
        else:
            messages.success(request, f"Saved “{form.cleaned_data['name']}”.")
            return redirect("opportunity", pk=deal.pk)
    return render(
        request, "web/opportunities/detail.html", detail_context(request, deal, form), status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_new(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not visibility.can_create(user):
        return refuse(request, "Your role can read deals but not create them.")
    initial: dict[str, Any] = {}
    if request.GET.get("account", "").isdigit():
        initial["account"] = int(request.GET["account"])
    if request.GET.get("name"):  # e.g. from a shadow-pipeline suggestion
        initial["name"] = request.GET["name"][:200]
    form = OpportunityForm(request.POST or None, user=user, initial=initial or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                deal = services.create_opportunity(user, via=Via.FORM, **form.changes())
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Created “{deal.name}”.")
                return redirect("opportunity", pk=deal.pk)
    return render(request, "web/form_page.html", {"form": form, "title": "New deal"}, status=status)
