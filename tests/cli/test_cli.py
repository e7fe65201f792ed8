"""The ``liteflow`` command against a running ``liteflow worker``, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
import uuid

from polling import wait_until

from liteflow.core import PointerStatus, WorkflowStatus

from .cli_harness import DEADLINE, LITEFLOW, Backend, Worker


def unique() -> str:
    return uuid.uuid4().hex[:10]


def row_of(output: str, workflow_id: str) -> str:
    """The table row of a workflow (one line: piped output is not wrapped)."""
    rows = [line for line in output.splitlines() if line.startswith(workflow_id)]
    assert len(rows) == 1, output
    return rows[0]


def test_a_failed_step_shows_in_list_show_and_errors_and_retry_runs_it_again(backend: Backend, worker: Worker) -> None:
    ref = unique()
    (backend.dir / f"broken-{ref}").touch()
    workflow_id = backend.start("Order", {"ref": ref}, reference=ref)
    backend.wait_for(workflow_id, WorkflowStatus.SUSPENDED)

    listed = backend.run("list", "--reference", ref)
    assert listed.returncode == 0, listed.stderr
    row = row_of(listed.stdout, workflow_id)
    assert row.split()[1:4] == ["Order", "v1", "suspended"]
    assert "#2" in row, "the current step, by number without --app"
    as_json = json.loads(backend.run("list", "--reference", ref, "--json").stdout)
    assert [(w["id"], w["status"], w["current_steps"]) for w in as_json] == [
        (workflow_id, "suspended", [{"step_id": 2, "step": None, "status": "failed"}])
    ]

    shown = backend.run("show", workflow_id, app=True)
    assert shown.returncode == 0, shown.stderr
    assert "reserve (#0)  complete" in shown.stdout
    assert "Charge (#2)   failed" in shown.stdout
    assert "RuntimeError: card declined" in shown.stdout and "Traceback (most recent call last)" in shown.stdout
    details = json.loads(backend.run("show", workflow_id, "--json", app=True).stdout)
    assert details["data"] == {"ref": ref, "trail": ["reserve"]}
    assert [(s["step"], s["status"], s["attempts"]) for s in details["steps"]] == [
        ("reserve", "complete", 1),
        ("Charge", "failed", 1),
    ]
    [error] = details["errors"]
    assert (error["step"], error["message"], error["attempt"]) == ("Charge", "card declined", 1)
    assert 'raise RuntimeError("card declined")' in error["traceback"]

    recent = json.loads(backend.run("errors", "--json", "--since", "1h").stdout)
    assert any(e["workflow_id"] == workflow_id and e["message"] == "card declined" for e in recent)
    assert [e["time"] for e in recent] == sorted((e["time"] for e in recent), reverse=True), "newest first"
    one = backend.run("errors", workflow_id)
    assert one.returncode == 0 and "builtins.RuntimeError: card declined" in one.stdout

    (backend.dir / f"broken-{ref}").unlink()
    retried = backend.run("retry", workflow_id)
    assert (retried.returncode, retried.stdout.strip()) == (0, f"retried {workflow_id}")
    instance = backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert instance.data["trail"] == ["reserve", "charge", "ship"]
    assert backend.effects(workflow_id) == ["reserve", "charge", "ship"], "reserve did not run again"


def test_retry_from_an_earlier_step_and_fork(backend: Backend, worker: Worker) -> None:
    ref = unique()
    (backend.dir / f"broken-{ref}").touch()
    workflow_id = backend.start("Order", {"ref": ref}, reference=ref)
    backend.wait_for(workflow_id, WorkflowStatus.SUSPENDED)
    (backend.dir / f"broken-{ref}").unlink()

    retried = backend.run("retry", workflow_id, "--from-step", "reserve", "--compensate", app=True)
    assert retried.returncode == 0, retried.stderr
    instance = backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert backend.effects(workflow_id) == ["reserve", "unreserve", "reserve", "charge", "ship"]
    assert instance.data["trail"] == ["reserve", "unreserve", "reserve", "charge", "ship"]

    forked = backend.run("fork", workflow_id, "--from-step", "3")  # by number: no --app needed
    assert forked.returncode == 0, forked.stderr
    fork_id = forked.stdout.strip()
    assert fork_id != workflow_id
    fork = backend.wait_for(fork_id, WorkflowStatus.COMPLETE)
    assert fork.data["trail"] == [*instance.data["trail"], "ship"], "a copy of the data, from ship"
    assert backend.effects(fork_id) == ["ship"]
    assert backend.host.get_workflow_instance(workflow_id).revision == instance.revision, "the original is untouched"


def test_publish_resumes_a_waiting_workflow_in_the_worker(backend: Backend, worker: Worker) -> None:
    key = unique()
    workflow_id = backend.start("Greeting", {"key": key})

    def waiting() -> bool:
        pointers = backend.host.get_workflow_instance(workflow_id).execution_pointers
        return any(p.status is PointerStatus.WAITING_FOR_EVENT for p in pointers)

    wait_until(waiting, "the workflow to wait for its event")
    shown = backend.run("show", workflow_id, app=True)
    assert f"event 'go' key '{key}' (step WaitFor (#1))" in shown.stdout
    details = json.loads(backend.run("show", workflow_id, "--json").stdout)
    assert [(w["event_name"], w["event_key"], w["step_id"]) for w in details["waiting_for"]] == [("go", key, 1)]
    published = backend.run("publish", "go", key, "--data", '{"amount": 5, "items": ["a", "b"]}')
    assert published.returncode == 0, published.stderr
    assert len(published.stdout.strip()) == 32, "prints the event id"
    instance = backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert instance.data["got"] == {"amount": 5, "items": ["a", "b"]}
    assert backend.effects(workflow_id) == ["greet", "received"]


def test_suspend_resume_and_terminate_a_running_workflow(backend: Backend, worker: Worker) -> None:
    workflow_id = backend.start("Slow", {})
    wait_until(lambda: (backend.dir / f"{workflow_id}.started").exists(), "the slow step to start")
    suspended = backend.run("suspend", workflow_id)
    assert suspended.returncode == 0, suspended.stderr
    assert workflow_id in suspended.stdout
    assert backend.host.get_workflow_instance(workflow_id).status is WorkflowStatus.RUNNABLE, "the step still runs"
    (backend.dir / f"{workflow_id}.release").touch()
    instance = backend.wait_for(workflow_id, WorkflowStatus.SUSPENDED)
    assert instance.data["trail"] == ["slow:start", "slow:end"], "the running step's result is kept"
    assert backend.effects(workflow_id) == ["slow:start", "slow:end"], "nothing after it ran"

    resumed = backend.run("resume", workflow_id, app=True)
    assert (resumed.returncode, resumed.stdout.strip()) == (0, f"resumed {workflow_id}")
    backend.wait_for(workflow_id, WorkflowStatus.COMPLETE)
    assert backend.effects(workflow_id) == ["slow:start", "slow:end", "after"]

    doomed = backend.start("Slow", {})
    wait_until(lambda: (backend.dir / f"{doomed}.started").exists(), "the second slow step to start")
    terminated = backend.run("terminate", doomed)
    assert terminated.returncode == 0, terminated.stderr
    (backend.dir / f"{doomed}.release").touch()
    backend.wait_for(doomed, WorkflowStatus.TERMINATED)
    assert backend.effects(doomed) == ["slow:start", "slow:end"]
    again = backend.run("terminate", doomed)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: cannot terminate workflow {doomed}: it is terminated"


def test_bulk_terminate_only_shows_the_selection_without_yes(backend: Backend, worker: Worker) -> None:
    ref = unique()
    ids = [backend.start("Greeting", {"key": unique()}, reference=ref) for _ in range(3)]
    dry = backend.run("terminate", "--reference", ref, "--status", "runnable")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == "Would terminate 3 workflows:"
    assert sorted(line.strip() for line in dry.stdout.splitlines()[1:4]) == sorted(ids)
    assert "--yes" in dry.stdout
    assert all(backend.host.get_workflow_instance(i).status is WorkflowStatus.RUNNABLE for i in ids)
    first_two = backend.run("list", "--reference", ref, "--limit", "2")
    assert [line.split()[0] for line in first_two.stdout.splitlines()[1:]] == ids[:2], "oldest first"
    assert "the 2 oldest that match" in first_two.stderr

    done = backend.run("terminate", "--reference", ref, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("terminated ") and "of 3 workflows" in done.stdout
    for workflow_id in ids:
        backend.wait_for(workflow_id, WorkflowStatus.TERMINATED)
    nothing = backend.run("terminate", "--reference", ref, "--yes")
    assert (nothing.returncode, nothing.stdout.strip()) == (0, "No workflows match.")


def test_a_bulk_command_shows_a_progress_bar_on_a_terminal(backend: Backend, worker: Worker) -> None:
    ref = unique()
    ids = [backend.start("Greeting", {"key": unique()}, reference=ref) for _ in range(2)]
    terminal, child_side = pty.openpty()
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the command exited and the terminal closed
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    command = [str(LITEFLOW), "suspend", "--reference", ref, "--yes"]
    env = backend.environ(TERM="xterm", COLUMNS="100")
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=child_side, text=True) as process:
        os.close(child_side)
        output, _ = process.communicate(timeout=DEADLINE)
    reader.join(DEADLINE)
    os.close(terminal)
    assert process.returncode == 0
    assert output.startswith("suspended ") and "of 2 workflows" in output, "the count goes to stdout"
    shown = screen.decode(errors="replace")
    assert "suspend" in shown and "2/2" in shown, shown
    for workflow_id in ids:
        backend.wait_for(workflow_id, WorkflowStatus.SUSPENDED)


def test_purge_removes_workflows_that_ended_before_the_cutoff(backend: Backend, worker: Worker) -> None:
    ref = unique()
    workflow_id = backend.start("Greeting", {"key": ref}, reference=ref)
    assert backend.run("terminate", workflow_id).returncode == 0
    backend.wait_for(workflow_id, WorkflowStatus.TERMINATED)
    kept = backend.run("purge", "--older-than", "1h")
    assert kept.returncode == 0, kept.stderr
    assert backend.host.query_workflows(reference=ref) != [], "ended just now: kept"
    purged = backend.run("purge", "--older-than", "0s", "--status", "terminated")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("purged ")
    assert backend.host.query_workflows(reference=ref) == []
    refused = backend.run("purge", "--older-than", "0s", "--status", "runnable")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "not runnable ones" in refused.stderr


def test_unknown_ids_and_refused_operations_fail_with_one_line(backend: Backend) -> None:
    for args in (["show", "nope"], ["retry", "nope"], ["suspend", "nope"], ["errors", "nope"], ["fork", "nope"]):
        result = backend.run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr == "error: no workflow instance with id nope\n", args
        assert result.stdout == ""
    ref = unique()
    workflow_id = backend.start("Greeting", {"key": ref}, reference=ref)
    named = backend.run("retry", workflow_id, "--from-step", "greet")
    assert named.returncode == 1
    assert named.stderr.startswith("error: cannot retry workflow") and named.stderr.count("\n") == 1
    backend.host.terminate_workflow(workflow_id)
    # The module's worker may hold the lock (running greet): it then applies the request itself.
    backend.wait_for(workflow_id, WorkflowStatus.TERMINATED)
    by_name = backend.run("retry", workflow_id, "--from-step", "greet")
    assert by_name.returncode == 1, "step names need the definitions"
    assert "not registered" in by_name.stderr and "--app" in by_name.stderr
    unknown = backend.run("retry", workflow_id, "--from-step", "nosuch", app=True)
    assert unknown.returncode == 2
    assert "has no step named 'nosuch'; its steps: " in unknown.stderr
