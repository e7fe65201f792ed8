"""The Redis servers behind a lock: each one's client and scripts, the order its commands are sent
in, and what its last command said.

With one server the lock calls it inline, exactly as a plain client would. With several (Redlock)
each server gets one thread of its own, so that a slow or black-holed server never delays the
answers of the others, and the commands sent to one server (acquire, then release) reach it in the
order they were issued, even after the caller stopped waiting for the first. Commands that pile up
behind a server that does not answer fail at once instead of queueing without bound.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from liteflow.providers.spi import utcnow

from ._common import SentinelMaster, client_from

PENDING_LIMIT = 32
"""Commands that may wait for one server of a Redlock before more (but releases) fail at once."""
CLOSE_DRAIN = 1.0
"""Seconds ``close`` gives the commands still queued for a server of a Redlock."""

Outcome = Any  # a reply, the redis.RedisError raised, or None while unanswered


class NotSent(redis.TimeoutError):
    """A command never sent, because the server has not answered those before it."""


@dataclass(frozen=True)
class ServerState:
    """What the last command sent to one server said.

    Attributes:
        ok: Whether it answered.
        since: When it entered this state (UTC).
        last_error: The most recent failure, kept after recovery; None if it never failed.
    """

    ok: bool
    since: datetime
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "since": self.since.isoformat(), "last_error": self.last_error}


def describe(client: redis.Redis) -> str:
    """``host:port`` (or the socket path, or ``sentinel:<service>``) of a client's server."""
    if isinstance(client, SentinelMaster):
        return f"sentinel:{client.service}"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


class LockServer:
    """One server of a lock: its client, scripts, command thread (several servers only) and state."""

    def __init__(
        self,
        target: str | redis.Redis,
        scripts: dict[str, str],
        *,
        threaded: bool,
        socket_timeout: float,
        connect_timeout: float,
    ) -> None:
        self.client, self._owns_client = client_from(
            target, socket_timeout=socket_timeout, connect_timeout=connect_timeout
        )
        self.name = describe(self.client)
        self._scripts = {name: self.client.register_script(source) for name, source in scripts.items()}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"liteflow-redlock-{self.name}") if threaded else None
        self._mutex = threading.Lock()
        self._pending = 0
        self._state = ServerState(ok=True, since=utcnow())

    @property
    def state(self) -> ServerState:
        return self._state

    def call(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` now, in the calling thread; driver errors go on up."""
        try:
            result = self._scripts[script](keys=keys, args=args)
        except redis.RedisError as error:
            self._record(error)
            raise
        self._record(None)
        return result

    def submit(self, script: str, keys: Sequence[str], args: Sequence[Any], *, droppable: bool = True) -> Future[Any]:
        """Run ``script`` on this server's thread, after every command submitted before it. A
        ``droppable`` command fails at once with :class:`NotSent` when ``PENDING_LIMIT`` commands
        are waiting already; a release is never dropped, so nothing granted is left behind."""
        assert self._executor is not None, "submit is for servers of a Redlock"
        with self._mutex:
            if droppable and self._pending >= PENDING_LIMIT:
                failed: Future[Any] = Future()
                error = NotSent(f"{self.name}: {self._pending} commands still unanswered; not sent")
                self._record(error)
                failed.set_exception(error)
                return failed
            self._pending += 1
        try:
            return self._executor.submit(self._run, script, keys, args)
        except RuntimeError:  # shut down by close(): the server is gone for this provider
            self._done()
            raise

    def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self.call(script, keys, args)
        finally:
            self._done()

    def _done(self) -> None:
        with self._mutex:
            self._pending -= 1

    def _record(self, error: redis.RedisError | None) -> None:
        state = self._state
        if error is None:
            if not state.ok:
                self._state = ServerState(True, utcnow(), state.last_error)
        else:
            since = utcnow() if state.ok else state.since
            self._state = ServerState(False, since, f"{type(error).__name__}: {error}")

    def close(self) -> None:
        """Let the commands still queued (releases, mostly) reach the server for up to
        ``CLOSE_DRAIN`` seconds, drop the rest, and close the client if this made it (which also
        ends a command stuck on a hung server)."""
        if self._executor is not None:
            drained = self._executor.submit(lambda: None)
            with contextlib.suppress(FutureTimeoutError):  # a hung server: its commands are dropped
                drained.result(timeout=CLOSE_DRAIN)
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self.client.close()


def gather(
    servers: Sequence[LockServer],
    script: str,
    keys: Sequence[str],
    args: Sequence[Any],
    *,
    enough: Callable[[list[Outcome]], bool],
    timeout: float,
) -> list[Outcome]:
    """Run ``script`` on every server; return each one's outcome (in the order of ``servers``) once
    ``enough`` holds for the outcomes so far, every server has answered, or ``timeout`` has
    passed. One server is called inline. Commands still running go on in the background."""
    if len(servers) == 1:
        try:
            return [servers[0].call(script, keys, args)]
        except redis.RedisError as error:
            return [error]
    futures = [server.submit(script, keys, args, droppable=script != "release") for server in servers]
    pending = {future for future in futures if not future.done()}
    deadline = time.monotonic() + timeout
    while pending:
        if enough([_outcome(future) for future in futures]):
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
    return [_outcome(future) for future in futures]


def _outcome(future: Future[Any]) -> Outcome:
    if not future.done():
        return None
    error = future.exception()
    return error if error is not None else future.result()
