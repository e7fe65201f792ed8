"""The workflow definitions a host knows, by id and version."""

from __future__ import annotations

import threading

from ._builder import Workflow, WorkflowBuilder
from ._errors import (
    BuilderError,
    DuplicateWorkflowError,
    InvalidArgumentError,
    LiteFlowError,
    WorkflowNotRegisteredError,
)
from ._limits import concurrency_of
from ._steps import WorkflowDefinition


class WorkflowRegistry:
    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], tuple[type[Workflow], WorkflowDefinition]] = {}
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()

    def register(self, workflow: Workflow) -> WorkflowDefinition:
        if not isinstance(workflow, Workflow):
            raise InvalidArgumentError(f"register_workflow needs a Workflow instance, got {workflow!r}")
        workflow_id, version = workflow.id(), workflow.version()
        if not isinstance(workflow_id, str) or not workflow_id:
            raise InvalidArgumentError(f"{type(workflow).__name__}.id() must return a non-empty str")
        if not isinstance(version, int):
            raise InvalidArgumentError(f"{type(workflow).__name__}.version() must return an int")
        builder = WorkflowBuilder()
        try:
            workflow.build(builder)
        except LiteFlowError:
            raise  # the builder's own errors already name the problem
        except Exception as error:
            name = type(workflow).__qualname__
            raise BuilderError(f"{name}.build() raised {type(error).__name__}: {error}") from error
        definition = builder.build(workflow_id, version)
        definition.concurrency = concurrency_of(workflow)
        with self._lock:
            known = self._definitions.get((workflow_id, version))
            if known is not None:
                if known[0] is type(workflow):
                    return known[1]
                raise DuplicateWorkflowError(
                    f"workflow {workflow_id!r} version {version} is already registered by "
                    f"{known[0].__qualname__}; give {type(workflow).__qualname__} another id or version"
                )
            self._definitions[(workflow_id, version)] = (type(workflow), definition)
            self._latest[workflow_id] = max(version, self._latest.get(workflow_id, version))
        return definition

    def find(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition | None:
        if version is None:
            version = self._latest.get(workflow_id)
            if version is None:
                return None
        known = self._definitions.get((workflow_id, version))
        return None if known is None else known[1]

    def definitions(self) -> list[WorkflowDefinition]:
        """Every registered definition, by id then version, except LiteFlow's own (``liteflow.*``)."""
        return [known[1] for (i, _), known in sorted(self._definitions.items()) if not i.startswith("liteflow.")]

    def get(self, workflow_id: str, version: int | None = None) -> WorkflowDefinition:
        definition = self.find(workflow_id, version)
        if definition is None:
            versions = sorted(v for (i, v) in self._definitions if i == workflow_id)
            known = f"registered versions: {versions}" if versions else "no version is registered"
            wanted = "" if version is None else f" version {version}"
            raise WorkflowNotRegisteredError(f"workflow {workflow_id!r}{wanted} is not registered ({known})")
        return definition
