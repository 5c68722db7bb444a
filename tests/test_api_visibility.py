"""Who sees and changes what through the API: one table per question, one row per persona.

The records (besides the org fixture's):
    acme_buyer   contact at Acme (ravi's account)     globex_buyer  contact at Globex (owen's)
    ravi_call    ravi's call on his open deal          won_call      ravi's call on his won deal
    owen_call    owen's call on his open deal
A record a persona may not see must be a 404 (never a 403 that would confirm it exists);
a record they see but may not change is a 403.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.test_api_support import Api, assert_error
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services

PERSONAS = ["ravi", "maya", "omar", "ada", "eli", "dana", "anonymous"]

# What each persona reads, in lists and by id.
READS = {
    "opportunities": {
        "ravi": {"ravi_open", "ravi_won"},
        "maya": {"ravi_open", "ravi_won"},
        "omar": {"owen_open"},
        "ada": {"ravi_open", "ravi_won", "owen_open"},
        "eli": {"ravi_open", "ravi_won", "owen_open"},
        "dana": {"ravi_won"},
    },
    "accounts": {
        "ravi": {"acme"},
        "maya": {"acme"},
        "omar": {"globex"},
        "ada": {"acme", "globex"},
        "eli": {"acme", "globex"},
        "dana": {"acme"},  # the account of a won deal
    },
    "contacts": {
        "ravi": {"acme_buyer"},
        "maya": {"acme_buyer"},
        "omar": {"globex_buyer"},
        "ada": {"acme_buyer", "globex_buyer"},
        "eli": {"acme_buyer", "globex_buyer"},
        "dana": {"acme_buyer"},
    },
    "activities": {
        "ravi": {"ravi_call", "won_call"},
        "maya": {"ravi_call", "won_call"},
        "omar": {"owen_call"},
        "ada": {"ravi_call", "won_call", "owen_call"},
        "eli": {"ravi_call", "won_call", "owen_call"},
        "dana": {"won_call"},
    },
    "users": {
        "ravi": {"ravi"},
        "maya": {"maya", "ravi", "rita"},
        "omar": {"omar", "owen"},
        "ada": {"vera", "maya", "omar", "ravi", "rita", "owen", "ada", "eli", "dana"},
        "eli": {"vera", "maya", "omar", "ravi", "rita", "owen", "ada", "eli", "dana"},
        "dana": {"vera", "maya", "omar", "ravi", "rita", "owen", "ada", "eli", "dana"},
    },
}

# What a harmless PATCH (with the right version) answers, per record: 200 changed, 403 seen but
# not theirs to change, 404 not seen. Anonymous is 401 everywhere.
OK, FORBIDDEN, HIDDEN = 200, 403, 404
WRITES = {
    "ravi": {
        "ravi_open": OK,
        "ravi_won": OK,
        "owen_open": HIDDEN,
        "acme": OK,
        "globex": HIDDEN,
        "acme_buyer": OK,
        "globex_buyer": HIDDEN,
        "ravi_call": OK,
        "won_call": OK,
        "owen_call": HIDDEN,
    },
    "maya": {
        "ravi_open": OK,
        "ravi_won": OK,
        "owen_open": HIDDEN,
        "acme": OK,
        "globex": HIDDEN,
        "acme_buyer": OK,
        "globex_buyer": HIDDEN,
        "ravi_call": OK,
        "won_call": OK,
        "owen_call": HIDDEN,
    },
    "omar": {
        "ravi_open": HIDDEN,
        "ravi_won": HIDDEN,
        "owen_open": OK,
        "acme": HIDDEN,
        "globex": OK,
        "acme_buyer": HIDDEN,
        "globex_buyer": OK,
        "ravi_call": HIDDEN,
        "won_call": HIDDEN,
        "owen_call": OK,
    },
    "ada": {
        "ravi_open": OK,
        "ravi_won": OK,
        "owen_open": OK,
        "acme": OK,
        "globex": OK,
        "acme_buyer": OK,
        "globex_buyer": OK,
        "ravi_call": OK,
        "won_call": OK,
        "owen_call": OK,
    },
    "eli": {
        "ravi_open": FORBIDDEN,
        "ravi_won": FORBIDDEN,
        "owen_open": FORBIDDEN,
        "acme": FORBIDDEN,
        "globex": FORBIDDEN,
        "acme_buyer": FORBIDDEN,
        "globex_buyer": FORBIDDEN,
        "ravi_call": FORBIDDEN,
        "won_call": FORBIDDEN,
        "owen_call": FORBIDDEN,
    },
    "dana": {
        "ravi_open": HIDDEN,
        "ravi_won": FORBIDDEN,
        "owen_open": HIDDEN,
        "acme": FORBIDDEN,
        "globex": HIDDEN,
        "acme_buyer": FORBIDDEN,
        "globex_buyer": HIDDEN,
        "ravi_call": HIDDEN,
        "won_call": FORBIDDEN,
        "owen_call": HIDDEN,
    },
}

# Which collection each record lives in, and the harmless change a PATCH makes.
RECORDS = {
    "ravi_open": ("opportunities", {"next_step": "Checked"}),
    "ravi_won": ("opportunities", {"next_step": "Checked"}),
    "owen_open": ("opportunities", {"next_step": "Checked"}),
    "acme": ("accounts", {"industry": "Checked"}),
    "globex": ("accounts", {"industry": "Checked"}),
    "acme_buyer": ("contacts", {"title": "Checked"}),
    "globex_buyer": ("contacts", {"title": "Checked"}),
    "ravi_call": ("activities", {"body": "Checked"}),
    "won_call": ("activities", {"body": "Checked"}),
    "owen_call": ("activities", {"body": "Checked"}),
}

# May the persona create records at all (POST to any collection)?
CREATES = {"ravi": 201, "maya": 201, "omar": 201, "ada": 201, "eli": 403, "dana": 403, "anonymous": 401}


@pytest.fixture
def world(org):
    records = {
        "ravi_open": org.ravi_open,
        "ravi_won": org.ravi_won,
        "owen_open": org.owen_open,
        "acme": org.acme,
        "globex": org.globex,
        "acme_buyer": account_services.create_contact(
            org.ravi, last_name="Buyer", account=org.acme, via=Via.FORM
        ),
        "globex_buyer": account_services.create_contact(
            org.owen, last_name="Globex buyer", account=org.globex, via=Via.FORM
        ),
        "ravi_call": activity_services.log_activity(
            org.ravi, kind="call", subject="Renewal call", opportunity=org.ravi_open, via=Via.FORM
        ),
        "won_call": activity_services.log_activity(
            org.ravi, kind="call", subject="Kick-off call", opportunity=org.ravi_won, via=Via.FORM
        ),
        "owen_call": activity_services.log_activity(
            org.owen, kind="call", subject="Pilot call", opportunity=org.owen_open, via=Via.FORM
        ),
    }
    product = pipeline_services.create_product(None, name="Seats", list_price=100)
    return SimpleNamespace(org=org, records=records, product=product)


def client_for(world, persona: str) -> Api:
    return Api(None if persona == "anonymous" else getattr(world.org, persona))


def key_of(world, collection: str, item: dict) -> str:
    if collection == "users":
        return item["username"]
    [key] = [k for k, obj in world.records.items() if RECORDS[k][0] == collection and obj.pk == item["id"]]
    return key


# --- reads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", list(READS))
@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_lists_exactly_what_they_may_see(world, persona, collection):
    response = client_for(world, persona).get(collection)
    if persona == "anonymous":
        assert_error(response, 401)
        return
    assert response.status_code == 200, response.content
    seen = {key_of(world, collection, item) for item in response.json()["items"]}
    assert seen == READS[collection][persona]


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_reads_by_id_exactly_what_they_may_see(world, persona):
    api = client_for(world, persona)
    for key, (collection, _) in RECORDS.items():
        pk = world.records[key].pk
        paths = [f"{collection}/{pk}"]
        if collection in ("opportunities", "accounts"):
            paths.append(f"{collection}/{pk}/history")
        if collection == "opportunities":
            paths.append(f"{collection}/{pk}/products")
        for path in paths:
            response = api.get(path)
            if persona == "anonymous":
                assert_error(response, 401)
            elif key in READS[collection][persona]:
                assert response.status_code == 200, (persona, path, response.content)
            else:
                assert_error(response, 404, "not_found")


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_reads_people_by_id_within_their_reach(world, persona):
    api = client_for(world, persona)
    for username in READS["users"]["ada"]:
        response = api.get(f"users/{getattr(world.org, username).pk}")
        if persona == "anonymous":
            assert_error(response, 401)
        elif username in READS["users"][persona]:
            assert response.status_code == 200
        else:
            assert_error(response, 404)


@pytest.mark.parametrize("persona", PERSONAS)
def test_everyone_signed_in_reads_the_catalogue_and_the_pipeline(world, persona):
    api = client_for(world, persona)
    for path in ("products", f"products/{world.product.pk}", "stages", "users/me", "tokens"):
        response = api.get(path)
        if persona == "anonymous":
            assert_error(response, 401)
        else:
            assert response.status_code == 200, (path, response.content)


# --- writes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_changes_exactly_what_they_may_change(world, persona):
    api = client_for(world, persona)
    for key, (collection, change) in RECORDS.items():
        obj = world.records[key]
        obj.refresh_from_db()
        version = getattr(obj, "version", None)
        body = {**change, "version": version} if version is not None else change
        response = api.patch(f"{collection}/{obj.pk}", body)
        expected = 401 if persona == "anonymous" else WRITES[persona][key]
        if expected == OK:
            assert response.status_code == 200, (persona, key, response.content)
        else:
            assert_error(response, expected)


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_deletes_exactly_what_they_may_change(world, persona):
    api = client_for(world, persona)
    for key in ("ravi_call", "owen_call", "acme_buyer", "globex_buyer", "ravi_open", "owen_open"):
        collection = RECORDS[key][0]
        obj = world.records[key]
        version = getattr(obj, "version", None)
        response = api.delete(f"{collection}/{obj.pk}", if_match=version)
        expected = 401 if persona == "anonymous" else WRITES[persona][key]
        if expected == OK:
            assert response.status_code == 204, (persona, key, response.content)
        else:
            assert_error(response, expected)


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_the_selling_roles_create_records(world, persona):
    api = client_for(world, persona)
    org = world.org
    bodies = {
        "accounts": {"name": f"New account of {persona}"},
        "contacts": {"last_name": f"New contact of {persona}"},
        "activities": {"kind": "note", "subject": "A note"},
        "opportunities": {"name": "New deal", "stage": "Prospecting"},
    }
    for collection, body in bodies.items():
        response = api.post(collection, body)
        if CREATES[persona] == 201:
            assert response.status_code == 201, (persona, collection, response.content)
        else:
            assert_error(response, CREATES[persona])
    del org


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_an_admin_manages_the_catalogue_and_people(world, persona):
    api = client_for(world, persona)
    admin = persona == "ada"
    expected = 401 if persona == "anonymous" else 403
    product = api.post("products", {"name": f"Product by {persona}"})
    patched = api.patch(f"products/{world.product.pk}", {"list_price": 5})
    person = api.post("users", {"username": f"new_{persona}", "role": "rep"})
    moved = api.patch(f"users/{world.org.rita.pk}", {"title": "Senior AE"})
    stage = api.post("stages", {"name": f"Stage by {persona}"})
    if admin:
        statuses = (product, patched, person, moved, stage)
        assert [r.status_code for r in statuses] == [201, 200, 201, 200, 201]
        return
    for response in (product, patched, person, stage):
        assert_error(response, expected)
    # Rita is outside omar's and ravi's reach: for them she does not exist.
    assert_error(moved, 404 if persona in ("ravi", "omar") else expected)


@pytest.mark.parametrize("persona", [p for p in PERSONAS if p != "anonymous"])
def test_a_persona_sees_and_revokes_only_their_own_tokens(world, persona):
    api = client_for(world, persona)
    mine = api.post("tokens", {"name": "mine"})
    assert mine.status_code == 201
    other = Api(world.org.rita).post("tokens", {"name": "rita's"}).json()
    assert {t["name"] for t in api.get("tokens").json()["items"]} == {"mine", "tests"}
    assert_error(api.delete(f"tokens/{other['id']}"), 404)
    assert api.delete(f"tokens/{mine.json()['id']}").status_code == 204


@pytest.mark.parametrize("persona", ["ravi", "maya", "omar", "ada", "eli", "dana"])
def test_product_lines_follow_the_deal_write_rules(world, persona):
    api = client_for(world, persona)
    for key in ("ravi_open", "owen_open"):
        opp = world.records[key]
        body = {"lines": [{"product": world.product.pk}], "version": opp.version}
        response = api.put(f"opportunities/{opp.pk}/products", body)
        expected = WRITES[persona][key]
        if expected == OK:
            assert response.status_code == 200, (persona, key, response.content)
        else:
            assert_error(response, expected)
