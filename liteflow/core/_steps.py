"""What a workflow definition is made of: step bodies, their results, and the definition graph."""

from __future__ import annotations

import enum
import threading
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import InvalidArgumentError, InvalidArgumentTypeError

if TYPE_CHECKING:
    from ._models import ExecutionPointer, WorkflowInstance


class ErrorBehavior(str, enum.Enum):
    """What happens when a step raises."""

    RETRY = "retry"
    """Run the step again after the retry interval, as often as it takes."""
    SUSPEND = "suspend"
    """Suspend the workflow; ``resume_workflow`` runs the step again."""
    TERMINATE = "terminate"
    """End the workflow as terminated."""
    COMPENSATE = "compensate"
    """Undo the completed steps of the enclosing saga (or of the whole workflow) in reverse order."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff, then a final behaviour.

    Attempt ``n`` (1-based) that fails waits ``initial_interval * backoff ** (n - 1)``, capped at
    ``max_interval``, plus or minus ``jitter`` (a fraction: 0.1 = up to 10 %). After
    ``max_attempts`` failures, ``then`` applies (TERMINATE, SUSPEND or COMPENSATE).
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(minutes=10)
    jitter: float = 0.0
    then: ErrorBehavior = ErrorBehavior.SUSPEND

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError("RetryPolicy.max_attempts must be at least 1")
        if self.backoff < 1 or not 0 <= self.jitter < 1:
            raise InvalidArgumentError("RetryPolicy needs backoff >= 1 and 0 <= jitter < 1")
        if ErrorBehavior(self.then) is ErrorBehavior.RETRY:
            raise InvalidArgumentError("RetryPolicy.then must be TERMINATE, SUSPEND or COMPENSATE")

    def interval(self, attempt: int, random_fraction: float) -> timedelta:
        """The wait after failed attempt ``attempt``; ``random_fraction`` in [0, 1) drives jitter."""
        seconds = self.initial_interval.total_seconds() * self.backoff ** (attempt - 1)
        seconds = min(seconds, self.max_interval.total_seconds())
        seconds *= 1 + self.jitter * (2 * random_fraction - 1)
        return timedelta(seconds=seconds)


ErrorHandling = ErrorBehavior | RetryPolicy


@dataclass(frozen=True)
class ChildWorkflow:
    """A sub-workflow a step asks the host to start (its id is fixed, so a re-run reuses it)."""

    id: str
    workflow_id: str
    version: int | None
    """None: the latest registered, resolved by the executor when it creates the child."""
    data: Any


class ExecutionResult:
    """What a step asks the engine to do next. Build one with the static constructors; the engine
    reads it through the read-only properties below."""

    def __init__(
        self,
        proceed: bool = False,
        outcome_value: Any = None,
        persistence_data: Any = None,
        sleep_for: timedelta | None = None,
        event_name: str | None = None,
        event_key: str | None = None,
        event_as_of: datetime | None = None,
        branch_values: list[Any] | None = None,
        # Used by built-in primitives only:
        branch_children: list[int] | None = None,
        end_workflow: bool = False,
        start_child: ChildWorkflow | None = None,
        fold_rounds: bool = False,
    ) -> None:
        self._proceed = proceed
        self._outcome_value = outcome_value
        self._persistence_data = persistence_data
        self._sleep_for = sleep_for
        self._event_name = event_name
        self._event_key = event_key
        self._event_as_of = event_as_of
        self._branch_values = branch_values
        self._branch_children = branch_children
        self._end_workflow = end_workflow
        self._start_child = start_child
        self._fold_rounds = fold_rounds

    def _fields(self) -> dict[str, Any]:
        return {name.lstrip("_"): value for name, value in vars(self).items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionResult) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # unhashable, as the dataclass it was

    def __repr__(self) -> str:
        fields = self._fields().items()
        given = (f"{name}={value!r}" for name, value in fields if value is not None and value is not False)
        return f"ExecutionResult({', '.join(given)})"

    @property
    def proceed(self) -> bool:
        """The step is complete: go on to the steps that follow its outcome."""
        return self._proceed

    @property
    def outcome_value(self) -> Any:
        """The value the step completed with; ``when(value)`` branches match it."""
        return self._outcome_value

    @property
    def persistence_data(self) -> Any:
        """What the step keeps for its next run (``context.persistence_data``)."""
        return self._persistence_data

    @property
    def sleep_for(self) -> timedelta | None:
        """Run the step again after this long."""
        return self._sleep_for

    @property
    def event_name(self) -> str | None:
        """The name of the event the step waits for."""
        return self._event_name

    @property
    def event_key(self) -> str | None:
        """The key of the event the step waits for."""
        return self._event_key

    @property
    def event_as_of(self) -> datetime | None:
        """Events published at or after this time count for the wait (None: the workflow's start)."""
        return self._event_as_of

    @property
    def branch_values(self) -> list[Any] | None:
        """Start the step's children once per value."""
        return self._branch_values

    @property
    def branch_children(self) -> list[int] | None:
        """The children to start for each branch value (built-in primitives; None: all)."""
        return self._branch_children

    @property
    def end_workflow(self) -> bool:
        """Complete the whole workflow (built-in ``end_workflow``)."""
        return self._end_workflow

    @property
    def start_child(self) -> ChildWorkflow | None:
        """A sub-workflow to start (built-in ``sub_workflow``)."""
        return self._start_child

    @property
    def fold_rounds(self) -> bool:
        """A loop's finished rounds are folded into the instance's compacted history: all of them
        when it branches again, all but the last when it completes (built-in loops; see
        ``_compaction``)."""
        return self._fold_rounds

    def folding_rounds(self) -> ExecutionResult:
        """This result with :attr:`fold_rounds` set (built-in loops only)."""
        self._fold_rounds = True
        return self

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
            raise InvalidArgumentTypeError(f"sleep() needs a timedelta, got {type(duration).__name__}")
        return ExecutionResult(sleep_for=duration, persistence_data=data)

    @staticmethod
    def wait_for_event(
        name: str, key: str, effective_date: datetime | None = None, *, as_of: datetime | None = None
    ) -> ExecutionResult:
        """Wait until an event (name, key) published at or after ``effective_date`` arrives.

        Args:
            name: The event's name.
            key: The event's key (converted to ``str``).
            effective_date: Events published at or after this time count. Defaults to the
                workflow's creation time, so an event published after the workflow started but
                before it reached this step is still delivered.
            as_of: The former name of ``effective_date``; deprecated.
        """
        if as_of is not None:
            warnings.warn(
                "wait_for_event(as_of=...) is deprecated: use effective_date=", DeprecationWarning, stacklevel=2
            )
            effective_date = effective_date or as_of
        return ExecutionResult(event_name=name, event_key=str(key), event_as_of=effective_date)

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
    cancellation: threading.Event = field(init=False, repr=False, compare=False)
    """Set when the step should stop early: its ``timeout`` passed, or its workflow is being
    terminated or suspended (see the README's "Timeouts that interrupt"). Check it in long loops.
    Made on first use (a ``threading.Event`` costs more than the rest of a quick step's context)."""

    if not TYPE_CHECKING:  # for mypy the field above is a plain attribute

        def __getattr__(self, name: str) -> Any:
            if name != "cancellation":
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            # setdefault is atomic: a step and a terminate on another thread get the same flag.
            return self.__dict__.setdefault("cancellation", threading.Event())

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

    def run(self, context: StepExecutionContext) -> ExecutionResult | Awaitable[ExecutionResult | None] | None:
        """Do the step's work.

        Args:
            context: The running workflow, step and execution pointer.

        Returns:
            What to do next (an :class:`ExecutionResult`), or ``None`` to go on to the next step.
            An ``async def run`` returns the same through its coroutine.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement run(context)")


class FunctionStep(StepBody):
    """Wraps a plain function or lambda taking the context, used as an inline step."""

    def __init__(self, function: Callable[[StepExecutionContext], Any]) -> None:
        self.function = function

    def run(self, context: StepExecutionContext) -> Any:
        return self.function(context)


class _Any:
    def __repr__(self) -> str:
        return "ANY"


_ANY: Any = _Any()
"""Outcome value that matches whatever the step returned (what ``then`` creates)."""

StepMiddleware = Callable[["StepExecutionContext", StepBody, Callable[[], "ExecutionResult"]], "ExecutionResult"]
"""Wraps every step: ``middleware(context, body, next_)`` must call ``next_()`` and return its result."""


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
    COMPENSATE: ClassVar[ErrorBehavior] = ErrorBehavior.COMPENSATE

    id: int
    body_factory: Callable[[], StepBody]
    body_name: str
    name: str | None = None
    inputs: list[tuple[str, DataFunction]] = field(default_factory=list)
    outputs: list[tuple[str, OutputFunction]] = field(default_factory=list)
    outcomes: list[StepOutcome] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    is_container: bool = False
    is_saga: bool = False
    is_compensation: bool = False
    external_id: str | None = None
    error_behavior: ErrorHandling | None = None
    retry_interval: timedelta | None = None
    compensation_step: int | None = None
    cancel_condition: DataFunction | None = None
    proceed_after_cancel: bool = False
    timeout: timedelta | None = None
    timeout_outcome: Any = _ANY
    """Outcome the step completes with when it times out; unset means it fails with StepTimeoutError."""
    concurrency_limit: tuple[str, int] | None = None
    """(name, limit): at most ``limit`` steps sharing the name run at once in the cluster."""
    rate_limit: tuple[str, int, timedelta] | None = None
    """(name, limit, per): at most ``limit`` runs of steps sharing the name start per ``per``."""

    def __repr__(self) -> str:
        return f"WorkflowStep(id={self.id}, body={self.body_name})"


@dataclass
class WorkflowDefinition:
    id: str
    version: int
    steps: list[WorkflowStep]
    start_step: int = 0
    default_error_behavior: ErrorHandling | None = None
    default_retry_interval: timedelta | None = None
    concurrency: Any = None
    """The workflow's :class:`~liteflow.core.Concurrency` limit, if it has one."""

    def __post_init__(self) -> None:
        # Most workflows have no cancel conditions or timeouts: then a pass need not look for them.
        self.has_watched_steps = any(s.cancel_condition is not None or s.timeout is not None for s in self.steps)
        # Only a container's children (and a saga's compensations) get a scope: without containers
        # no pointer is inside another, and a pass need not count what is open inside each.
        self.has_containers = any(s.children for s in self.steps)
