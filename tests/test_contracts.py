"""Deals never logged, part two: finance's signed contracts, matched to won deals, and unlogged wins.

Finance exports its invoices; `truepipe import contracts` matches each to a won deal. Acme's
invoice is the paperwork of Ravi's won "Acme expansion"; Initech (Rita's account) signed with
no won deal in truepipe; hooli.example, unknown to truepipe, is the company Owen keeps
e-mailing; nobody knows "Nobody Ltd". Delivery (Dana) hears of every unlogged win at import.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.capture_helpers import message
from tests.conftest import PASSWORD, stage
from tests.test_api_support import api_as
from tests.test_notify import inbox, receiver  # noqa: F401 - the SMTP server and webhook receiver
from truepipe.accounts import services as account_services
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CaptureSource
from truepipe.capture.sources import from_bytes
from truepipe.contracts.importing import run
from truepipe.contracts.models import Contract
from truepipe.contracts.services import rematch, resolve_accounts
from truepipe.core.models import ExternalId, Via
from truepipe.hygiene.engine import evaluate, find_all
from truepipe.hygiene.models import Violation, ViolationStatus
from truepipe.notify.models import Notification, Webhook, WebhookDelivery
from truepipe.pipeline import services as pipeline_services

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate()


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


HEADER = "Customer,Total,Invoice Date,Invoice,Currency\n"


def invoices() -> str:
    return HEADER + (
        f'Acme Corp,"118,500.00",{day(-10)},INV-1,USD\n'
        f"Initech,250000,{day(-3)},INV-2,USD\n"
        f"hooli.example,40000,{day(-5)},INV-3,USD\n"
        f"Nobody Ltd,1000,{day(-1)},INV-4,USD\n"
    )


def write(tmp_path, text: str, name: str = "invoices.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def finance(org):
    """Rita owns Initech; Owen has been mailing Hooli (no account); e-mail addresses for all."""
    for person in (org.ravi, org.rita, org.owen, org.maya, org.omar, org.dana, org.ada, org.vera):
        person.email = f"{person.username}@truepipe.test"
        person.save(update_fields=["email"])
    initech = account_services.create_account(
        org.rita, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    now = timezone.now()
    Ingest(None).run(
        from_bytes(
            message(
                "owen@truepipe.test", "gavin@hooli.example", f"Hooli {n}", when=now - dt.timedelta(days=n + 1)
            ).as_bytes(),
            source=CaptureSource.FILE,
            origin=f"hooli {n}",
        )
        for n in range(3)
    )
    return initech


def options(**kw):
    return {"map": [], **kw}


# ---------------------------------------------------------------- import and match


def test_each_invoice_is_matched_to_its_won_deal_or_becomes_an_unlogged_win(org, finance, tmp_path):
    outcome = run(write(tmp_path, invoices()), options())

    report = outcome.report
    assert report.committed and report.created == 4 and not report.errors
    acme = Contract.objects.get(reference="INV-1")
    assert acme.opportunity == org.ravi_won and acme.account == org.acme and acme.rep == org.ravi
    assert acme.amount == Decimal("118500.00") and acme.signed_on == TODAY - dt.timedelta(days=10)
    assert "Acme expansion" in acme.match_note and "10 days after the signature" in acme.match_note
    initech, hooli, nobody = (Contract.objects.get(reference=r) for r in ("INV-2", "INV-3", "INV-4"))
    assert (initech.account, initech.rep, initech.rep_basis) == (finance, org.rita, "account owner")
    assert (hooli.account, hooli.rep) == (None, org.owen) and hooli.rep_basis.startswith("most touches (3")
    assert (nobody.account, nobody.rep) == (None, None)
    assert {c.reference for c in outcome.unlogged} == {"INV-2", "INV-3", "INV-4"}
    assert [c.reference for c in outcome.nobody] == ["INV-4"]


def test_an_unlogged_win_opens_a_high_severity_violation_for_the_accountable_rep_at_once(
    org, finance, tmp_path
):
    run(write(tmp_path, invoices()), options())

    initech = Contract.objects.get(reference="INV-2")
    rita = Violation.objects.get(rule="unlogged_win", rep=org.rita)
    assert rita.key == f"unlogged_win:c{initech.pk}" and rita.status == ViolationStatus.OPEN and rita.live
    assert rita.severity == 3 and rita.amount == Decimal("250000")
    assert (
        rita.summary == f"Unlogged win: Initech signed 250,000 USD on {day(-3)}, and no won deal matches it"
    )
    assert rita.evidence["amount"] == "250000.00" and rita.evidence["account"] == "Initech"
    assert rita.evidence["accountable"] == "account owner" and rita.evidence["match_days"] == 45
    assert set(Violation.objects.filter(rule="unlogged_win").values_list("rep__username", flat=True)) == {
        "rita",
        "owen",
    }  # nobody answers for Nobody Ltd: the admins were told instead


def test_the_manager_and_delivery_hear_at_once_in_the_app_and_by_email(org, finance, tmp_path, inbox):  # noqa: F811
    run(write(tmp_path, invoices()), options())

    told = {
        (n.user.username, n.title)
        for n in Notification.objects.filter(event="contract.unlogged_win").select_related("user")
    }
    initech = "Unlogged win: Initech signed 250,000 USD"
    hooli = "Unlogged win: hooli.example signed 40,000 USD"
    nobody = "Unlogged win: Nobody Ltd signed 1,000 USD"
    assert told == {
        ("rita", initech),
        ("maya", initech),
        ("dana", initech),
        ("owen", hooli),
        ("omar", hooli),
        ("dana", hooli),
        ("ada", nobody),
        ("dana", nobody),
    }
    maya = Notification.objects.get(user=org.maya)
    assert maya.url == f"/accounts/{finance.pk}/" and "Rita Reyes (account owner)" in maya.body
    (mail,) = inbox.to("maya@truepipe.test")  # sent by the import itself, not the next worker run
    assert mail["Subject"] == initech and f"/accounts/{finance.pk}/" in mail.get_content()
    assert len(inbox.to("dana@truepipe.test")) == 3
    assert inbox.to("ravi@truepipe.test") == []  # his invoice matched his won deal
    assert Contract.objects.filter(notified_at__isnull=False).count() == 3


def test_the_webhook_event_carries_the_contract_and_who_answers_for_it(org, finance, tmp_path, receiver):  # noqa: F811
    Webhook.objects.create(
        name="Delivery board",
        url=f"http://127.0.0.1:{receiver.server_port}/hooks",
        events=["contract.unlogged_win"],
    )

    run(write(tmp_path, HEADER + f"Initech,250000,{day(-3)},INV-2,USD\n"), options())

    ((headers, body),) = receiver.received
    assert headers["X-Truepipe-Event"] == "contract.unlogged_win"
    payload = json.loads(body)
    assert payload["event"] == "contract.unlogged_win"
    assert payload["text"].startswith("Unlogged win: Initech signed 250,000 USD <http")
    data = payload["data"]
    contract = Contract.objects.get()
    assert data["contract"] == contract.pk and data["customer"] == "Initech"
    assert data["account"] == {"id": finance.pk, "name": "Initech"}
    assert (data["amount"], data["currency"], data["signed_on"]) == ("250000.00", "USD", day(-3))
    assert data["rep"] == {"id": org.rita.pk, "username": "rita", "name": "Rita Reyes"}
    assert data["accountable"] == "account owner"
    assert sorted(data["notified"]) == sorted([org.rita.pk, org.maya.pk, org.dana.pk])
    assert WebhookDelivery.objects.get().status == "delivered"


def test_reimporting_the_same_file_duplicates_nothing_and_tells_no_one_again(org, finance, tmp_path):
    path = write(tmp_path, invoices())
    run(path, options())
    told = Notification.objects.count()

    again = run(path, options()).report

    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    assert Contract.objects.count() == 4 and Notification.objects.count() == told
    assert Violation.objects.filter(rule="unlogged_win").count() == 2


def test_a_corrected_amount_updates_the_contract_and_a_reference_less_row_is_found_again(
    org, finance, tmp_path
):
    run(write(tmp_path, invoices()), options())
    run(write(tmp_path, HEADER + f"Umbrella,5000,{day(-2)},,EUR\n", "no-ref.csv"), options())

    fixed = run(write(tmp_path, invoices().replace("Initech,250000", "Initech,260000")), options()).report
    again = run(
        write(tmp_path, HEADER + f"umbrella,5000.00,{day(-2)},,EUR\n", "no-ref.csv"), options()
    ).report

    assert (fixed.updated, fixed.unchanged) == (1, 3)
    assert Contract.objects.get(reference="INV-2").amount == Decimal("260000")
    assert (again.created, again.unchanged) == (0, 1) and Contract.objects.count() == 5


def test_the_won_deal_logged_later_resolves_the_violation_and_matches_the_contract(org, finance, tmp_path):
    run(write(tmp_path, invoices()), options())
    initech = Contract.objects.get(reference="INV-2")
    # Rita logs it at last: won, 3% off the invoice, closed two days after the signature.
    deal = pipeline_services.create_opportunity(
        org.rita,
        name="Initech rollout",
        account=finance,
        stage=stage("Won"),
        amount=Decimal("242500"),
        close_date=TODAY - dt.timedelta(days=1),
        via=Via.FORM,
    )

    evaluate()

    violation = Violation.objects.get(rule="unlogged_win", rep=org.rita)
    assert violation.status == ViolationStatus.RESOLVED and not violation.live
    initech.refresh_from_db()
    assert initech.opportunity == deal and initech.rep == org.rita and initech.rep_basis == "deal owner"
    assert initech.matched_at is not None and "Initech rollout" in initech.match_note
    assert Violation.objects.get(rule="unlogged_win", rep=org.owen).status == ViolationStatus.OPEN


def test_matching_needs_the_amount_date_and_currency_and_takes_the_closest_free_deal(org, finance, tmp_path):
    def won(name, amount, close_offset, currency="USD"):
        return pipeline_services.create_opportunity(
            org.rita,
            name=name,
            account=finance,
            stage=stage("Won"),
            amount=Decimal(amount),
            currency=currency,
            close_date=TODAY + dt.timedelta(days=close_offset),
            via=Via.FORM,
        )

    won("Too far", 100000, -70)
    won("Too small", 85000, -20)
    won("In euros", 100000, -20, "EUR")
    near = won("Near", 104000, -22)
    nearest = won("Nearest", 100500, -21)
    csv = HEADER + "".join(f"Initech,100000,{day(-20)},{ref},USD\n" for ref in "ABC")

    run(write(tmp_path, csv), options())

    matched = dict(Contract.objects.values_list("reference", "opportunity"))
    assert matched == {"A": nearest.pk, "B": near.pk, "C": None}  # a deal is one contract's only
    [unlogged] = find_all(timezone.now())["unlogged_win"]
    assert unlogged.key == f"unlogged_win:c{Contract.objects.get(reference='C').pk}"


def test_a_customer_resolves_by_name_domain_or_external_id(org, finance):
    ExternalId.objects.create(kind="account", system="salesforce", value="001XYZ", object_id=org.globex.pk)

    found = resolve_accounts(["acme corp", "https://www.initech.example/about", "001XYZ", "Unknown Inc"])

    assert found == {
        "acme corp": org.acme,
        "https://www.initech.example/about": finance,
        "001XYZ": org.globex,
    }


# ---------------------------------------------------------------- bad rows, dry runs, the command


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(org, finance, tmp_path):
    csv = HEADER + (
        f"Initech,250000,{day(-3)},INV-2,USD\n"
        f"Acme Corp,lots,{day(-3)},INV-5,USD\n"
        f"Acme Corp,100,31/31/2026,INV-6,USD\n"
        f",100,{day(-3)},INV-7,USD\n"
        f"Acme Corp,100,{day(-3)},INV-8,DOLLARS\n"
        f"Initech,250000,{day(-3)},INV-2,USD\n"
    )

    report = run(write(tmp_path, csv), options()).report

    assert [str(e) for e in report.errors] == [
        'line 3, column "Total": "lots" is not an amount',
        'line 4, column "Invoice Date": "31/31/2026" is not a date',
        'line 5, column "Customer": no customer',
        'line 6, column "Currency": "DOLLARS" is not a three-letter currency code',
        'line 7, column "Invoice": reference "INV-2" is also on line 2',
    ]
    assert not report.committed and Contract.objects.count() == 0 and Notification.objects.count() == 0


def test_skip_bad_imports_the_good_rows_and_the_reject_file_keeps_the_bad(org, finance, tmp_path):
    csv = HEADER + f"Initech,250000,{day(-3)},INV-2,USD\nAcme Corp,lots,{day(-3)},INV-5,USD\n"
    rejects = tmp_path / "bad.csv"

    report = run(write(tmp_path, csv), options(skip_bad=True, reject_file=rejects)).report

    assert report.committed and report.created == 1 and report.rejected == 1
    assert Contract.objects.get().reference == "INV-2"
    assert rejects.read_text().splitlines()[1].startswith("Acme Corp,lots,")
    assert 'line 3: Total: ""lots"" is not an amount' in rejects.read_text()


def test_a_dry_run_matches_and_reports_but_writes_and_tells_nothing(org, finance, tmp_path):
    outcome = run(write(tmp_path, invoices()), options(dry_run=True))

    assert outcome.report.dry_run and not outcome.report.committed and outcome.report.created == 4
    assert [c.reference for c in outcome.matched] == ["INV-1"] and len(outcome.unlogged) == 3
    assert Contract.objects.count() == 0 and Notification.objects.count() == 0
    assert not Violation.objects.filter(rule="unlogged_win").exists()


def test_truepipe_import_contracts_with_map_and_dayfirst(org, finance, tmp_path):
    signed = TODAY - dt.timedelta(days=3)
    path = write(tmp_path, f"Client,Net,Signed\nInitech,250000,{signed:%d/%m/%Y}\n")
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import", "contracts", str(path), "--map", "Net=amount", "--dayfirst", stdout=out, stderr=err
    )

    assert 'Columns: "Client"→customer, "Net"→amount, "Signed"→date.' in err.getvalue()
    assert "unlogged win: Initech, 250000.00 USD" in out.getvalue()
    assert "accountable Rita Reyes (account owner)" in out.getvalue()
    assert "Imported contracts: created 1" in out.getvalue()
    assert Contract.objects.get().signed_on == signed


def test_the_command_names_bad_lines_and_the_contract_nobody_answers_for(org, finance, tmp_path):
    bad = write(tmp_path, HEADER + f"Acme Corp,lots,{day(-3)},INV-5,USD\n", "bad.csv")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("import", "contracts", str(bad), stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert 'line 2, column "Total": "lots" is not an amount' in err.getvalue()
    assert "Nothing was imported" in out.getvalue()

    nobody = write(tmp_path, HEADER + f"Nobody Ltd,1000,{day(-1)},INV-4,USD\n", "nobody.csv")
    call_command("import", "contracts", str(nobody), "--dry-run", stdout=out, stderr=err)
    assert (
        "No accountable rep for Nobody Ltd" in err.getvalue() and "the admins would be told" in err.getvalue()
    )
    assert "Dry run of contracts import: nothing was written" in out.getvalue()


def test_a_file_without_the_needed_columns_is_refused_whole(org, tmp_path):
    path = write(tmp_path, "Customer,Notes\nAcme,hello\n")
    with pytest.raises(Exception, match="no amount or date column"):
        call_command("import", "contracts", str(path))


# ---------------------------------------------------------------- who sees them


@pytest.fixture
def imported(org, finance, tmp_path):
    run(write(tmp_path, invoices()), options())


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("dana", {"INV-1", "INV-2", "INV-3", "INV-4"}),  # delivery: every contract
        ("ada", {"INV-1", "INV-2", "INV-3", "INV-4"}),
        ("eli", {"INV-1", "INV-2", "INV-3", "INV-4"}),
        ("maya", {"INV-1", "INV-2"}),  # her team: Ravi's and Rita's
        ("omar", {"INV-3"}),  # another team's manager: Owen's
        ("rita", {"INV-2"}),
        ("ravi", {"INV-1"}),
    ],
)
def test_the_api_lists_the_contracts_each_person_may_see(org, imported, who, sees):
    body = api_as(getattr(org, who)).get("contracts").json()

    assert {item["reference"] for item in body["items"]} == sees


def test_the_api_filters_the_unlogged_wins_and_shows_the_match(org, imported):
    api = api_as(org.dana)

    unmatched = api.get("contracts", status="unmatched").json()["items"]
    [matched] = api.get("contracts", status="matched").json()["items"]

    assert {c["reference"] for c in unmatched} == {"INV-2", "INV-3", "INV-4"}
    assert matched["opportunity"] == {"id": org.ravi_won.pk, "name": "Acme expansion"}
    assert matched["rep"]["username"] == "ravi" and matched["amount"] == "118500.00"
    initech = next(c for c in unmatched if c["reference"] == "INV-2")
    assert initech["rep"]["username"] == "rita" and initech["account"]["name"] == "Initech"
    assert initech["status"] == "unmatched" and initech["notified_at"]


def test_the_contracts_page_is_for_managers_delivery_and_admins(client, org, imported):
    assert client.login(username="dana", password=PASSWORD)
    page = client.get("/contracts/")
    assert page.status_code == 200
    assert b"Unlogged wins (3)" in page.content and b"Initech" in page.content
    assert b"Acme expansion" in page.content and b"Rita Reyes" in page.content

    assert client.login(username="omar", password=PASSWORD)
    assert b"Unlogged wins (1)" in client.get("/contracts/").content

    assert client.login(username="ravi", password=PASSWORD)
    assert client.get("/contracts/").status_code == 403


def test_rematch_lets_go_of_a_deal_that_is_no_longer_won(org, imported):
    acme = Contract.objects.get(reference="INV-1")
    pipeline_services.update_opportunity(
        org.ravi, org.ravi_won, {"stage": stage("Lost"), "lost_reason": "Cancelled"}, via=Via.FORM
    )

    rematch()

    acme.refresh_from_db()
    assert acme.opportunity is None and "no longer a won deal" in acme.match_note
    assert acme.rep == org.ravi  # the account's owner answers for it now


@pytest.mark.parametrize(
    ("cell", "domain"),
    [
        ("northwind.example", "northwind.example"),
        ("Northwind Logistics (northwind.example)", "northwind.example"),
        ("https://www.northwind.example/about", "northwind.example"),
        ("Northwind Logistics Inc.", None),
        ("J. Smith & Co. Ltd", None),
    ],
)
def test_a_customer_cell_names_a_domain_alone_or_beside_the_name(cell, domain):
    from truepipe.contracts.services import domain_in

    assert domain_in(cell) == domain
