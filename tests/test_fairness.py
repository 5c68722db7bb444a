"""The fairness audit: offenses against consequences by rep, manager and tier, and an exact test
that flags lenient enforcement, or says honestly that the numbers are too few."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.test_web_accountability import _strict_weeks
from truepipe.accountability.fairness import audit, fisher_exact, smallest_p
from truepipe.accountability.models import Consequence
from truepipe.accountability.services import apply_consequence, waive_consequence
from truepipe.people.models import Quota


@pytest.mark.parametrize(
    ("table", "p"),
    [
        ((3, 1, 1, 3), 0.4857),  # the lady tasting tea
        ((1, 9, 11, 3), 0.002759),
        ((0, 5, 5, 0), 0.007937),
        ((10, 0, 0, 10), 1.083e-05),
        ((2, 3, 2, 3), 1.0),
    ],
)
def test_fishers_exact_test_agrees_with_the_textbook(table, p):
    assert fisher_exact(*table) == pytest.approx(p, rel=1e-3)


def test_two_decisions_a_side_can_never_be_significant():
    assert smallest_p(2, 2) == pytest.approx(1 / 3)
    assert smallest_p(5, 5) < 0.05


def _ravi_is_the_top_seller(org) -> None:
    today = timezone.localdate()
    Quota.objects.create(
        user=org.ravi, period_start=today, period_end=today + dt.timedelta(days=120), amount=Decimal("100000")
    )
    Quota.objects.create(
        user=org.owen, period_start=today, period_end=today + dt.timedelta(days=120), amount=Decimal("900000")
    )


@pytest.fixture
def nine_weeks(org):
    """Ravi (top seller, Maya's) and Owen (Omar's) both offend for nine weeks."""
    _ravi_is_the_top_seller(org)
    _strict_weeks(*range(20, 90, 7))
    return timezone.localdate(), timezone.localdate() + dt.timedelta(days=100)


@pytest.mark.django_db
def test_maya_waiving_everything_for_her_top_seller_is_flagged(org, nine_weeks):
    for c in Consequence.objects.filter(offense__rep=org.ravi):
        waive_consequence(org.maya, c, "He brings in the numbers")
    for c in Consequence.objects.filter(offense__rep=org.owen):
        apply_consequence(org.omar, c, "Done as the policy says")

    report = audit(org.vera, *nine_weeks)

    ravi, owen = report.by_rep["Ravi Rao"], report.by_rep["Owen Oak"]
    assert (ravi.offenses, ravi.waived, ravi.applied) == (9, 9, 0)
    assert owen.applied == owen.offenses >= 8
    assert report.tier_of["Ravi Rao"] == "top quartile" != report.tier_of["Owen Oak"]
    assert report.by_manager["Maya Moss"].waive_rate == 100.0
    flagged = {check.group for check in report.flags}
    assert flagged == {"top quartile", "Maya Moss"}
    top = next(c for c in report.checks if c.group == "top quartile")
    assert f"9 of 9 waived vs 0 of {owen.offenses}" in top.says
    assert top.p_value is not None and top.p_value < 0.001


@pytest.mark.django_db
def test_a_couple_of_waivers_are_too_few_to_conclude_anything(org):
    _ravi_is_the_top_seller(org)
    _strict_weeks(20, 27, 34)
    for c in Consequence.objects.filter(offense__rep=org.ravi):
        waive_consequence(org.maya, c, "Busy quarter")
    for c in Consequence.objects.filter(offense__rep=org.owen):
        apply_consequence(org.omar, c, "Done")

    report = audit(org.ada, timezone.localdate(), timezone.localdate() + dt.timedelta(days=60))

    assert not report.flags
    assert {c.verdict for c in report.checks} == {"too few"}
    assert "too few decisions to conclude anything" in report.checks[0].says


@pytest.mark.django_db
def test_a_manager_sees_only_their_part_and_can_narrow_to_one_team(org, nine_weeks):
    assert set(audit(org.maya, *nine_weeks).by_rep) == {"Ravi Rao"}
    assert set(audit(org.vera, *nine_weeks, under=org.omar).by_rep) == {"Owen Oak"}
    assert audit(org.ravi, *nine_weeks).by_manager.keys() == {"Maya Moss"}
    assert audit(org.dana, *nine_weeks).total.offenses == 0


@pytest.mark.django_db
def test_the_fairness_page_shows_the_flag_and_the_charts_to_vera_only(org, nine_weeks):
    from django.test import Client
    from django.urls import reverse

    from tests.conftest import PASSWORD

    for c in Consequence.objects.filter(offense__rep=org.ravi):
        waive_consequence(org.maya, c, "He brings in the numbers")
    for c in Consequence.objects.filter(offense__rep=org.owen):
        apply_consequence(org.omar, c, "Done as the policy says")
    start, end = nine_weeks
    query = {"from": start.isoformat(), "to": end.isoformat()}

    vera = Client()
    vera.login(username="vera", password=PASSWORD)
    page = vera.get(reverse("fairness"), query).content.decode()
    assert "⚑ Does Maya Moss waive more often than the other managers?" in page
    assert page.count('class="bars-bar bars-flag"') == 2  # the top quartile and Maya
    ravi = Client()
    ravi.login(username="ravi", password=PASSWORD)
    assert ravi.get(reverse("fairness"), query).status_code == 403


@pytest.mark.django_db
def test_the_audit_through_the_api_and_the_command_line(org, nine_weeks):
    import json
    from io import StringIO

    from django.core.management import call_command

    from tests.test_api_support import api_as, assert_error

    for c in Consequence.objects.filter(offense__rep=org.ravi):
        waive_consequence(org.maya, c, "He brings in the numbers")
    start, end = (d.isoformat() for d in nine_weeks)

    body = api_as(org.vera).get("fairness", **{"from": start, "to": end}).json()
    assert body["by_manager"]["Maya Moss"]["waived"] == 9
    assert {c["group"]: c["verdict"] for c in body["checks"]}["Omar Ortiz"] == "too few"
    assert_error(api_as(org.ravi).get("fairness"), 403)
    assert_error(api_as(org.vera).get("fairness", under="nobody"), 400)

    out = StringIO()
    call_command(
        "accountability",
        "fairness",
        "--as",
        "vera",
        "--from",
        start,
        "--to",
        end,
        "--format",
        "json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["by_rep"]["Ravi Rao"]["tier"] == "top quartile"


@pytest.mark.django_db
def test_the_fairness_page_says_what_it_could_not_read_instead_of_failing(org):
    from django.test import Client
    from django.urls import reverse

    from tests.conftest import PASSWORD

    vera = Client()
    vera.login(username="vera", password=PASSWORD)
    page = vera.get(reverse("fairness"), {"from": "2026-02-30", "under": "nobody"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "From: no such day" in text and "No one called &#x27;nobody&#x27;" in text
