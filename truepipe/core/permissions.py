"""Write-side permission checks used by every service. Visibility rules live in visibility.py."""

from __future__ import annotations

from django.db.models import Model

from truepipe.core.errors import NotAllowed
from truepipe.core.visibility import assignable_owners, can_change, can_create, visible

# actor=None means the system itself (the CLI run by an operator, the demo generator,
# scheduled jobs): it may write anything. Web and API requests always pass a user.
SYSTEM = None


def require_create(actor) -> None:
    if actor is not SYSTEM and not can_create(actor):
        raise NotAllowed("Your role can read records but not create them.")


def require_change(actor, obj: Model) -> None:
    if actor is not SYSTEM and not can_change(actor, obj):
        raise NotAllowed(f"You may not change {type(obj)._meta.verbose_name} “{obj}”.")


def require_assignable(actor, owner) -> None:
    if actor is SYSTEM or owner is None:
        return
    if not assignable_owners(actor).filter(pk=owner.pk).exists():
        raise NotAllowed(
            f"You may not give records to {owner.get_full_name() or owner.username}: "
            "only to yourself or people who report to you.",
            fields={"owner": "Not someone you may assign records to."},
        )


def require_visible(actor, obj: Model | None, field: str) -> None:
    if actor is SYSTEM or obj is None:
        return
    if not visible(actor, type(obj)).filter(pk=obj.pk).exists():
        raise NotAllowed(
            f"You cannot see {type(obj)._meta.verbose_name} “{obj}”.", fields={field: "Not visible to you."}
        )
