"""How long a provider takes to report an outage, and to work again after it, with its default
timeouts. Prints numbers; never passes or fails.

    python bench/bench_faults.py [--postgres URL] [--redis URL] [--amqp URL] [--only postgres,redis,rabbitmq]

Each provider is connected through a FaultProxy (liteflow.testing). For each fault (``cut``: every
connection reset and new ones refused; ``blackhole``: connections open, nothing forwarded) it
prints the seconds one call took to raise ProviderUnavailableError, then, after the fault is
lifted, the seconds until the same provider object answered again (calls retried every 50 ms).
PostgreSQL gets a fresh schema (dropped at the end), Redis a fresh key prefix, RabbitMQ fresh queues.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liteflow.core import ProviderUnavailableError, QueueType
from liteflow.core._models import new_id
from liteflow.testing import FaultProxy
from liteflow.testing._persistence_data import make_instance


def measure(name: str, proxy: FaultProxy, call: Callable[[], Any]) -> None:
    call()  # connected and warm
    for fault in ("cut", "blackhole"):
        getattr(proxy, fault)()
        started = time.monotonic()
        try:
            call()
            failed = "no error!"
        except ProviderUnavailableError:
            failed = f"{time.monotonic() - started:5.1f} s"
        proxy.restore()
        restored = time.monotonic()
        while True:
            try:
                call()
                break
            except ProviderUnavailableError:
                time.sleep(0.05)
        recovered = time.monotonic() - restored
        print(f"{name:<22} {fault:<10} raised after {failed}   working again after {recovered:5.1f} s")


def postgres(url: str) -> None:
    import psycopg

    from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider

    schema = f"liteflow_bench_faults_{new_id()[:8]}"
    try:
        with FaultProxy.for_url(url, default_port=5432) as proxy:
            store = PostgresPersistenceProvider(proxy.url(url), schema=schema)
            saved = make_instance()
            store.create_workflow(saved)
            measure("postgres persistence", proxy, lambda: store.get_workflow_instance(saved.id))
            store.close()
            queue = PostgresQueueProvider(proxy.url(url), schema=schema)
            measure("postgres queue", proxy, lambda: queue.enqueue(QueueType.WORKFLOW, new_id()))
            queue.close()
            lock = PostgresLockProvider(proxy.url(url), schema=schema)
            measure("postgres lock", proxy, lambda: lock.acquire(new_id()))
            lock.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def redis(url: str) -> None:
    import redis as redis_module

    from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider

    prefix = f"liteflow-bench-{new_id()}"
    try:
        with FaultProxy.for_url(url) as proxy:
            queue = RedisQueueProvider(proxy.url(url), prefix=prefix)
            measure("redis queue", proxy, lambda: queue.enqueue(QueueType.WORKFLOW, new_id()))
            queue.close()
            lock = RedisLockProvider(proxy.url(url), prefix=prefix)
            measure("redis lock", proxy, lambda: lock.acquire(new_id()))
            lock.close()
    finally:
        client = redis_module.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def rabbitmq(url: str) -> None:
    import pika

    from liteflow.providers.rabbitmq import RabbitMQQueueProvider

    prefix = f"liteflow-bench-{new_id()}"
    try:
        with FaultProxy.for_url(url, default_port=5672) as proxy:
            queue = RabbitMQQueueProvider(proxy.url(url), prefix=prefix)
            measure("rabbitmq queue", proxy, lambda: queue.enqueue(QueueType.WORKFLOW, new_id()))
            queue.close()
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue_type in QueueType:
            channel.queue_delete(queue=f"{prefix}.{queue_type.value}")
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--only", default="postgres,redis,rabbitmq")
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    print("default timeouts; one call per fault, then retried every 50 ms once the fault is lifted")
    if "postgres" in chosen:
        postgres(args.postgres)
    if "redis" in chosen:
        redis(args.redis)
    if "rabbitmq" in chosen:
        rabbitmq(args.amqp)


if __name__ == "__main__":
    main()
