"""The fluent builder that turns ``Workflow.build`` into a :class:`WorkflowDefinition`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ._errors import BuilderError
from ._primitives import Foreach, If, WaitFor, While
from ._steps import (
    DataFunction,
    ErrorBehavior,
    FunctionStep,
    OutputFunction,
    StepBody,
    StepOutcome,
    WorkflowDefinition,
    WorkflowStep,
)

StepLike = type[StepBody] | Callable[..., Any]


class Workflow:
    """Base class of workflow definitions. Override :meth:`build`; ``id`` defaults to the class
    name and ``version`` to 1."""

    def id(self) -> str:
        return type(self).__name__

    def version(self) -> int:
        return 1

    def build(self, builder: WorkflowBuilder) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement build(builder)")


def _positional_arity(function: Callable[..., Any]) -> int | None:
    """How many positional arguments ``function`` takes, or None if it takes any number."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _data_function(verb: str, function: Any) -> DataFunction:
    """Accept ``lambda data, context: ...`` or ``lambda data: ...``."""
    if not callable(function):
        raise BuilderError(f"{verb} needs a function (data, context) -> value, got {function!r}")
    arity = _positional_arity(function)
    if arity == 1:
        return lambda data, context: function(data)
    if arity not in (None, 2):
        raise BuilderError(f"{verb} function must take (data, context), it takes {arity} arguments")
    return function  # type: ignore[no-any-return]


def _body_factory(step: Any) -> tuple[Callable[[], StepBody], str]:
    if isinstance(step, type):
        if not issubclass(step, StepBody):
            raise BuilderError(f"{step.__name__} is not a StepBody subclass")
        return step, step.__qualname__
    if isinstance(step, StepBody):
        raise BuilderError(f"pass the step class {type(step).__name__}, not an instance of it")
    if callable(step):
        function = step
        name = getattr(function, "__qualname__", repr(function))
        return (lambda: FunctionStep(function)), name
    raise BuilderError(f"a step must be a StepBody subclass or a function taking the context, got {step!r}")


class WorkflowBuilder:
    """Collects the steps of one workflow. ``Workflow.build`` receives one."""

    def __init__(self, steps: list[WorkflowStep] | None = None) -> None:
        self._steps: list[WorkflowStep] = [] if steps is None else steps
        self._first: WorkflowStep | None = None
        self.default_error_behavior = ErrorBehavior.RETRY
        self.default_retry_interval: timedelta | None = None

    def start_with(self, step: StepLike) -> StepBuilder:
        """The first step of the workflow (or of a block inside ``do``)."""
        if self._first is not None:
            raise BuilderError("start_with called twice; chain further steps with then()")
        builder = self._add(step)
        self._first = builder.step
        return builder

    def use_default_error_behavior(
        self, behavior: ErrorBehavior, retry_interval: timedelta | None = None
    ) -> WorkflowBuilder:
        """Error behaviour for steps that do not set their own with ``on_error``."""
        self.default_error_behavior = ErrorBehavior(behavior)
        self.default_retry_interval = retry_interval
        return self

    def _add(self, step: StepLike) -> StepBuilder:
        factory, name = _body_factory(step)
        is_container = isinstance(step, type) and issubclass(step, (Foreach, While, If))
        definition_step = WorkflowStep(
            id=len(self._steps), body_factory=factory, body_name=name, is_container=is_container
        )
        self._steps.append(definition_step)
        return StepBuilder(self, definition_step)

    def _block(self, build: Callable[[WorkflowBuilder], Any]) -> WorkflowStep:
        """Build a nested block on the shared step list and return its first step."""
        inner = WorkflowBuilder(self._steps)
        build(inner)
        if inner._first is None:
            raise BuilderError("a do() block must add steps with start_with()")
        return inner._first

    def build(self, workflow_id: str, version: int) -> WorkflowDefinition:
        if self._first is None:
            raise BuilderError(f"workflow {workflow_id!r} has no steps: build() must call start_with()")
        return WorkflowDefinition(
            id=workflow_id,
            version=version,
            steps=self._steps,
            default_error_behavior=self.default_error_behavior,
            default_retry_interval=self.default_retry_interval,
        )


class StepBuilder:
    """Configures the step just added and chains the next one."""

    def __init__(self, workflow_builder: WorkflowBuilder, step: WorkflowStep) -> None:
        self._builder = workflow_builder
        self.step = step

    def then(self, step: StepLike) -> StepBuilder:
        """Run ``step`` after this one."""
        following = self._builder._add(step)
        self.step.outcomes.append(StepOutcome(following.step.id))
        return following

    def name(self, name: str) -> StepBuilder:
        self.step.name = name
        return self

    def input(self, prop: str, function: DataFunction) -> StepBuilder:
        """Set the body's attribute ``prop`` from ``function(data, context)`` before it runs."""
        if not isinstance(prop, str) or not prop:
            raise BuilderError(f"input needs an attribute name, got {prop!r}")
        self.step.inputs.append((prop, _data_function(f"input {prop!r}", function)))
        return self

    def output(self, prop: str, function: OutputFunction) -> StepBuilder:
        """Set the workflow data's ``prop`` from ``function(step_body)`` after the step completes."""
        if not isinstance(prop, str) or not prop:
            raise BuilderError(f"output needs an attribute name, got {prop!r}")
        if not callable(function):
            raise BuilderError(f"output {prop!r} needs a function (step) -> value, got {function!r}")
        self.step.outputs.append((prop, function))
        return self

    def on_error(self, behavior: ErrorBehavior, retry_interval: timedelta | None = None) -> StepBuilder:
        """What to do when this step raises: RETRY (after ``retry_interval``), SUSPEND or TERMINATE."""
        try:
            self.step.error_behavior = ErrorBehavior(behavior)
        except ValueError:
            raise BuilderError(f"unknown error behavior {behavior!r}") from None
        if retry_interval is not None and not isinstance(retry_interval, timedelta):
            raise BuilderError(f"retry_interval must be a timedelta, got {retry_interval!r}")
        self.step.retry_interval = retry_interval
        return self

    def wait_for(
        self,
        event_name: str,
        event_key: DataFunction,
        effective_date: DataFunction | datetime | None = None,
    ) -> StepBuilder:
        """Wait for the event (``event_name``, ``event_key(data, context)``)."""
        if not isinstance(event_name, str) or not event_name:
            raise BuilderError(f"wait_for needs an event name, got {event_name!r}")
        waiting = self.then(WaitFor)
        waiting.step.inputs.append(("event_name", lambda data, context: event_name))
        waiting.input("event_key", event_key)
        if isinstance(effective_date, datetime):
            fixed = effective_date
            waiting.step.inputs.append(("effective_date", lambda data, context: fixed))
        elif effective_date is not None:
            waiting.input("effective_date", effective_date)
        return waiting

    def for_each(self, collection: DataFunction) -> StepBuilder:
        """Run the ``do`` block once per item, in parallel; the item is
        ``context.execution_pointer.context_item``."""
        return self.then(Foreach).input("collection", collection)

    def while_(self, condition: DataFunction) -> StepBuilder:
        return self.then(While).input("condition", condition)

    def if_(self, condition: DataFunction) -> StepBuilder:
        return self.then(If).input("condition", condition)

    def do(self, build: Callable[[WorkflowBuilder], Any]) -> StepBuilder:
        """The block of a container step (for_each, while_, if_)."""
        if not self.step.is_container:
            raise BuilderError(f"do() follows for_each, while_ or if_, not step {self.step.body_name}")
        if self.step.children:
            raise BuilderError(f"step {self.step.body_name} already has a do() block")
        if not callable(build):
            raise BuilderError(f"do() needs a function taking a builder, got {build!r}")
        self.step.children.append(self._builder._block(build).id)
        return self
