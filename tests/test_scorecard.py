"""`truepipe scorecard`: the discipline table from the command line."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from truepipe.hygiene.engine import end_of_day, evaluate


def _run(*args: str) -> str:
    out = StringIO()
    call_command("scorecard", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_scorecard_lists_each_rep_and_their_team(org):
    evaluate(end_of_day(timezone.localdate()))
    day = timezone.localdate().isoformat()
    rows = json.loads(_run("--as-of", day, "--format", "json"))
    names = {(row["username"], row["team"]) for row in rows}
    if timezone.localdate().weekday() < 5:
        assert ("ravi", False) in names and ("maya", True) in names
    table = _run("--as-of", day)
    assert "Discipline scorecard" in table


@pytest.mark.django_db
def test_the_scorecard_under_a_manager_shows_only_their_people(org):
    rows = json.loads(_run("--under", "omar", "--format", "json"))
    assert {row["username"] for row in rows} <= {"owen", "omar"}


@pytest.mark.django_db
def test_a_bad_period_or_person_is_a_clear_error(org):
    with pytest.raises(CommandError, match="period"):
        _run("--period", "fortnight")
    with pytest.raises(CommandError, match="No such person"):
        _run("--under", "nobody")


def add_scored_reps(org, first: int, count: int) -> None:
    """`count` reps under Maya, each scored for the last 14 days."""
    import datetime as dt

    from django.contrib.auth import get_user_model

    from truepipe.hygiene.models import RepScore
    from truepipe.people.models import Role, SalesProfile

    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"bulk{i}") for i in range(first, first + count)])
    maya_path = org.maya.profile.path
    SalesProfile.objects.bulk_create(
        [SalesProfile(user=u, role=Role.REP, manager=org.maya, path=f"{maya_path}{u.pk}/") for u in users]
    )
    today = timezone.localdate()
    RepScore.objects.bulk_create(
        [RepScore(rep=u, day=today - dt.timedelta(days=d), score=90 - d) for u in users for d in range(14)],
        batch_size=5000,
    )


@pytest.mark.django_db
def test_the_scorecard_for_five_thousand_reps_costs_the_same_queries_as_for_five(org):
    # Its time at scale is measured by bench/bench_evaluate.py, not here: here, that it is set-based.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from truepipe.hygiene import scoring

    def queries_and_rows() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            rows = scoring.scorecard(scoring.scored_people(), timezone.localdate(), 7)
        return len(queries), len([row for row in rows if not row.is_team])

    add_scored_reps(org, 0, 5)
    few_queries, few_rows = queries_and_rows()
    add_scored_reps(org, 5, 4995)
    many_queries, many_rows = queries_and_rows()
    assert many_rows - few_rows == 4995
    assert many_queries == few_queries


@pytest.mark.django_db
def test_counts_recorded_with_the_scores_match_the_violations_and_old_rows_are_counted_live(org):
    """The team scorecard reads each rep's counts by severity and worst rule from their latest
    score; rows written before those were recorded fall back to counting the violations."""
    from truepipe.hygiene import scoring
    from truepipe.hygiene.models import RepScore

    evaluate(timezone.now() + dt.timedelta(days=40))  # Ravi's deal stale and past due, Owen's too
    day = timezone.localdate() + dt.timedelta(days=40)

    def counts() -> dict[str, tuple[int, int, int, str, int]]:
        rows = scoring.scorecard(scoring.scored_people(), day, 7, teams=False)
        return {r.username: (r.high, r.medium, r.low, r.worst_rule, r.open_deals) for r in rows}

    live = {}
    for username in ("ravi", "owen", "rita"):
        row = scoring.ScoreRow(
            user_id=getattr(org, username).pk, username=username, name="", manager="", path=""
        )
        scoring._count_live([row])
        deals = getattr(org, username).opportunities.filter(stage__kind="open", deleted_at__isnull=True)
        live[username] = (row.high, row.medium, row.low, row.worst_rule, deals.count())
    recorded = counts()
    assert {name: recorded[name] for name in live} == live
    assert live["ravi"][0] >= 1 and live["ravi"][3]

    RepScore.objects.update(high=None, medium=None, low=None, worst_rule="", open_deals=0)
    assert {name: counts()[name] for name in live} == live
