"""The queue contract, and redelivery after a consumer's death, on a real RabbitMQ."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

pika = pytest.importorskip("pika")

from liteflow.core import QueueType
from liteflow.core._config import _QUEUE_URLS, _from_url
from liteflow.core._models import new_id
from liteflow.providers.rabbitmq import RabbitMQQueueProvider
from liteflow.testing import QueueContract

Prefix = Callable[[], str]


@pytest.fixture
def prefix(amqp_url: str) -> Iterator[Prefix]:
    """Hands out a fresh queue-name prefix per call, and deletes those queues afterwards."""
    used: list[str] = []

    def make() -> str:
        used.append(f"liteflow-test-{new_id()}")
        return used[-1]

    yield make
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for name in used:
        for queue in QueueType:
            channel.queue_delete(queue=f"{name}.{queue.value}")
    connection.close()


class TestRabbitMQQueue(QueueContract):
    deduplicates = False  # RabbitMQ delivers an id queued twice twice

    @pytest.fixture
    def queue(self, amqp_url: str, prefix: Prefix) -> Iterator[RabbitMQQueueProvider]:
        provider = RabbitMQQueueProvider(amqp_url, prefix=prefix())
        yield provider
        provider.close()


def test_message_of_a_consumer_that_died_goes_to_another_node(amqp_url: str, prefix: Prefix) -> None:
    name = prefix()
    dying = RabbitMQQueueProvider(amqp_url, prefix=name)
    other = RabbitMQQueueProvider(amqp_url, prefix=name)
    try:
        dying.enqueue(QueueType.WORKFLOW, "wf-1")
        assert dying.dequeue(QueueType.WORKFLOW, 2.0) == "wf-1"
        assert other.dequeue(QueueType.WORKFLOW, 0.3) is None  # held, unacknowledged, by `dying`
        dying.close()  # its connection closes without an ack, as when a node dies
        closed = time.monotonic()
        assert other.dequeue(QueueType.WORKFLOW, 5.0) == "wf-1"
        assert time.monotonic() - closed < 1.0
        other.acknowledge(QueueType.WORKFLOW, "wf-1")
    finally:
        dying.close()
        other.close()


def test_acknowledged_message_is_not_redelivered(amqp_url: str, prefix: Prefix) -> None:
    name = prefix()
    first = RabbitMQQueueProvider(amqp_url, prefix=name)
    second = RabbitMQQueueProvider(amqp_url, prefix=name)
    try:
        first.enqueue(QueueType.EVENT, "ev-1")
        assert first.dequeue(QueueType.EVENT, 2.0) == "ev-1"
        first.acknowledge(QueueType.EVENT, "ev-1")
        first.close()  # sends the ack before closing
        assert second.dequeue(QueueType.EVENT, 0.3) is None
    finally:
        second.close()


def test_a_node_that_only_enqueues_holds_no_messages(amqp_url: str, prefix: Prefix) -> None:
    name = prefix()
    producer = RabbitMQQueueProvider(amqp_url, prefix=name)
    consumer = RabbitMQQueueProvider(amqp_url, prefix=name)
    try:
        items = [f"wf-{n}" for n in range(3)]
        for item in items:
            producer.enqueue(QueueType.WORKFLOW, item)
        taken = [consumer.dequeue(QueueType.WORKFLOW, 2.0) for _ in items]
        assert taken == items
    finally:
        producer.close()
        consumer.close()


def test_messages_are_durable_across_providers(amqp_url: str, prefix: Prefix) -> None:
    name = prefix()
    producer = RabbitMQQueueProvider(amqp_url, prefix=name)
    producer.enqueue(QueueType.WORKFLOW, "wf-kept")
    producer.close()
    consumer = _from_url("queue", f"{amqp_url}?prefix={name}&prefetch=4", _QUEUE_URLS)
    try:
        assert isinstance(consumer, RabbitMQQueueProvider)
        assert (consumer.prefix, consumer.prefetch) == (name, 4)
        assert consumer.dequeue(QueueType.WORKFLOW, 2.0) == "wf-kept"
    finally:
        consumer.close()


def test_priorities_map_to_message_levels() -> None:
    from liteflow.providers.rabbitmq._queue import priority_level

    assert [priority_level(p) for p in (-1_000, -5, -1, 0, 1, 5, 1_000)] == [0, 0, 4, 5, 6, 10, 10]


def test_a_queue_declared_without_priorities_is_still_used(amqp_url: str, prefix: Prefix) -> None:
    name = prefix()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare(queue=f"{name}.workflow", durable=True)  # as before priorities
    connection.close()
    queue = RabbitMQQueueProvider(amqp_url, prefix=name)
    try:
        queue.enqueue(QueueType.WORKFLOW, "low")
        queue.enqueue(QueueType.WORKFLOW, "high", priority=3)
        taken = [queue.dequeue(QueueType.WORKFLOW, 2.0), queue.dequeue(QueueType.WORKFLOW, 2.0)]
        assert sorted(t for t in taken if t is not None) == ["high", "low"]
        queue.enqueue(QueueType.EVENT, "ev")  # the event queue was declared with priorities
        assert queue.dequeue(QueueType.EVENT, 2.0) == "ev"
    finally:
        queue.close()
