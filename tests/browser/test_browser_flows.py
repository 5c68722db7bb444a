"""Real-browser flows: log in, drag on the board, log a touch, search, and the phone layout."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def showroom(org):
    """Org plus enough deals, contacts and touches for the pages to look like a working day."""
    close = timezone.localdate() + dt.timedelta(days=21)
    pilot = pipeline_services.create_opportunity(
        org.ravi, name="Acme pilot", account=org.acme, stage=stage("Qualification"), via=Via.FORM
    )
    initech = account_services.create_account(
        org.rita, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    peter = account_services.create_contact(
        org.rita, first_name="Peter", last_name="Gibbons", account=initech, emails=["peter@initech.example"],
        via=Via.FORM,
    )  # fmt: skip
    for n, (name, stage_name, amount) in enumerate(
        [
            ("Initech TPS rollout", "Discovery", None),
            ("Initech support plan", "Negotiation", Decimal("18500")),
            ("Initech printers", "Prospecting", None),
        ]
    ):
        fields = {"amount": amount, "close_date": close + dt.timedelta(days=7 * n)} if amount else {}
        if stage_name in ("Discovery", "Negotiation"):
            fields["next_step"] = "Demo with IT"
        deal = pipeline_services.create_opportunity(
            org.rita, name=name, account=initech, stage=stage(stage_name), via=Via.FORM, **fields
        )
        activity_services.log_activity(
            org.rita, kind="meeting", subject=f"Kick-off: {name}", opportunity=deal, participants=[peter],
            occurred_at=timezone.now() - dt.timedelta(days=12), via=Via.FORM,
        )  # fmt: skip
    activity_services.log_activity(
        org.ravi, kind="call", subject="Budget call with CFO", opportunity=org.ravi_open,
        occurred_at=timezone.now() - dt.timedelta(days=10), via=Via.FORM,
    )  # fmt: skip
    org.pilot = pilot
    return org


def drag(page, source, target) -> None:
    """Drag with intermediate mouse moves, as a hand does (Chromium needs them to start an HTML5 drag)."""
    box, goal = source.bounding_box(), target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 12)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 20, box["y"] + 30, steps=5)
    page.mouse.move(goal["x"] + goal["width"] / 2, goal["y"] + 60, steps=10)
    page.mouse.up()


def log_in(page, username: str = "ravi") -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Pipeline')")


def test_a_rep_logs_in_and_sees_his_pipeline(showroom, new_page, screenshot):
    page = new_page()
    page.goto("/")
    assert "/login/" in page.url
    screenshot(page, "login.png")
    log_in(page, "maya")
    assert page.locator("table.deals").get_by_text("Acme renewal").is_visible()
    assert page.locator("table.deals").get_by_text("Initech support plan").is_visible()
    screenshot(page, "pipeline.png")


def test_dragging_a_card_to_proposal_asks_for_the_missing_fields_then_moves_it(
    showroom, new_page, screenshot
):
    page = new_page()
    log_in(page)
    page.goto("/board/")
    card = page.locator(".deal-card", has_text="Acme pilot")
    proposal = page.locator(".column[data-stage-name='Proposal']")
    screenshot(page, "board.png")

    drag(page, card, proposal)

    dialog = page.locator("#modal .modal")
    dialog.wait_for()
    assert dialog.locator("input[name=amount]").is_visible()
    assert dialog.locator("input[name=close_date]").is_visible()
    assert dialog.locator("[name=next_step]").count() == 0
    screenshot(page, "board-ask-fields.png", full_page=False)

    dialog.get_by_text("Cancel").click()
    assert page.locator("#modal .modal").count() == 0
    assert (
        page.locator(".column[data-stage-name='Qualification'] .deal-card", has_text="Acme pilot").count()
        == 1
    )

    drag(page, page.locator(".deal-card", has_text="Acme pilot"), proposal)
    dialog.wait_for()
    dialog.locator("input[name=amount]").fill("32000")
    dialog.locator("input[name=close_date]").fill((timezone.localdate() + dt.timedelta(days=40)).isoformat())
    dialog.get_by_text("Save and move").click()

    page.locator(".column[data-stage-name='Proposal'] .deal-card", has_text="Acme pilot").wait_for()
    assert page.get_by_text("moved to Proposal").is_visible()
    screenshot(page, "board-after-move.png")
    deal = Opportunity.objects.get(pk=showroom.pilot.pk)
    assert (deal.stage.name, deal.amount) == ("Proposal", Decimal("32000"))


def test_logging_a_touch_on_the_opportunity_page_shows_it_in_the_timeline(showroom, new_page, screenshot):
    page = new_page()
    log_in(page)
    page.goto(f"/opportunities/{showroom.ravi_open.pk}/")
    assert page.get_by_text("logged 10 days later").is_visible()
    page.get_by_text("+ Log a touch").last.click()
    form = page.locator("#timeline-section form.log-form")
    form.get_by_text("Meeting").click()
    form.locator("input[name=subject]").fill("Walked the CFO through pricing")
    form.get_by_text("Yesterday").click()
    form.get_by_text("Log it").click()

    page.locator(".timeline .tl-subject", has_text="Walked the CFO through pricing").wait_for()
    assert page.get_by_text("Logged: Walked the CFO through pricing").is_visible()
    screenshot(page, "opportunity.png")


def test_search_finds_an_account(showroom, new_page, screenshot):
    page = new_page()
    log_in(page, "maya")
    page.fill(".nav-search input[name=q]", "initech")
    page.press(".nav-search input[name=q]", "Enter")
    page.locator("#results a", has_text="Initech").first.wait_for()
    assert page.locator("#results a", has_text="Peter Gibbons").is_visible()
    screenshot(page, "search.png")
    page.locator("#results a", has_text="Initech").first.click()
    page.wait_for_selector("h1:has-text('Initech')")
    assert page.locator("table").get_by_role("link", name="Initech support plan").is_visible()
    screenshot(page, "account.png")


@pytest.mark.parametrize("path", ["/", "/board/", "/accounts/", "/log/"])
def test_pages_fit_a_phone_without_horizontal_scroll(showroom, new_page, screenshot, path):
    page = new_page(390, 844)
    log_in(page, "maya")
    page.goto(path)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    name = {"/": "pipeline-phone.png", "/board/": "board-phone.png", "/accounts/": "accounts-phone.png"}
    screenshot(page, name.get(path, "log-phone.png"))
