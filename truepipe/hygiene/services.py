"""Writes people make to the discipline record (the engine's own writes live in engine.py)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from truepipe.audit import log as audit
from truepipe.core import hooks
from truepipe.core.errors import InvalidInput, NotAllowed, NotFound
from truepipe.core.models import Via
from truepipe.core.permissions import require_change
from truepipe.core.visibility import role_of
from truepipe.hygiene.models import Snooze, Violation, ViolationStatus
from truepipe.hygiene.policy import DEFAULT_SNOOZE, current_policy
from truepipe.people.models import Role, SalesProfile
from truepipe.pipeline.models import Opportunity, StageKind
from truepipe.pipeline.services import lock_opportunity


def can_waive(actor, violation: Violation) -> bool:
    """Admins, and managers of the rep's reporting subtree (not the rep themselves)."""
    role = role_of(actor)
    if role == Role.ADMIN:
        return True
    if role != Role.MANAGER or violation.rep_id == actor.pk:
        return False
    path = actor.profile.path or f"/{actor.pk}/"
    rep_path = getattr(getattr(violation.rep, "profile", None), "path", "")
    return bool(rep_path) and rep_path.startswith(path)


def waive_violation(actor, violation: Violation, reason: str) -> Violation:
    """Say an open violation does not count, with a reason. Never deletes; it stays live (not reopened)."""
    if not can_waive(actor, violation):
        raise NotAllowed("Only the rep's manager (or an admin) can waive a violation.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the violation is waived.", fields={"reason": "A reason is required."})
    with transaction.atomic():
        locked = Violation.objects.select_for_update().get(pk=violation.pk)
        if locked.status != ViolationStatus.OPEN:
            raise InvalidInput(f"This violation is already {locked.get_status_display().lower()}.")
        locked.status = ViolationStatus.WAIVED
        locked.waived_by = actor
        locked.waived_reason = reason
        locked.closed_at = timezone.now()
        locked.save(update_fields=["status", "waived_by", "waived_reason", "closed_at"])
        audit.record(
            actor,
            "violation.waived",
            locked,
            {"rule": locked.rule, "key": locked.key, "rep": locked.rep_id, "reason": reason},
        )
    return locked


# ---------------------------------------------------------------- snoozes


def snooze_limits() -> tuple[int, int]:
    """(max_days, max_active_per_rep) from the current policy's ``snooze`` section."""
    section = {**DEFAULT_SNOOZE, **current_policy().section("snooze")}
    return int(section["max_days"]), int(section["max_active_per_rep"])


def active_snoozes(today: dt.date | None = None):
    """Snoozes in force today: not cancelled, and their date not yet passed."""
    today = today or timezone.localdate()
    return Snooze.objects.filter(cancelled_at__isnull=True, until__gte=today)


def _reevaluate(opportunity_id: int, actor, via: str, note: str) -> None:
    """Re-run the deal's rules at once (as every write does), so the stale clocks follow the snooze."""
    from truepipe.hygiene.engine import Resolution, evaluate_records
    from truepipe.hygiene.incremental import enabled

    if enabled():
        evaluate_records(
            opportunity_ids=[opportunity_id],
            resolution=Resolution(actor_id=getattr(actor, "pk", None), via=via, note=note[:255]),
        )


def snooze_opportunity(
    actor, opportunity: Opportunity | int, until: dt.date, reason: str, *, via: str = Via.FORM
) -> Snooze:
    """Take an open deal off the stale-deal clocks until a date (inclusive), with a reason.

    Whoever may change the deal may snooze it (actor None is the system). The policy's
    ``snooze`` section limits how far ahead (``max_days``) and how many of one rep's deals may
    be snoozed at once (``max_active_per_rep``). Snoozing a deal that is already snoozed replaces
    that snooze (the old one is cancelled, both stay on record). The deal's stale violations
    are resolved in the same transaction.
    """
    errors: dict[str, str] = {}
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why the deal can wait (e.g. “Customer on holiday until the 20th”)."
    elif len(reason) > 255:
        errors["reason"] = "At most 255 characters."
    today = timezone.localdate()
    max_days, max_active = snooze_limits()
    if not isinstance(until, dt.date) or isinstance(until, dt.datetime):
        errors["until"] = "A date is needed (YYYY-MM-DD)."
    elif until <= today:
        errors["until"] = "Pick a date after today."
    elif until > today + dt.timedelta(days=max_days):
        errors["until"] = f"At most {max_days} days ahead (until {today + dt.timedelta(days=max_days)})."
    if errors:
        first = next(iter(errors.values()))
        raise InvalidInput(f"The snooze was not saved: {first}", fields=errors)
    now = timezone.now()
    with transaction.atomic():
        deal = lock_opportunity(opportunity)
        require_change(actor, deal)
        if deal.stage.kind != StageKind.OPEN:
            raise InvalidInput(
                f"“{deal.name}” is closed: only open deals can be snoozed.",
                fields={"until": "Only open deals can be snoozed."},
            )
        # One snooze decision at a time per rep, so two at once cannot both take the last slot.
        list(SalesProfile.objects.select_for_update().filter(user_id=deal.owner_id))
        current = active_snoozes(today).filter(opportunity__owner_id=deal.owner_id)
        others = current.exclude(opportunity=deal).count()
        if others >= max_active:
            owner = deal.owner
            who = (
                "You already have"
                if getattr(actor, "pk", None) == owner.pk
                else (f"{owner.get_full_name() or owner.username} already has")
            )
            raise InvalidInput(
                f"{who} {others} snoozed deals, the most the policy allows ({max_active}). "
                "Cancel one, or deal with this one.",
                fields={"until": f"At most {max_active} snoozed deals per rep."},
            )
        replaced = list(current.filter(opportunity=deal).values_list("pk", flat=True))
        if replaced:
            Snooze.objects.filter(pk__in=replaced).update(
                cancelled_at=now, cancelled_by=actor if getattr(actor, "pk", None) else None
            )
        snooze = Snooze.objects.create(
            opportunity=deal,
            until=until,
            reason=reason,
            created_by=actor if getattr(actor, "pk", None) else None,
            created_at=now,
        )
        hooks.emit(
            hooks.WriteEvent(
                "snooze", "create", [snooze.pk], frozenset({"until", "reason"}), getattr(actor, "pk", None),
                via, now, extra={"opportunity_id": deal.pk, "replaced": replaced},
            )
        )  # fmt: skip
        audit.record(
            actor,
            "snooze.created",
            snooze,
            {"opportunity": deal.pk, "until": until.isoformat(), "reason": reason, "replaced": replaced},
        )
        _reevaluate(deal.pk, actor, via, f"snoozed until {until.isoformat()}: {reason}")
    return snooze


def cancel_snooze(actor, snooze: Snooze | int, *, via: str = Via.FORM) -> Snooze:
    """End a snooze now (it stays on record). The deal's stale clocks count again at once."""
    pk = snooze.pk if isinstance(snooze, Snooze) else snooze
    now = timezone.now()
    with transaction.atomic():
        try:
            locked = Snooze.objects.select_for_update().select_related("opportunity").get(pk=pk)
        except Snooze.DoesNotExist:
            raise NotFound("That snooze does not exist.") from None
        require_change(actor, locked.opportunity)
        if locked.cancelled_at is not None:
            raise InvalidInput("This snooze was already cancelled.")
        if locked.until < timezone.localdate():
            raise InvalidInput("This snooze has already ended.")
        locked.cancelled_at = now
        locked.cancelled_by = actor if getattr(actor, "pk", None) else None
        locked.save(update_fields=["cancelled_at", "cancelled_by"])
        hooks.emit(
            hooks.WriteEvent(
                "snooze", "cancel", [locked.pk], frozenset({"cancelled_at"}), getattr(actor, "pk", None),
                via, now, extra={"opportunity_id": locked.opportunity_id},
            )
        )  # fmt: skip
        audit.record(actor, "snooze.cancelled", locked, {"opportunity": locked.opportunity_id})
        _reevaluate(locked.opportunity_id, actor, via, "snooze cancelled")
    return locked
