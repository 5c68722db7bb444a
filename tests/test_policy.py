"""The policy as a file (`truepipe policy`) and as a page (/policy/): read by all, changed by admins."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from truepipe.hygiene import policy as policy_module
from truepipe.hygiene.models import PolicyVersion
from truepipe.hygiene.policy import current_policy


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    """current_policy() caches by version number; each test's rolled-back v1 is a different document."""
    policy_module._cache.clear()
    yield
    policy_module._cache.clear()


def run(*args: str) -> str:
    out = StringIO()
    call_command("policy", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def signed_in(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_show_explains_each_enabled_rule_with_its_parameters_and_severity(db):
    text = run("show")
    assert "Hygiene policy v0 (built-in defaults)" in text
    assert "every 21 days" in text  # stale_touch's default, filled into its explanation
    assert "severity high" in text


def test_export_then_import_round_trips_to_the_same_document(db, tmp_path: Path):
    path = tmp_path / "policy.json"
    run("export", str(path))
    exported = json.loads(path.read_text())
    assert exported["version"] == 0
    assert list(exported) == sorted(exported)  # stable key order

    exported["rules"]["stale_touch"]["params"]["days"]["default"] = 14
    exported["rules"]["stale_update"]["enabled"] = False
    path.write_text(json.dumps(exported))
    assert "Published policy v1" in run("import", str(path), "--note", "tighter touches")

    again = tmp_path / "again.json"
    run("export", str(again))
    round_trip = json.loads(again.read_text())
    assert round_trip["version"] == 1
    assert round_trip["rules"] == exported["rules"]
    assert "every 14 days" in run("show")
    assert "Switched off: stale_update" in run("show")
    assert "tighter touches" in run("history")


def test_a_bad_policy_file_names_every_problem_and_publishes_nothing(db, tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"rules": {"nope": {}, "stale_touch": {"severity": 7, "params": {"days": "x"}}}})
    )
    with pytest.raises(CommandError) as refused:
        run("import", str(path))
    message = str(refused.value)
    assert "rules.nope: No such rule." in message
    assert "rules.stale_touch.severity: Must be 1 (low), 2 (medium) or 3 (high)." in message
    assert "rules.stale_touch.params.days" in message
    assert "Nothing was published." in message
    assert not PolicyVersion.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not JSON: Expecting property name"), ("[1, 2]", "A policy is a JSON object")],
)
def test_a_file_that_is_not_a_policy_is_refused_plainly(db, tmp_path: Path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run("import", str(path))


def test_importing_a_missing_file_is_a_clear_error(db, tmp_path: Path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("import", str(tmp_path / "absent.json"))


def test_anonymous_visitors_are_sent_to_sign_in(db):
    response = Client().get("/policy/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Client().get("/policy/export.json").status_code == 302


@pytest.mark.parametrize("persona", ["ravi", "maya", "eli", "dana"])
def test_everyone_signed_in_reads_the_rules_but_only_admins_see_the_form(org, persona):
    response = signed_in(getattr(org, persona)).get("/policy/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "every 21 days" in body
    assert "Publish a new version" not in body
    assert signed_in(getattr(org, persona)).get("/policy/export.json").status_code == 200


def test_a_rep_cannot_publish_a_policy(org):
    response = signed_in(org.ravi).post("/policy/", {"note": "sneaky"})
    assert response.status_code == 403
    assert not PolicyVersion.objects.exists()


def form_data(**changes: str) -> dict[str, str]:
    document = current_policy().document
    data = {"note": "", "settings": json.dumps({k: document[k] for k in ("scoring", "snooze", "queue")})}
    for key, entry in document["rules"].items():
        if entry["enabled"]:
            data[f"{key}__enabled"] = "on"
        data[f"{key}__severity"] = str(entry["severity"])
        data[f"{key}__params"] = json.dumps(entry["params"])
    data.update(changes)
    return data


def test_an_admin_publishes_a_new_version_from_the_form(org):
    client = signed_in(org.ada)
    page = client.get("/policy/").content.decode()
    assert "Publish a new version" in page

    response = client.post(
        "/policy/",
        form_data(stale_touch__params='{"days": {"default": 10}}', stale_update__enabled="", note="ten days"),
    )

    assert response.status_code == 302
    version = PolicyVersion.objects.get()
    assert version.number == 1 and version.created_by == org.ada and version.note == "ten days"
    assert version.document["rules"]["stale_touch"]["params"]["days"]["default"] == 10
    assert version.document["rules"]["stale_update"]["enabled"] is False
    history = client.get("/policy/").content.decode()
    assert "v1" in history and "ten days" in history and "Ada Admin" in history


def test_bad_form_input_shows_the_field_errors_and_saves_nothing(org):
    response = signed_in(org.ada).post(
        "/policy/",
        form_data(
            stale_touch__params='{"days": -3}', no_next_step__params="{oops", stale_update__severity="9"
        ),
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was published" in body
    assert "Not JSON" in body  # no_next_step's parameters
    assert "Select a valid choice" in body  # the severity
    assert not PolicyVersion.objects.exists()

    response = signed_in(org.ada).post("/policy/", form_data(stale_touch__params='{"days": -3}'))
    assert response.status_code == 400
    assert "rules.stale_touch.params.days: Must look like the default" in response.content.decode()
    assert not PolicyVersion.objects.exists()


def test_an_admin_uploads_a_policy_file_and_a_bad_one_is_refused(org):
    client = signed_in(org.ada)
    document = json.loads(client.get("/policy/export.json").content)
    document["rules"]["past_due_close"]["severity"] = 1

    good = SimpleUploadedFile("policy.json", json.dumps(document).encode(), content_type="application/json")
    assert client.post("/policy/", {"action": "upload", "file": good}).status_code == 302
    assert current_policy().document["rules"]["past_due_close"]["severity"] == 1

    bad = SimpleUploadedFile("bad.json", b'{"rules": {"nope": {}}}', content_type="application/json")
    response = client.post("/policy/", {"action": "upload", "file": bad})
    assert response.status_code == 400
    assert "rules.nope: No such rule." in response.content.decode()
    assert PolicyVersion.objects.count() == 1


def test_the_policy_page_is_a_few_queries(org, django_assert_max_num_queries):
    client = signed_in(org.ada)
    client.post("/policy/", form_data(note="one"))
    client.post("/policy/", form_data(note="two"))
    with django_assert_max_num_queries(12):
        assert client.get("/policy/").status_code == 200
