"""`mtls probe` names each way a connection fails, against real misbehaving servers.

These call ``mtls.cli.main`` in-process (the subprocess form is covered in
tests/cli/test_cli.py): the point here is the classification of real failures.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls.cli import main
from mtls.testing import CA, MTLSServer
from tests._helpers import accepting

PASSWORD = "probe-Pa55word"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="probe CA")


@pytest.fixture(scope="module")
def stores(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    return {
        "keystore": ca.issue_cert("gateway", common_name="gateway").write_keystore(
            d / "gw.jks", PASSWORD
        ),
        "truststore": ca.write_truststore(d / "trust.jks", PASSWORD),
    }


def probe(url: str, stores: dict[str, Path], capsys: pytest.CaptureFixture[str], *extra: str):
    code = main(
        [
            "probe",
            url,
            "--keystore",
            str(stores["keystore"]),
            "--truststore",
            str(stores["truststore"]),
            "--password",
            PASSWORD,
            "--timeout",
            "2",
            "--json",
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, json.loads(out) if out.strip().startswith("{") else out, err


def kind_of(report: object) -> str:
    assert isinstance(report, dict), report
    failure = report.get("error") or {}
    assert report["ok"] is (not failure)
    return str(failure.get("kind"))


def test_probe_succeeds_and_its_twin_fails_with_another_ca(ca, stores, capsys):
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys)
        assert code == 0
        assert kind_of(report) == "None"
    other = CA(name="someone else")
    with MTLSServer(other.issue_cert("localhost"), client_ca=ca) as server:
        code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys)
        assert code == 1
        assert kind_of(report) == "server_not_trusted"


@pytest.mark.parametrize(
    ("when", "kind"),
    [("past", "server_cert_expired"), ("future", "server_cert_not_yet_valid")],
)
def test_server_certificate_outside_its_validity(ca, stores, capsys, when, kind):
    now = dt.datetime.now(dt.UTC)
    if when == "past":
        cert = ca.issue_cert(
            "localhost", not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=2)
        )
    else:
        cert = ca.issue_cert("localhost", not_before=now + dt.timedelta(days=2))
    with MTLSServer(cert, client_ca=ca) as server:
        code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys)
    assert code == 1
    assert kind_of(report) == kind


@pytest.fixture
def plain_http() -> Iterator[int]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_plain_http_port_is_not_tls(stores, capsys, plain_http):
    code, report, _ = probe(f"https://127.0.0.1:{plain_http}/", stores, capsys)
    assert code == 1
    assert kind_of(report) in {"not_tls", "connection_closed"}


@pytest.fixture
def silent() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    held: list[socket.socket] = []
    try:
        with accepting(held.append) as port:
            yield port
    finally:
        for conn in held:
            conn.close()


def test_silent_server_times_out(stores, capsys, silent):
    code, report, _ = probe(f"https://127.0.0.1:{silent}/", stores, capsys, "--timeout", "0.5")
    assert code == 1
    assert kind_of(report) == "timeout"


def test_closed_port_is_connection_refused(stores, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, report, _ = probe(f"https://127.0.0.1:{port}/", stores, capsys)
    assert code == 1
    assert kind_of(report) == "connection_refused"


def test_tls_version_mismatch(ca, stores, capsys):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # we mean to serve old TLS
            server = MTLSServer(
                ca.issue_cert("localhost"),
                client_ca=ca,
                minimum_version=ssl.TLSVersion.TLSv1,
                maximum_version=ssl.TLSVersion.TLSv1_1,
            ).start()
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL will not serve TLS 1.1: {exc}")
    with server:
        code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys)
    assert code == 1
    # OpenSSL 3 at security level 1 may answer a TLS 1.1-only server with a plain
    # handshake_failure alert rather than protocol_version: both name the handshake.
    assert kind_of(report) in {"protocol_version", "handshake_failure"}


def test_no_cipher_in_common_is_not_called_a_refused_certificate(ca, stores, capsys):
    """A TLS 1.2 server whose only cipher we do not offer ends the handshake before it
    asks for any certificate: the probe said "or it refused our certificate"."""
    from tests.servers._servers import stdlib_server

    server = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        server.set_ciphers("AES128-SHA:@SECLEVEL=0")  # RSA key exchange, SHA-1: not ours
    except ssl.SSLError as exc:
        pytest.skip(f"this OpenSSL has no such cipher: {exc}")
    with stdlib_server(server) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert code == 1
    assert report["client_certificate_requested"] is False
    assert kind_of(report) == "handshake_failure"
    assert "before asking for any certificate" in report["error"]["message"]
    assert "refused our certificate" not in report["error"]["message"]
