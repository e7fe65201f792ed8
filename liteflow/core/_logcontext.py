"""Which workflow and step the current thread works on, for log lines.

The executor binds the instance id for a pass and the step name while a step runs;
:class:`LogContextFilter` copies them onto every log record as ``record.workflow_id`` and
``record.step`` (None outside a workflow). The filter sits on the ``liteflow`` logger already; add
it to a handler to get the same fields on the records of your own steps and of the providers.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_workflow_id: ContextVar[str | None] = ContextVar("liteflow_workflow_id", default=None)
_step: ContextVar[str | None] = ContextVar("liteflow_step", default=None)


class bind_log_context:  # a class named as the function it replaced: ``with bind_log_context(...):``
    """Bind the workflow id (and step) for the ``with`` block. A class rather than a
    @contextmanager generator: it runs twice per pass, and a generator costs several times more."""

    __slots__ = ("_step", "_tokens", "_workflow_id")

    def __init__(self, *, workflow_id: str, step: str | None = None) -> None:
        self._workflow_id, self._step = workflow_id, step

    def __enter__(self) -> None:
        self._tokens = (_workflow_id.set(self._workflow_id), _step.set(self._step))

    def __exit__(self, *exc_info: object) -> None:
        _step.reset(self._tokens[1])
        _workflow_id.reset(self._tokens[0])


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
