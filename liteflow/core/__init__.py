"""LiteFlow's public API: ``from liteflow.core import *`` gives everything a workflow author needs."""

from ._builder import StepBuilder, Workflow, WorkflowBuilder
from ._config import configure_workflow_host
from ._errors import (
    BuilderError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateWorkflowError,
    EventNotFoundError,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    ProviderError,
    SerializationError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowTimeoutError,
)
from ._host import WorkflowHost
from ._memory import LocalLockProvider, MemoryPersistenceProvider, SingleNodeQueueProvider
from ._models import (
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    WorkflowInstance,
    WorkflowStatus,
)
from ._options import HostOptions
from ._providers import LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._serialization import register_type
from ._steps import ErrorBehavior, ExecutionResult, StepBody, StepExecutionContext, WorkflowStep

__all__ = [
    "BuilderError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateWorkflowError",
    "ErrorBehavior",
    "Event",
    "EventNotFoundError",
    "EventSubscription",
    "ExecutionError",
    "ExecutionPointer",
    "ExecutionResult",
    "HostOptions",
    "InvalidArgumentError",
    "InvalidOperationError",
    "LiteFlowError",
    "LocalLockProvider",
    "LockProvider",
    "MemoryPersistenceProvider",
    "PersistenceProvider",
    "PointerStatus",
    "ProviderError",
    "QueueProvider",
    "QueueType",
    "SerializationError",
    "SingleNodeQueueProvider",
    "StepBody",
    "StepBuilder",
    "StepExecutionContext",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowHost",
    "WorkflowInstance",
    "WorkflowNotFoundError",
    "WorkflowNotRegisteredError",
    "WorkflowStatus",
    "WorkflowStep",
    "WorkflowTimeoutError",
    "configure_workflow_host",
    "register_type",
]
