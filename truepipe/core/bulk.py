"""Long runs of writes (an import, the capture of a large mailbox): settings for their duration.

- `no_cyclic_gc()`: the cyclic garbage collector paused. Such a run allocates millions of small
  objects that hold no cycles, and every full collection walks all of them (a third of an
  import's time at a million rows, an eighth of a capture's).
- `big_cache()`: on SQLite, a large page cache for the run's connection, so its indexes stay in
  memory instead of being read back page by page.
- `checkpoints_beside()`: on SQLite, the write-ahead log folded back into the database by a
  thread beside the run instead of inside its commits. A connection checkpoints (copies the
  log's pages into the database, then syncs the file) at the commit that takes the log past a
  thousand pages: for a run committing a batch every few hundred milliseconds, a sixth of the
  writer's time spent waiting on the disk. For the run, the writer's own checkpoints are off and
  a thread with its own connection checkpoints after each batch (`PASSIVE`: it never blocks the
  writer, which goes on appending to the log); at the end the writer's setting is restored.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute("PRAGMA cache_size = -1048576")  # 1 GiB, allocated only as pages are used
    try:
        yield
    finally:
        if connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = {int(before)}")


class Checkpointer:
    """Call `after_commit()` after each batch; a thread checkpoints the log when it can."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stop = False
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._work, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def after_commit(self) -> None:
        self._wanted.set()

    def _work(self) -> None:
        db = sqlite3.connect(self._path, timeout=20, check_same_thread=False)
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stop:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:  # busy or locked: the next batch asks again
                    continue
        finally:
            db.close()

    def close(self) -> None:
        self._stop = True
        self._wanted.set()
        self._thread.join()


@contextmanager
def checkpoints_beside() -> Iterator[Checkpointer | None]:
    """On a SQLite database file, a `Checkpointer` for the run (else None: nothing to do)."""
    path = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor != "sqlite" or not path or path == ":memory:" or "mode=memory" in path:
        yield None
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        (previous,) = cursor.fetchone()
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
    checkpointer = Checkpointer(path)
    try:
        yield checkpointer
    finally:
        checkpointer.close()
        if connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA wal_autocheckpoint = {int(previous)}")
