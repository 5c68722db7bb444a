"""E-mail as capture reads it: one message's bytes, .eml files and .mbox archives, to `Incoming` items.

No Django here: a large mbox is parsed in a helper process (`read_mbox`) while the main process
writes what the previous chunk gave.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import fields
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any

from truepipe.capture.items import Incoming
from truepipe.capture.mail import Fallback, ParsedMessage, Unreadable, read_message

EMAIL = "email"  # ActivityKind.EMAIL
# An mbox at least this large is parsed by a helper process while this one writes.
PARALLEL_BYTES = 8 * 1024 * 1024
CHUNK = 1000
# Chunks the helper may parse ahead of the caller: a whole batch of `Ingest` (ingest.BATCH) and
# two more, so it parses the next batch while the caller writes this one.
AHEAD = 12
PROTOCOL = pickle.HIGHEST_PROTOCOL
# Items cross from the helper as tuples of their fields' values: half the time to unpickle of the
# dataclasses themselves, which the receiving process has to spare least.
_FIELDS = tuple(f.name for f in fields(Incoming))


def _values(item: Incoming) -> tuple:
    return tuple(getattr(item, name) for name in _FIELDS)


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
    fallback_date: Fallback = None,
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
    parts = line.rstrip(b"\r\n").decode("latin-1").split(None, 2)
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
            fallback_date=partial(_from_line_date, separator),
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


def _parse_file(path: str, source: str, owner_id: int | None, sender: Any) -> None:
    """The helper process: read and parse the whole mbox, each chunk of items sent on `sender` (a
    pipe's writing end), then None; on an error, ("failed", its text), and the caller goes on alone
    from there. Chunks are parsed up to AHEAD ahead of the one being sent, by this thread while
    another sends."""
    # The process only parses: its objects hold no cycles, and the cyclic collector's passes
    # over them were pure cost.
    gc.disable()
    ready: queue.Queue = queue.Queue(maxsize=AHEAD)

    def send() -> None:
        while True:
            chunk, last = ready.get()
            try:
                sender.send_bytes(chunk)
            except OSError:  # the caller is gone
                return
            if last:
                return

    sending = threading.Thread(target=send, daemon=True)
    sending.start()
    # Pickled here, as each chunk is parsed: pickled by the sending thread, a chunk waited for the
    # parsing thread to let go of the interpreter while the caller waited for it.
    try:
        for first, chunk in _chunks(Path(path)):
            items = parse_chunk(Path(path).name, source, owner_id, first, chunk)
            ready.put((pickle.dumps([_values(item) for item in items], PROTOCOL), False))
    except Exception as exc:  # noqa: BLE001 - reported to the caller, which parses the rest itself
        ready.put((pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"), PROTOCOL), True))
    else:
        ready.put((pickle.dumps(None, PROTOCOL), True))
    sending.join()


def read_mbox(
    path: Path, *, source: str, owner_id: int | None = None, parallel: bool | None = None
) -> Iterator[Incoming]:
    """Every message of an mbox, in order. A large file (or `parallel=True`) is read and parsed by
    a helper process a few chunks ahead, so parsing and the caller's writing use both cores; this
    process only receives the parsed items. If the helper cannot start or stops early, this
    process parses the rest itself, from the first message it did not receive."""
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and path.stat().st_size >= PARALLEL_BYTES
    received = 0
    if parallel:
        sent = yield from _from_helper(path, str(source), owner_id)
        if sent is None:
            return
        received = sent
    for first, chunk in _chunks(path):
        if first > received:  # chunks are whole: the helper sends each one entire
            yield from parse_chunk(path.name, source, owner_id, first, chunk)


PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process (fs.pipe-max-size)


def _widen(receiver: Any) -> None:
    """A 1 MiB pipe instead of 64 KiB: a chunk of parsed items (a few MB) crosses in a few dozen
    reads instead of a few hundred, each of which woke the other process."""
    try:
        import fcntl

        fcntl.fcntl(receiver.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or a lower limit: the default will do
        pass


def _from_helper(path: Path, source: str, owner_id: int | None) -> Generator[Incoming, None, int | None]:
    """The helper's items as they come; returns None when it sent them all, else how many it sent."""
    # "spawn": the helper starts clean (no copy of this process's database connections); a plain
    # string for the source crosses to it (an enum member would import Django there).
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    _widen(receiver)
    helper = context.Process(target=_parse_file, args=(str(path), source, owner_id, sender), daemon=True)
    received = 0
    try:
        helper.start()
    except OSError:  # a host that forbids it: everything in this process
        receiver.close()
        sender.close()
        return 0
    # Only the helper holds the writing end now: if it dies, even half-way through sending a
    # chunk, reading ends (EOF) instead of waiting for the rest forever.
    sender.close()
    try:
        while True:
            try:
                sent = pickle.loads(receiver.recv_bytes())
            except (EOFError, OSError):
                return received  # it died
            if sent is None:
                return None
            if isinstance(sent, tuple):  # ("failed", reason): parse on here, where it will show
                return received
            received += len(sent)
            yield from (Incoming(*values) for values in sent)
    finally:
        if helper.is_alive():  # the caller stopped early (or an error): do not leave it running
            helper.terminate()
        helper.join(timeout=5)
        receiver.close()


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
