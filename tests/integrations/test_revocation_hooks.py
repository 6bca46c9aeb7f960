"""Every HTTP integration runs the online revocation check before sending a request.

The backends are real HTTPS servers on loopback whose certificates name a real
``openssl ocsp`` responder; each counts the requests it receives, so "refused
before any request" is observed, not assumed.
"""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import socket
import ssl
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import mtls
from mtls import (
    CertificateRevokedError,
    RevocationPolicy,
    RevocationUnknownError,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
)
from mtls.integrations import httpx as mtls_httpx
from mtls.integrations import requests as mtls_requests
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.testing import CA, IssuedIdentity
from tests._helpers import PASSWORD, python_within, write_trust
from tests.revocation._infra import PKI, revocation_pki


class CountingHTTPS:
    """An HTTPS server (no client certificate asked) that counts the requests it gets."""

    def __init__(self, identity: IssuedIdentity) -> None:
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        ctx = mtls.server_context(
            identity.keystore(), trust_system_cas=True, require_client_cert=False
        )
        ctx.verify_mode = ssl.CERT_NONE  # a test server: it asks no client certificate

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[ssl.SSLSocket, object]:
                raw, address = self.socket.accept()
                try:
                    return ctx.wrap_socket(raw, server_side=True), address
                except (ssl.SSLError, OSError):
                    raw.close()
                    raise

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up after the handshake (refused) is expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@dataclass
class Env:
    pki: PKI
    good: CountingHTTPS
    revoked: CountingHTTPS
    unknown: CountingHTTPS
    trust: Path

    def url(self, server: CountingHTTPS) -> str:
        return f"https://localhost:{server.port}/"

    def profiles(self, **policy: object) -> SSLProfileSet:
        servers = tuple(f"localhost:{s.port}" for s in (self.good, self.revoked, self.unknown))
        profile = SSLProfile(
            servers=servers,
            truststore=StoreConfig(location=self.trust, type="JKS", password=PASSWORD),
        )
        return SSLProfileSet([profile], revocation=RevocationPolicy(crl=False, **policy))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def env(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    directory = tmp_path_factory.mktemp("hooks")
    with revocation_pki(openssl_bin, directory / "ocsp") as pki:
        good, revoked, unknown = (CountingHTTPS(i) for i in (pki.good, pki.revoked, pki.unknown))
        servers = [good, revoked, unknown]
        try:
            yield Env(pki, good, revoked, unknown, write_trust(pki.ca, directory / "trust.jks"))
        finally:
            for server in servers:
                server.close()


def test_httpx_refuses_a_revoked_server_before_any_request(env: Env) -> None:
    with env.profiles() as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        assert http.get(env.url(env.good)).json() == {"ok": True}
        before = env.revoked.requests
        with pytest.raises(CertificateRevokedError) as caught:
            http.get(env.url(env.revoked))
        assert env.revoked.requests == before == 0
        assert caught.value.serial == env.pki.revoked.serial_number
        assert caught.value.host == "localhost"
        assert caught.value.revocation_reason == "keyCompromise"


def test_httpx_hard_and_soft_fail_for_an_unknown_certificate(env: Env) -> None:
    with env.profiles() as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        with pytest.raises(RevocationUnknownError):
            http.get(env.url(env.unknown))
        assert env.unknown.requests == 0
    with env.profiles(mode="soft") as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        assert http.get(env.url(env.unknown)).json() == {"ok": True}
        assert env.unknown.requests == 1
        with pytest.raises(CertificateRevokedError):
            http.get(env.url(env.revoked))


def test_httpx_async_refuses_a_revoked_server(env: Env) -> None:
    async def main() -> None:
        with env.profiles() as profiles:
            async with mtls_httpx.async_client(profiles, timeout=30) as http:
                assert (await http.get(env.url(env.good))).json() == {"ok": True}
                with pytest.raises(CertificateRevokedError):
                    await http.get(env.url(env.revoked))

    asyncio.run(main())
    assert env.revoked.requests == 0


def test_requests_refuses_a_revoked_server(env: Env) -> None:
    with env.profiles() as profiles, mtls_requests.session(profiles) as http:
        assert http.get(env.url(env.good), timeout=30).json() == {"ok": True}
        # raised as is: urllib3 neither retries nor wraps what is not an OSError
        with pytest.raises(CertificateRevokedError):
            http.get(env.url(env.revoked), timeout=30)
    assert env.revoked.requests == 0


def test_aiohttp_refuses_a_revoked_server(env: Env) -> None:
    async def main() -> None:
        with env.profiles() as profiles:
            async with MTLSClientSession(profiles) as http:
                async with http.get(env.url(env.good)) as response:
                    assert await response.json() == {"ok": True}
                with pytest.raises(CertificateRevokedError):
                    async with http.get(env.url(env.revoked)):
                        pass

    asyncio.run(main())
    assert env.revoked.requests == 0


def test_contexts_without_revocation_do_not_check(env: Env) -> None:
    # The negative control: the same revoked server, no policy: served.
    profile = SSLProfile(
        servers=(f"localhost:{env.revoked.port}",),
        truststore=StoreConfig(location=env.trust, type="JKS", password=PASSWORD),
    )
    with SSLProfileSet([profile]) as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        assert profiles.revocation is None
        assert http.get(env.url(env.revoked)).json() == {"ok": True}
    assert env.revoked.requests == 1


def test_one_cache_serves_every_connection_of_a_set(env: Env) -> None:
    with env.profiles() as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        checker = profiles.revocation
        assert checker is not None
        for _ in range(3):
            http.get(env.url(env.good))
        with mtls_httpx.client(profiles, timeout=30) as other:
            other.get(env.url(env.good))
        assert checker.fetches == 1


def test_a_novalidatecert_profile_is_not_checked(env: Env) -> None:
    profile = SSLProfile(servers=(f"localhost:{env.revoked.port}",), novalidatecert=True)
    with (
        SSLProfileSet([profile], revocation=RevocationPolicy()) as profiles,
        mtls_httpx.client(profiles, timeout=30) as http,
    ):
        ctx = profiles.context_for("localhost", env.revoked.port)
        assert ctx is not None and ctx.sslsocket_class is ssl.SSLSocket
        http.get(env.url(env.revoked))


def test_a_plain_wrap_socket_checks_too(env: Env) -> None:
    import socket

    ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=RevocationPolicy())
    for server, refused in ((env.good, False), (env.revoked, True)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            if refused:
                with pytest.raises(CertificateRevokedError):
                    ctx.wrap_socket(raw, server_hostname="localhost")
            else:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    assert tls.version() is not None


def test_a_ca_without_locations_is_refused_in_hard_fail(tmp_path: Path) -> None:
    ca = CA()
    server = CountingHTTPS(ca.issue_cert("localhost"))
    try:
        ctx = mtls.client_context(None, ca.truststore(), revocation=RevocationPolicy())
        with httpx.Client(verify=ctx, timeout=30) as http:
            with pytest.raises(RevocationUnknownError, match="names no OCSP and no CRL"):
                http.get(f"https://localhost:{server.port}/")
        assert server.requests == 0
    finally:
        server.close()


def _implicit_get(env: Env, server: CountingHTTPS) -> bytes:
    """A GET over ``wrap_socket(do_handshake_on_connect=False)``: the handshake
    happens inside the first write."""
    ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=RevocationPolicy(crl=False))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    with ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return tls.recv(100)


def test_an_implicit_handshake_is_checked_before_the_first_write(env: Env) -> None:
    before = env.revoked.requests
    with pytest.raises(CertificateRevokedError):
        _implicit_get(env, env.revoked)
    assert env.revoked.requests == before
    # the twin: a good server answers through the same implicit handshake
    assert _implicit_get(env, env.good).startswith(b"HTTP/1.0 200")


def test_a_checker_dies_with_its_contexts(env: Env) -> None:
    refs = []
    for _ in range(3):
        checker = mtls.RevocationChecker(RevocationPolicy(crl=False))
        ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=checker)
        refs.append(weakref.ref(checker))
        kept = weakref.ref(ctx)
        del ctx, checker
    gc.collect()
    assert kept() is None
    assert [r() for r in refs] == [None, None, None]
    # the twin: a checker whose context is alive is alive
    checker = mtls.RevocationChecker(RevocationPolicy(crl=False))
    ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=checker)
    ref = weakref.ref(checker)
    del checker
    gc.collect()
    assert ref() is not None
    assert ctx.sslobject_class is not ssl.SSLObject


def test_an_async_refusal_from_the_cache_is_counted_once(env: Env) -> None:
    """The event loop's handshake finds the refusal in the cache and leaves it owed;
    the owed check raises it without checking (and counting) again."""

    async def main(profiles: SSLProfileSet) -> None:
        async with mtls_httpx.async_client(profiles, timeout=30) as http:
            with pytest.raises(CertificateRevokedError):
                await http.get(env.url(env.revoked))

    before = env.revoked.requests
    with env.profiles() as profiles:
        with mtls_httpx.client(profiles, timeout=30) as http:  # fills the cache
            with pytest.raises(CertificateRevokedError):
                http.get(env.url(env.revoked))
        assert dict(profiles.status().revocation_checks) == {"revoked": 1}
        asyncio.run(main(profiles))
        assert dict(profiles.status().revocation_checks) == {"revoked": 2}
    assert env.revoked.requests == before


def test_profile_status_shows_the_revocation_state(env: Env) -> None:
    with env.profiles() as profiles, mtls_httpx.client(profiles, timeout=30) as http:
        (before,) = profiles.status().profiles
        assert before.revocation is not None
        assert before.revocation.mode == "hard"
        assert before.revocation.statuses == ()  # nothing seen yet
        http.get(env.url(env.good))
        (after,) = profiles.status().profiles
        assert after.revocation is not None
        (status,) = after.revocation.statuses
        assert status.status == "good"
        assert status.serial == env.pki.good.serial_number
        shown = json.loads(json.dumps(after.to_dict()))["revocation"]
        assert shown["mode"] == "hard"
        assert shown["statuses"][0]["status"] == "good"
    # the twin: without revocation there is no state
    profile = SSLProfile(
        servers=("localhost:1",),
        truststore=StoreConfig(location=env.trust, type="JKS", password=PASSWORD),
    )
    with SSLProfileSet([profile]) as plain:
        (entry,) = plain.status().profiles
        assert entry.revocation is None
        assert entry.to_dict()["revocation"] is None


_GEVENT = """
from gevent import monkey
monkey.patch_all()
import json, socket, gevent
import mtls
from mtls.testing import CA

ca = CA()  # names no OCSP and no CRL: hard-fail refuses, soft-fail lets through
server = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
listener = socket.create_server(("127.0.0.1", 0))
seen = {}

def serve():
    conn, _ = listener.accept()
    try:
        with server.wrap_socket(conn, server_side=True) as tls:
            tls.recv(5)
            tls.sendall(b"hello")
    except OSError:
        pass

for mode in ("hard", "soft"):
    worker = gevent.spawn(serve)
    client = mtls.client_context(
        ca.issue_cert("client").keystore(), ca.truststore(),
        revocation=mtls.RevocationPolicy(mode=mode),
    )
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping!")
                seen[mode] = tls.recv(5).decode()
    except Exception as exc:
        seen[mode] = type(exc).__name__
    worker.kill()
print(json.dumps(seen))
"""


def test_gevents_patched_sockets_are_checked() -> None:
    """Under gevent, a checked context's sockets are gevent's own class with the check
    mixed in: every connection failed with a TypeError (gevent's do_handshake takes no
    ``block``), in soft-fail as in hard."""
    pytest.importorskip("gevent")
    done = python_within(_GEVENT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"hard": "RevocationUnknownError", "soft": "hello"}


def test_a_refusal_leaves_a_socket_its_caller_drives_open_and_refused(env: Env) -> None:
    """tornado's client drives the handshake (``do_handshake_on_connect=False``) with
    the socket registered in its loop, and closes it on an error: closed under it by
    the check, tornado's next connection failed ("fd added twice"). The socket stays
    open until its caller closes it, and every write on it is refused."""
    ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=RevocationPolicy())
    before = env.revoked.requests
    with socket.create_connection(("127.0.0.1", env.revoked.port), timeout=30) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        with pytest.raises(CertificateRevokedError):
            tls.do_handshake()
        assert tls.fileno() != -1
        with pytest.raises(CertificateRevokedError):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        tls.close()
    assert env.revoked.requests == before  # nothing was sent


def test_tornados_client_goes_on_after_a_refusal(env: Env) -> None:
    """tornado's AsyncHTTPClient after a refused backend: its next request failed with
    "fd added twice" (the check had closed the socket under tornado's loop)."""
    pytest.importorskip("tornado")
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    ctx = mtls.client_context(None, env.pki.ca.truststore(), revocation=RevocationPolicy())

    async def main() -> list[str]:
        client = AsyncHTTPClient(force_instance=True)
        seen = []
        try:
            for server in (env.revoked, env.good, env.revoked, env.good):
                request = HTTPRequest(env.url(server), ssl_options=ctx, request_timeout=30)
                try:
                    seen.append(str((await client.fetch(request)).code))
                except CertificateRevokedError:
                    seen.append("revoked")
        finally:
            client.close()
        return seen

    assert asyncio.run(main()) == ["revoked", "200", "revoked", "200"]
