"""`truepipe token create|list|revoke`: the command-line side of API tokens."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.test_api_support import assert_error
from truepipe.people.models import ApiToken
from truepipe.people.services import user_for_token


def run(*args: str) -> str:
    out = StringIO()
    call_command("token", *args, stdout=out)
    return out.getvalue().strip()


def test_token_create_prints_a_token_that_authenticates_as_the_user(org, client):
    raw = run("create", "ravi", "--name", "forecast script")
    assert raw.startswith("tp_")
    assert user_for_token(raw) == org.ravi
    token = ApiToken.objects.get(user=org.ravi)
    assert token.name == "forecast script" and token.digest != raw
    response = client.get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.json()["username"] == "ravi"


def test_token_list_shows_prefixes_never_the_token(org):
    raw = run("create", "ravi")
    listing = run("list", "ravi")
    assert raw[:10] in listing and raw not in listing and "active" in listing
    assert "has no API tokens" in run("list", "rita")


def test_token_revoke_by_prefix_locks_the_token_out(org, client):
    raw = run("create", "ravi")
    assert "Revoked" in run("revoke", raw[:10])
    assert user_for_token(raw) is None
    assert_error(client.get("/api/v1/users/me", HTTP_AUTHORIZATION=f"Bearer {raw}"), 401)
    assert "revoked" in run("list", "ravi")


def test_token_commands_explain_bad_input(org):
    with pytest.raises(CommandError, match="no user called 'nobody'"):
        run("create", "nobody")
    with pytest.raises(CommandError, match="No active token"):
        run("revoke", "tp_doesnotexist")
    with pytest.raises(CommandError, match="No active token"):
        run("revoke", "tp")
