"""The reloader: rotation without restarts, keep-last-good, settle, threads, lifecycle."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtls import (
    Keystore,
    KeystoreError,
    MTLSError,
    ProfileConfigError,
    ProfileUnavailableError,
    SSLProfileSet,
    StoreConfig,
    Truststore,
    _reading,
    _x509,
)
from mtls.testing import CA, MTLSServer, replace_atomically, swap_symlinked_dir, write_in_two_halves
from tests._helpers import (
    PASSWORD,
    jks,
    out_of_date_copy,
    pem_keystore,
    profile,
    profile_xml,
    same_key,
    truststore_openssl_refuses,
    wait_for,
    whoami,
)
from tests._pki import mismatched

INTERVAL = 0.1


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="reload CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, ca: CA, backend: MTLSServer):
    """A profile file for localhost:PORT with keystore gw.jks (CN=gen-1) and trust.jks."""
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    return xml, keystore, trust


def cn_seen(profiles: SSLProfileSet, port: int) -> str:
    return str(whoami(profiles.context_for("localhost", port), port)["client_cn"])


def test_noop_reload_keeps_the_same_context_and_generation(setup, backend):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml)
    ctx = profiles.context_for("localhost", backend.port)
    assert profiles.reload() is False
    assert profiles.generation == 0
    assert profiles.context_for("localhost", backend.port) is ctx
    # Touching a file without changing its content re-hashes it but builds nothing.
    os.utime(xml, None)
    assert profiles.reload() is False
    assert profiles.context_for("localhost", backend.port) is ctx


def test_rotation_in_place_reaches_a_live_handshake_within_two_intervals(setup, ca, backend):
    xml, keystore, _ = setup
    with SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0.02) as profiles:
        assert cn_seen(profiles, backend.port) == "gen-1"
        changed = threading.Event()
        profiles.subscribe(lambda old, new: changed.set())
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert changed.wait(10), "the reload thread did not pick up the new keystore"
        assert profiles.generation == 1
        assert cn_seen(profiles, backend.port) == "gen-2"
        assert profiles.last_error is None


def _trusting_a_stale_ca_too(ca: CA, trust: Path) -> Truststore:
    """``trust`` rewritten to hold ``ca`` and an expired CA; a truststore of the expired
    one alone (a withdrawal of ``ca`` from it), returned."""
    stale = out_of_date_copy(CA(name="retired CA"))
    both = Truststore()
    both.add("current", ca.certificate)
    both.add("retired", stale)
    replace_atomically(trust, both.to_bytes(PASSWORD))
    kept = Truststore()
    kept.add("retired", stale)
    return kept


def test_a_reload_on_the_main_thread_settles_without_the_stop_events_lock(setup, ca, backend):
    """A KeyboardInterrupt inside Event.wait can leave the event's lock held (a sweep
    wedged a set after 2,340 interrupted reloads): the next reload() waited for that
    lock in its settle delay, and close(), which sets the event, hung for good. The
    main thread, where signals arrive, now settles without taking it."""
    assert threading.current_thread() is threading.main_thread()
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0.05)
    stop = profiles._engine._stop  # type: ignore[union-attr]
    held, release, waited_out = threading.Event(), threading.Event(), []

    def wedge() -> None:  # holds the lock as an interrupted wait leaves it
        with stop._cond:  # type: ignore[attr-defined]
            held.set()
            if not release.wait(20):
                waited_out.append(True)  # reload() waited for the lock

    wedger = threading.Thread(target=wedge)
    wedger.start()
    slept: list[float] = []
    sleep = _reading.time.sleep

    def spy(seconds: float) -> None:  # the settle delay is still waited out
        slept.append(seconds)
        sleep(seconds)

    try:
        assert held.wait(10)
        replace_atomically(keystore, jks(ca, "gen-2"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_reading.time, "sleep", spy)
            assert profiles.reload()
        assert slept  # the settle delay was waited out (in slices), not skipped
        assert cn_seen(profiles, backend.port) == "gen-2"
    finally:
        release.set()
        wedger.join()
        profiles.close()
    assert waited_out == []


def test_a_trust_withdrawal_is_installed_even_when_what_it_keeps_is_out_of_date(
    setup, ca, backend, caplog
):
    """A truststore that only removes the backend's CA, keeping one out of its dates:
    it was refused as one that verifies nothing, and the withdrawn CA stayed trusted.
    A withdrawal is never held back: installed (the backend is no longer verified),
    with a warning."""
    xml, _, trust = setup
    kept = _trusting_a_stale_ca_too(ca, trust)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    replace_atomically(trust, kept.to_bytes(PASSWORD))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert profiles.reload() is True
    assert "a withdrawal is never held back" in caplog.text
    with pytest.raises(ssl.SSLCertVerificationError):
        cn_seen(profiles, backend.port)


def test_a_withdrawal_is_said_once_for_the_profiles_that_share_it(setup, ca, backend, caplog):
    """Three profiles, each with its own keystore, on one truststore: the withdrawal was
    warned of once per profile (a thousand lines for a thousand profiles). Once per
    file and content."""
    xml, keystore, trust = setup
    kept = _trusting_a_stale_ca_too(ca, trust)
    keystores = [keystore.with_name(f"gw{i}.jks") for i in range(3)]
    for i, path in enumerate(keystores):
        path.write_bytes(jks(ca, f"gen-{i}"))
    servers = [f"host{i}.example:{backend.port}" for i in range(3)]
    xml.write_text(profile_xml(*map(profile, servers, keystores, [trust] * 3)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(trust, kept.to_bytes(PASSWORD))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert profiles.reload() is True
    assert caplog.text.count("a withdrawal is never held back") == 1


def test_a_new_profile_is_not_judged_by_another_profiles_trust(setup, ca, backend, caplog):
    """A profile added by an edit, sharing a keystore in service, whose truststore
    holds only a certificate out of its dates: it was compared with the other
    profile's truststore, found a "withdrawal" from it, and loaded (with a false
    warning). It never had a truststore: it is refused, as before the withdrawal rule."""
    xml, keystore, trust = setup
    kept = _trusting_a_stale_ca_too(ca, trust)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    only_stale = trust.with_name("stale.jks")
    kept.save(only_stale, PASSWORD)
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile("127.0.0.1:1", keystore, only_stale),
        )
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles.reload()
    assert "a withdrawal is never held back" not in caplog.text
    added = [p for p in profiles.status().profiles if "127.0.0.1:1" in p.servers]
    assert added and not added[0].loaded
    assert cn_seen(profiles, backend.port) == "gen-1"  # the first profile still serves


@pytest.mark.parametrize("expired", [True, False], ids=["expired", "not-yet-valid"])
def test_a_truststore_that_would_verify_nothing_is_not_installed(setup, ca, backend, expired):
    """A replacement truststore whose every certificate is out of its dates verifies no
    server under OpenSSL: it was installed, and status() said healthy while every
    handshake failed. It is refused as an expired keystore certificate is."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    stale = Truststore()
    stale.add("ca", out_of_date_copy(ca, expired=expired))
    replace_atomically(trust, stale.to_bytes(PASSWORD))
    assert profiles.reload() is False
    assert profiles.generation == 0
    assert not profiles.status().healthy
    assert "no certificate of the new truststore is valid now" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-1"  # the previous truststore serves
    # Judged apart: a new identity arriving meanwhile goes in, with the trust in service.
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "gen-2"
    assert "no certificate of the new truststore is valid now" in str(profiles.last_error)
    # Twin: with one anchor valid now beside it, the new truststore is installed.
    stale.add("current", ca.certificate)
    replace_atomically(trust, stale.to_bytes(PASSWORD))
    assert profiles.reload() is True
    assert profiles.status().healthy and cn_seen(profiles, backend.port) == "gen-2"


def _p12_of(key_pem: bytes, cert_pem: bytes, ca: CA, tmp: Path) -> bytes:
    """A PKCS#12 keystore of the key and certificate, made by OpenSSL (which writes a
    certificate cryptography cannot read as it is)."""
    import subprocess

    (tmp / "k.pem").write_bytes(key_pem)
    (tmp / "c.pem").write_bytes(cert_pem + ca.cert_pem)
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-inkey", str(tmp / "k.pem"), "-in", str(tmp / "c.pem"),
         "-name", "client", "-passout", f"pass:{PASSWORD}", "-out", str(tmp / "x.p12")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return (tmp / "x.p12").read_bytes()


@pytest.mark.parametrize(
    ("not_after", "tag"),
    [(b"0101010000Z", 0x17), (b"20010101000000.5Z", 0x18), (b"010101000000+0100", 0x17)],
    ids=["utc-no-seconds", "generalized-fraction", "utc-offset"],
)
def test_an_expired_replacement_in_a_form_der_forbids_is_not_installed(
    setup, ca, backend, tmp_path, not_after, tag
):
    """A validity time OpenSSL and Java read but DER (and so cryptography) forbids:
    no seconds, a fraction, an offset. The certificate was served without its dates,
    so an expired replacement went in (status said "no client certificate", healthy)
    and every server refused it. Our own walk of the DER reads the dates now."""
    from tests._pki import odd_validity

    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    replace_atomically(
        keystore,
        _p12_of(
            *odd_validity(ca, "gen-2", not_after, tag=tag, not_before=b"000101000000Z"),
            ca,
            tmp_path,
        ),
    )
    assert profiles.reload() is False
    error = str(profiles.last_error)
    assert "the new certificate (CN=gen-2) expired on 2001-01-01" in error or (
        "expired on 2000-12-31" in error  # +0100: an hour earlier in UTC
    ), error
    assert not profiles.status().healthy
    assert cn_seen(profiles, backend.port) == "gen-1"  # the last good serves
    # Twin: the same form, in date, goes in, with its subject and dates in status().
    later = {0x17: b"4912312359Z", 0x18: b"20491231235959.5Z"}[tag]
    key_pem, cert_pem = odd_validity(ca, "gen-3", later, tag=tag)
    replace_atomically(keystore, _p12_of(key_pem, cert_pem, ca, tmp_path))
    if _x509.openssl_refusal(ssl.PEM_cert_to_DER_cert(cert_pem.decode())) is not None:
        # OpenSSL 3.6 reads no such certificate (3.0 does): not installed either (h206).
        assert profiles.reload() is False
        assert cn_seen(profiles, backend.port) == "gen-1"
        return
    assert profiles.reload() is True
    identity = profiles.status().profiles[0].identity
    assert identity is not None and identity.subject == "CN=gen-3"
    assert identity.not_after is not None and identity.not_after.year == 2049


def test_a_never_valid_replacement_is_said_to_be_never_valid(setup, ca, backend, tmp_path):
    """A certificate whose notBefore is after its notAfter (a clock wrong at issue) was
    refused as "expired on 2020-01-01", which says "rotate" to a certificate just
    issued. It is never valid: reissue it. The last good serves; the twin (in date)
    goes in (test_an_expired_replacement_in_a_form_der_forbids_is_not_installed)."""
    from tests._pki import odd_validity

    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    replace_atomically(
        keystore, _p12_of(*odd_validity(ca, "gen-2", b"200101000000Z"), ca, tmp_path)
    )
    assert profiles.reload() is False
    error = str(profiles.last_error)
    assert "the new certificate (CN=gen-2) is never valid: its notBefore (" in error, error
    assert "reissue it" in error and "expired" not in error, error
    assert cn_seen(profiles, backend.port) == "gen-1"


@pytest.mark.parametrize("which", ["keystore", "profile file"])
def test_a_file_rewritten_without_end_becomes_an_error(
    setup, ca, backend, monkeypatch, which, caplog
):
    """A file rewritten in place at every moment (a sync loop, a misconfigured sidecar)
    never settles: its rotation waited forever with one INFO line per check (the
    profile file's, with none), and status() said healthy. After NEVER_SETTLES_AFTER
    (60 s; a fraction of a second here) it is an error, with the last good serving;
    once the writes stop, the next check installs it and the error goes."""
    from mtls import _reading

    monkeypatch.setattr(_reading, "NEVER_SETTLES_AFTER", 0.5)
    xml, keystore, _ = setup
    target = keystore if which == "keystore" else xml
    # Each write is new bytes (a counter after the store, which readers ignore as Java
    # does, or in a comment): two reads a settle delay apart differ unless the writer
    # stalled for that long, which lets that version settle and go in.
    versions = (
        [jks(ca, "gen-2"), jks(ca, "gen-3")]
        if which == "keystore"
        else [xml.read_bytes() + b"<!-- -->"] * 2
    )
    tails = (b"%d", b"<!-- %d -->")[which != "keystore"]
    # A version settles only if the writer stalls for a whole settle delay: 0.2 s, which
    # a loaded machine (tests in parallel) does not stall it for, where 20 ms it did.
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0.2)
    assert cn_seen(profiles, backend.port) == "gen-1"
    stop = threading.Event()

    def rewrite() -> None:
        i = 0
        while not stop.is_set():
            with open(target, "r+b") as f:  # in place: same inode, new bytes
                f.write(versions[i % 2] + tails % i)
                f.truncate()
            i += 1
            stop.wait(0.002)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:

        def said() -> bool:
            profiles.reload()
            return "still being written for over 0.5 s" in str(profiles.status().to_dict())

        with caplog.at_level(logging.DEBUG, logger="mtls"):
            wait_for(said, timeout=30)
            for _ in range(6):  # it stays an error, said once (it was said every check)
                profiles.reload()
        assert not profiles.status().healthy
        logged = [(r.levelno, r.getMessage()) for r in caplog.records]
        errors = [m for level, m in logged if level >= logging.WARNING and "for over" in m]
        assert len(errors) == 1, errors
        # Before it: caught mid-write said once at INFO, its repeats at DEBUG.
        infos = [m for level, m in logged if level == logging.INFO and "retrying" in m]
        assert len(infos) <= 1, infos
        # The last good serves (gen-1, or a version that stood still for a settle delay).
        assert cn_seen(profiles, backend.port) in ("gen-1", "gen-2", "gen-3")
    finally:
        stop.set()
        writer.join(10)
    wait_for(lambda: profiles.reload() or profiles.last_error is None, timeout=30)
    wait_for(lambda: profiles.status().healthy and profiles.last_error is None, timeout=30)
    if which == "keystore":
        assert cn_seen(profiles, backend.port) in ("gen-2", "gen-3")


@pytest.mark.parametrize("expired", [True, False], ids=["expired", "not-yet-valid"])
def test_a_keystore_whose_intermediate_is_out_of_date_is_not_installed(setup, ca, backend, expired):
    """A replacement whose leaf is valid but whose intermediate is out of its dates:
    every peer refuses the chain ("certificate has expired"), yet it was installed and
    status() said healthy. It is refused as an expired leaf is, naming the
    intermediate; the twin: the same under a current intermediate goes in."""
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    start, end = (now - 30 * day, now - day) if expired else (now + day, now + 30 * day)
    dated = ca.create_child_ca(name="dated ica", not_before=start, not_after=end)
    leaf = jks(dated, "gen-2", not_before=now - day, not_after=now + 30 * day)
    replace_atomically(keystore, leaf)
    assert profiles.reload() is False
    said = "the new certificate's chain: the intermediate certificate (CN=dated ica"
    assert said in str(profiles.last_error)
    assert ("expired on" if expired else "is not valid before") in str(profiles.last_error)
    assert not profiles.status().healthy
    assert cn_seen(profiles, backend.port) == "gen-1"  # the last good serves
    replace_atomically(keystore, jks(ca.create_child_ca(name="current ica"), "gen-3"))
    assert profiles.reload() is True
    assert profiles.last_error is None and cn_seen(profiles, backend.port) == "gen-3"


def _unloadable(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "damaged":
        replace_atomically(path, path.read_bytes()[:100])
    elif how == "wrong password":
        replace_atomically(path, Truststore.load(path, PASSWORD).to_bytes("other-password"))
    else:  # an empty truststore (keytool -delete of its last entry; a Truststore refuses)
        replace_atomically(path, Keystore().to_bytes(PASSWORD))


@pytest.mark.parametrize("how", ["missing", "damaged", "wrong password", "empty"])
def test_a_truststore_that_does_not_load_never_holds_back_a_new_identity(setup, ca, backend, how):
    """A replacement truststore that did not load held back every keystore change of
    its profile: the new identity waited until the truststore loaded again. It goes in,
    with the trust in service; the truststore's error stays in status()."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    _unloadable(trust, how)
    assert profiles.reload() is False  # the twin: only the truststore changed
    assert str(trust) in str(profiles.last_error)
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "gen-2"
    assert str(trust) in str(profiles.last_error) and not profiles.status().healthy
    ca.write_truststore(trust, PASSWORD)  # the truststore in service is back: healthy
    profiles.reload()
    assert profiles.status().healthy and profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-2"


@pytest.mark.parametrize("how", ["missing", "damaged", "wrong password"])
def test_a_keystore_that_does_not_load_never_holds_back_a_trust_withdrawal(setup, ca, backend, how):
    """The other way round, and the one that matters for security: the backend's CA is
    withdrawn from the truststore while the keystore is broken. The withdrawal used to
    wait for the keystore; it is applied at once, with the identity in service."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    if how == "wrong password":
        other = ca.issue_cert("gen-x", common_name="gen-x").keystore()
        replace_atomically(keystore, other.to_bytes("other-password"))
    else:
        _unloadable(keystore, how)
    assert profiles.reload() is False
    assert str(keystore) in str(profiles.last_error)
    CA(name="another server CA").write_truststore(trust, PASSWORD)  # the backend's CA withdrawn
    assert profiles.reload() is True
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(profiles.context_for("localhost", backend.port), backend.port)
    assert str(keystore) in str(profiles.last_error)
    counts = profiles.status().reloads  # the partial apply is a change, not a failure
    assert (counts.changed, counts.failed) == (1, 1)
    ca.write_truststore(trust, PASSWORD)  # the twin: trusted again, the old identity is sent
    assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "gen-1"


@pytest.mark.parametrize("how", ["mismatched key", "no key entry", "two keys, no alias"])
def test_a_keystore_that_loads_but_cannot_be_used_never_holds_back_a_trust_withdrawal(
    setup, ca, backend, how
):
    """A keystore that loads and fails further on (OpenSSL refuses its key, or it has
    no single key entry) held the withdrawal back as a broken file did."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    one, other = ca.issue_cert("gen-x"), ca.issue_cert("gen-y")
    unusable = Keystore()
    if how == "mismatched key":
        unusable = mismatched(other.private_key, [one.certificate])
    elif how == "two keys, no alias":
        unusable.add_key("a", one.private_key, [one.certificate])
        unusable.add_key("b", other.private_key, [other.certificate])
    replace_atomically(
        keystore,
        unusable.to_bytes(PASSWORD) if len(unusable) else ca.truststore().to_bytes(PASSWORD),
    )
    assert profiles.reload() is False  # the twin: only the keystore changed
    assert profiles.last_error is not None
    CA(name="another server CA").write_truststore(trust, PASSWORD)  # the backend's CA withdrawn
    assert profiles.reload() is True
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(profiles.context_for("localhost", backend.port), backend.port)
    assert profiles.last_error is not None and not profiles.status().healthy
    files = profiles.status().profiles[0].files
    assert [f.role for f in files] == ["keystore", "truststore"]  # one row each
    ca.write_truststore(trust, PASSWORD)  # trusted again: the identity in service is sent
    assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "gen-1"


def test_broken_store_keeps_the_last_good_and_recovery_clears_the_error(setup, ca, backend, caplog):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    good = profiles.context_for("localhost", backend.port)
    for broken in (b"", b"garbage" * 50, keystore.read_bytes()[:300]):
        replace_atomically(keystore, broken)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            assert profiles.reload() is False
        assert isinstance(profiles.last_error, KeystoreError)
        assert str(keystore) in str(profiles.last_error)
        assert profiles.context_for("localhost", backend.port) is good
        assert cn_seen(profiles, backend.port) == "gen-1"
    status = profiles.status().to_dict()
    assert status["healthy"] is False and status["profiles"][0]["error"]
    assert PASSWORD not in caplog.text and PASSWORD not in str(status)
    # A check with nothing changed still retries (and still fails): no silent give-up.
    assert profiles.reload() is False and profiles.last_error is not None
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    assert profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-2"


def test_deleted_store_and_wrong_password_keep_the_last_good(setup, ca, backend):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    keystore.unlink()
    assert profiles.reload() is False
    assert "no such keystore" in str(profiles.last_error)
    replace_atomically(keystore, ca.issue_cert("x").keystore().to_bytes("another-password"))
    assert profiles.reload() is False
    assert "wrong store password" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-1"


@pytest.mark.parametrize("problem", ["expired", "not_yet_valid", "key_mismatch"])
def test_replacements_that_fail_validation_are_refused(setup, ca, backend, problem):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    now = dt.datetime.now(dt.UTC)
    if problem == "expired":
        data = jks(
            ca, "old", not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1)
        )
    elif problem == "not_yet_valid":
        data = jks(ca, "future", not_before=now + dt.timedelta(days=1))
    else:
        a, b = ca.issue_cert("a"), ca.issue_cert("b")
        data = mismatched(b.private_key, list(a.chain)).to_bytes(PASSWORD)
    replace_atomically(keystore, data)
    assert profiles.reload() is False
    assert profiles.last_error is not None
    assert cn_seen(profiles, backend.port) == "gen-1"


def test_a_store_caught_empty_mid_copy_is_read_again_not_refused(
    setup, backend, ca, caplog, monkeypatch
):
    """``cp`` over a store truncates it, then writes: a writer held up past the settle
    delay left it empty at two reads, and the check refused it ("the file is empty"), at
    WARNING, turning the profile unhealthy until the next check. Emptied just now, it
    is still being written: kept as it was, said at INFO, read again next check."""

    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    keystore.write_bytes(b"")  # in place: cp's truncate, its write still to come
    with caplog.at_level(logging.INFO, logger="mtls"):
        for _ in range(3):  # every check within the grace, not only the first
            assert profiles.reload() is False
            assert profiles.last_error is None and profiles.status().healthy
    assert "still being written" in caplog.text and "is empty" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert cn_seen(profiles, backend.port) == "gen-1"
    keystore.write_bytes(jks(ca, "gen-2"))  # the copy completes
    assert profiles.reload() is True and cn_seen(profiles, backend.port) == "gen-2"
    # The twin: empty for longer than the grace, it is refused as an empty file (the
    # last good identity kept).
    monkeypatch.setattr(_reading, "EMPTIED_GRACE", 0.05)
    keystore.write_bytes(b"")
    wait_for(lambda: profiles.reload() is False and profiles.last_error is not None)
    assert "the file is empty" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-2"


def test_a_store_truncated_before_its_times_move_is_still_being_written(
    setup, backend, ca, caplog, monkeypatch
):
    """On ext4, a write in place (keytool -importkeystore into the live file, cp,
    open('wb')) shows the truncate's size 0 about 1 ms before the file's times move: a
    check in that window saw an empty file last changed long ago, not one emptied just
    now, and refused it ("the file is empty ... a write that did not finish?") at
    WARNING, status() unhealthy, until the next check (h233). The window is made here
    by stat showing the times the file had with its bytes while its size is 0 (its
    times also shown an hour old, so that "emptied just now" cannot explain it)."""
    xml, keystore, _ = setup
    real_stat_keys = _reading.stat_keys
    hour = 3_600_000_000_000
    held: dict[str, tuple[int, int]] = {}

    def lagging(named):
        keys = real_stat_keys(named)
        out = []
        for (_, name), key in zip(named, keys, strict=True):
            if name == str(keystore) and len(key) == 5:
                if key[0]:
                    held[name] = (key[1] - hour, key[2] - hour)
                out.append((key[0], *held[name], *key[3:]))
            else:
                out.append(key)
        return out

    monkeypatch.setattr(_reading, "stat_keys", lagging)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    keystore.write_bytes(b"")  # in place; the times shown are those it had with bytes
    with caplog.at_level(logging.INFO, logger="mtls"):
        assert profiles.reload() is False
        assert profiles.last_error is None and profiles.status().healthy
    assert "still being written" in caplog.text and "is empty" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    keystore.write_bytes(jks(ca, "gen-2"))  # the write completes
    assert profiles.reload() is True and cn_seen(profiles, backend.port) == "gen-2"


def test_empty_truststore_replacement_is_refused(setup, backend):
    xml, _, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(trust, Keystore().to_bytes(PASSWORD))  # an emptied store
    assert profiles.reload() is False
    assert "no certificates" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-1"


def test_one_broken_profile_does_not_block_another(tmp_path, ca, backend):
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    a, b = tmp_path / "a.jks", tmp_path / "b.jks"
    a.write_bytes(jks(ca, "a-1"))
    b.write_bytes(jks(ca, "b-1"))
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", a, trust),
            profile(f"127.0.0.1:{backend.port}", b, trust),
        )
    )
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(a, b"broken")
    replace_atomically(b, jks(ca, "b-2"))
    assert profiles.reload() is True
    assert "a.jks" in str(profiles.last_error)
    assert (
        whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"] == "a-1"
    )
    ctx_b = profiles.context_for("127.0.0.1", backend.port)
    assert whoami(ctx_b, backend.port, host="127.0.0.1")["client_cn"] == "b-2"


def test_profile_added_to_the_xml_appears_and_removed_one_goes(setup, ca, backend):
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert profiles.context_for("127.0.0.1", backend.port) is None
    replace_atomically(
        xml, profile_xml(profile(f"127.0.0.1:{backend.port}", keystore, trust)).encode()
    )
    assert profiles.reload() is True
    assert profiles.context_for("127.0.0.1", backend.port) is not None
    assert profiles.context_for("localhost", backend.port) is None


@pytest.mark.parametrize(
    "bad",
    [
        b"<parameter><profile><servers>x:1</servers>",  # truncated
        b"<parameter><profile><servers>nopport</servers></profile></parameter>",
        b'<!DOCTYPE x [<!ENTITY a "b">]><parameter/>',
    ],
)
def test_broken_xml_keeps_the_whole_set(setup, backend, bad):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    ctx = profiles.context_for("localhost", backend.port)
    replace_atomically(xml, bad)
    assert profiles.reload() is False
    assert isinstance(profiles.last_error, ProfileConfigError)
    assert profiles.context_for("localhost", backend.port) is ctx
    assert profiles.status().to_dict()["config_error"]


def test_duplicate_added_by_an_edit_keeps_the_whole_set(setup, backend):
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    ctx = profiles.context_for("localhost", backend.port)
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile(f"LOCALHOST:{backend.port}", keystore, trust),
        ).encode(),
    )
    assert profiles.reload() is False
    assert "two profiles" in str(profiles.last_error)
    assert profiles.context_for("localhost", backend.port) is ctx


def test_kubernetes_data_symlink_swap_with_an_older_mtime(tmp_path, ca, backend):
    secret = tmp_path / "secret"
    trust_bytes = ca.truststore().to_bytes(PASSWORD)
    swap_symlinked_dir(secret, {"gw.jks": jks(ca, "k8s-1"), "trust.jks": trust_bytes})
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(profile(f"localhost:{backend.port}", secret / "gw.jks", secret / "trust.jks"))
    )
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "k8s-1"
    old = (secret / "gw.jks").stat().st_mtime
    swap_symlinked_dir(
        secret, {"gw.jks": jks(ca, "k8s-2"), "trust.jks": trust_bytes}, mtime=old - 3600
    )
    assert (secret / "gw.jks").stat().st_mtime < old
    assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "k8s-2"


def test_a_store_caught_mid_write_is_not_installed(setup, ca, backend):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0.01)

    def halfway() -> None:
        profiles.reload()  # sees half a keystore: an error, never installed
        assert profiles.last_error is not None
        assert cn_seen(profiles, backend.port) == "gen-1"

    write_in_two_halves(keystore, jks(ca, "gen-2"), pause=halfway)
    assert profiles.reload() is True
    assert profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-2"


class _FinishWriteDuringSettle(threading.Event):
    """Stands in for the settle delay: the writer finishes while the reloader waits."""

    def __init__(self, finish) -> None:
        super().__init__()
        self.finish = finish

    def wait(self, timeout=None) -> bool:
        if self.finish is not None:
            self.finish()
            self.finish = None
        return False


def _bundle_trusted(tmp_path, ca, backend) -> tuple[Path, CA, SSLProfileSet]:
    """A profile whose PEM truststore bundle holds another CA, then the backend's: the
    bundle's path, the other CA, and the set (whose every read is then of a fresh file).
    """
    other = CA(name="second anchor")
    trust = tmp_path / "trust.pem"
    trust.write_bytes(other.cert_pem + ca.cert_pem)
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    # A settle delay longer than the test: the half-written file is always "fresh"
    # (its change time is within the delay), so it is read twice; the wait itself is
    # the stand-in the tests set and returns at once. (Set after the first load, which
    # would wait it out for the files just written.)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    profiles._engine._delay = 30
    return trust, other, profiles


def test_a_pem_bundle_that_parses_half_written_is_not_installed(tmp_path, ca, backend, monkeypatch):
    """A PEM truststore cut at a certificate boundary parses (to fewer anchors): the
    second read after the settle delay must catch that the file was still changing."""
    trust, other, profiles = _bundle_trusted(tmp_path, ca, backend)
    before = profiles.context_for("localhost", backend.port)
    third = CA(name="third anchor")
    full = other.cert_pem + ca.cert_pem + third.cert_pem
    half = other.cert_pem  # a complete certificate: this alone would parse
    replace_atomically(trust, half)
    hook = _FinishWriteDuringSettle(lambda: replace_atomically(trust, full))
    monkeypatch.setattr(_reading, "_pause", lambda stop, delay: hook.wait(delay))
    assert profiles.reload() is False  # first read != second read: not installed
    assert profiles.context_for("localhost", backend.port) is before
    assert profiles.last_error is None  # still being written is not an error
    assert profiles.reload() is True  # stable now: installed
    assert len(profiles.context_for("localhost", backend.port).get_ca_certs()) == 3
    assert cn_seen(profiles, backend.port) == "gen-1"


def test_a_bundle_caught_at_the_same_point_of_two_writes_is_not_installed(
    tmp_path, ca, backend, monkeypatch
):
    """Two writes of a truststore bundle, a settle delay apart, each caught after its
    first certificate: the two reads gave the same bytes and the cut-down bundle went
    into service, withdrawing a CA still in use (h242: 16 of 20 trials). The file
    changed between the reads: it is still being written."""
    trust, other, profiles = _bundle_trusted(tmp_path, ca, backend)
    before = profiles.context_for("localhost", backend.port)
    half = other.cert_pem
    replace_atomically(trust, half)
    hook = _FinishWriteDuringSettle(lambda: replace_atomically(trust, half))
    monkeypatch.setattr(_reading, "_pause", lambda stop, delay: hook.wait(delay))
    assert profiles.reload() is False  # the same bytes, but written again between
    assert profiles.context_for("localhost", backend.port) is before
    assert cn_seen(profiles, backend.port) == "gen-1"  # ca, the backend's, still trusted
    replace_atomically(trust, other.cert_pem + ca.cert_pem + CA(name="third").cert_pem)
    assert profiles.reload() is True
    assert len(profiles.context_for("localhost", backend.port).get_ca_certs()) == 3


def test_a_chmod_between_the_two_reads_does_not_hold_a_file_back(
    tmp_path, ca, backend, monkeypatch
):
    """A deploy script's chmod lands between the settle's two reads: the bytes are the
    same and only the change time moved; the file is settled (h243: held back as still
    being written, and after 60 s reported so)."""
    trust, other, profiles = _bundle_trusted(tmp_path, ca, backend)
    full = other.cert_pem + ca.cert_pem + CA(name="third").cert_pem
    replace_atomically(trust, full)
    hook = _FinishWriteDuringSettle(lambda: os.chmod(trust, 0o600))
    monkeypatch.setattr(_reading, "_pause", lambda stop, delay: hook.wait(delay))
    assert profiles.reload() is True
    assert len(profiles.context_for("localhost", backend.port).get_ca_certs()) == 3


def test_threads_handshaking_through_rotations_see_only_old_or_new(setup, ca, backend):
    xml, keystore, _ = setup
    names = [f"gen-{i}" for i in range(1, 5)]
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()
    with SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0.01) as profiles:

        def worker() -> None:
            while not stop.is_set():
                try:
                    seen.add(cn_seen(profiles, backend.port))
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for generation, name in enumerate(names[1:], 1):
                replace_atomically(keystore, jks(ca, name))
                wait_for(lambda g=generation: profiles.generation >= g)
                wait_for(lambda n=name: n in seen)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    assert not errors, errors[:3]
    assert seen <= set(names)
    assert names[-1] in seen


def test_a_blocking_subscriber_holds_back_no_check(setup, ca, backend, caplog, monkeypatch):
    """A subscriber that blocked (a webhook without a timeout) ran on the reload
    thread and stopped every later check: no rotation went in, a broken store went
    unnoticed, and status() said healthy with no sign. Changes the reload thread
    applies are delivered on a notification thread: checks go on, last_check moves,
    the blocked callback is named in a warning, and once it returns it gets every
    change in order."""
    import mtls._engine as engine_module

    monkeypatch.setattr(engine_module, "STUCK_AFTER", 0.0)  # warn at the next hand-over
    xml, keystore, _ = setup
    release = threading.Event()
    told: list[tuple[int, int]] = []

    def webhook(old: int, new: int) -> None:
        told.append((old, new))
        release.wait(30)

    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0.01) as profiles,
    ):
        profiles.subscribe(webhook)
        try:
            replace_atomically(keystore, jks(ca, "gen-2"))
            wait_for(lambda: told == [(0, 1)])  # called, and now blocked in it
            checked = profiles.status().last_check
            replace_atomically(keystore, jks(ca, "gen-3"))
            wait_for(lambda: profiles.generation == 2)  # the check went on
            assert cn_seen(profiles, backend.port) == "gen-3"
            wait_for(lambda: profiles.status().last_check > checked)
            replace_atomically(keystore, b"garbage")
            wait_for(lambda: profiles.last_error is not None)  # and saw the broken file
            assert told == [(0, 1)]  # (1, 2) waits for the webhook to return
            # Said by the reload thread's log relay, not by the blocked notification thread.
            wait_for(lambda: any("webhook" in r.getMessage() and "running for" in r.getMessage()
                                 for r in caplog.records))  # fmt: skip
        finally:
            release.set()
        wait_for(lambda: told == [(0, 1), (1, 2)])


def test_a_client_certificate_no_server_takes_is_not_installed(setup, ca, backend, caplog):
    """A replacement whose extended key usage lacks clientAuth (a certificate issued
    from a server template) is refused by every server ("unsuitable certificate
    purpose"), yet it replaced the working identity and status() said healthy. It is
    refused as an expired one is: the last good stays, and the error says why. At a
    first load (nothing else to serve) it is served with a warning. The twin: a
    clientAuth certificate from the same CA goes in."""
    xml, keystore, _ = setup
    bad = jks(ca, "server-template", client_auth=False)
    said = "its extended key usage lacks clientAuth (it allows serverAuth)"
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, bad)
    assert profiles.reload() is False
    error = str(profiles.last_error)
    assert (
        said in error
        and "servers refuse it (OpenSSL-, Java- and Go-based ones check it; GnuTLS does not): not installed"
        in error
    ), error
    assert not profiles.status().healthy
    assert cn_seen(profiles, backend.port) == "gen-1"  # the last good, meanwhile
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True and profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-2"
    # A first load: served, with a warning; and the backend does refuse it.
    replace_atomically(keystore, bad)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        fresh = SSLProfileSet.from_xml(xml, settle_delay=0)
    warned = [r.getMessage() for r in caplog.records if said in r.getMessage()]
    assert len(warned) == 1 and "servers refuse it (OpenSSL-, Java- and Go-based" in warned[0], (
        warned
    )
    with pytest.raises((ssl.SSLError, OSError)):
        cn_seen(fresh, backend.port)


def test_a_client_certificate_whose_key_usage_forbids_signing_goes_in_with_a_warning(
    setup, ca, backend, caplog
):
    """A key usage without digitalSignature is enforced by OpenSSL and Java servers,
    not by Go's or rustls's: such a replacement is installed (refusing it would keep
    an expiring identity from backends that take it), with a warning saying who
    refuses it, once. OpenSSL's (the test backend) does."""
    from tests._pki import encipher_only

    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, encipher_only(ca, "encipher-only").to_bytes(PASSWORD))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert profiles.reload() is True
        assert profiles.reload() is False  # nothing new: not said again
    warned = [r.getMessage() for r in caplog.records if "key usage" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "its key usage has no digitalSignature or keyAgreement" in warned[0]
    assert "OpenSSL, Java and GnuTLS servers refuse it" in warned[0]
    assert profiles.last_error is None
    with pytest.raises((ssl.SSLError, OSError)):
        cn_seen(profiles, backend.port)
    # The twin: a certificate whose key usage allows signing draws no such warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True
    assert not [r for r in caplog.records if "key usage" in r.getMessage()]
    assert cn_seen(profiles, backend.port) == "gen-2"


def test_a_certificate_whose_extensions_cryptography_cannot_read_loads(setup, ca, backend):
    """A certificate with an extension twice (OpenSSL takes it; cryptography raises
    DuplicateExtension, not a ValueError, on reading its extensions) crashed the first
    load and every replacement with cryptography's exception. Its usages are left to
    OpenSSL: it loads, rotates in, and the backend takes it."""
    from tests._pki import duplicate_extension

    xml, keystore, _ = setup
    replace_atomically(keystore, duplicate_extension(ca, "gateway").to_bytes(PASSWORD))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "duplicated"
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    replace_atomically(keystore, duplicate_extension(ca, "gateway").to_bytes(PASSWORD))
    assert profiles.reload() is True and profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "duplicated"


class _StuckHandler(logging.Handler):
    """A WARNING handler that blocks (a log shipper that is down) until ``release``,
    on every thread or only on the engine's log relay; it keeps what it handled."""

    def __init__(self, relay_only: bool) -> None:
        super().__init__(logging.WARNING)
        self.relay_only = relay_only
        self.release, self.entered = threading.Event(), threading.Event()
        self.handled: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not self.relay_only or threading.current_thread().name.endswith("-log"):
            self.entered.set()
            self.release.wait(30)
        self.handled.append(record.getMessage())


@contextlib.contextmanager
def _stuck_handler(*, relay_only: bool = False) -> Iterator[_StuckHandler]:
    """A :class:`_StuckHandler` on the ``mtls`` logger for the block, released and
    removed after it."""
    stuck = _StuckHandler(relay_only)
    logger = logging.getLogger("mtls")
    logger.addHandler(stuck)
    try:
        yield stuck
    finally:
        stuck.release.set()
        logger.removeHandler(stuck)


def test_a_blocking_log_handler_holds_back_no_check(setup, ca, backend):
    """A handler that blocks (a log shipper that is down: a SysLogHandler over TCP, an
    HTTPHandler without a timeout, a full bounded queue) blocked the reload thread in
    the middle of a check, under the engine's lock: no rotation went in again, every
    reload() caller waited for good, and status() still said healthy. The reload
    thread hands its records to a thread of their own; once the handler returns,
    every record arrives, in order."""
    xml, keystore, _ = setup
    with (
        _stuck_handler() as stuck,
        SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0.01) as profiles,
    ):
        replace_atomically(keystore, b"garbage")  # the reload thread warns of it
        assert stuck.entered.wait(30), "the warning never reached the handler"
        wait_for(lambda: profiles.last_error is not None)
        replace_atomically(keystore, jks(ca, "gen-2"))
        wait_for(lambda: profiles.generation == 1)  # the check went on
        assert profiles.last_error is None
        assert cn_seen(profiles, backend.port) == "gen-2"
        checked = profiles.status().last_check
        wait_for(lambda: profiles.status().last_check > checked)
        caller = threading.Thread(target=profiles.reload, daemon=True)
        caller.start()
        caller.join(30)
        assert not caller.is_alive(), "reload() waited for the blocked handler"
        assert stuck.handled == []  # the first record is still in the handler
        stuck.release.set()
        wait_for(lambda: any("resolved" in line for line in stuck.handled))
    assert "gw.jks" in stuck.handled[0] and "resolved" not in stuck.handled[0]


def test_log_records_keep_the_checks_order_across_threads(setup, ca, backend):
    """The reload thread's records wait on the relay behind a slow handler; a
    reload() caller's were handled at once on its own thread, overtaking them: a
    problem's "resolved" line reached the log before the problem's own line, and
    log-based alerting ended on "broken". They now go through the relay too."""
    xml, keystore, _ = setup
    with (
        _stuck_handler(relay_only=True) as slow,
        SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0.01) as profiles,
    ):
        replace_atomically(keystore, b"garbage")  # the reload thread warns of it
        assert slow.entered.wait(30), "the warning never reached the handler"
        timer = profiles._engine._timer
        timer.retired = True  # no more background checks: the fix is the caller's
        timer._thread.join(30)
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True  # its "resolved" line queues on the relay
        assert slow.handled == []
        slow.release.set()
        wait_for(lambda: len(slow.handled) >= 2)
    handled = slow.handled
    assert "gw.jks" in handled[0] and "resolved" not in handled[0], handled
    assert "resolved" in handled[1], handled


def test_checks_with_nothing_to_log_do_not_push_records_out(setup, ca, monkeypatch):
    """Behind a blocked handler, every check of a persisting error queued a batch on
    the relay even with no record in it (only to settle its errors afterwards): they
    filled the relay's bound, and the oldest real records ("resolved" lines) were
    dropped. Checks with nothing to log queue nothing; every record arrives."""
    import mtls._engine as engine_module

    monkeypatch.setattr(engine_module, "_RELAY_KEPT", 5)
    xml, keystore, _ = setup

    def checks_pass(profiles: SSLProfileSet, count: int = 12) -> None:
        seen = {profiles.status().last_check}
        wait_for(lambda: seen.add(profiles.status().last_check) or len(seen) > count)

    with (
        _stuck_handler(relay_only=True) as stuck,
        SSLProfileSet.from_xml(xml, reload_interval=0.02, settle_delay=0) as profiles,
    ):
        replace_atomically(keystore, b"garbage")
        assert stuck.entered.wait(30)
        checks_pass(profiles)  # the error persists: nothing new to log
        replace_atomically(keystore, jks(ca, "gen-2"))
        wait_for(lambda: profiles.generation == 1)
        checks_pass(profiles)
        replace_atomically(keystore, b"garbage again")
        wait_for(lambda: profiles.last_error is not None)
        checks_pass(profiles)
        assert len(profiles._engine._relay._work) <= 2  # the two real batches
        stuck.release.set()
        wait_for(lambda: len(stuck.handled) >= 3)
    handled = stuck.handled
    assert "gw.jks" in handled[0] and "resolved" in handled[1] and "gw.jks" in handled[2]


def test_close_waits_for_a_running_callback_and_drops_the_queue(setup, ca, monkeypatch):
    """A callback on the notification thread ran on after close() returned (and what
    was queued behind it was delivered later): code that tears down what its callback
    uses after ``with SSLProfileSet(...)`` raced it. close() waits for the running one
    (up to CLOSE_TIMEOUT) and nothing queued starts after it."""
    import mtls._engine as engine_module

    monkeypatch.setattr(engine_module, "CLOSE_TIMEOUT", 30.0)
    xml, keystore, _ = setup
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(old: int, new: int) -> None:
        order.append(f"start {old}->{new}")
        inside.set()
        release.wait(30)
        order.append(f"end {old}->{new}")

    profiles = SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0.01)
    profiles.subscribe(slow)
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert inside.wait(10)
    replace_atomically(keystore, jks(ca, "gen-3"))
    wait_for(lambda: profiles.generation == 2)  # (1, 2) is queued behind the slow one
    closer = threading.Thread(target=lambda: (profiles.close(), order.append("closed")))
    closer.start()
    wait_for(lambda: profiles._engine._notifier._closed)  # close() waits on the callback
    release.set()
    closer.join(30)
    assert order == ["start 0->1", "end 0->1", "closed"]  # and (1, 2) never started


def test_subscribers_run_isolated_and_can_unsubscribe(setup, ca, caplog):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    calls: list[tuple[int, int]] = []

    def boom(old: int, new: int) -> None:
        raise RuntimeError("subscriber bug")

    profiles.subscribe(boom)
    unsubscribe = profiles.subscribe(lambda old, new: calls.append((old, new)))
    replace_atomically(keystore, jks(ca, "gen-2"))
    with caplog.at_level(logging.ERROR, logger="mtls"):
        assert profiles.reload() is True
    assert calls == [(0, 1)]
    assert "subscriber raised" in caplog.text
    # Reported where health is read, as docs/reloading.md says (it was only logged,
    # h139): what the subscriber was to do after the change did not happen.
    status = profiles.status()
    assert not status.healthy
    (error,) = status.errors
    assert "boom raised on the change to generation 1 (RuntimeError: subscriber bug)" in str(error)
    assert profiles.last_error is error
    unsubscribe()
    profiles.unsubscribe(boom)
    profiles.unsubscribe(boom)  # idempotent
    replace_atomically(keystore, jks(ca, "gen-3"))
    assert profiles.reload() is True
    assert calls == [(0, 1)]
    # The twin: the next change, delivered with no subscriber raising, clears it.
    assert profiles.status().healthy and profiles.last_error is None


def test_a_set_dropped_without_close_is_freed_and_its_thread_stops(setup, backend):
    """The engine holds no reference back to the set: no cycle keeps a dropped set (and
    its contexts) alive until the garbage collector runs, and its reload thread ends."""
    import gc
    import weakref

    xml, _, _ = setup
    enabled = gc.isenabled()
    gc.disable()  # freed by reference counting alone
    try:
        before = set(threading.enumerate())
        profiles = SSLProfileSet.from_xml(xml, reload_interval=3600)
        ctx = profiles.context_for("localhost", backend.port)
        (thread,) = [
            t
            for t in threading.enumerate()
            if t not in before and t.name.startswith("mtls-reloader-")
        ]
        assert thread.is_alive()
        dropped = weakref.ref(profiles)
        del profiles
        assert dropped() is None
    finally:
        if enabled:
            gc.enable()
    thread.join(10)
    assert not thread.is_alive()
    # A context handed out outlives its set (nothing in it refers to the set).
    assert whoami(ctx, backend.port)["client_cn"] == "gen-1"
    # Negative twin: a set still referenced keeps its thread.
    kept = SSLProfileSet.from_xml(xml, reload_interval=3600)
    try:
        assert kept.reloading
    finally:
        kept.close()


def test_close_ends_the_thread_at_once_and_is_idempotent(setup):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, reload_interval=3600)
    threads = [t for t in threading.enumerate() if t.name.startswith("mtls-reloader-")]
    assert any(t.daemon for t in threads)
    assert profiles.reloading
    profiles.close()  # must not wait an hour
    assert not profiles.reloading
    profiles.close()
    assert profiles.context_for("localhost", 1) is None or True  # lookups still work after close
    with SSLProfileSet.from_xml(xml, reload_interval=3600) as other:
        assert other.reloading
    assert not other.reloading


def test_reload_from_many_threads_at_once_is_serialised(setup, ca):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, jks(ca, "gen-2"))
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def go() -> None:
        barrier.wait()
        results.append(profiles.reload())

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(True) == 1
    assert profiles.generation == 1


def test_info_log_names_old_and_new_subjects(setup, ca, caplog):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, jks(ca, "gen-2"))
    with caplog.at_level(logging.INFO, logger="mtls"):
        assert profiles.reload()
    line = next(r.getMessage() for r in caplog.records if "reloaded" in r.getMessage())
    assert "gen-1" in line and "gen-2" in line and "until" in line and "serial" in line


def test_info_log_of_a_truststore_change_says_the_truststore_changed(setup, ca, caplog):
    """A truststore-only change was logged as "CN=x (until d) -> CN=x (until d)": an
    identity change that was none, the truststore unnamed (a sweep dropped an anchor
    that way, and the log said nothing of trust)."""
    xml, _, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    both = ca.truststore()
    both.add("other", CA(name="other CA").certificate)
    replace_atomically(trust, both.to_bytes(PASSWORD))
    with caplog.at_level(logging.INFO, logger="mtls"):
        assert profiles.reload()
    line = next(r.getMessage() for r in caplog.records if "reloaded" in r.getMessage())
    assert "new truststore, same client certificate CN=gen-1" in line
    assert "->" not in line


def test_status_reports_files_fingerprints_and_expiry(setup):
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml)
    status = profiles.status().to_dict()
    assert status["healthy"] is True and status["generation"] == 0
    (entry,) = status["profiles"]
    roles = {f["role"]: f for f in entry["files"]}
    assert roles["keystore"]["path"] == str(keystore) and len(roles["keystore"]["sha256"]) == 64
    assert roles["truststore"]["path"] == str(trust)
    assert entry["subject"].endswith("CN=gen-1") or "CN=gen-1" in entry["subject"]
    assert dt.datetime.fromisoformat(entry["not_after"]) > dt.datetime.now(dt.UTC)
    assert entry["last_good_load"]


def test_new_profile_that_fails_during_reload_is_reported_not_installed(setup, tmp_path, backend):
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile("new.test:443", tmp_path / "missing.jks", trust),
        ).encode(),
    )
    # Nothing was installed, but lookups for new.test now refuse: that is a change
    # (subscribers and per-generation caches must look again).
    assert profiles.reload() is True
    with pytest.raises(ProfileUnavailableError, match=r"missing\.jks") as info:
        profiles.context_for("new.test", 443)  # fails closed: never another context
    assert info.value.servers == ("new.test:443",)
    assert "missing.jks" in str(profiles.last_error)
    assert [p["loaded"] for p in profiles.status().to_dict()["profiles"]] == [True, False]


def test_default_context_is_returned_when_nothing_matches(setup):
    xml, _, _ = setup
    default = ssl.create_default_context()
    profiles = SSLProfileSet.from_xml(xml, default=default)
    assert profiles.context_for("unlisted.test", 443) is default


def test_default_profile_rotates_like_the_others(tmp_path, ca, backend, caplog):
    keystore = tmp_path / "default.jks"
    keystore.write_bytes(jks(ca, "default-1"))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile("elsewhere.test:443", keystore, trust)))
    from mtls import SSLProfile, StoreConfig

    default = SSLProfile(
        servers=("*",),
        keystore=StoreConfig(location=keystore, password=PASSWORD),
        truststore=StoreConfig(location=trust, password=PASSWORD),
    )
    profiles = SSLProfileSet.from_xml(xml, default=default, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "default-1"  # localhost: no profile, the default
    replace_atomically(keystore, jks(ca, "default-2"))
    with caplog.at_level(logging.INFO, logger="mtls"):
        assert profiles.reload() is True
    assert cn_seen(profiles, backend.port) == "default-2"
    # Said at INFO as a profile's rotation is (h246: the default's said nothing).
    [said] = [r.getMessage() for r in caplog.records if "reloaded the default" in r.getMessage()]
    assert "CN=default-1" in said and "-> CN=default-2" in said, said
    assert (
        profiles.status().to_dict()["default"]["subject"].endswith("CN=default-2")
        or "default-2" in profiles.status().to_dict()["default"]["subject"]
    )


def test_a_profile_the_file_adds_is_said_to_be_new_not_to_replace_nothing(tmp_path, ca, caplog):
    """h246: a profile added (or restored) was logged "no client certificate -> CN=...",
    as if a profile had been in service without one. Twin: a rotation keeps "a -> b"."""
    keystore, trust = tmp_path / "a.jks", tmp_path / "trust.jks"
    keystore.write_bytes(jks(ca, "gw-1"))
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile("one.test:443", keystore, trust)))
    with SSLProfileSet.from_xml(xml, settle_delay=0, reload_interval=None) as profiles:
        xml.write_text(
            profile_xml(
                profile("one.test:443", keystore, trust), profile("two.test:443", keystore, trust)
            )
        )
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert profiles.reload() is True
        said = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
        assert any("profile two.test:443: now CN=gw-1" in line for line in said), said
        assert not any("no client certificate ->" in line for line in said), said
        caplog.clear()
        replace_atomically(keystore, jks(ca, "gw-2"))
        with caplog.at_level(logging.INFO, logger="mtls"):
            assert profiles.reload() is True
        said = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
        assert any("CN=gw-1" in line and "-> CN=gw-2" in line for line in said), said


def test_bad_arguments_and_missing_profile_file(tmp_path, setup):
    xml, _, _ = setup
    with pytest.raises(ValueError, match="positive"):
        SSLProfileSet.from_xml(xml, reload_interval=0)
    with pytest.raises(ProfileConfigError, match="no such profile file"):
        SSLProfileSet.from_xml(tmp_path / "missing.xml")
    with pytest.raises(TypeError, match="SSLProfile"):
        SSLProfileSet(["localhost:443"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="default"):
        SSLProfileSet.from_xml(xml, default="a context")  # type: ignore[arg-type]


def test_repr_says_what_and_never_a_secret(setup):
    xml, _, _ = setup
    with SSLProfileSet.from_xml(xml, reload_interval=3600) as profiles:
        text = repr(profiles)
        assert "1 profile" in text and "generation 0" in text and "reloading every 3600s" in text
        assert PASSWORD not in text and PASSWORD not in repr(profiles.profiles)


def test_pickling_is_refused_with_what_to_do(setup, backend):
    """multiprocessing's spawn pickles its arguments: pickle's own refusal named a
    lambda of the health machinery; the refusal says what to do instead."""
    import copy
    import pickle

    xml, _, _ = setup
    with SSLProfileSet.from_xml(xml, reload_interval=None) as profiles:
        for attempt in (lambda: pickle.dumps(profiles), lambda: copy.copy(profiles)):
            with pytest.raises(TypeError, match=r"cannot be pickled or copied .* in each process"):
                attempt()
        assert cn_seen(profiles, backend.port) == "gen-1"  # the twin: still serving


def test_profile_file_deleted_then_restored(setup, backend):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    ctx = profiles.context_for("localhost", backend.port)
    content = xml.read_bytes()
    xml.unlink()
    assert profiles.reload() is False
    assert "no such profile file" in str(profiles.last_error)
    assert profiles.context_for("localhost", backend.port) is ctx
    replace_atomically(xml, content)
    profiles.reload()
    assert profiles.last_error is None
    assert profiles.context_for("localhost", backend.port) is ctx


def test_a_resolver_that_fails_during_a_reload_keeps_the_set_and_is_retried(tmp_path, ca, backend):
    """A vault outage while the file changes must not lose the change: the next check
    after the vault recovers applies it."""
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)

    def vaulted(servers: str) -> str:
        return profile(servers, keystore, trust).replace(
            f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>",
            '<Password svns:secretAlias="gw">x</Password>',
        )

    def document(*profiles_: str) -> bytes:
        ns = 'xmlns:svns="http://org.wso2.securevault/configuration"'
        return profile_xml(*profiles_).replace("<parameter ", f"<parameter {ns} ", 1).encode()

    xml = tmp_path / "p.xml"
    xml.write_bytes(document(vaulted(f"localhost:{backend.port}")))
    vault_up = True

    def resolver(alias: str) -> str:
        if not vault_up:
            raise ConnectionError("vault unreachable")
        return PASSWORD

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=resolver, settle_delay=0)
    vault_up = False
    replace_atomically(xml, document(vaulted(f"localhost:{backend.port}"), vaulted("127.0.0.1:9")))
    assert profiles.reload() is False  # never raises for a failing vault
    assert "vault" in str(profiles.last_error) or "resolver failed" in str(profiles.last_error)
    assert profiles.context_for("127.0.0.1", 9) is None
    assert cn_seen(profiles, backend.port) == "gen-1"
    vault_up = True
    assert profiles.reload() is True
    assert profiles.context_for("127.0.0.1", 9) is not None
    assert profiles.last_error is None


def test_a_store_that_failed_is_not_parsed_again_until_it_changes(setup, ca, monkeypatch):
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    from mtls import Keystore

    calls: list[int] = []
    original = Keystore._read.__func__  # type: ignore[attr-defined]

    def counting(cls, data, *args, **kwargs):
        calls.append(len(data))
        return original(cls, data, *args, **kwargs)

    monkeypatch.setattr(Keystore, "_read", classmethod(counting))
    replace_atomically(keystore, b"\xfe\xed\xfe\xed" + b"garbage" * 100)
    for _ in range(3):
        assert profiles.reload() is False
        assert profiles.last_error is not None  # still reported on every check
    assert len(calls) == 1
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    assert len(calls) == 2


def test_validity_is_checked_on_every_replacement_even_when_another_profile_shares_the_store(
    setup, ca, backend
):
    """A profile added in the same edit must not let a not-yet-valid certificate in
    through a cache: every replacement is validated."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    now = dt.datetime.now(dt.UTC)
    replace_atomically(keystore, jks(ca, "future", not_before=now + dt.timedelta(days=2)))
    replace_atomically(
        xml,
        profile_xml(
            profile("new.test:443", keystore, trust),  # new: loads the store first
            profile(f"localhost:{backend.port}", keystore, trust),
        ).encode(),
    )
    for _ in range(2):
        profiles.reload()
        assert cn_seen(profiles, backend.port) == "gen-1"
        assert "not valid before" in str(profiles.last_error)


def test_a_cached_failure_names_the_file_it_is_about(tmp_path, ca):
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    a, b = tmp_path / "a.jks", tmp_path / "b.jks"
    a.write_bytes(jks(ca, "a"))
    b.write_bytes(jks(ca, "b"))
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile("a.test:443", a, trust), profile("b.test:443", b, trust)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    broken = b"\xfe\xed\xfe\xed" + b"garbage" * 50
    replace_atomically(a, broken)
    replace_atomically(b, broken)
    profiles.reload()
    replace_atomically(a, jks(ca, "a-2"))
    profiles.reload()
    (error,) = profiles.errors
    assert "b.jks" in str(error) and "a.jks" not in str(error)


def test_rotation_still_applies_while_the_file_has_a_duplicate(setup, ca, backend):
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile(f"LOCALHOST:{backend.port}", keystore, trust),
        ).encode(),
    )
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True  # the old profiles stay, and their store rotates
    assert "two profiles" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-2"
    assert profiles.reload() is False  # nothing else changed; the error stays
    assert "two profiles" in str(profiles.last_error)


def test_a_certificate_not_valid_yet_is_installed_once_it_is(setup, ca, backend):
    """Refused while its not_before is in the future (the last good stays), and
    installed by the first reload after that: the refusal is not cached with the bytes."""
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    replace_atomically(keystore, jks(ca, "gen-2", not_before=start))
    assert profiles.reload() is False
    assert "not valid before" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-1"
    wait_for(profiles.reload, timeout=30, interval=0.2)  # True once not_before has passed
    assert dt.datetime.now(dt.UTC) >= start.replace(microsecond=0)
    assert profiles.last_error is None and profiles.generation == 1
    assert cn_seen(profiles, backend.port) == "gen-2"


def test_a_self_signed_replacement_of_a_ca_issued_identity_is_held_back(setup, ca, backend):
    """A keystore renewed in place in steps (keytool -genkeypair: a self-signed entry
    until -importcert of the CA's reply) was installed, and every backend trusting the
    CA refused the gateway (h166, on the server side). Held back, said; the CA's reply
    goes in. The twin for what is not held back is the first load: a self-signed
    identity loads (and a self-signed one after it goes in)."""
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    self_signed = Keystore.generate("gw", "CN=gen-2", key_type="EC")
    replace_atomically(keystore, self_signed.to_bytes(PASSWORD))
    assert profiles.reload() is False
    said = str(profiles.last_error)
    assert "the new certificate CN=gen-2 is self-signed" in said, said
    assert "issued by CN=reload CA" in said
    assert cn_seen(profiles, backend.port) == "gen-1"  # the CA-issued one serves on
    replace_atomically(keystore, jks(ca, "gen-3"))
    assert profiles.reload() is True and profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-3"
    replace_atomically(keystore, self_signed.to_bytes(PASSWORD))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as fresh:
        assert fresh.last_error is None  # a first load: nothing in service to lose
        other = Keystore.generate("gw", "CN=gen-4", key_type="EC")
        replace_atomically(keystore, other.to_bytes(PASSWORD))
        assert fresh.reload() is True and fresh.last_error is None


def test_a_pre_staged_certificate_does_not_hold_back_a_trust_change(tmp_path, ca, backend):
    """A keystore dropped in before its start date is refused until then; a truststore
    change made meanwhile (the old backend's CA withdrawn, a moved backend's trusted)
    is applied at once, with the identity in service, and the refusal stays reported.
    Its twin: before the trust change, the refused keystore changes nothing."""
    other = CA(name="moved backend CA")
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(trust, PASSWORD)
    with MTLSServer(other.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as moved:
        xml = tmp_path / "sslprofiles.xml"
        xml.write_text(
            profile_xml(
                profile(f"localhost:{backend.port}", keystore, trust),
                profile(f"localhost:{moved.port}", keystore, trust),
            )
        )
        profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
        assert cn_seen(profiles, backend.port) == "gen-1"
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            cn_seen(profiles, moved.port)  # not trusted yet
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        replace_atomically(keystore, jks(ca, "gen-2", not_before=start))
        assert profiles.reload() is False  # the twin: only the keystore changed
        assert "not valid before" in str(profiles.last_error)

        other.write_truststore(trust, PASSWORD)  # the old backend CA withdrawn
        assert profiles.reload() is True
        assert "not valid before" in str(profiles.last_error)  # still pending, still said
        assert cn_seen(profiles, moved.port) == "gen-1"  # new trust, identity in service
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            cn_seen(profiles, backend.port)
        error = str(profiles.last_error)
        assert profiles.reload() is False and str(profiles.last_error) == error

        replace_atomically(keystore, jks(ca, "gen-3"))  # valid now: installed
        assert profiles.reload() is True and profiles.last_error is None
        assert cn_seen(profiles, moved.port) == "gen-3"


def test_a_trust_change_is_applied_while_the_certificate_in_service_has_expired(
    tmp_path, ca, backend
):
    """The certificate in service is never judged again: one that has expired must not
    hold back a truststore change. The twin: the old trust reached the backend."""
    now = dt.datetime.now(dt.UTC)
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(
        jks(ca, "old", not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    )
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    ctx = profiles.context_for("localhost", backend.port)
    with pytest.raises(ssl.SSLError):  # the backend refuses an expired client certificate
        whoami(ctx, backend.port)
    CA(name="unrelated CA").write_truststore(trust, PASSWORD)  # the backend CA withdrawn
    assert profiles.reload() is True and profiles.last_error is None
    assert profiles.context_for("localhost", backend.port) is not ctx


def test_a_profile_edited_with_its_keystore_staged_keeps_the_identity_in_service(
    setup, ca, backend
):
    """An edit that changes a profile's servers makes it a new entry; if its keystore
    is staged before its start date in the same edit, the new entry must not install
    it (the backend would refuse it): it keeps the identity another entry serves from
    the same keystore. The twin: the profile as it was, before the edit."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert cn_seen(profiles, backend.port) == "gen-1"
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    replace_atomically(keystore, jks(ca, "gen-2", not_before=start))
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port},also.example:{backend.port}", keystore, trust)
        ).encode(),
    )
    profiles.reload()
    assert cn_seen(profiles, backend.port) == "gen-1"
    assert "not valid before" in str(profiles.last_error)


@pytest.mark.parametrize(
    "servers",
    ["127.0.0.1:{port},localhost:{port}", "localhost:{port},127.0.0.1:{port},also.example:1"],
    ids=["reordered", "one added"],
)
def test_a_servers_edit_while_the_keystore_is_broken_keeps_the_last_good(setup, backend, servers):
    """The keystore is damaged (last good kept), then the profile's <servers> are
    edited: the edited profile is the same profile, and keeps serving its hosts with
    the last good identity (it was refused for want of a previous entry)."""
    xml, keystore, trust = setup
    port = backend.port
    replace_atomically(
        xml, profile_xml(profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust)).encode()
    )
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    good = profiles.context_for("localhost", port)
    replace_atomically(keystore, b"\0" * 64)  # a half-copied file
    assert profiles.reload() is False
    replace_atomically(
        xml, profile_xml(profile(servers.format(port=port), keystore, trust)).encode()
    )
    assert profiles.reload() is True  # the index changed
    assert profiles.context_for("localhost", port) is good
    assert profiles.context_for("127.0.0.1", port) is good
    assert cn_seen(profiles, port) == "gen-1"
    (record,) = profiles.status().profiles
    assert record.loaded and "not a keystore" in str(record.error)


def test_a_new_profile_on_a_broken_keystore_with_no_last_good_is_refused(setup, backend, tmp_path):
    """The twin: a definition nobody served before has no last good to keep."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    other = tmp_path / "other.jks"
    other.write_bytes(b"\0" * 64)
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile("other.example:443", other, trust),
        ).encode(),
    )
    assert profiles.reload() is True
    with pytest.raises(ProfileUnavailableError):
        profiles.context_for("other.example", 443)
    assert cn_seen(profiles, backend.port) == "gen-1"


def _refused_beside_its_twin(
    profiles: SSLProfileSet, xml: Path, port: int, store: Path, trust: Path
) -> None:
    """Add c.example:443 on ``store`` beside the localhost profile: a new profile,
    whose hosts must be refused while ``store`` does not load."""
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{port}", store, trust), profile("c.example:443", store, trust)
        ).encode(),
    )
    profiles.reload()
    with pytest.raises(ProfileUnavailableError):
        profiles.context_for("c.example", 443)


def test_a_refused_keystore_edit_never_lends_the_kept_identity_to_a_new_profile(
    setup, ca, backend, tmp_path
):
    """A's edit to k2.jks is refused (not valid yet): A keeps gen-1, as documented. A
    new profile naming k2.jks, whose file is then gone, never loaded: it is refused,
    never served gen-1, a certificate its definition does not name."""
    xml, _, trust = setup
    port = backend.port
    staged = tmp_path / "k2.jks"
    staged.write_bytes(jks(ca, "gen-2", not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(xml, profile_xml(profile(f"localhost:{port}", staged, trust)).encode())
    profiles.reload()
    assert cn_seen(profiles, port) == "gen-1"  # the refused replacement set aside
    staged.unlink()
    _refused_beside_its_twin(profiles, xml, port, staged, trust)
    assert cn_seen(profiles, port) == "gen-1"


def test_a_profile_added_beside_a_twin_while_the_store_is_broken_fails_closed(setup, backend):
    """Only a profile an edit removed lends its last good: one added beside an
    unchanged twin is new, and its hosts are refused while the store does not load."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, b"\0" * 64)
    assert profiles.reload() is False
    _refused_beside_its_twin(profiles, xml, port, keystore, trust)
    assert cn_seen(profiles, port) == "gen-1"  # the twin keeps its own last good


def test_a_truststore_openssl_refuses_never_holds_back_a_new_identity(setup, ca, backend):
    """Both stores rotate; the new truststore loads but OpenSSL refuses one of its
    certificates when the context is built. The new identity goes in with the trust in
    service (as for a truststore that does not load), and the refusal is reported.
    It held the identity back, as the rotating server context already did not."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(trust, truststore_openssl_refuses(ca).to_bytes(PASSWORD))
    # Twin: with the keystore unchanged nothing can go in: the last good stays.
    assert profiles.reload() is False
    assert cn_seen(profiles, port) == "gen-1"
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True
    assert cn_seen(profiles, port) == "gen-2"  # the new identity, with the trust in service
    assert "OpenSSL refused certificate 'refused'" in str(profiles.last_error)
    (entry,) = profiles.status().profiles
    assert entry.loaded and "OpenSSL refused" in str(entry.error)
    (anchor,) = profiles.context_for("localhost", port).get_ca_certs()  # the old trust
    assert "refused" not in str(anchor["subject"])


def test_both_stores_refused_report_both(setup, backend):
    """A broken keystore and a broken truststore in one rotation: the last good stays,
    and the error names both (it named the truststore alone; fixing it then revealed
    the keystore)."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, b"\0" * 64)
    replace_atomically(trust, b"\1" * 64)
    assert profiles.reload() is False
    assert cn_seen(profiles, port) == "gen-1"
    message = str(profiles.last_error)
    assert str(keystore) in message and str(trust) in message
    assert "the truststore was refused too" in message
    (entry,) = profiles.status().profiles
    assert "the truststore was refused too" in str(entry.error)


def test_both_stores_unusable_keep_the_last_good_whole(setup, ca, backend):
    """A keystore whose key does not match its certificate and a truststore OpenSSL
    refuses, in one rotation: each is set aside in turn, nothing new is left, and the
    material in service stays (a bounded number of builds, no loop)."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    good = profiles.context_for("localhost", port)
    one, other = ca.issue_cert("gen-2", common_name="gen-2"), ca.issue_cert("gen-3")
    replace_atomically(keystore, mismatched(other.private_key, list(one.chain)).to_bytes(PASSWORD))
    replace_atomically(trust, truststore_openssl_refuses(ca).to_bytes(PASSWORD))
    assert profiles.reload() is False
    assert profiles.context_for("localhost", port) is good
    assert cn_seen(profiles, port) == "gen-1"
    message = str(profiles.last_error)
    assert "the key must match" in message  # the keystore's refusal
    assert "the truststore was refused too" in message and "OpenSSL refused" in message


def test_a_staged_keystore_and_a_truststore_openssl_refuses_report_both(setup, ca, backend):
    """The keystore set aside (not valid yet), then the truststore refused when the
    context is built: the truststore's error alone was reported."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    replace_atomically(keystore, jks(ca, "gen-2", not_before=later))
    replace_atomically(trust, truststore_openssl_refuses(ca).to_bytes(PASSWORD))
    assert profiles.reload() is False
    assert cn_seen(profiles, port) == "gen-1"
    message = str(profiles.last_error)
    assert "not valid before" in message and "the truststore was refused too" in message


def test_a_profile_added_while_the_shared_store_breaks_in_the_same_check_fails_closed(
    setup, backend
):
    """The same, with the store broken by the very check that adds the profile: the
    new profile shares the twin's keystore, and was served the twin's last good."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(keystore, b"\0" * 64)
    _refused_beside_its_twin(profiles, xml, port, keystore, trust)
    assert cn_seen(profiles, port) == "gen-1"  # the twin keeps its own last good


def test_a_profile_added_with_a_missing_truststore_never_borrows_its_twins(
    setup, ca, backend, tmp_path
):
    """A new profile on the twin's keystore whose own truststore is not there yet,
    while that keystore rotates: it never loaded, so it is refused. It was served
    with the new identity and the twin's truststore, anchors its definition never
    names: a backend certified by the twin's CA passed for it."""
    xml, keystore, trust = setup
    port = backend.port
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{port}", keystore, trust),
            profile(f"127.0.0.1:{port}", keystore, tmp_path / "not-yet.jks"),
        ).encode(),
    )
    replace_atomically(keystore, jks(ca, "gen-2"))
    assert profiles.reload() is True  # the twin's rotation applies
    assert cn_seen(profiles, port) == "gen-2"
    with pytest.raises(ProfileUnavailableError):
        profiles.context_for("127.0.0.1", port)
    entry = {p.servers: p for p in profiles.status().profiles}[(f"127.0.0.1:{port}",)]
    assert not entry.loaded
    assert "not-yet.jks" in str(entry.error)
    # Twin: once its truststore arrives, it loads and reaches the backend.
    ca.write_truststore(tmp_path / "not-yet.jks", PASSWORD)
    assert profiles.reload() is True
    seen = whoami(profiles.context_for("127.0.0.1", port), port, "127.0.0.1")
    assert seen["client_cn"] == "gen-2"


def test_an_edited_profile_sharing_its_material_with_another_definition_keeps_it(setup, backend):
    """Two profiles on the same stores, one saying novalidatecert="true" (a truststore
    wins, so both get the same contexts). The keystore breaks, then the second's
    <servers> are edited: its last good is the shared material, recorded for its own
    definition too (the material named only the first profile's definition): the host
    it served keeps it; the host the edit added, which it never served, is refused
    until the keystore loads (h209, h210, h214)."""
    xml, keystore, trust = setup
    port = backend.port

    def write(servers: str) -> None:
        replace_atomically(
            xml,
            profile_xml(
                profile("first.example:443", keystore, trust, attrs='novalidatecert="true"'),
                profile(servers, keystore, trust),
            ).encode(),
        )

    write(f"localhost:{port}")
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    good = profiles.context_for("localhost", port)
    assert good is profiles.context_for("first.example", 443)  # shared
    replace_atomically(keystore, b"\0" * 64)
    assert profiles.reload() is False
    write(f"localhost:{port},127.0.0.1:{port}")
    assert profiles.reload() is True
    assert profiles.context_for("localhost", port) is good
    with pytest.raises(ProfileUnavailableError, match="never lent to a host it did not serve"):
        profiles.context_for("127.0.0.1", port)
    assert cn_seen(profiles, port) == "gen-1"


def test_material_kept_after_a_failed_edit_never_passes_to_another_profile(
    setup, backend, tmp_path
):
    """A profile without a truststore (novalidatecert) is given one that cannot be
    read yet: it keeps its old, unverifying material. A new profile with the new
    definition must not inherit that material: it has no last good, and is refused."""
    xml, keystore, _ = setup
    port = backend.port
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{port}", keystore, None, attrs='novalidatecert="true"')
        ).encode(),
    )
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    unverified = profiles.context_for("localhost", port)
    assert unverified.verify_mode == ssl.CERT_NONE
    pending = tmp_path / "not-there-yet.jks"
    replace_atomically(xml, profile_xml(profile(f"localhost:{port}", keystore, pending)).encode())
    profiles.reload()
    assert profiles.context_for("localhost", port) is unverified  # its own last good
    replace_atomically(  # then, in a later edit, a new profile of the new definition
        xml,
        profile_xml(
            profile(f"localhost:{port}", keystore, pending),
            profile("b.example:443", keystore, pending),
        ).encode(),
    )
    profiles.reload()
    assert profiles.context_for("localhost", port) is unverified
    with pytest.raises(ProfileUnavailableError):
        profiles.context_for("b.example", 443)


def test_an_edit_whose_new_keystore_is_caught_mid_write_is_applied_next_check(
    setup, ca, backend, monkeypatch
):
    """The profile file points a profile at a new keystore that is still being written
    when the check reads it: the last good identity serves meanwhile, and the next
    check builds the new definition (it used to stay on the old one for good, saying
    nothing)."""
    import mtls._build
    from mtls._reading import Unstable

    xml, _, trust = setup
    fresh = xml.parent / "gw-2.jks"
    fresh.write_bytes(jks(ca, "gen-2"))
    build = mtls._build.Builder.build
    caught: list[Path] = []

    def mid_write(self, profile, **kwargs):  # the first read of gw-2.jks sees it change
        if profile.keystore is not None and profile.keystore.location == fresh and not caught:
            caught.append(fresh)
            raise Unstable(fresh)
        return build(self, profile, **kwargs)

    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    monkeypatch.setattr(mtls._build.Builder, "build", mid_write)
    replace_atomically(
        xml, profile_xml(profile(f"localhost:{backend.port}", fresh, trust)).encode()
    )
    assert profiles.reload() is False  # the twin: caught mid-write, the old one serves
    assert caught and "still being written" in str(profiles.last_error)
    assert cn_seen(profiles, backend.port) == "gen-1"
    assert profiles.reload() is True and profiles.last_error is None
    assert cn_seen(profiles, backend.port) == "gen-2"


def test_an_error_stays_reported_while_the_profile_file_does_not_parse(setup, ca, backend):
    """An edit points a profile at a broken keystore (the last good serves, the error
    is reported); then the file is saved half-written. The profile's error is still
    the one in force, not 'resolved'."""
    xml, _, trust = setup
    broken = xml.parent / "broken.jks"
    broken.write_bytes(b"\xfe\xed\xfe\xed" + b"junk" * 50)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(
        xml, profile_xml(profile(f"localhost:{backend.port}", broken, trust)).encode()
    )
    profiles.reload()
    assert any("broken.jks" in str(e) for e in profiles.errors)
    replace_atomically(xml, b"<parameter><profile>")  # saved mid-edit
    profiles.reload()
    assert any("broken.jks" in str(e) for e in profiles.errors)
    assert any("not well-formed" in str(e) for e in profiles.errors)
    assert cn_seen(profiles, backend.port) == "gen-1"


def test_a_placeholder_path_stays_hidden_when_an_edit_fails(tmp_path, ca, monkeypatch):
    """A refused edit keeps the last good material under the new definition: status()
    must show that material's files as they were configured ($env{...} as written),
    never the value a placeholder stood for. The twin: before the edit, the same."""
    hidden = tmp_path / "HIDDEN-DIR"
    hidden.mkdir()
    monkeypatch.setenv("MTLS_TEST_STORES", str(hidden))
    (hidden / "gw.jks").write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(hidden / "trust.jks", PASSWORD)
    (hidden / "broken.jks").write_bytes(b"\xfe\xed\xfe\xed" + b"junk" * 50)

    def xml_for(name: str) -> str:
        stores = Path("$env{MTLS_TEST_STORES}")
        return profile_xml(profile("a.example:443", stores / name, stores / "trust.jks"))

    xml = tmp_path / "p.xml"
    xml.write_text(xml_for("gw.jks"))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    for step in ("before", "after"):
        if step == "after":
            replace_atomically(xml, xml_for("broken.jks").encode())
            profiles.reload()
            assert profiles.last_error is not None
        shown = json.dumps(profiles.status().to_dict(), default=str)
        assert "HIDDEN-DIR" not in shown, step
        assert "$env{MTLS_TEST_STORES}/gw.jks" in shown, step


def test_a_pem_keystore_read_before_its_intermediate_is_written_is_not_installed(
    tmp_path: Path,
) -> None:
    """A PEM keystore rebuilt in steps (``vault read ... > tls.pem``, then ``>> tls.pem``
    for the certificate, then for the intermediate): read after the leaf, the file is
    whole and reads the same twice a settle delay apart, so it was installed without
    its intermediate: every handshake with a backend that trusts the root alone failed
    while status() said healthy. Now a chain that leaves out the certificate the chain
    in service sends, and the new leaf needs, is refused like an expired one and read
    again; once the intermediate is appended it goes in."""
    root = CA(name="pem root")
    ica = root.create_child_ca(name="pem ica")
    pem, trust = tmp_path / "gw.pem", tmp_path / "trust.jks"
    first = ica.issue_cert("gen-1")
    pem.write_bytes(first.private_key_pem + first.chain_pem)
    root.write_truststore(trust, PASSWORD)
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        xml = tmp_path / "sslprofiles.xml"
        xml.write_text(profile_xml(profile(f"localhost:{server.port}", pem, trust)))
        profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
        assert cn_seen(profiles, server.port) == "gen-1"
        second = ica.issue_cert("gen-2")
        pem.write_bytes(second.private_key_pem + second.cert_pem)  # caught here
        assert profiles.reload() is False
        said = "arrived without CN=pem ica"
        assert said in str(profiles.last_error) and not profiles.status().healthy
        assert cn_seen(profiles, server.port) == "gen-1"  # the last good serves
        with pem.open("ab") as fh:  # >> tls.pem: the intermediate
            fh.write(ica.cert_pem)
        assert profiles.reload() is True
        assert profiles.last_error is None and cn_seen(profiles, server.port) == "gen-2"
        # The same script run again: its cut is held back afresh (the first sighting of
        # the earlier run is forgotten once the whole file went in, else the grace
        # would have passed already and let the cut in).
        from mtls import _refusals

        assert not [k for k in _refusals._LOST_ISSUER_SEEN if k[0].endswith("gw.pem")]
        pem.write_bytes(second.private_key_pem + second.cert_pem)
        assert profiles.reload() is False and said in str(profiles.last_error)
        assert cn_seen(profiles, server.port) == "gen-2"
        with pem.open("ab") as fh:
            fh.write(ica.cert_pem)
        profiles.reload()  # the file in service again, byte for byte: nothing to build
        assert profiles.last_error is None and cn_seen(profiles, server.port) == "gen-2"
        # The twin: a new CA's leaf alone (nothing in service issued it) goes in at once:
        # there is no chain in service to compare it with.
        other = CA(name="another root").issue_cert("gen-3")
        pem.write_bytes(other.private_key_pem + other.cert_pem)
        assert profiles.reload() is True and profiles.last_error is None


def test_a_chain_meant_without_its_intermediate_goes_in_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not every shorter chain is a file caught half-written: a cross-signed root dropped
    for the short chain, or a leaf alone for peers that trust the intermediate itself.
    Such a PEM file is held back for LOST_ISSUER_GRACE (short here, polled with a
    bounded wait), then goes in with a warning. A JKS keystore, which cannot be read
    half-written, goes in at once."""
    from mtls import _refusals

    monkeypatch.setattr(_refusals, "LOST_ISSUER_GRACE", dt.timedelta(seconds=0.3))
    root = CA(name="grace root")
    ica = root.create_child_ca(name="grace ica")
    trust = tmp_path / "trust.jks"
    root.write_truststore(trust, PASSWORD)
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=ica) as server:
        for store in ("gw.pem", "gw.jks"):
            path = tmp_path / store
            first = ica.issue_cert("gen-1")
            if store.endswith(".pem"):
                path.write_bytes(first.private_key_pem + first.chain_pem)
            else:
                first.write_keystore(path, PASSWORD)
            xml = tmp_path / f"{store}.xml"
            xml.write_text(profile_xml(profile(f"localhost:{server.port}", path, trust)))
            profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
            assert cn_seen(profiles, server.port) == "gen-1"
            second = ica.issue_cert("gen-2")
            alone = Keystore()
            alone.add_key("gen-2", second.private_key, [second.certificate])
            if store.endswith(".pem"):
                replace_atomically(path, second.private_key_pem + second.cert_pem)
                assert profiles.reload() is False and "arrived without" in str(profiles.last_error)
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="mtls"):
                    wait_for(profiles.reload)
                assert "goes in without CN=grace ica" in caplog.text
            else:
                replace_atomically(path, alone.to_bytes(PASSWORD))
                assert profiles.reload() is True  # at once
            # The backend trusts the intermediate itself: the leaf alone is enough.
            assert profiles.last_error is None and cn_seen(profiles, server.port) == "gen-2"


def test_the_lost_issuer_grace_runs_on_the_monotonic_clock(monkeypatch, caplog):
    """The grace was measured on the wall clock: a clock stepped back an hour (NTP
    after a suspend, a VM restored) held a chain meant without its intermediate back
    for that hour more, and one stepped forward let a half-written file in at once.
    It is measured on time.monotonic() now: here the monotonic clock passes the grace
    while the wall clock stands (the old code held the chain back)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from mtls import _refusals

    ica = CA(name="grace root").create_child_ca(name="grace ica")
    der = [c.public_bytes(Encoding.DER) for c in (ica.issue_cert("gen-1").certificate,
                                                   ica.certificate)]  # fmt: skip
    alone = [ica.issue_cert("gen-2").certificate.public_bytes(Encoding.DER)]
    clock = [1000.0]
    fake_time = type("FakeTime", (), {"monotonic": staticmethod(lambda: clock[0])})
    monkeypatch.setattr(_refusals, "time", fake_time)
    where = f"/monotonic-{id(clock)}/gw.pem"
    held = _refusals.lost_issuer_refusal(alone, der, where)
    assert held is not None and "arrived without CN=grace ica" in str(held[0])
    clock[0] += _refusals.LOST_ISSUER_GRACE.total_seconds() / 2
    assert _refusals.lost_issuer_refusal(alone, der, where) is not None  # half-way: held
    clock[0] += _refusals.LOST_ISSUER_GRACE.total_seconds() / 2
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert _refusals.lost_issuer_refusal(alone, der, where) is None
    assert "goes in without CN=grace ica" in caplog.text


@pytest.mark.parametrize(
    "expires_in", [dt.timedelta(minutes=-1), dt.timedelta(minutes=5), dt.timedelta(days=30)]
)
def test_a_cut_chain_is_held_for_minutes_unless_the_identity_in_service_expires_first(
    monkeypatch, caplog, expires_in
):
    """A PEM keystore whose writer died between the leaf and the intermediate stays
    cut: 10 seconds of grace let it in before any monitoring polled, and every peer
    verifying through the intermediate refused the identity (h173). It is held for
    minutes now (a minute in: still held, status unhealthy); holding costs nothing
    while the identity in service is valid: held until it expires when that is
    sooner (the refusal says until when), let in at once once it has (letting a
    short-lived identity's replacement in at once let a half-written file in, h175)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from mtls import _refusals

    ica = CA(name="grace root").create_child_ca(name="grace ica")
    not_after = dt.datetime.now(dt.UTC) + expires_in
    in_service = ica.issue_cert("gen-1", not_after=not_after)
    der = [c.public_bytes(Encoding.DER) for c in (in_service.certificate, ica.certificate)]
    alone = [ica.issue_cert("gen-2").certificate.public_bytes(Encoding.DER)]
    clock = [1000.0]
    fake_time = type("FakeTime", (), {"monotonic": staticmethod(lambda: clock[0])})
    monkeypatch.setattr(_refusals, "time", fake_time)
    where = f"/held-{id(clock)}/gw.pem"
    with caplog.at_level(logging.WARNING, logger="mtls"):
        first = _refusals.lost_issuer_refusal(alone, der, where)
        clock[0] += 60
        later = _refusals.lost_issuer_refusal(alone, der, where)
    if expires_in < dt.timedelta(0):
        assert first is None and later is None
        assert "the certificate in service having expired" in caplog.text
    else:
        assert first is not None and later is not None  # a minute in: still held
        assert "arrived without CN=grace ica" in str(later[0])
        assert "goes in without" not in caplog.text
        until = later[1]
        assert until is not None
        if expires_in < _refusals.LOST_ISSUER_GRACE:  # held while the old one works
            assert abs(until - not_after) < dt.timedelta(seconds=1)


def test_a_servers_edit_is_said_in_the_log(setup, backend, caplog):
    """An edit of <servers> changes which host gets which identity without any context
    changing: it was applied with no log line at all (each rebuilt context is said at
    INFO; the audit trail had a gap). The twin: a check that changes nothing says
    nothing."""
    xml, keystore, trust = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    with caplog.at_level(logging.INFO, logger="mtls"):
        assert profiles.reload() is False
        assert "profiles applied" not in caplog.text
        replace_atomically(
            xml, profile_xml(profile(f"renamed.test:{backend.port}", keystore, trust)).encode()
        )
        assert profiles.reload() is True
    (line,) = [r.getMessage() for r in caplog.records if "profiles applied" in r.getMessage()]
    assert f"now served: renamed.test:{backend.port}" in line
    assert f"no longer served: localhost:{backend.port}" in line
    # A port added to the profile: the host it served is served still (the line said
    # "no longer: localhost:..." of it, h256); then the port moved to a profile of its
    # own: nothing is added or dropped, the profiles changed.
    caplog.clear()
    both = f"renamed.test:{backend.port},renamed.test:9"
    with caplog.at_level(logging.INFO, logger="mtls"):
        replace_atomically(xml, profile_xml(profile(both, keystore, trust)).encode())
        assert profiles.reload() is True
        replace_atomically(
            xml,
            profile_xml(
                profile(f"renamed.test:{backend.port}", keystore, trust),
                profile("renamed.test:9", keystore, trust),
            ).encode(),
        )
        assert profiles.reload() is True
    added, split = [r.getMessage() for r in caplog.records if "profiles applied" in r.getMessage()]
    assert "now served: renamed.test:9;" in added and "no longer" not in added, added
    assert f"profiles changed: renamed.test:{backend.port}, renamed.test:9" in added, added
    assert "now served" not in split and "no longer" not in split, split
    assert f"profiles changed: renamed.test:{backend.port}; renamed.test:9" in split, split


@pytest.mark.skipif(os.name != "posix", reason="bytes in file names")
def test_a_path_that_is_not_utf8_is_shown_not_dropped(tmp_path, ca, backend):
    """A directory named with a Latin-1 byte (Python gives it as a lone surrogate):
    a log handler writing UTF-8 dropped every record naming it ("--- Logging error
    ---", the one warning of a failure lost), and str(last_error).encode() and the
    JSON of status() raised. The byte is now shown as \\xe9."""
    d = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    os.mkdir(d)
    keystore, trust = Path(d, "gw.jks"), Path(d, "trust.jks")
    keystore.write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(trust, PASSWORD)
    # Relative locations from a base directory of that name (the product home):
    # how such a path reaches a profile file, whose text is Unicode.
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(profile(f"localhost:{backend.port}", Path("gw.jks"), Path("trust.jks")))
    )
    logged = tmp_path / "mtls.log"
    handler = logging.FileHandler(logged, encoding="utf-8")
    logger = logging.getLogger("mtls")
    logger.addHandler(handler)
    try:
        profiles = SSLProfileSet.from_xml(xml, settle_delay=0, base_dir=d)
        keystore.unlink()
        profiles.reload()
    finally:
        logger.removeHandler(handler)
        handler.close()
    error = str(profiles.last_error)
    assert "caf\\xe9/gw.jks: no such keystore file" in error
    error.encode("utf-8")  # raised UnicodeEncodeError
    json.dumps(profiles.status().to_dict(), ensure_ascii=False).encode("utf-8")
    assert "caf\\xe9/gw.jks: no such keystore file" in logged.read_text(encoding="utf-8")
    assert cn_seen(profiles, backend.port) == "gen-1"  # the twin: the last good serves


def test_a_forced_reload_reads_what_stat_does_not_show(setup, ca, backend):
    """A FUSE mount that fixes mtime and ctime and keeps inode numbers (object-store
    mounts, a sync tool that keeps mtimes) shows a same-size rewrite as no change:
    the rotation was never seen, and reload() could not force a read. Here the
    engine is told the new stat is the one it last used (what such a mount shows);
    reload() still sees nothing, reload(force=True) reads, and installs the change."""
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    reader = profiles._engine._reader  # type: ignore[union-attr]
    old_digest = reader.seen(keystore)[1]
    replace_atomically(keystore, jks(ca, "gen-2"))
    reader.record(keystore, _reading.stat_key(keystore), old_digest)  # "nothing moved"
    assert profiles.reload() is False
    assert cn_seen(profiles, backend.port) == "gen-1"
    assert profiles.reload(force=True) is True
    assert cn_seen(profiles, backend.port) == "gen-2"
    assert profiles.reload(force=True) is False  # the twin: unchanged bytes build nothing


def test_never_settling_needs_checks_in_a_row_not_only_time(monkeypatch, tmp_path):
    """Measured from the first catch alone, two unlucky catches ten minutes apart (WSO2's
    interval) made an error; and a file caught mid-write, then missing, then caught
    again hours later was "still being written after 7200 s" at once. It takes
    NEVER_SETTLES_CHECKS catches in a row, and a check that reads the file whole or
    cannot read it at all starts the count again."""
    monkeypatch.setattr(_reading, "NEVER_SETTLES_AFTER", 0.0)
    reader, path = _reading.FileReader(), tmp_path / "f"
    assert [reader.never_settles(path) is not None for _ in range(3)] == [False, False, True]
    reader.settled(path)  # read whole, or missing
    assert reader.never_settles(path) is None


def test_the_warn_once_keys_of_rotated_certificates_are_bounded(setup, ca, monkeypatch):
    """Each rotated-in certificate a usage warning names left one key in the builder's
    warn-once set for the life of the process (500 rotations: 500 keys), where every
    other cache of the builder is trimmed to what is in use. It is bounded like the
    process-wide warn-once sets now (WARNED_AT_MOST, 1,024; 4 here)."""
    from mtls import _build
    from tests._pki import any_eku_only

    monkeypatch.setattr(_build, "WARNED_AT_MOST", 4)
    xml, keystore, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    builder = profiles._crl_next_update.__self__  # type: ignore[attr-defined]
    sizes = []
    for _ in range(10):
        replace_atomically(keystore, any_eku_only(ca, "gen").to_bytes(PASSWORD))
        profiles.reload()
        sizes.append(len(builder._early_warned))
    assert sizes[:4] == [1, 2, 3, 4] and max(sizes) <= 5, sizes
    profiles.close()


def test_a_subscriber_that_blocks_holds_one_delivery_not_one_per_change(setup, ca):
    """A subscriber that never returns (a webhook without a timeout) holds the
    notification thread: each change the reload thread applied meanwhile handed it one
    more delivery task (300 changes: 300 tasks). One delivery drains every queued
    change, so one waits now; every change is still delivered once, in order, when
    the subscriber returns."""
    import threading

    xml, keystore, _ = setup
    gate = threading.Event()
    seen: list[tuple[int, int]] = []

    def blocked(old: int, new: int) -> None:
        gate.wait(60)
        seen.append((old, new))

    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, reload_interval=0.01)
    try:
        profiles.subscribe(blocked)
        first = profiles.generation
        for n in range(1, 13):
            replace_atomically(keystore, jks(ca, f"gen-{n + 1}"))
            wait_for(lambda n=n: profiles.generation >= first + n)
        engine = profiles._engine  # type: ignore[attr-defined]
        assert len(engine._notifier._work) <= 1, len(engine._notifier._work)
        gate.set()
        wait_for(lambda: len(seen) == 12)
        assert [new for _, new in seen] == list(range(first + 1, first + 13))
    finally:
        gate.set()
        profiles.close()


class _MountedPasswords:
    """The resolver docs/profiles.md shows: one file per alias in a mounted secret."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.asked = 0

    def __call__(self, alias: str) -> str | None:
        self.asked += 1
        path = self.directory / alias
        return path.read_text().strip() if path.is_file() else None

    def watched_files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if not p.name.startswith(".."))


@pytest.mark.parametrize("order", ["store-first", "password-first"])
@pytest.mark.parametrize("watched", [True, False], ids=["watched_files", "plain-function"])
def test_a_password_rotated_with_its_store_is_asked_again(tmp_path, ca, backend, order, watched):
    """A keystore and its password rotated together, each in its own mounted secret
    (cert-manager's keystore and its passwordSecretRef), the profile file unchanged:
    a resolver that names its files (watched_files()) is asked again and the new
    identity goes in, in either order, the old one serving until both arrived. The
    twin: a plain function is asked only when the profile file changes (documented),
    so the old identity stays with "wrong store password" (h190)."""
    stores, passwords = tmp_path / "stores", tmp_path / "passwords"
    swap_symlinked_dir(stores, {"gw.jks": jks(ca, "pw-1")})
    swap_symlinked_dir(passwords, {"gw": PASSWORD})
    secret = '<Password svns:secretAlias="gw">x</Password>'
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            f"<profile><servers>localhost:{backend.port}</servers><KeyStore>"
            f"<Location>{stores / 'gw.jks'}</Location><Type>JKS</Type>{secret}"
            f'<KeyPassword svns:secretAlias="gw">x</KeyPassword></KeyStore>'
            f"<TrustStore><Location>{trust}</Location><Type>JKS</Type>"
            f"<Password>{PASSWORD}</Password></TrustStore></profile>"
        ).replace(
            "<parameter ", '<parameter xmlns:svns="http://org.wso2.securevault/configuration" '
        )
    )
    mounted = _MountedPasswords(passwords)
    resolver = mounted if watched else mounted.__call__
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, secret_resolver=resolver)
    try:
        assert cn_seen(profiles, backend.port) == "pw-1"
        new_password = "rotated-" + PASSWORD
        store = ca.issue_cert("pw-2", common_name="pw-2").keystore().to_bytes(new_password)
        steps = [
            lambda: swap_symlinked_dir(stores, {"gw.jks": store}),
            lambda: swap_symlinked_dir(passwords, {"gw": new_password}),
        ]
        if order == "password-first":
            steps.reverse()
        steps[0]()
        profiles.reload()
        assert cn_seen(profiles, backend.port) == "pw-1"  # half rotated: the last good
        # (a new password nobody asks for changes nothing: the old one opens the store)
        unseen = not watched and order == "password-first"
        assert profiles.last_error is None if unseen else "wrong" in str(profiles.last_error)
        steps[1]()
        profiles.reload()
        if watched:
            assert cn_seen(profiles, backend.port) == "pw-2"
            assert profiles.last_error is None
        else:
            assert cn_seen(profiles, backend.port) == "pw-1"
            assert "wrong" in str(profiles.last_error)
    finally:
        profiles.close()


def _staged_pem(ca: CA, path: Path, start: dt.datetime) -> tuple[int, int]:
    """A PEM keystore: a key (encrypted under PASSWORD), its certificate in service,
    and its renewal for the same key, valid from ``start``, staged after it (h242).
    Their serials."""
    current = ca.issue_cert("gen-staged")
    renewal = same_key(ca, current, not_before=start)
    path.write_bytes(pem_keystore(current, *current.chain, renewal))
    return current.certificate.serial_number, renewal.serial_number


def test_a_renewal_staged_in_a_pem_keystore_is_taken_once_valid(tmp_path, ca, backend):
    """The same bytes give the key another certificate once the renewal staged after
    it becomes valid: read again then, unchanged on disk (h242: the one in service
    expired and every request failed while the renewal sat in the file)."""
    keystore = tmp_path / "gw.pem"
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    current, renewal = _staged_pem(ca, keystore, start)
    trust, other_trust = tmp_path / "trust.jks", tmp_path / "other-trust.jks"
    ca.write_truststore(trust, PASSWORD)
    bundle = Truststore()
    bundle.add("ca", ca.certificate)
    bundle.add("other", CA(name="other anchor").certificate)
    bundle.save(other_trust, PASSWORD)
    xml = tmp_path / "p.xml"
    # Two profiles on the one keystore, each with its truststore: two materials, which
    # both switch (only the first did, h243).
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile(f"127.0.0.1:{backend.port}", keystore, other_trust),
        )
    )

    def serials() -> set[int | None]:
        return {
            p.identity.serial if p.identity is not None else None
            for p in profiles.status().profiles
        }

    with SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0) as profiles:
        assert serials() == {current}
        generation = profiles.generation
        wait_for(lambda: serials() == {renewal}, timeout=30)
        assert dt.datetime.now(dt.UTC) >= start.replace(microsecond=0)
        assert profiles.generation == generation + 1
        assert cn_seen(profiles, backend.port) == "gen-staged"
        renew_at = profiles._engine.snapshot.renew_at
        assert renew_at is not None and renew_at > dt.datetime.now(dt.UTC)  # no busy loop
        assert profiles.reload() is False


@pytest.mark.parametrize("client_auth", [False, True])
def test_a_pem_keystore_presents_the_certificate_servers_take(
    tmp_path, ca, backend, caplog, client_auth
):
    """A PEM keystore with a key's certificate in service and a newer one for the key
    issued without clientAuth (from a server template): every server refuses the newer
    one, and after a restart it was the one presented, every handshake failing while
    the one before it was good (h243). The set presents the one servers take, and
    warns naming the newer one and why. The twin: a newer one with clientAuth is
    presented, and nothing is said."""
    current = ca.issue_cert("gen-role")
    newer = same_key(
        ca,
        current,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30),
        client_auth=client_auth,
    )
    keystore = tmp_path / "gw.pem"
    keystore.write_bytes(pem_keystore(current, *current.chain, newer))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    with profiles:
        (status,) = profiles.status().profiles
        assert status.identity is not None
        chosen = newer if client_auth else current.certificate
        assert status.identity.serial == chosen.serial_number
        assert profiles.status().healthy
        assert cn_seen(profiles, backend.port) == "gen-role"  # the backend takes it
    said = [r.getMessage() for r in caplog.records if "newest certificate" in r.getMessage()]
    if client_auth:
        assert said == []
    else:
        assert len(said) == 1, said
        assert "its extended key usage lacks clientAuth (it allows serverAuth)" in said[0]
        assert f"{keystore}: the newest certificate for a key (CN=gen-role" in said[0]
        assert f"another for the key (serial {current.certificate.serial_number:x}," in said[0]
        assert "(reissue it for TLS client authentication, or remove it from the file)" in said[0]


def test_a_pem_keystore_read_again_for_the_same_choice_applies_nothing(tmp_path, ca, backend):
    """An older certificate for the key expires beside the one in service: the file is
    read again (its choice may change), the same certificate stays, no new generation,
    and the set is due next at the one in service's end, not at every check."""
    current = ca.issue_cert("gen-same")
    now = dt.datetime.now(dt.UTC)
    older = same_key(
        ca, current, not_before=now - dt.timedelta(days=2), not_after=now + dt.timedelta(seconds=2)
    )
    keystore = tmp_path / "gw.pem"
    keystore.write_bytes(pem_keystore(current, older, *current.chain))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    with SSLProfileSet.from_xml(xml, reload_interval=INTERVAL, settle_delay=0) as profiles:
        renew_at = profiles._engine.snapshot.renew_at
        assert renew_at is not None and renew_at <= now + dt.timedelta(seconds=4)
        context = profiles.context_for("localhost", backend.port)
        later = now + dt.timedelta(days=300)
        wait_for(lambda: (profiles._engine.snapshot.renew_at or later) >= later, timeout=30)
        assert profiles.generation == 0
        assert profiles.context_for("localhost", backend.port) is context
        assert cn_seen(profiles, backend.port) == "gen-same"


def test_a_store_wso2_reads_otherwise_is_said_at_load(tmp_path, ca, backend, caplog):
    """A PKCS#12 truststore without Java's trust attribute (openssl pkcs12 -nokeys, or
    cryptography's writer): mtls trusts its certificates, the gateway reads no anchor
    ("the trustAnchors parameter must be non-empty"), and only `mtls check` said so: a
    profile file that worked here failed in WSO2 (h254). Said once at load, and not
    again at a reload of the same bytes. The twins: the same store in a set made in
    code (WSO2 never reads it), and a JKS truststore, say nothing."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    from mtls import SSLProfile, StoreConfig

    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    nokeys = tmp_path / "trust.p12"
    nokeys.write_bytes(
        pkcs12.serialize_key_and_certificates(
            None, None, None, [ca.certificate], BestAvailableEncryption(PASSWORD.encode())
        )
    )
    jks_trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    said = "carries no Java trust attribute (an openssl pkcs12 -nokeys file)"
    for trust, warned in ((nokeys, True), (jks_trust, False)):
        xml = tmp_path / f"{trust.suffix[1:]}.xml"
        xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
                assert cn_seen(profiles, backend.port) == "gen-1"  # mtls trusts it
                os.utime(trust, (1, 1))  # read again: the same bytes
                profiles.reload()
        lines = [r.getMessage() for r in caplog.records if said in r.getMessage()]
        assert len(lines) == warned, lines
        if warned:
            assert lines[0].startswith(f"{xml}: {trust}: its 1 certificate carries")
            assert "WSO2's gateway read it as empty (no trust anchors)" in lines[0]
    caplog.clear()
    in_code = SSLProfile(
        servers=[("localhost", backend.port)],
        keystore=StoreConfig(location=keystore, password=PASSWORD),
        truststore=StoreConfig(location=nokeys, password=PASSWORD),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        with SSLProfileSet([in_code]) as profiles:
            assert cn_seen(profiles, backend.port) == "gen-1"
    assert said not in caplog.text


@pytest.mark.parametrize("kind", ["TypeError", "UnicodeEncodeError", "MemoryError"])
def test_an_unforeseen_error_in_one_profile_never_stops_another_rotating(
    tmp_path: Path,
    ca: CA,
    backend: MTLSServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """A dependency's own error on one profile's file (h265: cryptography's TypeError
    on a CRL's name) failed the whole reload: no other profile picked up its new
    keystore while it stayed. It is that profile's error now (its last good kept), and
    an error of the set's constructor is an MTLSError. The fault is injected into the
    store loader for one file; the handshakes are real. A codec error's input (it may
    be a password) is not kept with it, and the traceback is logged. Running out of
    memory is the process's, not the profile's: the whole check fails, as before."""
    from mtls import _build

    held = "Pw-SECRET-\udcff-7781"

    def fault() -> Exception:
        if kind == "TypeError":
            return TypeError("oid must be X500_UNIQUE_IDENTIFIER for BitString type.")
        if kind == "MemoryError":
            return MemoryError()
        return UnicodeEncodeError("utf-8", held, 10, 11, "surrogates not allowed")

    stores = {}
    for name in ("a", "b"):
        stores[name] = tmp_path / f"{name}.jks"
        stores[name].write_bytes(jks(ca, f"{name}-1"))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", stores["a"], trust),
            profile(f"127.0.0.1:{backend.port}", stores["b"], trust),
        )
    )
    loader = _build.Builder._load
    broken = {"on": False}

    def load(self: object, config: StoreConfig, *args: object, **kwargs: object) -> object:
        if broken["on"] and Path(config.location).name == "a.jks":
            raise fault()
        return loader(self, config, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_build.Builder, "_load", load)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    try:
        broken["on"] = True
        replace_atomically(stores["a"], jks(ca, "a-2"))
        replace_atomically(stores["b"], jks(ca, "b-2"))
        with caplog.at_level(logging.ERROR, logger="mtls"):
            profiles.reload()
            profiles.reload()  # retried at every check; its traceback logged once
        seen_b = whoami(profiles.context_for("127.0.0.1", backend.port), backend.port)
        if kind == "MemoryError":
            assert seen_b["client_cn"] == "b-1" and cn_seen(profiles, backend.port) == "a-1"
            assert "MemoryError" in str(profiles.last_error)
            return
        assert seen_b["client_cn"] == "b-2"  # the other profile rotated
        logged = [r for r in caplog.records if f"unexpected {kind} while building" in r.message]
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert cn_seen(profiles, backend.port) == "a-1"  # the last good kept
        error = str(profiles.last_error)
        assert f"localhost:{backend.port}" in error and f"unexpected {kind}" in error
        assert isinstance(profiles.last_error, MTLSError)
        cause = profiles.last_error
        while cause is not None:
            assert held not in str(cause) and held not in repr(getattr(cause, "object", ""))
            cause = cause.__cause__ or cause.__context__
    finally:
        profiles.close()
    with pytest.raises(MTLSError, match=f"unexpected {kind} while building"):
        SSLProfileSet.from_xml(xml, settle_delay=0)
