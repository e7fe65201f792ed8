"""What a workflow definition is made of: step bodies, their results, and the definition graph."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._models import ExecutionPointer, WorkflowInstance


class ErrorBehavior(str, enum.Enum):
    """What happens when a step raises."""

    RETRY = "retry"
    SUSPEND = "suspend"
    TERMINATE = "terminate"


@dataclass
class ExecutionResult:
    """What a step asks the engine to do next. Build one with the static constructors."""

    proceed: bool = False
    outcome_value: Any = None
    persistence_data: Any = None
    sleep_for: timedelta | None = None
    event_name: str | None = None
    event_key: str | None = None
    event_as_of: datetime | None = None
    branch_values: list[Any] | None = None

    @staticmethod
    def next() -> ExecutionResult:
        """Complete the step and go on to the next one."""
        return ExecutionResult(proceed=True)

    @staticmethod
    def outcome(value: Any) -> ExecutionResult:
        """Complete the step with an outcome value; steps chained with ``when(value)`` follow it."""
        return ExecutionResult(proceed=True, outcome_value=value)

    @staticmethod
    def persist(data: Any) -> ExecutionResult:
        """Stay on this step: it runs again with ``context.persistence_data`` set to ``data``."""
        return ExecutionResult(persistence_data=data)

    @staticmethod
    def sleep(duration: timedelta, data: Any = None) -> ExecutionResult:
        """Run this step again after ``duration``, with ``data`` as its persistence data."""
        if not isinstance(duration, timedelta):
            raise TypeError(f"sleep() needs a timedelta, got {type(duration).__name__}")
        return ExecutionResult(sleep_for=duration, persistence_data=data)

    @staticmethod
    def wait_for_event(name: str, key: str, as_of: datetime | None = None) -> ExecutionResult:
        """Wait until an event (name, key) published at or after ``as_of`` arrives.

        ``as_of`` defaults to the workflow's creation time, so an event published after the
        workflow started but before it reached this step is still delivered."""
        return ExecutionResult(event_name=name, event_key=str(key), event_as_of=as_of)

    @staticmethod
    def branch(values: Sequence[Any], data: Any = None) -> ExecutionResult:
        """Start the step's children once per value (for containers)."""
        return ExecutionResult(branch_values=list(values), persistence_data=data)


@dataclass
class StepExecutionContext:
    """Everything a step can see while it runs."""

    workflow: WorkflowInstance
    step: WorkflowStep
    execution_pointer: ExecutionPointer
    persistence_data: Any = None
    item: Any = None
    branch_complete: Callable[[], bool] = field(default=lambda: True, repr=False)

    @property
    def idempotency_key(self) -> str:
        """Stable across re-runs of the same attempt (e.g. after a crash): use it to make side
        effects idempotent."""
        pointer = self.execution_pointer
        return f"{self.workflow.id}:{pointer.id}:{pointer.retry_count}"


class StepBody:
    """Base class of steps: subclass it and implement :meth:`run`.

    Inputs mapped with ``.input(name, fn)`` are set as attributes before ``run``; outputs read
    attributes after it. ``run`` may be ``async def``; returning None means "go on".
    """

    def run(self, context: StepExecutionContext) -> ExecutionResult | None:
        raise NotImplementedError(f"{type(self).__name__} must implement run(context)")


class FunctionStep(StepBody):
    """Wraps a plain function or lambda taking the context, used as an inline step."""

    def __init__(self, function: Callable[[StepExecutionContext], Any]) -> None:
        self.function = function

    def run(self, context: StepExecutionContext) -> Any:
        return self.function(context)


_ANY = object()
"""Outcome value that matches whatever the step returned (what ``then`` creates)."""


@dataclass
class StepOutcome:
    next_step: int
    value: Any = _ANY

    def matches(self, outcome_value: Any) -> bool:
        return self.value is _ANY or self.value == outcome_value


DataFunction = Callable[[Any, StepExecutionContext], Any]
OutputFunction = Callable[[Any], Any]


@dataclass(eq=False)
class WorkflowStep:
    """One node of a workflow definition."""

    RETRY: ClassVar[ErrorBehavior] = ErrorBehavior.RETRY
    SUSPEND: ClassVar[ErrorBehavior] = ErrorBehavior.SUSPEND
    TERMINATE: ClassVar[ErrorBehavior] = ErrorBehavior.TERMINATE

    id: int
    body_factory: Callable[[], StepBody]
    body_name: str
    name: str | None = None
    inputs: list[tuple[str, DataFunction]] = field(default_factory=list)
    outputs: list[tuple[str, OutputFunction]] = field(default_factory=list)
    outcomes: list[StepOutcome] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    is_container: bool = False
    error_behavior: ErrorBehavior | None = None
    retry_interval: timedelta | None = None

    def __repr__(self) -> str:
        return f"WorkflowStep(id={self.id}, body={self.body_name})"


@dataclass
class WorkflowDefinition:
    id: str
    version: int
    steps: list[WorkflowStep]
    default_error_behavior: ErrorBehavior = ErrorBehavior.RETRY
    default_retry_interval: timedelta | None = None
