"""Where the threads of workload (a)/(b) on SQLite wait: the store's writer mutex and the CPU of
each thread. Prints numbers; never passes or fails.

Runs ``compare.py``'s workload (a) (``--starters 1``) or (b) (``--starters 4``) on a SQLite file
with ``--workers`` workflow workers, and reports per workflow: the process CPU, each kind of
thread's CPU (``/proc``), context switches, and for the store's saves and starts (the writes
that take the file's writer mutex through ``store._lock``; the lock provider's and the
checkpointer's uses of the same mutex are not counted) how long a write waited for the mutex,
how long it held it (its statement, plus the waits for the GIL inside it: ``sqlite3`` lets go of
the GIL in every statement), and, for a write that queued behind another, how long the mutex
stayed with a thread that was not yet running again (from the release that woke it until it
ran: a woken ``threading.Lock`` waiter owns the lock before it has the GIL back).

``--switch-interval`` sets ``sys.setswitchinterval`` for the run (a diagnostic: a library must not
change it). Runs against either engine: this tree's venv, or the old engine's
(``.cache/compare/<commit>/venv/bin/python bench/sqlite_handoffs.py``).

    python bench/sqlite_handoffs.py [--workflows 2000] [--starters 1] [--workers 4] [--switch-interval S]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare


class TimedMutex:
    """Stands in for the store's writer mutex and times every use of it (one at a time, so the
    counters need no lock of their own: they change only while the mutex is held)."""

    def __init__(self, mutex: Any) -> None:
        self._mutex = mutex
        self.uses = self.queued = 0
        self.waited = self.held = self.idle = 0.0
        self._released = self._taken = 0.0

    def __enter__(self) -> None:
        asked = time.perf_counter()
        self._mutex.acquire()
        self._taken = time.perf_counter()
        self.uses += 1
        self.waited += self._taken - asked
        if self._released > asked:  # it was held when we asked: we were woken by that release
            self.queued += 1
            self.idle += self._taken - self._released

    def __exit__(self, *exc_info: object) -> None:
        self._released = time.perf_counter()
        self.held += self._released - self._taken
        self._mutex.release()


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each kind of live thread (numbered names merged)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = thread.name.rstrip("0123456789-_ ")
        spent[kind] = spent.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return spent


def run(args: argparse.Namespace) -> None:
    from liteflow.core import configure_workflow_host
    from liteflow.providers.sqlite import SqlitePersistenceProvider

    directory = tempfile.mkdtemp(prefix="liteflow-handoffs-")
    store = SqlitePersistenceProvider(os.path.join(directory, "bench.db"))
    timed = store._lock = TimedMutex(store._lock)
    host = configure_workflow_host(store, max_concurrent_workflows=args.workers)
    try:
        for workflow in compare.define().values():
            host.register_workflow(workflow())
        host.start()
        try:
            compare.start_and_wait(host, 300, args.starters)  # warm up
            timed.__init__(timed._mutex)
            before, threads_before = resource.getrusage(resource.RUSAGE_SELF), thread_cpu()
            rate, cpu = compare.start_and_wait(host, args.workflows, args.starters)
            after, threads_after = resource.getrusage(resource.RUSAGE_SELF), thread_cpu()
        finally:
            host.stop()
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)
    n = args.workflows
    print(f"  {rate:,.0f} wf/s, process CPU {cpu:,.0f} µs/wf")
    print(
        f"  context switches/wf: voluntary {(after.ru_nvcsw - before.ru_nvcsw) / n:.2f},"
        f" involuntary {(after.ru_nivcsw - before.ru_nivcsw) / n:.2f}"
    )
    spent = {kind: (cpu_s - threads_before.get(kind, 0.0)) / n * 1e6 for kind, cpu_s in threads_after.items()}
    print(
        "  CPU µs/wf by live thread: " + ", ".join(f"{kind} {us:,.0f}" for kind, us in sorted(spent.items()) if us >= 1)
    )
    print("  (the starting threads have ended: their CPU is the process's less these)")
    uses = max(timed.uses, 1)
    print(
        f"  store writes under the writer mutex: {timed.uses / n:.2f}/wf; per write: waited"
        f" {timed.waited / uses * 1e6:,.0f} µs, held {timed.held / uses * 1e6:,.0f} µs;"
        f" {timed.queued / uses:.0%} queued behind another, each leaving the mutex"
        f" {timed.idle / max(timed.queued, 1) * 1e6:,.0f} µs with a thread not yet running"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--starters", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval for this run (diagnostic)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    import liteflow

    print(
        f"liteflow from {os.path.dirname(liteflow.__file__)}; {args.workflows:,} workflows, {args.starters} starting"
        f" thread(s), {args.workers} workers, switch interval {sys.getswitchinterval() * 1e3:g} ms;"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    run(args)


if __name__ == "__main__":
    main()
