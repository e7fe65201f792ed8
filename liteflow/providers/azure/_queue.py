"""A :class:`QueueProvider` on Azure Storage queues.

One queue per :class:`QueueType`, named ``<prefix>-workflow`` and ``<prefix>-event``; a message's
text is the item id.

Delivery (at least once)
    ``dequeue`` receives one message with a *visibility timeout*: the message stays in the queue,
    invisible to every other consumer, until ``acknowledge`` deletes it (with the pop receipt that
    this receive returned). If the consumer dies, or takes longer than the visibility timeout, the
    message becomes visible again and is handed to another consumer: pick a timeout above your
    slowest step; the host's instance lock and the store's revision check keep a second delivery
    harmless. Acknowledging a message that has meanwhile been received again elsewhere fails on
    the stale pop receipt and is ignored (the other consumer now owns it).

Waiting
    Azure Storage queues have no blocking receive, so an empty queue is polled, with a pause that
    starts at ``poll_min`` and doubles up to ``poll_max`` (10 ms to 200 ms by default): an item is
    picked up within ``poll_max`` of its arrival, and an idle consumer makes at most ``1 / poll_max``
    requests a second. ``close`` wakes the pause at once.

Not provided
    No de-duplication (``enqueue`` of an id already waiting adds a second message) and only
    best-effort ordering: Azure Storage queues promise neither.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import ExponentialRetry, QueueClient, QueueMessage, QueueServiceClient

from liteflow.providers.spi import InvalidArgumentError, ProviderError, QueueProvider, QueueType

from ._common import check_name, provider_error

logger = logging.getLogger("liteflow.providers.azure")


class AzureQueueProvider(QueueProvider):
    """Work items in Azure Storage queues; see the module docstring for the guarantees.

    ``connection_string`` is the storage account's. ``prefix`` starts the queue names (lowercase
    letters, digits and hyphens). ``visibility_timeout`` (whole seconds, at least 1) is how long a
    dequeued item stays hidden from other consumers until it is acknowledged. ``client_options``
    go to ``QueueServiceClient.from_connection_string`` (``retry_policy`` defaults to two retries
    after about 1 and 3 s rather than the SDK's 15 s and more; ``connection_timeout`` to 5 s and
    ``read_timeout`` to 5 s rather than 300 s): a service that cannot be reached, does not answer or
    is busy makes a call raise :class:`ProviderUnavailableError` within about 20 s.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        prefix: str = "liteflow",
        visibility_timeout: int = 30,
        poll_min: float = 0.01,
        poll_max: float = 0.2,
        create_queues: bool = True,
        **client_options: Any,
    ) -> None:
        if isinstance(visibility_timeout, bool) or not isinstance(visibility_timeout, int) or visibility_timeout < 1:
            raise InvalidArgumentError(
                f"visibility_timeout must be a whole number of seconds >= 1, got {visibility_timeout!r}"
            )
        if not 0 < poll_min <= poll_max:
            raise InvalidArgumentError(f"need 0 < poll_min <= poll_max, got {poll_min} and {poll_max}")
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self._poll_min, self._poll_max = poll_min, poll_max
        names = {queue_type: check_name(f"{prefix}-{queue_type.value}", "queue name") for queue_type in QueueType}
        # The SDK's default retry first waits 15 s, stalling a consumer (for instance on a stale
        # keep-alive connection); retry sooner: about 1, then 3 s. Its timeouts (300 s) would let a
        # silent service hang a call for many minutes.
        client_options.setdefault(
            "retry_policy", ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1)
        )
        client_options.setdefault("connection_timeout", 5)
        client_options.setdefault("read_timeout", 5)
        try:
            self._service = QueueServiceClient.from_connection_string(connection_string, **client_options)
        except (ValueError, AzureError) as error:
            raise ProviderError(f"bad Azure Storage connection string: {error}") from error
        self._queues: dict[QueueType, QueueClient] = {
            queue_type: self._service.get_queue_client(name) for queue_type, name in names.items()
        }
        # Pop receipts of the messages this provider handed out and not yet acknowledged, per item;
        # an id can be out twice (no de-duplication), so a FIFO of receipts each.
        self._receipts: dict[tuple[QueueType, str], deque[tuple[str, str]]] = {}
        self._mutex = threading.Lock()
        self._closing = threading.Event()
        if create_queues:
            try:
                for client in self._queues.values():
                    self._create(client)
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"

    @staticmethod
    def _create(client: QueueClient) -> None:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise provider_error(f"create queue {client.queue_name}", error) from error

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        client = self._queues[QueueType(queue)]
        try:
            client.send_message(item_id)
        except AzureError as error:
            raise provider_error(f"send {item_id} to queue {client.queue_name}", error) from error

    def _receive(self, client: QueueClient) -> QueueMessage | None:
        pages = client.receive_messages(max_messages=1, visibility_timeout=self.visibility_timeout)
        message: QueueMessage | None = next(iter(pages), None)
        return message

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        queue_type = QueueType(queue)
        client = self._queues[queue_type]
        deadline = time.monotonic() + max(0.0, timeout)
        pause = self._poll_min
        while not self._closing.is_set():
            try:
                message = self._receive(client)
            except AzureError as error:
                if self._closing.is_set():
                    return None
                raise provider_error(f"receive from queue {client.queue_name}", error) from error
            if message is not None:
                item_id = str(message.content)
                with self._mutex:
                    receipts = self._receipts.setdefault((queue_type, item_id), deque())
                    receipts.append((message.id, str(message.pop_receipt)))
                return item_id
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._closing.wait(min(pause, remaining)):
                return None
            pause = min(pause * 2, self._poll_max)
        return None

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        queue_type = QueueType(queue)
        with self._mutex:
            receipts = self._receipts.get((queue_type, item_id))
            if not receipts:
                return
            message_id, pop_receipt = receipts.popleft()
            if not receipts:
                del self._receipts[(queue_type, item_id)]
        client = self._queues[queue_type]
        try:
            client.delete_message(message_id, pop_receipt)
        except (ResourceNotFoundError, HttpResponseError) as error:
            # Deleted already, or visible again and received by another consumer (stale receipt).
            logger.info("%s of %s was redelivered before its acknowledgement: %s", item_id, client.queue_name, error)
        except AzureError as error:
            raise provider_error(f"delete {item_id} from queue {client.queue_name}", error) from error

    def close(self) -> None:
        """Wake blocked ``dequeue`` calls and close the HTTP clients. Messages handed out and not
        acknowledged reappear after their visibility timeout."""
        if self._closing.is_set():
            return
        self._closing.set()
        for client in self._queues.values():
            client.close()
        self._service.close()
