"""Redis under Sentinel: the queue and lock contracts through ``redis+sentinel://``, and the same
provider objects carrying on after the master is SIGKILLed and the replica promoted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

import redis_servers as servers
from redis_servers import RedisServers, SentinelSetup

from liteflow.core import ConfigurationError, ProviderUnavailableError, QueueType, configure_workflow_host
from liteflow.core._models import new_id
from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider
from liteflow.testing import LockContract, QueueContract

redis_servers, sentinel_setup = servers.redis_servers, servers.sentinel_setup  # fixtures

TIMEOUTS: dict[str, Any] = {"socket_timeout": 1.0, "connect_timeout": 1.0}


@pytest.fixture(scope="module")
def shared_sentinel() -> Iterator[SentinelSetup]:
    """One master, replica and three sentinels for the contract suites (each test its own prefix)."""
    servers.redis_server_binary()
    started = RedisServers()
    try:
        yield SentinelSetup(started)
    finally:
        started.close()


class TestSentinelQueue(QueueContract):
    deduplicates = True
    empty_timeout = 0.05  # LPUSH answered by the master: taken as soon as queued

    @pytest.fixture
    def queue(self, shared_sentinel: SentinelSetup) -> Iterator[RedisQueueProvider]:
        provider = RedisQueueProvider(shared_sentinel.url(), prefix=f"q-{new_id()}", **TIMEOUTS)
        yield provider
        provider.close()


class TestSentinelLock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock_prefix(self) -> str:
        return f"l-{new_id()}"

    @pytest.fixture
    def lock(self, shared_sentinel: SentinelSetup, lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(shared_sentinel.url(), prefix=lock_prefix, **TIMEOUTS)
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, shared_sentinel: SentinelSetup, lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(shared_sentinel.url(), prefix=lock_prefix, **TIMEOUTS)
        yield provider
        provider.close()


def _eventually(call: object, what: str, timeout: float = 30.0) -> object:
    """``call()``'s result once it stops raising ProviderUnavailableError (polled with a deadline)."""
    assert callable(call)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ProviderUnavailableError:
            if time.monotonic() > deadline:
                raise AssertionError(f"still unavailable after {timeout} s: {what}") from None
            time.sleep(0.05)


def test_providers_follow_a_failover_on_their_own(sentinel_setup: SentinelSetup) -> None:
    master, replica = sentinel_setup.master, sentinel_setup.replica
    queue = RedisQueueProvider(sentinel_setup.url(), prefix="fo", visibility_timeout=1.0, **TIMEOUTS)
    lock = RedisLockProvider(sentinel_setup.url(), prefix="fo", lease=60, **TIMEOUTS)
    try:
        for i in range(5):
            queue.enqueue(QueueType.WORKFLOW, f"wf-{i}")
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "wf-0"  # in flight, never acknowledged
        assert lock.acquire("held") is True
        assert queue.health_details()["master"] == master.address
        client = redis.Redis(host="127.0.0.1", port=master.port)
        assert client.wait(1, 5000) == 1  # the replica has all of it
        client.close()

        master.kill()
        with pytest.raises(ProviderUnavailableError) as raised:  # no master until a sentinel promotes one
            queue.enqueue(QueueType.WORKFLOW, "wf-during")
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        sentinel_setup.wait_for(lambda: sentinel_setup.master_port() == replica.port, "the replica's promotion", 30)

        got: list[str] = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            item = _eventually(lambda: queue.dequeue(QueueType.WORKFLOW, 0.5), "dequeue after the failover")
            if isinstance(item, str):
                got.append(item)
                queue.acknowledge(QueueType.WORKFLOW, item)
        # wf-1..4 were waiting; wf-0, in flight at the kill, comes back after the visibility timeout.
        assert sorted(got) == [f"wf-{i}" for i in range(5)]
        assert _eventually(lambda: lock.acquire("other"), "lock after the failover") is True
        assert lock.acquire("held") is False  # replicated: still ours, not free
        lock.release("held")
        assert lock.acquire("held") is True
        assert queue.health_details()["master"] == replica.address
        assert lock.health_details()["master"] == replica.address
    finally:
        queue.close()
        lock.close()


def test_host_health_names_the_master(shared_sentinel: SentinelSetup) -> None:
    url, prefix = shared_sentinel.url("socket_timeout=1"), f"h-{new_id()}"
    host = configure_workflow_host(queue_service=f"{url}&prefix={prefix}", lock_service=f"{url}&prefix={prefix}")
    try:
        host.queue.enqueue(QueueType.WORKFLOW, "x")
        assert host.lock.acquire("x") is True
        health = host.health().as_dict()
        assert health["components"]["queue"]["details"] == {
            "server": "sentinel:mymaster",
            "master": shared_sentinel.master.address,
        }
        lock = health["components"]["lock"]["details"]
        assert lock["master"] == shared_sentinel.master.address and lock["quorum"] == 1
        assert lock["servers"]["sentinel:mymaster"]["ok"] is True
    finally:
        host.stop()
        host.queue.close()
        host.lock.close()


def test_sentinel_url_parts() -> None:
    queue = RedisQueueProvider(
        "redis+sentinel://app:s%40cret@127.0.0.1:26001,127.0.0.1:26002/orders/3?socket_timeout=2"
    )
    try:
        client: Any = queue._client
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["db"], kwargs["username"], kwargs["password"], kwargs["socket_timeout"]) == (
            3,
            "app",
            "s@cret",
            2.0,
        )
        hosts = [s.connection_pool.connection_kwargs for s in client.sentinels.sentinels]
        assert [(h["host"], h["port"]) for h in hosts] == [("127.0.0.1", 26001), ("127.0.0.1", 26002)]
        assert queue.health_details() == {"server": "sentinel:orders", "master": None}  # not connected yet
    finally:
        queue.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://127.0.0.1:1/", "service"),
        ("redis+sentinel://127.0.0.1:1/mymaster/zero", "database"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "sentinel address"),
        ("redis+sentinel://127.0.0.1:1/mymaster?colour=red", "unknown option"),
    ],
)
def test_bad_sentinel_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        RedisQueueProvider(url)
