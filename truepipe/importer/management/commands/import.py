"""`truepipe import <kind> PATH`: CSV import of opportunities, accounts, contacts, activities, users."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from truepipe.importer import registry
from truepipe.importer.formats import KINDS
from truepipe.importer.importing import ImportAborted, ImportOptions, run_import


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source.strip():
            raise CommandError(
                f'{option} takes SOURCE=TARGET (for example {option} "Deal Stage=stage"), not {value!r}.'
            )
        out[source.strip()] = target.strip()
    return out


class Command(BaseCommand):
    help = (
        "Import a CSV file of opportunities, accounts, contacts, activities, users or products. "
        "Salesforce, HubSpot and Pipedrive export headers are recognised; --map covers the rest. "
        "Nothing is written if any row is bad, unless --skip-bad is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "kind", help=f"What the file holds: {', '.join(KINDS)} (or a capture kind: email, calendar)."
        )
        parser.add_argument("paths", nargs="+", metavar="PATH", help="The CSV file.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and count everything, write nothing."
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=field",
            help='Read COLUMN as this field, e.g. --map "Deal Stage=stage"; "COLUMN=" ignores the column.',
        )
        parser.add_argument(
            "--system",
            help='Name of the system the external ids come from (default: the recognised CRM, else "csv").',
        )
        parser.add_argument(
            "--skip-bad", action="store_true", help="Import the good rows even if some are bad."
        )
        parser.add_argument("--reject-file", type=Path, help="Write the bad rows here, with an error column.")
        parser.add_argument(
            "--dayfirst", action="store_true", help="Read 03/04/2024 as 3 April (EU), not March 4."
        )
        parser.add_argument(
            "--stage-map",
            action="append",
            default=[],
            metavar="VALUE=STAGE",
            help='e.g. --stage-map "Engaging=Discovery"',
        )
        parser.add_argument(
            "--product-map",
            action="append",
            default=[],
            metavar="VALUE=PRODUCT",
            help='e.g. --product-map "GTXPro=GTX Pro"',
        )
        parser.add_argument(
            "--create-accounts",
            action="store_true",
            help="Create accounts the file names but truepipe lacks.",
        )
        parser.add_argument(
            "--create-managers",
            action="store_true",
            help="Create managers the users file names but does not list.",
        )
        parser.add_argument(
            "--encoding", default="utf-8-sig", help="The file's text encoding (default UTF-8)."
        )
        parser.add_argument("--delimiter", help="Column separator (default: guessed from the header).")
        parser.add_argument("--batch-size", type=int, default=2000, help=argparse.SUPPRESS)
        parser.add_argument(
            "--show-errors", type=int, default=100, help="How many bad rows to list (0: all)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--as", dest="as_user", metavar="USERNAME", help="Import as this user, with their rights."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = options["kind"]
        if kind in registry.file_importers:
            code = registry.file_importers[kind](options["paths"], options, self.stdout, self.stderr)
            if code:
                raise SystemExit(code)
            return
        if kind not in KINDS:
            raise CommandError(
                f"Unknown kind {kind!r}: use one of {', '.join([*KINDS, *registry.file_importers])}."
            )
        if len(options["paths"]) != 1:
            raise CommandError(f"Import {kind} from one CSV file at a time.")
        actor = None
        if options["as_user"]:
            actor = get_user_model().objects.filter(username=options["as_user"]).first()
            if actor is None:
                raise CommandError(f"No user {options['as_user']!r}.")
        import_options = ImportOptions(
            mapping=_pairs(options["map"], "--map"),
            system=options["system"],
            dry_run=options["dry_run"],
            skip_bad=options["skip_bad"],
            reject_file=options["reject_file"],
            dayfirst=options["dayfirst"],
            stage_map=_pairs(options["stage_map"], "--stage-map"),
            product_map=_pairs(options["product_map"], "--product-map"),
            create_accounts=options["create_accounts"],
            create_managers=options["create_managers"],
            batch_size=max(1, options["batch_size"]),
            encoding=options["encoding"],
            delimiter=options["delimiter"],
            progress=not options["no_progress"] and sys.stderr.isatty() or options["verbosity"] >= 2,
            actor=actor,
        )
        try:
            report = run_import(kind, options["paths"][0], import_options)
        except ImportAborted as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: nothing was imported (the transaction was rolled back).")
            raise SystemExit(130) from None
        self.print_report(report, options)
        if report.errors and not (report.committed or (report.dry_run and options["skip_bad"])):
            raise SystemExit(1)

    def print_report(self, report, options: dict[str, Any]) -> None:
        fmt = f" ({report.recognised} export)" if report.recognised else ""
        mapped = ", ".join(f'"{header}"→{field}' for header, field in report.columns.items())
        self.stderr.write(f"Columns{fmt}: {mapped}.")
        if report.ignored:
            self.stderr.write(
                f"Ignored columns (not fields of {report.kind}; use --map COLUMN=field to use one): "
                f"{', '.join(report.ignored)}."
            )
        limit = options["show_errors"] or len(report.errors)
        if report.errors:
            self.stderr.write(f"Errors ({len(report.errors)} in {report.rejected} rows):")
            for error in report.errors[:limit]:
                self.stderr.write(f"  {error}")
            if len(report.errors) > limit:
                self.stderr.write(
                    f"  … and {len(report.errors) - limit} more (--show-errors 0 lists all; "
                    "--reject-file PATH writes every bad row)."
                )
            groups = report.error_groups()
            if len(report.errors) > 10 and len(groups) > 1:
                self.stderr.write("Errors by kind:")
                for line in groups[:20]:
                    self.stderr.write(f"  {line}")
        if report.warnings:
            self.stderr.write("Warnings (imported anyway):")
            for line in report.warning_lines():
                self.stderr.write(f"  {line}")
        for note in report.notes:
            self.stderr.write(f"Note: {note}")
        if options["reject_file"] and report.bad_rows:
            self.stderr.write(f"Bad rows written to {options['reject_file']}.")
        self.stderr.flush()
        self.stdout.write(report.summary())
