"""`truepipe accountability`: Maya runs the loop from a terminal, as herself."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from tests.test_web_accountability import _strict_weeks
from truepipe.accountability.models import ConsequenceState, DisputeState
from truepipe.audit.models import AuditEntry


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("accountability", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_maya_lists_applies_waives_and_resolves_from_the_command_line(org):
    offenses = _strict_weeks(20, 27, 34, 41)
    listed = json.loads(run("offenses", "--as", "maya", "--rep", "ravi", "--format", "json"))
    assert [o["level"] for o in sorted(listed, key=lambda o: o["week"])] == [1, 2, 3]
    todo = run("todo", "--as", "maya")
    assert "3 consequence(s) to apply or waive" in todo

    warning, hold, review = (o.consequences.get() for o in offenses)
    assert "applied" in run("apply", str(warning.pk), "--as", "maya", "--note", "Coached")
    assert "waived" in run("waive", str(hold.pk), "--as", "maya", "--reason", "Customer freeze")
    with pytest.raises(CommandError, match="Say why"):
        run("waive", str(review.pk), "--as", "maya", "--reason", " ")
    assert "maya decides" in run("dispute", str(offenses[2].pk), "--as", "ravi", "--reason", "Lost already")
    dispute = offenses[2].disputes.get()
    assert "upheld" in run("resolve", str(dispute.pk), "--as", "maya", "--uphold", "--note", "Confirmed")

    warning.refresh_from_db()
    hold.refresh_from_db()
    dispute.refresh_from_db()
    assert (warning.state, hold.state, dispute.state) == (
        ConsequenceState.APPLIED,
        ConsequenceState.WAIVED,
        DisputeState.UPHELD,
    )
    assert list(AuditEntry.objects.filter(actor=org.maya).values_list("action", flat=True)) == [
        "consequence.applied",
        "consequence.waived",
        "dispute.upheld",
        "offense.overturned",
        "consequence.overturned",
    ]


@pytest.mark.django_db
def test_someone_outside_the_line_is_told_the_record_is_not_there(org):
    offenses = _strict_weeks(20, 27)
    consequence = offenses[0].consequences.get()
    with pytest.raises(CommandError, match="that omar can see"):
        run("apply", str(consequence.pk), "--as", "omar", "--note", "Done")
    with pytest.raises(CommandError, match="No user"):
        run("todo", "--as", "nobody")
    assert "acknowledged policy v" in run("acknowledge", "--as", "ravi")


@pytest.mark.django_db
def test_finance_gets_a_csv_of_the_expense_holds_applied(org):
    import csv
    from io import StringIO

    offenses = _strict_weeks(20, 27, 34)
    warning, hold = (o.consequences.get() for o in offenses)
    run("apply", str(warning.pk), "--as", "maya", "--note", "Coached")
    run("apply", str(hold.pk), "--as", "maya", "--note", "Claims on hold", "--on", "2026-12-01")

    rows = list(csv.DictReader(StringIO(run("export", "--for", "finance", "--as", "ada"))))

    assert [(r["rep"], r["action"], r["applied_on"], r["hold_until"]) for r in rows] == [
        ("ravi", "expense_hold", "2026-12-01", "2026-12-31")
    ]
    assert list(csv.DictReader(StringIO(run("export", "--for", "hr", "--as", "ada")))) == []


def test_a_day_out_of_range_is_refused_with_a_message_not_a_traceback(org):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="out of range"):
        call_command("accountability", "fairness", "--as", "vera", "--to", "0001-01-01")
