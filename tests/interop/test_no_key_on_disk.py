"""No file is created while a context is built: the key reaches OpenSSL through memory
(as DER through OpenSSL's own calls, or a memory file where those cannot be reached).

Two independent witnesses: strace (every open/creat/memfd_create syscall of a
child process, C code included) and a Python audit hook on the "open" event.
Each has a control that shows it does see a write when there is one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls import _keyload
from tests._helpers import direct_identity_available
from tests._pki import PKI

PASSWORD = "Osprey-Lantern-3391"
STRACE = shutil.which("strace")

BUILD_SCRIPT = """
import sys
import mtls
ks = mtls.Keystore.load(sys.argv[1], sys.argv[2])
ts = mtls.Truststore.load(sys.argv[1], sys.argv[2])
ctx = mtls.client_context(ks, ts)
assert ctx.cert_store_stats()["x509"] >= 1
print("built")
"""

WRITE_SCRIPT = """
import sys, tempfile
with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
    fh.write(b"a key")
print("built")
"""

_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE")
_ALLOWED_PREFIXES = ("/dev/", "/proc/self/fd/")


def _strace(script: str, *args: str, tmp_path: Path) -> list[str]:
    assert STRACE is not None
    log = tmp_path / "strace.log"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc writes to muddy the log
    env.pop("SSLKEYLOGFILE", None)
    # Coverage measures subprocesses (pyproject: patch = ["subprocess"]) and would write
    # its data file from this one: trace the library, not the test harness.
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    done = subprocess.run(
        [STRACE, "-f", "-qq", "-e", "trace=openat,open,creat,memfd_create", "-o", str(log),
         sys.executable, "-c", textwrap.dedent(script), *args],
        check=False,
        capture_output=True,
        env=env,
        timeout=60,
    )  # fmt: skip
    if done.returncode != 0 and b"ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.decode().strip()}")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip() == b"built"
    return log.read_text().splitlines()


def _writable_opens(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        call = re.search(r"\b(openat|open|creat)\((.*)\)\s*=\s*(-?\d+)", line)
        if not call or int(call.group(3)) < 0:
            continue  # not an open, or a failed one
        path = re.search(r'"([^"]*)"', call.group(2))
        name = path.group(1) if path else ""
        writes = call.group(1) == "creat" or any(flag in call.group(2) for flag in _WRITE_FLAGS)
        if writes and not name.startswith(_ALLOWED_PREFIXES):
            found.append(line)
    return found


@pytest.fixture
def jks_store(pki: PKI, tmp_path: Path) -> Path:
    path = tmp_path / "client.jks"
    ks = pki.client.keystore("client")
    ks.add_certificate("root", pki.root.cert)
    ks.save(path, PASSWORD)
    return path


# The memfd way, forced: what a Python whose OpenSSL cannot be reached takes, and what
# a refusal of the direct way repeats the load through.
_MEMFD_ONLY = "import mtls._keyload\nmtls._keyload.use_identity = lambda *args: False\n"


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
@pytest.mark.skipif(not _keyload.memfd_available(), reason="memfd_create is Linux only")
@pytest.mark.parametrize("way", ["direct", "memfd"])
def test_strace_sees_no_file_created(jks_store: Path, tmp_path: Path, way: str) -> None:
    """Straight into OpenSSL, the key makes no file at all, not even a memory file;
    through the memfd, one memory file and no file opened for writing."""
    direct = way == "direct"
    if direct and not direct_identity_available():
        pytest.skip("OpenSSL's key-loading calls are not reachable from this Python")
    script = BUILD_SCRIPT if direct else _MEMFD_ONLY + BUILD_SCRIPT
    lines = _strace(script, str(jks_store), PASSWORD, tmp_path=tmp_path)
    memfds = [line for line in lines if "memfd_create(" in line and "mtls-identity" in line]
    assert len(memfds) == (0 if direct else 1), "the key went through one memfd, or none"
    read_back = any("/proc/self/fd/" in line for line in lines)
    assert read_back is not direct, "OpenSSL read the key from the memfd, or from memory"
    assert _writable_opens(lines) == []
    assert any(str(jks_store) in line for line in lines), "the trace covers the store read"


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_strace_control_sees_a_temp_file(tmp_path: Path) -> None:
    """The control: the same check flags a script that writes a temporary file."""
    lines = _strace(WRITE_SCRIPT, tmp_path=tmp_path)
    flagged = _writable_opens(lines)
    assert flagged
    assert any(tempfile.gettempdir() in line and "O_CREAT" in line for line in flagged)


# --------------------------------------------------------------------------- audit hook


class _OpenRecorder:
    """One audit hook per process (hooks cannot be removed); records only while on."""

    def __init__(self) -> None:
        self.installed = False
        self.seen: list[tuple[str, str, int]] | None = None

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        seen = self.seen
        if seen is not None and event == "open":
            path, mode, flags = args
            name = os.fsdecode(path) if isinstance(path, str | bytes) else repr(path)
            seen.append((name, str(mode), flags if isinstance(flags, int) else 0))


_RECORDER = _OpenRecorder()


@pytest.fixture
def opens() -> Iterator[list[tuple[str, str, int]]]:
    if not _RECORDER.installed:
        sys.addaudithook(_RECORDER)
        _RECORDER.installed = True
    _RECORDER.seen = []
    try:
        yield _RECORDER.seen
    finally:
        _RECORDER.seen = None


def _writes(recorded: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    mask = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    return [
        (path, mode, flags)
        for path, mode, flags in recorded
        if (flags & mask) or any(c in mode for c in "wax+")
    ]


# Elsewhere a sealed temporary file is written (tests/stores/test_key_handoff.py).
@pytest.mark.skipif(not _keyload.memfd_available(), reason="memfd_create is Linux only")
def test_audit_hook_sees_no_writable_open(
    jks_store: Path, opens: list[tuple[str, str, int]]
) -> None:
    ks = mtls.Keystore.load(jks_store, PASSWORD)
    ts = mtls.Truststore.load(jks_store, PASSWORD)
    for _ in range(3):
        mtls.client_context(ks, ts)
        mtls.server_context(ks, ts)
    assert any(path == str(jks_store) for path, _, _ in opens), "the hook saw the store read"
    assert _writes(opens) == []


def test_audit_hook_control_sees_a_write(tmp_path: Path, opens: list[tuple[str, str, int]]) -> None:
    target = tmp_path / "x.pem"
    target.write_bytes(b"a key")
    assert [p for p, _, _ in _writes(opens)] == [str(target)]
