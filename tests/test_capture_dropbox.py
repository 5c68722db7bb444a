"""The drop-box: reps BCC or forward mail to a logging address and it lands on the deal."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import pytest
from django.test import override_settings

from tests.capture_helpers import message
from truepipe.activities.models import Activity
from truepipe.capture.dropbox import Refused, controller, receive
from truepipe.capture.models import CaptureAddress, CapturedItem

LOG = "log@truepipe.localhost"


@pytest.mark.django_db
def test_a_mail_ravi_bccs_to_the_drop_box_is_logged_on_his_deal(org, acme_buyer):
    mail = message("ravi@truepipe.test", "bea@acme.example", "Next steps")

    receive(mail.as_bytes(), "ravi@truepipe.test")

    activity = Activity.objects.get(subject="Next steps")
    assert (activity.owner, activity.opportunity) == (org.ravi, org.ravi_open)


@pytest.mark.django_db
def test_a_customer_mail_ravi_forwards_as_an_attachment_is_logged_as_the_original(org, acme_buyer):
    original = message("Bea Buyer <bea@acme.example>", "ravi@truepipe.test", "We are ready to sign")
    forward = EmailMessage()
    forward["From"] = "ravi@truepipe.test"
    forward["To"] = LOG
    forward["Subject"] = "Fwd: We are ready to sign"
    forward.set_content("FYI")
    forward.add_attachment(original)

    receive(forward.as_bytes(), "ravi@truepipe.test")

    activity = Activity.objects.get(subject="We are ready to sign")
    assert activity.owner == org.ravi
    assert activity.occurred_at == original_date(original)
    assert list(activity.participants.all()) == [acme_buyer]


@pytest.mark.django_db
def test_an_inline_forward_is_logged_with_the_quoted_sender_date_and_subject(org, acme_buyer):
    body = (
        "see below\n\n---------- Forwarded message ---------\n"
        "From: Bea Buyer <bea@acme.example>\nDate: Mon, 23 Nov 2026 14:05:00 +0000\n"
        "Subject: Legal review done\nTo: Ravi Rao <ravi@truepipe.test>\n\nAll clauses accepted.\n"
    )
    forward = message("ravi@truepipe.test", LOG, "Fwd: Legal review done", body)

    receive(forward.as_bytes(), "ravi@truepipe.test")

    activity = Activity.objects.get(subject="Legal review done")
    assert activity.body == "All clauses accepted."
    assert activity.occurred_at.isoformat() == "2026-11-23T14:05:00+00:00"
    assert activity.opportunity == org.ravi_open


@pytest.mark.django_db
def test_a_sender_who_is_not_registered_is_refused(org, acme_buyer):
    mail = message("mallory@evil.example", "bea@acme.example", "Spoof")

    with pytest.raises(Refused, match="550 5.7.1"):
        receive(mail.as_bytes(), "mallory@evil.example")
    assert not CapturedItem.objects.exists()


@pytest.mark.django_db
def test_an_envelope_of_ravi_with_a_from_header_of_someone_else_is_refused(org, acme_buyer):
    mail = message("bea@acme.example", "ravi@truepipe.test", "Pretending")

    with pytest.raises(Refused, match="From header"):
        receive(mail.as_bytes(), "ravi@truepipe.test")


@pytest.mark.django_db
def test_a_registered_second_address_of_ravi_is_accepted(org, acme_buyer):
    CaptureAddress.objects.create(user=org.ravi, email="ravi.rao@mobile.example")
    mail = message("ravi.rao@mobile.example", "bea@acme.example", "From my phone")

    receive(mail.as_bytes(), "ravi.rao@mobile.example")

    assert Activity.objects.get(subject="From my phone").owner == org.ravi


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keep the stages
def test_over_real_smtp_the_drop_box_logs_bccd_mail_and_bounces_strangers(org, acme_buyer):
    port = free_port()
    server = controller("127.0.0.1", port)
    server.start()
    try:
        mail = message("ravi@truepipe.test", "bea@acme.example", "Over the wire")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            refused = smtp.sendmail(
                "ravi@truepipe.test", ["ravi-personal@truepipe.test", LOG], mail.as_bytes()
            )
            assert list(refused) == ["ravi-personal@truepipe.test"]  # only the logging address accepts
            stranger = message("mallory@evil.example", "bea@acme.example", "Spam")
            with pytest.raises(smtplib.SMTPDataError) as bounced:
                smtp.sendmail("mallory@evil.example", [LOG], stranger.as_bytes())
            assert bounced.value.smtp_code == 550
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("ravi@truepipe.test", ["someone@truepipe.localhost"], mail.as_bytes())
    finally:
        server.stop()

    assert Activity.objects.get(subject="Over the wire").opportunity == org.ravi_open
    assert not Activity.objects.filter(subject="Spam").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keep the stages
@override_settings(TRUEPIPE_DROPBOX_MAX_SIZE=50_000)
def test_the_drop_box_refuses_a_message_over_the_size_limit(org, acme_buyer):
    port = free_port()
    server = controller("127.0.0.1", port)
    server.start()
    try:
        mail = message("ravi@truepipe.test", "bea@acme.example", "Too big", "x" * 100_000)
        with smtplib.SMTP("127.0.0.1", port) as smtp, pytest.raises(smtplib.SMTPException):
            smtp.sendmail("ravi@truepipe.test", [LOG], mail.as_bytes())
    finally:
        server.stop()
    assert not Activity.objects.filter(subject="Too big").exists()


def original_date(msg):
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(msg["Date"])
