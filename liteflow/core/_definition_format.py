"""The format of workflow definitions given as data: the keys, their checks, and the JSON Schema.

One table (:data:`STEP_KINDS` plus :data:`COMMON_STEP_KEYS` and :data:`WORKFLOW_KEYS`) drives both
the checks made by :func:`check_document` and the schema made by :func:`json_schema`, so the
published schema cannot drift from what the loader accepts.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import DefinitionError

DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
ERROR_BEHAVIORS = ("retry", "suspend", "terminate", "compensate")


@dataclass(frozen=True)
class Key:
    """One key of the format: its kind of value, whether it is required, and what it means."""

    kind: str
    doc: str
    required: bool = False


COMMON_STEP_KEYS: dict[str, Key] = {
    "id": Key("string", "Unique id of the step, used by next.", required=True),
    "type": Key(
        "string",
        "A registered step type, or a built-in: wait_for, for_each, while, if, parallel, decide, delay, "
        "schedule, recur, saga, end_workflow, sub_workflow.",
        required=True,
    ),
    "name": Key("string", "A display name."),
    "next": Key("string", "Id of the step that runs after this one (after its when blocks, if any)."),
    "when": Key("when", "Blocks run when this step completes with a given outcome."),
    "error_behavior": Key("error_behavior", "retry, suspend, terminate, compensate, or a retry policy."),
    "retry_interval": Key("duration", "Wait before retrying when error_behavior is retry."),
    "timeout": Key("duration", "Longest time the step may take from its first run."),
    "timeout_outcome": Key("value", "Outcome the step completes with on timeout (else it fails)."),
    "cancel_condition": Key("expression", "Ends the step and all inside it when true (data, context)."),
    "proceed_after_cancel": Key("boolean", "Whether the following steps run after a cancellation."),
    "compensate_with": Key("string", "Registered step type that undoes this step (or this saga)."),
}

_INPUTS = Key("mapping", "Step attributes set before it runs: attribute -> expression of data, context.")
_OUTPUTS = Key("mapping", "Data attributes set after the step: attribute -> expression of step.")
_ONE_BLOCK = Key("block", "The block: a list holding one list of steps.", required=True)

STEP_KINDS: dict[str, dict[str, Key]] = {
    "": {"inputs": _INPUTS, "outputs": _OUTPUTS},  # a registered step type
    "wait_for": {
        "event_name": Key("string", "Name of the event to wait for.", required=True),
        "event_key": Key("expression", "Key of the event (data, context).", required=True),
        "effective_date": Key("expression", "Events published at or after this datetime count."),
        "outputs": _OUTPUTS,
    },
    "for_each": {
        "items": Key("expression", "The items; the block runs once per item (context.item).", required=True),
        "run_parallel": Key("boolean", "All items at once (default) or one after another."),
        "do": _ONE_BLOCK,
    },
    "while": {"condition": Key("expression", "Checked before each round.", required=True), "do": _ONE_BLOCK},
    "if": {"condition": Key("expression", "The block runs once if true.", required=True), "do": _ONE_BLOCK},
    "parallel": {"do": Key("do", "The branches, each a list of steps, run at once.", required=True)},
    "decide": {
        "expression": Key("expression", "Its value picks the branch.", required=True),
        "branches": Key("branches", "value -> block.", required=True),
    },
    "delay": {"period": Key("expression", "Seconds, or days(n), hours(n)...", required=True)},
    "schedule": {"delay": Key("expression", "Run the block this long after.", required=True), "do": _ONE_BLOCK},
    "recur": {
        "interval": Key("expression", "Run the block every interval.", required=True),
        "until": Key("expression", "Stop when true (checked before each round).", required=True),
        "do": _ONE_BLOCK,
    },
    "saga": {"do": _ONE_BLOCK},
    "end_workflow": {},
    "sub_workflow": {
        "workflow_id": Key("string", "Id of the registered workflow to start.", required=True),
        "version": Key("integer", "Its version (default: the latest)."),
        "data": Key("expression", "Its data (data, context)."),
        "on_parent_end": Key("string", "terminate (the default) or abandon: a child still running when the step ends."),
        "outputs": _OUTPUTS,
    },
}
BUILT_IN_TYPES = frozenset(STEP_KINDS) - {""}
"""Step types that are built-in primitives; a registered step cannot take one of these names."""

RETRY_POLICY_KEYS: dict[str, Key] = {
    "max_attempts": Key("integer", "Attempts in all, the first included.", required=True),
    "initial_interval": Key("duration", "Wait after the first failure (default 1 s)."),
    "backoff": Key("number", "Factor between one wait and the next (default 2)."),
    "max_interval": Key("duration", "Longest wait (default 10 min)."),
    "jitter": Key("number", "Random fraction each wait may vary by, 0 to 1 (default 0)."),
    "then": Key("string", "What happens after the last attempt: suspend (default), terminate or compensate."),
}

WORKFLOW_KEYS: dict[str, Key] = {
    "id": Key("string", "Workflow id, as given to start_workflow.", required=True),
    "version": Key("integer", "Workflow version (default 1)."),
    "description": Key("string", "Free text."),
    "default_error_behavior": Key("error_behavior", "Error behaviour of steps that set none."),
    "default_retry_interval": Key("duration", "Retry interval with default_error_behavior retry."),
    "steps": Key("steps", "The steps; the first one starts the workflow.", required=True),
}


def step_keys(step_type: str) -> dict[str, Key]:
    """The keys a step of ``step_type`` may have, in their canonical order."""
    return {**COMMON_STEP_KEYS, **STEP_KINDS.get(step_type, STEP_KINDS[""])}


def parse_duration(value: Any, where: str) -> float:
    """A duration as seconds: a number, or a string such as ``'90s'``, ``'1h30m'``, ``'3d'``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value):
        return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    raise DefinitionError(f"{where}: {value!r} is not a duration (seconds, or e.g. '500ms', '90s', '5m', '2h', '3d')")


# Names users bring from the fluent API or other engines, and where the format has them.
_MOVED = {
    "retry_policy": "error_behavior: {max_attempts: ...}",
    "on_error": "error_behavior",
    "then": "next",
    "compensation": "compensate_with",
    "collection": "items",
}


def _unknown(key: str, known: dict[str, Key] | tuple[str, ...], where: str) -> DefinitionError:
    close = difflib.get_close_matches(key, list(known), n=1)
    if key in _MOVED and _MOVED[key].split(":")[0] in known:
        hint = f" (write {_MOVED[key]})"
    else:
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DefinitionError(f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(known)}")


def _check_keys(mapping: Any, keys: dict[str, Key], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise DefinitionError(f"{where}: needs a mapping, got {mapping!r}")
    for key in mapping:
        if key not in keys:
            raise _unknown(str(key), keys, where)
    for key, spec in keys.items():
        if spec.required and key not in mapping:
            raise DefinitionError(f"{where}: missing required key {key!r} ({spec.doc})")
    # Canonical order, so that export gives the same text whatever order the source used.
    return {
        key: _check_value(mapping[key], spec.kind, f"{where}, {key}") for key, spec in keys.items() if key in mapping
    }


def _check_value(value: Any, kind: str, where: str) -> Any:
    checker = _CHECKERS[kind]
    return checker(value, where)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{where}: needs a non-empty string, got {value!r}")
    return value


def _integer(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DefinitionError(f"{where}: needs an integer, got {value!r}")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DefinitionError(f"{where}: needs true or false, got {value!r}")
    return value


def _scalar(value: Any, where: str) -> Any:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise DefinitionError(f"{where}: needs a string, number, boolean or null, got {value!r}")
    return value


def _expression_text(value: Any, where: str) -> Any:
    if isinstance(value, dict) and "python" in value:
        raise DefinitionError(
            f"{where}: is the Python callable {value['python']} exported from a fluent definition; "
            "it cannot be loaded: write it as an expression"
        )
    if isinstance(value, (bool, int, float)):
        return repr(value)  # YAML's true or 3 where an expression is expected: the same as "True", "3"
    return _string(value, where)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: needs a mapping of attribute names to expressions, got {value!r}")
    return {_string(k, where): _expression_text(v, f"{where} {k!r}") for k, v in value.items()}


def _error_behavior(value: Any, where: str) -> Any:
    if isinstance(value, str):
        if value not in ERROR_BEHAVIORS:
            raise DefinitionError(f"{where}: unknown error behavior {value!r}; use one of {', '.join(ERROR_BEHAVIORS)}")
        return value
    policy = _check_keys(value, RETRY_POLICY_KEYS, f"{where} (retry policy)")
    if policy.get("then", "suspend") not in ERROR_BEHAVIORS[1:]:
        raise DefinitionError(f"{where}: retry policy 'then' must be suspend, terminate or compensate")
    return policy


def _number(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DefinitionError(f"{where}: needs a number, got {value!r}")
    return value


def _duration(value: Any, where: str) -> Any:
    parse_duration(value, where)
    return value


def check_step(step: Any, where: str) -> dict[str, Any]:
    """Check one step (recursively its blocks) and return it with its keys in canonical order."""
    if not isinstance(step, dict):
        raise DefinitionError(f"{where}: a step must be a mapping, got {step!r}")
    step_id = step.get("id")
    step_type = step.get("type")
    label = f"step {step_id!r}" + (f" ({step_type})" if isinstance(step_type, str) else "")
    if isinstance(step_type, dict) and "python" in step_type:
        raise DefinitionError(
            f"{label}: its type is the Python callable {step_type['python']} exported from a fluent "
            "definition; it cannot be loaded: register a step type for it"
        )
    return _check_keys(step, step_keys(step_type if isinstance(step_type, str) else ""), label)


def _steps(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise DefinitionError(f"{where}: needs a non-empty list of steps, got {value!r}")
    return [check_step(step, f"{where}[{i}]") for i, step in enumerate(value)]


def _do(value: Any, where: str) -> list[list[dict[str, Any]]]:
    if not isinstance(value, list) or not value or not all(isinstance(branch, list) for branch in value):
        raise DefinitionError(f"{where}: needs a list of branches, each a list of steps (do: [[...]]), got {value!r}")
    return [_steps(branch, f"{where}[{i}]") for i, branch in enumerate(value)]


def _block(value: Any, where: str) -> list[list[dict[str, Any]]]:
    branches = _do(value, where)
    if len(branches) != 1:
        raise DefinitionError(
            f"{where}: needs exactly one block (do: [[...]]), got {len(branches)}; only parallel has more"
        )
    return branches


def _labelled_blocks(label: str) -> Any:
    keys = {label: Key("value", f"The {label} that selects this block.", required=True), "do": _ONE_BLOCK}

    def check(value: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise DefinitionError(f"{where}: needs a non-empty list of {{{label}: ..., do: [[...]]}}, got {value!r}")
        return [_check_keys(item, keys, f"{where}[{i}]") for i, item in enumerate(value)]

    return check


_CHECKERS: dict[str, Any] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "value": _scalar,
    "expression": _expression_text,
    "mapping": _mapping,
    "duration": _duration,
    "error_behavior": _error_behavior,
    "steps": _steps,
    "do": _do,
    "block": _block,
    "when": _labelled_blocks("outcome"),
    "branches": _labelled_blocks("value"),
}


def check_document(document: Any) -> dict[str, Any]:
    """Check the shape of a whole definition (keys, value types) and return it in canonical form.

    Raises:
        DefinitionError: naming the step (or the workflow) and the problem.
    """
    workflow_id = document.get("id") if isinstance(document, dict) else None
    where = f"workflow {workflow_id!r}" if isinstance(workflow_id, str) else "workflow definition"
    checked = _check_keys(document, WORKFLOW_KEYS, where)
    checked.setdefault("version", 1)
    return {key: checked[key] for key in WORKFLOW_KEYS if key in checked}


# -- JSON Schema ------------------------------------------------------------------------------------

SCHEMA_FILE = "schema/workflow-definition.schema.json"
"""Where the schema ships, relative to the ``liteflow.core`` package."""

_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string", "minLength": 1},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "value": {"type": ["string", "number", "boolean", "null"]},
    "expression": {"$ref": "#/$defs/expression"},
    "mapping": {"type": "object", "additionalProperties": {"$ref": "#/$defs/expression"}},
    "duration": {"$ref": "#/$defs/duration"},
    "error_behavior": {"$ref": "#/$defs/error_behavior"},
    "steps": {"$ref": "#/$defs/steps"},
    "do": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/steps"}},
    "block": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"$ref": "#/$defs/steps"}},
    "when": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/when"}},
    "branches": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/branch"}},
}


def _object_schema(keys: dict[str, Key], **overrides: dict[str, Any]) -> dict[str, Any]:
    properties = {
        name: {**overrides.get(name, _SCHEMA_TYPES[key.kind]), "description": key.doc} for name, key in keys.items()
    }
    required = [name for name, key in keys.items() if key.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the format, made from the same tables the checks use."""
    steps: dict[str, Any] = {}
    for kind, keys in STEP_KINDS.items():
        if kind:
            type_schema: dict[str, Any] = {"const": kind}
        else:
            type_schema = {"type": "string", "minLength": 1, "not": {"enum": sorted(BUILT_IN_TYPES)}}
        steps[f"step_{kind or 'registered'}"] = _object_schema({**COMMON_STEP_KEYS, **keys}, type=type_schema)
    then = {"enum": list(ERROR_BEHAVIORS[1:])}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LiteFlow workflow definition",
        "description": "A workflow for liteflow.core.load_workflow, as JSON or YAML.",
        **_object_schema(WORKFLOW_KEYS),
        "$defs": {
            "expression": {
                "type": ["string", "number", "boolean"],
                "description": "A safe Python-like expression (see the README, 'Definitions as data').",
            },
            "duration": {
                "oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
                "description": "Seconds, or a string such as '500ms', '90s', '5m', '2h', '3d', '1h30m'.",
            },
            "error_behavior": {
                "oneOf": [{"enum": list(ERROR_BEHAVIORS)}, _object_schema(RETRY_POLICY_KEYS, then=then)],
                "description": "retry, suspend, terminate, compensate, or a retry policy.",
            },
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            "step": {"oneOf": [{"$ref": f"#/$defs/{name}"} for name in steps]},
            "when": _object_schema({"outcome": Key("value", "The outcome.", required=True), "do": _ONE_BLOCK}),
            "branch": _object_schema({"value": Key("value", "The value.", required=True), "do": _ONE_BLOCK}),
            **steps,
        },
    }


def write_schema() -> Path:
    """Write :func:`json_schema` to the file shipped in the package (after changing the format)."""
    target = Path(__file__).parent / SCHEMA_FILE
    target.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    return target
