"""The configurable pipeline, opportunities, products and opportunity history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.accounts.models import Account
from truepipe.core.models import FieldChange, changed_by_field


class StageKind(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Closed won"
    LOST = "lost", "Closed lost"


class ForecastCategory(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    BEST_CASE = "best_case", "Best case"
    COMMIT = "commit", "Commit"
    CLOSED = "closed", "Closed"
    OMITTED = "omitted", "Omitted"


# Fields a stage may require before an opportunity can enter it. The names are
# Opportunity attributes; the write path checks them (pipeline.services).
REQUIRABLE_FIELDS = (
    "account",
    "amount",
    "close_date",
    "next_step",
    "next_step_date",
    "competitor",
    "lost_reason",
    "source",
)


class Stage(models.Model):
    """One step of the pipeline, in order, with what a deal needs to enter it."""

    name = models.CharField(max_length=80, unique=True)
    order = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=8, choices=StageKind.choices, default=StageKind.OPEN)
    probability = models.PositiveSmallIntegerField(default=10)
    forecast_category = models.CharField(
        max_length=16, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    required_fields = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(probability__lte=100), name="stage_probability_max_100"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_closed(self) -> bool:
        return self.kind != StageKind.OPEN


class Product(models.Model):
    """Something sold, with its list price."""

    name = models.CharField(max_length=120, unique=True)
    code = models.CharField(max_length=60, blank=True)
    family = models.CharField(max_length=60, blank=True)
    list_price = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Opportunity(models.Model):
    """A deal: what, with whom, for how much, when, and how far along.

    `version` increases on every write; writers pass the version they read and
    a stale write is refused (pipeline.services.ConcurrencyConflict).
    `probability` is the stage's default unless `probability_overridden`.
    """

    name = models.CharField(max_length=200)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="opportunities"
    )
    # Indexed with the creation time below, not alone.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="opportunities", db_index=False
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="opportunities")
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    close_date = models.DateField(null=True, blank=True)
    probability = models.PositiveSmallIntegerField(default=0)
    probability_overridden = models.BooleanField(default=False)
    forecast_category = models.CharField(
        max_length=16, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    next_step = models.CharField(max_length=255, blank=True)
    next_step_date = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=80, blank=True)
    competitor = models.CharField(max_length=120, blank=True)
    lost_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["close_date", "id"]
        indexes = [
            # The rep's own pipeline list and the API's owner filter (live deals only: every
            # list filters deleted_at IS NULL, and the partial index then also answers COUNT).
            # With the stage, the scorecard counts every rep's open deals from the index alone.
            models.Index(
                fields=["owner", "close_date", "stage"],
                condition=models.Q(deleted_at__isnull=True),
                name="opportunity_owner_stage_idx",
            ),
            # The default order of every list: a big page of everything starts here, no sort.
            models.Index(
                fields=["close_date", "id"],
                condition=models.Q(deleted_at__isnull=True),
                name="opportunity_live_close_idx",
            ),
            # Biggest deals first (or last), the other order people ask of a big list.
            models.Index(
                fields=["amount", "id"],
                condition=models.Q(deleted_at__isnull=True),
                name="opportunity_live_amount_idx",
            ),
            models.Index(fields=["stage", "owner"]),
            # The live deals at an account with whom and where they are, read from the index
            # alone (SQLite's indexes carry the id; PostgreSQL's includes it): capture looks up
            # the deals of a thousand accounts per batch of mail. (It replaces a plain index on
            # the account, which repeated the foreign key's.)
            models.Index(
                fields=["account", "stage", "owner", "updated_at"],
                include=["id"],
                condition=models.Q(deleted_at__isnull=True),
                name="opportunity_live_account_idx",
            ),
            models.Index(fields=["updated_at"]),
            # The missed-daily-update rule asks, for each rep's working day, whether they created
            # a deal in it: an index range each. (It replaces the foreign key's plain index on the
            # owner, which PostgreSQL passed over to hash every deal against 25,000 rep-days.)
            models.Index(fields=["owner", "created_at"], name="opportunity_owner_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(probability__lte=100), name="opportunity_probability_max_100"
            ),
            models.CheckConstraint(
                condition=models.Q(amount__isnull=True) | models.Q(amount__gte=0),
                name="opportunity_amount_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_closed(self) -> bool:
        return self.stage.kind != StageKind.OPEN

    @property
    def weighted_amount(self):
        return None if self.amount is None else self.amount * self.probability / 100


class OpportunityProduct(models.Model):
    """A product line on an opportunity."""

    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="lines")
    quantity = models.DecimalField(max_digits=12, decimal_places=2, default=1)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def total(self):
        return self.quantity * self.unit_price


class OpportunityChange(FieldChange):
    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="changes")
    changed_by = changed_by_field(db_index=False)  # indexed with the time below, not alone

    class Meta(FieldChange.Meta):
        indexes = [
            # Timeline of one deal, and "value as of" reconstruction for one field.
            models.Index(fields=["opportunity", "field", "changed_at"]),
            models.Index(fields=["changed_at"]),
            # The history rules (close date pushed, amount swings, stage moves) read a window of
            # one field's changes from its index alone, not the row of every change in the window.
            *(
                models.Index(
                    fields=["changed_at", "opportunity", "old_value", "new_value"],
                    include=["id"],
                    condition=models.Q(field=name),
                    name=f"change_{name}_window_idx",
                )
                for name in ("stage", "amount", "close_date")
            ),
            # Whether a rep changed any deal within a working day (the missed-daily-update rule):
            # an index range per rep-day. On the foreign key alone, PostgreSQL hashed all the
            # history against the night's 25,000 rep-days (1.3 s for the rule; 0.13 s with it).
            models.Index(fields=["changed_by", "changed_at"], name="change_by_rep_idx"),
        ]
