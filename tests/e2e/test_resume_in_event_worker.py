"""An event worker that resumes a waiting step goes on with the workflow's turn itself, instead of
queueing it for a workflow worker (docs/architecture.md, "One turn of a workflow"): what is queued
and which thread runs the resumed step show it, and the guarantees of a turn still hold."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from blocking_steps import Gate
from polling import wait_until

from liteflow.core import (
    QueueType,
    SingleNodeQueueProvider,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    WorkflowStatus,
    configure_workflow_host,
)


class RecordingQueue(SingleNodeQueueProvider):
    """The in-memory queue, keeping the workflow ids it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.workflows: list[str] = []

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        if queue is QueueType.WORKFLOW:
            self.workflows.append(item_id)
        super().enqueue(queue, item_id, priority)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Record(StepBody):
    """Notes the thread it runs in, by workflow id."""

    threads: ClassVar[dict[str, str]] = {}

    def run(self, context: StepExecutionContext) -> None:
        Record.threads[context.workflow.id] = threading.current_thread().name


class Resumes(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: data["key"]).then(Record).then(Noop)


class ResumesIntoGate(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: "gated").then(Gate).then(Record)


class Blocks(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Gate)


def host_with(queue: RecordingQueue, workflows: list[Workflow], **options: Any) -> WorkflowHost:
    host = configure_workflow_host(queue_service=queue, idle_timeout=0.05, poll_interval=60, **options)
    for workflow in workflows:
        host.register_workflow(workflow)
    return host


def parked(host: WorkflowHost, workflow_id: str) -> bool:
    return host.get_workflow_instance(workflow_id).next_execution is None


def test_the_resumed_workflow_runs_on_without_being_queued_again() -> None:
    queue = RecordingQueue()
    host = host_with(queue, [Resumes()])
    workflow_id = host.start_workflow("Resumes", 1, {"key": "k"})
    host.run_until_idle()
    assert parked(host, workflow_id)
    queue.workflows.clear()
    host.publish_event("go", "k")
    assert host.run_until_idle() == 1  # the event's item only: its worker ran the rest
    assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.COMPLETE
    assert queue.workflows == []


def test_an_event_that_wakes_many_workflows_queues_all_but_the_last() -> None:
    queue = RecordingQueue()
    host = host_with(queue, [Resumes()])
    ids = [host.start_workflow("Resumes", 1, {"key": "many"}) for _ in range(4)]
    host.run_until_idle()
    queue.workflows.clear()
    host.publish_event("go", "many")
    assert host.run_until_idle() == 4  # the event, then the three it queued
    assert all(host.get_workflow_instance(i).status is WorkflowStatus.COMPLETE for i in ids)
    assert len(queue.workflows) == 3 and len(set(queue.workflows)) == 3
    assert set(ids) - set(queue.workflows) != set()


def test_on_a_started_host_the_event_worker_runs_the_resumed_step() -> None:
    queue = RecordingQueue()
    with host_with(queue, [Resumes()]) as host:
        workflow_id = host.start_workflow("Resumes", 1, {"key": "started"})
        wait_until(lambda: parked(host, workflow_id), "the workflow to reach its wait")
        queue.workflows.clear()
        host.publish_event("go", "started")
        assert host.wait_for_workflow(workflow_id, 10).status is WorkflowStatus.COMPLETE
    assert Record.threads[workflow_id].startswith("liteflow-event-")
    assert workflow_id not in queue.workflows


def test_a_terminate_asked_while_the_resumed_step_runs_is_applied_before_the_next_step() -> None:
    Gate.reset()
    queue = RecordingQueue()
    with host_with(queue, [ResumesIntoGate()]) as host:
        workflow_id = host.start_workflow("ResumesIntoGate", 1, {})
        wait_until(lambda: parked(host, workflow_id), "the workflow to reach its wait")
        host.publish_event("go", "gated")
        assert Gate.entered.wait(10)
        host.terminate_workflow(workflow_id)  # recorded: the event worker holds the lock
        Gate.opened.set()
        assert host.wait_for_workflow(workflow_id, 10).status is WorkflowStatus.TERMINATED
    assert workflow_id not in Record.threads


def test_with_every_turn_slot_taken_the_resumed_workflow_is_queued() -> None:
    Gate.reset()
    queue = RecordingQueue()
    with host_with(queue, [Resumes(), Blocks()], max_concurrent_workflows=1) as host:
        waiting = host.start_workflow("Resumes", 1, {"key": "busy"})
        wait_until(lambda: parked(host, waiting), "the workflow to reach its wait")
        blocking = host.start_workflow("Blocks")
        assert Gate.entered.wait(10)  # the only workflow worker, and so the only slot, is taken
        queue.workflows.clear()
        host.publish_event("go", "busy")
        wait_until(lambda: waiting in queue.workflows, "the resumed workflow to be queued")
        assert host.get_workflow_instance(waiting).status is WorkflowStatus.RUNNABLE
        Gate.opened.set()
        assert host.wait_for_workflow(blocking, 10).status is WorkflowStatus.COMPLETE
        assert host.wait_for_workflow(waiting, 10).status is WorkflowStatus.COMPLETE
    assert Record.threads[waiting].startswith("liteflow-workflow-")
