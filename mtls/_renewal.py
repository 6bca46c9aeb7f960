"""Renewing a key entry's certificate, as keytool does it: a certificate request signed
by the entry's key (``keytool -certreq``), and the CA's reply installed as the entry's
chain with the key kept (``keytool -importcert`` on a key entry's alias).

A reply is what CAs hand back: a PEM file of one or more certificates, one DER
certificate, or a PKCS#7 bundle (``.p7b``/``.p7c``, PEM or DER, what Active Directory
Certificate Services and many portals send). Its chain is put in order from the
certificate of the entry's key up, each link's signature checked, and completed from
certificates the caller trusts, as keytool completes it from the keystore and
``cacerts``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from . import _dates, _der, _x509
from ._entries import KeyEntry, where
from ._errors import KeyEntryError, KeystoreFormatError
from ._files import read_input
from ._keygen import parse_dname, parse_sans, signature_for
from ._pem import PEM_CERTIFICATE_LABELS, pem_blocks, pem_certificate
from ._readers import (
    bundle_certificates,
    der_certificates,
    is_der_element,
    leading_der_certificates,
    open_error,
)

#: How many certificates a chain may have: a loop guard (real chains have 2 to 5).
MAX_CHAIN = 16
#: How many certificates a reply may hold: CAs send a chain (2 to 5, a few more with
#: cross-signed roots). Each is parsed and may be signature-checked against the others.
MAX_REPLY_CERTIFICATES = 64


def certificate_request(
    entry: KeyEntry,
    *,
    subject: str | x509.Name | None,
    san: Iterable[str] | None,
    path: str | None,
    signature_algorithm: str | None = None,
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for ``entry``'s key, signed by it: the subject and subject
    alternative names of the entry's certificate unless ``subject``/``san`` say others.

    Raises:
        KeyEntryError: the key was not decrypted, cannot sign (a key type cryptography
            does not read), or would be written into the request in another encoding
            than its certificate's (an RSASSA-PSS key: the CA's certificate would then
            not be the entry's); the entry's certificate cannot be read.
        ValueError: a malformed ``subject`` or ``san``; a ``signature_algorithm``
            (a Java name, as :func:`mtls._keygen.signature_for` reads it) that is
            unknown, refused or for another key type.
    """
    key, leaf = signing_key(
        entry, path, task="sign a request", fix="make the request with keytool -certreq"
    )
    name = parse_dname(subject) if subject is not None else leaf.cert.subject
    if san is not None:
        names = parse_sans(san)
    else:
        current = _x509.extension(leaf.cert, x509.SubjectAlternativeName, leaf.der)
        names = list(current) if current is not None else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    digest, rsa_padding = signature_for(signature_algorithm, key)
    return builder.sign(key, digest, rsa_padding=rsa_padding)


SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | _x509.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def signing_key(
    entry: KeyEntry, path: str | None, *, task: str, fix: str
) -> tuple[SigningKey, _Cert]:
    """``entry``'s private key, ready to sign, and its certificate parsed once.

    Raises:
        KeyEntryError: the key was not decrypted, cannot ``task`` here (a key type
            cryptography does not read: ``fix``), or would be written in another
            encoding than its certificate's (an RSASSA-PSS key); the entry's
            certificate cannot be read.
    """
    store, alias = where(path), entry.alias
    if not entry.key_der:
        raise KeyEntryError(
            f"{store}: the key of {alias!r} was not decrypted (the store was inspected): "
            f"load it with Keystore.load and the key password to {task}",
            path=path,
            alias=alias,
        )
    leaf = _entry_certificate(entry, path)
    try:
        key = _x509.load_private_key(entry.key_der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyEntryError(
            f"{store}: the key of {alias!r} cannot {task} here ({type(exc).__name__}): {fix}",
            path=path,
            alias=alias,
        ) from None
    if not isinstance(key, SigningKey):
        raise KeyEntryError(
            f"{store}: the key of {alias!r} ({type(key).__name__}) cannot {task}: {fix}",
            path=path,
            alias=alias,
        )
    asked = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if asked != leaf.spki:
        # cryptography reads an RSASSA-PSS key as plain RSA: what it signs would name
        # a key the certificate does not, and Java refuses it.
        raise KeyEntryError(
            f"{store}: the key of {alias!r} would be written in another form than its "
            f"certificate holds it (an RSASSA-PSS key becomes plain RSA here): {fix}",
            path=path,
            alias=alias,
        )
    return key, leaf


# --------------------------------------------------------------------------- replies


def reply_certificates(
    reply: bytes | os.PathLike[str] | Sequence[x509.Certificate | bytes],
    *,
    role: str = "reply",
) -> tuple[list[bytes], str | None]:
    """The certificates of a CA's reply (or, ``role``, of other certificates given the
    same ways) as DER, duplicates dropped, and the file they came from (None for bytes
    or certificates given in memory).

    Raises:
        KeystoreFormatError: the bytes hold no certificate (a key, a keystore, junk),
            or more than :data:`MAX_REPLY_CERTIFICATES` for a reply.
        KeystoreError: the file cannot be read (:class:`KeystoreNotFoundError` when
            it does not exist).
        TypeError: ``reply`` is a ``str`` (a path must be a ``Path``), or a sequence of
            something other than certificates.
    """
    if isinstance(reply, str):
        raise TypeError(f"{role}: pass the file as a pathlib.Path, or its bytes (not a str)")
    path: str | None = None
    if isinstance(reply, os.PathLike):
        path = os.fspath(reply)
        try:
            data = read_input(path)
        except OSError as exc:
            raise open_error(exc, path, role=role) from None
        ders = certificates_in(data, path=path, role=role)
    elif isinstance(reply, bytes | bytearray | memoryview):
        ders = certificates_in(bytes(reply), path=None, role=role)
    else:
        ders = []
        for item in reply:
            if isinstance(item, x509.Certificate):
                ders.append(item.public_bytes(serialization.Encoding.DER))
            elif isinstance(item, bytes):
                ders.extend(certificates_in(item, path=None, role=role))
            else:
                raise TypeError(f"{role}: certificates or their bytes, not {type(item).__name__}")
    ders = list(dict.fromkeys(ders))
    if role == "reply" and len(ders) > MAX_REPLY_CERTIFICATES:
        raise KeystoreFormatError(
            f"{path or 'the reply'}: {len(ders)} certificates, more than the "
            f"{MAX_REPLY_CERTIFICATES} a CA's reply holds: pass the CA's chain alone",
            path=path,
        )
    return ders, path


def certificates_in(data: bytes, *, path: str | None, role: str = "reply") -> list[bytes]:
    """Every certificate of a PEM file (``CERTIFICATE`` and ``PKCS7`` blocks), DER
    certificates (one, or several end to end), or a DER PKCS#7 bundle, as DER, in file
    order.

    Raises:
        KeystoreFormatError: no certificate in it, or a block that cannot be read.
    """
    source = path if path is not None else f"the {role}"
    found: list[bytes] = []
    # DER first, as the store reader decides: a DER certificate may carry PEM text in
    # an extension, which must not be taken for the file's certificate.
    der = data[:1] == b"\x30"
    if der and (certificates := der_certificates(data)) is not None:
        found.extend(certificates)  # one, or several: keytool -gencert without -rfc
    elif der and _x509.looks_like_pkcs7(data):
        found.extend(_x509.pkcs7_certificates(data, pem=False))
    elif b"-----BEGIN" in data and not is_der_element(data):  # not PEM inside DER
        for label, body, block in pem_blocks(data, source, path):
            if label in PEM_CERTIFICATE_LABELS:
                found.append(pem_certificate(label, body, len(found) + 1, source, path))
            elif label == b"PKCS7":
                found.extend(bundle_certificates(block, pem=True, where=source, path=path))
    if found:
        return found
    binary = not data.isascii() or b"\x00" in data  # a text that starts with "0" is not DER
    if data[:1] == b"\x30" and binary and (b"-----BEGIN" not in data or is_der_element(data)):
        try:
            _der.header(data)
        except _der.DERError:
            raise KeystoreFormatError(
                f"{source}: the file is cut short (its first DER element declares more "
                "bytes than the file holds): ask for the file again",
                path=path,
            ) from None
    leading = leading_der_certificates(data) if data[:1] == b"\x30" else 0
    if leading:
        raise KeystoreFormatError(
            f"{source}: {leading} DER certificate{'s' if leading > 1 else ''}, then bytes "
            "that are not one (the file was cut or something was appended to it): ask for "
            "the file again",
            path=path,
        )
    fix = (
        f"a private key is not {'a reply' if role == 'reply' else 'a certificate'}: pass "
        "the CA's certificate file"
        if b"PRIVATE KEY-----" in data
        else f"expected {'the CA' + chr(39) + 's reply' if role == 'reply' else role}: PEM or "
        "DER certificates, or a PKCS#7 bundle (.p7b)"
    )
    raise KeystoreFormatError(f"{source}: no certificate found: {fix}", path=path)


@dataclass(frozen=True, slots=True, eq=False)
class _Cert:
    """A certificate parsed once: its DER, cryptography's object, and the raw
    encodings of its issuer, subject and public key (compared as bytes, as Java does)."""

    der: bytes
    cert: x509.Certificate
    issuer: bytes
    subject: bytes
    spki: bytes  # the whole SubjectPublicKeyInfo, DER

    @classmethod
    def of(cls, der: bytes) -> _Cert | None:
        """``None`` for a certificate cryptography cannot read, whose public key or
        extensions it cannot (a duplicated extension: Java refuses such a store)."""
        names = _x509.raw_names(der)
        if names is None:
            return None
        try:
            cert = _x509.load_cert(der)
            _x509.public_key(cert)  # a point off its curve, a key type cryptography lacks
        except (ValueError, UnsupportedAlgorithm):
            return None
        if _x509.extensions_unreadable(cert, der):
            return None
        return cls(der, cert, names[0], names[1], _der.encode(_der.SEQUENCE, names[2]))

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer and _signed_by(self, self)

    @property
    def shown(self) -> str:
        return _x509.subject_text(self.cert)


def _entry_certificate(entry: KeyEntry, path: str | None) -> _Cert:
    leaf = _Cert.of(entry.chain_der[0])
    if leaf is None:
        raise KeyEntryError(
            f"{where(path)}: the certificate of {entry.alias!r} cannot be read by "
            "cryptography (a field or extension it refuses): renew it with keytool "
            "(-certreq, -importcert)",
            path=path,
            alias=entry.alias,
        )
    return leaf


def reply_chain(
    entry: KeyEntry,
    reply: Sequence[bytes],
    trusted: Sequence[bytes],
    *,
    path: str | None,
    reply_path: str | None,
) -> tuple[bytes, ...]:
    """``entry``'s new chain from a CA's ``reply``: the reply's certificate of the
    entry's key first (its public key the same bytes as the current certificate's, as
    keytool requires), then each certificate's issuer from the reply, then from
    ``trusted`` (as keytool completes a chain from the keystore and ``cacerts``), up
    to a self-signed root or the last issuer found. Each link's signature is checked.
    Certificates of the reply off the chain that belong with it (a CA's cross-signed
    twin, another issuer of a certificate on it) are left out; others are refused.

    Raises:
        KeyEntryError: the entry's certificate cannot be read; no certificate in the
            reply is for the entry's key; a lone certificate whose issuer is nowhere to
            be found (keytool's "Failed to establish chain from reply"); certificates in
            the reply that are not on the chain; a chain longer than :data:`MAX_CHAIN`.
        KeystoreFormatError: a certificate of the reply cryptography cannot read.
    """
    store, alias = where(path), entry.alias
    source = reply_path if reply_path is not None else "the reply"
    current = _entry_certificate(entry, path)
    parsed: list[_Cert] = []
    for number, der in enumerate(reply, 1):
        item = _Cert.of(der)
        if item is None:
            raise KeystoreFormatError(
                f"{source}: certificate {number} cannot be read by cryptography (a field "
                "or extension it refuses, or a duplicated extension, which Java refuses "
                "too): ask the CA for it again, or install the reply with keytool "
                "-importcert",
                path=reply_path,
            )
        parsed.append(item)
    leaf = _reply_leaf(current, parsed, alias=alias, store=store, source=source, path=path)
    chain = [leaf]
    pool = [item for item in parsed if item is not leaf and item.spki != leaf.spki]
    extra = [item for item in map(_Cert.of, dict.fromkeys(trusted)) if item is not None]
    while not chain[-1].self_signed:
        if len(chain) >= MAX_CHAIN:
            raise KeyEntryError(
                f"{source}: the chain is longer than {MAX_CHAIN} certificates: check the file",
                path=path,
                alias=alias,
            )
        issuer = _issuer_in(chain[-1], pool)
        if issuer is not None:
            pool.remove(issuer)
        else:
            issuer = _issuer_in(chain[-1], extra)
            if issuer is None:
                break
            extra.remove(issuer)
        chain.append(issuer)
    strangers = [item for item in pool if not _belongs(item, chain)]
    if strangers:
        names = "; ".join(item.shown for item in strangers)
        raise KeyEntryError(
            f"{source}: holds certificates that are not on the chain of {alias!r}'s new "
            f"certificate ({names}): it is not this key's reply, or a link between them is "
            "missing; ask the CA for the certificate chain",
            path=path,
            alias=alias,
        )
    if len(chain) == 1 and not leaf.self_signed:
        raise KeyEntryError(
            f"{source}: the certificate's issuer ({leaf.cert.issuer.rfc4514_string()}) is "
            "neither in the reply nor among the store's certificates, so no chain can be "
            'built (keytool: "Failed to establish chain from reply"): put the CA\'s '
            "certificates in the reply, or pass them (mtls import --ca FILE; trust= in "
            "Python)",
            path=path,
            alias=alias,
        )
    return tuple(item.der for item in chain)


def _reply_leaf(
    current: _Cert, parsed: list[_Cert], *, alias: str, store: str, source: str, path: str | None
) -> _Cert:
    """The reply's certificate for the entry's key: one other than the entry's own
    certificate and not self-signed first (a reply may carry the old one along)."""
    same = [item for item in parsed if item.spki == current.spki]
    if same:
        return min(same, key=lambda item: (item.der == current.der, item.self_signed))
    current_key = _x509.public_key(current.cert)
    if any(_x509.public_key(item.cert) == current_key for item in parsed):
        raise KeyEntryError(
            f"{source}: certifies the key of {alias!r} in another encoding than its "
            f"certificate in {store} holds it (a compressed EC point, or RSASSA-PSS "
            "parameters dropped), which Java refuses to pair with the key: ask the CA to "
            "issue it with the request's key as sent",
            path=path,
            alias=alias,
        )
    raise KeyEntryError(
        f"{source}: none of its {len(parsed)} certificate(s) is for the key of {alias!r} "
        f"in {store} (the public keys differ): the request was made from another key or "
        f"keystore; make a new one from this entry (mtls certreq --alias {shlex.quote(alias)})",
        path=path,
        alias=alias,
    )


def _belongs(item: _Cert, chain: list[_Cert]) -> bool:
    """Whether a certificate left out of the chain goes with it: a twin of a certificate
    on it (the same subject and key: a CA cross-signed as well as self-signed), or
    another issuer of one (the same CA's name and key under another issuer)."""
    return any(
        (item.subject == link.subject and item.spki == link.spki)
        or (item.subject == link.issuer and _signed_by(link, item))
        for link in chain
    )


def _signed_by(cert: _Cert, issuer: _Cert) -> bool:
    try:
        _x509.verify_issued_by(cert.cert, issuer.cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _issuer_in(item: _Cert, candidates: Iterable[_Cert]) -> _Cert | None:
    """The first of ``candidates`` named as ``item``'s issuer (the same bytes, else the
    same name once normalised) whose key signed it: the first valid now, when one is (a
    CA's renewed certificate over its expired one of the same key)."""
    named = [other for other in candidates if other.subject == item.issuer]
    if not named:
        issuer_name = item.cert.issuer
        named = [other for other in candidates if _x509.same_name(other.cert.subject, issuer_name)]
    signers = [other for other in named if _signed_by(item, other)]
    now = _dt.datetime.now(_dt.UTC)
    current = (
        other
        for other in signers
        if _dates.not_before(other.cert) <= now <= _dates.not_after(other.cert)
    )
    return next(current, signers[0] if signers else None)
