"""Activities: a step handing work to external workers, who claim it with a lease and submit a
result that is applied once. On the manual-clock test host, and with a real worker process
SIGKILLed while it holds a claim on PostgreSQL with a Redis queue and lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    ActivityError,
    InvalidArgumentError,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    WorkflowStep,
    configure_workflow_host,
)
from liteflow.core._models import new_id
from liteflow.testing import WorkflowTestHost

ROOT = Path(__file__).resolve().parents[2]
LEASE = timedelta(seconds=30)


def log(name: str) -> Any:
    def step(context: StepExecutionContext) -> None:
        context.workflow.data["log"].append(name)

    step.__qualname__ = name
    return step


class Charge(Workflow):
    def __init__(self, on_error: Any = None, timeout: timedelta | None = None) -> None:
        self.on_error, self.timeout = on_error, timeout

    def build(self, builder: WorkflowBuilder) -> None:
        charge = builder.start_with(log("start")).activity(
            "charge-card", parameters=lambda d, c: {"amount": d["amount"]}, timeout=self.timeout
        )
        if self.on_error is not None:
            charge.on_error(*self.on_error)
        charge.output("receipt", lambda step: step.result).then(log("done"))


def started(workflow: Charge | None = None) -> tuple[WorkflowTestHost, str]:
    test = WorkflowTestHost(workflow or Charge())
    return test, test.start_workflow("Charge", data={"log": [], "amount": 42})


def test_a_worker_claims_the_activity_and_its_result_completes_the_step() -> None:
    test, workflow_id = started()
    claim = test.host.get_pending_activity("charge-card", "worker-1", lease=LEASE)
    assert claim is not None
    assert claim.parameters == {"amount": 42} and claim.workflow_id == workflow_id
    assert claim.lease_expires == test.clock.now + LEASE
    assert test.host.get_pending_activity("charge-card", "worker-2") is None, "handed out twice"
    assert test.host.get_pending_activity("other-activity", "worker-2") is None
    assert test.host.submit_activity_success(claim.token, "receipt-1") is True
    test.run_until_idle()
    instance = test.instance(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["receipt"] == "receipt-1" and instance.data["log"] == ["start", "done"]


def test_a_claim_whose_lease_lapses_is_handed_out_again_and_the_first_result_wins() -> None:
    test, workflow_id = started()
    first = test.host.get_pending_activity("charge-card", "worker-1", lease=LEASE)
    assert first is not None
    test.advance(LEASE - timedelta(seconds=1))
    assert test.host.get_pending_activity("charge-card", "worker-2", lease=LEASE) is None
    test.advance(timedelta(seconds=1))
    second = test.host.get_pending_activity("charge-card", "worker-2", lease=LEASE)
    assert second is not None and second.token != first.token and second.parameters == first.parameters
    # Both workers answer; the first answer applied is the one that counts, once.
    assert test.host.submit_activity_success(second.token, "from-worker-2") is True
    assert test.host.submit_activity_success(first.token, "from-worker-1") is True  # recorded, not yet applied
    test.run_until_idle()
    instance = test.instance(workflow_id)
    assert instance.data["receipt"] == "from-worker-2" and instance.data["log"] == ["start", "done"]
    assert test.host.submit_activity_success(first.token, "late") is False
    assert test.instance(workflow_id).revision == instance.revision


def test_a_failure_goes_through_the_steps_error_behaviour() -> None:
    test, workflow_id = started(Charge(on_error=(WorkflowStep.TERMINATE,)))
    claim = test.host.get_pending_activity("charge-card", "worker-1")
    assert claim is not None
    assert test.host.submit_activity_failure(claim.token, RuntimeError("card declined")) is True
    test.run_until_idle()
    assert test.instance(workflow_id).status is WorkflowStatus.TERMINATED
    [error] = test.errors(workflow_id)
    assert error.error_type == "liteflow.core.ActivityError" and "card declined" in error.message
    assert issubclass(ActivityError, Exception)


def test_a_retried_activity_is_handed_out_afresh_and_old_tokens_no_longer_count() -> None:
    test, workflow_id = started(Charge(on_error=(WorkflowStep.RETRY, timedelta(minutes=1))))
    failed = test.host.get_pending_activity("charge-card", "worker-1")
    assert failed is not None
    test.host.submit_activity_failure(failed.token, "gateway down")
    test.run_until_idle()
    assert test.host.get_pending_activity("charge-card", "worker-1") is None, "offered again before the retry"
    test.advance(timedelta(minutes=1))
    retry = test.host.get_pending_activity("charge-card", "worker-1")
    assert retry is not None and retry.token != failed.token
    assert test.host.submit_activity_success(failed.token, "stale") is False
    test.host.submit_activity_success(retry.token, "ok")
    instance = test.run_to_completion(workflow_id)
    assert instance.data["receipt"] == "ok"


def test_an_activity_nobody_completes_times_out_through_the_error_behaviour() -> None:
    test, workflow_id = started(Charge(on_error=(WorkflowStep.TERMINATE,), timeout=timedelta(hours=1)))
    claim = test.host.get_pending_activity("charge-card", "worker-1", lease=timedelta(hours=2))
    assert claim is not None
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.complete_time is not None and instance.complete_time - instance.create_time == timedelta(hours=1)
    assert test.errors(workflow_id)[-1].error_type == "liteflow.core.StepTimeoutError"
    assert test.host.submit_activity_success(claim.token, "too late") is False
    assert test.host.get_pending_activity("charge-card", "worker-2") is None


def test_bad_tokens_and_arguments_are_typed_errors() -> None:
    test, workflow_id = started()
    with pytest.raises(InvalidArgumentError, match="not an activity token"):
        test.host.submit_activity_success("garbage", 1)
    with pytest.raises(InvalidArgumentError, match="never handed out"):
        test.host.submit_activity_success(f"{workflow_id}:{test.instance(workflow_id).execution_pointers[1].id}:0:7")
    with pytest.raises(InvalidArgumentError, match="worker id"):
        test.host.get_pending_activity("charge-card", "")
    with pytest.raises(InvalidArgumentError, match="lease"):
        test.host.get_pending_activity("charge-card", "w", lease=timedelta(0))


# -- a worker process killed while it holds a claim -----------------------------------------


def test_a_sigkilled_workers_claim_is_handed_out_again_and_the_result_applied_once(
    postgres_url: str, schema: Any, redis_url: str, redis_prefix: Any, tmp_path: Path
) -> None:
    store, prefix = f"{postgres_url}?schema={schema()}", redis_prefix()
    queue, lock = f"{redis_url}?prefix={prefix}", f"{redis_url}?prefix={prefix}&lease=2"
    lease = 2.0
    host = configure_workflow_host(persistence_service=store, queue_service=queue, lock_service=lock, poll_interval=0.5)
    host.register_workflow(Charge())
    host.start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    err = tmp_path / "worker.err"
    try:
        workflow_id = host.start_workflow("Charge", data={"log": [], "amount": 42})
        script = str(Path(__file__).with_name("activity_worker.py"))
        with open(err, "wb") as stderr:
            worker = subprocess.Popen(
                [sys.executable, script, store, queue, lock, "charge-card", "worker-A", str(lease)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert worker.stdout is not None
        line = worker.stdout.readline()  # the worker prints its claim, then holds it until killed
        assert line, f"the worker exited without a claim:\n{err.read_text()}"
        claimed_at = time.monotonic()
        first = json.loads(line)
        assert first["parameters"] == {"amount": 42}
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

        # Nobody else gets it while the dead worker's lease runs; then it is handed out again.
        again = host.get_pending_activity("charge-card", "worker-B", timeout=20, lease=timedelta(seconds=30))
        assert again is not None
        assert time.monotonic() - claimed_at >= lease - 0.1
        assert again.token != first["token"] and again.parameters == first["parameters"]
        assert host.submit_activity_success(again.token, "receipt-B") is True
        instance = host.wait_for_workflow(workflow_id, timeout=30)
        assert instance.status is WorkflowStatus.COMPLETE
        assert instance.data["receipt"] == "receipt-B" and instance.data["log"] == ["start", "done"]
        # The dead worker's token (say its result was retried later): ignored, nothing changes.
        assert host.submit_activity_success(first["token"], "receipt-A") is False
        assert host.get_workflow_instance(workflow_id).revision == instance.revision
        assert host.get_pending_activity("charge-card", "worker-C") is None
    finally:
        host.stop()
        host.persistence.close()


# -- the same on the durable stores: the lease is only store records, so every provider has it ---


try:
    from tests.servers import mongo_url
except ImportError:  # tests/ itself on sys.path
    from servers import mongo_url  # type: ignore[no-redef]  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "mongo":
        pytest.importorskip("pymongo")
        from liteflow.providers.mongo import MongoPersistenceProvider

        return MongoPersistenceProvider(request.getfixturevalue("mongo_url"), f"liteflow_test_{new_id()[:12]}")
    postgres_url: str = request.getfixturevalue("postgres_url")
    return f"{postgres_url}?schema={request.getfixturevalue('schema')()}"


def test_leases_and_results_on_a_durable_store(store: Any) -> None:
    test = WorkflowTestHost(Charge(), persistence=store)
    try:
        workflow_id = test.start_workflow("Charge", data={"log": [], "amount": 7})
        first = test.host.get_pending_activity("charge-card", "worker-1", lease=LEASE)
        assert first is not None and first.parameters == {"amount": 7}
        assert test.host.get_pending_activity("charge-card", "worker-2") is None
        test.advance(LEASE)
        second = test.host.get_pending_activity("charge-card", "worker-2")
        assert second is not None and second.token != first.token
        assert test.host.submit_activity_success(second.token, "r2")
        test.run_until_idle()
        assert test.host.submit_activity_success(first.token, "r1") is False
        instance = test.instance(workflow_id)
        assert instance.data["receipt"] == "r2" and instance.data["log"] == ["start", "done"]
        assert test.host.get_pending_activity("charge-card", "worker-3") is None
    finally:
        test.host.persistence.close()
