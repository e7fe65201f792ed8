"""A real cluster: three worker processes, one publisher process that runs no workflow, a shared
store, queue and lock; one worker is killed with SIGKILL in the middle of the work.

The nodes are tests/cluster/cluster_node.py. 2,000 workflows mix sequential steps, a for_each, a
1-2 s sleep and two waits for events that the publisher node publishes, round 1 before the kill
and round 2 after it. Every step run records a side effect (with its node, thread, start and the
time of the effect) in a table of the store's database (a file for SQLite); the final instances and
those effects are what the assertions read:

- every instance completes with the right data (its trail of steps, the events it received);
- every event reaches both of its subscribers (two instances wait on each key) exactly once, and
  each of the two waits of one instance gets its own event;
- every step's side effect happened once, except the steps of the passes the killed node was
  running, which may have happened a second time on a survivor (at-least-once), at most one pass
  per worker thread of the killed node;
- no two threads, on any nodes, ran steps of the same instance at the same time;
- the locks of the instances the killed node was running could be taken again within the lease.

The failover times (when those locks were free, and when a survivor ran their next step) are
printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cluster_node
import pytest
from cluster_node import EFFECT_COLUMNS, EFFECTS, KINDS, TRAILS, event_key, payload
from conftest import require_service

from liteflow.core import WorkflowStatus
from liteflow.core._models import utcnow

ROOT = Path(__file__).resolve().parents[2]
NODE = Path(__file__).with_name("cluster_node.py")

PER_KIND = 500  # 2,000 instances
WAIT_KEYS = PER_KIND // 2  # two Wait instances per key
NODES = 3
WORKERS = 4  # max_concurrent_workflows of each worker node: its passes in flight at once
PASS_SIZE = {"Sequence": 1, "Loop": len(cluster_node.ITEMS), "Nap": 1, "Wait": 1}  # most of our steps in one pass
PUBLISH_AT = 0.1  # of all effects recorded: round 1 of the events
KILL_AT = 0.3  # of all effects recorded: SIGKILL one worker
LEASE = 2.0  # lock lease, s (renewed every lease / 3 while the node lives)
LOCK_SLACK = 1.5  # s: a renewal may have just happened, plus scheduling on a loaded machine
VISIBILITY = 3.0  # Redis queue visibility timeout, s
POLL = 0.5  # host poll interval, s
COMPLETION_TIMEOUT = 90.0  # after the kill
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Effect:
    workflow_id: str
    step: str
    item: str
    node: str
    key: str
    revision: int
    thread: str
    start: float  # when the step run began
    at: float  # when it made its side effect (halfway through the step)


# -- backends ------------------------------------------------------------------------------------


@dataclass
class Backend:
    store: str
    queue: str
    lock: str
    effects: str  # the sink given to the nodes
    count_effects: Callable[[], int]
    read_effects: Callable[[], list[Effect]]
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def describe(self) -> str:
        def kind(url: str) -> str:
            return url.split(":")[0]

        return f"{kind(self.store)} store + {kind(self.queue)} queue + {kind(self.lock)} lock"


def _postgres_provider_ready() -> bool:
    try:
        import liteflow.providers.postgres  # noqa: F401
    except ImportError:
        return False
    return True


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the cluster test must run)", pytrace=False)
    pytest.skip(message)


def _redis_lock(prefix: str, backend: Backend) -> None:
    backend.lock = f"{REDIS}?prefix={prefix}&lease={LEASE}"


def _redis_queue(prefix: str, backend: Backend) -> None:
    backend.queue = f"{REDIS}?prefix={prefix}&visibility_timeout={VISIBILITY}"


def _redis(prefix: str, backend: Backend) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    def cleanup() -> None:
        client = redis.Redis.from_url(REDIS)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    backend.cleanups.append(cleanup)


def _rabbitmq_queue(prefix: str, backend: Backend) -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import pika  # type: ignore[import-untyped]

    # A SIGKILLed node's TCP connection closes at once, so RabbitMQ redelivers its messages at
    # once; the 2 s heartbeat bounds the wait when a node vanishes without closing it.
    backend.queue = f"{AMQP}?prefix={prefix}&heartbeat=2"

    def cleanup() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        try:
            channel = connection.channel()
            for name in ("workflow", "event"):
                channel.queue_delete(queue=f"{prefix}.{name}")
        finally:
            connection.close()

    backend.cleanups.append(cleanup)


def _postgres_store(schema: str, backend: Backend) -> None:
    """The store in a fresh schema, and the effects in a table next to it; both dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    if not _postgres_provider_ready():
        _missing("the PostgreSQL providers (liteflow.providers.postgres) cannot be imported")
    import psycopg

    table = f"{schema}_effects"
    columns = (
        "workflow_id text, step text, item text, node text, idempotency_key text, revision integer, thread text,"
        " start_ts double precision, effect_ts double precision"
    )

    def cleanup() -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "{table}"')
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    backend.cleanups.append(cleanup)
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{table}" ({columns})')

    counter = psycopg.connect(POSTGRES, autocommit=True)  # polled every 20 ms: one connection
    backend.cleanups.append(counter.close)

    def count() -> int:
        row = counter.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        assert row is not None
        return int(row[0])

    def read() -> list[Effect]:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            rows = connection.execute(f'SELECT {", ".join(EFFECT_COLUMNS)} FROM "{table}"').fetchall()
        return [Effect(*row) for row in rows]

    backend.store = f"{POSTGRES}?schema={schema}&max_size=4"  # 3 nodes and the test stay well under 100 connections
    backend.effects = f"{POSTGRES}#{table}"
    backend.count_effects, backend.read_effects = count, read


def _postgres_queue(schema: str, backend: Backend) -> None:
    backend.queue = f"{POSTGRES}?schema={schema}&visibility_timeout={VISIBILITY}&max_size=2"


def _postgres_lock(schema: str, backend: Backend) -> None:
    backend.lock = f"{POSTGRES}?schema={schema}&lease={LEASE}&max_size=2"


def _sqlite_store(directory: Path, backend: Backend) -> None:
    """Several processes on one SQLite file (WAL); the effects in an O_APPEND file."""
    log = directory / "effects.log"

    def count() -> int:
        try:
            return log.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def read() -> list[Effect]:
        effects = []
        for line in log.read_text().splitlines():
            wid, step, item, node, key, revision, thread, start, at = line.split("\t")
            effects.append(Effect(wid, step, item, node, key, int(revision), thread, float(start), float(at)))
        return effects

    backend.store = f"sqlite:///{directory / 'cluster.db'}"
    backend.effects = f"file:{log}"
    backend.count_effects, backend.read_effects = count, read


@pytest.fixture(
    params=[
        pytest.param(("postgres", "redis", "redis"), id="postgres-redisqueue-redislock"),
        pytest.param(("postgres", "rabbitmq", "postgres"), id="postgres-rabbitmqqueue-postgreslock"),
        pytest.param(("postgres", "postgres", "postgres"), id="postgres-only"),
        pytest.param(("sqlite", "redis", "redis"), id="sqlite-redisqueue-redislock"),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    store, queue_kind, lock_kind = request.param
    name = f"cluster_{uuid.uuid4().hex[:12]}"  # schema, table and key prefix of this run only
    chosen = Backend("", "", "", "", lambda: 0, list)
    try:
        if "redis" in (queue_kind, lock_kind):
            _redis(name, chosen)
        if store == "postgres":
            _postgres_store(name, chosen)
        else:
            _sqlite_store(tmp_path, chosen)
        {"redis": _redis_queue, "rabbitmq": _rabbitmq_queue, "postgres": _postgres_queue}[queue_kind](name, chosen)
        {"redis": _redis_lock, "postgres": _postgres_lock}[lock_kind](name, chosen)
        yield chosen
    finally:
        for cleanup in reversed(chosen.cleanups):
            cleanup()


# -- node processes ------------------------------------------------------------------------------


class Node:
    """A cluster_node.py process; its stdout lines are read by a thread, its stderr goes to a file."""

    def __init__(self, name: str, role: str, backend: Backend, log_dir: Path, *extra: str) -> None:
        self.name = name
        self.role = role
        self.err = log_dir / f"{name}.err"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [
            sys.executable, str(NODE), "--node", name, "--role", role, "--store", backend.store,
            "--queue", backend.queue, "--lock", backend.lock, "--effects", backend.effects,
            "--workers", str(WORKERS), "--poll-interval", str(POLL), *extra,
        ]  # fmt: skip
        with open(self.err, "wb") as stderr:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.name} did not say {prefix!r} within {timeout} s:\n{self.stderr()}")
        assert line.startswith(prefix), f"{self.name} said {line!r}, not {prefix!r}:\n{self.stderr()}"
        return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr(self, tail: int = 4000) -> str:
        return self.err.read_text(errors="replace")[-tail:]

    def stop(self) -> int | None:
        """``quit`` (publisher) or SIGTERM (worker): the node stops its host cleanly; SIGKILL if it
        takes too long."""
        if self.alive():
            if self.role == "publisher":
                self.send("quit")
            else:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def _wait_until(
    condition: Callable[[], bool], what: str, nodes: list[Node], timeout: float, every: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for node in nodes:
            if not node.alive():
                pytest.fail(f"{node.name} exited ({node.process.returncode}) before {what}:\n{node.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# -- the test ------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_cluster_survives_sigkill_of_a_node(backend: Backend, tmp_path: Path) -> None:
    # This process starts the workflows and reads the store: its host is never started.
    client = cluster_node.configure(argparse.Namespace(store=backend.store, queue=backend.queue, lock=backend.lock))
    nodes: list[Node] = []
    try:
        publisher = Node("pub", "publisher", backend, tmp_path, "--keys", str(WAIT_KEYS))
        nodes.append(publisher)
        publisher.expect("READY")
        # Everything is started before the workers are, so that the kill lands while all kinds of
        # work are in flight, whatever the speed of the machine.
        instances: dict[str, tuple[str, int]] = {}
        for i in range(PER_KIND):
            for kind in KINDS:
                instances[client.start_workflow(kind, 1, {"i": i, "trail": []})] = (kind, i)
        launched = time.monotonic()
        workers = [Node(f"w{n}", "worker", backend, tmp_path) for n in range(NODES)]
        nodes += workers
        for node in workers:
            node.expect("READY")

        expected = PER_KIND * sum(len(labels) for labels in EFFECTS.values())
        _wait_until(lambda: backend.count_effects() >= PUBLISH_AT * expected, "the first effects", nodes, 60)
        publisher.send("publish 1")  # round 1: some instances already wait, some do not yet
        publisher.expect("published 1", timeout=60)

        _wait_until(lambda: backend.count_effects() >= KILL_AT * expected, f"{KILL_AT:.0%} of the effects", nodes, 60)
        victim, survivors = workers[1], [workers[0], workers[2]]
        os.kill(victim.process.pid, signal.SIGKILL)
        assert victim.process.wait(10) == -signal.SIGKILL
        # Read once the victim is certainly dead: read before the signal, a step it finished while the
        # signal was on its way would seem to have run after the kill (seen once: 1 µs after).
        kill_time = time.time()
        effects_at_kill = backend.count_effects()
        live = [publisher, *survivors]
        lock_free_after = _probe_locks(client, backend, victim.name, kill_time)  # before round 2

        publisher.send("publish 2")  # round 2, from a node that runs no workflow, after the kill
        publisher.expect("published 2", timeout=60)

        def all_finished() -> bool:
            return not any(
                client.query_workflows(status=status, limit=1)
                for status in (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED)
            )

        try:
            _wait_until(all_finished, "every instance to finish", live, COMPLETION_TIMEOUT, every=0.2)
        except pytest.fail.Exception as error:
            pytest.fail(f"{error}\n{_stuck_report(client, instances, nodes)}", pytrace=False)
        finished = time.monotonic()
        # No event is left for the pollers to hand out forever.
        _wait_until(
            lambda: not client.persistence.get_runnable_events(utcnow()), "events marked processed", live, 10, 0.2
        )
        final = {instance.id: instance for instance in client.query_workflows(limit=10_000)}
        errors = {wid: client.get_workflow_errors(wid) for wid in instances}
        effects = backend.read_effects()
    finally:
        exits = {node.name: node.stop() for node in nodes}
        for provider in (client.queue, client.lock, client.persistence):  # a host never started closes none
            provider.close()
    assert exits == {"pub": 0, "w0": 0, "w1": -signal.SIGKILL, "w2": 0}, f"nodes did not stop cleanly: {exits}"

    # -- every instance completed with the right data ---------------------------------------------
    assert set(final) == set(instances), "the store holds other instances than those started"
    for wid, (kind, i) in instances.items():
        instance = final[wid]
        assert instance.status is WorkflowStatus.COMPLETE, (kind, i, wid, instance.status)
        assert not errors[wid], f"{kind} {i} ({wid}) recorded errors: {[e.message for e in errors[wid]]}"
        trail = instance.data["trail"]
        if kind == "Loop":  # for_each branches may complete in any order
            trail = [trail[0], *sorted(trail[1:-1]), trail[-1]]
        assert trail == TRAILS[kind], f"{kind} {i} ({wid}): a step ran twice or not at all: {instance.data}"

    # -- every event reached each of its two subscribers exactly once ------------------------------
    wrong = {
        wid: final[wid].data
        for wid, (kind, i) in instances.items()
        if kind == "Wait"
        and (final[wid].data["got1"], final[wid].data["got2"]) != (payload(event_key(i), 1), payload(event_key(i), 2))
    }
    assert not wrong, f"{len(wrong)} Wait instances received the wrong events:\n" + "\n".join(
        _history(final[wid], effects, kill_time, victim.name) for wid in list(wrong)[:3]
    )
    deliveries: Counter[str] = Counter()
    for wid, (kind, _) in instances.items():
        waits = [p.event_id for p in final[wid].execution_pointers if p.event_name == "go"]
        if kind == "Wait":
            assert len(waits) == len(set(waits)) == 2 and all(waits), f"{wid} waited with {waits}"
        deliveries.update(waits)
    assert len(deliveries) == 2 * WAIT_KEYS, f"{2 * WAIT_KEYS} events published, {len(deliveries)} delivered"
    assert set(deliveries.values()) == {2}, "an event reached more or fewer than its two subscribers"

    # -- side effects: once each, except the passes the killed node was running ---------------------
    runs: dict[tuple[str, str], list[Effect]] = defaultdict(list)
    labels: dict[str, set[str]] = defaultdict(set)
    last_pass: dict[str, int] = defaultdict(lambda: -1)  # per instance: the killed node's last pass
    for effect in effects:
        assert effect.workflow_id in instances, f"a step ran for an unknown instance: {effect}"
        assert effect.node != "pub", f"the publisher ran a step: {effect}"
        runs[(effect.key, effect.step)].append(effect)
        labels[effect.workflow_id].add(effect.step)
        if effect.node == victim.name:
            last_pass[effect.workflow_id] = max(last_pass[effect.workflow_id], effect.revision)
    for wid, (kind, i) in instances.items():
        assert labels[wid] == EFFECTS[kind], f"{kind} {i} ({wid}) recorded {sorted(labels[wid])}"
    rerun: dict[str, list[tuple[Effect, Effect]]] = defaultdict(list)
    for (key, step), seen in runs.items():
        if len(seen) == 1:
            continue
        first, second = sorted(seen, key=lambda e: e.start)
        assert len(seen) == 2 and first.node == victim.name != second.node, (
            f"{step} of {key} ran more than once, and not because of the kill: {seen}"
        )
        # The pass the kill interrupted was never saved: the survivor ran it again from the same
        # saved revision, after the kill.
        assert first.at < kill_time < second.start and first.revision == second.revision, (first, second)
        assert first.revision == last_pass[first.workflow_id], (
            f"{step} of {key} ran in a pass the killed node had saved (revision {first.revision}) and ran "
            f"again on {second.node} (its last pass started from revision {last_pass[first.workflow_id]})"
        )
        rerun[first.workflow_id].append((first, second))
    for wid, pairs in rerun.items():
        kind = instances[wid][0]
        assert len(pairs) <= PASS_SIZE[kind], f"more than one pass of {kind} {wid} ran again: {pairs}"
    assert len(rerun) <= WORKERS, f"{len(rerun)} instances re-ran steps; the killed node ran {WORKERS} at most"

    # -- no instance ran on two threads (of any nodes) at once ---------------------------------------
    by_instance: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        by_instance[effect.workflow_id].append(effect)
    for wid, seen in by_instance.items():
        seen.sort(key=lambda e: e.start)
        for n, later in enumerate(seen):
            for earlier in seen[:n]:
                if (earlier.node, earlier.thread) != (later.node, later.thread):
                    assert earlier.at <= later.start, f"{wid} ran on two threads at once: {earlier} and {later}"

    # -- the killed node's locks were free within the lease ---------------------------------------------
    assert max(lock_free_after.values(), default=0.0) <= LEASE + LOCK_SLACK, (
        f"locks of the killed node stayed taken for longer than the {LEASE} s lease: {lock_free_after}"
    )

    # -- report (printed, not asserted) ---------------------------------------------------------------
    # Takeover: for the instances whose lock the killed node held (or whose pass ran again), of
    # kinds whose next step is due at once, the delay from the kill to a survivor's first step. It
    # includes waiting behind the survivors' backlog: the lock is free after the lease, but an
    # instance found busy before that is queued again by the next poll, behind the queued work.
    held = set(lock_free_after)
    takeover = sorted(
        min(e.start for e in by_instance[wid] if e.start > kill_time) - kill_time
        for wid in held | set(rerun)
        if instances[wid][0] in ("Sequence", "Loop") and any(e.start > kill_time for e in by_instance[wid])
    )
    freed = sorted(lock_free_after[wid] for wid in held)
    print(
        f"\n{backend.describe()}: {len(instances)} instances, {len(effects)} effects "
        f"({dict(sorted(Counter(e.node for e in effects).items()))}), {effects_at_kill} before the kill; "
        f"all finished {finished - launched:.1f} s after the workers were launched; "
        f"re-run after the kill: {sum(len(p) for p in rerun.values())} steps of {len(rerun)} instances; "
        f"locks the killed node held: {len(held)}, "
        + (f"free {freed[0]:.2f}-{freed[-1]:.2f} s after the kill; " if freed else "none; ")
        + (
            f"first survivor step on them after {takeover[0]:.2f} s (median {statistics.median(takeover):.2f} s, "
            f"last {takeover[-1]:.2f} s, {len(takeover)} instances)"
            if takeover
            else "no instance to take over"
        )
    )


def _probe_locks(client: Any, backend: Backend, victim: str, kill_time: float) -> dict[str, float]:
    """The instances whose lock the killed node held (of those it ran in its last second), with how
    long after the kill each lock could be taken. Taken and given back at once: a survivor that
    tries just then finds it busy, and gets it at its next poll."""
    recent = {e.workflow_id for e in backend.read_effects() if e.node == victim and e.at >= kill_time - 1.0}
    held = {wid for wid in recent if not _take_and_give_back(client, wid)}
    free: dict[str, float] = {}
    deadline = time.monotonic() + LEASE + 10.0
    while held - set(free) and time.monotonic() < deadline:
        for wid in held - set(free):
            if _take_and_give_back(client, wid):
                free[wid] = time.time() - kill_time
        time.sleep(0.01)
    return {wid: free.get(wid, float("inf")) for wid in held}


def _take_and_give_back(client: Any, workflow_id: str) -> bool:
    if not client.lock.acquire(workflow_id):
        return False
    client.lock.release(workflow_id)
    return True


def _history(instance: Any, effects: list[Effect], kill_time: float, victim: str) -> str:
    """What an instance went through, times relative to the kill: for failure messages."""
    lines = [f"{instance.id} {instance.data} (killed node: {victim})"]
    for e in sorted((e for e in effects if e.workflow_id == instance.id), key=lambda e: e.start):
        lines.append(f"  effect {e.step} on {e.node}/{e.thread} at {e.start - kill_time:+.3f} s, revision {e.revision}")
    for p in instance.execution_pointers:
        start = p.start_time.timestamp() - kill_time if p.start_time else None
        end = p.end_time.timestamp() - kill_time if p.end_time else None
        lines.append(f"  pointer {p.step_id} {p.status.value} event {p.event_id} start {start} end {end}")
    return "\n".join(lines)


def _stuck_report(client: Any, instances: dict[str, tuple[str, int]], nodes: list[Node]) -> str:
    stuck = []
    for status in (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED):
        for instance in client.query_workflows(status=status, limit=10_000):
            kind, i = instances.get(instance.id, ("?", -1))
            pointers = [(p.step_id, p.status.value, p.event_key, p.sleep_until) for p in instance.execution_pointers]
            stuck.append(f"{kind} {i} ({instance.id}) {status.value}, next {instance.next_execution}: {pointers}")
    logs = "\n".join(f"--- {node.name}:\n{node.stderr(1500)}" for node in nodes)
    return f"{len(stuck)} instances did not finish, e.g.\n" + "\n".join(stuck[:8]) + f"\n{logs}"
