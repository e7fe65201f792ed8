"""SIGKILL the host process mid-flight, restart it on the same SQLite file, and check that nothing a
returned call promised is lost and that no completed step runs again.

The host runs in a real subprocess (tests/e2e/crash_worker.py): 200 workflows, some running five
short steps in a row, some sleeping, some waiting for events (half published before the kill, half
after), some in a for_each. Every step run appends a line ``phase key label revision`` to a log; the
log and the final instances are what the assertions read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("crash_worker.py")
WORKERS = 4  # the host's default max_concurrent_workflows: at most this many passes are in flight

TRAILS = {
    "Sequence": ["s1", "s2", "s3", "s4", "s5"],
    "Nap": ["before", "nap", "after"],
    "Wait": ["before", "after"],
    "Loop": ["before", "item0", "item1", "item2", "item3", "item4", "after"],
}
PASS_SIZE = {"Sequence": 1, "Nap": 1, "Wait": 1, "Loop": 5}  # most of our steps one pass runs
LABELS = {  # what each kind writes to the log, once per step run
    "Sequence": {"s1", "s2", "s3", "s4", "s5"},
    "Nap": {"before", "nap:begin", "nap:end", "after"},
    "Wait": {"before", "after"},
    "Loop": {"before", "item0", "item1", "item2", "item3", "item4", "after"},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _wait_until(
    condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], err: Path, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}:\n{err.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}:\n{err.read_text()}")
        time.sleep(0.005)


@pytest.mark.parametrize("kill_after_lines", [1, 400], ids=["early", "mid"])
def test_sigkill_loses_nothing_and_reruns_only_the_steps_in_flight(tmp_path: Path, kill_after_lines: int) -> None:
    db, log, state = tmp_path / "store.db", tmp_path / "steps.log", tmp_path / "state.json"
    args = [str(db), str(log), str(state)]

    # Phase 1: start everything, publish half the events, and die at a random point of the work.
    err = tmp_path / "start.err"
    with open(err, "wb") as stderr:
        first = subprocess.Popen(
            [sys.executable, str(WORKER), "start", *args], env=_env(), stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        _wait_until(state.exists, "READY", first, err)
        _wait_until(lambda: _count_lines(log) >= kill_after_lines, f"{kill_after_lines} steps", first, err)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()

    # Phase 2: a new process on the same store publishes the rest and waits for every instance.
    second = subprocess.run(
        [sys.executable, str(WORKER), "recover", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    promised = json.loads(state.read_text())

    # Every started instance completed with the right data; every event reached its workflow.
    assert len(summary) == len(promised["instances"]) == 200
    stuck = [
        f"{s['kind']} {s['index']} ({wid}): {s['status']}, trail {s['data']['trail']}, "
        f"pointers {sorted(s['pointers'].values())}"
        for wid, s in summary.items()
        if s["status"] != "complete"
    ]
    assert not stuck, f"{len(stuck)} instances did not complete after the restart, e.g.\n" + "\n".join(stuck[:5])
    for wid, result in summary.items():
        kind, data = result["kind"], result["data"]
        assert not result["errors"], (wid, result["errors"])
        trail = data["trail"]
        if kind == "Loop":  # for_each branches may complete in any order
            trail = [trail[0], *sorted(trail[1:-1]), trail[-1]]
        assert trail == TRAILS[kind], f"{kind} {wid}: a step ran twice or not at all: {data['trail']}"
        if kind == "Wait":
            assert data["got"] == f"payload-{result['index']}", f"{wid} got the wrong event: {data}"

    # The log: every step ran, every run belongs to a saved step, and only lost passes ran twice.
    runs: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    labels: dict[str, set[str]] = defaultdict(set)
    folded: dict[str, set[str]] = defaultdict(set)
    for line in log.read_text().splitlines():
        phase, key, label, revision = line.split()
        wid = key.split(":")[0]
        assert wid in summary, f"a step ran for an unknown instance: {line}"
        status = summary[wid]["pointers"].get(key)
        if status is None:
            folded[wid].add(key)  # compacted away by the loop: counted below
        else:
            assert status == "complete", f"a step ran for a pointer the store does not have as complete: {line}"
        runs[(key, label)].append((phase, int(revision)))
        labels[wid].add(label)
    for wid, result in summary.items():
        assert labels[wid] == LABELS[result["kind"]], f"{result['kind']} {wid} ran {sorted(labels[wid])}"
        assert len(folded[wid]) == result["folded"], (
            f"{wid}: steps ran for {len(folded[wid])} pointers the store has not, and it folded {result['folded']}"
        )

    # A pass runs on a copy loaded at some revision and saves it as the next one, so the revision a
    # step saw names its pass. Only the last pass of an instance before the kill can have been lost.
    last_pass: dict[str, int] = defaultdict(int)
    for (key, _), seen in runs.items():
        wid = key.split(":")[0]
        last_pass[wid] = max([last_pass[wid], *(revision for phase, revision in seen if phase == "p1")])
    rerun: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for (key, label), seen in runs.items():
        phases = Counter(phase for phase, _ in seen)
        assert phases["p1"] <= 1 and phases["p2"] <= 1, f"{key} {label} ran {seen} (twice in one process)"
        if len(seen) == 2:
            wid = key.split(":")[0]
            revision = next(r for p, r in seen if p == "p1")
            rerun[wid].append((key, label, revision))
            assert revision == last_pass[wid], (
                f"{label} of {wid} completed in a pass that was saved (revision {revision}) and ran again "
                f"after the restart (the last pass before the kill started from revision {last_pass[wid]})"
            )
    for wid, steps in rerun.items():
        # The pass the kill interrupted was not saved: every step of it ran once more, and only those.
        lost = {run for run, seen in runs.items() if run[0].startswith(wid + ":") and ("p1", last_pass[wid]) in seen}
        assert lost == {(key, label) for key, label, _ in steps}, (wid, sorted(lost), sorted(steps))
        assert len(steps) <= PASS_SIZE[summary[wid]["kind"]], f"more than one pass of {wid} ran again: {steps}"
    assert len(rerun) <= WORKERS, f"{len(rerun)} instances re-ran steps; at most {WORKERS} were running: {rerun}"
