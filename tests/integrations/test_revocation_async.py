"""The async integrations never make the event loop wait on a revocation fetch.

An OCSP "responder" on loopback accepts the request and holds it until the test
releases it, then answers HTTP 500. The release comes from a coroutine on the
client's own event loop: it can run only while the loop is free. With the fetch
on the loop's thread the loop is stuck until the fetch gives up (its timeout, far
longer than the test needs), and the status says "no answer"; with the fetch in a
worker thread the release arrives first, and the status says "HTTP 500".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mtls import RevocationPolicy, RevocationUnknownError, SSLProfile, SSLProfileSet, StoreConfig
from mtls.integrations import httpx as mtls_httpx
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.testing import CA
from tests._helpers import PASSWORD, python_within, read_head, write_trust
from tests.integrations.test_revocation_hooks import CountingHTTPS


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (headers and Content-Length body), so closing sends no RST."""
    data = read_head(conn)
    if data is None:
        return
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class HeldResponder:
    """Accepts each OCSP request, waits for ``release``, then answers HTTP 500."""

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.release = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):  # the client may give up first
                _read_request(conn)
                self.accepted.set()
                self.release.wait(120)
                conn.sendall(b"HTTP/1.0 500 Held\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.release.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() (Linux)
        self._sock.close()
        self._thread.join(10)


class Env:
    def __init__(self, tmp: Path) -> None:
        self.responder = HeldResponder()
        ca = CA(ocsp_url=self.responder.url)
        self.server = CountingHTTPS(ca.issue_cert("localhost"))
        trust = write_trust(ca, tmp / "trust.jks")
        self.url = f"https://localhost:{self.server.port}/"
        self.profile = SSLProfile(
            servers=(f"localhost:{self.server.port}",),
            truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
        )

    def profiles(self, mode: str) -> SSLProfileSet:
        # a timeout far longer than the test: only a free event loop releases the fetch
        policy = RevocationPolicy(crl=False, timeout=60, mode=mode)  # type: ignore[arg-type]
        return SSLProfileSet([self.profile], revocation=policy)

    def close(self) -> None:
        self.responder.close()
        self.server.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    made = Env(tmp_path)
    try:
        yield made
    finally:
        made.close()


async def _while_fetching(env: Env, request: Callable[[], Awaitable[int]]) -> int:
    """Run ``request`` while a coroutine on the same loop releases the held fetch."""

    async def release() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, env.responder.accepted.wait, 60)
        env.responder.release.set()  # runs only once the loop is free again

    releaser = asyncio.create_task(release())
    try:
        return await request()
    finally:
        await releaser


async def _httpx(env: Env, profiles: SSLProfileSet) -> int:
    async with mtls_httpx.async_client(profiles, timeout=90) as client:
        return (await client.get(env.url)).status_code


async def _aiohttp(env: Env, profiles: SSLProfileSet) -> int:
    async with MTLSClientSession(profiles) as session, session.get(env.url) as response:
        return response.status


CLIENTS = {"httpx": _httpx, "aiohttp": _aiohttp}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_the_event_loop_runs_while_the_check_fetches_and_a_refusal_sends_nothing(
    env: Env, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    with env.profiles("hard") as profiles:
        with pytest.raises(RevocationUnknownError) as refused:
            asyncio.run(_while_fetching(env, lambda: CLIENTS[client](env, profiles)))
    assert "HTTP 500" in str(refused.value), refused.value  # released by the free loop
    assert env.server.requests == 0
    # the refusal is clean: no asyncio "Fatal error" logged with a traceback
    assert [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_soft_fail_allows_the_request_after_the_check_in_a_worker(env: Env, client: str) -> None:
    with env.profiles("soft") as profiles:
        status = asyncio.run(_while_fetching(env, lambda: CLIENTS[client](env, profiles)))
    assert status == 200
    assert env.server.requests == 1
    # the status came from the released fetch (HTTP 500), cached: the next request
    # does not fetch again
    (cached,) = profiles.revocation.cached() if profiles.revocation else ()
    assert "HTTP 500" in "; ".join(cached.why)


def test_a_cancel_scope_ends_the_wait_for_a_check(env: Env) -> None:
    """An anyio cancel scope (what Starlette and FastAPI use; trio's own) did not end
    the wait for a revocation fetch: the check ran in anyio.to_thread.run_sync, which
    is not cancellable by default, so the scope waited for the fetch (3 s past a 0.5 s
    scope) and then raised its RevocationUnknownError. The wait is abandoned now: the
    scope is honoured at once, nothing is sent, and the fetch's answer is cached for
    the next connection."""
    anyio = pytest.importorskip("anyio")

    async def main() -> tuple[bool, bool]:
        done = asyncio.Event()
        async with mtls_httpx.async_client(profiles, timeout=90) as client:

            async def cancel_when_fetching(scope: Any) -> None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, env.responder.accepted.wait, 60)
                scope.cancel()
                # Bounded: the old code stays in the check until the fetch ends.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 10)
                env.responder.release.set()

            with anyio.CancelScope() as scope:
                canceller = asyncio.create_task(cancel_when_fetching(scope))
                try:
                    await client.get(env.url)
                finally:
                    done.set()
            ended_at_once = not env.responder.release.is_set()
            await canceller
        return scope.cancelled_caught, ended_at_once

    with env.profiles("hard") as profiles:
        cancelled, at_once = asyncio.run(main())
    assert cancelled and at_once
    assert env.server.requests == 0


async def _with_workers_busy(client: str, request: Callable[[], Awaitable[int]]) -> int:
    """``request`` while the pool the application's own blocking work uses is full:
    the loop's default executor (aiohttp ran owed checks there) or anyio's default
    thread limiter (httpx did), each down to one thread that is held."""
    loop = asyncio.get_running_loop()
    held = threading.Event()
    if client == "aiohttp":
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        holder: Awaitable[object] = loop.run_in_executor(None, held.wait, 60)
    else:
        anyio = pytest.importorskip("anyio")
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = 1
        holder = asyncio.ensure_future(anyio.to_thread.run_sync(held.wait, 60))
        for _ in range(500):  # bounded: until the one token is taken
            if limiter.borrowed_tokens:
                break
            await asyncio.sleep(0.01)
        assert limiter.borrowed_tokens == 1
    try:
        # Bounded: with the old code the check waits for the held thread (60 s).
        return await asyncio.wait_for(request(), 30)
    finally:
        held.set()
        await holder


async def _aiohttp_resolved(env: Env, profiles: SSLProfileSet) -> int:
    """:func:`_aiohttp` with ``localhost`` resolved without a thread (aiohttp's own
    resolver runs getaddrinfo on the loop's default executor, which the test fills)."""
    import aiohttp

    class Loopback(aiohttp.abc.AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: int = socket.AF_INET
        ) -> list[dict[str, Any]]:
            return [
                {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}
            ]  # fmt: skip

        async def close(self) -> None:
            pass

    connector = aiohttp.TCPConnector(resolver=Loopback())
    async with (
        MTLSClientSession(profiles, connector=connector) as session,
        session.get(env.url) as response,
    ):
        return response.status


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_owed_checks_run_on_the_checkers_own_threads(env: Env, client: str) -> None:
    """The owed check ran on the loop's default executor (aiohttp) or under anyio's
    default limiter (httpx), shared with the application's own blocking work
    (FastAPI's sync endpoints): a full pool held every new connection's check, and
    hung responders starved the application. The checker has threads of its own."""
    env.responder.release.set()  # the responder answers at once (HTTP 500)
    with env.profiles("soft") as profiles:
        request = _aiohttp_resolved if client == "aiohttp" else CLIENTS[client]
        status = asyncio.run(_with_workers_busy(client, lambda: request(env, profiles)))
        assert profiles.revocation is not None
        (cached,) = profiles.revocation.cached()
    assert status == 200
    assert "HTTP 500" in "; ".join(cached.why)  # the check ran (soft-fail allowed it)


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_an_owed_check_runs_in_the_callers_context(env: Env, client: str) -> None:
    """The soft-fail warning of a check run in the worker carries the request's
    context (request and trace ids a log filter adds): anyio.to_thread, which httpx's
    owed checks used, copies it, and the checker's own threads must too (the review)."""
    env.responder.release.set()  # answers at once (HTTP 500): undetermined, allowed
    seen: list[str | None] = []

    class Tag(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if "could not be determined" in record.getMessage():
                seen.append(REQUEST_ID.get(None))
            return True

    tag = Tag()
    logger = logging.getLogger("mtls")
    logger.addFilter(tag)
    try:

        async def main(profiles: SSLProfileSet) -> int:
            REQUEST_ID.set("req-42")
            return await CLIENTS[client](env, profiles)

        with env.profiles("soft") as profiles:
            assert asyncio.run(main(profiles)) == 200
    finally:
        logger.removeFilter(tag)
    assert seen == ["req-42"]


_EXIT_DURING_A_CHECK = """
import asyncio, socket, sys, tempfile, threading
import httpx, mtls
from mtls.testing import CA, MTLSServer, write_profiles_file
from mtls.integrations.httpx import AsyncMTLSTransport

hang = socket.socket(); hang.bind(("127.0.0.1", 0)); hang.listen(8)  # never answers
url = f"http://127.0.0.1:{hang.getsockname()[1]}"
ca = CA(ocsp_url=url + "/", crl_url=url + "/ca.crl")
server = MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca).start()
xml = write_profiles_file(tempfile.mkdtemp(), server, identity=ca.issue_cert("client"), ca=ca)
policy = mtls.RevocationPolicy(timeout=300, check_timeout=300)
profiles = mtls.SSLProfileSet.from_xml(xml, revocation=policy)

async def request():
    async with httpx.AsyncClient(transport=AsyncMTLSTransport(profiles)) as http:
        await http.get(server.url)

threading.Thread(target=lambda: asyncio.run(request()), daemon=True).start()
accepted, _ = hang.accept()  # the check is under way, on the checker's thread
assert any(t.name.startswith("mtls-revocation") for t in threading.enumerate())
profiles.close()
print("main ends", flush=True)
"""


def test_the_interpreter_exits_while_an_owed_check_waits_on_a_hung_responder() -> None:
    """The checker's threads were a ThreadPoolExecutor's, which the interpreter joins at
    exit: a service stopping while a responder hung exited check_timeout late (10 s by
    default, 300 s here; h184), close() or not. They are daemon threads now. The
    bound is the subprocess's timeout, far below the check's."""
    done = python_within(_EXIT_DURING_A_CHECK, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "main ends" in done.stdout
