"""Downloaded CRLs: cached per (URL, issuer), complete lists only, within their scope.

A CRL web server on loopback serves lists a real test CA signed; each case that
refuses a list has its twin where the complete, in-scope list gives the answer.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls import CertificateRevokedError, RevocationChecker, RevocationPolicy
from mtls import RevocationUnknownError as Unknown
from mtls.testing import CA, IssuedIdentity
from tests.revocation._infra import CRLServer, crl_without_entries, idp


@pytest.fixture
def crls() -> Iterator[CRLServer]:
    server = CRLServer()
    try:
        yield server
    finally:
        server.close()


def der(cert: IssuedIdentity | CA) -> bytes:
    return cert.certificate.public_bytes(Encoding.DER)


def crl_only() -> RevocationChecker:
    return RevocationChecker(RevocationPolicy(ocsp=False))


def check(checker: RevocationChecker, leaf: IssuedIdentity, *anchors: CA) -> str:
    (status,) = checker.check([der(leaf)], [der(a) for a in anchors], host="localhost")
    return status.status


def test_a_cached_crl_of_one_ca_never_answers_for_another(crls: CRLServer) -> None:
    one, two = CA(name="CA one"), CA(name="CA two")
    one.crl_url = two.crl_url = crls.url("/shared.crl")
    leaf_one, leaf_two = one.issue_cert("localhost"), two.issue_cert("localhost")
    two.revoke(leaf_two)
    crls.bodies["/shared.crl"] = one.crl()  # the URL serves CA one's list
    checker = crl_only()
    assert check(checker, leaf_one, one, two) == "good"
    # CA one's list is cached for that URL: it must not vouch for CA two's leaf
    with pytest.raises(Unknown, match="not signed by the issuer CN=CA two"):
        check(checker, leaf_two, one, two)
    # the twin: once the URL serves CA two's list, its revocation is found
    crls.bodies["/shared.crl"] = two.crl()
    with pytest.raises(CertificateRevokedError):
        check(crl_only(), leaf_two, one, two)


def test_a_delta_crl_is_not_taken_as_the_complete_list(crls: CRLServer) -> None:
    ca = CA(crl_url=crls.url("/delta.crl"))
    leaf = ca.issue_cert("localhost")
    ca.revoke(leaf)
    # a delta that does not list the leaf (it changed earlier): a serial absent from
    # a delta says nothing
    crls.bodies["/delta.crl"] = crl_without_entries(ca, x509.DeltaCRLIndicator(1))
    with pytest.raises(Unknown, match="a delta CRL"):
        check(crl_only(), leaf, ca)
    crls.bodies["/delta.crl"] = ca.crl()
    with pytest.raises(CertificateRevokedError):
        check(crl_only(), leaf, ca)


@pytest.mark.parametrize(
    ("idp", "why"),
    [
        (idp(only_contains_ca_certs=True), "CA certificates only"),
        (
            idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})),
            "a partial CRL",
        ),
        (idp(indirect_crl=True), "an indirect CRL"),
        (
            idp(full_name=[x509.UniformResourceIdentifier("http://127.0.0.1:1/other.crl")]),
            "names another distribution point",
        ),
    ],
)
def test_a_crl_out_of_scope_is_undetermined(
    crls: CRLServer, idp: x509.IssuingDistributionPoint, why: str
) -> None:
    ca = CA(crl_url=crls.url("/scoped.crl"))
    leaf = ca.issue_cert("localhost")
    crls.bodies["/scoped.crl"] = crl_without_entries(ca, idp)
    with pytest.raises(Unknown, match=why):
        check(crl_only(), leaf, ca)


def test_a_crl_in_scope_answers(crls: CRLServer) -> None:
    url = crls.url("/scoped.crl")
    ca = CA(crl_url=url)
    leaf = ca.issue_cert("localhost")
    in_scope = idp(only_contains_user_certs=True, full_name=[x509.UniformResourceIdentifier(url)])
    crls.bodies["/scoped.crl"] = crl_without_entries(ca, in_scope)
    assert check(crl_only(), leaf, ca) == "good"


def test_a_crl_dated_in_the_future_is_not_an_answer(crls: CRLServer) -> None:
    ca = CA(crl_url=crls.url("/future.crl"))
    leaf = ca.issue_cert("localhost")
    later = _dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=1)
    crls.bodies["/future.crl"] = ca.crl(last_update=later)
    with pytest.raises(Unknown, match="dated in the future"):
        check(crl_only(), leaf, ca)
    crls.bodies["/future.crl"] = ca.crl()
    assert check(crl_only(), leaf, ca) == "good"
