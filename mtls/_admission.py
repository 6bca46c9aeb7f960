"""What a server context of mtls checks of a client certificate after OpenSSL verified it.

OpenSSL's client purpose check takes a client certificate whose key usage has
keyAgreement and no digitalSignature (for the fixed Diffie-Hellman client
authentication of old TLS, which TLS 1.2 as deployed and TLS 1.3 do not have), and
nothing in OpenSSL checks that the key may sign the CertificateVerify a TLS client
proves its key with. Java's servers (``EndEntityChecker.checkTLSClient``, which a WSO2
or any JSSE backend runs) refuse such a certificate: "KeyUsage does not allow digital
signatures". An mtls server refuses it too (h259: it admitted certificates its CA had
issued for key agreement only, beside a Java server that refused them).

As Java's ``Validator`` does, a client certificate the truststore holds itself (the
same bytes: a pinned leaf) is checked no further: Java omits its end-entity checks when
the chain's first certificate is one of its trusted certificates (h266 read
``PKIXValidator.engineValidate`` of JDK 17 and 25: ``trustedCerts.contains``, exact
bytes; a certificate with a pinned one's subject and key and other bytes is checked).

Where it runs: the server contexts :func:`mtls.server_context` builds (and so every
:class:`~mtls.RotatingServerContext`, whose connections are made by its outer context)
set ``sslsocket_class`` and ``sslobject_class`` (documented, per-instance attributes
of ``ssl.SSLContext``) to the classes below, whose ``do_handshake`` checks the client
certificate once the handshake has succeeded, and whose first read or write does when
the handshake was implicit. A certificate asked for after the handshake (TLS 1.3
post-handshake authentication, ``verify_client_post_handshake()``) is checked by the
first read that receives it. A refusal raises ``ssl.SSLCertVerificationError`` from the
handshake (or that read): every server framework treats it as the failed handshake it
is and closes the connection (asyncio without a traceback; a socket made with
``do_handshake_on_connect=True`` is closed by the stdlib), and the application never
sees the client. The client is sent no alert: it sees its connection closed. gRPC
servers do their TLS in gRPC's own core and are not covered (docs/servers.md).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence
from typing import Any, Final

from . import _purpose, _x509
from ._log import first_time, log

#: OpenSSL's code for a certificate refused for its purpose (``X509_V_ERR_INVALID_PURPOSE``).
_INVALID_PURPOSE: Final = 26
#: Refused certificates already logged (their SHA-256), so that a client retrying is
#: said once; bounded, emptied when full.
_SAID: set[str] = set()


def install(ctx: ssl.SSLContext, anchors: Sequence[bytes]) -> None:
    """Make every connection the server context ``ctx`` makes check its client's
    certificate after the handshake (see the module); ``anchors`` are the truststore's
    certificates (empty when the context trusts the system's CAs). Called once, before
    the context is handed out."""
    # Subclasses of the classes the context has: gevent's patched SSLContext makes its
    # own SSLSocket (with a constructor the stdlib's has not), and took no subclass of
    # the stdlib's (every connection failed under gunicorn's gevent worker).
    ctx.sslsocket_class = _admitting(ctx.sslsocket_class)
    ctx.sslobject_class = _admitting(ctx.sslobject_class)
    # Read through the connection's context, which a RotatingServerContext switches to
    # its current inner context during the handshake: the anchors are that one's.
    ctx._mtls_anchors = tuple(anchors)  # type: ignore[attr-defined]


def admit(conn: ssl.SSLSocket | ssl.SSLObject) -> None:
    """Refuse the client of the server connection ``conn``, whose handshake has
    succeeded, when Java's servers refuse its certificate where OpenSSL took it.

    Raises:
        ssl.SSLCertVerificationError: the client certificate's key usage has no
            digitalSignature (and the truststore does not hold it).
    """
    leaf = conn.getpeercert(binary_form=True)
    if not leaf:
        return  # no client certificate (CERT_OPTIONAL): nothing to check
    why = _refused(leaf)
    if why is None:
        return
    if leaf in getattr(conn.context, "_mtls_anchors", ()):
        return  # pinned: the truststore holds it itself (Java checks it no further)
    _say(leaf, why)
    exc = ssl.SSLCertVerificationError(
        1,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unsupported "
        f"certificate purpose ({why})",
    )
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    exc.library = "SSL"
    exc.verify_code = _INVALID_PURPOSE
    exc.verify_message = why
    raise exc


@functools.lru_cache(maxsize=256)
def _refused(leaf: bytes) -> str | None:
    """Why Java's servers refuse the client certificate ``leaf``, or ``None``: it has
    no key usage, one with digitalSignature, or one cryptography cannot read (OpenSSL,
    which verified it, decides then)."""
    if not _purpose.cannot_sign(leaf):
        return None
    return (
        "the client certificate's key usage has no digitalSignature, and a TLS client "
        'signs with its key (Java servers refuse it too: "KeyUsage does not allow '
        'digital signatures")'
    )


def _say(leaf: bytes, why: str) -> None:
    digest = _x509.sha256_hex(leaf)
    if not first_time(_SAID, digest):
        return
    try:
        cert = _x509.load_cert(leaf)
        who = f"{cert.subject.rfc4514_string()}, serial {cert.serial_number:X}"
        issuer = cert.issuer.rfc4514_string()
    except ValueError:
        who, issuer = f"SHA-256 {digest}", "(unreadable)"
    log.warning(
        "mtls: refused a client certificate (%s, issued by %s): %s: have its CA reissue "
        "it with digitalSignature in its key usage (a CA that issues key-agreement-only "
        "certificates should not be this server's trust anchor)",
        who,
        issuer,
        why,
    )


class _Admits:
    """Mixed into a server context's socket and memory-BIO classes: the client's
    certificate is checked (:func:`admit`) once the handshake has succeeded, and before
    the first read or write when the handshake was implicit (OpenSSL's first read or
    write finishes it, past ``do_handshake``). Signatures are passed through: the base
    may be gevent's socket class, whose methods take other arguments."""

    _mtls_admitted = False
    _mtls_asked = False  # a certificate was asked for after the handshake
    _mtls_leaf: bytes | None = None  # the client certificate last checked

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        super().do_handshake(*args, **kwargs)  # type: ignore[misc]
        if not self._mtls_admitted:
            # Not closed here: a caller that drives the handshake itself (tornado,
            # with the socket registered in its loop) closes it, and one closed under
            # it broke every later connection (h266). A socket whose handshake ran on
            # connect is closed by the stdlib; any read or write checks again.
            admit(self)  # type: ignore[arg-type]
            self._mtls_admitted = True
            self._mtls_leaf = self.getpeercert(binary_form=True)  # type: ignore[attr-defined]

    def _mtls_before_io(self) -> None:
        if not self._mtls_admitted:
            self.do_handshake()  # a no-op handshake once done; wanting data raises as I/O does

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self._mtls_before_io()
        data = super().read(*args, **kwargs)  # type: ignore[misc]
        if self._mtls_asked:
            # A certificate asked for after the handshake arrives in a read: checked
            # before what that read returns reaches the application (h266: it was not).
            leaf = self.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            if leaf and leaf != self._mtls_leaf:
                try:
                    admit(self)  # type: ignore[arg-type]
                except ssl.SSLError:
                    # read(n, buffer) (recv_into) has filled the caller's buffer with
                    # what the refused client sent: wiped before the refusal (h269).
                    buffer = args[1] if len(args) > 1 else kwargs.get("buffer")
                    if buffer is not None and isinstance(data, int) and data:
                        memoryview(buffer).cast("B")[:data] = bytes(data)
                    raise
                self._mtls_leaf = leaf
        return data

    def verify_client_post_handshake(self, *args: Any, **kwargs: Any) -> Any:
        self._mtls_asked = True
        return super().verify_client_post_handshake(*args, **kwargs)  # type: ignore[misc]

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self._mtls_before_io()
        return super().write(*args, **kwargs)  # type: ignore[misc]

    def send(self, *args: Any, **kwargs: Any) -> Any:
        # Sockets only: sendall and sendfile call send; recv and recv_into call read.
        self._mtls_before_io()
        return super().send(*args, **kwargs)  # type: ignore[misc]


_CLASSES: dict[object, type[Any]] = {}  # base class -> its admitting subclass


def _admitting(base: type[Any]) -> type[Any]:
    """``base`` (the context's socket or memory-BIO class: the stdlib's, or gevent's
    after its patch, whose ``wrap_socket`` constructs its own) with :class:`_Admits`,
    made once per base."""
    made = _CLASSES.get(base)
    if made is None:
        made = type(f"Admitting{base.__name__}", (_Admits, base), {"__module__": __name__})
        made = _CLASSES.setdefault(base, made)
    return made
