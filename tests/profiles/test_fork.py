"""A profile set or a rotating server made before fork(): the child reloads too.

A forked child has only the thread that forked: without mtls._fork, a set made in a
pre-fork server's parent (an application imported before the workers fork) never
reloaded again in a worker, and said it was fine. Real fork() calls; each child
reports through a pipe and always ends with os._exit."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mtls
from mtls import SSLProfileSet
from mtls.testing import CA, MTLSServer, replace_atomically
from tests._helpers import PASSWORD, jks, profile, profile_xml, wait_for, whoami
from tests.servers._servers import make_estate

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")


def in_child(
    work: Callable[[], dict[str, Any]], timeout: float = 30, *, quiet: bool = True
) -> dict[str, Any]:
    """Run ``work`` in a forked child; what it returned (or raised, as text).

    ``quiet=False``: fork outside ``catch_warnings`` (whose exit, in both processes,
    would put back whatever another thread had swapped in meanwhile); the test then
    silences Python 3.12+'s fork warning itself."""
    read, write = os.pipe()
    if quiet:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock the
            # child: what mtls._fork is about.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    else:
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            try:
                result = work()
            except BaseException as exc:
                result = {"raised": f"{type(exc).__name__}: {exc}"}
            os.write(write, json.dumps(result).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"the child did not answer within {timeout} s (deadlocked?)")
        data = b""
        while chunk := os.read(read, 65536):
            data += chunk
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    return json.loads(data or b"{}")


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="fork CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, ca: CA, backend: MTLSServer) -> tuple[Path, Path]:
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    return xml, keystore


def test_a_set_made_before_fork_reloads_in_the_child(setup, ca, backend) -> None:
    xml, keystore = setup
    with SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0) as profiles:

        def child() -> dict[str, Any]:
            replace_atomically(keystore, jks(ca, "gen-2"))
            wait_for(lambda: profiles.generation == 1, timeout=20)
            ctx = profiles.context_for("localhost", backend.port)
            assert ctx is not None
            return {
                "reloading": profiles.status().reloading,
                "cn": whoami(ctx, backend.port)["client_cn"],
            }

        assert in_child(child) == {"reloading": True, "cn": "gen-2"}
        # The parent's own thread carries on: it sees the child's write too.
        wait_for(lambda: profiles.generation == 1, timeout=20)


def test_a_closed_set_stays_closed_in_the_child(setup, ca) -> None:
    """The twin: what was closed before the fork starts no thread in the child."""
    xml, keystore = setup
    profiles = SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0)
    profiles.close()

    def child() -> dict[str, Any]:
        replace_atomically(keystore, jks(ca, "gen-2"))
        return {"reloading": profiles.status().reloading, "reload": profiles.reload()}

    assert in_child(child) == {"reloading": False, "reload": False}


def test_a_lock_held_at_the_fork_does_not_deadlock_the_child(setup, ca) -> None:
    """Another thread may hold the engine's lock at the moment of fork(); in the child
    nobody would ever release it. Here the forking thread holds it."""
    xml, keystore = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:

        def child() -> dict[str, Any]:
            replace_atomically(keystore, jks(ca, "gen-2"))
            return {"reload": profiles.reload(), "generation": profiles.generation}

        with profiles._engine._lock:  # type: ignore[union-attr]
            result = in_child(child, timeout=20)
        assert result == {"reload": True, "generation": 1}


def test_a_watcher_being_added_at_the_fork_does_not_deadlock_the_child(setup) -> None:
    """The lock that guards the engine's watchers may be held by another thread at
    fork(): the child gets a new one, and can add a watcher and reload."""
    xml, _ = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        engine = profiles._engine
        assert engine is not None

        def child() -> dict[str, Any]:
            seen: list[int] = []
            engine.watch(lambda snapshot: seen.append(snapshot.generation))
            return {"reload": profiles.reload(), "seen": seen}

        with engine._watchers_lock:
            result = in_child(child, timeout=20)
        assert result == {"reload": False, "seen": [0]}


def test_a_check_running_at_the_fork_is_not_a_stall_in_the_child(setup, monkeypatch) -> None:
    """A check another thread ran at the moment of fork() never ends in the child:
    its start time stayed, and the child's status() said "the check in progress has
    run for N s" for good (unhealthy). Here the forking thread is mid-check."""
    from mtls import _engine

    monkeypatch.setattr(_engine, "STALLED_AFTER", 0.0)
    xml, _ = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        engine = profiles._engine
        assert engine is not None
        engine.checking_since = time.monotonic() - 3600  # as a check under way leaves it

        def child() -> dict[str, Any]:
            return {"healthy": profiles.status().healthy}

        result = in_child(child, timeout=20)
        parent = profiles.status()
        engine.checking_since = None
    assert result == {"healthy": True}
    assert not parent.healthy  # the twin: in the parent, that check is still running


def test_a_callback_running_at_the_fork_is_not_running_in_the_child(setup) -> None:
    """The notification thread's record of the callback it is in was copied into the
    child, which has no such thread: its first change warned that the parent's slow
    callback was stuck there. A soak found it; the child starts afresh."""
    xml, _ = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        notifier = profiles._engine.notifier  # type: ignore[union-attr]
        notifier._running = (0.0, "parent.slow")  # as while a callback runs

        def child() -> dict[str, Any]:
            return {"running": notifier._running, "thread": notifier._thread is None}

        result = in_child(child)
        notifier._running = None
    assert result == {"running": None, "thread": True}


def test_health_callbacks_run_one_at_a_time_whichever_thread_delivers() -> None:
    """The reload thread's events went to the notification thread while reload() or
    check_health() delivered their own in the caller's: the same callback ran on two
    threads at once (a soak counted 91 overlaps), where the docs say one at a time."""
    from mtls._health import _deliver

    lock = threading.RLock()
    inside, go, second_in = threading.Event(), threading.Event(), threading.Event()
    calls: list[str] = []

    def callback(event: object) -> None:
        calls.append(str(event))
        if event == "first":
            inside.set()
            go.wait(10)
        else:
            second_in.set()

    first = threading.Thread(target=_deliver, args=(("first",), [callback], None, lock))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=_deliver, args=(("second",), [callback], None, lock))
    second.start()
    assert not second_in.wait(0.3)  # waits for the first to finish (a bounded look)
    go.set()
    first.join(10)
    second.join(10)
    assert calls == ["first", "second"]


def test_a_rotating_server_made_before_fork_reloads_in_the_child(tmp_path: Path) -> None:
    estate = make_estate(tmp_path)
    with mtls.RotatingServerContext(
        estate.keystore, estate.truststore, password=PASSWORD, reload_interval=0.05,
        settle_delay=0,
    ) as server:  # fmt: skip

        def child() -> dict[str, Any]:
            estate.trust(CA(name="another client CA"))  # the client CA withdrawn
            wait_for(lambda: server.generation == 1, timeout=20)
            return {"reloading": server.status().reloading, "context": server.current is not None}

        assert in_child(child) == {"reloading": True, "context": True}
        wait_for(lambda: server.generation == 1, timeout=20)


def test_a_subscriber_that_forks_leaves_both_processes_working(setup, ca) -> None:
    """The child goes on from inside the delivery of a change: the lock the delivery
    took is released in the child too, though mtls._fork renewed it meanwhile."""
    xml, keystore = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        forked: list[int] = []

        def fork_here(old: int, new: int) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                forked.append(os.fork())

        profiles.subscribe(fork_here)
        replace_atomically(keystore, jks(ca, "gen-2"))
        try:
            verdict = 0 if profiles.reload() else 2
        except BaseException:
            verdict = 3
        if forked and forked[0] == 0:
            os._exit(verdict)  # the child ends here, whatever happened
        (pid,) = forked
        statuses: list[int] = []

        def ended() -> bool:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                statuses.append(os.waitstatus_to_exitcode(status))
            return bool(statuses)

        try:
            wait_for(ended, timeout=20)
        finally:
            if not statuses:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        assert verdict == 0  # the parent
        assert statuses == [0]  # the child: its reload() returned True, nothing raised


def test_a_revocation_fetch_under_way_at_the_fork_does_not_hold_the_child(ca) -> None:
    """A thread fetching OCSP or a CRL holds that certificate's gate; in the child
    nobody would release it. Here the forking thread holds one, and the lock."""
    from mtls._revocation import RevocationChecker

    checker = RevocationChecker()
    key = ("issuer", 1)
    gate = checker._gates.setdefault(key, threading.Lock())
    with checker._lock, gate:

        def child() -> dict[str, Any]:
            fresh = checker._gates.setdefault(key, threading.Lock())
            return {
                "lock": checker._lock.acquire(timeout=5),
                "gate": fresh.acquire(timeout=5),
            }

        assert in_child(child, timeout=20) == {"lock": True, "gate": True}


@pytest.mark.filterwarnings("ignore:.*fork:DeprecationWarning")
def test_a_fork_waits_for_the_warnings_turn_of_another_thread() -> None:
    """mtls._x509 puts a filter into the process's warning filters around an unusual
    certificate's parse (a DSA key's too). A child forked while another thread was
    inside would keep the filter for good, its warnings silenced: the fork waits for
    the turn to end."""
    from mtls import _x509  # the module whose turn is taken

    machinery = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
    filters = list(warnings.filters)
    inside, leave = threading.Event(), threading.Event()

    def in_turn() -> None:
        inside.set()
        # Nobody sets it before the fork: the turn ends after a bounded wait, which
        # the fork waits out (without the fix it lands inside the turn).
        leave.wait(1.0)

    def parse_in_turn() -> None:
        _x509._quiet(_x509._CERT_FILTER, in_turn)

    parser = threading.Thread(target=parse_in_turn)
    parser.start()
    try:
        assert inside.wait(10)

        def child() -> dict[str, Any]:
            return {
                "machinery": warnings._showwarnmsg_impl is machinery,  # type: ignore[attr-defined]
                "filters": warnings.filters == filters,
            }

        result = in_child(child, quiet=False)
    finally:
        leave.set()
        parser.join()
    assert result == {"machinery": True, "filters": True}, result
    # Twin: the parent's own machinery is back too, once the turn ended.
    assert warnings._showwarnmsg_impl is machinery  # type: ignore[attr-defined]


def test_a_fork_waits_for_a_log_handler_the_library_is_writing_through() -> None:
    """The log relay thread hands a reload's records to the handlers at times the
    application does not choose. A child forked while a handler was writing inherited
    the stream's lock held by a thread that is not there: its first log line hung for
    good (3-4 % of forks under a rotation stress run). The fork now waits for the
    handler to finish (a second at most)."""
    from mtls import _log

    stream_lock = threading.Lock()  # what a file handler's buffered stream holds
    inside, leave = threading.Event(), threading.Event()

    class Writing(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with stream_lock:
                inside.set()
                # Nobody sets it before the fork: the write ends after a bounded wait,
                # which the fork waits out (without the fix it lands inside the write).
                leave.wait(0.5)

    handler = Writing()
    logger = logging.getLogger("mtls")
    logger.addHandler(handler)
    record = logger.makeRecord("mtls", logging.INFO, __file__, 0, "rotated", (), None)
    relay = threading.Thread(target=_log.emit, args=([record],))
    try:
        relay.start()
        assert inside.wait(10)

        def child() -> dict[str, Any]:
            # The child's first write: the stream's lock must be free.
            return {"wrote": stream_lock.acquire(timeout=5)}

        result = in_child(child)
    finally:
        leave.set()
        relay.join()
        logger.removeHandler(handler)
    assert result == {"wrote": True}, result


def test_emitters_run_side_by_side_and_a_stuck_one_holds_up_one_fork_only() -> None:
    """What fork() waits for must not make the library's writers wait for each other:
    a handler blocked on one thread held every other set's records back. And a writer
    stuck past a fork's wait is not waited for again by the next fork (a pre-fork
    server starting eight workers would wait eight seconds)."""
    from mtls import _log

    emitting = _log.Sections()

    def other() -> None:
        with emitting:
            pass

    with _stuck_writer(emitting):
        beside = threading.Thread(target=other)
        beside.start()
        beside.join(10)
        assert not beside.is_alive()  # ran beside the stuck writer
        # A fork gives up on it after its wait...
        assert emitting.acquire(timeout=0.01)
        emitting.release()
        # ...and the next fork does not wait for the same writer again.
        _assert_fork_does_not_wait(emitting)


@contextlib.contextmanager
def _stuck_writer(emitting: Any) -> Any:
    """A thread inside ``emitting`` (a log handler that blocks) for the block's span."""
    inside, leave = threading.Event(), threading.Event()

    def stuck() -> None:
        with emitting:
            inside.set()
            leave.wait(30)

    blocked = threading.Thread(target=stuck)
    blocked.start()
    try:
        assert inside.wait(10)
        yield
    finally:
        leave.set()
        blocked.join()


def _assert_fork_does_not_wait(emitting: Any) -> None:
    """A fork's wait on ``emitting`` ends at once (bounded: 10 s of its 60)."""
    second = threading.Thread(target=emitting.acquire, kwargs={"timeout": 60})
    second.start()
    second.join(10)
    assert not second.is_alive()
    emitting.release()


def test_a_read_that_logs_nothing_does_not_make_the_next_fork_wait_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every store read and context build hands its log records over when it ends,
    most often none. Handing over none entered the writers' section all the same,
    which counted as a new writer: the next fork waited its whole bound again for the
    one stuck writer it had given up on (h146: 1 s per fork of a pre-fork server)."""
    from mtls import _log

    emitting = _log.Sections()
    monkeypatch.setattr(_log, "EMITTING", emitting)
    with _stuck_writer(emitting):
        assert emitting.acquire(timeout=0.01)  # a fork gives up on the stuck writer
        emitting.release()
        _log.emit([])  # a read that logged nothing
        _assert_fork_does_not_wait(emitting)


def test_a_fallback_transport_under_way_at_the_fork_does_not_hold_the_child(setup) -> None:
    """httpx's MTLSTransport builds the transport for URLs without a profile on first
    use (certifi's bundle: tens of ms). A fork meanwhile left the child's first such
    request waiting forever on that lock."""
    httpx = pytest.importorskip("httpx")
    from mtls.integrations.httpx import MTLSTransport

    xml, _ = setup
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        transport = MTLSTransport(profiles)
        with transport._fallback_lock:

            def child() -> dict[str, Any]:
                return {"fallback": type(transport._fallback_transport()).__name__}

            result = in_child(child, timeout=20)
        assert result == {"fallback": httpx.HTTPTransport.__name__}
        transport.close()


def _integration_locks() -> list[Any]:
    """(owner, attribute) of every lock an integration or a lazy reader owns."""
    return [
        pytest.param("mtls.integrations.uvicorn", "_making", id="uvicorn-extend"),
        pytest.param("mtls.integrations.prometheus", "_registering", id="prometheus-register"),
        pytest.param("mtls.integrations.otel", "_instrumenting", id="otel-instrument"),
        pytest.param("mtls._bks", "_TWOFISH_IMPORT", id="bks-twofish-import"),
    ]


@pytest.mark.parametrize(("module", "name"), _integration_locks())
def test_a_module_lock_held_at_the_fork_is_new_in_the_child(module: str, name: str) -> None:
    """Held by the forking thread here, as another thread might hold it; the child must
    be able to take it (a held lock would never be released there)."""
    extra = {"uvicorn": "uvicorn", "prometheus": "prometheus_client", "otel": "opentelemetry"}
    if module.rpartition(".")[2] in extra:
        pytest.importorskip(extra[module.rpartition(".")[2]])
    owner = importlib.import_module(module)
    lock = getattr(owner, name)
    if name == "_TWOFISH_IMPORT":
        # hold_across_fork: the fork waits for the holder to finish (what it guards, the
        # lent ``imp`` module, must be put back before a child is made). The holder
        # notes that it finished just before letting go: a child made after waiting
        # sees the note, one made inside the turn (a plain renewal) does not.
        holder_in, release = threading.Event(), threading.Event()
        turn = {"finished": False}

        def hold() -> None:
            with lock:
                holder_in.set()
                release.wait(2.0)  # bounded: the fork below waits this out
                turn["finished"] = True

        thread = threading.Thread(target=hold)
        thread.start()
        assert holder_in.wait(10)
        try:
            result = in_child(
                lambda: {
                    "taken": getattr(owner, name).acquire(timeout=5),
                    "waited": turn["finished"],
                }
            )
        finally:
            release.set()
            thread.join()
        assert result == {"taken": True, "waited": True}
        return
    with lock:
        result = in_child(lambda: {"taken": getattr(owner, name).acquire(timeout=5)})
    assert result == {"taken": True}


def test_instance_locks_of_the_integrations_are_new_in_the_child(setup) -> None:
    """The uvicorn context factory, the Prometheus collector and an OpenTelemetry
    reader: each lock held at the fork, each free in the child."""
    xml, _ = setup
    held: list[tuple[object, str]] = []
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        if importlib.util.find_spec("uvicorn") is not None:
            from mtls.integrations.uvicorn import _ContextFactory

            held.append((_ContextFactory(lambda: profiles), "_lock"))  # type: ignore[arg-type]
        if importlib.util.find_spec("prometheus_client") is not None:
            from mtls.integrations.prometheus import ProfileSetCollector

            held.append((ProfileSetCollector(), "_lock"))
        if importlib.util.find_spec("opentelemetry") is not None:
            from mtls.integrations.otel import _Reader

            held.append((_Reader(profiles, "profiles"), "_lock"))
        if not held:
            pytest.skip("none of uvicorn, prometheus_client, opentelemetry is installed")
        with contextlib.ExitStack() as stack:
            for owner, name in held:
                stack.enter_context(getattr(owner, name))
            result = in_child(
                lambda: {"taken": [getattr(owner, name).acquire(timeout=5) for owner, name in held]}
            )
    assert result == {"taken": [True] * len(held)}


def test_a_fork_waits_for_another_threads_work_inside_openssl() -> None:
    """OpenSSL 3 keeps process-wide locks that a thread takes as it reads a store or
    builds a context: a child forked meanwhile inherited one taken, and hung for good
    at its first OpenSSL call (1 to 7 % of forks while a reload thread rebuilt
    contexts). The fork now waits for such work to end; work in other threads runs
    side by side, and a thread inside goes on into more (reentrant)."""
    from mtls import _fork

    inside, leave, beside_done = threading.Event(), threading.Event(), threading.Event()
    state = {"ended": False}

    def build() -> None:
        with _fork.openssl_work():
            inside.set()
            with _fork.openssl_work():  # a context build reads a store: one thread, deeper
                # Nobody sets it before the fork: the work ends after a bounded wait,
                # which the fork waits out (without the fix it lands inside the work).
                leave.wait(1.0)
            state["ended"] = True

    def beside() -> None:
        with _fork.openssl_work():
            beside_done.set()

    builder = threading.Thread(target=build)
    builder.start()
    try:
        assert inside.wait(10)
        other = threading.Thread(target=beside)
        other.start()
        assert beside_done.wait(10)  # ran beside the first (no fork under way)
        other.join(10)
        result = in_child(lambda: {"ended": state["ended"]})
    finally:
        leave.set()
        builder.join()
    assert result == {"ended": True}, result


def test_a_fork_waits_for_a_rotating_server_context_s_rebuild() -> None:
    """``RotatingServerContext`` rebuilds through ``build_server_context``, which was
    not one of the sections a fork waits for: gunicorn and tornado workers forked
    while it rebuilt hung in OpenSSL's locks (h141: 6 to 15 of 400 forks, and
    gunicorn WORKER TIMEOUTs with the docs' setup). The build holds the fork off now:
    a keystore that lingers (bounded) inside it is done before the child exists."""
    from mtls._context import build_server_context
    from mtls.testing import CA

    ca = CA()
    inside, leave = threading.Event(), threading.Event()
    state = {"ended": False}

    class Lingering(mtls.Keystore):
        def key_entry(self, alias: str | None = None) -> Any:
            inside.set()
            leave.wait(1.0)  # nobody sets it before the fork: the fork waits it out
            return super().key_entry(alias)

    keystore = Lingering.from_bytes(ca.issue_cert("localhost").keystore().to_bytes("pw"), "pw")

    def rebuild() -> None:
        build_server_context(keystore, ca.truststore())
        state["ended"] = True

    builder = threading.Thread(target=rebuild)
    builder.start()
    try:
        assert inside.wait(10)
        result = in_child(lambda: {"ended": state["ended"]})
    finally:
        leave.set()
        builder.join()
    assert result == {"ended": True}, result


def test_a_fork_waits_for_openssl_work_before_it_takes_the_locks_that_work_may_need() -> None:
    """A fork took the module locks it holds (the first UBER store's cipher import, the
    warnings turn) in import order, before it waited for OpenSSL work: a store read
    inside that work then waited for the fork's lock and the fork for the read, 10 s,
    after which later forks landed in the read's lazy import and hung. The fork now
    waits for the work first, whatever the import order; and a record logged inside
    the work reaches the handlers after it (no handler runs inside)."""
    from mtls import _bks, _fork, _x509

    inside, got = threading.Event(), {}

    def read_store() -> None:
        with _fork.openssl_work():
            inside.set()
            # Wait (bounded) until a fork is under way, then take what a read may take.
            for _ in range(1000):
                if _fork.openssl_work()._forking:
                    break
                time.sleep(0.005)
            for name, lock in (
                ("twofish", _bks._TWOFISH_IMPORT),
                ("warnings", _x509._WARNINGS_LOCK),
            ):
                got[name] = lock.acquire(timeout=5)
                if got[name]:
                    lock.release()

    reader = threading.Thread(target=read_store)
    reader.start()
    try:
        assert inside.wait(10)
        result = in_child(lambda: {"forked": True})
    finally:
        reader.join(30)
    assert result == {"forked": True}
    assert got == {"twofish": True, "warnings": True}, got


def test_a_child_leaves_a_section_the_fork_came_from_inside_without_the_parents_lock() -> None:
    """A thread that forks from inside a section leaves it in the child on the
    parent's instance (the child's own is new): its lock may have been held by
    another thread at the fork, a thread the child does not have. Leaving must not
    take it (it had hung the child for good)."""
    from mtls import _log

    sections = _log.Sections()  # not registered: the fork's hooks leave it alone
    held, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with sections._cond:
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    with sections:
        holder.start()
        try:
            assert held.wait(10)

            def leave() -> dict[str, Any]:
                sections.__exit__(None, None, None)
                return {"left": True}

            result = in_child(leave, timeout=10)
        finally:
            done.set()
            holder.join(10)
    assert result == {"left": True}
