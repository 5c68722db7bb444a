"""Deals never logged: finance's signed contracts, and the reps' dismissed shadow-pipeline suggestions.

A `Contract` is one signed contract or invoice finance reported (`truepipe import contracts`).
Each is matched to the won opportunity it is the paperwork of; one that matches none is an
*unlogged win* (the `unlogged_win` rule holds it against the accountable rep until the won
deal is logged and matched). A `ShadowDismissal` is a rep saying "not now" to a
shadow-pipeline suggestion ("create the deal?"): it stops being suggested until new touches
reach the suggestion threshold again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.accounts.models import Account
from truepipe.pipeline.models import Opportunity


class Contract(models.Model):
    """A signed contract or invoice from finance, and the won deal it belongs to (if any)."""

    customer = models.CharField(max_length=200)  # as finance wrote it
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contracts"
    )
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    signed_on = models.DateField()
    # Finance's contract or invoice number: what makes a re-import update instead of duplicate.
    reference = models.CharField(max_length=120, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=255, blank=True)  # the file it came from
    # A deal is the paperwork of at most one contract.
    opportunity = models.OneToOneField(
        Opportunity, null=True, blank=True, on_delete=models.SET_NULL, related_name="contract"
    )
    matched_at = models.DateTimeField(null=True, blank=True)
    match_note = models.CharField(max_length=255, blank=True)
    # Who answers for it: the matched deal's owner; unmatched, the account's owner, else the rep
    # with the most captured touches at the customer's domains (see contracts.services).
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="contracts"
    )
    rep_basis = models.CharField(max_length=40, blank=True)
    # When the manager, delivery (or the admins) were told it was never logged.
    notified_at = models.DateTimeField(null=True, blank=True)

    # Visibility (core.visibility): the person the record is about and their managers; delivery
    # reads all of them (they staff what was signed).
    VISIBLE_BY = "rep"
    VISIBLE_TO_DELIVERY = True

    class Meta:
        ordering = ["-signed_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference"], condition=~models.Q(reference=""), name="contract_reference_once"
            ),
        ]
        indexes = [
            # The unlogged_win rule and rematch() read the unmatched ones.
            models.Index(fields=["opportunity", "signed_on"], name="contract_match_idx"),
            models.Index(fields=["rep", "signed_on"]),
            models.Index(fields=["account"]),
        ]

    def __str__(self) -> str:
        return f"{self.customer} {self.amount} {self.currency} ({self.signed_on})"

    @property
    def matched(self) -> bool:
        return self.opportunity_id is not None


class DismissalReason(models.TextChoices):
    NOT_NOW = "not_now", "Not now"
    NOT_CUSTOMER = "not_customer", "Not a customer"


class ShadowDismissal(models.Model):
    """A rep's "not now" to a shadow-pipeline suggestion: touches up to `dismissed_at` stop counting
    toward the suggestion (never toward the unlogged_deal rule). "Not a customer" also excludes the
    domain from capture for the rep (capture.ExcludedDomain), which the rule honours."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    domain = models.CharField(max_length=253)
    reason = models.CharField(max_length=16, choices=DismissalReason.choices, default=DismissalReason.NOT_NOW)
    note = models.CharField(max_length=255, blank=True)
    dismissed_at = models.DateTimeField(default=timezone.now)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "domain"], name="shadow_dismissal_once"),
        ]

    def __str__(self) -> str:
        return f"{self.domain} dismissed by {self.user_id}"
