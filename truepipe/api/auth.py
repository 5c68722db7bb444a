"""Who is calling: a personal API token (scripts) or the browser's Django session.

Tokens travel as `Authorization: Bearer tp_…` and are looked up by their
SHA-256 (people.services.user_for_token). A session is only trusted for
unsafe methods when the request also carries the CSRF token, exactly as a
form post would; a token request needs no CSRF token because a browser never
attaches one on its own.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.parser import Parser
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from truepipe.api.errors import ApiError
from truepipe.people.services import user_for_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tp_…`; revoked tokens and inactive users are refused."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return user_for_token(token.strip())


class SessionAuth(APIKeyCookie):
    """The logged-in browser session, with Django's CSRF check on unsafe methods."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        super().__init__(csrf=True)

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            # Anonymous is a 401 (log in), not a CSRF 403, whatever the method.
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise ApiError(
                403,
                "The CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header, "
                "or use an API token.",
                code="csrf_failed",
            )
        return user

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover - unused
        return None


class JsonParser(Parser):
    """Bodies are JSON objects; anything else is refused with a clear reason."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = (request.content_type or "").lower()
        if content_type and content_type != "application/json" and not content_type.endswith("+json"):
            raise ApiError(415, f"Send JSON with 'Content-Type: application/json', not {content_type!r}.")
        try:
            data = json.loads(request.body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise ApiError(400, "The request body is not valid JSON.", code="malformed_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object.", code="malformed_json")
        return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
