"""Daily snapshots: every deal open at the end of a day, as it was that day, rebuilt from history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.conftest import stage
from truepipe.core.models import Via
from truepipe.hygiene.models import OpportunitySnapshot
from truepipe.hygiene.snapshots import take_snapshot
from truepipe.pipeline import services as pipeline_services


def days_ago(n: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=n)


@pytest.fixture
def old_deal(org):
    """A deal of ravi's opened ten days ago at 1,000; raised to 5,000 three days ago."""
    deal = pipeline_services.create_opportunity(
        org.ravi,
        via=Via.FORM,
        at=days_ago(10),
        name="Initech seats",
        account=org.acme,
        stage=stage("Proposal"),
        amount=Decimal("1000"),
        close_date=timezone.localdate() + dt.timedelta(days=40),
    )
    return pipeline_services.update_opportunity(
        org.ravi, deal, {"amount": Decimal("5000")}, via=Via.FORM, at=days_ago(3)
    )


def test_a_snapshot_shows_the_amount_a_deal_had_that_day_not_today(old_deal):
    take_snapshot(timezone.localdate() - dt.timedelta(days=5))
    take_snapshot(timezone.localdate() - dt.timedelta(days=1))

    then = OpportunitySnapshot.objects.get(
        opportunity=old_deal, day=timezone.localdate() - dt.timedelta(days=5)
    )
    later = OpportunitySnapshot.objects.get(
        opportunity=old_deal, day=timezone.localdate() - dt.timedelta(days=1)
    )
    assert then.amount == Decimal("1000")
    assert later.amount == Decimal("5000")
    assert then.owner_id == old_deal.owner_id
    assert then.stage_id == stage("Proposal").pk
    assert then.probability == stage("Proposal").probability


def test_deals_created_after_the_day_are_not_in_its_snapshot(org, old_deal):
    rows = take_snapshot(timezone.localdate() - dt.timedelta(days=5))

    assert rows == 1
    assert list(OpportunitySnapshot.objects.values_list("opportunity_id", flat=True)) == [old_deal.pk]


def test_a_deal_won_since_is_in_the_snapshot_before_and_not_after(org, old_deal):
    pipeline_services.update_opportunity(
        org.ravi, old_deal, {"stage": stage("Won")}, via=Via.FORM, at=days_ago(2)
    )

    before = take_snapshot(timezone.localdate() - dt.timedelta(days=4))
    after = take_snapshot(timezone.localdate() - dt.timedelta(days=1))

    assert before == 1
    today = set(
        OpportunitySnapshot.objects.filter(day=timezone.localdate() - dt.timedelta(days=1)).values_list(
            "opportunity_id", flat=True
        )
    )
    assert old_deal.pk not in today
    assert after == len(today)


def test_taking_the_same_day_twice_leaves_one_row_per_deal(org, old_deal):
    day = timezone.localdate()
    first = take_snapshot(day)
    second = take_snapshot(day)

    assert first == second == OpportunitySnapshot.objects.filter(day=day).count()
    assert first == 3  # ravi's open deal, owen's pilot and the old deal; the won deal is closed


def test_a_snapshot_is_a_few_statements_whatever_the_number_of_deals(
    org, old_deal, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        take_snapshot(timezone.localdate())


def test_the_snapshot_command_back_fills_a_range_with_a_progress_line(old_deal):
    from io import StringIO

    out = StringIO()
    start = timezone.localdate() - dt.timedelta(days=6)
    call_command(
        "snapshot",
        "--from",
        start.isoformat(),
        "--day",
        (start + dt.timedelta(days=2)).isoformat(),
        stdout=out,
    )

    assert "[1/3]" in out.getvalue() and "[3/3]" in out.getvalue()
    assert OpportunitySnapshot.objects.filter(opportunity=old_deal).count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "tomorrow"], "Not a date"),
        (["--day", "2999-01-01"], "future"),
        (["--from", "2026-01-05", "--day", "2026-01-01"], "--from must not be after --day"),
    ],
)
def test_the_snapshot_command_refuses_bad_days_plainly(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("snapshot", *args)
