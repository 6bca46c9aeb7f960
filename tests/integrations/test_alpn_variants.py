"""ALPN variants: clients that set ALPN get contexts of their own, never a shared one."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
import mtls._build
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, accepting, profile, profile_xml


@pytest.fixture
def alpn_server() -> Iterator[tuple[int, list[str | None], CA]]:
    """A TLS server offering h2 and http/1.1 that records what each handshake selected."""
    ca = CA(name="alpn CA")
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    selected: list[str | None] = []

    def answer(raw: socket.socket) -> None:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            selected.append(tls.selected_alpn_protocol())
            tls.sendall(b"x")

    with accepting(answer) as port:
        yield port, selected, ca


def handshake(ctx: ssl.SSLContext, port: int) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.recv(1)
            return tls.selected_alpn_protocol()


def _one_profile(tmp_path: Path, port: int, ca: CA) -> Path:
    """A profile file for localhost:``port``: keystore gw.jks (CN=gw), ``ca``'s trust."""
    ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(profile(f"localhost:{port}", tmp_path / "gw.jks", tmp_path / "trust.jks"))
    )
    return xml


def test_variants_are_separate_cached_and_negotiate_their_own_alpn(tmp_path, alpn_server):
    port, selected, ca = alpn_server
    xml = _one_profile(tmp_path, port, ca)
    profiles = mtls.SSLProfileSet.from_xml(xml, settle_delay=0)
    base = profiles.context_for("localhost", port)
    h1 = profiles.context_for("localhost", port, alpn=["http/1.1"])
    h2 = profiles.context_for_url(f"https://localhost:{port}/", alpn=("h2", "http/1.1"))
    assert len({id(base), id(h1), id(h2)}) == 3
    assert profiles.context_for("localhost", port, alpn=("http/1.1",)) is h1  # cached
    assert handshake(h2, port) == "h2"
    assert handshake(h1, port) == "http/1.1"
    assert handshake(base, port) is None  # the shared context offers no ALPN at all
    assert selected == ["h2", "http/1.1", None]
    # A rotation builds new variants and drops the old ones.
    replace_atomically(tmp_path / "gw.jks", ca.issue_cert("gw2").keystore().to_bytes(PASSWORD))
    assert profiles.reload() is True
    new_h1 = profiles.context_for("localhost", port, alpn=("http/1.1",))
    assert new_h1 is not h1
    assert handshake(new_h1, port) == "http/1.1"
    # ... kept with the material they were made from: the retired material took its own.
    assert all(
        item.served.variants.get((False, ("http/1.1",))) is not h1
        for item in profiles._snapshot.built
    )


def test_a_user_supplied_default_context_is_returned_as_it_is():
    default = mtls.client_context()
    profiles = mtls.SSLProfileSet([], default=default)
    assert profiles.context_for("any.test", 443, alpn=("h2",)) is default
    assert profiles.context_for("any.test", 443) is default
    assert mtls.SSLProfileSet([]).context_for("any.test", 443, alpn=("h2",)) is None


def test_httpx_transport_uses_the_variant_for_its_alpn(tmp_path, alpn_server):
    httpx_integration = pytest.importorskip("mtls.integrations.httpx")
    port, _, ca = alpn_server
    xml = _one_profile(tmp_path, port, ca)
    profiles = mtls.SSLProfileSet.from_xml(xml)
    transport = httpx_integration.MTLSTransport(profiles)
    try:
        entry, _ = transport._pools.acquire("localhost", port)
        assert entry is not None
        assert entry.context is profiles.context_for("localhost", port, alpn=("http/1.1",))
        assert entry.context is not profiles.context_for("localhost", port)
        transport._pools.release(entry)
    finally:
        transport.close()


def test_httpx_alpn_lists_are_exactly_httpcores():
    httpx_integration = pytest.importorskip("mtls.integrations.httpx")
    assert httpx_integration._alpn({}) == ("http/1.1",)
    assert httpx_integration._alpn({"http2": True}) == ("http/1.1", "h2")
    assert httpx_integration._alpn({"http1": False, "http2": True}) == ("http/1.1", "h2")


def test_requests_asks_for_urllib3s_current_alpn(monkeypatch):
    requests_integration = pytest.importorskip("mtls.integrations.requests")
    import urllib3.util.ssl_

    assert requests_integration._urllib3_alpn() == tuple(urllib3.util.ssl_.ALPN_PROTOCOLS)
    monkeypatch.setattr(urllib3.util.ssl_, "ALPN_PROTOCOLS", ["h2"])  # what HTTP/2 injection does
    assert requests_integration._urllib3_alpn() == ("h2",)


def test_a_variant_for_a_retired_context_is_not_cached(tmp_path, alpn_server):
    port, _, ca = alpn_server
    xml = _one_profile(tmp_path, port, ca)
    profiles = mtls.SSLProfileSet.from_xml(xml, settle_delay=0)
    base, served = profiles._lookup(profiles._snapshot, "localhost", port, None)
    old_snapshot = profiles._snapshot
    replace_atomically(tmp_path / "gw.jks", ca.issue_cert("gw2").keystore().to_bytes(PASSWORD))
    assert profiles.reload() is True
    assert base is not None and served is not None
    stale = served.with_alpn(base, ("http/1.1",))  # a caller that raced the reload
    assert handshake(stale, port) == "http/1.1"
    # The variant lives with the retired material only: the set's new snapshot does not
    # hold it (nor the material), so it goes when that caller lets go.
    assert profiles._snapshot is not old_snapshot
    assert all(item.served is not served for item in profiles._snapshot.built)
    fresh = profiles.context_for("localhost", port, alpn=("http/1.1",))
    assert fresh is not stale and handshake(fresh, port) == "http/1.1"


def test_a_rotation_makes_the_variants_in_use_before_it_is_published(
    tmp_path, alpn_server, monkeypatch
):
    """The first lookup after a rotation built its ALPN variant on the caller's thread,
    for async clients the event loop's (21 ms per variant with a 146-anchor
    truststore: httpx's first request after a reload stalled its loop for every
    profile it had used). The reload now makes the variants the material in service
    was asked for, on its own thread; the lookup builds nothing."""
    port, _, ca = alpn_server
    xml = _one_profile(tmp_path, port, ca)
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        old = profiles.context_for("localhost", port, alpn=("h2", "http/1.1"))
        replace_atomically(tmp_path / "gw.jks", ca.issue_cert("gw2").keystore().to_bytes(PASSWORD))
        assert profiles.reload() is True
        built: list[bool] = []
        real = mtls._build.build_client_context

        def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
            built.append(True)
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(mtls._build, "build_client_context", counted)
        new = profiles.context_for("localhost", port, alpn=("h2", "http/1.1"))
        assert built == []  # made by the reload, not by this lookup
        assert new is not old and handshake(new, port) == "h2"
        # The twin: a list nobody asked for before the rotation is built on first use.
        profiles.context_for("localhost", port, alpn=("http/1.1",))
        assert built == [True]


def test_a_variant_that_fails_to_prebuild_does_not_stop_the_rotation(
    tmp_path, alpn_server, monkeypatch
):
    """The prebuild is a warm-up, never a veto: the rotation goes in, and the first
    lookup builds the variant."""
    port, _, ca = alpn_server
    xml = _one_profile(tmp_path, port, ca)
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        old = profiles.context_for("localhost", port, alpn=("h2", "http/1.1"))
        replace_atomically(tmp_path / "gw.jks", ca.issue_cert("gw2").keystore().to_bytes(PASSWORD))
        real = mtls._build.Served.with_alpn

        def failing(*args: object) -> ssl.SSLContext:
            raise RuntimeError("no memory for a context just now")

        monkeypatch.setattr(mtls._build.Served, "with_alpn", failing)
        assert profiles.reload() is True
        assert profiles.status().profiles[0].subject is not None
        assert "gw2" in str(profiles.status().profiles[0].subject)
        monkeypatch.setattr(mtls._build.Served, "with_alpn", real)
        new = profiles.context_for("localhost", port, alpn=("h2", "http/1.1"))
        assert new is not old and handshake(new, port) == "h2"
