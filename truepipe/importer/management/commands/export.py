"""`truepipe export <kind>`: records to standard output, in the column names `import` accepts."""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from truepipe.importer.exporting import export_rows
from truepipe.importer.formats import EXPORT_FIELDS


class Command(BaseCommand):
    help = (
        "Write opportunities, accounts, contacts, activities, users or products as CSV (or JSON) to stdout; "
        "contacts also as vCards (--format vcard)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=list(EXPORT_FIELDS), help="What to export.")
        parser.add_argument("--format", choices=["csv", "json", "vcard"], default="csv")
        parser.add_argument(
            "--vcard-version", choices=["3.0", "4.0"], default="3.0", help="With --format vcard."
        )
        parser.add_argument(
            "--as", dest="as_user", metavar="USERNAME", help="Export only what this user may see."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options["as_user"]:
            user = get_user_model().objects.filter(username=options["as_user"]).first()
            if user is None:
                raise CommandError(f"No user {options['as_user']!r}.")
        if options["format"] == "vcard" and options["kind"] != "contacts":
            raise CommandError("--format vcard is for contacts: truepipe export contacts --format vcard.")
        header, rows = export_rows(user, options["kind"])
        try:
            if options["format"] == "vcard":
                from truepipe.accounts.vcard import write_vcards

                for card in write_vcards(user, options["vcard_version"]):
                    self.stdout.write(card, ending="")
                return
            if options["format"] == "json":
                self.stdout.write("[", ending="")
                for index, row in enumerate(rows):
                    item = json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False)
                    self.stdout.write(("," if index else "") + "\n  " + item, ending="")
                self.stdout.write("\n]")
                return
            # Every row ends in "\n", so the output wrapper adds no line ending of its own.
            writer = csv.writer(self.stdout, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        except BrokenPipeError:
            # `truepipe export ... | head` closed the pipe: stop quietly, also at interpreter exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
