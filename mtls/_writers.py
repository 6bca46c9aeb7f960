"""From entries to bytes: the JKS, PKCS#12 and PEM writers (keytool reads what they write).

The readers' counterpart: ``Keystore.to_bytes`` and ``Truststore.to_bytes`` are thin
calls into :func:`keystore_bytes` and :func:`truststore_bytes`. The PKCS#12 choices
are keytool's since JDK 12; JKS goes through ``_jks.build_store``.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from . import _der, _jks, _pkcs12, _x509
from ._entries import Entries, where
from ._errors import KeyEntryError, KeystoreError
from ._keyload import _key_pem
from ._log import log
from ._secret import is_text
from ._types import NAMED_FORMATS
from ._x509 import key_algorithm, same_name

#: The formats :func:`keystore_bytes` and :func:`truststore_bytes` write.
WRITABLE = ("JKS", "PKCS12", "PEM")
_PKCS12_KDF_ROUNDS = 10_000  # what keytool uses since JDK 12


def check_store_type(store_type: str) -> str:
    """The normalised name of a writable format (``pkcs#12`` -> ``PKCS12``), or ValueError."""
    norm = store_type.upper().replace("#", "").replace("-", "")
    if norm not in WRITABLE:
        why = (
            ": JCEKS is read, not written (save a PKCS12 or JKS store, which every JDK "
            "reads; `keytool -importkeystore -deststoretype JCEKS` makes a JCEKS copy)"
            if norm == "JCEKS"
            else ": BCFKS is read, not written (save a PKCS12 store; keytool -importkeystore "
            "-deststoretype BCFKS with the Bouncy Castle provider makes a BCFKS copy)"
            if norm == "BCFKS"
            else ""
        )
        raise ValueError(
            f"store_type must be one of {', '.join(WRITABLE)}, not {store_type!r}{why}"
        )
    return norm


# A CA bundle is often a .crt or .cer (a truststore's); a key's PEM file is a .pem.
_BUNDLE_NAMES = {".crt": "PEM", ".cer": "PEM"}


#: A file as load() found it: (absolute path, device, inode); device and inode are
#: ``None`` where it could not be looked at.
FileIdentity = tuple[str, int | None, int | None]


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """``path`` as it is now: its absolute path (from the working directory now), and
    its device and inode (through links)."""
    absolute = os.path.abspath(os.fsdecode(path))
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return absolute, None, None
    return absolute, found.st_dev, found.st_ino


def write_format(
    store_type: str | None,
    target: str | os.PathLike[str] | None,
    read_as: str | None,
    *,
    read_from: FileIdentity | None = None,
    bundle: bool = False,
    one_password: bool = True,
) -> str:
    """The format a store is written in: ``store_type`` when given; else, written back
    to the file it was read from (``read_from``, as :func:`file_identity` found it at
    the load), the format read (``read_as``; JKS for JCEKS and the Bouncy Castle
    formats, which are not written), as keytool keeps a store's type in place (h252: a
    PKCS#12 truststore keytool made as "client-truststore.crt" was rewritten as PEM by
    its name, and Java could no longer open it); else the format the file's name says
    (``.p12``/``.pfx``/``.pkcs12`` PKCS12, ``.jks`` JKS, ``.pem`` PEM, and for a
    truststore, ``bundle``, ``.crt``/``.cer`` PEM); else PKCS12 when the store was read
    as that; else JKS. A separate key password, which only JKS holds (``one_password``
    false), keeps JKS where PKCS12 would be chosen but by name."""
    if store_type is not None:
        return check_store_type(str(store_type))
    if target is not None and read_from is not None and _same_file(target, read_from):
        if read_as in ("PEM", "JKS") or (read_as == "PKCS12" and one_password):
            return read_as
        return "JKS"
    if target is not None:
        suffix = os.path.splitext(os.fsdecode(target))[1].lower()
        named = NAMED_FORMATS.get(suffix) or (_BUNDLE_NAMES.get(suffix) if bundle else None)
        if named is not None:
            return named
    return "PKCS12" if read_as == "PKCS12" and one_password else "JKS"


def _same_file(target: str | os.PathLike[str], read_from: FileIdentity) -> bool:
    """Whether ``target`` is the file that was read: the same absolute path as at the
    load (a file replaced there since included), or the same device and inode (another
    name for it: a link)."""
    now = file_identity(target)
    if now[1] is not None and read_from[1] is not None:
        return now[1:] == read_from[1:] or now[0] == read_from[0]
    return now[0] == read_from[0]


def check_encodable(*passwords: str | None) -> None:
    """Refuse a password no store can be written with: one holding a lone surrogate,
    which ``os.environ`` and ``sys.argv`` give for a byte that is not UTF-8 (a Latin-1
    password). No tool could type it to open the store; and the encoders' own error
    would carry the whole password in its arguments.

    Raises:
        ValueError: such a password (its value is not shown).
    """
    for password in passwords:
        if password is not None and not is_text(password):
            raise ValueError(
                "the password holds a character that is not text (a lone surrogate: "
                "os.environ and sys.argv give one for a byte that is not UTF-8, such as "
                "a password typed on a Latin-1 terminal): give it as UTF-8"
            )


def pkcs12_encryption(password: str) -> serialization.KeySerializationEncryption:
    """keytool's PKCS#12 protection since JDK 12: PBES2/AES-256, HMAC-SHA256 MAC, 10,000 rounds.

    JDK-8076190; JDK 8 (8u301+) reads it too.
    """
    if not password:
        raise ValueError(
            "a PKCS#12 key entry needs a password to be encrypted under, and mtls does not "
            "write one under an empty password (keytool creates no such store either): "
            "give the store a password, or save as PEM for an unencrypted file"
        )
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )


def writable_cert(der: bytes, alias: str, path: str | None, kind: str) -> x509.Certificate:
    """An entry's certificate parsed, for PKCS#12; KeyEntryError if cryptography cannot."""
    try:
        return _x509.load_cert(der)
    except ValueError as exc:
        raise KeyEntryError(
            f"{where(path)}: entry {alias!r} has a certificate cryptography cannot read "
            "(JDK 17 writes its DSA certificates so, and some tools their ECDSA ones: "
            f"signature parameters it refuses), so it cannot be written as {kind}: "
            "save the store as JKS",
            path=path,
            alias=alias,
        ) from exc


def refuse_java_unreadable(entries: Entries, path: str | None, kind: str) -> None:
    """Refuse, before anything is written, a JKS or PKCS#12 store holding a certificate
    Java cannot parse (:func:`mtls._x509.first_java_refused`): keytool and WSO2
    would fail to load the whole store, not one entry; ``mtls import`` wrote such a
    truststore with exit 0 (h188). PEM output is not Java's to read.

    Raises:
        KeyEntryError: naming the entry, why, and what to do.
    """
    found = _x509.first_java_refused(entries.certificates())
    if found is not None:
        alias, why, remedy = found
        raise KeyEntryError(
            f"{where(path)}: entry {alias!r} has a certificate Java cannot read "
            f"({why}: keytool -importcert refuses it), so a {kind} store holding "
            "it would fail to load whole in keytool and WSO2; nothing was "
            f"written: have the certificate reissued {remedy}, or leave the entry out",
            path=path,
            alias=alias,
        )


def to_der(certificate: x509.Certificate | bytes) -> bytes:
    """DER of a certificate given as an object, DER or PEM (ValueError if unreadable;
    TypeError for anything else, saying what to pass)."""
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(serialization.Encoding.DER)
    given: object = certificate
    if not isinstance(given, bytes | bytearray):
        fix = (
            "encode PEM text first (.encode())"
            if isinstance(given, str)
            else "a list of them is a chain: add_key(alias, key, [leaf, ca])"
            if isinstance(given, list | tuple)
            else "load it with cryptography.x509.load_pem_x509_certificate"
        )
        raise TypeError(
            "a certificate is a cryptography x509.Certificate, or its DER or PEM bytes, "
            f"not {type(given).__name__}: {fix}"
        )
    certificate = bytes(certificate)
    if certificate.lstrip().startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_certificate(certificate).public_bytes(
                serialization.Encoding.DER
            )
        except ValueError:
            # cryptography 51 refuses, in PEM as in DER, a certificate whose name holds a
            # string it cannot read: its first plain CERTIFICATE block (strict base64),
            # checked below as DER is; any other refusal stands.
            certificate = _plain_pem_certificate(certificate)
    try:
        # What cryptography reads (a name it refuses is still OpenSSL's anchor, as a
        # loaded store's would be: status() and the watch leave it out, and say so).
        _x509.validity(certificate)
    except ValueError as exc:
        # cryptography 51 refuses such a name when it loads the certificate.
        if not _x509.only_a_name_refused(certificate):
            raise ValueError(f"not a certificate in DER or PEM ({exc})") from None
    return certificate


def _plain_pem_certificate(pem: bytes) -> bytes:
    """The DER of the first ``CERTIFICATE`` block of ``pem`` with nothing but base64 in
    it (ValueError when there is none)."""
    blocks = _x509.pem_blocks(pem, b"CERTIFICATE")
    if not blocks:
        raise ValueError("not a certificate in DER or PEM (no CERTIFICATE block)")
    body = blocks[0][len(b"-----BEGIN CERTIFICATE-----") : -len(b"-----END CERTIFICATE-----")]
    try:
        return binascii.a2b_base64(body.translate(None, b" \t\r\n"), strict_mode=True)
    except binascii.Error:
        raise ValueError("not a certificate in DER or PEM (its PEM is not base64)") from None


def _jks_bytes(
    path: str | os.PathLike[str] | None,  # the file being written
    keys: list[tuple[str, bytes | None, list[bytes], bytes]],
    certs: list[tuple[str, bytes]],
    password: str,
    key_password: str,
) -> bytes:
    for alias in [a for a, _, _, _ in keys] + [a for a, _ in certs]:
        try:
            _jks.write_java_utf(alias)
        except ValueError as exc:
            raise KeystoreError(
                f"{where(path)}: alias {_jks.shown(alias)} is too long for JKS ({exc}): "
                "choose a shorter alias, or save as PKCS12",
                path=path,
            ) from None
    try:
        return _jks.build_store("JKS", keys, certs, password, key_password)
    except _jks.PyJKSUnavailable as exc:
        raise KeystoreError(
            f"{where(path)}: cannot write JKS: {exc}; or save as PKCS12",
            path=path,
        ) from exc


def keystore_bytes(
    entries: Entries,
    key_entry: Callable[[], tuple[str, bytes, tuple[bytes, ...]]],
    *,
    path: str | None,
    password: str,
    store_type: str,
    key_password: str | None,
    target: str | os.PathLike[str] | None = None,
    passwordless: bool = False,
) -> bytes:
    """A keystore's file: every entry as JKS or PKCS#12, or its one key entry as PEM.

    ``path`` is where the entries came from (messages about them name it); ``target``
    the file being written, when there is one (a failure to write names it).
    ``passwordless``: PKCS12 in the JDK's password-less format (:func:`_trusted_pfx`),
    which holds no key entry: a store with one is protected, with a warning.

    ``key_entry`` gives the entry PEM writes (``Keystore.key_entry``, which names the
    problem when there is not exactly one); JKS and PKCS#12 write every entry.
    """
    kind = check_store_type(store_type)
    check_encodable(password, key_password)
    entries.refuse_secrets(path)
    if kind != "PEM":
        refuse_java_unreadable(entries, path, kind)
    unread = [
        e.alias
        for e in entries.key_entries()
        if not e.key_der and not (kind == "JKS" and e.jks_protected)
    ]
    if unread:
        raise KeyEntryError(
            f"{where(path)}: key entries {', '.join(unread)} were read without "
            "their keys (Keystore.inspect): use Keystore.load to save the store"
            + (" (or save it as JKS, which keeps a JKS file's keys as they are)"
               if all(e.jks_protected for e in entries.key_entries() if not e.key_der)
               else ""),
            path=path,
        )  # fmt: skip
    if kind == "JKS":
        if not (key_password if key_password is not None else password) and any(
            e.key_der for e in entries.key_entries()
        ):
            raise ValueError(
                "a JKS key entry needs a password (its key would be protected by nothing, "
                "and keytool cannot export or convert it): give one, or save as PEM for an "
                "unencrypted file"
            )
        return _jks_bytes(
            target,
            [
                (e.alias, e.key_der or None, list(e.chain_der), e.jks_protected)
                for e in entries.key_entries()
            ],
            list(entries.cert_entries()),
            password,
            key_password if key_password is not None else password,
        )
    if key_password is not None and key_password != password:
        raise ValueError(
            f"{kind} stores have one password; keytool ignores a different key password: "
            "leave key_password out, or set it to the store password"
        )
    if kind == "PKCS12":
        if not entries.key_count:
            certs = list(entries.cert_entries())
            return _trusted_pfx(certs, path, password, passwordless, target)
        if passwordless:
            log.warning(
                "%s: a store with a key entry is not written password-less (mtls writes "
                "no key without a MAC): it is protected by the store password now, which "
                "Java needs to open it, trusted certificates included",
                where(os.fspath(target) if target is not None else path),
            )
        return _pkcs12_bytes(entries, path=path, password=password, target=target)
    if entries.key_count > 1:
        # key_entry() would say "choose one with alias=": save() has no alias.
        raise KeyEntryError(
            f"{where(path)}: {kind} output holds one key entry and its chain; this store "
            f"has {entries.key_count}: remove() the others first, or save it as JKS or "
            "PKCS12",
            path=path,
        )
    alias, key_der, chain = key_entry()
    if entries.cert_count:
        raise KeyEntryError(
            f"{kind} output holds one key entry and its chain; this store also has "
            "trusted entries: save it as JKS or PKCS12, or save a Truststore separately",
            path=path,
        )
    key, _ = _readable(alias, key_der, chain, path, kind)  # read back before written
    if not password:
        # The key's own PKCS#8 bytes, as they are: nothing to re-encode. But an EC key
        # as keytool writes it (JDK 17 and 25) leaves out its optional public key,
        # which GnuTLS requires ("Element was not found"): written with it, as
        # OpenSSL writes one (its curve and value unchanged).
        if isinstance(key, ec.EllipticCurvePrivateKey):
            key_der = _with_public_key(key, key_der)
        return _key_pem(key_der) + b"".join(_x509.der_to_pem(der).encode() for der in chain)
    _refuse_rewritten_key(key, key_der, alias, path, kind)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    return pem + b"".join(_x509.der_to_pem(der).encode() for der in chain)


def _with_public_key(key: ec.EllipticCurvePrivateKey, key_der: bytes) -> bytes:
    """``key_der`` (PKCS#8 of ``key``) with its ECPrivateKey's public key, when that is
    all cryptography's encoding adds; the bytes as they are otherwise (explicit curve
    parameters, which cryptography would write as the named curve)."""
    written = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        same = _algorithm_identifier(written) == _algorithm_identifier(key_der)
    except _der.DERError:
        same = False
    return written if same else key_der


def _algorithm_identifier(pkcs8_der: bytes) -> bytes:
    """The content of a PKCS#8 key's AlgorithmIdentifier (its OID and parameters)."""
    return _der.read_single(pkcs8_der, _der.SEQUENCE).children()[1].value


def _readable(
    alias: str, key_der: bytes, chain: Sequence[bytes], path: str | None, kind: str
) -> tuple[PrivateKeyTypes, list[x509.Certificate]]:
    """An entry's key and certificates, read before any format is written: a file that
    could not be read back is refused here, not written."""
    try:
        key = _x509.load_private_key(key_der, check_rsa=False)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyEntryError(
            f"{where(path)}: key entry {alias!r} holds a key cryptography cannot read, so "
            f"it cannot be written as {kind} (nor read back from it): save the store as JKS",
            path=path,
            alias=alias,
        ) from exc
    return key, [writable_cert(der, alias, path, kind) for der in chain]


def _pkcs12_bytes(
    entries: Entries,
    *,
    path: str | None,
    password: str,
    target: str | os.PathLike[str] | None = None,
) -> bytes:
    """Every key entry (with its chain) and every trusted certificate, as
    ``keytool -importkeystore -deststoretype PKCS12`` writes them: one password,
    PBES2/AES-256 and an HMAC-SHA256 MAC. cryptography writes each key entry, and the
    trusted certificates with Java's trust attribute; their parts are joined under one
    MAC (:func:`mtls._pkcs12.join_pfx`), keytool's: 10,000 rounds and a 20-byte salt
    (cryptography's own MAC has 2,048 rounds, the cheapest place to guess a password)."""
    encryption = pkcs12_encryption(password)
    _warn_non_ascii(password, target)
    parts: list[bytes] = []
    for entry in entries.key_entries():
        key, certs = _readable(entry.alias, entry.key_der, entry.chain_der, path, "PKCS12")
        _refuse_rewritten_key(key, entry.key_der, entry.alias, path, "PKCS12")
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey
            | _x509.DSAPrivateKey,
        ):
            raise KeyEntryError(
                f"{where(path)}: key entry {entry.alias!r}: unsupported key type for "
                f"PKCS#12 ({_key_name(entry.key_der, key)}): save the store as JKS",
                path=path,
                alias=entry.alias,
            )
        certs = _linked_chain(certs, entry.alias, path)
        try:
            parts.append(
                _x509.dsa_call(
                    isinstance(key, _x509.DSAPrivateKey),
                    pkcs12.serialize_key_and_certificates,
                    entry.alias.encode("utf-8"),
                    key,
                    certs[0],
                    certs[1:] or None,
                    encryption,
                )
            )
        except ValueError as exc:  # the key is not the certificate's
            raise KeyEntryError(
                f"{where(path)}: key entry {entry.alias!r}: its key does not match the "
                "first certificate of its chain, so it cannot be written as PKCS12: "
                "replace the entry",
                path=path,
                alias=entry.alias,
            ) from exc
    trusted = [
        pkcs12.PKCS12Certificate(writable_cert(der, alias, path, "PKCS12"), alias.encode("utf-8"))
        for alias, der in entries.cert_entries()
    ]
    if trusted:
        parts.append(pkcs12.serialize_java_truststore(trusted, encryption))
    return _pkcs12.join_pfx(
        [info for part in parts for info in _pkcs12.content_infos(part)], password
    )


def _linked_chain(
    certs: Sequence[x509.Certificate], alias: str, path: str | None
) -> list[x509.Certificate]:
    """``certs`` (leaf first) in the order a PKCS#12 reader rebuilds them: the format
    keeps the certificates, not their order, and Java (and mtls) follow issuer names
    from the leaf, stopping at a self-issued certificate or one already taken. A chain
    given out of order is written in that order; a certificate the path never reaches
    (a missing link, a duplicate) would be dropped on reading, so the entry is refused
    (keytool -importkeystore refuses it too: "Certificate chain is not valid")."""
    chain, rest = [certs[0]], list(enumerate(certs))[1:]  # (position, certificate)
    while rest and not same_name(chain[-1].issuer, chain[-1].subject):
        issuer = chain[-1].issuer
        found = next(
            (n for n, (_, c) in enumerate(rest) if same_name(c.subject, issuer) and c not in chain),
            None,
        )
        if found is None:
            break
        chain.append(rest.pop(found)[1])
    if rest:
        position, left = rest[0]
        end = chain[-1]
        raise KeyEntryError(
            f"{where(path)}: key entry {alias!r}: certificate {position + 1} of its "
            f"chain ({left.subject.rfc4514_string()}) is not on the issuer path from its "
            f"leaf (which ends at {end.subject.rfc4514_string()}, issued by "
            f"{end.issuer.rfc4514_string()}): a PKCS12 store keeps no chain order and its "
            "readers (keytool, mtls) rebuild the chain by issuer names, so it would be read "
            f"back with {len(chain)} certificate(s) (keytool -importkeystore refuses it: "
            "'Certificate chain is not valid'): add the missing issuer or leave that "
            "certificate out, or save the store as JKS",
            path=path,
            alias=alias,
        )
    return chain


def _warn_non_ascii(password: str, target: str | os.PathLike[str] | None) -> None:
    """JDK 17 (and older) cannot open a PKCS#12 store whose password has a character
    outside printable ASCII, space to ``~`` (its PBE key refuses it: "Password is not
    ASCII", and keytool says the password is incorrect): a letter outside ASCII, a tab,
    any control character. JDK 25 and OpenSSL can."""
    if not _pkcs12.jdk17_takes_password(password):
        log.warning(
            "%s: a PKCS#12 password with characters outside printable ASCII (a letter "
            "outside ASCII, a tab or another control character): JDK 17 and older cannot "
            "open this store (keytool says the password is incorrect; JDK 25 and OpenSSL "
            "can): use printable ASCII, or JKS, where Java 17 applies",
            where(os.fspath(target) if target is not None else None),
        )


def _refuse_rewritten_key(
    key: PrivateKeyTypes, key_der: bytes, alias: str, path: str | None, kind: str
) -> None:
    """cryptography writes some keys as another type than they are: an RSASSA-PSS key
    (``keytool -keyalg RSASSA-PSS``) becomes a plain RSA key, which no longer matches
    its certificate (OpenSSL and Java then refuse the identity). Refused before writing."""
    written = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    before = key_algorithm(key_der)
    if before is not None and key_algorithm(written) != before:
        what = "an RSASSA-PSS key" if before == _RSASSA_PSS else f"a key of type {before}"
        raise KeyEntryError(
            f"{where(path)}: key entry {alias!r} is {what}, which cryptography would write "
            f"as another type, so the {kind} file would hold a key that no longer matches "
            "its certificate: save the store as JKS, or as PEM without a password (both "
            "keep the key as it is), or convert it with keytool -importkeystore",
            path=path,
            alias=alias,
        )


_RSASSA_PSS = "1.2.840.113549.1.1.10"


def truststore_bytes(
    entries: Entries,
    *,
    path: str | None,
    password: str,
    store_type: str,
    target: str | os.PathLike[str] | None = None,
    passwordless: bool = False,
) -> bytes:
    """A truststore's file: JKS, a PEM bundle, or a PKCS#12 with Java's trust attribute
    (``passwordless``: see :func:`_trusted_pfx`)."""
    kind = check_store_type(store_type)
    check_encodable(password)
    entries.refuse_secrets(path)
    if kind != "PEM":
        refuse_java_unreadable(entries, path, kind)
    certs = list(entries.cert_entries())
    if kind == "JKS":
        return _jks_bytes(target, [], certs, password, password)
    if kind == "PEM":
        return "".join(_x509.der_to_pem(der) for _, der in certs).encode("ascii")
    return _trusted_pfx(certs, path, password, passwordless, target)


def _trusted_pfx(
    certs: list[tuple[str, bytes]],
    path: str | None,
    password: str,
    passwordless: bool,
    target: str | os.PathLike[str] | None,
) -> bytes:
    """Trusted certificates as a PKCS#12 with Java's trust attribute.

    As keytool writes them: encrypted (PBES2/AES-256) under ``password`` with its
    HMAC-SHA256 MAC; in the JDK's password-less format (no MAC, nothing encrypted: the
    JDK's cacerts since JDK 18) when asked (``passwordless``: keytool keeps a store it
    read so, and Java opens it without a password); and with an empty ``password`` (a
    store exported with an empty one, which keytool edits too), the certificates
    unencrypted under a MAC keyed by the empty password.
    """
    bags = [
        pkcs12.PKCS12Certificate(writable_cert(der, alias, path, "PKCS12"), alias.encode("utf-8"))
        for alias, der in certs
    ]
    mac_password: str | None = None if passwordless else password
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if mac_password:
        encryption = pkcs12_encryption(mac_password)
        _warn_non_ascii(mac_password, target)
    if not bags:
        return _pkcs12.join_pfx([], mac_password)  # an empty store, as Java writes one
    written = pkcs12.serialize_java_truststore(bags, encryption)
    return _pkcs12.join_pfx(_pkcs12.content_infos(written), mac_password)  # keytool's MAC


def _key_name(pkcs8_der: bytes, key: object) -> str:
    """A key's algorithm as keytool names it (``X25519``, ``ML-DSA-65``), for messages."""
    algorithm = key_algorithm(pkcs8_der)
    named = _x509.key_algorithm_name(algorithm) if algorithm else None
    return named or type(key).__name__.removesuffix("PrivateKey")
