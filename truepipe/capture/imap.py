"""Polling IMAP mailboxes: a rep's own (the mail is theirs) or a shared one (the rep is found
from the addresses).

A poll opens the folder read-only (EXAMINE) and reads with `BODY.PEEK[]`, so it never changes a
flag: mail the rep has not read stays unread. It reads the UIDs above `Mailbox.last_uid`, a
batch at a time, and stores each batch's outcome (activities, ledger rows) and the batch's
highest UID in one transaction: a poll that dies anywhere resumes after the last batch it
finished, and nothing is stored half. When the folder's UIDVALIDITY changed (the server
renumbered it) the poll reads it again from the start; the ledger's Message-IDs make what was
already captured a duplicate, never a second activity.

A mailbox that cannot be read (no connection, login refused, time-out, a password the keys no
longer decrypt) gets the reason in `last_error`; `poll_all` goes on with the others.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from truepipe.capture import secrets
from truepipe.capture.ingest import Incoming, Ingest, Report
from truepipe.capture.models import CaptureSource, Mailbox, Security
from truepipe.capture.sources import from_bytes

log = logging.getLogger(__name__)

BATCH = 200
TIMEOUT = 60  # seconds for connecting and for each answer of the server


class MailboxError(Exception):
    """The server could not be reached, refused the login, or failed a command: said plainly."""


@dataclass
class PollReport(Report):
    mailbox: str = ""
    error: str = ""  # why the poll stopped ("" when it read everything)
    last_uid: int = 0
    restarted: bool = False  # UIDVALIDITY changed: the folder was read again from the start

    def summary(self) -> str:
        text = f"{self.mailbox}: {super().summary()}"
        if self.restarted:
            text += " The folder was renumbered (new UIDVALIDITY): read again from the start."
        if self.error:
            text += f" Stopped: {self.error}"
        return text


# -- talking to the server ---------------------------------------------------------------------------


def _text(data: object) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data if d is not None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def quote(name: str) -> str:
    """A folder name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(
    host: str, port: int, security: str, username: str, password: str, *, timeout: float = TIMEOUT
) -> imaplib.IMAP4:
    """A logged-in connection; `MailboxError` saying what failed otherwise."""
    where = f"{host}:{port}"
    try:
        if security == Security.SSL:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host, port, ssl_context=ssl.create_default_context(), timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(host, port, timeout=timeout)
            if security == Security.STARTTLS:
                try:
                    conn.starttls(ssl_context=ssl.create_default_context())
                except BaseException:
                    _close(conn)
                    raise
    except TimeoutError:
        raise MailboxError(f"{where}: no answer within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise MailboxError(f"{where}: TLS failed ({exc.reason or exc})") from None
    except OSError as exc:
        raise MailboxError(f"cannot connect to {where}: {exc.strerror or exc}") from None
    except imaplib.IMAP4.error as exc:
        raise MailboxError(f"{where}: {_text(exc.args)}") from None
    try:
        if (username + password).isascii():
            conn.login(username, password)
        else:  # LOGIN is ASCII only; AUTHENTICATE PLAIN carries UTF-8
            conn.authenticate("PLAIN", lambda _: f"\0{username}\0{password}".encode())
    except imaplib.IMAP4.abort as exc:
        _close(conn)
        raise MailboxError(f"{where}: connection lost while logging in ({_text(exc.args)})") from None
    except imaplib.IMAP4.error as exc:
        _close(conn)
        raise MailboxError(f"{where}: login as {username} refused ({_text(exc.args)})") from None
    except TimeoutError:
        _close(conn)
        raise MailboxError(f"{where}: no answer within {timeout:g} s while logging in") from None
    except OSError as exc:
        _close(conn)
        raise MailboxError(f"{where}: connection lost while logging in ({exc})") from None
    return conn


def _close(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except Exception:  # noqa: BLE001 - the connection is going away anyway
        with contextlib.suppress(Exception):
            conn.shutdown()


def examine(conn: imaplib.IMAP4, folder: str) -> tuple[int, int]:
    """Select the folder read-only (EXAMINE): its UIDVALIDITY and how many messages it holds."""
    typ, data = conn.select(quote(folder), readonly=True)
    if typ != "OK":
        raise MailboxError(f"folder {folder!r} cannot be opened ({_text(data)})")
    _, values = conn.response("UIDVALIDITY")
    try:
        return int(values[-1]), int(data[-1] or 0)
    except (TypeError, ValueError, IndexError):
        raise MailboxError(f"folder {folder!r}: the server gave no UIDVALIDITY") from None


def uids_after(conn: imaplib.IMAP4, last_uid: int) -> list[int]:
    """The UIDs above `last_uid`, ascending. `N:*` always matches the highest UID, even below N."""
    typ, data = conn.uid("SEARCH", "UID", f"{last_uid + 1}:*")
    if typ != "OK":
        raise MailboxError(f"UID SEARCH failed ({_text(data)})")
    found = {int(n) for part in data if part for n in part.split()}
    return sorted(uid for uid in found if uid > last_uid)


def uid_set(uids: list[int]) -> str:
    """1,2,3,5 -> "1:3,5" (ascending UIDs)."""
    parts: list[str] = []
    start = previous = uids[0]
    for uid in [*uids[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(parts)


_UID = re.compile(rb"\bUID (\d+)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')


def _internal_date(meta: bytes) -> dt.datetime | None:
    found = _DATE.search(meta)
    if found is None:
        return None
    try:
        return dt.datetime.strptime(found.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def fetch(conn: imaplib.IMAP4, uids: list[int]) -> list[tuple[int, bytes, dt.datetime | None]]:
    """(uid, the message's bytes, its arrival date) for each UID still there, in UID order.

    `BODY.PEEK[]` reads the whole message without setting \\Seen.
    """
    typ, data = conn.uid("FETCH", uid_set(uids), "(UID INTERNALDATE BODY.PEEK[])")
    if typ != "OK":
        raise MailboxError(f"UID FETCH failed ({_text(data)})")
    wanted = set(uids)
    out: dict[int, tuple[int, bytes, dt.datetime | None]] = {}
    for index, part in enumerate(data):
        if not isinstance(part, tuple) or len(part) < 2:
            continue
        meta, raw = part[0], part[1]
        found = _UID.search(meta)
        if found is None and index + 1 < len(data) and isinstance(data[index + 1], bytes):
            # Some servers send the UID after the literal: "... BODY[] {n}" <bytes> " UID 7)".
            found = _UID.search(data[index + 1])  # type: ignore[arg-type]
        if found is None:
            continue
        uid = int(found.group(1))
        if uid in wanted:
            out[uid] = (uid, raw, _internal_date(meta))
    return [out[uid] for uid in sorted(out)]


# -- polling -----------------------------------------------------------------------------------------


def _finish(mailbox: Mailbox, error: str) -> None:
    mailbox.last_polled_at = timezone.now()
    mailbox.last_error = error
    Mailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=mailbox.last_polled_at, last_error=error)


def _failed(mailbox: Mailbox, report: PollReport, error: str) -> PollReport:
    report.error = error
    report.last_uid = mailbox.last_uid
    _finish(mailbox, error)
    return report


def open_mailbox(mailbox: Mailbox, *, timeout: float = TIMEOUT) -> imaplib.IMAP4:
    """A logged-in connection to the mailbox (`SecretError` or `MailboxError` otherwise)."""
    password = secrets.decrypt(mailbox.password_encrypted)
    return connect(mailbox.host, mailbox.port, mailbox.security, mailbox.username, password, timeout=timeout)


def check(
    host: str, port: int, security: str, username: str, password: str, folder: str, *, timeout: float = 20
) -> int:
    """Log in and open the folder read-only: how many messages it holds (`MailboxError` otherwise)."""
    conn = connect(host, port, security, username, password, timeout=timeout)
    try:
        return examine(conn, folder)[1]
    except (imaplib.IMAP4.error, OSError) as exc:
        raise MailboxError(f"{host}:{port}: {_text(exc.args) or type(exc).__name__}") from None
    finally:
        _close(conn)


def poll(
    mailbox: Mailbox,
    *,
    batch: int = BATCH,
    actor=None,
    progress: Callable[[int], None] | None = None,
    timeout: float = TIMEOUT,
) -> PollReport:
    """Read the mailbox's new mail into capture. Errors of the mailbox end up in the report and
    `last_error`; anything unexpected is recorded there too, then raised."""
    report = PollReport(mailbox=mailbox.name, last_uid=mailbox.last_uid)
    try:
        conn = open_mailbox(mailbox, timeout=timeout)
    except (secrets.SecretError, MailboxError, ImproperlyConfigured) as exc:
        return _failed(mailbox, report, str(exc))
    where = f"{mailbox.host}:{mailbox.port}"
    try:
        validity, _ = examine(conn, mailbox.folder)
        if validity != mailbox.uidvalidity:
            # A new numbering (or the first poll): every UID from 0 again. What was captured
            # before is found again in the ledger, as duplicates.
            report.restarted = mailbox.uidvalidity is not None
            mailbox.uidvalidity, mailbox.last_uid = validity, 0
            Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=validity, last_uid=0)
        ingest = Ingest(actor, batch=batch)
        ingest.report = report
        pending = uids_after(conn, mailbox.last_uid)
        for start in range(0, len(pending), batch):
            group = pending[start : start + batch]
            uid_of: dict[int, int] = {}
            items: list[Incoming] = []
            for uid, raw, arrived in fetch(conn, group):
                item = from_bytes(
                    raw,
                    source=CaptureSource.IMAP,
                    origin=f"{mailbox.name} UID {uid}",
                    owner_id=mailbox.owner_id,
                    fallback_date=arrived,
                )
                uid_of[id(item)] = uid
                items.append(item)

            def done(chunk: list[Incoming], uid_of: dict[int, int] = uid_of) -> None:
                # In the batch's own transaction: the read position moves with what was stored.
                highest = max(uid_of[id(item)] for item in chunk)
                Mailbox.objects.filter(pk=mailbox.pk, uidvalidity=validity, last_uid__lt=highest).update(
                    last_uid=highest
                )
                mailbox.last_uid = report.last_uid = highest

            ingest.run(items, progress=progress, after_batch=done)
    except MailboxError as exc:
        return _failed(mailbox, report, f"{where}: {exc}" if where not in str(exc) else str(exc))
    except TimeoutError:
        return _failed(mailbox, report, f"{where}: no answer within {timeout:g} s{_resume(mailbox)}")
    except (OSError, imaplib.IMAP4.error) as exc:
        reason = _text(exc.args) or type(exc).__name__
        return _failed(mailbox, report, f"{where}: connection lost ({reason}){_resume(mailbox)}")
    except Exception as exc:
        _failed(mailbox, report, f"{type(exc).__name__}: {exc}{_resume(mailbox)}")
        raise
    finally:
        _close(conn)
    report.last_uid = mailbox.last_uid
    _finish(mailbox, "")
    return report


def _resume(mailbox: Mailbox) -> str:
    return f"; the next poll goes on after UID {mailbox.last_uid}" if mailbox.last_uid else ""


def poll_all(
    mailboxes: Iterable[Mailbox] | None = None,
    *,
    batch: int = BATCH,
    progress: Callable[[Mailbox], Callable[[int], None] | None] | None = None,
) -> list[PollReport]:
    """Poll every enabled mailbox (or those given); one that fails does not stop the others."""
    if mailboxes is None:
        mailboxes = Mailbox.objects.filter(enabled=True).order_by("name", "pk")
    reports = []
    for mailbox in mailboxes:
        try:
            report = poll(mailbox, batch=batch, progress=progress(mailbox) if progress else None)
        except Exception as exc:  # noqa: BLE001 - recorded on the mailbox by poll(); go on
            log.exception("polling mailbox %s failed", mailbox.name)
            report = PollReport(mailbox=mailbox.name, last_uid=mailbox.last_uid)
            report.error = f"{type(exc).__name__}: {exc}"
        reports.append(report)
    return reports
