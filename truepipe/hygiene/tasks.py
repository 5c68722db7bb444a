"""Background work run by `truepipe worker` (huey): the nightly snapshot and evaluation.

Every job is idempotent: running a night twice doubles nothing. The snapshot of
a day replaces that day's rows; an evaluation is skipped when the organisation
was already evaluated as of that moment or later. Evaluations take a huey lock,
so two workers (or a worker and a retried task) never evaluate at once.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task

from truepipe.hygiene import engine
from truepipe.hygiene.snapshots import take_snapshot

EVALUATION_LOCK = "truepipe-evaluation"


@dataclass
class NightReport:
    day: str
    snapshot_rows: int = 0
    evaluations: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def evaluate_once(as_of: dt.datetime, trigger: str = "worker") -> bool:
    """Evaluate as of a moment unless already evaluated as of it (or later). True if it ran."""
    with HUEY.lock_task(EVALUATION_LOCK):
        latest = engine.latest_run()
        if latest is not None and latest.as_of >= as_of:
            return False
        engine.evaluate(as_of, trigger=trigger)
        return True


def run_night(today: dt.date | None = None, now: dt.datetime | None = None) -> NightReport:
    """Snapshot yesterday, evaluate as of the end of yesterday (if not yet), then as of now."""
    today = today or timezone.localdate()
    yesterday = today - dt.timedelta(days=1)
    report = NightReport(day=yesterday.isoformat())
    report.snapshot_rows = take_snapshot(yesterday)
    for moment in (engine.end_of_day(yesterday), now or timezone.now()):
        label = f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"
        (report.evaluations if evaluate_once(moment) else report.skipped).append(label)
    return report


@db_periodic_task(
    crontab(minute=str(settings.TRUEPIPE_NIGHTLY_MINUTE), hour=str(settings.TRUEPIPE_NIGHTLY_HOUR))
)
def nightly() -> dict[str, Any]:
    return asdict(run_night())


@db_task()
def evaluate_now() -> bool:
    """Evaluate as of now, in the worker (e.g. after a policy change)."""
    return evaluate_once(timezone.now())


@db_task()
def ping() -> dict[str, Any]:
    """Says which process ran it: `truepipe worker --check` and the tests use it."""
    return {"pid": os.getpid(), "queue": type(HUEY).__name__}
