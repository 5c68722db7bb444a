"""The rep's daily queue ("15 minutes every morning, then done").

Every morning a rep gets the few fixes that matter most among their open
violations, each with the minutes it takes (the rule's ``fix_minutes``), cut to
fit a time box: the policy's ``queue.minutes`` (15 by default) or the rep's own
setting (`QueueSetting`).

- **Ranking**: cost x age. The cost is what the violation takes off the rep's
  discipline score (docs/scoring.md): severity points x the deal's value weight
  (its amount over the median open deal amount, clamped); the age weight grows
  from 1 on the day a violation opens to 3 after four weeks, so an old problem
  climbs above a fresh one of the same size. Ties: older first.
- **Cut**: items are taken best first while they fit in the box; one that does not
  fit is passed over for a smaller one further down. A box smaller than the best
  item still holds that item.
- **Lessons**: rules with ``fix_minutes = 0`` (a surprise win, a missed day, a late
  log) cannot be fixed afterwards; they are shown "for your information", not as tasks.
- **Reviews**: a few rules look back over a window of history (a close date pushed
  again and again, an amount swing, a stage skipped or moved back); no edit clears
  them until the window passes. The rep explains the deal instead (a note on it),
  which completes the item, and a reviewed violation is not planned again.
- **The day's plan is fixed** when the rep first opens the queue that day
  (`QueueDay`); progress is how many of those items are done since (the violation
  resolved, waived or expired, or reviewed). Changing the time box re-plans the
  open part. A rep who clears the plan extends their **streak**: consecutive
  working days (`SalesProfile.working_days`) with a cleared queue.

Set-based: a handful of queries whatever the number of deals. Building a queue
for someone else (a manager looking at a rep) writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from truepipe.activities.models import Activity, ActivityKind
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.models import Via
from truepipe.core.visibility import role_of
from truepipe.hygiene.models import QueueDay, QueueSetting, Violation, ViolationStatus
from truepipe.hygiene.policy import DEFAULT_QUEUE, Policy, current_policy
from truepipe.hygiene.rules import load_all
from truepipe.hygiene.rules.reps import zone_of
from truepipe.hygiene.scoring import scoring_settings, severity_points, value_weight
from truepipe.people.models import Role, SalesProfile, default_working_days
from truepipe.pipeline.models import Opportunity, StageKind

MIN_MINUTES, MAX_MINUTES = 5, 120
# The age weight: 1 on the day a violation opens, +1 per fortnight, at most 3.
AGE_STEP_DAYS, AGE_MAX_WEIGHT = 14, 3.0
# Queue days read back for the streak and for violations already reviewed.
LOOKBACK_DAYS = 120
FYI_SHOWN = 3  # lessons shown per rule
DEFAULT_FIX_MINUTES = 2
# Rules over a window of history: an edit does not clear them, an explanation completes them.
REVIEWABLE = frozenset({"close_pushed", "amount_changed", "stage_regressed", "stage_skipped"})
# The one-or-two-click fixes a queue item offers, best first, by rule.
ACTIONS: dict[str, tuple[str, ...]] = {
    "past_due_close": ("close_date", "lost"),
    "no_next_step": ("next_step", "lost"),
    "stale_touch": ("touch", "snooze", "lost"),
    "stale_update": ("touch", "next_step", "snooze", "lost"),
    "stale_progress": ("snooze", "lost"),
    "missing_stage_fields": ("lost",),
    "close_pushed": ("review", "close_date", "lost"),
    "amount_changed": ("review", "lost"),
    "stage_regressed": ("review", "next_step", "lost"),
    "stage_skipped": ("review", "lost"),
}
DEFAULT_ACTIONS = ("touch", "next_step", "snooze", "lost")


# ---------------------------------------------------------------- rules and ranking


@dataclass(frozen=True)
class RuleInfo:
    key: str
    title: str
    explanation: str
    fix_minutes: int

    @property
    def is_task(self) -> bool:
        return self.fix_minutes > 0


def rule_info(policy: Policy, key: str, cache: dict[str, RuleInfo] | None = None) -> RuleInfo:
    """The rule's title, explanation (with the policy's parameters) and minutes to fix."""
    if cache is not None and key in cache:
        return cache[key]
    rule = policy.rule(key)
    if rule is None:  # switched off since the violation opened: its defaults still explain it
        cls = load_all().get(key)
        rule = cls(dict(cls.default_params), cls.default_severity) if cls else None
    if rule is None:
        info = RuleInfo(key, key.replace("_", " ").capitalize(), "", DEFAULT_FIX_MINUTES)
    else:
        info = RuleInfo(key, rule.title, rule.describe(), max(0, int(rule.fix_minutes)))
    if cache is not None:
        cache[key] = info
    return info


@dataclass(frozen=True)
class Rank:
    """Why an item sits where it does: severity points x value weight x age weight."""

    points: float
    value: float
    age: float
    age_days: int

    @property
    def score(self) -> float:
        return round(self.points * self.value * self.age, 4)


def rank_of(
    settings: dict[str, Any],
    *,
    severity: int,
    amount: Any,
    deal_level: bool,
    age_days: float,
    median: float | None,
) -> Rank:
    """`age_days`: how long the violation has been open at the moment of the queue, in days."""
    days = max(0, int(age_days))
    age = min(AGE_MAX_WEIGHT, 1 + days / AGE_STEP_DAYS)
    return Rank(
        points=severity_points(settings, severity),
        value=value_weight(settings, amount, median, deal_level),
        age=round(age, 2),
        age_days=days,
    )


def lesson_keys(policy: Policy, infos: dict[str, RuleInfo] | None = None) -> set[str]:
    """The rules whose violations cannot be fixed afterwards (``fix_minutes = 0``): lessons."""
    return {key for key in load_all() if not rule_info(policy, key, infos).is_task}


def median_open_amount() -> float | None:
    """The median amount of the organisation's open deals (the value weight's base), in SQL."""
    amounts = (
        Opportunity.objects.filter(deleted_at__isnull=True, stage__kind=StageKind.OPEN, amount__isnull=False)
        .order_by("amount")
        .values_list("amount", flat=True)
    )
    count = amounts.count()
    if not count:
        return None
    middle = [float(value) for value in amounts[(count - 1) // 2 : count // 2 + 1] if value is not None]
    return sum(middle) / len(middle)


def _median_for(day: dt.date) -> float | None:
    """The day's median open deal amount: the one the day's first queue computed, else computed now
    (a sort of every open amount; once a day for the organisation, not once per rep)."""
    known = (
        QueueDay.objects.filter(day=day, median_amount__isnull=False)
        .values_list("median_amount", flat=True)
        .first()
    )
    return float(known) if known is not None else median_open_amount()


def cut_to_box(ranked: list[tuple[int, int]], box: int) -> list[int]:
    """(id, minutes) best first -> the ids that fit in `box` minutes (at least the best one)."""
    planned, used = [], 0
    for pk, minutes in ranked:
        if used >= box:
            break
        if used + minutes <= box:
            planned.append(pk)
            used += minutes
    if not planned and ranked:
        planned.append(ranked[0][0])
    return planned


# ---------------------------------------------------------------- the queue


@dataclass
class QueueItem:
    violation: Violation
    rule: RuleInfo
    rank: Rank
    position: int = 0
    reviewed: bool = False

    @property
    def pk(self) -> int:
        return self.violation.pk

    @property
    def deal(self) -> Opportunity | None:
        return self.violation.opportunity

    @property
    def fix_minutes(self) -> int:
        return self.rule.fix_minutes

    @property
    def done(self) -> bool:
        return self.reviewed or self.violation.status != ViolationStatus.OPEN

    @property
    def reviewable(self) -> bool:
        return self.rule.key in REVIEWABLE

    @property
    def actions(self) -> tuple[str, ...]:
        if self.deal is None or self.deal.stage.kind != StageKind.OPEN:
            return ()
        return ACTIONS.get(self.rule.key, DEFAULT_ACTIONS)

    @property
    def detail(self) -> str:
        """The violation's summary without the deal's name in front (the card shows the deal)."""
        summary = self.violation.summary
        if self.deal is not None and summary.startswith(f"{self.deal.name}: "):
            summary = summary[len(self.deal.name) + 2 :]
        return summary[:1].upper() + summary[1:]

    @property
    def done_label(self) -> str:
        v = self.violation
        if self.reviewed:
            return "Reviewed: your note is on the deal"
        if v.status == ViolationStatus.RESOLVED:
            kind = self.deal.stage.kind if self.deal is not None else None
            if v.resolution.startswith("snoozed"):
                return "Snoozed: off the stale clocks for now"
            if kind == StageKind.LOST:
                return "Deal marked lost"
            if kind == StageKind.WON:
                return "Deal won"
            return "Fixed"
        if v.status == ViolationStatus.WAIVED:
            by = v.waived_by.get_full_name() or v.waived_by.username if v.waived_by else "a manager"
            return f"Waived by {by}"
        if v.status == ViolationStatus.EXPIRED:
            return "No longer counts"
        return ""


@dataclass
class LessonGroup:
    """The open lessons of one rule (for your information): how many, and the latest few."""

    rule: RuleInfo
    count: int
    items: list[QueueItem]

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.items))


@dataclass
class Queue:
    rep: Any
    day: dt.date
    as_of: dt.datetime
    box_minutes: int
    personal_box: bool
    items: list[QueueItem]
    fyi: list[LessonGroup]  # by rule, the rule with the latest lesson first
    fyi_total: int
    later: int  # open tasks beyond today's plan
    streak: int
    working_day: bool
    completed_at: dt.datetime | None = None
    built_at: dt.datetime | None = None
    recorded: bool = False

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def done_count(self) -> int:
        return sum(1 for item in self.items if item.done)

    @property
    def planned_minutes(self) -> int:
        return sum(item.fix_minutes for item in self.items)

    @property
    def minutes_left(self) -> int:
        return sum(item.fix_minutes for item in self.items if not item.done)

    @property
    def percent(self) -> int:
        return 100 if not self.items else round(100 * self.done_count / self.total)

    @property
    def cleared(self) -> bool:
        return self.done_count == self.total

    def item(self, pk: int) -> QueueItem | None:
        return next((item for item in self.items if item.pk == pk), None)

    def items_on_deal(self, opportunity_id: int | None) -> list[QueueItem]:
        return [
            item for item in self.items if opportunity_id and item.violation.opportunity_id == opportunity_id
        ]


def _profile(rep: Any) -> SalesProfile | None:
    profile = getattr(rep, "_profile_cache", None)
    if profile is None:
        try:
            profile = rep.profile
        except SalesProfile.DoesNotExist:
            return None
    return profile


def working_days_of(rep: Any) -> set[int]:
    profile = _profile(rep)
    days = profile.working_days if profile is not None else default_working_days()
    return {int(day) for day in days or []}


def local_day(rep: Any, as_of: dt.datetime) -> dt.date:
    """The rep's calendar day at a moment, in their own time zone."""
    profile = _profile(rep)
    return as_of.astimezone(zone_of(profile.time_zone if profile else "UTC")).date()


def previous_working_day(day: dt.date, working: set[int]) -> dt.date:
    for back in range(1, 8):
        earlier = day - dt.timedelta(days=back)
        if earlier.weekday() in working:
            return earlier
    return day - dt.timedelta(days=1)


def time_box(rep: Any, policy: Policy | None = None) -> tuple[int, bool]:
    """(minutes, personal): the rep's own setting, else the policy's ``queue.minutes``."""
    own = QueueSetting.objects.filter(rep=rep).values_list("minutes", flat=True).first()
    if own:
        return int(own), True
    section = {**DEFAULT_QUEUE, **(policy or current_policy()).section("queue")}
    return int(section["minutes"]), False


class OpenRow(NamedTuple):
    id: int
    rule: str
    severity: int
    age: float  # days open at the moment of the queue
    amount: float | None  # the violation's amount, else the deal's
    opportunity_id: int | None


def _open_rows(rep: Any, as_of: dt.datetime, rules: Iterable[str] | None = None) -> list[OpenRow]:
    """The rep's open violations as plain tuples: one query, no evidence, no ORM conversions
    (a rep with 500 deals can have a couple of thousand); the age is computed by the database."""
    if connection.vendor == "sqlite":
        age = "(julianday(%s) - julianday(v.opened_at))"
        moment: Any = connection.ops.adapt_datetimefield_value(as_of)
    else:
        age = "(EXTRACT(EPOCH FROM (%s - v.opened_at)) / 86400.0)"
        moment = as_of
    only, params = "", [moment, rep.pk, ViolationStatus.OPEN.value]
    if rules is not None:
        wanted = sorted(rules)
        if not wanted:
            return []
        only = f" AND v.rule IN ({', '.join(['%s'] * len(wanted))})"
        params += wanted
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.id, v.rule, v.severity, {age}, COALESCE(v.amount, o.amount), v.opportunity_id "
            "FROM hygiene_violation v LEFT JOIN pipeline_opportunity o ON o.id = v.opportunity_id "
            f"WHERE v.rep_id = %s AND v.live AND v.status = %s{only}",
            params,
        )
        return [
            OpenRow(pk, rule, severity, float(days), None if amount is None else float(amount), deal)
            for pk, rule, severity, days, amount, deal in cursor.fetchall()
        ]


def _ranked_tasks(
    rows: Iterable[OpenRow],
    policy: Policy,
    infos: dict[str, RuleInfo],
    median: float | None,
    exclude: set[int],
) -> list[tuple[int, int]]:
    """(violation id, fix minutes) of the open tasks, best first."""
    settings = scoring_settings(policy)
    scored = []
    for row in rows:
        info = rule_info(policy, row.rule, infos)
        if not info.is_task or row.id in exclude:
            continue
        rank = rank_of(
            settings,
            severity=row.severity,
            amount=row.amount,
            deal_level=row.opportunity_id is not None,
            age_days=row.age,
            median=median,
        )
        scored.append((-rank.score, -row.severity, -row.age, row.id, info.fix_minutes))
    scored.sort()
    return [(pk, minutes) for *_, pk, minutes in scored]


def _reviewed_before(days: list[QueueDay], today: QueueDay | None) -> set[int]:
    return {int(pk) for row in days if row is not today for pk in row.reviewed}


def build_queue(rep: Any, as_of: dt.datetime | None = None, *, record: bool = True) -> Queue:
    """Today's queue for a rep (today in the rep's time zone, or the day of `as_of`).

    `record=True` (the rep looking at their own queue) fixes the day's plan on the first
    call and notes when it is cleared; `record=False` (anyone else looking) writes nothing.
    """
    as_of = as_of or timezone.now()
    day = local_day(rep, as_of)
    working = working_days_of(rep)
    policy = current_policy()
    settings = scoring_settings(policy)
    box, personal = time_box(rep, policy)
    days = list(
        QueueDay.objects.filter(
            rep=rep, day__gt=day - dt.timedelta(days=LOOKBACK_DAYS), day__lte=day
        ).order_by("-day")
    )
    today = days[0] if days and days[0].day == day else None
    by_day = {row.day: row for row in days}
    infos: dict[str, RuleInfo] = {}
    lesson_rules = lesson_keys(policy, infos)
    reviewed_before = _reviewed_before(days, today)
    if today is None:
        # Plan: every open violation is read (as plain tuples) and ranked.
        rows = _open_rows(rep, as_of)
        median = _median_for(day)
        ranked = _ranked_tasks(rows, policy, infos, median, reviewed_before)
        planned = cut_to_box(ranked, box)
        if record:
            minutes = dict(ranked)
            total = sum(minutes[pk] for pk in planned)
            today = _save_plan(rep, day, box, planned, total, median, as_of)
            by_day[day] = today
            planned = [int(pk) for pk in today.planned]
            median = float(today.median_amount) if today.median_amount is not None else None
        lessons = [row for row in rows if row.rule in lesson_rules]
        waiting = {row.id for row in rows if row.rule not in lesson_rules}
    else:
        # The plan is made: only the lessons are read, and the other open tasks counted.
        planned = [int(pk) for pk in today.planned]
        median = float(today.median_amount) if today.median_amount is not None else None
        lessons = _open_rows(rep, as_of, rules=lesson_rules)
        waiting = None
    reviewed_today = {int(pk) for pk in (today.reviewed if today else [])}
    seen = set(planned) | reviewed_before | reviewed_today
    if waiting is not None:
        later = len(waiting - seen)
    else:
        later = (
            Violation.objects.filter(rep=rep, live=True, status=ViolationStatus.OPEN)
            .exclude(rule__in=lesson_rules)
            .exclude(pk__in=seen)
            .count()
        )
    lessons.sort(key=lambda row: (row.age, -row.id))
    by_rule: dict[str, list[int]] = {}
    for row in lessons:  # newest first, so each rule's group starts with its latest
        by_rule.setdefault(row.rule, []).append(row.id)
    shown_lessons = [pk for ids in by_rule.values() for pk in ids[:FYI_SHOWN]]
    objects = {
        v.pk: v
        for v in Violation.objects.filter(pk__in=[*planned, *shown_lessons]).select_related(
            "opportunity__account", "opportunity__stage", "waived_by"
        )
    }

    def item(pk: int, position: int = 0) -> QueueItem | None:
        violation = objects.get(pk)
        if violation is None:
            return None
        deal = violation.opportunity
        amount = violation.amount if violation.amount is not None else getattr(deal, "amount", None)
        rank = rank_of(
            settings,
            severity=violation.severity,
            amount=amount,
            deal_level=violation.opportunity_id is not None,
            age_days=(as_of - violation.opened_at).total_seconds() / 86400,
            median=median,
        )
        info = rule_info(policy, violation.rule, infos)
        return QueueItem(violation, info, rank, position, reviewed=pk in reviewed_today)

    items = [found for n, pk in enumerate(planned, 1) if (found := item(pk, n)) is not None]
    fyi = [
        LessonGroup(
            rule=rule_info(policy, key, infos),
            count=len(ids),
            items=[found for pk in ids[:FYI_SHOWN] if (found := item(pk)) is not None],
        )
        for key, ids in by_rule.items()
    ]
    queue = Queue(
        rep=rep,
        day=day,
        as_of=as_of,
        box_minutes=box,
        personal_box=personal,
        items=items,
        fyi=fyi,
        fyi_total=len(lessons),
        later=later,
        streak=0,
        working_day=day.weekday() in working,
        completed_at=today.completed_at if today else None,
        built_at=today.built_at if today else None,
        recorded=record and today is not None,
    )
    if record and today is not None and today.completed_at is None and queue.cleared:
        today.completed_at = as_of
        today.streak = _streak_on_completion(day, by_day, working)
        QueueDay.objects.filter(pk=today.pk, completed_at__isnull=True).update(
            completed_at=today.completed_at, streak=today.streak
        )
        queue.completed_at = today.completed_at
    queue.streak = _current_streak(day, by_day, working, today)
    return queue


def _save_plan(
    rep: Any,
    day: dt.date,
    box: int,
    planned: list[int],
    minutes: int,
    median: float | None,
    as_of: dt.datetime,
) -> QueueDay:
    """Record the day's plan once; a concurrent first visit that won the race keeps its own."""
    try:
        with transaction.atomic():
            return QueueDay.objects.create(
                rep=rep,
                day=day,
                built_at=as_of,
                box_minutes=box,
                planned=planned,
                planned_minutes=minutes,
                median_amount=None if median is None else Decimal(str(round(median, 2))),
            )
    except IntegrityError:
        return QueueDay.objects.get(rep=rep, day=day)


def _streak_on_completion(day: dt.date, by_day: dict[dt.date, QueueDay], working: set[int]) -> int:
    before = by_day.get(previous_working_day(day, working))
    carried = before.streak if before is not None and before.completed_at is not None else 0
    return carried + 1 if day.weekday() in working else carried


def _current_streak(
    day: dt.date, by_day: dict[dt.date, QueueDay], working: set[int], today: QueueDay | None
) -> int:
    """Cleared today: today's streak. Not yet: the streak still alive from the last working day."""
    if today is not None and today.completed_at is not None:
        return today.streak
    before = by_day.get(previous_working_day(day, working))
    return before.streak if before is not None and before.completed_at is not None else 0


# ---------------------------------------------------------------- writes


def _manages(actor: Any, rep: Any) -> bool:
    if role_of(actor) != Role.MANAGER or actor.pk == rep.pk:
        return False
    path = actor.profile.path or f"/{actor.pk}/"
    rep_profile = _profile(rep)
    return rep_profile is not None and bool(rep_profile.path) and rep_profile.path.startswith(path)


def set_queue_minutes(actor: Any, rep: Any, minutes: int | None, *, as_of: dt.datetime | None = None) -> int:
    """Set a rep's own time box (None: back to the policy's). The rep, their managers or an admin.

    Today's plan, if already made, is re-planned for the new box: what is done stays done,
    the open part is cut again. Returns the box now in force.
    """
    role = role_of(actor)
    if actor is not None and not (
        (actor.pk == rep.pk and role in {Role.REP, Role.MANAGER, Role.ADMIN})
        or role == Role.ADMIN
        or _manages(actor, rep)
    ):
        raise NotAllowed("Only the rep, their manager or an admin can change the rep's time box.")
    if minutes is not None:
        try:
            minutes = int(minutes)
        except (TypeError, ValueError):
            minutes = -1
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise InvalidInput(
                f"The time box is {MIN_MINUTES} to {MAX_MINUTES} minutes.",
                fields={"minutes": f"From {MIN_MINUTES} to {MAX_MINUTES} minutes."},
            )
    with transaction.atomic():
        if minutes is None:
            QueueSetting.objects.filter(rep=rep).delete()
        else:
            QueueSetting.objects.update_or_create(
                rep=rep,
                defaults={
                    "minutes": minutes,
                    "updated_by": actor if getattr(actor, "pk", None) else None,
                    "updated_at": timezone.now(),
                },
            )
        box = _replan(rep, as_of or timezone.now())
    return box


def _replan(rep: Any, as_of: dt.datetime) -> int:
    """Cut today's open part again for the current box (done items stay in the plan)."""
    policy = current_policy()
    box, _ = time_box(rep, policy)
    day = local_day(rep, as_of)
    today = QueueDay.objects.select_for_update().filter(rep=rep, day=day).first()
    if today is None:
        return box
    infos: dict[str, RuleInfo] = {}
    reviewed = {int(pk) for pk in today.reviewed}
    statuses = dict(Violation.objects.filter(pk__in=today.planned).values_list("id", "status"))
    rules = dict(Violation.objects.filter(pk__in=today.planned).values_list("id", "rule"))
    done = [
        int(pk)
        for pk in today.planned
        if int(pk) in reviewed or statuses.get(int(pk), ViolationStatus.OPEN) != ViolationStatus.OPEN
    ]
    used = sum(rule_info(policy, rules[pk], infos).fix_minutes for pk in done if pk in rules)
    earlier = QueueDay.objects.filter(
        rep=rep, day__gt=day - dt.timedelta(days=LOOKBACK_DAYS), day__lt=day
    ).values_list("reviewed", flat=True)
    exclude = {int(pk) for ids in earlier for pk in ids} | set(done) | reviewed
    median = float(today.median_amount) if today.median_amount is not None else None
    ranked = _ranked_tasks(_open_rows(rep, as_of), policy, infos, median, exclude)
    more = cut_to_box(ranked, box - used) if box > used else []
    today.planned = done + more
    today.box_minutes = box
    minutes = {pk: m for pk, m in ranked}
    today.planned_minutes = used + sum(minutes[pk] for pk in more)
    today.save(update_fields=["planned", "box_minutes", "planned_minutes"])
    return box


def review_item(actor: Any, violation: Violation, note: str, *, as_of: dt.datetime | None = None) -> Activity:
    """Explain a deal flagged by a rule an edit cannot clear (a pushed close date, an amount swing,
    a skipped or backward stage): the note goes on the deal's timeline, and the item is done."""
    from truepipe.activities.services import log_activity

    if actor is None or violation.rep_id != actor.pk:
        raise NotAllowed("Only the rep whose queue it is can review its items.")
    if violation.rule not in REVIEWABLE:
        raise InvalidInput("This item is fixed by changing the deal, not by a note.")
    if violation.status != ViolationStatus.OPEN or violation.opportunity_id is None:
        raise InvalidInput("This item no longer needs a review.")
    note = (note or "").strip()
    if not note:
        raise InvalidInput(
            "Say in a sentence why the deal is still right as it stands.",
            fields={"note": "A short explanation is required."},
        )
    as_of = as_of or timezone.now()
    build_queue(actor, as_of)  # makes sure today's plan exists
    info = rule_info(current_policy(), violation.rule)
    with transaction.atomic():
        activity = log_activity(
            actor,
            via=Via.FORM,
            kind=ActivityKind.NOTE,
            subject=f"Reviewed: {info.title}"[:255],
            body=note,
            opportunity=violation.opportunity,
        )
        today = QueueDay.objects.select_for_update().get(rep=actor, day=local_day(actor, as_of))
        if violation.pk not in today.reviewed:
            today.reviewed = [*today.reviewed, violation.pk]
            today.save(update_fields=["reviewed"])
    return activity
