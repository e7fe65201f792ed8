"""A :class:`QueueProvider` on RabbitMQ, with pika's ``BlockingConnection``.

Queues
    One durable priority queue (``x-max-priority`` 10) per queue type, ``{prefix}.workflow`` and
    ``{prefix}.event``, declared on connect. LiteFlow priorities -5..5 become message priorities
    0..10 (beyond that they are clamped); RabbitMQ hands out the highest waiting first, and the
    messages prefetched by a node are taken here in priority order too. Best-effort: a message
    already prefetched by another node is not overtaken there, and a queue declared by a LiteFlow
    before priorities keeps working without them (a warning says so).
    Messages are persistent (delivery mode 2) and published to the default exchange with
    ``mandatory`` set, on a channel in publisher-confirm mode: ``enqueue`` returns only once the
    broker has taken responsibility for the message, and raises :class:`ProviderError` otherwise.

Delivery (at least once)
    A node starts consuming a queue with manual acknowledgement at its first ``dequeue`` of that
    queue (so a process that only enqueues holds no messages), with ``prefetch`` unacknowledged
    messages at most. ``acknowledge`` acks the delivery that ``dequeue`` handed out. A message
    not acknowledged when its consumer's connection closes, because the node stopped, crashed or
    lost the network, is put back by RabbitMQ at once, ahead of newer messages, and handed to
    another consumer: a crash is noticed when the TCP connection drops, or at worst after two
    missed heartbeats (10 s unless the URL's ``?heartbeat=`` says otherwise). ``close`` closes the connection, so this
    node's unacknowledged and buffered messages are redelivered to others. RabbitMQ does not
    de-duplicate: an id queued twice is delivered twice (the host's lock and revision check make
    the second delivery harmless). An unacknowledged message stays with its consumer while the
    connection lives, up to the broker's ``consumer_timeout`` (30 min by default): past it the
    broker closes the channel, this provider reconnects, and the message is delivered again.

Threads
    A ``BlockingConnection`` must only be used by one thread. Each provider owns one connection
    and one I/O thread that alone touches it: it keeps the heartbeats going, receives deliveries
    into per-queue buffers that ``dequeue`` waits on (a condition variable: no polling), and runs
    publishes and acks that other threads hand it. If the connection drops, the I/O thread
    reconnects with capped exponential backoff (logging the outage once when it starts and once
    when it ends), declares the queues again and resumes consuming; deliveries from the old
    connection are dropped (RabbitMQ redelivers them) and acks for them are ignored.

Failures
    A broker that is down, unreachable, silent (no heartbeat), out of disk or memory (it blocks
    publishers: ``blocked_connection_timeout``) or that refuses a message makes the call raise
    :class:`ProviderUnavailableError` within ``publish_timeout``; bad credentials or a missing
    vhost raise :class:`ProviderError`. While the connection is down ``dequeue`` raises
    :class:`ProviderUnavailableError` too, rather than looking like an empty queue.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queue_module
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pika  # type: ignore[import-untyped]
import pika.exceptions  # type: ignore[import-untyped]

from liteflow.providers.spi import (
    Backoff,
    ConfigurationError,
    InvalidArgumentError,
    OutageLog,
    ProviderError,
    ProviderUnavailableError,
    QueueProvider,
    QueueType,
    split_url,
)

logger = logging.getLogger("liteflow.providers.rabbitmq")

_AMQP_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)
_IO_WAIT = 1.0
"""Longest the I/O thread waits for network events before looking at handed-over work again."""

# (connection generation, delivery tag, item id, AMQP priority)
_Delivery = tuple[int, int, str, int]

MAX_PRIORITY_LEVEL = 10
"""The queues' ``x-max-priority``: LiteFlow priorities -5..5 map to levels 0..10 (0 to 5), those
beyond are clamped to the nearest end. RabbitMQ advises few levels: each costs the broker."""
_DEFAULT_LEVEL = MAX_PRIORITY_LEVEL // 2


def priority_level(priority: int) -> int:
    """The AMQP message priority of a LiteFlow priority."""
    return max(0, min(MAX_PRIORITY_LEVEL, _DEFAULT_LEVEL + priority))


HEARTBEAT = 10
"""Default seconds between heartbeats: a silent broker is noticed after about two."""
CONNECT_TIMEOUT = 5.0
"""Default seconds to open the TCP connection (the AMQP handshake gets three times as long)."""
BLOCKED_CONNECTION_TIMEOUT = 15.0
"""Default seconds a connection may stay blocked by a broker resource alarm (disk or memory
full) before it is dropped and publishes fail."""
_CONFIGURATION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.AuthenticationError,
    pika.exceptions.UnroutableError,  # the queue is gone
)
# Not IncompatibleProtocolError: pika also raises it for a connection reset during the handshake.
_CONFIGURATION_REPLIES = frozenset({403, 404, 406, 530})
"""Broker close codes that mean "this cannot work as configured": access refused, not found,
precondition failed (a queue declared with other arguments), not allowed (no such vhost)."""


def _translate(what: str, error: BaseException) -> ProviderError:
    """The :class:`ProviderError` to raise (from ``error``) for a failure to do ``what``:
    :class:`ProviderUnavailableError` unless the error says the configuration is wrong."""
    code = getattr(error, "reply_code", None)
    if isinstance(error, _CONFIGURATION_ERRORS) or (
        isinstance(error, pika.exceptions.ConnectionClosedByBroker | pika.exceptions.ChannelClosedByBroker)
        and code in _CONFIGURATION_REPLIES
    ):
        return ProviderError(f"RabbitMQ refused to {what}: {error!r}")
    return ProviderUnavailableError(f"RabbitMQ is unavailable to {what}: {error!r}")


def _is_dropped_socket(error: ValueError) -> bool:
    """pika's ValueError for a socket that lost its peer between connect and first write."""
    return str(error).startswith("Expected connected socket")


class RabbitMQQueueProvider(QueueProvider):
    """Durable, confirmed, at-least-once queues on RabbitMQ; see the module docstring.

    ``url`` is an ``amqp://user:password@host:port/vhost`` URL (``%2F`` is the default vhost;
    pika's own query parameters such as ``heartbeat`` are accepted). ``prefetch`` caps the
    messages this node holds per queue, those being processed included: keep it at or above the
    host's workers for that queue. ``publish_timeout`` bounds how long ``enqueue`` waits.
    ``heartbeat``, ``connect_timeout`` and ``blocked_connection_timeout`` (seconds) apply unless
    the URL sets pika's options of those names (``socket_timeout`` for the connect timeout).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "liteflow",
        prefetch: int = 16,
        publish_timeout: float = 30.0,
        heartbeat: int = HEARTBEAT,
        connect_timeout: float = CONNECT_TIMEOUT,
        blocked_connection_timeout: float = BLOCKED_CONNECTION_TIMEOUT,
    ) -> None:
        if prefetch < 1:
            raise InvalidArgumentError(f"prefetch must be at least 1, got {prefetch}")
        if not publish_timeout > 0 or not connect_timeout > 0 or not blocked_connection_timeout > 0:
            raise InvalidArgumentError(
                f"timeouts must be positive, got publish_timeout={publish_timeout}, "
                f"connect_timeout={connect_timeout}, blocked_connection_timeout={blocked_connection_timeout}"
            )
        try:
            self._parameters = pika.URLParameters(url)
        except ValueError as error:
            raise ConfigurationError(f"bad AMQP URL {url!r}: {error}") from error
        given = {name for name, _ in parse_qsl(urlsplit(url).query)}
        if "heartbeat" not in given:
            self._parameters.heartbeat = heartbeat
        if "socket_timeout" not in given:
            self._parameters.socket_timeout = connect_timeout
        if "stack_timeout" not in given:
            self._parameters.stack_timeout = 3 * (self._parameters.socket_timeout or connect_timeout)
        if "blocked_connection_timeout" not in given:
            self._parameters.blocked_connection_timeout = blocked_connection_timeout
        self.prefix = prefix
        self.prefetch = prefetch
        self.publish_timeout = publish_timeout
        self._names = {queue: f"{prefix}.{queue.value}" for queue in QueueType}
        self._mutex = threading.Lock()
        self._arrived = {queue: threading.Condition(self._mutex) for queue in QueueType}
        self._buffers: dict[QueueType, deque[_Delivery]] = {queue: deque() for queue in QueueType}
        self._unacked: dict[tuple[QueueType, str], list[tuple[int, int]]] = {}
        self._consuming: set[QueueType] = set()
        self._commands: queue_module.SimpleQueue[tuple[Callable[[], None], Future[None]]] = queue_module.SimpleQueue()
        self._closing = threading.Event()
        self._generation = 0
        self._connection: Any = None
        self._channel: Any = None
        self._lost: BaseException | None = None  # why the connection last dropped
        self._connect()  # in the caller's thread, so a wrong URL or a broker down fails here
        self._io = threading.Thread(target=self._run, name=f"liteflow-rabbitmq-{prefix}", daemon=True)
        self._io.start()

    @classmethod
    def from_url(cls, url: str) -> RabbitMQQueueProvider:
        """``amqp://user:password@host:port/vhost``; LiteFlow options as query parameters
        (``?prefix=app&prefetch=32&publish_timeout=10``), any others go to pika."""
        parsers: dict[str, Callable[[str], Any]] = {"prefix": str, "prefetch": int, "publish_timeout": float}
        clean, options = split_url(url, parsers, schemes=("amqp", "amqps"))
        return cls(clean, **options)

    # -- the public calls, from any thread ------------------------------------------------------

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        self._call(partial(self._publish, queue, item_id, priority_level(priority)), f"queue {queue.value} {item_id}")

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._closing.is_set():
            return None
        if queue not in self._consuming:
            self._call(partial(self._consume, queue), f"consume the {queue.value} queue")
        elif self._connection is None:
            lost = self._lost
            raise ProviderUnavailableError(f"RabbitMQ connection lost, reconnecting: {lost!r}") from lost
        buffer = self._buffers[queue]
        with self._mutex:
            self._arrived[queue].wait_for(
                lambda: bool(buffer) or self._closing.is_set(), max(0.0, deadline - time.monotonic())
            )
            if self._closing.is_set() or not buffer:
                return None  # once closing, buffered messages go back to the broker with the connection
            generation, tag, item_id, _ = buffer.popleft()
            self._unacked.setdefault((queue, item_id), []).append((generation, tag))
            return item_id

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        with self._mutex:
            taken = self._unacked.get((queue, item_id))
            if not taken:
                return
            generation, tag = taken.pop(0)
            if not taken:
                del self._unacked[(queue, item_id)]
        # No need to wait: an ack that never arrives means one more delivery, which is allowed.
        self._submit(partial(self._ack, generation, tag))

    def close(self) -> None:
        """Wake blocked ``dequeue`` calls at once, send acks already made, and close the
        connection: RabbitMQ redelivers this node's unacknowledged messages to other consumers."""
        with self._mutex:
            if self._closing.is_set():
                return
            self._closing.set()
            for condition in self._arrived.values():
                condition.notify_all()
        self._wake()
        self._io.join(timeout=10)

    def _submit(self, command: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        if self._closing.is_set():
            future.set_exception(ProviderError("the RabbitMQ queue provider is closed"))
            return future
        self._commands.put((command, future))
        self._wake()
        return future

    def _call(self, command: Callable[[], None], what: str) -> None:
        future = self._submit(command)
        try:
            future.result(timeout=self.publish_timeout)
        except FutureTimeout as error:
            future.cancel()  # not started yet (the I/O thread is stuck): then it never will be
            raise ProviderUnavailableError(f"RabbitMQ did not {what} within {self.publish_timeout} s") from error
        except ProviderError as error:  # one instance may fail several calls: raise a fresh one
            raise type(error)(f"could not {what}: {error}") from (error.__cause__ or error)
        except Exception as error:
            raise _translate(what, error) from error

    def _wake(self) -> None:
        connection = self._connection
        try:
            if connection is not None:
                connection.add_callback_threadsafe(lambda: None)  # makes process_data_events return
        except _AMQP_ERRORS:
            pass  # reconnecting: the I/O thread looks at the commands once connected

    # -- the I/O thread: the only one that touches the connection ---------------------------------

    def _connect(self) -> None:
        try:
            connection = pika.BlockingConnection(self._parameters)
            channel = self._open_channel(connection)
            for name in self._names.values():
                channel = self._declare(connection, channel, name)
        except _AMQP_ERRORS as error:
            raise _translate(f"connect at {self._parameters.host}:{self._parameters.port}", error) from error
        except ValueError as error:
            if not _is_dropped_socket(error):
                raise
            # pika reports a connection the other end dropped as soon as it was accepted this way.
            where = f"{self._parameters.host}:{self._parameters.port}"
            raise ProviderUnavailableError(f"RabbitMQ is unavailable to connect at {where}: {error!r}") from error
        with self._mutex:
            self._generation += 1
            self._connection, self._channel = connection, channel
        for queue in list(self._consuming):
            self._consume(queue, again=True)

    def _open_channel(self, connection: Any) -> Any:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=self.prefetch)
        return channel

    def _declare(self, connection: Any, channel: Any, name: str) -> Any:
        """Declare a priority queue; one that exists without priorities (made by a LiteFlow before
        them) is used as it is, and the channel its refusal closed is replaced. Returns the channel."""
        try:
            channel.queue_declare(queue=name, durable=True, arguments={"x-max-priority": MAX_PRIORITY_LEVEL})
            return channel
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code != 406:
                raise
        logger.warning(
            "RabbitMQ queue %s exists without x-max-priority: priorities are ignored on it until it is deleted", name
        )
        channel = self._open_channel(connection)
        channel.queue_declare(queue=name, durable=True)
        return channel

    def _run(self) -> None:
        backoff, outage = Backoff(initial=0.2, cap=10.0), OutageLog("RabbitMQ connection", logger)
        while not self._closing.is_set():
            try:
                if self._connection is None:
                    self._connect()
                    backoff.reset()
                    outage.recovered()
                while not self._closing.is_set():
                    self._connection.process_data_events(time_limit=_IO_WAIT)
                    self._run_commands()
                self._run_commands()  # acks handed over before close() still count
            except Exception as error:  # the I/O thread must outlive any failure: reconnect
                outage.failed(error)
                self._lost = error
                reason = error if isinstance(error, ProviderError) else _translate("keep its connection", error)
                if reason is not error:
                    reason.__cause__ = error
                self._drop_connection(reason)
                self._closing.wait(backoff.next_delay())
        self._drop_connection(ProviderError("the RabbitMQ queue provider is closed"))

    def _run_commands(self) -> None:
        while True:
            try:
                command, future = self._commands.get_nowait()
            except queue_module.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                command()
            except _AMQP_ERRORS as error:
                future.set_exception(error)
                raise  # the channel or connection is gone: reconnect
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(None)

    def _drop_connection(self, reason: ProviderError) -> None:
        with self._mutex:
            connection, self._connection, self._channel = self._connection, None, None
            for buffer in self._buffers.values():
                buffer.clear()  # RabbitMQ redelivers them when the connection goes
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_AMQP_ERRORS):
                connection.close()
        while True:
            try:
                _, future = self._commands.get_nowait()
            except queue_module.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(reason)

    def _publish(self, queue: QueueType, item_id: str, level: int) -> None:
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="text/plain", priority=level
        )
        # With confirms on, this returns once the broker has the message, else raises (nack, unroutable).
        self._channel.basic_publish(
            exchange="", routing_key=self._names[queue], body=item_id.encode(), properties=properties, mandatory=True
        )

    def _consume(self, queue: QueueType, again: bool = False) -> None:
        if queue in self._consuming and not again:
            return
        self._channel.basic_consume(
            queue=self._names[queue], on_message_callback=partial(self._on_message, queue), auto_ack=False
        )
        self._consuming.add(queue)

    def _on_message(self, queue: QueueType, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        with self._mutex:
            buffer = self._buffers[queue]
            level = properties.priority if isinstance(properties.priority, int) else 0
            # Prefetched messages wait here: one of higher priority goes ahead of those already in.
            position = len(buffer)
            while position and buffer[position - 1][3] < level:
                position -= 1
            buffer.insert(position, (self._generation, method.delivery_tag, body.decode(), level))
            self._arrived[queue].notify()

    def _ack(self, generation: int, tag: int) -> None:
        if generation == self._generation and self._channel is not None:
            self._channel.basic_ack(delivery_tag=tag)
