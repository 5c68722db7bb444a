"""Every page, read and write, for every persona: who gets in, who sees what.

The tables read as: page -> persona -> expected HTTP status. `None` is the
anonymous visitor, who is always sent to the login page.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD, stage
from truepipe.accounts import services as account_services
from truepipe.core.models import Via
from truepipe.pipeline.models import Opportunity

PERSONAS = ["ravi", "maya", "omar", "ada", "eli", "dana", None]
EVERYONE = {"ravi": 200, "maya": 200, "omar": 200, "ada": 200, "eli": 200, "dana": 200}
CREATORS = {"ravi": 200, "maya": 200, "omar": 200, "ada": 200, "eli": 403, "dana": 403}
# Ravi's open deal: Ravi, his manager, the admin and the exec; not another team, not delivery.
RAVIS_OPEN = {"ravi": 200, "maya": 200, "omar": 404, "ada": 200, "eli": 200, "dana": 404}
# Ravi's won deal: delivery sees won deals too.
RAVIS_WON = {**RAVIS_OPEN, "dana": 200}
# Changing Ravi's records: who may see but not change them gets a 403.
RAVIS_CHANGE = {"ravi": 200, "maya": 200, "omar": 404, "ada": 200, "eli": 403, "dana": 403}
# Owen's account: only his side of the tree.
OWENS = {"ravi": 404, "maya": 404, "omar": 200, "ada": 200, "eli": 200, "dana": 404}


@pytest.fixture
def world(org):
    contact = account_services.create_contact(
        org.ravi,
        first_name="Carla",
        last_name="Cruz",
        account=org.acme,
        emails=["carla@acme.example"],
        via=Via.FORM,
    )
    return SimpleNamespace(**vars(org), carla=contact)


def client_for(world, persona: str | None) -> Client:
    client = Client()
    if persona:
        assert client.login(username=persona, password=PASSWORD)
    return client


GET_PAGES = [
    ("pipeline", lambda w: reverse("pipeline"), EVERYONE),
    ("pipeline filtered", lambda w: reverse("pipeline") + "?status=all&sort=-amount&q=acme", EVERYONE),
    ("board", lambda w: reverse("board"), EVERYONE),
    ("accounts", lambda w: reverse("accounts"), EVERYONE),
    ("contacts", lambda w: reverse("contacts"), EVERYONE),
    ("search", lambda w: reverse("search") + "?q=acme", EVERYONE),
    ("board, htmx fragment", lambda w: reverse("board") + f"?owner={w.ravi.pk}", EVERYONE),
    ("csv export of deals", lambda w: reverse("pipeline-export"), EVERYONE),
    ("csv export of contacts", lambda w: reverse("export", args=["contacts"]), EVERYONE),
    ("log a touch", lambda w: reverse("log"), CREATORS),
    ("new deal", lambda w: reverse("opportunity-new"), CREATORS),
    ("new account", lambda w: reverse("account-new"), CREATORS),
    ("new contact", lambda w: reverse("contact-new"), CREATORS),
    ("ravi's open deal", lambda w: reverse("opportunity", args=[w.ravi_open.pk]), RAVIS_OPEN),
    ("ravi's won deal", lambda w: reverse("opportunity", args=[w.ravi_won.pk]), RAVIS_WON),
    ("acme (has a won deal)", lambda w: reverse("account", args=[w.acme.pk]), RAVIS_WON),
    ("a contact at acme", lambda w: reverse("contact", args=[w.carla.pk]), RAVIS_WON),
    ("edit acme", lambda w: reverse("account-edit", args=[w.acme.pk]), RAVIS_CHANGE),
    ("edit a contact at acme", lambda w: reverse("contact-edit", args=[w.carla.pk]), RAVIS_CHANGE),
    ("globex (owen's)", lambda w: reverse("account", args=[w.globex.pk]), OWENS),
    ("owen's deal", lambda w: reverse("opportunity", args=[w.owen_open.pk]), OWENS),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("page", "url", "expected"), GET_PAGES, ids=[p[0] for p in GET_PAGES])
def test_each_persona_gets_each_page_as_expected(world, page, url, expected, persona):
    response = client_for(world, persona).get(url(world))
    if persona is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == expected[persona], response.content[:500]


def edit_form(deal: Opportunity) -> dict:
    return {
        "version": deal.version,
        "name": deal.name + " (edited)",
        "account": deal.account_id or "",
        "owner": deal.owner_id,
        "stage": deal.stage_id,
        "amount": deal.amount or "",
        "currency": deal.currency,
        "close_date": deal.close_date.isoformat() if deal.close_date else "",
        "forecast_category": deal.forecast_category,
    }


def new_deal_form(w, me) -> dict:
    return {"name": "Brand new", "owner": me.pk, "stage": stage("Prospecting").pk, "currency": "USD"}


POST_PAGES = [
    # page, url, form data, expected status per persona (302 = saved and redirected)
    (
        "edit ravi's deal",
        lambda w: reverse("opportunity", args=[w.ravi_open.pk]),
        lambda w, me: edit_form(w.ravi_open),
        {"ravi": 302, "maya": 302, "omar": 404, "ada": 302, "eli": 403, "dana": 404},
    ),
    (
        "move ravi's deal on the board",
        lambda w: reverse("board-move"),
        lambda w, me: {"opportunity": w.ravi_open.pk, "stage": stage("Qualification").pk, "version": 1},
        {"ravi": 302, "maya": 302, "omar": 404, "ada": 302, "eli": 403, "dana": 404},
    ),
    (
        "log a touch on ravi's deal",
        lambda w: reverse("log"),
        lambda w, me: {
            "kind": "call",
            "opportunity": w.ravi_open.pk,
            "occurred_at": "2020-01-01T10:00",
            "subject": "Called",
        },
        # Omar cannot pick a deal he cannot see: the form says so (400).
        {"ravi": 302, "maya": 302, "omar": 400, "ada": 302, "eli": 403, "dana": 403},
    ),
    (
        "edit acme",
        lambda w: reverse("account-edit", args=[w.acme.pk]),
        lambda w, me: {
            "version": w.acme.version,
            "name": "Acme Inc",
            "domains": "acme.example",
            "owner": w.ravi.pk,
        },
        {"ravi": 302, "maya": 302, "omar": 404, "ada": 302, "eli": 403, "dana": 403},
    ),
    (
        "create a deal",
        lambda w: reverse("opportunity-new"),
        new_deal_form,
        {"ravi": 302, "maya": 302, "omar": 302, "ada": 302, "eli": 403, "dana": 403},
    ),
    (
        "create an account",
        lambda w: reverse("account-new"),
        lambda w, me: {"name": "Initech", "domains": "initech.example", "owner": me.pk},
        {"ravi": 302, "maya": 302, "omar": 302, "ada": 302, "eli": 403, "dana": 403},
    ),
    (
        "create a contact",
        lambda w: reverse("contact-new"),
        lambda w, me: {
            "first_name": "Peter",
            "last_name": "Gibbons",
            "emails": "peter@x.example",
            "owner": me.pk,
        },
        {"ravi": 302, "maya": 302, "omar": 302, "ada": 302, "eli": 403, "dana": 403},
    ),
]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("page", "url", "data", "expected"), POST_PAGES, ids=[p[0] for p in POST_PAGES])
def test_each_persona_posts_to_each_form_as_expected(world, page, url, data, expected, persona):
    me = getattr(world, persona) if persona else world.ravi
    response = client_for(world, persona).post(url(world), data(world, me))
    if persona is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == expected[persona], response.content[:800]


BULK = {"ravi": True, "maya": True, "omar": False, "ada": True, "eli": False, "dana": False, None: False}


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_people_who_may_change_a_deal_can_bulk_mark_it_lost(world, persona):
    response = client_for(world, persona).post(
        reverse("pipeline-bulk"),
        {"action": "mark_lost", "ids": [world.ravi_open.pk], "lost_reason": "Budget cut"},
    )
    assert response.status_code == 302
    world.ravi_open.refresh_from_db()
    assert (world.ravi_open.stage.name == "Lost") is BULK[persona]


LIST_CONTENT = [
    # persona, sees, does not see (pipeline list with every status)
    ("ravi", ["Acme renewal", "Acme expansion"], ["Globex pilot"]),
    ("maya", ["Acme renewal", "Acme expansion"], ["Globex pilot"]),
    ("omar", ["Globex pilot"], ["Acme renewal", "Acme expansion"]),
    ("ada", ["Acme renewal", "Globex pilot"], []),
    ("eli", ["Acme renewal", "Globex pilot"], []),
    ("dana", ["Acme expansion"], ["Acme renewal", "Globex pilot"]),
]


@pytest.mark.parametrize(("persona", "sees", "hidden"), LIST_CONTENT)
@pytest.mark.parametrize("page", ["pipeline", "board", "search"])
def test_lists_show_only_the_deals_a_persona_may_see(world, page, persona, sees, hidden):
    url = {
        "pipeline": reverse("pipeline") + "?status=all",
        "board": reverse("board"),
        "search": reverse("search") + "?q=e",
    }[page]
    if page == "search":
        url = reverse("search") + "?q=ac"
        sees = [name for name in sees if "Acme" in name]
        hidden = [name for name in hidden if "Acme" in name]
    html = client_for(world, persona).get(url).content.decode()
    for name in sees:
        assert name in html
    for name in hidden:
        assert name not in html


def test_a_manager_can_filter_the_pipeline_by_a_rep_below_her_but_not_by_another_teams_rep(world):
    client = client_for(world, "maya")
    mine = client.get(reverse("pipeline"), {"owner": world.ravi.pk}).content.decode()
    assert "Acme renewal" in mine
    other = client.get(reverse("pipeline"), {"owner": world.owen.pk}).content.decode()
    assert "Globex pilot" not in other
    assert "Some filters were ignored" in other


def test_search_finds_a_contact_by_email_only_for_people_who_may_see_it(world):
    assert (
        "Carla Cruz" in client_for(world, "ravi").get(reverse("search"), {"q": "carla@acme"}).content.decode()
    )
    assert (
        "Carla Cruz"
        not in client_for(world, "omar").get(reverse("search"), {"q": "carla@acme"}).content.decode()
    )


@pytest.mark.parametrize(
    ("persona", "reaches_admin"),
    [("ada", True), ("ravi", False), ("maya", False), ("eli", False), ("dana", False), (None, False)],
)
def test_only_admins_reach_the_django_admin(world, persona, reaches_admin):
    response = client_for(world, persona).get("/admin/")
    assert (response.status_code == 200) is reaches_admin


def test_a_staff_flag_without_the_admin_role_does_not_open_the_admin(world):
    world.ravi.is_staff = True
    world.ravi.save(update_fields=["is_staff"])
    response = client_for(world, "ravi").get("/admin/")
    assert response.status_code == 302


def test_the_admin_sees_deals_in_the_django_admin(world):
    response = client_for(world, "ada").get("/admin/pipeline/opportunity/")
    assert response.status_code == 200
    assert "Acme renewal" in response.content.decode()
