"""uvicorn: serve with a :class:`mtls.RotatingServerContext`, and show the app the
client certificate.

uvicorn builds its own context from file paths unless it is given a factory;
:func:`ssl_context_factory` hands it the rotating context instead::

    server = mtls.RotatingServerContext("backend.jks", "backend-truststore.jks",
                                        password=..., reload_interval=60)
    config = uvicorn.Config(app, host="0.0.0.0", port=8443,
                            ssl_context_factory=ssl_context_factory(server),
                            http=tls_extension())
    uvicorn.Server(config).run()

uvicorn puts no TLS details in the ASGI scope; :func:`tls_extension` wraps its HTTP
protocol so that every request's scope carries the ASGI TLS extension
(``scope["extensions"]["tls"]``, with ``client_cert_chain`` and ``client_cert_name``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .._fork import renew_attributes_after_fork
from .._log import log
from . import _missing_extra

try:
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
except ImportError as _exc:
    raise _missing_extra("uvicorn", "uvicorn", _exc) from _exc

if TYPE_CHECKING:
    from .._server import RotatingServerContext

__all__ = ["ssl_context_factory", "tls_extension", "tls_scope"]


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

# TLS versions as the ASGI TLS extension gives them (the protocol's 16-bit number).
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def ssl_context_factory(
    server: RotatingServerContext | Callable[[], RotatingServerContext],
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """A ``uvicorn.Config(ssl_context_factory=...)`` that serves with ``server.context``.

    Args:
        server: the rotating context (it is not closed with uvicorn: close it after);
            or, for ``workers`` above 1 (and ``reload=True``), where uvicorn sends its
            config to new processes and a context cannot be sent, a function of
            your module's that makes it: each process calls it once.

    Raises:
        TypeError: ``server`` is neither (a plain ``ssl.SSLContext``, which uvicorn
            would only fail on at start-up).

    Returns:
        The factory. It raises ``ValueError`` at start-up when uvicorn's HTTP protocol
        and the context's ALPN disagree: the protocol negotiates ALPN (HTTP/2:
        ``["h2", "http/1.1"]``) that ``server`` was not made with (ALPN set on the
        context afterwards would not apply, see docs/servers.md), or the context
        offers ``h2`` to clients of a protocol that speaks HTTP/1.1 only (they would
        pick it and get an empty reply).
    """
    if not hasattr(server, "context") and not callable(server):
        raise TypeError(
            f"ssl_context_factory takes a RotatingServerContext, or a function that makes "
            f"one (for workers > 1), not {type(server).__name__}: make the context with "
            "mtls.RotatingServerContext(keystore_path, truststore_path, ...)"
        )
    return _ContextFactory(server)


class _ContextFactory:
    """What :func:`ssl_context_factory` returns; sent to worker processes by name when
    it holds a function, refused (saying what to do) when it holds a context."""

    def __init__(self, source: RotatingServerContext | Callable[[], RotatingServerContext]) -> None:
        self._source = source
        self._made: dict[int, RotatingServerContext] = {}  # per process: pid -> context
        self._lock = threading.Lock()
        renew_attributes_after_fork(self, "_lock")  # gunicorn forks its workers

    def _server(self) -> RotatingServerContext:
        source = self._source
        if hasattr(source, "context"):  # a RotatingServerContext
            return source  # type: ignore[return-value]
        with self._lock:
            made = self._made.get(os.getpid())
            if made is None:
                made = self._made[os.getpid()] = source()
            return made

    def __call__(
        self, config: uvicorn.Config, default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        del default  # uvicorn's own context from file paths: not used
        server = self._server()
        wanted = getattr(config.http_protocol_class, "alpn_protocols", None)
        offered = server.alpn_protocols
        if wanted and tuple(wanted) != offered:
            raise ValueError(
                f"uvicorn's HTTP protocol negotiates ALPN {list(wanted)!r}: make the "
                f"RotatingServerContext with alpn_protocols={list(wanted)!r}"
            )
        if not wanted and offered and "h2" in offered:
            raise ValueError(
                f"uvicorn's HTTP protocol speaks HTTP/1.1 only, and the "
                f"RotatingServerContext offers ALPN {list(offered)!r}: clients that pick "
                "h2 would get an empty reply. Make it without alpn_protocols (or with "
                "['http/1.1']), or give uvicorn an HTTP/2 protocol"
            )
        return server.context

    def __reduce__(self) -> tuple[Any, ...]:
        if hasattr(self._source, "context"):
            raise TypeError(
                "uvicorn sends its config to new processes (workers above 1, "
                "reload=True), and a RotatingServerContext cannot be sent: pass a "
                "function of your module's that makes it, ssl_context_factory(make), "
                "which each process calls once"
            )
        return (_ContextFactory, (self._source,))


def tls_scope(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension's dictionary for a connection (``None``: not TLS).

    Keys: ``client_cert_chain`` (the client's certificate as PEM, in a list; empty
    without one), ``client_cert_name`` (its subject, RFC 4514), ``client_cert_error``
    (always ``None``: a refused certificate never reaches the app), ``tls_version``
    (``0x0304`` for TLS 1.3), ``cipher_suite`` and ``server_cert`` (``None``: the
    :mod:`ssl` module does not give them).
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    name: str | None = None
    chain: list[str] = []
    if der:
        from .. import _x509  # noqa: PLC0415 - cryptography only when a certificate came

        chain = [_x509.der_to_pem(der)]
        try:
            # As the ASGI TLS extension defines it: the RFC 4514 name itself, for the
            # application to compare (not the text mtls shows in logs).
            name = _x509.load_cert(der).subject.rfc4514_string()
        except ValueError:
            name = None
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def tls_extension(protocol_class: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, with the ASGI TLS extension in every scope.

    Pass it as ``uvicorn.Config(http=tls_extension())``. The extension is worked out
    once per connection (after its handshake) from the transport's ``ssl_object``,
    and put in the scope of each HTTP request and of a WebSocket the connection is
    upgraded to. A protocol that hands each connection to another (uvicorn's
    ``AutoZttpProtocol``, which picks HTTP/1.1 or HTTP/2 by ALPN) is followed to the
    one it picks. The class can be sent to uvicorn's worker processes.

    Args:
        protocol_class: the HTTP protocol to extend (default: uvicorn's ``auto``,
            httptools when installed, else h11).

    Returns:
        A subclass of ``protocol_class`` (the same class for the same base).
    """
    return _extended(protocol_class or AutoHTTPProtocol)


# The classes' qualified names say which base they extend (module:qualname in hex: no
# dot, nothing ambiguous), so that pickle finds them again in another process
# (uvicorn's workers): this module's attribute lookup makes them there.
_PREFIX = "TLSExtension_"


_made: dict[type[Any], type[asyncio.Protocol]] = {}
_making = threading.Lock()
renew_attributes_after_fork(sys.modules[__name__], "_making")


def _extended(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    with _making:
        made = _made.get(base)
        if made is None:
            made = _made[base] = _extend(base)
        return made


def _extend(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    parent: Any = base

    class TLSExtensionProtocol(parent):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            tls = tls_scope(transport)
            if tls is None:
                return
            # A dispatching protocol has handed the connection to another by now.
            target = self if getattr(self, "app", None) is not None else transport.get_protocol()
            _attach(target, tls)

    TLSExtensionProtocol.__name__ = f"TLSExtension{base.__name__}"
    TLSExtensionProtocol.__qualname__ = (
        _PREFIX + f"{base.__module__}:{base.__qualname__}".encode().hex()
    )
    TLSExtensionProtocol.__module__ = __name__
    return TLSExtensionProtocol


def _attach(protocol: Any, tls: dict[str, Any]) -> None:
    """Put ``tls`` in the scope of every request ``protocol`` serves, and of a
    WebSocket it upgrades to (uvicorn makes those from the config's app)."""
    app: ASGIApp | None = getattr(protocol, "app", None)
    if app is None:
        _warn_once(type(protocol).__name__)
        return

    async def with_tls(scope: Scope, receive: Any, send: Any) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = tls
        await app({**scope, "extensions": extensions}, receive, send)

    protocol.app = with_tls  # this connection's requests only
    websocket = getattr(protocol, "ws_protocol_class", None)
    if websocket is not None:
        protocol.ws_protocol_class = _extended(websocket)


@functools.cache
def _warn_once(protocol: str) -> None:
    log.warning(
        "mtls.integrations.uvicorn: the protocol %s serves no app of its own: its "
        "requests get no TLS extension in their scope",
        protocol,
    )


if not TYPE_CHECKING:  # type checkers see the module's real names only: a typo is an error

    def __getattr__(name: str) -> Any:
        """The class :func:`tls_extension` made for a base, made again by name (pickle
        looks it up so in uvicorn's worker processes)."""
        base = _base_named(name) if name.startswith(_PREFIX) else None
        if base is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return _extended(base)


def _base_named(name: str) -> type[asyncio.Protocol] | None:
    """The protocol class a name made by :func:`_extend` stands for, or None."""
    try:
        module_name, _, qualname = bytes.fromhex(name.removeprefix(_PREFIX)).decode().partition(":")
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # any name that is not one of ours: no such attribute
        return None
    if isinstance(found, type) and issubclass(found, asyncio.Protocol):
        return found
    return None
