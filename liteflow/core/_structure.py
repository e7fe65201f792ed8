"""Reading a built :class:`WorkflowDefinition` back: what each step is, for export and graphs.

The builder turns verbs into steps of a few built-in bodies (``While``, ``Foreach``, ``Detach``...)
and turns arguments into input functions. These helpers recover the verb and the arguments: the
built-in body by class, constants set by the builder by calling its constant functions, and
expressions of loaded definitions from the function objects that carry them.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from ._builder import Workflow, WorkflowBuilder
from ._errors import InvalidArgumentError
from ._primitives import (
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
from ._steps import WorkflowDefinition, WorkflowStep

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
_CONSTANT = "StepBuilder._constant.<locals>.<lambda>"


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
    if function is None or getattr(function, "__qualname__", "") != _CONSTANT:
        return default
    return function(None, None)  # the builder's own constant function: it ignores its arguments


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
