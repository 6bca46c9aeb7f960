"""Every HTTP client integration through an HTTP ``CONNECT`` proxy.

Corporate networks put a forward proxy between a service and the backends it calls.
Through a ``CONNECT`` tunnel the TLS session is still the client's with the backend:
the backend must see the identity the profile names, and the client must verify the
backend against the profile's truststore (not stop at the proxy). The proxy here is a
real one over loopback: it reads the ``CONNECT`` line, records its target and relays
bytes, so it sees only ciphertext.
"""

from __future__ import annotations

import asyncio
import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests

from mtls import SSLProfileSet
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.integrations.httpx import AsyncMTLSTransport, MTLSTransport
from mtls.integrations.requests import session
from tests.integrations._backend import Backends

pytestmark = pytest.mark.keytool


class _Tunnels(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Connect)
        self.targets: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Connect(socketserver.BaseRequestHandler):
    """``CONNECT host:port``: connect, answer 200, relay both ways until one side closes."""

    server: _Tunnels

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(target)
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            ends = (self.request, upstream)
            while True:
                # Blocks until a side has bytes or closes; the timeout only ends an
                # abandoned tunnel, it is not a wait the tests depend on.
                readable, _, _ = select.select(ends, [], [], 30)
                if not readable:
                    return
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)


@pytest.fixture
def proxy() -> Iterator[_Tunnels]:
    with _Tunnels() as tunnels:
        thread = threading.Thread(target=tunnels.serve_forever, daemon=True)
        thread.start()
        try:
            yield tunnels
        finally:
            tunnels.shutdown()
            thread.join(10)


def _requests_get(profiles: SSLProfileSet, proxy: str) -> Callable[[str], Any]:
    def get(url: str) -> tuple[int, Any]:
        with session(profiles) as http:
            response = http.get(url, proxies={"https": proxy}, timeout=30)
            return response.status_code, response.json()

    return get


def _httpx_get(profiles: SSLProfileSet, proxy: str) -> Callable[[str], Any]:
    def get(url: str) -> tuple[int, Any]:
        with httpx.Client(transport=MTLSTransport(profiles, proxy=proxy), timeout=30) as http:
            response = http.get(url)
            return response.status_code, response.json()

    return get


def _httpx_async_get(profiles: SSLProfileSet, proxy: str) -> Callable[[str], Any]:
    async def main(url: str) -> tuple[int, Any]:
        transport = AsyncMTLSTransport(profiles, proxy=proxy)
        async with httpx.AsyncClient(transport=transport, timeout=30) as http:
            response = await http.get(url)
            return response.status_code, response.json()

    return lambda url: asyncio.run(main(url))


def _aiohttp_get(profiles: SSLProfileSet, proxy: str) -> Callable[[str], Any]:
    async def main(url: str) -> tuple[int, Any]:
        async with MTLSClientSession(profiles) as http, http.get(url, proxy=proxy) as response:
            return response.status, await response.json()

    return lambda url: asyncio.run(main(url))


CLIENTS = {
    "requests": _requests_get,
    "httpx": _httpx_get,
    "httpx-async": _httpx_async_get,
    "aiohttp": _aiohttp_get,
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_through_a_connect_proxy_each_backend_sees_its_identity(
    client: str, profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels
):
    get = CLIENTS[client](profiles, proxy.url)
    for name in "abc":
        status, body = get(backends.url(name, "/who"))
        assert (status, body["client_cn"]) == (200, f"client-{name}")
    # Every request went through the tunnel, to the backend its URL names.
    hosts = ["127.0.0.1" if name == "b" else "localhost" for name in "abc"]
    wanted = [f"{host}:{backends.servers[n].port}" for host, n in zip(hosts, "abc", strict=True)]
    assert proxy.targets == wanted


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_through_a_connect_proxy_the_backend_is_verified_against_the_profile(
    client: str, tmp_path, backends: Backends, proxy: _Tunnels
):
    # The negative twin: a truststore without the backend's CA fails the handshake
    # inside the tunnel (the proxy is reached; the backend is not trusted).
    xml = backends.write_profiles(tmp_path / "p.xml", trust=backends.pki.other_trust)
    errors = (requests.exceptions.SSLError, httpx.ConnectError, OSError)
    with SSLProfileSet.from_xml(xml) as profiles, pytest.raises(errors) as caught:
        CLIENTS[client](profiles, proxy.url)(backends.url("c"))
    assert "CERTIFICATE_VERIFY_FAILED" in repr(caught.value) + repr(caught.value.__cause__)
    assert proxy.targets == [f"localhost:{backends.servers['c'].port}"]


def test_requests_follows_https_proxy_from_the_environment(
    profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels, monkeypatch
):
    # requests reads HTTPS_PROXY / NO_PROXY itself (Session.trust_env): the adapter's
    # contexts go through the tunnel the environment names, and NO_PROXY is honoured.
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with session(profiles) as http:
        assert http.get(backends.url("a", "/who")).json()["client_cn"] == "client-a"
        assert http.get(backends.url("b", "/who")).json()["client_cn"] == "client-b"
    assert proxy.targets == [f"localhost:{backends.servers['a'].port}"]


def test_httpx_transport_ignores_proxy_environment_unless_given_proxy(
    profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels, monkeypatch
):
    # httpx applies HTTPS_PROXY only when no transport= is given; MTLSTransport is
    # one, so it connects directly unless proxy= is passed (docs/integrations.md).
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with httpx.Client(transport=MTLSTransport(profiles)) as http:
        assert http.get(backends.url("a", "/who")).json()["client_cn"] == "client-a"
    assert proxy.targets == []
    with httpx.Client(transport=MTLSTransport(profiles, proxy=proxy.url)) as http:
        assert http.get(backends.url("a", "/who")).json()["client_cn"] == "client-a"
    assert proxy.targets == [f"localhost:{backends.servers['a'].port}"]
