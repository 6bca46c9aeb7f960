"""MTLSClientSession.ws_connect: a websocket handshake gets its backend's profile, and
is checked as a request is (redirects, https:// proxies), against real aiohttp servers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import mtls
from mtls.integrations import aiohttp as mtls_aiohttp
from mtls.integrations.aiohttp import (
    MTLSClientSession,
    ProxyProfileError,
    RedirectProfileError,
    request_ssl,
)
from tests._helpers import profile_xml
from tests.integrations._backend import Backends, store_xml

pytestmark = pytest.mark.keytool

SIGNED = "X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=s3cr3tsig"


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


@asynccontextmanager
async def ws_backend(
    backends: Backends, client_ca: str = "a", *, tls: bool = True
) -> AsyncIterator[int]:
    """An aiohttp websocket server on 127.0.0.1 (its port yielded) demanding clients of
    ``client_ca``: ``/ws`` sends the client certificate's CN, then echoes; ``/same``
    redirects to ``/ws``; ``/cross`` redirects to backend b (aiohttp follows only
    http(s) locations) with a signed URL's query."""
    pki = backends.pki

    async def ws(request: web.Request) -> web.WebSocketResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        answer = web.WebSocketResponse()
        await answer.prepare(request)
        await answer.send_str(str(subject.get("commonName")))
        async for message in answer:
            await answer.send_str(f"echo:{message.data}")
        return answer

    async def same(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ws")

    async def cross(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"https://127.0.0.1:{backends.servers['b'].port}/ws?{SIGNED}")

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/same", same)
    app.router.add_get("/cross", cross)
    runner = web.AppRunner(app)
    await runner.setup()
    server_ctx = (
        mtls.server_context(
            pki.server.keystore(), pki.client_cas[client_ca].truststore(), require_client_cert=True
        )
        if tls
        else None
    )
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def ws_profiles(
    path: Path, backends: Backends, port: int, *, store: str = "a", trust: Path | None = None
) -> Path:
    """Profiles for the websocket server on ``port`` (``store``'s identity) and backend b."""
    pki = backends.pki
    path.write_text(
        profile_xml(
            store_xml(f"localhost:{port}", pki.stores[store], (trust or pki.trust, "JKS")),
            store_xml(
                f"127.0.0.1:{backends.servers['b'].port}", pki.stores["b"], (pki.trust, "JKS")
            ),
        )
    )
    return path


@asynccontextmanager
async def ws_session(
    tmp_path: Path, backends: Backends, client_ca: str = "a", *, tls: bool = True, **profile: Any
) -> AsyncIterator[tuple[MTLSClientSession, int]]:
    """A session on the profiles of a websocket server of :func:`ws_backend`, and its port."""
    async with ws_backend(backends, client_ca, tls=tls) as port:
        xml = ws_profiles(tmp_path / "p.xml", backends, port, **profile)
        with mtls.SSLProfileSet.from_xml(xml) as profiles:
            async with MTLSClientSession(profiles) as http:
                yield http, port


def test_a_wss_handshake_presents_its_profiles_identity(tmp_path, backends: Backends):
    async def main() -> list[str]:
        async with ws_session(tmp_path, backends) as (http, port):
            url = f"wss://localhost:{port}/ws"
            async with http.ws_connect(url) as ws:  # the first: built off the loop
                seen = [await ws.receive_str()]
                await ws.send_str("hi")
                seen.append(await ws.receive_str())
            ws = await http.ws_connect(url)  # awaited, as aiohttp's can be
            seen.append(await ws.receive_str())
            await ws.close()
            # A redirect within the origin is followed, as for a request.
            async with http.ws_connect(f"wss://localhost:{port}/same") as ws:
                seen.append(await ws.receive_str())
            assert mtls_aiohttp._WS_CHECKS.get() is None  # reset after each
        return seen

    assert run(main) == ["client-a", "echo:hi", "client-a", "client-a"]


def test_the_inner_session_alone_sends_no_identity(tmp_path, backends: Backends):
    """The twin of the test above: the same handshake on ``session`` (no profile) is
    refused, so the identity above came from ws_connect's choice."""

    async def main() -> None:
        async with ws_session(tmp_path, backends) as (http, port):
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.session.ws_connect(f"wss://localhost:{port}/ws")

    run(main)


def test_a_wss_backend_outside_the_profiles_trust_is_refused(tmp_path, backends: Backends):
    async def main() -> None:
        async with ws_session(tmp_path, backends, trust=backends.pki.other_trust) as (http, port):
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.ws_connect(f"wss://localhost:{port}/ws")

    run(main)


def test_a_wss_backend_refusing_the_profiles_identity_fails(tmp_path, backends: Backends):
    async def main() -> None:
        async with ws_session(tmp_path, backends, client_ca="b", store="a") as (http, port):
            with pytest.raises(aiohttp.ClientError):
                async with http.ws_connect(f"wss://localhost:{port}/ws") as ws:
                    await ws.receive_str()

    run(main)


def test_a_wss_redirect_to_another_profile_is_refused_before_it_connects(
    tmp_path, backends: Backends
):
    server_b = backends.servers["b"]
    before = len(server_b.handshakes)

    async def main() -> RedirectProfileError:
        async with ws_session(tmp_path, backends) as (http, port):
            with pytest.raises(RedirectProfileError) as caught:
                await http.ws_connect(f"wss://localhost:{port}/cross?token=first-secret")
            # The checks belong to that handshake only: a request made after
            # it in the same task is checked as its own.
            assert mtls_aiohttp._WS_CHECKS.get() is None
            return caught.value

    refused = run(main)
    assert len(server_b.handshakes) == before  # b never saw a handshake
    # The message (which reaches logs) names no query; the attributes keep it.
    assert "s3cr3tsig" not in str(refused) and "first-secret" not in str(refused)
    assert refused.location.endswith(SIGNED) and refused.url.endswith("token=first-secret")
    assert "different TLS profile" in str(refused)


def test_concurrent_handshakes_each_get_their_own_checks(tmp_path, backends: Backends):
    """Two handshakes in two tasks at once: one is refused its cross-profile redirect,
    the other (within its origin) connects; neither takes the other's checks."""

    async def main() -> tuple[object, object]:
        async with ws_session(tmp_path, backends) as (http, port):

            async def first_message(path: str) -> str:
                async with http.ws_connect(f"wss://localhost:{port}{path}") as ws:
                    return await ws.receive_str()

            cross, same = await asyncio.gather(
                first_message("/cross"), first_message("/same"), return_exceptions=True
            )
            return cross, same

    cross, same = run(main)
    assert isinstance(cross, RedirectProfileError)
    assert same == "client-a"


def test_a_task_started_during_a_handshake_is_not_checked_as_one_of_its_hops(
    tmp_path, backends: Backends
):
    """A task started while the handshake runs (here by a session middleware, as a
    lazily started refresher would be) copies the context variable the handshake's
    checks live in: its later request to backend b, with an explicit ssl=, was refused
    as a redirect of that handshake, though none happened (h175)."""
    url_b = backends.url("b")

    async def main() -> object:
        spawned: list[asyncio.Task[object]] = []
        async with ws_backend(backends) as port:
            xml = ws_profiles(tmp_path / "p.xml", backends, port)
            with mtls.SSLProfileSet.from_xml(xml) as profiles:

                async def later() -> object:
                    await asyncio.sleep(0)  # runs after the task that started it moved on
                    try:
                        async with http.get(url_b, ssl=request_ssl(profiles, url_b)) as response:
                            return (await response.json())["client_cn"]
                    except Exception as exc:  # what a leak raised: shown by the assert
                        return exc

                async def starts_a_task(
                    req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
                ) -> aiohttp.ClientResponse:
                    if not spawned:
                        spawned.append(asyncio.create_task(later()))
                    return await handler(req)

                async with MTLSClientSession(profiles, middlewares=(starts_a_task,)) as http:
                    async with http.ws_connect(f"wss://localhost:{port}/ws") as ws:
                        await ws.receive_str()
                    return await spawned[0]

    assert run(main) == "client-b"


def test_plain_ws_and_an_explicit_ssl_are_used_as_given(tmp_path, backends: Backends):
    async def main() -> None:
        async with ws_session(tmp_path, backends, tls=False) as (http, port):
            async with http.ws_connect(f"ws://localhost:{port}/ws") as ws:
                assert await ws.receive_str() == "None"  # no TLS, no certificate
        async with ws_session(tmp_path, backends) as (http, port):
            trust_only = mtls.client_context(truststore=backends.pki.server_ca.truststore())
            with pytest.raises(aiohttp.ClientError):  # no client certificate
                async with http.ws_connect(f"wss://localhost:{port}/ws", ssl=trust_only) as ws:
                    await ws.receive_str()

    run(main)


def test_a_wss_handshake_through_an_https_proxy_is_refused(tmp_path, backends: Backends):
    async def main() -> None:
        async with ws_session(tmp_path, backends) as (http, port):
            with pytest.raises(ProxyProfileError):
                await http.ws_connect(f"wss://localhost:{port}/ws", proxy="https://127.0.0.1:9")

    run(main)


def test_a_redirect_refusal_says_which_way_the_identity_would_go():
    """The three refusals: from a profile to another, from a profile to none, from no
    profile (plain http://, or a host without one) to a profile."""
    first, hop = aiohttp.client.URL("https://a:1/x?q=1"), aiohttp.client.URL("https://b:2/y")
    one, other = ssl.create_default_context(), ssl.create_default_context()
    assert "different TLS profile" in str(mtls_aiohttp._redirect_refused(first, hop, one, other))
    to_none = str(mtls_aiohttp._redirect_refused(first, hop, one, True))
    assert "no TLS profile: aiohttp would send the first backend's certificate" in to_none
    from_none = str(mtls_aiohttp._redirect_refused(first, hop, True, other))
    assert "without its client certificate" in from_none and "q=1" not in from_none
