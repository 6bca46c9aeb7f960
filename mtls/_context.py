"""The one place contexts are built: ``client_context`` and ``server_context``.

Every security-relevant line says why. The contexts returned are plain
``ssl.SSLContext`` objects and nothing here keeps a reference to change them
later: rotation builds a new one (DESIGN 1).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import ssl
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Final

from . import _admission, _dates, _der, _jks, _keyload, _openssl, _x509
from ._config import normalize_host
from ._crl import CRLSet, _issued, warn_intermediate_anchors
from ._errors import CRLError, KeyEntryError, KeystoreError, KeystoreFormatError
from ._files import cannot_read_fix
from ._fork import forks_wait, openssl_work
from ._idna import ascii_host
from ._log import first_time, log
from ._revocation import (
    RevocationChecker,
    RevocationPolicy,
    install,
    revocation_checker,
)
from ._secret import scrub_tracebacks
from ._stores import Keystore, StoreRole, Truststore
from ._types import (
    CRLCheck,
    HostnameVerifier,
    check_crl_check,
    check_flag,
    normalize_hostname_verifier,
    span,
)

#: Hosts that ``DefaultAndLocalhost`` exempts from the name check (WSO2's list, exactly).
LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})


def dials_localhost(host: str) -> bool:
    """Whether ``host``, as a client dials it, is one ``DefaultAndLocalhost`` exempts
    from the name check: one of :data:`LOCALHOST_NAMES` (any spelling of the address,
    any case) written without a final dot. ``localhost.`` and ``127.0.0.1.`` are
    names the resolver asks DNS for, never the hosts file (glibc's ``files`` source
    does not match them; a final dot is not an address): whoever answers that query
    would get the client's certificate with no name check (h191). A profile still
    matches them (a final dot is the same name for the lookup), with the check."""
    dialled = host.strip()
    while dialled.startswith("[") and dialled.endswith("]"):  # "[localhost.]" (h193)
        dialled = dialled[1:-1].strip()
    if not dialled.isascii():
        dialled = ascii_host(dialled)  # "localhost\u3002" is dialled as "localhost."
    return not dialled.endswith(".") and normalize_host(dialled) in LOCALHOST_NAMES


EXPIRY_WARNING = _dt.timedelta(days=30)
#: How close to its end a context build warns of a certificate: at the widest of the
#: thresholds for it (a set's, or :data:`EXPIRY_WARNINGS`); ``None``: never.
WarnExpiry = _dates.ExpiryThresholds | None
#: A context's own: 30 days, or what says something of a short validity.
EXPIRY_WARNINGS: Final = _dates.ExpiryThresholds((EXPIRY_WARNING,))
_STRICT = getattr(ssl, "VERIFY_X509_STRICT", 0)


def _keylog(ctx: ssl.SSLContext) -> None:
    # Same rule as ssl.create_default_context: SSLKEYLOGFILE lets Wireshark decrypt
    # a capture while debugging ("SSL debug logs"), unless python -E is in force.
    keylogfile = os.environ.get("SSLKEYLOGFILE")
    if keylogfile and not sys.flags.ignore_environment:
        ctx.keylog_filename = keylogfile


def _check_stores(keystore: object, truststore: object, who: str) -> None:
    """``TypeError`` for anything but a :class:`Keystore` and a :class:`Truststore`
    (or ``None``, where ``who`` takes it: a server always needs its keystore), saying
    how to make one from what was given."""
    for value, kind, made, used in (
        (keystore, Keystore, "keystore()", "key_entry"),
        (truststore, Truststore, "truststore()", "anchors_der"),
    ):
        if value is None or isinstance(value, kind) or hasattr(value, used):
            continue  # a store, or something that reads as one (a wrapper, a test double)
        if isinstance(value, str | os.PathLike):
            fix = f"load the file first: mtls.{kind.__name__}.load(path, password)"
        elif callable(getattr(value, made[:-2], None)):  # mtls.testing's CA and identities
            fix = f"pass its .{made}"
        elif kind is Truststore and callable(getattr(getattr(value, "ca", None), made[:-2], None)):
            fix = "pass its CA's: identity.ca.truststore()"
        elif kind is Keystore and callable(getattr(value, "issue_cert", None)):
            fix = "pass an identity it issues: ca.issue_cert(name).keystore()"
        else:
            fix = f"load one with mtls.{kind.__name__}.load(path, password)"
        name = kind.__name__.lower()
        optional = "" if (who == "server_context" and kind is Keystore) else " or None"
        raise TypeError(
            f"{who}: {name} must be an mtls.{kind.__name__}{optional}, not "
            f"{type(value).__name__}: {fix}"
        )


def store_at_fault(exc: BaseException) -> StoreRole | None:
    """Which store an error of :func:`client_context` or :func:`server_context` is
    about: the identity's (a :class:`KeyEntryError`: no usable key entry, a key that
    does not match its certificate, one OpenSSL refuses) or the trust's (a
    :class:`KeystoreFormatError`: an empty truststore, a certificate OpenSSL will not
    take); ``None`` for anything else (CRLs, arguments).

    By kind, not by path: the rotation engines judge a keystore and a truststore
    apart with it, and a path may be shown as written (a placeholder), or be the same
    file for both stores, or a store may be shared by copies with the same bytes.
    """
    if isinstance(exc, KeyEntryError):
        return "keystore"
    if isinstance(exc, KeystoreFormatError):
        return "truststore"
    return None


#: Certificates a truststore may hand to OpenSSL: its cost grows with the square of
#: the count (1,000: 0.14 s; 5,000: 1.4 s; 10,000: 6 s; 18,000: 42 s, while a reload
#: holds the lock every profile shares). The JDK's cacerts has about 150.
MAX_TRUST_ANCHORS: Final = 5_000


# What OpenSSL read of each truststore's anchors (its certificates, referenced), for the
# next context built from the same Truststore object: a profile set's contexts share
# their truststore, and each read it again (20 ms of a context built from the JDK's
# cacerts; put in from here, 0.4 ms). Kept as long as the Truststore is; a store
# changed since (an entry added or removed) has other anchors and is read again.
_READ_ANCHORS: weakref.WeakKeyDictionary[Truststore, tuple[tuple[bytes, ...], _openssl.Anchors]] = (
    weakref.WeakKeyDictionary()
)
#: The most anchors put in from a kept read. Each goes into a sorted stack, holding the
#: GIL (a call per certificate released and took it back behind every busy thread):
#: 300 take about 2 ms, what a first read's own pauses are; 600 take 6 ms and 5,000
#: 0.6 s, while every other thread waits. A truststore with more is read by each
#: context, with the GIL released, as before.
KEPT_ANCHORS_MAX: Final = 300


def _load_anchors(
    ctx: ssl.SSLContext, truststore: Truststore, anchors: tuple[bytes, ...], *, anchored: bool
) -> None:
    """``anchors`` into ``ctx``: put in as OpenSSL read them for an earlier context
    from ``truststore``, else read (unless ``anchored``: read already) and kept for
    the next one (up to :data:`KEPT_ANCHORS_MAX` of them).

    Raises:
        ssl.SSLError: OpenSSL refused a certificate.
    """
    keep = len(anchors) <= KEPT_ANCHORS_MAX
    kept = _READ_ANCHORS.get(truststore) if keep else None
    if kept is not None and kept[0] == anchors and (anchored or _openssl.add_anchors(ctx, kept[1])):
        return
    if not anchored:
        _keyload.load_anchors(ctx, anchors)  # a big truststore with the GIL released
    read = _openssl.anchors_of(ctx) if keep else None  # the store holds only the anchors yet
    # Kept only when it is exactly the anchors, one certificate each: anything else in
    # the store would be trusted by every later context from this truststore.
    if read is not None and len(read) == len(set(anchors)):
        _READ_ANCHORS[truststore] = (anchors, read)


def _trust(ctx: ssl.SSLContext, truststore: Truststore | None, *, anchored: bool = False) -> None:
    if truststore is None:
        ctx.load_default_certs(
            ssl.Purpose.SERVER_AUTH
            if ctx.protocol == ssl.PROTOCOL_TLS_CLIENT
            else ssl.Purpose.CLIENT_AUTH
        )
        return
    anchors = truststore.anchors_der
    if not anchors:
        raise KeystoreFormatError(
            f"{truststore.path or 'the truststore'} is empty: add the peer's certificate or CA",
            path=truststore.path,
        )
    if len(anchors) > MAX_TRUST_ANCHORS:
        raise KeystoreFormatError(
            f"{truststore.path or 'the truststore'} holds {len(anchors):,} certificates, more "
            f"than the {MAX_TRUST_ANCHORS:,} a context is built with (OpenSSL's cost grows "
            "with the square of the count: tens of seconds, while every reload waits): keep "
            "the CAs this service's peers need (the JDK's cacerts has about 150)",
            path=truststore.path,
        )
    try:
        _load_anchors(ctx, truststore, anchors, anchored=anchored)
    except ssl.SSLError as exc:
        alias, own, der = _refused_anchor(truststore)
        which = "a certificate" if alias is None else f"certificate {_jks.shown(alias)}"
        # Its own refusal says why (a bundle read as PEM says only "PEM lib").
        why = own or exc
        # OpenSSL 3.6 reads no certificate whose dates are not in DER's form (3.0 read
        # them, and refused them only in verification): say so, not "not enough data".
        dates = _dates.unverifiable_dates(der) if der is not None else None
        because = f"; {dates}: {ssl.OPENSSL_VERSION} reads no such certificate" if dates else ""
        raise KeystoreFormatError(
            f"{truststore.path or 'the truststore'}: OpenSSL refused {which} "
            f"({why.reason or str(why.args[-1]).split(' (_ssl.c')[0]}{because}): replace "
            "it, or remove it from the truststore",
            path=truststore.path,
            alias=alias,
        ) from exc
    # Java semantics: every certificate in a truststore is an anchor, even a leaf or an
    # intermediate (the seed imports a backend's own self-signed certificate). OpenSSL
    # otherwise insists that chains end at a self-signed root.
    # Deliberately NOT VERIFY_X509_STRICT (on by default in Python 3.13's
    # create_default_context): keytool-made certificates often lack the authority key
    # identifier and key usage that it demands, and Java accepts them.
    ctx.verify_flags = (ctx.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN) & ~_STRICT


def _refused_anchor(
    truststore: Truststore,
) -> tuple[str | None, ssl.SSLError | None, bytes | None]:
    """The alias of the first anchor OpenSSL refuses on its own, with that refusal and
    the certificate (asked only after it refused them all together: a certificate the
    loader took on trust, its bytes read as a certificate only now), or ``(None, None,
    None)``."""
    for alias, der in truststore._anchor_entries():
        if (refusal := _x509.openssl_refusal(der)) is not None:
            return alias, refusal, der
    return None, None, None


def _revocation(
    ctx: ssl.SSLContext,
    truststore: Truststore | None,
    crls: CRLSet | None,
    crl_check: CRLCheck,
    revocation: RevocationPolicy | RevocationChecker | None,
) -> None:
    """CRL files into the verification, and the online check after each handshake."""
    if crls is not None and not len(crls):
        # Checking nothing looks like checking: a glob that matched no file must not
        # turn revocation off without a word.
        raise CRLError(
            "crls= is an empty CRLSet, so no certificate would be checked: give the "
            "CAs' CRL files (CRLSet.load with at least one path), or leave crls= out"
        )
    checker = revocation_checker(revocation)
    if not crls and checker is None:
        return
    # The anchors the chain is verified against: the truststore's, or what the
    # system trust loaded eagerly (a lazily read CApath is not listed).
    anchors = (
        truststore.anchors_der if truststore is not None else ctx.get_ca_certs(binary_form=True)
    )
    if crls:
        crls.check_once(anchors)  # expired or untrusted lists are errors, never ignored
        crls.install(ctx, crl_check)
        if crl_check == "chain" and truststore is not None:
            warn_intermediate_anchors(truststore.path or "the truststore", anchors)
    if checker is not None:
        install(ctx, checker, anchors)


def _identity(
    ctx: ssl.SSLContext,
    keystore: Keystore,
    alias: str | None,
    *,
    server: bool = False,
    ciphers: str | None = None,
    warn_expiry: WarnExpiry = EXPIRY_WARNINGS,
) -> None:
    chosen, key_der, chain_der = keystore.key_entry(alias)
    if not key_der:
        raise KeyEntryError(
            f"{keystore.path or 'the keystore'}: key entry {chosen!r} was read without "
            "its key (Keystore.inspect): load the store with Keystore.load",
            path=keystore.path,
            alias=chosen,
        )
    explicit = [
        der
        for der in chain_der
        if _x509.ec_key_encoding(der) == "explicit" and not _issued_self(der)
    ]
    if explicit:
        # OpenSSL peers refuse a certificate of the chain they verify so ("Certificate
        # public key has explicit ECC parameters"; a self-signed one trusted as the
        # anchor itself passes), Java every one: an identity no peer takes, said here,
        # not at each handshake (h188).
        raise KeyEntryError(
            f"{keystore.path or 'the keystore'}: key entry {chosen!r}: a certificate of its "
            f"chain ({_subject(explicit[0]) or 'subject unreadable'}) has an EC public key "
            "with explicit curve parameters, which OpenSSL and Java peers refuse "
            '("Certificate public key has explicit ECC parameters"): have it reissued '
            "for the named curve (openssl's default, -param_enc named_curve)",
            path=keystore.path,
            alias=chosen,
        )
    try:
        _keyload.load_identity(ctx, key_der, chain_der)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise _key_refused(keystore, chosen, key_der, exc) from exc
        # The key goes to OpenSSL through a memory file: two descriptors, which a
        # process at its limit of open files does not have. Never the store's fault.
        raise KeystoreError(
            f"{keystore.path or 'the keystore'}: key entry {chosen!r} cannot be handed to "
            f"OpenSSL ({exc.strerror or type(exc).__name__}): "
            f"{cannot_read_fix(exc) or 'retry; if it persists, report it'}",
            path=keystore.path,
            alias=chosen,
        ) from exc
    algorithm = _x509.key_algorithm(key_der)
    if algorithm == _x509.DSA_OID:
        _dsa_over_tls12(ctx, keystore, chosen, server=server, ciphers=ciphers)
    elif algorithm == _x509.EC_OID and (curve := _keyload.key_curve(key_der)) not in _TLS13_CURVES:
        _ec_over_tls12(ctx, keystore, chosen, curve, server=server)
    if server and ciphers is not None:
        _ciphers_fit_key(ctx, keystore, chosen, ciphers, key_der=key_der, algorithm=algorithm)
    _log_identity(keystore, chosen, chain_der, warn_expiry=warn_expiry)


def _issued_self(der: bytes) -> bool:
    """Whether a certificate names itself as its issuer (a peer may trust it as its
    anchor, whose key OpenSSL does not check)."""
    names = _x509.raw_names(der)
    return names is not None and names[0] == names[1]


# What a TLS 1.2 cipher suite's authentication must be for a server key of each
# algorithm (OpenSSL's get_ciphers() "auth"): EdDSA signs in the ECDSA suites (RFC 8422).
_SUITE_AUTH = {
    "1.2.840.113549.1.1.1": "auth-rsa",
    "1.2.840.113549.1.1.10": "auth-rsa",
    "1.2.840.10045.2.1": "auth-ecdsa",
    "1.3.101.112": "auth-ecdsa",
    "1.3.101.113": "auth-ecdsa",
    "1.2.840.10040.4.1": "auth-dss",
}
# (key digest, ciphers) said once each: every context built from them would say it again.
_UNFIT_CIPHERS: set[tuple[bytes, str]] = set()


def _ciphers_fit_key(
    ctx: ssl.SSLContext,
    keystore: Keystore,
    alias: str,
    ciphers: str,
    *,
    key_der: bytes,
    algorithm: str | None,
) -> None:
    """A server's ``ciphers=`` must hold a TLS 1.2 suite its key can sign in: with
    ECDHE-RSA suites alone an EC key completes no TLS 1.2 handshake (the client sees
    "handshake failure", the server "no shared cipher"), and nothing said why. A
    context that also allows TLS 1.3 still serves TLS 1.3 clients (its suites do not
    depend on the key), so that is a warning; one held to TLS 1.2 serves nobody."""
    wanted = _SUITE_AUTH.get(algorithm or "")
    if wanted is None or ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
        return
    suites = [c for c in ctx.get_ciphers() if c.get("protocol") != "TLSv1.3"]
    if any(c.get("auth") == wanted for c in suites):
        return
    where = keystore.path or "the keystore"
    kind = {"auth-rsa": "RSA", "auth-ecdsa": "ECDSA", "auth-dss": "DSS"}[wanted]
    said = (
        f"{where}: ciphers {ciphers!r} has no TLS 1.2 suite key entry {alias!r} can "
        f"sign in (its key needs {kind} suites, such as "
        f"'{'ECDHE-ECDSA' if kind == 'ECDSA' else 'ECDHE-RSA' if kind == 'RSA' else 'DHE-DSS'}"
        "-AES128-GCM-SHA256')"
    )
    if ctx.maximum_version == ssl.TLSVersion.TLSv1_2:
        raise KeyEntryError(
            f"{said}, and the context allows no TLS 1.3: it could complete no handshake; "
            "add such suites to ciphers=",
            path=keystore.path,
            alias=alias,
        )
    key = (hashlib.sha256(key_der).digest(), ciphers)  # a store in memory has no path
    if key not in _UNFIT_CIPHERS and len(_UNFIT_CIPHERS) < 1024:
        _UNFIT_CIPHERS.add(key)
        log.warning(
            "%s: TLS 1.2 clients are refused (handshake failure), TLS 1.3 ones served; "
            "add such suites to ciphers=",
            said,
        )


def _key_refused(
    keystore: Keystore, chosen: str, key_der: bytes, exc: ssl.SSLError
) -> KeyEntryError:
    """OpenSSL refused a key entry: why, and the fix that applies to its algorithm."""
    algorithm = _x509.key_algorithm(key_der)
    if algorithm is None or algorithm in _TLS_KEY_TYPES:
        return KeyEntryError(
            f"{keystore.path or 'the keystore'}: OpenSSL refused key entry {chosen!r} "
            f"({exc.reason or exc}): {_refusal_fix(exc.reason)}",
            path=keystore.path,
            alias=chosen,
        )
    # The algorithm is the reason; OpenSSL's own (EE_KEY_TOO_SMALL for a key it cannot
    # size) would send the user after the key's size.
    return KeyEntryError(
        f"{keystore.path or 'the keystore'}: OpenSSL refused key entry {chosen!r}: its key "
        f"algorithm, {_x509.key_algorithm_label(algorithm)} ({algorithm}), cannot sign TLS "
        "handshakes here: issue an RSA or EC key",
        path=keystore.path,
        alias=chosen,
    )


# The PKCS#8 key algorithms a TLS identity can have: rsaEncryption, RSASSA-PSS,
# id-ecPublicKey, id-dsa, Ed25519, Ed448. Any other (GOST R 34.10, SM2 under its own
# OID, X25519) cannot sign a handshake, whatever the security level.
_TLS_KEY_TYPES = frozenset(
    {
        "1.2.840.113549.1.1.1",
        "1.2.840.113549.1.1.10",
        "1.2.840.10045.2.1",
        _x509.DSA_OID,
        "1.3.101.112",
        "1.3.101.113",
    }
)
# (path, alias) of the key entries a context was held to TLS 1.2 for: said once each.
_HELD_TO_TLS12: set[tuple[str | None, str]] = set()
# The curves TLS 1.3 has a signature scheme for in this OpenSSL: P-256, P-384, P-521;
# and brainpool's r1 curves from OpenSSL 3.2 (RFC 8734). A key on another curve OpenSSL
# loads (P-224, secp256k1, brainpool before 3.2) signs no TLS 1.3 handshake: a client
# offering TLS 1.3 sends an empty certificate, a server can complete no handshake.
_TLS13_CURVES = frozenset(
    {"1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"}
    | (
        {"1.3.36.3.3.2.8.1.1.7", "1.3.36.3.3.2.8.1.1.11", "1.3.36.3.3.2.8.1.1.13"}
        if ssl.OPENSSL_VERSION_INFO >= (3, 2)
        else set()
    )
)
# What key_curve says of a curve that is not named (see _x509.curve_name for the rest).
_CURVE_LABELS = {
    "explicit parameters": "a curve given by explicit parameters (not P-256, P-384, P-521)",
    "unknown": "a curve mtls cannot read from the key",
}


def _ec_over_tls12(
    ctx: ssl.SSLContext, keystore: Keystore, alias: str, curve: str, *, server: bool
) -> None:
    """An EC key on a curve TLS 1.3 cannot sign with here: as for DSA, a client context
    is held to TLS 1.2, with a warning, where the certificate is at least offered (a
    server that does not take the curve, as Python's, OpenSSL's and Java 17's and 25's
    do not, ends the handshake instead of serving the request without it); refused
    where it cannot work at all (a server: TLS 1.2 clients must offer the curve, and
    OpenSSL's, curl's and Python's do not)."""
    where = keystore.path or "the keystore"
    what = f"an EC key on {_CURVE_LABELS.get(curve) or _x509.curve_name(curve)}"
    fix = "issue a key on P-256 or P-384 (or RSA)"
    if server or ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
        why = (
            "TLS 1.2 clients would have to offer its curve, which OpenSSL's, curl's and "
            "Python's do not"
            if server
            else "the context allows nothing older"
        )
        raise KeyEntryError(
            f"{where}: key entry {alias!r} is {what}, for which TLS 1.3 has no signature "
            f"scheme in {ssl.OPENSSL_VERSION}, and {why}: {fix}",
            path=keystore.path,
            alias=alias,
        )
    _hold_to_tls12(
        ctx,
        keystore,
        alias,
        f"{where}: key entry {alias!r} is {what}, for which TLS 1.3 has no signature scheme "
        f"in {ssl.OPENSSL_VERSION}: this context offers TLS 1.2 at most, so that the "
        "certificate is still offered (a server that does not take the curve, as OpenSSL's "
        f"and Java's do not, ends the handshake rather than serving the request without "
        f"it); {fix}",
    )


def _hold_to_tls12(ctx: ssl.SSLContext, keystore: Keystore, alias: str, said: str) -> None:
    """Offer TLS 1.2 at most on ``ctx``, for a key TLS 1.3 cannot sign with, and say
    ``said`` once per key entry (every context built from it would say it again)."""
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if (keystore.path, alias) not in _HELD_TO_TLS12 and len(_HELD_TO_TLS12) < 1024:
        _HELD_TO_TLS12.add((keystore.path, alias))
        log.warning("%s", said)


def _dsa_over_tls12(
    ctx: ssl.SSLContext, keystore: Keystore, alias: str, *, server: bool, ciphers: str | None
) -> None:
    """TLS 1.3 has no DSA: a client offering it would send no certificate (the server
    sees none, and nothing says why), a server would have none to send. The context is
    held to TLS 1.2, where DSA still signs, or refused where it cannot work at all."""
    where = keystore.path or "the keystore"
    if ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
        raise KeyEntryError(
            f"{where}: key entry {alias!r} is a DSA key, which TLS 1.3 cannot use, and the "
            "context allows nothing older: issue an RSA or EC key, or allow TLS 1.2",
            path=keystore.path,
            alias=alias,
        )
    if server and ciphers is None:
        raise KeyEntryError(
            f"{where}: key entry {alias!r} is a DSA key: TLS 1.3 has no DSA, and TLS 1.2 "
            "would need DSS cipher suites, which Python's clients (and most others) leave "
            "out: issue an RSA or EC key (or pass ciphers= naming DSS suites, for clients "
            "that offer them)",
            path=keystore.path,
            alias=alias,
        )
    _hold_to_tls12(
        ctx,
        keystore,
        alias,
        f"{where}: key entry {alias!r} is a DSA key, which TLS 1.3 cannot use: this context "
        "offers TLS 1.2 at most, so that the certificate is still sent; issue an RSA or EC key",
    )


# OpenSSL's reasons for refusing material that is sound but weaker than its security
# level allows (Debian and Ubuntu default to level 2: RSA and DSA keys of 2048 bits).
_TOO_WEAK = frozenset({"EE_KEY_TOO_SMALL", "CA_KEY_TOO_SMALL", "CA_MD_TOO_WEAK"})


def _refusal_fix(reason: str | None) -> str:
    """What to do about an identity OpenSSL refused, by its reason."""
    lower = "or lower the level for one context with ciphers='DEFAULT:@SECLEVEL=1'"
    if reason == "CA_MD_TOO_WEAK":
        return (
            "a certificate of its chain is signed with a digest weaker than OpenSSL's "
            "security level allows (SHA-1 or MD5; Java may still accept it): have the "
            f"chain reissued with SHA-256, {lower}"
        )
    if reason == "INVALID_CERTIFICATE":
        return (
            "its certificate has an extension OpenSSL rejects (malformed, duplicated or "
            "empty; Java may still accept it): have the certificate reissued"
        )
    if reason in _TOO_WEAK:
        return (
            "the key or a certificate of its chain is weaker than OpenSSL's security level "
            "allows (RSA and DSA keys under 2048 bits, Java still accepts 1024; a DSA key "
            "with a 160-bit q, whatever its size; EC curves under 224 bits; or a "
            "key type this OpenSSL cannot use in TLS): issue a stronger one (keytool "
            f"-genkeypair -keyalg RSA -keysize 2048), {lower}"
        )
    return "the key must match the first certificate of its chain"


@_der.bytes_cache(256)
def _leaf_facts(leaf_der: bytes) -> tuple[_dt.datetime, _dt.datetime] | None:
    """(not after, not before) of a certificate, parsed once per certificate: a
    rebuild of the same identity (every reload that finds a store changed) skips it."""
    try:
        # cryptography parses fields lazily: a certificate OpenSSL accepted may still
        # have a field it refuses, which must not stop the context from being built.
        starts, ends = _x509.validity(leaf_der)
    except ValueError:
        return None
    return ends, starts


def _subject(der: bytes) -> str | None:
    """The subject of a certificate :func:`_leaf_facts` read, for a log line (only
    made when one is said: most builds say nothing); ``None``: cryptography cannot
    read it (a name it refuses only when the name is read)."""
    try:
        return _x509.subject_text(_x509.load_cert(der))
    except ValueError:
        return None


_EXPIRY_WARNED: set[tuple[str, str, bytes, int]] = set()


def _log_identity(
    keystore: Keystore,
    alias: str,
    chain_der: Sequence[bytes],
    *,
    warn_expiry: WarnExpiry = EXPIRY_WARNINGS,
) -> None:
    facts = _leaf_facts(chain_der[0])
    if facts is None:
        return
    expires, starts = facts
    where = keystore.path or "keystore"
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "identity %s alias=%r subject=%s expires=%s",
            where,
            alias,
            _subject(chain_der[0]),
            expires.isoformat(),
        )
    if warn_expiry is None or not warn_expiry.spans:  # a set with expiry_warnings=()
        return
    now = _dt.datetime.now(_dt.UTC)
    within = warn_expiry.of(starts, expires)[0]
    if expires - now < within:
        what = f"certificate {alias!r} ({_subject(chain_der[0]) or 'subject unreadable'})"
        _warn_expiry(where, alias, chain_der[0], expires, what, within=within, starts=starts)
    # The chain sent with it: a peer that verifies through an intermediate out of date
    # refuses every handshake, whatever the leaf's dates. A root sent along (signed
    # by its own key) is not said: peers verify with their own copy of it (trusted
    # first), perhaps renewed. A key-rollover link (self-issued, signed by the old
    # key) is an intermediate like any other. (Dates first: the names and signature
    # are looked at only for a certificate that would be warned about.)
    for der in chain_der[1:]:
        facts = _leaf_facts(der)
        if facts is None:
            continue
        within = warn_expiry.of(facts[1], facts[0])[0]
        if facts[0] - now >= within:
            continue
        names = _x509.raw_names(der)
        if names is not None and names[0] == names[1] and _self_signed(der):
            continue
        subject = _subject(der)
        what = f"certificate {alias!r}: " + (
            f"the certificate {subject} of its chain"
            if subject is not None
            else "a certificate of its chain (subject unreadable)"
        )
        _warn_expiry(where, alias, der, facts[0], what, within=within, starts=facts[1])


def _self_signed(der: bytes) -> bool:
    """Whether ``der`` is signed by its own key (``False`` when cryptography cannot
    read a field it needs: such a certificate is warned about like any other)."""
    try:
        return _issued(der, der)
    except ValueError:
        return False


def _warn_expiry(
    where: str,
    alias: str,
    der: bytes,
    expires: _dt.datetime,
    what: str,
    *,
    within: _dt.timedelta,
    starts: _dt.datetime | None = None,
) -> None:
    """Warn that ``what`` has expired or ends ``within`` from now, once a day per
    certificate: a profile set builds a context per ALPN list and for localhost from
    the same stores, and every HTTP client type asks for its own. One whose notBefore
    is after its notAfter is said to be never valid ("expired" says "rotate" about a
    certificate just issued; it must be reissued)."""
    now = _dt.datetime.now(_dt.UTC)
    remaining = expires - now
    if remaining >= within:
        return
    warned = (where, alias, hashlib.sha256(der).digest(), remaining.days)
    if not first_time(_EXPIRY_WARNED, warned):
        return
    if _dates.out_of_date(starts, expires, now) == "never valid":
        assert starts is not None
        log.warning(
            "%s: %s is never valid: its notBefore (%s) is after its notAfter (%s): reissue it",
            where,
            what,
            starts.isoformat(),
            expires.isoformat(),
        )
    elif remaining <= _dt.timedelta(0):
        log.warning("%s: %s expired on %s", where, what, expires.date())
    else:
        log.warning("%s: %s expires in %s, on %s", where, what, span(remaining), expires.date())


_AHEAD_START_WAIT = 5.0  # seconds


class AnchorsAhead:
    """Trust anchors loaded into a fresh client context on a thread of its own, while
    the caller goes on: OpenSSL reads a big truststore's ``cafile`` with the GIL
    released (see :func:`mtls._keyload.load_anchors`), so a first load can parse the
    rest of its profile file meanwhile. :func:`build_client_context` takes the context
    for the very same anchors (``anchored=``) and finishes it; it is never handed out
    otherwise. Any failure leaves nothing to take: the caller then loads the anchors
    itself, and names what OpenSSL refuses.

    Everything that needs the GIL (the context, the PEM text and its memfd) is made by
    the caller, which then waits only until the thread is inside OpenSSL: a thread
    that asked for the GIL again and again while the caller parsed would wait up to
    the interpreter's switch interval (5 ms) each time.

    Raises:
        OSError: no descriptor or memory for the memory file, or no thread to start.
    """

    def __init__(self, anchors_der: Sequence[bytes]) -> None:
        self.anchors = tuple(anchors_der)
        self._ctx: ssl.SSLContext | None = None
        with openssl_work():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        fd = _keyload.anchors_memfd(self.anchors)
        inside = threading.Event()

        def load() -> None:
            try:
                inside.set()  # the caller goes on once this thread releases the GIL
                with openssl_work():
                    ctx.load_verify_locations(cafile=_keyload.memfd_path(fd))
            except Exception:
                return
            finally:
                os.close(fd)
            self._ctx = ctx

        self._thread = threading.Thread(target=load, name="mtls-anchors", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            os.close(fd)
            raise
        # Set as the thread's first step; the bound only guards what cannot happen.
        inside.wait(_AHEAD_START_WAIT)

    def close(self) -> None:
        """Wait for the thread, and drop a context nobody took: no thread of ours, nor
        its memory file, outlives the load that started it (a process that forks
        right after, a pre-forking server, must not copy a thread inside OpenSSL)."""
        self._thread.join()
        self._ctx = None

    def take(self, anchors_der: Sequence[bytes]) -> ssl.SSLContext | None:
        """The context with ``anchors_der`` loaded (waiting for the thread), once; else
        ``None`` (other anchors, a failure, or taken already)."""
        if anchors_der is not self.anchors and tuple(anchors_der) != self.anchors:
            return None
        self._thread.join()
        ctx, self._ctx = self._ctx, None
        return ctx


@scrub_tracebacks
def client_context(
    keystore: Keystore | None = None,
    truststore: Truststore | None = None,
    *,
    alias: str | None = None,
    hostname_verifier: HostnameVerifier | str = "Strict",
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
    verify: bool = True,
    crls: CRLSet | None = None,
    crl_check: CRLCheck = "leaf",
    revocation: RevocationPolicy | RevocationChecker | None = None,
) -> ssl.SSLContext:
    """A client-side ``ssl.SSLContext`` for mutual TLS, with Java trust semantics.

    Args:
        keystore: our identity (the client certificate). ``None``: no client certificate.
        truststore: the anchors that vouch for servers. ``None``: the system's trust.
            Every certificate in it is an anchor (``VERIFY_X509_PARTIAL_CHAIN``).
        alias: the key entry to present when the keystore holds several.
        hostname_verifier: ``Strict`` or ``Default`` (OpenSSL's RFC 6125 check, with
            the CN consulted only when the certificate has no DNS SAN, as in Java),
            ``DefaultAndLocalhost`` (the same here; :class:`SSLProfileSet` exempts the
            localhost names per host), ``AllowAll`` (no name check; the chain is still
            verified). Case-insensitive.
        minimum_version: the lowest TLS version offered (TLS 1.2 by default).
        ciphers: an OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites are not affected).
        verify: ``False`` turns certificate verification off entirely, as WSO2's
            ``novalidatecert="true"`` does (revocation included). Never the default.
        crls: certificate revocation lists (:class:`mtls.CRLSet`) checked during the
            handshake. Each must be current and signed by a certificate of the
            truststore. OpenSSL then requires a CRL for every certificate it checks.
        crl_check: ``"leaf"`` checks the server's certificate against ``crls``;
            ``"chain"`` checks every certificate of the chain.
        revocation: check the server's chain online (OCSP, then CRL distribution
            points) after each handshake, before any request byte: a
            :class:`mtls.RevocationPolicy` (a new cache) or a shared
            :class:`mtls.RevocationChecker`.

    Returns:
        A new context. It is not referenced anywhere else, and this library never
        changes it after returning it. It offers TLS 1.3 post-handshake
        authentication (as urllib3's and httpx's contexts do), so a server that asks
        for the client certificate after the handshake receives it.

    Raises:
        ValueError: an unknown ``hostname_verifier`` or ``crl_check``, or ``crls``
            with ``verify=False``; ``ciphers`` that select no cipher this OpenSSL has
            (also an ``ssl.SSLError``, as OpenSSL's refusal was).
        CRLError: a CRL is expired or not signed by a certificate of the truststore,
            or has a critical extension OpenSSL refuses; ``crls`` is empty.
        KeyEntryError: no key entry, several and no ``alias``, or a key that does not
            match its certificate.
        KeystoreFormatError: an empty truststore, or a certificate OpenSSL refuses.
        TypeError: a ``keystore`` or ``truststore`` that is not a store (a path: load
            it first with ``Keystore.load`` / ``Truststore.load``).
    """
    return build_client_context(
        keystore,
        truststore,
        alias=alias,
        hostname_verifier=hostname_verifier,
        minimum_version=minimum_version,
        ciphers=ciphers,
        verify=verify,
        crls=crls,
        crl_check=crl_check,
        revocation=revocation,
    )


class _CiphersRefused(ssl.SSLError, ValueError):
    """A ``ciphers=`` argument that selects nothing: an ``ssl.SSLError`` (what OpenSSL's
    refusal always was, and what callers catch) and a ``ValueError`` (an argument's
    error, as docs/exceptions.md says of them). Printed as its words (an ``SSLError``
    of one argument prints as a tuple)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _set_ciphers(ctx: ssl.SSLContext, ciphers: str) -> None:
    """``ctx.set_ciphers``, with OpenSSL's "No cipher can be selected." in words (an
    ``ssl.SSLError`` still, and a ``ValueError``)."""
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError as exc:
        openssl = exc.strerror or (exc.args[-1] if exc.args else exc)
        said = _CiphersRefused(
            f"ciphers {ciphers!r} selects no cipher this OpenSSL has (TLS 1.2 names in "
            "OpenSSL's spelling, such as 'ECDHE+AESGCM'; see `openssl ciphers -v`): TLS 1.3 "
            f"suites are not set here (OpenSSL: {openssl})",
        )
        for name in ("reason", "library"):  # where OpenSSL gave them, kept
            if hasattr(exc, name):
                setattr(said, name, getattr(exc, name))
        raise said from exc


@scrub_tracebacks
@forks_wait  # OpenSSL's locks: see mtls._fork.OPENSSL_WORK
def build_client_context(
    keystore: Keystore | None = None,
    truststore: Truststore | None = None,
    *,
    alias: str | None = None,
    hostname_verifier: HostnameVerifier | str = "Strict",
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
    verify: bool = True,
    crls: CRLSet | None = None,
    crl_check: CRLCheck = "leaf",
    revocation: RevocationPolicy | RevocationChecker | None = None,
    anchored: ssl.SSLContext | None = None,
    warn_expiry: WarnExpiry = EXPIRY_WARNINGS,
) -> ssl.SSLContext:
    """:func:`client_context`, finishing ``anchored`` when given: a fresh client
    context whose only change is ``truststore``'s anchors, loaded already
    (:class:`AnchorsAhead`). ``warn_expiry``: how close to its end the identity (or
    an intermediate sent with it) is warned about (a profile set's widest expiry
    threshold); ``None``: not at all."""
    _check_stores(keystore, truststore, "client_context")
    check_flag("verify", verify)
    check_crl_check(crl_check)
    mode = normalize_hostname_verifier(hostname_verifier)
    if not verify or truststore is None:
        anchored = None  # nothing of a truststore to take
    # PROTOCOL_TLS_CLIENT: negotiates the highest version both sides have, and starts
    # with CERT_REQUIRED and check_hostname on.
    ctx = anchored if anchored is not None else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Explicit floor: TLS 1.0/1.1 are deprecated (RFC 8996), whatever the system policy says.
    ctx.minimum_version = minimum_version
    if ciphers is not None:
        _set_ciphers(ctx, ciphers)
    if verify:
        _trust(ctx, truststore, anchored=anchored is not None)
        # verify_mode before check_hostname: OpenSSL refuses a name check without
        # verification, and Python raises if the order is reversed.
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = mode != "AllowAll"
        # Java's verifiers fall back to the CN when there is no DNS SAN; keytool's
        # -genkeypair makes exactly such certificates. OpenSSL still ignores the CN
        # whenever a DNS SAN exists.
        ctx.hostname_checks_common_name = True
        _revocation(ctx, truststore, crls, crl_check, revocation)
    else:
        if crls:
            raise ValueError("crls need verification: they cannot be used with verify=False")
        # novalidatecert: the caller asked for no verification at all.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if keystore is not None:
        _identity(ctx, keystore, alias, warn_expiry=warn_expiry)
    # TLS 1.3 post-handshake authentication: a server that asks for the certificate
    # only for some paths (Apache httpd's per-location SSLVerifyClient) asks after the
    # handshake, and only of a client that offered it. urllib3 and httpx offer it on
    # every client context they make; offering it costs nothing when never asked.
    # (WSO2's JDK client does not offer it; there such a backend sees no certificate.)
    if ctx.post_handshake_auth is not None:
        ctx.post_handshake_auth = True
    _keylog(ctx)
    return ctx


@scrub_tracebacks
@forks_wait  # OpenSSL's locks: see mtls._fork.OPENSSL_WORK
def server_context(
    keystore: Keystore,
    truststore: Truststore | None = None,
    *,
    require_client_cert: bool = True,
    trust_system_cas: bool = False,
    alias: str | None = None,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
    crls: CRLSet | None = None,
    crl_check: CRLCheck = "leaf",
) -> ssl.SSLContext:
    """A server-side ``ssl.SSLContext`` that asks clients for a certificate.

    This is the backend half of the mutual-TLS hop: a Python backend that demands
    the gateway's certificate, trusted through ``backend-truststore.jks``.

    A truststore is required. The system's trust store holds public CAs, which issue
    certificates to anyone for any name they control: trusting them for *client*
    certificates would let any holder of a public certificate through client
    authentication. Pass ``trust_system_cas=True`` only if that is really meant
    (for example a server that checks the client's identity itself after the
    handshake).

    Args:
        keystore: the server's identity.
        truststore: anchors for client certificates (Java semantics, as in
            :func:`client_context`). Required unless ``trust_system_cas`` is true.
        require_client_cert: ``True`` refuses clients without a trusted certificate;
            ``False`` asks for one and verifies it when sent, but lets clients in
            without one.
        trust_system_cas: with no ``truststore``, verify client certificates against
            the system's public CAs. Off by default, for the reason above.
        alias: the key entry to serve when the keystore holds several.
        minimum_version: the lowest TLS version accepted.
        ciphers: an OpenSSL cipher string for TLS 1.2. It must hold suites the
            key can sign in (ECDSA suites for an EC or EdDSA key, RSA suites for an
            RSA key): without one, TLS 1.2 clients are refused, which is logged as a
            warning (TLS 1.3 clients are served; its suites do not depend on the key).
        crls: revocation lists for client certificates, checked during the
            handshake (as in :func:`client_context`).
        crl_check: ``"leaf"`` or ``"chain"``.

    Returns:
        A new context, never changed by this library after it is returned.

    Raises:
        ValueError: no ``truststore`` and ``trust_system_cas`` is false, or both given.
        ssl.SSLError: ``ciphers`` selects no cipher this OpenSSL has.
        CRLError: a CRL is expired or not signed by a certificate of the truststore,
            or has a critical extension OpenSSL refuses; ``crls`` is empty.
        KeyEntryError: no usable key entry; or ``ciphers`` has no suite the key can
            sign in and the context allows no TLS 1.3 (a DSA key, or an EC key on a
            curve TLS 1.3 has no scheme for): it could complete no handshake.
        KeystoreFormatError: an empty truststore, or a certificate OpenSSL refuses.
        TypeError: a ``keystore`` or ``truststore`` that is not a store (a path: load
            it first with ``Keystore.load`` / ``Truststore.load``).
    """
    return build_server_context(
        keystore,
        truststore,
        require_client_cert=require_client_cert,
        trust_system_cas=trust_system_cas,
        alias=alias,
        minimum_version=minimum_version,
        ciphers=ciphers,
        crls=crls,
        crl_check=crl_check,
    )


@forks_wait  # OpenSSL's locks: a RotatingServerContext rebuilds on its own thread (h141)
def build_server_context(
    keystore: Keystore,
    truststore: Truststore | None = None,
    *,
    require_client_cert: bool = True,
    trust_system_cas: bool = False,
    alias: str | None = None,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
    crls: CRLSet | None = None,
    crl_check: CRLCheck = "leaf",
    warn_expiry: WarnExpiry = EXPIRY_WARNINGS,
) -> ssl.SSLContext:
    """:func:`server_context`, with ``warn_expiry`` as :func:`build_client_context`
    takes it (a rotating server's widest expiry threshold; ``None``: not at all)."""
    if keystore is None:
        raise TypeError("server_context needs a keystore: the server's certificate and key")
    _check_stores(keystore, truststore, "server_context")
    check_flag("require_client_cert", require_client_cert)
    check_flag("trust_system_cas", trust_system_cas)
    check_crl_check(crl_check)
    if truststore is None and not trust_system_cas:
        raise ValueError(
            "server_context needs a truststore: without one, client certificates would be "
            "verified against the system's public CAs, which vouch for anyone. Pass the "
            "truststore that holds the clients' CA, or trust_system_cas=True if that is meant"
        )
    if truststore is not None and trust_system_cas:
        raise ValueError("give a truststore or trust_system_cas=True, not both")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum_version
    if ciphers is not None:
        _set_ciphers(ctx, ciphers)
    _identity(ctx, keystore, alias, server=True, ciphers=ciphers, warn_expiry=warn_expiry)
    _trust(ctx, truststore)
    # CERT_REQUIRED makes OpenSSL send a CertificateRequest and abort the handshake
    # when the client sends nothing; CERT_OPTIONAL asks but lets it through.
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    _revocation(ctx, truststore, crls, crl_check, None)
    # Java's check of the client certificate that OpenSSL's does not make (its key
    # usage must allow signing): mtls/_admission.py.
    _admission.install(ctx, truststore.anchors_der if truststore is not None else ())
    # The check above runs once per connection: no client renegotiates to another
    # certificate (OpenSSL 3 refuses it by default; other builds may not, h266).
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    _keylog(ctx)
    return ctx


# Public as mtls.X: reprs, tracebacks and pickles say so however they were
# imported (mtls/__init__.py loads them on first use).
for _public in (client_context, server_context):
    _public.__module__ = "mtls"
del _public
