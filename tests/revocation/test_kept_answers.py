"""A revocation once found is not forgotten (h247, h249).

A status verified revoked was dropped after ``cache_delay``, and when its responder
could not be reached then, soft-fail let the certificate in; a CRL downloaded and
still current (before its nextUpdate) that lists the certificate was dropped the same
way; a status answered from a list downloaded a while ago was kept ``cache_delay``
from the check, not from the download. What is remembered only ever refuses: a "good"
answer kept is never used when its source is down (h249: hard-fail would have turned
soft until its nextUpdate). A real OCSP responder and CRL distribution point
(``mtls.testing.RevocationServer``) over loopback, taken down with HTTP 503; every
case with its twin.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

import mtls
from mtls import CertificateRevokedError, RevocationPolicy, RevocationUnknownError
from mtls._fetch import FetchError
from mtls.testing import CA, IssuedIdentity, MTLSServer, RevocationServer
from tests._helpers import PASSWORD, recertified, whoami, write_identity, write_trust

# Every check asks its sources again: what a check does once cache_delay has passed.
AT_ONCE = {"cache_delay": 1e-6, "retry_failed_after": 1e-6, "timeout": 5.0}


@pytest.fixture
def served() -> Iterator[tuple[CA, RevocationServer]]:
    with RevocationServer() as responder:
        ca = CA(name="kept answers CA", ocsp_url=responder.ocsp_url, crl_url=responder.crl_url)
        responder.serve(ca)
        yield ca, responder


def _check(
    checker: mtls.RevocationChecker, leaf: IssuedIdentity, ca: CA
) -> tuple[mtls.CertificateStatus, ...]:
    """The check a handshake makes: raises for revoked, and undetermined in hard-fail."""
    return checker.check(
        [leaf.certificate.public_bytes(Encoding.DER)],
        [ca.certificate.public_bytes(Encoding.DER)],
        host="backend",
    )


def _status(
    checker: mtls.RevocationChecker, leaf: IssuedIdentity, ca: CA
) -> mtls.CertificateStatus:
    """The status a check finds now (as a report does: never raises)."""
    (status,) = checker.statuses(
        [leaf.certificate.public_bytes(Encoding.DER)],
        [ca.certificate.public_bytes(Encoding.DER)],
    )
    return status


@pytest.mark.parametrize("ocsp", [True, False], ids=["ocsp", "crl"])
def test_a_revoked_certificate_stays_refused_when_its_sources_go_down(
    served: tuple[CA, RevocationServer], ocsp: bool
) -> None:
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="soft", ocsp=ocsp, **AT_ONCE))
    revoked = ca.issue_cert("localhost")
    ca.revoke(revoked, reason="keyCompromise")
    with pytest.raises(CertificateRevokedError):
        _check(checker, revoked, ca)
    responder.http_status = 503
    with pytest.raises(CertificateRevokedError):
        _check(checker, revoked, ca)  # was: undetermined, let in (soft-fail)
    # Twin: a certificate never found revoked, its sources down: undetermined (soft-fail
    # lets it in), even with a CRL downloaded and still current that does not list it.
    (status,) = _check(checker, ca.issue_cert("localhost"), ca)
    assert status.status == "undetermined", status


def test_a_revocation_is_final_once_its_answers_are_no_longer_current(
    served: tuple[CA, RevocationServer],
) -> None:
    """The OCSP answer kept is current for a while; past it (here: forgotten), a
    certificate found revoked (keyCompromise) is still refused when nothing answers.
    Twin: one on hold (certificateHold, which its CA may lift) is not kept so."""
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="soft", crl=False, **AT_ONCE))
    for reason, final in (("keyCompromise", True), ("certificateHold", False)):
        leaf = ca.issue_cert("localhost")
        ca.revoke(leaf, reason=reason)
        responder.http_status = None
        with pytest.raises(CertificateRevokedError):
            _check(checker, leaf, ca)
        responder.http_status = 503
        if final:
            with pytest.raises(CertificateRevokedError):
                _check(checker, leaf, ca)
        else:
            (status,) = _check(checker, leaf, ca)
            assert status.status == "undetermined"


def test_a_good_answer_kept_does_not_stand_in_for_a_responder_that_is_down(
    served: tuple[CA, RevocationServer],
) -> None:
    """h249: a "good" answer remembered until its own nextUpdate (a week, or ten years)
    let hard-fail through a responder outage an attacker makes, after the certificate
    was revoked. Hard-fail refuses when no source answers now; a revoked one is refused
    all the same (the twin)."""
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="hard", crl=False, **AT_ONCE))
    leaf = ca.issue_cert("localhost")
    (status,) = _check(checker, leaf, ca)
    assert status.status == "good"
    ca.revoke(leaf, reason="keyCompromise")
    responder.http_status = 503
    with pytest.raises(RevocationUnknownError):
        _check(checker, leaf, ca)
    responder.http_status = None
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)


def test_a_list_issued_before_the_revocation_does_not_undo_it(
    served: tuple[CA, RevocationServer],
) -> None:
    """h249: OCSP said revoked; with the responder blocked, the list issued before the
    revocation (still current, replayed over plain http) said good, and the certificate
    was let in. Only an answer issued after the revocation says otherwise (the twin: a
    list issued later that does not list it, its CA's word, is taken)."""
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="soft", **AT_ONCE))
    leaf = ca.issue_cert("localhost")
    older = ca.crl()  # issued before the revocation
    ca.revoke(leaf, reason="keyCompromise")
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)  # OCSP: revoked
    current = ca.crl
    ca.crl = lambda **_: older  # type: ignore[method-assign]  # the replayed list

    def responder_down(*_: object) -> None:
        raise FetchError("the OCSP responder is blocked")

    checker._ocsp = responder_down  # type: ignore[method-assign]
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    assert "a revocation is final" in _status(checker, leaf, ca).why[-1]
    # Twin: a list issued after it that does not list it (its CA lifted it).
    ca._revoked.clear()
    later = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=2)
    ca.crl = lambda **_: current(last_update=later)  # type: ignore[method-assign]
    (status,) = _check(checker, leaf, ca)
    assert status.status == "good" and status.source == f"CRL {responder.crl_url}"


def test_a_kept_list_that_lists_the_certificate_refuses_it_while_its_point_is_down(
    served: tuple[CA, RevocationServer],
) -> None:
    """h247: a list still current was dropped after cache_delay, and hard-fail called a
    certificate it lists undetermined (soft-fail let it in). It refuses it, and the
    distribution point is asked again after retry_failed_after, not on every
    handshake (h249). Twin: a certificate it does not list is undetermined."""
    ca, responder = served
    checker = mtls.RevocationChecker(
        RevocationPolicy(mode="soft", ocsp=False, cache_delay=1e-6, retry_failed_after=600)
    )
    listed, other = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    ca.revoke(listed, reason="keyCompromise")
    (status,) = _check(checker, other, ca)  # downloads the list
    assert status.status == "good"
    checker._revoked.clear()  # (never found revoked before: only the list says so)
    responder.http_status = 503
    asked = len(responder.requests)
    for _ in range(3):
        with pytest.raises(CertificateRevokedError):
            _check(checker, listed, ca)
    assert len(responder.requests) == asked + 1  # asked once, then not for 600 s
    assert any("still current (before its nextUpdate), lists it" in line
               for line in _status(checker, listed, ca).why)  # fmt: skip
    (status,) = _check(checker, ca.issue_cert("localhost"), ca)
    assert status.status == "undetermined"


def test_a_kept_good_answer_does_not_outweigh_a_revocation_found_since(
    served: tuple[CA, RevocationServer],
) -> None:
    """OCSP said good and is kept; the CRL then lists the certificate (the responder
    down): revoked. With both down, the OCSP answer kept must not let it in."""
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="soft", **AT_ONCE))
    leaf = ca.issue_cert("localhost")
    (status,) = _check(checker, leaf, ca)
    assert status.status == "good" and status.source is not None
    assert status.source.startswith("OCSP")
    ca.revoke(leaf, reason="keyCompromise")

    def responder_down(*_: object) -> None:
        raise FetchError("the OCSP responder is down")

    checker._ocsp = responder_down  # type: ignore[method-assign]  # its CRL still answers
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    assert _status(checker, leaf, ca).source == f"CRL {responder.crl_url}"
    responder.http_status = 503  # now the CRL too: the OCSP "good" kept must not win
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    assert _status(checker, leaf, ca).status == "revoked"


def test_a_status_from_a_kept_list_lasts_cache_delay_from_its_download(
    served: tuple[CA, RevocationServer],
) -> None:
    """A status answered from a list downloaded earlier was kept cache_delay from the
    check: a revocation published meanwhile went unseen for almost twice cache_delay.
    Twin: a list downloaded by this very check keeps its status cache_delay."""
    ca, responder = served
    delay = 600.0
    checker = mtls.RevocationChecker(
        RevocationPolicy(mode="hard", ocsp=False, cache_delay=delay, timeout=5.0)
    )
    first, second = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    (status,) = _check(checker, first, ca)
    assert status.valid_until is not None and status.checked_at is not None
    downloaded = status.checked_at
    assert status.valid_until <= downloaded + _dt.timedelta(seconds=delay + 1)
    # The second certificate is answered from the kept list: its status ends with the
    # list's cache_delay, not cache_delay after its own check.
    key = next(iter(checker._crls))
    mono, fetched, crl = checker._crls[key]
    checker._crls[key] = (mono, fetched - _dt.timedelta(seconds=300), crl)  # 5 minutes old
    (status,) = _check(checker, second, ca)
    assert status.valid_until is not None
    assert status.valid_until <= fetched - _dt.timedelta(seconds=300) + _dt.timedelta(seconds=delay)
    assert [kind for kind, _ in responder.requests] == ["crl"]  # one download for both


def test_end_to_end_soft_fail_keeps_refusing_a_revoked_backend(
    served: tuple[CA, RevocationServer], tmp_path
) -> None:
    """Through a profile set and real handshakes: the backend found revoked stays
    refused when its responder and distribution point go down (soft-fail let it in
    once cache_delay had passed). Twin: a good backend keeps being served."""
    ca, responder = served
    client_ca = CA(name="kept answers client CA")
    keystore = write_identity(client_ca.issue_cert("gw"), tmp_path / "gw.jks")
    trust = write_trust(ca, tmp_path / "trust.jks")
    revoked = ca.issue_cert("localhost")
    ca.revoke(revoked, reason="keyCompromise")
    with (
        MTLSServer(revoked.keystore(), client_ca=client_ca.truststore()) as bad,
        MTLSServer(ca.issue_cert("localhost").keystore(), client_ca=client_ca.truststore()) as ok,
    ):
        profiles = mtls.SSLProfileSet(
            [
                mtls.SSLProfile(
                    servers=(f"localhost:{bad.port}", f"localhost:{ok.port}"),
                    keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
                    truststore=mtls.StoreConfig(location=trust, password=PASSWORD),
                )
            ],
            revocation=RevocationPolicy(mode="soft", **AT_ONCE),
            reload_interval=None,
        )
        with profiles:
            for down in (None, 503):
                responder.http_status = down
                with pytest.raises(CertificateRevokedError):
                    whoami(profiles.context_for("localhost", bad.port), bad.port)
                assert whoami(profiles.context_for("localhost", ok.port), ok.port)


@pytest.mark.parametrize("client", ["httpx-async", "aiohttp"])
def test_async_clients_show_a_status_under_the_port_they_dialled(
    served: tuple[CA, RevocationServer], tmp_path, client: str
) -> None:
    """h247: over memory BIOs a connection knows no port, and status() showed another
    port's revoked certificate under a good backend's profile on the same host. The
    integrations say the port they dial. Twin: the revoked backend's profile shows it."""
    import asyncio

    ca, _ = served
    good, bad = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    ca.revoke(bad, reason="keyCompromise")
    trust = write_trust(ca, tmp_path / "trust.jks")
    with (
        MTLSServer(good, require_client_cert=False) as a,
        MTLSServer(bad, require_client_cert=False) as b,
    ):
        profiles = mtls.SSLProfileSet(
            [
                mtls.SSLProfile(
                    servers=(f"localhost:{server.port}",),
                    truststore=mtls.StoreConfig(location=trust, password=PASSWORD),
                )
                for server in (a, b)
            ],
            revocation=RevocationPolicy(mode="soft"),
            reload_interval=None,
        )

        async def requests() -> list[str]:
            outcomes = []
            if client == "httpx-async":
                from mtls.integrations.httpx import async_client

                async with async_client(profiles) as http:
                    for server in (a, b):
                        try:
                            await http.get(f"https://localhost:{server.port}/")
                            outcomes.append("ok")
                        except CertificateRevokedError:
                            outcomes.append("revoked")
                return outcomes
            from mtls.integrations.aiohttp import MTLSClientSession

            async with MTLSClientSession(profiles) as session:
                for server in (a, b):
                    try:
                        async with session.get(f"https://localhost:{server.port}/") as answer:
                            await answer.read()
                        outcomes.append("ok")
                    except CertificateRevokedError:
                        outcomes.append("revoked")
            return outcomes

        with profiles:
            assert asyncio.run(requests()) == ["ok", "revoked"]
            shown = {
                entry.servers[0]: {s.serial: s.status for s in entry.revocation.statuses}
                for entry in profiles.status().profiles
                if entry.revocation is not None
            }
    assert shown[f"localhost:{a.port}"] == {good.serial_number: "good"}, shown
    assert shown[f"localhost:{b.port}"] == {bad.serial_number: "revoked"}, shown


def test_a_good_answer_signed_before_a_revocation_dated_back_is_set_aside(
    served: tuple[CA, RevocationServer],
) -> None:
    """h250: a revocation dated back to the compromise (two days), and a "good" OCSP
    answer the CA signed yesterday, still current, replayed by the key's holder: it
    undid the revocation. Twin: an answer the CA issues after it (the revocation
    withdrawn) is taken."""
    from cryptography.x509 import ocsp

    ca, _ = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="hard", crl=False, **AT_ONCE))
    leaf = ca.issue_cert("localhost")
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    signed_yesterday = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf.certificate, issuer=ca.certificate, algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now - _dt.timedelta(days=1),
            next_update=now + _dt.timedelta(days=6), revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        .sign(ca.private_key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )  # fmt: skip
    ca.revoke(leaf, reason="keyCompromise", when=now - _dt.timedelta(days=2))
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    answer = ca.ocsp_response
    ca.ocsp_response = lambda *_, **__: signed_yesterday  # type: ignore[method-assign]
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    assert "is no later, and set aside" in _status(checker, leaf, ca).why[-1]
    ca.ocsp_response = answer  # type: ignore[method-assign]
    ca._revoked.clear()  # withdrawn: the next answer, issued now, says good
    (status,) = _check(checker, leaf, ca)
    assert status.status == "good"


def test_a_renewed_issuer_certificate_does_not_make_the_revoked_certificate_another(
    served: tuple[CA, RevocationServer],
) -> None:
    """h250: the memory was keyed by the issuer's certificate; a chain sent with the
    issuer's renewed certificate (same name and key) made the revoked certificate a
    stranger to it, and soft-fail let it in with the responder blocked. Twin: a
    certificate of another issuer with the same serial is not refused for it."""
    ca, responder = served
    checker = mtls.RevocationChecker(RevocationPolicy(mode="soft", **AT_ONCE))
    leaf = ca.issue_cert("localhost")
    ca.revoke(leaf, reason="keyCompromise")
    with pytest.raises(CertificateRevokedError):
        _check(checker, leaf, ca)
    renewed = recertified(ca, ca, longer=_dt.timedelta(days=365))
    responder.http_status = 503
    with pytest.raises(CertificateRevokedError):
        checker.check(
            [leaf.certificate.public_bytes(Encoding.DER)],
            [renewed.public_bytes(Encoding.DER)],
            host="backend",
        )
    other = CA(name="kept answers other CA")
    (status,) = checker.statuses(
        [leaf.certificate.public_bytes(Encoding.DER)],
        [other.certificate.public_bytes(Encoding.DER)],
    )
    assert status.status != "revoked"


@pytest.mark.parametrize("client", ["httpx-async", "aiohttp"])
def test_a_redirect_to_another_port_shows_its_status_under_that_port(
    served: tuple[CA, RevocationServer], tmp_path, client: str
) -> None:
    """h251: an aiohttp redirect from a good backend's port to a revoked one's filed the
    revoked status under the first port's profile. Each hop says its own port. Twin:
    the good backend's profile shows its own certificate only."""
    import asyncio
    import http.server
    import ssl
    import threading

    ca, _ = served
    good, bad = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    ca.revoke(bad, reason="keyCompromise")
    trust = write_trust(ca, tmp_path / "trust.jks")
    with MTLSServer(bad, require_client_cert=False) as b:

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", f"https://localhost:{b.port}/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        a = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        good.configure_cert(tls)
        a.socket = tls.wrap_socket(a.socket, server_side=True)
        threading.Thread(target=a.serve_forever, daemon=True).start()
        a_port = a.server_address[1]
        profiles = mtls.SSLProfileSet(
            [
                mtls.SSLProfile(
                    servers=(f"localhost:{port}",),
                    truststore=mtls.StoreConfig(location=trust, password=PASSWORD),
                )
                for port in (a_port, b.port)
            ],
            revocation=RevocationPolicy(mode="soft"),
            reload_interval=None,
        )

        async def follow() -> None:
            if client == "httpx-async":
                from mtls.integrations.httpx import async_client

                async with async_client(profiles, follow_redirects=True) as http_client:
                    await http_client.get(f"https://localhost:{a_port}/")
                return
            from mtls.integrations.aiohttp import MTLSClientSession

            async with MTLSClientSession(profiles) as session:
                async with session.get(f"https://localhost:{a_port}/") as answer:
                    await answer.read()

        try:
            with profiles:
                with pytest.raises(CertificateRevokedError):
                    asyncio.run(follow())
                shown = {
                    entry.servers[0]: {s.serial: s.status for s in entry.revocation.statuses}
                    for entry in profiles.status().profiles
                    if entry.revocation is not None
                }
        finally:
            a.shutdown()
            a.server_close()
    assert shown[f"localhost:{a_port}"] == {good.serial_number: "good"}, shown
    assert shown[f"localhost:{b.port}"] == {bad.serial_number: "revoked"}, shown


def test_lists_are_ordered_by_their_numbers_and_a_newer_one_kept_is_not_downloaded_again(
    served: tuple[CA, RevocationServer],
) -> None:
    """h253: lists were ordered by thisUpdate: a CA whose clock ran ahead, then was set
    back, published a list revoking Y that looked older than the one kept, and Y was let
    in; a lagging mirror's older list after a newer one made every handshake download
    again; and a list that lifted a revocation, fetched after a mirror's older one that
    listed it, was set aside. CRLNumbers order them. Twin: a fresh checker agrees."""
    ca, responder = served
    policy = RevocationPolicy(mode="hard", ocsp=False, cache_delay=1e-6, retry_failed_after=60)
    checker = mtls.RevocationChecker(policy)
    y = ca.issue_cert("localhost")
    now = _dt.datetime.now(_dt.UTC)
    ahead = ca.crl(last_update=now + _dt.timedelta(minutes=10))  # within the skew: taken
    served_list = ca.crl
    ca.crl = lambda **_: ahead  # type: ignore[method-assign]
    (status,) = _check(checker, y, ca)
    assert status.status == "good"
    ca.revoke(y, reason="keyCompromise")
    fixed = served_list(last_update=now - _dt.timedelta(minutes=1))  # clock set back
    ca.crl = lambda **_: fixed  # type: ignore[method-assign]
    with pytest.raises(CertificateRevokedError):
        _check(checker, y, ca)
    # A mirror serving the older list again, once the kept one is due: the kept one
    # answers, confirmed fresh by the download (it was not: one download a handshake).
    checker2 = mtls.RevocationChecker(
        RevocationPolicy(mode="hard", ocsp=False, cache_delay=600, retry_failed_after=60)
    )
    with pytest.raises(CertificateRevokedError):
        _check(checker2, y, ca)  # downloads "fixed"
    ((key, (_, fetched, kept)),) = checker2._crls.items()
    checker2._crls[key] = (0.0, fetched, kept)  # due again
    checker2._cache.clear()
    ca.crl = lambda **_: ahead  # type: ignore[method-assign]
    before = len(responder.requests)
    for _ in range(3):
        with pytest.raises(CertificateRevokedError):
            _check(checker2, y, ca)
    assert len(responder.requests) - before == 1
    # A list that lifts it, published after a mirror's older one that listed it.
    ca._revoked.clear()
    lifted = served_list(last_update=now - _dt.timedelta(hours=1))  # numbered later
    ca.crl = lambda **_: lifted  # type: ignore[method-assign]
    (status,) = _check(checker, y, ca)
    assert status.status == "good"
