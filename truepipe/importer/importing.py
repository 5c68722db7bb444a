"""CSV import: read a file, map its columns, parse and resolve each row, write through the services.

The whole import is one transaction. Rows are checked as they are read and written in batches;
at the end, if any row was bad (and --skip-bad was not given) or it is a dry run, the transaction
is rolled back, so the database is either fully imported or untouched, also on a crash or Ctrl-C.

Each kind has a handler (handlers.py) that turns a row into service calls; this module owns the
file, the column mapping, the transaction, the report and the reject file.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.db import transaction
from tqdm import tqdm

from truepipe.core.bulk import big_cache, no_cyclic_gc
from truepipe.importer import formats


class ImportAborted(Exception):
    """The file cannot be imported at all (unreadable, unusable columns, bad options)."""


class _Rollback(Exception):
    """Raised inside the transaction to undo it (dry run, or bad rows without --skip-bad)."""


@dataclass
class ImportOptions:
    mapping: dict[str, str] = field(default_factory=dict)  # CSV column -> field ("" to ignore it)
    system: str | None = None
    dry_run: bool = False
    skip_bad: bool = False
    reject_file: Path | None = None
    dayfirst: bool = False
    stage_map: dict[str, str] = field(default_factory=dict)
    product_map: dict[str, str] = field(default_factory=dict)
    create_accounts: bool = False
    create_managers: bool = False
    batch_size: int = 2000
    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    progress: bool = True
    actor: Any = None  # None: the system (an operator at the command line), with full rights


@dataclass
class RowError:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f', column "{self.column}"' if self.column else ""
        return f"line {self.line}{where}: {self.message}"


@dataclass
class Report:
    kind: str
    system: str = "csv"
    recognised: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # CSV header -> field
    ignored: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: dict[str, list[int]] = field(default_factory=dict)  # message -> lines
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    committed: bool = False
    # line -> (original cells, messages), for the reject file.
    bad_rows: dict[int, tuple[list[str], list[str]]] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.bad_rows)

    @property
    def warning_count(self) -> int:
        return sum(len(lines) for lines in self.warnings.values())

    def warn(self, message: str, line: int) -> None:
        self.warnings.setdefault(message, []).append(line)

    def warning_lines(self) -> list[str]:
        """One line per kind of flaw, most frequent first: '412 rows: stage Lost requires ...'."""
        out = []
        for message, lines in sorted(self.warnings.items(), key=lambda item: (-len(item[1]), item[0])):
            sample = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
            rows = "1 row" if len(lines) == 1 else f"{len(lines)} rows"
            out.append(f"{rows}: {message} (line{'s' if len(lines) > 1 else ''} {sample})")
        return out

    def error_groups(self) -> list[str]:
        """Errors grouped by column and message, for files with many bad rows of the same kind."""
        groups: dict[tuple[str | None, str], int] = {}
        for error in self.errors:
            groups[(error.column, error.message)] = groups.get((error.column, error.message), 0) + 1
        out = []
        for (column, message), count in sorted(groups.items(), key=lambda item: -item[1]):
            where = f'column "{column}": ' if column else ""
            out.append(f"{count} row{'s' if count > 1 else ''}: {where}{message}")
        return out

    def summary(self) -> str:
        verb = "would be" if self.dry_run or not self.committed else "were"
        counts = (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {self.rejected}, warnings {self.warning_count}"
        )
        if self.dry_run:
            head = f"Dry run of {self.kind} import: nothing was written. Rows that {verb} imported: {counts}."
        elif self.committed:
            head = f"Imported {self.kind}: {counts}."
        else:
            head = (
                f"Nothing was imported: {self.rejected} row{'s' if self.rejected != 1 else ''} of the "
                f"{self.kind} file {'have' if self.rejected != 1 else 'has'} errors. Fix them, or pass "
                f"--skip-bad --reject-file bad.csv to import the good rows and set the bad ones aside. "
                f"({counts}.)"
            )
        return head

    def record_error(self, line: int, column: str | None, message: str, raw: list[str]) -> None:
        self.errors.append(RowError(line, column, message))
        cells, messages = self.bad_rows.setdefault(line, (raw, []))
        messages.append(f"{column}: {message}" if column else message)


def _open(source: str | Path | TextIO, encoding: str) -> tuple[TextIO, int | None]:
    """The text stream and, for a file, its number of lines (for the progress bar)."""
    if not isinstance(source, str | Path):
        return source, None
    path = Path(source)
    try:
        with path.open("rb") as raw:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(1 << 20), b""))
        handle = path.open(encoding=encoding, newline="")
        handle.read(4096)
        handle.seek(0)
    except FileNotFoundError:
        raise ImportAborted(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise ImportAborted(f"{path} is a directory, not a CSV file.") from None
    except UnicodeDecodeError:
        name = "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf-8", "utf8") else encoding
        raise ImportAborted(
            f"{path} is not {name} text; pass its encoding, e.g. --encoding latin-1 or cp1252."
        ) from None
    except OSError as exc:
        raise ImportAborted(f"{path} cannot be read: {exc.strerror or exc}.") from None
    return handle, total


def _dialect(handle: TextIO, delimiter: str | None) -> tuple[type[csv.Dialect] | csv.Dialect, TextIO]:
    if delimiter:

        class Chosen(csv.excel):
            pass

        Chosen.delimiter = delimiter
        return Chosen, handle
    sample = handle.read(65536)
    if hasattr(handle, "seek") and handle.seekable():
        handle.seek(0)
        rest: TextIO = handle
    else:
        rest = io.StringIO(sample + handle.read())
    first_line = sample.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])

    class Sniffed(csv.excel):
        pass

    Sniffed.delimiter = best if counts[best] else ","
    return Sniffed, rest


def read_header(handle: TextIO, delimiter: str | None) -> tuple[TextIO, Any, list[str]]:
    """(handle, csv reader, header row) with the delimiter guessed unless given; an empty file or an
    unreadable header is refused. Shared by every CSV import (also contracts)."""
    dialect, handle = _dialect(handle, delimiter)
    reader = csv.reader(handle, dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportAborted("The file is empty: it needs a header row and at least one data row.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportAborted(f"The header row cannot be read: {exc}.") from None
    return handle, reader, header


def assign_columns(header: list[str], field_of, report) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """[(column index, field)] with `field_of(column name)` ("" or None: not used); two columns
    meaning one field are refused. Fills report.columns and report.ignored. Shared by every CSV
    import (also contracts)."""
    used: list[tuple[int, str]] = []
    taken: dict[str, str] = {}
    for index, name in enumerate(header):
        target = field_of(name)
        if not target:
            if name.strip():
                report.ignored.append(name)
            continue
        if target in taken:
            raise ImportAborted(
                f'Columns "{taken[target]}" and "{name}" both mean {target}; '
                f'ignore one with --map "{name}=" or map it elsewhere.'
            )
        taken[target] = name
        report.columns[name] = target
        used.append((index, target))
    return used


def resolve_columns(
    kind: str, header: list[str], options: ImportOptions, report: Report
) -> list[tuple[int, str]]:
    """[(column index, field)] for the columns this import uses; fills report.columns/ignored."""
    recognised = formats.recognise(kind, header)
    report.recognised = recognised
    mapping = {formats.normalise(k): v.strip() for k, v in options.mapping.items()}
    known = set(formats.FIELDS[kind])
    for wanted in mapping.values():
        if wanted and wanted not in known:
            raise ImportAborted(
                f'--map targets "{wanted}", which is not a field of {kind}. '
                f"Fields: {', '.join(formats.FIELDS[kind])}."
            )
    unknown_sources = set(mapping) - {formats.normalise(h) for h in header}
    if unknown_sources:
        raise ImportAborted(
            f"--map names column(s) the file does not have: {', '.join(sorted(unknown_sources))}. "
            f"The file's columns are: {', '.join(header)}."
        )
    used = assign_columns(
        header,
        lambda name: (
            mapping[formats.normalise(name)]
            if formats.normalise(name) in mapping
            else formats.field_for(kind, name, recognised)
        ),
        report,
    )
    if not used:
        raise ImportAborted(
            f"No column of this file is a field of {kind}. Columns: {', '.join(header)}. "
            f"Fields: {', '.join(formats.FIELDS[kind])}. Map them with --map COLUMN=field."
        )
    return used


@contextmanager
def _progress(total: int | None, enabled: bool, kind: str) -> Iterator[tqdm]:
    bar = tqdm(
        total=total,
        file=sys.stderr,
        disable=not enabled,
        unit=" rows",
        desc=f"import {kind}",
        mininterval=0.5,
    )
    try:
        yield bar
    finally:
        bar.close()


def run_import(kind: str, source: str | Path | TextIO, options: ImportOptions | None = None) -> Report:
    """Import one CSV file of `kind`. Raises ImportAborted for file-level problems."""
    from truepipe.importer.handlers import HANDLERS

    options = options or ImportOptions()
    if kind not in HANDLERS:
        raise ImportAborted(f"Unknown kind {kind!r}: use one of {', '.join(HANDLERS)}.")
    report = Report(kind=kind, dry_run=options.dry_run)
    handle, total = _open(source, options.encoding)
    try:
        handle, reader, header = read_header(handle, options.delimiter)
        report.header = header
        columns = resolve_columns(kind, header, options, report)
        report.system = options.system or report.recognised or "csv"
        handler = HANDLERS[kind](report, options, {f: header[i] for i, f in columns})
        try:
            with transaction.atomic(), big_cache(), no_cyclic_gc():
                handler.prepare()
                with _progress(total - 1 if total else None, options.progress, kind) as bar:
                    line = 1
                    pending = 0
                    try:
                        for raw in reader:
                            start, line = line + 1, reader.line_num
                            pending += 1
                            if pending >= 1000:
                                bar.update(pending)
                                pending = 0
                            if not "".join(raw).strip():
                                continue
                            width = len(raw)
                            cells = {f: (raw[i].strip() if i < width else "") for i, f in columns}
                            handler.row(start, cells, raw)
                    except csv.Error as exc:
                        raise ImportAborted(
                            f"line {reader.line_num}: the CSV is malformed ({exc})."
                        ) from None
                    except UnicodeDecodeError:
                        raise ImportAborted(
                            f"line {line + 1}: the file is not {options.encoding} text; "
                            "pass --encoding latin-1 (or the file's encoding)."
                        ) from None
                    handler.finish()
                    bar.update(pending)
                if report.errors and not options.skip_bad:
                    raise _Rollback
                if options.dry_run:
                    raise _Rollback
                report.committed = True
        except _Rollback:
            pass
    finally:
        if isinstance(source, str | Path):
            handle.close()
    if options.reject_file is not None and report.bad_rows:
        write_rejects(report, options.reject_file)
    return report


def write_rejects(report: Report, path: Path) -> None:
    """The bad rows as they were, plus an `error` column saying what is wrong with each."""
    with Path(path).open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*report.header, "error"])
        for line in sorted(report.bad_rows):
            cells, messages = report.bad_rows[line]
            padded = list(cells) + [""] * (len(report.header) - len(cells))
            writer.writerow([*padded, f"line {line}: " + "; ".join(messages)])
