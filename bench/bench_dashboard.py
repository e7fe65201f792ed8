"""Dashboard benchmark: how fast the instance list and the overview answer over a SQLite store
holding many instances. Prints numbers; never passes or fails.

    python bench/bench_dashboard.py [--instances 100000] [--repeat 20]

The store is filled through the SQLite provider (``create_workflow`` per instance, on one writer
connection, WAL): a mix of five definitions and all four statuses, created over the last two
hours, each with three execution pointers. Each page is then requested through the ASGI app (no
network, the whole Starlette + Jinja2 stack), ``--repeat`` times; the median and the slowest are
printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from liteflow.core import ExecutionPointer, PointerStatus, WorkflowInstance, WorkflowStatus, configure_workflow_host
from liteflow.dashboard import create_app
from liteflow.providers.sqlite import SqlitePersistenceProvider

STATUSES = (
    [WorkflowStatus.COMPLETE] * 16
    + [WorkflowStatus.RUNNABLE] * 2
    + [
        WorkflowStatus.SUSPENDED,
        WorkflowStatus.TERMINATED,
    ]
)


def fill(path: Path, count: int) -> tuple[float, str]:
    """Store ``count`` instances; returns the seconds it took and one instance id."""
    persistence = SqlitePersistenceProvider(path)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    some_id = ""
    for i in range(count):
        status = STATUSES[i % len(STATUSES)]
        created = now - timedelta(hours=2) + timedelta(seconds=7200 * i / count)
        finished = status in (WorkflowStatus.COMPLETE, WorkflowStatus.TERMINATED)
        pointers = [
            ExecutionPointer(
                step_id=step,
                active=False,
                status=PointerStatus.COMPLETE,
                start_time=created,
                end_time=created + timedelta(seconds=1),
            )
            for step in range(2)
        ]
        pointers.append(
            ExecutionPointer(
                step_id=2,
                active=not finished,
                start_time=created,
                end_time=created + timedelta(seconds=2) if finished else None,
                status=PointerStatus.COMPLETE if finished else PointerStatus.PENDING,
            )
        )
        instance = WorkflowInstance(
            workflow_definition_id=f"definition-{i % 5}",
            version=1,
            data={"order": i, "customer": f"customer-{i % 997}", "lines": [{"sku": "A-1", "qty": 2}]},
            reference=f"ref-{i}",
            status=status,
            next_execution=None if status is not WorkflowStatus.RUNNABLE else created,
            create_time=created,
            complete_time=created + timedelta(seconds=2) if finished else None,
            execution_pointers=pointers,
        )
        persistence.create_workflow(instance)
        some_id = some_id or instance.id
    persistence.close()
    return time.perf_counter() - started, some_id


async def timings(app: object, url: str, repeat: int) -> tuple[float, float, int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        response = await client.get(url)  # warm: connections, templates
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = await client.get(url)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples), max(samples), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dashboard-bench.db"
        seconds, some_id = fill(path, args.instances)
        size = path.stat().st_size
        print(
            f"filled {args.instances:,} instances in {seconds:.1f} s ({args.instances / seconds:,.0f}/s), "
            f"{size / 1e6:.0f} MB"
        )
        host = configure_workflow_host(f"sqlite:///{path}")
        app = create_app(host=host)
        last_page = -(-args.instances // 50)
        pages = [
            ("list, newest 50", "/instances"),
            ("list, live-refresh fragment", "/instances/rows"),
            ("list, status=suspended", "/instances?status=suspended"),
            ("list, workflow=definition-3", "/instances?workflow=definition-3"),
            ("list, since=10m", "/instances?since=10m"),
            ("list, reference=ref-4242", "/instances?reference=ref-4242"),
            ("list, page 1000 (deep)", "/instances?page=1000"),
            (f"list, page {last_page} (the oldest)", f"/instances?page={last_page}"),
            ("overview (counts, chart)", "/"),
            ("one instance", f"/instances/{some_id}"),
        ]
        print(f"{'page':<36} {'median ms':>10} {'max ms':>8} {'bytes':>8}")
        for label, url in pages:
            median, slowest, size = asyncio.run(timings(app, url, args.repeat))
            print(f"{label:<36} {median * 1000:>10.1f} {slowest * 1000:>8.1f} {size:>8,}")
        for resource in (host.queue, host.lock, host.persistence):
            resource.close()


if __name__ == "__main__":
    main()
