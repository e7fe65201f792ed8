"""The persistence contract against the MongoDB provider, plus what is particular to it: the outbox
that makes a save atomic without transactions (and its crash window), the URL, a host end to end,
and samples/07-mongodb.py.

The server is SecantusDB (see tests/servers.py), a MongoDB wire-protocol server; set
``LITEFLOW_TEST_MONGO_URL`` to run against a real MongoDB instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pymongo", reason='needs pymongo: pip install "liteflow-engine[mongo]"')

import pymongo

from liteflow.core import (
    Event,
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._models import new_id
from liteflow.providers.mongo import MongoPersistenceProvider
from liteflow.testing import PersistenceContract
from liteflow.testing._persistence_contract import (
    SECOND,
    T0,
    make_error,
    make_instance,
    make_subscription,
)

try:
    from tests.servers import mongo_url
except ImportError:  # tests/ itself on sys.path (pytest run as a script)
    from servers import mongo_url  # type: ignore[no-redef]  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(mongo_url: str) -> Iterator[str]:
    """A fresh database name, dropped afterwards."""
    name = f"liteflow_test_{new_id()[:12]}"
    yield name
    client: Any = pymongo.MongoClient(mongo_url)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def provider(mongo_url: str, database: str) -> Iterator[MongoPersistenceProvider]:
    store = MongoPersistenceProvider(mongo_url, database)
    yield store
    store.close()


class TestMongoPersistence(PersistenceContract):
    @pytest.fixture
    def persistence(self, provider: MongoPersistenceProvider) -> Iterator[MongoPersistenceProvider]:
        yield provider

    # User values are JSON text inside the record document: the damage goes there.
    def corrupt_instance(self, persistence: MongoPersistenceProvider, workflow_id: str, data_json: str) -> None:
        changed = persistence._workflows.update_one({"_id": workflow_id}, {"$set": {"record.data": data_json}})
        assert changed.matched_count == 1

    def corrupt_event(self, persistence: MongoPersistenceProvider, event_id: str, data_json: str) -> None:
        changed = persistence._events.update_one({"_id": event_id}, {"$set": {"record.event_data": data_json}})
        assert changed.matched_count == 1


# -- the outbox and its crash window ------------------------------------------------------------------


def test_a_crash_between_commit_and_outbox_loses_nothing(mongo_url: str, database: str) -> None:
    dead = MongoPersistenceProvider(mongo_url, database)
    instance = make_instance()
    dead.create_workflow(instance)
    name = f"event-{new_id()}"
    subscription = make_subscription(instance, name, "k", T0)
    error = make_error(instance, 1)
    event = Event(event_name=name, event_key="k", event_data={"done": True}, event_time=T0)
    instance.data = {"counter": 1}
    # The commit alone: the node "dies" before materializing its outbox.
    assert dead._commit(instance, subscriptions=[subscription], errors=[error], events=[event])
    dead.close()

    other = MongoPersistenceProvider(mongo_url, database)  # another node
    try:
        stored = other.get_workflow_instance(instance.id)
        assert (stored.revision, stored.data) == (1, {"counter": 1})
        assert other.get_subscriptions(name, "k", T0) == [subscription]
        assert other.get_errors(instance.id) == [error]
        assert other.get_event(event.id) == event
        assert other.get_events(name, "k", T0) == [event]
        assert event.id in other.get_runnable_events(T0)
        assert other._workflows.count_documents({"pending_outbox": True}) == 0
    finally:
        other.close()


def test_crashed_saves_in_a_row_apply_in_order(provider: MongoPersistenceProvider) -> None:
    instance = make_instance()
    provider.create_workflow(instance)
    name = f"event-{new_id()}"
    first = make_subscription(instance, name, "k", T0)
    second = make_subscription(instance, name, "k", T0 - SECOND)
    provider._commit(instance, subscriptions=[first], errors=[e1 := make_error(instance, 1)])
    instance.revision += 1
    # The next save ends the first subscription before it was ever materialized.
    provider._commit(instance, subscriptions=[second], terminated_subscriptions=[first.id],
                     errors=[e2 := make_error(instance, 2)])  # fmt: skip
    instance.revision += 1
    provider.persist_workflow(instance)  # a save with no outbox keeps the pending entries

    assert provider.get_subscriptions(name, "k", T0) == [second]
    assert provider.get_errors(instance.id) == [e1, e2]
    assert provider.get_workflow_instance(instance.id).revision == 3


def test_a_late_replay_of_the_outbox_changes_nothing(provider: MongoPersistenceProvider) -> None:
    instance = make_instance()
    provider.create_workflow(instance)
    name = f"event-{new_id()}"
    subscription = make_subscription(instance, name, "k", T0)
    event = Event(event_name=name, event_key="k", event_time=T0)
    outbox = provider._commit(instance, subscriptions=[subscription], events=[event])
    assert outbox is not None
    instance.revision += 1
    provider._materialize(instance.id, outbox)
    provider.mark_event_processed(event.id)
    provider.persist_workflow(instance, terminated_subscriptions=[subscription.id])

    provider._materialize(instance.id, outbox)  # a slow node applies the old entry again
    assert provider.get_event(event.id).is_processed is True
    assert provider.get_subscriptions(name, "k", T0) == []


def test_documents_are_readable_and_times_exact(provider: MongoPersistenceProvider) -> None:
    instance = make_instance(data={"name": "héllo", "when": T0})
    provider.create_workflow(instance)
    stored = provider._workflows.find_one({"_id": instance.id})
    assert stored is not None
    assert stored["status"] == "runnable"
    assert stored["next_execution"] % 1_000_000 == T0.microsecond  # integer microseconds
    assert stored["record"]["next_execution"] == T0.isoformat()
    assert isinstance(stored["record"]["execution_pointers"], list)
    assert isinstance(stored["record"]["data"], str)  # user values are JSON text
    assert "pending_outbox" not in stored


def test_from_url_and_configure_by_url(mongo_url: str, database: str) -> None:
    provider = MongoPersistenceProvider.from_url(f"{mongo_url}{database}?collection_prefix=app_&appname=t")
    try:
        assert provider.database_name == database
        assert provider._workflows.name == "app_workflows"
    finally:
        provider.close()
    host = configure_workflow_host(f"{mongo_url}{database}")
    try:
        assert isinstance(host.persistence, MongoPersistenceProvider)
    finally:
        host.stop()


# -- a host end to end ---------------------------------------------------------------------------------


class Record(StepBody):
    def __init__(self) -> None:
        self.label = ""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data["trail"].append(self.label)
        return ExecutionResult.next()


class ThreeStepsAndAnEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Record).input("label", lambda d, c: "one")\
            .then(Record).input("label", lambda d, c: "two")\
            .wait_for("go", lambda d, c: d["key"]).output("got", lambda step: step.event_data)\
            .then(Record).input("label", lambda d, c: "three")  # fmt: skip


def test_host_runs_workflows_on_mongo(provider: MongoPersistenceProvider) -> None:
    host = configure_workflow_host(provider, poll_interval=0.5)
    host.register_workflow(ThreeStepsAndAnEvent())
    host.start()
    try:
        ids = [host.start_workflow("ThreeStepsAndAnEvent", 1, {"trail": [], "key": f"k{n}"}) for n in range(5)]
        # One event published before its workflow reaches the wait, the others after.
        host.publish_event("go", "k0", "early")
        for n in range(1, 5):
            host.publish_event("go", f"k{n}", f"late-{n}")
        done = [host.wait_for_workflow(workflow_id, timeout=30) for workflow_id in ids]
    finally:
        host.stop()
    for n, instance in enumerate(done):
        assert instance.status is WorkflowStatus.COMPLETE
        assert instance.data["trail"] == ["one", "two", "three"]
        assert instance.data["got"] == ("early" if n == 0 else f"late-{n}")
    assert provider._workflows.count_documents({"pending_outbox": True}) == 0


# -- the sample ----------------------------------------------------------------------------------------


def test_sample_07_runs(mongo_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, LITEFLOW_MONGO_URL=mongo_url)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "07-mongodb.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for line in ("Hello world", "Goodbye", "captured_value = hello (complete)"):
        assert line in result.stdout, result.stdout
