"""The JSON API: auth, CRUD through the services, lists, concurrency, errors, OpenAPI and docs."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import PASSWORD
from tests.test_api_support import Api, api_as, assert_error
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.people.models import ApiToken
from truepipe.people.services import create_token, revoke_token
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity, OpportunityChange, Stage

# --- authentication -----------------------------------------------------------------------------------


def test_an_anonymous_caller_gets_401_in_the_error_format(org):
    assert_error(Api(None).get("opportunities"), 401, "unauthenticated")
    assert_error(Api(None).post("opportunities", {"name": "x"}), 401, "unauthenticated")


def test_a_bearer_token_authenticates_its_user(org):
    response = api_as(org.ravi).get("users/me")
    assert response.status_code == 200
    assert response.json()["username"] == "ravi"


def test_a_revoked_or_made_up_token_is_refused(org):
    token, raw = create_token(None, org.ravi)
    revoke_token(None, token)
    client = Client()
    assert_error(client.get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Bearer {raw}"), 401)
    assert_error(client.get("/api/v1/users/me", HTTP_AUTHORIZATION="Bearer tp_made-up"), 401)
    assert_error(client.get("/api/v1/users/me", HTTP_AUTHORIZATION="Basic cmF2aTp4"), 401)


def test_a_token_of_a_deactivated_user_is_refused(org):
    api = api_as(org.ravi)
    org.ravi.is_active = False
    org.ravi.save()
    assert_error(api.get("users/me"), 401)


def test_the_browser_session_works_for_reads_and_needs_csrf_for_writes(org):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="ravi", password=PASSWORD)
    assert client.get("/api/v1/opportunities").status_code == 200

    body = {"name": "Session deal", "account": org.acme.pk, "stage": "Qualification"}
    refused = client.post("/api/v1/opportunities", body, content_type="application/json")
    assert_error(refused, 403, "csrf_failed")

    client.get("/api/v1/docs")  # the docs page sets the csrftoken cookie, as any page with a form does
    csrf = client.cookies["csrftoken"].value
    created = client.post(
        "/api/v1/opportunities", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert created.status_code == 201, created.content


def test_a_token_request_needs_no_csrf_token(org):
    api = api_as(org.ravi)
    api.client = Client(enforce_csrf_checks=True)
    response = api.post(
        "opportunities", {"name": "Script deal", "account": org.acme.pk, "stage": "Qualification"}
    )
    assert response.status_code == 201


# --- opportunities ------------------------------------------------------------------------------------


def test_a_rep_creates_a_deal_recorded_as_coming_through_the_api(org):
    response = api_as(org.ravi).post(
        "opportunities",
        {
            "name": "Acme add-on",
            "account": org.acme.pk,
            "stage": "proposal",
            "amount": "1500.50",
            "close_date": "2030-01-31",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == {"id": org.ravi.pk, "username": "ravi", "name": "Ravi Rao"}
    assert body["account"] == {"id": org.acme.pk, "name": "Acme Corp"}
    assert body["stage"]["name"] == "Proposal" and body["stage"]["kind"] == "open"
    assert Decimal(body["amount"]) == Decimal("1500.50")
    assert response["ETag"] == '"1"'
    assert response["Location"] == f"/api/v1/opportunities/{body['id']}"
    opp = Opportunity.objects.get(pk=body["id"])
    opp_update = api_as(org.ravi).patch(f"opportunities/{opp.pk}", {"amount": 2000}, if_match=1)
    assert opp_update.status_code == 200
    assert OpportunityChange.objects.get(opportunity=opp, field="amount").via == Via.API


def test_the_stage_requirements_apply_to_the_api_too(org):
    response = api_as(org.ravi).post("opportunities", {"name": "Thin deal", "stage": "Proposal"})
    error = assert_error(response, 400, "stage_requirements")
    assert set(error["fields"]) == {"account", "amount", "close_date"}


def test_a_rep_cannot_give_a_deal_to_another_teams_rep(org):
    body = {"name": "Gift", "account": org.acme.pk, "stage": "Qualification", "owner": "owen"}
    error = assert_error(api_as(org.ravi).post("opportunities", body), 400, "invalid")
    assert "owner" in error["fields"]


def test_a_manager_assigns_a_deal_to_her_rep_by_username(org):
    body = {"name": "For Rita", "account": org.acme.pk, "stage": "Qualification", "owner": "rita"}
    response = api_as(org.maya).post("opportunities", body)
    assert response.status_code == 201, response.content
    assert response.json()["owner"]["username"] == "rita"


def test_referring_to_an_account_you_cannot_see_is_the_same_as_one_that_does_not_exist(org):
    api = api_as(org.ravi)
    hidden = assert_error(api.post("opportunities", {"name": "x", "account": org.globex.pk}), 400)
    missing = assert_error(api.post("opportunities", {"name": "x", "account": 987654}), 400)
    assert hidden["fields"].keys() == missing["fields"].keys() == {"account"}
    assert hidden["message"].replace(str(org.globex.pk), "N") == missing["message"].replace("987654", "N")


def test_reading_a_deal_you_cannot_see_is_a_404_like_a_missing_one(org):
    api = api_as(org.ravi)
    assert_error(api.get(f"opportunities/{org.owen_open.pk}"), 404, "not_found")
    assert_error(api.get("opportunities/987654"), 404, "not_found")


def test_put_replaces_every_field_and_clears_the_ones_left_out(org):
    api = api_as(org.ravi)
    opp = org.ravi_open
    pipeline_services.update_opportunity(org.ravi, opp, {"next_step": "Call CFO"}, via=Via.FORM)
    body = {
        "name": "Acme renewal (3y)",
        "account": org.acme.pk,
        "stage": "Proposal",
        "amount": 50000,
        "close_date": "2031-03-01",
        "version": 2,
    }
    response = api.put(f"opportunities/{opp.pk}", body)
    assert response.status_code == 200, response.content
    assert response.json()["next_step"] == ""
    assert response.json()["version"] == 3


def test_delete_needs_the_version_and_hides_the_deal(org):
    api = api_as(org.ravi)
    path = f"opportunities/{org.ravi_open.pk}"
    assert_error(api.delete(path), 428, "precondition_required")
    assert_error(api.delete(path, if_match=7), 409, "conflict")
    assert_error(api.delete(path, raw='{"version": 1, "force": true}'), 400)
    assert api.delete(path, if_match=1).status_code == 204
    assert_error(api.get(path), 404)


def test_product_lines_are_replaced_as_a_whole(org):
    product = pipeline_services.create_product(None, name="Seats", list_price=Decimal("100"))
    api = api_as(org.ravi)
    path = f"opportunities/{org.ravi_open.pk}/products"
    assert api.get(path).json() == {"version": 1, "lines": []}
    assert_error(api.put(path, {"lines": [{"product": product.pk, "quantity": 3}]}), 428)
    response = api.put(path, {"lines": [{"product": product.pk, "quantity": 3}], "version": 1})
    assert response.status_code == 200, response.content
    [line] = response.json()["lines"]
    assert (Decimal(line["quantity"]), Decimal(line["unit_price"]), Decimal(line["total"])) == (3, 100, 300)
    assert_error(api.put(path, {"lines": [{"product": 987654}], "version": 1}), 400)


def test_the_history_of_a_deal_lists_each_change_with_who_and_how(org):
    api = api_as(org.ravi)
    api.patch(f"opportunities/{org.ravi_open.pk}", {"amount": 50000, "version": 1})
    items = api.get(f"opportunities/{org.ravi_open.pk}/history").json()["items"]
    assert [(i["field"], i["old_value"], i["new_value"], i["via"]) for i in items] == [
        ("amount", "48000", "50000", "api")
    ]
    assert items[0]["changed_by"]["username"] == "ravi"
    assert_error(api_as(org.owen).get(f"opportunities/{org.ravi_open.pk}/history"), 404)


# --- optimistic concurrency ---------------------------------------------------------------------------


def test_a_detail_read_returns_the_version_and_an_etag(org):
    response = api_as(org.ravi).get(f"opportunities/{org.ravi_open.pk}")
    assert response.json()["version"] == 1
    assert response["ETag"] == '"1"'


def test_a_write_without_the_version_read_is_428(org):
    error = assert_error(api_as(org.ravi).patch(f"opportunities/{org.ravi_open.pk}", {"name": "x"}), 428)
    assert "If-Match" in error["message"]


def test_a_stale_write_is_409_and_changes_nothing(org):
    maya, ravi = api_as(org.maya), api_as(org.ravi)
    path = f"opportunities/{org.ravi_open.pk}"
    assert maya.patch(path, {"next_step": "Send proposal"}, if_match='"1"').status_code == 200
    assert_error(ravi.patch(path, {"next_step": "Lunch"}, if_match='"1"'), 409, "conflict")
    assert ravi.get(path).json()["next_step"] == "Send proposal"


@pytest.mark.parametrize("header", ['"1"', 'W/"1"', "1"])
def test_if_match_accepts_the_etag_as_read(org, header):
    response = api_as(org.ravi).patch(f"opportunities/{org.ravi_open.pk}", {"name": "n"}, if_match=header)
    assert response.status_code == 200, response.content


def test_a_garbled_if_match_or_one_that_disagrees_with_the_body_is_400(org):
    api = api_as(org.ravi)
    path = f"opportunities/{org.ravi_open.pk}"
    assert_error(api.patch(path, {"name": "n"}, if_match="yesterday"), 400)
    assert_error(api.patch(path, {"name": "n", "version": 2}, if_match=1), 400)


def test_accounts_and_contacts_are_versioned_too(org):
    api = api_as(org.ravi)
    path = f"accounts/{org.acme.pk}"
    assert api.get(path)["ETag"] == '"1"'
    assert_error(api.patch(path, {"industry": "Steel"}), 428)
    assert api.patch(path, {"industry": "Steel"}, if_match=1).json()["version"] == 2
    assert_error(api.patch(path, {"industry": "Iron"}, if_match=1), 409)
    contact = api.post(
        "contacts", {"first_name": "Wile", "last_name": "Coyote", "account": org.acme.pk}
    ).json()
    assert_error(api.patch(f"contacts/{contact['id']}", {"title": "CTO"}), 428)
    assert api.patch(f"contacts/{contact['id']}", {"title": "CTO", "version": 1}).json()["title"] == "CTO"


# --- lists --------------------------------------------------------------------------------------------


def test_a_list_has_the_envelope_and_pages_with_next(org):
    for n in range(3):
        pipeline_services.create_opportunity(org.ravi, name=f"Deal {n}", account=org.acme, via=Via.FORM)
    first = api_as(org.ravi).get("opportunities", limit=2, ordering="name").json()
    assert set(first) == {"count", "count_exact", "limit", "offset", "next", "items"}
    assert (first["count"], first["limit"], first["offset"], len(first["items"])) == (5, 2, 0, 2)
    assert first["count_exact"] is True
    assert "offset=2" in first["next"] and "limit=2" in first["next"] and "ordering=name" in first["next"]
    last = api_as(org.ravi).get("opportunities", limit=2, offset=4, ordering="name").json()
    assert last["next"] is None and len(last["items"]) == 1


def test_a_huge_list_counts_to_a_ceiling_and_says_the_count_is_a_lower_bound(org, settings):
    for n in range(3):
        pipeline_services.create_opportunity(org.ravi, name=f"Deal {n}", account=org.acme, via=Via.FORM)
    settings.TRUEPIPE_API_COUNT_MAX = 2  # Ravi has 5 deals: counting stops 2 rows past the page
    first = api_as(org.ravi).get("opportunities", limit=1, ordering="name").json()
    assert (first["count"], first["count_exact"]) == (3, False)
    assert "offset=1" in first["next"]
    near_the_end = api_as(org.ravi).get("opportunities", limit=1, offset=2, ordering="name").json()
    assert (near_the_end["count"], near_the_end["count_exact"]) == (5, True)
    last = api_as(org.ravi).get("opportunities", limit=1, offset=4, ordering="name").json()
    assert last["next"] is None and len(last["items"]) == 1


def test_the_page_size_is_capped(org, settings):
    settings.TRUEPIPE_API_PAGE_SIZE_MAX = 10
    error = assert_error(api_as(org.ravi).get("opportunities", limit=11), 400)
    assert "1 to 10" in error["message"] and "limit" in error["fields"]
    assert_error(api_as(org.ravi).get("opportunities", limit=0), 400)
    assert_error(api_as(org.ravi).get("opportunities", offset=-1), 400)


def test_ordering_follows_the_whitelist(org):
    api = api_as(org.maya)
    names = [o["name"] for o in api.get("opportunities", ordering="-amount,name").json()["items"]]
    assert names == ["Acme expansion", "Acme renewal"]
    error = assert_error(api.get("opportunities", ordering="-amount,password"), 400)
    assert "password" in error["message"] and "ordering" in error["fields"]


def test_an_unknown_filter_is_an_error_not_an_unfiltered_list(org):
    error = assert_error(api_as(org.ravi).get("opportunities", onwer="ravi"), 400)
    assert error["fields"] == {"onwer": "Unknown parameter."}


def test_opportunity_filters(org):
    api = api_as(org.ada)

    def names(**params):
        return sorted(o["name"] for o in api.get("opportunities", **params).json()["items"])

    assert names(owner="ravi") == ["Acme expansion", "Acme renewal"]
    assert names(owner=str(org.owen.pk)) == ["Globex pilot"]
    assert names(stage="won") == ["Acme expansion"]
    assert names(stage=str(Stage.objects.get(name="Qualification").pk)) == ["Globex pilot"]
    assert names(account=org.globex.pk) == ["Globex pilot"]
    assert names(is_open="false") == ["Acme expansion"]
    assert names(is_open="true") == ["Acme renewal", "Globex pilot"]
    today = timezone.localdate()
    assert names(close_date_from=str(today + dt.timedelta(days=1))) == ["Acme renewal"]
    assert names(close_date_to=str(today)) == ["Acme expansion"]
    assert names(created_from=str(today), created_to=str(today)) == [
        "Acme expansion",
        "Acme renewal",
        "Globex pilot",
    ]
    assert names(created_to=str(today - dt.timedelta(days=1))) == []
    assert names(updated_since=(timezone.now() + dt.timedelta(hours=1)).isoformat()) == []
    assert names(q="globex") == ["Globex pilot"]
    assert names(q="renewal") == ["Acme renewal"]
    assert_error(api.get("opportunities", close_date_from="31/12/2024"), 400)


def test_filtering_by_someone_you_cannot_see_finds_nothing(org):
    assert api_as(org.ravi).get("opportunities", owner="owen").json()["count"] == 0


# --- accounts, contacts, activities ------------------------------------------------------------------


def test_accounts_carry_their_domains(org):
    api = api_as(org.ravi)
    created = api.post("accounts", {"name": "Initech", "domains": ["https://www.Initech.example/about"]})
    assert created.status_code == 201, created.content
    account = created.json()
    assert account["domains"] == ["initech.example"]
    updated = api.patch(
        f"accounts/{account['id']}", {"domains": ["initech.example", "initrode.example"], "version": 1}
    )
    assert updated.json()["domains"] == ["initech.example", "initrode.example"]
    assert api.get("accounts", domain="initrode.example").json()["count"] == 1
    taken = assert_error(api.post("accounts", {"name": "Copycat", "domains": ["acme.example"]}), 400)
    assert "domains" in taken["fields"]
    assert_error(api.post("accounts", {"name": "Bad", "domains": ["not a domain"]}), 400)
    history = api.get(f"accounts/{account['id']}/history").json()["items"]
    assert [h["field"] for h in history] == ["domains"]


def test_an_account_with_deals_cannot_be_deleted(org):
    error = assert_error(api_as(org.ravi).delete(f"accounts/{org.acme.pk}", if_match=1), 400)
    assert "opportunities" in error["message"]


def test_contacts_carry_their_emails(org):
    api = api_as(org.ravi)
    body = {
        "first_name": "Road",
        "last_name": "Runner",
        "account": org.acme.pk,
        "emails": ["RR@Acme.example"],
    }
    contact = api.post("contacts", body).json()
    assert contact["emails"] == ["rr@acme.example"] and contact["name"] == "Road Runner"
    assert api.get("contacts", q="rr@acme").json()["count"] == 1
    assert api.get("contacts", email="rr@acme.example").json()["count"] == 1
    assert_error(api.post("contacts", {"last_name": "Dup", "emails": ["rr@acme.example"]}), 400)
    assert_error(api.post("contacts", {"last_name": "Bad", "emails": ["nope"]}), 400)
    assert_error(api.post("contacts", {}), 400)
    nameless = {"first_name": "", "last_name": "", "emails": [], "version": 1}
    assert_error(api.put(f"contacts/{contact['id']}", nameless), 400)
    assert api.delete(f"contacts/{contact['id']}", {"version": 1}).status_code == 204


def test_an_activity_is_logged_with_participants_and_source_api(org):
    contact = account_services.create_contact(org.ravi, last_name="Buyer", account=org.acme, via=Via.FORM)
    api = api_as(org.ravi)
    response = api.post(
        "activities",
        {
            "kind": "call",
            "subject": "Pricing call",
            "opportunity": org.ravi_open.pk,
            "participants": [contact.pk],
            "occurred_at": "2026-01-05T10:00:00Z",
        },
    )
    assert response.status_code == 201, response.content
    activity = response.json()
    assert activity["source"] == "api"
    assert activity["participants"] == [contact.pk]
    assert activity["account"] == {"id": org.acme.pk, "name": "Acme Corp"}
    assert api.get("activities", contact=contact.pk).json()["count"] == 1
    assert api.get("activities", opportunity=org.ravi_open.pk, kind="call").json()["count"] == 1
    patched = api.patch(
        f"activities/{activity['id']}", {"subject": "Pricing call (recap)", "participants": []}
    )
    assert patched.json()["subject"] == "Pricing call (recap)" and patched.json()["participants"] == []
    assert api.delete(f"activities/{activity['id']}").status_code == 204


def test_an_activity_cannot_name_a_contact_you_cannot_see(org):
    stranger = account_services.create_contact(org.owen, last_name="Hidden", account=org.globex, via=Via.FORM)
    body = {"kind": "note", "subject": "x", "participants": [stranger.pk]}
    error = assert_error(api_as(org.ravi).post("activities", body), 400)
    assert "participants" in error["fields"]


def test_an_activity_in_the_future_is_refused_with_the_reason(org):
    body = {"kind": "call", "subject": "x", "occurred_at": "2099-01-01T00:00:00Z"}
    error = assert_error(api_as(org.ravi).post("activities", body), 400)
    assert error["fields"] == {"occurred_at": "In the future."}


# --- products, stages, people, tokens ----------------------------------------------------------------


def test_everyone_reads_products_and_only_an_admin_writes_them(org):
    created = api_as(org.ada).post(
        "products", {"name": "Support", "list_price": "990.00", "family": "Services"}
    )
    assert created.status_code == 201, created.content
    product = created.json()
    assert api_as(org.ravi).get(f"products/{product['id']}").json()["name"] == "Support"
    assert api_as(org.dana).get("products", family="services").json()["count"] == 1
    assert_error(api_as(org.ravi).post("products", {"name": "Mine"}), 403, "forbidden")
    assert_error(api_as(org.eli).patch(f"products/{product['id']}", {"list_price": 1}), 403)
    patched = api_as(org.ada).patch(f"products/{product['id']}", {"list_price": 1000, "is_active": False})
    assert patched.json()["is_active"] is False and Decimal(patched.json()["list_price"]) == 1000


def test_stages_are_listed_in_pipeline_order(org):
    stages = api_as(org.ravi).get("stages").json()["items"]
    assert [s["name"] for s in stages][:2] == ["Prospecting", "Qualification"]
    assert stages[1]["required_fields"] == ["account"]


def test_an_admin_configures_the_pipeline(org):
    api = api_as(org.ada)
    created = api.post(
        "stages", {"name": "Legal review", "order": 45, "required_fields": ["amount", "close_date"]}
    )
    assert created.status_code == 201, created.content
    stage = created.json()
    assert (stage["kind"], stage["probability"], stage["forecast_category"]) == ("open", 10, "pipeline")
    assert [s["name"] for s in api.get("stages").json()["items"]][3:6] == [
        "Proposal",
        "Legal review",
        "Negotiation",
    ]
    patched = api.patch(f"stages/{stage['id']}", {"probability": 65, "is_active": False})
    assert (patched.json()["probability"], patched.json()["is_active"]) == (65, False)
    assert_error(api.post("stages", {"name": "legal REVIEW"}), 400)
    assert_error(api.post("stages", {"name": "Odd", "required_fields": ["password"]}), 400)
    assert_error(api.post("stages", {"name": "Odd", "kind": "maybe"}), 400)


def test_a_stage_with_deals_keeps_its_kind(org):
    proposal = Stage.objects.get(name="Proposal")
    error = assert_error(api_as(org.ada).patch(f"stages/{proposal.pk}", {"kind": "won"}), 400)
    assert error["fields"] == {"kind": "The stage has deals."}


def test_only_an_admin_changes_stages(org):
    assert_error(api_as(org.maya).post("stages", {"name": "Mine"}), 403, "forbidden")
    qualification = Stage.objects.get(name="Qualification")
    assert_error(api_as(org.eli).patch(f"stages/{qualification.pk}", {"probability": 1}), 403)


def test_people_are_listed_as_far_as_the_caller_reaches(org):
    def usernames(user, **params):
        return sorted(p["username"] for p in api_as(user).get("users", **params).json()["items"])

    assert usernames(org.ravi) == ["ravi"]
    assert usernames(org.maya) == ["maya", "ravi", "rita"]
    assert usernames(org.ada, team="west") == ["omar", "owen"]
    assert usernames(org.eli, manager="maya") == ["ravi", "rita"]
    assert_error(api_as(org.ravi).get(f"users/{org.owen.pk}"), 404)


def test_an_admin_creates_and_moves_people(org):
    api = api_as(org.ada)
    body = {"username": "nina", "full_name": "Nina New", "role": "rep", "manager": "omar", "team": "West"}
    created = api.post("users", body)
    assert created.status_code == 201, created.content
    person = created.json()
    assert person["manager"]["username"] == "omar" and person["team"]["name"] == "West"
    moved = api.patch(f"users/{person['id']}", {"manager": "maya", "title": "AE"})
    assert moved.json()["manager"]["username"] == "maya"
    assert "nina" in [p["username"] for p in api_as(org.maya).get("users").json()["items"]]
    assert_error(api.post("users", {**body, "username": "NINA"}), 400)
    assert_error(api.post("users", {**body, "username": "x", "role": "boss"}), 400)
    assert_error(api_as(org.maya).post("users", {**body, "username": "sneaky"}), 403)


def test_tokens_are_created_shown_once_listed_and_revoked(org):
    api = api_as(org.ravi)
    created = api.post("tokens", {"name": "laptop"})
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("tp_") and created.json()["prefix"] == raw[:10]
    listed = api.get("tokens").json()["items"]
    assert {t["name"] for t in listed} == {"laptop", "tests"}
    assert all("token" not in t for t in listed)
    assert not ApiToken.objects.filter(digest__contains=raw).exists()

    other = api_as(org.rita)
    assert_error(other.delete(f"tokens/{created.json()['id']}"), 404)
    assert api.delete(f"tokens/{created.json()['id']}").status_code == 204
    assert_error(Client().get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Bearer {raw}"), 401)


# --- errors, OpenAPI, docs ---------------------------------------------------------------------------


def test_an_unknown_address_or_method_gets_the_error_format(org):
    api = api_as(org.ravi)
    assert_error(api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(api.get("/api/v1/"), 404)
    response = api.put("opportunities", {})
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_a_body_that_is_not_json_says_so(org):
    api = api_as(org.ravi)
    assert_error(api.post("opportunities", raw="{'name': 'x'"), 400, "malformed_json")
    assert_error(api.post("opportunities", raw="[1, 2]"), 400, "malformed_json")
    assert_error(api.post("opportunities", raw='{"name": NaN}'), 400, "malformed_json")
    assert_error(api.post("opportunities", raw="name=x", content_type="text/plain"), 415)
    huge = '{"name": "' + "x" * 3_000_000 + '"}'
    assert_error(api.post("opportunities", raw=huge), 413, "too_large")


def test_validation_errors_name_each_bad_field(org):
    body = {"name": "x" * 201, "amount": -5, "close_date": "2024-02-30", "probability": 101, "colour": "red"}
    error = assert_error(api_as(org.ravi).post("opportunities", body), 400, "invalid")
    assert set(error["fields"]) == {"name", "amount", "close_date", "probability", "colour"}
    assert error["fields"]["colour"] == "Unknown field."


def test_the_openapi_document_is_served_at_the_documented_path(org):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/opportunities", "/api/v1/opportunities/{id}/products", "/api/v1/tokens"):
        assert path in document["paths"]
    assert {"TokenAuth", "SessionAuth"} <= set(document["components"]["securitySchemes"])


def test_the_docs_page_loads_its_assets_from_our_own_static_files(org):
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert all(a.startswith("/static/") for a in assets), assets
    assert "cdn" not in html.lower()
    assert Client().get([a for a in assets if a.endswith(".js")][0]).status_code == 200


@pytest.mark.parametrize("user", ["eli", "dana"])
def test_read_only_roles_cannot_write_through_the_api(org, user):
    api = api_as(getattr(org, user))
    assert_error(api.post("accounts", {"name": "Mine"}), 403, "forbidden")
    assert_error(api.post("activities", {"kind": "note", "subject": "hi"}), 403)


def test_an_activity_logged_before_can_be_listed_by_date(org):
    when = timezone.now() - dt.timedelta(days=3)
    activity_services.log_activity(org.ravi, kind="call", subject="Old call", occurred_at=when, via=Via.FORM)
    api = api_as(org.ravi)
    assert api.get("activities", occurred_from=str(when.date())).json()["count"] == 1
    assert api.get("activities", occurred_from=str(timezone.localdate())).json()["count"] == 0
