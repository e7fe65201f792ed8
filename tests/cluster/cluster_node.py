"""One node of the cluster test (tests/cluster/test_cluster.py), meant to run as its own process.

    python cluster_node.py --node w1 --role worker    --store URL --queue URL --lock URL --effects SINK
    python cluster_node.py --node pub --role publisher --store URL --queue URL --lock URL --effects SINK

A **worker** starts a host with short failover bounds (lock lease, queue visibility timeout and
poll interval from the command line), prints ``READY`` and runs until SIGTERM (a clean stop),
SIGKILL (the crash under test) or the end of its parent, the test run. A **publisher** configures a
host on the same providers but never starts it, so it runs no workflow: it prints ``READY``, then for
each line ``publish R`` read from stdin publishes round R of the events (``go``, key k, ``p<k>.<R>``
for every key) and prints ``published R <count>``.

Every run of one of our steps records one side effect in the sink, halfway through the step (so a
SIGKILL during the second half of a step, or while its pass is being saved, leaves a side effect
whose step will run again elsewhere):

    workflow id, step label, for_each item, node, idempotency key, revision the pass started from,
    thread, start of the run, time of the effect (seconds since the epoch; one machine, one clock)

The sink is ``postgresql://...#table`` (one INSERT in autocommit per run, one connection per
thread) or ``file:/path`` (one ``os.write`` of one line on an ``O_APPEND`` descriptor, so lines
of concurrent runs never mix). Each instance's data also keeps a ``trail``: the labels of its
steps in the order they completed, so a step that ran twice against saved state shows up there.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from node_life import wait_for_stop

from liteflow.core import (
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    configure_workflow_host,
)

KINDS = ("Sequence", "Loop", "Nap", "Wait")
ITEMS = [0, 1, 2, 3]
STEP_TIME = 0.004  # long enough that a SIGKILL usually lands inside a step; the effect is halfway
SEQUENCE = ["s1", "s2", "s3", "s4"]
TRAILS = {
    "Sequence": SEQUENCE,
    "Loop": ["before", "item0", "item1", "item2", "item3", "after"],
    "Nap": ["before", "nap", "after"],
    "Wait": ["before", "mid", "after"],
}
EFFECTS = {  # the labels each kind records, once per step run
    "Sequence": set(SEQUENCE),
    "Loop": {"before", "item0", "item1", "item2", "item3", "after"},
    "Nap": {"before", "nap:begin", "nap:end", "after"},
    "Wait": {"before", "mid", "after"},
}
EFFECT_COLUMNS = (
    "workflow_id",
    "step",
    "item",
    "node",
    "idempotency_key",
    "revision",
    "thread",
    "start_ts",
    "effect_ts",
)


def event_key(index: int) -> str:
    """Two Wait instances share each key, so every event is delivered to two subscriptions."""
    return str(index // 2)


def payload(key: str, round_: int) -> str:
    return f"p{key}.{round_}"


# -- the side-effect sink ------------------------------------------------------------------------


class FileSink:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, row: tuple[Any, ...]) -> None:
        os.write(self._fd, ("\t".join(str(value) for value in row) + "\n").encode())


class PostgresSink:
    def __init__(self, conninfo: str, table: str) -> None:
        self._conninfo = conninfo
        columns = ", ".join(EFFECT_COLUMNS)
        self._sql = f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(["%s"] * len(EFFECT_COLUMNS))})'
        self._local = threading.local()

    def write(self, row: tuple[Any, ...]) -> None:
        import psycopg

        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = psycopg.connect(self._conninfo, autocommit=True)
        connection.execute(self._sql, row)


def open_sink(spec: str) -> FileSink | PostgresSink:
    if spec.startswith("file:"):
        return FileSink(spec[len("file:") :])
    conninfo, _, table = spec.partition("#")
    return PostgresSink(conninfo, table)


_node = "?"
_sink: FileSink | PostgresSink | None = None


def record(context: StepExecutionContext, label: str, started: float) -> None:
    """The step's side effect: one row, written before the step returns."""
    assert _sink is not None, "steps run only on worker nodes"
    pointer = context.execution_pointer
    item = "" if pointer.context_item is None else str(pointer.context_item)
    thread = threading.current_thread().name
    _sink.write(
        (context.workflow.id, label, item, _node, context.idempotency_key, context.workflow.revision, thread,
         repr(started), repr(time.time()))
    )  # fmt: skip


# -- the workflows -------------------------------------------------------------------------------


class Mark(StepBody):
    """Records its run and appends its label to the trail."""

    def __init__(self) -> None:
        self.label = ""
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        started = time.time()
        time.sleep(STEP_TIME / 2)
        record(context, self.label, started)
        time.sleep(STEP_TIME / 2)
        self.trail = [*self.trail, self.label]
        return ExecutionResult.next()


class Item(StepBody):
    def __init__(self) -> None:
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        started = time.time()
        label = f"item{context.execution_pointer.context_item}"
        time.sleep(STEP_TIME / 2)
        record(context, label, started)
        time.sleep(STEP_TIME / 2)
        self.trail = [*self.trail, label]
        return ExecutionResult.next()


class Nap(StepBody):
    """Sleeps once (1 to 2 s, a sleeping pointer in the store), then completes."""

    def __init__(self) -> None:
        self.seconds = 1.0
        self.trail: list[str] = []

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        started = time.time()
        if context.persistence_data is None:
            record(context, "nap:begin", started)
            return ExecutionResult.sleep(timedelta(seconds=self.seconds), "slept")
        record(context, "nap:end", started)
        self.trail = [*self.trail, "nap"]
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
        step = mark(builder, SEQUENCE[0], first=True)
        for label in SEQUENCE[1:]:
            step = mark(step, label)


class Loop(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "before", first=True).for_each(lambda data, context: ITEMS)
        step = step.do(
            lambda each: (
                each.start_with(Item)
                .input("trail", lambda data, context: data["trail"])
                .output("trail", lambda step: step.trail)
            )
        )
        mark(step, "after")


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
    """Waits twice for the same (name, key): must get round 1's event, then round 2's, once each."""

    def build(self, builder: WorkflowBuilder) -> None:
        step = mark(builder, "before", first=True)
        step = step.wait_for("go", lambda data, context: event_key(data["i"])).output(
            "got1", lambda step: step.event_data
        )
        step = mark(step, "mid")
        step = step.wait_for("go", lambda data, context: event_key(data["i"])).output(
            "got2", lambda step: step.event_data
        )
        mark(step, "after")


WORKFLOWS = (Sequence, Loop, NapWorkflow, Wait)


def configure(args: argparse.Namespace, **options: Any) -> Any:
    host = configure_workflow_host(
        persistence_service=args.store, queue_service=args.queue, lock_service=args.lock, **options
    )
    for workflow in WORKFLOWS:
        host.register_workflow(workflow())
    return host


# -- the roles -----------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    host = configure(
        args,
        poll_interval=args.poll_interval,
        max_concurrent_workflows=args.workers,
        stop_timeout=5,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    host.start()
    print("READY", flush=True)
    wait_for_stop(stopping)
    host.stop()


def run_publisher(args: argparse.Namespace) -> None:
    host = configure(args)  # never started: this node runs no workflow
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["publish"]:
            round_ = int(command[1])
            for k in range(args.keys):
                host.publish_event("go", str(k), payload(str(k), round_))
            print(f"published {round_} {args.keys}", flush=True)
        elif command[:1] == ["quit"]:
            break
    host.stop()


def main() -> None:
    global _node, _sink
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--role", choices=("worker", "publisher"), required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--effects", required=True, help="file:/path or postgresql://...#table")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--keys", type=int, default=0, help="publisher: event keys per round")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s {args.node} %(threadName)s %(name)s %(levelname)s %(message)s"
    )
    _node = args.node
    if args.role == "worker":
        _sink = open_sink(args.effects)
        run_worker(args)
    else:
        run_publisher(args)


if __name__ == "__main__":
    main()
