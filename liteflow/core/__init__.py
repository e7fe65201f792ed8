"""LiteFlow's public API: ``from liteflow.core import *`` gives everything a workflow author needs."""

from liteflow import __version__ as __version__

from ._activities import PendingActivity
from ._builder import StepBuilder, Workflow, WorkflowBuilder
from ._config import configure_workflow_host
from ._definitions import load_workflow, register_step
from ._errors import (
    ActivityError,
    BuilderError,
    ChildWorkflowError,
    ConcurrencyError,
    ConfigurationError,
    DefinitionError,
    DuplicateWorkflowError,
    EventNotFoundError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidOperationError,
    LiteFlowError,
    NotIdleError,
    PayloadTooLargeError,
    ProviderError,
    ProviderUnavailableError,
    SagaError,
    SerializationError,
    StepTimeoutError,
    UserActionError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowTimeoutError,
)
from ._export import export_workflow
from ._graph import workflow_graph
from ._health import ComponentHealth, Health
from ._host import WorkflowHost
from ._lifecycle import LifecycleEvent, LifecycleEventType, WorkflowMiddleware
from ._limits import Concurrency
from ._logcontext import LogContextFilter
from ._memory import LocalLockProvider, MemoryPersistenceProvider, SingleNodeQueueProvider
from ._models import (
    CompactedHistory,
    Event,
    EventSubscription,
    ExecutionError,
    ExecutionPointer,
    PointerStatus,
    StepTally,
    UnreadableData,
    WorkflowInstance,
    WorkflowStatus,
)
from ._options import HostOptions
from ._providers import InstanceQuery, LockProvider, PersistenceProvider, QueueProvider, QueueType
from ._schedules import Schedule
from ._serialization import register_module, register_type
from ._steps import (
    ErrorBehavior,
    ExecutionResult,
    RetryPolicy,
    StepBody,
    StepExecutionContext,
    StepMiddleware,
    WorkflowStep,
)
from ._user_tasks import UserAction

__all__ = [
    "ActivityError",
    "BuilderError",
    "ChildWorkflowError",
    "CompactedHistory",
    "ComponentHealth",
    "Concurrency",
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
    "InvalidArgumentTypeError",
    "InvalidOperationError",
    "LifecycleEvent",
    "LifecycleEventType",
    "LiteFlowError",
    "LocalLockProvider",
    "LockProvider",
    "LogContextFilter",
    "MemoryPersistenceProvider",
    "NotIdleError",
    "PayloadTooLargeError",
    "PendingActivity",
    "PersistenceProvider",
    "PointerStatus",
    "ProviderError",
    "ProviderUnavailableError",
    "QueueProvider",
    "QueueType",
    "RetryPolicy",
    "SagaError",
    "Schedule",
    "SerializationError",
    "SingleNodeQueueProvider",
    "StepBody",
    "StepBuilder",
    "StepExecutionContext",
    "StepMiddleware",
    "StepTally",
    "StepTimeoutError",
    "UnreadableData",
    "UserAction",
    "UserActionError",
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
    "export_workflow",
    "load_workflow",
    "register_module",
    "register_step",
    "register_type",
    "workflow_graph",
]
