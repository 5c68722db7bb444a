"""Deals never logged, for the engine's generated organisation (tests/test_hygiene_engine.py):
captured touches and finance's contracts full of awkward values, and the Python rendering of the
unlogged_deal and unlogged_win findings that the SQL presentation must reproduce exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.capture_helpers import message
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CaptureSource, ExcludedDomain
from truepipe.capture.sources import from_bytes
from truepipe.contracts.models import Contract
from truepipe.hygiene.rules.base import Finding, as_date, as_decimal, iso

KEYS = ("unlogged_deal", "unlogged_win")
SUBJECTS = [
    "Zürich “pilot”",
    "O'Brien & Sons – phase 2",
    'Back\\slash and "quotes"',
    "Été; 100% > plan",
    "N" * 240,
]


def generate(org, moment: dt.datetime) -> None:
    """Rita mails four outside companies in the three weeks before the moment: a new one, Acme
    (no deal there yet as of the moment), her golf club (excluded) and a gmail friend (public
    mail); finance reports two contracts no won deal matches."""
    sender = f"Rita Reyes <{org.rita.username}@truepipe.test>"
    plan = [("cto@newco.example", 6), ("bea@acme.example", 5), ("pat@club.example", 5), ("pal@gmail.com", 5)]
    for to, count in plan:
        items = [
            from_bytes(
                message(
                    sender,
                    to,
                    SUBJECTS[n % len(SUBJECTS)],
                    when=(moment - dt.timedelta(days=18 - 3 * n, minutes=7 * n)).replace(
                        microsecond=(n * 137_001) % 10**6
                    ),
                ).as_bytes(),
                source=CaptureSource.FILE,
                origin=f"{to} {n}",
                owner_id=org.rita.pk,
            )
            for n in range(count)
        ]
        Ingest(None, now=moment - dt.timedelta(hours=1)).run(items)
    ExcludedDomain.objects.create(user=org.rita, domain="club.example")
    imported = moment - dt.timedelta(days=2)
    Contract.objects.create(
        customer="O'Brien & Sons “Zürich”",
        account=org.acme,
        amount=Decimal("1234567.89"),
        currency="EUR",
        signed_on=moment.date() - dt.timedelta(days=10),
        reference="R-1",
        imported_at=imported,
        rep=org.ravi,
        rep_basis="account owner",
    )
    Contract.objects.create(
        customer="newco.example",
        amount=Decimal("250000.50"),
        signed_on=moment.date() - dt.timedelta(days=4),
        imported_at=imported,
        rep=org.rita,
        rep_basis="most touches (6 in 90 days)",
    )


def reference(rule: Any, ctx: Any, row: dict, as_datetime: Callable[[Any], Any]) -> Finding:
    params = rule.params
    if rule.key == "unlogged_deal":
        account = f" ({row['account_name']})" if row["account_name"] is not None else ""
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            summary=(
                f"{row['touches']} customer touches with {row['domain']}{account}"
                f" in {int(params['window_days'])} days and no deal in truepipe"
            ),
            evidence={
                "domain": row["domain"],
                "touches": row["touches"],
                "first_touch": iso(as_datetime(row["first_touch"])),
                "last_touch": iso(as_datetime(row["last_touch"])),
                "account_id": row["account_id"],
                "account": row["account_name"],
                "subjects": [s for s in (row["s1"], row["s2"], row["s3"]) if s is not None],
                "window_days": params["window_days"],
                "limit_touches": params["touches"],
                "as_of": iso(ctx.as_of),
            },
        )
    amount = as_decimal(row["amount"])
    assert amount is not None
    signed = as_date(row["signed_on"])
    assert signed is not None
    return Finding(
        key=row["key"],
        rep_id=row["rep_id"],
        amount=amount,
        summary=(
            f"Unlogged win: {row['customer']} signed {amount:,.0f} {row['currency']} on "
            f"{signed.isoformat()}, and no won deal matches it"
        ),
        evidence={
            "contract_id": row["contract_id"],
            "customer": row["customer"],
            "account_id": row["account_id"],
            "account": row["account_name"],
            "amount": f"{amount:.2f}",
            "currency": row["currency"],
            "signed_on": signed.isoformat(),
            "reference": row["reference"],
            "accountable": row["rep_basis"],
            "match_days": params["match_days"],
            "match_percent": params["match_percent"],
            "as_of": iso(ctx.as_of),
        },
    )
