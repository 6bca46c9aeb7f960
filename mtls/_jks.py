"""JKS and JCEKS: our own reader for the containers and their key ciphers.

The container formats are small (Sun's ``JavaKeyStore`` and ``JceKeyStore``)::

    magic (FEEDFEED: JKS, CECECECE: JCEKS)  u32 version (1 or 2)  u32 count
    count x [ u32 tag  UTF alias  i64 date  body ]
        tag 1 private key: u32 len + EncryptedPrivateKeyInfo, u32 n + n certificates
        tag 2 trusted certificate: one certificate
        tag 3 secret key (JCEKS): a serialized javax.crypto.SealedObject
    certificate (version 2): UTF type ("X.509") + u32 len + DER; version 1 has no type
    SHA-1(password as UTF-16BE + "Mighty Aphrodite" + everything above)

``UTF`` is Java's ``DataInput.readUTF``: a u16 length and *modified* UTF-8 (NUL as
``C0 80``, supplementary characters as two encoded surrogates), decoded here as the
JDK does, so an alias reads as keytool shows it.

We read the containers ourselves rather than through pyjks because pyjks
deserialises JCEKS secret-key entries with javaobj, which builds debug text for
every object whether logging is on or not (a 623-byte file of nested shared arrays
took 944 s and 2 GB) and logs file content at ERROR for damaged ones. Secret keys
are no use to TLS, so a sealed object is walked by its framing only: the JDK's own
load filter allows exactly ``SealedObjectForKeyProtector`` whose fields are byte
arrays and strings, and so does this reader; nothing is ever instantiated.

The key-protection ciphers are ours too: Sun's ``KeyProtector`` (JKS: a SHA-1
keystream) and ``PBEWithMD5AndTripleDES`` (JCEKS), with our own reading of the
``EncryptedPrivateKeyInfo`` envelope (pyjks requires NULL algorithm parameters,
which JDK 21 and later omit: JDK-8301310, pyjks issue 79). pyjks's byte-by-byte
keystream cost more than the rest of a JKS load; ours XORs the key as one integer.

Work is bounded before the password is known to be right: the integrity hash is
checked before any key is decrypted, iteration counts are capped per entry (the
JDK's own ceiling) and per file (one :class:`~mtls._budget.WorkBudget`, as for PKCS#12).

pyjks (and pyasn1, pycryptodomex, javaobj under it) is imported only when a store
needs it (:func:`pyjks`: writing JKS/JCEKS, BKS/UBER), never to read a JKS or JCEKS
store, nor a vault's JCEKS secret key (unsealed here): it is most of the import time. A missing
or broken install is :class:`PyJKSUnavailable` then, which the readers and writers
turn into a ``KeystoreError`` naming the file and the fix.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import hashlib
import hmac
import importlib
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from . import _der
from ._budget import WorkBudget
from ._entries import fold
from ._x509 import pkcs8_well_formed

_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"
_JKS_KEY_PROTECTOR = "1.3.6.1.4.1.42.2.17.1.1"  # sun.security.provider.KeyProtector
_JCE_KEY_PROTECTOR = "1.3.6.1.4.1.42.2.19.1"  # PBEWithMD5AndTripleDES (com.sun.crypto.provider)
_MAX_JCE_ITERATIONS = 5_000_000  # the JDK's own ceiling (JceKeyStore); hostile input must not spin
_SEAL_ALGORITHM = "PBEWithMD5AndTripleDES"  # what the JDK's KeyProtector.seal uses
_SHOWN = 60  # characters of file-supplied text (class names, algorithms) put in a message


class JKSFormatError(ValueError):
    """The container is not a readable JKS/JCEKS store. The message says why and how to fix it."""


class JKSIntegrityError(ValueError):
    """The store's integrity hash does not match the password (or the file was altered)."""


class JKSKeyPasswordError(ValueError):
    """A key entry does not decrypt with the key password."""


class PyJKSUnavailable(RuntimeError):
    """pyjks, or a library it needs, does not import: the message says why."""


@functools.cache
def pyjks() -> Any:
    """The ``jks`` package, imported on first use with the modules we call.

    Raises:
        PyJKSUnavailable: it (or pycryptodomex, pyasn1, javaobj) is missing or
            broken; a later call tries again.
    """
    try:
        for name in ("jks", "jks.sun_crypto", "jks.util", "jks.rfc7292"):
            importlib.import_module(name)
    except Exception as exc:  # a broken install fails at import with anything at all
        raise PyJKSUnavailable(
            f"pyjks does not import ({type(exc).__name__}: {exc}); reinstall it with "
            "pip install --force-reinstall pyjks"
        ) from exc
    return importlib.import_module("jks")


@dataclass(frozen=True, slots=True)
class JKSKey:
    """A key entry, still protected: decrypt with :func:`decrypt_key`."""

    alias: str
    protected: bytes = field(repr=False)
    chain_der: tuple[bytes, ...]
    store_type: str
    plain: bool = False  # BKS "key" entries: ``protected`` is the PKCS#8 itself


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """An entry TLS cannot use (a JCEKS secret key, a Bouncy Castle secret): listed,
    and for a JCEKS sealed key unsealed by :func:`secret_key_entry` (the vault's)."""

    alias: str
    kind: str  # what keytool would call it, with what is readable without decrypting
    #: A JCEKS sealed key's (encodedParams, encryptedContent), as the file has them.
    sealed: tuple[bytes, bytes] | None = field(default=None, repr=False)


Entry = JKSKey | tuple[str, bytes] | SecretEntry  # a key, a trusted (alias, DER), a secret


@dataclass(frozen=True, slots=True)
class JKSContents:
    """The entries of a JKS or JCEKS store, in file order (a repeated alias: the last one)."""

    store_type: str  # "JKS" or "JCEKS"
    keys: tuple[JKSKey, ...]
    certs: tuple[tuple[str, bytes], ...]  # trusted certificate entries: (alias, DER)
    secrets: tuple[SecretEntry, ...]
    replaced: tuple[str, ...] = ()  # aliases that appeared more than once
    # aliases of certificates (trusted, or in a key entry's chain) whose field held
    # bytes after the certificate: cut off, as Java reads one certificate from it
    trimmed: tuple[str, ...] = ()
    # aliases not written in lower case (no keytool writes them): the JDK lists them,
    # but looks every alias up in lower case, so no lookup finds them (its key and
    # trust managers skip them); mtls serves them, and notes it
    unreachable: tuple[str, ...] = ()


# --------------------------------------------------------------------------- framing


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class Reader:
    """Java ``DataInputStream`` over bytes; running out raises :class:`JKSFormatError`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _damaged(self) -> JKSFormatError:
        return JKSFormatError(f"damaged or truncated {self.what} store: replace the file")

    def _advance(self, size: int) -> int:
        """Move past ``size`` bytes; return where they start (running out is damage)."""
        pos = self.pos
        end = pos + size
        if size < 0 or end > len(self.data):
            raise self._damaged()
        self.pos = end
        return pos

    def take(self, size: int) -> bytes:
        pos = self._advance(size)
        return self.data[pos : self.pos]

    def u8(self) -> int:
        return self.data[self._advance(1)]

    # The integers are read in place (no slice per field): a store is mostly them.
    def u16(self) -> int:
        value: int = _U16.unpack_from(self.data, self._advance(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack_from(self.data, self._advance(4))[0]
        return value

    def skip(self, size: int) -> None:
        """Step over ``size`` bytes (a date, a magic number) without copying them."""
        self._advance(size)

    def blob(self) -> bytes:
        """A ``writeInt(len)`` + bytes field (a length past the end is damage)."""
        return self.take(self.u32())

    def utf(self) -> str:
        """``DataInput.readUTF``: u16 length and modified UTF-8, decoded as the JDK does."""
        return java_utf(self.take(self.u16()), self.what)


def java_utf(raw: bytes, what: str) -> str:
    """Decode Java's modified UTF-8 (``DataInputStream.readUTF``) exactly as the JDK does.

    Differences from UTF-8: NUL may be ``C0 80`` (a plain ``00`` is accepted too),
    overlong forms are accepted, supplementary characters are two encoded
    surrogates, and 4-byte sequences are malformed. An unpaired surrogate, which a
    Java string can hold, becomes U+FFFD.
    """
    if raw.isascii():
        return raw.decode("ascii")
    if max(raw) < 0xF0:
        try:
            return raw.decode("utf-8")  # valid UTF-8 without 4-byte forms means the same
        except UnicodeDecodeError:
            pass
    units: list[int] = []
    pos, size = 0, len(raw)
    while pos < size:
        lead = raw[pos]
        if lead < 0x80:
            units.append(lead)
            pos += 1
            continue
        width = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 0
        tail = raw[pos + 1 : pos + width]
        if not width or len(tail) != width - 1 or any(b >> 6 != 0b10 for b in tail):
            raise JKSFormatError(
                f"damaged {what} store: an alias or name is not modified UTF-8: replace the file"
            )
        if width == 2:
            units.append((lead & 0x1F) << 6 | tail[0] & 0x3F)
        else:
            units.append((lead & 0x0F) << 12 | (tail[0] & 0x3F) << 6 | tail[1] & 0x3F)
        pos += width
    text = "".join(map(chr, units))
    # Pair surrogates as a Java String would; a lone one cannot be shown, hence U+FFFD.
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def shown(text: str, limit: int = _SHOWN) -> str:
    """File-supplied text for a message: quoted, escaped, bounded (``limit`` characters)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def shown_alias(alias: str) -> str:
    """A secret alias for a message: whole up to 200 characters, for it is what the user
    searches the files for (``Axis2.Https.Sender.CustomSSLProfile.Profile1.KeyStore.
    Password`` is 63); an alias names a secret, it is not one."""
    return shown(alias, 200)


def parse_store(data: bytes, password: str | None, budget: WorkBudget | None = None) -> JKSContents:
    """Parse a JKS/JCEKS store; verify its integrity hash when ``password`` is given.

    ``budget`` is not charged (the keyed hash is one SHA-1); it is accepted so that
    every container parser has one signature.

    The framing is read first (linear in the size, no cryptography), then the hash
    is checked, and only then is the content judged (an empty certificate chain,
    a secret key sealed in a way the JDK never writes), so that a wrong password
    is reported as such.

    Raises:
        JKSFormatError: the bytes are not a well-formed store, or hold an entry
            mtls refuses; the message says which and how to fix it.
        JKSIntegrityError: the hash does not match (wrong password or altered file).
    """
    magic = data[:4]
    if magic not in (_JKS_MAGIC, _JCEKS_MAGIC):
        raise JKSFormatError("not a JKS or JCEKS store (wrong magic number): replace the file")
    store_type = "JKS" if magic == _JKS_MAGIC else "JCEKS"
    reader = Reader(data, store_type)
    reader.skip(4)
    version = reader.u32()
    if version not in (1, 2):
        raise JKSFormatError(
            f"{store_type} format version {version} is unknown (the JDK writes 1 and 2): "
            "replace the file"
        )
    entries: list[Entry] = []
    typed = version == 2  # version 1 certificates have no type: X.509 is implied
    for _ in range(reader.u32()):  # each entry consumes bytes: bounded by the size
        tag = reader.u32()
        alias = reader.utf()
        reader.skip(8)  # creation date
        if tag == 1:
            protected = reader.blob()
            chain = tuple(certificate(reader, typed=typed) for _ in range(reader.u32()))
            entries.append(JKSKey(alias, protected, chain, store_type))
        elif tag == 2:
            entries.append((alias, certificate(reader, typed=typed)))
        elif tag == 3 and store_type == "JCEKS":
            try:
                kind, sealed = _sealed_secret_key(reader, alias)
            except JKSFormatError:
                # Its framing is its content: the hash cannot wait for the end of the
                # entries. A whole file ends with it, so a wrong password is still
                # told from a sealed object the JDK does not write.
                if password is not None and not _keyed_hash_matches(data, len(data) - 20, password):
                    raise JKSIntegrityError("integrity hash mismatch") from None
                raise
            entries.append(SecretEntry(alias, kind, sealed))
        else:
            raise JKSFormatError(
                f"damaged {store_type} store: unknown entry tag {tag}: replace the file"
            )
    body_end = reader.pos
    if password is not None:
        if len(data) < body_end + 20:
            raise JKSFormatError(
                f"truncated {store_type} store: the integrity hash is missing: replace the file"
            )
        if not _keyed_hash_matches(data, body_end, password):
            raise JKSIntegrityError("integrity hash mismatch")
    return contents(store_type, entries)


def _keyed_hash_matches(data: bytes, body_end: int, password: str) -> bool:
    """Whether the 20 bytes at ``body_end`` are the JDK's keyed hash of what precedes."""
    if body_end < 0:
        return False
    keyed = hashlib.sha1(  # noqa: S324 - the JDK's keyed hash
        password.encode("utf-16-be", "surrogatepass") + b"Mighty Aphrodite"
    )
    keyed.update(memoryview(data)[:body_end])  # the store is hashed in place, not copied
    return hmac.compare_digest(keyed.digest(), data[body_end : body_end + 20])


#: The certificate types Java reads a store's certificate with: ``X.509`` and its alias
#: ``X509`` (the SUN provider's, which keystore-go writes: cert-manager's and
#: trust-manager's JKS files, h190), matched as the JCA matches names, in any case.
_X509_TYPES = frozenset({"X.509", "X509"})


def certificate(reader: Reader, *, typed: bool = True) -> bytes:
    """A certificate field: its type (``X.509``, the only one TLS uses) and its DER."""
    if typed:
        kind = reader.utf()
        if kind not in _X509_TYPES and kind.upper() not in _X509_TYPES:
            raise JKSFormatError(
                f"the store holds a certificate of type {shown(kind)}; only X.509 is "
                "used for TLS: remove that entry"
            )
    der = reader.blob()
    if not der:  # keytool never writes one; OpenSSL would refuse the empty anchor list
        raise JKSFormatError("the store holds an empty certificate: remove that entry")
    return der


def contents(store_type: str, entries: list[Entry]) -> JKSContents:
    """The entries as the JDK's (and Bouncy Castle's) table keeps them, judged.

    The table is keyed by alias, so a repeated alias keeps its last entry; mtls
    compares aliases case-insensitively, as Java's lookups do. The JDK's JKS and JCEKS
    tables keep each alias as written and look it up in lower case (``getKey("ED")``
    asks for ``"ed"``): of aliases that differ only in case, the entry written in lower
    case is the one Java finds, wherever it stands (h196: mtls served the other), and
    one written otherwise is found by no lookup (:attr:`JKSContents.unreachable`).
    Called once the integrity check has passed, so that a wrong password is reported
    as such.
    """
    table: dict[str, Entry] = {}
    replaced: list[str] = []
    trimmed: list[str] = []
    java_case = store_type in ("JKS", "JCEKS")
    for entry in entries:
        alias = _alias_of(entry)
        folded = fold(alias)
        held = table.get(folded)
        if held is not None:
            replaced.append(alias)
            if java_case and alias != folded and _alias_of(held) == folded:
                continue  # Java finds the entry written in lower case, not this one
            del table[folded]
        table[folded] = entry
    values = [_one_certificate_each(entry, trimmed) for entry in table.values()]
    keys = tuple(e for e in values if isinstance(e, JKSKey))
    for key in keys:
        if not key.chain_der:
            raise JKSFormatError(
                f"key entry {shown(key.alias)} has no certificate (its chain is empty), so "
                "it cannot be used or trusted: import the key again with its certificate"
            )
    return JKSContents(
        store_type,
        keys,
        tuple(e for e in values if isinstance(e, tuple)),
        tuple(e for e in values if isinstance(e, SecretEntry)),
        tuple(replaced),
        tuple(dict.fromkeys(trimmed)),
        tuple(a for e in values if java_case and (a := _alias_of(e)) != fold(a)),
    )


def _alias_of(entry: Entry) -> str:
    return entry[0] if isinstance(entry, tuple) else entry.alias


def _one_certificate_each(entry: Entry, trimmed: list[str]) -> Entry:
    """``entry`` with each certificate read as the JDK reads it: one block.

    The JDK reads a certificate field with ``CertificateFactory.generateCertificate``,
    whose ``X509Factory.readOneBlock`` reads one BER element (or one PEM block) and
    ignores what follows. OpenSSL, given the same bytes as ``cadata``, would read a
    second certificate there as one more anchor (one that ``keytool -list`` never
    shows, and Java never trusts). Cut, both read what Java reads. An alias whose
    field held more goes to ``trimmed`` (a warning).

    Raises:
        JKSFormatError: a field the JDK cannot read either (keytool refuses the store).
    """
    if isinstance(entry, tuple):
        alias, der = entry
        cut, more = _one_block(der, alias)
        if cut is der:
            return entry
        if more:
            trimmed.append(alias)
        return (alias, cut)
    if isinstance(entry, JKSKey):
        blocks = [_one_block(der, entry.alias) for der in entry.chain_der]
        chain = tuple(cut for cut, _ in blocks)
        if all(a is b for a, b in zip(chain, entry.chain_der, strict=True)):
            return entry
        if any(more for _, more in blocks):
            trimmed.append(entry.alias)
        return dataclasses.replace(entry, chain_der=chain)
    return entry


def _one_block(field_bytes: bytes, alias: str) -> tuple[bytes, bool]:
    """The certificate in a certificate field, as ``X509Factory.readOneBlock`` finds
    it, and whether more followed it: the first BER element when the field starts
    with a SEQUENCE (``field_bytes`` itself when that is all of it), else the first
    plain PEM certificate block, decoded (the JDK accepts text there: keytool lists it).

    Raises:
        JKSFormatError: BER the JDK cannot read either (keytool refuses it), or text
            that is not one plain PEM certificate block.
    """
    if field_bytes[:1] == b"\x30":
        try:
            stop = ber_end(field_bytes)
        except _der.DERError as exc:
            raise JKSFormatError(
                f"certificate {shown(alias)} cannot be read as the JDK reads it ({exc}); "
                "keytool refuses this store too: replace the file"
            ) from None
        return (field_bytes, False) if stop == len(field_bytes) else (field_bytes[:stop], True)
    try:
        return _pem_block(field_bytes)
    except _der.DERError as exc:
        raise JKSFormatError(
            f"certificate {shown(alias)} is not DER, nor a plain PEM certificate ({exc}), "
            "which is all mtls reads there (the JDK's lenient reading of other text could "
            "trust another certificate than the one keytool shows): import the "
            "certificate again (keytool -importcert writes DER)"
        ) from None


_PEM_FIELD = re.compile(
    rb"[ \t\r\n]*-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]*?)"
    rb"\r?\n?-----END CERTIFICATE-----[ \t]*(?:\r?\n|\Z)"
)


def _pem_block(field_bytes: bytes) -> tuple[bytes, bool]:
    """The PEM certificate block a certificate field starts with, decoded, and whether
    anything but white space followed it. The JDK takes text there (keytool lists it),
    but its reader is lenient in ways no writer relies on (a header ended by a bare
    CR, junk around the block, other labels), and a lenient reading that differs from
    the JDK's could trust another certificate than the one keytool shows. So only a
    plain ``CERTIFICATE`` block is read, its base64 strictly, and it must hold one
    element, as the JDK requires.

    Raises:
        _der.DERError: anything else.
    """
    match = _PEM_FIELD.match(field_bytes)
    if match is None:
        raise _der.DERError("neither DER nor one plain PEM CERTIFICATE block")
    try:
        decoded = binascii.a2b_base64(b"".join(match.group(1).split()), strict_mode=True)
    except binascii.Error:
        raise _der.DERError("a PEM block whose base64 is not plain") from None
    if decoded[:1] != b"\x30" or ber_end(decoded) != len(decoded):
        raise _der.DERError("a PEM block that is not one certificate")
    return decoded, bool(field_bytes[match.end() :].strip())


def ber_end(data: bytes) -> int:
    """Where the element at the start of ``data`` ends, read as the JDK's
    ``X509Factory.readBERInternal`` reads it: one-byte tags; definite lengths of up to
    four bytes (below 2**31); indefinite lengths, for constructed elements, closed by
    an element of tag 0. Iterative: no nesting depth reaches the interpreter's stack.

    Raises:
        _der.DERError: what the JDK refuses (a truncated element, a longer length, a
            multi-byte tag, a primitive element of indefinite length).
    """
    pos, size, open_indefinite = 0, len(data), 0
    while True:
        if pos + 2 > size:
            raise _der.DERError("a truncated element")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if tag & 0x1F == 0x1F:
            raise _der.DERError("a multi-byte tag")
        if first == 0x80:
            if not tag & 0x20:
                raise _der.DERError("a primitive element of indefinite length")
            open_indefinite += 1
            continue  # its elements follow, up to one of tag 0
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count > 4:
                raise _der.DERError("a length of more than four bytes")
            if pos + count > size:
                raise _der.DERError("a truncated length")
            length = int.from_bytes(data[pos : pos + count], "big")
            if length >= 1 << 31:
                raise _der.DERError("a length of 2 GiB or more")
            pos += count
        pos += length
        if pos > size:
            raise _der.DERError("an element that runs past the end of the field")
        if tag == 0 and open_indefinite:
            open_indefinite -= 1  # end of contents
        if not open_indefinite:
            return pos


# --------------------------------------------------------------------------- sealed keys

# java.io.ObjectStreamConstants
_STREAM_HEADER = b"\xac\xed\x00\x05"
_TC_NULL, _TC_REFERENCE, _TC_CLASSDESC, _TC_OBJECT = 0x70, 0x71, 0x72, 0x73
_TC_STRING, _TC_ARRAY, _TC_ENDBLOCKDATA = 0x74, 0x75, 0x78
_SC_SERIALIZABLE = 0x02
_BASE_HANDLE = 0x7E0000
_PRIMITIVE_SIZES = {"B": 1, "C": 2, "D": 8, "F": 4, "I": 4, "J": 8, "S": 2, "Z": 1}
#: The class chain of what JceKeyStore writes, subclass first (and the only one its
#: load filter lets through at the top level).
_SEALED_CHAIN = ("com.sun.crypto.provider.SealedObjectForKeyProtector", "javax.crypto.SealedObject")
#: What a sealed secret key holds once decrypted (keytool -genseckey: a SecretKeySpec).
_KEY_SPEC_CHAIN = ("javax.crypto.spec.SecretKeySpec",)


_OBJECT = object()


@dataclass(slots=True)
class _ClassDesc:
    name: str
    flags: int = 0
    fields: list[tuple[str, str]] = field(default_factory=list)  # (type code, name)
    parent: _ClassDesc | None = None


def _sealed_secret_key(reader: Reader, alias: str) -> tuple[str, tuple[bytes, bytes]]:
    """Step over a serialized ``SealedObjectForKeyProtector``; say what it is, and
    return its (encodedParams, encryptedContent).

    Nothing is deserialised: the grammar (java.io serialization, version 5) is
    walked for exactly the shape the JDK writes and its load filter accepts, a
    ``SealedObjectForKeyProtector`` whose fields are byte arrays, strings or null.
    Each token consumes input, so the walk is linear in the entry's size.
    """
    walker = _SealedWalker(reader, alias)
    fields = walker.sealed_object(_SEALED_CHAIN)
    algorithm = fields.get("sealAlg")
    if algorithm != _SEAL_ALGORITHM:
        raise JKSFormatError(
            f"secret-key entry {shown(alias)} is sealed with "
            f"{shown(algorithm) if isinstance(algorithm, str) else 'no algorithm'}, not "
            f"{_SEAL_ALGORITHM} as the JDK writes: remove the entry or replace the file"
        )
    content = fields.get("encryptedContent")
    params = fields.get("encodedParams")
    if not isinstance(content, bytes) or not content or not isinstance(params, bytes):
        raise JKSFormatError(
            f"secret-key entry {shown(alias)} has no sealed content: remove the entry or "
            "replace the file"
        )
    return f"secret key (sealed with {_SEAL_ALGORITHM}; TLS cannot use it)", (params, content)


class _SealedWalker:
    def __init__(self, reader: Reader, alias: str) -> None:
        self.reader = reader
        self.alias = alias
        self.handles: list[object] = []

    def fail(self, what: str) -> JKSFormatError:
        return JKSFormatError(
            f"secret-key entry {shown(self.alias)} is not a sealed key as the JDK writes it "
            f"({what}): remove the entry or replace the file"
        )

    def sealed_object(self, expected: tuple[str, ...]) -> dict[str, object]:
        """The field values of the one serialized object, whose class chain (subclass
        first) must be ``expected`` exactly."""
        if self.reader.take(4) != _STREAM_HEADER or self.reader.u8() != _TC_OBJECT:
            raise self.fail("not a serialized object")
        desc = self.class_desc(nullable=False)
        assert desc is not None
        chain: list[_ClassDesc] = []
        node: _ClassDesc | None = desc
        while node is not None and len(chain) <= len(expected):
            chain.append(node)
            node = node.parent
        names = tuple(d.name for d in chain)
        if names != expected:
            raise self.fail(f"a serialized {shown(desc.name)}")
        self.handles.append(_OBJECT)  # the object's own handle: nothing may refer to it
        values: dict[str, object] = {}
        for cls in reversed(chain):  # class data runs from the superclass down
            if cls.flags != _SC_SERIALIZABLE:
                raise self.fail("custom serialization data")
            for code, name in cls.fields:
                values[name] = self.value(code)
        return values

    def class_desc(self, *, nullable: bool, depth: int = 0) -> _ClassDesc | None:
        if depth > len(_SEALED_CHAIN):  # the JDK's objects have two classes at most
            raise self.fail("a class hierarchy deeper than a sealed key's")
        tag = self.reader.u8()
        if tag == _TC_NULL and nullable:
            return None
        if tag == _TC_REFERENCE:
            target = self.reference()
            if not isinstance(target, _ClassDesc):
                raise self.fail("a reference where a class belongs")
            return target
        if tag != _TC_CLASSDESC:
            raise self.fail(f"token 0x{tag:02x} where a class belongs")
        desc = _ClassDesc(self.reader.utf())
        self.reader.take(8)  # serialVersionUID
        self.handles.append(desc)
        desc.flags = self.reader.u8()
        for _ in range(self.reader.u16()):
            code = chr(self.reader.u8())
            name = self.reader.utf()
            if code in "[L":
                self.string()  # the field's type name
            elif code not in _PRIMITIVE_SIZES:
                raise self.fail("an unknown field type")
            desc.fields.append((code, name))
        if self.reader.u8() != _TC_ENDBLOCKDATA:
            raise self.fail("class annotations")
        desc.parent = self.class_desc(nullable=True, depth=depth + 1)
        return desc

    def reference(self) -> object:
        index = self.reader.u32() - _BASE_HANDLE
        if not 0 <= index < len(self.handles):
            raise self.fail("a reference to nothing")
        return self.handles[index]

    def string(self) -> str:
        tag = self.reader.u8()
        if tag == _TC_STRING:
            text = self.reader.utf()
            self.handles.append(text)
            return text
        if tag == _TC_REFERENCE:
            target = self.reference()
            if isinstance(target, str):
                return target
        raise self.fail("a non-string where a string belongs")

    def value(self, code: str) -> object:
        if code in _PRIMITIVE_SIZES:
            return self.reader.take(_PRIMITIVE_SIZES[code])
        tag = self.reader.u8()
        if tag == _TC_NULL:
            return None
        if tag == _TC_STRING:
            self.reader.pos -= 1
            return self.string()
        if tag == _TC_REFERENCE:
            target = self.reference()
            if isinstance(target, (str, bytes)):
                return target
            raise self.fail("a reference to an object")
        if tag == _TC_ARRAY:
            desc = self.class_desc(nullable=False)
            assert desc is not None
            if desc.name != "[B" or desc.fields or desc.parent is not None:
                raise self.fail(f"an array of {shown(desc.name)}")
            slot = len(self.handles)
            self.handles.append(b"")
            self.handles[slot] = content = self.reader.blob()
            return content
        raise self.fail(f"token 0x{tag:02x} where a field value belongs")


# --------------------------------------------------------------------------- key entries


def decrypt_key(key: JKSKey, password: str, budget: WorkBudget | None = None) -> bytes:
    """Return the PKCS#8 ``PrivateKeyInfo`` DER of a protected key entry.

    Args:
        budget: charged with the entry's key-derivation rounds before any is run;
            ``None`` when the caller has charged them (see :func:`kdf_rounds`).
            The per-entry ceiling (the JDK's) applies either way.

    Raises:
        JKSFormatError: the envelope or the plaintext is malformed, the algorithm is
            unknown, or the budget would be exceeded (:class:`~mtls._budget.WorkLimitError`).
        JKSKeyPasswordError: the password does not unlock the key.
    """
    try:
        envelope = _der.read_single(key.protected, _der.SEQUENCE).children()
        algorithm = envelope[0].expect(_der.SEQUENCE).children()
        oid = _der.decode_oid(algorithm[0].expect(_der.OID).value)
        ciphertext = envelope[1].expect(_der.OCTET_STRING).value
    except (_der.DERError, IndexError) as exc:
        raise JKSFormatError(
            f"key entry {shown(key.alias)} has a malformed envelope: replace the file"
        ) from exc

    if oid == _JKS_KEY_PROTECTOR:
        # Params are NULL (JDK <= 20) or absent (JDK 21+): either is fine, we need none.
        if len(ciphertext) < 41:
            raise JKSFormatError(f"key entry {shown(key.alias)} is truncated: replace the file")
        if budget is not None:
            budget.charge_kdf(
                _jks_protector_rounds(len(ciphertext), password), f"key entry {shown(key.alias)}"
            )
        plaintext = _jks_unprotect(ciphertext, password)
    elif oid == _JCE_KEY_PROTECTOR and key.store_type == "JCEKS":
        salt, iterations = _jce_params(algorithm, key.alias)
        if len(ciphertext) % 8 or not ciphertext:
            raise JKSFormatError(f"key entry {shown(key.alias)} is truncated: replace the file")
        if budget is not None:
            budget.charge_kdf(iterations * jce_blocks(password), f"key entry {shown(key.alias)}")
        plaintext = _jce_decrypt(ciphertext, password, salt, iterations)
    else:
        raise JKSFormatError(
            f"key entry {shown(key.alias)} uses an unknown protection ({oid}): "
            "re-create it with keytool"
        )

    # JCE decryption has no integrity check beyond padding (1 in 256 wrong passwords
    # pass it), so a plaintext that is not a PrivateKeyInfo means a wrong password.
    try:
        _der.check_single(plaintext, _der.SEQUENCE)
    except _der.DERError as exc:
        raise JKSKeyPasswordError("decrypted key is not a PKCS#8 structure") from exc
    if oid == _JCE_KEY_PROTECTOR and not pkcs8_well_formed(plaintext):
        # One SEQUENCE of the right length is no wrong password's luck: the entry was
        # damaged (and the store sealed again) or written so. Java's getKey refuses it;
        # it was served, to fail as a key that "must match the certificate" (h196).
        raise JKSFormatError(
            f"key entry {shown(key.alias)} decrypts to a damaged key (Java cannot recover "
            "it either): replace the file, or re-create the entry with keytool"
        )
    return plaintext


def _jks_unprotect(protected: bytes, password: str) -> bytes:
    """Sun's ``KeyProtector.recover``: ``salt(20) || key XOR stream || SHA-1 check(20)``.

    The stream is ``SHA-1(password || previous)`` blocks seeded with the salt, the
    password as Java chars (UTF-16BE); the check is ``SHA-1(password || key)``.
    """
    # Java chars, lone surrogates included (a String may hold one; the store's own
    # integrity hash is computed the same way).
    secret = password.encode("utf-16be", "surrogatepass")
    digest, body, check = protected[:20], protected[20:-20], protected[-20:]
    sha1 = hashlib.sha1
    blocks = []
    for _ in range(-(-len(body) // 20)):
        digest = sha1(secret + digest).digest()
        blocks.append(digest)
    stream = b"".join(blocks)[: len(body)]
    plaintext = (int.from_bytes(body, "big") ^ int.from_bytes(stream, "big")).to_bytes(
        len(body), "big"
    )
    if not hmac.compare_digest(sha1(secret + plaintext).digest(), check):
        raise JKSKeyPasswordError("bad hash check on the private key: wrong password")
    return plaintext


def _jce_invert_salt_half(half: bytes) -> bytes:
    """What ``PBES1Core`` does to equal salt halves: meant to reverse the first half,
    but a typo (``salt[3-1]`` for ``salt[3-i]``) turns ``abcd`` into ``dabd``."""
    return bytes((half[3], half[0], half[1], half[3]))


def kdf_rounds(key: JKSKey, password: str | None = None) -> int:
    """Key-derivation rounds :func:`decrypt_key` will run for ``key`` (0 if it will refuse
    it), counted in MD5 blocks when ``password`` is given: each JCE round hashes the
    password again, so a long one costs more per round (a 32,768-character password
    made one entry's 200,000 rounds take 25 s). A JKS key costs one round per 20 bytes
    of key, each hashing the password again (a 7 MiB key under a 1 MiB password ran
    for more than ten minutes)."""
    if key.store_type == "JKS":  # only Sun's protector: its size, without a parse
        return _jks_protector_rounds(len(key.protected), password)
    try:
        envelope = _der.read_single(key.protected, _der.SEQUENCE).children()
        algorithm = envelope[0].expect(_der.SEQUENCE).children()
        oid = _der.decode_oid(algorithm[0].expect(_der.OID).value)
        if oid == _JKS_KEY_PROTECTOR:
            size = len(envelope[1].expect(_der.OCTET_STRING).value)
            return _jks_protector_rounds(size, password) if size >= 41 else 0
        if oid != _JCE_KEY_PROTECTOR:
            return 0
        return _jce_params(algorithm, key.alias)[1] * jce_blocks(password)
    except (_der.DERError, IndexError, JKSFormatError):
        return 0


def _short_rounds(size: int) -> int:
    """What hashing ``size`` bytes once costs, in rounds of a short password: a call's
    own cost is about that of two hash blocks, so up to two blocks count as one round,
    and every two blocks more as one more."""
    blocks = (size + 8) // 64 + 1
    return 1 + (blocks - 1) // 2


def jce_blocks(password: str | None) -> int:
    """What one JCE key-derivation round costs, in rounds of a short password: each
    hashes 16 bytes of digest and the password's UTF-8 bytes again, so a password of up
    to 103 bytes counts as one round (1 KiB: 9; 1 MiB: about 8,200, refused at once)."""
    return _short_rounds(16 + (len(password.encode("utf-8", "replace")) if password else 0))


def _jks_protector_rounds(size: int, password: str | None) -> int:
    """What :func:`_jks_unprotect` costs for a ``size``-byte protected key, in rounds of
    a short password: one SHA-1 of the password (UTF-16) and 20 bytes per 20 bytes of
    key, and one of the password and the whole key for the check."""
    secret = 2 * len(password) if password else 0
    return -(-(size - 40) // 20) * _short_rounds(secret + 20) + _short_rounds(secret + size)


def _builtin_md5() -> Callable[[bytes], Any]:
    # CPython's own MD5 hashes 24-byte inputs about twice as fast as OpenSSL's through
    # hashlib (no EVP context per call); builds without it use hashlib's.
    try:
        md5: Callable[[bytes], Any] = importlib.import_module("_md5").md5
    except (ImportError, AttributeError):  # pragma: no cover - no builtin hashes
        return hashlib.md5
    return md5


_small_md5 = _builtin_md5()


def _jce_decrypt(ciphertext: bytes, password: str, salt: bytes, iterations: int) -> bytes:
    """Sun's PBEWithMD5AndTripleDES (com.sun.crypto.provider.PBECipherCore).

    The password goes in as bytes: ASCII up to JDK 21 (Java refused anything else),
    UTF-8 since (``PBEUtil.encodePassword``, so JDK 25's keytool writes JCEKS keys
    with non-ASCII passwords). The two agree on ASCII.
    """
    # String.getBytes(UTF_8) writes '?' for a lone surrogate; so does "replace".
    secret = password.encode("utf-8", "replace")
    halves = [salt[:4], salt[4:]]
    if halves[0] == halves[1]:
        halves[0] = _jce_invert_salt_half(halves[0])
    derived = b""
    md5 = _small_md5
    for half in halves:
        digest = half
        for _ in range(iterations):  # 200,000 at keytool's default: the whole cost of a load
            digest = md5(digest + secret).digest()
        derived += digest
    decryptor = Cipher(TripleDES(derived[:24]), modes.CBC(derived[24:])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 8 or padded[-pad:] != bytes([pad]) * pad:
        raise JKSKeyPasswordError("bad padding after decryption")
    return padded[:-pad]


def _jce_params(algorithm: list[_der.TLV], alias: str) -> tuple[bytes, int]:
    try:
        sequence = algorithm[1]
    except IndexError as exc:
        raise JKSFormatError(
            f"key entry {shown(alias)} has malformed PBE parameters: replace the file"
        ) from exc
    return _pbe_params(sequence, alias)


def _pbe_params(sequence: _der.TLV, alias: str) -> tuple[bytes, int]:
    """(salt, iterations) of a PBEParameter, the iterations within the JDK's ceiling."""
    try:
        params = sequence.expect(_der.SEQUENCE).children()
        salt = params[0].expect(_der.OCTET_STRING).value
        iterations = _der.decode_int(params[1].expect(_der.INTEGER).value)
    except (_der.DERError, IndexError) as exc:
        raise JKSFormatError(
            f"key entry {shown(alias)} has malformed PBE parameters: replace the file"
        ) from exc
    if not 0 < iterations <= _MAX_JCE_ITERATIONS or len(salt) != 8:
        raise JKSFormatError(
            f"key entry {shown(alias)} has out-of-range PBE parameters (at most "
            f"{_MAX_JCE_ITERATIONS:,} iterations, the JDK's ceiling): replace the file"
        )
    return salt, iterations


def build_store(
    store_type: str,
    keys: list[tuple[str, bytes | None, list[bytes], bytes]],
    certs: list[tuple[str, bytes]],
    password: str,
    key_password: str,
) -> bytes:
    """Serialise a JKS store that keytool reads (pyjks writes the JKS key protector).

    ``keys``: (alias, PKCS#8 or ``None``, chain, protected): a key given as PKCS#8 is
    protected with ``key_password``; one given only as ``protected`` (a JKS file's
    KeyProtector blob) is written as it is, under its own password.

    Raises:
        PyJKSUnavailable: pyjks does not import.
    """
    jks = pyjks()
    entries: list[Any] = []
    for alias, pkcs8, chain, protected in keys:
        if pkcs8 is None:
            # As keytool keeps an entry it did not decrypt: the same protected bytes.
            entry = jks.PrivateKeyEntry(
                alias=alias.lower(),
                timestamp=int(time.time()) * 1000,
                cert_chain=[("X.509", der) for der in chain],
                encrypted=protected,
            )
        else:
            entry = jks.PrivateKeyEntry.new(alias, chain, _bare_pkcs8(pkcs8), "pkcs8")
            entry.encrypt(key_password)
        entries.append(entry)
    entries.extend(jks.TrustedCertEntry.new(alias, der) for alias, der in certs)
    store = _java_key_store(jks).new(store_type.lower(), entries)
    data: bytes = store.saves(password)
    return data


def _bare_pkcs8(pkcs8: bytes) -> bytes:
    """The PKCS#8 key without its optional attributes and public key (RFC 5958 ``[0]``,
    ``[1]``), which pyjks's decoder refuses (a Windows export's key-usage attribute made
    ``save(store_type="JKS")`` fail inside pyasn1). The same key; copied only when it
    has them."""
    _, start, end = _der.header(pkcs8)
    items = _der.spans(pkcs8, start, end)
    if len(items) <= 3:
        return pkcs8
    # version, privateKeyAlgorithm, privateKey: the v1 form (version 0).
    algorithm_start = items[0][2]
    body = _der.encode(_der.INTEGER, b"\0") + pkcs8[algorithm_start : items[2][2]]
    return _der.encode(_der.SEQUENCE, body)


@functools.cache
def _java_key_store(jks: Any) -> Any:
    """pyjks's KeyStore, writing strings as Java's ``DataOutput.writeUTF`` does (pyjks
    writes plain UTF-8, whose 4-byte forms keytool and our reader refuse as malformed:
    an alias with an emoji made a store nobody could read)."""

    class JavaKeyStore(jks.KeyStore):  # type: ignore[misc]
        @classmethod
        def _write_utf(cls, text: str) -> bytes:
            return write_java_utf(text)

    return JavaKeyStore


def write_java_utf(text: str) -> bytes:
    """``DataOutput.writeUTF``: u16 length, then modified UTF-8 (each UTF-16 unit on its
    own: NUL as ``C0 80``, a supplementary character as its two surrogates, 3 bytes each).

    Raises:
        ValueError: more than 65,535 bytes (Java's UTFDataFormatException).
    """
    if text.isascii() and "\0" not in text:
        raw = text.encode("ascii")
    else:
        units = text.encode("utf-16-be", "surrogatepass")
        out = bytearray()
        for i in range(0, len(units), 2):
            unit = units[i] << 8 | units[i + 1]
            if 0 < unit < 0x80:
                out.append(unit)
            elif unit < 0x800:
                out += bytes((0xC0 | unit >> 6, 0x80 | unit & 0x3F))
            else:
                out += bytes((0xE0 | unit >> 12, 0x80 | unit >> 6 & 0x3F, 0x80 | unit & 0x3F))
        raw = bytes(out)
    if len(raw) > 0xFFFF:
        raise ValueError(f"{len(raw)} bytes in modified UTF-8: Java's writeUTF takes 65,535")
    return struct.pack(">H", len(raw)) + raw


def secret_key_entry(data: bytes, password: str, alias: str | None) -> bytes | None:
    """The raw key of a JCEKS secret-key entry (``keytool -genseckey``), for the secure
    vault's symmetric mode; ``None`` when the store has no such entry or is not JCEKS.

    ``alias=None`` takes the only secret-key entry. The store password unlocks the key,
    as in the cipher tool's ``SymmetricCipher`` (``keyStore.getKey(alias, storePassword)``).
    Read by this module's own reader, never deserialised: the sealed object and the
    ``SecretKeySpec`` inside it are walked by their framing (javaobj, which pyjks
    uses, built debug text for every object and took minutes on hostile files).

    Raises:
        JKSFormatError: the entry's iteration count is past the JDK's ceiling (the
            file sets it: it is checked before any key derivation), or the entry is
            damaged.
    """
    if not data.startswith(_JCEKS_MAGIC):  # JKS has no secret keys
        return None
    try:
        store = parse_store(data, password)
    except (JKSFormatError, JKSIntegrityError):
        return None  # the store itself is loaded (and its errors reported) separately
    found = [entry for entry in store.secrets if entry.sealed is not None]
    if alias is not None:
        found = [entry for entry in found if entry.alias.lower() == alias.lower()]
    if len(found) != 1:
        return None
    entry = found[0]
    assert entry.sealed is not None
    params, content = entry.sealed
    try:
        sealed = _der.read_single(params, _der.SEQUENCE)
    except (_der.DERError, IndexError):
        return None  # the JDK would refuse it too
    salt, iterations = _pbe_params(sealed, entry.alias)
    try:
        plain = _jce_decrypt(content, password, salt, iterations)
    except JKSKeyPasswordError:
        return None  # another password than the store's: not the cipher tool's key
    try:
        spec = _SealedWalker(Reader(plain, "JCEKS"), entry.alias).sealed_object(_KEY_SPEC_CHAIN)
    except JKSFormatError:
        return None  # a wrong key can pass the padding check (1 in 256): garbage
    key = spec.get("key")
    return key if isinstance(key, bytes) and key else None
