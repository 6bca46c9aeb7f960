"""Bouncy Castle's FIPS keystore (BCFKS), read as ``KeyStore.getInstance("BCFKS")``
reads it with the BC or BCFIPS provider (``BcFKSKeyStoreSpi``).

A FIPS-mode WSO2 product keeps its keystores and truststores in this format (the
BCFIPS provider does not take JKS), and its profiles say ``<Type>BCFKS</Type>``.

The file is DER::

    ObjectStore ::= SEQUENCE {
        storeData        CHOICE { EncryptedObjectStoreData, ObjectStoreData },
        integrityCheck   CHOICE { PbkdMacIntegrityCheck, [0] EXPLICIT SignatureCheck } }
    PbkdMacIntegrityCheck ::= SEQUENCE {
        macAlgorithm AlgorithmIdentifier, pbkdAlgorithm KeyDerivationFunc, mac OCTET STRING }
    EncryptedObjectStoreData ::= SEQUENCE {
        encryptionAlgorithm AlgorithmIdentifier (PBES2), encryptedContent OCTET STRING }
    ObjectStoreData ::= SEQUENCE {
        version INTEGER, integrityAlgorithm AlgorithmIdentifier,
        creationDate GeneralizedTime, lastModifiedDate GeneralizedTime,
        objectDataSequence SEQUENCE OF ObjectData, comment UTF8String OPTIONAL }
    ObjectData ::= SEQUENCE {
        type INTEGER, identifier UTF8String, creationDate GeneralizedTime,
        lastModifiedDate GeneralizedTime, data OCTET STRING, comment UTF8String OPTIONAL }
    EncryptedPrivateKeyData ::= SEQUENCE {
        encryptedPrivateKeyInfo EncryptedPrivateKeyInfo (PBES2),
        certificates SEQUENCE OF Certificate }

Every key is derived from the password as PKCS#12 text (UTF-16BE and a NUL; nothing
for an empty password) followed by the purpose in the same form (``INTEGRITY_CHECK``,
``STORE_ENCRYPTION``, ``PRIVATE_KEY_ENCRYPTION``), with PBKDF2 (HMAC-SHA512 or
HMAC-SHA3-512) or scrypt. The store and each key are encrypted with AES-256 in CCM
mode or with AES key wrap with padding (RFC 5649).

A store protected by a signature instead of a MAC is refused: Java loads it only with
the signer's public key (``BCFKSLoadStoreParameter``), which no profile can give.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from . import _der
from ._bks import PasswordRequired
from ._budget import WorkBudget, WorkLimitError, hash_weight
from ._der import TLV
from ._entries import Taken, fold, unique_alias
from ._jks import (
    JKSContents,
    JKSFormatError,
    JKSIntegrityError,
    JKSKey,
    JKSKeyPasswordError,
    SecretEntry,
)
from ._pkcs12 import _oid, _seq

TYPE: Final = "BCFKS"
# ObjectData types (BcFKSKeyStoreSpi): a "protected" key is read as the other kind.
_CERTIFICATE, _PRIVATE_KEY, _SECRET_KEY, _PROTECTED_PRIVATE_KEY, _PROTECTED_SECRET_KEY = range(5)
_PBES2: Final = "1.2.840.113549.1.5.13"
_PBKDF2: Final = "1.2.840.113549.1.5.12"
_SCRYPT: Final = "1.3.6.1.4.1.11591.4.11"
_AES256_CCM: Final = "2.16.840.1.101.3.4.1.47"
_AES256_KWP: Final = "2.16.840.1.101.3.4.1.48"
# The store MACs (an HMAC named by OID) and the PBKDF2 PRFs Bouncy Castle takes.
_MACS: Final = {
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
    "2.16.840.1.101.3.4.2.14": "sha3_256",
    "2.16.840.1.101.3.4.2.15": "sha3_384",
    "2.16.840.1.101.3.4.2.16": "sha3_512",
}
_PRFS: Final = {"1.2.840.113549.2.11": "sha512", "2.16.840.1.101.3.4.2.16": "sha3_512"}
_AES_KEY: Final = 32  # AES-256, the store's and every key's
_MAC_KEY: Final = 64  # the HMAC key Bouncy Castle derives for the store's MAC
_MAX_ITERATIONS: Final = 5_000_000  # as for every other format: Java's own ceiling
# scrypt: the memory OpenSSL's scrypt may take (its V and B arrays, 128 r (N + 2 + p)).
_MAX_SCRYPT_MEMORY: Final = 64 * 1024 * 1024
# N*r*p (p is r here) at most 2^21: N=32768, r=8 (about 1 s), which Bouncy Castle writes.
_MAX_SCRYPT_WORK: Final = 1 << 21


class SignedStoreError(JKSFormatError):
    """A store whose integrity check is a signature: no password alone reads it."""


class _Derivation(NamedTuple):
    """A key derivation read from its parameters, not run yet."""

    function: str  # "pbkdf2" or "scrypt"
    salt: bytes
    rounds: int  # PBKDF2 iterations, or scrypt's N
    block: int  # scrypt's r (Bouncy Castle passes it as p too); 0 for PBKDF2
    size: int
    digest: str  # PBKDF2's PRF hash

    @property
    def cost(self) -> int:
        """What the budget counts: iterations times output blocks, or scrypt's N*r*p."""
        if self.function == "scrypt":
            return self.rounds * self.block * self.block
        # 64-byte blocks, SHA-512's and SHA3-512's, each at its hash's weight.
        return self.rounds * -(-self.size // 64) * hash_weight(self.digest)

    def run(self, password: str, purpose: str) -> bytes:
        secret = _password_bytes(password) + _password_bytes(purpose)
        if self.function == "scrypt":
            try:
                return hashlib.scrypt(
                    secret, salt=self.salt, n=self.rounds, r=self.block, p=self.block,
                    maxmem=_MAX_SCRYPT_MEMORY, dklen=self.size,
                )  # fmt: skip
            except ValueError as exc:  # parameters OpenSSL refuses (capped above)
                raise _damaged(f"scrypt refused its parameters: {exc}") from None
        return hashlib.pbkdf2_hmac(self.digest, secret, self.salt, self.rounds, self.size)


def _damaged(why: str) -> JKSFormatError:
    return JKSFormatError(f"damaged or unsupported BCFKS store ({why}): replace the file")


def _password_bytes(password: str) -> bytes:
    """Bouncy Castle's ``PKCS12PasswordToBytes``: UTF-16BE and a NUL; empty: nothing."""
    return (password + "\0").encode("utf-16-be", "surrogatepass") if password else b""


def _int(tlv: TLV) -> int:
    """An INTEGER of at most 8 bytes (every count, size and type here): a longer one
    is out of range, said without its digits."""
    value = tlv.expect(_der.INTEGER).value
    if len(value) > 8:
        raise _damaged("an integer far out of range")
    return _der.decode_int(value)


def _derivation(kdf: TLV, size: int) -> _Derivation:
    """A KeyDerivationFunc read and capped, for a key of ``size`` bytes (what Bouncy
    Castle derives for the purpose: 64 for the MAC, 32 for AES-256); parameters that
    name another length are refused, so a file cannot ask for more output blocks.

    Raises:
        DERError, IndexError: malformed (the caller says damaged).
        JKSFormatError: a function or length Bouncy Castle does not use here.
        WorkLimitError: more work than mtls allows a store to ask for.
    """
    algorithm = _seq(kdf)
    oid, params = _oid(algorithm[0]), _seq(algorithm[1])
    if oid == _SCRYPT:
        # scrypt-params ::= SEQUENCE { salt, costParameter, blockSize,
        #   parallelizationParameter, keyLength INTEGER OPTIONAL } (RFC 7914)
        n, r = _int(params[1]), _int(params[2])
        _length(_int(params[4]) if len(params) > 4 else size, size)
        # RFC 7914: N a power of 2 below 2^(128 r / 8); Bouncy Castle's p is r.
        if n < 2 or n & (n - 1) or r < 1 or n.bit_length() > 16 * r:
            raise _damaged("scrypt parameters out of range")
        if 128 * r * (n + 2 + r) > _MAX_SCRYPT_MEMORY or n * r * r > _MAX_SCRYPT_WORK:
            raise WorkLimitError(
                f"its scrypt parameters (N={n}, r={r}, and p=r as Bouncy Castle runs them) "
                "ask for more memory or work than mtls allows a store before its password "
                "is checked",
                "scrypt",
            )
        salt = params[0].expect(_der.OCTET_STRING).value
        return _Derivation("scrypt", salt, n, r, size, "")
    if oid != _PBKDF2:
        raise _damaged(f"key derivation function {oid}")
    # PBKDF2-params ::= SEQUENCE { salt, iterationCount, keyLength OPTIONAL, prf } (RFC 8018)
    rounds = _int(params[1])
    if not 1 <= rounds <= _MAX_ITERATIONS:
        if rounds > _MAX_ITERATIONS:
            raise WorkLimitError(f"iteration count {rounds:,} is more than {_MAX_ITERATIONS:,}")
        raise _damaged("iteration count not positive")
    rest = params[2:]
    if rest and rest[0].tag == _der.INTEGER:
        _length(_int(rest[0]), size)
        rest = rest[1:]
    prf = _oid(_seq(rest[0])[0]) if rest else "1.2.840.113549.2.7"  # default: HMAC-SHA1
    if prf not in _PRFS:
        raise _damaged(f"PBKDF2 with PRF {prf}, which Bouncy Castle does not use for BCFKS")
    salt = params[0].expect(_der.OCTET_STRING).value
    return _Derivation("pbkdf2", salt, rounds, 0, size, _PRFS[prf])


def _length(given: int, size: int) -> None:
    if given != size:
        raise _damaged(f"a derived key of {given} bytes where Bouncy Castle derives {size}")


class _Encryption(NamedTuple):
    """A PBES2 AlgorithmIdentifier with AES-256-CCM or AES key wrap, read."""

    derivation: _Derivation
    nonce: bytes | None  # CCM's; None: key wrap with padding
    tag_size: int

    def decrypt(self, password: str, purpose: str, data: bytes) -> bytes | None:
        """The plaintext, or ``None`` when the password does not open it."""
        key = self.derivation.run(password, purpose)
        try:
            if self.nonce is None:
                return aes_key_unwrap_with_padding(key, data)
            return AESCCM(key, self.tag_size).decrypt(self.nonce, data, None)
        except (InvalidTag, InvalidUnwrap):
            return None


def _encryption(algorithm: TLV) -> _Encryption:
    """Raises as :func:`_derivation` does."""
    oid, *params = _seq(algorithm)
    if _oid(oid) != _PBES2 or len(params) != 1:
        raise _damaged(f"protection {_oid(oid)}")
    kdf, scheme = _seq(params[0])
    scheme_oid, *scheme_params = _seq(scheme)
    derivation = _derivation(kdf, _AES_KEY)
    if _oid(scheme_oid) == _AES256_KWP:
        return _Encryption(derivation, None, 0)
    if _oid(scheme_oid) != _AES256_CCM or len(scheme_params) != 1:
        raise _damaged(f"encryption scheme {_oid(scheme_oid)}")
    # CCMParameters ::= SEQUENCE { aes-nonce OCTET STRING (7..13), aes-ICVlen DEFAULT 12 }
    ccm = _seq(scheme_params[0])
    tag_size = _int(ccm[1]) if len(ccm) > 1 else 12
    nonce = ccm[0].expect(_der.OCTET_STRING).value
    if not 7 <= len(nonce) <= 13 or tag_size not in (4, 6, 8, 10, 12, 14, 16):
        raise _damaged("CCM parameters out of range")
    return _Encryption(derivation, nonce, tag_size)


def parse_store(data: bytes, password: str | None, budget: WorkBudget) -> JKSContents:
    """The entries of a BCFKS store, its MAC verified and its content decrypted with
    ``password`` (keys stay encrypted: :func:`decrypt_key`).

    Raises:
        JKSFormatError: malformed, or a store Java reads only with more than a
            password (:class:`SignedStoreError`).
        JKSIntegrityError: the MAC does not match (wrong password, or altered);
            :class:`PasswordRequired` without a password, for a store under one.
        WorkLimitError: its key derivations are over the caps or the budget.
    """
    try:
        tag, start, end = _der.header(data)
        if tag != _der.SEQUENCE:
            raise _der.DERError("not a SEQUENCE")
        _, _, stored_end = _der.header(data, start, end)
        stored = data[start:stored_end]  # the MAC covers the storeData element whole
        store_data = _der.read_tlv(stored)
        check = _der.read_tlv(data[stored_end:end])
        if check.end != end - stored_end:
            raise _der.DERError("more than two elements")
        if check.tag == 0xA0:
            raise SignedStoreError(
                "this BCFKS store is protected by a signature, not a password MAC: Java "
                "loads it only when given the signer's public key (BCFKSLoadStoreParameter), "
                "which no profile can pass: save it again with a password MAC (keytool "
                "-importkeystore -deststoretype BCFKS with the Bouncy Castle provider)"
            )
        mac_algorithm, kdf, mac = _seq(check)
        mac_oid = _oid(_seq(mac_algorithm)[0])
        if mac_oid not in _MACS:
            raise _damaged(f"MAC algorithm {mac_oid}")
        derivation = _derivation(kdf, _MAC_KEY)
        expected = mac.expect(_der.OCTET_STRING).value
    except (JKSFormatError, WorkLimitError):
        raise
    except (ValueError, IndexError) as exc:  # DERError, or a structure of the wrong size
        raise _damaged(str(exc) or type(exc).__name__) from None
    # No password is the empty one, as Bouncy Castle reads load(stream, null); a store
    # under another password then needs it (said so, not "wrong password").
    budget.charge_kdf(derivation.cost, "the store MAC")
    key = derivation.run(password or "", "INTEGRITY_CHECK")
    if not hmac.compare_digest(hmac.new(key, stored, _MACS[mac_oid]).digest(), expected):
        if password is None:
            raise PasswordRequired("a BCFKS store is read with its password")
        raise JKSIntegrityError("MAC mismatch")
    return _contents(store_data, password or "", mac_oid, budget)


def _contents(store_data: TLV, password: str, mac_oid: str, budget: WorkBudget) -> JKSContents:
    try:
        if store_data.children()[0].tag == _der.SEQUENCE:  # EncryptedObjectStoreData
            algorithm, content = _seq(store_data)
            encryption = _encryption(algorithm)
            budget.charge_kdf(encryption.derivation.cost, "the store's encryption")
            plain = encryption.decrypt(
                password, "STORE_ENCRYPTION", content.expect(_der.OCTET_STRING).value
            )
            if plain is None:  # the MAC verified with this password: the writer erred
                raise _damaged("its content does not decrypt")
            store_data = _der.read_single(plain, _der.SEQUENCE)
        # version (not checked: Bouncy Castle does not), integrityAlgorithm, two dates,
        # the objects, a comment.
        fields = _seq(store_data)
        if _oid(_seq(fields[1])[0]) != mac_oid:
            raise _damaged("its content does not match its integrity check")
        # HashMap.put by identifier: a repeated one replaces the entry (and its place).
        entries: dict[str, JKSKey | bytes | SecretEntry] = {}
        replaced: list[str] = []
        for item in _seq(fields[4]):
            kind, name, _, _, data, *_ = _seq(item)
            alias = name.expect(0x0C).value.decode("utf-8")
            value = data.expect(_der.OCTET_STRING).value
            if entries.pop(alias, None) is not None:
                replaced.append(alias)
            entries[alias] = _entry(_int(kind), alias, value)
    except (JKSFormatError, WorkLimitError):
        raise
    except (ValueError, IndexError) as exc:  # DERError, UTF-8, a structure's size
        raise _damaged(str(exc) or type(exc).__name__) from None
    entries = _case_apart(entries)
    return JKSContents(
        TYPE,
        tuple(e for e in entries.values() if isinstance(e, JKSKey)),
        tuple((alias, e) for alias, e in entries.items() if isinstance(e, bytes)),
        tuple(e for e in entries.values() if isinstance(e, SecretEntry)),
        replaced=tuple(replaced),
    )


def _case_apart(
    entries: dict[str, JKSKey | bytes | SecretEntry],
) -> dict[str, JKSKey | bytes | SecretEntry]:
    """Entries whose aliases differ only in case (Bouncy Castle's are case-sensitive;
    mtls compares them without case, as Java's JKS and PKCS12 stores do): the later of
    two certificates or secrets is renamed ``alias-2``; a key entry among them is
    refused, for a key alias could then pick the wrong key.

    Raises:
        JKSFormatError: two aliases differ only in case, one of a key entry.
    """
    folded: dict[str, str] = {}
    for alias, entry in entries.items():
        first = folded.setdefault(fold(alias), alias)
        if first != alias and (isinstance(entry, JKSKey) or isinstance(entries[first], JKSKey)):
            raise JKSFormatError(
                f"entries {first!r} and {alias!r} differ only in case, and one is a key "
                "entry: mtls compares aliases without case, as Java's JKS and PKCS12 stores "
                "do, and could take one key for the other: rename one (keytool -changealias "
                "-storetype BCFKS with the Bouncy Castle provider)"
            )
    if len(folded) == len(entries):
        return entries
    taken = Taken()
    renamed: dict[str, JKSKey | bytes | SecretEntry] = {}
    for alias, entry in entries.items():
        new = unique_alias(alias, taken)
        renamed[new] = SecretEntry(new, entry.kind) if isinstance(entry, SecretEntry) else entry
    return renamed


def _entry(kind: int, alias: str, value: bytes) -> JKSKey | bytes | SecretEntry:
    """One ObjectData's content: a key entry (still encrypted), a certificate's DER, or
    an entry TLS cannot use. Raises DERError, IndexError: malformed."""
    if kind == _CERTIFICATE:
        _der.check_single(value, _der.SEQUENCE)
        return value
    if kind in (_PRIVATE_KEY, _PROTECTED_PRIVATE_KEY):
        encrypted, chain = _seq(_der.read_single(value, _der.SEQUENCE))
        ders = tuple(
            _der.encode(_der.SEQUENCE, c.expect(_der.SEQUENCE).value) for c in chain.children()
        )
        if not ders:
            raise _damaged(f"key entry {alias!r} has no certificate")
        protected = _der.encode(_der.SEQUENCE, encrypted.expect(_der.SEQUENCE).value)
        return JKSKey(alias, protected, ders, TYPE)
    if kind in (_SECRET_KEY, _PROTECTED_SECRET_KEY):
        return SecretEntry(alias, "secret key")
    return SecretEntry(alias, f"an entry of unknown type {kind}")


def kdf_rounds(key: JKSKey) -> int:
    """What :func:`decrypt_key` will derive for ``key`` (0 if it will refuse it)."""
    try:
        algorithm = _seq(_der.read_single(key.protected, _der.SEQUENCE))[0]
        return _encryption(algorithm).derivation.cost
    except (ValueError, IndexError):  # malformed, or over a cap: decrypt_key refuses it
        return 0


def decrypt_key(key: JKSKey, password: str, budget: WorkBudget | None) -> bytes:
    """The PKCS#8 ``PrivateKeyInfo`` DER of a BCFKS key entry.

    Args:
        budget: charged first; ``None`` when the caller has (:func:`kdf_rounds`).

    Raises:
        JKSFormatError: malformed, or over a cap or the budget.
        JKSKeyPasswordError: the password does not unlock it.
    """
    try:
        algorithm, data = _seq(_der.read_single(key.protected, _der.SEQUENCE))
        encryption = _encryption(algorithm)
        if budget is not None:
            budget.charge_kdf(encryption.derivation.cost, f"key entry {key.alias!r}")
        plain = encryption.decrypt(
            password, "PRIVATE_KEY_ENCRYPTION", data.expect(_der.OCTET_STRING).value
        )
    except JKSFormatError:
        raise
    except WorkLimitError as exc:
        raise JKSFormatError(f"key entry {key.alias!r}: {exc}") from None
    except (ValueError, IndexError) as exc:  # DERError, or a structure of the wrong size
        raise _damaged(f"key entry {key.alias!r}: {exc}") from None
    if plain is None:
        raise JKSKeyPasswordError(key.alias)
    return plain
