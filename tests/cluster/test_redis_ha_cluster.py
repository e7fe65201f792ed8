"""A three-node cluster on a PostgreSQL store that keeps going while a Redis server dies:

- **Redlock**: the lock on three masters of our own (the queue in PostgreSQL); one master is
  SIGKILLed 30 % into the work. A majority is left, so nothing may notice but the health report:
  every instance completes with the right data, no step runs twice, no instance runs on two
  threads at once.
- **Sentinel**: the queue and the lock on a master with one replica and three sentinels; the master
  is SIGKILLed 30 % into the work and the replica promoted. Every instance completes with the
  right data after the failover (steps are at least once: a lock the replica had not yet received
  may let a pass run twice, which the store's revision check keeps out of the saved state).

The nodes are tests/cluster/cluster_node.py, as in test_cluster.py; 500 workflows of short steps
(sequences and for_each loops). How long the work paused around the kill is printed, not asserted.
"""

from __future__ import annotations

import argparse
import itertools
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import cluster_node
import pytest
import redis_servers as servers
from cluster_node import EFFECTS, TRAILS
from redis_servers import RedisServer, RedisServers, SentinelSetup
from test_cluster import Backend, Effect, Node, _postgres_store, _wait_until

from liteflow.core import WorkflowInstance, WorkflowStatus

redis_servers = servers.redis_servers  # fixture

PER_KIND = 250  # Sequence and Loop: 500 instances
KINDS = ("Sequence", "Loop")
NODES = 3
KILL_AT = 0.3  # of all effects recorded
LEASE = 2.0
VISIBILITY = 3.0
COMPLETION_TIMEOUT = 90.0


@pytest.fixture
def store() -> Iterator[Backend]:
    chosen = Backend("", "", "", "", lambda: 0, list)
    try:
        _postgres_store(f"ha_{uuid.uuid4().hex[:12]}", chosen)
        yield chosen
    finally:
        for cleanup in reversed(chosen.cleanups):
            cleanup()


Outcome = tuple[dict[str, tuple[str, int]], dict[str, WorkflowInstance], list[Effect], float, float]


def _run(backend: Backend, tmp_path: Path, kill: Callable[[], None]) -> Outcome:
    """Start the instances and three workers, ``kill`` a server at KILL_AT, wait for all to finish.
    Returns the instances, the final ones, the effects, the kill time and the time to finish."""
    client = cluster_node.configure(argparse.Namespace(store=backend.store, queue=backend.queue, lock=backend.lock))
    nodes: list[Node] = []
    try:
        instances = {
            client.start_workflow(kind, 1, {"i": i, "trail": []}): (kind, i) for i in range(PER_KIND) for kind in KINDS
        }
        launched = time.monotonic()
        nodes = [Node(f"w{n}", "worker", backend, tmp_path) for n in range(NODES)]
        for node in nodes:
            node.expect("READY")
        expected = PER_KIND * sum(len(EFFECTS[kind]) for kind in KINDS)
        _wait_until(lambda: backend.count_effects() >= KILL_AT * expected, f"{KILL_AT:.0%} of the effects", nodes, 60)
        kill_time = time.time()
        kill()

        def all_finished() -> bool:
            return not client.query_workflows(status=WorkflowStatus.RUNNABLE, limit=1)

        _wait_until(all_finished, "every instance to finish", nodes, COMPLETION_TIMEOUT, every=0.2)
        finished = time.monotonic() - launched
        final = {instance.id: instance for instance in client.query_workflows(limit=10_000)}
        effects = backend.read_effects()
    finally:
        exits = {node.name: node.stop() for node in nodes}
        for provider in (client.queue, client.lock, client.persistence):
            provider.close()
    assert set(exits.values()) <= {0}, f"nodes did not stop cleanly: {exits}"
    return instances, final, effects, kill_time, finished


def _check_data(instances: dict[str, tuple[str, int]], final: dict[str, WorkflowInstance]) -> None:
    assert set(final) == set(instances), "the store holds other instances than those started"
    for wid, (kind, i) in instances.items():
        instance = final[wid]
        assert instance.status is WorkflowStatus.COMPLETE, (kind, i, wid)
        trail = instance.data["trail"]
        if kind == "Loop":  # for_each branches may complete in any order
            trail = [trail[0], *sorted(trail[1:-1]), trail[-1]]
        assert trail == TRAILS[kind], f"{kind} {i} ({wid}): a step saved twice or not at all: {trail}"


def _runs(effects: list[Effect]) -> Counter[tuple[str, str]]:
    return Counter((effect.key, effect.step) for effect in effects)


def _overlaps(effects: list[Effect]) -> list[tuple[Effect, Effect]]:
    """Runs of one instance's steps on two threads at the same time."""
    by_instance: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        by_instance[effect.workflow_id].append(effect)
    found = []
    for seen in by_instance.values():
        seen.sort(key=lambda e: e.start)
        for n, later in enumerate(seen):
            found += [
                (e, later) for e in seen[:n] if (e.node, e.thread) != (later.node, later.thread) and e.at > later.start
            ]
    return found


def _pause(effects: list[Effect], kill_time: float) -> tuple[float, float]:
    """The first step to start after the kill, and the longest gap between step starts in the
    10 s after it (seconds)."""
    starts = sorted(e.start for e in effects if e.start >= kill_time)
    if not starts:
        return float("inf"), float("inf")
    window = [kill_time, *(s for s in starts if s <= kill_time + 10)]
    return starts[0] - kill_time, max(b - a for a, b in itertools.pairwise(window)) if len(window) > 1 else 0.0


@pytest.mark.timeout(240)
def test_cluster_survives_sigkill_of_a_redlock_master(
    store: Backend, redis_servers: RedisServers, tmp_path: Path
) -> None:
    masters: list[RedisServer] = [redis_servers.start() for _ in range(3)]
    store.lock = f"redis://{','.join(m.address for m in masters)}/0?prefix=ha&lease={LEASE}"
    store.queue = f"{store.store.split('&max_size')[0]}&visibility_timeout={VISIBILITY}&max_size=2"
    victim = masters[1]
    instances, final, effects, kill_time, finished = _run(store, tmp_path, victim.kill)
    assert not victim.alive()

    _check_data(instances, final)
    runs = _runs(effects)
    assert sum(runs.values()) == PER_KIND * sum(len(EFFECTS[kind]) for kind in KINDS)
    twice = {run: count for run, count in runs.items() if count > 1}
    assert not twice, f"steps ran more than once while a Redlock master was down: {list(twice)[:5]}"
    assert not _overlaps(effects), "an instance ran on two threads at once"
    first, gap = _pause(effects, kill_time)
    print(
        f"\nRedlock (3 masters, one SIGKILLed) + PostgreSQL store and queue: {len(instances)} instances, "
        f"{len(effects)} steps run once each, {sum(1 for e in effects if e.start > kill_time)} after the kill; "
        f"first step {first * 1000:.0f} ms after the kill, longest pause {gap * 1000:.0f} ms; "
        f"all done {finished:.1f} s after the workers were launched"
    )


@pytest.mark.timeout(240)
def test_cluster_survives_a_sentinel_failover(store: Backend, redis_servers: RedisServers, tmp_path: Path) -> None:
    setup = SentinelSetup(redis_servers)
    store.queue = setup.url(f"prefix=ha&visibility_timeout={VISIBILITY}")
    store.lock = setup.url(f"prefix=ha&lease={LEASE}")
    promoted: list[float] = []

    def kill_master() -> None:
        killed = time.monotonic()
        setup.master.kill()
        setup.wait_for(lambda: setup.master_port() == setup.replica.port, "the replica's promotion", 30)
        promoted.append(time.monotonic() - killed)

    instances, final, effects, kill_time, finished = _run(store, tmp_path, kill_master)
    assert setup.replica.role() == "master"

    _check_data(instances, final)
    runs = _runs(effects)
    labels: dict[str, set[str]] = defaultdict(set)
    for effect in effects:
        labels[effect.workflow_id].add(effect.step)
    for wid, (kind, _) in instances.items():
        assert labels[wid] == EFFECTS[kind], f"{kind} {wid} recorded {sorted(labels[wid])}"
    twice = {run: count for run, count in runs.items() if count > 1}
    assert all(count == 2 for count in twice.values()), f"a step ran three times or more: {twice}"
    first, gap = _pause(effects, kill_time)
    after = [e.start - kill_time - promoted[0] for e in effects if e.start > kill_time + promoted[0]]
    resumed = f"{min(after) * 1000:.0f} ms" if after else "-"
    print(
        f"\nSentinel (master SIGKILLed, replica promoted after {promoted[0]:.1f} s) queue and lock + PostgreSQL "
        f"store: {len(instances)} instances all complete, {len(effects)} step runs, {len(twice)} steps ran twice; "
        f"first step {resumed} after the promotion; first step after the kill {first * 1000:.0f} ms, "
        f"longest pause {gap:.2f} s; "
        f"all done {finished:.1f} s after the workers were launched"
    )
