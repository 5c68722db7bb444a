"""Offenses, their consequences, disputes and policy acknowledgements.

An **offense** is the policy saying a rep's violations have gone far enough to
count: at most one per rep per week, with the violations (and the weekly score)
behind it as evidence, and its level on the ladder (how many offenses the rep
already has within the rolling window, plus one). Each offense gets one
**consequence**: the ladder's step for that level, with an owner (the rep's
manager), a deadline and a state. Nothing here is ever deleted; every change of
state is also in the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.hygiene.models import Violation


class OffenseStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    OVERTURNED = "overturned", "Overturned"  # an upheld dispute: it no longer counts


class Offense(models.Model):
    rep = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offenses")
    # One offense per rep and week: "offense:<rep id>:<ISO year>-W<week>".
    key = models.CharField(max_length=64, unique=True)
    day = models.DateField()  # the evaluated day that found it
    week = models.CharField(max_length=10)  # "2026-W48"
    detected_at = models.DateTimeField(default=timezone.now)
    level = models.PositiveSmallIntegerField()
    policy_version = models.PositiveIntegerField(default=0)
    # Why: how many violations were unresolved past the grace period, and the weekly score if it was low.
    unresolved = models.PositiveIntegerField(default=0)
    weekly_score = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    summary = models.CharField(max_length=255)
    violations = models.ManyToManyField(Violation, through="OffenseViolation", related_name="offenses")
    status = models.CharField(max_length=16, choices=OffenseStatus.choices, default=OffenseStatus.ACTIVE)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    overturned_at = models.DateTimeField(null=True, blank=True)

    # Visibility (core.visibility): the person the record is about.
    VISIBLE_BY = "rep"

    class Meta:
        ordering = ["-day", "rep"]
        indexes = [models.Index(fields=["rep", "day"]), models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"offense {self.week} of {self.rep_id} (level {self.level})"


class OffenseViolation(models.Model):
    offense = models.ForeignKey(Offense, on_delete=models.PROTECT)
    violation = models.ForeignKey(Violation, on_delete=models.PROTECT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["offense", "violation"], name="offense_violation_once")
        ]


class ConsequenceState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    WAIVED = "waived", "Waived"
    DISPUTED = "disputed", "Disputed"
    OVERTURNED = "overturned", "Overturned"


class Consequence(models.Model):
    offense = models.ForeignKey(Offense, on_delete=models.PROTECT, related_name="consequences")
    level = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=160)  # "Written warning and coaching conversation"
    action = models.CharField(max_length=32)  # "warning", "expense_hold", "performance_review", ...
    # Who outside sales must act (finance, hr): they get the export and the webhook event.
    notify = models.JSONField(default=list, blank=True)
    hold_days = models.PositiveSmallIntegerField(default=0)  # an expense hold's length
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="consequences_owned",
    )
    deadline = models.DateField()
    state = models.CharField(
        max_length=16, choices=ConsequenceState.choices, default=ConsequenceState.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)  # what was done (applied) or why not (waived, overturned)
    applied_on = models.DateField(null=True, blank=True)
    # Follow-through: past its deadline, neither applied nor waived, it escalates to the owner's manager.
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="consequences_escalated",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    # A consequence replaced when an earlier offense was overturned and this one moved down the ladder.
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces"
    )

    VISIBLE_BY = "offense__rep"

    class Meta:
        ordering = ["deadline", "pk"]
        indexes = [
            models.Index(fields=["owner", "state"]),
            models.Index(fields=["state", "deadline"]),
            models.Index(fields=["escalated_to", "state"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_state_display().lower()})"

    @property
    def open(self) -> bool:
        return self.state in (ConsequenceState.PENDING, ConsequenceState.DISPUTED)


class DisputeState(models.TextChoices):
    OPEN = "open", "Open"
    UPHELD = "upheld", "Upheld"  # the rep was right: the offense is overturned
    REJECTED = "rejected", "Rejected"


class Dispute(models.Model):
    offense = models.ForeignKey(Offense, on_delete=models.PROTECT, related_name="disputes")
    consequence = models.ForeignKey(Consequence, on_delete=models.PROTECT, related_name="disputes")
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    raised_at = models.DateTimeField(default=timezone.now)
    # The consequence's state before the dispute (a rejected dispute puts it back).
    previous_state = models.CharField(max_length=16, choices=ConsequenceState.choices)
    resolver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=DisputeState.choices, default=DisputeState.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    VISIBLE_BY = "offense__rep"

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return f"dispute of {self.offense} ({self.state})"


class PolicyAcknowledgement(models.Model):
    """A person read and acknowledged one version of the policy."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="policy_acknowledgements"
    )
    version = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "version"], name="acknowledge_version_once")]

    def __str__(self) -> str:
        return f"{self.user_id} acknowledged v{self.version}"
