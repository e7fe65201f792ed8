"""A loopback TCP proxy that can break the connection to a backend on demand, for fault tests."""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from liteflow.core import InvalidArgumentError, InvalidOperationError

logger = logging.getLogger("liteflow.testing")

Mode = Literal["forward", "cut", "blackhole"]

_CHUNK = 65536
_HIGH_WATER = 4 * _CHUNK
"""Stop reading one side while this many bytes wait to be written to the other (backpressure)."""


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream twin, with the bytes waiting to go each way."""

    client: socket.socket
    upstream: socket.socket | None = None
    to_client: bytearray = field(default_factory=bytearray)
    to_upstream: bytearray = field(default_factory=bytearray)
    eof: bool = False
    """One side closed: the link closes once what it sent has been written to the other side."""

    def peer(self, sock: socket.socket) -> socket.socket | None:
        return self.upstream if sock is self.client else self.client

    def outgoing(self, sock: socket.socket) -> bytearray:
        """The bytes waiting to be written to ``sock``."""
        return self.to_client if sock is self.client else self.to_upstream


class FaultProxy:
    """Forwards a free ``127.0.0.1`` port to ``target_host:target_port`` and breaks it on demand.

    Point a provider at :attr:`port` (or at :meth:`url`) instead of the real server, then:

    * :meth:`cut` closes every open connection and resets new ones as soon as they are accepted:
      the server looks down.
    * :meth:`blackhole` keeps connections open (and accepts new ones) but forwards no byte in either
      direction: the server looks hung, which only timeouts can detect.
    * :meth:`restore` forwards again; connections accepted during a black-hole are connected to the
      target then.

    All sockets are served by one background thread. Use it as a context manager, or call
    :meth:`close`. As a pytest fixture::

        @pytest.fixture
        def proxy(redis_url):
            with FaultProxy.for_url(redis_url) as proxy:
                yield proxy

    Args:
        target_host: The server to forward to.
        target_port: Its port.
        connect_timeout: Seconds to wait for the target when opening a forwarded connection.
    """

    def __init__(self, target_host: str, target_port: int, *, connect_timeout: float = 5.0) -> None:
        if not isinstance(target_port, int) or not 0 < target_port < 65536:
            raise InvalidArgumentError(f"target_port must be a TCP port number, got {target_port!r}")
        self.target = (target_host, target_port)
        self.connect_timeout = connect_timeout
        self._mode: Mode = "forward"
        self._links: dict[socket.socket, _Link] = {}
        self._accepted = 0
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=f"FaultProxy:{self.port}", daemon=True)
        self._thread.start()

    @classmethod
    def for_url(cls, url: str, *, default_port: int | None = None) -> FaultProxy:
        """A proxy to the host and port of a server URL (``redis://127.0.0.1:6379/0``...)."""
        parts = urlsplit(url)
        port = parts.port or default_port
        if not parts.hostname or port is None:
            raise InvalidArgumentError(f"cannot tell the host and port of {url!r}")
        return cls(parts.hostname, port)

    @property
    def port(self) -> int:
        """The loopback port clients should connect to."""
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``."""
        return ("127.0.0.1", self.port)

    @property
    def mode(self) -> Mode:
        """``"forward"``, ``"cut"`` or ``"blackhole"``."""
        return self._mode

    @property
    def open_connections(self) -> int:
        """Client connections currently held open by the proxy."""
        return len({id(link) for link in self._links.values()})

    @property
    def accepted(self) -> int:
        """Client connections accepted since the proxy started (refused ones included)."""
        return self._accepted

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's, user, path and query kept."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.address[0]}:{self.port}" if userinfo else f"{self.address[0]}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        """Close every open connection and reset every new one until :meth:`restore`."""
        self._call(self._do_cut)

    def blackhole(self) -> None:
        """Stop forwarding bytes both ways, keeping connections open, until :meth:`restore`."""
        self._call(lambda: self._set_mode("blackhole"))

    def restore(self) -> None:
        """Forward again."""
        self._call(lambda: self._set_mode("forward"))

    def close(self) -> None:
        """Close every connection and the listening socket, and stop the thread. Idempotent."""
        if self._closed:
            return
        self._call(self._do_close)
        self._thread.join(timeout=10)
        self._closed = True

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} {self._mode}>"

    # -- control: every change runs on the proxy thread, the caller waits until it is done --

    def _call(self, command: Callable[[], None]) -> None:
        if self._closed or not self._thread.is_alive():
            raise InvalidOperationError("the FaultProxy is closed")
        done = threading.Event()

        def run() -> None:
            try:
                command()
            finally:
                done.set()

        self._commands.put(run)
        self._wake_w.send(b"x")
        if not done.wait(timeout=10):
            raise InvalidOperationError("the FaultProxy thread did not answer")

    def _do_cut(self) -> None:
        self._mode = "cut"
        for link in {id(link): link for link in self._links.values()}.values():
            self._drop(link, reset=True)

    def _set_mode(self, mode: Mode) -> None:
        self._mode = mode
        for link in list({id(link): link for link in self._links.values()}.values()):
            if mode == "forward" and link.upstream is None:
                self._connect_upstream(link)
            else:
                self._update(link)

    def _do_close(self) -> None:
        self._do_cut()
        self._selector.unregister(self._listener)
        self._selector.unregister(self._wake_r)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    # -- the proxy thread --

    def _run(self) -> None:
        while self._selector.get_map() is not None and self._listener.fileno() != -1:
            try:
                events = self._selector.select()
            except (OSError, ValueError):  # the selector was closed by _do_close
                return
            for key, mask in events:
                try:
                    self._handle(key.fileobj, mask)  # type: ignore[arg-type]
                except Exception:  # a test helper must not die on one bad socket
                    logger.exception("FaultProxy: error on a connection")
                if self._listener.fileno() == -1:
                    return

    def _handle(self, sock: socket.socket, mask: int) -> None:
        if sock is self._wake_r:
            sock.recv(4096)
            while not self._commands.empty():
                self._commands.get()()
        elif sock is self._listener:
            self._accept()
        elif (link := self._links.get(sock)) is not None:
            if mask & selectors.EVENT_WRITE:
                self._write(link, sock)
            if mask & selectors.EVENT_READ and sock in self._links:
                self._read(link, sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self._accepted += 1
        if self._mode == "cut":
            _reset(client)
            return
        client.setblocking(False)
        link = _Link(client)
        self._links[client] = link
        if self._mode == "forward":
            self._connect_upstream(link)

    def _connect_upstream(self, link: _Link) -> None:
        # A blocking connect on the proxy thread: the target is a local server, so it answers at once.
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError as error:
            logger.warning("FaultProxy: cannot reach %s:%s: %s", *self.target, error)
            self._drop(link, reset=True)
            return
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.upstream = upstream
        self._links[upstream] = link
        self._update(link)

    def _read(self, link: _Link, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._drop(link, reset=True)
            return
        if not data:
            link.eof = True
        peer = link.peer(sock)
        if peer is not None:
            link.outgoing(peer).extend(data)
        self._update(link)

    def _write(self, link: _Link, sock: socket.socket) -> None:
        buffer = link.outgoing(sock)
        try:
            sent = sock.send(buffer)
        except BlockingIOError:
            return
        except OSError:
            self._drop(link, reset=True)
            return
        del buffer[:sent]
        self._update(link)

    def _update(self, link: _Link) -> None:
        """Register each socket of the link for what it can do in the current mode."""
        if link.eof and not link.to_client and not link.to_upstream:
            self._drop(link, reset=False)
            return
        for sock in (link.client, link.upstream):
            if sock is None:
                continue
            events = 0
            if self._mode == "forward" and link.upstream is not None:
                peer = link.peer(sock)
                if not link.eof and peer is not None and len(link.outgoing(peer)) < _HIGH_WATER:
                    events |= selectors.EVENT_READ
                if link.outgoing(sock):
                    events |= selectors.EVENT_WRITE
            self._interest(sock, events)

    def _interest(self, sock: socket.socket, events: int) -> None:
        try:
            current = self._selector.get_key(sock).events
        except KeyError:
            current = 0
        if events == current:
            return
        if not events:
            self._selector.unregister(sock)
        elif not current:
            self._selector.register(sock, events)
        else:
            self._selector.modify(sock, events)

    def _drop(self, link: _Link, *, reset: bool) -> None:
        for sock in (link.client, link.upstream):
            if sock is None or sock.fileno() == -1:
                continue
            self._links.pop(sock, None)
            self._interest(sock, 0)
            if reset:
                _reset(sock)
            else:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset rather than an orderly shutdown, as a crashed server would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
