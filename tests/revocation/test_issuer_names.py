"""A certificate whose issuer name is written otherwise than its CA's subject (another
case, spacing or string type: RFC 5280 section 7.1 makes them one name, and OpenSSL and
Java verify such chains) is checked against that CA: the online check refused every
such backend under hard-fail ("its issuer is neither in the verified chain nor in the
truststore") without asking anyone (h165 HIGH). Real OCSP and CRL answers over
loopback from mtls.testing's RevocationServer; each case with its revoked twin, and a
certificate of the same name signed by another key stays unknown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

import mtls
from mtls import _x509
from mtls.testing import CA, RevocationServer
from tests.revocation._infra import CRLServer, free_port, leaf_naming, ocsp_responder

NOW = dt.datetime.now(dt.UTC)


def _name(org: str, cn: str, kind: _ASN1Type = _ASN1Type.UTF8String) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org, kind),
            x509.NameAttribute(NameOID.COMMON_NAME, cn, kind),
        ]
    )


# The CA's subject is O=Acme, CN=Acme Issuing CA (UTF8String, as CA() writes it).
WRITTEN_OTHERWISE = {
    "upper-cased": _name("ACME", "ACME ISSUING CA"),
    "spaced": _name(" Acme", "Acme  Issuing\tCA "),
    "PrintableString": _name("Acme", "Acme Issuing CA", _ASN1Type.PrintableString),
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[CA, RevocationServer]]:
    with RevocationServer() as responder:
        ca = CA(name="Acme Issuing CA", organization="Acme", key_type="EC",
                ocsp_url=responder.ocsp_url, crl_url=responder.crl_url)  # fmt: skip
        assert ca.certificate.subject == _name("Acme", "Acme Issuing CA")
        responder.serve(ca)
        yield ca, responder


def _leaf(
    served: tuple[CA, RevocationServer],
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ocsp: bool = True,
) -> x509.Certificate:
    """A certificate naming ``issuer``, signed by ``signer``, pointing at the served
    responder (OCSP and CRL, or the CRL only)."""
    _, responder = served
    return leaf_naming(
        issuer, signer, ocsp_url=responder.ocsp_url if ocsp else None, crl_url=responder.crl_url
    )


def _check(cert: x509.Certificate, ca: CA) -> tuple[mtls.CertificateStatus, ...]:
    checker = mtls.RevocationChecker(mtls.RevocationPolicy(mode="hard", timeout=10))
    return checker.check(
        [cert.public_bytes(Encoding.DER)], [ca.certificate.public_bytes(Encoding.DER)],
        host="backend",
    )  # fmt: skip


@pytest.mark.parametrize("spelling", sorted(WRITTEN_OTHERWISE))
@pytest.mark.parametrize("ocsp", [True, False], ids=["ocsp", "crl"])
def test_an_issuer_name_written_otherwise_is_still_its_ca(
    served: tuple[CA, RevocationServer], spelling: str, ocsp: bool
) -> None:
    ca, _ = served
    issuer = WRITTEN_OTHERWISE[spelling]
    assert issuer.public_bytes() != ca.certificate.subject.public_bytes()
    good = _leaf(served, issuer, ca.private_key, ocsp=ocsp)  # type: ignore[arg-type]
    ca._issued[good.serial_number] = good  # what the responder answers "good" for
    (status,) = _check(good, ca)
    assert status.status == "good", status.why
    assert status.source is not None and status.source.startswith("OCSP" if ocsp else "CRL")
    # The twin: revoked, refused.
    revoked = _leaf(served, issuer, ca.private_key, ocsp=ocsp)  # type: ignore[arg-type]
    ca._issued[revoked.serial_number] = revoked
    ca.revoke(revoked)
    with pytest.raises(mtls.CertificateRevokedError):
        _check(revoked, ca)


def test_openssl_ocsp_answers_for_such_a_certificate(openssl_bin: str, tmp_path: Path) -> None:
    """The request names the issuer by the hash of the CA certificate's subject, as
    OpenSSL and Java write it: cryptography's request hashed the name as the
    certificate writes it, and `openssl ocsp` found no CA for it (OCSP only: no CRL
    to fall back on)."""
    ca = CA(name="Acme Issuing CA", organization="Acme", key_type="EC")
    url = f"http://127.0.0.1:{free_port()}/"

    issuer = WRITTEN_OTHERWISE["upper-cased"]
    good = leaf_naming(issuer, ca.private_key, ocsp_url=url)  # type: ignore[arg-type]
    revoked = leaf_naming(issuer, ca.private_key, ocsp_url=url)  # type: ignore[arg-type]
    for cert in (good, revoked):
        ca._issued[cert.serial_number] = cert
    ca.revoke(revoked)
    with ocsp_responder(openssl_bin, ca, tmp_path, port=int(url.rsplit(":", 1)[1][:-1])):
        (status,) = _check(good, ca)
        assert status.status == "good" and status.source == f"OCSP {url}", status.why
        with pytest.raises(mtls.CertificateRevokedError, match="OCSP"):
            _check(revoked, ca)


def test_a_crl_naming_its_ca_otherwise_speaks_for_it() -> None:
    """A CRL whose issuer name is written otherwise than the CA's subject, signed by
    the CA (OpenSSL takes it): it was "not signed by the issuer"; the revoked
    certificate it lists is refused, the one it does not list is good, and the same
    list signed by another key is refused."""
    ca = CA(name="Acme Issuing CA", organization="Acme", key_type="EC")
    crls = CRLServer()
    try:
        crl_url = crls.url("/ca.crl")
        good = leaf_naming(ca.certificate.subject, ca.private_key, crl_url=crl_url)  # type: ignore[arg-type]
        revoked = leaf_naming(ca.certificate.subject, ca.private_key, crl_url=crl_url)  # type: ignore[arg-type]

        def crl(signer: ec.EllipticCurvePrivateKey) -> bytes:
            listed = (
                x509.RevokedCertificateBuilder()
                .serial_number(revoked.serial_number)
                .revocation_date(NOW - dt.timedelta(minutes=5))
                .build()
            )
            return (
                x509.CertificateRevocationListBuilder()
                .issuer_name(WRITTEN_OTHERWISE["upper-cased"])
                .last_update(NOW - dt.timedelta(minutes=5))
                .next_update(NOW + dt.timedelta(days=1))
                .add_revoked_certificate(listed)
                .sign(signer, hashes.SHA256())
                .public_bytes(Encoding.DER)
            )

        crls.bodies["/ca.crl"] = crl(ca.private_key)  # type: ignore[arg-type]
        (status,) = _check(good, ca)
        assert status.status == "good", status.why
        with pytest.raises(mtls.CertificateRevokedError):
            _check(revoked, ca)
        crls.bodies["/ca.crl"] = crl(ec.generate_private_key(ec.SECP256R1()))
        with pytest.raises(mtls.RevocationUnknownError, match="not signed by the issuer"):
            _check(good, ca)
    finally:
        crls.close()


def test_the_same_name_signed_by_another_key_is_not_its_issuers(
    served: tuple[CA, RevocationServer],
) -> None:
    ca, responder = served
    asked = len(responder.requests)
    forged = _leaf(
        served, WRITTEN_OTHERWISE["upper-cased"], ec.generate_private_key(ec.SECP256R1())
    )
    with pytest.raises(mtls.RevocationUnknownError, match="its issuer is neither"):
        _check(forged, ca)
    assert len(responder.requests) == asked  # nobody asked about it


def test_names_compare_as_openssl_compares_them() -> None:
    ca_name = _name("Acme", "Acme Issuing CA")
    for other in WRITTEN_OTHERWISE.values():
        assert _x509.same_name(ca_name, other)
    # Not the same name: another word, non-ASCII case (OpenSSL folds ASCII only), an
    # attribute of another type, another order of RDNs.
    assert not _x509.same_name(ca_name, _name("Acme", "Acme Issuing CA 2"))
    # A NumericString and a UTF8String of the same digits (cryptography's == calls them
    # equal, and an lru_cache keyed by the Name answered for both: h169), and an RDN
    # with an attribute twice (a set of one, once canonical, to a frozenset).
    numeric = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "123", _ASN1Type.NumericString)])
    utf8 = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "123", _ASN1Type.UTF8String)])
    assert numeric == utf8  # cryptography's comparison
    assert _x509.same_name(numeric, numeric) and _x509.same_name(utf8, utf8)
    assert not _x509.same_name(numeric, utf8) and not _x509.same_name(utf8, numeric)
    once = x509.Name(
        [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a")])]
    )
    twice = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "a"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "A"),
                ]
            )
        ]
    )
    assert not _x509.same_name(once, twice)
    assert not _x509.same_name(_name("Ä", "x"), _name("ä", "x"))
    assert not _x509.same_name(
        ca_name,
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Acme"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Acme Issuing CA"),
            ]
        ),
    )
    assert not _x509.same_name(
        ca_name,
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "Acme Issuing CA"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            ]
        ),
    )


def test_a_chain_written_with_such_names_is_saved_and_read_whole(tmp_path: Path) -> None:
    """Saving a key entry whose chain links by such a name refused it as "a certificate
    the path never reaches" (the writer followed names byte for byte); reading it
    back gives the chain as keytool reads it."""
    ca = CA(name="Acme Issuing CA", organization="Acme", key_type="EC")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw")]))
        .issuer_name(WRITTEN_OTHERWISE["upper-cased"])
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    store = mtls.Keystore()
    store.add_key("gw", key, [leaf, ca.certificate])
    for kind in ("PKCS12", "JKS"):
        path = tmp_path / f"gw.{kind.lower()}"
        store.save(path, "changeit", store_type=kind)  # type: ignore[arg-type]
        chain = mtls.Keystore.load(path, "changeit").certificate_chain("gw")
        assert [c.subject for c in chain] == [leaf.subject, ca.certificate.subject], kind
