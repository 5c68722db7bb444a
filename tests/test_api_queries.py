"""Query budgets: a list costs the same number of queries with 500 rows as with 5."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.test_api_support import Api
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.people.models import ApiToken, Role
from truepipe.people.services import create_person, create_token
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Stage

LISTS = [
    "opportunities",
    "accounts",
    "contacts",
    "activities",
    "products",
    "stages",
    "users",
    "tokens",
    "opportunities/{deal}/history",
    "accounts/{account}/history",
]


def grow(org, start: int, stop: int) -> None:
    """Rows number start..stop-1 of every kind, spread over two reps, accounts and contacts."""
    qualification = Stage.objects.get(name="Qualification")
    when = timezone.now() - dt.timedelta(days=1)
    for n in range(start, stop):
        rep = org.ravi if n % 2 else org.rita
        account = account_services.create_account(
            rep, name=f"Account {n}", domains=[f"a{n}.example"], via=Via.IMPORT
        )
        contact = account_services.create_contact(
            rep, last_name=f"Contact {n}", account=account, emails=[f"c{n}@a{n}.example"], via=Via.IMPORT
        )
        deal = pipeline_services.create_opportunity(
            rep, name=f"Deal {n}", account=account, stage=qualification, via=Via.IMPORT
        )
        activity_services.log_activity(
            rep,
            kind="call",
            subject=f"Call {n}",
            opportunity=deal,
            participants=[contact],
            occurred_at=when,
            via=Via.IMPORT,
        )
        pipeline_services.create_product(None, name=f"Product {n}", list_price=n)
        create_person(
            None, username=f"rep{n}", full_name=f"Rep {n}", role=Role.REP, manager=org.maya, team="East"
        )
        create_token(None, org.maya, name=f"token {n}")
        pipeline_services.update_opportunity(
            org.ravi, org.ravi_open, {"next_step": f"Step {n}"}, via=Via.IMPORT
        )
        account_services.update_account(org.ravi, org.acme, {"industry": f"Industry {n}"}, via=Via.IMPORT)


def query_counts(org, api: Api) -> dict[str, tuple[int, int, list[str]]]:
    counts = {}
    for template in LISTS:
        path = template.format(deal=org.ravi_open.pk, account=org.acme.pk)
        # The token's last-used stamp is written at most once a minute: make sure this call is not the one.
        ApiToken.objects.filter(user=org.maya).update(last_used_at=timezone.now())
        with CaptureQueriesContext(connection) as queries:
            response = api.get(path, limit=200)
        assert response.status_code == 200, response.content
        counts[template] = (len(queries), len(response.json()["items"]), [q["sql"][:300] for q in queries])
    return counts


def test_every_list_costs_the_same_number_of_queries_for_5_and_500_rows(org):
    api = Api(org.maya)
    grow(org, 0, 5)
    small = query_counts(org, api)
    grow(org, 5, 500)
    large = query_counts(org, api)

    for path in LISTS:
        (small_count, small_rows, small_sql), (large_count, large_rows, large_sql) = small[path], large[path]
        assert large_count == small_count, (path, small_sql, large_sql)
        # The lists really did grow (stages stay the configured pipeline).
        if path != "stages":
            assert large_rows > small_rows >= 5, (path, small_rows, large_rows)
        # And the budget itself stays small: auth, count, page, and one query per prefetched relation.
        assert large_count <= 6, (path, large_sql)
