"""`truepipe mailbox add|list|poll|password|remove|rekey`: the IMAP mailboxes capture polls."""

from __future__ import annotations

import getpass
import ipaddress
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.capture import imap, secrets
from truepipe.capture.models import Mailbox, Security

DEFAULT_PORTS = {Security.SSL: 993, Security.STARTTLS: 143, Security.PLAIN: 143}


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "The IMAP mailboxes capture reads mail from: add, list, poll, change the password, remove."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser(
            "add",
            help="Add a mailbox (the login is tried before saving). The password is stored encrypted.",
        )
        add.add_argument("name", help="A name for the mailbox, unique (e.g. 'ravi' or 'sales shared').")
        add.add_argument("--host", required=True)
        add.add_argument("--port", type=int, help="Default 993 with ssl, 143 otherwise.")
        add.add_argument("--security", choices=[s.value for s in Security], default=Security.SSL.value)
        add.add_argument("--user", required=True, help="The IMAP login.")
        add.add_argument("--folder", default="INBOX")
        add.add_argument(
            "--owner",
            metavar="USERNAME",
            help="The rep whose mailbox it is; without it the mailbox is shared and each message's "
            "rep is found from its addresses.",
        )
        self._password_arguments(add)
        add.add_argument(
            "--allow-plaintext",
            action="store_true",
            help="Allow --security none to a host other than this machine (the password crosses the "
            "network in clear).",
        )
        add.add_argument("--disabled", action="store_true", help="Save it without polling it yet.")

        actions.add_parser("list", help="Every mailbox: owner, last poll, last UID, last error.")

        poll = actions.add_parser("poll", help="Read new mail now: one mailbox, or every enabled one.")
        poll.add_argument("name", nargs="?")
        poll.add_argument("--batch", type=int, default=imap.BATCH, help="Messages per transaction.")

        password = actions.add_parser("password", help="Set a mailbox's password again.")
        password.add_argument("name")
        self._password_arguments(password)

        remove = actions.add_parser("remove", help="Stop polling a mailbox; what it captured stays logged.")
        remove.add_argument("name")

        actions.add_parser(
            "rekey",
            help="Re-encrypt every stored password with the first key of TRUEPIPE_CAPTURE_KEY "
            "(after a rotation, before dropping the old key).",
        )

    @staticmethod
    def _password_arguments(parser: CommandParser) -> None:
        parser.add_argument(
            "--password-file",
            metavar="FILE",
            help="Read the password from FILE ('-' for standard input); otherwise it is asked for.",
        )
        parser.add_argument("--no-check", action="store_true", help="Save without trying the login.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    # -- actions ---------------------------------------------------------------------------------------

    def _add(self, options: dict[str, Any]) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("The mailbox needs a name.")
        if Mailbox.objects.filter(name=name).exists():
            raise CommandError(f"A mailbox {name!r} exists already (`truepipe mailbox remove {name}` first).")
        security = options["security"]
        host = options["host"].strip()
        if security == Security.PLAIN and not _is_loopback(host) and not options["allow_plaintext"]:
            raise CommandError(
                f"--security none would send the password to {host} in clear: use ssl or starttls "
                "(or --allow-plaintext on a trusted network)."
            )
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"No user {options['owner']!r}.")
        mailbox = Mailbox(
            name=name,
            owner=owner,
            host=host,
            port=options["port"] or DEFAULT_PORTS[Security(security)],
            security=security,
            username=options["user"],
            folder=options["folder"],
            enabled=not options["disabled"],
        )
        password = self._read_password(options, f"Password for {mailbox.username}@{host}: ")
        self._check(mailbox, password, options)
        mailbox.password_encrypted = secrets.encrypt(password)
        mailbox.save()
        whose = f"owner {owner.username}" if owner else "shared: the rep is found from each message"
        self.stdout.write(
            f"Mailbox {mailbox.name} added: {mailbox.username} at {mailbox.host}:{mailbox.port} "
            f"({mailbox.security}), folder {mailbox.folder}, {whose}."
        )

    def _list(self, options: dict[str, Any]) -> None:
        rows = [("NAME", "OWNER", "ACCOUNT", "FOLDER", "ON", "LAST POLLED", "LAST UID", "LAST ERROR")]
        for box in Mailbox.objects.select_related("owner").order_by("name", "pk"):
            polled = (
                timezone.localtime(box.last_polled_at).strftime("%Y-%m-%d %H:%M")
                if box.last_polled_at
                else "never"
            )
            rows.append(
                (
                    box.name,
                    box.owner.username if box.owner else "(shared)",
                    f"{box.username}@{box.host}:{box.port}",
                    box.folder,
                    "yes" if box.enabled else "no",
                    polled,
                    str(box.last_uid),
                    box.last_error.replace("\n", " ")[:200] or "-",
                )
            )
        if len(rows) == 1:
            self.stdout.write("No mailboxes (`truepipe mailbox add NAME --host … --user …`).")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [v.ljust(w) for v, w in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]))

    def _poll(self, options: dict[str, Any]) -> None:
        if options["name"]:
            mailboxes = [self._mailbox(options["name"])]
        else:
            mailboxes = list(Mailbox.objects.filter(enabled=True).select_related("owner").order_by("name"))
            if not mailboxes:
                self.stdout.write("No enabled mailboxes.")
                return

        def progress(mailbox: Mailbox):  # type: ignore[no-untyped-def]
            read = 0

            def step(n: int) -> None:
                nonlocal read
                read += n
                self.stderr.write(f"  {mailbox.name}: {read} read…")

            return step

        failed = []
        for mailbox in mailboxes:
            where = f"{mailbox.username}@{mailbox.host}, {mailbox.folder}"
            self.stdout.write(f"Polling {mailbox.name} ({where})…")
            self.stdout.flush()
            (report,) = imap.poll_all([mailbox], batch=options["batch"], progress=progress)
            for origin, reason in report.problems[:20]:
                self.stderr.write(f"  rejected: {origin}: {reason}")
            self.stdout.write(report.summary())
            if report.error:
                failed.append(mailbox.name)
        if failed:
            raise CommandError(f"{len(failed)} mailbox(es) could not be read: {', '.join(failed)}.")

    def _password(self, options: dict[str, Any]) -> None:
        mailbox = self._mailbox(options["name"])
        password = self._read_password(options, f"New password for {mailbox.username}@{mailbox.host}: ")
        self._check(mailbox, password, options)
        mailbox.password_encrypted = secrets.encrypt(password)
        mailbox.last_error = ""
        mailbox.save(update_fields=["password_encrypted", "last_error"])
        self.stdout.write(f"Password of {mailbox.name} changed.")

    def _remove(self, options: dict[str, Any]) -> None:
        mailbox = self._mailbox(options["name"])
        mailbox.delete()
        self.stdout.write(f"Mailbox {mailbox.name} removed; what it captured stays logged.")

    def _rekey(self, options: dict[str, Any]) -> None:
        done, failed = 0, []
        for mailbox in Mailbox.objects.order_by("name"):
            try:
                token = secrets.rotate(mailbox.password_encrypted)
            except secrets.SecretError as exc:
                failed.append(mailbox.name)
                self.stderr.write(f"  {mailbox.name}: {exc}")
                continue
            Mailbox.objects.filter(pk=mailbox.pk).update(password_encrypted=token)
            done += 1
        self.stdout.write(f"{done} password(s) re-encrypted with the first key.")
        if failed:
            raise CommandError(f"{len(failed)} password(s) could not be decrypted: {', '.join(failed)}.")

    # -- helpers ---------------------------------------------------------------------------------------

    def _mailbox(self, name: str) -> Mailbox:
        found = list(Mailbox.objects.filter(name=name).select_related("owner")[:2])
        if not found:
            raise CommandError(f"No mailbox {name!r} (`truepipe mailbox list`).")
        if len(found) > 1:
            raise CommandError(f"Several mailboxes are called {name!r}: rename one in the admin.")
        return found[0]

    def _read_password(self, options: dict[str, Any], prompt: str) -> str:
        path = options.get("password_file")
        if path == "-":
            password = sys.stdin.readline().rstrip("\r\n")
        elif path:
            try:
                with open(path, encoding="utf-8") as handle:
                    password = handle.readline().rstrip("\r\n")
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None
        elif sys.stdin.isatty():
            password = getpass.getpass(prompt)
        else:
            raise CommandError("No terminal to ask the password on: give --password-file FILE (or -).")
        if not password:
            raise CommandError("The password is empty.")
        return password

    def _check(self, mailbox: Mailbox, password: str, options: dict[str, Any]) -> None:
        if options["no_check"]:
            return
        try:
            count = imap.check(
                mailbox.host, mailbox.port, mailbox.security, mailbox.username, password, mailbox.folder
            )
        except imap.MailboxError as exc:
            raise CommandError(f"{exc} (nothing saved; --no-check saves without trying).") from None
        self.stdout.write(f"Login works: {mailbox.folder} holds {count} message(s).")
