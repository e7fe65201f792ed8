"""One node of the schedule cluster test (tests/cluster/test_schedule_cluster.py), run as a process.

    python schedule_node.py --node n1 --store URL --queue URL --lock URL --effects FILE --base EPOCH

Every node runs on the same fast clock (one minute per second since EPOCH, starting at
2030-01-01 00:00:30 UTC), calls ``schedule_workflow`` for the same every-minute schedule at start-up
(as an application would), starts its host, prints ``READY`` and runs until SIGTERM. Each run of the
scheduled workflow's step appends ``<instance id> <node>`` to FILE (one ``os.write`` on an
``O_APPEND`` descriptor, so lines of concurrent runs never mix).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from node_life import wait_for_stop

from liteflow.core import StepExecutionContext, Workflow, WorkflowBuilder, configure_workflow_host

START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
SPEED = 60.0
SCHEDULE = "every-minute"


def fast_clock(base: float) -> datetime:
    return START + timedelta(seconds=(time.time() - base) * SPEED)


class Target(Workflow):
    def __init__(self, node: str, sink: int) -> None:
        self.node, self.sink = node, sink

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(self.record)

    def record(self, context: StepExecutionContext) -> None:
        os.write(self.sink, f"{context.workflow.id} {self.node}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--node", "--store", "--queue", "--lock", "--effects"):
        parser.add_argument(name, required=True)
    parser.add_argument("--base", type=float, required=True)
    args = parser.parse_args()
    sink = os.open(args.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    host = configure_workflow_host(
        persistence_service=args.store,
        queue_service=args.queue,
        lock_service=args.lock,
        clock=lambda: fast_clock(args.base),
        poll_interval=timedelta(seconds=0.1),
    )
    host.register_workflow(Target(args.node, sink))
    host.schedule_workflow(SCHEDULE, "Target", cron="* * * * *", timezone="Europe/Berlin", catch_up="all")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    host.start()
    print("READY", flush=True)
    wait_for_stop(stop)
    host.stop()
    os.close(sink)
    sys.exit(0)


if __name__ == "__main__":
    main()
