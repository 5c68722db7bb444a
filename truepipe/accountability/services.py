"""What people decide in the accountability loop, each decision also in the audit log.

A manager applies or waives a consequence (a reason is mandatory to waive); a rep
acknowledges an offense or disputes it within the window; the rep's manager (or
anyone above, or an admin) resolves the dispute. An upheld dispute overturns the
offense and everything that followed from it: the rep's later offenses in the
window move down the ladder, and their consequences are replaced by the right step.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from truepipe.accountability.models import (
    Consequence,
    ConsequenceState,
    Dispute,
    DisputeState,
    Offense,
    OffenseStatus,
    PolicyAcknowledgement,
)
from truepipe.accountability.offenses import consequence_data, create_consequences
from truepipe.audit import log as audit
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.visibility import role_of
from truepipe.hygiene.policy import current_policy
from truepipe.notify.send import hooks as notify_hooks
from truepipe.notify.send import notify
from truepipe.people.models import Role


def _above(actor, rep_id: int) -> bool:
    """Whether the actor manages the rep, at any depth."""
    if role_of(actor) != Role.MANAGER or actor.pk == rep_id:
        return False
    from truepipe.people.models import SalesProfile

    path = actor.profile.path or f"/{actor.pk}/"
    rep_path = SalesProfile.objects.filter(user_id=rep_id).values_list("path", flat=True).first() or ""
    return rep_path.startswith(path)


def can_decide(actor, consequence: Consequence) -> bool:
    """Apply or waive: the owner, whoever it escalated to, anyone above the rep, or an admin;
    never the rep."""
    rep_id = consequence.offense.rep_id
    if actor is None or actor.pk == rep_id:
        return False
    if role_of(actor) == Role.ADMIN:
        return True
    return actor.pk in (consequence.owner_id, consequence.escalated_to_id) or _above(actor, rep_id)


def can_resolve(actor, dispute: Dispute) -> bool:
    """The rep's manager (or anyone above them, or an admin); never the rep."""
    rep_id = dispute.offense.rep_id
    if actor is None or actor.pk == rep_id:
        return False
    return role_of(actor) == Role.ADMIN or _above(actor, rep_id)


def _locked(consequence: Consequence | int) -> Consequence:
    pk = consequence.pk if isinstance(consequence, Consequence) else consequence
    return Consequence.objects.select_for_update().select_related("offense").get(pk=pk)


def _require_pending(actor, consequence: Consequence, verb: str, done: str) -> None:
    if not can_decide(actor, consequence):
        raise NotAllowed(f"Only the rep's manager, someone above them or an admin can {verb} a consequence.")
    if consequence.state != ConsequenceState.PENDING:
        state = consequence.get_state_display().lower()
        raise InvalidInput(f"This consequence is {state}; only a pending one can be {done}.")


def apply_consequence(
    actor, consequence: Consequence | int, note: str, on: dt.date | None = None
) -> Consequence:
    """Record that the consequence was carried out, when, and how."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = _locked(consequence)
        _require_pending(actor, locked, "apply", "applied")
        if not note:
            raise InvalidInput("Say what was done.", fields={"note": "A note is required."})
        locked.state = ConsequenceState.APPLIED
        locked.applied_on = on or timezone.localdate()
        _decided(locked, actor, note)
        audit.record(
            actor, "consequence.applied", locked, {"note": note, "on": locked.applied_on.isoformat()}
        )
        _tell_rep(locked, "consequence.applied", f"Applied: {locked.name}", note)
        for audience in locked.notify:
            # Finance holds the expenses, HR opens the review: their systems act on this event.
            notify_hooks(
                f"consequence.for_{audience}",
                f"{audience.upper()}: {locked.name} for {_rep_name(locked)} from {locked.applied_on:%b %d}",
                f"/accountability/offenses/{locked.offense_id}/",
                {**_for_outside(locked), "note": note},
            )
    return locked


def waive_consequence(actor, consequence: Consequence | int, reason: str) -> Consequence:
    """Decide, with a reason, not to carry it out. Waivers are counted in the fairness audit."""
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = _locked(consequence)
        _require_pending(actor, locked, "waive", "waived")
        if not reason:
            raise InvalidInput("Say why it is waived.", fields={"reason": "A reason is required."})
        locked.state = ConsequenceState.WAIVED
        _decided(locked, actor, reason)
        audit.record(actor, "consequence.waived", locked, {"reason": reason})
        _tell_rep(locked, "consequence.waived", f"Waived: {locked.name}", reason)
    return locked


def _rep_name(consequence: Consequence) -> str:
    rep = consequence.offense.rep
    return rep.get_full_name() or rep.username


def _for_outside(consequence: Consequence) -> dict:
    """What finance or HR needs to act, without opening truepipe."""
    rep = consequence.offense.rep
    return {
        "consequence": consequence.pk,
        "action": consequence.action,
        "name": consequence.name,
        "rep": {"id": rep.pk, "username": rep.username, "name": _rep_name(consequence), "email": rep.email},
        "level": consequence.level,
        "applied_on": consequence.applied_on.isoformat() if consequence.applied_on else None,
        "hold_days": consequence.hold_days,
        "hold_until": (consequence.applied_on + dt.timedelta(days=consequence.hold_days)).isoformat()
        if consequence.applied_on and consequence.hold_days
        else None,
    }


def _tell_rep(consequence: Consequence, event: str, title: str, note: str) -> None:
    notify(
        [consequence.offense.rep_id],
        event,
        title,
        note,
        f"/accountability/offenses/{consequence.offense_id}/",
        {"consequence": consequence.pk},
    )


def _decided(consequence: Consequence, actor, note: str) -> None:
    consequence.decided_by = actor
    consequence.decided_at = timezone.now()
    consequence.note = note
    consequence.save(update_fields=["state", "applied_on", "decided_by", "decided_at", "note"])


def acknowledge_offense(actor, offense: Offense | int) -> Offense:
    """The rep says they have seen it (once; disputing stays possible within the window)."""
    with transaction.atomic():
        locked = Offense.objects.select_for_update().get(
            pk=offense.pk if isinstance(offense, Offense) else offense
        )
        if actor is None or actor.pk != locked.rep_id:
            raise NotAllowed("Only the rep can acknowledge their own offense.")
        if locked.acknowledged_at is None:
            locked.acknowledged_at = timezone.now()
            locked.save(update_fields=["acknowledged_at"])
            audit.record(actor, "offense.acknowledged", locked, {"week": locked.week, "level": locked.level})
    return locked


def dispute_deadline(offense: Offense) -> dt.datetime:
    days = current_policy().accountability.dispute_days
    return offense.detected_at + dt.timedelta(days=days)


def dispute_offense(actor, offense: Offense | int, reason: str, *, now: dt.datetime | None = None) -> Dispute:
    """The rep contests an offense, with a reason, within the window; its consequence waits.
    (`now`: the moment it happens, for back-fills; default the clock.)"""
    reason = (reason or "").strip()
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Offense.objects.select_for_update(of=("self",))
            .select_related("rep__profile")
            .get(pk=offense.pk if isinstance(offense, Offense) else offense)
        )
        if actor is None or actor.pk != locked.rep_id:
            raise NotAllowed("Only the rep can dispute their own offense.")
        if locked.status != OffenseStatus.ACTIVE:
            raise InvalidInput("This offense was overturned already.")
        if now > dispute_deadline(locked):
            raise InvalidInput(
                f"The window to dispute closed on {timezone.localtime(dispute_deadline(locked)):%b %d}."
            )
        if not reason:
            raise InvalidInput("Say why the offense is wrong.", fields={"reason": "A reason is required."})
        if locked.disputes.filter(state=DisputeState.OPEN).exists():
            raise InvalidInput("This offense is already disputed.")
        consequence = (
            Consequence.objects.select_for_update()
            .filter(offense=locked, replaced_by__isnull=True)
            .exclude(state=ConsequenceState.OVERTURNED)
            .order_by("-pk")
            .first()
        )
        if consequence is None or consequence.state == ConsequenceState.WAIVED:
            raise InvalidInput("Nothing follows from this offense any more: there is nothing to dispute.")
        dispute = Dispute.objects.create(
            offense=locked,
            consequence=consequence,
            raised_by=actor,
            reason=reason,
            previous_state=consequence.state,
            resolver_id=locked.rep.profile.manager_id,
            raised_at=now,
        )
        consequence.state = ConsequenceState.DISPUTED
        consequence.save(update_fields=["state"])
        audit.record(actor, "offense.disputed", locked, {"dispute": dispute.pk, "reason": reason})
        notify(
            [dispute.resolver_id],
            "offense.disputed",
            f"{locked.rep.get_full_name() or locked.rep.username} disputes offense {locked.week}",
            reason,
            "/accountability/#disputes",
            {"dispute": dispute.pk, "offense": locked.pk},
        )
    return dispute


def resolve_dispute(
    actor, dispute: Dispute | int, *, upheld: bool, note: str, now: dt.datetime | None = None
) -> Dispute:
    """Decide a dispute. Upheld: the offense is overturned with everything that followed from it.
    Rejected: the consequence goes back to where it was (its deadline moved by the days it waited)."""
    note = (note or "").strip()
    with transaction.atomic():
        locked = (
            Dispute.objects.select_for_update(of=("self",))
            .select_related("offense", "consequence")
            .get(pk=dispute.pk if isinstance(dispute, Dispute) else dispute)
        )
        if not can_resolve(actor, locked):
            raise NotAllowed("Only the rep's manager, someone above them or an admin can resolve a dispute.")
        if locked.state != DisputeState.OPEN:
            raise InvalidInput(f"This dispute was {locked.get_state_display().lower()} already.")
        if not note:
            raise InvalidInput("Say why.", fields={"note": "A note is required."})
        now = now or timezone.now()
        locked.state = DisputeState.UPHELD if upheld else DisputeState.REJECTED
        locked.resolved_by, locked.resolved_at, locked.resolution = actor, now, note
        locked.save(update_fields=["state", "resolved_by", "resolved_at", "resolution"])
        audit.record(actor, f"dispute.{locked.state}", locked, {"offense": locked.offense_id, "note": note})
        notify(
            [locked.offense.rep_id],
            f"dispute.{locked.state}",
            f"Your dispute of offense {locked.offense.week} was {locked.state}",
            note,
            f"/accountability/offenses/{locked.offense_id}/",
            {"dispute": locked.pk},
        )
        consequence = Consequence.objects.select_for_update().get(pk=locked.consequence_id)
        if upheld:
            overturn(actor, locked.offense, f"Dispute upheld: {note}")
        else:
            waited = (timezone.localtime(now).date() - timezone.localtime(locked.raised_at).date()).days
            while consequence.replaced_by_id is not None:  # re-levelled meanwhile: the live one
                consequence = Consequence.objects.select_for_update().get(pk=consequence.replaced_by_id)
            if consequence.state != ConsequenceState.DISPUTED:
                return locked  # an overturned or replaced consequence is not brought back
            consequence.state = locked.previous_state
            consequence.deadline += dt.timedelta(days=max(waited, 0))
            consequence.save(update_fields=["state", "deadline"])
            audit.record(
                actor, "consequence.restored", consequence,
                {"state": consequence.state, "deadline": consequence.deadline.isoformat()},
            )  # fmt: skip
    return locked


def overturn(actor, offense: Offense, why: str) -> list[Consequence]:
    """The offense stops counting; its consequence is overturned; the rep's later offenses in the
    window move down the ladder and get the right step instead. Returns the new consequences."""
    rules = current_policy().accountability
    now = timezone.now()
    offense = Offense.objects.select_for_update().get(pk=offense.pk)
    offense.status, offense.overturned_at = OffenseStatus.OVERTURNED, now
    offense.save(update_fields=["status", "overturned_at"])
    audit.record(actor, "offense.overturned", offense, {"why": why})
    _overturn_consequences(actor, Consequence.objects.filter(offense=offense), why)

    later = list(
        Offense.objects.select_for_update()
        .filter(
            rep_id=offense.rep_id,
            status=OffenseStatus.ACTIVE,
            day__gte=offense.day,
            day__lt=offense.day + dt.timedelta(days=rules.window_days),
        )
        .exclude(pk=offense.pk)
        .order_by("day", "pk")
    )
    moved: list[Offense] = []
    for each in later:
        level = (
            1
            + Offense.objects.filter(
                rep_id=each.rep_id,
                status=OffenseStatus.ACTIVE,
                day__gt=each.day - dt.timedelta(days=rules.window_days),
            )
            .filter(day__lt=each.day)
            .count()
        )
        if level != each.level:
            audit.record(
                actor, "offense.releveled", each, {"from": each.level, "to": level, "because": offense.pk}
            )
            each.level = level
            each.save(update_fields=["level"])
            moved.append(each)
    if not moved:
        return []
    old = list(
        Consequence.objects.filter(offense__in=moved, replaced_by__isnull=True).exclude(
            state=ConsequenceState.OVERTURNED
        )
    )
    _overturn_consequences(actor, old, f"Moved down the ladder: offense {offense.week} was overturned.")
    new = create_consequences(moved, rules, timezone.localdate())
    by_offense = {c.offense_id: c for c in new}
    for consequence in old:
        consequence.replaced_by = by_offense.get(consequence.offense_id)
        consequence.save(update_fields=["replaced_by"])
    # A re-levelled offense still under dispute: its new step waits for the decision too.
    for dispute in Dispute.objects.filter(offense__in=moved, state=DisputeState.OPEN).select_for_update():
        replacement = by_offense.get(dispute.offense_id)
        if replacement is not None:
            replacement.state = ConsequenceState.DISPUTED
            replacement.save(update_fields=["state"])
            dispute.consequence = replacement
            dispute.previous_state = ConsequenceState.PENDING
            dispute.save(update_fields=["consequence", "previous_state"])
    audit.record_many(actor, [("consequence.created", c, consequence_data(c)) for c in new])
    return new


def _overturn_consequences(actor, consequences, why: str) -> None:
    for consequence in consequences:
        if consequence.state == ConsequenceState.OVERTURNED:
            continue
        previous = consequence.state
        consequence.state = ConsequenceState.OVERTURNED
        consequence.decided_by, consequence.decided_at, consequence.note = actor, timezone.now(), why
        consequence.save(update_fields=["state", "decided_by", "decided_at", "note"])
        audit.record(actor, "consequence.overturned", consequence, {"was": previous, "why": why})


def acknowledge_policy(actor, version: int | None = None) -> PolicyAcknowledgement:
    """The person has read this version of the policy (default: the current one)."""
    if role_of(actor) is None:
        raise NotAllowed("Sign in to acknowledge the policy.")
    number = current_policy().version if version is None else version
    with transaction.atomic():
        ack, created = PolicyAcknowledgement.objects.get_or_create(user=actor, version=number)
        if created:
            audit.record(actor, "policy.acknowledged", f"policyversion:{number}", {"version": number})
    return ack
