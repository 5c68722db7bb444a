"""Long runs of writes: SQLite's log folded back beside the writer, the collector paused."""

from __future__ import annotations

import gc
import sqlite3
import time
from pathlib import Path

import pytest

from truepipe.core.bulk import Checkpointer, checkpoints_beside, no_cyclic_gc

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


def test_the_checkpointer_folds_the_log_back_so_it_stays_the_size_of_a_batch(tmp_path):
    path = str(tmp_path / "capture.sqlite3")
    checkpointer = Checkpointer(path)
    counts, log_size = write_batches(path, checkpointer)
    checkpointer.close()
    assert counts == [200, 400, 600, 800, 1000]  # the writer reads its own writes throughout
    assert checkpointer.checkpoints == 5
    # Each batch after a complete checkpoint starts the log over instead of appending to it.
    assert log_size < 2 * BATCH_BYTES
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT COUNT(*) FROM mail").fetchone() == (1000,)
    reader.close()


def test_without_it_the_log_of_a_writer_that_does_not_checkpoint_grows_with_every_batch(tmp_path):
    counts, log_size = write_batches(str(tmp_path / "capture.sqlite3"), None)
    assert counts == [200, 400, 600, 800, 1000]
    assert log_size > 5 * BATCH_BYTES


@pytest.mark.django_db
def test_a_run_on_a_database_without_a_log_file_has_nothing_to_checkpoint():
    """The tests' database: SQLite in memory, or PostgreSQL."""
    with checkpoints_beside() as checkpointer:
        assert checkpointer is None


def test_the_collector_is_paused_for_the_run_and_back_after_it():
    assert gc.isenabled()
    with no_cyclic_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), no_cyclic_gc():
        raise RuntimeError("a run that fails half-way")
    assert gc.isenabled()
