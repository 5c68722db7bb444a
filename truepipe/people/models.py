"""People: Django users with a sales profile, teams, quotas and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    REP = "rep", "Sales rep"
    MANAGER = "manager", "Sales manager"
    ADMIN = "admin", "Admin / sales ops"
    EXEC = "exec", "Executive"
    DELIVERY = "delivery", "Delivery / projects"


class Team(models.Model):
    """A named group of people, usually one manager's direct reports."""

    name = models.CharField(max_length=120, unique=True)
    region = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def default_working_days() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday..Friday, as datetime.weekday() numbers


class SalesProfile(models.Model):
    """The sales side of a user: role, reporting line, team, time zone, working days.

    `path` is the materialised reporting line ("/1/7/42/": the VP, the manager,
    this person) so that "everyone under this manager, at any depth" is one
    indexed prefix match instead of a recursive walk. It is maintained only by
    people.services.set_manager.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REP)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="direct_reports",
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    path = models.CharField(max_length=400, db_index=True, editable=False, default="")
    time_zone = models.CharField(max_length=64, default="UTC")
    working_days = models.JSONField(default=default_working_days)
    title = models.CharField(max_length=120, blank=True)

    class Meta:
        indexes = [models.Index(fields=["manager"])]

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class Quota(models.Model):
    """A sales target for one person over one period (month, quarter or year)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quotas")
    period_start = models.DateField()
    period_end = models.DateField()
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["user", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "period_start", "period_end"], name="quota_unique_period"
            ),
            models.CheckConstraint(
                condition=models.Q(period_end__gte=models.F("period_start")), name="quota_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.period_start}..{self.period_end}: {self.amount}"


TOKEN_PREFIX = "tp_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the raw token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=120, default="default")
    # The first characters, kept in clear so a user can tell tokens apart in a list.
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
