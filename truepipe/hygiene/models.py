"""The discipline engine's records: policy versions, violations, snoozes, scores, snapshots.

Nothing here is ever deleted: a violation is resolved, waived or expires; a
snooze is cancelled; a policy is superseded by a newer version.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.activities.models import Activity
from truepipe.pipeline.models import Opportunity, Stage


class Severity(models.IntegerChoices):
    LOW = 1, "Low"
    MEDIUM = 2, "Medium"
    HIGH = 3, "High"


class PolicyVersion(models.Model):
    """One published version of the hygiene policy: every rule's switch, severity and parameters.

    The document is the whole policy (see `hygiene.policy` for its shape and
    defaults); editing the policy writes a new version, never changes an old one,
    so every violation can say which version found it.
    """

    number = models.PositiveIntegerField(unique=True)
    document = models.JSONField()
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"policy v{self.number}"


class ViolationStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"  # the data was fixed
    WAIVED = "waived", "Waived"  # someone allowed to said it does not count, with a reason
    EXPIRED = "expired", "Expired"  # an event (a missed day, a late log) that aged out of the window


class Violation(models.Model):
    """One rule failing on one record (a deal, an activity) or one rep-day, with its evidence.

    `key` identifies what failed (e.g. ``stale_touch:o42``); at most one *live*
    violation exists per key, live meaning the condition still held at the last
    evaluation. A waived violation stays live until its condition clears, so the
    next evaluation does not open it again.
    """

    rule = models.CharField(max_length=40)
    key = models.CharField(max_length=191)
    # No single-column indexes on these two: the composite indexes below start with them.
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="violations", db_index=False
    )
    opportunity = models.ForeignKey(
        Opportunity,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="violations",
        db_index=False,
    )
    # Indexed below where set, and only there: most violations are about deals, and an index full
    # of NULLs reads as useless to SQLite's planner (it scanned every violation for an activity's
    # write). The same for who resolved or waived: empty on most rows.
    activity = models.ForeignKey(
        Activity, null=True, blank=True, on_delete=models.PROTECT, related_name="violations", db_index=False
    )
    day = models.DateField(null=True, blank=True)  # for rep-day rules: the day that was missed
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    summary = models.CharField(max_length=255)
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ViolationStatus.choices, default=ViolationStatus.OPEN)
    live = models.BooleanField(default=True)
    opened_at = models.DateTimeField()  # the as-of moment the evaluation found it
    found_at = models.DateTimeField(default=timezone.now)  # the wall-clock moment it was recorded
    closed_at = models.DateTimeField(null=True, blank=True)  # resolved, expired or waived at
    cleared_at = models.DateTimeField(null=True, blank=True)  # the condition stopped holding at
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    resolved_via = models.CharField(max_length=16, blank=True)
    resolution = models.CharField(max_length=255, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    waived_reason = models.TextField(blank=True)
    policy_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(live=True), name="violation_one_live_per_key"
            ),
        ]
        # Every index that names a column a closing violation changes is rewritten when it closes,
        # and capture closes thousands a minute: those that only live violations need are partial
        # (a closing one leaves them, and they shrink as history grows); a rep's violations are
        # found by when they opened, which never changes (their status is read from the rows).
        indexes = [
            # A deal's violations, whatever their state (its page's history). Not by `live`: a
            # closing violation then leaves this index alone.
            models.Index(fields=["opportunity"], name="violation_deal_idx"),
            # A deal's live violations, read on every write to it (a capture batch's 2,000 deals):
            # the index alone answers (the id is SQLite's rowid; `live` is there for SQLite 3.40, which
            # does not know the condition from the WHERE implies it), no row is read.
            models.Index(
                fields=["opportunity", "rule", "key", "live"],
                condition=models.Q(live=True),
                name="violation_live_deal_idx",
            ),
            models.Index(fields=["rule"], condition=models.Q(live=True), name="violation_live_rule_idx"),
            models.Index(fields=["rep", "opened_at"]),
            models.Index(
                fields=["activity"], condition=models.Q(activity__isnull=False), name="violation_activity_idx"
            ),
            models.Index(
                fields=["resolved_by"],
                condition=models.Q(resolved_by__isnull=False),
                name="violation_resolved_by_idx",
            ),
            models.Index(
                fields=["waived_by"],
                condition=models.Q(waived_by__isnull=False),
                name="violation_waived_by_idx",
            ),
            # The open violations by rep, rule and severity, with what the night's scores read of
            # each (deal, amount, opened): the scorecard and the scores read the index alone.
            models.Index(
                fields=["rep", "rule", "severity", "opportunity", "amount", "opened_at"],
                condition=models.Q(status="open"),
                name="violation_open_score_idx",
            ),
            # Violations closed after a moment still counted at that moment (scores and offenses
            # as of a moment): a closing one appends an entry at the end.
            models.Index(
                fields=["closed_at"],
                condition=models.Q(closed_at__isnull=False),
                name="violation_closed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} [{self.status}] {self.summary}"

    @property
    def counts(self) -> bool:
        return self.status == ViolationStatus.OPEN


class Snooze(models.Model):
    """A deal taken off the stale-deal clocks until a date, with a reason everyone can see."""

    opportunity = models.ForeignKey(Opportunity, on_delete=models.PROTECT, related_name="snoozes")
    until = models.DateField()
    reason = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["opportunity", "until"])]

    def __str__(self) -> str:
        return f"{self.opportunity_id} snoozed until {self.until}: {self.reason}"


class RepScore(models.Model):
    """A rep's discipline score for one day, with the sums that explain it.

    Written by the evaluation of that day (idempotent: one row per rep and day).
    """

    rep = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scores")
    day = models.DateField()
    score = models.DecimalField(max_digits=5, decimal_places=1)
    points_lost = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    capacity = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    open_deals = models.PositiveIntegerField(default=0)
    open_violations = models.PositiveIntegerField(default=0)
    # The open violations by severity and the rep's worst rule at the evaluation (the team
    # scorecard reads these instead of counting millions of violations); null: not recorded.
    high = models.PositiveIntegerField(null=True, blank=True)
    medium = models.PositiveIntegerField(null=True, blank=True)
    low = models.PositiveIntegerField(null=True, blank=True)
    worst_rule = models.CharField(max_length=64, blank=True, default="")
    policy_version = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rep", "day"]
        constraints = [models.UniqueConstraint(fields=["rep", "day"], name="rep_score_one_per_day")]
        indexes = [models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"{self.rep_id} {self.day}: {self.score}"


class OpportunitySnapshot(models.Model):
    """The key fields of one open opportunity at the end of one day (pipeline flow, trends, accuracy)."""

    day = models.DateField()
    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="snapshots")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    close_date = models.DateField(null=True, blank=True)
    probability = models.PositiveSmallIntegerField(default=0)
    forecast_category = models.CharField(max_length=16)
    next_step_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "opportunity"], name="snapshot_one_per_day"),
        ]
        indexes = [models.Index(fields=["opportunity", "day"]), models.Index(fields=["owner", "day"])]

    def __str__(self) -> str:
        return f"{self.opportunity_id} on {self.day}"


class EvaluationRun(models.Model):
    """One full evaluation of the organisation as of a moment: what it found and how long it took."""

    as_of = models.DateTimeField()
    day = models.DateField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    policy_version = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    live = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)
    trigger = models.CharField(max_length=16, default="cli")  # cli, worker, demo, api

    class Meta:
        ordering = ["-as_of", "-id"]
        indexes = [models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"evaluation as of {self.as_of:%Y-%m-%d %H:%M}"


class QueueSetting(models.Model):
    """A rep's own time box for the daily queue, overriding the policy's ``queue.minutes``."""

    rep = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_setting"
    )
    minutes = models.PositiveSmallIntegerField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.rep_id}: {self.minutes} min"


class QueueDay(models.Model):
    """One rep's daily queue as first built that day: what was planned, what was reviewed, when cleared.

    The plan is fixed when the rep first opens the queue (changing the time box re-plans it), so
    progress means "of this morning's items, how many are done". `streak` is the number of
    consecutive working days, ending with this one, on which the rep cleared their queue
    (set when it is cleared).
    """

    rep = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_days")
    day = models.DateField()  # in the rep's own time zone
    built_at = models.DateTimeField(default=timezone.now)
    box_minutes = models.PositiveSmallIntegerField()
    planned = models.JSONField(default=list)  # violation ids, best first
    planned_minutes = models.PositiveSmallIntegerField(default=0)
    # Violations the rep explained (rules an edit cannot clear, such as a pushed close date).
    reviewed = models.JSONField(default=list)
    # The median open deal amount the ranking used (the value weight's base), fixed for the day.
    median_amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    streak = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["rep", "-day"]
        constraints = [models.UniqueConstraint(fields=["rep", "day"], name="queue_day_one_per_rep")]
        indexes = [models.Index(fields=["day"])]  # the day's median, shared by everyone's queue

    def __str__(self) -> str:
        return f"{self.rep_id} queue {self.day}"


class RowidKey(models.BigIntegerField):
    """A 64-bit id as a cache table's primary key. On SQLite the column is declared `integer`,
    which makes it the table's rowid: one B-tree to look a row up in (a `bigint` key is a
    second B-tree, an index beside the table, read before each row)."""

    def db_type(self, connection):  # type: ignore[no-untyped-def]
        if connection.vendor == "sqlite":
            return "integer"
        return super().db_type(connection)


class DealClock(models.Model):
    """A deal's clocks as of the last full evaluation (`hygiene.clocks`): a cache.

    The nightly evaluation reads each deal's last customer touch, activity count and last
    logged activity, and its last change and last progress from its history, from here and
    recomputes only the deals whose activities or history changed since (`DirtyDeal`) or whose
    clocks move by themselves (`pending_at`: a meeting that had not happened yet, an activity
    logged or a change recorded after the moment); rebuilt whole when it cannot be trusted.
    """

    opportunity_id = RowidKey(primary_key=True)  # no foreign key: a cache
    last_touch_at = models.DateTimeField(null=True)
    activity_count = models.PositiveIntegerField(default=0)
    last_logged_at = models.DateTimeField(null=True)
    last_change_at = models.DateTimeField(null=True)  # any field (the rep's update)
    last_progress_at = models.DateTimeField(null=True)  # stage or amount
    # The earliest moment after `DealClockMark.as_of` at which one of the deal's activities
    # or changes starts (or stops) counting without anyone writing anything.
    pending_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["pending_at"],
                name="dealclock_pending_idx",
                condition=models.Q(pending_at__isnull=False),
            )
        ]


class DealClockMark(models.Model):
    """The one row saying as of when `DealClock` holds (none: the cache is to be built)."""

    as_of = models.DateTimeField()
    refreshed_at = models.DateTimeField(default=timezone.now)
    rebuilt = models.BooleanField(default=False)
    recomputed = models.PositiveIntegerField(default=0)  # deals whose clocks were read afresh
    folded = models.PositiveIntegerField(default=0)  # deals whose new activities were added in
    # The kept state (`engine.keep_state`): the fingerprint of the stages its rows were built with;
    # empty when there is none to trust (the next full evaluation builds it whole).
    state_stages = models.CharField(max_length=64, blank=True, default="")


class DirtyDeal(models.Model):
    """A deal whose activities or history were written since the clocks were last refreshed.

    Filled by database triggers on `activities_activity` and `pipeline_opportunitychange`
    (every update and delete, and every insert of history, whatever wrote it), emptied by the
    refresh that recomputes those deals."""

    opportunity_id = RowidKey(primary_key=True)


class NewActivity(models.Model):
    """An activity on a deal inserted since the clocks were last refreshed (by a trigger, whatever
    inserted it): the refresh adds it to its deal's kept clocks, without reading the deal's
    other activities again, unless the deal is recomputed anyway (`DirtyDeal`)."""

    activity_id = RowidKey(primary_key=True)
