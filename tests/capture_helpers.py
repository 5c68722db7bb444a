"""Building real RFC 5322 messages and mbox files for the capture tests."""

from __future__ import annotations

import datetime as dt
import mailbox
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path


def message(
    sender: str,
    to: list[str] | str,
    subject: str,
    body: str = "Hello",
    *,
    when: dt.datetime | None = None,
    cc: list[str] | None = None,
    msgid: str | None = None,
    reply_to: EmailMessage | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC))
    msg["Message-ID"] = msgid or make_msgid(domain="mail.test")
    if reply_to is not None:
        parent = reply_to["Message-ID"]
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(filter(None, [reply_to.get("References", ""), parent]))
    msg.set_content(body)
    return msg


def write_mbox(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.mbox(path)
    box.lock()
    try:
        for msg in messages:
            box.add(msg)
        box.flush()
    finally:
        box.unlock()
        box.close()
    return path


def write_eml(path: Path, msg: EmailMessage | bytes) -> Path:
    path.write_bytes(msg if isinstance(msg, bytes) else msg.as_bytes())
    return path


def capture(*messages: EmailMessage, owner=None, actor=None):  # type: ignore[no-untyped-def]
    """Hand messages to capture as a file import would (each message's subject is its origin)."""
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.sources import from_bytes

    return Ingest(actor).run(
        from_bytes(m.as_bytes(), source="file", origin=str(m["Subject"]), owner_id=owner) for m in messages
    )
