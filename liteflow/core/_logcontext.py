"""Which workflow and step the current thread works on, for log lines.

The executor binds the instance id for a pass and the step name while a step runs;
:class:`LogContextFilter` copies them onto every log record as ``record.workflow_id`` and
``record.step`` (None outside a workflow). The filter sits on the ``liteflow`` logger already; add
it to a handler to get the same fields on the records of your own steps and of the providers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_workflow_id: ContextVar[str | None] = ContextVar("liteflow_workflow_id", default=None)
_step: ContextVar[str | None] = ContextVar("liteflow_step", default=None)


@contextmanager
def bind_log_context(*, workflow_id: str, step: str | None = None) -> Iterator[None]:
    workflow_token = _workflow_id.set(workflow_id)
    step_token = _step.set(step)
    try:
        yield
    finally:
        _step.reset(step_token)
        _workflow_id.reset(workflow_token)


class LogContextFilter(logging.Filter):
    """Adds ``workflow_id`` and ``step`` to each record (never filters a record out).

    Example:
        handler = logging.StreamHandler()
        handler.addFilter(LogContextFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(workflow_id)s %(step)s %(message)s"))
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "workflow_id"):
            record.workflow_id = _workflow_id.get()
        if not hasattr(record, "step"):
            record.step = _step.get()
        return True


logging.getLogger("liteflow").addFilter(LogContextFilter())
