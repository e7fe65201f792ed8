"""``liteflow graph`` through the real console script: a definition as Mermaid, dot or JSON, and an
instance's current step highlighted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from polling import wait_until

from liteflow.core import configure_workflow_host

from . import cli_workflows
from .cli_harness import LITEFLOW, WORKFLOWS


def liteflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LITEFLOW), *args], capture_output=True, text=True, timeout=60)


def test_a_workflow_is_drawn_as_mermaid_dot_or_json() -> None:
    mermaid = liteflow("graph", f"{WORKFLOWS}:Greeting")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.splitlines() == [
        "flowchart TD",
        '    s0["Greet"]',
        '    s1(["wait_for go"])',
        '    s2["Received"]',
        "    s0 --> s1",
        "    s1 --> s2",
    ]
    dot = liteflow("graph", str(WORKFLOWS), "--workflow", "Greeting", "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph") and "wait_for go" in dot.stdout
    graph = json.loads(liteflow("graph", f"{WORKFLOWS}:Order", "--format", "json").stdout)
    assert [node["label"] for node in graph["nodes"]][:1] == ["reserve: Reserve"]


def test_several_workflows_need_a_choice_and_mistakes_are_one_line() -> None:
    several = liteflow("graph", str(WORKFLOWS))
    assert several.returncode == 2
    assert several.stderr.startswith("error: ") and "--workflow" in several.stderr
    assert len(several.stderr.splitlines()) == 1
    unknown = liteflow("graph", str(WORKFLOWS), "--workflow", "Nope")
    assert unknown.returncode == 2 and "Nope" in unknown.stderr and len(unknown.stderr.splitlines()) == 1


def test_an_instance_s_current_step_is_highlighted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITEFLOW_TEST_DIR", str(tmp_path))  # where the test workflows record their steps
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with configure_workflow_host(store) as host:
        host.register_workflow(cli_workflows.Greeting())
        workflow_id = host.start_workflow("Greeting", data={"key": "k"})
        wait_until(
            lambda: host.get_workflow_instance(workflow_id).execution_pointers[-1].event_name == "go",
            "the workflow to wait for its event",
        )
    drawn = liteflow("graph", f"{WORKFLOWS}:Greeting", "--store", store, "--instance", workflow_id)
    assert drawn.returncode == 0, drawn.stderr
    plain = liteflow("graph", f"{WORKFLOWS}:Greeting").stdout
    added = set(drawn.stdout.splitlines()) - set(plain.splitlines())
    assert "    class s1 active" in added, drawn.stdout  # the wait_for step, and no other
    assert not [line for line in added if line.strip().startswith("class ") and "s1" not in line]
