"""The accountability loop: offenses from repeated violations, a ladder of consequences with
owners and deadlines, follow-through, disputes, acknowledgements, all on the record."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.utils import timezone

from truepipe.accountability.models import (
    Consequence,
    ConsequenceState,
    Dispute,
    DisputeState,
    Offense,
    OffenseStatus,
    PolicyAcknowledgement,
)
from truepipe.accountability.services import (
    acknowledge_offense,
    acknowledge_policy,
    apply_consequence,
    dispute_offense,
    resolve_dispute,
    waive_consequence,
)
from truepipe.audit.log import trail, verify
from truepipe.audit.models import AuditEntry
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.hygiene.engine import end_of_day, evaluate
from truepipe.hygiene.policy import current_policy, publish_policy

LADDER = [
    "Written warning and coaching conversation",
    "Hold on reimbursement of phone, fuel and entertainment expenses",
    "Formal performance review (can lead to termination)",
]


def _policy(**accountability) -> None:
    """A strict policy: one high-severity violation left three days is an offense. Only the
    rules' own clocks make offenses here: the weekly score is switched off."""
    document = copy.deepcopy(current_policy().document)
    document["accountability"] = {
        "weekly_score_below": 0,
        "grace_days": 3,
        "min_unresolved": 1,
        **accountability,
    }
    publish_policy(None, document, note="test")


def _nights(*days_ahead: int) -> None:
    """Nightly evaluations that many days from now, a week apart in the tests (one ISO week each)."""
    for days in days_ahead:
        evaluate(timezone.now() + dt.timedelta(days=days))


def _ravis(org) -> list[Offense]:
    return list(Offense.objects.filter(rep=org.ravi).order_by("day"))


def _consequence(offense: Offense) -> Consequence:
    return offense.consequences.get(replaced_by__isnull=True)


@pytest.fixture
def three_weeks(org):
    """Ravi leaves his Acme renewal untouched for weeks: a high-severity stale deal, then past due."""
    _policy()
    _nights(20, 27, 34, 41)
    return _ravis(org)


@pytest.mark.django_db
def test_repeated_unresolved_violations_become_first_second_and_third_offenses(org, three_weeks):
    assert [o.level for o in three_weeks] == [1, 2, 3]
    assert [_consequence(o).name for o in three_weeks] == LADDER
    assert {_consequence(o).owner for o in three_weeks} == {org.maya}
    first = three_weeks[0]
    assert _consequence(first).deadline == first.day + dt.timedelta(days=7)
    assert "high-severity violation" in first.summary and "unresolved over 3 days" in first.summary
    assert set(first.violations.values_list("rule", flat=True)) >= {"stale_touch"}
    assert not Offense.objects.filter(rep__in=[org.rita, org.maya, org.vera]).exists()
    actions = list(AuditEntry.objects.filter(subject=f"offense:{first.pk}").values_list("action", flat=True))
    assert actions == ["offense.found"]
    assert verify().ok


@pytest.mark.django_db
def test_running_a_night_again_in_the_same_week_creates_nothing(org):
    _policy()
    _nights(20, 27)
    before = (Offense.objects.count(), Consequence.objects.count(), AuditEntry.objects.count())
    assert before[0] >= 1

    later_that_day = end_of_day(timezone.localtime(timezone.now() + dt.timedelta(days=27)).date())
    evaluate(later_that_day)

    assert (Offense.objects.count(), Consequence.objects.count()) == before[:2]
    assert AuditEntry.objects.count() == before[2]


@pytest.mark.django_db
def test_maya_applies_one_and_waives_another_with_a_reason(org, three_weeks):
    warning, hold, _ = (_consequence(o) for o in three_weeks)

    apply_consequence(org.maya, warning, "Warned in our 1:1; agreed to log every call the same day")
    with pytest.raises(InvalidInput, match="Say why"):
        waive_consequence(org.maya, hold, "  ")
    waive_consequence(org.maya, hold, "Customer freeze this quarter, not his doing")

    warning.refresh_from_db()
    hold.refresh_from_db()
    assert (warning.state, warning.decided_by, warning.applied_on) == (
        ConsequenceState.APPLIED,
        org.maya,
        timezone.localdate(),
    )
    assert (hold.state, hold.note) == (ConsequenceState.WAIVED, "Customer freeze this quarter, not his doing")
    # Its deadline had passed by the last night: escalated to Vera, still Maya's to decide.
    assert [e.action for e in trail(hold)] == [
        "consequence.created",
        "consequence.escalated",
        "consequence.waived",
    ]
    with pytest.raises(InvalidInput, match="only a pending one can be applied"):
        apply_consequence(org.maya, hold, "Changed my mind")


@pytest.mark.django_db
def test_only_someone_above_the_rep_decides_never_the_rep_or_another_team(org, three_weeks):
    warning = _consequence(three_weeks[0])

    for outsider in (org.ravi, org.rita, org.omar, org.eli, org.dana):
        with pytest.raises(NotAllowed):
            apply_consequence(outsider, warning, "Done")
    apply_consequence(org.vera, warning, "Vera held the conversation herself")
    assert Consequence.objects.get(pk=warning.pk).decided_by == org.vera


@pytest.mark.django_db
def test_a_consequence_left_past_its_deadline_escalates_to_the_managers_manager_once(org):
    _policy()
    _nights(20, 27)
    warning = _consequence(_ravis(org)[0])
    assert warning.escalated_to is None

    _nights(35, 36)  # past the 7-day deadline, twice

    warning.refresh_from_db()
    assert (warning.state, warning.escalated_to) == (ConsequenceState.PENDING, org.vera)
    assert [e.action for e in trail(warning)].count("consequence.escalated") == 1
    apply_consequence(org.vera, warning, "Vera stepped in")


@pytest.mark.django_db
def test_an_upheld_dispute_overturns_the_offense_and_moves_the_later_ones_down(org, three_weeks):
    first, second, third = three_weeks
    dispute = dispute_offense(org.ravi, first, "The deal was on hold at the customer's request")
    assert _consequence(first).state == ConsequenceState.DISPUTED
    assert dispute.resolver == org.maya

    with pytest.raises(NotAllowed):
        resolve_dispute(org.ravi, dispute, upheld=True, note="I agree with myself")
    resolve_dispute(org.maya, dispute, upheld=True, note="Confirmed with the customer")

    first.refresh_from_db()
    assert first.status == OffenseStatus.OVERTURNED
    assert first.consequences.get().state == ConsequenceState.OVERTURNED
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.level, third.level) == (1, 2)
    assert [_consequence(o).name for o in (second, third)] == LADDER[:2]
    replaced = Consequence.objects.get(offense=second, replaced_by__isnull=False)
    assert (replaced.name, replaced.state) == (LADDER[1], ConsequenceState.OVERTURNED)
    assert Dispute.objects.get(pk=dispute.pk).state == DisputeState.UPHELD
    assert "offense.overturned" in [e.action for e in trail(first)]
    assert verify().ok


@pytest.mark.django_db
def test_a_rejected_dispute_puts_the_consequence_back(org, three_weeks):
    warning = _consequence(three_weeks[0])
    deadline = warning.deadline
    dispute = dispute_offense(org.ravi, three_weeks[0], "I was on holiday")

    resolve_dispute(org.maya, dispute, upheld=False, note="Holiday was after the deal went stale")

    warning.refresh_from_db()
    assert warning.state == ConsequenceState.PENDING and warning.deadline >= deadline
    assert Offense.objects.get(pk=three_weeks[0].pk).status == OffenseStatus.ACTIVE


@pytest.mark.django_db
def test_a_dispute_needs_the_rep_a_reason_and_the_window(org, three_weeks):
    offense = three_weeks[0]
    with pytest.raises(NotAllowed):
        dispute_offense(org.maya, offense, "On his behalf")
    with pytest.raises(InvalidInput, match="Say why"):
        dispute_offense(org.ravi, offense, "")
    Offense.objects.filter(pk=offense.pk).update(detected_at=timezone.now() - dt.timedelta(days=8))
    with pytest.raises(InvalidInput, match="window to dispute closed"):
        dispute_offense(org.ravi, offense, "Too late, I know")


@pytest.mark.django_db
def test_the_rep_acknowledges_an_offense_and_each_policy_version(org, three_weeks):
    acknowledge_offense(org.ravi, three_weeks[0])
    with pytest.raises(NotAllowed):
        acknowledge_offense(org.rita, three_weeks[1])
    version = current_policy().version
    acknowledge_policy(org.ravi)
    acknowledge_policy(org.ravi)  # once per version

    assert Offense.objects.get(pk=three_weeks[0].pk).acknowledged_at is not None
    assert list(PolicyAcknowledgement.objects.values_list("user__username", "version")) == [("ravi", version)]
    _policy(grace_days=2)
    assert not PolicyAcknowledgement.objects.filter(user=org.ravi, version=current_policy().version).exists()


@pytest.mark.django_db
def test_a_low_weekly_score_is_an_offense_too(org):
    _policy(weekly_score_below=101, offense_severity=3, min_unresolved=50)
    _nights(1)

    offense = Offense.objects.get(rep=org.ravi)
    assert offense.unresolved == 0 and offense.weekly_score is not None
    assert "7-day score" in offense.summary and "(below 101)" in offense.summary


@pytest.mark.django_db
def test_a_policy_with_a_broken_ladder_is_refused_naming_each_problem(org):
    document = copy.deepcopy(current_policy().document)
    document["accountability"] = {
        "window_days": -1,
        "ladder": [{"name": "", "deadline_days": 0, "owner": "hr", "notify": ["payroll"]}],
    }
    with pytest.raises(InvalidInput) as refused:
        publish_policy(org.ada, document)
    assert set(refused.value.fields) == {
        "accountability.window_days",
        "accountability.ladder.1.name",
        "accountability.ladder.1.deadline_days",
        "accountability.ladder.1.owner",
        "accountability.ladder.1.notify",
    }


@pytest.mark.django_db
def test_ravis_offenses_are_seen_by_ravi_his_managers_exec_and_admin_only(org, three_weeks):
    from django.contrib.auth.models import AnonymousUser

    from truepipe.core.visibility import visible

    sees = {
        person.username: visible(person, Offense).filter(rep=org.ravi).count()
        for person in (org.ravi, org.maya, org.vera, org.omar, org.rita, org.ada, org.eli, org.dana)
    }
    assert sees == {"ravi": 3, "maya": 3, "vera": 3, "omar": 0, "rita": 0, "ada": 3, "eli": 3, "dana": 0}
    assert not visible(AnonymousUser(), Consequence).exists()
    assert visible(org.maya, Consequence).count() == 3
    assert not visible(org.ravi, Offense, "change").exists()


@pytest.mark.django_db
def test_the_default_policy_forgives_a_single_lapse(org):
    """Out of the box an offense takes three high-severity violations left a week (or a very low
    week): one stale deal left a fortnight is not one."""
    _nights(20, 27, 34)
    assert not Offense.objects.filter(rep=org.ravi).exists()


@pytest.mark.django_db
def test_a_disputed_offense_moved_down_the_ladder_keeps_waiting_and_a_rejection_restores_the_new_step(
    org, three_weeks
):
    first, second, _ = three_weeks
    on_first = dispute_offense(org.ravi, first, "Deal was on hold")
    on_second = dispute_offense(org.ravi, second, "Same hold, same deal")

    resolve_dispute(org.maya, on_first, upheld=True, note="Hold confirmed")
    replacement = _consequence(Offense.objects.get(pk=second.pk))
    assert (replacement.level, replacement.state) == (1, ConsequenceState.DISPUTED)
    assert Dispute.objects.get(pk=on_second.pk).consequence == replacement

    resolve_dispute(org.maya, on_second, upheld=False, note="The second week was not on hold")
    replacement.refresh_from_db()
    assert replacement.state == ConsequenceState.PENDING
    old = Consequence.objects.get(offense=second, replaced_by=replacement)
    assert old.state == ConsequenceState.OVERTURNED  # the expense hold does not come back


@pytest.mark.django_db
def test_the_end_of_sunday_and_monday_morning_runs_give_one_offense_not_two(org):
    """The nightly job evaluates the end of yesterday, then now: on a Monday night the two moments
    fall in two calendar weeks, but a rep gets one step of the ladder, not two minutes apart."""
    _policy()
    _nights(20)
    first_night = timezone.localtime(timezone.now() + dt.timedelta(days=27)).date()
    sunday = first_night + dt.timedelta(days=(6 - first_night.weekday()) % 7)
    evaluate(end_of_day(sunday))
    evaluate(end_of_day(sunday) + dt.timedelta(hours=2))  # Monday, 02:00

    assert Offense.objects.filter(rep=org.ravi).count() == 1


@pytest.mark.django_db
def test_the_violations_counted_toward_an_offense_are_those_the_policy_counts_at_any_moment(
    org, three_weeks, settings
):
    """The night counts each rep's violations from the open ones and those closed after the
    moment; the same as counting every violation with the policy's own condition, now or on a
    back-filled day, with a waiver and violations closed later in the mix."""
    from django.db.models import Count

    from truepipe.accountability.offenses import _counted_per_rep, _counting
    from truepipe.core.models import Via
    from truepipe.hygiene.models import Violation, ViolationStatus
    from truepipe.hygiene.services import waive_violation
    from truepipe.pipeline.services import update_opportunity

    start = timezone.now()
    # Ravi finally moves his renewal's close date; the night of day 48 resolves what that fixed.
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    update_opportunity(
        org.ravi, org.ravi_open, {"close_date": (start + dt.timedelta(days=90)).date()}, via=Via.FORM
    )
    evaluate(start + dt.timedelta(days=48))
    waived = Violation.objects.filter(rep=org.ravi, status=ViolationStatus.OPEN).order_by("pk").first()
    waive_violation(org.maya, waived, "Customer asked us to wait until the audit is done")
    rules = current_policy().accountability
    moments = [start + dt.timedelta(days=days) for days in (1, 24, 30, 38, 45)]
    assert Violation.objects.filter(closed_at__gt=moments[1]).exclude(status=ViolationStatus.WAIVED).exists()
    for moment in moments:
        expected = dict(
            Violation.objects.filter(_counting(rules, moment))
            .values("rep_id")
            .annotate(n=Count("id"))
            .values_list("rep_id", "n")
        )
        assert _counted_per_rep(rules, moment) == expected, moment
    assert any(_counted_per_rep(rules, moment) for moment in moments)
