"""The demo's discipline record: evaluate the generated history day by day, as the nightly job would have.

The generator writes months of back-dated history; the rules and scores are
then back-filled from it with the engine's as-of evaluation, one day at a time
and moving forward (as `truepipe evaluate --from` does), with the day's
snapshot and the managers' decisions on the consequences it brought
(`demo.accountability`), and finally as of the demo's "now". Every step is idempotent: a day
already evaluated is skipped, a snapshot replaces the day's rows, so running
the back-fill again adds nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.test.utils import override_settings
from django.utils import timezone

from truepipe.demo.accountability import finish, managers_act
from truepipe.demo.capture import capture_rainmaker
from truepipe.hygiene.engine import end_of_day, evaluate, latest_run
from truepipe.hygiene.snapshots import take_snapshot

# How far back the discipline record goes by default, and the first days of the history left out
# of it: the generated pipeline starts empty and needs a few weeks to fill up.
BACKFILL_DAYS = 90
WARMUP_DAYS = 30


@contextmanager
def history_being_written() -> Iterator[None]:
    """Writing back-dated history: no incremental evaluation as of the wall clock meanwhile.

    The incremental evaluation skips writes stamped in the past anyway, but the
    generator's last entries can fall within minutes of now; evaluated then, they
    would open violations as of now before the back-fill evaluates the days before.
    """
    with override_settings(TRUEPIPE_INCREMENTAL_EVALUATION=False):
        yield


def backfill_days(start: dt.date, now: dt.datetime, days: int = BACKFILL_DAYS) -> list[dt.date]:
    """The whole days to evaluate, oldest first: the last `days` before today, after the warm-up."""
    today = timezone.localtime(now).date()
    first = max(today - dt.timedelta(days=days), start + dt.timedelta(days=WARMUP_DAYS))
    return [first + dt.timedelta(days=n) for n in range((today - first).days)]


@dataclass
class Backfill:
    days: list[dt.date]
    evaluations: int = 0  # evaluations run (days already evaluated are skipped)
    snapshot_rows: int = 0
    decisions: int = 0  # consequences the demo's managers applied or waived


def backfill(days: list[dt.date], now: dt.datetime, progress: Callable[[int], Any] | None = None) -> Backfill:
    """Evaluate and snapshot each day as of its end, in order, then evaluate as of `now`."""
    result = Backfill(days)
    latest = latest_run()
    done = latest.as_of if latest is not None else None
    for day in days:
        moment = end_of_day(day)
        if moment >= now:
            break
        if done is None or moment > done:
            evaluate(moment, trigger="demo")
            result.evaluations += 1
            result.decisions += managers_act(day)
        result.snapshot_rows += take_snapshot(day)
        if progress:
            progress(1)
    if done is None or now > done:
        capture_rainmaker(now)  # his mail and finance's contract, before the evaluation as of now
        evaluate(now, trigger="demo")
        result.evaluations += 1
        finish(now)
    return result
