"""Which workflow and step the current thread works on, for log lines.

The executor binds the instance id for a pass and the step name while a step runs;
:class:`LogContextFilter` copies them onto every log record as ``record.workflow_id`` and
``record.step`` (None outside a workflow). The filter sits on the ``liteflow`` logger already; add
it to a handler to get the same fields on the records of your own steps and of the providers.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

log_context: ContextVar[tuple[str | None, str | None]] = ContextVar("liteflow_log_context", default=(None, None))
"""(workflow id, step name) of the work this thread does now. The executor sets and resets it
directly (``token = log_context.set((workflow_id, step))`` ... ``log_context.reset(token)``): one
variable, no object per bind, as it runs twice per step of every workflow."""


class LogContextFilter(logging.Filter):
    """Adds ``workflow_id`` and ``step`` to each record (never filters a record out).

    Example:
        handler = logging.StreamHandler()
        handler.addFilter(LogContextFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(workflow_id)s %(step)s %(message)s"))
    """

    def filter(self, record: logging.LogRecord) -> bool:
        workflow_id, step = log_context.get()
        if not hasattr(record, "workflow_id"):
            record.workflow_id = workflow_id
        if not hasattr(record, "step"):
            record.step = step
        return True


logging.getLogger("liteflow").addFilter(LogContextFilter())
