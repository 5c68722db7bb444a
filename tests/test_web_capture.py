"""The capture page: triage in one click, proposed contacts, uploads, privacy, and who sees what."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.capture_helpers import capture, message
from tests.conftest import PASSWORD
from truepipe.activities.models import Activity
from truepipe.capture.models import CaptureAddress, CapturedItem, ContactProposal, ExcludedDomain, ItemStatus
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services

pytestmark = pytest.mark.django_db


def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_ravi_puts_a_mail_waiting_in_triage_on_the_upsell_in_one_click(client, org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Which one?"))
    item = CapturedItem.objects.get(subject="Which one?")
    page = logged_in(client, org.ravi).get("/capture/")
    assert b"Acme upsell" in page.content and b"Acme renewal" in page.content

    client.post(f"/capture/triage/{item.pk}/", {"opportunity": acme_upsell.pk})

    item.refresh_from_db()
    assert item.status == ItemStatus.LOGGED and item.decided_by == org.ravi
    assert Activity.objects.get(pk=item.activity_id).opportunity == acme_upsell


def test_a_later_mail_in_the_same_thread_follows_the_deal_chosen_in_triage(
    client, org, acme_buyer, acme_upsell
):
    first = message("ravi@truepipe.test", "bea@acme.example", "Thread start")
    capture(first)
    item = CapturedItem.objects.get(subject="Thread start")
    logged_in(client, org.ravi).post(f"/capture/triage/{item.pk}/", {"opportunity": acme_upsell.pk})

    capture(message("bea@acme.example", "ravi@truepipe.test", "Re: Thread start", reply_to=first))

    assert Activity.objects.get(subject="Re: Thread start").opportunity == acme_upsell


def test_owen_cannot_decide_ravis_triage(client, org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Not Owen's"))
    item = CapturedItem.objects.get(subject="Not Owen's")

    response = logged_in(client, org.owen).post(f"/capture/triage/{item.pk}/", {"opportunity": "none"})

    assert response.status_code == 404
    item.refresh_from_db()
    assert item.status == ItemStatus.TRIAGE


def test_ravi_adds_a_proposed_contact_with_the_name_from_the_mail(client, org):
    capture(message("ravi@truepipe.test", "Carl Cfo <carl@acme.example>", "Budget"))
    proposal = ContactProposal.objects.get(email="carl@acme.example")

    logged_in(client, org.ravi).post(f"/capture/proposals/{proposal.pk}/", {"action": "accept"})

    proposal.refresh_from_db()
    assert (proposal.contact.first_name, proposal.contact.last_name, proposal.contact.account) == (
        "Carl",
        "Cfo",
        org.acme,
    )


def test_ravi_uploads_an_mbox_and_sees_what_was_logged_and_what_was_rejected(client, org, tmp_path):
    from tests.capture_helpers import write_mbox

    good = message("ravi@truepipe.test", "bea@acme.example", "Uploaded one")
    undated = message("ravi@truepipe.test", "bea@acme.example", "Undated")
    del undated["Date"]
    mbox = write_mbox(tmp_path / "x.mbox", [good, undated]).read_bytes()
    # Separator lines without their date: the undated message has no date left anywhere.
    raw = re.sub(rb"(?m)^From MAILER-DAEMON .*$", b"From MAILER-DAEMON", mbox)

    response = logged_in(client, org.ravi).post(
        "/capture/upload/", {"files": SimpleUploadedFile("ravi.mbox", raw)}, follow=True
    )

    text = response.content.decode()
    assert "ravi.mbox: 2 read, 1 logged" in text
    assert "Rejected ravi.mbox message 2: no usable date" in text
    assert Activity.objects.get(subject="Uploaded one").owner == org.ravi


def test_an_upload_of_another_kind_of_file_is_refused_with_a_message(client, org):
    response = logged_in(client, org.ravi).post(
        "/capture/upload/", {"files": SimpleUploadedFile("notes.docx", b"PK..")}, follow=True
    )

    assert "capture reads .eml, .mbox and .ics files" in response.content.decode()


def test_ravi_marks_a_conversation_private_and_its_later_mail_is_ignored(client, org):
    first = message("ravi@truepipe.test", "friend@acme.example", "Personal matter", "secret details")
    capture(first)
    item = CapturedItem.objects.get(subject="Personal matter")

    logged_in(client, org.ravi).post(f"/capture/items/{item.pk}/private/")
    capture(message("friend@acme.example", "ravi@truepipe.test", "Re: Personal matter", reply_to=first))

    assert not Activity.objects.filter(subject__contains="Personal matter").exists()
    assert not Activity.objects.filter(body__contains="secret").exists()
    later = CapturedItem.objects.get(subject="Re: Personal matter")
    assert (later.status, later.reason) == (ItemStatus.IGNORED, "private thread")


def test_maya_cannot_mark_ravis_mail_private(client, org):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Team mail"))
    item = CapturedItem.objects.get(subject="Team mail")

    response = logged_in(client, org.maya).post(f"/capture/items/{item.pk}/private/")

    assert response.status_code == 403


def test_ravi_registers_a_second_address_and_excludes_his_family_domain(client, org):
    logged_in(client, org.ravi)
    client.post("/capture/settings/", {"action": "add-address", "value": "Ravi@Phone.example"})
    client.post("/capture/settings/", {"action": "exclude", "value": "family.example"})

    capture(message("ravi@phone.example", "mum@family.example", "Sunday lunch"))

    assert CaptureAddress.objects.get(email="ravi@phone.example").user == org.ravi
    assert ExcludedDomain.objects.filter(user=org.ravi, domain="family.example").exists()
    item = CapturedItem.objects.get(subject="Sunday lunch")
    assert (item.owner, item.reason) == (org.ravi, "personal domain (excluded)")


def test_a_rep_cannot_exclude_a_domain_for_everyone(client, org):
    response = logged_in(client, org.ravi).post(
        "/capture/settings/", {"action": "exclude", "value": "gmail.com", "everyone": "1"}, follow=True
    )

    assert "Only an admin" in response.content.decode()
    assert not ExcludedDomain.objects.exists()


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("ravi", True),
        ("maya", True),
        ("vera", True),
        ("omar", False),
        ("owen", False),
        ("ada", True),
        ("eli", True),
        ("dana", False),
    ],
)
def test_who_sees_ravis_captured_mail(client, org, who, sees):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Visible to whom"))

    page = logged_in(client, getattr(org, who)).get("/capture/")

    assert page.status_code == 200
    assert ("Visible to whom" in page.content.decode()) is sees


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get("/capture/").status_code == 302


def test_the_capture_page_costs_the_same_queries_for_3_and_30_captured_mails(
    client, org, acme_buyer, acme_upsell
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_with(mails: int, start: int) -> int:
        capture(
            *(
                message("ravi@truepipe.test", [f"new{n}@acme.example", "bea@acme.example"], f"Mail {n}")
                for n in range(start, start + mails)
            )
        )
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/capture/").status_code == 200
        return len(queries)

    logged_in(client, org.ravi)
    few = queries_with(3, 0)
    many = queries_with(27, 3)

    assert CapturedItem.objects.filter(status=ItemStatus.TRIAGE).count() == 30
    assert ContactProposal.objects.count() == 30
    assert many == few


def test_ravi_uploads_a_calendar_and_its_past_customer_meetings_are_logged(client, org, acme_buyer):
    from pathlib import Path

    from truepipe.activities.models import ActivityKind

    data = (Path(__file__).parent / "data" / "calendar" / "acme-demo-v1.ics").read_bytes()

    response = logged_in(client, org.ravi).post(
        "/capture/upload/", {"files": SimpleUploadedFile("ravi.ics", data)}, follow=True
    )

    assert "ravi.ics: 1 read, 1 logged" in response.content.decode()
    meeting = Activity.objects.get(owner=org.ravi, kind=ActivityKind.MEETING)
    assert (meeting.source, meeting.opportunity) == ("calendar", org.ravi_open)


def test_ravi_cannot_register_his_managers_login_address_as_his_own(client, org):
    org.maya.email = "maya@truepipe.test"
    org.maya.save(update_fields=["email"])

    response = logged_in(client, org.ravi).post(
        "/capture/settings/", {"action": "add-address", "value": "Maya@truepipe.test"}, follow=True
    )

    assert "maya@truepipe.test is someone else" in response.content.decode()
    assert not CaptureAddress.objects.exists()


def test_a_customers_domain_cannot_be_excluded_as_personal_from_the_settings(client, org):
    response = logged_in(client, org.ravi).post(
        "/capture/settings/", {"action": "exclude", "value": "acme.example"}, follow=True
    )

    assert "a customer" in response.content.decode()
    assert not ExcludedDomain.objects.exists()


def test_the_triage_list_does_not_show_a_deal_that_changed_hands_since(client, org, acme_buyer, acme_upsell):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Before the handover"))
    pipeline_services.update_opportunity(
        org.maya, acme_upsell, {"name": "Rita's secret deal", "owner": org.rita}, via=Via.FORM
    )

    page = logged_in(client, org.ravi).get("/capture/").content.decode()

    assert (
        "Before the handover" in page and "Rita&#x27;s secret deal" not in page and "secret deal" not in page
    )


def test_a_deal_number_that_is_not_a_number_is_refused_not_a_server_error(
    client, org, acme_buyer, acme_upsell
):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Odd choice"))
    item = CapturedItem.objects.get(subject="Odd choice")

    assert (
        logged_in(client, org.ravi).post(f"/capture/triage/{item.pk}/", {"opportunity": "²"}).status_code
        == 404
    )


def test_ravi_dismisses_a_proposed_contact_and_it_is_not_proposed_again(client, org):
    capture(message("ravi@truepipe.test", "Nora Noreply <noreply@acme.example>", "Your invoice"))
    proposal = ContactProposal.objects.get(email="noreply@acme.example")

    logged_in(client, org.ravi).post(f"/capture/proposals/{proposal.pk}/", {"action": "dismiss"})
    capture(message("noreply@acme.example", "ravi@truepipe.test", "Another invoice"))

    proposal.refresh_from_db()
    assert proposal.status == "dismissed" and proposal.contact is None
    assert b"noreply@acme.example" not in client.get("/capture/").content.split(b'id="captured"')[0]


def test_ravi_removes_an_address_and_takes_back_a_personal_domain(client, org):
    logged_in(client, org.ravi)
    client.post("/capture/settings/", {"action": "add-address", "value": "ravi@phone.example"})
    client.post("/capture/settings/", {"action": "exclude", "value": "family.example"})

    client.post("/capture/settings/", {"action": "remove-address", "value": "ravi@phone.example"})
    client.post("/capture/settings/", {"action": "include", "value": "family.example"})

    assert not CaptureAddress.objects.exists()
    assert not ExcludedDomain.objects.exists()
