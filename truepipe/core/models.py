"""Cross-cutting models: field history base and external ids from other systems."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Via(models.TextChoices):
    """The entry point a write came through; recorded on every history row."""

    FORM = "form", "Form"
    BOARD = "board", "Board"
    API = "api", "API"
    IMPORT = "import", "Import"
    BULK = "bulk", "Bulk edit"
    EMAIL = "email", "E-mail capture"
    CALENDAR = "calendar", "Calendar capture"
    SYSTEM = "system", "System"
    ADMIN = "admin", "Django admin"
    DEMO = "demo", "Demo generator"


def changed_by_field(*, db_index: bool = True) -> models.ForeignKey:
    """Who made a change (empty for the system, or once the person is deleted). A history that
    indexes its author together with the time passes `db_index=False`."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=db_index,
    )


class FieldChange(models.Model):
    """One field of one record changing value: who, when, through which path.

    Creation is not recorded field by field: a record's value as of a past
    moment is its current value unless a change after that moment exists, in
    which case it is the old value of the earliest such change. That keeps an
    import of a million rows from writing ten million history rows.
    """

    field = models.CharField(max_length=64)
    old_value = models.TextField(null=True, blank=True)
    new_value = models.TextField(null=True, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = changed_by_field()
    via = models.CharField(max_length=16, choices=Via.choices)

    class Meta:
        abstract = True
        ordering = ["changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value!r} -> {self.new_value!r}"


class ExternalId(models.Model):
    """The id a record had in another system (Salesforce, HubSpot, Pipedrive, a CSV).

    Re-importing the same file finds existing rows through this table, so it
    updates instead of duplicating.
    """

    kind = models.CharField(max_length=24)  # opportunity, account, contact, activity, user
    system = models.CharField(max_length=32)
    value = models.CharField(max_length=191)
    object_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "system", "value"], name="external_id_unique"),
        ]
        indexes = [models.Index(fields=["kind", "object_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.system}:{self.value} -> {self.object_id}"
