"""One of several processes running a host on one SQLite file, for tests/e2e/test_shared_sqlite.py.

    python shared_sqlite_node.py NODE DB LOG COUNT [LOCK_URL]

Configures a host on ``sqlite:///DB`` (with the default lock unless ``LOCK_URL`` is given), starts
it, prints ``READY``, waits for a line ``go`` on stdin, starts COUNT workflows of its own, prints
``STARTED``, then runs until a line ``quit`` (or the end of stdin), stops the host and exits.

Every run of a step appends one line to LOG with one ``os.write`` on an ``O_APPEND`` descriptor (so
lines of concurrent runs, in any process, never mix):

    <workflow id> <step label> <node> <revision the pass started from> <start> <end>

The workflow: s1, s2, nap (``nap:begin`` puts it to sleep for NAP seconds, ``nap`` wakes up), s3, s4.

start and end are ``time.time()`` (one machine, one clock) taken as the step begins and ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import timedelta
from typing import Any

from liteflow.core import (
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    configure_workflow_host,
)

STEPS = ["s1", "s2", "nap", "s3", "s4"]  # the labels of a trail, in order
STEP_TIME = 0.004  # long enough for two runs of one step to overlap if nothing stopped them
POLL_INTERVAL = 0.2
NAP = 0.25  # s: the node that ran the pass wakes it with a timer, the others' pollers find it due

_node = "?"
_log_fd = -1


def record(context: StepExecutionContext, label: str, start: float) -> None:
    line = f"{context.workflow.id} {label} {_node} {context.workflow.revision} {start!r} {time.time()!r}\n"
    os.write(_log_fd, line.encode())


class Mark(StepBody):
    """Records its run (with its start and end) and appends its label to the trail."""

    def __init__(self) -> None:
        self.label = ""
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        start = time.time()
        time.sleep(STEP_TIME)
        self.trail = [*self.trail, self.label]
        record(context, self.label, start)
        return ExecutionResult.next()


class Nap(StepBody):
    """Sleeps once (a sleeping pointer in the store), then records its second run and completes."""

    def __init__(self) -> None:
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        start = time.time()
        if context.persistence_data is None:
            record(context, "nap:begin", start)
            return ExecutionResult.sleep(timedelta(seconds=NAP), "slept")
        self.trail = [*self.trail, "nap"]
        record(context, "nap", start)
        return ExecutionResult.next()


def mark(builder: Any, label: str, first: bool) -> Any:
    if label == "nap":
        step = builder.then(Nap)
    else:
        step = (builder.start_with(Mark) if first else builder.then(Mark)).input("label", lambda data, context: label)
    return step.input("trail", lambda data, context: data["trail"]).output("trail", lambda step: step.trail)


class Steps(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step: Any = builder
        for index, label in enumerate(STEPS):
            step = mark(step, label, first=index == 0)


def main() -> None:
    global _node, _log_fd
    _node, db, log, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lock = sys.argv[5] if len(sys.argv) > 5 else None
    logging.basicConfig(level=logging.WARNING, format=f"{_node} %(threadName)s %(name)s %(levelname)s %(message)s")
    _log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    store = f"sqlite:///{db}"
    host = configure_workflow_host(persistence_service=store, lock_service=lock, poll_interval=POLL_INTERVAL)
    host.register_workflow(Steps())
    host.start()
    print(f"READY {type(host.lock).__name__}", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            for n in range(count):
                host.start_workflow("Steps", 1, {"trail": [], "n": n, "node": _node})
            print("STARTED", flush=True)
        elif line.strip() == "quit":
            break
    host.stop()


if __name__ == "__main__":
    main()
