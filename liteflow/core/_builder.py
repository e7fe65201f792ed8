"""The fluent builder that turns ``Workflow.build`` into a :class:`WorkflowDefinition`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ._errors import BuilderError, InvalidArgumentError
from ._primitives import (
    Container,
    Decide,
    Delay,
    Detach,
    EndWorkflow,
    Foreach,
    If,
    Parallel,
    Saga,
    SubWorkflow,
    WaitFor,
    When,
    While,
)
from ._steps import (
    _ANY,
    DataFunction,
    ErrorBehavior,
    ErrorHandling,
    FunctionStep,
    OutputFunction,
    RetryPolicy,
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


def _error_handling(behavior: Any) -> ErrorHandling:
    if isinstance(behavior, RetryPolicy):
        return behavior
    try:
        return ErrorBehavior(behavior)
    except ValueError:
        raise BuilderError(
            f"unknown error behavior {behavior!r}: use WorkflowStep.RETRY, SUSPEND, TERMINATE, "
            "COMPENSATE or a RetryPolicy"
        ) from None


def _duration(verb: str, value: Any) -> timedelta | None:
    if value is not None and not isinstance(value, timedelta):
        raise BuilderError(f"{verb} must be a timedelta, got {value!r}")
    return value


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
        self.default_error_behavior: ErrorHandling | None = None
        self.default_retry_interval: timedelta | None = None
        self._attachments: list[tuple[WorkflowStep, str]] = []

    def start_with(self, step: StepLike) -> StepBuilder:
        """The first step of the workflow (or of a block inside ``do``)."""
        if self._first is not None:
            raise BuilderError("start_with called twice; chain further steps with then()")
        builder = self._add(step)
        self._first = builder.step
        return builder

    def use_default_error_behavior(
        self, behavior: ErrorHandling, retry_interval: timedelta | None = None
    ) -> WorkflowBuilder:
        """Error behaviour for steps that do not set their own with ``on_error``."""
        self.default_error_behavior = _error_handling(behavior)
        self.default_retry_interval = _duration("retry_interval", retry_interval)
        return self

    def create_branch(self) -> WorkflowBuilder:
        """A separate chain of steps, to attach with ``decide(...).branch(value, chain)``."""
        branch = WorkflowBuilder(self._steps)
        branch._attachments = self._attachments
        return branch

    def _add(self, step: StepLike) -> StepBuilder:
        factory, name = _body_factory(step)
        is_container = isinstance(step, type) and issubclass(step, (Container, Detach))
        definition_step = WorkflowStep(
            id=len(self._steps),
            body_factory=factory,
            body_name=name,
            is_container=is_container,
            is_saga=isinstance(step, type) and issubclass(step, Saga),
        )
        self._steps.append(definition_step)
        return StepBuilder(self, definition_step)

    def _block(self, build: Callable[[WorkflowBuilder], Any]) -> WorkflowStep:
        """Build a nested block on the shared step list and return its first step."""
        inner = self.create_branch()
        build(inner)
        if inner._first is None:
            raise BuilderError("a do() block must add steps with start_with()")
        return inner._first

    def build(self, workflow_id: str, version: int) -> WorkflowDefinition:
        if self._first is None:
            raise BuilderError(f"workflow {workflow_id!r} has no steps: build() must call start_with()")
        self._resolve_attachments()
        return WorkflowDefinition(
            id=workflow_id,
            version=version,
            steps=self._steps,
            start_step=self._first.id,
            default_error_behavior=self.default_error_behavior,
            default_retry_interval=self.default_retry_interval,
        )

    def _resolve_attachments(self) -> None:
        by_id: dict[str, WorkflowStep] = {}
        for step in self._steps:
            if step.external_id is not None:
                if step.external_id in by_id:
                    raise BuilderError(f"two steps have the id {step.external_id!r}")
                by_id[step.external_id] = step
        by_name = {step.name: step for step in self._steps if step.name is not None}
        for source, target in self._attachments:
            found = by_id.get(target) or by_name.get(target)
            if found is None:
                raise BuilderError(f"attach({target!r}): no step has that id or name")
            source.outcomes.append(StepOutcome(found.id))
        self._attachments.clear()


class StepBuilder:
    """Configures the step just added and chains the next one."""

    def __init__(self, workflow_builder: WorkflowBuilder, step: WorkflowStep) -> None:
        self._builder = workflow_builder
        self.step = step
        self._origin: StepBuilder | None = None
        """For a ``when`` block: the step whose outcome it follows."""
        self._whens: list[WorkflowStep] = []
        self._prelude: StepBuilder | None = None
        """For schedule/recur: the delay step the ``do`` block follows."""
        self._many_blocks = False
        self._branches: list[tuple[Any, int]] | None = None
        """For decide: (value, first step) of each branch."""

    def then(self, step: StepLike) -> StepBuilder:
        """Run ``step`` after this one (after a ``when`` block: after whichever block ran)."""
        following = self._builder._add(step)
        sources = self._origin._whens if self._origin is not None else [self.step]
        for source in sources:
            source.outcomes.append(StepOutcome(following.step.id))
        return following

    def _constant(self, prop: str, value: Any) -> StepBuilder:
        self.step.inputs.append((prop, lambda data, context: value))
        return self

    def id(self, step_id: str) -> StepBuilder:
        """A unique id for this step, for ``attach``."""
        if not isinstance(step_id, str) or not step_id:
            raise BuilderError(f"id needs a non-empty string, got {step_id!r}")
        self.step.external_id = step_id
        return self

    def attach(self, step_id: str) -> StepBuilder:
        """Continue at the step with this id (or name), e.g. to jump back and repeat."""
        self._builder._attachments.append((self.step, step_id))
        return self

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

    def on_error(self, behavior: ErrorHandling, retry_interval: timedelta | None = None) -> StepBuilder:
        """What to do when this step raises: RETRY (after ``retry_interval``), SUSPEND, TERMINATE,
        COMPENSATE, or a :class:`RetryPolicy`."""
        self.step.error_behavior = _error_handling(behavior)
        self.step.retry_interval = _duration("retry_interval", retry_interval)
        return self

    def compensate_with(self, step: StepLike) -> StepBuilder:
        """The step that undoes this one (or, on a saga, the whole saga) when compensation runs."""
        undo = self._builder._add(step)
        undo.step.is_compensation = True
        self.step.compensation_step = undo.step.id
        return self

    def cancel_condition(self, condition: DataFunction, proceed_after_cancel: bool = False) -> StepBuilder:
        """End this step (and all inside it) when ``condition(data, context)`` holds, checked each
        time the workflow runs; with ``proceed_after_cancel`` the following steps then run."""
        self.step.cancel_condition = _data_function("cancel_condition", condition)
        self.step.proceed_after_cancel = proceed_after_cancel
        return self

    def timeout(self, duration: timedelta, *, outcome: Any = _ANY) -> StepBuilder:
        """Limit how long this step may take from its first run (sleeps and waits included).

        On expiry the step fails with StepTimeoutError, handled by its error behaviour; or, when
        ``outcome`` is given, it completes with that outcome (branch on it with ``when``). A step
        already running is not interrupted: the limit is checked when the workflow runs."""
        if not isinstance(duration, timedelta) or duration <= timedelta(0):
            raise BuilderError(f"timeout needs a positive timedelta, got {duration!r}")
        self.step.timeout = duration
        self.step.timeout_outcome = outcome
        return self

    def wait_for(
        self,
        event_name: str,
        event_key: DataFunction,
        effective_date: DataFunction | datetime | None = None,
        *,
        timeout: timedelta | None = None,
        timeout_outcome: Any = _ANY,
    ) -> StepBuilder:
        """Wait for the event (``event_name``, ``event_key(data, context)``); see :meth:`timeout`."""
        if not isinstance(event_name, str) or not event_name:
            raise BuilderError(f"wait_for needs an event name, got {event_name!r}")
        if isinstance(effective_date, datetime):
            if effective_date.utcoffset() is None:
                raise InvalidArgumentError(f"wait_for: effective_date must be timezone-aware, got {effective_date!r}")
        elif effective_date is not None and not callable(effective_date):
            raise InvalidArgumentError(
                "wait_for: effective_date must be a timezone-aware datetime or a function (data, context) ->"
                f" datetime, got {effective_date!r} ({type(effective_date).__name__})"
            )
        waiting = self.then(WaitFor)._constant("event_name", event_name)
        waiting.input("event_key", event_key)
        if isinstance(effective_date, datetime):
            waiting._constant("effective_date", effective_date)
        elif effective_date is not None:
            waiting.input("effective_date", effective_date)
        if timeout is not None:
            waiting.timeout(timeout, outcome=timeout_outcome)
        return waiting

    def delay(self, period: DataFunction) -> StepBuilder:
        """Wait for ``period(data, context)`` (a timedelta), then go on."""
        return self.then(Delay).input("period", period)

    def end_workflow(self) -> StepBuilder:
        """Complete the workflow here, ending any branch still open."""
        return self.then(EndWorkflow)

    def sub_workflow(
        self, workflow_id: str, data: DataFunction | None = None, *, version: int | None = None
    ) -> StepBuilder:
        """Start the registered workflow ``workflow_id`` (latest version unless given) with
        ``data(data, context)`` and wait until it ends; ``step.result`` is then its final data."""
        if not isinstance(workflow_id, str) or not workflow_id:
            raise BuilderError(f"sub_workflow needs a workflow id, got {workflow_id!r}")
        child = self.then(SubWorkflow)._constant("workflow_id", workflow_id)._constant("version", version)
        if data is not None:
            child.input("data", data)
        return child

    def for_each(self, collection: DataFunction, run_parallel: bool = True) -> StepBuilder:
        """Run the ``do`` block once per item, all at once or (``run_parallel=False``) one after
        another in order; the item is ``context.execution_pointer.context_item``."""
        return self.then(Foreach).input("collection", collection)._constant("run_parallel", run_parallel)

    def while_(self, condition: DataFunction) -> StepBuilder:
        return self.then(While).input("condition", condition)

    def if_(self, condition: DataFunction) -> StepBuilder:
        return self.then(If).input("condition", condition)

    def saga(self, build: Callable[[WorkflowBuilder], Any]) -> StepBuilder:
        """A block whose completed steps are compensated, latest first, if one of them fails;
        then the workflow goes on after the saga."""
        saga = self.then(Saga)
        return saga.do(build)

    def parallel(self) -> StepBuilder:
        """Branches given by repeated ``do`` calls run at once; ``join()`` and go on when all end."""
        parallel = self.then(Parallel)
        parallel._many_blocks = True
        return parallel

    def join(self) -> StepBuilder:
        if not self._many_blocks:
            raise BuilderError("join() follows parallel().do(...)")
        return self

    def when(self, value: Any) -> StepBuilder:
        """A block (``do``) that runs when this step completes with outcome ``value``."""
        origin = self._origin or self
        block = origin._builder._add(When)
        origin.step.outcomes.append(StepOutcome(block.step.id, value))
        origin._whens.append(block.step)
        block._origin = origin
        return block

    def decide(self, expression: DataFunction) -> StepBuilder:
        """Run the ``branch`` whose value equals ``expression(data, context)``, then go on."""
        decide = self.then(Decide).input("expression", expression)
        decide._branches = []
        decide._constant("branches", decide._branches)
        return decide

    def branch(
        self, value: Any, branch: StepBuilder | WorkflowBuilder | Callable[[WorkflowBuilder], Any]
    ) -> StepBuilder:
        """After ``decide``: the chain to run for ``value`` (from ``create_branch()`` or a function)."""
        if self._branches is None:
            raise BuilderError("branch() follows decide()")
        if isinstance(branch, StepBuilder):
            first = branch._builder._first
        elif isinstance(branch, WorkflowBuilder):
            first = branch._first
        elif callable(branch):
            first = self._builder._block(branch)
        else:
            raise BuilderError(f"branch() needs a builder chain or a function, got {branch!r}")
        if first is None:
            raise BuilderError("branch() got a chain with no steps")
        self.step.children.append(first.id)
        self._branches.append((value, first.id))
        return self

    def schedule(self, delay: DataFunction) -> StepBuilder:
        """Run the ``do`` block after ``delay(data, context)`` in the background; the steps after
        ``schedule`` go on at once."""
        detach = self.then(Detach)
        wait = self._builder._add(Delay).input("period", delay)
        detach.step.children.append(wait.step.id)
        detach._prelude = wait
        return detach

    def recur(self, interval: DataFunction, until: DataFunction) -> StepBuilder:
        """Run the ``do`` block every ``interval`` in the background until ``until(data, context)``
        holds (checked before each round); the steps after ``recur`` go on at once."""
        stop = _data_function("recur until", until)
        detach = self.then(Detach)
        loop = self._builder._add(While)
        loop.step.inputs.append(("condition", lambda data, context: not stop(data, context)))
        detach.step.children.append(loop.step.id)
        wait = self._builder._add(Delay).input("period", interval)
        loop.step.children.append(wait.step.id)
        detach._prelude = wait
        return detach

    def do(self, build: Callable[[WorkflowBuilder], Any]) -> StepBuilder:
        """The block of a container step (for_each, while_, if_, when, saga, parallel, schedule, recur)."""
        if not self.step.is_container:
            raise BuilderError(
                f"do() follows a container such as for_each, while_ or if_, not step {self.step.body_name}"
            )
        if not callable(build):
            raise BuilderError(f"do() needs a function taking a builder, got {build!r}")
        if self._prelude is not None:
            if self._prelude.step.outcomes:
                raise BuilderError(f"step {self.step.body_name} already has a do() block")
            self._prelude.step.outcomes.append(StepOutcome(self._builder._block(build).id))
            return self
        if self.step.children and not self._many_blocks:
            raise BuilderError(f"step {self.step.body_name} already has a do() block")
        self.step.children.append(self._builder._block(build).id)
        return self
