"""Real-browser walk through the accountability loop: Ravi's offenses climb the ladder, Maya
applies one and waives one, Ravi disputes one and Maya upholds it, one she lets slip escalates to
Vera, and the fairness audit singles out Maya's leniency. Screenshots of each person's page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.browser.test_browser_flows import log_in
from tests.test_web_accountability import _strict_weeks
from truepipe.accountability.models import Consequence, ConsequenceState, Offense, OffenseStatus
from truepipe.accountability.services import apply_consequence, waive_consequence
from truepipe.hygiene.engine import evaluate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def three_offenses(request, settings):
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    request.getfixturevalue("org")
    return _strict_weeks(20, 27, 34, 41)


def press(page, action: str, button: str) -> None:
    """Click a button of the form posting to this action (one form per record and decision)."""
    page.locator(f"form[action$='{action}']").get_by_role("button", name=button).click()


def _night(days: int) -> None:
    evaluate(timezone.now() + dt.timedelta(days=days))


def test_the_whole_loop_from_ravis_offenses_to_veras_escalation(three_offenses, new_page, screenshot):
    first, second, third = three_offenses

    # Ravi reads his offenses, acknowledges the first and disputes the third.
    ravi = new_page()
    log_in(ravi, "ravi")
    ravi.locator("nav.nav").get_by_text("Accountability").click()
    ravi.wait_for_selector("h2:has-text('Your offenses')")
    assert ravi.get_by_text("would be level 4").is_visible()
    assert ravi.get_by_text("Formal performance review").first.is_visible()
    mine = ravi.locator("#mine li.cq")
    assert mine.count() == 3
    mine.nth(2).get_by_role("button", name="Acknowledge").click()  # oldest last
    ravi.get_by_text(f"Acknowledged the offense of {first.week}").wait_for()
    press(ravi, f"/offenses/{third.pk}/dispute/", "Dispute")
    ravi.get_by_text("Nothing was saved: Say why the offense is wrong.").wait_for()
    ravi.locator(f"#dispute-{third.pk}").fill("That deal was handed to me from a colleague who left")
    press(ravi, f"/offenses/{third.pk}/dispute/", "Dispute")
    ravi.get_by_text("Disputed. Maya Moss will decide").wait_for()
    screenshot(ravi, "accountability-rep.png")

    # Maya applies the warning, waives the hold (a reason is required), upholds the dispute.
    maya = new_page()
    log_in(maya, "maya")
    maya.goto("/accountability/")
    warning = Consequence.objects.get(offense=first)
    hold = Consequence.objects.get(offense=second)
    maya.locator(f"#apply-{warning.pk}").fill("Warned in our 1:1; he logs calls the same day from now on")
    press(maya, f"/consequences/{warning.pk}/apply/", "Apply")
    maya.get_by_text("Applied: Written warning").wait_for()
    press(maya, f"/consequences/{hold.pk}/waive/", "Waive")
    maya.get_by_text("Nothing was saved: Say why it is waived.").wait_for()
    maya.locator(f"#waive-{hold.pk}").fill("Quarter-end freeze at his two biggest accounts")
    press(maya, f"/consequences/{hold.pk}/waive/", "Waive")
    maya.get_by_text("Waived: Hold on reimbursement").wait_for()
    resolve = maya.locator("#disputes form")
    resolve.locator("input[name=note]").fill("Checked the handover: reassigned that Monday")
    resolve.get_by_label("Uphold (overturn)").check()
    resolve.get_by_role("button", name="Decide").click()
    maya.get_by_text("Dispute upheld").wait_for()
    screenshot(maya, "accountability-manager.png")
    assert Offense.objects.get(pk=third.pk).status == OffenseStatus.OVERTURNED
    assert Consequence.objects.get(pk=warning.pk).state == ConsequenceState.APPLIED
    assert Consequence.objects.get(pk=hold.pk).state == ConsequenceState.WAIVED

    # A new offense Maya lets pass its deadline: Vera sees it as unenforced and applies it.
    _night(48)
    late = Consequence.objects.get(offense__rep__username="ravi", state="pending")
    _night(48 + 11)
    late.refresh_from_db()
    assert late.escalated_to is not None and late.escalated_to.username == "vera"
    vera = new_page()
    log_in(vera, "vera")
    vera.goto("/accountability/")
    assert vera.locator("#unenforced").get_by_text("unenforced, escalated to Vera Vance").first.is_visible()
    assert vera.locator("#to-decide .cq-late").count() >= 1
    screenshot(vera, "accountability-vp.png")
    vera.locator(f"#apply-{late.pk}").fill("Held the conversation myself")
    press(vera, f"/consequences/{late.pk}/apply/", "Apply")
    vera.get_by_text("Applied:").wait_for()
    assert Consequence.objects.get(pk=late.pk).decided_by.username == "vera"

    # On a phone, Ravi's page still reads top to bottom without sideways scrolling.
    phone = new_page(390, 844)
    log_in(phone, "ravi")
    phone.goto("/accountability/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(phone, "accountability-phone.png")


def test_the_fairness_audit_singles_out_the_lenient_manager(request, settings, new_page, screenshot):
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    org = request.getfixturevalue("org")
    from tests.test_fairness import _ravi_is_the_top_seller

    _ravi_is_the_top_seller(org)
    _strict_weeks(*range(20, 90, 7))
    for c in Consequence.objects.filter(offense__rep=org.ravi):
        waive_consequence(org.maya, c, "He brings in the numbers")
    for c in Consequence.objects.filter(offense__rep=org.owen):
        apply_consequence(org.omar, c, "Done as the policy says")

    page = new_page()
    log_in(page, "vera")
    end = timezone.localdate() + dt.timedelta(days=100)
    page.goto(f"/accountability/fairness/?from={timezone.localdate():%Y-%m-%d}&to={end:%Y-%m-%d}")
    page.wait_for_selector("h1:has-text('Fairness audit')")
    assert page.get_by_text("⚑ Does Maya Moss waive more often than the other managers?").is_visible()
    assert page.locator("rect.bars-flag").count() == 2
    screenshot(page, "fairness.png")
