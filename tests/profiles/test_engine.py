"""The reload engine on its own and under the profile set: ordered delivery, a second
consumer, ALPN variants built once, typed status, errors that name their profile, and
one way from a StoreConfig to a store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import pytest

import mtls
from mtls import KeystoreError, KeystoreNotFoundError, SSLProfileSet, StoreConfig
from mtls._engine import Engine, Outcome, Problem
from mtls._reading import Reading, Unstable
from mtls._stores import load_store
from mtls.testing import CA, replace_atomically
from tests._helpers import (
    PASSWORD,
    profile,
    profile_xml,
    python_within,
    stats_settled,
    wait_for,
    write_identity,
    write_trust,
)

mtls_log = logging.getLogger("mtls")

# --------------------------------------------------------------------------- a second consumer


@dataclasses.dataclass(frozen=True)
class FileSnapshot:
    """The smallest snapshot: one file's hash (what a server context's would be)."""

    generation: int
    digest: str | None
    watched: tuple[Path, ...]
    pending: bool = False
    errors: tuple[mtls.MTLSError, ...] = ()


class FilePlan:
    """A plan over one file: what a second consumer of the engine writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def first(self, reading: Reading, *, last: bool) -> FileSnapshot:
        _, digest = reading.read(self.path)
        return FileSnapshot(0, digest, (self.path,))

    def unsettled(self, exc: Unstable, attempts: int) -> mtls.MTLSError:
        return mtls.MTLSError(f"{exc.path}: still being written", path=exc.path)

    def check(self, reading: Reading, old: FileSnapshot) -> Outcome[FileSnapshot]:
        try:
            _, digest = reading.read(self.path)
        except OSError as exc:
            error = mtls.MTLSError(f"{self.path}: {exc.strerror}", path=self.path)
            return Outcome(dataclasses.replace(old, errors=(error,)), False)
        if digest == old.digest:
            return Outcome(dataclasses.replace(old, errors=()), False)
        return Outcome(FileSnapshot(old.generation + 1, digest, (self.path,)), True)

    def broken(self, old: FileSnapshot, exc: BaseException) -> FileSnapshot:
        return dataclasses.replace(old, errors=(mtls.MTLSError(str(exc)),), pending=True)

    def problems(self, snapshot: FileSnapshot) -> Mapping[Hashable, Problem]:
        return {("file", str(e)): Problem(str(e), "keeping the last good") for e in snapshot.errors}

    def configured(self, snapshot: FileSnapshot) -> frozenset[str]:
        return frozenset()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_second_consumer_rotates_keeps_last_good_and_stops(tmp_path):
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-engine")
    assert engine.snapshot.digest == sha(b"one") and engine.snapshot.generation == 0
    assert engine.check() is False  # nothing moved: nothing read

    replace_atomically(path, b"two")
    assert engine.check() is True
    assert engine.snapshot.digest == sha(b"two") and engine.snapshot.generation == 1

    path.unlink()  # the negative twin: a broken file keeps the last good
    assert engine.check() is False
    assert engine.snapshot.digest == sha(b"two") and engine.snapshot.errors
    engine.close()
    replace_atomically(path, b"three")
    assert engine.check() is False and engine.closed  # closed: nothing more
    assert engine.snapshot.digest == sha(b"two")


def test_the_engine_thread_runs_checks_until_closed(tmp_path):
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=0.02, name="test-engine-thread")
    try:
        assert engine.reloading and engine.interval == 0.02
        replace_atomically(path, b"two")
        wait_for(lambda: engine.snapshot.generation == 1)
    finally:
        engine.close()
    assert not engine.reloading


# --------------------------------------------------------------------------- subscribers


def test_changes_are_delivered_in_generation_order_across_threads(tmp_path):
    """Thread A applies generation 1 and is still delivering it (its callback blocks)
    when thread B applies generation 2: B must not deliver 2 first; A delivers it after 1."""
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-order")
    seen: list[tuple[int, int, str]] = []
    entered, release = threading.Event(), threading.Event()

    def callback(old: int, new: int) -> None:
        seen.append((old, new, threading.current_thread().name))
        if new == 1:
            entered.set()
            assert release.wait(30)

    engine.subscribe(callback)
    replace_atomically(path, b"two")
    a = threading.Thread(target=engine.check, name="A")
    a.start()
    assert entered.wait(30)
    replace_atomically(path, b"three")
    assert engine.check() is True  # B (this thread) applied generation 2 ...
    assert seen == [(0, 1, "A")]  # ... and did not deliver it before 1
    release.set()
    a.join(30)
    assert seen == [(0, 1, "A"), (1, 2, "A")]  # A delivered it, in order


def test_a_subscriber_may_reload_and_nothing_is_delivered_without_a_change(tmp_path):
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-nested")
    seen: list[tuple[int, int]] = []

    def callback(old: int, new: int) -> None:
        seen.append((old, new))
        if new == 1:
            replace_atomically(path, b"three")
            assert engine.check() is True  # applied now, delivered after this callback

    unsubscribe = engine.subscribe(callback)
    assert engine.check() is False and seen == []  # no change, no delivery
    replace_atomically(path, b"two")
    assert engine.check() is True
    assert seen == [(0, 1), (1, 2)]
    unsubscribe()
    replace_atomically(path, b"four")
    assert engine.check() is True and seen == [(0, 1), (1, 2)]


# --------------------------------------------------------------------------- the profile set


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="engine CA")


@pytest.fixture
def setup(tmp_path: Path, ca: CA):
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(ca.issue_cert("gw", common_name="gen-1").keystore().to_bytes(PASSWORD))
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(
            profile("backend.test:8443", keystore, trust),
            profile("other.test:8443", tmp_path / "missing.jks", trust),
        )
    )
    return xml, keystore, trust


def test_alpn_variants_are_made_without_a_lock_and_racing_threads_get_one(setup):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    barrier = threading.Barrier(6)
    got: list[object] = []

    def lookup() -> None:
        barrier.wait(30)
        got.append(profiles.context_for("backend.test", 8443, alpn=("h2", "http/1.1")))

    threads = [threading.Thread(target=lookup) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 6 and len({id(ctx) for ctx in got}) == 1  # one variant for all
    base = profiles.context_for("backend.test", 8443)
    assert got[0] is not base  # never the shared context
    assert not any(isinstance(v, type(threading.Lock())) for v in vars(profiles).values())


def test_racing_first_lookups_of_a_variant_build_it_once(setup, monkeypatch) -> None:
    """Concurrent first lookups of an ALPN variant each built one, and kept the first:
    32 threads' first requests through httpx read a 5,000-anchor truststore 32 times
    (47 s against 3.8 s, h168). One builds it now; the others wait for it. The build is
    held (until every thread has asked, or 2 s) so that they all overlap it."""
    from mtls import _build

    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    real = _build.Served.build_variant
    builds: list[tuple[str, ...]] = []
    gate = threading.Event()

    def counted(served: object, base: object, alpn: tuple[str, ...]) -> object:
        builds.append(alpn)
        if len(builds) == 1:
            gate.wait(2)  # the others ask meanwhile: they must not build
        else:
            gate.set()
        return real(served, base, alpn)  # type: ignore[arg-type]

    monkeypatch.setattr(_build.Served, "build_variant", counted)
    got: list[object] = []
    errors: list[BaseException] = []

    def lookup(alpn: tuple[str, ...]) -> None:
        try:
            got.append(profiles.context_for("backend.test", 8443, alpn=alpn))
        except BaseException as exc:
            errors.append(exc)

    def race(alpn: tuple[str, ...]) -> None:
        threads = [threading.Thread(target=lookup, args=(alpn,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    race(("h2",))
    assert len(got) == 6 and len({id(ctx) for ctx in got}) == 1 and not errors
    assert builds == [("h2",)]
    # A build that fails fails each waiter the same way, and leaves nothing pending:
    # the next lookup builds (and the twin, a good list, is built once too).
    builds.clear()
    gate.clear()
    race(("",))
    assert len(errors) == 6 and all(isinstance(e, ValueError) for e in errors), errors
    assert len(builds) == 1
    assert profiles.context_for("backend.test", 8443, alpn=("http/1.1",)) is not None


def test_an_interrupted_build_is_taken_over_by_a_waiter(setup, monkeypatch) -> None:
    """Ctrl-C (or SIGTERM) in the thread building a variant others wait for was raised
    in each of them (h169): theirs is not interrupted. The first builder's
    KeyboardInterrupt stays its own; a waiter builds the context and all get it."""
    from mtls import _build

    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    real = _build.Served.build_variant
    calls: list[str] = []
    gate = threading.Event()

    def interrupted_once(served: object, base: object, alpn: tuple[str, ...]) -> object:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            gate.wait(2)  # never set: the others ask meanwhile, and wait for this build
            raise KeyboardInterrupt
        return real(served, base, alpn)  # type: ignore[arg-type]

    monkeypatch.setattr(_build.Served, "build_variant", interrupted_once)
    got: list[object] = []
    raised: list[BaseException] = []

    def lookup() -> None:
        try:
            got.append(profiles.context_for("backend.test", 8443, alpn=("h2",)))
        except BaseException as exc:
            raised.append(exc)

    threads = [threading.Thread(target=lookup, name=f"t{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(raised) == 1 and isinstance(raised[0], KeyboardInterrupt), raised
    assert len(got) == 3 and len({id(ctx) for ctx in got}) == 1
    assert len(calls) == 2  # the interrupted build, and one waiter's


def test_a_recorded_build_that_has_ended_is_no_build_to_wait_for(setup) -> None:
    """A build's record left behind after it ended (its thread interrupted between two
    bytecodes: h170 saw 9 in 3,000 signals leave one, and later lookups of that
    variant waited for good, or recursed) is replaced: the lookup builds the variant."""
    import concurrent.futures
    import os

    from mtls import _build

    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    with pytest.raises(_build.NotBuilt) as caught:
        profiles._context_built(
            "backend.test", 8443, client_id=None, alpn=("h2",), server_hostname=None
        )
    served, key = caught.value.served, caught.value.key
    ended: concurrent.futures.Future[None] = concurrent.futures.Future()
    ended.set_exception(_build.BuildAbandoned())
    served.pending[(os.getpid(), key)] = ended
    ctx = profiles.context_for("backend.test", 8443, alpn=("h2",))
    assert ctx is served.variants[key]
    assert (os.getpid(), key) not in served.pending  # the stale record went with it


def test_status_is_typed_frozen_and_json_ready(setup, ca):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    status = profiles.status()
    assert isinstance(status, mtls.ProfileSetStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.generation = 5  # type: ignore[misc]
    loaded, failed = status.profiles
    assert loaded.loaded and not failed.loaded
    assert loaded.identity is not None and loaded.identity.subject is not None
    assert "CN=gen-1" in loaded.identity.subject
    assert loaded.identity.serial and loaded.identity.days_left is not None
    assert loaded.identity.days_left > 0
    assert loaded.anchors and "engine CA" in str(loaded.anchors[0].subject)
    assert loaded.error is None and loaded.revocation is None
    # One list of errors: the failed profile's, also on its own record.
    assert not status.healthy and status.errors == (failed.error,)
    assert status.last_error is failed.error and profiles.last_error is failed.error
    shown = status.to_dict()
    json.dumps(shown)
    assert {
        "generation",
        "healthy",
        "reloading",
        "path",
        "hostname_verifier",
        "checked_at",
        "last_error",
        "config_error",
        "default",
        "profiles",
        "errors",
        "last_reload",
    } <= set(shown)
    row = shown["profiles"][0]
    assert {"servers", "client_id", "loaded", "files", "subject", "not_after"} <= set(row)
    assert {"last_good_load", "error", "identity", "anchors", "revocation"} <= set(row)
    assert row["identity"]["serial"] == f"{loaded.identity.serial:x}"
    assert PASSWORD not in json.dumps(shown)
    assert shown["closed"] is False


def test_a_closed_set_is_not_healthy(setup):
    """h246: after close() the set stayed healthy for good, though nothing is checked or
    rotated any more; it still hands out its contexts. Twin: open, it is healthy."""
    xml, keystore, trust = setup
    xml.write_text(profile_xml(profile("backend.test:8443", keystore, trust)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    assert profiles.status().healthy and not profiles.status().closed
    profiles.close()
    status = profiles.status()
    assert status.closed and not status.healthy and status.to_dict()["closed"] is True
    assert status.errors == ()  # nothing went wrong: it is closed
    assert profiles.context_for("backend.test", 8443) is not None


def test_errors_name_their_profile_in_one_place_and_keep_the_reason(setup):
    xml, _, _ = setup
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True)
    ((_, error),) = profiles.failures
    assert isinstance(error, KeystoreNotFoundError)  # one path, one error: as Keystore.load
    assert error.servers == ("other.test:8443",) and error.client_id is None
    assert str(error) == f"profile other.test:8443: {error.reason}"
    assert error.reason.startswith(str(Path(xml.parent, "missing.jks")))
    # The negative twin: an error that concerns no profile has no servers, and its
    # reason is the whole message.
    with pytest.raises(KeystoreNotFoundError) as info:
        mtls.Keystore.load(xml.parent / "missing.jks", PASSWORD)
    assert info.value.servers == () and info.value.reason == str(info.value)


def test_the_default_profile_and_truststore_are_public(setup, tmp_path):
    _, keystore, trust = setup
    default = mtls.SSLProfile(
        servers=("*",),
        keystore=StoreConfig(location=keystore, password=PASSWORD),
        truststore=StoreConfig(location=trust, password=PASSWORD),
    )
    profiles = SSLProfileSet(
        [], default=default, default_truststore=StoreConfig(location=trust, password=PASSWORD)
    )
    assert profiles.default is default
    assert profiles.default_truststore == StoreConfig(location=trust, password=PASSWORD)
    assert SSLProfileSet([]).default is None and SSLProfileSet([]).default_truststore is None


def test_load_store_is_what_a_profile_set_loads(setup, tmp_path):
    _, keystore, trust = setup
    store = load_store(StoreConfig(location=keystore, password=PASSWORD), "keystore")
    assert isinstance(store, mtls.Keystore) and store.key_entry(None)[0]
    assert len(load_store(StoreConfig(location=trust, password=PASSWORD), "truststore")) >= 1
    with pytest.raises(KeystoreNotFoundError, match="no such keystore file"):
        load_store(StoreConfig(location=tmp_path / "missing.jks", password=PASSWORD), "keystore")
    with pytest.raises(mtls.WrongPasswordError):
        load_store(StoreConfig(location=keystore, password="wrong-password"), "keystore")
    with pytest.raises(KeystoreError, match="is a directory, not a truststore"):
        load_store(StoreConfig(location=tmp_path, password=PASSWORD), "truststore")


def test_watchers_see_every_check_changed_or_not_and_none_after_close(tmp_path):
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-watch")
    seen: list[int] = []

    def broken(snapshot: FileSnapshot) -> None:
        raise RuntimeError("a watcher's bug")

    engine.watch(broken)  # logged; the others still run
    stop = engine.watch(lambda snapshot: seen.append(snapshot.generation))
    assert engine.check() is False
    replace_atomically(path, b"two")
    assert engine.check() is True
    assert seen == [0, 1]
    stop()
    assert engine.check() is False and seen == [0, 1]
    engine.watch(lambda snapshot: seen.append(-1))
    engine.close()
    assert engine.check() is False and seen == [0, 1]


def test_a_watcher_says_what_it_owes_through_the_check_and_a_raising_one_is_logged(
    tmp_path, caplog
):
    """A watcher returns what it has to say (log lines, callbacks) as a function: the
    engine calls it with the check's logging held and hands the records over; one
    that returns None costs no held logging. One that raises is logged and the others
    still run; an interrupt is raised to the caller once its line is out."""
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-owed")
    owed: list[str] = []
    engine.watch(lambda snapshot: lambda: mtls_log.warning("watcher says %s", "hello"))
    engine.watch(lambda snapshot: lambda: owed.append("second"))
    engine.watch(lambda snapshot: None)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert engine.check() is False
    assert [r.getMessage() for r in caplog.records] == ["watcher says hello"]
    assert owed == ["second"]

    def raising(snapshot: FileSnapshot) -> None:
        raise RuntimeError("a watcher's bug")

    engine.watch(raising)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert engine.check() is False
    said = [r.getMessage() for r in caplog.records]
    assert said == ["watcher says hello", "mtls: a reload watcher raised; carrying on"]
    assert caplog.records[1].exc_info is not None and owed == ["second", "second"]

    def interrupted(snapshot: FileSnapshot) -> None:
        raise KeyboardInterrupt

    engine.watch(interrupted)
    after: list[int] = []
    engine.watch(lambda snapshot: after.append(snapshot.generation))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"), pytest.raises(KeyboardInterrupt):
        engine.check()
    # The caller's Ctrl-C is raised to it, not logged as a watcher's fault carried on
    # from (it was, at ERROR with a traceback: h184); the buggy watcher still is.
    assert [r.getMessage() for r in caplog.records] == [
        "watcher says hello",
        "mtls: a reload watcher raised; carrying on",
    ]
    assert "a watcher's bug" in str(caplog.records[1].exc_info)
    # The interrupt stops the watchers after it; those before it still say what they owe.
    assert after == [] and owed == ["second"] * 3
    engine.close()


def test_an_interrupt_from_what_one_watcher_owes_leaves_the_others_said(tmp_path, caplog):
    """Each watcher judged before what they owe is called: an interrupt from one's
    would lose the others' announcements for good. All are called, then it is raised."""
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-owed-interrupt")
    said: list[str] = []

    def interrupting() -> None:
        raise KeyboardInterrupt

    engine.watch(lambda snapshot: interrupting)
    engine.watch(lambda snapshot: lambda: said.append("second"))
    with caplog.at_level(logging.WARNING, logger="mtls"), pytest.raises(KeyboardInterrupt):
        engine.check()
    assert said == ["second"]
    assert caplog.records == []  # raised to the caller, not logged as carried on from
    engine.close()


def test_a_check_in_which_nothing_moved_reads_nothing_and_one_that_moved_looks(
    tmp_path, monkeypatch
):
    """The quiet check (every watched file's stat as recorded) makes no Reading; a stat
    that moved (the same bytes touched), force, or a pending snapshot gets the full
    check, which hashes and finds nothing changed."""
    from mtls import _engine

    made: list[Reading] = []

    class Counted(Reading):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    monkeypatch.setattr(_engine, "Reading", Counted)
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    stats_settled(path)  # a stat taken within its change's clock tick is read again
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-quiet")
    made.clear()
    assert engine.check() is False and engine.check() is False
    assert made == []
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    stats_settled(path)
    assert engine.check() is False and len(made) == 1  # looked, same bytes
    assert engine.check() is False and len(made) == 1  # recorded: quiet again
    assert engine.check(force=True) is False and len(made) == 2
    replace_atomically(path, b"two")
    stats_settled(path)
    assert engine.check() is True and len(made) == 3
    # A snapshot a check left pending (a file caught mid-write, say) is looked at in
    # full next time, though every stat it read is recorded.
    plan_check, leave_pending = FilePlan.check, [True]

    def pending(self: FilePlan, reading: Reading, old: FileSnapshot) -> Outcome[FileSnapshot]:
        outcome = plan_check(self, reading, old)
        marked = dataclasses.replace(outcome.snapshot, pending=leave_pending[0])
        return Outcome(marked, outcome.changed)

    monkeypatch.setattr(FilePlan, "check", pending)
    assert engine.check(force=True) is False and engine.snapshot.pending and len(made) == 4
    leave_pending[0] = False
    assert engine.check() is False and not engine.snapshot.pending and len(made) == 5
    assert engine.check() is False and len(made) == 5  # quiet again
    engine.close()


def test_an_unexpected_error_in_a_quiet_check_is_kept_as_the_full_check_keeps_it(
    tmp_path, monkeypatch
):
    """Whatever the quiet check's stats raise goes to the full check, which keeps the
    last good with the error (reload() never raises for it), and looks again next time."""
    from mtls import _reading

    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-quiet-error")

    def broken(named: object) -> list[tuple[int, ...]]:
        raise RuntimeError("a stat that broke")

    with monkeypatch.context() as patch:
        patch.setattr(_reading, "stat_keys", broken)
        assert engine.check() is False
    assert "a stat that broke" in str(engine.snapshot.errors[0]) and engine.snapshot.pending
    assert engine.snapshot.digest == sha(b"one")  # the last good
    assert engine.check() is False and not engine.snapshot.errors  # looked again: well
    engine.close()


def _stalling_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[Engine[Any], threading.Event, threading.Event]:
    """An engine on one file whose stat, outside the main thread, hangs (a hung network
    mount) until ``release`` is set (``entered`` says it is hanging); STALLED_AFTER made
    0.05 s."""
    from mtls import _engine

    monkeypatch.setattr(_engine, "STALLED_AFTER", 0.05)
    path = tmp_path / "material.bin"
    path.write_bytes(b"one")
    engine: Engine[Any] = Engine(FilePlan(path), settle_delay=0, interval=None, name=name)
    entered, release = threading.Event(), threading.Event()
    real_stat = os.stat
    main = threading.current_thread()

    def hung(name: object, *args: object, **kwargs: object) -> os.stat_result:
        if name == str(path) and threading.current_thread() is not main:
            entered.set()
            release.wait(30)
        return real_stat(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", hung)
    return engine, entered, release


def test_a_quiet_check_whose_stat_does_not_return_is_a_stalled_check(tmp_path, monkeypatch):
    """A stat on a hung network mount holds the quiet check too: it is a check in
    progress (stalled_for() says so past STALLED_AFTER), and none once it returns."""

    engine, entered, release = _stalling_engine(tmp_path, monkeypatch, "test-quiet-stall")
    answers: list[bool] = []
    checking = threading.Thread(target=lambda: answers.append(engine.check()))
    checking.start()
    try:
        assert entered.wait(30)
        stalled = wait_for(engine.stalled_for)
        assert stalled is not None and stalled >= 0.05
    finally:
        release.set()
        checking.join(30)
    assert answers == [False] and engine.stalled_for() is None
    engine.close()


def test_a_stalled_check_that_returns_is_said_to_have_returned(tmp_path, monkeypatch, caplog):
    """status() says a stalled check once ("no file is rotated until it does"); its end
    was never said, where every other failure has its resolved: line (h276). The twin:
    a check that was never said to stall says nothing when it ends."""

    engine, entered, release = _stalling_engine(tmp_path, monkeypatch, "test-stall-resolved")
    with caplog.at_level("WARNING", logger="mtls"):
        checking = threading.Thread(target=engine.check)
        checking.start()
        try:
            assert entered.wait(30)
            assert wait_for(lambda: engine.stall_error("the set")) is not None
        finally:
            release.set()
            checking.join(30)
        said = wait_for(lambda: "resolved: the check that had stalled" in caplog.text)
        assert said, caplog.text
        assert "the set: resolved: the check that had stalled returned after" in caplog.text
        # The twin: a stall nobody was told of ends in silence.
        caplog.clear()
        entered.clear()
        release.clear()
        checking = threading.Thread(target=engine.check)
        checking.start()
        assert entered.wait(30)
        release.set()
        checking.join(30)
        # Nor does a stall the set was closed during: nothing is rotated any more (h277).
        entered.clear()
        release.clear()
        checking = threading.Thread(target=engine.check)
        checking.start()
        assert entered.wait(30)
        assert wait_for(lambda: engine.stall_error("the set")) is not None
        engine.close()
        release.set()
        checking.join(30)
    assert "resolved" not in caplog.text


def test_a_stall_said_where_no_relay_thread_starts_holds_up_no_other_status(tmp_path, monkeypatch):
    """Where no relay thread can start (the thread limit, interpreter shutdown), the
    stall's warning is handled on the thread that found it: a handler blocked there
    held the lock every other status() and the check's end wait on (h281). The twin
    of the blocking: the warning is still said, and its resolved: line after it."""
    engine, entered, release = _stalling_engine(tmp_path, monkeypatch, "test-stall-inline")
    from mtls import _engine

    monkeypatch.setattr(_engine, "start_unlocked", lambda thread: False)  # none starts
    blocked, unblock = threading.Event(), threading.Event()
    said: list[str] = []

    class Stuck(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())
            if "the check in progress" in record.getMessage():
                blocked.set()
                unblock.wait(30)

    handler = Stuck(logging.WARNING)
    logging.getLogger("mtls").addHandler(handler)
    try:
        checking = threading.Thread(target=engine.check)
        checking.start()
        assert entered.wait(30)
        wait_for(engine.stalled_for)
        first = threading.Thread(target=lambda: engine.stall_error("the set"))
        first.start()
        assert blocked.wait(30)  # the first status() is in the blocked handler
        answered: list[object] = []
        other = threading.Thread(target=lambda: answered.append(engine.stall_error("the set")))
        other.start()
        other.join(5)
        assert answered, "another status() waited on the blocked handler"
        release.set()
        checking.join(5)
        assert not checking.is_alive(), "the check's end waited on the blocked handler"
        unblock.set()
        first.join(30)
        wait_for(lambda: any("resolved: the check that had stalled" in m for m in said))
        warning = next(i for i, m in enumerate(said) if "the check in progress" in m)
        resolved = next(i for i, m in enumerate(said) if "resolved: the check" in m)
        assert warning < resolved
    finally:
        unblock.set()
        release.set()
        logging.getLogger("mtls").removeHandler(handler)
        engine.close()


def test_a_loaded_entry_is_what_the_constructor_makes() -> None:
    """``Built.loaded`` sets the slots directly (a check makes one per profile): it must
    make what ``Built(profile, served)`` makes, field for field (a new field fails here),
    and stay frozen."""
    from mtls._snapshot import Built

    given = mtls.SSLProfile(servers="backend:8243")
    served = object()  # Built holds it; nothing here reads it
    fast, public = Built.loaded(given, served), Built(given, served)  # type: ignore[arg-type]
    for item in dataclasses.fields(Built):
        assert getattr(fast, item.name) is getattr(public, item.name), item.name
    assert fast == public and hash(fast) == hash(public)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.error = None  # type: ignore[misc]


def test_runs_of_profiles_on_different_materials_each_get_their_own_contexts(
    tmp_path: Path, ca: CA
) -> None:
    """The index reads a material's contexts once per run of profiles on it: when runs
    alternate (A, B, a failed one, A), each host still gets its own material's context,
    and under DefaultAndLocalhost the localhost names get that material's localhost
    variant (no name check), never another material's; a failed profile's hosts are
    refused, not served by the run before it."""
    a = write_identity(ca.issue_cert("a", common_name="client a"), tmp_path / "a.jks")
    b = write_identity(ca.issue_cert("b", common_name="client b"), tmp_path / "b.jks")
    trust = write_trust(ca, tmp_path / "trust.jks")
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(
            profile("a1.test:1,localhost:1", a, trust),
            profile("b1.test:2,127.0.0.1:2", b, trust),
            profile("gone.test:3,localhost:3", tmp_path / "missing.jks", trust),
            profile("a2.test:4,localhost:4", a, trust),
            profile("b2.test:5,localhost:5", b, trust),
        )
    )
    profiles = SSLProfileSet.from_xml(
        xml, hostname_verifier="DefaultAndLocalhost", skip_failures=True
    )
    try:
        get = profiles.context_for
        a_main, a_local = get("a1.test", 1), get("localhost", 1)
        b_main, b_local = get("b1.test", 2), get("127.0.0.1", 2)
        assert a_main is not None and a_local is not None
        assert b_main is not None and b_local is not None
        assert len({id(a_main), id(a_local), id(b_main), id(b_local)}) == 4
        assert a_main.check_hostname and b_main.check_hostname
        assert not a_local.check_hostname and not b_local.check_hostname
        assert (get("a2.test", 4), get("localhost", 4)) == (a_main, a_local)
        assert (get("b2.test", 5), get("localhost", 5)) == (b_main, b_local)
        # The failed profile between the runs: its hosts are refused, not served.
        for host in ("gone.test", "localhost"):
            with pytest.raises(mtls.ProfileUnavailableError, match=r"missing\.jks"):
                get(host, 3)
    finally:
        profiles.close()


def test_known_answers_for_an_unchanged_file_only_while_it_is(tmp_path: Path) -> None:
    """A rebuild takes a store cached by content on the hash the survey knows; a file
    replaced after the survey (a ..data swap mid-check) must not be: an old keystore
    went out with a new truststore, a pair never on disk together (a review found it).
    One stat per file and check confirms it."""
    from mtls._reading import FileReader

    path = tmp_path / "store.bin"
    path.write_bytes(b"first")
    stats_settled(path)
    seen, stop = FileReader(), threading.Event()
    first = Reading(seen, 0.0, stop)
    first.survey([path])
    first.settle([path])
    digest = first.read(path)[1]
    first.commit()

    unchanged = Reading(seen, 0.0, stop)
    assert unchanged.survey([path]) == []
    assert unchanged.known(path) == digest  # surveyed unchanged: no read needed

    swapped = Reading(seen, 0.0, stop)
    assert swapped.survey([path]) == []
    replace_atomically(path, b"other")  # after the survey, before the build
    assert swapped.known(path) is None  # the build reads it, and finds it moved
    with pytest.raises(Unstable):
        swapped.read(path)


def test_a_survey_follows_every_change_of_what_was_recorded(tmp_path: Path) -> None:
    """The survey reuses the recorded stats of the paths it watched last time while
    nothing was recorded since: a file recorded anew is not looked at again, and one
    dropped (caught mid-write) or forgotten is, whatever the survey before found."""
    from mtls._reading import FileReader

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    stats_settled(a, b)
    paths = (a, b)  # one tuple from check to check, as a snapshot's watched files
    seen, stop = FileReader(), threading.Event()

    def check() -> list[Path]:
        reading = Reading(seen, 0.0, stop)
        moved = reading.survey(paths)
        reading.settle(moved)
        for path in moved:
            reading.read(path)
        reading.commit()
        return moved

    assert check() == [a, b]  # never recorded
    assert check() == []
    replace_atomically(b, b"b2")
    stats_settled(b)
    assert check() == [b]
    assert check() == []  # b's new stat was recorded, and is the one compared
    seen.drop(a)
    assert Reading(seen, 0.0, stop).survey(paths) == [a]
    assert check() == [a]
    seen.forget([b])
    assert Reading(seen, 0.0, stop).survey(paths) == [a]
    assert Reading(seen, 0.0, stop).survey(paths, force=True) == [a, b]


@pytest.mark.parametrize("seconds", [60, -100], ids=["within-its-second", "long-past"])
def test_a_stat_read_within_its_changes_second_is_looked_at_again(
    tmp_path, monkeypatch, seconds
) -> None:
    """On a file system that keeps whole seconds, a write (or a rename that brings back
    the inode number, as ext4 does) within the second of the change that was read
    leaves size, mtime, ctime and inode as they were: the recorded stat matched for
    good, and a withdrawn CA stayed trusted with status() healthy (h173). Bytes read
    while their change's second had not passed are read again at the next check
    (git's racily clean entries). The twin: a stat whose second had long passed when
    it was read is trusted (a check reads nothing)."""
    import mtls._reading as reading_module

    path = tmp_path / "material.bin"
    path.write_bytes(b"AAAA")
    second = (time.time_ns() // 1_000_000_000 + seconds) * 1_000_000_000
    shown = (4, second, second, 1, 1)  # what such a file system shows, write after write
    monkeypatch.setattr(reading_module, "stat_key", lambda _path: shown)
    monkeypatch.setattr(reading_module, "stat_keys", lambda named: [shown for _ in named])
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-racy")
    assert engine.snapshot.digest == sha(b"AAAA")
    path.write_bytes(b"BBBB")  # the same size, in the same second: the same stat
    if seconds > 0:
        assert engine.check() is True and engine.snapshot.digest == sha(b"BBBB")
    else:
        assert engine.check() is False and engine.snapshot.digest == sha(b"AAAA")
    engine.close()


def test_a_change_time_ahead_of_this_clock_is_read_again_only_for_a_while(
    tmp_path, monkeypatch
) -> None:
    """squashfs (and vfat, some FUSE mounts) report a set mtime as the change time: an
    image whose times are 30 days ahead was read twice at every check for 30 days
    (h175). A stat keeps being read again for RACY_AT_MOST seconds of this process's
    clock (0 here: one check), then is trusted: a check reads nothing."""
    import mtls._reading as reading_module

    path = tmp_path / "material.bin"
    path.write_bytes(b"AAAA")
    ahead = (time.time_ns() // 1_000_000_000 + 30 * 86_400) * 1_000_000_000
    shown = (4, ahead, ahead, 1, 1)
    monkeypatch.setattr(reading_module, "stat_key", lambda _path: shown)
    monkeypatch.setattr(reading_module, "stat_keys", lambda named: [shown for _ in named])
    monkeypatch.setattr(reading_module, "RACY_AT_MOST", 0.0)
    reads: list[Path] = []
    real_read = reading_module.read_input

    def counted(p: Path) -> bytes:
        reads.append(p)
        return real_read(p)

    monkeypatch.setattr(reading_module, "read_input", counted)
    engine = Engine(FilePlan(path), settle_delay=0, interval=None, name="test-ahead")
    reads.clear()
    assert engine.check() is False and reads  # racy: read again, the same bytes
    reads.clear()
    assert engine.check() is False and reads == []  # trusted now
    engine.close()


@pytest.mark.parametrize("seconds_back", [0, 1])  # FAT keeps even seconds: up to 2 s
def test_whole_second_file_times_are_not_taken_as_quiet(
    tmp_path, monkeypatch, seconds_back
) -> None:
    """A file system that keeps whole seconds (ext3, FAT, some NFS servers) shows a
    write at 12.7 s as 12.0 s: the file looked settled at once, and a PEM bundle cut
    at a certificate boundary was built from (a rotation soak found it on an ext4
    made with 128-byte inodes). Such times are now taken to be up to a second later,
    so the file is read twice, and a writer that finishes in between is seen."""
    import mtls._reading as reading_module

    path = tmp_path / "trust.pem"
    path.write_bytes(b"first half")
    now_s = reading_module.time.time_ns() // 1_000_000_000 * 1_000_000_000
    now_s -= seconds_back * 1_000_000_000
    whole = (10, now_s, now_s, 1, 1)  # both times in whole seconds, as such a disk shows
    monkeypatch.setattr(reading_module, "stat_key", lambda _path: whole)
    real_read = reading_module.read_input
    reads: list[bytes] = []

    def read_then_finish(p: Path) -> bytes:
        data = real_read(p)
        reads.append(data)
        p.write_bytes(b"first half, second half")  # the writer finishes after a read
        return data

    monkeypatch.setattr(reading_module, "read_input", read_then_finish)
    reading = Reading(reading_module.FileReader(), 0.0, threading.Event())
    reading.settle([path])
    with pytest.raises(Unstable):
        reading.read(path)
    assert reads[0] == b"first half" and len(reads) == 2
    # The twin: nanosecond times a second old are quiet: one read is enough.
    old = (10, now_s - 2_000_000_001, now_s - 2_000_000_001, 1, 1)
    monkeypatch.setattr(reading_module, "stat_key", lambda _path: old)
    reads.clear()
    quiet = Reading(reading_module.FileReader(), 0.0, threading.Event())
    quiet.settle([tmp_path / "trust.pem"])
    assert quiet.read(path)[0] == b"first half, second half" and len(reads) == 1


_EXIT_WITH_STUCK_CALLBACKS = """
import tempfile, threading
from pathlib import Path
import mtls
from mtls.testing import CA, replace_atomically, write_profiles_file

ca = CA()
entered, stuck, sets = threading.Semaphore(0), threading.Event(), []
for i in range(30):
    d = Path(tempfile.mkdtemp())
    xml = write_profiles_file(d, ["backend.internal:8443"], identity=ca.issue_cert("c"), ca=ca)
    profiles = mtls.SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0)
    profiles.subscribe(lambda old, new: (entered.release(), stuck.wait()))  # never returns
    replace_atomically(d / "client-keystore.jks", ca.issue_cert("c2").keystore().to_bytes("wso2carbon"))
    sets.append(profiles)
for _ in sets:
    entered.acquire()  # every set's callback is stuck
print("main ends", flush=True)
"""


def test_sets_left_open_at_exit_share_one_close_timeout() -> None:
    """Sets left open are closed by weakref.finalize at exit, and each close waited up to
    CLOSE_TIMEOUT for its stuck callback, one after another: 30 sets held the exit
    30 s (h184; a Kubernetes grace period ends in SIGKILL). They share one now. The
    bound is the subprocess's timeout, under the 30 s the old exit needed."""
    done = python_within(_EXIT_WITH_STUCK_CALLBACKS, timeout=25)
    assert done.returncode == 0, done.stderr
    assert "main ends" in done.stdout
