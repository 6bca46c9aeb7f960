"""mtls.integrations.grpc.server_credentials: rotating server identity and client trust.

Rotations are shown by trust, on fresh client channels (each a new handshake): a
client that trusts only the new server CA succeeds exactly when the server serves
the new keystore; a client from a CA the server's truststore names gets in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from mtls import (
    KeystoreError,
    ProfileConfigError,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    Truststore,
)
from mtls.integrations import _boringssl
from mtls.integrations.grpc import (
    MTLSServerCredentials,
    aio_secure_channel,
    server_credentials,
)
from mtls.testing import CA, IssuedIdentity, replace_atomically
from tests._helpers import PASSWORD, wait_for
from tests.integrations._grpc_backend import (
    WHO,
    Probe,
    grpc_server,
    secp256k1_keystore,
    unreadable_to_grpc_ca,
    write_keystore,
    write_truststore,
)


def call(port: int, trusts: CA, identity: IssuedIdentity | None) -> bytes:
    """One unary call on a fresh channel (a new handshake)."""
    credentials = grpc.ssl_channel_credentials(
        trusts.cert_pem,
        identity.private_key_pem if identity else None,
        identity.chain_pem if identity else None,
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        return bytes(channel.unary_unary(WHO)(b"", timeout=10))


def refused(port: int, trusts: CA, identity: IssuedIdentity | None) -> bool:
    try:
        call(port, trusts, identity)
    except grpc.RpcError as exc:
        return bool(exc.code() == grpc.StatusCode.UNAVAILABLE)
    return False


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Any]:
    server_ca, client_ca = CA(name="server CA 1"), CA(name="client CA 1")
    return {
        "server_ca": server_ca,
        "client_ca": client_ca,
        "keystore": write_keystore(tmp_path / "server.jks", server_ca.issue_cert("localhost")),
        "truststore": write_truststore(tmp_path / "clients.jks", client_ca),
        "client": client_ca.issue_cert("gateway"),
    }


def test_client_of_the_trusted_ca_is_accepted(stores: dict[str, Any]) -> None:
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        # Twins: another CA's client, and no client certificate at all.
        assert refused(port, stores["server_ca"], CA(name="other").issue_cert("intruder"))
        assert refused(port, stores["server_ca"], None)


def test_client_auth_can_be_optional(
    stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with (
        server_credentials(
            stores["keystore"], None, require_client_auth=False, reload_interval=None
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert call(port, stores["server_ca"], None) == b"(no client certificate)"
    # With a truststore too, gRPC asks no client for a certificate: said, not implied.
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        server_credentials(
            stores["keystore"], stores["truststore"], require_client_auth=False,
            reload_interval=None,
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):  # fmt: skip
        assert call(port, stores["server_ca"], stores["client"]) == b"(no client certificate)"
    assert "its truststore" in caplog.text and "is unused" in caplog.text
    with pytest.raises(ProfileConfigError, match="needs a truststore"):
        server_credentials(stores["keystore"], None, reload_interval=None)


def test_bad_store_fails_at_creation(tmp_path: Path, stores: dict[str, Any]) -> None:
    broken = tmp_path / "broken.jks"
    broken.write_bytes(b"\xfe\xed\xfe\xed" + b"\0" * 40)

    with pytest.raises(KeystoreError) as info:
        server_credentials(StoreConfig(location=broken, password=PASSWORD), stores["truststore"])
    assert str(broken) in str(info.value)
    assert PASSWORD not in str(info.value)


def test_plain_paths_are_refused_saying_what_to_pass(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """RotatingServerContext takes paths; server_credentials takes StoreConfigs: a path
    failed with an internal AttributeError ('str' object has no attribute 'origin')."""
    path = tmp_path / "server.jks"
    for given in (str(path), path):
        with pytest.raises(TypeError, match=r"must be an mtls\.StoreConfig .*StoreConfig\(loc"):
            server_credentials(given, stores["truststore"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="truststore must be"):
        server_credentials(stores["keystore"], str(path))  # type: ignore[arg-type]


def test_a_missing_store_names_the_storeconfig_given_not_a_location_element(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """The caller wrote a StoreConfig, not a profile file: "check <Location> (relative
    paths start from the base directory)" pointed at a setting that does not exist."""
    missing = tmp_path / "missing.jks"
    with pytest.raises(KeystoreError) as info:
        server_credentials(StoreConfig(location=missing, password=PASSWORD), stores["truststore"])
    message = str(info.value)
    assert str(missing) in message and "<Location>" not in message
    assert "keystore StoreConfig's location given to server_credentials" in message


def test_a_server_certificate_is_judged_as_a_server_certificate(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """The set behind server_credentials presents a server's certificate: a
    serverAuth-only replacement (the usual server template) goes in, and one without
    serverAuth, which every client refuses, is not installed (a client set judges
    the other way round)."""
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        ca = stores["server_ca"]
        client_only = ca.issue_cert("localhost", common_name="client-only", server_auth=False)
        replace_atomically(tmp_path / "server.jks", client_only.keystore().to_bytes(PASSWORD))
        assert credentials.reload() is False
        assert "lacks serverAuth" in str(credentials.profile_set.last_error)
        assert call(port, ca, stores["client"]) == b"gateway"  # the last good serves
        server_only = ca.issue_cert("localhost", common_name="server-only", client_auth=False)
        replace_atomically(tmp_path / "server.jks", server_only.keystore().to_bytes(PASSWORD))
        assert credentials.reload() is True and credentials.profile_set.last_error is None
        assert call(port, ca, stores["client"]) == b"gateway"


@pytest.mark.parametrize("usage", ["serverAuth", "clientAuth"])
def test_status_judges_the_servers_certificate_as_a_servers(tmp_path: Path, usage: str) -> None:
    """status() behind server_credentials judged the certificate by a client's rule: a
    serverAuth-only server certificate (the usual one) was unhealthy for its whole life,
    "lacks clientAuth", and a clientAuth-only one (which a first load serves, having
    nothing else, and every client refuses) was healthy (h233). The twin is the other
    usage."""
    server_ca, client_ca = CA(name="server CA"), CA(name="client CA")
    identity = server_ca.issue_cert(
        "localhost", server_auth=usage == "serverAuth", client_auth=usage == "clientAuth"
    )
    keystore = write_keystore(tmp_path / "server.jks", identity)
    truststore = write_truststore(tmp_path / "clients.jks", client_ca)
    with server_credentials(keystore, truststore, reload_interval=None) as credentials:
        status = credentials.profile_set.status()
        if usage == "serverAuth":
            assert status.healthy, status.profiles[0].refused
            with grpc_server(credentials) as (port, _):
                assert call(port, server_ca, client_ca.issue_cert("gateway")) == b"gateway"
        else:
            assert not status.healthy
            refused = status.profiles[0].refused or ""
            assert "the server certificate" in refused and "lacks serverAuth" in refused


def test_keystore_rotation_reaches_the_next_handshake(
    tmp_path: Path, stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mtls")
    new_ca = CA(name="server CA 2")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert refused(port, new_ca, stores["client"])
        new_identity = new_ca.issue_cert("localhost", common_name="server-2")
        replace_atomically(tmp_path / "server.jks", new_identity.keystore().to_bytes(PASSWORD))
        assert credentials.reload()
        assert call(port, new_ca, stores["client"]) == b"gateway"
        assert refused(port, stores["server_ca"], stores["client"])
    assert "now serves" in caplog.text and "server-2" in caplog.text
    assert PASSWORD not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_client_truststore_rotation(tmp_path: Path, stores: dict[str, Any]) -> None:
    new_client_ca = CA(name="client CA 2")
    newcomer = new_client_ca.issue_cert("newcomer")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert refused(port, stores["server_ca"], newcomer)
        new_client_ca.write_truststore(tmp_path / "clients.jks", PASSWORD)
        assert credentials.reload()
        assert call(port, stores["server_ca"], newcomer) == b"newcomer"
        assert refused(port, stores["server_ca"], stores["client"])


def test_a_server_certificate_not_valid_yet_is_refused_as_the_servers(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """A pre-staged server certificate waits, and the refusal speaks of the server's own
    certificate: the profile set underneath must not call it a client certificate."""
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    staged = stores["server_ca"].issue_cert("localhost", common_name="staged", not_before=start)
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        replace_atomically(tmp_path / "server.jks", staged.keystore().to_bytes(PASSWORD))
        assert not credentials.reload()
        error = str(credentials.profile_set.last_error)
        assert "server.jks" in error and "not valid before" in error and "staged" in error
        assert "client" not in error
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"


def test_a_keystore_grpc_cannot_use_keeps_the_identity_and_takes_the_trust(
    tmp_path: Path, stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """OpenSSL loads a secp256k1 (or Ed448, brainpool) key; BoringSSL does not. It was
    recorded as served: gRPC kept the old configuration, status() said healthy, and a
    trust withdrawal made afterwards never reached gRPC (the two travel together)."""
    newcomer_ca = CA(name="client CA 2")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        replace_atomically(tmp_path / "server.jks", secp256k1_keystore(stores["server_ca"]))
        with caplog.at_level(logging.ERROR, logger="mtls"):
            assert credentials.reload()  # OpenSSL took it
            assert "secp256k1" in str(credentials.last_error)  # said at once, not at a handshake
            assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        assert "secp256k1" in str(credentials.last_error)
        assert caplog.text.count("the new keystore is not served") == 1
        # The client CA withdrawn (and another trusted): gRPC gets the new trust.
        newcomer_ca.write_truststore(tmp_path / "clients.jks", PASSWORD)
        assert credentials.reload()
        assert refused(port, stores["server_ca"], stores["client"])
        assert call(port, stores["server_ca"], newcomer_ca.issue_cert("n")) == b"n"
        # Twin: a usable keystore is served again, and the error clears.
        new_ca = CA(name="server CA 2")
        replace_atomically(
            tmp_path / "server.jks", new_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD)
        )
        assert credentials.reload()
        assert credentials.last_error is None
        assert call(port, new_ca, newcomer_ca.issue_cert("n")) == b"n"
    # Refused at creation too, naming the key type.
    replace_atomically(tmp_path / "server.jks", secp256k1_keystore(stores["server_ca"]))
    with pytest.raises(ProfileConfigError, match="secp256k1"):
        server_credentials(stores["keystore"], stores["truststore"], reload_interval=None)


def _truststore_bytes(*anchors: Any) -> bytes:
    """A JKS truststore of ``anchors`` (certificates, or CAs), in that order."""
    store = Truststore()
    for number, anchor in enumerate(anchors):
        store.add(f"anchor-{number}", getattr(anchor, "certificate", anchor))
    return store.to_bytes(PASSWORD)


def test_anchors_grpc_cannot_read_are_left_out_and_said(
    tmp_path: Path, stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """BoringSSL reads a truststore up to the first certificate it cannot parse (a
    version 1 certificate with extensions, which OpenSSL and the profile set take),
    and takes that for the end. First in the truststore, it left gRPC no anchor: gRPC
    refused the configuration and kept the previous one, so a client CA the
    truststore withdrew was still let in, while the rotation was said applied and
    healthy (h178). gRPC is given the anchors it reads now, and the others are said."""
    odd = unreadable_to_grpc_ca()
    newcomer_ca = CA(name="client CA 2")
    truststore = stores["truststore"].location
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        replace_atomically(truststore, _truststore_bytes(odd, newcomer_ca))
        with caplog.at_level(logging.ERROR, logger="mtls"):
            assert credentials.reload()
            assert refused(port, stores["server_ca"], stores["client"])  # withdrawn
            assert call(port, stores["server_ca"], newcomer_ca.issue_cert("n")) == b"n"
        error = str(credentials.last_error)
        assert "cannot read 1 certificate(s) of the truststore" in error
        assert "CN=v1 CA with extensions" in error
        assert caplog.text.count("cannot read 1 certificate(s)") == 1
        # Twin: a truststore gRPC reads whole clears it.
        replace_atomically(truststore, _truststore_bytes(newcomer_ca, stores["client_ca"]))
        assert credentials.reload()
        assert credentials.last_error is None
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        # gRPC reads none of them: every client is refused, never the older trust kept.
        replace_atomically(truststore, _truststore_bytes(odd))
        assert credentials.reload()
        assert refused(port, stores["server_ca"], stores["client"])
        assert "gRPC is given none" in str(credentials.last_error)
    # At creation, a server gRPC would give no anchor does not start.
    with pytest.raises(ProfileConfigError, match="does not start without them"):
        server_credentials(stores["keystore"], stores["truststore"], reload_interval=None)


def test_a_subscriber_that_blocks_does_not_hold_back_a_withdrawal(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """A subscriber may block (subscribe()'s docs allow a webhook without a timeout):
    the server's own judging of a new material waits behind it, and a client CA the
    truststore withdrew was let in until it returned (h181). A material not judged
    yet is served as before the probe, and judged on a thread of its own."""
    newcomer_ca = CA(name="client CA 2")
    truststore = stores["truststore"].location
    release, blocking = threading.Event(), threading.Event()

    def webhook(old: int, new: int) -> None:
        blocking.set()
        release.wait(300)  # longer than any wait below: released in the finally

    try:
        with (
            server_credentials(
                stores["keystore"], stores["truststore"], reload_interval=0.05, settle_delay=0.01
            ) as credentials,
            grpc_server(credentials) as (port, _),
        ):
            credentials.profile_set.subscribe(webhook)
            replace_atomically(
                truststore, _truststore_bytes(stores["client_ca"], newcomer_ca)
            )  # a first change: the webhook blocks on it
            assert blocking.wait(30)
            generation = credentials.profile_set.generation
            replace_atomically(truststore, _truststore_bytes(newcomer_ca))  # CA 1 withdrawn
            assert wait_for(lambda: credentials.profile_set.generation > generation, 30)
            assert wait_for(lambda: refused(port, stores["server_ca"], stores["client"]), 20)
            assert call(port, stores["server_ca"], newcomer_ca.issue_cert("n")) == b"n"
            assert not release.is_set()  # the webhook still blocks
    finally:
        release.set()


def test_a_keystore_not_judged_yet_waits_and_its_trust_does_not(
    tmp_path: Path, stores: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handshake that finds new stores not judged yet (the probe slower than
    FETCH_WAIT) gets the new trust with the identity in service (known good): a key
    gRPC refuses would make it keep its whole previous configuration, the withdrawn
    trust with it. Once judged usable, the new identity is served, and it is the one a
    later keystore gRPC refuses falls back to (the server went back to the identity
    the rotation had retired, h182)."""
    held = threading.Event()
    real_probe = _boringssl._probe

    def slow_probe(items: list[Any]) -> list[bool | None]:
        assert held.wait(60)
        return real_probe(items)

    keystore, truststore = stores["keystore"].location, stores["truststore"].location
    second_ca, newcomer_ca = CA(name="server CA 2"), CA(name="client CA 2")
    newcomer = newcomer_ca.issue_cert("n")
    # The reload's own judging would wait for the probe: leave it to the handshake.
    monkeypatch.setattr(MTLSServerCredentials, "_judge_new", lambda self: None)
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        monkeypatch.setattr(_boringssl, "_probe", slow_probe)
        monkeypatch.setattr(_boringssl, "FETCH_WAIT", 0.0)
        replace_atomically(
            keystore, second_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD)
        )
        replace_atomically(truststore, _truststore_bytes(newcomer_ca))  # CA 1 withdrawn
        assert credentials.reload()
        assert call(port, stores["server_ca"], newcomer) == b"n"  # old identity, new trust
        assert refused(port, stores["server_ca"], stores["client"])
        held.set()  # the verdict comes in: usable
        assert wait_for(lambda: not _boringssl._SOON, 30)
        assert call(port, second_ca, newcomer) == b"n"  # the new identity now
        replace_atomically(keystore, secp256k1_keystore(second_ca))
        assert credentials.reload()
        assert wait_for(lambda: not _boringssl._SOON, 30)
        assert call(port, second_ca, newcomer) == b"n"  # not server CA 1's identity
        assert "secp256k1" in str(credentials.last_error)


def test_a_probe_that_keeps_a_handshake_waiting_is_waited_for_once(
    tmp_path: Path, stores: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe stuck in gRPC (it never ends) kept one handshake FETCH_WAIT; every later
    one would have waited as long, till it ended. It is waited for once; the new trust
    is served meanwhile, with the identity in service."""
    stuck = threading.Event()
    waits: list[float] = []

    class Counted(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return super().wait(timeout)

    real_judge_soon = _boringssl.judge_soon
    made: dict[str, threading.Event] = {}

    def judge_soon(material: Any) -> threading.Event:
        real_judge_soon(material)
        return made.setdefault(material.fingerprint, Counted())  # never set: stuck

    newcomer_ca = CA(name="client CA 2")
    monkeypatch.setattr(MTLSServerCredentials, "_judge_new", lambda self: None)
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        monkeypatch.setattr(_boringssl, "_probe", lambda items: (stuck.wait(60), [])[1])
        monkeypatch.setattr(_boringssl, "judge_soon", judge_soon)
        monkeypatch.setattr(_boringssl, "FETCH_WAIT", 0.05)
        replace_atomically(stores["truststore"].location, _truststore_bytes(newcomer_ca))
        try:
            assert credentials.reload()
            for _ in range(3):
                assert refused(port, stores["server_ca"], stores["client"])  # withdrawn
            assert call(port, stores["server_ca"], newcomer_ca.issue_cert("n")) == b"n"
            assert waits == [0.05]  # one handshake waited, once
        finally:
            stuck.set()


def test_a_new_key_gRPC_was_not_asked_about_is_asked_again(
    tmp_path: Path, stores: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore rotated while gRPC could not be asked (no port to hold): the identity
    in service stays, and the verdict lapses so that gRPC is asked again. It stood
    for good when every anchor was known already (a key-only rotation), and the
    retired identity was served for the process's life (h183)."""
    real_probe = _boringssl._probe
    unable = threading.Event()
    unable.set()

    def probe(items: list[Any]) -> list[bool | None]:
        return [None] * len(items) if unable.is_set() else real_probe(items)

    monkeypatch.setattr(_boringssl, "RETRY_UNASKED", 0.2)
    keystore = stores["keystore"].location
    second_ca = CA(name="server CA 2")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        monkeypatch.setattr(_boringssl, "_probe", probe)
        replace_atomically(
            keystore, second_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD)
        )
        assert credentials.reload()
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"  # kept
        assert credentials._serving.verdict.until is not None  # it lapses
        unable.clear()  # ports again

        def served_new() -> bool:
            return not refused(port, second_ca, stores["client"])

        assert wait_for(served_new, 30)


@pytest.mark.parametrize("failure", ["raises", "cannot run"])
def test_a_probe_that_fails_never_leaves_a_rotation_unserved(
    tmp_path: Path,
    stores: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    """gRPC's own probe failing (an error of gRPC's, or no port to bind: its control
    item refused too) never leaves a withdrawal unserved: the new trust is given with
    the anchors gRPC read before first, then the probe's own (verifying no peer), then
    those not asked about. BoringSSL stops at the first anchor it cannot read: first
    in the truststore, it took the whole truststore down, gRPC kept its previous
    configuration and the withdrawn CA was still let in (h182)."""
    odd, newcomer_ca = unreadable_to_grpc_ca(), CA(name="client CA 2")
    newcomer = newcomer_ca.issue_cert("n")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"

        def probe(items: list[Any]) -> list[bool | None]:
            if failure == "raises":
                raise RuntimeError("gRPC failed")
            return [None] * len(items)  # no port binds, not even the control item's

        monkeypatch.setattr(_boringssl, "_probe", probe)
        # The new CA after one gRPC cannot read (not asked): it is lost with it.
        replace_atomically(stores["truststore"].location, _truststore_bytes(odd, newcomer_ca))
        with caplog.at_level(logging.WARNING, logger="mtls"):
            assert credentials.reload()
        assert refused(port, stores["server_ca"], stores["client"])  # withdrawn
        assert refused(port, stores["server_ca"], newcomer)  # closed, not opened
        assert ("could not be asked" in caplog.text) == (failure == "raises")
        # Served once: gRPC is not given a new configuration at every handshake while
        # the verdict stands (it lapses after _boringssl.RETRY_UNASKED).
        token = credentials._serving.token
        for _ in range(3):
            assert refused(port, stores["server_ca"], stores["client"])
        assert credentials._serving.token == token
        # Twin: with the unreadable one gone, the anchors not asked about all serve.
        replace_atomically(stores["truststore"].location, _truststore_bytes(newcomer_ca))
        assert credentials.reload()
        assert call(port, stores["server_ca"], newcomer) == b"n"
        assert refused(port, stores["server_ca"], stores["client"])


def test_one_credentials_object_serves_two_ports_and_both_rotate(
    tmp_path: Path, stores: dict[str, Any]
) -> None:
    """gRPC gives a credentials object's first configuration to one port only: a second
    add_secure_port failed to bind ("Failed loading SSL server credentials")."""
    with server_credentials(
        stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
    ) as credentials:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), handlers=[Probe().handler()]
        )
        ports = [server.add_secure_port("127.0.0.1:0", credentials) for _ in range(2)]
        server.start()
        try:
            for port in ports:
                assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
            new_ca = CA(name="server CA 2")
            replace_atomically(
                tmp_path / "server.jks",
                new_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD),
            )
            assert credentials.reload()
            for port in ports:
                assert call(port, new_ca, stores["client"]) == b"gateway"
                assert refused(port, stores["server_ca"], stores["client"])
        finally:
            server.stop(None).wait(10)
        # A second server, after the first stopped, takes the same credentials.
        with grpc_server(credentials) as (port, _):
            assert call(port, new_ca, stores["client"]) == b"gateway"


def test_expiry_lines_call_the_servers_certificate_a_server_certificate(
    tmp_path: Path, stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The set under server_credentials presents a server's certificate; its expiry
    warnings called it a client certificate."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)  # a year's certificate, near its end
    short = stores["server_ca"].issue_cert(
        "localhost", common_name="short", not_before=soon - dt.timedelta(days=365), not_after=soon
    )
    keystore = write_keystore(tmp_path / "short.jks", short)
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        server_credentials(keystore, stores["truststore"], reload_interval=None) as credentials,
    ):
        credentials.profile_set.check_health()
    assert "server certificate CN=short" in caplog.text
    assert "client certificate CN=short" not in caplog.text


def test_reload_lines_call_the_servers_certificate_a_server_certificate(
    tmp_path: Path, stores: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A rotation of the server's own identity was logged as "client certificate ->
    ...", a new truststore as "same client certificate" (h141). Twin: a profile set's
    own reload lines still speak of its client certificate."""
    renewed = stores["server_ca"].issue_cert("localhost", common_name="renewed")
    with (
        caplog.at_level(logging.INFO, logger="mtls"),
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
    ):
        renewed.write_keystore(tmp_path / "server.jks", PASSWORD)
        assert credentials.reload()
        CA(name="client CA 2").write_truststore(tmp_path / "clients.jks", PASSWORD)
        assert credentials.reload()
    reloads = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert any("CN=renewed" in line for line in reloads), reloads
    assert any("same server certificate CN=renewed" in line for line in reloads), reloads
    assert not any("client certificate" in line for line in reloads), reloads
    caplog.clear()
    profiles = SSLProfileSet(
        [SSLProfile(servers=("b.test:443",), keystore=stores["keystore"])],
        default_truststore=stores["truststore"],
        reload_interval=None,
        settle_delay=0.01,
    )
    with caplog.at_level(logging.INFO, logger="mtls"), profiles:
        stores["client_ca"].write_truststore(tmp_path / "clients.jks", PASSWORD)
        assert profiles.reload()
    assert "same client certificate" in caplog.text


def test_damaged_replacement_keeps_the_last_good(tmp_path: Path, stores: dict[str, Any]) -> None:
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        good = (tmp_path / "server.jks").read_bytes()
        replace_atomically(tmp_path / "server.jks", good[: len(good) // 2])
        assert not credentials.reload()
        assert credentials.profile_set.last_error is not None
        assert "server.jks" in str(credentials.profile_set.last_error)
        # The credentials' own last_error says it too (it said None: "served").
        assert credentials.last_error is credentials.profile_set.last_error
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        # A damaged client truststore is refused the same way: the old anchors stay.
        replace_atomically(tmp_path / "clients.jks", b"not a store")
        assert not credentials.reload()
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"
        assert refused(port, stores["server_ca"], CA(name="other").issue_cert("intruder"))
        # Twin: a whole replacement after the damage is taken.
        replace_atomically(tmp_path / "server.jks", good)
        stores["client_ca"].write_truststore(tmp_path / "clients.jks", PASSWORD)
        credentials.reload()
        assert credentials.profile_set.last_error is None and credentials.last_error is None
        assert call(port, stores["server_ca"], stores["client"]) == b"gateway"


def test_background_reload_thread(tmp_path: Path, stores: dict[str, Any]) -> None:
    new_ca = CA(name="server CA 2")
    with (
        server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=0.05, settle_delay=0.01
        ) as credentials,
        grpc_server(credentials) as (port, _),
    ):
        assert credentials.profile_set.reloading
        replace_atomically(
            tmp_path / "server.jks", new_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD)
        )
        wait_for(lambda: not refused(port, new_ca, stores["client"]))
    assert not credentials.profile_set.reloading


def test_aio_server_and_channel(tmp_path: Path, stores: dict[str, Any]) -> None:
    client_store = write_keystore(tmp_path / "client.jks", stores["client"])
    server_trust = write_truststore(tmp_path / "server-trust.jks", stores["server_ca"])
    profiles = SSLProfileSet(
        [SSLProfile(servers=("*",), keystore=client_store, truststore=server_trust)]
    )
    new_ca = CA(name="server CA 2")

    async def main() -> None:
        with server_credentials(
            stores["keystore"], stores["truststore"], reload_interval=None, settle_delay=0.01
        ) as credentials:
            server = grpc.aio.server(handlers=[Probe().handler()])
            port = server.add_secure_port("127.0.0.1:0", credentials)
            await server.start()
            try:
                async with aio_secure_channel(f"localhost:{port}", profiles) as channel:
                    assert await channel.unary_unary(WHO)(b"", timeout=10) == b"gateway"
                replace_atomically(
                    tmp_path / "server.jks",
                    new_ca.issue_cert("localhost").keystore().to_bytes(PASSWORD),
                )
                assert credentials.reload()
                # The profile still trusts only the old server CA: the new identity is refused.
                async with aio_secure_channel(f"localhost:{port}", profiles) as channel:
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await channel.unary_unary(WHO)(b"", timeout=10)
                    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                await server.stop(None)

    with profiles:
        asyncio.run(main())
