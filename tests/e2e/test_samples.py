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
