"""Which answers the online check uses: an OCSP response without nextUpdate speaks for
its thisUpdate only, and a CRL with a critical extension the check does not process is
not used (RFC 5280 5.2, 5.3). Real fetches over loopback; each case with its twin."""

from __future__ import annotations

import datetime as _dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from mtls import (
    CertificateRevokedError,
    RevocationChecker,
    RevocationPolicy,
    RevocationUnknownError,
)
from mtls import _der as asn1  # the project's DER writer: scaffolding for crafted answers
from mtls.testing import CA, IssuedIdentity
from tests._helpers import der_elements, signed_again
from tests.revocation._infra import CRLServer


def _now() -> _dt.datetime:
    """Now, read when a test runs: a time read at import is minutes old by the time a
    long run reaches the test (an OCSP answer without nextUpdate is then stale)."""
    return _dt.datetime.now(_dt.UTC)


PRIVATE = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")  # an extension nobody processes


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _sign_key(ca: CA) -> ec.EllipticCurvePrivateKey:
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _expect(checker: RevocationChecker, ca: CA, leaf: IssuedIdentity, *, revoked: bool) -> None:
    """``checker`` refuses ``leaf`` as revoked, or (``revoked`` false) finds it good."""
    check = [_der(leaf.certificate)], [_der(ca.certificate)]
    if revoked:
        with pytest.raises(CertificateRevokedError):
            checker.check(*check)
    else:
        (status,) = checker.check(*check)
        assert status.status == "good", status.why


def _check(ca: CA, leaf: IssuedIdentity) -> str:
    (status,) = RevocationChecker(RevocationPolicy(mode="hard")).check(
        [_der(leaf.certificate)], [_der(ca.certificate)]
    )
    return status.status


# --------------------------------------------------------------------------- OCSP


def _ocsp_response(
    ca: CA,
    leaf: IssuedIdentity,
    this_update: _dt.datetime,
    *,
    next_update: _dt.datetime | None = None,
    revoked: x509.ReasonFlags | None = None,
    unknown: bool = False,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> ocsp.OCSPResponse:
    """A response signed by ``ca`` (its key: EC, RSA with PKCS#1 v1.5): "good",
    "revoked" an hour ago for ``revoked``, or "unknown"; with ``extensions`` (each
    with whether it is critical) among its responseExtensions."""
    builder = ocsp.OCSPResponseBuilder()
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return (
        builder.add_response(
            cert=leaf.certificate,
            issuer=ca.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.UNKNOWN
            if unknown
            else ocsp.OCSPCertStatus.GOOD
            if revoked is None
            else ocsp.OCSPCertStatus.REVOKED,
            this_update=this_update,
            next_update=next_update,
            revocation_time=None if revoked is None else _now() - _dt.timedelta(hours=1),
            revocation_reason=revoked,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def _successful(basic: bytes) -> bytes:
    """An OCSPResponse (successful) around a BasicOCSPResponse a test signed itself."""
    return asn1.encode(
        asn1.SEQUENCE,
        b"\x0a\x01\x00"  # successful
        + asn1.encode(
            0xA0,
            asn1.encode(
                asn1.SEQUENCE,
                asn1.encode_oid("1.3.6.1.5.5.7.48.1.1")  # basic
                + asn1.encode(asn1.OCTET_STRING, basic),
            ),
        ),
    )


def _ocsp_answer(ca: CA, leaf: IssuedIdentity, this_update: _dt.datetime) -> bytes:
    """A signed "good" response without nextUpdate, dated ``this_update``."""
    return _ocsp_response(ca, leaf, this_update).public_bytes(Encoding.DER)


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


def _crl(
    ca: CA,
    *,
    critical: bool,
    on_entry: bool,
    extension: x509.ExtensionType | None = None,
    serial: int = 12345,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(_now() - _dt.timedelta(minutes=1))
        .next_update(_now() + _dt.timedelta(days=1))
    )
    if extension is None:
        extension = x509.UnrecognizedExtension(PRIVATE, b"\x05\x00")
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now())
    if on_entry:
        entry = entry.add_extension(extension, critical=critical)
    else:
        builder = builder.add_extension(extension, critical=critical)
    builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(_sign_key(ca), hashes.SHA256()).public_bytes(Encoding.DER)


def test_a_crl_with_an_unprocessed_critical_extension_is_not_used(web: CRLServer) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = _crl(ca, critical=True, on_entry=False)
    with pytest.raises(RevocationUnknownError, match="critical extension mtls does not process"):
        _check(ca, leaf)


@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("ours", [False, True], ids=["another's entry", "its own entry"])
def test_a_critical_entry_extension_is_judged_on_the_certificates_own_entry_as_java(
    web: CRLServer, mode: str, ours: bool
) -> None:
    """Java's checker looks at the critical extensions of the certificate's own entry
    only. One on another certificate's entry made the whole list no answer here
    (refused under hard-fail, where Java answers "good"); one on the certificate's own
    entry made it undetermined, which soft-fail passed, where Java refuses in both
    modes (h229). A certificate listed is revoked, whatever its entry carries."""
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    serial = leaf.certificate.serial_number if ours else 12345
    web.bodies["/ca.crl"] = _crl(ca, critical=True, on_entry=True, serial=serial)
    _expect(RevocationChecker(RevocationPolicy(mode=mode)), ca, leaf, revoked=ours)  # type: ignore[arg-type]


@pytest.mark.parametrize("on_entry", [False, True], ids=["on the list", "on an entry"])
def test_the_same_extension_not_critical_is_ignored(web: CRLServer, on_entry: bool) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = _crl(ca, critical=False, on_entry=on_entry)
    assert _check(ca, leaf) == "good"


def _known_crl_extensions(ca: CA) -> dict[str, x509.ExtensionType]:
    """Extensions a CRL carries, which RFC 5280 makes non-critical."""
    uri = x509.UniformResourceIdentifier("http://crl.example/ca.crl")
    return {
        "CRLNumber": x509.CRLNumber(7),
        "AuthorityKeyIdentifier": x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.certificate.public_key()  # type: ignore[arg-type]
        ),
        "IssuerAlternativeName": x509.IssuerAlternativeName([x509.DNSName("ca.example")]),
        "AuthorityInformationAccess": x509.AuthorityInformationAccess(
            [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, uri)]
        ),
        "FreshestCRL": x509.FreshestCRL([x509.DistributionPoint([uri], None, None, None)]),
    }


@pytest.mark.parametrize("critical", [True, False], ids=["critical", "not critical"])
@pytest.mark.parametrize(
    "kind",
    [
        "CRLNumber",
        "AuthorityKeyIdentifier",
        "IssuerAlternativeName",
        "AuthorityInformationAccess",
        "FreshestCRL",
    ],
)
def test_a_crl_extension_that_must_not_be_critical_is_not_processed_critical(
    web: CRLServer, kind: str, critical: bool
) -> None:
    """Java's checker processes the IssuingDistributionPoint alone among a CRL's
    critical extensions: a list with any other critical one is unusable there, and
    was an answer here (h228; FreshestCRL names delta lists this check never fetches).
    The twin: the same extension, not critical, as RFC 5280 has it, is ignored."""
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    extension = _known_crl_extensions(ca)[kind]
    web.bodies["/ca.crl"] = _crl(ca, critical=critical, on_entry=False, extension=extension)
    if critical:
        with pytest.raises(RevocationUnknownError, match="critical extension mtls does not"):
            _check(ca, leaf)
    else:
        assert _check(ca, leaf) == "good"


@pytest.mark.parametrize(
    ("extension", "critical", "answered"),
    [
        (x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), True, False),
        (x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), False, True),
        (x509.OCSPNonce(b"0123456789abcdef"), True, False),
        (x509.OCSPNonce(b"0123456789abcdef"), False, True),
    ],
    ids=["unknown critical", "unknown not critical", "critical nonce", "nonce"],
)
@pytest.mark.parametrize("revoked", [False, True], ids=["good", "revoked"])
def test_an_ocsp_response_with_an_unprocessed_critical_extension_is_no_answer(
    web: CRLServer, extension: x509.ExtensionType, critical: bool, answered: bool, revoked: bool
) -> None:
    """A response carrying a critical extension was believed, "good" or "revoked";
    Java's OCSPResponse processes none, its nonce included, and refuses it
    ("Unsupported OCSP critical extension"), asking the next source (h228, h229). The
    twins: the same extensions not critical are answers."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    response = _ocsp_response(
        ca,
        leaf,
        _now() - _dt.timedelta(minutes=1),
        next_update=_now() + _dt.timedelta(hours=1),
        revoked=x509.ReasonFlags.key_compromise if revoked else None,
        extensions=((extension, critical),),
    )
    web.posts["/ocsp"] = response.public_bytes(Encoding.DER)
    if not answered:
        with pytest.raises(RevocationUnknownError, match="critical extension the check does"):
            _check(ca, leaf)
    elif revoked:
        with pytest.raises(CertificateRevokedError):
            _check(ca, leaf)
    else:
        assert _check(ca, leaf) == "good"


# ------------------------------------- answers cryptography reads only in part


REASON_7 = x509.UnrecognizedExtension(
    x509.oid.CRLEntryExtensionOID.CRL_REASON, b"\x0a\x01\x07"
)  # CRLReason 7: unassigned in RFC 5280, read by OpenSSL and Java (as UNUSED)


def _listing(ca: CA, *entries: tuple[int, x509.ExtensionType | None]) -> bytes:
    """A current CRL of ``ca`` listing ``(serial, entry extension or None)``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(_now() - _dt.timedelta(minutes=1))
        .next_update(_now() + _dt.timedelta(days=1))
    )
    for serial, extension in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now())
        if extension is not None:
            entry = entry.add_extension(extension, critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(_sign_key(ca), hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_a_certificate_listed_with_reason_7_is_revoked(web: CRLServer, mode: str) -> None:
    """cryptography refuses CRLReason 7: the listed certificate was "undetermined", and
    soft mode let a revoked certificate through (a sweep found it)."""
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf, good = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = _listing(ca, (leaf.certificate.serial_number, REASON_7))
    checker = RevocationChecker(RevocationPolicy(mode=mode))  # type: ignore[arg-type]
    with pytest.raises(CertificateRevokedError) as caught:
        checker.check([_der(leaf.certificate)], [_der(ca.certificate)])
    assert caught.value.revocation_reason is None  # a reason nobody can name
    # The twin: another certificate of the CA, not listed, is good in hard mode too.
    (status,) = RevocationChecker(RevocationPolicy(mode="hard")).check(
        [_der(good.certificate)], [_der(ca.certificate)]
    )
    assert status.status == "good"


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_an_ocsp_answer_revoked_with_reason_7_is_revoked(web: CRLServer, mode: str) -> None:
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    response = _ocsp_response(
        ca,
        leaf,
        _now() - _dt.timedelta(minutes=1),
        next_update=_now() + _dt.timedelta(hours=1),
        revoked=x509.ReasonFlags.superseded,  # 4, made 7 below
    )
    tbs = response.tbs_response_bytes
    assert tbs.count(b"\xa0\x03\x0a\x01\x04") == 1  # [0] EXPLICIT CRLReason superseded
    body = _successful(
        signed_again(tbs.replace(b"\xa0\x03\x0a\x01\x04", b"\xa0\x03\x0a\x01\x07"), ca)
    )
    read = ocsp.load_der_ocsp_response(body)
    assert read.certificate_status == ocsp.OCSPCertStatus.REVOKED
    with pytest.raises(ValueError, match="reason"):
        read.revocation_reason  # noqa: B018
    web.posts["/ocsp"] = body
    checker = RevocationChecker(RevocationPolicy(mode=mode, crl=False))  # type: ignore[arg-type]
    with pytest.raises(CertificateRevokedError):
        checker.check([_der(leaf.certificate)], [_der(ca.certificate)])


def test_a_crl_with_an_extension_twice_is_undetermined_and_asked_once(web: CRLServer) -> None:
    """cryptography's DuplicateExtension is no ValueError: it went out of every
    handshake raw, in soft mode too, and was fetched again each time."""
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    placeholder = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.99"), b"\x0a\x01\x01")
    body = _listing(ca, (12345, REASON_7), (12346, placeholder))
    # An entry with CRLReason twice (OpenSSL marks such a list invalid, Java refuses it).
    builder = x509.RevokedCertificateBuilder().serial_number(777).revocation_date(_now())
    two = builder.add_extension(REASON_7, critical=False).add_extension(placeholder, False)
    listing = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(_now() - _dt.timedelta(minutes=1))
        .next_update(_now() + _dt.timedelta(days=1))
        .add_revoked_certificate(two.build())
    )
    crl = listing.sign(_sign_key(ca), hashes.SHA256())
    tbs = crl.tbs_certlist_bytes  # 2.5.29.99 renamed 2.5.29.21: CRLReason twice
    body = signed_again(tbs.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x15"), ca)
    with pytest.raises(x509.DuplicateExtension):
        next(iter(x509.load_der_x509_crl(body))).extensions  # noqa: B018
    web.bodies["/ca.crl"] = body
    checker = RevocationChecker(RevocationPolicy(mode="soft"))
    for _ in range(3):
        (status,) = checker.check([_der(leaf.certificate)], [_der(ca.certificate)])
        assert status.status == "undetermined"
        assert "extension 2.5.29.21 twice" in status.why[0]
    assert checker.fetches == 1
    with pytest.raises(RevocationUnknownError, match="twice"):
        RevocationChecker(RevocationPolicy(mode="hard")).check(
            [_der(leaf.certificate)], [_der(ca.certificate)]
        )


def _responder(
    ca: CA, *, usage: bool = True, ended: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A delegated OCSP responder's certificate from ``ca``: with the OCSP-signing usage
    unless ``usage`` is false, expired yesterday when ``ended``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    end = now - _dt.timedelta(days=1) if ended else now + _dt.timedelta(days=30)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=ocsp responder"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=60))
        .not_valid_after(end)
    )
    if usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
        )
    return builder.sign(_sign_key(ca), hashes.SHA256()), key


@pytest.mark.parametrize(
    ("usage", "ended", "said"),
    [
        (True, False, None),  # the twin: a responder the issuer authorized, in its dates
        (True, True, "responder certificate CN=ocsp responder expired"),
        (False, False, "lacks the OCSP-signing usage"),
    ],
)
def test_a_delegated_responder_is_judged_and_its_fault_named(
    web: CRLServer, usage: bool, ended: bool, said: str | None
) -> None:
    """One sentence covered every fault ("not signed by the issuer or a responder it
    authorized"), also for a responder the issuer did authorize whose certificate had
    expired: each fault is named now, as its fix differs."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    responder, key = _responder(ca, usage=usage, ended=ended)
    web.posts["/ocsp"] = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf.certificate,
            issuer=ca.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=_now() - _dt.timedelta(minutes=1),
            next_update=_now() + _dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    if said is None:
        assert _check(ca, leaf) == "good"
        return
    with pytest.raises(RevocationUnknownError, match="or a responder it authorized") as info:
        _check(ca, leaf)
    assert said in str(info.value)


# ------------------------------------------------- RSASSA-PSS-signed OCSP answers


@pytest.mark.openssl
@pytest.mark.parametrize(
    "options",
    [
        (),  # the twin: PKCS#1 v1.5, as before
        ("-rsigopt", "rsa_padding_mode:pss"),
        ("-rmd", "sha384", "-rsigopt", "rsa_padding_mode:pss", "-rsigopt", "rsa_pss_saltlen:max"),
    ],
    ids=["pkcs1", "pss", "pss-sha384-max-salt"],
)
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_an_ocsp_responder_signing_with_rsassa_pss_is_believed(
    openssl_bin: str, tmp_path, mode: str, options: tuple[str, ...]
) -> None:
    """cryptography reads no RSASSA-PSS parameters of an OCSP response: a PSS-signed
    answer (openssl ocsp -rsigopt rsa_padding_mode:pss; Java verifies it) was refused
    as malformed: a good backend refused in hard mode, and a revoked one connected in
    soft mode when the CRL could not be had (h198). Real responses from openssl."""
    from tests.revocation._infra import free_port, ocsp_responder

    port = free_port()
    ca = CA(key_type="RSA", ocsp_url=f"http://127.0.0.1:{port}/")
    good, revoked = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    ca.revoke(revoked, reason="keyCompromise")
    policy = RevocationPolicy(mode=mode, crl=False)  # type: ignore[arg-type]
    with ocsp_responder(openssl_bin, ca, tmp_path, port=port, options=options):
        (status,) = RevocationChecker(policy).check(
            [_der(good.certificate)], [_der(ca.certificate)]
        )
        assert status.status == "good", status.why
        with pytest.raises(CertificateRevokedError, match="keyCompromise"):
            RevocationChecker(policy).check([_der(revoked.certificate)], [_der(ca.certificate)])


def _pss_signed(
    ca: CA,
    tbs: bytes,
    parameters: bytes,
    salt: int,
    digest: hashes.HashAlgorithm | None = None,
    mask: hashes.HashAlgorithm | None = None,
) -> bytes:
    """An OCSPResponse around ``tbs``, signed by ``ca``'s RSA key with RSASSA-PSS
    (``digest``, MGF1 with ``mask``: SHA-256 each unless given; ``salt`` bytes of salt)
    under the AlgorithmIdentifier ``parameters`` claim (``None``: no parameters)."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    digest, mask = digest or hashes.SHA256(), mask or hashes.SHA256()
    key = ca.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(tbs, padding.PSS(padding.MGF1(mask), salt), digest)
    algorithm = asn1.encode(asn1.SEQUENCE, asn1.encode_oid("1.2.840.113549.1.1.10") + parameters)
    return _successful(
        asn1.encode(
            asn1.SEQUENCE, tbs + algorithm + asn1.encode(asn1.BIT_STRING, b"\x00" + signature)
        )
    )


_SHA256 = "2.16.840.1.101.3.4.2.1"


def _pss_params(
    salt: int,
    *,
    trailer: int = 1,
    mgf: str = "1.2.840.113549.1.1.8",
    digest: str = _SHA256,
    mask: str = _SHA256,
) -> bytes:
    """RSASSA-PSS-params naming ``digest`` and MGF1 with ``mask`` (hash OIDs), ``salt``
    and ``trailer``."""

    def named(oid: str) -> bytes:
        return asn1.encode(asn1.SEQUENCE, asn1.encode_oid(oid) + b"\x05\x00")

    return asn1.encode(
        asn1.SEQUENCE,
        asn1.encode(0xA0, named(digest))
        + asn1.encode(0xA1, asn1.encode(asn1.SEQUENCE, asn1.encode_oid(mgf) + named(mask)))
        + asn1.encode(
            0xA2, asn1.encode(asn1.INTEGER, salt.to_bytes((salt.bit_length() + 8) // 8, "big"))
        )
        + asn1.encode(0xA3, asn1.encode(asn1.INTEGER, bytes([trailer]))),
    )


_SHA384, _SHA512_256 = "2.16.840.1.101.3.4.2.2", "2.16.840.1.101.3.4.2.6"


@pytest.mark.parametrize(
    ("parameters", "salt", "signed", "expected"),
    [
        (_pss_params(32), 32, None, None),  # as claimed: good
        # The mask's hash apart from the message's, and SHA-512/256 (RFC 8017's list).
        (_pss_params(32, mask=_SHA384), 32, (hashes.SHA256(), hashes.SHA384()), None),
        (_pss_params(32, digest=_SHA512_256, mask=_SHA512_256), 32,
         (hashes.SHA512_256(), hashes.SHA512_256()), None),
        (_pss_params(32, mask=_SHA384), 32, None, "does not verify"),  # mask not as signed
        (_pss_params(24), 32, None, "does not verify"),  # another salt length than signed with
        (asn1.encode(asn1.SEQUENCE, b""), 20, None, "does not verify"),  # every default: SHA-1
        (b"", 20, None, "malformed"),  # no parameters: RFC 4055 requires them (OpenSSL too)
        (_pss_params(32, trailer=2), 32, None, "malformed"),
        (_pss_params(32, mgf="1.2.840.113549.1.1.99"), 32, None, "malformed"),
        (_pss_params(9000), 32, None, "malformed"),
        (asn1.encode(asn1.INTEGER, b"\x01"), 32, None, "malformed|not an OCSP response"),
    ],
    ids=["claimed", "mask-sha384", "sha512-256", "mask-not-as-signed", "other-salt", "defaults",
         "absent", "trailer-2", "not-mgf1", "salt-9000", "not-params"],
)  # fmt: skip
def test_rsassa_pss_parameters_are_read_and_held_to(
    web: CRLServer,
    parameters: bytes,
    salt: int,
    signed: tuple[hashes.HashAlgorithm, hashes.HashAlgorithm] | None,
    expected: str | None,
) -> None:
    ca = CA(key_type="RSA", ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    tbs = _ocsp_response(
        ca, leaf, _now() - _dt.timedelta(minutes=1), next_update=_now() + _dt.timedelta(hours=1)
    ).tbs_response_bytes
    web.posts["/ocsp"] = _pss_signed(ca, tbs, parameters, salt, *(signed or ()))
    if expected is None:
        assert _check(ca, leaf) == "good"
        return
    with pytest.raises(RevocationUnknownError, match=expected):
        RevocationChecker(RevocationPolicy(mode="hard", crl=False)).check(
            [_der(leaf.certificate)], [_der(ca.certificate)]
        )


def test_a_pss_signature_claimed_of_a_key_that_is_not_rsa_is_not_believed(
    web: CRLServer,
) -> None:
    """An EC CA's ECDSA signature under the RSASSA-PSS OID (a review's mutant, the guard
    dropped, believed it): RSASSA-PSS names an RSA key. The twin: the same signature
    under its own OID, ecdsa-with-SHA256, is believed."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    tbs = _ocsp_response(
        ca, leaf, _now() - _dt.timedelta(minutes=1), next_update=_now() + _dt.timedelta(hours=1)
    ).tbs_response_bytes
    honest = signed_again(tbs, ca)
    web.posts["/ocsp"] = _successful(honest)
    assert _check(ca, leaf) == "good"
    ecdsa = asn1.encode(asn1.SEQUENCE, asn1.encode_oid("1.2.840.10045.4.3.2"))
    assert honest.count(ecdsa) == 1
    pss = asn1.encode(asn1.SEQUENCE, asn1.encode_oid("1.2.840.113549.1.1.10") + _pss_params(32))
    claimed = asn1.encode(asn1.SEQUENCE, der_elements(honest)[0] + pss + der_elements(honest)[2])
    web.posts["/ocsp"] = _successful(claimed)
    with pytest.raises(RevocationUnknownError, match="does not verify"):
        RevocationChecker(RevocationPolicy(mode="hard", crl=False)).check(
            [_der(leaf.certificate)], [_der(ca.certificate)]
        )


_REAL_PSS = (_pss_params(32), _pss_params(2000, mask=_SHA384))


def _flipped(which: int, flips: list[tuple[int, int]]) -> bytes:
    """One of the real parameters, with ``(position, xor)`` flips applied."""
    out = bytearray(_REAL_PSS[which])
    for position, xor in flips:
        out[position % len(out)] ^= xor
    return bytes(out)


@given(
    st.one_of(
        st.binary(max_size=80),
        st.builds(
            _flipped,
            st.integers(0, 1),
            st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), min_size=1, max_size=4),
        ),
    )
)
@settings(max_examples=300, deadline=None)
def test_pss_parameters_refuse_damage_with_a_value_error(parameters: bytes) -> None:
    """Whatever the bytes, the reader gives a padding and a hash or raises ValueError
    (DERError): the online check reads that as a malformed answer."""
    from cryptography.hazmat.primitives.asymmetric import padding

    from mtls._crl import pss_parameters

    data = asn1.encode_oid("1.2.840.113549.1.1.10") + parameters
    try:
        pss, digest = pss_parameters(data, 0, len(data))
    except ValueError:
        return
    assert isinstance(pss, padding.PSS) and isinstance(digest, hashes.HashAlgorithm)


# ------------------------------------------- several answers about one certificate


def _with_extension(
    single: bytes,
    value: bytes,
    critical: bool,
    *,
    false_written: bool = False,
    oid: str = PRIVATE.dotted_string,
) -> bytes:
    """The SingleResponse ``single`` (DER) with singleExtensions holding an extension
    (``oid``, a private one unless told) whose extnValue is ``value``
    (``false_written``: its critical FALSE written out, a DEFAULT value DER leaves
    out)."""
    flag = b"\xff" if critical else b"\x00" if false_written else None
    extension = asn1.encode(
        asn1.SEQUENCE,
        asn1.encode_oid(oid)
        + (asn1.encode(0x01, flag) if flag is not None else b"")
        + asn1.encode(asn1.OCTET_STRING, value),
    )
    fields = b"".join(der_elements(single))
    return asn1.encode(
        asn1.SEQUENCE,
        fields + asn1.encode(0xA1, asn1.encode(asn1.SEQUENCE, extension)),
    )


def _answering(
    ca: CA,
    leaf: IssuedIdentity,
    *statuses: str,
    extended: dict[int, bool] | None = None,
    defaults_written: bool = False,
) -> bytes:
    """One response of ``ca`` with an answer per status ("good", "revoked", "unknown";
    "stale good" and "stale revoked": out of date two days ago) about ``leaf``, in that
    order, signed again by ``ca``; ``extended``: answers (by position) that carry a
    private singleExtension, critical or not; ``defaults_written``: the version v1 and
    the extensions' critical FALSE written out, as DER does not."""
    singles: list[bytes] = []
    fields: list[bytes] = []
    for status in statuses:
        ago = _dt.timedelta(days=3 if status.startswith("stale") else 0, minutes=1)
        response = _ocsp_response(
            ca,
            leaf,
            _now() - ago,
            next_update=_now() - ago + _dt.timedelta(days=1, hours=1),
            revoked=x509.ReasonFlags.key_compromise if status.endswith("revoked") else None,
            unknown=status == "unknown",
        )
        fields = der_elements(response.tbs_response_bytes)
        (responses,) = [field for field in fields if field[0] == asn1.SEQUENCE]
        singles += der_elements(responses)
        if extended and len(singles) - 1 in extended:
            singles[-1] = _with_extension(
                singles[-1],
                b"\x05\x00",
                extended[len(singles) - 1],
                false_written=defaults_written,
            )
    version = asn1.encode(0xA0, b"\x02\x01\x00") if defaults_written else b""
    tbs = asn1.encode(
        asn1.SEQUENCE,
        version
        + b"".join(
            asn1.encode(asn1.SEQUENCE, b"".join(singles)) if field[0] == asn1.SEQUENCE else field
            for field in fields
        ),
    )
    return _successful(signed_again(tbs, ca))


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("good", "revoked"), "revoked"),  # OpenSSL reads the first: good
        (("revoked", "good"), "revoked"),  # Java reads the last: good
        (("good", "unknown"), "both good and unknown"),
        (("good", "good"), "good"),  # the twin: answers that agree
        # An answer out of its dates is none (a stale copy first hid a current
        # "revoked", h199): the current ones decide; none current, none at all.
        (("stale revoked", "revoked"), "revoked"),
        (("stale good", "revoked"), "revoked"),
        (("stale revoked", "good"), "good"),  # an old "revoked" may be a hold released
        (("stale good", "stale revoked"), "stale"),
    ],
)
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_answers_that_disagree_about_one_certificate_fail_closed(
    web: CRLServer, statuses: tuple[str, ...], expected: str, mode: str
) -> None:
    """A signed response that says "good" and "revoked" of one certificate was read by
    its first answer (as OpenSSL; Java reads the last): whichever comes first now, it
    is revoked; "good" beside "unknown" is no answer (h198)."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    web.posts["/ocsp"] = body = _answering(ca, leaf, *statuses)
    assert len(list(ocsp.load_der_ocsp_response(body).responses)) == len(statuses)
    checker = RevocationChecker(RevocationPolicy(mode=mode, crl=False))  # type: ignore[arg-type]
    check = [_der(leaf.certificate)], [_der(ca.certificate)]
    if expected == "revoked":
        with pytest.raises(CertificateRevokedError, match="keyCompromise"):
            checker.check(*check)
    elif expected == "good":
        (status,) = checker.check(*check)
        assert status.status == "good", status.why
    elif mode == "hard":
        with pytest.raises(RevocationUnknownError, match=expected):
            checker.check(*check)
    else:
        (status,) = checker.check(*check)
        assert status.status == "undetermined" and expected in status.why[0]


# ------------------------------------------------- times with fractions of a second


# GeneralizedTime spellings OpenSSL and Java read beside DER's YYYYMMDDHHMMSSZ.
_SPELLINGS = {
    "fraction": lambda value: value[:-1] + b".5Z",
    "offset": lambda value: value[:-1] + b"+0000",
    "no seconds": lambda value: value[:-3] + b"Z",
}


def _with_fractions(der: bytes, form: str = "fraction") -> bytes:
    """``der`` with every GeneralizedTime spelled ``form`` (its structure written again)."""
    out: list[bytes] = []
    for tag, content, end in asn1.spans(der):
        value = der[content:end]
        if tag == 0x18:
            out.append(asn1.encode(tag, _SPELLINGS[form](value)))
        elif tag & 0x20:
            out.append(asn1.encode(tag, _with_fractions(value, form)))
        else:
            out.append(asn1.encode(tag, value))
    return b"".join(out)


def _fractional(
    ca: CA, leaf: IssuedIdentity, *, revoked: bool, honest: bool = True, form: str = "fraction"
) -> bytes:
    """A response whose producedAt, thisUpdate, nextUpdate (and revocationTime) are
    spelled ``form`` (half a second, by default), signed over those bytes (``honest``)
    or over the same answer as DER spells it."""
    plain = _ocsp_response(
        ca,
        leaf,
        _now() - _dt.timedelta(minutes=1),
        next_update=_now() + _dt.timedelta(hours=1),
        revoked=x509.ReasonFlags.key_compromise if revoked else None,
    ).tbs_response_bytes
    tbs = _with_fractions(plain, form)
    basic = signed_again(tbs if honest else plain, ca)
    if not honest:  # the signature of the plain bytes, beside the fractional ones
        basic = asn1.encode(asn1.SEQUENCE, tbs + b"".join(der_elements(basic)[1:]))
    return _successful(basic)


@pytest.mark.parametrize("form", list(_SPELLINGS))
@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("answer", ["good", "revoked", "signed over other bytes"])
def test_an_ocsp_answer_with_fractions_of_a_second_is_read(
    web: CRLServer, mode: str, answer: str, form: str
) -> None:
    """GeneralizedTime may carry a fraction in DER (X.690 11.7); RFC 5280's profile
    forbids it, Bouncy Castle for .NET writes it (bc-csharp#474), OpenSSL and Java read
    it. cryptography does not: "not an OCSP response", and hard-fail refused a good
    backend (h202). Read with the fractions cut, its signature checked over the bytes
    the responder signed: the twin, a signature over other bytes, is refused."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    honest = answer != "signed over other bytes"
    body = _fractional(ca, leaf, revoked=answer == "revoked", honest=honest, form=form)
    web.posts["/ocsp"] = body
    with pytest.raises(ValueError):  # what cryptography makes of it
        ocsp.load_der_ocsp_response(body)
    checker = RevocationChecker(RevocationPolicy(mode=mode, crl=False))  # type: ignore[arg-type]
    check = [_der(leaf.certificate)], [_der(ca.certificate)]
    if answer == "revoked":
        with pytest.raises(CertificateRevokedError, match="keyCompromise"):
            checker.check(*check)
    elif answer == "good":
        (status,) = checker.check(*check)
        assert status.status == "good", status.why
    elif mode == "hard":
        with pytest.raises(RevocationUnknownError, match="does not verify"):
            checker.check(*check)
    else:
        (status,) = checker.check(*check)
        assert status.status == "undetermined" and "does not verify" in status.why[0]


_FRACTIONAL: list[bytes] = []  # one response for every example: a CA per example is slow


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=399))
def test_reading_a_damaged_ocsp_response_raises_a_value_error_only(noise: bytes, at: int) -> None:
    """The fraction reader walks bytes a responder (or anyone on the path) sent:
    whatever they are, a ValueError (the check's "not an OCSP response") or a
    response, never another exception or a hang."""
    from mtls._answers import load_ocsp

    if not _FRACTIONAL:
        ca = CA()
        _FRACTIONAL.append(_fractional(ca, ca.issue_cert("localhost"), revoked=False))
    body = _FRACTIONAL[0]
    damaged = body[:at] + noise + body[at + len(noise) :]
    try:
        response, signed = load_ocsp(damaged)
    except ValueError:
        return
    assert isinstance(response, ocsp.OCSPResponse)
    assert signed is None or signed in damaged


@pytest.mark.parametrize(
    ("written", "der"),
    [
        (b"20261231235959.5Z", b"20261231235959Z"),
        (b"20261231235959+0100", b"20261231225959Z"),  # an hour east: earlier in UTC
        (b"20261231233000-0130", b"20270101010000Z"),  # west, across the new year
        (b"202612312359Z", b"20261231235900Z"),
        (b"20261231235959.123456789012Z", b"20261231235959Z"),  # OpenSSL reads 12 digits
        (b"20261231235959z", b"20261231235959z"),  # no one reads it: left as written
    ],
)
def test_ocsp_times_are_written_as_der_writes_them(written: bytes, der: bytes) -> None:
    """The times of an answer are read in UTC, whatever their spelling: an offset's
    sign decides which way the time moves (a sign read the wrong way makes an answer
    current an hour early or late)."""
    from mtls._answers import _der_time

    assert _der_time(asn1.TLV(0x18, written, 0)) == der


@pytest.mark.parametrize("critical", [True, False], ids=["critical", "not critical"])
@pytest.mark.parametrize("on", [0, 1], ids=["on its own answer", "on the other answer"])
def test_a_critical_extension_of_any_answer_makes_the_response_no_answer(
    web: CRLServer, critical: bool, on: int
) -> None:
    """A response with two answers (both "good" for the certificate), one of them with
    a critical singleExtension: cryptography gives the extensions of one-answer
    responses only, and mtls believed it where Java, which reads every answer, refuses
    the response (h229). The DER is read now. The twin: not critical, an answer."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    web.posts["/ocsp"] = _answering(ca, leaf, "good", "good", extended={on: critical})
    if critical:
        with pytest.raises(RevocationUnknownError, match="critical extension the check does"):
            _check(ca, leaf)
    else:
        assert _check(ca, leaf) == "good"


@pytest.mark.parametrize("written", [True, False], ids=["defaults written", "DER"])
def test_a_response_that_writes_out_default_values_is_read_as_java_reads_it(
    web: CRLServer, written: bool
) -> None:
    """A response whose tbsResponseData writes out its version v1 and an extension's
    critical FALSE (DEFAULT values DER leaves out): cryptography refuses it, and it
    was "not an OCSP response", refusing a good backend under hard-fail where Java
    reads it (h230). It is read with those left out, its signature checked over the
    bytes as signed. The twin: the same response in DER."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    web.posts["/ocsp"] = body = _answering(
        ca, leaf, "good", extended={0: False}, defaults_written=written
    )
    if written:
        with pytest.raises(ValueError):
            ocsp.load_der_ocsp_response(body)  # what cryptography alone makes of it
    assert _check(ca, leaf) == "good"


def test_a_critical_extension_cryptography_cannot_decode_makes_the_response_no_answer(
    web: CRLServer,
) -> None:
    """A one-answer response whose answer carries a critical signed-certificate-
    timestamps extension with a value that is no SCT list: cryptography raises on
    reading the answer's extensions, which was taken for "several answers" and the
    extension for none, and the answer was believed where Java refuses it (h229). The
    extensions are read from the DER, their values never decoded."""
    ca = CA(ocsp_url=web.url("/ocsp"))
    leaf = ca.issue_cert("localhost")
    response = _ocsp_response(
        ca, leaf, _now() - _dt.timedelta(minutes=1), next_update=_now() + _dt.timedelta(hours=1)
    )
    fields = der_elements(response.tbs_response_bytes)
    (responses,) = [field for field in fields if field[0] == asn1.SEQUENCE]
    (single,) = der_elements(responses)
    sct = _with_extension(single, b"\x04\x01\xff", True, oid="1.3.6.1.4.1.11129.2.4.5")
    tbs = asn1.encode(
        asn1.SEQUENCE,
        b"".join(
            asn1.encode(asn1.SEQUENCE, sct) if field[0] == asn1.SEQUENCE else field
            for field in fields
        ),
    )
    web.posts["/ocsp"] = body = _successful(signed_again(tbs, ca))
    with pytest.raises(ValueError):
        ocsp.load_der_ocsp_response(body).single_extensions  # noqa: B018 - what cryptography makes of it
    with pytest.raises(RevocationUnknownError, match="critical extension the check does"):
        _check(ca, leaf)


OTHER_CA = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "another CA")])


@pytest.mark.parametrize(
    ("entries", "revoked"),
    [
        # Its serial under another CA's certificateIssuer: that CA's certificate (h230).
        ([("ours", OTHER_CA)], False),
        ([(1, OTHER_CA), ("ours", None)], False),  # the next entries are that CA's too
        # The twins: its serial before any certificateIssuer, and after one naming its CA.
        ([("ours", None), (1, OTHER_CA)], True),
        ([(1, OTHER_CA), (2, "own"), ("ours", None)], True),
        ([("ours", OTHER_CA), ("ours", "own")], True),
        # Java reads the first name only: another CA's first, its own second, is another's.
        ([("ours", [OTHER_CA, "own"])], False),
        # A first name that is no directory name (Java cannot read the list) or none:
        # the issuer is not known, and a serial listed is revoked (h236: "good").
        ([("ours", [x509.UniformResourceIdentifier("https://ca.example/")])], True),
        ([(1, [x509.DNSName("x.example")]), ("ours", None)], True),
        ([("ours", [])], True),
    ],
    ids=[
        "under another CA",
        "after another CA",
        "before",
        "after its own CA",
        "twice",
        "first name another CA's",
        "a URI",
        "a DNS name before",
        "no name",
    ],
)
def test_a_crl_entry_under_another_issuer_is_that_issuers_as_java_reads_it(
    web: CRLServer,
    entries: list[tuple[int | str, x509.Name | list[x509.Name | str | x509.GeneralName] | None]],
    revoked: bool,
) -> None:
    """Java and OpenSSL match a CRL entry by issuer and serial, the issuer being the
    list's until an entry's certificateIssuer names another. The certificate's serial
    listed for another CA revoked it here, where Java's checker answers good (h230)."""
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    serials = {"ours": leaf.certificate.serial_number}
    names = {"own": ca.certificate.subject}

    def general(given: object) -> list[x509.GeneralName]:
        listed = given if isinstance(given, list) else [given]
        return [
            n if isinstance(n, x509.GeneralName)
            else x509.DirectoryName(names[n] if isinstance(n, str) else n)  # type: ignore[arg-type]
            for n in listed
        ]  # fmt: skip

    web.bodies["/ca.crl"] = _listing(
        ca,
        *(
            (
                serial if isinstance(serial, int) else serials[serial],
                None if name is None else x509.CertificateIssuer(general(name)),
            )
            for serial, name in entries
        ),
    )
    _expect(RevocationChecker(RevocationPolicy(mode="hard")), ca, leaf, revoked=revoked)
