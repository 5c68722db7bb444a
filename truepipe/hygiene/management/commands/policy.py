"""`truepipe policy show|export [PATH]|import PATH [--note TEXT]|history`: the hygiene policy as a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.core.errors import InvalidInput
from truepipe.hygiene.policy import current_policy, publish_policy
from truepipe.hygiene.policy_file import export_text, history, parse_text, rule_lines


class Command(BaseCommand):
    help = (
        "The hygiene policy: show it in plain language, export it as JSON, import (publish) a JSON "
        "file as a new version, or list the versions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="show|export|import|history")
        actions.add_parser("show", help="Each enabled rule, explained, with its severity.")
        export = actions.add_parser("export", help="Write the current policy as JSON (default: stdout).")
        export.add_argument("path", nargs="?", help="File to write; '-' or nothing for stdout.")
        load = actions.add_parser(
            "import", help="Validate a JSON policy file and publish it as a new version."
        )
        load.add_argument("path", help="The JSON file.")
        load.add_argument("--note", default=None, help="Why the policy changed (shown in the history).")
        actions.add_parser("history", help="Every published version: number, when, who, note.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, "_" + options["action"].replace("import", "import_"))(options)

    def _show(self, options: dict[str, Any]) -> None:
        policy = current_policy()
        self.stdout.write(
            f"Hygiene policy v{policy.version}" + (" (built-in defaults)" if not policy.version else "")
        )
        lines = rule_lines(policy)
        for line in lines:
            if line.enabled:
                self.stdout.write(f"\n{line.title} [{line.key}], severity {line.severity_label.lower()}:")
                self.stdout.write(f"  {line.explanation}")
        off = [line.key for line in lines if not line.enabled]
        if off:
            self.stdout.write(f"\nSwitched off: {', '.join(off)}")

    def _export(self, options: dict[str, Any]) -> None:
        text = export_text()
        path = options.get("path")
        if not path or path == "-":
            self.stdout.write(text, ending="")
            return
        try:
            Path(path).write_text(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}") from exc
        self.stderr.write(f"Wrote policy v{current_policy().version} to {path}.")

    def _import_(self, options: dict[str, Any]) -> None:
        path = Path(options["path"])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        try:
            document = parse_text(raw)
            note = options["note"]
            if note is None:
                note = document.get("note", "") if isinstance(document, dict) else ""
            version = publish_policy(None, document, note=f"{note}" or f"imported from {path.name}")
        except InvalidInput as exc:
            details = "".join(f"\n  {where}: {problem}" for where, problem in sorted(exc.fields.items()))
            raise CommandError(f"{path}: {exc.message}{details}\nNothing was published.") from exc
        self.stdout.write(f"Published policy v{version.number} from {path}.")

    def _history(self, options: dict[str, Any]) -> None:
        versions = history()
        if not versions:
            self.stdout.write("No policy was published yet: the built-in defaults (v0) apply.")
            return
        for version in versions:
            who = version.created_by.get_username() if version.created_by else "system"
            when = timezone.localtime(version.created_at).strftime("%Y-%m-%d %H:%M")
            self.stdout.write(f"v{version.number}  {when}  {who:<16} {version.note}")
