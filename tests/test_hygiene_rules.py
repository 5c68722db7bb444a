"""Rules about fields a stage needs, late logging and the daily update."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import stage
from truepipe.accounts.services import create_account
from truepipe.activities.services import log_activity
from truepipe.core.models import Via
from truepipe.hygiene.engine import find_all
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.rules import REGISTRY, Finding, Rule, register
from truepipe.people.services import update_person
from truepipe.pipeline.models import Opportunity
from truepipe.pipeline.services import create_opportunity, update_opportunity, update_stage


def found(rule: str, as_of: dt.datetime | None = None):
    return find_all(as_of or timezone.now())[rule]


# --- missing stage fields ---------------------------------------------------------------


@pytest.mark.django_db
def test_deals_that_meet_their_stage_requirements_are_not_missing_anything(org):
    assert found("missing_stage_fields") == []


@pytest.mark.django_db
def test_when_a_stage_starts_requiring_a_field_the_deals_already_in_it_are_flagged(org):
    update_stage(
        org.ada, stage("Proposal"), {"required_fields": ["account", "amount", "close_date", "next_step"]}
    )
    [result] = found("missing_stage_fields")
    assert result.opportunity_id == org.ravi_open.pk
    assert result.rep_id == org.ravi.pk
    assert result.evidence["missing"] == ["next_step"]
    assert result.summary == "Acme renewal: Proposal needs next step"


@pytest.mark.django_db
def test_an_imported_deal_without_its_stage_fields_is_flagged_with_each_missing_field(org):
    imported = create_opportunity(
        org.ravi, name="Imported", stage=stage("Negotiation"), via=Via.IMPORT, enforce_stage=False
    )
    [result] = found("missing_stage_fields")
    assert result.opportunity_id == imported.pk
    assert result.evidence["missing"] == ["account", "amount", "close_date", "next_step"]


@pytest.mark.django_db
def test_filling_in_the_field_clears_the_finding(org):
    imported = create_opportunity(
        org.ravi, name="Imported", stage=stage("Qualification"), via=Via.IMPORT, enforce_stage=False
    )
    assert [f.opportunity_id for f in found("missing_stage_fields")] == [imported.pk]
    update_opportunity(org.ravi, imported, {"account": org.acme}, via=Via.FORM)
    assert found("missing_stage_fields") == []


# --- logging lag ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_call_logged_three_days_after_it_happened_is_late_and_counts_against_its_owner(org):
    now = timezone.now()
    late = log_activity(
        org.rita, kind="call", subject="Budget call", occurred_at=now - dt.timedelta(days=3), via=Via.FORM
    )
    [result] = found("logging_lag")
    assert result.key == f"logging_lag:a{late.pk}"
    assert result.activity_id == late.pk
    assert result.rep_id == org.rita.pk
    assert 71 < result.evidence["lag_hours"] < 73
    assert result.summary == "Call “Budget call” logged 3 days after it happened"


@pytest.mark.django_db
def test_a_same_day_log_and_captured_mail_are_never_late(org):
    now = timezone.now()
    log_activity(
        org.rita, kind="call", subject="Quick", occurred_at=now - dt.timedelta(hours=2), via=Via.FORM
    )
    log_activity(
        org.rita,
        kind="email",
        subject="Synced",
        occurred_at=now - dt.timedelta(days=5),
        source="email",
        via=Via.EMAIL,
    )
    log_activity(
        org.rita,
        kind="meeting",
        subject="Synced meeting",
        occurred_at=now - dt.timedelta(days=5),
        source="calendar",
        via=Via.CALENDAR,
    )
    assert found("logging_lag") == []


@pytest.mark.django_db
def test_a_late_log_counts_only_while_it_was_logged_within_the_window(org):
    now = timezone.now()
    log_activity(
        org.rita,
        kind="meeting",
        subject="Old news",
        occurred_at=now - dt.timedelta(days=20),
        logged_at=now - dt.timedelta(days=10),
        via=Via.FORM,
    )
    assert found("logging_lag", now - dt.timedelta(days=9))
    assert found("logging_lag", now) == []


# --- missed daily update ----------------------------------------------------------------


def _past_week() -> dt.date:
    """The Monday three weeks ago."""
    today = timezone.localdate()
    return today - dt.timedelta(days=today.weekday() + 21)


def _at(day: dt.date, hour: int, zone: dt.tzinfo = dt.UTC) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=zone)


@pytest.fixture
def rita_week(org):
    """Rita has owned an open deal for a month; in the week under test she updates on some days."""
    monday = _past_week()
    deal = create_opportunity(
        org.rita,
        name="Rita's deal",
        stage=stage("Prospecting"),
        via=Via.FORM,
        at=_at(monday - dt.timedelta(days=30), 9),
    )
    log_activity(
        org.rita,
        kind="call",
        subject="Monday call",
        opportunity=deal,
        occurred_at=_at(monday, 9),
        logged_at=_at(monday, 9),
        via=Via.FORM,
    )
    update_opportunity(
        org.rita, deal, {"amount": Decimal("5000")}, via=Via.FORM, at=_at(monday + dt.timedelta(days=2), 10)
    )
    # Thursday's log came after the 18:00 cut-off.
    thursday = monday + dt.timedelta(days=3)
    log_activity(
        org.rita,
        kind="note",
        subject="Late note",
        opportunity=deal,
        occurred_at=_at(thursday, 19),
        logged_at=_at(thursday, 19),
        via=Via.FORM,
    )
    return monday


def _missed(as_of: dt.datetime) -> dict[str, Finding]:
    return {f.key: f for f in found("missed_daily_update", as_of)}


@pytest.mark.django_db
def test_working_days_without_an_update_before_the_cut_off_are_missed(org, rita_week):
    monday = rita_week
    missed = _missed(_at(monday + dt.timedelta(days=4), 20))
    days = [monday + dt.timedelta(days=n) for n in (1, 3, 4)]  # Tuesday, Thursday, Friday
    assert set(missed) == {f"missed_daily_update:r{org.rita.pk}:{day.isoformat()}" for day in days}
    tuesday = missed[f"missed_daily_update:r{org.rita.pk}:{days[0].isoformat()}"]
    assert tuesday.day == days[0]
    assert tuesday.rep_id == org.rita.pk
    assert tuesday.evidence["open_deals"] == 1
    assert tuesday.evidence["cutoff"] == "18:00"


@pytest.mark.django_db
def test_a_missed_day_counts_the_deals_open_long_before_it_with_those_opened_lately(org, rita_week):
    """Two more of Rita's deals have been open for a quarter, long before the days looked at
    (counted per rep in one group), besides the one she opened a month ago (read one by one)."""
    for name in ("Old renewal", "Old upsell"):
        create_opportunity(
            org.rita,
            name=name,
            stage=stage("Prospecting"),
            via=Via.FORM,
            at=_at(rita_week - dt.timedelta(days=90), 9),
        )
    missed = _missed(_at(rita_week + dt.timedelta(days=4), 20))
    tuesday = missed[f"missed_daily_update:r{org.rita.pk}:{(rita_week + dt.timedelta(days=1)).isoformat()}"]
    assert tuesday.evidence["open_deals"] == 3


@pytest.mark.django_db
def test_a_day_of_captured_mail_alone_is_still_a_missed_update(org, rita_week):
    """Rita's mail was captured all Tuesday morning, but she updated nothing herself."""
    from truepipe.activities.services import log_captured

    tuesday = rita_week + dt.timedelta(days=1)
    deal = Opportunity.objects.get(owner=org.rita, name="Rita's deal")
    mail = {"kind": "email", "subject": "Re: pricing", "body": "", "source": "email"}
    log_captured(
        None,
        [
            {
                **mail,
                "occurred_at": _at(tuesday, hour),
                "owner": org.rita.pk,
                "opportunity": deal.pk,
                "account": None,
            }
            for hour in (9, 10, 11)
        ],
        [[], [], []],
        via=Via.EMAIL,
        logged_at=_at(tuesday, 11),
    )

    assert f"missed_daily_update:r{org.rita.pk}:{tuesday}" in _missed(
        _at(rita_week + dt.timedelta(days=4), 20)
    )


@pytest.mark.django_db
def test_a_day_that_is_not_over_yet_and_a_day_off_are_not_missed(org, rita_week):
    monday = rita_week
    friday = monday + dt.timedelta(days=4)
    assert f"missed_daily_update:r{org.rita.pk}:{friday}" not in _missed(_at(friday, 12))
    update_person(org.ada, org.rita, {"working_days": [0, 1, 2, 3]})
    assert f"missed_daily_update:r{org.rita.pk}:{friday}" not in _missed(_at(friday, 20))


@pytest.mark.django_db
def test_the_cut_off_is_the_reps_own_local_time(org, rita_week):
    monday = rita_week
    update_person(org.ada, org.rita, {"time_zone": "Asia/Tokyo"})
    # Monday 09:00 UTC is 18:00 in Tokyo: too late there.
    missed = _missed(_at(monday + dt.timedelta(days=4), 20))
    assert f"missed_daily_update:r{org.rita.pk}:{monday}" in missed
    assert missed[f"missed_daily_update:r{org.rita.pk}:{monday}"].evidence["time_zone"] == "Asia/Tokyo"


@pytest.mark.django_db
def test_reps_without_open_deals_on_that_day_have_nothing_to_update(org, rita_week):
    monday = rita_week
    missed = _missed(_at(monday + dt.timedelta(days=4), 20))
    # Ravi and Owen's deals were created today, after the week under test.
    assert {f.rep_id for f in missed.values()} == {org.rita.pk}


@pytest.mark.django_db
def test_a_missed_day_still_counts_after_the_deals_open_that_day_were_lost(org, rita_week):
    monday = rita_week
    deal = Opportunity.objects.get(name="Rita's deal")
    wednesday = monday + dt.timedelta(days=2)
    update_opportunity(
        org.rita,
        deal,
        {"stage": stage("Lost"), "lost_reason": "No budget"},
        via=Via.FORM,
        at=_at(wednesday, 11),
    )
    missed = _missed(_at(monday + dt.timedelta(days=4), 20))
    # Tuesday she had an open deal and did nothing; from Thursday she had none left to update.
    assert set(missed) == {f"missed_daily_update:r{org.rita.pk}:{monday + dt.timedelta(days=1)}"}


# --- stale clocks relative to the rep's own cycle -----------------------------------------


def _cycle_policy(factor: float):
    document = copy.deepcopy(current_policy().document)
    document["rules"]["stale_touch"]["params"].update({"relative_to_cycle": True, "cycle_factor": factor})
    return Policy(version=5, document=document)


@pytest.mark.django_db
def test_a_rep_with_a_long_sales_cycle_gets_a_longer_stale_limit_when_the_policy_asks(org):
    now = timezone.now()
    initech = create_account(org.rita, name="Initech", via=Via.FORM)
    for n in range(3):  # won after 80, 100 and 120 days: a median of 100
        won = create_opportunity(
            org.rita,
            name=f"Won {n}",
            account=initech,
            amount=Decimal("1000"),
            close_date=(now - dt.timedelta(days=90)).date(),
            stage=stage("Qualification"),
            via=Via.FORM,
            at=now - dt.timedelta(days=200),
        )
        update_opportunity(
            org.rita, won, {"stage": stage("Won")}, via=Via.FORM, at=now - dt.timedelta(days=120 - 20 * n)
        )
    fresh = create_opportunity(
        org.rita,
        name="Month old",
        account=initech,
        stage=stage("Qualification"),
        via=Via.FORM,
        at=now - dt.timedelta(days=30),
    )
    older = create_opportunity(
        org.rita,
        name="Two months old",
        account=initech,
        stage=stage("Qualification"),
        via=Via.FORM,
        at=now - dt.timedelta(days=60),
    )

    def stale(policy=None):
        return {f.opportunity_id: f for f in find_all(now, policy)["stale_touch"] if f.rep_id == org.rita.pk}

    assert set(stale()) == {fresh.pk, older.pk}  # the stage limit of 21 days
    relative = stale(_cycle_policy(0.5))  # max(21, 0.5 × 100) = 50 days
    assert set(relative) == {older.pk}
    assert relative[older.pk].evidence["limit_days"] == 50.0
    assert relative[older.pk].evidence["cycle_limit_days"] == 50.0


@pytest.mark.django_db
def test_a_rep_without_wins_keeps_the_stage_limit(org):
    old = create_opportunity(
        org.owen,
        name="Quiet",
        stage=stage("Prospecting"),
        via=Via.FORM,
        at=timezone.now() - dt.timedelta(days=30),
    )
    findings = find_all(timezone.now(), _cycle_policy(3.0))["stale_touch"]
    assert any(f.opportunity_id == old.pk for f in findings)


@pytest.mark.parametrize("key", ["stale:touch", ""])
def test_a_rule_whose_key_could_meet_another_rules_violation_keys_is_refused(key):
    """Violation keys read "{rule}:{record}": a colon (or nothing) in a rule's key would let two
    rules' keys meet."""

    class Clashing(Rule):
        pass

    Clashing.key = key
    with pytest.raises(ValueError, match="without a colon"):
        register(Clashing)
    assert key not in REGISTRY
