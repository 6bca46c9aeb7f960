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
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

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
    server: RotatingServerContext,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """A ``uvicorn.Config(ssl_context_factory=...)`` that serves with ``server.context``.

    Args:
        server: the rotating context (it is not closed with uvicorn: close it after).

    Returns:
        The factory. When uvicorn's HTTP protocol asks for ALPN protocols (HTTP/2:
        ``["h2", "http/1.1"]``) that ``server`` was not made with, the factory raises
        ``ValueError`` at start-up naming the ``alpn_protocols`` to give it:
        ALPN set on the context afterwards would not apply (see docs/servers.md).
    """

    def factory(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        del default  # uvicorn's own context from file paths: not used
        wanted = getattr(config.http_protocol_class, "alpn_protocols", None)
        if wanted and tuple(wanted) != server.alpn_protocols:
            raise ValueError(
                f"uvicorn's HTTP protocol negotiates ALPN {list(wanted)!r}: make the "
                f"RotatingServerContext with alpn_protocols={list(wanted)!r}"
            )
        return server.context

    return factory


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
            name = _x509.subject_text(_x509.load_cert(der))
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
    """uvicorn's HTTP protocol, with the ASGI TLS extension in every request's scope.

    Pass it as ``uvicorn.Config(http=tls_extension())``. The extension is worked out
    once per connection (after its handshake) from the transport's ``ssl_object``.

    Args:
        protocol_class: the HTTP protocol to extend (default: uvicorn's ``auto``,
            httptools when installed, else h11).

    Returns:
        A subclass of ``protocol_class``.
    """
    base: Any = protocol_class or AutoHTTPProtocol

    class TLSExtensionProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            tls = tls_scope(transport)
            if tls is None:
                return
            app: ASGIApp = getattr(self, "app")  # noqa: B009 - set by uvicorn's __init__

            async def with_tls(scope: Scope, receive: Any, send: Any) -> None:
                extensions = dict(scope.get("extensions") or {})
                extensions["tls"] = tls
                await app({**scope, "extensions": extensions}, receive, send)

            setattr(self, "app", with_tls)  # noqa: B010 - this connection's requests only

    TLSExtensionProtocol.__name__ = TLSExtensionProtocol.__qualname__ = (
        f"TLSExtension{getattr(base, '__name__', 'Protocol')}"
    )
    return TLSExtensionProtocol
