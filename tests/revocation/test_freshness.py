"""How old an online answer may be (h142: a differential against Java's
PKIXRevocationChecker and OpenSSL; h143: a review of its fixes).

A CRL without nextUpdate speaks for its thisUpdate only, as an OCSP response does; the
clock skew allowed is Java's 15 minutes, and an answer past it is no answer, whatever it
says, as in Java; a negative serial is looked up, not refused.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from mtls import CertificateRevokedError, RevocationChecker, RevocationUnknownError, _answers
from mtls import _der as asn1  # the project's DER writer: scaffolding for crafted answers
from mtls.testing import CA, IssuedIdentity
from tests._helpers import signed_again
from tests.revocation._infra import CRLServer

MINUTE = _dt.timedelta(minutes=1)


def now() -> _dt.datetime:
    """The time at the call (a module-level time went stale in a long parallel run)."""
    return _dt.datetime.now(_dt.UTC)


DAY = _dt.timedelta(days=1)


@pytest.fixture(scope="module")
def server() -> Iterator[CRLServer]:
    crls = CRLServer()
    yield crls
    crls.close()


def crl(
    ca: CA,
    this_update: _dt.datetime,
    next_update: _dt.datetime | None,
    listed: tuple[IssuedIdentity, x509.ReasonFlags] | None = None,
) -> bytes:
    """``ca``'s CRL with these dates (none for nextUpdate: a list RFC 5280 forbids,
    which cryptography will not build: its nextUpdate is cut out, and signed again)."""
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
    builder = builder.last_update(this_update).next_update(next_update or this_update + DAY)
    if listed is not None:
        who, reason = listed
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(who.certificate.serial_number)
            .revocation_date(now() - DAY)
            .add_extension(x509.CRLReason(reason), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    made = builder.sign(ca.private_key, hashes.SHA256())
    if next_update is not None:
        return made.public_bytes(Encoding.DER)
    # TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, ...
    fields = [
        asn1.encode(f.tag, f.value) for f in asn1.read_tlv(made.tbs_certlist_bytes).children()
    ]
    del fields[4]
    return signed_again(asn1.encode(asn1.SEQUENCE, b"".join(fields)), ca)


def ocsp_answer(
    ca: CA, who: IssuedIdentity, revoked: bool, this_update: _dt.datetime, next_update: _dt.datetime
) -> bytes:
    """An OCSP response signed by the issuer itself."""
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=who.certificate,
        issuer=ca.certificate,
        algorithm=hashes.SHA1(),  # the CertID hash every responder knows
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=this_update,
        next_update=next_update,
        revocation_time=now() - DAY if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(Encoding.DER)


def leaf_of(server: CRLServer, name: str, *, ocsp_url: bool = False) -> tuple[CA, IssuedIdentity]:
    ca = CA(
        crl_url=server.url(f"/{name}.crl"),
        ocsp_url=server.url(f"/{name}/ocsp") if ocsp_url else None,
    )
    return ca, ca.issue_cert("localhost")


def status_of(who: IssuedIdentity) -> str:
    (status,) = RevocationChecker().check(
        [who.certificate.public_bytes(Encoding.DER)],
        [who.ca.certificate.public_bytes(Encoding.DER)],
        host="localhost",
    )
    return status.status


def test_a_crl_without_next_update_speaks_for_its_this_update_only(server: CRLServer) -> None:
    """A list without nextUpdate was current for ever: a replay (CRLs travel over plain
    http) of a year-old one passed a certificate revoked since. Java refuses it. The
    twin: one issued a minute ago is an answer."""
    ca, leaf = leaf_of(server, "no-next")
    server.bodies["/no-next.crl"] = crl(ca, now() - 400 * DAY, None)
    with pytest.raises(RevocationUnknownError, match=r"stale .*and no nextUpdate"):
        status_of(leaf)
    server.bodies["/no-next.crl"] = crl(ca, now() - MINUTE, None)
    assert status_of(leaf) == "good"


@pytest.mark.parametrize(("off", "answers"), [(10, True), (20, False)])
def test_java_s_fifteen_minutes_of_skew(server: CRLServer, off: int, answers: bool) -> None:
    """A list 10 minutes past its nextUpdate is an answer to Java (15 minutes of skew)
    and was refused here (5): hard-fail refused good certificates WSO2 accepts."""
    ca, leaf = leaf_of(server, f"skew-{off}")
    passed = now() - off * MINUTE
    server.bodies[f"/skew-{off}.crl"] = crl(ca, passed - DAY, passed)
    if answers:
        assert status_of(leaf) == "good"
    else:
        with pytest.raises(RevocationUnknownError, match="the CRL expired on"):
            status_of(leaf)


@pytest.mark.parametrize(
    "reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.certificate_hold]
)
def test_an_expired_crl_is_no_answer_whatever_it_lists(
    server: CRLServer, reason: x509.ReasonFlags
) -> None:
    """Past nextUpdate and the skew, a list is not used, as Java's checker does not use
    it (hard-fail refuses: undetermined; soft-fail allows, as Java's SOFT_FAIL)."""
    ca, leaf = leaf_of(server, f"old-{reason.name}")
    server.bodies[f"/old-{reason.name}.crl"] = crl(ca, now() - 3 * DAY, now() - DAY, (leaf, reason))
    with pytest.raises(RevocationUnknownError, match="the CRL expired on"):
        status_of(leaf)


@pytest.mark.parametrize(("late", "revoked"), [(10, True), (20, False)])
def test_an_ocsp_answer_is_read_within_the_skew_and_not_past_it(
    server: CRLServer, late: int, revoked: bool
) -> None:
    """The issuer's responder says revoked, in an answer ``late`` minutes past its
    nextUpdate; the CRL, current, was published before the revocation. Within Java's 15
    minutes the answer stands (revoked; mtls dropped it at 5 and the CRL said good,
    where Java refuses). Past them, Java calls it unreliable and asks the CRL: so does
    mtls (an old "revoked" may be a hold released since: RFC 6960 makes the reason
    optional, and a replayed one would refuse a good backend; h143)."""
    name = f"late-ocsp-{late}"
    ca, leaf = leaf_of(server, name, ocsp_url=True)
    passed = now() - late * MINUTE
    server.posts[f"/{name}/ocsp"] = ocsp_answer(ca, leaf, True, passed - DAY, passed)
    server.bodies[f"/{name}.crl"] = crl(ca, now() - MINUTE, now() + DAY)
    if revoked:
        with pytest.raises(CertificateRevokedError, match="OCSP"):
            status_of(leaf)
    else:
        assert status_of(leaf) == "good"


def test_a_list_taken_within_the_skew_is_kept(server: CRLServer) -> None:
    """A list 10 minutes past its nextUpdate is an answer, and was cached until that
    nextUpdate, already past: every check fetched it again (h143). The twin: a current
    list is fetched once too."""
    for name, passed in (("late-kept", now() - 10 * MINUTE), ("current-kept", now() + DAY)):
        ca, leaf = leaf_of(server, name)
        server.bodies[f"/{name}.crl"] = crl(ca, passed - DAY, passed)
        checker = RevocationChecker()
        for _ in range(3):
            (status,) = checker.check(
                [leaf.certificate.public_bytes(Encoding.DER)],
                [ca.certificate.public_bytes(Encoding.DER)],
                host="localhost",
            )
            assert status.status == "good"
        assert server.hits[f"/{name}.crl"] == 1, name


def test_a_negative_serial_is_looked_up_in_the_crl() -> None:
    """cryptography's lookup raises for a negative serial: the list was called
    malformed, refusing a good certificate (hard) or passing a revoked one (soft),
    where Java and OpenSSL read it (h142). Edited into a list, then signed again."""
    ca = CA()
    serial = 0x7E112233
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now()).build()
    listed = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now() - MINUTE)
        .next_update(now() + DAY)
        .add_revoked_certificate(entry)
        .sign(ca.private_key, hashes.SHA256())
    )
    tbs = listed.tbs_certlist_bytes
    written = b"\x02\x04" + serial.to_bytes(4, "big")
    assert tbs.count(written) == 1
    negative = tbs.replace(written, b"\x02\x04\xfe\x11\x22\x33")
    edited = x509.load_der_x509_crl(signed_again(negative, ca))
    found = _answers.listed(edited, -0x01EEDDCD)
    assert found is not None and found.serial_number == -0x01EEDDCD
    assert _answers.listed(edited, -0x01EEDDCE) is None  # the twin: not listed
    assert _answers.listed(listed, serial) is not None  # the usual lookup


@pytest.mark.parametrize(("age", "cache_delay"), [(14, 900), (1, 60)])
def test_an_answer_without_next_update_is_kept_no_longer_than_it_is_current(
    age: int, cache_delay: int
) -> None:
    """An answer without nextUpdate speaks for its thisUpdate and the 15 minutes of
    skew. Cached for cache_delay from its fetch, one fetched 14 minutes old was used at
    29, which a fresh fetch of the same answer refused as stale (h202): it is kept until
    it would be stale. The twin: a fresh one is kept its (shorter) cache_delay, and is
    current still when that ends."""
    second = _dt.timedelta(seconds=1)
    moment = now()
    this_update = moment - age * MINUTE
    until = _answers.current_until(this_update, None, moment, cache_delay)
    bound = this_update + _answers.CLOCK_SKEW
    assert until == (bound if age == 14 else moment + cache_delay * second)
    stale_after = _answers.why_stale(this_update, None, until + second, "response")
    assert (stale_after is not None) is (age == 14)
