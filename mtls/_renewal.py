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

import base64
import os
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from . import _x509
from ._entries import KeyEntry, where
from ._errors import KeyEntryError, KeystoreFormatError
from ._files import read_input
from ._keygen import keytool_digest, parse_dname, parse_sans

#: How many certificates a chain may have: a loop guard (real chains have 2 to 5).
MAX_CHAIN = 16

_CERT_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE")


def certificate_request(
    entry: KeyEntry,
    *,
    subject: str | x509.Name | None,
    san: Iterable[str] | None,
    path: str | None,
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for ``entry``'s key, signed by it: the subject and subject
    alternative names of the entry's certificate unless ``subject``/``san`` say others.

    Raises:
        KeyEntryError: the key was not decrypted, or cannot sign (a key type
            cryptography does not read).
        ValueError: a malformed ``subject`` or ``san``.
    """
    if not entry.key_der:
        raise KeyEntryError(
            f"{where(path)}: the key of {entry.alias!r} was not decrypted (the store was "
            "inspected): load it with Keystore.load and the key password to sign a request",
            path=path,
            alias=entry.alias,
        )
    try:
        key = serialization.load_der_private_key(entry.key_der, None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyEntryError(
            f"{where(path)}: the key of {entry.alias!r} cannot sign a request here "
            f"({type(exc).__name__}): make the request with keytool -certreq",
            path=path,
            alias=entry.alias,
        ) from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | dsa.DSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise KeyEntryError(
            f"{where(path)}: the key of {entry.alias!r} ({type(key).__name__}) cannot sign",
            path=path,
            alias=entry.alias,
        )
    leaf = _x509.load_cert(entry.chain_der[0])
    name = parse_dname(subject) if subject is not None else leaf.subject
    names = parse_sans(san) if san is not None else _current_names(leaf)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, _digest(key))


def _current_names(leaf: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _digest(
    key: rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey,
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """keytool's signature digest for ``key`` (SHA-256 for DSA; none for EdDSA)."""
    if isinstance(key, dsa.DSAPrivateKey):
        return hashes.SHA256()
    if isinstance(key, ed448.Ed448PrivateKey):
        return None
    return keytool_digest(key)


# --------------------------------------------------------------------------- replies


def reply_certificates(
    reply: bytes | os.PathLike[str] | Sequence[x509.Certificate | bytes],
) -> tuple[list[bytes], str | None]:
    """The certificates of a CA's reply as DER, duplicates dropped, and the file they
    came from (None for bytes or certificates given in memory).

    Raises:
        KeystoreFormatError: the bytes hold no certificate (a key, a keystore, junk).
        KeystoreError: the file cannot be read (:class:`KeystoreNotFoundError` when
            it does not exist).
        TypeError: ``reply`` is a ``str`` (a path must be a ``Path``), or a sequence of
            something other than certificates.
    """
    if isinstance(reply, str):
        raise TypeError("reply: pass the file as a pathlib.Path, or its bytes (not a str)")
    path: str | None = None
    if isinstance(reply, os.PathLike):
        path = os.fspath(reply)
        try:
            data = read_input(path)
        except OSError as exc:
            from ._readers import open_error  # noqa: PLC0415 - renewal only

            raise open_error(exc, path, role="reply") from None
        ders = certificates_in(data, path=path)
    elif isinstance(reply, bytes | bytearray | memoryview):
        ders = certificates_in(bytes(reply), path=None)
    else:
        ders = []
        for item in reply:
            if isinstance(item, x509.Certificate):
                ders.append(item.public_bytes(serialization.Encoding.DER))
            elif isinstance(item, bytes):
                ders.extend(certificates_in(item, path=None))
            else:
                raise TypeError(f"reply: certificates or their bytes, not {type(item).__name__}")
    return list(dict.fromkeys(ders)), path


def certificates_in(data: bytes, *, path: str | None) -> list[bytes]:
    """Every certificate of a PEM file (``CERTIFICATE`` and ``PKCS7`` blocks), one DER
    certificate, or a DER PKCS#7 bundle, as DER, in file order.

    Raises:
        KeystoreFormatError: no certificate in it.
    """
    source = path if path is not None else "the reply"
    if b"-----BEGIN" in data:
        found: list[bytes] = []
        for block in _pem_certificate_blocks(data):
            found.extend(_decoded(block, source, path))
        if found:
            return found
    else:
        try:
            _x509.load_cert(data)
        except ValueError:
            found = _x509.pkcs7_certificates(data, pem=False)
            if found:
                return found
        else:
            return [data]
    fix = (
        "a private key is not a reply: pass the CA's certificate file"
        if b"PRIVATE KEY-----" in data
        else "expected the CA's reply: PEM or DER certificates, or a PKCS#7 bundle (.p7b)"
    )
    raise KeystoreFormatError(f"{source}: no certificate found: {fix}", path=path)


def _pem_certificate_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(label, block)`` of each certificate or PKCS#7 block, in file order."""
    blocks = [
        (label, block)
        for label in (*_CERT_LABELS, b"PKCS7")
        for block in _x509.pem_blocks(data, label)
    ]
    return sorted(blocks, key=lambda item: data.find(item[1]))


def _decoded(item: tuple[bytes, bytes], source: str, path: str | None) -> list[bytes]:
    label, block = item
    if label in _CERT_LABELS:
        body = b"".join(block.splitlines()[1:-1])
        try:
            der = base64.b64decode(body, validate=True)
            _x509.load_cert(der)
        except ValueError as exc:
            raise KeystoreFormatError(
                f"{source}: a CERTIFICATE block cannot be read ({exc}): fix the file",
                path=path,
            ) from None
        return [der]
    found = _x509.pkcs7_certificates(block, pem=True)
    if not found:
        raise KeystoreFormatError(
            f"{source}: a PKCS7 block holds no certificate that can be read: ask the CA "
            "for the certificate chain (PEM or .p7b)",
            path=path,
        )
    return found


def reply_chain(
    entry: KeyEntry,
    reply: Sequence[bytes],
    trusted: Sequence[bytes],
    *,
    path: str | None,
    reply_path: str | None,
) -> tuple[bytes, ...]:
    """``entry``'s new chain from a CA's ``reply``: the reply's certificate of the
    entry's key first, then each certificate's issuer from the reply, then from
    ``trusted`` (as keytool completes a chain from the keystore and ``cacerts``), up to a
    self-signed root or the last issuer found. Each link's signature is checked.

    Raises:
        KeyEntryError: no certificate in the reply is for the entry's key; a lone
            certificate whose issuer is nowhere to be found (keytool's "Failed to
            establish chain from reply"); certificates in the reply that are not on the
            chain; a chain longer than :data:`MAX_CHAIN`.
    """
    store, alias = where(path), entry.alias
    source = reply_path if reply_path is not None else "the reply"
    current = _x509.load_cert(entry.chain_der[0]).public_key()
    leaf_der = next((der for der in reply if _same_key(der, current)), None)
    if leaf_der is None:
        raise KeyEntryError(
            f"{source}: none of its {len(reply)} certificate(s) is for the key of "
            f"{alias!r} in {store} (the public keys differ): the request was made from "
            f"another key or keystore; make a new one from this entry (mtls certreq "
            f"--alias {alias})",
            path=path,
            alias=alias,
        )
    if entry.key_der:
        from ._readers import key_matches  # noqa: PLC0415 - a second guard, keys only

        if key_matches(entry.key_der, leaf_der) is False:  # the chain was not the key's
            raise KeyEntryError(
                f"{store}: the key of {alias!r} is not the one its certificate and the "
                "reply certify: fix the entry first",
                path=path,
                alias=alias,
            )
    chain = [leaf_der]
    pool = [der for der in reply if der != leaf_der]
    extra = [der for der in dict.fromkeys(trusted) if der not in reply]
    while not _self_signed(chain[-1]):
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
    if pool:
        names = "; ".join(_subject(der) for der in pool)
        raise KeyEntryError(
            f"{source}: holds certificates that are not on the chain of {alias!r}'s new "
            f"certificate ({names}): it is not this key's reply, or a link between them is "
            "missing; ask the CA for the certificate chain",
            path=path,
            alias=alias,
        )
    if len(chain) == 1 and not _self_signed(leaf_der):
        issuer_name = _x509.load_cert(leaf_der).issuer.rfc4514_string()
        raise KeyEntryError(
            f"{source}: the certificate's issuer ({issuer_name}) is neither in the reply "
            f"nor among the trusted certificates, so no chain can be built (keytool: "
            '"Failed to establish chain from reply"): put the CA\'s certificates in the '
            "reply, or pass them (mtls import --ca FILE; trust= in Python)",
            path=path,
            alias=alias,
        )
    return tuple(chain)


def _same_key(der: bytes, public_key: object) -> bool:
    try:
        return bool(_x509.load_cert(der).public_key() == public_key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _self_signed(der: bytes) -> bool:
    cert = _x509.load_cert(der)
    return cert.subject == cert.issuer and _signed_by(cert, cert)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _issuer_in(der: bytes, candidates: Iterable[bytes]) -> bytes | None:
    """The first of ``candidates`` named as ``der``'s issuer whose key signed it."""
    cert = _x509.load_cert(der)
    for candidate in candidates:
        other = _x509.load_cert(candidate)
        if other.subject == cert.issuer and _signed_by(cert, other):
            return candidate
    return None


def _subject(der: bytes) -> str:
    return _x509.load_cert(der).subject.rfc4514_string() or "(empty subject)"
