"""Notifications: in the app, by e-mail through a real SMTP server (at once or as a digest), and
to signed webhooks retried with back-off, read back from a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.db import transaction
from django.utils import timezone

from tests.test_web_accountability import _strict_weeks
from truepipe.accountability.models import Consequence
from truepipe.accountability.services import apply_consequence, waive_consequence
from truepipe.notify.models import DeliveryStatus, EmailMode, Notification, NotificationSetting, Webhook
from truepipe.notify.send import deliver, flush, send_digests


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=email_policy)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for rcpt, m in self.messages if address in rcpt]


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    with socket.socket() as probe:  # a free port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield handler
    controller.stop()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(self.server.answer)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received, server.answer = [], 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _emails(org) -> None:
    for person in (org.ravi, org.maya, org.vera):
        person.email = f"{person.username}@truepipe.test"
        person.save(update_fields=["email"])


@pytest.mark.django_db
def test_a_found_offense_reaches_ravi_and_maya_in_the_app_and_by_email(org, inbox):
    _emails(org)
    _strict_weeks(20, 27)

    assert Notification.objects.filter(user=org.ravi, event="offense.found").count() == 1
    assert Notification.objects.filter(user=org.maya, event="consequence.created").count() == 1
    assert flush()["emails"] >= 2
    (ravi,) = inbox.to("ravi@truepipe.test")
    assert ravi["Subject"].startswith("Offense ") and "Written warning" in ravi["Subject"]
    assert "/accountability/offenses/" in ravi.get_content()
    (maya,) = inbox.to("maya@truepipe.test")
    assert maya["Subject"].startswith("To decide by")
    assert flush()["emails"] == 0  # sent once


@pytest.mark.django_db
def test_maya_on_the_digest_gets_one_email_with_everything(org, inbox):
    _emails(org)
    NotificationSetting.objects.create(user=org.maya, email=EmailMode.DIGEST)
    NotificationSetting.objects.create(user=org.ravi, email=EmailMode.OFF)
    _strict_weeks(20, 27, 34)

    flush()
    assert inbox.to("maya@truepipe.test") == [] and inbox.to("ravi@truepipe.test") == []
    assert send_digests() == 1
    (digest,) = inbox.to("maya@truepipe.test")
    assert digest["Subject"] == "truepipe: 2 updates"
    assert digest.get_content().count("To decide by") == 2
    assert Notification.objects.filter(user=org.ravi, emailed_at__isnull=True).count() == 2  # in the app only


@pytest.mark.django_db
def test_an_applied_expense_hold_is_posted_to_finance_signed_and_slack_readable(org, receiver):
    hook = Webhook.objects.create(
        name="Finance",
        url=f"http://127.0.0.1:{receiver.server_port}/hooks",
        events=["consequence.for_finance"],
    )
    offenses = _strict_weeks(20, 27, 34)
    warning, hold = (o.consequences.get() for o in offenses)
    apply_consequence(org.maya, warning, "Coached")  # a warning concerns no one outside sales
    apply_consequence(org.maya, hold, "Hold starts today")

    assert flush()["webhooks"] == 1
    ((headers, body),) = receiver.received
    expected = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Truepipe-Signature"] == expected
    assert headers["X-Truepipe-Event"] == "consequence.for_finance"
    payload = json.loads(body)
    assert payload["text"].startswith("FINANCE: Hold on reimbursement") and "Ravi Rao" in payload["text"]
    data = payload["data"]
    assert (data["rep"]["username"], data["hold_days"]) == ("ravi", 30)
    assert data["hold_until"] == (timezone.localdate() + dt.timedelta(days=30)).isoformat()


@pytest.mark.django_db
def test_a_failing_endpoint_is_retried_with_back_off_then_given_up(org, receiver, settings):
    settings.TRUEPIPE_WEBHOOK_ATTEMPTS = 3
    receiver.answer = 500
    Webhook.objects.create(name="Slack", url=f"http://127.0.0.1:{receiver.server_port}/", events=["*"])
    _strict_weeks(20, 27)
    waive_consequence(org.maya, Consequence.objects.filter(offense__rep=org.ravi).get(), "Holiday")
    delivery = Webhook.objects.get().deliveries.get(event="consequence.waived")

    now = timezone.now()
    deliver(now)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.PENDING,
        1,
        "HTTP 500",
    )
    assert delivery.next_attempt_at == now + dt.timedelta(minutes=1)
    deliver(now + dt.timedelta(seconds=30))  # not due yet
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    deliver(now + dt.timedelta(minutes=2))
    deliver(now + dt.timedelta(minutes=10))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)

    receiver.answer = 204
    Webhook.objects.get().deliveries.update(status=DeliveryStatus.PENDING, next_attempt_at=now)
    assert deliver(now) >= 1


@pytest.mark.django_db
def test_a_decision_that_rolls_back_tells_no_one(org):
    _strict_weeks(20, 27)
    consequence = Consequence.objects.filter(offense__rep=org.ravi).get()
    before = Notification.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        apply_consequence(org.maya, consequence, "Coached")
        raise RuntimeError("the request failed after the decision")
    assert Notification.objects.count() == before


@pytest.mark.django_db
def test_ravi_reads_his_notifications_sets_the_digest_and_the_bell_empties(org):
    from django.test import Client
    from django.urls import reverse

    from tests.conftest import PASSWORD

    _strict_weeks(20, 27)
    ravi = Client()
    ravi.login(username="ravi", password=PASSWORD)

    page = ravi.get(reverse("notifications")).content.decode()
    assert 'class="bell-count">1<' in page and "Offense " in page
    ravi.post(reverse("notifications"), {"action": "save", "email": "digest"})
    assert NotificationSetting.objects.get(user=org.ravi).email == EmailMode.DIGEST
    assert ravi.post(reverse("notifications"), {"action": "save", "email": "hourly"}).status_code == 400
    ravi.post(reverse("notifications"), {"action": "read"})
    assert "bell-count" not in ravi.get(reverse("pipeline")).content.decode()
    assert not Notification.objects.filter(user=org.maya, read_at__isnull=False).exists()  # only his own


@pytest.mark.django_db
def test_vera_hears_once_when_maya_lets_a_second_consequence_slip(org):
    _strict_weeks(20, 27, 34, 48)  # Maya decides nothing: the warning and the hold pass their deadlines

    reports = Notification.objects.filter(user=org.vera, event="manager.unenforced")
    assert [n.title for n in reports] == ["Maya let 2 consequences pass their deadline"]
    _strict_weeks(55)
    assert reports.count() == 1


@pytest.mark.django_db
def test_a_webhook_with_a_broken_address_fails_alone_and_the_others_are_delivered(org, receiver):
    Webhook.objects.create(name="Typo", url="finance.example/hook", events=["*"])  # saved by hand, no scheme
    Webhook.objects.create(name="Slack", url=f"http://127.0.0.1:{receiver.server_port}/", events=["*"])
    _strict_weeks(20, 27)

    assert deliver() >= 1
    broken = Webhook.objects.get(name="Typo").deliveries.first()
    assert broken.attempts == 1 and broken.status == DeliveryStatus.PENDING and broken.last_error
    assert receiver.received


@pytest.mark.django_db
def test_a_flush_while_another_runs_gives_up_or_waits_its_turn(org):
    from huey.contrib.djhuey import HUEY

    from truepipe.notify.send import FLUSH_LOCK, flush

    with HUEY.lock_task(FLUSH_LOCK):
        assert flush() == {"emails": 0, "webhooks": 0}
        started = time.monotonic()
        assert flush(wait=0.3) == {"emails": 0, "webhooks": 0}
        assert time.monotonic() - started >= 0.3
