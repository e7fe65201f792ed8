"""Reading a built :class:`WorkflowDefinition` back: what each step is, for export and graphs.

The builder turns verbs into steps of a few built-in bodies (``While``, ``Foreach``, ``Detach``...)
and turns arguments into input functions. These helpers recover the verb and the arguments: the
built-in body by class, constants set by the builder from its :class:`Constant` inputs, and
expressions of loaded definitions from the function objects that carry them.

A step with ``when`` blocks is followed by a hidden ``Outcomes`` step that runs the matching blocks
and then goes on; :func:`whens` and :func:`successors` fold it back into the step before it, as the
data format (and the fluent API) have it.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from ._builder import Constant, Workflow, WorkflowBuilder
from ._errors import InvalidArgumentError
from ._primitives import (
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
)
from ._steps import _ANY, WorkflowDefinition, WorkflowStep

_KINDS: dict[Any, str] = {
    WaitFor: "wait_for",
    Foreach: "for_each",
    While: "while",
    If: "if",
    Parallel: "parallel",
    Decide: "decide",
    Delay: "delay",
    Saga: "saga",
    When: "when",
    EndWorkflow: "end_workflow",
    SubWorkflow: "sub_workflow",
}


def definition_of(workflow: Workflow | type[Workflow] | WorkflowDefinition) -> WorkflowDefinition:
    """The built definition of a workflow (built afresh), or the definition itself. A Workflow
    class is instantiated first, as ``liteflow graph module:WorkflowClass`` names one."""
    if isinstance(workflow, WorkflowDefinition):
        return workflow
    if isinstance(workflow, type) and issubclass(workflow, Workflow):
        workflow = workflow()
    if not isinstance(workflow, Workflow):
        raise InvalidArgumentError(f"needs a Workflow or a WorkflowDefinition, got {workflow!r}")
    builder = WorkflowBuilder()
    workflow.build(builder)
    return builder.build(workflow.id(), workflow.version())


def kind(definition: WorkflowDefinition, step: WorkflowStep) -> str:
    """The verb behind a step: a built-in type name (``schedule``, ``recur`` for the two uses of
    ``Detach``), or ``""`` for a step body of the user's."""
    if step.body_factory is Detach:
        child = definition.steps[step.children[0]] if step.children else None
        return "recur" if child is not None and child.body_factory is While else "schedule"
    return _KINDS.get(step.body_factory, "")


def input_function(step: WorkflowStep, prop: str) -> Any:
    for name, function in step.inputs:
        if name == prop:
            return function
    return None


def constant(step: WorkflowStep, prop: str, default: Any = None) -> Any:
    """A value the builder set as a constant input (``event_name``, ``run_parallel``...)."""
    function = input_function(step, prop)
    return function.value if isinstance(function, Constant) else default


def outcomes_step(definition: WorkflowDefinition, step: WorkflowStep) -> WorkflowStep | None:
    """The hidden ``Outcomes`` step after a step with ``when`` blocks, or None."""
    for outcome in step.outcomes:
        following = definition.steps[outcome.next_step]
        if following.body_factory is Outcomes:
            return following
    return None


def is_hidden(step: WorkflowStep) -> bool:
    """A step the builder added for a ``when`` (shown as the deciding step's ``when`` blocks)."""
    return step.body_factory is Outcomes


def whens(definition: WorkflowDefinition, step: WorkflowStep) -> list[tuple[Any, int]]:
    """The ``when`` blocks of a step: (outcome value, ``When`` block step) in the order given."""
    hidden = outcomes_step(definition, step)
    return [] if hidden is None else list(constant(hidden, "branches", []))


def successors(definition: WorkflowDefinition, step: WorkflowStep) -> list[int]:
    """The steps a step goes on to (its ``next``): after ``when`` blocks, those after them."""
    result: list[int] = []
    for outcome in step.outcomes:
        if outcome.value is not _ANY:
            continue  # an outcome edge of a hand-built definition; the builder makes none
        following = definition.steps[outcome.next_step]
        if is_hidden(following):
            result.extend(o.next_step for o in following.outcomes)
        else:
            result.append(following.id)
    return result


def unwrap(function: Any) -> Any:
    """The user's function inside the builder's adapters (e.g. ``lambda data: ...`` adapted to
    ``(data, context)``, or recur's negated ``until``)."""
    while getattr(function, "__module__", "") == "liteflow.core._builder" and getattr(function, "__closure__", None):
        inner = [cell.cell_contents for cell in function.__closure__ if callable(cell.cell_contents)]
        if not inner:
            break
        function = inner[0]
    return function


def expression_text(function: Any) -> str | None:
    """The source of a loaded definition's expression, or None for a Python callable."""
    expression = getattr(unwrap(function), "expression", None)
    source = getattr(expression, "source", None)
    return source if isinstance(source, str) else None


def describe_callable(function: Any) -> dict[str, Any]:
    """A Python callable as data: its qualified name and where it is defined; not loadable."""
    function = unwrap(function)
    name = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
    described: dict[str, Any] = {"python": name}
    with contextlib.suppress(OSError, TypeError):
        described["at"] = f"{inspect.getsourcefile(function)}:{inspect.getsourcelines(function)[1]}"
    described["loadable"] = False
    return described


def as_expression(function: Any) -> Any:
    """An input function as the format has it: expression text, or a described callable."""
    text = expression_text(function)
    return text if text is not None else describe_callable(function)


def short_name(step: WorkflowStep) -> str:
    """The step body's name without the ``<locals>`` path of an inline function."""
    name = step.body_name
    return name.rsplit(".", 1)[-1] if "<locals>" in name else name
