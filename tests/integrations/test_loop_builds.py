"""The async integrations never build a context on the event loop's thread.

The first request for a material builds its ALPN context: about one context's cost,
which with a big truststore is a second or more (4,000 anchors: 1.4 s measured by
the async sweep h129, the loop frozen all along). httpx's async transport and
MTLSClientSession build it on a thread of their own, and wait without blocking.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

import mtls._build
from mtls import SSLProfileSet
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.integrations.httpx import AsyncMTLSTransport
from tests.integrations._backend import Backends

pytestmark = pytest.mark.keytool


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each ALPN context build ran on (a spy on the real
    build: the context is built and used as ever)."""
    seen: list[str] = []
    real = mtls._build.Served.with_alpn

    def with_alpn(self: Any, base: Any, alpn: Any, *, build: bool = True) -> Any:
        if build and (base is self.localhost_context, alpn) not in self.variants:
            seen.append(threading.current_thread().name)
        return real(self, base, alpn, build=build)

    monkeypatch.setattr(mtls._build.Served, "with_alpn", with_alpn)
    return seen


async def _httpx_get(profiles: SSLProfileSet, url: str) -> str:
    async with httpx.AsyncClient(transport=AsyncMTLSTransport(profiles)) as http:
        response = await http.get(url)
        return str(response.json()["client_cn"])


async def _aiohttp_get(profiles: SSLProfileSet, url: str) -> str:
    async with MTLSClientSession(profiles) as http, http.get(url) as response:
        return str((await response.json())["client_cn"])


CLIENTS = {"httpx": _httpx_get, "aiohttp": _aiohttp_get}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_the_first_request_builds_its_context_off_the_loop(
    profiles: SSLProfileSet, backends: Backends, builds: list[str], client: str
) -> None:
    get = CLIENTS[client]

    async def main() -> tuple[list[str], list[str]]:
        loop_thread = threading.current_thread().name
        first = [await get(profiles, backends.url(name)) for name in "ab"]
        built_first = list(builds)
        # Twin: built already, the next requests build nothing, anywhere.
        again = [await get(profiles, backends.url(name)) for name in "ab"]
        assert builds == built_first, builds
        assert loop_thread not in builds, (loop_thread, builds)
        return first, again

    first, again = asyncio.run(main())
    assert first == again == ["client-a", "client-b"]
    assert builds == ["mtls-context-build"] * 2  # one per material, each off the loop


def test_a_cancelled_first_request_leaves_the_build_to_end_and_be_kept(
    profiles: SSLProfileSet, backends: Backends, builds: list[str]
) -> None:
    """Cancelled while its context is built, the request ends; the build goes on in
    its thread, and the next request uses what it built (nothing built twice)."""
    url = backends.url("a")

    async def main() -> str:
        release = threading.Event()
        spied = mtls._build.Served.with_alpn

        def slow(self: Any, base: Any, alpn: Any, *, build: bool = True) -> Any:
            if build:
                release.wait(10)  # bounded: set once the request is cancelled
            return spied(self, base, alpn, build=build)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mtls._build.Served, "with_alpn", slow)
            task = asyncio.create_task(_aiohttp_get(profiles, url))
            while not builds:  # the build has started on its thread
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
        # The next request waits for nothing to be built again: it waits on the same
        # variant, kept by the set once the thread ends (bounded by the loop below).
        for _ in range(500):
            if _variant_built(profiles, backends):
                break
            await asyncio.sleep(0.01)
        return await _aiohttp_get(profiles, url)

    assert asyncio.run(main()) == "client-a"
    assert builds == ["mtls-context-build"], builds


def _variant_built(profiles: SSLProfileSet, backends: Backends) -> bool:
    url = httpx.URL(backends.url("a"))
    host, port = url.host, url.port
    assert port is not None
    try:
        profiles._context_built(
            host, port, client_id=None, alpn=("http/1.1",), server_hostname=None
        )
    except mtls._build.NotBuilt:
        return False
    return True
