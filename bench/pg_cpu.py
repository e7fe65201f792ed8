"""Client and server CPU per workflow on PostgreSQL: workload (a) and (b) of compare.py on a started
host, with the CPU time of the host process (all its threads) and of every PostgreSQL process on the
machine (``/proc/<pid>/stat``: the server must run here), per workflow, and how many of the
machine's cores both kept busy. On a machine that also runs the server, throughput is bounded by
their sum, not by the client's share alone.

Runs against either engine: this tree's venv, or another's
(``.cache/compare/4af9752/venv/bin/python bench/pg_cpu.py``), one provider set per run.

    python bench/pg_cpu.py [--provider pg-store|pg-all] [--workflows 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare


def server_cpu() -> float:
    """Seconds of CPU used so far by every process named postgres on this machine."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() not in ("postgres", "postmaster"):
                    continue
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", default="pg-all", choices=("pg-store", "pg-all"))
    parser.add_argument("--workflows", type=int, default=2000)
    args = parser.parse_args()
    import liteflow

    print(f"liteflow from {os.path.dirname(liteflow.__file__)}; load average {os.getloadavg()[0]:.1f}")
    directory = tempfile.mkdtemp(prefix="liteflow-pg-cpu-")
    schema = f"liteflow_pg_cpu_{os.getpid()}"
    host, providers = compare.make_host(args.provider, directory, schema, 8)
    try:
        for workflow in compare.define().values():
            host.register_workflow(workflow())
        host.start()
        compare.start_and_wait(host, 300, 1)  # warm up
        for starters in (1, 4):
            server, began = server_cpu(), time.perf_counter()
            rate, client = compare.start_and_wait(host, args.workflows, starters)
            wall = (time.perf_counter() - began) / args.workflows * 1e6
            served = (server_cpu() - server) / args.workflows * 1e6
            print(
                f"{args.provider}, {starters} starter(s): {rate:,.0f} wf/s; CPU µs per workflow: client {client:,.0f},"
                f" server {served:,.0f}, both {client + served:,.0f} = {(client + served) / wall:.2f} cores busy"
            )
        host.stop()
    finally:
        for provider in providers:
            provider.close()
        shutil.rmtree(directory, ignore_errors=True)
        compare.drop_schema(schema)


if __name__ == "__main__":
    main()
