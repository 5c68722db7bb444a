"""A real browser on /capture/: Ravi uploads his mailbox, puts a mail in triage on the right deal,
adds a proposed contact, and sees what was rejected and why; and the same page on a phone."""

from __future__ import annotations

import re

import pytest

from tests.capture_helpers import message, write_mbox
from tests.conftest import PASSWORD
from truepipe.activities.models import Activity
from truepipe.capture.models import CapturedItem, ContactProposal, ItemStatus

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def ravis_mailbox(org, acme_buyer, acme_upsell, tmp_path):
    """Ravi has two open Acme deals; his exported mailbox has a mail for each kind of outcome."""
    org.upsell = acme_upsell
    mails = [
        message("Ravi Rao <ravi@truepipe.test>", "Bea Buyer <bea@acme.example>", "Pricing for the upsell"),
        message("Carl Cfo <carl@acme.example>", "ravi@truepipe.test", "Budget sign-off"),
        message("ravi@truepipe.test", "maya@truepipe.test", "Lunch on Friday?"),
        message("Bea Buyer <bea@acme.example>", "ravi@truepipe.test", "Undated reply"),
    ]
    del mails[3]["Date"]
    mbox = write_mbox(tmp_path / "ravi.mbox", mails).read_bytes()
    path = tmp_path / "ravi-export.mbox"
    # Separator lines without their date: the undated reply has no date left anywhere.
    path.write_bytes(re.sub(rb"(?m)^From MAILER-DAEMON .*$", b"From MAILER-DAEMON", mbox))
    return path


def log_in(page, username: str = "ravi") -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_ravi_uploads_his_mailbox_and_clears_his_triage_in_two_clicks(
    org, ravis_mailbox, new_page, screenshot
):
    page = new_page()
    log_in(page)
    page.get_by_role("link", name="Capture").first.click()
    page.wait_for_selector("h1:has-text('Capture')")

    page.set_input_files("input[name=files]", str(ravis_mailbox))
    page.get_by_role("button", name="Capture").click()
    page.wait_for_load_state()

    status = page.locator(".messages").inner_text()
    assert "ravi-export.mbox: 4 read" in status and "1 rejected" in status
    assert "Rejected ravi-export.mbox message 4: no usable date" in status
    triage = page.locator("#triage")
    assert "Pricing for the upsell" in triage.inner_text()
    assert "carl@acme.example" in page.locator("#proposals").inner_text()
    screenshot(page, "capture.png")

    triage.locator("li", has_text="Pricing for the upsell").get_by_role("button", name="Acme upsell").click()
    page.wait_for_load_state()
    triage.locator("li", has_text="Budget sign-off").get_by_role("button", name="Acme renewal").click()
    page.wait_for_load_state()
    page.locator("#proposals").get_by_role("button", name="Add contact").click()
    page.wait_for_load_state()

    assert "Nothing to choose" in page.locator("#triage").inner_text()
    assert Activity.objects.get(subject="Pricing for the upsell").opportunity == org.upsell
    assert Activity.objects.get(subject="Budget sign-off").opportunity == org.ravi_open
    assert ContactProposal.objects.get(email="carl@acme.example").contact.last_name == "Cfo"
    page.get_by_role("link", name="Rejected (1)").click()
    page.wait_for_load_state()
    assert "no usable date" in page.locator("#captured").inner_text()
    assert CapturedItem.objects.get(subject="Lunch on Friday?").status == ItemStatus.IGNORED


def test_the_capture_page_fits_a_phone(org, ravis_mailbox, new_page, screenshot):
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.sources import read_paths

    Ingest().run(read_paths([ravis_mailbox], source="file"))
    page = new_page(390, 844)
    log_in(page)
    page.goto("/capture/")

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways ({width}px)"
    screenshot(page, "capture-phone.png")
