"""Several host processes on one SQLite file: throughput, and whether any step ran twice or two
runs of one workflow overlapped, with the default lock (in the file) or an in-process one. Prints
numbers; never passes or fails.

    python bench/bench_shared_sqlite.py [--processes 1 2 3] [--workflows 300] [--lock default|memory]

Runs the nodes of tests/e2e/shared_sqlite_node.py (each starts its share of the workflows: five
steps, the third of which sleeps 0.25 s) and reads their step log.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "tests" / "e2e" / "shared_sqlite_node.py"
sys.path.insert(0, str(ROOT))


from liteflow.core import WorkflowStatus
from liteflow.core._providers import InstanceQuery
from liteflow.providers.sqlite import SqlitePersistenceProvider


def run(processes: int, workflows: int, lock: str | None) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="liteflow-shared-"))
    db, log = directory / "shared.db", directory / "steps.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    share = [workflows // processes + (n < workflows % processes) for n in range(processes)]
    nodes = [
        subprocess.Popen(
            [sys.executable, str(NODE), f"n{n}", str(db), str(log), str(share[n]), *([lock] if lock else [])],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for node in nodes:
        assert node.stdout is not None and node.stdout.readline().startswith("READY")
    started = time.perf_counter()
    for node in nodes:
        assert node.stdin is not None
        node.stdin.write("go\n")
        node.stdin.flush()
    store = SqlitePersistenceProvider(db)
    while len(store.query_instances(InstanceQuery(status=WorkflowStatus.COMPLETE, limit=workflows))) < workflows:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    store.close()
    for node in nodes:
        assert node.stdin is not None
        node.stdin.write("quit\n")
        node.stdin.flush()
        node.wait(30)
    runs: dict[str, list[tuple[float, float, str, str]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        workflow_id, label, node_name, _, start, end = line.split()
        runs[workflow_id].append((float(start), float(end), label, node_name))
    twice = sum(n - 1 for seen in runs.values() for n in Counter(r[2] for r in seen).values() if n > 1)
    overlaps = 0
    for seen in runs.values():
        seen.sort()
        overlaps += sum(1 for before, after in itertools.pairwise(seen) if after[0] < before[1])
    handed = sum(1 for seen in runs.values() if len({r[3] for r in seen}) > 1)
    return {"seconds": elapsed, "rate": workflows / elapsed, "twice": twice, "overlaps": overlaps, "handed": handed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--lock", choices=["default", "memory"], default="default")
    args = parser.parse_args()
    lock = None if args.lock == "default" else "memory://"
    load = os.getloadavg()[0]
    print(f"{args.workflows} workflows of 5 steps (one sleeps 0.25 s), lock: {args.lock}; load average {load:.1f}")
    print("processes  seconds  workflows/s  step runs twice  overlapping runs  workflows run by >1 process")
    for processes in args.processes:
        r = run(processes, args.workflows, lock)
        print(
            f"{processes:9d}  {r['seconds']:7.2f}  {r['rate']:11.0f}  {r['twice']:15.0f}  {r['overlaps']:16.0f}"
            f"  {r['handed']:27.0f}"
        )


if __name__ == "__main__":
    main()
