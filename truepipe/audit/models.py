"""The audit log: an append-only, hash-chained record of every accountability decision.

Each entry carries the SHA-256 of its own content and of the entry before it
(`prev_hash`), and a gapless sequence number. Changing, inserting or removing
any entry breaks the chain from there on, which `truepipe audit verify` finds.
The database refuses UPDATE and DELETE on the table (triggers, see the
migration), so rewriting it takes someone who first removes the triggers: that
is what the chain is there to catch. The head (the latest sequence and hash)
is kept in `AuditHead` too, so removing the newest entries shows as well; an
administrator who keeps the head printed by `verify` elsewhere can check
against it with `--expect-head`, which no one with database access can forge.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """An audit entry was about to be changed or deleted."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        raise AppendOnly("The audit log is append-only: entries are never changed.")

    def delete(self):  # type: ignore[no-untyped-def]
        raise AppendOnly("The audit log is append-only: entries are never deleted.")


class AuditEntry(models.Model):
    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What happened, dotted: "policy.published", "consequence.applied", ...
    action = models.CharField(max_length=64)
    # What it happened to, as "kind:id" ("consequence:12"), for finding a record's trail.
    subject = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.subject}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._state.adding:
            raise AppendOnly("The audit log is append-only: entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AppendOnly("The audit log is append-only: entries are never deleted.")


class AuditHead(models.Model):
    """One row: the latest entry's sequence number and hash, moved by every append."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"audit head #{self.seq}"
