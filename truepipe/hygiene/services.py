"""Writes people make to the discipline record (the engine's own writes live in engine.py)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.visibility import role_of
from truepipe.hygiene.models import Violation, ViolationStatus
from truepipe.people.models import Role


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
    return locked
