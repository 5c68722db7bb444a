"""Discipline scores: what violations cost, the daily score, and waiving."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.hygiene import scoring
from truepipe.hygiene.engine import EvalContext, end_of_day
from truepipe.hygiene.models import RepScore, Violation, ViolationStatus
from truepipe.hygiene.policy import current_policy
from truepipe.hygiene.services import waive_violation


def _weekday() -> dt.date:
    day = timezone.localdate() + dt.timedelta(days=1)
    while day.weekday() > 4:
        day += dt.timedelta(days=1)
    return day


def _violation(rep, *, severity=3, opportunity=None, key="test:1", opened=None) -> Violation:
    return Violation.objects.create(
        rule="stale_touch",
        key=key,
        rep=rep,
        opportunity=opportunity,
        severity=severity,
        summary="nobody touched it",
        opened_at=opened or timezone.now(),
    )


@pytest.fixture
def clean(org):
    """The personas with the violations their fixture deals already have waived by the admin."""
    for violation in Violation.objects.filter(status=ViolationStatus.OPEN):
        waive_violation(org.ada, violation, "fixture start")
    return org


def _score(day: dt.date) -> None:
    scoring.record_scores(EvalContext(as_of=end_of_day(day), policy=current_policy()))


@pytest.mark.django_db
def test_a_rep_with_nothing_open_scores_a_hundred(clean):
    day = _weekday()
    _score(day)
    row = RepScore.objects.get(rep=clean.ravi, day=day)
    assert row.score == Decimal("100.0")
    assert row.open_deals == 1
    assert row.capacity == Decimal("12")


@pytest.mark.django_db
def test_a_high_severity_rep_day_violation_costs_six_of_twelve_points(clean):
    day = _weekday()
    _violation(clean.ravi)
    _score(day)
    row = RepScore.objects.get(rep=clean.ravi, day=day)
    assert row.points_lost == Decimal("6")
    assert row.score == Decimal("50.0")
    assert row.open_violations == 1


@pytest.mark.django_db
def test_rescoring_a_day_replaces_its_rows(clean):
    day = _weekday()
    _score(day)
    _score(day)
    assert RepScore.objects.filter(rep=clean.ravi, day=day).count() == 1


@pytest.mark.django_db
def test_a_waived_violation_stops_counting_and_stays_live(clean):
    day = _weekday()
    violation = _violation(clean.ravi)
    waived = waive_violation(clean.maya, violation, "Customer asked for a pause")
    assert waived.status == ViolationStatus.WAIVED and waived.live
    assert waived.waived_by == clean.maya
    _score(day)
    assert RepScore.objects.get(rep=clean.ravi, day=day).score == Decimal("100.0")


@pytest.mark.django_db
def test_a_day_rescored_later_counts_what_was_open_that_day_and_only_that(clean):
    """Ravi's stale deal was open all Monday and resolved on Tuesday; Rita's was waived on Sunday;
    Owen's opened on Tuesday. Monday, scored again on Wednesday, counts Ravi's alone."""
    monday = _weekday()
    sunday = end_of_day(monday) - dt.timedelta(days=1)
    tuesday = end_of_day(monday) + dt.timedelta(hours=12)
    ravi = _violation(clean.ravi, key="test:ravi", opened=sunday)
    resolved = {"status": ViolationStatus.RESOLVED, "live": False, "closed_at": tuesday}
    Violation.objects.filter(pk=ravi.pk).update(**resolved)
    rita = _violation(clean.rita, key="test:rita", opened=sunday - dt.timedelta(days=1))
    Violation.objects.filter(pk=rita.pk).update(status=ViolationStatus.WAIVED, closed_at=sunday)
    _violation(clean.owen, key="test:owen", opened=tuesday)

    _score(monday)

    scores = {row.rep_id: row.open_violations for row in RepScore.objects.filter(day=monday)}
    assert (scores[clean.ravi.pk], scores[clean.rita.pk], scores[clean.owen.pk]) == (1, 0, 0)


@pytest.mark.django_db
def test_only_the_reps_manager_or_an_admin_may_waive_and_only_with_a_reason(clean):
    violation = _violation(clean.ravi)
    with pytest.raises(NotAllowed):
        waive_violation(clean.omar, violation, "not mine")
    with pytest.raises(NotAllowed):
        waive_violation(clean.ravi, violation, "I say so")
    with pytest.raises(InvalidInput):
        waive_violation(clean.maya, violation, "  ")
    assert waive_violation(clean.ada, violation, "data migration").status == ViolationStatus.WAIVED


@pytest.mark.django_db
def test_the_team_score_is_the_mean_of_its_reps(clean):
    day = _weekday()
    _violation(clean.ravi)
    _score(day)
    people = scoring.scored_people()
    rows = {(r.username, r.is_team): r for r in scoring.scorecard(people, day, 7)}
    assert rows[("ravi", False)].score == 50.0
    assert rows[("rita", False)].score == 100.0
    assert rows[("maya", True)].score == 75.0
    assert rows[("ravi", False)].high == 1


def _score_as_the_night_does(day: dt.date) -> None:
    """Scores read from the state the night keeps between nights (`engine.keep_state`)."""
    from truepipe.hygiene.engine import KEPT_VIEW, materialised_state

    ctx = EvalContext(as_of=end_of_day(day), policy=current_policy())
    with materialised_state(ctx, cached_clocks=True):
        assert ctx.state == KEPT_VIEW
        scoring.record_scores(ctx, materialised=True)


@pytest.mark.django_db
@pytest.mark.parametrize("scored", [_score, _score_as_the_night_does], ids=["state computed", "state kept"])
@pytest.mark.parametrize(
    ("amounts", "points"),
    [
        # 10k, 20k, 30k and 50k: a median of 25k, the mean of the middle two: 30/25 = 1.2 points.
        ((10_000, 50_000, 30_000, 20_000), "1.2"),
        # 10k, 20k, 24k, 30k and 50k: the middle one, 24k: 30/24 = 1.25 points.
        ((10_000, 50_000, 30_000, 20_000, 24_000), "1.25"),
    ],
    ids=["even count", "odd count"],
)
def test_a_deal_level_violation_weighs_its_deals_amount_against_the_median_open_amount(
    clean, scored, amounts, points
):
    """A low-severity violation on the 30k deal costs its amount over the median open amount, on
    either database, whether the state is computed for the day or read where the night keeps it."""
    from tests.conftest import stage
    from truepipe.pipeline.models import Opportunity
    from truepipe.pipeline.services import create_opportunity

    while Opportunity.objects.filter(stage__kind="open").count() < len(amounts):
        create_opportunity(
            clean.ravi, name="Acme add-on", account=clean.acme, stage=stage("Qualification"), via="form"
        )
    for violation in Violation.objects.filter(status=ViolationStatus.OPEN):
        waive_violation(clean.ada, violation, "not this test's")
    deals = list(Opportunity.objects.filter(stage__kind="open").order_by("id"))
    assert len(deals) == len(amounts)
    for deal, amount in zip(deals, amounts, strict=True):
        Opportunity.objects.filter(pk=deal.pk).update(amount=Decimal(amount))
    day = _weekday()
    _violation(deals[2].owner, severity=1, opportunity=deals[2])
    scored(day)
    row = RepScore.objects.get(rep=deals[2].owner, day=day)
    assert row.points_lost == Decimal(points)
