"""Rules that read a deal's history: slipping close dates, late amount swings, stage jumps, surprise wins.

Every test builds its history with pinned dates (the services' `at=`), so each
rule is checked as of a fixed past moment, and the last test shows that a look
back at that moment gives the same answer after later changes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import stage
from truepipe.activities.services import log_activity
from truepipe.core.models import Via
from truepipe.hygiene.engine import find_all
from truepipe.pipeline.services import create_opportunity, update_opportunity

# Two months ago, mid-morning: far enough back that writes are history, not live edits.
T0 = (timezone.now() - dt.timedelta(days=60)).replace(hour=10, minute=0, second=0, microsecond=0)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def keys(rule: str, as_of: dt.datetime) -> set[str]:
    return {finding.key for finding in find_all(as_of)[rule]}


def finding(rule: str, as_of: dt.datetime, deal):
    return next(f for f in find_all(as_of)[rule] if f.opportunity_id == deal.pk)


def deal(org, name: str, stage_name: str = "Proposal", *, days: float = 0, **fields):
    values = {
        "account": org.acme,
        "amount": Decimal("10000"),
        "close_date": at(days).date() + dt.timedelta(days=40),
        "next_step": "Call",
        "next_step_date": at(days).date() + dt.timedelta(days=5),
    }
    values.update(fields)
    return create_opportunity(
        org.ravi, name=name, stage=stage(stage_name), via=Via.FORM, at=at(days), **values
    )


def update(org, opportunity, days: float, **changes):
    return update_opportunity(org.ravi, opportunity, changes, via=Via.FORM, at=at(days))


@pytest.mark.django_db
def test_a_close_date_pushed_twice_in_the_period_is_flagged_with_each_push(org):
    opp = deal(org, "Slippery")
    update(org, opp, 5, close_date=at(0).date() + dt.timedelta(days=45))
    update(org, opp, 10, close_date=at(0).date() + dt.timedelta(days=50))
    result = finding("close_pushed", at(11), opp)
    assert result.evidence["pushes"] == 2
    assert result.evidence["days_pushed"] == 10
    assert [push["on"] for push in result.evidence["history"]] == [
        at(5).date().isoformat(),
        at(10).date().isoformat(),
    ]
    assert "pushed 2 times" in result.summary


@pytest.mark.django_db
def test_one_small_push_is_fine_but_one_big_push_is_not(org):
    small = deal(org, "Small slip")
    big = deal(org, "Big slip")
    update(org, small, 5, close_date=small.close_date + dt.timedelta(days=7))
    update(org, big, 5, close_date=big.close_date + dt.timedelta(days=45))
    found = keys("close_pushed", at(6))
    assert f"close_pushed:o{big.pk}" in found
    assert f"close_pushed:o{small.pk}" not in found


@pytest.mark.django_db
def test_pulling_a_close_date_in_is_not_a_push_and_old_pushes_age_out(org):
    opp = deal(org, "Pulled in")
    update(org, opp, 1, close_date=opp.close_date - dt.timedelta(days=10))
    update(org, opp, 2, close_date=opp.close_date + dt.timedelta(days=35))
    assert f"close_pushed:o{opp.pk}" in keys("close_pushed", at(3))
    # The push was 35 days over the pulled-in date: 25 net, but one push of 35 counts.
    assert f"close_pushed:o{opp.pk}" not in keys("close_pushed", at(2 + 91))


@pytest.mark.django_db
def test_an_amount_swing_near_the_close_date_is_flagged_but_not_one_far_from_it(org):
    near = deal(org, "Near close", close_date=at(20).date())
    far = deal(org, "Far from close", close_date=at(80).date())
    small = deal(org, "Small change", close_date=at(20).date())
    update(org, near, 10, amount=Decimal("14000"))
    update(org, far, 10, amount=Decimal("4000"))
    update(org, small, 10, amount=Decimal("11000"))
    found = keys("amount_changed", at(11))
    assert found == {f"amount_changed:o{near.pk}"}
    evidence = finding("amount_changed", at(11), near).evidence
    assert evidence["percent"] == 40.0
    assert evidence["days_to_close"] == 10
    assert evidence["close_date_then"] == at(20).date().isoformat()


@pytest.mark.django_db
def test_the_close_date_that_counts_is_the_one_the_deal_had_when_the_amount_changed(org):
    opp = deal(org, "Moved then swung", close_date=at(90).date())
    update(org, opp, 10, amount=Decimal("20000"))  # 80 days before the close date then
    update(org, opp, 12, close_date=at(15).date())  # pulled in afterwards
    assert f"amount_changed:o{opp.pk}" not in keys("amount_changed", at(13))


@pytest.mark.django_db
def test_moving_a_deal_back_a_stage_is_a_regression(org):
    opp = deal(org, "Backslider", "Proposal")
    update(org, opp, 3, stage=stage("Qualification"))
    result = finding("stage_regressed", at(4), opp)
    assert result.evidence["from_stage"] == "Proposal"
    assert result.evidence["to_stage"] == "Qualification"
    assert f"stage_regressed:o{opp.pk}" not in keys("stage_regressed", at(3 + 31))


@pytest.mark.django_db
def test_jumping_from_prospecting_to_negotiation_skips_stages_but_one_step_at_a_time_does_not(org):
    jumper = deal(org, "Jumper", "Prospecting")
    walker = deal(org, "Walker", "Prospecting")
    update(org, jumper, 2, stage=stage("Negotiation"))
    update(org, walker, 2, stage=stage("Discovery"))  # skips only Qualification
    found = keys("stage_skipped", at(3))
    assert found == {f"stage_skipped:o{jumper.pk}"}
    assert finding("stage_skipped", at(3), jumper).evidence["skipped"] == 3


@pytest.mark.django_db
def test_a_deal_won_days_after_it_was_created_is_a_surprise_win(org):
    quick = deal(org, "Out of nowhere", "Proposal", days=10)
    update(org, quick, 13, stage=stage("Won"))
    result = finding("surprise_win", at(14), quick)
    assert "short_life" in result.evidence["reasons"]
    assert "few_activities" in result.evidence["reasons"]
    assert result.evidence["days_in_crm"] == 3.0


@pytest.mark.django_db
def test_a_well_worked_deal_won_the_normal_way_is_no_surprise(org):
    worked = deal(org, "Worked", "Discovery")
    for day in (2, 9, 16, 23):
        log_activity(
            org.ravi,
            kind="call",
            subject=f"Call {day}",
            opportunity=worked,
            occurred_at=at(day),
            logged_at=at(day),
            via=Via.FORM,
        )
    update(org, worked, 20, stage=stage("Proposal"))
    update(org, worked, 30, stage=stage("Won"))
    assert f"surprise_win:o{worked.pk}" not in keys("surprise_win", at(31))


@pytest.mark.django_db
def test_a_jump_from_an_early_stage_straight_to_won_is_a_surprise_even_when_worked(org):
    jumper = deal(org, "Leapfrog", "Qualification")
    for day in (2, 9, 16, 23):
        log_activity(
            org.ravi,
            kind="meeting",
            subject=f"Meeting {day}",
            opportunity=jumper,
            occurred_at=at(day),
            logged_at=at(day),
            via=Via.FORM,
        )
    update(org, jumper, 30, stage=stage("Won"))
    result = finding("surprise_win", at(31), jumper)
    assert result.evidence["reasons"] == ["jumped_to_won"]
    assert result.evidence["jumped_from_stage"] == "Qualification"


@pytest.mark.django_db
def test_a_surprise_win_counts_for_its_window_and_then_ages_out(org):
    quick = deal(org, "Brief", "Proposal", days=10)
    update(org, quick, 12, stage=stage("Won"))
    assert f"surprise_win:o{quick.pk}" in keys("surprise_win", at(12 + 29))
    assert f"surprise_win:o{quick.pk}" not in keys("surprise_win", at(12 + 31))


@pytest.mark.django_db
def test_looking_back_at_a_day_gives_the_same_findings_after_everything_was_fixed(org):
    slippery = deal(org, "Slippery", close_date=at(20).date())
    backslider = deal(org, "Backslider", "Proposal")
    jumper = deal(org, "Jumper", "Prospecting")
    quick = deal(org, "Quick", "Proposal", days=8)
    update(org, slippery, 5, close_date=at(30).date())
    update(org, slippery, 6, close_date=at(60).date(), amount=Decimal("20000"))
    update(org, backslider, 6, stage=stage("Qualification"))
    update(org, jumper, 6, stage=stage("Negotiation"))
    update(org, quick, 9, stage=stage("Won"))
    day_x = at(10)
    before = {rule: {f.key for f in found} for rule, found in find_all(day_x).items()}
    assert f"close_pushed:o{slippery.pk}" in before["close_pushed"]
    assert f"stage_regressed:o{backslider.pk}" in before["stage_regressed"]
    assert f"stage_skipped:o{jumper.pk}" in before["stage_skipped"]
    assert f"surprise_win:o{quick.pk}" in before["surprise_win"]

    # Later, everything changes: the deals move on, close, get worked and edited.
    update(org, slippery, 15, close_date=at(25).date(), amount=Decimal("10000"))
    update(org, backslider, 15, stage=stage("Negotiation"))
    update(org, jumper, 16, stage=stage("Lost"), lost_reason="Budget")
    update(org, quick, 17, stage=stage("Proposal"))
    for day in (18, 19, 20):
        log_activity(
            org.ravi,
            kind="call",
            subject="Late work",
            opportunity=slippery,
            occurred_at=at(day),
            logged_at=at(day),
            via=Via.FORM,
        )
    after = {rule: {f.key for f in found} for rule, found in find_all(day_x).items()}
    assert after == before


@pytest.mark.django_db
def test_night_after_night_old_swings_leave_their_periods_though_nobody_writes_again(org):
    """Ravi's close date slipped twice 50 days ago, another deal's amount doubled 25 days ago five
    days before its close, and a third went back a stage 20 days ago. A night looks again only at
    the deals written since the last one and at those whose changes left a rule's period since:
    as each change grows older than its period (90, 30 and 30 days), the next night closes its
    violation, with no write to the deal, and every night finds what a dry run finds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation

    slippery = deal(org, "Slippery")
    update(org, slippery, 5, close_date=at(0).date() + dt.timedelta(days=45))
    update(org, slippery, 10, close_date=at(0).date() + dt.timedelta(days=50))
    swing = deal(org, "Swing")
    update(org, swing, 35, amount=Decimal("20000"))
    backslide = deal(org, "Backslide")
    update(org, backslide, 40, stage=stage("Qualification"))
    now = timezone.now() + dt.timedelta(hours=1)

    def night(moment: dt.datetime) -> tuple[set[str], list[str]]:
        with CaptureQueriesContext(connection) as captured:
            evaluate(moment)
        live = set(Violation.objects.filter(live=True).values_list("key", flat=True))
        assert live == {f.key for findings in find_all(moment).values() for f in findings}
        return live, [q["sql"] for q in captured.captured_queries]

    def has(live: set[str]) -> tuple[bool, bool, bool]:
        return (
            f"close_pushed:o{slippery.pk}" in live,
            f"amount_changed:o{swing.pk}" in live,
            f"stage_regressed:o{backslide.pk}" in live,
        )

    live, _ = night(now)
    assert has(live) == (True, True, True)
    live, statements = night(now + dt.timedelta(days=7))  # the swing is 32 days old
    assert has(live) == (True, False, True)
    # Narrowed: the amount rule read the changes of the deals whose changes slid out of its period.
    assert any(
        "UNION SELECT c.opportunity_id FROM pipeline_opportunitychange c WHERE c.field = 'amount'" in sql
        for sql in statements
    )
    live, _ = night(now + dt.timedelta(days=12))  # the step back is 32 days old
    assert has(live) == (True, False, False)
    live, _ = night(now + dt.timedelta(days=41))  # the last push is 91 days old
    assert has(live) == (False, False, False)
    assert Violation.objects.get(key=f"close_pushed:o{slippery.pk}").status == "resolved"


def test_a_period_counts_elapsed_days_so_a_local_moment_and_the_same_moment_in_utc_agree():
    """A night as of the end of a Berlin day in December, and the same moment as read back from
    the database in UTC (how the next night sees it): their 90-day periods start at the same
    instant, though a change of daylight saving time lies between."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from truepipe.hygiene.rules.history import window_start

    local = dt.datetime(2024, 12, 10, 23, 59, 59, tzinfo=ZoneInfo("Europe/Berlin"))
    in_utc = local.astimezone(dt.UTC)
    starts = [window_start(SimpleNamespace(as_of=moment), 90) for moment in (local, in_utc)]  # type: ignore[arg-type]
    assert starts[0] == starts[1] == in_utc - dt.timedelta(days=90)
    assert starts[0].utcoffset() == dt.timedelta(0)
