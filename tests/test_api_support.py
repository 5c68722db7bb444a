"""Helpers shared by the API tests (no tests here): a JSON client that authenticates as a persona."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from truepipe.people.services import create_token

BASE = "/api/v1"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the API's one error envelope, with this status (and code)."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "code", "message", "fields"}, error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error


class Api:
    """Calls /api/v1 as one user (a Bearer token), or anonymously when user is None."""

    def __init__(self, user: Any = None, client: Client | None = None):
        self.user = user
        self.client = client or Client()
        self.headers: dict[str, str] = {}
        if user is not None:
            _, raw = create_token(None, user, name="tests")
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {raw}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        if_match: Any = None,
        raw: str | bytes | None = None,
        content_type: str = "application/json",
        **params: Any,
    ) -> Any:
        url = path if path.startswith("/") else f"{BASE}/{path}"
        headers = dict(self.headers)
        if if_match is not None:
            headers["HTTP_IF_MATCH"] = f'"{if_match}"' if isinstance(if_match, int) else str(if_match)
        call = getattr(self.client, method.lower())
        if method.upper() in ("GET", "HEAD"):
            return call(url, params, **headers)
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return call(url, data=data, content_type=content_type, **headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("DELETE", path, body, **kw)


def api_as(user: Any) -> Api:
    """api_as(org.ravi): a client with a fresh token for ravi; api_as(None) is anonymous."""
    return Api(user)
