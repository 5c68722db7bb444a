"""The shadow pipeline page: customers you keep e-mailing and meeting with no deal in truepipe.

Each suggestion offers *Create the deal* (the new-deal form at the domain's account, created
from the domain when truepipe does not know the company), *Not a customer* (the domain is
excluded from your capture) and *Not now* (hidden until new touches). A manager sees their
team's suggestions, admin and exec everyone's, read-only; delivery has no shadow pipeline.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from truepipe.accounts.models import Account
from truepipe.capture import shadow
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.people.models import Role
from truepipe.web.views.common import refuse

READERS = {Role.REP, Role.MANAGER, Role.ADMIN, Role.EXEC}


@login_required
@require_http_methods(["GET", "POST"])
def shadow_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if visibility.role_of(user) not in READERS:
        return refuse(request, "The shadow pipeline is the sales team's: reps, their managers and admins.")
    if request.method == "POST":
        return _answer(request, user)
    rows = shadow.shadow_pipeline(user)
    # Which suggested accounts the user may pick on the new-deal form (one query).
    known = {row.account_id for row in rows if row.account_id}
    selectable = (
        set(visibility.visible(user, Account).filter(pk__in=known).values_list("pk", flat=True))
        if known
        else set()
    )
    params = shadow.thresholds()
    return render(
        request,
        "web/capture/shadow.html",
        {
            "rows": [
                {"row": row, "mine": row.rep_id == user.pk, "selectable": row.account_id in selectable}
                for row in rows
            ],
            "params": params,
            "can_create": visibility.can_create(user),
            "many_reps": len({row.rep_id for row in rows}) > 1 or any(row.rep_id != user.pk for row in rows),
        },
    )


def _answer(request: HttpRequest, user: Any) -> HttpResponse:
    action = request.POST.get("action", "")
    domain = request.POST.get("domain", "")
    rep_id = request.POST.get("rep", "")
    known = rep_id.isascii() and rep_id.isdigit() and len(rep_id) < 19
    rep = get_object_or_404(get_user_model(), pk=int(rep_id)) if known else user
    try:
        if action == "create":
            if rep.pk != user.pk:
                return refuse(request, "Only the rep creates their own deal from a suggestion.")
            account = shadow.account_for_deal(user, domain)
            query = urlencode({"account": account.pk, "name": f"{account.name}: new deal"})
            return redirect(f"{reverse('opportunity-new')}?{query}")
        if action == "exclude":
            shadow.exclude_domain(user, rep, domain, note=request.POST.get("note", ""))
            messages.success(request, f"{domain} is not a customer: no longer captured or suggested.")
        elif action == "dismiss":
            shadow.dismiss_suggestion(user, rep, domain, note=request.POST.get("note", ""))
            messages.success(request, f"{domain} hidden until new touches.")
        else:
            return refuse(request, "Unknown action.", status=400)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("shadow-pipeline")
