"""The rotating context in the servers people run: asyncio.start_server, aiohttp.web,
uvicorn, http.server, tornado, werkzeug (Flask), hypercorn and gunicorn (forked
workers, in a process of its own). Each one takes ``server.context`` once; after a
rotation its next handshake presents the new identity, and the application reads the
accepted client certificate the way that framework usually gives it. Real clients,
loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509

import mtls
from mtls.testing import CA
from tests._helpers import PASSWORD, stop_process, wait_for
from tests.servers._servers import Estate, get, make_estate, refused, stdlib_server

aiohttp_web = pytest.importorskip("aiohttp.web")


@pytest.fixture
def estate(tmp_path: Path) -> Estate:
    return make_estate(tmp_path)


def check_rotation(
    estate: Estate,
    server: mtls.RotatingServerContext | None,
    port: int,
    *,
    seen_after: Callable[[ssl.SSLContext, int], None] | None = None,
    client_cn: str | None = "gateway",
) -> None:
    """What every framework must show: the client certificate reaches the app; no
    certificate and a stranger's are refused; a rotation reaches the next handshake.

    ``seen_after(client, serial)``: how a server in another process is waited for
    (``server`` is then None): until ``client`` (trusting only the new server CA)
    sees the new ``serial``. ``client_cn``: what the app reports of the client
    certificate (None where the server gives the app none)."""
    body, first = get(port, estate.client())
    assert body["client_cn"] == client_cn
    refused(port, estate.bare_client())
    refused(port, estate.client(client_ca=CA(name="stranger")))
    new_ca = CA(name="rotated server CA")
    only_new = estate.client(trust=new_ca)
    refused(port, only_new)  # not before the swap
    serial = estate.write_identity(new_ca)
    assert serial != first
    if server is not None:
        assert server.reload() is True
        body, seen = get(port, only_new)
        assert seen == serial and body["client_cn"] == client_cn
    else:
        assert seen_after is not None
        seen_after(only_new, serial)
    refused(port, estate.client())  # the old server CA's clients no longer get in


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


async def _closed(listener: asyncio.Server) -> None:
    listener.close()
    await listener.wait_closed()


def test_asyncio_start_server(estate: Estate) -> None:
    with estate.server() as server, loop_thread() as loop:
        listener = run(
            loop, asyncio.start_server(_asyncio_handler, "127.0.0.1", 0, ssl=server.context)
        )
        try:
            check_rotation(estate, server, listener.sockets[0].getsockname()[1])
        finally:
            # On the loop's thread: asyncio.Server is not thread-safe (a close from
            # here raced a connection's end there: "'NoneType' object is not iterable").
            run(loop, _closed(listener))


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

        # The other way round: a context offering h2 to an HTTP/1.1-only protocol
        # (curl picks h2, and got an empty reply).
        class PlainConfig:
            http_protocol_class = integration.tls_extension()

        with pytest.raises(ValueError, match=r"speaks HTTP/1\.1 only"):
            factory(PlainConfig(), ssl.create_default_context)  # type: ignore[arg-type]
        # A plain context (what a newcomer tries first) is refused when the factory is
        # made, saying what to give: uvicorn failed on it at start-up, "not callable".
        with pytest.raises(TypeError, match="takes a RotatingServerContext"):
            integration.ssl_context_factory(server.context)


_UVICORN_WORKERS_APP = """
import json, os


async def app(scope, receive, send):
    name = scope["extensions"]["tls"]["client_cert_name"]
    cn = name.split(",")[0].removeprefix("CN=") if name else None
    body = json.dumps({"client_cn": cn, "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def test_uvicorn_workers_follow_a_rotation(estate: Estate) -> None:
    """uvicorn sends its config to each worker process: the factory holding a context
    could not be sent, nor the protocol class made in a function. With a function
    that makes the context, each worker makes its own, which follows the files, and
    the protocol class is found again by name."""
    pytest.importorskip("uvicorn")
    root = estate.root
    (root / "app.py").write_text(_UVICORN_WORKERS_APP)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free now; uvicorn binds it in a moment
    # The docs' file (docs/servers.md, "Several workers"), as the page gives it.
    (root / "uv_server.py").write_text(
        doc_file(
            "uv_server.py",
            ("reload_interval=60,", "reload_interval=0.2, settle_delay=0,"),
            ('host="0.0.0.0", port=8443,', f'host="127.0.0.1", port={port},'),
        )
    )
    log = root / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "uv_server.py"], cwd=root, stdout=out, stderr=out,
            env={**os.environ, "PYTHONPATH": str(root), "BACKEND_STORE_PASSWORD": PASSWORD},
        )  # fmt: skip
    try:

        def started() -> set[int] | None:
            assert process.poll() is None, _text(log)
            pids = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", _text(log))}
            return pids if len(pids) >= 2 else None

        workers = wait_for(started, timeout=60)
        check_rotation(estate, None, port, seen_after=_in_every_worker(port, lambda: workers))
    finally:
        stop_process(process)
    assert "Traceback" not in _text(log)


def test_uvicorn_refuses_to_send_a_context_to_workers_saying_what_to_do(estate: Estate) -> None:
    import pickle

    integration = pytest.importorskip("mtls.integrations.uvicorn")
    with estate.server() as server, pytest.raises(TypeError, match="a function of your"):
        pickle.dumps(integration.ssl_context_factory(server))
    # The protocol classes go by name, and come back as the same class, whatever the
    # base's module or class is called (names with "__", an extension of an extension).
    extended = integration.tls_extension()
    assert pickle.loads(pickle.dumps(extended)) is extended
    assert integration.tls_extension() is extended
    twice = integration.tls_extension(extended)
    assert pickle.loads(pickle.dumps(twice)) is twice
    odd = types.ModuleType("odd__module_")
    odd.A__B = type("A__B", (asyncio.Protocol,), {"__module__": "odd__module_"})
    sys.modules["odd__module_"] = odd
    try:
        odd_extended = integration.tls_extension(odd.A__B)
        assert pickle.loads(pickle.dumps(odd_extended)) is odd_extended
    finally:
        del sys.modules["odd__module_"]
    # Other lookups are plain missing attributes, never a class made of anything else.
    assert not hasattr(integration, "TLSExtension_zz")
    assert not hasattr(integration, "TLSExtension_" + b"builtins:int".hex())


def test_uvicorn_a_dispatching_protocol_is_followed_to_the_one_it_picks(estate: Estate) -> None:
    """uvicorn's AutoZttpProtocol hands each TLS connection to an HTTP/1.1 or HTTP/2
    protocol as soon as it is made (by ALPN), and has no app of its own: extending it
    broke every connection (AttributeError). A dispatcher of the same shape (zttp is
    not installed here) is followed to the protocol it picks."""
    pytest.importorskip("uvicorn")
    integration = pytest.importorskip("mtls.integrations.uvicorn")
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Dispatching(asyncio.Protocol):
        def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None):
            self.config, self.server_state, self.app_state = config, server_state, app_state

        def connection_made(self, transport: Any) -> None:
            picked = H11Protocol(self.config, self.server_state, self.app_state)
            transport.set_protocol(picked)
            picked.connection_made(transport)

    with estate.server() as server:
        kwargs = {
            "ssl_context_factory": integration.ssl_context_factory(server),
            "http": integration.tls_extension(Dispatching),
        }
        with uvicorn_server(kwargs) as port:
            assert get(port, estate.client())[0]["client_cn"] == "gateway"


async def _websocket_app(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    assert scope["type"] == "websocket"
    assert await receive() == {"type": "websocket.connect"}
    await send({"type": "websocket.accept"})
    name = scope["extensions"]["tls"]["client_cert_name"]
    await send({"type": "websocket.send", "text": name})
    await send({"type": "websocket.close", "code": 1000})


def test_uvicorn_websockets_get_the_tls_extension(estate: Estate) -> None:
    """uvicorn makes the WebSocket protocol from the config's app, not the HTTP
    protocol's: a WebSocket scope had no TLS extension (an HTTP scope on the same
    connection had)."""
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("wsproto")
    integration = pytest.importorskip("mtls.integrations.uvicorn")
    with estate.server() as server:
        sock = socket.create_server(("127.0.0.1", 0))
        config = uvicorn.Config(
            _websocket_app, lifespan="off", log_level="warning", ws="wsproto",
            ssl_context_factory=integration.ssl_context_factory(server),
            http=integration.tls_extension(),
        )  # fmt: skip
        web = uvicorn.Server(config)
        thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, name="uvicorn")
        thread.start()
        try:
            wait_for(lambda: web.started or not thread.is_alive())
            port = sock.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                estate.client().wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(4096)
                head, frame = data.split(b"\r\n\r\n", 1)
                assert head.startswith(b"HTTP/1.1 101"), head
                while len(frame) < 2 or len(frame) < 2 + frame[1]:
                    frame += tls.recv(4096)
                assert frame[0] == 0x81  # a final text frame, unmasked, under 126 bytes
                text = frame[2 : 2 + frame[1]].decode()
            assert text.startswith("CN=gateway")
        finally:
            web.should_exit = True
            thread.join(10)
            sock.close()


# --------------------------------------------------------------------------- http.server


def test_http_server_with_wrap_socket(estate: Estate) -> None:
    with estate.server() as server, stdlib_server(server.context) as port:
        check_rotation(estate, server, port)


# --------------------------------------------------------------------------- tornado


def test_tornado_http_server(estate: Estate) -> None:
    """tornado takes an SSLContext in ``ssl_options`` as it is (ssl_options_to_context
    passes one through); the client certificate is ``request.get_ssl_certificate()``."""
    tornado_web = pytest.importorskip("tornado.web")
    tornado_httpserver = pytest.importorskip("tornado.httpserver")

    class Hello(tornado_web.RequestHandler):  # type: ignore[misc]
        def get(self) -> None:
            cert = self.request.get_ssl_certificate()
            subject = dict(item[0] for item in cert["subject"]) if cert else {}
            self.write({"client_cn": subject.get("commonName")})

    app = tornado_web.Application([("/", Hello)])
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    with estate.server() as server, loop_thread() as loop:

        async def start() -> Any:
            http = tornado_httpserver.HTTPServer(app, ssl_options=server.context)
            http.add_sockets([sock])
            return http

        http = run(loop, start())
        try:
            check_rotation(estate, server, sock.getsockname()[1])
        finally:
            loop.call_soon_threadsafe(http.stop)
            run(loop, http.close_all_connections())


# --------------------------------------------------------------------------- werkzeug


def test_werkzeug_flask_dev_server(estate: Estate) -> None:
    """werkzeug (Flask's ``app.run(ssl_context=...)``) wraps its listening socket with
    the context as it is; the client certificate is ``environ["SSL_CLIENT_CERT"]``."""
    serving = pytest.importorskip("werkzeug.serving")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        pem = environ.get("SSL_CLIENT_CERT")
        cn = None
        if pem:
            cert = x509.load_pem_x509_certificate(pem.encode())
            cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"client_cn": cn}).encode()]

    with estate.server() as server:
        httpd = serving.make_server("127.0.0.1", 0, app, threaded=True, ssl_context=server.context)
        assert httpd.socket.context is server.context  # taken as it is, not rebuilt
        thread = threading.Thread(target=httpd.serve_forever, name="werkzeug")
        thread.start()
        try:
            check_rotation(estate, server, httpd.server_address[1])
        finally:
            httpd.shutdown()
            thread.join(10)
            httpd.server_close()


# --------------------------------------------------------------------------- hypercorn


def test_hypercorn_with_the_documented_config(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hypercorn builds its own context in ``Config.create_ssl_context()`` (and turns
    TLS on only when certfile and keyfile are set): the page's subclass returns the
    rotating context instead, made on first use. No client certificate in the scope."""
    pytest.importorskip("hypercorn.config")
    hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio")
    code = doc_file(
        "hypercorn_tls.py",
        ('password="changeit"', f"password={PASSWORD!r}"),
        ("reload_interval=60,", "reload_interval=None, settle_delay=0,"),
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, "hypercorn_tls.py", "exec"), namespace)
    monkeypatch.chdir(estate.root)  # the page names the stores by relative path

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
        if scope["type"] != "http":
            return
        # hypercorn puts nothing of the client certificate in the scope.
        body = json.dumps({"client_cn": None, "scheme": scope["scheme"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    sock = socket.create_server(("127.0.0.1", 0))  # handed over: no port to race for
    port = sock.getsockname()[1]
    config = namespace["MTLSConfig"]()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's from here on
    config.accesslog = config.errorlog = None
    with loop_thread() as loop:
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(
            hypercorn_asyncio.serve(app, config, shutdown_trigger=stop.wait), loop
        )
        server = None
        try:
            # The socket listens already: wait for the context hypercorn asks for.
            wait_for(lambda: namespace["MTLSConfig"].rotating is not None or future.done())
            server = namespace["MTLSConfig"].rotating
            assert isinstance(server, mtls.RotatingServerContext)
            assert get(port, estate.client())[0]["scheme"] == "https"
            check_rotation(estate, server, port, client_cn=None)
        finally:
            loop.call_soon_threadsafe(stop.set)
            future.result(30)
            if server is not None:
                server.close()


# --------------------------------------------------------------------------- gunicorn

# The docs' recipe (docs/servers.md, "gunicorn"): its files, as the page gives them, with
# a free port, two workers and a quick reload for the test.
DOCS = Path(__file__).resolve().parents[2] / "docs" / "servers.md"


def doc_file(name: str, *changes: tuple[str, str]) -> str:
    """The ```py block of docs/servers.md whose first line is ``# name``, with
    ``changes`` (old, new) made: each one must be there."""
    blocks = re.findall(r"^```py\n(.*?)^```", DOCS.read_text(), re.DOTALL | re.MULTILINE)
    found = [block for block in blocks if block.startswith(f"# {name}\n")]
    assert len(found) == 1, f"docs/servers.md: no ```py block for {name}"
    text = found[0]
    for old, new in changes:
        assert old in text, f"docs/servers.md {name}: {old!r} is gone"
        text = text.replace(old, new)
    return text


_GUNICORN_APP = """
import json, os
def app(environ, start_response):
    cert = environ["gunicorn.socket"].getpeercert()
    subject = dict(item[0] for item in cert["subject"]) if cert else {}
    body = json.dumps({"client_cn": subject.get("commonName"), "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.parametrize("worker", ["sync", "uvicorn", "gevent"])
def test_gunicorn_workers_follow_a_rotation(estate: Estate, worker: str) -> None:
    """gunicorn's ``ssl_context`` hook (sync workers call it per connection) returns the
    context made before the fork: each worker's reload thread is started again in the
    child (mtls._fork), so after a rotation every worker presents the new identity.
    uvicorn's gunicorn worker ignores that hook (it loaded ``certfile``, a JKS, as PEM,
    and every worker failed to boot): the page's worker class hands uvicorn the context.
    gevent's worker wraps connections with its own SSLSocket, which refuses a context
    made before its patch: the page's recipe for it makes one per worker (h201)."""
    pytest.importorskip("gunicorn")
    root = estate.root
    quick = ("reload_interval=60,", "reload_interval=0.2, settle_delay=0,")
    (root / "tls_server.py").write_text(doc_file("tls_server.py", quick))
    (root / "gunicorn.conf.py").write_text(
        doc_file(
            "gunicorn.conf.py",
            ('bind = "0.0.0.0:8443"', 'bind = "127.0.0.1:0"'),
            ("workers = 4", "workers = 2"),
        )
    )
    extra: list[str] = []
    if worker == "gevent":
        pytest.importorskip("gevent")
        (root / "gunicorn.conf.py").write_text(
            doc_file(
                "gunicorn.conf.py, for -k gevent or -k eventlet",
                quick,
                (
                    'certfile = "backend.jks"',
                    'certfile = "backend.jks"\nbind = "127.0.0.1:0"\nworkers = 2',
                ),
            )
        )
        extra = ["-k", "gevent"]
    if worker == "uvicorn":
        pytest.importorskip("uvicorn")
        (root / "mtls_worker.py").write_text(doc_file("mtls_worker.py"))
        (root / "app.py").write_text(_UVICORN_WORKERS_APP)
        extra = ["-k", "mtls_worker.MTLSUvicornWorker"]
    else:
        (root / "app.py").write_text(_GUNICORN_APP)
    log = root / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket",
         "--error-logfile", str(log), *extra, "app:app"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root), "BACKEND_STORE_PASSWORD": PASSWORD},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def listening() -> int | None:
            assert process.poll() is None, log.read_text() if log.exists() else "no log"
            found = re.search(r"Listening at: https://127\.0\.0\.1:(\d+)", _text(log))
            return int(found.group(1)) if found and len(booted()) >= 2 else None

        def booted() -> set[int]:
            return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", _text(log))}

        port = wait_for(listening, timeout=60)

        check_rotation(estate, None, port, seen_after=_in_every_worker(port, booted))
    finally:
        stop_process(process)
    assert "Worker failed to boot" not in _text(log)


def _in_every_worker(
    port: int, workers: Callable[[], set[int]]
) -> Callable[[ssl.SSLContext, int], None]:
    """``check_rotation``'s wait for a server of two worker processes: until twenty new
    connections in a row see the new identity, from both workers (and no process but
    ``workers()`` answers)."""

    def seen_after(only_new: ssl.SSLContext, serial: int) -> None:
        def rotated_everywhere() -> set[int] | None:
            pids = set()
            for _ in range(20):
                try:
                    body, seen = get(port, only_new)
                except (ssl.SSLError, OSError):
                    return None  # a worker still presents the old identity
                assert seen == serial and body["client_cn"] == "gateway"
                pids.add(body["pid"])
            assert pids <= workers()
            return pids if len(pids) == 2 else None

        wait_for(rotated_everywhere, timeout=60)

    return seen_after


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
