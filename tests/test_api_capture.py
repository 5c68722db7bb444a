"""/api/v1/capture: the same triage, proposals and uploads as the page, for scripts and apps."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.capture_helpers import capture, message
from tests.test_api_support import api_as, assert_error
from truepipe.activities.models import Activity
from truepipe.capture.models import CapturedItem, ContactProposal, ItemStatus

pytestmark = pytest.mark.django_db
BASE = "/api/v1/capture"


def test_ravi_lists_his_triage_and_chooses_the_deal(org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "API triage"))
    api = api_as(org.ravi)

    listed = api.get(f"{BASE}/items", status="triage").json()
    item = listed["items"][0]
    assert item["subject"] == "API triage" and set(item["candidates"]) == {org.ravi_open.pk, acme_upsell.pk}

    decided = api.post(f"{BASE}/items/{item['id']}/triage", {"opportunity": acme_upsell.pk})

    assert decided.status_code == 200
    assert decided.json()["status"] == "logged"
    assert decided.json()["opportunity"] == {"id": acme_upsell.pk, "name": "Acme upsell"}


def test_choosing_a_deal_of_someone_else_is_404_and_changes_nothing(org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Not Owen's deal"))
    item = CapturedItem.objects.get(subject="Not Owen's deal")

    assert_error(
        api_as(org.ravi).post(f"{BASE}/items/{item.pk}/triage", {"opportunity": org.owen_open.pk}), 404
    )
    assert_error(api_as(org.owen).post(f"{BASE}/items/{item.pk}/triage", {"opportunity": None}), 404)
    item.refresh_from_db()
    assert item.status == ItemStatus.TRIAGE


def test_a_decided_item_cannot_be_decided_again(org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Twice decided"))
    item = CapturedItem.objects.get(subject="Twice decided")
    api = api_as(org.ravi)
    api.post(f"{BASE}/items/{item.pk}/triage", {"opportunity": None})

    assert_error(api.post(f"{BASE}/items/{item.pk}/triage", {"opportunity": acme_upsell.pk}), 400)


def test_ravi_accepts_a_proposed_contact_with_his_own_spelling(org):
    capture(message("ravi@truepipe.test", "carl@acme.example", "Hello Carl"))
    proposal = ContactProposal.objects.get(email="carl@acme.example")
    api = api_as(org.ravi)

    assert [p["email"] for p in api.get(f"{BASE}/proposals").json()["items"]] == ["carl@acme.example"]
    response = api.post(
        f"{BASE}/proposals/{proposal.pk}",
        {"decision": "accept", "first_name": "Carl", "last_name": "Carlsson"},
    )

    assert response.status_code == 200
    proposal.refresh_from_db()
    assert (proposal.contact.last_name, proposal.status) == ("Carlsson", "accepted")


def test_ravi_uploads_an_eml_file(org):
    mail = message("ravi@truepipe.test", "bea@acme.example", "Uploaded by API")
    api = api_as(org.ravi)

    response = api.client.post(
        f"{BASE}/uploads", {"file": SimpleUploadedFile("x.eml", mail.as_bytes())}, **api.headers
    )

    assert response.status_code == 201
    assert response.json()["counts"] == {"logged": 1}
    assert CapturedItem.objects.get(subject="Uploaded by API").owner == org.ravi


def test_dana_from_delivery_cannot_upload(org):
    api = api_as(org.dana)

    response = api.client.post(
        f"{BASE}/uploads", {"file": SimpleUploadedFile("x.eml", b"From: a@b.c\n\nx")}, **api.headers
    )

    assert_error(response, 403)


def test_an_unknown_status_filter_is_a_400_with_a_message(org):
    assert_error(api_as(org.ravi).get(f"{BASE}/items", status="lost"), 400)


def test_capture_is_in_the_openapi_document(org):
    paths = api_as(org.ravi).get("/api/v1/openapi.json").json()["paths"]

    assert {f"{BASE}/items", f"{BASE}/items/{{id}}/triage", f"{BASE}/uploads"} <= set(paths)


def test_ravi_marks_a_conversation_private_through_the_api_and_maya_cannot(org):
    capture(message("ravi@truepipe.test", "friend@acme.example", "Private matter", "details"))
    item = CapturedItem.objects.get(subject="Private matter")

    assert_error(api_as(org.maya).post(f"{BASE}/items/{item.pk}/private"), 403)
    response = api_as(org.ravi).post(f"{BASE}/items/{item.pk}/private")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("ignored", "private thread")
    assert not Activity.objects.filter(body__contains="details").exists()


def test_ravi_dismisses_a_proposal_through_the_api(org):
    capture(message("ravi@truepipe.test", "noreply@acme.example", "Receipt"))
    proposal = ContactProposal.objects.get(email="noreply@acme.example")

    response = api_as(org.ravi).post(f"{BASE}/proposals/{proposal.pk}", {"decision": "dismiss"})

    assert response.status_code == 200
    proposal.refresh_from_db()
    assert proposal.status == "dismissed"
    assert api_as(org.ravi).get(f"{BASE}/proposals").json()["items"] == []
