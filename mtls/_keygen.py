"""keytool-style inputs: distinguished names, subject alternative names, new key pairs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ._idna import ascii_host


def parse_dname(subject: str | x509.Name) -> x509.Name:
    """A keytool ``-dname`` string (``"CN=a, OU=b, O=c, C=US"``) as an ``x509.Name``."""
    if isinstance(subject, x509.Name):
        return subject
    # keytool writes ", " between attributes; an escaped comma ("Acme\\, Inc.") keeps its space.
    text = re.sub(r"(?<!\\)((?:\\\\)*),\s+", r"\1,", subject.strip())
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise ValueError(f'malformed distinguished name {subject!r}: use "CN=name, O=org"') from exc
    if not name.rdns:
        raise ValueError('the distinguished name is empty: use "CN=name"')
    return name


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
            names.append(x509.UniformResourceIdentifier(value))
        elif kind == "oid":
            try:
                names.append(x509.RegisteredID(x509.ObjectIdentifier(value)))
            except ValueError:
                raise ValueError(f"not an object identifier: {value!r}") from None
        else:
            names.append(x509.DNSName(_dns_name(value)))
    return names


_SAN_KINDS = ("dns", "ip", "email", "uri", "oid")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _dns_name(value: str) -> str:
    """A DNS SAN as written (its A-label for non-ASCII letters; ``bücher.example`` as
    ``xn--bcher-kva.example``), checked as keytool checks it: labels of letters, digits,
    hyphens (and the underscores internal names use), none empty; ``*`` only as the
    whole leftmost label."""
    name = value if value.isascii() else ascii_host(value)
    labels = name.split(".")
    wildcard = labels[0] == "*" and len(labels) > 1
    checked = labels[1:] if wildcard else labels
    if (
        not name.isascii()
        or len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in checked)
    ):
        raise ValueError(
            f"not a DNS name: {value!r} (labels of letters, digits and hyphens, none "
            "empty; * only as the leftmost label)"
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


def new_private_key(
    key_type: str, key_size: int, curve: str
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
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
