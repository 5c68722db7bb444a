"""Sending: `notify` records in-app notifications and webhook deliveries inside the caller's
transaction, so a rolled-back decision tells no one. The database is the outbox: the worker's
`flush` (every minute; `truepipe notify flush` on demand) e-mails the notifications of people who
want them at once and posts the webhook deliveries that are due; the nightly job sends digests.
A slow mail server or webhook never holds up the write that caused the message.

Webhook bodies are JSON with a Slack-compatible `text`, signed
`X-Truepipe-Signature: sha256=<HMAC-SHA256 of the body with the webhook's secret>`, and
retried with back-off (1 min, 5 min, 30 min, 2 h, 12 h) until accepted (2xx) or out of attempts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from truepipe.notify.models import (
    DeliveryStatus,
    EmailMode,
    Notification,
    Webhook,
    WebhookDelivery,
)

log = logging.getLogger(__name__)
# Older unsent notifications are not e-mailed any more (someone who turns e-mail on later is not
# sent a backlog): they stay in the app.
RECENT = dt.timedelta(days=2)
BACKOFF = [dt.timedelta(minutes=m) for m in (1, 5, 30, 120, 720)]


@dataclass(frozen=True)
class Message:
    user: Any  # a user or an id; None: nobody in the app (webhooks only)
    event: str
    title: str
    body: str = ""
    url: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def notify_each(messages: Iterable[Message]) -> int:
    """Many different messages at once (what a night's evaluation found): one insert for the
    notifications, one per webhook event kind."""
    messages = list(messages)
    Notification.objects.bulk_create(
        [
            Notification(
                user_id=getattr(m.user, "pk", m.user),
                event=m.event,
                title=m.title[:200],
                body=m.body,
                url=m.url,
            )
            for m in messages
            if m.user is not None
        ],
        batch_size=1000,
    )
    hooked = 0
    wanted = list(Webhook.objects.filter(active=True))
    if wanted:
        deliveries = [
            WebhookDelivery(webhook=hook, event=m.event, payload=_payload(m.event, m.title, m.url, m.data))
            for m in messages
            for hook in wanted
            if hook.wants(m.event)
        ]
        hooked = len(WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000))
    return hooked


def notify(
    users: Iterable[Any],
    event: str,
    title: str,
    body: str = "",
    url: str = "",
    data: dict[str, Any] | None = None,
) -> list[Notification]:
    """Tell these people (in the app, and by e-mail per their setting) and every webhook that
    wants the event. Call inside the decision's transaction."""
    people = {getattr(u, "pk", u): u for u in users if u is not None}
    rows = Notification.objects.bulk_create(
        [Notification(user_id=pk, event=event, title=title[:200], body=body, url=url) for pk in people]
    )
    hooks(event, title, url, data or {})
    return rows


def hooks(event: str, text: str, url: str = "", data: dict[str, Any] | None = None) -> int:
    """Queue the event for every webhook that wants it (posted after commit)."""
    wanted = [hook for hook in Webhook.objects.filter(active=True) if hook.wants(event)]
    if not wanted:
        return 0
    payload = _payload(event, text, url, data or {})
    return len(
        WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(webhook=hook, event=event, payload=payload) for hook in wanted]
        )
    )


def _payload(event: str, text: str, url: str, data: dict[str, Any]) -> dict[str, Any]:
    link = f"{settings.TRUEPIPE_BASE_URL}{url}" if url else ""
    return {
        "event": event,
        "text": f"{text} <{link}>" if link else text,  # what Slack shows
        "url": link,
        "data": data,
        "at": timezone.now().isoformat(),
    }


def send_immediate() -> int:
    """E-mail every notification not yet sent whose person wants them at once (one connection).
    A failed one is retried by the next flush (its error is kept meanwhile)."""
    wanted = Notification.objects.filter(emailed_at__isnull=True, created_at__gte=timezone.now() - RECENT)
    wanted = wanted.exclude(user__email="").exclude(
        user__notify_setting__email__in=[EmailMode.DIGEST, EmailMode.OFF]
    )
    messages = list(wanted.select_related("user").order_by("created_at", "pk")[:1000])
    return _send(messages, lambda n: (n.title, _text(n)))


def send_digests(now: dt.datetime | None = None) -> int:
    """One e-mail per digest-mode person with everything not yet e-mailed (the nightly job)."""
    pending = list(
        Notification.objects.filter(
            emailed_at__isnull=True,
            created_at__gte=timezone.now() - RECENT,
            user__notify_setting__email=EmailMode.DIGEST,
        )
        .exclude(user__email="")
        .select_related("user")
        .order_by("created_at", "pk")
    )
    by_user: dict[int, list[Notification]] = defaultdict(list)
    for n in pending:
        by_user[n.user_id].append(n)
    sent = 0
    with get_connection(fail_silently=False) as connection:
        for items in by_user.values():
            subject = f"truepipe: {len(items)} update{'s' if len(items) != 1 else ''}"
            body = "\n\n".join(_text(n) for n in items)
            if _deliver_mail(connection, items[0].user.email, subject, body, [n.pk for n in items], now):
                sent += 1
    return sent


def _text(n: Notification) -> str:
    link = f"\n{settings.TRUEPIPE_BASE_URL}{n.url}" if n.url else ""
    return f"{n.title}\n{n.body}{link}".strip()


def _send(items: list[Notification], render) -> int:  # type: ignore[no-untyped-def]
    if not items:
        return 0
    sent = 0
    with get_connection(fail_silently=False) as connection:
        for n in items:
            subject, body = render(n)
            sent += _deliver_mail(connection, n.user.email, subject, body, [n.pk])
    return sent


def _deliver_mail(connection, to: str, subject: str, body: str, ids: list[int], now=None) -> bool:  # type: ignore[no-untyped-def]
    try:
        EmailMessage(subject, body, to=[to], connection=connection).send()
    except Exception as exc:  # noqa: BLE001 - any mail failure is recorded; the digest retries it
        log.warning("e-mail to %s failed: %s", to, exc)
        Notification.objects.filter(pk__in=ids).update(email_error=str(exc)[:255])
        return False
    Notification.objects.filter(pk__in=ids).update(emailed_at=now or timezone.now(), email_error="")
    return True


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


FLUSH_LOCK = "truepipe-notify-flush"


def flush(now: dt.datetime | None = None, *, wait: float = 0.0) -> dict[str, int]:
    """What the worker runs every minute: immediate e-mails, then due webhook deliveries. One
    flush at a time (the worker's and a cron job's would send the same messages twice).

    A flush already running makes this one give up, unless `wait` seconds are given: then it
    waits for that one (which may have read the outbox before the caller's messages were
    committed) and sends after it; past the wait, the worker sends them within the minute."""
    from huey.contrib.djhuey import HUEY
    from huey.exceptions import TaskLockedException

    deadline = time.monotonic() + wait
    while True:
        try:
            with HUEY.lock_task(FLUSH_LOCK):
                return {"emails": send_immediate(), "webhooks": deliver(now)}
        except TaskLockedException:
            if time.monotonic() >= deadline:
                return {"emails": 0, "webhooks": 0}
            time.sleep(0.1)


def deliver(now: dt.datetime | None = None) -> int:
    """Post the pending deliveries that are due; returns how many were accepted. A failure
    schedules the next attempt; the last one gives up."""
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    accepted = 0
    for delivery in due.select_related("webhook"):
        body = json.dumps(delivery.payload, sort_keys=True).encode()
        delivery.attempts += 1
        try:
            request = urllib.request.Request(
                delivery.webhook.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "truepipe-webhook/1",
                    "X-Truepipe-Event": delivery.event,
                    "X-Truepipe-Delivery": str(delivery.pk),
                    "X-Truepipe-Signature": sign(delivery.webhook.secret, body),
                },
            )
            with urllib.request.urlopen(request, timeout=settings.TRUEPIPE_WEBHOOK_TIMEOUT) as response:
                delivery.last_status_code = response.status
            delivery.status, delivery.delivered_at, delivery.last_error = DeliveryStatus.DELIVERED, now, ""
            accepted += 1
        except Exception as exc:  # noqa: BLE001 - a bad URL or answer is one failed attempt, never a stop
            code = getattr(exc, "code", None)
            code = code if isinstance(code, int) and 0 < code < 1000 else None
            delivery.last_status_code = code
            delivery.last_error = (f"HTTP {code}" if code else str(getattr(exc, "reason", exc)))[:255]
            if delivery.attempts >= settings.TRUEPIPE_WEBHOOK_ATTEMPTS:
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.next_attempt_at = now + BACKOFF[min(delivery.attempts - 1, len(BACKOFF) - 1)]
        delivery.save()
    return accepted
