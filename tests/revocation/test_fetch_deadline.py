"""``RevocationPolicy.timeout`` is a total deadline for one fetch, not a per-recv timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from mtls import _fetch


@pytest.fixture
def dripping() -> Iterator[str]:
    """An HTTP server that answers a header line every 0.2 s for a minute (each
    recv gets data well within any per-recv timeout)."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\n")
                for i in range(300):
                    if stop.wait(0.2):
                        return
                    conn.sendall(b"X-Drip: %d\r\n" % i)
                conn.sendall(b"Content-Length: 0\r\n\r\n")
            except OSError:
                return  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/drip.crl"
    finally:
        stop.set()
        server.close()
        thread.join(10)


def test_a_server_that_drips_is_given_up_on_at_the_deadline(dripping: str) -> None:
    with pytest.raises(_fetch.FetchError, match=r"no answer within 1 s \(the whole fetch\)"):
        _fetch.fetch(dripping, None, 1000, timeout=1.0)


def test_a_prompt_server_is_read_whole() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        body = _fetch.fetch(
            f"http://127.0.0.1:{server.getsockname()[1]}/x", None, 1000, timeout=30.0
        )
    finally:
        server.close()
        thread.join(10)
    assert body == b"hello"
