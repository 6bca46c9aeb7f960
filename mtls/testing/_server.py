"""MTLSServer: a mutual-TLS HTTPS server on a background thread, for tests.

Theory of operation
-------------------
One thread ("mtls-test-server:PORT") runs ``serve_forever`` on a plain TCP
listening socket. It only accepts: every connection gets its own thread at once,
and the TLS handshake runs there, under ``handshake_timeout``. So a client that
connects and says nothing, or fails its handshake, never holds up the others,
and a failed handshake is just a record in :attr:`MTLSServer.handshakes`.

The server's :class:`ssl.SSLContext` is one reference, read once per connection
when it is wrapped. :meth:`MTLSServer.reload` and :meth:`MTLSServer.set_context`
replace the reference; connections already open keep the context they were
wrapped with, as in a real server rotating its certificate.

Handshake records are appended under a lock shared with a condition variable,
so :meth:`MTLSServer.wait_for_handshakes` wakes exactly when a record arrives
(tests never sleep). Open connections are registered under the same lock, so
:meth:`MTLSServer.close` can shut their sockets down (waking a thread blocked
on an idle keep-alive connection) and join every thread before it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import operator
import os
import re
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, cast

from cryptography import x509

from .. import _x509
from .._context import server_context
from .._log import steady_logger
from .._server import RotatingServerContext
from .._stores import Keystore, Truststore
from .._version import __version__
from ._ca import CA, IssuedIdentity

log = steady_logger("mtls.testing")  # a handler that raises stops no test server

_JOIN_TIMEOUT = 10.0
_LINGER_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeRecord:
    """One TLS handshake the :class:`MTLSServer` took part in, accepted or refused.

    Attributes:
        accepted: the handshake completed (the client's certificate, if any, verified).
        peer: the client's ``(host, port)``.
        client_subject: the client certificate's subject (RFC 4514), when accepted
            with a certificate; ``None`` otherwise (OpenSSL does not hand a
            refused certificate to Python).
        client_cn: its common name, or ``None``.
        client_serial: its serial number, or ``None``.
        client_fingerprint_sha256: lower-case hex SHA-256 of its DER, or ``None``.
        tls_version: the negotiated version (``"TLSv1.3"``) when accepted.
        reason: why it was refused, ``None`` when accepted. One of
            ``"no client certificate"``,
            ``"certificate verify failed: <OpenSSL's message>"`` (for example
            ``unable to get local issuer certificate``, ``certificate has
            expired``, ``certificate is not yet valid``),
            ``"client sent alert: <alert>"`` (the client refused the server),
            ``"connection closed during handshake"``, ``"handshake timed out"``,
            or OpenSSL's reason in lower case.
        detail: the full text of the error, ``None`` when accepted.
    """

    accepted: bool
    peer: tuple[str, int]
    client_subject: str | None = None
    client_cn: str | None = None
    client_serial: int | None = None
    client_fingerprint_sha256: str | None = None
    tls_version: str | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class _Peer:
    subject: str | None = None
    cn: str | None = None
    serial: int | None = None
    fingerprint: str | None = None
    san: tuple[str, ...] = ()


def _peer_of(tls: ssl.SSLSocket) -> _Peer:
    der = tls.getpeercert(binary_form=True)
    if not der:
        return _Peer()
    cert: x509.Certificate = _x509.load_cert(der)
    return _Peer(
        subject=_x509.subject_text(cert),
        cn=_x509.common_name(cert),
        serial=cert.serial_number,
        fingerprint=hashlib.sha256(der).hexdigest(),
        san=tuple(_x509.subject_alt_names(cert)),
    )


def _refusal(exc: BaseException) -> str:
    """A short, stable reason for a failed handshake, for assertions."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    if isinstance(exc, ssl.SSLEOFError | ConnectionError | EOFError):
        return "connection closed during handshake"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no client certificate"
        if "_ALERT_" in reason:
            return "client sent alert: " + reason.lower().replace("_", " ")
        if reason:
            return reason.lower().replace("_", " ")
        if "EOF" in str(exc):
            return "connection closed during handshake"
    return f"handshake failed: {exc}"


def _linger(sock: socket.socket) -> None:
    """Let the client read our alert before the connection goes away.

    Closing at once, with the client's request bytes unread, makes the kernel send
    a reset, and a reset discards the alert still waiting in the client's receive
    buffer: the client would see "connection reset" or "EOF" instead of OpenSSL's
    "certificate required" or "unknown ca". So: half-close, then read (raw bytes,
    bypassing TLS) until the client closes, for at most :data:`_LINGER_TIMEOUT` in
    all: a refused client that sent a byte every second held its thread and
    descriptor for as long as it liked (300 such held every descriptor of a server).
    """
    deadline = time.monotonic() + _LINGER_TIMEOUT
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not socket.socket.recv(sock, 4096):
                break


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_BODY = 1 << 30  # 1 GiB: more is a framing error, not a body a test sends


def _close_notify(tls: ssl.SSLSocket) -> None:
    """End the TLS session with a close_notify before the connection closes, as a
    server should (clients that read to EOF, ``openssl s_client``, see a clean end
    instead of "unexpected eof"). Sent without waiting for the client's own."""
    with contextlib.suppress(OSError, ValueError):  # ssl.SSLError is an OSError
        tls.setblocking(False)
        tls.unwrap()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON describing the client and the request."""

    server_version = f"mtls-testing/{__version__}"
    sys_version = ""
    # Keep-alive responses are small writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK cost ~40 ms per request.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        # Set per server, before parse_request decides about keep-alive.
        self.protocol_version = cast("_HTTPServer", self.server).protocol
        super().setup()

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline().split(b";")[0].strip() or b"0"
                if not _HEX.fullmatch(line):
                    raise ValueError(f"chunk size {line[:20]!r} is not hexadecimal")
                size = int(line, 16)
                if size > _MAX_BODY:
                    raise ValueError(f"a chunk of {size:,} bytes is more than a test sends")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"Content-Length {text!r} is not a number of bytes")
        length = int(text)
        if length > _MAX_BODY:
            raise ValueError(f"Content-Length {length:,} is more than a test sends")
        return self.rfile.read(length) if length > 0 else b""

    def _answer(self, *, body: bool = True) -> None:
        try:
            received = self._read_body()
        except ValueError as exc:
            # A test's own malformed request: answered, and said, not a silent hang-up.
            log.warning(
                "MTLSServer: %s %s from %s: the body's framing is malformed (%s): "
                "answered 400 and closed the connection",
                self.command,
                self.path,
                self.address_string(),
                exc,
            )
            self.close_connection = True
            self.send_error(400, "malformed body framing", str(exc))
            return
        tls = cast("ssl.SSLSocket", self.request)
        peer = _peer_of(tls)
        status = 200
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            status = min(max(int(parts[1]), 200), 599)
        payload: dict[str, Any] = {
            "client_cn": peer.cn,
            "client_subject": peer.subject,
            "client_serial": peer.serial,
            "client_fingerprint_sha256": peer.fingerprint,
            "client_san": list(peer.san),
            "path": self.path,
            "method": self.command,
            "tls_version": tls.version(),
            "http_version": self.request_version,
            "body_length": len(received),
            "status": status,
        }
        data = json.dumps(payload).encode()
        self.send_response(status)
        if self.close_connection:
            # The client asked for it (or spoke HTTP/1.0): said, so that a pool does not
            # send its next request down a connection about to close (RFC 9112 9.6).
            self.send_header("Connection", "close")
        if status in (204, 304):
            # No body may follow (RFC 9110 15.3.5, 15.4.5): one would be read as the
            # start of the next response on a kept-alive connection.
            self.end_headers()
            return
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class LoopbackHTTPServer(http.server.HTTPServer):
    """The test servers' ``HTTPServer``: the address family its host needs, and no
    reverse DNS lookup when it binds."""

    def __init__(
        self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that
        # can take seconds on a machine without DNS; a test server needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _HTTPServer(LoopbackHTTPServer):
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: MTLSServer) -> None:
        self.owner = owner
        self.protocol = owner._protocol
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._spawn(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets and broken keep-alive connections are normal in tests: log, don't print.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def listening_port(bound: int | None, requested: int, server: object) -> int:
    """A test server's port: the one bound, else the one asked for.

    Raises:
        RuntimeError: neither (``port=0`` and ``server`` not started, or closed).
    """
    if bound is not None:
        return bound
    if requested:
        return requested
    if getattr(server, "_closed", False) or getattr(server, "_closing", False):
        raise RuntimeError(f"this {type(server).__name__} is closed: it has no port any more")
    raise RuntimeError("the port is chosen when the server starts: call start() first")


def bracketed(host: str) -> str:
    """``host`` as a URL (or ``host:port``) writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def listening_url(scheme: str, host: str, port: int) -> str:
    """``SCHEME://HOST:PORT``, an IPv6 host in brackets."""
    return f"{scheme}://{bracketed(host)}:{port}"


def _listen_host(host: object) -> str:
    """The address to listen on, as given (``"[::1]"``, the form :attr:`MTLSServer.url`
    shows, is taken as ``"::1"``).

    Raises:
        TypeError: not a str. ValueError: an empty one.
    """
    if not isinstance(host, str):
        raise TypeError(f"host must be an address as a str, like '127.0.0.1', not {host!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(
            "host must be the address to listen on, like '127.0.0.1' or '::1' ('0.0.0.0' "
            "for every IPv4 interface), not ''"
        )
    return host


def _index(value: object, name: str) -> int:
    """``value`` as an int, if it is one (numpy's too, through ``__index__``)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {value!r}") from None


def _listen_port(port: object) -> int:
    """The port to listen on, as an int (numpy's ints too).

    Raises:
        TypeError: not an int from 0 (a free port) to 65535.
    """
    number = -1 if isinstance(port, bool | str) else _index(port, "port")
    if not 0 <= number <= 65535:
        raise TypeError(f"port must be an int from 0 (a free port) to 65535, not {port!r}")
    return number


def _tls_version(value: object, name: str) -> ssl.TLSVersion:
    """``value`` as an ``ssl.TLSVersion`` (its number too: 771 is TLS 1.2)."""
    if not isinstance(value, str | bool):
        with contextlib.suppress(TypeError, ValueError):
            return ssl.TLSVersion(_index(value, name))
    raise TypeError(f"{name} must be an ssl.TLSVersion (ssl.TLSVersion.TLSv1_2), not {value!r}")


_SPECIAL_VERSIONS = (ssl.TLSVersion.MINIMUM_SUPPORTED, ssl.TLSVersion.MAXIMUM_SUPPORTED)


def _below(high: ssl.TLSVersion, low: ssl.TLSVersion) -> bool:
    """Whether ``high`` is a version below ``low`` (MINIMUM_SUPPORTED and
    MAXIMUM_SUPPORTED are -2 and -1: not comparable as numbers)."""
    if high in _SPECIAL_VERSIONS or low in _SPECIAL_VERSIONS:
        return False
    return high < low


def _check_arguments(
    require_client_cert: object,
    port: object,
    minimum_version: object,
    maximum_version: object,
    handshake_timeout: object,
) -> tuple[int, ssl.TLSVersion, ssl.TLSVersion | None]:
    """The constructor's plain arguments, refused before anything is built; the port
    and versions as ints and ``ssl.TLSVersion``."""
    if not isinstance(require_client_cert, bool | int):  # "no" would read as true
        raise TypeError(f"require_client_cert must be True or False, not {require_client_cert!r}")
    number = _listen_port(port)
    low = _tls_version(minimum_version, "minimum_version")
    high = None if maximum_version is None else _tls_version(maximum_version, "maximum_version")
    if high is not None and _below(high, low):
        raise ValueError(
            f"maximum_version {high.name} is below minimum_version {low.name}: no handshake "
            "could succeed"
        )
    if handshake_timeout is not None and (  # None: no limit, as socket.settimeout takes it
        not isinstance(handshake_timeout, int | float)
        or isinstance(handshake_timeout, bool)
        or not handshake_timeout > 0
    ):
        raise TypeError(
            "handshake_timeout must be a number of seconds above 0 (or None: no limit), "
            f"not {handshake_timeout!r}"
        )
    return number, low, high


def _check_identity(identity: object) -> None:
    if isinstance(identity, IssuedIdentity | Keystore | RotatingServerContext):
        return
    if isinstance(identity, CA):
        fix = "issue one: ca.issue_cert('localhost', '127.0.0.1')"
    elif isinstance(identity, str | os.PathLike):
        fix = "load the file first: mtls.Keystore.load(path, password)"
    else:
        fix = "an IssuedIdentity (CA().issue_cert(...)), a Keystore or a RotatingServerContext"
    raise TypeError(f"MTLSServer identity: not {type(identity).__name__}: {fix}")


def _trusted(
    identity: IssuedIdentity | Keystore | RotatingServerContext,
    client_ca: CA | Truststore | Iterable[CA] | None,
) -> CA | Truststore | Iterable[CA] | None:
    """The client CAs a server of ``identity`` trusts: those given, else its own root's
    (an issued identity), else ``None`` (a RotatingServerContext, or an error later)."""
    if client_ca is None:
        return identity.ca.root if isinstance(identity, IssuedIdentity) else None
    if isinstance(client_ca, Iterator):
        return tuple(client_ca)  # kept for later reloads: a generator is read once
    return client_ca  # checked by _truststore_of


def _truststore_of(client_ca: CA | Truststore | Iterable[CA]) -> Truststore:
    if isinstance(client_ca, CA):
        return client_ca.truststore()
    if isinstance(client_ca, Truststore):
        return client_ca
    if isinstance(client_ca, str | os.PathLike):
        raise TypeError(
            "client_ca: a path; load the file first: mtls.Truststore.load(path, password)"
        )
    if isinstance(client_ca, IssuedIdentity):
        raise TypeError("client_ca: an IssuedIdentity; pass the CA that issued it (.ca)")
    given: object = client_ca  # typed as CAs here; check that they are
    cas = list(given) if isinstance(given, Iterable) and not isinstance(given, bytes) else None
    if cas is None or not all(isinstance(c, CA) for c in cas):
        kind = type(client_ca)
        trustme = kind.__module__.split(".")[0] == "trustme"  # its CA has the same name
        raise TypeError(
            "client_ca must be a CA, several CAs (any iterable) or a Truststore, not "
            + (f"trustme's {kind.__name__}" if trustme else kind.__name__)
            + (" of other things" if cas is not None else "")
            + (
                ": load its certificate, mtls.Truststore.from_bytes(ca.cert_pem.bytes())"
                if trustme
                else ""
            )
        )
    store = Truststore()
    for index, ca in enumerate(cas, 1):
        store.add(f"ca-{index}", ca.certificate)
    if not len(store):
        raise ValueError("client_ca is an empty sequence: give at least one CA")
    return store


class MTLSServer:
    """A mutual-TLS HTTPS test server on a background thread.

    Every request (GET, HEAD, POST, PUT, PATCH, DELETE) is answered with JSON
    describing who connected::

        {"client_cn": "client", "client_subject": "CN=client,O=mtls.testing",
         "client_serial": 123..., "client_fingerprint_sha256": "ab12...",
         "client_san": ["DNS:client"], "path": "/x?y=1", "method": "GET",
         "tls_version": "TLSv1.3", "http_version": "HTTP/1.1",
         "body_length": 0, "status": 200}

    A path of ``/status/NNN`` answers with that status code (same JSON body, but for
    204 and 304, which have none).
    HTTP/1.1 connections are kept alive, so several requests can share one
    handshake.

    Example::

        ca = CA()
        with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
            ctx = mtls.client_context(ca.issue_cert("client").keystore(), ca.truststore())
            with urllib.request.urlopen(server.url, context=ctx) as response:
                assert json.load(response)["client_cn"] == "client"

    Args:
        identity: the server's certificate: an :class:`IssuedIdentity`, a
            :class:`mtls.Keystore` with one key entry, or a
            :class:`mtls.RotatingServerContext` (its context is served as it is, and
            follows its files; ``client_ca``, ``require_client_cert`` and
            ``maximum_version`` are its own then).
        client_ca: who may connect: a :class:`CA`, several, or a
            :class:`mtls.Truststore`. ``None`` trusts the root of the CA that
            issued ``identity`` (an :class:`IssuedIdentity` is required then).
        require_client_cert: refuse clients without a trusted certificate. With
            ``False``, a certificate is asked for and verified when sent, but not
            required.
        host: the address to listen on (an IPv6 one with or without brackets).
        port: the port; 0 (the default) picks a free one, read it from :attr:`port`.
        http_version: ``"1.1"`` (keep-alive, ALPN ``http/1.1``) or ``"1.0"``.
        minimum_version: the lowest TLS version accepted.
        maximum_version: the highest TLS version offered, for example
            ``ssl.TLSVersion.TLSv1_2`` to test TLS 1.2 behaviour; ``None``: no cap.
        handshake_timeout: seconds a connection has to complete its handshake
            (``None``: no limit).

    Raises:
        TypeError: an ``identity`` or ``client_ca`` of another kind (a path: load it
            first), a ``require_client_cert`` that is not a bool, a
            ``handshake_timeout`` that is not a positive number, a ``port`` that is
            not an int from 0 to 65535, a ``host`` that is not a str, versions that
            are neither ``ssl.TLSVersion`` nor its number (771 is TLS 1.2).
        ValueError: ``client_ca`` is missing for a Keystore identity, an unknown
            ``http_version``, an empty ``host``, or ``maximum_version`` below
            ``minimum_version``.
        mtls.KeyEntryError: the keystore has no single usable key entry.
    """

    def __init__(
        self,
        identity: IssuedIdentity | Keystore | RotatingServerContext,
        *,
        client_ca: CA | Truststore | Iterable[CA] | None = None,
        require_client_cert: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        http_version: Literal["1.1", "1.0"] = "1.1",
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        maximum_version: ssl.TLSVersion | None = None,
        handshake_timeout: float | None = 10.0,
    ) -> None:
        if http_version not in ("1.1", "1.0"):
            raise ValueError(
                f"http_version must be '1.1' or '1.0', not {http_version!r} (HTTP/2 is not served)"
            )
        port, minimum_version, maximum_version = _check_arguments(
            require_client_cert, port, minimum_version, maximum_version, handshake_timeout
        )
        self.host: str = _listen_host(host)
        self._requested_port = port
        self.http_version = http_version
        self._protocol = f"HTTP/{http_version}"
        self.handshake_timeout = handshake_timeout
        self._minimum_version = minimum_version
        self._maximum_version = maximum_version
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: list[HandshakeRecord] = []
        self._connections: dict[threading.Thread, socket.socket] = {}
        # Every connection thread not yet seen to have ended: close() joins them all
        # (one that left _connections may still be closing its socket).
        self._workers: set[threading.Thread] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._finished = False  # closed, and every connection thread joined
        self.identity: IssuedIdentity | Keystore | RotatingServerContext = identity
        # The CAs in effect: the identity's root when none was given (None for a
        # RotatingServerContext, which brings its own trust).
        self.client_ca: CA | Truststore | Iterable[CA] | None = _trusted(identity, client_ca)
        self.require_client_cert: bool = require_client_cert
        self._context = self._build_context(identity, self.client_ca, require_client_cert)
        self._given_context = False  # set_context() replaced what identity/client_ca made

    # -- contexts

    def _build_context(
        self,
        identity: IssuedIdentity | Keystore | RotatingServerContext,
        client_ca: CA | Truststore | Iterable[CA] | None,
        require_client_cert: bool,
    ) -> ssl.SSLContext:
        _check_identity(identity)
        if isinstance(identity, RotatingServerContext):
            if client_ca is not None or self._maximum_version is not None:
                raise ValueError(
                    "a RotatingServerContext brings its own trust and settings (its "
                    "files and constructor): give no client_ca or maximum_version"
                )
            return identity.context  # served as it is: it switches each handshake itself
        if client_ca is None:
            if not isinstance(identity, IssuedIdentity):
                raise ValueError(
                    "client_ca is required when the identity is a Keystore: pass the CA "
                    "(or Truststore) whose client certificates this server accepts"
                )
            client_ca = identity.ca.root
        keystore = identity.keystore() if isinstance(identity, IssuedIdentity) else identity
        ctx = server_context(
            keystore,
            _truststore_of(client_ca),
            require_client_cert=require_client_cert,
            minimum_version=self._minimum_version,
        )
        # Ours alone until handed to wrap_socket: these settings are made before any use.
        if self._maximum_version is not None:
            ctx.maximum_version = self._maximum_version
        if self.http_version == "1.1":
            ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    @property
    def context(self) -> ssl.SSLContext:
        """The context new connections are wrapped with."""
        return self._context

    def set_context(self, context: ssl.SSLContext) -> None:
        """Serve new connections with ``context`` (a server-side context), as is.

        Connections already open keep the context they were accepted with.
        The context is not modified; :attr:`identity` and :attr:`client_ca` are
        no longer meaningful after this call.

        Raises:
            TypeError: not an ``ssl.SSLContext``.
            ValueError: a client-side context (``PROTOCOL_TLS_CLIENT``, as
                ``ssl.create_default_context()`` makes), which cannot serve.
            RuntimeError: the server is closed.
        """
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"set_context takes an ssl.SSLContext, not {type(context).__name__}")
        if context.protocol == ssl.PROTOCOL_TLS_CLIENT:
            raise ValueError(
                "a client-side context (PROTOCOL_TLS_CLIENT) cannot serve connections: build "
                "one with mtls.server_context(...), or with "
                "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) and then verify_mode = "
                "ssl.CERT_REQUIRED and the client CAs loaded (its default asks no client "
                "for a certificate)"
            )
        self._check_open("set_context")
        if context.verify_mode == ssl.CERT_NONE:
            log.warning(
                "%r: the context given to set_context asks no client for a certificate "
                "(verify_mode CERT_NONE): every client gets in",
                self,  # its URL is known only once started
            )
        self._context = context
        self._given_context = True

    def _check_open(self, what: str) -> None:
        if self._closing:
            raise RuntimeError(f"{what}: this MTLSServer is closed: create a new one")

    def reload(
        self,
        identity: IssuedIdentity | Keystore | RotatingServerContext | None = None,
        *,
        client_ca: CA | Truststore | Iterable[CA] | None = None,
        require_client_cert: bool | None = None,
    ) -> None:
        """Rotate the server's certificate or the CAs it trusts for new connections.

        Arguments left as ``None`` keep their current value: a new identity keeps the
        CAs the server trusts (its own root's, when ``client_ca`` was never given), and
        a :class:`mtls.RotatingServerContext` brings its own. The new context is built
        first: if that fails, the server keeps serving with the old one.

        After :meth:`set_context`, there is nothing to keep (its context is the
        caller's, with whatever it holds, CRLs included): give both ``identity`` and
        ``client_ca`` (a context made from them alone), a RotatingServerContext, or
        call :meth:`set_context` again.

        Args:
            identity: the new server identity (an issued identity, a keystore, or a
                :class:`mtls.RotatingServerContext` whose context is used as it is).
            client_ca: the CA (or CAs, or a truststore) client certificates are
                verified against from now on.
            require_client_cert: whether a client must present a certificate.

        Raises:
            TypeError, ValueError, mtls.KeyEntryError: as for the constructor; a
                ValueError too after :meth:`set_context` without both ``identity``
                and ``client_ca`` (see above).
            RuntimeError: the server is closed.
        """
        self._check_open("reload")
        rotating = isinstance(identity, RotatingServerContext)
        if self._given_context and not rotating and (identity is None or client_ca is None):
            raise ValueError(
                "this server serves the context given to set_context(), whose settings "
                "(CRLs among them) reload() cannot keep: give reload() both identity and "
                "client_ca, or call set_context() with the new context"
            )
        new_identity = identity if identity is not None else self.identity
        if client_ca is not None:
            new_ca: CA | Truststore | Iterable[CA] | None = client_ca
        elif rotating:
            new_ca = None  # it brings its own trust
        else:
            # The CAs in effect; none for a server that served a RotatingServerContext
            # (the new identity's root then, as the constructor takes it).
            new_ca = self.client_ca
        new_require = (
            require_client_cert if require_client_cert is not None else self.require_client_cert
        )
        trusted = _trusted(new_identity, new_ca)
        context = self._build_context(new_identity, trusted, new_require)
        self.identity, self.require_client_cert = new_identity, new_require
        self.client_ca = trusted
        self._context = context
        self._given_context = False

    # -- lifecycle

    def start(self) -> Self:
        """Bind, listen and start serving; returns once connections are accepted.

        Calling it on a running server does nothing.

        Returns:
            The server itself.

        Raises:
            OSError: the address cannot be bound (the port is taken).
            RuntimeError: the server was closed.
        """
        with self._lock:
            if self._closing:
                raise RuntimeError("this MTLSServer is closed: create a new one")
            if self._httpd is not None:
                return self
            # Binding and listen() happen here: from now on connections queue up.
            try:
                httpd = _HTTPServer((self.host, self._requested_port), self)
            except OSError as exc:  # "[Errno 98] Address already in use" named neither
                where = f"{bracketed(self.host)}:{self._requested_port}"
                raise type(exc)(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"mtls-test-server:{httpd.server_port}",
                daemon=True,
            )
            self._thread.start()
        log.debug("MTLSServer listening on %s", self.url)
        return self

    def close(self) -> None:
        """Stop serving, close every open connection and join every thread.

        Idempotent; safe to call on a server never started.
        """
        with self._changed:
            if self._closing:  # another close() is under way: it joins, this one waits
                self._changed.wait_for(lambda: self._finished, 2 * _JOIN_TIMEOUT)
                return
            self._closing = True
            httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            self._finish()
            return
        httpd.shutdown()  # returns once serve_forever has left its loop: no new threads
        httpd.server_close()
        with self._lock:
            open_connections = list(self._connections.items())
            for _, sock in open_connections:
                # socket.socket's shutdown, not SSLSocket's: it wakes a thread blocked
                # in a read without touching the TLS object that thread is using.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
        with self._lock:
            workers = list(self._workers)
        try:
            for worker in workers:
                worker.join(_JOIN_TIMEOUT)
            thread.join(_JOIN_TIMEOUT)
        finally:  # a Ctrl-C in a join must not leave a wait_for_handshakes waiting
            self._finish()

    def _finish(self) -> None:
        """Every connection thread has ended: no handshake is recorded from now on, and a
        :meth:`wait_for_handshakes` learns so (not before: a handshake that was finishing
        as ``close()`` began is still recorded)."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- address

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with ``port=0``).

        Raises:
            RuntimeError: ``port=0`` and the server is not started yet.
        """
        bound = self._httpd.server_port if self._httpd is not None else None
        return listening_port(bound, self._requested_port, self)

    @property
    def url(self) -> str:
        """``https://HOST:PORT`` (IPv6 hosts in brackets), without a trailing slash."""
        return listening_url("https", self.host, self.port)

    # -- handshakes

    @property
    def handshakes(self) -> list[HandshakeRecord]:
        """Every handshake so far, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def clear_handshakes(self) -> None:
        """Forget the handshakes recorded so far."""
        with self._lock:
            self._records.clear()

    def _take_handshakes(self) -> list[HandshakeRecord]:
        """The handshakes recorded so far, forgotten in the same step (none is lost
        between the two): ``mtls serve`` prints each once and keeps none, however long
        it runs."""
        with self._lock:
            taken = list(self._records)
            self._records.clear()
        return taken

    def wait_for_handshakes(
        self, count: int, timeout: float | None = 10.0
    ) -> list[HandshakeRecord]:
        """Wait until at least ``count`` handshakes are recorded (``timeout=None``: as
        long as it takes).

        A refused client often learns of the refusal only at its first read (in
        TLS 1.3 the server checks the client certificate after the client has
        finished), so wait here before asserting on the server's view.

        Returns:
            Every record so far (at least ``count``), oldest first.

        It blocks the calling thread: in an async test, ``await
        asyncio.to_thread(server.wait_for_handshakes, count)``, so the client's task
        can run meanwhile.

        Raises:
            TimeoutError: fewer than ``count`` within ``timeout`` seconds; the
                message lists those recorded.
            RuntimeError: the server was closed (or is closed while waiting) with
                fewer than ``count``: no more will come.
            ValueError: a negative ``count`` or ``timeout``.
        """
        given: object = count  # typed as an int; "1" would fail in the comparison
        if not isinstance(given, int) or isinstance(given, bool):
            raise TypeError(f"count must be an int, not {type(given).__name__}")
        if count < 0 or (timeout is not None and not timeout >= 0):
            raise ValueError(
                f"count and timeout must be 0 or more, not count={count!r}, timeout={timeout!r}"
            )
        with self._changed:
            enough = self._changed.wait_for(
                lambda: len(self._records) >= count or self._finished, timeout
            )
            if len(self._records) >= count:
                return list(self._records)
            if enough:  # woken by close()
                raise RuntimeError(
                    f"this MTLSServer is closed with {len(self._records)} of {count} "
                    f"handshakes: no more will come: {self._records!r}"
                )
            raise TimeoutError(
                f"{len(self._records)} of {count} handshakes within {timeout} s: {self._records!r}"
            )

    def _record(self, record: HandshakeRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()
        log.debug("handshake %s", record)

    # -- connections (called from the serving thread and the connection threads)

    def _spawn(self, request: socket.socket, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"mtls-test-server:{self.port}:{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            if self._closing:
                request.close()
                return
            self._connections[worker] = request
            self._workers = {t for t in self._workers if t.is_alive()}
            self._workers.add(worker)
        worker.start()

    def _serve_connection(self, raw: socket.socket, client_address: Any) -> None:
        peer = (str(client_address[0]), int(client_address[1]))
        me = threading.current_thread()
        conn: socket.socket = raw
        httpd = self._httpd
        assert httpd is not None
        try:
            with self._lock:
                if self._closing:
                    return
                raw.settimeout(self.handshake_timeout)
                # The wrapped socket takes over the descriptor: register it instead,
                # under the lock, so close() always shuts down the live object.
                unusable: Exception | None = None
                try:
                    tls = self._context.wrap_socket(
                        raw, server_side=True, do_handshake_on_connect=False
                    )
                except (ValueError, ssl.SSLError) as exc:
                    unusable = exc
                else:
                    conn = self._connections[me] = tls
            if unusable is not None:
                # A context that cannot serve (one given to set_context): said in a
                # record and a warning, not only in a debug line.
                log.warning("MTLSServer %s: its context cannot serve: %s", self.url, unusable)
                self._record(
                    HandshakeRecord(
                        accepted=False,
                        peer=peer,
                        reason=f"the server's context cannot serve: {unusable}",
                        detail=repr(unusable),
                    )
                )
                return
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError, EOFError) as exc:
                if not self._closing:
                    self._record(
                        HandshakeRecord(
                            accepted=False, peer=peer, reason=_refusal(exc), detail=str(exc)
                        )
                    )
                _linger(tls)
                return
            info = _peer_of(tls)
            self._record(
                HandshakeRecord(
                    accepted=True,
                    peer=peer,
                    client_subject=info.subject,
                    client_cn=info.cn,
                    client_serial=info.serial,
                    client_fingerprint_sha256=info.fingerprint,
                    tls_version=tls.version(),
                )
            )
            tls.settimeout(None)  # keep-alive: idle until the client or close() ends it
            httpd.finish_request(tls, client_address)
            _close_notify(tls)
        except Exception:
            httpd.handle_error(conn, client_address)
        finally:
            with self._lock:
                self._connections.pop(me, None)
            httpd.shutdown_request(conn)

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("running" if self._httpd else "not started")
        where = self.url if self._httpd or self._requested_port else self.host
        return f"<MTLSServer {where} {state}>"
