"""Group commit of plain saves: the updates of several threads' saves in one transaction.

A plain save is one ``UPDATE ... WHERE id = %s AND revision = %s`` (no subscription, error or
event to write with it). Alone, it is sent as it is, in autocommit: one round trip, one commit.
When threads save at the same time, the first (the *leader*) sends its update and, while it waits
for the server, the others queue; when it is done, the first of those leads the next batch: all
the updates waiting, sent in one round trip as ``BEGIN``, the updates (ordered by instance id, so
two batches never lock the same rows in opposite orders), ``COMMIT``. No thread waits for a timer
and none is added: a save waits at most for the batch in flight, which it would otherwise wait for
at the server (its commit's WAL flush is shared with it anyway).

Every guarantee of a save holds for each one in a batch: each update keeps its own revision check
(its own row count: a stale save changes nothing and its caller gets ``ConcurrencyError``, the
others are not affected), and each caller is answered only after the ``COMMIT`` (synchronous: its
WAL flushed). A batch that fails as a whole for a reason other than the server being unavailable
(a value the server refuses, say) was rolled back entirely, and each of its saves is tried again
alone, so a bad save fails only its own caller.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from liteflow.providers.spi import ProviderError, ProviderUnavailableError

from ._common import Database, cursor, translated

_MOST = 32
"""Most saves in one batch."""


class _Save:
    __slots__ = ("error", "lead", "parameters", "ready", "rowcount")

    def __init__(self, parameters: Sequence[Any]) -> None:
        self.parameters = parameters
        self.ready = threading.Event()  # set once: a result (or error), or the lead of the next batch
        self.lead = False
        self.rowcount: int | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs ``sql`` (an UPDATE whose parameters end with the row's id and revision, the id second to
    last) for many threads, batching the calls that overlap; see the module docstring."""

    def __init__(self, database: Database, sql: str) -> None:
        self._database = database
        self._sql = sql
        self._mutex = threading.Lock()
        self._waiting: list[_Save] = []
        self._leading = False

    def update(self, parameters: Sequence[Any]) -> int:
        """Run the update with ``parameters``, committed when this returns; its row count."""
        save = _Save(parameters)
        with self._mutex:
            self._waiting.append(save)
            if not self._leading:
                self._leading = save.lead = True
        if not save.lead:
            save.ready.wait()  # bounded: the batch in flight is bounded by the call's timeouts
        if save.lead:
            self._lead(save)
        if save.error is not None:
            raise _copy(save.error)
        assert save.rowcount is not None
        return save.rowcount

    def _lead(self, own: _Save) -> None:
        with self._mutex:
            batch, self._waiting = self._waiting[:_MOST], self._waiting[_MOST:]
        try:
            self._run(batch)
        except BaseException as error:  # never leave a waiter without an answer
            for save in batch:
                if save.rowcount is None and save.error is None:
                    save.error = error
        finally:
            with self._mutex:
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._leading = False
                else:
                    following.lead = True
            for save in batch:
                if save is not own:
                    save.ready.set()
            if following is not None:
                following.ready.set()

    def _run(self, batch: list[_Save]) -> None:
        if len(batch) > 1:
            try:
                counts = self._together([save.parameters for save in batch])
            except ProviderUnavailableError as error:
                for save in batch:
                    save.error = error
                return
            except ProviderError:
                pass  # rolled back as a whole: each alone, so that only a bad one fails
            else:
                for save, count in zip(batch, counts, strict=True):
                    save.rowcount = count
                return
        for save in batch:
            try:
                with translated("save a workflow"), self._database.connection() as conn:
                    save.rowcount = cursor(conn).execute(self._sql, save.parameters).rowcount
            except ProviderError as error:
                save.error = error

    def _together(self, batch: list[Sequence[Any]]) -> list[int]:
        """The updates in one explicit transaction, sent in one round trip (pipeline mode)."""
        order = sorted(range(len(batch)), key=lambda n: batch[n][-2])
        with translated("save workflows"), self._database.connection() as conn:
            with conn.pipeline():
                conn.execute("BEGIN")
                cursors = {n: conn.execute(self._sql, batch[n]) for n in order}
                conn.execute("COMMIT")
            return [cursors[n].rowcount for n in range(len(batch))]


def _copy(error: BaseException) -> BaseException:
    """An error to raise in one waiter's thread: a copy when it is shared by a batch's waiters (one
    exception object raised in several threads at once would mix their tracebacks)."""
    if type(error) in (ProviderError, ProviderUnavailableError):
        copy = type(error)(*error.args)
        copy.__cause__ = error.__cause__
        return copy
    if isinstance(error, psycopg.Error):  # pragma: no cover - translated() turns these into ProviderError
        return ProviderError(str(error))
    return error
