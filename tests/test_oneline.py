"""One-line updates end to end: the service, the CLI, the API and the web page all write through
update_opportunity, so the field history says who changed what and through which door.

Ravi is the rainmaker (the rep who never logs); Maya is his manager; Owen is a rep in Omar's
team; Eli the exec reads everything and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from tests.test_api_support import api_as, assert_error
from truepipe.accounts import services as account_services
from truepipe.core.errors import ConcurrencyConflict, InvalidInput
from truepipe.core.models import Via
from truepipe.oneline import services
from truepipe.oneline.parse import LineNotUnderstood
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity, OpportunityChange

HTMX = {"HTTP_HX_REQUEST": "true"}


def in_days(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


def history(deal: Opportunity) -> set[tuple[str, str | None, str]]:
    return set(OpportunityChange.objects.filter(opportunity=deal).values_list("field", "new_value", "via"))


@pytest.fixture
def initech(org):
    """Two open Initech deals of Ravi's, so "initech" alone is ambiguous."""
    account = account_services.create_account(
        org.ravi, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    org.tps = pipeline_services.create_opportunity(
        org.ravi, name="Initech TPS rollout", account=account, stage=stage("Qualification"), via=Via.FORM
    )
    org.printers = pipeline_services.create_opportunity(
        org.ravi, name="Initech printers", account=account, stage=stage("Qualification"), via=Via.FORM
    )
    org.initech = account
    return org


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


# --- the service -----------------------------------------------------------------------------------


def test_an_amount_the_deal_cannot_hold_is_refused_in_the_preview_not_after_confirming(org):
    preview = services.preview(org.ravi, "acme renewal 99999999999999k")

    assert not preview.can_apply
    assert preview.problems == ["Amount: The amount is too large."]


def test_the_preview_shows_each_field_old_and_new_and_writes_nothing(org):
    preview = services.preview(org.ravi, "acme renewal 52k negotiation next: send SOW in 2 weeks")

    assert preview.deal == org.ravi_open
    assert preview.version == org.ravi_open.version
    assert preview.changes["amount"] == (Decimal("48000.00"), Decimal("52000"))
    assert preview.changes["stage"][0].name == "Proposal"
    assert preview.changes["stage"][1].name == "Negotiation"
    assert preview.changes["next_step"] == ("", "send SOW")
    assert preview.changes["next_step_date"] == (None, in_days(14))
    assert preview.can_apply
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.version == 1


def test_applying_writes_through_update_opportunity_with_history_via_oneline(org):
    applied = services.apply(
        org.ravi, "acme renewal 52k negotiation next: send SOW in 2 weeks", via="oneline"
    )

    deal = Opportunity.objects.get(pk=org.ravi_open.pk)
    assert (deal.amount, deal.stage.name, deal.next_step) == (Decimal("52000"), "Negotiation", "send SOW")
    assert deal.next_step_date == in_days(14)
    assert deal.version == 2
    assert deal.probability == stage("Negotiation").probability  # the stage's effects, as for a form
    assert {
        ("amount", "52000", "oneline"),
        ("stage", str(stage("Negotiation").pk), "oneline"),
        ("next_step", "send SOW", "oneline"),
    } <= history(deal)
    assert applied.message.startswith("Updated Acme renewal: stage Negotiation; amount USD 52,000")


def test_the_preview_says_which_fields_a_stage_still_needs(org):
    preview = services.preview(org.ravi, "acme renewal negotiation")

    assert not preview.can_apply
    assert preview.problems == [
        "To move to Negotiation, fill in: next step. Add a next step (next: send SOW friday) to the line."
    ]
    with pytest.raises(InvalidInput, match="fill in: next step"):
        services.apply(org.ravi, "acme renewal negotiation", via="oneline")


def test_lost_needs_a_reason_and_takes_it_after_the_colon(org):
    assert "fill in: lost reason" in services.preview(org.ravi, "acme renewal lost").message

    services.apply(org.ravi, "acme renewal lost: went with a rival", via="oneline")

    org.ravi_open.refresh_from_db()
    assert (org.ravi_open.stage.name, org.ravi_open.lost_reason) == ("Lost", "went with a rival")


def test_applying_refuses_while_a_question_is_open_and_writes_after_the_answer(initech):
    with pytest.raises(services.Unanswered) as refused:
        services.apply(initech.ravi, "initech 90k", via="oneline")
    assert refused.value.status == 409
    assert "Which deal is “initech”?" in refused.value.message

    services.apply(initech.ravi, "initech 90k", {"deal": str(initech.printers.pk)}, via="oneline")

    initech.printers.refresh_from_db()
    initech.tps.refresh_from_db()
    assert initech.printers.amount == Decimal("90000")
    assert initech.tps.amount is None


def test_applying_refuses_words_it_did_not_understand(org):
    with pytest.raises(InvalidInput, match="I did not understand: pronto"):
        services.apply(org.ravi, "acme renewal 52k pronto", via="oneline")
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("48000")


def test_a_deal_changed_since_the_preview_is_refused_not_overwritten(org):
    preview = services.preview(org.ravi, "acme renewal 52k")
    pipeline_services.update_opportunity(org.maya, org.ravi_open, {"amount": Decimal("60000")}, via=Via.FORM)

    with pytest.raises(ConcurrencyConflict, match="changed by someone else since your preview"):
        services.apply(org.ravi, preview, via="oneline")

    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("60000")


def test_a_rep_cannot_update_a_deal_they_cannot_see_it_is_simply_not_found(org):
    with pytest.raises(LineNotUnderstood, match="No deal you can change matches “globex pilot”"):
        services.apply(org.ravi, "globex pilot 99k", via="oneline")
    org.owen_open.refresh_from_db()
    assert org.owen_open.amount is None


def test_a_manager_updates_a_deal_of_someone_in_their_team(org):
    services.apply(org.maya, "acme renewal 50k", via="oneline")
    change = OpportunityChange.objects.get(opportunity=org.ravi_open, field="amount")
    assert (change.changed_by, change.via) == (org.maya, "oneline")


def test_new_creates_a_deal_on_the_account_through_create_opportunity(org):
    applied = services.apply(org.ravi, "new acme support plan 18k close end of quarter", via="oneline")

    assert applied.created
    deal = applied.deal
    assert (deal.name, deal.account, deal.owner, deal.amount) == (
        "Acme support plan",
        org.acme,
        org.ravi,
        Decimal("18000"),
    )
    assert deal.stage.name == "Prospecting"


# --- the CLI ---------------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("log", *args, stdout=out)
    return out.getvalue()


def test_the_cli_prints_the_preview_and_without_yes_on_a_pipe_writes_nothing(org):
    output = run("acme renewal 52k close end of quarter", "--as", "ravi")

    assert "Acme renewal (Acme Corp) (version 1)" in output
    assert "Amount" in output and "USD 48,000" in output and "USD 52,000" in output
    assert "Run again with --yes to apply" in output
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("48000")


def test_the_cli_applies_with_yes_recorded_via_cli(org):
    output = run("acme renewal 52k", "--as", "ravi", "--yes")

    assert "Updated Acme renewal: amount USD 52,000." in output
    assert ("amount", "52000", "cli") in history(org.ravi_open)


def test_the_cli_asks_on_a_terminal_and_applies_on_yes(org, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    run("acme renewal 52k", "--as", "ravi")
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("52000")


def test_the_cli_lists_numbered_choices_and_exits_2_on_a_question(initech):
    out = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("log", "initech 90k", "--as", "ravi", stdout=out)

    assert refused.value.returncode == 2
    assert "--pick" in str(refused.value)
    text = out.getvalue()
    assert "Which deal is “initech”?" in text
    assert "  1. " in text and "  2. " in text


def test_the_cli_pick_answers_the_question(initech):
    preview = services.preview(initech.ravi, "initech 90k")
    number = next(
        n
        for n, choice in enumerate(preview.questions[0].choices, start=1)
        if choice.label.startswith("Initech printers")
    )

    run("initech 90k", "--as", "ravi", "--pick", str(number), "--yes")

    initech.printers.refresh_from_db()
    assert initech.printers.amount == Decimal("90000")
    assert ("amount", "90000", "cli") in history(initech.printers)


def test_the_cli_refuses_an_unknown_user_and_a_deal_out_of_sight(org):
    with pytest.raises(CommandError, match="no active user called 'nobody'"):
        run("acme renewal 52k", "--as", "nobody")
    with pytest.raises(CommandError, match="No deal you can change"):
        run("globex pilot 52k", "--as", "ravi", "--yes")


# --- the API ---------------------------------------------------------------------------------------


def test_the_api_preview_answers_200_with_the_changes_and_the_version(org):
    response = api_as(org.ravi).post("log/preview", {"line": "acme renewal 52k close end of quarter"})

    assert response.status_code == 200
    body = response.json()
    assert body["deal"]["id"] == org.ravi_open.pk
    assert body["version"] == 1
    assert body["can_apply"] is True
    amount = next(change for change in body["changes"] if change["field"] == "amount")
    assert (amount["old"], amount["new"], amount["new_text"]) == ("48000", "52000", "USD 52,000")


def test_the_api_preview_answers_200_with_questions_and_400_for_an_empty_line(initech):
    api = api_as(initech.ravi)
    body = api.post("log/preview", {"line": "initech 90k"}).json()
    assert body["deal"] is None
    assert body["questions"][0]["key"] == "deal"
    assert len(body["questions"][0]["choices"]) == 2

    assert_error(api.post("log/preview", {"line": "  "}), 400, "invalid")
    assert_error(api.post("log/preview", {"line": "globex pilot 9k"}), 400, "invalid")


def test_the_api_applies_and_returns_the_updated_deal_recorded_via_api(org):
    response = api_as(org.ravi).post("log", {"line": "acme renewal 52k", "version": 1})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["opportunity"]["amount"] == "52000.00"
    assert body["opportunity"]["version"] == 2
    assert ("amount", "52000", Via.API) in history(org.ravi_open)


def test_the_api_answers_409_for_an_open_question_and_for_a_stale_version(initech):
    api = api_as(initech.ravi)
    assert_error(api.post("log", {"line": "initech 90k"}), 409, "unanswered")

    pipeline_services.update_opportunity(initech.maya, initech.printers, {"next_step": "Call"}, via=Via.FORM)
    stale = api.post(
        "log", {"line": "initech 90k", "choices": {"deal": str(initech.printers.pk)}, "version": 1}
    )
    assert_error(stale, 409, "conflict")

    done = api.post(
        "log", {"line": "initech 90k", "choices": {"deal": str(initech.printers.pk)}, "version": 2}
    )
    assert done.status_code == 200


def test_the_api_endpoints_are_in_the_openapi_document(org):
    paths = Client().get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/log/preview" in paths
    assert "/api/v1/log" in paths


# --- the web page ----------------------------------------------------------------------------------


def test_the_page_has_one_box_and_the_nav_links_to_it(org):
    html = login(org.ravi).get(reverse("one-line")).content.decode()
    assert 'name="line"' in html
    assert f'href="{reverse("one-line")}"' in html


def test_typing_gets_a_live_preview_fragment_with_old_and_new(org):
    response = login(org.ravi).get(reverse("one-line"), {"line": "acme renewal 52k"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Acme renewal (Acme Corp)" in html
    assert "USD 48,000" in html and "USD 52,000" in html
    assert 'name="version" value="1"' in html


def test_confirming_applies_via_oneline_and_clears_the_box(org):
    response = login(org.ravi).post(reverse("one-line"), {"line": "acme renewal 52k", "version": "1"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Updated Acme renewal" in html
    assert 'value=""' in html  # the box, empty for the next line
    assert ("amount", "52000", "oneline") in history(org.ravi_open)


def test_without_javascript_confirming_redirects_with_a_message(org):
    response = login(org.ravi).post(
        reverse("one-line"), {"line": "acme renewal 52k", "version": "1"}, follow=True
    )
    assert "Updated Acme renewal" in response.content.decode()


def test_a_question_is_shown_as_radio_choices_and_the_answer_is_carried_to_confirm(initech):
    client = login(initech.ravi)
    html = client.get(reverse("one-line"), {"line": "initech 90k"}, **HTMX).content.decode()
    assert 'type="radio" name="choice.deal"' in html
    assert "disabled" in html  # Confirm waits for the answer

    answered = client.post(
        reverse("one-line"),
        {"line": "initech 90k", "preview": "1", "choice.deal": initech.printers.pk},
        **HTMX,
    ).content.decode()
    assert f'name="choice.deal" value="{initech.printers.pk}"' in answered
    assert "Initech printers (Initech)" in answered

    client.post(reverse("one-line"), {"line": "initech 90k", "choice.deal": initech.printers.pk}, **HTMX)
    initech.printers.refresh_from_db()
    assert initech.printers.amount == Decimal("90000")


def test_a_stale_confirmation_is_refused_with_the_current_values(org):
    client = login(org.ravi)
    pipeline_services.update_opportunity(org.maya, org.ravi_open, {"amount": Decimal("60000")}, via=Via.FORM)

    response = client.post(reverse("one-line"), {"line": "acme renewal 52k", "version": "1"}, **HTMX)

    assert response.status_code == 409
    html = response.content.decode()
    assert "changed by someone else since your preview" in html
    assert "USD 60,000" in html
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == Decimal("60000")


def test_a_deal_out_of_sight_is_not_found_on_the_page_either(org):
    html = login(org.ravi).get(reverse("one-line"), {"line": "globex pilot 9k"}, **HTMX).content.decode()
    assert "No deal you can change matches" in html
    assert "Globex" not in html.replace("globex pilot", "")


def test_an_exec_is_told_the_page_is_not_for_their_role(org):
    assert login(org.eli).get(reverse("one-line")).status_code == 403


def test_the_today_page_carries_the_compact_box(org):
    html = login(org.ravi).get(reverse("today")).content.decode()
    assert 'id="oneline"' in html
