"""The one write path for accounts and contacts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from truepipe.accounts.models import (
    Account,
    AccountChange,
    AccountDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    PhoneKind,
)
from truepipe.core import hooks
from truepipe.core.errors import InvalidInput, NotFound
from truepipe.core.history import check_version, diff, history_rows
from truepipe.core.permissions import require_assignable, require_change, require_create, require_visible

ACCOUNT_FIELDS = ("name", "industry", "employees", "owner", "parent")
CONTACT_FIELDS = ("first_name", "last_name", "title", "phone", "account", "owner")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def normalise_domain(raw: str) -> str:
    """'https://www.Acme.com/about' -> 'acme.com'."""
    value = (raw or "").strip().lower()
    value = re.sub(r"^[a-z]+://", "", value).split("/")[0].split("@")[-1].split(":")[0]
    if value.startswith("www."):
        value = value[4:]
    if not DOMAIN_RE.match(value):
        raise InvalidInput(f"{raw!r} is not a web domain.", fields={"domains": f"{raw!r} is not a domain."})
    return value


def normalise_email(raw: str) -> str:
    value = (raw or "").strip().lower()
    try:
        validate_email(value)
    except ValidationError:
        raise InvalidInput(
            f"{raw!r} is not an e-mail address.", fields={"emails": f"{raw!r} is not an e-mail address."}
        ) from None
    return value


def _validate_account(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "name" in out:
        out["name"] = (out["name"] or "").strip()
        if not out["name"]:
            raise InvalidInput("An account needs a name.", fields={"name": "Required."})
        if len(out["name"]) > 200:
            raise InvalidInput("Name: at most 200 characters.", fields={"name": "At most 200 characters."})
    if "industry" in out:
        out["industry"] = (out["industry"] or "").strip()[:120]
    if out.get("employees") is not None:
        try:
            out["employees"] = int(out["employees"])
            if out["employees"] < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidInput(
                "Employees: a whole number of zero or more.", fields={"employees": "Not a count."}
            ) from None
    return out


def _set_domains(account: Account, domains: list[str]) -> tuple[str | None, str | None] | None:
    wanted = list(dict.fromkeys(normalise_domain(d) for d in domains if d and d.strip()))
    current = list(account.domains.values_list("domain", flat=True))
    if wanted == current:
        return None
    taken = (
        AccountDomain.objects.filter(domain__in=wanted)
        .exclude(account=account)
        .select_related("account")
        .first()
    )
    if taken:
        raise InvalidInput(
            f"The domain {taken.domain} already belongs to account “{taken.account}”.",
            fields={"domains": f"{taken.domain} belongs to another account."},
        )
    account.domains.exclude(domain__in=wanted).delete()
    AccountDomain.objects.bulk_create(
        AccountDomain(account=account, domain=d) for d in wanted if d not in current
    )
    return (", ".join(current) or None, ", ".join(wanted) or None)


def create_account(
    actor, *, via: str, at: datetime | None = None, domains: list[str] | None = None, **fields: Any
) -> Account:
    require_create(actor)
    unknown = set(fields) - set(ACCOUNT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    values = _validate_account(fields)
    if "name" not in values:
        raise InvalidInput("An account needs a name.", fields={"name": "Required."})
    values.setdefault("owner", actor)
    require_assignable(actor, values.get("owner"))
    require_visible(actor, values.get("parent"), "parent")
    at = at or timezone.now()
    with transaction.atomic():
        account = Account.objects.create(**values, created_at=at, updated_at=at)
        if domains:
            _set_domains(account, domains)
        hooks.emit(
            hooks.WriteEvent(
                "account", "create", [account.pk], frozenset(values), getattr(actor, "pk", None), via, at
            )
        )
    return account


def update_account(
    actor,
    account: Account | int,
    changes: dict[str, Any],
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
    at: datetime | None = None,
) -> Account:
    domains = changes.pop("domains", None) if "domains" in changes else None
    unknown = set(changes) - set(ACCOUNT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown or read-only field(s): {', '.join(sorted(unknown))}.")
    values = _validate_account(changes)
    at = at or timezone.now()
    pk = account.pk if isinstance(account, Account) else account
    with transaction.atomic():
        try:
            acc = Account.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Account.DoesNotExist:
            raise NotFound("That account does not exist or was deleted.") from None
        require_change(actor, acc)
        check_version(acc, expected_version, require=require_version)
        if "owner" in values:
            require_assignable(actor, values["owner"])
        if values.get("parent") is not None:
            require_visible(actor, values["parent"], "parent")
            if values["parent"].pk == acc.pk:
                raise InvalidInput("An account cannot be its own parent.", fields={"parent": "Not itself."})
        changed = diff(acc, values)
        if domains is not None:
            domain_change = _set_domains(acc, domains)
            if domain_change:
                changed["domains"] = domain_change
        if not changed:
            return acc
        for name, (_, new) in changed.items():
            if name != "domains":
                setattr(acc, name, new)
        acc.version += 1
        acc.updated_at = at
        acc.save()
        AccountChange.objects.bulk_create(
            history_rows(AccountChange, "account", acc, changed, actor, via, at)
        )
        hooks.emit(
            hooks.WriteEvent(
                "account", "update", [acc.pk], frozenset(changed), getattr(actor, "pk", None), via, at
            )
        )
    return acc


def delete_account(
    actor,
    account: Account | int,
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
) -> None:
    pk = account.pk if isinstance(account, Account) else account
    at = timezone.now()
    with transaction.atomic():
        try:
            acc = Account.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Account.DoesNotExist:
            raise NotFound("That account does not exist or was deleted.") from None
        require_change(actor, acc)
        check_version(acc, expected_version, require=require_version)
        if acc.opportunities.filter(deleted_at__isnull=True).exists():
            raise InvalidInput("This account still has opportunities: move or delete them first.")
        acc.deleted_at = at
        acc.version += 1
        acc.save(update_fields=["deleted_at", "version"])
        AccountChange.objects.create(
            account=acc,
            field="deleted",
            new_value=at.isoformat(),
            changed_at=at,
            via=via,
            changed_by=actor if getattr(actor, "pk", None) else None,
        )
        hooks.emit(
            hooks.WriteEvent(
                "account", "delete", [acc.pk], frozenset({"deleted"}), getattr(actor, "pk", None), via, at
            )
        )


def _validate_contact(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for name, limit in (("first_name", 100), ("last_name", 100), ("title", 120), ("phone", 50)):
        if name in out:
            out[name] = (out[name] or "").strip()
            if len(out[name]) > limit:
                raise InvalidInput(
                    f"{name.replace('_', ' ').capitalize()}: at most {limit} characters.",
                    fields={name: f"At most {limit} characters."},
                )
    return out


def _set_emails(contact: Contact, emails: list[str]) -> None:
    wanted = list(dict.fromkeys(normalise_email(e) for e in emails if e and e.strip()))
    taken = (
        ContactEmail.objects.filter(email__in=wanted)
        .exclude(contact=contact)
        .select_related("contact")
        .first()
    )
    if taken:
        raise InvalidInput(
            f"{taken.email} is already the address of “{taken.contact}”.",
            fields={"emails": f"{taken.email} belongs to another contact."},
        )
    contact.emails.exclude(email__in=wanted).delete()
    current = set(contact.emails.values_list("email", flat=True))
    ContactEmail.objects.bulk_create(
        ContactEmail(contact=contact, email=e) for e in wanted if e not in current
    )


Phones = Iterable[tuple[str, str]]


def _clean_phones(phones: Phones) -> list[tuple[str, str]]:
    """[(number, kind)] stripped, blank numbers dropped, a number listed twice kept once (first wins)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, kind in phones:
        number = (number or "").strip()
        kind = (kind or PhoneKind.OTHER).strip().lower()
        if not number or number in seen:
            continue
        if len(number) > 50:
            raise InvalidInput("Phone: at most 50 characters.", fields={"phones": "At most 50 characters."})
        if kind not in PhoneKind.values:
            raise InvalidInput(
                f"{kind!r} is not a kind of phone: use one of {', '.join(PhoneKind.values)}.",
                fields={"phones": f"Unknown kind {kind!r}."},
            )
        seen.add(number)
        out.append((number, kind))
    return out


def _phones_with_primary(values: dict[str, Any], phones: Phones | None, current: list[tuple[str, str]]):
    """The phone list to store, and `values["phone"]` set to its first number (the primary).

    `phones` given: it is the new list, and a `phone` given alongside must be its first number.
    Only `phone` given (the CSV import, the API, the form): it replaces the primary number,
    keeping the primary's kind; a blank `phone` removes the primary and the next number moves up.
    Neither: the list stays as it is.
    """
    if phones is not None:
        wanted = _clean_phones(phones)
        first = wanted[0][0] if wanted else ""
        if values.get("phone") and values["phone"] != first:
            raise InvalidInput(
                "The phone must be the first of the phone numbers.", fields={"phone": "Not the first number."}
            )
    elif "phone" in values:
        number = values["phone"]
        if current and current[0][0] == number:
            wanted = current
        elif not number:
            wanted = current[1:]
        else:
            kind = current[0][1] if current else PhoneKind.OTHER
            wanted = [(number, kind), *(row for row in current[1:] if row[0] != number)]
    else:
        return current
    values["phone"] = wanted[0][0] if wanted else ""
    return wanted


def _set_phones(contact: Contact, wanted: list[tuple[str, str]], current: list[tuple[str, str]]) -> bool:
    if wanted == current:
        return False
    if current:
        contact.phones.all().delete()
    ContactPhone.objects.bulk_create(
        ContactPhone(contact=contact, number=number, kind=kind, position=position)
        for position, (number, kind) in enumerate(wanted)
    )
    return True


def create_contact(
    actor,
    *,
    via: str,
    emails: list[str] | None = None,
    phones: Phones | None = None,
    at: datetime | None = None,
    **fields: Any,
) -> Contact:
    """A new contact. `phones` is [(number, kind), ...] in order of preference (kind: PhoneKind);
    without it a `phone` field becomes the only number, of kind "other"."""
    require_create(actor)
    unknown = set(fields) - set(CONTACT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    values = _validate_contact(fields)
    wanted_phones = _phones_with_primary(values, phones, [])
    if not (values.get("first_name") or values.get("last_name") or emails):
        raise InvalidInput("A contact needs a name or an e-mail address.", fields={"last_name": "Required."})
    values.setdefault("owner", actor)
    require_assignable(actor, values.get("owner"))
    require_visible(actor, values.get("account"), "account")
    at = at or timezone.now()
    with transaction.atomic():
        contact = Contact.objects.create(**values, created_at=at, updated_at=at)
        if emails:
            _set_emails(contact, emails)
        written = set(values)
        if _set_phones(contact, wanted_phones, []):
            written.add("phones")
        hooks.emit(
            hooks.WriteEvent(
                "contact", "create", [contact.pk], frozenset(written), getattr(actor, "pk", None), via, at
            )
        )
    return contact


def update_contact(
    actor,
    contact: Contact | int,
    changes: dict[str, Any],
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
) -> Contact:
    """Change a contact. `changes` may hold "emails" (the full new list) and "phones" (the full
    new [(number, kind), ...] list; `phone` follows its first number)."""
    changes = dict(changes)
    emails = changes.pop("emails", None) if "emails" in changes else None
    phones = changes.pop("phones", None)
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown or read-only field(s): {', '.join(sorted(unknown))}.")
    values = _validate_contact(changes)
    at = timezone.now()
    pk = contact.pk if isinstance(contact, Contact) else contact
    with transaction.atomic():
        try:
            obj = Contact.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Contact.DoesNotExist:
            raise NotFound("That contact does not exist or was deleted.") from None
        require_change(actor, obj)
        check_version(obj, expected_version, require=require_version)
        if "owner" in values:
            require_assignable(actor, values["owner"])
        if "account" in values:
            require_visible(actor, values["account"], "account")
        current_phones: list[tuple[str, str]] = []
        if phones is not None or "phone" in values:
            current_phones = list(obj.phones.values_list("number", "kind"))
        wanted_phones = _phones_with_primary(values, phones, current_phones)
        changed = diff(obj, values)
        if emails is not None:
            _set_emails(obj, emails)
        changed_fields = set(changed)
        if _set_phones(obj, wanted_phones, current_phones):
            changed_fields.add("phones")
        for name, (_, new) in changed.items():
            setattr(obj, name, new)
        obj.version += 1
        obj.updated_at = at
        obj.save()
        hooks.emit(
            hooks.WriteEvent(
                "contact", "update", [obj.pk], frozenset(changed_fields), getattr(actor, "pk", None), via, at
            )
        )
    return obj


def delete_contact(
    actor,
    contact: Contact | int,
    *,
    via: str,
    expected_version: int | None = None,
    require_version: bool = False,
) -> None:
    pk = contact.pk if isinstance(contact, Contact) else contact
    with transaction.atomic():
        try:
            obj = Contact.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Contact.DoesNotExist:
            raise NotFound("That contact does not exist or was deleted.") from None
        require_change(actor, obj)
        check_version(obj, expected_version, require=require_version)
        obj.deleted_at = timezone.now()
        obj.version += 1
        # Free the addresses so a re-created contact can use them; they stay in history via capture.
        obj.emails.all().delete()
        obj.save(update_fields=["deleted_at", "version"])
        hooks.emit(
            hooks.WriteEvent(
                "contact",
                "delete",
                [obj.pk],
                frozenset({"deleted"}),
                getattr(actor, "pk", None),
                via,
                obj.deleted_at,
            )
        )


def link_external_ids(kind: str, links: Iterable[tuple[str, str, int]]) -> None:
    """Record (system, value, object_id) ids from another system so a re-import finds the rows.

    Shared by every importing service (accounts, contacts, opportunities, activities, people).
    """
    from truepipe.core.models import ExternalId
    from truepipe.pipeline.services import insert_rows

    rows = [{"kind": kind, "system": system, "value": value, "object_id": pk} for system, value, pk in links]
    insert_rows(ExternalId, rows, returning=False)


def external_id_map(kind: str, systems: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
    """{(system, value): object_id} for every external id of `kind`, for lookups without per-row queries."""
    from truepipe.core.models import ExternalId

    qs = ExternalId.objects.filter(kind=kind)
    if systems is not None:
        qs = qs.filter(system__in=list(systems))
    return {(system, value): pk for system, value, pk in qs.values_list("system", "value", "object_id")}
