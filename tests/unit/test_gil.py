"""``_gil.let_others_run``: a thread holding the GIL lets a waiting thread have it, without the
interpreter's forced switch."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from liteflow.core._gil import let_others_run


@pytest.fixture
def no_forced_switch() -> Iterator[None]:
    """The interpreter forces no GIL switch for 30 s: only a voluntary release lets another run."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def test_a_thread_that_keeps_the_gil_lets_a_waiting_one_run(no_forced_switch: None) -> None:
    ran, gate = threading.Event(), threading.Lock()
    gate.acquire()

    def other_thread() -> None:
        with gate:  # woken by the release below, it then needs the GIL to go on
            ran.set()

    other = threading.Thread(target=other_thread)
    other.start()
    gate.release()
    deadline = time.monotonic() + 5.0
    while not ran.is_set() and time.monotonic() < deadline:
        sum(range(1000))  # work that keeps the GIL, as a worker's turn does
        let_others_run()
    got_it = ran.is_set()  # before the join below, which lets go of the GIL itself
    other.join(10.0)
    assert got_it, "the waiting thread never got the GIL"


def test_the_cpu_clock_is_not_read_before_that_much_time_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a thread's CPU clock is a system call; a thread cannot have used more CPU than
    the time that passed, so calls in quick succession read only the (cheap) elapsed time."""
    from liteflow.core import _gil

    reads: list[float] = []
    thread_time = time.thread_time

    def counted() -> float:
        reads.append(thread_time())
        return reads[-1]

    monkeypatch.setattr(time, "thread_time", counted)
    monkeypatch.setattr(_gil, "YIELD_EVERY", 60.0)  # no yield and no new look for a minute
    let_others_run()  # the first call of this thread under these settings may look once
    reads.clear()
    for _ in range(1000):
        let_others_run()
    assert reads == []
