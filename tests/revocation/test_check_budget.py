"""``RevocationPolicy.check_timeout``: one budget for a whole check, over every fetch.

Before it, a check waited up to certificates x URLs x ``timeout`` when responders hung
(20 s at the defaults for a two-certificate chain), whatever the HTTP client's timeout.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls import (
    CertificateRevokedError,
    CertificateStatus,
    RevocationChecker,
    RevocationPolicy,
    RevocationUnknownError,
)
from mtls._fetch import FetchError
from mtls.testing import CA
from tests._fdlimit import no_descriptor_left
from tests._helpers import wait_for
from tests.revocation._infra import PKI, leaf_naming, revocation_pki
from tests.revocation.test_online import check, der


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


def _shared_intermediate(
    pki: PKI, hung_url: str, name: str
) -> tuple[CA, CA, list[bytes], list[bytes]]:
    """A root and its intermediate (CRLs served, nothing revoked), and two backends'
    chains under it: one whose leaf names a hung OCSP responder first (then the
    intermediate's CRL), one whose leaf names the CRL only."""
    root = CA(crl_url=pki.crls.url(f"/{name}-root.crl"))
    inter = root.create_child_ca(crl_url=pki.crls.url(f"/{name}-inter.crl"))
    pki.crls.bodies[f"/{name}-root.crl"] = root.crl()
    pki.crls.bodies[f"/{name}-inter.crl"] = inter.crl()
    issuer, key = inter.certificate.subject, inter.private_key
    assert not isinstance(key, str)
    crl = pki.crls.url(f"/{name}-inter.crl")
    slow = leaf_naming(issuer, key, ocsp_url=hung_url, crl_url=crl)  # type: ignore[arg-type]
    fine = leaf_naming(issuer, key, crl_url=crl)  # type: ignore[arg-type]

    def chain(leaf: x509.Certificate) -> list[bytes]:
        return [leaf.public_bytes(Encoding.DER), der(inter)]

    return root, inter, chain(slow), chain(fine)


def test_a_status_the_budget_left_unasked_is_not_kept(pki: PKI, hung_url: str) -> None:
    """One backend's hung responder spends the check's budget: the intermediate's
    status is left unasked, and valid for that check only. It was kept as undetermined
    for retry_failed_after, and every other backend under that intermediate was
    refused for a minute (h179). The hung responder, which had the whole budget, is
    not asked again for its certificate before its time: the next check asks the
    CRL the budget left unasked."""
    root, _, slow, fine = _shared_intermediate(pki, hung_url, "unasked")
    checker = RevocationChecker(RevocationPolicy(timeout=0.3, check_timeout=0.3))
    leaf, intermediate = checker.statuses(slow, [der(root)])
    assert (leaf.status, intermediate.status) == ("undetermined", "undetermined")
    assert leaf.why[0].startswith("OCSP http://127.0.0.1:")
    assert "not asked, the check's 0.3 s (check_timeout)" in leaf.why[1]
    assert "not asked, the check's 0.3 s (check_timeout)" in intermediate.why[0]
    # The other backend: its leaf answers, and the intermediate is asked now.
    leaf, intermediate = checker.check(fine, [der(root)])
    assert (leaf.status, intermediate.status) == ("good", "good")
    # The first backend again: its hung responder is passed over, the CRL answers.
    fetches = checker.fetches
    leaf, intermediate = checker.check(slow, [der(root)])
    assert (leaf.status, intermediate.status) == ("good", "good")
    assert leaf.why[0].startswith("OCSP http://127.0.0.1:")
    assert "(not asked again until " in leaf.why[0]
    assert checker.fetches == fetches  # the CRL was downloaded for the other backend


def test_a_revoked_intermediate_is_not_passed_for_an_unasked_status(
    pki: PKI, hung_url: str
) -> None:
    """Under soft-fail, the intermediate left unasked by one backend's hung
    responder was kept as undetermined, and another backend under it passed with
    the intermediate revoked (h179). Now it is asked, and refused."""
    root, inter, slow, fine = _shared_intermediate(pki, hung_url, "revoked")
    root.revoke(inter)
    pki.crls.bodies["/revoked-root.crl"] = root.crl()
    checker = RevocationChecker(RevocationPolicy(mode="soft", timeout=0.3, check_timeout=0.3))
    statuses = checker.check(slow, [der(root)])  # allowed: nothing could be determined
    assert [status.status for status in statuses] == ["undetermined", "undetermined"]
    with pytest.raises(CertificateRevokedError) as caught:
        checker.check(fine, [der(root)])
    assert caught.value.serial == inter.certificate.serial_number


def test_a_crl_in_hand_spends_none_of_the_budget(pki: PKI, hung_url: str) -> None:
    """A leaf answered by a CRL downloaded already spent no time: the intermediate's
    hung source, asked next, had the whole budget, and is remembered as failed. Taken
    for cut short, it was asked again for every new leaf under the intermediate (a
    check's full budget and a warning each, h181)."""
    root = CA(crl_url=hung_url)  # the intermediate's own certificate names it
    inter = root.create_child_ca(crl_url=pki.crls.url("/in-hand.crl"))
    pki.crls.bodies["/in-hand.crl"] = inter.crl()
    checker = RevocationChecker(RevocationPolicy(mode="soft", timeout=0.3, check_timeout=0.3))
    for number in range(5):
        leaf = inter.issue_cert("localhost", common_name=f"leaf {number}")
        checker.check([der(leaf), der(inter)], [der(root)])
    # The first check downloads the leaves' CRL and cuts the hung one short; the
    # second asks the hung one with the whole budget; after that, nothing is fetched.
    assert checker.fetches == 3


@pytest.mark.parametrize("value", [0, -1, float("inf"), True, "10"])
def test_check_timeout_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ValueError, match="check_timeout must be a positive number of seconds"):
        RevocationPolicy(check_timeout=value)  # type: ignore[arg-type]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_fetch_this_process_could_not_make_is_not_held_against_the_source(pki: PKI) -> None:
    """No descriptor for the fetch's socket (EMFILE): the status was kept as
    undetermined, and the source not asked again, for retry_failed_after, so a
    hard-fail backend was refused for a minute after the descriptors were back
    (h211). It is this check's shortfall: the next check asks. The twin: a source
    that fails on its own is not asked again before its time."""
    ca = CA(crl_url=pki.crls.url("/emfile.crl"))
    leaf = ca.issue_cert("localhost")
    pki.crls.bodies["/emfile.crl"] = ca.crl()
    checker = RevocationChecker(RevocationPolicy(retry_failed_after=600))
    with no_descriptor_left():
        with pytest.raises(RevocationUnknownError) as caught:
            check(checker, leaf)
    assert "Too many open files" in caught.value.why[0]
    fetches = checker.fetches
    (status,) = check(checker, leaf)
    assert checker.fetches == fetches + 1
    assert status.status == "good" and status.source.startswith("CRL ")
    # The twin: the list gone from the server is the source's failure, remembered.
    gone = ca.issue_cert("localhost")
    del pki.crls.bodies["/emfile.crl"]
    checker.clear()
    with pytest.raises(RevocationUnknownError):
        check(checker, gone)
    fetches = checker.fetches
    with pytest.raises(RevocationUnknownError):
        check(checker, gone)
    assert checker.fetches == fetches  # not asked again


def test_what_a_signature_check_imports_is_imported_with_the_checker() -> None:
    """cryptography imports its OpenSSL backend on the first ECDSA verification: at a
    handshake, in a process at its descriptor limit, that import raised a bare
    OSError naming cryptography's file (h211). It comes with the checker's module."""
    code = (
        "import sys, mtls._revocation; "
        "print('cryptography.hazmat.backends.openssl.backend' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


class _HeldFetches:
    """``mtls._revocation.fetch`` replaced: each call waits until the test releases it,
    then fails as a fetch this process could not make (a status valid for its check
    only, never cached: FetchError.local); how many run at once is counted."""

    def __init__(self) -> None:
        self.releases: list[threading.Event] = []
        self.running = 0
        self.peak = 0
        self.local = True  # how the next released fetches fail: the process's, or the source's
        self._lock = threading.Lock()

    def __call__(self, url: str, *args: object, **kwargs: object) -> bytes:
        release = threading.Event()
        with self._lock:
            self.releases.append(release)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            release.wait(30)
        finally:
            with self._lock:
                self.running -= 1
        raise FetchError(f"{url}: held by the test", local=self.local)

    def release_all(self) -> None:
        for release in list(self.releases):
            release.set()


def test_a_check_waiting_on_another_checks_fetch_stays_within_its_budget_and_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two defects of the one-fetch-per-certificate gate (h228). A check that waited on
    another check's fetch of the same certificate waited for that fetch whatever its
    own check_timeout (1.4 times it in h228's run): it now waits within its budget,
    and says why its status is undetermined. And when the status the asking check found
    could not be kept (its budget cut short), the check taking over removed the gate,
    so a third check asked beside it: one check at a time asks now."""
    import mtls._revocation as revocation

    held = _HeldFetches()
    monkeypatch.setattr(revocation, "fetch", held)
    ca = CA(ocsp_url="http://127.0.0.1:9/ocsp")
    cert, issuer = ca.issue_cert("localhost").certificate, ca.certificate
    checker = RevocationChecker(RevocationPolicy(timeout=30, check_timeout=30))
    results: dict[str, object] = {}

    def ask(name: str, budget: float) -> threading.Thread:
        def run() -> None:
            deadline = revocation._CheckBudget(time.monotonic() + budget)
            results[name] = checker._status(cert, issuer, True, deadline)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    try:
        first = ask("first", 30)
        wait_for(lambda: len(held.releases) == 1, timeout=10)
        # Another check, with a budget shorter than the first one's fetch takes.
        short = ask("short", 0.2)
        short.join(10)
        assert not short.is_alive(), "it waited past its budget for the other's fetch"
        status = results["short"]
        assert isinstance(status, CertificateStatus) and status.status == "undetermined"
        assert "another check was still asking its sources" in status.why[0]
        assert len(held.releases) == 1  # it did not ask beside the first
        second = ask("second", 30)
        held.releases[0].set()  # the first fetch fails: a status it may not keep
        first.join(10)
        wait_for(lambda: len(held.releases) == 2, timeout=10)  # a second check asks
        late = ask("late", 0.2)  # one more arrives while it does
        late.join(10)
        assert not late.is_alive(), "it asked beside the check asking"
        assert held.peak == 1 and len(held.releases) == 2
        held.release_all()
        second.join(10)
        assert not checker._gates
    finally:
        held.release_all()


def test_a_check_that_asks_after_waiting_does_not_hold_its_shortfall_against_the_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A check that waited for another's fetch, whose status could not be kept, asks
    next with what is left of its budget. Its fetch, failing past its deadline, was
    taken for the source's own failure (it had asked nothing before, so it seemed to
    have had the whole budget): the status was cached undetermined for
    retry_failed_after, and the next backend under the same CA refused for a minute
    (h229, as in h179). The wait spent its budget: a shortfall, kept for no one. The
    twin: the same failure for the first check, with its whole budget, is the
    source's, and kept."""
    import mtls._revocation as revocation

    held = _HeldFetches()
    monkeypatch.setattr(revocation, "fetch", held)
    ca = CA(ocsp_url="http://127.0.0.1:9/ocsp")
    cert, issuer = ca.issue_cert("localhost").certificate, ca.certificate
    checker = RevocationChecker(RevocationPolicy(timeout=30, check_timeout=30))
    threads: list[threading.Thread] = []

    def ask(budget: float) -> float:
        deadline = revocation._CheckBudget(time.monotonic() + budget)
        thread = threading.Thread(
            target=checker._status, args=(cert, issuer, True, deadline), daemon=True
        )
        thread.start()
        threads.append(thread)
        return deadline.at

    try:
        ask(30)
        wait_for(lambda: len(held.releases) == 1, timeout=10)
        waiter_deadline = ask(1.0)
        held.releases[0].set()  # the first check's fetch: its status is not kept
        wait_for(lambda: len(held.releases) == 2, timeout=10)  # the waiter asks next
        wait_for(lambda: time.monotonic() > waiter_deadline, timeout=10)
        held.local = False  # it fails as a source fails, past the waiter's deadline
        held.releases[1].set()
        threads[1].join(10)
        assert not threads[1].is_alive()
        assert [s for s in checker.cached() if s.serial == cert.serial_number] == []
        assert not checker._failed  # nothing held against the source
        # The twin: a check with its whole budget, whose source fails on its own.
        ask(30)
        wait_for(lambda: len(held.releases) == 3, timeout=10)
        held.releases[2].set()
        threads[2].join(10)
        (kept,) = [s for s in checker.cached() if s.serial == cert.serial_number]
        assert kept.status == "undetermined" and checker._failed
    finally:
        held.release_all()
