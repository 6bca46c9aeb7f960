"""A small test PKI: two unrelated CAs and the identities the store and context tests need.

Made with :class:`mtls.testing.CA` (itself checked against keytool and openssl in
tests/testing/): what is tested here is how mtls reads, writes and uses keys and chains,
not who issued them. ``Identity`` keeps each key with its whole chain (leaf first, root
last) in the forms the tests write files in.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import mtls
from mtls.testing import CA


@dataclass
class Identity:
    """A private key and its chain (leaf first), in every form the tests need."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]
    ca: CA | None = None  # set when this identity is a CA: what issues below it

    @property
    def cert(self) -> x509.Certificate:
        return self.chain[0]

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def key_pem(self, password: str | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def keystore(self, alias: str = "client") -> mtls.Keystore:
        ks = mtls.Keystore()
        ks.add_key(alias, self.key, self.chain)
        return ks

    def write_pem(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """certfile (chain) and keyfile, as raw ssl.load_cert_chain takes them."""
        certfile, keyfile = directory / f"{stem}.crt", directory / f"{stem}.key"
        certfile.write_bytes(self.chain_pem())
        keyfile.write_bytes(self.key_pem())
        return certfile, keyfile

    def key_b64_fragments(self) -> list[str]:
        """Pieces of the key's base64 that must never show in a repr, log or message."""
        body = base64.b64encode(self.key_der()).decode()
        return [body[i : i + 24] for i in range(0, len(body) - 24, 96)]


def issue(
    subject: str,
    issuer: Identity | None,
    *,
    key_type: Literal["EC", "RSA"] = "EC",
    ca: bool = False,
    san: tuple[str, ...] = (),
    days: float = 365,
    started: float | None = None,
) -> Identity:
    """A new key and certificate for ``subject``, valid for ``days`` from now (negative: expired).

    ``started``: valid since that many days ago (``None``: the test CA's default). A
    certificate near its end after a long validity (an expiry warning is given only
    when it says something of the validity: a 10-day certificate is not "expiring" at
    its start).

    ``issuer`` None makes a root CA (``ca`` must then be true); ``ca`` with an issuer makes an
    intermediate. The chain runs from the new certificate up to the root.
    """
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    if ca:
        if issuer is None:
            authority = CA(key_type=key_type, name=subject, not_after=not_after)
        else:
            assert issuer.ca is not None, "the issuer is not a CA"
            authority = issuer.ca.create_child_ca(name=subject, key_type=key_type)
        above = issuer.chain if issuer else []
        return Identity(authority.private_key, [authority.certificate, *above], authority)  # type: ignore[arg-type]
    assert issuer is not None and issuer.ca is not None, "a leaf needs a CA to issue it"
    not_before = None if started is None else not_after - dt.timedelta(days=days + started)
    leaf = issuer.ca.issue_cert(
        *san, common_name=subject, not_before=not_before, not_after=not_after, key_type=key_type
    )
    return Identity(leaf.private_key, [leaf.certificate, *issuer.chain])  # type: ignore[arg-type]


@dataclass
class PKI:
    """Two unrelated CAs and the identities the handshake tests need."""

    root: Identity
    server: Identity  # SAN localhost, 127.0.0.1; issued by root
    client: Identity  # RSA, issued by root (chain: client, root)
    client_ec: Identity  # EC, issued by root
    other_root: Identity  # a CA nobody trusts
    other_server: Identity  # localhost, issued by other_root
    other_client: Identity  # issued by other_root

    def truststore(self, *identities: Identity) -> mtls.Truststore:
        ts = mtls.Truststore()
        for n, ident in enumerate(identities or (self.root,)):
            ts.add(f"anchor-{n}", ident.cert)
        return ts


def make_pki() -> PKI:
    """A fresh :class:`PKI` (the session's is the ``pki`` fixture of tests/conftest.py)."""
    root = issue("mtls test root", None, ca=True, days=3650)
    other = issue("mtls other root", None, ca=True, days=3650)
    return PKI(
        root=root,
        server=issue("localhost", root, san=("localhost", "127.0.0.1")),
        client=issue("client rsa", root, key_type="RSA"),
        client_ec=issue("client ec", root),
        other_root=other,
        other_server=issue("localhost", other, san=("localhost", "127.0.0.1")),
        other_client=issue("other client", other),
    )


def _outer_content(der: bytes) -> bytes:
    """The content of a DER element's outer SEQUENCE (its header dropped)."""
    return der[2 if der[1] < 0x80 else 2 + (der[1] & 0x7F) :]


def indefinite_length(der: bytes) -> bytes:
    """``der`` with its outer SEQUENCE re-encoded with an indefinite length (BER, which
    the JDK and OpenSSL both read)."""
    return b"\x30\x80" + _outer_content(der) + b"\0\0"


def five_byte_length(der: bytes) -> bytes:
    """``der`` with its outer length written in five bytes (the JDK refuses it; OpenSSL
    skips the leading zeros)."""
    content = _outer_content(der)
    return b"\x30\x85" + len(content).to_bytes(5, "big") + content


def _leaf_builder(
    ca: CA, names: tuple[str, ...], cn: str, *, rsa_key: bool = False
) -> tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, x509.CertificateBuilder]:
    """A new EC (or RSA 2048) key and a certificate builder for it, issued by ``ca``
    for ``names``, valid for 90 days: the extensions are the caller's."""
    from cryptography.x509.oid import NameOID

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    )
    return key, builder


def duplicate_extension(ca: CA, *names: str, server: bool = False) -> mtls.Keystore:
    """A keystore whose certificate (issued by ``ca`` for ``names``) carries the same
    private, non-critical extension twice: OpenSSL takes it, cryptography's builder
    cannot make it (made with two OIDs, one renamed in the signed bytes) and its
    ``extensions`` raises ``DuplicateExtension``, which is not a ``ValueError``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from mtls import _der

    one, two = "1.3.6.1.4.1.99999.1", "1.3.6.1.4.1.99999.2"
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    key, builder = _leaf_builder(ca, names, "duplicated")
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
    for oid in (one, two):
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00"), False
        )
    cert = builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    tbs = cert.tbs_certificate_bytes.replace(_der.encode_oid(two), _der.encode_oid(one))
    forged = _resigned(ca, cert, tbs)
    store = mtls.Keystore()
    store.add_key("client", key, [x509.load_der_x509_certificate(forged), ca.certificate])
    return store


def any_eku_only(
    ca: CA, *names: str, also: tuple[x509.ObjectIdentifier, ...] = ()
) -> mtls.Keystore:
    """A keystore whose certificate (issued by ``ca`` for ``names``) has an extended key
    usage of anyExtendedKeyUsage alone (or with ``also``): Java and Go take it for
    either role, OpenSSL refuses it for a role whose own usage is not among ``also``
    ("unsuitable certificate purpose")."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, builder = _leaf_builder(ca, names, "any usage")
    usages = [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, *also]
    cert = builder.add_extension(x509.ExtendedKeyUsage(usages), False).sign(
        ca.private_key,  # type: ignore[arg-type]
        hashes.SHA256(),
    )
    store = mtls.Keystore()
    store.add_key("client", key, [cert, ca.certificate])
    return store


def encipher_only(ca: CA, cn: str) -> mtls.Keystore:
    """A keystore whose certificate (issued by ``ca``, common name ``cn``) has a key
    usage of keyEncipherment alone (no digitalSignature: it cannot sign a
    CertificateVerify): OpenSSL, Java and GnuTLS servers refuse it, Go and rustls do
    not check."""
    return key_usage_only(ca, ("gateway",), cn, "key_encipherment")


def key_usage_only(
    ca: CA, names: tuple[str, ...], cn: str, *bits: str, rsa_key: bool = False
) -> mtls.Keystore:
    """A keystore whose certificate (an EC key, or RSA with ``rsa_key``, issued by
    ``ca`` for ``names``) has a critical key usage allowing ``bits`` alone
    (cryptography's names: ``key_agreement``, ``digital_signature``, ...)."""
    from cryptography.hazmat.primitives import hashes

    usage = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    usage.update(dict.fromkeys(bits, True))
    key, builder = _leaf_builder(ca, names, cn, rsa_key=rsa_key)
    cert = builder.add_extension(x509.KeyUsage(**usage), critical=True).sign(
        ca.private_key,  # type: ignore[arg-type]
        hashes.SHA256(),
    )
    store = mtls.Keystore()
    store.add_key("client", key, [cert, ca.certificate])
    return store


def mismatched(key: object, chain: list[x509.Certificate], alias: str = "k") -> mtls.Keystore:
    """A keystore whose key entry ``alias`` holds ``key`` under another key's ``chain``
    (as a key.pem and a cert.pem from two renewals put together make one):
    ``Keystore.add_key`` refuses the pair, so it is put in by the entries themselves."""
    from mtls._entries import KeyEntry

    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    store = mtls.Keystore()
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain_der = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
    store._entries.add_key(KeyEntry(alias, pkcs8, chain_der))
    return store


def skip_unless_openssl_reads(cert_pem: bytes) -> None:
    """Skip the test when the OpenSSL under ``ssl`` reads no such certificate: 3.0 reads
    validity times without seconds or with an offset (and refuses them only when it
    verifies), 3.6 does not read the certificate at all (h206), and a store holding it
    is refused with that said (tests/stores/test_lenient_x509.py)."""
    import ssl

    import pytest

    from mtls import _x509

    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    if _x509.openssl_refusal(der) is not None:
        pytest.skip(f"{ssl.OPENSSL_VERSION} reads no certificate with such validity times")


def odd_validity(
    ca: CA, cn: str, not_after: bytes, *, tag: int = 0x17, not_before: bytes | None = None
) -> tuple[bytes, bytes]:
    """A private key (PEM) and its certificate (PEM, issued by ``ca``), whose notAfter is ``not_after`` as
    written, under ``tag`` (UTCTime; 0x18 GeneralizedTime), in a form DER forbids and
    OpenSSL and Java read (no seconds, a fraction, an offset): cryptography refuses
    the certificate. Signed by ``ca`` over the bytes as written. ``not_before``: a
    UTCTime written as given (an hour ago when unsaid)."""
    from cryptography.hazmat.primitives import hashes

    from mtls import _der

    key, builder = _leaf_builder(ca, ("localhost",), cn)
    cert = builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    tbs = cert.tbs_certificate_bytes
    first = _der.header(tbs)[1]
    fields = _der.spans(tbs, first)  # [0] version, serial, signature, issuer, validity, ...
    at = 4 if fields[0][0] == 0xA0 else 3
    begin, end = fields[at - 1][2], fields[at][2]
    nb_tag, nb_start, nb_end = _der.spans(tbs, fields[at][1], end)[0]
    start = (
        _der.encode(nb_tag, tbs[nb_start:nb_end])
        if not_before is None
        else (_der.encode(0x17, not_before))
    )
    validity = _der.encode(_der.SEQUENCE, start + _der.encode(tag, not_after))
    tbs = _der.encode(_der.SEQUENCE, tbs[first:begin] + validity + tbs[end:])
    forged = _resigned(ca, cert, tbs)
    body = base64.encodebytes(forged).replace(b"\n", b"")
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem = b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, pem


def _resigned(ca: CA, cert: x509.Certificate, tbs: bytes) -> bytes:
    """``cert`` with ``tbs`` (its to-be-signed part, edited) in place, signed by ``ca``
    (an EC CA) over the bytes as given: what a builder refuses to make."""
    from cryptography.hazmat.primitives import hashes

    from mtls import _der

    signature = ca.private_key.sign(tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, arg-type]
    der = cert.public_bytes(serialization.Encoding.DER)
    (_, algorithm_start, algorithm_stop) = _der.spans(der, *_der.single_span(der, _der.SEQUENCE))[1]
    algorithm = _der.encode(_der.SEQUENCE, der[algorithm_start:algorithm_stop])
    return _der.encode(
        _der.SEQUENCE, tbs + algorithm + _der.encode(_der.BIT_STRING, b"\0" + signature)
    )
