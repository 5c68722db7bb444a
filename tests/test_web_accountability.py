"""The accountability page: Ravi acknowledges and disputes, Maya applies, waives and resolves,
Vera sees what went unenforced; refused decisions keep what was typed."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD
from truepipe.accountability.models import Consequence, ConsequenceState, DisputeState, Offense, OffenseStatus
from truepipe.hygiene.engine import evaluate
from truepipe.hygiene.policy import current_policy, publish_policy


def _as(person) -> Client:
    client = Client()
    assert client.login(username=person.username, password=PASSWORD)
    return client


def _strict_weeks(*days_ahead: int) -> list[Offense]:
    """A strict policy, then nights a week apart: Ravi's untouched Acme renewal makes his offenses."""
    document = copy.deepcopy(current_policy().document)
    document["accountability"] = {"weekly_score_below": 0, "grace_days": 3, "min_unresolved": 1}
    publish_policy(None, document, note="strict")
    for days in days_ahead:
        evaluate(timezone.now() + dt.timedelta(days=days))
    return list(Offense.objects.filter(rep__username="ravi").order_by("day"))


@pytest.fixture
def offenses(org):
    return _strict_weeks(20, 27, 34, 41)


def _current(offense: Offense) -> Consequence:
    return offense.consequences.get(replaced_by__isnull=True)


@pytest.mark.django_db
def test_ravi_sees_his_offenses_with_what_comes_next_and_acknowledges_one(org, offenses):
    page = _as(org.ravi).get(reverse("accountability"))

    text = page.content.decode()
    assert page.status_code == 200
    assert "Your offenses" in text and offenses[0].week in text
    assert "Written warning and coaching conversation" in text
    assert "would be level 4" in text
    assert "To decide" not in text  # he decides nothing about himself

    done = _as(org.ravi).post(reverse("offense-acknowledge", args=[offenses[0].pk]), follow=True)
    assert "Acknowledged the offense" in done.content.decode()
    assert Offense.objects.get(pk=offenses[0].pk).acknowledged_at is not None


@pytest.mark.django_db
def test_a_dispute_without_a_reason_is_refused_on_the_page_and_one_with_a_reason_waits_for_maya(
    org, offenses
):
    url = reverse("offense-dispute", args=[offenses[0].pk])

    refused = _as(org.ravi).post(url, {"reason": "   "})
    assert refused.status_code == 400
    assert "Nothing was saved: Say why the offense is wrong." in refused.content.decode()

    _as(org.ravi).post(url, {"reason": "The customer asked us to pause"})
    assert _current(offenses[0]).state == ConsequenceState.DISPUTED
    queue = _as(org.maya).get(reverse("accountability")).content.decode()
    assert "Disputes to resolve" in queue and "The customer asked us to pause" in queue


@pytest.mark.django_db
def test_maya_applies_waives_and_upholds_from_the_page(org, offenses):
    warning, hold = _current(offenses[0]), _current(offenses[1])
    maya = _as(org.maya)
    assert "To decide" in maya.get(reverse("accountability")).content.decode()

    empty = maya.post(reverse("consequence-apply", args=[warning.pk]), {"note": ""})
    assert empty.status_code == 400 and "Say what was done" in empty.content.decode()
    maya.post(reverse("consequence-apply", args=[warning.pk]), {"note": "Coaching session held Monday"})
    maya.post(reverse("consequence-waive", args=[hold.pk]), {"reason": "Quarter-end freeze"})
    assert Consequence.objects.get(pk=warning.pk).state == ConsequenceState.APPLIED
    assert Consequence.objects.get(pk=hold.pk).state == ConsequenceState.WAIVED

    _as(org.ravi).post(reverse("offense-dispute", args=[offenses[2].pk]), {"reason": "Deal was lost already"})
    dispute = offenses[2].disputes.get()
    undecided = maya.post(reverse("dispute-resolve", args=[dispute.pk]), {"note": "Pressed Enter"})
    assert undecided.status_code == 400 and "Choose to uphold or to reject" in undecided.content.decode()
    maya.post(
        reverse("dispute-resolve", args=[dispute.pk]), {"decision": "uphold", "note": "Confirmed in CRM"}
    )
    offenses[2].refresh_from_db()
    assert offenses[2].status == OffenseStatus.OVERTURNED
    assert offenses[2].disputes.get().state == DisputeState.UPHELD


@pytest.mark.django_db
def test_another_teams_manager_cannot_even_find_ravis_consequence(org, offenses):
    warning = _current(offenses[0])
    for outsider in (org.omar, org.owen, org.dana):
        response = _as(outsider).post(reverse("consequence-apply", args=[warning.pk]), {"note": "Done"})
        assert response.status_code == 404
    assert (
        _as(org.ravi).post(reverse("consequence-apply", args=[warning.pk]), {"note": "Done"}).status_code
        == 403
    )
    assert Consequence.objects.get(pk=warning.pk).state == ConsequenceState.PENDING
    assert Client().get(reverse("accountability")).status_code == 302


@pytest.mark.django_db
def test_vera_sees_mayas_unenforced_consequences_and_maya_reported(org):
    _strict_weeks(20, 27, 34, 41, 48)  # four consequences, the first two left past their deadline

    page = _as(org.vera).get(reverse("accountability")).content.decode()

    assert "Unenforced" in page and "unenforced, escalated to Vera Vance" in page
    assert "Maya Moss</strong> let 2 consequences pass their deadline" in page


@pytest.mark.django_db
def test_the_policy_page_explains_the_ladder_and_takes_an_acknowledgement(org):
    ravi = _as(org.ravi)
    page = ravi.get(reverse("policy")).content.decode()
    assert "When it becomes an offense" in page
    assert "Hold on reimbursement of phone, fuel and entertainment expenses</strong> for 30 days" in page
    assert "I have read policy v0" in page
    assert "Ravi Rao" in _as(org.maya).get(reverse("policy")).content.decode()  # not yet acknowledged

    ravi.post(reverse("policy-acknowledge"))

    assert "You acknowledged v0" in ravi.get(reverse("policy")).content.decode()
    assert "Ravi Rao" not in _as(org.maya).get(reverse("policy")).content.decode()


@pytest.mark.django_db
def test_the_accountability_page_costs_the_same_queries_for_one_offense_as_for_many(org):
    def queries() -> int:
        client = _as(org.vera)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("accountability")).status_code == 200
        return len(captured)

    _strict_weeks(20, 27, 34, 41, 48)  # some offenses, some escalated
    few = (Offense.objects.count(), queries())
    for days in (55, 62, 69, 76, 83):
        evaluate(timezone.now() + dt.timedelta(days=days))
    assert Offense.objects.count() >= few[0] + 5
    assert queries() == few[1]


@pytest.mark.django_db
def test_a_rep_is_not_shown_how_his_manager_follows_through(org):
    _strict_weeks(20, 27, 34, 48)  # Maya lets two pass: reported to Vera, not to Ravi

    assert "let 2 consequences pass" in _as(org.vera).get(reverse("accountability")).content.decode()
    assert "pass their deadline" not in _as(org.ravi).get(reverse("accountability")).content.decode()


@pytest.mark.parametrize("query", ["?to=0001-01-01", "?from=9999-12-31", "?to=2026-02-30"])
def test_a_fairness_date_out_of_range_falls_back_with_a_message_not_a_server_error(org, query):
    response = _as(org.vera).get("/accountability/fairness/" + query, follow=True)

    assert response.status_code == 200
    assert "showing the default" in response.content.decode()
