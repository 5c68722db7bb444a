"""Incremental evaluation: every write through the service layer re-checks what it touched.

Registered on `core.hooks`, so it runs inside the write's transaction: a rep
who fixes a deal sees its violation resolved at once, attributed to the change
that fixed it. Back-dated writes (imports of history, the demo generator) and
very large batches are left to the next full evaluation, which reads history.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from truepipe.activities.models import Activity
from truepipe.core.hooks import WriteEvent, on_write

# A write stamped further from now than this is a back-dated one (history being loaded).
BACKDATED = dt.timedelta(minutes=10)
# Batches larger than this (imports, big bulk edits) wait for the next full evaluation.
MAX_INCREMENTAL_BATCH = 2000
# Capture's batches (capture.ingest.BATCH) may be larger: only the customer-touch rules run for
# them, over the deals they touched, and a large mailbox goes in faster in fewer transactions.
MAX_CAPTURED_BATCH = 10_000


def enabled() -> bool:
    return bool(getattr(settings, "TRUEPIPE_INCREMENTAL_EVALUATION", True))


@on_write
def evaluate_after_write(event: WriteEvent) -> None:
    if not enabled() or event.kind not in ("opportunity", "activity"):
        return
    limit = MAX_CAPTURED_BATCH if event.extra.get("captured") else MAX_INCREMENTAL_BATCH
    if abs(timezone.now() - event.at) > BACKDATED or len(event.object_ids) > limit:
        return
    from truepipe.hygiene.engine import Resolution, evaluate_records

    # The fields an update changed say what fixed it; a creation's or deletion's would list every
    # column (a long note also makes each closed violation's row grow, and capture closes thousands).
    what = (
        f" ({', '.join(sorted(event.changed_fields))})"
        if event.action == "update" and event.changed_fields
        else ""
    )
    resolution = Resolution(
        actor_id=event.actor_id, via=event.via, note=f"{event.kind} {event.action}{what} via {event.via}"
    )
    if event.kind == "opportunity":
        evaluate_records(opportunity_ids=list(event.object_ids), resolution=resolution)
        return
    if "opportunity_ids" in event.extra:  # the writer said which deals the activities are on
        on = set(event.extra["opportunity_ids"])
    else:
        on = set(Activity.objects.filter(pk__in=event.object_ids).values_list("opportunity_id", flat=True))
    deals = sorted((on - {None}) | set(event.extra.get("previous_opportunity_ids", [])))
    if event.action == "create" and event.extra.get("captured"):
        # New e-mail and meetings from capture: they have no violation of their own to resolve
        # and are never late, and what they change on their deals is the customer-touch clock
        # and the activity count (not the rep's update clock): only the rules reading those run.
        if deals:
            evaluate_records(
                opportunity_ids=deals, resolution=resolution, activities_only=True, captured_only=True
            )
        return
    evaluate_records(
        opportunity_ids=deals or None,
        activity_ids=list(event.object_ids),
        resolution=resolution,
        activities_only=True,
    )
