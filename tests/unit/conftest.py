"""Fixtures of the unit tests: a SQLite file and a persistence provider on it. (tests/unit is a
package so that this conftest does not shadow the ``conftest`` module other test directories
import from.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liteflow.providers.sqlite import SqlitePersistenceProvider


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file of the test's own, not created yet."""
    return tmp_path / "flow.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqlitePersistenceProvider]:
    """A SQLite persistence provider on ``db_path``, closed after the test."""
    provider = SqlitePersistenceProvider(db_path)
    yield provider
    provider.close()
