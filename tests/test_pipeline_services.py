"""The opportunity write path: stage rules, history, versions, bulk edits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import stage
from truepipe.core import hooks
from truepipe.core.errors import (
    ConcurrencyConflict,
    InvalidInput,
    NotAllowed,
    PreconditionRequired,
    StageRequirementsMissing,
)
from truepipe.core.models import Via
from truepipe.pipeline import services
from truepipe.pipeline.models import ForecastCategory, Opportunity, OpportunityChange


def history(opp: Opportunity) -> list[tuple[str, str | None, str | None, str]]:
    return list(
        OpportunityChange.objects.filter(opportunity=opp).values_list(
            "field", "old_value", "new_value", "via"
        )
    )


def test_a_new_deal_takes_its_probability_and_forecast_category_from_the_stage(org):
    opp = services.create_opportunity(org.ravi, name="Small deal", account=org.acme, via=Via.FORM)
    assert opp.stage == stage("Prospecting")
    assert (opp.probability, opp.forecast_category, opp.version) == (10, ForecastCategory.PIPELINE, 1)
    assert opp.owner == org.ravi


def test_entering_proposal_without_amount_and_close_date_is_refused_and_nothing_is_saved(org):
    opp = org.owen_open
    with pytest.raises(StageRequirementsMissing) as caught:
        services.update_opportunity(org.owen, opp, {"stage": stage("Proposal")}, via=Via.BOARD)
    assert caught.value.missing == ["amount", "close_date"]
    assert "amount" in caught.value.message.lower() and "close date" in caught.value.message.lower()
    opp.refresh_from_db()
    assert opp.stage == stage("Qualification") and opp.version == 1
    assert history(opp) == []


def test_entering_proposal_with_its_fields_saves_and_records_each_change_with_its_path(org):
    opp = services.update_opportunity(
        org.owen,
        org.owen_open,
        {"stage": stage("Proposal"), "amount": Decimal("9000"), "close_date": dt.date(2030, 1, 31)},
        via=Via.BOARD,
    )
    assert (opp.version, opp.probability, opp.forecast_category) == (2, 55, ForecastCategory.BEST_CASE)
    changes = {field: (old, new, via) for field, old, new, via in history(opp)}
    assert changes["stage"] == (str(stage("Qualification").pk), str(stage("Proposal").pk), "board")
    assert changes["amount"] == (None, "9000", "board")
    assert changes["close_date"] == (None, "2030-01-31", "board")
    assert changes["probability"] == ("20", "55", "board")
    assert changes["forecast_category"] == ("pipeline", "best_case", "board")


def test_a_required_field_of_the_current_stage_cannot_be_cleared(org):
    with pytest.raises(StageRequirementsMissing):
        services.update_opportunity(org.ravi, org.ravi_open, {"amount": None}, via=Via.FORM)


def test_a_stale_version_is_refused_instead_of_overwriting(org):
    services.update_opportunity(
        org.ravi, org.ravi_open, {"next_step": "Send SOW"}, via=Via.FORM, expected_version=1
    )
    with pytest.raises(ConcurrencyConflict) as caught:
        services.update_opportunity(
            org.maya, org.ravi_open, {"next_step": "Call CFO"}, via=Via.FORM, expected_version=1
        )
    assert "version 1" in caught.value.message and "now 2" in caught.value.message
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.next_step == "Send SOW"


def test_the_api_style_write_must_say_which_version_it_read(org):
    with pytest.raises(PreconditionRequired):
        services.update_opportunity(
            org.ravi, org.ravi_open, {"next_step": "x"}, via=Via.API, require_version=True
        )


def test_an_edit_that_changes_nothing_does_not_bump_the_version_or_write_history(org):
    opp = services.update_opportunity(org.ravi, org.ravi_open, {"name": "Acme renewal"}, via=Via.FORM)
    assert opp.version == 1 and history(opp) == []


def test_winning_stamps_closed_at_and_reopening_clears_it(org):
    opp = services.update_opportunity(org.ravi, org.ravi_open, {"stage": stage("Won")}, via=Via.FORM)
    assert (
        opp.closed_at is not None
        and opp.forecast_category == ForecastCategory.CLOSED
        and opp.probability == 100
    )
    opp = services.update_opportunity(
        org.ravi, opp, {"stage": stage("Negotiation"), "next_step": "Redo"}, via=Via.FORM
    )
    assert (
        opp.closed_at is None and opp.forecast_category == ForecastCategory.COMMIT and opp.probability == 75
    )


def test_an_overridden_probability_survives_a_stage_move_until_reset(org):
    opp = services.update_opportunity(org.ravi, org.ravi_open, {"probability": 90}, via=Via.FORM)
    assert opp.probability == 90 and opp.probability_overridden
    opp = services.update_opportunity(
        org.ravi, opp, {"stage": stage("Negotiation"), "next_step": "Legal review"}, via=Via.FORM
    )
    assert opp.probability == 90
    opp = services.update_opportunity(org.ravi, opp, {"probability": None}, via=Via.FORM)
    assert opp.probability == 75 and not opp.probability_overridden


def test_bulk_mark_lost_needs_a_reason(org):
    with pytest.raises(InvalidInput) as caught:
        services.mark_lost(org.maya, [org.ravi_open], "  ")
    assert caught.value.fields == {"lost_reason": "Required to mark a deal lost."}


def test_bulk_mark_lost_is_all_or_nothing(org):
    # Maya may change Ravi's deal but not Owen's (another team): nothing changes.
    with pytest.raises(NotAllowed):
        services.mark_lost(org.maya, [org.ravi_open, org.owen_open], "Budget cut")
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.stage == stage("Proposal")


def test_bulk_mark_lost_records_the_reason_through_the_bulk_path(org):
    (opp,) = services.mark_lost(org.maya, [org.ravi_open], "Chose a competitor")
    assert opp.stage == stage("Lost") and opp.lost_reason == "Chose a competitor"
    assert ("lost_reason", None, "Chose a competitor", "bulk") in history(opp)
    assert OpportunityChange.objects.get(opportunity=opp, field="stage").changed_by == org.maya


def test_a_rep_cannot_change_another_reps_deal(org):
    with pytest.raises(NotAllowed):
        services.update_opportunity(org.rita, org.ravi_open, {"next_step": "Steal it"}, via=Via.FORM)


def test_a_rep_cannot_give_a_deal_to_someone_else_but_a_manager_can_within_the_team(org):
    with pytest.raises(NotAllowed):
        services.update_opportunity(org.ravi, org.ravi_open, {"owner": org.rita}, via=Via.FORM)
    opp = services.update_opportunity(org.maya, org.ravi_open, {"owner": org.rita}, via=Via.FORM)
    assert opp.owner == org.rita
    with pytest.raises(NotAllowed):
        services.update_opportunity(org.maya, opp, {"owner": org.owen}, via=Via.FORM)


def test_exec_and_delivery_cannot_create_deals(org):
    for reader in (org.eli, org.dana):
        with pytest.raises(NotAllowed):
            services.create_opportunity(reader, name="Nope", via=Via.FORM)


def test_bad_values_are_reported_per_field(org):
    with pytest.raises(InvalidInput) as caught:
        services.update_opportunity(
            org.ravi, org.ravi_open, {"amount": "-5", "currency": "dollars", "probability": 150}, via=Via.FORM
        )
    assert set(caught.value.fields) == {"amount", "currency", "probability"}
    with pytest.raises(InvalidInput):
        services.create_opportunity(org.ravi, name="   ", via=Via.FORM)
    with pytest.raises(InvalidInput):
        services.update_opportunity(org.ravi, org.ravi_open, {"version": 7}, via=Via.FORM)


def test_a_deleted_deal_disappears_but_keeps_its_history(org):
    services.delete_opportunity(org.ravi, org.ravi_open, via=Via.FORM)
    assert Opportunity.objects.filter(pk=org.ravi_open.pk, deleted_at__isnull=False).exists()
    assert history(org.ravi_open)[-1][:2] == ("deleted", None)


def test_every_write_emits_one_event_inside_the_transaction(org):
    seen: list[hooks.WriteEvent] = []
    listener = hooks.on_write(seen.append)
    try:
        services.update_opportunity(org.ravi, org.ravi_open, {"next_step": "Demo"}, via=Via.FORM)
        services.mark_lost(org.maya, [org.ravi_open], "No budget")
    finally:
        hooks._listeners.remove(listener)
    assert [(e.kind, e.action, e.via) for e in seen] == [
        ("opportunity", "update", "form"),
        ("opportunity", "update", "bulk"),
    ]
    assert "stage" in seen[1].changed_fields and seen[0].object_ids == [org.ravi_open.pk]


def test_a_failing_listener_rolls_the_write_back(org):
    def explode(event):
        raise RuntimeError("rule engine down")

    hooks.on_write(explode)
    try:
        with pytest.raises(RuntimeError):
            services.update_opportunity(org.ravi, org.ravi_open, {"next_step": "Lost in space"}, via=Via.FORM)
    finally:
        hooks._listeners.remove(explode)
    org.ravi_open.refresh_from_db()
    assert org.ravi_open.next_step == "" and history(org.ravi_open) == []


def test_historic_timestamps_are_kept_for_generated_history(org):
    when = timezone.now() - dt.timedelta(days=90)
    opp = services.update_opportunity(org.ravi, org.ravi_open, {"next_step": "Old"}, via=Via.DEMO, at=when)
    assert opp.updated_at == when
    assert OpportunityChange.objects.get(opportunity=opp, field="next_step").changed_at == when
