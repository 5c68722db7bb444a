"""The demo organisation: its people are who the brief says, and their habits show in the data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, timedelta
from io import StringIO
from pathlib import Path
from statistics import mean
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from truepipe.activities.models import Activity
from truepipe.core.models import Via
from truepipe.demo.backfill import backfill, backfill_days, history_being_written
from truepipe.demo.generator import Generator, Options
from truepipe.demo.stats import RepStats, rep_stats
from truepipe.hygiene import scoring
from truepipe.hygiene.engine import end_of_day
from truepipe.hygiene.models import EvaluationRun, OpportunitySnapshot, RepScore, Violation
from truepipe.people.models import Quota, Role, SalesProfile
from truepipe.pipeline.models import Opportunity, OpportunityChange, Stage

TODAY = date(2026, 6, 30)
SMALL = {"today": TODAY, "months": 4, "reps": 6, "accounts_per_rep": 6}

User = get_user_model()


def generate(seed: int = 42, **size):
    return Generator(Options(seed=seed, **{**SMALL, **size})).run()


# The tests back-fill 60 days, not the command's 90: enough for the new hire's whole turn-around
# in a 4-month history (he is coached from 60% of it), at two thirds of the time.
BACKFILL = 60


@pytest.fixture(scope="class")
def demo_once(django_db_setup, django_db_blocker):
    """One generation and back-fill (as `truepipe demo` makes them) shared by a class of tests that
    change nothing, rolled back when the class ends."""
    with django_db_blocker.unblock(), transaction.atomic():
        with history_being_written():
            result = generate()
        days = backfill_days(result.start, result.now, BACKFILL)
        backfill(days, result.now)
        yield SimpleNamespace(start=result.start, now=result.now, days=days)
        transaction.set_rollback(True)


@pytest.fixture
def demo(demo_once, db):
    return demo_once


def stats_by_rep(since: date, until: date = TODAY) -> dict[str, RepStats]:
    vp = User.objects.get(username="victoria")
    return {row.username: row for row in rep_stats(vp, since, until)}


def whole_window(demo) -> dict[str, RepStats]:
    return stats_by_rep(demo.start)


class TestTheDemoOrganisation:
    """Read-only checks on one shared generation (6 reps, 4 months to 2026-06-30)."""

    def test_the_rainmaker_logs_days_late_and_the_logger_within_the_hour(self, demo):
        reps = whole_window(demo)
        assert reps["rick"].median_lag_hours > 48
        assert reps["lena"].median_lag_hours < 1
        assert reps["rick"].median_lag_hours > 50 * reps["lena"].median_lag_hours

    def test_the_rainmaker_logs_the_fewest_activities_and_the_logger_the_most(self, demo):
        reps = whole_window(demo)
        counts = {name: row.activities for name, row in reps.items()}
        assert min(counts, key=counts.__getitem__) == "rick"
        assert max(counts, key=counts.__getitem__) == "lena"

    def test_the_rainmaker_has_the_top_attainment(self, demo):
        reps = whole_window(demo)
        attainment = {name: row.attainment for name, row in reps.items()}
        assert max(attainment, key=attainment.__getitem__) == "rick"
        assert attainment["rick"] > 120

    def test_the_rainmakers_wins_surface_days_before_they_close(self, demo):
        reps = whole_window(demo)
        assert reps["rick"].surprise_share >= 50
        others = [row.surprise_share or 0 for name, row in reps.items() if name != "rick"]
        assert reps["rick"].surprise_share > max(others)
        # Straight to Won: his surprise deals jump from an early stage to Won in one edit.
        won = Stage.objects.get(name="Won")
        early = {str(Stage.objects.get(name=name).pk) for name in ("Prospecting", "Qualification")}
        jumps = OpportunityChange.objects.filter(
            opportunity__owner__username="rick", field="stage", new_value=str(won.pk), old_value__in=early
        )
        assert jumps.exists()

    def test_the_logger_has_the_lowest_win_rate_and_loses_in_late_stages(self, demo):
        reps = whole_window(demo)
        win_rates = {name: row.win_rate for name, row in reps.items() if row.win_rate is not None}
        assert min(win_rates, key=win_rates.__getitem__) == "lena"
        lost = str(Stage.objects.get(name="Lost").pk)
        late = {str(Stage.objects.get(name=name).pk) for name in ("Proposal", "Negotiation")}
        losses = list(
            OpportunityChange.objects.filter(
                opportunity__owner__username="lena", field="stage", new_value=lost
            ).values_list("old_value", flat=True)
        )
        assert losses
        assert sum(old in late for old in losses) / len(losses) > 0.6

    def test_the_logger_fills_in_every_optional_field(self, demo):
        deals = Opportunity.objects.filter(owner__username="lena", stage__kind="open")
        assert deals.exists()
        assert not deals.filter(next_step="").exists()
        assert not deals.filter(next_step_date__isnull=True).exists()
        assert not deals.filter(source="").exists()

    def test_the_new_hire_logs_faster_in_the_last_weeks_than_in_the_first(self, demo):
        first = stats_by_rep(demo.start, demo.start + timedelta(days=42))["noah"]
        last = stats_by_rep(TODAY - timedelta(days=42), TODAY)["noah"]
        assert first.median_lag_hours > 10
        assert last.median_lag_hours < 3

    def test_every_history_row_came_through_the_demo_path_with_the_rep_as_author(self, demo):
        changes = OpportunityChange.objects.all()
        assert changes.count() > 100
        assert set(changes.values_list("via", flat=True)) == {Via.DEMO}
        assert not changes.exclude(changed_by=F("opportunity__owner")).exists()

    def test_history_carries_the_historic_moments_not_the_time_of_generation(self, demo):
        latest = max(OpportunityChange.objects.values_list("changed_at", flat=True))
        assert latest.date() <= TODAY
        assert Opportunity.objects.filter(created_at__date__lt=TODAY - timedelta(days=90)).exists()
        assert not Activity.objects.filter(logged_at__lt=F("occurred_at")).exists()

    def test_activities_happen_on_weekdays_in_working_hours_of_the_reps_time_zone(self, demo):
        from zoneinfo import ZoneInfo

        for activity in Activity.objects.select_related("owner__profile")[:300]:
            local = activity.occurred_at.astimezone(ZoneInfo(activity.owner.profile.time_zone))
            assert local.weekday() < 5
            assert 8 <= local.hour < 18

    def test_every_rep_reports_up_to_the_vp_and_the_rainmaker_to_the_lenient_manager(self, demo):
        vp = User.objects.get(username="victoria")
        reps = SalesProfile.objects.filter(role=Role.REP).select_related("manager")
        assert reps.count() == SMALL["reps"]
        assert all(profile.path.startswith(vp.profile.path) for profile in reps)
        assert all(profile.path.endswith(f"/{profile.manager_id}/{profile.user_id}/") for profile in reps)
        assert reps.get(user__username="rick").manager.username == "maria"

    def test_every_rep_has_a_quota_for_every_quarter_and_the_new_hire_ramps_up(self, demo):
        quarters = {(q.period_start, q.period_end) for q in Quota.objects.all()}
        assert len(quarters) == 2  # 2026-02-28..06-30 touches Q1 and Q2
        assert Quota.objects.count() == len(quarters) * SMALL["reps"]
        ramp = list(Quota.objects.filter(user__username="noah").values_list("amount", flat=True))
        assert ramp == sorted(ramp) and ramp[0] < ramp[-1]

    # The discipline record back-filled from that history.

    def test_the_backfill_covers_the_last_days_before_today(self, demo):
        assert demo.days[0] == TODAY - timedelta(days=BACKFILL)
        assert demo.days[-1] == TODAY - timedelta(days=1)
        runs = list(EvaluationRun.objects.order_by("as_of").values_list("as_of", flat=True))
        assert runs == [end_of_day(day) for day in demo.days] + [demo.now]
        snapshot_days = set(OpportunitySnapshot.objects.values_list("day", flat=True))
        assert snapshot_days == set(demo.days)

    def test_every_rep_has_a_score_for_every_working_day_of_the_backfill(self, demo):
        working = {day for day in [*demo.days, TODAY] if day.weekday() < 5}
        reps = User.objects.filter(profile__role=Role.REP)
        assert reps.count() == SMALL["reps"]
        for rep in reps:
            assert set(RepScore.objects.filter(rep=rep).values_list("day", flat=True)) == working, rep

    def test_the_rainmaker_scores_far_below_the_meticulous_logger(self, demo):
        rows = {
            row.username: row.score
            for row in scoring.scorecard(scoring.scored_people(), TODAY, 30, teams=False)
        }
        assert min(rows, key=lambda name: rows[name] or 0) == "rick"
        assert rows["lena"] >= 70
        assert rows["lena"] - rows["rick"] >= 40
        # For what the rainmaker is known for: his wins surprised everyone; the logger's never did.
        assert Violation.objects.filter(rep__username="rick", rule="surprise_win").exists()
        assert not Violation.objects.filter(rep__username="lena", rule="surprise_win").exists()

    def test_the_new_hire_starts_the_backfill_low_and_ends_it_good(self, demo):
        scores = [
            float(score)
            for score in RepScore.objects.filter(rep__username="noah")
            .order_by("day")
            .values_list("score", flat=True)
        ]
        first, last = mean(scores[:10]), mean(scores[-10:])  # two working weeks each
        assert first < 50
        assert last >= 65
        assert last - first >= 25

    def test_rules_find_back_dated_events_on_the_day_they_happened(self, demo):
        """As-of evaluation of event rules: a surprise win opens the day it was entered, a missed
        update the day after its cut-off at the latest, except what the first evaluation finds."""
        first = end_of_day(demo.days[0])
        won = {str(pk) for pk in Stage.objects.filter(kind="won").values_list("pk", flat=True)}
        surprises = Violation.objects.filter(rule="surprise_win")
        assert surprises.exists()
        for violation in surprises:
            entered = (
                OpportunityChange.objects.filter(
                    opportunity=violation.opportunity_id, field="stage", new_value__in=won
                )
                .latest("changed_at")
                .changed_at
            )
            expected = min(end_of_day(timezone.localtime(entered).date()), demo.now)
            assert violation.opened_at == max(first, expected), violation
        missed = Violation.objects.filter(rule="missed_daily_update").exclude(opened_at=first)
        assert missed.exists()
        for violation in missed:
            assert 0 <= (violation.opened_at.date() - violation.day).days <= 1, violation

    def test_running_the_backfill_again_adds_nothing(self, demo):
        def counts():
            return [
                model.objects.count() for model in (EvaluationRun, Violation, RepScore, OpportunitySnapshot)
            ]

        before = counts()
        scores = list(RepScore.objects.order_by("rep", "day").values_list("rep", "day", "score"))
        again = backfill(demo.days, demo.now)
        assert again.evaluations == 0
        assert counts() == before
        assert list(RepScore.objects.order_by("rep", "day").values_list("rep", "day", "score")) == scores

    def test_the_rainmakers_mail_shows_the_deal_he_never_logged_and_the_win_nobody_expected(self, demo):
        from truepipe.capture.shadow import shadow_pipeline
        from truepipe.contracts.models import Contract
        from truepipe.notify.models import Notification

        rick = User.objects.get(username="rick")
        suggestion = next(
            r for r in shadow_pipeline(rick, now=demo.now) if r.domain == "northwind-logistics.example"
        )
        assert (suggestion.touches, suggestion.flagged) == (6, True)
        assert Violation.objects.filter(
            rule="unlogged_deal", rep=rick, live=True, key__contains="northwind-logistics.example"
        ).exists()
        contract = Contract.objects.get(reference="FIN-2026-0412")
        assert (contract.rep, contract.opportunity) == (rick, None)
        assert Violation.objects.filter(rule="unlogged_win", rep=rick, live=True).exists()
        told = set(
            Notification.objects.filter(title__contains="Northwind").values_list("user__username", flat=True)
        )
        assert rick.profile.manager.username in told
        assert told & set(User.objects.filter(profile__role=Role.DELIVERY).values_list("username", flat=True))

    def test_the_lenient_manager_and_the_top_seller_stand_out_in_the_fairness_audit(self, demo):
        from truepipe.accountability.fairness import audit

        vp = User.objects.get(username="victoria")
        report = audit(vp, demo.days[0], TODAY)

        assert {check.group for check in report.flags} == {"Maria Santos", "top quartile"}
        rick = report.by_rep["Rick Alvarez"]
        assert rick.waived == rick.offenses - rick.pending > 0
        assert report.tier_of["Rick Alvarez"] == "top quartile"
        assert all(c.waived == 0 for name, c in report.by_rep.items() if name != "Rick Alvarez")

    def test_the_forgetful_manager_is_reported_to_the_vp_and_the_vp_stepped_in(self, demo):
        from truepipe.accountability.models import Consequence
        from truepipe.accountability.queries import reported_managers

        vp = User.objects.get(username="victoria")
        assert [b.name for b in reported_managers(vp, today=TODAY)] == ["Nina Patel"]
        stepped_in = Consequence.objects.filter(escalated_to=vp, decided_by=vp, state="applied")
        assert stepped_in.exists()

    def test_a_dispute_was_upheld_another_rejected_and_the_record_holds(self, demo):
        from truepipe.accountability.models import Dispute
        from truepipe.audit.log import verify

        assert sorted(Dispute.objects.values_list("state", flat=True)) == ["rejected", "upheld"]
        upheld = Dispute.objects.get(state="upheld")
        assert upheld.offense.status == "overturned"
        assert verify().ok


def canonical_dump() -> str:
    """The data as text, without primary keys (PostgreSQL does not roll sequences back)."""
    lines = [
        repr(row)
        for row in Opportunity.objects.order_by("name", "created_at").values_list(
            "name", "owner__username", "stage__name", "amount", "close_date", "created_at", "closed_at"
        )
    ]
    lines += [
        repr(row)
        for row in OpportunityChange.objects.exclude(field__in=("account", "owner"))
        .order_by("opportunity__name", "changed_at", "field")
        .values_list("opportunity__name", "field", "old_value", "new_value", "changed_at")
    ]
    lines += [
        repr(row)
        for row in Activity.objects.order_by("occurred_at", "subject").values_list(
            "owner__username", "kind", "occurred_at", "logged_at", "subject", "opportunity__name"
        )
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def generate_and_dump(seed: int) -> str:
    with transaction.atomic():
        generate(seed, months=2, reps=5, accounts_per_rep=3)
        dump = canonical_dump()
        transaction.set_rollback(True)
    return dump


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    first = generate_and_dump(42)
    assert not Opportunity.objects.exists()
    assert generate_and_dump(42) == first
    assert generate_and_dump(7) != first


# --- The command ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_prints_the_summary_and_logins_and_a_second_run_only_serves_with_force():
    out = StringIO()
    call_command(
        "demo",
        *("--no-serve", "--today", "2026-06-30", "--months", "3", "--reps", "5", "--backfill-days", "5"),
        stdout=out,
    )
    text = out.getvalue()
    assert "rainmaker" in text and "meticulous logger" in text
    assert "victoria" in text and "password for everyone: demo" in text
    rick = next(line for line in text.splitlines() if line.startswith("rick "))
    assert "maria" in rick
    # The discipline record: five days back-filled, then today; the scores follow the rep table.
    assert "for each day from 2026-06-25 to 2026-06-29 and as of now (6 evaluations" in text
    assert EvaluationRun.objects.count() == 6
    scores = text[text.index("Discipline scores over the 30 days to 2026-06-30") :]
    assert next(line for line in scores.splitlines() if line.startswith("rick ")).split()[1:3] == [
        "Maria",
        "Santos",
    ]
    with pytest.raises(CommandError, match="TRUEPIPE_HOME"):
        call_command("demo", "--no-serve", stdout=StringIO())
    deals = Opportunity.objects.count()
    forced = StringIO()
    call_command("demo", "--no-serve", "--force", "--today", "2026-06-30", "--months", "3", stdout=forced)
    assert "adds nothing" in forced.getvalue()
    assert rick in forced.getvalue()
    assert Opportunity.objects.count() == deals


@pytest.mark.django_db
def test_the_command_explains_bad_options():
    with pytest.raises(CommandError, match="--reps must be between"):
        call_command("demo", "--no-serve", "--reps", "2", stdout=StringIO())
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("demo", "--no-serve", "--today", "yesterday", stdout=StringIO())
    with pytest.raises(CommandError, match="HOST:PORT"):
        call_command("demo", "--bind", "8000", stdout=StringIO())
    assert not User.objects.exists()


def start_cli(home: Path, hash_seed: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUEPIPE_")}
    env.update(TRUEPIPE_HOME=str(home), PYTHONHASHSEED=hash_seed)
    return subprocess.Popen(
        [sys.executable, "-m", "truepipe.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def test_the_installed_command_gives_identical_output_across_processes(tmp_path):
    """Two fresh processes with different string hashing must still produce the same organisation."""
    args = (
        "demo",
        "--no-serve",
        "--today",
        "2026-06-30",
        "--months",
        "2",
        "--reps",
        "5",
        "--backfill-days",
        "10",
    )
    processes = [start_cli(tmp_path / "a", "1", *args), start_cli(tmp_path / "b", "2", *args)]
    (first_code, first, first_err), (second_code, second, second_err) = map(finish, processes)
    assert first_code == 0, first_err
    assert second_code == 0, second_err

    def summary(out: str) -> str:
        # Timings differ between runs; everything else must not.
        return "\n".join(
            line for line in out.splitlines() if not line.startswith(("Created ", "Evaluated the rules "))
        )

    assert "rick" in summary(first)
    assert "Discipline scores over the 30 days to 2026-06-30" in summary(first)
    assert summary(first) == summary(second)
