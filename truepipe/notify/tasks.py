"""The notification outbox in the worker: every minute, and the digests once a day."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from truepipe.notify import send


@db_periodic_task(crontab(minute="*"))
def flush_outbox() -> dict[str, int]:
    return send.flush()


@db_periodic_task(crontab(minute=str(settings.TRUEPIPE_NIGHTLY_MINUTE), hour="7"))
def daily_digests() -> dict[str, Any]:
    return {"digests": send.send_digests()}
