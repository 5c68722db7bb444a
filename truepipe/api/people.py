"""/users (the people you may see; admins manage them) and /tokens (your own API tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from truepipe.api import common
from truepipe.api.common import Id, actor, order, page
from truepipe.api.errors import ApiError
from truepipe.api.schemas import ERRORS, ListParams, PersonKey, Strict, UserRef, page_of
from truepipe.core.errors import NotAllowed
from truepipe.core.visibility import role_of, visible_users
from truepipe.people import services
from truepipe.people.models import ApiToken, Role

User = get_user_model()

users_router = Router(tags=["users"])
tokens_router = Router(tags=["tokens"])


class TeamRef(Schema):
    id: int
    name: str


class PersonOut(Schema):
    id: int
    username: str
    name: str
    email: str
    role: str
    manager: UserRef | None
    team: TeamRef | None
    title: str
    time_zone: str
    is_active: bool


class PersonFields(Strict):
    email: str | None = Field(None, max_length=254)
    full_name: str | None = Field(None, max_length=300)
    role: str | None = Field(None, max_length=16, description="rep, manager, admin, exec or delivery.")
    manager: PersonKey | None = Field(None, description="Their manager's id or username.")
    team: str | None = Field(None, max_length=120, description="A team name; created if new.")
    time_zone: str | None = Field(None, max_length=64)
    title: str | None = Field(None, max_length=120)


class PersonCreate(PersonFields):
    username: str = Field(max_length=150)
    password: str | None = Field(None, min_length=8, max_length=128)


class PersonPatch(PersonFields):
    is_active: bool | None = None


class PeopleFilters(ListParams):
    role: str | None = Field(None, max_length=16)
    team: str | None = Field(None, max_length=120, description="A team's name.")
    manager: str | None = Field(None, max_length=150, description="Direct reports of this id or username.")
    is_active: bool | None = None
    q: str | None = Field(None, max_length=150, description="Text in the username, name or e-mail.")


ORDERING = {"username": "username", "name": "last_name", "role": "profile__role", "id": "id"}


def people_queryset(user: Any) -> QuerySet:
    return visible_users(user).select_related("profile", "profile__manager", "profile__team")


def person_out(person: Any) -> dict[str, Any]:
    profile = person.profile
    return {
        "id": person.pk,
        "username": person.username,
        "name": person.get_full_name() or person.username,
        "email": person.email,
        "role": profile.role,
        "manager": common.user_ref_out(profile.manager),
        "team": {"id": profile.team.pk, "name": profile.team.name} if profile.team else None,
        "title": profile.title,
        "time_zone": profile.time_zone,
        "is_active": person.is_active,
    }


def _require_admin(user: Any) -> None:
    # The service checks this too; checking first keeps a non-admin from probing names via 400s.
    if role_of(user) != Role.ADMIN:
        raise NotAllowed("Only an admin may manage people.")


def _changes(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    changes = {
        name: value for name, value in data.items() if value is not None or name in ("manager", "team")
    }
    if "manager" in changes:
        changes["manager"] = common.person_ref(user, changes["manager"], "manager")
    if "team" in changes and changes["team"] is None:
        changes["team"] = ""
    return changes


@users_router.get("", response={200: page_of(PersonOut, "PersonPage"), **ERRORS})
def list_people(request: HttpRequest, filters: Query[PeopleFilters]):
    """People you may see: yourself, your reporting subtree, or everyone (admin, exec, delivery)."""
    f = filters
    qs = people_queryset(actor(request))
    if f.role:
        qs = qs.filter(profile__role=f.role)
    if f.team:
        qs = qs.filter(profile__team__name__iexact=f.team)
    if f.manager:
        qs = common.people_filter(qs, f.manager, "profile__manager__")
    if f.is_active is not None:
        qs = qs.filter(is_active=f.is_active)
    qs = common.text_search(qs, f.q, "username", "first_name", "last_name", "email")
    qs = order(qs, f.ordering, ORDERING, ["username"])
    return page(request, qs, f, person_out)


@users_router.get("/me", response={200: PersonOut, **ERRORS})
def me(request: HttpRequest):
    user = actor(request)
    return person_out(people_queryset(user).get(pk=user.pk))


@users_router.get("/{id}", response={200: PersonOut, **ERRORS})
def get_person(request: HttpRequest, id: Id):
    person = people_queryset(actor(request)).filter(pk=id).first()
    if person is None:
        raise ApiError(404, "That person does not exist or you cannot see them.")
    return person_out(person)


@users_router.post("", response={201: PersonOut, **ERRORS})
def create_person(request: HttpRequest, payload: PersonCreate):
    """Admins only."""
    user = actor(request)
    _require_admin(user)
    changes = _changes(user, payload.model_dump(exclude_unset=True))
    person = services.create_person(user, **changes)
    return Status(201, person_out(people_queryset(user).get(pk=person.pk)))


@users_router.patch("/{id}", response={200: PersonOut, **ERRORS})
def update_person(request: HttpRequest, id: Id, payload: PersonPatch):
    """Admins only: role, reporting line, team, contact details, deactivation."""
    user = actor(request)
    person = people_queryset(user).filter(pk=id).first()
    if person is None:
        raise ApiError(404, "That person does not exist or you cannot see them.")
    _require_admin(user)
    services.update_person(user, person, _changes(user, payload.model_dump(exclude_unset=True)))
    return person_out(people_queryset(user).get(pk=id))


# --- tokens -----------------------------------------------------------------------------------------


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself: shown this once, store it now.")


class TokenCreate(Strict):
    name: str = Field("default", min_length=1, max_length=120)


def token_out(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


@tokens_router.get("", response={200: page_of(TokenOut, "TokenPage"), **ERRORS})
def list_tokens(request: HttpRequest, params: Query[ListParams]):
    """Your tokens, newest first, revoked ones included."""
    qs = ApiToken.objects.filter(user=actor(request))
    qs = order(
        qs, params.ordering, {"created_at": "created_at", "name": "name", "id": "id"}, ["-created_at", "-id"]
    )
    return page(request, qs, params, token_out)


@tokens_router.post("", response={201: NewTokenOut, **ERRORS})
def create_token(request: HttpRequest, payload: TokenCreate):
    user = actor(request)
    token, raw = services.create_token(user, user, name=payload.name.strip() or "default")
    return Status(201, {**token_out(token), "token": raw})


@tokens_router.delete("/{id}", response={204: None, **ERRORS})
def revoke_token(request: HttpRequest, id: Id):
    user = actor(request)
    token = ApiToken.objects.filter(user=user, pk=id).first()
    if token is None:
        raise ApiError(404, "You have no token with that id.")
    services.revoke_token(user, token)
    return Status(204, None)
