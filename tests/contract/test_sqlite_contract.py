"""The persistence contract, run against the SQLite provider on a file and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liteflow.providers.sqlite import SqlitePersistenceProvider
from liteflow.testing import PersistenceContract


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
