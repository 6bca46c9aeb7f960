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
import contextlib
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from mtls import SSLProfileSet
from mtls.integrations import httpx as mtls_httpx
from mtls.integrations.aiohttp import MTLSClientSession, ProxyProfileError
from mtls.integrations.httpx import AsyncMTLSTransport, MTLSTransport
from mtls.integrations.requests import session
from mtls.testing import CA, replace_atomically
from tests._helpers import profile, profile_xml, read_head
from tests.integrations._backend import Backends

pytestmark = pytest.mark.keytool


class _Tunnels(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """An HTTP proxy, or with ``tls`` an HTTPS one (the client's session with it is TLS,
    and the backend's runs inside: TLS in TLS)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Connect)
        self.tls = tls
        self.targets: list[str] = []
        self.client_certs: list[bytes | None] = []  # what each TLS client presented

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class _Connect(socketserver.BaseRequestHandler):
    """``CONNECT host:port``: connect, answer 200, relay both ways until one side closes."""

    server: _Tunnels

    def handle(self) -> None:
        client: socket.socket = self.request
        if self.server.tls is not None:
            try:
                client = self.server.tls.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused the proxy's certificate
            self.server.client_certs.append(client.getpeercert(binary_form=True))
        with client, contextlib.suppress(ConnectionError):
            # A side that resets its end (a client refusing the backend's certificate
            # inside the tunnel) ends the tunnel, not the test run's stderr.
            self._tunnel(client)

    def _tunnel(self, client: socket.socket) -> None:
        head = read_head(client)
        if head is None:
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(target)
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            ends = (client, upstream)
            while True:
                # A TLS client's bytes may wait decrypted in its buffer, unseen by select.
                buffered = isinstance(client, ssl.SSLSocket) and client.pending() > 0
                # Blocks until a side has bytes or closes; the timeout only ends an
                # abandoned tunnel, it is not a wait the tests depend on.
                readable = [client] if buffered else select.select(ends, [], [], 30)[0]
                if not readable:
                    return
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is client else client).sendall(data)


@contextlib.contextmanager
def _serving(tls: ssl.SSLContext | None = None) -> Iterator[_Tunnels]:
    with _Tunnels(tls) as tunnels:
        thread = threading.Thread(target=tunnels.serve_forever, daemon=True)
        thread.start()
        try:
            yield tunnels
        finally:
            tunnels.shutdown()
            thread.join(10)


@pytest.fixture
def proxy() -> Iterator[_Tunnels]:
    with _serving() as tunnels:
        yield tunnels


@pytest.fixture(scope="module")
def proxy_ca() -> CA:
    return CA(name="proxy CA")


@pytest.fixture
def https_proxy(tmp_path, proxy_ca: CA, backends: Backends) -> Iterator[_Tunnels]:
    """An HTTPS proxy whose certificate comes from a private CA. It asks clients for a
    certificate (any of the backends' client CAs would verify), to see whether one
    is ever sent to it."""
    identity = proxy_ca.issue_cert("127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(identity.write_pem(tmp_path / "proxy.pem"))
    tls.verify_mode = ssl.CERT_OPTIONAL
    for ca in backends.pki.client_cas.values():
        tls.load_verify_locations(cadata=ca.cert_pem.decode())
    with _serving(tls) as tunnels:
        yield tunnels


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


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxy_environment(monkeypatch) -> pytest.MonkeyPatch:
    """The environment without any proxy variable (the machine's own would interfere)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _httpx_client_whos(profiles: SSLProfileSet, urls: list[str], **kwargs: Any) -> list[str]:
    """The client CN each URL's backend saw, through mtls's httpx.Client, then through
    its httpx.AsyncClient (each URL is asked twice)."""
    with mtls_httpx.client(profiles, timeout=30, **kwargs) as http:
        seen = [http.get(url).json()["client_cn"] for url in urls]

    async def main() -> list[str]:
        async with mtls_httpx.async_client(profiles, timeout=30, **kwargs) as http:
            return [(await http.get(url)).json()["client_cn"] for url in urls]

    return seen + asyncio.run(main())


def test_httpx_client_follows_the_proxy_environment_as_httpx_does(
    profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels, no_proxy_environment
):
    # httpx.Client() without transport= reads HTTPS_PROXY and NO_PROXY; mtls's client()
    # and async_client() do the same, with an mTLS transport per proxy: each backend
    # reached through the tunnel still sees its profile's identity.
    no_proxy_environment.setenv("HTTPS_PROXY", proxy.url)
    no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    urls = [backends.url("a", "/who"), backends.url("b", "/who")]
    assert _httpx_client_whos(profiles, urls) == ["client-a", "client-b"] * 2
    # Only a's host went through the proxy (b's is in NO_PROXY), once per client.
    assert proxy.targets == [f"localhost:{backends.servers['a'].port}"] * 2


def test_httpx_client_ignores_the_proxy_environment_when_told_or_given_a_proxy(
    profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels, no_proxy_environment
):
    no_proxy_environment.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens
    no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    urls = [backends.url("a", "/who"), backends.url("b", "/who")]
    # trust_env=False: no proxy at all, as with httpx.Client(trust_env=False).
    assert _httpx_client_whos(profiles, urls, trust_env=False) == ["client-a", "client-b"] * 2
    assert proxy.targets == []
    # proxy= wins over the environment, NO_PROXY included (as in httpx).
    assert _httpx_client_whos(profiles, urls, proxy=proxy.url) == ["client-a", "client-b"] * 2
    assert len(proxy.targets) == 4


def test_httpx_client_through_the_environments_proxy_verifies_the_backend(
    tmp_path, backends: Backends, proxy: _Tunnels, no_proxy_environment
):
    # The negative twin: the tunnel is taken, and the backend is still verified against
    # the profile's truststore (here without its CA).
    no_proxy_environment.setenv("HTTPS_PROXY", proxy.url)
    xml = backends.write_profiles(tmp_path / "p.xml", trust=backends.pki.other_trust)
    with SSLProfileSet.from_xml(xml) as profiles, mtls_httpx.client(profiles) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(backends.url("a"))
    assert proxy.targets == [f"localhost:{backends.servers['a'].port}"]


def test_httpx_client_fails_at_once_where_httpx_fails_on_the_environments_proxy(
    profiles: SSLProfileSet, no_proxy_environment
):
    # MTLSTransport makes httpx's transports on first use: a proxy httpx cannot use
    # failed every request, where httpx.Client() fails when it is made.
    import importlib.util

    no_proxy_environment.setenv("ALL_PROXY", "ftp://proxy.example:1")
    with pytest.raises(ValueError, match="Unknown scheme for proxy URL"):
        httpx.Client()
    with pytest.raises(ValueError, match="Unknown scheme for proxy URL"):
        mtls_httpx.client(profiles)
    with pytest.raises(ValueError, match="Unknown scheme for proxy URL"):
        MTLSTransport(profiles, proxy="ftp://proxy.example:1")
    no_proxy_environment.setenv("ALL_PROXY", "socks5://127.0.0.1:1")
    if importlib.util.find_spec("socksio") is None:
        with pytest.raises(ImportError, match="socksio"):
            mtls_httpx.async_client(profiles)
    else:  # pragma: no cover - socksio installed: both clients are made
        httpx.Client().close()
        mtls_httpx.client(profiles).close()
    # The twin: no proxy at all, or one httpx takes, and the client is made.
    no_proxy_environment.setenv("ALL_PROXY", "http://proxy.example:3128")
    mtls_httpx.client(profiles).close()


def test_httpx_client_mounts_of_the_users_own_win_over_the_environments(
    profiles: SSLProfileSet, backends: Backends, proxy: _Tunnels, no_proxy_environment
):
    no_proxy_environment.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens
    # The user's mount for the backend's URL pattern: through the real proxy.
    port = backends.servers["a"].port
    mounts = {f"https://localhost:{port}": MTLSTransport(profiles, proxy=proxy.url)}
    with mtls_httpx.client(profiles, mounts=mounts, timeout=30) as http:
        assert http.get(backends.url("a", "/who")).json()["client_cn"] == "client-a"
        with pytest.raises(httpx.ConnectError):  # the environment's proxy for the rest
            http.get(backends.url("c", "/who"))
    assert proxy.targets == [f"localhost:{port}"]


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"HTTPS_PROXY": "http://proxy:3128"},
        {"https_proxy": "proxy:3128", "http_proxy": "http://p2:80", "ALL_PROXY": "socks5://s:1"},
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost, 10.0.0.1,.internal,::1,example.com"},
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "192.168.0.0/16,http://direct.example,,"},
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "a.example,*"},
    ],
)
def test_the_proxy_environment_is_read_by_httpxs_rules(environment, no_proxy_environment):
    from httpx._utils import get_environment_proxies  # private: imported only here

    for name, value in environment.items():
        no_proxy_environment.setenv(name, value)
    ours = mtls_httpx._environment_proxies()
    assert ours == get_environment_proxies()
    # Not an agreement on nothing: every case but the first and the last has mounts.
    assert bool(ours) == (bool(environment) and "*" not in environment.get("NO_PROXY", ""))


def _trusting(ca: CA) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.cert_pem.decode())


def test_requests_through_an_https_proxy_with_proxy_ssl_context(
    profiles: SSLProfileSet, backends: Backends, https_proxy: _Tunnels, proxy_ca: CA
):
    with session(profiles, proxy_ssl_context=_trusting(proxy_ca)) as http:
        response = http.get(backends.url("a", "/who"), proxies={"https": https_proxy.url})
        assert response.json()["client_cn"] == "client-a"
    assert https_proxy.targets == [f"localhost:{backends.servers['a'].port}"]
    # The proxy asked for a certificate and got none: the identity is the backend's.
    assert https_proxy.client_certs == [None]


def test_requests_trusts_an_https_proxy_as_requests_does(
    profiles: SSLProfileSet, backends: Backends, https_proxy: _Tunnels, proxy_ca: CA, tmp_path
):
    """The proxy's own TLS session is trusted as requests trusts it (verify=, its
    REQUESTS_CA_BUNDLE, else certifi), for URLs with a profile and without; the profile
    still decides the backend's trust inside the tunnel."""
    bundle = tmp_path / "corp.pem"
    bundle.write_bytes(proxy_ca.cert_pem + backends.pki.server_ca.cert_pem)
    via = {"https": https_proxy.url}
    with session(profiles) as http:
        # A URL with a profile: the proxy by the bundle, the backend by its profile.
        response = http.get(backends.url("a", "/who"), proxies=via, verify=str(bundle))
        assert response.json()["client_cn"] == "client-a"
        # A URL without one: requests' own handling, as before (the proxy and the
        # backend by the bundle, no client certificate: the backend refuses it).
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            http.get(backends.unprofiled_url(), proxies=via, verify=str(bundle))
        assert "CERTIFICATE_VERIFY_FAILED" not in repr(caught.value)
        # The negative twin: without the bundle (certifi), the proxy is not trusted.
        with pytest.raises(requests.exceptions.ProxyError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(backends.url("a"), proxies=via)
    # An unrelated CA given as the proxy's trust fails the same way.
    with session(profiles, proxy_ssl_context=_trusting(CA(name="not the proxy's"))) as http:
        with pytest.raises(requests.exceptions.ProxyError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(backends.url("a"), proxies=via)
    assert len(https_proxy.targets) == 2  # the two requests the proxy was trusted for


def test_requests_rereads_the_proxy_bundle_when_it_changes(
    profiles: SSLProfileSet, backends: Backends, https_proxy: _Tunnels, proxy_ca: CA, tmp_path
):
    """requests reads its bundle for every new connection: a CA withdrawn from it is no
    longer trusted for the proxy, and one added is, in the same session."""
    bundle = tmp_path / "corp.pem"
    bundle.write_bytes(proxy_ca.cert_pem)
    via, verify = {"https": https_proxy.url}, str(bundle)
    with session(profiles) as http:
        response = http.get(backends.url("a", "/who"), proxies=via, verify=verify)
        assert response.json()["client_cn"] == "client-a"
        replace_atomically(bundle, CA(name="another corporate CA").cert_pem)  # withdrawn
        with pytest.raises(requests.exceptions.ProxyError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(backends.url("a"), proxies=via, verify=verify)
        replace_atomically(bundle, proxy_ca.cert_pem)  # trusted again
        response = http.get(backends.url("a", "/who"), proxies=via, verify=verify)
        assert response.json()["client_cn"] == "client-a"
    assert len(https_proxy.targets) == 2


@pytest.mark.parametrize("trusted", [True, False])
def test_httpx_through_an_https_proxy_takes_the_proxys_own_context(
    trusted: bool,
    profiles: SSLProfileSet,
    backends: Backends,
    https_proxy: _Tunnels,
    proxy_ca: CA,
):
    # httpx.Proxy(url, ssl_context=...) is httpx's own way: the transport passes it on.
    ca = proxy_ca if trusted else CA(name="not the proxy's")
    via = httpx.Proxy(https_proxy.url, ssl_context=_trusting(ca))
    with httpx.Client(transport=MTLSTransport(profiles, proxy=via)) as http:
        if not trusted:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                http.get(backends.url("a"))
            assert https_proxy.targets == []
            return
        assert http.get(backends.url("a", "/who")).json()["client_cn"] == "client-a"
    assert https_proxy.targets == [f"localhost:{backends.servers['a'].port}"]
    assert https_proxy.client_certs == [None]


def test_aiohttp_refuses_an_https_proxy_for_a_profiled_url(
    profiles: SSLProfileSet, backends: Backends, https_proxy: _Tunnels
):
    # aiohttp makes the proxy's TLS session with the request's ssl=: the profile's
    # context would offer its certificate to the proxy (which asks for one here).
    # (aiohttp ignores https:// proxies from the environment, so proxy= is the way.)
    address = https_proxy.url.removeprefix("https://")
    proxied = https_proxy.url.replace("https://", "https://user:secret-word@")

    async def main() -> None:
        async with MTLSClientSession(profiles) as http:
            with pytest.raises(ProxyProfileError, match=f"https:// proxy {address}") as caught:
                async with http.get(backends.url("a"), proxy=proxied):
                    pass
            assert "secret-word" not in str(caught.value)
            assert isinstance(caught.value, aiohttp.ClientError)
            # The twin: an explicit ssl= context is the caller's choice, and is not
            # refused (here it cannot verify the proxy: aiohttp's own error). ssl=True
            # is aiohttp's default, not a choice: the profile, so refused as above.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(
                    backends.url("a"), proxy=proxied, ssl=ssl.create_default_context()
                ):
                    pass
            with pytest.raises(ProxyProfileError):
                async with http.get(backends.url("a"), proxy=proxied, ssl=True):
                    pass
            # Without redirects the request's one middleware checks the proxy alone.
            with pytest.raises(ProxyProfileError):
                async with http.get(backends.url("a"), proxy=proxied, allow_redirects=False):
                    pass

    asyncio.run(main())
    assert https_proxy.targets == []


def test_a_novalidatecert_profile_does_not_stop_verifying_the_https_proxy(
    tmp_path, backends: Backends, https_proxy: _Tunnels, proxy_ca: CA
):
    """urllib3 gives the proxy's TLS session the pool's cert_reqs: a profile with
    novalidatecert (CERT_NONE for its backend) left the proxy unverified too. The
    adapter gives the proxy a verifying context of its own."""
    store, store_type = backends.pki.stores["a"]
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backends.servers['a'].port}", store,
                    keystore_type=store_type, attrs='novalidatecert="true"')
        )
    )  # fmt: skip
    with SSLProfileSet.from_xml(xml) as profiles, session(profiles) as http:
        with pytest.raises(requests.exceptions.ProxyError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(backends.url("a"), proxies={"https": https_proxy.url})
    assert https_proxy.targets == []
    # The twin: trusted explicitly, the proxy carries the unverified profile's request.
    with (
        SSLProfileSet.from_xml(xml) as profiles,
        session(profiles, proxy_ssl_context=_trusting(proxy_ca)) as http,
    ):
        response = http.get(backends.url("a", "/who"), proxies={"https": https_proxy.url})
        assert response.json()["client_cn"] == "client-a"
