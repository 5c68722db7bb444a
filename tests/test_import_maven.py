"""The real Maven CRM sample (8,800 deals) imports with the mappings documented in docs/import.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from truepipe.accounts.models import Account
from truepipe.core.models import ExternalId
from truepipe.importer.importing import ImportOptions, run_import
from truepipe.pipeline.models import Opportunity, OpportunityProduct

MAVEN = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "maven-crm"
pytestmark = pytest.mark.skipif(not MAVEN.is_dir(), reason=f"{MAVEN} is not present")

DEALS = {
    "opportunity_id": "external_id",
    "sales_agent": "owner",
    "deal_stage": "stage",
    "engage_date": "created_at",
    "close_value": "amount",
}


def options(**kwargs) -> ImportOptions:
    return ImportOptions(progress=False, **kwargs)


def import_people_accounts_and_products() -> None:
    users = run_import(
        "users",
        MAVEN / "sales_teams.csv",
        options(mapping={"sales_agent": "full_name", "regional_office": "team"}, create_managers=True),
    )
    accounts = run_import(
        "accounts",
        MAVEN / "accounts.csv",
        options(mapping={"account": "name", "sector": "industry", "subsidiary_of": "parent"}),
    )
    products = run_import(
        "products",
        MAVEN / "products.csv",
        options(mapping={"product": "name", "series": "family", "sales_price": "list_price"}),
    )
    assert (users.created, accounts.created, products.created) == (35 + 6, 85, 7)
    assert users.committed and accounts.committed and products.committed
    assert accounts.ignored == ["year_established", "revenue", "office_location"]


@pytest.fixture
def maven_org(db):
    import_people_accounts_and_products()


def test_the_maven_team_file_makes_reps_under_their_managers(maven_org):
    User = get_user_model()
    darcel = User.objects.select_related("profile__manager", "profile__team").get(username="darcel.schlecht")

    assert darcel.profile.manager.get_full_name() == "Melvin Marxen"
    assert darcel.profile.team.name == "Central" and darcel.profile.manager.profile.role == "manager"
    assert Account.objects.get(name="Bluth Company").parent.name == "Acme Corporation"


def test_without_mappings_the_maven_deals_are_refused_with_the_fixes_named(maven_org):
    report = run_import("opportunities", MAVEN / "sales_pipeline.csv", options(mapping=DEALS, system="maven"))

    assert not report.committed and Opportunity.objects.count() == 0
    assert report.rejected == 1589
    assert report.error_groups() == [
        '1589 rows: column "deal_stage": "Engaging" is not a stage of the pipeline (Prospecting, '
        "Qualification, Discovery, Proposal, Negotiation, Won, Lost); map it to one with "
        '--stage-map "Engaging=STAGE"'
    ]
    gtxpro = next(message for message in report.warnings if '"GTXPro"' in message)
    assert 'did you mean "GTX Pro"? map it with --product-map "GTXPro=GTX Pro"' in gtxpro


def test_all_8800_maven_deals_import_with_the_documented_mappings_and_every_flaw_reported(maven_org):
    report = run_import(
        "opportunities",
        MAVEN / "sales_pipeline.csv",
        options(
            mapping=DEALS,
            system="maven",
            stage_map={"Engaging": "Discovery"},
            product_map={"GTXPro": "GTX Pro"},
        ),
    )

    assert report.committed and (report.created, report.rejected) == (8800, 0)
    assert {message: len(lines) for message, lines in report.warnings.items()} == {
        "no deal name: named after its account and product": 8800,
        "stage Lost requires lost_reason (missing)": 2473,
        "stage Discovery requires next_step (missing)": 1589,
        "stage Discovery requires account (missing)": 1088,
    }
    idle = "carl.lin, carol.thompson, elizabeth.anderson, mei.mei.johns, natalya.ivanova"
    assert report.notes == [f"5 reps own no opportunity: {idle}."]
    by_stage = {
        name: Opportunity.objects.filter(stage__name=name).count() for name in ("Won", "Lost", "Discovery")
    }
    assert by_stage == {"Won": 4238, "Lost": 2473, "Discovery": 1589}
    assert Opportunity.objects.filter(stage__name="Prospecting").count() == 500
    assert OpportunityProduct.objects.filter(product__name="GTX Pro").count() == 1480
    deal = Opportunity.objects.get(pk=ExternalId.objects.get(system="maven", value="Z063OYW0").object_id)
    assert deal.name == "Isdom – GTX Pro"
    assert (
        deal.owner.username == "darcel.schlecht"
        and deal.amount == 4514
        and deal.closed_at.date().isoformat() == "2017-03-11"
    )

    again = run_import(
        "opportunities",
        MAVEN / "sales_pipeline.csv",
        options(
            mapping=DEALS,
            system="maven",
            stage_map={"Engaging": "Discovery"},
            product_map={"GTXPro": "GTX Pro"},
        ),
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8800)
    assert Opportunity.objects.count() == 8800
