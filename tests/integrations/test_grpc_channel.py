"""mtls.integrations.grpc, sync: real grpc.server with client auth over loopback.

Each positive case has its negative twin next to it. The server names the client
certificate it saw (``auth_context``), so the identity used is what is asserted.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mtls import (
    Keystore,
    ProfileConfigError,
    RevocationPolicy,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    TLSMaterial,
    Truststore,
    client_context,
)
from mtls._keyload import _chain_pem, _key_pem
from mtls.integrations import _boringssl
from mtls.integrations.grpc import (
    RotatingChannel,
    _parse_target,
    aio_secure_channel,
    secure_channel,
)
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, profile, profile_xml, wait_for
from tests.integrations._grpc_backend import (
    ECHO,
    JOIN,
    WATCH,
    WHO,
    client_set,
    client_threads,
    grpc_server,
    profile_set,
    rotate,
    secp256k1_keystore,
    static_credentials,
    unreadable_to_grpc_ca,
    version_1_with_extensions,
    write_keystore,
    write_truststore,
)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="grpc CA")


@pytest.fixture(scope="module")
def server(ca: CA):
    with grpc_server(static_credentials(ca.issue_cert("localhost", "127.0.0.1"), ca)) as s:
        yield s


def who(channel: grpc.Channel) -> bytes:
    return bytes(channel.unary_unary(WHO)(b"", timeout=10))


def closed(channel: grpc.Channel) -> bool:
    """True once ``channel.close()`` ran: gRPC refuses new calls on a closed channel."""
    try:
        channel.unary_unary(WHO)(b"", timeout=0.001)
    except ValueError:
        return True
    except grpc.RpcError:
        return False
    return False


# --------------------------------------------------------------------------- identity


def test_profile_identity_is_presented(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert isinstance(channel, grpc.Channel)
        assert who(channel) == b"gen-1"


def test_identity_from_another_ca_is_refused(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    stranger = CA(name="stranger CA")
    keystore = write_keystore(tmp_path / "client.jks", stranger.issue_cert("intruder"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    with (
        profile_set(f"localhost:{port}", keystore, trust) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        who(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_every_call_kind_and_interceptors(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    seen: list[str] = []

    class Record(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            seen.append(details.method)
            return continuation(details, request)

        def intercept_stream_stream(self, continuation, details, requests):
            seen.append(details.method)
            return continuation(details, requests)

    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        intercepted = grpc.intercept_channel(channel, Record())
        assert intercepted.unary_unary(WHO)(b"", timeout=10) == b"gen-1"
        response, call = channel.unary_unary(WHO).with_call(b"", timeout=10)
        assert response == b"gen-1"
        assert call.code() == grpc.StatusCode.OK
        assert channel.unary_unary(WHO).future(b"", timeout=10).result() == b"gen-1"
        assert channel.stream_unary(JOIN)(iter([b"a", b"b"]), timeout=10) == b"gen-1:ab"
        assert list(intercepted.stream_stream(ECHO)(iter([b"x", b"y"]), timeout=10)) == [
            b"gen-1:x",
            b"gen-1:y",
        ]
        _, probe = server
        probe.gate.set()
        assert list(channel.unary_stream(WATCH)(b"2", timeout=10)) == [b"gen-1", b"gen-1"]
        probe.gate.clear()
    assert seen == [WHO, ECHO]


def test_subscribe_reports_connectivity(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    states: list[grpc.ChannelConnectivity] = []
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        channel.subscribe(states.append, try_to_connect=True)
        wait_for(lambda: grpc.ChannelConnectivity.READY in states)
        grpc.channel_ready_future(channel).result(timeout=10)  # subscribes, then unsubscribes
        channel.unsubscribe(states.append)
        assert channel._subscriptions == []
        # Let gRPC's own polling thread see that nobody listens any more: closing under
        # it makes it raise "Channel closed!" (a race in grpcio, plain channels too).
        [inner] = underlying(channel)
        wait_for(lambda: not inner._connectivity_state.polling)


# --------------------------------------------------------------------------- lookup


def test_no_profile_and_no_default_fails_at_creation(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    with client_set(tmp_path, ca, port + 1) as profiles, pytest.raises(ProfileConfigError) as info:
        secure_channel(f"localhost:{port}", profiles)
    assert f"localhost:{port}" in str(info.value)
    assert "no SSL profile" in str(info.value)


def test_default_profile_serves_unmatched_targets(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("fallback"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    default = SSLProfile(servers=("*",), keystore=keystore, truststore=trust)
    with (
        SSLProfileSet([], default=default) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"fallback"


def test_default_as_ready_context_is_refused(ca: CA) -> None:
    profiles = SSLProfileSet([], default=client_context())
    with pytest.raises(ProfileConfigError, match="SSLProfile instead"):
        secure_channel("localhost:8443", profiles)


def test_a_context_in_place_of_the_set_is_told_what_grpc_can_take(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    """The hint for a context passed as the set was SSLProfileSet([], default=ctx), the
    very thing gRPC then refused ("give default= an SSLProfile"). It names a default
    profile now, and following it works."""
    with pytest.raises(TypeError, match=r"default=mtls\.SSLProfile\(servers=\('\*',\)") as info:
        secure_channel("localhost:8443", client_context())  # type: ignore[arg-type]
    assert "default=ctx" not in str(info.value)
    port, _ = server
    keystore = write_keystore(
        tmp_path / "client.jks", ca.issue_cert("client", common_name="client")
    )
    trust = write_truststore(tmp_path / "trust.jks", ca)
    default = SSLProfile(servers=("*",), keystore=keystore, truststore=trust)
    with (
        SSLProfileSet([], default=default) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"client"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:{port}", "ok"),
        ("dns:///localhost:{port}", "ok"),
        ("dns:localhost:{port}", "ok"),
        # One slash: a URI path gRPC reads as the host. The host was "/localhost",
        # which no profile named: the catch-all's identity went out (or fail-closed
        # was passed by).
        ("dns:/localhost:{port}", "ok"),
        ("localhost", "no profile"),  # port 443: no profile for localhost:443
        ("unix:/tmp/socket", "no host"),
        ("a:1,b:2", "one host"),
        ("localhost:99999", "one host"),
    ],
)
def test_targets(tmp_path: Path, ca: CA, server: Any, target: str, expected: str) -> None:
    port, _ = server
    with client_set(tmp_path, ca, port) as profiles:
        if expected == "ok":
            with secure_channel(target.format(port=port), profiles) as channel:
                assert who(channel) == b"gen-1"
        else:
            with pytest.raises(ProfileConfigError) as info:
                secure_channel(target.format(port=port), profiles)
            assert expected.rsplit(maxsplit=1)[-1] in str(info.value)


# --------------------------------------------------------------------------- trust


def _serve_and_call(
    tmp_path: Path, ca: CA, identity: Any, anchors: CA | Truststore, **kw: Any
) -> bytes:
    """One call to a server using ``identity``, the client trusting ``anchors``."""
    trust_path = tmp_path / "anchors.jks"
    if isinstance(anchors, CA):
        trust = write_truststore(trust_path, anchors)
    else:
        anchors.save(trust_path, PASSWORD)
        trust = StoreConfig(location=trust_path, password=PASSWORD)
    keystore = write_keystore(tmp_path / "client.jks", ca.root.issue_cert("client"))
    options = kw.pop("options", None)
    with (
        grpc_server(static_credentials(identity, ca.root)) as (port, _),
        profile_set(f"localhost:{port}", keystore, trust, **kw) as profiles,
        secure_channel(f"localhost:{port}", profiles, options=options) as channel,
    ):
        return who(channel)


def anchor(certificate: Any) -> Truststore:
    store = Truststore()
    store.add("anchor", certificate)
    return store


def test_intermediate_as_the_only_anchor(tmp_path: Path, ca: CA) -> None:
    intermediate = ca.create_child_ca()
    backend = intermediate.issue_cert("localhost")
    assert _serve_and_call(tmp_path, ca, backend, intermediate) == b"client"
    # Twin: an intermediate that did not sign the backend's certificate vouches for nothing.
    with pytest.raises(grpc.RpcError) as info:
        _serve_and_call(tmp_path, ca, backend, ca.create_child_ca())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_backend_leaf_as_the_only_anchor(tmp_path: Path, ca: CA) -> None:
    backend = ca.issue_cert("localhost")
    assert _serve_and_call(tmp_path, ca, backend, anchor(backend.certificate)) == b"client"
    other = ca.issue_cert("localhost").certificate
    with pytest.raises(grpc.RpcError):
        _serve_and_call(tmp_path, ca, backend, anchor(other))


def test_self_signed_backend_imported_as_anchor(tmp_path: Path, ca: CA) -> None:
    # The seed's case: the backend's own self-signed certificate in the truststore.
    backend_store = Keystore.generate("backend", "CN=localhost", key_type="EC")
    _, key_der, chain_der = backend_store.key_entry()

    class SelfSigned:
        private_key_pem = _key_pem(key_der)
        chain_pem = _chain_pem(chain_der)

    assert _serve_and_call(tmp_path, ca, SelfSigned, anchor(chain_der[0])) == b"client"
    with pytest.raises(grpc.RpcError):
        _serve_and_call(tmp_path, ca, SelfSigned, ca)


def test_strict_refuses_a_wrong_name(tmp_path: Path, ca: CA) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _serve_and_call(tmp_path, ca, ca.issue_cert("other.example"), ca)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # Twin: the same certificate, with the name it carries chosen explicitly.
    options = [("grpc.ssl_target_name_override", "other.example")]
    assert _serve_and_call(tmp_path, ca, ca.issue_cert("other.example"), ca, options=options)


def test_wildcards_match_one_label_only(tmp_path: Path, ca: CA) -> None:
    wildcard = ca.issue_cert("*.example.com")
    one = [("grpc.ssl_target_name_override", "api.example.com")]
    assert _serve_and_call(tmp_path, ca, wildcard, ca, options=one) == b"client"
    two = [("grpc.ssl_target_name_override", "a.api.example.com")]
    with pytest.raises(grpc.RpcError):
        _serve_and_call(tmp_path, ca, wildcard, ca, options=two)


def test_default_and_localhost_checks_localhost_anyway(tmp_path: Path, ca: CA, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mtls")
    named = ca.issue_cert("localhost")
    assert (
        _serve_and_call(tmp_path, ca, named, ca, hostname_verifier="DefaultAndLocalhost")
        == b"client"
    )
    assert "DefaultAndLocalhost cannot exempt" in caplog.text
    # Stricter than the profile asked, never looser: a certificate without the name fails.
    with pytest.raises(grpc.RpcError):
        _serve_and_call(
            tmp_path,
            ca,
            ca.issue_cert("backend.internal"),
            ca,
            hostname_verifier="DefaultAndLocalhost",
        )


def test_allow_all_is_refused_without_a_name_override(tmp_path: Path, ca: CA) -> None:
    with pytest.raises(ProfileConfigError, match="AllowAll"):
        _serve_and_call(tmp_path, ca, ca.issue_cert("localhost"), ca, hostname_verifier="AllowAll")
    options = [("grpc.ssl_target_name_override", "backend.internal")]
    assert _serve_and_call(
        tmp_path,
        ca,
        ca.issue_cert("backend.internal"),
        ca,
        hostname_verifier="AllowAll",
        options=options,
    )


def test_novalidatecert_without_truststore_is_refused(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("client"))
    unverified = SSLProfile(servers=(f"localhost:{port}",), keystore=keystore, novalidatecert=True)
    with (
        SSLProfileSet([unverified]) as profiles,
        pytest.raises(ProfileConfigError, match="novalidatecert"),
    ):
        secure_channel(f"localhost:{port}", profiles)
    # Twin: with a truststore, novalidatecert is ignored (WSO2: the truststore wins).
    trust = write_truststore(tmp_path / "trust.jks", ca)
    verified = SSLProfile(
        servers=(f"localhost:{port}",), keystore=keystore, truststore=trust, novalidatecert=True
    )
    with (
        SSLProfileSet([verified]) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"client"


@pytest.mark.parametrize("between", ["no keystore", "another keystore"])
def test_a_kept_key_never_comes_back_for_another_identity(
    tmp_path: Path, ca: CA, server: Any, between: str
) -> None:
    """The key kept for gRPC (a rotation to a key it cannot use) is kept only for the
    same profile and keystore. A profile that dropped its <KeyStore> (calls go out
    without a certificate), or was pointed at another keystore, and later gets a key
    gRPC cannot use, is refused: the identity it withdrew does not come back."""
    port, _ = server
    first = tmp_path / "gen-1.jks"
    write_keystore(first, ca.issue_cert("gen-1", common_name="gen-1"))
    trust = tmp_path / "trust.jks"
    write_truststore(trust, ca)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{port}", first, trust)))
    with (
        SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0.01) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"gen-1"
        odd = tmp_path / "odd.jks"
        odd.write_bytes(secp256k1_keystore(ca))
        if between == "no keystore":
            replace_atomically(xml, profile_xml(profile(f"localhost:{port}", None, trust)))
            assert profiles.reload()
            with pytest.raises(grpc.RpcError):
                who(channel)  # no client certificate: the server refuses
            replace_atomically(xml, profile_xml(profile(f"localhost:{port}", odd, trust)))
        else:
            replace_atomically(xml, profile_xml(profile(f"localhost:{port}", odd, trust)))
        assert profiles.reload()
        with pytest.raises(ProfileConfigError, match="BoringSSL"):
            who(channel)
        assert channel.last_error is None  # nothing is kept: nothing to say of it


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.SECP224R1()], ids=lambda c: c.name)
def test_a_key_grpc_cannot_use_is_refused_with_its_reason(
    tmp_path: Path, ca: CA, server: Any, curve: ec.EllipticCurve, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenSSL loads a secp256k1 key, BoringSSL does not: every call failed with
    UNAVAILABLE ("Update handshaker factory failed") while the set said healthy. Then
    every call was refused (ProfileConfigError), still with nothing in the log or in
    any status: an outage nobody was told of. A rotation to such a key now keeps the
    key in service for gRPC (the profile's new trust applies), logs the refusal at
    ERROR and keeps it in channel.last_error; a channel made for such a key is refused
    at creation, naming it."""
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("gen-1", common_name="gen-1"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    good = keystore.location.read_bytes()
    odd = SSLProfile(servers=(f"localhost:{port}",), keystore=keystore, truststore=trust)
    with (
        SSLProfileSet([odd], settle_delay=0.01) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"gen-1" and channel.last_error is None
        replace_atomically(keystore.location, secp256k1_keystore(ca, curve))
        with caplog.at_level(logging.ERROR, logger="mtls"):
            assert profiles.reload() and profiles.status().healthy  # OpenSSL took it
            assert who(channel) == b"gen-1"  # the key in service, for gRPC
        assert channel.last_error is not None
        assert re.search(rf"{curve.name}.*BoringSSL", str(channel.last_error))
        assert "keeps presenting" in caplog.text and "PRIVATE KEY" not in caplog.text
        replace_atomically(keystore.location, good)  # twin: a usable key again
        assert profiles.reload()
        assert who(channel) == b"gen-1" and channel.last_error is None
        replace_atomically(keystore.location, secp256k1_keystore(ca, curve))
        assert profiles.reload()
        with pytest.raises(ProfileConfigError, match=curve.name):
            secure_channel(f"localhost:{port}", profiles)  # refused at creation too


def _version_1_keystore(ca: CA) -> Keystore:
    """A keystore whose client certificate (CN=gen-2) is made version 1 with its
    extensions: OpenSSL takes it, gRPC's BoringSSL does not."""
    key = ca.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issued = ca.issue_cert("gen-2", common_name="gen-2")
    leaf = version_1_with_extensions(issued.certificate, key)
    odd = Keystore()
    odd.add_key("client", issued.private_key, [leaf, ca.certificate])
    return odd


def test_a_chain_only_grpc_itself_refuses_keeps_the_key_in_service(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    """What no rule here knows of BoringSSL, gRPC is asked (a server of its own, for a
    moment): a client certificate made version 1 with extensions (OpenSSL takes it)
    failed every call after a rotation while the channel said nothing (h178). The
    key in service stays, the refusal is said; a new channel for it is refused."""
    port, _ = server
    profiles = client_set(tmp_path, ca, port)  # gen-1
    keystore = tmp_path / "client.jks"  # client_set's
    odd = _version_1_keystore(ca)
    with profiles, secure_channel(f"localhost:{port}", profiles) as channel:
        assert who(channel) == b"gen-1"
        replace_atomically(keystore, odd.to_bytes(PASSWORD))
        assert profiles.reload() and profiles.status().healthy  # OpenSSL took it
        assert who(channel) == b"gen-1"  # the key in service, for gRPC
        assert "refuses its key or certificate chain" in str(channel.last_error)
        with pytest.raises(ProfileConfigError, match="BoringSSL"):
            secure_channel(f"localhost:{port}", profiles)


def test_a_key_grpc_was_not_asked_about_waits_for_its_verdict(
    tmp_path: Path, ca: CA, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client keystore rotated while gRPC could not be asked (no port to hold): the
    key in service (known good) is presented until gRPC is asked; a channel took the
    new chain unchecked and failed every call, saying nothing, for the generation
    (h183). Once asked, a refusal is said and the key in service stays."""
    import threading

    real_probe = _boringssl._probe
    unable = threading.Event()

    def probe(items: list[Any]) -> list[bool | None]:
        return [None] * len(items) if unable.is_set() else real_probe(items)

    monkeypatch.setattr(_boringssl, "_probe", probe)
    monkeypatch.setattr(_boringssl, "RETRY_UNASKED", 0.2)
    port, _ = server
    profiles = client_set(tmp_path, ca, port)  # gen-1
    keystore = tmp_path / "client.jks"  # client_set's
    odd = _version_1_keystore(ca)
    with profiles, secure_channel(f"localhost:{port}", profiles) as channel:
        assert who(channel) == b"gen-1"
        unable.set()
        replace_atomically(keystore, odd.to_bytes(PASSWORD))
        assert profiles.reload()
        assert who(channel) == b"gen-1" and channel.last_error is None  # not asked yet
        unable.clear()
        # Judged at a call once the verdict lapses (each call still presents gen-1).
        assert wait_for(lambda: who(channel) == b"gen-1" and channel.last_error, 30)
        assert "refuses its key or certificate chain" in str(channel.last_error)
        assert who(channel) == b"gen-1"


def test_anchors_grpc_cannot_read_are_left_out_and_said(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    """BoringSSL stops reading a truststore at the first certificate it cannot parse:
    first, it left gRPC no anchor and every call failed UNAVAILABLE after a rotation
    the set called healthy (h178). gRPC is given the anchors it reads, the others are
    said; with none it reads, calls are refused saying why (never the public CAs)."""
    port, _ = server
    profiles = client_set(tmp_path, ca, port)  # gen-1
    trust = tmp_path / "trust.jks"  # client_set's
    odd = unreadable_to_grpc_ca()
    with profiles, secure_channel(f"localhost:{port}", profiles) as channel:
        assert who(channel) == b"gen-1" and channel.last_error is None
        both = Truststore()
        both.add("a-odd", odd)
        both.add("b-ca", ca.certificate)
        replace_atomically(trust, both.to_bytes(PASSWORD))
        assert profiles.reload()
        assert who(channel) == b"gen-1"
        assert "CN=v1 CA with extensions" in str(channel.last_error)
        alone = Truststore()
        alone.add("a-odd", odd)
        replace_atomically(trust, alone.to_bytes(PASSWORD))
        assert profiles.reload()
        with pytest.raises(ProfileConfigError, match="gRPC is given none"):
            who(channel)


def test_a_key_grpc_peers_refuse_is_warned_about_and_fails_as_warned(
    tmp_path: Path, ca: CA, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A P-521 client key: BoringSSL signs with it, but a gRPC server (BoringSSL)
    accepts no such signature by default, so every call failed UNAVAILABLE with no
    word from mtls. It is not refused (Go, OpenSSL and Java peers take it); the
    channel says why it will fail, once per material."""
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("gen-1", common_name="gen-1"))
    replace_atomically(keystore.location, secp256k1_keystore(ca, ec.SECP521R1()))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    profile = SSLProfile(servers=(f"localhost:{port}",), keystore=keystore, truststore=trust)
    with caplog.at_level("WARNING", logger="mtls"), SSLProfileSet([profile]) as profiles:
        with secure_channel(f"localhost:{port}", profiles) as channel:
            with pytest.raises(grpc.RpcError) as failed:
                who(channel)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # what was warned
        with secure_channel(f"localhost:{port}", profiles):
            pass
    warned = [r.getMessage() for r in caplog.records if "NO_COMMON_SIGNATURE" in r.getMessage()]
    assert len(warned) == 1 and "secp521r1" in warned[0] and "P-256 or P-384" in warned[0]


def test_a_set_that_checks_revocation_is_refused_unless_unchecked_is_accepted(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    """gRPC's TLS runs in its own core, where the set's OCSP and CRL checks cannot:
    a channel reached a revoked server in silence. It is refused, as gRPC refuses
    what it cannot honour, unless the caller accepts it."""
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("client"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    checked = SSLProfile(servers=(f"localhost:{port}",), keystore=keystore, truststore=trust)
    with SSLProfileSet([checked], revocation=RevocationPolicy(mode="soft")) as profiles:
        for make in (secure_channel, aio_secure_channel):
            with pytest.raises(ProfileConfigError, match="unchecked_revocation=True"):
                make(f"localhost:{port}", profiles)
        with secure_channel(f"localhost:{port}", profiles, unchecked_revocation=True) as channel:
            assert who(channel) == b"client"
    # Twin: without a revocation policy nothing needs accepting.
    with (
        SSLProfileSet([checked]) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"client"


def test_a_profile_with_crl_files_is_refused_unless_unchecked_is_accepted(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    """A profile's crls= is checked by Python's ssl during the handshake; gRPC's TLS is
    its own, so a channel reached a server those lists revoke."""
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("client"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    listed = SSLProfile(
        servers=(f"localhost:{port}",), keystore=keystore, truststore=trust, crls=(crl,)
    )
    with SSLProfileSet([listed]) as profiles:
        with pytest.raises(ProfileConfigError, match=r"CRL files.*unchecked_revocation=True"):
            secure_channel(f"localhost:{port}", profiles)
        with secure_channel(f"localhost:{port}", profiles, unchecked_revocation=True) as channel:
            assert who(channel) == b"client"


# --------------------------------------------------------------------------- material


def test_material_for_hides_the_key_and_tracks_rotation(tmp_path: Path, ca: CA) -> None:
    with client_set(tmp_path, ca, 8443) as profiles:
        material = profiles.material_for("LOCALHOST", 8443)
        assert isinstance(material, TLSMaterial)
        assert material.private_key is not None
        assert b"BEGIN PRIVATE KEY" in material.private_key.reveal().encode()
        assert "PRIVATE KEY" not in repr(material)
        assert material.private_key.reveal()[40:80] not in repr(material)
        assert material.certificate_chain is not None
        assert material.certificate_chain.startswith(b"-----BEGIN CERTIFICATE-----")
        assert material.root_certificates == ca.cert_pem
        assert material.subject is not None and "gen-1" in material.subject
        assert material.profile is profiles.profile_for("localhost", 8443)
        assert profiles.material_for("localhost", 8444) is None
        assert profiles.material_for("localhost", 8443) == material  # unchanged: equal
        rotate(ca, tmp_path, "gen-2")
        assert profiles.reload()
        rotated = profiles.material_for("localhost", 8443)
        assert rotated is not None
        assert rotated.fingerprint != material.fingerprint
        assert rotated.subject is not None and "gen-2" in rotated.subject


# --------------------------------------------------------------------------- rotation


def underlying(channel: RotatingChannel) -> list[grpc.Channel]:
    return [u.channel for u in channel._pools.resources()]


def finish_within(stream: Any, seconds: float) -> list[bytes]:
    """The rest of a stream, read on a helper thread: a deadlock fails the test, not CI."""
    out: list[list[bytes]] = []
    reader = threading.Thread(target=lambda: out.append(list(stream)), daemon=True)
    reader.start()
    reader.join(seconds)
    assert not reader.is_alive(), "the stream never finished (deadlock on close?)"
    return out[0]


# Repeated: the stream's last lease can end on gRPC's callback thread, which is the old
# channel's own spin thread; closing the channel there used to deadlock (sometimes).
@pytest.mark.parametrize("attempt", range(4))
def test_rotation_during_a_server_stream(
    tmp_path: Path, ca: CA, server: Any, caplog, attempt: int
) -> None:
    caplog.set_level(logging.INFO, logger="mtls")
    port, probe = server
    probe.gate.clear()
    probe.watching.clear()
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        stream = channel.unary_stream(WATCH)(b"3", timeout=30)
        assert next(stream) == b"gen-1"
        assert probe.watching.wait(10)
        [old] = underlying(channel)
        rotate(ca, tmp_path, "gen-2")
        assert profiles.reload()
        # The next call goes to a new channel with the new identity...
        assert who(channel) == b"gen-2"
        assert len(underlying(channel)) == 2
        assert not closed(old)
        # ...while the stream finishes on the old one, which then closes.
        probe.gate.set()
        assert finish_within(stream, 20) == [b"gen-1", b"gen-1"]
        wait_for(lambda: closed(old))
        assert underlying(channel) == [u for u in underlying(channel) if u is not old]
        assert len(underlying(channel)) == 1
    assert "rotated" in caplog.text and "gen-2" in caplog.text
    assert PASSWORD not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_idle_channel_is_closed_at_the_reload(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"gen-1"
        [old] = underlying(channel)
        rotate(ca, tmp_path, "gen-2")
        assert profiles.reload()  # the subscriber sweeps: no call needed
        assert closed(old)
        assert who(channel) == b"gen-2"
        # Twin: a reload that changes nothing keeps the channel.
        [current] = underlying(channel)
        assert not profiles.reload()
        assert underlying(channel) == [current]
        assert not closed(current)


def test_many_rotations_leak_no_channels_or_threads(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"gen-1"
        threads_before = client_threads()
        stream_kinds = channel.stream_stream(ECHO)
        for n in range(2, 32):
            rotate(ca, tmp_path, f"gen-{n}")
            assert profiles.reload()
            assert who(channel) == f"gen-{n}".encode()
            assert list(stream_kinds(iter([b"x"]), timeout=10)) == [f"gen-{n}:x".encode()]
            assert len(underlying(channel)) == 1
        assert len(channel._pools) == 1
        wait_for(lambda: client_threads() <= threads_before)
    assert underlying(channel) == []


def test_concurrent_calls_across_rotations(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    errors: list[BaseException] = []
    stop = threading.Event()
    with (
        client_set(tmp_path, ca, port) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):

        def hammer() -> None:
            while not stop.is_set():
                try:
                    assert who(channel).startswith(b"gen-")
                except BaseException as exc:  # any failure is the test failing
                    errors.append(exc)
                    return

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        for n in range(2, 12):
            rotate(ca, tmp_path, f"gen-{n}")
            assert profiles.reload()
        stop.set()
        for worker in workers:
            worker.join(30)
        assert not errors
        assert who(channel) == b"gen-11"
        wait_for(lambda: len(underlying(channel)) == 1)


def test_close_is_idempotent_and_final(tmp_path: Path, ca: CA, server: Any) -> None:
    port, _ = server
    with client_set(tmp_path, ca, port) as profiles:
        channel = secure_channel(f"localhost:{port}", profiles)
        assert who(channel) == b"gen-1"
        [inner] = underlying(channel)
        channel.close()
        channel.close()
        assert closed(inner)
        assert underlying(channel) == []
        # Final: a call after close() is refused as on a plain closed channel, and
        # builds no new underlying channel that nothing would close.
        with pytest.raises(ValueError, match="closed channel"):
            who(channel)
        assert underlying(channel) == []


@pytest.mark.parametrize(
    ("target", "origin"),
    [
        ("backend:8443", ("backend", 8443)),
        ("backend", ("backend", 443)),
        ("dns:///backend:50051", ("backend", 50051)),
        ("dns://8.8.8.8/backend:50051", ("backend", 50051)),
        ("ipv4:10.0.0.5:7000", ("10.0.0.5", 7000)),
        ("dns:/backend:50051", ("backend", 50051)),
        ("ipv4:/10.0.0.5:7000", ("10.0.0.5", 7000)),
        ("[::1]:8443", ("::1", 8443)),
        ("ipv6:[::1]:8443", ("::1", 8443)),
        ("::1", ("::1", 443)),
    ],
)
def test_target_parsing(target: str, origin: tuple[str, int]) -> None:
    assert _parse_target(target) == origin


@pytest.mark.parametrize(
    "target",
    [
        "", "unix:///run/x.sock", "a:1,b:2", "backend:0", "h:x", "dns:a/b:1", "/h:1",
        # gRPC decodes percent-encoding: "dns:///%6Cocalhost:1" reaches localhost while
        # a lookup of "%6Cocalhost" found the catch-all, past a profile failed closed.
        "dns:///%6Cocalhost:1", "dns:///localhost%3A1",
        "[::1", "[::1]x:5", "h:1_0", "h: 443", "h:+443", "h:\uff11\uff12",
    ],
)  # fmt: skip
def test_target_parsing_refuses(target: str) -> None:
    with pytest.raises(ProfileConfigError):
        _parse_target(target)


def test_reload_that_weakens_or_drops_the_profile_refuses_calls(
    tmp_path: Path, ca: CA, server: Any
) -> None:
    port, _ = server
    keystore = write_keystore(tmp_path / "client.jks", ca.issue_cert("gen-1", common_name="gen-1"))
    trust = write_truststore(tmp_path / "trust.jks", ca)
    xml = tmp_path / "sslprofiles.xml"

    def write(servers: str, *, verified: bool = True) -> None:
        if verified:
            text = profile(servers, keystore.location, trust.location)
        else:
            text = profile(servers, keystore.location, attrs='novalidatecert="true"')
        replace_atomically(xml, profile_xml(text).encode())

    write(f"localhost:{port}")
    with (
        SSLProfileSet.from_xml(xml, settle_delay=0.01) as profiles,
        secure_channel(f"localhost:{port}", profiles) as channel,
    ):
        assert who(channel) == b"gen-1"
        [old] = underlying(channel)
        write(f"localhost:{port}", verified=False)
        assert profiles.reload()
        with pytest.raises(ProfileConfigError, match="novalidatecert"):
            who(channel)
        assert closed(old)
        write(f"localhost:{port + 1}")
        assert profiles.reload()
        with pytest.raises(ProfileConfigError, match="no SSL profile"):
            who(channel)
        assert underlying(channel) == []
        # Twin: the profile back, and calls work again.
        write(f"localhost:{port}")
        assert profiles.reload()
        assert who(channel) == b"gen-1"


def test_an_rsassa_pss_key_is_refused_for_grpc_at_creation(tmp_path: Path, ca: CA) -> None:
    """An RSASSA-PSS key (keytool -keyalg RSASSA-PSS, openssl genpkey -algorithm
    RSA-PSS): cryptography reads it as an RSA key and OpenSSL serves it, but BoringSSL
    cannot read it. A channel was made and every call failed (UNAVAILABLE), and a
    server's add_secure_port failed as if the port were taken (h159). Refused at
    creation now, naming the key type, for both. The twin: the same keystore with a
    plain RSA key makes both."""
    from mtls.integrations.grpc import server_credentials

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command")
    trust = write_truststore(tmp_path / "trust.jks", ca)
    for algorithm, refused in (("RSA-PSS", True), ("RSA", False)):
        key, cert = tmp_path / f"{algorithm}.key", tmp_path / f"{algorithm}.crt"
        subprocess.run([openssl, "genpkey", "-algorithm", algorithm, "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(key)], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([openssl, "req", "-x509", "-key", str(key), "-subj", "/CN=localhost",
                        "-days", "2", "-out", str(cert)], check=True,
                       capture_output=True)  # fmt: skip
        pem, store = tmp_path / f"{algorithm}.pem", tmp_path / f"{algorithm}.jks"
        pem.write_text(cert.read_text() + key.read_text())
        Keystore.load(pem, None).save(store, PASSWORD)
        keystore = StoreConfig(location=store, password=PASSWORD)
        with SSLProfileSet(
            [SSLProfile(servers=("localhost:1",), keystore=keystore, truststore=trust)],
            reload_interval=None,
        ) as profiles:
            assert profiles.context_for("localhost", 1) is not None  # OpenSSL serves it
            if refused:
                with pytest.raises(ProfileConfigError, match=r"RSASSA-PSS key.*BoringSSL"):
                    secure_channel("localhost:1", profiles)
                with pytest.raises(ProfileConfigError, match=r"RSASSA-PSS key.*BoringSSL"):
                    server_credentials(keystore, trust, reload_interval=None)
            else:
                secure_channel("localhost:1", profiles).close()
                server_credentials(keystore, trust, reload_interval=None).close()
