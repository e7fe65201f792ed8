"""The queue fault contract on RabbitMQ, reached through a FaultProxy; error translation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pika = pytest.importorskip("pika")

from liteflow.core import InvalidArgumentError, ProviderError, ProviderUnavailableError, QueueType
from liteflow.core._models import new_id
from liteflow.providers.rabbitmq import RabbitMQQueueProvider
from liteflow.providers.rabbitmq._queue import _translate
from liteflow.testing import FaultProxy, QueueFaultContract

# Short timeouts, so that a black-holed broker is given up on within a few seconds.
TIMEOUTS = {"heartbeat": 2, "connect_timeout": 1.0, "publish_timeout": 4.0}


@pytest.fixture
def queue_prefix(amqp_url: str) -> Iterator[str]:
    """A fresh queue-name prefix; its queues are deleted afterwards."""
    name = f"liteflow-test-{new_id()}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in QueueType:
        channel.queue_delete(queue=f"{name}.{queue.value}")
    connection.close()


class TestRabbitMQQueueFaults(QueueFaultContract):
    @pytest.fixture
    def fault_proxy(self, amqp_url: str) -> Iterator[FaultProxy]:
        with FaultProxy.for_url(amqp_url, default_port=5672) as proxy:
            yield proxy

    @pytest.fixture
    def queue(self, fault_proxy: FaultProxy, amqp_url: str, queue_prefix: str) -> Iterator[RabbitMQQueueProvider]:
        provider = RabbitMQQueueProvider(fault_proxy.url(amqp_url), prefix=queue_prefix, **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


def test_broker_down_at_start_is_unavailable(amqp_url: str) -> None:
    with FaultProxy.for_url(amqp_url, default_port=5672) as proxy:
        proxy.cut()
        with pytest.raises(ProviderUnavailableError) as raised:
            RabbitMQQueueProvider(proxy.url(amqp_url), connect_timeout=1.0)
        assert raised.value.__cause__ is not None


def test_bad_credentials_are_a_configuration_error(amqp_url: str) -> None:
    with pytest.raises(ProviderError) as raised:
        RabbitMQQueueProvider(amqp_url.replace("guest:guest", "guest:wrong"))
    assert not isinstance(raised.value, ProviderUnavailableError)


def test_bad_timeouts_are_refused(amqp_url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="publish_timeout"):
        RabbitMQQueueProvider(amqp_url, publish_timeout=0)


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (pika.exceptions.StreamLostError("Transport indicated EOF"), True),
        (pika.exceptions.AMQPHeartbeatTimeout("no heartbeat"), True),
        (pika.exceptions.ConnectionBlockedTimeout("blocked by a resource alarm"), True),
        (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker shutdown"), True),
        (pika.exceptions.ChannelClosedByBroker(541, "INTERNAL_ERROR"), True),
        (pika.exceptions.NackError([]), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (pika.exceptions.IncompatibleProtocolError("StreamLostError: reset during the handshake"), True),
        (pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED"), False),
        (pika.exceptions.ConnectionClosedByBroker(530, "NOT_ALLOWED - vhost not found"), False),
        (pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no queue"), False),
        (pika.exceptions.UnroutableError([]), False),
    ],
)
def test_driver_errors_map_to_the_right_provider_error(error: Exception, is_unavailable: bool) -> None:
    assert isinstance(_translate("test", error), ProviderUnavailableError) is is_unavailable
