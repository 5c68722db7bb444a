"""Deals never logged, part one: the shadow pipeline and the unlogged_deal rule.

Rick the rainmaker (a rep on Maya's team) e-mails and meets customers all month and logs no
deal. Captured mail (a real RFC 5322 message through capture) records the outside domains he
touches; the suggestions and the rule are read from those.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.capture_helpers import message
from tests.conftest import PASSWORD, stage
from tests.test_api_support import api_as
from truepipe.accounts import services as account_services
from truepipe.accounts.models import Account
from truepipe.activities.models import Activity
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CaptureSource, ExcludedDomain
from truepipe.capture.shadow import dismiss_suggestion, exclude_domain, shadow_pipeline
from truepipe.capture.sources import from_bytes
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.models import Via
from truepipe.hygiene.engine import evaluate, find_all
from truepipe.hygiene.models import Violation, ViolationStatus
from truepipe.hygiene.policy import current_policy, publish_policy
from truepipe.people.models import Role
from truepipe.people.services import create_person
from truepipe.pipeline import services as pipeline_services

pytestmark = pytest.mark.django_db
NEWCO = "newco.example"


@pytest.fixture
def rick(org):
    return create_person(
        None,
        username="rick",
        email="rick@truepipe.test",
        full_name="Rick Rainmaker",
        role=Role.REP,
        manager=org.maya,
        team="East",
        password=PASSWORD,
    )


def mail(rep, to: str, count: int, *, days_ago: float = 1, subject: str = "Proposal") -> None:
    """`count` messages from the rep to `to`, one an hour, the last `days_ago` days back."""
    last = timezone.now() - dt.timedelta(days=days_ago)
    items = [
        from_bytes(
            message(
                f"{rep.get_full_name()} <{rep.email or rep.username + '@truepipe.test'}>",
                to,
                f"{subject} {n}" if n < 3 else subject,  # a thread: some subjects repeat
                when=last - dt.timedelta(hours=count - 1 - n),
            ).as_bytes(),
            source=CaptureSource.FILE,
            origin=f"test {n}",
            owner_id=rep.pk,
        )
        for n in range(count)
    ]
    report = Ingest(None).run(items)
    assert report.counts["logged"] == count, report.counts


def key(rep, domain: str = NEWCO) -> str:
    return f"unlogged_deal:r{rep.pk}:{domain}"


def found(as_of=None) -> dict:
    return {f.key: f for f in find_all(as_of or timezone.now())["unlogged_deal"]}


def with_params(**params) -> None:
    document = copy.deepcopy(current_policy().document)
    document["rules"]["unlogged_deal"]["params"].update(params)
    publish_policy(None, document, note="thresholds")


# ---------------------------------------------------------------- the rule


def test_rick_mails_a_new_customer_five_times_with_no_deal_and_it_counts_against_him(org, rick):
    mail(rick, "Cleo CTO <cleo@newco.example>", 5)

    evaluate()

    violation = Violation.objects.get(rule="unlogged_deal", live=True)
    assert violation.key == key(rick)
    assert violation.rep == rick and violation.status == ViolationStatus.OPEN
    assert violation.severity == 2 and violation.opportunity is None
    assert violation.summary == "5 customer touches with newco.example in 30 days and no deal in truepipe"
    evidence = violation.evidence
    assert evidence["domain"] == NEWCO and evidence["touches"] == 5
    assert evidence["account"] is None and evidence["account_id"] is None
    assert evidence["subjects"] == ["Proposal", "Proposal 2", "Proposal 1"]  # latest first, distinct
    first, last = (dt.datetime.fromisoformat(evidence[k]) for k in ("first_touch", "last_touch"))
    assert last - first == dt.timedelta(hours=4)
    assert evidence["window_days"] == 30 and evidence["limit_touches"] == 5


def test_when_rick_creates_the_deal_the_violation_resolves_at_the_next_evaluation(org, rick):
    mail(rick, "cleo@newco.example", 6)
    evaluate()
    newco = account_services.create_account(rick, name="Newco", domains=[NEWCO], via=Via.FORM)
    pipeline_services.create_opportunity(
        rick, name="Newco platform", account=newco, stage=stage("Qualification"), via=Via.FORM
    )
    assert Violation.objects.get(rule="unlogged_deal").status == ViolationStatus.OPEN  # full evaluations only

    evaluate()

    violation = Violation.objects.get(rule="unlogged_deal")
    assert violation.status == ViolationStatus.RESOLVED and not violation.live


def test_four_touches_are_a_suggestion_not_a_violation(org, rick):
    mail(rick, "cleo@newco.example", 4)

    assert found() == {}
    [row] = shadow_pipeline(rick)
    assert (row.rep_id, row.domain, row.touches, row.account_id, row.flagged) == (
        rick.pk,
        NEWCO,
        4,
        None,
        False,
    )


def test_the_thresholds_and_the_window_come_from_the_policy(org, rick):
    mail(rick, "cleo@newco.example", 3)
    mail(rick, "ann@oldco.example", 5, days_ago=20)
    assert set(found()) == {key(rick, "oldco.example")}
    assert [r.domain for r in shadow_pipeline(rick)] == ["oldco.example", NEWCO]

    with_params(touches=3, window_days=14, suggest_touches=2)

    assert set(found()) == {key(rick)}  # three touches are enough; oldco's are out of the window
    assert [r.domain for r in shadow_pipeline(rick)] == [NEWCO]


def test_an_excluded_domain_never_counts_whoever_excluded_it(org, rick):
    mail(rick, "cleo@newco.example", 5)
    mail(rick, "pat@club.example", 5)
    mail(rick, "friend@gmail.com", 5)  # a public mail service is nobody's company
    assert set(found()) == {key(rick), key(rick, "club.example")}

    ExcludedDomain.objects.create(user=rick, domain="club.example")  # his golf club
    ExcludedDomain.objects.create(user=None, domain=NEWCO)  # for everyone

    assert found() == {}
    assert shadow_pipeline(rick) == []


def test_someone_elses_exclusion_does_not_hide_ricks_touches(org, rick):
    mail(rick, "cleo@newco.example", 5)
    ExcludedDomain.objects.create(user=org.ravi, domain=NEWCO)

    assert set(found()) == {key(rick)}


def test_a_deal_of_anyone_at_the_domains_account_counts_and_so_does_one_won_in_the_window(org, rick):
    mail(rick, "bea@acme.example", 5)  # Acme has Ravi's open deal
    mail(rick, "gus@globex.example", 5)  # Globex has Owen's open deal
    assert found() == {}

    pipeline_services.update_opportunity(
        org.owen, org.owen_open, {"stage": stage("Lost"), "lost_reason": "No budget"}, via=Via.FORM
    )
    assert found() == {}  # lost this month: the touches are that deal's end

    later = timezone.now() + dt.timedelta(days=40)
    mail(rick, "gus@globex.example", 5, days_ago=-39)  # five more, a month after the loss
    assert set(found(later)) == {key(rick, "globex.example")}


def test_deleted_activities_and_touches_outside_the_window_do_not_count(org, rick):
    mail(rick, "cleo@newco.example", 4, days_ago=1)
    mail(rick, "cleo@newco.example", 3, days_ago=31, subject="Old")
    assert found() == {}
    mail(rick, "cleo@newco.example", 1, days_ago=2, subject="Intro")
    assert set(found()) == {key(rick)}

    Activity.objects.filter(subject__startswith="Intro").update(deleted_at=timezone.now())

    assert found() == {}


def test_each_rep_is_judged_on_their_own_touches(org, rick):
    mail(rick, "cleo@newco.example", 3)
    mail(org.ravi, "cleo@newco.example", 3)

    assert found() == {}
    assert {(r.rep_id, r.touches) for r in shadow_pipeline(org.ada)} == {(rick.pk, 3), (org.ravi.pk, 3)}


# ---------------------------------------------------------------- suggestions


@pytest.fixture
def suggestions(org, rick):
    mail(rick, "cleo@newco.example", 5)
    initech = account_services.create_account(
        org.ada, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    mail(org.ravi, "peter@initech.example", 3)
    mail(org.owen, "ann@oldco.example", 4)
    return initech


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("rick", {"rick"}),
        ("ravi", {"ravi"}),
        ("maya", {"rick", "ravi"}),  # her team
        ("omar", {"owen"}),  # another team's manager
        ("vera", {"rick", "ravi", "owen"}),  # the VP: her whole subtree
        ("ada", {"rick", "ravi", "owen"}),
        ("eli", {"rick", "ravi", "owen"}),
        ("dana", set()),  # delivery reads won deals, not the reps' mail
    ],
)
def test_suggestions_are_the_deals_each_person_may_see(org, rick, suggestions, who, sees):
    user = rick if who == "rick" else getattr(org, who)
    names = {rick.pk: "rick", org.ravi.pk: "ravi", org.owen.pk: "owen"}

    assert {names[row.rep_id] for row in shadow_pipeline(user)} == sees


def test_a_suggestion_names_the_account_when_the_domain_is_known_and_flags_the_violation(
    org, rick, suggestions
):
    evaluate()

    rows = {row.domain: row for row in shadow_pipeline(org.vera)}

    assert rows["initech.example"].account_id == suggestions.pk
    assert rows["initech.example"].account_name == "Initech" and not rows["initech.example"].flagged
    assert rows[NEWCO].flagged and rows[NEWCO].rep_name == "Rick Rainmaker"
    assert rows[NEWCO].subjects == ["Proposal", "Proposal 2", "Proposal 1"]
    assert list(rows) == [NEWCO, "oldco.example", "initech.example"]  # most touched first


def test_suggestions_cost_the_same_queries_for_one_or_many(org, rick, django_assert_num_queries):
    mail(rick, "cleo@newco.example", 3)
    shadow_pipeline(rick)  # the policy is read once and kept
    with django_assert_num_queries(2) as one:  # the policy's version, then the suggestions
        assert len(shadow_pipeline(rick)) == 1
    for n in range(6):
        mail(rick, f"x@co{n}.example", 3)
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(shadow_pipeline(rick)) == 7


def test_not_now_hides_the_suggestion_until_new_touches_but_the_violation_stands(org, rick):
    mail(rick, "cleo@newco.example", 5, days_ago=2)
    dismiss_suggestion(rick, rick, NEWCO)

    assert shadow_pipeline(rick) == []
    assert set(found()) == {key(rick)}

    mail(rick, "cleo@newco.example", 3, days_ago=-0.1, subject="Back again")  # three more, after it
    [row] = shadow_pipeline(rick, now=timezone.now() + dt.timedelta(hours=3))
    assert row.touches == 3


def test_not_a_customer_excludes_the_domain_and_the_violation_resolves(org, rick):
    mail(rick, "pat@club.example", 5)
    evaluate()

    exclude_domain(rick, rick, "club.example", note="my golf club")

    assert ExcludedDomain.objects.filter(user=rick, domain="club.example").exists()
    assert shadow_pipeline(rick) == []
    evaluate()
    assert Violation.objects.get(rule="unlogged_deal").status == ViolationStatus.RESOLVED


def test_a_known_accounts_domain_cannot_be_excluded_and_others_cannot_answer_for_rick(org, rick):
    with pytest.raises(InvalidInput, match="Acme Corp"):
        exclude_domain(rick, rick, "acme.example")
    with pytest.raises(NotAllowed):
        exclude_domain(org.ravi, rick, "club.example")  # a colleague
    with pytest.raises(NotAllowed):
        dismiss_suggestion(org.omar, rick, "club.example")  # another team's manager
    dismiss_suggestion(org.maya, rick, "club.example")  # his manager may


# ---------------------------------------------------------------- page and API


def test_rick_creates_the_deal_from_his_shadow_pipeline_page(client, org, rick):
    mail(rick, "cleo@newco.example", 3)
    assert client.login(username="rick", password=PASSWORD)

    page = client.get("/capture/shadow/")
    assert page.status_code == 200
    assert b"newco.example" in page.content and b"Create the deal" in page.content

    answer = client.post("/capture/shadow/", {"action": "create", "domain": NEWCO, "rep": rick.pk})

    newco = Account.objects.get(domains__domain=NEWCO)
    assert newco.name == "Newco" and newco.owner == rick
    assert answer.status_code == 302
    assert answer["Location"].startswith(f"/opportunities/new/?account={newco.pk}&name=Newco")
    form = client.get(answer["Location"])
    assert form.status_code == 200 and b"Newco: new deal" in form.content


def test_not_a_customer_from_the_page_and_delivery_has_no_shadow_pipeline(client, org, rick):
    mail(rick, "pat@club.example", 3)
    assert client.login(username="rick", password=PASSWORD)
    client.post("/capture/shadow/", {"action": "exclude", "domain": "club.example", "rep": rick.pk})
    assert ExcludedDomain.objects.filter(user=rick, domain="club.example").exists()
    assert b'id="shadow-' not in client.get("/capture/shadow/").content

    assert client.login(username="dana", password=PASSWORD)
    assert client.get("/capture/shadow/").status_code == 403


def test_maya_sees_her_teams_suggestions_read_only(client, org, rick):
    mail(rick, "cleo@newco.example", 3)
    assert client.login(username="maya", password=PASSWORD)

    page = client.get("/capture/shadow/")

    assert page.status_code == 200
    assert b"Rick Rainmaker" in page.content and b"newco.example" in page.content
    assert b"Create the deal" not in page.content and b"Not now" not in page.content
    refused = client.post("/capture/shadow/", {"action": "create", "domain": NEWCO, "rep": rick.pk})
    assert refused.status_code == 403 and not Account.objects.filter(domains__domain=NEWCO).exists()


def test_the_api_lists_the_suggestions_each_person_may_see(org, rick):
    mail(rick, "cleo@newco.example", 5)
    evaluate()

    mine = api_as(rick).get("shadow-pipeline").json()
    [item] = mine["items"]
    assert mine["count"] == 1
    assert item["rep"] == {"id": rick.pk, "username": "rick", "name": "Rick Rainmaker"}
    assert item["domain"] == NEWCO and item["touches"] == 5 and item["flagged"] is True
    assert item["account"] is None and item["subjects"][0] == "Proposal"
    assert api_as(org.maya).get("shadow-pipeline").json()["count"] == 1
    assert api_as(org.omar).get("shadow-pipeline").json()["count"] == 0
    assert api_as(org.dana).get("shadow-pipeline").json()["count"] == 0
    assert api_as(rick).get("shadow-pipeline", bogus=1).status_code == 400


def test_a_won_deal_in_the_window_at_the_account_also_explains_the_touches(org, rick):
    mail(rick, "bea@acme.example", 6)
    pipeline_services.update_opportunity(
        org.ravi, org.ravi_open, {"stage": stage("Lost"), "lost_reason": "No budget"}, via=Via.FORM
    )
    # Acme still has Ravi's deal won today (the fixture's "Acme expansion"): explained.
    assert org.ravi_won.amount == Decimal("120000")
    assert found() == {}


def test_the_violation_is_in_ricks_daily_queue_without_a_deal_to_open(client, org, rick):
    mail(rick, "cleo@newco.example", 5)
    evaluate()
    assert client.login(username="rick", password=PASSWORD)

    page = client.get("/today/")

    assert page.status_code == 200
    assert b"5 customer touches with newco.example" in page.content


def test_create_the_deal_does_not_reveal_an_account_rick_cannot_see(client, org, rick):
    mail(rick, "gus@globex.example", 3)  # Globex is Owen's account, on another team
    assert client.login(username="rick", password=PASSWORD)

    answer = client.post(
        "/capture/shadow/", {"action": "create", "domain": "globex.example", "rep": rick.pk}, follow=True
    )

    assert all("Globex" not in url for url, _ in answer.redirect_chain)
    assert "an account you cannot see" in answer.content.decode()


def test_a_rep_number_that_is_not_a_number_is_ignored_not_a_server_error(client, org, rick):
    assert client.login(username="rick", password=PASSWORD)

    assert client.get("/capture/shadow/?rep=²").status_code == 200
