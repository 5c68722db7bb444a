"""Search across accounts, contacts and deals, within what the user may see."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from truepipe.accounts.models import Account, AccountDomain, Contact
from truepipe.core import visibility
from truepipe.pipeline.models import Opportunity
from truepipe.web.htmx import render_page
from truepipe.web.views.accounts import contact_matches

RESULTS_PER_KIND = 20


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    user = request.user
    q = request.GET.get("q", "").strip()[:100]
    context: dict = {"q": q, "too_short": 0 < len(q) < 2}
    if len(q) >= 2:
        domains = AccountDomain.objects.filter(account=OuterRef("pk"), domain__icontains=q)
        context["accounts"] = list(
            visibility.visible(user, Account)
            .filter(Q(name__icontains=q) | Exists(domains))
            .select_related("owner")
            .prefetch_related("domains")
            .order_by("name", "id")[:RESULTS_PER_KIND]
        )
        context["contacts"] = list(
            visibility.visible(user, Contact)
            .filter(contact_matches(q))
            .select_related("account")
            .prefetch_related("emails")
            .order_by("last_name", "first_name", "id")[:RESULTS_PER_KIND]
        )
        context["deals"] = list(
            visibility.visible(user, Opportunity)
            .filter(name__icontains=q)
            .select_related("account", "stage", "owner")
            .order_by("-updated_at", "-id")[:RESULTS_PER_KIND]
        )
    return render_page(request, "web/search.html", "web/_search_results.html", context)
