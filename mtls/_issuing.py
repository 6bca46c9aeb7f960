"""Signing a certificate request with a key entry, as ``keytool -gencert`` does: the
CA's side of a renewal, for estates that keep an internal CA in a keystore.

What differs from keytool is said where it differs: the request's subject alternative
names are copied unless told otherwise (keytool drops every requested extension
without ``-ext honored=all``, and a certificate without its names fails every
hostname check), and a request whose key cryptography would re-encode (an RSASSA-PSS
key, a compressed EC point) is refused, as the certificate would name another key
than the requester's store holds.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import os
import re
from collections.abc import Callable, Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from . import _dates, _der, _x509
from ._entries import KeyEntry
from ._errors import KeystoreFormatError
from ._files import read_input
from ._keygen import parse_sans, signature_for, validity
from ._log import log
from ._pem import base64_body, pem_blocks
from ._readers import _der_signed, open_error
from ._renewal import _Cert, signing_key

#: keytool -gencert's validity when -validity is not given.
DEFAULT_DAYS = 90
#: The longest validity taken (keytool takes any; 100 years is past every use).
MAX_DAYS = 36_525

_REQUEST_LABELS = (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")


def request_input(
    request: bytes | bytearray | memoryview | os.PathLike[str] | x509.CertificateSigningRequest,
) -> tuple[bytes, str | None]:
    """The bytes of a certificate request given as its file (a ``Path``), its bytes, or
    the request itself, and the file's path when it was one (for
    :func:`read_request`).

    Raises:
        KeystoreError: the file cannot be read.
        TypeError: anything else (a ``str`` too: it could be a path or PEM text).
    """
    if isinstance(request, x509.CertificateSigningRequest):
        return request.public_bytes(serialization.Encoding.DER), None
    if isinstance(request, os.PathLike):
        request_path = os.fspath(request)
        try:
            return read_input(request_path), request_path
        except OSError as exc:
            raise open_error(exc, request_path, role="certificate request") from None
    if isinstance(request, bytes | bytearray | memoryview):
        return bytes(request), None
    raise TypeError(
        "request: pass the file as a pathlib.Path, its bytes, or the request "
        f"(not {type(request).__name__})"
    )


def read_request(
    data: bytes, *, path: str | None, to_sign: bool = True
) -> tuple[x509.CertificateSigningRequest, bytes]:
    """The certificate request in ``data`` (PEM, as ``keytool -certreq`` and ``openssl
    req`` write it, or DER), and the raw SubjectPublicKeyInfo it names.

    Raises:
        KeystoreFormatError: no request, one that cannot be read (a duplicated
            extension too), one whose signature does not verify (not made with the key
            it names, or altered), or, ``to_sign``, one whose key cryptography would
            write in other bytes than the request holds it.
    """
    source = path if path is not None else "the request"
    der = data
    if b"-----BEGIN" in data:
        found = [(label, body) for label, body, _ in pem_blocks(data, source, path)]
        blocks = [body for label, body in found if label in _REQUEST_LABELS]
        if len(blocks) != 1:
            held = ", ".join(dict.fromkeys(label.decode("ascii", "replace") for label, _ in found))
            raise KeystoreFormatError(
                f"{source}: "
                + (
                    "several CERTIFICATE REQUEST blocks: pass one request"
                    if blocks
                    else f"not a certificate request (it holds {held or 'no PEM block'}): "
                    "pass the request"
                )
                + ", as keytool -certreq, mtls certreq or openssl req writes it",
                path=path,
            )
        try:
            der = base64_body(blocks[0])
        except binascii.Error:
            raise KeystoreFormatError(
                f"{source}: the CERTIFICATE REQUEST block is not valid base64: ask for the "
                "request again",
                path=path,
            ) from None
    if _der_signed(der) != "request":
        kind = _der_signed(der)
        raise KeystoreFormatError(
            f"{source}: not a certificate request"
            + (f" but a {kind}" if kind in {"certificate", "CRL"} else "")
            + ": pass the request (PKCS#10, PEM or DER) that keytool -certreq, mtls certreq "
            "or openssl req made",
            path=path,
        )
    try:
        request = x509.load_der_x509_csr(der)
        valid = _x509.dsa_call(_x509.is_dsa(request), lambda: request.is_signature_valid)
        requested_key = _x509.public_key(request)
        request.extensions  # noqa: B018 - read now: a duplicated extension raises here
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension) as exc:
        raise KeystoreFormatError(
            f"{source}: the request cannot be read ({exc}): ask for a new one", path=path
        ) from None
    if not valid:
        raise KeystoreFormatError(
            f"{source}: the request's signature does not verify (it was altered, or not "
            "made with the key it names): ask for a new request",
            path=path,
        )
    info = _der.read_single(der, _der.SEQUENCE).children()[0].children()
    spki = _der.encode(_der.SEQUENCE, info[2].value)
    if to_sign and spki != requested_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeystoreFormatError(
            f"{source}: the request's key would be written into the certificate in "
            "another form than the request holds it (an RSASSA-PSS key, a compressed EC "
            "point), and the requester's store could not take the reply: sign it with "
            "keytool -gencert",
            path=path,
        )
    return request, spki


# --------------------------------------------------------------------------- -ext

_EKU_NAMES = {
    "anyExtendedKeyUsage": x509.ObjectIdentifier("2.5.29.37.0"),
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}
_KU_NAMES = (
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
    "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
)  # fmt: skip
_KU_FIELDS = dict(zip(_KU_NAMES, (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
), strict=True))  # fmt: skip
#: The largest path length taken (keytool's is a Java int).
_MAX_PATH_LENGTH = 2**31 - 1
# keytool's -ext names, in its order (mtls makes the first four).
_EXT_NAMES = (
    "BasicConstraints", "KeyUsage", "ExtendedKeyUsage", "SubjectAlternativeName",
    "IssuerAlternativeName", "SubjectInfoAccess", "AuthorityInfoAccess",
)  # fmt: skip
_MADE = frozenset(_EXT_NAMES[:4])
_GENERAL_NAME_TYPES = ("EMAIL", "URI", "DNS", "IP", "OID")


def parse_ext(values: Iterable[str]) -> tuple[list[x509.Extension[x509.ExtensionType]], bool]:
    """keytool's ``-ext`` values for ``-gencert`` and ``-genkeypair`` (``bc:c``,
    ``bc=ca:true,pathlen:0``, ``ku=digitalSignature,keyEncipherment``,
    ``eku=serverAuth,clientAuth``, ``san=dns:a,ip:b``, ``honored=all``): the
    extensions, and whether every requested extension is honoured. ``:c``/``:critical``
    after the name marks one critical.

    Raises:
        ValueError: an extension keytool has that this does not (``ian``, ``aia``,
            ``sia``, an OID), or a malformed value.
    """
    found: dict[str, x509.Extension[x509.ExtensionType]] = {}
    honored = False
    for value in values:
        head, sep, rest = value.partition("=")
        name, colon, flag = head.strip().partition(":")
        critical = bool(colon) and _find_one(flag, ("critical",), value) is not None
        if colon and not critical:
            raise ValueError(f"-ext {value!r}: after the name, only :critical (or :c)")
        rest = rest.strip()
        if name.lower() == "honored":
            if colon:  # keytool ignores "honored:c=all" (no request's extension copied)
                raise ValueError(f"-ext {value!r}: honored takes no flag: write honored=all")
            if rest.lower() != "all":
                raise ValueError(f"-ext {value!r}: only honored=all is supported")
            honored = True
            continue
        kind = _find_one(name, _EXT_NAMES, value)
        if kind not in _MADE:
            raise ValueError(
                f"-ext {value!r}: mtls takes bc, ku, eku and san (and honored=all for "
                "gencert); make other extensions with keytool"
            )
        if sep and not rest:
            raise ValueError(f"-ext {value!r}: give a value after '='")
        extension: x509.ExtensionType
        if kind == "BasicConstraints":
            extension = _basic_constraints(rest if sep else "", value)
        elif kind == "KeyUsage":
            extension = _key_usage(rest, value)
        elif kind == "ExtendedKeyUsage":
            extension = x509.ExtendedKeyUsage([_eku(part, value) for part in _parts(rest, value)])
        else:
            extension = x509.SubjectAlternativeName(parse_sans(_san_items(rest, value)))
        found[kind] = x509.Extension(extension.oid, critical, extension)
    return list(found.values()), honored


def _san_items(rest: str, value: str) -> list[str]:
    """``san=`` items as keytool reads them: ``TYPE:value``, the type named as its
    ``oneOf`` takes it (``dns``, ``d``, ``ip``, ``email``, ``uri``, ``oid``)."""
    items = []
    for part in _parts(rest, value):
        kind, colon, name = part.partition(":")
        if not colon:
            raise ValueError(f"-ext {value!r}: {part!r} is not TYPE:value (dns:host, ip:addr)")
        items.append(f"{_one_of(kind, _GENERAL_NAME_TYPES, value, 'a name type')}:{name}")
    return items


def _parts(rest: str, value: str) -> list[str]:
    parts = [part.strip() for part in rest.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"-ext {value!r}: give a value after '='")
    return parts


def _abbreviation(name: str) -> str:
    """keytool's camel-case form of a name: its lower-case letters after the first
    dropped (``keyCertSign`` is ``kCS``)."""
    return name[0] + "".join(c for c in name[1:] if not c.islower())


def _find_one(part: str, names: Iterable[str], value: str) -> str | None:
    """The one of ``names`` that ``part`` names, as keytool's ``oneOf`` reads it: the
    name itself; else the one name it starts or is the camel-case form of; else the
    same in any case. ``None`` when none.

    Raises:
        ValueError: several at the first step that finds any (ambiguous).
    """
    names = tuple(names)
    steps: tuple[Callable[[str], bool], ...] = (
        lambda name: part == name,
        lambda name: part == _abbreviation(name) or name.startswith(part),
        lambda name: (
            part.lower() == _abbreviation(name).lower() or name.upper().startswith(part.upper())
        ),
    )
    for step in steps:
        found = [name for name in names if step(name)]
        if len(found) > 1:
            raise ValueError(f"-ext {value!r}: {part!r} is ambiguous ({', '.join(found)})")
        if found:
            return found[0]
    return None


def _one_of(part: str, names: Iterable[str], value: str, what: str) -> str:
    """:func:`_find_one`, refusing a ``part`` that names none of ``names``."""
    names = tuple(names)
    found = _find_one(part, names, value)
    if found is None:
        raise ValueError(f"-ext {value!r}: {part!r} is not {what} (one of {', '.join(names)})")
    return found


def _path_length(text: str, value: str) -> int | None:
    """A path length as keytool's ``Integer.parseInt`` reads it (``+1``, ``-1``); a
    negative one is no limit, as in Java."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()) or int(digits) > _MAX_PATH_LENGTH:
        raise ValueError(f"-ext {value!r}: a path length is a number from 0 to {_MAX_PATH_LENGTH}")
    number = int(text)
    return None if number < 0 else number


def _basic_constraints(rest: str, value: str) -> x509.BasicConstraints:
    """keytool's ``bc`` values: none (a CA), ``N`` (a CA, path length N), or
    ``ca:true|false[,pathlen:N]`` (not a CA unless ``ca:true``, as keytool reads it: a
    path length without ``ca:true`` is refused, a CA never made by mistake)."""
    if not rest:
        return x509.BasicConstraints(ca=True, path_length=None)
    if (rest[1:] if rest[:1] in ("+", "-") else rest).isdigit():  # Integer.parseInt's forms
        return x509.BasicConstraints(ca=True, path_length=_path_length(rest, value))
    ca, length = False, None
    for part in _parts(rest, value):
        key, _, setting = part.partition(":")
        if key.lower() == "ca" and setting.lower() in ("true", "false"):
            ca = setting.lower() == "true"
        elif key.lower() == "pathlen":
            length = _path_length(setting, value)
        else:
            raise ValueError(f"-ext {value!r}: bc takes ca:true|false and pathlen:N")
    if not ca and length is not None:
        raise ValueError(f"-ext {value!r}: a path length is for a CA: write ca:true,pathlen:N")
    return x509.BasicConstraints(ca=ca, path_length=length)


def _key_usage(rest: str, value: str) -> x509.KeyUsage:
    """keytool's ``ku`` names (``contentCommitment`` for ``nonRepudiation`` too),
    abbreviated as keytool takes them (``dig``, ``dS``, ``keyCert``)."""
    chosen = dict.fromkeys(_KU_FIELDS.values(), False)
    for part in _parts(rest, value):
        name = _one_of(part, (*_KU_NAMES, "contentCommitment"), value, "a key usage")
        chosen[_KU_FIELDS["nonRepudiation" if name == "contentCommitment" else name]] = True
    if (chosen["encipher_only"] or chosen["decipher_only"]) and not chosen["key_agreement"]:
        raise ValueError(f"-ext {value!r}: encipherOnly and decipherOnly need keyAgreement")
    return x509.KeyUsage(**chosen)


# An OID cryptography can encode: first arc 0, 1 or 2, second under 40 below 2.
_OID = re.compile(
    r"^(?:[01]\.(?:[0-9]|[1-3][0-9])|2\.(?:0|[1-9][0-9]{0,17}))(?:\.(?:0|[1-9][0-9]{0,17}))*$"
)


def _eku(part: str, value: str) -> x509.ObjectIdentifier:
    """keytool's ``eku`` names, abbreviated as keytool takes them (``sA``, ``client``),
    or an OID."""
    if part[:1].isdigit():
        if not _OID.match(part):
            raise ValueError(f"-ext {value!r}: {part!r} is not an OID (like 1.3.6.1.5.5.7.3.2)")
        return x509.ObjectIdentifier(part)
    return _EKU_NAMES[_one_of(part, _EKU_NAMES, value, "an extended key usage, or an OID")]


# --------------------------------------------------------------------------- signing


def issuer_warnings(
    issuer: x509.Certificate, issuer_der: bytes, leaf: x509.Certificate
) -> list[str]:
    """What TLS peers will say of ``leaf``, which ``issuer`` signed, in words: an issuer
    that is no CA certificate, or whose key usage forbids signing certificates (every
    OpenSSL- and Java-based peer refuses what it signs), a certificate that outlives its
    issuer, an issuer expired. keytool -gencert signs all of these without a word."""
    name = _x509.name_text(issuer.subject)
    found: list[str] = []
    constraints = _x509.extension(issuer, x509.BasicConstraints, issuer_der)
    if constraints is None or not constraints.ca:
        found.append(
            f"the issuer {name} is not a CA certificate (no basicConstraints CA:true): "
            "OpenSSL and Java peers refuse what it signs ('invalid CA certificate'); make "
            "the CA's key pair with Keystore.generate(..., ca=True), mtls genkey -ext bc:c "
            "or keytool -genkeypair -ext bc:c"
        )
    usage = _x509.extension(issuer, x509.KeyUsage, issuer_der)
    if usage is not None and not usage.key_cert_sign:
        found.append(
            f"the issuer {name} has a key usage without keyCertSign: OpenSSL, Java, Go "
            "and GnuTLS peers refuse what it signs ('key usage does not include "
            "certificate signing'); have it issued again with -ext ku:c=keyCertSign,cRLSign"
        )
    ends, issuer_ends = _dates.not_after(leaf), _dates.not_after(issuer)
    if ends > issuer_ends:
        when = "%Y-%m-%d %H:%M UTC"
        found.append(
            f"the certificate is valid until {ends.strftime(when)}, after its issuer "
            f"{name} expires ({issuer_ends.strftime(when)}): peers refuse it from then; "
            "give it fewer days (--validity) or renew the CA first"
        )
    elif issuer_ends < _dt.datetime.now(_dt.UTC):
        found.append(f"the issuer {name} has expired: peers refuse what it signs")
    return found


def sign_request(
    entry: KeyEntry,
    request: bytes,
    *,
    days: int = DEFAULT_DAYS,
    not_before: _dt.datetime | None = None,
    subject: x509.Name | None = None,
    extensions: Iterable[x509.Extension[x509.ExtensionType]] = (),
    honored: bool = False,
    path: str | os.PathLike[str] | None = None,
    request_path: str | None = None,
    signature_algorithm: str | None = None,
) -> tuple[x509.Certificate, ...]:
    """A certificate for ``request``'s key, signed by ``entry``'s key, with the entry's
    certificate as issuer: ``keytool -gencert``.

    The extensions: the request's subject alternative names (every requested
    extension with ``honored``), then ``extensions`` over them, then a subject key
    identifier and an authority key identifier (the issuer's own subject key
    identifier, or one made from its key), as keytool writes them. What peers will
    refuse of it (:func:`issuer_warnings`) is logged as a WARNING.

    Returns:
        The new certificate, then the issuer's chain without self-signed
        certificates (what keytool writes to ``-outfile``).

    Raises:
        KeyEntryError: the entry's key cannot sign (see :func:`signing_key`).
        KeystoreFormatError: the request cannot be read, or its signature does not
            verify (see :func:`read_request`).
        ValueError: ``days`` out of range; a ``signature_algorithm`` (a Java name, as
            :func:`mtls._keygen.signature_for` reads it) that is unknown, refused or
            for another key type than the entry's.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a validity of {days} days: give 1 to {MAX_DAYS}")
    store_path = os.fspath(path) if path is not None else None
    key, issuer = signing_key(
        entry, store_path, task="sign a certificate", fix="sign it with keytool -gencert"
    )
    digest, rsa_padding = signature_for(signature_algorithm, key)
    csr, _ = read_request(request, path=request_path)
    chosen: dict[x509.ObjectIdentifier, x509.Extension[x509.ExtensionType]] = {}
    for asked in csr.extensions:
        if honored or asked.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            chosen[asked.oid] = asked
    for given in extensions:
        chosen[given.oid] = given
    public_key = _x509.public_key(csr)
    chosen[ExtensionOID.SUBJECT_KEY_IDENTIFIER] = x509.Extension(
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        False,
        x509.SubjectKeyIdentifier.from_public_key(public_key),
    )
    issuer_ski = _x509.extension(issuer.cert, x509.SubjectKeyIdentifier, issuer.der)
    authority = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
        if issuer_ski is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    )
    chosen[ExtensionOID.AUTHORITY_KEY_IDENTIFIER] = x509.Extension(
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, authority
    )
    start, end = validity(not_before, days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject if subject is not None else csr.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    for extension in chosen.values():
        builder = builder.add_extension(extension.value, critical=extension.critical)
    certificate = builder.sign(key, digest, rsa_padding=rsa_padding)
    for problem in issuer_warnings(issuer.cert, issuer.der, certificate):
        log.warning("%s", problem)
    # keytool writes the issuer's chain after the certificate, self-signed ones left out.
    issuers = [issuer.cert] if not issuer.self_signed else []
    for der in entry.chain_der[1:]:
        parsed = _Cert.of(der)
        if parsed is not None and not parsed.self_signed:
            issuers.append(parsed.cert)
    return (certificate, *issuers)
