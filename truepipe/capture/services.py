"""The write path of capture's own decisions: triage, proposed contacts, privacy, addresses.

Each function checks who may decide, then writes through the services of the records it
touches (activities, contacts), so history, rules and re-evaluation run as for any write.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from truepipe.accounts import services as account_services
from truepipe.accounts.services import normalise_domain, normalise_email
from truepipe.activities import services as activity_services
from truepipe.activities.models import Activity
from truepipe.audit import log as audit
from truepipe.capture.models import (
    CaptureAddress,
    CapturedItem,
    ContactProposal,
    ExcludedDomain,
    ItemStatus,
    PrivateThread,
    ProposalStatus,
)
from truepipe.core.errors import InvalidInput, NotAllowed, NotFound
from truepipe.core.visibility import can_change, visible
from truepipe.pipeline.models import Opportunity


def _item(actor, item: CapturedItem | int) -> CapturedItem:
    pk = item.pk if isinstance(item, CapturedItem) else item
    found = visible(actor, CapturedItem).select_related("activity").filter(pk=pk).first()
    if found is None:
        raise NotFound("That captured item does not exist or is not yours.")
    return found


def decide_triage(
    actor, item: CapturedItem | int, opportunity: Opportunity | None, *, via: str
) -> CapturedItem:
    """Put a captured activity on the deal the rep chose (or on none), in one click."""
    with transaction.atomic():
        found = _item(actor, item)
        found = CapturedItem.objects.select_for_update().get(pk=found.pk)
        if found.status != ItemStatus.TRIAGE or found.activity is None:
            raise InvalidInput("That item is not waiting in triage any more.")
        if not can_change(actor, found.activity):
            raise NotAllowed("Only the rep whose mail it is, or their manager, chooses its deal.")
        if opportunity is not None and not visible(actor, Opportunity).filter(pk=opportunity.pk).exists():
            raise NotFound("That deal does not exist or is not yours.")
        changes: dict = {"opportunity": opportunity}
        if opportunity is not None:
            changes["account"] = opportunity.account
        activity_services.update_activity(actor, found.activity, changes, via=via)
        found.status = ItemStatus.LOGGED
        found.reason = "deal chosen in triage" if opportunity else "no deal (chosen in triage)"
        found.decided_by = actor
        found.decided_at = timezone.now()
        found.save(update_fields=["status", "reason", "decided_by", "decided_at"])
    return found


def accept_proposal(
    actor, proposal: ContactProposal | int, *, first_name: str = "", last_name: str = "", via: str
):  # type: ignore[no-untyped-def]
    """Add a proposed address as a contact of its account (names from the mail unless given)."""
    pk = proposal.pk if isinstance(proposal, ContactProposal) else proposal
    with transaction.atomic():
        found = visible(actor, ContactProposal).select_for_update().filter(pk=pk).first()
        if found is None:
            raise NotFound("That proposal does not exist or is not yours.")
        if found.status != ProposalStatus.OPEN:
            raise InvalidInput("That proposal was already decided.")
        if not (first_name or last_name):
            parts = found.display_name.replace('"', "").split()
            first_name, last_name = (
                (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", "".join(parts))
            )
        contact = account_services.create_contact(
            actor,
            first_name=first_name,
            last_name=last_name,
            account=found.account,
            emails=[found.email],
            via=via,
        )
        found.status, found.contact = ProposalStatus.ACCEPTED, contact
        found.save(update_fields=["status", "contact"])
    return contact


def dismiss_proposal(actor, proposal: ContactProposal | int) -> None:
    pk = proposal.pk if isinstance(proposal, ContactProposal) else proposal
    found = visible(actor, ContactProposal).filter(pk=pk, status=ProposalStatus.OPEN).first()
    if found is None:
        raise NotFound("That proposal does not exist, is not yours or was already decided.")
    ContactProposal.objects.filter(pk=found.pk).update(status=ProposalStatus.DISMISSED)


def mark_private(actor, item: CapturedItem | int, *, via: str) -> int:
    """Make a conversation private: its activities are blanked and removed, later messages ignored.

    Only the person whose mail it is may do this (not their manager): it is their privacy.
    Returns how many activities were removed.
    """
    found = _item(actor, item)
    if found.owner_id != getattr(actor, "pk", None):
        raise NotAllowed("Only the person whose mail it is can mark it private.")
    key = found.thread_key or found.dedup_key
    removed = 0
    with transaction.atomic():
        PrivateThread.objects.get_or_create(user=actor, thread_key=key)
        items = CapturedItem.objects.filter(Q(owner=actor, thread_key=key) | Q(pk=found.pk))
        ids = list(items.select_for_update().values_list("pk", flat=True))
        activities = Activity.objects.filter(captured__pk__in=ids, deleted_at__isnull=True)
        for activity in activities.order_by("pk"):
            activity_services.update_activity(actor, activity, {"subject": "Private", "body": ""}, via=via)
            activity_services.delete_activity(actor, activity, via=via)
            removed += 1
        CapturedItem.objects.filter(pk__in=ids).update(
            status=ItemStatus.IGNORED, reason="private thread", subject="", candidates=[]
        )
    return removed


def add_address(actor, email: str) -> CaptureAddress:
    address = normalise_email(email)
    from django.contrib.auth import get_user_model

    # Someone else's login address would make their mail (and the drop-box's trust) this person's.
    if get_user_model().objects.filter(email__iexact=address).exclude(pk=actor.pk).exists():
        raise InvalidInput(f"{address} is someone else's login address.", fields={"email": "Taken."})
    taken = CaptureAddress.objects.filter(email=address).first()
    if taken is not None:
        if taken.user_id == actor.pk:
            return taken
        raise InvalidInput(f"{address} is already registered by someone else.", fields={"email": "Taken."})
    return CaptureAddress.objects.create(user=actor, email=address)


def remove_address(actor, email: str) -> None:
    CaptureAddress.objects.filter(user=actor, email=email.strip().lower()).delete()


def exclude_domain(actor, domain: str, *, everyone: bool = False) -> ExcludedDomain:
    """A rep's personal domain (or, for an admin with `everyone`, a domain nobody's mail is logged from)."""
    from truepipe.core.visibility import role_of
    from truepipe.people.models import Role

    if not everyone:
        # One way to call a domain personal: the shadow pipeline's "not a customer" (refused for a
        # known account's domain, so the unlogged-deal rule cannot be silenced; audited).
        from truepipe.capture.shadow import exclude_domain as not_a_customer

        return not_a_customer(actor, actor, domain, note="excluded on the capture page")
    value = normalise_domain(domain)
    if role_of(actor) != Role.ADMIN:
        raise NotAllowed("Only an admin excludes a domain for everyone.")
    with transaction.atomic():
        found, _ = ExcludedDomain.objects.get_or_create(user=None, domain=value)
        audit.record(actor, "capture.domain_excluded", found, {"rep": None, "domain": value})
    return found


def include_domain(actor, domain: str, *, everyone: bool = False) -> None:
    from truepipe.core.visibility import role_of
    from truepipe.people.models import Role

    if everyone and role_of(actor) != Role.ADMIN:
        raise NotAllowed("Only an admin changes the domains excluded for everyone.")
    ExcludedDomain.objects.filter(user=None if everyone else actor, domain=domain.strip().lower()).delete()


def triage_for(user):  # type: ignore[no-untyped-def]
    """What waits in triage for this user (a manager sees their team's), oldest first."""
    return (
        visible(user, CapturedItem)
        .filter(status=ItemStatus.TRIAGE, activity__deleted_at__isnull=True)
        .select_related("activity", "activity__account", "owner")
        .order_by("captured_at", "pk")
    )


def candidate_deals(user, items) -> dict[int, Opportunity]:  # type: ignore[no-untyped-def]
    """The deals named by these items' candidates that `user` may see, in one query (a deal
    that changed hands since the mail was captured is not shown)."""
    ids = {pk for item in items for pk in item.candidates}
    deals = visible(user, Opportunity).filter(pk__in=ids).select_related("account", "stage", "owner")
    return {o.pk: o for o in deals}
