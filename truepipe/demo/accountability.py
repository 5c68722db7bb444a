"""The demo's managers at work on the accountability loop, day by day during the back-fill.

- Maria, the rainmaker's manager, waives every consequence Rick gets ("he is carrying the
  quarter") and applies everyone else's: the fairness audit singles her out.
- Nina forgets two consequences in three: they pass their deadline, escalate to Victoria as
  unenforced, and Victoria applies them herself two days later; Nina is reported upward.
- Marcus, and Maria for her other reps, apply each consequence two days after it is found.
- At the end, most people acknowledge the policy (two do not), and the latest offenses see
  one dispute upheld (the offense is overturned) and one rejected.

Everything goes through the accountability services, as the named managers.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from truepipe.accountability.models import Consequence, ConsequenceState, Offense, OffenseStatus
from truepipe.accountability.services import (
    acknowledge_offense,
    acknowledge_policy,
    apply_consequence,
    dispute_offense,
    resolve_dispute,
    waive_consequence,
)
from truepipe.core.errors import ServiceError
from truepipe.people.models import Role, SalesProfile

LENIENT_WITH = {"maria": {"rick"}}
FORGETFUL = {"nina"}
NOT_ACKNOWLEDGED = {"rick", "tariq"}
NOTES = {
    "warning": "Written warning sent; coaching conversation held in our 1:1.",
    "expense_hold": "Finance told: phone, fuel and entertainment claims on hold.",
    "performance_review": "Formal review opened with HR.",
}


def managers_act(day: dt.date) -> int:
    """Each pending consequence, as its manager would handle it on this day. Returns decisions."""
    decided = 0
    pending = Consequence.objects.filter(state=ConsequenceState.PENDING).select_related(
        "offense__rep", "owner", "escalated_to"
    )
    for c in pending.order_by("pk"):
        age = (day - c.offense.day).days
        rep, owner = c.offense.rep.username, c.owner.username if c.owner else ""
        try:
            if c.escalated_at is not None:
                if c.escalated_to and (day - timezone.localtime(c.escalated_at).date()).days >= 2:
                    apply_consequence(
                        c.escalated_to, c, "Stepped in: applied after it went unenforced.", on=day
                    )
                    decided += 1
            elif rep in LENIENT_WITH.get(owner, ()):
                if age >= 1:
                    waive_consequence(c.owner, c, "Rick is carrying the quarter; we will talk after close.")
                    decided += 1
            elif owner in FORGETFUL and c.pk % 3 != 0:
                continue  # forgotten: it will pass its deadline and escalate
            elif c.owner and age >= 2:
                apply_consequence(c.owner, c, NOTES.get(c.action, "Done."), on=day)
                decided += 1
        except ServiceError:
            continue  # e.g. disputed meanwhile
    return decided


def finish(now: dt.datetime) -> None:
    """Acknowledgements, and two disputes on the latest offenses (one upheld, one rejected), as of
    the demo's now."""
    for profile in SalesProfile.objects.filter(role__in=[Role.REP, Role.MANAGER]).select_related("user"):
        if profile.user.username not in NOT_ACKNOWLEDGED:
            acknowledge_policy(profile.user)
    recent = (
        Offense.objects.filter(status=OffenseStatus.ACTIVE, detected_at__gte=now - dt.timedelta(days=6))
        .exclude(rep__username__in=LENIENT_WITH["maria"])
        .select_related("rep__profile__manager")
        .order_by("rep__username")
    )
    outcomes = [
        (True, "Two of those deals were handed to me from a departing colleague that week.",
         "Checked the handover: the deals were reassigned on Monday. Upheld."),
        (False, "I was travelling most of the week.",
         "Travel is not an exception under the policy: the deals were stale before the trip."),
    ]  # fmt: skip
    for offense in recent:
        if not outcomes:
            break
        manager = offense.rep.profile.manager
        if manager is None:
            continue
        upheld, reason, answer = outcomes[0]
        try:
            acknowledge_offense(offense.rep, offense)
            dispute = dispute_offense(offense.rep, offense, reason, now=now)
            resolve_dispute(manager, dispute, upheld=upheld, note=answer, now=now)
        except ServiceError:
            continue
        outcomes.pop(0)
