"""The scorecard pages: who sees whose scores, what a violation says about itself, waiving, query budgets.

The history is made the way production makes it: deals and touches written
through the services with their real (back-dated) moments, then one full
evaluation per day with the real engine, which writes the violations and the
daily scores. "A fortnight" is the thirteen days before today and today.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from html import unescape
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.hygiene import scoring
from truepipe.hygiene.engine import end_of_day, evaluate
from truepipe.hygiene.models import RepScore, Violation, ViolationStatus
from truepipe.hygiene.policy import current_policy
from truepipe.hygiene.services import waive_violation
from truepipe.people.models import Role
from truepipe.people.services import create_person
from truepipe.pipeline import services as pipeline_services
from truepipe.web.views.scorecard import evidence_items, evidence_value

DAYS = 14


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    """A moment on `day` in the organisation's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def build_fortnight(org, settings, days: int = DAYS) -> SimpleNamespace:
    """Two weeks of work, then one evaluation per day.

    - Ravi (the rainmaker) opens a big platform deal and logs a few calls the
      first week, then goes quiet: the deal's next step goes stale, he misses
      his daily updates, then its close date passes. His score slides.
    - Rita (the meticulous logger) logs a call every working morning, and on
      day -8 gives her printers deal the next step it lacked. Hers climbs to 100.
    - Owen logs every other working day and never says what happens next on
      his Globex rollout. His score see-saws.

    This is a history load: the writes are back-dated, and the engine sees
    them at the evaluation of each day, not at the write. `org` should have been
    made with incremental evaluation off too (see the `fortnight` fixture), or
    the violations its deals opened *now* would be closed by the evaluations
    of the days before they existed.
    """
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    today = timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = first - dt.timedelta(days=3)
    platform = pipeline_services.create_opportunity(
        org.ravi, name="Acme platform", account=org.acme, stage=stage("Discovery"), amount=Decimal("90000"),
        close_date=today - dt.timedelta(days=5), next_step="Pricing call",
        next_step_date=first + dt.timedelta(days=1), via=Via.FORM, at=at(start),
    )  # fmt: skip
    initech_account = account_services.create_account(
        org.rita, name="Initech", domains=["initech.example"], via=Via.FORM, at=at(start)
    )
    initech = pipeline_services.create_opportunity(
        org.rita, name="Initech support", account=initech_account, stage=stage("Proposal"),
        amount=Decimal("18500"), close_date=today + dt.timedelta(days=30), next_step="Security review",
        next_step_date=today + dt.timedelta(days=20), via=Via.FORM, at=at(start),
    )  # fmt: skip
    printers = pipeline_services.create_opportunity(
        org.rita, name="Initech printers", account=initech_account, stage=stage("Prospecting"), via=Via.FORM,
        at=at(start),
    )  # fmt: skip
    rollout = pipeline_services.create_opportunity(
        org.owen, name="Globex rollout", account=org.globex, stage=stage("Qualification"), via=Via.FORM,
        at=at(start),
    )  # fmt: skip
    services = pipeline_services.create_opportunity(
        org.ravi, name="Acme services", account=org.acme, stage=stage("Proposal"), amount=Decimal("40000"),
        close_date=today + dt.timedelta(days=45), next_step="Send the order form",
        next_step_date=today + dt.timedelta(days=14), via=Via.FORM, at=at(start),
    )  # fmt: skip
    fixed_on = today - dt.timedelta(days=8)
    pipeline_services.update_opportunity(
        org.rita, printers,
        {"next_step": "Call the office manager", "next_step_date": today + dt.timedelta(days=10)},
        via=Via.FORM, at=at(fixed_on, 11),
    )  # fmt: skip
    working = [day for day in (first + dt.timedelta(days=n) for n in range(days - 1)) if day.weekday() < 5]
    for n, day in enumerate(working):
        touches = [(org.rita, initech)]
        if n < 3:
            touches.append((org.ravi, services))
        if n % 2 == 0:
            touches.append((org.owen, rollout))
        for rep, deal in touches:
            activity_services.log_activity(
                rep, kind="call", subject=f"Check-in {day:%b %d}", opportunity=deal,
                occurred_at=at(day, 9), logged_at=at(day, 9), via=Via.FORM,
            )  # fmt: skip
    for offset in range(days - 1, -1, -1):
        evaluate(end_of_day(today - dt.timedelta(days=offset)))
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = True
    return SimpleNamespace(
        **vars(org), today=today, first=first, platform=platform, services=services, initech=initech,
        printers=printers, rollout=rollout, fixed_on=fixed_on,
    )  # fmt: skip


@pytest.fixture
def fortnight(request, settings):
    """The personas (made with history loading on, like the rest) and their fortnight."""
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    return build_fortnight(request.getfixturevalue("org"), settings)


def client_for(persona: str | None) -> Client:
    client = Client()
    if persona:
        assert client.login(username=persona, password=PASSWORD)
    return client


def text_of(response) -> str:
    """The page's visible text, tags dropped and whitespace squeezed (for reading assertions)."""
    html = response.content.decode()
    html = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def live(rep, rule: str) -> Violation:
    return Violation.objects.get(rep=rep, rule=rule, live=True)


# ---------------------------------------------------------------- the history itself


@pytest.mark.django_db
def test_the_fortnight_gives_each_rep_a_daily_score_history(fortnight):
    days = RepScore.objects.filter(rep=fortnight.rita).values_list("day", flat=True)
    working = [
        fortnight.first + dt.timedelta(days=n)
        for n in range(DAYS)
        if (fortnight.first + dt.timedelta(days=n)).weekday() < 5
    ]
    assert sorted(days) == working
    assert live(fortnight.ravi, "past_due_close").status == ViolationStatus.OPEN
    resolved = Violation.objects.get(opportunity=fortnight.printers, rule="no_next_step")
    assert resolved.status == ViolationStatus.RESOLVED
    assert not Violation.objects.filter(closed_at__lt=F("opened_at")).exists()


# ---------------------------------------------------------------- who sees the scorecard

# GET /scorecard/: everyone in sales gets in; delivery is refused; the anonymous visitor logs in first.
SCORECARD = {"ravi": 200, "maya": 200, "omar": 200, "ada": 200, "eli": 200, "dana": 403, None: 302}
# Whose rows each persona finds on the scorecard (of the three reps).
ROWS = {
    "ravi": {"Ravi Rao"},
    "maya": {"Ravi Rao", "Rita Reyes"},
    "omar": {"Owen Oak"},
    "ada": {"Ravi Rao", "Rita Reyes", "Owen Oak"},
    "eli": {"Ravi Rao", "Rita Reyes", "Owen Oak"},
}
# GET /scorecard/<ravi>/: Ravi, his manager, the admin and the exec; nobody else.
RAVIS_PAGE = {"ravi": 200, "maya": 200, "omar": 404, "ada": 200, "eli": 200, "dana": 403, None: 302}
# POST a waive of one of Ravi's violations: his manager and the admin; the others are told why not.
RAVIS_WAIVE = {"ravi": 403, "maya": 200, "omar": 404, "ada": 200, "eli": 403, "dana": 403, None: 302}
PERSONAS = list(SCORECARD)


@pytest.fixture
def evaluated(org):
    """The personas as the conftest makes them, with tonight's evaluation done."""
    evaluate(end_of_day(timezone.localdate()))
    return org


def people_rows(response) -> set[str]:
    html = response.content.decode()
    return set(re.findall(r'class="sc-name" href="[^"]*">([^<]+)</a>', html))


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS, ids=[str(p) for p in PERSONAS])
def test_each_persona_reaches_the_scorecard_as_expected_and_sees_only_their_people(evaluated, persona):
    response = client_for(persona).get(reverse("scorecard"))
    assert response.status_code == SCORECARD[persona]
    if persona is None:
        assert response["Location"].startswith(reverse("login"))
    elif persona == "dana":
        assert "your role does not include them" in text_of(response)
    else:
        assert people_rows(response) == ROWS[persona]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS, ids=[str(p) for p in PERSONAS])
def test_each_persona_reaches_ravis_page_as_expected(evaluated, persona):
    response = client_for(persona).get(reverse("rep-scorecard", args=[evaluated.ravi.pk]))
    assert response.status_code == RAVIS_PAGE[persona]
    if response.status_code == 200:
        assert "Ravi Rao" in text_of(response)
        assert "Violations" in text_of(response)


@pytest.mark.django_db
def test_a_rep_cannot_open_a_colleagues_page(evaluated):
    assert client_for("ravi").get(reverse("rep-scorecard", args=[evaluated.rita.pk])).status_code == 404
    assert client_for("ravi").get(reverse("rep-scorecard", args=[evaluated.owen.pk])).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS, ids=[str(p) for p in PERSONAS])
def test_each_persona_may_or_may_not_waive_one_of_ravis_violations(evaluated, persona):
    violation = live(evaluated.ravi, "no_next_step")
    response = client_for(persona).post(
        reverse("violation-waive", args=[violation.pk]),
        {"reason": "Customer on holiday"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == RAVIS_WAIVE[persona]
    violation.refresh_from_db()
    if RAVIS_WAIVE[persona] == 200:
        assert violation.status == ViolationStatus.WAIVED
        assert violation.waived_reason == "Customer on holiday"
        assert "Waived" in text_of(response)
    else:
        assert violation.status == ViolationStatus.OPEN
    if persona in ("ravi", "eli"):
        assert "Only the rep's manager (or an admin) can waive a violation." in text_of(response)


# ---------------------------------------------------------------- the scorecard's content


@pytest.mark.django_db
def test_a_manager_sees_each_reps_score_change_trend_and_the_team_roll_up(fortnight):
    response = client_for("maya").get(reverse("scorecard"))
    html = response.content.decode()
    rows = {
        (r.username, r.is_team): r for r in scoring.scorecard(scoring.scored_people(), fortnight.today, 7)
    }
    ravi, rita, team = rows[("ravi", False)], rows[("rita", False)], rows[("maya", True)]
    assert people_rows(response) == {"Ravi Rao", "Rita Reyes"}
    assert "Team Maya Moss" in html and "Team Omar Ortiz" not in html
    for row in (ravi, rita, team):
        assert f"{row.score:.1f}" in html
    assert ravi.change is not None and f"{ravi.change:.1f}" in html
    assert f"Average score {team.score:.1f}" in text_of(response)  # her scope is her team
    assert html.count('<svg class="spark') == 2
    assert 'class="line-chart wide"' in html
    assert "Rita Reyes" in text_of(response) and "Team Maya Moss average" in text_of(response)


@pytest.mark.django_db
def test_the_page_shows_the_same_numbers_as_truepipe_scorecard(fortnight):
    for period in ("7", "30", "week"):
        out = StringIO()
        call_command(
            "scorecard",
            "--as-of",
            fortnight.today.isoformat(),
            "--period",
            period,
            "--format",
            "json",
            stdout=out,
        )
        expected = json.loads(out.getvalue())
        response = client_for("ada").get(
            reverse("scorecard"), {"period": period, "as_of": fortnight.today.isoformat()}
        )
        html = response.content.decode()
        for row in expected:
            assert row["name"] in html
            if row["score"] is not None:
                assert f"{row['score']:.1f}" in html


@pytest.mark.django_db
def test_the_trend_covers_the_period_asked_for(fortnight):
    week = client_for("maya").get(reverse("scorecard"), {"period": "7"}).content.decode()
    month = client_for("maya").get(reverse("scorecard"), {"period": "30"}).content.decode()
    # Rita scored every working day of the fortnight: a week shows some of those days, a month all.
    rita_days = RepScore.objects.filter(rep=fortnight.rita).count()
    week_days = RepScore.objects.filter(
        rep=fortnight.rita, day__gt=fortnight.today - dt.timedelta(days=7)
    ).count()
    assert week.count("Rita Reyes, ") == 2 * week_days  # a tooltip per point, in the wide and narrow chart
    assert month.count("Rita Reyes, ") == 2 * rita_days


@pytest.mark.django_db
def test_an_exec_narrows_the_scorecard_to_one_team(fortnight):
    response = client_for("eli").get(reverse("scorecard"), {"team": fortnight.omar.pk})
    assert people_rows(response) == {"Owen Oak"}
    assert "Team Omar Ortiz" in response.content.decode()


@pytest.mark.django_db
def test_a_manager_cannot_narrow_to_a_team_outside_her_subtree(fortnight):
    response = client_for("maya").get(reverse("scorecard"), {"team": fortnight.omar.pk})
    assert people_rows(response) == {"Ravi Rao", "Rita Reyes"}
    assert "Team: Select a valid choice" in text_of(response)


@pytest.mark.django_db
def test_people_can_be_ordered_worst_first(fortnight):
    response = client_for("ada").get(reverse("scorecard"), {"sort": "score"})
    names = re.findall(r'class="sc-name" href="[^"]*">([^<]+)</a>', response.content.decode())
    scores = {r.name: r.score for r in scoring.scorecard(scoring.scored_people(), fortnight.today, 7)}
    assert [scores[n] for n in names] == sorted(scores[n] for n in names)


@pytest.mark.django_db
def test_a_bad_period_or_date_falls_back_to_the_default_and_says_so(fortnight):
    response = client_for("maya").get(reverse("scorecard"), {"period": "fortnight", "as_of": "yesterday"})
    assert response.status_code == 200
    text = text_of(response)
    assert "Period: Select a valid choice" in text and "As of: Enter a valid date" in text
    assert f"{fortnight.today:%b} {fortnight.today.day}, {fortnight.today:%Y} (7 days)" in text


@pytest.mark.django_db
def test_an_htmx_filter_change_gets_only_the_scorecard_body(fortnight):
    response = client_for("maya").get(reverse("scorecard"), {"period": "30"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="scorecard-body">')
    assert "<html" not in html


@pytest.mark.django_db
def test_a_rep_sees_only_himself_and_no_team_average_in_a_team_of_two(fortnight):
    response = client_for("ravi").get(reverse("scorecard"))
    text = text_of(response)
    assert people_rows(response) == {"Ravi Rao"}
    assert "Rita Reyes" not in text and "Owen Oak" not in text
    assert "shown for teams of three or more" in text


@pytest.mark.django_db
def test_a_rep_sees_his_teams_average_once_three_scored_people_share_it(fortnight, settings):
    rosa = create_person(
        None, username="rosa", full_name="Rosa Reed", role=Role.REP, manager=fortnight.maya, team="East",
        password=PASSWORD,
    )  # fmt: skip
    day = fortnight.today + dt.timedelta(days=1)
    while day.weekday() > 4:
        day += dt.timedelta(days=1)
    evaluate(end_of_day(day))
    response = client_for("ravi").get(reverse("scorecard"), {"as_of": day.isoformat()})
    text = text_of(response)
    team = next(
        r
        for r in scoring.scorecard(scoring.scored_people(fortnight.maya.profile.path), day, 7)
        if r.is_team and r.user_id == fortnight.maya.pk
    )
    assert team.reps == 3 and rosa.pk
    assert "Your team" in text and f"{team.score:.1f}" in text and "3 people" in text
    assert "Rosa Reed" not in text and "Rita Reyes" not in text


# ---------------------------------------------------------------- one rep's page


@pytest.mark.django_db
def test_the_rep_page_explains_a_violation_with_its_rule_evidence_and_cost(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    response = client_for("maya").get(reverse("rep-scorecard", args=[fortnight.ravi.pk]))
    html = response.content.decode()
    card = html[html.index(f'id="violation-{overdue.pk}"') :]
    card = text_of(SimpleNamespace(content=card[: card.index("</li>")].encode()))
    [cost] = scoring.violation_costs([overdue], current_policy()).values()
    assert "Close date in the past" in card
    assert "move the date, or close the deal as won or lost" in card  # the rule, in plain language
    assert overdue.summary in card
    assert f"Close date {overdue.opportunity.close_date:%b %d, %Y}" in card
    assert f"Days overdue {overdue.evidence['days_overdue']}" in card
    assert f"Evidence, as of {overdue.opened_at:%b %d, %Y}" in card
    assert f"−{cost:g} points a day" in card
    assert "Deal: Acme platform" in card


@pytest.mark.django_db
def test_the_rep_page_shows_the_daily_score_chart_and_what_the_last_day_cost(fortnight):
    response = client_for("ravi").get(reverse("rep-scorecard", args=[fortnight.ravi.pk]), {"period": "30"})
    text = text_of(response)
    last = RepScore.objects.filter(rep=fortnight.ravi).latest("day")
    assert f"lost {last.points_lost.normalize():f} points of a possible {last.capacity.normalize():f}" in text
    days = RepScore.objects.filter(rep=fortnight.ravi).count()
    assert response.content.decode().count("<circle") == 2 * days


@pytest.mark.django_db
def test_closed_violations_say_when_and_how_they_closed(fortnight):
    fixed = Violation.objects.get(opportunity=fortnight.printers, rule="no_next_step")
    pipeline_services.update_opportunity(
        fortnight.ravi, fortnight.platform,
        {"next_step": "Pricing call, again", "next_step_date": fortnight.today + dt.timedelta(days=3)},
        via=Via.FORM,
    )  # fmt: skip
    by_ravi = Violation.objects.get(opportunity=fortnight.platform, rule="no_next_step")
    assert by_ravi.status == ViolationStatus.RESOLVED and by_ravi.resolved_by == fortnight.ravi
    rita_page = text_of(client_for("maya").get(reverse("rep-scorecard", args=[fortnight.rita.pk])))
    ravi_page = text_of(client_for("maya").get(reverse("rep-scorecard", args=[fortnight.ravi.pk])))
    assert f"Resolved {fixed.closed_at:%b} {fixed.closed_at.day}, {fixed.closed_at:%Y}" in rita_page
    assert "via the evaluation" in rita_page
    assert "by Ravi Rao via Form" in ravi_page
    assert "Expired" in ravi_page  # missed days that aged out of the window


@pytest.mark.django_db
def test_the_violations_filter_by_status_and_rule(fortnight):
    url = reverse("rep-scorecard", args=[fortnight.ravi.pk])
    client = client_for("maya")
    expired = client.get(url, {"status": "expired"}).content.decode()
    ids = {int(i) for i in re.findall(r'id="violation-(\d+)"', expired)}
    assert ids == set(
        Violation.objects.filter(rep=fortnight.ravi, status=ViolationStatus.EXPIRED).values_list(
            "pk", flat=True
        )
    )
    overdue = client.get(url, {"rule": "past_due_close"}).content.decode()
    ids = {int(i) for i in re.findall(r'id="violation-(\d+)"', overdue)}
    assert ids == {live(fortnight.ravi, "past_due_close").pk}
    both = client.get(url, {"rule": "past_due_close", "status": "resolved"})
    assert "No violation matches these filters." in text_of(both)


@pytest.mark.django_db
def test_only_those_who_may_waive_see_the_waive_form(fortnight):
    url = reverse("rep-scorecard", args=[fortnight.ravi.pk])
    open_count = Violation.objects.filter(rep=fortnight.ravi, status=ViolationStatus.OPEN).count()
    assert client_for("maya").get(url).content.decode().count("Waive violation") == open_count
    assert client_for("ada").get(url).content.decode().count("Waive violation") == open_count
    assert "Waive violation" not in client_for("ravi").get(url).content.decode()
    assert "Waive violation" not in client_for("eli").get(url).content.decode()


@pytest.mark.django_db
def test_a_manager_waives_with_a_reason_and_the_card_says_who_and_why(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    response = client_for("maya").post(
        reverse("violation-waive", args=[overdue.pk]),
        {"reason": "Budget frozen until Q3"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    text = text_of(response)
    assert (
        response.content.decode()
        .lstrip()
        .startswith(f'<li class="violation sev-high status-waived" id="violation-{overdue.pk}"')
    )
    assert "by Maya Moss: “Budget frozen until Q3”" in text
    assert "Waive violation" not in text
    overdue.refresh_from_db()
    assert overdue.status == ViolationStatus.WAIVED and overdue.waived_by == fortnight.maya and overdue.live


@pytest.mark.django_db
def test_waiving_needs_a_reason_and_says_so_next_to_the_field(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    response = client_for("maya").post(
        reverse("violation-waive", args=[overdue.pk]), {"reason": "   "}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "A reason is required." in text_of(response)
    assert 'class="error" role="alert"' in response.content.decode()
    overdue.refresh_from_db()
    assert overdue.status == ViolationStatus.OPEN


@pytest.mark.django_db
def test_waiving_twice_is_refused_inline(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    waive_violation(fortnight.ada, overdue, "Data migration")
    response = client_for("maya").post(
        reverse("violation-waive", args=[overdue.pk]), {"reason": "Again"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "already waived" in text_of(response)


@pytest.mark.django_db
def test_without_htmx_a_waive_goes_back_to_the_reps_page_with_a_message(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    client = client_for("maya")
    response = client.post(reverse("violation-waive", args=[overdue.pk]), {"reason": "Customer asked"})
    assert response.status_code == 302
    assert (
        response["Location"]
        == reverse("rep-scorecard", args=[fortnight.ravi.pk]) + f"#violation-{overdue.pk}"
    )
    page = text_of(client.get(response["Location"]))
    assert "Waived. It no longer counts against the score." in page
    stale = Violation.objects.get(opportunity=fortnight.platform, rule="no_next_step", live=True)
    blank = client.post(reverse("violation-waive", args=[stale.pk]), {"reason": ""})
    assert "Say why the violation is waived." in text_of(client.get(blank["Location"]))


@pytest.mark.django_db
def test_a_waived_violation_stops_counting_at_the_next_evaluation(fortnight):
    overdue = live(fortnight.ravi, "past_due_close")
    client_for("maya").post(reverse("violation-waive", args=[overdue.pk]), {"reason": "Budget frozen"})
    tomorrow = fortnight.today + dt.timedelta(days=1)
    evaluate(end_of_day(tomorrow))
    assert live(fortnight.ravi, "past_due_close").pk == overdue.pk  # not reopened
    page = text_of(client_for("maya").get(reverse("rep-scorecard", args=[fortnight.ravi.pk])))
    assert "Waived" in page and "Budget frozen" in page


@pytest.mark.django_db
def test_deal_names_and_evidence_are_escaped(fortnight):
    pipeline_services.update_opportunity(
        fortnight.rita, fortnight.initech,
        {"name": "<script>alert(1)</script>", "next_step": "<b>call</b>",
         "next_step_date": fortnight.today - dt.timedelta(days=5)},
        via=Via.FORM,
    )  # fmt: skip
    opened = Violation.objects.get(opportunity=fortnight.initech, rule="no_next_step", live=True)
    assert opened.evidence["next_step"] == "<b>call</b>"
    html = client_for("maya").get(reverse("rep-scorecard", args=[fortnight.rita.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "<b>call</b>" not in html
    assert "Deal: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<dt>Next step</dt><dd>&lt;b&gt;call&lt;/b&gt;</dd>" in html


# ---------------------------------------------------------------- evidence as text


def test_evidence_reads_as_labelled_plain_text():
    items = dict(
        evidence_items(
            {
                "close_date": "2025-03-04",
                "days_overdue": 3,
                "since_creation": True,
                "last": None,
                "missing": ["next_step", "amount"],
                "history": [{"from": "2025-03-01", "to": "2025-03-20", "on": "2025-02-10"}],
                "lag_hours": 50.5,
                "next_step": "Send_quote v2",
                "as_of": "2025-03-07T23:59:59+00:00",
            }
        )
    )
    assert items == {
        "Close date": "Mar 04, 2025",
        "Days overdue": "3",
        "Never since it was created": "yes",
        "Last time": "—",
        "Missing": "next step, amount",
        "Pushes": "Mar 01, 2025 → Mar 20, 2025 on Feb 10, 2025",
        "Logged after (hours)": "50.5",
        "Next step": "Send_quote v2",
    }


def test_an_unknown_evidence_key_is_still_shown():
    assert evidence_items({"new_fact": {"a_b": 1}}) == [("New fact", "a b: 1")]
    assert evidence_value("2025-03-07T10:00:00+00:00").startswith("Mar 07, 2025")


# ---------------------------------------------------------------- query budgets


def queries_for(client: Client, url: str, data: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, data or {})
    assert response.status_code == 200
    return len(queries)


def next_weekday(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while day.weekday() > 4:
        day += dt.timedelta(days=1)
    return day


@pytest.mark.django_db
def test_the_scorecard_costs_the_same_queries_for_5_and_200_people(org):
    """For a rep, a manager (subtree), an exec and an admin (everything)."""
    clients = {persona: client_for(persona) for persona in ("ravi", "maya", "eli", "ada")}
    first = next_weekday(timezone.localdate() - dt.timedelta(days=1))
    evaluate(end_of_day(first))
    url = reverse("scorecard")
    for client in clients.values():
        client.get(url, {"as_of": first.isoformat()})  # warm per-process caches
    few = {who: queries_for(c, url, {"as_of": first.isoformat()}) for who, c in clients.items()}

    for n in range(195):
        create_person(
            None, username=f"rep{n}", full_name=f"Rep {n}", role=Role.REP,
            manager=org.maya if n % 2 else org.omar, password=PASSWORD,
        )  # fmt: skip
    later = next_weekday(first)
    evaluate(end_of_day(later))
    assert RepScore.objects.filter(day=later).count() >= 198
    many = {
        who: queries_for(c, url, {"as_of": later.isoformat(), "period": "30"}) for who, c in clients.items()
    }
    assert many == few
    assert max(few.values()) <= 30


@pytest.mark.django_db
def test_the_rep_page_costs_the_same_queries_for_5_and_500_violations(org, settings):
    maya = client_for("maya")
    url = reverse("rep-scorecard", args=[org.ravi.pk])

    def deals_without_next_step(start: int, stop: int) -> None:
        settings.TRUEPIPE_INCREMENTAL_EVALUATION = False  # a batch, like an import: the evaluation finds them
        for n in range(start, stop):
            pipeline_services.create_opportunity(
                org.ravi, name=f"Zeta deal {n}", account=org.acme, stage=stage("Prospecting"),
                amount=Decimal(1000 + n), via=Via.IMPORT,
            )  # fmt: skip
        settings.TRUEPIPE_INCREMENTAL_EVALUATION = True

    deals_without_next_step(0, 4)
    evaluate()
    waive_violation(
        org.maya, Violation.objects.filter(rep=org.ravi, status=ViolationStatus.OPEN).first(), "x"
    )
    assert 5 <= Violation.objects.filter(rep=org.ravi).count() < 10
    maya.get(url)
    few = queries_for(maya, url)

    deals_without_next_step(4, 500)
    evaluate(timezone.now() + dt.timedelta(minutes=5))
    assert Violation.objects.filter(rep=org.ravi).count() >= 500
    assert queries_for(maya, url) == few <= 30
    assert queries_for(maya, url, {"page": "3", "status": "open"}) == few
