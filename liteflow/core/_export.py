"""``export_workflow``: any workflow definition, fluent or loaded, as data in the loading format."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from ._builder import Workflow
from ._definition_format import step_keys
from ._definitions import LoadedWorkflow, yaml_module
from ._errors import InvalidArgumentError
from ._steps import _ANY, ErrorHandling, RetryPolicy, WorkflowDefinition, WorkflowStep
from ._structure import (
    as_expression,
    constant,
    definition_of,
    describe_callable,
    input_function,
    kind,
    outcomes_step,
    successors,
    unwrap,
    whens,
)


def export_workflow(workflow: Workflow | type[Workflow] | WorkflowDefinition, format: str = "dict") -> Any:
    """A workflow definition in the format :func:`load_workflow` reads.

    A loaded definition comes back as it was loaded (keys in canonical order), so exporting and
    loading it again gives the same workflow. A fluent one is read from its built steps: step
    classes appear by name (load them back with ``steps=`` or ``@register_step``), Python functions
    and lambdas as ``{"python": qualified name, "at": file:line, "loadable": false}``, which
    ``load_workflow`` refuses until they are replaced by expressions or registered step types.

    Args:
        workflow: a :class:`Workflow` (e.g. from ``load_workflow``), a Workflow class, or a built
            definition.
        format: ``"dict"``, ``"json"`` (text) or ``"yaml"`` (text; needs PyYAML).

    Raises:
        InvalidArgumentError: an unknown format.
    """
    if format not in ("dict", "json", "yaml"):
        raise InvalidArgumentError(f"export_workflow format must be 'dict', 'json' or 'yaml', got {format!r}")
    if isinstance(workflow, LoadedWorkflow):
        document = workflow.document
    else:
        document = _Exporter(definition_of(workflow)).document()
    if format == "json":
        return json.dumps(document, indent=2, default=str)
    if format == "yaml":
        return yaml_module().safe_dump(document, sort_keys=False, allow_unicode=True)
    return document


def _seconds(value: timedelta) -> float | int:
    seconds = value.total_seconds()
    return int(seconds) if seconds == int(seconds) else seconds


def _error(behavior: ErrorHandling) -> Any:
    if isinstance(behavior, RetryPolicy):
        return {
            "max_attempts": behavior.max_attempts,
            "initial_interval": _seconds(behavior.initial_interval),
            "backoff": behavior.backoff,
            "max_interval": _seconds(behavior.max_interval),
            "jitter": behavior.jitter,
            "then": behavior.then.value,
        }
    return behavior.value


class _Exporter:
    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self.steps = definition.steps
        self.done: set[int] = set()

    def document(self) -> dict[str, Any]:
        definition = self.definition
        document: dict[str, Any] = {"id": definition.id, "version": definition.version}
        if definition.default_error_behavior is not None:
            document["default_error_behavior"] = _error(definition.default_error_behavior)
        if definition.default_retry_interval is not None:
            document["default_retry_interval"] = _seconds(definition.default_retry_interval)
        document["steps"] = self.block(definition.start_step)
        return document

    def ident(self, step_id: int) -> str:
        step = self.steps[step_id]
        return step.external_id or f"step{step.id}"

    def block(self, first: int) -> list[dict[str, Any]]:
        """The steps from ``first`` along ``next``, each once (a step met again is only a ``next``)."""
        result: list[dict[str, Any]] = []
        pending = [first]
        while pending:
            step_id = pending.pop(0)
            if step_id in self.done:
                continue
            self.done.add(step_id)
            exported, following = self.step(self.steps[step_id])
            result.append(exported)
            pending.extend(following)
        return result

    def step(self, step: WorkflowStep) -> tuple[dict[str, Any], list[int]]:
        step_kind = kind(self.definition, step)
        exported: dict[str, Any] = {"id": self.ident(step.id)}
        if step_kind:
            exported["type"] = step_kind
        elif isinstance(step.body_factory, type):
            exported["type"] = step.body_name
        else:
            exported["type"] = describe_callable(unwrap(step.body_factory))
        if step.name is not None:
            exported["name"] = step.name
        following = self.outcomes(step, exported)
        exported.update(self.arguments(step, step_kind))
        exported.update(self.options(step))
        order = step_keys(step_kind or "")
        return {key: exported[key] for key in order if key in exported}, following

    def outcomes(self, step: WorkflowStep, exported: dict[str, Any]) -> list[int]:
        """``when`` (the blocks run by the hidden Outcomes step after ``step``) and ``next``."""
        hidden = outcomes_step(self.definition, step)
        if hidden is not None:
            self.done.add(hidden.id)
            self.done.update(block for _, block in whens(self.definition, step))
            exported["when"] = [
                {"outcome": value, "do": [self.block(self.steps[block].children[0])]}
                for value, block in whens(self.definition, step)
            ]
        following = successors(self.definition, step)
        if following:
            exported["next"] = self.ident(following[0])
        return following[:1]

    def arguments(self, step: WorkflowStep, step_kind: str) -> dict[str, Any]:
        def expression(prop: str, on: WorkflowStep = step) -> Any:
            return as_expression(input_function(on, prop))

        def blocks() -> list[list[dict[str, Any]]]:
            return [self.block(child) for child in step.children]

        if step_kind == "":
            result: dict[str, Any] = {}
            if step.inputs:
                result["inputs"] = {prop: as_expression(function) for prop, function in step.inputs}
            return {**result, **self.outputs(step)}
        if step_kind == "wait_for":
            result = {"event_name": constant(step, "event_name"), "event_key": expression("event_key")}
            if input_function(step, "effective_date") is not None:
                result["effective_date"] = expression("effective_date")
            return {**result, **self.outputs(step)}
        if step_kind == "for_each":
            run_parallel = constant(step, "run_parallel", True)
            return {
                "items": expression("collection"),
                **({} if run_parallel else {"run_parallel": False}),
                "do": blocks(),
            }
        if step_kind in ("while", "if"):
            return {"condition": expression("condition"), "do": blocks()}
        if step_kind in ("parallel", "saga"):
            return {"do": blocks()}
        if step_kind == "decide":
            branches = constant(step, "branches", [])
            return {
                "expression": expression("expression"),
                "branches": [{"value": value, "do": [self.block(child)]} for value, child in branches],
            }
        if step_kind == "delay":
            return {"period": expression("period")}
        if step_kind == "schedule":
            delay = self.steps[step.children[0]]
            self.done.add(delay.id)
            return {"delay": expression("period", delay), "do": [self.block(delay.outcomes[0].next_step)]}
        if step_kind == "recur":
            loop = self.steps[step.children[0]]
            delay = self.steps[loop.children[0]]
            self.done.update((loop.id, delay.id))
            return {
                "interval": expression("period", delay),
                "until": expression("condition", loop),
                "do": [self.block(delay.outcomes[0].next_step)],
            }
        if step_kind == "sub_workflow":
            result = {"workflow_id": constant(step, "workflow_id")}
            if constant(step, "version") is not None:
                result["version"] = constant(step, "version")
            if constant(step, "on_parent_end") is not None:
                result["on_parent_end"] = constant(step, "on_parent_end")
            if input_function(step, "data") is not None:
                result["data"] = expression("data")
            return {**result, **self.outputs(step)}
        return {}

    def outputs(self, step: WorkflowStep) -> dict[str, Any]:
        if not step.outputs:
            return {}
        return {"outputs": {prop: as_expression(function) for prop, function in step.outputs}}

    def options(self, step: WorkflowStep) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if step.error_behavior is not None:
            result["error_behavior"] = _error(step.error_behavior)
        if step.retry_interval is not None:
            result["retry_interval"] = _seconds(step.retry_interval)
        if step.timeout is not None:
            result["timeout"] = _seconds(step.timeout)
            if step.timeout_outcome is not _ANY:
                result["timeout_outcome"] = step.timeout_outcome
        if step.cancel_condition is not None:
            result["cancel_condition"] = as_expression(step.cancel_condition)
            if step.proceed_after_cancel:
                result["proceed_after_cancel"] = True
        if step.compensation_step is not None:
            compensation = self.steps[step.compensation_step]
            self.done.add(compensation.id)
            result["compensate_with"] = (
                compensation.body_name
                if isinstance(compensation.body_factory, type)
                else describe_callable(unwrap(compensation.body_factory))
            )
        return result
