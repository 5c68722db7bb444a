"""Activities: calls, e-mails, meetings, notes and tasks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.accounts.models import Account, Contact
from truepipe.pipeline.models import Opportunity


class ActivityKind(models.TextChoices):
    CALL = "call", "Call"
    EMAIL = "email", "E-mail"
    MEETING = "meeting", "Meeting"
    NOTE = "note", "Note"
    TASK = "task", "Task"


# Kinds that count as touching the customer (the engine's customer-touch clock).
CUSTOMER_TOUCH_KINDS = (ActivityKind.CALL, ActivityKind.EMAIL, ActivityKind.MEETING)


class ActivitySource(models.TextChoices):
    MANUAL = "manual", "Logged by hand"
    EMAIL = "email", "E-mail capture"
    CALENDAR = "calendar", "Calendar capture"
    IMPORT = "import", "Import"
    API = "api", "API"


# Written by capture, not by a person: never late, and not a rep's update of the deal.
CAPTURED_SOURCES = (ActivitySource.EMAIL.value, ActivitySource.CALENDAR.value)


class Activity(models.Model):
    """Something that happened with a customer, and when it reached the CRM.

    `occurred_at` is when it happened, `logged_at` when it was recorded; the gap
    is the logging lag that the discipline engine measures.
    """

    kind = models.CharField(max_length=16, choices=ActivityKind.choices)
    occurred_at = models.DateTimeField()
    logged_at = models.DateTimeField(default=timezone.now)
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=ActivitySource.choices, default=ActivitySource.MANUAL)
    # No single-column indexes on these three: the composite indexes below start with each, and
    # every index is one more write per logged activity (capture logs thousands a minute).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="activities", db_index=False
    )
    opportunity = models.ForeignKey(
        Opportunity,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activities",
        db_index=False,
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="activities", db_index=False
    )
    participants = models.ManyToManyField(Contact, blank=True, related_name="activities")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # Deal timeline; and, covering every column the engine's clocks read (`source` too:
            # captured mail is a touch, not the rep's update), the reads that give each deal its
            # last customer touch, activity count and last update, from the index alone (without
            # `source`, every activity row was fetched: five times slower).
            models.Index(
                fields=["opportunity", "occurred_at", "kind", "logged_at", "deleted_at", "source"],
                name="activity_deal_clock_idx",
            ),
            models.Index(fields=["account", "occurred_at"]),
            models.Index(fields=["owner", "occurred_at"]),
            # The discipline engine: logging lag reads a week of logged_at, and tells the late ones
            # (and not captured, not deleted) from the index alone: a night fetches the rows of
            # the late ones only, not of the week's hundreds of thousands; the daily update check
            # asks whether a rep logged anything within a day.
            models.Index(
                fields=["logged_at", "occurred_at", "source", "deleted_at"], name="activity_logged_at_idx"
            ),
            # The daily update check's (the rep's own updates: captured mail and meetings are not,
            # and capture writes thousands an hour without touching this index).
            models.Index(
                fields=["owner", "logged_at"],
                condition=~models.Q(source__in=CAPTURED_SOURCES),
                name="activity_owner_logged_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def logging_lag(self):
        return self.logged_at - self.occurred_at
