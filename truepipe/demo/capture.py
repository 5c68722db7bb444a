"""The rainmaker's mail, captured: what capture sees that the CRM does not.

Rick logs almost nothing, but his mail tells the truth. The demo hands capture his last three
weeks of mail, as the drop-box or his mailbox would: threads with buyers at his accounts
(logged on their deals as customer touches), six threads with a company truepipe has never
heard of (the shadow pipeline suggests the deal; past the policy's threshold it is an
unlogged-deal violation), and finance's signed contract with that same company (an unlogged
win: his manager and delivery are told at once). Idempotent, like the rest of the back-fill:
the Message-IDs and the contract's reference are never captured twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model

from truepipe.accounts.models import ContactEmail
from truepipe.capture.ingest import Ingest
from truepipe.capture.models import CaptureSource
from truepipe.capture.sources import from_bytes

RAINMAKER = "rick"
PROSPECT = ("Northwind Logistics", "northwind-logistics.example")
PROSPECT_PEOPLE = (
    "Olga Brandt <olga.brandt@northwind-logistics.example>",
    "jonas.weber@northwind-logistics.example",
)
SUBJECTS = (
    "Intro: routing pilot for the Hamburg hub",
    "Pricing for 40 depots",
    "Security questionnaire",
    "Pilot results",
    "Contract redlines",
    "Signature this week?",
)


def _mail(
    sender: str, to: str, subject: str, body: str, when: dt.datetime, key: str, parent: str | None
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{key}@demo.truepipe>"
    if parent:
        msg["In-Reply-To"] = msg["References"] = f"<{parent}@demo.truepipe>"
    msg.set_content(body)
    return msg.as_bytes()


def _at_work(now: dt.datetime, days_ago: int, hour: int, zone: str) -> dt.datetime:
    """A working moment `days_ago` before now (a weekend moves to the Friday), in the rep's zone."""
    day = (now - dt.timedelta(days=days_ago)).astimezone(ZoneInfo(zone)).date()
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, 15), tzinfo=ZoneInfo(zone))


def rainmaker_mail(now: dt.datetime) -> list[bytes]:
    rick = get_user_model().objects.select_related("profile").get(username=RAINMAKER)
    zone = rick.profile.time_zone
    mails: list[bytes] = []
    # Buyers at his own accounts: a short exchange with each of a few.
    buyers = list(
        ContactEmail.objects.filter(contact__account__owner=rick, contact__deleted_at__isnull=True)
        .order_by("contact__account__name", "email")
        .values_list("email", flat=True)[:5]
    )
    for n, buyer in enumerate(buyers):
        when = _at_work(now, 2 + 3 * n, 10, zone)
        first = f"rick-buyer-{n}"
        mails.append(
            _mail(rick.email, buyer, "Next steps", "As discussed, here is the plan.", when, first, None)
        )
        mails.append(
            _mail(
                buyer,
                rick.email,
                "Re: Next steps",
                "Works for us.",
                when + dt.timedelta(hours=3),
                f"{first}-re",
                first,
            )
        )
    # The company nobody entered: six threads over three weeks.
    for n, subject in enumerate(SUBJECTS):
        when = _at_work(now, 20 - 3 * n, 11 + n % 4, zone)
        person = PROSPECT_PEOPLE[n % 2]
        key = f"rick-northwind-{n}"
        mails.append(_mail(rick.email, person, subject, "Following up on our call.", when, key, None))
    return mails


def capture_rainmaker(now: dt.datetime) -> dict[str, int]:
    """Capture Rick's mail and import finance's contract; returns what capture counted."""
    rick = get_user_model().objects.filter(username=RAINMAKER).first()
    if rick is None or not rick.email:
        return {}
    items = [
        from_bytes(raw, source=CaptureSource.DROPBOX, origin="demo: Rick's mail", owner_id=rick.pk)
        for raw in rainmaker_mail(now)
    ]
    report = Ingest(None, now=now).run(items)
    _contract(now)
    return dict(report.counts)


def _contract(now: dt.datetime) -> None:
    """Finance's export: the Northwind contract, signed two days ago, that no deal in truepipe matches."""
    from truepipe.contracts.importing import run

    name, domain = PROSPECT
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signed-contracts.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Customer", "Amount", "Currency", "Signed", "Reference"])
            signed = (now - dt.timedelta(days=2)).date().isoformat()
            writer.writerow([f"{name} ({domain})", "180000", "USD", signed, "FIN-2026-0412"])
        run(path, {}, now=now)
