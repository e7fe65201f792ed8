"""What Redlock costs over one Redis server: acquire + release round trips per second, from one
thread, on one server, on three masters, and on three masters with one of them SIGKILLed or
black-holed. Prints numbers; never passes or fails.

    python bench/bench_redlock.py [--seconds 3]

Starts its own redis-server processes on free loopback ports (tests/redis_servers.py), never the
machine's own, and kills them at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from redis_servers import RedisServers

from liteflow.providers.redis import RedisLockProvider
from liteflow.testing import FaultProxy


def rate(lock: RedisLockProvider, seconds: float) -> tuple[float, float]:
    """Acquire + release cycles per second, and the slowest cycle in ms."""
    count, slowest = 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert lock.acquire(f"r{count}")
        lock.release(f"r{count}")
        slowest = max(slowest, time.monotonic() - started)
        count += 1
    return count / seconds, slowest * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    servers = RedisServers()
    try:
        a, b, c = (servers.start() for _ in range(3))
        with FaultProxy("127.0.0.1", c.port) as proxy:
            urls = [a.url, b.url, proxy.url(c.url)]
            cases = [
                ("one server", [a.url], None),
                ("Redlock, 3 masters", urls, None),
                ("Redlock, 3 masters, one black-holed", urls, proxy.blackhole),
                ("Redlock, 3 masters, one SIGKILLed", urls, c.kill),
            ]
            for name, targets, fault in cases:
                lock = RedisLockProvider(targets, prefix="bench", lease=30, renew=False)
                try:
                    lock.acquire("warm-up")
                    if fault is not None:
                        proxy.restore()
                        fault()
                    per_second, slowest = rate(lock, args.seconds)
                    print(f"{name:40s} {per_second:8.0f} acquire+release/s   slowest {slowest:6.1f} ms")
                finally:
                    lock.close()
    finally:
        servers.close()


if __name__ == "__main__":
    main()
