"""mtls.integrations.grpc, asyncio: the aio channel against a real server with client auth."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from mtls import ProfileConfigError
from mtls.integrations.grpc import AioRotatingChannel, aio_secure_channel
from mtls.testing import CA
from tests.integrations._grpc_backend import (
    ECHO,
    JOIN,
    WATCH,
    WHO,
    client_set,
    grpc_server,
    profile_set,
    rotate,
    static_credentials,
    write_keystore,
    write_truststore,
)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="grpc aio CA")


@pytest.fixture(scope="module")
def server(ca: CA):
    with grpc_server(static_credentials(ca.issue_cert("localhost", "127.0.0.1"), ca)) as s:
        yield s


async def who(channel: grpc.aio.Channel) -> bytes:
    return bytes(await channel.unary_unary(WHO)(b"", timeout=10))


def underlying(channel: AioRotatingChannel) -> list[grpc.aio.Channel]:
    return [u.channel for u in channel._pools.resources()]


async def closed(channel: grpc.aio.Channel) -> bool:
    """True once ``close()`` ran on the channel (gRPC's own flag: calls would be cancelled)."""
    return bool(channel._channel.closed())


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)  # a poll step with a deadline


def test_profile_identity_and_every_call_kind(tmp_path: Path, ca: CA, server: Any) -> None:
    port, probe = server

    async def requests() -> AsyncIterator[bytes]:
        for item in (b"a", b"b"):
            yield item

    async def main() -> None:
        async with aio_secure_channel(f"localhost:{port}", profiles) as channel:
            assert isinstance(channel, grpc.aio.Channel)
            assert await who(channel) == b"gen-1"
            assert await channel.stream_unary(JOIN)(requests(), timeout=10) == b"gen-1:ab"
            echoed = [m async for m in channel.stream_stream(ECHO)(requests(), timeout=10)]
            assert echoed == [b"gen-1:a", b"gen-1:b"]
            probe.gate.set()
            watched = [m async for m in channel.unary_stream(WATCH)(b"2", timeout=10)]
            assert watched == [b"gen-1", b"gen-1"]
            probe.gate.clear()
            await channel.channel_ready()
            assert channel.get_state() == grpc.ChannelConnectivity.READY
        # Closed: refused as a closed grpc.aio.Channel refuses, nothing new is built.
        with pytest.raises(grpc.aio.UsageError, match="closed"):
            await who(channel)
        assert channel._pools.resources() == []

    with client_set(tmp_path, ca, port) as profiles:
        asyncio.run(main())


def test_identity_from_another_ca_is_refused(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", CA(name="stranger").issue_cert("x"))
    trust = write_truststore(tmp_path / "trust.jks", ca)

    async def main() -> None:
        async with aio_secure_channel(f"localhost:{port}", profiles) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await who(channel)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    with profile_set(f"localhost:{port}", keystore, trust) as profiles:
        asyncio.run(main())


def test_no_profile_fails_at_creation(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server

    async def main() -> None:
        with pytest.raises(ProfileConfigError, match="no SSL profile"):
            aio_secure_channel(f"localhost:{port}", profiles)
        async with aio_secure_channel(f"localhost:{port + 1}", profiles) as channel:
            assert channel.target == f"localhost:{port + 1}"  # twin: the profile's target

    with client_set(tmp_path, ca, port + 1) as profiles:
        asyncio.run(main())


def test_rotation_during_a_server_stream(tmp_path: Path, ca: CA, server: Any) -> None:
    port, probe = server
    probe.gate.clear()

    async def main() -> None:
        async with aio_secure_channel(f"localhost:{port}", profiles) as channel:
            stream = channel.unary_stream(WATCH)(b"3", timeout=30)
            assert await stream.read() == b"gen-1"
            [old] = underlying(channel)
            rotate(ca, tmp_path, "gen-2")
            assert profiles.reload()
            assert await who(channel) == b"gen-2"
            assert len(underlying(channel)) == 2
            assert not await closed(old)  # the stream still runs on it
            probe.gate.set()
            assert [await stream.read(), await stream.read()] == [b"gen-1", b"gen-1"]
            assert await stream.read() is grpc.aio.EOF
            assert await stream.code() == grpc.StatusCode.OK
            await wait_until(lambda: closed(old))
            assert len(underlying(channel)) == 1
            assert old not in underlying(channel)

    with client_set(tmp_path, ca, port) as profiles:
        asyncio.run(main())
    probe.gate.clear()


def test_many_rotations_leak_nothing(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server

    async def main() -> None:
        channel = aio_secure_channel(f"localhost:{port}", profiles)
        assert await who(channel) == b"gen-1"
        threads = threading.active_count()
        tasks = len(asyncio.all_tasks())
        for n in range(2, 32):
            rotate(ca, tmp_path, f"gen-{n}")
            assert profiles.reload()
            assert await who(channel) == f"gen-{n}".encode()
            assert len(underlying(channel)) == 1
        await asyncio.gather(*channel._closing)
        assert len(channel._pools) == 1
        assert len(asyncio.all_tasks()) <= tasks
        assert threading.active_count() <= threads
        [last] = underlying(channel)
        await channel.close()
        await channel.close()
        assert await closed(last)
        assert underlying(channel) == []

    with client_set(tmp_path, ca, port) as profiles:
        asyncio.run(main())


def test_interceptors_reach_every_underlying_channel(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    seen: list[str] = []

    class Record(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):
            seen.append(details.method)
            return await continuation(details, request)

    async def main() -> None:
        async with aio_secure_channel(
            f"localhost:{port}", profiles, interceptors=[Record()]
        ) as channel:
            assert await who(channel) == b"gen-1"
            rotate(ca, tmp_path, "gen-2")
            assert profiles.reload()
            assert await who(channel) == b"gen-2"  # a new underlying channel, intercepted too

    with client_set(tmp_path, ca, port) as profiles:
        asyncio.run(main())
    assert seen == [WHO.encode(), WHO.encode()]  # grpc.aio hands interceptors bytes


def test_a_cancelled_close_still_closes_every_retired_channel() -> None:
    """close(grace) closed the retired channels one at a time, each awaited: a
    cancellation while the first waited out its grace (a shutdown timeout) left every
    later one open for good. The closes run side by side in tasks of their own now,
    which the cancellation spares. (Unit-level: two stand-in channels, the first of
    which never finishes closing.)"""
    import types

    from mtls.integrations.grpc import _aclose_each

    closed: list[str] = []

    class Channel:
        def __init__(self, name: str, hangs: bool) -> None:
            self.name, self.hangs = name, hangs

        async def close(self, grace: float | None) -> None:
            if self.hangs:
                await asyncio.Event().wait()
            closed.append(self.name)

    async def main() -> None:
        underlying = [
            types.SimpleNamespace(channel=Channel("first", hangs=True)),
            types.SimpleNamespace(channel=Channel("second", hangs=False)),
        ]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_aclose_each(underlying, 30.0), 0.2)  # type: ignore[arg-type]
        for _ in range(100):  # bounded: the second's close runs in its own task
            if closed:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert closed == ["second"]
