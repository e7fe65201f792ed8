"""The fluent builder that turns ``Workflow.build`` into a :class:`WorkflowDefinition`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ._activities import Activity
from ._errors import BuilderError, InvalidArgumentError
from ._primitives import (
    Container,
    Decide,
    Delay,
    Detach,
    EndWorkflow,
    Foreach,
    If,
    Outcomes,
    Parallel,
    Saga,
    SubWorkflow,
    WaitFor,
    When,
    While,
    preceding_outcome,
)
from ._settings import BUILT_IN_INPUT, REJECTED, SET_ONCE, retry_interval_for
from ._starting import StartingVerbs
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
from ._user_tasks import UserTask

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


class Constant:
    """An input the builder sets to a fixed value (an event name, a sub-workflow id...); a class
    rather than a lambda so that export and graphs can tell it from the user's functions."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, data: Any, context: Any) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


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


class WorkflowBuilder(StartingVerbs):
    """Collects the steps of one workflow. ``Workflow.build`` receives one."""

    def __init__(self, steps: list[WorkflowStep] | None = None) -> None:
        self._steps: list[WorkflowStep] = [] if steps is None else steps
        self._first: WorkflowStep | None = None
        self.default_error_behavior: ErrorHandling | None = None
        self.default_retry_interval: timedelta | None = None
        self._attachments: list[tuple[WorkflowStep, str]] = []
        self._needs_block: list[StepBuilder] = []
        """Containers that must get a do() block (or a branch) before the workflow is registered."""

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
        self.default_retry_interval = retry_interval_for(
            "use_default_error_behavior", self.default_error_behavior, retry_interval
        )
        return self

    def create_branch(self) -> WorkflowBuilder:
        """A separate chain of steps, to attach with ``decide(...).branch(value, chain)``."""
        branch = WorkflowBuilder(self._steps)
        branch._attachments = self._attachments
        branch._needs_block = self._needs_block
        return branch

    def _starting(self) -> StepBuilder:
        return _BlockStart(self)

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
        added = StepBuilder(self, definition_step)
        added._verb = "step" if isinstance(step, type) else "inline step"
        return added

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
        for container in self._needs_block:
            container._check_block()
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
        self._prelude: StepBuilder | None = None
        """For schedule/recur: the delay step the ``do`` block follows."""
        self._many_blocks = False
        self._branches: list[tuple[Any, int]] | None = None
        """For decide: (value, first step) of each branch."""
        self._outcomes: StepBuilder | None = None
        """For a step with ``when`` blocks: the Outcomes step that runs the matching ones."""
        self._verb = "step"
        """What added this step (``wait_for``, ``if_``, ...), for the settings it accepts."""
        self._set: set[str] = set()
        self._options: list[tuple[Any, str]] | None = None
        """For a user task: (value, label) of each option."""

    def _label(self) -> str:
        shown = self.step.name or (self.step.body_name if self._verb == "step" else self._verb)
        return f"step {self.step.id} ({shown})"

    def _setting(self, setting: str) -> None:
        """Reject a setting this kind of step would ignore, or one given twice (the second would
        silently replace the first)."""
        reason = REJECTED.get(self._verb, {}).get(setting)
        if reason is None and setting == "input" and self._verb not in ("step", "inline step"):
            reason = BUILT_IN_INPUT
        if reason is None and setting in SET_ONCE and setting in self._set:
            reason = "is already set on this step"
        if reason is not None:
            raise BuilderError(f"{self._label()}: {setting} {reason}")
        self._set.add(setting)

    def _follow(self, body: type[StepBody], verb: str) -> StepBuilder:
        """Add a built-in step after this one (or first in its block)."""
        following = self.then(body)
        following._verb = verb
        return following

    def _check_block(self) -> None:
        if self._options is not None:
            if not self._options:
                raise BuilderError(f"{self._label()}: user_task needs at least one with_option()")
            return
        if not (self._prelude.step.outcomes if self._prelude is not None else self.step.children):
            what = "a branch()" if self._branches is not None else "a do() block"
            raise BuilderError(f"{self._label()}: {self._verb} needs {what}")

    def then(self, step: StepLike) -> StepBuilder:
        """Run ``step`` after this one (after a ``when`` block: after whichever block ran)."""
        following = self._builder._add(step)
        self._continuing().step.outcomes.append(StepOutcome(following.step.id))
        return following

    def _continuing(self) -> StepBuilder:
        # After when blocks (or options with blocks), go on from their Outcomes step: once, after
        # every matching block.
        return (self._origin or self)._outcomes or self

    def _constant(self, prop: str, value: Any) -> StepBuilder:
        self.step.inputs.append((prop, Constant(value)))
        return self

    def _input(self, prop: str, function: Any) -> StepBuilder:
        self.step.inputs.append((prop, _data_function(f"{self._verb} {prop}", function)))
        return self

    def id(self, step_id: str) -> StepBuilder:
        """A unique id for this step, for ``attach``."""
        if not isinstance(step_id, str) or not step_id:
            raise BuilderError(f"id needs a non-empty string, got {step_id!r}")
        self._setting("id")
        self.step.external_id = step_id
        return self

    def attach(self, step_id: str) -> StepBuilder:
        """Continue at the step with this id (or name), e.g. to jump back and repeat; after ``when``
        blocks, once after whichever blocks ran, as with :meth:`then`."""
        self._builder._attachments.append((self._continuing().step, step_id))
        return self

    def name(self, name: str) -> StepBuilder:
        """A name for this step, shown in errors and logs; ``attach`` accepts it too."""
        if not isinstance(name, str) or not name:
            raise BuilderError(f"{self._label()}: name needs a non-empty string, got {name!r}")
        self._setting("name")
        self.step.name = name
        return self

    def input(self, prop: str, function: DataFunction) -> StepBuilder:
        """Set the body's attribute ``prop`` from ``function(data, context)`` before it runs."""
        if not isinstance(prop, str) or not prop:
            raise BuilderError(f"input needs an attribute name, got {prop!r}")
        self._setting("input")
        self.step.inputs.append((prop, _data_function(f"input {prop!r}", function)))
        return self

    def output(self, prop: str, function: OutputFunction) -> StepBuilder:
        """Set the workflow data's ``prop`` from ``function(step_body)`` after the step completes."""
        if not isinstance(prop, str) or not prop:
            raise BuilderError(f"output needs an attribute name, got {prop!r}")
        if not callable(function):
            raise BuilderError(f"output {prop!r} needs a function (step) -> value, got {function!r}")
        self._setting("output")
        self.step.outputs.append((prop, function))
        return self

    def on_error(self, behavior: ErrorHandling, retry_interval: timedelta | None = None) -> StepBuilder:
        """What to do when this step raises: RETRY (after ``retry_interval``), SUSPEND, TERMINATE,
        COMPENSATE, or a :class:`RetryPolicy`.

        On a container (if_, while_, for_each, parallel, when, decide, schedule, recur) it is also the
        error behaviour of the steps inside it that set none. On a saga it applies after the saga
        has been compensated: RETRY runs the whole saga again, TERMINATE ends the workflow,
        SUSPEND parks it (resuming runs the saga again), COMPENSATE passes the failure on to the
        enclosing saga (or undoes and terminates the workflow)."""
        self._setting("on_error")
        self.step.error_behavior = _error_handling(behavior)
        interval = retry_interval_for(self._label() + " on_error", self.step.error_behavior, retry_interval)
        self.step.retry_interval = interval
        return self

    def compensate_with(self, step: StepLike) -> StepBuilder:
        """The step that undoes this one (or, on a saga, the whole saga) when compensation runs."""
        self._setting("compensate_with")
        undo = self._builder._add(step)
        undo.step.is_compensation = True
        self.step.compensation_step = undo.step.id
        return self

    def cancel_condition(self, condition: DataFunction, proceed_after_cancel: bool = False) -> StepBuilder:
        """End this step (and all inside it) when ``condition(data, context)`` holds, checked each
        time the workflow runs; with ``proceed_after_cancel`` the following steps then run."""
        self._setting("cancel_condition")
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
        self._setting("timeout")
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
        if timeout is None and timeout_outcome is not _ANY:
            raise BuilderError(f"wait_for({event_name!r}): timeout_outcome needs a timeout")
        waiting = self._follow(WaitFor, "wait_for")._constant("event_name", event_name)
        waiting._input("event_key", event_key)
        if isinstance(effective_date, datetime):
            waiting._constant("effective_date", effective_date)
        elif effective_date is not None:
            waiting._input("effective_date", effective_date)
        if timeout is not None:
            waiting.timeout(timeout, outcome=timeout_outcome)
        return waiting

    def delay(self, period: DataFunction) -> StepBuilder:
        """Wait for ``period(data, context)`` (a timedelta), then go on."""
        return self._follow(Delay, "delay")._input("period", period)

    def end_workflow(self) -> StepBuilder:
        """Complete the workflow here, ending any branch still open."""
        return self._follow(EndWorkflow, "end_workflow")

    def sub_workflow(
        self, workflow_id: str, data: DataFunction | None = None, *, version: int | None = None
    ) -> StepBuilder:
        """Start the registered workflow ``workflow_id`` (latest version unless given) with
        ``data(data, context)`` and wait until it ends; ``step.result`` is then its final data."""
        if not isinstance(workflow_id, str) or not workflow_id:
            raise BuilderError(f"sub_workflow needs a workflow id, got {workflow_id!r}")
        child = self._follow(SubWorkflow, "sub_workflow")._constant("workflow_id", workflow_id)
        child._constant("version", version)
        if data is not None:
            child._input("data", data)
        return child

    def activity(
        self, activity_name: str, parameters: DataFunction | None = None, *, timeout: timedelta | None = None
    ) -> StepBuilder:
        """Hand work to an external worker and wait for its result, which ``step.result`` holds
        (map it with ``output``). Workers claim it with ``host.get_pending_activity(activity_name,
        ...)``, getting ``parameters(data, context)``, and answer with
        ``submit_activity_success``/``submit_activity_failure``; a failure, or no result within
        ``timeout``, goes through the step's error behaviour."""
        if not isinstance(activity_name, str) or not activity_name:
            raise BuilderError(f"activity needs a name, got {activity_name!r}")
        step = self._follow(Activity, "activity")._constant("activity_name", activity_name)
        if parameters is not None:
            step._input("parameters", parameters)
        if timeout is not None:
            step.timeout(timeout)
        return step

    def user_task(self, prompt: str, assigned_to: str | DataFunction | None = None) -> StepBuilder:
        """Wait for a person to answer ``prompt`` with one of the options given by
        :meth:`with_option`; the step's outcome is the chosen value. ``assigned_to`` (a user name,
        or a function of data and context giving one; None: anyone) is who may answer. People find
        open tasks with ``host.get_open_user_actions`` and answer with ``host.publish_user_action``."""
        if not isinstance(prompt, str) or not prompt:
            raise BuilderError(f"user_task needs a prompt, got {prompt!r}")
        task = self._follow(UserTask, "user_task")._constant("prompt", prompt)
        if callable(assigned_to):
            task._input("assigned_to", assigned_to)
        elif assigned_to is None or isinstance(assigned_to, str):
            task._constant("assigned_to", assigned_to)
        else:
            raise BuilderError(f"{task._label()}: assigned_to must be a user name or a function, got {assigned_to!r}")
        task._options = []
        task._constant("options", task._options)
        return task._needs_do()

    def with_option(self, value: Any, label: str, build: Callable[[WorkflowBuilder], Any] | None = None) -> StepBuilder:
        """An answer to the user task: ``value`` becomes its outcome, ``label`` is what people see,
        and ``build`` (optional) is a block that runs when it is chosen, like ``when(value).do(build)``."""
        if self._options is None:
            raise BuilderError(f"{self._label()}: with_option() follows user_task()")
        if not isinstance(label, str) or not label:
            raise BuilderError(f"{self._label()}: with_option({value!r}) needs a label")
        if any(known == value for known, _ in self._options):
            raise BuilderError(f"{self._label()}: the option {value!r} is given twice")
        self._options.append((value, label))
        if build is not None:
            self.when(value).do(build)
        return self

    def with_escalation(self, after: timedelta, new_assignee: str | DataFunction) -> StepBuilder:
        """Hand the user task to ``new_assignee`` if nobody has answered ``after`` it was asked."""
        if self._options is None:
            raise BuilderError(f"{self._label()}: with_escalation() follows user_task()")
        if not isinstance(after, timedelta) or after <= timedelta(0):
            raise BuilderError(f"{self._label()}: with_escalation needs a positive timedelta, got {after!r}")
        self._setting("with_escalation")
        self._constant("escalate_after", after)
        if callable(new_assignee):
            self._input("escalate_to", new_assignee)
        elif isinstance(new_assignee, str) and new_assignee:
            self._constant("escalate_to", new_assignee)
        else:
            raise BuilderError(f"{self._label()}: new_assignee must be a user name or a function, got {new_assignee!r}")
        return self

    def for_each(self, collection: DataFunction, run_parallel: bool | DataFunction = True) -> StepBuilder:
        """Run the ``do`` block once per item, all at once or (``run_parallel=False``) one after
        another in order; the item is ``context.execution_pointer.context_item``. ``run_parallel``
        may also be a function of data and context, evaluated when the loop starts."""
        loop = self._follow(Foreach, "for_each")._input("collection", collection)
        if isinstance(run_parallel, bool):
            loop._constant("run_parallel", run_parallel)
        elif callable(run_parallel):
            loop._input("run_parallel", run_parallel)
        else:
            raise BuilderError(
                f"{loop._label()}: run_parallel must be a bool or a function (data, context), got {run_parallel!r}"
            )
        return loop._needs_do()

    def while_(self, condition: DataFunction) -> StepBuilder:
        """Run the ``do`` block again and again while ``condition(data, context)`` holds."""
        return self._follow(While, "while_")._input("condition", condition)._needs_do()

    def if_(self, condition: DataFunction) -> StepBuilder:
        """Run the ``do`` block once if ``condition(data, context)`` holds, then go on either way."""
        return self._follow(If, "if_")._input("condition", condition)._needs_do()

    def saga(self, build: Callable[[WorkflowBuilder], Any]) -> StepBuilder:
        """A block whose completed steps are compensated, latest first, if one of them fails;
        then the workflow goes on after the saga (see :meth:`on_error` to do otherwise)."""
        saga = self._follow(Saga, "saga")
        return saga.do(build)

    def parallel(self) -> StepBuilder:
        """Branches given by repeated ``do`` calls run at once; ``join()`` and go on when all end."""
        parallel = self._follow(Parallel, "parallel")
        parallel._many_blocks = True
        return parallel._needs_do()

    def _needs_do(self) -> StepBuilder:
        self._builder._needs_block.append(self)
        return self

    def join(self) -> StepBuilder:
        if not self._many_blocks:
            raise BuilderError("join() follows parallel().do(...)")
        return self

    def when(self, value: Any) -> StepBuilder:
        """A block (``do``) that runs when this step completes with outcome ``value``.

        Every block whose value matches runs; the steps chained after the blocks run once, after
        all of them, and also when no block matches."""
        origin = self._origin or self
        if origin._outcomes is None:
            origin._outcomes = origin.then(Outcomes)
            origin._outcomes._verb = "when"
            origin._outcomes.step.inputs.append(("expression", preceding_outcome))
            origin._outcomes._branches = []
            origin._outcomes._constant("branches", origin._outcomes._branches)
        outcomes = origin._outcomes
        assert outcomes._branches is not None
        block = origin._builder._add(When)
        block._verb = "when"
        outcomes.step.children.append(block.step.id)
        outcomes._branches.append((value, block.step.id))
        block._origin = origin
        return block._needs_do()

    def decide(self, expression: DataFunction) -> StepBuilder:
        """Run the ``branch`` whose value equals ``expression(data, context)``, then go on."""
        decide = self._follow(Decide, "decide")._input("expression", expression)
        decide._branches = []
        decide._constant("branches", decide._branches)
        return decide._needs_do()

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
        detach = self._follow(Detach, "schedule")
        wait = self._builder._add(Delay)._input("period", delay)
        detach.step.children.append(wait.step.id)
        detach._prelude = wait
        return detach._needs_do()

    def recur(self, interval: DataFunction, until: DataFunction) -> StepBuilder:
        """Run the ``do`` block every ``interval`` in the background until ``until(data, context)``
        holds (checked before each round); the steps after ``recur`` go on at once."""
        stop = _data_function("recur until", until)
        detach = self._follow(Detach, "recur")
        loop = self._builder._add(While)
        loop.step.inputs.append(("condition", lambda data, context: not stop(data, context)))
        detach.step.children.append(loop.step.id)
        wait = self._builder._add(Delay)._input("period", interval)
        loop.step.children.append(wait.step.id)
        detach._prelude = wait
        return detach._needs_do()

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


class _BlockStart(StepBuilder):
    """Lets a verb begin a workflow or a block: what it adds becomes the first step."""

    def __init__(self, workflow_builder: WorkflowBuilder) -> None:
        super().__init__(workflow_builder, WorkflowStep(id=-1, body_factory=StepBody, body_name="start"))

    def then(self, step: StepLike) -> StepBuilder:
        return self._builder.start_with(step)
