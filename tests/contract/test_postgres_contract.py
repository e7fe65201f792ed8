"""The persistence, queue and lock contracts on a real PostgreSQL, each test in a fresh schema.

The server is ``LITEFLOW_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests skip when it is unreachable, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

psycopg = pytest.importorskip("psycopg")

from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider  # noqa: E402
from liteflow.testing import LockContract, PersistenceContract, QueueContract  # noqa: E402

POSTGRES_URL = os.environ.get("LITEFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

try:  # the shared helper, when the tests' conftest provides it
    from conftest import require_service  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the checkout

    def require_service(name: str, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            message = f"{name} not reachable at {host}:{port}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: services must be running)", pytrace=False)
        pytest.skip(message)


Schema = Callable[[], str]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


@pytest.fixture
def schema(postgres_url: str) -> Iterator[Schema]:
    """Hands out a fresh schema name per call, and drops every schema handed out afterwards."""
    used: list[str] = []

    def make() -> str:
        used.append(f"lf_test_{uuid.uuid4().hex[:8]}")
        return used[-1]

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in used:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


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
