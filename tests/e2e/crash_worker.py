"""A host process for tests/e2e/test_crash_recovery.py, meant to be killed with SIGKILL.

    python crash_worker.py start   DB LOG STATE   # start the workflows, publish half the events,
                                                  # write STATE, print READY, run until killed
    python crash_worker.py recover DB LOG STATE   # restart on DB, publish the other events, wait
                                                  # for every instance, print a JSON summary

Every run of one of our steps appends one line to LOG, with one ``os.write`` on an ``O_APPEND``
descriptor (so lines of concurrent steps never mix, and a line is in the file before the step
returns, hence before its pass is saved):

    <phase> <idempotency key> <label> <revision of the instance the pass started from>

Each instance's data has a ``trail``: the labels of its steps in the order they completed. A step
that ran twice against saved state would show up in the trail; a re-run of a step whose pass was
lost in the crash does not (it starts again from the saved data).
"""

from __future__ import annotations

import json
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
    WorkflowInstance,
    WorkflowTimeoutError,
    configure_workflow_host,
)

PER_KIND = 50  # instances of each kind: 200 in all
KINDS = ("Sequence", "Nap", "Wait", "Loop")
ITEMS = [0, 1, 2, 3, 4]
STEP_TIME = 0.003  # long enough that a kill usually lands inside a step
POLL_INTERVAL = 0.2
WAIT_TIMEOUT = 30.0  # for all instances together, after the restart

_phase = "?"
_log_fd = -1


def record(context: StepExecutionContext, label: str) -> None:
    line = f"{_phase} {context.idempotency_key} {label} {context.workflow.revision}\n"
    os.write(_log_fd, line.encode())


class Mark(StepBody):
    """Records its run and appends its label to the trail."""

    def __init__(self) -> None:
        self.label = ""
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        record(context, self.label)
        time.sleep(STEP_TIME)
        self.trail = [*self.trail, self.label]
        return ExecutionResult.next()


class Nap(StepBody):
    """Sleeps once (1 to 2 s, persisted as a sleeping pointer), then completes."""

    def __init__(self) -> None:
        self.seconds = 1.0
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        if context.persistence_data is None:
            record(context, "nap:begin")
            return ExecutionResult.sleep(timedelta(seconds=self.seconds), "slept")
        record(context, "nap:end")
        self.trail = [*self.trail, "nap"]
        return ExecutionResult.next()


class Item(StepBody):
    def __init__(self) -> None:
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        label = f"item{context.execution_pointer.context_item}"
        record(context, label)
        time.sleep(STEP_TIME)
        self.trail = [*self.trail, label]
        return ExecutionResult.next()


def mark(builder: Any, label: str, first: bool = False) -> Any:
    step = builder.start_with(Mark) if first else builder.then(Mark)
    return (
        step.input("label", lambda data, context: label)
        .input("trail", lambda data, context: data["trail"])
        .output("trail", lambda step: step.trail)
    )


class Sequence(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "s1", first=True)
        for label in ("s2", "s3", "s4", "s5"):
            step = mark(step, label)


class NapWorkflow(Workflow):
    def id(self) -> str:
        return "Nap"

    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "before", first=True)
        step = (
            step.then(Nap)
            .input("seconds", lambda data, context: 1.0 + (data["i"] % 3) / 2)
            .input("trail", lambda data, context: data["trail"])
            .output("trail", lambda step: step.trail)
        )
        mark(step, "after")


class Wait(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "before", first=True)
        step = step.wait_for("go", lambda data, context: str(data["i"])).output("got", lambda step: step.event_data)
        mark(step, "after")


class Loop(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "before", first=True)
        step = step.for_each(lambda data, context: ITEMS).do(
            lambda each: (
                each.start_with(Item)
                .input("trail", lambda data, context: data["trail"])
                .output("trail", lambda step: step.trail)
            )
        )
        mark(step, "after")


def folded(instance: WorkflowInstance) -> int:
    """Completed pointers a loop folded away (the for_each's items but the last)."""
    history = instance.compacted
    return 0 if history is None else sum(t.statuses.get("complete", 0) for t in history.steps.values())


def host_on(db: str) -> Any:
    host = configure_workflow_host(persistence_service=f"sqlite:///{db}", poll_interval=POLL_INTERVAL)
    for workflow in (Sequence(), NapWorkflow(), Wait(), Loop()):
        host.register_workflow(workflow)
    return host


def payload(i: int) -> str:
    return f"payload-{i}"


def start(db: str, state_path: str) -> None:
    host = host_on(db)
    host.start()
    instances = []  # [kind, index, workflow id], interleaved so every kind is in flight at once
    for i in range(PER_KIND):
        for kind in KINDS:
            instances.append([kind, i, host.start_workflow(kind, 1, {"i": i, "trail": []})])
    # Half the events now: some before their workflow reaches its wait, some after.
    published = [i for i in range(PER_KIND) if i % 2 == 0]
    for i in published:
        host.publish_event("go", str(i), payload(i))
    with open(state_path + ".tmp", "w") as file:
        json.dump({"instances": instances, "published": published}, file)
    os.replace(state_path + ".tmp", state_path)
    print("READY", flush=True)
    parent = os.getppid()
    while os.getppid() == parent:  # until SIGKILL, or until the test run that started it is gone
        time.sleep(1)


def recover(db: str, state_path: str) -> None:
    with open(state_path) as file:
        state = json.load(file)
    host = host_on(db)
    host.start()
    try:
        for i in range(PER_KIND):
            if i not in state["published"]:
                host.publish_event("go", str(i), payload(i))
        summary = {}
        deadline = time.monotonic() + WAIT_TIMEOUT
        for kind, i, wid in state["instances"]:
            try:
                instance = host.wait_for_workflow(wid, timeout=max(0.1, deadline - time.monotonic()))
            except WorkflowTimeoutError:
                instance = host.get_workflow_instance(wid)  # reported as it is: the test says why
            summary[wid] = {
                "kind": kind,
                "index": i,
                "status": instance.status.value,
                "data": instance.data,
                "errors": [e.message for e in host.get_workflow_errors(wid)],
                "pointers": {f"{wid}:{p.id}:{p.retry_count}": p.status.value for p in instance.execution_pointers},
                "folded": folded(instance),
            }
    finally:
        host.stop()
    print(json.dumps(summary))


def main() -> None:
    global _phase, _log_fd
    mode, db, log, state_path = sys.argv[1:5]
    _phase = {"start": "p1", "recover": "p2"}[mode]
    _log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if mode == "start":
        start(db, state_path)
    else:
        recover(db, state_path)


if __name__ == "__main__":
    main()
