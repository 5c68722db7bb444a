"""Files given to capture through the upload page or the API: .eml, .mbox and .ics."""

from __future__ import annotations

import tempfile
from pathlib import Path

from truepipe.capture.ingest import Ingest, Report
from truepipe.capture.models import CaptureSource
from truepipe.core.errors import InvalidInput

MAIL_SUFFIXES = (".eml", ".mbox", ".mbx")
CALENDAR_SUFFIXES = (".ics", ".ical", ".ifb")


def ingest_file(actor, name: str, chunks, *, owner_id: int | None) -> Report:  # type: ignore[no-untyped-def]
    """Capture one uploaded file (its bytes in chunks) as `actor`; the file type comes from its name."""
    suffix = Path(name).suffix.lower()
    if suffix not in MAIL_SUFFIXES + CALENDAR_SUFFIXES:
        raise InvalidInput(
            f"{name}: capture reads .eml, .mbox and .ics files.",
            fields={"file": "Not a mail or calendar file."},
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        with path.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        ingest = Ingest(actor)
        if suffix in CALENDAR_SUFFIXES:
            from truepipe.capture import calendar

            ingest.report = calendar.CalendarReport()  # its summary also counts cancelled meetings
            return ingest.run(calendar.read_paths([path], source=CaptureSource.UPLOAD, owner_id=owner_id))
        from truepipe.capture.sources import read_paths

        return ingest.run(read_paths([path], source=CaptureSource.UPLOAD, owner_id=owner_id))
