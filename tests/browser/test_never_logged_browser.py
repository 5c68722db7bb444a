"""A real browser on the deals nobody logged: Rick sees the company he keeps writing to and creates
the deal from the suggestion; Dana in delivery sees the signed contract nobody logged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from tests.capture_helpers import message
from tests.conftest import PASSWORD
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CaptureSource
from truepipe.capture.sources import from_bytes
from truepipe.contracts.importing import run as import_contracts
from truepipe.hygiene.engine import evaluate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def ravis_unlogged_customer(org, tmp_path):
    """Ravi writes six times to Northwind, which truepipe has never heard of; finance signed it."""
    now = timezone.now()
    Ingest(None).run(
        from_bytes(
            message(
                "Ravi Rao <ravi@truepipe.test>",
                "Olga Brandt <olga@northwind.example>",
                f"Routing pilot, step {n}",
                when=now - dt.timedelta(days=12 - 2 * n),
            ).as_bytes(),
            source=CaptureSource.FILE,
            origin=f"mail {n}",
            owner_id=org.ravi.pk,
        )
        for n in range(6)
    )
    evaluate()
    contracts = Path(tmp_path) / "contracts.csv"
    contracts.write_text(
        "Customer,Amount,Currency,Signed,Reference\n"
        f"Northwind Logistics (northwind.example),180000,USD,{(now - dt.timedelta(days=1)).date()},FIN-1\n"
    )
    import_contracts(contracts, {})
    return org


def log_in(page, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_ravi_creates_the_deal_his_mail_suggests_and_dana_sees_the_unlogged_win(
    ravis_unlogged_customer, new_page, screenshot
):
    page = new_page()
    log_in(page, "ravi")
    page.goto("/capture/")
    page.get_by_role("link", name="Shadow pipeline").click()
    page.wait_for_selector("h1:has-text('Shadow pipeline')")
    row = page.locator("tr", has_text="northwind.example")
    assert "6" in row.inner_text()
    screenshot(page, "shadow-pipeline.png")

    row.get_by_role("button", name="Create the deal").click()
    page.wait_for_load_state()
    assert "/opportunities/new/" in page.url
    assert "northwind" in page.content().lower()

    delivery = new_page()
    log_in(delivery, "dana")
    delivery.goto("/contracts/")
    delivery.wait_for_selector("h1:has-text('Contracts')")
    text = delivery.locator("main").inner_text()
    assert "Unlogged wins (1)" in text and "Northwind" in text and "Ravi" in text
    screenshot(delivery, "contracts.png")
