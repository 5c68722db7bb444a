"""E-mail as capture reads it: one message's bytes, .eml files and .mbox archives, to `Incoming` items."""

from __future__ import annotations

import datetime as dt
import mailbox
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

from truepipe.activities.models import ActivityKind
from truepipe.capture.ingest import Incoming
from truepipe.capture.mail import ParsedMessage, Unreadable, read_message


def incoming(parsed: ParsedMessage, *, source: str, origin: str, owner_id: int | None = None) -> Incoming:
    return Incoming(
        dedup_key=f"msg:{parsed.message_id}",
        kind=ActivityKind.EMAIL,
        source=source,
        occurred_at=parsed.occurred_at,
        subject=parsed.subject or "(no subject)",
        body=parsed.body,
        sender=parsed.sender[1],
        participants=parsed.addresses(),
        thread_key=parsed.thread_key,
        references=parsed.references,
        owner_id=owner_id,
        origin=origin,
        size=parsed.size,
        attachments=parsed.attachments,
    )


def from_bytes(
    raw: bytes,
    *,
    source: str,
    origin: str,
    owner_id: int | None = None,
    fallback_date: dt.datetime | None = None,
) -> Incoming:
    """One message's bytes as an `Incoming` item; an unreadable one becomes a rejected item."""
    try:
        parsed = read_message(raw, fallback_date=fallback_date)
    except Unreadable as exc:
        import hashlib

        return Incoming(
            dedup_key=f"bad:{hashlib.sha256(raw).hexdigest()}",
            kind=ActivityKind.EMAIL,
            source=source,
            origin=origin,
            size=len(raw),
            rejected=str(exc),
        )
    return incoming(parsed, source=source, origin=origin, owner_id=owner_id)


def _from_line_date(line: bytes) -> dt.datetime | None:
    """The date of an mbox "From sender Thu Nov 26 10:00:00 2026" line (a fallback for a missing Date)."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 3:
        return None
    try:
        when = parsedate_to_datetime(parts[2].strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def read_mbox(path: Path, *, source: str, owner_id: int | None = None) -> Iterator[Incoming]:
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), start=1):
            raw = box.get_bytes(key, from_=True)
            first, _, message = raw.partition(b"\n")
            yield from_bytes(
                message,
                source=source,
                origin=f"{path.name} message {number}",
                owner_id=owner_id,
                fallback_date=_from_line_date(first),
            )
    finally:
        box.close()


def read_paths(paths: list[Path], *, source: str, owner_id: int | None = None) -> Iterator[Incoming]:
    """Every message of every file: .mbox archives (or files starting "From "), .eml files."""
    for path in paths:
        with path.open("rb") as handle:
            head = handle.read(5)
        if path.suffix.lower() == ".mbox" or head == b"From ":
            yield from read_mbox(path, source=source, owner_id=owner_id)
        else:
            yield from_bytes(path.read_bytes(), source=source, origin=path.name, owner_id=owner_id)


def count_messages(paths: list[Path]) -> int | None:
    """How many messages the files hold (for a progress bar): mbox "From " lines, one per .eml."""
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            if handle.read(5) != b"From " and path.suffix.lower() != ".mbox":
                total += 1
                continue
            handle.seek(0)
            total += sum(1 for line in handle if line.startswith(b"From "))
    return total
