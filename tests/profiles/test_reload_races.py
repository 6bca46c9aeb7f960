"""Hardening of the reload engine and the profile set (issues 11 and 12).

Races pinned deterministically (the soak in test_soak_reload.py finds them by chance):
every byte string that is built has been settled (11.14), and what is recorded as
seen is exactly what was built (11.15). Then: the reload thread survives anything
(11.16), close() interrupts a check (11.3), bounded reads (11.5), repr() of a
half-built set (11.17), deployment.toml's default under skip_failures (11.21), failed
profiles fail closed (12), and each reload failure is warned once (12).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

import mtls
import mtls._log
import mtls._reading as reading_module
from mtls import (
    Keystore,
    KeystoreError,
    KeystoreFormatError,
    ProfileConfigError,
    ProfileUnavailableError,
    SSLProfileSet,
)
from mtls._files import MAX_INPUT_BYTES
from mtls.testing import CA, MTLSServer, replace_atomically
from tests._helpers import (
    PASSWORD,
    jks,
    profile,
    profile_xml,
    raising_log_handler,
    wait_for,
    whoami,
)


@pytest.fixture(scope="module")
def root() -> CA:
    return CA(name="hardening root")


@pytest.fixture(scope="module")
def inter(root: CA) -> CA:
    return root.create_child_ca(name="hardening intermediate")


@pytest.fixture(scope="module")
def backend(root: CA):
    # Trusts only the root: a client chain without the intermediate is refused.
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        yield server


def pem_parts(ca: CA, cn: str) -> tuple[bytes, bytes]:
    """A PEM keystore in two parts; the first (key and leaf) parses on its own."""
    identity = ca.issue_cert(cn, common_name=cn)
    return identity.private_key_pem + identity.cert_pem, ca.cert_pem


def cn_of(profiles: SSLProfileSet, port: int, host: str = "localhost") -> str:
    ctx = profiles.context_for(host, port)
    assert ctx is not None
    return str(whoami(ctx, port, host=host)["client_cn"])


def write_set(tmp_path: Path, root: CA, *entries: tuple[str, str, bytes | None]):
    """trust.jks (the root), each ``(servers, store file name, content or None for a
    missing file)``, and p.xml naming them (``.pem`` stores as PEM).

    Returns:
        ``(xml, {file name: path})``.
    """
    trust = tmp_path / "trust.jks"
    root.write_truststore(trust, PASSWORD)
    paths: dict[str, Path] = {}
    texts = []
    for servers, name, data in entries:
        path = paths[name] = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        text = profile(servers, path, trust)
        if name.endswith(".pem"):
            text = text.replace("<Type>JKS", "<Type>PEM", 1)
        texts.append(text)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(*texts))
    return xml, paths


class HookedWait(threading.Event):
    """Stands in for the settle wait: runs a pending action (a writer finishing) in it."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: Callable[[], object] | None = None
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        action, self.pending = self.pending, None
        if action is not None:
            action()
        return False


def on_parse(monkeypatch, action: Callable[[bytes], object]) -> None:
    """Run ``action(data)`` at each keystore parse, before parsing."""
    original = Keystore._read.__func__  # type: ignore[attr-defined]

    def hooked(cls, data, *args, **kwargs):
        action(data)
        return original(cls, data, *args, **kwargs)

    monkeypatch.setattr(Keystore, "_read", classmethod(hooked))


# --------------------------------------------------------------------------- 11.14 / 11.15


def test_a_store_recreated_during_a_check_is_settled_before_it_is_built(
    tmp_path, root, inter, backend, monkeypatch
):
    """11.14: missing when the check began, recreated half-way through it (key and
    leaf, without the intermediate: it parses) - it must be read twice, not once."""
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "a.jks", jks(inter, "a-1")),
        (f"127.0.0.1:{backend.port}", "d.pem", b"".join(pem_parts(inter, "d-1"))),
    )
    a, d = paths["a.jks"], paths["d.pem"]
    # A settle delay longer than the test: every file written in it is "fresh" and read
    # twice; the wait itself is the stand-in and returns at once. (Set after the first
    # load, which would wait it out for the files just written.)
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    profiles._engine._delay = 60
    hook = HookedWait()
    monkeypatch.setattr(reading_module, "_pause", lambda stop, delay: hook.wait(delay))
    assert cn_of(profiles, backend.port, "127.0.0.1") == "d-1"

    d.unlink()  # delete ...
    assert profiles.reload() is False
    assert "no such keystore" in str(profiles.last_error)

    first, rest = pem_parts(inter, "d-2")
    replace_atomically(a, jks(inter, "a-2"))

    def recreate_half(data: bytes) -> None:
        if not d.exists():
            d.write_bytes(first)  # ... then recreate, half-way through this check
            hook.pending = lambda: d.write_bytes(first + rest)  # done within the delay

    on_parse(monkeypatch, recreate_half)
    assert profiles.reload() is True  # a-2 applied; d.pem changed between its reads
    assert cn_of(profiles, backend.port) == "a-2"
    # The half file was never installed: the backend still accepts the old identity.
    assert cn_of(profiles, backend.port, "127.0.0.1") == "d-1"
    assert profiles.reload() is True  # stable now: installed whole
    assert cn_of(profiles, backend.port, "127.0.0.1") == "d-2"
    assert profiles.last_error is None


def test_a_store_replaced_while_other_profiles_build_is_not_lost(
    tmp_path, root, inter, backend, monkeypatch
):
    """11.15: b.jks replaced while the check builds a's profile. Whatever this check
    serves for b, the next check must see the newest file (not believe it seen)."""
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "a.jks", jks(inter, "a-1")),
        (f"127.0.0.1:{backend.port}", "b.jks", jks(inter, "b-1")),
    )
    a, b = paths["a.jks"], paths["b.jks"]
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(a, jks(inter, "a-2"))
    replace_atomically(b, jks(inter, "b-2"))
    b3 = jks(inter, "b-3")
    replaced: list[bool] = []

    def replace_b_once(data: bytes) -> None:
        if not replaced:
            replaced.append(True)
            replace_atomically(b, b3)

    on_parse(monkeypatch, replace_b_once)
    assert profiles.reload() is True
    assert replaced
    monkeypatch.undo()
    assert cn_of(profiles, backend.port) == "a-2"
    served = cn_of(profiles, backend.port, "127.0.0.1")
    assert served in {"b-2", "b-3"}  # one whole file or the other, never a mix
    profiles.reload()
    assert cn_of(profiles, backend.port, "127.0.0.1") == "b-3"
    # And nothing further to do: the reader records b-3 as seen.
    assert profiles.reload() is False


def test_a_file_changed_after_being_declared_unchanged_is_not_built_in_that_check(
    tmp_path, root, inter, backend, monkeypatch
):
    """Two profiles share a store: one check must give both the same answer for it."""
    s1 = jks(inter, "s-1")
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "shared.jks", s1),
        ("two.test:443", "other.jks", jks(inter, "o-1")),
        (f"127.0.0.1:{backend.port}", "shared.jks", s1),
    )
    shared, other = paths["shared.jks"], paths["other.jks"]
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(other, jks(inter, "o-2"))
    new_shared = jks(inter, "s-2")
    on_parse(monkeypatch, lambda data: replace_atomically(shared, new_shared))
    profiles.reload()
    monkeypatch.undo()
    first = (cn_of(profiles, backend.port), cn_of(profiles, backend.port, "127.0.0.1"))
    assert first == ("s-1", "s-1")  # this check had declared shared.jks unchanged
    assert profiles.reload() is True
    assert cn_of(profiles, backend.port) == cn_of(profiles, backend.port, "127.0.0.1") == "s-2"


def test_start_up_settles_files_too(tmp_path, root, inter, backend, monkeypatch):
    """A file being written when the set is built is read twice as well."""
    first, rest = pem_parts(inter, "d-1")
    xml, paths = write_set(tmp_path, root, (f"localhost:{backend.port}", "d.pem", first))
    d = paths["d.pem"]
    waits: list[float | None] = []

    class Finish(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            if len(waits) == 2:  # the stores' settle wait: the writer finishes
                d.write_bytes(first + rest)
            return False

    finish = Finish()
    monkeypatch.setattr(reading_module, "_pause", lambda stop, delay: finish.wait(delay))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=60)
    assert len(waits) >= 3  # the half file was read again after the writer finished
    assert cn_of(profiles, backend.port) == "d-1"


# --------------------------------------------------------------------------- 11.16


@pytest.fixture
def one_profile(tmp_path, root, inter, backend):
    trust = tmp_path / "trust.jks"
    root.write_truststore(trust, PASSWORD)
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(jks(inter, "gen-1"))
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    return xml, keystore, trust


def vaulted_xml(xml: Path, keystore: Path, trust: Path, servers: str) -> None:
    text = profile_xml(profile(servers, keystore, trust)).replace(
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>",
        '<Password svns:secretAlias="gw">x</Password>',
    )
    ns = 'xmlns:svns="http://org.wso2.securevault/configuration"'
    replace_atomically(xml, text.replace("<parameter ", f"<parameter {ns} ", 1))


@pytest.mark.parametrize("escape", [asyncio.CancelledError, SystemExit, KeyboardInterrupt])
def test_the_reload_thread_survives_a_resolver_raising_a_base_exception(
    one_profile, backend, inter, escape
):
    xml, keystore, trust = one_profile
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port}")
    mode = {"raise": False}
    checks = threading.Semaphore(0)

    def resolver(alias: str) -> str:
        checks.release()
        if mode["raise"]:
            raise escape("vault client cancelled")
        return PASSWORD

    with SSLProfileSet.from_xml(
        xml, secret_resolver=resolver, reload_interval=0.02, settle_delay=0
    ) as profiles:
        mode["raise"] = True
        # A changed file is parsed again, which calls the resolver.
        vaulted_xml(xml, keystore, trust, f"localhost:{backend.port},extra.test:1")
        wait_for(lambda: profiles.last_error is not None)
        assert escape.__name__ in str(profiles.last_error)
        assert isinstance(profiles.last_error.__cause__, escape)
        assert profiles.reloading
        assert (
            profiles.status().to_dict()["reloading"] is True
            and profiles.status().to_dict()["healthy"] is False
        )
        assert cn_of(profiles, backend.port) == "gen-1"  # the last good set stays
        mode["raise"] = False
        replace_atomically(keystore, jks(inter, "gen-2"))
        wait_for(
            lambda: (
                profiles.last_error is None
                and "CN=gen-2," in f"{profiles.status().to_dict()['profiles'][0]['subject']},"
            )
        )
        assert cn_of(profiles, backend.port) == "gen-2"
        assert profiles.reloading


def test_a_manual_reload_records_then_reraises_keyboard_interrupt(one_profile, backend):
    xml, keystore, trust = one_profile
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port}")
    mode = {"raise": False}

    def resolver(alias: str) -> str:
        if mode["raise"]:
            raise KeyboardInterrupt
        return PASSWORD

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=resolver, settle_delay=0)
    mode["raise"] = True
    vaulted_xml(xml, keystore, trust, "localhost:1")
    with pytest.raises(KeyboardInterrupt):
        profiles.reload()  # Ctrl-C still interrupts the caller ...
    assert "KeyboardInterrupt" in str(profiles.last_error)  # ... and it is recorded
    assert profiles.context_for("localhost", backend.port) is not None
    # An ordinary failure never raises from reload().
    mode["raise"] = False
    replace_atomically(keystore, b"garbage")
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port}")
    assert profiles.reload() is False
    assert isinstance(profiles.last_error, KeystoreError)


def test_a_subscriber_raising_cancelled_error_does_not_kill_the_thread(one_profile, inter):
    xml, keystore, _ = one_profile
    calls: list[int] = []

    def bad(old: int, new: int) -> None:
        calls.append(new)
        raise asyncio.CancelledError

    with SSLProfileSet.from_xml(xml, reload_interval=0.02, settle_delay=0) as profiles:
        profiles.subscribe(bad)
        for generation in (1, 2):
            replace_atomically(keystore, jks(inter, f"gen-{generation + 1}"))
            wait_for(lambda g=generation: calls and calls[-1] >= g)
        assert profiles.reloading


@pytest.mark.parametrize(
    "value",
    [0, -1, 9223372036854775807, math.inf, math.nan, threading.TIMEOUT_MAX * 2, "10", True],
)
def test_reload_interval_is_validated_when_configured(one_profile, value):
    xml, _, _ = one_profile
    with pytest.raises(ValueError, match=r"reload_interval must be .* up to 9223372036") as info:
        SSLProfileSet.from_xml(xml, reload_interval=value)
    assert repr(value) in str(info.value)
    assert not [t for t in threading.enumerate() if t.name == "mtls-reloader-p.xml"]


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, 1e300])
def test_settle_delay_is_validated_when_configured(one_profile, value):
    xml, _, _ = one_profile
    with pytest.raises(ValueError, match=r"settle_delay must be a number of seconds from 0"):
        SSLProfileSet.from_xml(xml, settle_delay=value)


def test_valid_interval_extremes_are_accepted(one_profile):
    xml, _, _ = one_profile
    with SSLProfileSet.from_xml(xml, reload_interval=threading.TIMEOUT_MAX) as profiles:
        assert profiles.reloading
    assert not profiles.reloading
    assert SSLProfileSet.from_xml(xml, settle_delay=0).last_error is None


def test_deployment_toml_interval_out_of_range_names_the_key(tmp_path, one_profile):
    xml, _, _ = one_profile
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{xml}"\ninterval = 9223372036854775807\n'
    )
    with pytest.raises(ProfileConfigError, match="interval") as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    assert info.value.element == "interval" and str(toml) in str(info.value)
    toml.write_text(
        f'[transport.passthru_https.sender.ssl_profile]\nfile_path = "{xml}"\ninterval = 1000\n'
    )
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
        assert profiles.reloading


# --------------------------------------------------------------------------- 11.3


def test_close_interrupts_a_check_at_the_next_safe_point(
    tmp_path, root, inter, backend, monkeypatch
):
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "a.jks", jks(inter, "a-1")),
        (f"127.0.0.1:{backend.port}", "b.jks", jks(inter, "b-1")),
    )
    a, b = paths["a.jks"], paths["b.jks"]
    profiles = SSLProfileSet.from_xml(xml, reload_interval=0.02, settle_delay=0)
    before = profiles.context_for("localhost", backend.port)
    parsing, release = threading.Event(), threading.Event()
    parsed: list[bytes] = []

    def slow(data: bytes) -> None:  # a store whose parse takes "forever"
        parsed.append(data)
        parsing.set()
        assert release.wait(60)

    on_parse(monkeypatch, slow)
    replace_atomically(a, jks(inter, "a-2"))
    replace_atomically(b, jks(inter, "b-2"))
    assert parsing.wait(30), "the reload thread did not start parsing"
    profiles.close()  # returns while the parse is still blocked: it did not wait for it
    assert not release.is_set()
    assert not profiles.reloading
    release.set()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "mtls-reloader-p.xml"])
    assert len(parsed) == 1  # stopped before the next store: b.jks was never parsed
    assert profiles.generation == 0  # nothing half-built was published
    assert profiles.context_for("localhost", backend.port) is before
    assert profiles.reload() is False  # closed: nothing more
    assert profiles.generation == 0


# --------------------------------------------------------------------------- 11.5


def _hostile(kind: str, tmp_path: Path) -> Path:
    if kind == "dev-zero":
        return Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "store.fifo"
        os.mkfifo(path)  # nobody writes to it: opening it for reading would block
        return path
    path = tmp_path / "huge.jks"
    with open(path, "wb") as fh:
        fh.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
    return path


HOSTILE = ["dev-zero", "fifo", "oversized"]
WHY = {
    "dev-zero": "not a regular file",
    "fifo": "not a regular file",
    "oversized": "larger than 8 MiB",
}


def _in_thread(fn: Callable[[], object]) -> object:
    """Run ``fn`` on a thread and fail (rather than hang) if it blocks."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "blocked on a hostile file"
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_location_is_refused_naming_the_file_and_the_limit(
    tmp_path, root, one_profile, backend, kind
):
    xml, _keystore, trust = one_profile
    hostile = _hostile(kind, tmp_path)
    bad = tmp_path / "bad.xml"
    bad.write_text(profile_xml(profile("bad.test:443", hostile, trust)))
    with pytest.raises(KeystoreError) as info:
        _in_thread(lambda: SSLProfileSet.from_xml(bad))
    assert str(hostile) in str(info.value) and WHY[kind] in str(info.value)
    # Over the size limit is a limit on stores, as docs/security.md's table says
    # (it was the base KeystoreError); a device or pipe is not a store file at all.
    assert isinstance(info.value, KeystoreFormatError) is (kind == "oversized")
    with pytest.raises(KeystoreError) as direct:
        _in_thread(lambda: Keystore.load(hostile, PASSWORD))
    assert isinstance(direct.value, KeystoreFormatError) is (kind == "oversized")
    # skip_failures: reported in failures and status(), refused on lookup.
    profiles = _in_thread(lambda: SSLProfileSet.from_xml(bad, skip_failures=True))
    assert isinstance(profiles, SSLProfileSet)
    ((_, error),) = profiles.failures
    assert str(hostile) in str(error) and WHY[kind] in str(error)
    assert WHY[kind] in profiles.status().to_dict()["profiles"][0]["error"]
    # As a reload: the profile keeps its last good; the check does not block.
    good = SSLProfileSet.from_xml(xml, settle_delay=0)
    replace_atomically(xml, profile_xml(profile(f"localhost:{backend.port}", hostile, trust)))
    ctx = good.context_for("localhost", backend.port)
    assert _in_thread(good.reload) is False  # the same servers: its last good stays
    assert good.context_for("localhost", backend.port) is ctx
    assert WHY[kind] in str(good.last_error) and str(hostile) in str(good.last_error)


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_profile_file_is_refused_naming_the_file_and_the_limit(
    tmp_path, one_profile, backend, kind
):
    xml, _, _ = one_profile
    hostile = _hostile(kind, tmp_path)
    with pytest.raises(ProfileConfigError) as info:
        _in_thread(lambda: SSLProfileSet.from_xml(hostile))
    assert str(hostile) in str(info.value) and WHY[kind] in str(info.value)
    if kind == "dev-zero":
        return  # cannot be swapped in under the profile file's name
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    ctx = profiles.context_for("localhost", backend.port)
    os.replace(hostile, xml)
    assert _in_thread(profiles.reload) is False
    assert isinstance(profiles.last_error, ProfileConfigError)
    assert WHY[kind] in str(profiles.last_error) and str(xml) in str(profiles.last_error)
    assert profiles.context_for("localhost", backend.port) is ctx


# --------------------------------------------------------------------------- 11.17


STAGES = ["verifier", "default", "interval", "reader", "load", "build", "index", "timer"]


@pytest.mark.parametrize("stage", STAGES)
def test_repr_is_safe_at_every_stage_of_construction(one_profile, monkeypatch, stage):
    """Error reporters repr() the locals of a traceback: a constructor that fails at
    any stage leaves a half-built set in its frames, and repr() of it must work."""
    import mtls._build as build_module
    import mtls._engine as engine_module
    import mtls._profiles as profiles_module
    import mtls._snapshot as snapshot_module

    xml, _, _ = one_profile

    def boom(*args, **kwargs):
        raise RuntimeError(f"failed at {stage}")

    kwargs: dict[str, object] = {"reload_interval": 3600}
    if stage == "verifier":
        kwargs["hostname_verifier"] = "Nonsense"
    elif stage == "default":
        kwargs["default"] = "not a context"
    elif stage == "interval":
        kwargs["reload_interval"] = -1
    elif stage == "reader":
        monkeypatch.setattr(engine_module, "FileReader", boom)
    elif stage == "load":
        monkeypatch.setattr(profiles_module._XmlFile, "load", boom)
    elif stage == "build":
        monkeypatch.setattr(build_module.Builder, "build", boom)
    elif stage == "index":
        monkeypatch.setattr(snapshot_module, "build_index", boom)
    else:
        monkeypatch.setattr(engine_module.Timer, "start", boom)
    errors = (RuntimeError, ValueError, TypeError, mtls.MTLSError)
    # The public constructor clears the frames an escaping exception holds (no password
    # or half-built set reaches an error reporter at all)...
    with pytest.raises(errors) as scrubbed:
        SSLProfileSet.from_xml(xml, **kwargs)  # type: ignore[arg-type]
    assert not [
        value
        for frame, _ in traceback.walk_tb(scrubbed.value.__traceback__)
        if frame.f_code.co_filename.startswith(os.path.dirname(mtls.__file__))
        for value in frame.f_locals.values()
        if isinstance(value, SSLProfileSet)
    ]
    # ...and below that, repr() of the half-built set is safe at every stage anyway
    # (the plain constructor and subclasses do not scrub).
    with pytest.raises(errors) as info:
        SSLProfileSet.from_xml.__wrapped__(SSLProfileSet, xml, **kwargs)  # type: ignore[attr-defined]
    halves = [
        value
        for frame, _ in traceback.walk_tb(info.value.__traceback__)
        for value in frame.f_locals.values()
        if isinstance(value, SSLProfileSet)
    ]
    assert halves, "the half-built set is in the traceback's frames"
    for half in halves:
        text = repr(half)
        assert text.startswith("<SSLProfileSet") and PASSWORD not in text
        half.close()  # safe too, and idempotent
    # Rendering the traceback with its locals (what Sentry does) works as well.
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "SSLProfileSet" in rendered and PASSWORD not in rendered


# --------------------------------------------------------------------------- 11.21 and 12


def _toml(tmp_path: Path, xml: Path, keystore: Path, trust: Path) -> Path:
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{xml}"\ninterval = 0\n'
        "[keystore.tls]\n"
        f'file_name = "{keystore}"\npassword = "{PASSWORD}"\nkey_password = "{PASSWORD}"\n'
        "[truststore]\n"
        f'file_name = "{trust}"\npassword = "{PASSWORD}"\n'
    )
    return toml


def test_deployment_toml_default_identity_is_covered_by_skip_failures(
    tmp_path, one_profile, inter, backend
):
    xml, _, trust = one_profile
    missing = tmp_path / "wso2carbon.jks"
    toml = _toml(tmp_path, xml, missing, trust)
    with pytest.raises(KeystoreError, match="default profile") as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    assert "wso2carbon.jks" in str(info.value) and "<Location>" not in str(info.value).split("(")[0]
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, skip_failures=True)
    assert cn_of(profiles, backend.port) == "gen-1"  # the profiles load
    ((failed, error),) = profiles.failures
    assert failed.servers == ("*",) and "wso2carbon.jks" in str(error)
    status = profiles.status().to_dict()
    assert status["healthy"] is False
    assert status["default"]["loaded"] is False and "wso2carbon.jks" in status["default"]["error"]
    # Fail closed: a host no profile names would have gone to the default identity.
    with pytest.raises(ProfileUnavailableError) as refused:
        profiles.context_for("unlisted.test", 443)
    assert refused.value.servers == ("*",) and refused.value.cause is error
    assert refused.value.__cause__ is error
    # Once the store appears, the next check loads it.
    missing.write_bytes(jks(inter, "default-1"))
    assert profiles.reload() is True
    assert profiles.failures == () and profiles.last_error is None
    assert profiles.context_for("unlisted.test", 443) is not None
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=default-1")


@pytest.fixture
def half_failed(tmp_path, root, inter, backend):
    """localhost:PORT loads; 127.0.0.1:PORT names a missing keystore; there is a
    '*' profile AND a default that would both succeed against the backend."""
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "good.jks", jks(inter, "good")),
        (f"127.0.0.1:{backend.port}", "missing.jks", None),
        ("*", "star.jks", jks(inter, "star")),
    )
    missing = paths["missing.jks"]
    fallback = mtls.client_context(
        Keystore.from_bytes(jks(inter, "fallback"), PASSWORD), root.truststore()
    )
    with SSLProfileSet.from_xml(
        xml, skip_failures=True, default=fallback, settle_delay=0
    ) as profiles:
        yield profiles, missing


def test_a_failed_profile_fails_closed(half_failed, inter, backend):
    profiles, missing = half_failed
    port = backend.port
    assert cn_of(profiles, port) == "good"
    star = profiles.profile_for("other.test", port)  # unnamed hosts: the '*' profile
    assert star is not None and star.servers == ("*",)
    assert profiles.context_for("other.test", port) is not None
    for call in (
        lambda: profiles.context_for("127.0.0.1", port),
        lambda: profiles.context_for("127.0.0.1", port, client_id="tenant"),
        lambda: profiles.context_for("127.0.0.1", port, alpn=["http/1.1"]),
        lambda: profiles.context_for_url(f"https://127.0.0.1:{port}/x"),
    ):
        with pytest.raises(ProfileUnavailableError) as info:
            call()
        error = info.value
        assert isinstance(error, mtls.MTLSError)
        assert isinstance(error.cause, KeystoreError) and error.__cause__ is error.cause
        assert error.servers == (f"127.0.0.1:{port}",)
        assert "missing.jks" in str(error) and "no such keystore" in str(error)
    assert profiles.profile_for("127.0.0.1", port) is not None  # it names the host
    # The same reload machinery loads it once the store exists.
    missing.write_bytes(jks(inter, "late"))
    assert profiles.reload() is True
    assert cn_of(profiles, port, "127.0.0.1") == "late"


def test_a_profile_added_by_a_reload_with_broken_material_fails_closed(
    tmp_path, one_profile, backend
):
    xml, keystore, trust = one_profile
    profiles = SSLProfileSet.from_xml(xml, default=ssl.create_default_context(), settle_delay=0)
    assert profiles.context_for("new.test", 443) is not None  # the default, before
    generation = profiles.generation
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile("new.test:443", tmp_path / "absent.jks", trust),
        ),
    )
    assert profiles.reload() is True
    # No context changed, but what a lookup answers did: readers that cache per
    # generation (the gRPC channel, the HTTP pools) must see a new one.
    assert profiles.generation == generation + 1
    with pytest.raises(ProfileUnavailableError, match=r"absent\.jks"):
        profiles.context_for("new.test", 443)
    # Twin: a reload that changes nothing keeps the generation.
    assert profiles.reload() is False
    assert profiles.generation == generation + 1


def test_httpx_surfaces_a_failed_profile(half_failed, backend):
    import httpx

    from mtls.integrations.httpx import AsyncMTLSTransport, MTLSTransport

    profiles, _ = half_failed
    with httpx.Client(transport=MTLSTransport(profiles)) as http:
        assert http.get(f"https://localhost:{backend.port}/").json()["client_cn"] == "good"
        with pytest.raises(ProfileUnavailableError, match=r"missing\.jks"):
            http.get(f"https://127.0.0.1:{backend.port}/")
        assert http.get(f"https://localhost:{backend.port}/").json()["client_cn"] == "good"

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncMTLSTransport(profiles)) as http:
            with pytest.raises(ProfileUnavailableError):
                await http.get(f"https://127.0.0.1:{backend.port}/")

    asyncio.run(main())
    assert not [r for r in backend.handshakes if r.client_cn in ("star", "fallback")]


def test_requests_surfaces_a_failed_profile(half_failed, backend):
    from mtls.integrations.requests import session

    profiles, _ = half_failed
    with session(profiles) as http:
        assert http.get(f"https://localhost:{backend.port}/").json()["client_cn"] == "good"
        with pytest.raises(ProfileUnavailableError, match=r"missing\.jks"):
            http.get(f"https://127.0.0.1:{backend.port}/")
        assert http.get(f"https://localhost:{backend.port}/").json()["client_cn"] == "good"
    assert not [r for r in backend.handshakes if r.client_cn in ("star", "fallback")]


def test_aiohttp_surfaces_a_failed_profile(half_failed, backend):
    import aiohttp

    from mtls.integrations.aiohttp import MTLSClientSession, request_ssl

    profiles, _ = half_failed
    url = f"https://127.0.0.1:{backend.port}/"

    async def main() -> str:
        async with MTLSClientSession(profiles) as http:
            async with http.get(f"https://localhost:{backend.port}/") as response:
                cn = (await response.json())["client_cn"]
            with pytest.raises(ProfileUnavailableError, match=r"missing\.jks"):
                async with http.get(url):
                    pass
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(ProfileUnavailableError):
                async with plain.get(url, ssl=request_ssl(profiles, url)):
                    pass
        return str(cn)

    assert asyncio.run(main()) == "good"
    assert not [r for r in backend.handshakes if r.client_cn in ("star", "fallback")]


def test_a_client_pool_sweep_survives_an_origin_whose_profile_stops_loading(
    tmp_path, root, inter, backend
):
    """The integrations' sweep asks for every origin they used: one now refused counts
    as retired, and the others carry on. (127.0.0.1 is merged with a host another
    identity served onto a store that is not there: there is no one last good for
    both, so it is refused; moved alone, it would keep what it was served.)"""
    import httpx

    from mtls.integrations.httpx import MTLSTransport

    a1 = jks(inter, "a-1")
    xml, paths = write_set(
        tmp_path,
        root,
        (f"localhost:{backend.port}", "a.jks", a1),
        (f"127.0.0.1:{backend.port}", "a.jks", a1),
        ("x.test:1", "b.jks", jks(inter, "b-1")),
    )
    a, trust = paths["a.jks"], tmp_path / "trust.jks"
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    with httpx.Client(transport=MTLSTransport(profiles)) as http:
        for host in ("localhost", "127.0.0.1"):
            assert http.get(f"https://{host}:{backend.port}/").json()["client_cn"] == "a-1"
        # 127.0.0.1 and x.test merge into a profile (new slot) that cannot load.
        replace_atomically(
            xml,
            profile_xml(
                profile(f"localhost:{backend.port}", a, trust),
                profile(f"127.0.0.1:{backend.port},x.test:1", tmp_path / "gone.jks", trust),
            ),
        )
        assert profiles.reload() is True
        assert http.get(f"https://localhost:{backend.port}/").json()["client_cn"] == "a-1"
        with pytest.raises(ProfileUnavailableError):
            http.get(f"https://127.0.0.1:{backend.port}/")


# --------------------------------------------------------------------------- 12: warn once


def test_the_same_reload_failure_is_warned_once(one_profile, inter, caplog):
    xml, keystore, _ = one_profile
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    with caplog.at_level(logging.WARNING, logger="mtls"):
        replace_atomically(keystore, b"garbage")
        for _ in range(4):
            assert profiles.reload() is False
            assert profiles.status().to_dict()["profiles"][0]["error"]  # shown every time
        assert len(warnings()) == 1 and "keeping its last good context" in warnings()[0]
        replace_atomically(keystore, b"\xfe\xed\xfe\xed" + b"other garbage" * 20)
        for _ in range(3):
            profiles.reload()
        assert len(warnings()) == 2  # a different error: warned again, once
        replace_atomically(keystore, jks(inter, "gen-2"))
        assert profiles.reload() is True
        for _ in range(2):
            profiles.reload()
        assert len(warnings()) == 3 and "resolved" in warnings()[-1]
        assert profiles.last_error is None
        # A profile-file error: once as well.
        good = xml.read_bytes()
        replace_atomically(xml, b"<parameter")
        for _ in range(3):
            profiles.reload()
        assert len(warnings()) == 4 and "not well-formed" in warnings()[-1]
        assert profiles.status().to_dict()["config_error"]
        replace_atomically(xml, good)
        profiles.reload()
        assert len(warnings()) == 5 and "resolved" in warnings()[-1]


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING], ids=["info", "warning"])
def test_a_logging_handler_that_raises_stops_no_rotation(one_profile, inter, backend, capfd, level):
    """An application's log handler that raises (a log shipper down) raised out of the
    ``log.info`` of a reload check: the check was aborted every time, the new
    certificate never went in (INFO: "reloaded ..."), or went in untold to subscribers
    with ``reload()`` raising the handler's RuntimeError (WARNING: a broken store
    reported in the same check). Records still reach the handlers; its failure stops
    nothing."""
    xml, keystore, trust = one_profile
    second = keystore.with_name("second.jks")
    second.write_bytes(jks(inter, "other-1"))
    replace_atomically(
        xml,
        profile_xml(
            profile(f"localhost:{backend.port}", keystore, trust),
            profile(f"127.0.0.1:{backend.port}", second, trust),
        ),
    )
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    told: list[tuple[int, int]] = []
    profiles.subscribe(lambda old, new: told.append((old, new)))
    with raising_log_handler(level) as seen:
        replace_atomically(keystore, jks(inter, "gen-2"))
        replace_atomically(second, b"garbage")  # a warning in the same check
        assert profiles.reload() is True  # no RuntimeError
        assert cn_of(profiles, backend.port) == "gen-2"
        assert told == [(0, 1)]
        assert any("reloaded" in m for m in seen) or level > logging.INFO
        assert any("keeping its last good" in m for m in seen)
        assert profiles.reload() is False  # and the next check too
    err = capfd.readouterr().err
    assert err.count("a logging handler raised RuntimeError") == 1
    assert "log shipper down" not in err


def test_an_unexpected_failure_logs_its_traceback_once(one_profile, backend, caplog):
    xml, keystore, trust = one_profile
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port}")
    up = {"ok": True}

    def resolver(alias: str) -> str:
        if not up["ok"]:
            raise asyncio.CancelledError("vault client cancelled")
        return PASSWORD

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=resolver, settle_delay=0)
    up["ok"] = False
    vaulted_xml(xml, keystore, trust, "localhost:1")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        for _ in range(3):
            assert profiles.reload() is False
    logged = [r for r in caplog.records if "vault client cancelled" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "CancelledError" in str(profiles.last_error)
    assert profiles.status().to_dict()["healthy"] is False  # still shown on every check


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/fd")
def test_hostile_reloads_leak_no_descriptors(tmp_path, one_profile):
    xml, _, trust = one_profile
    fifo = _hostile("fifo", tmp_path)
    replace_atomically(xml, profile_xml(profile("f.test:443", fifo, trust)))
    profiles = SSLProfileSet.from_xml(xml, skip_failures=True, settle_delay=0)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        os.utime(fifo)
        profiles.reload()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_a_kept_error_leaves_the_callers_exception_and_the_resolvers_traceback(
    one_profile, backend, caplog
):
    """Errors kept in a snapshot lose their frames, but not before their problem is
    logged (the traceback into a secret resolver's bug was logged without a line),
    and never the caller's own exception: reload() called in an ``except`` block had
    that exception's traceback wiped through the chain."""
    xml, keystore, trust = one_profile
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port}")
    up = {"ok": True}

    def my_vault_client_lookup(alias: str) -> str:
        raise AttributeError("'NoneType' object has no attribute 'get'")  # its bug

    def resolver(alias: str) -> str:
        return PASSWORD if up["ok"] else my_vault_client_lookup(alias)

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=resolver, settle_delay=0)
    up["ok"] = False
    vaulted_xml(xml, keystore, trust, f"localhost:{backend.port},127.0.0.1:{backend.port}")

    def app_request() -> None:
        raise ConnectionResetError("peer reset")

    frames: list[int] = []
    with caplog.at_level(logging.WARNING, logger="mtls"):
        try:
            app_request()
        except ConnectionResetError as own:
            frames.append(len(traceback.extract_tb(own.__traceback__)))
            assert profiles.reload() is False
            frames.append(len(traceback.extract_tb(own.__traceback__)))
    assert frames[0] == frames[1] == 2  # the caller's traceback, untouched
    # The resolver's line, in the log (handled before the error's frames are let go).
    logged = "".join(
        "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
    )
    assert "my_vault_client_lookup" in logged and "my_vault_client_lookup" in caplog.text
    kept = profiles.last_error
    # Where the resolver failed, in a note; not its exception (its text may hold a
    # vault's token: tests/profiles/test_secure_vault.py), so no frames of it kept.
    assert kept is not None and kept.__cause__ is None
    assert "my_vault_client_lookup" in "".join(getattr(kept, "__notes__", ()))
    assert kept.__traceback__ is None
    chain, seen = [kept], set()
    while chain:  # the caller's exception is not kept alive through the error
        current = chain.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        assert not isinstance(current, ConnectionResetError)
        chain += [current.__cause__, current.__context__]


@pytest.mark.parametrize("raised", [MemoryError(), ssl.SSLError(0, "[SSL] malloc failure")])
def test_a_reload_out_of_memory_says_so(one_profile, backend, monkeypatch, raised) -> None:
    """A check that ran out of memory said "reload failed (MemoryError: )", or
    OpenSSL's words, on the profile file (h211): it says the process is out of
    memory. The last good serves on. The twin: another unexpected failure does not
    say memory."""
    import mtls._profiles as profiles_module

    xml, _, _ = one_profile
    with SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0) as profiles:
        kept = profiles.context_for("localhost", backend.port)
        monkeypatch.setattr(profiles_module._XmlFile, "load", _raising(raised))
        xml.write_text(xml.read_text() + "\n")
        assert profiles.reload() is False
        assert "out of memory" in str(profiles.last_error)
        assert profiles.context_for("localhost", backend.port) is kept
        monkeypatch.setattr(profiles_module._XmlFile, "load", _raising(KeyError("x")))
        xml.write_text(xml.read_text() + "\n")
        profiles.reload()
        assert "KeyError" in str(profiles.last_error)
        assert "out of memory" not in str(profiles.last_error)


def _raising(exc: BaseException) -> Callable[..., None]:
    def raising(*args: object, **kwargs: object) -> None:
        raise exc

    return raising
