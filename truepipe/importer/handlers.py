"""One handler per kind: turn parsed rows into service calls and report what happened.

Every write goes through the service layer: opportunities through the batch path
pipeline.services.import_opportunities, the other kinds row by row through their create/update
services. Handlers never query per row: people, accounts, stages, products and external ids are
loaded once (lookups.py) and kept up to date as rows are created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib.auth import get_user_model

from truepipe.accounts import services as account_services
from truepipe.accounts.models import Account, Contact, ContactEmail
from truepipe.activities import services as activity_services
from truepipe.activities.models import Activity, ActivityKind, ActivitySource
from truepipe.core.errors import NotAllowed, ServiceError
from truepipe.core.models import Via
from truepipe.importer import parsing
from truepipe.importer.importing import ImportAborted, ImportOptions, Report
from truepipe.importer.lookups import Accounts, People, Products, Stages
from truepipe.people import services as people_services
from truepipe.people.models import Role
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Opportunity, Product

User = get_user_model()

# Reference fields whose parsed value depends only on the text (safe to memoise per import).
MEMO_FIELDS = frozenset({"owner", "account", "stage", "manager"})

# Our own primary keys, as `export` writes them for records that came from no other system.
TRUEPIPE = "truepipe"


class Handler:
    kind = ""
    external_kind = ""

    def __init__(self, report: Report, options: ImportOptions, columns: dict[str, str]):
        self.report = report
        self.options = options
        self.columns = columns  # field -> CSV header
        self.actor = options.actor
        self.seen: dict[tuple[str, str], int] = {}
        self.external_ids: dict[tuple[str, str], int] = {}
        self.new_links: list[tuple[str, str, int]] = []
        self.memo: dict[tuple[str, str], Any] = {}
        self.check_columns()

    # --- set-up -----------------------------------------------------------------------------------
    required_columns: tuple[tuple[str, ...], ...] = ()

    def check_columns(self) -> None:
        for alternatives in self.required_columns:
            if not any(name in self.columns for name in alternatives):
                wanted = " or ".join(alternatives)
                raise ImportAborted(
                    f"The file has no {wanted} column, which {self.kind} need. Columns found: "
                    f"{', '.join(self.report.header)}. Point one at it with --map COLUMN={alternatives[0]}."
                )

    def prepare(self) -> None:
        if self.external_kind and "external_id" in self.columns:
            self.external_ids = account_services.external_id_map(self.external_kind)

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        if self.new_links:
            account_services.link_external_ids(self.external_kind, self.new_links)

    # --- helpers ----------------------------------------------------------------------------------
    def reject(self, line: int, name: str | None, message: str, raw: list[str]) -> None:
        self.report.record_error(line, self.columns.get(name) if name else None, message, raw)

    def reject_service_error(self, line: int, exc: ServiceError, raw: list[str]) -> None:
        fields = {name: msg for name, msg in exc.fields.items() if name in self.columns}
        if not fields:
            self.reject(line, None, exc.message, raw)
        for name, message in fields.items():
            # A refusal explains itself best in full ("You may not give records to Owen Oak: ...").
            self.reject(line, name, exc.message if isinstance(exc, NotAllowed) else message, raw)

    def parse(
        self, line: int, cells: dict[str, str], raw: list[str], parsers: Mapping[str, Callable[[str], Any]]
    ) -> dict[str, Any] | None:
        """Typed values of the non-empty cells, or None after reporting every bad cell."""
        values: dict[str, Any] = {}
        ok = True
        memo = self.memo
        for name, text in cells.items():
            if not text or name in ("external_id", "external_system"):
                continue
            parser = parsers.get(name)
            if parser is None:
                values[name] = text
                continue
            if name in MEMO_FIELDS:
                # Owners, accounts and stages repeat on every row: resolve each distinct name once.
                found = memo.get((name, text))
                if found is not None:
                    values[name] = found
                    continue
            try:
                values[name] = parser(text)
            except ValueError as exc:
                self.reject(line, name, str(exc), raw)
                ok = False
                continue
            if name in MEMO_FIELDS:
                memo[(name, text)] = values[name]
        return values if ok else None

    def external(
        self, line: int, cells: dict[str, str], raw: list[str]
    ) -> tuple[bool, tuple[str, str] | None]:
        """(row is fine, (system, value) or None); rejects a row whose id appeared before."""
        value = cells.get("external_id", "")
        if not value:
            return True, None
        key = (cells.get("external_system") or self.report.system, value)
        if key in self.seen:
            self.reject(line, "external_id", f'"{value}" already appeared on line {self.seen[key]}', raw)
            return False, None
        self.seen[key] = line
        return True, key

    def existing_pk(self, key: tuple[str, str] | None) -> int | None:
        if key is None:
            return None
        if key[0] == TRUEPIPE:
            return int(key[1]) if key[1].isdigit() else -1
        return self.external_ids.get(key)

    def link(self, key: tuple[str, str] | None, pk: int) -> None:
        if key is not None and key[0] != TRUEPIPE and key not in self.external_ids:
            self.external_ids[key] = pk
            self.new_links.append((key[0], key[1], pk))

    def date(self, text: str):
        return parsing.parse_date(text, dayfirst=self.options.dayfirst)

    def datetime(self, text: str):
        return parsing.parse_datetime(text, dayfirst=self.options.dayfirst)


class OpportunityHandler(Handler):
    kind = "opportunities"
    external_kind = "opportunity"
    required_columns = (("owner",), ("stage",))

    def prepare(self) -> None:
        super().prepare()
        self.people = People()
        self.accounts = Accounts()
        try:
            self.stages = Stages(self.options.stage_map)
            self.products = Products(self.options.product_map)
        except ValueError as exc:
            raise ImportAborted(str(exc)) from None
        self.queue: list[tuple[int, list[str], pipeline_services.OpportunityImport]] = []
        self.created_accounts: list[str] = []
        self.parsers: dict[str, Callable[[str], Any]] = {
            "owner": self.people.resolve,
            "stage": self.stages.resolve,
            "account": self.account,
            "amount": parsing.parse_amount,
            "close_date": self.date,
            "next_step_date": self.date,
            "created_at": self.datetime,
            "probability": parsing.parse_percent,
        }
        self.unknown_products: dict[str, int] = {}

    def account(self, text: str) -> Account:
        found = self.accounts.find(text)
        if found is not None:
            return found
        if not self.options.create_accounts:
            raise ValueError(f'no account named "{text}"; import accounts first, or pass --create-accounts')
        created = account_services.create_account(self.actor, name=text, owner=None, via=Via.IMPORT)
        self.accounts.add(created)
        self.created_accounts.append(created.name)
        return created

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        values = self.parse(line, cells, raw, self.parsers)
        ok, key = self.external(line, cells, raw)
        if values is None or not ok:
            return
        pk = self.existing_pk(key)
        if pk == -1:
            self.reject(line, "external_id", f'"{cells["external_id"]}" is not a truepipe id', raw)
            return
        product = None
        product_name = values.pop("product", None)
        if product_name:
            product = self.products.find(product_name)
            if product is None:
                self.unknown_product(product_name, line)
        created_at = values.pop("created_at", None)
        if pk is None and not values.get("name"):
            account = values.get("account")
            parts = [getattr(account, "name", ""), product.name if product else product_name or ""]
            values["name"] = " – ".join(p for p in parts if p) or (
                key[1] if key else f"Imported deal, line {line}"
            )
            self.report.warn("no deal name: named after its account and product", line)
        external = key if key is not None and pk is None and key[0] != TRUEPIPE else None
        item = pipeline_services.OpportunityImport(values, pk, created_at, product, external)
        self.queue.append((line, raw, item))
        if len(self.queue) >= self.options.batch_size:
            self.flush()

    def unknown_product(self, name: str, line: int) -> None:
        suggestion = self.products.suggest(name)
        if suggestion:
            hint = f'did you mean "{suggestion}"? map it with --product-map "{name}={suggestion}"'
        elif self.products.names:
            hint = f"known products: {', '.join(self.products.names)}"
        else:
            hint = "the catalogue is empty: import products first"
        self.report.warn(
            f'product "{name}" is not in the catalogue, imported without a product line ({hint})', line
        )

    def flush(self) -> None:
        if not self.queue:
            return
        outcomes = pipeline_services.import_opportunities(self.actor, [item for _, _, item in self.queue])
        for (line, raw, item), outcome in zip(self.queue, outcomes, strict=True):
            if outcome.action == "invalid":
                assert outcome.error is not None
                self.reject_service_error(line, outcome.error, raw)
                continue
            setattr(self.report, outcome.action, getattr(self.report, outcome.action) + 1)
            if item.external is not None and outcome.pk is not None:
                self.external_ids[item.external] = outcome.pk
            if outcome.stage is not None:
                for name in outcome.missing:
                    self.report.warn(f"stage {outcome.stage.name} requires {name} (missing)", line)
        self.queue = []

    def finish(self) -> None:
        self.flush()
        super().finish()
        if self.created_accounts:
            names = ", ".join(self.created_accounts[:10]) + (", …" if len(self.created_accounts) > 10 else "")
            self.report.notes.append(
                f"Created {len(self.created_accounts)} accounts named in the file: {names}."
            )
        idle = list(
            User.objects.filter(profile__role=Role.REP, is_active=True)
            .exclude(pk__in=Opportunity.objects.filter(deleted_at__isnull=True).values("owner_id"))
            .order_by("username")
            .values_list("username", flat=True)
        )
        if idle:
            shown = ", ".join(idle[:10]) + (", …" if len(idle) > 10 else "")
            self.report.notes.append(f"{len(idle)} reps own no opportunity: {shown}.")


class AccountHandler(Handler):
    kind = "accounts"
    external_kind = "account"
    required_columns = (("name",),)

    def prepare(self) -> None:
        super().prepare()
        self.people = People()
        self.accounts = Accounts()
        self.rows: list[tuple[int, list[str], dict[str, Any], tuple[str, str] | None]] = []
        self.parsers = {"owner": self.people.resolve, "employees": parsing.parse_int}
        self.names_seen: dict[str, int] = {}
        self.file_names: set[str] = set()

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        values = self.parse(line, cells, raw, self.parsers)
        ok, key = self.external(line, cells, raw)
        if values is None or not ok:
            return
        name = values.get("name", "")
        if name:
            self.file_names.add(name.lower())
        if key is None and name:
            if name.lower() in self.names_seen:
                self.reject(
                    line, "name", f'"{name}" already appeared on line {self.names_seen[name.lower()]}', raw
                )
                return
            self.names_seen[name.lower()] = line
        self.rows.append((line, raw, values, key))

    def finish(self) -> None:
        # Parents may be later rows of the file, so they are checked first and set after all rows exist.
        valid = []
        for line, raw, values, key in self.rows:
            parent = values.get("parent")
            if parent and self.accounts.find(parent) is None and parent.lower() not in self.file_names:
                self.reject(line, "parent", f'no account named "{parent}" in truepipe or in this file', raw)
                continue
            valid.append((line, raw, values, key))
        placed: list[tuple[int, list[str], Account, str, bool]] = []
        for line, raw, values, key in valid:
            parent = values.pop("parent", None)
            domain = values.pop("domain", None)
            pk = self.existing_pk(key)
            try:
                existing = self._existing(pk, values.get("name"))
                if existing is None:
                    if "name" not in values:
                        self.reject(line, "name", "an account needs a name", raw)
                        continue
                    account = account_services.create_account(
                        self.actor, via=Via.IMPORT, domains=[domain] if domain else None, **values
                    )
                    self.report.created += 1
                    counted = True
                else:
                    account, counted = self._update(existing, values, domain)
            except ServiceError as exc:
                self.reject_service_error(line, exc, raw)
                continue
            except ValueError as exc:
                self.reject(line, "name", str(exc), raw)
                continue
            self.accounts.add(account)
            self.link(key, account.pk)
            placed.append((line, raw, account, parent or "", counted))
        for line, raw, account, parent_name, counted in placed:
            parent = self.accounts.find(parent_name) if parent_name else None
            if parent is None or account.parent_id == parent.pk:
                if not counted:
                    self.report.unchanged += 1
                continue
            try:
                account_services.update_account(self.actor, account, {"parent": parent}, via=Via.IMPORT)
            except ServiceError as exc:
                self.reject_service_error(line, exc, raw)
                continue
            if not counted:
                self.report.updated += 1
        super().finish()

    def _existing(self, pk: int | None, name: str | None) -> Account | None:
        if pk is not None:
            return Account.objects.filter(pk=pk, deleted_at__isnull=True).first()
        found = self.accounts.find(name) if name else None
        return Account.objects.get(pk=found.pk) if found is not None else None

    def _update(self, account: Account, values: dict[str, Any], domain: str | None) -> tuple[Account, bool]:
        """Apply the row; returns (account, counted?). Unchanged rows are counted after the parent pass."""
        changes = {name: value for name, value in values.items() if getattr(account, name) != value}
        if "owner" in changes and changes["owner"].pk == account.owner_id:
            changes.pop("owner")
        if domain:
            current = list(account.domains.values_list("domain", flat=True))
            if account_services.normalise_domain(domain) not in current:
                changes["domains"] = [*current, domain]
        if not changes:
            return account, False
        account = account_services.update_account(self.actor, account, changes, via=Via.IMPORT)
        self.report.updated += 1
        return account, True


class ContactHandler(Handler):
    kind = "contacts"
    external_kind = "contact"
    required_columns = (("first_name", "last_name", "full_name", "email"),)

    def prepare(self) -> None:
        super().prepare()
        self.people = People()
        self.accounts = Accounts()
        self.by_email = dict(ContactEmail.objects.values_list("email", "contact_id"))
        self.parsers = {"owner": self.people.resolve, "account": self.account, "email": parsing.split_list}

    def account(self, text: str) -> Account:
        found = self.accounts.find(text)
        if found is not None:
            return found
        if not self.options.create_accounts:
            raise ValueError(f'no account named "{text}"; import accounts first, or pass --create-accounts')
        created = account_services.create_account(self.actor, name=text, owner=None, via=Via.IMPORT)
        self.accounts.add(created)
        return created

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        values = self.parse(line, cells, raw, self.parsers)
        ok, key = self.external(line, cells, raw)
        if values is None or not ok:
            return
        full = values.pop("full_name", "")
        if full and not (values.get("first_name") or values.get("last_name")):
            first, _, last = full.partition(" ")
            values["first_name"], values["last_name"] = first, last
        emails = values.pop("email", None)
        try:
            if emails:
                emails = [account_services.normalise_email(e) for e in emails]
            pk = self.existing_pk(key)
            if pk is None and emails:
                pk = next((self.by_email[e] for e in emails if e in self.by_email), None)
            existing = Contact.objects.filter(pk=pk, deleted_at__isnull=True).first() if pk else None
            if existing is None:
                contact = account_services.create_contact(self.actor, via=Via.IMPORT, emails=emails, **values)
                self.report.created += 1
            else:
                contact = existing
                changes: dict[str, Any] = {
                    name: value
                    for name, value in values.items()
                    if (
                        getattr(contact, f"{name}_id")
                        if name in ("owner", "account")
                        else getattr(contact, name)
                    )
                    != (value.pk if name in ("owner", "account") else value)
                }
                current = list(contact.emails.values_list("email", flat=True))
                if emails and any(e not in current for e in emails):
                    changes["emails"] = list(dict.fromkeys([*current, *emails]))
                if changes:
                    account_services.update_contact(self.actor, contact, changes, via=Via.IMPORT)
                    self.report.updated += 1
                else:
                    self.report.unchanged += 1
        except ServiceError as exc:
            self.reject_service_error(line, exc, raw)
            return
        for email in emails or []:
            self.by_email[email] = contact.pk
        self.link(key, contact.pk)


_KIND_NAMES = {
    "call": ActivityKind.CALL,
    "logged call": ActivityKind.CALL,
    "phone call": ActivityKind.CALL,
    "email": ActivityKind.EMAIL,
    "e-mail": ActivityKind.EMAIL,
    "logged email": ActivityKind.EMAIL,
    "meeting": ActivityKind.MEETING,
    "event": ActivityKind.MEETING,
    "note": ActivityKind.NOTE,
    "task": ActivityKind.TASK,
    "to-do": ActivityKind.TASK,
    "todo": ActivityKind.TASK,
}


def parse_activity_kind(text: str) -> str:
    kind = _KIND_NAMES.get(text.strip().lower())
    if kind is None:
        raise ValueError(f'"{text}" is not an activity kind ({", ".join(ActivityKind.values)})')
    return kind


class ActivityHandler(Handler):
    kind = "activities"
    external_kind = "activity"
    required_columns = (("subject",), ("owner",), ("occurred_at",))

    def prepare(self) -> None:
        super().prepare()
        self.people = People()
        self.accounts = Accounts()
        self.deal_ids = account_services.external_id_map("opportunity")
        # An export names a deal by its external id whatever system it came from.
        self.deal_values: dict[str, int | None] = {}
        for (_, value), pk in self.deal_ids.items():
            self.deal_values[value] = None if value in self.deal_values else pk
        self.deal_names: dict[str, int | None] = {}
        for pk, name in Opportunity.objects.filter(deleted_at__isnull=True).values_list("pk", "name"):
            key = name.strip().lower()
            self.deal_names[key] = None if key in self.deal_names else pk
        self.contact_emails = dict(ContactEmail.objects.values_list("email", "contact_id"))
        self.parsers = {
            "owner": self.people.resolve,
            "account": self.account,
            "occurred_at": self.datetime,
            "logged_at": self.datetime,
            "kind": parse_activity_kind,
            "opportunity": self.opportunity,
            "participants": parsing.split_list,
        }
        self.system = self.report.system

    def account(self, text: str) -> Account:
        found = self.accounts.find(text)
        if found is None:
            raise ValueError(f'no account named "{text}"')
        return found

    def opportunity(self, text: str) -> Opportunity:
        pk = self.deal_ids.get((self.system, text)) or self.deal_values.get(text)
        if pk is None and text.isdigit() and self.system == TRUEPIPE:
            pk = int(text)
        if pk is None:
            key = text.strip().lower()
            if key in self.deal_names and self.deal_names[key] is None:
                raise ValueError(f'more than one opportunity is named "{text}"; use its external id')
            pk = self.deal_names.get(key)
        if pk is None:
            raise ValueError(f'no opportunity with the id or name "{text}"')
        return Opportunity(pk=pk)

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        self.system = cells.get("external_system") or self.report.system
        values = self.parse(line, cells, raw, self.parsers)
        ok, key = self.external(line, cells, raw)
        if values is None or not ok:
            return
        emails = values.pop("participants", [])
        participant_ids = []
        for email in emails:
            contact_id = self.contact_emails.get(email.lower())
            if contact_id is None:
                self.report.warn(f"participant {email} is not a contact: left out", line)
            else:
                participant_ids.append(contact_id)
        participants = list(Contact.objects.filter(pk__in=participant_ids)) if participant_ids else []
        logged_at = values.pop("logged_at", None) or values.get("occurred_at")
        if isinstance(values.get("opportunity"), Opportunity):
            values["opportunity"] = Opportunity.objects.select_related("account").get(
                pk=values["opportunity"].pk
            )
        pk = self.existing_pk(key)
        try:
            existing = Activity.objects.filter(pk=pk, deleted_at__isnull=True).first() if pk else None
            if existing is None:
                values.setdefault("kind", ActivityKind.NOTE)
                activity = activity_services.log_activity(
                    self.actor,
                    via=Via.IMPORT,
                    participants=participants or None,
                    logged_at=logged_at,
                    source=ActivitySource.IMPORT,
                    **values,
                )
                self.report.created += 1
            else:
                activity = existing
                changes = {
                    name: value
                    for name, value in values.items()
                    if (
                        getattr(activity, f"{name}_id") != value.pk
                        if name in ("owner", "account", "opportunity")
                        else getattr(activity, name) != value
                    )
                }
                current = set(activity.participants.values_list("pk", flat=True))
                new_participants = {c.pk for c in participants}
                if changes or (participants and new_participants != current):
                    activity_services.update_activity(
                        self.actor,
                        activity,
                        changes,
                        via=Via.IMPORT,
                        participants=participants if participants else None,
                    )
                    self.report.updated += 1
                else:
                    self.report.unchanged += 1
        except ServiceError as exc:
            self.reject_service_error(line, exc, raw)
            return
        self.link(key, activity.pk)


_ROLE_NAMES = (
    {value: value for value in Role.values}
    | {label.lower(): value for value, label in Role.choices}
    | {"sales rep": Role.REP, "representative": Role.REP, "sales manager": Role.MANAGER, "vp": Role.MANAGER}
)


def parse_role(text: str) -> str:
    role = _ROLE_NAMES.get(text.strip().lower())
    if role is None:
        raise ValueError(f'"{text}" is not a role ({", ".join(Role.values)})')
    return role


def derive_username(full_name: str, email: str) -> str:
    if email:
        return email.split("@")[0].lower()
    return re.sub(r"[^a-z0-9]+", ".", full_name.lower()).strip(".")


class UserHandler(Handler):
    kind = "users"
    external_kind = "user"
    required_columns = (("username", "email", "full_name", "first_name", "last_name"),)

    def prepare(self) -> None:
        super().prepare()
        self.people = People()
        self.rows: list[tuple[int, list[str], dict[str, Any], tuple[str, str] | None]] = []
        self.parsers = {"role": parse_role, "email": self.email}
        self.file_keys: dict[str, int] = {}

    def email(self, text: str) -> str:
        try:
            return account_services.normalise_email(text)
        except ServiceError as exc:
            raise ValueError(exc.message) from None

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        values = self.parse(line, cells, raw, self.parsers)
        ok, key = self.external(line, cells, raw)
        if values is None or not ok:
            return
        first, last = values.pop("first_name", ""), values.pop("last_name", "")
        if not values.get("full_name") and (first or last):
            values["full_name"] = f"{first} {last}".strip()
        if not values.get("username"):
            values["username"] = derive_username(values.get("full_name", ""), values.get("email", ""))
            if not values["username"]:
                self.reject(line, None, "a person needs a username, an e-mail or a name", raw)
                return
        username = values["username"].lower()
        if username in self.file_keys:
            self.reject(
                line, "username", f'"{username}" already appeared on line {self.file_keys[username]}', raw
            )
            return
        for name in ("username", "email", "full_name"):
            if values.get(name):
                self.file_keys.setdefault(values[name].lower(), line)
        self.rows.append((line, raw, values, key))

    def finish(self) -> None:
        valid = []
        missing_managers: dict[str, tuple[int, str]] = {}
        for line, raw, values, key in self.rows:
            manager = values.get("manager")
            if manager and manager.lower() not in self.file_keys:
                try:
                    found = self.people.find(manager)
                except ValueError as exc:
                    self.reject(line, "manager", str(exc), raw)
                    continue
                if found is None:
                    if not self.options.create_managers:
                        self.reject(
                            line,
                            "manager",
                            f'no person "{manager}" in truepipe or in this file; add them as a row, '
                            "or pass --create-managers to create them with the manager role",
                            raw,
                        )
                        continue
                    missing_managers.setdefault(manager.lower(), (line, manager))
            valid.append((line, raw, values, key))
        placed = []
        for line, raw, values, key in valid:
            try:
                user, counted = self._write(values, key)
            except ServiceError as exc:
                self.reject_service_error(line, exc, raw)
                continue
            self.people.add(user)
            self.link(key, user.pk)
            placed.append((line, raw, user, values.get("manager"), counted))
        for lower, (line, name) in missing_managers.items():
            if self.people.find(lower) is None:
                team = next(
                    (v.get("team") for _, _, v, _ in valid if (v.get("manager") or "").lower() == lower), None
                )
                username = derive_username(name, "")
                manager = people_services.create_person(
                    self.actor, username=username, full_name=name, role=Role.MANAGER, team=team
                )
                self.people.add(manager)
                self.report.warn(
                    f'manager "{name}" was not a row of the file: created with the manager role', line
                )
                self.report.created += 1
        for line, raw, user, manager_name, counted in placed:
            manager = self.people.find(manager_name) if manager_name else None
            if manager is None or user.profile.manager_id == manager.pk:
                if not counted:
                    self.report.unchanged += 1
                continue
            try:
                # Fresh from the database: an earlier row may have moved the manager (and their path).
                manager = User.objects.select_related("profile").get(pk=manager.pk)
                people_services.set_manager(self.actor, user, manager)
            except ServiceError as exc:
                self.reject_service_error(line, exc, raw)
                continue
            if not counted:
                self.report.updated += 1
        super().finish()

    def _write(self, values: dict[str, Any], key: tuple[str, str] | None) -> tuple[Any, bool]:
        pk = self.existing_pk(key)
        user = None
        if pk is not None:
            user = User.objects.select_related("profile", "profile__team").filter(pk=pk).first()
        if user is None:
            user = (
                User.objects.select_related("profile", "profile__team")
                .filter(username__iexact=values["username"])
                .first()
            )
        fields = {
            name: values[name] for name in ("email", "full_name", "role", "team", "title") if name in values
        }
        if user is None:
            user = people_services.create_person(self.actor, username=values["username"], **fields)
            self.report.created += 1
            return user, True
        profile = user.profile
        current = {
            "email": user.email,
            "full_name": f"{user.first_name} {user.last_name}".strip(),
            "role": profile.role,
            "team": profile.team.name if profile.team else "",
            "title": profile.title,
        }
        changes: dict[str, Any] = {name: value for name, value in fields.items() if current[name] != value}
        if not changes:
            return user, False
        people_services.update_person(self.actor, user, changes)
        self.report.updated += 1
        return user, True


class ProductHandler(Handler):
    kind = "products"
    required_columns = (("name",),)

    def prepare(self) -> None:
        self.products = {p.name.lower(): p for p in Product.objects.all()}
        self.parsers = {"list_price": parsing.parse_amount}

    def row(self, line: int, cells: dict[str, str], raw: list[str]) -> None:
        values = self.parse(line, cells, raw, self.parsers)
        if values is None:
            return
        if not values.get("name"):
            self.reject(line, "name", "a product needs a name", raw)
            return
        existing = self.products.get(values["name"].lower())
        try:
            if existing is None:
                self.products[values["name"].lower()] = pipeline_services.create_product(self.actor, **values)
                self.report.created += 1
                return
            changes = {k: v for k, v in values.items() if k != "name" and getattr(existing, k) != v}
            if changes:
                pipeline_services.update_product(self.actor, existing, changes)
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        except ServiceError as exc:
            self.reject_service_error(line, exc, raw)

    def finish(self) -> None:
        pass


HANDLERS: dict[str, type[Handler]] = {
    "opportunities": OpportunityHandler,
    "accounts": AccountHandler,
    "contacts": ContactHandler,
    "activities": ActivityHandler,
    "users": UserHandler,
    "products": ProductHandler,
}
