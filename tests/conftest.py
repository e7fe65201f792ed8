"""Shared test helpers: tests that need a service skip when it is down, except in CI."""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

# The slower tiers: `make test-fast` deselects them (see pyproject's markers and CONTRIBUTING).
# Each key is the start of a test id: a folder ("tests/cluster/"), a file, or "file::test".
SLOW_TIERS: dict[str, tuple[str, ...]] = {
    "tests/cluster/": ("slow", "cluster"),
    "tests/faults/": ("slow", "faults"),
    "tests/e2e/test_crash_recovery.py": ("slow",),
    "tests/e2e/test_shared_sqlite.py": ("slow",),
    "tests/e2e/test_long_loops.py::test_a_while_loop_of_ten_thousand": ("slow",),  # 5-15 s each
    "tests/e2e/test_long_loops.py::test_a_for_each_over_ten_thousand": ("slow",),
    "tests/e2e/test_activities.py::test_a_sigkilled": ("slow",),
    "tests/cli/test_worker.py": ("slow",),
    "tests/cli/test_cli.py": ("slow",),  # each runs the console script and workers as processes
    "tests/cli/test_graph.py": ("slow",),
    "tests/cli/test_usage.py": ("slow",),
    "tests/contract/test_azure_contract.py": ("slow",),  # installs and starts its test server
    "tests/contract/test_mongo_contract.py": ("slow",),
    "tests/contract/test_rabbitmq_contract.py::TestRabbitMQQueue::test_no_loss": ("slow",),  # thousands of items
    "tests/contract/test_redis_contract.py::TestRedisQueue::test_no_loss": ("slow",),
    "tests/contract/test_sentinel_contract.py::TestSentinelQueue::test_no_loss": ("slow",),  # the same, via Sentinel
    "tests/unit/test_sqlite_errors.py::test_processes_opening": ("slow",),
    "tests/e2e/test_activities.py::test_leases_and_results_on_a_durable_store[mongo]": ("slow",),
    "tests/e2e/test_samples.py": ("slow",),  # each sample runs as a process
    "tests/dashboard/test_browser.py": ("slow", "browser"),
    # The Redlock fault contract cuts and black-holes all three masters (one call waits out the timeouts).
    "tests/contract/test_redlock_contract.py::TestRedlockFaults": ("slow", "faults"),
    "tests/contract/test_sentinel_contract.py::test_providers_follow_a_failover_on_their_own": ("slow",),
    # Runs of the console script, most beside a `liteflow worker` process (tests/cli/test_loader.py,
    # in-process, and test_cli_dashboard.py's missing-store test keep the command line in the fast tier).
    "tests/cli/test_schedules_cli.py": ("slow",),
    "tests/cli/test_tasks_cli.py": ("slow",),
    "tests/dashboard/test_cli_dashboard.py::test_the_command_serves": ("slow",),  # the server as a process
    "tests/dashboard/test_cli_dashboard.py::test_without_a_token_it_is_read_only": ("slow",),
    "tests/observability/test_metrics.py::test_a_liteflow_worker_serves_metrics_that_move": ("slow",),
    "tests/e2e/test_starting_workflows.py::test_three_processes_racing": ("slow",),
    "tests/unit/test_sqlite_lock.py::test_racing_processes_exactly_one_wins": ("slow",),
    "tests/unit/test_sqlite_lock.py::test_a_stalled_process_loses_its_locks_after_the_lease": ("slow",),
    # Waits for three renewals failing behind a locked file, a recovery and one more renewal (3 s lease).
    "tests/unit/test_sqlite_lock.py::test_the_renewal_thread_survives_a_locked_file": ("slow",),
    # Eight wake-ups timed at points of the listener's cycle; the contract's wake-up test stays fast.
    "tests/unit/test_postgres_provider.py::test_blocked_dequeue_wakes_promptly": ("slow",),
}

POSTGRES_URL = os.environ.get("LITEFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Schema(Protocol):
    """The ``schema`` fixture: ``schema()`` names a schema for the test, ``schema(new=True)`` one
    that does not exist yet."""

    def __call__(self, *, new: bool = False) -> str: ...


RedisPrefix = Callable[[], str]


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (``kill``, a CI timeout) ends the run as Ctrl-C does: the fixtures' teardowns and the
    tests' ``finally`` blocks still run, so the processes and servers they started are stopped
    instead of outliving the run (with the database connections they hold)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test whose id starts with a key of ``SLOW_TIERS`` with that key's markers."""
    for item in items:
        for prefix, names in SLOW_TIERS.items():
            if item.nodeid.startswith(prefix):
                for name in names:
                    item.add_marker(name)


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test if nothing listens on ``host:port``; fail instead when ``CI=true``,
    since CI starts every service and must run every test."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        message = f"{name} not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services must be running)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def _schema_pool(postgres_url: str) -> Iterator[Any]:
    pytest.importorskip("psycopg")
    from pg_schemas import SchemaPool

    pool = SchemaPool(postgres_url)
    yield pool
    pool.close()


@pytest.fixture
def schema(request: pytest.FixtureRequest, postgres_url: str, _schema_pool: Any) -> Iterator[Schema]:
    """Hands out a PostgreSQL schema per call, empty and not shared with anything else running:
    either a new name, or, to save the cost of migrating a new one, a migrated schema an earlier
    test used, emptied (tests/pg_schemas.py). ``schema(new=True)`` is always a new name: for tests
    of the migrations themselves, or of query plans (which follow a table's history). Afterwards
    each schema is emptied for reuse or dropped; in the cluster and fault tiers, whose processes
    and proxies may outlive the test, always dropped."""
    psycopg = pytest.importorskip("psycopg")
    used: list[str] = []
    reuse = not any(request.node.get_closest_marker(name) for name in ("cluster", "faults"))

    def make(*, new: bool = False) -> str:
        used.append(_schema_pool.take() if reuse and not new else f"lf_test_{uuid.uuid4().hex[:8]}")
        return used[-1]

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in used:
            if reuse:
                _schema_pool.give_back(conn, name)
            else:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[RedisPrefix]:
    """Hands out a fresh Redis key prefix per call, and deletes every key under it afterwards
    (the machine's Redis is shared: a test touches only the keys under its own prefixes)."""
    redis = pytest.importorskip("redis")
    used: list[str] = []

    def make() -> str:
        used.append(f"liteflow-test-{uuid.uuid4().hex}")
        return used[-1]

    yield make
    client = redis.Redis.from_url(redis_url)
    try:
        for name in used:
            keys = list(client.scan_iter(match=f"{name}:*"))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
