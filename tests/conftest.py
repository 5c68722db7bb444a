"""Shared fixtures: a small sales organisation with named personas.

    vera (VP, manager role)
    ├── maya (manager, team East) ── ravi (rep), rita (rep)
    └── omar (manager, team West) ── owen (rep)
    ada (admin), eli (exec), dana (delivery)

"Another team's manager" for ravi is omar.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from truepipe.accounts import services as account_services
from truepipe.core.models import Via
from truepipe.people.models import Role
from truepipe.people.services import create_person
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Stage

PASSWORD = "correct-horse-battery"


def pytest_configure(config):
    # Under CI the PostgreSQL run must not silently fall back to SQLite.
    url = os.environ.get("TRUEPIPE_DATABASE_URL", "")
    if os.environ.get("CI") and url.startswith("postgres"):
        import psycopg

        try:
            psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=5).close()
        except Exception as exc:  # noqa: BLE001 - any failure means the run cannot be trusted
            raise pytest.UsageError(
                f"PostgreSQL at TRUEPIPE_DATABASE_URL is unreachable under CI: {exc}"
            ) from exc


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def tamper_with_audit_log(sql: str, params: list | None = None) -> None:
    """What someone with database access could do to the audit log: remove its append-only
    triggers, run a statement, put them back."""
    from importlib import import_module

    from django.db import connection

    migration = import_module("truepipe.audit.migrations.0002_append_only_triggers")
    sqlite = connection.vendor == "sqlite"
    with connection.cursor() as cursor:
        for statement in migration.SQLITE_UNDO if sqlite else migration.POSTGRESQL_UNDO:
            cursor.execute(statement)
        cursor.execute(sql, params)
        for statement in migration.SQLITE if sqlite else migration.POSTGRESQL:
            cursor.execute(statement)


@pytest.fixture(autouse=True)
def _audit_log_emptied_before_the_flush(request):
    """A transactional test ends by flushing every table, which SQLite does with DELETE: the audit
    log's triggers refuse it, so its entries go first, the way only a test may."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and marker.kwargs.get("transaction")) or "live_server" in request.fixturenames
    if not transactional:
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    from django.db import connection

    if connection.vendor == "sqlite":
        tamper_with_audit_log("DELETE FROM audit_auditentry")


def stage(name: str) -> Stage:
    return Stage.objects.get(name=name)


@pytest.fixture
def org(db):
    """The personas, an account per team and a few deals; everything via the service layer."""
    vera = create_person(None, username="vera", full_name="Vera Vance", role=Role.MANAGER, password=PASSWORD)
    maya = create_person(
        None,
        username="maya",
        full_name="Maya Moss",
        role=Role.MANAGER,
        manager=vera,
        team="East",
        password=PASSWORD,
    )
    omar = create_person(
        None,
        username="omar",
        full_name="Omar Ortiz",
        role=Role.MANAGER,
        manager=vera,
        team="West",
        password=PASSWORD,
    )
    ravi = create_person(
        None,
        username="ravi",
        email="ravi@truepipe.test",
        full_name="Ravi Rao",
        role=Role.REP,
        manager=maya,
        team="East",
        password=PASSWORD,
    )
    rita = create_person(
        None,
        username="rita",
        full_name="Rita Reyes",
        role=Role.REP,
        manager=maya,
        team="East",
        password=PASSWORD,
    )
    owen = create_person(
        None,
        username="owen",
        full_name="Owen Oak",
        role=Role.REP,
        manager=omar,
        team="West",
        password=PASSWORD,
    )
    ada = create_person(None, username="ada", full_name="Ada Admin", role=Role.ADMIN, password=PASSWORD)
    eli = create_person(None, username="eli", full_name="Eli Exec", role=Role.EXEC, password=PASSWORD)
    dana = create_person(
        None, username="dana", full_name="Dana Delivery", role=Role.DELIVERY, password=PASSWORD
    )

    acme = account_services.create_account(ravi, name="Acme Corp", domains=["acme.example"], via=Via.FORM)
    globex = account_services.create_account(owen, name="Globex", domains=["globex.example"], via=Via.FORM)
    close = timezone.localdate() + dt.timedelta(days=30)
    ravi_open = pipeline_services.create_opportunity(
        ravi,
        name="Acme renewal",
        account=acme,
        stage=stage("Proposal"),
        amount=Decimal("48000"),
        close_date=close,
        via=Via.FORM,
    )
    ravi_won = pipeline_services.create_opportunity(
        ravi,
        name="Acme expansion",
        account=acme,
        stage=stage("Won"),
        amount=Decimal("120000"),
        close_date=timezone.localdate(),
        via=Via.FORM,
    )
    owen_open = pipeline_services.create_opportunity(
        owen,
        name="Globex pilot",
        account=globex,
        stage=stage("Qualification"),
        via=Via.FORM,
    )
    return SimpleNamespace(
        vera=vera,
        maya=maya,
        omar=omar,
        ravi=ravi,
        rita=rita,
        owen=owen,
        ada=ada,
        eli=eli,
        dana=dana,
        acme=acme,
        globex=globex,
        ravi_open=ravi_open,
        ravi_won=ravi_won,
        owen_open=owen_open,
    )


@pytest.fixture
def acme_buyer(org):
    """Bea Buyer, Ravi's contact at Acme (bea@acme.example): the customer in capture tests."""
    return account_services.create_contact(
        org.ravi,
        first_name="Bea",
        last_name="Buyer",
        account=org.acme,
        emails=["bea@acme.example"],
        via=Via.FORM,
    )


@pytest.fixture
def acme_upsell(org):
    """Ravi's second open deal at Acme: with it, Acme mail has two deals to choose from (triage)."""
    return pipeline_services.create_opportunity(
        org.ravi,
        name="Acme upsell",
        account=org.acme,
        stage=stage("Proposal"),
        amount=Decimal(5000),
        close_date=org.ravi_open.close_date,
        via=Via.FORM,
    )
