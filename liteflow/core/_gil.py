"""Letting go of the GIL at moments chosen by the engine rather than by the interpreter.

A thread that waits for the GIL longer than the switch interval (5 ms) makes the interpreter take
it from its holder at whatever instruction that is running, which may be inside one of the
engine's short ``with lock:`` sections (the queue, the store, the lock, the host's tables). The
thread that then wants that lock blocks; when the lock is handed to it, it owns the lock while it
waits for the GIL, so the next thread wanting the lock blocks too, and so on: a lock convoy, in
which every acquisition of that lock becomes a hand-off between threads, until the convoy breaks
up by chance (measured, workload (a) of bench/compare.py: 1 to 8 futex calls per workflow on
one such lock, a different one in each run; see bench/README.md, round four).

So the host's threads, and a thread starting workflows, let go of the GIL themselves between two
items, holding no lock, once they have run for :data:`YIELD_EVERY`: the waiting threads get the
GIL at such points instead of from a forced switch, and a convoy that formed anyway dissolves at
the next one. The cost: reading the elapsed time at every call (no system call), the thread's CPU
clock only once enough time has passed (see :func:`let_others_run`), and one ``sleep(0)`` per
interval, which is a hand-off only if a thread is waiting.
"""

from __future__ import annotations

import threading
import time

YIELD_EVERY = 0.001
"""Seconds of a thread's CPU time between two voluntary hand-offs (well inside the 5 ms switch
interval)."""

_last = threading.local()


def let_others_run() -> None:
    """Let waiting threads have the GIL if this thread has run for ``YIELD_EVERY`` since it last
    did so. Call it only while holding no lock.

    Run, not elapsed: the thread's CPU time, which does not grow while it sleeps in a queue or
    waits for the GIL, so a worker that was idle does not hand the GIL away on its first item.
    Reading it is a system call (about 1.5 µs; once per start and once per item, two per
    workflow), so the elapsed time (``perf_counter``, no system call) is read first: a thread
    cannot have used more CPU than the time that passed, and until that much time has passed
    since the last look, the CPU clock need not be read at all."""
    state = _last
    now = time.perf_counter()
    if now < getattr(state, "look_at", 0.0):
        return
    ran = time.thread_time() - getattr(state, "cpu", 0.0)
    if ran >= YIELD_EVERY:
        time.sleep(0)  # releases the GIL; a thread waiting for it takes it now
        state.cpu = time.thread_time()
        state.look_at = time.perf_counter() + YIELD_EVERY
    else:  # the earliest it can have run for YIELD_EVERY
        state.look_at = now + YIELD_EVERY - ran
