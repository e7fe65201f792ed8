"""LiteFlow's exceptions. Every one derives from :class:`LiteFlowError`::

LiteFlowError
├── WorkflowNotRegisteredError   start/resume of an unknown workflow id or version
├── DuplicateWorkflowError       two different definitions under one id and version
├── BuilderError                 misuse of the workflow builder
├── WorkflowNotFoundError        no instance with that id in the store
├── EventNotFoundError           no event with that id in the store
├── ConcurrencyError             a save lost against a newer revision of the instance
├── SerializationError           data that cannot be stored or read back safely
│   └── PayloadTooLargeError     data over HostOptions.max_payload_bytes
├── InvalidOperationError        a call that makes no sense in the current state
│   └── NotIdleError             WorkflowTestHost.run_until_idle found work still due (also a RuntimeError)
├── InvalidArgumentError         a bad argument to a public call (also a ValueError)
│   └── InvalidArgumentTypeError an argument of the wrong type (also a TypeError)
├── ConfigurationError           an unknown or invalid host option or provider
│   └── ProviderError            a backend misconfigured or not installed
│       └── ProviderUnavailableError  the backend did not answer, or the connection broke
├── DefinitionError              a workflow definition given as data that cannot be loaded
├── WorkflowTimeoutError         waiting for a workflow took longer than allowed
├── StepTimeoutError             a step ran past its timeout (goes through its error behaviour)
├── ChildWorkflowError           a sub-workflow ended terminated (raised in the parent's step)
├── SagaError                    a saga was compensated and has an on_error of its own (raised in the saga's step)
├── ActivityError                a worker submitted an activity's failure (raised in the activity's step)
└── UserActionError              an answer to a user task by the wrong user or with an unknown option

Errors about one workflow instance or one step carry them as fields, not only in the message:
``error.workflow_id`` (the instance's id) and ``error.step`` (the step's id), ``None`` where the
raising code does not know them.
"""

from __future__ import annotations


class LiteFlowError(Exception):
    """Base class of every error raised by LiteFlow.

    Args:
        *args: The message (and any further arguments), as for any exception.
        workflow_id: The workflow instance the error is about, where the raising code knows it.
        step: The id of the step the error is about, where the raising code knows it.

    Attributes:
        workflow_id: The instance's id, or ``None``.
        step: The step's id, or ``None``.
    """

    def __init__(self, *args: object, workflow_id: str | None = None, step: int | None = None) -> None:
        super().__init__(*args)
        self.workflow_id = workflow_id
        self.step = step


class WorkflowNotRegisteredError(LiteFlowError):
    """No definition registered under that workflow id (and version)."""


class DuplicateWorkflowError(LiteFlowError):
    """Two different definitions registered under one id and version."""


class BuilderError(LiteFlowError):
    """The workflow builder was used in a way that cannot make a definition."""


class WorkflowNotFoundError(LiteFlowError):
    """No workflow instance with that id in the store (``error.workflow_id``)."""


class EventNotFoundError(LiteFlowError):
    """No event with that id in the store."""


class ConcurrencyError(LiteFlowError):
    """A save lost against a newer revision of the instance (``error.workflow_id``):
    someone else saved it first."""


class SerializationError(LiteFlowError):
    """Data that cannot be stored as JSON, or read back safely."""


class PayloadTooLargeError(SerializationError):
    """Data larger, as stored JSON, than ``HostOptions.max_payload_bytes``: nothing was saved.

    ``what`` names the data (``"workflow data"``, ``"event data"``, ``"persistence data of step
    3"``), ``size`` and ``limit`` are in bytes."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size:,} bytes as stored, over the limit of {limit:,} bytes (HostOptions.max_payload_bytes)"
        )
        self.what, self.size, self.limit = what, size, limit

    def __reduce__(self) -> tuple[type[PayloadTooLargeError], tuple[str, int, int]]:
        return type(self), (self.what, self.size, self.limit)  # rebuilt from its fields, not the message


class InvalidOperationError(LiteFlowError):
    """A call that makes no sense in the current state (a control on a finished workflow, ...)."""


class NotIdleError(InvalidOperationError, RuntimeError):
    """``WorkflowTestHost.run_until_idle`` still found work due after its last round: a workflow
    that never settles. Also a ``RuntimeError``, as raised before 1.0."""


class InvalidArgumentError(LiteFlowError, ValueError):
    """A bad argument to a public call; also a ``ValueError``."""


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (``register_type`` given no class, ``ExecutionResult.sleep``
    given no timedelta); also a ``TypeError``, so ``except TypeError`` keeps working."""


class ConfigurationError(LiteFlowError):
    """An unknown or invalid host option or provider."""


class ProviderError(ConfigurationError):
    """A backend misconfigured, or its driver not installed (the message names the extra)."""


class ProviderUnavailableError(ProviderError):
    """The backend refused the call or did not answer in time, or its connection broke.

    A call refused before the backend took it (connection refused, no pooled connection in time, a
    SQLite file locked, full or read-only) did not happen. A write sent to a backend that then went
    silent or dropped the connection may still be applied once the backend answers again: retry it
    idempotently (``start_workflow(..., instance_id=...)``; a retried ``publish_event`` may store
    the event twice)."""


class DefinitionError(LiteFlowError):
    """A workflow definition given as data (a dict, JSON or YAML) that cannot be loaded."""


class WorkflowTimeoutError(LiteFlowError, TimeoutError):
    """Waiting for a workflow took longer than allowed; also a ``TimeoutError``."""


class StepTimeoutError(LiteFlowError):
    """A step ran past its timeout (``error.workflow_id``, ``error.step``); it goes through
    the step's error behaviour."""


class ChildWorkflowError(LiteFlowError):
    """A sub-workflow ended terminated; raised in the parent's step (``error.workflow_id``
    is the parent, ``error.step`` the step that started the sub-workflow)."""


class SagaError(LiteFlowError):
    """A step inside a saga failed and the saga was compensated; raised in the saga's own step when
    it has an ``on_error``, so that behaviour applies to the saga as a whole."""


class ActivityError(LiteFlowError):
    """A worker reported an activity as failed; raised in the activity's step, so its error
    behaviour applies."""


class UserActionError(LiteFlowError):
    """An answer to a user task that cannot be accepted: the wrong user, or an unknown option."""
