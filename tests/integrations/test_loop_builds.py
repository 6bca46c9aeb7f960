"""The async integrations never build a context on the event loop's thread.

The first request for a material builds its ALPN context: about one context's cost,
which with a big truststore is a second or more (4,000 anchors: 1.4 s measured by
the async sweep h129, the loop frozen all along). httpx's async transport and
MTLSClientSession build it on a thread of their own, and wait without blocking.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import mtls._build
from mtls import SSLProfileSet
from mtls.integrations.aiohttp import MTLSClientSession, RedirectProfileError
from mtls.integrations.httpx import AsyncMTLSTransport
from tests.integrations._backend import Backends

pytestmark = pytest.mark.keytool


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each ALPN context build ran on (a spy on the real
    build: the context is built and used as ever)."""
    seen: list[str] = []
    real = mtls._build.Served.build_variant

    def build_variant(self: Any, base: Any, alpn: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(self, base, alpn)

    monkeypatch.setattr(mtls._build.Served, "build_variant", build_variant)
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
    # One per material, each on a builder thread.
    assert len(builds) == 2 and all(n.startswith("mtls-context-build") for n in builds), builds


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_concurrent_first_requests_wait_for_one_build(
    profiles: SSLProfileSet, backends: Backends, builds: list[str], client: str
) -> None:
    """Twenty first requests at once for one material each started a build of their
    own (the review h131: with a 3,000-anchor truststore, 15 s of CPU and 340 MB where
    one build takes 0.6 s). They wait for one; the builder threads are few."""
    get = CLIENTS[client]
    release, misses = threading.Event(), []
    spied, building = mtls._build.Served.with_alpn, mtls._build.Served.build_variant

    def missed(self: Any, base: Any, alpn: Any, *, build: bool = True) -> Any:
        if not build and (base is self.localhost_context, alpn) not in self.variants:
            misses.append(1)
        return spied(self, base, alpn, build=build)

    def held(self: Any, base: Any, alpn: Any) -> Any:
        release.wait(10)  # bounded: set once every request has found it missing
        return building(self, base, alpn)

    async def main() -> list[str]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mtls._build.Served, "with_alpn", missed)
            patch.setattr(mtls._build.Served, "build_variant", held)
            tasks = [asyncio.create_task(get(profiles, backends.url("a"))) for _ in range(20)]
            for _ in range(1000):  # bounded: until all twenty wait for the context
                if len(misses) >= 20:
                    break
                await asyncio.sleep(0.01)
            release.set()
            return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["client-a"] * 20
    assert len(misses) >= 20, len(misses)
    assert len(builds) == 1, builds
    workers = {t.name for t in threading.enumerate() if t.name.startswith("mtls-context-build")}
    assert len(workers) <= 2, workers


def test_a_cancelled_first_request_leaves_the_build_to_end_and_be_kept(
    profiles: SSLProfileSet, backends: Backends, builds: list[str]
) -> None:
    """Cancelled while its context is built, the request ends; the build goes on in
    its thread, and the next request uses what it built (nothing built twice)."""
    url = backends.url("a")

    async def main() -> str:
        started, release = threading.Event(), threading.Event()
        spied = mtls._build.Served.build_variant

        def slow(self: Any, base: Any, alpn: Any) -> Any:
            started.set()
            release.wait(10)  # bounded: set once the request is cancelled
            return spied(self, base, alpn)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mtls._build.Served, "build_variant", slow)
            task = asyncio.create_task(_aiohttp_get(profiles, url))
            for _ in range(1000):  # bounded: until the build has started on its thread
                if started.is_set():
                    break
                await asyncio.sleep(0.01)
            assert started.is_set() and not task.done()
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
    assert len(builds) == 1 and builds[0].startswith("mtls-context-build"), builds


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


def test_a_refused_redirect_builds_the_hops_context_off_the_loop(
    tmp_path: Path, backends: Backends, builds: list[str]
) -> None:
    """MTLSClientSession's redirect guard asks for the next hop's context to compare
    it: it built it on the loop (the review h131). Off the loop now, as the first hop."""
    from tests.integrations.test_aiohttp import redirect_profiles, redirector

    async def main() -> str:
        async with redirector(backends) as port:
            xml = redirect_profiles(tmp_path / "p.xml", backends, port)
            with SSLProfileSet.from_xml(xml) as profiles:
                async with MTLSClientSession(profiles) as http:
                    with pytest.raises(RedirectProfileError):
                        await http.get(f"https://localhost:{port}/cross")
            return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert len(builds) == 2, builds  # the first hop's, and the refused hop's
    assert loop_thread not in builds and all(n.startswith("mtls-context-build") for n in builds)
