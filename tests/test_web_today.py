"""The /today/ page: the rep works through the daily queue in place; managers look, read-only."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD
from tests.test_queue import deal_untouched_for, grow, in_days, open_rules
from truepipe.activities.models import Activity
from truepipe.core.models import Via
from truepipe.hygiene import policy as policy_module
from truepipe.hygiene.engine import evaluate
from truepipe.hygiene.models import QueueDay, QueueSetting, Snooze, Violation, ViolationStatus
from truepipe.hygiene.services import snooze_opportunity
from truepipe.pipeline.models import Opportunity, OpportunityChange
from truepipe.pipeline.services import update_opportunity

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    policy_module._cache.clear()
    yield
    policy_module._cache.clear()


def client_for(persona: str | None) -> Client:
    client = Client()
    if persona:
        assert client.login(username=persona, password=PASSWORD)
    return client


def item_of(deal: Opportunity, rule: str) -> Violation:
    return Violation.objects.get(opportunity=deal, rule=rule, live=True)


def fix_url(violation: Violation, action: str) -> str:
    return reverse("today-fix", args=[violation.pk, action])


# --- who sees what ----------------------------------------------------------------------------

PERSONAS = ["ravi", "maya", "vera", "omar", "ada", "eli", "dana", "rita", None]
# Ravi's queue: Ravi (his own), his managers up the line, the admin and the exec (read-only);
# not another team's manager, not delivery, not another rep.
RAVIS_QUEUE = {
    "ravi": 200, "maya": 200, "vera": 200, "omar": 404, "ada": 200, "eli": 200, "dana": 404, "rita": 404,
}  # fmt: skip


@pytest.mark.parametrize("persona", PERSONAS)
def test_everyone_signed_in_has_their_own_today_page_and_anonymous_visitors_log_in(org, persona):
    response = client_for(persona).get(reverse("today"))
    if persona is None:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == 200
        assert b'id="today-progress"' in response.content


@pytest.mark.parametrize("persona", PERSONAS)
def test_ravis_queue_is_seen_by_his_managers_the_admin_and_the_exec_only(org, persona):
    response = client_for(persona).get(reverse("today") + f"?rep={org.ravi.pk}")
    if persona is None:
        assert response.status_code == 302
        return
    assert response.status_code == RAVIS_QUEUE[persona]
    if response.status_code == 200:
        assert b"Acme renewal" in response.content


def test_a_manager_sees_a_reps_queue_read_only_and_records_nothing(org):
    response = client_for("maya").get(reverse("today") + f"?rep={org.ravi.pk}")
    page = response.content.decode()
    assert "Ravi Rao’s queue" in page and "read-only" in page
    assert "No next step, or its date has passed" in page
    assert "/today/items/" not in page and "Time box:" not in page  # nothing to click
    assert not QueueDay.objects.exists()


def test_a_managers_list_of_people_offers_only_their_subtree(org):
    page = client_for("maya").get(reverse("today")).content.decode()
    assert "Ravi Rao" in page and "Rita Reyes" in page
    assert "Owen Oak" not in page


def test_nonsense_in_the_rep_parameter_is_a_404(org):
    assert client_for("maya").get(reverse("today") + "?rep=abc").status_code == 404
    assert client_for("maya").get(reverse("today") + "?rep=999999").status_code == 404


def test_readers_without_deals_get_an_empty_queue_and_no_record(org):
    for persona in ("eli", "dana"):
        page = client_for(persona).get(reverse("today")).content.decode()
        assert "Nothing to fix today" in page
    assert not QueueDay.objects.exists()


# --- the rep's page ---------------------------------------------------------------------------


def test_the_rep_sees_his_queue_with_progress_minutes_and_lessons(org):
    page = client_for("ravi").get(reverse("today")).content.decode()
    assert "No next step, or its date has passed" in page
    assert re.search(r"data-done>0 of 1<", page)
    assert re.search(r"data-left>1 min<", page)
    assert "For your information" in page and "Surprise win" in page
    assert "nav" in page and 'href="/today/" class="active"' in page
    assert QueueDay.objects.filter(rep=org.ravi).count() == 1


def test_setting_the_next_step_inline_clears_the_item_and_moves_the_progress(org):
    violation = item_of(org.ravi_open, "no_next_step")
    client = client_for("ravi")
    client.get(reverse("today"))

    response = client.post(
        fix_url(violation, "next_step"),
        {
            "next_step": "Send the revised quote",
            "next_step_date": in_days(3),
            "version": org.ravi_open.version,
        },
        **HTMX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="item-{violation.pk}"' in html and "q-item" in html and " done" in html
    assert "Next step set for" in html
    assert 'id="today-progress"' in html and 'hx-swap-oob="true"' in html
    assert re.search(r"data-done>1 of 1<", html)
    assert "Done for today." in html
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.RESOLVED and violation.resolved_by == org.ravi
    deal = Opportunity.objects.get(pk=org.ravi_open.pk)
    assert deal.next_step == "Send the revised quote"
    assert OpportunityChange.objects.filter(opportunity=deal, field="next_step", via=Via.FORM).exists()
    assert QueueDay.objects.get(rep=org.ravi).completed_at is not None


def test_a_new_close_date_in_the_past_is_refused_at_the_field_and_nothing_changes(org):
    deal = deal_untouched_for(org.ravi, "Overdue", 3, close_date=in_days(-5))
    evaluate()
    violation = item_of(deal, "past_due_close")
    client = client_for("ravi")
    client.get(reverse("today"))

    response = client.post(fix_url(violation, "close_date"), {"close_date": in_days(-1)}, **HTMX)

    assert response.status_code == 400
    html = response.content.decode()
    assert "Pick today or a later date." in html
    assert f'<details class="q-fix" name="fix-{violation.pk}" open>' in html  # the form stays open
    assert Opportunity.objects.get(pk=deal.pk).close_date == in_days(-5)

    ok = client.post(fix_url(violation, "close_date"), {"close_date": in_days(20)}, **HTMX)
    assert ok.status_code == 200 and "Close date moved to" in ok.content.decode()
    assert Opportunity.objects.get(pk=deal.pk).close_date == in_days(20)


def test_a_stale_form_does_not_overwrite_someone_elses_change(org):
    deal = deal_untouched_for(org.ravi, "Overdue", 3, close_date=in_days(-5))
    evaluate()
    violation = item_of(deal, "past_due_close")
    read_version = Opportunity.objects.get(pk=deal.pk).version
    update_opportunity(org.maya, deal, {"amount": 61_000}, via=Via.FORM)  # the manager, meanwhile

    response = client_for("ravi").post(
        fix_url(violation, "close_date"), {"close_date": in_days(20), "version": read_version}, **HTMX
    )

    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    assert Opportunity.objects.get(pk=deal.pk).close_date == in_days(-5)


def test_logging_the_last_touch_clears_every_item_it_fixes_on_that_deal(org):
    deal = deal_untouched_for(org.ravi, "Quiet for weeks", 35, amount=300_000)
    evaluate()
    touch, update = item_of(deal, "stale_touch"), item_of(deal, "stale_update")
    client = client_for("ravi")
    client.get(reverse("today"))

    response = client.post(
        fix_url(touch, "touch"),
        {"kind": "meeting", "subject": "Lunch with the CFO", "occurred_on": timezone.localdate()},
        **HTMX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="item-{update.pk}"' in html  # the deal's other item is redrawn out of band, done too
    assert html.count('hx-swap-oob="true"') == 2
    activity = Activity.objects.get(opportunity=deal)
    assert (activity.kind, activity.subject, activity.owner) == ("meeting", "Lunch with the CFO", org.ravi)
    assert open_rules(deal).isdisjoint({"stale_touch", "stale_update"})


def test_a_touch_on_an_earlier_day_is_logged_on_that_day_and_never_in_the_future(org):
    deal = deal_untouched_for(org.ravi, "Quiet", 20)
    evaluate()
    violation = item_of(deal, "stale_touch")
    client = client_for("ravi")
    future = client.post(
        fix_url(violation, "touch"), {"kind": "call", "subject": "Call", "occurred_on": in_days(1)}, **HTMX
    )
    assert future.status_code == 400 and not Activity.objects.filter(opportunity=deal).exists()

    client.post(
        fix_url(violation, "touch"), {"kind": "call", "subject": "Call", "occurred_on": in_days(-2)}, **HTMX
    )
    assert timezone.localdate(Activity.objects.get(opportunity=deal).occurred_at) == in_days(-2)


def test_snoozing_from_the_queue_needs_a_reason_then_takes_the_deal_off_the_clocks(org):
    deal = deal_untouched_for(org.ravi, "Legal review", 20)
    evaluate()
    violation = item_of(deal, "stale_touch")
    client = client_for("ravi")
    client.get(reverse("today"))

    refused = client.post(fix_url(violation, "snooze"), {"until": in_days(10), "reason": ""}, **HTMX)
    assert refused.status_code == 400 and not Snooze.objects.exists()
    too_far = client.post(fix_url(violation, "snooze"), {"until": in_days(60), "reason": "Legal"}, **HTMX)
    assert too_far.status_code == 400 and "At most 30 days ahead" in too_far.content.decode()

    response = client.post(
        fix_url(violation, "snooze"), {"until": in_days(10), "reason": "Legal review until the 10th"}, **HTMX
    )

    assert response.status_code == 200 and "Snoozed until" in response.content.decode()
    snooze = Snooze.objects.get(opportunity=deal)
    assert (snooze.until, snooze.reason, snooze.created_by) == (
        in_days(10),
        "Legal review until the 10th",
        org.ravi,
    )
    assert "stale_touch" not in open_rules(deal)


def test_snoozed_deals_are_listed_and_the_rep_can_wake_one_up(org):
    deal = deal_untouched_for(org.ravi, "Legal review", 20)
    evaluate()
    snooze = snooze_opportunity(org.ravi, deal, in_days(10), "Legal review until the 10th")
    page = client_for("ravi").get(reverse("today")).content.decode()
    assert "Snoozed deals" in page and "1 of 10 allowed" in page and "Legal review until the 10th" in page
    managers_view = client_for("maya").get(reverse("today") + f"?rep={org.ravi.pk}").content.decode()
    assert "Legal review until the 10th" in managers_view and "Wake up" not in managers_view

    assert client_for("maya").post(reverse("today-wake", args=[snooze.pk]), **HTMX).status_code == 404
    response = client_for("ravi").post(reverse("today-wake", args=[snooze.pk]), **HTMX)

    assert response.status_code == 200 and "is awake" in response.content.decode()
    snooze.refresh_from_db()
    assert snooze.cancelled_by == org.ravi
    assert "stale_touch" in open_rules(deal)


def test_marking_lost_from_the_queue_needs_a_reason(org):
    deal = deal_untouched_for(org.ravi, "Dead end", 20)
    evaluate()
    violation = item_of(deal, "stale_touch")
    client = client_for("ravi")

    assert client.post(fix_url(violation, "lost"), {"lost_reason": " "}, **HTMX).status_code == 400
    assert client.post(fix_url(violation, "lost"), {"lost_reason": "No budget"}, **HTMX).status_code == 200

    deal = Opportunity.objects.get(pk=deal.pk)
    assert (deal.stage.name, deal.lost_reason) == ("Lost", "No budget")


def test_without_javascript_a_fix_redirects_back_with_a_message(org):
    violation = item_of(org.ravi_open, "no_next_step")
    client = client_for("ravi")
    response = client.post(
        fix_url(violation, "next_step"), {"next_step": "Call", "next_step_date": in_days(2)}, follow=True
    )
    assert response.redirect_chain == [(reverse("today"), 302)]
    assert "Next step set for" in response.content.decode()


@pytest.mark.parametrize("persona", ["maya", "omar", "ada", "eli", "dana", "rita"])
def test_nobody_but_the_rep_fixes_items_of_his_queue(org, persona):
    violation = item_of(org.ravi_open, "no_next_step")
    response = client_for(persona).post(
        fix_url(violation, "next_step"), {"next_step": "Call", "next_step_date": in_days(2)}, **HTMX
    )
    assert response.status_code == 404
    assert Opportunity.objects.get(pk=org.ravi_open.pk).next_step == ""


def test_anonymous_visitors_cannot_fix_anything(org):
    violation = item_of(org.ravi_open, "no_next_step")
    response = client_for(None).post(fix_url(violation, "next_step"), {"next_step": "Call"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_an_unknown_fix_is_a_404(org):
    violation = item_of(org.ravi_open, "no_next_step")
    assert client_for("ravi").post(fix_url(violation, "delete"), {}, **HTMX).status_code == 404


def test_the_rep_sets_his_own_time_box_on_the_page(org):
    client = client_for("ravi")
    response = client.post(reverse("today-time-box"), {"minutes": "5"}, **HTMX)
    assert (
        response.status_code == 200 and "Your daily time box is now 5 minutes." in response.content.decode()
    )
    assert QueueSetting.objects.get(rep=org.ravi).minutes == 5
    refused = client.post(reverse("today-time-box"), {"minutes": "500"}, **HTMX)
    assert refused.status_code == 400 and QueueSetting.objects.get(rep=org.ravi).minutes == 5
    client.post(reverse("today-time-box"), {"reset": "1"}, **HTMX)
    assert not QueueSetting.objects.exists()


# --- query budget -----------------------------------------------------------------------------


def page_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_page_costs_the_same_queries_for_5_and_500_deals(org):
    rita, maya = client_for("rita"), client_for("maya")
    as_manager = reverse("today") + f"?rep={org.rita.pk}"
    grow(org.rita, 0, 5)
    evaluate()
    rita.get(reverse("today"))
    maya.get(as_manager)
    QueueDay.objects.all().delete()
    few = (
        page_queries(rita, reverse("today")),
        page_queries(rita, reverse("today")),
        page_queries(maya, as_manager),
    )
    QueueDay.objects.all().delete()

    grow(org.rita, 5, 500)
    evaluate(timezone.now() + dt.timedelta(minutes=1))
    assert Violation.objects.filter(rep=org.rita, live=True).count() > 1000
    many = (
        page_queries(rita, reverse("today")),
        page_queries(rita, reverse("today")),
        page_queries(maya, as_manager),
    )

    assert many == few  # first look of the day, a later look, the manager's look
