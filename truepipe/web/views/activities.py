"""Log a touch: the few-seconds form, as its own page and inline on a deal (HTMX)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from truepipe.activities import services
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.pipeline.models import Opportunity
from truepipe.web.forms import LogTouchForm, apply_service_error
from truepipe.web.htmx import is_htmx
from truepipe.web.views.opportunities import timeline


@login_required
@require_http_methods(["GET", "POST"])
def log_touch(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not visibility.can_create(user):
        return render(
            request,
            "web/refused.html",
            {"message": "Your role can read activities but not log them."},
            status=403,
        )
    deal = None
    deal_id = request.GET.get("opportunity", "")
    if deal_id.isdigit():
        deal = visibility.visible(user, Opportunity).select_related("account").filter(pk=int(deal_id)).first()
    inline = request.GET.get("inline") == "1" and deal is not None and is_htmx(request)
    form = LogTouchForm(request.POST or None, user=user, opportunity=deal)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                activity = services.log_activity(
                    user,
                    via=Via.FORM,
                    kind=data["kind"],
                    opportunity=data.get("opportunity"),
                    occurred_at=data["occurred_at"],
                    subject=data["subject"],
                    body=data.get("body") or "",
                    participants=list(data.get("participants") or []),
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                if inline and deal is not None:
                    context = {
                        "activities": timeline(user, opportunity=deal),
                        "log_form": LogTouchForm(user=user, opportunity=deal),
                        "inline_deal": deal,
                        "notice": f"Logged: {activity.subject}",
                    }
                    return render(request, "web/activities/_timeline_section.html", context)
                messages.success(request, f"Logged: {activity.subject}")
                if activity.opportunity_id:
                    return redirect("opportunity", pk=activity.opportunity_id)
                return redirect("log")
    if inline and deal is not None:
        context = {"activities": timeline(user, opportunity=deal), "log_form": form, "inline_deal": deal}
        return render(request, "web/activities/_timeline_section.html", context, status=status)
    return render(request, "web/activities/log.html", {"log_form": form, "deal": deal}, status=status)
