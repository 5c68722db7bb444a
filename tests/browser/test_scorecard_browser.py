"""Real-browser flow of the scorecard: a manager reads her team, opens a rep, waives a violation."""

from __future__ import annotations

import pytest

from tests.browser.test_browser_flows import log_in
from tests.test_web_scorecard import build_fortnight
from truepipe.hygiene.models import Violation, ViolationStatus

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def fortnight(request, settings):
    """The personas (made with history loading on, like the rest) and their fortnight."""
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    return build_fortnight(request.getfixturevalue("org"), settings)


def test_a_manager_opens_the_scorecard_clicks_into_a_rep_and_waives_a_violation(
    fortnight, new_page, screenshot
):
    page = new_page()
    log_in(page, "maya")
    page.locator("nav.nav").get_by_text("Scorecard").click()
    page.wait_for_selector("h1:has-text('Discipline scorecard')")
    people = page.locator("table.sc-people")
    assert people.get_by_role("link", name="Ravi Rao").is_visible()
    assert people.get_by_role("link", name="Rita Reyes").is_visible()
    assert people.get_by_role("link", name="Owen Oak").count() == 0
    assert page.locator("svg.line-chart.wide").is_visible()
    assert not page.locator("svg.line-chart.narrow").is_visible()
    assert people.locator("svg.spark").count() == 2
    screenshot(page, "scorecard.png")

    people.get_by_role("link", name="Ravi Rao").click()
    page.wait_for_selector("h1:has-text('Ravi Rao')")
    overdue = Violation.objects.get(rep=fortnight.ravi, rule="past_due_close", live=True)
    card = page.locator(f"#violation-{overdue.pk}")
    assert card.get_by_text("Close date in the past").is_visible()
    assert card.get_by_text("Days overdue").is_visible()

    card.locator("summary", has_text="Waive").click()
    card.get_by_role("button", name="Waive violation").click()
    page.locator(f"#violation-{overdue.pk} .error").wait_for()
    assert "reason" in page.locator(f"#violation-{overdue.pk} .error").inner_text().lower()

    page.locator(f"#violation-{overdue.pk} textarea[name=reason]").fill("Customer froze budgets until Q3")
    page.locator(f"#violation-{overdue.pk}").get_by_role("button", name="Waive violation").click()
    page.locator(f"#violation-{overdue.pk} .status-badge", has_text="Waived").wait_for()
    card = page.locator(f"#violation-{overdue.pk}")
    assert card.get_by_text("Customer froze budgets until Q3").is_visible()
    assert card.locator("summary", has_text="Waive").count() == 0
    overdue.refresh_from_db()
    assert overdue.status == ViolationStatus.WAIVED and overdue.waived_by == fortnight.maya
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "rep-scorecard.png")


def test_the_scorecard_fits_a_phone(fortnight, new_page, screenshot):
    page = new_page(375, 812)
    log_in(page, "ada")
    page.goto("/scorecard/")
    page.wait_for_selector("h1:has-text('Discipline scorecard')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.locator("svg.line-chart.narrow").is_visible()
    assert not page.locator("svg.line-chart.wide").is_visible()
    assert page.locator("table.sc-people").get_by_role("link", name="Owen Oak").is_visible()
    screenshot(page, "scorecard-phone.png")
    page.locator("table.sc-people").get_by_role("link", name="Ravi Rao").click()
    page.wait_for_selector("h1:has-text('Ravi Rao')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "rep-scorecard-phone.png")
