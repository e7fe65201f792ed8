"""LiteFlow's public API: ``from liteflow.core import *`` gives everything a workflow author needs."""

from ._builder import StepBuilder, Workflow, WorkflowBuilder
from ._config import configure_workflow_host
from ._errors import (
    BuilderError,
    ChildWorkflowError,
    ConcurrencyError,
    ConfigurationError,
    DefinitionError,
    DuplicateWorkflowError,
    EventNotFoundError,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    ProviderError,
    ProviderUnavailableError,
    SerializationError,
    StepTimeoutError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowTimeoutError,
)
from ._health import ComponentHealth, Health
from ._host import WorkflowHost
from ._lifecycle import LifecycleEvent, LifecycleEventType, WorkflowMiddleware
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
from ._providers import InstanceQuery, LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._serialization import register_type
from ._steps import (
    ErrorBehavior,
    ExecutionResult,
    RetryPolicy,
    StepBody,
    StepExecutionContext,
    StepMiddleware,
    WorkflowStep,
)

__all__ = [
    "BuilderError",
    "ChildWorkflowError",
    "ComponentHealth",
    "ConcurrencyError",
    "ConfigurationError",
    "DefinitionError",
    "DuplicateWorkflowError",
    "ErrorBehavior",
    "Event",
    "EventNotFoundError",
    "EventSubscription",
    "ExecutionError",
    "ExecutionPointer",
    "ExecutionResult",
    "Health",
    "HostOptions",
    "InstanceQuery",
    "InvalidArgumentError",
    "InvalidOperationError",
    "LifecycleEvent",
    "LifecycleEventType",
    "LiteFlowError",
    "LocalLockProvider",
    "LockProvider",
    "MemoryPersistenceProvider",
    "PersistenceProvider",
    "PointerStatus",
    "ProviderError",
    "ProviderUnavailableError",
    "QueueProvider",
    "QueueType",
    "RetryPolicy",
    "SerializationError",
    "SingleNodeQueueProvider",
    "StepBody",
    "StepBuilder",
    "StepExecutionContext",
    "StepMiddleware",
    "StepTimeoutError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowHost",
    "WorkflowInstance",
    "WorkflowMiddleware",
    "WorkflowNotFoundError",
    "WorkflowNotRegisteredError",
    "WorkflowStatus",
    "WorkflowStep",
    "WorkflowTimeoutError",
    "configure_workflow_host",
    "register_type",
]
