"""People, tokens and configuration."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from truepipe import settings as truepipe_settings
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.people.models import ApiToken, Role
from truepipe.people.services import create_person, create_token, revoke_token, update_person, user_for_token


def test_a_token_is_shown_once_and_only_its_hash_is_stored(org):
    token, raw = create_token(org.ravi, org.ravi, name="laptop")
    assert raw.startswith("tp_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.digest, stored.prefix) and stored.prefix == raw[:10]
    assert user_for_token(raw) == org.ravi


def test_a_revoked_token_no_longer_authenticates(org):
    token, raw = create_token(None, org.ravi)
    revoke_token(org.ravi, token)
    assert user_for_token(raw) is None


def test_a_token_of_a_deactivated_user_no_longer_authenticates(org):
    _, raw = create_token(None, org.ravi)
    update_person(None, org.ravi, {"is_active": False})
    assert user_for_token(raw) is None


def test_garbage_tokens_are_rejected_quietly(org):
    for raw in ("", "tp_", "Bearer x", "tp_" + "a" * 500, "not-a-token"):
        assert user_for_token(raw) is None


def test_a_rep_cannot_mint_or_revoke_tokens_for_someone_else(org):
    with pytest.raises(NotAllowed):
        create_token(org.ravi, org.rita)
    token, _ = create_token(None, org.rita)
    with pytest.raises(NotAllowed):
        revoke_token(org.ravi, token)


def test_only_an_admin_manages_people(org):
    with pytest.raises(NotAllowed):
        create_person(org.maya, username="newbie")
    user = create_person(org.ada, username="newbie", role=Role.REP, manager=org.maya, team="East")
    assert user.profile.team.name == "East" and user.profile.path.endswith(f"/{user.pk}/")


def test_duplicate_usernames_and_unknown_roles_are_refused(org):
    with pytest.raises(InvalidInput):
        create_person(None, username="RAVI")
    with pytest.raises(InvalidInput):
        create_person(None, username="zed", role="wizard")


def test_an_admin_profile_can_reach_django_admin_and_a_rep_cannot(org):
    assert org.ada.is_staff and not org.ravi.is_staff


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("", True)])
def test_boolean_settings_are_parsed(monkeypatch, raw, expected):
    monkeypatch.setenv("TRUEPIPE_X", raw)
    assert truepipe_settings.env_bool("TRUEPIPE_X", True) is expected


def test_a_bad_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("TRUEPIPE_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="TRUEPIPE_X"):
        truepipe_settings.env_bool("TRUEPIPE_X", True)
    monkeypatch.setenv("TRUEPIPE_N", "ten")
    with pytest.raises(ImproperlyConfigured, match="TRUEPIPE_N"):
        truepipe_settings.env_int("TRUEPIPE_N", 1)


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("TRUEPIPE_SECRET_KEY_FILE", str(secret))
    assert truepipe_settings.env("TRUEPIPE_SECRET_KEY") == "s3cret"


def test_the_database_url_selects_postgresql_or_a_tuned_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("TRUEPIPE_DATABASE_URL", "postgresql://u:p@db.internal:5433/crm")
    config = truepipe_settings.database_config()
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql",
        "db.internal",
        5433,
        "crm",
    )
    monkeypatch.delenv("TRUEPIPE_DATABASE_URL")
    monkeypatch.setattr(truepipe_settings, "TRUEPIPE_HOME", tmp_path)
    config = truepipe_settings.database_config()
    assert config["NAME"] == str(tmp_path / "truepipe.sqlite3")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    monkeypatch.setenv("TRUEPIPE_DATABASE_URL", "nonsense://")
    with pytest.raises(ImproperlyConfigured):
        truepipe_settings.database_config()


def test_a_sqlite_database_is_read_through_a_memory_map_unless_turned_off(
    monkeypatch, tmp_path, django_db_blocker
):
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper

    monkeypatch.delenv("TRUEPIPE_DATABASE_URL", raising=False)
    monkeypatch.setattr(truepipe_settings, "TRUEPIPE_HOME", tmp_path)

    def mapped_bytes() -> int:
        db = DatabaseWrapper({**connections.settings["default"], **truepipe_settings.database_config()})
        with django_db_blocker.unblock():
            try:
                with db.cursor() as cursor:
                    cursor.execute("PRAGMA mmap_size")
                    return cursor.fetchone()[0]
            finally:
                db.close()

    import sqlite3

    if "MAX_MMAP_SIZE=0" in {row[0] for row in sqlite3.connect(":memory:").execute("PRAGMA compile_options")}:
        pytest.skip("this SQLite was built without memory maps")
    assert mapped_bytes() > 0  # the default asks for 64 GiB; SQLite grants up to its build's limit
    monkeypatch.setenv("TRUEPIPE_SQLITE_MMAP_MB", "0")
    assert mapped_bytes() == 0
    for bad in ("a lot", "-1"):
        monkeypatch.setenv("TRUEPIPE_SQLITE_MMAP_MB", bad)
        with pytest.raises(ImproperlyConfigured, match="TRUEPIPE_SQLITE_MMAP_MB"):
            truepipe_settings.database_config()


def test_the_health_endpoint_reports_the_database(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"
