"""Redlock: the lock contract and the fault contract on three masters of our own, and what a
majority means when masters die, lose their keys or answer too late."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

import redis_servers as servers
from redis_servers import RedisServer, RedisServers

from liteflow.core import ConcurrencyError, ConfigurationError, ProviderUnavailableError, configure_workflow_host
from liteflow.core._config import _LOCK_URLS, _from_url
from liteflow.core._memory import MemoryPersistenceProvider
from liteflow.core._models import new_id
from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider
from liteflow.providers.redis._servers import PENDING_LIMIT
from liteflow.testing import FaultProxy, LeasedLockContract, LockContract, LockFaultContract
from liteflow.testing._persistence_data import make_instance

redis_servers, redlock_masters = servers.redis_servers, servers.redlock_masters  # fixtures

TIMEOUTS: dict[str, Any] = {"socket_timeout": 1.0, "connect_timeout": 1.0}
# For tests in which no master hangs (a killed one refuses connections at once): a master slow to
# answer on a loaded machine must not count as one that failed, and none of them waits this long.
PATIENT: dict[str, Any] = {"socket_timeout": 10.0, "connect_timeout": 10.0}


def urls(masters: list[RedisServer]) -> list[str]:
    return [master.url for master in masters]


def key(master: RedisServer, name: str) -> str | None:
    client = redis.Redis(host="127.0.0.1", port=master.port)
    try:
        value = client.get(name)
        return None if value is None else value.decode()
    finally:
        client.close()


def wait_until_on_every_master(masters: list[RedisServer], name: str) -> None:
    """Until every master holds lock key ``name`` for the same owner: a grant returns when a
    majority said yes, and the last master may set it a little later."""
    deadline = time.monotonic() + 10
    while len(owners := {key(master, name) for master in masters}) != 1 or None in owners:
        assert time.monotonic() < deadline, f"{name} never reached every master: {owners}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def shared_masters() -> Iterator[list[RedisServer]]:
    """Three masters for the lock contract, which kills none: its tests share them, each under a
    key prefix of its own."""
    servers.redis_server_binary()
    started = RedisServers()
    try:
        yield [started.start() for _ in range(3)]
    finally:
        started.close()


class TestRedlock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock_prefix(self) -> str:
        return f"contract-{new_id()}"

    @pytest.fixture
    def lock(self, shared_masters: list[RedisServer], lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(urls(shared_masters), prefix=lock_prefix, **TIMEOUTS)
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, shared_masters: list[RedisServer], lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(urls(shared_masters), prefix=lock_prefix, **TIMEOUTS)
        yield provider
        provider.close()


class _AllProxies:
    """Cuts, black-holes or restores every server of the Redlock at once (the fault contract's
    outage is the whole backend's)."""

    def __init__(self, proxies: list[FaultProxy]) -> None:
        self.proxies = proxies

    def cut(self) -> None:
        for proxy in self.proxies:
            proxy.cut()

    def blackhole(self) -> None:
        for proxy in self.proxies:
            proxy.blackhole()

    def restore(self) -> None:
        for proxy in self.proxies:
            proxy.restore()


class TestRedlockFaults(LockFaultContract):
    @pytest.fixture
    def fault_proxy(self, redlock_masters: list[RedisServer]) -> Iterator[_AllProxies]:
        proxies = [FaultProxy("127.0.0.1", master.port) for master in redlock_masters]
        try:
            yield _AllProxies(proxies)
        finally:
            for proxy in proxies:
                proxy.close()

    @pytest.fixture
    def lock(self, fault_proxy: _AllProxies, redlock_masters: list[RedisServer]) -> Iterator[RedisLockProvider]:
        through = [proxy.url(master.url) for proxy, master in zip(fault_proxy.proxies, redlock_masters)]
        provider = RedisLockProvider(through, prefix="faults", lease=30, **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


# -- a majority ------------------------------------------------------------------------------------


def test_one_master_down_changes_nothing_two_make_it_unavailable(redlock_masters: list[RedisServer]) -> None:
    a, b, c = redlock_masters
    first = RedisLockProvider(urls(redlock_masters), prefix="quorum", **TIMEOUTS)
    second = RedisLockProvider(urls(redlock_masters), prefix="quorum", **TIMEOUTS)
    try:
        assert first.acquire("held") is True
        c.kill()
        assert second.acquire("held") is False  # two of three still say it is taken: an answer
        assert second.acquire("other") is True
        second.release("other")
        assert first.acquire("other") is True
        first.renew_now()  # renewed on the majority that is left
        assert first.token("held") is not None
        deadline = time.monotonic() + 10  # the dead master's answer may come after the majority's
        while first.health_details()["servers"][c.address]["ok"] and time.monotonic() < deadline:
            time.sleep(0.02)
        details = first.health_details()
        assert details["quorum"] == 2
        assert [details["servers"][m.address]["ok"] for m in (a, b, c)] == [True, True, False]
        assert "ConnectionError" in details["servers"][c.address]["last_error"]

        b.kill()
        with pytest.raises(ProviderUnavailableError, match="1 of 3 servers answered, 2 needed") as raised:
            second.acquire("third")
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        with pytest.raises(ProviderUnavailableError):
            first.renew_now()
        assert first.token("held") is not None  # not lost yet: its validity has not run out
    finally:
        first.close()
        second.close()


def test_a_hung_master_delays_no_one(redlock_masters: list[RedisServer]) -> None:
    a, b, c = redlock_masters
    with FaultProxy("127.0.0.1", c.port) as proxy:
        lock = RedisLockProvider([a.url, b.url, proxy.url(c.url)], prefix="hung", socket_timeout=5, lease=30)
        try:
            assert lock.acquire("warm-up") is True
            proxy.blackhole()  # c keeps its connections open and never answers
            started = time.monotonic()
            for n in range(100):
                assert lock.acquire(f"r{n}") is True
                lock.release(f"r{n}")
            assert time.monotonic() - started < 5.0  # not one socket_timeout, let alone 100
            # What waits for c is bounded: once PENDING_LIMIT commands wait, acquires are not sent
            # there, and neither are the releases of locks it never saw.
            assert lock._servers[2]._pending <= PENDING_LIMIT + 1
            lock.renew_now()
            assert lock.token("warm-up") is not None
            deadline = time.monotonic() + 15  # c's first command times out (twice: one retry)
            while lock.health_details()["servers"][f"127.0.0.1:{proxy.port}"]["ok"]:
                assert time.monotonic() < deadline, "the hung master never showed as not ok"
                time.sleep(0.05)
        finally:
            proxy.restore()
            lock.close()


def test_an_acquire_whose_answer_timed_out_is_granted_on_the_drivers_retry(
    redlock_masters: list[RedisServer],
) -> None:
    """The driver sends a command again after a timeout. An acquire whose first run was applied
    but answered too late finds its own fresh owner token on the retry: it holds the lock (before,
    it read as taken by someone else, and the lock stayed blocked for a lease)."""
    master = redlock_masters[0]
    lock = RedisLockProvider(master.url, prefix="retried", socket_timeout=1, lease=30)
    stalled = threading.Timer(1.5, master.process.send_signal, (signal.SIGCONT,))
    try:
        assert lock.acquire("warm-up") is True  # the connection is open before the server stalls
        master.process.send_signal(signal.SIGSTOP)  # answers nothing for 1.5 s: one timeout, one retry
        stalled.start()
        assert lock.acquire("r") is True
        assert lock.token("r") is not None
        assert key(master, "retried:lock:r") is not None
        lock.release("r")
        assert key(master, "retried:lock:r") is None
    finally:
        stalled.cancel()
        master.process.send_signal(signal.SIGCONT)
        lock.close()


def test_host_health_shows_each_master(redlock_masters: list[RedisServer]) -> None:
    a, b, c = redlock_masters
    hosts = ",".join(master.address for master in redlock_masters)
    host = configure_workflow_host(lock_service=f"redis://{hosts}/0?prefix=health&socket_timeout=1")
    try:
        b.kill()
        deadline = time.monotonic() + 10
        while (host.health().components["lock"].details or {})["servers"][b.address]["ok"]:
            assert host.lock.acquire(f"r-{new_id()}") is True  # two of three: still a majority
            assert time.monotonic() < deadline, "the dead master never showed as not ok"
        health = host.health()
        lock = health.components["lock"]
        assert lock.ok and health.ok  # a dead minority does not make the host unready
        assert lock.details is not None and lock.details["quorum"] == 2
        assert {name: server["ok"] for name, server in lock.details["servers"].items()} == {
            a.address: True,
            b.address: False,
            c.address: True,
        }
        assert health.as_dict()["components"]["lock"]["details"] == lock.details
        assert "details" not in health.as_dict()["components"]["persistence"]  # the memory store has none
    finally:
        host.stop()
        host.lock.close()


def test_lock_no_longer_held_by_a_majority_is_lost(
    redlock_masters: list[RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    a, b, _ = redlock_masters
    holder = RedisLockProvider(urls(redlock_masters), prefix="lost", lease=30, renew=False, **PATIENT)
    other = RedisLockProvider(urls(redlock_masters), prefix="lost", lease=30, **PATIENT)
    try:
        assert holder.acquire("wf") is True
        wait_until_on_every_master(redlock_masters, "lost:lock:wf")
        for master in (a, b):  # two masters forget the lock (a restart without persistence, say)
            client = redis.Redis(host="127.0.0.1", port=master.port)
            client.delete("lost:lock:wf")
            client.close()
        assert other.acquire("wf") is True  # a and b grant it: a majority
        with caplog.at_level(logging.WARNING, logger="liteflow.providers.redis"):
            holder.renew_now()
        assert holder.token("wf") is None
        assert "lapsed before it could be renewed" in caplog.text
        assert other.acquire("wf") is False  # losing it did not touch the new holder's lock
    finally:
        holder.close()
        other.close()


def test_a_lock_granted_after_its_validity_is_not_taken(redlock_masters: list[RedisServer]) -> None:
    # A 1 ms lease is used up by the round trips and the drift allowance: never valid.
    hasty = RedisLockProvider(urls(redlock_masters), prefix="validity", lease=0.001, renew=False)
    other = RedisLockProvider(urls(redlock_masters), prefix="validity", lease=30)
    try:
        assert hasty.acquire("wf") is False
        assert hasty.token("wf") is None
        assert other.acquire("wf") is True
    finally:
        hasty.close()
        other.close()


def test_release_frees_the_lock_on_every_master(redlock_masters: list[RedisServer]) -> None:
    lock = RedisLockProvider(urls(redlock_masters), prefix="release", lease=30)
    try:
        assert lock.acquire("wf") is True
        assert all(key(master, "release:lock:wf") for master in redlock_masters)
        lock.release("wf")
        deadline = time.monotonic() + 5  # the last master may answer after the majority
        while any(key(master, "release:lock:wf") for master in redlock_masters) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(key(master, "release:lock:wf") for master in redlock_masters)
    finally:
        lock.close()


def test_fencing_tokens_grow_across_masters_that_disagree(redlock_masters: list[RedisServer]) -> None:
    a, _, c = redlock_masters
    client = redis.Redis(host="127.0.0.1", port=a.port)
    client.set("fence:lock-fence", 100)  # a's counter is far ahead of the others'
    client.close()
    c.kill()  # so that the first grant needs a and b
    first = RedisLockProvider(urls(redlock_masters), prefix="fence", lease=30, **PATIENT)
    second = RedisLockProvider(urls(redlock_masters), prefix="fence", lease=30, **PATIENT)
    try:
        assert first.acquire("wf") is True
        assert first.token("wf") == 101
        first.release("wf")
        c.start()  # back, empty: its counter starts again from 0
        a.kill()  # the next grant comes from b, raised to 101 meanwhile, and c
        assert second.acquire("wf") is True
        later = second.token("wf")
        assert later is not None and later > 101
    finally:
        first.close()
        second.close()


def test_a_lapsed_holder_is_fenced_by_the_stores_revision_check(redlock_masters: list[RedisServer]) -> None:
    """Redlock's timing assumptions can fail (a pause longer than the lease): the stalled holder
    then shares the lock with the next one, and the store refuses its late save."""
    store = MemoryPersistenceProvider()
    instance = make_instance()
    store.create_workflow(instance)
    stalled = RedisLockProvider(urls(redlock_masters), prefix="fenced", lease=0.3, renew=False)
    live = RedisLockProvider(urls(redlock_masters), prefix="fenced", lease=30)
    try:
        assert stalled.acquire(instance.id) is True
        mine = store.get_workflow_instance(instance.id)
        deadline = time.monotonic() + 5
        while not live.acquire(instance.id):  # the stalled node's lease lapses on every master
            assert time.monotonic() < deadline, "the lease never lapsed"
            time.sleep(0.02)
        theirs = store.get_workflow_instance(instance.id)
        theirs.data = {"counter": 1}
        store.persist_workflow(theirs)
        mine.data = {"counter": 99}  # the stalled node wakes up and saves what it computed
        with pytest.raises(ConcurrencyError):
            store.persist_workflow(mine)
        assert store.get_workflow_instance(instance.id).data == {"counter": 1}
    finally:
        stalled.close()
        live.close()


# -- configuration --------------------------------------------------------------------------------


def test_several_servers_in_one_url(redlock_masters: list[RedisServer]) -> None:
    hosts = ",".join(master.address for master in redlock_masters)
    lock = _from_url("lock", f"redis://{hosts}/0?prefix=url&lease=3", _LOCK_URLS)
    try:
        assert isinstance(lock, RedisLockProvider)
        assert lock.servers == [master.address for master in redlock_masters]
        assert (lock.quorum, lock.lease, lock.prefix) == (2, 3.0, "url")
        assert lock.acquire("r") is True
        deadline = time.monotonic() + 5  # granted by a majority: the last master may answer later
        while not all(key(master, "url:lock:r") for master in redlock_masters):
            assert time.monotonic() < deadline, "the lock never reached every server of the URL"
            time.sleep(0.01)
    finally:
        lock.close()


def test_bad_configurations_are_refused(redlock_masters: list[RedisServer]) -> None:
    hosts = ",".join(master.address for master in redlock_masters)
    with pytest.raises(ConfigurationError, match="only the lock takes several"):
        RedisQueueProvider(f"redis://{hosts}/0")
    with pytest.raises(ConfigurationError, match="empty server name"):
        RedisLockProvider(f"redis://{redlock_masters[0].address},,{redlock_masters[1].address}/0")
    with pytest.raises(ConfigurationError, match="expected Redis URL"):
        RedisLockProvider([])
    with pytest.raises(ConfigurationError):
        RedisLockProvider.from_url(f"redis://{hosts}/0?drift_factor=lots")
    with pytest.raises(ValueError, match="drift_factor"):
        RedisLockProvider(urls(redlock_masters), drift_factor=0.7)


class TestRedlockLeases(LeasedLockContract):
    lease = 1.0  # each call waits for a majority of three servers

    @pytest.fixture
    def make_leased_lock(self, redlock_masters: list[RedisServer]) -> Iterator[Callable[..., RedisLockProvider]]:
        name, made = f"leases-{new_id()}", []

        def make(*, renew: bool = True) -> RedisLockProvider:
            made.append(
                RedisLockProvider(urls(redlock_masters), prefix=name, lease=self.lease, renew=renew, **TIMEOUTS)
            )
            return made[-1]

        yield make
        for provider in made:
            provider.close()
