"""Which answers the online check uses: an OCSP response without nextUpdate speaks for
its thisUpdate only, and a CRL with a critical extension the check does not process is
not used (RFC 5280 5.2, 5.3). Real fetches over loopback; each case with its twin."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from mtls import RevocationChecker, RevocationPolicy, RevocationUnknownError
from mtls.testing import CA, IssuedIdentity
from tests.revocation._infra import CRLServer


def _now() -> _dt.datetime:
    """Now, read when a test runs: a time read at import is minutes old by the time a
    long run reaches the test (an OCSP answer without nextUpdate is then stale)."""
    return _dt.datetime.now(_dt.UTC)


PRIVATE = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")  # an extension nobody processes


@pytest.fixture
def web() -> Iterator[CRLServer]:
    server = CRLServer()
    try:
        yield server
    finally:
        server.close()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _sign_key(ca: CA) -> ec.EllipticCurvePrivateKey:
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _check(ca: CA, leaf: IssuedIdentity) -> str:
    (status,) = RevocationChecker(RevocationPolicy(mode="hard")).check(
        [_der(leaf.certificate)], [_der(ca.certificate)]
    )
    return status.status


# --------------------------------------------------------------------------- OCSP


def _ocsp_answer(ca: CA, leaf: IssuedIdentity, this_update: _dt.datetime) -> bytes:
    """A signed "good" response without nextUpdate, dated ``this_update``."""
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf.certificate,
            issuer=ca.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this_update,
            next_update=None,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        .sign(_sign_key(ca), hashes.SHA256())
    )
    return response.public_bytes(Encoding.DER)


def test_an_old_ocsp_answer_without_next_update_is_not_todays_status(web: CRLServer) -> None:
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    web.posts["/ocsp"] = _ocsp_answer(ca, leaf, _now() - _dt.timedelta(days=400))
    with pytest.raises(RevocationUnknownError, match=r"stale .*no nextUpdate"):
        _check(ca, leaf)


def test_a_fresh_ocsp_answer_without_next_update_is_used(web: CRLServer) -> None:
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    web.posts["/ocsp"] = _ocsp_answer(ca, leaf, _now() - _dt.timedelta(minutes=1))
    assert _check(ca, leaf) == "good"


# --------------------------------------------------------------------------- CRLs


def _crl(ca: CA, *, critical: bool, on_entry: bool) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(_now() - _dt.timedelta(minutes=1))
        .next_update(_now() + _dt.timedelta(days=1))
    )
    private = x509.UnrecognizedExtension(PRIVATE, b"\x05\x00")
    entry = x509.RevokedCertificateBuilder().serial_number(12345).revocation_date(_now())
    if on_entry:
        entry = entry.add_extension(private, critical=critical)
    else:
        builder = builder.add_extension(private, critical=critical)
    builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(_sign_key(ca), hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("on_entry", [False, True], ids=["on the list", "on an entry"])
def test_a_crl_with_an_unprocessed_critical_extension_is_not_used(
    web: CRLServer, on_entry: bool
) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = _crl(ca, critical=True, on_entry=on_entry)
    with pytest.raises(RevocationUnknownError, match="critical extension mtls does not process"):
        _check(ca, leaf)


@pytest.mark.parametrize("on_entry", [False, True], ids=["on the list", "on an entry"])
def test_the_same_extension_not_critical_is_ignored(web: CRLServer, on_entry: bool) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = _crl(ca, critical=False, on_entry=on_entry)
    assert _check(ca, leaf) == "good"
