"""Certificate helpers shared by the stores, the profile set and the CLI.

Certificates are kept as DER bytes, the form OpenSSL consumes; cryptography parses
them only when a caller asks for a :class:`~cryptography.x509.Certificate`.
Real truststores hold roots that cryptography warns about (serial number 0 in
Debian's Java cacerts: Go Daddy, Starfield, ...). Those still load as anchors:
we parse them with the deprecation warning silenced and log it once at DEBUG.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import ssl
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from . import _der

log = logging.getLogger("mtls")


def _serial_is_positive(der: bytes) -> bool:
    # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial INTEGER, ...
    try:
        tbs = _der.read_tlv(_der.read_tlv(der).value)
        pos = 0
        first = _der.read_tlv(tbs.value, pos)
        if first.tag == 0xA0:
            first = _der.read_tlv(tbs.value, first.end)
        return first.tag == _der.INTEGER and _der.decode_int(first.value) > 0
    except _der.DERError:
        return True  # let cryptography produce the real error


def load_cert(der: bytes) -> x509.Certificate:
    """Parse DER into a Certificate, tolerating the non-positive serials of old roots.

    Raises:
        ValueError: the bytes are not a certificate cryptography can read.
    """
    try:
        if _serial_is_positive(der):
            return x509.load_der_x509_certificate(der)
        # Rare path (a handful of old public roots): silence the one known warning.
        # catch_warnings is process-wide, so it is kept to this branch only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:  # not a ValueError: keep the one documented error
        raise ValueError(f"unsupported X.509 version ({exc})") from exc
    log.debug(
        "certificate %s has a non-positive serial number (RFC 5280 says positive)",
        sha256_hex(der)[:16],
    )
    return cert


def der_to_pem(der: bytes) -> str:
    """PEM text of one DER certificate."""
    return ssl.DER_cert_to_PEM_cert(der)


def sha256_hex(der: bytes) -> str:
    """Lower-case hex SHA-256 of the DER bytes (keytool prints it upper-case, with colons)."""
    return hashlib.sha256(der).hexdigest()


def colon_fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as keytool -list prints it: upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def subject_text(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string (``CN=localhost,O=WSO2``)."""
    return cert.subject.rfc4514_string()


def common_name(cert: x509.Certificate) -> str | None:
    """The first CN of the subject, or None."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def not_after(cert: x509.Certificate) -> _dt.datetime:
    """The end of validity, timezone-aware (UTC)."""
    return cert.not_valid_after_utc


def not_before(cert: x509.Certificate) -> _dt.datetime:
    """The start of validity, timezone-aware (UTC)."""
    return cert.not_valid_before_utc


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    """SANs as keytool prints them (``DNS:localhost``, ``IP:127.0.0.1``, ``email:...``)."""
    try:
        if _serial_is_positive(cert.public_bytes(Encoding.DER)):
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        else:
            # cryptography repeats its serial-number warning on every .extensions access
            # (Debian's cacerts has such roots): silenced here as in load_cert.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = []
    for name in ext:
        if isinstance(name, x509.DNSName):
            out.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"IP:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"URI:{name.value}")
        else:
            out.append(str(name.value))
    return out
