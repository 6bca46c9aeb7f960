"""Rotation through connection pools: every client follows an in-place keystore rotation.

The backend reports the client certificate's CN per request. With keep-alive
and no retirement, the old CN would keep appearing on the pooled connection;
the kernel's TCP table shows whether that connection was closed.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mtls import (
    Keystore,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    Truststore,
    client_context,
)
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.integrations.httpx import async_client, client
from mtls.integrations.requests import session
from mtls.testing import CA, MTLSServer, replace_atomically
from tests._helpers import PASSWORD, jks, profile, profile_xml, wait_for
from tests.integrations._backend import (
    counting_lookups,
    established,
    patched_lookup,
    tcp_table_available,
)

INTERVAL = 0.2


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="rotation CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, ca: CA, backend: MTLSServer) -> tuple[Path, Path]:
    """A profile file for localhost:PORT, its keystore holding CN=gen-1."""
    keystore = tmp_path / "gateway.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    return xml, keystore


def rotate(ca: CA, keystore: Path, cn: str) -> None:
    """Replace the keystore file atomically with a new identity."""
    replace_atomically(keystore, jks(ca, cn))


# --------------------------------------------------------------------------- drivers


class Driver:
    """One client instance, driven synchronously: ``cn(url)`` is one GET."""

    name = ""
    closes_idle_without_traffic = False  # the sync clients sweep from the reload callback
    closes_idle_on_next_request = True  # aiohttp leaves them to keepalive_timeout

    def cn(self, url: str) -> str:
        return str(self.json(url)["client_cn"])

    def json(self, url: str) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class HttpxDriver(Driver):
    name = "httpx"
    closes_idle_without_traffic = True

    def __init__(self, profiles: SSLProfileSet) -> None:
        self.http = client(profiles)

    def json(self, url: str) -> dict[str, Any]:
        response = self.http.get(url)
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.http.close()


class RequestsDriver(Driver):
    name = "requests"
    closes_idle_without_traffic = True

    def __init__(self, profiles: SSLProfileSet) -> None:
        self.http = session(profiles)

    def json(self, url: str) -> dict[str, Any]:
        response = self.http.get(url, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.http.close()


class AsyncHttpxDriver(Driver):
    name = "httpx-async"

    def __init__(self, profiles: SSLProfileSet) -> None:
        self.runner = asyncio.Runner()
        self.http = self.runner.run(self._make(profiles))

    @staticmethod
    async def _make(profiles: SSLProfileSet) -> Any:
        return async_client(profiles)

    def json(self, url: str) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            response = await self.http.get(url)
            response.raise_for_status()
            return dict(response.json())

        return self.runner.run(get())

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()


class AiohttpDriver(Driver):
    name = "aiohttp"
    closes_idle_on_next_request = False

    def __init__(self, profiles: SSLProfileSet) -> None:
        self.runner = asyncio.Runner()
        self.http = self.runner.run(self._make(profiles))

    @staticmethod
    async def _make(profiles: SSLProfileSet) -> MTLSClientSession:
        return MTLSClientSession(profiles)

    def json(self, url: str) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            async with self.http.get(url) as response:
                response.raise_for_status()
                return dict(await response.json())

        return self.runner.run(get())

    def close(self) -> None:
        self.runner.run(self.http.close())
        self.runner.close()


DRIVERS: list[Callable[[SSLProfileSet], Driver]] = [
    HttpxDriver,
    AsyncHttpxDriver,
    RequestsDriver,
    AiohttpDriver,
]


@contextmanager
def driving(kind: Callable[[SSLProfileSet], Driver], profiles: SSLProfileSet) -> Iterator[Driver]:
    driver = kind(profiles)
    try:
        yield driver
    finally:
        driver.close()


def last_client_port(server: MTLSServer) -> int:
    return [h for h in server.handshakes if h.accepted][-1].peer[1]


needs_tcp_table = pytest.mark.skipif(not tcp_table_available(), reason="no /proc/net/tcp")


# --------------------------------------------------------------------------- tests


@needs_tcp_table
@pytest.mark.parametrize("kind", DRIVERS, ids=lambda k: k.name)
def test_the_same_client_presents_the_new_identity_after_a_rotation(
    kind, setup, ca: CA, backend: MTLSServer
):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with (
        SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0.05) as profiles,
        driving(kind, profiles) as driver,
    ):
        assert driver.cn(url) == "gen-1"
        old_port = last_client_port(backend)
        handshakes = len(backend.handshakes)
        assert driver.cn(url) == "gen-1"
        assert len(backend.handshakes) == handshakes, "keep-alive: no new handshake"
        assert established(old_port, backend.port)

        rotate(ca, keystore, "gen-2")
        seen: list[str] = []

        def serves_gen_2() -> bool:
            seen.append(driver.cn(url))
            return seen[-1] == "gen-2"

        wait_for(serves_gen_2)  # a bounded poll, not a fixed wait
        # The reload thread may publish gen-2 before the first poll: never a third.
        assert seen[-1] == "gen-2" and set(seen) <= {"gen-1", "gen-2"}
        assert profiles.generation == 1
        # From now on only the new identity, on one new keep-alive connection.
        new_port = last_client_port(backend)
        assert new_port != old_port
        assert [driver.cn(url) for _ in range(3)] == ["gen-2"] * 3
        assert last_client_port(backend) == new_port
        if driver.closes_idle_on_next_request:
            wait_for(lambda: not established(old_port, backend.port))


@needs_tcp_table
@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_sync_clients_close_idle_old_connections_without_new_traffic(
    kind, setup, ca: CA, backend: MTLSServer
):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with (
        SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0.05) as profiles,
        driving(kind, profiles) as driver,
    ):
        assert driver.cn(url) == "gen-1"
        old_port = last_client_port(backend)
        rotate(ca, keystore, "gen-2")
        wait_for(lambda: profiles.generation == 1)
        wait_for(lambda: not established(old_port, backend.port))
        assert driver.cn(url) == "gen-2"


@pytest.fixture
def catch_all(tmp_path: Path, ca: CA) -> tuple[Path, Path, Path]:
    """A profile file with only the catch-all ``*`` (keystore CN=gen-1)."""
    keystore = tmp_path / "star.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile("*", keystore, trust)))
    return xml, keystore, trust


def _give_loopback_a_profile(
    catch_all: tuple[Path, Path, Path], ca: CA, backend: MTLSServer
) -> None:
    """Rewrite the catch-all's profile file with a profile of its own (CN=named) for
    ``127.0.0.1:PORT``; the catch-all stays as it was."""
    xml, keystore, trust = catch_all
    named = keystore.with_name("named.jks")
    named.write_bytes(jks(ca, "named"))
    replace_atomically(
        xml,
        profile_xml(
            profile("*", keystore, trust), profile(f"127.0.0.1:{backend.port}", named, trust)
        ).encode(),
    )


def _refused_hosts(driver: Driver, first: int, count: int) -> None:
    """One request to each of ``count`` loopback addresses, port 1 (refused at once):
    each is a host the catch-all serves, leased and released like any other."""
    for i in range(first, first + count):
        with pytest.raises(Exception, match=r"(?i)refused|connect"):
            driver.json(f"https://127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:1/")


@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_a_catch_all_client_keeps_nothing_per_host(kind, catch_all, ca, backend):
    """A client sending to every host a catch-all serves (webhooks, tenants) holds what
    its one context needs, not a record per host: a reload's sweep asks the set which
    contexts it serves, never each host again (it used to keep every host it saw:
    about 190 bytes each, and a sweep that looked each up under the pool's lock)."""
    xml, keystore, _ = catch_all
    url = f"https://localhost:{backend.port}/"
    with (
        SSLProfileSet.from_xml(xml, settle_delay=0) as profiles,
        driving(kind, profiles) as driver,
    ):
        assert driver.cn(url) == "gen-1"
        _refused_hosts(driver, 1, 500)  # the clients' own caches (urllib3's pools) fill
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            _refused_hosts(driver, 1000, 2000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # Remembering the hosts grew 380 KiB (httpx) and 465 KiB (requests) here; what
        # is left is the clients' own churn (about 10 and 95 KiB, whatever the count).
        assert grown < 160 * 1024, f"{grown:,} bytes kept for 2,000 hosts"
        # The pool still follows a rotation, and serves the hosts it served.
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        assert driver.cn(url) == "gen-2"


@pytest.mark.parametrize("default", ["profile", "context"])
def test_every_context_handed_out_is_in_service_until_its_material_rotates(tmp_path, ca, default):
    """What the pools' sweep relies on: every context a lookup hands out (a profile's,
    its localhost variant, ALPN variants, the default, a ready default context) is in
    the snapshot's contexts in service; after a rotation the old ones are not."""
    keystore = tmp_path / "a.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    stores = {
        "keystore": StoreConfig(location=keystore, password=PASSWORD),
        "truststore": StoreConfig(location=trust, password=PASSWORD),
    }
    named = SSLProfile(servers=("a.test:443", "localhost:443"), **stores)
    fallback: ssl.SSLContext | SSLProfile = (
        client_context(Keystore.load(keystore, PASSWORD), Truststore.load(trust, PASSWORD))
        if default == "context"
        else SSLProfile(servers=("*",), **stores)
    )
    with SSLProfileSet(
        [named], default=fallback, hostname_verifier="DefaultAndLocalhost", settle_delay=0
    ) as profiles:

        def handed_out() -> set[int]:
            found = {
                profiles.context_for(host, 443, alpn=alpn)
                for host in ("a.test", "localhost", "elsewhere.test")
                for alpn in (None, ["h2"], ["http/1.1"])
            }
            assert None not in found
            return {id(ctx) for ctx in found}

        before = handed_out()
        # Its context, the localhost one, and an ALPN variant of each, per list.
        assert len(before) >= 6
        assert before <= profiles._snapshot.contexts_in_service()
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        after = handed_out()
        assert after <= profiles._snapshot.contexts_in_service()
        # A ready default context is the same object whatever rotates; every other
        # context was replaced, and is no longer in service.
        kept = {id(fallback)} if default == "context" else set()
        assert before & profiles._snapshot.contexts_in_service() == kept


def test_the_contexts_in_service_keep_no_rotated_context_alive(setup, ca: CA) -> None:
    """What the set remembers for the pools' sweeps (the contexts it hands out) holds its
    snapshot weakly: a rotated-out context is freed at once, whether or not a client
    sweeps again (a strong hold kept a whole estate's old contexts until then)."""
    xml, keystore = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        host, port = "localhost", int(profiles.profiles[0].servers[0][1])
        old = profiles.context_for(host, port)
        assert old is not None
        gone = weakref.ref(old)
        generation, live = profiles._contexts_in_service()
        assert id(old) in live and generation == profiles.generation
        del old
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        gc.collect()
        assert gone() is None
        assert id(profiles.context_for(host, port)) in profiles._contexts_in_service()[1]


@needs_tcp_table
@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_a_reload_keeps_the_pool_of_a_context_still_served(kind, catch_all, ca, backend):
    """A reload that gives another host a profile of its own leaves the catch-all's
    context in service: its keep-alive connection carries on (no new handshake), and
    the new profile's host gets its own identity. Its twin: rotating the catch-all's
    keystore retires that connection."""
    xml, keystore, _ = catch_all
    url = f"https://localhost:{backend.port}/"
    with (
        SSLProfileSet.from_xml(xml, settle_delay=0) as profiles,
        driving(kind, profiles) as driver,
    ):
        assert driver.cn(url) == "gen-1"
        port, handshakes = last_client_port(backend), len(backend.handshakes)
        _give_loopback_a_profile(catch_all, ca, backend)
        assert profiles.reload() is True
        assert driver.cn(url) == "gen-1"
        assert len(backend.handshakes) == handshakes, "the kept connection was not reused"
        assert last_client_port(backend) == port and established(port, backend.port)
        assert driver.cn(f"https://127.0.0.1:{backend.port}/") == "named"

        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        wait_for(lambda: not established(port, backend.port))
        assert driver.cn(url) == "gen-2"


class _Explicit:
    """A wrapper of the user's around a set, delegating each lookup by hand (no
    ``__getattr__``), that serves one host with a context of its own."""

    def __init__(self, inner: SSLProfileSet, own: ssl.SSLContext, host: str) -> None:
        self.inner, self.own, self.host = inner, own, host

    def context_for(self, host: str, port: int, **kwargs: Any) -> ssl.SSLContext | None:
        return self.own if host == self.host else self.inner.context_for(host, port, **kwargs)

    def context_for_url(self, url: str, **kwargs: Any) -> ssl.SSLContext | None:
        return self.inner.context_for_url(url, **kwargs)

    @property
    def generation(self) -> int:
        return self.inner.generation

    def subscribe(self, callback: Callable[..., object]) -> Callable[[], None]:
        return self.inner.subscribe(callback)


@pytest.mark.parametrize("how", ["wrapper", "patched"])
@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_a_wrapped_set_with_contexts_of_its_own_follows_reloads(
    kind, how, setup, ca: CA, backend: MTLSServer
):
    """A wrapper's own contexts (or a ``context_for`` patched on the set, as
    ``mock.patch.object`` does) are not the set's to judge: its clients ask it again
    for each host they used (the first cut asked the set, which failed every request
    after a reload for a wrapper without the set's private parts, and retired the
    wrapper's own context at every reload, though it was in use)."""
    xml, keystore = setup
    own = client_context(Keystore.load(keystore, PASSWORD), ca.truststore())
    url, other = f"https://localhost:{backend.port}/", f"https://127.0.0.1:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        wrapped: Any = _Explicit(profiles, own, "127.0.0.1")
        if how == "patched":
            inner = profiles.context_for
            profiles.context_for = lambda host, port, **kw: (  # type: ignore[method-assign]
                own if host == "127.0.0.1" else inner(host, port, **kw)
            )
            wrapped = profiles
        with driving(kind, wrapped) as driver:
            assert driver.cn(url) == driver.cn(other) == "gen-1"
            port, handshakes = last_client_port(backend), len(backend.handshakes)
            rotate(ca, keystore, "gen-2")
            assert profiles.reload() is True
            assert driver.cn(url) == "gen-2"  # the set's context rotated
            assert driver.cn(other) == "gen-1"  # the wrapper's own: kept, and its pool
            assert len(backend.handshakes) == handshakes + 1
            assert port in {h.peer[1] for h in backend.handshakes if h.client_cn == "gen-1"}


def test_a_host_moved_off_a_context_in_flight_never_closes_the_pool_another_host_uses(
    catch_all, ca: CA, backend: MTLSServer
):
    """A client whose only host moves to a profile of its own while its request is in
    flight; the catch-all's context stays in service for another host, whose first
    request then makes a pool on that context. Asking this client's hosts again
    retired the context: when the moved request ended, closing the retired pools
    closed the other host's (urllib3 keys pools by context), and its request failed
    (ClosedPoolError). The set's answer keeps the context in service: it succeeds."""
    import urllib3

    xml, _, _ = catch_all
    local, moved = f"https://localhost:{backend.port}/", f"https://127.0.0.1:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, session(profiles) as http:
        adapter = http.get_adapter(moved)
        assert http.get(moved).json()["client_cn"] == "gen-1"
        in_flight, _ = adapter._pools.acquire("127.0.0.1", backend.port)  # its lease held
        _give_loopback_a_profile(catch_all, ca, backend)
        assert profiles.reload() is True
        assert in_flight is not None and not in_flight.retired  # still handed out
        real = urllib3.connectionpool.HTTPConnectionPool._get_conn

        def moved_request_ends_now(pool: Any, timeout: Any = None) -> Any:
            urllib3.connectionpool.HTTPConnectionPool._get_conn = real  # once
            retired = adapter._pools.release(in_flight)
            if retired is not None:
                adapter._close_pools([retired])
            return real(pool, timeout)

        urllib3.connectionpool.HTTPConnectionPool._get_conn = moved_request_ends_now
        try:
            assert http.get(local).json()["client_cn"] == "gen-1"
        finally:
            urllib3.connectionpool.HTTPConnectionPool._get_conn = real
        assert http.get(moved).json()["client_cn"] == "named"


@needs_tcp_table
def test_httpx_in_flight_response_finishes_on_the_retired_transport(
    setup, ca: CA, backend: MTLSServer
):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0.01) as profiles, client(profiles) as http:
        with http.stream("GET", url) as streaming:
            old_port = last_client_port(backend)
            rotate(ca, keystore, "gen-2")
            assert profiles.reload() is True
            # New requests use the new identity at once ...
            assert http.get(url).json()["client_cn"] == "gen-2"
            # ... while the response already under way still reads (httpcore's
            # pool.close() would break it: the close waits for it).
            assert established(old_port, backend.port)
            assert streaming.read()
            assert streaming.json()["client_cn"] == "gen-1"
        wait_for(lambda: not established(old_port, backend.port))
        assert http.get(url).json()["client_cn"] == "gen-2"


@needs_tcp_table
def test_requests_streamed_response_finishes_after_its_pool_is_retired(
    setup, ca: CA, backend: MTLSServer
):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0.01) as profiles, session(profiles) as http:
        streaming = http.get(url, stream=True)
        old_port = last_client_port(backend)
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        assert http.get(url).json()["client_cn"] == "gen-2"
        assert established(old_port, backend.port)  # checked out, so not closed yet
        assert streaming.json()["client_cn"] == "gen-1"
        streaming.close()
        wait_for(lambda: not established(old_port, backend.port))


def test_async_httpx_in_flight_response_finishes(setup, ca: CA, backend: MTLSServer):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"

    async def main(profiles: SSLProfileSet) -> None:
        async with async_client(profiles) as http:
            async with http.stream("GET", url) as streaming:
                rotate(ca, keystore, "gen-2")
                assert profiles.reload() is True
                assert (await http.get(url)).json()["client_cn"] == "gen-2"
                await streaming.aread()
                assert streaming.json()["client_cn"] == "gen-1"
            assert (await http.get(url)).json()["client_cn"] == "gen-2"

    with SSLProfileSet.from_xml(xml, settle_delay=0.01) as profiles:
        asyncio.run(main(profiles))


def test_concurrent_requests_during_repeated_rotations(setup, ca: CA, backend: MTLSServer):
    """Threads share one httpx client and one requests session while the identity
    rotates three times: no request fails, and each thread sees gen-1, gen-2, ...
    in order (a thread's next request never goes back to an older identity)."""
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with (
        SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0.05) as profiles,
        client(profiles) as httpx_client,
        session(profiles) as requests_session,
    ):
        stop = threading.Event()
        errors: list[BaseException] = []
        seen: dict[str, list[int]] = {}

        def httpx_get() -> str:
            return str(httpx_client.get(url).json()["client_cn"])

        def requests_get() -> str:
            return str(requests_session.get(url, timeout=10).json()["client_cn"])

        def worker(name: str, get: Callable[[], str]) -> None:
            mine = seen[name]
            while not stop.is_set():
                try:
                    mine.append(int(get().removeprefix("gen-")))
                except BaseException as exc:
                    errors.append(exc)
                    return

        workers = []
        for index in range(6):
            name, get = (
                (f"httpx-{index}", httpx_get) if index % 2 else (f"requests-{index}", requests_get)
            )
            seen[name] = []
            workers.append(threading.Thread(target=worker, args=(name, get), name=name))
        for thread in workers:
            thread.start()
        try:
            # Every worker on gen-1 first: one started late would never see it.
            wait_for(lambda: bool(errors) or all(seen.values()))
            for generation in (2, 3, 4):

                def applied(g: int = generation) -> bool:
                    return profiles.generation == g - 1

                def everyone_on_it(g: int = generation) -> bool:
                    # Every worker got a request through on the new identity (or failed).
                    return bool(errors) or all(s and s[-1] == g for s in seen.values())

                rotate(ca, keystore, f"gen-{generation}")
                wait_for(applied)
                wait_for(everyone_on_it)
        finally:
            stop.set()
            for thread in workers:
                thread.join(10)
        assert errors == []
        for name, gens in seen.items():
            assert gens == sorted(gens), f"{name} went back to an older identity: {gens}"
            assert set(gens) == {1, 2, 3, 4}, name


def test_clients_never_closed_do_not_pile_up_subscribers(setup, ca: CA, backend: MTLSServer):
    """Each client subscribes to the set's reloads, weakly. One dropped without close()
    used to stay subscribed until a reload applied: with stores that never change,
    every request handler that made its own client grew the set for good."""
    import gc

    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml) as profiles, session(profiles) as kept:
        subscribers = profiles._engine._subscribers  # type: ignore[union-attr]
        assert kept.get(url, timeout=10).json()["client_cn"] == "gen-1"
        for _ in range(300):
            session(profiles)  # never closed, never used: garbage at once
            client(profiles)
        gc.collect()
        session(profiles).close()  # one more arrives
        # Pruned as they arrive: the list stays within twice what was alive, or not
        # yet collected, at the last pruning (how many that is depends on when the
        # collector ran: Python 3.13's first threshold is 2,000 allocations, 3.12's
        # 700, h192), never the 601 subscribed.
        assert len(subscribers) < 300
        # The live one is still told: it presents the new identity after a rotation.
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        assert kept.get(url, timeout=10).json()["client_cn"] == "gen-2"
        # A change delivered drops every dead one (all collected above).
        assert wait_for(lambda: len(subscribers) < 10), len(subscribers)


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
def test_a_collection_during_pruning_cannot_deadlock_the_subscriber_list(traced):
    """Pruning used to build a new list under the subscribers' lock: the allocation may
    start a garbage collection, whose finalizers may close a client, whose unsubscribe
    then waited for that same lock for ever. The collection is made to start at the
    first, second, ... allocation after the call begins (one of them is under the lock
    when pruning allocates there). Under a trace function (coverage, a debugger),
    Python 3.12 and later run a collection asked for before the lock at a periodic
    check inside it, however little pruning allocates: it deadlocked there under
    pytest-cov (h192); a removal while pruning is deferred to its end now."""
    import gc
    import sys

    from mtls._engine import _PRUNE_FLOOR, Subscribers, WeakSubscriber

    class Owner:
        pass

    def attempt(offset: int) -> None:
        subscribers = Subscribers()

        class ClosesOnCollection:  # in a cycle: freed by the collector, which runs __del__
            def __init__(self) -> None:
                self.me = self
                self.callback = WeakSubscriber(Owner(), lambda _: None)  # dead at once
                subscribers.add(self.callback)

            def __del__(self) -> None:
                subscribers.remove(self.callback)  # what a client's close() does

        kept = [Owner() for _ in range(_PRUNE_FLOOR - 1)]  # one more, and pruning is due
        for owner in kept:
            subscribers.add(WeakSubscriber(owner, lambda _: None))
        last = WeakSubscriber(Owner(), lambda _: None)
        threshold = gc.get_threshold()
        gc.collect()
        ClosesOnCollection()  # garbage now; freed by the next collection
        try:
            gc.set_threshold(gc.get_count()[0] + offset)
            subscribers.add(last)  # pruning is due
        finally:
            gc.set_threshold(*threshold)
        assert len(subscribers) == len(kept) + 1  # the dead ones gone, the live kept

    done = threading.Event()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return tracer  # every line traced, as coverage's Python tracer does

    def attempts() -> None:
        if traced:
            sys.settrace(tracer)
        try:
            for offset in range(1, 8):
                attempt(offset)
        finally:
            sys.settrace(None)
        done.set()

    worker = threading.Thread(target=attempts, daemon=True)
    worker.start()
    assert done.wait(60), "add() deadlocked on its own lock"


def test_async_httpx_cancelled_while_closing_retired_pools_leaks_nothing(
    setup, ca: CA, backend: MTLSServer, monkeypatch
):
    """The first request after a rotation closes the retired pools before it goes out.
    asyncio's own cancel (wait_for, asyncio.timeout) goes through anyio's shield: a
    request cancelled there kept its lease for good (that pool could never close) and
    left the retired pools' sockets open, which not even aclose() reached. The closes
    now finish in a task of their own and the lease ends."""
    import httpx

    xml, keystore = setup
    closing_started = asyncio.Event()
    closed: list[object] = []
    real_aclose = httpx.AsyncHTTPTransport.aclose

    async def slow_aclose(self: httpx.AsyncHTTPTransport) -> None:
        closing_started.set()
        await asyncio.sleep(0.05)  # the window a cancellation lands in
        await real_aclose(self)
        closed.append(self)

    async def main(profiles: SSLProfileSet) -> tuple[int, int]:
        http = async_client(profiles)
        pools = http._transport._pools  # type: ignore[attr-defined]
        url = f"https://localhost:{backend.port}/"
        assert (await http.get(url)).json()["client_cn"] == "gen-1"
        rotate(ca, keystore, "gen-2")
        assert await asyncio.to_thread(profiles.reload) is True
        monkeypatch.setattr(httpx.AsyncHTTPTransport, "aclose", slow_aclose)
        request = asyncio.ensure_future(http.get(url))
        await closing_started.wait()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        leases = sum(e.inflight for e in [*pools._entries.values(), *pools._draining])
        monkeypatch.setattr(httpx.AsyncHTTPTransport, "aclose", real_aclose)
        assert (await http.get(url)).json()["client_cn"] == "gen-2"  # the twin: served
        await http.aclose()  # waits for the close the cancelled request left running
        return len(closed), leases

    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        done, leases = asyncio.run(main(profiles))
    assert done == 1  # the retired pool closed although its caller was cancelled
    assert leases == 0


def test_an_interrupt_while_closing_retired_pools_keeps_no_lease(setup, ca, backend, monkeypatch):
    """A request closes the pools a rotation retired before it sends. A Ctrl-C there
    (while sockets close) left the request's lease taken for good: its pool could never
    be retired and closed. The lease is given back now. The twin: without the
    interrupt, the request goes through and its lease ends with it."""
    import httpx

    from mtls.integrations.httpx import MTLSTransport

    xml, keystore = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        transport = MTLSTransport(profiles)
        transport._unsubscribe()  # retired pools are closed by the next request, here
        with httpx.Client(transport=transport, timeout=10) as http:
            url = f"https://localhost:{backend.port}/"
            assert http.get(url).json()["client_cn"] == "gen-1"
            rotate(ca, keystore, "gen-2")
            assert profiles.reload() is True
            real = httpx.HTTPTransport.close
            fired: list[httpx.HTTPTransport] = []

            def close(self: httpx.HTTPTransport) -> None:
                if not fired:
                    fired.append(self)  # interrupted before it closed anything
                    raise KeyboardInterrupt
                real(self)

            monkeypatch.setattr(httpx.HTTPTransport, "close", close)
            with pytest.raises(KeyboardInterrupt):
                http.get(url)
            monkeypatch.setattr(httpx.HTTPTransport, "close", real)
            real(fired[0])  # what the interrupted close would have closed
            assert [e.inflight for e in transport._pools._entries.values()] == [0]
            assert http.get(url).json()["client_cn"] == "gen-2"
            assert [e.inflight for e in transport._pools._entries.values()] == [0]


# --------------------------------------------------------------------------- kept answers
# A client keeps the set's answers for its current snapshot (KeptAnswers): a keep-alive
# request to a backend asked already makes no lookup; any publish makes it ask again.


@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_a_client_asks_the_set_once_per_backend_and_snapshot(
    kind, setup, ca: CA, backend: MTLSServer, monkeypatch
):
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    asked = counting_lookups(monkeypatch)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, driving(kind, profiles) as driver:
        seen = []
        for rotated in (False, True):
            if rotated:
                rotate(ca, keystore, "gen-2")
                assert profiles.reload() is True
            for _ in range(3):
                before = len(asked)
                seen.append((driver.cn(url), len(asked) - before))
    # One question per snapshot; the answer after the rotation is the new identity.
    assert seen == [(cn, n) for cn in ("gen-1", "gen-2") for n in (1, 0, 0)]


@pytest.mark.parametrize(
    "kind", [HttpxDriver, RequestsDriver, AsyncHttpxDriver], ids=lambda k: k.name
)
def test_a_request_during_whose_lookup_a_rotation_lands_goes_with_the_new_identity(
    kind, setup, ca: CA, backend: MTLSServer, monkeypatch
):
    """The set answers from the snapshot before the rotation; the snapshot has moved
    when the client would keep the answer: it asks again, and the request goes with
    the new identity (as when the pools compared generations), never kept for either
    snapshot. Its twin: the request before, with nothing landing, goes with the old.
    (The sync clients' reload callback sweeps their pools too; the async client's
    does not, so only the snapshot read again stands between it and the old answer.)"""
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    lookup = SSLProfileSet._lookup  # the set's lookup within (a patched one is never kept)
    landed: list[bool] = []

    def racing(self: SSLProfileSet, *args: Any) -> Any:
        answer = lookup(self, *args)  # from the snapshot it was given
        if not landed:
            rotate(ca, keystore, "gen-2")
            landed.append(self.reload())
        return answer

    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        with driving(kind, profiles) as driver:
            assert driver.cn(url) == "gen-1"  # the twin
        monkeypatch.setattr(SSLProfileSet, "_lookup", racing)
        with driving(kind, profiles) as driver:  # a new client: nothing kept yet
            assert driver.cn(url) == "gen-2"
            assert landed == [True]
            assert driver.cn(url) == "gen-2"


def test_requests_asks_again_when_urllib3s_alpn_list_changes(
    setup, backend: MTLSServer, monkeypatch
):
    """urllib3 sets its ALPN list on the context (``["h2"]`` once its HTTP/2 support is
    injected): the adapter asks for a context with the list of the moment, and keeps
    answers per list, never one made for the other."""
    import urllib3

    xml, _ = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, session(profiles) as http:
        adapter: Any = http.get_adapter(f"https://localhost:{backend.port}/")
        contexts = []
        for alpn in (["http/1.1"], ["h2"], ["http/1.1"]):
            monkeypatch.setattr(urllib3.util.ssl_, "ALPN_PROTOCOLS", alpn)
            entry, _ = adapter._pools.acquire("localhost", backend.port)
            adapter._pools.release(entry)
            assert entry.resource is profiles.context_for("localhost", backend.port, alpn=alpn)
            contexts.append(entry.resource)
        assert contexts[0] is contexts[2] and contexts[0] is not contexts[1]


def test_an_async_client_asks_a_patched_context_built_for_every_request(
    setup, backend: MTLSServer, monkeypatch
):
    """An event loop's client asks ``_context_built`` (never a build on the loop): one
    patched on the set is the patch's to answer, and nothing of it is kept."""
    xml, _ = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        asked = patched_lookup(monkeypatch, profiles, "_context_built")
        driver = AsyncHttpxDriver(profiles)
        try:
            assert driver.cn(url) == "gen-1"  # (asks twice: built off the loop between)
            for _ in range(2):
                before = len(asked)
                assert driver.cn(url) == "gen-1"
                assert len(asked) > before  # asked again: nothing kept
        finally:
            driver.close()


@pytest.mark.parametrize("where", ["instance", "class"])
@pytest.mark.parametrize("kind", DRIVERS, ids=lambda k: k.name)
def test_a_lookup_patched_after_the_client_was_made_is_asked_for_every_request(
    kind, where, setup, backend: MTLSServer, monkeypatch
):
    """A failure drill (``mock.patch.object`` on the set or its class) after the
    client was made: the patch answers every request, nothing of it is kept; and once
    it is gone, the client keeps the set's answers again (a review found the first cut
    of the kept answers decided once, when the client was made). The clients on an
    event loop ask it too (they ask the set's own lookup that never builds)."""
    xml, _ = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, driving(kind, profiles) as driver:
        assert driver.cn(url) == "gen-1"  # an answer kept
        asked: list[str] = []
        own = SSLProfileSet.context_for

        def drill(self_or_host: Any, *args: Any, **kwargs: Any) -> Any:
            asked.append("asked")
            if where == "class":
                return own(self_or_host, *args, **kwargs)
            return own(profiles, self_or_host, *args, **kwargs)

        with monkeypatch.context() as patch:
            if where == "class":
                patch.setattr(SSLProfileSet, "context_for", drill)
            else:
                patch.setattr(profiles, "context_for", drill)
            for n in range(1, 4):
                assert driver.cn(url) == "gen-1"
                assert len(asked) == n
        # The patch gone: the set's own again, and its kept answer serves (no lookup).
        looked = counting_lookups(monkeypatch)
        assert [driver.cn(url) for _ in range(2)] == ["gen-1", "gen-1"]
        assert len(asked) == 3 and looked == []


@pytest.mark.parametrize("kind", [HttpxDriver, RequestsDriver], ids=lambda k: k.name)
def test_an_idle_client_keeps_no_rotated_out_context_alive(kind, setup, ca: CA, backend):
    """The sync clients close their pools on the old context when the reload's callback
    sweeps them; the answers they kept for the old snapshot go with it (held weakly),
    so nothing keeps the old contexts alive while the client is idle."""
    xml, keystore = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, driving(kind, profiles) as driver:
        assert driver.cn(url) == "gen-1"
        served = profiles._snapshot.materials.served.values()
        olds = [weakref.ref(c) for s in served for c in (s.context, *s.variants.values())]
        del served
        assert len(olds) == 2  # the profile's context and the client's HTTP/1.1 variant
        rotate(ca, keystore, "gen-2")
        assert profiles.reload() is True
        gc.collect()
        assert [ref() for ref in olds] == [None, None]
        assert driver.cn(url) == "gen-2"


@pytest.mark.parametrize("kind", DRIVERS, ids=lambda k: k.name)
def test_a_failure_drill_after_the_client_was_made_reaches_every_client(
    kind, setup, backend: MTLSServer, monkeypatch
):
    """A ``context_for`` patched to raise, after the client has kept an answer for the
    backend: the next request raises what it raises (on an event loop too); with the
    patch gone, the next request goes out again."""
    xml, _ = setup
    url = f"https://localhost:{backend.port}/"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles, driving(kind, profiles) as driver:
        assert driver.cn(url) == "gen-1"

        def drill(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("failure drill: no context")

        with monkeypatch.context() as patch:
            patch.setattr(profiles, "context_for", drill)
            with pytest.raises(RuntimeError, match="failure drill"):
                driver.cn(url)
        assert driver.cn(url) == "gen-1"
