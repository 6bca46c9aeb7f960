"""The ``mtls`` command line, run as users run it: ``python -m mtls`` in a subprocess.

Every run is checked for what must hold whatever the command: the password never
appears on stdout or stderr, no traceback is shown, and a failure is exactly one
``mtls: error:`` line on stderr with the documented exit code. ``check`` and
``probe`` talk to a live backend (an MTLSServer thread in this process); the
seed's store steps are read back by the JDK's keytool when one is installed.
"""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import mtls
from mtls import cli
from mtls._cli import _common
from mtls.testing import CA, MTLSServer
from tests._keytool import JDK, run_keytool

# Distinctive, so a leak anywhere in the output is found by a plain substring search.
PASSWORD = "Zq7-leakcheck-Pw41"
OTHER_PASSWORD = "Wr0ng-but-visible-Pw"  # a wrong password: must not leak either


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def mtls_run(
    *args: str | Path | int,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    password_env: bool = True,
) -> Run:
    """``python -m mtls ARGS`` with no terminal (stdin from /dev/null) and NO_COLOR."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("MTLS_") and k != "SSLKEYLOGFILE"
    }
    environment["NO_COLOR"] = "1"
    if password_env:
        environment["MTLS_STORE_PASSWORD"] = PASSWORD
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "mtls", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    run = Run(done.returncode, done.stdout, done.stderr)
    everything = run.stdout + run.stderr
    for secret in (PASSWORD, OTHER_PASSWORD):
        assert secret not in everything, f"a password leaked:\n{everything}"
    assert "Traceback" not in run.stderr, run.stderr
    return run


def ok(*args: str | Path | int, **kwargs: object) -> Run:
    """Run; require exit 0 and an empty stderr."""
    run = mtls_run(*args, **kwargs)  # type: ignore[arg-type]
    assert run.code == 0, f"exit {run.code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.stderr == "", run.stderr
    return run


def fails(code: int, *args: str | Path | int, **kwargs: object) -> Run:
    """Run; require exit ``code`` and exactly one ``mtls: error:`` line on stderr."""
    run = mtls_run(*args, **kwargs)  # type: ignore[arg-type]
    assert run.code == code, f"exit {run.code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("mtls: error: "), run.stderr
    return run


def keytool_list(keytool: str, store: Path) -> str:
    done = subprocess.run(
        [keytool, "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Duser.language=en",
         "-list", "-v", "-keystore", str(store), "-storepass", PASSWORD],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def profile_xml(*profiles: str) -> str:
    return f'<parameter name="customSSLProfiles">{"".join(profiles)}</parameter>\n'


def profile(
    servers: str,
    keystore: str | None = "gateway.jks",
    truststore: str | None = "client-truststore.jks",
    password: str = PASSWORD,
) -> str:
    parts = [f"<profile><servers>{servers}</servers>"]
    if keystore:
        parts.append(
            f"<KeyStore><Location>{keystore}</Location><Type>JKS</Type>"
            f"<Password>{password}</Password><KeyPassword>{password}</KeyPassword></KeyStore>"
        )
    if truststore:
        parts.append(
            f"<TrustStore><Location>{truststore}</Location><Type>JKS</Type>"
            f"<Password>{password}</Password></TrustStore>"
        )
    parts.append("</profile>")
    return "".join(parts)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the seed, live


@dataclass
class Seed:
    """The seed's stores (made with the library), a backend serving them, and a profile."""

    dir: Path
    server: MTLSServer
    tls12_server: MTLSServer
    xml: Path

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    d = tmp_path_factory.mktemp("seed")
    backend = mtls.Keystore.generate("backend", "CN=localhost", key_type="EC")
    backend.save(d / "backend.jks", PASSWORD)
    gateway = mtls.Keystore.generate("gateway", "CN=gateway", key_type="EC")
    gateway.save(d / "gateway.jks", PASSWORD)
    gateway_trust = mtls.Truststore()
    gateway_trust.add("backend", backend.certificate("backend"))
    gateway_trust.save(d / "client-truststore.jks", PASSWORD)
    backend_trust = mtls.Truststore()
    backend_trust.add("gateway", gateway.certificate("gateway"))
    backend_trust.save(d / "backend-truststore.jks", PASSWORD)
    with (
        MTLSServer(backend, client_ca=backend_trust) as server,
        MTLSServer(
            backend, client_ca=backend_trust, maximum_version=ssl.TLSVersion.TLSv1_2
        ) as tls12,
    ):
        xml = d / "sslprofiles.xml"
        xml.write_text(profile_xml(profile(f"localhost:{server.port}")))
        yield Seed(d, server, tls12, xml)


# --------------------------------------------------------------------------- basics


def test_python_m_mtls_version_and_help() -> None:
    assert ok("--version").stdout.strip() == f"mtls {mtls.__version__}"
    run = ok("--help")
    for command in (
        "genkey",
        "export",
        "import",
        "list",
        "delete",
        "convert",
        "check",
        "probe",
        "demo",
    ):
        assert command in run.stdout


def test_no_command_is_a_usage_error() -> None:
    run = fails(2)
    assert "choose a command" in run.stderr


def test_unknown_option_is_a_usage_error_that_hides_the_password(tmp_path: Path) -> None:
    # argparse echoes unrecognised arguments: the password among them is scrubbed.
    run = fails(2, "check", tmp_path / "x.xml", "--password", PASSWORD, password_env=False)
    assert "unrecognized arguments" in run.stderr
    assert "****" in run.stderr


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("mtls._cli._demo.cmd_demo", interrupted)
    assert cli.main(["demo"]) == 130
    assert capsys.readouterr().err == "mtls: error: interrupted\n"


_SIGNAL_DURING_WRITE = """
import os, signal, sys

# A plain process's handlers (under pytest-cov, coverage's own SIGTERM handler is in
# this child, and mtls leaves an application's handlers alone: the twin test below).
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
if sys.argv[1] == "app":  # an application's own handler: left in place, and it runs
    def own(signum, frame):
        raise SystemExit(7)
    signal.signal(signal.SIGTERM, own)
    sys.argv[1] = "SIGTERM"
real_fsync = os.fsync

def fsync(fd):  # the signal arrives while the store's new file is being written
    real_fsync(fd)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))

os.fsync = fsync
from mtls.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129), ("app", 7)])
def test_sigterm_or_sighup_during_a_write_leaves_no_file_behind(
    tmp_path: Path, name: str, code: int
) -> None:
    """A write stopped by SIGTERM (a service manager, a CI timeout) or SIGHUP left its
    temporary file, the whole store, beside the store for good (h167); Ctrl-C did not.
    Now they end the command as Ctrl-C does: the store unchanged, nothing left."""
    store = tmp_path / "gw.p12"
    ok("genkey", "--keystore", store, "--alias", "gw", "--dname", "CN=gw", "--key-type", "EC")
    before = store.read_bytes()
    env = {**os.environ, "MTLS_STORE_PASSWORD": PASSWORD, "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _SIGNAL_DURING_WRITE, name, "genkey", "--keystore", str(store),
         "--alias", "second", "--dname", "CN=second", "--key-type", "EC"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    said = "" if name == "app" else f"mtls: error: terminated ({name})\n"
    assert (run.returncode, run.stderr) == (code, said)
    assert store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.p12"]


def test_a_command_run_in_process_leaves_the_signal_handlers_as_they_were(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The handlers are the command's only while it runs (and never an application's own)."""
    import signal

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    assert cli.main(["--version"]) == 0
    cli.main(["list", "--keystore", "/nonexistent/x.p12"])
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
    capsys.readouterr()


_INTERRUPT_WHILE_LOADING = """
import sys

class Interrupt:  # Ctrl-C arriving while the command's modules load
    def find_spec(self, name, path=None, target=None):
        if name == "mtls._cli._main":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
from mtls.cli import main  # what the console script runs
sys.exit(main(["--help"]))
"""


def test_keyboard_interrupt_while_the_command_loads_exits_130_without_a_traceback() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_WHILE_LOADING], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert (run.returncode, run.stderr) == (130, "mtls: error: interrupted\n")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--password", "first-pw", "--storepass", "second-pw"], "--storepass gives a second"),
        (["-storepass", "first-pw", "--password", "second-pw"], "--password gives a second"),
        (["--key-password", "first-pw", "-keypass", "second-pw"], "-keypass gives a second"),
    ],
)
def test_a_password_given_twice_differently_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    """Two spellings of one option (keytool's and ours) with different values: the
    last silently won, and the store failed with "wrong password" or opened with a
    password the user did not mean. Refused now, the values never shown."""
    store = tmp_path / "ks.jks"
    CA().issue_cert("gw").write_keystore(store, PASSWORD)
    assert cli.main(["list", "--keystore", str(store), *options]) == 2
    err = capsys.readouterr().err
    assert said in err and "give it once" in err
    assert "first-pw" not in err and "second-pw" not in err


def test_a_password_repeated_with_the_same_value_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "ks.jks"
    CA().issue_cert("gw").write_keystore(store, PASSWORD)
    assert cli.main(["list", "--keystore", str(store), "--password", PASSWORD,
                     "-storepass", PASSWORD]) == 0  # fmt: skip
    assert "PrivateKeyEntry" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--alias", "gw"], "--alias names a key entry of --keystore"),
        (["--client-id", "tenant-a"], "--client-id picks among the profiles"),
    ],
)
def test_probe_options_that_would_be_ignored_are_refused(
    capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    assert cli.main(["probe", "https://localhost:1/", *options]) == 2
    assert said in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jks"
    assert cli.main(["--debug", "list", "--keystore", str(missing), "--password", PASSWORD]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith(f"mtls: error: {missing}: no such file")
    assert PASSWORD not in err


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)

    def shown(out: _common.Output) -> str:
        out.line(out.style("x", "red"))
        return str(out.stdout.getvalue())  # type: ignore[attr-defined]

    assert shown(_common.Output(_TTY())) == "\033[31mx\033[0m\n"
    assert shown(_common.Output(io.StringIO())) == "x\n"
    assert shown(_common.Output(_TTY(), no_color=True)) == "x\n"
    monkeypatch.setenv("NO_COLOR", "1")
    assert shown(_common.Output(_TTY())) == "x\n"


HOSTILE = "evil\x1b[2J\x1b[32mOK\n  SHA256   00:11:22\r\u202eevil\x9b"


def test_text_from_files_cannot_style_the_terminal_or_add_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A subject, alias or server answer carrying control characters is shown as text,
    coloured or not: no cleared screen, no extra line that looks like ours."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    for stream in (_TTY(), io.StringIO()):
        out = _common.Output(stream, io.StringIO())
        out.line(f"  subject  {out.style(HOSTILE, 'bold')}")
        out.warn(HOSTILE)
        out.error(HOSTILE)
        written = stream.getvalue() + out.stderr.getvalue()  # type: ignore[attr-defined]
        for control in ("\x1b[2J", "\x1b[32m", "\r", "\u202e", "\x9b", "\n  SHA256"):
            assert control not in written, control
        assert "evil\\x1b[2J\\x1b[32mOK\\n  SHA256   00:11:22\\r\\u202eevil\\x9b" in written
        assert written.count("\n") == 3  # one line each


def test_password_prompt_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # getpass itself needs a real terminal; what we decide around it is tested here.
    monkeypatch.delenv("MTLS_STORE_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", _TTY())
    answers = iter(["typed-Pw-123456"] * 4 + ["different"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(_common.getpass, "getpass", fake_getpass)
    kwargs = {"env": "MTLS_STORE_PASSWORD", "option": "--password", "what": "the store password"}
    assert _common.resolve_password(None, prompt="Enter keystore password: ", **kwargs) == (
        "typed-Pw-123456"
    )
    assert _common.scrub("x typed-Pw-123456 y") == "x **** y"
    assert _common.resolve_password(None, prompt="New: ", confirm=True, **kwargs)
    with pytest.raises(_common.CLIError, match="do not match"):
        _common.resolve_password(None, prompt="New: ", confirm=True, **kwargs)
    assert prompts[0] == "Enter keystore password: "
    # A new password too short is asked for again (as keytool does), not refused after
    # both prompts; an existing store's password is not judged.
    answers = iter(["abc", "abcdef", "abcdef"])
    assert _common.resolve_password(None, prompt="New: ", confirm=True, **kwargs) == "abcdef"
    answers = iter(["abc"])
    assert _common.resolve_password(None, prompt="Enter: ", **kwargs) == "abc"
    # The option, then the environment, win over the prompt.
    monkeypatch.setenv("MTLS_STORE_PASSWORD", "from-env")
    assert _common.resolve_password(None, prompt="", **kwargs) == "from-env"
    assert _common.resolve_password("given", prompt="", **kwargs) == "given"


# --------------------------------------------------------------------------- the seed's steps


def test_seed_steps_with_the_cli_are_read_back_by_keytool(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    d = tmp_path
    # 1. the backend's keystore; 2. export its certificate; 3. the gateway trusts it.
    made = ok("genkey", "-keystore", "backend.jks", "-alias", "backend", "-dname", "CN=localhost",
              "-keyalg", "EC", cwd=d)  # fmt: skip
    assert "CN=localhost" in made.stdout
    assert "(JKS, created)" in made.stdout
    ok("export", "--keystore", "backend.jks", "--alias", "backend", "--file", "backend.cer", cwd=d)
    assert mtls._x509.load_cert((d / "backend.cer").read_bytes())  # DER, as keytool writes
    ok("import", "--file", "backend.cer", "--alias", "backend",
       "--keystore", "client-truststore.jks", cwd=d)  # fmt: skip
    # 4. the gateway's keystore (password on the command line), exported as PEM, imported
    #    into the backend's truststore.
    ok("genkey", "--keystore", "gateway.jks", "--alias", "gateway", "--dname", "CN=gateway",
       "--key-type", "EC", "--san", "DNS:gateway", "--password", PASSWORD, cwd=d,
       password_env=False)  # fmt: skip
    ok("export", "--keystore", "gateway.jks", "--alias", "gateway", "--file", "gateway.pem",
       "--rfc", cwd=d)  # fmt: skip
    assert (d / "gateway.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    ok("import", "-file", "gateway.pem", "-alias", "gateway", "-keystore",
       "backend-truststore.jks", "-noprompt", cwd=d)  # fmt: skip
    # 5. a profile routing localhost:PORT to the gateway's stores: it loads.
    (d / "sslprofiles.xml").write_text(profile_xml(profile("localhost:8243")))
    checked = ok("check", "sslprofiles.xml", cwd=d)
    assert "CN=gateway" in checked.stdout
    assert "OK: 1 profile loaded" in checked.stdout

    keytool = request.getfixturevalue("any_keytool").keytool  # skips without a JDK
    listings = {
        name: keytool_list(keytool, d / name)
        for name in ("backend.jks", "client-truststore.jks", "gateway.jks",
                     "backend-truststore.jks")
    }  # fmt: skip
    assert "Keystore type: JKS" in listings["backend.jks"]
    assert "Entry type: PrivateKeyEntry" in listings["backend.jks"]
    assert "Entry type: PrivateKeyEntry" in listings["gateway.jks"]
    assert "Entry type: trustedCertEntry" in listings["client-truststore.jks"]
    assert "Entry type: trustedCertEntry" in listings["backend-truststore.jks"]
    for store, cert in (("client-truststore.jks", "backend.cer"),
                        ("backend-truststore.jks", "gateway.pem")):  # fmt: skip
        data = (d / cert).read_bytes()
        der = ssl.PEM_cert_to_DER_cert(data.decode()) if data.startswith(b"-----") else data
        assert mtls._x509.colon_hex(mtls._x509.sha256_hex(der)) in listings[store]


def test_list_shows_every_entry_with_its_chain(tmp_path: Path) -> None:
    ca = CA()
    # Issued by an intermediate: the key entry's chain is leaf + intermediate.
    store = ca.create_child_ca().issue_cert("client.example", "10.0.0.7").keystore("client")
    store.add_certificate("root", ca.certificate)
    path = tmp_path / "chain.jks"
    store.save(path, PASSWORD)

    human = ok("list", "--keystore", path).stdout
    assert "Keystore " in human
    assert "JKS, 2 entries" in human
    assert "client  PrivateKeyEntry, chain of 2" in human
    assert "root  trustedCertEntry" in human
    assert "DNS:client.example, IP:10.0.0.7" in human
    assert (
        mtls._x509.colon_hex(mtls._x509.sha256_hex(ca.certificate.public_bytes(Encoding.DER)))
        in human
    )

    data = json.loads(ok("list", "--keystore", path, "--json").stdout)
    assert set(data) == {"path", "store_type", "entries", "warnings"}
    assert data["store_type"] == "JKS"
    kinds = {e["alias"]: e["kind"] for e in data["entries"]}
    assert kinds == {"client": "PrivateKeyEntry", "root": "trustedCertEntry"}
    leaf = data["entries"][0]["chain"][0]
    assert set(leaf) == {"subject", "issuer", "self_signed", "ca", "serial", "not_before",
                         "not_after", "days_left", "san", "key", "signature", "sha256"}  # fmt: skip
    assert leaf["key"] == "EC secp256r1"
    assert leaf["ca"] is False and data["entries"][0]["chain"][1]["ca"] is True
    assert len(data["entries"][0]["chain"]) == 2
    # The text and the JSON count the days left alike (the text rounded: 365 vs 364).
    assert f"({leaf['days_left']} days)" in human
    # The days are UTC's, and say so (a day ending at 01:00 UTC ends the day before
    # west of Greenwich).
    assert f"{leaf['not_after'][:10]} UTC ({leaf['days_left']} days)" in human


def _certificate_for(public_key: object, cn: str) -> bytes:
    """A self-signed-looking certificate (signed by a throwaway EC key) holding
    ``public_key``, as DER."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def test_list_and_import_name_keys_cryptography_cannot_read_as_keytool_does(
    tmp_path: Path,
) -> None:
    """JDK 25's keytool makes ML-KEM-512 keys, whose certificates cryptography 50 reads
    but whose key it does not: `mtls list` stopped with "unexpected
    UnsupportedAlgorithm" and listed nothing, and `mtls import` of such a certificate
    wrote it and then failed. Other keys showed cryptography's class names
    (X25519PublicKey, MLDSA65PublicKey); they show keytool's names now."""
    from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem, x25519

    # cryptography cannot make an ML-KEM-512 key: an ML-KEM-768 certificate with the
    # 512 OID (same length) is what keytool's looks like to it (the signature is not
    # checked by a listing).
    kem768 = _certificate_for(mlkem.MLKEM768PrivateKey.generate().public_key(), "kem")
    oid = bytes.fromhex("0609608648016503040402")  # 2.16.840.1.101.3.4.4.2, ML-KEM-768
    kem512 = kem768.replace(oid, oid[:-1] + b"\x01")
    assert kem512 != kem768
    store = mtls.Truststore()
    store.add_certificate("kem512", kem512)
    store.add_certificate(
        "dsa65", _certificate_for(mldsa.MLDSA65PrivateKey.generate().public_key(), "d")
    )
    store.add_certificate(
        "x25519", _certificate_for(x25519.X25519PrivateKey.generate().public_key(), "x")
    )
    path = tmp_path / "pq.jks"
    store.save(path, PASSWORD)
    data = json.loads(ok("list", "--keystore", path, "--json").stdout)
    keys = {e["alias"]: e["chain"][0]["key"] for e in data["entries"]}
    assert keys == {"kem512": "ML-KEM-512", "dsa65": "ML-DSA-65", "x25519": "X25519"}
    assert "ML-KEM-512" in ok("list", "--keystore", path).stdout
    # import: the certificate goes in, and the command says so with exit 0.
    cer = tmp_path / "kem.cer"
    cer.write_bytes(kem512)
    target = tmp_path / "t.jks"
    ok("import", "--file", cer, "--alias", "kem", "--keystore", target)
    assert mtls.Truststore.load(target, PASSWORD).aliases == ("kem",)


def test_genkey_adds_to_a_store_refuses_a_taken_alias_and_writes_pkcs12(tmp_path: Path) -> None:
    path = tmp_path / "ks.jks"
    run = ok("genkey", "--keystore", path, "--alias", "one", "--dname", "CN=one",
             "--key-type", "EC")  # fmt: skip
    # No SAN: Go and browsers refuse it as a server's certificate (h128); said.
    assert "SAN      none: fine for a client certificate; a server's needs --san" in run.stdout
    run = ok("genkey", "--keystore", path, "--alias", "two", "--dname", "CN=two",
             "--key-type", "EC", "-ext", "san=dns:two,ip:127.0.0.1")  # fmt: skip
    assert "SAN      DNS:two, IP:127.0.0.1" in run.stdout and "none" not in run.stdout
    loaded = mtls.Keystore.load(path, PASSWORD)
    assert set(loaded.key_aliases) == {"one", "two"}
    assert mtls._x509.subject_alt_names(loaded.certificate("two")) == ["DNS:two", "IP:127.0.0.1"]
    run = fails(1, "genkey", "--keystore", path, "--alias", "ONE", "--dname", "CN=x")
    assert "already exists" in run.stderr

    p12 = tmp_path / "ks.p12"
    ok("genkey", "--keystore", p12, "--alias", "k", "--dname", "CN=k", "--key-type", "EC")
    assert mtls.Keystore.load(p12, PASSWORD).store_type == "PKCS12"


def test_genkey_takes_keytools_ec_key_size_and_signs_as_keytool(tmp_path: Path) -> None:
    """keytool's -keyalg EC -keysize 384 makes a P-384 key signed with SHA-384; mtls
    ignored the size (a P-256 key) and signed everything with SHA-256."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    cases = (
        (("-keyalg", "EC", "-keysize", "384"), "secp384r1", "sha384"),
        (("-keyalg", "EC", "-keysize", "521"), "secp521r1", "sha512"),
        (("-keyalg", "EC", "-groupname", "secp384r1"), "secp384r1", "sha384"),
        (("-keyalg", "EC"), "secp256r1", "sha256"),
        (("-keyalg", "RSA", "-keysize", "4096"), 4096, "sha384"),
        (("-keyalg", "RSA", "-keysize", "3072"), 3072, "sha256"),  # keytool's boundary
    )
    for number, (options, shape, digest) in enumerate(cases):
        path = tmp_path / f"k{number}.p12"
        ok("genkey", "--keystore", path, "--alias", "k", "--dname", "CN=k", *options)
        cert = mtls.Keystore.load(path, PASSWORD).certificate("k")
        key = cert.public_key()
        got = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None
        if isinstance(key, rsa.RSAPublicKey):
            got = key.key_size  # type: ignore[assignment]
        assert got == shape, options
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == digest, options
    # The twins: a size that names no curve, a size and a curve that disagree, a curve
    # for RSA: usage errors, nothing written.
    for options in (("-keyalg", "EC", "-keysize", "300"),
                    ("-keyalg", "EC", "-keysize", "521", "-groupname", "secp256r1"),
                    ("-keyalg", "RSA", "-groupname", "secp256r1")):  # fmt: skip
        fails(2, "genkey", "--keystore", tmp_path / "bad.p12", "--alias", "k", "--dname",
              "CN=k", *options)  # fmt: skip
    assert not (tmp_path / "bad.p12").exists()


def test_genkey_refuses_what_keytool_refuses_or_it_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "k.p12"
    for options in (("--san", "dsn:typo.example"), ("-ext", "san=dns:a..b")):
        fails(2, "genkey", "--keystore", path, "--alias", "k", "--dname", "CN=k", *options)
    assert not path.exists()
    ok("genkey", "--keystore", path, "--alias", "k", "--dname", "CN=k",
       "-ext", "san=dns:x.example,oid:1.2.3.4")  # fmt: skip
    # A critical SAN, as keytool writes it (it was refused when -ext took SANs alone).
    ok("genkey", "--keystore", path, "--alias", "c", "--dname", "CN=c",
       "-ext", "san:c=dns:x.example")  # fmt: skip
    san = (
        mtls.Keystore.load(path, PASSWORD)
        .certificate("c")
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
    )
    assert san.critical
    # A JKS key password keytool would refuse (under six characters), and its twin.
    jks = tmp_path / "k.jks"
    run = fails(2, "genkey", "--keystore", jks, "--alias", "k", "--dname", "CN=k",
                "--key-password", "ab")  # fmt: skip
    assert "key password must be at least 6" in run.stderr and not jks.exists()
    ok("genkey", "--keystore", jks, "--alias", "k", "--dname", "CN=k",
       "--key-password", "abcdef-1")  # fmt: skip


def test_import_adds_a_trusted_certificate_beside_a_pkcs12_key(tmp_path: Path, seed: Seed) -> None:
    """keytool -importcert adds to a PKCS12 keystore; mtls refused it, from before
    PKCS12 stores took several entries."""
    store = tmp_path / "gw.p12"
    ok("genkey", "--keystore", store, "--alias", "gw", "--dname", "CN=gw", "--key-type", "EC")
    cert = tmp_path / "backend.cer"
    cert.write_bytes(mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD).export_certificate(
        "backend", "DER"))  # fmt: skip
    ok("import", "--file", cert, "--alias", "backend", "--keystore", store)
    back = mtls.Keystore.load(store, PASSWORD)
    assert (back.key_aliases, back.trusted_aliases) == (("gw",), ("backend",))
    # The twin: the same alias again is refused.
    assert "already exists" in fails(1, "import", "--file", cert, "--alias", "backend",
                                     "--keystore", store).stderr  # fmt: skip


def test_genkey_adds_a_second_key_to_a_pkcs12_store(tmp_path: Path) -> None:
    path = tmp_path / "two.p12"
    for alias in ("one", "two"):
        ok("genkey", "--keystore", path, "--alias", alias, "--dname", f"CN={alias}",
           "--key-type", "EC")  # fmt: skip
    assert sorted(mtls.Keystore.load(path, PASSWORD).key_aliases) == ["one", "two"]
    assert "already exists" in fails(1, "genkey", "--keystore", path, "--alias", "Two",
                                     "--dname", "CN=x").stderr  # fmt: skip


def test_genkey_into_an_existing_pkcs12_ignores_a_key_password_as_keytool_does(
    tmp_path: Path,
) -> None:
    """The docs say a different --key-password is ignored with a warning for PKCS12: it
    was, for a new store; adding to an existing one failed on the first key."""
    path = tmp_path / "two.p12"
    for alias in ("one", "two"):
        run = mtls_run("genkey", "--keystore", path, "--alias", alias, "--dname", f"CN={alias}",
                       "--key-type", "EC", "--key-password", OTHER_PASSWORD)  # fmt: skip
        assert run.code == 0, run.stderr
        assert "the key password is ignored" in run.stderr
    assert sorted(mtls.Keystore.load(path, PASSWORD).key_aliases) == ["one", "two"]


def test_convert_to_pkcs12_says_a_different_key_password_is_ignored(
    tmp_path: Path, seed: Seed
) -> None:
    """keytool -importkeystore -destkeypass on a PKCS12 destination warns that it is
    ignored; mtls ignored it without a word."""
    out = tmp_path / "o.p12"
    run = mtls_run("importkeystore", "-srckeystore", seed.dir / "gateway.jks", "-srcstorepass",
                   PASSWORD, "-destkeystore", out, "-deststorepass", PASSWORD,
                   "-destkeypass", OTHER_PASSWORD)  # fmt: skip
    assert run.code == 0, run.stderr
    assert "the key password is ignored" in run.stderr
    assert mtls.Keystore.load(out, PASSWORD).key_aliases == ("gateway",)
    # The twin: the same password as the store's says nothing.
    run = mtls_run("importkeystore", "-srckeystore", seed.dir / "gateway.jks", "-srcstorepass",
                   PASSWORD, "-destkeystore", tmp_path / "p.p12", "-deststorepass", PASSWORD,
                   "-destkeypass", PASSWORD)  # fmt: skip
    assert run.code == 0 and "ignored" not in run.stderr, run.stderr


def test_adding_to_a_jks_keeps_keys_with_passwords_of_their_own(
    tmp_path: Path, seed: Seed, any_keytool: JDK
) -> None:
    """keytool adds an entry to a JKS without decrypting its keys; mtls decrypted them
    all with one key password, so a store whose keys have different passwords could
    not be added to at all."""
    path = tmp_path / "gk.jks"
    store = ("-keystore", str(path), "-storetype", "JKS", "-storepass", PASSWORD)
    for alias, algorithm, key_password in (("one", "EC", "key-pass-1"),
                                           ("two", "RSA", "key-pass-2")):  # fmt: skip
        run_keytool(any_keytool, "-genkeypair", *store, "-alias", alias, "-keyalg", algorithm,
                    "-keypass", key_password, "-dname", f"CN={alias}")  # fmt: skip
    cert = tmp_path / "backend.cer"
    cert.write_bytes(
        mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD).export_certificate("backend", "DER")
    )
    ok("import", "--file", cert, "--alias", "backend", "--keystore", path)
    ok("genkey", "--keystore", path, "--alias", "three", "--dname", "CN=three",
       "--key-type", "EC", "--key-password", "key-pass-3")  # fmt: skip
    listing = keytool_list(any_keytool.keytool, path)
    assert listing.count("Entry type: PrivateKeyEntry") == 3
    assert "Entry type: trustedCertEntry" in listing
    # Each key still opens with its own password, in keytool and in mtls.
    for alias, key_password in (("one", "key-pass-1"), ("two", "key-pass-2"),
                                ("three", "key-pass-3")):  # fmt: skip
        run_keytool(any_keytool, *store[:2], "-certreq", "-storepass", PASSWORD,
                    "-alias", alias, "-keypass", key_password)  # fmt: skip
    inspected = mtls.Keystore.inspect(path, PASSWORD)
    assert sorted(inspected.key_aliases) == ["one", "three", "two"]
    # Twin: the wrong store password is still refused, and nothing is written.
    before = path.read_bytes()
    fails(1, "import", "--file", cert, "--alias", "again", "--keystore", path,
          "--password", OTHER_PASSWORD)  # fmt: skip
    assert path.read_bytes() == before


@pytest.mark.parametrize("store_type", ["JKS", "JCEKS"])
def test_convert_one_alias_of_a_store_whose_keys_have_passwords_of_their_own(
    tmp_path: Path, any_keytool: JDK, store_type: str
) -> None:
    """keytool -importkeystore -srcalias a -srckeypass A converts entry a alone; mtls
    decrypted every key with that password first, so entry b (another password)
    refused the whole conversion, and --key-password (given) was the advice."""
    path = tmp_path / f"two.{store_type.lower()}"
    store = ("-keystore", str(path), "-storetype", store_type, "-storepass", PASSWORD)
    for alias, key_password in (("a", "key-pass-a"), ("b", "key-pass-b")):
        run_keytool(any_keytool, "-genkeypair", *store, "-alias", alias, "-keyalg", "EC",
                    "-keypass", key_password, "-dname", f"CN={alias}")  # fmt: skip
    out = tmp_path / "a.p12"
    ok("convert", "--keystore", path, "--key-password", "key-pass-a", "--alias", "A",
       "--to", "PKCS12", "--out", out)  # fmt: skip
    converted = mtls.Keystore.load(out, PASSWORD)
    assert converted.key_aliases == ("a",)
    assert converted.certificate("a").subject.rfc4514_string() == "CN=a"
    # Twins: without --alias, b's password is still needed; a's password does not open b.
    run = fails(1, "convert", "--keystore", path, "--key-password", "key-pass-a",
                "--to", "PKCS12", "--out", tmp_path / "all.p12")  # fmt: skip
    assert "'b'" in run.stderr
    # ... and how to go on is said (keytool asks for each key's password; h167).
    assert "converted one at a time: --alias b --key-password" in run.stderr, run.stderr
    run = fails(1, "convert", "--keystore", path, "--key-password", "key-pass-a",
                "--alias", "b", "--to", "PKCS12", "--out", tmp_path / "b.p12")  # fmt: skip
    assert "'b'" in run.stderr
    # A mistyped alias is told the aliases there are (it was told "(none)").
    run = fails(1, "convert", "--keystore", path, "--key-password", "key-pass-a",
                "--alias", "nosuch", "--to", "PKCS12", "--out", tmp_path / "n.p12")  # fmt: skip
    assert "'a'" in run.stderr and "'b'" in run.stderr, run.stderr


def test_importkeystore_into_a_jks_leaves_its_keys_under_their_own_passwords(
    tmp_path: Path, seed: Seed
) -> None:
    """The destination's keys had to open with the one destination key password (they
    were written back with it): one with a password of its own was refused."""
    dest = tmp_path / "dest.jks"
    ok("genkey", "--keystore", dest, "--alias", "mine", "--dname", "CN=mine",
       "--key-type", "EC", "--key-password", "own-key-Pa55")  # fmt: skip

    def protected(alias: str) -> bytes:  # the key as the JKS file protects it
        entry = mtls.Keystore.inspect(dest, PASSWORD)._entries.key(alias)
        assert entry is not None
        return entry.jks_protected

    before = protected("mine")
    run = ok("importkeystore", "-srckeystore", seed.dir / "gateway.jks", "-destkeystore", dest)
    assert "Imported 1 entry" in run.stdout
    assert protected("mine") == before  # the same bytes, under its own password
    assert sorted(mtls.Keystore.inspect(dest, PASSWORD).key_aliases) == ["gateway", "mine"]


def test_importkeystore_keystore_and_storepass_name_the_destination_as_in_keytool(
    tmp_path: Path, seed: Seed
) -> None:
    """In keytool -importkeystore, -keystore, -storepass and -keypass name the
    destination (as -destkeystore, -deststorepass, -destkeypass): keytool made
    dest.p12 under "Dest-Pa55" (checked with JDK 17). mtls took them for the source:
    a command copied from keytool failed, or converted the wrong file (the review).
    The twin: the -src spellings still name the source."""
    dest = tmp_path / "dest.p12"
    ok("importkeystore", "-srckeystore", seed.dir / "gateway.jks", "-srcstorepass", PASSWORD,
       "-keystore", dest, "-storepass", "Dest-Pa55", "-deststoretype", "PKCS12")  # fmt: skip
    assert mtls.Keystore.load(dest, "Dest-Pa55").key_aliases == ("gateway",)
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(dest, PASSWORD)


def test_importkeystore_destalias_renames_the_entry_as_keytool_does(
    tmp_path: Path, seed: Seed, any_keytool: JDK
) -> None:
    """keytool -importkeystore -srcalias X -destalias Y copies X as Y (rc 0, listed as
    y); mtls exited 2, "unrecognized arguments" (h185). The twins: -destalias without
    -srcalias is refused, as keytool refuses it ("if alias not specified, destalias
    and srckeypass must not be specified")."""
    source = seed.dir / "gateway.jks"
    ours, theirs = tmp_path / "ours.p12", tmp_path / "theirs.p12"
    ok("-importkeystore", "-srckeystore", source, "-srcstorepass", PASSWORD, "-destkeystore",
       ours, "-deststorepass", PASSWORD, "-srcalias", "gateway", "-destalias", "Edge-GW")  # fmt: skip
    run_keytool(any_keytool, "-importkeystore", "-srckeystore", str(source), "-srcstorepass",
                PASSWORD, "-destkeystore", str(theirs), "-deststorepass", PASSWORD,
                "-srcalias", "gateway", "-destalias", "Edge-GW", "-noprompt")  # fmt: skip
    listed = [keytool_list(any_keytool.keytool, path) for path in (ours, theirs)]
    for text in listed:
        assert "Alias name: edge-gw\n" in text and "Entry type: PrivateKeyEntry" in text
        assert "Your keystore contains 1 entry" in text
    (alias,) = mtls.Keystore.load(ours, PASSWORD).key_aliases
    assert alias.lower() == "edge-gw"
    refused = fails(2, "-importkeystore", "-srckeystore", source, "-srcstorepass", PASSWORD,
                    "-destkeystore", tmp_path / "none.p12", "-deststorepass", PASSWORD,
                    "-destalias", "x")  # fmt: skip
    assert "give --alias too" in refused.stderr and not (tmp_path / "none.p12").exists()


def test_a_store_with_secret_keys_is_refused_up_front_naming_them(
    tmp_path: Path, seed: Seed, any_keytool: JDK
) -> None:
    """mtls lists secret-key entries but never decrypts them, so it cannot write such a
    store back. import named the secret key as if the user had asked for it, and
    genkey said to call a Python method."""
    path = tmp_path / "with-secret.p12"
    store = ("-keystore", str(path), "-storetype", "PKCS12", "-storepass", PASSWORD)
    run_keytool(any_keytool, "-genkeypair", *store, "-alias", "gw", "-keyalg", "EC",
                "-dname", "CN=gw")  # fmt: skip
    run_keytool(any_keytool, "-genseckey", *store, "-alias", "sk", "-keyalg", "AES",
                "-keysize", "128")  # fmt: skip
    written = path.read_bytes()
    cert = tmp_path / "backend.cer"
    cert.write_bytes(
        mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD).export_certificate("backend", "DER")
    )
    for args in (("import", "--file", cert, "--alias", "t"),
                 ("genkey", "--alias", "t", "--dname", "CN=t")):  # fmt: skip
        run = fails(1, *args, "--keystore", path)
        assert "holds secret-key entries ('sk')" in run.stderr and "keytool" in run.stderr
        assert "store.remove" not in run.stderr
    assert path.read_bytes() == written  # nothing written


def test_import_refuses_a_duplicate_alias_unless_replace(tmp_path: Path, seed: Seed) -> None:
    trust = tmp_path / "trust.jks"
    cert = tmp_path / "backend.cer"
    cert.write_bytes(mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD).export_certificate(
        "backend", "DER"))  # fmt: skip
    ok("import", "--file", cert, "--alias", "backend", "--keystore", trust)
    run = fails(1, "import", "--file", cert, "--alias", "backend", "--keystore", trust)
    assert "--replace" in run.stderr
    replaced = mtls_run("import", "--file", cert, "--alias", "backend", "--keystore", trust,
                        "--replace")  # fmt: skip
    assert replaced.code == 0
    assert mtls.Truststore.load(trust, PASSWORD).aliases == ("backend",)


def test_convert_to_pkcs12_and_pem_keeps_the_key(tmp_path: Path, seed: Seed) -> None:
    source = seed.dir / "gateway.jks"
    p12, pem = tmp_path / "gateway.p12", tmp_path / "gateway.pem"
    run = ok("convert", "--keystore", source, "--to", "PKCS12", "--out", p12)
    assert "(PKCS12): 1 key entry" in run.stdout
    original = mtls.Keystore.load(source, PASSWORD)
    converted = mtls.Keystore.load(p12, PASSWORD)
    assert converted.store_type == "PKCS12"
    assert converted.key_entry()[1:] == original.key_entry()[1:]
    ok("convert", "-srckeystore", source, "-deststoretype", "pem", "-destkeystore", pem)
    assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()
    assert mtls.Keystore.load(pem, PASSWORD).key_entry()[1:] == original.key_entry()[1:]
    assert "exists" in fails(1, "convert", "--keystore", source, "--to", "JKS", "--out", p12).stderr


def test_importkeystore_migrates_a_store_in_place_as_keytool_does(
    tmp_path: Path, seed: Seed, any_keytool: JDK
) -> None:
    """keytool's warning on a JKS store prints the command that migrates it in place
    (-srckeystore and -destkeystore the same file, -deststoretype pkcs12): mtls
    refused it ("is a JKS store, not PKCS12"). It migrates the store, keeps the old
    one as NAME.old, and keytool reads both. The twin: the same type in place is
    refused, and nothing is written."""
    store = tmp_path / "ip.jks"
    store.write_bytes((seed.dir / "gateway.jks").read_bytes())
    original = store.read_bytes()
    run = ok("importkeystore", "-srckeystore", store, "-destkeystore", store,
             "-deststoretype", "pkcs12")  # fmt: skip
    assert "Migrated" in run.stdout and "kept as" in run.stdout
    assert (tmp_path / "ip.jks.old").read_bytes() == original
    migrated = mtls.Keystore.load(store, PASSWORD)
    assert migrated.store_type == "PKCS12"
    before = mtls.Keystore.load(tmp_path / "ip.jks.old", PASSWORD)
    assert migrated.key_entry()[1:] == before.key_entry()[1:]
    for path, kind in ((store, "PKCS12"), (tmp_path / "ip.jks.old", "JKS")):
        assert f"Keystore type: {kind}" in keytool_list(any_keytool.keytool, path)
    now = store.read_bytes()
    run = fails(1, "importkeystore", "-srckeystore", store, "-destkeystore", store,
                "-deststoretype", "pkcs12")  # fmt: skip
    assert "is the source store" in run.stderr and store.read_bytes() == now


def test_a_migrated_pem_keys_backup_keeps_no_group_access(tmp_path: Path) -> None:
    """The backup NAME.old of a PEM key migrated in place holds the key as the PEM did
    (in the clear): written over a stale 0640 NAME.old, it kept the group's read."""
    import stat

    pem = CA().issue_cert("gw").write_pem(tmp_path / "gw.pem")
    backup = tmp_path / "gw.pem.old"
    backup.write_text("stale")
    backup.chmod(0o640)
    ok("importkeystore", "-srckeystore", pem, "-destkeystore", pem, "-deststoretype",
       "pkcs12", "-deststorepass", PASSWORD, "-noprompt")  # fmt: skip
    assert b"PRIVATE KEY" in backup.read_bytes()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600


def test_an_empty_store_converted_to_a_new_file_is_0600(tmp_path: Path) -> None:
    """An empty store still carries a MAC or digest keyed by its password: written as a
    new file it is 0600, as any keystore (my first keep-the-mode fix made it 0644)."""
    import stat

    empty = tmp_path / "empty.p12"
    mtls.Keystore().save(empty, PASSWORD, store_type="PKCS12")
    for kind, name in (("JKS", "new.jks"), ("PKCS12", "new.p12")):
        ok("importkeystore", "-srckeystore", empty, "-srcstorepass", PASSWORD,
           "-destkeystore", tmp_path / name, "-deststoretype", kind,
           "-deststorepass", PASSWORD, "-noprompt")  # fmt: skip
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_importkeystore_adds_to_an_existing_store_as_keytool_does(
    tmp_path: Path, seed: Seed
) -> None:
    """keytool -importkeystore merges into an existing destination (mtls replaced it
    with --force, losing its entries, and refused it without)."""
    source = seed.dir / "gateway.jks"
    dest = tmp_path / "dest.p12"
    mtls.Keystore.generate("existing", "CN=existing", key_type="EC").save(
        dest, PASSWORD, store_type="PKCS12"
    )
    run = ok("importkeystore", "-srckeystore", source, "-destkeystore", dest)
    assert "Imported 1 entry" in run.stdout and "now holds 2 key entries" in run.stdout
    merged = mtls.Keystore.load(dest, PASSWORD)
    assert sorted(merged.key_aliases) == ["existing", "gateway"]
    original = mtls.Keystore.load(source, PASSWORD)
    assert merged.key_entry("gateway")[1:] == original.key_entry()[1:]
    # An alias the destination has: refused, the file untouched; -noprompt replaces it.
    before = dest.read_bytes()
    run = fails(1, "importkeystore", "-srckeystore", source, "-destkeystore", dest)
    assert "already has 'gateway'" in run.stderr and "-noprompt" in run.stderr
    assert dest.read_bytes() == before
    run = ok("importkeystore", "-srckeystore", source, "-destkeystore", dest, "-noprompt")
    assert sorted(mtls.Keystore.load(dest, PASSWORD).key_aliases) == ["existing", "gateway"]
    assert "private key" not in run.stderr  # a key replaced by a key: as asked
    # A trusted certificate over a key entry of that name: as keytool -noprompt does,
    # but said (keytool says nothing, and a private key is gone).
    trusted = tmp_path / "trusted.p12"
    only_cert = mtls.Truststore()
    only_cert.add("existing", original.export_certificate("gateway", "DER"))
    only_cert.save(trusted, PASSWORD, store_type="PKCS12")
    run = mtls_run("importkeystore", "-srckeystore", trusted, "-destkeystore", dest, "-noprompt")
    assert run.code == 0, run.stderr
    assert "key entry 'existing' (its private key) is replaced by the source's" in run.stderr
    assert sorted(mtls.Keystore.load(dest, PASSWORD).key_aliases) == ["gateway"]
    ok("importkeystore", "-srckeystore", source, "-destkeystore", dest, "-noprompt")
    # Another type than the destination's is refused rather than converted.
    run = fails(1, "importkeystore", "-srckeystore", source, "-destkeystore", dest,
                "-deststoretype", "JKS")  # fmt: skip
    assert "is a PKCS12 store, not JKS" in run.stderr
    # The twins: convert still refuses an existing file unless told (--merge or --force),
    # and --force replaces it.
    run = fails(1, "convert", "--keystore", source, "--to", "PKCS12", "--out", dest)
    assert "--merge" in run.stderr
    ok("convert", "--keystore", source, "--to", "PKCS12", "--out", dest, "--force")
    assert mtls.Keystore.load(dest, PASSWORD).key_aliases == ("gateway",)
    # Without -deststoretype, importkeystore writes PKCS12, keytool's default, and an
    # existing JKS destination stays JKS, as in keytool.
    fresh = tmp_path / "fresh.store"
    ok("importkeystore", "-srckeystore", source, "-destkeystore", fresh)
    assert mtls.Keystore.load(fresh, PASSWORD).store_type == "PKCS12"
    jks = tmp_path / "dest.jks"
    mtls.Keystore.generate("other", "CN=other", key_type="EC").save(jks, PASSWORD)
    ok("importkeystore", "-srckeystore", source, "-destkeystore", jks)
    assert mtls.Keystore.load(jks, PASSWORD).store_type == "JKS"
    # A wrong destination password names the destination's options, not the source's.
    run = fails(1, "importkeystore", "-srckeystore", source, "-destkeystore", jks,
                "-deststorepass", OTHER_PASSWORD, "-noprompt")  # fmt: skip
    assert "--out-password (-deststorepass)" in run.stderr
    assert "--to" in fails(2, "convert", "--keystore", source, "--out", tmp_path / "x").stderr


def test_export_to_stdout_as_pem(seed: Seed) -> None:
    run = ok("export", "--keystore", seed.dir / "client-truststore.jks", "--alias", "backend",
             "-rfc")  # fmt: skip
    assert run.stdout.startswith("-----BEGIN CERTIFICATE-----")


def test_export_reads_as_keytool_exportcert_does(tmp_path: Path) -> None:
    """Asked for a secret-key entry, export said the store "holds no certificates
    (only 1 secret-key entry): a truststore needs at least one": the user asked for an
    entry, not a truststore. And `--password ''`, which `list` takes to skip a JKS's
    integrity check as keytool does without a password, was a wrong password. Export
    reads entries as list does now. The twins: a certificate entry exports, with and
    without the integrity check."""
    from mtls.testing import CA

    store = mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
    store.add_certificate("ca", CA().certificate)
    path = tmp_path / "gw.jks"
    store.save(path, PASSWORD)
    exported = ok("export", "--keystore", path, "--alias", "ca", "--rfc", "--password", PASSWORD)
    assert exported.stdout.startswith("-----BEGIN CERTIFICATE-----")
    unchecked = mtls_run("export", "--keystore", path, "--alias", "gw", "--rfc", "--password", "")
    assert unchecked.code == 0 and unchecked.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "without the integrity check" in unchecked.stderr
    run = fails(1, "export", "--keystore", path, "--alias", "nope", "--password", PASSWORD)
    assert "no entry with alias 'nope'; aliases are: 'gw', 'ca'" in run.stderr
    secret = tmp_path / "sec.jceks"
    subprocess.run(["keytool", "-genseckey", "-keystore", str(secret), "-storetype", "JCEKS",
                    "-storepass", PASSWORD, "-keypass", PASSWORD, "-alias", "sk", "-keyalg",
                    "AES", "-keysize", "128"], check=True, capture_output=True, timeout=120)  # fmt: skip
    run = fails(1, "export", "--keystore", secret, "--alias", "sk", "--password", PASSWORD)
    assert "'sk' is a secret key" in run.stderr and "it holds no certificate" in run.stderr
    assert "truststore" not in run.stderr


# --------------------------------------------------------------------------- writes that fail


def _no_temporaries(directory: Path) -> None:
    assert not [p.name for p in directory.rglob(".*.tmp")], "a temporary file was left"


def test_a_write_into_a_missing_directory_names_the_file_and_the_fix(
    tmp_path: Path, seed: Seed
) -> None:
    target = tmp_path / "nodir" / "gw.jks"
    run = fails(1, "genkey", "--keystore", target, "--alias", "gw", "--dname", "CN=gw")
    assert f"{target}: the directory {target.parent} does not exist: create it first" in run.stderr
    assert ".tmp" not in run.stderr
    (tmp_path / "out").mkdir()
    run = fails(1, "convert", "--keystore", seed.dir / "gateway.jks", "--to", "PKCS12",
                "--out", tmp_path / "out", "--force")  # fmt: skip
    assert f"{tmp_path / 'out'}: is a directory: give a file path" in run.stderr
    _no_temporaries(tmp_path)
    # the twin: once the directory exists, the same command works
    target.parent.mkdir()
    ok("genkey", "--keystore", target, "--alias", "gw", "--dname", "CN=gw")


def test_export_past_the_file_size_limit_leaves_no_partial_file(tmp_path: Path, seed: Seed) -> None:
    import resource

    out = tmp_path / "backend.pem"
    args = ["export", "--keystore", seed.dir / "client-truststore.jks", "--alias", "backend",
            "--file", out, "-rfc"]  # fmt: skip
    # Not measured by coverage (its data file would be cut at 100 bytes too, and the
    # combined report warned that it was malformed, in every CI run).
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
    limited = subprocess.run(
        [sys.executable, "-m", "mtls", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env={**env, "MTLS_STORE_PASSWORD": PASSWORD, "NO_COLOR": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100)),
    )  # fmt: skip
    assert limited.returncode == 1, limited.stderr
    assert f"{out}: larger than the file size limit" in limited.stderr
    assert not out.exists()
    _no_temporaries(tmp_path)
    ok(*args)  # the twin: without the limit, the whole certificate
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----")


# --------------------------------------------------------------------------- options and outputs


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["probe", "https://localhost:1/", "--timeout", "nan"], "--timeout"),
        (["probe", "https://localhost:1/", "--timeout", "inf"], "--timeout"),
        (["serve", "--keystore", "k.jks", "--truststore", "t.jks", "--port", "70000"], "--port"),
        (["serve", "--keystore", "k.jks", "--truststore", "t.jks", "--reload-interval", "-1"],
         "--reload-interval"),
        (["genkey", "--keystore", "k.jks", "--alias", "a", "--dname", "CN=a", "--days",
          "99999999"], "--days"),
        (["genkey", "--keystore", "k.jks", "--alias", "a", "--dname", "CN=a", "--key-size",
          "99999"], "--key-size"),
    ],
)  # fmt: skip
def test_an_option_out_of_range_is_a_usage_error(
    tmp_path: Path, args: list[str], option: str
) -> None:
    run = fails(2, *args, cwd=tmp_path)
    assert f"argument {option}" in run.stderr and "must be from" in run.stderr
    assert "unexpected" not in run.stderr
    assert not list(tmp_path.iterdir())  # nothing was made


def test_a_jks_alias_too_long_for_java_is_refused_by_name(tmp_path: Path) -> None:
    run = fails(1, "genkey", "--keystore", tmp_path / "k.jks", "--alias", "a" * 70_000,
                "--dname", "CN=a")  # fmt: skip
    assert "too long for JKS" in run.stderr and "save as PKCS12" in run.stderr
    ok("genkey", "--keystore", tmp_path / "k.jks", "--alias", "a" * 100, "--dname", "CN=a")


def test_adding_to_a_jceks_store_is_refused_before_any_key_password_is_asked_for(
    tmp_path: Path, any_keytool: JDK
) -> None:
    """mtls decrypted every key of a JCEKS store first: each key's own password was
    asked for ("pass --key-password"), and no one password opens both, only for the
    store to be refused as a JCEKS store after (keytool -importcert needs none)."""
    path = tmp_path / "n.jceks"
    store = ("-keystore", str(path), "-storetype", "JCEKS", "-storepass", PASSWORD)
    for alias, key_password in (("k1", "key-pass-1"), ("k2", "key-pass-2")):
        run_keytool(any_keytool, "-genkeypair", *store, "-alias", alias, "-keyalg", "EC",
                    "-keypass", key_password, "-dname", f"CN={alias}")  # fmt: skip
    cert = tmp_path / "t.pem"
    cert.write_bytes(CA().certificate.public_bytes(Encoding.PEM))
    before = path.read_bytes()
    for command in (
        ("import", "--file", cert, "--alias", "t2"),
        ("genkey", "--alias", "k3", "--dname", "CN=k3"),
    ):
        run = fails(1, *command, "--keystore", path, "--password", PASSWORD)
        assert "is a JCEKS store; mtls changes JKS and PKCS12 stores only" in (run.stderr)
        assert "key-password" not in run.stderr and "does not unlock" not in run.stderr
    assert path.read_bytes() == before
    # The twin: the same keys in a JKS store take the certificate, no key password asked.
    jks = tmp_path / "n.jks"
    run_keytool(any_keytool, "-importkeystore", "-srckeystore", str(path), "-srcstoretype",
                "JCEKS", "-srcstorepass", PASSWORD, "-destkeystore", str(jks),
                "-deststoretype", "JKS", "-deststorepass", PASSWORD,
                "-srcalias", "k1", "-srckeypass", "key-pass-1", "-destkeypass", "key-pass-1")  # fmt: skip
    ok("import", "--file", cert, "--alias", "t2", "--keystore", jks, "--password", PASSWORD)
    assert sorted(mtls.Keystore.inspect(jks, PASSWORD).aliases) == ["k1", "t2"]


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_delete_removes_one_entry_and_keeps_the_rest_as_keytool_does(
    tmp_path: Path, any_keytool: JDK, store_type: str
) -> None:
    """keytool -delete: a daily operation of a rotation (an old CA out of a truststore).
    The other entries stay as they were: a JKS key with a password of its own is not
    decrypted, and still opens with it."""
    path = tmp_path / f"s.{'jks' if store_type == 'JKS' else 'p12'}"
    store = ("-keystore", str(path), "-storetype", store_type, "-storepass", PASSWORD)
    key_password = "key-pass-own" if store_type == "JKS" else PASSWORD
    run_keytool(any_keytool, "-genkeypair", *store, "-alias", "gw", "-keyalg", "EC",
                "-keypass", key_password, "-dname", "CN=gw")  # fmt: skip
    for alias in ("old-ca", "new-ca"):
        cert = tmp_path / f"{alias}.pem"
        cert.write_bytes(CA(name=alias).certificate.public_bytes(Encoding.PEM))
        run_keytool(any_keytool, "-importcert", *store, "-alias", alias, "-file", str(cert))
    before = path.read_bytes()
    # Twins first: a wrong password, an unknown alias: exit 1, the file untouched.
    fails(1, "delete", "--alias", "old-ca", "--keystore", path, "--password", OTHER_PASSWORD)
    run = fails(1, "delete", "--alias", "nope", "--keystore", path, "--password", PASSWORD)
    assert "no entry with alias 'nope'" in run.stderr and "'old-ca'" in run.stderr
    assert path.read_bytes() == before
    done = ok("-delete", "-alias", "OLD-CA", "-keystore", path, "-storepass", PASSWORD)
    assert "Deleted" in done.stdout and "trustedCertEntry" in done.stdout
    listed = run_keytool(any_keytool, "-list", *store)
    assert "old-ca" not in listed and "new-ca" in listed and "gw," in listed
    # The key entry kept its own password: keytool still takes it out with it.
    run_keytool(any_keytool, "-importkeystore", "-srckeystore", str(path), "-srcstoretype",
                store_type, "-srcstorepass", PASSWORD, "-srcalias", "gw", "-srckeypass",
                key_password, "-destkeystore", str(tmp_path / "out.p12"), "-deststoretype",
                "PKCS12", "-deststorepass", PASSWORD)  # fmt: skip
    assert mtls.Keystore.load(tmp_path / "out.p12", PASSWORD).key_aliases == ("gw",)


def test_convert_refuses_a_store_of_secret_keys_instead_of_writing_it_empty(
    tmp_path: Path,
) -> None:
    from tests._keytool import KEYTOOLS, run_keytool

    if not KEYTOOLS:
        pytest.skip("no keytool to make a JCEKS secret key with")
    source = tmp_path / "sk.jceks"
    run_keytool(KEYTOOLS[0], "-genseckey", "-alias", "sk", "-keyalg", "AES", "-keysize", "128",
                "-keystore", str(source), "-storetype", "JCEKS", "-storepass", PASSWORD)  # fmt: skip
    out = tmp_path / "sk.p12"
    run = fails(1, "convert", "--keystore", source, "--to", "PKCS12", "--out", out)
    assert "secret-key entries 'sk' cannot be converted" in run.stderr
    assert "keytool -importkeystore" in run.stderr
    assert not out.exists()


def test_json_error_type_is_the_librarys_class_for_a_wrong_password(tmp_path: Path) -> None:
    """Scripts tell failures apart by "type": a wrong password is WrongPasswordError
    (the CLI rewords it), not the CLI's own CLIError."""
    store = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(store, PASSWORD, store_type="PKCS12")
    run = mtls_run("list", "--keystore", store, "--password", "not-the-password", "--json")
    assert run.code == 1
    assert json.loads(run.stdout)["error"]["type"] == "WrongPasswordError"
    # The twin: another failure has its own class; a missing store is the library's
    # KeystoreNotFoundError (it was the builtin FileNotFoundError).
    run = mtls_run("list", "--keystore", tmp_path / "missing.p12", "--json")
    assert json.loads(run.stdout)["error"]["type"] == "KeystoreNotFoundError"


def test_json_on_a_failure_before_the_document_is_still_json(tmp_path: Path) -> None:
    for args, kind in (
        (["list", "--keystore", tmp_path / "missing.jks", "--json"], "error"),
        (["check", tmp_path / "missing.xml", "--json"], "error"),
        (["probe", "https://localhost:1/", "--timeout", "nan", "--json"], "usage"),
    ):
        run = mtls_run(*args)
        assert run.code == (2 if kind == "usage" else 1)
        document = json.loads(run.stdout)
        assert document["ok"] is False and document["error"]["kind"] == kind
        assert document["error"]["message"] in run.stderr
    # the twin: without --json, stdout stays empty
    assert mtls_run("list", "--keystore", tmp_path / "missing.jks").stdout == ""


def test_probe_never_shows_a_password_in_the_url() -> None:
    port = closed_port()
    run = mtls_run("probe", f"https://user:pr0be-s3cret@localhost:{port}/", "--timeout", "2",
                   "--json")  # fmt: skip
    assert "pr0be-s3cret" not in run.stdout + run.stderr
    assert json.loads(run.stdout)["url"] == f"https://***@localhost:{port}/"


def test_an_empty_out_password_variable_does_not_write_a_clear_key(
    tmp_path: Path, seed: Seed
) -> None:
    pem = tmp_path / "gw.pem"
    ok("convert", "--keystore", seed.dir / "gateway.jks", "--to", "PEM", "--out", pem,
       env={"MTLS_OUT_PASSWORD": ""})  # fmt: skip
    assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()  # with the store password
    # the twin: the option asks for it in so many words
    run = mtls_run("convert", "--keystore", seed.dir / "gateway.jks", "--to", "PEM", "--out",
                   pem, "--force", "--out-password", "")  # fmt: skip
    assert run.code == 0 and b"ENCRYPTED" not in pem.read_bytes()


def test_export_writes_through_links_and_into_pipes(tmp_path: Path, seed: Seed) -> None:
    """A link stays a link (its target gets the certificate); a FIFO or /dev/fd/N is
    written in place, as keytool writes: only a regular file is replaced atomically."""
    args = ["export", "--keystore", seed.dir / "client-truststore.jks", "--alias", "backend",
            "-rfc", "--file"]  # fmt: skip
    target = tmp_path / "real.pem"
    link = tmp_path / "link.pem"
    link.symlink_to(target)
    ok(*args, link)
    assert link.is_symlink() and target.read_text().startswith("-----BEGIN CERTIFICATE-----")
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    ok(*args, fifo)
    out, _ = reader.communicate(timeout=30)
    assert out.startswith(b"-----BEGIN CERTIFICATE-----") and fifo.exists()
    assert not fifo.is_file()  # still the FIFO
    # A device that refuses the bytes: the error names it (it said only "No space
    # left on device").
    if os.path.exists("/dev/full"):
        run = fails(1, *args, "/dev/full")
        assert "/dev/full: no space left on the device" in run.stderr


def test_a_certificate_or_request_is_never_written_over_a_keystore_unasked(
    tmp_path: Path, seed: Seed
) -> None:
    """export --file, certreq --file and gencert --outfile naming the store they read
    replaced it, keys and all, exit 0 (as keytool does; h167 HIGH): refused now, also
    through a link and with --force. Another keystore, or a PEM file with a private
    key, is replaced only with --force; a certificate file is replaced as before."""
    store = tmp_path / "gw.p12"
    ok("genkey", "--keystore", store, "--alias", "gw", "--dname", "CN=gw", "--key-type", "EC")
    before = store.read_bytes()
    link = tmp_path / "link.p12"
    link.symlink_to(store)
    request = tmp_path / "gw.csr"
    ok("certreq", "--keystore", store, "--file", request)
    for target in (store, link):
        for args in (
            ("export", "--keystore", store, "--alias", "gw", "--file", target),
            ("certreq", "--keystore", store, "--file", target),
            ("gencert", "--keystore", store, "--infile", request, "--outfile", target),
        ):
            run = mtls_run(*args, "--force")
            assert run.code == 1, run.stderr
            assert f"{target} is the store this command reads" in run.stderr, run.stderr
            assert store.read_bytes() == before
    # Another keystore: refused unless --force.
    other = tmp_path / "other.jks"
    mtls.Keystore.load(seed.dir / "gateway.jks", PASSWORD).save(other, PASSWORD)
    export = ("export", "--keystore", store, "--alias", "gw", "--rfc", "--file")
    run = fails(1, *export, other)
    assert f"{other} is a JKS store" in run.stderr and "--force" in run.stderr
    assert mtls.Keystore.load(other, PASSWORD).key_aliases == ("gateway",)
    ok(*export, other, "--force")
    assert other.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # A PEM file holding a private key: the same.
    pem_key = tmp_path / "key.pem"
    mtls.Keystore.load(store, PASSWORD).save(pem_key, PASSWORD, store_type="PEM")
    run = fails(1, "certreq", "--keystore", store, "--file", pem_key)
    assert "PEM file holding a private key" in run.stderr
    assert b"PRIVATE KEY" in pem_key.read_bytes()
    # ... and a DER one, PKCS#8 or the traditional form (h169: replaced, exit 0).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    for form in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        der_key = tmp_path / "key.der"
        der_key.write_bytes(
            key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())
        )
        before_key = der_key.read_bytes()
        run = fails(1, *export, der_key)
        assert "DER private key" in run.stderr and der_key.read_bytes() == before_key
    # The twin: a certificate or request file is replaced, as keytool replaces it.
    ok(*export, other)
    ok("certreq", "--keystore", store, "--file", request)
    assert request.read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")


def test_keytool_dash_importkeystore_merges_as_importkeystore_does(
    tmp_path: Path, seed: Seed
) -> None:
    """keytool's spelling -importkeystore ran convert without its keytool behaviour:
    "convert needs --to", or "exists: pass --force" with -deststoretype (h167)."""
    dest = tmp_path / "dest.p12"
    mtls.Keystore.generate("existing", "CN=existing", key_type="EC").save(
        dest, PASSWORD, store_type="PKCS12"
    )
    run = ok("-importkeystore", "-srckeystore", seed.dir / "gateway.jks", "-destkeystore", dest,
             "-deststoretype", "PKCS12")  # fmt: skip
    assert "Imported 1 entry" in run.stdout
    assert sorted(mtls.Keystore.load(dest, PASSWORD).key_aliases) == ["existing", "gateway"]
    # The twin: mtls's own convert still wants --to and refuses an existing --out.
    run = fails(2, "convert", "--keystore", seed.dir / "gateway.jks", "--out", dest)
    assert "convert needs --to" in run.stderr


def test_a_store_is_never_saved_over_a_pipe_or_device(tmp_path: Path, seed: Seed) -> None:
    """Saving renames a new file into place: over a FIFO (or, as root, /dev/null) it
    put a regular file where the pipe or device was, though every reader refuses such
    a path (an adversarial sweep found it). Refused now, saying so; the FIFO stays."""
    fifo = tmp_path / "out.p12"
    os.mkfifo(fifo)
    store = mtls.Keystore.load(seed.dir / "gateway.jks", PASSWORD)
    with pytest.raises(OSError, match="not a regular file") as caught:
        store.save(fifo, PASSWORD, store_type="PKCS12")
    assert caught.value.filename == str(fifo)
    assert fifo.exists() and not fifo.is_file()
    run = fails(1, "convert", "--keystore", seed.dir / "gateway.jks", "--to", "PKCS12",
                "--out", fifo, "--force")  # fmt: skip
    assert "not a regular file" in run.stderr and str(fifo) in run.stderr
    assert not fifo.is_file()
    # The twin: a regular file there is replaced.
    regular = tmp_path / "out2.p12"
    regular.write_bytes(b"old")
    store.save(regular, PASSWORD, store_type="PKCS12")
    assert mtls.Keystore.load(regular, PASSWORD).key_aliases == store.key_aliases


def test_a_refused_write_is_still_the_error_it_was() -> None:
    from mtls._files import WriteRefused, atomic_write

    with pytest.raises(FileNotFoundError) as caught:
        atomic_write("/nonexistent-dir/x.jks", b"x", mode=None)
    assert isinstance(caught.value, WriteRefused)
    assert caught.value.filename == "/nonexistent-dir/x.jks"
    assert "create it first" in str(caught.value)


def test_debug_logs_are_escaped_too(tmp_path: Path) -> None:
    store = tmp_path / "k.jks"
    ok("genkey", "--keystore", store, "--alias", "a", "--dname", "CN=evil\x1b[2Jsubject")
    done = subprocess.run(  # not mtls_run: --debug may show tracebacks, on purpose
        [sys.executable, "-m", "mtls", "list", "--keystore", str(store), "--alias", "nope",
         "--debug"],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "MTLS_STORE_PASSWORD": PASSWORD, "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" in done.stderr  # the debug log and traceback
    assert "evil\\x1b[2Jsubject" in done.stderr  # the subject, in the debug log line
    assert "\x1b" not in done.stderr
    assert PASSWORD not in done.stderr


def test_json_error_documents_only_for_commands_that_have_json(tmp_path: Path) -> None:
    run = mtls_run("genkey", "--keystore", tmp_path / "k.jks", "--alias", "a", "--json")
    assert run.code == 2 and run.stdout == ""


def test_system_errors_say_what_to_do(tmp_path: Path, seed: Seed) -> None:
    loop = tmp_path / "loop.jks"
    loop.symlink_to(loop)
    # The library's words for it (the CLI read the store itself, and said less).
    assert "(they form a loop)" in fails(1, "list", "--keystore", loop).stderr
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert "is a file: --dir takes a directory" in fails(1, "demo", "--dir", taken).stderr
    run = fails(1, "serve", "--keystore", seed.dir / "backend.jks", "--truststore",
                seed.dir / "backend-truststore.jks", "--host", "no-such-host.invalid",
                "--port", "0")  # fmt: skip
    assert "cannot resolve the host name" in run.stderr and "give an IP address" in run.stderr
    # The options at fault are named (the message named neither host nor port).
    assert "--host no-such-host.invalid --port 0:" in run.stderr
    run = fails(1, "serve", "--keystore", seed.dir / "backend.jks", "--truststore",
                seed.dir / "backend-truststore.jks", "--host", "192.0.2.1",
                "--port", "0")  # fmt: skip
    assert "--host 192.0.2.1 --port 0: " in run.stderr and "give one of its addresses" in run.stderr


def test_a_non_ascii_alias_on_an_ascii_stream_is_escaped_not_an_error(tmp_path: Path) -> None:
    store = tmp_path / "k.jks"
    ok("genkey", "--keystore", store, "--alias", "schlüssel", "--dname", "CN=a")
    run = mtls_run("list", "--keystore", store, env={"PYTHONIOENCODING": "ascii"})
    assert run.code == 0, run.stderr
    assert "schl\\xfcssel" in run.stdout


def test_an_internationalised_san_is_written_as_its_a_label(tmp_path: Path) -> None:
    store = tmp_path / "k.jks"
    ok("genkey", "--keystore", store, "--alias", "a", "--dname", "CN=a", "--san",
       "DNS:bücher.example,DNS:*.bücher.example,DNS:straße.example")  # fmt: skip
    cert = mtls.Keystore.load(store, PASSWORD).certificate("a")
    # A wildcard's "*" is kept and the rest encoded (it was refused as "not a DNS
    # name"); ß stays a letter (IDNA 2008, as HTTP clients send the name).
    assert mtls._x509.subject_alt_names(cert) == [
        "DNS:xn--bcher-kva.example",
        "DNS:*.xn--bcher-kva.example",
        "DNS:xn--strae-oqa.example",
    ]


def test_every_kind_of_alternative_name_is_shown_as_keytool_writes_it(tmp_path: Path) -> None:
    """An OID SAN (keytool's ``-ext san=oid:``) was shown as cryptography's repr,
    ``<ObjectIdentifier(oid=1.2.3.4, name=Unknown OID)>`` (h207); a directory name and
    an otherName are shown by kind too."""
    store = tmp_path / "k.jks"
    run = ok("genkey", "--keystore", store, "--alias", "a", "--dname", "CN=a", "--san",
             "OID:1.2.3.4,DNS:a.example")  # fmt: skip
    assert "SAN      OID:1.2.3.4, DNS:a.example" in run.stdout, run.stdout
    assert "ObjectIdentifier" not in run.stdout
    names = [
        x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])),
        x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03a@b"),
    ]
    assert mtls._x509.names_text(names) == ["DirName:CN=dir", "otherName:1.3.6.1.4.1.311.20.2.3"]


# --------------------------------------------------------------------------- bad store input


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["list", "--keystore", "{d}/gateway.jks", "--password", OTHER_PASSWORD], 1,
         ["gateway.jks", "wrong store password", "--password"]),
        (["list", "--keystore", "{d}/missing.jks"], 1, ["missing.jks", "no such file"]),
        (["export", "--keystore", "{d}/gateway.jks", "--alias", "nope", "--file", "{d}/x.cer"],
         1, ["no entry with alias 'nope'", "gateway"]),
        (["import", "--file", "{d}/missing.cer", "--alias", "a", "--keystore", "{d}/t.jks"], 1,
         ["missing.cer", "no such file"]),
        (["import", "--file", "{d}/gateway.jks", "--alias", "a", "--keystore", "{d}/t.jks"], 1,
         ["is a JKS keystore, not a certificate", "mtls export"]),
        (["genkey", "--keystore", "{d}/gateway.jks", "--alias", "x", "--dname", "CN=x",
          "--password", OTHER_PASSWORD], 1, ["gateway.jks", "wrong store password"]),
        (["convert", "--keystore", "{d}/gateway.jks", "--to", "PKCS12", "--out", "{d}/o.p12",
          "--password", OTHER_PASSWORD], 1, ["wrong store password"]),
        (["genkey", "--keystore", "{d}/new.jks", "--alias", "x", "--dname", "CN=x",
          "--password", "short"], 2, ["at least 6 characters"]),
        (["genkey", "--keystore", "{d}/new.jks", "--alias", "x", "--dname", "not a dn"], 2,
         ["malformed distinguished name"]),
        # It quoted cryptography ("Attribute's length must be >= 2 and <= 2") and showed
        # the name's backslashes doubled.
        (["genkey", "--keystore", "{d}/new.jks", "--alias", "x", "--dname", "CN=a\\,b, C=USA"],
         2, ['"CN=a\\,b, C=USA"', "C takes a two-letter country code (ISO 3166: US), not 'USA'"]),
        (["convert", "--keystore", "{d}/gateway.jks", "--to", "BKS", "--out", "{d}/o"], 2,
         ["must be JKS, PKCS12 or PEM"]),
        # These three were "unexpected ValueError", or named the wrong option.
        (["import", "--file", "{d}/x.cer", "--alias", "", "--keystore", "{d}/gateway.jks"], 2,
         ["an alias must not be empty"]),
        (["probe", "https://user:pw-in-url@[::1/"], 2, ["Invalid IPv6 URL", "***@"]),
        (["probe", "https://user:pw-in-url@exa\u2100mple.com/"], 2, ["NFKC", "***@"]),
        (["probe", "https://localhost:1/", "--truststore", "{d}/client-truststore.jks",
          "--truststore-password", OTHER_PASSWORD], 1,
         ["wrong store password", "--truststore-password", "MTLS_TRUSTSTORE_PASSWORD"]),
        (["convert", "--keystore", "{d}/gateway.jks", "--to", "PKCS12", "--out", "{d}"], 1,
         ["is a directory", "give a file path"]),
    ],
    ids=["wrong-password", "missing-store", "missing-alias", "missing-cert", "keystore-as-cert",
         "genkey-wrong-password", "convert-wrong-password", "short-password", "bad-dname",
         "three-letter-country",
         "bad-type", "empty-alias", "unclosed-ipv6", "nfkc-netloc", "truststore-password",
         "out-is-a-directory"],
)  # fmt: skip
def test_bad_store_input_is_one_line(
    seed: Seed, args: list[str], code: int, words: list[str]
) -> None:
    run = fails(code, *[a.replace("{d}", str(seed.dir)) for a in args])
    for word in words:
        assert word in run.stderr
    assert "unexpected" not in run.stderr and "pw-in-url" not in run.stderr


def test_list_with_an_empty_password_reads_a_jks_as_keytool_does(seed: Seed) -> None:
    """keytool -list given no password lists a JKS without its integrity check, with a
    warning; mtls said "wrong store password"."""
    run = mtls_run("list", "--keystore", seed.dir / "client-truststore.jks", "--password", "",
                   password_env=False)  # fmt: skip
    assert run.code == 0, run.stderr
    assert "backend  trustedCertEntry" in run.stdout
    assert "without the integrity check" in run.stderr
    # Twin: a wrong password that is not empty is still refused.
    assert "wrong store password" in fails(
        1, "list", "--keystore", seed.dir / "client-truststore.jks", "--password", "wrong-pass",
        password_env=False,
    ).stderr  # fmt: skip
    # With none at all (and no terminal), the usage error names that way out.
    assert (
        "pass --password '' to list it"
        in fails(
            2, "list", "--keystore", seed.dir / "client-truststore.jks", password_env=False
        ).stderr
    )


def test_library_advice_is_put_as_the_command_lines(tmp_path: Path, seed: Seed) -> None:
    """`mtls check` told users to "pass properties={...}", a Python parameter."""
    xml = tmp_path / "env.xml"
    xml.write_text(
        profile_xml(profile("a.test:443", seed.dir / "gateway.jks")).replace(
            f"<Password>{PASSWORD}</Password>", "<Password>$env{MTLS_TEST_UNSET_X}</Password>", 1
        )
    )
    for args in (("check", xml), ("check", xml, "--json")):
        run = mtls_run(*args)
        assert run.code == 1
        text = run.stdout + run.stderr
        assert "set it in the environment" in text and "properties=" not in text


def test_keytools_password_sources_env_and_file(tmp_path: Path, seed: Seed) -> None:
    """keytool scripts write -storepass:env NAME and -storepass:file PATH; mtls took
    them for unknown arguments."""
    store = seed.dir / "gateway.jks"
    env = {"GW_STORE_PASS": PASSWORD}
    run = mtls_run("list", "--keystore", store, "-storepass:env", "GW_STORE_PASS",
                   env=env, password_env=False)  # fmt: skip
    assert run.code == 0, run.stderr
    assert "gateway  PrivateKeyEntry" in run.stdout
    secret_file = tmp_path / "storepass.txt"
    secret_file.write_text(PASSWORD + "\nsecond line ignored\n")
    run = mtls_run("list", "--keystore", store, "-storepass:file", secret_file,
                   password_env=False)  # fmt: skip
    assert run.code == 0, run.stderr
    # Twins: an unset variable and a missing file are usage errors naming the option.
    # Not the word after it: that may be the password, typed where the name goes.
    run = fails(2, "list", "--keystore", store, "-storepass:env", "GW_UNSET_X",
                password_env=False)  # fmt: skip
    assert "-storepass:env: the environment variable named after it is not set" in run.stderr
    run = fails(2, "list", "--keystore", store, "-storepass:file", tmp_path / "none.txt",
                password_env=False)  # fmt: skip
    assert "-storepass:file: cannot read the file named after it" in run.stderr
    # A name too short to be a password is not hidden: a hidden "e" garbled every
    # word of the message.
    run = fails(2, "list", "--keystore", store, "-storepass:env", "e", "--bogus",
                env={"e": PASSWORD}, password_env=False)  # fmt: skip
    assert "unrecognized arguments: --bogus" in run.stderr
    for source in ("-storepass:env", "-keypass:file"):
        run = fails(2, "list", "--keystore", store, source, "Typed-Pa55-By-Mistake",
                    "--json", password_env=False)  # fmt: skip
        assert "Typed-Pa55-By-Mistake" not in run.stderr + run.stdout, source
    # A wrong password from the file is refused, and never shown.
    secret_file.write_text("wrong-Pa55-from-file\n")
    run = fails(1, "list", "--keystore", store, "-storepass:file", secret_file,
                password_env=False)  # fmt: skip
    assert "wrong store password" in run.stderr and "wrong-Pa55-from-file" not in run.stderr
    # /dev/zero has no first line: it was read until memory ran out. The read is
    # bounded, and such a "line" is refused (an adversarial sweep found it).
    run = fails(2, "list", "--keystore", store, "-storepass:file", "/dev/zero",
                password_env=False)  # fmt: skip
    assert "longer than 4,096 characters" in run.stderr
    # A pipe is read, as keytool reads it (-storepass:file <(vault read ...)).
    fifo = tmp_path / "pass.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf '%s\\n' '{PASSWORD}' > '{fifo}'"])
    run = mtls_run("list", "--keystore", store, "-storepass:file", fifo, password_env=False)
    writer.wait(timeout=30)
    assert run.code == 0, run.stderr


def test_no_password_and_no_terminal_is_a_usage_error(seed: Seed) -> None:
    run = fails(2, "list", "--keystore", seed.dir / "gateway.jks", password_env=False)
    assert "MTLS_STORE_PASSWORD" in run.stderr
    assert "--password" in run.stderr


# --------------------------------------------------------------------------- check


CHECK_KEYS = {"path", "hostname_verifier", "ok", "loads", "wso2_cannot_load",
              "stores_wso2_cannot_load", "mtls_refused",
              "profiles", "default",
              "failed", "warnings",
              "vault", "fail_within", "status"}  # fmt: skip
CHECK_ROW_KEYS = {"servers", "client_id", "loaded", "keystore", "truststore", "client_subject",
                  "not_after", "days_left", "anchors", "hostname", "problems", "out_of_date",
                  "error"}  # fmt: skip
PROBE_KEYS = {"url", "host", "port", "ok", "matched", "profile", "source", "keystore",
              "truststore", "hostname_verifier", "client_certificate", "address", "tls_version",
              "cipher", "server_chain", "chain_verified", "chain_from_unverified_handshake",
              "server_accepted_client_certificate", "client_certificate_requested", "server_ca_names",
              "http_status", "error", "notes", "revocation"}  # fmt: skip


def test_check_tabulates_the_seed_profile(seed: Seed) -> None:
    out = ok("check", seed.xml, "--base-dir", seed.dir).stdout
    header, row = [line for line in out.splitlines() if line.startswith(("SERVER", "localhost"))]
    for column in ("SERVER", "KEYSTORE", "TRUSTSTORE", "CLIENT CERTIFICATE", "EXPIRES",
                   "ANCHORS", "HOSTNAME", "PROBLEMS"):  # fmt: skip
        assert column in header
    assert f"localhost:{seed.port}" in row
    assert "gateway.jks" in row
    assert "client-truststore.jks" in row
    assert "CN=gateway" in row
    assert "Strict" in row
    assert "OK: 1 profile loaded" in out


def test_check_json_has_the_documented_keys(seed: Seed) -> None:
    data = json.loads(ok("check", seed.xml, "--base-dir", seed.dir, "--json").stdout)
    assert set(data) == CHECK_KEYS
    assert data["ok"] is True
    assert data["fail_within"] is None
    assert data["status"]["profiles"][0]["identity"]["subject"] == "CN=gateway"
    (row,) = data["profiles"]
    assert set(row) == CHECK_ROW_KEYS
    assert row["servers"] == [f"localhost:{seed.port}"]
    assert row["anchors"] == 1
    assert row["client_subject"] == "CN=gateway"
    assert row["days_left"] >= 364
    assert row["problems"] == []


def test_check_reads_deployment_toml(seed: Seed, tmp_path: Path) -> None:
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{seed.xml}"\ninterval = 600000\n'
        "[transport.passthru_https.sender.parameters]\n"
        'HostnameVerifier = "DefaultAndLocalhost"\n'
    )
    data = json.loads(
        ok("check", "--deployment-toml", toml, "--base-dir", seed.dir, "--json").stdout
    )
    assert data["hostname_verifier"] == "DefaultAndLocalhost"
    assert data["profiles"][0]["hostname"] == "DefaultAndLocalhost (not checked for localhost)"


def test_check_reports_every_failing_profile(seed: Seed) -> None:
    xml = seed.dir / "mixed.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{seed.port}"),
            profile("wrongpw.example:9443", password=OTHER_PASSWORD),
            profile("missing.example:9443", keystore="missing.jks"),
        )
    )
    run = fails(1, "check", xml, "--base-dir", seed.dir)
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if ".example:" in line}
    assert "wrong store password" in rows["wrongpw.example:9443"]
    assert "missing.jks: no such keystore file" in rows["missing.example:9443"]
    assert "FAILED: 2 of 3 profiles did not load" in run.stdout
    assert "2 of 3 profiles did not load" in run.stderr
    # Each reason once, in its row: not again as a note (it was said three times).
    assert run.stdout.count("missing.jks: no such keystore file") == 1
    data = json.loads(mtls_run("check", xml, "--base-dir", seed.dir, "--json").stdout)
    assert data["ok"] is False
    assert [r["loaded"] for r in data["profiles"]].count(False) == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("<parameter><profile><servers>a:1</servers>", ["broken.xml"]),
        ("<parameter><profile><servers>nohost</servers></profile></parameter>",
         ["no port", "nohost:443"]),
    ],
    ids=["unclosed-xml", "server-without-port"],
)  # fmt: skip
def test_check_broken_xml_is_one_line(tmp_path: Path, content: str, words: list[str]) -> None:
    xml = tmp_path / "broken.xml"
    xml.write_text(content)
    run = fails(1, "check", xml)
    for word in words:
        assert word in run.stderr


def test_check_missing_file_and_missing_argument(tmp_path: Path) -> None:
    assert "no such" in fails(1, "check", tmp_path / "none.xml").stderr
    assert "--deployment-toml" in fails(2, "check").stderr


# --------------------------------------------------------------------------- probe


def test_probe_through_the_profile_succeeds(seed: Seed) -> None:
    seed.server.clear_handshakes()
    out = ok("probe", f"https://localhost:{seed.port}/", "--profiles", seed.xml,
             "--base-dir", seed.dir).stdout  # fmt: skip
    assert f"profile [localhost:{seed.port}]" in out
    assert "TLSv1.3" in out
    assert "[0] CN=localhost" in out
    assert "server chain  verified" in out
    assert "accepted our certificate: HTTP/1.1 200 OK" in out
    assert f"OK: TLS with localhost:{seed.port} works" in out
    accepted = [h for h in seed.server.wait_for_handshakes(1) if h.accepted]
    assert accepted[-1].client_cn == "gateway"


def test_probe_json_has_the_documented_keys(seed: Seed) -> None:
    run = ok("probe", f"localhost:{seed.port}", "--profiles", seed.xml, "--base-dir", seed.dir,
             "--json")  # fmt: skip
    data = json.loads(run.stdout)
    assert set(data) == PROBE_KEYS
    assert data["ok"] is True
    assert data["matched"] == "profile"
    assert data["profile"] == {"servers": [f"localhost:{seed.port}"], "client_id": None}
    assert data["client_certificate"]["subject"] == "CN=gateway"
    assert data["chain_verified"] is True
    assert data["server_accepted_client_certificate"] is True
    assert data["server_ca_names"] == []  # MTLSServer (Python's ssl) lists no CA
    assert data["server_chain"][0]["subject"] == "CN=localhost"
    assert data["error"] is None


def test_probe_json_without_a_client_certificate_claims_no_acceptance(seed: Seed) -> None:
    """A probe that sent no certificate reported the server "accepted" it."""
    backend = mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD)
    trust = mtls.Truststore.load(seed.dir / "backend-truststore.jks", PASSWORD)
    with MTLSServer(backend, client_ca=trust, require_client_cert=False) as open_server:
        run = ok("probe", f"localhost:{open_server.port}", "--truststore",
                 seed.dir / "client-truststore.jks", "--json")  # fmt: skip
    data = json.loads(run.stdout)
    assert data["ok"] is True and data["client_certificate"] is None
    assert data["server_accepted_client_certificate"] is None


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"]
)
def test_probe_never_says_accepted_when_no_certificate_was_asked_for(
    seed: Seed, version: ssl.TLSVersion
) -> None:
    """A backend that does not ask for a client certificate (no CertificateRequest):
    the probe said "accepted our certificate", exactly when someone probes to confirm
    a backend enforces mutual TLS."""
    from tests.servers._servers import stdlib_server

    backend = mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD)
    plain = mtls.server_context(backend, require_client_cert=False, trust_system_cas=True)
    plain.verify_mode = ssl.CERT_NONE  # asks for nothing
    plain.maximum_version = version
    options = ("--keystore", seed.dir / "gateway.jks",
               "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
    with stdlib_server(plain) as port:
        data = json.loads(ok("probe", f"localhost:{port}", *options, "--json").stdout)
        human = ok("probe", f"localhost:{port}", *options).stdout
    assert data["ok"] is True and data["client_certificate"]["subject"] == "CN=gateway"
    assert data["client_certificate_requested"] is False
    assert data["server_accepted_client_certificate"] is None
    assert "let us in without asking for a certificate" in human
    assert "accepted our certificate" not in human
    # The twin: the seed's backend asks, and accepts ours.
    data = json.loads(ok("probe", f"localhost:{seed.port}", *options, "--json").stdout)
    assert data["client_certificate_requested"] is True
    assert data["server_accepted_client_certificate"] is True


def test_probe_require_client_auth_fails_a_backend_that_does_not_enforce_mutual_tls(
    seed: Seed,
) -> None:
    """A probe exited 0 against a backend that never asked for a client certificate:
    a gate meant to confirm mutual TLS passed (a sweep found it). --require-client-auth
    fails it, and one that only asks (optional) and lets us in without one: with our
    certificate too, which it verifies and takes, once a client without one is let in
    (h255: the gate passed it)."""
    from tests.servers._servers import stdlib_server

    backend = mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD)
    gateway_ca = mtls.Truststore.load(seed.dir / "backend-truststore.jks", PASSWORD)
    options = ("--keystore", seed.dir / "gateway.jks",
               "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
    plain = mtls.server_context(backend, require_client_cert=False, trust_system_cas=True)
    plain.verify_mode = ssl.CERT_NONE  # asks for nothing
    optional = mtls.server_context(backend, gateway_ca, require_client_cert=False)
    with stdlib_server(plain) as port:
        ok("probe", f"localhost:{port}", *options)  # without the flag: it works
        run = fails(1, "probe", f"localhost:{port}", *options, "--require-client-auth", "--json")
        data = json.loads(run.stdout)
        assert data["error"]["kind"] == "client_auth_not_enforced"
        assert "without asking for a client certificate" in data["error"]["message"]
    with stdlib_server(optional) as port:
        run = fails(1, "probe", f"localhost:{port}", "--truststore",
                    seed.dir / "client-truststore.jks", "--require-client-auth")  # fmt: skip
        assert "asked for a client certificate but let us in without one" in run.stderr
        run = fails(1, "probe", f"localhost:{port}", *options, "--require-client-auth", "--json")
        data = json.loads(run.stdout)
        assert data["error"]["kind"] == "client_auth_not_enforced", data
        assert (
            "also let in a client with no certificate (it answered HTTP/1."
            in (data["error"]["message"])
        )
        assert any("was refused, as it should be" in note for note in data["notes"]), data
    # The twin: the seed's backend demands one, and takes ours.
    data = json.loads(
        ok("probe", f"localhost:{seed.port}", *options, "--require-client-auth", "--json").stdout
    )
    assert any("was refused, as it should be" in note for note in data["notes"]), data
    assert any("a client with no certificate was refused (" in n for n in data["notes"]), data
    # Its pinned certificate has nothing to check, and the throwaway connection (which
    # verifies nothing) adds no revocation note saying otherwise (h207).
    assert "trust anchor" in data["revocation"]["note"], data["revocation"]
    assert not any("revocation" in note for note in data["notes"]), data["notes"]


def _probe_failure(seed: Seed, url: str, *options: str | Path) -> dict[str, object]:
    run = fails(1, "probe", url, *options, "--json")
    data = json.loads(run.stdout)
    assert data["ok"] is False
    error = data["error"]
    assert isinstance(error, dict)
    assert error["message"] in run.stderr
    return data


def test_probe_server_not_trusted_still_shows_the_chain(seed: Seed) -> None:
    data = _probe_failure(seed, f"https://localhost:{seed.port}",
                          "--keystore", seed.dir / "gateway.jks",
                          "--truststore", seed.dir / "backend-truststore.jks")  # fmt: skip
    assert data["error"]["kind"] == "server_not_trusted"  # type: ignore[index]
    assert "backend-truststore.jks" in data["error"]["message"]  # type: ignore[index]
    assert data["chain_from_unverified_handshake"] is True
    assert data["server_chain"][0]["subject"] == "CN=localhost"  # type: ignore[index]
    assert data["client_certificate_requested"] is True  # TLS 1.3: asked before its chain
    # TLS 1.2 sends the request after its chain: refused first, whether it asks is unknown.
    tls12 = _probe_failure(seed, f"https://localhost:{seed.tls12_server.port}",
                           "--keystore", seed.dir / "gateway.jks",
                           "--truststore", seed.dir / "backend-truststore.jks")  # fmt: skip
    assert tls12["tls_version"] is None and tls12["client_certificate_requested"] is None
    # Its chain is shown too: a TLS 1.2 server that demands a client certificate ends
    # the second handshake (it presents none), but only after sending its chain, which
    # OpenSSL keeps (it said "could not fetch the server's chain", as keytool does not).
    assert tls12["chain_from_unverified_handshake"] is True
    assert tls12["server_chain"][0]["subject"] == "CN=localhost"  # type: ignore[index]
    assert not any("could not fetch" in n for n in tls12["notes"])  # type: ignore[union-attr]
    # The CA to trust is named, and the command given works for a JKS truststore.
    message = data["error"]["message"]  # type: ignore[index]
    assert "its chain ends at CN=localhost" in message
    assert "mtls import --file CA.pem --alias ca --keystore" in message
    # And where CA.pem comes from (it said nothing of it, h285).
    assert "CA.pem: the CA's certificate, from the backend's owner; mtls printcert " in message
    assert "--rfc" not in message  # which prints no SHA-256 to compare (h287)


@pytest.mark.parametrize("failing", ["server_not_trusted", "hostname_mismatch"])
def test_probe_never_authenticates_to_a_server_that_failed_verification(
    seed: Seed, failing: str
) -> None:
    """The second handshake, which fetches the chain of a server that failed
    verification, sends no client certificate and signs nothing: it presented ours,
    so the backend accepted an identity Java would never have shown it."""
    backend = mtls.Keystore.load(seed.dir / "backend.jks", PASSWORD)
    gateway_ca = mtls.Truststore.load(seed.dir / "backend-truststore.jks", PASSWORD)
    truststore = "backend-truststore.jks" if failing == "server_not_trusted" else (
        "client-truststore.jks")  # fmt: skip
    host = "localhost" if failing == "server_not_trusted" else "127.0.0.1"
    with MTLSServer(backend, client_ca=gateway_ca) as server:
        data = _probe_failure(seed, f"https://{host}:{server.port}",
                              "--keystore", seed.dir / "gateway.jks",
                              "--truststore", seed.dir / truststore)  # fmt: skip
        records = server.wait_for_handshakes(2)
    assert data["error"]["kind"] == failing  # type: ignore[index]
    assert data["chain_from_unverified_handshake"] is True  # TLS 1.3: shown all the same
    assert data["server_chain"][0]["subject"] == "CN=localhost"  # type: ignore[index]
    assert [r.accepted for r in records] == [False, False]
    # The records are in the order the server's threads finished, which is not always
    # the order of the handshakes (the first one's alert can be read after the second).
    reasons = sorted(str(r.reason) for r in records)
    assert reasons[0].startswith("client sent alert"), reasons  # the verification failure
    assert reasons[1] == "no client certificate", reasons  # the chain's fetch
    # The twin: trusted and named right, the same server accepts our certificate.
    with MTLSServer(backend, client_ca=gateway_ca) as server:
        ok("probe", f"https://localhost:{server.port}",
           "--keystore", seed.dir / "gateway.jks",
           "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
        (record,) = server.wait_for_handshakes(1)
    assert record.accepted and record.client_subject == "CN=gateway"


def test_probe_server_not_trusted_by_a_pem_truststore_says_append(
    seed: Seed, tmp_path: Path
) -> None:
    """mtls import refuses PEM stores: the fix for a PEM truststore is to append."""
    pem = tmp_path / "trust.pem"
    mtls.Truststore.load(seed.dir / "backend-truststore.jks", PASSWORD).save(
        pem, None, store_type="PEM"
    )
    data = _probe_failure(seed, f"https://localhost:{seed.port}",
                          "--keystore", seed.dir / "gateway.jks", "--truststore", pem)  # fmt: skip
    message = data["error"]["message"]  # type: ignore[index]
    assert data["error"]["kind"] == "server_not_trusted"  # type: ignore[index]
    assert f"append the certificate of CN=localhost, as PEM, to {pem}" in message
    assert "mtls import" not in message


def test_probe_hostname_mismatch(seed: Seed) -> None:
    # The seed's backend certificate is CN=localhost without SANs: 127.0.0.1 is not it.
    data = _probe_failure(seed, f"https://127.0.0.1:{seed.port}",
                          "--keystore", seed.dir / "gateway.jks",
                          "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
    assert data["error"]["kind"] == "hostname_mismatch"  # type: ignore[index]
    assert "CN=localhost" in data["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_probe_without_a_client_certificate_is_refused(seed: Seed, tls12: bool) -> None:
    server = seed.tls12_server if tls12 else seed.server
    data = _probe_failure(seed, f"https://localhost:{server.port}",
                          "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
    assert data["error"]["kind"] == "client_cert_refused"  # type: ignore[index]
    assert "we sent none" in data["error"]["message"]  # type: ignore[index]
    assert data["tls_version"] == (None if tls12 else "TLSv1.3")


def test_probe_with_an_untrusted_client_certificate_is_refused(seed: Seed) -> None:
    data = _probe_failure(seed, f"https://localhost:{seed.port}",
                          "--keystore", seed.dir / "backend.jks",
                          "--truststore", seed.dir / "client-truststore.jks")  # fmt: skip
    assert data["error"]["kind"] == "client_cert_refused"  # type: ignore[index]
    assert "unknown ca" in data["error"]["message"]  # type: ignore[index]
    assert data["server_accepted_client_certificate"] is False


def test_probe_without_a_matching_profile(seed: Seed) -> None:
    data = _probe_failure(seed, "https://localhost:1", "--profiles", seed.xml,
                          "--base-dir", seed.dir)  # fmt: skip
    assert data["error"]["kind"] == "no_profile"  # type: ignore[index]
    assert "localhost:1" in data["error"]["message"]  # type: ignore[index]


def test_probe_a_profile_that_does_not_load(seed: Seed) -> None:
    xml = seed.dir / "wrongpw.xml"
    xml.write_text(profile_xml(profile(f"localhost:{seed.port}", password=OTHER_PASSWORD)))
    data = _probe_failure(seed, f"https://localhost:{seed.port}", "--profiles", xml,
                          "--base-dir", seed.dir)  # fmt: skip
    assert data["error"]["kind"] == "profile_error"  # type: ignore[index]
    assert "wrong store password" in data["error"]["message"]  # type: ignore[index]


def test_probe_unreachable_host_is_one_line(seed: Seed) -> None:
    port = closed_port()
    # Bounded by the subprocess timeout in fails(); no wall-clock assertion.
    run = fails(1, "probe", f"https://127.0.0.1:{port}/", "--truststore",
                seed.dir / "client-truststore.jks", "--timeout", "3")  # fmt: skip
    assert f"127.0.0.1:{port} refused the connection" in run.stderr
    assert "FAILED (connection_refused)" in run.stdout


def test_probe_usage_errors() -> None:
    assert "https://" in fails(2, "probe", "http://localhost:80/").stderr
    assert "--profiles" in fails(2, "probe", "https://x:1", "--profiles", "a.xml",
                                 "--keystore", "k.jks").stderr  # fmt: skip


# --------------------------------------------------------------------------- demo


def test_demo_runs_the_seed_end_to_end() -> None:
    run = ok("demo", password_env=False)  # bounded by the subprocess timeout in ok()
    out = run.stdout
    assert "the backend saw CN=gateway" in out
    assert "REFUSED" in out
    assert "certificate required" in out or "no client certificate" in out
    assert "profiles.reload() -> True: generation 0 -> 1" in out
    assert "the backend now sees CN=gateway" in out
    assert "wso2carbon" not in out
    assert len(out.splitlines()) <= 40
    # Each command shown can be pasted: none is elided (step 4's was, h255).
    commands = [line for line in out.splitlines() if line.strip().startswith("$ mtls")]
    assert len(commands) == 6 and not [c for c in commands if "..." in c], commands


def test_mtls_list_reads_text_before_pem(tmp_path: Path) -> None:
    path = tmp_path / "noted.pem"
    path.write_bytes(b"Certificate:\n    some notes\n" * 200 + CA(name="n").cert_pem)
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "list", "--keystore", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trustedCertEntry" in done.stdout


def test_a_key_with_its_own_password_names_the_option_to_give_it(tmp_path: Path) -> None:
    """The library's message says "pass key_password" (its parameter); the command
    line's names its option."""
    store = tmp_path / "own.jks"
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    ks.save(store, PASSWORD, key_password=OTHER_PASSWORD)
    run = fails(1, "convert", "--keystore", store, "--to", "PKCS12", "--out", tmp_path / "o.p12")
    assert "pass --key-password" in run.stderr and "pass key_password" not in run.stderr
    # The twin: with the key's password, the store converts.
    ok("convert", "--keystore", store, "--to", "PKCS12", "--out", tmp_path / "o.p12",
       env={"MTLS_KEY_PASSWORD": OTHER_PASSWORD})  # fmt: skip


def test_keytool_spellings_of_list_and_export(tmp_path: Path) -> None:
    """list -rfc prints each certificate in PEM (it printed none), list and export take
    -storetype (exit 2 before), and genkey names a JKS alias as the file holds it."""
    store = tmp_path / "gw.jks"
    run = ok("genkey", "-keystore", store, "-alias", "MixedCase", "-dname", "CN=gw",
             "-keyalg", "EC")  # fmt: skip
    assert "alias    mixedcase (PrivateKeyEntry)" in run.stdout  # JKS stores it lower-cased
    pem = ok("export", "-keystore", store, "-alias", "mixedcase", "-rfc", "-storetype", "JKS")
    listed = ok("list", "-keystore", store, "-rfc", "-storetype", "jks").stdout
    assert pem.stdout.strip() in listed
    # The twin: without -rfc, no PEM.
    assert "BEGIN CERTIFICATE" not in ok("list", "-keystore", store, "-v").stdout
    # A store whose entry holds no certificate (a secret key) lists with -rfc too.
    from tests._keytool import KEYTOOLS, run_keytool

    if KEYTOOLS:
        secret = tmp_path / "sk.jceks"
        run_keytool(KEYTOOLS[0], "-genseckey", "-alias", "sk", "-keyalg", "AES", "-keysize",
                    "128", "-keystore", str(secret), "-storetype", "JCEKS", "-storepass",
                    PASSWORD, "-keypass", PASSWORD)  # fmt: skip
        listed = ok("list", "-keystore", secret, "-rfc").stdout
        assert "SecretKeyEntry" in listed and "BEGIN CERTIFICATE" not in listed


def test_a_crl_given_as_a_store_or_a_certificate_says_what_it_is(tmp_path: Path) -> None:
    """`mtls list` on a DER CRL listed it as a certificate before the library refused
    it; then it said so with two fixes. `mtls import` said only "not a certificate".
    The twin: a real certificate in DER imports."""
    ca = CA()
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl())
    said = "a certificate revocation list (DER CRL), not a certificate or a store"
    run = fails(1, "list", "--keystore", crl)
    assert said in run.stderr and "check the file name" not in run.stderr
    run = fails(1, "import", "--keystore", tmp_path / "t.jks", "--alias", "ca", "--file", crl,
                "--password", "changeit")  # fmt: skip
    assert said in run.stderr and not (tmp_path / "t.jks").exists()
    cert = tmp_path / "ca.der"
    cert.write_bytes(ca.certificate.public_bytes(Encoding.DER))
    ok("import", "--keystore", tmp_path / "t.jks", "--alias", "ca", "--file", cert,
       "--password", "changeit")  # fmt: skip
    assert mtls.Truststore.load(tmp_path / "t.jks", "changeit").aliases == ("ca",)


def test_a_wrong_source_password_names_keytools_spelling_too(tmp_path: Path, seed: Seed) -> None:
    """The destination's hint named -deststorepass; the source's only --password."""
    run = fails(1, "importkeystore", "-srckeystore", seed.dir / "gateway.jks",
                "-srcstorepass", OTHER_PASSWORD, "-destkeystore", tmp_path / "out.p12",
                "-deststorepass", PASSWORD)  # fmt: skip
    assert "--password (-storepass, -srcstorepass)" in run.stderr, run.stderr
    # The twin: list takes no -srcstorepass (exit 2), so its hint does not name it.
    listed = fails(1, "list", "--keystore", seed.dir / "gateway.jks", "--password", OTHER_PASSWORD)
    assert "--password (-storepass) or" in listed.stderr, listed.stderr


def test_a_command_written_as_keytool_writes_it_runs_or_says_mtls_lacks_it(
    tmp_path: Path,
) -> None:
    """keytool users type 'mtls -list -keystore a.jks': it was "invalid choice: 'a.jks'"."""
    store = tmp_path / "a.jks"
    ok("genkey", "--keystore", store, "--alias", "a", "--dname", "CN=a", "--password", PASSWORD)
    listed = ok("-list", "-keystore", store, "-storepass", PASSWORD).stdout
    assert listed == ok("list", "--keystore", store, "--password", PASSWORD).stdout
    assert "PrivateKeyEntry" in listed
    ok("--no-color", "-exportcert", "-keystore", store, "-storepass", PASSWORD, "-alias", "a",
       "-file", tmp_path / "a.cer")  # fmt: skip
    assert (tmp_path / "a.cer").read_bytes() == mtls.Keystore.load(store, PASSWORD).certificate(
        "a"
    ).public_bytes(Encoding.DER)
    run = fails(2, "-genseckey", "-alias", "a", "-keystore", store, "-storepass", PASSWORD)
    assert "mtls has no keytool -genseckey: use keytool for it" in run.stderr
    assert PASSWORD not in run.stderr
    fails(2, "-nosuchcommand")  # the twin: an unknown word is argparse's usage error


def test_a_closed_standard_output_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    """``mtls certreq ... >&-``: "unexpected AttributeError ... please report it", after
    the work was done. Refused up front now, saying what to do."""
    store = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(store, PASSWORD, store_type="PKCS12")
    before = store.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "storepasswd", "--keystore", str(store), "--password",
         PASSWORD, "--new-password", "N3w-closed-out"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "standard output is closed" in done.stderr and "AttributeError" not in done.stderr
    assert store.read_bytes() == before  # nothing was changed
    # The twin: with stdout open (to /dev/null) the same command runs.
    opened = subprocess.run(
        [sys.executable, "-m", "mtls", "storepasswd", "--keystore", str(store), "--password",
         PASSWORD, "--new-password", "N3w-closed-out"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, check=False,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert store.read_bytes() != before


def _with_reader_gone(*args: str) -> subprocess.CompletedProcess[str]:
    """``mtls ARGS | head -0``: the read end of stdout is closed before anything is
    written, so the first write meets a broken pipe (deterministic, unlike head -1)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "mtls", *args], stdin=subprocess.DEVNULL,
            stdout=write_end, stderr=subprocess.PIPE, text=True, check=False, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)


def test_a_reader_that_stops_reading_does_not_change_the_exit_code(tmp_path: Path) -> None:
    """``mtls list ... | grep -q alias`` under ``set -o pipefail``: exit 1 with nothing
    said when grep had found its line and closed the pipe (h270). The command finishes
    and exits as it would have, as keytool does; its failures stay failures."""
    store = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(store, PASSWORD, store_type="PKCS12")
    listed = _with_reader_gone("list", "--keystore", str(store), "--password", PASSWORD, "--rfc")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    exported = _with_reader_gone(
        "export", "--keystore", str(store), "--password", PASSWORD, "--alias", "gw"
    )
    assert exported.returncode == 0 and exported.stderr == "", exported.stderr
    # The twin: a wrong password fails as before, and says so on stderr.
    wrong = _with_reader_gone("list", "--keystore", str(store), "--password", OTHER_PASSWORD)
    assert wrong.returncode == 1 and "mtls: error:" in wrong.stderr
    assert OTHER_PASSWORD not in wrong.stderr


def test_serve_ends_quietly_when_the_reader_of_its_output_goes(tmp_path: Path) -> None:
    """A command that runs until stopped ends with its reader (``mtls serve | head -3``
    would otherwise serve on, unseen, and hold the pipeline open)."""
    ca = CA()
    store, trust = tmp_path / "srv.p12", tmp_path / "trust.p12"
    ca.issue_cert("localhost").write_keystore(store, PASSWORD, store_type="PKCS12")
    ca.write_truststore(trust, PASSWORD, store_type="PKCS12")
    served = _with_reader_gone(
        "serve", "--keystore", str(store), "--truststore", str(trust), "--password", PASSWORD,
        "--port", "0",
    )  # fmt: skip
    assert served.returncode == 1, served.stderr
    assert "Traceback" not in served.stderr and "mtls: error:" not in served.stderr


def test_a_pipe_given_as_a_store_gets_the_fix_for_a_pipe(tmp_path: Path) -> None:
    """`cat b.p7b | mtls list --keystore /dev/stdin`: the CLI printed the refusal
    without its fix (the library's message has it)."""
    fifo = tmp_path / "in.p7b"
    os.mkfifo(fifo)
    run = fails(1, "list", "--keystore", fifo)
    assert "not a regular file" in run.stderr and "point to a regular file" in run.stderr
    assert "NUL" not in run.stderr


def test_a_permission_error_names_the_directories_too() -> None:
    """A file readable by its mode under a directory the user cannot enter was told to
    check the file's owner and mode (h130): the directories above it are named too.
    (Root reads any file, so this is the message alone; a directory is its twin.)"""
    from mtls._cli._common import os_error_message

    denied = os_error_message(PermissionError(13, "Permission denied", "noexec/trust.jks"))
    assert denied == (
        "noexec/trust.jks: permission denied: check the owner and mode of the file and of "
        "the directories above it"
    )
    directory = os_error_message(IsADirectoryError(21, "Is a directory", "stores"))
    assert directory == "stores is a directory: give a file"


def test_json_names_a_path_that_is_not_utf8_as_the_messages_do(tmp_path: Path) -> None:
    """A file name with a byte that is not UTF-8 went into --json as a lone surrogate
    ("caf\\udce9.pem"): not UTF-8 text, which JSON readers refuse or replace. It is
    written as the messages name it, "caf\\xe9.pem" (h136). Twin: a UTF-8 name as is."""
    pem = CA(name="json names").cert_pem
    for name, shown in ((b"caf\xe9.pem", "caf\\xe9.pem"), ("café.pem".encode(), "café.pem")):
        path = os.fsdecode(bytes(tmp_path) + b"/" + name)
        Path(path).write_bytes(pem)
        done = subprocess.run(
            [sys.executable, "-m", "mtls", "list", "--keystore", path, "--json"],
            capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout.decode("utf-8"))  # strict UTF-8
        assert document["path"].endswith("/" + shown), document["path"]
