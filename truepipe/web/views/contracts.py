"""Contracts from finance: the unlogged wins (no won deal matches them) first, then the matched
ones, each with the rep accountable. For admins, exec, managers (their team's) and delivery."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from truepipe.contracts import services
from truepipe.contracts.models import Contract
from truepipe.core.visibility import visible
from truepipe.web.views.common import refuse

SHOWN = 200


@login_required
@require_GET
def contracts_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not services.may_see_contracts_page(user):
        return refuse(request, "Contracts are for managers, delivery and admins.")
    contracts = visible(user, Contract).select_related("account", "rep", "opportunity")
    unmatched = contracts.filter(opportunity__isnull=True).order_by("-signed_on", "-pk")
    matched = contracts.filter(opportunity__isnull=False).order_by("-signed_on", "-pk")
    return render(
        request,
        "web/contracts/page.html",
        {
            "unmatched": list(unmatched[:SHOWN]),
            "unmatched_count": unmatched.count(),
            "matched": list(matched[:SHOWN]),
            "matched_count": matched.count(),
            "shown": SHOWN,
        },
    )
