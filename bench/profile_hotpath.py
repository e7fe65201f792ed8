"""cProfile over workload (d) of compare.py: ``--workflows`` WithData workflows started and run by
``run_until_idle`` on a host that is not started (no threads), so the counts are the engine's own.

Prints CPU µs per workflow (the least of three runs without the profiler), Python function calls per workflow, and
the functions with the most calls and the most own time. Runs against either engine: this tree's
venv, or the old engine's (``.cache/compare/<commit>/venv/bin/python bench/profile_hotpath.py``).

    python bench/profile_hotpath.py [--provider memory|sqlite|pg-store] [--workflows 1000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", default="memory", choices=("memory", "sqlite", "pg-store", "pg-all"))
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", metavar="FILE", help="also write the profile to FILE (pstats format)")
    args = parser.parse_args()
    import liteflow

    print(f"liteflow from {os.path.dirname(liteflow.__file__)}; load average {os.getloadavg()[0]:.1f}")
    workflows = compare.define()
    directory = tempfile.mkdtemp(prefix="liteflow-profile-")
    schema = f"liteflow_profile_{os.getpid()}"
    host, providers = compare.make_host(args.provider, directory, schema, 4)
    try:
        for workflow in workflows.values():
            host.register_workflow(workflow())
        # The least of three: CPU time is not disturbed by other processes, but caches and
        # frequency scaling of a shared machine are.
        cpu = min(compare.one_thread_cpu(host, args.workflows) for _ in range(3))
        profile = cProfile.Profile()
        began = time.process_time()
        profile.enable()
        for _ in range(args.workflows):
            host.start_workflow("WithData", 1, compare.Data())
        host.run_until_idle()
        profile.disable()
        spent = time.process_time() - began
    finally:
        for provider in providers:
            provider.close()
        shutil.rmtree(directory, ignore_errors=True)
        if args.provider.startswith("pg"):
            compare.drop_schema(schema)
    stats = pstats.Stats(profile)
    if args.dump:
        stats.dump_stats(args.dump)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    print(
        f"{args.provider}: {cpu:.0f} µs CPU per workflow; {calls / args.workflows:.0f} calls per workflow"
        f" ({spent / args.workflows * 1e6:.0f} µs with the profiler)"
    )
    for order in ("ncalls", "tottime"):
        print(f"\n-- top {args.top} by {order} (per workflow: calls, own µs, cumulative µs)")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][1 if order == "ncalls" else 2], reverse=True)  # type: ignore[attr-defined]
        for (file, line, name), (_, ncalls, tottime, cumtime, _) in rows[: args.top]:
            where = f"{os.path.basename(file)}:{line}" if line else file
            n = args.workflows
            print(f"{ncalls / n:7.2f} {tottime / n * 1e6:7.1f} {cumtime / n * 1e6:8.1f}  {name} ({where})")


if __name__ == "__main__":
    main()
