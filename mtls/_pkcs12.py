"""Our own reader of PKCS#12 containers (RFC 7292), as Java and OpenSSL write them.

Why not ``cryptography``'s ``pkcs12.load_pkcs12``: it returns a single private key,
drops Java's trusted-certificate attribute (which tells a truststore's CA entries
from a key entry's chain), and parses every key it returns, paying for an RSA
consistency check we do not need before the key is used. This module walks the
container itself with :mod:`mtls._der`, verifies the MAC, decrypts what is
encrypted with ``cryptography``'s primitives, and hands back every key as raw
PKCS#8 DER (never parsed here) and every certificate with its alias and flags.

Every malformed input raises :class:`P12FormatError`; a wrong or missing password
raises :class:`P12PasswordError`. Nothing else escapes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import RC2, TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mtls import _der, _rc2
from mtls._budget import (
    MAX_FILE_KDF_ITERATIONS,
    MAX_FILE_RC2_BYTES,
    WorkBudget,
    WorkLimitError,
    hash_weight,
)
from mtls._der import TLV, DERError
from mtls._kdf import p12_kdf as _p12_kdf
from mtls._secret import Secret
from mtls._x509 import pkcs8_well_formed

__all__ = [
    "MAX_FILE_KDF_ITERATIONS",
    "MAX_FILE_RC2_BYTES",
    "P12Cert",
    "P12Contents",
    "P12FormatError",
    "P12Key",
    "P12PasswordError",
    "WorkBudget",
    "WorkLimitError",
    "check_key_encryption",
    "looks_like_pkcs12",
    "parse_pkcs12",
]


@dataclass(frozen=True, slots=True)
class P12Key:
    """A private key: the friendlyName alias, plaintext PKCS#8 DER and localKeyId.

    ``pkcs8_der`` is empty for a shrouded key read with ``decrypt_keys=False``.
    """

    alias: str | None
    pkcs8_der: bytes = field(repr=False)
    local_key_id: bytes | None
    # Without a friendlyName: the number Java's PKCS12KeyStore names the entry with.
    number: int | None = None
    # In a plain keyBag (not encrypted), which Java's PKCS12KeyStore skips.
    plain: bool = False
    # Its bag's place among the bags Java's PKCS12KeyStore registers, from 1 (its table
    # keeps, of entries whose aliases differ only in case, the last); 0 for a bag it
    # never registers (a plain keyBag, one nested in a safeContentsBag).
    order: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class P12Cert:
    """An X.509 certificate; ``trusted`` is Java's mark of a trusted-certificate entry."""

    alias: str | None
    der: bytes = field(repr=False)
    local_key_id: bytes | None
    trusted: bool
    number: int | None = None  # as for P12Key: set on a trusted certificate without a name
    order: int = field(default=0, compare=False)  # as for P12Key


@dataclass(frozen=True, slots=True)
class P12Contents:
    """Everything read from a container; ``certs`` are in file order."""

    keys: tuple[P12Key, ...]
    certs: tuple[P12Cert, ...]
    mac_verified: bool
    # keytool -genseckey entries (raw key bytes in pkcs8_der), read only when asked for.
    secret_keys: tuple[P12Key, ...] = ()
    # Every secretBag, decrypted or not: (alias, what it is), as keytool lists them.
    secrets: tuple[tuple[str, str], ...] = ()
    # Numbers given to entries without a friendlyName (the next one would be this + 1).
    unnamed: int = 0
    # The integrity check is PBMAC1 (RFC 9579), which the JDK (17, 25) cannot verify.
    pbmac1: bool = False
    # PBES2 schemes of its bags the JDK (17, 25) does not take (AES-192-CBC, 3DES,
    # scrypt), by name.
    java_refused: tuple[str, ...] = ()
    # PBKDF2's PRFs JDK 17 lacks (HMAC-SHA512/224 and /256; JDK 25 takes them), by name.
    java17_refused: tuple[str, ...] = ()
    # PKCS#12's own (PBES1) schemes of its bags the JDK does not take, by name: 2-key
    # triple DES (openssl's PBE-SHA1-2DES), which the JDK's PKCS12 reader refuses.
    java_refused_pbes1: tuple[str, ...] = ()
    # No MAC and nothing encrypted: the JDK's password-less format (its cacerts since
    # JDK 18; keystore.pkcs12.certProtectionAlgorithm and macAlgorithm NONE), which Java
    # reads without a password and keytool keeps when it writes the store back.
    passwordless: bool = False
    # Each secretBag's place among the bags (as P12Key.order), in the order of secrets.
    secrets_order: tuple[int, ...] = field(default=(), compare=False)
    # Something encrypted with PKCS#12's own PBE under a non-ASCII password's standard
    # BMPString (OpenSSL wrote it), which no JDK derives (_Password.java_misencoded).
    java_misencoded: bool = False
    # An EncryptedData (the certificates: always under the store password, where a key
    # may have one of its own) was decrypted with the password.
    opened: bool = field(default=False, compare=False)


class P12FormatError(ValueError):
    """Malformed, truncated or foreign bytes, or an algorithm we do not support."""


class P12UnsupportedError(P12FormatError):
    """A well-formed store protected with an algorithm mtls does not implement;
    ``remedy`` says how to write one it reads."""

    def __init__(self, message: str, remedy: str = "export it again with AES") -> None:
        super().__init__(message)
        self.remedy = remedy


# What to do about a public-key integrity or privacy mode, and a MAC digest we lack.
_PUBLIC_KEY_MODE_FIX = "export it again protected by a password, not a public key"
_MAC_FIX = "export it again with a SHA-256 MAC"


class P12PasswordError(ValueError):
    """A password is wrong or missing; ``which`` says whether the store's or the key's."""

    def __init__(
        self, message: str, *, which: Literal["store", "key"], alias: str | None = None
    ) -> None:
        super().__init__(message)
        self.which: Literal["store", "key"] = which
        # The key entry (its friendlyName) the password did not open, when one did not.
        self.alias = alias
        # The MAC verified with this (non-ASCII) password, and it does not decrypt: the
        # content was encrypted with another encoding of it (Bouncy Castle's Latin-1).
        self.encoding = False
        # The MAC verified with the password that does not decrypt: the content is
        # under another password (openssl pkcs12 -twopass), not a wrong one.
        self.after_mac = False


_DATA: Final = "1.2.840.113549.1.7.1"
_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
_ENCRYPTED_DATA: Final = "1.2.840.113549.1.7.6"
_PBE_SHA1_2DES: Final = "1.2.840.113549.1.12.1.4"  # pbeWithSHAAnd2-KeyTripleDES-CBC
_KEY_BAG: Final = "1.2.840.113549.1.12.10.1.1"  # RFC 7292 section 4.2
_SHROUDED_KEY_BAG: Final = "1.2.840.113549.1.12.10.1.2"
_CERT_BAG: Final = "1.2.840.113549.1.12.10.1.3"
_SECRET_BAG: Final = "1.2.840.113549.1.12.10.1.5"  # noqa: S105 - an OID
_SAFE_CONTENTS_BAG: Final = "1.2.840.113549.1.12.10.1.6"
_X509_CERT: Final = "1.2.840.113549.1.9.22.1"
_FRIENDLY_NAME: Final = "1.2.840.113549.1.9.20"
_LOCAL_KEY_ID: Final = "1.2.840.113549.1.9.21"
_JAVA_TRUSTED: Final = "2.16.840.1.113894.746875.1.1"  # Oracle's trustedKeyUsage
_PBES2: Final = "1.2.840.113549.1.5.13"
_PBKDF2: Final = "1.2.840.113549.1.5.12"
_PBMAC1: Final = "1.2.840.113549.1.5.14"
_PBMAC1_MIN_KEY: Final = 20  # bytes: the shortest PBMAC1 key that is taken as a MAC

# hashlib name -> (cryptography hash, block size v of the RFC 7292 appendix B KDF)
_HASHES: Final[dict[str, tuple[hashes.HashAlgorithm, int]]] = {
    "sha1": (hashes.SHA1(), 64),  # noqa: S303 - SHA-1 is what PKCS#12 MACs and PBEs use
    "sha224": (hashes.SHA224(), 64),
    "sha256": (hashes.SHA256(), 64),
    "sha384": (hashes.SHA384(), 128),
    "sha512": (hashes.SHA512(), 128),
    "sha512_224": (hashes.SHA512_224(), 128),
    "sha512_256": (hashes.SHA512_256(), 128),
}
_DIGEST_OIDS: Final = {  # MacData digest algorithms (RFC 7292 section 4)
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.5": "sha512_224",
    "2.16.840.1.101.3.4.2.6": "sha512_256",
}
_HMAC_OIDS: Final = {  # PBKDF2 PRFs and PBMAC1 schemes (RFC 8018 appendix B.1)
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
    "1.2.840.113549.2.12": "sha512_224",
    "1.2.840.113549.2.13": "sha512_256",
}
# PBES2 encryption schemes: OID -> (key length, is AES)
_PBES2_CIPHERS: Final = {
    "2.16.840.1.101.3.4.1.2": (16, True),
    "2.16.840.1.101.3.4.1.22": (24, True),
    "2.16.840.1.101.3.4.1.42": (32, True),
    "1.2.840.113549.3.7": (24, False),  # des-EDE3-CBC
}
# The PBES2 ciphers the JDK's PKCS12 reader takes (PBES2Parameters, JDK 17 and 25):
# AES-128-CBC and AES-256-CBC. AES-192 and 3DES, which OpenSSL and Go write, are
# refused: "PBE parameter parsing error: expecting the object identifier for AES cipher".
_JAVA_PBES2_CIPHERS: Final = frozenset({"2.16.840.1.101.3.4.1.2", "2.16.840.1.101.3.4.1.42"})
_PBES2_CIPHER_NAMES: Final = {
    "2.16.840.1.101.3.4.1.22": "AES-192-CBC",
    "1.2.840.113549.3.7": "3DES",
}
# PBKDF2 PRFs JDK 25 takes and JDK 17 does not.
_JDK17_LACKS: Final = frozenset({"sha512_224", "sha512_256"})
# RFC 7292 appendix C: OID -> (key length, is RC2)
_PKCS12_PBES: Final = {
    "1.2.840.113549.1.12.1.3": (24, False),  # pbeWithSHAAnd3-KeyTripleDES-CBC
    "1.2.840.113549.1.12.1.4": (16, False),  # pbeWithSHAAnd2-KeyTripleDES-CBC
    "1.2.840.113549.1.12.1.5": (16, True),  # pbeWithSHAAnd128BitRC2-CBC
    "1.2.840.113549.1.12.1.6": (5, True),  # pbeWithSHAAnd40BitRC2-CBC (old Java certs)
}
# RFC 7292 appendix C, the stream ciphers: OID -> key length (no IV is derived).
_PKCS12_RC4: Final = {
    "1.2.840.113549.1.12.1.1": 16,  # pbeWithSHAAnd128BitRC4
    "1.2.840.113549.1.12.1.2": 5,  # pbeWithSHAAnd40BitRC4
}
_UNSUPPORTED: Final = {
    "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
    "1.2.840.113549.1.7.2": "signedData (public-key integrity mode)",
    "1.2.840.113549.1.7.3": "envelopedData (public-key privacy mode)",
    "1.3.6.1.4.1.11591.4.11": "scrypt",
    # PBES2 ciphers other than AES and 3DES (bc-java and OpenSSL write these; keytool
    # reads none of them).
    "1.2.392.200011.61.1.1.1.2": "Camellia-128-CBC",
    "1.2.392.200011.61.1.1.1.3": "Camellia-192-CBC",
    "1.2.392.200011.61.1.1.1.4": "Camellia-256-CBC",
    "1.2.840.113533.7.66.10": "CAST5-CBC",
    "1.3.14.3.2.7": "DES-CBC",
    "1.2.840.113549.3.2": "RC2-CBC",
    "1.2.156.10197.1.104.2": "SM4-CBC",
}
_SCRYPT: Final = "1.3.6.1.4.1.11591.4.11"  # RFC 7914 section 7
# PKCS#5 v1.5 PBES1 (RFC 8018 appendix A.3): PBEParameter ::= SEQUENCE { salt, iterationCount }
_PBES1: Final = frozenset(
    "1.2.840.113549.1.5." + str(n)
    for n in (1, 3, 4, 6, 10, 11)  # pbeWith{MD2,MD5,SHA1}And{DES,RC2}-CBC
)
_PBES1_WEIGHT: Final = 3  # budget units per PBKDF1 iteration (see _kdf_cost)
# The PBES1 schemes decrypted here (MD2 has no hashlib constructor): PBKDF1's hash, and
# whether the cipher is RC2 (64-bit effective key, RFC 8018 B.2.2) rather than DES.
_PBES1_SCHEMES: Final = {
    "1.2.840.113549.1.5.3": ("md5", False),  # pbeWithMD5AndDES-CBC (Java's PBEWithMD5AndDES)
    "1.2.840.113549.1.5.6": ("md5", True),  # pbeWithMD5AndRC2-CBC
    "1.2.840.113549.1.5.10": ("sha1", False),  # pbeWithSHA1AndDES-CBC
    "1.2.840.113549.1.5.11": ("sha1", True),  # pbeWithSHA1AndRC2-CBC
}
# PKCS#12's and PKCS#5's own (PBES1) schemes the JDK's PKCS12 reader (JDK 17, 25) refuses:
# "keystore password was incorrect" for certificates so encrypted, a key so encrypted
# never unlocked (h188, h219); named as OpenSSL's -keypbe/-certpbe spell them.
# (pbeWithMD5AndDES-CBC, Java's PBEWithMD5AndDES, it reads.)
_JAVA_REFUSED_PBES1: Final = {
    _PBE_SHA1_2DES: "pbeWithSHAAnd2-KeyTripleDES-CBC (2-key triple DES, openssl's PBE-SHA1-2DES)",
    "1.2.840.113549.1.5.10": "pbeWithSHA1AndDES-CBC (openssl's PBE-SHA1-DES)",
    "1.2.840.113549.1.5.11": "pbeWithSHA1AndRC2-CBC (openssl's PBE-SHA1-RC2-64)",
    "1.2.840.113549.1.5.6": "pbeWithMD5AndRC2-CBC (openssl's PBE-MD5-RC2-64)",
}
_MAX_ITERATIONS: Final = 5_000_000  # Java's PKCS12KeyStore ceiling; hostile counts must not hang
_MAX_NESTING: Final = 4
# ContentInfos and SafeBags one file may hold: keytool and OpenSSL write one bag per
# certificate or key, and 8 MiB of the smallest certificates is about 20,000. Each costs
# about 15 microseconds to read, so a file of tiny bags is refused within a second.
MAX_SAFE_ITEMS: Final = 50_000
# scrypt (RFC 7914): OpenSSL refuses more than 32 MiB of memory by default; the work
# cap N*r*p is 8 times OpenSSL's default (N=16384, r=8, p=1), about 0.5 s.
_MAX_SCRYPT_MEMORY: Final = 32 * 1024 * 1024
_MAX_SCRYPT_WORK: Final = 1 << 20


def looks_like_pkcs12(data: bytes) -> bool:
    """Cheap sniff: SEQUENCE { INTEGER 3, SEQUENCE { OID data or signedData, ... } }.

    Reads headers only, so a truncated file still sniffs as PKCS#12 and then fails
    to parse with a precise message. Never raises.
    """
    try:
        tag, pos = _header(data, 0)
        if tag != _der.SEQUENCE or data[pos : pos + 3] != b"\x02\x01\x03":
            return False
        tag, pos = _header(data, pos + 3)
        if tag != _der.SEQUENCE:
            return False
        oid = _der.read_tlv(data, pos)
        return oid.tag == _der.OID and _der.decode_oid(oid.value) in (_DATA, _SIGNED_DATA)
    except (DERError, IndexError, TypeError):
        return False


def _pfx_only(data: bytes) -> bytes:
    """The PFX without bytes after it (a newline a transfer appended, padding): Java's
    ``DerValue`` and OpenSSL's ``d2i_PKCS12`` read the first element and ignore the rest,
    which no MAC covers anyway. A PFX of indefinite length (BER) is passed as it is."""
    try:
        _, _, end = _der.header(data)
    except DERError:
        return data
    return data[:end] if end < len(data) else data


def _header(data: bytes, pos: int) -> tuple[int, int]:
    """Return (tag, content offset) of the element at ``pos`` without reading its content."""
    tag, first = data[pos], data[pos + 1]
    count = first & 0x7F if first & 0x80 else 0
    return tag, pos + 2 + count


def parse_pkcs12(
    data: bytes,
    password: Secret | str | None,
    *,
    key_password: Secret | str | None = None,
    decrypt_keys: bool = True,
    secret_keys: bool = False,
    budget: WorkBudget | None = None,
    verify_mac: bool = True,
) -> P12Contents:
    """Read a PKCS#12 container.

    ``password`` verifies the MAC and decrypts encrypted content. ``None`` is the
    absent password: a container with a MAC must verify with the empty password (in
    both of its encodings, as OpenSSL and cryptography try them) and is then read as
    if ``""`` had been given; a container without a MAC is read for what is not
    encrypted. Shrouded keys are decrypted with ``key_password``, or ``password``
    when it is ``None``; with ``decrypt_keys=False`` they are listed undecrypted
    (empty ``pkcs8_der``: alias and localKeyId only), so a truststore never needs
    a key password. ``secret_keys=True`` also decrypts
    secret-key entries (Java stores them as a secretBag holding an
    EncryptedPrivateKeyInfo; the secure vault's symmetric mode needs them).
    ``budget`` bounds the key-derivation and RC2 work (a fresh :class:`WorkBudget`
    when not given). ``verify_mac=False`` reads past a MAC that does not verify: only
    to tell a damaged file from a wrong password once it failed (what is read so is
    never used: :attr:`P12Contents.opened` says whether the password decrypted).

    Raises:
        P12PasswordError: the MAC does not verify, or a password is missing or wrong.
        WorkLimitError: the file asks for more work than ``budget`` allows.
        P12FormatError: anything malformed or unsupported.
    """
    budget = budget or WorkBudget()
    for ber in (False, True):
        # Read as DER; a file that is not (BER: indefinite lengths, segmented strings,
        # as Bouncy Castle and Netscape wrote) is read again with each layer rewritten
        # as DER first, as Java and OpenSSL read it. DER files pay nothing for this.
        reader = _Reader(password, key_password, decrypt_keys, budget, ber=ber)
        reader.want_secret_keys = secret_keys
        reader.verify_mac = verify_mac
        try:
            return reader.read(data)
        except DERError as exc:
            error = exc
    raise P12FormatError(f"malformed PKCS#12 data: {error}") from error


def jdk17_takes_password(password: str) -> bool:
    """Whether JDK 17 (and older) can open a PKCS#12 store with this password: only
    printable ASCII, space to ``~`` (its PBE key refuses the rest, "Password is not
    ASCII", and keytool says the password is incorrect). JDK 25 and OpenSSL take any."""
    return all(" " <= char <= "~" for char in password)


class _Password:
    """A password in the encodings PKCS#12 uses.

    Built from a :class:`Secret` and holding only encodings: no frame between the
    caller and here has the plain string in its locals.
    """

    __slots__ = ("bmp", "java_bmp", "java_misencoded", "utf8")

    def __init__(self, password: Secret) -> None:
        # RFC 7292 appendix B.1: the PKCS#12 KDF takes a BMPString (UTF-16BE, with
        # surrogate pairs beyond the BMP) plus a two-byte NUL terminator, so "" is
        # b"\0\0". Java (PKCS12PBECipherCore) and OpenSSL (OPENSSL_utf82uni) both do
        # this. OpenSSL's NULL password is instead zero bytes, and OpenSSL's readers
        # try it too when given an empty password; see _verify_mac.
        self.bmp = _bmp(password.reveal())
        # RFC 8018 PBKDF2 (PBES2, PBMAC1) takes bytes: Java and OpenSSL use UTF-8.
        self.utf8 = password.reveal().encode("utf-8", "surrogatepass")
        # Java's PBEKey hands the PKCS#12 PBE ciphers (not the MAC) the UTF-8 bytes masked
        # to 7 bits, so with a non-ASCII password JDK 25 encrypts keys and certificates
        # under another BMPString than the MAC's (JDK 17 refuses such passwords there).
        java = bytes(b & 0x7F for b in self.utf8)
        self.java_bmp = _bmp(java.decode("ascii")) if java != self.utf8 else None
        # Something encrypted with PKCS#12's own PBE opened under the standard BMPString
        # of a non-ASCII password (OpenSSL's, Bouncy Castle's), not Java's masked one:
        # JDK 25 derives the masked one and cannot read it (keytool 25: "keystore
        # password was incorrect"), where it reads PBES2/AES under the same password.
        self.java_misencoded = False

    def __repr__(self) -> str:
        return "_Password('********')"

    def pbe_candidates(self) -> list[bytes]:
        return [self.bmp] if self.java_bmp is None else [self.bmp, self.java_bmp]


def _bmp(password: str) -> bytes:
    return password.encode("utf-16-be", "surrogatepass") + b"\0\0"


def _wrap(password: Secret | str | None) -> Secret | None:
    return Secret(password) if isinstance(password, str) else password


class _Reader:
    def __init__(
        self,
        password: Secret | str | None,
        key_password: Secret | str | None,
        decrypt_keys: bool,
        budget: WorkBudget,
        *,
        ber: bool = False,
    ):
        store, key = _wrap(password), _wrap(key_password)
        self.store = None if store is None else _Password(store)
        self.key_given = key is not None
        self.key = self.store if key is None else _Password(key)
        self.decrypt_keys = decrypt_keys
        self.budget = budget
        self.ber = ber
        self.items = 0  # ContentInfos and SafeBags read so far
        self.mac_verified = False
        self.pbmac1 = False
        self.java_refused: list[str] = []
        self.java17_refused: list[str] = []
        self.java_refused_pbes1: list[str] = []
        self.decrypted = False  # an EncryptedData opened with the store password
        self.verify_mac = True
        self.encrypted = False  # an EncryptedData ContentInfo was read
        self.keys: list[P12Key] = []
        self.private_keys = 0  # the shrouded keys Java reads (outside safeContentsBags)
        self.certs: list[P12Cert] = []
        self.want_secret_keys = False
        self.secret_keys: list[P12Key] = []
        self.secrets: list[tuple[str, str]] = []
        self.secrets_order: list[int] = []
        self.unnamed = 0
        self.bags = 0  # SafeBags that may be entries read so far, in file order

    def read(self, data: bytes) -> P12Contents:
        # RFC 7292 section 4: PFX ::= SEQUENCE { version, authSafe ContentInfo, macData OPTIONAL }
        layer = _pfx_only(data)
        if self.ber:  # a BER PFX's end is found by walking it: what follows is ignored
            layer = _der.to_der(layer, first_only=True)
        pfx = _der.read_single(layer, _der.SEQUENCE).children()
        if len(pfx) not in (2, 3) or _int(pfx[0]) != 3:
            raise P12FormatError("not a PKCS#12 version 3 PFX")
        content_type, content = _content_info(pfx[1])
        if content_type != _DATA:
            raise P12UnsupportedError(
                f"unsupported authSafe content type {algorithm_name(content_type)}",
                _PUBLIC_KEY_MODE_FIX,
            )
        auth_safe = _der.read_single(content, _der.OCTET_STRING).value
        if len(pfx) == 3:
            if self.store is None:
                # The absent password of a container with a MAC is the empty one, as in
                # OpenSSL and cryptography: the MAC is never skipped (a damaged file
                # would load), and what verifies decrypts with "" too.
                self.store = _Password(Secret(""))
                if self.key is None:
                    self.key = self.store
            if self.verify_mac:
                self._verify_mac(pfx[2], auth_safe)
                self.mac_verified = True
        # Section 4.1: AuthenticatedSafe ::= SEQUENCE OF ContentInfo (data or encryptedData).
        for info in self._items(auth_safe):
            content_type, content = _content_info(info)
            if content_type == _DATA:
                self._safe_contents(_der.read_single(content, _der.OCTET_STRING).value, 0)
            elif content_type == _ENCRYPTED_DATA:
                self.encrypted = True
                self._safe_contents(self._encrypted_data(content), 0)
            else:
                raise P12FormatError(f"unsupported content type {algorithm_name(content_type)}")
        return P12Contents(
            tuple(self.keys),
            tuple(self.certs),
            self.mac_verified,
            tuple(self.secret_keys),
            tuple(self.secrets),
            self.unnamed,
            self.pbmac1,
            tuple(self.java_refused),
            passwordless=len(pfx) == 2 and not self.encrypted,
            secrets_order=tuple(self.secrets_order),
            java_refused_pbes1=tuple(self.java_refused_pbes1),
            java17_refused=tuple(self.java17_refused),
            java_misencoded=any(
                p is not None and p.java_misencoded for p in (self.store, self.key)
            ),
            opened=self.decrypted,
        )

    def _number(self, alias: str | None) -> int | None:
        """Java's name for an entry without a friendlyName: its PKCS12KeyStore counts
        such key entries (private and secret) and trusted certificates, in file order."""
        if alias is not None:
            return None
        self.unnamed += 1
        return self.unnamed

    def _items(self, layer: bytes) -> Iterator[TLV]:
        """The elements of a SEQUENCE OF layer, counted against :data:`MAX_SAFE_ITEMS`."""
        for item in _der.each(self._as_der(layer), _der.SEQUENCE):
            self.items += 1
            if self.items > MAX_SAFE_ITEMS:
                raise P12FormatError(
                    f"more than {MAX_SAFE_ITEMS:,} bags and contents (keytool and OpenSSL "
                    "write one per certificate or key; see docs/security.md)"
                )
            yield item

    def _as_der(self, layer: bytes) -> bytes:
        """One layer (the PFX, the AuthenticatedSafe, a SafeContents) to read as DER."""
        return _der.to_der(layer) if self.ber else layer

    def _verify_mac(self, mac_data: TLV, auth_safe: bytes) -> None:
        # Section 4: MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations }
        assert self.store is not None
        parts = _seq(mac_data)
        digest_info = _seq(parts[0]) if len(parts) in (2, 3) else []
        if len(digest_info) != 2:
            raise P12FormatError("malformed MacData")
        oid, params = _algorithm(digest_info[0])
        expected = _octets(digest_info[1])
        if oid == _PBMAC1:
            self.pbmac1 = True
            # RFC 9579: PBKDF2 (with a mandatory keyLength) keys an HMAC; macSalt and
            # iterations of MacData are not used, but are still of the types RFC 7292
            # gives them (any bytes there were taken: nothing protects them; h157). Not
            # their values: go-pkcs12's Modern2026 writes an empty salt and iterations 0,
            # which OpenSSL reads (h188).
            _octets(parts[1])
            if len(parts) == 3:
                _int(parts[2])
            kdf, scheme = _pair(params)
            name = _hash_name(_HMAC_OIDS, *_algorithm(scheme))
            salt, rounds, length, prf = _pbkdf2_params(kdf)
            if length is None:
                raise P12FormatError("PBMAC1 parameters lack the mandatory key length")
            if length < _PBMAC1_MIN_KEY:
                # A 1-byte key leaves 256 MACs: a forger finds a salt under which any
                # password verifies (OpenSSL and go-pkcs12 refuse these as well).
                raise P12FormatError(
                    f"its PBMAC1 integrity key is {length} bytes long, too short to prove "
                    f"anything (at least {_PBMAC1_MIN_KEY}): the file may be forged; "
                    "re-create the store"
                )
            secrets = [self.store.utf8]
            blocks = _blocks(length, prf)

            def derive(secret: bytes) -> bytes:
                return _pbkdf2(prf, secret, salt, rounds, length)
        else:
            # RFC 7292 appendix B.4: the key is derived with the PKCS#12 KDF, ID 3.
            name = _hash_name(_DIGEST_OIDS, oid, params)
            salt = _octets(parts[1])
            rounds = _iterations(parts[2]) if len(parts) == 3 else 1
            size = _HASHES[name][0].digest_size
            secrets = [self.store.bmp] + ([b""] if self.store.bmp == b"\0\0" else [])
            blocks = hash_weight(name)

            def derive(secret: bytes) -> bytes:
                return _p12_kdf(name, secret, salt, purpose=3, rounds=rounds, size=size)

        self.budget.charge_kdf(rounds * blocks * len(secrets))
        for index, secret in enumerate(secrets):
            mac = HMAC(derive(secret), _HASHES[name][0])
            mac.update(auth_safe)
            try:
                mac.verify(expected)
            except InvalidSignature:
                continue
            if index == 1:  # OpenSSL's NULL password: it then encrypted with it too
                for password in (self.store, self.key):
                    if password is not None and password.bmp == b"\0\0":
                        password.bmp = b""
            return
        raise P12PasswordError(
            "the PKCS#12 MAC does not match: wrong store password, or a damaged file",
            which="store",
        )

    def _encrypted_data(self, content: bytes) -> bytes:
        # PKCS#7 EncryptedData ::= SEQUENCE { version, EncryptedContentInfo }, and
        # EncryptedContentInfo ::= SEQUENCE { contentType, algorithm, [0] IMPLICIT OCTET STRING }
        parts = _seq(_der.read_single(content, _der.SEQUENCE))
        info = _seq(parts[1]) if len(parts) == 2 else []
        if len(info) != 3 or info[2].tag not in (0x80, 0xA0):
            raise P12FormatError("malformed EncryptedData")
        # BER may send the [0] IMPLICIT OCTET STRING constructed, as segments.
        encrypted = (
            info[2].value
            if info[2].tag == 0x80
            else b"".join(_octets(segment) for segment in info[2].children())
        )
        if self.store is None:
            raise P12PasswordError(
                "the certificates are encrypted: a store password is needed", which="store"
            )
        self._java_takes(info[1])
        try:
            opened = _decrypt(
                info[1], encrypted, self.store, "store", _is_sequence, budget=self.budget
            )
        except P12PasswordError as exc:
            raise self._encoded_otherwise(exc, self.store) from None
        self.decrypted = True
        return opened

    def _java_takes(self, algorithm: TLV) -> None:
        """Note a PBES2 scheme the JDK's PKCS12 reader refuses (see ``java_refused``): a
        cipher other than AES-128/256-CBC, scrypt, or (JDK 17) PBKDF2 with HMAC-SHA512/224
        or SHA512/256."""
        oid, params = _algorithm(algorithm)
        pbes1 = _JAVA_REFUSED_PBES1.get(oid)
        if pbes1 is not None:
            if pbes1 not in self.java_refused_pbes1:
                self.java_refused_pbes1.append(pbes1)
            return
        if oid != _PBES2:
            return
        names = []
        jdk17 = []
        try:
            kdf, scheme = _pair(params)
            cipher, kdf_oid = _algorithm(scheme)[0], _algorithm(kdf)[0]
            if cipher not in _JAVA_PBES2_CIPHERS:
                names.append(_PBES2_CIPHER_NAMES.get(cipher) or algorithm_name(cipher))
            if kdf_oid == _SCRYPT:
                names.append("scrypt")
            elif kdf_oid == _PBKDF2 and (prf := _pbkdf2_params(kdf)[3]) in _JDK17_LACKS:
                jdk17.append(f"PBKDF2 with HMAC-{prf.upper().replace('_', '/')}")
        except (P12FormatError, DERError):
            return  # a scheme not read here: its decryption (if asked for) says why
        for name in names:
            if name not in self.java_refused:
                self.java_refused.append(name)
        for name in jdk17:  # (h219: named with JDK 25 and AES, which take it)
            if name not in self.java17_refused:
                self.java17_refused.append(name)

    def _safe_contents(self, data: bytes, depth: int) -> None:
        # Section 4.2: SafeContents ::= SEQUENCE OF SafeBag, and
        # SafeBag ::= SEQUENCE { bagId, bagValue [0] EXPLICIT, bagAttributes SET OPTIONAL }
        for bag in self._items(data):
            parts = _seq(bag)
            if len(parts) not in (2, 3):
                raise P12FormatError("malformed SafeBag")
            bag_id = _oid(parts[0])
            value = _explicit(parts[1])
            alias, local_key_id, trusted = _attributes(parts[2] if len(parts) == 3 else None)
            # Java's PKCS12KeyStore reads no safeContentsBag, so no bag inside one either.
            if bag_id != _SAFE_CONTENTS_BAG and depth == 0:
                self.bags += 1
            order = self.bags if depth == 0 else 0
            if bag_id == _KEY_BAG:  # section 4.2.1: a plain PrivateKeyInfo
                if not _is_pkcs8(parts[1].value):
                    raise P12FormatError("malformed PrivateKeyInfo in a keyBag")
                # Java skips a plain keyBag: never in its table (order 0), nor numbered
                # (numbering it moved Java's "1" onto another entry, h288).
                key = P12Key(alias, parts[1].value, local_key_id, None, True)
                self.keys.append(key)
            elif bag_id == _SHROUDED_KEY_BAG:  # section 4.2.2
                # Not decrypting, the key is still an entry: its alias and localKeyId
                # are outside the encryption, and they name the entry as keytool does.
                try:
                    if not self.decrypt_keys:  # listed: its scheme is noted all the same
                        self._java_takes(_pair(value)[0])
                    pkcs8 = self._shrouded_key(value) if self.decrypt_keys else b""
                except P12PasswordError as exc:
                    exc.alias = alias
                    raise
                if pkcs8 and not pkcs8_well_formed(pkcs8):
                    # It decrypted to the shape of a key (no wrong password's luck): a
                    # bag damaged before the MAC was made again, or written so. Java's
                    # getKey refuses it; it was served, to fail at the context (h196).
                    raise P12FormatError(
                        "a private key decrypts to a damaged key (Java cannot recover it either)"
                    )
                # Java counts the private keys it reads, and passes by one without a
                # localKeyId unless it is the first, before it would number it (h288).
                self.private_keys += order > 0
                java_reads = order > 0 and (local_key_id is not None or self.private_keys == 1)
                number = self._number(alias) if java_reads else None
                self.keys.append(P12Key(alias, pkcs8, local_key_id, number, order=order))
            elif bag_id == _CERT_BAG:  # section 4.2.3
                cert_id, cert_value = _pair(value)
                if _oid(cert_id) == _X509_CERT:
                    der = _octets(_explicit(cert_value))
                    _der.check_single(der, _der.SEQUENCE)
                    number = self._number(alias) if trusted else None
                    self.certs.append(P12Cert(alias, der, local_key_id, trusted, number, order))
            elif bag_id == _SAFE_CONTENTS_BAG:  # section 4.2.6
                if depth >= _MAX_NESTING:
                    raise P12FormatError("safeContentsBag nested too deeply")
                self._safe_contents(parts[1].value, depth + 1)
            elif bag_id == _SECRET_BAG:  # section 4.2.5
                self.secrets_order.append(order)
                self._secret_bag(value, alias, local_key_id)
            # crlBag and unknown bags are skipped.

    def _secret_bag(self, value: TLV, alias: str | None, local_key_id: bytes | None) -> None:
        # SecretBag ::= SEQUENCE { secretTypeId, secretValue [0] EXPLICIT OCTET STRING };
        # Java's PKCS12KeyStore writes a pkcs8ShroudedKeyBag there whose PrivateKeyInfo
        # holds the raw key (e.g. AES) as its privateKey OCTET STRING.
        type_id, secret_value = _pair(value)
        name = alias if alias is not None else str(self._number(alias))
        if _oid(type_id) != _SHROUDED_KEY_BAG:
            kind = f"secret of type {algorithm_name(_oid(type_id))}; TLS cannot use it"
            self.secrets.append((name, kind))
            return
        # Listed as keytool lists it (SecretKeyEntry): the key's algorithm is inside the
        # encryption, so it is not shown unless the key is decrypted (the secure vault).
        self.secrets.append((name, "secret key (PKCS#12 secretBag; TLS cannot use it)"))
        if not self.want_secret_keys:
            return
        encrypted = _der.read_single(_octets(_explicit(secret_value)), _der.SEQUENCE)
        info = _der.read_single(self._shrouded_key(encrypted), _der.SEQUENCE).children()
        self.secret_keys.append(P12Key(alias, info[2].value, local_key_id))

    def _shrouded_key(self, value: TLV) -> bytes:
        # EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }
        algorithm, encrypted = _pair(value)
        # Blame the key password only when it was given, or the MAC vouched for the store's.
        which: Literal["store", "key"] = "key" if self.key_given or self.mac_verified else "store"
        if self.key is None:
            raise P12PasswordError(
                "the private key is encrypted: a password is needed", which=which
            )
        self._java_takes(algorithm)
        try:
            return _decrypt(
                algorithm, _octets(encrypted), self.key, which, _is_pkcs8, budget=self.budget
            )
        except P12PasswordError as exc:
            raise self._encoded_otherwise(exc, self.key) from None

    def _encoded_otherwise(self, exc: P12PasswordError, password: _Password) -> P12PasswordError:
        """``exc``, marked when the MAC verified with the same non-ASCII password, no key
        password was given and nothing decrypted with it yet: the content was encrypted
        with another encoding of it."""
        exc.encoding = (
            self.mac_verified
            and not self.key_given
            and not self.decrypted  # what did decrypt with it: a key's own password
            and not password.utf8.isascii()
        )
        exc.after_mac = self.mac_verified
        return exc


def _decrypt(
    algorithm: TLV,
    data: bytes,
    password: _Password,
    which: Literal["store", "key"],
    plausible: Callable[[bytes], bool],
    *,
    budget: WorkBudget,
) -> bytes:
    oid, params = _algorithm(algorithm)
    if oid == _PBES2 or oid in _PBES1_SCHEMES:
        # PBES1 takes the password's bytes as they are (OpenSSL's UTF-8; an empty
        # password is no bytes, which cryptography's loader would take for none).
        secrets = [password.utf8]
    elif oid in _PKCS12_PBES or oid in _PKCS12_RC4:
        secrets = password.pbe_candidates()
    else:
        raise P12UnsupportedError(f"unsupported encryption algorithm {algorithm_name(oid)}")
    budget.charge_kdf(_kdf_cost(oid, params) * len(secrets), _charged(oid))
    for secret in secrets:
        if oid in _PKCS12_RC4:
            # A stream cipher: no padding to check, so only plausibility tells a wrong
            # password (the MAC, when there is one, has told it already).
            if not data:
                raise P12FormatError("the encrypted data is empty")
            budget.charge_rc2(len(data))
            plain = _rc2.rc4(_pkcs12_rc4_key(oid, params, secret), data)
            if plausible(plain):
                _opened_with(password, secret)
                return plain
            continue
        cipher: BlockCipherAlgorithm | bytes
        if oid == _PBES2:
            cipher, iv = _pbes2(params, secret)
        elif oid in _PBES1_SCHEMES:
            cipher, iv = _pbes1(oid, params, secret)
        else:
            cipher, iv = _pkcs12_pbe(oid, params, secret)
        block = 8 if isinstance(cipher, bytes) else cipher.block_size // 8
        if len(iv) != block:
            raise P12FormatError("the initialisation vector does not fit the cipher")
        if not data or len(data) % block:
            raise P12FormatError("the encrypted data is not a whole number of blocks")
        if isinstance(cipher, bytes):
            # 40- and 64-bit RC2, which cryptography does not offer: our own RFC 2268
            # code, with the effective key length the key's (5 or 8 bytes).
            budget.charge_rc2(len(data))
            opened = _unpadded(_rc2.cbc_decrypt(cipher, len(cipher) * 8, iv, data), 64)
        else:
            opened = cbc_plaintext(cipher, iv, data)
        # No plaintext (bad padding) is the usual sign of a wrong password; a wrong
        # password passes the padding check 1 time in 256, so the plaintext is judged too.
        if opened is not None and plausible(opened):
            _opened_with(password, secret)
            return opened
    what = "the certificates do" if which == "store" else "the private key does"
    raise P12PasswordError(f"{what} not decrypt: wrong {which} password", which=which)


def _opened_with(password: _Password, secret: bytes) -> None:
    """Note a PKCS#12 PBE opened under the standard BMPString of a non-ASCII password,
    which the JDK never derives (see ``_Password.java_misencoded``)."""
    if password.java_bmp is not None and secret is password.bmp:
        password.java_misencoded = True


def cbc_plaintext(cipher: BlockCipherAlgorithm, iv: bytes, data: bytes) -> bytes | None:
    """``data`` decrypted with ``cipher`` in CBC mode, its PKCS#7 padding removed;
    ``None`` when the padding is wrong (the usual sign of a wrong password)."""
    decryptor = Cipher(cipher, modes.CBC(iv)).decryptor()
    return _unpadded(decryptor.update(data) + decryptor.finalize(), cipher.block_size)


def _unpadded(padded: bytes, block_bits: int) -> bytes | None:
    unpadder = padding.PKCS7(block_bits).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


def decrypt_pkcs8(encrypted_pkcs8: bytes, password: Secret, budget: WorkBudget) -> bytes:
    """The ``PrivateKeyInfo`` DER inside an ``EncryptedPrivateKeyInfo``, byte for byte.

    For an ``ENCRYPTED PRIVATE KEY`` PEM block, with the decryption a shrouded key
    bag gets: the key comes out as it went in (a library that decrypts by parsing the
    key writes it back in its own words: an RSA-PSS key as plain rsaEncryption, whose
    certificate OpenSSL then refuses to pair with it).

    Raises:
        P12UnsupportedError: a scheme only another library may decrypt (PBES1 with
            MD2, a PBES2 cipher other than AES and 3DES): the caller hands the block to
            it, capped by :func:`check_key_encryption`.
        P12PasswordError: the password does not decrypt it.
        WorkLimitError: over a cap or over the budget.
        P12FormatError: malformed.
    """
    try:
        # RFC 5958: EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }
        algorithm, data = _pair(_der.read_single(encrypted_pkcs8, _der.SEQUENCE))
        oid, params = _algorithm(algorithm)
        if oid == _PBES2:
            # Told apart before any work is charged: the caller's fallback charges it.
            kdf, scheme = _pair(params)
            if _algorithm(kdf)[0] not in (_PBKDF2, _SCRYPT) or (
                _algorithm(scheme)[0] not in _PBES2_CIPHERS
            ):
                raise P12UnsupportedError("a PBES2 scheme other than AES or 3DES")
        return _decrypt(
            algorithm, _octets(data), _Password(password), "key", _is_pkcs8, budget=budget
        )
    except DERError as exc:
        raise P12FormatError(f"malformed EncryptedPrivateKeyInfo: {exc}") from exc


def check_key_encryption(encrypted_pkcs8: bytes, budget: WorkBudget) -> None:
    """Charge ``budget`` for decrypting an ``EncryptedPrivateKeyInfo``, before anyone does.

    For PKCS#8 keys that another library will decrypt (an ``ENCRYPTED PRIVATE KEY``
    PEM block): their key derivation runs inside OpenSSL, holding the GIL, so its
    parameters are read and capped here first, with the caps PKCS#12 has (PBKDF2 and
    the PKCS#12 and PKCS#5 v1.5 KDFs: Java's 5,000,000 iterations; scrypt: OpenSSL's
    32 MiB and a work cap).

    Raises:
        WorkLimitError: over a cap or over the budget.
        P12FormatError: malformed, or a scheme nobody here decrypts.
    """
    try:
        # RFC 5958: EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }
        algorithm, _ = _pair(_der.read_single(encrypted_pkcs8, _der.SEQUENCE))
        oid, params = _algorithm(algorithm)
        budget.charge_kdf(_kdf_cost(oid, params), _charged(oid))
    except DERError as exc:
        raise P12FormatError(f"malformed EncryptedPrivateKeyInfo: {exc}") from exc


def _kdf_cost(oid: str, params: TLV | None) -> int:
    """Iterations (rounds times output blocks) one decryption with this scheme derives.

    Reads and caps the parameters without deriving anything: Java's 5,000,000
    iterations per derivation, and for scrypt OpenSSL's 32 MiB and a work cap.

    Raises:
        WorkLimitError: over a cap.
        P12FormatError: malformed, or a scheme nobody here decrypts.
    """
    if oid == _PBES2:
        # RFC 8018 section A.4: PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme }
        kdf, scheme = _pair(params)
        key_size = _PBES2_CIPHERS.get(_algorithm(scheme)[0], (32, True))[0]
        kdf_oid, kdf_params = _algorithm(kdf)
        if kdf_oid == _SCRYPT:
            return _scrypt_work(kdf_params)
        _, iterations, length, prf = _pbkdf2_params(kdf)
        return iterations * _blocks(length or key_size, prf)
    if oid in _PKCS12_PBES or oid in _PBES1 or oid in _PKCS12_RC4:
        _, rounds = _salt_and_rounds(params)
        if oid in _PBES1:
            # PBKDF1 runs here as a Python loop of hash calls, holding the GIL: 0.38 us
            # an iteration (MD5), 1.7 times PBKDF2-HMAC-SHA256 in C (weight 1).
            return rounds * _PBES1_WEIGHT
        key_size = _PKCS12_PBES.get(oid, (16, False))[0]
        # RFC 7292 appendix B.3: the key and the IV are derived separately (SHA-1).
        return rounds * (_blocks(key_size, "sha1") + 1)
    raise P12UnsupportedError(f"unsupported encryption algorithm {algorithm_name(oid)}")


def _charged(oid: str) -> str:
    """How a budget refusal names a derivation: PBES1's weight said, since its
    iterations count three times."""
    if oid in _PBES1:
        return f"its key derivations (PBES1: each iteration counts {_PBES1_WEIGHT} times)"
    return "its key derivations"


def _blocks(size: int, name: str) -> int:
    """What one iteration deriving ``size`` bytes with hash ``name`` costs the budget:
    its output blocks, each at the hash's weight (:func:`mtls._budget.hash_weight`)."""
    return -(-size // _HASHES[name][0].digest_size) * hash_weight(name)


def _scrypt_params(params: TLV | None) -> tuple[bytes, int, int, int, int | None]:
    """Salt, N, r, p and the key length (``None``: not given) of scrypt parameters."""
    # RFC 7914 section 7.1: scrypt-params ::= SEQUENCE { salt OCTET STRING,
    #   costParameter, blockSize, parallelizationParameter INTEGER, keyLength OPTIONAL }
    parts = _seq(_present(params))
    if len(parts) not in (4, 5):
        raise P12FormatError("malformed scrypt parameters")
    salt = _octets(parts[0])
    n, r, p = (_int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise P12FormatError("scrypt parameters out of range")
    return salt, n, r, p, (_int(parts[4]) if len(parts) == 5 else None)


def _scrypt_work(params: TLV | None) -> int:
    _, n, r, p, _ = _scrypt_params(params)
    if 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise WorkLimitError(
            f"scrypt asks for {128 * n * r // (1024 * 1024)} MiB of memory, more than "
            f"{_MAX_SCRYPT_MEMORY // (1024 * 1024)} MiB (OpenSSL's own limit)"
        )
    if n * r * p > _MAX_SCRYPT_WORK:
        raise WorkLimitError(
            f"scrypt work N*r*p = {n * r * p} is more than {_MAX_SCRYPT_WORK}, the limit"
        )
    return n * r * p


def _pbes2(params: TLV | None, password: bytes) -> tuple[BlockCipherAlgorithm, bytes]:
    # RFC 8018 section A.4: PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme }
    kdf, scheme = _pair(params)
    scheme_oid, iv = _algorithm(scheme)
    if scheme_oid not in _PBES2_CIPHERS:
        raise P12UnsupportedError(f"unsupported encryption scheme {algorithm_name(scheme_oid)}")
    key_size, is_aes = _PBES2_CIPHERS[scheme_oid]
    kdf_oid, kdf_params = _algorithm(kdf)
    if kdf_oid == _SCRYPT:
        # OpenSSL writes it (openssl pkcs8 -scrypt); _kdf_cost has capped its work.
        salt, n, r, p, length = _scrypt_params(kdf_params)
        if length not in (None, key_size):
            raise P12FormatError("scrypt key length does not fit the cipher")
        key = Scrypt(salt, key_size, n, r, p).derive(password)
        return (algorithms.AES(key) if is_aes else TripleDES(key)), _octets(_present(iv))
    salt, rounds, length, prf = _pbkdf2_params(kdf)
    if length not in (None, key_size):
        raise P12FormatError("PBKDF2 key length does not fit the cipher")
    key = _pbkdf2(prf, password, salt, rounds, key_size)
    return (algorithms.AES(key) if is_aes else TripleDES(key)), _octets(_present(iv))


def _salt_and_rounds(params: TLV | None) -> tuple[bytes, int]:
    """The salt and iteration count of pkcs-12PbeParams (RFC 7292 appendix C) or
    PBES1's PBEParameter (RFC 8018 A.3): SEQUENCE { salt OCTET STRING, iterations }."""
    salt_tlv, rounds_tlv = _pair(params)
    return _octets(salt_tlv), _iterations(rounds_tlv)


def _pkcs12_pbe(
    oid: str, params: TLV | None, bmp: bytes
) -> tuple[BlockCipherAlgorithm | bytes, bytes]:
    # RFC 7292 appendix B.3: the key is derived with ID 1, the IV with ID 2, both SHA-1.
    key_size, is_rc2 = _PKCS12_PBES[oid]
    salt, rounds = _salt_and_rounds(params)
    key = _p12_kdf("sha1", bmp, salt, purpose=1, rounds=rounds, size=key_size)
    iv = _p12_kdf("sha1", bmp, salt, purpose=2, rounds=rounds, size=8)
    if is_rc2:
        return (RC2(key) if key_size == 16 else key), iv  # bytes: 40-bit RC2 key
    # Two-key 3DES is K1 K2 K1; expanding it here avoids cryptography's deprecation warning.
    return TripleDES(key if key_size == 24 else key + key[:8]), iv


def _pbes1(
    oid: str, params: TLV | None, password: bytes
) -> tuple[BlockCipherAlgorithm | bytes, bytes]:
    # RFC 8018 section 6.1, PBKDF1 (5.1): T1 = Hash(P || S), Ti = Hash(Ti-1); the key
    # is T[0:8], the IV T[8:16].
    name, is_rc2 = _PBES1_SCHEMES[oid]
    salt, rounds = _salt_and_rounds(params)
    new = hashlib.md5 if name == "md5" else hashlib.sha1
    digest = new(password + salt, usedforsecurity=False).digest()
    for _ in range(rounds - 1):
        digest = new(digest, usedforsecurity=False).digest()
    key, iv = digest[:8], digest[8:16]
    # Single DES is 3DES with one key three times (cryptography warns on short keys).
    return (key if is_rc2 else TripleDES(key * 3)), iv


def _pkcs12_rc4_key(oid: str, params: TLV | None, bmp: bytes) -> bytes:
    # RFC 7292 appendix B.3 with ID 1, as for the block ciphers; RC4 takes no IV.
    salt, rounds = _salt_and_rounds(params)
    return _p12_kdf("sha1", bmp, salt, purpose=1, rounds=rounds, size=_PKCS12_RC4[oid])


def _pbkdf2(name: str, password: bytes, salt: bytes, rounds: int, size: int) -> bytes:
    return PBKDF2HMAC(_HASHES[name][0], size, salt, rounds).derive(password)


def _pbkdf2_params(kdf: TLV) -> tuple[bytes, int, int | None, str]:
    # RFC 8018 appendix A.2: PBKDF2-params ::= SEQUENCE { salt OCTET STRING,
    #   iterationCount INTEGER, keyLength INTEGER OPTIONAL, prf DEFAULT hmacWithSHA1 }
    kdf_oid, params = _algorithm(kdf)
    if kdf_oid != _PBKDF2:
        raise P12UnsupportedError(f"unsupported key derivation function {algorithm_name(kdf_oid)}")
    parts = _seq(_present(params))
    if len(parts) < 2 or parts[0].tag != _der.OCTET_STRING:
        raise P12FormatError("unsupported or malformed PBKDF2 parameters")
    salt, rounds = parts[0].value, _iterations(parts[1])
    rest = parts[2:]
    length = None
    if rest and rest[0].tag == _der.INTEGER:
        length = _int(rest[0])
        if not 1 <= length <= 1024:
            raise P12FormatError("PBKDF2 key length out of range")
        rest = rest[1:]
    prf = "sha1"
    if rest:
        prf = _hash_name(_HMAC_OIDS, *_algorithm(rest[0]))
        rest = rest[1:]
    if rest:
        raise P12FormatError("malformed PBKDF2 parameters")
    return salt, rounds, length, prf


def _attributes(attributes: TLV | None) -> tuple[str | None, bytes | None, bool]:
    # RFC 7292 section 4.2: PKCS12Attribute ::= SEQUENCE { attrId, attrValues SET OF }
    alias, local_key_id, trusted = None, None, False
    if attributes is None:
        return alias, local_key_id, trusted
    for attribute in attributes.expect(_der.SET).children():
        attr_id, values_tlv = _pair(attribute)
        oid = _oid(attr_id)
        values = values_tlv.expect(_der.SET).children()
        if oid == _JAVA_TRUSTED:
            trusted = True
        elif oid == _FRIENDLY_NAME and values:
            # A lone surrogate (or an odd byte) is U+FFFD, as the JKS reader makes it:
            # keytool lists such an entry, it does not refuse the store.
            alias = values[0].expect(_der.BMP_STRING).value.decode("utf-16-be", "replace")
        elif oid == _LOCAL_KEY_ID and values:
            local_key_id = values[0].expect(_der.OCTET_STRING).value
    return alias, local_key_id, trusted


def _is_sequence(data: bytes) -> bool:
    try:
        _der.check_single(data, _der.SEQUENCE)
    except DERError:
        return False
    return True


def _is_pkcs8(data: bytes) -> bool:
    """Cheap shape check of PrivateKeyInfo: SEQUENCE { INTEGER, SEQUENCE, OCTET STRING, ... }."""
    try:
        parts = _der.read_single(data, _der.SEQUENCE).children()
    except DERError:
        return False
    tags = [part.tag for part in parts[:3]]
    return tags == [_der.INTEGER, _der.SEQUENCE, _der.OCTET_STRING]


# --------------------------------------------------------------------------- writing


def content_infos(pfx: bytes) -> list[bytes]:
    """The ContentInfos of a PFX's AuthenticatedSafe, each as its DER: what
    :func:`join_pfx` puts together (of PFXs cryptography wrote, DER throughout)."""
    parts = _seq(_der.read_single(pfx, _der.SEQUENCE))
    content_type, content = _content_info(parts[1])
    if content_type != _DATA:
        raise P12UnsupportedError(
            f"unsupported authSafe content type {algorithm_name(content_type)}",
            _PUBLIC_KEY_MODE_FIX,
        )
    auth_safe = _der.read_single(_der.read_single(content, _der.OCTET_STRING).value, _der.SEQUENCE)
    return [_der.encode(info.tag, info.value) for info in auth_safe.children()]


def join_pfx(infos: list[bytes], password: str | None, *, rounds: int = 10_000) -> bytes:
    """One PFX of ``infos`` (each a ContentInfo's DER), with keytool's MAC since JDK 12:
    HMAC-SHA256 under the RFC 7292 appendix B key (ID 3, SHA-256, ``rounds``), a 20-byte
    random salt. Each ContentInfo keeps the encryption it was written with. ``password``
    None: no MAC (the JDK's password-less format)."""
    auth_safe = _der.encode(_der.SEQUENCE, b"".join(infos))
    info = _der.encode(
        _der.SEQUENCE,
        _der.encode_oid(_DATA) + _der.encode(0xA0, _der.encode(_der.OCTET_STRING, auth_safe)),
    )
    if password is None:
        return _der.encode(_der.SEQUENCE, _der.encode(_der.INTEGER, b"\x03") + info)
    salt = os.urandom(20)
    key = _p12_kdf("sha256", _bmp(password), salt, purpose=3, rounds=rounds, size=32)
    mac = HMAC(key, hashes.SHA256())
    mac.update(auth_safe)
    sha256 = _der.encode(_der.SEQUENCE, _der.encode_oid("2.16.840.1.101.3.4.2.1") + b"\x05\x00")
    mac_data = _der.encode(
        _der.SEQUENCE,
        _der.encode(_der.SEQUENCE, sha256 + _der.encode(_der.OCTET_STRING, mac.finalize()))
        + _der.encode(_der.OCTET_STRING, salt)
        + _der.encode(_der.INTEGER, rounds.to_bytes(rounds.bit_length() // 8 + 1, "big")),
    )
    return _der.encode(_der.SEQUENCE, _der.encode(_der.INTEGER, b"\x03") + info + mac_data)


def _content_info(tlv: TLV) -> tuple[str, bytes]:
    # PKCS#7 ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT }
    content_type, content = _pair(tlv)
    return _oid(content_type), content.expect(0xA0).value


def _algorithm(tlv: TLV) -> tuple[str, TLV | None]:
    """AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }."""
    parts = _seq(tlv)
    if len(parts) not in (1, 2):
        raise P12FormatError("malformed AlgorithmIdentifier")
    return _oid(parts[0]), parts[1] if len(parts) == 2 else None


def _hash_name(table: dict[str, str], oid: str, params: TLV | None) -> str:
    if oid not in table:
        raise P12UnsupportedError(
            f"unsupported digest or HMAC algorithm {algorithm_name(oid)}", _MAC_FIX
        )
    if params is not None and params.tag != _der.NULL:
        raise P12FormatError("unexpected digest algorithm parameters")
    return table[oid]


def _iterations(tlv: TLV) -> int:
    rounds = _int(tlv)
    if rounds < 1:
        raise P12FormatError(f"iteration count {max(rounds, -1)} is not positive")
    if rounds > _MAX_ITERATIONS:
        shown = f"{rounds:,}" if rounds <= _MAX_ITERATIONS * 1000 else "far beyond that"
        raise WorkLimitError(
            f"iteration count {shown} is more than {_MAX_ITERATIONS:,}, Java's limit"
        )
    return rounds


def _pair(tlv: TLV | None) -> tuple[TLV, TLV]:
    parts = _seq(_present(tlv))
    if len(parts) != 2:
        raise P12FormatError("expected a SEQUENCE of two elements")
    return parts[0], parts[1]


def _present(tlv: TLV | None) -> TLV:
    if tlv is None:
        raise P12FormatError("missing algorithm parameters")
    return tlv


def _explicit(tlv: TLV) -> TLV:
    """The single element inside a [0] EXPLICIT tag."""
    inner = _der.read_tlv(tlv.expect(0xA0).value)
    if inner.end != len(tlv.value):
        raise P12FormatError("trailing bytes inside an explicit tag")
    return inner


def _seq(tlv: TLV) -> list[TLV]:
    return tlv.expect(_der.SEQUENCE).children()


def _oid(tlv: TLV) -> str:
    return _der.decode_oid(tlv.expect(_der.OID).value)


def _int(tlv: TLV) -> int:
    return _der.decode_int(tlv.expect(_der.INTEGER).value)


def _octets(tlv: TLV) -> bytes:
    return tlv.expect(_der.OCTET_STRING).value


def algorithm_name(oid: str) -> str:
    """An algorithm OID as messages show it: its name too, when it is one we know."""
    return f"{_UNSUPPORTED[oid]} ({oid})" if oid in _UNSUPPORTED else oid
