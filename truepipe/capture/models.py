"""Capture: what truepipe read from mailboxes, the drop-box, files and calendars, and what it made of it.

Every message or event that reaches capture leaves one `CapturedItem` (the ledger): logged as
an activity, waiting in triage, ignored (internal, personal, private) or rejected, always with
the reason. The ledger's `dedup_key` (the Message-ID, or an event's UID and recurrence) is what
makes capture idempotent: a message read twice, from two mailboxes or after a crash, is logged once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from truepipe.accounts.models import Account, Contact
from truepipe.activities.models import Activity


class CaptureSource(models.TextChoices):
    IMAP = "imap", "IMAP mailbox"
    DROPBOX = "dropbox", "Forward / BCC drop-box"
    FILE = "file", "File import"
    UPLOAD = "upload", "Upload"
    FEED = "feed", "Calendar feed"


class ItemStatus(models.TextChoices):
    LOGGED = "logged", "Logged"  # an activity on a deal (or on the account when it has none)
    TRIAGE = "triage", "Waiting in triage"  # logged, the deal to be chosen by the rep
    IGNORED = "ignored", "Ignored"  # internal only, personal, private, cancelled before it happened
    REJECTED = "rejected", "Rejected"  # could not be read; the reason says why


class CapturedItem(models.Model):
    """One message or calendar occurrence that reached capture, and its outcome."""

    # Read by its owner and their managers (and admins, execs); see core.visibility.
    VISIBLE_BY = "owner"

    dedup_key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=16, default="email")  # "email" or "meeting"
    source = models.CharField(max_length=16, choices=CaptureSource.choices)
    status = models.CharField(max_length=10, choices=ItemStatus.choices)
    reason = models.CharField(max_length=255, blank=True)
    owner = models.ForeignKey(  # indexed below, first of a composite index
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    activity = models.OneToOneField(
        Activity, null=True, blank=True, on_delete=models.SET_NULL, related_name="captured"
    )
    # The root of the conversation (first Message-ID of References), or the event's UID.
    thread_key = models.CharField(max_length=255, blank=True, db_index=True)
    subject = models.CharField(max_length=255, blank=True)
    sender = models.CharField(max_length=254, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(default=timezone.now)
    origin = models.CharField(max_length=255, blank=True)  # file name, mailbox, feed
    size = models.PositiveIntegerField(default=0)
    attachments = models.JSONField(default=list, blank=True)  # [{name, type, size}]: never the content
    sequence = models.IntegerField(default=0)  # iCalendar SEQUENCE: a later one replaces an earlier
    # Triage: the deals the activity may belong to, most recently active first.
    candidates = models.JSONField(default=list, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-captured_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status", "captured_at"]),
            models.Index(fields=["status", "captured_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}: {self.subject or self.dedup_key}"


class TouchDomain(models.Model):
    """An external domain a captured activity touched: the shadow pipeline counts these."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="+")
    # Indexed below, first of capture_touch_owner_idx.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    domain = models.CharField(max_length=253)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The rule over everyone's window; one rep's (or team's) suggestions; one domain's touches.
            models.Index(fields=["occurred_at", "owner", "domain"]),
            models.Index(fields=["owner", "occurred_at", "domain"], name="capture_touch_owner_idx"),
            models.Index(fields=["domain", "occurred_at"]),
        ]


class CaptureAddress(models.Model):
    """An address a person sends from, besides their login e-mail (a second mailbox, an alias).

    Registered addresses say which truepipe user took part in a message, and authenticate
    the sender of mail forwarded to the drop-box.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="capture_addresses"
    )
    email = models.EmailField(max_length=254, unique=True)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class ExcludedDomain(models.Model):
    """A domain whose mail is never captured: a rep's personal domains, or (no user) everyone's."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "domain"], name="capture_excluded_domain_once"),
        ]

    def __str__(self) -> str:
        return self.domain


class PrivateThread(models.Model):
    """A conversation a rep marked private: its activities are removed and later messages ignored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    thread_key = models.CharField(max_length=255)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "thread_key"], name="capture_private_thread_once"),
        ]


class ProposalStatus(models.TextChoices):
    OPEN = "open", "Proposed"
    ACCEPTED = "accepted", "Added as a contact"
    DISMISSED = "dismissed", "Dismissed"


class ContactProposal(models.Model):
    """An unknown address at a known account's domain, proposed as a new contact."""

    VISIBLE_BY = "proposed_to"

    email = models.EmailField(max_length=254, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    proposed_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    times_seen = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.OPEN)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["proposed_to", "status"])]

    def __str__(self) -> str:
        return self.email


class Security(models.TextChoices):
    SSL = "ssl", "SSL/TLS"
    STARTTLS = "starttls", "STARTTLS"
    PLAIN = "none", "None (local test servers only)"


class Mailbox(models.Model):
    """An IMAP mailbox polled for mail: a rep's own (owner set) or a shared one (owner empty).

    Reading is incremental by UID: `last_uid` is the highest UID whose outcome is committed,
    so a poll that crashes resumes after the last message it finished. A new UIDVALIDITY
    (the server renumbered the folder) starts again from the beginning; the ledger's
    Message-IDs keep that from logging anything twice.
    """

    name = models.CharField(max_length=120)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="mailboxes"
    )
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.SSL)
    username = models.CharField(max_length=254)
    password_encrypted = models.TextField()  # Fernet token; see truepipe.capture.secrets
    folder = models.CharField(max_length=200, default="INBOX")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CalendarFeed(models.Model):
    """An iCalendar feed URL polled for a person's meetings."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    url = models.URLField(max_length=1000)
    enabled = models.BooleanField(default=True)
    etag = models.CharField(max_length=255, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["owner", "url"]
        constraints = [models.UniqueConstraint(fields=["owner", "url"], name="capture_feed_once")]

    def __str__(self) -> str:
        return self.url
