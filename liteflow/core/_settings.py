"""Which builder settings each kind of step honours: the others raise BuilderError when the
workflow is registered, naming the step and the setting, rather than being accepted and ignored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ._errors import BuilderError
from ._steps import ErrorBehavior, ErrorHandling


def retry_interval_for(verb: str, behavior: ErrorHandling, interval: Any) -> timedelta | None:
    """A retry interval only means something with RETRY: anything else would be silently ignored."""
    if interval is not None and not isinstance(interval, timedelta):
        raise BuilderError(f"{verb} retry_interval must be a timedelta, got {interval!r}")
    checked: timedelta | None = interval
    if checked is not None and behavior is not ErrorBehavior.RETRY:
        raise BuilderError(f"{verb}: a retry_interval applies to WorkflowStep.RETRY only, not to {behavior!r}")
    return checked


BUILT_IN_INPUT = "is not supported: a built-in step takes its settings from the verb's arguments"
_ENDS_AT_ONCE = "is not supported: the step ends at once while its block runs on; set it on a step of the block"
REJECTED: dict[str, dict[str, str]] = {
    "end_workflow": {
        "on_error": "is not supported: end_workflow cannot fail",
        "compensate_with": "is not supported: nothing runs after end_workflow, so it is never compensated",
        "timeout": "is not supported: end_workflow ends the workflow as soon as it runs",
    },
    "schedule": {"timeout": _ENDS_AT_ONCE, "cancel_condition": _ENDS_AT_ONCE},
    "recur": {"timeout": _ENDS_AT_ONCE, "cancel_condition": _ENDS_AT_ONCE + " (or use recur's until)"},
    "inline step": {
        "input": "is not supported: an inline function receives only the context; read context.workflow.data"
    },
}
"""Settings a kind of step cannot honour: setting one raises BuilderError when the workflow is
registered, instead of being accepted and ignored. Built-in verbs also reject ``input``."""
SET_ONCE = (
    "id",
    "name",
    "on_error",
    "compensate_with",
    "timeout",
    "cancel_condition",
    "with_escalation",
    "concurrency",
    "rate_limit",
)
