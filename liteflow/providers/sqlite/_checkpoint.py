"""WAL checkpoints on a thread of their own, started by the pages the saves write.

Why
    SQLite checkpoints inside the commit that crosses ``wal_autocheckpoint`` pages: on the saving
    thread, under the file's writer mutex. Measured in issue 14 (bench/compare.py workload (c),
    bench/profile_hotpath.py workload (d)): at SQLite's 1,000 pages publish-to-resume p99 was 6-7 ms
    and CPU 615-652 µs per workflow; at 10,000 pages CPU fell about 10 % (517-612 µs: a page
    rewritten many times in between is copied once; fdatasyncs for 5,000 workflows 369 -> 33), but
    each checkpoint was a ~40 ms pause in some save (p99 39-40 ms). A thread checkpointing on a
    timer cost more CPU: it copied pages more often than a 10,000-page checkpoint does.

How
    The provider tells :meth:`Checkpointer.wrote` of each commit (under its writer mutex: one
    addition). After about :data:`CHECKPOINT_PAGES` pages' worth of commits (pages per commit
    measured from the WAL frames each checkpoint reports) the thread runs
    ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection, beside readers and writers. The saves
    that commit during it leave a few frames behind it, and SQLite restarts the WAL from its start
    only once every frame is copied; so a second, short pass copies those with the writer mutex
    held, and the WAL is reused instead of growing. The writers' own ``wal_autocheckpoint`` stays as
    a fallback at a higher mark (see ``tune_writer``), for when this thread falls behind or another
    process writes; each process on the file has its own checkpointer, and PASSIVE blocks none.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

from liteflow.providers.spi import Backoff, OutageLog

from ._connection import CHECKPOINT_PAGES, connect

logger = logging.getLogger("liteflow.providers.sqlite")

_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"
_MAX_PASSES = 3  # unlocked passes after the first, while each still finds many new frames
_FEW_FRAMES = 100
_PAGES_PER_COMMIT = 3.0  # the first guess (a save writes about 2.8 pages), until a checkpoint measures it


class Checkpointer:
    """A daemon thread that checkpoints the WAL of the file at ``path`` when :meth:`wrote` has been
    called about :data:`CHECKPOINT_PAGES` pages' worth of times; :meth:`close` stops it."""

    def __init__(
        self, path: str, writer_mutex: threading.Lock, *, busy_timeout: float, pages: int = CHECKPOINT_PAGES
    ) -> None:
        self._path = path
        self._mutex = writer_mutex
        self._busy_timeout = busy_timeout
        self._pages = pages
        self._commits = 0
        self._due = max(1, int(pages / _PAGES_PER_COMMIT))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connection: sqlite3.Connection | None = None
        self.checkpoints = 0
        """Checkpoints completed by the thread (for tests and benchmarks)."""
        self.frames = 0
        """The WAL frames the last checkpoint found (for tests and benchmarks)."""
        self._thread = threading.Thread(target=self._run, name="liteflow-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        """Count one commit; called with the writer mutex held."""
        self._commits += 1
        if self._commits >= self._due and not self._wake.is_set():
            self._wake.set()

    def checkpoint_soon(self) -> None:
        """Wake the thread now, whatever the count (for tests)."""
        self._wake.set()

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (a checkpoint under way finishes first, up to ``timeout`` s)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff, outage = Backoff(), OutageLog(f"checkpointing SQLite database {self._path!r}", logger)
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                # The count and the wake-up are taken together, under the mutex that wrote() runs
                # under: commits made between the two would otherwise wake the thread again at once
                # for a checkpoint of the few frames written meanwhile.
                with self._mutex:
                    commits, self._commits = self._commits, 0
                    self._wake.clear()
                try:
                    self._checkpoint(commits)
                except Exception as error:  # the thread must outlive any failure
                    outage.failed(error)
                    self._drop_connection()
                    # Wait (commits do not shorten it; close does), then try again even without new commits.
                    self._stop.wait(backoff.next_delay())
                    self._wake.set()
                else:
                    outage.recovered()
                    backoff.reset()
        finally:
            self._drop_connection()

    def _checkpoint(self, commits: int) -> None:
        """Checkpoint the WAL; ``commits`` were counted since the last time (to calibrate)."""
        if self._connection is None:
            self._connection = connect(self._path, self._busy_timeout)
        checkpoint = self._connection.execute
        first = last = checkpoint(_PASSIVE).fetchone()[1]
        # Saves that commit during a pass leave frames behind it, and SQLite starts the WAL again
        # from its beginning only once every frame is copied: a few shorter passes shrink that rest,
        # then one with the writer mutex held copies it (about 3 ms instead of the ~25 ms of the first).
        for _ in range(_MAX_PASSES if first else 0):
            frames = checkpoint(_PASSIVE).fetchone()[1]
            if frames - last < _FEW_FRAMES:
                break
            last = frames
        if first:
            with self._mutex:
                if self._stop.is_set():
                    return
                checkpoint(_PASSIVE).fetchone()
        self.checkpoints += 1
        self.frames = first
        if commits > 0 and first > 0:
            per_commit = min(64.0, max(1.0, first / commits))
            self._due = max(1, int(self._pages / per_commit))

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing more to do
                connection.close()
