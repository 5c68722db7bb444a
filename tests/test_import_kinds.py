"""Importing users, accounts, contacts, activities and products from CSV."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model

from truepipe.accounts.models import Account, AccountChange, Contact
from truepipe.activities.models import Activity, ActivitySource
from truepipe.importer.importing import ImportOptions, run_import
from truepipe.pipeline.models import Product

DATA = Path(__file__).parent / "data"
User = get_user_model()


def options(**kwargs) -> ImportOptions:
    return ImportOptions(progress=False, **kwargs)


def test_users_import_with_managers_named_by_username_full_name_or_email(org):
    report = run_import("users", DATA / "users.csv", options())

    assert report.committed and report.created == 3
    nina = User.objects.get(username="nina")
    assert nina.profile.role == "manager" and nina.profile.manager == org.vera
    nate, nell = User.objects.get(username="nate"), User.objects.get(username="nell")
    assert nate.profile.manager == nina and nell.profile.manager == nina and nell.profile.role == "rep"
    assert nate.profile.team.name == "North"
    assert nate.profile.path == f"{org.vera.profile.path}{nina.pk}/{nate.pk}/"


def test_reimporting_users_changes_nothing(org):
    run_import("users", DATA / "users.csv", options())

    report = run_import("users", DATA / "users.csv", options())

    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)


def test_a_manager_nobody_knows_is_an_error_unless_create_managers_is_given(org, tmp_path):
    path = tmp_path / "team.csv"
    path.write_text("sales_agent,manager\nPat Price,Quinn Quill\n")
    mapping = {"sales_agent": "full_name"}

    refused = run_import("users", path, options(mapping=mapping))
    created = run_import("users", path, options(mapping=mapping, create_managers=True))

    assert [str(e) for e in refused.errors] == [
        'line 2, column "manager": no person "Quinn Quill" in truepipe or in this file; add them as a row, '
        "or pass --create-managers to create them with the manager role"
    ]
    assert created.committed and created.created == 2
    pat = User.objects.get(username="pat.price")
    assert (
        pat.profile.manager.get_full_name() == "Quinn Quill" and pat.profile.manager.profile.role == "manager"
    )


def test_accounts_import_with_parents_that_come_later_in_the_file(org):
    report = run_import("accounts", DATA / "accounts.csv", options())

    assert report.recognised == "salesforce" and report.created == 3 and report.committed
    initech = Account.objects.get(name="Initech")
    assert initech.parent.name == "Initrode" and initech.employees == 1200 and initech.owner == org.ravi
    assert initech.primary_domain == "initech.example"


def test_reimporting_a_changed_account_records_its_history(org, tmp_path):
    run_import("accounts", DATA / "accounts.csv", options())
    changed = tmp_path / "accounts.csv"
    changed.write_text((DATA / "accounts.csv").read_text().replace("Pharma,90000", "Pharma,95000"))

    report = run_import("accounts", changed, options())

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    umbrella = Account.objects.get(name="Umbrella")
    assert umbrella.employees == 95000
    change = AccountChange.objects.get(account=umbrella)
    assert (change.field, change.old_value, change.new_value, change.via) == (
        "employees",
        "90000",
        "95000",
        "import",
    )


def test_an_unknown_parent_account_is_an_error(org, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("name,parent\nSubsidiary,Nowhere Holdings\n")

    report = run_import("accounts", path, options())

    assert [str(e) for e in report.errors] == [
        'line 2, column "parent": no account named "Nowhere Holdings" in truepipe or in this file'
    ]


def test_contacts_import_from_a_hubspot_export(org):
    report = run_import("contacts", DATA / "contacts.csv", options())

    assert report.recognised == "hubspot" and report.created == 2
    wile = Contact.objects.get(last_name="Coyote")
    assert wile.account == org.acme and wile.primary_email == "wile@acme.example" and wile.title == "Buyer"
    again = run_import("contacts", DATA / "contacts.csv", options())
    assert (again.created, again.unchanged) == (0, 2)


def test_activities_import_with_their_deal_participants_and_real_logging_time(org):
    run_import("contacts", DATA / "contacts.csv", options())

    report = run_import("activities", DATA / "activities.csv", options())

    assert report.committed and report.created == 2
    call = Activity.objects.get(subject="Discovery call")
    assert call.opportunity == org.ravi_open and call.source == ActivitySource.IMPORT
    assert (call.logged_at - call.occurred_at).total_seconds() == 30 * 60
    assert [c.last_name for c in call.participants.all()] == ["Coyote"]
    assert report.warnings == {"participant ghost@nowhere.example is not a contact: left out": [3]}
    again = run_import("activities", DATA / "activities.csv", options())
    assert (again.created, again.unchanged) == (0, 2)


def test_products_import_into_the_catalogue(db):
    report = run_import(
        "products", DATA / "products.csv", options(mapping={"series": "family", "sales_price": "list_price"})
    )

    assert report.created == 2
    assert Product.objects.get(name="GTX Pro").list_price == 4821
