"""What a SQLite save writes, and the checkpoint settings of the connections that write the file."""

from __future__ import annotations

from pathlib import Path

from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider, _connection


def test_writers_checkpoint_every_ten_thousand_pages(tmp_path: Path) -> None:
    db_path = tmp_path / "flow.db"
    store = SqlitePersistenceProvider(db_path)
    lock = SqliteLockProvider(db_path, renew=False)
    try:
        for connection in (store._writer, lock._connection):
            assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == _connection.WAL_CHECKPOINT_PAGES
            assert connection.execute("PRAGMA journal_size_limit").fetchone()[0] > 0
    finally:
        lock.close()
        store.close()
