"""Keys and chains in PEM files are matched by their DER bytes, with cryptography's
normalised comparison as the fallback when the bytes differ (issue #13's fast path).

Each case here is one the byte comparison cannot decide on its own: the result must
be what the normalised comparison gives.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

import mtls
from mtls import _der, _readers, _x509
from mtls.testing import CA

NOW = dt.datetime.now(dt.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _cert(
    subject: x509.Name, issuer: x509.Name, key, signer, *, ca: bool, days=(-1, 30)
) -> x509.Certificate:  # type: ignore[no-untyped-def]
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=days[0]))
        .not_valid_after(NOW + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _name(cn: str, string_type: _ASN1Type | None = None) -> x509.Name:
    if string_type is None:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _type=string_type)])


def _pkcs8_without_public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 whose ECPrivateKey omits its optional [1] publicKey (as Java writes them)."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    version, algorithm, private = _der.read_single(der, _der.SEQUENCE).children()
    fields = _der.read_single(private.value, _der.SEQUENCE).children()
    kept = b"".join(_der.encode(f.tag, f.value) for f in fields if f.tag != 0xA1)
    inner = _der.encode(_der.SEQUENCE, kept)
    return _der.encode(
        _der.SEQUENCE,
        _der.encode(version.tag, version.value)
        + _der.encode(algorithm.tag, algorithm.value)
        + _der.encode(_der.OCTET_STRING, inner),
    )


def _key_block(pkcs8: bytes) -> bytes:
    body = __import__("base64").encodebytes(pkcs8)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("key_type", ["RSA", "EC"])
def test_the_byte_path_reads_the_public_key_from_the_private_key(key_type: str) -> None:
    ident = CA(key_type=key_type).issue_cert("leaf", key_type=key_type)
    _, key_der, chain = ident.keystore().key_entry()
    names = _x509.raw_names(chain[0])
    assert names is not None
    assert _readers._spki_of_private(key_der) == names[2]
    other = CA(key_type=key_type).issue_cert("other", key_type=key_type).keystore().key_entry()
    assert _readers._spki_of_private(other[1]) != names[2]


def test_an_ec_key_without_its_public_point_is_matched_by_the_fallback(tmp_path: Path) -> None:
    ca = CA(key_type="EC")
    ident = ca.issue_cert("leaf", key_type="EC")
    decoy = ca.issue_cert("decoy", key_type="EC")
    key = serialization.load_pem_private_key(ident.private_key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    pkcs8 = _pkcs8_without_public_point(key)
    assert _readers._spki_of_private(pkcs8) is None  # the byte path cannot tell
    # The decoy comes first: only a real key comparison picks the right certificate.
    path = tmp_path / "id.pem"
    path.write_bytes(decoy.cert_pem + _key_block(pkcs8) + ident.cert_pem + ca.cert_pem)
    store = mtls.Keystore.load(path, None)
    (entry,) = [store.key_entry(a) for a in store.key_aliases]
    assert entry[2][0] == x509.load_pem_x509_certificate(ident.cert_pem).public_bytes(
        serialization.Encoding.DER
    )
    mtls.client_context(store, mtls.Truststore.from_bytes(ca.cert_pem))
    # Negative twin: the key with only the decoy's certificate has no match.
    lonely = tmp_path / "lonely.pem"
    lonely.write_bytes(decoy.cert_pem + _key_block(pkcs8))
    with pytest.raises(mtls.KeyEntryError, match="no matching certificate") as caught:
        mtls.Keystore.load(lonely, None)
    # Said as it is: the file has a certificate, another one (h166: "put the certificate
    # in the same PEM file" sent the reader looking for a missing one).
    assert "none of its 1 certificate is for this key" in str(caught.value)
    only_key = tmp_path / "only-key.pem"
    only_key.write_bytes(_key_block(pkcs8))
    with pytest.raises(mtls.KeystoreError) as caught:
        mtls.Keystore.load(only_key, None)
    assert "none of its" not in str(caught.value)


def test_an_issuer_name_in_another_string_type_still_chains(tmp_path: Path) -> None:
    """The leaf names its issuer in PrintableString, the CA calls itself UTF8String:
    different bytes, equal names (RFC 5280 7.1). The chain must still be built."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert(_name("Mixed CA"), _name("Mixed CA"), ca_key, ca_key, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _cert(
        _name("leaf"), _name("Mixed CA", _ASN1Type.PrintableString), leaf_key, ca_key, ca=False
    )
    raw_leaf = _x509.raw_names(leaf.public_bytes(serialization.Encoding.DER))
    raw_ca = _x509.raw_names(ca_cert.public_bytes(serialization.Encoding.DER))
    assert raw_leaf is not None and raw_ca is not None
    assert raw_leaf[0] != raw_ca[1]  # the byte path alone would stop at the leaf
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "id.pem"
    path.write_bytes(_pem(ca_cert) + key_pem + _pem(leaf))
    (alias,) = mtls.Keystore.load(path, None).key_aliases
    chain = mtls.Keystore.load(path, None).key_entry(alias)[2]
    assert len(chain) == 2
    assert chain[1] == ca_cert.public_bytes(serialization.Encoding.DER)
    # Negative twin: a CA with another name is not taken as the issuer.
    stranger = _cert(_name("Other CA"), _name("Other CA"), ca_key, ca_key, ca=True)
    path.write_bytes(_pem(stranger) + key_pem + _pem(leaf))
    store = mtls.Keystore.load(path, None)
    assert len(store.key_entry(store.key_aliases[0])[2]) == 1
    assert len(store.trusted_aliases) == 1  # the stranger stays a certificate entry


def _pem_block(der: bytes) -> bytes:
    body = __import__("base64").encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _ber_copy(der: bytes) -> bytes:
    """The same certificate with a non-minimal (BER) outer length: cryptography refuses it."""
    outer = _der.read_tlv(der)
    return b"\x30\x84" + len(outer.value).to_bytes(4, "big") + outer.value


def test_a_certificate_cryptography_refuses_never_wins_a_match(tmp_path: Path) -> None:
    """Our DER walker alone would read a BER copy placed first; it must not be taken for
    the key's certificate nor for an issuer (the parsed comparison never took it)."""
    ca = CA()
    ident = ca.issue_cert("good")
    good = x509.load_pem_x509_certificate(ident.cert_pem).public_bytes(serialization.Encoding.DER)
    ca_der = x509.load_pem_x509_certificate(ca.cert_pem).public_bytes(serialization.Encoding.DER)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(_ber_copy(good))
    path = tmp_path / "id.pem"
    path.write_bytes(
        ident.private_key_pem
        + _pem_block(_ber_copy(good))
        + _pem_block(good)
        + _pem_block(_ber_copy(ca_der))
        + _pem_block(ca_der)
    )
    store = mtls.Keystore.load(path, None)
    assert store.key_aliases == ("good",)
    assert store.key_entry("good")[2] == (good, ca_der)
    # Negative twin: with only the BER copy, the key has no certificate, as before.
    path.write_bytes(ident.private_key_pem + _pem_block(_ber_copy(good)))
    with pytest.raises(mtls.KeystoreError):
        mtls.Keystore.load(path, None)


def _without_null_parameters(pkcs8: bytes) -> bytes:
    """An RSA PKCS#8 whose AlgorithmIdentifier omits the NULL (some encoders do)."""
    version, algorithm, private = _der.read_single(pkcs8, _der.SEQUENCE).children()
    oid = algorithm.children()[0]
    return _der.encode(
        _der.SEQUENCE,
        _der.encode(version.tag, version.value)
        + _der.encode(_der.SEQUENCE, _der.encode(oid.tag, oid.value))
        + _der.encode(private.tag, private.value),
    )


def test_keys_the_byte_path_cannot_read_are_matched_by_the_fallback(tmp_path: Path) -> None:
    """Ed25519 keys give no bytes to compare, and an RSA key whose AlgorithmIdentifier
    omits its NULL gives bytes no certificate has: the parsed comparison pairs them."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert(_name("Fallback CA"), _name("Fallback CA"), ca_key, ca_key, ca=True)
    decoy = _cert(_name("decoy"), _name("Fallback CA"), ca_key, ca_key, ca=False)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for key in (ed_key, rsa_key):
        leaf = _cert(_name("leaf"), _name("Fallback CA"), key, ca_key, ca=False)
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if key is rsa_key:
            pkcs8 = _without_null_parameters(pkcs8)
        spki = _x509.raw_names(leaf.public_bytes(serialization.Encoding.DER))
        assert spki is not None and _readers._spki_of_private(pkcs8) != spki[2]
        path = tmp_path / "id.pem"
        path.write_bytes(_pem(decoy) + _key_block(pkcs8) + _pem(leaf) + _pem(ca_cert))
        store = mtls.Keystore.load(path, None)
        (alias,) = store.key_aliases
        chain = store.key_entry(alias)[2]
        assert chain == (
            leaf.public_bytes(serialization.Encoding.DER),
            ca_cert.public_bytes(serialization.Encoding.DER),
        )


@pytest.mark.parametrize("other", ["rekeyed", "expired"])
def test_the_issuer_that_signed_the_leaf_is_chained_whatever_the_file_order(other: str) -> None:
    """Two intermediates of one name in one PEM file, the wrong one first: a CA that
    re-keyed its intermediate (the old one, another key), or renewed it (the old one
    expired). The chain took the first by name, and the backend refused the handshake
    (unknown CA, certificate expired) where OpenSSL's load_cert_chain of the same file
    succeeds. The one whose key signed the leaf, valid now, is chained."""
    root_key, int_key, leaf_key, old_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    root = _cert(_name("Root"), _name("Root"), root_key, root_key, ca=True, days=(-10, 3650))
    good = _cert(_name("Intermediate"), _name("Root"), int_key, root_key, ca=True, days=(-10, 365))
    if other == "rekeyed":
        wrong = _cert(
            _name("Intermediate"), _name("Root"), old_key, root_key, ca=True, days=(-10, 365)
        )
    else:
        wrong = _cert(
            _name("Intermediate"), _name("Root"), int_key, root_key, ca=True, days=(-800, -400)
        )
    leaf = _cert(_name("leaf"), _name("Intermediate"), leaf_key, int_key, ca=False)
    key = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ks = mtls.Keystore.from_bytes(key + b"".join(map(_pem, (leaf, wrong, good, root))), None)
    assert ks.certificate_chain(ks.key_aliases[0]) == (leaf, good, root)
    # Twin: with the right one first, the same chain.
    ks = mtls.Keystore.from_bytes(key + b"".join(map(_pem, (leaf, good, wrong, root))), None)
    assert ks.certificate_chain(ks.key_aliases[0]) == (leaf, good, root)
