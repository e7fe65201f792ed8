"""Workflow definitions given as data (a dict, JSON or YAML): ``load_workflow`` and ``register_step``.

A loaded definition is checked completely when it is loaded (its shape, step types, ``next``
targets, cycles, every expression), then built by driving the fluent builder, so a loaded workflow
is made of exactly the steps its fluent twin would have and runs the same way.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from ._builder import StepBuilder, StepLike, Workflow, WorkflowBuilder
from ._definition_format import BUILT_IN_TYPES, check_document, parse_duration
from ._errors import BuilderError, DefinitionError
from ._expressions import Expression, compile_expression
from ._steps import ErrorBehavior, ErrorHandling, RetryPolicy, StepBody

DATA_NAMES = frozenset({"data", "context"})
STEP_NAMES = frozenset({"step"})
# Keys whose value is an expression of (data, context), per step type; outputs use ``step``.
_EXPRESSION_KEYS = ("event_key", "effective_date", "items", "condition", "expression", "period", "delay",
                    "interval", "until", "data", "cancel_condition")  # fmt: skip
_DURATION_KEYS = frozenset({"period", "delay", "interval"})
# Containers whose block always runs once reached; the others run theirs depending on data.
_UNCONDITIONAL_BLOCKS = frozenset({"parallel", "saga", "schedule"})

_registered: dict[str, StepLike] = {}
_registered_lock = threading.Lock()


def register_step(step: Any = None, *, name: str | None = None) -> Any:
    """Make a step type known to :func:`load_workflow` by name.

    Use as ``@register_step`` (the name is the class or function name), ``@register_step("name")``
    or ``register_step(MyStep, name="name")``. A step is a :class:`StepBody` subclass or a function
    taking the context.

    Raises:
        DefinitionError: the name is a built-in step type or already names another step.
    """
    if isinstance(step, str):
        return lambda target: register_step(target, name=step)
    if step is None:
        return lambda target: register_step(target, name=name)
    _check_step_like(step, f"register_step({step!r})")
    key = name or getattr(step, "__name__", None)
    if not isinstance(key, str) or not key:
        raise DefinitionError(f"register_step({step!r}) needs a name")
    if key in BUILT_IN_TYPES:
        raise DefinitionError(f"register_step: {key!r} is a built-in step type; choose another name")
    with _registered_lock:
        known = _registered.get(key)
        # The same module and name again is a re-import (e.g. a reloaded module): take the new one.
        if known is not None and known is not step and _origin(known) != _origin(step):
            raise DefinitionError(f"register_step: {key!r} already names {_origin(known)}")
        _registered[key] = step
    return step


def _origin(step: Any) -> str:
    return f"{getattr(step, '__module__', '?')}.{getattr(step, '__qualname__', repr(step))}"


def _check_step_like(step: Any, where: str) -> None:
    if isinstance(step, type):
        if not issubclass(step, StepBody):
            raise DefinitionError(f"{where}: {step.__name__} is not a StepBody subclass")
    elif isinstance(step, StepBody) or not callable(step):
        raise DefinitionError(f"{where}: a step is a StepBody subclass or a function taking the context, got {step!r}")


def load_workflow(source: Mapping[str, Any] | str | Path, steps: Mapping[str, StepLike] | None = None) -> Workflow:
    """Load a workflow definition given as data; register the result like any workflow.

    Args:
        source: the definition as a dict, JSON or YAML text, or a path to a ``.json``/``.yaml`` file.
            YAML needs PyYAML (``pip install "liteflow-engine[yaml]"``).
        steps: step types by name, in addition to (and before) those made known with
            :func:`register_step`.

    Returns:
        A :class:`Workflow`; loading the same definition with the same steps again gives an equal one.

    Raises:
        DefinitionError: the definition cannot be read or is invalid; the message names the step
            and the problem. Nothing is built or run.
    """
    with _registered_lock:
        types = dict(_registered)
    for name, step in (steps or {}).items():
        _check_step_like(step, f"steps[{name!r}]")
        types[name] = step
    try:
        document = check_document(read_source(source))
        plan = _Plan(document, types)
    except RecursionError:
        raise DefinitionError("the definition is nested too deeply") from None
    workflow = _workflow_class(plan)()
    try:  # a trial build, so that whatever the builder refuses is reported now, not at registration
        builder = WorkflowBuilder()
        workflow.build(builder)
        builder.build(workflow.id(), workflow.version())
    except BuilderError as error:
        raise DefinitionError(f"workflow {document['id']!r}: {error}") from error
    return workflow


def read_source(source: Any) -> Any:
    """The definition as Python data, from a dict, JSON or YAML text, or a path."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as error:
            raise DefinitionError(f"cannot read the definition {source}: {error}") from error
        if source.suffix.lower() == ".json":
            return _json(text)
        return _yaml(text) if source.suffix.lower() in (".yaml", ".yml") else read_source(text)
    if isinstance(source, str):
        if not source.lstrip().startswith(("{", "[")):
            return _yaml(source)
        try:
            return _json(source)
        except DefinitionError as as_json:
            if importlib.util.find_spec("yaml") is None:
                raise
            try:  # YAML's flow style, {id: W, steps: [...]}, also starts with a brace
                return _yaml(source)
            except DefinitionError as as_yaml:
                raise DefinitionError(f"{as_json}; and {as_yaml}") from None
    raise DefinitionError(f"a definition is a dict, JSON or YAML text, or a pathlib.Path, got {type(source).__name__}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DefinitionError(f"the definition is not valid JSON: {error}") from None


def yaml_module() -> Any:
    try:
        return importlib.import_module("yaml")
    except ImportError as error:
        raise ImportError('YAML definitions need PyYAML: pip install "liteflow-engine[yaml]"') from error


def _yaml(text: str) -> Any:
    yaml = yaml_module()
    try:
        return yaml.safe_load(text)  # safe_load builds plain data only, never objects
    except yaml.YAMLError as error:
        raise DefinitionError(f"the definition is not valid YAML: {error}") from None


class ExpressionFunction:
    """An expression of ``data`` and ``context``, in the form the builder takes."""

    def __init__(self, expression: Expression, as_duration: bool = False) -> None:
        self.expression = expression
        self.as_duration = as_duration

    def __call__(self, data: Any, context: Any) -> Any:
        value = self.expression(data=data, context=context)
        if self.as_duration and not isinstance(value, timedelta):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return timedelta(seconds=value)
            raise DefinitionError(
                f"{self.expression.where}: {self.expression.source!r} gave {value!r}, not a duration "
                "(a number of seconds, or days(n), hours(n), minutes(n), seconds(n))"
            )
        return value


class ExpressionOutput:
    """An expression of ``step`` (the step body after it ran), in the form the builder takes."""

    def __init__(self, expression: Expression) -> None:
        self.expression = expression

    def __call__(self, step: Any) -> Any:
        return self.expression(step=step)


@dataclass
class _StepPlan:
    spec: dict[str, Any]
    block: int
    label: str
    kind: str
    body: StepLike | None = None
    compensation: StepLike | None = None
    functions: dict[str, ExpressionFunction] = field(default_factory=dict)
    inputs: list[tuple[str, ExpressionFunction]] = field(default_factory=list)
    outputs: list[tuple[str, ExpressionOutput]] = field(default_factory=list)
    error: ErrorHandling | None = None


class _Plan:
    """A checked definition: every step resolved and every expression compiled."""

    def __init__(self, document: dict[str, Any], types: dict[str, StepLike]) -> None:
        self.document = document
        self.types = types
        self.steps: dict[str, _StepPlan] = {}
        self.blocks: list[tuple[str | None, list[str]]] = []
        self._index(document["steps"], None)
        for plan in self.steps.values():
            self._resolve(plan)
        self.used_types = {
            name: types[name] for name in sorted({*self._names("type"), *self._names("compensate_with")})
        }
        self._check_next()
        self._check_cycles()
        self.default_error = _error_handling(document.get("default_error_behavior"), f"workflow {document['id']!r}")

    def _names(self, key: str) -> set[str]:
        return {p.spec[key] for p in self.steps.values() if key in p.spec and p.spec[key] not in BUILT_IN_TYPES}

    def _index(self, steps: list[dict[str, Any]], parent: str | None) -> None:
        block = len(self.blocks)
        self.blocks.append((parent, [step["id"] for step in steps]))
        for step in steps:
            kind = step["type"] if step["type"] in BUILT_IN_TYPES else ""
            label = f"step {step['id']!r} ({step['type']})"
            if step["id"] in self.steps:
                raise DefinitionError(f"{label}: two steps have the id {step['id']!r}")
            self.steps[step["id"]] = _StepPlan(step, block, label, kind)
            for sub in _sub_blocks(step):
                self._index(sub, step["id"])

    def _type(self, name: str, where: str) -> StepLike:
        if name not in self.types:
            close = difflib.get_close_matches(name, [*self.types, *BUILT_IN_TYPES], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DefinitionError(
                f"{where}: unknown step type {name!r}{hint}; pass it in steps= or register it with @register_step"
            )
        return self.types[name]

    def _resolve(self, plan: _StepPlan) -> None:
        spec, label = plan.spec, plan.label
        if not plan.kind:
            plan.body = self._type(spec["type"], label)
        if "compensate_with" in spec:
            plan.compensation = self._type(spec["compensate_with"], f"{label}, compensate_with")
        for key in _EXPRESSION_KEYS:
            if key in spec:
                where = f"{label}, {key}"
                expression = compile_expression(spec[key], DATA_NAMES, where)
                plan.functions[key] = ExpressionFunction(expression, as_duration=key in _DURATION_KEYS)
        for prop, text in spec.get("inputs", {}).items():
            expression = compile_expression(text, DATA_NAMES, f"{label}, input {prop!r}")
            plan.inputs.append((prop, ExpressionFunction(expression)))
        for prop, text in spec.get("outputs", {}).items():
            expression = compile_expression(text, STEP_NAMES, f"{label}, output {prop!r}")
            plan.outputs.append((prop, ExpressionOutput(expression)))
        plan.error = _error_handling(spec.get("error_behavior"), label)
        if "retry_interval" in spec and spec.get("error_behavior") != "retry":
            raise DefinitionError(f"{label}: retry_interval needs error_behavior: retry")
        if "timeout_outcome" in spec and "timeout" not in spec:
            raise DefinitionError(f"{label}: timeout_outcome needs a timeout")
        if "timeout" in spec and parse_duration(spec["timeout"], f"{label}, timeout") <= 0:
            raise DefinitionError(f"{label}: timeout must be longer than 0")

    def _enclosing_blocks(self, block: int) -> list[int]:
        chain = [block]
        parent = self.blocks[block][0]
        while parent is not None:
            block = self.steps[parent].block
            chain.append(block)
            parent = self.blocks[block][0]
        return chain

    def _check_next(self) -> None:
        targeted: set[str] = set()
        for plan in self.steps.values():
            target = plan.spec.get("next")
            if target is None:
                continue
            if target not in self.steps:
                raise DefinitionError(f"{plan.label}: next {target!r} is not the id of any step")
            if self.steps[target].block not in self._enclosing_blocks(plan.block):
                raise DefinitionError(
                    f"{plan.label}: next {target!r} is inside another container's block; a step can go on "
                    "to a step of its own block or of a block enclosing it"
                )
            targeted.add(target)
        firsts = {steps[0] for _, steps in self.blocks}
        for step_id, plan in self.steps.items():
            if step_id not in firsts and step_id not in targeted:
                raise DefinitionError(
                    f"{plan.label}: is never reached: it is not the first step of its block and no step's next names it"
                )

    def _unconditional_edges(self, step_id: str) -> list[str]:
        plan = self.steps[step_id]
        edges = []
        if "next" in plan.spec and "when" not in plan.spec and plan.kind != "end_workflow":
            edges.append(plan.spec["next"])
        if plan.kind in _UNCONDITIONAL_BLOCKS:
            edges.extend(sub[0]["id"] for sub in _sub_blocks(plan.spec))
        return edges

    def _check_cycles(self) -> None:
        # Depth-first search over the edges that are always taken: a cycle made only of those can
        # never be left. Cycles through a when outcome or a loop's condition are fine.
        state: dict[str, int] = {}
        for start in self.steps:
            if state.get(start):
                continue
            path: list[str] = []
            stack: list[tuple[str, list[str]]] = [(start, self._unconditional_edges(start))]
            state[start] = 1
            path.append(start)
            while stack:
                node, edges = stack[-1]
                if not edges:
                    stack.pop()
                    path.pop()
                    state[node] = 2
                    continue
                target = edges.pop()
                if state.get(target) == 1:
                    cycle = [*path[path.index(target) :], target]
                    raise DefinitionError(
                        f"{self.steps[target].label}: steps {' -> '.join(cycle)} form a cycle that never ends; "
                        "repeat steps with a while loop, or go back through a when outcome"
                    )
                if not state.get(target):
                    state[target] = 1
                    path.append(target)
                    stack.append((target, self._unconditional_edges(target)))

    def build(self, builder: WorkflowBuilder) -> None:
        if self.default_error is not None:
            interval = self.document.get("default_retry_interval")
            builder.use_default_error_behavior(self.default_error, _seconds(interval, "default_retry_interval"))
        _Session(self).chain(builder, self.blocks[0][1][0])


def _seconds(value: Any, where: str) -> timedelta | None:
    return None if value is None else timedelta(seconds=parse_duration(value, where))


def _sub_blocks(step: dict[str, Any]) -> list[list[dict[str, Any]]]:
    blocks = list(step.get("do", []))
    for item in (*step.get("when", ()), *step.get("branches", ())):
        blocks.extend(item["do"])
    return blocks


def _error_handling(value: Any, where: str) -> ErrorHandling | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ErrorBehavior(value)
    try:
        return RetryPolicy(
            max_attempts=value["max_attempts"],
            initial_interval=_seconds(value.get("initial_interval", 1), where) or timedelta(seconds=1),
            backoff=value.get("backoff", 2.0),
            max_interval=_seconds(value.get("max_interval", 600), where) or timedelta(minutes=10),
            jitter=value.get("jitter", 0.0),
            then=ErrorBehavior(value.get("then", "suspend")),
        )
    except ValueError as error:
        raise DefinitionError(f"{where}: invalid retry policy: {error}") from None


class _Session:
    """One build of a plan: drives the builder step by step, following ``next``."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.built: set[str] = set()

    def block(self, steps: list[dict[str, Any]]) -> Callable[[WorkflowBuilder], None]:
        return lambda builder: self.chain(builder, steps[0]["id"])

    def chain(self, previous: StepBuilder | WorkflowBuilder, step_id: str) -> None:
        """Add ``step_id`` and the steps along its ``next``, after ``previous`` or, given the
        builder of a block (or of the workflow), as its first steps: every verb can begin one."""
        # A loop rather than recursion along next, so long chains do not hit the recursion limit.
        while True:
            plan = self.plan.steps[step_id]
            try:
                built = self.step(previous, plan)
            except BuilderError as error:
                raise DefinitionError(f"{plan.label}: {error}") from error
            target = plan.spec.get("next")
            if target is None:
                return
            if target in self.built:
                built.attach(target)
                return
            previous, step_id = built, target

    def step(self, previous: StepBuilder | WorkflowBuilder, plan: _StepPlan) -> StepBuilder:
        """Add the step; what it returns continues (after ``when`` blocks: once, after them)."""
        built = self.add(previous, plan)
        spec = plan.spec
        built.id(spec["id"])
        self.built.add(spec["id"])
        if "name" in spec:
            built.name(spec["name"])
        for prop, function in plan.inputs:
            built.input(prop, function)
        for prop, output in plan.outputs:
            built.output(prop, output)
        if plan.error is not None:
            built.on_error(plan.error, _seconds(spec.get("retry_interval"), f"{plan.label}, retry_interval"))
        if "timeout" in spec:
            duration = timedelta(seconds=parse_duration(spec["timeout"], plan.label))
            if "timeout_outcome" in spec:
                built.timeout(duration, outcome=spec["timeout_outcome"])
            else:
                built.timeout(duration)
        if "cancel_condition" in plan.functions:
            built.cancel_condition(plan.functions["cancel_condition"], spec.get("proceed_after_cancel", False))
        if plan.compensation is not None:
            built.compensate_with(plan.compensation)
        for item in spec.get("when", ()):
            built = built.when(item["outcome"]).do(self.block(item["do"][0]))
        return built

    def add(self, previous: StepBuilder | WorkflowBuilder, plan: _StepPlan) -> StepBuilder:
        spec, f = plan.spec, plan.functions
        kind = plan.kind
        if not kind:
            assert plan.body is not None
            return previous.then(plan.body) if isinstance(previous, StepBuilder) else previous.start_with(plan.body)
        if kind == "wait_for":
            return previous.wait_for(spec["event_name"], f["event_key"], f.get("effective_date"))
        if kind == "for_each":
            looped = previous.for_each(f["items"], run_parallel=spec.get("run_parallel", True))
            return looped.do(self.block(spec["do"][0]))
        if kind == "while":
            return previous.while_(f["condition"]).do(self.block(spec["do"][0]))
        if kind == "if":
            return previous.if_(f["condition"]).do(self.block(spec["do"][0]))
        if kind == "parallel":
            parallel = previous.parallel()
            for branch in spec["do"]:
                parallel.do(self.block(branch))
            return parallel.join()
        if kind == "decide":
            decide = previous.decide(f["expression"])
            for item in spec["branches"]:
                decide.branch(item["value"], self.block(item["do"][0]))
            return decide
        if kind == "delay":
            return previous.delay(f["period"])
        if kind == "schedule":
            return previous.schedule(f["delay"]).do(self.block(spec["do"][0]))
        if kind == "recur":
            return previous.recur(f["interval"], f["until"]).do(self.block(spec["do"][0]))
        if kind == "saga":
            return previous.saga(self.block(spec["do"][0]))
        if kind == "end_workflow":
            return previous.end_workflow()
        on_parent_end = spec.get("on_parent_end", "terminate")
        return previous.sub_workflow(
            spec["workflow_id"], f.get("data"), version=spec.get("version"), on_parent_end=on_parent_end
        )


class LoadedWorkflow(Workflow):
    """A workflow loaded with :func:`load_workflow`. ``document`` is its definition, checked and in
    canonical key order (what ``export_workflow`` gives)."""

    plan: ClassVar[_Plan]

    def id(self) -> str:
        return str(self.plan.document["id"])

    def version(self) -> int:
        return int(self.plan.document["version"])

    def build(self, builder: WorkflowBuilder) -> None:
        self.plan.build(builder)

    @property
    def document(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(json.dumps(self.plan.document))
        return result


_classes: dict[tuple[str, tuple[tuple[str, Any], ...]], type[LoadedWorkflow]] = {}


def _workflow_class(plan: _Plan) -> type[LoadedWorkflow]:
    """One class per distinct definition (and step types): the host tells workflows apart by class,
    so loading the same definition twice registers once, and a changed definition under the same
    id and version is refused as a duplicate instead of being silently ignored."""
    key = (json.dumps(plan.document, sort_keys=True), tuple(plan.used_types.items()))
    with _registered_lock:
        cls = _classes.get(key)
        if cls is None:
            name = f"LoadedWorkflow[{plan.document['id']} v{plan.document['version']}]"
            cls = type(name, (LoadedWorkflow,), {"plan": plan, "__qualname__": name, "__module__": __name__})
            _classes[key] = cls
    return cls
