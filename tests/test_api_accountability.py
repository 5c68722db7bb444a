"""The accountability loop through the API: Ravi disputes, Maya applies, waives and resolves,
and nobody outside Ravi's reporting line sees or decides anything."""

from __future__ import annotations

import pytest

from tests.test_api_support import api_as, assert_error
from tests.test_web_accountability import _strict_weeks
from truepipe.accountability.models import PolicyAcknowledgement


@pytest.fixture
def offenses(org):
    return _strict_weeks(20, 27, 34, 41)


@pytest.mark.django_db
def test_ravi_lists_his_offenses_with_evidence_and_consequences(org, offenses):
    body = api_as(org.ravi).get("offenses", ordering="day").json()

    assert body["count"] == 3
    first = body["items"][0]
    assert (first["rep"]["username"], first["level"], first["status"]) == ("ravi", 1, "active")
    assert first["violations"] and first["consequences"][0]["name"].startswith("Written warning")
    assert first["consequences"][0]["owner"]["username"] == "maya"


@pytest.mark.django_db
def test_maya_sees_what_she_must_decide_and_applies_and_waives(org, offenses):
    maya = api_as(org.maya)
    mine = maya.get("consequences", mine="true", state="pending").json()
    assert [c["level"] for c in mine["items"]] == [1, 2, 3]
    warning, hold = mine["items"][0]["id"], mine["items"][1]["id"]

    applied = maya.post(f"consequences/{warning}/apply", {"note": "Coached on Monday", "on": "2026-11-30"})
    assert applied.status_code == 200 and applied.json()["state"] == "applied"
    assert applied.json()["applied_on"] == "2026-11-30"
    assert_error(maya.post(f"consequences/{hold}/waive", {"reason": ""}), 400, "invalid")
    assert_error(maya.post(f"consequences/{hold}/waive", {"reason": "x", "extra": 1}), 400)
    waived = maya.post(f"consequences/{hold}/waive", {"reason": "Customer freeze"})
    assert waived.json()["state"] == "waived"
    assert_error(maya.post(f"consequences/{hold}/apply", {"note": "Changed my mind"}), 400, "invalid")


@pytest.mark.django_db
def test_a_dispute_round_trip_overturns_and_moves_the_later_offenses_down(org, offenses):
    first = offenses[0].pk
    dispute = api_as(org.ravi).post(f"offenses/{first}/dispute", {"reason": "Customer asked to pause"})
    assert dispute.status_code == 201 and dispute.json()["resolver"]["username"] == "maya"

    assert_error(
        api_as(org.ravi).post(
            f"disputes/{dispute.json()['id']}/resolve", {"decision": "uphold", "note": "Me"}
        ),
        403,
    )
    resolved = api_as(org.maya).post(
        f"disputes/{dispute.json()['id']}/resolve", {"decision": "uphold", "note": "Confirmed"}
    )
    assert resolved.json()["state"] == "upheld"
    after = api_as(org.ravi).get("offenses", ordering="day").json()["items"]
    assert [(o["status"], o["level"]) for o in after] == [("overturned", 1), ("active", 1), ("active", 2)]


@pytest.mark.django_db
def test_outside_ravis_line_his_offenses_do_not_exist(org, offenses):
    first = offenses[0].pk
    for persona in (org.omar, org.owen, org.rita, org.dana):
        client = api_as(persona)
        assert client.get("offenses", rep="ravi").json()["count"] == 0
        assert_error(client.get(f"offenses/{first}"), 404, "not_found")
        assert_error(client.post(f"offenses/{first}/dispute", {"reason": "x"}), 404)
    assert api_as(org.eli).get("offenses", rep="ravi").json()["count"] == 3  # exec reads everything
    assert_error(api_as(None).get("offenses"), 401)


@pytest.mark.django_db
def test_acknowledging_the_policy_over_the_api(org):
    response = api_as(org.ravi).post("policy/acknowledgements")
    assert response.status_code == 201 and response.json()["version"] == 0
    assert PolicyAcknowledgement.objects.filter(user=org.ravi, version=0).exists()


@pytest.mark.django_db
def test_the_offense_list_costs_the_same_queries_for_two_offenses_as_for_many(org):
    import datetime as dt

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from truepipe.hygiene.engine import evaluate

    client = api_as(org.maya)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("offenses").status_code == 200
        return len(captured)

    _strict_weeks(20, 27, 34)
    few = queries()
    for days in (41, 48, 55, 62, 69):
        evaluate(timezone.now() + dt.timedelta(days=days))
    assert api_as(org.maya).get("offenses").json()["count"] >= 6
    assert queries() == few
