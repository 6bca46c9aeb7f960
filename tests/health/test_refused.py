"""``status().healthy`` says when peers refuse a set's handshakes although everything
loaded: a client certificate (or a CA of its chain) out of its dates, or no anchor of
its truststore in date. It stayed true while every handshake failed, and ``mtls check``
said "not healthy" about the same files (a persistent-failure sweep)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest

from mtls import SSLProfile, SSLProfileSet, StoreConfig
from mtls.testing import CA
from tests._helpers import PASSWORD, write_trust

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


def _set(tmp_path: Path, leaf_ca: CA, trust_ca: CA, **dates: dt.datetime) -> SSLProfileSet:
    keystore = tmp_path / "ks.jks"
    leaf_ca.issue_cert("client.test", **dates).write_keystore(keystore, PASSWORD)
    trust = write_trust(trust_ca, tmp_path / "trust.jks")
    profile = SSLProfile(
        servers=("backend.test:8443",),
        keystore=StoreConfig(location=keystore, password=PASSWORD, type="JKS"),
        truststore=StoreConfig(location=trust, password=PASSWORD, type="JKS"),
    )
    return SSLProfileSet([profile], reload_interval=None, settle_delay=0)


@pytest.mark.parametrize(
    ("dates", "said"),
    [
        (
            {"not_after": NOW - DAY},
            "the client certificate (CN=client.test,O=mtls.testing) expired on",
        ),
        (
            {"not_before": NOW + DAY},
            "the client certificate (CN=client.test,O=mtls.testing) is not valid until",
        ),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_client_certificate_out_of_its_dates_is_not_healthy(
    tmp_path: Path, dates: dict[str, dt.datetime], said: str
) -> None:
    ca = CA()
    with _set(tmp_path, ca, ca, **dates) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.loaded and entry.error is None and status.errors == ()
    assert entry.refused is not None and entry.refused.startswith(said), entry.refused
    assert "servers refuse it" in entry.refused
    assert not entry.healthy and not status.healthy
    assert status.to_dict()["healthy"] is False
    assert status.to_dict()["profiles"][0]["refused"] == entry.refused


def test_a_client_certificate_not_for_client_authentication_is_not_healthy(
    tmp_path: Path,
) -> None:
    """A first load serves a certificate whose extended key usage forbids client
    authentication (there is nothing else), with a warning; OpenSSL-, Java- and
    Go-based servers refuse every handshake with it, and status() said healthy (h225).
    The twin is test_material_in_date_is_healthy (clientAuth allowed)."""
    ca = CA()
    keystore = tmp_path / "ks.jks"
    ca.issue_cert("client.test", client_auth=False).write_keystore(keystore, PASSWORD)
    profile = SSLProfile(
        servers=("backend.test:8443",),
        keystore=StoreConfig(location=keystore, password=PASSWORD, type="JKS"),
        truststore=StoreConfig(location=write_trust(ca, tmp_path / "t.jks"), password=PASSWORD),
    )
    with SSLProfileSet([profile], reload_interval=None, settle_delay=0) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.loaded and entry.error is None
    assert entry.refused is not None, entry
    assert entry.refused.startswith("the client certificate (CN=client.test,O=mtls.testing): ")
    assert "clientAuth" in entry.refused and "servers refuse it" in entry.refused
    assert not status.healthy


def test_a_truststore_with_no_anchor_in_date_is_not_healthy(tmp_path: Path) -> None:
    expired = CA(not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    with _set(tmp_path, CA(), expired) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.refused == ("none of the truststore's 1 anchors is in date: it verifies no server")
    assert not status.healthy


def test_a_client_chain_ca_out_of_date_is_not_a_sure_refusal(tmp_path: Path) -> None:
    """A CA of the presented chain out of its dates is not counted: a server that
    trusts an in-date certificate of the same CA (a cross-signed root, an expired copy
    left in the chain) verifies through that one, as OpenSSL does trusted-first (the
    review showed such a working profile reported unhealthy). The expiry watch says
    it instead."""
    root = CA()
    intermediate = root.create_child_ca(not_after=NOW - DAY, not_before=NOW - 30 * DAY)
    with _set(tmp_path, intermediate, root, not_before=NOW - 2 * DAY) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.refused is None and status.healthy


def test_a_truststore_whose_anchor_openssl_cannot_verify_is_not_healthy(tmp_path: Path) -> None:
    """Its only anchor has a validity time in a form OpenSSL's verifier refuses: it
    trusts nothing, though cryptography cannot read its dates (the review)."""
    from mtls import Truststore
    from tests._pki import odd_validity, skip_unless_openssl_reads

    odd_ca = CA(name="odd CA")
    _, cert_pem = odd_validity(odd_ca, "odd anchor", b"4912312359Z")
    skip_unless_openssl_reads(cert_pem)
    trust = tmp_path / "odd-trust.p12"
    store = Truststore.from_bytes(cert_pem)
    trust.write_bytes(store.to_bytes(PASSWORD))
    keystore = tmp_path / "ks.jks"
    CA().issue_cert("client.test").write_keystore(keystore, PASSWORD)
    profile = SSLProfile(
        servers=("backend.test:8443",),
        keystore=StoreConfig(location=keystore, password=PASSWORD, type="JKS"),
        truststore=StoreConfig(location=trust, password=PASSWORD),
    )
    with SSLProfileSet([profile], reload_interval=None, settle_delay=0) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.refused == "none of the truststore's 1 anchors is in date: it verifies no server"
    assert not status.healthy


def test_material_in_date_is_healthy(tmp_path: Path) -> None:
    """The twin: the same set with everything in date."""
    ca = CA()
    with _set(tmp_path, ca, ca) as profiles:
        status = profiles.status()
    (entry,) = status.profiles
    assert entry.refused is None and entry.healthy and status.healthy


def test_the_prometheus_gauges_follow(tmp_path: Path) -> None:
    from mtls import _metrics

    ca = CA()
    with _set(tmp_path, ca, ca, not_after=NOW - DAY) as profiles:
        families = {m.name: m for m in _metrics.metrics(profiles.status(), "s")}
    assert [v for _, v in families["mtls_profile_healthy"].samples] == [0.0]
    assert [v for _, v in families["mtls_set_healthy"].samples] == [0.0]


def _server_files(tmp_path: Path, server_ca: CA, client_ca: CA, **dates: Any) -> None:
    server_ca.issue_cert("localhost", **dates).write_keystore(tmp_path / "srv.jks", PASSWORD)
    write_trust(client_ca, tmp_path / "clients.jks")


@pytest.mark.parametrize(
    ("server_dates", "client_ca_dates", "said"),
    [
        ({"not_after": NOW - DAY}, {}, "expired on"),
        ({}, {"not_before": NOW - 30 * DAY, "not_after": NOW - DAY}, "it verifies no client"),
        ({"server_auth": False}, {}, "every client refuses it"),
    ],
    ids=["server-certificate-expired", "no-client-ca-in-date", "not-for-servers"],
)
def test_a_rotating_server_refused_by_its_clients_is_not_healthy(
    tmp_path: Path,
    server_dates: dict[str, Any],
    client_ca_dates: dict[str, dt.datetime],
    said: str,
) -> None:
    from mtls import RotatingServerContext

    _server_files(tmp_path, CA(), CA(**client_ca_dates), **server_dates)
    with RotatingServerContext(
        tmp_path / "srv.jks", tmp_path / "clients.jks", password=PASSWORD, reload_interval=None
    ) as server:
        status = server.status()
    assert status.errors == ()
    assert status.refused is not None and said in status.refused, status.refused
    assert not status.healthy and status.to_dict()["refused"] == status.refused


def test_a_rotating_server_in_date_is_healthy(tmp_path: Path) -> None:
    from mtls import RotatingServerContext

    _server_files(tmp_path, CA(), CA())
    with RotatingServerContext(
        tmp_path / "srv.jks", tmp_path / "clients.jks", password=PASSWORD, reload_interval=None
    ) as server:
        status = server.status()
    assert status.refused is None and status.healthy


@pytest.mark.parametrize("with_client_auth", [False, True])
def test_any_usage_beside_server_auth_is_said_as_any_usage_alone_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, with_client_auth: bool
) -> None:
    """A client certificate whose extended key usage is anyExtendedKeyUsage and
    serverAuth: OpenSSL's servers refuse it as they refuse anyExtendedKeyUsage alone
    (their purpose check wants clientAuth), Java and Go take it. Alone it was warned
    of; beside serverAuth nothing was said and status() was healthy (h227). The twin
    with clientAuth too: taken by OpenSSL, nothing said."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from mtls.testing import MTLSServer
    from tests._helpers import whoami
    from tests._pki import any_eku_only

    ca = CA()
    also = (ExtendedKeyUsageOID.SERVER_AUTH,)
    if with_client_auth:
        also += (ExtendedKeyUsageOID.CLIENT_AUTH,)
    keystore = tmp_path / "ks.jks"
    keystore.write_bytes(any_eku_only(ca, "gateway", also=also).to_bytes(PASSWORD))
    caplog.set_level("WARNING", logger="mtls")
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as backend:
        profile = SSLProfile(
            servers=(f"localhost:{backend.port}",),
            keystore=StoreConfig(location=keystore, password=PASSWORD, type="JKS"),
            truststore=StoreConfig(location=write_trust(ca, tmp_path / "t.jks"), password=PASSWORD),
        )
        with SSLProfileSet([profile], reload_interval=None, settle_delay=0) as profiles:
            ctx = profiles.context_for("localhost", backend.port)
            assert ctx is not None
            warned = [m for m in caplog.messages if "anyExtendedKeyUsage" in m]
            if with_client_auth:
                assert whoami(ctx, backend.port, "localhost")["client_cn"] == "any usage"
                assert warned == []
            else:
                with pytest.raises(ssl.SSLError):  # OpenSSL's server does refuse it
                    whoami(ctx, backend.port, "localhost")
                assert len(warned) == 1, caplog.messages
                assert "anyExtendedKeyUsage and serverAuth, without clientAuth" in warned[0]
                assert "OpenSSL servers refuse it" in warned[0]
