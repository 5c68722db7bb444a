"""The one write path for activities."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from truepipe.accounts.models import Contact
from truepipe.activities.models import Activity, ActivityKind, ActivitySource
from truepipe.core import hooks
from truepipe.core.errors import InvalidInput, NotFound
from truepipe.core.permissions import require_assignable, require_change, require_create, require_visible

ACTIVITY_FIELDS = ("kind", "occurred_at", "subject", "body", "source", "owner", "opportunity", "account")
# Clock skew we tolerate for "it happened in the future".
FUTURE_TOLERANCE = timedelta(minutes=10)


def _validate(values: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    out = dict(values)
    if "kind" in out and out["kind"] not in ActivityKind.values:
        raise InvalidInput(
            f"Kind must be one of: {', '.join(ActivityKind.values)}.", fields={"kind": "Unknown kind."}
        )
    if "source" in out and out["source"] not in ActivitySource.values:
        raise InvalidInput(
            f"Source must be one of: {', '.join(ActivitySource.values)}.", fields={"source": "Unknown."}
        )
    if "subject" in out:
        out["subject"] = (out["subject"] or "").strip()
        if not out["subject"]:
            raise InvalidInput("Say in a few words what happened.", fields={"subject": "Required."})
        out["subject"] = out["subject"][:255]
    if "occurred_at" in out:
        when = out["occurred_at"]
        if not isinstance(when, datetime):
            raise InvalidInput(
                "When it happened must be a date and time.", fields={"occurred_at": "Not a date-time."}
            )
        if timezone.is_naive(when):
            when = timezone.make_aware(when)
            out["occurred_at"] = when
        if out.get("kind") != ActivityKind.TASK and when > now + FUTURE_TOLERANCE:
            raise InvalidInput(
                "A logged touch cannot have happened in the future.", fields={"occurred_at": "In the future."}
            )
    return out


def log_activity(
    actor,
    *,
    via: str,
    participants: list[Contact] | None = None,
    logged_at: datetime | None = None,
    **fields: Any,
) -> Activity:
    """Record a call, e-mail, meeting, note or task. `logged_at` defaults to now (the honest value)."""
    require_create(actor)
    unknown = set(fields) - set(ACTIVITY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    now = logged_at or timezone.now()
    values = _validate(fields, now=now)
    for required in ("kind", "subject"):
        if required not in values:
            raise InvalidInput(f"An activity needs a {required}.", fields={required: "Required."})
    values.setdefault("occurred_at", now)
    values.setdefault("owner", actor)
    if values.get("owner") is None:
        raise InvalidInput("An activity needs an owner.", fields={"owner": "Required."})
    require_assignable(actor, values["owner"])
    require_visible(actor, values.get("opportunity"), "opportunity")
    require_visible(actor, values.get("account"), "account")
    if values.get("opportunity") is not None and values.get("account") is None:
        values["account"] = values["opportunity"].account
    for contact in participants or []:
        require_visible(actor, contact, "participants")
    with transaction.atomic():
        activity = Activity.objects.create(**values, logged_at=now)
        if participants:
            activity.participants.set(participants)
        hooks.emit(
            hooks.WriteEvent(
                "activity",
                "create",
                [activity.pk],
                frozenset(values),
                getattr(actor, "pk", None),
                via,
                now,
                extra={"opportunity_id": activity.opportunity_id},
            )
        )
    return activity


def update_activity(
    actor,
    activity: Activity | int,
    changes: dict[str, Any],
    *,
    via: str,
    participants: list[Contact] | None = None,
) -> Activity:
    unknown = set(changes) - set(ACTIVITY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown or read-only field(s): {', '.join(sorted(unknown))}.")
    now = timezone.now()
    values = _validate(changes, now=now)
    pk = activity.pk if isinstance(activity, Activity) else activity
    with transaction.atomic():
        try:
            obj = Activity.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Activity.DoesNotExist:
            raise NotFound("That activity does not exist or was deleted.") from None
        require_change(actor, obj)
        if "owner" in values:
            require_assignable(actor, values["owner"])
        for name in ("opportunity", "account"):
            if name in values:
                require_visible(actor, values[name], name)
        previous_deal = obj.opportunity_id
        for name, value in values.items():
            setattr(obj, name, value)
        obj.save()
        if participants is not None:
            for contact in participants:
                require_visible(actor, contact, "participants")
            obj.participants.set(participants)
        hooks.emit(
            hooks.WriteEvent(
                "activity",
                "update",
                [obj.pk],
                frozenset(values),
                getattr(actor, "pk", None),
                via,
                now,
                # A deal the activity left loses a touch: the engine re-checks it too.
                extra={
                    "opportunity_id": obj.opportunity_id,
                    "previous_opportunity_ids": [previous_deal]
                    if previous_deal not in (None, obj.opportunity_id)
                    else [],
                },
            )
        )
    return obj


def delete_activity(actor, activity: Activity | int, *, via: str) -> None:
    pk = activity.pk if isinstance(activity, Activity) else activity
    with transaction.atomic():
        try:
            obj = Activity.objects.select_for_update().get(pk=pk, deleted_at__isnull=True)
        except Activity.DoesNotExist:
            raise NotFound("That activity does not exist or was deleted.") from None
        require_change(actor, obj)
        obj.deleted_at = timezone.now()
        obj.save(update_fields=["deleted_at"])
        hooks.emit(
            hooks.WriteEvent(
                "activity",
                "delete",
                [obj.pk],
                frozenset({"deleted"}),
                getattr(actor, "pk", None),
                via,
                obj.deleted_at,
                extra={"opportunity_id": obj.opportunity_id},
            )
        )


def log_captured(
    actor,
    rows: list[dict[str, Any]],
    participants: list[list[int]],
    *,
    via: str,
    logged_at: datetime | None = None,
) -> list[int]:
    """Record many captured e-mails and meetings at once; returns the new activities' ids in order.

    Capture has already decided each row (kind, occurred_at, subject, body, source, and the ids of
    owner, opportunity and account) and checked that the owner may be given them. The rows are
    inserted with a few multi-row statements and announced as one write, so the engine
    re-evaluates the deals they touched once per batch. Logging is instant (`logged_at` is now)
    whatever `occurred_at` says: capture is never late.
    """
    require_create(actor)
    if not rows:
        return []
    from truepipe.pipeline.services import insert_rows

    now = logged_at or timezone.now()
    for row in rows:
        if row["kind"] not in (ActivityKind.EMAIL, ActivityKind.MEETING):
            raise InvalidInput(f"Capture logs e-mails and meetings, not {row['kind']!r}.")
        if row["source"] not in (ActivitySource.EMAIL, ActivitySource.CALENDAR):
            raise InvalidInput(f"{row['source']!r} is not a capture source.")
        row["subject"] = (row.get("subject") or "").strip()[:255] or "(no subject)"
        row["logged_at"] = now
        row["deleted_at"] = None
    with transaction.atomic():
        ids = insert_rows(Activity, rows)
        links = [
            {"activity": pk, "contact": contact_id}
            for pk, contacts in zip(ids, participants, strict=True)
            for contact_id in dict.fromkeys(contacts)
        ]
        insert_rows(Activity.participants.through, links, returning=False)
        hooks.emit(
            hooks.WriteEvent(
                "activity",
                "create",
                ids,
                frozenset(rows[0]),
                getattr(actor, "pk", None),
                via,
                now,
                # The deals are known here: the engine need not read them back from 2,000 rows.
                extra={
                    "opportunity_ids": sorted({row["opportunity"] for row in rows if row["opportunity"]}),
                    "captured": True,
                },
            )
        )
    return ids
