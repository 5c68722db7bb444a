"""Real mail is messy: every message is either read whole or rejected with a reason."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.capture_helpers import message, write_mbox
from truepipe.activities.models import Activity
from truepipe.capture.mail import Unreadable, read_message
from truepipe.capture.models import CapturedItem, ItemStatus

MAIL = Path(__file__).parent / "data" / "mail"


def read(name: str):
    return read_message((MAIL / name).read_bytes())


def test_encoded_words_in_any_charset_are_decoded_in_names_and_subjects():
    parsed = read("encoded-headers.eml")

    assert parsed.sender == ("Jürgen Müller", "juergen@acme.example")
    assert parsed.subject == "Angebot für die Verlängerung (Übersicht)"
    assert "Grüße aus München" in parsed.body


def test_a_nested_multipart_gives_its_plain_text_and_describes_its_attachments_without_keeping_them():
    parsed = read("nested-multipart.eml")

    assert parsed.body == "Here is the signed order form."
    assert [(a["name"], a["type"]) for a in parsed.attachments] == [
        ("", "image/png"),
        ("order-form.pdf", "application/pdf"),
    ]
    assert all(a["size"] > 0 for a in parsed.attachments)
    assert parsed.occurred_at == dt.datetime(2026, 11, 18, 21, 2, 11, tzinfo=dt.UTC)


def test_an_unknown_charset_is_read_as_latin1_instead_of_failing():
    parsed = read("unknown-charset.eml")

    assert parsed.body.startswith("Café prices")
    assert parsed.subject.startswith("Pricing")


def test_an_html_only_mail_becomes_readable_text_without_scripts_or_styles():
    parsed = read("html-only.eml")

    assert parsed.body == "Agenda\n1. Pricing\xa0review\n2. Rollout & training"


def test_a_missing_date_falls_back_to_the_delivery_stamp():
    parsed = read("missing-date-with-received.eml")

    assert parsed.occurred_at == dt.datetime(2026, 11, 16, 11, 20, tzinfo=dt.UTC)


def test_a_date_that_cannot_be_read_anywhere_is_a_reason_to_reject():
    with pytest.raises(Unreadable, match="no usable date"):
        read("malformed-date.eml")


def test_raw_utf8_headers_are_tolerated():
    parsed = read("raw-8bit-headers.eml")

    assert parsed.sender[1] == "zoe@acme.example"
    assert "Naïve café" in parsed.body


def test_a_message_without_message_id_gets_a_stable_content_key():
    first, second = read("no-message-id.eml"), read("no-message-id.eml")

    assert first.message_id.startswith("sha256:") and first.message_id == second.message_id


def test_binary_junk_is_rejected_with_a_reason():
    with pytest.raises(Unreadable):
        read("not-an-email.eml")


@pytest.mark.django_db
def test_importing_the_messy_folder_logs_the_readable_ones_and_records_why_the_others_were_rejected(
    org, tmp_path, capsys
):
    paths = sorted(str(p) for p in MAIL.glob("*.eml"))

    call_command("import", "email", *paths, "--no-progress")

    out, err = capsys.readouterr()
    rejected = dict(CapturedItem.objects.filter(status=ItemStatus.REJECTED).values_list("origin", "reason"))
    assert set(rejected) == {"malformed-date.eml", "not-an-email.eml"}
    assert "no usable date" in rejected["malformed-date.eml"]
    assert "rejected: malformed-date.eml" in err
    assert Activity.objects.filter(owner=org.ravi).count() == 7
    assert "7 logged" in out and "2 rejected" in out


@pytest.mark.django_db
def test_a_huge_attachment_is_described_not_stored(org, tmp_path):
    mail = message("bea@acme.example", "ravi@truepipe.test", "The big deck")
    mail.add_attachment(
        b"\0" * (8 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="deck.bin"
    )
    path = write_mbox(tmp_path / "big.mbox", [mail])

    call_command("import", "email", str(path), "--no-progress")

    item = CapturedItem.objects.get(subject="The big deck")
    assert item.attachments == [
        {
            "name": "deck.bin",
            "type": "application/octet-stream",
            "size": pytest.approx(8 * 1024 * 1024, rel=0.01),
        }
    ]
    assert len(item.activity.body) < 1000
    assert base64.b64encode(b"\0" * 30).decode() not in item.activity.body


@pytest.mark.django_db
def test_an_item_the_database_refuses_is_rejected_alone_and_leaves_no_half_activity(org, monkeypatch):
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.sources import from_bytes

    good = message("ravi@truepipe.test", "bea@acme.example", "Fine")
    bad = message("ravi@truepipe.test", "bea@acme.example", "Poison")
    real = Ingest._store

    def refuse_poison(self, plans):
        if any(p.item.subject == "Poison" and p.status != ItemStatus.REJECTED for p in plans):
            Activity.objects.create(
                kind="email", subject="half", occurred_at=dt.datetime.now(dt.UTC), owner=org.ravi
            )
            raise RuntimeError("disk full")
        return real(self, plans)

    monkeypatch.setattr(Ingest, "_store", refuse_poison)
    report = Ingest().run(from_bytes(m.as_bytes(), source="file", origin=m["Subject"]) for m in (good, bad))

    assert report.counts["logged"] == 1 and report.counts["rejected"] == 1
    assert not Activity.objects.filter(subject="half").exists()
    assert CapturedItem.objects.get(subject="Poison").reason.startswith(
        "could not be stored (RuntimeError: disk full"
    )


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 17 Nov 2026 08:15:00 +0100",
        "17 Nov 2026 08:15 -0530",
        "Wed, 1 Jul 2026 23:59:59 +0000 (UTC)",
        "Mon, 2 Feb 2026 07:00:00 -0000",
        "Thu, 31 Dec 2026 10:00:00 +1400",
    ],
)
def test_the_quick_date_reader_agrees_with_the_standard_library(value):
    from email.utils import parsedate_to_datetime

    from truepipe.capture.mail import parse_date

    expected = parsedate_to_datetime(value)
    assert parse_date(value) == (expected if expected.tzinfo else expected.replace(tzinfo=dt.UTC))


@pytest.mark.parametrize(
    "value",
    [
        "Bea Buyer <bea@acme.example>, carl@acme.example",
        '"Buyer, Bea" <bea@acme.example>',
        "bea@acme.example (Bea at work)",
        "undisclosed-recipients:;",
        "Team: a@x.example, b@x.example;",
        "  <bare@acme.example>  ",
    ],
)
def test_the_quick_address_reader_agrees_with_the_standard_library(value):
    from email.utils import getaddresses

    from truepipe.capture.mail import _split_addresses

    expected = [(n, a) for n, a in getaddresses([value]) if a]
    assert [(n, a) for n, a in _split_addresses([value]) if a] == expected


def test_the_streaming_mbox_reader_gives_the_same_messages_as_the_standard_library(tmp_path):
    import mailbox

    from truepipe.capture.sources import mbox_messages

    first = message("ravi@truepipe.test", "bea@acme.example", "One", "From the start\n>From quoted\n")
    second = message("bea@acme.example", "ravi@truepipe.test", "Two", "Last line\n\n")
    path = write_mbox(tmp_path / "two.mbox", [first, second])

    ours = [raw for _, raw in mbox_messages(path)]
    box = mailbox.mbox(path)
    theirs = [box.get_bytes(key) for key in box.iterkeys()]

    assert ours == theirs and len(ours) == 2


def test_an_mbox_read_with_a_helper_process_gives_the_same_items_in_the_same_order(tmp_path):
    from truepipe.capture.sources import read_mbox

    mails = [message("ravi@truepipe.test", "bea@acme.example", f"Mail {n}") for n in range(7)]
    mails[3].replace_header("Date", "not a date")
    path = write_mbox(tmp_path / "seven.mbox", mails)

    alone = list(read_mbox(path, source="file", parallel=False))
    helped = list(read_mbox(path, source="file", parallel=True))

    assert [(i.dedup_key, i.subject, i.origin, i.occurred_at) for i in helped] == [
        (i.dedup_key, i.subject, i.origin, i.occurred_at) for i in alone
    ]
    assert [i.subject for i in alone][:3] == ["Mail 0", "Mail 1", "Mail 2"]


ONE_PART = {
    "plain": b"From: Bea <bea@acme.example>\nTo: ravi@truepipe.test\nSubject: Hi\n\nLine one\nLine two\n",
    "crlf": b"From: bea@acme.example\r\nTo: ravi@truepipe.test\r\nSubject: Hi\r\n\r\nLine one\r\nTwo\r\n",
    "quoted-printable": (
        b"From: bea@acme.example\nTo: ravi@truepipe.test\nSubject: Caf=C3=A9\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"Caf=C3=A9 prices are =\nin.\n"
    ),
    "base64": (
        b"From: bea@acme.example\nTo: ravi@truepipe.test\nSubject: B\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes("Grüße aus München".encode())
    ),
    "raw 8-bit latin-1": (
        b"From: bea@acme.example\nTo: ravi@truepipe.test\nSubject: R\xe9sum\xe9\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\nCaf\xe9 au lait\n"
    ),
    "folded header": (
        b"From: bea@acme.example\nTo: ravi@truepipe.test,\n carl@acme.example\nSubject: F\n\nBody\n"
    ),
    "no body": b"From: bea@acme.example\nTo: ravi@truepipe.test\nSubject: Empty\n\n",
    "a line that is not a header": b"From: bea@acme.example\nTo: ravi@truepipe.test\nnot a header\n\nBody\n",
    "html only": (
        b"From: bea@acme.example\nTo: ravi@truepipe.test\nSubject: H\nContent-Type: text/html\n\n"
        b"<p>Agenda</p><script>x()</script>\n"
    ),
}


@pytest.mark.parametrize("shape", list(ONE_PART))
def test_a_one_part_message_read_from_its_headers_alone_gives_what_the_full_parse_gives(shape):
    from email import message_from_bytes

    from truepipe.capture.mail import read_parsed

    raw = ONE_PART[shape].replace(b"To:", b"Date: Tue, 17 Nov 2026 08:15:00 +0100\nTo:", 1)

    assert read_message(raw) == read_parsed(message_from_bytes(raw), raw)


def _many_mails(tmp_path, count: int, body: str = "Hello") -> Path:
    mails = [message("ravi@truepipe.test", "bea@acme.example", f"Mail {n}", body) for n in range(count)]
    return write_mbox(tmp_path / "many.mbox", mails)


def test_a_helper_process_that_dies_half_way_loses_no_message_and_repeats_none(tmp_path):
    import multiprocessing

    from truepipe.capture.sources import CHUNK, read_mbox

    path = _many_mails(tmp_path, CHUNK * 2 + 500)
    alone = [i.dedup_key for i in read_mbox(path, source="file", parallel=False)]

    helped = read_mbox(path, source="file", parallel=True)
    keys = [next(helped).dedup_key]
    for child in multiprocessing.active_children():
        child.kill()  # the helper, while it parses the chunks after the first
    keys += [i.dedup_key for i in helped]

    assert keys == alone and len(set(keys)) == CHUNK * 2 + 500


def test_a_helper_process_that_dies_while_sending_a_chunk_does_not_leave_the_reader_waiting(tmp_path):
    """Chunks of long mails are far larger than a pipe holds: after a pause the helper is blocked
    half-way through sending one. Killed there, the reader must see it die and go on alone."""
    import multiprocessing
    import threading
    import time

    from truepipe.capture.sources import CHUNK, read_mbox

    path = _many_mails(tmp_path, CHUNK * 3 + 5, body="Pricing and rollout. " * 200)
    alone = [i.dedup_key for i in read_mbox(path, source="file", parallel=False)]
    keys: list[str] = []

    def read() -> None:
        helped = read_mbox(path, source="file", parallel=True)
        keys.append(next(helped).dedup_key)
        time.sleep(2)  # the helper parses ahead until the pipe is full, mid-chunk
        for child in multiprocessing.active_children():
            child.kill()
        keys.extend(i.dedup_key for i in helped)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=120)

    assert not reader.is_alive(), "the reader is still waiting for a helper that died"
    assert keys == alone


def test_a_reader_stopped_early_leaves_no_helper_process_running(tmp_path):
    import multiprocessing

    from truepipe.capture.sources import CHUNK, read_mbox

    helped = read_mbox(_many_mails(tmp_path, CHUNK + 10), source="file", parallel=True)
    next(helped)
    helped.close()

    assert multiprocessing.active_children() == []
