"""Template context: what the header offers this person (their role, read once per page)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from truepipe.core.visibility import can_create, role_of
from truepipe.people.models import Role


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    role = role_of(user)
    return {
        "nav_writes": can_create(user),  # log a touch, one-line update, capture
        "nav_contracts": role == Role.DELIVERY,  # delivery's first page; others reach it from Capture
    }
