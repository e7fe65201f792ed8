"""Statements and round trips per workflow that the PostgreSQL providers send, for workload (a) or
(b) of compare.py (pg-store or pg-all), counted in the client by wrapping psycopg's cursor (a
pipeline's statements are one round trip): a figure the machine's load does not move.

    python bench/count_round_trips.py [--provider pg-store|pg-all] [--workflows 500] [--starters 1]

Runs against either engine, as profile_hotpath.py does.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare
import psycopg

COUNTS: collections.Counter[str] = collections.Counter()
_LOCK = threading.Lock()
_IN_PIPELINE = threading.local()


def _wrap() -> None:
    execute, executemany, pipeline = psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.pipeline

    def counted(kind: str, query: object) -> None:
        text = str(query if isinstance(query, str) else getattr(query, "as_string", lambda _: query)(None))
        verb = text.split()[0].upper() if text.split() else "?"
        with _LOCK:
            COUNTS[f"statement {verb}"] += 1
            if not getattr(_IN_PIPELINE, "depth", 0):
                COUNTS["round trips"] += 1

    def cursor_execute(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted("execute", query)
        return execute(self, query, *args, **kwargs)

    def cursor_executemany(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted("executemany", query)
        return executemany(self, query, *args, **kwargs)

    class Counted:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self._inner = inner

        def __enter__(self):  # type: ignore[no-untyped-def]
            depth = getattr(_IN_PIPELINE, "depth", 0)
            if depth == 0:
                with _LOCK:
                    COUNTS["round trips"] += 1
            _IN_PIPELINE.depth = depth + 1
            return self._inner.__enter__()

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            _IN_PIPELINE.depth -= 1
            return self._inner.__exit__(*exc)

    def connection_pipeline(self):  # type: ignore[no-untyped-def]
        return Counted(pipeline(self))

    psycopg.Cursor.execute = cursor_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = cursor_executemany  # type: ignore[method-assign]
    psycopg.ClientCursor.execute = cursor_execute  # type: ignore[method-assign]
    psycopg.Connection.pipeline = connection_pipeline  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", default="pg-all", choices=("pg-store", "pg-all"))
    parser.add_argument("--workflows", type=int, default=500)
    parser.add_argument("--starters", type=int, default=1)
    args = parser.parse_args()
    import liteflow

    print(f"liteflow from {os.path.dirname(liteflow.__file__)}; load average {os.getloadavg()[0]:.1f}")
    workflows = compare.define()
    schema = f"liteflow_rt_{os.getpid()}"
    host, providers = compare.make_host(args.provider, "/tmp", schema, 8)
    try:
        for workflow in workflows.values():
            host.register_workflow(workflow())
        host.start()
        compare.start_and_wait(host, 50, args.starters)  # warm up
        _wrap()
        began = time.perf_counter()
        rate, cpu = compare.start_and_wait(host, args.workflows, args.starters)
        counts = dict(COUNTS)
        host.stop()
    finally:
        for provider in providers:
            provider.close()
        compare.drop_schema(schema)
    n = args.workflows
    print(
        f"{args.provider} ({args.starters} starter(s)), {n} workflows in {time.perf_counter() - began:.1f} s, "
        f"{rate:.0f}/s, {cpu:.0f} µs CPU/wf"
    )
    for key in sorted(counts, key=lambda k: (k != "round trips", k)):
        print(f"  {counts[key] / n:6.2f} {key} per workflow")


if __name__ == "__main__":
    main()
