"""The verbs that begin a workflow or a block (``builder.wait_for(...)`` rather than
``builder.start_with(...)``): every verb that can follow a step can also come first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._steps import _ANY, DataFunction

if TYPE_CHECKING:
    from ._builder import StepBuilder, WorkflowBuilder


class StartingVerbs:
    """Mixed into :class:`WorkflowBuilder`: each verb adds its step as the first one."""

    def _starting(self) -> StepBuilder:
        raise NotImplementedError

    def wait_for(
        self,
        event_name: str,
        event_key: DataFunction,
        effective_date: DataFunction | datetime | None = None,
        *,
        timeout: timedelta | None = None,
        timeout_outcome: Any = _ANY,
    ) -> StepBuilder:
        """Begin with :meth:`StepBuilder.wait_for`."""
        return self._starting().wait_for(
            event_name, event_key, effective_date, timeout=timeout, timeout_outcome=timeout_outcome
        )

    def delay(self, period: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.delay`."""
        return self._starting().delay(period)

    def end_workflow(self) -> StepBuilder:
        """Begin with :meth:`StepBuilder.end_workflow`."""
        return self._starting().end_workflow()

    def sub_workflow(
        self, workflow_id: str, data: DataFunction | None = None, *, version: int | None = None
    ) -> StepBuilder:
        """Begin with :meth:`StepBuilder.sub_workflow`."""
        return self._starting().sub_workflow(workflow_id, data, version=version)

    def for_each(self, collection: DataFunction, run_parallel: bool | DataFunction = True) -> StepBuilder:
        """Begin with :meth:`StepBuilder.for_each`."""
        return self._starting().for_each(collection, run_parallel)

    def while_(self, condition: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.while_`."""
        return self._starting().while_(condition)

    def if_(self, condition: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.if_`."""
        return self._starting().if_(condition)

    def saga(self, build: Callable[[WorkflowBuilder], Any]) -> StepBuilder:
        """Begin with :meth:`StepBuilder.saga`."""
        return self._starting().saga(build)

    def parallel(self) -> StepBuilder:
        """Begin with :meth:`StepBuilder.parallel`."""
        return self._starting().parallel()

    def decide(self, expression: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.decide`."""
        return self._starting().decide(expression)

    def schedule(self, delay: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.schedule`."""
        return self._starting().schedule(delay)

    def recur(self, interval: DataFunction, until: DataFunction) -> StepBuilder:
        """Begin with :meth:`StepBuilder.recur`."""
        return self._starting().recur(interval, until)

    def activity(
        self, activity_name: str, parameters: DataFunction | None = None, *, timeout: timedelta | None = None
    ) -> StepBuilder:
        """Begin with :meth:`StepBuilder.activity`."""
        return self._starting().activity(activity_name, parameters, timeout=timeout)

    def user_task(self, prompt: str, assigned_to: str | DataFunction | None = None) -> StepBuilder:
        """Begin with :meth:`StepBuilder.user_task`."""
        return self._starting().user_task(prompt, assigned_to)
