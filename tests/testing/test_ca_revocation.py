"""mtls.testing.CA as revocation infrastructure: locations, revoke, crl, openssl_index."""

from __future__ import annotations

import datetime as _dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID

import mtls
from mtls.testing import CA


def test_locations_are_named_in_what_the_ca_issues() -> None:
    ca = CA(ocsp_url="http://127.0.0.1:1/ocsp", crl_url="http://127.0.0.1:1/ca.crl")
    leaf = ca.issue_cert("localhost").certificate
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "http://127.0.0.1:1/ocsp")
    ]
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in cdp for n in p.full_name or ()] == ["http://127.0.0.1:1/ca.crl"]
    # the twin: a CA without them issues certificates without the extensions
    plain = CA().issue_cert("localhost").certificate
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.AuthorityInformationAccess)


def test_a_child_ca_carries_its_parents_locations_and_names_its_own() -> None:
    root = CA(crl_url="http://127.0.0.1:1/root.crl")
    child = root.create_child_ca(crl_url="http://127.0.0.1:1/child.crl")
    own = child.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert own.value[0].full_name[0].value == "http://127.0.0.1:1/root.crl"  # type: ignore[index]
    leaf = child.issue_cert("x").certificate
    issued = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert issued.value[0].full_name[0].value == "http://127.0.0.1:1/child.crl"  # type: ignore[index]


def test_revoke_lists_the_certificate_in_the_crl_with_reason_and_time() -> None:
    ca = CA()
    kept, revoked = ca.issue_cert("kept"), ca.issue_cert("revoked")
    when = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.UTC)
    ca.revoke(revoked, reason="superseded", when=when)
    crl = x509.load_der_x509_crl(ca.crl())
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == when
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.superseded
    assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None


def test_crl_dates_encoding_and_signer() -> None:
    ca = CA()
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)
    expired = x509.load_der_x509_crl(
        ca.crl(last_update=past, next_update=past + _dt.timedelta(days=1))
    )
    assert expired.next_update_utc is not None
    assert expired.next_update_utc < _dt.datetime.now(_dt.UTC)
    pem = ca.crl(encoding="PEM")
    assert pem.startswith(b"-----BEGIN X509 CRL-----")
    forged = x509.load_pem_x509_crl(ca.crl(encoding="PEM", signer=CA()))
    assert forged.issuer == ca.certificate.subject
    assert not forged.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]


def test_openssl_index_lines() -> None:
    ca = CA()
    good, bad = ca.issue_cert("good"), ca.issue_cert("bad")
    ca.revoke(bad.serial_number, reason=None, when=_dt.datetime(2026, 1, 2, tzinfo=_dt.UTC))
    lines = ca.openssl_index().splitlines()
    assert len(lines) == 2
    fields = {line.split("\t")[3]: line.split("\t") for line in lines}
    serial_good = f"{good.serial_number:X}"
    serial_good = "0" * (len(serial_good) % 2) + serial_good
    assert fields[serial_good][0] == "V" and fields[serial_good][2] == ""
    serial_bad = f"{bad.serial_number:X}"
    serial_bad = "0" * (len(serial_bad) % 2) + serial_bad
    assert fields[serial_bad][0] == "R" and fields[serial_bad][2] == "260102000000Z"
    assert fields[serial_bad][5] == "/O=mtls.testing/CN=bad"


def test_revoke_refuses_unknown_reasons_and_naive_times() -> None:
    ca = CA()
    leaf = ca.issue_cert("x")
    with pytest.raises(ValueError, match="reason must be one of"):
        ca.revoke(leaf, reason="lost")
    with pytest.raises(ValueError, match="timezone-aware"):
        ca.revoke(leaf, when=_dt.datetime(2026, 1, 1))
    ca.revoke(ca.create_child_ca(), reason="cACompromise")
    assert len(x509.load_der_x509_crl(ca.crl())) == 1


def test_revoke_refuses_what_this_ca_did_not_issue() -> None:
    # Such a certificate was listed in crl() but not in openssl_index(), and a server
    # using this CRL refused the leaf as "unable to get certificate CRL", not revoked.
    root = CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("x")
    with pytest.raises(ValueError, match=r"was not issued by this CA \(.*\) but by .*: revoke"):
        root.revoke(leaf)
    with pytest.raises(ValueError, match="not issued by this CA"):
        root.revoke(CA().issue_cert("y").certificate)
    for wrong in ("abc", None, True):
        with pytest.raises(TypeError, match="revoke takes an IssuedIdentity"):
            root.revoke(wrong)  # type: ignore[arg-type]
    assert len(x509.load_der_x509_crl(root.crl())) == 0  # nothing was marked
    # The twins: its own issuer revokes it; a certificate signed with the CA's key but
    # built by hand is the CA's; a bare serial is taken as it is (a list naming a
    # certificate never issued, for negative tests).
    intermediate.revoke(leaf)
    assert leaf.serial_number in {
        r.serial_number for r in x509.load_der_x509_crl(intermediate.crl())
    }
    now = _dt.datetime.now(_dt.UTC)
    by_hand = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "hand")]))
        .issuer_name(root.certificate.subject)
        .public_key(root.private_key.public_key())
        .serial_number(4242)
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=1))
        .sign(root.private_key, hashes.SHA256())
    )
    root.revoke(by_hand)
    root.revoke(0x1234)
    listed = {r.serial_number for r in x509.load_der_x509_crl(root.crl())}
    assert listed == {4242, 0x1234}


def test_crl_encoding_is_checked_and_either_case() -> None:
    ca = CA()
    assert ca.crl(encoding="pem").startswith(b"-----BEGIN X509 CRL-----")
    assert ca.crl(encoding="der")[:1] == b"\x30"
    with pytest.raises(ValueError, match="encoding must be 'DER' or 'PEM', not 'XML'"):
        ca.crl(encoding="XML")  # type: ignore[arg-type]


def test_a_past_next_update_alone_makes_an_expired_crl() -> None:
    """The docs say a past next_update makes an expired CRL; given alone, it raised
    cryptography's "next update must be after the last update" (thisUpdate stayed a
    minute ago)."""
    ca = CA()
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=3)
    crl = x509.load_der_x509_crl(ca.crl(next_update=past))
    assert crl.next_update_utc == past.replace(microsecond=0)
    assert crl.last_update_utc < crl.next_update_utc
    with pytest.raises(mtls.CRLError, match="expired"):
        mtls.client_context(
            truststore=ca.truststore(), crls=mtls.CRLSet.from_bytes(ca.crl(next_update=past))
        )
    # Its twin: both bounds given out of order are still refused, by mtls.
    with pytest.raises(ValueError, match="next_update must be after last_update"):
        ca.crl(last_update=past, next_update=past - _dt.timedelta(days=1))
