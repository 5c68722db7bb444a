"""Calendar capture: meetings from .ics files and feeds become activities on the right deal, once.

The files under tests/data/calendar/ are what calendars export: a Google-like calendar of Ravi's
with a weekly Acme meeting (one week taken out with EXDATE, one moved to the Tuesday), an Outlook
invitation with its own VTIMEZONE, an invitation moved and then cancelled, an internal meeting,
floating and all-day times, and broken files.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tests.conftest import stage
from truepipe.accounts import services as account_services
from truepipe.activities.models import Activity, ActivityKind, ActivitySource
from truepipe.capture import calendar
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import (
    CalendarFeed,
    CapturedItem,
    CaptureSource,
    ContactProposal,
    ItemStatus,
    TouchDomain,
)
from truepipe.core.models import Via
from truepipe.people.services import update_person
from truepipe.pipeline import services as pipeline_services

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data" / "calendar"
NOW = dt.datetime(2026, 10, 20, 12, 0, tzinfo=dt.UTC)  # a Tuesday, as of which the files are read
WEEKLY = "event:5p2kq3h8c0acmeweekly8u1o@google.com|"
DEMO = "event:acme-demo-7f3c2a91@truepipe.test|"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def capture(*names: str, owner=None, now: dt.datetime = NOW):
    """Read the files as `truepipe import calendar` does, as of `now`."""
    run = Ingest(None)
    run.report = calendar.CalendarReport()
    paths = [DATA / name for name in names]
    return run.run(calendar.read_paths(paths, source=CaptureSource.FILE, owner_id=owner, now=now))


def weekly_meetings():
    return Activity.objects.filter(captured__dedup_key__startswith=WEEKLY).order_by("occurred_at")


# -- what a recurring meeting becomes -------------------------------------------------------------


def test_each_past_occurrence_of_a_weekly_customer_meeting_is_logged_once_on_ravis_deal(org, acme_buyer):
    report = capture("google-weekly.ics", owner=org.ravi.pk)

    meetings = list(weekly_meetings())
    # Mondays 7, 14, 28 Sep, 12 and 19 Oct at 15:00 Berlin, and 5 Oct moved to Tuesday 16:00.
    assert [m.occurred_at for m in meetings] == [
        utc(2026, 9, 7, 13),
        utc(2026, 9, 14, 13),
        utc(2026, 9, 28, 13),
        utc(2026, 10, 6, 14),
        utc(2026, 10, 12, 13),
        utc(2026, 10, 19, 13),
    ]
    assert report.counts["logged"] == 6
    for meeting in meetings:
        assert (meeting.kind, meeting.source) == (ActivityKind.MEETING, ActivitySource.CALENDAR)
        assert (meeting.owner, meeting.opportunity, meeting.account) == (org.ravi, org.ravi_open, org.acme)
        assert list(meeting.participants.all()) == [acme_buyer]
    assert meetings[3].subject == "Acme weekly sync (moved to Tuesday)"
    assert meetings[0].body.endswith("Location: Google Meet")
    assert "open items, next steps" in meetings[0].body


def test_the_week_taken_out_of_the_series_is_recorded_as_cancelled_and_never_logged(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)

    item = CapturedItem.objects.get(dedup_key=WEEKLY + "2026-09-21T13:00:00Z")
    assert (item.status, item.reason, item.activity) == (ItemStatus.IGNORED, "cancelled", None)


def test_occurrences_that_have_not_started_yet_are_left_for_a_later_import(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)

    assert not CapturedItem.objects.filter(occurred_at__gt=NOW).exists()
    assert not CapturedItem.objects.filter(dedup_key=WEEKLY + "2026-10-26T14:00:00Z").exists()

    capture("google-weekly.ics", owner=org.ravi.pk, now=NOW + dt.timedelta(days=7))

    assert weekly_meetings().last().occurred_at == utc(2026, 10, 26, 14)  # 15:00 Berlin, winter time


def test_who_declined_and_the_meeting_room_are_not_participants_and_a_new_face_is_proposed(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)

    assert not ContactProposal.objects.filter(email="dave@acme.example").exists()
    carl = ContactProposal.objects.get(email="carl@acme.example")
    assert (carl.account, carl.display_name) == (org.acme, "Carl Cfo")
    domains = set(TouchDomain.objects.values_list("domain", flat=True))
    assert domains == {"acme.example"}


def test_a_personal_appointment_in_ravis_calendar_is_ignored(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)

    dentist = CapturedItem.objects.get(subject="Dentist")
    assert (dentist.status, dentist.reason, dentist.owner) == (ItemStatus.IGNORED, "internal only", org.ravi)


def test_importing_the_same_calendar_twice_logs_nothing_new(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)
    items, activities = CapturedItem.objects.count(), Activity.objects.count()

    report = capture("google-weekly.ics", owner=org.ravi.pk)

    assert report.counts["duplicate"] == report.seen == 8
    assert report.counts["logged"] == report.counts["updated"] == 0
    assert (CapturedItem.objects.count(), Activity.objects.count()) == (items, activities)


def test_a_week_cancelled_later_is_removed_from_the_activities(org, acme_buyer):
    capture("google-weekly.ics", owner=org.ravi.pk)
    logged = {m.occurred_at: m.pk for m in weekly_meetings()}

    # The organiser then took 28 Sep out of the series (EXDATE) and cancelled 12 Oct.
    report = capture("google-weekly-v2.ics", owner=org.ravi.pk)

    assert report.counts["cancelled"] == 2
    for when in (utc(2026, 9, 28, 13), utc(2026, 10, 12, 13)):
        assert Activity.objects.get(pk=logged[when]).deleted_at is not None
    assert [m.occurred_at for m in weekly_meetings().filter(deleted_at__isnull=True)] == [
        utc(2026, 9, 7, 13),
        utc(2026, 9, 14, 13),
        utc(2026, 10, 6, 14),
        utc(2026, 10, 19, 13),
    ]
    item = CapturedItem.objects.get(dedup_key=WEEKLY + "2026-10-12T13:00:00Z")
    assert (item.status, item.reason) == (ItemStatus.IGNORED, "cancelled")

    capture("google-weekly.ics", owner=org.ravi.pk)  # the old export again changes nothing back

    assert weekly_meetings().filter(deleted_at__isnull=True).count() == 4


# -- single events: time zones, reschedules, cancellations ----------------------------------------


def test_an_outlook_invitation_with_its_own_time_zone_definition_is_read_in_that_zone(org, acme_buyer):
    capture("outlook-qbr.ics")

    qbr = Activity.objects.get(subject="Acme QBR")
    assert qbr.occurred_at == utc(2026, 10, 14, 8)  # 10:00 "W. Europe Standard Time", summer time
    assert (qbr.owner, qbr.opportunity) == (org.ravi, org.ravi_open)
    assert "Location: Acme HQ, Berlin" in qbr.body


def test_a_moved_meeting_updates_its_activity_and_a_cancelled_one_removes_it(org, acme_buyer):
    capture("acme-demo-v1.ics")
    demo = Activity.objects.get(captured__dedup_key=DEMO)
    assert (demo.occurred_at, demo.subject) == (utc(2026, 10, 15, 14), "Acme demo")

    moved = capture("acme-demo-v2-moved.ics")

    demo.refresh_from_db()
    assert moved.counts["updated"] == 1
    assert (demo.occurred_at, demo.subject) == (utc(2026, 10, 16, 9, 30), "Acme demo (new time)")
    assert Activity.objects.filter(subject__startswith="Acme demo").count() == 1

    again = capture("acme-demo-v1.ics")  # the first invitation read again does not move it back

    demo.refresh_from_db()
    assert again.counts["duplicate"] == 1
    assert demo.occurred_at == utc(2026, 10, 16, 9, 30)

    cancelled = capture("acme-demo-cancelled.ics")

    demo.refresh_from_db()
    assert cancelled.counts["cancelled"] == 1
    assert demo.deleted_at is not None
    item = CapturedItem.objects.get(dedup_key=DEMO)
    assert (item.status, item.reason, item.sequence) == (ItemStatus.IGNORED, "cancelled", 2)

    capture("acme-demo-v2-moved.ics", "acme-demo-v1.ics")

    demo.refresh_from_db()
    assert demo.deleted_at is not None
    assert CapturedItem.objects.filter(dedup_key__startswith="event:acme-demo").count() == 1


def test_a_meeting_among_colleagues_only_is_ignored(org):
    report = capture("internal.ics")

    item = CapturedItem.objects.get(subject="Pipeline review")
    assert (item.status, item.reason, item.owner) == (ItemStatus.IGNORED, "internal only", org.ravi)
    assert report.counts["ignored"] == 1
    assert not Activity.objects.filter(subject="Pipeline review").exists()


def test_floating_times_and_all_day_events_are_read_in_the_owners_time_zone(org, acme_buyer):
    update_person(None, org.ravi, {"time_zone": "America/New_York"})

    capture("floating-and-all-day.ics")  # no --as: Ravi is found as the organiser

    call = Activity.objects.get(subject="Acme call (floating time)")
    workshop = Activity.objects.get(subject="Acme onsite workshop")
    assert call.occurred_at == utc(2026, 10, 13, 13)  # 09:00 in New York
    assert workshop.occurred_at == utc(2026, 10, 8, 16)  # noon in New York
    assert CapturedItem.objects.filter(
        dedup_key="event:8E1F4C2A-0D3B-4C61-9B7E-floating@truepipe.test|"
    ).exists()


def test_a_very_long_uid_still_makes_a_short_key(org, acme_buyer, tmp_path):
    uid = "x" * 300 + "@truepipe.test"
    text = (DATA / "acme-demo-v1.ics").read_text().replace("acme-demo-7f3c2a91@truepipe.test", uid)
    items = list(calendar.read_calendar(text.encode(), source=CaptureSource.FILE, origin="long.ics", now=NOW))

    [item] = items
    assert len(item.dedup_key) < 100 and item.dedup_key.startswith("event:sha256:")
    assert item.thread_key == item.dedup_key[len("event:") : -1]


def test_a_meeting_ravi_declined_is_not_his_touch(org, acme_buyer):
    text = (
        (DATA / "outlook-qbr.ics")
        .read_bytes()
        .replace(b'ATTENDEE;CN="Ravi Rao";RSVP=TRUE', b'ATTENDEE;CN="Ravi Rao";PARTSTAT=DECLINED')
    )
    text = text.replace(
        b'ORGANIZER;CN="Ravi Rao":mailto:ravi@truepipe.test', b"ORGANIZER:mailto:bea@acme.example"
    )
    run = Ingest(None)
    run.run(
        calendar.read_calendar(text, source=CaptureSource.FEED, origin="feed", owner_id=org.ravi.pk, now=NOW)
    )

    item = CapturedItem.objects.get(subject="Acme QBR")
    assert (item.status, item.reason, item.activity) == (ItemStatus.IGNORED, "cancelled", None)


def test_a_rule_repeating_every_minute_is_rejected_as_not_a_meeting(org):
    text = (
        (DATA / "acme-demo-v1.ics").read_bytes().replace(b"SEQUENCE:0", b"SEQUENCE:0\r\nRRULE:FREQ=MINUTELY")
    )
    [item] = calendar.read_calendar(text, source=CaptureSource.FILE, origin="spam.ics", now=NOW)

    assert item.rejected == "repeats more often than daily: not a meeting"
    assert item.origin == "spam.ics event 1 (acme-demo-7f3c2a91@truepipe.test)"


# -- the command -----------------------------------------------------------------------------------


def test_import_calendar_logs_what_it_can_and_names_each_bad_event_or_file(org, acme_buyer, capsys):
    call_command("import", "calendar", str(DATA / "broken.ics"), str(DATA / "truncated.ics"), "--no-progress")

    out, err = capsys.readouterr()
    assert "1 logged" in out and "3 rejected" in out
    assert "broken.ics event 1 (no-start@truepipe.test): event without DTSTART" in err
    assert "broken.ics event 2 (bad-rule@truepipe.test): event with an unreadable RRULE" in err
    assert "truncated.ics: " in err
    assert Activity.objects.get(subject="Acme pricing call").opportunity == org.ravi_open
    reasons = set(CapturedItem.objects.filter(status=ItemStatus.REJECTED).values_list("reason", flat=True))
    assert "event without DTSTART" in reasons

    call_command("import", "calendar", str(DATA / "broken.ics"), "--no-progress")

    out, _ = capsys.readouterr()
    assert "3 already captured" in out  # the bad events are not recorded twice either


def test_import_calendar_as_ravi_logs_his_past_meetings_and_none_to_come(org, acme_buyer, capsys):
    call_command("import", "calendar", str(DATA / "google-weekly.ics"), "--as", "ravi", "--no-progress")

    out, _ = capsys.readouterr()
    assert "logged" in out
    meetings = weekly_meetings()
    assert meetings.exists()
    assert all(m.owner == org.ravi and m.occurred_at <= timezone.now() for m in meetings)
    assert not CapturedItem.objects.filter(occurred_at__gt=timezone.now()).exists()


def test_import_calendar_has_no_dry_run(org):
    with pytest.raises(CommandError, match="no --dry-run"):
        call_command("import", "calendar", str(DATA / "outlook-qbr.ics"), "--dry-run")


# -- the engine ---------------------------------------------------------------------------------------


MEETING = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//truepipe tests//EN\r
BEGIN:VEVENT\r
UID:initech-check-in@truepipe.test\r
DTSTAMP:{stamp}\r
DTSTART:{start}\r
DURATION:PT30M\r
SUMMARY:Initech check-in\r
ORGANIZER;CN=Ravi Rao:mailto:ravi@truepipe.test\r
ATTENDEE;CN=Ivy Ito;PARTSTAT=ACCEPTED:mailto:ivy@initech.example\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_a_captured_meeting_is_a_customer_touch_that_clears_a_stale_deal(org, tmp_path):
    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation

    now = timezone.now()
    initech = account_services.create_account(
        org.ravi, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    deal = pipeline_services.create_opportunity(
        org.ravi,
        name="Initech pilot",
        account=initech,
        stage=stage("Proposal"),
        amount=Decimal("9000"),
        close_date=timezone.localdate() + dt.timedelta(days=20),
        via=Via.FORM,
        at=now - dt.timedelta(days=40),
    )
    evaluate()
    assert Violation.objects.filter(rule="stale_touch", opportunity=deal, live=True).exists()

    two_days_ago = f"{now - dt.timedelta(days=2):%Y%m%dT%H%M%SZ}"
    path = tmp_path / "initech.ics"
    path.write_text(MEETING.format(stamp=two_days_ago, start=two_days_ago), newline="")
    call_command("import", "calendar", str(path), "--no-progress")
    evaluate()

    assert Activity.objects.get(subject="Initech check-in").opportunity == deal
    assert not Violation.objects.filter(rule="stale_touch", opportunity=deal, live=True).exists()
    assert not Violation.objects.filter(rule="logging_lag", live=True).exists()


# -- feeds --------------------------------------------------------------------------------------------


class _Calendars(BaseHTTPRequestHandler):
    """Serves the calendar files by name, with an ETag; remembers each request's If-None-Match."""

    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        name = self.path.lstrip("/")
        type(self).requests.append((name, self.headers.get("If-None-Match")))
        path = DATA / name
        if not name or not path.is_file():
            self.send_error(404, "No such calendar")
            return
        body = path.read_bytes()
        etag = f'"{name}-{len(body)}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def calendar_server(settings, tmp_path):
    settings.TRUEPIPE_HOME = tmp_path  # where the last body of each feed is kept
    _Calendars.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Calendars)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_feed_is_added_polled_as_its_owners_and_then_read_again_only_when_it_changed(
    org, acme_buyer, calendar_server, capsys
):
    call_command("calendar", "feed", "add", "ravi", f"{calendar_server}/google-weekly.ics")
    feed = CalendarFeed.objects.get()
    assert (feed.owner, feed.enabled) == (org.ravi, True)

    call_command("calendar", "poll")

    out, _ = capsys.readouterr()
    feed.refresh_from_db()
    assert feed.etag and feed.last_fetched_at and not feed.last_error
    meetings = weekly_meetings()
    assert meetings.exists() and all(m.owner == org.ravi for m in meetings)
    assert set(CapturedItem.objects.values_list("source", flat=True)) == {CaptureSource.FEED}
    assert not CapturedItem.objects.filter(occurred_at__gt=timezone.now()).exists()
    assert "logged" in out

    call_command("calendar", "poll", "--feed", str(feed.pk))

    out, _ = capsys.readouterr()
    assert _Calendars.requests == [("google-weekly.ics", None), ("google-weekly.ics", feed.etag)]
    assert "unchanged" in out and "0 logged" in out


def test_a_feed_answering_not_modified_still_logs_the_meetings_that_started_since(
    org, acme_buyer, calendar_server
):
    feed = CalendarFeed.objects.create(owner=org.ravi, url=f"{calendar_server}/google-weekly.ics")

    [first] = calendar.poll_feeds(now=utc(2026, 10, 10))
    [second] = calendar.poll_feeds(now=NOW)

    assert first.counts["logged"] == 4 and not first.unchanged
    assert second.unchanged and second.counts["logged"] == 2  # 12 and 19 October
    assert _Calendars.requests[1][1] == CalendarFeed.objects.get(pk=feed.pk).etag
    assert weekly_meetings().count() == 6


def test_a_feed_that_fails_records_why_and_the_others_are_still_polled(
    org, acme_buyer, calendar_server, capsys
):
    broken = CalendarFeed.objects.create(owner=org.ravi, url=f"{calendar_server}/gone.ics")
    good = CalendarFeed.objects.create(owner=org.ravi, url=f"{calendar_server}/outlook-qbr.ics")

    with pytest.raises(CommandError, match="1 feed"):
        call_command("calendar", "poll")

    broken.refresh_from_db()
    good.refresh_from_db()
    assert "HTTP 404" in broken.last_error and broken.last_fetched_at is None
    assert good.last_fetched_at is not None and not good.last_error
    assert Activity.objects.filter(subject="Acme QBR", owner=org.ravi).exists()

    call_command("calendar", "feed", "list")

    out, _ = capsys.readouterr()
    assert f"#{broken.pk}" in out and "HTTP 404" in out and "ravi" in out


def test_a_feed_that_does_not_answer_in_time_fails_alone(org, settings, tmp_path):
    settings.TRUEPIPE_HOME = tmp_path
    silent = ThreadingHTTPServer(("127.0.0.1", 0), _Calendars)  # listens, never answers
    try:
        feed = CalendarFeed.objects.create(
            owner=org.ravi, url=f"http://127.0.0.1:{silent.server_address[1]}/slow.ics"
        )
        [report] = calendar.poll_feeds(timeout=0.5)
    finally:
        silent.server_close()

    feed.refresh_from_db()
    assert "no answer within 0.5 s" in report.error == feed.last_error


def test_webcal_addresses_are_fetched_over_https_and_secrets_in_them_are_not_printed():
    assert calendar.feed_url("webcal://calendar.example/private-abc/basic.ics") == (
        "https://calendar.example/private-abc/basic.ics"
    )
    with pytest.raises(calendar.FeedError):
        calendar.feed_url("file:///etc/passwd")
    assert calendar.redact("https://calendar.google.com/calendar/ical/x%40y/private-s3cret/basic.ics") == (
        "https://calendar.google.com/…/basic.ics"
    )
    assert calendar.redact("https://outlook.example/owa/calendar.ics?token=s3cret") == (
        "https://outlook.example/…/calendar.ics?…"
    )


def test_adding_a_feed_checks_the_person_and_the_address(org):
    with pytest.raises(CommandError, match="No user"):
        call_command("calendar", "feed", "add", "nobody", "https://calendar.example/a.ics")
    with pytest.raises(CommandError, match="not an http"):
        call_command("calendar", "feed", "add", "ravi", "ftp://calendar.example/a.ics")
    call_command("calendar", "feed", "add", "ravi", "webcal://calendar.example/a.ics")
    with pytest.raises(CommandError, match="already"):
        call_command("calendar", "feed", "add", "ravi", "webcal://calendar.example/a.ics")


def test_the_worker_polls_the_feeds_every_quarter_of_an_hour(org, acme_buyer, calendar_server):
    from huey.contrib.djhuey import HUEY

    from truepipe.capture import tasks

    feed = CalendarFeed.objects.create(owner=org.ravi, url=f"{calendar_server}/outlook-qbr.ics")
    assert tasks.poll_calendar_feeds.s().validate_datetime(dt.datetime(2026, 10, 20, 9, 45))
    assert not tasks.poll_calendar_feeds.s().validate_datetime(dt.datetime(2026, 10, 20, 9, 50))

    was = HUEY.immediate
    HUEY.immediate = True
    try:
        tasks.poll_calendar_feeds()
    finally:
        HUEY.immediate = was

    feed.refresh_from_db()
    assert feed.last_fetched_at is not None
    assert Activity.objects.filter(subject="Acme QBR").exists()
