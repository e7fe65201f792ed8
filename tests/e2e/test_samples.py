"""Every sample runs to completion on its own and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

EXPECTED: dict[str, list[str]] = {
    "01-hello-world.py": ["Hello world", "Goodbye", "is complete"],
    "02-passing-data.py": ["2 + 3 = 5", "value3 = 5 (complete)"],
    "03-waiting-for-events.py": ["Hello world", "Goodbye", "captured_value = hello (complete)"],
    "04-foreach.py": ["doing stuff...abc", "doing stuff...def", "doing stuff...xyz", "Goodbye"],
    "05-if.py": ["--- value1 = 5", "--- value1 = 1"],
    "06-while.py": ["round 1", "round 2", "round 3", "value1 = 3 after the loop (complete)"],
    "09-error-retry.py": [
        "attempt 3",
        "complete after 3 attempts",
        "error on attempt 1: service unavailable (attempt 1)",
        "error on attempt 2: service unavailable (attempt 2)",
    ],
    "10-saga.py": [
        "take payment",
        "cancel flight",
        "cancel hotel",
        "notify customer",
        "Workflow is complete",
        "recorded error: card declined",
    ],
    "11-parallel.py": [
        "prices: fetching (async)",
        "prices: done",
        "stock: checked",
        "both branches done",
        "pack teapot",
        "all packed",
        "Workflow is complete",
    ],
    "12-outcomes.py": ["--- total = 50", "--- total = 5000", "outcome of CheckRisk: 'high' (complete)"],
    "13-retry-policy.py": ["calling the payment API (attempt 4)", "Workflow is terminated", "attempt 4 at +"],
    "14-scheduling.py": [
        "after the delay",
        "tick 3",
        "scheduled reminder",
        "no approval in time: escalated",
        "Workflow is complete after 3 ticks",
    ],
    "15-sub-workflow.py": [
        "child: 3 kg to NL costs 17",
        "parent: shipping is 17",
        "Workflow is complete, shipping = 17",
        "QuoteWorkflow is complete; started by this order: True",
    ],
    "16-controls-and-lifecycle.py": [
        "event: workflow_suspended (order-1)",
        "event: workflow_terminated (order-2)",
        "suspended: ['order-1']",
        "order-1 is still suspended",
        "event: workflow_resumed (order-1)",
        "ship order-1",
        "Prepare of order-1 took",
        "event: workflow_completed (order-1)",
        "order-1: complete",
        "order-2: terminated",
    ],
    "17-testing.py": ["three days of workflow time took", "ok"],
    "18-fastapi.py": [
        "POST /orders/42 twice: order-42 and order-42",
        "open orders: ['order-42']",
        "order 42: complete, teapot paid with card",
        "GET /orders/7: 404",
    ],
    "19-yaml-definition.py": [
        's1{{"pack: for_each data.lines"}}',
        "validate: 3 lines, total 63.40",
        "pack: cups",
        "pack: teapot",
        "gift: a sample of tea",
        "ship: o-1",
        "OrderWorkflow is complete: paid 63.40",
    ],
    "22-cron-schedule.py": [
        "report nightly-report@2030-03-30T01:30:00Z ran at Sat 02:30 CET",
        "report nightly-report@2030-03-31T01:00:00Z ran at Sun 03:00 CEST",
        "report nightly-report@2030-04-01T00:30:00Z ran at Mon 02:30 CEST",
        "paused: [('nightly-report', True)]",
        "schedules left: []",
    ],
    "23-concurrency-limits.py": [
        "{'A-1': 'runnable', 'A-2': 'queued', 'B-1': 'runnable', 'A-3': 'queued'}",
        "settled A-1\npaying A-2 for customer alice",
        "settled A-2\npaying A-3 for customer alice",
        "{'A-1': 'complete', 'A-2': 'complete', 'B-1': 'complete', 'A-3': 'complete'}",
    ],
    "20-activities.py": [
        "worker-1 claimed {'order': 'A-1', 'amount': 120} and died",
        "worker-2 claimed {'order': 'A-1', 'amount': 120}",
        "order A-1: paid, receipt R-A-1",
        "Workflow is complete, receipt R-A-1",
        "worker-1 comes back and submits: False",
    ],
    "21-user-task.py": [
        "bob cannot answer: user task",
        "order-1: rejected",
        "order-1: closed by alice",
        "escalated to director: True",
        "order-2: refunded",
        "Workflow is complete, decided by director",
    ],
    "demo.py": ["validate: 3 items, total 63.40", "pack: cups", "pack: tea", "pack: teapot", "workflow complete"],
}


def run_sample(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SAMPLES / name), *args],
        cwd=cwd,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_seed_samples_exist() -> None:
    # 07 and 08 (MongoDB, Azure) need their services and are tested with their providers.
    assert set(EXPECTED) <= {p.name for p in SAMPLES.glob("*.py")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_runs(name: str, tmp_path: Path) -> None:
    result = run_sample(name, cwd=tmp_path)  # the demo keeps its store in the current directory
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout, f"{line!r} missing from the output of {name}:\n{result.stdout}"


def test_if_sample_runs_the_block_only_when_the_condition_holds() -> None:
    out = run_sample("05-if.py").stdout
    big, small = out.split("--- value1 = 1")
    assert "doing stuff..." in big
    assert "doing stuff..." not in small
    assert small.count("Goodbye") == 1


def test_while_sample_loops_exactly_three_times() -> None:
    assert run_sample("06-while.py").stdout.count("doing stuff...") == 3


def test_error_sample_makes_exactly_three_attempts() -> None:
    lines = run_sample("09-error-retry.py").stdout.splitlines()
    assert [line for line in lines if line.startswith("attempt ")] == ["attempt 1", "attempt 2", "attempt 3"]
    assert len([line for line in lines if "error on attempt" in line]) == 2


def test_demo_accepts_a_store_url(tmp_path: Path) -> None:
    result = run_sample("demo.py", "--store", "memory://", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "store memory://" in result.stdout
    assert "paid     57.06" in result.stdout
    assert not list(tmp_path.iterdir())


def test_demo_run_twice_resumes_the_waiting_workflow_from_the_database(tmp_path: Path) -> None:
    first = run_sample("demo.py", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "store sqlite:///liteflow-demo.db" in first.stdout
    assert "workflow complete" in first.stdout
    assert "run `make demo` again to see it resume from the database" in first.stdout
    assert "delivered:" not in first.stdout
    parcel = re.search(r"dispatch: parcel (P-\d+) is with the courier", first.stdout)
    assert parcel, first.stdout
    assert (tmp_path / "liteflow-demo.db").exists()

    second = run_sample("demo.py", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "workflow complete" in second.stdout  # the order part runs every time
    assert f"in the store: parcel {parcel[1]}" in second.stdout
    assert "dispatch:" not in second.stdout  # the first step is not run again
    assert f"delivered: parcel {parcel[1]} arrived" in second.stdout
    stamps = re.findall(r"by process (\d+)", second.stdout.split("courier confirms")[1])
    assert len(stamps) == 2 and stamps[0] != stamps[1], second.stdout  # data from both runs
    assert "run `make demo` again" not in second.stdout

    third = run_sample("demo.py", cwd=tmp_path)  # and the next run leaves a new one waiting
    assert third.returncode == 0, third.stderr
    assert "run `make demo` again to see it resume from the database" in third.stdout


def lines_of(name: str) -> list[str]:
    result = run_sample(name)
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines()]


def test_saga_sample_compensates_in_reverse_order_and_goes_on() -> None:
    lines = lines_of("10-saga.py")
    assert lines[:7] == [
        "trip requested",
        "book hotel",
        "book flight",
        "take payment",
        "cancel flight",
        "cancel hotel",
        "notify customer",
    ]
    assert "send itinerary" not in lines


def test_parallel_sample_joins_both_branches_and_packs_one_item_at_a_time() -> None:
    lines = lines_of("11-parallel.py")
    assert lines.index("stock: checked") < lines.index("prices: confirmed") < lines.index("both branches done")
    packing = [
        line for line in lines if line.startswith("pack ") or (line.endswith(" packed") and line != "all packed")
    ]
    assert packing == ["pack cups", "cups packed", "pack tea", "tea packed", "pack teapot", "teapot packed"]


def test_outcomes_sample_runs_one_when_block_and_one_branch_per_order() -> None:
    out = run_sample("12-outcomes.py").stdout
    small, medium, large = out.split("--- total = ")[1:]
    assert "accepted at once" in small and "ship by post" in small and "courier" not in small
    assert "accepted at once" in medium and "ship by courier" in medium
    assert "held for a manual check" in large and "accepted" not in large and "ship by courier" in large
    assert out.count("done") == 3


def test_retry_policy_sample_makes_four_attempts_and_records_four_errors() -> None:
    lines = lines_of("13-retry-policy.py")
    assert len([line for line in lines if line.startswith("calling the payment API")]) == 4
    assert len([line for line in lines if "builtins.ConnectionError: payment API unavailable" in line]) == 4
    assert "never printed" not in lines


def test_scheduling_sample_ticks_three_times_before_the_timeout() -> None:
    lines = [line.split("  ", 1)[1] for line in lines_of("14-scheduling.py")]
    assert [line for line in lines if line.startswith("tick")] == ["tick 1", "tick 2", "tick 3"]
    assert lines.index("after the delay") < lines.index("tick 1")
    assert lines.index("tick 3") < lines.index("no approval in time: escalated")


def test_controls_sample_never_ships_the_terminated_order() -> None:
    lines = lines_of("16-controls-and-lifecycle.py")
    assert "ship order-2" not in lines
    assert lines.index("order-1 is still suspended") < lines.index("ship order-1")
