"""The persistence, queue and lock contracts on a real PostgreSQL, each test in a fresh schema.

The server is ``LITEFLOW_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests skip when it is unreachable, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg")

from conftest import Schema  # type: ignore[import-not-found]

from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider
from liteflow.testing import LockContract, PersistenceContract, QueueContract


class TestPostgresPersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self, postgres_url: str, schema: Schema) -> Iterator[PostgresPersistenceProvider]:
        provider = PostgresPersistenceProvider(postgres_url, schema=schema())
        yield provider
        provider.close()


class TestPostgresQueue(QueueContract):
    deduplicates = True

    @pytest.fixture
    def queue(self, postgres_url: str, schema: Schema) -> Iterator[PostgresQueueProvider]:
        provider = PostgresQueueProvider(postgres_url, schema=schema())
        yield provider
        provider.close()


class TestPostgresLock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock_schema(self, schema: Schema) -> str:
        return schema()

    @pytest.fixture
    def lock(self, postgres_url: str, lock_schema: str) -> Iterator[PostgresLockProvider]:
        provider = PostgresLockProvider(postgres_url, schema=lock_schema)
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, postgres_url: str, lock_schema: str) -> Iterator[PostgresLockProvider]:
        provider = PostgresLockProvider(postgres_url, schema=lock_schema)
        yield provider
        provider.close()
