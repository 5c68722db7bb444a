"""vCard import and export of contacts: real files in, the same contacts out, and who may do what.

The people are the shared org (tests/conftest.py): Ravi the rep (team East, owns Acme Corp), Owen
a rep on the other team (owns Globex), Maya their manager, Dana the delivery lead (reads, never
writes), Ada the admin. A `None` actor is the operator at the command line.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD
from truepipe.accounts import services
from truepipe.accounts.models import Account, Contact, ContactPhone
from truepipe.accounts.vcard import contact_vcard, import_vcards, parse_vcards, write_vcards
from truepipe.core.errors import InvalidInput
from truepipe.core.models import Via

DATA = Path(__file__).parent / "data" / "vcard"
SAMPLES = ["apple-contacts.vcf", "google-export.vcf", "rfc6350-example.vcf", "legacy-2.1.vcf"]


def sample(name: str) -> tuple[str, bytes]:
    return ("", (DATA / name).read_bytes())


def card(*lines: str) -> tuple[str, str]:
    return ("", "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", *lines, "END:VCARD"]) + "\r\n")


def parse_one(*lines: str):
    cards, problems = parse_vcards(card(*lines)[1])
    assert problems == [] and len(cards) == 1
    return cards[0]


def described(contact: Contact) -> dict:
    """Everything a vCard round trip must keep."""
    return {
        "name": (contact.first_name, contact.last_name),
        "emails": [e.email for e in contact.emails.all()],
        "phones": [(p.number, p.kind) for p in contact.phones.all()],
        "phone": contact.phone,
        "title": contact.title,
        "account": contact.account.name if contact.account else None,
    }


def everyone() -> dict[str, dict]:
    return {
        " ".join(filter(None, [c.first_name, c.last_name])) or c.primary_email: described(c)
        for c in Contact.objects.filter(deleted_at__isnull=True)
    }


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- phones in the contact services ---------------------------------------------------------------


def test_a_contacts_phones_keep_their_order_and_the_first_is_its_phone(org):
    wile = services.create_contact(
        org.ravi,
        via=Via.FORM,
        last_name="Coyote",
        phones=[("+1 555 0100", "cell"), ("+1 555 0200", "work"), ("  ", "home")],
    )

    assert described(wile)["phones"] == [("+1 555 0100", "cell"), ("+1 555 0200", "work")]
    assert wile.phone == "+1 555 0100"


def test_a_phone_alone_becomes_the_only_number_of_unknown_kind(org):
    wile = services.create_contact(org.ravi, via=Via.FORM, last_name="Coyote", phone="+1 555 0100")

    assert described(wile)["phones"] == [("+1 555 0100", "other")]


def test_editing_the_phone_in_the_form_replaces_the_primary_number_and_keeps_the_others(org):
    wile = services.create_contact(
        org.ravi, via=Via.FORM, last_name="Coyote", phones=[("+1 555 0100", "cell"), ("+1 555 0200", "work")]
    )

    services.update_contact(org.ravi, wile, {"phone": "+1 555 0999"}, via=Via.FORM)

    wile.refresh_from_db()
    assert described(wile)["phones"] == [("+1 555 0999", "cell"), ("+1 555 0200", "work")]
    assert wile.phone == "+1 555 0999"


def test_clearing_the_phone_moves_the_next_number_up(org):
    wile = services.create_contact(
        org.ravi, via=Via.FORM, last_name="Coyote", phones=[("+1 555 0100", "cell"), ("+1 555 0200", "work")]
    )

    services.update_contact(org.ravi, wile, {"phone": ""}, via=Via.FORM)

    wile.refresh_from_db()
    assert (wile.phone, described(wile)["phones"]) == ("+1 555 0200", [("+1 555 0200", "work")])


def test_setting_the_phones_sets_the_phone_and_a_contradicting_phone_is_refused(org):
    wile = services.create_contact(org.ravi, via=Via.FORM, last_name="Coyote", phone="+1 555 0100")

    services.update_contact(org.ravi, wile, {"phones": [("+1 555 0300", "home")]}, via=Via.FORM)
    with pytest.raises(InvalidInput, match="first of the phone numbers"):
        services.update_contact(
            org.ravi, wile, {"phone": "+1 555 0100", "phones": [("+1 555 0300", "home")]}, via=Via.FORM
        )

    wile.refresh_from_db()
    assert (wile.phone, described(wile)["phones"]) == ("+1 555 0300", [("+1 555 0300", "home")])


def test_an_unknown_kind_of_phone_is_refused(org):
    with pytest.raises(InvalidInput, match="'pager' is not a kind of phone"):
        services.create_contact(org.ravi, via=Via.FORM, last_name="Coyote", phones=[("+1 555", "pager")])

    assert not Contact.objects.filter(last_name="Coyote").exists()


# --- reading cards --------------------------------------------------------------------------------


def test_an_apple_contacts_card_gives_names_preferred_address_first_and_phone_kinds():
    cards, problems = parse_vcards((DATA / "apple-contacts.vcf").read_bytes())

    assert problems == []
    [wile] = cards
    assert (wile.first_name, wile.last_name) == ("Wile E.", "Coyote")
    assert [e for e, _ in wile.emails] == ["wile@acme.example", "wile.coyote@desert.example"]
    assert [(n, k) for n, k, _ in wile.phones] == [
        ("+1 (555) 010-0100", "cell"),
        ("+1 555 010 0200", "work"),
        ("+1 555 010 0300", "other"),
        ("+1 555 010 0400", "fax"),
    ]
    assert (wile.title, wile.organisation) == ("Head of Procurement", "Acme Corp")


def test_a_google_export_gives_every_card_with_folded_and_escaped_text_unfolded():
    cards, problems = parse_vcards((DATA / "google-export.vcf").read_bytes())

    assert problems == []
    assert [(c.number, c.line, c.name) for c in cards] == [
        (1, 1, "Rosa Diaz"),
        (2, 14, "José Müller-Lüdenscheidt"),
        (3, 26, "Kevin Cozner"),
    ]
    assert cards[1].title == "Director of Strategic Partnerships, Europe, the Middle East and Africa (EMEA)"
    assert cards[2].emails == [] and cards[2].phones == [("555-0142", "other", 30)]


def test_the_rfc_6350_example_reads_tel_uris_with_extension_and_the_preferred_number_first():
    [simon], problems = parse_vcards((DATA / "rfc6350-example.vcf").read_bytes())

    assert problems == []
    assert (simon.first_name, simon.last_name, simon.organisation) == ("Simon", "Perreault", "Viagenie")
    assert [(n, k) for n, k, _ in simon.phones] == [
        ("+1-418-656-9254 ext. 102", "work"),
        ("+1-418-262-6501", "cell"),
    ]
    assert simon.emails == [("simon.perreault@viagenie.ca", 15)]


def test_a_vcard_2_1_export_with_quoted_printable_and_latin_1_is_read():
    [jorg, ines], problems = parse_vcards((DATA / "legacy-2.1.vcf").read_bytes())

    assert problems == []
    assert (jorg.first_name, jorg.last_name) == ("Jörg", "Müller")
    assert jorg.title == "Leiter Einkauf und Logistik, Region Südwest"
    assert [(n, k) for n, k, _ in jorg.phones] == [("+49 170 1234567", "cell"), ("+49 30 1234568", "fax")]
    assert (ines.first_name, ines.last_name) == ("Inés", "Peña")


@pytest.mark.parametrize(
    "line, kind",
    [
        ("TEL;TYPE=work:+1 555 0100", "work"),
        ('TEL;TYPE="work,voice":+1 555 0100', "work"),
        ("TEL;type=HOME;type=VOICE:+1 555 0100", "home"),
        ("TEL;CELL:+1 555 0100", "cell"),
        ("TEL;TYPE=work,fax:+1 555 0100", "fax"),
        ("TEL;VALUE=uri;TYPE=cell:tel:+1-555-0100", "cell"),
        ("TEL:+1 555 0100", "other"),
    ],
)
def test_the_kind_of_a_phone_comes_from_its_types_however_they_are_written(line, kind):
    assert parse_one("N:Coyote;Wile;;;", line).phones[0][1] == kind


def test_without_n_the_formatted_name_is_split_and_an_address_or_a_company_is_no_name():
    assert parse_one("FN:Wile E. Coyote").name == "Wile E. Coyote"
    assert (parse_one("FN:Wile E. Coyote").first_name, parse_one("FN:Wile E. Coyote").last_name) == (
        "Wile E.",
        "Coyote",
    )
    assert parse_one("N:;;;;", "FN:wile@acme.example", "EMAIL:wile@acme.example").name == ""
    assert parse_one("N:;;;;", "FN:Acme Corp", "X-ABShowAs:COMPANY", "ORG:Acme Corp").name == ""


def test_an_unescaped_comma_in_a_title_is_kept():
    assert parse_one("FN:Wile Coyote", "TITLE:Head, Procurement").title == "Head, Procurement"


def test_a_broken_file_names_each_bad_card_and_line():
    cards, problems = parse_vcards((DATA / "broken.vcf").read_bytes())

    assert [c.number for c in cards] == [1, 2, 4]
    assert [str(p) for p in problems] == [
        "card 3 (line 14): malformed line: 'this line has no colon'",
        "card 5 (line 22): the file ends before END:VCARD",
    ]


def test_something_that_is_not_a_vcard_says_so():
    _, problems = parse_vcards(b"name,email\nWile,wile@acme.example\nRoad,road@acme.example\n")

    assert [str(p) for p in problems] == ["line 1: text outside BEGIN:VCARD … END:VCARD: 'name,email'"]


# --- importing ------------------------------------------------------------------------------------


def test_ravi_imports_an_apple_card_into_his_account_found_by_name_in_any_case(org, tmp_path):
    path = tmp_path / "wile.vcf"
    path.write_bytes((DATA / "apple-contacts.vcf").read_bytes().replace(b"ORG:Acme Corp", b"ORG:ACME corp"))

    report = import_vcards([("", path.read_bytes())], actor=org.ravi)

    assert report.committed and report.created == 1 and report.errors == []
    wile = Contact.objects.get(last_name="Coyote")
    assert wile.account == org.acme and wile.owner == org.ravi
    assert described(wile)["emails"] == ["wile@acme.example", "wile.coyote@desert.example"]
    assert wile.phone == "+1 (555) 010-0100"


def test_an_unknown_organisation_is_left_out_with_a_warning_unless_accounts_may_be_created(org):
    without = import_vcards([sample("rfc6350-example.vcf")], actor=org.ravi, dry_run=True)
    report = import_vcards([sample("rfc6350-example.vcf")], actor=org.ravi, create_accounts=True)

    assert [str(w) for w in without.warnings] == [
        "card 1 (line 1): no account named “Viagenie” that you can see: the contact was saved without one "
        "(--create-accounts creates it)"
    ]
    assert report.accounts_created == 1 and report.warnings == []
    simon = Contact.objects.get(last_name="Perreault")
    assert simon.account.name == "Viagenie" and simon.account.owner == org.ravi


def test_ravi_does_not_get_a_second_globex_when_owens_globex_is_hidden_from_him(org):
    report = import_vcards(
        [card("N:Diaz;Rosa;;;", "EMAIL:rosa@globex.example", "ORG:Globex")],
        actor=org.ravi,
        create_accounts=True,
    )

    assert report.committed and Account.objects.filter(name="Globex").count() == 1
    assert Contact.objects.get(last_name="Diaz").account is None
    assert "no account named “Globex” that you can see" in str(report.warnings[0])


def test_a_card_with_a_known_address_adds_to_that_contact_and_never_overwrites_its_name(org):
    wile = services.create_contact(
        org.ravi,
        via=Via.FORM,
        first_name="Wile",
        last_name="Coyote",
        emails=["wile.coyote@desert.example"],
        phones=[("+1-555-010-0200", "work")],
    )

    report = import_vcards([sample("apple-contacts.vcf")], actor=org.ravi)

    assert (report.created, report.updated) == (0, 1)
    wile.refresh_from_db()
    assert described(wile) == {
        "name": ("Wile", "Coyote"),
        "emails": ["wile.coyote@desert.example", "wile@acme.example"],
        # +1 555 010 0200 is the number Ravi already had, written differently.
        "phones": [
            ("+1-555-010-0200", "work"),
            ("+1 (555) 010-0100", "cell"),
            ("+1 555 010 0300", "other"),
            ("+1 555 010 0400", "fax"),
        ],
        "phone": "+1-555-010-0200",
        "title": "Head of Procurement",
        "account": "Acme Corp",
    }
    assert [str(w) for w in report.warnings] == [
        "card 1 (line 1): kept the name “Wile Coyote”; the card says “Wile E. Coyote”"
    ]


def test_importing_the_same_file_twice_changes_nothing_the_second_time(org):
    files = [sample(name) for name in SAMPLES]
    import_vcards(files, actor=None, create_accounts=True)

    again = import_vcards(files, actor=None, create_accounts=True)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 7)


def test_a_card_with_the_addresses_of_two_contacts_is_bad(org):
    for last, email in (("Coyote", "wile@acme.example"), ("Runner", "road@acme.example")):
        services.create_contact(org.ravi, via=Via.FORM, last_name=last, emails=[email])

    report = import_vcards(
        [card("FN:Wile Coyote", "EMAIL:wile@acme.example", "EMAIL:road@acme.example")], actor=org.ravi
    )

    assert [str(e) for e in report.errors] == [
        "card 1 (line 5): wile@acme.example and road@acme.example are the addresses of two different "
        "contacts: merge them, or split the card"
    ]
    assert not report.committed


def test_a_bad_card_stops_the_whole_file_unless_skip_bad(org):
    strict = import_vcards([sample("broken.vcf")], actor=org.ravi)

    assert not strict.committed and Contact.objects.count() == 0
    assert [str(e) for e in strict.errors] == [
        "card 2 (line 6): the card has no name (N or FN) and no e-mail address",
        "card 3 (line 14): malformed line: 'this line has no colon'",
        "card 4 (line 20): 'not-an-address' is not an e-mail address",
        "card 5 (line 22): the file ends before END:VCARD",
    ]
    assert strict.summary().startswith("Nothing was imported: 4 cards have errors.")

    lenient = import_vcards([sample("broken.vcf")], actor=org.ravi, skip_bad=True)

    assert lenient.committed and lenient.created == 1 and lenient.rejected == 4
    assert [c.full_name for c in Contact.objects.all()] == ["Good Card"]


def test_an_account_created_for_a_card_that_then_fails_is_created_again_for_the_next(org):
    too_long = "TITLE:" + "Very " * 30
    report = import_vcards(
        [("", card("N:Doe;Jane;;;", "ORG:Initech", too_long)[1] + card("N:Doe;John;;;", "ORG:Initech")[1])],
        actor=org.ravi,
        skip_bad=True,
        create_accounts=True,
    )

    assert [str(e) for e in report.errors] == ["card 1 (line 1): Title: at most 120 characters"]
    assert report.committed and report.accounts_created == 1 and report.warnings == []
    assert Contact.objects.get().account == Account.objects.get(name="Initech")


def test_a_dry_run_counts_everything_and_writes_nothing(org):
    report = import_vcards([sample(name) for name in SAMPLES], actor=None, dry_run=True, create_accounts=True)

    assert report.created == 7 and report.accounts_created == 2 and not report.committed
    assert Contact.objects.count() == 0 and not Account.objects.filter(name="Viagenie").exists()


def test_ravi_cannot_import_into_owens_contact_and_does_not_learn_its_name(org):
    """Importing as Ravi: a card whose address belongs to a contact of Owen's, on the other team."""
    services.create_contact(
        org.owen, via=Via.FORM, first_name="Hank", last_name="Scorpio", emails=["h@g.example"]
    )

    report = import_vcards(
        [card("N:Stranger;Someone;;;", "EMAIL:h@g.example", "TEL:+1 555 0100")], actor=org.ravi
    )

    assert [str(e) for e in report.errors] == [
        "card 1 (line 4): h@g.example is the address of a contact you may not change"
    ]
    assert "Scorpio" not in str(report.errors) and not report.committed
    assert not ContactPhone.objects.exists()


def test_dana_the_delivery_lead_reads_contacts_but_cannot_import_them(org):
    report = import_vcards([sample("rfc6350-example.vcf")], actor=org.dana)

    assert [str(e) for e in report.errors] == [
        "card 1 (line 1): Your role can read records but not create them"
    ]
    assert not Contact.objects.exists()


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_export_then_import_into_a_clean_database_gives_the_same_contacts(db, version):
    files = [sample(name) for name in SAMPLES]
    assert import_vcards(files, actor=None, create_accounts=True).committed
    acme = Account.objects.get(name="Acme Corp")
    services.create_contact(
        None,
        via=Via.FORM,
        first_name="Mary, Ann",
        last_name="O'Brien; Jr.\\",
        title="Head of Sales; Northern Europe, Baltics & Nordics (interim) — a title long enough to fold",
        account=acme,
        emails=["mary@acme.example", "mab@home.example"],
        phones=[("+1 555 0100,,123", "work"), ("0044 20 7946 0000", "home"), ("+33-1-23-45-67-89", "fax")],
    )
    services.create_contact(None, via=Via.FORM, emails=["nameless@acme.example"])
    before = everyone()
    exported = "".join(write_vcards(None, version))

    Contact.objects.all().delete()
    Account.objects.all().delete()
    report = import_vcards([("", exported)], actor=None, create_accounts=True)

    assert report.errors == [] and report.warnings == [] and report.created == len(before) == 9
    assert everyone() == before


def test_a_4_0_export_writes_tel_uris_where_that_loses_nothing_and_folds_long_lines(db):
    simon = import_vcards([sample("rfc6350-example.vcf")], actor=None) and Contact.objects.get()
    services.update_contact(None, simon, {"title": "Architecte principal — " * 4}, via=Via.FORM)

    text = contact_vcard(Contact.objects.get(), "4.0")

    lines = text.split("\r\n")
    assert lines[:2] == ["BEGIN:VCARD", "VERSION:4.0"] and text.endswith("END:VCARD\r\n")
    assert "TEL;VALUE=uri;TYPE=work;PREF=1:tel:+1-418-656-9254;ext=102" in lines
    assert "TEL;VALUE=uri;TYPE=cell:tel:+1-418-262-6501" in lines
    assert all(len(line.encode()) <= 75 for line in lines)
    assert any(line.startswith(" ") for line in lines)


# --- the command line -----------------------------------------------------------------------------


def test_truepipe_import_vcard_takes_several_files_as_the_given_user(org):
    out, err = run(
        "import", "vcard", str(DATA / "apple-contacts.vcf"), str(DATA / "google-export.vcf"), "--as", "ravi"
    )

    assert out.strip() == "Imported vCards: created 4, updated 0, unchanged 0, rejected 0, warnings 2."
    assert "google-export.vcf, card 1 (line 1): no account named “Globex” that you can see" in err
    assert Contact.objects.filter(owner=org.ravi).count() == 4


def test_truepipe_import_vcf_reports_bad_cards_and_fails_without_writing(org):
    with pytest.raises(SystemExit) as exit_:
        run("import", "vcf", str(DATA / "broken.vcf"))

    assert exit_.value.code == 1 and not Contact.objects.exists()
    out, err = run("import", "vcf", str(DATA / "broken.vcf"), "--skip-bad", "--dry-run")
    assert "card 3 (line 14): malformed line" in err and out.startswith("Dry run of vCard import")
    assert not Contact.objects.exists()


def test_truepipe_import_vcard_refuses_an_unknown_user_and_a_missing_file(org):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        run("import", "vcard", str(DATA / "broken.vcf"), "--as", "nobody")
    with pytest.raises(CommandError, match="Cannot read .*missing.vcf"):
        run("import", "vcard", str(DATA / "missing.vcf"))


def test_truepipe_export_contacts_as_vcards_in_either_version(org):
    import_vcards([sample("rfc6350-example.vcf")], actor=org.ravi)

    three, _ = run("export", "contacts", "--format", "vcard", "--as", "ravi")
    four, _ = run("export", "contacts", "--format", "vcard", "--vcard-version", "4.0")
    hidden, _ = run("export", "contacts", "--format", "vcard", "--as", "owen")

    assert "VERSION:3.0" in three and "N:Perreault;Simon;;;" in three
    assert "VERSION:4.0" in four and "tel:+1-418-656-9254;ext=102" in four
    assert hidden == ""
    with pytest.raises(CommandError, match="--format vcard is for contacts"):
        run("export", "accounts", "--format", "vcard")


# --- the web app ----------------------------------------------------------------------------------


@pytest.fixture
def book(org):
    """A contact of Ravi's at Acme and one of Owen's at Globex."""
    carla = services.create_contact(
        org.ravi,
        via=Via.FORM,
        first_name="Carla",
        last_name="Cruz",
        account=org.acme,
        emails=["carla@acme.example"],
    )
    gus = services.create_contact(
        org.owen,
        via=Via.FORM,
        first_name="Gus",
        last_name="Grant",
        account=org.globex,
        emails=["gus@globex.example"],
    )
    return carla, gus


def test_ravi_exports_only_the_contacts_he_can_see(org, book):
    response = client_for("ravi").get(reverse("contacts-vcf"))

    assert response.status_code == 200 and response["Content-Type"] == "text/vcard; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    assert "FN:Carla Cruz" in text and "Gus" not in text


def test_his_manager_maya_exports_ravis_contacts_and_the_admin_everyones(org, book):
    maya = b"".join(client_for("maya").get(reverse("contacts-vcf")).streaming_content).decode()
    ada = b"".join(client_for("ada").get(reverse("contacts-vcf") + "?version=4.0").streaming_content).decode()

    assert "FN:Carla Cruz" in maya and "Gus" not in maya
    assert "VERSION:4.0" in ada and "FN:Carla Cruz" in ada and "FN:Gus Grant" in ada


def test_the_export_costs_the_same_queries_for_many_contacts(org, django_assert_max_num_queries):
    for index in range(30):
        services.create_contact(
            org.ravi,
            via=Via.FORM,
            last_name=f"Person {index}",
            emails=[f"p{index}@acme.example"],
            phones=[("+1 555 0100", "work")],
            account=org.acme,
        )
    client = client_for("ravi")

    with django_assert_max_num_queries(12):
        text = b"".join(client.get(reverse("contacts-vcf")).streaming_content).decode()

    assert text.count("BEGIN:VCARD") == 30


def test_a_contacts_page_offers_its_vcard_and_the_card_of_a_hidden_contact_is_not_found(org, book):
    carla, gus = book
    client = client_for("ravi")

    page = client.get(reverse("contact", args=[carla.pk])).content.decode()
    response = client.get(reverse("contact-vcf", args=[carla.pk]))

    assert reverse("contact-vcf", args=[carla.pk]) in page and "Download vCard" in page
    assert response["Content-Disposition"] == 'attachment; filename="carla-cruz.vcf"'
    assert "EMAIL;TYPE=INTERNET:carla@acme.example" in response.content.decode()
    assert client.get(reverse("contact-vcf", args=[gus.pk])).status_code == 404


def test_the_contacts_list_offers_export_to_all_and_import_to_those_who_may_create(org):
    ravi = client_for("ravi").get(reverse("contacts")).content.decode()
    dana = client_for("dana").get(reverse("contacts")).content.decode()

    assert "Export vCard" in ravi and reverse("contacts-vcf-import") in ravi
    assert "Export vCard" in dana and reverse("contacts-vcf-import") not in dana


def test_uploading_a_broken_file_shows_each_bad_card_and_imports_nothing(org):
    client = client_for("ravi")
    upload = SimpleUploadedFile("broken.vcf", (DATA / "broken.vcf").read_bytes(), content_type="text/vcard")

    response = client.post(reverse("contacts-vcf-import"), {"file": upload})

    assert response.status_code == 400
    page = response.content.decode()
    assert "card 2 (line 6): the card has no name (N or FN) and no e-mail address" in page
    assert "card 4 (line 20): &#x27;not-an-address&#x27; is not an e-mail address" in page
    assert not Contact.objects.exists()


def test_uploading_with_skip_bad_imports_the_good_cards_as_the_user(org):
    upload = SimpleUploadedFile("broken.vcf", (DATA / "broken.vcf").read_bytes())

    response = client_for("ravi").post(reverse("contacts-vcf-import"), {"file": upload, "skip_bad": "on"})

    assert response.status_code == 200 and "Imported vCards: created 1" in response.content.decode()
    assert Contact.objects.get().owner == org.ravi


def test_dana_cannot_upload_vcards(org):
    upload = SimpleUploadedFile("card.vcf", (DATA / "rfc6350-example.vcf").read_bytes())

    response = client_for("dana").post(reverse("contacts-vcf-import"), {"file": upload})

    assert response.status_code == 403 and not Contact.objects.exists()
