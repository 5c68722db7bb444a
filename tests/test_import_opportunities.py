"""Importing opportunities from CSV: formats, mapping, bad rows, transactions, re-import."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from truepipe.core import hooks
from truepipe.core.models import ExternalId, Via
from truepipe.importer.importing import ImportAborted, ImportOptions, run_import
from truepipe.pipeline.models import Opportunity, OpportunityChange

DATA = Path(__file__).parent / "data"


def options(**kwargs) -> ImportOptions:
    return ImportOptions(progress=False, **kwargs)


def deals_named(*names: str) -> dict[str, Opportunity]:
    return {
        opp.name: opp for opp in Opportunity.objects.filter(name__in=names).select_related("stage", "owner")
    }


def write_csv(tmp_path: Path, text: str, name: str = "deals.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_salesforce_report_imports_with_its_own_column_names(org):
    report = run_import("opportunities", DATA / "salesforce_opportunities.csv", options())

    assert report.committed and report.recognised == "salesforce" and report.system == "salesforce"
    assert (report.created, report.rejected) == (3, 0)
    deals = deals_named("Acme platform deal", "Globex rollout", "Acme side project")
    platform = deals["Acme platform deal"]
    assert platform.owner == org.ravi and platform.account == org.acme
    assert platform.amount == Decimal("25000.00") and platform.close_date == dt.date(2027, 3, 15)
    assert platform.next_step == "Send contract" and platform.created_at.date() == dt.date(2026, 1, 10)
    assert deals["Globex rollout"].stage.name == "Won" and deals["Globex rollout"].owner == org.owen
    assert deals["Acme side project"].stage.name == "Lost"
    assert ExternalId.objects.filter(
        kind="opportunity", system="salesforce", value="0061x00000AbCdE"
    ).exists()
    assert report.ignored == ["Type"]


def test_a_hubspot_deal_export_imports_with_its_own_column_names(org):
    report = run_import("opportunities", DATA / "hubspot_deals.csv", options())

    assert report.recognised == "hubspot" and report.created == 2
    deals = deals_named("Acme analytics", "Globex support")
    assert deals["Acme analytics"].owner == org.rita and deals["Acme analytics"].stage.name == "Discovery"
    assert deals["Globex support"].owner == org.owen and deals["Globex support"].amount == Decimal("30000")
    assert ExternalId.objects.filter(system="hubspot", value="9002").exists()


def test_a_pipedrive_deal_export_imports_with_its_own_column_names(org):
    report = run_import("opportunities", DATA / "pipedrive_deals.csv", options())

    assert report.recognised == "pipedrive" and report.created == 2
    deals = deals_named("Acme training", "Globex audit")
    assert deals["Acme training"].currency == "EUR" and deals["Acme training"].amount == Decimal("4500")
    assert deals["Globex audit"].lost_reason == "Budget cut" and deals["Globex audit"].stage.name == "Lost"


def test_map_points_unknown_columns_at_fields(org):
    mapping = {
        "Deal Ref": "external_id",
        "Deal Title": "name",
        "Customer": "account",
        "Rep": "owner",
        "Phase": "stage",
        "Value (USD)": "amount",
        "Expected": "close_date",
    }
    report = run_import("opportunities", DATA / "custom_columns.csv", options(mapping=mapping))

    assert report.created == 2 and report.system == "csv"
    assert deals_named("Globex renewal")["Globex renewal"].amount == Decimal("15000")


def test_a_file_without_an_owner_column_is_refused_with_the_way_to_map_one(org):
    with pytest.raises(ImportAborted, match=r"no owner column.*--map COLUMN=owner"):
        run_import(
            "opportunities",
            DATA / "custom_columns.csv",
            options(mapping={"Deal Title": "name", "Phase": "stage"}),
        )


def test_a_dry_run_reports_the_counts_and_writes_nothing(org):
    before = Opportunity.objects.count()

    report = run_import("opportunities", DATA / "salesforce_opportunities.csv", options(dry_run=True))

    assert report.created == 3 and not report.committed
    assert Opportunity.objects.count() == before
    assert not ExternalId.objects.exists()


def test_every_bad_row_is_reported_with_its_line_and_column(org):
    report = run_import("opportunities", DATA / "bad_opportunities.csv", options())

    messages = [str(error) for error in report.errors]
    assert messages == [
        'line 3, column "close_date": "31/31/2020" is not a date',
        'line 4, column "owner": no person "nobody" (looked up by username, e-mail and full name); '
        "import users first",
        'line 5, column "stage": "Dreaming" is not a stage of the pipeline (Prospecting, Qualification, '
        'Discovery, Proposal, Negotiation, Won, Lost); map it to one with --stage-map "Dreaming=STAGE"',
        'line 6, column "amount": "lots" is not an amount',
        'line 8, column "amount": The amount must be zero or more.',
    ]
    assert report.rejected == 5


def test_by_default_one_bad_row_means_nothing_is_written(org):
    before = Opportunity.objects.count()

    report = run_import("opportunities", DATA / "bad_opportunities.csv", options())

    assert not report.committed
    assert Opportunity.objects.count() == before
    assert "Nothing was imported: 5 rows" in report.summary()


def test_skip_bad_imports_the_good_rows_and_writes_the_bad_ones_to_the_reject_file(org, tmp_path):
    rejects = tmp_path / "rejects.csv"

    report = run_import(
        "opportunities", DATA / "bad_opportunities.csv", options(skip_bad=True, reject_file=rejects)
    )

    assert report.committed and report.created == 2
    assert set(deals_named("Good deal", "Another good deal")) == {"Good deal", "Another good deal"}
    rows = list(csv.DictReader(rejects.open()))
    assert [row["id"] for row in rows] == ["B2", "B3", "B4", "B5", "B7"]
    assert rows[0]["close_date"] == "31/31/2020"
    assert rows[0]["error"] == 'line 3: close_date: "31/31/2020" is not a date'
    assert rows[4]["error"] == "line 8: amount: The amount must be zero or more."


def test_the_command_exits_non_zero_and_lists_the_bad_rows(org):
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "opportunities", str(DATA / "bad_opportunities.csv"), stdout=out, stderr=err)

    assert exit_info.value.code == 1
    assert 'line 3, column "close_date": "31/31/2020" is not a date' in err.getvalue()
    assert "Nothing was imported" in out.getvalue()
    assert not Opportunity.objects.filter(name="Good deal").exists()


def test_stage_gaps_are_imported_and_counted_as_warnings_per_kind_of_flaw(org):
    report = run_import("opportunities", DATA / "lost_without_reason.csv", options())

    assert report.committed and report.created == 4 and not report.errors
    assert report.warnings["stage Lost requires lost_reason (missing)"] == [2, 3]
    assert report.warnings["stage Qualification requires account (missing)"] == [5]
    assert "2 rows: stage Lost requires lost_reason (missing) (lines 2, 3)" in report.warning_lines()


def test_reimporting_the_same_file_creates_no_duplicates(org):
    run_import("opportunities", DATA / "salesforce_opportunities.csv", options())
    count = Opportunity.objects.count()

    report = run_import("opportunities", DATA / "salesforce_opportunities.csv", options())

    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert Opportunity.objects.count() == count


def test_reimporting_a_changed_file_updates_by_external_id_and_records_history(org, tmp_path):
    first = (
        "external_id,name,account,owner,stage,amount,close_date\n"
        "X1,Acme big deal,Acme Corp,ravi,Proposal,1000,2027-01-31\n"
    )
    run_import("opportunities", write_csv(tmp_path, first), options())
    deal = Opportunity.objects.get(name="Acme big deal")
    second = first.replace("1000,2027-01-31", "2500,2027-03-31")

    report = run_import("opportunities", write_csv(tmp_path, second, "again.csv"), options())

    assert (report.created, report.updated) == (0, 1)
    deal.refresh_from_db()
    assert deal.amount == Decimal("2500") and deal.close_date == dt.date(2027, 3, 31) and deal.version == 2
    changes = {
        c.field: (c.old_value, c.new_value, c.via) for c in OpportunityChange.objects.filter(opportunity=deal)
    }
    assert changes == {
        "amount": ("1000", "2500", Via.IMPORT),
        "close_date": ("2027-01-31", "2027-03-31", Via.IMPORT),
    }


def test_a_repeated_external_id_in_one_file_is_an_error(org, tmp_path):
    text = "external_id,name,owner,stage\nD1,One,ravi,Prospecting\nD1,Two,ravi,Prospecting\n"

    report = run_import("opportunities", write_csv(tmp_path, text), options())

    assert [str(e) for e in report.errors] == [
        'line 3, column "external_id": "D1" already appeared on line 2'
    ]


def test_dayfirst_reads_european_dates(org, tmp_path):
    text = "name,owner,stage,close_date\nEU deal,ravi,Prospecting,03/04/2027\n"

    run_import("opportunities", write_csv(tmp_path, text), options(dayfirst=True))

    assert Opportunity.objects.get(name="EU deal").close_date == dt.date(2027, 4, 3)


def test_stage_map_turns_another_crms_stage_into_ours(org, tmp_path):
    text = "name,owner,stage\nEngaged deal,ravi,Engaging\n"

    report = run_import(
        "opportunities", write_csv(tmp_path, text), options(stage_map={"Engaging": "Discovery"})
    )

    assert report.committed
    assert Opportunity.objects.get(name="Engaged deal").stage.name == "Discovery"


def test_ctrl_c_in_the_middle_of_an_import_leaves_the_database_as_it_was(org, tmp_path):
    lines = ["external_id,name,owner,stage"] + [f"K{n},Deal {n},ravi,Prospecting" for n in range(10)]
    path = write_csv(tmp_path, "\n".join(lines) + "\n")
    before = (Opportunity.objects.count(), ExternalId.objects.count())
    batches = []

    def interrupt_on_second_batch(event: hooks.WriteEvent) -> None:
        batches.append(event.object_ids)
        if len(batches) == 2:
            raise KeyboardInterrupt

    hooks.on_write(interrupt_on_second_batch)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_import("opportunities", path, options(batch_size=3))
    finally:
        hooks._listeners.remove(interrupt_on_second_batch)

    assert len(batches[0]) == 3  # the first batch had been written before the interrupt
    assert (Opportunity.objects.count(), ExternalId.objects.count()) == before


def test_a_missing_file_is_a_clear_error_not_a_traceback(org):
    err = StringIO()
    with pytest.raises(Exception, match="does not exist"):
        call_command("import", "opportunities", "/nonexistent/deals.csv", stderr=err)


def test_an_import_run_as_a_rep_cannot_give_deals_to_another_team(org, tmp_path):
    text = "name,owner,stage\nMine,ravi,Prospecting\nNot mine,owen,Prospecting\n"

    report = run_import("opportunities", write_csv(tmp_path, text), options(actor=org.ravi))

    assert [str(e) for e in report.errors] == [
        'line 3, column "owner": You may not give records to Owen Oak: only to yourself or people who '
        "report to you."
    ]
    assert not Opportunity.objects.filter(name="Mine").exists()
