"""The audit log: every decision chained to the one before, and any rewrite found by `audit verify`."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from tests.conftest import tamper_with_audit_log
from truepipe.audit.log import record, trail, verify
from truepipe.audit.models import AppendOnly, AuditEntry


def _decisions(org) -> list[AuditEntry]:
    """Maya warns Ravi, Ravi disputes, Vera upholds the dispute: three decisions, three entries."""
    return [
        record(org.maya, "consequence.applied", "consequence:1", {"level": 1, "note": "Warned in 1:1"}),
        record(org.ravi, "consequence.disputed", "consequence:1", {"reason": "The deal was snoozed"}),
        record(org.vera, "dispute.upheld", "consequence:1", {"reason": "Snooze predates the offense"}),
    ]


@pytest.mark.django_db
def test_an_untouched_log_verifies_and_names_its_head(org):
    entries = _decisions(org)

    verdict = verify()

    assert verdict.ok and verdict.checked == 3
    assert verdict.head_hash == entries[-1].hash
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert [e.action for e in trail("consequence:1")] == [
        "consequence.applied",
        "consequence.disputed",
        "dispute.upheld",
    ]


@pytest.mark.django_db
def test_neither_the_application_nor_the_database_will_change_or_delete_an_entry(org):
    first = _decisions(org)[0]

    first.data = {"level": 1, "note": "No warning given"}
    with pytest.raises(AppendOnly):
        first.save()
    with pytest.raises(AppendOnly):
        first.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=first.pk).update(action="consequence.waived")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET action = 'consequence.waived' WHERE id = %s", [first.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [first.pk])
    assert verify().ok


@pytest.mark.django_db
def test_an_altered_entry_is_reported_by_its_number(org):
    applied = _decisions(org)[0]
    tamper_with_audit_log(
        "UPDATE audit_auditentry SET data = %s WHERE id = %s",
        ['{"level": 1, "note": "Waived: top performer"}', applied.pk],
    )

    verdict = verify()

    assert not verdict.ok
    assert verdict.broken_seq == applied.seq == 1
    assert "altered" in verdict.problem


@pytest.mark.django_db
def test_a_removed_entry_is_reported_as_missing(org):
    disputed = _decisions(org)[1]
    tamper_with_audit_log("DELETE FROM audit_auditentry WHERE id = %s", [disputed.pk])

    verdict = verify()

    assert (verdict.ok, verdict.broken_seq, verdict.checked) == (False, 2, 1)
    assert "missing" in verdict.problem


@pytest.mark.django_db
def test_removing_the_newest_entries_shows_against_the_head(org):
    upheld = _decisions(org)[2]
    tamper_with_audit_log("DELETE FROM audit_auditentry WHERE id = %s", [upheld.pk])

    verdict = verify()

    assert not verdict.ok
    assert "newest entries were removed" in verdict.problem


@pytest.mark.django_db
def test_a_rechained_rewrite_is_caught_by_the_head_kept_outside(org):
    """Someone rewrites an entry and recomputes every hash after it, head included: only the head
    the admin kept from an earlier verify can tell."""
    from truepipe.audit.log import hash_of
    from truepipe.audit.models import AuditHead

    _decisions(org)
    kept = verify().head_hash
    prev = "0" * 64
    for entry in AuditEntry.objects.order_by("seq"):
        data = {"level": 1, "note": "Waived"} if entry.seq == 1 else entry.data
        digest = hash_of(entry, data=data, prev_hash=prev)
        tamper_with_audit_log(
            "UPDATE audit_auditentry SET data = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(data), prev, digest, entry.pk],
        )
        prev = digest
    AuditHead.objects.filter(pk=1).update(hash=prev)

    assert verify().ok  # the chain alone holds together
    rewritten = verify(expect_head=kept)
    assert not rewritten.ok and "rewritten" in rewritten.problem


@pytest.mark.django_db
def test_a_head_kept_yesterday_still_verifies_after_more_decisions(org):
    _decisions(org)
    kept = verify().head_hash
    record(org.maya, "consequence.applied", "consequence:2", {"note": "Another day"})

    assert verify(expect_head=kept).ok
    assert not verify(expect_head="f" * 64).ok


@pytest.mark.django_db
def test_audit_verify_says_ok_or_fails_with_the_first_broken_entry(org, capsys):
    applied = _decisions(org)[0]

    call_command("audit", "verify")
    assert "audit log OK: 3 entries, head #3" in capsys.readouterr().out

    tamper_with_audit_log(
        "UPDATE audit_auditentry SET action = 'consequence.waived' WHERE id = %s", [applied.pk]
    )
    with pytest.raises(CommandError, match="BROKEN after 0 good entries: entry #1 was altered"):
        call_command("audit", "verify")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keep the migrations' stages
def test_decisions_recorded_at_the_same_time_still_form_one_chain(org):
    """Two managers deciding at once: appends queue on the head, none chains to a stale predecessor."""
    import threading

    from django.db import connections

    if connection.vendor == "sqlite":
        pytest.skip("the in-memory test database locks whole tables; a file database queues writers")

    def decide(person, count: int) -> None:
        try:
            for n in range(count):
                with transaction.atomic():
                    record(person, "consequence.applied", f"consequence:{person.pk}-{n}", {"n": n})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=decide, args=(manager, 15)) for manager in (org.maya, org.omar)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    verdict = verify()
    assert verdict.ok and verdict.checked == 30


@pytest.mark.django_db
def test_policy_changes_waivers_and_snoozes_leave_a_trail(org):
    import datetime as dt

    from django.utils import timezone

    from truepipe.hygiene.engine import evaluate
    from truepipe.hygiene.models import Violation
    from truepipe.hygiene.policy import current_policy, publish_policy
    from truepipe.hygiene.services import snooze_opportunity, waive_violation

    version = publish_policy(org.ada, current_policy().document, note="Same rules, on the record")
    evaluate()
    violation = Violation.objects.filter(rep=org.ravi, live=True).first()
    waive_violation(org.maya, violation, "Customer asked to pause")
    snooze = snooze_opportunity(
        org.ravi, org.ravi_open, until=timezone.localdate() + dt.timedelta(days=7), reason="Budget freeze"
    )

    # On a working day the night also scores Ravi, low enough for an offense and its consequence:
    # their own trail is the accountability tests' subject, not this one's.
    entries = [
        entry
        for entry in AuditEntry.objects.order_by("seq")
        if not entry.action.startswith(("offense.", "consequence."))
    ]
    assert [(e.action, e.actor_id, e.subject) for e in entries] == [
        ("policy.published", org.ada.pk, f"policyversion:{version.pk}"),
        ("violation.waived", org.maya.pk, f"violation:{violation.pk}"),
        ("snooze.created", org.ravi.pk, f"snooze:{snooze.pk}"),
    ]
    assert entries[1].data["reason"] == "Customer asked to pause"
    assert verify().ok
