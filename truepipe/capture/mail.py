"""Reading one e-mail message: headers decoded, a plain-text body, attachments described.

Real mail is messy. Headers may be RFC 2047 encoded in any charset (or raw 8-bit),
bodies nested in multiparts, charsets misspelt or unknown, dates missing or malformed,
bodies HTML only. `read_message` returns a `ParsedMessage` or raises `Unreadable` with
the reason; it never returns half a message. The parse is the standard library's
(`email` with the compat32 policy, the fastest); only the few headers capture needs are
decoded, with `email.header`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime

# What an activity keeps of a body; the rest of a long thread adds nothing to the timeline.
BODY_LIMIT = 20_000
# Charsets that mail clients write and Python does not know by that name.
CHARSET_ALIASES = {
    "unknown-8bit": "latin-1",
    "x-unknown": "latin-1",
    "windows-874": "cp874",
    "ks_c_5601-1987": "euc-kr",
}
FORWARD_MARKERS = re.compile(
    r"^-{2,}\s*(?:Forwarded message|Original Message|Weitergeleitete Nachricht|Message transféré)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BLOCK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")


class Unreadable(Exception):
    """A message that cannot be captured; the text is the reason recorded in the ledger."""


@dataclass
class ParsedMessage:
    message_id: str  # without angle brackets; a digest of the content when the header is missing
    subject: str
    sender: tuple[str, str]  # (display name, address)
    recipients: list[tuple[str, str, str]]  # (role "to"/"cc"/"bcc", display name, address)
    occurred_at: dt.datetime
    body: str
    references: list[str] = field(default_factory=list)  # In-Reply-To and References, oldest first
    attachments: list[dict] = field(default_factory=list)
    size: int = 0
    has_message_id: bool = True

    @property
    def thread_key(self) -> str:
        return self.references[0] if self.references else self.message_id

    def addresses(self) -> list[tuple[str, str]]:
        """Every participant as (display name, address), the sender first, each once."""
        seen: dict[str, str] = {}
        for name, address in [self.sender, *((n, a) for _, n, a in self.recipients)]:
            if address and address not in seen:
                seen[address] = name
        return [(name, address) for address, name in seen.items()]


def decode(value: object) -> str:
    """A header as text: RFC 2047 words decoded, unknown charsets and raw 8-bit tolerated."""
    if value is None:
        return ""
    if not isinstance(value, str):  # email.header.Header for raw 8-bit headers under compat32
        value = str(value)
    if "=?" not in value:
        return " ".join(value.split())
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        parts = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, bytes):
                parts.append(chunk.decode(_codec(charset), "replace"))
            else:
                parts.append(chunk)
        text = "".join(parts)
    return " ".join(text.split())


def _codec(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        "".encode(name)
    except LookupError:
        return "latin-1"  # decodes any byte; the best guess left for an unknown charset
    return name


def _ids(value: str) -> list[str]:
    return [m.strip() for m in re.findall(r"<([^<>\s]+)>", value or "")]


# The usual shapes, "Name <a@b>" and "a@b", read without the general parser (a third of the
# time of reading a message went to it); anything else (quotes, comments, groups) takes the
# standard library's getaddresses.
_SIMPLE_ADDRESS = re.compile(
    r"^\s*(?:([^<>,\"();:@]*?)\s*<([^<>\s,]+@[^<>\s,]+)>|([^<>\s,\"();:]+@[^<>\s,\"();:]+))\s*$"
)


def _split_addresses(values: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for value in values:
        if any(c in value for c in '"();:\\'):
            out.extend(getaddresses([value]))
            continue
        for part in value.split(","):
            if not part.strip():
                continue
            found = _SIMPLE_ADDRESS.match(part)
            if found is None:
                out.extend(getaddresses([part]))
            elif found.group(2):
                out.append((found.group(1), found.group(2)))
            else:
                out.append(("", found.group(3)))
    return out


def _addresses(values: list | None) -> list[tuple[str, str]]:
    if not values:
        return []
    out = []
    for name, address in _split_addresses([decode(v) for v in values]):
        address = address.strip().strip("<>").lower()
        if "@" in address and " " not in address and address.count("@") == 1:
            out.append((name.strip().strip('"'), address))
    return out


_MONTHS = {m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_RFC_DATE = re.compile(
    r"^\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})"
    r"(?:\s*\([^)]*\))?\s*$"
)


def _fast_date(value: str) -> dt.datetime | None:
    """The RFC 5322 form nearly every client writes, read without the general parser."""
    found = _RFC_DATE.match(value)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = found.groups()
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    offset = dt.timedelta(hours=int(zh), minutes=int(zm))
    try:
        return dt.datetime(
            int(year),
            number,
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=dt.timezone(-offset if sign == "-" else offset) if offset else dt.UTC,
        )
    except ValueError:
        return None


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    when = _fast_date(str(value))
    if when is not None:
        return when if 1990 <= when.year <= 2100 else None
    try:
        when = parsedate_to_datetime(str(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": the zone is unknown; take it as UTC
        when = when.replace(tzinfo=dt.UTC)
    if not (1990 <= when.year <= 2100):
        return None
    return when


def _received_date(stamps: list | None) -> dt.datetime | None:
    """A missing or broken Date header: the time the first server stamped it on delivery."""
    for received in stamps or []:
        _, _, stamp = str(received).rpartition(";")
        when = parse_date(stamp)
        if when is not None:
            return when
    return None


def html_to_text(markup: str) -> str:
    text = _BLOCK.sub("\n", markup)
    text = html.unescape(_TAG.sub(" ", text))
    text = _SPACES.sub(" ", text)
    return _LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "replace")
    return payload.decode(_codec(part.get_content_charset()), "replace")


def _walk(msg: Message, texts: list[str], htmls: list[str], attachments: list[dict]) -> None:
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        raw_disposition = part.get("Content-Disposition")
        disposition = (raw_disposition or "").split(";")[0].strip().lower()
        has_name = raw_disposition is not None or "name" in str(part.get("Content-Type", ""))
        filename = part.get_filename() if has_name else None
        if disposition == "attachment" or filename or not ctype.startswith("text/"):
            raw = part.get_payload()
            size = len(raw) if isinstance(raw, str | bytes) else 0
            if (
                isinstance(raw, str | bytes)
                and size
                and part.get("Content-Transfer-Encoding", "").lower() == "base64"
            ):
                # The decoded size, without decoding: line breaks and padding do not count.
                text = raw if isinstance(raw, str) else raw.decode("ascii", "replace")
                size = (size - text.count("\n") - text.count("\r")) * 3 // 4 - text.rstrip()[-2:].count("=")
            attachments.append({"name": decode(filename) if filename else "", "type": ctype, "size": size})
        elif ctype == "text/html":
            htmls.append(_part_text(part))
        else:
            texts.append(_part_text(part))


# A date to fall back on, or a function giving it (computed only for a message that needs it).
Fallback = dt.datetime | Callable[[], dt.datetime | None] | None


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEADERS = BytesHeaderParser()


def _parse(raw: bytes) -> Message:
    """The message, parsed by the standard library. Most mail is one part: its headers are parsed
    alone and the rest, as the full parse would keep it, is its body (the full parse reads a body
    line by line, a fifth of its time); a multipart message, a forward (message/*) or a header
    block the parser finds anything wrong with gets the full parse."""
    end = _HEAD_END.search(raw)
    if end is not None:
        msg = _HEADERS.parsebytes(raw[: end.end()])
        if (
            not msg.defects
            and not msg.get_payload()
            and msg.get_content_maintype() not in ("multipart", "message")
        ):
            msg.set_payload(raw[end.end() :].decode("ascii", "surrogateescape"))
            return msg
    return message_from_bytes(raw)


def read_message(raw: bytes, *, fallback_date: Fallback = None) -> ParsedMessage:
    """Parse one message. Raises `Unreadable` with the reason when it cannot be captured."""
    if not raw or not raw.strip():
        raise Unreadable("empty message")
    try:
        msg = _parse(raw)
    except Exception as exc:  # the parser is lenient; anything it raises is a broken message
        raise Unreadable(f"not a readable message ({type(exc).__name__})") from None
    return read_parsed(msg, raw, fallback_date=fallback_date)


def _header_map(msg: Message) -> dict[str, list]:
    """Every header's values by lower-case name, read in one pass (each `msg.get` is a pass)."""
    headers: dict[str, list] = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def read_parsed(msg: Message, raw: bytes, *, fallback_date: Fallback = None) -> ParsedMessage:
    headers = _header_map(msg)

    def first(name: str) -> str:
        values = headers.get(name)
        return str(values[0]) if values else ""

    senders = _addresses(headers.get("from")) or _addresses(headers.get("sender"))
    if not senders:
        raise Unreadable("no sender address (From header missing or malformed)")
    when = parse_date(first("date")) or _received_date(headers.get("received"))
    if when is None:
        when = fallback_date() if callable(fallback_date) else fallback_date
    if when is None:
        raise Unreadable("no usable date (Date header missing or malformed, no Received stamp)")
    subject = decode(first("subject") or None)[:255]
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[dict] = []
    try:
        _walk(msg, texts, htmls, attachments)
    except Exception as exc:  # a malformed MIME structure the parser let through
        raise Unreadable(f"malformed MIME structure ({type(exc).__name__})") from None
    body = "\n\n".join(t.strip() for t in texts if t.strip())
    if not body and htmls:
        body = "\n\n".join(html_to_text(h) for h in htmls)
    body = body.replace("\x00", "")[:BODY_LIMIT]
    recipients = [
        (role, name, address)
        for role in ("to", "cc", "bcc")
        for name, address in _addresses(headers.get(role))
    ]
    ids = _ids(first("message-id"))
    references = _ids(first("references"))
    for parent in _ids(first("in-reply-to")):
        if parent not in references:
            references.append(parent)
    if ids:
        message_id, has_id = ids[0][:240], True
    else:
        digest = hashlib.sha256()
        for part in (senders[0][1], first("date"), subject, body[:4000]):
            digest.update(part.encode("utf-8", "replace") + b"\0")
        message_id, has_id = f"sha256:{digest.hexdigest()}", False
    return ParsedMessage(
        message_id=message_id,
        subject=subject,
        sender=senders[0],
        recipients=recipients,
        occurred_at=when,
        body=body,
        references=[r[:240] for r in references],
        attachments=attachments,
        size=len(raw),
        has_message_id=has_id,
    )


def forwarded_original(msg: Message) -> Message | None:
    """The message a rep forwarded: an attached message/rfc822, else None (inline forwards: see below)."""
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
    return None


_INLINE_HEADER = re.compile(r"^\s*\*?(From|Date|Sent|Subject|To|Cc)\s*:\*?\s*(.*)$", re.IGNORECASE)


def inline_forward(body: str) -> dict[str, str] | None:
    """The headers of an inline forward ("---------- Forwarded message ---------" then From/Date/...)."""
    match = FORWARD_MARKERS.search(body)
    if not match:
        return None
    headers: dict[str, str] = {}
    rest = body[match.end() :].lstrip("\n").split("\n")
    index = 0
    for index, line in enumerate(rest):  # noqa: B007
        found = _INLINE_HEADER.match(line)
        if not found:
            if line.strip() or headers:
                break
            continue
        name = found.group(1).lower()
        headers["date" if name == "sent" else name] = found.group(2).strip()
    if "from" not in headers:
        return None
    headers["body"] = "\n".join(rest[index:]).strip()
    return headers
