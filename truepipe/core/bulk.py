"""Long runs of writes (an import, the capture of a large mailbox, the night's evaluation):
settings for their duration.

- `no_cyclic_gc()`: the cyclic garbage collector paused. Such a run allocates millions of small
  objects that hold no cycles, and every full collection walks all of them (a third of an
  import's time at a million rows, an eighth of a capture's).
- `big_cache()`: on SQLite, a large page cache for the run's connection, so its indexes stay in
  memory instead of being read back page by page.
- `copy_rows()`: on PostgreSQL, rows in by COPY, the fastest way in.
- `checkpoints_beside()`: on SQLite, the write-ahead log folded back into the database by a
  thread beside the run instead of inside its commits. A connection checkpoints (copies the
  log's pages into the database, then syncs the file) at the commit that takes the log past a
  thousand pages: for a run committing a batch every few hundred milliseconds, a sixth of the
  writer's time spent waiting on the disk (for the night, 2 s of 15). For the run, the writer's
  own checkpoints are off and a thread with its own connection checkpoints after each batch
  (each rule, for the night) and once more at the end (`PASSIVE`: it never blocks the writer,
  which goes on appending to the log); then the writer's setting is restored, also after an
  error.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def big_cache() -> Iterator[None]:
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    before = _pragma(connection.connection, "cache_size")
    _pragma(connection.connection, "cache_size", -1048576)  # 1 GiB, allocated only as pages are used
    try:
        yield
    finally:
        if connection.connection is not None:
            _pragma(connection.connection, "cache_size", before)


def copy_rows(target: str, rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: `rows` into `target` (a quoted table name, with its columns in parentheses
    unless all) by COPY: a multi-row INSERT spends longer in the driver, which finds every
    placeholder of a long statement, and single-row ones longer in round trips. The driver's errors
    become Django's (IntegrityError and the like), as through its cursor."""
    with (
        connection.wrap_database_errors,
        connection.cursor() as django_cursor,
        # The driver's own cursor: COPY is not part of the DB-API.
        django_cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _pragma(db: Any, name: str, value: int | None = None) -> int:
    """A SQLite connection setting, set first if `value` is given. On the driver's connection:
    a PRAGMA is no part of any transaction, and Django would refuse to run one inside an atomic
    block that already failed (the setting must come back all the same)."""
    if value is not None:
        db.execute(f"PRAGMA {name} = {int(value)}")
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


class Checkpointer:
    """Call `after_commit()` after each batch; a thread checkpoints the log when it can, and once
    more when closed (the last batch's pages, and a run of a single batch: an IMAP poll's group,
    a drop-box message)."""

    def __init__(self, path: str) -> None:
        # Opened here, so a database the thread cannot open is known before the writer stops
        # checkpointing (sqlite3.Error); used by the thread alone from then on.
        self._db = sqlite3.connect(path, timeout=20, check_same_thread=False, uri=True)
        self._wanted = threading.Event()
        self._stop = False
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._work, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def after_commit(self) -> None:
        self._wanted.set()

    def _work(self) -> None:
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:  # busy or locked: the next batch (or the close) asks again
                    pass
                if self._stop:
                    return
        finally:
            self._db.close()

    def close(self) -> None:
        self._stop = True
        self._wanted.set()
        self._thread.join()


@contextmanager
def checkpoints_beside(db: Any = None) -> Iterator[Checkpointer | None]:
    """On a SQLite database file, a `Checkpointer` for the run (else None: nothing to do).
    `db` is a Django connection, the default one unless given."""
    db = db or connection
    if db.vendor != "sqlite" or db.is_in_memory_db():
        yield None
        return
    db.ensure_connection()
    previous = _pragma(db.connection, "wal_autocheckpoint")
    try:
        checkpointer = Checkpointer(str(db.settings_dict["NAME"]))
    except sqlite3.Error:  # the writer goes on checkpointing in its commits, as without a run
        yield None
        return
    try:
        _pragma(db.connection, "wal_autocheckpoint", 0)
        yield checkpointer
    finally:
        checkpointer.close()
        if db.connection is not None:
            _pragma(db.connection, "wal_autocheckpoint", previous)
