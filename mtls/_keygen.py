"""keytool-style inputs: distinguished names, subject alternative names, new key pairs."""

from __future__ import annotations

import calendar
import datetime as _dt
import ipaddress
import numbers
import operator
import re
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from ._idna import ascii_host
from ._log import log


def parse_dname(subject: str | x509.Name) -> x509.Name:
    r"""A keytool ``-dname`` string (``"CN=a, OU=b, O=c, C=US"``) as an ``x509.Name``.

    Read as keytool reads it (the JDK's ``X500Name``): attributes separated by ``,``
    or ``;`` (``+`` joins a multi-valued one), keywords in any case (``CN``, ``C``,
    ``L``, ``S``/``ST``, ``O``, ``OU``, ``T``, ``STREET``, ``DC``, ``UID``,
    ``SERIALNUMBER``, ``EMAIL``/``EMAILADDRESS``, ``SURNAME``, ``GIVENNAME``,
    ``INITIALS``, ``GENERATION``, ``DNQ``/``DNQUALIFIER``) or a dotted OID, values
    trimmed unless quoted (``CN="Acme, Inc"``), ``\,`` and the other backslash escapes
    taken literally. The first attribute written is the last of the encoded name, as
    in keytool (``C=US`` of ``"CN=a, C=US"`` comes first).

    Raises:
        ValueError: an unknown keyword, an attribute without ``=``, an empty name, or a
            value the attribute cannot hold (``C`` takes two letters).
    """
    if isinstance(subject, x509.Name):
        return subject
    rdns: list[x509.RelativeDistinguishedName] = []
    try:
        for rdn_text in _dn_split(subject, ",;"):
            attributes = [_dn_attribute(text) for text in _dn_split(rdn_text, "+")]
            rdns.append(x509.RelativeDistinguishedName(attributes))
    except ValueError as exc:
        raise ValueError(  # as typed (a repr would double its backslashes)
            f'malformed distinguished name "{subject}" ({exc}): use "CN=name, O=org"'
        ) from None
    if not rdns:
        raise ValueError('the distinguished name is empty: use "CN=name"')
    return x509.Name(list(reversed(rdns)))


_DN_KEYWORDS: dict[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "T": NameOID.TITLE,
    "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "SURNAME": NameOID.SURNAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "INITIALS": NameOID.INITIALS,
    "GENERATION": NameOID.GENERATION_QUALIFIER,
    "DNQ": NameOID.DN_QUALIFIER,
    "DNQUALIFIER": NameOID.DN_QUALIFIER,
}


def _dn_split(text: str, separators: str) -> list[str]:
    """``text`` cut at the unquoted, unescaped ``separators`` (escapes kept for later)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in separators and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise ValueError("a quote is not closed")
    parts.append("".join(current))
    if len(parts) == 1 and not parts[0].strip():
        return []
    return parts


def _dn_attribute(text: str) -> x509.NameAttribute[str]:
    keyword, sep, raw = text.partition("=")
    keyword = keyword.strip()
    if not sep or not keyword:
        raise ValueError(f"{text.strip()!r} is not KEYWORD=value")
    oid = _DN_KEYWORDS.get(keyword.upper())
    if oid is None:
        if not re.fullmatch(r"(?:OID\.)?[0-2](?:\.\d+)+", keyword, re.IGNORECASE):
            raise ValueError(f"unknown attribute {keyword!r}")
        oid = x509.ObjectIdentifier(keyword.upper().removeprefix("OID."))
    value = _dn_value(raw)
    if not value:
        raise ValueError(f"{keyword} has an empty value")
    if oid == NameOID.COUNTRY_NAME and len(value) != 2:
        raise ValueError(f"{keyword} takes a two-letter country code (ISO 3166: US), not {value!r}")
    return x509.NameAttribute(oid, value)


def _dn_value(raw: str) -> str:
    r"""A value as the JDK's ``AVA`` reads it: unescaped spaces around it dropped;
    ``#hex`` the BER of a string; ``"..."`` quoted (its inner spaces dropped too, as
    keytool drops them); else backslash escapes (``\,``, ``\ ``, and ``\C3\A9`` as
    UTF-8 bytes) taken literally, and an unescaped ``"``, ``<`` or ``>`` refused."""
    text = raw.lstrip(" ")
    while text.endswith(" ") and not _escaped(text, len(text) - 1):
        text = text[:-1]
    if text.startswith("#"):
        return _dn_hex(text[1:])
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"') or _escaped(text, len(text) - 1):
            raise ValueError("a quoted value must be quoted whole")
        return _dn_unescape(text[1:-1], quoted=True).strip(" ")
    return _dn_unescape(text, quoted=False)


_DN_SPECIALS = frozenset(',=+<>#;"\\ ')


def _escaped(text: str, index: int) -> bool:
    """Whether ``text[index]`` follows an odd run of backslashes."""
    run = 0
    while index - run - 1 >= 0 and text[index - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _dn_unescape(text: str, *, quoted: bool) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out += bytes.fromhex(pair)
                i += 3
                continue
            if i + 1 < len(text) and text[i + 1] in _DN_SPECIALS:
                out += text[i + 1].encode()
                i += 2
                continue
            raise ValueError(f"an unknown escape {text[i : i + 2]!r}")
        if char == '"' or (not quoted and char in "<>"):
            raise ValueError(f"{char!r} must be escaped, or the whole value quoted")
        out += char.encode("utf-8")
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("escaped bytes that are not UTF-8") from None


# BER string types a #hex value may hold, and how their bytes read.
_DN_HEX_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1",
                   0x1E: "utf-16-be", 0x1C: "utf-32-be"}  # fmt: skip


def _dn_hex(digits: str) -> str:
    """``#0C03616263``: the BER of a string (RFC 4514 section 2.4), as keytool reads it."""
    from ._der import DERError, read_tlv  # noqa: PLC0415 - rare: keytool's #hex form

    try:
        data = bytes.fromhex(digits)
        element = read_tlv(data)
    except (ValueError, DERError):
        raise ValueError("a #value must be the hex of one BER string") from None
    encoding = _DN_HEX_STRINGS.get(element.tag)
    if encoding is None or element.end != len(data):
        raise ValueError("a #value must be the hex of one BER string")
    try:
        return element.value.decode(encoding)
    except UnicodeDecodeError:
        raise ValueError(f"a #value's string is not {encoding}") from None


def parse_sans(values: Iterable[str]) -> list[x509.GeneralName]:
    """SAN strings (``DNS:x``, ``IP:1.2.3.4``, ``email:a@b``, ``URI:u``, ``OID:1.2.3``,
    or bare: an address, an email address or a name) as general names.

    Raises:
        ValueError: an unknown type (``dsn:x`` was written as the DNS name
            ``dsn:x``), or a value that is not of its type (keytool refuses both).
    """
    names: list[x509.GeneralName] = []
    for raw in values:
        kind, sep, value = raw.partition(":")
        if sep and kind.lower() in _SAN_KINDS:
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
        if not kind and ":" in value:
            raise ValueError(
                f"subject alternative name {raw!r}: unknown type {value.partition(':')[0]!r}: "
                "use DNS:, IP:, email:, URI: or OID:"
            )
        if kind == "email" or (not kind and "@" in value):
            names.append(x509.RFC822Name(value))
        elif kind == "uri":
            if not _URI.fullmatch(value):
                raise ValueError(f"not a URI (scheme:rest, no spaces): {value!r}")
            names.append(x509.UniformResourceIdentifier(value))
        elif kind == "oid":
            try:
                names.append(x509.RegisteredID(x509.ObjectIdentifier(value)))
            except ValueError:
                raise ValueError(f"not an object identifier: {value!r}") from None
        else:
            names.append(x509.DNSName(dns_name(value)))
    return names


_SAN_KINDS = ("dns", "ip", "email", "uri", "oid")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def dns_name(value: str) -> str:
    """A DNS SAN as written (its A-label for non-ASCII letters; ``bücher.example`` as
    ``xn--bcher-kva.example``, which keytool refuses), checked as keytool checks it:
    labels of letters, digits and hyphens (and the underscores internal names use,
    which keytool refuses), none empty and none starting with a hyphen; ``*`` only as
    the whole leftmost label."""
    # A wildcard's "*" is no IDNA label: the name after it is encoded alone.
    prefix, rest = ("*.", value[2:]) if value.startswith("*.") else ("", value)
    name = prefix + (rest if rest.isascii() else ascii_host(rest))
    labels = name.split(".")
    wildcard = labels[0] == "*" and len(labels) > 1
    checked = labels[1:] if wildcard else labels
    if (
        not name.isascii()
        or len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in checked)
    ):
        raise ValueError(
            f"not a DNS name: {value!r} (labels of letters, digits, hyphens and "
            "underscores, none empty; * only as the leftmost label)"
        )
    return name


def keytool_digest(key: object) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The digest keytool signs a new certificate with for this key (the JDK's
    ``SignatureUtil`` strength rule): SHA-384 for RSA over 3072 bits and P-384, SHA-512
    for RSA over 7680 bits and P-521, else SHA-256 (DSA too); none for EdDSA."""
    bits = (
        key.key_size if isinstance(key, rsa.RSAPrivateKey)
        else key.curve.key_size if isinstance(key, ec.EllipticCurvePrivateKey)
        else 0
    )  # fmt: skip
    return _strength(_key_family(key), bits)


def _strength(family: str, bits: int) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The JDK's strength rule for a key of ``family`` and ``bits`` (see
    :func:`keytool_digest`), for a key not made yet too."""
    if family in ("Ed25519", "Ed448"):
        return None
    rsa_family = family == "RSA"
    if family in ("RSA", "EC") and bits > (7680 if rsa_family else 511):
        return hashes.SHA512()
    if family in ("RSA", "EC") and bits > (3072 if rsa_family else 383):
        return hashes.SHA384()
    return hashes.SHA256()  # DSA too: keytool's SHA256withDSA


def _sigalg_name(family: str, digest: hashes.HashAlgorithm | None) -> str:
    """keytool's name for a signature with ``digest`` by a key of ``family``."""
    if digest is None:
        return family
    return f"SHA{digest.digest_size * 8}with{'ECDSA' if family == 'EC' else family}"


def _key_family(key: object) -> str:
    """What signs, as the JDK names the key's algorithm."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "Ed448"
    return "DSA"


_SIGALG = re.compile(r"(SHA(?:224|256|384|512|3-224|3-256|3-384|3-512))with(RSA|ECDSA|DSA)", re.I)
_HASHES: dict[str, type[SigningHash]] = {
    "SHA224": hashes.SHA224, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512, "SHA3-224": hashes.SHA3_224, "SHA3-256": hashes.SHA3_256,
    "SHA3-384": hashes.SHA3_384, "SHA3-512": hashes.SHA3_512,
}  # fmt: skip
_SIGNS_WITH = {"RSA": "RSA", "ECDSA": "EC", "DSA": "DSA"}
_SHA1_REFUSED = (
    "SHA-1 signatures are refused by OpenSSL at its default security level and by Java "
    "for TLS certificates (cryptography does not make them)"
)
#: Names keytool takes that mtls refuses, and why.
_REFUSED_SIGALGS = {
    "MD2WITHRSA": "MD2 signatures are broken: Java and OpenSSL refuse them",
    "MD5WITHRSA": "MD5 signatures are broken: Java and OpenSSL refuse them",
    "SHA1WITHRSA": _SHA1_REFUSED,
    "SHA1WITHECDSA": _SHA1_REFUSED,
    "SHA1WITHDSA": _SHA1_REFUSED,
}


#: The digests a certificate or request is signed with.
SigningHash = (
    hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512
    | hashes.SHA3_224 | hashes.SHA3_256 | hashes.SHA3_384 | hashes.SHA3_512
)  # fmt: skip


def signature_for(name: str | None, key: object) -> tuple[SigningHash | None, padding.PSS | None]:
    """What ``key`` signs with for keytool's ``-sigalg name`` (a Java signature
    algorithm name, any case: ``SHA256withRSA``, ``SHA384withECDSA``, ``RSASSA-PSS``,
    ``Ed25519``, ``EdDSA``, ``SHA3-256withRSA``, ...): the digest, and the RSA padding
    for RSASSA-PSS (its digest by key size as keytool chooses it, MGF1 with the same
    digest, a salt of the digest's length, as the JDK writes its parameters).
    ``None``: keytool's default for the key (:func:`keytool_digest`).

    Returns:
        ``(digest, rsa_padding)`` as ``CertificateBuilder.sign`` takes them.

    Raises:
        ValueError: a name keytool does not know, one mtls refuses (MD5, SHA-1:
            broken or refused by peers), or one for another kind of key, saying which.
        TypeError: a name that is not a ``str``.
    """
    default = keytool_digest(key)
    if name is None:
        return default, None
    family = _key_family(key)
    digest, pss = _sigalg(name, family, _default_sigalg(key))
    if digest is not None and digest.name in _OPENSSL_30_UNVERIFIED.get(family, ()):
        log.warning(
            "signature algorithm %s: OpenSSL 3.0 and 3.1 peers (Python's ssl on Ubuntu "
            "22.04, RHEL 9) cannot verify it and refuse what is signed so; Java and "
            "OpenSSL 3.2 and later can: %s is what every peer verifies",
            name,
            _default_sigalg(key),
        )
    if pss and default is not None:
        return default, padding.PSS(mgf=padding.MGF1(default), salt_length=default.digest_size)
    return digest, None


def check_signature_algorithm(name: str | None, key_type: str, key_size: int, curve: str) -> None:
    """Refuse ``name`` (as :func:`signature_for`) before a key of ``key_type``
    (``RSA``, ``EC``, ``Ed25519``; ``key_size`` and ``curve`` as :func:`key_shape`
    gives them) is made for it: an RSA key of 16,384 bits takes minutes.

    Raises:
        ValueError, TypeError: as :func:`signature_for`.
    """
    if name is None:
        return
    family = {"RSA": "RSA", "EC": "EC", "ED25519": "Ed25519"}.get(key_type.upper())
    if family is None:
        return
    bits = key_size if family == "RSA" else {"secp384r1": 384, "secp521r1": 521}.get(curve, 256)
    _sigalg(name, family, _sigalg_name(family, _strength(family, bits)))


def _sigalg(name: str, family: str, default: str) -> tuple[SigningHash | None, bool]:
    """``name``'s digest (``None``: EdDSA's, or RSASSA-PSS's, which is the key's) and
    whether it is RSASSA-PSS, for a key of ``family``."""
    if not isinstance(name, str):
        raise TypeError(f"a signature algorithm is a str such as 'SHA256withRSA', not {name!r}")
    # As Java names it, in any case, or by its OID (keytool takes "1.2.840.113549.1.1.11"
    # and "OID.1.2.840.113549.1.1.11"); no spaces around it (keytool refuses those).
    folded = name.upper()
    folded = _SIGALG_OIDS.get(folded.removeprefix("OID."), folded)
    if folded in _REFUSED_SIGALGS:
        raise ValueError(
            f"signature algorithm {name}: {_REFUSED_SIGALGS[folded]}: use {default} (or "
            "give none: the key's default)"
        )
    digest: SigningHash | None = None
    if folded == "RSASSA-PSS":
        wanted = "RSA"
    elif folded in ("ED25519", "ED448"):
        wanted = "Ed25519" if folded == "ED25519" else "Ed448"
    elif folded == "EDDSA":
        wanted = family if family in ("Ed25519", "Ed448") else "Ed25519 or Ed448"
    elif (match := _SIGALG.fullmatch(folded)) is not None:
        wanted = _SIGNS_WITH[match.group(2).upper()]
        digest = _HASHES[match.group(1).upper()]()
        if wanted == "DSA" and match.group(1).upper().startswith("SHA3-"):
            raise ValueError(
                f"signature algorithm {name}: cryptography makes no SHA-3 signature with "
                "DSA keys: use SHA256withDSA, or keytool"
            )
    else:
        raise ValueError(
            f"unknown signature algorithm {name!r}: give a Java name: {default} (the "
            "key's default), SHA384withRSA, SHA384withECDSA, RSASSA-PSS, Ed25519, ..."
        )
    if wanted != family:
        raise ValueError(
            f"signature algorithm {name} signs with {wanted} keys; this key is "
            f"{family}: use {default} (or give none: the key's default)"
        )
    return digest, folded == "RSASSA-PSS"


#: Digests OpenSSL 3.0 does not verify with ECDSA or DSA keys ("unknown signature
#: algorithm"): SHA-3 with ECDSA, SHA-384 and SHA-512 with DSA.
_OPENSSL_30_UNVERIFIED = {
    "EC": ("sha3-224", "sha3-256", "sha3-384", "sha3-512"),
    "DSA": ("sha384", "sha512"),
}

#: Signature algorithms by OID, as keytool's -sigalg takes them too.
_SIGALG_OIDS = {
    "1.2.840.113549.1.1.4": "MD5WITHRSA", "1.2.840.113549.1.1.5": "SHA1WITHRSA",
    "1.2.840.113549.1.1.14": "SHA224WITHRSA", "1.2.840.113549.1.1.11": "SHA256WITHRSA",
    "1.2.840.113549.1.1.12": "SHA384WITHRSA", "1.2.840.113549.1.1.13": "SHA512WITHRSA",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
    "1.2.840.10045.4.1": "SHA1WITHECDSA", "1.2.840.10045.4.3.1": "SHA224WITHECDSA",
    "1.2.840.10045.4.3.2": "SHA256WITHECDSA", "1.2.840.10045.4.3.3": "SHA384WITHECDSA",
    "1.2.840.10045.4.3.4": "SHA512WITHECDSA",
    "2.16.840.1.101.3.4.3.9": "SHA3-224WITHECDSA", "2.16.840.1.101.3.4.3.10": "SHA3-256WITHECDSA",
    "2.16.840.1.101.3.4.3.11": "SHA3-384WITHECDSA", "2.16.840.1.101.3.4.3.12": "SHA3-512WITHECDSA",
    "2.16.840.1.101.3.4.3.13": "SHA3-224WITHRSA", "2.16.840.1.101.3.4.3.14": "SHA3-256WITHRSA",
    "2.16.840.1.101.3.4.3.15": "SHA3-384WITHRSA", "2.16.840.1.101.3.4.3.16": "SHA3-512WITHRSA",
    "1.2.840.10040.4.3": "SHA1WITHDSA", "2.16.840.1.101.3.4.3.1": "SHA224WITHDSA",
    "2.16.840.1.101.3.4.3.2": "SHA256WITHDSA", "2.16.840.1.101.3.4.3.3": "SHA384WITHDSA",
    "2.16.840.1.101.3.4.3.4": "SHA512WITHDSA",
    "1.3.101.112": "ED25519", "1.3.101.113": "ED448",
}  # fmt: skip


def _default_sigalg(key: object) -> str:
    """keytool's name for the signature it makes with ``key`` by default."""
    return _sigalg_name(_key_family(key), keytool_digest(key))


#: The last instant an X.509 date can say.
_LAST = _dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.UTC)


def validity(
    not_before: _dt.datetime | None, days: int, *, early: _dt.timedelta = _dt.timedelta(0)
) -> tuple[_dt.datetime, _dt.datetime]:
    """A new certificate's notBefore and notAfter, in UTC: ``days`` from
    ``not_before`` (naive: UTC), or from now, the start ``early`` before it (a peer
    whose clock lags still accepts the certificate).

    Raises:
        TypeError: ``not_before`` is not a datetime.
        ValueError: the validity would end after the year 9999.
    """
    if not_before is None:
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        return now - early, now + _dt.timedelta(days=days)
    if not isinstance(not_before, _dt.datetime):
        raise TypeError(f"not_before must be a datetime, not {type(not_before).__name__}")
    try:
        start = (
            not_before.replace(tzinfo=_dt.UTC)
            if not_before.tzinfo is None
            else not_before.astimezone(_dt.UTC)
        ).replace(microsecond=0)
    except OverflowError:  # an aware 9999-12-31 west of UTC
        start = _LAST
    if start > _LAST - _dt.timedelta(days=days):
        raise ValueError(
            f"a validity of {days:,} days from {start:%Y-%m-%d} ends after the year 9999, "
            "the last X.509 can say: give fewer days or an earlier start"
        )
    return start, start + _dt.timedelta(days=days)


_RELATIVE = re.compile(r"([+-])([0-9]{1,9})([ymdHMS])")


def parse_startdate(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """keytool's ``-startdate``: ``[+-]nnn[ymdHMS]`` repeated (``-1d``, ``+1y+6m``:
    from now, as Java's ``GregorianCalendar.add`` counts: years, months and days on
    the local calendar, a month added on the 31st landing on the month's last day;
    hours, minutes and seconds as time elapsed), or ``yyyy/mm/dd HH:MM:SS``,
    ``yyyy/mm/dd`` (at the time of day it is now) or ``HH:MM:SS`` (today), in local
    time. A local time that does not exist or happens twice (a daylight-saving
    change) is read as Java reads it: the later offset's.

    Returns:
        The instant, time-zone aware.

    Raises:
        ValueError: none of those forms, a date that does not exist, or an instant
            before the year 1 or after 9999.
    """
    bad = ValueError(
        f"-startdate {text!r}: give [+-]nnn[ymdHMS] (e.g. -1d, +1y+6m: from now) or "
        "yyyy/mm/dd [HH:MM:SS] or HH:MM:SS (local time), as keytool takes it"
    )
    out_of_range = ValueError(f"-startdate {text!r}: before the year 1 or after 9999")
    try:
        instant = (now or _dt.datetime.now(_dt.UTC)).astimezone().replace(microsecond=0)
        if text[:1] in ("+", "-"):
            at = 0
            while at < len(text):
                match = _RELATIVE.match(text, at)
                if match is None:
                    raise bad
                number = int(match.group(2)) * (1 if match.group(1) == "+" else -1)
                unit = match.group(3)
                if unit in "ymd":
                    instant = _local(_calendar_add(_wall(instant), unit, number))
                else:  # elapsed time, whatever the clock does meanwhile
                    seconds = number * {"H": 3600, "M": 60, "S": 1}[unit]
                    instant = (instant + _dt.timedelta(seconds=seconds)).astimezone()
                at = match.end()
            return instant
        return _local(_absolute(text, _wall(instant), bad))
    except OverflowError:
        raise out_of_range from None
    except ValueError as exc:
        if exc is bad or str(exc).startswith("-startdate "):
            raise
        raise out_of_range from None


def _wall(instant: _dt.datetime) -> _dt.datetime:
    """The local clock time of ``instant``, naive."""
    return instant.astimezone().replace(tzinfo=None)


def _local(wall: _dt.datetime) -> _dt.datetime:
    """The instant a local clock time names; one that does not exist (the hour a
    clock skips) or happens twice is the later of its two readings, as Java's lenient
    calendar takes it. Both readings are asked for: what ``fold=1`` means in a gap
    changed in Python 3.12 (PEP 495, gh-83861: the earlier instant since, the later
    before), and ``-startdate`` in the skipped hour came out an hour before keytool's
    on 3.12 and 3.13 (h279)."""
    return max(wall.replace(fold=0).astimezone(), wall.replace(fold=1).astimezone())


def _calendar_add(wall: _dt.datetime, unit: str, number: int) -> _dt.datetime:
    """``Calendar.add`` of years, months or days on a clock time."""
    if unit == "d":
        return wall + _dt.timedelta(days=number)
    months = wall.month - 1 + number * (12 if unit == "y" else 1)
    year, month = wall.year + months // 12, months % 12 + 1
    if not 1 <= year <= 9999:
        raise OverflowError(year)
    return wall.replace(
        year=year, month=month, day=min(wall.day, calendar.monthrange(year, month)[1])
    )


def _absolute(text: str, wall: _dt.datetime, bad: ValueError) -> _dt.datetime:
    """``yyyy/mm/dd [HH:MM:SS]`` or ``HH:MM:SS`` over the clock time ``wall``."""
    date_part, time_part = (
        (text[:10], text[11:]) if len(text) == 19 and text[10] == " "
        else (text, None) if len(text) == 10
        else (None, text) if len(text) == 8
        else (None, None)
    )  # fmt: skip
    if date_part is None and time_part is None:
        raise bad
    if date_part is not None and not re.fullmatch(r"[0-9]{4}/[0-9]{2}/[0-9]{2}", date_part):
        raise bad
    if time_part is not None and not re.fullmatch(r"[0-9]{2}:[0-9]{2}:[0-9]{2}", time_part):
        raise bad
    try:
        if date_part is not None:
            year, month, day = map(int, date_part.split("/"))
            wall = wall.replace(year=year, month=month, day=day)
        if time_part is not None:
            hour, minute, second = map(int, time_part.split(":"))
            wall = wall.replace(hour=hour, minute=minute, second=second)
    except ValueError as exc:
        raise ValueError(f"-startdate {text!r}: no such date or time ({exc})") from None
    return wall


#: keytool's ``-keyalg EC -keysize N``: the size names the curve.
EC_CURVE_BY_SIZE = {256: "secp256r1", 384: "secp384r1", 521: "secp521r1"}
_CURVE_ALIASES = {"p-256": "secp256r1", "p-384": "secp384r1", "p-521": "secp521r1"}


def curve_name(curve: str) -> str:
    """The curve's keytool name (``secp384r1``; ``P-384`` is accepted).

    Raises:
        ValueError: not one of the three curves TLS stacks take.
    """
    name = _CURVE_ALIASES.get(curve.lower(), curve.lower())
    if name not in EC_CURVE_BY_SIZE.values():
        raise ValueError(f"curve must be one of secp256r1, secp384r1, secp521r1, not {curve!r}")
    return name


def key_shape(
    key_type: str,
    size: int | None,
    curve: str | None,
    *,
    size_option: str = "key_size",
    curve_option: str = "curve",
    legacy: bool = True,
) -> tuple[int, str]:
    """``(key size, curve)`` as keytool reads ``-keysize`` and ``-groupname``: an RSA
    key's size (2048 when none is given); for EC the size names the curve (256, 384,
    521), and a size and a curve given together must agree (secp256r1 when neither
    is given). ``size_option``, ``curve_option``: how messages name the two.
    ``legacy``: the API's former defaults (``key_size=2048`` for an EC or Ed25519 key,
    ``curve="secp256r1"`` for an RSA or Ed25519 one), given explicitly, are taken as
    not given, as they were (the CLI passes ``False``: keytool refuses them).

    Raises:
        ValueError: an option the key type does not take, an EC size that names no
            curve, a size and a curve that disagree, or a size that is not an int.
    """
    if size is not None:
        given: Any = size  # what a caller passed, whatever the annotation says
        if type(given) is bool or not isinstance(given, numbers.Integral):  # 3072.0, "2048"
            raise ValueError(f"{size_option} must be a whole number of bits, not {size!r}")
        size = operator.index(given)  # numpy's integers too
    kind = key_type.upper()
    if legacy:
        # The values the API's defaults were (key_size=2048, curve="secp256r1") meant
        # nothing for the other key type: passed explicitly, they still mean nothing.
        if kind != "RSA" and size == 2048:
            size = None
        if kind != "EC" and curve is not None and curve.lower() == "secp256r1":
            curve = None
    if kind == "EC":
        named = EC_CURVE_BY_SIZE.get(size) if size is not None else None
        if size is not None and named is None:
            raise ValueError(
                f"{size_option} {size} names no EC curve: 256, 384 or 521 (or give {curve_option})"
            )
        if named and curve and curve_name(curve) != named:
            raise ValueError(
                f"{size_option} {size} is {named}, not the {curve_option} {curve}: give one"
            )
        return 2048, curve_name(curve) if curve else named or "secp256r1"
    if curve is not None:
        raise ValueError(f"{curve_option} is for EC keys, not {key_type}")
    if kind == "ED25519" and size not in (None, 255):
        raise ValueError(f"Ed25519 keys have one size (255), not {size}")
    return size or 2048, "secp256r1"


def new_private_key(
    key_type: str, key_size: int, curve: str
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    """A new key: RSA of ``key_size`` bits, EC on ``curve``, or Ed25519 (the two as
    :func:`key_shape` returns them)."""
    kind = key_type.upper()
    if kind == "RSA":
        if key_size < 2048:
            raise ValueError("RSA keys shorter than 2048 bits are refused by current TLS stacks")
        if key_size > 16384:  # keytool's limit; a larger one takes minutes to generate
            raise ValueError(
                f"RSA keys longer than 16384 bits are refused, as keytool does: {key_size}"
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if kind == "EC":
        curves: dict[str, ec.EllipticCurve] = {
            "secp256r1": ec.SECP256R1(),
            "secp384r1": ec.SECP384R1(),
            "secp521r1": ec.SECP521R1(),
        }
        return ec.generate_private_key(curves[curve_name(curve)])
    if kind == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key_type must be 'RSA', 'EC' or 'Ed25519', not {key_type!r}")
