"""Three processes on PostgreSQL (store) and Redis (queue and lock) run the same cron schedule: each
tick starts exactly one instance, whose step runs once, and no tick is missed.

The nodes (tests/cluster/schedule_node.py) share a fast clock, a minute per second, so a dozen ticks
pass in a dozen seconds; all three register the schedule at start-up at the same moment.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import schedule_node
from conftest import Schema

from liteflow.core import WorkflowStatus, configure_workflow_host

NODE = Path(__file__).with_name("schedule_node.py")
RUN_SECONDS = 12.0  # of real time: twelve minutes on the nodes' clock


def test_three_nodes_start_each_tick_once(tmp_path: Path, postgres_url: str, redis_url: str, schema: Schema) -> None:
    redis = pytest.importorskip("redis")
    prefix = f"lf_sched_{uuid.uuid4().hex[:8]}"
    store = f"{postgres_url}?schema={schema()}&max_size=2"
    queue, lock = f"{redis_url}?prefix={prefix}", f"{redis_url}?prefix={prefix}&lease=2"
    effects = tmp_path / "effects.log"
    base = time.time()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                str(NODE),
                "--node",
                f"n{i}",
                "--store",
                store,
                "--queue",
                queue,
                "--lock",
                lock,
                "--effects",
                str(effects),
                "--base",
                str(base),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        for node in nodes:
            assert node.stdout is not None and node.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.5)  # the cluster's own clock is the thing under test: nothing to poll here
            assert all(node.poll() is None for node in nodes)
        for node in nodes:
            node.terminate()
        assert [node.wait(timeout=30) for node in nodes] == [0, 0, 0]
        ended = schedule_node.fast_clock(base)
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    reader = configure_workflow_host(store)
    try:
        started = reader.query_workflows(workflow_id="Target", limit=1000)
        created = reader.get_workflow_instance("liteflow.schedule:" + schedule_node.SCHEDULE).create_time
    finally:
        reader.persistence.close()
    ticks = sorted(datetime.fromisoformat(i.id.split("@")[1].replace("Z", "+00:00")) for i in started)
    first = created.replace(second=0, microsecond=0) + timedelta(minutes=1)  # the first tick after it was made
    assert ticks == [first + timedelta(minutes=n) for n in range(len(ticks))], "a tick missing or out of line"
    assert ticks[-1] >= ended - timedelta(minutes=2), f"ticks stopped at {ticks[-1]}, the clock at {ended}"
    assert len(ticks) >= 8
    runs = Counter(line.split()[0] for line in effects.read_text().splitlines())
    completed = [i.id for i in started if i.status is WorkflowStatus.COMPLETE]
    assert all(runs[i] == 1 for i in completed), {i: n for i, n in runs.items() if n != 1}
    assert len(completed) >= len(started) - 1  # the last tick may have been started as the nodes stopped
    assert sum(runs.values()) <= len(started)
