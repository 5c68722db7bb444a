"""What a capture source hands to the ingest: one message or meeting occurrence, as read.

Plain data without Django, so a source may build these in another process (a large mbox is
parsed by a helper process while the main one writes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Incoming:
    """One message or meeting occurrence, as a source read it."""

    dedup_key: str
    kind: str  # "email" or "meeting" (ActivityKind)
    source: str  # CaptureSource
    occurred_at: dt.datetime | None = None
    subject: str = ""
    body: str = ""
    sender: str = ""  # the sender's address, lower-case ("" for a meeting without organiser)
    participants: list[tuple[str, str]] = field(default_factory=list)  # (name, address), sender included
    thread_key: str = ""
    references: list[str] = field(default_factory=list)
    owner_id: int | None = None  # the mailbox's, feed's or forwarding rep's user; else found from addresses
    origin: str = ""
    size: int = 0
    attachments: list[dict[str, Any]] = field(default_factory=list)
    sequence: int = 0
    cancelled: bool = False
    rejected: str = ""  # why it could not be read; the item is recorded as rejected
