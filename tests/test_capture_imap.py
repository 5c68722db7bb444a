"""IMAP capture against a real IMAP server: Debian's dovecot, started for the session.

Without dovecot the tests that need it are skipped, except under CI (env CI set), where a
missing dovecot fails them (.ci/run installs dovecot-imapd). Each xdist worker starts its own
dovecot on a free port; each test reads its own freshly created folder.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.capture_helpers import message
from truepipe.activities.models import Activity
from truepipe.capture import imap, secrets
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CapturedItem, CaptureSource, ItemStatus, Mailbox, Security

pytestmark = pytest.mark.django_db

PASSWORD = "imap-test-Pässword 7"  # not ASCII: the login goes through AUTHENTICATE PLAIN
SHARED_PASSWORD = "shared-secret"
CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
}}
service anvil {{
  chroot =
  # No growing delay after the wrong-password tests: every later login would wait for it.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dovecot_binary() -> str:
    found = shutil.which("dovecot", path=f"/usr/sbin:/usr/local/sbin:{os.environ.get('PATH', '')}")
    if found:
        return found
    reason = "dovecot is not installed (Debian: apt-get install dovecot-imapd)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: the IMAP tests must run under CI")
    pytest.skip(reason)


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            return conn.recv(64).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture(scope="session")
def dovecot():
    """A dovecot of this test session, on 127.0.0.1 and a free port, with users ravi and sales.

    It runs as this user; as root it runs as `nobody` (dovecot refuses root for its login
    processes), so the same rootless configuration serves both.
    """
    binary = _dovecot_binary()
    root = Path(tempfile.mkdtemp(prefix="truepipe-dovecot-"))
    as_root = os.geteuid() == 0
    account = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.geteuid())
    uid, gid = account.pw_uid, (account.pw_gid if as_root else os.getegid())
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    (root / "users").write_text(f"ravi:{{PLAIN}}{PASSWORD}\nsales:{{PLAIN}}{SHARED_PASSWORD}\n")
    if as_root:
        for path in [root, *root.rglob("*")]:
            os.chown(path, uid, gid)
    process = None
    port = 0
    try:
        for _attempt in range(3):  # another process may take the free port before dovecot does
            port = free_port()
            conf = root / "dovecot.conf"
            conf.write_text(
                CONFIG.format(
                    root=root,
                    port=port,
                    user=account.pw_name,
                    group=grp.getgrgid(gid).gr_name,
                    uid=uid,
                    gid=gid,
                )
            )
            extra: dict = {"user": uid, "group": gid, "extra_groups": []} if as_root else {}
            process = subprocess.Popen(
                [binary, "-F", "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=(root / "stderr.log").open("wb"),
                start_new_session=True,
                **extra,
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process.poll() is None and not _ready(port):
                time.sleep(0.1)
            if process.poll() is None and _ready(port):
                break
            _stop(process)
            process = None
        if process is None:
            logs = "".join(
                p.read_text(errors="replace")[-2000:]
                for p in (root / "stderr.log", root / "dovecot.log")
                if p.exists()
            )
            pytest.fail(f"dovecot did not start:\n{logs}")
        yield SimpleNamespace(host="127.0.0.1", port=port, root=root)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def client(server, user="ravi", password=PASSWORD):
    conn = imaplib.IMAP4(server.host, server.port, timeout=10)
    conn.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
    try:
        yield conn
    finally:
        conn.logout()


def append(server, folder, *messages, user="ravi", password=PASSWORD) -> None:
    with client(server, user, password) as conn:
        for msg in messages:
            typ, data = conn.append(imap.quote(folder), None, None, msg.as_bytes())
            assert typ == "OK", data


def new_folder(server, user="ravi", password=PASSWORD) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    with client(server, user, password) as conn:
        typ, data = conn.create(imap.quote(name))
        assert typ == "OK", data
    return name


@pytest.fixture
def folder(dovecot):
    return new_folder(dovecot)


def make_mailbox(server, folder, *, name="ravi inbox", owner=None, user="ravi", password=PASSWORD):
    return Mailbox.objects.create(
        name=name,
        owner=owner,
        host=server.host,
        port=server.port,
        security=Security.PLAIN,
        username=user,
        password_encrypted=secrets.encrypt(password),
        folder=folder,
    )


def customer_mail(subject, **kwargs):
    return message("Ravi Rao <ravi@truepipe.test>", "Bea Buyer <bea@acme.example>", subject, **kwargs)


# -- the tests -----------------------------------------------------------------------------------------


def test_a_reps_mailbox_logs_customer_mail_on_the_right_deal(org, acme_buyer, dovecot, folder):
    append(
        dovecot,
        folder,
        customer_mail("Renewal pricing"),
        message("ravi@truepipe.test", "ravi@truepipe.test", "Note to self"),
    )
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)

    report = imap.poll(mailbox)

    assert (report.error, report.seen, report.counts["logged"], report.counts["ignored"]) == ("", 2, 1, 1)
    activity = Activity.objects.get(subject="Renewal pricing")
    assert (activity.opportunity, activity.owner) == (org.ravi_open, org.ravi)
    assert list(activity.participants.all()) == [acme_buyer]
    item = CapturedItem.objects.get(activity=activity)
    assert (item.source, item.origin) == (CaptureSource.IMAP, "ravi inbox UID 1")
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.last_error) == (2, "")
    assert mailbox.uidvalidity and mailbox.last_polled_at is not None
    assert "ravi inbox: 2 read, 1 logged" in report.summary()


def test_a_second_poll_logs_nothing_and_new_mail_is_read_by_uid(org, acme_buyer, dovecot, folder):
    append(dovecot, folder, customer_mail("First"), customer_mail("Second"))
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    imap.poll(mailbox)

    again = imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    # `UID SEARCH UID 3:*` answers UID 2 (the highest) too: it must not be read again.
    assert (again.seen, again.counts["duplicate"], sum(again.counts.values())) == (0, 0, 0)

    append(dovecot, folder, customer_mail("Third"))
    later = imap.poll(Mailbox.objects.get(pk=mailbox.pk))

    assert (later.seen, later.counts["logged"], later.last_uid) == (1, 1, 3)
    assert sorted(Activity.objects.filter(opportunity=org.ravi_open).values_list("subject", flat=True)) == [
        "First",
        "Second",
        "Third",
    ]


def test_a_new_uidvalidity_reads_the_folder_again_without_logging_twice(org, acme_buyer, dovecot, folder):
    first, second = customer_mail("Kick-off"), customer_mail("Follow-up")
    append(dovecot, folder, first, second)
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    imap.poll(mailbox)
    mailbox.refresh_from_db()
    old_validity = mailbox.uidvalidity
    # The folder is recreated (as after a server migration): same mail, new numbering.
    with client(dovecot) as conn:
        assert conn.delete(imap.quote(folder))[0] == "OK"
        assert conn.create(imap.quote(folder))[0] == "OK"
    append(dovecot, folder, first, second, customer_mail("Signed"))

    report = imap.poll(mailbox)

    mailbox.refresh_from_db()
    assert mailbox.uidvalidity != old_validity
    assert report.restarted and "read again from the start" in report.summary()
    assert (report.seen, report.counts["duplicate"], report.counts["logged"]) == (3, 2, 1)
    assert Activity.objects.filter(subject="Kick-off").count() == 1
    assert Activity.objects.filter(subject="Follow-up").count() == 1
    assert mailbox.last_uid == 3


def _subjects_logged_once(subjects):
    for subject in subjects:
        assert Activity.objects.filter(subject=subject).count() == 1, subject
        assert CapturedItem.objects.filter(subject=subject).count() == 1, subject


def test_a_connection_lost_mid_poll_resumes_after_the_last_stored_batch(
    org, acme_buyer, dovecot, folder, monkeypatch
):
    subjects = [f"Thread {n}" for n in range(1, 6)]
    append(dovecot, folder, *(customer_mail(s) for s in subjects))
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    real_fetch = imap.fetch
    calls = []

    def fetch_dying_on_the_second_batch(conn, uids):
        calls.append(list(uids))
        if len(calls) == 2:
            raise ConnectionError("connection reset by peer")
        return real_fetch(conn, uids)

    monkeypatch.setattr(imap, "fetch", fetch_dying_on_the_second_batch)
    crashed = imap.poll(mailbox, batch=2)

    mailbox.refresh_from_db()
    assert "connection lost" in crashed.error and "after UID 2" in crashed.error
    assert (crashed.counts["logged"], mailbox.last_uid) == (2, 2)
    assert "connection lost" in mailbox.last_error

    monkeypatch.setattr(imap, "fetch", real_fetch)
    resumed = imap.poll(mailbox, batch=2)

    assert (resumed.error, resumed.seen, resumed.counts["logged"], resumed.counts["duplicate"]) == (
        "",
        3,
        3,
        0,
    )
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.last_error) == (5, "")
    _subjects_logged_once(subjects)


class Killed(BaseException):
    """The process dying (not an error the code could catch and go on from)."""


def test_a_crash_inside_a_batch_rolls_back_its_rows_and_its_position_together(
    org, acme_buyer, dovecot, folder, monkeypatch
):
    subjects = [f"Update {n}" for n in range(1, 6)]
    append(dovecot, folder, *(customer_mail(s) for s in subjects))
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    real_store = Ingest._store
    stores = []

    def store_then_die(self, plans):
        real_store(self, plans)  # the second batch's activities and ledger rows are written…
        stores.append(len(plans))
        if len(stores) == 2:
            raise Killed  # …and the process dies before its transaction commits

    monkeypatch.setattr(Ingest, "_store", store_then_die)
    with pytest.raises(Killed):
        imap.poll(mailbox, batch=2)

    mailbox.refresh_from_db()
    assert mailbox.last_uid == 2
    assert CapturedItem.objects.filter(source=CaptureSource.IMAP).count() == 2
    assert not Activity.objects.filter(subject__in=subjects[2:]).exists()

    monkeypatch.setattr(Ingest, "_store", real_store)
    resumed = imap.poll(mailbox, batch=2)

    assert (resumed.seen, resumed.counts["logged"]) == (3, 3)
    _subjects_logged_once(subjects)


def test_a_wrong_password_is_recorded_on_its_mailbox_and_the_others_still_poll(
    org, acme_buyer, dovecot, folder
):
    append(dovecot, folder, customer_mail("Still captured"))
    broken = make_mailbox(dovecot, folder, name="a broken", owner=org.ravi, password="not-the-password")
    working = make_mailbox(dovecot, folder, name="b working", owner=org.ravi)

    reports = {r.mailbox: r for r in imap.poll_all()}

    assert "login as ravi refused" in reports["a broken"].error
    assert reports["b working"].counts["logged"] == 1
    broken.refresh_from_db()
    working.refresh_from_db()
    assert "login as ravi refused" in broken.last_error and broken.last_polled_at is not None
    assert broken.last_uid == 0
    assert (working.last_error, working.last_uid) == ("", 1)


def test_an_unreachable_server_is_recorded_not_raised(org):
    mailbox = Mailbox.objects.create(
        name="nowhere",
        owner=org.ravi,
        host="127.0.0.1",
        port=free_port(),
        security=Security.PLAIN,
        username="ravi",
        password_encrypted=secrets.encrypt("x"),
    )

    (report,) = imap.poll_all()

    mailbox.refresh_from_db()
    assert report.error.startswith("cannot connect to 127.0.0.1:")
    assert mailbox.last_error == report.error


def test_disabled_mailboxes_are_not_polled(org, dovecot, folder):
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    Mailbox.objects.filter(pk=mailbox.pk).update(enabled=False)

    assert imap.poll_all() == []


def test_polling_never_marks_mail_as_read(org, acme_buyer, dovecot, folder):
    append(dovecot, folder, customer_mail("Unread"), customer_mail("Also unread"))

    imap.poll(make_mailbox(dovecot, folder, owner=org.ravi))

    with client(dovecot) as conn:
        conn.select(imap.quote(folder), readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK" and len(data) == 2
    assert not any(b"\\Seen" in line for line in data)


def test_a_shared_mailbox_gives_each_message_to_the_rep_in_its_addresses(org, acme_buyer, dovecot):
    folder = new_folder(dovecot, "sales", SHARED_PASSWORD)
    shared_copy = customer_mail("Copied to sales")
    append(
        dovecot,
        folder,
        shared_copy,
        message("Bea Buyer <bea@acme.example>", "sales@truepipe.test", "Who handles us?"),
        user="sales",
        password=SHARED_PASSWORD,
    )
    mailbox = make_mailbox(dovecot, folder, name="sales", owner=None, user="sales", password=SHARED_PASSWORD)

    report = imap.poll(mailbox)

    assert (report.counts["logged"], report.counts["rejected"]) == (1, 1)
    activity = Activity.objects.get(subject="Copied to sales")
    assert (activity.owner, activity.opportunity) == (org.ravi, org.ravi_open)
    unowned = CapturedItem.objects.get(subject="Who handles us?")
    assert (unowned.status, unowned.reason, unowned.owner) == (
        ItemStatus.REJECTED,
        "no truepipe user took part",
        None,
    )
    # The same message in ravi's own mailbox too: already captured, not logged again.
    own = new_folder(dovecot)
    append(dovecot, own, shared_copy)
    again = imap.poll(make_mailbox(dovecot, own, owner=org.ravi))
    assert (again.counts["duplicate"], Activity.objects.filter(subject="Copied to sales").count()) == (1, 1)


# -- stored passwords ------------------------------------------------------------------------------------


def test_the_stored_password_is_encrypted_and_decrypts(org, dovecot, folder, tmp_path, capsys):
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n", encoding="utf-8")

    call_command(
        "mailbox",
        "add",
        "ravi inbox",
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.port),
        "--security",
        "none",
        "--user",
        "ravi",
        "--folder",
        folder,
        "--owner",
        "ravi",
        "--password-file",
        str(secret_file),
    )

    mailbox = Mailbox.objects.get(name="ravi inbox")
    assert mailbox.owner == org.ravi
    assert PASSWORD not in mailbox.password_encrypted
    assert PASSWORD.encode().hex() not in mailbox.password_encrypted
    assert secrets.decrypt(mailbox.password_encrypted) == PASSWORD
    out = capsys.readouterr().out
    assert "Login works" in out and "ravi inbox added" in out

    call_command("mailbox", "list")
    listed = capsys.readouterr().out
    assert "ravi inbox" in listed and "ravi@127.0.0.1" in listed and "never" in listed
    assert PASSWORD not in listed and mailbox.password_encrypted not in listed


def test_a_changed_key_is_a_clear_error_on_that_mailbox_not_a_crash(org, dovecot, folder, settings):
    settings.TRUEPIPE_CAPTURE_KEY = Fernet.generate_key().decode()
    mailbox = make_mailbox(dovecot, folder, owner=org.ravi)
    settings.TRUEPIPE_CAPTURE_KEY = Fernet.generate_key().decode()  # the old key was lost

    (report,) = imap.poll_all()

    mailbox.refresh_from_db()
    assert "cannot be decrypted" in report.error and "TRUEPIPE_CAPTURE_KEY" in report.error
    assert mailbox.last_error == report.error


def test_a_malformed_key_fails_each_mailbox_with_the_reason(org, settings):
    mailbox = Mailbox.objects.create(
        name="any", host="127.0.0.1", port=free_port(), username="x", password_encrypted="token"
    )
    settings.TRUEPIPE_CAPTURE_KEY = "not-a-fernet-key"

    (report,) = imap.poll_all()

    mailbox.refresh_from_db()
    assert "TRUEPIPE_CAPTURE_KEY: key 1 is not a Fernet key" in mailbox.last_error
    assert "not-a-fernet-key" not in mailbox.last_error and report.error == mailbox.last_error


def test_a_new_password_can_be_set_after_the_key_was_lost(
    org, acme_buyer, dovecot, folder, tmp_path, settings
):
    append(dovecot, folder, customer_mail("After the new password"))
    settings.TRUEPIPE_CAPTURE_KEY = Fernet.generate_key().decode()
    mailbox = make_mailbox(dovecot, folder, name="ravi", owner=org.ravi)
    settings.TRUEPIPE_CAPTURE_KEY = Fernet.generate_key().decode()
    assert "cannot be decrypted" in imap.poll(mailbox).error
    secret_file = tmp_path / "pw"
    secret_file.write_text("wrong")

    with pytest.raises(CommandError, match="login as ravi refused"):
        call_command("mailbox", "password", "ravi", "--password-file", str(secret_file))
    secret_file.write_text(PASSWORD)
    call_command("mailbox", "password", "ravi", "--password-file", str(secret_file))

    mailbox.refresh_from_db()
    assert mailbox.last_error == ""
    assert imap.poll(mailbox).counts["logged"] == 1


def test_keys_rotate_and_the_derived_key_keeps_working_after_an_explicit_one_is_set(settings):
    settings.TRUEPIPE_CAPTURE_KEY = ""
    derived_token = secrets.encrypt("from the secret key")
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TRUEPIPE_CAPTURE_KEY = old
    old_token = secrets.encrypt("old")
    assert secrets.decrypt(derived_token) == "from the secret key"

    settings.TRUEPIPE_CAPTURE_KEY = f"{new}, {old}"  # the new key first: it encrypts
    assert secrets.decrypt(old_token) == "old"
    rotated = secrets.rotate(old_token)
    fresh = secrets.encrypt("new")

    settings.TRUEPIPE_CAPTURE_KEY = new  # the old key dropped after `mailbox rekey`
    assert (secrets.decrypt(rotated), secrets.decrypt(fresh)) == ("old", "new")
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(old_token)


def test_a_malformed_capture_key_is_refused_without_showing_it(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.TRUEPIPE_CAPTURE_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured, match="key 1 is not a Fernet key") as caught:
        secrets.encrypt("x")
    assert "not-a-fernet-key" not in str(caught.value)


# -- the command and the worker --------------------------------------------------------------------------


def _add(dovecot, folder, password_file, *extra):
    call_command(
        "mailbox",
        "add",
        "team",
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.port),
        "--security",
        "none",
        "--user",
        "ravi",
        "--folder",
        folder,
        "--password-file",
        str(password_file),
        *extra,
    )


def test_the_command_refuses_a_login_that_does_not_work_and_saves_nothing(org, dovecot, folder, tmp_path):
    wrong = tmp_path / "pw"
    wrong.write_text("wrong")

    with pytest.raises(CommandError, match="login as ravi refused.*nothing saved"):
        _add(dovecot, folder, wrong)
    assert not Mailbox.objects.exists()
    right = tmp_path / "right"
    right.write_text(PASSWORD)
    with pytest.raises(CommandError, match="folder 'No such folder' cannot be opened"):
        _add(dovecot, "No such folder", right)
    assert not Mailbox.objects.exists()

    _add(dovecot, folder, wrong, "--no-check")
    assert Mailbox.objects.get(name="team").owner is None


def test_the_command_polls_lists_and_removes(org, acme_buyer, dovecot, folder, tmp_path, capsys):
    append(dovecot, folder, customer_mail("Via the command"))
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD)
    _add(dovecot, folder, secret_file, "--owner", "ravi")
    capsys.readouterr()

    call_command("mailbox", "poll", "team")
    out, err = capsys.readouterr()
    assert "Polling team" in out and "team: 1 read, 1 logged" in out
    assert "team: 1 read…" in err

    call_command("mailbox", "poll")
    assert "team: 0 read" in capsys.readouterr().out

    call_command("mailbox", "list")
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[:2] == ["team", "ravi"] and " 1 " in row and row.rstrip().endswith("-")

    call_command("mailbox", "rekey")
    assert "1 password(s) re-encrypted" in capsys.readouterr().out
    assert secrets.decrypt(Mailbox.objects.get(name="team").password_encrypted) == PASSWORD

    call_command("mailbox", "remove", "team")
    assert not Mailbox.objects.exists()
    assert Activity.objects.filter(subject="Via the command").exists()


def test_the_command_fails_when_a_mailbox_cannot_be_read(org, tmp_path):
    Mailbox.objects.create(
        name="gone",
        host="127.0.0.1",
        port=free_port(),
        security=Security.PLAIN,
        username="x",
        password_encrypted=secrets.encrypt("x"),
    )

    with pytest.raises(CommandError, match="1 mailbox\\(es\\) could not be read: gone"):
        call_command("mailbox", "poll")


def test_plaintext_to_another_host_is_refused(org, tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("x")
    with pytest.raises(CommandError, match="in clear"):
        call_command(
            "mailbox",
            "add",
            "remote",
            "--host",
            "imap.example.com",
            "--security",
            "none",
            "--user",
            "u",
            "--password-file",
            str(secret_file),
            "--no-check",
        )


def test_the_worker_polls_every_mailbox_every_five_minutes(org, acme_buyer, dovecot, folder):
    import datetime as dt

    from truepipe.capture.tasks import poll_mailboxes

    append(dovecot, folder, customer_mail("From the worker"))
    make_mailbox(dovecot, folder, owner=org.ravi)

    periodic = poll_mailboxes.task_class()
    assert periodic.validate_datetime(dt.datetime(2026, 11, 20, 9, 35))
    assert not periodic.validate_datetime(dt.datetime(2026, 11, 20, 9, 36))
    result = poll_mailboxes.call_local()

    assert result == {
        "ravi inbox": "ravi inbox: 1 read, 1 logged, 0 to triage, 0 updated, 0 ignored, "
        "0 already captured, 0 rejected."
    }
