"""Real-browser flows on /today/: fix an item in place, snooze one, and the phone layout."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.core.models import Via
from truepipe.hygiene.engine import evaluate
from truepipe.hygiene.models import Snooze, Violation, ViolationStatus
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def in_days(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


@pytest.fixture
def ravis_morning(org):
    """Ravi's pipeline on a Monday morning: a deal past its close date, deals nobody has called,
    one that moves nowhere, and a surprise win from last week."""
    initech = account_services.create_account(
        org.ravi, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    deals = {}
    for name, account, amount, days, close in [
        ("Initech TPS rollout", initech, 140_000, 9, -4),
        ("Acme support plan", org.acme, 18_500, 26, 30),
        ("Initech printers", initech, 62_000, 75, 45),
        ("Acme data migration", org.acme, 96_000, 18, 20),
    ]:
        deals[name] = pipeline_services.create_opportunity(
            org.ravi, name=name, account=account, stage=stage("Proposal"), amount=Decimal(amount),
            close_date=in_days(close), next_step="Call the sponsor", next_step_date=in_days(5),
            via=Via.IMPORT, at=timezone.now() - dt.timedelta(days=days),
        )  # fmt: skip
    evaluate()
    org.deals = deals
    return org


def log_in(page, username: str = "ravi") -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def item_for(page, deal_name: str, title: str):
    return page.locator("li.q-item", has_text=deal_name).filter(has_text=title)


def test_a_rep_fixes_a_close_date_and_snoozes_a_deal_in_place(ravis_morning, new_page, screenshot):
    page = new_page()
    log_in(page)
    page.goto("/today/")
    page.wait_for_selector("h1:has-text('Today')")
    total = page.locator("li.q-item").count()
    assert total >= 3
    assert page.locator("[data-done]").inner_text() == f"0 of {total}"

    overdue = item_for(page, "Initech TPS rollout", "Close date in the past")
    overdue.locator("summary", has_text="New close date").click()
    overdue.locator("input[name=close_date]").fill(in_days(21).isoformat())
    overdue.get_by_role("button", name="Save date").click()

    overdue = item_for(page, "Initech TPS rollout", "Close date in the past")
    overdue.locator(".q-done").wait_for()
    assert "Close date moved to" in overdue.inner_text()
    assert page.locator("[data-done]").inner_text() == f"1 of {total}"

    quiet = item_for(page, "Initech printers", "no customer touch")
    quiet.locator("summary", has_text="Snooze").click()
    quiet.locator("input[name=reason]").fill("Customer on holiday until month end")
    quiet.get_by_role("button", name="Snooze").click()
    page.locator("[data-done]", has_text=f"of {total}").filter(has_not_text="1 of").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "today.png")

    deal = Opportunity.objects.get(pk=ravis_morning.deals["Initech TPS rollout"].pk)
    assert deal.close_date == in_days(21)
    snooze = Snooze.objects.get(opportunity=ravis_morning.deals["Initech printers"])
    assert snooze.reason == "Customer on holiday until month end"
    assert not Violation.objects.filter(
        opportunity=snooze.opportunity, rule="stale_touch", status=ViolationStatus.OPEN
    ).exists()


def test_the_queue_works_on_a_phone(ravis_morning, new_page, screenshot):
    page = new_page(375, 812)
    log_in(page)
    page.goto("/today/")
    page.wait_for_selector("li.q-item")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0

    first = page.locator("li.q-item").first
    buttons = first.locator(".q-act")
    for n in range(buttons.count()):
        box = buttons.nth(n).bounding_box()
        assert box["height"] >= 44  # a thumb's worth
    cards = page.locator("li.q-item")
    lefts = {round(cards.nth(n).bounding_box()["x"]) for n in range(cards.count())}
    assert len(lefts) == 1  # one column

    touch = item_for(page, "Acme support plan", "no customer touch")
    touch.locator("summary", has_text="Log last touch").click()
    touch.get_by_text("Meeting", exact=True).click()
    touch.locator("input[name=subject]").fill("Walked Carla through the renewal")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "today-phone.png")
    touch.get_by_role("button", name="Log it").click()
    item_for(page, "Acme support plan", "no customer touch").locator(".q-done").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_a_manager_reads_a_reps_queue_on_the_page_without_buttons(ravis_morning, new_page):
    page = new_page()
    log_in(page, "maya")
    page.goto(f"/today/?rep={ravis_morning.ravi.pk}")
    page.wait_for_selector("h1:has-text('Ravi Rao’s queue')")
    assert page.locator("li.q-item").count() >= 3
    assert page.locator(".q-actions").count() == 0
