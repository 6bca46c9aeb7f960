"""From bytes to entries: format detection and the JKS, JCEKS, PKCS#12, PEM and DER readers.

Format is decided by content, never by file name or declared type (DESIGN 2):

====================  ==========================================================
JKS                   magic ``FE ED FE ED``
JCEKS                 magic ``CE CE CE CE``
PKCS#12               DER ``SEQUENCE { INTEGER 3, ContentInfo ... }``
PEM                   ``-----BEGIN`` anywhere (text before it is allowed)
DER certificate       one X.509 certificate (what ``keytool -exportcert`` writes)
BKS, UBER             version ``00000001``/``00000002``, a salt and an iteration
                      count (Bouncy Castle's formats have no magic; see ``_bks``)
====================  ==========================================================

Certificates come out as DER (what OpenSSL consumes) and private keys as PKCS#8
DER, never parsed by cryptography on the way to a context. Every foreign exception
is translated here, at the boundary where bytes become entries (and every failure to
open a store file, in :func:`open_error`); the store classes in ``_stores.py`` build
on what this module returns (:class:`Parsed`, entries of ``_entries.py``).
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import _bcfks, _bks, _dates, _der, _jks, _pkcs12, _purpose, _x509
from ._budget import DIAGNOSIS_KDF_ITERATIONS, WorkBudget, WorkLimitError
from ._entries import KeyEntry, Taken, alias_for, fold, unique_alias
from ._entries import where as _where
from ._errors import (
    KeyEntryError,
    KeystoreError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    WrongPasswordError,
)
from ._files import InputRefused, cannot_read_fix, looks_like_store_text, read_input
from ._log import WSO2_CANNOT_LOAD, first_time, log
from ._pem import PEM_CERTIFICATE_LABELS, pem_blocks, pem_certificate, pem_key_to_pkcs8
from ._secret import Secret, reveal
from ._types import StoreFormat, check_flag, hex_serial

# --------------------------------------------------------------------------- detection


def store_bytes(data: object, who: str) -> bytes:
    """``data`` as bytes, or a ``TypeError`` that says what to pass: a path or text
    failed deep inside (``string argument without an encoding``, ``'PosixPath'
    object is not subscriptable``), and ``None`` was reported as an empty file."""
    if isinstance(data, bytes):
        return data
    if not isinstance(data, str):
        try:  # anything with the buffer protocol: bytearray, memoryview, mmap, array
            return bytes(memoryview(data))  # type: ignore[arg-type]
        except TypeError:
            pass
    if isinstance(data, str):
        fix = "encode PEM text first (data.encode()), or load a file with .load(path)"
    elif isinstance(data, os.PathLike):
        fix = "this takes the file's bytes: read them, or use .load(path)"
    else:
        fix = "pass the store's bytes"
    raise TypeError(f"{who} takes bytes, not {type(data).__name__}: {fix}")


def detect_format(data: bytes) -> StoreFormat:
    """Name the store format of ``data`` from its bytes alone.

    Raises:
        KeystoreFormatError: empty, or no known format.
        TypeError: ``data`` is not bytes.
    """
    data = store_bytes(data, "detect_format")
    if not data:
        raise KeystoreFormatError(
            "the file is empty (0 bytes: a copy or a write that did not finish?)"
        )
    if data[:4] == b"\xfe\xed\xfe\xed":
        return "JKS"
    if data[:4] == b"\xce\xce\xce\xce":
        return "JCEKS"
    if data[:1] == b"\x30":
        if _pkcs12.looks_like_pkcs12(data):
            return "PKCS12"
        signed = _der_signed(_without_line_break(data))
        if signed == "certificate":
            return "DER"
        if signed is not None:
            raise KeystoreFormatError(_NOT_A_CERTIFICATE[signed])
        if _x509.looks_like_pkcs7(data) or der_certificates(data) is not None:
            return "DER"  # a PKCS#7 bundle (.p7b), or DER certificates end to end
        leading = leading_der_certificates(data)
        if leading:  # never read on as PEM: text inside a certificate is its content
            raise KeystoreFormatError(
                f"{leading} DER certificate{'s' if leading > 1 else ''}, then bytes that "
                "are not one: the file was cut or something was appended to it; replace it"
            )
        if _looks_like_bcfks(data):
            return "BCFKS"
        if is_der_element(data):  # DER of another kind: PEM text in it is its content
            raise KeystoreFormatError(
                "not a keystore or truststore: a DER structure that is not PKCS#12, BCFKS, "
                "a certificate or a PKCS#7 bundle"
            )
    bouncy = _bks.looks_like_bks(data)
    if bouncy is not None:
        return bouncy
    if b"-----BEGIN " in data:  # anywhere: `openssl x509 -text` puts text first
        return "PEM"
    raise KeystoreFormatError(
        "not a keystore or truststore: the bytes are not JKS, JCEKS, PKCS#12, BKS, UBER, BCFKS, "
        "PEM, a DER certificate or a PKCS#7 bundle"
    )


_TIMES = (0x17, 0x18)  # UTCTime, GeneralizedTime
_NOT_A_CERTIFICATE = {
    "CRL": (
        "a certificate revocation list (DER CRL), not a certificate or a store: a CRL is "
        "checked with a truststore (a profile's crls, or mtls.CRLSet), never trusted "
        "itself; point to the CA's certificate"
    ),
    "request": (
        "a certificate signing request (DER CSR), not a certificate or a store: have "
        "the CA sign it, and point to the certificate it returns"
    ),
}


# BCFKS's ObjectStore: SEQUENCE { storeData, integrityCheck }, the store data encrypted
# (SEQUENCE { AlgorithmIdentifier, OCTET STRING }) or not (SEQUENCE { INTEGER, ... }),
# the check a password MAC (SEQUENCE { AlgorithmIdentifier of an HMAC, PBKDF2
# parameters, OCTET STRING }) or a signature ([0]). The HMACs BC offers for it: SHA-2
# (RSA's arc) and SHA-3 (NIST's).
_HMACS = frozenset(
    [f"1.2.840.113549.2.{n}" for n in (8, 9, 10, 11, 12, 13)]
    + [f"2.16.840.1.101.3.4.2.{n}" for n in (13, 14, 15, 16)]
)


def _looks_like_bcfks(data: bytes) -> bool:
    try:
        # Bytes after the store are ignored, as Bouncy Castle's ASN1InputStream reads one.
        tag, start, end = _der.header(data)
        if tag != _der.SEQUENCE:
            return False
        store, check = _der.read_all(data[start:end])
        if store.tag != _der.SEQUENCE or store.children()[0].tag not in (
            _der.SEQUENCE,
            _der.INTEGER,
        ):
            return False
        if check.tag == 0xA0:
            return True
        mac = check.expect(_der.SEQUENCE).children()[0].expect(_der.SEQUENCE).children()[0]
        return _der.decode_oid(mac.expect(_der.OID).value) in _HMACS
    except (_der.DERError, IndexError, ValueError):
        return False


def says_what_it_is(exc: KeystoreFormatError) -> bool:
    """Whether :func:`detect_format` refused a file it recognised (a CRL, a certificate
    request), with its own fix: what to point to instead."""
    return str(exc) in _NOT_A_CERTIFICATE.values()


def with_fix(exc: KeystoreFormatError, fix: str) -> str:
    """What :func:`detect_format` refused, with ``fix`` unless it has its own."""
    return str(exc) if says_what_it_is(exc) else f"{exc}: {fix}"


def _der_signed(data: bytes) -> str | None:
    """Which signed X.509 structure ``data`` is: ``"certificate"``, ``"CRL"`` or
    ``"request"`` (a CSR), told apart by the fields their signed parts start with (all
    three are SEQUENCE { SEQUENCE, AlgorithmIdentifier, BIT STRING }); ``None`` for
    anything else."""
    try:
        outer = _der.read_single(data, _der.SEQUENCE).children()
        if len(outer) != 3 or outer[0].tag != _der.SEQUENCE:
            return None
        body, pos = outer[0].value, 0
        tags: list[int] = []
        while pos < len(body) and len(tags) < 7:  # the first few: never the whole body
            tag, _, pos = _der.header(body, pos)
            tags.append(tag)
    except _der.DERError:
        return None
    seq, integer = _der.SEQUENCE, _der.INTEGER
    # TBSCertificate: [0] version (v3, v2), serial, signature algorithm, issuer,
    # validity, subject, key.
    if (tags[1:] if tags[:1] == [0xA0] else tags)[:6] == [integer, seq, seq, seq, seq, seq]:
        return "certificate"
    # TBSCertList: [version], signature algorithm, issuer, thisUpdate (a time).
    crl = tags[1:] if tags[:1] == [integer] else tags
    if crl[:2] == [seq, seq] and crl[2:3] and crl[2] in _TIMES:
        return "CRL"
    # CertificationRequestInfo: version, subject, key, [0] attributes.
    if tags[:4] == [integer, seq, seq, 0xA0]:
        return "request"
    return None


_WHITESPACE = b" \t\r\n"


def _certificate_run(data: bytes) -> tuple[list[bytes], int]:
    """The DER certificates ``data`` starts with, end to end, and where they end."""
    found: list[bytes] = []
    position = 0
    while position < len(data) and len(found) < _der.MAX_ELEMENTS:
        try:
            tag, _, end = _der.header(data, position)
        except _der.DERError:
            break
        if tag != _der.SEQUENCE or _der_signed(data[position:end]) != "certificate":
            break
        found.append(data[position:end])
        position = end
    return found, position


def der_certificates(data: bytes) -> list[bytes] | None:
    """The certificates of ``data`` when it is DER certificates end to end: one, or
    several (what ``keytool -gencert`` writes without ``-rfc``: the new certificate
    and its issuers; Java's ``CertificateFactory`` reads them), with nothing after them
    but a line break or spaces (a file handled as text gains one). ``None`` for
    anything else."""
    found, end = _certificate_run(data)
    if not found or data[end:].strip(_WHITESPACE):
        return None
    return found


def leading_der_certificates(data: bytes) -> int:
    """How many DER certificates ``data`` starts with, end to end (to say what a file
    that is not wholly certificates holds)."""
    return len(_certificate_run(data)[0]) if data[:1] == b"\x30" else 0


def _without_line_break(data: bytes) -> bytes:
    """``data`` without the line break or spaces after its one DER element (a file
    handled as text gains one), or as it is."""
    try:
        _, _, end = _der.header(data)
    except _der.DERError:
        return data
    return data[:end] if end < len(data) and not data[end:].strip(_WHITESPACE) else data


def is_der_element(data: bytes) -> bool:
    """Whether ``data`` is DER, not text: one whole DER ``SEQUENCE`` (a CRL, a
    request, a PKCS#12 store; a line break or spaces after it allowed), or DER
    certificates first. PEM text inside it is part of its content (an extension's
    value), never the file's."""
    if data[:1] != b"\x30":
        return False
    if leading_der_certificates(data):
        return True
    try:
        _, _, end = _der.header(data)
    except _der.DERError:
        return False
    return not data[end:].strip(_WHITESPACE)  # a line break after it changes nothing


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class Parsed:
    store_type: StoreFormat
    keys: list[KeyEntry]
    certs: list[tuple[str, bytes]]  # trusted-certificate entries
    # Certificates that are neither (PKCS#12 bags without a role), with their
    # friendlyName when they have one.
    loose: list[tuple[str | None, bytes]]
    # Entries TLS cannot use (JCEKS secret keys, Bouncy Castle secrets): (alias, kind).
    secrets: list[tuple[str, str]] = field(default_factory=list)
    # What mtls reads but the JDK's reader (keytool, WSO2's gateway) does not: one
    # sentence each (``mtls check`` shows them).
    java_notes: list[str] = field(default_factory=list)
    # A PKCS#12 in the JDK's password-less format (P12Contents.passwordless).
    passwordless: bool = False
    # When a key's certificate would be chosen otherwise among several for it (one
    # expires, another becomes valid): the same bytes are read again then.
    rechoose_at: _dt.datetime | None = None


_DRIVE = re.compile(r"^(?:.*/)?[A-Za-z]:[\\/]")  # C:\ or C:/ (after a base dir joined in)


def _binary(path: str) -> bool:
    """Whether a "path" is a store's bytes: long, with NULs and many bytes no name has."""
    odd = sum(1 for c in path if not c.isprintable())
    return "\x00" in path and len(path) >= 64 and odd * 10 >= len(path)


def open_error(
    exc: OSError, path: str, *, role: str | None = None, setting: str | None = None
) -> KeystoreError:
    """The one translation of a store file that cannot be read into an :class:`MTLSError`.

    Every way of opening a store (``Keystore.load``, ``Truststore.load``, a profile's
    ``<KeyStore>``) comes here, so the same failure gives the same error class:
    :class:`KeystoreNotFoundError` for a missing file, :class:`KeystoreError` otherwise.

    Args:
        exc: what reading raised (``InputRefused`` names a device, pipe or size limit).
        path: the file as messages show it (never a placeholder's value).
        role: ``"keystore"`` or ``"truststore"`` when the caller knows which it wanted.
        setting: the setting that named the file, for the fix (``<Location>``, a
            deployment.toml key); default: the path itself.
    """
    path = os.fsdecode(path)  # a bytes path too
    if looks_like_store_text(path) or _binary(path):
        # A store's PEM or base64 text given where its path goes (Keystore.load(
        # os.environ[...])): it may hold a private key, so it is shown nowhere, its
        # OSError's included.
        exc.filename = exc.filename2 = None
        return KeystoreError(
            f"the {role or 'store'} path given is PEM, base64 or binary data, not a file's path "
            "(not shown: it may hold a private key): pass the store's bytes to "
            "Keystore.from_bytes or Truststore.from_bytes (base64-decoded), or write "
            "them to a file and pass the file's path"
        )
    # A name holding an invisible character (a no-break space copied from a web page)
    # is shown escaped: read plainly, it names a file that seems to be there.
    shown = "".join(
        c if c.isprintable() or "\udc80" <= c <= "\udcff" else ascii(c)[1:-1] for c in path
    )  # (undecodable bytes, carried as surrogates, are shown as \xNN further on)
    what = f"{role} file" if role else "file"
    fix = setting or (
        "the path" if os.path.isabs(path) else f"the path (relative paths start from {os.getcwd()})"
    )
    if isinstance(exc, InputRefused) and exc.errno == errno.EFBIG:
        # Over the size limit: a limit on what a store may be, refused as the others
        # are (docs/security.md, "Limits").
        return KeystoreFormatError(f"{shown}: {exc.strerror}: {exc.fix}", path=path)
    elsewhere = cannot_read_fix(exc, path)
    if elsewhere is not None:  # not the path: the process, or a link's target
        if isinstance(exc, FileNotFoundError):
            return KeystoreNotFoundError(f"{shown}: no such {what}: {elsewhere}", path=path)
        return KeystoreError(
            f"{shown}: cannot read the {role or 'store'} ({exc.strerror}): {elsewhere}",
            path=path,
        )
    if isinstance(exc, FileNotFoundError):
        if any(part.startswith("~") for part in path.split(os.sep)):
            fix += (
                " (~ is not your home directory here: WSO2 and Java do not expand it "
                "either; write the full path)"
            )
        if os.sep == "/" and ("\\" in path or _DRIVE.match(path)):
            fix += (
                " (a path written for Windows: a backslash is part of a file name here and "
                "a drive letter means nothing; write it with / from this system's root, as "
                "WSO2 on this system would need it too)"
            )
        return KeystoreNotFoundError(f"{shown}: no such {what}: check {fix}", path=path)
    if isinstance(exc, IsADirectoryError):
        return KeystoreError(
            f"{shown} is a directory, not a {role or 'store'}: check {fix}", path=path
        )
    if isinstance(exc, InputRefused):  # a device or pipe: not a file to read at all
        return KeystoreError(f"{shown}: {exc.strerror}", path=path)
    # The fix follows the reason: "permissions" only where they are the cause.
    if exc.errno == errno.ELOOP:
        check = "where its symbolic links point (they form a loop)"
    elif exc.errno == errno.ENOTDIR:
        check = "the path (a part of it is a file, not a directory)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        check = "its permissions"
    else:
        check = "the path and its permissions"
    fix = f"{check} and {setting}" if setting else check
    return KeystoreError(
        f"{shown}: cannot read the {role or 'store'} ({exc.strerror}): check {fix}", path=path
    )


def read_store_file(
    path: str | os.PathLike[str], *, role: str | None = None, setting: str | None = None
) -> bytes:
    """The bytes of a store file (size and file-type limits apply), or :func:`open_error`."""
    try:
        return read_input(path)
    except OSError as exc:
        raise open_error(exc, os.fspath(path), role=role, setting=setting) from exc


def parse(
    data: bytes,
    password: Secret | None,
    key_password: Secret | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
    declared: str | None,
    allow_unprotected: bool = False,
    key_alias: str | None = None,
    purpose: str | None = None,
) -> Parsed:
    """Entries of one store. Passwords stay :class:`Secret` down to the call that uses them.

    One :class:`~mtls._budget.WorkBudget` bounds the key derivations the whole file
    may cause (docs/security.md, "Limits").

    ``key_alias``: in a JKS, JCEKS, BKS or UBER store (where each key entry has its own
    password), read only that key entry (matched case-insensitively) and leave the
    others out, as keytool -importkeystore -srcalias does. Other formats read every key.

    ``purpose``: the TLS role (``"client"`` or ``"server"``) the keystore's keys will
    present in, where known. Of several certificates a PEM file holds for one key, one
    peers accept in that role comes before a newer one they refuse in it
    (:meth:`_Certs._take_current`).
    """
    check_flag("allow_unprotected", allow_unprotected)
    where = _where(path)
    try:
        fmt = detect_format(data)
    except KeystoreFormatError as exc:
        if says_what_it_is(exc):
            message = str(exc)
        else:
            hint = f" (declared {_shown_type(declared)})" if declared else ""
            message = f"{exc}{hint}: check the path, or replace the file"
        raise KeystoreFormatError(f"{where}: {message}", path=path) from None
    # An empty password promises nothing to check (anyone computes a MAC keyed by
    # ""): a password-less PKCS#12 (trust-manager's, the JDK's cacerts) named with
    # <Password></Password> loads, as keytool -storepass "" lists it (h190).
    if password is not None and declared and not allow_unprotected and reveal(password):
        _check_protected(data, fmt, declared, path)
    if declared and _declared_mismatch(declared, fmt):
        _say_mismatch(declared, fmt, where)
    budget = WorkBudget()
    if fmt in _JAVA_FAMILY:
        try:
            return _parse_jks(
                data,
                fmt,
                reveal(password),
                reveal(key_password),
                with_keys=with_keys,
                path=path,
                budget=budget,
                key_alias=key_alias,
            )
        except _jks.PyJKSUnavailable as exc:
            raise KeystoreError(f"{where}: cannot read this {fmt} store: {exc}", path=path) from exc
    if fmt in ("PKCS12", "PEM"):
        read = _parse_pkcs12 if fmt == "PKCS12" else _parse_pem
        return read(
            data,
            password,
            key_password,
            with_keys=with_keys,
            path=path,
            budget=budget,
            purpose=purpose,
        )
    bundle = der_certificates(data) or bundle_certificates(data, pem=False, where=where, path=path)
    taken = Taken()
    return Parsed("DER", [], [(alias_for(der, taken, "cert"), der) for der in bundle], [])


def java_unreadable_note(entries: Iterable[tuple[str, bytes]]) -> str | None:
    """The note for a store of Java's formats that holds a certificate Java cannot
    parse (:func:`mtls._x509.first_java_refused`): one such certificate makes keytool and
    WSO2 refuse the whole store, and ``mtls check`` said OK for a truststore mtls itself
    had written so (h189). ``entries``: ``(alias, certificate DER)``; the first such
    certificate is named. Asked for by the command line, not at every load (it walks
    every EC certificate)."""
    found = _x509.first_java_refused(entries)
    if found is None:
        return None
    alias, why, remedy = found
    return (
        f"certificate {alias!r}: {why}, which Java cannot parse: keytool and WSO2's "
        "gateway refuse the whole store, not this entry alone: remove it (mtls "
        f"delete --alias {shlex.quote(alias)}) or have it reissued {remedy}"
    )


# Java-family containers: key entries, each under its own password, and an integrity check.
_JAVA_FAMILY = ("JKS", "JCEKS", "BKS", "UBER", "BCFKS")
# Declared types whose stores carry an integrity check keyed by the password.
_PROTECTED_TYPES = frozenset({"JKS", "JCEKS", "PKCS12", "P12", "PFX", "BKS", "UBER", "BCFKS"})


def _check_protected(
    data: bytes, fmt: StoreFormat, declared: str, path: str | os.PathLike[str] | None
) -> None:
    """Refuse a file without an integrity check where the configuration promises one.

    A password on a JKS (or PKCS#12, BKS) store is what proves the file is the one
    written with it. A PEM bundle, a DER certificate or a MAC-less PKCS#12 put in
    its place proves nothing, and would otherwise load: for a truststore, that
    means trusting whoever could write the file.
    """
    if declared.strip().upper().replace("#", "").replace("-", "") not in _PROTECTED_TYPES:
        return
    if fmt in _JAVA_FAMILY or (fmt == "PKCS12" and _pkcs12_has_mac(data, path)):
        return
    what = {
        "PEM": "a PEM file",
        "DER": "a DER certificate or PKCS#7 bundle",
        "PKCS12": "a PKCS#12 store without a MAC",
    }.get(fmt, fmt)
    declare = (
        f"declare its type as {fmt}"
        if fmt in ("PEM", "DER")
        else "configure it without a password (the JDK's own cacerts is such a file since JDK 18)"
    )
    raise KeystoreFormatError(
        f"{_where(path)}: declared {declared} with a password, but the file is {what}, "
        "which has no integrity check the password could verify (a replaced file would "
        f"load unnoticed): restore the {declared} store; if this file is meant to be "
        f"there, {declare}, or allow it with allow_unprotected=True",
        path=path,
    )


def _pkcs12_has_mac(data: bytes, path: str | os.PathLike[str] | None) -> bool:
    """Whether the PFX has its MacData.

    Raises:
        KeystoreFormatError: the PFX cannot be read (truncated, damaged): it is
            refused as damaged, never taken for a store without a MAC.
    """
    # PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData OPTIONAL }
    try:
        # Bytes after the PFX are ignored, as the parser (and Java) ignore them.
        parts = _der.read_single(_der.to_der(data, first_only=True), _der.SEQUENCE).children()
    except _der.DERError as exc:
        raise _damaged_pkcs12(exc, path) from None
    return len(parts) == 3 and parts[2].tag == _der.SEQUENCE


def _damaged_pkcs12(exc: Exception, path: str | os.PathLike[str] | None) -> KeystoreFormatError:
    if isinstance(exc, _pkcs12.P12UnsupportedError):
        return KeystoreFormatError(
            f"{_where(path)}: a PKCS#12 store protected with an algorithm mtls does not read "
            f"({exc}): {exc.remedy} (OpenSSL 3's openssl pkcs12 -export, and keytool "
            "-importkeystore, write AES-256 and a SHA-256 MAC)",
            path=path,
        )
    return KeystoreFormatError(
        f"{_where(path)}: damaged or unsupported PKCS#12 store ({exc}): replace the file",
        path=path,
    )


# The store types a <Type> may name (Java's, and the formats mtls reads).
_TYPE_NAMES = frozenset(
    {"JKS", "JCEKS", "PKCS12", "P12", "PFX", "PEM", "DER", "BKS", "UBER", "CASEEXACTJKS", "DKS",
     "BCFKS", "BKSV1", "BCPKCS12", "PKCS12DEF", "PKCS11", "WINDOWSMY", "WINDOWSROOT",
     "KEYCHAINSTORE"}
)  # fmt: skip


def _shown_type(declared: str) -> str:
    """A declared type as messages show it: a store type's name as written, anything
    else not at all (it may come from a placeholder, whose values are never shown)."""
    norm = declared.upper().replace("#", "").replace("-", "")
    return declared if norm in _TYPE_NAMES else "something that is not a store type"


def _declared_mismatch(declared: str, fmt: str) -> bool:
    norm = declared.upper().replace("#", "").replace("-", "")
    return norm not in (fmt, "PKCS12" if fmt == "PKCS12" else fmt)


# What Java's KeyStore.getInstance(type).load() reads under each declared type (JDK 9
# and later, keystore.type.compat=true, the default): JKS and PKCS12 each read the other
# (a .jks from a modern keytool is PKCS#12), JCEKS reads JKS too, CaseExactJKS only JKS
# (checked with JDK 17 and 25 keytool); Bouncy Castle's types their own format. Any
# other pair fails there ("Invalid keystore format", "DerInputStream.getLength():
# lengthTag=78"). Keys as _say_mismatch spells them (upper case, no "-").
_JAVA_READS: Final = {
    "JKS": ("JKS", "PKCS12"),
    "PKCS12": ("PKCS12", "JKS"),
    "JCEKS": ("JCEKS", "JKS"),
    "CASEEXACTJKS": ("JKS",),
    "BKS": ("BKS",),
    "BKSV1": ("BKS",),
    "UBER": ("UBER",),
    "BCFKS": ("BCFKS",),
    "BCPKCS12": ("PKCS12",),
    "PKCS12DEF": ("PKCS12",),
}
# The formats a store type can be declared as, to say which to declare.
_JAVA_FORMATS: Final = frozenset({"JKS", "PKCS12", "JCEKS", "BKS", "UBER", "BCFKS"})


def _say_mismatch(declared: str, fmt: str, where: str) -> None:
    """A declared type the content is not: mtls reads the content. Said at debug level
    where Java reads such a file as well; where it does not (a JCEKS file declared
    PKCS12 or JKS, a PKCS#12 declared JCEKS), as a warning that WSO2 cannot load the
    store (``mtls check`` fails on it). A declared type that is no store type Java
    reads is said where the configuration is read (``_warn_unknown_type``)."""
    norm = declared.strip().upper().replace("-", "")
    if norm not in _JAVA_READS or fmt in _JAVA_READS[norm]:
        log.debug("%s: declared type %s, content is %s; using the content", where,
                  _shown_type(declared), fmt)  # fmt: skip
        return
    log.warning(
        "%s: declared type %s, but the file is %s: mtls reads the content, but Java's "
        'KeyStore.getInstance("%s").load refuses a %s file, so WSO2 cannot load this '
        "store: %s",
        where,
        declared.strip(),
        fmt,
        declared.strip(),
        fmt,
        f"declare it {fmt}" if fmt in _JAVA_FORMATS else "make it a PKCS12 store (mtls convert)",
        extra=WSO2_CANNOT_LOAD,
    )


def _container(
    fmt: StoreFormat,
) -> Callable[[bytes, str | None, WorkBudget], _jks.JKSContents]:
    # The parser itself, not a call through another frame holding the password.
    if fmt == "BKS":
        return _bks.parse_bks
    if fmt == "UBER":
        return _bks.parse_uber
    if fmt == "BCFKS":
        return _bcfks.parse_store
    return _jks.parse_store


def _key_rounds(key: _jks.JKSKey, password: str | None) -> int:
    """What decrypting a Java-family key entry with ``password`` will derive, by the
    format that protects it."""
    if key.store_type == _bcfks.TYPE:
        return _bcfks.kdf_rounds(key)
    if key.store_type in _bks.TYPES:
        return _bks.kdf_rounds(key)
    return _jks.kdf_rounds(key, password)


def _unprotect(key: _jks.JKSKey, password: str, budget: WorkBudget | None) -> bytes:
    """A Java-family key entry's PKCS#8, by the format that protects it."""
    if key.store_type == _bcfks.TYPE:
        return _bcfks.decrypt_key(key, password, budget)
    if key.store_type in _bks.TYPES:
        return _bks.decrypt_key(key, password, budget)
    return _jks.decrypt_key(key, password, budget)


def _parse_jks(
    data: bytes,
    fmt: StoreFormat,
    password: str | None,
    key_password: str | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
    budget: WorkBudget,
    key_alias: str | None = None,
) -> Parsed:
    """JKS, JCEKS, BKS and UBER: Java-family containers with key entries and an integrity check."""
    where = _where(path)
    try:
        contents = _container(fmt)(data, password, budget)
    except WorkLimitError as exc:
        raise _too_much_work(exc, path, None) from exc
    except _jks.JKSFormatError as exc:
        raise KeystoreFormatError(f"{where}: {exc}", path=path) from exc
    except _bks.PasswordRequired as exc:
        raise WrongPasswordError(
            f"{where}: this {fmt} store is encrypted: pass its password", path=path
        ) from exc
    except _jks.JKSIntegrityError as exc:
        raise _jks_integrity_error(data, fmt, password, path) from exc
    for alias in contents.replaced:
        log.warning(
            "%s: alias %r appears more than once (aliases are looked up in lower case): "
            "the entry the JDK finds is used (the last one written in lower case)",
            where,
            alias,
        )
    # Shown by mtls check and mtls list, as the other notes of what the JDK's reader
    # does not take; not logged here as well (mtls list showed each twice, h200).
    java_notes = [
        f"entry {_jks.shown(alias)} has an alias not written in lower case: the JDK lists "
        "it but finds it by no lookup (it looks aliases up in lower case), so WSO2's "
        "gateway cannot use it (mtls does): save the store again with mtls (which writes "
        "aliases in lower case, as keytool does), or re-create the entry with keytool"
        for alias in contents.unreachable
    ]
    for alias in contents.trimmed:
        log.warning(
            "%s: a certificate of entry %r is followed by bytes that are not part of it "
            "(another certificate?): they are ignored, as Java ignores them (keytool -list "
            "shows the first certificate only): import each certificate as an entry of "
            "its own",
            where,
            alias,
        )
    keys: list[KeyEntry] = []
    unusable: list[tuple[str, str]] = []
    wanted = (
        contents.keys
        if key_alias is None
        else [k for k in contents.keys if fold(k.alias) == fold(key_alias)]
    )
    if with_keys:
        secret = key_password if key_password is not None else password
        if secret is None and fmt == "BCFKS":
            secret = ""  # Bouncy Castle's getKey(alias, null): the empty password
        # The whole cost is charged before the first key is decrypted.
        for key in wanted:  # Sun's KeyProtector too: a SHA-1 of the password per 20 bytes
            rounds = _key_rounds(key, secret)
            try:
                budget.charge_kdf(rounds, f"key entry {_jks.shown(key.alias)}")
            except WorkLimitError as exc:
                raise _too_much_work(exc, path, key.alias) from exc
        for k in wanted:
            try:
                keys.append(_decrypt_jks_key(k, secret, key_password is not None, path, None))
            except _bks.NotAPrivateKey as exc:  # listed with the entries TLS cannot use
                unusable.append((k.alias, exc.kind))
    else:
        # A JKS key stays as the file protects it: the store can be written back as JKS.
        keys = [
            KeyEntry(k.alias, b"", k.chain_der, k.protected if fmt == "JKS" else b"")
            for k in wanted
        ]
    secrets = [(s.alias, s.kind) for s in contents.secrets] + unusable
    return Parsed(fmt, keys, list(contents.certs), [], secrets, java_notes=java_notes)


def _too_much_work(
    exc: WorkLimitError, path: str | os.PathLike[str] | None, alias: str | None
) -> KeystoreFormatError:
    """The refusal of a file over a work limit, with the fix for that limit."""
    where = _where(path)
    source = shlex.quote(os.fspath(path)) if path is not None else "<file>"
    recreate = f"keytool -importkeystore -srckeystore {source} -destkeystore <new file>"
    if exc.kind == "budget":
        why = (
            "keytool's defaults stay far below it (10,000 per PKCS#12 derivation, "
            "200,000 per JCEKS key, 51,200 per BCFKS derivation: about 190 BCFKS keys, "
            "46 with SHA-3, which counts four times for its cost), so "
            "the file is damaged, hostile, holds that many keys, or was made with raised "
            "iteration settings (keytool -J-Dkeystore.pkcs12.*IterationCount=...): "
            f"re-create it with keytool's defaults, e.g. {recreate}"
        )
    elif exc.kind == "legacy":
        why = (
            "that is the legacy encryption of Java before 8u301 and of openssl pkcs12 "
            "-legacy, and no real store holds that much of it: re-create it in today's "
            f"format (AES), e.g. {recreate} with a JDK 17 or later"
        )
    elif exc.kind == "scrypt":
        why = (
            "Bouncy Castle reads it, but mtls limits the work a store may ask for before "
            "its password is checked: re-create it with Bouncy Castle's defaults (PBKDF2), "
            "e.g. keytool -importkeystore -deststoretype BCFKS with the Bouncy Castle provider"
        )
    else:
        # (keytool: "iteration count too large"; OpenSSL 3.0 reads 6,000,000, h203.)
        why = "Java refuses such a file too: it is damaged or hostile, replace it"
    return KeystoreFormatError(
        f"{where}: store refused: {exc}; {why} (see docs/security.md)",
        path=path,
        alias=alias,
    )


def _decrypt_jks_key(
    key: _jks.JKSKey,
    secret: str | None,
    explicit: bool,
    path: str | os.PathLike[str] | None,
    budget: WorkBudget | None,
) -> KeyEntry:
    where = _where(path)
    which = "key password" if explicit else "store password (used as the key password)"
    if secret is None:
        raise WrongPasswordError(
            f"{where}: key entry {key.alias!r} needs a password: pass the store's password "
            "(keytool protects the key with it too), or key_password= when the key has "
            "its own",
            path=path,
            alias=key.alias,
        )
    try:
        pkcs8 = _unprotect(key, secret, budget)
    except _jks.JKSKeyPasswordError as exc:
        hint = (
            ": check the key password given (keytool makes it the store password unless "
            "-keypass set another)"
            if explicit
            else "; if the key has its own password, pass key_password"
        )
        raise WrongPasswordError(
            f"{where}: the {which} does not unlock key entry {key.alias!r}{hint}",
            path=path,
            alias=key.alias,
        ) from exc
    except _bks.NotAPrivateKey:
        raise  # not a format error: the caller lists the entry (see _parse_jks)
    except _jks.JKSFormatError as exc:
        raise KeystoreFormatError(f"{where}: {exc}", path=path, alias=key.alias) from exc
    return KeyEntry(key.alias, pkcs8, key.chain_der)


def _jks_integrity_error(
    data: bytes, fmt: StoreFormat, password: str | None, path: str | os.PathLike[str] | None
) -> KeystoreError:
    """Tell a wrong password from an altered file, at a bounded cost.

    The integrity hash cannot tell them apart by itself. But if the same password
    unlocks a key entry (its own check), it was the store password once: either the
    store password was changed since (``keytool -storepasswd`` leaves the keys'
    passwords as they were), or the file was modified after it was written. Only the
    first key entry is tried, and only if it costs at most
    ``DIAGNOSIS_KDF_ITERATIONS``: a file that failed its check is not worth more (a
    hostile one could otherwise ask for millions of rounds per entry).
    """
    where = _where(path)
    budget = WorkBudget(DIAGNOSIS_KDF_ITERATIONS)
    try:
        contents = _container(fmt)(data, None, budget)  # UBER cannot be read: no diagnosis
    except (_jks.JKSFormatError, _jks.JKSIntegrityError, WorkLimitError):
        contents = None
    if contents is not None and contents.keys and password is not None:
        key = contents.keys[0]
        try:
            _unprotect(key, password, budget)
        except (_jks.JKSKeyPasswordError, _jks.JKSFormatError, WorkLimitError):
            pass
        else:
            return KeystoreFormatError(
                f"{where}: the integrity check failed although the password unlocks key "
                f"{key.alias!r}: either the store password was changed (keytool "
                "-storepasswd leaves the keys' passwords as they were): use the new one; "
                "or the file was modified or damaged after it was written: replace it",
                path=path,
            )
    return WrongPasswordError(
        f"{where}: wrong store password (the integrity check failed): check the password, "
        "or replace the file if it was modified",
        path=path,
    )


def _store_password_opens(data: bytes, password: Secret | None, budget: WorkBudget) -> bool:
    """Whether ``password`` unlocks every key of a PKCS#12 store whose own key password
    did not (asked only to explain that refusal; charged to the same budget)."""
    if password is None:
        return False
    try:
        _pkcs12.parse_pkcs12(data, password, key_password=None, decrypt_keys=True, budget=budget)
    except (_pkcs12.P12PasswordError, _pkcs12.P12FormatError, WorkLimitError):
        return False
    return True


def _opens_past_its_mac(data: bytes, password: Secret | None, budget: WorkBudget) -> bool:
    """Whether ``password``, which the MAC refused, decrypts the store's certificates
    (asked only to explain that refusal, charged to the same budget): then the MAC, not
    the password, is wrong. Not a key: it may have a password of its own, which given
    as the store's opened it and called a wrong store password damage (h200). A wrong
    password passes a cipher's padding 1 time in 256, and then the shape of what it
    opened. Certificates not encrypted tell nothing: a wrong password, as before."""
    if password is None:
        return False
    try:
        contents = _pkcs12.parse_pkcs12(
            data, password, decrypt_keys=False, budget=budget, verify_mac=False
        )
    except (_pkcs12.P12PasswordError, _pkcs12.P12FormatError, WorkLimitError):
        return False
    return contents.opened


def _parse_pkcs12(
    data: bytes,
    password: Secret | None,
    key_password: Secret | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
    budget: WorkBudget,
    purpose: str | None = None,
) -> Parsed:
    where = _where(path)
    try:
        contents = _pkcs12.parse_pkcs12(
            data, password, key_password=key_password, decrypt_keys=with_keys, budget=budget
        )
    except _pkcs12.P12PasswordError as exc:
        which = "key password" if exc.which == "key" else "store password"
        if password is None and exc.which != "key":
            msg = (
                f"{where}: this PKCS#12 store is protected by a password (its MAC does not "
                "verify without one, or its content is encrypted): pass its password "
                '(password="" for one exported with an empty password, as openssl pkcs12 '
                "-nomac -passout pass: writes it), or replace the file if it was damaged"
            )
        elif exc.encoding:
            what = "its private key" if exc.which == "key" else "its certificates"
            msg = (
                f"{where}: the password verifies the file's integrity check (MAC) but does "
                f"not decrypt {what}: they were encrypted with another encoding of this "
                "non-ASCII password (its ISO-8859-1 bytes, as Bouncy Castle and OpenSSL "
                "given such bytes write it), which keytool cannot read either: write the "
                "store again with an ASCII password"
                + (", or, if the key has its own password, pass key_password"
                   if exc.which == "key" else "")
            )  # fmt: skip
        elif exc.which == "key" and exc.alias is not None:
            # The MAC vouched for the store password, or a key password was given: the
            # entry's own password differs (keytool -keypass, Windows exports).
            opened = (
                "key password"
                if key_password is not None
                else ("store password (used as the key password)")
            )
            msg = f"{where}: the {opened} does not unlock key entry {_jks.shown(exc.alias)}: " + (
                "the store password does: keytool writes a PKCS#12 key under the store "
                "password (it ignores -keypass), and Java then needs that password as the "
                "key password too: leave the key password out or set it to the store password"
                if key_password is not None and _store_password_opens(data, password, budget)
                else "every key entry must open with the one key password, as Java's key "
                "manager requires (Keystore.inspect lists the entries without one)"
                if key_password is not None
                else "if the key has its own password, pass key_password"
            )
        elif exc.which == "store" and exc.after_mac:
            msg = (
                f"{where}: the password verifies the PKCS#12 integrity check (MAC) but does "
                "not decrypt the certificates: they are under another password (openssl "
                "pkcs12 -twopass writes such files; Java needs the one password for both): "
                "export the store again with one password"
            )
        elif (
            exc.which == "store"
            and password is not None
            and password.reveal().endswith("\x00")
            and _opens_past_its_mac(data, password, budget)
        ):
            # PBKDF2 keys HMAC with the password's UTF-8, and HMAC pads its key with
            # zero bytes: a trailing NUL decrypts. The MAC's key comes from the password
            # as BMPString with its own terminator: it fails (h265: an intact store was
            # called damaged).
            msg = (
                f"{where}: the password ends with a NUL character (\\x00: a file or setting "
                "written with one, such as deployment.toml's \\u0000?), which decrypts the "
                "content but fails the PKCS#12 integrity check (MAC): remove it"
            )
        elif exc.which == "store" and _opens_past_its_mac(data, password, budget):
            # Java tells the two apart so too: "Integrity check failed", not "password
            # was incorrect" (h196: a damaged MAC, salt or count was a wrong password).
            raise KeystoreFormatError(
                f"{where}: the PKCS#12 integrity check (MAC) fails, yet the password "
                "decrypts the store's content: the file was modified or damaged after it "
                "was written (or its MAC made under another password, as openssl pkcs12 "
                "-twopass does, which Java refuses too): replace it",
                path=path,
            ) from exc
        else:
            msg = f"{where}: wrong {which} (the PKCS#12 MAC or decryption failed): check it" + (
                ", or replace the file if it was damaged" if exc.which == "store" else ""
            )
        raise WrongPasswordError(msg, path=path, alias=exc.alias) from exc
    except WorkLimitError as exc:
        raise _too_much_work(exc, path, None) from exc
    except _pkcs12.P12FormatError as exc:
        raise _damaged_pkcs12(exc, path) from exc

    certs = contents.certs
    index_of = _Certs(certs, purpose)
    # Each entry with its place among the bags Java registers and its alias in Java's
    # table (None: Java never registers it); the table keeps one entry per alias (below).
    keys: list[tuple[int, str | None, KeyEntry]] = []
    unnamed = _Unnamed(contents.unnamed)
    # Java keeps a key without a localKeyId only when it is the first private key it
    # reads (its count of keys so far is 1: h286, a later one with an id beside it).
    first_shrouded = next((key for key in contents.keys if key.order), None)
    notes: list[str] = []
    # The localKeyIds keys took a certificate by: another certificate with one is no
    # key entry of its own (h283: listed as one, which keytool does not list).
    paired: set[bytes] = set()
    # Decrypted keys without a certificate: (order, Java's alias or None, (alias, why)),
    # why marked (_CERTLESS) until the alias is final (:func:`_certless_kind`).
    certless: list[tuple[int, str | None, tuple[str, str]]] = []
    if contents.pbmac1:
        notes.append(
            "its integrity check is PBMAC1 (RFC 9579), which the JDK's PKCS12 reader "
            "(JDK 17, JDK 25) does not know: keytool and WSO2's gateway refuse the file; "
            "write it with an HMAC integrity check (mtls convert, keytool -importkeystore, "
            "or openssl pkcs12 -export without -pbmac1_pbkdf2)"
        )
    if contents.java_refused:
        notes.append(
            f"it is encrypted with PBES2 and {' and '.join(contents.java_refused)}, which "
            "the JDK's PKCS12 reader (JDK 17, JDK 25) does not take (it takes PBKDF2 with "
            "AES-128-CBC or AES-256-CBC): keytool and WSO2's gateway cannot read what is "
            "encrypted so (the certificates: the file; a key: that entry); write it with "
            "AES-256 (mtls convert, keytool -importkeystore, or openssl pkcs12 -export "
            "with -keypbe AES-256-CBC -certpbe AES-256-CBC)"
        )
    if contents.java17_refused:
        notes.append(
            f"it is encrypted with PBES2 and {' and '.join(contents.java17_refused)}, which "
            "JDK 17's PKCS12 reader does not take (JDK 25's does): keytool 17 and a WSO2 "
            "gateway on JDK 17 cannot read what is encrypted so (the certificates: the "
            "file; a key: that entry); write it with HMAC-SHA256 (mtls convert, keytool "
            "-importkeystore, or openssl pkcs12 -export with -keypbe AES-256-CBC "
            "-certpbe AES-256-CBC)"
        )
    if contents.java_refused_pbes1:
        notes.append(
            f"it is encrypted with {' and '.join(contents.java_refused_pbes1)}, which the "
            "JDK's PKCS12 reader (JDK 17, JDK 25) does not take: keytool and WSO2's "
            "gateway cannot read what is encrypted so "
            "(the certificates: the file; a key: that entry); write it with AES-256 (mtls "
            "convert, keytool -importkeystore, or openssl pkcs12 -export with -keypbe "
            "AES-256-CBC -certpbe AES-256-CBC)"
        )
    if contents.java_misencoded:
        # (h188: the note below said JDK 25 reads it, true of PBES2/AES only.)
        notes.append(
            "its password has characters outside printable ASCII, and it is encrypted "
            "with PKCS#12's own PBE (triple DES, RC2) under the encoding of that password "
            "OpenSSL uses, where Java masks each byte to 7 bits: JDK 17 refuses the "
            'password and JDK 25 derives another key (keytool 17 and 25 say "keystore '
            "password was incorrect\"), so WSO2's gateway cannot read what is encrypted so "
            "(the certificates: the file; a key: that entry); give it a printable ASCII "
            "password, or write it with AES-256 (mtls convert, or openssl pkcs12 -export "
            "with -keypbe AES-256-CBC -certpbe AES-256-CBC)"
        )
    elif password is not None and not _pkcs12.jdk17_takes_password(password.reveal()):
        notes.append(
            "its password has characters outside printable ASCII: JDK 17's PKCS12 reader "
            'refuses it (keytool says "keystore password was incorrect"), so WSO2 on JDK 17 '
            "cannot load the file, though JDK 25 and OpenSSL can; give it a printable ASCII "
            "password"
        )
    for key in contents.keys:
        leaf_at = index_of.leaf_for(key.pkcs8_der, key.local_key_id, key.alias)
        if leaf_at is not None and key.local_key_id is not None:
            paired.add(key.local_key_id)
        if leaf_at is None and not key.pkcs8_der:
            # Not decrypted (a listing), a key is matched by its localKeyId only; a lone
            # key without one takes the first certificate, as the JDK's PKCS12KeyStore.
            lone = len(contents.keys) == 1 and key.local_key_id is None
            leaf_at = index_of.first_without_id() if lone else None
        registered = key.order and (key.local_key_id is not None or key is first_shrouded)
        # Java then pairs the key by its alias (its friendlyName, else its number "1")
        # with a certificate of that friendlyName, trusted ones aside (h289: an
        # unnamed key's "1" was not compared, and its only key was called certless).
        java_name = (
            key.alias if key.alias is not None else None if key.number is None else str(key.number)
        )
        # (Only certificates Java reads: not inside a safeContentsBag, h291.)
        named = (
            [
                index
                for index, cert in enumerate(certs)
                if cert.order and not cert.trusted and fold(cert.alias or "") == fold(java_name)
            ]
            if leaf_at is None and java_name is not None
            else []
        )
        named_alike = bool(named)
        if leaf_at is None and not key.pkcs8_der and registered and named:
            # Listing, as Java pairs it: the last certificate of its name, shared with
            # another key if it is one's (h291: left to the certificates below, which
            # listed no key for it, so a store of two such keys listed none).
            leaf_at = named[-1]
        # Listing, a key Java pairs with nothing (by localKeyId or friendlyName) is
        # listed as keytool lists it (it was hidden, h288); one without a localKeyId
        # Java may pair by where its bags lie, which is not modelled: left out as before.
        listed_certless = registered and key.local_key_id is not None and not named_alike
        if leaf_at is None and not key.pkcs8_der and certs and not listed_certless:
            continue  # its certificates are read below
        if leaf_at is None:
            name = unnamed.alias(key.alias, number=key.number)
            listed = (
                "keytool lists no such entry: it skips an unencrypted keyBag"
                if key.plain
                else "keytool lists it with the certificate of its name, another key's"
                if registered and named_alike  # Java pairs by friendlyName too (h286)
                else "keytool lists a chain of length 0"
                if registered
                else "keytool lists no such entry"
            )
            if not key.pkcs8_der and not certs:  # the file has no certificate at all
                raise KeystoreFormatError(
                    f"{where}: key entry {name!r} has no certificate ({listed}; TLS cannot "
                    "use it): export the store again with the key's certificate chain",
                    path=path,
                )
            # Java's key managers pass such a key by and serve the others (h263, h283:
            # the whole store was refused): an entry TLS cannot use, as a sealed public
            # key is. A store left with no usable key is refused below.
            certless.append((key.order, name if registered else None, (name, _CERTLESS + listed)))
            continue
        chain = index_of.chain_from(leaf_at)
        # Java names a key by its own friendlyName, else its number ("1"): so does mtls,
        # a profile's <KeyAlias> being read by Java too (the certificate's friendlyName
        # passed `mtls check` where WSO2's gateway found no such entry, and Java's name
        # failed here, h235). A key Java does not list as an entry is named by its
        # certificate's friendlyName then, as Windows names the two bags apart.
        java = (key.alias if key.alias is not None else str(key.number)) if registered else None
        alias = (
            java
            if java is not None
            else unnamed.alias(key.alias, certs[leaf_at].alias, number=key.number)
        )
        keys.append((key.order, java, KeyEntry(alias, key.pkcs8_der, tuple(chain))))
        if key.plain:
            notes.append(
                f"key entry {_jks.shown(alias)} is stored unencrypted (a PKCS#12 keyBag), "
                "which the JDK's PKCS12 reader skips: keytool and WSO2's gateway see no "
                "such entry; write the store again with its keys encrypted (mtls convert, "
                "or keytool -importkeystore)"
            )
    trusted: list[tuple[int, str | None, tuple[str, bytes]]] = []
    loose: list[tuple[str | None, bytes]] = []
    for index, cert in enumerate(certs):
        if index in index_of.used and not (cert.trusted and index not in index_of.leaves):
            continue
        if cert.trusted:
            alias = unnamed.alias(cert.alias, number=cert.number)
            trusted.append((cert.order, alias if cert.order else None, (alias, cert.der)))
        elif cert.local_key_id is not None and not with_keys and cert.local_key_id not in paired:
            # The leaf of a key entry we did not decrypt: Java's TrustManager trusts it.
            alias = unnamed.alias(cert.alias)
            chain = index_of.chain_from(index)
            keys.append((0, None, KeyEntry(alias, b"", tuple(chain))))  # the key's bag unread
        else:
            loose.append((cert.alias, cert.der))
    secrets = [
        (order, name if order else None, (name, kind))
        for order, (name, kind) in zip(contents.secrets_order, contents.secrets, strict=True)
    ] + certless
    kept, dropped = _java_table(
        [(o, java) for o, java, _ in (*keys, *trusted, *secrets) if java is not None]
    )
    for alias, stays in dropped:
        log.warning(
            "%s: entry %r is left out: a later entry has the same alias (%r; aliases are "
            "compared case-insensitively, and Java numbers an entry without a name), and "
            "the JDK keeps the last one (keytool lists it alone): give each entry an "
            "alias of its own",
            where,
            alias,
            stays,
        )
    # Java's entries keep the aliases Java gives them; mtls's own (a key named by its
    # certificate, a bag Java never reads) are numbered around them, in file order.
    key_list = [(java, e) for o, java, e in keys if java is None or o in kept]
    trust_list = [(java, e) for o, java, e in trusted if java is None or o in kept]
    secret_list = [(java, e) for o, java, e in secrets if java is None or o in kept]
    taken = Taken()
    for java, alias in [(j, e.alias) for j, e in key_list] + [
        (j, e[0]) for j, e in (*trust_list, *secret_list)
    ]:
        if alias == java:
            taken.add(alias)

    def own(java: str | None, alias: str) -> str:
        return alias if alias == java else unique_alias(alias, taken)

    final_keys = [
        e if (a := own(j, e.alias)) == e.alias else replace(e, alias=a) for j, e in key_list
    ]
    final_secrets: list[tuple[str, str]] = []
    # mtls delete removes one such key where it leaves a store it can write: a usable
    # key, and no other such key (h291: advised where it refuses).
    deletable = bool(final_keys) and sum(w.startswith(_CERTLESS) for _, (_, w) in secret_list) == 1
    for java, (name, what) in secret_list:
        alias, kind = own(java, name), what
        if kind.startswith(_CERTLESS):  # named now: the remedy names the final alias
            listed = kind.removeprefix(_CERTLESS)
            # A store with no usable key is refused, as before, when its keys are loaded
            # for use; a listing lists it (h288: `mtls list` failed on it).
            if with_keys and not final_keys:
                raise KeystoreFormatError(
                    f"{where}: key entry {alias!r} has no certificate ({listed}; TLS cannot "
                    "use it), and the store has no other key entry: export the store again "
                    "with the key's certificate chain",
                    path=path,
                )
            if with_keys:  # (a listing shows it, with what it is: h289)
                log.warning(
                    "%s: key entry %s has no certificate (%s): left out, as Java's key "
                    "managers pass it by; TLS cannot use it (Keystore.secret_keys lists it)",
                    where,
                    _jks.shown(alias),
                    listed,
                )
            kind = _certless_kind(alias, listed, java, deletable=deletable)
        final_secrets.append((alias, kind))
    index_of.say_passed_over(where)
    return Parsed(
        "PKCS12",
        final_keys,
        [(own(j, e[0]), e[1]) for j, e in trust_list],
        loose,
        final_secrets,
        notes,
        passwordless=contents.passwordless,
    )


#: How :attr:`Keystore.secret_keys` starts the description of a key entry that has no
#: certificate (the rest says why and what removes it).
CERTLESS_KIND: Final = "private key without a certificate"
_CERTLESS: Final = "\x00certless:"  # marks such an entry's "why" until its alias is final


def _certless_kind(name: str, listed: str, java: str | None, *, deletable: bool) -> str:
    """What a key entry without a certificate is, as :attr:`Keystore.secret_keys` says
    it, with what removes it: mtls delete where the store has a usable key to load
    with (``deletable``; h289: it was advised where it refuses), and keytool where it
    lists the entry (its -delete leaves the other entries as they were; it cannot see
    the others)."""
    removers = [f"mtls delete --alias {shlex.quote(name)}"] if deletable else []
    if java is not None:
        removers.append(f"keytool -delete -alias {shlex.quote(java)}")
    remedy = f"remove it ({', or '.join(removers)}), or " if removers else ""
    return (
        f"{CERTLESS_KIND} ({listed}; Java's key managers pass it by, and TLS cannot use "
        f"it): {remedy}export the store again with its chain"
    )


def _java_table(
    entries: Sequence[tuple[int, str]],
) -> tuple[set[int], list[tuple[str, str]]]:
    """Of a PKCS#12 file's entries (bag order, alias), the ones the JDK's PKCS12KeyStore
    keeps: its table is keyed by the alias lower-cased and filled in file order, so of
    entries whose aliases differ only in case the last one stays (keytool lists it
    alone; WSO2 trusts and sends only it). Numbering them apart trusted a certificate
    Java never saw, and ``delete`` took another entry than keytool's.

    Returns:
        The orders kept, and the alias of each entry left out with the alias of the
        entry that stays in its place, in file order.
    """
    ordered = sorted(entries)
    last = {fold(alias): (order, alias) for order, alias in ordered}
    kept = {order for order, _ in last.values()}
    return kept, [(a, last[fold(a)][1]) for order, a in ordered if order not in kept]


class _Unnamed:
    """Aliases as the JDK's PKCS12KeyStore gives them: the first friendlyName present,
    else the number the reader gave the entry (Java's counter of unnamed key entries and
    trusted certificates, in file order: ``"1"``, ``"2"``, ...). An entry Java does not
    number (a key's leaf listed without its key) takes the numbers after those.

    An empty friendlyName is an alias: keytool (JDK 17 and 25) lists it as ``""``.
    A trailing NUL (some OpenSSL-made files have one) is kept, as keytool keeps it.
    """

    def __init__(self, used: int) -> None:
        self.count = used

    def alias(self, *names: str | None, number: int | None = None) -> str:
        name = next((name for name in names if name is not None), None)
        if name is not None:
            return name
        if number is not None:
            return str(number)
        self.count += 1
        return str(self.count)


class _Certs:
    """The certificates of one file, indexed once: by localKeyId, public key and subject.

    Each lookup returns the first unused match in file order and marks it used, so
    matching k keys and their chains against c certificates reads each certificate
    once (k + c), where scanning the list for every key cost k * c.

    Names and public keys are matched by their DER bytes first (:func:`_x509.raw_names`:
    no objects built). Only when that finds nothing while certificates are left over
    does a lookup compare them as cryptography normalises them (a name in another
    string type, a key encoded differently), as every lookup did before.
    """

    def __init__(self, certs: Sequence[_pkcs12.P12Cert], purpose: str | None = None) -> None:
        self.certs = certs
        #: The TLS role the keys present in, where known (``"client"``, ``"server"``):
        #: of a key's certificates, those peers accept in it come first.
        self.purpose = purpose
        #: (passed over, chosen): a key's newest valid certificate peers refuse in
        #: :attr:`purpose`, and the one chosen instead (:meth:`_take_current`).
        self.passed_over: list[tuple[int, int]] = []
        self.used: set[int] = set()
        # The certificates chains start from (a key's): a trusted certificate used as
        # an issuer only is still a trusted entry, as in Java.
        self.leaves: set[int] = set()
        self._tables: dict[str, dict[object, list[int]]] = {}
        # Per table, the first match in file order, kept when the table's list is
        # consumed: an issuer another chain took already is still this chain's issuer.
        self._firsts: dict[str, dict[object, int]] = {}
        # Every certificate of a subject name, in file order (never consumed).
        self._named: dict[object, list[int]] = {}
        # The signatures tried to tell namesakes apart, for the whole file (each
        # pair once: every key entry of a bundle carries its own copy of the chain).
        self._budget = _x509.SignatureBudget(len(certs))
        #: When a choice among several certificates for one key would change: the
        #: first validity boundary ahead among them (:meth:`_take_current`).
        self.rechoose_at: _dt.datetime | None = None

    def _table(self, name: str) -> dict[object, list[int]]:
        table = self._tables.get(name)
        if table is None:
            table = {}
            for index, cert in enumerate(self.certs):
                key = _CERT_KEYS[name](cert)
                if key is not None:
                    table.setdefault(key, []).append(index)
            self._firsts[name] = {key: indexes[0] for key, indexes in table.items()}
            if name == "subject":
                self._named = {key: list(indexes) for key, indexes in table.items()}
            # Reversed, so that the first match in file order is at the end: popped
            # when used, and skipped (popped) when taken by another lookup since.
            for indexes in table.values():
                indexes.reverse()
            self._tables[name] = table
        return table

    def _issuer(self, name: str, key: object) -> int | None:
        """An issuer: the first unused match (marked used), else the first match even if
        another chain took it. Java builds every chain from all the file's certificates:
        two key entries under one intermediate share the one copy of it."""
        found = self._take(name, key)
        return found if found is not None else self._firsts[name].get(key)

    def _take(self, name: str, key: object) -> int | None:
        indexes = self._table(name).get(key)
        while indexes:
            index = indexes.pop()
            if index not in self.used:
                self.used.add(index)
                return index
        return None

    def _take_current(self, name: str, key: object) -> int | None:
        """As :meth:`_take`, but of several unused certificates for one key (a renewed
        certificate beside the one it replaced, in a PEM file), the one valid now that
        was issued last (the latest notBefore, then notAfter, then the later in the
        file: a reissue keeps the original's end, or ends sooner, h242); of none valid
        now, the same order: the first in file order was the key's even when expired,
        and peers refused the handshake (h239). Where the role is known
        (:attr:`purpose`), of those valid now one peers accept in it comes before one
        they refuse whatever the time (:func:`mtls._purpose.peers_refuse`: a renewal
        issued without clientAuth): it was served after a restart, and every handshake
        failed while the certificate before it was still good (h243)."""
        indexes = self._table(name).get(key)
        unused = [i for i in reversed(indexes or ()) if i not in self.used]  # file order
        if len(unused) < 2:
            return self._take(name, key)
        now = _dt.datetime.now(_dt.UTC)  # one instant for the whole choice
        currency = {index: self._currency(index, now) for index in unused}
        best = max(unused, key=currency.__getitem__)
        newest = max(unused, key=lambda i: currency[i][:1] + currency[i][2:])
        if newest != best and currency[best][0]:
            self.passed_over.append((newest, best))
        ahead = [
            moment
            for _, _, start, end, _ in currency.values()
            for moment in (start, end + _dt.timedelta(seconds=1))
            if moment > now
        ]
        if ahead and (self.rechoose_at is None or min(ahead) < self.rechoose_at):
            self.rechoose_at = min(ahead)
        assert indexes is not None
        indexes.remove(best)
        self.used.add(best)
        return best

    def _currency(
        self, index: int, now: _dt.datetime
    ) -> tuple[bool, bool, _dt.datetime, _dt.datetime, int]:
        """(valid at ``now``, fit for :attr:`purpose`, notBefore, notAfter, position) of
        a certificate; one that cannot be read sorts first."""
        der = self.certs[index].der
        try:
            cert = _x509.load_cert(der)
            start, end = _dates.not_before(cert), _dates.not_after(cert)
        except (ValueError, TypeError):
            never = _dt.datetime.min.replace(tzinfo=_dt.UTC)
            return False, False, never, never, index
        fit = self.purpose is None or _purpose.peers_refuse(der, self.purpose) is None
        return start <= now <= end, fit, start, end, index

    def _left(self) -> bool:
        return len(self.used) < len(self.certs)

    def say_passed_over(self, where: str) -> None:
        """Warn of each certificate :meth:`_take_current` passed over for
        :attr:`purpose` (:func:`_say_passed_over`)."""
        for passed, chosen in self.passed_over:
            _say_passed_over(where, self.certs[passed].der, self.certs[chosen].der, self.purpose)

    def leaf_for(
        self, key_der: bytes, local_key_id: bytes | None, alias: str | None = None
    ) -> int | None:
        """The certificate of a private key: by localKeyId, else by public key."""
        if local_key_id is not None:
            index = self._take_id(local_key_id, key_der, alias)
            if index is not None:
                return index
        public = _spki_of_private(key_der) if key_der else None
        index = None if public is None else self._take_current("key", public)
        if index is not None:
            return index
        if self._left():
            parsed = _public_key_of_private(key_der)
            index = None if parsed is None else self._take_current("key-parsed", parsed)
            if index is not None:
                return index
        # Its certificate taken already, as an issuer in another key's chain (a CA's key
        # entry beside a key it issued, stored with a chain of one): the JDK matches a
        # key's certificate whatever chains hold it, and the CA's entry was refused as
        # having no certificate (h236).
        found = None if local_key_id is None else self._firsts["id"].get(local_key_id)
        if found is None and public is not None:
            found = self._firsts["key"].get(public)
        return found

    def _take_id(self, local_key_id: bytes, key_der: bytes, alias: str | None) -> int | None:
        """The certificate a key's localKeyId names (marked used). Of several with it
        (h283: the first was taken, another key's certificate, and OpenSSL refused the
        pair where Java serves the store): the one whose public key is the key's, else
        as the JDK's PKCS12KeyStore matches (the first that has the key's alias as its
        friendlyName too, else the last)."""
        indexes = self._table("id").get(local_key_id)
        unused = [i for i in reversed(indexes or ()) if i not in self.used]  # file order
        if len(unused) < 2:
            return self._take("id", local_key_id)
        chosen = None
        public = _spki_of_private(key_der) if key_der else None  # only where several
        if public is not None:
            chosen = next((i for i in unused if _cert_spki(self.certs[i]) == public), None)
        if chosen is None and alias is not None:
            chosen = next(
                (i for i in unused if fold(self.certs[i].alias or "") == fold(alias)), None
            )
        if chosen is None:
            chosen = unused[-1]
        assert indexes is not None
        indexes.remove(chosen)
        self.used.add(chosen)
        return chosen

    def first_without_id(self) -> int | None:
        """The first certificate, if it is unused and has no localKeyId (marked used)."""
        if not self.certs or self.certs[0].local_key_id is not None or 0 in self.used:
            return None
        self.used.add(0)
        return 0

    def chain_from(self, index: int) -> list[bytes]:
        """The certificate at ``index`` (marked used, a leaf) and the issuers found
        after it."""
        self.used.add(index)
        self.leaves.add(index)
        chain = [self.certs[index].der]
        taken = {index}
        while True:
            names = _x509.raw_names(chain[-1])
            if names is None or names[0] == names[1]:  # unreadable, or self-issued
                return chain
            found = self._signer(chain[-1], names[0])
            if found is None:
                found = self._issuer("subject", names[0])
            if found is None and self._left():
                found = self._parsed_issuer(chain[-1])
            if found is None or found in taken:  # none, or a loop (cross-signed CAs)
                return chain
            if _other_key(chain[-1], self.certs[found].der):
                return chain  # a namesake with another key: no issuer, as in Java
            taken.add(found)
            chain.append(self.certs[found].der)

    def _signer(self, der: bytes, issuer: bytes) -> int | None:
        """Among several certificates named as ``der``'s issuer (a CA that re-keyed
        its intermediate, or renewed it: the old one still in the file), the one whose
        key signed it, valid now if one is (marked used), as OpenSSL's chain building
        picks it. ``None``: one candidate or none, or none of them verifies: the
        first by name, as before."""
        self._table("subject")  # fills _named
        candidates = self._named.get(issuer, ())
        if len(candidates) < 2:
            return None
        # Lazily: the budget stops the walk, and a list made each step cost n per step.
        best = _signing_issuer(der, (self.certs[i].der for i in candidates), self._budget)
        if best is None:
            return None
        self.used.add(candidates[best])
        return candidates[best]

    def _parsed_issuer(self, der: bytes) -> int | None:
        try:
            # cryptography parses names lazily: a damaged one raises on access.
            cert = _x509.load_cert(der)
            issuer = cert.issuer
            if _x509.same_name(issuer, cert.subject):
                return None
            # Names as Java's X500Principal and OpenSSL compare them (case, spacing,
            # string type aside): the chain keytool reads from such a file.
            canonical = _x509.canonical_name(issuer)
        except ValueError:
            return None
        return self._issuer("subject-parsed", canonical)


def _other_key(child_der: bytes, issuer_der: bytes) -> bool:
    """Whether ``issuer_der`` is a namesake of ``child_der``'s issuer with another key:
    the child's authority key identifier and the candidate's subject key identifier
    both given, and different. The JDK's PKCS12KeyStore passes such a certificate over
    when it builds a chain; a trusted root re-keyed under the same name was appended to
    a key's chain (h236)."""
    try:
        child, issuer = _x509.load_cert(child_der), _x509.load_cert(issuer_der)
        authority = _x509.extension(child, x509.AuthorityKeyIdentifier, child_der)
        subject = _x509.extension(issuer, x509.SubjectKeyIdentifier, issuer_der)
    except ValueError:
        return False
    if authority is None or subject is None or authority.key_identifier is None:
        return False
    return bool(authority.key_identifier != subject.digest)


def _signing_issuer(
    child_der: bytes, candidates: Iterable[bytes], budget: _x509.SignatureBudget
) -> int | None:
    """The position of the candidate whose key signed ``child_der``, preferring one
    valid now; ``None`` when none verifies (or the child cannot be read). Candidates
    are tried through ``budget`` (:meth:`_x509.SignatureBudget.tried`: each pair
    once): a file of namesakes made this quadratic in their count
    (24 RSA certificates with a 3,070-bit exponent: 6.8 s); once it is spent, what
    verified so far, else ``None`` (the first by name, as for one candidate)."""
    try:
        child = _x509.load_cert(child_der)
    except ValueError:
        return None
    now = _dt.datetime.now(_dt.UTC)
    signed: list[int] = []
    for position, der in enumerate(candidates):
        issued = budget.tried(child_der, der, functools.partial(_verifies, child, der))
        if issued is None:
            break
        if not issued:
            continue
        issuer = _x509.load_cert(der)
        if _dates.not_before(issuer) <= now <= _dates.not_after(issuer):
            return position
        signed.append(position)
    return signed[0] if signed else None


def _verifies(child: x509.Certificate, issuer_der: bytes) -> bool:
    """Whether the certificate ``issuer_der``'s key signed ``child`` (linking: one whose
    key is :func:`_x509.costly_key` is passed over)."""
    try:
        issuer = _x509.load_cert(issuer_der)
        if _x509.costly_key(issuer):
            return False
        _x509.verify_issued_by(child, issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _cert_subject(cert: _pkcs12.P12Cert) -> object:
    # A trusted certificate is an issuer too: the JDK's PKCS12KeyStore builds a key's
    # chain from every certificate of the file (h235).
    names = _x509.raw_names(cert.der)
    return None if names is None else names[1]


def _cert_spki(cert: _pkcs12.P12Cert) -> object:
    names = _x509.raw_names(cert.der)
    return None if names is None else names[2]


def _cert_subject_parsed(cert: _pkcs12.P12Cert) -> object:
    try:
        return _x509.canonical_name(_x509.load_cert(cert.der).subject)
    except ValueError:
        return None


def _cert_public_key(cert: _pkcs12.P12Cert) -> object:
    return _certified_key(cert.der)


def _certified_key(cert_der: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo of a certificate as cryptography re-encodes it (``None``
    when it cannot read the certificate or its key)."""
    try:
        return _x509.public_key(_x509.load_cert(cert_der)).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
        return None


_CERT_KEYS: dict[str, Callable[[_pkcs12.P12Cert], object]] = {
    "id": lambda cert: cert.local_key_id,
    "key": _cert_spki,
    "subject": _cert_subject,
    "key-parsed": _cert_public_key,
    "subject-parsed": _cert_subject_parsed,
}

_RSA = "1.2.840.113549.1.1.1"


def _spki_of_private(key_der: bytes) -> bytes | None:
    """The content of the SubjectPublicKeyInfo of a PKCS#8 RSA or EC key, as a
    certificate for it encodes it, assembled from the key's own fields (no key
    object built); ``None`` for other keys, or an EC key without its public point.

    The key is walked by offsets (:func:`_der.spans`): its structure is checked
    whole, and only the public fields are copied out of it.
    """
    try:
        # PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING, ... }
        outer = _der.spans(key_der, *_der.single_span(key_der, _der.SEQUENCE))
        if len(outer) < 3 or outer[1][0] != _der.SEQUENCE or outer[2][0] != _der.OCTET_STRING:
            return None
        _, algorithm_start, algorithm_stop = outer[1]
        identifier = _der.spans(key_der, algorithm_start, algorithm_stop)
        if not identifier or identifier[0][0] != _der.OID:
            return None
        oid = _der.decode_oid(key_der[identifier[0][1] : identifier[0][2]])
        _, private_start, private_stop = outer[2]
        fields = _der.spans(
            key_der, *_der.single_span(key_der, _der.SEQUENCE, private_start, private_stop)
        )
        if oid == _RSA:  # RSAPrivateKey: version, n, e, ...
            public = b"".join(_der.encode(t, key_der[s:e]) for t, s, e in fields[1:3])
            bits = b"\x00" + _der.encode(_der.SEQUENCE, public)
        elif oid == _x509.EC_OID:  # ECPrivateKey: version, key, [0] params, [1] public point
            point = next((f for f in fields[2:] if f[0] == 0xA1), None)
            if point is None:
                return None
            start, stop = _der.single_span(key_der, _der.BIT_STRING, point[1], point[2])
            bits = key_der[start:stop]
        else:
            return None
    except _der.DERError:
        return None
    algorithm = _der.encode(_der.SEQUENCE, key_der[algorithm_start:algorithm_stop])
    return algorithm + _der.encode(_der.BIT_STRING, bits)


def key_matches(key_der: bytes, cert_der: bytes) -> bool | None:
    """Whether a PKCS#8 key is the one ``cert_der`` certifies: by the public key
    assembled from the key's own fields, else by cryptography's reading of both
    (``None``: neither way can tell, a key type neither reads)."""
    names = _x509.raw_names(cert_der)
    public = _spki_of_private(key_der)
    if public is not None and names is not None and public == names[2]:
        return True
    parsed, certified = _public_key_of_private(key_der), _certified_key(cert_der)
    return None if parsed is None or certified is None else parsed == certified


def _public_key_of_private(key_der: bytes) -> bytes | None:
    try:
        return (
            _x509.load_private_key(key_der, check_rsa=False)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
        # UnsupportedAlgorithm: e.g. an EC key on a curve OID cryptography does not know.
        return None


def bundle_certificates(
    data: bytes, *, pem: bool, where: str, path: str | os.PathLike[str] | None
) -> list[bytes]:
    """The certificates of a PKCS#7 bundle (a PEM ``PKCS7`` block, or DER).

    Raises:
        KeystoreFormatError: it holds none that can be read.
    """
    bundle = _x509.pkcs7_certificates(data, pem=pem)
    if not bundle:
        raise KeystoreFormatError(
            f"{where}: a PKCS#7 bundle holds no certificate that can be read: ask for the "
            "certificates again (PEM, or a .p7b with them)",
            path=path,
        )
    return bundle


def _parse_pem(
    data: bytes,
    password: Secret | None,
    key_password: Secret | None,
    *,
    with_keys: bool,
    path: str | os.PathLike[str] | None,
    budget: WorkBudget,
    purpose: str | None = None,
) -> Parsed:
    where = _where(path)
    cert_ders: list[bytes] = []
    key_blocks: list[bytes] = []
    others: dict[str, None] = {}  # labels of the blocks we do not read, in file order
    for label, body, block in pem_blocks(data, where, path):
        if label in PEM_CERTIFICATE_LABELS:
            cert_ders.append(pem_certificate(label, body, len(cert_ders) + 1, where, path))
        elif label.endswith(b"PRIVATE KEY"):
            key_blocks.append(block)
        elif label == b"PKCS7":  # a certificate bundle (openssl crl2pkcs7, .p7b as PEM)
            cert_ders.extend(bundle_certificates(block, pem=True, where=where, path=path))
        else:
            others[label.decode("ascii", "replace")] = None
    if not cert_ders and not key_blocks:
        named = list(others)[:3] + (["..."] if len(others) > 3 else [])
        held = f" (only {', '.join(named)})" if others else ""
        fix = "point to the file with the certificates and key"
        raise KeystoreFormatError(
            f"{where}: no certificate or private key found in this PEM file{held}: {fix}",
            path=path,
        )
    # A certificate twice (cat key.pem cert.pem fullchain.pem) is one: a leaf's copy
    # became a trusted entry beside its key, and a bundle of one CA 6,000 times 6,000
    # anchors, where OpenSSL's store keeps one and keytool refuses the copy (h239).
    cert_ders = list(dict.fromkeys(cert_ders))
    keys: list[KeyEntry] = []
    index_of = _Certs([_pkcs12.P12Cert(None, der, None, False) for der in cert_ders], purpose)
    taken = Taken()
    if with_keys:
        secret = key_password if key_password is not None else password
        read: set[bytes] = set()
        for block in key_blocks:
            key_der = pem_key_to_pkcs8(block, secret, path, budget)
            if key_der in read:
                continue  # one key in two forms (PKCS#8 and PKCS#1): one entry (h239)
            read.add(key_der)
            leaf_at = index_of.leaf_for(key_der, None)
            if leaf_at is None:
                if _spki_of_private(key_der) is None and _public_key_of_private(key_der) is None:
                    # Neither way reads its public key: no certificate could be matched.
                    raise KeystoreFormatError(
                        f"{where}: a private key cannot be read (a key type or curve this "
                        "Python's cryptography does not know, or a damaged key), so no "
                        "certificate can be matched to it: use an RSA, EC (P-256, P-384, "
                        "P-521) or Ed25519 key",
                        path=path,
                    )
                n = len(cert_ders)
                raise KeyEntryError(
                    f"{where}: a private key has no matching certificate in the file: "
                    + (
                        f"none of its {n} certificate{'s' if n > 1 else ''} is for this key "
                        "(another identity's, or a key from another renewal): put the key "
                        "with its own certificate"
                        if n
                        else "put the certificate (and its chain) in the same PEM file"
                    ),
                    path=path,
                )
            chain = index_of.chain_from(leaf_at)
            keys.append(KeyEntry(alias_for(chain[0], taken, "key"), key_der, tuple(chain)))
    certs = [
        (alias_for(der, taken, "cert"), der)
        for i, der in enumerate(cert_ders)
        if i not in index_of.used
    ]
    index_of.say_passed_over(where)
    return Parsed("PEM", keys, certs, [], rechoose_at=index_of.rechoose_at)


#: (where, the certificate passed over, the one chosen, purpose) warned of: a set
#: rebuilding from the same file (its truststore changed) said it again (h257).
#: Bounded: cleared when full, what is still true said again.
_PASSED_OVER_SAID: set[tuple[str, bytes, bytes, str]] = set()


def _say_passed_over(where: str, passed: bytes, chosen: bytes, purpose: str | None) -> None:
    """Warn, once, that a key's newest certificate in a file is not the one presented:
    peers refuse it as a ``purpose`` certificate (:meth:`_Certs._take_current`). Each
    is named by its serial: a key's renewals share their subject (h257)."""
    assert purpose is not None  # only a known role passes a certificate over
    if not first_time(_PASSED_OVER_SAID, (where, passed, chosen, purpose)):
        return
    found = _purpose.peers_refuse(passed, purpose)
    problem, who, fix = found if found is not None else ("", "", "")
    newer, other = _x509.load_cert(passed), _x509.load_cert(chosen)
    log.warning(
        "%s: the newest certificate for a key (%s, serial %s, valid from %s) cannot serve "
        "as a TLS %s certificate: %s, and %s; another for the key (serial %s, valid until "
        "%s) is presented instead (%s, or remove it from the file)",
        where,
        _x509.subject_text(newer),
        hex_serial(_x509.serial_number(passed)),
        f"{_dates.not_before(newer):%Y-%m-%d %H:%M:%S} UTC",
        purpose,
        problem,
        who,
        hex_serial(_x509.serial_number(chosen)),
        f"{_dates.not_after(other):%Y-%m-%d %H:%M:%S} UTC",
        fix,
    )


# Public as mtls.detect_format: reprs, tracebacks and pickles say so however it was
# imported (mtls/__init__.py loads it on first use).
detect_format.__module__ = "mtls"
