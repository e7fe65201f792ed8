"""Steps that hold a worker thread until the test lets them go on, for tests of what a host does
while a step runs (``from blocking_steps import Gate``, as other tests import ``servers``)."""

from __future__ import annotations

import threading
from typing import ClassVar

from liteflow.core import StepBody, StepExecutionContext


class Gate(StepBody):
    """Holds its thread until the test opens it: ``entered`` is set once a worker is in the step,
    ``opened`` lets every worker in it go on. The events belong to the class, shared by every
    workflow that runs it, so a test calls ``Gate.reset()`` before it starts one."""

    entered: ClassVar[threading.Event] = threading.Event()
    opened: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def reset(cls) -> None:
        cls.entered.clear()
        cls.opened.clear()

    def run(self, context: StepExecutionContext) -> None:
        Gate.entered.set()
        assert Gate.opened.wait(10), "the test never opened the gate"
