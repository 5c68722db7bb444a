"""/accounts (with their domains and history) and /contacts (with their e-mail addresses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field, StringConstraints

from truepipe.accounts import services
from truepipe.accounts.models import Account, AccountChange, Contact
from truepipe.api import common
from truepipe.api.common import Id, actor, delete_version, etag, expected_version, order, page, visible_one
from truepipe.api.opportunities import history_out
from truepipe.api.schemas import (
    ERRORS,
    AccountRef,
    HistoryOut,
    ListParams,
    PersonKey,
    Strict,
    UserRef,
    page_of,
)
from truepipe.core.errors import InvalidInput
from truepipe.core.models import Via
from truepipe.core.visibility import visible

accounts_router = Router(tags=["accounts"])
contacts_router = Router(tags=["contacts"])

Domain = Annotated[str, StringConstraints(max_length=300)]
Email = Annotated[str, StringConstraints(max_length=254)]


# --- accounts ---------------------------------------------------------------------------------------


class AccountOut(Schema):
    id: int
    name: str
    industry: str
    employees: int | None
    owner: UserRef | None
    parent: AccountRef | None
    domains: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class AccountFields(Strict):
    industry: str | None = Field(None, max_length=120)
    employees: int | None = Field(None, ge=0, le=2**31 - 1)
    owner: PersonKey | None = Field(None, description="A person's id or username; default: you.")
    parent: Id | None = None
    domains: list[Domain] | None = Field(None, max_length=50)


class AccountCreate(AccountFields):
    name: str = Field(max_length=200)


class AccountPut(AccountCreate):
    version: Id | None = None


class AccountPatch(AccountFields):
    name: str | None = Field(None, max_length=200)
    version: Id | None = None


class AccountFilters(ListParams):
    owner: str | None = Field(None, max_length=150, description="A person's id or username.")
    industry: str | None = Field(None, max_length=120)
    domain: str | None = Field(None, max_length=253)
    parent: Id | None = None
    updated_since: datetime | None = None
    q: str | None = Field(None, max_length=200, description="Text in the name.")


ACCOUNT_ORDERING = {
    "name": "name",
    "industry": "industry",
    "employees": "employees",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "id": "id",
}


def account_queryset(user: Any) -> QuerySet[Account]:
    return visible(user, Account).select_related("owner", "parent").prefetch_related("domains")


def account_out(account: Account) -> dict[str, Any]:
    return {
        "id": account.pk,
        "name": account.name,
        "industry": account.industry,
        "employees": account.employees,
        "owner": common.user_ref_out(account.owner),
        "parent": {"id": account.parent.pk, "name": account.parent.name} if account.parent else None,
        "domains": [d.domain for d in account.domains.all()],
        "created_at": account.created_at,
        "updated_at": account.updated_at,
        "version": account.version,
    }


def account_changes(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    changes = dict(data)
    changes.pop("version", None)
    if "owner" in changes:
        changes["owner"] = common.person_ref(user, changes["owner"])
    if "parent" in changes:
        changes["parent"] = common.ref(user, Account, changes["parent"], "parent")
    if "industry" in changes and changes["industry"] is None:
        changes["industry"] = ""
    if "domains" in changes and changes["domains"] is None:
        changes["domains"] = []
    return changes


def account_detail(request: HttpRequest, response: HttpResponse, pk: int) -> dict[str, Any]:
    account = visible_one(actor(request), Account, pk, account_queryset(actor(request)))
    response["ETag"] = etag(account.version)
    return account_out(account)


@accounts_router.get("", response={200: page_of(AccountOut, "AccountPage"), **ERRORS})
def list_accounts(request: HttpRequest, filters: Query[AccountFilters]):
    f = filters
    qs = account_queryset(actor(request))
    if f.owner:
        qs = common.people_filter(qs, f.owner, "owner__")
    if f.industry:
        qs = qs.filter(industry__iexact=f.industry)
    if f.domain:
        qs = qs.filter(domains__domain=f.domain.strip().lower())
    if f.parent:
        qs = qs.filter(parent_id=f.parent)
    if f.updated_since:
        qs = qs.filter(updated_at__gte=f.updated_since)
    qs = common.text_search(qs, f.q, "name")
    qs = order(qs, f.ordering, ACCOUNT_ORDERING, ["name", "id"])
    return page(request, qs, f, account_out)


@accounts_router.post("", response={201: AccountOut, **ERRORS})
def create_account(request: HttpRequest, response: HttpResponse, payload: AccountCreate):
    user = actor(request)
    changes = account_changes(user, payload.model_dump(exclude_unset=True))
    account = services.create_account(user, via=Via.API, **changes)
    response["ETag"] = etag(account.version)
    response["Location"] = f"{request.path.rstrip('/')}/{account.pk}"
    return Status(201, account_out(account_queryset(user).get(pk=account.pk)))


@accounts_router.get("/{id}", response={200: AccountOut, **ERRORS})
def get_account(request: HttpRequest, response: HttpResponse, id: Id):
    return account_detail(request, response, id)


def _update_account(request: HttpRequest, response: HttpResponse, pk: int, data: dict[str, Any]):
    user = actor(request)
    visible_one(user, Account, pk)
    version = expected_version(request, data.get("version"))
    changes = account_changes(user, data)
    services.update_account(user, pk, changes, via=Via.API, expected_version=version, require_version=True)
    return account_detail(request, response, pk)


@accounts_router.patch("/{id}", response={200: AccountOut, **ERRORS})
def patch_account(request: HttpRequest, response: HttpResponse, id: Id, payload: AccountPatch):
    return _update_account(request, response, id, payload.model_dump(exclude_unset=True))


@accounts_router.put("/{id}", response={200: AccountOut, **ERRORS})
def put_account(request: HttpRequest, response: HttpResponse, id: Id, payload: AccountPut):
    data = payload.model_dump()
    if data.get("owner") is None:
        data.pop("owner")
    return _update_account(request, response, id, data)


@accounts_router.delete("/{id}", response={204: None, **ERRORS})
def delete_account(request: HttpRequest, id: Id):
    user = actor(request)
    visible_one(user, Account, id)
    version = delete_version(request)
    services.delete_account(user, id, via=Via.API, expected_version=version, require_version=True)
    return Status(204, None)


@accounts_router.get("/{id}/history", response={200: page_of(HistoryOut, "AccountHistoryPage"), **ERRORS})
def account_history(request: HttpRequest, id: Id, params: Query[ListParams]):
    account = visible_one(actor(request), Account, id)
    qs = AccountChange.objects.filter(account=account).select_related("changed_by")
    qs = order(qs, params.ordering, {"changed_at": "changed_at", "field": "field"}, ["changed_at", "id"])
    return page(request, qs, params, history_out)


# --- contacts ---------------------------------------------------------------------------------------


class ContactOut(Schema):
    id: int
    first_name: str
    last_name: str
    name: str
    title: str
    phone: str
    account: AccountRef | None
    owner: UserRef | None
    emails: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class ContactFields(Strict):
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    title: str | None = Field(None, max_length=120)
    phone: str | None = Field(None, max_length=50)
    account: Id | None = None
    owner: PersonKey | None = Field(None, description="A person's id or username; default: you.")
    emails: list[Email] | None = Field(None, max_length=50)


class ContactPut(ContactFields):
    version: Id | None = None


class ContactPatch(ContactFields):
    version: Id | None = None


class ContactFilters(ListParams):
    account: Id | None = None
    owner: str | None = Field(None, max_length=150, description="A person's id or username.")
    email: str | None = Field(None, max_length=254)
    updated_since: datetime | None = None
    q: str | None = Field(None, max_length=200, description="Text in the name or an e-mail address.")


CONTACT_ORDERING = {
    "last_name": "last_name",
    "first_name": "first_name",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "account": "account__name",
    "id": "id",
}


def contact_queryset(user: Any) -> QuerySet[Contact]:
    return visible(user, Contact).select_related("owner", "account").prefetch_related("emails")


def contact_out(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.pk,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "name": contact.full_name,
        "title": contact.title,
        "phone": contact.phone,
        "account": {"id": contact.account.pk, "name": contact.account.name} if contact.account else None,
        "owner": common.user_ref_out(contact.owner),
        "emails": [e.email for e in contact.emails.all()],
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "version": contact.version,
    }


def contact_changes(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    changes = dict(data)
    changes.pop("version", None)
    if "owner" in changes:
        changes["owner"] = common.person_ref(user, changes["owner"])
    if "account" in changes:
        changes["account"] = common.ref(user, Account, changes["account"], "account")
    for name in ("first_name", "last_name", "title", "phone"):
        if name in changes and changes[name] is None:
            changes[name] = ""
    if "emails" in changes and changes["emails"] is None:
        changes["emails"] = []
    return changes


def contact_detail(request: HttpRequest, response: HttpResponse, pk: int) -> dict[str, Any]:
    contact = visible_one(actor(request), Contact, pk, contact_queryset(actor(request)))
    response["ETag"] = etag(contact.version)
    return contact_out(contact)


@contacts_router.get("", response={200: page_of(ContactOut, "ContactPage"), **ERRORS})
def list_contacts(request: HttpRequest, filters: Query[ContactFilters]):
    f = filters
    qs = contact_queryset(actor(request))
    if f.account:
        qs = qs.filter(account_id=f.account)
    if f.owner:
        qs = common.people_filter(qs, f.owner, "owner__")
    if f.email:
        qs = qs.filter(emails__email=f.email.strip().lower())
    if f.updated_since:
        qs = qs.filter(updated_at__gte=f.updated_since)
    if f.q and f.q.strip():
        # Name parts, or an address: a contact matching through two addresses must appear once.
        matches = common.text_search(Contact.objects.all(), f.q, "first_name", "last_name", "emails__email")
        qs = qs.filter(pk__in=matches.values("pk"))
    qs = order(qs, f.ordering, CONTACT_ORDERING, ["last_name", "first_name", "id"])
    return page(request, qs, f, contact_out)


@contacts_router.post("", response={201: ContactOut, **ERRORS})
def create_contact(request: HttpRequest, response: HttpResponse, payload: ContactFields):
    user = actor(request)
    changes = contact_changes(user, payload.model_dump(exclude_unset=True))
    contact = services.create_contact(user, via=Via.API, **changes)
    response["ETag"] = etag(contact.version)
    response["Location"] = f"{request.path.rstrip('/')}/{contact.pk}"
    return Status(201, contact_out(contact_queryset(user).get(pk=contact.pk)))


@contacts_router.get("/{id}", response={200: ContactOut, **ERRORS})
def get_contact(request: HttpRequest, response: HttpResponse, id: Id):
    return contact_detail(request, response, id)


def _update_contact(request: HttpRequest, response: HttpResponse, pk: int, data: dict[str, Any]):
    user = actor(request)
    visible_one(user, Contact, pk)
    version = expected_version(request, data.get("version"))
    changes = contact_changes(user, data)
    # create_contact insists on a name or an address; update_contact does not check, so clearing all
    # three at once is refused here.
    if all(name in changes and not changes[name] for name in ("first_name", "last_name", "emails")):
        raise InvalidInput("A contact needs a name or an e-mail address.", fields={"last_name": "Required."})
    services.update_contact(user, pk, changes, via=Via.API, expected_version=version, require_version=True)
    return contact_detail(request, response, pk)


@contacts_router.patch("/{id}", response={200: ContactOut, **ERRORS})
def patch_contact(request: HttpRequest, response: HttpResponse, id: Id, payload: ContactPatch):
    return _update_contact(request, response, id, payload.model_dump(exclude_unset=True))


@contacts_router.put("/{id}", response={200: ContactOut, **ERRORS})
def put_contact(request: HttpRequest, response: HttpResponse, id: Id, payload: ContactPut):
    data = payload.model_dump()
    if data.get("owner") is None:
        data.pop("owner")
    return _update_contact(request, response, id, data)


@contacts_router.delete("/{id}", response={204: None, **ERRORS})
def delete_contact(request: HttpRequest, id: Id):
    user = actor(request)
    visible_one(user, Contact, id)
    version = delete_version(request)
    services.delete_contact(user, id, via=Via.API, expected_version=version, require_version=True)
    return Status(204, None)
