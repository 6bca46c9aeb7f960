"""Sets and rotating servers inside application servers' process models (h201).

gevent (and eventlet) patched after a set was made: ``gunicorn -k gevent --preload``,
or an application that builds its set at import and patches later. Thread.start() then
runs the new thread as a greenlet on the starting OS thread at once; a notification
thread started while a native lock was held took that lock first and blocked the OS
thread for good: the reload thread hung at its first rotation, its set "healthy", and
close() never returned.

uWSGI forks its workers in C from a master that loaded the application, and runs no
``os.register_at_fork`` hook: every worker kept the master's identity. It calls its
module's ``post_fork_hook`` in each worker, where mtls now renews. The fork here is
that one: ``fork()`` called through ctypes, which runs no Python hook, then the hook,
as uWSGI calls it. Each in a fresh interpreter: patches and raw forks stay out of
pytest's.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path

import pytest

from mtls import _fork
from mtls.testing import CA
from tests._helpers import PASSWORD, jks, profile, profile_xml, python_within


@pytest.fixture
def rotation(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A profile file on a keystore ``gen-1``, and the keystores to rotate to."""
    ca = CA(name="app server CA")
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(trust, PASSWORD)
    generations = []
    for n in (2, 3):
        generations.append(tmp_path / f"gen-{n}.jks")
        generations[-1].write_bytes(jks(ca, f"gen-{n}"))
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile("backend.example:8443", keystore, trust)))
    return xml, generations


# Rotates the keystore to each generation in turn and waits (bounded) for the set to
# serve it: "gen-2 gen-3 closed" when every rotation went in and close() returned.
_ROTATE = """
def rotate(profiles, keystore, generations, sleep):
    import time
    seen = []
    for path in generations:
        name = path.stem
        replace_atomically(keystore, path.read_bytes())
        deadline = time.monotonic() + 60
        while name not in (profiles.status().profiles[0].subject or ""):
            if time.monotonic() > deadline:
                print("stuck before", name, flush=True)
                raise SystemExit(1)
            sleep(0.05)
        seen.append(name)
    profiles.close()
    print(*seen, "closed", flush=True)
"""


@pytest.mark.skipif(importlib.util.find_spec("gevent") is None, reason="no gevent")
@pytest.mark.parametrize("patched", ["after the set was made", "before"])
def test_a_set_made_before_gevent_patches_reloads_and_closes(
    rotation: tuple[Path, list[Path]], patched: str
) -> None:
    """The first rotation went in; every later one hung the reload thread, and close()
    with it (h201). The twin: a set made after the patch (gevent's own advice)."""
    xml, generations = rotation
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        + ("from gevent import monkey; monkey.patch_all()\n" if patched == "before" else "")
        + "import mtls\n"
        "from mtls.testing import replace_atomically\n"
        + _ROTATE
        + "xml, keystore, *generations = map(Path, sys.argv[1:])\n"
        "profiles = mtls.SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0)\n"
        + ("from gevent import monkey; monkey.patch_all()\n" if patched != "before" else "")
        + "import gevent\n"
        "rotate(profiles, keystore, generations, gevent.sleep)\n"
    )
    done = python_within(script, xml, xml.parent / "gw.jks", *generations)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split()[-3:] == ["gen-2", "gen-3", "closed"], done.stdout


def test_uwsgi_s_post_fork_hook_renews_a_set_made_in_the_master(
    rotation: tuple[Path, list[Path]],
) -> None:
    """A worker forked in C (no at-fork hook of Python's runs) kept the master's
    identity: its reload thread is not there, and threading still lists it. uWSGI's
    post_fork_hook starts it again; called twice (``--py-call-osafterfork`` runs
    Python's hooks too), it renews once. The master's own thread goes on."""
    xml, generations = rotation
    script = (
        "import ctypes, os, sys, threading, types\n"
        "from pathlib import Path\n"
        "sys.modules['uwsgi'] = uwsgi = types.ModuleType('uwsgi')  # as uWSGI builds it in\n"
        "import mtls\n"
        "from mtls.testing import replace_atomically\n"
        + _ROTATE
        + "xml, keystore, *generations = map(Path, sys.argv[1:])\n"
        "profiles = mtls.SSLProfileSet.from_xml(xml, reload_interval=0.05, settle_delay=0)\n"
        "pid = ctypes.PyDLL(None).fork()  # C's fork, the GIL held: what uWSGI's master does\n"
        "if pid == 0:\n"
        "    uwsgi.post_fork_hook()\n"
        "    uwsgi.post_fork_hook()\n"
        "    tasks = set(map(int, os.listdir('/proc/self/task')))  # the child's live threads\n"
        "    live = [t for t in threading.enumerate() if t.native_id in tasks]\n"
        "    print('reload threads', sum('reloader' in t.name for t in live), flush=True)\n"
        "    import time\n"
        "    try:\n"
        "        rotate(profiles, keystore, generations, time.sleep)\n"
        "    finally:\n"
        "        os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child exit', os.waitstatus_to_exitcode(status), flush=True)\n"
        "import time\n"
        "deadline = time.monotonic() + 60  # the master's own thread sees it too\n"
        "while 'gen-3' not in profiles.status().profiles[0].subject and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('master', profiles.status().profiles[0].subject.split(',')[0], flush=True)\n"
    )
    done = python_within(script, xml, xml.parent / "gw.jks", *generations)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "reload threads 1" in lines, done.stdout  # renewed once, not twice
    assert "gen-2 gen-3 closed" in lines, done.stdout + done.stderr
    assert "child exit 0" in lines
    assert lines[-1] == "master CN=gen-3", done.stdout  # the master's thread saw it too


def test_the_uwsgi_hook_goes_first_and_keeps_the_ones_set_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hook chains: one the application set before mtls was imported still runs,
    after mtls's renewal; ``uwsgidecorators``' chain is joined when it is loaded. Out
    of uWSGI nothing is set."""
    calls: list[str] = []
    monkeypatch.setattr(_fork, "_after_uwsgi_fork", lambda: calls.append("mtls"))
    fake = types.ModuleType("uwsgi")
    fake.post_fork_hook = lambda: calls.append("application")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    _fork.hook_uwsgi()
    _fork.hook_uwsgi()  # a second import of the hook changes nothing
    fake.post_fork_hook()  # type: ignore[attr-defined]
    assert calls == ["mtls", "application"]

    # uwsgidecorators sets its chain's hook as it is imported: mtls joins the chain.
    decorators = types.ModuleType("uwsgidecorators")
    decorators.postfork_chain = [print]  # type: ignore[attr-defined]
    decorators.postfork_chain_hook = lambda: None  # type: ignore[attr-defined]
    fake.post_fork_hook = decorators.postfork_chain_hook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgidecorators", decorators)
    _fork.hook_uwsgi()
    assert decorators.postfork_chain == [_fork._after_uwsgi_fork, print]  # type: ignore[attr-defined]
    # An application that set its own hook over that one leaves the chain uncalled
    # (h205): mtls goes before the application's hook.
    calls.clear()
    fake.post_fork_hook = lambda: calls.append("application")  # type: ignore[attr-defined]
    _fork.hook_uwsgi()
    fake.post_fork_hook()  # type: ignore[attr-defined]
    assert calls == ["mtls", "application"]

    monkeypatch.delitem(sys.modules, "uwsgi")
    _fork.hook_uwsgi()  # out of uWSGI: no import tried
    assert "uwsgi" not in sys.modules


def test_work_handed_over_while_its_thread_starts_is_not_stranded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads start after the lock is let go (for gevent, above): work handed over in
    that window, once the new thread has found nothing left and ended, must get a
    thread of its own, not wait in the queue for the next notification."""
    import threading

    from mtls import _engine
    from tests._helpers import wait_for

    notifier = _engine.Notifier("mtls-test-notify")
    ran: list[int] = []
    handed = threading.Event()
    real = _engine.start_unlocked

    def starting(thread: threading.Thread) -> bool:
        started = real(thread)
        thread.join(10)  # it ran what was queued, and ended
        if not handed.is_set():
            handed.set()
            notifier.submit(lambda: ran.append(2))  # while the first is "starting"
        return started

    monkeypatch.setattr(_engine, "start_unlocked", starting)
    notifier.submit(lambda: ran.append(1))
    wait_for(lambda: ran == [1, 2], timeout=10)
    notifier.close(1)


def test_an_interrupted_thread_start_leaves_the_next_hand_over_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt inside Thread.start() (Ctrl-C while it waits for the thread
    to run) left the notifier "starting" for good: nothing handed over later ran
    (h204). The application catches it; the next hand-over starts a thread."""
    import threading

    from mtls import _engine
    from tests._helpers import wait_for

    notifier = _engine.Notifier("mtls-test-notify")
    ran: list[int] = []
    real = _engine.start_unlocked
    interrupted: list[bool] = []

    def starting(thread: threading.Thread) -> bool:
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        return real(thread)

    monkeypatch.setattr(_engine, "start_unlocked", starting)
    with pytest.raises(KeyboardInterrupt):
        notifier.submit(lambda: ran.append(1))
    notifier.submit(lambda: ran.append(2))
    wait_for(lambda: ran == [1, 2], timeout=10)
    notifier.close(1)


def test_work_no_thread_can_take_runs_on_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no worker thread can start (the process's thread limit, interpreter
    shutdown) and none runs, the work runs on the caller's thread and its future is
    done when submit() returns, with the work's exception: a revocation check or a
    context build is not left waiting for a thread that never comes."""
    import threading

    from mtls import _workers

    monkeypatch.setattr(_workers, "start_unlocked", lambda thread: False)
    workers = _workers.DaemonWorkers(2, "mtls-test-workers")
    ran_on: list[str] = []
    done = workers.submit(lambda: ran_on.append(threading.current_thread().name))
    assert done.done() and done.exception() is None
    assert ran_on == [threading.current_thread().name]

    def fails() -> None:
        raise OSError("no responder")

    failed = workers.submit(fails)
    assert failed.done() and isinstance(failed.exception(), OSError)


def test_an_interrupted_worker_start_is_not_counted_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt inside a worker thread's start() left it counted: at the
    limit, nothing submitted later ever ran. The next submit starts a thread, which
    takes what was queued before too."""
    import threading

    from mtls import _workers

    real = _workers.start_unlocked
    calls: list[int] = []

    def starting(thread: threading.Thread) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(thread)

    monkeypatch.setattr(_workers, "start_unlocked", starting)
    workers = _workers.DaemonWorkers(1, "mtls-test-workers")
    ran: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        workers.submit(lambda: ran.append(1))
    later = workers.submit(lambda: ran.append(2))
    later.result(timeout=10)
    assert sorted(ran) == [1, 2]


def test_close_while_a_thread_is_being_started_does_not_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread is made under the lock and started after it: a close() in between
    joined a thread not yet started, "cannot join thread before it is started" (h205).
    It returns; the thread, started after, finds the notifier closed."""
    import threading

    from mtls import _engine

    notifier = _engine.Notifier("mtls-test-notify")
    relay = _engine.LogRelay("mtls-test-log")
    real = _engine.start_unlocked
    ran: list[int] = []

    def starting(thread: threading.Thread) -> bool:
        notifier.close(1)  # another thread closing, between the lock and the start
        relay.close(1)
        return real(thread)

    monkeypatch.setattr(_engine, "start_unlocked", starting)
    notifier.submit(lambda: ran.append(1))
    record = logging.LogRecord("mtls.test", logging.DEBUG, __file__, 1, "x", None, None)
    assert relay.submit([record]).wait(10)  # handled once its thread runs
    assert ran == []  # closed before it ran: delivered nothing more
