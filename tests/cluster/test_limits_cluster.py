"""A concurrency limit of one per key, on three processes sharing PostgreSQL (store) and Redis
(queue and lock), one of them killed with SIGKILL while it runs limited instances: no two instances
of one key ever run at the same time, and every instance completes (no slot leaks).

The nodes are tests/cluster/limited_node.py; each instance records when its first step began and
its last step ended, so "running" spans its whole life, naps between passes included.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import limited_node
import pytest
from conftest import Schema

from liteflow.core import WorkflowStatus, configure_workflow_host

NODE = Path(__file__).with_name("limited_node.py")
KEYS = 5
PER_KEY = 6
DEADLINE = 60.0


def test_a_limit_of_one_per_key_holds_while_a_node_is_killed(
    tmp_path: Path, postgres_url: str, redis_url: str, schema: Schema
) -> None:
    redis = pytest.importorskip("redis")
    prefix = f"lf_limit_{uuid.uuid4().hex[:8]}"
    store = f"{postgres_url}?schema={schema()}&max_size=2"
    queue, lock = f"{redis_url}?prefix={prefix}&visibility_timeout=3", f"{redis_url}?prefix={prefix}&lease=2"
    effects = tmp_path / "effects.log"
    starter = configure_workflow_host(store, queue, lock)
    starter.register_workflow(limited_node.PerKey())
    nodes: list[subprocess.Popen[str]] = []
    try:
        for i in range(3):
            command = [sys.executable, str(NODE), "--node", f"n{i}", "--store", store, "--queue", queue]
            nodes.append(
                subprocess.Popen(
                    [*command, "--lock", lock, "--effects", str(effects)], stdout=subprocess.PIPE, text=True
                )
            )
        for node in nodes:
            assert node.stdout is not None and node.stdout.readline().strip() == "READY"
        ids = [starter.start_workflow("PerKey", data={"key": f"k{n % KEYS}", "n": n}) for n in range(KEYS * PER_KEY)]

        deadline = time.monotonic() + DEADLINE
        while not any(line.split()[2] == "n0" for line in _lines(effects)):  # n0 is running limited work
            assert time.monotonic() < deadline, "node n0 never ran a step"
            time.sleep(0.01)
        nodes[0].send_signal(signal.SIGKILL)
        nodes[0].wait(timeout=30)

        def unfinished() -> list[str]:
            return [i for i in ids if not starter.get_workflow_instance(i).is_finished]

        while unfinished():
            assert time.monotonic() < deadline, f"not finished: {len(unfinished())} instances (a slot leaked?)"
            time.sleep(0.2)
        assert all(starter.get_workflow_instance(i).status is WorkflowStatus.COMPLETE for i in ids)
        for node in nodes[1:]:
            node.terminate()
            assert node.wait(timeout=30) == 0
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
        for resource in (starter.queue, starter.lock, starter.persistence):
            resource.close()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    spans: dict[str, list[float]] = {}
    key_of: dict[str, str] = {}
    for instance, key, _node, what, when in (line.split() for line in _lines(effects)):
        key_of[instance] = key
        span = spans.setdefault(instance, [float("inf"), float("-inf")])
        if what == "begin":
            span[0] = min(span[0], float(when))  # a step the killed node ran may have run again
        else:
            span[1] = max(span[1], float(when))
    assert sorted(spans) == sorted(ids) and all(end > begin for begin, end in spans.values())
    by_key: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for instance, (begin, end) in spans.items():
        by_key[key_of[instance]].append((begin, end, instance))
    for key, runs in by_key.items():
        runs.sort()
        for (_, end, first), (begin, _, second) in pairwise(runs):
            assert begin > end, f"{first} and {second} of key {key} ran at the same time"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
