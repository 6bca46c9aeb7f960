"""`mtls probe` names each way a connection fails, against real misbehaving servers.

These call ``mtls.cli.main`` in-process (the subprocess form is covered in
tests/cli/test_cli.py): the point here is the classification of real failures.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mtls
from mtls.cli import main
from mtls.testing import CA, MTLSServer
from tests._helpers import accepting
from tests.servers._servers import stdlib_server

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


def test_probe_an_ipv6_address_with_a_zone_as_rfc_6874_writes_it(ca, stores, capsys):
    """https://[::1%251]:PORT/ (RFC 6874: the zone's % escaped as %25) was dialled as
    '::1%251' and verified as that name: "certificate is not valid for '::1%251'"
    (h185). The zone picks the link; the certificate names the address. The twin: a
    certificate without the address still fails, on the address."""
    zone = socket.if_nametoindex("lo")
    with MTLSServer(ca.issue_cert("localhost", "::1"), client_ca=ca, host="::1") as server:
        code, report, _ = probe(f"https://[::1%25{zone}]:{server.port}/", stores, capsys)
        assert code == 0, report
        assert kind_of(report) == "None"
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca, host="::1") as server:
        code, report, _ = probe(f"https://[::1%25{zone}]:{server.port}/", stores, capsys)
        assert code == 1 and kind_of(report) == "hostname_mismatch", report
        assert "'::1'" in report["error"]["message"] and "%25" not in report["error"]["message"]


def test_probe_checks_the_name_of_localhost_with_a_final_dot(ca, stores, capsys, monkeypatch):
    """--hostname-verifier DefaultAndLocalhost skipped the name check for
    "localhost." as for "localhost" (h191): a name the resolver sends to DNS. Here that
    "DNS" answers with a server whose certificate names attacker.example only; the
    twin: "localhost" itself, from the hosts file, stays exempt."""
    resolve = socket.getaddrinfo

    def dns(host, *args, **kwargs):
        dotted = isinstance(host, str) and host.endswith(".")
        return resolve("127.0.0.1" if dotted else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    lenient = ("--hostname-verifier", "DefaultAndLocalhost")
    with MTLSServer(ca.issue_cert("attacker.example"), client_ca=ca) as server:
        code, report, _ = probe(f"https://localhost.:{server.port}/", stores, capsys, *lenient)
        assert code == 1 and kind_of(report) == "hostname_mismatch", report
        code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys, *lenient)
        assert code == 0 and kind_of(report) == "None", report


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
    assert report["client_certificate_requested"] is None  # unknown, not "no mTLS"


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
    assert "allow more time with --timeout" in report["error"]["message"]
    assert report["client_certificate_requested"] is None  # unknown, not "no mTLS"
    # printcert --sslserver said Python's own text ("_ssl.c:989: The handshake
    # operation timed out", h285).
    code = main(["printcert", "--sslserver", f"127.0.0.1:{silent}", "--timeout", "0.5"])
    shown = capsys.readouterr().err
    assert code == 1
    assert "the TLS handshake timed out; mtls probe https://127.0.0.1:" in shown
    assert "_ssl.c" not in shown


def test_closed_port_is_connection_refused(stores, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, report, _ = probe(f"https://127.0.0.1:{port}/", stores, capsys)
    assert code == 1
    assert kind_of(report) == "connection_refused"


@pytest.mark.parametrize("fillers", [40, 200], ids=["under-100KiB", "over-100KiB"])
def test_a_server_chain_over_openssls_limit_is_named_as_too_long(ca, stores, capsys, fillers):
    """A server that sends more than 100 KiB of certificates is refused by OpenSSL
    itself: the probe said only "excessive message size" (h135)."""
    leaf = ca.issue_cert("localhost")
    # Extra certificates of ~800 bytes each: 200 of them are ~160 KiB, 40 are ~32 KiB.
    extra = [ca.issue_cert(f"filler{i}-{'x' * 40}").certificate for i in range(fillers)]
    keystore = mtls.Keystore()
    keystore.add_key("server", leaf.private_key, [leaf.certificate, *extra])
    with stdlib_server(mtls.server_context(keystore, ca.truststore())) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    if fillers < 100:
        assert code == 0, report
        assert kind_of(report) == "None"
        return
    assert code == 1
    assert kind_of(report) == "tls_error"
    message = report["error"]["message"]
    assert "over 100 KiB" in message
    assert "send only its certificate and intermediates" in message


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
    # Nothing is known of a request the server's flight never reached (h285: false
    # said "no mutual TLS").
    assert report["client_certificate_requested"] is None
    assert kind_of(report) == "handshake_failure"
    message = report["error"]["message"]
    assert "before asking for any certificate" in message
    assert "refused our certificate" not in message
    # What we offer, and a command that offers the same (openssl s_client alone offers
    # RSA key exchange, and connected where the probe could not, h285).
    assert "only RSA key exchange" in message and "Java 17" in message
    command = message.split("What the server says to our offer: ")[1]
    assert command.startswith(f"openssl s_client -connect localhost:{port} -cipher ")
    assert "ECDHE-" in command and "AES128-SHA:" not in command


@pytest.mark.parametrize("ask", [False, True], ids=["never-asks", "asks"])
def test_a_server_that_closes_without_answering_blames_our_certificate_only_if_it_asked(
    ca, stores, capsys, ask
):
    """TLS 1.3: a close right after the handshake is how some servers refuse a client
    certificate; from one that asked for none it was "our certificate was refused"
    all the same, naming a certificate that was never sent. (One that asks, takes a
    connection without a certificate as well and closes it the same way tells nothing
    apart: still a refusal, see the next test.)"""
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    ctx.verify_mode = ssl.CERT_OPTIONAL if ask else ssl.CERT_NONE

    def close_unanswered(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)

    with accepting(close_unanswered) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert report["tls_version"] == "TLSv1.3"
    assert report["client_certificate_requested"] is ask
    if ask:
        assert code == 1
        assert kind_of(report) == "client_cert_refused"
        assert report["server_accepted_client_certificate"] is False
    else:
        assert code == 0, report
        assert kind_of(report) == "None"
        assert any("asked for no client certificate" in note for note in report["notes"])


def test_a_server_whose_tls_takes_our_certificate_and_closes_says_the_close_came_after(
    ca, stores, capsys, tmp_path
):
    """h245: a TLS 1.3 server demanding a certificate took ours in TLS and closed
    without an answer, and the probe said it refused our certificate (go fix its
    trust). Asked again without one, it refuses with an alert: its TLS refuses with
    alerts, and sent none for ours. It is still a failure (h248: an allow-list above
    TLS, here one that takes CN=billing only, refused this identity and the probe
    passed), of its own kind. Twins: the allowed identity is answered (OK), and a
    certificate from another CA gets its alert and a refusal, as before."""
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    ctx.verify_mode = ssl.CERT_REQUIRED

    def allow_billing_only(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            tls.recv(4096)
            if subject.get("commonName") == "billing":
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            # anyone else: closed without a word

    billing = ca.issue_cert("billing", common_name="billing").write_keystore(
        tmp_path / "billing.jks", PASSWORD
    )
    other = (
        CA(name="other probe CA")
        .issue_cert("gateway")
        .write_keystore(tmp_path / "other.jks", PASSWORD)
    )
    with accepting(allow_billing_only) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
        assert code == 1 and kind_of(report) == "closed_after_handshake", report
        assert report["server_accepted_client_certificate"] is None
        message = report["error"]["message"]
        assert "refused with the alert 'certificate required'" in message
        assert "it refuses this identity above TLS" in message
        code, report, _ = probe(f"https://localhost:{port}/", {**stores, "keystore": billing},
                                capsys)  # fmt: skip
        assert code == 0 and report["http_status"] == "HTTP/1.0 200 OK", report
        code, report, _ = probe(f"https://localhost:{port}/", {**stores, "keystore": other},
                                capsys)  # fmt: skip
    assert code == 1 and kind_of(report) == "client_cert_refused", report
    assert "unknown ca" in report["error"]["message"], report


@pytest.mark.parametrize("status_first", [False, True], ids=["byte-by-byte", "streamed-body"])
def test_an_answer_trickled_a_byte_at_a_time_is_bounded_by_the_timeout(
    ca, stores, capsys, status_first
):
    """--timeout bounded each read, not the answer: a server sending a byte every
    50 ms kept the probe for as long as it liked. One whose status line came at once
    and whose body streams (server-sent events) answered: its status is reported (a
    review found the first form of this fix dropped it)."""
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            if status_first:
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            # 200 bytes, 10 s: the old probe returned them as an answer; stop ends it
            # early once the probe has gone.
            for byte in b"HTTP/1.1 200 OK\r\n".ljust(200, b"x"):
                if stop.wait(0.05):
                    return
                tls.sendall(bytes([byte]))

    with accepting(trickle) as port:
        try:
            _, report, _ = probe(f"https://localhost:{port}/", stores, capsys, "--timeout", "0.5")
        finally:
            stop.set()
    if status_first:
        assert report["http_status"] == "HTTP/1.1 200 OK", report
        assert report["server_accepted_client_certificate"] is True
    else:
        assert report["http_status"] is None, report
        assert any("no HTTP answer within the timeout" in note for note in report["notes"])


@pytest.fixture(scope="module")
def hierarchy() -> tuple[CA, CA]:
    root = CA(name="probe root")
    return root, root.create_child_ca()


def test_a_server_that_leaves_out_its_intermediate_is_told_to_send_its_chain(
    hierarchy, stores, capsys, tmp_path
):
    """The server's chain stopped at its leaf, issued by an intermediate it did not send:
    the probe said to import that intermediate into our truststore, hiding the server's
    fault (and Java clients, WSO2's gateway among them, refuse it the same way)."""
    root, intermediate = hierarchy
    server = intermediate.issue_cert("localhost")
    trust = root.write_truststore(tmp_path / "root.jks", PASSWORD)
    # The server's key and its leaf alone, as a misconfigured backend sends them.
    leaf_only = tmp_path / "leaf-only.pem"
    leaf_only.write_bytes(server.private_key_pem + server.cert_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf_only)
    full = mtls.server_context(server.keystore(), root.truststore())
    full.verify_mode = ssl.CERT_NONE  # this backend asks for no client certificate
    mine = {**stores, "truststore": trust}
    with stdlib_server(ctx) as port:
        code, report, _ = probe(f"https://localhost:{port}/", mine, capsys)
    assert code == 1
    assert kind_of(report) == "server_not_trusted"
    message = report["error"]["message"]
    assert "did not send the certificate of its issuer" in message, message
    assert "full chain" in message
    assert intermediate.certificate.subject.rfc4514_string() in message
    # Its twin: the same server sending its whole chain is trusted through the root.
    with stdlib_server(full) as port:
        code, report, _ = probe(f"https://localhost:{port}/", mine, capsys)
        assert report["chain_verified"] is True and kind_of(report) != "server_not_trusted"
        # And a whole chain from a root our truststore lacks ends at a CA certificate:
        # that root is what to trust, not a chain the server failed to send (a review
        # found the first form of this advice blamed the server for it).
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert kind_of(report) == "server_not_trusted" and report["server_chain"][-1]["ca"] is True
    message = report["error"]["message"]
    assert f"its chain ends at {root.certificate.subject.rfc4514_string()}" in message
    assert "did not send" not in message


def test_our_keystore_without_its_intermediate_is_named_not_the_backends_trust(
    hierarchy, ca, stores, capsys, tmp_path
):
    """Our key entry held its leaf alone, issued by an intermediate; the backend trusts
    the root. The probe told the backend to import the intermediate into its
    truststore, though the fix is on our side: send the chain."""
    root, intermediate = hierarchy
    client = intermediate.issue_cert("gateway")
    alone = mtls.Keystore()
    alone.add_key("gateway", client.private_key, [client.certificate])
    alone.save(tmp_path / "alone.jks", PASSWORD)
    whole = client.write_keystore(tmp_path / "whole.jks", PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=root) as server:
        url = f"https://localhost:{server.port}/"
        code, report, _ = probe(url, {**stores, "keystore": tmp_path / "alone.jks"}, capsys)
        assert code == 1
        assert kind_of(report) == "client_cert_refused"
        message = report["error"]["message"]
        assert "is an intermediate CA, the fault is ours" in message
        assert "sends the certificate without it, so add it to the key entry's chain" in message
        # The twin: the same key with its chain is let in.
        code, report, _ = probe(url, {**stores, "keystore": whole}, capsys)
        assert code == 0, report


def test_a_server_that_does_not_serve_the_name_sent_says_so(ca, stores, capsys):
    """A server whose SNI callback refuses our name (unrecognized_name) got "TLS
    handshake failed: tlsv1 unrecognized name" and no advice about the name."""
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())

    def only_other_names(tls: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> int | None:
        return None if name == "localhost" else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    ctx.sni_callback = only_other_names

    def serve(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with accepting(serve) as port:
        code, report, _ = probe(f"https://127.0.0.1:{port}/", stores, capsys)
        assert code == 1
        message = report["error"]["message"]
        assert "does not serve what we sent: no server name (SNI is never sent for an IP" in message
        # Its twin: the name it serves gets in.
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
        assert code == 0, report


def test_an_internationalised_name_is_dialled_as_its_a_label(ca, stores, capsys, monkeypatch):
    """``faß.test``: IDNA 2008 (its profile's key, and what httpx, requests and aiohttp
    dial) writes xn--fa-hia.test; a socket given the Unicode name encodes IDNA 2003,
    fass.test, another host. The probe dialled that one, so it tested a host other
    than the one it reported. Here only the A-label resolves (to this machine), as
    a lookup that went to fass.test must fail."""
    real = socket.getaddrinfo

    def names(host: object, *args: object, **kwargs: object) -> object:
        wanted = host.decode() if isinstance(host, bytes) else host
        if wanted == "xn--fa-hia.test":
            return real("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        if isinstance(wanted, str) and wanted.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", names)
    with MTLSServer(ca.issue_cert("xn--fa-hia.test"), client_ca=ca) as server:
        code, report, _ = probe(f"https://faß.test:{server.port}/", stores, capsys)
        assert kind_of(report) == "None", report
        assert code == 0
        assert report["host"] == "xn--fa-hia.test"
        # Twin: the name IDNA 2003 makes resolves nowhere here.
        code, report, _ = probe(f"https://fass.test:{server.port}/", stores, capsys)
        assert kind_of(report) == "dns"
        assert code != 0


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".example"])
def test_a_host_name_the_idna_codec_refuses_is_a_dns_failure(host, stores, capsys):
    """`mtls probe https://a..b:1/` (a typo) raised the UnicodeError of the IDNA codec
    getaddrinfo runs: "unexpected UnicodeError ... please report it". It is a dns
    failure naming the host now. The twin: a valid name that resolves nowhere is a dns
    failure too (test above), and a good one connects (the first test)."""
    code, report, err = probe(f"https://{host}:1/", stores, capsys)
    assert code != 0 and kind_of(report) == "dns", report
    assert "is not a valid host name" in report["error"]["message"], report
    assert "unexpected" not in err


def test_a_query_is_sent_but_its_values_are_not_shown(ca, stores, capsys):
    """`mtls probe "https://host/?token=..."` printed the token on stdout and in the
    JSON report's url, where user:password@ was already masked. The values are
    masked in the report now; the request still carries them (the server sees the
    path as given)."""
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        url = f"https://localhost:{server.port}/orders?token=S3cret-tok&page=2&BareT0ken#at=Fr4g"
        code, report, err = probe(url, stores, capsys)
        assert code == 0, report
        shown = json.dumps(report) + err
        assert "S3cret-tok" not in shown and "BareT0ken" not in shown and "Fr4g" not in shown
        assert report["url"].endswith("/orders?token=***&page=***&***"), report["url"]


def test_a_ca_of_a_trusted_name_with_another_key_is_not_said_to_be_imported(
    stores, capsys, tmp_path
):
    """The server's chain is signed by a CA named like one the truststore holds, with
    another key (a re-keyed CA, or an impostor): the probe said to import "the
    certificate of" that name, which would trust whoever signed it. It says the name is
    trusted with another key. The twin: an unknown name is still to be imported."""
    genuine, impostor, stranger = CA(name="same name"), CA(name="same name"), CA(name="other")
    trust = genuine.write_truststore(tmp_path / "genuine.jks", PASSWORD)
    mine = {**stores, "truststore": trust}
    name = genuine.certificate.subject.rfc4514_string()
    for signer, said in ((impostor, "another key"), (stranger, "import the certificate of")):
        server = mtls.server_context(signer.issue_cert("localhost").keystore(), signer.truststore())
        server.verify_mode = ssl.CERT_NONE  # this backend asks for no client certificate
        with stdlib_server(server) as port:
            code, report, _ = probe(f"https://localhost:{port}/", mine, capsys)
        assert code == 1 and kind_of(report) == "server_not_trusted"
        message = report["error"]["message"]
        assert said in message, message
        if signer is impostor:
            assert f"a certificate named {name} is in" in message
            assert "import the certificate of" not in message


def test_a_grpc_server_that_accepts_us_is_not_said_to_refuse_us(ca, stores, capsys, tmp_path):
    """gRPC's C core closes a connection that did not negotiate ALPN "h2", right after
    a TLS 1.3 handshake: the probe said our (trusted) certificate was refused, the
    same as for an untrusted one (h159). It now asks again over h2, and a server that
    answers with its SETTINGS accepted us. The twin: a certificate from another CA
    is still refused."""
    pytest.importorskip("grpc")
    from tests.integrations._grpc_backend import grpc_server, static_credentials

    other = CA(name="not the gRPC server's client CA")
    rogue = {
        "keystore": other.issue_cert("rogue").write_keystore(tmp_path / "rogue.jks", PASSWORD),
        "truststore": stores["truststore"],
    }
    with grpc_server(static_credentials(ca.issue_cert("localhost"), ca)) as (port, _):
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
        assert code == 0, report
        assert kind_of(report) == "None"
        assert report["server_accepted_client_certificate"] is True
        assert any("may speak only HTTP/2" in note for note in report["notes"])
        code, report, _ = probe(f"https://localhost:{port}/", rogue, capsys)
        assert code == 1
        assert kind_of(report) == "client_cert_refused"
        assert not any("may speak only HTTP/2" in note for note in report["notes"])


@pytest.mark.parametrize("close", ["reset", "orderly"])
def test_an_h2_only_server_that_resets_http1_is_not_said_to_refuse_us(
    ca, stores, capsys, tmp_path, close
):
    """An HTTP/2-only server that ends a connection without ALPN "h2" by a reset (or,
    on OpenSSL 3.6, any close: h206 saw a gRPC server's close read as a broken pipe)
    was said to refuse our certificate: the h2 retry ran only after an orderly close.
    Both closes now lead to it. The twin: the orderly close, as before. (With OpenSSL
    3.0 the reset reads as an orderly close, and passed before the fix; with 3.6 it is
    a ConnectionResetError or a "[SYS]" SSLError, and failed.)"""
    import struct

    identity = ca.issue_cert("localhost")
    server = mtls.server_context(
        mtls.Keystore.from_bytes(identity.chain_pem + identity.private_key_pem, None),
        mtls.Truststore.load(stores["truststore"], PASSWORD),
    )
    server.set_alpn_protocols(["h2"])

    def handle(conn: socket.socket) -> None:
        tls = server.wrap_socket(conn, server_side=True)
        if tls.selected_alpn_protocol() == "h2":
            tls.recv(24)  # the client's preface
            tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS
            tls.recv(1)
            tls.close()
            return
        tls.recv(1024)  # the HTTP/1.1 request: closed after it, unanswered
        if close == "reset":  # SO_LINGER 0: the close sends RST, not FIN
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.socket(fileno=tls.detach()).close()  # no close_notify first
        else:
            tls.close()

    with accepting(handle) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert code == 0, report
    assert report["server_accepted_client_certificate"] is True
    assert any("may speak only HTTP/2" in note for note in report["notes"]), report


def _h2_only_server(ca: CA, stores: dict[str, Path], *, tls12: bool = False) -> ssl.SSLContext:
    identity = ca.issue_cert("localhost")
    server = mtls.server_context(
        mtls.Keystore.from_bytes(identity.chain_pem + identity.private_key_pem, None),
        mtls.Truststore.load(stores["truststore"], PASSWORD),
    )
    server.set_alpn_protocols(["h2"])
    if tls12:
        server.maximum_version = ssl.TLSVersion.TLSv1_2
    return server


def _answer_h2_else_close(server: ssl.SSLContext, seen: list[tuple[str | None, str]]):
    """A handler: h2 gets the server's SETTINGS; HTTP/1.1 is closed unanswered."""

    def handle(conn: socket.socket) -> None:
        tls = server.wrap_socket(conn, server_side=True)
        peer = tls.getpeercert() or {}
        names = dict(pair[0] for pair in peer.get("subject", ()))
        seen.append((tls.selected_alpn_protocol(), str(names.get("commonName"))))
        if tls.selected_alpn_protocol() == "h2":
            tls.recv(24)
            tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS
            tls.recv(1)
        tls.close()

    return handle


@pytest.mark.parametrize("raised", ["reset", "broken pipe", "SYS"])
def test_every_close_openssl_36_reports_leads_to_the_h2_retry(
    ca, stores, capsys, monkeypatch, raised
):
    """What OpenSSL 3.6 raises for a close without an alert, on any OpenSSL: the
    HTTP/1.1 answer's read raises it (h209's test); the handshakes, and the retry over
    h2, are real. Without the fix each was a refusal of our certificate."""
    import mtls._cli._connect as connect

    def closed(*_: object) -> bytes:
        if raised == "SYS":
            error = ssl.SSLError(5, "[SYS] unknown error")
            error.library, error.reason = "SYS", None
            raise error
        raise ConnectionResetError(104, "reset") if raised == "reset" else BrokenPipeError(32, "")

    monkeypatch.setattr(connect, "_request", closed)
    with accepting(_answer_h2_else_close(_h2_only_server(ca, stores), [])) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert code == 0, report
    assert any("may speak only HTTP/2" in note for note in report["notes"]), report


@pytest.mark.parametrize("mode", ["tls13-optional", "tls13-required", "tls12"])
def test_a_server_that_resets_every_connection_is_not_said_to_take_us(ca, stores, capsys, mode):
    """The twin (h209): a TLS 1.3 server that resets HTTP/1.1 and h2 alike still
    refused our certificate, when it takes a connection without one too (nothing told
    apart); one that refuses that with an alert took ours (h245: the reset is not the
    refusal it sends alerts for); with TLS 1.2 (our certificate judged in the
    handshake) a reset after it is no refusal."""
    import struct

    tls12 = mode == "tls12"
    server = _h2_only_server(ca, stores, tls12=tls12)
    if mode == "tls13-optional":
        server.verify_mode = ssl.CERT_OPTIONAL

    def handle(conn: socket.socket) -> None:
        tls = server.wrap_socket(conn, server_side=True)
        tls.recv(1024)
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socket.socket(fileno=tls.detach()).close()

    with accepting(handle) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    if tls12:
        assert report["server_accepted_client_certificate"] is True, report
        # ...said with what it cannot tell (h215)
        assert any("not told apart" in note for note in report["notes"]), report
        return
    if mode == "tls13-required":
        assert code == 1 and kind_of(report) == "closed_after_handshake", report
        assert "refused with the alert 'certificate required'" in report["error"]["message"]
        return
    assert code == 1 and kind_of(report) == "client_cert_refused", report
    assert not any("may speak only HTTP/2" in note for note in report["notes"]), report


def test_require_client_auth_asks_an_h2_only_server_over_h2_with_the_throwaway(
    ca, stores, capsys, monkeypatch
):
    """--require-client-auth against an HTTP/2-only server that lets in what it should
    not: the throwaway certificate's HTTP/1.1 connection was closed unanswered, read as
    a refusal, and the gate passed (h209). Its connection is asked over h2 too, and the
    gate fails. (The server takes the "throwaway" because it is, here, issued by the CA
    it trusts: the stand-in for a server that verifies nothing.)"""
    import mtls._cli._probe as probe_module

    taken = ca.issue_cert("throwaway-taken")

    class Generated:
        @staticmethod
        def generate(*_: object, **__: object) -> mtls.Keystore:
            return mtls.Keystore.from_bytes(taken.chain_pem + taken.private_key_pem, None)

    monkeypatch.setattr(probe_module, "Keystore", Generated)
    seen: list[tuple[str | None, str]] = []
    handle = _answer_h2_else_close(_h2_only_server(ca, stores), seen)
    with accepting(handle) as port:
        code, report, _ = probe(
            f"https://localhost:{port}/", stores, capsys, "--require-client-auth"
        )
    assert ("h2", "throwaway-taken") in seen, seen
    assert code == 1 and kind_of(report) == "client_auth_not_enforced", report


@pytest.mark.parametrize("mode", [ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED])
def test_require_client_auth_asks_an_h2_only_server_without_a_certificate(ca, stores, capsys, mode):
    """An HTTP/2-only server (gRPC) that verifies the certificates it is sent and lets
    in clients that send none: the no-certificate connection's HTTP/2 opening went
    through, read as "could not be judged", and the gate passed (h260). It fails now.
    The twin: a server requiring a certificate refuses that client, and passes."""
    server = _h2_only_server(ca, stores)
    server.verify_mode = mode
    seen: list[tuple[str | None, str]] = []
    with accepting(_answer_h2_else_close(server, seen)) as port:
        code, report, _ = probe(
            f"https://localhost:{port}/", stores, capsys, "--require-client-auth"
        )
    if mode == ssl.CERT_REQUIRED:
        assert code == 0, report
        assert any("a client with no certificate was refused" in n for n in report["notes"])
        return
    assert ("h2", "None") in seen, seen  # the client without one, let in over h2
    assert code == 1 and kind_of(report) == "client_auth_not_enforced", report
    assert (
        "let in a client with no certificate (it took the connection"
        in (report["error"]["message"])
    )


def test_a_pem_keystore_without_a_password_is_not_asked_for_one(
    ca, stores, tmp_path, capsys, monkeypatch
):
    """An unencrypted PEM keystore (key and chain in one file): `mtls probe` and `mtls
    serve` asked for its password, where `mtls list` opens it without one (h159). The
    twins: a JKS keystore, and a PEM one whose key is encrypted, are still asked for
    one (h162: the encrypted key's prompt had gone)."""
    monkeypatch.delenv("MTLS_STORE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nobody to answer a prompt
    identity = ca.issue_cert("gateway", common_name="gateway")
    pem = tmp_path / "gateway.pem"
    pem.write_bytes(identity.chain_pem + identity.private_key_pem)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        url = f"https://localhost:{server.port}/"
        code = main(["probe", url, "--keystore", str(pem), "--truststore",
                     str(stores["truststore"]), "--truststore-password", PASSWORD, "--json"])  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 0, out + err
        assert json.loads(out)["ok"] is True
        encrypted = tmp_path / "encrypted.pem"
        encrypted.write_bytes(identity.keystore().to_bytes(PASSWORD, store_type="PEM"))
        assert b"ENCRYPTED" in encrypted.read_bytes()
        for keystore in (stores["keystore"], encrypted):  # asked for, as keytool asks
            code = main(["probe", url, "--keystore", str(keystore), "--truststore",
                         str(stores["truststore"]), "--json"])  # fmt: skip
            out, err = capsys.readouterr()
            assert code == 2 and "the store password of" in err, out + err


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_an_expired_certificate_is_named_first_when_the_server_closes_without_a_word(
    ca, stores, tmp_path, capsys, version
):
    """node's https server refuses a client certificate by closing, without an alert:
    the probe said "it may require a client certificate, another server name, or not
    speak TLS" (TLS 1.2) and left our expired certificate to a note (h159), where the
    docs promise a certificate out of its dates is named first whatever the server
    says. The twin: a certificate in its dates keeps the old wording."""
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_cert(
        "gateway", common_name="expired", not_before=now - dt.timedelta(days=9),
        not_after=now - dt.timedelta(days=2),
    ).write_keystore(tmp_path / "expired.jks", PASSWORD)  # fmt: skip
    ctx = mtls.server_context(ca.issue_cert("localhost").keystore(), ca.truststore())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= 0x200000  # X509_V_FLAG_NO_CHECK_TIME: it asks, and takes any date
    ctx.maximum_version = version

    def close_unanswered(conn: socket.socket) -> None:
        if version is ssl.TLSVersion.TLSv1_3:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
            return
        # TLS 1.2: take the client's certificate flight, then close before our Finished.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
        with conn:
            while data := conn.recv(65536):
                incoming.write(data)
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    conn.sendall(outgoing.read())
                else:
                    return  # our side is done: close, our Finished unsent

    for keystore, stale in ((expired, True), (stores["keystore"], False)):
        with accepting(close_unanswered) as port:
            given = {**stores, "keystore": keystore}
            code, report, _ = probe(f"https://localhost:{port}/", given, capsys)
        assert code == 1
        message = report["error"]["message"]
        assert ("it expired on" in message) is stale, message
        if stale:
            assert "renew it" in message and "without saying why" in message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([0x0303, 0x0304, 0x0302]))
def test_a_certificate_request_of_any_bytes_is_read_or_unread_never_raised(data, version):
    """The CA list of a server's CertificateRequest is read from its bytes: whatever
    they are, a list of names or None, and a name list the probe renders."""
    from mtls._cli._connect import _ca_names
    from mtls._cli._diagnosis import _canonical, name_text

    found = _ca_names(b"\x0d\x00\x00\x00" + data, version)
    assert found is None or all(isinstance(name, bytes) and name for name in found)
    for name in found or ():
        assert isinstance(name_text(name), str)
        _canonical(name)


@pytest.mark.openssl
@pytest.mark.parametrize("weak", ["sha1", "rsa1024"])
def test_a_server_certificate_under_the_security_level_is_named_with_its_fix(
    ca, stores, capsys, tmp_path, openssl_bin, weak
):
    """h245: a server certificate signed with SHA-1, or with an RSA 1024 key, gave only
    OpenSSL's "CA signature digest algorithm too weak" / "EE certificate key too weak":
    which certificate, that Java's defaults take it (the gateway connects), and the fix
    are said. The twin: a certificate from the same CA with SHA-256 and RSA 2048."""
    import subprocess

    key, csr, cert = tmp_path / "k.pem", tmp_path / "r.csr", tmp_path / "c.pem"
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    ca_key.write_bytes(ca.private_key_pem)
    ca_cert.write_bytes(ca.cert_pem)
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\n")

    def make(bits: int, digest: str) -> None:
        subprocess.run([openssl_bin, "req", "-new", "-newkey", f"rsa:{bits}", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([openssl_bin, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey",
                        ca_key, "-set_serial", "7", "-days", "2", f"-{digest}", "-extfile",
                        ext, "-out", cert], check=True, capture_output=True)  # fmt: skip

    def serve() -> ssl.SSLContext:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
        server.load_cert_chain(cert, key)
        return server

    def handshake(server: ssl.SSLContext):
        def handle(conn: socket.socket) -> None:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

        return handle

    make(2048, "sha256")
    with accepting(handshake(serve())) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert code == 0, report
    make(1024, "sha256") if weak == "rsa1024" else make(2048, "sha1")
    with accepting(handshake(serve())) as port:
        code, report, _ = probe(f"https://localhost:{port}/", stores, capsys)
    assert code == 1 and kind_of(report) == "server_cert_invalid", report
    message = report["error"]["message"]
    assert "OpenSSL's security level refuses it" in message
    if weak == "sha1":
        assert "signed with SHA-1, which Java's defaults take" in message
        assert "reissued (SHA-256)" in message and "SECLEVEL=0" in message
        # Which certificate, and its algorithm (it named none, h285).
        assert "signed so: [0] CN=localhost (ecdsa-with-SHA1)" in message, message
    else:
        assert "the key of [0] CN=localhost (RSA 1024)" in message, message
        assert "reissued (RSA 2048 or EC P-256)" in message


def test_an_mtls_server_refusing_a_key_agreement_certificate_is_named(
    ca: CA, stores: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An mtls server refuses a client certificate without digitalSignature after
    OpenSSL took it, and closes without an alert: the probe said only that the backend
    refused this identity above TLS (an allow-list), h266. It names the key usage as
    the refusal an mtls server makes so, beside the allow-list (a server refusing for
    that closes the same way, h267); over TLS 1.2, in its note. The twin, the same
    server and a digitalSignature certificate, is OK without it."""
    from tests._pki import key_usage_only

    keystore = tmp_path / "agreement.jks"
    key_usage_only(ca, ("gateway",), "gateway", "key_agreement").save(keystore, PASSWORD)
    said = "our certificate's key usage has no digitalSignature, which an mtls server refuses"
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        url = f"https://localhost:{server.port}/"
        code, report, _ = probe(url, {**stores, "keystore": keystore}, capsys)
        assert code == 1 and kind_of(report) == "closed_after_handshake"
        message = report["error"]["message"]
        assert said in message and "allow-list" in message and "asked again" in message
        code, report, _ = probe(url, stores, capsys)
        assert code == 0 and kind_of(report) == "None"
        assert not [n for n in report["notes"] if said in n]
    tls12 = ssl.TLSVersion.TLSv1_2
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca, maximum_version=tls12) as server:
        url = f"https://localhost:{server.port}/"
        code, report, _ = probe(url, {**stores, "keystore": keystore}, capsys)
        assert code == 0 and [n for n in report["notes"] if said in n], report["notes"]


def test_a_server_certificate_ending_soon_is_noted(
    ca: CA, stores: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A backend whose certificate ends in two days: the probe showed "expires ...
    (1 day)" and said nothing, where the client's own certificate is warned of 30 days
    ahead (h264). A note says it; the twin, a certificate of a year, draws none."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    for not_after, noted in ((soon, True), (None, False)):
        with MTLSServer(ca.issue_cert("localhost", not_after=not_after), client_ca=ca) as server:
            code, report, _ = probe(f"https://localhost:{server.port}/", stores, capsys)
        assert code == 0 and kind_of(report) == "None"
        notes = [n for n in report["notes"] if "the server's certificate (" in n]
        assert bool(notes) is noted, report["notes"]
        if noted:
            assert "expires in 1 day, on " in notes[0] and "unless it is renewed" in notes[0]
