"""A real browser on /update/: type a line, answer the question, see old -> new, confirm; and on a phone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity, OpportunityChange

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def ravis_initech(org):
    """Ravi, the rainmaker who never logs, with two open Initech deals: "initech" alone is ambiguous."""
    initech = account_services.create_account(
        org.ravi, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    org.printers = pipeline_services.create_opportunity(
        org.ravi, name="Initech printers", account=initech, stage=stage("Qualification"),
        amount=Decimal("62000"), close_date=timezone.localdate() + dt.timedelta(days=40), via=Via.FORM,
    )  # fmt: skip
    org.tps = pipeline_services.create_opportunity(
        org.ravi, name="Initech TPS rollout", account=initech, stage=stage("Qualification"), via=Via.FORM
    )
    return org


def log_in(page, username: str = "ravi") -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_a_rep_types_a_line_answers_which_deal_and_confirms(ravis_initech, new_page, screenshot):
    page = new_page()
    log_in(page)
    page.get_by_role("link", name="One-line update").click()
    page.wait_for_selector("h1:has-text('One-line update')")

    # Typing previews on its own, once the typing pauses.
    line = "initech 90k proposal close end of quarter"
    page.locator("#oneline-line").press_sequentially(line, delay=10)
    page.locator(f"form.oneline-preview input[name=line][value='{line}']").wait_for(state="attached")
    question = page.locator("fieldset.oneline-question")
    question.wait_for()
    assert "Which deal is “initech”?" in question.inner_text()
    assert page.get_by_role("button", name="Confirm").is_disabled()

    question.get_by_text("Initech printers", exact=False).click()
    table = page.locator("table.oneline-table")
    table.wait_for()
    assert "Initech printers (Initech)" in page.locator(".oneline-deal").inner_text()
    assert table.locator("tr[data-field=amount] td.old").inner_text() == "USD 62,000"
    assert table.locator("tr[data-field=amount] td.new").inner_text() == "USD 90,000"
    assert table.locator("tr[data-field=stage] td.new").inner_text() == "Proposal"
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "one-line.png")

    page.get_by_role("button", name="Confirm").click()
    page.locator(".oneline-done").wait_for()
    assert "Updated Initech printers" in page.locator(".oneline-done").inner_text()
    assert page.locator("#oneline-line").input_value() == ""

    deal = Opportunity.objects.select_related("stage").get(pk=ravis_initech.printers.pk)
    assert (deal.amount, deal.stage.name) == (Decimal("90000"), "Proposal")
    assert OpportunityChange.objects.filter(opportunity=deal, field="amount", via="oneline").exists()
    assert Opportunity.objects.get(pk=ravis_initech.tps.pk).amount is None


def test_the_one_line_page_works_at_phone_width(ravis_initech, new_page, screenshot):
    page = new_page(375, 812)
    log_in(page)
    page.goto("/update/")
    page.fill("#oneline-line", "acme renewal 52k close end of quarter next: send the SOW to Carla friday")
    page.locator("#oneline-line").press("Enter")
    page.locator("table.oneline-table").wait_for()

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    confirm = page.get_by_role("button", name="Confirm").bounding_box()
    assert confirm["height"] >= 44 and confirm["width"] > 300  # a thumb's worth, full width
    screenshot(page, "one-line-phone.png")
