"""``liteflow schedules`` through the real console script, with a ``liteflow worker`` on the store."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from polling import wait_until

from .cli_harness import Backend, Worker


def listed(backend: Backend, schedule_id: str) -> dict[str, Any] | None:
    result = backend.run("schedules", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = [row for row in json.loads(result.stdout) if row["schedule_id"] == schedule_id]
    return rows[0] if rows else None


def test_add_list_pause_resume_delete(backend: Backend, worker: Worker) -> None:
    schedule_id = f"nightly-{uuid.uuid4().hex[:6]}"
    added = backend.run(
        "schedules",
        "add",
        schedule_id,
        "Greeting",
        "--cron",
        "*/5 * * * *",
        "--timezone",
        "Europe/Berlin",
        "--data",
        '{"name": "cron"}',
        "--catch-up",
        "none",
        app=True,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"schedule {schedule_id} saved"

    def next_run_set() -> dict[str, Any] | None:
        row = listed(backend, schedule_id)
        return row if row and row["next_run"] and row["paused"] is False and _future(row["next_run"]) else None

    row = wait_until(next_run_set, "the worker to plan the schedule's next tick")  # the worker ran its pass
    assert {k: row[k] for k in ("workflow_id", "cron", "timezone", "catch_up", "data", "version")} == {
        "workflow_id": "Greeting",
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
        "catch_up": "none",
        "data": {"name": "cron"},
        "version": None,
    }
    next_run = datetime.fromisoformat(row["next_run"])
    assert next_run.minute % 5 == 0 and next_run.second == 0
    assert next_run - datetime.now(timezone.utc) <= timedelta(minutes=5)
    table = backend.run("schedules", "list")
    assert schedule_id in table.stdout and "'*/5 * * * *' Europe/Berlin" in table.stdout

    paused = backend.run("schedules", "pause", schedule_id)
    assert paused.returncode == 0, paused.stderr
    wait_until(lambda: (listed(backend, schedule_id) or {}).get("paused"), "the schedule to be paused")
    assert listed(backend, schedule_id)["next_run"] is None  # type: ignore[index]
    again = backend.run("schedules", "pause", schedule_id)
    assert again.stdout.strip() == f"schedule {schedule_id} was paused already"

    resumed = backend.run("schedules", "resume", schedule_id)
    assert resumed.returncode == 0, resumed.stderr
    wait_until(next_run_set, "the schedule to run again")

    deleted = backend.run("schedules", "delete", schedule_id)
    assert deleted.returncode == 0, deleted.stderr
    wait_until(lambda: listed(backend, schedule_id) is None, "the schedule to be deleted")
    missing = backend.run("schedules", "pause", schedule_id)
    assert missing.returncode == 1
    assert f"no schedule '{schedule_id}'" in missing.stderr


def test_bad_input_is_a_usage_error(backend: Backend) -> None:
    bad_cron = backend.run("schedules", "add", "s1", "Greeting", "--cron", "61 * * * *")
    assert bad_cron.returncode == 2
    assert "invalid cron expression '61 * * * *'" in bad_cron.stderr
    bad_zone = backend.run("schedules", "add", "s1", "Greeting", "--cron", "0 3 * * *", "--timezone", "Nowhere/X")
    assert bad_zone.returncode == 2 and "unknown timezone 'Nowhere/X'" in bad_zone.stderr
    unknown = backend.run("schedules", "add", "s1", "Nope", "--cron", "0 3 * * *", app=True)
    assert unknown.returncode != 0 and "'Nope'" in unknown.stderr
    assert listed(backend, "s1") is None


def _future(text: str) -> bool:
    return datetime.fromisoformat(text) > datetime.now(timezone.utc)
