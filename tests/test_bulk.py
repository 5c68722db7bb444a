"""Long runs of writes: SQLite's log folded back beside the writer, the collector paused."""

from __future__ import annotations

import gc
import sqlite3
import time
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

from truepipe.core.bulk import Checkpointer, big_cache, checkpoints_beside, copy_rows, no_cyclic_gc

BATCH_BYTES = 200 * 3000


def write_batches(path: str, checkpointer: Checkpointer | None) -> tuple[list[int], int]:
    """Five batches by a writer that never checkpoints itself; (rows it read after each, log size)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE mail (id INTEGER PRIMARY KEY, body TEXT)")
    counts = []
    for _ in range(5):
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany("INSERT INTO mail (body) VALUES (?)", [("x" * 3000,)] * 200)
        writer.execute("COMMIT")
        counts.append(writer.execute("SELECT COUNT(*) FROM mail").fetchone()[0])
        if checkpointer is not None:
            done = checkpointer.checkpoints
            checkpointer.after_commit()
            deadline = time.monotonic() + 10
            while checkpointer.checkpoints == done and time.monotonic() < deadline:
                time.sleep(0.005)
    size = Path(path + "-wal").stat().st_size
    writer.close()
    return counts, size


def test_the_checkpointer_keeps_the_log_the_size_of_a_batch_where_it_would_grow_with_each(tmp_path):
    """The same five batches by a writer that never checkpoints itself, with and without it."""
    without_counts, without_log = write_batches(str(tmp_path / "alone.sqlite3"), None)
    path = str(tmp_path / "capture.sqlite3")
    checkpointer = Checkpointer(path)
    counts, log_size = write_batches(path, checkpointer)
    checkpointer.close()
    assert counts == without_counts == [200, 400, 600, 800, 1000]  # it reads its own writes throughout
    assert checkpointer.checkpoints == 6  # after each of the five batches, and at the close
    # Each batch after a complete checkpoint starts the log over instead of appending to it.
    assert without_log > 5 * BATCH_BYTES
    assert log_size < 2 * BATCH_BYTES
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM mail").fetchone() == (1000,)
    reader.close()


@pytest.fixture
def file_database(tmp_path, django_db_blocker):
    """A second Django connection, to a SQLite file with a write-ahead log (the tests' own database
    is in memory, or PostgreSQL), registered as "capture_file" on this thread."""
    settings_dict = {
        **connections.settings["default"],
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "truepipe.sqlite3"),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
    }
    db = SQLiteWrapper(settings_dict, alias="capture_file")
    connections["capture_file"] = db
    with django_db_blocker.unblock():  # a database of its own, outside the tests' transactions
        with db.cursor() as cursor:
            cursor.execute("CREATE TABLE mail (id INTEGER PRIMARY KEY, body TEXT)")
        yield db
        db.close()
    del connections["capture_file"]


def autocheckpoint(db) -> int:
    return db.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]


def test_a_run_of_one_batch_still_folds_its_log_back_when_it_ends(file_database):
    """An IMAP poll's group or a drop-box message is a run of one batch: nothing signals a second
    batch, so the end of the run checkpoints what the first wrote."""
    with checkpoints_beside(file_database) as checkpointer:
        assert autocheckpoint(file_database) == 0  # the writer no longer checkpoints in its commits
        with file_database.cursor() as cursor:
            cursor.executemany("INSERT INTO mail (body) VALUES (%s)", [("x" * 3000,)] * 200)
    assert checkpointer is not None and checkpointer.checkpoints == 1
    assert autocheckpoint(file_database) == 1000


def test_the_writers_setting_comes_back_even_from_a_transaction_that_failed(file_database):
    """A failed batch inside the caller's transaction: Django refuses further queries there, yet
    the connection (kept open between requests) checkpoints in its commits again."""
    with (
        pytest.raises(RuntimeError),
        transaction.atomic(using="capture_file"),
        checkpoints_beside(file_database),
    ):
        with file_database.cursor() as cursor:
            cursor.execute("INSERT INTO mail (body) VALUES ('half a batch')")
        transaction.set_rollback(True, using="capture_file")
        raise RuntimeError("the batch failed")
    assert autocheckpoint(file_database) == 1000
    with file_database.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM mail")
        assert cursor.fetchone() == (0,)


@pytest.mark.django_db
def test_a_run_on_a_database_without_a_log_file_has_nothing_to_checkpoint():
    """The tests' database: SQLite in memory, or PostgreSQL."""
    with checkpoints_beside() as checkpointer:
        assert checkpointer is None


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="a SQLite page cache")
def test_an_imports_large_cache_is_given_back_even_from_a_transaction_that_failed():
    def cache_size() -> int:
        return connection.connection.execute("PRAGMA cache_size").fetchone()[0]

    before = cache_size()
    with pytest.raises(RuntimeError), transaction.atomic(), big_cache():
        assert cache_size() == -1048576
        transaction.set_rollback(True)
        raise RuntimeError("a row the import could not take")
    assert cache_size() == before != -1048576


def test_the_collector_is_paused_for_the_run_and_back_after_it():
    assert gc.isenabled()
    with no_cyclic_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), no_cyclic_gc():
        raise RuntimeError("a run that fails half-way")
    assert gc.isenabled()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_rows_copied_in_arrive_whole_and_a_bad_one_is_djangos_integrity_error_leaving_nothing():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE copied (id INTEGER PRIMARY KEY, name TEXT)")
    copy_rows("copied (id, name)", [(1, "Ada"), (2, 'O\'Brien, "Ravi"\t\\n')])
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name FROM copied ORDER BY id")
        assert cursor.fetchall() == [(1, "Ada"), (2, 'O\'Brien, "Ravi"\t\\n')]

    with pytest.raises(IntegrityError), transaction.atomic():
        copy_rows("copied", [(3, "Maya"), (1, "Ada again")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM copied")
        assert cursor.fetchone()[0] == 2
