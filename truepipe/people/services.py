"""The one write path for people: profiles, reporting lines, tokens."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat, Substr
from django.utils import timezone

from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.visibility import role_of
from truepipe.people.models import ApiToken, Quota, Role, SalesProfile, Team, hash_token

User = get_user_model()


def _require_admin(actor) -> None:
    if actor is not None and role_of(actor) != Role.ADMIN:
        raise NotAllowed("Only an admin may manage people.")


def _check_manager(user, manager) -> None:
    if manager is None:
        return
    if manager.pk == user.pk:
        raise InvalidInput("Nobody can be their own manager.", fields={"manager": "Not themself."})
    manager_path = manager.profile.path if hasattr(manager, "profile") else ""
    if user.pk and f"/{user.pk}/" in manager_path:
        raise InvalidInput(
            f"{manager} reports to {user} already: that would make a loop.",
            fields={"manager": "Would make a loop."},
        )


def create_person(
    actor,
    *,
    username: str,
    email: str = "",
    full_name: str = "",
    role: str = Role.REP,
    manager=None,
    team: Team | str | None = None,
    password: str | None = None,
    password_hash: str | None = None,
    time_zone: str = "UTC",
    title: str = "",
    **extra: Any,
):
    """Create a user with a sales profile in one step.

    `password_hash` takes a value already made by django.contrib.auth.hashers.make_password
    (a user import, or the demo, which hashes its one shared password once instead of per user).
    """
    _require_admin(actor)
    username = (username or "").strip()
    if not username:
        raise InvalidInput("A username is needed.", fields={"username": "Required."})
    if role not in Role.values:
        raise InvalidInput(
            f"Role must be one of: {', '.join(Role.values)}.", fields={"role": "Unknown role."}
        )
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput(f"The username {username} is taken.", fields={"username": "Taken."})
    first, _, last = (full_name or "").strip().partition(" ")
    if isinstance(team, str):
        team = Team.objects.get_or_create(name=team.strip())[0] if team.strip() else None
    with transaction.atomic():
        user = User(
            username=username,
            email=(email or "").strip().lower(),
            first_name=first,
            last_name=last,
            is_staff=role == Role.ADMIN,
        )
        if password:
            user.set_password(password)
        elif password_hash:
            user.password = password_hash
        else:
            user.set_unusable_password()
        user.save()
        _check_manager(user, manager)
        profile = SalesProfile.objects.create(
            user=user, role=role, manager=manager, team=team, time_zone=time_zone, title=title, **extra
        )
        profile.path = _path_for(user, manager)
        profile.save(update_fields=["path"])
    return user


def _path_for(user, manager) -> str:
    base = manager.profile.path if manager is not None else "/"
    return f"{base}{user.pk}/"


def set_manager(actor, user, manager) -> None:
    """Move a person (and everyone below them) under a new manager."""
    _require_admin(actor)
    _check_manager(user, manager)
    with transaction.atomic():
        profile = SalesProfile.objects.select_for_update().get(user=user)
        old_path = profile.path
        new_path = _path_for(user, manager)
        profile.manager = manager
        profile.path = new_path
        profile.save(update_fields=["manager", "path"])
        # Re-root the whole subtree in one UPDATE.
        SalesProfile.objects.filter(path__startswith=old_path).exclude(pk=profile.pk).update(
            path=Concat(Value(new_path), Substr("path", len(old_path) + 1))
        )


def update_person(actor, user, changes: dict[str, Any]):
    _require_admin(actor)
    profile = user.profile
    with transaction.atomic():
        if "manager" in changes:
            set_manager(actor, user, changes.pop("manager"))
            profile.refresh_from_db()
        for name in ("role", "time_zone", "title", "working_days"):
            if name in changes:
                if name == "role" and changes[name] not in Role.values:
                    raise InvalidInput("Unknown role.", fields={"role": "Unknown role."})
                setattr(profile, name, changes.pop(name))
        if "team" in changes:
            team = changes.pop("team")
            if isinstance(team, str):
                team = Team.objects.get_or_create(name=team.strip())[0] if team.strip() else None
            profile.team = team
        profile.save()
        if "email" in changes:
            user.email = (changes.pop("email") or "").strip().lower()
        if "full_name" in changes:
            user.first_name, _, user.last_name = (changes.pop("full_name") or "").strip().partition(" ")
        if "is_active" in changes:
            user.is_active = bool(changes.pop("is_active"))
        user.is_staff = profile.role == Role.ADMIN or user.is_superuser
        user.save()
    if changes:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(changes))}.")
    return user


def set_quota(
    actor, user, *, period_start: date, period_end: date, amount: Decimal | int | str, currency: str = ""
) -> Quota:
    """Set one person's target for one period, replacing the amount if that period has one already."""
    from django.conf import settings

    _require_admin(actor)
    if period_end < period_start:
        raise InvalidInput("A quota period must end after it starts.", fields={"period_end": "Before start."})
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{amount!r} is not an amount.", fields={"amount": "Not a number."}) from None
    if not value.is_finite() or value < 0 or value >= Decimal("1e14"):
        raise InvalidInput("A quota is an amount of zero or more.", fields={"amount": "Out of range."})
    quota, _ = Quota.objects.update_or_create(
        user=user,
        period_start=period_start,
        period_end=period_end,
        defaults={"amount": value, "currency": (currency or settings.TRUEPIPE_DEFAULT_CURRENCY).upper()},
    )
    return quota


def create_token(actor, user, name: str = "default") -> tuple[ApiToken, str]:
    """Create an API token; the raw value is returned once and never stored."""
    if actor is not None and actor.pk != user.pk and role_of(actor) != Role.ADMIN:
        raise NotAllowed("You may only create tokens for yourself.")
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        user=user, name=name[:120] or "default", prefix=raw[:10], digest=hash_token(raw)
    )
    return token, raw


def revoke_token(actor, token: ApiToken) -> None:
    if actor is not None and actor.pk != token.user_id and role_of(actor) != Role.ADMIN:
        raise NotAllowed("You may only revoke your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def user_for_token(raw: str):
    """The active user a raw token belongs to, or None. Records when it was used."""
    if not raw or not raw.startswith("tp_") or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user", "user__profile")
        .filter(digest=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
