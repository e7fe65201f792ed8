"""One node of the concurrency-limit cluster test (tests/cluster/test_limits_cluster.py).

    python limited_node.py --node n1 --store URL --queue URL --lock URL --effects FILE

Runs ``PerKey`` workflows (at most one instance per ``data["key"]`` at a time) until SIGTERM (or
the SIGKILL under test). Each instance records ``begin`` in its first step, naps 100 ms between
passes, and records ``end`` in its last step; a record is one line ``<instance> <key> <node>
<begin|end> <time>`` appended with one ``os.write`` to FILE (``O_APPEND``: lines never mix).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from datetime import timedelta

from node_life import wait_for_stop

from liteflow.core import Concurrency, StepExecutionContext, Workflow, WorkflowBuilder, configure_workflow_host

SINK: list[int] = []
NODE: list[str] = []


def record(context: StepExecutionContext, what: str) -> None:
    line = f"{context.workflow.id} {context.workflow.data['key']} {NODE[0]} {what} {time.time():.6f}\n"
    os.write(SINK[0], line.encode())


class PerKey(Workflow):
    def concurrency(self) -> Concurrency:
        return Concurrency(limit=1, key=lambda data: data["key"])

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: record(context, "begin")).delay(
            lambda data, context: timedelta(milliseconds=100)
        ).then(lambda context: record(context, "end"))


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--node", "--store", "--queue", "--lock", "--effects"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    SINK.append(os.open(args.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    NODE.append(args.node)
    host = configure_workflow_host(
        persistence_service=args.store,
        queue_service=args.queue,
        lock_service=args.lock,
        poll_interval=timedelta(seconds=0.2),
    )
    host.register_workflow(PerKey())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    host.start()
    print("READY", flush=True)
    wait_for_stop(stop)
    host.stop()


if __name__ == "__main__":
    main()
