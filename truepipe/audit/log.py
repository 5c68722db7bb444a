"""Writing and checking the audit log (see `audit.models`).

`record` appends one entry inside the caller's transaction: the decision and its
entry commit or roll back together. Appends are serialised by locking the head
row, so two concurrent decisions never chain to the same predecessor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from truepipe.audit.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """The data as the database gives it back (JSON types only), so the hash reads the same later."""
    result = json.loads(json.dumps(data, default=str, sort_keys=True))
    if not isinstance(result, dict):
        raise TypeError("Audit data is a JSON object.")
    return result


def _at_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *, seq: int, at: dt.datetime, actor_id: int | None, action: str, subject: str, data: Any, prev_hash: str
) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces, UTC microseconds)."""
    content = {
        "seq": seq,
        "at": _at_text(at),
        "actor": actor_id,
        "action": action,
        "subject": subject,
        "data": data,
        "prev": prev_hash,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def hash_of(entry: AuditEntry, **changes: Any) -> str:
    """What an entry's hash should be (with some of its content changed, if given)."""
    content: dict[str, Any] = {
        "seq": entry.seq,
        "at": entry.at,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "subject": entry.subject,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
    }
    return entry_hash(**(content | changes))


def subject_of(obj: models.Model | None, kind: str | None = None) -> str:
    if obj is None:
        return kind or ""
    return f"{kind or obj._meta.model_name}:{obj.pk}"


def record(
    actor: Any, action: str, subject: str | models.Model, data: dict[str, Any] | None = None
) -> AuditEntry:
    """Append one entry (inside the caller's transaction)."""
    return record_many(actor, [(action, subject, data or {})])[0]


def record_many(
    actor: Any, entries: list[tuple[str, str | models.Model, dict[str, Any]]]
) -> list[AuditEntry]:
    """Append entries in order with one lock and one insert (what a night's evaluation decided)."""
    if not entries:
        return []
    actor_id = getattr(actor, "pk", actor)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        seq, prev, at = head.seq, head.hash or GENESIS, timezone.now()
        rows = []
        for action, subject, data in entries:
            seq += 1
            content: dict[str, Any] = {
                "seq": seq,
                "at": at,
                "actor_id": actor_id,
                "action": action,
                "subject": subject_of(subject) if isinstance(subject, models.Model) else subject,
                "data": _plain(data),
                "prev_hash": prev,
            }
            prev = entry_hash(**content)
            rows.append(AuditEntry(**content, hash=prev))
        AuditEntry.objects.bulk_create(rows, batch_size=1000)
        head.seq, head.hash = seq, prev
        head.save(update_fields=["seq", "hash"])
    return rows


@dataclass
class Verdict:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str = ""


def verify(
    expect_head: str | None = None, progress: Callable[[int], None] | None = None, chunk: int = 5000
) -> Verdict:
    """Walk the chain in order; the first entry that does not hold is reported."""
    expected_prev = GENESIS
    expected_seq = 1
    seen: set[str] = set()  # the kept head, once the walk passes it (the log may have grown since)
    checked = 0
    last_hash = ""
    for entry in _entries(chunk):
        if entry.seq != expected_seq:
            return _broken(checked, expected_seq, f"entry #{expected_seq} is missing (next is #{entry.seq})")
        if entry.prev_hash != expected_prev:
            return _broken(
                checked,
                entry.seq,
                f"entry #{entry.seq} does not follow #{entry.seq - 1} (its link was changed)",
            )
        if hash_of(entry) != entry.hash:
            return _broken(checked, entry.seq, f"entry #{entry.seq} was altered after it was written")
        expected_prev, last_hash = entry.hash, entry.hash
        if expect_head and entry.hash == expect_head:
            seen.add(entry.hash)
        expected_seq += 1
        checked += 1
        if progress and checked % chunk == 0:
            progress(chunk)
    if progress:
        progress(checked % chunk)
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, "")
    if (head_seq, head_hash) != (checked, last_hash):
        return _broken(
            checked,
            checked + 1,
            f"the log ends at #{checked} but its head says #{head_seq}: the newest entries were removed",
        )
    if expect_head and expect_head not in seen:
        return _broken(checked, None, "the head you kept is not in the chain: the log was rewritten")
    return Verdict(ok=True, checked=checked, head_seq=checked, head_hash=last_hash)


def _broken(checked: int, seq: int | None, problem: str) -> Verdict:
    return Verdict(ok=False, checked=checked, head_seq=checked, head_hash="", broken_seq=seq, problem=problem)


def _entries(chunk: int) -> Iterator[AuditEntry]:
    """Every entry in sequence order, a chunk at a time (keyset pagination: constant memory)."""
    after = 0
    while True:
        batch = list(AuditEntry.objects.filter(seq__gt=after).order_by("seq")[:chunk])
        if not batch:
            return
        yield from batch
        after = batch[-1].seq


def trail(subject: str | models.Model) -> list[AuditEntry]:
    """Every entry about one record, oldest first."""
    if isinstance(subject, models.Model):
        subject = subject_of(subject)
    return list(AuditEntry.objects.filter(subject=subject).select_related("actor").order_by("seq"))
