"""The rep's daily queue: the few fixes that matter most, cut to a time box, with progress and streaks;
and snoozes, which take a deal off the stale clocks until a date, within the policy's limits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import stage
from truepipe.accounts.models import Account
from truepipe.accounts.services import create_account
from truepipe.activities.services import log_activity
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.models import Via
from truepipe.hygiene import policy as policy_module
from truepipe.hygiene.engine import evaluate
from truepipe.hygiene.models import QueueDay, Snooze, Violation, ViolationStatus
from truepipe.hygiene.policy import publish_policy
from truepipe.hygiene.queue import build_queue, review_item, set_queue_minutes
from truepipe.hygiene.services import cancel_snooze, snooze_opportunity
from truepipe.pipeline.models import Opportunity
from truepipe.pipeline.services import create_opportunity, mark_lost, update_opportunity

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    """Each test publishes its own policy versions (numbered from 1 again after the rollback)."""
    policy_module._cache.clear()
    yield
    policy_module._cache.clear()


TODAY = timezone.localdate


def in_days(days: int) -> dt.date:
    return TODAY() + dt.timedelta(days=days)


def account_of(rep) -> Account:
    return Account.objects.filter(owner=rep).first() or create_account(
        rep, name=f"{rep.first_name} Industries", domains=[f"{rep.username}.example"], via=Via.FORM
    )


def deal_untouched_for(rep, name: str, days: int, amount: int = 50_000, **fields) -> Opportunity:
    """A tidy Proposal deal (next step and close date ahead) that nobody has touched for `days` days:
    created back then (a back-dated write, so only the next full evaluation looks at it)."""
    values = {
        "account": account_of(rep),
        "stage": stage("Proposal"),
        "amount": Decimal(amount),
        "close_date": in_days(30),
        "next_step": "Call the champion",
        "next_step_date": in_days(7),
    }
    values.update(fields)
    return create_opportunity(
        rep, name=name, via=Via.IMPORT, at=timezone.now() - dt.timedelta(days=days), **values
    )


def deal_without_next_step(rep, name: str, amount: int = 50_000) -> Opportunity:
    """A fresh deal with no next step: its own write opens the violation at once."""
    return create_opportunity(
        rep, name=name, stage=stage("Qualification"), account=account_of(rep), amount=Decimal(amount),
        close_date=in_days(30), via=Via.FORM,
    )  # fmt: skip


def open_rules(deal: Opportunity) -> set[str]:
    return set(
        Violation.objects.filter(opportunity=deal, live=True, status=ViolationStatus.OPEN).values_list(
            "rule", flat=True
        )
    )


def titles(queue) -> list[str]:
    return [f"{item.deal.name}: {item.rule.key}" for item in queue.items]


# --- ranking -----------------------------------------------------------------------------------


def test_the_costliest_problems_come_first_severity_times_deal_size(org):
    tiny = deal_untouched_for(org.rita, "Tiny stale", 20, amount=5_000)
    huge = deal_untouched_for(org.rita, "Huge stale", 20, amount=400_000)
    evaluate()
    huge_bare = deal_without_next_step(org.rita, "Huge, no next step", amount=400_000)

    queue = build_queue(org.rita)

    # High severity on a big deal, then medium on a big deal, then high on a small one.
    assert titles(queue) == [
        "Huge stale: stale_touch",
        "Huge, no next step: no_next_step",
        "Tiny stale: stale_touch",
    ]
    first, second, third = queue.items
    assert first.rank.value > 1 and third.rank.value == 0.5  # small deals weigh at least half
    assert first.rank.points == 6 and second.rank.points == 3
    assert [item.position for item in queue.items] == [1, 2, 3]
    assert {tiny.pk, huge.pk, huge_bare.pk} == {item.deal.pk for item in queue.items}


def test_of_two_equal_problems_the_older_one_comes_first(org):
    old = deal_untouched_for(org.rita, "Rotting for weeks", 28)
    newer = deal_untouched_for(org.rita, "Just went stale", 20)
    evaluate(timezone.now() - dt.timedelta(days=10))  # only the older deal was stale back then
    evaluate()

    queue = build_queue(org.rita)

    assert [item.deal for item in queue.items] == [old, newer]
    assert queue.items[0].rank.age_days == 10
    assert queue.items[0].rank.age > queue.items[1].rank.age == 1.0


def test_each_item_says_what_to_fix_how_long_it_takes_and_why_the_rule_exists(org):
    deal = deal_untouched_for(org.rita, "Initech rollout", 20, close_date=in_days(-3))
    evaluate()

    queue = build_queue(org.rita)

    by_rule = {item.rule.key: item for item in queue.items}
    past_due, stale = by_rule["past_due_close"], by_rule["stale_touch"]
    assert past_due.deal == deal
    assert past_due.fix_minutes == 1 and stale.fix_minutes == 3
    assert past_due.detail.startswith("Close date") and "passed 3 days ago" in past_due.detail
    assert "customer" in stale.rule.explanation and "{" not in stale.rule.explanation
    assert past_due.actions == ("close_date", "lost")
    assert stale.actions == ("touch", "snooze", "lost")


# --- the time box ------------------------------------------------------------------------------


@pytest.fixture
def ritas_backlog(org):
    """Six stale deals (3 minutes each, biggest first) and a small one without a next step (1 minute)."""
    deals = [deal_untouched_for(org.rita, f"Stale {n}", 20, amount=90_000 - n * 1_000) for n in range(6)]
    evaluate()
    small = deal_without_next_step(org.rita, "Small, no next step", amount=1_000)
    return deals, small


def test_the_queue_is_cut_to_the_policys_fifteen_minutes(org, ritas_backlog):
    deals, _ = ritas_backlog
    queue = build_queue(org.rita)
    assert queue.box_minutes == 15 and not queue.personal_box
    assert [item.deal for item in queue.items] == deals[:5]
    assert queue.planned_minutes == 15
    assert queue.later == 2  # the sixth stale deal and the small one wait for another day


def test_an_item_that_does_not_fit_is_passed_over_for_a_smaller_one(org, ritas_backlog):
    deals, small = ritas_backlog
    set_queue_minutes(org.rita, org.rita, 16)
    queue = build_queue(org.rita)
    assert [item.deal for item in queue.items] == [*deals[:5], small]
    assert queue.planned_minutes == 16


def test_a_reps_own_time_box_overrides_the_policy(org, ritas_backlog):
    publish_policy(org.ada, {"queue": {"minutes": 9}})
    assert build_queue(org.rita, record=False).box_minutes == 9
    set_queue_minutes(org.rita, org.rita, 6)
    queue = build_queue(org.rita)
    assert (queue.box_minutes, queue.personal_box, len(queue.items)) == (6, True, 2)
    set_queue_minutes(org.rita, org.rita, None)  # back to the policy's
    assert build_queue(org.rita).box_minutes == 9


def test_changing_the_time_box_replans_today_keeping_what_is_done(org, ritas_backlog):
    deals, _ = ritas_backlog
    build_queue(org.rita)
    log_activity(org.rita, kind="call", subject="Caught up", opportunity=deals[0], via=Via.FORM)

    set_queue_minutes(org.rita, org.rita, 6)

    queue = build_queue(org.rita)
    assert [item.deal for item in queue.items] == deals[:2]
    assert [item.done for item in queue.items] == [True, False]


def test_the_rep_their_manager_and_an_admin_may_set_the_time_box_nobody_else(org):
    assert set_queue_minutes(org.maya, org.rita, 20) == 20
    assert set_queue_minutes(org.vera, org.rita, 25) == 25  # the manager's manager
    assert set_queue_minutes(org.ada, org.rita, 30) == 30
    for outsider in (org.omar, org.ravi, org.eli, org.dana):
        with pytest.raises(NotAllowed):
            set_queue_minutes(outsider, org.rita, 10)
    for wrong in (0, 4, 121, "soon"):
        with pytest.raises(InvalidInput) as refused:
            set_queue_minutes(org.rita, org.rita, wrong)
        assert "minutes" in refused.value.fields


# --- lessons -----------------------------------------------------------------------------------


def test_lessons_that_cannot_be_fixed_are_for_information_not_tasks(org):
    # Ravi's "Acme expansion" was created straight as won with no history: a surprise win.
    queue = build_queue(org.ravi)
    [group] = queue.fyi
    assert (group.rule.key, group.rule.fix_minutes, group.count) == ("surprise_win", 0, 1)
    assert group.items[0].deal == org.ravi_won and group.items[0].detail.startswith("Surprise win (")
    assert all(item.rule.key != "surprise_win" for item in queue.items)


def test_lessons_are_grouped_by_rule_showing_the_latest_few(org):
    for days in range(3, 8):
        log_activity(
            org.rita, kind="call", subject=f"Call {days} days ago", via=Via.FORM,
            occurred_at=timezone.now() - dt.timedelta(days=days),
        )  # fmt: skip
    [group] = build_queue(org.rita).fyi
    assert (group.rule.key, group.count, group.more) == ("logging_lag", 5, 2)
    assert [item.violation.activity.subject for item in group.items] == [
        "Call 7 days ago",
        "Call 6 days ago",
        "Call 5 days ago",
    ]


# --- progress ----------------------------------------------------------------------------------


def test_a_fix_through_the_service_completes_the_item_and_moves_the_progress(org, ritas_backlog):
    deals, _ = ritas_backlog
    before = build_queue(org.rita)
    assert (before.done_count, before.total, before.minutes_left) == (0, 5, 15)

    log_activity(org.rita, kind="meeting", subject="Demo with the buyer", opportunity=deals[1], via=Via.FORM)

    after = build_queue(org.rita)
    assert [item.done for item in after.items] == [False, True, False, False, False]
    assert (after.done_count, after.minutes_left, after.percent) == (1, 12, 20)
    assert after.items[1].done_label == "Fixed"
    assert not after.cleared


def test_the_days_plan_is_fixed_at_the_first_look_new_problems_wait_for_tomorrow(org):
    deal_without_next_step(org.rita, "First")
    assert len(build_queue(org.rita).items) == 1
    deal_without_next_step(org.rita, "Second")
    queue = build_queue(org.rita)
    assert [item.deal.name for item in queue.items] == ["First"]
    assert queue.later == 1
    assert QueueDay.objects.filter(rep=org.rita).count() == 1


def test_a_manager_looking_at_the_queue_records_nothing(org, ritas_backlog):
    queue = build_queue(org.rita, record=False)
    assert len(queue.items) == 5
    assert not QueueDay.objects.exists()


def test_marking_a_deal_lost_or_snoozing_it_clears_its_items(org):
    lost = deal_untouched_for(org.rita, "Going nowhere", 20)
    waiting = deal_untouched_for(org.rita, "Customer on holiday", 20)
    evaluate()
    build_queue(org.rita)

    mark_lost(org.rita, [lost], "No budget this year", via=Via.FORM)
    snooze_opportunity(org.rita, waiting, in_days(10), "Back from holiday on the 10th")

    queue = build_queue(org.rita)
    assert queue.cleared and queue.done_count == 2
    assert {item.deal.name: item.done_label for item in queue.items} == {
        "Going nowhere": "Deal marked lost",
        "Customer on holiday": "Snoozed: off the stale clocks for now",
    }


def test_a_pushed_close_date_is_explained_not_edited_and_the_explanation_completes_it(org):
    deal = deal_untouched_for(org.rita, "Slipping", 1)
    for push in (40, 55):
        update_opportunity(org.rita, deal, {"close_date": in_days(push)}, via=Via.FORM)
    [item] = [item for item in build_queue(org.rita).items if item.rule.key == "close_pushed"]
    assert item.actions[0] == "review"

    with pytest.raises(InvalidInput) as refused:
        review_item(org.rita, item.violation, "  ")
    assert "note" in refused.value.fields
    with pytest.raises(NotAllowed):
        review_item(org.maya, item.violation, "Not her queue")
    note = review_item(org.rita, item.violation, "Procurement moved the signing to next quarter.")

    assert note.opportunity == deal and note.subject == "Reviewed: Close date keeps slipping"
    [again] = [i for i in build_queue(org.rita).items if i.pk == item.pk]
    assert again.done and again.violation.status == ViolationStatus.OPEN  # still counts; explained
    tomorrow = timezone.now() + dt.timedelta(days=1)
    assert item.pk not in [i.pk for i in build_queue(org.rita, tomorrow).items]


# --- streaks -----------------------------------------------------------------------------------


def _morning(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9, 0), tzinfo=dt.UTC)


def _a_day_with_one_fix(rep, day: dt.date, name: str) -> tuple[int, int]:
    """On `day`: a deal without a next step appears, the rep opens the queue and fixes it.
    Returns the streak shown in the morning and once the queue is cleared."""
    deal = deal_without_next_step(rep, name)
    morning = build_queue(rep, _morning(day))
    assert morning.total == 1 and not morning.cleared
    update_opportunity(rep, deal, {"next_step": "Call", "next_step_date": in_days(3)}, via=Via.FORM)
    cleared = build_queue(rep, _morning(day) + dt.timedelta(minutes=20))
    assert cleared.cleared
    return morning.streak, cleared.streak


def test_the_streak_counts_working_days_with_a_cleared_queue_skipping_days_off(org):
    friday = TODAY() - dt.timedelta(days=(TODAY().weekday() - 4) % 7 + 14)
    monday, tuesday, wednesday = (friday + dt.timedelta(days=n) for n in (3, 4, 5))

    assert _a_day_with_one_fix(org.rita, friday, "Friday") == (0, 1)
    # The weekend neither breaks nor grows it.
    assert _a_day_with_one_fix(org.rita, monday, "Monday") == (1, 2)
    # Tuesday: the queue was never opened. Wednesday starts again from one.
    assert _a_day_with_one_fix(org.rita, wednesday, "Wednesday") == (0, 1)
    assert tuesday not in set(QueueDay.objects.values_list("day", flat=True))


def test_a_day_with_nothing_to_fix_counts_once_the_rep_has_looked(org):
    monday = TODAY() - dt.timedelta(days=TODAY().weekday() + 14)
    queue = build_queue(org.rita, _morning(monday))
    assert (queue.total, queue.cleared, queue.streak) == (0, True, 1)


def test_days_off_come_from_the_reps_own_working_days(org):
    profile = org.rita.profile
    profile.working_days = [0, 2, 4]  # Monday, Wednesday, Friday
    profile.save()
    monday = TODAY() - dt.timedelta(days=TODAY().weekday() + 14)
    assert _a_day_with_one_fix(org.rita, monday, "Monday") == (0, 1)
    assert _a_day_with_one_fix(org.rita, monday + dt.timedelta(days=2), "Wednesday") == (1, 2)
    thursday = monday + dt.timedelta(days=3)
    assert _a_day_with_one_fix(org.rita, thursday, "Thursday") == (2, 2)  # a day off: no change
    assert _a_day_with_one_fix(org.rita, thursday + dt.timedelta(days=1), "Friday") == (2, 3)


# --- query budget ------------------------------------------------------------------------------


def grow(rep, start: int, stop: int) -> None:
    for n in range(start, stop):
        deal_untouched_for(
            rep, f"Deal {n}", 40 + n % 30, amount=1_000 + 97 * n, close_date=in_days(n % 5 - 2)
        )


def queries_for(rep, *, record: bool) -> int:
    with CaptureQueriesContext(connection) as queries:
        build_queue(rep, record=record)
    return len(queries)


def test_building_a_queue_costs_the_same_queries_for_5_and_500_deals(org):
    grow(org.rita, 0, 5)
    evaluate()
    few = (queries_for(org.rita, record=True), queries_for(org.rita, record=True))
    few_look = queries_for(org.rita, record=False)
    QueueDay.objects.all().delete()

    grow(org.rita, 5, 500)
    evaluate(timezone.now() + dt.timedelta(minutes=1))
    assert Violation.objects.filter(rep=org.rita, live=True).count() > 1000
    many = (queries_for(org.rita, record=True), queries_for(org.rita, record=True))

    assert many == few  # the first look of the day (plans) and a later one (reads the plan)
    assert queries_for(org.rita, record=False) == few_look


# --- snoozes -----------------------------------------------------------------------------------


def test_a_snooze_clears_the_deals_stale_violations_at_once_and_says_who(org):
    deal = deal_untouched_for(org.ravi, "Waiting on legal", 70)
    evaluate()
    assert {"stale_touch", "stale_update", "stale_progress"} <= open_rules(deal)

    snooze = snooze_opportunity(org.ravi, deal, in_days(14), "Legal review until the 14th")

    assert open_rules(deal).isdisjoint({"stale_touch", "stale_update", "stale_progress"})
    cleared = Violation.objects.get(opportunity=deal, rule="stale_touch")
    assert cleared.status == ViolationStatus.RESOLVED and cleared.resolved_by == org.ravi
    assert "snoozed until" in cleared.resolution
    assert (snooze.created_by, snooze.reason) == (org.ravi, "Legal review until the 14th")
    # The nightly evaluation does not reopen them while the snooze lasts...
    evaluate(timezone.now() + dt.timedelta(hours=1))
    assert "stale_touch" not in open_rules(deal)
    # ...and they come back once it has passed.
    evaluate(timezone.now() + dt.timedelta(days=16))
    assert "stale_touch" in open_rules(deal)


def test_cancelling_a_snooze_brings_the_stale_violations_back_at_once(org):
    deal = deal_untouched_for(org.ravi, "Waiting on legal", 25)
    evaluate()
    snooze = snooze_opportunity(org.ravi, deal, in_days(5), "Legal review")
    assert "stale_touch" not in open_rules(deal)

    cancel_snooze(org.ravi, snooze)

    assert "stale_touch" in open_rules(deal)
    snooze.refresh_from_db()
    assert snooze.cancelled_by == org.ravi and snooze.cancelled_at is not None
    with pytest.raises(InvalidInput, match="already cancelled"):
        cancel_snooze(org.ravi, snooze)


def test_a_snooze_needs_a_reason_and_a_date_within_the_policys_limit(org):
    cases = [
        (in_days(7), "   ", "reason"),
        (TODAY(), "Holiday", "until"),
        (in_days(31), "Holiday", "until"),  # the default limit is 30 days
    ]
    for until, reason, field in cases:
        with pytest.raises(InvalidInput) as refused:
            snooze_opportunity(org.ravi, org.ravi_open, until, reason)
        assert field in refused.value.fields
    assert snooze_opportunity(org.ravi, org.ravi_open, in_days(30), "Holiday").until == in_days(30)


def test_a_rep_may_have_only_so_many_deals_snoozed_at_once(org):
    publish_policy(org.ada, {"snooze": {"max_active_per_rep": 2}})
    first, second, third = (deal_untouched_for(org.ravi, f"Deal {n}", 1) for n in range(3))
    snooze_opportunity(org.ravi, first, in_days(5), "Holiday")
    snooze_opportunity(org.ravi, second, in_days(5), "Holiday")
    with pytest.raises(InvalidInput, match="most the policy allows") as refused:
        snooze_opportunity(org.ravi, third, in_days(5), "Holiday")
    assert "until" in refused.value.fields

    # Snoozing a snoozed deal again replaces its snooze: it does not take another slot.
    snooze_opportunity(org.ravi, second, in_days(9), "Holiday, extended")
    [replacement, replaced] = Snooze.objects.filter(opportunity=second).order_by("-created_at", "-id")
    assert (replacement.until, replacement.cancelled_at) == (in_days(9), None)
    assert (replaced.until, replaced.cancelled_by) == (in_days(5), org.ravi)


def test_only_someone_who_may_change_the_deal_may_snooze_it(org):
    assert snooze_opportunity(org.maya, org.ravi_open, in_days(5), "Covering for Ravi").created_by == org.maya
    assert snooze_opportunity(org.ada, org.ravi_open, in_days(6), "Admin cleanup").created_by == org.ada
    for outsider in (org.omar, org.rita, org.eli, org.dana):
        with pytest.raises(NotAllowed):
            snooze_opportunity(outsider, org.ravi_open, in_days(5), "Not mine")


def test_a_closed_deal_cannot_be_snoozed(org):
    with pytest.raises(InvalidInput, match="only open deals") as refused:
        snooze_opportunity(org.ravi, org.ravi_won, in_days(5), "Nothing to wait for")
    assert "until" in refused.value.fields
