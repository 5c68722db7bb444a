"""vCard (.vcf) import and export of contacts: names, e-mails, phones with kinds, title, organisation.

Reading: `parse_vcards` cuts a file into cards and logical lines itself (so every problem carries the
card number and the physical line number), and hands each line to vobject's content-line parser,
which handles parameters (quoted, repeated, vCard 2.1's bare ones), property groups
(`item1.TEL`) and quoted-printable values with their CHARSET. Values are unescaped here, not by
vobject: vobject keeps only the first of an unescaped comma list ("TITLE:Head, Sales" would become
"Head"), which sloppy exporters produce all the time.

Writing: vCard 3.0 (the default, what Apple Contacts, Google and Outlook read) is built with
vobject; vCard 4.0 (RFC 6350) is written here, because vobject serialises every card with 3.0
rules (a `tel:` URI would come out text-escaped, and there is no PREF parameter).

Importing: `import_vcards` writes through accounts.services only, in one transaction; see its
docstring for how cards are matched to existing contacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import vobject
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import QuerySet

from truepipe.accounts import services
from truepipe.accounts.models import Account, Contact, ContactEmail, PhoneKind
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via

VERSIONS = ("3.0", "4.0")
PRODID = "-//truepipe//vCard export//EN"
WANTED = frozenset({"VERSION", "N", "FN", "EMAIL", "TEL", "TITLE", "ORG", "X-ABSHOWAS"})

# The TYPE a kind of phone is written with, in 3.0 and 4.0 alike ("voice" is the default type).
KIND_TYPES: dict[str, str] = {
    PhoneKind.WORK: "work",
    PhoneKind.CELL: "cell",
    PhoneKind.HOME: "home",
    PhoneKind.FAX: "fax",
    PhoneKind.OTHER: "voice",
}
# The first of these a TEL's types name decides its kind: "TYPE=work,fax" is a fax.
TYPE_KINDS = (
    ("fax", PhoneKind.FAX),
    ("cell", PhoneKind.CELL),
    ("mobile", PhoneKind.CELL),
    ("iphone", PhoneKind.CELL),
    ("home", PhoneKind.HOME),
    ("work", PhoneKind.WORK),
)
NO_PREFERENCE = 101  # RFC 6350 PREF runs from 1 (most preferred) to 100


# --- reading -------------------------------------------------------------------------------------


@dataclass
class CardProblem:
    """Something wrong (an error) or worth knowing (a warning) about one card of one file."""

    line: int
    message: str
    card: int | None = None
    source: str = ""

    def __str__(self) -> str:
        where = f"card {self.card} (line {self.line})" if self.card else f"line {self.line}"
        return f"{self.source}, {where}: {self.message}" if self.source else f"{where}: {self.message}"


@dataclass
class Card:
    """What truepipe keeps of one vCard, each value with the line it came from."""

    number: int
    line: int
    source: str = ""
    version: str = ""
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    organisation: str = ""
    emails: list[tuple[str, int]] = field(default_factory=list)
    phones: list[tuple[str, str, int]] = field(default_factory=list)  # (number, kind, line)

    def problem(self, message: str, line: int | None = None) -> CardProblem:
        return CardProblem(line or self.line, message, self.number, self.source)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def _decode(raw: bytes) -> str:
    """One physical line as text: UTF-8, else the line's own CHARSET, else Windows-1252."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = re.search(rb";CHARSET=\"?([A-Za-z0-9_.:-]+)", raw.split(b":", 1)[0], re.IGNORECASE)
    for charset in ([match.group(1).decode("ascii")] if match else []) + ["cp1252"]:
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1")


def _logical_lines(data: bytes | str) -> Iterator[tuple[int, str]]:
    """(first physical line number, unfolded line). Folding: a line starting with a space or tab
    continues the previous one. vCard 2.1 quoted-printable: a value ending in "=" goes on."""
    if isinstance(data, bytes):
        data = data.removeprefix(b"\xef\xbb\xbf")
        physical = [_decode(raw) for raw in data.splitlines()]
    else:
        physical = data.removeprefix("\ufeff").splitlines()
    current: list[str] = []
    start = 0
    quoted_printable = False
    for number, text in enumerate(physical, start=1):
        if current and quoted_printable and current[-1].endswith("="):
            current[-1] = current[-1][:-1]
            current.append(text)
            continue
        if current and text[:1] in (" ", "\t"):
            current.append(text[1:])
            continue
        if current:
            yield start, "".join(current)
            current = []
        if not text.strip():
            continue
        start = number
        current = [text]
        quoted_printable = "QUOTED-PRINTABLE" in text.split(":", 1)[0].upper()
    if current:
        yield start, "".join(current)


def _components(raw: str) -> list[list[str]]:
    """A structured value (N, ORG): components split on unescaped ";", each into values on
    unescaped ",", with the backslash escapes removed (\\n is a new line)."""
    components: list[list[str]] = [[]]
    chars: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            following = raw[index + 1]
            chars.append("\n" if following in "nN" else following)
            index += 2
            continue
        if char in ",;":
            components[-1].append("".join(chars))
            chars = []
            if char == ";":
                components.append([])
        else:
            chars.append(char)
        index += 1
    components[-1].append("".join(chars))
    return components


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), raw)


def _text(raw: str) -> str:
    return " ".join(_unescape(raw).split())


def _types(line: Any) -> set[str]:
    """TYPE=work,voice / TYPE="work,voice" / TYPE=work;TYPE=voice / vCard 2.1's bare ;WORK;VOICE."""
    values = [*line.params.get("TYPE", []), *line.singletonparams]
    return {item.strip().strip('"').lower() for value in values for item in value.split(",") if item.strip()}


def _preference(line: Any, types: set[str]) -> int:
    for value in line.params.get("PREF", []):
        if value.strip().isdigit():
            return max(1, min(100, int(value)))
    return 1 if "pref" in types else NO_PREFERENCE


def _phone_number(line: Any) -> str:
    value = _text(line.value)
    is_uri = any(v.lower() == "uri" for v in line.params.get("VALUE", []))
    if not (is_uri or value.lower().startswith("tel:")):
        return value
    number, *parameters = unquote(value.split(":", 1)[1] if ":" in value else value).split(";")
    for parameter in parameters:
        name, _, extension = parameter.partition("=")
        if name.strip().lower() == "ext" and extension.strip():
            number = f"{number} ext. {extension.strip()}"
    return number.strip()


def _phone_kind(types: set[str]) -> str:
    return next((kind for name, kind in TYPE_KINDS if name in types), PhoneKind.OTHER)


def _split_full_name(full: str) -> tuple[str, str]:
    """'Wile E. Coyote' -> ('Wile E.', 'Coyote'); one word is a first name."""
    words = full.split()
    if len(words) < 2:
        return full, ""
    return " ".join(words[:-1]), words[-1]


def _read_card(card: Card, lines: list[tuple[int, Any]]) -> None:
    by_name: dict[str, list[tuple[int, Any]]] = {}
    for number, line in lines:
        by_name.setdefault(line.name, []).append((number, line))

    def first(name: str) -> tuple[int, Any] | None:
        return by_name[name][0] if by_name.get(name) else None

    if version := first("VERSION"):
        card.version = _text(version[1].value)
    if n := first("N"):
        parts = [" ".join(" ".join(values).split()) for values in _components(n[1].value)]
        parts += [""] * (3 - len(parts))
        card.last_name = parts[0]
        card.first_name = " ".join(p for p in (parts[1], parts[2]) if p)
    emails = [_text(line.value).removeprefix("mailto:") for _, line in by_name.get("EMAIL", [])]
    if not card.name and (fn := first("FN")):
        full = _text(fn[1].value)
        show_as = first("X-ABSHOWAS")
        company = show_as is not None and _text(show_as[1].value).upper() == "COMPANY"
        # An exporter fills FN with the address or the company when it has no name: not a name.
        if full and "@" not in full and not company:
            card.first_name, card.last_name = _split_full_name(full)
    if title := first("TITLE"):
        card.title = _text(title[1].value)
    if org := first("ORG"):
        # ORG is "name;unit;unit": commas belong to the name ("Acme, Inc.").
        card.organisation = " ".join(",".join(_components(org[1].value)[0]).split())

    ranked_emails = []
    for index, ((number, line), address) in enumerate(zip(by_name.get("EMAIL", []), emails, strict=True)):
        if address:
            ranked_emails.append((_preference(line, _types(line)), index, address, number))
    card.emails = [(address, number) for _, _, address, number in sorted(ranked_emails)]

    ranked_phones = []
    for index, (number, line) in enumerate(by_name.get("TEL", [])):
        types = _types(line)
        phone = _phone_number(line)
        if phone:
            ranked_phones.append((_preference(line, types), index, phone, _phone_kind(types), number))
    card.phones = [(phone, kind, number) for _, _, phone, kind, number in sorted(ranked_phones)]


def parse_vcards(data: bytes | str, source: str = "") -> tuple[list[Card], list[CardProblem]]:
    """The cards of one .vcf file, and the problems that make a card (or a stray line) unusable.

    A card with a problem is not returned: it is reported instead, with its number and line.
    """
    cards: list[Card] = []
    problems: list[CardProblem] = []
    current: Card | None = None
    lines: list[tuple[int, Any]] = []
    broken = stray = False
    count = 0
    for number, text in _logical_lines(data):
        keyword = text.strip().upper()
        if keyword == "BEGIN:VCARD":
            if current is not None:
                problems.append(current.problem("no END:VCARD before the next BEGIN:VCARD"))
            count += 1
            current, lines, broken, stray = Card(count, number, source), [], False, False
            continue
        if current is None:
            if not stray:  # one error for a run of stray lines, not one per line of a wrong file
                message = f"text outside BEGIN:VCARD … END:VCARD: {text[:60]!r}"
                problems.append(CardProblem(number, message, source=source))
            stray = True
            continue
        if keyword == "END:VCARD":
            if not broken:
                _read_card(current, lines)
                cards.append(current)
            current = None
            continue
        try:
            line = vobject.base.textLineToContentLine(text, number)
        except (vobject.base.ParseError, ValueError, LookupError) as exc:
            malformed = isinstance(exc, vobject.base.ParseError)
            reason = "malformed line" if malformed else "cannot decode the value"
            problems.append(current.problem(f"{reason}: {text[:60]!r}", number))
            broken = True
            continue
        if line.name in WANTED:
            lines.append((number, line))
    if current is not None:
        problems.append(current.problem("the file ends before END:VCARD"))
    if count == 0 and not problems:
        problems.append(CardProblem(1, "no BEGIN:VCARD: this is not a vCard file", source=source))
    return cards, problems


# --- importing -----------------------------------------------------------------------------------


@dataclass
class VCardReport:
    cards: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    accounts_created: int = 0
    errors: list[CardProblem] = field(default_factory=list)
    warnings: list[CardProblem] = field(default_factory=list)
    dry_run: bool = False
    committed: bool = False

    @property
    def rejected(self) -> int:
        return len({(e.source, e.card or -e.line) for e in self.errors})

    def summary(self, skip_bad: str = "pass --skip-bad") -> str:
        """One line; `skip_bad` says how to import the good cards anyway (an option, a checkbox)."""
        counts = (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {self.rejected}, warnings {len(self.warnings)}"
        )
        if self.accounts_created:
            counts += f", accounts created {self.accounts_created}"
        if self.dry_run:
            return f"Dry run of vCard import: nothing was written. Cards that would be imported: {counts}."
        if self.committed:
            return f"Imported vCards: {counts}."
        return (
            f"Nothing was imported: {self.rejected} card{'s' if self.rejected != 1 else ''} "
            f"{'have' if self.rejected != 1 else 'has'} errors. Fix them, or {skip_bad} to import "
            f"the good cards. ({counts}.)"
        )


class _Rollback(Exception):
    pass


class _BadCard(Exception):
    def __init__(self, problem: CardProblem):
        super().__init__(str(problem))
        self.problem = problem


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number) or number


class _Importer:
    def __init__(self, actor: Any, report: VCardReport, create_accounts: bool):
        self.actor = actor
        self.report = report
        self.create_accounts = create_accounts
        self.accounts: dict[str, Account | None] = {}
        self.card_accounts: list[str] = []  # accounts memoised while importing the current card
        self.card_warnings = 0

    def begin_card(self) -> None:
        self.card_accounts = []
        self.card_warnings = len(self.report.warnings)

    def undo_card(self) -> None:
        """The card's savepoint was rolled back: so were the accounts it created, and its warnings
        are about a contact that was not saved."""
        for key in self.card_accounts:
            account = self.accounts.pop(key, None)
            if account is not None and account.pk and not Account.objects.filter(pk=account.pk).exists():
                self.report.accounts_created -= 1
        del self.report.warnings[self.card_warnings :]

    def account(self, card: Card) -> Account | None:
        name = card.organisation
        key = name.casefold()
        if key not in self.accounts:
            self.accounts[key] = self.find_or_create_account(card)
            self.card_accounts.append(key)
        found = self.accounts[key]
        if found is None:
            hint = "" if self.create_accounts else " (--create-accounts creates it)"
            seen = "" if self.actor is None else " that you can see"
            self.warn(card, f"no account named “{name}”{seen}: the contact was saved without one{hint}")
        return found

    def find_or_create_account(self, card: Card) -> Account | None:
        name = card.organisation
        anywhere = Account.objects.filter(deleted_at__isnull=True, name__iexact=name)
        seen = anywhere if self.actor is None else visibility.visible(self.actor, Account)
        found = seen.filter(name__iexact=name).order_by("id").first()
        if found is not None or not self.create_accounts:
            return found
        if anywhere.exists():  # someone else's: a second account of the same name helps nobody
            return None
        created = services.create_account(self.actor, name=name, via=Via.IMPORT)
        self.report.accounts_created += 1
        return created

    def warn(self, card: Card, message: str, line: int | None = None) -> None:
        self.report.warnings.append(card.problem(message, line))

    def apply(self, card: Card) -> None:
        emails: list[tuple[str, int]] = []
        for address, line in card.emails:
            try:
                emails.append((services.normalise_email(address), line))
            except ServiceError:
                raise _BadCard(card.problem(f"{address!r} is not an e-mail address", line)) from None
        first_lines: dict[str, int] = {}
        for address, line in emails:
            first_lines.setdefault(address, line)
        emails = list(first_lines.items())
        if not (card.first_name or card.last_name or emails):
            raise _BadCard(card.problem("the card has no name (N or FN) and no e-mail address"))
        owners = dict(
            ContactEmail.objects.filter(email__in=[a for a, _ in emails]).values_list("email", "contact_id")
        )
        owner_ids = list(dict.fromkeys(owners[a] for a, _ in emails if a in owners))
        if len(owner_ids) > 1:
            clash = [(a, line) for a, line in emails if a in owners]
            raise _BadCard(
                card.problem(
                    f"{clash[0][0]} and {next(a for a, _ in clash if owners[a] != owner_ids[0])} are the "
                    "addresses of two different contacts: merge them, or split the card",
                    next(line for a, line in clash if owners[a] != owner_ids[0]),
                )
            )
        account = self.account(card) if card.organisation else None
        phones = [(number, kind) for number, kind, _ in card.phones]
        if not emails and (same := self.same_name_and_phone(card)):
            self.merge(card, same, [], phones, account)
            return
        if not owner_ids:
            services.create_contact(
                self.actor,
                via=Via.IMPORT,
                emails=[a for a, _ in emails],
                phones=phones,
                first_name=card.first_name,
                last_name=card.last_name,
                title=card.title,
                account=account,
            )
            self.report.created += 1
            return
        contact = Contact.objects.select_related("account").get(pk=owner_ids[0])
        if self.actor is not None and not visibility.can_change(self.actor, contact):
            address, line = next((a, line) for a, line in emails if owners.get(a) == contact.pk)
            whose = f"“{contact}”" if visibility.can_view(self.actor, contact) else "a contact"
            raise _BadCard(card.problem(f"{address} is the address of {whose} you may not change", line))
        self.merge(card, contact, [a for a, _ in emails], phones, account)

    def same_name_and_phone(self, card: Card) -> Contact | None:
        """For a card without e-mail: a contact the actor may change with its name and a phone of it,
        so that importing the same file twice does not duplicate the people who have no address."""
        if not (card.name and card.phones):
            return None
        scope = (
            Contact.objects.filter(deleted_at__isnull=True)
            if self.actor is None
            else visibility.visible(self.actor, Contact, "change")
        )
        numbers = {_digits(number) for number, _, _ in card.phones}
        candidates = scope.filter(first_name__iexact=card.first_name, last_name__iexact=card.last_name)
        for contact in candidates.select_related("account").prefetch_related("phones").order_by("id")[:20]:
            if numbers & {_digits(p.number) for p in contact.phones.all()}:
                return contact
        return None

    def merge(
        self,
        card: Card,
        contact: Contact,
        emails: list[str],
        phones: list[tuple[str, str]],
        account: Account | None,
    ) -> None:
        """Add what the card knows and the contact lacks; change nothing the contact already has."""
        changes: dict[str, Any] = {}
        if card.name and not contact.full_name:
            changes.update(first_name=card.first_name, last_name=card.last_name)
        elif card.name and card.name.casefold() != contact.full_name.casefold():
            self.warn(card, f"kept the name “{contact.full_name}”; the card says “{card.name}”")
        if card.title and not contact.title:
            changes["title"] = card.title
        elif card.title and card.title != contact.title:
            self.warn(card, f"kept the title “{contact.title}” of {contact}; the card says “{card.title}”")
        if account is not None and contact.account_id is None:
            changes["account"] = account
        elif account is not None and account.pk != contact.account_id:
            self.warn(card, f"kept the account “{contact.account}” of {contact}; the card says “{account}”")
        current_emails = list(contact.emails.values_list("email", flat=True))
        if any(e not in current_emails for e in emails):
            changes["emails"] = list(dict.fromkeys([*current_emails, *emails]))
        current_phones = list(contact.phones.values_list("number", "kind"))
        known = {_digits(number) for number, _ in current_phones}
        new_phones = [(n, k) for n, k in phones if _digits(n) not in known]
        if new_phones:
            changes["phones"] = [*current_phones, *new_phones]
        if not changes:
            self.report.unchanged += 1
            return
        services.update_contact(self.actor, contact, changes, via=Via.IMPORT)
        self.report.updated += 1


def import_vcards(
    files: Iterable[tuple[str, bytes | str]],
    *,
    actor: Any,
    dry_run: bool = False,
    skip_bad: bool = False,
    create_accounts: bool = False,
) -> VCardReport:
    """Import the cards of (name, content) files as `actor` (None: the operator, who may do anything).

    A card whose e-mail addresses belong to an existing contact (a card without any: a contact of
    the same name sharing a phone number) updates that contact: new
    addresses and phones are added, a blank title, name or account filled in; a name, title or
    account that differs is kept, with a warning. Any other card creates a contact owned by the
    actor. ORG names an account (case-insensitive, among those the actor can see); a missing one is
    created with `create_accounts`, else the contact is saved without it, with a warning.

    All or nothing: one bad card (unreadable, nameless, an address of a contact the actor may not
    change, two contacts' addresses) means nothing is written, unless `skip_bad`, which imports the
    others. `dry_run` does everything and then rolls it back.
    """
    report = VCardReport(dry_run=dry_run)
    cards: list[Card] = []
    for name, content in files:
        parsed, problems = parse_vcards(content, source=name)
        cards += parsed
        report.errors += problems
        report.cards += len(parsed) + len({p.card for p in problems if p.card})
    importer = _Importer(actor, report, create_accounts)
    try:
        with transaction.atomic():
            for card in cards:
                importer.begin_card()
                try:
                    with transaction.atomic():
                        importer.apply(card)
                except _BadCard as exc:
                    importer.undo_card()
                    report.errors.append(exc.problem)
                except ServiceError as exc:
                    importer.undo_card()
                    report.errors.append(card.problem(exc.message.rstrip(".")))
            if dry_run or (report.errors and not skip_bad):
                raise _Rollback
    except _Rollback:
        report.committed = False
    else:
        report.committed = True
    report.errors.sort(key=lambda p: (p.source, p.card or 0, p.line))
    return report


def import_command(paths: list[str], options: dict[str, Any], stdout: Any, stderr: Any) -> int:
    """`truepipe import vcard PATH...`, registered in importer.registry by AccountsConfig.ready()."""
    actor = None
    if options.get("as_user"):
        actor = get_user_model().objects.filter(username=options["as_user"]).first()
        if actor is None:
            raise CommandError(f"No user {options['as_user']!r}.")
    files = []
    for path in paths:
        try:
            files.append((path if len(paths) > 1 else "", Path(path).read_bytes()))
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
    report = import_vcards(
        files,
        actor=actor,
        dry_run=bool(options.get("dry_run")),
        skip_bad=bool(options.get("skip_bad")),
        create_accounts=bool(options.get("create_accounts")),
    )
    limit = options.get("show_errors") or len(report.errors)
    if report.errors:
        stderr.write(f"Errors ({len(report.errors)} in {report.rejected} cards):")
        for problem in report.errors[:limit]:
            stderr.write(f"  {problem}")
        if len(report.errors) > limit:
            stderr.write(f"  … and {len(report.errors) - limit} more (--show-errors 0 lists all).")
    if report.warnings:
        stderr.write("Warnings (imported anyway):")
        for problem in report.warnings:
            stderr.write(f"  {problem}")
    stdout.write(report.summary())
    if report.errors and not (report.committed or (report.dry_run and options.get("skip_bad"))):
        return 1
    return 0


# --- writing -------------------------------------------------------------------------------------


def _phones_of(contact: Contact) -> list[tuple[str, str]]:
    phones = [(p.number, p.kind) for p in contact.phones.all()]
    if not phones and contact.phone:  # written by a path that predates ContactPhone
        phones = [(contact.phone, PhoneKind.OTHER)]
    return phones


def _card_3(contact: Contact) -> str:
    card = vobject.vCard()
    card.add("prodid").value = PRODID
    card.add("n").value = vobject.vcard.Name(family=contact.last_name, given=contact.first_name)
    emails = [e.email for e in contact.emails.all()]
    card.add("fn").value = contact.full_name or (emails[0] if emails else "")
    for index, address in enumerate(emails):
        line = card.add("email")
        line.value = address
        line.type_param = ["INTERNET", "pref"] if index == 0 and len(emails) > 1 else ["INTERNET"]
    phones = _phones_of(contact)
    for index, (number, kind) in enumerate(phones):
        line = card.add("tel")
        line.value = number
        types = [KIND_TYPES.get(kind, "voice")]
        line.type_param = [*types, "pref"] if index == 0 and len(phones) > 1 else types
    if contact.title:
        card.add("title").value = contact.title
    if contact.account_id and contact.account:
        card.add("org").value = [contact.account.name]
    return card.serialize()


def _escape(text: str, component: bool = False) -> str:
    """RFC 6350 3.4: backslash, comma and new line are escaped in text; a semicolon only inside a
    structured value's component (N, ORG), where it would separate components."""
    text = text.replace("\\", "\\\\").replace(",", "\\,").replace("\r\n", "\n").replace("\n", "\\n")
    return text.replace(";", "\\;") if component else text


def _fold(line: str) -> str:
    """RFC 6350 3.2: at most 75 octets a line, continuation lines start with a space; never inside a
    UTF-8 character."""
    out: list[str] = []
    chunk, size, limit = "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(chunk)
            chunk, size, limit = " ", 1, 75
        chunk += char
        size += width
    out.append(chunk)
    return "\r\n".join(out) + "\r\n"


# A number that is a global tel: URI as it stands (RFC 3966), so writing it as one loses nothing.
TEL_URI = re.compile(r"^(\+[0-9][0-9().-]*[0-9])(?: ext\. ([0-9]+))?$")


def _card_4(contact: Contact) -> str:
    emails = [e.email for e in contact.emails.all()]
    lines = [
        "BEGIN:VCARD",
        "VERSION:4.0",
        f"PRODID:{PRODID}",
        f"FN:{_escape(contact.full_name or (emails[0] if emails else ''))}",
        f"N:{_escape(contact.last_name, True)};{_escape(contact.first_name, True)};;;",
    ]
    for index, address in enumerate(emails):
        lines.append(f"EMAIL{';PREF=1' if index == 0 and len(emails) > 1 else ''}:{_escape(address)}")
    phones = _phones_of(contact)
    for index, (number, kind) in enumerate(phones):
        pref = ";PREF=1" if index == 0 and len(phones) > 1 else ""
        kind_type = KIND_TYPES.get(kind, "voice")
        uri = TEL_URI.match(number)
        if uri:
            ext = f";ext={uri.group(2)}" if uri.group(2) else ""
            lines.append(f"TEL;VALUE=uri;TYPE={kind_type}{pref}:tel:{uri.group(1)}{ext}")
        else:
            lines.append(f"TEL;VALUE=text;TYPE={kind_type}{pref}:{_escape(number)}")
    if contact.title:
        lines.append(f"TITLE:{_escape(contact.title)}")
    if contact.account_id and contact.account:
        lines.append(f"ORG:{_escape(contact.account.name, True)}")
    lines.append("END:VCARD")
    return "".join(_fold(line) for line in lines)


def contact_vcard(contact: Contact, version: str = "3.0") -> str:
    """One contact as a vCard (CRLF line ends)."""
    if version not in VERSIONS:
        raise ValueError(f"vCard version {version!r}: use one of {', '.join(VERSIONS)}.")
    return _card_4(contact) if version == "4.0" else _card_3(contact)


def exportable_contacts(user: Any) -> QuerySet[Contact]:
    """The contacts `user` may see (None: every contact), ready for writing as cards."""
    qs = (
        Contact.objects.filter(deleted_at__isnull=True) if user is None else visibility.visible(user, Contact)
    )
    return qs.select_related("account").prefetch_related("emails", "phones").order_by("id")


def write_vcards(user: Any, version: str = "3.0", contacts: QuerySet[Contact] | None = None) -> Iterator[str]:
    """The cards of every contact `user` may see, one string each, without loading them all at once."""
    if version not in VERSIONS:
        raise ValueError(f"vCard version {version!r}: use one of {', '.join(VERSIONS)}.")
    qs = exportable_contacts(user) if contacts is None else contacts
    for contact in qs.iterator(chunk_size=500):
        yield contact_vcard(contact, version)
