"""Export: canonical columns, round-trip through import, and only what the user may see."""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from truepipe.accounts.models import Account
from truepipe.importer.exporting import export_rows
from truepipe.importer.importing import ImportOptions, run_import
from truepipe.pipeline.models import Opportunity, OpportunityChange

DATA = Path(__file__).parent / "data"


def export(kind: str, *args: str) -> str:
    out = StringIO()
    call_command("export", kind, *args, stdout=out)
    return out.getvalue()


def names(kind: str, user) -> set[str]:
    header, rows = export_rows(user, kind)
    return {dict(zip(header, row, strict=True))["name"] for row in rows}


def test_export_writes_the_column_names_import_accepts(org):
    rows = list(csv.DictReader(StringIO(export("opportunities"))))

    renewal = next(row for row in rows if row["name"] == "Acme renewal")
    assert renewal["account"] == "Acme Corp" and renewal["owner"] == "ravi" and renewal["stage"] == "Proposal"
    assert renewal["amount"] == "48000.00" and renewal["external_system"] == "truepipe"


def test_exported_opportunities_import_back_without_changes_or_duplicates(org, tmp_path):
    run_import("opportunities", DATA / "salesforce_opportunities.csv", ImportOptions(progress=False))
    path = tmp_path / "export.csv"
    path.write_text(export("opportunities"))
    count, history = Opportunity.objects.count(), OpportunityChange.objects.count()

    report = run_import("opportunities", path, ImportOptions(progress=False))

    assert report.committed and (report.created, report.updated, report.unchanged) == (0, 0, count)
    assert (Opportunity.objects.count(), OpportunityChange.objects.count()) == (count, history)


def test_an_edited_export_updates_the_deal_it_came_from(org, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        export("opportunities").replace(
            "Acme renewal,Acme Corp,ravi,Proposal,48000.00", "Acme renewal,Acme Corp,ravi,Proposal,50000.00"
        )
    )

    report = run_import("opportunities", path, ImportOptions(progress=False))

    assert report.updated == 1
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.amount == 50000


def test_accounts_users_contacts_and_activities_round_trip(org, tmp_path):
    run_import("contacts", DATA / "contacts.csv", ImportOptions(progress=False))
    run_import("activities", DATA / "activities.csv", ImportOptions(progress=False))
    for kind in ("accounts", "users", "contacts", "activities"):
        path = tmp_path / f"{kind}.csv"
        path.write_text(export(kind))

        report = run_import(kind, path, ImportOptions(progress=False))

        assert report.committed and report.created == 0 and report.updated == 0, (kind, report.summary())
    assert Account.objects.count() == 2


def test_a_rep_exports_only_their_own_deals_and_their_manager_the_whole_team(org):
    assert names("opportunities", org.ravi) == {"Acme renewal", "Acme expansion"}
    assert names("opportunities", org.maya) == {"Acme renewal", "Acme expansion"}
    assert names("opportunities", org.omar) == {"Globex pilot"}
    assert names("opportunities", org.vera) == {"Acme renewal", "Acme expansion", "Globex pilot"}
    assert names("accounts", org.owen) == {"Globex"}


def test_export_as_a_user_on_the_command_line_applies_their_visibility(org):
    rows = list(csv.DictReader(StringIO(export("opportunities", "--as", "owen"))))

    assert [row["name"] for row in rows] == ["Globex pilot"]


def test_export_as_json(org):
    data = json.loads(export("accounts", "--format", "json"))

    assert {item["name"] for item in data} == {"Acme Corp", "Globex"}
    assert {item["domain"] for item in data} == {"acme.example", "globex.example"}
