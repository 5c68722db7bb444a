"""The engine's record of violations: opened, fixed at once, waived, reconciled, expired, in order."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from tests import never_logged
from tests.conftest import stage
from truepipe.accounts.services import create_account
from truepipe.activities.models import ActivityKind
from truepipe.activities.services import log_activity
from truepipe.core.models import Via
from truepipe.hygiene.engine import (
    EvalContext,
    EvaluationOrderError,
    evaluate,
    find_all,
    materialised_state,
)
from truepipe.hygiene.models import Snooze, Violation, ViolationStatus
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.rules.base import Finding, as_date, as_decimal, iso, not_captured
from truepipe.hygiene.rules.base import as_datetime as _as_datetime
from truepipe.hygiene.services import waive_violation
from truepipe.pipeline.models import Stage, StageKind
from truepipe.pipeline.services import create_opportunity, update_opportunity, update_stage


def _violation(rule: str, opportunity) -> Violation:
    return Violation.objects.get(rule=rule, opportunity=opportunity, live=True)


def _next_step(days: int = 3) -> dict:
    return {
        "next_step": "Send the proposal",
        "next_step_date": timezone.localdate() + dt.timedelta(days=days),
    }


@pytest.mark.django_db
def test_a_fix_through_the_service_resolves_the_violation_at_once_and_says_who_fixed_it(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    assert violation.status == ViolationStatus.OPEN

    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.RESOLVED
    assert violation.live is False
    assert violation.resolved_by == org.ravi
    assert violation.resolved_via == Via.FORM
    assert "next_step" in violation.resolution


@pytest.mark.django_db
def test_back_filling_yesterday_leaves_alone_what_todays_writes_opened(org):
    deal = create_opportunity(org.ravi, name="Fresh lead", stage=stage("Prospecting"), via=Via.FORM)
    opened_now = _violation("no_next_step", deal)

    evaluate(timezone.now() - dt.timedelta(days=1))  # the deal did not exist yet

    opened_now.refresh_from_db()
    assert (opened_now.status, opened_now.live, opened_now.closed_at) == (ViolationStatus.OPEN, True, None)


@pytest.mark.django_db
def test_a_waived_violation_is_not_reopened_by_the_next_evaluation(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    waive_violation(org.maya, violation, "Customer is on holiday")
    evaluate(timezone.now() + dt.timedelta(hours=1))
    [only] = Violation.objects.filter(key=violation.key)
    assert only.pk == violation.pk
    assert only.status == ViolationStatus.WAIVED
    assert only.live is True


@pytest.mark.django_db
def test_a_waived_violation_whose_deal_is_then_fixed_stops_counting_and_keeps_its_waiver(org):
    """Maya waived Ravi's missing next step; when Ravi sets one, the violation is no longer live,
    and it still says it was waived by Maya, when and why, not that Ravi resolved it."""
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    waive_violation(org.maya, violation, "Customer is on holiday")
    violation.refresh_from_db()
    waived_at = violation.closed_at

    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)

    violation.refresh_from_db()
    assert violation.live is False and violation.cleared_at is not None
    assert violation.status == ViolationStatus.WAIVED
    assert (violation.waived_by, violation.closed_at) == (org.maya, waived_at)
    assert violation.resolved_by is None and violation.resolution == ""


@pytest.mark.django_db
def test_a_full_evaluation_opens_new_failures_and_resolves_fixed_ones(org, settings):
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    evaluate()
    fixed = _violation("no_next_step", org.ravi_open)
    new_deal = create_opportunity(org.ravi, name="New and bare", stage=stage("Prospecting"), via=Via.FORM)
    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)
    assert not Violation.objects.filter(opportunity=new_deal).exists()  # incremental evaluation is off

    run = evaluate(timezone.now() + dt.timedelta(minutes=5))

    fixed.refresh_from_db()
    assert fixed.status == ViolationStatus.RESOLVED
    assert fixed.resolved_via == "evaluation"
    assert _violation("no_next_step", new_deal).status == ViolationStatus.OPEN
    assert run.opened >= 1 and run.resolved >= 1


@pytest.mark.django_db
def test_an_event_expires_when_it_leaves_its_window(org):
    late = log_activity(
        org.rita,
        kind="call",
        subject="Forgot to log",
        occurred_at=timezone.now() - dt.timedelta(days=4),
        via=Via.FORM,
    )
    violation = Violation.objects.get(rule="logging_lag", activity=late)  # the write itself found it
    assert violation.status == ViolationStatus.OPEN

    run = evaluate(timezone.now() + dt.timedelta(days=8))

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.EXPIRED
    assert violation.live is False
    assert run.expired >= 1


@pytest.mark.django_db
def test_evaluating_a_moment_before_the_latest_run_is_refused(org):
    evaluate()
    with pytest.raises(EvaluationOrderError, match="already evaluated"):
        evaluate(timezone.now() - dt.timedelta(days=1))


@pytest.mark.django_db
def test_switching_a_rule_off_expires_its_live_violations(org):
    evaluate()
    violation = _violation("no_next_step", org.ravi_open)
    document = copy.deepcopy(current_policy().document)
    document["rules"]["no_next_step"]["enabled"] = False

    evaluate(timezone.now() + dt.timedelta(minutes=5), policy=Policy(version=7, document=document))

    violation.refresh_from_db()
    assert violation.status == ViolationStatus.EXPIRED
    assert violation.resolved_via == "policy"
    assert violation.live is False


@pytest.mark.django_db
def test_a_snoozed_deal_is_off_the_stale_clocks_but_not_off_the_other_rules(org):
    old = create_opportunity(
        org.ravi,
        name="Dormant",
        account=org.acme,
        stage=stage("Qualification"),
        via=Via.FORM,
        at=timezone.now() - dt.timedelta(days=90),
    )
    stale = {"stale_touch", "stale_update", "stale_progress"}
    before = find_all(timezone.now())
    assert all(any(f.opportunity_id == old.pk for f in before[rule]) for rule in stale)

    Snooze.objects.create(
        opportunity=old,
        until=timezone.localdate() + dt.timedelta(days=10),
        reason="Budget freeze until March",
    )

    after = find_all(timezone.now())
    assert not any(f.opportunity_id == old.pk for rule in stale for f in after[rule])
    assert any(f.opportunity_id == old.pk for f in after["no_next_step"])


# --- Findings built in SQL read exactly as the Python that built them before ---------------
#
# Summaries and evidence are built by the database (a full evaluation inserts them with one
# INSERT ... SELECT). `_reference` below is the Python that built them from the same facts
# before; on a generated organisation full of awkward values (rounding ties, long and quoted
# names, tiny and huge amount swings) both must agree exactly, on SQLite and on PostgreSQL.


def _reference(rule, ctx, row: dict) -> Finding:
    """The previous Python rendering of one row of a rule's facts (kept here as the oracle).

    One deliberate difference: on SQLite a column that keeps its declared type comes back from
    the driver as a naive datetime, which the old code wrote without an offset
    ("2026-10-25T09:00:00"); timestamps in evidence now always read as UTC ("...+00:00"),
    as they always did on PostgreSQL.
    """
    key, params = rule.key, rule.params

    def as_datetime(value):
        value = _as_datetime(value)
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value

    def deal(summary: str, evidence: dict) -> Finding:
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            opportunity_id=row["id"],
            amount=as_decimal(row["amount"]),
            summary=summary,
            evidence=evidence,
        )

    if key in never_logged.KEYS:
        return never_logged.reference(rule, ctx, row, as_datetime)
    if key.startswith("stale_"):
        clock_at = as_datetime(row["clock"])
        days = (ctx.as_of - clock_at).days
        named = {str(n).lower(): float(d) for n, d in params["days"].items() if n != "default"}
        limit = named.get(row["stage_name"].lower(), float(params["days"].get("default", 14)))
        cycle = None
        if row.get("cycle_days") is not None:
            cycle = round(float(params.get("cycle_factor", 1.0)) * float(row["cycle_days"]), 1)
            limit = max(limit, cycle)
        never = clock_at == as_datetime(row["created_at"])
        return deal(
            f"{row['name']}: no {rule.clock_label} for {days} days"
            f"{' (none since it was created)' if never else ''}; limit {limit:g} in {row['stage_name']}",
            {
                "clock": rule.clock_label,
                "last": None if never else iso(clock_at),
                "since_creation": never,
                "days": days,
                "limit_days": limit,
                "cycle_limit_days": cycle,
                "stage": row["stage_name"],
                "as_of": iso(ctx.as_of),
            },
        )
    if key == "past_due_close":
        closes = as_date(row["close_date"])
        overdue = (ctx.day - closes).days
        return deal(
            f"{row['name']}: close date {closes:%b %d, %Y} passed "
            f"{overdue} day{'s' if overdue != 1 else ''} ago",
            {"close_date": iso(closes), "days_overdue": overdue, "as_of": iso(ctx.as_of)},
        )
    if key == "no_next_step":
        next_step, due = row["next_step"], as_date(row["next_step_date"])
        if not next_step:
            problem, kind = "no next step", "missing"
        elif due is None:
            problem, kind = f"next step “{next_step}” has no date", "undated"
        else:
            problem, kind = f"next step “{next_step}” was due {due:%b %d}", "overdue"
        return deal(
            f"{row['name']}: {problem}",
            {
                "problem": kind,
                "next_step": next_step or None,
                "next_step_date": iso(due),
                "as_of": iso(ctx.as_of),
            },
        )
    if key == "missing_stage_fields":
        required = rule.requirements(ctx)
        missing = [name for name in required.get(row["stage_id"], []) if row.get(f"m_{name}")]
        labels = ", ".join(name.replace("_", " ") for name in missing)
        return deal(
            f"{row['name']}: {row['stage_name']} needs {labels}",
            {"stage": row["stage_name"], "missing": missing, "required": required, "as_of": iso(ctx.as_of)},
        )
    if key == "close_pushed":
        pushes, days = int(row["pushes"]), int(row["days_pushed"] or 0)
        # The pushes, as the facts used to list them (old>new@day, ';'-separated) before the
        # presentation read them itself for the violations that open.
        from django.db import connection

        from truepipe.hygiene.rules.history import CHANGES, as_text, date_of

        day = as_text(ctx, date_of(ctx, "c.changed_at"))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.old_value || '>' || c.new_value || '@' || {day} FROM {CHANGES} c"
                f" WHERE c.opportunity_id = {int(row['id'])} AND {rule.pushes(ctx)}"
            )
            listed = ";".join(item for (item,) in cursor.fetchall())
        history = []
        for item in sorted(part for part in listed.split(";") if part):
            moved, _, on = item.partition("@")
            old, _, new = moved.partition(">")
            history.append({"from": old, "to": new, "on": on[:10]})
        history.sort(key=lambda push: (push["on"], push["from"]))
        return deal(
            f"{row['name']}: close date pushed {pushes} time{'s' if pushes != 1 else ''} "
            f"(+{days} days) in the last {params['period_days']} days",
            {
                "pushes": pushes,
                "days_pushed": days,
                "history": history,
                "close_date": iso(as_date(row["close_date"])),
                "limit_times": params["times"],
                "limit_days": params["days"],
                "period_days": params["period_days"],
                "as_of": iso(ctx.as_of),
            },
        )
    if key == "amount_changed":
        before: Any = as_decimal(row["old_amount"])
        after: Any = as_decimal(row["new_amount"])
        percent = round(float((after - before) / before * 100), 1)
        days = int(row["days_to_close"])
        return deal(
            f"{row['name']}: amount changed {percent:+g}% ({before:,.0f} → {after:,.0f}) "
            f"{days} day{'s' if days != 1 else ''} before the close date",
            {
                "old_amount": str(before),
                "new_amount": str(after),
                "percent": percent,
                "changed_at": iso(as_datetime(row["changed_at"])),
                "close_date_then": str(row["close_then"])[:10],
                "days_to_close": days,
                "limit_percent": params["percent"],
                "limit_days": params["days"],
                "as_of": iso(ctx.as_of),
            },
        )
    if key in ("stage_regressed", "stage_skipped"):
        evidence = {
            "from_stage": row["old_stage"],
            "to_stage": row["new_stage"],
            "changed_at": iso(as_datetime(row["changed_at"])),
            "period_days": params["period_days"],
            "as_of": iso(ctx.as_of),
        }
        if key == "stage_regressed":
            return deal(f"{row['name']}: moved back from {row['old_stage']} to {row['new_stage']}", evidence)
        skipped = int(row["skipped"])
        return deal(
            f"{row['name']}: jumped from {row['old_stage']} to {row['new_stage']}, "
            f"skipping {skipped} stage{'s' if skipped != 1 else ''}",
            evidence | {"skipped": skipped, "max_skipped": params["max_skipped"]},
        )
    if key == "surprise_win":
        days_open, activities = float(row["days_open"]), int(row["activities"])
        reasons = []
        if days_open < float(params["min_days"]):
            reasons.append("short_life")
        if activities < int(params["min_activities"]):
            reasons.append("few_activities")
        if row["from_stage"]:
            reasons.append("jumped_to_won")
        words = {
            "short_life": f"in the CRM only {days_open:.0f} day{'s' if round(days_open) != 1 else ''}",
            "few_activities": f"{activities} activit{'y' if activities == 1 else 'ies'} logged before close",
            "jumped_to_won": f"jumped from {row['from_stage']} straight to won",
        }
        return deal(
            f"{row['name']}: surprise win ({'; '.join(words[reason] for reason in reasons)})",
            {
                "reasons": reasons,
                "days_in_crm": round(days_open, 1),
                "activities_before_close": activities,
                "jumped_from_stage": row["from_stage"],
                "created_at": iso(as_datetime(row["created_at"])),
                "closed_at": iso(as_datetime(row["closed_at"])),
                "min_days": params["min_days"],
                "min_activities": params["min_activities"],
                "window_days": params["window_days"],
                "as_of": iso(ctx.as_of),
            },
        )
    if key == "logging_lag":
        hours = float(row["lag_hours"])
        late = f"{hours / 24:.0f} days" if hours >= 72 else f"{hours:.0f} hours"
        label = ActivityKind(row["kind"]).label if row["kind"] in ActivityKind.values else row["kind"]
        return Finding(
            key=row["key"],
            rep_id=row["owner_id"],
            activity_id=row["id"],
            summary=f"{label} “{row['subject']}” logged {late} after it happened",
            evidence={
                "opportunity_id": row["opportunity_id"],
                "occurred_at": iso(as_datetime(row["occurred_at"])),
                "logged_at": iso(as_datetime(row["logged_at"])),
                "lag_hours": round(hours, 1),
                "limit_hours": params["hours"],
                "window_days": params["window_days"],
                "as_of": iso(ctx.as_of),
            },
        )
    if key == "missed_daily_update":
        ends = as_datetime(row["cutoff_at"])
        day: Any = as_date(row["day"])
        return Finding(
            key=f"{key}:r{row['rep_id']}:{day.isoformat()}",
            rep_id=row["rep_id"],
            day=day,
            summary=(
                f"No CRM update on {day:%a %b %d} before {ends:%H:%M} ({row['time_zone']}) "
                f"with {row['open_deals']} open deal{'s' if row['open_deals'] != 1 else ''}"
            ),
            evidence={
                "day": day.isoformat(),
                "cutoff": f"{ends:%H:%M}",
                "time_zone": row["time_zone"],
                "open_deals": row["open_deals"],
                "cutoff_at": iso(ends),
                "as_of": iso(ctx.as_of),
            },
        )
    raise AssertionError(f"no reference rendering for {key}")


def _as_stored(finding: Finding) -> tuple:
    """What a violation keeps of a finding (evidence as its JSON reads back)."""
    return (
        finding.key,
        finding.rep_id,
        finding.opportunity_id,
        finding.activity_id,
        finding.day,
        None if finding.amount is None else Decimal(finding.amount).quantize(Decimal("0.01")),
        finding.summary[:255],
        json.loads(json.dumps(finding.evidence)),
    )


def _difference(actual: tuple, expected: tuple) -> str:
    names = ("key", "rep", "opportunity", "activity", "day", "amount", "summary", "evidence")
    parts = [f"{n}: {a!r} != {e!r}" for n, a, e in zip(names[:7], actual, expected, strict=False) if a != e]
    parts += [
        f"evidence[{k}]: {actual[7].get(k)!r} != {expected[7].get(k)!r}"
        for k in sorted(set(actual[7]) | set(expected[7]))
        if actual[7].get(k) != expected[7].get(k)
    ]
    return f"{actual[0]} " + ", ".join(parts)


def _generated_org(org, seed: int = 7) -> dt.datetime:
    """A few dozen deals with history, wins and activities full of awkward values; returns the
    moment to look at (in the past: every write is history)."""
    rng = random.Random(seed)
    moment = (timezone.now() - dt.timedelta(days=20)).replace(hour=15, minute=0, second=0, microsecond=0)
    reps = [org.ravi, org.rita, org.owen]
    accounts = {rep.pk: create_account(rep, name=f"Account of {rep.username}", via=Via.FORM) for rep in reps}
    opens = list(Stage.objects.filter(kind=StageKind.OPEN).order_by("order"))
    names = ["Acme renewal", "O'Brien & Sons – phase 2", "Zürich “pilot”", "Été; 100% > plan", "N" * 195]
    # Amount swings near the close date: rounding ties (25.35%, 25.25%, 26.25%, 25.55%), a fall,
    # whole-number and exponent percentages, cents, and a change too small to count.
    swings = [
        ("20000", "25070"),
        ("400", "501"),
        ("80", "101"),
        ("2000", "2511"),
        ("10000", "5000"),
        ("10", "12000"),
        ("1", "250000"),
        ("1000.50", "1700.25"),
        ("999.99", "1500.01"),
        ("100", "110"),
    ]
    # Logging lags in hours: ties for days (84 = 3.5, 108 = 4.5), tenths (50.25, 60.35, 49.45) and hours.
    lags = [84, 108, 50.25, 60.35, 49.45, 48.5, 72, 71.95, 100.05, 30]
    for n in range(36):
        rep = reps[n % 3]
        winner = n % 6 == 4
        # Deals that will be won are younger (a win counts for 30 days); every write after
        # creation moves forward in time, so the history reads as it happened.
        age = rng.uniform(8, 25) if winner else rng.uniform(40, 70)
        created = (moment - dt.timedelta(days=age)).replace(microsecond=rng.choice([0, rng.randrange(10**6)]))
        stage_index = n % len(opens)
        close = (created + dt.timedelta(days=rng.randint(5, 60))).date()
        fields = {
            "account": accounts[rep.pk] if n % 4 else None,
            "amount": Decimal(swings[n % len(swings)][0]) if n % 5 else None,
            "close_date": close,
            "next_step": ["", "Call back", "Send “the” deck"][n % 3],
            "next_step_date": [None, close - dt.timedelta(days=3), moment.date() + dt.timedelta(days=5)][
                n % 3 - 1
            ],
        }
        opp = create_opportunity(
            rep,
            name=f"{names[n % len(names)]} {n}",
            stage=opens[stage_index],
            via=Via.IMPORT,
            enforce_stage=False,
            at=created,
            **fields,
        )

        def write(changes: dict, at: dt.datetime, rep=rep, opp=opp):
            return update_opportunity(rep, opp, changes, via=Via.FORM, enforce_stage=False, at=at)

        when = created
        if winner:  # won after 3.5, 2.5, 3.35, 3.25 or 1 days (rounding ties), or much later
            opp = write(
                {"stage": stage("Won")}, created + dt.timedelta(days=[3.5, 2.5, 3.35, 3.25, 1, 12][n % 5])
            )
        else:
            if n % 3 == 0:  # pushes: two small ones, or one big one
                for days in [7, 9] if n % 2 else [40]:
                    when += dt.timedelta(days=rng.uniform(1, 4))
                    opp = write({"close_date": (opp.close_date or close) + dt.timedelta(days=days)}, when)
            if n % 4 == 1 and fields["amount"] is not None:  # a swing a few days before the close date
                when = moment - dt.timedelta(days=rng.uniform(12, 25))
                opp = write({"close_date": (when + dt.timedelta(days=rng.randint(0, 10))).date()}, when)
                when += dt.timedelta(hours=1)
                opp = write({"amount": Decimal(swings[n % len(swings)][1])}, when)
            if n % 6 == 2 and stage_index > 0:  # backwards, within the last month
                opp = write({"stage": opens[0]}, moment - dt.timedelta(days=rng.uniform(1, 10)))
            elif n % 6 in (1, 3) and stage_index < 2:  # a jump over stages
                opp = write({"stage": opens[-1]}, moment - dt.timedelta(days=rng.uniform(1, 10)))
        for k in range(n % 3 + 1):
            lag = lags[(n + k) % len(lags)]
            # Some logged (late) within the last week, the others early in the deal's life.
            recent = k == 0 and n % 2 == 0
            logged = (
                moment - dt.timedelta(hours=rng.uniform(1, 150)) if recent else created + dt.timedelta(days=k)
            )
            log_activity(
                rep,
                kind=["call", "email", "meeting", "note"][(n + k) % 4],
                subject=f"Touch {n}.{k} – “quoted”",
                opportunity=opp,
                occurred_at=logged - dt.timedelta(hours=lag),
                logged_at=logged,
                via=Via.FORM,
            )
    update_stage(
        org.ada, stage("Proposal"), {"required_fields": ["account", "amount", "close_date", "next_step"]}
    )
    never_logged.generate(org, moment)  # captured touches and contracts for the never-logged rules
    return moment


def _cycle(policy: Policy, factor: float) -> Policy:
    document = copy.deepcopy(policy.document)
    for key in ("stale_touch", "stale_update", "stale_progress"):
        document["rules"][key]["params"].update({"relative_to_cycle": True, "cycle_factor": factor})
    return Policy(version=9, document=document)


@pytest.mark.django_db
def test_findings_built_in_sql_read_exactly_as_the_python_that_built_them_before(org):
    moment = _generated_org(org)
    for policy in (current_policy(), _cycle(current_policy(), 1.35)):
        ctx = EvalContext(as_of=moment, policy=policy)
        with materialised_state(ctx):
            for rule in policy.rules:
                with rule.prepared(ctx), ctx.cursor() as cursor:
                    cursor.execute(ctx.sql(rule.facts(ctx)))
                    names = [column[0] for column in cursor.description]
                    facts = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                expected = sorted(_as_stored(_reference(rule, ctx, row)) for row in facts)
                actual = sorted(_as_stored(finding) for finding in rule.find(ctx))
                assert facts, f"the generated organisation should exercise {rule.key}"
                # A key names its rule: live keys are unique whatever the rule (the night relies on it).
                assert all(str(row["key"]).startswith(f"{rule.key}:") for row in facts), rule.key
                assert [a[0] for a in actual] == [e[0] for e in expected], rule.key
                differences = [_difference(a, e) for a, e in zip(actual, expected, strict=True) if a != e]
                assert not differences, f"{rule.key}: " + "; ".join(differences[:3])


@pytest.mark.django_db
def test_a_full_evaluation_stores_what_the_rules_find(org, settings):
    """The INSERT ... SELECT of a full evaluation and the findings read back agree."""
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    moment = _generated_org(org)
    Violation.objects.all().delete()  # opened by the fixture's own (incremental) writes
    run = evaluate(moment)
    stored = sorted(
        (v.key, v.rep_id, v.opportunity_id, v.activity_id, v.day, v.amount, v.summary, v.evidence)
        for v in Violation.objects.filter(live=True)
    )
    expected = sorted(_as_stored(f) for findings in find_all(moment).values() for f in findings)
    assert run.opened == len(expected) > 100
    assert stored == expected
    # Run again a little later: nothing new, nothing closed, nothing rewritten.
    again = evaluate(moment + dt.timedelta(seconds=1))
    assert (again.opened, again.resolved, again.expired) == (0, 0, 0)


@pytest.mark.django_db
def test_python_rounding_and_formatting_in_sql_match_python():
    """round(float(x)), round(float(x), 1), format(x, "g"), format(n, ",") and %b %d as SQL."""
    from django.db import connection

    from truepipe.hygiene.rules import text

    ctx = EvalContext(as_of=timezone.now(), policy=current_policy())
    rng = random.Random(3)
    values = [k / 20 for k in range(0, 4000)] + [k / 100 + 0.005 for k in range(0, 3000, 7)]
    values += [rng.uniform(0, 1e6) for _ in range(300)] + [84.35, 12.55, 0.15, 2.5, 3.5, 1e9 + 0.5]
    values += [-v for v in values[:400]]
    literals = (
        [repr(v) for v in values] if ctx.vendor == "sqlite" else [f"CAST('{v!r}' AS NUMERIC)" for v in values]
    )
    got = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), 400):
            rows = " UNION ALL ".join(
                f"SELECT {i} AS i, {x} AS x" for i, x in enumerate(literals[start : start + 400], start)
            )
            cursor.execute(
                f"SELECT i, {text.round_int(ctx, 'v.x')}, {text.round_tenths(ctx, 'v.x')}"
                f" FROM ({rows}) v ORDER BY i"
            )
            got += [(int(a), int(b)) for _, a, b in cursor.fetchall()]
    assert got == [(round(v), round(round(v, 1) * 10)) for v in values]

    tenths = [
        0,
        1,
        5,
        10,
        123,
        999999,
        1000000,
        1234565,
        1234575,
        9999994,
        9999995,
        9999999,
        12345678,
        123456789,
        24999990,
        10**11 + 5,
    ]
    tenths += [-t for t in tenths]
    with connection.cursor() as cursor:
        rows = " UNION ALL ".join(f"SELECT {i} AS i, {t} AS t" for i, t in enumerate(tenths))
        cursor.execute(
            f"SELECT i, {text.g_tenths(ctx, 'v.t')}, {text.g_tenths(ctx, 'v.t', plus=True)},"
            f" {text.thousands(ctx, 'v.t')} FROM ({rows}) v ORDER BY i"
        )
        formatted = [tuple(row[1:]) for row in cursor.fetchall()]
    assert formatted == [(f"{t / 10:g}", f"{t / 10:+g}", f"{t:,}") for t in tenths]

    days = [dt.date(2025, month, day) for month in range(1, 13) for day in (1, 9, 28)]
    with connection.cursor() as cursor:
        rows = " UNION ALL ".join(f"SELECT {i} AS i, {ctx.date(d)} AS d" for i, d in enumerate(days))
        cursor.execute(
            f"SELECT i, {text.month_day(ctx, 'v.d')}, {text.month_day(ctx, 'v.d', year=True)}"
            f" FROM ({rows}) v ORDER BY i"
        )
        assert [tuple(row[1:]) for row in cursor.fetchall()] == [
            (f"{d:%b %d}", f"{d:%b %d, %Y}") for d in days
        ]


@pytest.mark.django_db
def test_a_key_opened_meanwhile_is_skipped_not_an_error(org):
    """The INSERT ... SELECT of new failures meets a key opened in between (a concurrent write's
    own evaluation, here a duplicate row): it runs again skipping such keys."""
    from django.db import connection

    from truepipe.hygiene.engine import _insert_new

    Violation.objects.all().delete()
    ctx = EvalContext(as_of=timezone.now() + dt.timedelta(days=60), policy=current_policy())
    rule = next(rule for rule in ctx.policy.rules if rule.key == "past_due_close")
    with materialised_state(ctx), connection.cursor() as cursor:
        facts = ctx.sql(rule.facts(ctx))
        cursor.execute(f"CREATE TEMPORARY TABLE hy_twice AS SELECT * FROM ({facts}) a UNION ALL {facts}")
        try:
            inserted = _insert_new(ctx, rule, "hy_twice")
        finally:
            cursor.execute("DROP TABLE hy_twice")
    keys = {f.key for f in find_all(ctx.as_of)["past_due_close"]}
    assert inserted.opened == len(keys) >= 1
    # What was not inserted is not known to be live already: the night must look for what to close.
    assert not inserted.exact and not inserted.nothing_to_close
    assert set(Violation.objects.filter(live=True).values_list("key", flat=True)) == keys


@pytest.mark.django_db
def test_every_write_runs_the_same_rule_statements_whatever_the_deal_and_moment(org):
    """Incremental evaluation binds its moment and deals through small tables, so the rules'
    statements repeat word for word: SQLite reuses their compiled programs and PostgreSQL runs
    them prepared, instead of compiling or planning them on every write."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from truepipe.hygiene.engine import evaluate_records

    def rule_statements(deal, as_of) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            evaluate_records(opportunity_ids=[deal.pk], as_of=as_of)
        starts = ("SELECT f.key", "INSERT INTO hy_state_few", "EXECUTE", "PREPARE")
        # On PostgreSQL the evaluation is one batch of statements: look at each.
        parts = [part.strip() for q in captured.captured_queries for part in q["sql"].split("; ")]
        return [part for part in parts if part.startswith(starts)]

    rule_statements(org.ravi_open, timezone.now())  # the first write on a connection prepares
    second = rule_statements(org.ravi_open, timezone.now() + dt.timedelta(minutes=1))
    third = rule_statements(org.ravi_won, timezone.now() + dt.timedelta(hours=5))

    rules = [rule.key for rule in current_policy().rules if rule.subject == "opportunity"]
    assert len(second) >= len(rules) + 1  # the state, every rule (and on PostgreSQL the live read)
    assert second == third
    assert not any(statement.startswith("PREPARE") for statement in third)


@pytest.mark.django_db
def test_bound_and_literal_incremental_evaluations_find_the_same_failures(org):
    """Bound mode changes how the moment and the deals reach the SQL, never what the rules find."""
    from truepipe.hygiene.engine import prepare_incremental

    deals = list(org.ravi.opportunities.values_list("pk", flat=True))
    as_of = timezone.now() + dt.timedelta(days=45)  # late enough for the date rules to fail too
    found: dict[bool, dict[str, set[str]]] = {}
    for bound in (False, True):
        ctx = EvalContext(as_of=as_of, policy=current_policy(), opportunity_ids=deals)
        ctx.bound = bound
        prepare_incremental(ctx)
        found[bound] = {
            rule.key: rule.keys(ctx) for rule in ctx.policy.rules if rule.subject == "opportunity"
        }

    assert found[True] == found[False]
    assert sum(len(keys) for keys in found[True].values()) >= 3


@pytest.mark.django_db
def test_on_postgresql_a_night_that_changed_many_violations_refreshes_their_statistics(org, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from truepipe.hygiene import engine

    if connection.vendor != "postgresql":
        pytest.skip("SQLite plans without statistics here")

    def analyses(threshold: int, days: int) -> int:
        monkeypatch.setattr(engine, "REANALYSE_AFTER", threshold)
        with CaptureQueriesContext(connection) as captured:
            evaluate(timezone.now() + dt.timedelta(days=days))
        return sum(q["sql"] == "ANALYZE hygiene_violation" for q in captured.captured_queries)

    assert analyses(10_000, 1) == 0  # a handful of changes: the statistics stand
    assert analyses(0, 2) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("activities_only", [False, True], ids=["a write of both", "a logged call"])
@pytest.mark.parametrize("analysed", [True, False], ids=["analysed", "no statistics"])
def test_an_activity_write_reads_its_live_violations_by_index_even_when_most_violations_are_about_deals(
    org, activities_only, analysed
):
    """With statistics saying almost no violation names an activity (or none at all), the live
    violations of an activity write's deals and activities are still found through their indexes
    (an OR of the two had SQLite scan every violation: a second per logged touch at three million
    violations; a logged call's rules named in the activities' branch, a quarter of a second)."""
    from django.db import connection

    from truepipe.hygiene.engine import _live_sql, prepare_incremental
    from truepipe.hygiene.models import Violation

    if connection.vendor != "sqlite":
        # PostgreSQL keeps NULL fractions in its statistics and reads a few thousand rows by a
        # sequential scan when it estimates that cheaper: its plan here says nothing either way.
        pytest.skip("SQLite's planner is the one misled by an index full of NULLs")

    rows = [
        Violation(
            rule="stale_touch",
            key=f"bulk:{n}",
            rep=org.ravi,
            opportunity=org.ravi_open,
            severity=2,
            summary="bulk",
            opened_at=timezone.now(),
            live=n % 2 == 0,
        )
        for n in range(3000)
    ]
    Violation.objects.bulk_create(rows)
    if analysed:
        with connection.cursor() as cursor:
            # Only this table: on PostgreSQL a table's row estimate outlives the test's rollback, and
            # the other tables, analysed empty, would mislead the plans of every later test.
            cursor.execute("ANALYZE hygiene_violation")
    ctx = EvalContext(
        as_of=timezone.now(),
        policy=current_policy(),
        opportunity_ids=[org.ravi_open.pk],
        activity_ids=[1],
        activities_only=activities_only,
    )
    ctx.bound = True
    prepare_incremental(ctx)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + _live_sql(ctx))
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())

    activities_part = plan.split("UNION", 1)[-1]  # the activities' branch
    assert "SCAN hygiene_violation" not in activities_part, plan
    assert "violation_activity_idx" in activities_part, plan


@pytest.mark.django_db
@pytest.mark.parametrize("analysed", [False, True], ids=["no statistics", "analysed"])
def test_a_capture_batch_reads_only_its_rules_live_violations_and_from_an_index_alone(org, analysed):
    """Captured mail re-runs two rules on each batch's deals: their live violations come
    from `violation_live_deal_idx` without reading a row, and the other rules' are not read."""
    from django.db import connection

    from truepipe.hygiene.engine import _in_scope, _live, _live_sql, prepare_incremental

    deal = org.ravi_open
    evaluate(timezone.now() + dt.timedelta(days=60))  # untouched for two months: stale, and more
    live = {v.rule: v for v in Violation.objects.filter(opportunity=deal, live=True)}
    ctx = EvalContext(
        as_of=timezone.now(),
        policy=current_policy(),
        opportunity_ids=[deal.pk],
        activities_only=True,
        captured_only=True,
    )
    ctx.bound = True
    prepare_incremental(ctx)
    in_scope = {rule.key for rule in ctx.policy.rules if _in_scope(ctx, rule)}
    assert "stale_touch" in live and set(live) - in_scope  # live violations of other rules too

    stale_rule = next(rule for rule in ctx.policy.rules if rule.key == "stale_touch")
    assert _live(ctx, stale_rule) == {live["stale_touch"].key: live["stale_touch"].pk}
    assert set(ctx.live_in_scope or {}) == {"stale_touch"}  # the other rules' were never read

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            if analysed:
                cursor.execute("ANALYZE hygiene_violation")
            cursor.execute("EXPLAIN QUERY PLAN " + _live_sql(ctx))
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
        assert "COVERING INDEX violation_live_deal_idx" in plan, plan
    else:  # deal by deal, whatever the estimates (a batch's 8,000 deals were hashed against all)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1000")  # estimates that favour hashing
            cursor.execute("EXPLAIN " + _live_sql(ctx))
            plan = " ".join(str(row[0]) for row in cursor.fetchall())
        # Each deal's violations looked up by that deal: the scan is parameterised by it.
        assert "(opportunity_id = i.id)" in plan and "Hash" not in plan, plan


@pytest.mark.django_db
def test_the_daily_update_check_finds_a_reps_own_updates_through_an_index_capture_never_writes(org):
    """`activity_owner_logged_idx` holds only what people logged (capture's thousands an hour skip
    it), and the missed-daily check's question matches its condition, so it is still read."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's plans over a test's few rows say nothing about the index")
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM auth_user w WHERE NOT EXISTS (SELECT 1 FROM"
            " activities_activity a WHERE a.owner_id = w.id AND a.logged_at >= '2026-01-01'"
            f" AND a.logged_at < '2026-01-02' AND {not_captured('a.source')})"
        )
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
        assert "activity_owner_logged_idx" in plan, plan
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'activity_owner_logged_idx'")
        assert "WHERE" in cursor.fetchone()[0]


@pytest.mark.django_db
def test_on_postgresql_a_large_incremental_batch_analyses_its_scratch_tables_and_a_small_one_does_not(org):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from truepipe.hygiene import engine

    if connection.vendor != "postgresql":
        pytest.skip("SQLite plans without statistics here")

    def analysed(ids: list[int]) -> bool:
        with CaptureQueriesContext(connection) as captured:
            engine.evaluate_records(opportunity_ids=ids)
        return any("ANALYZE hy_ids" in q["sql"] for q in captured.captured_queries)

    deal = org.ravi_open.pk
    assert not analysed([deal])
    assert analysed([deal, *range(10**9, 10**9 + engine.ANALYZE_SCRATCH_AFTER)])


# What a rule's SQL reads when its verdict depends on activities: the state's activity clocks and
# count, or the activities table itself.
ACTIVITY_COLUMNS = ("touch_clock", "update_clock", "last_touch_at", "activity_count", "activities_activity")


def _incremental_rules_sql(org) -> list[tuple[Any, str]]:
    """Each rule a write re-runs, with the SQL it reads (its facts and derived values)."""
    ctx = EvalContext(
        as_of=timezone.now(), policy=current_policy(), opportunity_ids=[org.ravi_open.pk], activity_ids=[1]
    )
    ctx.state = "hy_state_few"
    return [
        (rule, rule.facts(ctx) + " ".join(e for layer in rule.derived(ctx) for e in layer.values()))
        for rule in ctx.policy.rules
        if rule.incremental
    ]


@pytest.mark.django_db
def test_every_rule_that_reads_activities_says_so_and_no_other_rule_claims_to(org):
    """A write of activities alone re-runs only the rules that declare `reads_activities`: a rule
    reading the activity clocks without declaring it would keep a verdict a logged touch changed."""
    for rule, sql in _incremental_rules_sql(org):
        reads = any(column in sql for column in ACTIVITY_COLUMNS)
        assert rule.reads_activities == reads, rule.key


# What captured e-mail and meetings move on a deal: its customer-touch clock and activity count,
# and any read of the activities themselves that does not leave captured ones out.
CAPTURED_COLUMNS = ("touch_clock", "last_touch_at", "activity_count")
NOT_CAPTURED = not_captured("source")


@pytest.mark.django_db
def test_every_rule_that_captured_mail_can_change_says_so_and_no_other_rule_claims_to(org):
    """A batch of captured mail re-runs only the rules that declare `reads_captured`: a rule reading
    the touch clock or the activity count without it would keep a verdict a captured mail changed."""
    for rule, sql in _incremental_rules_sql(org):
        reads = any(column in sql for column in CAPTURED_COLUMNS) or (
            "activities_activity" in sql and NOT_CAPTURED not in sql
        )
        declared = rule.reads_activities if rule.reads_captured is None else rule.reads_captured
        assert declared == reads, rule.key


@pytest.mark.django_db
def test_logging_a_call_clears_the_stale_touch_at_once_and_runs_only_the_rules_that_read_activities(
    org, monkeypatch
):
    """Ravi's renewal has been quiet for two months and its close date has passed. The call he logs
    clears the stale-touch violation at once; the past close date stays, and its rule does not even
    run: logging a call changes none of the deal's own fields."""
    from truepipe.hygiene import engine
    from truepipe.pipeline.models import Opportunity

    two_months_ago = timezone.now() - dt.timedelta(days=60)
    Opportunity.objects.filter(pk=org.ravi_open.pk).update(
        created_at=two_months_ago, close_date=timezone.localdate() - dt.timedelta(days=10)
    )
    evaluate()
    stale = _violation("stale_touch", org.ravi_open)
    past_due = _violation("past_due_close", org.ravi_open)

    ran: set[str] = set()
    run_rules = engine.run_rules

    def run_rules_and_note(ctx, *args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = run_rules(ctx, *args, **kwargs)
        ran.update(outcome.by_rule)
        return outcome

    monkeypatch.setattr(engine, "run_rules", run_rules_and_note)
    log_activity(
        org.ravi, kind=ActivityKind.CALL, opportunity=org.ravi_open, subject="Renewal call", via=Via.FORM
    )

    stale.refresh_from_db()
    past_due.refresh_from_db()
    assert stale.status == ViolationStatus.RESOLVED
    assert stale.resolved_by == org.ravi
    assert past_due.status == ViolationStatus.OPEN and past_due.live
    assert ran == {rule.key for rule in current_policy().rules if rule.reads_activities and rule.incremental}


@pytest.mark.django_db
def test_a_call_moved_to_another_deal_leaves_the_first_deal_stale_again_at_once(org):
    """Ravi logs a call on his quiet renewal, then sees it was about the new pilot and moves it:
    the pilot's stale touch clears, and the renewal, touched by nobody after all, is stale again."""
    from truepipe.activities.services import update_activity
    from truepipe.pipeline.models import Opportunity

    pilot = create_opportunity(
        org.ravi,
        name="Acme pilot",
        account=org.acme,
        stage=stage("Proposal"),
        amount=Decimal("9000"),
        close_date=org.ravi_open.close_date,
        via=Via.FORM,
    )
    two_months_ago = timezone.now() - dt.timedelta(days=60)
    Opportunity.objects.filter(pk__in=[org.ravi_open.pk, pilot.pk]).update(created_at=two_months_ago)
    evaluate()
    call = log_activity(
        org.ravi, kind=ActivityKind.CALL, opportunity=org.ravi_open, subject="Call", via=Via.FORM
    )
    assert not Violation.objects.filter(rule="stale_touch", opportunity=org.ravi_open, live=True).exists()

    update_activity(org.ravi, call, {"opportunity": pilot}, via=Via.FORM)

    assert not Violation.objects.filter(rule="stale_touch", opportunity=pilot, live=True).exists()
    assert _violation("stale_touch", org.ravi_open).status == ViolationStatus.OPEN


@pytest.mark.django_db
def test_a_night_that_finds_every_live_violation_again_closes_nothing_and_one_that_misses_one_closes_it(
    org, settings
):
    """The night counts a rule's live violations and the keys it found: when every live one was
    found again it skips looking for what to close, and when one was not found, it looks, and
    closes that one alone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Three nights a minute apart, all at noon tomorrow: none of them crosses a day (past-due
    # dates, rep-days), so only Ravi's fix can close anything.
    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    evaluate(noon)
    missing = set(Violation.objects.filter(live=True, rule="no_next_step").values_list("key", flat=True))
    assert len(missing) >= 2

    def closings(minutes: int) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            evaluate(noon + dt.timedelta(minutes=minutes))
        statements = [query["sql"] for query in captured.captured_queries]
        return [sql for sql in statements if sql.startswith("UPDATE hygiene_violation")]

    def live() -> set[str]:
        return set(Violation.objects.filter(live=True, rule="no_next_step").values_list("key", flat=True))

    # SQLite counts what its insert saw, and skips the look-up; PostgreSQL looks, and closes nothing.
    first_night = closings(1)
    if connection.vendor == "sqlite":
        assert first_night == []
    else:
        assert first_night
    assert live() == missing

    # Ravi sets his next step with the write's own evaluation off, so the fix is the next night's
    # to find: it resolves that violation alone.
    settings.TRUEPIPE_INCREMENTAL_EVALUATION = False
    update_opportunity(org.ravi, org.ravi_open, _next_step(), via=Via.FORM)
    fixed = _violation("no_next_step", org.ravi_open)
    assert fixed.live

    assert [sql for sql in closings(2) if "no_next_step" in sql]
    fixed.refresh_from_db()
    assert (fixed.live, fixed.status, fixed.resolved_via) == (False, ViolationStatus.RESOLVED, "evaluation")
    assert live() == missing - {fixed.key}


@pytest.mark.django_db
def test_the_night_says_when_each_rules_transaction_has_committed(org):
    """The night's checkpointer (SQLite) folds the log back after each rule's transaction: the
    rules' loop says when each has committed, after it, and the rule's violations are written by then."""
    from truepipe.hygiene.engine import run_rules

    Violation.objects.all().delete()  # what the writes' own evaluations opened: the night opens it
    ctx = EvalContext(as_of=timezone.now(), policy=current_policy())
    seen: list[tuple[str, int]] = []
    started: list[str] = []

    def committed() -> None:
        rule = started[-1]
        seen.append((rule, Violation.objects.filter(rule=rule, live=True).count()))

    with materialised_state(ctx):
        outcome = run_rules(ctx, progress=started.append, committed=committed)
    assert [rule for rule, _ in seen] == started == list(outcome.by_rule)
    assert dict(seen)["no_next_step"] == outcome.by_rule["no_next_step"][0] >= 1
