"""A first load parses its profile file while the first profile's big truststore is
loaded into a context on a thread (OpenSSL reads a cafile with the GIL released).

Real stores, real handshakes; the thread's context is seen through AnchorsAhead.take
(recorded, not replaced). Each positive case has its negative twin.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import mtls
from mtls import SSLProfileSet, _context, _keyload
from mtls.testing import CA, MTLSServer
from tests._helpers import PASSWORD, profile, profile_xml, wait_for, whoami
from tests.stores.test_context import _BIG, _strangers

pytestmark = pytest.mark.skipif(not _keyload.memfd_available(), reason="memfd_create is Linux only")


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="ahead CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


def _big_trust(path: Path, *certificates: bytes) -> Path:
    trust = mtls.Truststore()
    for number, der in enumerate([*_strangers(_BIG), *certificates]):
        trust.add(f"anchor{number}", der)
    trust.save(path, PASSWORD, store_type="JKS")
    return path


def _taken(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext | None]:
    seen: list[ssl.SSLContext | None] = []
    take = _context.AnchorsAhead.take

    def record(self: _context.AnchorsAhead, anchors: object) -> ssl.SSLContext | None:
        got = take(self, anchors)  # type: ignore[arg-type]
        seen.append(got)
        return got

    monkeypatch.setattr(_context.AnchorsAhead, "take", record)
    return seen


def test_the_first_profiles_big_truststore_is_loaded_while_the_file_is_parsed(
    tmp_path: Path, ca: CA, backend: MTLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context built from the thread's anchors verifies the backend its CA signed,
    and refuses one of another CA; every profile shares it. The twin: a small
    truststore starts no thread (it would hold the GIL: nothing to overlap)."""
    taken = _taken(monkeypatch)
    der = serialization.Encoding.DER
    trust = _big_trust(tmp_path / "big.jks", ca.certificate.public_bytes(der))
    keystore = tmp_path / "gw.jks"
    ca.issue_cert("gateway").write_keystore(keystore, PASSWORD)
    xml = tmp_path / "profiles.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            *(profile(f"b{n}.test:443", keystore, trust) for n in range(200)),
        )
    )
    # A store read early must be settled without a wait: its last change over a tick
    # of the kernel's coarse clock old (a fresh one is left to the build).
    wait_for(lambda: time.time_ns() - os.stat(trust).st_ctime_ns > 50_000_000, timeout=10)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert len(taken) == 1 and taken[0] is not None
    ctx = profiles.context_for("localhost", backend.port)
    assert ctx is taken[0] and profiles.context_for("b7.test", 443) is ctx
    assert ctx.cert_store_stats()["x509_ca"] == _BIG + 1
    assert whoami(ctx, backend.port)["client_cn"] == "gateway"
    stranger = CA(name="stranger CA")
    with MTLSServer(stranger.issue_cert("localhost"), client_ca=ca) as other:
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(ctx, other.port)
    small = tmp_path / "small.jks"
    ca.write_truststore(small, PASSWORD)
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, small)))
    taken.clear()
    assert whoami(SSLProfileSet.from_xml(xml).context_for("localhost", backend.port),
                  backend.port)["client_cn"] == "gateway"  # fmt: skip
    assert taken == []


def test_a_certificate_openssl_refuses_is_named_as_without_the_thread(
    tmp_path: Path, ca: CA, backend: MTLSServer
) -> None:
    """The thread's load fails on a certificate OpenSSL will not take: nothing is taken,
    and the build loads the anchors itself, naming the certificate by its alias, as a
    set of the same profile made in code does (no file parsed, no thread)."""
    import jks  # pyjks writes what it is given, as a damaged store may hold

    entries = [jks.TrustedCertEntry.new(f"anchor{n}", d) for n, d in enumerate(_strangers(_BIG))]
    # One DER element, not a certificate: OpenSSL refuses it.
    entries.append(jks.TrustedCertEntry.new("not-a-cert", b"\x30\x03\x02\x01\x01"))
    path = tmp_path / "odd.jks"
    jks.KeyStore.new("jks", entries).save(str(path), PASSWORD)
    keystore = tmp_path / "gw.jks"
    ca.issue_cert("gateway").write_keystore(keystore, PASSWORD)
    xml = tmp_path / "profiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, path)))
    with pytest.raises(mtls.KeystoreFormatError) as caught:
        SSLProfileSet.from_xml(xml, settle_delay=0)
    in_code = mtls.SSLProfile(
        servers=(f"localhost:{backend.port}",),
        keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
        truststore=mtls.StoreConfig(location=path, password=PASSWORD),
    )
    with pytest.raises(mtls.KeystoreFormatError) as twin:
        SSLProfileSet([in_code], settle_delay=0)
    for error in (caught.value, twin.value):
        assert "OpenSSL refused certificate 'not-a-cert'" in str(error), str(error)
        assert error.alias == "not-a-cert"


def test_take_gives_the_context_once_and_only_for_the_same_anchors() -> None:
    anchors = _strangers(_BIG)
    ahead = _context.AnchorsAhead(anchors)
    assert ahead.take(anchors[:-1]) is None  # other anchors: not these
    ctx = ahead.take(list(anchors))
    assert ctx is not None and ctx.cert_store_stats()["x509_ca"] == _BIG
    assert ahead.take(anchors) is None  # once


def _ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mtls-anchors"]


def test_no_thread_outlives_the_load_that_started_it(
    tmp_path: Path, ca: CA, backend: MTLSServer
) -> None:
    """A load whose early context nobody takes (its first profile fails and is skipped;
    or the file turns out malformed after it) waits for the thread before it returns or
    raises: a pre-forking server that forks right after must not copy a thread inside
    OpenSSL (children hung), nor its memory file. The twin: the thread did start."""
    der = serialization.Encoding.DER
    trust = _big_trust(tmp_path / "big.jks", ca.certificate.public_bytes(der))
    keystore = tmp_path / "gw.jks"
    ca.issue_cert("gateway").write_keystore(keystore, PASSWORD)
    small = tmp_path / "small.jks"
    ca.write_truststore(small, PASSWORD)
    wrong = profile("a.test:443", keystore, trust).replace(
        f"<KeyPassword>{PASSWORD}</KeyPassword>", "<KeyPassword>not-it</KeyPassword>"
    )
    good = profile(f"localhost:{backend.port}", keystore, small)
    xml = tmp_path / "profiles.xml"
    xml.write_text(profile_xml(wrong, good))
    wait_for(lambda: time.time_ns() - os.stat(trust).st_ctime_ns > 50_000_000, timeout=10)
    started = []
    real = _context.AnchorsAhead.__init__

    def record(self: _context.AnchorsAhead, anchors: object) -> None:
        real(self, anchors)  # type: ignore[arg-type]
        started.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_context.AnchorsAhead, "__init__", record)
        profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
        assert len(started) == 1 and _ahead_threads() == []
        assert not profiles.status().healthy
        xml.write_text(profile_xml(wrong, good)[:-30])  # cut short: not well-formed
        wait_for(lambda: time.time_ns() - os.stat(xml).st_ctime_ns > 50_000_000, timeout=10)
        with pytest.raises(mtls.ProfileConfigError, match="not well-formed"):
            SSLProfileSet.from_xml(xml, settle_delay=0)
        assert len(started) == 2 and _ahead_threads() == []
