"""The rotating context in the servers people run: asyncio.start_server, aiohttp.web,
uvicorn, http.server. Each one takes ``server.context`` once; after a rotation its
next handshake presents the new identity, and the application reads the accepted
client certificate the way that framework usually gives it. Real clients, loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mtls
from mtls.testing import CA
from tests.servers._servers import Estate, get, make_estate, refused, stdlib_server

aiohttp_web = pytest.importorskip("aiohttp.web")


@pytest.fixture
def estate(tmp_path: Path) -> Estate:
    return make_estate(tmp_path)


def check_rotation(estate: Estate, server: mtls.RotatingServerContext, port: int) -> None:
    """What every framework must show: the client certificate reaches the app; no
    certificate and a stranger's are refused; a rotation reaches the next handshake."""
    body, first = get(port, estate.client())
    assert body["client_cn"] == "gateway"
    refused(port, estate.bare_client())
    refused(port, estate.client(client_ca=CA(name="stranger")))
    new_ca = CA(name="rotated server CA")
    only_new = estate.client(trust=new_ca)
    refused(port, only_new)  # not before the swap
    serial = estate.write_identity(new_ca)
    assert server.reload() is True
    body, seen = get(port, only_new)
    assert seen == serial != first and body["client_cn"] == "gateway"


@contextlib.contextmanager
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop on its own thread (the clients here are blocking)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop")
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


# --------------------------------------------------------------------------- asyncio


async def _asyncio_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The accepted client certificate: the transport's ssl_object (or "peercert").
    cert = writer.get_extra_info("ssl_object").getpeercert()
    assert cert == writer.get_extra_info("peercert")
    subject = dict(item[0] for item in cert["subject"]) if cert else {}
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            body = json.dumps({"client_cn": subject.get("commonName")}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_asyncio_start_server(estate: Estate) -> None:
    with estate.server() as server, loop_thread() as loop:
        listener = run(
            loop, asyncio.start_server(_asyncio_handler, "127.0.0.1", 0, ssl=server.context)
        )
        try:
            check_rotation(estate, server, listener.sockets[0].getsockname()[1])
        finally:
            listener.close()
            run(loop, listener.wait_closed())


# --------------------------------------------------------------------------- aiohttp


async def _aiohttp_handler(request: Any) -> Any:
    cert = request.transport.get_extra_info("peercert")  # aiohttp's way
    subject = dict(item[0] for item in cert["subject"]) if cert else {}
    return aiohttp_web.json_response({"client_cn": subject.get("commonName")})


def test_aiohttp_web(estate: Estate) -> None:
    app = aiohttp_web.Application()
    app.router.add_get("/", _aiohttp_handler)
    with estate.server() as server, loop_thread() as loop:
        runner = aiohttp_web.AppRunner(app, access_log=None)
        run(loop, runner.setup())
        site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.context)
        run(loop, site.start())
        try:
            port = runner.addresses[0][1]
            check_rotation(estate, server, port)
        finally:
            run(loop, runner.cleanup())


# --------------------------------------------------------------------------- uvicorn


async def _asgi_app(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    assert scope["type"] == "http"
    tls = scope["extensions"]["tls"]  # the ASGI TLS extension (tls_extension())
    name = tls["client_cert_name"]
    cn = name.split(",")[0].removeprefix("CN=") if name else None
    assert tls["tls_version"] == 0x0304 and (cn is None) == (not tls["client_cert_chain"])
    body = json.dumps({"client_cn": cn, "scheme": scope["scheme"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def uvicorn_server(config_kwargs: dict[str, Any]) -> Iterator[int]:
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(_asgi_app, lifespan="off", log_level="warning", **config_kwargs)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    try:
        from tests._helpers import wait_for

        wait_for(lambda: server.started or not thread.is_alive())
        assert server.started
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_uvicorn(estate: Estate) -> None:
    integration = pytest.importorskip("mtls.integrations.uvicorn")
    with estate.server() as server:
        kwargs = {
            "ssl_context_factory": integration.ssl_context_factory(server),
            "http": integration.tls_extension(),
        }
        with uvicorn_server(kwargs) as port:
            assert get(port, estate.client())[0]["scheme"] == "https"
            check_rotation(estate, server, port)


def test_uvicorn_refuses_the_wrong_alpn(estate: Estate) -> None:
    """The factory checks what uvicorn's protocol negotiates; a class without ALPN
    takes any context (the positive twin is test_uvicorn)."""
    integration = pytest.importorskip("mtls.integrations.uvicorn")
    pytest.importorskip("uvicorn")

    class WantsH2(integration.tls_extension()):  # type: ignore[misc]
        alpn_protocols: ClassVar[list[str]] = ["h2", "http/1.1"]

    with estate.server() as server:
        factory = integration.ssl_context_factory(server)

        class Config:
            http_protocol_class = WantsH2

        with pytest.raises(ValueError, match=r"alpn_protocols=\['h2', 'http/1.1'\]"):
            factory(Config(), ssl.create_default_context)  # type: ignore[arg-type]
    with estate.server(alpn_protocols=["h2", "http/1.1"]) as server:
        factory = integration.ssl_context_factory(server)
        assert factory(Config(), ssl.create_default_context) is server.context  # type: ignore[arg-type]


# --------------------------------------------------------------------------- http.server


def test_http_server_with_wrap_socket(estate: Estate) -> None:
    with estate.server() as server, stdlib_server(server.context) as port:
        check_rotation(estate, server, port)
