"""The engine's side of accountability: offenses found after each full evaluation, and
consequences escalated when their deadline passes unenforced.

Both are a handful of queries over the whole organisation, whatever its size, and both are
idempotent: an offense has a key per rep and week, an escalation happens once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Avg, Count, F, Q
from django.utils import timezone

from truepipe.accountability.ladder import Accountability, Step
from truepipe.accountability.models import (
    Consequence,
    ConsequenceState,
    Offense,
    OffenseStatus,
    OffenseViolation,
)
from truepipe.audit import log as audit
from truepipe.hygiene.engine import after_evaluation
from truepipe.hygiene.models import EvaluationRun, RepScore, Violation, ViolationStatus
from truepipe.hygiene.policy import Policy
from truepipe.notify.send import Message, notify_each
from truepipe.people.models import Role, SalesProfile


def week_of(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Found:
    offenses: list[Offense] = field(default_factory=list)
    consequences: list[Consequence] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


def _counting(rules: Accountability, as_of: dt.datetime) -> Q:
    """Violations that count toward an offense at a moment: severe enough, open past the grace
    period then (waived, resolved or expired later still counted at that moment)."""
    cutoff = as_of - dt.timedelta(days=rules.grace_days)
    return (
        Q(severity__gte=rules.offense_severity, opened_at__lte=cutoff)
        & (Q(closed_at__isnull=True) | Q(closed_at__gt=as_of))
        & ~Q(status=ViolationStatus.WAIVED, closed_at__lte=as_of)
    )


def _counted_per_rep(rules: Accountability, as_of: dt.datetime) -> dict[int, int]:
    """How many violations count toward an offense at a moment (`_counting`), per rep, read as
    the open ones (from their partial index, which holds rep, severity and opening) and those
    closed after the moment (a back-fill's; from the closing index): one grouped count over every
    violation ever recorded took most of a second at 2.5 M. An open violation has no closing
    time and a closed one has one, so the two parts are `_counting` split in two.

    The closed ones are grouped on an expression of the rep, not the column: grouped on the column,
    SQLite walked the (rep, opening) index over every violation to save a sort (0.2 s a night),
    instead of reading the few closed after the moment."""
    cutoff = as_of - dt.timedelta(days=rules.grace_days)
    counted: dict[int, int] = defaultdict(int)
    for part, rep in (
        (Q(status=ViolationStatus.OPEN), F("rep_id")),
        (Q(closed_at__gt=as_of) & ~Q(status=ViolationStatus.OPEN), F("rep_id") + 0),
    ):
        for rep_id, n in (
            Violation.objects.filter(part, severity__gte=rules.offense_severity, opened_at__lte=cutoff)
            .values(who=rep)
            .annotate(n=Count("*"))
            .values_list("who", "n")
        ):
            counted[rep_id] += n
    return dict(counted)


def owners_for(rep_ids: set[int], step: Step) -> dict[int, int | None]:
    """Who owns each rep's consequence at this step: their manager, their manager's manager, or
    (None) the admins."""
    if step.owner == "admin":
        return dict.fromkeys(rep_ids)
    managers = dict(SalesProfile.objects.filter(user_id__in=rep_ids).values_list("user_id", "manager_id"))
    if step.owner == "manager":
        return {rep: managers.get(rep) for rep in rep_ids}
    above = dict(
        SalesProfile.objects.filter(user_id__in={m for m in managers.values() if m}).values_list(
            "user_id", "manager_id"
        )
    )
    return {rep: above.get(managers.get(rep) or 0) for rep in rep_ids}


def detect(day: dt.date, as_of: dt.datetime, policy: Policy) -> Found:
    """Open this week's offense for every rep the policy says has one, with its consequence."""
    rules = policy.accountability
    week = week_of(day)
    unresolved = {rep: n for rep, n in _counted_per_rep(rules, as_of).items() if n >= rules.min_unresolved}
    low: dict[int, Decimal] = {}
    if rules.weekly_score_below > 0:
        low = dict(
            RepScore.objects.filter(day__gt=day - dt.timedelta(days=7), day__lte=day)
            .values("rep_id")
            .annotate(avg=Avg("score"))
            .filter(avg__lt=rules.weekly_score_below)
            .values_list("rep_id", "avg")
        )
    # At most one offense a week per rep: none in this calendar week, and none in the six days
    # before (the nightly job's two runs on a Monday night fall in two calendar weeks).
    recent = Offense.objects.filter(Q(week=week) | Q(day__gt=day - dt.timedelta(days=7), day__lte=day))
    reps = (set(unresolved) | set(low)) - set(recent.values_list("rep_id", flat=True))
    # Only people whose data discipline the policy measures (reps and managers who sell).
    reps &= set(
        SalesProfile.objects.filter(user_id__in=reps, role__in=[Role.REP, Role.MANAGER]).values_list(
            "user_id", flat=True
        )
    )
    found = Found()
    if not reps:
        return found
    earlier = dict(
        Offense.objects.filter(
            rep_id__in=reps,
            status=OffenseStatus.ACTIVE,
            day__gt=day - dt.timedelta(days=rules.window_days),
            day__lte=day,
        )
        .values("rep_id")
        .annotate(n=Count("id"))
        .values_list("rep_id", "n")
    )
    with transaction.atomic():
        offenses = [
            Offense(
                rep_id=rep,
                key=f"offense:{rep}:{week}",
                day=day,
                week=week,
                detected_at=as_of,
                level=earlier.get(rep, 0) + 1,
                policy_version=policy.version,
                unresolved=unresolved.get(rep, 0),
                weekly_score=_round1(low.get(rep)),
                summary=summary(rules, unresolved.get(rep, 0), low.get(rep)),
            )
            for rep in sorted(reps)
        ]
        Offense.objects.bulk_create(offenses, batch_size=1000)
        by_rep = {offense.rep_id: offense for offense in Offense.objects.filter(week=week, rep_id__in=reps)}
        link_evidence([o.pk for o in by_rep.values() if o.unresolved], as_of, rules)
        consequences = create_consequences(list(by_rep.values()), rules, day)
        audit.record_many(
            None,
            [("offense.found", offense, offense_data(offense)) for offense in by_rep.values()]
            + [("consequence.created", c, consequence_data(c)) for c in consequences],
        )
        notify_each(offense_messages(list(by_rep.values()), consequences))
    found.offenses = list(by_rep.values())
    found.consequences = consequences
    return found


def offense_messages(offenses: list[Offense], consequences: list[Consequence]) -> list[Message]:
    """The rep hears of the offense and what follows; the owner hears what to decide, by when."""
    names = dict(
        get_user_model().objects.filter(pk__in={o.rep_id for o in offenses}).values_list("pk", "first_name")
    )
    by_offense = {c.offense_id: c for c in consequences}
    messages = []
    for offense in offenses:
        c = by_offense.get(offense.pk)
        url = f"/accountability/offenses/{offense.pk}/"
        step = f"{c.name}, to be applied by {c.deadline:%b %d}" if c else "no consequence"
        messages.append(
            Message(
                user=offense.rep_id,
                event="offense.found",
                title=f"Offense {offense.week} (level {offense.level}): {step}",
                body=f"{offense.summary}. You may dispute it within the policy's window.",
                url=url,
                data=offense_data(offense),
            )
        )
        if c is not None:
            rep = names.get(offense.rep_id) or "A rep"
            messages.append(
                Message(
                    user=c.owner_id,
                    event="consequence.created",
                    title=f"To decide by {c.deadline:%b %d}: {c.name} for {rep}",
                    body=offense.summary,
                    url=url,
                    data=consequence_data(c),
                )
            )
    return messages


def link_evidence(offense_ids: list[int], as_of: dt.datetime, rules: Accountability) -> None:
    """The violations behind these new offenses, linked in one INSERT ... SELECT per thousand
    offenses (a rep can have hundreds: no violation passes through Python)."""
    counting = Violation.objects.filter(_counting(rules, as_of)).values("id", "rep_id")
    sql, params = counting.query.sql_with_params()
    with connection.cursor() as cursor:
        for start in range(0, len(offense_ids), 1000):
            chunk = offense_ids[start : start + 1000]
            cursor.execute(
                f"""INSERT INTO {OffenseViolation._meta.db_table} (offense_id, violation_id)
                    SELECT o.id, v.id FROM {Offense._meta.db_table} o JOIN ({sql}) v ON v.rep_id = o.rep_id
                    WHERE o.id IN ({", ".join(["%s"] * len(chunk))})""",
                [*params, *chunk],
            )


def create_consequences(offenses: list[Offense], rules: Accountability, day: dt.date) -> list[Consequence]:
    """Each offense's step of the ladder, owned and dated (one insert)."""
    by_level: dict[int, list[Offense]] = defaultdict(list)
    for offense in offenses:
        by_level[offense.level].append(offense)
    rows = []
    for level, group in by_level.items():
        step = rules.step(level)
        owners = owners_for({o.rep_id for o in group}, step)
        rows += [
            Consequence(
                offense_id=offense.pk,
                level=level,
                name=step.name,
                action=step.action,
                notify=list(step.notify),
                hold_days=step.hold_days,
                owner_id=owners.get(offense.rep_id),
                deadline=day + dt.timedelta(days=step.deadline_days),
            )
            for offense in group
        ]
    return Consequence.objects.bulk_create(rows, batch_size=1000)


def _round1(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.1"))


def summary(rules: Accountability, unresolved: int, score: Any) -> str:
    parts = []
    if unresolved:
        label = {1: "low", 2: "medium", 3: "high"}[rules.offense_severity]
        plural = "s" if unresolved != 1 else ""
        parts.append(
            f"{unresolved} {label}-severity violation{plural} left unresolved over {rules.grace_days} days"
        )
    if score is not None:
        parts.append(f"7-day score {_round1(score)} (below {rules.weekly_score_below:g})")
    return "; ".join(parts)[:255]


def offense_data(offense: Offense) -> dict[str, Any]:
    return {
        "rep": offense.rep_id,
        "week": offense.week,
        "level": offense.level,
        "policy_version": offense.policy_version,
        "summary": offense.summary,
    }


def consequence_data(consequence: Consequence) -> dict[str, Any]:
    return {
        "offense": consequence.offense_id,
        "level": consequence.level,
        "name": consequence.name,
        "owner": consequence.owner_id,
        "deadline": consequence.deadline.isoformat(),
    }


def escalate_overdue(day: dt.date, at: dt.datetime | None = None) -> list[int]:
    """Consequences whose deadline passed before `day`, neither applied nor waived: escalated once
    to their owner's manager (an owner without one leaves them to the admins)."""
    overdue = Consequence.objects.filter(
        state=ConsequenceState.PENDING, deadline__lt=day, escalated_at__isnull=True
    )
    with transaction.atomic():
        # Locked and read inside the transaction: a decision or another run meanwhile is seen.
        rows = list(overdue.select_for_update().values_list("pk", "owner_id"))
        return _escalate(rows, day, at)


def _escalate(rows: Sequence[tuple[int, int | None]], day: dt.date, at: dt.datetime | None) -> list[int]:
    if not rows:
        return []
    managers = dict(
        SalesProfile.objects.filter(user_id__in={owner for _, owner in rows if owner}).values_list(
            "user_id", "manager_id"
        )
    )
    now = at or timezone.now()
    by_target: dict[int | None, list[int]] = defaultdict(list)
    for pk, owner in rows:
        by_target[managers.get(owner) if owner else None].append(pk)
    with transaction.atomic():
        for target, pks in by_target.items():
            Consequence.objects.filter(pk__in=pks, escalated_at__isnull=True).update(
                escalated_to_id=target, escalated_at=now
            )
        notify_each(
            Message(
                user=target,
                event="consequence.escalated",
                title="Unenforced: a consequence passed its deadline",
                body="Neither applied nor waived in time; it is yours to decide now.",
                url="/accountability/#to-decide",
                data={"consequence": pk, "to": target},
            )
            for target, pks in by_target.items()
            for pk in pks
        )
        audit.record_many(
            None,
            [
                (
                    "consequence.escalated",
                    f"consequence:{pk}",
                    {"to": target, "deadline_passed_before": str(day)},
                )
                for target, pks in by_target.items()
                for pk in pks
            ],
        )
        report_bluffers({owner for _, owner in rows if owner}, managers, now)
    return [pk for _, pk_list in by_target.items() for pk in pk_list]


def report_bluffers(owners: set[int], managers: Mapping[int, int | None], now: dt.datetime) -> None:
    """An owner whose escalations in the window just reached the policy's number is reported to
    their own manager (once, when the count reaches it; the page shows it from then on)."""
    from truepipe.hygiene.policy import current_policy

    rules = current_policy().accountability
    threshold = max(rules.unenforced_report_after, 1)
    counts = dict(
        Consequence.objects.filter(
            owner_id__in=owners, escalated_at__gt=now - dt.timedelta(days=rules.window_days)
        )
        .values("owner_id")
        .annotate(n=Count("id"))
        .values_list("owner_id", "n")
    )
    fresh = dict(
        Consequence.objects.filter(owner_id__in=owners, escalated_at=now)
        .values("owner_id")
        .annotate(n=Count("id"))
        .values_list("owner_id", "n")
    )
    names = dict(get_user_model().objects.filter(pk__in=owners).values_list("pk", "first_name"))
    notify_each(
        Message(
            user=managers.get(owner),
            event="manager.unenforced",
            title=f"{names.get(owner) or 'A manager'} let {n} consequences pass their deadline",
            body=f"{n} in {rules.window_days} days: the policy is only as real as its follow-through.",
            url="/accountability/#unenforced",
            data={"manager": owner, "escalated": n},
        )
        for owner, n in counts.items()
        if managers.get(owner) and n - fresh.get(owner, 0) < threshold <= n
    )


@after_evaluation
def after_run(run: EvaluationRun, policy: Policy) -> None:
    detect(run.day, run.as_of, policy)
    escalate_overdue(run.day, run.as_of)
