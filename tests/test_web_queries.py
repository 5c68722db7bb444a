"""Query budgets: a list page costs the same number of queries for 5 rows as for 500."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services

PAGES = {
    "pipeline": lambda: reverse("pipeline") + "?status=all",
    "pipeline sorted by owner": lambda: reverse("pipeline") + "?sort=-owner&q=zeta",
    "board": lambda: reverse("board"),
    "accounts": lambda: reverse("accounts"),
    "contacts": lambda: reverse("contacts"),
    "search": lambda: reverse("search") + "?q=zeta",
}


def grow(org, start: int, stop: int) -> None:
    """Rows numbered start..stop-1 for Ravi and Rita: an account, a contact, a deal and a call each."""
    close = timezone.localdate() + dt.timedelta(days=20)
    stages = [stage("Prospecting"), stage("Proposal"), stage("Won")]
    for n in range(start, stop):
        rep = org.ravi if n % 2 else org.rita
        account = account_services.create_account(
            rep, name=f"Zeta {n}", domains=[f"zeta{n}.example"], via=Via.IMPORT
        )
        contact = account_services.create_contact(
            rep, first_name="Zed", last_name=f"Zeta{n}", account=account, emails=[f"z{n}@zeta{n}.example"],
            via=Via.IMPORT,
        )  # fmt: skip
        deal = pipeline_services.create_opportunity(
            rep, name=f"Zeta deal {n}", account=account, stage=stages[n % 3], amount=Decimal(1000 + n),
            close_date=close, via=Via.IMPORT,
        )  # fmt: skip
        activity_services.log_activity(
            rep, kind="call", subject=f"Call {n}", opportunity=deal, participants=[contact], via=Via.IMPORT
        )


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_list_pages_cost_the_same_queries_for_5_and_500_rows(org):
    """For a manager (subtree), a rep (own rows) and an admin (everything)."""
    clients = {}
    for persona in ("maya", "ravi", "ada"):
        clients[persona] = Client()
        assert clients[persona].login(username=persona, password=PASSWORD)
    grow(org, 0, 5)
    for client in clients.values():
        for page in PAGES.values():
            client.get(page())  # warm what is cached once per process (content types and the like)
    few = {(who, name): queries_for(c, page()) for who, c in clients.items() for name, page in PAGES.items()}

    grow(org, 5, 500)
    many = {(who, name): queries_for(c, page()) for who, c in clients.items() for name, page in PAGES.items()}

    assert many == few
