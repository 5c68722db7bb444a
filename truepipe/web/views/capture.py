"""The capture page: what was logged from mail and calendars, the triage list, proposed contacts,
uploads, and each person's capture settings (addresses, personal domains)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from truepipe.capture import services
from truepipe.capture.models import (
    CaptureAddress,
    CapturedItem,
    ContactProposal,
    ExcludedDomain,
    ProposalStatus,
)
from truepipe.capture.uploads import ingest_file
from truepipe.contracts.services import may_see_contracts_page
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.core.visibility import role_of, visible
from truepipe.people.models import Role
from truepipe.pipeline.models import Opportunity
from truepipe.web.views.common import paginate, refuse


@login_required
@require_http_methods(["GET"])
def capture_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    triage = list(services.triage_for(user)[:50])
    deals = services.candidate_deals(user, triage)
    for item in triage:
        item.deals = [deals[pk] for pk in item.candidates if pk in deals]
    items = visible(user, CapturedItem).select_related("owner", "activity", "activity__opportunity")
    status = request.GET.get("status", "")
    if status:
        items = items.filter(status=status)
    counts = dict(
        visible(user, CapturedItem).values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    proposals = (
        visible(user, ContactProposal)
        .filter(status=ProposalStatus.OPEN)
        .select_related("account")
        .order_by("-times_seen", "-last_seen")[:30]
    )
    context = {
        "triage": triage,
        "page": paginate(request, items.order_by("-captured_at", "-pk")),
        "status": status,
        "counts": counts,
        "proposals": proposals,
        "addresses": CaptureAddress.objects.filter(user=user),
        "excluded": ExcludedDomain.objects.filter(user=user).order_by("domain"),
        "excluded_for_everyone": ExcludedDomain.objects.filter(user=None).order_by("domain"),
        "dropbox": settings.TRUEPIPE_DROPBOX_ADDRESS,
        "can_upload": role_of(user) in {Role.REP, Role.MANAGER, Role.ADMIN},
        "is_admin": role_of(user) == Role.ADMIN,
        "can_see_contracts": may_see_contracts_page(user),
    }
    return render(request, "web/capture/page.html", context)


@login_required
@require_POST
def capture_upload(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, "Choose one or more .eml, .mbox or .ics files first.")
        return redirect("capture")
    owner_id = user.pk if role_of(user) == Role.REP else None
    for upload in files:
        try:
            report = ingest_file(user, upload.name or "upload", upload.chunks(), owner_id=owner_id)
        except ServiceError as exc:
            messages.error(request, exc.message)
            continue
        text = f"{upload.name}: {report.summary()}"
        (messages.warning if report.counts["rejected"] else messages.success)(request, text)
        for origin, reason in report.problems[:10]:
            messages.warning(request, f"Rejected {origin}: {reason}")
    return redirect("capture")


@login_required
@require_POST
def triage_decide(request: HttpRequest, pk: int) -> HttpResponse:
    user: Any = request.user
    choice = request.POST.get("opportunity", "")
    opportunity = None
    if choice and choice != "none":
        ok = choice.isascii() and choice.isdigit() and len(choice) < 19
        opportunity = visible(user, Opportunity).filter(pk=int(choice)).first() if ok else None
        if opportunity is None:
            return refuse(request, "That deal does not exist or is not yours.", 404)
    try:
        item = services.decide_triage(user, pk, opportunity, via=Via.FORM)
    except ServiceError as exc:
        return refuse(request, exc)
    where = f"on {opportunity.name}" if opportunity else "without a deal"
    messages.success(request, f"“{item.subject}” logged {where}.")
    return redirect("capture")


@login_required
@require_POST
def proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    user: Any = request.user
    try:
        if request.POST.get("action") == "accept":
            contact = services.accept_proposal(user, pk, via=Via.FORM)
            messages.success(request, f"{contact} added to {contact.account}.")
        else:
            services.dismiss_proposal(user, pk)
            messages.success(request, "Dismissed: that address will not be proposed again.")
    except ServiceError as exc:
        return refuse(request, exc)
    return redirect("capture")


@login_required
@require_POST
def capture_private(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        removed = services.mark_private(request.user, pk, via=Via.FORM)
    except ServiceError as exc:
        return refuse(request, exc)
    messages.success(
        request, f"Conversation marked private: {removed} logged item(s) removed, later mail ignored."
    )
    return redirect("capture")


@login_required
@require_POST
def capture_settings(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    action = request.POST.get("action", "")
    value = request.POST.get("value", "").strip()
    everyone = request.POST.get("everyone") == "1"
    try:
        if action == "add-address":
            services.add_address(user, value)
            messages.success(request, f"{value} registered: mail from it is yours.")
        elif action == "remove-address":
            services.remove_address(user, value)
            messages.success(request, f"{value} removed.")
        elif action == "exclude":
            services.exclude_domain(user, value, everyone=everyone)
            messages.success(request, f"Mail with {value} will not be logged.")
        elif action == "include":
            services.include_domain(user, value, everyone=everyone)
            messages.success(request, f"Mail with {value} is logged again.")
        else:
            return refuse(request, "Unknown action.", 400)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("capture")
