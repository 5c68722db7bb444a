"""Export: records as rows with the column names `import` accepts, so export -> import round-trips.

`export_rows(user, kind)` is shared by `truepipe export` and the web app's CSV download. With a
user it returns only what visibility.visible lets that user see; with None (the operator at the
command line) everything.

Each record's external id is the one it was imported with ("salesforce", "006..."); a record that
came from nowhere else is written as system "truepipe" with its own primary key, which the
importer understands, so re-importing an export updates records instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from truepipe.accounts.models import Account, AccountDomain, Contact, ContactEmail
from truepipe.activities.models import Activity
from truepipe.core.models import ExternalId
from truepipe.core.visibility import visible, visible_users
from truepipe.importer.formats import EXPORT_FIELDS
from truepipe.pipeline.models import Opportunity, OpportunityProduct, Product

User = get_user_model()
TRUEPIPE = "truepipe"
CHUNK = 2000


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _external_ids(kind: str) -> dict[int, tuple[str, str]]:
    """{object id: (system, value)}: each record's first external id."""
    out: dict[int, tuple[str, str]] = {}
    rows = ExternalId.objects.filter(kind=kind).order_by("-id").values_list("object_id", "system", "value")
    for object_id, system, value in rows:
        out[object_id] = (system, value)
    return out


def _identity(ids: dict[int, tuple[str, str]], pk: int) -> list[str]:
    system, value = ids.get(pk, (TRUEPIPE, str(pk)))
    return [system, value]


def _full_name(user) -> str:
    return f"{user.first_name} {user.last_name}".strip() if user else ""


def export_rows(user, kind: str) -> tuple[list[str], Iterator[list[str]]]:
    """(header, rows) of every `kind` record `user` may see; user None means everything."""
    if kind not in EXPORT_FIELDS:
        raise ValueError(f"Unknown kind {kind!r}: use one of {', '.join(EXPORT_FIELDS)}.")
    header = list(EXPORT_FIELDS[kind])
    rows = {
        "opportunities": _opportunities,
        "accounts": _accounts,
        "contacts": _contacts,
        "activities": _activities,
        "users": _users,
        "products": _products,
    }[kind](user)
    return header, rows


def _scope(user, model):
    return model._default_manager.filter(deleted_at__isnull=True) if user is None else visible(user, model)


def _opportunities(user) -> Iterator[list[str]]:
    ids = _external_ids("opportunity")
    products = dict(OpportunityProduct.objects.order_by("-id").values_list("opportunity_id", "product__name"))
    qs = (
        _scope(user, Opportunity)
        .select_related("account", "owner", "stage")
        .order_by("id")
        .iterator(chunk_size=CHUNK)
    )
    for opp in qs:
        yield [
            *_identity(ids, opp.pk),
            opp.name,
            opp.account.name if opp.account else "",
            opp.owner.username,
            opp.stage.name,
            _text(opp.amount),
            opp.currency,
            _text(opp.close_date),
            _text(opp.created_at),
            opp.next_step,
            _text(opp.next_step_date),
            opp.lost_reason,
            str(opp.probability) if opp.probability_overridden else "",
            opp.source,
            opp.competitor,
            products.get(opp.pk, ""),
        ]


def _accounts(user) -> Iterator[list[str]]:
    ids = _external_ids("account")
    domains = dict(AccountDomain.objects.order_by("-id").values_list("account_id", "domain"))
    qs = _scope(user, Account).select_related("parent", "owner").order_by("id").iterator(chunk_size=CHUNK)
    for account in qs:
        yield [
            *_identity(ids, account.pk),
            account.name,
            domains.get(account.pk, ""),
            account.industry,
            _text(account.employees),
            account.parent.name if account.parent else "",
            account.owner.username if account.owner else "",
        ]


def _contacts(user) -> Iterator[list[str]]:
    ids = _external_ids("contact")
    emails: dict[int, list[str]] = {}
    for contact_id, email in ContactEmail.objects.order_by("id").values_list("contact_id", "email"):
        emails.setdefault(contact_id, []).append(email)
    qs = _scope(user, Contact).select_related("account", "owner").order_by("id").iterator(chunk_size=CHUNK)
    for contact in qs:
        yield [
            *_identity(ids, contact.pk),
            contact.first_name,
            contact.last_name,
            "; ".join(emails.get(contact.pk, [])),
            contact.phone,
            contact.title,
            contact.account.name if contact.account else "",
            contact.owner.username if contact.owner else "",
        ]


def _activities(user) -> Iterator[list[str]]:
    ids = _external_ids("activity")
    deal_ids = _external_ids("opportunity")
    participants: dict[int, list[str]] = {}
    through = Activity.participants.through.objects.values_list("activity_id", "contact_id")
    contact_email = dict(ContactEmail.objects.order_by("-id").values_list("contact_id", "email"))
    for activity_id, contact_id in through:
        if contact_id in contact_email:
            participants.setdefault(activity_id, []).append(contact_email[contact_id])
    qs = (
        _scope(user, Activity)
        .select_related("owner", "opportunity", "account")
        .order_by("id")
        .iterator(chunk_size=CHUNK)
    )
    for activity in qs:
        deal = activity.opportunity
        deal_ref = ""
        if deal is not None:
            deal_ref = deal_ids[deal.pk][1] if deal.pk in deal_ids else deal.name
        yield [
            *_identity(ids, activity.pk),
            activity.kind,
            _text(activity.occurred_at),
            _text(activity.logged_at),
            activity.subject,
            activity.body,
            activity.owner.username,
            deal_ref,
            activity.account.name if activity.account else "",
            "; ".join(participants.get(activity.pk, [])),
        ]


def _users(user) -> Iterator[list[str]]:
    ids = _external_ids("user")
    people = User.objects.filter(profile__isnull=False) if user is None else visible_users(user)
    qs = people.select_related("profile", "profile__manager", "profile__team").order_by("id")
    for person in qs.iterator(chunk_size=CHUNK):
        profile = person.profile
        yield [
            *_identity(ids, person.pk),
            person.username,
            person.email,
            _full_name(person),
            profile.role,
            profile.manager.username if profile.manager else "",
            profile.team.name if profile.team else "",
            profile.title,
        ]


def _products(user) -> Iterator[list[str]]:
    # The catalogue is not secret: everyone who may sign in sees the product list.
    for product in Product.objects.order_by("id"):
        yield [product.name, product.code, product.family, _text(product.list_price), product.currency]
