"""The deals' activity clocks kept between nights agree with the clocks read from every activity."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import stage
from tests.test_hygiene_engine import _generated_org
from truepipe.activities.models import Activity, ActivityKind, ActivitySource
from truepipe.activities.services import delete_activity, log_activity, log_captured, update_activity
from truepipe.core.models import Via
from truepipe.hygiene import clocks
from truepipe.hygiene.engine import KEPT_STATE, EvalContext, evaluate, find_all, state_sql
from truepipe.hygiene.models import DealClockMark, DirtyDeal, NewActivity, Violation, ViolationStatus
from truepipe.hygiene.policy import current_policy, publish_policy
from truepipe.hygiene.services import snooze_opportunity
from truepipe.pipeline.models import Opportunity, OpportunityChange
from truepipe.pipeline.services import (
    create_opportunity,
    delete_opportunity,
    update_opportunity,
    update_stage,
)


def _state(moment: dt.datetime, *, cached: bool) -> list[tuple]:
    """Every deal's state as of the moment, its activity clocks from the cache or from the activities."""
    ctx = EvalContext(as_of=moment, policy=current_policy())
    ctx.clock_table = clocks.CLOCK_TABLE if cached else None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({state_sql(ctx)}) s ORDER BY id")
        # SQLite hands a column declared as a timestamp back as a datetime, an expression's as
        # the text it stores: compare the text.
        return [tuple(str(v) if isinstance(v, dt.datetime) else v for v in row) for row in cursor.fetchall()]


def _kept_clocks_agree(moment: dt.datetime) -> None:
    from_activities = _state(moment, cached=False)
    assert from_activities, "the organisation has deals"
    assert _state(moment, cached=True) == from_activities


def _mark() -> DealClockMark:
    return DealClockMark.objects.get()


@pytest.mark.django_db
def test_night_after_night_the_kept_clocks_agree_with_the_clocks_read_from_every_activity(org):
    """Ravi, Rita and Owen log, move, delete and back-date activities, and move and edit deals,
    between nights, through the services and behind them; each night recomputes only the deals
    that moved, and agrees."""
    moment = _generated_org(org)
    logged = Activity.objects.filter(opportunity__isnull=False, deleted_at__isnull=True).order_by("id")
    deals = list(Opportunity.objects.filter(pk__in=logged.values("opportunity_id")).order_by("id"))
    first, second = deals[0], deals[1]
    third = next(d for d in deals[2:] if d.owner_id == second.owner_id)
    fourth, fifth, sixth, seventh = [d for d in deals[2:] if d != third][:4]

    evaluate(moment)
    assert _mark().rebuilt and _mark().recomputed > 30
    assert not DirtyDeal.objects.exists()
    _kept_clocks_agree(moment)

    # Night 2: a call logged, one moved to another deal, one deleted, one edited behind the services.
    night = moment + dt.timedelta(days=1)
    call = log_activity(
        org.ravi,
        kind=ActivityKind.CALL,
        subject="Call",
        opportunity=first,
        via=Via.FORM,
        occurred_at=night - dt.timedelta(hours=3),
        logged_at=night - dt.timedelta(hours=2),
    )
    moved = Activity.objects.filter(opportunity=second).first()
    update_activity(moved.owner, moved, {"opportunity": third}, via=Via.FORM)
    gone = Activity.objects.filter(opportunity=fourth).first()
    delete_activity(gone.owner, gone, via=Via.FORM)
    behind = Activity.objects.filter(opportunity=fifth).first()
    Activity.objects.filter(pk=behind.pk).update(kind=ActivityKind.NOTE)
    # Progress through the service (its history row moves the progress and update clocks) and a
    # history row written behind it (an import's, say).
    update_opportunity(
        sixth.owner,
        sixth,
        {"amount": (sixth.amount or Decimal(0)) + 1000},
        via=Via.FORM,
        at=night - dt.timedelta(hours=1),
    )
    OpportunityChange.objects.create(
        opportunity=seventh,
        field="next_step",
        old_value="",
        new_value="Call back",
        changed_at=night - dt.timedelta(hours=4),
    )
    dirty = set(DirtyDeal.objects.values_list("opportunity_id", flat=True))
    assert dirty == {second.pk, third.pk, fourth.pk, fifth.pk, sixth.pk, seventh.pk}
    # The call only added an activity: its deal's kept clocks take it in without a re-read.
    assert set(NewActivity.objects.values_list("activity_id", flat=True)) == {call.pk}

    evaluate(night)
    assert not _mark().rebuilt
    assert _mark().recomputed == len(dirty)  # plus any deal whose clock moved by itself
    assert _mark().folded == 1
    assert not DirtyDeal.objects.exists() and not NewActivity.objects.exists()
    _kept_clocks_agree(night)

    # Night 3: nothing written at all.
    quiet = night + dt.timedelta(days=1)
    evaluate(quiet)
    assert (_mark().rebuilt, _mark().recomputed) == (False, 0)
    _kept_clocks_agree(quiet)

    # Night 4: only new activities. Two calls on one deal, a meeting booked for after the night,
    # an e-mail captured (a touch, not the rep's update), and a call logged then deleted.
    eighth, ninth, tenth, eleventh = [
        d for d in deals[2:] if d not in (third, fourth, fifth, sixth, seventh)
    ][:4]
    later = quiet + dt.timedelta(days=1)
    for hours in (5, 4):
        log_activity(
            eighth.owner,
            kind=ActivityKind.CALL,
            subject="Call",
            opportunity=eighth,
            via=Via.FORM,
            occurred_at=later - dt.timedelta(hours=hours),
            logged_at=later - dt.timedelta(hours=3),
        )
    # Captured: a meeting from a calendar, booked for after the night, and an e-mail.
    meeting, _ = log_captured(
        None,
        [
            {
                "kind": kind,
                "occurred_at": when,
                "subject": subject,
                "body": "",
                "source": source,
                "owner": deal.owner_id,
                "opportunity": deal.pk,
                "account": deal.account_id,
            }
            for kind, source, deal, when, subject in (
                (
                    ActivityKind.MEETING,
                    ActivitySource.CALENDAR,
                    ninth,
                    later + dt.timedelta(hours=20),
                    "Kick-off",
                ),
                (
                    ActivityKind.EMAIL,
                    ActivitySource.EMAIL,
                    tenth,
                    later - dt.timedelta(hours=6),
                    "Re: pricing",
                ),
            )
        ],
        [[], []],
        via=Via.EMAIL,
        logged_at=later - dt.timedelta(hours=2),
    )
    regretted = log_activity(
        eleventh.owner, kind=ActivityKind.CALL, subject="Oops", opportunity=eleventh, via=Via.FORM
    )
    delete_activity(eleventh.owner, regretted, via=Via.FORM)
    assert set(DirtyDeal.objects.values_list("opportunity_id", flat=True)) == {eleventh.pk}

    evaluate(later)
    assert (_mark().rebuilt, _mark().recomputed, _mark().folded) == (False, 1, 3)
    _kept_clocks_agree(later)

    # Night 5: the meeting has happened by now, with no write: its deal is read afresh.
    after = later + dt.timedelta(days=1)
    evaluate(after)
    assert (_mark().recomputed, _mark().folded) == (1, 0)
    assert Activity.objects.get(pk=meeting).opportunity_id == ninth.pk
    _kept_clocks_agree(after)


def _call(org, deal, now):
    log_activity(
        org.ravi,
        kind=ActivityKind.CALL,
        subject="Renewal call",
        opportunity=deal,
        occurred_at=now - dt.timedelta(hours=2),
        via=Via.FORM,
    )


def _stage_move(org, deal, now):
    update_opportunity(org.ravi, deal, {"amount": (deal.amount or Decimal(0)) + 5000}, via=Via.FORM)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "rule, write, age_days",
    [("stale_touch", _call, 60), ("stale_progress", _stage_move, 120)],
    ids=["a call logged", "an amount moved"],
)
def test_a_write_recorded_after_the_evaluated_moment_counts_the_next_night_without_another_write(
    org, settings, rule, write, age_days
):
    """Ravi's quiet renewal is stale (on customer touch; on progress). Last night's run was late:
    it evaluated yesterday evening after Ravi had logged this morning's call (moved the amount),
    which it rightly ignores. Tonight, with nothing written since, the write counts and the stale
    deal is resolved."""
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False  # the nights alone
    deal = org.ravi_open
    now = timezone.now()
    Opportunity.objects.filter(pk=deal.pk).update(created_at=now - dt.timedelta(days=age_days))
    yesterday_evening = now - dt.timedelta(hours=14)
    evaluate(yesterday_evening)
    stale = Violation.objects.get(rule=rule, opportunity=deal, live=True)
    write(org, deal, now)

    evaluate(yesterday_evening + dt.timedelta(minutes=1))  # the late run: the write had not happened
    stale.refresh_from_db()
    assert stale.status == ViolationStatus.OPEN
    assert not DirtyDeal.objects.exists()

    tonight = now + dt.timedelta(hours=10)
    evaluate(tonight)

    stale.refresh_from_db()
    assert (stale.status, stale.live) == (ViolationStatus.RESOLVED, False)
    assert _mark().recomputed == 1  # the renewal alone: its clock was due to move
    _kept_clocks_agree(tonight)


@pytest.mark.django_db
def test_a_call_deleted_after_the_moment_counts_until_the_night_after(org):
    """Evaluated as of 18:00 at night, a call Ravi deletes at 18:30 still counted at 18:00; the next
    night it no longer does, though the night's refresh came after the deletion."""
    deal = create_opportunity(
        org.ravi,
        name="Acme expansion",
        account=org.acme,
        stage=stage("Proposal"),
        amount=Decimal("5000"),
        close_date=org.ravi_open.close_date,
        via=Via.FORM,
    )
    evening = timezone.now() - dt.timedelta(hours=2)
    Opportunity.objects.update(created_at=evening - dt.timedelta(days=30))
    call = log_activity(
        org.ravi,
        kind=ActivityKind.CALL,
        subject="Call",
        opportunity=deal,
        occurred_at=evening - dt.timedelta(days=1),
        logged_at=evening - dt.timedelta(days=1),
        via=Via.FORM,
    )
    delete_activity(org.ravi, call, via=Via.FORM)  # now, after the evening

    evaluate(evening)
    _kept_clocks_agree(evening)
    evaluate(timezone.now() + dt.timedelta(days=1))
    assert not _mark().rebuilt
    _kept_clocks_agree(timezone.now() + dt.timedelta(days=1))


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner statistics")
def test_the_night_reads_the_days_marks_with_statistics_of_the_day_not_of_an_empty_table(org):
    """A day's calls fill the marks; planned as if they were still empty (autovacuum need not have
    come by), looking a day's 50,000 new activities up by id read every activity. The night
    analyses the marks before it reads them, whatever autovacuum did."""
    evaluate()
    for n in range(3):
        log_activity(
            org.ravi, kind=ActivityKind.CALL, subject=f"Call {n}", opportunity=org.ravi_open, via=Via.FORM
        )
    assert NewActivity.objects.count() == 3

    evaluate(timezone.now() + dt.timedelta(minutes=5))

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [NewActivity._meta.db_table]
        )
        assert cursor.fetchone()[0] == 3  # as the night found them, before it emptied the marks
    assert not NewActivity.objects.exists()


@pytest.mark.django_db
def test_clocks_are_rebuilt_whole_when_the_triggers_went_missing(org):
    """SQLite drops a table's triggers when a migration rebuilds the table: the next night notices,
    puts them back and rebuilds the clocks instead of trusting marks nobody made."""
    evaluate()
    with connection.cursor() as cursor:
        clocks.remove_triggers(cursor, connection.vendor)
    log_activity(org.ravi, kind=ActivityKind.CALL, subject="Call", opportunity=org.ravi_open, via=Via.FORM)
    assert not DirtyDeal.objects.exists()

    later = timezone.now() + dt.timedelta(minutes=5)
    evaluate(later)

    assert _mark().rebuilt
    with connection.cursor() as cursor:
        assert clocks.installed_triggers(cursor, connection.vendor) == set(clocks.TRIGGERS)
    _kept_clocks_agree(later)


@pytest.mark.django_db
def test_an_evaluation_before_the_kept_clocks_reads_the_activities_and_leaves_the_clocks_alone(org):
    """A night that crashed after refreshing the clocks left them ahead of the record. The rerun,
    as of an earlier moment, cannot use them: it reads Ravi's call from the activities (his quiet
    renewal is not stale) and leaves the clocks and their marks for a later night."""
    deal = org.ravi_open
    Opportunity.objects.filter(pk=deal.pk).update(created_at=timezone.now() - dt.timedelta(days=60))
    ahead = timezone.now() + dt.timedelta(hours=1)
    clocks.refresh(EvalContext(as_of=ahead, policy=current_policy()))
    call = log_activity(
        org.ravi,
        kind=ActivityKind.CALL,
        subject="Call",
        opportunity=deal,
        via=Via.FORM,
        occurred_at=timezone.now() - dt.timedelta(hours=1),
    )

    run = evaluate(timezone.now())

    assert run.finished_at is not None
    assert not Violation.objects.filter(rule="stale_touch", opportunity=deal, live=True).exists()
    assert _mark().as_of == ahead
    assert NewActivity.objects.filter(activity_id=call.pk).exists()  # kept for a later night


@pytest.mark.django_db
def test_a_few_deals_clocks_are_read_from_the_activities_index_alone(org):
    """The clocks of the deals a night recomputes (and of a write's deals) are read from the deal
    timeline index without fetching any activity row: the index holds every column they read,
    the source included (captured mail is a touch, not an update)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's plan names a covering index; PostgreSQL's index-only scans depend on vacuum")
    ctx = EvalContext(as_of=timezone.now(), policy=current_policy())
    with connection.cursor() as cursor:
        for pending in (True, False):
            sql = clocks.clocks_sql(ctx, f" AND opportunity_id IN ({org.ravi_open.pk})", pending=pending)
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "COVERING INDEX activity_deal_clock_idx" in plan, plan


def _kept_state_agrees(moment: dt.datetime) -> None:
    """The kept state's deals alive at the moment are the state read afresh, row for row."""
    ctx = EvalContext(as_of=moment, policy=current_policy())
    at = ctx.ts(moment)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM {KEPT_STATE} WHERE created_at <= {at}"
            f" AND (deleted_at IS NULL OR deleted_at > {at}) ORDER BY id"
        )
        kept = [tuple(str(v) if isinstance(v, dt.datetime) else v for v in row) for row in cursor.fetchall()]
    afresh = _state(moment, cached=False)
    assert len(kept) == len(afresh)
    for kept_row, afresh_row in zip(kept, afresh, strict=True):
        assert [_plain(v) for v in kept_row] == [_plain(v) for v in afresh_row]


def _plain(value):
    """A value as text, numbers by their value: SQLite hands a declared column's value back typed
    (a date, a decimal), an expression's as the text or float it stores."""
    if isinstance(value, Decimal | float):
        return str(Decimal(str(value)).normalize())
    return value if value is None else str(value)


def _night_agrees_with_a_dry_run(moment: dt.datetime) -> None:
    """What the night left live is what a dry run finds from scratch, rule by rule."""
    found = {f.key for findings in find_all(moment).values() for f in findings}
    live = set(Violation.objects.filter(live=True).values_list("key", flat=True))
    assert live == found


@pytest.mark.django_db
def test_night_after_night_the_kept_state_agrees_with_the_state_read_afresh(org):
    """Between nights Ravi, Rita and Owen move close dates, set next steps and drop an account
    behind the services, open and delete deals and snooze one; Ada renames a stage. Each night
    rewrites only the written deals' kept rows (a probability change is not one of them), a
    snooze that ended counts again with no write at all, a renamed stage rebuilds the kept
    state, and every night, narrowed or not, finds what a dry run from scratch finds."""
    _generated_org(org)
    update_stage(org.ada, stage("Proposal"), {"required_fields": ["account", "amount", "close_date"]})
    first = timezone.now() + dt.timedelta(hours=1)
    evaluate(first)
    assert _mark().state_stages
    _kept_state_agrees(first)
    _night_agrees_with_a_dry_run(first)

    deals = list(Opportunity.objects.filter(stage__kind="open").order_by("id"))
    moved, stepped, reweighed, deleted, snoozed = deals[:5]
    update_opportunity(
        moved.owner, moved, {"close_date": timezone.localdate() + dt.timedelta(days=40)}, via=Via.FORM
    )
    Opportunity.objects.filter(pk=stepped.pk).update(next_step="Send the SOW")  # behind the services
    Opportunity.objects.filter(pk=reweighed.pk).update(probability=55)  # not a field the rules read
    # A Proposal deal loses its account behind the services: the stage requires one.
    unaccounted = Opportunity.objects.filter(stage=stage("Proposal"), account__isnull=False).exclude(
        pk__in=[d.pk for d in deals[:5]]
    )[0]
    Opportunity.objects.filter(pk=unaccounted.pk).update(account=None)
    delete_opportunity(deleted.owner, deleted, via=Via.FORM)
    created = create_opportunity(
        org.owen, name="Globex expansion", account=org.globex, stage=stage("Qualification"), via=Via.FORM
    )
    snooze_opportunity(snoozed.owner, snoozed, timezone.localdate() + dt.timedelta(days=1), "On leave")
    dirty = set(DirtyDeal.objects.values_list("opportunity_id", flat=True))
    assert {moved.pk, stepped.pk, deleted.pk, created.pk, snoozed.pk, unaccounted.pk} <= dirty
    assert reweighed.pk not in dirty

    second = first + dt.timedelta(days=1)
    evaluate(second)
    _kept_state_agrees(second)
    _night_agrees_with_a_dry_run(second)
    assert not Violation.objects.filter(opportunity=snoozed, rule__startswith="stale_", live=True).exists()
    assert not Violation.objects.filter(opportunity=deleted, live=True).exists()
    assert Violation.objects.filter(opportunity=unaccounted, rule="missing_stage_fields", live=True).exists()

    # Three days on, the snooze has ended: the deal is stale again, though nobody wrote anything.
    third = second + dt.timedelta(days=3)
    evaluate(third)
    _kept_state_agrees(third)
    _night_agrees_with_a_dry_run(third)
    assert Violation.objects.filter(opportunity=snoozed, rule__startswith="stale_", live=True).exists()

    before = _mark().state_stages
    update_stage(org.ada, stage("Qualification"), {"name": "Qualifying"})
    fourth = third + dt.timedelta(days=1)
    evaluate(fourth)
    assert _mark().state_stages != before
    _kept_state_agrees(fourth)
    _night_agrees_with_a_dry_run(fourth)


@pytest.mark.django_db
def test_a_night_as_of_a_moment_before_a_snooze_reads_the_state_afresh(org):
    """Ravi snoozed his renewal after the moment a late night is run for: that night cannot take
    the snooze from the kept state (it holds today's snoozes); it reads the deals afresh and
    counts the renewal stale, as it was at the moment."""
    deal = org.ravi_open
    Opportunity.objects.filter(pk=deal.pk).update(created_at=timezone.now() - dt.timedelta(days=90))
    evaluate(timezone.now() - dt.timedelta(hours=2))
    snooze_opportunity(org.ravi, deal, timezone.localdate() + dt.timedelta(days=5), "Waiting on legal")

    evaluate(timezone.now() - dt.timedelta(hours=1))

    assert Violation.objects.filter(opportunity=deal, rule="stale_touch", live=True).exists()


@pytest.mark.django_db
def test_a_kept_state_dropped_by_hand_is_built_again_the_next_night(org):
    """An operator dropped the kept state (it is derived, so a backup may leave it out): the next
    night builds it whole instead of failing, and agrees with the state read afresh."""
    evaluate()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {KEPT_STATE}")
    later = timezone.now() + dt.timedelta(minutes=5)

    evaluate(later)

    _kept_state_agrees(later)


def _quiet_renewal(org) -> Opportunity:
    """Ravi's Proposal renewal, two months old, last touched by a call ten days ago."""
    deal = org.ravi_open
    Opportunity.objects.filter(pk=deal.pk).update(created_at=timezone.now() - dt.timedelta(days=60))
    log_activity(
        org.ravi,
        kind=ActivityKind.CALL,
        subject="Call",
        opportunity=deal,
        via=Via.FORM,
        occurred_at=timezone.now() - dt.timedelta(days=10),
        logged_at=timezone.now() - dt.timedelta(days=10),
    )
    return deal


@pytest.mark.django_db
def test_a_night_after_the_policy_changed_reads_every_deal(org):
    """Ten days without a touch is fine for Proposal under the default 14. Ada tightens it to 7:
    the next night cannot trust the last one's findings, and Ravi's renewal is stale at once,
    though nothing was written on it."""
    deal = _quiet_renewal(org)
    evaluate(timezone.now())
    assert not Violation.objects.filter(opportunity=deal, rule="stale_touch", live=True).exists()

    document = copy.deepcopy(current_policy().document)
    document["rules"]["stale_touch"]["params"]["days"] = {"default": 7}
    publish_policy(org.ada, document, note="tighter")
    evaluate(timezone.now() + dt.timedelta(minutes=1))

    assert Violation.objects.filter(opportunity=deal, rule="stale_touch", live=True).exists()


@pytest.mark.django_db
def test_a_night_after_one_that_crashed_once_its_clocks_were_refreshed_reads_every_deal(org, settings):
    """A night refreshed the clocks and the kept state, taking the day's marks, then crashed before
    its run was recorded. Ravi had set his next step meanwhile (with the write's own evaluation
    off): the next night cannot know his deal changed from the marks, so it reads every deal, and
    resolves his violation."""
    from truepipe.hygiene.engine import materialised_state

    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    evaluate(noon)
    fixed = Violation.objects.get(opportunity=org.ravi_open, rule="no_next_step", live=True)
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    update_opportunity(
        org.ravi,
        org.ravi_open,
        {"next_step": "Send the SOW", "next_step_date": noon.date() + dt.timedelta(days=3)},
        via=Via.FORM,
    )
    crashed = EvalContext(as_of=noon + dt.timedelta(minutes=1), policy=current_policy())
    with materialised_state(crashed, cached_clocks=True):
        pass  # the rules never ran
    assert not DirtyDeal.objects.exists()

    evaluate(noon + dt.timedelta(minutes=2))

    fixed.refresh_from_db()
    assert (fixed.live, fixed.status) == (False, ViolationStatus.RESOLVED)


@pytest.mark.django_db
def test_a_history_value_corrected_by_hand_marks_its_deal_for_the_next_night(org):
    """An operator corrects the amount a history row says Ravi's deal was changed to: the night
    looks at that deal again (the history rules over a period keep the verdict of a deal nobody
    wrote to), on either database."""
    deal = org.ravi_open
    update_opportunity(org.ravi, deal, {"amount": Decimal("64000")}, via=Via.FORM)
    evaluate(timezone.now() + dt.timedelta(minutes=1))  # the triggers in place, the marks taken
    assert not DirtyDeal.objects.filter(opportunity_id=deal.pk).exists()

    OpportunityChange.objects.filter(opportunity=deal, field="amount").update(new_value="46000")

    assert DirtyDeal.objects.filter(opportunity_id=deal.pk).exists()


@pytest.mark.django_db
def test_retiring_a_stage_rebuilds_the_kept_state_so_the_next_night_reads_every_deal(org):
    """The skipped-stages rule counts the active stages between two: Ada retiring one changes
    what a narrowed night would have trusted, so the kept state's fingerprint changes with it."""
    evaluate(timezone.now() + dt.timedelta(minutes=1))
    before = _mark().state_stages
    update_stage(org.ada, stage("Negotiation"), {"is_active": False})

    evaluate(timezone.now() + dt.timedelta(minutes=2))

    assert _mark().state_stages != before
