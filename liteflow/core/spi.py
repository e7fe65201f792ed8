"""What a provider needs from the core, for :mod:`liteflow.providers.spi` (documented there) to
re-export: the one public module of the core that names its private modules' objects for providers.
"""

from __future__ import annotations

from ._backoff import Backoff, OutageLog
from ._errors import (
    ConcurrencyError,
    ConfigurationError,
    EventNotFoundError,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    ProviderError,
    ProviderUnavailableError,
    SerializationError,
    WorkflowNotFoundError,
)
from ._leases import LeasedLockProvider
from ._models import Event, EventSubscription, ExecutionError, WorkflowInstance, WorkflowStatus, utcnow
from ._providers import (
    ActivityCount,
    ActivityCounter,
    InstanceQuery,
    LockProvider,
    PersistenceProvider,
    QueueProvider,
    QueueType,
)
from ._records import (
    error_from_record,
    error_to_record,
    event_row,
    event_to_record,
    instance_record_text,
    instance_to_record,
    json_text,
    read_event,
    read_instance,
    save_rows,
    subscription_from_record,
    subscription_to_record,
)
from ._starting_workflows import MAX_PRIORITY
from ._urls import split_url

__all__ = [
    "MAX_PRIORITY",
    "ActivityCount",
    "ActivityCounter",
    "Backoff",
    "ConcurrencyError",
    "ConfigurationError",
    "Event",
    "EventNotFoundError",
    "EventSubscription",
    "ExecutionError",
    "InstanceQuery",
    "InvalidArgumentError",
    "InvalidOperationError",
    "LeasedLockProvider",
    "LiteFlowError",
    "LockProvider",
    "OutageLog",
    "PersistenceProvider",
    "ProviderError",
    "ProviderUnavailableError",
    "QueueProvider",
    "QueueType",
    "SerializationError",
    "WorkflowInstance",
    "WorkflowNotFoundError",
    "WorkflowStatus",
    "error_from_record",
    "error_to_record",
    "event_row",
    "event_to_record",
    "instance_record_text",
    "instance_to_record",
    "json_text",
    "read_event",
    "read_instance",
    "save_rows",
    "split_url",
    "subscription_from_record",
    "subscription_to_record",
    "utcnow",
]
