"""Calendars as capture reads them: .ics files and feed URLs, to one `Incoming` meeting per occurrence.

What an event becomes:

- one item per occurrence that has *started* by now (recurring events are expanded with
  `recurring-ical-events`: RRULE, RDATE, EXDATE, moved occurrences). Future occurrences are left
  for a later import or poll, once they happened: nothing is recorded for them yet;
- its ledger key is the event's UID and, for an occurrence of a recurring event, its original
  start (RECURRENCE-ID) in UTC: `event:{UID}|` for a single event, `event:{UID}|2026-10-05T13:00:00Z`
  for an occurrence (a date for all-day ones, a local time without Z for floating ones). A moved
  or renamed event keeps its key, so a later SEQUENCE updates the activity already logged (see
  `Ingest._update_meeting`) instead of logging a second one;
- cancelled when the event says STATUS:CANCELLED or the file METHOD:CANCEL, when the master's
  EXDATE removes the occurrence, or when the calendar's owner declined it: a cancelled occurrence
  already logged is removed from the activities, one never logged is recorded as ignored;
- participants: the ORGANIZER and the ATTENDEEs (mailto: addresses, CN as the name), without
  those who declined and without rooms and resources;
- times: TZID honoured (Olson names and Outlook's own VTIMEZONE definitions), floating times in
  the owner's time zone (SalesProfile.time_zone), all-day events at noon in that zone.

An unreadable file or event becomes a rejected item with the reason; the others go on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import logging
import urllib.error
import urllib.request
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from truepipe.activities.models import ActivityKind
from truepipe.capture.ingest import Directory, Incoming, Ingest, Report
from truepipe.capture.models import CalendarFeed, CaptureSource

log = logging.getLogger(__name__)

# Back to where a file import expands recurring events (recurring-ical-events' own lower bound).
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A feed's first poll reads the occurrences of the last year; later polls read from a month before
# the last successful one (cancellations and moves of those are applied too). An import of a file
# reads all of it.
FEED_HISTORY = dt.timedelta(days=365)
FEED_OVERLAP = dt.timedelta(days=30)
FEED_TIMEOUT = 30.0  # seconds, per feed
FEED_MAX_BYTES = 50 * 1024 * 1024
# Floating times are only known to the hour once the owner's zone is applied: expand a little
# wider than asked, then keep what really started in the window.
_SLACK = dt.timedelta(hours=15)
# Calendar addresses that are rooms, resources or shared calendars rather than people.
_RESOURCE_DOMAINS = (
    "resource.calendar.google.com",
    "group.calendar.google.com",
    "import.calendar.google.com",
)
_LONG_UID = 200
# A series is expanded a year at a time and rejected beyond this many started occurrences (a daily
# meeting for 50 years); a rule repeating more often than daily is not a meeting.
MAX_OCCURRENCES = 20_000
_SLICE = dt.timedelta(days=366)
_TOO_OFTEN = ("SECONDLY", "MINUTELY", "HOURLY")


class CalendarReport(Report):
    """A capture report that also says how many meetings a cancellation removed."""

    def summary(self) -> str:
        text = super().summary()
        if self.counts["cancelled"]:
            text = text[:-1] + f", {self.counts['cancelled']} cancelled."
        return text


# -- who is who: time zones and addresses ----------------------------------------------------------


def _zone(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class People:
    """Users' time zones and addresses, read once per run (only when an item needs them)."""

    def __init__(self) -> None:
        self.default: dt.tzinfo = _zone(settings.TIME_ZONE) or dt.UTC
        self._zones: dict[int, dt.tzinfo] | None = None
        self._by_address: dict[str, int] = {}
        self._addresses: dict[int, set[str]] = {}

    def _load(self) -> dict[int, dt.tzinfo]:
        if self._zones is None:
            rows = get_user_model().objects.filter(is_active=True).values_list("pk", "profile__time_zone")
            self._zones = {pk: _zone(zone_name) or self.default for pk, zone_name in rows}
            # Who sends from which address: the same directory the ingest matches people with.
            self._by_address = Directory().users
            for address, pk in self._by_address.items():
                self._addresses.setdefault(pk, set()).add(address)
        return self._zones

    def zone_for(self, owner_id: int | None, addresses: Iterable[str]) -> dt.tzinfo:
        """The owner's zone; without an owner, the first participant's who is a user; else the site's."""
        zones = self._load()
        if owner_id is None:
            owner_id = next((self._by_address[a] for a in addresses if a in self._by_address), None)
        return zones.get(owner_id, self.default) if owner_id is not None else self.default

    def addresses_of(self, user_id: int) -> set[str]:
        self._load()
        return self._addresses.get(user_id, set())


# -- reading one calendar --------------------------------------------------------------------------


class _Bad(Exception):
    """An event that cannot be read; the message is the reason recorded."""


def _address(value: Any) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().lower()
    return text if "@" in text and " " not in text else ""


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(component: Any, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() if value is not None else ""


def _sequence(component: Any) -> int:
    try:
        return int(str(component.get("SEQUENCE", 0)).strip())
    except ValueError:
        return 0


# The properties an occurrence is computed from: one of them unreadable rejects the event.
_VITAL = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID", "SEQUENCE")


def _start_value(component: Any) -> dt.date:
    """DTSTART as a date or datetime (`_Bad` when it, or what the recurrence needs, is unreadable)."""
    if "DTSTART" not in component:
        raise _Bad("event without DTSTART")
    for name, reason in getattr(component, "errors", []):
        if str(name).upper() in _VITAL:
            raise _Bad(f"event with an unreadable {str(name).upper()} ({str(reason)[:150]})")
    try:
        value = component.decoded("DTSTART")
    except Exception as exc:  # the library's errors vary by the kind of damage
        raise _Bad(f"event with an unreadable DTSTART ({exc})") from None
    if not isinstance(value, dt.date):
        raise _Bad("event with an unreadable DTSTART")
    return value


def _moment(value: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """An iCalendar start as an aware datetime: all-day at noon and floating times in `zone`."""
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time(12), tzinfo=zone)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value


def _recurrence_key(value: dt.date) -> str:
    """An occurrence's original start as the ledger spells it, the same whoever imports it."""
    if not isinstance(value, dt.datetime):
        return value.isoformat()
    if value.tzinfo is None:  # floating: the same wall-clock time for everyone
        return value.replace(microsecond=0).isoformat()
    return value.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _earliest(members: list[tuple[int, Any]]) -> dt.datetime:
    """About when a UID's events begin (to the day: expansion starts there, not in 1970)."""
    starts = [
        _moment(event.decoded(name), dt.UTC)
        for _, event in members
        for name in ("DTSTART", "RECURRENCE-ID")
        if name in event
    ]
    return min(starts, default=EPOCH).astimezone(dt.UTC) - dt.timedelta(days=1)


def _uid_key(uid: str) -> str:
    if len(uid) <= _LONG_UID:
        return uid
    return "sha256:" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()


def _fingerprint(component: Any) -> str:
    """A rejected event's key: its text without DTSTAMP (which an export rewrites every time)."""
    try:
        raw = component.to_ical()
    except Exception:  # even writing it back fails: its repr will do
        raw = repr(component).encode()
    lines = [line for line in raw.splitlines() if not line.upper().startswith(b"DTSTAMP")]
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def _group_fingerprint(members: list[tuple[int, Any]]) -> str:
    return hashlib.sha256("".join(_fingerprint(e) for _, e in members).encode()).hexdigest()


@dataclass
class _Reader:
    source: str
    origin: str
    owner_id: int | None
    now: dt.datetime
    since: dt.datetime
    people: People
    method: str = ""

    def rejected(self, key: str, origin: str, reason: str, size: int = 0) -> Incoming:
        return Incoming(
            dedup_key=f"bad:{key}",
            kind=ActivityKind.MEETING,
            source=self.source,
            origin=origin[:255],
            size=size,
            owner_id=self.owner_id,
            rejected=reason[:255],
        )

    def participants(self, component: Any) -> tuple[str, list[tuple[str, str]], bool]:
        """(organiser's address, participants, whether the owner declined)."""
        out: dict[str, str] = {}
        organizer = next(iter(_list(component.get("ORGANIZER"))), None)
        sender = ""
        if organizer is not None:
            address = _address(organizer)
            if address and not address.endswith(_RESOURCE_DOMAINS):
                sender = address
                out[address] = str(organizer.params.get("CN", "")).strip()
        declined_by: set[str] = set()
        for attendee in _list(component.get("ATTENDEE")):
            address = _address(attendee)
            params = getattr(attendee, "params", {})
            if not address or address.endswith(_RESOURCE_DOMAINS):
                continue
            if str(params.get("CUTYPE", "")).upper() in ("RESOURCE", "ROOM"):
                continue
            if str(params.get("PARTSTAT", "")).upper() == "DECLINED":
                declined_by.add(address)
                if address != sender:
                    out.pop(address, None)
                continue
            if address not in out or not out[address]:
                out[address] = str(params.get("CN", "")).strip()
        owner_declined = False
        if self.owner_id is not None and declined_by:
            owner_declined = bool(declined_by & self.people.addresses_of(self.owner_id))
        return sender, [(name, address) for address, name in out.items()], owner_declined

    def item(
        self,
        component: Any,
        *,
        key: str,
        uid_key: str,
        start: dt.date,
        sequence: int,
        cancelled: bool,
        origin: str,
    ) -> Incoming | None:
        sender, participants, owner_declined = self.participants(component)
        zone = self.people.zone_for(self.owner_id, [sender, *(a for _, a in participants)])
        when = _moment(start, zone).astimezone(dt.UTC)
        if when > self.now or when < self.since:
            return None
        subject = _text(component, "SUMMARY") or "(no title)"
        body = _text(component, "DESCRIPTION")
        location = _text(component, "LOCATION")
        if location:
            body = f"{body}\n\nLocation: {location}".strip()
        return Incoming(
            dedup_key=key,
            kind=ActivityKind.MEETING,
            source=self.source,
            occurred_at=when,
            subject=subject,
            body=body,
            sender=sender,
            participants=participants,
            thread_key=uid_key,
            owner_id=self.owner_id,
            origin=f"{origin} on {when:%Y-%m-%d %H:%M} UTC"[:255],
            sequence=sequence,
            cancelled=cancelled
            or owner_declined
            or self.method == "CANCEL"
            or _text(component, "STATUS").upper() == "CANCELLED",
        )

    def _where(self, number: int, index: int) -> str:
        """Which event of the file: its position (and the calendar's, in a file of several)."""
        return f"{self.origin} event {index}" if number == 1 else f"{self.origin} #{number} event {index}"

    def calendar(self, calendar: Any, number: int) -> Iterator[Incoming]:
        import icalendar
        import recurring_ical_events
        import x_wr_timezone

        try:
            calendar = x_wr_timezone.to_standard(calendar)
        except Exception as exc:  # a broken X-WR-TIMEZONE: read the times as written
            log.info("%s: X-WR-TIMEZONE not applied: %s", self.origin, exc)
        self.method = _text(calendar, "METHOD").upper()
        zones = [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]
        groups: dict[str, list[tuple[int, Any]]] = {}
        for index, event in enumerate((c for c in calendar.subcomponents if c.name == "VEVENT"), start=1):
            origin = self._where(number, index)
            try:
                _start_value(event)
            except _Bad as exc:
                uid = _text(event, "UID")
                yield self.rejected(_fingerprint(event), origin + (f" ({uid})" if uid else ""), str(exc))
                continue
            uid = _text(event, "UID")
            if not uid:  # RFC 5545 requires one; a stable stand-in still keeps re-imports apart
                seed = "|".join([_text(event, "DTSTART"), _text(event, "SUMMARY"), _text(event, "ORGANIZER")])
                uid = "no-uid-" + hashlib.sha256(seed.encode()).hexdigest()[:32]
            groups.setdefault(uid, []).append((index, event))
        for uid, members in groups.items():
            first = members[0][0]
            origin = self._where(number, first)
            try:
                yield from self.series(uid, members, zones, origin, icalendar, recurring_ical_events)
            except _Bad as exc:
                yield self.rejected(_group_fingerprint(members), f"{origin} ({uid[:80]})", str(exc))
            except Exception as exc:  # a series the library cannot expand: rejected, the rest goes on
                reason = f"could not read the event ({type(exc).__name__}: {str(exc)[:150]})"
                yield self.rejected(_group_fingerprint(members), f"{origin} ({uid[:80]})", reason)

    def series(
        self,
        uid: str,
        members: list[tuple[int, Any]],
        zones: list[Any],
        origin: str,
        icalendar: Any,
        recurring_ical_events: Any,
    ) -> Iterator[Incoming]:
        """Every started occurrence of one UID (a single event, or a master and its overrides)."""
        uid_key = _uid_key(uid)
        master = next((e for _, e in members if "RECURRENCE-ID" not in e), None)
        overrides: dict[str, Any] = {}
        for _, event in members:
            if "RECURRENCE-ID" in event:
                overrides[_recurrence_key(event.decoded("RECURRENCE-ID"))] = event
        recurring = bool(overrides) or (master is not None and ("RRULE" in master or "RDATE" in master))
        for rule in _list(master.get("RRULE") if master is not None else None):
            if any(str(freq).upper() in _TOO_OFTEN for freq in _list(rule.get("FREQ"))):
                raise _Bad("repeats more often than daily: not a meeting")
        one = icalendar.Calendar()
        for zone in zones:
            one.add_component(zone)
        for _, event in members:
            one.add_component(event)
        query = recurring_ical_events.of(one)
        found: dict[str, Incoming] = {}
        # Expanded a year at a time, so that a series of absurd size stops early and is rejected.
        start, end = max(self.since, _earliest(members)) - _SLACK, self.now + _SLACK
        while start < end:
            stop = min(start + _SLICE, end)
            for occurrence in query.between(start, stop):
                begins = occurrence.decoded("DTSTART")
                original = occurrence.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in occurrence else begins
                recurrence = _recurrence_key(original)
                key = f"event:{uid_key}|{recurrence if recurring else ''}"
                if key in found:  # on the edge of two slices
                    continue
                own = overrides.get(recurrence, master) if recurring else (master or occurrence)
                item = self.item(
                    occurrence,
                    key=key,
                    uid_key=uid_key,
                    start=begins,
                    sequence=_sequence(own if own is not None else occurrence),
                    cancelled=False,
                    origin=origin,
                )
                if item is not None:
                    found[key] = item
            if len(found) > MAX_OCCURRENCES:
                raise _Bad(f"a series of more than {MAX_OCCURRENCES} occurrences")
            start = stop
        items = list(found.values())
        if master is not None and recurring:
            # EXDATE takes an occurrence out of the series: if it was logged before, it is cancelled.
            seen = {item.dedup_key for item in items}
            for exdates in _list(master.get("EXDATE")):
                for value in getattr(exdates, "dts", []):
                    recurrence = _recurrence_key(value.dt)
                    key = f"event:{uid_key}|{recurrence}"
                    if recurrence in overrides or key in seen:
                        continue
                    seen.add(key)
                    item = self.item(
                        master,
                        key=key,
                        uid_key=uid_key,
                        start=value.dt,
                        sequence=_sequence(master),
                        cancelled=True,
                        origin=origin,
                    )
                    if item is not None:
                        items.append(item)
        items.sort(key=lambda item: item.occurred_at or EPOCH)
        yield from items


def read_calendar(
    raw: bytes,
    *,
    source: str,
    origin: str,
    owner_id: int | None = None,
    now: dt.datetime | None = None,
    since: dt.datetime | None = None,
    people: People | None = None,
) -> Iterator[Incoming]:
    """Every started occurrence in an iCalendar file's bytes (between `since` and `now`), as items.

    A file that is not iCalendar is one rejected item; an event that cannot be read is one
    rejected item and the others are read.
    """
    import icalendar

    reader = _Reader(
        source=source,
        origin=origin,
        owner_id=owner_id,
        now=now or timezone.now(),
        since=since or EPOCH,
        people=people or People(),
    )
    try:
        calendars = icalendar.Calendar.from_ical(raw, multiple=True)
    except Exception as exc:  # icalendar raises ValueError mostly, but not only
        reason = f"not an iCalendar file ({str(exc)[:150]})"
        yield reader.rejected(hashlib.sha256(raw).hexdigest(), origin, reason, size=len(raw))
        return
    calendars = [c for c in calendars if c.name == "VCALENDAR"]
    if not calendars:
        yield reader.rejected(
            hashlib.sha256(raw).hexdigest(), origin, "no complete VCALENDAR in the file", len(raw)
        )
        return
    for number, calendar in enumerate(calendars, start=1):
        yield from reader.calendar(calendar, number)


def read_paths(
    paths: list[Path],
    *,
    source: str,
    owner_id: int | None = None,
    now: dt.datetime | None = None,
    people: People | None = None,
) -> Iterator[Incoming]:
    people = people or People()
    for path in paths:
        yield from read_calendar(
            path.read_bytes(), source=source, origin=path.name, owner_id=owner_id, now=now, people=people
        )


# -- `truepipe import calendar PATH...` --------------------------------------------------------------


def import_calendar(paths: list[str], options: dict[str, Any], stdout, stderr) -> int:  # type: ignore[no-untyped-def]
    from truepipe.capture.commands import existing_paths, run_file_import

    files = existing_paths(paths)
    return run_file_import(
        "Calendar",
        lambda owner_id: read_paths(files, source=CaptureSource.FILE, owner_id=owner_id),
        None,
        options,
        stdout,
        stderr,
        report=CalendarReport(),
    )


# -- feeds -----------------------------------------------------------------------------------------


class FeedError(Exception):
    """A feed that could not be fetched; the message is what `last_error` records."""


@dataclass
class FeedReport(CalendarReport):
    feed: str = ""
    error: str = ""
    unchanged: bool = False  # the server answered 304 Not Modified

    def summary(self) -> str:
        if self.error:
            return f"{self.feed}: failed: {self.error}"
        return f"{self.feed}: {'unchanged, ' if self.unchanged else ''}{super().summary()}"


def feed_url(url: str) -> str:
    """The URL to fetch: webcal:// (and webcals://) is https://; only http(s) is fetched."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if scheme.lower() in ("webcal", "webcals"):
        return f"https://{rest}"
    if not sep or scheme.lower() not in ("http", "https"):
        raise FeedError(f"{redact(url)}: not an http(s) or webcal URL")
    return url


def redact(url: str) -> str:
    """A feed URL fit to print or record: private calendar addresses carry their secret in the
    path or the query, so only the host and the last path segment are shown."""
    parts = urlsplit(url.strip())
    if not parts.hostname:
        return url.strip()[:40] + ("…" if len(url.strip()) > 40 else "")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + "/".join((["…"] if len(segments) > 1 else []) + segments[-1:])
    return f"{parts.scheme}://{host}{path if segments else ''}{'?…' if parts.query else ''}"


def _cache_path(feed: CalendarFeed) -> Path:
    return Path(settings.TRUEPIPE_HOME) / "calendar-feeds" / f"{feed.pk}.ics"


def _cached(feed: CalendarFeed) -> bytes | None:
    try:
        return _cache_path(feed).read_bytes()
    except OSError:
        return None


def _keep(feed: CalendarFeed, body: bytes) -> None:
    """The last body, for a 304 answer: unchanged calendars still have occurrences that start."""
    path = _cache_path(feed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_bytes(body)
        path.with_suffix(".tmp").replace(path)
    except OSError as exc:  # a read-only home: no cache, so no If-None-Match next time
        log.warning("calendar feed #%s: cannot keep the body: %s", feed.pk, exc)


def fetch(feed: CalendarFeed, *, timeout: float = FEED_TIMEOUT) -> tuple[bytes | None, str]:
    """(the body, or None when not modified; the new ETag). `FeedError` when it cannot be fetched.

    If-None-Match is only sent when this machine kept the last body to read again.
    """
    url = feed_url(feed.url)
    shown = redact(url)
    headers = {"User-Agent": "truepipe-calendar/1", "Accept": "text/calendar, */*;q=0.5"}
    if feed.etag and _cached(feed) is not None:
        headers["If-None-Match"] = feed.etag
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            body = response.read(FEED_MAX_BYTES + 1)
            etag = response.headers.get("ETag", "") or ""
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None, feed.etag
        raise FeedError(f"{shown}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise FeedError(f"{shown}: no answer within {timeout:g} s") from None
        raise FeedError(f"{shown}: {reason}") from None
    except TimeoutError:
        raise FeedError(f"{shown}: no answer within {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise FeedError(f"{shown}: {type(exc).__name__}: {exc}") from None
    if len(body) > FEED_MAX_BYTES:
        raise FeedError(f"{shown}: larger than {FEED_MAX_BYTES // (1024 * 1024)} MB")
    return body, etag[:255]


def feed_window(feed: CalendarFeed, now: dt.datetime) -> dt.datetime:
    """From when a poll reads the feed's occurrences."""
    if feed.last_fetched_at is None:
        return now - FEED_HISTORY
    return max(now - FEED_HISTORY, min(feed.last_fetched_at, now) - FEED_OVERLAP)


def poll_feed(
    feed: CalendarFeed,
    *,
    now: dt.datetime | None = None,
    people: People | None = None,
    timeout: float = FEED_TIMEOUT,
) -> FeedReport:
    """Fetch one feed and capture its started occurrences as its owner's. Failures end up in the
    report and `last_error`; anything unexpected is recorded there too, then raised."""
    now = now or timezone.now()
    report = FeedReport()
    report.feed = f"feed #{feed.pk} ({feed.owner.username})"
    try:
        body, etag = fetch(feed, timeout=timeout)
        if body is None:
            report.unchanged = True
            body = _cached(feed)
        else:
            _keep(feed, body)
        if body is not None:
            ingest = Ingest(None)
            ingest.report = report
            ingest.run(
                read_calendar(
                    body,
                    source=CaptureSource.FEED,
                    origin=f"feed #{feed.pk}",
                    owner_id=feed.owner_id,
                    now=now,
                    since=feed_window(feed, now),
                    people=people,
                )
            )
    except FeedError as exc:
        report.error = str(exc)
        CalendarFeed.objects.filter(pk=feed.pk).update(last_error=report.error)
        return report
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        CalendarFeed.objects.filter(pk=feed.pk).update(last_error=report.error)
        raise
    feed.etag, feed.last_fetched_at, feed.last_error = etag, now, ""
    CalendarFeed.objects.filter(pk=feed.pk).update(
        etag=feed.etag, last_fetched_at=feed.last_fetched_at, last_error=""
    )
    return report


def poll_feeds(
    feeds: Iterable[CalendarFeed] | None = None,
    *,
    now: dt.datetime | None = None,
    timeout: float = FEED_TIMEOUT,
) -> list[FeedReport]:
    """Poll every enabled feed (or those given); one that fails does not stop the others."""
    if feeds is None:
        feeds = CalendarFeed.objects.filter(enabled=True, owner__is_active=True).select_related("owner")
        feeds = feeds.order_by("pk")
    people = People()
    reports = []
    for feed in feeds:
        try:
            report = poll_feed(feed, now=now, people=people, timeout=timeout)
        except Exception as exc:  # recorded on the feed by poll_feed(); go on with the others
            log.exception("polling calendar feed #%s failed", feed.pk)
            report = FeedReport()
            report.feed = f"feed #{feed.pk}"
            report.error = f"{type(exc).__name__}: {exc}"
        reports.append(report)
    return reports
