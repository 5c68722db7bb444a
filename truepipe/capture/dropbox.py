"""The drop-box: a small SMTP server that logs what reps BCC or forward to it.

A rep BCCs the logging address (TRUEPIPE_DROPBOX_ADDRESS) on a mail to a customer, or
forwards a customer's mail to it. The sender must be one of the rep's registered
addresses (their login e-mail or a capture address), both on the envelope and in the
From header; anything else is refused during the SMTP conversation, so the sending
server bounces it back to whoever sent it. A forwarded mail is logged as the original
(an attached message/rfc822, or the quoted headers of an inline forward), owned by the
rep who forwarded it.

`truepipe dropbox` runs it (aiosmtpd); docs/operations.md says how to route mail to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from email import message_from_bytes
from email.utils import getaddresses

from django.conf import settings
from django.db import close_old_connections, connections

from truepipe.activities.models import ActivityKind
from truepipe.capture.ingest import Directory, Incoming, Ingest, Report
from truepipe.capture.mail import (
    Unreadable,
    decode,
    forwarded_original,
    inline_forward,
    parse_date,
    read_parsed,
)
from truepipe.capture.models import CaptureSource
from truepipe.capture.sources import incoming

log = logging.getLogger(__name__)
FORWARD_PREFIXES = ("fwd:", "fw:", "wg:", "tr:", "rv:")


def logging_addresses() -> set[str]:
    address = settings.TRUEPIPE_DROPBOX_ADDRESS
    return {address}


def accepts_recipient(address: str) -> bool:
    """The logging address, with or without a +tag (log+acme@...)."""
    local, _, domain = address.lower().partition("@")
    return f"{local.split('+', 1)[0]}@{domain}" in logging_addresses()


class Refused(Exception):
    """An SMTP reply: the message is not accepted, and the text says why."""


def _inline(forwarder: str, headers: dict[str, str], forwarder_id: int) -> Incoming:
    senders = [(n, a.lower()) for n, a in getaddresses([headers.get("from", "")]) if "@" in a]
    if not senders:
        raise Unreadable("a forward without the original sender")
    when = parse_date(headers.get("date"))
    if when is None:
        raise Unreadable("a forward without the original date")
    recipients = [
        (n, a.lower()) for n, a in getaddresses([headers.get("to", ""), headers.get("cc", "")]) if "@" in a
    ]
    participants = list(dict.fromkeys([senders[0], *recipients]))
    digest = hashlib.sha256(
        "\0".join([senders[0][1], headers.get("date", ""), headers.get("subject", "")]).encode()
    ).hexdigest()
    return Incoming(
        dedup_key=f"msg:sha256:{digest}",
        kind=ActivityKind.EMAIL,
        source=CaptureSource.DROPBOX,
        occurred_at=when,
        subject=decode(headers.get("subject", ""))[:255] or "(no subject)",
        body=headers.get("body", "")[:20_000],
        sender=senders[0][1],
        participants=participants,
        thread_key="",
        owner_id=forwarder_id,
        origin=f"drop-box, forwarded by {forwarder}",
    )


def receive(raw: bytes, envelope_from: str, *, directory: Directory | None = None) -> Report:
    """Log one message the drop-box received; raises `Refused` with the SMTP reply when it must not."""
    directory = directory or Directory()
    envelope_from = envelope_from.lower()
    user_id = directory.users.get(envelope_from)
    if user_id is None:
        raise Refused("550 5.7.1 The sender is not a registered truepipe address")
    msg = message_from_bytes(raw)
    header_from = [a.lower() for _, a in getaddresses([decode(v) for v in msg.get_all("From") or []])]
    if not header_from or directory.users.get(header_from[0]) != user_id:
        raise Refused("550 5.7.1 The From header is not an address of the same truepipe user")
    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.select_related("profile").get(pk=user_id)
    origin = f"drop-box from {envelope_from}"
    try:
        attached = forwarded_original(msg)
        if attached is not None:
            item = incoming(
                read_parsed(attached, attached.as_bytes()),
                source=CaptureSource.DROPBOX,
                origin=origin,
                owner_id=user_id,
            )
        else:
            parsed = read_parsed(msg, raw)
            forward = None
            if parsed.subject.lower().startswith(FORWARD_PREFIXES):
                forward = inline_forward(parsed.body)
            if forward is not None:
                item = _inline(envelope_from, forward, user_id)
            else:
                item = incoming(parsed, source=CaptureSource.DROPBOX, origin=origin, owner_id=user_id)
    except Unreadable as exc:
        raise Refused(f"554 5.6.0 The message cannot be read: {exc}") from None
    item.size = len(raw)
    return Ingest(actor).run([item])


class Handler:
    """aiosmtpd's handler: checks each step of the SMTP conversation, logs in a worker thread."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if not accepts_recipient(address):
            return "550 5.1.1 Not a truepipe logging address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        try:
            report = await asyncio.to_thread(
                _receive_in_thread, envelope.original_content, envelope.mail_from
            )
        except Refused as exc:
            return str(exc)
        except Exception:
            log.exception("drop-box: a message could not be logged")
            return "451 4.3.0 Temporary failure, please try again later"
        counts = report.counts
        if counts["rejected"]:
            reason = report.problems[0][1] if report.problems else "rejected"
            return f"554 5.6.0 Not logged: {reason}"[:200]
        if counts["ignored"]:
            return f"250 Accepted, not logged: {next(iter(report.reasons), 'ignored')}"
        if counts["duplicate"]:
            return "250 Already logged"
        if counts["triage"]:
            return "250 Logged; choose its deal in truepipe's triage list"
        return "250 Logged"


def _receive_in_thread(raw: bytes, envelope_from: str) -> Report:
    """One message in a worker thread, with its own database connection, closed after it."""
    close_old_connections()
    try:
        return receive(raw, envelope_from)
    finally:
        connections.close_all()


def controller(host: str, port: int):  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    return Controller(
        Handler(),
        hostname=host,
        port=port,
        data_size_limit=settings.TRUEPIPE_DROPBOX_MAX_SIZE,
        server_hostname="truepipe",
        ready_timeout=10,
    )
