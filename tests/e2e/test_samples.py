"""Every sample runs to completion on its own and prints what it promises."""

from __future__ import annotations

import os
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


def run_sample(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_seed_samples_exist() -> None:
    # 07 and 08 (MongoDB, Azure) need their services and are tested with their providers.
    assert set(EXPECTED) <= {p.name for p in SAMPLES.glob("*.py")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_runs(name: str) -> None:
    result = run_sample(name)
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


def test_demo_accepts_a_store_url() -> None:
    result = run_sample("demo.py", "--store", "memory://")
    assert result.returncode == 0, result.stderr
    assert "store memory://" in result.stdout
    assert "paid     57.06" in result.stdout
