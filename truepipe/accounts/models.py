"""Accounts (companies) and contacts (people at them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.core.models import FieldChange


class Account(models.Model):
    """A customer or prospect organisation."""

    name = models.CharField(max_length=200, db_index=True)
    industry = models.CharField(max_length=120, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["owner", "name"])]

    def __str__(self) -> str:
        return self.name

    @property
    def primary_domain(self) -> str:
        domains = list(self.domains.all())
        return domains[0].domain if domains else ""


class AccountDomain(models.Model):
    """A web / e-mail domain of an account; e-mail capture matches on it later."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.domain


class AccountChange(FieldChange):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="changes")

    class Meta(FieldChange.Meta):
        indexes = [models.Index(fields=["account", "changed_at"])]


class Contact(models.Model):
    """A person at an account (or not yet attached to one)."""

    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=120, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    version = models.PositiveIntegerField(default=1)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [models.Index(fields=["owner"]), models.Index(fields=["last_name", "first_name"])]

    def __str__(self) -> str:
        return self.full_name or f"Contact {self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def primary_email(self) -> str:
        emails = list(self.emails.all())
        return emails[0].email if emails else ""


class ContactEmail(models.Model):
    """One e-mail address of a contact; stored lower-case, unique across contacts."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="emails")
    email = models.EmailField(max_length=254, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.email


class PhoneKind(models.TextChoices):
    WORK = "work", "Work"
    CELL = "cell", "Mobile"
    HOME = "home", "Home"
    FAX = "fax", "Fax"
    OTHER = "other", "Other"


class ContactPhone(models.Model):
    """One telephone number of a contact, in the contact's order of preference.

    The first (lowest position) is mirrored in `Contact.phone`, which the CSV import/export and
    the API keep using; accounts.services keeps the two in step.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="phones")
    number = models.CharField(max_length=50)
    kind = models.CharField(max_length=10, choices=PhoneKind.choices, default=PhoneKind.OTHER)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["contact", "position"])]

    def __str__(self) -> str:
        return f"{self.number} ({self.get_kind_display()})"
