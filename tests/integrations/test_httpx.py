"""httpx: MTLSTransport / AsyncMTLSTransport against real mutual-TLS backends."""

from __future__ import annotations

import asyncio
import importlib
import re
import ssl
import sys
import threading

import httpx
import pytest

import mtls
from mtls import SSLProfileSet
from mtls.integrations.httpx import AsyncMTLSTransport, MTLSTransport, async_client, client
from tests.integrations._backend import (
    Backends,
    assert_each_backend_sees_its_identity,
    assert_noted,
    settings_of,
)

pytestmark = pytest.mark.keytool


def test_each_backend_sees_the_identity_its_profile_names(profiles, backends: Backends):
    with client(profiles) as http:
        assert_each_backend_sees_its_identity(http.get, backends)


def test_async_transport_sends_each_backend_its_identity(profiles, backends: Backends):
    async def main() -> list[str]:
        async with async_client(profiles) as http:
            seen = []
            for name in "abca":
                response = await http.get(backends.url(name))
                seen.append(response.json()["client_cn"])
            return seen

    assert asyncio.run(main()) == ["client-a", "client-b", "client-c", "client-a"]


def test_a_url_without_profile_sends_no_certificate_and_is_refused(
    profiles, backends: Backends, monkeypatch, tmp_path
):
    # The fallback transport is httpx's own: make it trust the backend, so that the
    # only thing missing is the client certificate.
    bundle = tmp_path / "server-ca.pem"
    bundle.write_bytes(backends.pki.server_ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server = backends.servers["a"]
    before = len(server.handshakes)
    with client(profiles) as http, pytest.raises(httpx.TransportError):
        http.get(backends.unprofiled_url())
    record = server.wait_for_handshakes(before + 1)[before]
    assert not record.accepted
    assert record.reason == "no client certificate"
    # Its profiled twin on the same backend is let in.
    with client(profiles) as http:
        assert http.get(backends.url("a")).json()["client_cn"] == "client-a"


def test_async_url_without_profile_is_refused(profiles, backends: Backends, monkeypatch, tmp_path):
    bundle = tmp_path / "server-ca.pem"
    bundle.write_bytes(backends.pki.server_ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server = backends.servers["a"]
    before = len(server.handshakes)

    made_on: list[int] = []  # the threads that made an httpx transport
    real_init = httpx.AsyncHTTPTransport.__init__

    def counted(self: httpx.AsyncHTTPTransport, *args: object, **kwargs: object) -> None:
        made_on.append(threading.get_ident())
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    async def main() -> None:
        async with async_client(profiles) as http:
            # The fallback (httpx's default context: certifi's bundle, 20 to 100 ms) is
            # made on a worker thread at the first request to a host without a profile,
            # not on the event loop's.
            monkeypatch.setattr(httpx.AsyncHTTPTransport, "__init__", counted)
            # TLS 1.3: the refusal arrives as an alert at the first read, which
            # httpcore's anyio backend lets through unmapped, as ssl.SSLError.
            with pytest.raises((httpx.TransportError, ssl.SSLError)):
                await http.get(backends.unprofiled_url())

    asyncio.run(main())
    assert server.wait_for_handshakes(before + 1)[before].reason == "no client certificate"
    assert len(made_on) == 1 and made_on[0] != threading.get_ident()  # asyncio.run's thread


def test_wrong_ca_in_the_truststore_fails_verification(tmp_path, backends: Backends):
    xml = backends.write_profiles(tmp_path / "p.xml", trust=backends.pki.other_trust)
    with SSLProfileSet.from_xml(xml) as profiles, client(profiles) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            http.get(backends.url("b"))
        # Which profile and stores the request went with (h284: nothing said so).
        assert_noted(caught.value, profiles, backends.url("b"))

        async def main() -> BaseException:
            async with async_client(profiles) as ahttp:
                try:
                    await ahttp.get(backends.url("b"))
                except (httpx.TransportError, ssl.SSLError) as exc:
                    return exc
            raise AssertionError("the handshake passed")

        assert_noted(asyncio.run(main()), profiles, backends.url("b"))


def test_contexts_are_not_changed_by_httpx(profiles, backends: Backends):
    contexts = {
        name: profiles.context_for_url(backends.url(name), alpn=("http/1.1",)) for name in "abc"
    }
    before = {name: settings_of(ctx) for name, ctx in contexts.items() if ctx is not None}
    with client(profiles) as http:
        for _ in range(3):
            for name in "abc":
                http.get(backends.url(name))
    assert {name: settings_of(ctx) for name, ctx in contexts.items() if ctx} == before


def test_transport_is_plain_httpx_underneath(profiles, backends: Backends):
    transport = MTLSTransport(profiles, retries=1, limits=httpx.Limits(max_connections=4))
    with httpx.Client(transport=transport) as http:
        assert http.get(backends.url("c")).json()["client_cn"] == "client-c"
        # HTTP/1.1 with keep-alive, as the backend serves it.
        assert http.get(backends.url("c")).json()["http_version"] == "HTTP/1.1"


@pytest.mark.parametrize("transport", [MTLSTransport, AsyncMTLSTransport])
@pytest.mark.parametrize("argument", ["verify", "cert"])
def test_verify_and_cert_are_refused(profiles, transport, argument):
    # Named as the class the user made (it said httpx's HTTPTransport).
    with pytest.raises(TypeError, match=f"^{transport.__name__} does not take {argument}="):
        transport(profiles, **{argument: False})


def test_unknown_transport_arguments_fail_at_construction(profiles):
    with pytest.raises(TypeError):
        MTLSTransport(profiles, no_such_option=1)


@pytest.mark.parametrize("make", [client, async_client])
@pytest.mark.parametrize(
    "pattern",
    [
        "https://",
        "all://",
        "all://*",
        "HTTPS://*",
        "https://*:443",
        "https:",
        "all:",
        "all://*:8443",
    ],
)
def test_a_transport_mounted_for_every_https_url_is_refused(profiles, backends, make, pattern):
    """mounts={"https://": httpx.HTTPTransport()} routed every backend around the
    profile set (no client certificate: the backend refused), where transport= is
    refused for that (h185). The twin: a mount for one origin is the user's to make,
    and the other backends keep their profiles."""
    with pytest.raises(TypeError, match=f"a transport mounted for '{re.escape(pattern)}'"):
        make(profiles, mounts={pattern: httpx.HTTPTransport()})
    elsewhere = {
        "https://api.example.com": httpx.HTTPTransport(),
        "all://*.example.com": httpx.HTTPTransport(),
        "http://": httpx.HTTPTransport(),
        "https://": None,
    }
    with client(profiles, mounts=elsewhere) as http:
        assert http.get(backends.url("c")).json()["client_cn"] == "client-c"


@pytest.mark.parametrize("argument", ["verify", "cert", "transport"])
def test_client_refuses_what_the_transport_decides(profiles, argument):
    with pytest.raises(TypeError, match=f"{argument}="):
        client(profiles, **{argument: None})
    with pytest.raises(TypeError, match=f"{argument}="):
        async_client(profiles, **{argument: None})


def test_client_passes_transport_options_to_the_transport(profiles):
    with client(profiles, http2=False, limits=httpx.Limits(max_connections=3), timeout=4) as http:
        assert http.timeout.connect == 4


def test_a_missing_httpx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "mtls.integrations.httpx")
    with pytest.raises(
        ImportError,
        match=r'pip install "mtls-profiles\[httpx\]" \(from a checkout: pip install -e "\.\[httpx\]"\)',
    ):
        importlib.import_module("mtls.integrations.httpx")


def test_every_integration_refuses_what_is_not_a_profile_set_saying_what_to_pass():
    # A context (mtls_client_context's, say) gave "'SSLContext' object has no attribute
    # 'generation'" from deep inside; a path, "no attribute 'context_for_url'".
    import grpc  # noqa: F401 - the gRPC integration needs it

    from mtls.integrations import aiohttp as mtls_aiohttp
    from mtls.integrations import grpc as mtls_grpc
    from mtls.integrations import requests as mtls_requests

    ctx = ssl.create_default_context()
    makers = {
        "MTLSTransport": MTLSTransport,
        "AsyncMTLSTransport": AsyncMTLSTransport,
        "MTLSAdapter": mtls_requests.MTLSAdapter,
        "MTLSClientSession": mtls_aiohttp.MTLSClientSession,
        "request_ssl": lambda given: mtls_aiohttp.request_ssl(given, "https://a.example/"),
        "secure_channel": lambda given: mtls_grpc.secure_channel("a.example:443", given),
        "aio_secure_channel": lambda given: mtls_grpc.aio_secure_channel("a.example:443", given),
    }
    for who, make in makers.items():
        with pytest.raises(TypeError) as caught:
            make(ctx)
        hint = (
            # gRPC reads the stores' material, which a context cannot give back.
            "a context's key cannot be read back: for one identity for every target, "
            "mtls.SSLProfileSet([], default=mtls.SSLProfile(servers=('*',), "
            "keystore=mtls.StoreConfig(...), truststore=mtls.StoreConfig(...)))"
            if "secure_channel" in who
            else "for one context for every host: mtls.SSLProfileSet([], default=ctx)"
        )
        assert str(caught.value) == f"{who} takes an mtls.SSLProfileSet, not SSLContext; {hint}"
        with pytest.raises(TypeError, match=r"not str; from a WSO2 profile file: "):
            make("sslprofiles.xml")
    # The hint works: one context for every host, through every client.
    with SSLProfileSet([], default=ctx) as every:
        assert mtls_aiohttp.request_ssl(every, "https://a.example/") is ctx
        MTLSTransport(every).close()
        mtls_requests.MTLSAdapter(every).close()

        class Wrapper:  # a set behind a wrapper of the user's: duck-typed, taken
            def __init__(self, inner: SSLProfileSet) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> object:
                return getattr(self._inner, name)

        MTLSTransport(Wrapper(every)).close()  # type: ignore[arg-type]
        assert mtls_aiohttp.request_ssl(Wrapper(every), "https://a.example/") is ctx  # type: ignore[arg-type]


def test_a_closed_transport_refuses_requests(profiles, backends: Backends):
    """A transport shared by two clients, closed by one: the other's requests made new
    pools that nothing closed or followed (26 trials of 30 in a sweep). They are
    refused now, sync and async. The twin: before close() the same request works."""
    transport = MTLSTransport(profiles)
    with httpx.Client(transport=transport) as http:
        assert http.get(backends.url("a")).json()["client_cn"] == "client-a"
        transport.close()
        with pytest.raises(RuntimeError, match="transport is closed"):
            http.get(backends.url("a"))
    assert transport._pools._entries == {}

    async def main() -> None:
        async_transport = AsyncMTLSTransport(profiles)
        async with httpx.AsyncClient(transport=async_transport) as http:
            assert (await http.get(backends.url("b"))).json()["client_cn"] == "client-b"
            await async_transport.aclose()
            with pytest.raises(RuntimeError, match="transport is closed"):
                await http.get(backends.url("b"))

    asyncio.run(main())


def test_a_cancelled_aclose_still_closes_every_pool(profiles, backends: Backends, monkeypatch):
    """aclose() took the pools out, then waited for closes a cancelled request left
    running: a cancellation meanwhile (a timeout around the shutdown) left every pool
    it had taken unclosed, its connections open for good. They are closed all the
    same now. The twin: an aclose() not cancelled closes them too."""
    closed: list[object] = []
    original = httpx.AsyncHTTPTransport.aclose

    async def recording(self: httpx.AsyncHTTPTransport) -> None:
        closed.append(self)
        await original(self)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "aclose", recording)

    async def main(cancelled: bool) -> int:
        transport = AsyncMTLSTransport(profiles)
        http = httpx.AsyncClient(transport=transport)
        assert (await http.get(backends.url("a"))).json()["client_cn"] == "client-a"
        pools = len(transport._pools.resources())
        if cancelled:
            stuck = asyncio.ensure_future(asyncio.Event().wait())  # a close that hangs
            transport._closing.add(stuck)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(transport.aclose(), 0.2)
            stuck.cancel()
            for _ in range(200):  # bounded: the closes run in a task of their own
                if len(closed) >= pools:
                    break
                await asyncio.sleep(0.01)
        else:
            await transport.aclose()
        return pools

    for cancelled in (True, False):
        closed.clear()
        pools = asyncio.run(main(cancelled))
        assert pools >= 1 and len(closed) >= pools, (cancelled, pools, closed)


def test_a_failure_note_writes_an_ipv6_backend_in_brackets() -> None:
    """The note names the backend as a URL takes it: ``::1:8443`` was no URL."""
    from mtls.integrations import _note_tls_failure

    with SSLProfileSet([mtls.SSLProfile(servers=("[::1]:8443",))]) as profiles:
        exc = httpx.ConnectError("handshake")
        exc.__cause__ = ssl.SSLError(1, "certificate verify failed")
        _note_tls_failure(exc, profiles, ("::1", 8443), None)
        (note,) = exc.__notes__
        assert note.startswith("mtls: [::1]:8443 is served by profile [::1]:8443")
        assert "mtls probe https://[::1]:8443/ " in note
        # Not a TLS failure: no note.
        refused = httpx.ConnectError("refused")
        refused.__cause__ = ConnectionRefusedError(111, "refused")
        _note_tls_failure(refused, profiles, ("::1", 8443), None)
        assert not getattr(refused, "__notes__", None)
