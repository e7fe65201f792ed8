"""Three processes, each running a host on one SQLite file with nothing else configured: the
default lock (a SqliteLockProvider in the file) must keep them from running one workflow at once.

Each node (tests/e2e/shared_sqlite_node.py) starts a third of the workflows; every node's poller
also finds the others', so every instance is contended by all three. The first node works alone
for a while before the others join, so its lock goes from solo (locks in memory) to shared. Every step run is logged
with its node and its start and end; the assertions read that log and the final instances:

- every workflow completes, its trail showing each step once, in order;
- every step ran exactly once (no process died, so nothing needed running again);
- no two runs of steps of one workflow overlap in time, on any nodes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from shared_sqlite_node import STEPS

LABELS = sorted([*STEPS, "nap:begin"])  # what each workflow logs, once per step run


from liteflow.core import WorkflowStatus
from liteflow.core._providers import InstanceQuery
from liteflow.providers.sqlite import SqlitePersistenceProvider

ROOT = Path(__file__).resolve().parents[2]
NODE = Path(__file__).with_name("shared_sqlite_node.py")
NODES = 3
PER_NODE = 100  # 300 workflows of 5 steps, one of which sleeps
TIMEOUT = 90.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _read_line(process: subprocess.Popen[str], expected: str, err: Path) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # the node prints it within seconds, or exits (empty line)
    if not line.startswith(expected):
        pytest.fail(f"expected {expected!r} from a node, got {line!r}:\n{err.read_text()}")
    return line.strip()


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_three_processes_on_one_sqlite_file_never_run_one_workflow_at_once(tmp_path: Path) -> None:
    db, log = tmp_path / "shared.db", tmp_path / "steps.log"
    nodes: list[tuple[subprocess.Popen[str], Path]] = []

    def start_node(n: int) -> None:
        err = tmp_path / f"node{n}.err"
        with open(err, "w") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(NODE), f"n{n}", str(db), str(log), str(PER_NODE)],
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        nodes.append((process, err))
        assert _read_line(process, "READY", err) == "READY SqliteLockProvider"
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        _read_line(process, "STARTED", err)

    try:
        # The first node runs alone for a while (its locks in memory: solo); the others join while
        # it is busy, so it must hand its locks over to the file while holding them.
        start_node(0)
        deadline = time.monotonic() + TIMEOUT
        while _count_lines(log) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the log, bounded by the deadline
        for n in range(1, NODES):
            start_node(n)

        total = NODES * PER_NODE
        store = SqlitePersistenceProvider(db)
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                done = store.query_instances(InstanceQuery(status=WorkflowStatus.COMPLETE, limit=total + 1))
                if len(done) == total or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # polling the store for completion, bounded by the deadline
            instances = store.query_instances(InstanceQuery(limit=total + 1))
        finally:
            store.close()
        for process, _ in nodes:
            assert process.stdin is not None
            process.stdin.write("quit\n")
            process.stdin.flush()
        for process, err in nodes:
            assert process.wait(30) == 0, err.read_text()
    finally:
        for process, _ in nodes:
            if process.poll() is None:
                process.kill()
                process.wait()

    # Every workflow completed, each step once and in order.
    assert len(instances) == total
    unfinished = [(i.id, i.status.value, i.data["trail"]) for i in instances if i.status is not WorkflowStatus.COMPLETE]
    assert not unfinished, f"{len(unfinished)} of {total} did not complete, e.g. {unfinished[:3]}"
    for instance in instances:
        assert instance.data["trail"] == STEPS, f"{instance.id}: {instance.data['trail']}"

    # The log: every step ran once, on some node, and the runs of one workflow never overlapped.
    runs: dict[str, list[tuple[float, float, str, str]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        workflow_id, label, node, _revision, start, end = line.split()
        runs[workflow_id].append((float(start), float(end), label, node))
    assert set(runs) == {i.id for i in instances}
    twice = {(wid, label): n for wid, seen in runs.items() for label, n in Counter(r[2] for r in seen).items() if n > 1}
    assert not twice, f"{len(twice)} steps ran more than once, e.g. {list(twice.items())[:5]}"
    for workflow_id, seen in runs.items():
        assert sorted(r[2] for r in seen) == LABELS, (workflow_id, seen)
    overlaps = []
    for workflow_id, seen in runs.items():
        seen.sort()
        for before, after in itertools.pairwise(seen):
            if after[0] < before[1]:
                overlaps.append((workflow_id, before, after))
    assert not overlaps, f"{len(overlaps)} overlapping runs, e.g. {overlaps[:3]}"
    # The point of the exercise: the nodes contended for the same workflows and shared them.
    ran_by = Counter(node for seen in runs.values() for *_, node in seen)
    assert len(ran_by) == NODES, ran_by
    shared = sum(1 for seen in runs.values() if len({node for *_, node in seen}) > 1)
    assert shared > 0, "no workflow had steps run by two nodes: the test exercised no contention"
