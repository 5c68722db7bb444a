"""`truepipe import contracts PATH`: finance's signed contracts or invoices, matched to won deals.

Columns (after normalising case, spaces and underscores; `--map "Column=field"` for others):

- customer (required): Customer, Account, Client, Customer Name, Account Name, Company;
- amount (required): Amount, Total, Value, Contract Value, Invoice Total;
- date (required, the signature or invoice date): Date, Signed, Signed On, Signed Date,
  Signature Date, Invoice Date, Contract Date;
- reference: Reference, Ref, Contract, Contract Number, Invoice, Invoice Number, Invoice No;
- currency (default USD): Currency.

Like every import: one transaction; a bad row is reported with its line number and nothing is
written unless `--skip-bad`; `--dry-run` does everything (matching included) and rolls back;
`--reject-file` writes the bad rows with an error column. A reference already imported is
updated, never duplicated; a row without reference is the same contract as an earlier
reference-less one with the same customer (case-insensitive), amount, currency and date.

Each new contract is matched to a won deal (contracts.services). Each new unmatched one is an
*unlogged win*: the rep, their manager and delivery are told at once (the admins when nobody is
accountable) and the `unlogged_win` rule is evaluated, all before the command returns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from truepipe.contracts import services
from truepipe.contracts.models import Contract
from truepipe.core.visibility import role_of
from truepipe.importer.formats import normalise
from truepipe.importer.importing import (
    ImportAborted,
    Report,
    _open,
    assign_columns,
    read_header,
    write_rejects,
)
from truepipe.importer.parsing import parse_amount, parse_date
from truepipe.people.models import Role

FIELDS = ("customer", "amount", "currency", "date", "reference")
REQUIRED = ("customer", "amount", "date")
ALIASES: dict[str, str] = {
    "customer": "customer",
    "customer name": "customer",
    "account": "customer",
    "account name": "customer",
    "client": "customer",
    "client name": "customer",
    "company": "customer",
    "amount": "amount",
    "total": "amount",
    "value": "amount",
    "contract value": "amount",
    "invoice total": "amount",
    "date": "date",
    "signed": "date",
    "signed on": "date",
    "signed date": "date",
    "signed_on": "date",
    "signature date": "date",
    "invoice date": "date",
    "contract date": "date",
    "reference": "reference",
    "ref": "reference",
    "contract": "reference",
    "contract number": "reference",
    "contract no": "reference",
    "invoice": "reference",
    "invoice number": "reference",
    "invoice no": "reference",
    "currency": "currency",
}


class _Rollback(Exception):
    pass


@dataclass
class Outcome:
    """What the import did beyond the counts: matches, unlogged wins, who was told."""

    report: Report
    matched: list[Contract] = field(default_factory=list)
    unlogged: list[Contract] = field(default_factory=list)
    nobody: list[Contract] = field(default_factory=list)  # unlogged, with no accountable rep
    notified: int = 0
    opened: int = 0


@dataclass
class _Row:
    line: int
    customer: str
    amount: Decimal
    currency: str
    signed_on: Any
    reference: str


def _pairs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source.strip():
            raise ImportAborted(f'--map takes COLUMN=field (for example --map "Net=amount"), not {value!r}.')
        out[normalise(source)] = target.strip()
    return out


def resolve_columns(header: list[str], mapping: dict[str, str], report: Report) -> list[tuple[int, str]]:
    """[(column index, field)]; fills report.columns and report.ignored."""
    for target in mapping.values():
        if target and (target if target != "signed_on" else "date") not in FIELDS:
            raise ImportAborted(
                f'--map targets "{target}", which is not a field of contracts. Fields: {", ".join(FIELDS)}.'
            )
    missing = set(mapping) - {normalise(h) for h in header}
    if missing:
        raise ImportAborted(
            f"--map names column(s) the file does not have: {', '.join(sorted(missing))}. "
            f"The file's columns are: {', '.join(header)}."
        )

    def field_of(name: str) -> str:
        key = normalise(name)
        target = mapping[key] if key in mapping else ALIASES.get(key, "")
        return "date" if target == "signed_on" else target

    used = assign_columns(header, field_of, report)
    taken = {target: name for name, target in report.columns.items()}
    absent = [f for f in REQUIRED if f not in taken]
    if absent:
        raise ImportAborted(
            f"The file has no {' or '.join(absent)} column. Columns: {', '.join(header)}. "
            f"Name them (customer, amount, date) or map them with --map COLUMN=field."
        )
    return used


def _parse(line: int, cells: dict[str, str], raw: list[str], report: Report, dayfirst: bool) -> _Row | None:
    columns = {f: c for c, f in report.columns.items()}
    errors = 0

    def bad(name: str, message: str) -> None:
        nonlocal errors
        errors += 1
        report.record_error(line, columns.get(name), message, raw)

    customer = cells.get("customer", "")
    if not customer:
        bad("customer", "no customer")
    elif len(customer) > 200:
        bad("customer", "longer than 200 characters")
    amount = Decimal(0)
    try:
        amount = parse_amount(cells.get("amount", ""))
        if amount <= 0:
            bad("amount", f'"{cells["amount"]}" is not a positive amount')
        elif amount >= Decimal("1e14"):
            bad("amount", f'"{cells["amount"]}" is too large')
        amount = amount.quantize(Decimal("0.01"))
    except ValueError as exc:
        bad("amount", str(exc) if cells.get("amount") else "no amount")
    signed_on = None
    try:
        signed_on = parse_date(cells.get("date", ""), dayfirst=dayfirst)
    except ValueError as exc:
        bad("date", str(exc) if cells.get("date") else "no date")
    currency = (cells.get("currency") or "USD").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        bad("currency", f'"{cells.get("currency")}" is not a three-letter currency code')
    reference = cells.get("reference", "")
    if len(reference) > 120:
        bad("reference", "longer than 120 characters")
    if errors:
        return None
    return _Row(line, customer, amount, currency, signed_on, reference)


def run(path: str | Path, options: dict[str, Any], actor: Any = None, now: Any = None) -> Outcome:
    """Import one file (see the module docstring). Raises ImportAborted for file-level problems.

    `now` is the moment of the import (default: now; the demo passes its own back-filled now)."""
    dry_run = bool(options.get("dry_run"))
    report = Report(kind="contracts", dry_run=dry_run)
    outcome = Outcome(report)
    handle, _total = _open(path, options.get("encoding") or "utf-8-sig")
    try:
        handle, reader, header = read_header(handle, options.get("delimiter"))
        report.header = header
        columns = resolve_columns(header, _pairs(options.get("map") or []), report)
        parsed: list[_Row] = []
        seen: dict[str, int] = {}
        line = 1
        try:
            for raw in reader:
                start, line = line + 1, reader.line_num
                if not "".join(raw).strip():
                    continue
                cells = {f: (raw[i].strip() if i < len(raw) else "") for i, f in columns}
                row = _parse(start, cells, raw, report, bool(options.get("dayfirst")))
                if row is None:
                    continue
                if row.reference and row.reference in seen:
                    report.record_error(
                        start,
                        next((c for c, f in report.columns.items() if f == "reference"), None),
                        f'reference "{row.reference}" is also on line {seen[row.reference]}',
                        raw,
                    )
                    continue
                if row.reference:
                    seen[row.reference] = start
                parsed.append(row)
        except csv.Error as exc:
            raise ImportAborted(f"line {reader.line_num}: the CSV is malformed ({exc}).") from None
        except UnicodeDecodeError:
            raise ImportAborted(
                f"line {line + 1}: the file is not {options.get('encoding') or 'UTF-8'} text; "
                "pass --encoding latin-1 (or the file's encoding)."
            ) from None
    finally:
        handle.close()
    try:
        with transaction.atomic():
            now = now or timezone.now()
            fresh = _store(parsed, report, actor, str(path), now)
            rules = services.match_rules()
            outcome.matched = services.match(fresh, rules, now=now)
            unmatched = [c for c in fresh if c.opportunity_id is None]
            services.assign_reps(unmatched, now=now)
            outcome.unlogged = unmatched
            outcome.nobody = [c for c in unmatched if c.rep_id is None]
            if report.errors and not options.get("skip_bad"):
                raise _Rollback
            if dry_run:
                raise _Rollback
            outcome.notified = len(services.announce(unmatched, now=now))
            outcome.opened, _ = services.evaluate_wins(as_of=now)
            report.committed = True
    except _Rollback:
        pass
    if options.get("reject_file") and report.bad_rows:
        write_rejects(report, Path(options["reject_file"]))
    if report.committed and outcome.notified:
        send_now()  # the e-mails and webhooks go now, not at the worker's next minute
    return outcome


def send_now(wait: float = 10.0) -> None:
    """Send the import's notifications now, not at the worker's next minute (waiting for a flush
    already running, which may have read the outbox before this import committed)."""
    from truepipe.notify.send import flush

    flush(wait=wait)


def _store(rows: list[_Row], report: Report, actor: Any, source: str, now: Any = None) -> list[Contract]:
    """Write the rows: new contracts created, known ones (same reference, or the same reference-less
    contract) updated when they changed. Returns the contracts to match: new ones and changed
    unmatched ones."""
    references = {r.reference for r in rows if r.reference}
    known = {c.reference: c for c in Contract.objects.filter(reference__in=references)} if references else {}
    unreferenced = {
        (c.customer.lower(), c.amount, c.currency, c.signed_on): c
        for c in Contract.objects.filter(
            reference="", signed_on__in={r.signed_on for r in rows if not r.reference}
        )
    }
    accounts = services.resolve_accounts(r.customer for r in rows)
    now = now or timezone.now()
    out: list[Contract] = []
    for row in rows:
        existing = (
            known.get(row.reference)
            if row.reference
            else unreferenced.get((row.customer.lower(), row.amount, row.currency, row.signed_on))
        )
        account = accounts.get(row.customer)
        if existing is None:
            contract = Contract.objects.create(
                customer=row.customer,
                account=account,
                amount=row.amount,
                currency=row.currency,
                signed_on=row.signed_on,
                reference=row.reference,
                imported_at=now,
                imported_by=actor,
                source=Path(source).name[:255],
            )
            if not row.reference:
                unreferenced[(row.customer.lower(), row.amount, row.currency, row.signed_on)] = contract
            report.created += 1
            out.append(contract)
            continue
        values = {
            "customer": row.customer,
            "amount": row.amount,
            "currency": row.currency,
            "signed_on": row.signed_on,
        }
        if existing.account_id is None and account is not None:
            values["account"] = account
        if existing.customer.lower() == row.customer.lower():
            del values["customer"]  # a change of case is the same customer
        changed = [name for name, value in values.items() if getattr(existing, name) != value]
        if not changed:
            report.unchanged += 1
            continue
        for name in changed:
            setattr(existing, name, values[name])
        existing.save(update_fields=changed)
        report.updated += 1
        if existing.opportunity_id is None:
            out.append(existing)
    return out


# ---------------------------------------------------------------- the command


def _actor(options: dict[str, Any]) -> Any:
    username = options.get("as_user")
    if not username:
        return None
    actor = get_user_model().objects.filter(username=username).first()
    if actor is None:
        raise CommandError(f"No user {username!r}.")
    if role_of(actor) != Role.ADMIN:
        raise CommandError(f"{username} cannot import contracts: only an admin (or the system) can.")
    return actor


def _who(contract: Contract) -> str:
    rep = contract.rep
    return f"{rep.get_full_name() or rep.username} ({contract.rep_basis})" if rep else "nobody"


def import_contracts(paths: list[str], options: dict[str, Any], stdout: Any, stderr: Any) -> int:
    """The `truepipe import contracts PATH` handler (importer.registry): exit code 0 or 1."""
    if len(paths) != 1:
        raise CommandError("Import contracts from one CSV file at a time.")
    actor = _actor(options)
    try:
        outcome = run(paths[0], options, actor)
    except ImportAborted as exc:
        raise CommandError(str(exc)) from None
    report = outcome.report
    mapped = ", ".join(f'"{header}"→{name}' for header, name in report.columns.items())
    stderr.write(f"Columns: {mapped}.")
    if report.ignored:
        stderr.write(f"Ignored columns (use --map COLUMN=field to use one): {', '.join(report.ignored)}.")
    shown = options.get("show_errors", 100) or len(report.errors)
    if report.errors:
        stderr.write(f"Errors ({len(report.errors)} in {report.rejected} rows):")
        for error in report.errors[:shown]:
            stderr.write(f"  {error}")
        if len(report.errors) > shown:
            stderr.write(f"  … and {len(report.errors) - shown} more (--show-errors 0 lists all).")
    if options.get("reject_file") and report.bad_rows:
        stderr.write(f"Bad rows written to {options['reject_file']}.")
    written = report.committed or report.dry_run
    if written:
        verb = "would match" if report.dry_run else "matched"
        for contract in outcome.matched:
            stdout.write(f"  {verb}: {contract} → {contract.match_note}")
        for contract in outcome.unlogged:
            stdout.write(
                f"  unlogged win: {contract.customer}, {contract.amount} {contract.currency} signed "
                f"{contract.signed_on}{f' ({contract.reference})' if contract.reference else ''}: "
                f"accountable {_who(contract)}"
            )
        for contract in outcome.nobody:
            stderr.write(
                f"No accountable rep for {contract.customer} ({contract.signed_on}): no account owner, "
                "no captured touches; "
                + ("the admins would be told." if report.dry_run else "the admins were told.")
            )
    stdout.write(report.summary())
    if written:
        tail = (
            f"{len(outcome.matched)} matched to won deals, {len(outcome.unlogged)} unlogged win"
            f"{'s' if len(outcome.unlogged) != 1 else ''}"
        )
        if report.committed:
            opened = f"{outcome.opened} violation{'s' if outcome.opened != 1 else ''} opened"
            tail += f" (announced {outcome.notified}; {opened})"
        stdout.write(tail + ".")
    accepted = report.committed or (report.dry_run and options.get("skip_bad"))
    return 1 if report.errors and not accepted else 0
