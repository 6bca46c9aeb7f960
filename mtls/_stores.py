"""Keystore and Truststore: every Java store format in, keytool-readable stores out.

Format is decided by content, never by file name or declared type (DESIGN 2):

====================  ==========================================================
JKS                   magic ``FE ED FE ED``
JCEKS                 magic ``CE CE CE CE``
PKCS#12               DER ``SEQUENCE { INTEGER 3, ContentInfo ... }``
PEM                   ``-----BEGIN`` anywhere (text before it is allowed)
DER certificate       one X.509 certificate (what ``keytool -exportcert`` writes)
====================  ==========================================================

Certificates are held as DER (what OpenSSL consumes) and private keys as PKCS#8
DER, never parsed by cryptography on the way to a context. Every foreign
exception is translated here, at the boundary where bytes become a store.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from . import _der, _jks, _pkcs12, _x509
from ._errors import (
    KeyEntryError,
    KeystoreError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    WrongPasswordError,
)
from ._files import atomic_write, default_mode
from ._secret import Secret, reveal

log = logging.getLogger("mtls")

StoreType = Literal["JKS", "JCEKS", "PKCS12", "PEM", "DER"]
Password = str | Secret
_WRITABLE = ("JKS", "PKCS12", "PEM")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_PKCS12_KDF_ROUNDS = 10_000  # what keytool uses since JDK 12


# --------------------------------------------------------------------------- detection


def detect_format(data: bytes) -> StoreType:
    """Name the store format of ``data`` from its bytes alone.

    Raises:
        KeystoreFormatError: empty, or no known format.
    """
    if not data:
        raise KeystoreFormatError("the store is empty")
    if data[:4] == b"\xfe\xed\xfe\xed":
        return "JKS"
    if data[:4] == b"\xce\xce\xce\xce":
        return "JCEKS"
    if data[:1] == b"\x30":
        if _pkcs12.looks_like_pkcs12(data):
            return "PKCS12"
        if _looks_like_der_certificate(data):
            return "DER"
    if b"-----BEGIN " in data:  # anywhere: `openssl x509 -text` puts text first
        return "PEM"
    raise KeystoreFormatError(
        "not a keystore: the bytes are not JKS, JCEKS, PKCS#12, PEM or a DER certificate"
    )


def _looks_like_der_certificate(data: bytes) -> bool:
    try:
        outer = _der.read_single(data, _der.SEQUENCE).children()
        return len(outer) == 3 and outer[0].tag == _der.SEQUENCE
    except _der.DERError:
        return False


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    alias: str
    key_der: bytes = field(repr=False)  # PKCS#8 PrivateKeyInfo, plaintext, in memory only
    chain_der: tuple[bytes, ...]  # leaf first


def _fold(alias: str) -> str:
    # Java treats aliases case-insensitively (JKS stores them lower-cased).
    return alias.casefold()


class _Entries:
    """Alias-ordered entries shared by Keystore and Truststore."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyEntry] = {}
        self._certs: dict[str, tuple[str, bytes]] = {}  # folded alias -> (alias, DER)

    def add_key(self, entry: _KeyEntry, *, replace: bool = False) -> None:
        self._check_free(entry.alias, replace)
        self._keys[_fold(entry.alias)] = entry

    def add_cert(self, alias: str, der: bytes, *, replace: bool = False) -> None:
        self._check_free(alias, replace)
        self._certs[_fold(alias)] = (alias, der)

    def _check_free(self, alias: str, replace: bool) -> None:
        if not alias:
            raise ValueError("an alias must not be empty")
        folded = _fold(alias)
        if folded in self._keys or folded in self._certs:
            if not replace:
                raise KeyEntryError(
                    f"alias {alias!r} already exists: choose another alias or replace it",
                    alias=alias,
                )
            self._keys.pop(folded, None)
            self._certs.pop(folded, None)

    def remove(self, alias: str) -> None:
        folded = _fold(alias)
        if self._keys.pop(folded, None) is None and self._certs.pop(folded, None) is None:
            raise KeyEntryError(f"no entry with alias {alias!r}", alias=alias)


def _unique_alias(base: str, taken: set[str]) -> str:
    alias, n = base, 1
    while _fold(alias) in taken:
        n += 1
        alias = f"{base}-{n}"
    taken.add(_fold(alias))
    return alias


def _alias_for(der: bytes, taken: set[str], fallback: str) -> str:
    # PEM and DER have no aliases: name the entry after its CN, as people do by hand.
    try:
        cn = _x509.common_name(_x509.load_cert(der))
    except ValueError:
        cn = None
    base = re.sub(r"[^a-z0-9._-]+", "-", (cn or fallback).lower()).strip("-") or fallback
    return _unique_alias(base, taken)


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class _Parsed:
    store_type: StoreType
    keys: list[_KeyEntry]
    certs: list[tuple[str, bytes]]  # trusted-certificate entries
    loose: list[bytes]  # certificates that are neither (PKCS#12 bags without a role)


def _read_path(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise KeystoreNotFoundError(
            f"{os.fspath(path)}: no such file: check the path (relative paths start "
            f"from {os.getcwd()})",
            path=path,
        ) from exc
    except IsADirectoryError as exc:
        raise KeystoreError(f"{os.fspath(path)} is a directory, not a store", path=path) from exc
    except OSError as exc:
        raise KeystoreError(
            f"{os.fspath(path)}: cannot read the store ({exc.strerror}): check its permissions",
            path=path,
        ) from exc


def _where(path: str | os.PathLike[str] | None) -> str:
    return os.fspath(path) if path is not None else "the store"


def _parse(
    data: bytes,
    password: str | None,
    key_password: str | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
    declared: str | None,
) -> _Parsed:
    where = _where(path)
    try:
        fmt = detect_format(data)
    except KeystoreFormatError as exc:
        hint = f" (declared {declared})" if declared else ""
        raise KeystoreFormatError(f"{where}: {exc}{hint}", path=path) from None
    if declared and _declared_mismatch(declared, fmt):
        # Accepted, as Java does since JDK 9: a .jks made by a modern keytool is PKCS#12.
        log.debug("%s: declared type %s, content is %s; using the content", where, declared, fmt)
    if fmt in ("JKS", "JCEKS"):
        return _parse_jks(data, password, key_password, with_keys=with_keys, path=path)
    if fmt == "PKCS12":
        return _parse_pkcs12(data, password, key_password, with_keys=with_keys, path=path)
    if fmt == "PEM":
        return _parse_pem(data, password, key_password, with_keys=with_keys, path=path)
    return _Parsed("DER", [], [(_alias_for(data, set(), "cert"), data)], [])


def _declared_mismatch(declared: str, fmt: str) -> bool:
    norm = declared.upper().replace("#", "").replace("-", "")
    return norm not in (fmt, "PKCS12" if fmt == "PKCS12" else fmt)


def _parse_jks(
    data: bytes,
    password: str | None,
    key_password: str | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
) -> _Parsed:
    where = _where(path)
    try:
        contents = _jks.parse_store(data, password)
    except _jks.JKSFormatError as exc:
        raise KeystoreFormatError(
            f"{where}: damaged or truncated JKS/JCEKS store: replace the file", path=path
        ) from exc
    except _jks.JKSIntegrityError as exc:
        raise _jks_integrity_error(data, password, path) from exc
    keys: list[_KeyEntry] = []
    if with_keys:
        secret = key_password if key_password is not None else password
        keys = [_decrypt_jks_key(k, secret, key_password is not None, path) for k in contents.keys]
    else:
        keys = [_KeyEntry(k.alias, b"", k.chain_der) for k in contents.keys]
    if contents.secret_aliases:
        log.debug("%s: ignoring %d secret-key entries", where, len(contents.secret_aliases))
    return _Parsed(contents.store_type, keys, list(contents.certs), [])  # type: ignore[arg-type]


def _decrypt_jks_key(
    key: _jks.JKSKey, secret: str | None, explicit: bool, path: str | os.PathLike[str] | None
) -> _KeyEntry:
    where = _where(path)
    which = "key password" if explicit else "store password (used as the key password)"
    if secret is None:
        raise WrongPasswordError(
            f"{where}: key entry {key.alias!r} needs a password: pass the key password",
            path=path,
            alias=key.alias,
        )
    try:
        pkcs8 = _jks.decrypt_key(key, secret)
    except _jks.JKSKeyPasswordError as exc:
        hint = "" if explicit else "; if the key has its own password, pass key_password"
        raise WrongPasswordError(
            f"{where}: the {which} does not unlock key entry {key.alias!r}{hint}",
            path=path,
            alias=key.alias,
        ) from exc
    except _jks.JKSFormatError as exc:
        raise KeystoreFormatError(f"{where}: {exc}: replace the file", path=path) from exc
    return _KeyEntry(key.alias, pkcs8, key.chain_der)


def _jks_integrity_error(
    data: bytes, password: str | None, path: str | os.PathLike[str] | None
) -> KeystoreError:
    """Tell a wrong password from an altered file.

    The integrity hash cannot tell them apart by itself. But if the same password
    unlocks a key entry (its own SHA-1 check), the password is right and the file
    was modified after it was written.
    """
    where = _where(path)
    try:
        contents = _jks.parse_store(data, None)
    except (_jks.JKSFormatError, _jks.JKSIntegrityError):
        return KeystoreFormatError(f"{where}: damaged JKS store: replace the file", path=path)
    for key in contents.keys:
        try:
            if password is not None:
                _jks.decrypt_key(key, password)
        except (_jks.JKSKeyPasswordError, _jks.JKSFormatError):
            continue
        else:
            return KeystoreFormatError(
                f"{where}: the integrity check failed although the password unlocks key "
                f"{key.alias!r}: the file was modified or damaged; replace it",
                path=path,
            )
    return WrongPasswordError(
        f"{where}: wrong store password (the integrity check failed): check the password, "
        "or replace the file if it was modified",
        path=path,
    )


def _parse_pkcs12(
    data: bytes,
    password: str | None,
    key_password: str | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
) -> _Parsed:
    where = _where(path)
    try:
        contents = _pkcs12.parse_pkcs12(
            data, password, key_password=key_password, decrypt_keys=with_keys
        )
    except _pkcs12.P12PasswordError as exc:
        which = "key password" if exc.which == "key" else "store password"
        if password is None and exc.which != "key":
            msg = f"{where}: this PKCS#12 store is encrypted: pass its password"
        else:
            msg = f"{where}: wrong {which} (the PKCS#12 MAC or decryption failed): check it"
        raise WrongPasswordError(msg, path=path) from exc
    except _pkcs12.P12FormatError as exc:
        raise KeystoreFormatError(
            f"{where}: damaged or unsupported PKCS#12 store ({exc}): replace the file", path=path
        ) from exc

    certs = list(contents.certs)
    used: set[int] = set()
    keys: list[_KeyEntry] = []
    taken: set[str] = set()
    for index, key in enumerate(contents.keys):
        leaf_at = _pkcs12_leaf(key, certs, used)
        if leaf_at is None:
            raise KeystoreFormatError(
                f"{where}: key entry {key.alias or index!r} has no certificate", path=path
            )
        used.add(leaf_at)
        chain = [certs[leaf_at].der]
        _extend_chain(chain, certs, used)
        alias = _unique_alias(key.alias or certs[leaf_at].alias or str(index + 1), taken)
        keys.append(_KeyEntry(alias, key.pkcs8_der, tuple(chain)))
    trusted: list[tuple[str, bytes]] = []
    loose: list[bytes] = []
    for index, cert in enumerate(certs):
        if index in used:
            continue
        if cert.trusted:
            trusted.append((_unique_alias(cert.alias or str(index + 1), taken), cert.der))
        elif cert.local_key_id is not None and not with_keys:
            # The leaf of a key entry we did not decrypt: Java's TrustManager trusts it.
            alias = _unique_alias(cert.alias or str(index + 1), taken)
            chain = [cert.der]
            used.add(index)
            _extend_chain(chain, certs, used)
            keys.append(_KeyEntry(alias, b"", tuple(chain)))
        else:
            loose.append(cert.der)
    return _Parsed("PKCS12", keys, trusted, loose)


def _pkcs12_leaf(
    key: _pkcs12.P12Key, certs: Sequence[_pkcs12.P12Cert], used: set[int]
) -> int | None:
    if key.local_key_id is not None:
        for index, cert in enumerate(certs):
            if index not in used and cert.local_key_id == key.local_key_id:
                return index
    return _match_public_key(key.pkcs8_der, [c.der for c in certs], used)


def _match_public_key(key_der: bytes, certs: Sequence[bytes], used: set[int]) -> int | None:
    try:
        public = (
            serialization.load_der_private_key(key_der, None, unsafe_skip_rsa_key_validation=True)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
        # UnsupportedAlgorithm: e.g. an EC key on a curve OID cryptography does not know.
        return None
    for index, der in enumerate(certs):
        if index in used:
            continue
        try:
            cert_public = (
                _x509.load_cert(der)
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
            continue
        if cert_public == public:
            return index
    return None


def _extend_chain(chain: list[bytes], certs: Sequence[_pkcs12.P12Cert], used: set[int]) -> None:
    """Append issuers of the last certificate from ``certs`` while they are found."""
    while True:
        try:
            # cryptography parses names lazily: a damaged one raises on access, not on load.
            last = _x509.load_cert(chain[-1])
            issuer = last.issuer
            if issuer == last.subject:
                return
        except ValueError:
            return
        for index, cert in enumerate(certs):
            if index in used or cert.trusted:
                continue
            try:
                subject = _x509.load_cert(cert.der).subject
            except ValueError:
                continue
            if subject == issuer:
                chain.append(cert.der)
                used.add(index)
                break
        else:
            return


def _parse_pem(
    data: bytes,
    password: str | None,
    key_password: str | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
) -> _Parsed:
    where = _where(path)
    cert_ders: list[bytes] = []
    key_blocks: list[bytes] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        if label in (b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE"):
            try:
                der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
                if label == b"TRUSTED CERTIFICATE":
                    der = _trusted_certificate(der, where, path)
                _der.read_single(der, _der.SEQUENCE)
            except (binascii.Error, _der.DERError) as exc:
                raise KeystoreFormatError(
                    f"{where}: certificate {len(cert_ders) + 1} is not valid PEM: fix the file",
                    path=path,
                ) from exc
            cert_ders.append(der)
        elif label.endswith(b"PRIVATE KEY"):
            key_blocks.append(match.group(0))
    if not cert_ders and not key_blocks:
        raise KeystoreFormatError(
            f"{where}: no certificate or private key found in this PEM file", path=path
        )
    if data.count(b"-----BEGIN ") > sum(1 for _ in _PEM_BLOCK.finditer(data)):
        # A block without its END line: the file was cut short (or a label is mangled).
        raise KeystoreFormatError(
            f"{where}: a PEM block has no matching END line: the file is truncated or "
            "damaged; replace it",
            path=path,
        )
    keys: list[_KeyEntry] = []
    used: set[int] = set()
    taken: set[str] = set()
    if with_keys:
        secret = key_password if key_password is not None else password
        for block in key_blocks:
            key_der = _pem_key_to_pkcs8(block, secret, path)
            leaf_at = _match_public_key(key_der, cert_ders, used)
            if leaf_at is None:
                raise KeyEntryError(
                    f"{where}: a private key has no matching certificate in the file: "
                    "put the certificate (and its chain) in the same PEM file",
                    path=path,
                )
            used.add(leaf_at)
            chain = [cert_ders[leaf_at]]
            wrapped = [_pkcs12.P12Cert(None, d, None, False) for d in cert_ders]
            _extend_chain(chain, wrapped, used)
            keys.append(_KeyEntry(_alias_for(chain[0], taken, "key"), key_der, tuple(chain)))
    certs = [
        (_alias_for(der, taken, "cert"), der) for i, der in enumerate(cert_ders) if i not in used
    ]
    return _Parsed("PEM", keys, certs, [])


def _pem_key_is_encrypted(block: bytes) -> bool:
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or an OpenSSL traditional key with a Proc-Type header.
    return block.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") or (
        b"Proc-Type: 4,ENCRYPTED" in block
    )


def _trusted_certificate(der: bytes, where: str, path: str | os.PathLike[str] | None) -> bytes:
    """The certificate of OpenSSL's ``TRUSTED CERTIFICATE`` form (certificate + X509_CERT_AUX).

    The auxiliary trust settings narrow what OpenSSL trusts the certificate for. We
    cannot apply them, so a block that *rejects* a purpose is refused rather than
    trusted more widely than OpenSSL would; plain trust settings are dropped.
    """
    cert = _der.read_tlv(der)
    if cert.end < len(der):
        aux = _der.read_tlv(der, cert.end).expect(_der.SEQUENCE)
        if any(item.tag == 0xA0 for item in aux.children()):  # reject [0] SEQUENCE OF OID
            raise KeystoreFormatError(
                f"{where}: a TRUSTED CERTIFICATE block carries OpenSSL reject settings, "
                "which mtls cannot apply: remove them (openssl x509 -clrreject) or leave "
                "the certificate out",
                path=path,
            )
    return der[: cert.end]


def _pem_key_to_pkcs8(
    block: bytes, password: str | None, path: str | os.PathLike[str] | None
) -> bytes:
    where = _where(path)
    if block.startswith(b"-----BEGIN PRIVATE KEY-----"):
        # Already PKCS#8 and unencrypted: hand the DER through untouched (no parse).
        body = block.split(b"-----")[2]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
            _der.read_single(der, _der.SEQUENCE)
        except (binascii.Error, _der.DERError) as exc:
            raise KeystoreFormatError(
                f"{where}: the private key is not valid PEM", path=path
            ) from exc
        return der
    secret = password.encode() if password is not None else None
    if secret is not None and not _pem_key_is_encrypted(block):
        # A store password given for a plain key is ignored, as on the PKCS#8 path above:
        # profiles always carry a password, whatever the key file looks like.
        secret = None
    try:
        key = serialization.load_pem_private_key(block, secret, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        raise WrongPasswordError(
            f"{where}: the private key is encrypted: pass its password", path=path
        ) from exc
    except ValueError as exc:
        if b"ENCRYPTED" in block or b"Proc-Type: 4,ENCRYPTED" in block:
            raise WrongPasswordError(
                f"{where}: wrong password for the encrypted private key", path=path
            ) from exc
        raise KeystoreFormatError(
            f"{where}: the private key cannot be read: fix the file", path=path
        ) from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others for odd keys
        raise KeystoreFormatError(
            f"{where}: unsupported private key ({type(exc).__name__}): use RSA, EC or Ed25519",
            path=path,
        ) from exc
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --------------------------------------------------------------------------- writing


def _check_store_type(store_type: str) -> str:
    norm = store_type.upper().replace("#", "").replace("-", "")
    if norm not in _WRITABLE:
        raise ValueError(f"store_type must be one of {', '.join(_WRITABLE)}, not {store_type!r}")
    return norm


def _pkcs12_encryption(password: str) -> serialization.KeySerializationEncryption:
    # The same algorithms keytool has written since JDK 12: PBES2 with AES-256 and a
    # SHA-256 MAC (JDK-8076190). JDK 8 (8u301+) reads them too.
    if not password:
        raise ValueError(
            "a PKCS#12 store needs a password (keytool refuses an empty one): give one, "
            "or save as PEM for an unencrypted file"
        )
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )


def _describe(der: bytes) -> str:
    try:
        return _x509.subject_text(_x509.load_cert(der))
    except ValueError:
        return "<unreadable certificate>"


def _cert_or_raise(der: bytes, alias: str, path: str | None) -> x509.Certificate:
    try:
        return _x509.load_cert(der)
    except ValueError as exc:
        raise KeystoreFormatError(
            f"{_where(path)}: certificate {alias!r} cannot be parsed", path=path, alias=alias
        ) from exc


def _writable_cert(der: bytes, alias: str, path: str | None, kind: str) -> x509.Certificate:
    try:
        return _x509.load_cert(der)
    except ValueError as exc:
        raise KeyEntryError(
            f"{_where(path)}: entry {alias!r} has a certificate cryptography cannot read "
            f"(JDK 17 writes DSA certificates like that), so it cannot be written as {kind}: "
            "save the store as JKS",
            path=path,
            alias=alias,
        ) from exc


def _to_der(certificate: x509.Certificate | bytes) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(serialization.Encoding.DER)
    if certificate.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER)
    _x509.load_cert(certificate)
    return bytes(certificate)


class _StoreBase:
    """What Keystore and Truststore share: construction, lookup, export, removal."""

    def __init__(self) -> None:
        """An empty store: add entries, or use ``load`` to read one."""
        self._entries = _Entries()
        #: The format the store was read from (``JKS``, ``PKCS12``, ...), or None if new.
        self.store_type: str | None = None
        #: The file it was read from, or None.
        self.path: str | None = None

    def remove(self, alias: str) -> None:
        """Delete an entry (``keytool -delete``).

        Raises:
            KeyEntryError: no entry has this alias.
        """
        self._entries.remove(alias)

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every alias, key entries first, in the order they were read or added."""
        keys = tuple(e.alias for e in self._entries._keys.values())
        return keys + tuple(alias for alias, _ in self._entries._certs.values())

    def __contains__(self, alias: object) -> bool:
        return isinstance(alias, str) and self._lookup(alias) is not None

    def __len__(self) -> int:
        return len(self._entries._keys) + len(self._entries._certs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.aliases)

    def _lookup(self, alias: str) -> tuple[bytes, ...] | None:
        folded = _fold(alias)
        if folded in self._entries._keys:
            return self._entries._keys[folded].chain_der
        if folded in self._entries._certs:
            return (self._entries._certs[folded][1],)
        return None

    def _chain_der(self, alias: str) -> tuple[bytes, ...]:
        chain = self._lookup(alias)
        if chain is None:
            raise KeyEntryError(
                f"{_where(self.path)}: no entry with alias {alias!r}; "
                f"aliases are: {', '.join(self.aliases) or '(none)'}",
                path=self.path,
                alias=alias,
            )
        return chain

    def is_key_entry(self, alias: str) -> bool:
        """True if ``alias`` names a private-key entry (keytool's ``PrivateKeyEntry``)."""
        return _fold(alias) in self._entries._keys

    def certificate(self, alias: str) -> x509.Certificate:
        """The certificate of an entry (a key entry's leaf).

        Raises:
            KeyEntryError: no entry has this alias (case-insensitive, as in Java).
        """
        return _cert_or_raise(self._chain_der(alias)[0], alias, self.path)

    def certificate_chain(self, alias: str) -> tuple[x509.Certificate, ...]:
        """The certificate chain of an entry, leaf first (one certificate for trusted entries)."""
        return tuple(_cert_or_raise(der, alias, self.path) for der in self._chain_der(alias))

    def export_certificate(self, alias: str, encoding: Literal["PEM", "DER"] = "PEM") -> bytes:
        """The entry's certificate as ``keytool -exportcert`` writes it.

        DER (the default of keytool, ``encoding="DER"`` here) is byte for byte what
        keytool exports; PEM is ``keytool -exportcert -rfc``.
        """
        der = self._chain_der(alias)[0]
        enc = encoding.upper()
        if enc == "DER":
            return der
        if enc == "PEM":
            return _x509.der_to_pem(der).encode("ascii")
        raise ValueError(f"encoding must be 'PEM' or 'DER', not {encoding!r}")


class Keystore(_StoreBase):
    """Identities: private keys with their certificate chains, plus any trusted entries.

    Load one with :meth:`load` (or :meth:`from_bytes`); the format is detected from
    the content. Build one with :meth:`generate` (``keytool -genkeypair``) or
    :meth:`add_key`, and write it with :meth:`save` in a format keytool reads.

    Key material stays in this process's memory as PKCS#8 DER; ``repr()`` shows
    the store type, aliases and subjects, never a password or key bytes.

    Example:
        >>> ks = Keystore.generate("gateway", "CN=gateway", key_type="EC")
        >>> ks.key_aliases
        ('gateway',)
        >>> ks.certificate("gateway").subject.rfc4514_string()
        'CN=gateway'
    """

    # -- loading

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        password: Password | None,
        *,
        key_password: Password | None = None,
        store_type: str | None = None,
    ) -> Keystore:
        """Read a keystore file (JKS, JCEKS, PKCS#12 or PEM; detected from the bytes).

        Args:
            path: the store file.
            password: the store password (integrity check, PKCS#12 MAC, PEM key).
            key_password: the key password; defaults to ``password``. Like Java's
                SunX509 key manager, every key entry must unlock with it.
            store_type: the declared type (``<Type>`` in a profile). A hint for
                messages only: the content decides, as in Java since JDK 9.

        Returns:
            The loaded store. Nothing is kept open.

        Raises:
            KeystoreNotFoundError: the file does not exist (also a FileNotFoundError).
            WrongPasswordError: the store or a key password is wrong.
            KeystoreFormatError: the bytes are not a readable store.
            KeystoreError: the file cannot be read (permissions, a directory).
        """
        return cls.from_bytes(
            _read_path(path),
            password,
            key_password=key_password,
            store_type=store_type,
            _path=os.fspath(path),
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        password: Password | None,
        *,
        key_password: Password | None = None,
        store_type: str | None = None,
        _path: str | None = None,
        _with_keys: bool = True,
    ) -> Keystore:
        """Like :meth:`load`, from bytes in memory (for example a Kubernetes secret)."""
        data = bytes(data)
        parsed = _parse(
            data,
            reveal(password),
            reveal(key_password),
            # PEM keys are read as they are (unencrypted ones need no password).
            with_keys=_with_keys or detect_format(data) == "PEM",
            path=_path,
            declared=store_type,
        )
        store = cls()
        store.store_type = parsed.store_type
        store.path = _path
        for key in parsed.keys:
            store._entries.add_key(key)
        for alias, der in parsed.certs:
            store._entries.add_cert(alias, der)
        log.debug("loaded %r", store)
        return store

    @classmethod
    def inspect(
        cls,
        path: str | os.PathLike[str],
        password: Password | None = None,
        *,
        store_type: str | None = None,
    ) -> Keystore:
        """Read every entry and certificate without decrypting any private key.

        This is what ``keytool -list`` does: key entries are listed with their
        certificate chains, and no key password is needed (``password`` verifies a
        JKS store's integrity and decrypts PKCS#12 certificates; ``None`` skips the
        JKS check). The store cannot build a context or be saved: use :meth:`load`
        for that.

        Raises:
            KeystoreNotFoundError, WrongPasswordError, KeystoreFormatError: as for
                :meth:`load`.
        """
        return cls.from_bytes(
            _read_path(path), password, store_type=store_type, _path=os.fspath(path),
            _with_keys=False,
        )  # fmt: skip

    # -- building

    @classmethod
    def generate(
        cls,
        alias: str,
        subject: str | x509.Name,
        *,
        key_type: Literal["RSA", "EC", "Ed25519"] = "RSA",
        key_size: int = 2048,
        curve: str = "secp256r1",
        days: int = 365,
        san: Iterable[str] = (),
    ) -> Keystore:
        """A new keystore with one self-signed key entry, like ``keytool -genkeypair``.

        Args:
            alias: the entry's alias.
            subject: a distinguished name as keytool's ``-dname`` takes it
                (``"CN=gateway, OU=Eng, O=Acme, C=US"``) or an ``x509.Name``.
            key_type: ``"RSA"`` (``key_size`` bits), ``"EC"`` (``curve``) or ``"Ed25519"``.
            days: validity from now.
            san: subject alternative names: ``"DNS:name"``, ``"IP:addr"``,
                ``"email:addr"``, or a bare name or address.

        Raises:
            ValueError: an unknown key type, curve, or a malformed subject or SAN.
        """
        store = cls()
        store.add_generated_key(
            alias, subject, key_type=key_type, key_size=key_size, curve=curve, days=days, san=san
        )
        return store

    def add_generated_key(
        self,
        alias: str,
        subject: str | x509.Name,
        *,
        key_type: Literal["RSA", "EC", "Ed25519"] = "RSA",
        key_size: int = 2048,
        curve: str = "secp256r1",
        days: int = 365,
        san: Iterable[str] = (),
    ) -> None:
        """Add a self-signed key entry to this keystore (see :meth:`generate`)."""
        key = _new_private_key(key_type, key_size, curve)
        name = parse_dname(subject)
        now = _dt.datetime.now(_dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        names = parse_sans(san)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
        algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        cert = builder.sign(key, algorithm)
        self.add_key(alias, key, [cert])

    def add_key(
        self,
        alias: str,
        private_key: rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | bytes,
        chain: Sequence[x509.Certificate | bytes],
        *,
        replace: bool = False,
    ) -> None:
        """Add a key entry: a private key (object or PKCS#8 DER) and its chain, leaf first.

        Raises:
            KeyEntryError: the alias exists and ``replace`` is false.
            ValueError: the chain is empty.
        """
        if not chain:
            raise ValueError("a key entry needs at least its own certificate")
        if isinstance(private_key, bytes):
            key_der = private_key
        else:
            key_der = private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        self._entries.add_key(
            _KeyEntry(alias, key_der, tuple(_to_der(c) for c in chain)), replace=replace
        )

    def add_certificate(
        self, alias: str, certificate: x509.Certificate | bytes, *, replace: bool = False
    ) -> None:
        """Add a trusted-certificate entry (``keytool -importcert`` into a keystore)."""
        self._entries.add_cert(alias, _to_der(certificate), replace=replace)

    # -- reading

    @property
    def key_aliases(self) -> tuple[str, ...]:
        """Aliases of the private-key entries."""
        return tuple(e.alias for e in self._entries._keys.values())

    @property
    def trusted_aliases(self) -> tuple[str, ...]:
        """Aliases of the trusted-certificate entries."""
        return tuple(alias for alias, _ in self._entries._certs.values())

    def key_entry(self, alias: str | None = None) -> tuple[str, bytes, tuple[bytes, ...]]:
        """The material of one key entry: ``(alias, pkcs8_der, chain_der)``.

        With ``alias=None`` the store must hold exactly one key entry (Java's
        SunX509 key manager has no alias choice either; pass one when there are several).

        Raises:
            KeyEntryError: no key entry, several and no alias, or an unknown alias.
        """
        keys = self._entries._keys
        where = _where(self.path)
        if alias is None:
            if len(keys) == 1:
                entry = next(iter(keys.values()))
                return entry.alias, entry.key_der, entry.chain_der
            if not keys:
                raise KeyEntryError(
                    f"{where} has no private-key entry: use a keystore made with "
                    "keytool -genkeypair (or a PEM with a key), not a truststore",
                    path=self.path,
                )
            raise KeyEntryError(
                f"{where} has {len(keys)} key entries ({', '.join(self.key_aliases)}): "
                "choose one with alias=",
                path=self.path,
            )
        entry_or_none = keys.get(_fold(alias))
        if entry_or_none is None:
            raise KeyEntryError(
                f"{where} has no key entry {alias!r}; key aliases are: "
                f"{', '.join(self.key_aliases) or '(none)'}",
                path=self.path,
                alias=alias,
            )
        return entry_or_none.alias, entry_or_none.key_der, entry_or_none.chain_der

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the key material and certificates: equal for equal content."""
        digest = hashlib.sha256(b"mtls-keystore-v1")
        for entry in self._entries._keys.values():
            digest.update(b"K" + _fold(entry.alias).encode() + b"\0" + entry.key_der)
            for der in entry.chain_der:
                digest.update(b"C" + der)
        for alias, der in self._entries._certs.values():
            digest.update(b"T" + _fold(alias).encode() + b"\0" + der)
        return digest.hexdigest()

    def truststore(self) -> Truststore:
        """The anchors Java would take from this store used as a truststore."""
        trust = Truststore()
        trust.store_type = self.store_type
        trust.path = self.path
        for entry in self._entries._keys.values():
            trust._entries.add_cert(entry.alias, entry.chain_der[0])
        for alias, der in self._entries._certs.values():
            trust._entries.add_cert(alias, der)
        return trust

    # -- writing

    def save(
        self,
        path: str | os.PathLike[str],
        password: Password,
        *,
        store_type: Literal["JKS", "PKCS12", "PEM"] = "JKS",
        key_password: Password | None = None,
    ) -> None:
        """Write the store atomically with mode 0600, in a format keytool reads.

        ``JKS`` keeps every entry (key passwords may differ from the store password).
        ``PKCS12`` is what keytool writes by default since JDK 9 (PBES2/AES-256,
        HMAC-SHA256 MAC); it takes one key entry, and one password, as keytool does.
        ``PEM`` writes the key (encrypted with ``password`` unless it is empty)
        followed by its chain.

        Raises:
            ValueError: an unknown store type, or PKCS#12 with a different key password.
            KeyEntryError: PKCS#12 or PEM asked for with other than one key entry.
        """
        data = self.to_bytes(password, store_type=store_type, key_password=key_password)
        atomic_write(path, data, mode=0o600)

    def to_bytes(
        self,
        password: Password,
        *,
        store_type: Literal["JKS", "PKCS12", "PEM"] = "JKS",
        key_password: Password | None = None,
    ) -> bytes:
        """The bytes :meth:`save` writes."""
        kind = _check_store_type(store_type)
        secret = reveal(password) or ""
        key_secret = reveal(key_password)
        unread = [e.alias for e in self._entries._keys.values() if not e.key_der]
        if unread:
            raise KeyEntryError(
                f"{_where(self.path)}: key entries {', '.join(unread)} were read without "
                "their keys (Keystore.inspect): use Keystore.load to save the store",
                path=self.path,
            )
        if kind == "JKS":
            return _jks.build_store(
                "JKS",
                [(e.alias, e.key_der, list(e.chain_der)) for e in self._entries._keys.values()],
                [(alias, der) for alias, der in self._entries._certs.values()],
                secret,
                key_secret if key_secret is not None else secret,
            )
        if key_secret is not None and key_secret != secret:
            raise ValueError(
                f"{kind} stores have one password; keytool ignores a different key password"
            )
        alias, key_der, chain = self.key_entry()
        if self._entries._certs:
            raise KeyEntryError(
                f"{kind} output holds one key entry and its chain; this store also has "
                "trusted entries: save it as JKS, or save a Truststore separately",
                path=self.path,
            )
        key = serialization.load_der_private_key(key_der, None, unsafe_skip_rsa_key_validation=True)
        certs = [_writable_cert(der, alias, self.path, kind) for der in chain]
        if kind == "PEM":
            encryption: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(secret.encode())
                if secret
                else serialization.NoEncryption()
            )
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            return pem + b"".join(_x509.der_to_pem(der).encode() for der in chain)
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey
            | dsa.DSAPrivateKey,
        ):
            raise KeyEntryError(f"unsupported key type for PKCS#12: {type(key).__name__}")
        return pkcs12.serialize_key_and_certificates(
            alias.encode("utf-8"), key, certs[0], certs[1:] or None, _pkcs12_encryption(secret)
        )

    def __repr__(self) -> str:
        parts = [f"{e.alias!r} {_describe(e.chain_der[0])}" for e in self._entries._keys.values()]
        trusted = len(self._entries._certs)
        source = f" from {self.path!r}" if self.path else ""
        return (
            f"<Keystore {self.store_type or 'new'}{source}: "
            f"{len(parts)} key entr{'y' if len(parts) == 1 else 'ies'} [{', '.join(parts)}]"
            f", {trusted} trusted certificate{'' if trusted == 1 else 's'}>"
        )

    __str__ = __repr__


class Truststore(_StoreBase):
    """Trust anchors, with Java's semantics.

    Every certificate in a truststore is an anchor, including a self-signed leaf
    (the seed imports a backend's own certificate). A key entry's leaf certificate
    is an anchor too, as in Java's TrustManager, and loading never needs the key
    password. A PKCS#12 made by OpenSSL with certificates only (no keytool trust
    attribute) is taken as a list of anchors.

    Example:
        >>> ts = Truststore()
        >>> ks = Keystore.generate("backend", "CN=backend", key_type="EC")
        >>> ts.add("backend", ks.certificate("backend"))
        >>> ts.aliases
        ('backend',)
    """

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        password: Password | None = None,
        *,
        store_type: str | None = None,
    ) -> Truststore:
        """Read a truststore file (JKS, JCEKS, PKCS#12, PEM bundle or DER certificate).

        Args:
            path: the store file.
            password: verifies a JKS store's integrity and decrypts PKCS#12
                certificates. ``None`` skips the JKS integrity check, as Java does.
            store_type: the declared type; a hint for messages only.

        Raises:
            KeystoreNotFoundError: the file does not exist.
            WrongPasswordError: the password is wrong.
            KeystoreFormatError: not a readable store, or no certificates in it.
        """
        return cls.from_bytes(
            _read_path(path), password, store_type=store_type, _path=os.fspath(path)
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        password: Password | None = None,
        *,
        store_type: str | None = None,
        _path: str | None = None,
    ) -> Truststore:
        """Like :meth:`load`, from bytes in memory."""
        parsed = _parse(
            bytes(data), reveal(password), None, with_keys=False, path=_path, declared=store_type
        )
        store = cls()
        store.store_type = parsed.store_type
        store.path = _path
        taken: set[str] = set()
        for key in parsed.keys:
            store._entries.add_cert(_unique_alias(key.alias, taken), key.chain_der[0])
        for alias, der in parsed.certs:
            store._entries.add_cert(_unique_alias(alias, taken), der)
        if not parsed.keys and not parsed.certs:
            # An OpenSSL "-nokeys" PKCS#12 has no keytool trust attribute: its
            # certificates are what the user means to trust.
            for der in parsed.loose:
                store._entries.add_cert(_alias_for(der, taken, "cert"), der)
        if not len(store):
            raise KeystoreFormatError(
                f"{_where(_path)} holds no certificates: a truststore needs at least one",
                path=_path,
            )
        log.debug("loaded %r", store)
        return store

    def add(
        self, alias: str, certificate: x509.Certificate | bytes, *, replace: bool = False
    ) -> None:
        """Add a trust anchor, like ``keytool -importcert -alias ALIAS``.

        Args:
            certificate: an ``x509.Certificate``, or DER or PEM bytes.
            replace: overwrite an existing alias instead of refusing it.

        Raises:
            KeyEntryError: the alias exists and ``replace`` is false.
        """
        self._entries.add_cert(alias, _to_der(certificate), replace=replace)

    @property
    def certificates(self) -> Mapping[str, x509.Certificate]:
        """Alias -> certificate, for every anchor cryptography can parse.

        Certificates cryptography refuses are still anchors (OpenSSL loads them);
        they are left out of this mapping and logged.
        """
        out: dict[str, x509.Certificate] = {}
        for alias, der in self._entries._certs.values():
            try:
                out[alias] = _x509.load_cert(der)
            except ValueError:
                log.warning(
                    "%s: certificate %r cannot be parsed by cryptography; it is "
                    "still a trust anchor",
                    _where(self.path),
                    alias,
                )
        return out

    @property
    def anchors_der(self) -> tuple[bytes, ...]:
        """Every anchor as DER, in order (what OpenSSL is given)."""
        return tuple(der for _, der in self._entries._certs.values())

    def to_pem(self) -> bytes:
        """Every anchor as one PEM bundle (what ``cafile=`` takes)."""
        return "".join(_x509.der_to_pem(der) for der in self.anchors_der).encode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the anchors (aliases do not matter to trust): equal for equal content."""
        digest = hashlib.sha256(b"mtls-truststore-v1")
        for der in sorted(self.anchors_der):
            digest.update(hashlib.sha256(der).digest())
        return digest.hexdigest()

    def save(
        self,
        path: str | os.PathLike[str],
        password: Password,
        *,
        store_type: Literal["JKS", "PKCS12", "PEM"] = "JKS",
    ) -> None:
        """Write the truststore atomically, in a format keytool reads.

        PKCS#12 truststores carry Java's trusted-key-usage attribute, so keytool lists
        every certificate as ``trustedCertEntry``.
        """
        atomic_write(path, self.to_bytes(password, store_type=store_type), mode=default_mode())

    def to_bytes(
        self, password: Password, *, store_type: Literal["JKS", "PKCS12", "PEM"] = "JKS"
    ) -> bytes:
        """The bytes :meth:`save` writes."""
        kind = _check_store_type(store_type)
        secret = reveal(password) or ""
        entries = list(self._entries._certs.values())
        if kind == "JKS":
            return _jks.build_store("JKS", [], entries, secret, secret)
        if kind == "PEM":
            return self.to_pem()
        certs = [
            pkcs12.PKCS12Certificate(
                _writable_cert(der, alias, self.path, kind), alias.encode("utf-8")
            )
            for alias, der in entries
        ]
        return pkcs12.serialize_java_truststore(certs, _pkcs12_encryption(secret))

    def __repr__(self) -> str:
        count = len(self._entries._certs)
        source = f" from {self.path!r}" if self.path else ""
        shown = [
            f"{alias!r} {_describe(der)}" for alias, der in list(self._entries._certs.values())[:3]
        ]
        more = f", ... {count - 3} more" if count > 3 else ""
        return (
            f"<Truststore {self.store_type or 'new'}{source}: {count} "
            f"certificate{'' if count == 1 else 's'} [{', '.join(shown)}{more}]>"
        )

    __str__ = __repr__


# --------------------------------------------------------------------------- keytool-style inputs


def parse_dname(subject: str | x509.Name) -> x509.Name:
    """A keytool ``-dname`` string (``"CN=a, OU=b, O=c, C=US"``) as an ``x509.Name``."""
    if isinstance(subject, x509.Name):
        return subject
    text = re.sub(r",\s+", ",", subject.strip())
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise ValueError(f'malformed distinguished name {subject!r}: use "CN=name, O=org"') from exc
    if not name.rdns:
        raise ValueError('the distinguished name is empty: use "CN=name"')
    return name


def parse_sans(values: Iterable[str]) -> list[x509.GeneralName]:
    """SAN strings (``DNS:x``, ``IP:1.2.3.4``, ``email:a@b``, or bare) as general names."""
    names: list[x509.GeneralName] = []
    for raw in values:
        kind, sep, value = raw.partition(":")
        if sep and kind.lower() in ("dns", "ip", "email", "uri"):
            kind = kind.lower()
        else:
            kind, value = "", raw
        value = value.strip()
        if not value:
            raise ValueError(f"empty subject alternative name {raw!r}")
        if kind in ("ip", ""):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(value.strip("[]"))))
                continue
            except ValueError:
                if kind == "ip":
                    raise ValueError(f"not an IP address: {value!r}") from None
        if kind == "email" or (not kind and "@" in value):
            names.append(x509.RFC822Name(value))
        elif kind == "uri":
            names.append(x509.UniformResourceIdentifier(value))
        else:
            names.append(x509.DNSName(value))
    return names


def _new_private_key(
    key_type: str, key_size: int, curve: str
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    kind = key_type.upper()
    if kind == "RSA":
        if key_size < 2048:
            raise ValueError("RSA keys shorter than 2048 bits are refused by current TLS stacks")
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if kind == "EC":
        curves: dict[str, ec.EllipticCurve] = {
            "secp256r1": ec.SECP256R1(),
            "secp384r1": ec.SECP384R1(),
            "secp521r1": ec.SECP521R1(),
            "p-256": ec.SECP256R1(),
            "p-384": ec.SECP384R1(),
            "p-521": ec.SECP521R1(),
        }
        if curve.lower() not in curves:
            raise ValueError(f"curve must be one of secp256r1, secp384r1, secp521r1, not {curve!r}")
        return ec.generate_private_key(curves[curve.lower()])
    if kind == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be 'RSA', 'EC' or 'Ed25519', not {key_type!r}")
