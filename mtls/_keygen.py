"""keytool-style inputs: distinguished names, subject alternative names, new key pairs."""

from __future__ import annotations

import ipaddress
import numbers
import operator
import re
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from ._idna import ascii_host


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


def keytool_digest(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The digest keytool signs a new certificate with for this key (the JDK's
    ``SignatureUtil`` strength rule): SHA-384 for RSA over 3072 bits and P-384, SHA-512
    for RSA over 7680 bits and P-521, else SHA-256; none for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey):
        bits = key.key_size
        return (
            hashes.SHA512() if bits > 7680 else hashes.SHA384() if bits > 3072 else hashes.SHA256()
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        bits = key.curve.key_size
        return (
            hashes.SHA512() if bits >= 512 else hashes.SHA384() if bits >= 384 else hashes.SHA256()
        )
    return None


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
