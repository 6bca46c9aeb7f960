"""What pyjks needs around it: JKS/JCEKS parsing with our own key-entry decryption.

pyjks reads the JKS and JCEKS container formats, checks their integrity hash and
implements Sun's two key-protection ciphers correctly. What it gets wrong is the
envelope around a protected key: it decodes the ``EncryptedPrivateKeyInfo`` with
pyasn1 and requires the algorithm's NULL parameters, which JDK 21 and later omit
(keytool since JDK-8301310; pyjks issue 79: ``PyAsn1Error`` on every key entry
written by a current JDK). So we let pyjks parse the store with
``try_decrypt_keys=False``, read the envelope with our own DER reader, and call
pyjks's ``sun_crypto`` functions for the decryption itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import jks
import jks.sun_crypto
import jks.util
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from . import _der

_JKS_KEY_PROTECTOR = "1.3.6.1.4.1.42.2.17.1.1"  # sun.security.provider.KeyProtector
_JCE_KEY_PROTECTOR = "1.3.6.1.4.1.42.2.19.1"  # PBEWithMD5AndTripleDES (com.sun.crypto.provider)
_MAX_JCE_ITERATIONS = 5_000_000  # the JDK's own ceiling (JceKeyStore); hostile input must not spin


class JKSFormatError(ValueError):
    """The container is not a readable JKS/JCEKS store."""


class JKSIntegrityError(ValueError):
    """The store's integrity hash does not match the password (or the file was altered)."""


class JKSKeyPasswordError(ValueError):
    """A key entry does not decrypt with the key password."""


@dataclass(frozen=True, slots=True)
class JKSKey:
    """A key entry, still protected: decrypt with :func:`decrypt_key`."""

    alias: str
    protected: bytes = field(repr=False)
    chain_der: tuple[bytes, ...]
    store_type: str


@dataclass(frozen=True, slots=True)
class JKSContents:
    """The entries of a JKS or JCEKS store, in file order."""

    store_type: str  # "JKS" or "JCEKS"
    keys: tuple[JKSKey, ...]
    certs: tuple[tuple[str, bytes], ...]  # trusted certificate entries: (alias, DER)
    secret_aliases: tuple[str, ...]  # JCEKS secret-key entries: listed, never used


def parse_store(data: bytes, password: str | None) -> JKSContents:
    """Parse a JKS/JCEKS store; verify its integrity hash when ``password`` is given.

    Raises:
        JKSFormatError: the bytes are not a well-formed store.
        JKSIntegrityError: the hash does not match (wrong password or altered file).
    """
    try:
        store = jks.KeyStore.loads(data, password, try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException as exc:
        raise JKSIntegrityError(str(exc)) from exc
    except jks.util.KeystoreException as exc:
        raise JKSFormatError(str(exc)) from exc
    except Exception as exc:
        # pyjks walks attacker-controlled lengths with plain indexing and javaobj
        # deserialisation (JCEKS secret keys); anything it raises here means the bytes
        # are not a store. This is the one boundary where its exceptions are translated.
        raise JKSFormatError(f"{type(exc).__name__}: {exc}") from exc
    keys: list[JKSKey] = []
    certs: list[tuple[str, bytes]] = []
    secrets: list[str] = []
    store_type = "JCEKS" if store.store_type == "jceks" else "JKS"
    entry: Any
    for alias, entry in store.entries.items():
        if isinstance(entry, jks.PrivateKeyEntry):
            chain = tuple(_cert_der(c) for c in entry.cert_chain)
            keys.append(JKSKey(alias, entry._encrypted, chain, store_type))
        elif isinstance(entry, jks.TrustedCertEntry):
            certs.append((alias, _cert_der(entry.cert)))
        else:
            secrets.append(alias)
    return JKSContents(store_type, tuple(keys), tuple(certs), tuple(secrets))


def _cert_der(item: Any) -> bytes:
    # pyjks gives chain elements as (type, der) tuples and trusted certs as bytes.
    der = item[1] if isinstance(item, tuple) else item
    if not isinstance(der, bytes):
        raise JKSFormatError("certificate entry is not X.509 data")
    return der


def decrypt_key(key: JKSKey, password: str) -> bytes:
    """Return the PKCS#8 ``PrivateKeyInfo`` DER of a protected key entry.

    Raises:
        JKSFormatError: the envelope or the plaintext is malformed, or the algorithm is unknown.
        JKSKeyPasswordError: the password does not unlock the key.
    """
    try:
        envelope = _der.read_single(key.protected, _der.SEQUENCE).children()
        algorithm = envelope[0].expect(_der.SEQUENCE).children()
        oid = _der.decode_oid(algorithm[0].expect(_der.OID).value)
        ciphertext = envelope[1].expect(_der.OCTET_STRING).value
    except (_der.DERError, IndexError) as exc:
        raise JKSFormatError(f"key entry {key.alias!r} has a malformed envelope") from exc

    try:
        if oid == _JKS_KEY_PROTECTOR:
            # Params are NULL (JDK <= 20) or absent (JDK 21+): either is fine, we need none.
            if len(ciphertext) < 41:
                raise JKSFormatError(f"key entry {key.alias!r} is truncated")
            plaintext = jks.sun_crypto.jks_pkey_decrypt(ciphertext, password)
        elif oid == _JCE_KEY_PROTECTOR and key.store_type == "JCEKS":
            salt, iterations = _jce_params(algorithm, key.alias)
            if len(ciphertext) % 8 or not ciphertext:
                raise JKSFormatError(f"key entry {key.alias!r} is truncated")
            plaintext = _jce_decrypt(ciphertext, password, salt, iterations)
        else:
            raise JKSFormatError(f"key entry {key.alias!r} uses an unknown protection ({oid})")
    except (jks.util.BadHashCheckException, jks.util.BadPaddingException) as exc:
        raise JKSKeyPasswordError(str(exc)) from exc

    # JCE decryption has no integrity check beyond padding (1 in 256 wrong passwords
    # pass it), so a plaintext that is not a PrivateKeyInfo means a wrong password.
    try:
        _der.read_single(bytes(plaintext), _der.SEQUENCE)
    except _der.DERError as exc:
        raise JKSKeyPasswordError("decrypted key is not a PKCS#8 structure") from exc
    return bytes(plaintext)


def _jce_decrypt(ciphertext: bytes, password: str, salt: bytes, iterations: int) -> bytes:
    """Sun's PBEWithMD5AndTripleDES (com.sun.crypto.provider.PBECipherCore).

    The password goes in as bytes: ASCII up to JDK 21 (Java refused anything else),
    UTF-8 since (``PBEUtil.encodePassword``, so JDK 25's keytool writes JCEKS keys
    with non-ASCII passwords). The two agree on ASCII. pyjks takes ASCII only, so the
    derivation is done here; pyjks's salt quirk is reused as it is.
    """
    secret = password.encode("utf-8")
    halves = [salt[:4], salt[4:]]
    if halves[0] == halves[1]:
        halves[0] = jks.sun_crypto._jce_invert_salt_half(halves[0])
    derived = b""
    for half in halves:
        digest = half
        for _ in range(iterations):
            digest = hashlib.md5(digest + secret).digest()  # noqa: S324 - Java's algorithm
        derived += digest
    decryptor = Cipher(TripleDES(derived[:24]), modes.CBC(derived[24:])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 8 or padded[-pad:] != bytes([pad]) * pad:
        raise JKSKeyPasswordError("bad padding after decryption")
    return padded[:-pad]


def _jce_params(algorithm: list[_der.TLV], alias: str) -> tuple[bytes, int]:
    try:
        params = algorithm[1].expect(_der.SEQUENCE).children()
        salt = params[0].expect(_der.OCTET_STRING).value
        iterations = _der.decode_int(params[1].expect(_der.INTEGER).value)
    except (_der.DERError, IndexError) as exc:
        raise JKSFormatError(f"key entry {alias!r} has malformed PBE parameters") from exc
    if not 0 < iterations <= _MAX_JCE_ITERATIONS or len(salt) != 8:
        raise JKSFormatError(f"key entry {alias!r} has out-of-range PBE parameters")
    return salt, iterations


def build_store(
    store_type: str,
    keys: list[tuple[str, bytes, list[bytes]]],
    certs: list[tuple[str, bytes]],
    password: str,
    key_password: str,
) -> bytes:
    """Serialise a JKS store that keytool reads (pyjks writes the JKS key protector)."""
    entries: list[Any] = []
    for alias, pkcs8, chain in keys:
        entry = jks.PrivateKeyEntry.new(alias, chain, pkcs8, "pkcs8")
        entry.encrypt(key_password)
        entries.append(entry)
    entries.extend(jks.TrustedCertEntry.new(alias, der) for alias, der in certs)
    store = jks.KeyStore.new(store_type.lower(), entries)
    data: bytes = store.saves(password)
    return data


def secret_key_entry(data: bytes, password: str, alias: str | None) -> bytes | None:
    """The raw key of a JCEKS secret-key entry (``keytool -genseckey``), for the secure
    vault's symmetric mode; ``None`` when the store has no such entry or is not JCEKS.

    ``alias=None`` takes the only secret-key entry. The store password unlocks the key,
    as in the cipher tool's ``SymmetricCipher`` (``keyStore.getKey(alias, storePassword)``).
    """
    if not data.startswith(b"\xce\xce\xce\xce"):  # JCEKS magic; JKS has no secret keys
        return None
    try:
        store = jks.KeyStore.loads(data, password, try_decrypt_keys=False)
        entries = {
            name: entry
            for name, entry in store.entries.items()
            if isinstance(entry, jks.SecretKeyEntry)
        }
        if alias is not None:
            folded = {name.lower(): entry for name, entry in entries.items()}
            entry = folded.get(alias.lower())
        else:
            entry = next(iter(entries.values())) if len(entries) == 1 else None
        if entry is None:
            return None
        entry.decrypt(password)
        key = entry.key
    except Exception:  # pyjks and javaobj on foreign bytes: nothing usable here
        return None
    return bytes(key) if isinstance(key, bytes | bytearray) else None
