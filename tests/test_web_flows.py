"""The web flows that must never skip a rule: board drags, bulk edits, stale edits, logging touches."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.activities.models import Activity
from truepipe.core.models import Via
from truepipe.hygiene.services import snooze_opportunity
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity, OpportunityChange

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def bare_deal(org):
    """Ravi's early deal: an account, but no amount and no close date yet."""
    return pipeline_services.create_opportunity(
        org.ravi, name="Acme pilot", account=org.acme, stage=stage("Qualification"), via=Via.FORM
    )


def drop(client, deal, stage_name, **fields):
    data = {"opportunity": deal.pk, "stage": stage(stage_name).pk, "version": deal.version, **fields}
    return client.post(reverse("board-move"), data, **HTMX)


def test_a_board_drop_onto_a_stage_with_missing_fields_asks_for_exactly_those_and_saves_nothing(
    org, bare_deal
):
    response = drop(login(org.ravi), bare_deal, "Proposal")

    html = response.content.decode()
    assert response["HX-Retarget"] == "#modal"
    assert 'name="amount"' in html
    assert 'name="close_date"' in html
    assert 'name="next_step"' not in html  # Proposal does not require it
    assert 'name="account"' not in html  # the deal has one already
    bare_deal.refresh_from_db()
    assert bare_deal.stage.name == "Qualification"
    assert bare_deal.version == 1


def test_a_board_drop_with_the_asked_fields_moves_the_card_and_records_history_via_the_board(org, bare_deal):
    close = (timezone.localdate() + dt.timedelta(days=45)).isoformat()
    response = drop(
        login(org.ravi), bare_deal, "Proposal", asked="amount,close_date", amount="25000", close_date=close
    )

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#board"
    assert "moved to Proposal" in response.content.decode()
    bare_deal.refresh_from_db()
    assert bare_deal.stage.name == "Proposal"
    assert bare_deal.amount == Decimal("25000")
    vias = set(OpportunityChange.objects.filter(opportunity=bare_deal).values_list("field", "via"))
    assert {("stage", Via.BOARD), ("amount", Via.BOARD), ("close_date", Via.BOARD)} <= vias


def test_the_asked_for_fields_cannot_be_left_empty(org, bare_deal):
    response = drop(
        login(org.ravi), bare_deal, "Proposal", asked="amount,close_date", amount="", close_date=""
    )

    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    bare_deal.refresh_from_db()
    assert bare_deal.stage.name == "Qualification"


def test_a_board_drop_with_a_stale_version_is_refused_with_a_clear_message(org):
    client = login(org.ravi)
    stale_version = org.ravi_open.version
    pipeline_services.update_opportunity(org.maya, org.ravi_open, {"next_step": "Send terms"}, via=Via.FORM)

    response = client.post(
        reverse("board-move"),
        {"opportunity": org.ravi_open.pk, "stage": stage("Negotiation").pk, "version": stale_version},
        **HTMX,
    )

    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.stage.name == "Proposal"


def test_the_board_shows_count_and_total_amount_per_column(org):
    html = login(org.maya).get(reverse("board")).content.decode()
    assert "USD 48,000" in html or "48,000" in html


def test_bad_board_input_gets_a_message_not_a_server_error(org):
    client = login(org.ravi)
    assert client.post(reverse("board-move"), {"opportunity": "x", "stage": "y"}, **HTMX).status_code == 400
    assert client.post(reverse("board-move"), {"opportunity": 999999, "stage": 1}, **HTMX).status_code == 404


def test_bulk_mark_lost_without_a_reason_is_refused_and_changes_nothing(org):
    client = login(org.ravi)
    response = client.post(
        reverse("pipeline-bulk"), {"action": "mark_lost", "ids": [org.ravi_open.pk]}, follow=True
    )

    assert "Say why these deals were lost" in response.content.decode()
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.stage.name == "Proposal"


def test_bulk_mark_lost_with_a_reason_closes_every_selected_deal_via_bulk(org, bare_deal):
    client = login(org.ravi)
    response = client.post(
        reverse("pipeline-bulk"),
        {"action": "mark_lost", "ids": [org.ravi_open.pk, bare_deal.pk], "lost_reason": "Went with a rival"},
        follow=True,
    )

    assert "2 deals marked lost" in response.content.decode()
    for deal in (org.ravi_open, bare_deal):
        deal.refresh_from_db()
        assert (deal.stage.name, deal.lost_reason) == ("Lost", "Went with a rival")
        assert deal.changes.filter(field="stage", via=Via.BULK).exists()


def test_bulk_move_is_all_or_nothing_when_one_deal_lacks_a_required_field(org, bare_deal):
    client = login(org.ravi)
    response = client.post(
        reverse("pipeline-bulk"),
        {"action": "move_stage", "ids": [org.ravi_open.pk, bare_deal.pk], "stage": stage("Negotiation").pk},
        follow=True,
    )

    assert "Nothing was changed" in response.content.decode()
    assert Opportunity.objects.filter(stage__name="Negotiation").count() == 0


def test_a_manager_can_hand_deals_to_another_rep_in_bulk(org):
    client = login(org.maya)
    client.post(
        reverse("pipeline-bulk"), {"action": "change_owner", "ids": [org.ravi_open.pk], "owner": org.rita.pk}
    )
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.owner == org.rita


def edit_data(deal, **changes):
    data = {
        "version": deal.version,
        "name": deal.name,
        "account": deal.account_id,
        "owner": deal.owner_id,
        "stage": deal.stage_id,
        "amount": deal.amount,
        "currency": deal.currency,
        "close_date": deal.close_date.isoformat(),
        "forecast_category": deal.forecast_category,
    }
    data.update(changes)
    return data


def test_a_stale_edit_is_refused_and_does_not_overwrite_the_other_change(org):
    url = reverse("opportunity", args=[org.ravi_open.pk])
    ravi, maya = login(org.ravi), login(org.maya)
    ravis_form = edit_data(org.ravi_open, amount="50000")
    mayas_form = edit_data(org.ravi_open, amount="60000")

    assert maya.post(url, mayas_form).status_code == 302
    response = ravi.post(url, ravis_form)

    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("60000")


def test_an_edit_without_a_version_is_refused(org):
    url = reverse("opportunity", args=[org.ravi_open.pk])
    response = login(org.ravi).post(url, edit_data(org.ravi_open, version="", amount="1"))
    assert response.status_code == 428
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("48000")


def test_an_edit_that_clears_a_field_the_stage_requires_shows_the_field_error(org):
    url = reverse("opportunity", args=[org.ravi_open.pk])
    response = login(org.ravi).post(url, edit_data(org.ravi_open, amount=""))
    assert response.status_code == 400
    assert "Required to enter Proposal" in response.content.decode()


def test_the_opportunity_page_shows_logging_lag_and_history_with_names_not_ids(org):
    nine_days_ago = timezone.now() - dt.timedelta(days=9)
    activity_services.log_activity(
        org.ravi,
        kind="meeting",
        subject="Site visit",
        occurred_at=nine_days_ago,
        opportunity=org.ravi_open,
        via=Via.FORM,
    )
    activity_services.log_activity(
        org.ravi, kind="call", subject="Quick call", opportunity=org.ravi_open, via=Via.FORM
    )
    pipeline_services.update_opportunity(
        org.maya,
        org.ravi_open,
        {"stage": stage("Negotiation"), "next_step": "Legal", "owner": org.rita},
        via=Via.FORM,
    )

    html = login(org.maya).get(reverse("opportunity", args=[org.ravi_open.pk])).content.decode()

    assert "logged 9 days later" in html
    assert html.count("days later") == 1  # the quick call was logged as it happened
    assert "Proposal" in html and "Negotiation" in html
    assert "Rita Reyes" in html and "Maya Moss" in html
    assert f">{stage('Proposal').pk}<" not in html


def add_history(org, times: int) -> None:
    for n in range(times):
        changes = {"stage": stage("Negotiation" if n % 2 == 0 else "Proposal"), "next_step": f"Step {n}"}
        pipeline_services.update_opportunity(org.ravi, org.ravi_open, changes, via=Via.FORM)
        activity_services.log_activity(
            org.ravi, kind="call", subject=f"Call {n}", opportunity=org.ravi_open, via=Via.FORM
        )


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_opportunity_page_costs_the_same_queries_with_more_history(org):
    client = login(org.ravi)
    url = reverse("opportunity", args=[org.ravi_open.pk])
    add_history(org, 1)
    client.get(url)
    few = queries_for(client, url)
    add_history(org, 20)
    assert queries_for(client, url) == few


def test_logging_a_touch_inline_returns_the_refreshed_timeline(org):
    contact = account_services.create_contact(org.ravi, first_name="Carla", account=org.acme, via=Via.FORM)
    url = reverse("log") + f"?opportunity={org.ravi_open.pk}&inline=1"
    response = login(org.ravi).post(
        url,
        {
            "kind": "call",
            "opportunity": org.ravi_open.pk,
            "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            "subject": "Talked pricing",
            "participants": [contact.pk],
        },
        **HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Talked pricing" in html
    activity = Activity.objects.get(subject="Talked pricing")
    assert list(activity.participants.all()) == [contact]
    assert activity.opportunity == org.ravi_open


def test_a_touch_in_the_future_is_refused_with_the_services_message(org):
    tomorrow = (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = login(org.ravi).post(
        reverse("log"), {"kind": "call", "occurred_at": tomorrow, "subject": "Later"}
    )
    assert response.status_code == 400
    assert "cannot have happened in the future" in response.content.decode()


def test_the_log_form_offers_only_open_deals_the_user_can_see(org):
    html = login(org.ravi).get(reverse("log")).content.decode()
    assert "Acme renewal" in html
    assert "Acme expansion" not in html  # won
    assert "Globex pilot" not in html  # another team's


def test_a_new_account_with_a_taken_domain_shows_the_services_message(org):
    response = login(org.ravi).post(
        reverse("account-new"), {"name": "Acme again", "domains": "acme.example", "owner": org.ravi.pk}
    )
    assert response.status_code == 400
    assert "already belongs to account" in response.content.decode()


def test_a_rep_cannot_give_a_new_deal_to_someone_else(org):
    response = login(org.ravi).post(
        reverse("opportunity-new"),
        {"name": "Sneaky", "owner": org.owen.pk, "stage": stage("Prospecting").pk, "currency": "USD"},
    )
    assert response.status_code == 400
    assert not Opportunity.objects.filter(name="Sneaky").exists()


def test_htmx_requests_get_the_fragment_and_browsers_the_full_page(org):
    client = login(org.ravi)
    for url in (reverse("pipeline"), reverse("accounts"), reverse("contacts"), reverse("search") + "?q=acme"):
        full = client.get(url).content.decode()
        fragment = client.get(url, **HTMX).content.decode()
        assert "<html" in full and 'id="results"' in full
        assert "<html" not in fragment and 'id="results"' in fragment


def test_the_pipeline_sorts_and_ignores_unknown_sort_keys(org, bare_deal):
    client = login(org.ravi)
    by_amount = client.get(reverse("pipeline"), {"sort": "-amount"}).content.decode()
    assert by_amount.index("Acme renewal") < by_amount.index("Acme pilot")
    by_name = client.get(reverse("pipeline"), {"sort": "name"}).content.decode()
    assert by_name.index("Acme pilot") < by_name.index("Acme renewal")
    assert client.get(reverse("pipeline"), {"sort": "password"}).status_code == 200


def test_bad_filter_values_are_ignored_with_a_message(org):
    response = login(org.ravi).get(reverse("pipeline"), {"close_from": "yesterday-ish", "page": "lots"})
    assert response.status_code == 200
    assert "Some filters were ignored" in response.content.decode()


def test_the_csv_export_holds_only_the_deals_the_user_may_see(org):
    response = login(org.ravi).get(reverse("pipeline-export"))
    body = b"".join(response.streaming_content).decode()
    assert {"external_id", "name", "account", "owner", "stage"} <= set(body.splitlines()[0].split(","))
    assert "Acme renewal" in body
    assert "Globex pilot" not in body


def test_an_unknown_export_kind_is_a_plain_404(org):
    assert login(org.ravi).get(reverse("export", args=["passwords"])).status_code == 404


def test_an_edit_sends_only_what_changed_so_a_new_stage_brings_its_own_forecast_category(org):
    url = reverse("opportunity", args=[org.ravi_open.pk])
    form = edit_data(org.ravi_open, stage=stage("Negotiation").pk, next_step="Legal review")

    assert login(org.ravi).post(url, form).status_code == 302

    org.ravi_open.refresh_from_db()
    assert (org.ravi_open.stage.name, org.ravi_open.forecast_category) == ("Negotiation", "commit")
    changed = set(org.ravi_open.changes.values_list("field", flat=True))
    assert changed == {"stage", "next_step", "probability", "forecast_category"}


def test_deals_closed_long_ago_leave_the_board(org):
    old_win = pipeline_services.create_opportunity(
        org.ravi, name="Ancient win", account=org.acme, stage=stage("Negotiation"), amount=Decimal("5"),
        close_date=timezone.localdate(), next_step="Sign", via=Via.FORM,
    )  # fmt: skip
    pipeline_services.update_opportunity(
        org.ravi, old_win, {"stage": stage("Won")}, via=Via.FORM, at=timezone.now() - dt.timedelta(days=120)
    )
    html = login(org.ravi).get(reverse("board")).content.decode()
    assert "Acme expansion" in html  # won today
    assert "Ancient win" not in html


def test_editing_an_account_records_history_shown_on_its_page(org):
    client = login(org.ravi)
    url = reverse("account-edit", args=[org.acme.pk])
    form = {
        "version": org.acme.version,
        "name": "Acme Inc",
        "domains": "acme.example, acme.test",
        "owner": org.ravi.pk,
    }

    assert client.post(url, form).status_code == 302

    html = client.get(reverse("account", args=[org.acme.pk])).content.decode()
    assert "Acme Corp" in html and "Acme Inc" in html
    assert "acme.test" in html


def test_a_stale_account_edit_is_refused(org):
    url = reverse("account-edit", args=[org.acme.pk])
    form = {"version": org.acme.version, "name": "Acme Inc", "domains": "acme.example", "owner": org.ravi.pk}
    account_services.update_account(org.maya, org.acme, {"industry": "Rockets"}, via=Via.FORM)

    response = login(org.ravi).post(url, form)

    assert response.status_code == 409
    org.acme.refresh_from_db()
    assert org.acme.name == "Acme Corp"


def test_editing_a_contact_changes_its_addresses(org):
    carla = account_services.create_contact(
        org.ravi, first_name="Carla", account=org.acme, emails=["carla@acme.example"], via=Via.FORM
    )
    url = reverse("contact-edit", args=[carla.pk])
    form = {"version": carla.version, "first_name": "Carla", "last_name": "Cruz", "emails": "cc@acme.example",
            "account": org.acme.pk, "owner": org.ravi.pk}  # fmt: skip

    assert login(org.ravi).post(url, form).status_code == 302

    carla.refresh_from_db()
    assert (carla.full_name, carla.primary_email) == ("Carla Cruz", "cc@acme.example")


def test_a_bulk_action_returns_to_the_same_filtered_list(org):
    response = login(org.ravi).post(
        reverse("pipeline-bulk"),
        {
            "action": "mark_lost",
            "ids": [org.ravi_open.pk],
            "lost_reason": "No budget",
            "next": "status=all&q=acme",
        },
    )
    assert response["Location"] == reverse("pipeline") + "?status=all&q=acme"


def test_delivery_lands_on_the_won_deals(org):
    html = login(org.dana).get(reverse("pipeline")).content.decode()
    assert "Acme expansion" in html


def test_the_opportunity_page_says_what_the_discipline_engine_holds_against_the_deal(org):
    deal_url = reverse("opportunity", args=[org.ravi_open.pk])
    assert "Close date in the past" not in login(org.ravi).get(deal_url).content.decode()

    last_month = timezone.localdate() - dt.timedelta(days=30)
    pipeline_services.update_opportunity(org.ravi, org.ravi_open, {"close_date": last_month}, via=Via.FORM)
    snooze_opportunity(org.ravi, org.ravi_open, timezone.localdate() + dt.timedelta(days=7), "Buyer on leave")

    html = login(org.maya).get(deal_url).content.decode()
    assert "Needs attention" in html
    assert "Close date in the past" in html
    assert "Buyer on leave" in html and "Ravi" in html
