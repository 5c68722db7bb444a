"""E-mail as capture reads it: one message's bytes, .eml files and .mbox archives, to `Incoming` items.

No Django here: a large mbox is parsed in a helper process (`read_mbox`) while the main process
writes what the previous chunk gave.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from email.utils import parsedate_to_datetime
from pathlib import Path

from truepipe.capture.items import Incoming
from truepipe.capture.mail import ParsedMessage, Unreadable, read_message

EMAIL = "email"  # ActivityKind.EMAIL
# An mbox at least this large is parsed by a helper process while this one writes.
PARALLEL_BYTES = 8 * 1024 * 1024
CHUNK = 1000


def incoming(parsed: ParsedMessage, *, source: str, origin: str, owner_id: int | None = None) -> Incoming:
    return Incoming(
        dedup_key=f"msg:{parsed.message_id}",
        kind=EMAIL,
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
            kind=EMAIL,
            source=source,
            origin=origin,
            owner_id=owner_id,
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


def mbox_messages(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """(separator line, message bytes) of each message of an mbox file, in one streaming pass.

    The format is the one `mailbox.mbox` reads (a line starting "From " begins a message), read
    line by line instead of through its table of contents: a single pass over a file of any size,
    in constant memory.
    """
    separator: bytes | None = None
    lines: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"From "):
                if separator is not None:
                    yield separator, _message(lines)
                separator, lines = line, []
            elif separator is not None:
                lines.append(line)
    if separator is not None:
        yield separator, _message(lines)


def _message(lines: list[bytes]) -> bytes:
    # The blank line the format puts before the next separator is not part of the message.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return b"".join(lines)


def parse_chunk(
    name: str, source: str, owner_id: int | None, first: int, chunk: list[tuple[bytes, bytes]]
) -> list[Incoming]:
    """Messages of an mbox (separator line, bytes), numbered from `first`, as `Incoming` items."""
    return [
        from_bytes(
            message,
            source=source,
            origin=f"{name} message {number}",
            owner_id=owner_id,
            fallback_date=_from_line_date(separator.rstrip(b"\r\n")),
        )
        for number, (separator, message) in enumerate(chunk, start=first)
    ]


def _chunks(path: Path) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
    chunk: list[tuple[bytes, bytes]] = []
    first = 1
    for separator, message in mbox_messages(path):
        chunk.append((separator, message))
        if len(chunk) == CHUNK:
            yield first, chunk
            first, chunk = first + CHUNK, []
    if chunk:
        yield first, chunk


def read_mbox(
    path: Path, *, source: str, owner_id: int | None = None, parallel: bool | None = None
) -> Iterator[Incoming]:
    """Every message of an mbox, in order. A large file (or `parallel=True`) is parsed a chunk
    ahead by a helper process, so parsing and the caller's writing use both cores."""
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and path.stat().st_size >= PARALLEL_BYTES
    if not parallel:
        for first, chunk in _chunks(path):
            yield from parse_chunk(path.name, source, owner_id, first, chunk)
        return
    source = str(source)  # a plain string crosses to the helper (an enum member would import Django)
    chunks = _chunks(path)
    ahead: deque = deque()  # (first, chunk, future), oldest first
    try:
        # "spawn": the helper starts clean (no copy of this process's database connections).
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for first, chunk in chunks:
                ahead.append(
                    (first, chunk, pool.submit(parse_chunk, path.name, source, owner_id, first, chunk))
                )
                if len(ahead) >= 3:
                    yield from ahead[0][2].result()
                    ahead.popleft()
            while ahead:
                yield from ahead[0][2].result()
                ahead.popleft()
    except BrokenProcessPool:
        # The helper could not start or died (a host that forbids it): go on in this process.
        for first, chunk, _ in ahead:
            yield from parse_chunk(path.name, source, owner_id, first, chunk)
        for first, chunk in chunks:
            yield from parse_chunk(path.name, source, owner_id, first, chunk)


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
