"""Bouncy Castle's BKS (versions 1 and 2) and UBER keystores, as Android apps keep them.

Read like ``org.bouncycastle.jcajce.provider.keystore.bc.BcKeyStoreSpi``::

    u32 version (1 or 2)  u32 len + salt  u32 iteration count
    BKS:  entries  HMAC-SHA1(entries), keyed by PKCS#12 KDF(password, salt, count)
    UBER: Twofish-CBC(entries + SHA-1(entries)), keyed the same way

    entry: u8 type (0 ends the list)  UTF alias  i64 date  u32 n + n certificates
        1 certificate: UTF type + u32 len + DER
        2 key, stored plain: u8 kind (0 private, 1 public, 2 secret) UTF format
          UTF algorithm  u32 len + encoding (PKCS#8 for private keys)
        3 secret: u32 len + bytes, stored as given
        4 sealed key: u32 len + [u32 len + salt, u32 count, 3DES-CBC(a type-2 key)]

A sealed entry says what it holds only once decrypted. Bouncy Castle refuses a
private key without a certificate chain, so a sealed entry with a chain is taken as
a key entry (decrypted by :meth:`Keystore.load`, listed by ``inspect``) and one
without a chain is listed as a secret that TLS cannot use, never decrypted.

The PKCS#12 key derivation and the ciphers are pyjks's (``jks.rfc7292``, which uses
the ``twofish`` package it depends on). Iteration counts are capped at 65,536,
Bouncy Castle's own ceiling for UBER (it writes 1,024 to 2,047), and an UBER file,
decrypted block by block in Python, at 1 MiB.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.util
import sys
import threading
import types
import warnings
from typing import Literal

from ._budget import WorkBudget
from ._fork import hold_across_fork
from ._jks import (
    Entry,
    JKSContents,
    JKSFormatError,
    JKSIntegrityError,
    JKSKey,
    JKSKeyPasswordError,
    Reader,
    SecretEntry,
    certificate,
    contents,
    pyjks,
    shown,
)

TYPES = ("BKS", "UBER")
MAX_ITERATIONS = 65_536  # BcKeyStoreSpi.BouncyCastleStore: MIN_ITERATIONS << 6
MAX_UBER_BYTES = 1 << 20  # Twofish in Python costs about 0.7 s per MiB
_PLAIN_KEY_FORMATS = ("PKCS#8", "PKCS8")
_KEY_KINDS = {0: "private key", 1: "public key", 2: "secret key"}


class PasswordRequired(JKSIntegrityError):
    """The store cannot be read at all without its password (UBER)."""


class NotAPrivateKey(JKSFormatError):
    """A sealed entry with a certificate chain holds a public or secret key (Bouncy
    Castle lets ``setKeyEntry`` seal one): like an unsealed one, TLS cannot use it,
    and Java's key managers pass it by for the store's private keys."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # how the entry is listed (as an unsealed one is)


def looks_like_bks(data: bytes) -> Literal["BKS", "UBER"] | None:
    """``"BKS"``, ``"UBER"`` or ``None``, from the header (BKS and UBER have no magic).

    Both formats have versions 1 and 2 (Bouncy Castle writes 2 since 1.47): BKS if
    its entries frame up to exactly the 20 bytes of its MAC, else UBER if what
    follows the header is whole Twofish blocks. Never raises.
    """
    if data[:4] not in (b"\0\0\0\1", b"\0\0\0\2"):
        return None
    try:
        reader = Reader(data, "BKS")
        reader.take(4)
        salt = reader.blob()
        reader.u32()
        if not 0 < len(salt) <= 1024:
            return None
        start = reader.pos
        try:
            _entries(reader)
            if len(data) - reader.pos == 20:
                return "BKS"
        except JKSFormatError:
            pass
        # Ciphertext that happens to frame as entries (a first byte of 0 is an empty
        # list) leaves more than 20 bytes: whole blocks decide it then, unless the bytes
        # begin as a BKS entry does (a BKS cut short, by an interrupted copy at a 1, 2
        # or 4 KiB boundary, is whole blocks too: it was taken for UBER, and its right
        # password was said to be wrong; h157).
        blocks = (len(data) - start) % 16 == 0 and len(data) > start
        return "UBER" if blocks and not _begins_an_entry(data, start) else "BKS"
    except JKSFormatError:
        return None


# A BKS entry's creation date, Java milliseconds from 1990 to 2200: eight bytes of
# ciphertext land there about once in 2^42.
_PLAUSIBLE_MILLIS = range(631_152_000_000, 7_258_118_400_000)


def _begins_an_entry(data: bytes, start: int) -> bool:
    """Whether the bytes at ``start`` begin as a BKS entry: a type from 1 to 4, an
    alias, and a creation date in :data:`_PLAUSIBLE_MILLIS`."""
    reader = Reader(data, "BKS")
    reader.pos = start
    try:
        if not 1 <= reader.u8() <= 4:
            return False
        reader.utf()
        return int.from_bytes(reader.take(8), "big") in _PLAUSIBLE_MILLIS
    except JKSFormatError:
        return False


def _java_chars(password: str) -> bool:
    """Whether ``password`` is text Java could have had: the KDF (pyjks's) encodes it as
    UTF-16. A byte that was not UTF-8, carried as a lone surrogate (a Latin-1 terminal,
    an environment variable), cannot be, and was a ``UnicodeEncodeError`` holding the
    whole password in its arguments: it is a wrong password instead, never chained."""
    try:
        password.encode("utf-16-be")
    except UnicodeEncodeError:
        return False
    return True


def parse_bks(data: bytes, password: str | None, budget: WorkBudget) -> JKSContents:
    """Parse a BKS store; verify its HMAC when ``password`` is given (``None`` skips it).

    Raises:
        JKSFormatError: malformed, or an iteration count over :data:`MAX_ITERATIONS`.
        JKSIntegrityError: the HMAC does not match (wrong password or altered file).
    """
    reader = Reader(data, "BKS")
    version = reader.u32()
    salt, iterations = _header(reader, "BKS", version, (1, 2))
    start = reader.pos
    entries = _entries(reader)
    stored = data[reader.pos : reader.pos + 20]
    if len(stored) != 20:
        raise JKSFormatError("truncated BKS store: the HMAC is missing: replace the file")
    if password is not None:
        if not _java_chars(password):
            raise JKSIntegrityError("HMAC mismatch")
        budget.charge_kdf(iterations, "the store MAC")
        # Version 1 asked for a 20-bit key where 20 bytes were meant (a Bouncy Castle bug
        # kept for compatibility): 2 bytes of key.
        size = 2 if version == 1 else 20
        jks = pyjks()
        key = jks.rfc7292.derive_key(
            hashlib.sha1, jks.rfc7292.PURPOSE_MAC_MATERIAL, password, salt, iterations, size
        )
        digest = hmac.new(key, data[start : reader.pos], hashlib.sha1).digest()
        if not hmac.compare_digest(digest, stored):
            raise JKSIntegrityError("HMAC mismatch")
    return contents("BKS", entries)


def parse_uber(data: bytes, password: str | None, budget: WorkBudget) -> JKSContents:
    """Decrypt and parse an UBER store (its password is needed even to list it).

    Raises:
        JKSFormatError: malformed, too large, or an iteration count over the cap.
        PasswordRequired: ``password`` is None.
        JKSIntegrityError: the password does not decrypt it, or its digest fails.
    """
    reader = Reader(data, "UBER")
    version = reader.u32()
    salt, iterations = _header(reader, "UBER", version, (1, 2))
    encrypted = data[reader.pos :]
    if len(data) > MAX_UBER_BYTES:
        raise JKSFormatError(
            f"UBER store of {len(data):,} bytes is over mtls's {MAX_UBER_BYTES:,}-byte "
            "limit for UBER (real ones are a few KB): convert it to PKCS12 with "
            "keytool -importkeystore"
        )
    if not encrypted or len(encrypted) % 16:
        raise JKSFormatError("truncated UBER store: replace the file")
    if password is None:
        raise PasswordRequired("UBER stores are encrypted")
    if not _java_chars(password):
        raise JKSIntegrityError("UBER decryption failed")
    budget.charge_kdf(_DERIVATIONS * iterations, "the store")  # Twofish: 32-byte key, IV
    jks = pyjks()
    _import_twofish()
    try:
        plain = jks.rfc7292.decrypt_PBEWithSHAAndTwofishCBC(encrypted, password, salt, iterations)
    except (jks.util.BadPaddingException, jks.util.BadDataLengthException) as exc:
        raise JKSIntegrityError("UBER decryption failed") from exc
    inner = Reader(plain, "UBER")
    try:
        entries = _entries(inner)
    except JKSFormatError as exc:  # what a wrong password that passed the padding gives
        raise JKSIntegrityError("UBER content does not parse") from exc
    stored = plain[inner.pos : inner.pos + 20]
    digest = hashlib.sha1(plain[: inner.pos]).digest()  # noqa: S324 - the format's digest
    if not hmac.compare_digest(digest, stored):
        raise JKSIntegrityError("UBER digest mismatch")
    return contents("UBER", entries)


def _import_twofish() -> None:
    """Import the ``twofish`` package pyjks decrypts UBER with, or say why it cannot be.

    That package finds its C library through the ``imp`` module, which warns
    (DeprecationWarning, an unclosed file) on Python 3.11 and is gone from 3.12. Where
    it is gone, the one function twofish calls (``imp.find_module``, for the library's
    path) is lent for the length of that import and taken back, so that nothing else
    sees an ``imp`` module. Imported once here, quietly, so pyjks's own import finds
    it loaded.
    """
    if sys.modules.get("twofish") is not None:
        return
    with _TWOFISH_IMPORT:  # two threads must not lend and take back in turn
        _import_twofish_locked()


_TWOFISH_IMPORT = threading.Lock()
# A fork waits for the import's turn: a child forked inside it would keep the lent
# ``imp`` module (and, with a plain renewal only, never see it taken back).
hold_across_fork(sys.modules[__name__], "_TWOFISH_IMPORT", new=threading.Lock)


def _import_twofish_locked() -> None:
    lent = importlib.util.find_spec("imp") is None
    missing = object()
    before = sys.modules.get("imp", missing)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if lent:
                sys.modules["imp"] = _find_module_only()
            try:
                importlib.import_module("twofish")
            finally:
                if lent and before is missing:
                    del sys.modules["imp"]
                elif lent:
                    sys.modules["imp"] = before  # type: ignore[assignment]
    except (ImportError, OSError) as exc:
        raise JKSFormatError(
            "reading UBER needs the twofish package, which does not import on this "
            f"Python ({exc}): install it (pip install twofish), or convert the store to "
            "PKCS12 with keytool -importkeystore and Bouncy Castle's provider"
        ) from exc


def _find_module_only() -> types.ModuleType:
    """A stand-in ``imp`` with the one function twofish calls: ``find_module(name)[1]``
    is the path of the extension module ``name``."""
    module = types.ModuleType("imp")

    def find_module(name: str, path: object = None) -> tuple[None, str, tuple[str, str, int]]:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ImportError(f"No module named {name!r}")
        return None, spec.origin, ("", "rb", 3)  # 3: imp.C_EXTENSION

    module.find_module = find_module  # type: ignore[attr-defined]
    return module


def _header(reader: Reader, kind: str, version: int, known: tuple[int, ...]) -> tuple[bytes, int]:
    if version not in known:
        raise JKSFormatError(f"{kind} format version {version} is not supported: replace the file")
    salt = reader.blob()
    iterations = reader.u32()
    if not salt or iterations > MAX_ITERATIONS:
        raise JKSFormatError(
            f"{kind} store asks for {iterations:,} key-derivation iterations, over "
            f"{MAX_ITERATIONS:,} (Bouncy Castle's own ceiling; it writes 1,024 to 2,047), "
            "or has no salt: replace the file"
        )
    return salt, iterations


def _entries(reader: Reader) -> list[Entry]:
    """``BcKeyStoreSpi.loadStore``: entries up to the 0 type byte."""
    kind = reader.what
    entries: list[Entry] = []
    while (tag := reader.u8()) != 0:
        alias = reader.utf()
        reader.take(8)  # creation date
        count = reader.u32()
        if count >= 1 << 31:
            raise JKSFormatError(f"damaged {kind} store: a negative chain length: replace the file")
        chain = tuple(certificate(reader) for _ in range(count))
        if tag == 1:
            entries.append((alias, certificate(reader)))
        elif tag == 2:
            key_kind = reader.u8()
            key_format = reader.utf()
            algorithm = reader.utf()
            encoded = reader.blob()
            if key_kind == 0 and key_format in _PLAIN_KEY_FORMATS:
                entries.append(JKSKey(alias, encoded, chain, kind, plain=True))
            else:
                what = _KEY_KINDS.get(key_kind, "key")
                entries.append(
                    SecretEntry(alias, f"{what} ({shown(algorithm)[1:-1]}; TLS cannot use it)")
                )
        elif tag == 3:
            reader.blob()
            entries.append(SecretEntry(alias, "secret (stored as given; TLS cannot use it)"))
        elif tag == 4:
            sealed = reader.blob()
            if chain:
                entries.append(JKSKey(alias, sealed, chain, kind))
            else:
                entries.append(
                    SecretEntry(alias, "sealed key (no certificate chain; TLS cannot use it)")
                )
        else:
            raise JKSFormatError(
                f"damaged {kind} store: unknown entry type {tag}: replace the file"
            )
    return entries


#: RFC 7292 appendix B derivations per key decryption, each ``iterations`` rounds long:
#: two SHA-1 blocks of key (3DES's 24 bytes, Twofish's 32), one of IV.
_DERIVATIONS = 3


def kdf_rounds(key: JKSKey) -> int:
    """Key-derivation rounds :func:`decrypt_key` will run for ``key`` (0 if it will refuse it)."""
    if key.plain:
        return 0
    try:
        reader = Reader(key.protected, key.store_type)
        reader.blob()
        # The RFC 7292 KDF per 20-byte output block: a 24-byte 3DES key is two, its
        # IV one (what a derivation longer than one hash output counts, as PKCS#12's).
        return _DERIVATIONS * min(reader.u32(), MAX_ITERATIONS)
    except JKSFormatError:
        return 0


def decrypt_key(key: JKSKey, password: str, budget: WorkBudget | None) -> bytes:
    """The PKCS#8 ``PrivateKeyInfo`` DER of a BKS/UBER key entry.

    Args:
        budget: charged first; ``None`` when the caller has (:func:`kdf_rounds`).

    Raises:
        JKSFormatError: malformed, over the iteration cap or the budget, or the
            sealed entry holds something other than a PKCS#8 private key.
        JKSKeyPasswordError: the password does not unlock it.
    """
    if key.plain:
        return key.protected
    reader = Reader(key.protected, key.store_type)
    salt = reader.blob()
    iterations = reader.u32()
    ciphertext = key.protected[reader.pos :]
    if not salt or iterations > MAX_ITERATIONS or not ciphertext or len(ciphertext) % 8:
        raise JKSFormatError(
            f"key entry {shown(key.alias)} is damaged or asks for over {MAX_ITERATIONS:,} "
            "iterations: replace the file"
        )
    if not _java_chars(password):
        raise JKSKeyPasswordError("sealed key does not decrypt")
    if budget is not None:
        budget.charge_kdf(_DERIVATIONS * iterations, f"key entry {shown(key.alias)}")
    jks = pyjks()
    try:
        plain = jks.rfc7292.decrypt_PBEWithSHAAnd3KeyTripleDESCBC(
            ciphertext, password, salt, iterations
        )
        inner = Reader(plain, key.store_type)
        key_kind, key_format = inner.u8(), inner.utf()
        algorithm = inner.utf()
        encoded = inner.blob()
    except (jks.util.BadPaddingException, JKSFormatError, ValueError) as exc:
        # ValueError: a derived 3DES key that degenerates to DES (a wrong password).
        raise JKSKeyPasswordError("sealed key does not decrypt") from exc
    # Bouncy Castle writes a public key as X.509 (a DER SubjectPublicKeyInfo) and a
    # secret key as RAW; anything else, like random bytes a wrong password decrypted
    # to, is not taken for one.
    if (key_kind == 1 and key_format == "X.509" and encoded[:1] == b"\x30") or (
        key_kind == 2 and key_format == "RAW"
    ):
        what = _KEY_KINDS[key_kind]
        raise NotAPrivateKey(
            f"sealed entry {shown(key.alias)} holds a {what}",
            f"sealed {what} ({shown(algorithm)[1:-1]}; TLS cannot use it)",
        )
    if key_kind != 0 or key_format not in _PLAIN_KEY_FORMATS or encoded[:1] != b"\x30":
        raise JKSFormatError(
            f"sealed entry {shown(key.alias)} has a certificate chain but holds a "
            f"{_KEY_KINDS.get(key_kind, 'key')} in {shown(key_format)}, not a PKCS#8 "
            "private key: remove the entry"
        )
    return encoded
