"""Capture's background work in `truepipe worker` (huey finds this module by its name)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task

MAILBOX_LOCK = "truepipe-capture-mailboxes"


@db_periodic_task(crontab(minute="*/5"))
def poll_mailboxes() -> dict[str, str]:
    """Every 5 minutes: every enabled IMAP mailbox's new mail. One poll at a time: a poll still
    running when the next is due makes that one give up (huey logs TaskLockedException)."""
    from truepipe.capture.imap import poll_all

    with HUEY.lock_task(MAILBOX_LOCK):
        return {report.mailbox: report.summary() for report in poll_all()}


CALENDAR_LOCK = "truepipe-capture-calendars"


@db_periodic_task(crontab(minute="*/15"))
def poll_calendar_feeds() -> dict[str, str]:
    """Every 15 minutes: every enabled calendar feed (the occurrences that started since are logged,
    changes applied). One poll at a time, like the mailboxes."""
    from truepipe.capture.calendar import poll_feeds

    with HUEY.lock_task(CALENDAR_LOCK):
        return {report.feed: report.summary() for report in poll_feeds()}
