"""The FaultProxy against a tiny echo server: forwards, cuts, black-holes and restores."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from polling import wait_until

from liteflow.core import InvalidArgumentError, InvalidOperationError
from liteflow.testing import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionResetError:  # the proxy resets connections when cut
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        yield proxy


def connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def echo(sock: socket.socket, payload: bytes, expect: int | None = None) -> bytes:
    """Send ``payload`` and read back ``expect`` bytes (as many as were sent by default)."""
    sock.sendall(payload)
    received = bytearray()
    while len(received) < (len(payload) if expect is None else expect):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the proxy")
        received.extend(chunk)
    return bytes(received)


def test_forwards_both_ways(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echo(sock, b"hello") == b"hello"
    assert proxy.mode == "forward"
    assert proxy.accepted == 1


def test_forwards_large_payloads_intact(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB, more than the proxy buffers at once
    with connect(proxy) as sock:
        result = bytearray()

        def read() -> None:
            while len(result) < len(payload) and (chunk := sock.recv(65536)):
                result.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(payload)
        reader.join(timeout=30)
        assert bytes(result) == payload


def test_several_connections_at_once(proxy: FaultProxy) -> None:
    socks = [connect(proxy) for _ in range(5)]
    try:
        for n, sock in enumerate(socks):
            assert echo(sock, f"conn {n}".encode()) == f"conn {n}".encode()
        assert proxy.open_connections == 5
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: proxy.open_connections == 0)


def test_cut_closes_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echo(sock, b"before") == b"before"
        proxy.cut()
        assert proxy.mode == "cut"
        with pytest.raises(OSError):
            echo(sock, b"after")
    assert proxy.open_connections == 0
    with pytest.raises(OSError):
        with connect(proxy) as sock:
            echo(sock, b"new")


def test_restore_after_cut_forwards_new_connections(proxy: FaultProxy) -> None:
    proxy.cut()
    proxy.restore()
    with connect(proxy) as sock:
        assert echo(sock, b"back") == b"back"


def test_blackhole_holds_connections_without_forwarding(proxy: FaultProxy) -> None:
    with connect(proxy, timeout=0.3) as sock:
        assert echo(sock, b"before") == b"before"
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            echo(sock, b"lost?")
        assert proxy.open_connections == 1  # held open, not closed
        proxy.restore()
        sock.settimeout(5)
        # What was sent during the black-hole was held back, not dropped.
        assert echo(sock, b"after", expect=10) == b"lost?after"


def test_blackhole_accepts_new_connections_but_forwards_nothing(proxy: FaultProxy) -> None:
    proxy.blackhole()
    with connect(proxy, timeout=0.3) as sock:  # the TCP handshake succeeds
        with pytest.raises(TimeoutError):
            echo(sock, b"ping")
        proxy.restore()
        sock.settimeout(5)
        assert echo(sock, b"pong", expect=8) == b"pingpong"  # held-back bytes go first, in order


def test_cut_during_blackhole_closes_held_connections(proxy: FaultProxy) -> None:
    with connect(proxy, timeout=5) as sock:
        proxy.blackhole()
        proxy.cut()
        with pytest.raises(OSError):
            echo(sock, b"x")


def test_target_down_closes_the_client(echo_port: int) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead_port = free.getsockname()[1]
    with FaultProxy("127.0.0.1", dead_port) as proxy:
        with pytest.raises(OSError):
            with connect(proxy) as sock:
                echo(sock, b"x")


def test_url_points_at_the_proxy(proxy: FaultProxy) -> None:
    assert proxy.url("postgresql://postgres@127.0.0.1:5432/test?x=1") == (
        f"postgresql://postgres@127.0.0.1:{proxy.port}/test?x=1"
    )
    assert proxy.url("redis://localhost:6379/0") == f"redis://127.0.0.1:{proxy.port}/0"


def test_for_url_reads_host_and_port(echo_port: int) -> None:
    with FaultProxy.for_url(f"redis://127.0.0.1:{echo_port}/0") as proxy:
        assert proxy.target == ("127.0.0.1", echo_port)
        with connect(proxy) as sock:
            assert echo(sock, b"x") == b"x"
    with pytest.raises(InvalidArgumentError, match="host and port"):
        FaultProxy.for_url("redis:///0")
    with pytest.raises(InvalidArgumentError, match="port"):
        FaultProxy("127.0.0.1", 70000)


def test_close_stops_everything_and_is_idempotent(echo_port: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo_port)
    sock = connect(proxy)
    assert echo(sock, b"x") == b"x"
    proxy.close()
    proxy.close()
    with pytest.raises(OSError):
        echo(sock, b"y")
    sock.close()
    with pytest.raises(OSError):
        connect(proxy, timeout=1).close()
    with pytest.raises(InvalidOperationError, match="closed"):
        proxy.cut()
