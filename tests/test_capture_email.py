"""E-mail capture: messages become activities on the right deal, and nothing is logged twice."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.capture_helpers import capture, message, write_eml, write_mbox
from truepipe.activities.models import Activity, ActivitySource
from truepipe.capture.models import CapturedItem, ContactProposal, ItemStatus, TouchDomain

pytestmark = pytest.mark.django_db


def test_a_mail_from_ravi_to_his_buyer_is_logged_on_his_one_open_deal_at_her_account(org, acme_buyer):
    report = capture(
        message("Ravi Rao <ravi@truepipe.test>", "Bea Buyer <bea@acme.example>", "Renewal pricing")
    )

    assert report.counts["logged"] == 1
    activity = Activity.objects.get(subject="Renewal pricing")
    assert activity.opportunity == org.ravi_open
    assert activity.owner == org.ravi
    assert activity.source == ActivitySource.EMAIL
    assert list(activity.participants.all()) == [acme_buyer]
    assert activity.logged_at >= activity.occurred_at
    assert TouchDomain.objects.filter(activity=activity, domain="acme.example").exists()


def test_the_same_message_read_twice_is_logged_once(org, acme_buyer):
    mail = message("ravi@truepipe.test", "bea@acme.example", "Twice")

    capture(mail)
    report = capture(mail)

    assert report.counts["duplicate"] == 1
    assert Activity.objects.filter(subject="Twice").count() == 1


def test_mail_among_colleagues_only_is_ignored_with_the_reason(org):
    report = capture(message("ravi@truepipe.test", "ravi@truepipe.test", "Lunch?"))

    assert report.counts["ignored"] == 1
    item = CapturedItem.objects.get(subject="Lunch?")
    assert (item.status, item.reason, item.activity) == (ItemStatus.IGNORED, "internal only", None)


def test_an_unknown_address_at_a_known_domain_is_proposed_as_a_new_contact(org):
    capture(message("ravi@truepipe.test", "Carl Cfo <carl@acme.example>", "Budget"))

    proposal = ContactProposal.objects.get(email="carl@acme.example")
    assert (proposal.account, proposal.proposed_to, proposal.display_name) == (org.acme, org.ravi, "Carl Cfo")
    assert Activity.objects.get(subject="Budget").opportunity == org.ravi_open


def test_two_open_deals_at_the_account_send_the_mail_to_triage_instead_of_guessing(
    org, acme_buyer, acme_upsell
):
    capture(message("ravi@truepipe.test", "bea@acme.example", "Which deal?"))

    item = CapturedItem.objects.get(subject="Which deal?")
    assert item.status == ItemStatus.TRIAGE
    assert set(item.candidates) == {org.ravi_open.pk, acme_upsell.pk}
    assert item.activity.opportunity is None
    assert item.activity.account == org.acme


def test_the_triage_list_offers_the_most_recently_active_deal_first(org, acme_buyer, acme_upsell):
    from truepipe.pipeline.models import Opportunity

    now = timezone.now()
    for recent, older, subject in (
        (org.ravi_open, acme_upsell, "First"),
        (acme_upsell, org.ravi_open, "Second"),
    ):
        Opportunity.objects.filter(pk=recent.pk).update(updated_at=now)
        Opportunity.objects.filter(pk=older.pk).update(updated_at=now - dt.timedelta(days=2))

        capture(message("ravi@truepipe.test", "bea@acme.example", subject))

        assert CapturedItem.objects.get(subject=subject).candidates == [recent.pk, older.pk]


def test_in_one_batch_each_persons_mail_goes_to_the_deals_they_see(org, acme_buyer):
    """Ravi and Rita each have an open deal at Acme, and Rita one at Initech; their manager Maya
    sees all three; Owen, on another team, none. One batch holds a mail to Bea from each of them,
    and Maya's to Initech's buyer."""
    from decimal import Decimal

    from tests.conftest import stage
    from truepipe.accounts.services import create_account
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.sources import from_bytes
    from truepipe.core.models import Via
    from truepipe.pipeline.services import create_opportunity

    def deal(account, name):  # type: ignore[no-untyped-def]
        return create_opportunity(
            None,
            owner=org.rita,
            name=name,
            account=account,
            stage=stage("Proposal"),
            amount=Decimal(9000),
            close_date=org.ravi_open.close_date,
            via=Via.FORM,
        )

    acme_pilot = deal(org.acme, "Acme pilot")
    initech = create_account(org.rita, name="Initech", domains=["initech.example"], via=Via.FORM)
    initech_rollout = deal(initech, "Initech rollout")
    mails = [(person, "bea@acme.example") for person in (org.ravi, org.rita, org.maya, org.owen)]
    mails.append((org.maya, "ivy@initech.example"))
    Ingest().run(
        from_bytes(
            message(f"{person.username}@truepipe.test", to, f"{person.username} to {to}").as_bytes(),
            source="file",
            origin=person.username,
            owner_id=person.pk,
        )
        for person, to in mails
    )

    def item(name: str, to: str = "bea@acme.example") -> CapturedItem:
        return CapturedItem.objects.get(subject=f"{name} to {to}")

    assert item("ravi").activity.opportunity == org.ravi_open  # not Rita's, at the same account
    assert item("rita").activity.opportunity == acme_pilot
    assert item("maya").status == ItemStatus.TRIAGE
    assert set(item("maya").candidates) == {org.ravi_open.pk, acme_pilot.pk}
    assert item("maya", "ivy@initech.example").activity.opportunity == initech_rollout
    owen = item("owen")
    assert (owen.status, owen.activity.opportunity, owen.activity.account) == (
        ItemStatus.LOGGED,
        None,
        org.acme,
    )


def test_a_reply_follows_the_deal_of_the_thread(org, acme_buyer, request):
    first = message("ravi@truepipe.test", "bea@acme.example", "Proposal")
    capture(first)
    request.getfixturevalue("acme_upsell")  # a second Acme deal only now: the reply could go to either
    reply = message("bea@acme.example", "ravi@truepipe.test", "Re: Proposal", reply_to=first)

    capture(reply)

    assert Activity.objects.get(subject="Re: Proposal").opportunity == org.ravi_open


def test_an_mbox_with_a_broken_message_logs_the_others_and_names_the_bad_one(
    org, acme_buyer, tmp_path, capsys
):
    good = message("ravi@truepipe.test", "bea@acme.example", "Good one")
    no_sender = message("ravi@truepipe.test", "bea@acme.example", "No sender")
    del no_sender["From"]
    path = write_mbox(tmp_path / "ravi.mbox", [good, no_sender])

    call_command("import", "email", str(path), "--no-progress")

    out, err = capsys.readouterr()
    assert "1 logged" in out and "1 rejected" in out
    assert "ravi.mbox message 2: no sender address" in err
    assert Activity.objects.filter(subject="Good one").exists()


def test_an_eml_file_imported_as_ravi_is_his(org, acme_buyer, tmp_path, capsys):
    path = write_eml(
        tmp_path / "note.eml", message("bea@acme.example", "someone@elsewhere.example", "Fwd info")
    )

    call_command("import", "email", str(path), "--as", "ravi", "--no-progress")

    assert Activity.objects.get(subject="Fwd info").owner == org.ravi


def test_captured_mail_is_never_a_logging_lag_violation(org, acme_buyer):
    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation

    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    capture(message("ravi@truepipe.test", "bea@acme.example", "Three days ago", when=old))
    evaluate()

    assert not Violation.objects.filter(rule="logging_lag").exists()


def quiet_deal(org, account_name: str, buyer: str):  # type: ignore[no-untyped-def]
    """Ravi's deal at a new account (its domain the buyer's), untouched for ninety days and evaluated."""
    from tests.conftest import stage
    from truepipe.accounts.services import create_account, create_contact
    from truepipe.core.models import Via
    from truepipe.hygiene.engine import evaluate
    from truepipe.pipeline.services import create_opportunity

    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
    domain = buyer.rpartition("@")[2]
    account = create_account(org.ravi, name=account_name, domains=[domain], via=Via.FORM, at=long_ago)
    create_contact(
        org.ravi, first_name=buyer.partition("@")[0].title(), account=account, emails=[buyer], via=Via.FORM
    )
    deal = create_opportunity(
        org.ravi,
        name=f"{account_name} fleet",
        account=account,
        stage=stage("Qualification"),
        via=Via.FORM,
        at=long_ago,
    )
    evaluate()
    return deal


def test_a_long_run_writes_a_small_first_batch_then_full_ones_and_logs_everything_once(
    org, acme_buyer, monkeypatch
):
    """The writer starts on a small first batch while the rest is still being parsed; every
    message is logged once whatever the batch it fell in."""
    from truepipe.capture import ingest
    from truepipe.capture.sources import from_bytes

    monkeypatch.setattr(ingest, "FIRST_BATCH", 2)
    mails = [message("ravi@truepipe.test", "bea@acme.example", f"Note {n}") for n in range(12)]
    batches: list[int] = []

    report = ingest.Ingest(batch=5).run(
        (from_bytes(m.as_bytes(), source="file", origin=str(m["Subject"])) for m in mails),
        progress=batches.append,
    )

    assert batches == [2, 5, 5]
    assert report.counts["logged"] == 12
    assert sorted(
        Activity.objects.filter(subject__startswith="Note ").values_list("subject", flat=True)
    ) == sorted(f"Note {n}" for n in range(12))


def test_a_capture_batch_is_evaluated_at_once_up_to_captures_own_limit_not_that_of_other_writes(
    org, monkeypatch
):
    """Capture writes in large batches (only the touch rules run for them), so a batch larger than
    an import's may be is still evaluated as it is written; one past capture's own limit waits for
    the night, as a large import does. Here the limits are 2 (other writes) and 5 (capture)."""
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.sources import from_bytes
    from truepipe.hygiene import incremental
    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation

    monkeypatch.setattr(incremental, "MAX_INCREMENTAL_BATCH", 2)
    monkeypatch.setattr(incremental, "MAX_CAPTURED_BATCH", 5)
    deals = {name: quiet_deal(org, name, f"buyer@{name.lower()}.example") for name in ("Initech", "Hooli")}

    def stale(name):
        return Violation.objects.filter(rule="stale_touch", opportunity=deals[name], live=True).exists()

    def batch(domain, count):
        mails = [message("ravi@truepipe.test", f"buyer@{domain}", f"{domain} note {n}") for n in range(count)]
        Ingest(batch=10).run(from_bytes(m.as_bytes(), source="file", origin=str(m["Subject"])) for m in mails)

    batch("initech.example", 3)
    batch("hooli.example", 6)

    assert Activity.objects.filter(opportunity=deals["Initech"]).count() == 3
    assert Activity.objects.filter(opportunity=deals["Hooli"]).count() == 6
    assert not stale("Initech")
    assert stale("Hooli")
    evaluate(timezone.now() + dt.timedelta(minutes=1))
    assert not stale("Hooli")


def test_the_rainmakers_captured_mail_is_a_customer_touch_but_not_an_update_of_his_deal(org):
    """Three clocks, never confused: capture keeps the touch clock honest without hiding that
    nobody has updated the deal; a call Ravi logs by hand is an update."""
    from truepipe.activities.services import log_activity
    from truepipe.core.models import Via
    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation

    deal = quiet_deal(org, "Initech", "gil@initech.example")

    def live(rule):
        return Violation.objects.filter(rule=rule, opportunity=deal, live=True).exists()

    assert live("stale_touch") and live("stale_update")

    capture(message("ravi@truepipe.test", "gil@initech.example", "Fleet pricing"))

    assert Activity.objects.get(subject="Fleet pricing").opportunity == deal
    assert not live("stale_touch") and live("stale_update")
    evaluate(timezone.now() + dt.timedelta(minutes=1))
    assert not live("stale_touch") and live("stale_update")

    log_activity(org.ravi, kind="call", subject="Called Gil", opportunity=deal, owner=org.ravi, via=Via.FORM)

    assert not live("stale_update")
