"""``liteflow worker`` stopping on SIGTERM with a step running, and a new worker taking over."""

from __future__ import annotations

import signal
from collections.abc import Callable

from polling import wait_until

from liteflow.core import WorkflowStatus

from .cli_harness import Backend, Worker


def start_slow(backend: Backend) -> str:
    workflow_id = backend.start("Slow", {})
    wait_until(lambda: (backend.dir / f"{workflow_id}.started").exists(), "the slow step to start")
    return workflow_id


def test_sigterm_lets_the_running_step_finish_and_a_restarted_worker_completes_the_workflow(
    backend: Backend, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("--concurrency", "2")
    assert "Greeting v1, Order v1, Refund v1, Slow v1; 2 threads" in worker.ready
    workflow_id = start_slow(backend)
    worker.process.send_signal(signal.SIGTERM)
    worker.expect("liteflow worker stopping")
    (backend.dir / f"{workflow_id}.release").touch()  # the step ends while the worker stops
    assert worker.wait() == 0, "".join(worker.log)
    instance = backend.host.get_workflow_instance(workflow_id)
    # The host may finish the turn it was in (the next, quick step too) before it stops.
    assert instance.data["trail"][:2] == ["slow:start", "slow:end"], "the finished step was saved"
    assert backend.effects(workflow_id) == instance.data["trail"], "every step that ran was saved"

    restarted = start_worker()
    backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert backend.effects(workflow_id) == ["slow:start", "slow:end", "after"], "nothing lost, nothing twice"
    assert restarted.stop(signal.SIGINT) == 0, "".join(restarted.log)


def test_a_step_outliving_the_stop_timeout_is_handed_back_and_runs_again(
    backend: Backend, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("--stop-timeout", "0.2")
    workflow_id = start_slow(backend)
    assert worker.stop() == 0, "".join(worker.log)
    assert backend.host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
    assert backend.effects(workflow_id) == ["slow:start"], "the step was still running when the worker left"

    (backend.dir / f"{workflow_id}.release").touch()
    restarted = start_worker()
    instance = backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert instance.data["trail"] == ["slow:start", "slow:end", "after"], "the saved run is the second one"
    assert backend.effects(workflow_id) == ["slow:start", "slow:start", "slow:end", "after"]
    assert restarted.stop() == 0, "".join(restarted.log)


def test_a_second_signal_stops_at_once_and_hands_the_running_step_back(
    backend: Backend, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker("--stop-timeout", "60")
    workflow_id = start_slow(backend)
    worker.process.send_signal(signal.SIGTERM)
    worker.expect("liteflow worker stopping")
    assert worker.stop(signal.SIGINT) == 1, "the second signal does not wait for the step"
    assert backend.effects(workflow_id) == ["slow:start"]
    (backend.dir / f"{workflow_id}.release").touch()
    restarted = start_worker()
    backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert backend.effects(workflow_id) == ["slow:start", "slow:start", "slow:end", "after"]
    assert restarted.stop() == 0
