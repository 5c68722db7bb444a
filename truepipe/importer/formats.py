"""Which CSV column means which truepipe field: canonical names and other CRMs' export headers.

A header is matched after normalising (lower case, runs of spaces and underscores collapsed), so
"Close Date", "close_date" and "CLOSE  DATE" are the same column. Pipedrive prefixes every
column with its entity ("Deal - Title"); the prefix is stripped before the lookup.
"""

from __future__ import annotations

import re

KINDS = ("opportunities", "accounts", "contacts", "activities", "users", "products")

# The fields each kind accepts: what --map targets and what export writes (export's order).
FIELDS: dict[str, tuple[str, ...]] = {
    "opportunities": (
        "external_system",
        "external_id",
        "name",
        "account",
        "owner",
        "stage",
        "amount",
        "currency",
        "close_date",
        "created_at",
        "next_step",
        "next_step_date",
        "lost_reason",
        "probability",
        "source",
        "competitor",
        "product",
    ),
    "accounts": (
        "external_system",
        "external_id",
        "name",
        "domain",
        "industry",
        "employees",
        "parent",
        "owner",
    ),
    "contacts": (
        "external_system",
        "external_id",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "phone",
        "title",
        "account",
        "owner",
    ),
    "activities": (
        "external_system",
        "external_id",
        "kind",
        "occurred_at",
        "logged_at",
        "subject",
        "body",
        "owner",
        "opportunity",
        "account",
        "participants",
    ),
    "users": (
        "external_system",
        "external_id",
        "username",
        "email",
        "full_name",
        "first_name",
        "last_name",
        "role",
        "manager",
        "team",
        "title",
    ),
    "products": ("name", "code", "family", "list_price", "currency"),
}

# Export writes these (full_name is derived from first/last name, so it is not written twice).
EXPORT_FIELDS: dict[str, tuple[str, ...]] = {
    **FIELDS,
    "contacts": tuple(f for f in FIELDS["contacts"] if f != "full_name"),
    "users": tuple(f for f in FIELDS["users"] if f not in ("first_name", "last_name")),
}

# Headers any file may use, whatever system produced it.
GENERIC: dict[str, dict[str, str]] = {
    "opportunities": {
        "id": "external_id",
        "deal name": "name",
        "opportunity": "name",
        "account name": "account",
        "company": "account",
        "organization": "account",
        "owner": "owner",
        "deal owner": "owner",
        "value": "amount",
        "expected close date": "close_date",
        "created": "created_at",
        "create date": "created_at",
        "created date": "created_at",
        "lost reason": "lost_reason",
        "next step date": "next_step_date",
        "probability (%)": "probability",
        "lead source": "source",
    },
    "accounts": {
        "id": "external_id",
        "account name": "name",
        "company name": "name",
        "organization name": "name",
        "website": "domain",
        "company domain name": "domain",
        "number of employees": "employees",
        "parent account": "parent",
        "parent company": "parent",
        "account owner": "owner",
    },
    "contacts": {
        "id": "external_id",
        "name": "full_name",
        "email address": "email",
        "phone number": "phone",
        "job title": "title",
        "account name": "account",
        "company": "account",
        "organization": "account",
        "contact owner": "owner",
    },
    "activities": {
        "id": "external_id",
        "type": "kind",
        "activity type": "kind",
        "date": "occurred_at",
        "activity date": "occurred_at",
        "notes": "body",
        "description": "body",
        "assigned to": "owner",
        "deal": "opportunity",
        "deal name": "opportunity",
        "related to": "opportunity",
        "company": "account",
        "organization": "account",
        "attendees": "participants",
    },
    "users": {
        "id": "external_id",
        "name": "full_name",
        "email address": "email",
        "reports to": "manager",
        "user name": "username",
        "login": "username",
    },
    "products": {
        "id": "external_id",
        "product": "name",
        "product name": "name",
        "product code": "code",
        "product family": "family",
        "price": "list_price",
        "unit price": "list_price",
        "list price": "list_price",
        "sales price": "list_price",
    },
}

# Headers that identify an export from a known CRM (and name the external-id system).
FORMATS: dict[str, dict[str, dict[str, str]]] = {
    "salesforce": {
        "opportunities": {
            "opportunity id": "external_id",
            "opportunity name": "name",
            "account name": "account",
            "stage": "stage",
            "amount": "amount",
            "amount currency": "currency",
            "opportunity currency": "currency",
            "close date": "close_date",
            "opportunity owner": "owner",
            "created date": "created_at",
            "next step": "next_step",
            "probability (%)": "probability",
            "lead source": "source",
            "loss reason": "lost_reason",
            "product name": "product",
            # Data Loader / API names.
            "stagename": "stage",
            "closedate": "close_date",
            "ownerid": "owner",
            "createddate": "created_at",
            "nextstep": "next_step",
            "leadsource": "source",
            "currencyisocode": "currency",
        },
        "accounts": {
            "account id": "external_id",
            "account name": "name",
            "website": "domain",
            "industry": "industry",
            "employees": "employees",
            "parent account": "parent",
            "account owner": "owner",
        },
        "contacts": {
            "contact id": "external_id",
            "first name": "first_name",
            "last name": "last_name",
            "email": "email",
            "phone": "phone",
            "title": "title",
            "account name": "account",
            "contact owner": "owner",
        },
        "activities": {
            "activity id": "external_id",
            "task/event": "kind",
            "subject": "subject",
            "date": "occurred_at",
            "comments": "body",
            "assigned": "owner",
            "opportunity": "opportunity",
            "account name": "account",
        },
        "users": {
            "user id": "external_id",
            "full name": "full_name",
            "username": "username",
            "email": "email",
            "role": "role",
            "manager": "manager",
            "title": "title",
        },
    },
    "hubspot": {
        "opportunities": {
            "record id": "external_id",
            "deal name": "name",
            "deal stage": "stage",
            "amount": "amount",
            "close date": "close_date",
            "deal owner": "owner",
            "associated company": "account",
            "create date": "created_at",
            "currency": "currency",
            "deal currency code": "currency",
            "next step": "next_step",
            "closed lost reason": "lost_reason",
            "deal probability": "probability",
        },
        "accounts": {
            "record id": "external_id",
            "company name": "name",
            "company domain name": "domain",
            "industry": "industry",
            "number of employees": "employees",
            "parent company": "parent",
            "company owner": "owner",
        },
        "contacts": {
            "record id": "external_id",
            "first name": "first_name",
            "last name": "last_name",
            "email": "email",
            "phone number": "phone",
            "job title": "title",
            "associated company": "account",
            "contact owner": "owner",
        },
        "activities": {
            "record id": "external_id",
            "activity type": "kind",
            "activity date": "occurred_at",
            "call title": "subject",
            "subject": "subject",
            "body": "body",
            "activity assigned to": "owner",
            "associated deal": "opportunity",
            "associated company": "account",
        },
        "users": {
            "user id": "external_id",
            "first name": "first_name",
            "last name": "last_name",
            "email": "email",
            "team": "team",
        },
    },
    # Pipedrive headers after the "Deal - " / "Organization - " / ... prefix is stripped.
    "pipedrive": {
        "opportunities": {
            "id": "external_id",
            "title": "name",
            "organization": "account",
            "value": "amount",
            "currency": "currency",
            "expected close date": "close_date",
            "owner": "owner",
            "stage": "stage",
            "deal created": "created_at",
            "lost reason": "lost_reason",
            "probability": "probability",
            "source": "source",
        },
        "accounts": {
            "id": "external_id",
            "name": "name",
            "owner": "owner",
            "website": "domain",
            "industry": "industry",
            "employee count": "employees",
        },
        "contacts": {
            "id": "external_id",
            "name": "full_name",
            "first name": "first_name",
            "last name": "last_name",
            "email": "email",
            "phone": "phone",
            "job title": "title",
            "organization": "account",
            "owner": "owner",
        },
        "activities": {
            "id": "external_id",
            "type": "kind",
            "subject": "subject",
            "due date": "occurred_at",
            "note": "body",
            "assigned to user": "owner",
            "deal": "opportunity",
            "organization": "account",
        },
        "users": {"id": "external_id", "name": "full_name", "email": "email"},
    },
}

_PIPEDRIVE_PREFIX = re.compile(r"^(deal|organization|person|activity|user|product)\s+-\s+(.+)$")


def normalise(header: str) -> str:
    return re.sub(r"[\s_]+", " ", header.strip().lower())


def _split_pipedrive(key: str) -> str | None:
    match = _PIPEDRIVE_PREFIX.match(key)
    return match.group(2) if match else None


def recognise(kind: str, headers: list[str]) -> str | None:
    """The CRM whose export these headers look like, or None for a plain CSV."""
    scores: dict[str, int] = {}
    for name, tables in FORMATS.items():
        table = tables.get(kind, {})
        score = 0
        for header in headers:
            key = normalise(header)
            stripped = _split_pipedrive(key) if name == "pipedrive" else None
            if stripped is not None and stripped in table:
                score += 2
            elif key in table and key.replace(" ", "_") not in FIELDS[kind]:
                score += 1
        scores[name] = score
    best = max(scores.values(), default=0)
    winners = [name for name, score in scores.items() if score == best]
    return winners[0] if best >= 2 and len(winners) == 1 else None


def field_for(kind: str, header: str, system_format: str | None) -> str | None:
    """The canonical field a header stands for, or None when it is not recognised."""
    key = normalise(header)
    canonical = key.replace(" ", "_")
    if canonical in FIELDS[kind]:
        return canonical
    stripped = _split_pipedrive(key)
    if stripped is not None:
        key = stripped
        if key.replace(" ", "_") in FIELDS[kind]:
            return key.replace(" ", "_")
    order = [system_format] if system_format else []
    order += [name for name in FORMATS if name != system_format]
    for name in order:
        found = FORMATS[name].get(kind, {}).get(key)
        if found:
            return found
    return GENERIC[kind].get(key)
