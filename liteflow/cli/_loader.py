"""Finding the user's workflows from ``MODULE[:ATTR]`` (or ``path/to/file.py[:ATTR]``).

Without ATTR, every :class:`Workflow` subclass defined in the module is used. ATTR may name a
configured :class:`WorkflowHost`, a workflow (class or instance), a list of workflows, or a
function taking no arguments that returns one of those.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from liteflow.core import Workflow, WorkflowHost

Target = WorkflowHost | list[Workflow]


def load_target(spec: str) -> Target:
    """Import the module ``spec`` names and return the host or the workflows found there."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise click.BadParameter(f"{spec!r} names no module; expected MODULE[:ATTR]", param_hint="MODULE[:ATTR]")
    module = _import(module_name)
    if not attribute:
        found = [
            value()
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Workflow)
            and value is not Workflow
            and value.__module__ == module.__name__
        ]
        if not found:
            raise click.BadParameter(f"module {module_name!r} defines no Workflow subclass", param_hint="MODULE")
        return found
    if not hasattr(module, attribute):
        raise click.BadParameter(f"module {module_name!r} has no attribute {attribute!r}", param_hint="MODULE[:ATTR]")
    return _interpret(getattr(module, attribute), spec, call=True)


def register_all(host: WorkflowHost, target: Target) -> list[str]:
    """Make the workflows of ``target`` known to ``host``; returns their ``id vN`` labels."""
    if isinstance(target, WorkflowHost):
        # The module configured a host of its own: share the definitions it registered (this
        # host only reads them, it never runs a step).
        host.registry = target.registry
        return [f"{d.id} v{d.version}" for d in target.registry.definitions()]
    for workflow in target:
        host.register_workflow(workflow)
    return sorted(f"{w.id()} v{w.version()}" for w in target)


def _import(name: str) -> ModuleType:
    # Like other worker commands, modules are found from the directory the command runs in.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise click.BadParameter(f"no file {name!r}", param_hint="MODULE")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses and pickling-free type lookups need it there
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            raise click.BadParameter(f"no module named {name!r} (from {os.getcwd()})", param_hint="MODULE") from error
        raise


def _interpret(value: Any, spec: str, *, call: bool) -> Target:
    if isinstance(value, WorkflowHost):
        return value
    if isinstance(value, Workflow):
        return [value]
    if isinstance(value, type) and issubclass(value, Workflow):
        return [value()]
    if isinstance(value, (list, tuple, set)):
        return _workflows(value, spec)
    if call and callable(value):
        return _interpret(value(), spec, call=False)
    raise click.BadParameter(
        f"{spec} is {type(value).__name__}, not a WorkflowHost, a Workflow, a list of them or a function returning one",
        param_hint="MODULE[:ATTR]",
    )


def _workflows(values: Iterable[Any], spec: str) -> list[Workflow]:
    found: list[Workflow] = []
    for value in values:
        if isinstance(value, type) and issubclass(value, Workflow):
            value = value()
        if not isinstance(value, Workflow):
            raise click.BadParameter(f"{spec} holds {value!r}, which is not a Workflow", param_hint="MODULE[:ATTR]")
        found.append(value)
    return found
