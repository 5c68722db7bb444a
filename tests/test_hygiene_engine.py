"""The engine's record of violations: opened, fixed at once, waived, reconciled, expired, in order."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.utils import timezone

from tests.conftest import stage
from truepipe.activities.services import log_activity
from truepipe.core.models import Via
from truepipe.hygiene.engine import EvaluationOrderError, evaluate, find_all
from truepipe.hygiene.models import Snooze, Violation, ViolationStatus
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.services import waive_violation
from truepipe.pipeline.services import create_opportunity, update_opportunity


def _violation(rule: str, opportunity) -> Violation:
    return Violation.objects.get(rule=rule, opportunity=opportunity, live=True)


def _next_step(days: int = 3) -> dict:
    return {
        "next_step": "Send the proposal",
        "next_step_date": timezone.localdate() + dt.timedelta(days=days),
    }


@pytest.mark.django_db
def test_a_fix_through_the_service_resolves_the_violation_at_once_and_says_who_fixed_it(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    assert violation.status == ViolationStatus.OPEN

    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.RESOLVED
    assert violation.live is False
    assert violation.resolved_by == org.ravi
    assert violation.resolved_via == Via.FORM
    assert "next_step" in violation.resolution


@pytest.mark.django_db
def test_a_waived_violation_is_not_reopened_by_the_next_evaluation(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    waive_violation(org.maya, violation, "Customer is on holiday")
    evaluate(timezone.now() + dt.timedelta(hours=1))
    [only] = Violation.objects.filter(key=violation.key)
    assert only.pk == violation.pk
    assert only.status == ViolationStatus.WAIVED
    assert only.live is True


@pytest.mark.django_db
def test_a_full_evaluation_opens_new_failures_and_resolves_fixed_ones(org, settings):
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    evaluate()
    fixed = _violation("no_next_step", org.ravi_open)
    new_deal = create_opportunity(org.ravi, name="New and bare", stage=stage("Prospecting"), via=Via.FORM)
    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)
    assert not Violation.objects.filter(opportunity=new_deal).exists()  # incremental evaluation is off

    run = evaluate(timezone.now() + dt.timedelta(minutes=5))

    fixed.refresh_from_db()
    assert fixed.status == ViolationStatus.RESOLVED
    assert fixed.resolved_via == "evaluation"
    assert _violation("no_next_step", new_deal).status == ViolationStatus.OPEN
    assert run.opened >= 1 and run.resolved >= 1


@pytest.mark.django_db
def test_an_event_expires_when_it_leaves_its_window(org):
    late = log_activity(
        org.rita,
        kind="call",
        subject="Forgot to log",
        occurred_at=timezone.now() - dt.timedelta(days=4),
        via=Via.FORM,
    )
    violation = Violation.objects.get(rule="logging_lag", activity=late)  # the write itself found it
    assert violation.status == ViolationStatus.OPEN

    run = evaluate(timezone.now() + dt.timedelta(days=8))

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.EXPIRED
    assert violation.live is False
    assert run.expired >= 1


@pytest.mark.django_db
def test_evaluating_a_moment_before_the_latest_run_is_refused(org):
    evaluate()
    with pytest.raises(EvaluationOrderError, match="already evaluated"):
        evaluate(timezone.now() - dt.timedelta(days=1))


@pytest.mark.django_db
def test_switching_a_rule_off_expires_its_live_violations(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    document = copy.deepcopy(current_policy().document)
    document["rules"]["no_next_step"]["enabled"] = False

    evaluate(timezone.now() + dt.timedelta(minutes=5), policy=Policy(version=7, document=document))

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.EXPIRED
    assert violation.resolved_via == "policy"
    assert violation.live is False


@pytest.mark.django_db
def test_a_snoozed_deal_is_off_the_stale_clocks_but_not_off_the_other_rules(org):
    old = create_opportunity(
        org.ravi,
        name="Dormant",
        account=org.acme,
        stage=stage("Qualification"),
        via=Via.FORM,
        at=timezone.now() - dt.timedelta(days=90),
    )
    stale = {"stale_touch", "stale_update", "stale_progress"}
    before = find_all(timezone.now())
    assert all(any(f.opportunity_id == old.pk for f in before[rule]) for rule in stale)

    Snooze.objects.create(
        opportunity=old,
        until=timezone.localdate() + dt.timedelta(days=10),
        reason="Budget freeze until March",
    )

    after = find_all(timezone.now())
    assert not any(f.opportunity_id == old.pk for rule in stale for f in after[rule])
    assert any(f.opportunity_id == old.pk for f in after["no_next_step"])
