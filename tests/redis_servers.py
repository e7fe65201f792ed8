"""Redis servers the tests start themselves, on free loopback ports, never the machine's own:
independent masters for Redlock, and a master, a replica and three sentinels for Sentinel.

Each server runs in a temporary directory with persistence off (``--save "" --appendonly no``)
and is SIGKILLed at the end. ``/usr/bin/redis-server`` (or ``redis-server`` on the PATH) is
required; without it the tests that need these skip, or fail when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000  # a sentinel deems the master down after this long without an answer


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        message = "redis-server is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: the Redlock and Sentinel tests must run)", pytrace=False)
        pytest.skip(message)
    return found


def _ping(port: int) -> str | None:
    """The server's role (``master``, ``slave``, ``sentinel``), or None if it does not answer."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        role = client.execute_command("ROLE")
        return role[0].decode() if isinstance(role[0], bytes) else str(role[0])
    except redis.RedisError:
        return None
    finally:
        client.close()


class RedisServer:
    """One ``redis-server`` process; ``config`` lines go into its configuration file."""

    def __init__(self, directory: Path, *config: str, sentinel: bool = False, port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.directory = directory / str(self.port)
        self.directory.mkdir(parents=True)
        self.sentinel = sentinel
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}", *config]
        if not sentinel:
            lines += ['save ""', "appendonly no"]
        self.config = self.directory / "redis.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [redis_server_binary(), str(self.config), *(["--sentinel"] if self.sentinel else [])]
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while _ping(self.port) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start: {self.log()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server vanishes, with whatever it held in memory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def role(self) -> str | None:
        return _ping(self.port)

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class RedisServers:
    """The servers started by one fixture, killed together at its end."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="liteflow-redis-")
        self.directory = Path(self._directory.name)
        self.servers: list[RedisServer] = []

    def start(self, *config: str, sentinel: bool = False, port: int | None = None) -> RedisServer:
        server = RedisServer(self.directory, *config, sentinel=sentinel, port=port)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()
        self._directory.cleanup()


class SentinelSetup:
    """A master, one replica and three sentinels watching them as ``mymaster`` (quorum 2)."""

    def __init__(self, servers: RedisServers) -> None:
        self.master = servers.start("repl-diskless-sync-delay 0")  # not 5 s before a replica's first sync
        self.replica = servers.start(f"replicaof 127.0.0.1 {self.master.port}")
        monitor = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel parallel-syncs {SERVICE} 1",
            f"sentinel known-replica {SERVICE} 127.0.0.1 {self.replica.port}",
        ]
        # Each sentinel knows the others from the start, rather than from their hello messages,
        # which come every 2 s.
        ports, ids = [free_port() for _ in range(3)], [os.urandom(20).hex() for _ in range(3)]
        self.sentinels = [
            servers.start(
                *monitor,
                f"sentinel myid {ids[n]}",
                *(f"sentinel known-sentinel {SERVICE} 127.0.0.1 {ports[k]} {ids[k]}" for k in range(3) if k != n),
                sentinel=True,
                port=ports[n],
            )
            for n in range(3)
        ]
        self.wait_for(lambda: self._replicated(), "the replica to sync and the sentinels to see it", 20)

    def url(self, query: str = "") -> str:
        hosts = ",".join(sentinel.address for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def _replicated(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.sentinels[0].port, socket_timeout=0.5)
        try:
            replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
            others = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
        except redis.RedisError:
            return False
        finally:
            client.close()
        return len(replicas) == 1 and len(others) == 2 and self.replica.role() == "slave"

    def master_port(self) -> int | None:
        """The port of the master the first live sentinel names."""
        import redis

        for sentinel in self.sentinels:
            client = redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=0.5)
            try:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return int(address[1])
            except redis.RedisError:
                continue
            finally:
                client.close()
        return None

    @staticmethod
    def wait_for(condition: object, what: str, timeout: float) -> None:
        assert callable(condition)
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)


@pytest.fixture
def redis_servers() -> Iterator[RedisServers]:
    """Start servers with ``redis_servers.start()``; all are killed afterwards."""
    redis_server_binary()
    servers = RedisServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def redlock_masters(redis_servers: RedisServers) -> list[RedisServer]:
    """Three independent masters."""
    return [redis_servers.start() for _ in range(3)]


@pytest.fixture
def sentinel_setup(redis_servers: RedisServers) -> SentinelSetup:
    """A master, a replica and three sentinels."""
    return SentinelSetup(redis_servers)
