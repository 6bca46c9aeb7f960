"""What a certificate is meant for, and which TLS peers refuse it for a role.

A client certificate whose extended key usage forbids client authentication, a
server's whose key usage allows no TLS operation, anyExtendedKeyUsage that OpenSSL
refuses where Java and Go take it: :func:`peers_refuse` says what every peer refuses
(what a reload will not install), :func:`usage_warning` what some peers refuse (a
warning), each with who and the fix.
"""

from __future__ import annotations

from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._dates import java_refused_dates, refused_dates, unverifiable_dates
from ._x509 import extension, load_cert, public_key

# What a peer requires of the certificate it verifies, by the role it is presented
# in. The extended key usage is enforced by every common verifier (OpenSSL, Java's
# EndEntityChecker, Go, rustls/webpki): one that allows none of these is refused by
# all of them. anyExtendedKeyUsage counts here (Java and Go take it; OpenSSL does not:
# usage_warning says so), and for servers so do the old Server Gated Cryptography
# usages that Java and OpenSSL still take. The key usage is enforced by OpenSSL and
# Java, not by Go or rustls: a certificate without one of these bits is refused by
# some peers only (usage_warning).
_ANY_EKU = "2.5.29.37.0"
_PURPOSES: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {
    "client": (
        "clientAuth",
        frozenset({"1.3.6.1.5.5.7.3.2", _ANY_EKU}),
        ("digital_signature", "key_agreement"),
    ),
    "server": (
        "serverAuth",
        frozenset(
            {"1.3.6.1.5.5.7.3.1", _ANY_EKU, "2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"}
        ),
        ("digital_signature", "key_encipherment", "key_agreement"),
    ),
}
_KEY_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "key_encipherment": "keyEncipherment",
    "key_agreement": "keyAgreement",
}
_EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "serverAuth",
    "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.3": "codeSigning",
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.8": "timeStamping",
    "1.3.6.1.5.5.7.3.9": "OCSPSigning",
}


def purpose_problem(der: bytes, role: str) -> str | None:
    """Why TLS peers refuse the certificate ``der`` as a ``role`` (``"client"`` or
    ``"server"``) certificate: its extended key usage allows no such use (OpenSSL, Java
    and Go check it; GnuTLS does not). ``None`` when it allows it, has none, or cannot
    be read (OpenSSL then decides)."""
    name, allowed, _ = _PURPOSES[role]
    usages = _usage_extension(der, x509.ExtendedKeyUsage)
    if usages is None or {usage.dotted_string for usage in usages} & allowed:
        return None
    listed = ", ".join(_EKU_NAMES.get(u.dotted_string, u.dotted_string) for u in usages)
    return f"its extended key usage lacks {name} (it allows {listed or 'nothing'})"


def peers_refuse(der: bytes, role: str) -> tuple[str, str, str] | None:
    """Why peers refuse certificate ``der`` as a ``role`` certificate whatever the time,
    who, and the fix: ``(problem, "servers refuse it (...)", "reissue it ...")``, or
    ``None``. Validity times no
    parser reads (:func:`refused_dates`: every peer), or an extended key usage that
    forbids the role (:func:`purpose_problem`: every client checks a server's; servers
    check a client's but for GnuTLS-based ones, the interop sweep h128: Go 1.19, GnuTLS
    3.7, OpenSSL, Java). What a reload refuses to install, and a first load serves with
    a warning."""
    peers = "clients" if role == "server" else "servers"
    dates = refused_dates(der)
    if dates is not None:
        return (
            dates,
            f"{peers} refuse it (neither OpenSSL nor Java reads such a time)",
            "have it reissued with dates that exist",
        )
    problem = purpose_problem(der, role)
    if problem is None:
        return None
    fix = f"reissue it for TLS {role} authentication"
    if role == "server":
        return problem, "every client refuses it", fix
    who = "servers refuse it (OpenSSL-, Java- and Go-based ones check it; GnuTLS does not)"
    return problem, who, fix


def usage_warning(der: bytes, role: str) -> tuple[str, str, str] | None:
    """Why some peers refuse the certificate ``der`` as a ``role`` certificate where
    others take it, and which: a key usage that allows none of the operations the role
    needs (OpenSSL and Java check it, Go and rustls do not), or an extended key usage
    that allows the role only through anyExtendedKeyUsage (OpenSSL refuses it, Java
    and Go take it).
    ``None`` when none of these, or they cannot be read. First, validity times OpenSSL's
    verifier refuses and Java reads (:func:`unverifiable_dates`; those Java refuses too
    are :func:`peers_refuse`'s). ``(why, who, fix)``."""
    fix = f"reissue it for TLS {role} authentication"
    dates = unverifiable_dates(der)
    if dates is not None:
        if java_refused_dates(der) is not None:
            return None
        return dates, "OpenSSL-based", "have it reissued with its dates in DER's form"
    name, _, needed = _PURPOSES[role]
    key_usage = _usage_extension(der, x509.KeyUsage)
    allowed = key_usage is None or any(getattr(key_usage, bit) for bit in needed)
    if (
        key_usage is not None
        and role == "server"
        and not key_usage.digital_signature
        and _signing_only_key(der)
    ):
        # An EC or EdDSA key enciphers nothing, and no cipher suite OpenSSL offers uses
        # a static ECDH key: without digitalSignature it signs no TLS 1.2 key exchange,
        # and the server's own OpenSSL finds "no shared cipher" for every TLS 1.2
        # client, Go's included; in TLS 1.3 GnuTLS and Java clients refuse it (Java
        # wants digitalSignature of every server certificate that signs, whatever else
        # it allows: java_client_refuses, h254), and OpenSSL's when no usage of theirs
        # is allowed (keyAgreement or keyEncipherment alone was installed silently,
        # and nonRepudiation alone said Go took it, h203).
        return (
            "its key usage has no digitalSignature, which its key (EC or EdDSA) needs "
            "to sign the handshake: every TLS 1.2 handshake fails (no shared cipher)",
            "TLS 1.2, Java and GnuTLS" if allowed else "TLS 1.2, OpenSSL, Java and GnuTLS",
            fix,
        )
    if not allowed:
        wanted = " or ".join(_KEY_USAGE_NAMES[bit] for bit in needed)
        # gnutls-serv refuses such a client certificate too ("Key usage violation",
        # h203); which GnuTLS clients refuse of a server's RSA one is not established.
        who = "OpenSSL, Java and GnuTLS" if role == "client" else "OpenSSL and Java"
        return f"its key usage has no {wanted}", who, fix
    if key_usage is not None and role == "server" and not key_usage.digital_signature:
        # An RSA key with keyEncipherment (or keyAgreement) alone: OpenSSL's purpose
        # check takes it, Go's does not look, and Java's clients (JDK 17 and 25, the
        # WSO2 gateway) refuse it in TLS 1.3 and in TLS 1.2's ECDHE and DHE key
        # exchanges, every one they negotiate with a current server (h254: mtls said
        # nothing, and the gateway was refused).
        return f"its key usage has no digitalSignature{JAVA_SIGNATURE}", "Java", fix
    if key_usage is not None and role == "client" and not key_usage.digital_signature:
        # A client certificate with keyAgreement and no digitalSignature: OpenSSL's
        # purpose check takes it and its servers accept the CertificateVerify signed
        # with it; Java's servers refuse it ("KeyUsage does not allow digital
        # signatures", h259), so do mtls's (mtls/_admission.py), and gnutls-serv refuses
        # an EC one in TLS 1.2 and 1.3 (h204).
        return (
            "its key usage has no digitalSignature, which a TLS client needs to sign the "
            "handshake with its key",
            "Java, mtls and GnuTLS" if _signing_only_key(der) else "Java and mtls",
            fix,
        )
    usages = _usage_extension(der, x509.ExtendedKeyUsage)
    oids = {u.dotted_string for u in usages} if usages is not None else set()
    # OpenSSL's purpose check wants the role's own usage: anyExtendedKeyUsage beside
    # others that are not it (serverAuth on a client's) is refused as it is alone (h227).
    if _ANY_EKU in oids and not oids & (_PURPOSES[role][1] - {_ANY_EKU}):
        others = [_EKU_NAMES.get(oid, oid) for oid in sorted(oids - {_ANY_EKU})]
        return (
            f"its extended key usage is anyExtendedKeyUsage alone, without {name}"
            if not others
            else f"its extended key usage has anyExtendedKeyUsage and {', '.join(others)}, "
            f"without {name}",
            "OpenSSL",
            fix,
        )
    return None


#: Why Java refuses a server certificate without digitalSignature: said where mtls
#: warns of it and where ``mtls probe`` predicts the gateway.
JAVA_SIGNATURE: Final = (
    ", which Java clients (the WSO2 gateway) require of a server certificate in TLS "
    "1.3 and in TLS 1.2's ECDHE and DHE key exchanges (\"KeyUsage does not allow "
    'digital signatures")'
)


def java_client_refuses(der: bytes, version: str | None, cipher: str | None) -> str | None:
    """Why a Java client (the JDK's ``EndEntityChecker``, which WSO2's gateway runs)
    refuses the server certificate ``der`` over the TLS ``version`` and ``cipher``
    (OpenSSL's names) negotiated, where OpenSSL takes it: its key usage, when it has
    one, must allow what the key exchange does with the key (digitalSignature to sign
    it: TLS 1.3, ECDHE, DHE; keyEncipherment for RSA key transport). ``None`` when Java
    takes it, or the certificate or the exchange cannot be read."""
    key_usage = _usage_extension(der, x509.KeyUsage)
    if key_usage is None or version is None:
        return None
    if version == "TLSv1.3" or (cipher or "").startswith(("ECDHE-", "DHE-")):
        if key_usage.digital_signature:
            return None
        return f"its key usage has no digitalSignature{JAVA_SIGNATURE}"
    if cipher is not None and "-" in cipher and cipher.split("-")[0] in {"AES128", "AES256"}:
        # RSA key transport (AES128-GCM-SHA256, AES256-SHA): keyEncipherment.
        if key_usage.key_encipherment:
            return None
        return (
            "its key usage has no keyEncipherment, which Java clients require of a server "
            'certificate in an RSA key exchange ("KeyUsage does not allow key encipherment")'
        )
    return None


def cannot_sign(der: bytes) -> bool:
    """Whether the certificate ``der`` has a key usage without digitalSignature: as a
    client's, Java's servers refuse it, and mtls's (mtls/_admission.py) after OpenSSL
    took it. ``False`` when it has none, or cryptography cannot read it."""
    key_usage = _usage_extension(der, x509.KeyUsage)
    return key_usage is not None and not key_usage.digital_signature


def _signing_only_key(der: bytes) -> bool:
    """Whether the certificate's key can only sign in TLS (EC, Ed25519, Ed448)."""
    try:
        key = public_key(load_cert(der))
    except (ValueError, UnsupportedAlgorithm):
        return False
    return isinstance(key, EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey)


def _usage_extension(der: bytes, kind: type[x509.ExtensionType]) -> Any:
    """The value of the certificate's extension of ``kind``; ``None`` when it has none
    or cryptography cannot read its extensions (a duplicated one, a bad encoding)."""
    try:
        return extension(load_cert(der), kind, der)
    except ValueError:
        return None
