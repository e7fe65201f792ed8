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
├── InvalidArgumentError         a bad argument to a public call (also a ValueError)
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
"""

from __future__ import annotations


class LiteFlowError(Exception):
    """Base class of every error raised by LiteFlow."""


class WorkflowNotRegisteredError(LiteFlowError):
    pass


class DuplicateWorkflowError(LiteFlowError):
    pass


class BuilderError(LiteFlowError):
    pass


class WorkflowNotFoundError(LiteFlowError):
    pass


class EventNotFoundError(LiteFlowError):
    pass


class ConcurrencyError(LiteFlowError):
    pass


class SerializationError(LiteFlowError):
    pass


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
    pass


class InvalidArgumentError(LiteFlowError, ValueError):
    pass


class ConfigurationError(LiteFlowError):
    pass


class ProviderError(ConfigurationError):
    pass


class ProviderUnavailableError(ProviderError):
    """The backend did not answer in time or its connection broke: the call did not happen and may be
    retried once the backend is back."""


class DefinitionError(LiteFlowError):
    """A workflow definition given as data (a dict, JSON or YAML) that cannot be loaded."""


class WorkflowTimeoutError(LiteFlowError, TimeoutError):
    pass


class StepTimeoutError(LiteFlowError):
    pass


class ChildWorkflowError(LiteFlowError):
    pass


class SagaError(LiteFlowError):
    """A step inside a saga failed and the saga was compensated; raised in the saga's own step when
    it has an ``on_error``, so that behaviour applies to the saga as a whole."""


class ActivityError(LiteFlowError):
    """A worker reported an activity as failed; raised in the activity's step, so its error
    behaviour applies."""


class UserActionError(LiteFlowError):
    """An answer to a user task that cannot be accepted: the wrong user, or an unknown option."""
