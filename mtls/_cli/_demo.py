"""``mtls demo``: the seed flow (five keytool steps and a profile) end to end, no JDK needed.

Everything is real: stores written in the formats keytool reads, a profile file
read by :class:`~mtls.SSLProfileSet`, a backend (:class:`~mtls.testing.MTLSServer`)
that demands the gateway's certificate on a loopback port, handshakes over TCP.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from .._context import client_context
from .._profiles import SSLProfileSet
from .._server import RotatingServerContext
from .._stores import Keystore, Truststore
from .._types import hex_serial
from ._common import EXIT_OK, CLIError, Output
from ._connect import run_probe
from ._diagnosis import Report, Setup, Target
from ._logs import LogCollector

_PASSWORD = "wso2carbon"  # noqa: S105 - WSO2's shipped default, for a throw-away demo
_FILES = (
    "backend.jks",
    "backend.cer",
    "client-truststore.jks",
    "gateway.jks",
    "gateway.cer",
    "backend-truststore.jks",
    "sslprofiles.xml",
)
_PROFILE_XML = """<?xml version="1.0" encoding="ISO-8859-1"?>
<parameter name="customSSLProfiles">
    <profile>
        <servers>localhost:{port}</servers>
        <KeyStore>
            <Location>gateway.jks</Location>
            <Type>JKS</Type>
            <Password>{password}</Password>
            <KeyPassword>{password}</KeyPassword>
        </KeyStore>
        <TrustStore>
            <Location>client-truststore.jks</Location>
            <Type>JKS</Type>
            <Password>{password}</Password>
        </TrustStore>
    </profile>
</parameter>
"""


def _short(serial: int) -> str:
    text = hex_serial(serial)
    return text if len(text) <= 12 else text[:12] + "..."


class _Steps:
    """Numbered steps, the equivalent command dimmed under each."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.number = 0

    def step(self, title: str) -> None:
        """Start the next numbered step."""
        self.number += 1
        self.out.line(self.out.style(f"{self.number}.", "bold") + f" {title}")

    def cmd(self, command: str) -> None:
        """Show the equivalent ``mtls`` command, dimmed."""
        self.out.line(self.out.style(f"   $ {command}", "dim"))

    def more(self, detail: str) -> None:
        """Another line of the current step."""
        self.out.line(f"   {detail}")


def _backend_saw(report: Report) -> dict[str, Any]:
    try:
        seen = json.loads(report.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        seen = None
    if not isinstance(seen, dict):
        raise CLIError(f"demo: the backend's answer was not its JSON report: {report.body[:80]!r}")
    return seen


def _call(target: Target, setup: Setup) -> tuple[Report, dict[str, Any]]:
    report = run_probe(target, setup, timeout=5.0)
    if report.failure is not None:
        raise CLIError(f"demo: the gateway's call failed: {report.failure.message}")
    return report, _backend_saw(report)


def run_demo(directory: Path, out: Output) -> None:
    """The demo proper, in ``directory`` (which must not hold its files yet).

    Raises:
        CLIError: a step did not do what it should (a bug, or a broken environment).
    """
    from ..testing import MTLSServer  # noqa: PLC0415 - the test server only for the demo

    started = time.perf_counter()
    steps = _Steps(out)

    def path(name: str) -> Path:
        return directory / name

    out.line(out.style("mtls demo: mutual TLS from a gateway to a backend, the WSO2 way", "bold"))
    out.line(f"in {directory}: JKS stores as keytool writes them, no JDK needed")
    out.line(
        "(each step's mtls command does the same from a shell: they take the store password "
        "from MTLS_STORE_PASSWORD, or ask for it)"
    )
    out.line()

    # The name in a SAN, as Go, rustls and browsers need it (they ignore the CN).
    backend = Keystore.generate("backend", "CN=localhost", san=["DNS:localhost"])
    backend.save(path("backend.jks"), _PASSWORD)
    steps.step("The backend's keystore: " + out.style("CN=localhost", "bold") + ", RSA 2048")
    steps.cmd(
        "mtls genkey --keystore backend.jks --alias backend --dname CN=localhost "
        "--san dns:localhost"
    )
    path("backend.cer").write_bytes(backend.export_certificate("backend", "DER"))
    steps.step("Export its certificate (DER, as keytool -exportcert)")
    steps.cmd("mtls export --keystore backend.jks --alias backend --file backend.cer")
    gateway_trust = Truststore()
    gateway_trust.add("backend", path("backend.cer").read_bytes())
    gateway_trust.save(path("client-truststore.jks"), _PASSWORD)
    steps.step("The gateway trusts it")
    steps.cmd("mtls import --file backend.cer --alias backend --keystore client-truststore.jks")

    gateway = Keystore.generate("gateway", "CN=gateway")
    gateway.save(path("gateway.jks"), _PASSWORD)
    path("gateway.cer").write_bytes(gateway.export_certificate("gateway", "DER"))
    backend_trust = Truststore()
    backend_trust.add("gateway", path("gateway.cer").read_bytes())
    backend_trust.save(path("backend-truststore.jks"), _PASSWORD)
    first_serial = gateway.certificate("gateway").serial_number
    steps.step(
        "The gateway's keystore: " + out.style("CN=gateway", "bold") + "; the backend trusts it"
    )
    steps.cmd("mtls genkey --keystore gateway.jks --alias gateway --dname CN=gateway")
    # Whole, so that it can be pasted (h255: "..." in it exited 2).
    steps.cmd("mtls export --keystore gateway.jks --alias gateway --file gateway.cer")
    steps.cmd("mtls import --file gateway.cer --alias gateway --keystore backend-truststore.jks")

    # The backend serves from its files, and follows them (RotatingServerContext).
    backend_context = RotatingServerContext(
        path("backend.jks"),
        path("backend-truststore.jks"),
        password=_PASSWORD,
        alpn_protocols=["http/1.1"],
        settle_delay=0.02,
    )
    server = MTLSServer(backend_context)
    with backend_context, server:
        port = server.port
        path("sslprofiles.xml").write_text(_PROFILE_XML.format(port=port, password=_PASSWORD))
        steps.step(f"Profile: localhost:{port} -> gateway.jks + client-truststore.jks")
        steps.more("(sslprofiles.xml, read by SSLProfileSet.from_xml)")
        with SSLProfileSet.from_xml(
            path("sslprofiles.xml"), base_dir=directory, settle_delay=0.02
        ) as profiles:
            steps.step(f"Backend up on https://localhost:{port}")
            steps.more("it demands a client certificate trusted by backend-truststore.jks")
            target = Target(f"https://localhost:{port}/", "localhost", port, "/")
            context = profiles.context_for("localhost", port)
            if context is None:
                raise CLIError("demo: the profile set has no context for the backend")
            report, seen = _call(target, Setup(context, "profile", client_subject="CN=gateway"))
            if seen.get("client_serial") != first_serial:
                raise CLIError("demo: the backend did not see the gateway's certificate")
            steps.step(
                "Gateway -> backend through the profile set: "
                + out.style("OK", "green", "bold")
                + f", {report.tls_version}, {report.http_status}"
            )
            steps.more(
                "the backend saw "
                + out.style(f"CN={seen.get('client_cn')}", "bold")
                + f", serial {_short(first_serial)}"
            )

            bare = Setup(client_context(None, gateway_trust), "options")
            refused = run_probe(target, bare, timeout=5.0)
            if refused.failure is None:
                raise CLIError("demo: a client without a certificate was let in")
            records = server.wait_for_handshakes(2)
            steps.step(
                "A client without a certificate: "
                + out.style("REFUSED", "red", "bold")
                + ", as it should be"
            )
            steps.more(f"client:  {refused.failure.message.split(': ', 1)[0]}")
            steps.more(f"backend: {records[-1].reason}")

            rotated = Keystore.generate("gateway", "CN=gateway")
            new_serial = rotated.certificate("gateway").serial_number
            backend_trust.add("gateway-2", rotated.certificate("gateway"))
            backend_trust.save(path("backend-truststore.jks"), _PASSWORD)
            if not backend_context.reload():
                raise CLIError("demo: the backend did not pick up backend-truststore.jks")
            rotated.save(path("gateway.jks"), _PASSWORD)  # temp file + rename: atomic
            before = profiles.generation
            changed = profiles.reload()
            if not changed:
                raise CLIError("demo: the reload did not pick up the new gateway.jks")
            steps.step(f"Rotation: a new gateway key pair, serial {_short(new_serial)}")
            steps.more("backend-truststore.jks trusts it first (the backend reloads it, no")
            steps.more("restart), then gateway.jks is replaced atomically (temp file + rename)")
            steps.more(
                f"profiles.reload() -> {changed}: generation {before} -> {profiles.generation}"
            )
            context = profiles.context_for("localhost", port)
            assert context is not None
            report, seen = _call(target, Setup(context, "profile", client_subject="CN=gateway"))
            if seen.get("client_serial") != new_serial:
                raise CLIError("demo: after the reload the backend still saw the old certificate")
            steps.more(
                "the backend now sees "
                + out.style(f"CN={seen.get('client_cn')}", "bold")
                + f", serial {_short(new_serial)}: the new certificate"
            )
    out.line()
    elapsed = time.perf_counter() - started
    out.line(out.style(f"Done in {elapsed:.1f} s.", "green", "bold") + " On your own files:")
    out.line("  mtls check sslprofiles.xml")
    out.line("  mtls probe https://HOST:PORT --profiles sslprofiles.xml")
    out.line("(mtls demo --dir DIR keeps these files; their password is WSO2's shipped default)")


def cmd_demo(args: argparse.Namespace, out: Output, logs: LogCollector) -> int:
    """``mtls demo``: exit 0 when every step did what it should."""
    if args.dir:
        directory = Path(args.dir)
        if directory.exists() and not directory.is_dir():
            raise CLIError(f"{directory} is a file: --dir takes a directory (an empty one)")
        directory.mkdir(parents=True, exist_ok=True)
        taken = [name for name in _FILES if (directory / name).exists()]
        if taken:
            raise CLIError(f"{directory} already has {', '.join(taken)}: use an empty directory")
        run_demo(directory.resolve(), out)
        out.line(f"  (files kept in {directory})")
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="mtls-demo-") as tmp:
        run_demo(Path(tmp), out)
    return EXIT_OK
