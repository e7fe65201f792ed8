"""The persistence, queue and lock contracts on a real PostgreSQL, each test in a fresh schema.

The server is ``LITEFLOW_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests skip when it is unreachable, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

psycopg = pytest.importorskip("psycopg")

from conftest import Schema  # type: ignore[import-not-found]

from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider
from liteflow.testing import LeasedLockContract, LockContract, PersistenceContract, QueueContract
from liteflow.testing._quarantine_contract import splice_json


class TestPostgresPersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self, postgres_url: str, schema: Schema) -> Iterator[PostgresPersistenceProvider]:
        provider = PostgresPersistenceProvider(postgres_url, schema=schema())
        yield provider
        provider.close()

    @staticmethod
    def _corrupt(persistence: PostgresPersistenceProvider, table: str, row_id: str, field: str, data_json: str) -> None:
        """Rewrite a record in SQL on a connection of its own, as a broken writer would."""
        name = f'"{persistence.schema}".{table}'
        with psycopg.connect(persistence._conninfo, autocommit=True) as conn:
            (record,) = conn.execute(f"SELECT record FROM {name} WHERE id = %s", (row_id,)).fetchone()
            damaged = splice_json(record, field, data_json)
            conn.execute(f"UPDATE {name} SET record = %s WHERE id = %s", (damaged, row_id))

    def corrupt_instance(self, persistence: PostgresPersistenceProvider, workflow_id: str, data_json: str) -> None:
        self._corrupt(persistence, "workflow", workflow_id, "data", data_json)

    def corrupt_event(self, persistence: PostgresPersistenceProvider, event_id: str, data_json: str) -> None:
        self._corrupt(persistence, "event", event_id, "event_data", data_json)


class TestPostgresQueue(QueueContract):
    deduplicates = True
    empty_timeout = 0.05  # a committed row: taken as soon as queued

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


class TestPostgresLeasedLock(LeasedLockContract):
    @pytest.fixture
    def make_leased_lock(self, postgres_url: str, schema: Schema) -> Iterator[Callable[..., PostgresLockProvider]]:
        name, made = schema(), []

        def make(*, renew: bool = True) -> PostgresLockProvider:
            made.append(PostgresLockProvider(postgres_url, schema=name, lease=self.lease, renew=renew))
            return made[-1]

        yield make
        for provider in made:
            provider.close()
