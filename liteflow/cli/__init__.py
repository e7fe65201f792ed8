"""The ``liteflow`` command line: run workers, look at workflows, control and repair them.

``main`` is the console script; ``cli`` is the Click group, for embedding or testing with Click's
own runner. Commands live in private modules: ``_worker`` (worker), ``_read`` (list, show,
errors), ``_graph`` (graph), ``_control`` (publish, suspend, resume, terminate, retry, fork, purge) and
``_schedules`` (schedules list, add, pause, resume, delete).
"""

from . import _control, _dashboard, _graph, _read, _schedules, _tasks, _worker  # noqa: F401 - importing them adds their commands to ``cli``
from ._app import cli, main

__all__ = ["cli", "main"]
