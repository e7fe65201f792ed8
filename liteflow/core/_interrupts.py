"""Timeouts that interrupt a running step, and the cancellation flag a step can watch.

A step with ``timeout(...)`` gets the time left until its deadline when it starts:

* an ``async def`` step runs as a task that is cancelled at the deadline (``asyncio.CancelledError``
  inside it); the worker stops waiting at once and the step takes its timeout path (its timeout
  outcome, or ``StepTimeoutError`` through its error behaviour), whatever the task does after;
* a plain (sync) step cannot be stopped safely from outside: at the deadline its
  ``context.cancellation`` (a ``threading.Event``) is set, and whatever it returns after the
  deadline is discarded for the timeout path.

``context.cancellation`` is also set when ``terminate_workflow`` or ``suspend_workflow`` is called
for the instance on the node where the step runs, so a long step can stop early; the request is
applied when the step returns, as before.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._steps import StepExecutionContext

T = TypeVar("T")


class DeadlinePassed(Exception):
    """Raised inside the executor when a step ran past its timeout; it takes the timeout path."""


async def with_deadline(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable``; at ``seconds`` cancel it and raise :class:`DeadlinePassed`. The step's
    own ``TimeoutError`` (of a call it made) is not mistaken for the deadline."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    if task in done:
        return task.result()
    task.cancel()
    # Let it run its cleanup for a moment; what it returns or raises now is discarded.
    await asyncio.wait({task}, timeout=0.1)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"
    raise DeadlinePassed


class Cancellations:
    """The steps running on this node, so that their cancellation flags can be set by workflow id.
    Their contexts are kept rather than the flags, which are made only when someone looks at them.

    Keyed by the context, not the workflow: adding and removing are then single dict operations,
    atomic without a lock (they run for every step), and two threads running steps of one workflow
    (a lock lease that lapsed) cannot lose each other's entry. ``cancel`` looks through all of them:
    rare, and they are at most a few per worker thread."""

    def __init__(self) -> None:
        self.running: dict[int, tuple[str, StepExecutionContext]] = {}
        """id(context) -> (workflow id, context); the executor adds and removes its steps here
        directly, as :meth:`add` and :meth:`remove` do."""

    def add(self, workflow_id: str, context: StepExecutionContext) -> None:
        self.running[id(context)] = (workflow_id, context)

    def remove(self, workflow_id: str, context: StepExecutionContext) -> None:
        self.running.pop(id(context), None)

    def cancel(self, workflow_id: str) -> None:
        """Set the flag of every step of ``workflow_id`` running here."""
        running = self.running.copy()  # one C call: atomic against the workers' add and remove
        for running_id, context in running.values():
            if running_id == workflow_id:
                context.cancellation.set()


def run_sync_with_deadline(call: Callable[[], T], flag: threading.Event, seconds: float) -> T:
    """Run a sync step; set ``flag`` at the deadline and raise :class:`DeadlinePassed` if it
    returns (or raises) after it."""
    started = time.monotonic()
    timer = threading.Timer(max(seconds, 0.0), flag.set)
    timer.daemon = True
    timer.start()
    try:
        result = call()
    except Exception:
        if time.monotonic() - started >= seconds:
            raise DeadlinePassed from None
        raise
    finally:
        timer.cancel()
    if time.monotonic() - started >= seconds:
        raise DeadlinePassed
    return result


def is_awaitable(value: Any) -> bool:
    return hasattr(value, "__await__")
