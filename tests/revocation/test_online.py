"""Online revocation checks against a real ``openssl ocsp`` responder and a CRL web server.

Every case runs the checker on the certificates a real CA issued, over loopback;
each positive case has its negative twin next to it.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import mtls
from mtls import (
    CertificateRevokedError,
    RevocationChecker,
    RevocationPolicy,
    RevocationUnknownError,
)
from mtls.testing import CA, IssuedIdentity
from tests.revocation._infra import (
    PKI,
    CRLServer,
    free_port,
    ocsp_responder,
    revocation_pki,
)


def der(cert: x509.Certificate | IssuedIdentity | CA) -> bytes:
    if isinstance(cert, IssuedIdentity | CA):
        cert = cert.certificate
    return cert.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def pki(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PKI]:
    with revocation_pki(openssl_bin, tmp_path_factory.mktemp("ocsp")) as made:
        yield made


def check(
    checker: RevocationChecker, who: IssuedIdentity, ca: CA | None = None
) -> tuple[mtls.CertificateStatus, ...]:
    return checker.check([der(who)], [der(ca or who.ca)], host="localhost")


# --------------------------------------------------------------------------- OCSP


def test_a_good_certificate_is_good_from_the_ocsp_responder(pki: PKI) -> None:
    checker = RevocationChecker()
    (status,) = check(checker, pki.good)
    assert status.status == "good"
    assert status.source == f"OCSP {pki.ocsp_url}", status.why
    assert status.serial == pki.good.serial_number
    assert status.valid_until is not None and status.checked_at is not None
    # openssl ocsp -nmin 5: the answer is kept until its nextUpdate, not longer
    assert status.valid_until - status.checked_at <= _dt.timedelta(minutes=5, seconds=5)


def test_a_revoked_certificate_is_refused_with_subject_serial_reason_and_time(pki: PKI) -> None:
    checker = RevocationChecker()
    with pytest.raises(CertificateRevokedError) as caught:
        check(checker, pki.revoked)
    error = caught.value
    assert error.serial == pki.revoked.serial_number
    assert error.subject == pki.revoked.certificate.subject.rfc4514_string()
    assert error.revocation_reason == "keyCompromise"
    assert error.revoked_at is not None
    assert error.source == f"OCSP {pki.ocsp_url}"
    assert f"{pki.revoked.serial_number:x}" in str(error)
    assert "keyCompromise" in str(error)
    assert isinstance(error, mtls.RevocationError)
    assert isinstance(error, mtls.MTLSError)


def test_a_revoked_certificate_is_refused_in_soft_fail_mode_too(pki: PKI) -> None:
    soft = RevocationChecker(RevocationPolicy(mode="soft"))
    with pytest.raises(CertificateRevokedError):
        check(soft, pki.revoked)
    (status,) = check(soft, pki.good)
    assert status.status == "good"


def test_an_answer_is_cached_per_certificate(pki: PKI) -> None:
    checker = RevocationChecker()
    check(checker, pki.good)
    fetched = checker.fetches
    for _ in range(5):
        check(checker, pki.good)
    assert checker.fetches == fetched == 1
    (cached,) = checker.cached()
    assert cached.serial == pki.good.serial_number
    checker.clear()
    assert checker.cached() == ()
    check(checker, pki.good)
    assert checker.fetches == 2


def test_the_cache_is_bounded(pki: PKI) -> None:
    checker = RevocationChecker(RevocationPolicy(cache_size=1))
    check(checker, pki.good)
    check(checker, pki.unknown)  # good from the CRL after the responder's "unknown"
    assert len(checker) == 1
    check(checker, pki.good)  # evicted: asked again
    assert checker.fetches == 4  # OCSP good, OCSP unknown + CRL, OCSP good


def test_unknown_to_the_responder_falls_back_to_the_crl(pki: PKI) -> None:
    checker = RevocationChecker()
    (status,) = check(checker, pki.unknown)
    assert status.status == "good"
    assert status.source == f"CRL {pki.crls.url('/ca.crl')}"
    assert any("unknown" in line for line in status.why)


def test_unknown_without_crl_fallback_is_refused_in_hard_fail(pki: PKI) -> None:
    checker = RevocationChecker(RevocationPolicy(crl=False))
    with pytest.raises(RevocationUnknownError) as caught:
        check(checker, pki.unknown)
    assert "does not know this certificate" in str(caught.value)
    assert caught.value.serial == pki.unknown.serial_number
    # the twin: a known certificate with the same policy passes
    (status,) = check(checker, pki.good)
    assert status.status == "good"


def test_soft_fail_logs_and_allows_an_undetermined_status(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    checker = RevocationChecker(RevocationPolicy(crl=False, mode="soft"))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        (status,) = check(checker, pki.unknown)
        check(checker, pki.unknown)  # cached: not logged twice
    assert status.status == "undetermined"
    warnings = [r for r in caplog.records if "could not be determined" in r.getMessage()]
    assert len(warnings) == 1
    assert "soft-fail" in warnings[0].getMessage()


# --------------------------------------------------------------------------- failures


def _ca_pointing_at(ocsp_url: str | None, crl_url: str | None) -> tuple[CA, IssuedIdentity]:
    ca = CA(ocsp_url=ocsp_url, crl_url=crl_url)
    return ca, ca.issue_cert("localhost")


def test_responder_down_falls_back_to_the_crl(pki: PKI) -> None:
    crls = pki.crls
    ca, leaf = _ca_pointing_at(f"http://127.0.0.1:{free_port()}/", crls.url("/down.crl"))
    crls.bodies["/down.crl"] = ca.crl()
    checker = RevocationChecker(RevocationPolicy(timeout=10))
    (status,) = check(checker, leaf)
    assert status.status == "good"
    assert status.source == f"CRL {crls.url('/down.crl')}"
    assert status.why and status.why[0].startswith("OCSP http://127.0.0.1:")
    ca.revoke(leaf, reason="superseded")
    crls.bodies["/down.crl"] = ca.crl()
    checker.clear()
    with pytest.raises(CertificateRevokedError) as caught:
        check(checker, leaf)
    assert caught.value.revocation_reason == "superseded"
    assert caught.value.source == f"CRL {crls.url('/down.crl')}"


def test_a_revocation_dated_ahead_is_refused_and_said_as_it_is(pki: PKI) -> None:
    """A CRL revoking a certificate as of a time still to come: refused now (as WSO2's
    verifier refuses it), and said to be dated ahead, not "was revoked on" a future
    date (h264). The twin: a revocation in the past reads as before."""
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/ahead.crl"))
    ahead = _dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=2)
    ca.revoke(leaf, reason="superseded", when=ahead)
    pki.crls.bodies["/ahead.crl"] = ca.crl()
    with pytest.raises(CertificateRevokedError) as caught:
        check(RevocationChecker(RevocationPolicy(timeout=10)), leaf)
    assert "(a time still to come: its CA dated it ahead; refused now)" in str(caught.value)
    # status() and the probe's lines say it too (h269: "REVOKED on" a time to come).
    (status,) = RevocationChecker(RevocationPolicy(timeout=10)).statuses([der(leaf)], [der(ca)])
    assert "REVOKED on " in status.describe() and "still to come" in status.describe()
    past_ca, past_leaf = _ca_pointing_at(None, pki.crls.url("/past.crl"))
    past_ca.revoke(past_leaf, reason="superseded")
    pki.crls.bodies["/past.crl"] = past_ca.crl()
    with pytest.raises(CertificateRevokedError) as caught:
        check(RevocationChecker(RevocationPolicy(timeout=10)), past_leaf)
    assert "was revoked on" in str(caught.value) and "still to come" not in str(caught.value)


def test_responder_and_crl_down_is_refused_once_per_retry_period(pki: PKI) -> None:
    _, leaf = _ca_pointing_at(f"http://127.0.0.1:{free_port()}/", pki.crls.url("/missing.crl"))
    checker = RevocationChecker(RevocationPolicy(timeout=10))
    with pytest.raises(RevocationUnknownError) as caught:
        check(checker, leaf)
    why = caught.value.why
    assert len(why) == 2
    assert why[0].startswith("OCSP ") and why[1].startswith("CRL ")
    assert "HTTP 404" in why[1]
    fetched = checker.fetches
    with pytest.raises(RevocationUnknownError):
        check(checker, leaf)
    assert checker.fetches == fetched  # the failure is cached: no fetch per request
    soft = RevocationChecker(RevocationPolicy(mode="soft", timeout=10))
    (status,) = check(soft, leaf)
    assert status.status == "undetermined"


def test_a_certificate_without_locations_is_undetermined() -> None:
    ca = CA()
    leaf = ca.issue_cert("localhost")
    with pytest.raises(RevocationUnknownError, match="names no OCSP and no CRL location"):
        check(RevocationChecker(), leaf)


def test_an_expired_crl_online_is_not_an_answer(pki: PKI) -> None:
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/expired.crl"))
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)
    pki.crls.bodies["/expired.crl"] = ca.crl(
        last_update=past, next_update=past + _dt.timedelta(days=1)
    )
    with pytest.raises(RevocationUnknownError, match="the CRL expired on"):
        check(RevocationChecker(), leaf)
    pki.crls.bodies["/expired.crl"] = ca.crl()
    (status,) = check(RevocationChecker(), leaf)
    assert status.status == "good"


def test_an_answer_with_several_crls_is_not_an_answer(pki: PKI) -> None:
    """A distribution point serves one list. A PEM answer with an older list (still
    current) before the newest, which revokes the leaf, was read for its first list
    only, and the revoked certificate passed in hard-fail mode (a review found it)."""
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/two.crl"))
    older = ca.crl(encoding="PEM")
    ca.revoke(leaf)
    pki.crls.bodies["/two.crl"] = older + ca.crl(encoding="PEM")
    with pytest.raises(RevocationUnknownError, match="holds 2 CRLs"):
        check(RevocationChecker(), leaf)
    # The twin: the newest alone is an answer, and it says revoked.
    pki.crls.bodies["/two.crl"] = ca.crl(encoding="PEM")
    with pytest.raises(CertificateRevokedError):
        check(RevocationChecker(), leaf)


def test_a_crl_signed_by_another_ca_is_not_an_answer(pki: PKI) -> None:
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/forged.crl"))
    pki.crls.bodies["/forged.crl"] = ca.crl(signer=CA())
    with pytest.raises(RevocationUnknownError, match="not signed by the issuer"):
        check(RevocationChecker(), leaf)


def test_an_ocsp_response_signed_by_another_key_is_not_an_answer(
    openssl_bin: str, tmp_path: Path
) -> None:
    for signer, directory in ((CA(), tmp_path / "forged"), (None, tmp_path / "own")):
        port = free_port()
        ca = CA(ocsp_url=f"http://127.0.0.1:{port}/")
        leaf = ca.issue_cert("localhost")
        directory.mkdir()
        with ocsp_responder(openssl_bin, ca, directory, signer=signer, port=port):
            checker = RevocationChecker(RevocationPolicy(crl=False))
            if signer is not None:
                with pytest.raises(RevocationUnknownError, match="not signed by the issuer"):
                    check(checker, leaf)
            else:  # the twin: the CA's own responder is believed
                (status,) = check(checker, leaf)
                assert status.status == "good"


def test_redirects_are_not_followed(pki: PKI) -> None:
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/moved.crl"))
    pki.crls.bodies["/real.crl"] = ca.crl()
    pki.crls.redirects["/moved.crl"] = "https://127.0.0.1:1/real.crl"
    with pytest.raises(
        RevocationUnknownError, match=r"redirected to https://127\.0\.0\.1:1/real\.crl"
    ):
        check(RevocationChecker(), leaf)


def test_a_redirect_is_named_without_its_credentials(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    """A distribution point behind a CDN or an object store redirects to a presigned
    URL: its query is a credential, as a password in it is. The message, the log line
    and the status name where it led, without them (h179)."""
    _, leaf = _ca_pointing_at(None, pki.crls.url("/presigned.crl"))
    pki.crls.redirects["/presigned.crl"] = (
        "http://admin:TOPSECRET@mirror.internal/crl/ca.crl"
        "?X-Amz-Credential=AKIA1&X-Amz-Signature=0123abcd#frag"
    )
    checker = RevocationChecker(RevocationPolicy(mode="soft"))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        (status,) = check(checker, leaf)
    assert status.status == "undetermined"
    (why,) = status.why
    assert why.endswith("redirected to http://mirror.internal/crl/ca.crl, not followed")
    shown = " ".join([*status.why, caplog.text])
    for secret in ("TOPSECRET", "admin", "X-Amz", "AKIA1", "0123abcd", "frag"):
        assert secret not in shown


def test_only_http_urls_are_fetched() -> None:
    _, leaf = _ca_pointing_at("https://127.0.0.1:1/", "ldap://127.0.0.1/cn=crl")
    with pytest.raises(RevocationUnknownError) as caught:
        check(RevocationChecker(), leaf)
    assert all("only http:// URLs are" in line for line in caught.value.why)


def test_an_oversized_crl_is_refused(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, leaf = _ca_pointing_at(None, pki.crls.url("/big.crl"))
    body = ca.crl()
    pki.crls.bodies["/big.crl"] = body
    monkeypatch.setattr("mtls._revocation.MAX_CRL_BYTES", len(body) - 1)
    with pytest.raises(RevocationUnknownError, match="allowed"):
        check(RevocationChecker(), leaf)
    monkeypatch.setattr("mtls._revocation.MAX_CRL_BYTES", len(body))
    (status,) = check(RevocationChecker(), leaf)
    assert status.status == "good"


def test_a_slow_server_is_given_up_on(pki: PKI) -> None:
    # A listening socket that never answers: the fetch ends at the timeout.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        _, leaf = _ca_pointing_at(f"http://127.0.0.1:{port}/", None)
        checker = RevocationChecker(RevocationPolicy(timeout=0.5))
        with pytest.raises(RevocationUnknownError, match=r"no answer within 0\.5 s"):
            check(checker, leaf)


# --------------------------------------------------------------------------- the chain


def test_the_leaf_issuer_must_be_known_to_check_it(pki: PKI) -> None:
    root = CA()
    intermediate = root.create_child_ca(crl_url=pki.crls.url("/intermediate.crl"))
    pki.crls.bodies["/intermediate.crl"] = intermediate.crl()
    leaf = intermediate.issue_cert("localhost")
    # the leaf alone (an ssl module without the verified chain), only the root trusted
    with pytest.raises(RevocationUnknownError, match="its issuer is neither in the verified"):
        RevocationChecker().check([der(leaf)], [der(root)])
    # with the verified chain, or the intermediate trusted, it is checked
    (status,) = RevocationChecker(RevocationPolicy(full_chain=False)).check(
        [der(leaf), der(intermediate)], [der(root)]
    )
    assert status.status == "good"
    (status,) = RevocationChecker().check([der(leaf)], [der(intermediate)])
    assert status.status == "good"


def test_full_chain_checks_the_intermediate_too(pki: PKI) -> None:
    root = CA(crl_url=pki.crls.url("/root.crl"))
    intermediate = root.create_child_ca(crl_url=pki.crls.url("/inter.crl"))
    leaf = intermediate.issue_cert("localhost")
    pki.crls.bodies["/inter.crl"] = intermediate.crl()
    root.revoke(intermediate, reason="cACompromise")
    pki.crls.bodies["/root.crl"] = root.crl()
    chain = [der(leaf), der(intermediate), der(root)]
    with pytest.raises(CertificateRevokedError) as caught:
        RevocationChecker().check(chain, [der(root)])
    assert caught.value.revocation_reason == "cACompromise"
    assert caught.value.serial == intermediate.certificate.serial_number
    # leaf only: the revoked intermediate is not asked about
    (status,) = RevocationChecker(RevocationPolicy(full_chain=False)).check(chain, [der(root)])
    assert status.status == "good"


def _rollover(pki: PKI) -> tuple[list[bytes], bytes, Any]:
    """A CA that rolled its key over (RFC 4210 4.4): its anchor (old key K1), the
    NewWithOld certificate (its own name, the new key K2, signed by K1; listed in K1's
    CRL as ``revoke(serial)`` asks) and a leaf the new key issued."""
    now = _dt.datetime.now(_dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rolled-over CA")])
    k1, k2, k_leaf = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))

    def cert(subject: x509.Name, public: Any, signer: Any, serial: int, crl: str, ca: bool) -> Any:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.CRLDistributionPoints([point]), critical=False)
            .sign(signer, hashes.SHA256())
        )

    old, new = pki.crls.url("/rollover-old.crl"), pki.crls.url("/rollover-new.crl")
    anchor = cert(ca_name, k1.public_key(), k1, 1, old, True)
    new_with_old = cert(ca_name, k2.public_key(), k1, 2, old, True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rolled leaf")])
    leaf = cert(leaf_name, k_leaf.public_key(), k2, 3, new, False)

    def crl(signer: Any, revoked: tuple[int, ...]) -> bytes:
        made = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_name)
            .last_update(now - _dt.timedelta(minutes=1))
            .next_update(now + _dt.timedelta(days=1))
        )
        for serial in revoked:
            made = made.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - _dt.timedelta(minutes=1))
                .build()
            )
        return made.sign(signer, hashes.SHA256()).public_bytes(Encoding.DER)

    pki.crls.bodies["/rollover-new.crl"] = crl(k2, ())

    def revoke(*serials: int) -> None:
        pki.crls.bodies["/rollover-old.crl"] = crl(k1, serials)

    chain = [der(leaf), der(new_with_old), der(anchor)]
    return chain, der(anchor), revoke


def test_a_ca_certificate_of_a_key_rollover_is_checked(pki: PKI) -> None:
    """A self-issued CA certificate signed by another key of its CA (a key rollover's
    NewWithOld, AD CS's cross certificates) is no root: with ``full_chain`` it is asked
    about as any CA certificate of the chain. The chain ended at it, and one its issuer
    revoked passed (h179), in both modes."""
    chain, anchor, revoke = _rollover(pki)
    revoke()
    leaf_status, ca_status = RevocationChecker().check(chain, [anchor])
    assert (leaf_status.status, ca_status.status) == ("good", "good")
    assert ca_status.serial == 2 and ca_status.subject == "CN=rolled-over CA"
    revoke(2)
    for mode in ("hard", "soft"):
        with pytest.raises(CertificateRevokedError) as caught:
            RevocationChecker(RevocationPolicy(mode=mode)).check(chain, [anchor])
        assert caught.value.serial == 2


def test_an_anchor_is_not_checked_unless_another_anchor_issued_it() -> None:
    ca = CA()
    leaf = ca.issue_cert("localhost")  # no locations at all: checking it would fail
    assert RevocationChecker().check([der(leaf)], [der(leaf)]) == ()
    assert RevocationChecker().check([der(ca)], [der(ca), der(leaf)]) == ()  # self-issued
    # Pinned beside its CA, it is checked against it, as it would be unpinned: here
    # undetermined (no locations), which hard-fail refuses and soft-fail allows.
    with pytest.raises(RevocationUnknownError):
        RevocationChecker().check([der(leaf)], [der(leaf), der(ca)])
    soft = RevocationChecker(RevocationPolicy(mode="soft"))
    (status,) = soft.check([der(leaf)], [der(leaf), der(ca)])
    assert status.status == "undetermined" and status.serial == leaf.serial_number
    # An intermediate kept beside its root is a CA anchor: never asked about (a root
    # and an intermediate without locations in one truststore must not fail hard).
    ica = ca.create_child_ca(name="kept intermediate")
    below = ica.issue_cert("localhost")
    (only,) = soft.check([der(below), der(ica)], [der(ca), der(ica)])
    assert only.serial == below.serial_number
    assert RevocationChecker().check([der(ica)], [der(ca), der(ica)]) == ()
    # A pinned certificate whose extensions cryptography cannot read (OpenSSL takes
    # them): asked about (undetermined here), never passed over as if it were a CA.
    now = _dt.datetime.now(_dt.UTC)
    odd = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "odd")]))
        .issuer_name(ca.certificate.subject)
        .public_key(ca.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ExtensionOID.TLS_FEATURE, b"\x05\x00"),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError):
        _ = odd.extensions  # the premise: cryptography cannot read them
    with pytest.raises(RevocationUnknownError):
        RevocationChecker().check([der(odd)], [der(odd), der(ca)])


def test_policy_values_are_validated() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        RevocationPolicy(mode="lenient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_size must be a whole number"):
        RevocationPolicy(cache_size=0)
    with pytest.raises(ValueError, match="needs ocsp=True, crl=True or both"):
        RevocationPolicy(ocsp=False, crl=False)


def test_status_to_dict_is_json_ready(pki: PKI) -> None:
    import json

    (status,) = check(RevocationChecker(), pki.good)
    data = status.to_dict()
    assert json.loads(json.dumps(data))["serial"] == f"{pki.good.serial_number:x}"
    assert data["status"] == "good"
    assert "good" in status.describe()


def test_crl_server_fixture_counts(pki: PKI) -> None:
    # the CRL server used above really serves what it is given (and nothing else)
    server = CRLServer()
    try:
        server.bodies["/x"] = b"abc"
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.url("/x"), timeout=10) as response:
            assert response.read() == b"abc"
        assert server.hits == {"/x": 1}
    finally:
        server.close()


def test_concurrent_handshakes_share_one_fetch(pki: PKI) -> None:
    import threading

    checker = RevocationChecker()
    start = threading.Barrier(8)
    results: list[str] = []

    def one() -> None:
        start.wait(10)
        (status,) = check(checker, pki.good)
        results.append(status.status)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["good"] * 8
    assert checker.fetches == 1


def test_a_check_arriving_as_the_first_fetch_ends_does_not_fetch_again(pki: PKI) -> None:
    """The one-fetch gate was dropped before the answer was cached: a handshake that
    came in between found neither, and fetched again. The window is held open here:
    once its gate is gone, the first fetch takes the checker's lock again only after a
    second check has asked the cache (twice if the first asking missed)."""
    import threading

    removed, asked = threading.Event(), threading.Event()
    tester, misses = threading.get_ident(), []

    class Gates(dict):  # type: ignore[type-arg]
        def __delitem__(self, key: object) -> None:
            removed.set()
            super().__delitem__(key)

    class HeldLock:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __enter__(self) -> object:
            if threading.get_ident() != tester and removed.is_set():
                assert asked.wait(30)
            return self.inner.__enter__()

        def __exit__(self, *exc: object) -> object:
            return self.inner.__exit__(*exc)

    checker = RevocationChecker()
    checker._gates = Gates()  # type: ignore[assignment]
    checker._lock = HeldLock(checker._lock)  # type: ignore[assignment]
    cached = checker._cached

    def asking(key: tuple[str, int]) -> object:
        hit = cached(key)
        if threading.get_ident() == tester:
            misses.append(hit is None)
            if hit is not None or len(misses) == 2:
                asked.set()
        return hit

    checker._cached = asking  # type: ignore[method-assign,assignment]
    first = threading.Thread(target=check, args=(checker, pki.good))
    first.start()
    assert removed.wait(30)  # the first fetch is over, its gate removed
    (status,) = check(checker, pki.good)
    asked.set()
    first.join(30)
    assert status.status == "good"
    assert checker.fetches == 1


def test_a_cached_answer_past_its_end_on_the_wall_clock_is_asked_again(pki: PKI) -> None:
    """The cache kept an answer by the monotonic clock alone, which stands still while
    a machine is suspended or a VM paused: after eight hours asleep, an answer whose
    nextUpdate had long passed was still served (a sweep moved the wall clock with
    time-machine). An entry now ends at the first of its monotonic deadline and its
    answer's end. Here the wall clock is "moved" by dating the kept answer back."""
    import dataclasses

    checker = RevocationChecker()
    (status,) = check(checker, pki.good)
    assert checker.fetches == 1
    check(checker, pki.good)
    assert checker.fetches == 1  # the twin: a current answer is reused
    ((key, (deadline, kept)),) = checker._cache.items()
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=1)
    checker._cache[key] = (deadline, dataclasses.replace(kept, valid_until=past))
    assert checker.cached() == ()  # not shown as valid either
    (status,) = check(checker, pki.good)
    assert checker.fetches == 2 and status.status == "good"
    assert status.valid_until is not None and status.valid_until > past


def test_an_answer_that_is_not_ocsp_is_not_an_answer(pki: PKI) -> None:
    pki.crls.bodies["/not-ocsp"] = b"<html>proxy error</html>"
    # POST is what OCSP uses: the CRL server answers GET only, so serve it through a CA
    # whose responder URL points at a GET-only path: HTTP 501 is "no answer" too.
    _, leaf = _ca_pointing_at(pki.crls.url("/not-ocsp"), None)
    with pytest.raises(RevocationUnknownError, match="HTTP 501"):
        check(RevocationChecker(), leaf)


def test_soft_fail_logs_an_unknown_issuer_once(caplog: pytest.LogCaptureFixture) -> None:
    root = CA()
    leaf = root.create_child_ca().issue_cert("localhost")
    soft = RevocationChecker(RevocationPolicy(mode="soft"))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        for _ in range(3):
            (status,) = soft.check([der(leaf)], [der(root)])
            assert status.status == "undetermined"
    logged = [r for r in caplog.records if "its issuer is neither" in r.getMessage()]
    assert len(logged) == 1


def test_an_unreadable_certificate_above_an_answered_leaf_is_not_reached(pki: PKI) -> None:
    """The leaf's issuer is an anchor, so the walk stops there; an unreadable leaf is
    undetermined (tests/revocation/test_chain_gaps.py)."""
    (status,) = RevocationChecker().check([der(pki.good), b"\x30\x00"], [der(pki.ca)])
    assert status.status == "good"
    assert status.serial == pki.good.serial_number


def test_soft_fail_says_once_when_a_status_is_known_again(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    """Soft-fail warned that a status could not be determined (once per retry period),
    and said nothing when the responder came back (a persistent-failure sweep): a
    status page's reader had the outage but not its end. Now one "resolved:" line."""
    ca = CA(crl_url=pki.crls.url("/comes-back.crl"))
    leaf = ca.issue_cert("localhost")
    checker = RevocationChecker(RevocationPolicy(mode="soft", timeout=10))
    with caplog.at_level(logging.INFO, logger="mtls"):
        (down,) = check(checker, leaf)  # 404: undetermined, allowed, warned
        pki.crls.bodies["/comes-back.crl"] = ca.crl()
        checker.clear()  # the cached failure forgotten: ask again
        (back,) = check(checker, leaf)
        checker.clear()
        (again,) = check(checker, leaf)  # good again: nothing more to say
    assert (down.status, back.status, again.status) == ("undetermined", "good", "good")
    said = [r.getMessage() for r in caplog.records]
    assert sum("could not be determined" in m for m in said) == 1, said
    resolved = [m for m in said if m.startswith("resolved: the revocation status of")]
    assert len(resolved) == 1 and "is known again: good (CRL http://" in resolved[0], said


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_a_refusal_is_logged_once_per_answer(
    pki: PKI, caplog: pytest.LogCaptureFixture, mode: Any
) -> None:
    """A revoked backend (both modes) and, under hard-fail, a status that could not be
    determined refuse every connection: the log said nothing of either (an operator saw
    healthy profiles and failing requests). The refusal, once per answer at ERROR; a
    soft-fail unknown stays a WARNING; cached answers are not logged again; and
    statuses(), which refuses nothing (a report-only probe), says no refusal."""
    ca = CA(crl_url=pki.crls.url("/gone.crl"))  # 404: no answer
    unknown = ca.issue_cert("localhost")
    reporter = RevocationChecker(RevocationPolicy(mode=mode, timeout=10))
    with caplog.at_level(logging.INFO, logger="mtls"):
        (reported,) = reporter.statuses([der(pki.revoked)], [der(pki.ca)])
    assert reported.status == "revoked"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    caplog.clear()
    checker = RevocationChecker(RevocationPolicy(mode=mode, timeout=10))
    with caplog.at_level(logging.INFO, logger="mtls"):
        for _ in range(3):
            with pytest.raises(CertificateRevokedError) as revoked_error:
                check(checker, pki.revoked)
            if mode == "hard":
                with pytest.raises(RevocationUnknownError):
                    check(checker, unknown)
            else:
                check(checker, unknown)  # allowed
        (good,) = check(checker, pki.good)  # the twin: a good answer says nothing
    assert good.status == "good"
    revoked = [r for r in caplog.records if "was revoked on" in r.getMessage()]
    assert [r.levelno for r in revoked] == [logging.ERROR], caplog.text
    assert revoked[0].getMessage() == str(revoked_error.value)
    assert f"serial {pki.revoked.serial_number:x}" in revoked[0].getMessage()
    undetermined = [r for r in caplog.records if "could not be determined" in r.getMessage()]
    assert len(undetermined) == 1, caplog.text
    if mode == "hard":
        assert undetermined[0].levelno == logging.ERROR
        assert "; refused (hard-fail" in undetermined[0].getMessage()
    else:
        assert undetermined[0].levelno == logging.WARNING
        assert undetermined[0].getMessage().endswith("allowed (soft-fail)")
    assert not [r for r in caplog.records if f"{pki.good.serial_number:x}" in r.getMessage()]
