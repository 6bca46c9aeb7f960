"""One real TLS connection: the socket half of ``mtls probe`` and ``mtls demo``.

Connect, handshake, ask once, and keep what was seen in a
:class:`~mtls._cli._diagnosis.Report`; what a failure means is decided in
``_diagnosis`` (its docstring lists the order of events).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from .. import _x509
from .._errors import MTLSError, RevocationError
from .._revocation import RevocationChecker, RevocationPolicy
from .._revocation import peer_chain as revocation_peer_chain
from .._version import __version__
from ._common import cert_info, now, span_text
from ._diagnosis import (
    Failure,
    Report,
    Setup,
    Target,
    _alert_text,
    classify_answer,
    classify_handshake,
    closed,
    explain_from_chain,
    java_refuses_server,
    java_sends_none,
    refused_after_handshake,
    refused_statuses,
    refuses_with_alert,
    revocation_failure,
    sent_none,
)

_MAX_RESPONSE = 64 * 1024
_HANDSHAKE = 22  # TLS content type
# Handshake message types (RFC 8446 4, RFC 5246 7.4)
_SERVER_HELLO, _CERTIFICATE_REQUEST, _SERVER_HELLO_DONE, _FINISHED = 2, 13, 14, 20
_CERTIFICATE = 11


def _empty_certificate(data: object) -> bool:
    """Whether a Certificate handshake message (header included) lists no certificate:
    TLS 1.2's is a 3-byte list length; TLS 1.3's a request context first."""
    if not isinstance(data, bytes):
        return False
    body = data[4:]
    return body == b"\0\0\0" or (len(body) >= 4 and body[1 + body[0] :] == b"\0\0\0")


@contextlib.contextmanager
def _watch_certificate_request(ctx: ssl.SSLContext, report: Report) -> Any:
    """Keep ``report.certificate_requested`` current while the probe talks: whether
    the server asked for a client certificate (a CertificateRequest arrived, in the
    handshake or after it), through the message callback CPython offers for debugging
    (``_msg_callback``, 3.8 and later).

    ``False`` until the server answers (a server that ends the handshake at once has
    asked for nothing); ``None`` (unknown) from its ServerHello until the end of its
    flight (ServerHelloDone in TLS 1.2, Finished in 1.3), since the request comes
    last in it; then ``False`` unless a request came. ``None`` throughout where the
    callback is missing. The context is the probe's own (built for this command,
    never handed out), and the callback is removed afterwards."""
    if not hasattr(ctx, "_msg_callback"):
        yield
        return

    def seen(*message: object) -> None:
        # (connection, direction, version, content type, message type, data)
        _, direction, version, content, kind, data = message
        if content != _HANDSHAKE:
            return
        if direction == "write":
            # We had a certificate and sent an empty list: OpenSSL found no signature
            # algorithm the server accepts that fits our key.
            if kind == _CERTIFICATE and _empty_certificate(data):
                report.sent_empty_certificate = True
            return
        if isinstance(data, bytes | bytearray) and len(data) >= 4:
            size = len(data) - 4  # the body, as Java's limit counts it
            if report.largest_message is None or size > report.largest_message[1]:
                report.largest_message = (kind if isinstance(kind, int) else -1, size)
            if kind == _CERTIFICATE and isinstance(version, int):
                report.server_certificates = _certificate_count(bytes(data), version)
        if kind == _CERTIFICATE_REQUEST:
            report.certificate_requested = True
            if isinstance(data, bytes | bytearray) and isinstance(version, int):
                report.ca_names = _ca_names(bytes(data), version)
        elif kind == _SERVER_HELLO and report.certificate_requested is False:
            report.certificate_requested = None  # its flight has begun: not known yet
        elif kind in (_SERVER_HELLO_DONE, _FINISHED):
            report.server_flight_ended = True
            if report.certificate_requested is None:
                report.certificate_requested = False  # its flight ended without a request

    report.certificate_requested = False
    previous = ctx._msg_callback
    ctx._msg_callback = seen
    try:
        yield
    finally:
        ctx._msg_callback = previous


_TLS13 = 0x0304
_CERTIFICATE_AUTHORITIES = 47  # the TLS 1.3 extension (RFC 8446 4.2.4)


def _certificate_count(message: bytes, version: int) -> int | None:
    """How many certificates a Certificate message (its 4-byte header included)
    holds: TLS 1.2's list of length-prefixed certificates; TLS 1.3's, each followed by
    its extensions, after a request context. ``None`` when it cannot be read."""
    body = message[4:]
    try:
        at = 1 + body[0] if version >= _TLS13 else 0  # certificate_request_context
        end = at + 3 + int.from_bytes(body[at : at + 3], "big")
        at += 3
        count = 0
        while at < end:
            at += 3 + int.from_bytes(body[at : at + 3], "big")
            if version >= _TLS13:
                at += 2 + int.from_bytes(body[at : at + 2], "big")
            count += 1
        return count if at == end <= len(body) else None
    except IndexError:
        return None


def _ca_names(message: bytes, version: int) -> list[bytes] | None:
    """The distinguished names (DER) a CertificateRequest (its 4-byte header included)
    lists as the issuers the server takes: TLS 1.2's certificate_authorities field,
    TLS 1.3's extension of that name. ``[]``: it lists none (any issuer); ``None``: the
    message cannot be read."""

    def u16(at: int) -> int:
        if at + 2 > len(body):
            raise IndexError(at)
        return int.from_bytes(body[at : at + 2], "big")

    def names(at: int, end: int) -> list[bytes]:
        found = []
        while at < end:
            size = u16(at)
            found.append(body[at + 2 : at + 2 + size])
            at += 2 + size
        if at != end or any(not name for name in found):
            raise IndexError(at)
        return found

    body = message[4:]
    try:
        if version >= _TLS13:
            at = 1 + body[0]  # certificate_request_context
            end = at + 2 + u16(at)
            at += 2
            while at < end:
                kind, size = u16(at), u16(at + 2)
                if kind == _CERTIFICATE_AUTHORITIES:
                    return names(at + 6, at + 6 + u16(at + 4))
                at += 4 + size
            return []
        at = 1 + body[0]  # certificate_types
        if version >= 0x0303:
            at += 2 + u16(at)  # supported_signature_algorithms
        return names(at + 2, at + 2 + u16(at))
    except IndexError:
        return None


def peer_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent, leaf first (the leaf alone if the chain is hidden)."""
    return revocation_peer_chain(tls, verified=False)


def handshake_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """Do ``tls``'s handshake (made with ``do_handshake_on_connect=False``) and return
    the certificates the server sent, leaf first. A TLS 1.2 server that demands a
    client certificate ends the handshake after sending its own chain: the chain is
    returned all the same, as keytool -printcert -sslserver shows it.

    Raises:
        ssl.SSLError: the handshake failed before the server sent a certificate.
        OSError: the connection failed before that (a reset included).
    """
    try:
        tls.do_handshake()
    except (ssl.SSLError, ConnectionResetError):  # an alert, or a reset instead of one
        try:
            chain = peer_chain(tls)  # what the server sent before it ended the handshake
        except ValueError:  # no certificate came ("handshake not done yet")
            chain = []
        if chain:
            return chain
        raise
    return peer_chain(tls)


def _describe_chain(ders: list[bytes]) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    for der in ders:
        try:
            chain.append(cert_info(_x509.load_cert(der)))
        except ValueError:
            chain.append({"subject": "<unparsable certificate>", "sha256": _x509.sha256_hex(der)})
    return chain


def _note_expiring(report: Report) -> None:
    """A note for each certificate of the server's chain that ends within the expiry
    warning's threshold (30 days), as the client's own are warned of: the probe showed
    "expires ... (1 day)" and said nothing (h264)."""
    from .._context import EXPIRY_WARNING  # noqa: PLC0415 - not for --help

    soon = now() + EXPIRY_WARNING
    for index, info in enumerate(report.chain):
        not_after = info.get("not_after")
        if not not_after:
            continue
        ends = _dt.datetime.fromisoformat(not_after)
        if now() <= ends <= soon:
            which = "the server's certificate" if index == 0 else "a CA certificate of its chain"
            report.notes.append(
                f"{which} ({info['subject']}) expires in {span_text(ends)}, on "
                f"{ends.date()} UTC: connections fail from then on unless it is renewed "
                "and the backend serves the new one"
            )


def _request(tls: ssl.SSLSocket, target: Target, timeout: float) -> bytes:
    """Send one GET and read its answer, within ``timeout`` seconds in all: a server that
    trickles its answer a byte at a time raises :class:`TimeoutError` all the same,
    unless its status line has come (a streamed answer: what came is returned)."""
    host = target.name if ":" not in target.name else f"[{target.name}]"
    if target.port != 443:
        host += f":{target.port}"
    deadline = time.monotonic() + timeout
    tls.settimeout(timeout)
    try:
        tls.sendall(
            f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mtls-probe/{__version__}"
            "\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode("ascii", "replace")
        )
    except (ssl.SSLEOFError, ConnectionError):
        _raise_pending_alert(tls)
        raise
    data = b""
    while len(data) < _MAX_RESPONSE:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            tls.settimeout(left)
            chunk = tls.recv(16384)
        except TimeoutError:
            if b"\r\n" in data and data.startswith(b"HTTP/"):
                return data  # it answered, and goes on streaming: its status is known
            raise
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = _content_length(head)
            if length is not None and len(body) >= length:
                break
    return data


def _raise_pending_alert(tls: ssl.SSLSocket) -> None:
    """Raise the alert a server sent before closing, if one waits unread: a TLS 1.3
    server refuses our certificate after our handshake has ended, and when its alert
    and close come before our request the write fails first (EOF, a reset)."""
    try:
        tls.recv(16384)
    except ssl.SSLError as alert:
        if not isinstance(alert, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            raise alert from None
    except (OSError, ValueError):
        pass


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value.strip())
    return None


def _connect(target: Target, timeout: float) -> tuple[socket.socket | None, Failure | None]:
    where = target.server
    try:
        return socket.create_connection((target.host, target.port), timeout=timeout), None
    except socket.gaierror as exc:
        return None, Failure(
            "dns", f"cannot resolve {target.host} ({exc.strerror}): check the host name"
        )
    except UnicodeError:  # the IDNA codec getaddrinfo runs: "a..b", a label over 63
        return None, Failure(
            "dns",
            f"{target.host!r} is not a valid host name (an empty label, a label over 63 "
            "characters, or a character no host name holds): check the URL",
        )
    except ConnectionRefusedError:
        return None, Failure(
            "connection_refused",
            f"{where} refused the connection: nothing listens there (check the port, and that "
            "the backend runs)",
        )
    except TimeoutError:
        return None, Failure(
            "timeout",
            f"no answer from {where} within {timeout:g} s: a firewall drops the packets, or "
            "the host is wrong",
        )
    except OSError as exc:
        return None, Failure("network", f"cannot connect to {where}: {exc.strerror or exc}")


#: JDK 17's TLS 1.2 suites in its order, as OpenSSL names them: the signed key
#: exchanges first, RSA key transport (TLS_RSA_*) last (JDK 25 offers none of those).
_JAVA17_TLS12: Final = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:"
    "ECDHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:DHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES128-SHA:DHE-RSA-AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256:"
    "AES256-SHA256:AES128-SHA256:AES256-SHA:AES128-SHA"
)
#: The TLS_RSA_* suites of that list (RSA key transport), by their code.
_RSA_TRANSPORT: Final = frozenset({0x009D, 0x009C, 0x003D, 0x003C, 0x0035, 0x002F})


def java17_exchange(target: Target, timeout: float) -> str | None:
    """The key exchange a TLS 1.2 server picks from JDK 17's offer, in its order:
    ``"rsa"`` (RSA key transport, which a keyEncipherment certificate allows) or
    ``"signed"`` (ECDHE, DHE: digitalSignature), read from its ServerHello; ``None``
    when it cannot be told. One connection without a certificate or verification: the
    server's choice comes before either matters (h261: the probe judged the key usage
    on its own offer, which has no RSA key transport)."""
    raw, _ = _connect(target, timeout)
    if raw is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    picked: list[int] = []
    try:
        ctx.set_ciphers(_JAVA17_TLS12)
    except ssl.SSLError:
        raw.close()
        return None

    def seen(*message: object) -> None:
        _, direction, _, content, kind, data = message
        if direction == "read" and content == _HANDSHAKE and kind == _SERVER_HELLO:
            body = bytes(data)[4:] if isinstance(data, bytes | bytearray) else b""
            at = 34 + 1 + (body[34] if len(body) > 34 else 0)  # version, random, session
            if len(body) >= at + 2:
                picked.append(int.from_bytes(body[at : at + 2], "big"))

    if hasattr(ctx, "_msg_callback"):
        ctx._msg_callback = seen
    try:
        with ctx.wrap_socket(raw, server_hostname=target.name) as tls:
            name = (tls.cipher() or ("",))[0]
            return "signed" if name.startswith(("ECDHE-", "DHE-")) else "rsa"
    except (ssl.SSLError, OSError):  # a server that demands a certificate: its hello came
        if not picked:
            return None
        return "rsa" if picked[0] in _RSA_TRANSPORT else "signed"
    finally:
        raw.close()


def _fetch_unverified_chain(report: Report, timeout: float) -> None:
    if report.setup.insecure is None:
        return
    try:
        context = report.setup.insecure()
    except Exception as exc:  # only a courtesy: never hide the real failure
        report.notes.append(f"could not fetch the server's chain: {exc}")
        return
    raw, _ = _connect(report.target, timeout)
    if raw is None:
        return
    try:
        with context.wrap_socket(
            raw, server_hostname=report.target.name, do_handshake_on_connect=False
        ) as tls:
            report.chain = _describe_chain(handshake_chain(tls))
            report.chain_from_unverified_handshake = True
    except ssl.SSLError as exc:
        # That handshake presents no client certificate (the server failed
        # verification): a TLS 1.2 server that demands one ends it first.
        report.notes.append(
            f"could not fetch the server's chain: it ended the handshake that would show "
            f"it ({exc.reason or exc}), as a TLS 1.2 server that demands a client "
            "certificate does (a server that failed verification is not shown ours)"
        )
    except OSError as exc:
        report.notes.append(f"could not fetch the server's chain: {exc}")
    finally:
        raw.close()


def run_probe(target: Target, setup: Setup, *, timeout: float, request: bool = True) -> Report:
    """Connect, handshake, ask once, and describe what happened (never raises for network
    or TLS failures: they are in :attr:`Report.failure`)."""
    report = Report(target, setup, failure=setup.failure)
    if setup.failure is not None or setup.context is None:
        return report
    started = time.perf_counter()
    raw, failure = _connect(target, timeout)
    if raw is None:
        report.failure = failure
        return report
    with raw, _watch_certificate_request(setup.context, report):
        with contextlib.suppress(OSError):
            report.address = str(raw.getpeername()[0])
        try:
            tls = setup.context.wrap_socket(raw, server_hostname=target.name)
        except RevocationError as exc:
            # The profile set's check refused the server right after the handshake.
            report.failure = revocation_failure(exc)
            report.revocation = refused_statuses(setup.revocation, target, exc)
            report.elapsed_ms = (time.perf_counter() - started) * 1000
            return report
        except (ssl.SSLError, OSError, EOFError) as exc:
            report.failure = classify_handshake(
                exc, setup, target, asked=report.certificate_requested
            )
            if report.failure.kind == "client_cert_refused" and setup.client_subject:
                report.accepted = False  # refused in the handshake (TLS 1.2), as after it
            if isinstance(exc, ssl.SSLCertVerificationError):
                report.chain_verified = False
                _fetch_unverified_chain(report, timeout)
                explain_from_chain(report)
            sent_none(report)
            java_sends_none(report)
            report.elapsed_ms = (time.perf_counter() - started) * 1000
            return report
        with tls:
            report.tls_version = tls.version()
            cipher = tls.cipher()
            report.cipher = cipher[0] if cipher else None
            served = peer_chain(tls)
            report.chain = _describe_chain(served)
            report.chain_verified = setup.verify
            _note_expiring(report)
            _revocation_report(tls, report, timeout)
            # Nothing more for a server whose certificate is revoked: not our request,
            # not our client certificate's fate.
            if request and report.failure is None:
                closed_unanswered = _ask(tls, report, timeout)
                if closed_unanswered and tls.selected_alpn_protocol() is None:
                    _ask_over_h2(report, timeout)
                if closed_unanswered:
                    _ask_without_certificate(report, timeout)
                sent_none(report)
    if setup.verify and served:
        # After our connection closed: a server serving one connection at a time (openssl
        # s_server) would hold JDK 17's offer until the timeout.
        java_refuses_server(report, served, lambda: java17_exchange(target, timeout))
    java_sends_none(report)
    report.elapsed_ms = (time.perf_counter() - started) * 1000
    return report


def _revocation_report(tls: ssl.SSLSocket, report: Report, timeout: float) -> None:
    """The revocation status of the chain: the set's checker (its cache: nothing is
    fetched twice), else a report-only soft check that changes nothing."""
    setup = report.setup
    if not setup.verify:
        report.revocation_note = "not checked: certificate verification is off"
        return
    # `is None`, not truthiness: a checker's length is its cache's, 0 in a new process.
    checker = (
        setup.revocation
        if setup.revocation is not None
        # --timeout bounds each fetch and the whole check (the docs' "caps both"; its
        # own 10 s default let a hanging responder hold four fetches: 8 s for 2, h165).
        else RevocationChecker(
            RevocationPolicy(mode="soft", timeout=timeout, check_timeout=timeout)
        )
    )
    # The context lists only certificates marked as CAs; a pinned leaf is an anchor too.
    anchors = (
        list(setup.anchors)
        if setup.anchors is not None
        else tls.context.get_ca_certs(binary_form=True)
    )
    statuses = checker.statuses(revocation_peer_chain(tls), anchors)
    report.revocation = [status.to_dict() for status in statuses]
    if not statuses:
        report.revocation_note = "nothing to check: the server's certificate is a trust anchor"
    elif setup.revocation is None:
        # Undetermined passes, revoked fails the probe; the set would not check at all.
        report.revocation_note = (
            "reported only, soft-fail: a revoked certificate fails the probe"
            + (
                "; the profile set enforces no revocation policy (its revocation= is not "
                "set), so it would connect"
                if setup.matched in ("profile", "catch-all", "default")
                else ""
            )
        )
    for status in statuses:
        if status.status == "revoked" and report.failure is None:
            # The one fix is the backend's: a new certificate from its CA.
            what = (
                "the server's certificate is revoked: the backend must get a new one from its CA"
                if status is statuses[0]
                else "a CA certificate of the server's chain is revoked: the backend needs a "
                "certificate from a CA that is not"
            )
            report.failure = Failure(
                "server_cert_revoked",
                f"{status.describe()}: {what} (our request was not sent)",
            )


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113 3.4, 6.5).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x04


_T = TypeVar("_T")


def _once_more(
    report: Report,
    context: ssl.SSLContext,
    timeout: float,
    talk: Callable[[ssl.SSLSocket], _T | None],
) -> _T | None:
    """One more connection to the target with ``context``, to tell a close apart (the
    retries over h2 and without a certificate): what ``talk`` makes of it, or ``None``
    when the connection or the handshake fails."""
    raw, _ = _connect(report.target, timeout)
    if raw is None:
        return None
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=report.target.name)
        except (ssl.SSLError, OSError, ValueError, MTLSError):  # a revocation check's too
            return None
        with tls:
            return talk(tls)


def _ask_over_h2(report: Report, timeout: float) -> None:
    """A server that closed our HTTP/1.1 connection unanswered after a TLS 1.3
    handshake looks like one refusing our certificate. An HTTP/2-only server (gRPC
    closes a connection that did not negotiate ALPN "h2") does the same: connect again
    offering only h2; a server that answers our preface with its SETTINGS accepted us."""
    setup = report.setup
    context = setup.h2() if setup.h2 is not None else None
    if context is None:
        return

    def opening(tls: ssl.SSLSocket) -> bytes | None:
        if tls.selected_alpn_protocol() != "h2":
            return None
        try:
            tls.settimeout(timeout)
            tls.sendall(_H2_PREFACE)
            return tls.recv(9)
        except (ssl.SSLError, OSError, ValueError):
            return None  # refused over h2 too (an alert, a close): the diagnosis stands

    head = _once_more(report, context, timeout, opening)
    if head is None or len(head) < 4 or head[3] != _H2_SETTINGS:
        return
    report.failure = None
    report.accepted = True
    report.http_status = None
    report.notes.append(
        "the server closed our HTTP/1.1 connection without answering, and took our "
        "certificate when we offered HTTP/2 (ALPN h2): TLS and HTTP/2's opening went "
        "through, so it may speak only HTTP/2, as gRPC servers do (they close a "
        "connection that did not negotiate h2); a refusal it makes in HTTP/2 itself "
        "is not seen here"
    )


def _ask_without_certificate(report: Report, timeout: float) -> None:
    """A TLS 1.3 server that closed after the handshake without an alert or an answer
    was said to have refused our certificate; one whose TLS took it and that closed
    after (an allow-list of subjects above TLS, a server that answers nothing) was
    told the same, and its user sent to fix the certificate's trust (h245). Ask again
    with no certificate: a server that then refuses with an alert ("certificate
    required") refuses in TLS with alerts, and sent none for ours: its TLS took it,
    and the close came after. Still a failure (h248: an allow-list refusing this
    identity passed the probe), of its own kind. Any other outcome (the same close,
    an answer) leaves the diagnosis as it was."""
    setup, target = report.setup, report.target
    failure = report.failure
    if failure is None or failure.kind != "client_cert_refused" or setup.insecure is None:
        return
    if not setup.client_subject:
        return

    def alert(tls: ssl.SSLSocket) -> str | None:
        if tls.version() != "TLSv1.3":
            return None
        try:
            _request(tls, target, timeout)
        except ssl.SSLError as exc:
            return _alert_text(exc) if refuses_with_alert(exc) else None
        except (OSError, EOFError):
            return None
        return None  # an answer, or the same close: nothing told apart

    said = _once_more(report, setup.insecure(), timeout, alert)
    if said is None:
        return
    report.accepted = None  # its TLS took it; what refused us came after
    signing = refused_after_handshake(setup)
    report.failure = Failure(
        "closed_after_handshake",
        f"{target.server} took our certificate in the TLS handshake (we sent "
        f"{setup.client_subject}; asked again with no certificate, it refused with the "
        f"alert '{said}': its TLS refuses with alerts, and sent none for ours), then "
        "closed without an alert or an HTTP answer: it refuses this identity above TLS "
        "(an allow-list of subjects, an authorisation rule), or does not speak "
        "HTTP/1.1: its log says which" + (f"; {signing}" if signing is not None else ""),
    )


def _closed_without_alert(exc: BaseException) -> bool:
    """Whether an error reading the answer is the server closing with no TLS alert:
    an EOF, a reset or broken pipe, or (OpenSSL 3.6) that system error as an
    ``SSLError`` of library ``SYS``. Which one a close gives depends on timing and on
    the OpenSSL under Python (h206: a gRPC server's close was a ``BrokenPipeError``
    with Python 3.14 and OpenSSL 3.6, an empty read with OpenSSL 3.0)."""
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return True
    if isinstance(exc, ssl.SSLError):
        return getattr(exc, "library", None) == "SYS"
    return isinstance(exc, ConnectionError | EOFError)


def _ask(tls: ssl.SSLSocket, report: Report, timeout: float) -> bool:
    """Send the request and judge the answer; True when the server closed a TLS 1.3
    connection that asked for our certificate without an alert or an answer (taken
    for a refusal of our certificate, which it may not be: see _ask_over_h2)."""
    setup, target = report.setup, report.target
    try:
        data = _request(tls, target, timeout)
    except TimeoutError:
        report.accepted = True if report.tls_version != "TLSv1.3" else None
        report.notes.append(
            "no HTTP answer within the timeout: it may not be an HTTP server"
            + (
                "; with TLS 1.3 that leaves open whether it accepted our certificate"
                if report.tls_version == "TLSv1.3" and report.certificate_requested is not False
                else ""
            )
        )
        return False
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        if _closed_without_alert(exc):
            # Read as the orderly close below is: with TLS 1.3 a refusal of our
            # certificate, or a server that speaks only HTTP/2 (tried next); with TLS
            # 1.2 (our certificate taken in the handshake) no refusal. Python 3.13
            # gives a reset after a TLS 1.2 handshake as ConnectionResetError, where
            # 3.12 read it as an empty read: it was called a refusal "with TLS 1.3"
            # (h212).
            data = b""
        else:
            failure, accepted = classify_answer(
                exc, setup, target, asked=report.certificate_requested
            )
            if accepted is not None:
                report.accepted = accepted
            if failure is not None:
                report.failure = failure
                return False
            data = b""
    if not data:
        # With TLS 1.3 a server checks our certificate after the handshake, and most
        # refuse one by closing; one that asked for none refused none.
        if report.tls_version == "TLSv1.3" and report.certificate_requested is not False:
            report.accepted = False
            report.failure = closed(
                setup, target.server, during=False, asked=report.certificate_requested
            )
            return True
        report.accepted = True
        report.notes.append(
            "the server closed the connection without an HTTP answer"
            + (
                " (it asked for no client certificate, so it refused none)"
                if report.certificate_requested is False
                # (h215: said of a TLS 1.2 server that resets every request, it read
                # as a clean bill)
                else " (our certificate passed the handshake; a refusal the server "
                "makes afterwards by closing is not told apart)"
            )
            + (
                f"; {signing}"
                if report.certificate_requested is not False
                and (signing := refused_after_handshake(setup)) is not None
                else ""
            )
        )
        return False
    report.accepted = True
    report.body = data.partition(b"\r\n\r\n")[2]
    first = data.split(b"\r\n", 1)[0].decode("latin-1", "replace").strip()
    report.http_status = first if first.startswith("HTTP/") else None
    return False
