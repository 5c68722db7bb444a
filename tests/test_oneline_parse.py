"""Reading one line into a proposal: real lines a rep types, and what each must mean.

Every date counts from a fixed moment (Wednesday 14 January 2026, 10:00 in the rep's time zone),
so "friday" is always Friday 16 January. Nothing here writes.

Ravi is the rainmaker of the fixtures: two Acme deals (an open renewal, a won expansion) and,
here, two open Initech deals; Owen's Globex pilot is in another team.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import stage
from truepipe.accounts import services as account_services
from truepipe.core.models import Via
from truepipe.oneline.parse import LineNotUnderstood, Proposal, parse
from truepipe.pipeline import services as pipeline_services

NOW = dt.datetime(2026, 1, 14, 10, 0, tzinfo=dt.UTC)  # a Wednesday


def d(month: int, day: int, year: int = 2026) -> dt.date:
    return dt.date(year, month, day)


@pytest.fixture
def ravis_deals(org):
    initech = account_services.create_account(
        org.ravi, name="Initech", domains=["initech.example"], via=Via.FORM
    )
    for name in ("Initech TPS rollout", "Initech printers"):
        pipeline_services.create_opportunity(
            org.ravi, name=name, account=initech, stage=stage("Qualification"), via=Via.FORM
        )
    org.initech = initech
    return org


def read(user, line: str, choices: dict[str, str] | None = None, **kwargs) -> Proposal:
    return parse(user, line, choices, now=NOW, **kwargs)


def summary(proposal: Proposal) -> dict:
    """The deal and the changes, in plain values: stages by name."""
    out: dict = {"deal": proposal.deal.name if proposal.deal else None}
    for name, value in proposal.changes.items():
        out[name] = value.name if hasattr(value, "kind") else value
    return out


LINES = [
    (
        "acme renewal 48k close mar 14 proposal next: send SOW friday",
        {
            "deal": "Acme renewal",
            "amount": Decimal(48000),
            "close_date": d(3, 14),
            "stage": "Proposal",
            "next_step": "send SOW",
            "next_step_date": d(1, 16),
        },
    ),
    ("Acme renewal $48,000", {"deal": "Acme renewal", "amount": Decimal(48000), "currency": "USD"}),
    ("acme renewal 1.2m", {"deal": "Acme renewal", "amount": Decimal("1200000")}),
    ("acme renewal 48 000 EUR", {"deal": "Acme renewal", "amount": Decimal(48000), "currency": "EUR"}),
    ("acme renewal €52.5k", {"deal": "Acme renewal", "amount": Decimal("52500"), "currency": "EUR"}),
    ("acme renewal 48000", {"deal": "Acme renewal", "amount": Decimal(48000)}),
    ("acme renewal close end of quarter", {"deal": "Acme renewal", "close_date": d(3, 31)}),
    ("acme renewal close eom", {"deal": "Acme renewal", "close_date": d(1, 31)}),
    ("acme renewal close end of next quarter", {"deal": "Acme renewal", "close_date": d(6, 30)}),
    ("acme renewal close q3", {"deal": "Acme renewal", "close_date": d(9, 30)}),
    ("acme renewal close in 3 weeks", {"deal": "Acme renewal", "close_date": d(2, 4)}),
    ("acme renewal closes on 2026-04-30", {"deal": "Acme renewal", "close_date": d(4, 30)}),
    ("acme renewal close 3/14", {"deal": "Acme renewal", "close_date": d(3, 14)}),
    ("acme renewal close 14 march", {"deal": "Acme renewal", "close_date": d(3, 14)}),
    ("acme renewal close dec 3rd", {"deal": "Acme renewal", "close_date": d(12, 3)}),
    ("acme renewal close this friday", {"deal": "Acme renewal", "close_date": d(1, 16)}),
    ("acme renewal NEG", {"deal": "Acme renewal", "stage": "Negotiation"}),
    ("acme renewal stage negotiation", {"deal": "Acme renewal", "stage": "Negotiation"}),
    (
        "acme renewal next: call Carla tomorrow",
        {"deal": "Acme renewal", "next_step": "call Carla", "next_step_date": d(1, 15)},
    ),
    (
        "acme renewal next: demo to the board in 2 weeks",
        {"deal": "Acme renewal", "next_step": "demo to the board", "next_step_date": d(1, 28)},
    ),
    (
        "acme renewal next: send SOW by friday close apr 2",
        {"deal": "Acme renewal", "next_step": "send SOW", "next_step_date": d(1, 16), "close_date": d(4, 2)},
    ),
    ("acme renewal next: chase legal", {"deal": "Acme renewal", "next_step": "chase legal"}),
    (
        "acme renewal next step: chase legal monday",
        {"deal": "Acme renewal", "next_step": "chase legal", "next_step_date": d(1, 19)},
    ),
    ("acme won", {"deal": "Acme renewal", "stage": "Won"}),
    (
        "acme renewal lost: went with a rival",
        {"deal": "Acme renewal", "stage": "Lost", "lost_reason": "went with a rival"},
    ),
    # A closed deal is found when its own name is said, not by its account alone.
    ("acme expansion 130k", {"deal": "Acme expansion", "amount": Decimal(130000)}),
    # The domain names the account too; a typo in a long word is forgiven and said back.
    ("acme.example renewal 50k", {"deal": "Acme renewal", "amount": Decimal(50000)}),
    ("acme renewl 50k", {"deal": "Acme renewal", "amount": Decimal(50000)}),
    ("initech tps 90k", {"deal": "Initech TPS rollout", "amount": Decimal(90000)}),
    ("initech print close eoq", {"deal": "Initech printers", "close_date": d(3, 31)}),
]


@pytest.mark.parametrize(("line", "expected"), LINES, ids=[line for line, _ in LINES])
def test_a_line_reads_as_the_changes_a_rep_means(ravis_deals, line, expected):
    proposal = read(ravis_deals.ravi, line)

    assert proposal.questions == []
    assert proposal.unknown == []
    assert proposal.problems == []
    assert summary(proposal) == expected


def test_the_preview_carries_the_deal_version_it_read(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 50k")
    assert proposal.version == ravis_deals.ravi_open.version


def test_how_each_date_was_read_is_said_back(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal close mar 14 next: call friday")
    assert "“mar 14” → Sat 14 Mar 2026" in proposal.readings
    assert "“friday” → Fri 16 Jan 2026" in proposal.readings


def test_a_typo_in_the_deal_name_is_said_back_rather_than_silently_fixed(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewl 50k")
    assert any("“renewl” read as “renewal”" in reading for reading in proposal.readings)


# --- day-first numbers and the rep's own time zone ------------------------------------------------


def test_numeric_dates_follow_the_day_first_setting(ravis_deals, settings):
    month_first = read(ravis_deals.ravi, "acme renewal close 3/4")
    assert month_first.changes["close_date"] == d(3, 4)

    settings.TRUEPIPE_DAY_FIRST = True
    assert read(ravis_deals.ravi, "acme renewal close 3/4").changes["close_date"] == d(4, 3)
    assert read(ravis_deals.ravi, "acme renewal close 14/3").changes["close_date"] == d(3, 14)


def test_a_numeric_date_with_only_one_possible_reading_is_read_that_way(ravis_deals):
    assert read(ravis_deals.ravi, "acme renewal close 14/3", day_first=False).changes["close_date"] == d(
        3, 14
    )
    assert read(ravis_deals.ravi, "acme renewal close 3/14", day_first=True).changes["close_date"] == d(3, 14)


def test_tomorrow_is_the_reps_tomorrow_in_their_own_time_zone(ravis_deals):
    profile = ravis_deals.ravi.profile
    profile.time_zone = "Pacific/Auckland"  # 23:00 on Wednesday in UTC is Thursday midday there
    profile.save()
    late = dt.datetime(2026, 1, 14, 23, 0, tzinfo=dt.UTC)
    assert late.astimezone(ZoneInfo("Pacific/Auckland")).date() == d(1, 15)

    proposal = parse(ravis_deals.ravi, "acme renewal next: call tomorrow", now=late)

    assert proposal.changes["next_step_date"] == d(1, 16)


# --- ambiguities are asked, never guessed -----------------------------------------------------------


def test_an_account_with_several_open_deals_is_a_question_with_the_deals_as_choices(ravis_deals):
    proposal = read(ravis_deals.ravi, "initech 90k")

    assert proposal.deal is None
    [question] = proposal.questions
    assert question.key == "deal"
    labels = [choice.label for choice in question.choices]
    assert len(labels) == 2
    assert any(label.startswith("Initech TPS rollout") for label in labels)
    assert any(label.startswith("Initech printers") for label in labels)
    assert proposal.unknown == []


def test_the_answer_to_the_deal_question_picks_that_deal(ravis_deals):
    question = read(ravis_deals.ravi, "initech 90k").questions[0]
    printers = next(choice for choice in question.choices if choice.label.startswith("Initech printers"))

    proposal = read(ravis_deals.ravi, "initech 90k", {"deal": printers.value})

    assert proposal.questions == []
    assert summary(proposal) == {"deal": "Initech printers", "amount": Decimal(90000)}


def test_an_answer_that_is_not_one_of_the_choices_leaves_the_question_open(ravis_deals):
    proposal = read(ravis_deals.ravi, "initech 90k", {"deal": str(ravis_deals.owen_open.pk)})
    assert [q.key for q in proposal.questions] == ["deal"]


def test_an_account_with_one_open_deal_picks_it(ravis_deals):
    # Acme has Ravi's open renewal and his won expansion: only the open one is meant.
    proposal = read(ravis_deals.ravi, "acme 52k")
    assert summary(proposal) == {"deal": "Acme renewal", "amount": Decimal(52000)}


def test_next_friday_said_early_in_the_week_asks_which_friday(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal close next friday")

    [question] = proposal.questions
    assert question.key == "close_date"
    assert [c.value for c in question.choices] == ["2026-01-16", "2026-01-23"]
    answered = read(ravis_deals.ravi, "acme renewal close next friday", {"close_date": "2026-01-23"})
    assert answered.changes["close_date"] == d(1, 23)


def test_next_friday_said_at_the_weekend_is_the_coming_friday(ravis_deals):
    saturday = dt.datetime(2026, 1, 17, 10, 0, tzinfo=dt.UTC)
    proposal = parse(ravis_deals.ravi, "acme renewal close next friday", now=saturday)
    assert proposal.questions == []
    assert proposal.changes["close_date"] == d(1, 23)


def test_a_month_and_day_that_just_passed_is_asked_about_not_moved_to_next_year(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal close jan 10")

    [question] = proposal.questions
    assert question.key == "close_date"
    assert "has passed this year" in question.text
    assert [c.value for c in question.choices] == ["2027-01-10", "keep"]
    kept = read(ravis_deals.ravi, "acme renewal close jan 10 50k", {"close_date": "keep"})
    assert summary(kept) == {"deal": "Acme renewal", "amount": Decimal(50000)}


def test_a_month_and_day_long_past_means_next_year(ravis_deals):
    november = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    proposal = parse(ravis_deals.ravi, "acme renewal close feb 3", now=november)
    assert proposal.changes["close_date"] == d(2, 3, 2027)


def test_a_close_date_in_the_past_is_refused(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal close 2025-12-01")
    assert "close_date" not in proposal.changes
    assert proposal.problems and "in the past" in proposal.problems[0]


def test_a_won_deal_may_close_in_the_past(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal won close yesterday")
    assert summary(proposal) == {"deal": "Acme renewal", "stage": "Won", "close_date": d(1, 13)}


def test_a_won_deal_closing_on_a_date_that_just_passed_offers_this_years_date(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal won close jan 10")
    assert [c.value for c in proposal.questions[0].choices] == ["2026-01-10", "2027-01-10"]


def test_a_stage_prefix_shared_by_two_stages_is_asked(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal pro")  # Prospecting or Proposal?
    [question] = proposal.questions
    assert question.key == "stage"
    assert sorted(c.label for c in question.choices) == ["Proposal", "Prospecting"]


def test_an_amount_with_a_dot_thousands_separator_is_asked(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 48.000")
    [question] = proposal.questions
    assert question.key == "amount"
    assert [c.value for c in question.choices] == ["48000", "48.000"]
    assert read(ravis_deals.ravi, "acme renewal 48.000", {"amount": "48000"}).changes["amount"] == 48000


def test_a_date_without_close_or_next_is_asked_about(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal mar 14")
    [question] = proposal.questions
    assert question.key == "date"
    assert [c.value for c in question.choices] == ["close_date", "next_step_date"]
    answered = read(ravis_deals.ravi, "acme renewal mar 14", {"date": "close_date"})
    assert answered.changes == {"close_date": d(3, 14)}


def test_two_amounts_in_one_line_are_a_problem_not_a_pick(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 48k 50k")
    assert "amount" not in proposal.changes
    assert "more than one amount" in proposal.problems[0]


# --- words not understood are reported -------------------------------------------------------------


def test_words_that_are_not_understood_are_reported_in_order(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 48k clsoe mar 14 pronto")
    assert proposal.deal is not None
    # "clsoe" is no keyword, so "mar 14" is a date without a field: asked, not dropped.
    assert proposal.unknown == ["clsoe (close?)", "pronto"]
    assert [q.key for q in proposal.questions] == ["date"]


def test_close_without_a_date_is_reported(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 48k close soon")
    assert proposal.unknown == ["close (no date after it)", "soon"]
    assert proposal.changes == {"amount": Decimal(48000)}


def test_a_typo_of_a_keyword_is_reported_with_a_hint_not_taken_for_a_deal_word(ravis_deals):
    # "initech" alone asks which deal; "clsoe" must not make it look like a deal nobody has.
    proposal = read(ravis_deals.ravi, "initech 90k clsoe end of quarter")
    assert [q.key for q in proposal.questions] == ["deal", "date"]
    assert proposal.unknown == ["clsoe (close?)"]
    assert read(ravis_deals.ravi, "acme renewal next call carla").unknown == [
        "next (next:?)",
        "call",
        "carla",
    ]


def test_the_first_word_names_the_deal_even_when_it_looks_like_a_stage(ravis_deals):
    prospect = account_services.create_account(ravis_deals.ravi, name="Prospect Labs", via=Via.FORM)
    pipeline_services.create_opportunity(
        ravis_deals.ravi,
        name="Prospect Labs pilot",
        account=prospect,
        stage=stage("Qualification"),
        via=Via.FORM,
    )
    proposal = read(ravis_deals.ravi, "prospect labs 20k")
    assert summary(proposal) == {"deal": "Prospect Labs pilot", "amount": Decimal(20000)}


def test_a_small_bare_number_is_not_taken_for_an_amount(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal 500")
    assert proposal.unknown == ["500"]
    assert "amount" not in proposal.changes


def test_a_line_naming_the_deal_and_nothing_else_says_there_is_nothing_to_change(ravis_deals):
    proposal = read(ravis_deals.ravi, "acme renewal")
    assert proposal.changes == {}
    assert proposal.problems[0].startswith("Nothing to change")


# --- no match, new deals ---------------------------------------------------------------------------


def test_an_empty_line_is_refused_with_an_example(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="Type a line first"):
        read(ravis_deals.ravi, "   ")


def test_a_line_with_no_deal_words_is_refused(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="Start the line with the deal"):
        read(ravis_deals.ravi, "48k close mar 14")


def test_a_deal_in_another_team_is_simply_not_found(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="No deal you can change matches “globex pilot”"):
        read(ravis_deals.ravi, "globex pilot 20k")


def test_an_account_without_a_matching_deal_offers_to_create_one_with_new(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="start the line with “new”"):
        read(ravis_deals.ravi, "initech staplers 5k")


def test_new_proposes_a_deal_on_the_account_the_words_name(ravis_deals):
    proposal = read(ravis_deals.ravi, "new initech staplers 5k close end of quarter")

    assert proposal.deal is None
    assert proposal.new_deal is not None
    assert proposal.new_deal.account == ravis_deals.initech
    assert proposal.new_deal.name == "Initech staplers"
    assert proposal.changes == {"amount": Decimal(5000), "close_date": d(3, 31)}


def test_new_on_an_account_nobody_knows_is_refused(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="No account you can see matches"):
        read(ravis_deals.ravi, "new umbrella corp 5k")


def test_a_manager_sees_whose_deal_each_choice_is(ravis_deals):
    # Maya manages Ravi and Rita: an Acme deal of Rita's makes "acme" ambiguous for her.
    pipeline_services.create_opportunity(
        None, owner=ravis_deals.rita, name="Acme training", account=ravis_deals.acme,
        stage=stage("Qualification"), via=Via.FORM,
    )  # fmt: skip
    question = read(ravis_deals.maya, "acme 10k").questions[0]
    assert sorted(choice.label.rsplit(" · ", 1)[1] for choice in question.choices) == [
        "Ravi Rao",
        "Rita Reyes",
    ]


def test_an_exec_can_change_no_deal_so_finds_none(ravis_deals):
    with pytest.raises(LineNotUnderstood, match="No deal you can change"):
        read(ravis_deals.eli, "acme renewal 50k")
