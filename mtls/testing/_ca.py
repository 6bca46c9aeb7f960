"""An in-memory certificate authority for tests: :class:`CA` and :class:`IssuedIdentity`.

Everything it issues passes OpenSSL's strict X.509 checks (``ssl.VERIFY_X509_STRICT``,
the default of Python 3.13's ``create_default_context``): version 3, positive
random serials, a subject and authority key identifier on every certificate,
``basicConstraints`` marked critical on CAs and leaves, ``keyUsage`` marked
critical, subject alternative names for every identity, and both the
``serverAuth`` and ``clientAuth`` extended key usages on leaves, so one identity
can sit on either end of a mutual-TLS connection.

Nothing is written to disk unless a ``write_*`` method is called. Keys are made
fresh for every CA and identity: EC P-256 by default (about a millisecond each),
RSA 2048 on request (tens of milliseconds).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import _dates, _x509
from .._keygen import dns_name
from .._keyload import load_identity
from .._secret import Secret
from .._stores import Keystore, Truststore
from .._types import KeyType, WriteFormat
from ._rotation import replace_atomically

Identity: TypeAlias = (
    str
    | ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Network
    | ipaddress.IPv6Network
)
_PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CN_MAX = 64  # RFC 5280 ub-common-name
_DEFAULT_ORGANIZATION = "mtls.testing"


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


#: What the test CA's ``key_type=`` takes: mtls's names, trustme's ``"ECDSA"``, and
#: trustme's ``KeyType`` enum (any enum whose member name is one of these).
CAKeyType: TypeAlias = KeyType | Literal["ECDSA"] | enum.Enum


def _normalize_key_type(key_type: object) -> KeyType:
    # trustme's spelling too: "ECDSA", and its KeyType enum (by name).
    name = getattr(key_type, "name", key_type)
    if isinstance(name, str):
        wanted = "EC" if name.casefold() == "ecdsa" else name
        for known in ("EC", "RSA", "Ed25519"):
            if wanted.casefold() == known.casefold():
                return known
    raise ValueError(f"key_type must be 'EC' (or 'ECDSA'), 'RSA' or 'Ed25519', not {key_type!r}")


def _new_key(key_type: KeyType) -> _PrivateKey:
    if key_type == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _hash_for(key: _PrivateKey) -> hashes.SHA256 | None:
    """The hash a signature by ``key`` takes (certificates, CRLs, OCSP answers)."""
    # Ed25519 signs the message itself: cryptography wants no separate hash for it.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _sign(builder: x509.CertificateBuilder, key: _PrivateKey) -> x509.Certificate:
    return builder.sign(key, _hash_for(key))


def _aware(value: _dt.datetime, argument: str) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):  # a date, a string, a timedelta
        raise TypeError(
            f"{argument} must be a timezone-aware datetime (for example "
            f"datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)), not "
            f"{type(value).__name__}"
        )
    if value.tzinfo is None:
        raise ValueError(f"{argument} must be timezone-aware (for example datetime.UTC)")
    return value.astimezone(_dt.UTC)


def _validity(
    not_before: _dt.datetime | None,
    not_after: _dt.datetime | None,
    default_days: int,
) -> tuple[_dt.datetime, _dt.datetime]:
    """The validity window; a bound left out is placed around the one given.

    Without either: from an hour ago (slack for a host whose clock is slightly
    behind the one that checks) to ``default_days`` from now. A bound given alone
    keeps that shape: a future ``not_before`` starts the ``default_days`` there (a
    not-yet-valid certificate), and a ``not_after`` at or before the hour of slack
    ends ``default_days`` that began then (an expired certificate).
    """
    now = _utcnow()
    slack = now - _dt.timedelta(hours=1)
    length = _dt.timedelta(days=default_days)
    start = _aware(not_before, "not_before") if not_before is not None else None
    end = _aware(not_after, "not_after") if not_after is not None else None
    if start is None:
        start = slack if end is None or end > slack else end - length
    if end is None:
        end = max(start, now) + length
    if end <= start:
        raise ValueError(
            f"not_after ({end.isoformat()}) must be later than not_before ({start.isoformat()})"
        )
    return start, end


def _general_name(identity: object) -> x509.GeneralName:
    """One identity as a SAN: an IP address or network, an email, a URI, or a DNS name
    (its A-label, IDNA 2008 as HTTP clients send it, and checked: labels of letters,
    digits, hyphens and underscores, ``*`` only as the whole leftmost label)."""
    if isinstance(identity, _IP_TYPES):
        return x509.IPAddress(identity)
    if isinstance(identity, list | tuple | set):
        raise TypeError(
            "identities are separate arguments: issue_cert(*names), not one list "
            "(issue_cert('a.example', 'b.example'))"
        )
    if not isinstance(identity, str) or not identity.strip():
        raise ValueError("an identity must be a non-empty string or an IP address or network")
    text = identity.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    if "://" in text:
        return x509.UniformResourceIdentifier(text)  # spiffe://... and other URIs
    if "@" in text:
        return x509.RFC822Name(text)
    if "/" in text:  # "10.0.0.0/8": an iPAddress SAN with its mask, as trustme writes one
        try:
            return x509.IPAddress(ipaddress.ip_network(text))
        except ValueError as exc:
            raise ValueError(f"not an IP network: {text!r} ({exc})") from None
    # A fully qualified name's trailing dot is kept (a client asking for "localhost."
    # matches only a SAN written so); the name before it is checked.
    base, dot = (text[:-1], ".") if text.endswith(".") and len(text) > 1 else (text, "")
    try:
        return x509.DNSName(dns_name(base) + dot)
    except ValueError as exc:
        hint = (
            f" (for a subject name, pass common_name={text!r})"
            if " " in text
            else " (a port is not part of a name)"
            if re.search(r":[0-9]+$", text)
            else ""
        )
        raise ValueError(f"{exc}{hint}") from None


_IP_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def _alias_from(name: str | None) -> str:
    base = re.sub(r"[^a-z0-9._-]+", "-", (name or "").lower()).strip("-")
    return base or "identity"


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The contents of the certificate's subjectPublicKey BIT STRING (what an OCSP
    CertID's issuerKeyHash hashes)."""
    from .. import _der  # noqa: PLC0415 - OCSP answers only

    spki = _x509.public_key(certificate).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bits = _der.read_single(spki, _der.SEQUENCE).children()[1].value
    return bits[1:]  # past the count of unused bits (0)


class IssuedIdentity:
    """A private key and the certificate a :class:`CA` issued for it.

    Made by :meth:`CA.issue_cert`; immutable. Usable as a server certificate and
    as a client certificate (both extended key usages are set, unless turned off
    at issue time).

    Attributes:
        certificate: the leaf certificate.
        chain: the leaf followed by the intermediate CAs that issued it, up to but
            not including the root: what a TLS peer sends. For an identity issued
            by a root CA, just the leaf.
        private_key: the leaf's private key (a cryptography key object).
        ca: the CA that issued it.
        identities: the names it was issued for, as given.
    """

    def __init__(
        self,
        *,
        private_key: _PrivateKey,
        chain: Sequence[x509.Certificate],
        ca: CA,
        identities: Sequence[Identity],
    ) -> None:
        setattr_ = object.__setattr__  # immutable: __setattr__ refuses afterwards
        setattr_(self, "private_key", private_key)
        setattr_(self, "chain", tuple(chain))
        setattr_(self, "certificate", self.chain[0])
        setattr_(self, "ca", ca)
        setattr_(self, "identities", tuple(identities))

    private_key: _PrivateKey
    chain: tuple[x509.Certificate, ...]
    certificate: x509.Certificate
    ca: CA
    identities: tuple[Identity, ...]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"an IssuedIdentity is immutable (cannot set {name!r}): issue another with "
            "ca.issue_cert(...)"
        )

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    @property
    def common_name(self) -> str | None:
        """The CN of the subject, or ``None`` when there is none."""
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            return None
        value = names[0].value
        return value if isinstance(value, str) else value.decode()

    @property
    def subject(self) -> str:
        """The subject as an RFC 4514 string, as the test server reports it."""
        return self.certificate.subject.rfc4514_string()

    @property
    def serial_number(self) -> int:
        """The certificate's serial number."""
        return self.certificate.serial_number

    @property
    def fingerprint_sha256(self) -> str:
        """Lower-case hex SHA-256 of the certificate's DER bytes."""
        return hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return _key_pem(self.private_key)

    @property
    def cert_pem(self) -> bytes:
        """The leaf certificate as PEM."""
        return _pem(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        """:attr:`chain` as concatenated PEM, leaf first."""
        return b"".join(_pem(cert) for cert in self.chain)

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Install this identity (key and :attr:`chain`) into an existing context, as
        trustme's ``configure_cert`` does: for a context another library made. The
        key reaches OpenSSL without touching the filesystem in clear.

        Raises:
            ssl.SSLError: OpenSSL refused the material.
        """
        der = serialization.Encoding.DER
        pkcs8 = self.private_key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        load_identity(ctx, pkcs8, [cert.public_bytes(der) for cert in self.chain])

    def keystore(self, alias: str | None = None) -> Keystore:
        """A new :class:`mtls.Keystore` holding this identity as its one key entry.

        Args:
            alias: the entry's alias; defaults to the common name made alias-safe
                (``"client"``, ``"localhost"``), or ``"identity"``.

        Returns:
            A fresh store each call; changing it does not change this identity.
        """
        store = Keystore()
        store.add_key(alias or _alias_from(self.common_name), self.private_key, self.chain)
        return store

    def write_pem(self, path: str | os.PathLike[str]) -> Path:
        """Write the unencrypted private key followed by :attr:`chain`, as PEM.

        The file is written atomically (temporary file, fsync, rename) with mode
        0600: the key is in clear, which is what test servers and ``curl --cert``
        expect. :meth:`mtls.Keystore.load` reads it back.

        Returns:
            The path written.

        Raises:
            OSError: the file cannot be written; an existing file is left as it was.
        """
        return replace_atomically(path, self.private_key_pem + self.chain_pem, mode=0o600)

    def write_keystore(
        self,
        path: str | os.PathLike[str],
        password: str | Secret,
        *,
        store_type: WriteFormat | None = None,
        alias: str | None = None,
        key_password: str | Secret | None = None,
    ) -> Path:
        """Write this identity as a keystore that keytool and :meth:`mtls.Keystore.load` read.

        Args:
            path: the file to write (atomically, mode 0600).
            password: the store password.
            store_type: ``"JKS"``, ``"PKCS12"`` (keytool's default since JDK 9) or
                ``"PEM"`` (the key encrypted with ``password``, then the chain); by
                default the one the file's name says (``.p12``/``.pfx``, ``.jks``,
                ``.pem``), else JKS.
            alias: the key entry's alias (see :meth:`keystore`).
            key_password: a separate key password; JKS only, as with keytool.

        Returns:
            The path written.

        Raises:
            ValueError: an unknown store type, or a key password for PKCS#12 or PEM.
            OSError: the file cannot be written; an existing file is left as it was.
        """
        self.keystore(alias).save(path, password, store_type=store_type, key_password=key_password)
        return Path(path)

    def __repr__(self) -> str:
        names = ", ".join(str(i) for i in self.identities) or "(no SAN)"
        return f"<IssuedIdentity {self.subject!r} for {names}, issued by {self.ca.name!r}>"


class CA:
    """An in-memory certificate authority for tests.

    Example:
        >>> ca = CA()
        >>> server = ca.issue_cert("localhost", "127.0.0.1")
        >>> client = ca.issue_cert("client")
        >>> client.common_name
        'client'
        >>> ca.truststore().aliases
        ('ca',)

    Args:
        key_type: ``"EC"`` (P-256, the default), ``"RSA"`` (2048 bits) or
            ``"Ed25519"``. Also the default key type of what it issues.
        name: the CA's common name. Defaults to ``"mtls testing CA"`` with a random
            suffix, so two CAs never share a subject (a client certificate from
            another CA then fails with "unable to get local issuer certificate",
            as it would in production).
        organization: the ``O=`` of the CA and of every subject it issues.
        not_before: start of validity (timezone-aware); defaults to an hour ago, or
            to ten years before a ``not_after`` already past (an expired CA).
        not_after: end of validity (timezone-aware); defaults to ten years after
            ``not_before`` or now, whichever is later.
        path_length: the ``pathLenConstraint`` of ``basicConstraints``; ``None``
            leaves it unlimited. :meth:`create_child_ca` keeps to it.
        ocsp_url: an ``http://`` OCSP responder to name (AIA) in every certificate
            this CA issues; revocation tests run one (``openssl ocsp``, see
            :meth:`openssl_index`).
        crl_url: an ``http://`` CRL distribution point to name in every certificate
            this CA issues; serve :meth:`crl` there.

    Raises:
        ValueError: an unknown key type, naive datetimes, an empty validity, or a
            negative ``path_length``.
    """

    certificate: x509.Certificate
    _ski: x509.SubjectKeyIdentifier

    def __init__(
        self,
        *,
        key_type: CAKeyType = "EC",
        name: str | None = None,
        organization: str = _DEFAULT_ORGANIZATION,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        path_length: int | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        _parent: CA | None = None,
    ) -> None:
        self.key_type: KeyType = _normalize_key_type(key_type)
        if path_length is not None and (
            type(path_length) is not int or path_length < 0  # bool is no count
        ):
            raise ValueError(f"path_length must be 0 or more, not {path_length!r}")
        self.path_length = path_length
        self.ocsp_url = ocsp_url
        self.crl_url = crl_url
        # serial -> (revocation time, reason): what crl() and openssl_index() report
        self._revoked: dict[int, tuple[_dt.datetime, x509.ReasonFlags | None]] = {}
        # The CRLNumber of the last list made: it grows with each one (RFC 5280 5.2.3),
        # as a CA's does (it was the count of revocations: a list made after a
        # revocation was lifted had a lower number than the one before, h253).
        self._crl_number = 0
        self._issued: dict[int, x509.Certificate] = {}
        self.name: str = name or f"mtls testing CA {secrets.token_hex(4)}"
        self.organization = organization
        self.parent = _parent
        self.private_key: _PrivateKey = _new_key(self.key_type)
        public = self.private_key.public_key()
        start, end = _validity(not_before, not_after, default_days=3650)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, self.name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        if _parent is None:
            issuer_name, signer, aki = (
                subject,
                self.private_key,
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            )
        else:
            issuer_name, signer = _parent.certificate.subject, _parent.private_key
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_parent._ski)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            # Strict mode: basicConstraints must be critical on a CA, and keyUsage
            # must allow certificate signing.
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(aki, critical=False)
        )
        if _parent is not None:
            builder = _parent._locations(builder)
        self.certificate = _sign(builder, signer)
        if _parent is not None:
            _parent._issued[self.certificate.serial_number] = self.certificate
        self._ski = ski
        # What a peer must send with a leaf we issue: us, then our parents, minus the root.
        self._intermediates: tuple[x509.Certificate, ...] = (
            () if _parent is None else (self.certificate, *_parent._intermediates)
        )

    @property
    def root(self) -> CA:
        """The self-signed CA at the top of this CA's hierarchy (``self`` for a root)."""
        ca = self
        while ca.parent is not None:
            ca = ca.parent
        return ca

    @property
    def cert_pem(self) -> bytes:
        """This CA's certificate as PEM (what ``cafile=`` or ``cadata=`` take)."""
        return _pem(self.certificate)

    @property
    def private_key_pem(self) -> bytes:
        """This CA's private key as unencrypted PKCS#8 PEM."""
        return _key_pem(self.private_key)

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Make ``ctx`` trust this CA (its certificate as an anchor), as trustme's
        ``configure_trust`` does: for a context another library made."""
        ctx.load_verify_locations(cadata=self.cert_pem.decode("ascii"))

    def create_child_ca(
        self,
        *,
        name: str | None = None,
        key_type: CAKeyType | None = None,
        path_length: int | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
    ) -> CA:
        """An intermediate CA signed by this one.

        Identities it issues carry it (and any intermediates above it) in their
        :attr:`IssuedIdentity.chain`, so a peer that trusts only the root can
        build the path.

        Args:
            name: the intermediate's common name (random suffix by default).
            key_type: defaults to this CA's key type.
            path_length: ``pathLenConstraint`` of the intermediate; defaults to one
                less than this CA's, when this CA has one (unlimited otherwise).
            ocsp_url: the OCSP responder the intermediate names in what *it* issues
                (its own certificate carries this CA's ``ocsp_url``).
            crl_url: likewise, its CRL distribution point.
            not_before: start of validity (timezone-aware), as for :class:`CA`.
            not_after: end of validity (timezone-aware), as for :class:`CA` (an
                intermediate that expires before what it issues is allowed: tests
                of chain expiry need one).

        Returns:
            The new CA; its :attr:`parent` is this CA.

        Raises:
            ValueError: naive datetimes or an empty validity; this CA's own
                ``path_length`` allows no CA under it (0), or less than asked.
        """
        limit = self.path_length
        if limit is not None:
            if limit == 0:
                raise ValueError(
                    f"CA {self.name!r} has path_length=0: it may issue leaf certificates, "
                    "not another CA (clients would refuse the chain: path length "
                    "constraint exceeded)"
                )
            if path_length is None:
                path_length = limit - 1
            elif path_length > limit - 1:
                raise ValueError(
                    f"path_length={path_length} is more than CA {self.name!r} allows "
                    f"under it ({limit - 1})"
                )
        return CA(
            key_type=key_type or self.key_type,
            name=name or f"mtls testing intermediate CA {secrets.token_hex(4)}",
            organization=self.organization,
            path_length=path_length,
            ocsp_url=ocsp_url,
            crl_url=crl_url,
            not_before=not_before,
            not_after=not_after,
            _parent=self,
        )

    def _locations(self, builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
        """Add this CA's OCSP responder (AIA) and CRL distribution point, when set."""
        if self.ocsp_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        if self.crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        return builder

    def revoke(
        self,
        what: IssuedIdentity | CA | x509.Certificate | int,
        *,
        reason: str | None = "keyCompromise",
        when: _dt.datetime | None = None,
    ) -> None:
        """Mark a certificate this CA issued as revoked, in :meth:`crl` and :meth:`openssl_index`.

        Args:
            what: an identity, a child CA, a certificate, or a serial number.
            reason: an RFC 5280 reason name (``keyCompromise``, ``superseded``,
                ``cessationOfOperation``, ...), or ``None`` for none.
            when: the revocation time (timezone-aware); defaults to now.

        Raises:
            ValueError: an unknown reason, a naive datetime, or a certificate this CA
                did not sign (its CRL could not speak for it; a bare serial number is
                taken as it is).
            TypeError: ``what`` of another kind.
        """
        given: object = what  # checked: a string or None must not become a serial
        cert: x509.Certificate | None = None
        if isinstance(given, IssuedIdentity | CA):
            cert = given.certificate
        elif isinstance(given, x509.Certificate):
            cert = given
        elif not isinstance(given, int) or isinstance(given, bool):
            raise TypeError(
                "revoke takes an IssuedIdentity, a CA, an x509.Certificate or a serial "
                f"number, not {type(given).__name__}"
            )
        if cert is not None:
            try:  # signed by this CA's key under its name: whoever built it
                _x509.verify_issued_by(cert, self.certificate)
            except (ValueError, TypeError, InvalidSignature):
                mine = self.certificate.subject.rfc4514_string()
                raise ValueError(
                    f"{cert.subject.rfc4514_string()} was not issued by this CA ({mine}) "
                    f"but by {cert.issuer.rfc4514_string()}: revoke it there (a serial "
                    "number is taken as it is, for a list naming a stranger)"
                ) from None
            serial = cert.serial_number
        else:
            assert isinstance(given, int)
            serial = given  # any serial: a negative test may list one never issued
        flag = None
        if reason is not None:
            try:
                flag = x509.ReasonFlags(reason)
            except ValueError:
                names = ", ".join(f.value for f in x509.ReasonFlags)
                raise ValueError(f"reason must be one of {names}, not {reason!r}") from None
        at = _aware(when, "when") if when is not None else _utcnow()
        self._revoked[serial] = (at.replace(microsecond=0), flag)

    def _next_crl_number(self) -> int:
        self._crl_number += 1
        return self._crl_number

    def crl(
        self,
        *,
        last_update: _dt.datetime | None = None,
        next_update: _dt.datetime | None = None,
        encoding: Literal["DER", "PEM"] = "DER",
        signer: CA | None = None,
    ) -> bytes:
        """This CA's certificate revocation list, listing what :meth:`revoke` marked.

        Args:
            last_update: ``thisUpdate``; defaults to a minute ago, or to a day before
                a ``next_update`` that is already past.
            next_update: ``nextUpdate``; defaults to a day after ``last_update``.
                A past value makes an expired CRL.
            encoding: ``"DER"`` (what distribution points serve) or ``"PEM"``
                (either case).
            signer: sign with another CA's key (keeping this CA's name as issuer):
                a CRL no trusted issuer signed, for negative tests.

        Returns:
            The encoded CRL.

        Raises:
            ValueError: another ``encoding``.
        """
        form = str(encoding).upper()
        if form not in ("DER", "PEM"):
            raise ValueError(f"encoding must be 'DER' or 'PEM', not {encoding!r}")
        end = _aware(next_update, "next_update") if next_update else None
        if last_update:
            start = _aware(last_update, "last_update")
        else:
            start = _utcnow() - _dt.timedelta(minutes=1)
            if end is not None and end <= start:
                # An expired list on its own: the day that ended then (a past
                # nextUpdate with the default thisUpdate was cryptography's ValueError).
                start = end - _dt.timedelta(days=1)
        if end is None:
            end = start + _dt.timedelta(days=1)
        if end <= start:
            raise ValueError("next_update must be after last_update")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(start)
            .next_update(end)
            .add_extension(x509.CRLNumber(self._next_crl_number()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                critical=False,
            )
        )
        for serial, (at, flag) in list(self._revoked.items()):  # revoke() may run meanwhile
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
            if flag is not None:
                entry = entry.add_extension(x509.CRLReason(flag), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        key = (signer or self).private_key
        crl = builder.sign(key, _hash_for(key))
        return crl.public_bytes(
            serialization.Encoding.PEM if form == "PEM" else serialization.Encoding.DER
        )

    def ocsp_response(
        self, request: bytes, *, next_update: _dt.timedelta = _dt.timedelta(hours=1)
    ) -> bytes:
        """This CA's OCSP answer to ``request`` (DER), signed with its own key, as an
        OCSP responder of this CA serves it: ``good`` for what it issued, ``revoked``
        (with the time and reason) for what :meth:`revoke` marked, ``unknown`` for a
        serial it never issued; a request about another CA's certificates is
        ``unauthorized``, one that cannot be read ``malformedRequest`` (so is one
        asking about several certificates at once, which cryptography does not read, or
        with a CertID hash it does not compute). A nonce in the request is echoed.

        Args:
            request: the DER ``OCSPRequest`` (what a client POSTs).
            next_update: how long the answer is current (``nextUpdate`` after now).

        Returns:
            The DER ``OCSPResponse``.

        Raises:
            ValueError: a ``next_update`` that is not positive.
        """
        from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
        from cryptography.x509 import ocsp  # noqa: PLC0415 - revocation tests only

        if next_update <= _dt.timedelta(0):
            raise ValueError(f"next_update must be positive, not {next_update}")

        def refused(status: ocsp.OCSPResponseStatus) -> bytes:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
                serialization.Encoding.DER
            )

        try:
            asked = ocsp.load_der_ocsp_request(request)
            algorithm = asked.hash_algorithm
            name_hash, key_hash = hashes.Hash(algorithm), hashes.Hash(algorithm)
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm):
            return refused(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        name_hash.update(self.certificate.subject.public_bytes())
        key_hash.update(_public_key_bits(self.certificate))
        ours = (name_hash.finalize(), key_hash.finalize())
        if (asked.issuer_name_hash, asked.issuer_key_hash) != ours:
            return refused(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        serial = asked.serial_number
        revoked = self._revoked.get(serial)
        now = _utcnow().replace(microsecond=0)
        # A minute back for a client's clock; never after a revocation it reports.
        this_update = now - _dt.timedelta(minutes=1)
        if revoked is not None:
            this_update = min(this_update, revoked[0])
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=asked.issuer_name_hash,
            issuer_key_hash=asked.issuer_key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=(
                ocsp.OCSPCertStatus.REVOKED if revoked is not None
                else ocsp.OCSPCertStatus.GOOD if serial in self._issued
                else ocsp.OCSPCertStatus.UNKNOWN
            ),
            this_update=this_update,
            next_update=now + next_update,
            revocation_time=revoked[0] if revoked is not None else None,
            revocation_reason=revoked[1] if revoked is not None else None,
        )  # fmt: skip
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
        for extension in asked.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        signed = builder.sign(self.private_key, _hash_for(self.private_key))
        return signed.public_bytes(serialization.Encoding.DER)

    def openssl_index(self) -> str:
        """The ``index.txt`` of ``openssl ocsp -index`` (or ``openssl ca``) for what this CA
        issued: ``V`` (valid) or ``R`` (revoked, with time and reason) per certificate.

        A serial this CA did not issue is absent, so the responder answers "unknown".
        """
        lines = []
        for serial, cert in self._issued.items():
            hex_serial = f"{serial:X}"
            hex_serial = "0" * (len(hex_serial) % 2) + hex_serial  # OpenSSL's BN_bn2hex form
            expiry = _dates.not_after(cert).strftime("%y%m%d%H%M%SZ")
            subject = "/" + "/".join(
                f"{a.rfc4514_attribute_name}={a.value!s}" for a in cert.subject
            )
            revoked = self._revoked.get(serial)
            if revoked is None:
                lines.append(f"V\t{expiry}\t\t{hex_serial}\tunknown\t{subject}")
            else:
                at, flag = revoked
                when = at.strftime("%y%m%d%H%M%SZ")
                if flag is not None:
                    when += f",{flag.value}"
                lines.append(f"R\t{expiry}\t{when}\t{hex_serial}\tunknown\t{subject}")
        return "".join(line + "\n" for line in lines)

    def issue_cert(
        self,
        *identities: Identity,
        common_name: str | None = None,
        organization: str | None = None,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key_type: CAKeyType | None = None,
        server_auth: bool = True,
        client_auth: bool = True,
    ) -> IssuedIdentity:
        """Issue a new key and certificate.

        Args:
            *identities: DNS names (``"localhost"``, ``"*.example.com"``, IDNs),
                IP addresses (strings or :mod:`ipaddress` objects), emails
                (``"a@example.com"``) or URIs (``"spiffe://example.org/svc"``); each
                becomes a subject alternative name.
            common_name: the subject CN; defaults to the first identity (left out
                when longer than the 64 characters X.509 allows).
            organization: the subject's ``O=``; defaults to the CA's.
            not_before: start of validity (timezone-aware); defaults to an hour ago,
                or to a year before a ``not_after`` already past. A future value
                makes a not-yet-valid certificate.
            not_after: end of validity (timezone-aware); defaults to a year after
                ``not_before`` or now, whichever is later. A past value makes an
                expired certificate (``not_before`` may then be left out).
            key_type: ``"EC"``, ``"RSA"`` or ``"Ed25519"``; defaults to the CA's.
            server_auth: include the ``serverAuth`` extended key usage.
            client_auth: include the ``clientAuth`` extended key usage.

        Returns:
            The identity: key, leaf and chain. The CA itself is not changed.

        Raises:
            ValueError: no identity and no common name, a malformed identity, naive
                datetimes, ``not_after`` not after ``not_before``, an unknown key
                type, or neither usage.
        """
        if not identities and not common_name:
            raise ValueError("give at least one identity (DNS name, IP, email) or a common_name")
        if not (server_auth or client_auth):
            raise ValueError("a certificate needs server_auth, client_auth or both")
        names = [_general_name(i) for i in identities]
        kind = _normalize_key_type(key_type or self.key_type)
        key = _new_key(kind)
        start, end = _validity(not_before, not_after, default_days=365)
        if common_name is None and identities:
            first = str(identities[0]).strip()
            common_name = first if len(first) <= _CN_MAX else None
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization or self.organization)
        ]
        if common_name:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        leaf = self._sign_leaf(
            x509.Name(attributes), key.public_key(), names, start=start, end=end,
            server_auth=server_auth, client_auth=client_auth,
        )  # fmt: skip
        return IssuedIdentity(
            private_key=key, chain=(leaf, *self._intermediates), ca=self, identities=identities
        )

    def sign_request(
        self,
        request: x509.CertificateSigningRequest | bytes | os.PathLike[str],
        *,
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        server_auth: bool = True,
        client_auth: bool = True,
    ) -> tuple[x509.Certificate, ...]:
        """Answer a certificate signing request, as a CA does: a certificate for the
        request's key, subject and subject alternative names (what
        :meth:`mtls.Keystore.certificate_request` and ``keytool -certreq`` make).

        Args:
            request: the request, its PEM or DER bytes, or its file (a ``Path``).
            not_before: start of validity, as for :meth:`issue_cert`.
            not_after: end of validity, as for :meth:`issue_cert`.
            server_auth: include the ``serverAuth`` extended key usage.
            client_auth: include the ``clientAuth`` extended key usage.

        Returns:
            The reply: the new certificate and this CA's intermediates, leaf first
            (what :meth:`mtls.Keystore.install_reply` takes).

        Raises:
            mtls.KeystoreFormatError: bytes that are not a request, a request whose
                signature does not verify (not made with the key it names), as
                :meth:`mtls.Keystore.sign_request` says it.
            mtls.KeystoreError: the request's file cannot be read.
            ValueError: neither ``server_auth`` nor ``client_auth``, dates as for
                :meth:`issue_cert`.
        """
        from .._issuing import read_request, request_input  # noqa: PLC0415 - renewal tests only

        data, request_path = request_input(request)
        # Not to_sign's check: that keeps a keystore's own key as it holds it; a test CA
        # signs any key cryptography reads (compressed points, RSA-PSS), as it did.
        request, _ = read_request(data, path=request_path, to_sign=False)
        if not (server_auth or client_auth):
            raise ValueError("a certificate needs server_auth, client_auth or both")
        try:
            names = list(
                request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            )
        except x509.ExtensionNotFound:
            names = []
        start, end = _validity(not_before, not_after, default_days=365)
        leaf = self._sign_leaf(
            request.subject, _x509.public_key(request), names, start=start, end=end,
            server_auth=server_auth, client_auth=client_auth,
        )  # fmt: skip
        return (leaf, *self._intermediates)

    def _sign_leaf(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        names: list[x509.GeneralName],
        *,
        start: _dt.datetime,
        end: _dt.datetime,
        server_auth: bool,
        client_auth: bool,
    ) -> x509.Certificate:
        """A leaf certificate for ``public_key`` signed by this CA, recorded as issued."""
        usages: list[x509.ObjectIdentifier] = []
        if server_auth:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())  # positive, 159 random bits
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # RSA key exchange (TLS 1.2 without ECDHE) encrypts to the key.
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski), False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = self._locations(builder)
        leaf = _sign(builder, self.private_key)
        self._issued[leaf.serial_number] = leaf
        return leaf

    def truststore(self, alias: str = "ca") -> Truststore:
        """A new :class:`mtls.Truststore` with this CA's certificate as its one anchor.

        Only this CA's own certificate is included: for an intermediate, peers are
        trusted through it alone (Java semantics: every truststore entry is an
        anchor). Use ``ca.root.truststore()`` to trust the whole hierarchy.

        Args:
            alias: the entry's alias.
        """
        store = Truststore()
        store.add(alias, self.certificate)
        return store

    def write_truststore(
        self,
        path: str | os.PathLike[str],
        password: str | Secret,
        *,
        store_type: WriteFormat | None = None,
        alias: str = "ca",
    ) -> Path:
        """Write :meth:`truststore` to a file keytool and :meth:`mtls.Truststore.load` read.

        Args:
            path: the file to write (atomically).
            password: the store password (ignored for ``"PEM"``).
            store_type: ``"JKS"``, ``"PKCS12"`` or ``"PEM"``; by default the one the
                file's name says (``.p12``/``.pfx``, ``.jks``, ``.pem``/``.crt``/``.cer``),
                else JKS.
            alias: the entry's alias.

        Returns:
            The path written.

        Raises:
            ValueError: an unknown store type.
            OSError: the file cannot be written; an existing file is left as it was.
        """
        self.truststore(alias).save(path, password, store_type=store_type)
        return Path(path)

    def __repr__(self) -> str:
        kind = "root" if self.parent is None else f"intermediate under {self.parent.name!r}"
        return f"<CA {self.name!r} ({self.key_type}, {kind})>"
