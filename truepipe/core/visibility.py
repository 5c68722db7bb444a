"""Who may see and change what. The only place that decides it.

Every read of accounts, contacts, opportunities and activities, from a page,
the API, search, export or a report, starts from `visible(user, Model)`;
every write asks `can_change(user, obj)` (through the service layer).

Roles:
- rep: their own records (and accounts/contacts tied to their own deals);
- manager: everything owned by anyone in their reporting subtree, any depth;
- exec: reads everything, changes nothing;
- admin: reads and changes everything;
- delivery: reads won opportunities, their accounts, contacts and activities;
- records about a person (a model's `VISIBLE_BY` names the person: offenses, consequences,
  disputes, captured mail, contracts): that person and their managers read them, exec and admin
  read all, delivery none unless the model says `VISIBLE_TO_DELIVERY` (signed contracts);
- anonymous or no profile: nothing.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from django.db.models import Exists, Model, OuterRef, Q, QuerySet

from truepipe.accounts.models import Account, Contact
from truepipe.activities.models import Activity
from truepipe.people.models import Role, SalesProfile
from truepipe.pipeline.models import Opportunity, StageKind

M = TypeVar("M", bound=Model)
Action = Literal["view", "change"]


def role_of(user) -> str | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    profile = getattr(user, "_profile_cache", None)
    if profile is None:
        try:
            profile = user.profile
        except SalesProfile.DoesNotExist:
            return None
        user._profile_cache = profile
    return profile.role


# Above this many people a manager's subtree is matched by a subquery instead of a list of ids.
SUBTREE_LIST_MAX = 10_000


def subtree_ids(user) -> list[int] | QuerySet:
    """The ids of the people in a manager's reporting subtree (themselves included).

    A literal list lets both databases plan well: a small team's deals come from the owner
    index, a VP's first page from the close-date index without sorting every deal. An
    enormous subtree falls back to a subquery (the query-parameter limits of SQLite).
    """
    path = user.profile.path or f"/{user.pk}/"
    people = SalesProfile.objects.filter(path__startswith=path).values_list("user_id", flat=True)
    ids = list(people[: SUBTREE_LIST_MAX + 1])
    return people if len(ids) > SUBTREE_LIST_MAX else ids


def _owner_q(user, field: str, subtree: list[int] | QuerySet | None = None) -> Q:
    """Records whose `field` (a user FK path) is this user or, for a manager, anyone below."""
    if role_of(user) == Role.MANAGER:
        return Q(**{f"{field}__in": subtree_ids(user) if subtree is None else subtree})
    return Q(**{field: user.pk})


def _won_opportunities() -> QuerySet[Opportunity]:
    return Opportunity.objects.filter(deleted_at__isnull=True, stage__kind=StageKind.WON)


def visible(user, model: type[M], action: Action = "view") -> QuerySet[M]:
    """The queryset of `model` rows that `user` may view (or change)."""
    qs: QuerySet = model._default_manager.all()
    if hasattr(model, "deleted_at"):
        qs = qs.filter(deleted_at__isnull=True)
    role = role_of(user)
    if role is None:
        return qs.none()
    if role == Role.ADMIN:
        return qs
    if role == Role.EXEC:
        return qs if action == "view" else qs.none()
    if role == Role.DELIVERY:
        if action != "view":
            return qs.none()
        if getattr(model, "VISIBLE_TO_DELIVERY", False):  # e.g. signed contracts: delivery staffs them
            return qs
        won = _won_opportunities()
        if model is Opportunity:
            return qs.filter(stage__kind=StageKind.WON)
        if model is Account:
            return qs.filter(Exists(won.filter(account=OuterRef("pk"))))
        if model is Contact:
            return qs.filter(Exists(won.filter(account=OuterRef("account_id"))))
        if model is Activity:
            return qs.filter(Exists(won.filter(pk=OuterRef("opportunity_id"))))
        return qs.none()

    # Rep and manager: ownership along the reporting line.
    subtree = subtree_ids(user) if role == Role.MANAGER else None  # one query, reused below

    def owned(field: str) -> Q:
        return _owner_q(user, field, subtree)

    # Records about a person (offenses, consequences, disputes): the person and their managers
    # read them; changes go through their services, which say who decides what.
    about = getattr(model, "VISIBLE_BY", None)
    if about:
        return qs.filter(owned(about)) if action == "view" else qs.none()

    if model is Opportunity:
        return qs.filter(owned("owner"))
    if model is Account:
        if action == "change":
            return qs.filter(owned("owner"))
        deals = Opportunity.objects.filter(deleted_at__isnull=True).filter(owned("owner"))
        return qs.filter(owned("owner") | Exists(deals.filter(account=OuterRef("pk"))))
    if model is Contact:
        if action == "change":
            return qs.filter(owned("owner"))
        deals = Opportunity.objects.filter(deleted_at__isnull=True).filter(owned("owner"))
        owned_accounts = Account.objects.filter(owned("owner"))
        return qs.filter(
            owned("owner")
            | Exists(owned_accounts.filter(pk=OuterRef("account_id")))
            | Exists(deals.filter(account=OuterRef("account_id")))
        )
    if model is Activity:
        if action == "change":
            return qs.filter(owned("owner"))
        deals = Opportunity.objects.filter(owned("owner"))
        return qs.filter(owned("owner") | Exists(deals.filter(pk=OuterRef("opportunity_id"))))
    return qs.none()


def open_deal_owners(user) -> set[int] | None:
    """Whose open deals `user` sees, for set-based matching of many people at once (capture).

    None means everyone's (admin, exec); otherwise the owners' ids: a rep's own, a manager's
    subtree, nobody for delivery (who sees only won deals) or anyone without a role. The same
    answer as `visible(user, Opportunity)` restricted to open deals, without a query per person.
    """
    role = role_of(user)
    if role in (Role.ADMIN, Role.EXEC):
        return None
    if role == Role.MANAGER:
        return set(subtree_ids(user))
    if role == Role.REP:
        return {user.pk}
    return set()


def can_view(user, obj: Model) -> bool:
    return visible(user, type(obj)).filter(pk=obj.pk).exists()


def can_change(user, obj: Model) -> bool:
    return visible(user, type(obj), "change").filter(pk=obj.pk).exists()


def can_create(user) -> bool:
    """Reps, managers and admins create records; exec and delivery only read."""
    return role_of(user) in {Role.REP, Role.MANAGER, Role.ADMIN}


def assignable_owners(user) -> QuerySet:
    """The users this user may make the owner of a record: themselves, their subtree, or anyone (admin)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    qs = User.objects.filter(is_active=True, profile__isnull=False)
    role = role_of(user)
    if role == Role.ADMIN:
        return qs
    if role == Role.MANAGER:
        return qs.filter(profile__path__startswith=user.profile.path or f"/{user.pk}/")
    if role == Role.REP:
        return qs.filter(pk=user.pk)
    return qs.none()


def visible_users(user) -> QuerySet:
    """People this user may see in lists and filters (same reach as their records)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    qs = User.objects.filter(profile__isnull=False)
    role = role_of(user)
    if role is None:
        return qs.none()
    if role in {Role.ADMIN, Role.EXEC, Role.DELIVERY}:
        return qs
    if role == Role.MANAGER:
        return qs.filter(profile__path__startswith=user.profile.path or f"/{user.pk}/")
    return qs.filter(pk=user.pk)
