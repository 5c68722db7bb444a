"""My pipeline: the sortable, filterable list of visible deals, bulk actions and CSV export."""

from __future__ import annotations

import csv
import importlib
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.people.models import Role
from truepipe.pipeline import services
from truepipe.pipeline.models import Opportunity, StageKind
from truepipe.web.forms import BulkForm, PipelineFilterForm
from truepipe.web.htmx import render_page
from truepipe.web.views.common import paginate, sort_order

SORT_COLUMNS = {
    "name": "name",
    "account": "account__name",
    "stage": "stage__order",
    "amount": "amount",
    "close": "close_date",
    "owner": "owner__first_name",
    "updated": "updated_at",
}


def filtered_deals(user: Any, form: PipelineFilterForm) -> QuerySet[Opportunity]:
    """The visible deals matching the list's filters (invalid filters are ignored, and shown as errors)."""
    qs = visibility.visible(user, Opportunity)
    data = form.cleaned_data if form.is_valid() else {}
    status = data.get("status") or default_status(user)
    if status == "open":
        qs = qs.filter(stage__kind=StageKind.OPEN)
    elif status == "closed":
        qs = qs.exclude(stage__kind=StageKind.OPEN)
    elif status in (StageKind.WON, StageKind.LOST):
        qs = qs.filter(stage__kind=status)
    if data.get("owner"):
        qs = qs.filter(owner=data["owner"])
    if data.get("stage"):
        qs = qs.filter(stage=data["stage"])
    if data.get("close_from"):
        qs = qs.filter(close_date__gte=data["close_from"])
    if data.get("close_to"):
        qs = qs.filter(close_date__lte=data["close_to"])
    if data.get("q"):
        q = data["q"].strip()
        qs = qs.filter(Q(name__icontains=q) | Q(account__name__icontains=q))
    return qs


def default_status(user: Any) -> str:
    """Delivery works from won deals; everyone else from the open pipeline."""
    return StageKind.WON if visibility.role_of(user) == Role.DELIVERY else "open"


def export_available() -> bool:
    try:
        module = importlib.import_module("truepipe.importer.exporting")
    except ImportError:
        return False
    return hasattr(module, "export_rows")


@login_required
@require_GET
def pipeline_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = PipelineFilterForm(request.GET or None, user=user)
    form.fields["status"].initial = default_status(user)
    qs = filtered_deals(user, form)
    sort_key, order = sort_order(request, SORT_COLUMNS, "close")
    totals = qs.aggregate(count=Count("id"), amount=Sum("amount"))
    page = paginate(request, qs.select_related("account", "owner", "stage").order_by(*order))
    bulk = BulkForm(user=user)
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("sort", None)
    context = {
        "form": form,
        "page": page,
        "deals": page.object_list,
        "totals": totals,
        "sort": sort_key,
        "query": params.urlencode(),
        "bulk": bulk,
        "can_bulk": visibility.can_create(user),
        "export": export_available(),
        "today": timezone.localdate(),
    }
    return render_page(request, "web/pipeline/list.html", "web/pipeline/_results.html", context)


@login_required
@require_POST
def bulk_action(request: HttpRequest) -> HttpResponse:
    """Apply one change to the selected deals, all or nothing, through the service layer (via=bulk)."""
    user = request.user
    form = BulkForm(request.POST, user=user)
    # Back to the same filtered list; re-encoding keeps the value a plain query string.
    filters = QueryDict(request.POST.get("next", "")).urlencode()
    back = reverse("pipeline") + (f"?{filters}" if filters else "")
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else str(error))
        if "ids" in form.errors:
            messages.error(request, "Select at least one deal first.")
        return redirect(back)
    ids = form.cleaned_data["ids"]
    deals = list(visibility.visible(user, Opportunity).filter(pk__in=ids).select_related("stage"))
    if len(deals) != len(set(ids)):
        messages.error(request, "Some of the selected deals no longer exist or are not visible to you.")
        return redirect(back)
    action = form.cleaned_data["action"]
    try:
        if action == "mark_lost":
            services.mark_lost(user, deals, form.cleaned_data["lost_reason"], via=Via.BULK)
            done = "marked lost"
        elif action == "change_owner":
            owner = form.cleaned_data["owner"]
            services.bulk_update_opportunities(user, deals, {"owner": owner}, via=Via.BULK)
            done = f"given to {owner.get_full_name() or owner.username}"
        else:
            stage = form.cleaned_data["stage"]
            services.bulk_update_opportunities(user, deals, {"stage": stage}, via=Via.BULK)
            done = f"moved to {stage.name}"
    except ServiceError as exc:
        messages.error(request, f"Nothing was changed: {exc.message}")
        return redirect(back)
    messages.success(request, f"{len(deals)} deal{'s' if len(deals) != 1 else ''} {done}.")
    return redirect(back)


EXPORT_KINDS = ("opportunities", "accounts", "contacts")


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def export_csv(request: HttpRequest, kind: str = "opportunities") -> HttpResponseBase:
    """The visible records as CSV in the column names `truepipe import` accepts (importer.exporting)."""
    if kind not in EXPORT_KINDS or not export_available():
        return HttpResponse("This export is not available.", status=404, content_type="text/plain")
    exporting = importlib.import_module("truepipe.importer.exporting")
    # export_rows(None, ...) would mean "everything": a page always passes the logged-in user.
    header, rows = exporting.export_rows(request.user, kind)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="truepipe-{kind}-{stamp}.csv"'
    return response
