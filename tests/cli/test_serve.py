"""`mtls serve`: the CLI's backend, probed by the CLI's client: the whole flow in commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mtls.testing import replace_atomically

PASSWORD = "serve-Pa55word"


def mtls(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MTLS_STORE_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "mtls", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    """The seed's five steps with the CLI: backend and gateway stores, each trusting the other."""
    steps = [
        ("genkey", "--keystore", "backend.jks", "--alias", "backend", "--dname", "CN=localhost",
         "--key-type", "EC", "--san", "DNS:localhost"),
        ("export", "--keystore", "backend.jks", "--alias", "backend", "--file", "backend.cer"),
        ("import", "--file", "backend.cer", "--alias", "backend", "--keystore", "gw-trust.jks"),
        ("genkey", "--keystore", "gateway.jks", "--alias", "gateway", "--dname", "CN=gateway",
         "--key-type", "EC"),
        ("export", "--keystore", "gateway.jks", "--alias", "gateway", "--file", "gateway.cer"),
        ("import", "--file", "gateway.cer", "--alias", "gateway", "--keystore", "backend-trust.jks"),
    ]  # fmt: skip
    for step in steps:
        done = mtls(*step, cwd=tmp_path)
        assert done.returncode == 0, (step, done.stderr)
    return tmp_path


def start_serve(flow: Path, *extra: str) -> subprocess.Popen[str]:
    """``mtls serve`` on a free port, in the background, with the flow's stores."""
    return subprocess.Popen(
        [sys.executable, "-m", "mtls", "serve", "--keystore", "backend.jks", "--truststore",
         "backend-trust.jks", "--port", "0", *extra],
        cwd=flow, env={**os.environ, "MTLS_STORE_PASSWORD": PASSWORD}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(server: subprocess.Popen[str], sig: signal.Signals) -> tuple[str, str]:
    """Send ``sig`` and wait for the server's output; one that does not stop is killed
    (never left running to fail another test) and the test fails saying so."""
    server.send_signal(sig)
    try:
        return server.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        out, err = server.communicate()
        raise AssertionError(f"mtls serve did not stop on {sig.name}: {out}{err}") from None


def ctrl_c() -> signal.Signals:
    """SIGINT, as Ctrl-C sends it; SIGTERM where this process ignores SIGINT (a job run
    in the background: its children inherit that, and Ctrl-C could not stop them)."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return signal.SIGTERM if ignored else signal.SIGINT


def test_serve_and_probe(flow: Path) -> None:
    server = start_serve(flow)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.search(r"listening on https://127\.0\.0\.1:(\d+)", first)
        assert match, first + (server.stderr.read() if server.poll() is not None else "")
        port = match.group(1)
        assert "Ctrl-C" in server.stdout.readline()
        assert "serving CN=localhost" in server.stdout.readline()
        ok = mtls("probe", f"https://localhost:{port}/", "--keystore", "gateway.jks",
                  "--truststore", "gw-trust.jks", cwd=flow)  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "CN=gateway" in ok.stdout
        # The negative twin: no client certificate, refused, and the server says why.
        refused = mtls("probe", f"https://localhost:{port}/", "--truststore", "gw-trust.jks",
                       cwd=flow)  # fmt: skip
        assert refused.returncode == 1
        assert "client_cert_refused" in refused.stdout + refused.stderr
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("accepted") and "CN=gateway" in lines[0]
        assert lines[1].startswith("refused") and "no client certificate" in lines[1]
    finally:
        out, err = stop(server, ctrl_c())
    assert server.returncode == 0, err
    assert "stopped" in out
    assert PASSWORD not in out + err


def test_serve_serves_the_key_entry_alias_names(flow: Path) -> None:
    """A keystore with two key entries could not be served: the error said "choose one
    with alias=", and serve had no --alias (h185). The twin: without it, refused with the
    option named."""
    done = mtls("genkey", "--keystore", "backend.jks", "--alias", "other", "--dname",
                "CN=other", "--key-type", "EC", cwd=flow)  # fmt: skip
    assert done.returncode == 0, done.stderr
    refused = mtls("serve", "--keystore", "backend.jks", "--truststore", "backend-trust.jks",
                   "--port", "0", cwd=flow)  # fmt: skip
    assert refused.returncode == 1 and "has 2 key entries" in refused.stderr
    assert "--alias" in refused.stderr
    server = start_serve(flow, "--alias", "backend")
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert "listening on" in first, first + (server.stderr.read() if server.poll() else "")
        server.stdout.readline()
        assert "serving CN=localhost" in server.stdout.readline()
    finally:
        stop(server, ctrl_c())


def test_serve_follows_its_truststore(flow: Path) -> None:
    """The backend trusts a new gateway certificate without a restart."""
    env = {**os.environ, "MTLS_STORE_PASSWORD": PASSWORD}
    server = subprocess.Popen(
        [sys.executable, "-m", "mtls", "serve", "--keystore", "backend.jks", "--truststore",
         "backend-trust.jks", "--port", "0", "--reload-interval", "0.05"],
        cwd=flow, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        match = re.search(r"https://127\.0\.0\.1:(\d+)", server.stdout.readline())
        assert match, server.stderr.read() if server.poll() is not None else ""
        url = f"https://localhost:{match.group(1)}/"
        assert "every 0.05 s" in server.stdout.readline() + server.stdout.readline()
        steps = [
            ("genkey", "--keystore", "gateway2.jks", "--alias", "gateway", "--dname",
             "CN=gateway2", "--key-type", "EC"),
            ("export", "--keystore", "gateway2.jks", "--alias", "gateway", "--file", "gw2.cer"),
        ]  # fmt: skip
        for step in steps:
            assert mtls(*step, cwd=flow).returncode == 0
        probe = ("probe", url, "--keystore", "gateway2.jks", "--truststore", "gw-trust.jks")
        assert mtls(*probe, cwd=flow).returncode == 1  # not trusted yet
        assert server.stdout.readline().startswith("refused")
        # keytool-style import writes a temp file and renames it over the truststore.
        imported = mtls("import", "--file", "gw2.cer", "--alias", "gateway2", "--keystore",
                        "backend-trust.jks", cwd=flow)  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        line = server.stdout.readline()  # the server says when it has reloaded
        assert line.startswith("reloaded (generation 1)"), line
        ok = mtls(*probe, cwd=flow)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "accepted" in server.stdout.readline()
        # A damaged truststore is said; so is the end of it, when the file reads well
        # again (it was said once, and never after).
        good = (flow / "backend-trust.jks").read_bytes()
        replace_atomically(flow / "backend-trust.jks", b"not a store")
        line = server.stdout.readline()
        assert line.startswith("reload failed, the last good stays"), line
        replace_atomically(flow / "backend-trust.jks", good)
        line = server.stdout.readline()
        assert line.startswith("reload error cleared: serving CN=localhost"), line
    finally:
        out, err = stop(server, ctrl_c())
    assert server.returncode == 0, err
    assert PASSWORD not in out + err


def test_kill_stops_serve_as_ctrl_c_does_and_a_client_giving_up_is_not_refused(
    flow: Path,
) -> None:
    """A script stops a background server with kill (SIGTERM): "stopped", exit 0. A
    client that gives up on the server (a name the certificate lacks) is logged as a
    failed handshake, not as one the server refused."""
    server = start_serve(flow)
    try:
        assert server.stdout is not None
        match = re.search(r"https://127\.0\.0\.1:(\d+)", server.stdout.readline())
        assert match
        for _ in range(2):
            server.stdout.readline()
        # 127.0.0.1 is not in the backend's certificate: the probe's client refuses it.
        probe = mtls("probe", f"https://127.0.0.1:{match.group(1)}/", "--keystore",
                     "gateway.jks", "--truststore", "gw-trust.jks", cwd=flow)  # fmt: skip
        assert probe.returncode == 1
        # The probe then looks at the chain with verification off: a second handshake,
        # with no client certificate (the server failed verification: it never sees
        # ours), which the server refuses. Its thread may log before the first one's does.
        lines = sorted(server.stdout.readline() for _ in range(2))
        assert lines[0].startswith("failed") and "client sent alert" in lines[0], lines
        assert lines[1].startswith("refused  127.0.0.1: no client certificate"), lines
    finally:
        out, err = stop(server, signal.SIGTERM)
    assert server.returncode == 0, err
    assert "stopped" in out


def test_sighup_ends_serve_with_129(flow: Path) -> None:
    """SIGHUP (a closed terminal) ended serve as Ctrl-C does, exit 0, once the commands
    stopped on SIGHUP as on Ctrl-C (h169): it says "stopped" and exits 129, as the
    shell's; SIGTERM, a script's way to stop it, stays exit 0."""
    server = start_serve(flow)
    assert server.stdout is not None
    for _ in range(3):  # listening, what each GET answers, what it serves
        server.stdout.readline()
    out, err = stop(server, signal.SIGHUP)
    assert server.returncode == 129, err
    assert "stopped" in out and "terminated (SIGHUP)" in err
