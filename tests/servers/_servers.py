"""What the server tests share: an estate of stores on disk, clients that report the
server certificate they saw, and the stdlib server with the documented wrap_socket."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

import mtls
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, accepting


@dataclass
class Estate:
    """A backend's stores on disk: its identity (from ``server_ca``) and the
    truststore that trusts ``client_ca``."""

    root: Path
    server_ca: CA
    client_ca: CA

    @property
    def keystore(self) -> Path:
        return self.root / "backend.jks"

    @property
    def truststore(self) -> Path:
        return self.root / "backend-truststore.jks"

    def write_identity(self, ca: CA, name: str = "localhost") -> int:
        """Replace the backend's keystore (atomically) with one issued by ``ca``; its serial."""
        identity = ca.issue_cert(name, "localhost", "127.0.0.1")
        replace_atomically(self.keystore, identity.keystore().to_bytes(PASSWORD))
        return identity.certificate.serial_number

    def trust(self, *cas: CA) -> None:
        """Replace the backend's truststore (atomically) with one trusting ``cas``."""
        store = mtls.Truststore()
        for index, ca in enumerate(cas):
            store.add(f"ca-{index}", ca.certificate)
        replace_atomically(self.truststore, store.to_bytes(PASSWORD))

    def server(self, **kwargs: Any) -> mtls.RotatingServerContext:
        kwargs.setdefault("settle_delay", 0)
        return mtls.RotatingServerContext(
            self.keystore, self.truststore, password=PASSWORD, **kwargs
        )

    def client(self, client_ca: CA | None = None, trust: CA | None = None) -> ssl.SSLContext:
        """A client with a certificate from ``client_ca`` (None: no certificate),
        trusting ``trust`` (default: the server CA)."""
        keystore = (client_ca or self.client_ca).issue_cert("gateway").keystore()
        return mtls.client_context(keystore, (trust or self.server_ca).truststore())

    def bare_client(self) -> ssl.SSLContext:
        """A client without a certificate."""
        return mtls.client_context(None, self.server_ca.truststore())


def make_estate(root: Path) -> Estate:
    estate = Estate(root, CA(name="server CA"), CA(name="client CA"))
    estate.write_identity(estate.server_ca)
    estate.trust(estate.client_ca)
    return estate


def serial_of(tls: ssl.SSLSocket | ssl.SSLObject) -> int:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def handshake(port: int, ctx: ssl.SSLContext, *, host: str = "localhost") -> int:
    """Connect, finish the handshake, return the serial of the server's certificate."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname=host) as tls,
    ):
        return serial_of(tls)


class Connection:
    """One keep-alive HTTPS connection: ``get()`` answers (JSON body, server serial)."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.http = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)

    def get(self, path: str = "/") -> tuple[dict[str, Any], int]:
        self.http.request("GET", path)
        sock = self.http.sock  # read before the answer: a server may close after it
        assert isinstance(sock, ssl.SSLSocket)
        serial = serial_of(sock)
        response = self.http.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body), serial

    def close(self) -> None:
        self.http.close()


def get(port: int, ctx: ssl.SSLContext, path: str = "/") -> tuple[dict[str, Any], int]:
    """One GET on a new connection: (JSON body, server serial)."""
    conn = Connection(port, ctx)
    try:
        return conn.get(path)
    finally:
        conn.close()


def refused(port: int, ctx: ssl.SSLContext) -> BaseException:
    """The error a GET on a new connection fails with (fails the test if it succeeds)."""
    try:
        get(port, ctx)
    except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
        return exc
    raise AssertionError("the request went through")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        tls = self.request
        assert isinstance(tls, ssl.SSLSocket)
        cert = tls.getpeercert()  # the stdlib way: the client certificate, verified
        subject = dict(item[0] for item in cert["subject"]) if cert else {}
        serial = int(cert["serialNumber"], 16) if cert else None
        body = json.dumps({"client_cn": subject.get("commonName"), "client_serial": serial})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and resets are what the negative tests cause


@contextlib.contextmanager
def stdlib_server(ctx: ssl.SSLContext) -> Iterator[int]:
    """``http.server`` with the listening socket wrapped, as the ssl docs show; its port."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def closing_server(ctx: ssl.SSLContext) -> contextlib.AbstractContextManager[int]:
    """One connection at a time: handshake, read a request, answer one byte, and send
    close_notify before closing. A session OpenSSL cached stays cached (it drops the
    session of a connection freed without close_notify), so whether a client resumes
    depends on the context alone, never on which side closed first. Its port."""

    def answer(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(64)
            tls.sendall(b"x")
            tls.unwrap()

    return accepting(answer)


def exchange(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSession | None, bool]:
    """One request on a new connection to :func:`closing_server`, offering ``session``:
    (the session to offer next time, whether this one resumed)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(b"hello")
        tls.recv(1)  # TLS 1.3 tickets arrive after the handshake: read the answer first
        return tls.session, tls.session_reused
