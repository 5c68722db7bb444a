"""Accounts and contacts: lists, pages and the forms that create them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from truepipe.accounts import services
from truepipe.accounts.models import Account, AccountDomain, Contact, ContactEmail
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.pipeline.models import Opportunity
from truepipe.web.forms import AccountForm, ContactForm, apply_service_error
from truepipe.web.htmx import render_page
from truepipe.web.views.common import history_rows, names_of, paginate, person_names, refuse, sort_order
from truepipe.web.views.opportunities import timeline
from truepipe.web.views.pipeline import export_available

ACCOUNT_SORT = {
    "name": "name",
    "industry": "industry",
    "employees": "employees",
    "owner": "owner__first_name",
}
CONTACT_SORT = {
    "name": "last_name",
    "account": "account__name",
    "title": "title",
    "owner": "owner__first_name",
}


@login_required
@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    qs = visibility.visible(user, Account)
    q = request.GET.get("q", "").strip()[:100]
    if q:
        domains = AccountDomain.objects.filter(account=OuterRef("pk"), domain__icontains=q)
        qs = qs.filter(Q(name__icontains=q) | Exists(domains))
    sort, order = sort_order(request, ACCOUNT_SORT, "name")
    page = paginate(request, qs.select_related("owner").prefetch_related("domains").order_by(*order))
    context = {
        "page": page,
        "accounts": page.object_list,
        "q": q,
        "sort": sort,
        "query": urlencode({"q": q}) if q else "",
        "can_create": visibility.can_create(user),
        "export": export_available(),
    }
    return render_page(request, "web/accounts/list.html", "web/accounts/_results.html", context)


@login_required
@require_GET
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    account = get_object_or_404(
        visibility.visible(user, Account).select_related("owner", "parent").prefetch_related("domains"), pk=pk
    )
    changes = account.changes.select_related("changed_by").order_by("-changed_at", "-id")
    context = {
        "account": account,
        "contacts": visibility.visible(user, Contact)
        .filter(account=account)
        .select_related("owner")
        .prefetch_related("emails"),
        "deals": visibility.visible(user, Opportunity)
        .filter(account=account)
        .select_related("owner", "stage")
        .order_by("close_date", "id"),
        "activities": timeline(user, account=account),
        "history": history_rows(
            changes,
            {
                "owner": person_names,
                "parent": lambda ids: names_of(visibility.visible(user, Account), ids, "(hidden account)"),
            },
        ),
        "can_create": visibility.can_create(user),
        "can_change": visibility.can_change(user, account),
    }
    return render(request, "web/accounts/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def account_new(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not visibility.can_create(user):
        return refuse(request, "Your role can read accounts but not create them.")
    form = AccountForm(request.POST or None, user=user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = {name: form.cleaned_data.get(name) for name in ("name", "industry", "employees", "owner")}
            if form.cleaned_data.get("parent"):
                data["parent"] = form.cleaned_data["parent"]
            try:
                account = services.create_account(user, via=Via.FORM, domains=form.domain_list(), **data)
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Created account “{account.name}”.")
                return redirect("account", pk=account.pk)
    return render(request, "web/form_page.html", {"form": form, "title": "New account"}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    account = get_object_or_404(visibility.visible(user, Account).prefetch_related("domains"), pk=pk)
    if not visibility.can_change(user, account):
        return refuse(request, f"You may view “{account.name}” but not change it.")
    form = AccountForm(request.POST or None, user=user, initial=AccountForm.initial_for(account))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            names = ("name", "industry", "employees", "owner", "parent")
            changes: dict = {name: form.cleaned_data.get(name) for name in names}
            changes["domains"] = form.domain_list()
            try:
                services.update_account(
                    user,
                    account,
                    changes,
                    via=Via.FORM,
                    expected_version=form.cleaned_data.get("version"),
                    require_version=True,
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Saved account “{changes['name']}”.")
                return redirect("account", pk=account.pk)
    context = {"form": form, "title": f"Edit {account.name}"}
    return render(request, "web/form_page.html", context, status=status)


@login_required
@require_GET
def contact_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    qs = visibility.visible(user, Contact)
    q = request.GET.get("q", "").strip()[:100]
    if q:
        qs = qs.filter(contact_matches(q))
    sort, order = sort_order(request, CONTACT_SORT, "name")
    page = paginate(
        request, qs.select_related("account", "owner").prefetch_related("emails").order_by(*order)
    )
    context = {
        "page": page,
        "contacts": page.object_list,
        "q": q,
        "sort": sort,
        "query": urlencode({"q": q}) if q else "",
        "can_create": visibility.can_create(user),
        "export": export_available(),
    }
    return render_page(request, "web/contacts/list.html", "web/contacts/_results.html", context)


def contact_matches(q: str) -> Q:
    """Every word of `q` in the first name, last name or an e-mail address."""
    condition = Q()
    for word in q.split()[:5]:
        emails = ContactEmail.objects.filter(contact=OuterRef("pk"), email__icontains=word)
        condition &= Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(Exists(emails))
    return condition


@login_required
@require_GET
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    contact = get_object_or_404(
        visibility.visible(user, Contact).select_related("account", "owner").prefetch_related("emails"), pk=pk
    )
    context = {
        "contact": contact,
        "activities": timeline(user, participants=contact),
        "can_change": visibility.can_change(user, contact),
    }
    return render(request, "web/contacts/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    contact = get_object_or_404(visibility.visible(user, Contact).prefetch_related("emails"), pk=pk)
    if not visibility.can_change(user, contact):
        return refuse(request, f"You may view “{contact}” but not change it.")
    form = ContactForm(request.POST or None, user=user, initial=ContactForm.initial_for(contact))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            names = ("first_name", "last_name", "title", "phone", "owner", "account")
            changes: dict = {name: form.cleaned_data.get(name) for name in names}
            changes["emails"] = form.email_list()
            try:
                services.update_contact(
                    user,
                    contact,
                    changes,
                    via=Via.FORM,
                    expected_version=form.cleaned_data.get("version"),
                    require_version=True,
                )
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, "Saved the contact.")
                return redirect("contact", pk=contact.pk)
    context = {"form": form, "title": f"Edit {contact}"}
    return render(request, "web/form_page.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def contact_new(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not visibility.can_create(user):
        return refuse(request, "Your role can read contacts but not create them.")
    initial = {"account": int(request.GET["account"])} if request.GET.get("account", "").isdigit() else None
    form = ContactForm(request.POST or None, user=user, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            names = ("first_name", "last_name", "title", "phone", "owner", "account")
            data = {name: form.cleaned_data.get(name) for name in names}
            try:
                contact = services.create_contact(user, via=Via.FORM, emails=form.email_list(), **data)
            except ServiceError as exc:
                apply_service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Created contact “{contact}”.")
                return redirect("contact", pk=contact.pk)
    return render(request, "web/form_page.html", {"form": form, "title": "New contact"}, status=status)
