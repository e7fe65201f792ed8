"""The persistence contract, run against the SQLite provider on a file and in memory, and the lock
contract against the SQLite lock, two providers on one file standing for two processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider
from liteflow.testing import LeasedLockContract, LockContract, PersistenceContract
from liteflow.testing._quarantine_contract import splice_json


class SqliteCorruption:
    """Damages records through the provider's own writer connection, as a broken writer would."""

    @staticmethod
    def _corrupt(persistence: SqlitePersistenceProvider, table: str, row_id: str, field: str, data_json: str) -> None:
        with persistence._lock:
            (record,) = persistence._writer.execute(f"SELECT record FROM {table} WHERE id = ?", (row_id,)).fetchone()
            persistence._writer.execute(
                f"UPDATE {table} SET record = ? WHERE id = ?", (splice_json(record, field, data_json), row_id)
            )

    def corrupt_instance(self, persistence: SqlitePersistenceProvider, workflow_id: str, data_json: str) -> None:
        self._corrupt(persistence, "workflow", workflow_id, "data", data_json)

    def corrupt_event(self, persistence: SqlitePersistenceProvider, event_id: str, data_json: str) -> None:
        self._corrupt(persistence, "event", event_id, "event_data", data_json)


class TestSqlitePersistence(SqliteCorruption, PersistenceContract):
    @pytest.fixture
    def persistence(self, tmp_path: Path) -> Iterator[SqlitePersistenceProvider]:
        provider = SqlitePersistenceProvider(tmp_path / "liteflow.db")
        yield provider
        provider.close()


class TestSqliteMemoryPersistence(SqliteCorruption, PersistenceContract):
    @pytest.fixture
    def persistence(self) -> Iterator[SqlitePersistenceProvider]:
        provider = SqlitePersistenceProvider(":memory:")
        yield provider
        provider.close()


class TestSqliteLock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock(self, tmp_path: Path) -> Iterator[SqliteLockProvider]:
        provider = SqliteLockProvider(tmp_path / "liteflow.db")
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, tmp_path: Path) -> Iterator[SqliteLockProvider]:
        provider = SqliteLockProvider(tmp_path / "liteflow.db")
        yield provider
        provider.close()


class TestSqliteLeasedLock(LeasedLockContract):
    """Each provider on the file stands for another process."""

    @pytest.fixture
    def make_leased_lock(self, tmp_path: Path) -> Iterator[Callable[..., SqliteLockProvider]]:
        made: list[SqliteLockProvider] = []

        def make(*, renew: bool = True) -> SqliteLockProvider:
            made.append(SqliteLockProvider(tmp_path / "liteflow.db", lease=self.lease, renew=renew))
            return made[-1]

        yield make
        for provider in made:
            provider.close()
