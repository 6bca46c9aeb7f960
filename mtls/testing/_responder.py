"""An in-process revocation responder: a CA's CRL and OCSP answers over loopback HTTP.

What a CA's revocation infrastructure serves, for tests of online revocation checks
(docs/health.md) without ``openssl ocsp`` in a subprocess, its CA key on disk, or its
"one request late" index: answers are made at each request from the CA's state, so a
:meth:`~mtls.testing.CA.revoke` is seen by the next request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import socket
import socketserver
import threading
import urllib.parse
from types import TracebackType
from typing import Any, Self

from ._ca import CA
from ._server import (
    _JOIN_TIMEOUT,
    LoopbackHTTPServer,
    _listen_host,
    _listen_port,
    listening_port,
    listening_url,
)

__all__ = ["RevocationServer"]

_MAX_REQUEST = 64 * 1024  # an OCSP request is a few hundred bytes


class _HTTPServer(socketserver.ThreadingMixIn, LoopbackHTTPServer):
    # Each connection's thread is joined by server_close() (block_on_close), once
    # close_connections() has shut their sockets: close() leaves nothing answering
    # (h171: a connection made before close() was answered after it).
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], responder: RevocationServer) -> None:
        self.responder = responder
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection down: its thread ends at its next read or write."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class RevocationServer:
    """A CA's CRL distribution point and OCSP responder on one loopback HTTP port.

    Start it first, name its URLs in the CA, then let it answer for that CA::

        with RevocationServer() as responder:
            ca = CA(ocsp_url=responder.ocsp_url, crl_url=responder.crl_url)
            responder.serve(ca)
            backend = ca.issue_cert("localhost")
            ca.revoke(backend)          # the next OCSP answer and CRL say so

    ``GET`` of :attr:`crl_path` answers :meth:`CA.crl` (DER); a ``POST`` of an OCSP
    request to :attr:`ocsp_path` (or RFC 6960's ``GET`` of its base64 under it) answers
    :meth:`CA.ocsp_response`. One responder answers for one CA, as a real one does: for
    a chain, give the child CA a responder of its own. Every request is recorded in
    :attr:`requests`; :attr:`http_status` makes every answer that HTTP status instead
    (a responder that is down).

    Args:
        ca: the CA to answer for (or later, with :meth:`serve`).
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one.

    Attributes:
        requests: ``("crl", None)`` or ``("ocsp", serial)`` per request answered,
            oldest first (``serial`` is ``None`` for a request that could not be
            read, or that asks about several certificates at once).
        http_status: ``None`` (answer; 200 means the same), or an HTTP status every
            request gets instead (``503``: down; set it back to ``None`` or 200).
        errors: what answering raised (the client got HTTP 500): a test can assert
            it stays empty, as a handler's error is not lost in a thread.
    """

    crl_path = "/ca.crl"
    ocsp_path = "/ocsp"

    def __init__(self, ca: CA | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if ca is not None and not isinstance(ca, CA):
            raise TypeError(f"ca must be an mtls.testing.CA, not {type(ca).__name__}")
        self.ca = ca
        self.host: str = _listen_host(host)
        self._port = _listen_port(port)
        self.requests: list[tuple[str, int | None]] = []
        self.http_status: int | None = None
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def serve(self, ca: CA) -> None:
        """Answer for ``ca`` from now on."""
        if not isinstance(ca, CA):
            raise TypeError(f"ca must be an mtls.testing.CA, not {type(ca).__name__}")
        self.ca = ca

    # -- lifecycle

    def start(self) -> Self:
        """Bind and start answering (once; a running server is returned as it is).

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: the server was closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("this RevocationServer is closed: create a new one")
            if self._httpd is None:
                httpd = _HTTPServer((self.host, self._port), self)
                self._httpd = httpd
                self._thread = threading.Thread(
                    target=httpd.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"mtls-revocation-server:{httpd.server_address[1]}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering: no new connection, and the open ones shut down and their
        threads joined. Idempotent."""
        with self._lock:
            self._closed = True
            httpd, thread, self._httpd = self._httpd, self._thread, None
        if httpd is not None and thread is not None:
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()  # joins the connections' threads
            thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses

    @property
    def port(self) -> int:
        """The port listened on.

        Raises:
            RuntimeError: not started (with ``port=0``, the port is chosen then).
        """
        bound = int(self._httpd.server_address[1]) if self._httpd is not None else None
        return listening_port(bound, self._port, self)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (an IPv6 host in brackets)."""
        return listening_url("http", self.host, self.port)

    @property
    def crl_url(self) -> str:
        """The CRL distribution point to name in the CA (``crl_url=``)."""
        return self.url + self.crl_path

    @property
    def ocsp_url(self) -> str:
        """The OCSP responder to name in the CA (``ocsp_url=``)."""
        return self.url + self.ocsp_path

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._httpd else "not started"
        who = self.ca.name if self.ca is not None else "no CA yet"
        return f"<RevocationServer {state} for {who!r}, {len(self.requests)} requests>"

    # -- answers (on the server's threads)

    def _answer(self, kind: str, body: bytes | None) -> tuple[int, str, bytes]:
        """The status, content type and body for a CRL (``body`` None) or OCSP request."""
        from cryptography.x509 import ocsp  # noqa: PLC0415 - at the first OCSP request

        serial: int | None = None
        if kind == "ocsp" and body is not None:
            try:
                serial = ocsp.load_der_ocsp_request(body).serial_number
            except (ValueError, NotImplementedError):  # several CertIDs: not read
                serial = None
        with self._lock:
            self.requests.append((kind, serial))
            status, ca = self.http_status, self.ca
        if status is not None and status != 200:  # 200: answering again, as None
            return status, "text/plain", b"as the test asked\n"
        if ca is None:
            return 503, "text/plain", b"no CA to answer for yet: serve(ca)\n"
        try:
            if kind == "crl":
                return 200, "application/pkix-crl", ca.crl()
            return 200, "application/ocsp-response", ca.ocsp_response(body or b"")
        except Exception as exc:  # kept for the test to see, not lost in this thread
            with self._lock:
                self.errors.append(exc)
            return 500, "text/plain", f"{type(exc).__name__}: {exc}\n".encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mtls-testing-revocation"
    protocol_version = "HTTP/1.0"
    timeout = _JOIN_TIMEOUT  # a client that stops mid-request holds no thread for good
    server: _HTTPServer

    def _reply(self, answer: tuple[int, str, bytes]) -> None:
        status, kind, body = answer
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _ocsp_path(self) -> str | None:
        """What of the path follows the responder's URL (``""`` for the URL itself, with
        or without a final ``/``, and for ``/``), or ``None`` for another path."""
        path = self.path.split("?", 1)[0]
        base = self.server.responder.ocsp_path
        if path in (base, base + "/", "/"):
            return ""
        return path[len(base) + 1 :] if path.startswith(base + "/") else None

    def do_GET(self) -> None:
        responder = self.server.responder
        rest = self._ocsp_path()
        if self.path.split("?", 1)[0] == responder.crl_path:
            self._reply(responder._answer("crl", None))
        elif rest:  # RFC 6960 A.1: the base64 of the DER request, URL-encoded
            encoded = urllib.parse.unquote(rest)
            try:  # padding put back: clients leave it out
                body = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
            except (ValueError, binascii.Error):
                body = b""
            self._reply(responder._answer("ocsp", body))
        else:
            self._reply((404, "text/plain", b"not here\n"))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply((400, "text/plain", b"Content-Length is not a number\n"))
            return
        if not 0 <= length <= _MAX_REQUEST:
            self._reply((413, "text/plain", b"too large\n"))
            return
        body = self.rfile.read(length)
        if self._ocsp_path() == "":
            self._reply(self.server.responder._answer("ocsp", body))
        else:
            self._reply((404, "text/plain", b"not here\n"))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`RevocationServer.requests`."""
