"""The host end to end on the in-memory providers: API contracts, bad input, wake-ups."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest

from liteflow.core import (
    ConfigurationError,
    DuplicateWorkflowError,
    ExecutionResult,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    PointerStatus,
    SerializationError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowStatus,
    WorkflowStep,
    WorkflowTimeoutError,
    configure_workflow_host,
)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Simple(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).then(Noop).then(Noop)


class Other(Workflow):
    def id(self) -> str:
        return "Simple"

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop)


def test_id_defaults_to_class_name_and_version_to_one() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(Simple())
        instance = host.wait_for_workflow(host.start_workflow("Simple", 1, None), timeout=5)
        assert instance.workflow_definition_id == "Simple" and instance.version == 1
        assert instance.status is WorkflowInstance.COMPLETE
        assert instance.complete_time is not None and instance.complete_time >= instance.create_time
        assert len(instance.execution_pointers) == 3


def test_bad_input_is_rejected_at_once_with_a_named_error() -> None:
    host = configure_workflow_host()
    host.register_workflow(Simple())
    host.register_workflow(Simple())  # the same definition twice is harmless
    with pytest.raises(DuplicateWorkflowError, match="'Simple' version 1"):
        host.register_workflow(Other())
    with pytest.raises(WorkflowNotRegisteredError, match="'Nope'"):
        host.start_workflow("Nope", 1, None)
    with pytest.raises(WorkflowNotRegisteredError, match=r"version 2 .*\[1\]"):
        host.start_workflow("Simple", 2, None)
    with pytest.raises(InvalidArgumentError, match="event name"):
        host.publish_event("", "key", None)
    with pytest.raises(InvalidArgumentError, match="event key"):
        host.publish_event("name", None, None)
    with pytest.raises(SerializationError, match="data.callback"):
        host.start_workflow("Simple", 1, {"callback": lambda: None})
    with pytest.raises(WorkflowNotFoundError):
        host.get_workflow_instance("no-such-id")
    with pytest.raises(ConfigurationError, match="unknown host option 'pol_interval'"):
        configure_workflow_host(pol_interval=3)
    with pytest.raises(ConfigurationError, match="no persistence provider for URL"):
        configure_workflow_host(persistence_service="nosuch://x")
    assert issubclass(SerializationError, LiteFlowError)


def test_workflows_started_before_start_run_once_the_host_starts() -> None:
    host = configure_workflow_host()
    host.register_workflow(Simple())
    workflow_id = host.start_workflow("Simple", None, None)
    assert host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE
    with host:
        assert host.wait_for_workflow(workflow_id, 5).status is WorkflowStatus.COMPLETE


def test_a_stopped_host_cannot_restart() -> None:
    host = configure_workflow_host()
    host.start()
    host.stop()
    with pytest.raises(InvalidOperationError):
        host.start()


def test_each_default_host_has_its_own_store() -> None:
    first, second = configure_workflow_host(), configure_workflow_host()
    first.register_workflow(Simple())
    workflow_id = first.start_workflow("Simple", 1, None)
    with pytest.raises(WorkflowNotFoundError):
        second.get_workflow_instance(workflow_id)


class Flaky(StepBody):
    calls = 0

    def run(self, context: StepExecutionContext) -> None:
        Flaky.calls += 1
        if Flaky.calls < 3:
            raise ValueError(f"failure {Flaky.calls}")


class Retrying(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Flaky).on_error(WorkflowStep.RETRY, timedelta(milliseconds=100))


def test_retry_honours_the_interval_and_records_every_error() -> None:
    Flaky.calls = 0
    with configure_workflow_host() as host:
        host.register_workflow(Retrying())
        started = time.monotonic()
        instance = host.wait_for_workflow(host.start_workflow("Retrying"), timeout=5)
        elapsed = time.monotonic() - started
    assert instance.status is WorkflowStatus.COMPLETE
    assert Flaky.calls == 3
    assert 0.2 <= elapsed < 3
    errors = host.get_workflow_errors(instance.id)
    assert [(e.attempt, e.message) for e in errors] == [(1, "failure 1"), (2, "failure 2")]
    assert all("ValueError" in e.traceback for e in errors)


class AlwaysFails(StepBody):
    calls = 0
    fifth_call = threading.Event()

    def run(self, context: StepExecutionContext) -> None:
        AlwaysFails.calls += 1
        if AlwaysFails.calls == 5:
            AlwaysFails.fifth_call.set()
        raise RuntimeError("nope")


class Hopeless(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(AlwaysFails).on_error(WorkflowStep.RETRY, timedelta(milliseconds=200))


def test_a_step_that_keeps_failing_does_not_spin() -> None:
    AlwaysFails.calls = 0
    AlwaysFails.fifth_call.clear()
    with configure_workflow_host() as host:
        host.register_workflow(Hopeless())
        cpu_before, started = time.process_time(), time.monotonic()
        host.start_workflow("Hopeless")
        assert AlwaysFails.fifth_call.wait(timeout=10), "the step was not retried"
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_before
    # Five attempts 200 ms apart take at least 0.8 s (retries honour the interval, no spinning),
    # and the host sleeps between them.
    assert elapsed >= 0.8, f"five attempts in {elapsed:.2f} s"
    assert cpu < 0.5 * max(elapsed, 1.0), f"a failing workflow used {cpu:.2f} s of CPU in {elapsed:.2f} s"


def test_an_idle_host_uses_almost_no_cpu() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(Simple())
        cpu_before = time.process_time()
        time.sleep(0.5)  # what is measured: a spinning thread would use about all of it
        cpu = time.process_time() - cpu_before
    assert cpu < 0.1, f"idle host used {cpu:.2f} s of CPU in 0.5 s"


class Sleeper(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult | None:
        if context.persistence_data is None:
            return ExecutionResult.sleep(timedelta(milliseconds=300), "slept")
        return None


class Sleeping(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Sleeper)


def test_a_sleeping_step_wakes_on_time_not_at_the_next_poll() -> None:
    with configure_workflow_host(poll_interval=60) as host:
        host.register_workflow(Sleeping())
        started = time.monotonic()
        host.wait_for_workflow(host.start_workflow("Sleeping"), timeout=5)
        assert 0.3 <= time.monotonic() - started < 1.5


class Waits(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: data["key"]).output("got", lambda s: s.event_data)


def test_events_wake_promptly_and_each_waiting_workflow_gets_its_event_once() -> None:
    with configure_workflow_host(poll_interval=60) as host:
        host.register_workflow(Waits())
        ids = [host.start_workflow("Waits", 1, {"key": "k1" if n % 2 else "k2"}) for n in range(20)]
        deadline = time.monotonic() + 5
        while any(host.get_workflow_instance(i).next_execution is not None for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        host.publish_event("go", "k1", "one")
        for workflow_id in ids[1::2]:
            assert host.wait_for_workflow(workflow_id, 5).data["got"] == "one"
        assert time.monotonic() - started < 1.0
        for workflow_id in ids[0::2]:
            with pytest.raises(WorkflowTimeoutError):
                host.wait_for_workflow(workflow_id, 0.05)
        host.publish_event("go", "k2", "two")
        for workflow_id in ids[0::2]:
            instance = host.wait_for_workflow(workflow_id, 5)
            assert instance.data["got"] == "two"
            assert [p.event_data for p in instance.execution_pointers if p.event_name] == ["two"]


def test_stop_waits_for_a_running_step() -> None:
    running, finished = threading.Event(), threading.Event()

    class Slow(StepBody):
        def run(self, context: StepExecutionContext) -> None:
            running.set()
            time.sleep(0.3)  # the step's own work, under way when stop() is called
            finished.set()

    class SlowFlow(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Slow)

    host = configure_workflow_host()
    host.register_workflow(SlowFlow())
    host.start()
    host.start_workflow("SlowFlow")
    assert running.wait(timeout=10), "the step never started"
    host.stop()
    assert finished.is_set()


@pytest.mark.skipif(os.cpu_count() is None, reason="needs cpu count")
def test_many_workflows_complete() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(Simple())
        ids = [host.start_workflow("Simple") for _ in range(500)]
        for workflow_id in ids:
            assert host.wait_for_workflow(workflow_id, 30).status is WorkflowStatus.COMPLETE


class Poison(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["handle"] = threading.Lock()


class Poisoning(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).then(Poison).then(Noop)


def test_a_step_that_leaves_unsaveable_data_suspends_the_workflow_with_the_reason() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(Poisoning())
        workflow_id = host.start_workflow("Poisoning", 1, {"kept": 1})
        deadline = time.monotonic() + 5
        while host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        instance = host.get_workflow_instance(workflow_id)
        assert instance.status is WorkflowStatus.SUSPENDED
        assert instance.data == {"kept": 1}
        [error] = host.get_workflow_errors(workflow_id)
        assert "data.handle" in error.message


def test_purge_removes_only_old_finished_workflows() -> None:
    with configure_workflow_host() as host:
        host.register_workflow(Simple())
        host.register_workflow(Waits())
        done = host.wait_for_workflow(host.start_workflow("Simple"), 5)
        waiting = host.start_workflow("Waits", 1, {"key": "x"})
        assert host.purge(older_than=timedelta(hours=1)) == 0
        assert host.purge(older_than=timedelta(0)) == 1
        with pytest.raises(WorkflowNotFoundError):
            host.get_workflow_instance(done.id)
        assert host.get_workflow_instance(waiting).status is WorkflowStatus.RUNNABLE
        with pytest.raises(InvalidArgumentError):
            host.purge(WorkflowStatus.RUNNABLE)


class TwoWaits(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: "k").output(
            "first", lambda s: s.event_data
        ).wait_for("go", lambda data, context: "k").output("second", lambda s: s.event_data)


def test_an_instance_consumes_each_event_once_even_with_two_waits_for_it() -> None:
    with configure_workflow_host(poll_interval=60) as host:
        host.register_workflow(TwoWaits())
        workflow_id = host.start_workflow("TwoWaits", 1, {})
        host.publish_event("go", "k", "one")
        deadline = time.monotonic() + 10
        while host.get_workflow_instance(workflow_id).data != {"first": "one"}:  # polled, with a deadline
            assert time.monotonic() < deadline, "the first wait never got the event"
            time.sleep(0.01)
        while not any(
            p.status is PointerStatus.WAITING_FOR_EVENT
            for p in host.get_workflow_instance(workflow_id).execution_pointers
        ):
            assert time.monotonic() < deadline, "the second wait was never reached"
            time.sleep(0.01)
        # Now at the second wait, with "one" consumed: it must not take "one" again.
        with pytest.raises(WorkflowTimeoutError):
            host.wait_for_workflow(workflow_id, 0.3)
        assert host.get_workflow_instance(workflow_id).data == {"first": "one"}
        host.publish_event("go", "k", "two")
        assert host.wait_for_workflow(workflow_id, 5).data == {"first": "one", "second": "two"}


class OneWait(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: "k").output("got", lambda s: s.event_data)


class NodeDied(BaseException):
    """Stands for a SIGKILL: nothing after it runs, no handler catches it."""


def test_an_event_is_not_lost_when_a_node_dies_between_saving_a_wait_and_looking_for_events(
    tmp_path: pytest.TempPathFactory,
) -> None:
    store = f"sqlite:///{tmp_path}/store.db"
    node1 = configure_workflow_host(store)
    node1.register_workflow(OneWait())
    workflow_id = node1.start_workflow("OneWait", 1, {})
    event_id = node1.publish_event("go", "k", "first")
    node1._delivery.process(event_id)  # fanned out before anyone waits: marked processed

    def die(*args: object) -> None:
        raise NodeDied

    node1._delivery.deliver_published = die  # type: ignore[method-assign]
    with pytest.raises(NodeDied):
        node1.run_until_idle()  # saves the subscription, then "dies"

    node2 = configure_workflow_host(store, poll_interval=0.1)
    node2.register_workflow(OneWait())
    with node2:
        assert node2.wait_for_workflow(workflow_id, timeout=5).data == {"got": "first"}
