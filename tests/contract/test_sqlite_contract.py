"""The persistence contract, run against the SQLite provider on a file and in memory, and the lock
contract against the SQLite lock, two providers on one file standing for two processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider
from liteflow.testing import LockContract, PersistenceContract


class TestSqlitePersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self, tmp_path: Path) -> Iterator[SqlitePersistenceProvider]:
        provider = SqlitePersistenceProvider(tmp_path / "liteflow.db")
        yield provider
        provider.close()


class TestSqliteMemoryPersistence(PersistenceContract):
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
