"""RabbitMQ queue provider for LiteFlow (``pip install "liteflow-engine[rabbitmq]"``).

``RabbitMQQueueProvider("amqp://guest:guest@localhost:5672/%2F")`` or, in
``configure_workflow_host``, the URL ``"amqp://user:password@host:port/vhost"`` as
``queue_service`` (options as query parameters: ``?prefix=app&prefetch=32``). RabbitMQ provides
queues only: pair it with a lock provider shared by every node, such as Redis.
"""

try:
    import pika as _pika  # type: ignore[import-untyped]  # noqa: F401 - fail early, naming the extra
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError('the RabbitMQ provider needs pika: pip install "liteflow-engine[rabbitmq]"') from error

from ._queue import RabbitMQQueueProvider

__all__ = ["RabbitMQQueueProvider"]
