"""``RevocationPolicy.check_timeout``: one budget for a whole check, over every fetch.

Before it, a check waited up to certificates x URLs x ``timeout`` when responders hung
(20 s at the defaults for a two-certificate chain), whatever the HTTP client's timeout.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest

from mtls import RevocationChecker, RevocationPolicy, RevocationUnknownError
from mtls.testing import CA
from tests.revocation._infra import PKI, revocation_pki
from tests.revocation.test_online import check


@pytest.fixture(scope="module")
def pki(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PKI]:
    with revocation_pki(openssl_bin, tmp_path_factory.mktemp("ocsp")) as made:
        yield made


@pytest.fixture
def hung_url() -> Iterator[str]:
    """An OCSP URL whose server takes the connection (the listen backlog) and never
    answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/ocsp"


def test_the_urls_left_when_the_budget_is_spent_are_not_asked(pki: PKI, hung_url: str) -> None:
    ca = CA(ocsp_url=hung_url, crl_url=pki.crls.url("/budget.crl"))
    leaf = ca.issue_cert("localhost")
    pki.crls.bodies["/budget.crl"] = ca.crl()
    # Each fetch may take 30 s, the whole check 0.3 s: the hung responder gets 0.3 s.
    checker = RevocationChecker(RevocationPolicy(timeout=30, check_timeout=0.3))
    with pytest.raises(RevocationUnknownError) as caught:
        check(checker, leaf)
    ocsp_why, crl_why = caught.value.why
    assert ocsp_why.startswith("OCSP ") and ocsp_why.endswith(
        "no answer within what was left of the check's 0.3 s (check_timeout)"
    )
    assert crl_why == (
        f"CRL {pki.crls.url('/budget.crl')}: not asked, the check's 0.3 s (check_timeout) "
        "were spent before it"
    )
    assert checker.fetches == 1
    assert pki.crls.hits.get("/budget.crl") is None  # never downloaded


def test_a_crl_already_downloaded_answers_with_the_budget_spent(pki: PKI, hung_url: str) -> None:
    ca = CA(ocsp_url=hung_url, crl_url=pki.crls.url("/kept.crl"))
    first, second = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    pki.crls.bodies["/kept.crl"] = ca.crl()
    checker = RevocationChecker(RevocationPolicy(timeout=0.3, check_timeout=30))
    (status,) = check(checker, first)  # the OCSP fetch times out, the CRL answers
    assert status.status == "good" and status.source.startswith("CRL ")
    # Now the hung OCSP fetch spends the whole budget: the CRL in hand still answers.
    checker.policy = dataclasses.replace(checker.policy, check_timeout=0.3)
    (status,) = check(checker, second)
    assert status.status == "good" and status.source.startswith("CRL ")
    assert pki.crls.hits["/kept.crl"] == 1


@pytest.mark.parametrize("value", [0, -1, float("inf"), True, "10"])
def test_check_timeout_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ValueError, match="check_timeout must be a positive number of seconds"):
        RevocationPolicy(check_timeout=value)  # type: ignore[arg-type]
