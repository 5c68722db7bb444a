"""The capture kinds of `truepipe import`: `email PATH...` (.eml, .mbox)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from truepipe.capture.ingest import Ingest, Report
from truepipe.capture.models import CaptureSource
from truepipe.core.visibility import role_of
from truepipe.people.models import Role


def actor_and_owner(options: dict[str, Any]):  # type: ignore[no-untyped-def]
    """`--as USER`: whose rights the import has; a rep's files are their own mail."""
    username = options.get("as_user")
    if not username:
        return None, None
    actor = get_user_model().objects.filter(username=username).first()
    if actor is None:
        raise CommandError(f"No user {username!r}.")
    return actor, (actor.pk if role_of(actor) == Role.REP else None)


def existing_paths(paths: list[str]) -> list[Path]:
    out = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"{name}: no such file.")
        out.append(path)
    return out


def print_report(report: Report, stdout, stderr, show: int = 100) -> None:  # type: ignore[no-untyped-def]
    for origin, reason in report.problems[: show or None]:
        stderr.write(f"  rejected: {origin}: {reason}")
    if show and len(report.problems) > show:
        stderr.write(f"  … and {len(report.problems) - show} more rejected (--show-errors 0 lists all).")
    if report.reasons:
        stderr.write("Ignored: " + ", ".join(f"{n} {why}" for why, n in report.reasons.most_common()) + ".")
    stdout.write(report.summary())


def progress_bar(total: int | None, options: dict[str, Any]):  # type: ignore[no-untyped-def]
    if options.get("no_progress") or not (sys.stderr.isatty() or options.get("verbosity", 1) >= 2):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", file=sys.stderr, dynamic_ncols=True)


def run_file_import(
    what: str, items, total: int | None, options: dict[str, Any], stdout, stderr, report: Report | None = None
) -> int:  # type: ignore[no-untyped-def]
    """The capture kinds of `truepipe import`: `items` (Incoming) ingested as `--as`, with a progress bar."""
    if options.get("dry_run"):
        raise CommandError(
            f"{what} import has no --dry-run: everything is logged once; a second run skips what the "
            "first logged (and applies what changed)."
        )
    actor, owner_id = actor_and_owner(options)
    bar = progress_bar(total, options)
    ingest = Ingest(actor)
    if report is not None:
        ingest.report = report
    try:
        result = ingest.run(items(owner_id), progress=bar.update if bar is not None else None)
    except KeyboardInterrupt:
        stderr.write(
            "Interrupted: the batches finished so far are kept; run again to go on (nothing is logged twice)."
        )
        return 130
    finally:
        if bar is not None:
            bar.close()
    print_report(result, stdout, stderr, options.get("show_errors", 100))
    return 0


def import_email(paths: list[str], options: dict[str, Any], stdout, stderr) -> int:  # type: ignore[no-untyped-def]
    from truepipe.capture.sources import count_messages, read_paths

    files = existing_paths(paths)
    return run_file_import(
        "E-mail",
        lambda owner_id: read_paths(files, source=CaptureSource.FILE, owner_id=owner_id),
        count_messages(files),
        options,
        stdout,
        stderr,
    )
