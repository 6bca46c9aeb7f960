"""What a failed TLS exchange means: the records of a probe and the diagnosis.

No sockets here (they are in ``_connect``): this module turns what the connection
saw (an exception, an alert, the chain the server sent) into a stable failure kind
(see docs/cli.md) and a sentence that names the fix.

Order of events, and what each failure means:

1. The profile lookup (``host:port``, then ``*``, then the default). Nothing
   matches: no TLS is attempted.
2. TCP connect: refused, timed out, or the name does not resolve.
3. The TLS handshake. A verification error (``ssl.SSLCertVerificationError``)
   is about the server's certificate: not trusted (X509 codes 2, 18-21), expired
   (10), not yet valid (9), wrong name (62, 64). An alert from the server is
   about us: a refused client certificate, or no version or cipher in common.
   After a verification error a second handshake with verification off fetches
   the chain the server sent, only to show it; nothing is sent on that one.
4. One ``GET`` and the first bytes of the answer. With TLS 1.3 the server checks
   the client certificate after the client has finished its handshake, so a
   refusal (``certificate required``, ``unknown ca``, ``bad certificate``, or a
   plain reset) only surfaces at this first read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import _dates, _purpose, _x509
from .._config import SSLProfile, format_server, is_ip_literal, normalize_host, tls_origin
from .._crl import _issued
from .._errors import (
    CertificateRevokedError,
    RevocationError,
    RevocationUnknownError,
    safe_text,
)
from .._idna import ascii_host
from .._refusals import issuing_path
from .._types import hex_serial
from ._common import UsageError, as_word, key_description, now, oid_name, purpose_problem

if TYPE_CHECKING:
    from .._revocation import RevocationChecker

# X509_V_ERR_* codes (OpenSSL's x509_vfy.h) and what they mean for the user.
_UNTRUSTED = {2, 18, 19, 20, 21}
_EXPIRED = 10
_NOT_YET_VALID = 9
_HOSTNAME = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_INVALID_PURPOSE = 26
# EE_KEY_TOO_SMALL, CA_KEY_TOO_SMALL, CA_MD_TOO_WEAK: under OpenSSL's security level.
_TOO_WEAK = {
    66: "the server's own key",
    67: "a CA key of its chain",
    68: "a signature in its chain",
}

# Alerts a server sends about the client's certificate.
_CERT_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown ca",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "TLSV1_ALERT_DECRYPT_ERROR": "decrypt error",
}
_VERSION_REASONS = {
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW",
    "VERSION_TOO_HIGH",
}
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: from ``https://host:port/path`` (port 443 when absent)."""

    url: str
    host: str
    port: int
    path: str

    @property
    def server(self) -> str:
        """``host:port`` as written in ``<servers>``."""
        return format_server((normalize_host(self.host), self.port))

    @property
    def name(self) -> str:
        """The name the certificate is checked against, sent as SNI and in ``Host:``:
        the host, without an IPv6 zone (``fe80::1%eth0`` dials the address on that
        link; the certificate names the address)."""
        return self.host.partition("%")[0] if ":" in self.host else self.host


# user:password@ in a URL, or in a message quoting its netloc.
_USERINFO = re.compile(r"(?<=[/' ])[^/\s'@]*@")


def parse_target(url: str) -> Target:
    """Parse the URL argument (``https://`` may be left out).

    Raises:
        UsageError: not https, or no host, or a bad port.
    """
    text = url if "://" in url else f"https://{url}"
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # an unclosed [, characters NFKC changes
        # Never user:password@, in the URL or in the reason (which may quote the netloc).
        reason = _USERINFO.sub("***@", str(exc))
        hint = ": write an IPv6 address as [::1]" if "IPv6" in reason else ""
        raise UsageError(f"{_USERINFO.sub('***@', text)}: {reason}{hint}") from None
    if "@" in parts.netloc:
        # user:password@ is never shown (nor sent: the probe asks without credentials)
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
        url = text = parts.geturl()
    if parts.scheme.lower() not in ("https", "wss"):
        raise UsageError(f"{url}: probe speaks TLS: use an https:// URL")
    try:
        origin = tls_origin(text)
    except ValueError as exc:
        reason = str(exc) if parts.hostname else "no host in the URL"
        raise UsageError(f"{url}: {reason}") from exc
    assert origin is not None  # https or wss
    host, port = origin
    zone_at = parts.netloc.rfind("%25")
    if ":" in host and "]" in parts.netloc and zone_at > parts.netloc.rfind("@"):
        # RFC 6874: a zone in a URL is written %25 (an escaped %); the socket takes
        # it as fe80::1%eth0. It was kept as "%25..." and verified as part of the name.
        address = parts.netloc[parts.netloc.index("[") + 1 : parts.netloc.index("]")]
        host = address.replace("%25", "%", 1)
    if port == 0:  # dialled as 443 before, the profile of another port shown
        raise UsageError(f"{url}: port 0 is no server's port: give the backend's")
    if not host.isascii():
        # Dialled and named as its A-label, the name its profile is keyed by and the
        # HTTP clients dial: a socket given the Unicode name encodes it with IDNA 2003,
        # another host for names with ß, ς or joiners (faß.test -> fass.test).
        host = ascii_host(host)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
        # Sent as given, shown without its values: a query often carries a token, and
        # the report goes to terminals, CI logs and --json files (as user:password@ does).
        masked = "&".join(
            f"{item.partition('=')[0]}=***" if "=" in item else "***"
            for item in parts.query.split("&")
        )
        text = parts._replace(query=masked).geturl()
    if parts.fragment:  # never sent; an OAuth implicit flow's #access_token=
        text = text.partition("#")[0]
    return Target(text, host, port, path)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a probe failed: a stable ``kind`` (see docs/cli.md) and a sentence."""

    kind: str
    message: str
    alert: str | None = None  # the TLS alert the server sent, when it sent one
    verify_code: int | None = None  # OpenSSL's X509_V_ERR_* of a refused server chain


@dataclass(slots=True)
class Setup:
    """What the probe connects with, and how it was chosen."""

    context: ssl.SSLContext | None
    matched: str | None  # "profile", "catch-all", "default", "options", "system"
    source: str | None = None  # the profile file or deployment.toml
    profile: SSLProfile | None = None
    keystore: str | None = None
    truststore: str | None = None
    client_subject: str | None = None
    client_not_after: str | None = None
    # The certificate we present and its alias, when known: the advice names its
    # issuer, its dates and how to export it.
    client_certificate: x509.Certificate | None = None
    client_alias: str | None = None
    # How many certificates the key entry's chain holds (the leaf included), when known.
    client_chain: int | None = None
    # Why OpenSSL's verifier refuses our certificate's validity times, when it does
    # (mtls._dates.unverifiable_dates): whatever it trusts, such a server refuses it;
    # and whether Java cannot parse them either (every server refuses it then).
    client_dates: str | None = None
    client_dates_everywhere: bool = False
    hostname_verifier: str = "Strict"
    verify: bool = True
    # A context with verification off (and our identity where we have it): only to
    # fetch the chain the server sends, after a verification error.
    insecure: Callable[[], ssl.SSLContext] | None = None
    failure: Failure | None = None
    # The profile set's online revocation check (enforced on the handshake), if any.
    revocation: RevocationChecker | None = None
    # The truststore's anchors as DER, every one (a pinned leaf too): what the revocation
    # report stops at. None: only what the context lists (the system's trust).
    anchors: tuple[bytes, ...] | None = None
    # The issuer names (DER) of the certificates of the chain we present: what a Java
    # client matches against the server's list of CAs (java_sends_none).
    client_issuers: tuple[bytes, ...] = ()
    # The keystore's other key entries: (alias, subject, issuer names), which a Java
    # client's key manager may choose instead of ours.
    other_entries: tuple[tuple[str, str | None, tuple[bytes, ...]], ...] = ()
    # The same identity and trust offering only ALPN "h2": to ask a server that closes
    # an HTTP/1.1 connection unanswered whether it speaks only HTTP/2 (gRPC does).
    h2: Callable[[], ssl.SSLContext | None] | None = None


@dataclass(slots=True)
class Report:
    """Everything a probe found (the JSON of ``mtls probe --json``)."""

    target: Target
    setup: Setup
    address: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)
    chain_verified: bool | None = None
    chain_from_unverified_handshake: bool = False
    accepted: bool | None = None
    #: We wrote an empty Certificate message (we may have had a certificate to send).
    sent_empty_certificate: bool = False
    #: The issuers (distinguished names, DER) the server's CertificateRequest lists as
    #: the ones it takes: ``[]`` none (any), ``None`` no request seen, or unreadable.
    ca_names: list[bytes] | None = None
    # How many certificates the server's Certificate message held, and its largest
    # handshake message (type, body size): what Java's limits apply to.
    server_certificates: int | None = None
    largest_message: tuple[int, int] | None = None
    #: Whether the server sent a CertificateRequest (``None``: unknown, the handshake
    #: failed before the server's first flight ended, or this Python cannot tell).
    certificate_requested: bool | None = None
    #: The server's first flight was seen to its end (ServerHelloDone, or its Finished
    #: in TLS 1.3): only then is "no CertificateRequest" known, not merely not seen.
    server_flight_ended: bool = False
    http_status: str | None = None
    body: bytes = b""
    failure: Failure | None = None
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    revocation: list[dict[str, Any]] = field(default_factory=list)
    revocation_note: str | None = None

    @property
    def sent_certificate(self) -> bool:
        """Whether our certificate went to the server: we have one, and the server
        asked for it (or this Python cannot tell whether it did)."""
        return bool(self.setup.client_subject) and self.certificate_requested is not False

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form."""
        setup = self.setup
        profile = setup.profile
        return {
            "url": self.target.url,
            "host": self.target.host,
            "port": self.target.port,
            "ok": self.failure is None,
            "matched": setup.matched,
            "profile": (
                {"servers": list(profile.server_names), "client_id": profile.client_name}
                if profile is not None
                else None
            ),
            "source": setup.source,
            "keystore": setup.keystore,
            "truststore": setup.truststore,
            "hostname_verifier": setup.hostname_verifier,
            "client_certificate": (
                {"subject": setup.client_subject, "not_after": setup.client_not_after}
                if setup.client_subject
                else None
            ),
            "address": self.address,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "server_chain": self.chain,
            "chain_verified": self.chain_verified,
            "chain_from_unverified_handshake": self.chain_from_unverified_handshake,
            # Nothing to accept when no certificate was sent: null, not "accepted".
            "server_accepted_client_certificate": (
                self.accepted if self.sent_certificate else None
            ),
            # Not seen is not "asked for nothing" before the server's flight ended (a
            # timeout, a plain-HTTP port, an alert: false said "no mutual TLS", h285).
            "client_certificate_requested": (
                self.certificate_requested
                if self.certificate_requested or self.server_flight_ended
                else None
            ),
            "server_ca_names": (
                None if self.ca_names is None else [name_text(n) for n in self.ca_names]
            ),
            "http_status": self.http_status,
            "error": (
                {
                    "kind": self.failure.kind,
                    "alert": self.failure.alert,
                    "message": safe_text(self.failure.message),  # as stderr shows it
                }
                if self.failure
                else None
            ),
            "notes": self.notes,
            "revocation": {
                "enforced": self.setup.revocation is not None,
                "mode": (
                    self.setup.revocation.policy.mode if self.setup.revocation is not None else None
                ),
                "certificates": self.revocation,
                "note": self.revocation_note,
            },
        }


def name_text(der: bytes) -> str:
    """A distinguished name (DER) as RFC 4514 text, or its hex where it cannot be read."""
    try:
        return _x509.name_der_text(der)
    except ValueError:
        return der.hex()


def issuers_of(chain: Sequence[bytes]) -> tuple[bytes, ...]:
    """The issuer names (DER) of a chain's certificates, those cryptography reads."""
    found = []
    for der in chain:
        with contextlib.suppress(ValueError):
            found.append(_x509.load_cert(der).issuer.public_bytes())
    return tuple(found)


def entries_issuers(
    chains: dict[str, tuple[bytes, ...]],
) -> tuple[tuple[str, str | None, tuple[bytes, ...]], ...]:
    """``(alias, subject, issuer names)`` of each key entry's chain."""
    found = []
    for alias, chain in chains.items():
        subject = None
        with contextlib.suppress(ValueError):
            subject = _x509.subject_text(_x509.load_cert(chain[0]))
        found.append((alias, subject, issuers_of(chain)))
    return tuple(found)


def java_sends_none(report: Report) -> None:
    """Say that a Java client would not send our certificate: the server lists the CAs
    it takes, and no certificate of our chain is issued by one of them. Java's key
    managers (SunX509, the JDK's default, which WSO2's gateway uses, and PKIX) choose
    a client certificate only among the keystore's chains with a certificate issued
    by a listed CA, and send none (or another entry's) otherwise; OpenSSL sends ours
    whatever the list says, so the probe passed a backend the gateway is refused by
    (h245). A failure when the probe reads WSO2's files (the gateway's), a note
    otherwise (a Python client of the set is accepted: h248)."""
    setup, listed = report.setup, report.ca_names
    if not listed or not setup.client_issuers or not report.sent_certificate:
        return
    wanted = {_canonical(der) for der in listed}
    if any(_canonical(der) in wanted for der in setup.client_issuers):
        return
    ours = "; ".join(dict.fromkeys(name_text(der) for der in setup.client_issuers))
    theirs = "; ".join(name_text(der) for der in listed[:5]) + (
        f" (and {len(listed) - 5} more)" if len(listed) > 5 else ""
    )
    instead = next(
        (
            (alias, subject)
            for alias, subject, issuers in setup.other_entries
            if any(_canonical(der) in wanted for der in issuers)
        ),
        None,
    )
    sends = (
        f"the key entry {instead[0]!r} ({instead[1]}) instead of ours"
        if instead is not None
        else "NO certificate"
    )
    said = (
        f"a Java client (the WSO2 gateway) would send {sends} here: the server asks for "
        f"certificates issued by {theirs}, and ours ({setup.client_subject}) is issued by "
        f"{ours} (Java sends only a chain with a certificate issued by a listed CA; "
        "OpenSSL, and a profile set, send ours anyway): the backend should list that CA "
        "among the ones it asks for (openssl s_server -CAfile, nginx "
        "ssl_client_certificate, a Java server's truststore), or the keystore hold our "
        "chain up to a CA it lists"
    )
    if setup_is_gateways(report) and report.failure is None:
        report.failure = Failure("java_sends_no_certificate", said)
    else:
        report.notes.append(said)


#: Java's defaults for what a server may send (jdk.tls.maxCertificateChainLength,
#: jdk.tls.maxHandshakeMessageSize: JDK 17 and 25), where OpenSSL takes more.
JAVA_MAX_CHAIN: Final = 10
JAVA_MAX_MESSAGE: Final = 32_768
_MESSAGE_NAMES: Final = {11: "Certificate", 13: "CertificateRequest"}

#: Critical extensions OpenSSL processes and Java's certificate path validation does
#: not ("unrecognized critical extension(s)", h258): CRL distribution points, proxy
#: certificate information, RFC 3779 address and AS blocks.
_JAVA_UNKNOWN_CRITICAL: Final = {
    "2.5.29.31": "CRL distribution points",
    "1.3.6.1.5.5.7.1.14": "proxy certificate information",
    "1.3.6.1.5.5.7.1.7": "IP address blocks",
    "1.3.6.1.5.5.7.1.8": "AS identifiers",
}
#: Processed for the leaf only (Java's EndEntityChecker): critical on a CA, refused.
_JAVA_LEAF_ONLY_CRITICAL: Final = {"2.16.840.1.113730.1.1": "Netscape certificate type"}
_CERTIFICATE_POLICIES = "2.5.29.32"
_ANY_POLICY = "2.5.29.32.0"


def java_refuses_server(
    report: Report, served: Sequence[bytes], java12: Callable[[], str | None] = lambda: None
) -> None:
    """Say that a Java client would refuse the server OpenSSL took (``served``: the
    certificates it sent, leaf first): a key usage that does not allow what the
    negotiated key exchange does with the key (:func:`mtls._purpose.java_client_refuses`,
    h254), more certificates or a larger handshake message than Java takes, a critical
    extension Java does not process, or an intermediate's critical policies with
    qualifiers (h258). The probe said "works" for backends the gateway is refused by.
    A failure when the probe reads WSO2's files, a note otherwise, as
    :func:`java_sends_none`. ``java12``: the key exchange a TLS 1.2 server picks from
    JDK 17's offer (``"rsa"``, ``"signed"``, ``None``), asked only when it matters."""
    found = _java_refusals(report, served, java12)
    if not found:
        return
    # A certain refusal fails the probe, whichever comes first (h262: a hedged one
    # ahead of it made it a note).
    found.sort(key=lambda item: not item[2])
    problem, fix, certain = found[0]
    said = (
        f"a Java client (the WSO2 gateway) refuses this server over {report.tls_version} "
        f"({report.cipher}): {problem}; OpenSSL, and a profile set, take it: {fix}"
    )
    if setup_is_gateways(report) and report.failure is None and certain:
        report.failure = Failure("java_refuses_server", said)
    else:
        report.notes.append(said)


def _java_refusals(
    report: Report, served: Sequence[bytes], java12: Callable[[], str | None]
) -> list[tuple[str, str, bool]]:
    """``(problem, fix, certain)`` for each rule of Java's the server breaks, most
    telling first; ``certain`` False where Java's own negotiation may avoid it."""
    found: list[tuple[str, str, bool]] = []
    path = _java_path(served, report.setup.anchors or ())
    leaf: tuple[bytes, x509.Certificate] | None = None
    with contextlib.suppress(ValueError, IndexError):
        leaf = served[0], _x509.load_cert(served[0])
    problem = (
        None
        if leaf is None
        else _purpose.java_client_refuses(leaf[0], report.tls_version, report.cipher)
    )
    # Over TLS 1.2 a JDK 17 client offers RSA key transport too (last; JDK 25 not at
    # all), which keyEncipherment allows and digitalSignature alone does not: what the
    # server picks from JDK 17's offer decides (h260, h261, h262). Python's own offer
    # has no such suite: asked when either exchange would be refused.
    tls12 = report.tls_version != "TLSv1.3"
    on_transport = (
        None
        if leaf is None or not tls12 or not _rsa_key(leaf[1])
        else _purpose.java_client_refuses(leaf[0], "TLSv1.2", "AES256-GCM-SHA384")
    )
    exchange = java12() if tls12 and (problem is not None or on_transport) else None
    if exchange == "rsa" and leaf is not None:
        problem = (
            on_transport
            and f"{on_transport} (this server picks RSA key transport from JDK 17's offer)"
        )
        if problem is None and _purpose.java_client_refuses(leaf[0], "TLSv1.3", report.cipher):
            report.notes.append(
                f"its certificate ({_x509.subject_text(leaf[1])}) has no digitalSignature "
                "in its key usage: JDK 17 takes it only because this server picks RSA key "
                "transport from JDK 17's offer, which JDK 25 does not make (\"KeyUsage does "
                'not allow digital signatures"): have it reissued with digitalSignature '
                "before the gateway moves to JDK 25"
            )
    if leaf is not None and problem is not None:
        undecided = tls12 and exchange is None
        found.append(
            (
                f"its certificate ({_x509.subject_text(leaf[1])}): {problem}"
                + (
                    " (unless the server picks RSA key transport, which JDK 17 offers last "
                    "and JDK 25 not at all)"
                    if undecided
                    else ""
                ),
                "the backend's certificate must be reissued with digitalSignature in its "
                "key usage (beside keyEncipherment: keytool -ext "
                "KeyUsage=digitalSignature,keyEncipherment; openssl x509 -extfile with "
                "keyUsage = digitalSignature, keyEncipherment)",
                not undecided,
            )
        )
    count = report.server_certificates
    if count is not None and count > JAVA_MAX_CHAIN:
        found.append(
            (
                f"it sent {count} certificates, and Java clients take at most "
                f'{JAVA_MAX_CHAIN} ("The certificate chain length ({count}) exceeds the '
                f'maximum allowed length ({JAVA_MAX_CHAIN})", jdk.tls.maxCertificateChainLength)',
                "the backend should send its certificate and the intermediates up to the "
                "CA the gateway trusts, not a bundle of CAs",
                True,
            )
        )
    if report.largest_message is not None and report.largest_message[1] > JAVA_MAX_MESSAGE:
        kind, size = report.largest_message
        name = _MESSAGE_NAMES.get(kind, f"type {kind}")
        found.append(
            (
                f"its {name} message is {size:,} bytes, and Java clients take at most "
                f'{JAVA_MAX_MESSAGE:,} ("The size of the handshake message ({size}) exceeds '
                f'the maximum allowed size ({JAVA_MAX_MESSAGE})", '
                "jdk.tls.maxHandshakeMessageSize)",
                "the backend should list fewer CAs in its request for client certificates "
                "(the gateway's own CA is enough)"
                if kind == 13
                else "the backend should send a shorter chain, or a certificate with fewer names",
                True,
            )
        )
    # Java processes policies from the anchor down: a CA without certificate policies
    # empties the policy tree, and the policies below it are not read (h262: a CA's
    # critical qualifiers under such a CA were held against a chain Java takes).
    policies = [_has_policies(cert) for _, _, cert in path]
    for position, (index, _, cert) in enumerate(path):
        which = "its certificate" if index == 0 else f"CA certificate [{index}] of its chain"
        try:
            extensions = list(cert.extensions)
        except ValueError:  # OpenSSL took what cryptography cannot read: not judged here
            continue
        for ext in extensions:
            oid = ext.oid.dotted_string
            unknown = _JAVA_UNKNOWN_CRITICAL.get(oid) or (
                _JAVA_LEAF_ONLY_CRITICAL.get(oid) if index > 0 else None
            )
            if ext.critical and unknown is not None:
                found.append(
                    (
                        f"{which} ({_x509.subject_text(cert)}) marks its {unknown} "
                        "extension critical, which Java's certificate path validation does "
                        'not process ("unrecognized critical extension(s)")',
                        "the certificate must be reissued with that extension not critical",
                        True,
                    )
                )
            elif (
                index > 0
                and all(policies[position + 1 :])
                and ext.critical
                and oid == _CERTIFICATE_POLICIES
                and isinstance(ext.value, x509.CertificatePolicies)
                # Java refuses qualifiers of a specific policy; anyPolicy's it takes (h261)
                and any(
                    policy.policy_qualifiers
                    and policy.policy_identifier.dotted_string != _ANY_POLICY
                    for policy in ext.value
                )
            ):
                found.append(
                    (
                        f"{which} ({_x509.subject_text(cert)}) has critical certificate "
                        'policies with qualifiers, which Java refuses ("critical policy '
                        'qualifiers present in certificate")',
                        "the CA certificate must be reissued with its policies not critical, "
                        "or without qualifiers",
                        True,
                    )
                )
    return found


def _java_path(
    served: Sequence[bytes], anchors: Sequence[bytes]
) -> list[tuple[int, bytes, x509.Certificate]]:
    """The certificates Java validates of those the server sent, with their place in
    it: the leaf, then each one's issuer among them followed by signature, not by name
    (:func:`mtls._refusals.issuing_path`: a namesake with another key is not the issuer,
    h261), up to (not including) one the truststore holds or a self-signed one, where
    Java's path ends (h260: an intermediate the truststore holds, and an unrelated CA
    sent along, were judged as if validated). A pinned leaf (in the truststore) is
    trusted as it is: no path. Trusted as Java's PKIXValidator trusts a certificate of
    the chain: the same bytes, or the same subject and public key (a copy issued again,
    a cross-signed root; compared as encoded, :func:`mtls._x509.raw_names`)."""
    named = {names[1:] for der in anchors if (names := _x509.raw_names(der)) is not None}

    def trusted(der: bytes) -> bool:
        names = _x509.raw_names(der)
        return der in anchors or (names is not None and names[1:] in named)

    try:
        linked = issuing_path(served) if served else []
    except ValueError:  # a certificate cryptography cannot read: not judged here
        return []
    path: list[tuple[int, bytes, x509.Certificate]] = []
    for der, cert in linked:
        if trusted(der) or _issued(der, der):  # the anchor (a key rollover's link is not)
            break
        path.append((served.index(der), der, cert))
    return path


def _has_policies(cert: x509.Certificate) -> bool:
    """Whether the certificate has a certificate policies extension (``True`` where its
    extensions cannot be read: judged as Java would have them)."""
    try:
        return any(ext.oid.dotted_string == _CERTIFICATE_POLICIES for ext in cert.extensions)
    except ValueError:
        return True


def _rsa_key(cert: x509.Certificate) -> bool:
    """Whether the certificate's key is RSA (the one key RSA key transport uses)."""
    try:
        return isinstance(_x509.public_key(cert), rsa.RSAPublicKey)
    except (ValueError, UnsupportedAlgorithm):
        return False


def setup_is_gateways(report: Report) -> bool:
    """Whether the probe read the gateway's own files (a profile, the catch-all or
    deployment.toml's default): what Java does there is what the gateway does."""
    return report.setup.matched in ("profile", "catch-all", "default")


def _canonical(der: bytes) -> object:
    """A name as Java compares them (canonical form), or its DER where unreadable."""
    try:
        return _x509.name_der_key(der)
    except ValueError:
        return der


def _reason(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "reason", "") or "")


def _alert_text(exc: ssl.SSLError) -> str:
    """The alert's name as RFC 8446 words it ("decode error"), else OpenSSL's reason."""
    reason = _reason(exc)
    alert = _ALERT_REASON.fullmatch(reason)
    text = alert.group(1) if alert else reason
    return _CERT_ALERTS.get(reason) or text.lower().replace("_", " ") or str(exc)


#: OpenSSL's reason for an alert the peer sent: SSLV3_ALERT_*, TLSV1_ALERT_*, ...
_ALERT_REASON = re.compile(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z0-9_]+)")


_VERSION_NAMES = {
    ssl.TLSVersion.TLSv1: "1.0",
    ssl.TLSVersion.TLSv1_1: "1.1",
    ssl.TLSVersion.TLSv1_2: "1.2",
    ssl.TLSVersion.TLSv1_3: "1.3",
}


def _versions_offered(context: ssl.SSLContext | None) -> str:
    """What the probe's context offers, for a server that took none of it: a context
    held to TLS 1.2 for a key TLS 1.3 cannot sign with said "we offer TLS 1.2 and 1.3"."""
    low, high = "1.2", "1.3"
    if context is not None:
        low = _VERSION_NAMES.get(context.minimum_version, low)
        high = _VERSION_NAMES.get(context.maximum_version, high)
    if low == high:
        offered = f"we offer TLS {low} only"
    elif (low, high) == ("1.2", "1.3"):
        offered = "we offer TLS 1.2 and 1.3"
    else:
        offered = f"we offer TLS {low} to {high}"
    if high == "1.2":
        return (
            f"{offered}, as a context is held for a key TLS 1.3 cannot sign with (DSA, or "
            "EC on a curve other than P-256, P-384 and P-521; mtls logged it when it built "
            "the context): a backend that takes TLS 1.3 only needs an RSA or EC P-256 key"
        )
    return f"{offered}; TLS 1.0 and 1.1 are deprecated (RFC 8996)"


def _ciphers_offered(context: ssl.SSLContext | None, where: str) -> str:
    """What the probe's context offers for TLS 1.2, and the command that offers the
    same to the server, for a server that took none of it. openssl s_client alone
    offers OpenSSL's defaults, RSA key exchange among them, and connected where the
    probe could not (h285): the advice showed a working connection."""
    suites = [
        c["name"]
        for c in (context.get_ciphers() if context is not None else [])
        if c.get("protocol") != "TLSv1.3"
    ]
    if not suites:
        return f"compare its TLS settings with ours: openssl s_client -connect {as_word(where)}"
    forward = all(c.startswith(("ECDHE-", "DHE-")) for c in suites)
    offered = (
        "for TLS 1.2 we offer Python's default cipher suites, all with ECDHE or DHE key "
        "exchange; one common cause: a server that takes only RSA key exchange (TLS_RSA_* "
        "suites, such as AES128-GCM-SHA256) refuses them, where Java 17's client (the "
        "WSO2 gateway's) still offers those (JDK 24 and later do not): enable an ECDHE "
        "suite on the backend. "
        if forward
        else f"for TLS 1.2 we offer {len(suites)} cipher suites. "
    )
    # Without -tls1_2: a server of TLS 1.3 only is asked as the probe asked it (h287).
    return (
        f"{offered}What the server says to our offer: openssl s_client -connect "
        f"{as_word(where)} -cipher {as_word(':'.join(suites))}"
    )


def refused(setup: Setup, exc: ssl.SSLError) -> Failure:
    """A refusal of our client certificate, with the advice its alert calls for."""
    reason = _reason(exc)
    alert = _alert_text(exc)
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED" or setup.client_subject is None:
        where = (
            "the profile has no <KeyStore>"
            if setup.matched in ("profile", "catch-all")
            else "pass --keystore"
            if setup.matched in ("options", "system")
            else "the default has no keystore"
        )
        return Failure(
            "client_cert_refused",
            f"the server requires a client certificate and we sent none ({alert}): {where}",
            alert=alert,
        )
    ours = f"our client certificate {setup.client_subject}"
    if setup.keystore:
        ours += f" from {setup.keystore}"
    advice = (
        _out_of_date(setup, alert)
        or _unverifiable_dates(setup, reason)
        or _wrong_purpose(setup, reason, alert)
        or _CLIENT_ADVICE.get(reason, _advice_trust)(setup)
    )
    return Failure(
        "client_cert_refused", f"the server refused {ours} ({alert}): {advice}", alert=alert
    )


_KEY_KINDS = {
    x509.oid.PublicKeyAlgorithmOID.RSASSA_PSS: "RSASSA-PSS",
    x509.oid.PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5: "RSA",
    x509.oid.PublicKeyAlgorithmOID.EC_PUBLIC_KEY: "EC",
    x509.oid.PublicKeyAlgorithmOID.ED25519: "Ed25519",
    x509.oid.PublicKeyAlgorithmOID.ED448: "Ed448",
    x509.oid.PublicKeyAlgorithmOID.DSA: "DSA",
}


def sent_none(report: Report) -> None:
    """Reword a refusal when we had a client certificate and sent an empty list: none
    of the signature algorithms the server accepts for client certificates fits our
    key, and OpenSSL then sends no certificate (a Go server and an RSASSA-PSS key).
    The server's own words ("certificate required") blamed a missing keystore."""
    setup, failure = report.setup, report.failure
    if failure is None or not report.sent_empty_certificate or not setup.client_subject:
        return
    if failure.kind not in ("client_cert_refused", "connection_closed", "handshake_failure"):
        return
    cert = setup.client_certificate
    kind = _KEY_KINDS.get(cert.public_key_algorithm_oid) if cert is not None else None
    said = f" ({failure.alert})" if failure.alert else ""
    if kind == "RSASSA-PSS":
        advice = (
            "issue the identity again with an RSA (PKCS#1) or EC key: some servers, Go's "
            "crypto/tls among them, accept no RSASSA-PSS client key"
        )
    else:
        advice = (
            "compare the signature algorithms the server asks for ('Requested Signature "
            "Algorithms' in openssl s_client -connect HOST:PORT) with the key's type and "
            "size"
        )
    store = f" from {setup.keystore}" if setup.keystore else ""
    report.failure = Failure(
        "client_cert_refused",
        f"we have a client certificate ({setup.client_subject}{store}) but sent none"
        f"{said}: no signature algorithm the server accepts for client certificates fits "
        f"its {kind or 'key type'}{' key' if kind else ''}, so OpenSSL sent an empty "
        f"certificate list: {advice}",
        alert=failure.alert,
    )
    report.accepted = False


def _out_of_date(setup: Setup, alert: str) -> str | None:
    """The advice for a client certificate out of its dates by this machine's clock,
    whatever the alert: not every server says so (Go sends "bad certificate" for an
    expired one, gnutls-serv "access denied"), and trust is not what to fix then."""
    cert = setup.client_certificate
    expires = _when(setup.client_not_after)
    if expires is not None and expires <= now():
        said = (
            ""
            if alert == "certificate expired"
            else " (the server closed the connection without saying why)"
            if not alert
            else f" (the server said only '{alert}')"
        )
        return _advice_expired(setup) + said
    starts = _dates.not_before(cert) if cert is not None else None
    if starts is not None and starts > now():
        return _advice_trust(setup)  # its first answer: not valid until ..., check the clocks
    return None


def _unverifiable_dates(setup: Setup, reason: str) -> str | None:
    """The advice for a client certificate whose validity times OpenSSL's verifier
    refuses, whatever the alert: an OpenSSL-based server refuses it whatever it
    trusts ("format error in certificate's notAfter field", alert "bad certificate"),
    and importing a CA would change nothing (h202: the probe said to). Where Java
    reads those times (a fraction, 30 February), a server that is not OpenSSL-based
    may have refused it for what the alert says: that advice too (h204)."""
    if setup.client_dates is None:
        return None
    advice = (
        f"{setup.client_dates}: an OpenSSL-based server refuses it whatever it trusts (its "
        "log says 'format error in certificate's ... field'): have it reissued with "
        f"validity times in DER's form and replace the key entry in {_store_of(setup)}"
    )
    if setup.client_dates_everywhere:
        return advice
    other = _CLIENT_ADVICE.get(reason, _advice_trust)(setup)
    return f"{advice}; or, for a server that reads such times (Java's), {other}"


#: Alerts that say what is wrong with our certificate, not its purpose: their advice
#: stands (an untrusted issuer, a revoked or badly signed certificate).
_NOT_PURPOSE = frozenset(
    {"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_DECRYPT_ERROR"}
)


def _wrong_purpose(setup: Setup, reason: str, alert: str) -> str | None:
    """The advice for a client certificate not for client authentication, first: its
    extended key usage lacks clientAuth (OpenSSL says "unsupported certificate", Go
    "bad certificate", Java "certificate unknown"), where importing its issuer into
    the backend's truststore would change nothing; then, for an alert other than
    OpenSSL's, that alert's own reading (GnuTLS does not check the purpose, and says
    the same of a certificate it does not trust). A key usage without a signature bit
    only for OpenSSL's and Java's alerts (Go does not check it). ``None``: nothing
    wrong with the purpose, or an alert that is not about it."""
    cert = setup.client_certificate
    found = None if cert is None or reason in _NOT_PURPOSE else purpose_problem(cert)
    if found is None:
        return None
    problem, who = found
    purpose_alert = reason == "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"  # OpenSSL's own word
    if who != "servers" and not (
        purpose_alert or (reason == "SSLV3_ALERT_CERTIFICATE_UNKNOWN" and "Java" in who)
    ):
        # Only some servers check these (a key usage: OpenSSL, which says "unsupported
        # certificate", and Java, "certificate unknown"): any other alert is not them.
        return None
    checked = "OpenSSL-, Java- and Go-based ones" if who == "servers" else who
    advice = (
        f"{problem}, which servers check ({checked}): reissue it for TLS client "
        f"authentication and replace it in {_store_of(setup)}"
    )
    if purpose_alert:
        return advice
    # Go says "bad certificate", Java "certificate unknown" for it; but GnuTLS-based
    # servers do not check it, and say the same of a certificate they do not trust
    # (for them, trust: not Java's or Go's rules on keys).
    advise = _CLIENT_ADVICE.get(reason, _advice_trust)
    otherwise = (_advice_trust if advise is _advice_unverified else advise)(setup)
    return (
        f"{advice} (the server said only '{alert}'); if the backend does not check the "
        f"purpose (GnuTLS-based servers do not): {otherwise}"
    )


def _when(iso: str | None) -> _dt.datetime | None:
    return _dt.datetime.fromisoformat(iso) if iso else None


def _ago(when: _dt.datetime) -> str:
    days = (now() - when).days
    if days <= 0:
        return f"today at {when:%H:%M} UTC"
    return f"on {when.date()}, {days} day{'' if days == 1 else 's'} ago"


def _store_of(setup: Setup) -> str:
    return setup.keystore or "the keystore"


def refused_after_handshake(setup: Setup) -> str | None:
    """What a server that took our certificate in the handshake and closed after it,
    without an alert, may have refused: a key usage without digitalSignature, which an
    mtls server refuses so (mtls/_admission.py) and Java's servers with an alert. Said
    as a possibility: a server refusing for another reason (an allow-list) closes the
    same way (h266, h267). ``None`` when our certificate's key usage allows signing."""
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    from .. import _purpose  # noqa: PLC0415 - with the serializers: not for --help

    cert = setup.client_certificate
    if cert is None or not _purpose.cannot_sign(cert.public_bytes(Encoding.DER)):
        return None
    return (
        "our certificate's key usage has no digitalSignature, which an mtls server "
        "refuses after the handshake, closing this way (its log says 'refused a client "
        "certificate'; Java sends the alert 'certificate unknown'): if the backend is "
        "one, reissue the certificate with digitalSignature for TLS client "
        f"authentication and replace it in {_store_of(setup)}"
    )


def _advice_expired(setup: Setup) -> str:
    expires = _when(setup.client_not_after)
    if expires is not None and expires <= now():
        return (
            f"it expired {_ago(expires)}: renew it (its CA issues a new one; mtls genkey makes "
            f"a self-signed one) and replace the key entry in {_store_of(setup)}"
        )
    valid = f"by this machine's clock it is valid until {expires.date()}" if expires else ""
    return (
        f"{valid or 'its dates look valid here'}: a CA certificate in its chain may have "
        "expired, or the server's clock is wrong"
    )


def _advice_trust(setup: Setup) -> str:
    cert = setup.client_certificate
    starts = _dates.not_before(cert) if cert is not None else None
    if starts is not None and starts > now():
        return (
            f"it is not valid until {starts:%Y-%m-%d %H:%M} UTC: check the clocks, or reissue "
            f"it with a start date in the past and replace it in {_store_of(setup)}"
        )
    if cert is None:
        return (
            "the backend does not trust it: add it, or the CA that issued it, to the "
            "backend's truststore"
        )
    alias = f" --alias {as_word(setup.client_alias)}" if setup.client_alias else ""
    export = f"mtls export --keystore {as_word(_store_of(setup))}{alias} --rfc --file client.pem"
    trusted_as = setup.client_alias or "client"
    imported = (
        f"mtls import --file client.pem --alias {as_word(trusted_as)} --keystore "
        "BACKEND-TRUSTSTORE on the backend's truststore"
    )
    if cert.issuer == cert.subject:
        return (
            "the backend does not trust it: it is self-signed, so import the certificate "
            f"itself into the backend's truststore ({export}, then {imported})"
        )
    issuer = cert.issuer.rfc4514_string()
    advice = (
        f"the backend does not trust its issuer {issuer}: import that CA's "
        "certificate into the backend's truststore (or this certificate itself: "
        f"{export}, then {imported})"
    )
    if setup.client_chain == 1:
        # The key entry holds the leaf alone: a backend that trusts only the root cannot
        # build the path through an intermediate we do not send.
        advice += (
            f"; if {issuer} is an intermediate CA, the fault is ours: {_store_of(setup)} "
            "sends the certificate without it, so add it to the key entry's chain (import "
            "the CA reply with the whole chain, leaf first, as keytool -importcert does)"
        )
    return advice


def _advice_unverified(setup: Setup) -> str:
    """Java's ``certificate unknown`` and Go's ``bad certificate`` say only that the
    server could not verify our chain: an issuer it does not trust, or its own rules
    on keys and signatures, which no import changes (a Java backend with
    ``jdk.certpath.disabledAlgorithms`` refusing an RSA key under 3072 bits was told
    to import the CA it already trusted, h197; Go refuses SHA-1 signatures)."""
    cert = setup.client_certificate
    if cert is None:
        return _advice_trust(setup)
    signature = oid_name(cert.signature_algorithm_oid)
    rules = "Java's jdk.certpath.disabledAlgorithms, an OpenSSL security level"
    if "sha1" in signature.lower():
        rules += ", Go's refusal of SHA-1"
    trusted = "it" if cert.issuer == cert.subject else "that CA"
    return (
        f"the backend could not verify it (this alert does not say why): either "
        f"{_advice_trust(setup)}; or the backend trusts {trusted} and its own rules "
        f"({rules}) refuse our {key_description(cert)} key or {signature} signature, "
        "or one in the chain: its log says which"
    )


def _advice_revoked(setup: Setup) -> str:
    cert = setup.client_certificate
    issuer = f" ({cert.issuer.rfc4514_string()})" if cert is not None else ""
    serial = f", serial {hex_serial(_x509.serial_number(cert))}" if cert is not None else ""
    return (
        f"its CA{issuer} has revoked it{serial}: have a new certificate issued and replace "
        f"the key entry in {_store_of(setup)}"
    )


def _advice_unsupported(setup: Setup) -> str:
    # Not for client authentication: _wrong_purpose said so before this is asked.
    return (
        "the server cannot use this kind of certificate (its key type, or a critical "
        "extension it does not know): reissue it as the backend expects"
    )


def _advice_denied(setup: Setup) -> str:
    # Not proof that it was verified: GnuTLS answers every failed verification so, a
    # certificate its CRL revokes included (h245: the advice was to import the CA the
    # backend already trusted).
    return (
        "either the backend could not verify it (GnuTLS-based servers say 'access denied' "
        f"for any failed verification: {_advice_trust(setup)}; or {_advice_revoked(setup)}, "
        "if the backend checks its CRL), or it verified it and its "
        "authorisation (an allow-list of subjects) denies this identity: ask its owners "
        f"to allow {setup.client_subject}"
    )


def _advice_signature(setup: Setup) -> str:
    return (
        "the server could not verify a signature: our certificate's own signature, or the key "
        f"in {_store_of(setup)} does not match the certificate"
    )


_CLIENT_ADVICE: dict[str, Callable[[Setup], str]] = {
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": _advice_expired,
    "SSLV3_ALERT_CERTIFICATE_REVOKED": _advice_revoked,
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": _advice_unsupported,
    "TLSV1_ALERT_ACCESS_DENIED": _advice_denied,
    "TLSV1_ALERT_DECRYPT_ERROR": _advice_signature,
    "SSLV3_ALERT_BAD_CERTIFICATE": _advice_unverified,  # Go's, for any failed verification
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": _advice_unverified,  # Java's, likewise
    # unknown ca (OpenSSL's: no path to a trusted anchor), and the rest: trust.
}


def classify_handshake(
    exc: BaseException, setup: Setup, target: Target, *, asked: bool | None = None
) -> Failure:
    """A failure kind and sentence for an exception from the handshake."""
    where = target.server
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        message = str(exc.verify_message or exc).rstrip(".")
        trust = setup.truststore or "the system's trust store"
        if code in _HOSTNAME:
            return Failure(
                "hostname_mismatch",
                f"hostname mismatch under {setup.hostname_verifier}: {message}",
            )
        if code in _UNTRUSTED:
            return Failure(
                "server_not_trusted",
                f"the server's certificate is not trusted by {trust} ({message}): "
                f"{_untrusted_fix(setup.truststore, where)}",
            )
        if code == _EXPIRED:
            return Failure(
                "server_cert_expired",
                f"the server's certificate has expired ({message}): the backend must renew it",
            )
        if code == _NOT_YET_VALID:
            return Failure(
                "server_cert_not_yet_valid",
                f"the server's certificate is not valid yet ({message}): check the clocks of "
                "both machines",
            )
        if code == _INVALID_PURPOSE:
            return Failure(
                "server_cert_invalid",
                f"the server's certificate is not for TLS servers ({message}): its extended "
                "key usage lacks serverAuth",
            )
        if code in _TOO_WEAK:
            # SHA-1 or an RSA 1024 key from a private CA: Java's defaults take both
            # (h245), so the gateway connects where this probe and a profile set do not.
            # Java 17's defaults (jdk.certpath.disabledAlgorithms) refuse MD5, RSA and
            # DSA keys under 1024 bits and EC under 224, and take SHA-1 from a private
            # CA and RSA 1024 (h248 checked each with a Java 17 client).
            what = (
                "signed with SHA-1, which Java's defaults take from a private CA, or MD5, "
                "which they refuse too"
                if code == 68
                else "an RSA or DSA key under 2048 bits (Java's defaults take 1024 and "
                "more), or an EC curve under 224 bits (which they refuse too)"
            )
            return Failure(
                "server_cert_invalid",
                f"the server's certificate failed: {message} ({_TOO_WEAK[code]}: {what}): "
                "OpenSSL's security level refuses it, in this probe and in a profile set's "
                "contexts alike: the backend should have it reissued ("
                + ("SHA-256" if code == 68 else "RSA 2048 or EC P-256")
                + "), or a context that must reach it meanwhile lower its level (ciphers="
                + ("'DEFAULT:@SECLEVEL=0': OpenSSL 3 refuses SHA-1 at level 1" if code == 68
                   else "'DEFAULT:@SECLEVEL=1' for RSA 1024")
                + ")",
                verify_code=code,
            )  # fmt: skip
        return Failure("server_cert_invalid", f"the server's certificate failed: {message}")
    if isinstance(exc, ssl.SSLError):
        reason = _reason(exc)
        if reason in _CERT_ALERTS and asked is False:
            # A certificate's alert before any CertificateRequest: it refused no
            # certificate of ours (it never saw one), whatever the alert says (h135).
            return Failure(
                "tls_error",
                f"{where} ended the handshake ({_alert_text(exc)} alert) before asking for "
                "any client certificate, so it refused none of ours: a certificate alert "
                "at that point is the backend's (or a proxy's in between) own failure; "
                "look at its logs",
                alert=_alert_text(exc),
            )
        if reason in _CERT_ALERTS:
            return refused(setup, exc)
        if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            # ``asked``: whether a CertificateRequest came before the alert (None:
            # this Python cannot tell). Without one, no certificate was refused.
            if asked is False:
                return Failure(
                    "handshake_failure",
                    "the server ended the handshake (handshake failure alert) before "
                    "asking for any certificate: no cipher, signature algorithm or group "
                    f"in common; {_ciphers_offered(setup.context, where)}",
                    alert=_alert_text(exc),
                )
            if setup.client_subject is None:
                return refused(setup, exc)
            return Failure(
                "handshake_failure",
                "the server ended the handshake (handshake failure alert): no cipher or "
                "signature algorithm in common, or it refused our certificate",
                alert=_alert_text(exc),
            )
        if reason in _VERSION_REASONS:
            return Failure(
                "protocol_version",
                f"no TLS version in common with {where} ({_alert_text(exc)}): "
                f"{_versions_offered(setup.context)}",
            )
        if reason in _NOT_TLS_REASONS or "record layer" in str(exc):
            return Failure(
                "not_tls",
                f"{where} did not answer in TLS ({_alert_text(exc)}): is it a plain HTTP port?",
            )
        if reason == "TLSV1_UNRECOGNIZED_NAME":
            sent = (
                "no server name (SNI is never sent for an IP address)"
                if is_ip_literal(target.host)
                else f"the name {target.host} (SNI)"
            )
            return Failure(
                "tls_error",
                f"{where} does not serve what we sent: {sent} ({_alert_text(exc)}): connect "
                "with a name it serves, or have the backend configured for this one",
            )
        if reason in {"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE"}:
            return Failure("handshake_failure", f"no cipher in common with {where}")
        if reason == "EXCESSIVE_MESSAGE_SIZE":
            # Our own limit, not the server's alert: OpenSSL takes a certificate chain
            # or a certificate request of up to 100 KiB (max_cert_list; h135).
            return Failure(
                "tls_error",
                f"{where} sent a handshake message larger than OpenSSL accepts (excessive "
                "message size): its certificate chain, or the list of client CAs it "
                "accepts, is over 100 KiB; have the backend send only its certificate and "
                "intermediates, and name fewer CAs",
            )
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return closed(setup, where, during=True, asked=asked)
        sent_alert = _ALERT_REASON.fullmatch(reason) is not None
        without = asked and setup.client_subject is None
        if without and reason == "TLSV1_ALERT_DECODE_ERROR":
            # It asked for a certificate, we sent none, and it ended the handshake:
            # gnutls-serv answers TLS 1.2's empty certificate list so.
            return refused(setup, exc)
        also = (
            " (after it asked for a client certificate, and we had none to send: if it "
            "requires one, that may be why)"
            if without and sent_alert
            else ""
        )
        return Failure(
            "tls_error",
            f"TLS handshake with {where} failed: {_alert_text(exc)}{also}",
            alert=_alert_text(exc) if sent_alert else None,
        )
    if isinstance(exc, TimeoutError):
        return Failure(
            "timeout",
            f"{where} accepted the connection but the TLS handshake timed out: a backend "
            "that hangs, or something there that waits for another protocol (a proxy, a "
            "plain-HTTP or non-HTTP service); check what listens on that port, or allow "
            "more time with --timeout",
        )
    if isinstance(exc, ConnectionError | EOFError):
        return closed(setup, where, during=True, asked=asked)
    return Failure("tls_error", f"TLS handshake with {where} failed: {exc}")


def closed(setup: Setup, where: str, *, during: bool, asked: bool | None = None) -> Failure:
    """The server closed the connection without an alert: during the handshake, or after
    it before answering. ``asked``: whether it sent a CertificateRequest (``None``:
    unknown); a server that asked for none refused none of ours."""
    if during and asked is False:
        return Failure(
            "connection_closed",
            f"{where} closed the connection during the handshake, before asking for any "
            "client certificate: it may want another server name (SNI), refuse our TLS "
            "settings, or not speak TLS",
        )
    sent = f"we sent {setup.client_subject}" if setup.client_subject else "we sent no certificate"
    # A certificate out of its dates is named first, whatever the server said (node
    # closes without an alert): renewing it is the fix, not the server name or trust.
    stale = _out_of_date(setup, "") if setup.client_subject and asked else None
    if stale is not None:
        return Failure(
            "client_cert_refused",
            f"{where} closed the connection {'during' if during else 'right after'} the "
            f"handshake ({sent}): {stale}",
        )
    if during:
        return Failure(
            "connection_closed",
            f"{where} closed the connection during the handshake ({sent}): it may require a "
            "client certificate, another server name, or not speak TLS",
        )
    return Failure(
        "client_cert_refused",
        f"{where} closed the connection right after the handshake without an alert or an "
        f"answer ({sent}): with TLS 1.3 that is how some servers refuse a client "
        "certificate (node's; OpenSSL, Java and GnuTLS send an alert saying why): its "
        "log says whether it refused it",
    )


def refuses_with_alert(exc: BaseException) -> bool:
    """Whether ``exc`` is a peer's alert refusing a client certificate (or the lack
    of one): ``certificate required``, ``bad certificate``, ``handshake failure``..."""
    if not isinstance(exc, ssl.SSLError):
        return False
    reason = _reason(exc)
    return reason in _CERT_ALERTS or reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def classify_answer(
    exc: BaseException, setup: Setup, target: Target, *, asked: bool | None = None
) -> tuple[Failure | None, bool | None]:
    """A failure for an exception while asking after the handshake, and whether the
    server accepted our certificate (``None``: the failure does not say).

    With TLS 1.3 the server checks the client certificate after the client has
    finished its handshake, so a refusal only surfaces at this first read. A close
    with no alert from a server that asked for no certificate (``asked`` False) is
    no refusal: ``(None, True)``, the same as an empty answer.
    """
    if isinstance(exc, ssl.SSLError):
        if refuses_with_alert(exc):
            return refused(setup, exc), False
        if not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return Failure("tls_error", f"after the handshake: {_alert_text(exc)}"), None
    if asked is False:
        return None, True
    return closed(setup, target.server, during=False), False


def explain_from_chain(report: Report) -> None:
    """Add what only the chain fetched after a verification error can tell: names, dates."""
    failure = report.failure
    if failure is None or not report.chain:
        return
    if failure.kind == "hostname_mismatch":
        leaf = report.chain[0]
        names = ", ".join(leaf.get("san") or []) or f"no SAN, subject {leaf.get('subject')}"
        report.failure = Failure(
            failure.kind,
            f"{failure.message}; the certificate names {names}: connect with a name it lists, "
            "or reissue it with this one in its SAN",
        )
    elif failure.kind in ("server_cert_expired", "server_cert_not_yet_valid"):
        report.failure = Failure(failure.kind, _dates_advice(report, failure))
    elif failure.verify_code == 68:
        # Which certificate was signed with SHA-1 or MD5 (it named none, h285).
        weak_signed = [
            f"[{index}] {info.get('subject')} ({info.get('signature')})"
            for index, info in enumerate(report.chain)
            if re.search(r"sha1|md5|md2", str(info.get("signature") or ""), re.IGNORECASE)
        ]
        if weak_signed:
            report.failure = dataclasses.replace(
                failure, message=f"{failure.message}; signed so: {', '.join(weak_signed)}"
            )
    elif failure.verify_code in (66, 67):
        # Which certificate's key, from the chain fetched after the failure.
        weak = [
            f"[{index}] {info.get('subject')} ({info.get('key')})"
            for index, info in enumerate(report.chain)
            if _weak_key(str(info.get("key") or "")) and (index == 0) == (failure.verify_code == 66)
        ]
        if weak:
            report.failure = dataclasses.replace(
                failure, message=f"{failure.message}; the key of {', '.join(weak)}"
            )
    elif failure.kind == "server_not_trusted":
        # The CA to trust: the issuer of the last certificate the server sent (itself,
        # when that one is self-signed).
        top = report.chain[-1]
        ca = top.get("issuer") or top.get("subject")
        old_fix = _untrusted_fix(report.setup.truststore, report.target.server)
        if ca and failure.message.endswith(old_fix):
            fix = _untrusted_fix(report.setup.truststore, report.target.server, ca)
            if _anchor_named(report.setup.anchors, ca, top.get("sha256")):
                # A CA of that name is trusted, and still the chain does not verify: not
                # the same CA (another key). Importing what the server names would trust
                # whoever signed it.
                where = report.setup.truststore or "the truststore"
                fix = (
                    f"a certificate named {ca} is in {where}, "
                    "but not the one this chain needs (another key: the CA was re-keyed, or "
                    "the chain was signed by an impostor of that name): ask the CA's owner "
                    "which certificate is right before importing one"
                )
            elif top.get("self_signed") is False and top.get("ca") is False:
                # The last certificate sent is a leaf: its issuer was not sent. An
                # intermediate left out is the usual cause; clients (Java's too) do not
                # fetch it, so the fix is on the server. (A chain that ends at a CA
                # certificate is whole as servers send them: the root stays out.)
                fix = (
                    f"the server did not send the certificate of its issuer {ca}: if that "
                    "is an intermediate CA, the backend must send its full chain (its "
                    "certificate, then every intermediate); if it is a root CA, " + fix
                )
            else:
                fix = f"its chain ends at {ca}: {fix}"
            report.failure = Failure(failure.kind, failure.message[: -len(old_fix)] + fix)


def _weak_key(text: str) -> bool:
    """Whether a key as :func:`key_description` words it ("RSA 1024", "EC secp192r1")
    is under OpenSSL's security level 2 (RSA and DSA under 2048 bits, EC under 224)."""
    kind, _, size = text.partition(" ")
    if kind in ("RSA", "DSA") and size.isdigit():
        return int(size) < 2048
    bits = re.search(r"(\d{3})", size)
    return kind == "EC" and bits is not None and int(bits.group(1)) < 224


def _anchor_named(anchors: tuple[bytes, ...] | None, name: str, top_sha256: object) -> bool:
    """Whether a trust anchor other than the chain's last certificate (by fingerprint)
    has the subject ``name`` (RFC 4514, as the chain's records write it)."""
    for der in anchors or ():
        try:
            cert = _x509.load_cert(der)
        except ValueError:
            continue
        if cert.subject.rfc4514_string() == name and _x509.sha256_hex(der) != top_sha256:
            return True
    return False


def _untrusted_fix(truststore: str | None, server: str, ca: str | None = None) -> str:
    """What to do about a server our truststore does not vouch for (``ca``: the CA its
    chain ends at, when the chain was seen), and where its certificate comes from (the
    command named CA.pem and said nothing of it, h285): from its owner, the server's
    own copy shown to compare (trusting what a server sends is trusting whoever
    answers)."""
    what = f"the certificate of {ca}" if ca else "the server's certificate or its CA"
    source = (
        "CA.pem: the CA's certificate, from the backend's owner; mtls printcert "
        f"--sslserver {as_word(server)} shows what the server sends (subjects, SHA-256) "
        "to compare"
    )
    if not truststore:
        return (
            f"give the profile a <TrustStore> (or --truststore) that holds {what} "
            f"(mtls import --file CA.pem --alias ca --keystore trust.p12 creates one; {source})"
        )
    if _is_pem(truststore):  # mtls import adds to JKS and PKCS#12 stores only
        return f"append {what}, as PEM, to {truststore} ({source})"
    return (
        f"import {what} into {truststore} "
        f"(mtls import --file CA.pem --alias ca --keystore {as_word(truststore)}; {source})"
    )


def _is_pem(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).lstrip().startswith(b"-----BEGIN")
    except OSError:
        return False


def _dates_advice(report: Report, failure: Failure) -> str:
    current = now()
    trust = report.setup.truststore or "the system's trust store"
    expired = failure.kind == "server_cert_expired"
    for index, info in enumerate(report.chain):
        if "not_after" not in info:
            continue
        which = f"CA certificate [{index}] of its chain" if index else "the server's certificate"
        name = f"{which} {info.get('subject')}"
        start = _dt.datetime.fromisoformat(info["not_before"])
        end = _dt.datetime.fromisoformat(info["not_after"])
        if expired and end < current:
            # A root must be replaced in the truststore; an intermediate's renewal is
            # anchored by the root above it as well (h245: the advice said the
            # truststore must hold the intermediate).
            above = "" if info.get("self_signed") else " or a CA certificate above it"
            fix = (
                "the backend must renew it and install the new one"
                if index == 0
                else "the backend must send a chain to the CA's current certificate, and "
                f"{trust} must hold that certificate{above}"
            )
            return (
                f"{name} expired {_ago(end)}: {fix} (if that date is wrong, check this "
                "machine's clock)"
            )
        if not expired and start > current:
            return (
                f"{name} is valid only from {start:%Y-%m-%d %H:%M} UTC, and this machine's "
                f"clock says {current:%Y-%m-%d %H:%M} UTC: check the clocks of both machines, "
                "or reissue it with a start date in the past"
            )
    # Nothing the server sent is out of date: the anchor we hold is (the failure's own
    # message blames the server's certificate, which is fine: it is not repeated).
    stale = []
    for der in report.setup.anchors or ():
        try:
            cert = _x509.load_cert(der)
        except ValueError:
            continue
        end, start = _dates.not_after(cert), _dates.not_before(cert)
        if expired and end < current:
            stale.append(f"{_x509.subject_text(cert)} (expired {_ago(end)})")
        elif not expired and start > current:
            stale.append(f"{_x509.subject_text(cert)} (valid from {start:%Y-%m-%d %H:%M} UTC)")
    which = f": {'; '.join(stale[:3])}" if stale else ""
    return (
        f"nothing the server sent is out of date, but the CA certificate in {trust} that "
        f"anchors its chain is {'expired' if expired else 'not valid yet'}{which}: replace "
        f"it with the CA's current certificate (mtls list --keystore {as_word(trust)} shows the "
        "dates; if they look right, check this machine's clock)"
    )


def revocation_failure(exc: RevocationError) -> Failure:
    """The probe failure for a server the profile set's revocation check refused: its
    words without the host the report names already ("localhost:8443: localhost: ...",
    h264), and for a revoked certificate the fix the probe's own check gives, in place
    of the library's "the connection was closed before any request"."""
    revoked = isinstance(exc, CertificateRevokedError)
    text = str(exc)
    if exc.host and text.startswith(f"{exc.host}: "):
        text = text[len(exc.host) + 2 :]
    closed = ": the connection was closed before any request"
    if revoked and text.endswith(closed):
        text = (
            f"{text[: -len(closed)]}: the backend needs a certificate (and chain) that is "
            "not revoked, from its CA (our request was not sent)"
        )
    return Failure("server_cert_revoked" if revoked else "revocation_unknown", text)


def revocation_entry(exc: RevocationError) -> dict[str, Any]:
    """What the error says about the certificate it names, as a report entry: every
    key of :meth:`mtls.CertificateStatus.to_dict` (``None`` or empty where the error
    does not say), so that a refusal has the shape a good answer has."""
    from .._revocation import CertificateStatus  # noqa: PLC0415 - not for --help

    # Its keys, in its order: a field added there is a key here too.
    entry: dict[str, Any] = dict.fromkeys(f.name for f in dataclasses.fields(CertificateStatus))
    entry.update(
        subject=exc.subject,
        serial=hex_serial(exc.serial) if exc.serial is not None else None,
        status="undetermined",
        why=list(exc.why) if isinstance(exc, RevocationUnknownError) else [],
    )
    if isinstance(exc, CertificateRevokedError):
        entry["status"] = "revoked"
        entry["source"] = exc.source
        entry["reason"] = exc.revocation_reason
        entry["revoked_at"] = exc.revoked_at.isoformat() if exc.revoked_at else None
    return entry


def refused_statuses(
    checker: RevocationChecker | None, target: Target, exc: RevocationError
) -> list[dict[str, Any]]:
    """The report entries of a chain the set's check refused: the statuses it cached for
    the target (the whole chain, each with its issuer and dates) when they include the
    certificate refused, else what the error says of that one."""
    if checker is not None:
        statuses = checker.state([(target.host, target.port)]).statuses
        if any((s.serial, s.subject) == (exc.serial, exc.subject) for s in statuses):
            return [status.to_dict() for status in statuses]
    return [revocation_entry(exc)]
