"""`truepipe log "LINE" --as USERNAME`: a one-line update from the command line.

    truepipe log "acme renewal 48k close mar 14 proposal next: send SOW friday" --as ravi
    truepipe log "initech 90k" --as ravi --pick 2 --yes

Prints the preview as a table of changes. On a terminal it asks "Apply? [y/N]"; elsewhere (a
script, a pipe) it applies only with --yes and otherwise says how to. A question (several deals,
"next friday" early in the week) prints numbered choices and exits 2 unless --pick answers it:
one --pick per question, in the order they are asked. Words not understood or a problem exit 1.
Writes go through the same service as the web page and the API, recorded with via "cli".
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from truepipe.core.errors import ServiceError
from truepipe.oneline import services
from truepipe.oneline.parse import Question


class Command(BaseCommand):
    help = "Preview and apply a one-line deal update, e.g. “acme renewal 48k close mar 14”."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("line", help="The update, in quotes.")
        parser.add_argument(
            "--as", dest="username", required=True, help="Who is updating: a username or e-mail."
        )
        parser.add_argument("--yes", action="store_true", help="Apply without asking.")
        parser.add_argument(
            "--pick",
            type=int,
            action="append",
            default=[],
            metavar="N",
            help="Answer the next question with its choice N (repeat for several questions).",
        )

    def handle(
        self, *args: Any, line: str, username: str, yes: bool, pick: list[int], **options: Any
    ) -> None:
        user = self._user(username)
        choices: dict[str, str] = {}
        picks = list(pick)
        try:
            preview = services.preview(user, line, choices)
            # Each answer can reveal the next question (the deal first, then its dates).
            while preview.questions and picks:
                question = preview.questions[0]
                choices[question.key] = self._choose(question, picks.pop(0))
                preview = services.preview(user, line, choices)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self._show(preview)
        if preview.questions:
            for question in preview.questions:
                self._ask(question)
            raise CommandError("Answer with --pick N, one per question in this order.", returncode=2)
        if not preview.can_apply:
            raise CommandError(preview.message)
        if not yes:
            if not sys.stdin.isatty():
                self.stdout.write("Not applied. Run again with --yes to apply these changes.")
                return
            answer = input("Apply? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                self.stdout.write("Nothing was changed.")
                return
        try:
            applied = services.apply(user, preview, via=services.VIA_CLI)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(applied.message))

    def _user(self, key: str) -> Any:
        key = key.strip()
        user = get_user_model().objects.filter(Q(username__iexact=key) | Q(email__iexact=key)).first()
        if user is None or not user.is_active:
            raise CommandError(f"There is no active user called {key!r}.")
        return user

    def _choose(self, question: Question, number: int) -> str:
        if not 1 <= number <= len(question.choices):
            self._ask(question)
            raise CommandError(f"--pick {number}: choose a number from 1 to {len(question.choices)}.")
        return question.choices[number - 1].value

    def _ask(self, question: Question) -> None:
        self.stdout.write("")
        self.stdout.write(question.text)
        for number, choice in enumerate(question.choices, start=1):
            self.stdout.write(f"  {number}. {choice.label}")

    def _show(self, preview: services.Preview) -> None:
        if preview.deal or preview.new_deal:
            version = f" (version {preview.version})" if preview.version else ""
            self.stdout.write(f"{preview.title}{version}")
        rows = [(row.label, row.old_text, row.new_text) for row in preview.rows]
        if rows and not (preview.deal or preview.new_deal):
            said = "; ".join(f"{row.label.lower()} {row.new_text}" for row in preview.rows)
            self.stdout.write(f"Once the deal is chosen: {said}.")
        elif rows:
            widths = [max(len(cells[n]) for cells in [("Field", "Now", "New"), *rows]) for n in range(3)]
            for cells in [("Field", "Now", "New"), *rows]:
                self.stdout.write(
                    "  " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
                )
        for row in preview.same:
            self.stdout.write(f"  {row.label} is already {row.new_text}.")
        for reading in preview.readings:
            self.stdout.write(f"  Read: {reading}")
        if preview.unknown:
            self.stdout.write(f"I did not understand: {', '.join(preview.unknown)}")
        for problem in preview.problems:
            self.stdout.write(problem)
