"""`mtls probe`: the advice for a refused client certificate follows the alert the server sent.

Real servers send the alerts: mtls.testing's MTLSServer (OpenSSL through Python's
ssl) and ``openssl s_server -Verify 1 -verify_return_error`` (with ``-crl_check``
for ``certificate revoked``). Neither sends ``access denied`` or Java's
``certificate unknown`` on its own, so those two come from a TLS 1.2 server that
asks for a client certificate and answers it with that alert record, as a backend's
access check would (a relay in front of Python's ssl).
Each refusal has its twin: the same server accepting a good certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import mtls
from mtls.cli import main
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests.stores.test_context import openssl_server, peer_server

PASSWORD = "advice-Pa55word"
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="advice CA")


@pytest.fixture(scope="module")
def trust(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ca.write_truststore(tmp_path_factory.mktemp("trust") / "trust.jks", PASSWORD)


def probe(
    capsys: pytest.CaptureFixture[str], port: int, client: IssuedIdentity, trust: Path, d: Path
) -> tuple[int, dict[str, Any], Path]:
    keystore = client.write_keystore(d / "client.jks", PASSWORD, alias="gw")
    code = main(
        [
            "probe", f"https://localhost:{port}/", "--keystore", str(keystore),
            "--truststore", str(trust), "--password", PASSWORD, "--timeout", "5", "--json",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    assert "Traceback" not in err and "Warning" not in err, err
    report = json.loads(out)
    assert report["ok"] is (code == 0)
    return code, report, keystore


def probe_bundle(
    capsys: pytest.CaptureFixture[str], port: int, bundle: Path, trust: Path
) -> tuple[int, dict[str, Any]]:
    """``mtls probe --json`` of a local port with a PEM bundle (no password) as identity."""
    code = main(
        [
            "probe", f"https://localhost:{port}/", "--keystore", str(bundle), "--password", "",
            "--truststore", str(trust), "--truststore-password", PASSWORD, "--timeout", "5",
            "--json",
        ]
    )  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def refusal(report: dict[str, Any]) -> tuple[str | None, str]:
    error = report["error"]
    assert error["kind"] == "client_cert_refused", error
    return error["alert"], error["message"]


# --------------------------------------------------------------------------- MTLSServer


def test_a_good_certificate_is_accepted(ca, trust, tmp_path, capsys):
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report, _ = probe(capsys, server.port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 0
    assert report["error"] is None


def test_certificate_expired_says_renew_and_when(ca, trust, tmp_path, capsys):
    ended = NOW - 3 * DAY
    client = ca.issue_cert("gw", not_after=ended)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report, keystore = probe(capsys, server.port, client, trust, tmp_path)
    assert code == 1
    alert, message = refusal(report)
    assert alert == "certificate expired"
    assert f"it expired on {ended.date()}, 3 days ago" in message
    assert "renew it" in message and f"replace the key entry in {keystore}" in message
    assert "truststore" not in message  # not a trust problem


def test_unknown_ca_names_the_keystore_and_the_issuer_to_import(ca, trust, tmp_path, capsys):
    stranger = CA(name="stranger CA")
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report, keystore = probe(
            capsys, server.port, stranger.issue_cert("gw"), trust, tmp_path
        )
    assert code == 1
    alert, message = refusal(report)
    assert alert == "unknown ca"
    assert f"from {keystore}" in message
    assert "does not trust its issuer CN=stranger CA" in message
    assert f"mtls export --keystore {keystore} --alias gw --rfc" in message
    # The import it advises is a whole command (it lacked --alias and --keystore).
    assert "mtls import --file client.pem --alias gw --keystore BACKEND-TRUSTSTORE" in message
    assert "backend-truststore.jks" not in message


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"]
)
def test_a_refused_certificate_is_not_accepted_in_json_on_either_version(
    ca, trust, tmp_path, capsys, version
):
    """A TLS 1.2 server refuses our certificate in the handshake, a TLS 1.3 one after
    it: the JSON said null (unknown) for the first, false for the second."""
    stranger = CA(name="stranger CA")
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca, maximum_version=version) as server:
        code, report, _ = probe(capsys, server.port, stranger.issue_cert("gw"), trust, tmp_path)
    assert code == 1 and refusal(report)[0] == "unknown ca"
    assert report["client_certificate_requested"] is True
    assert report["server_accepted_client_certificate"] is False


def test_unknown_ca_for_a_self_signed_certificate_imports_the_certificate(
    ca, trust, tmp_path, capsys
):
    from mtls import Keystore

    keystore = tmp_path / "self.jks"
    Keystore.generate("gw", "CN=self-signed gw", key_type="EC").save(keystore, PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code = main(
            [
                "probe", f"https://localhost:{server.port}/", "--keystore", str(keystore),
                "--truststore", str(trust), "--password", PASSWORD, "--json",
            ]
        )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    alert, message = refusal(report)
    assert alert == "unknown ca"
    assert "it is self-signed, so import the certificate itself" in message


@pytest.mark.parametrize(
    # Test IDs the same in every xdist worker: a time in one (this module's NOW, taken
    # at each worker's import) differed across a minute boundary, and xdist aborted
    # the whole run ("Different tests were collected").
    ("kind", "alert", "expected"),
    [
        ("not yet valid", "bad certificate", "not valid until {starts:%Y-%m-%d %H:%M} UTC"),
        (
            "no clientAuth",
            "unsupported certificate",
            "its extended key usage lacks clientAuth (it allows serverAuth)",
        ),
    ],
)
def test_bad_and_unsupported_certificates(ca, trust, tmp_path, capsys, kind, alert, expected):
    starts = NOW + 2 * DAY
    expected = expected.format(starts=starts)
    client = (
        ca.issue_cert("gw", not_before=starts)
        if kind == "not yet valid"
        else ca.issue_cert("gw", client_auth=False)
    )
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report, keystore = probe(capsys, server.port, client, trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    assert expected in message and str(keystore) in message


# --------------------------------------------------------------------------- openssl s_server


def _crl(ca: CA, revoked: list[int]) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(NOW - DAY)
        .next_update(NOW + DAY)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - DAY)
            .build()
        )
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(Encoding.PEM)


@pytest.fixture(scope="module")
def s_server_files(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("s_server")
    pem = ca.issue_cert("localhost").write_pem(d / "server.pem")
    (d / "ca.pem").write_bytes(ca.cert_pem)
    return {"server_cert": pem, "server_key": pem, "ca": d / "ca.pem"}


@pytest.mark.openssl
def test_certificate_revoked_by_s_server_with_a_crl(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys
):
    good, bad = ca.issue_cert("gw"), ca.issue_cert("gw")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(_crl(ca, [bad.serial_number]))
    with openssl_server(openssl_bin, s_server_files, "-crl_check", "-CRL", str(crl)) as port:
        code, report, _ = probe(capsys, port, good, trust, tmp_path)
        assert code == 0, report  # the twin: not on the list
        code, report, keystore = probe(capsys, port, bad, trust, tmp_path)
    assert code == 1
    alert, message = refusal(report)
    assert alert == "certificate revoked"
    assert f"serial {bad.serial_number:x}" in message
    assert "has revoked it" in message and f"replace the key entry in {keystore}" in message


@pytest.mark.openssl
@pytest.mark.parametrize(
    ("client", "alert"),
    [("expired", "certificate expired"), ("stranger", "unknown ca")],
)
def test_s_server_alerts_get_the_same_advice(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys, client, alert
):
    identity = (
        ca.issue_cert("gw", not_after=NOW - DAY)
        if client == "expired"
        else CA(name="stranger CA").issue_cert("gw")
    )
    with openssl_server(openssl_bin, s_server_files) as port:
        code, report, _ = probe(capsys, port, identity, trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    assert ("renew it" in message) is (client == "expired")
    assert ("does not trust its issuer CN=stranger CA" in message) is (client == "stranger")


@pytest.mark.openssl
def test_a_key_the_servers_own_rules_refuse_is_named_beside_trust(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys
):
    """A server that trusts our CA and refuses our key by its own rules (here OpenSSL's
    security level 3: 128-bit keys; Java's jdk.certpath.disabledAlgorithms, h197) says
    only "bad certificate" or "certificate unknown": the probe told the operator to
    import the CA the backend already trusted. It names our key and signature as the
    other cause. The twin: an EC P-256 key from the same CA goes through."""
    with openssl_server(openssl_bin, s_server_files, "-auth_level", "3") as port:
        code, report, _ = probe(capsys, port, ca.issue_cert("gw", key_type="EC"), trust, tmp_path)
        assert code == 0, report
        code, report, _ = probe(capsys, port, ca.issue_cert("gw", key_type="RSA"), trust, tmp_path)
    assert code == 1
    alert, message = refusal(report)
    assert alert == "bad certificate"
    assert "this alert does not say why" in message
    assert "does not trust its issuer CN=advice CA" in message  # still one of the two
    assert (
        "its own rules (Java's jdk.certpath.disabledAlgorithms, an OpenSSL security level)"
        in message
    )
    assert "refuse our RSA 2048 key or ecdsa-with-SHA256 signature" in message
    assert "SHA-1" not in message  # Go's refusal is of SHA-1 signatures: not ours


@pytest.mark.openssl
@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_a_server_that_lists_other_cas_is_said_to_get_nothing_from_java(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys, version
):
    """h245: a backend that verifies our CA but asks for certificates of another (its
    CertificateRequest's CA list) took ours from the probe, which said OK; a Java
    client (the gateway) sends no certificate there and is refused. The probe names the
    CAs the server lists and says so. The twin: a server listing our CA, no such note."""
    other = CA(name="listed CA")
    listed = tmp_path / "listed.pem"
    listed.write_bytes(other.cert_pem)
    lists_other = {**s_server_files, "ca": listed}
    verify_ours = ("-verifyCAfile", str(s_server_files["ca"]), version)
    with openssl_server(openssl_bin, lists_other, *verify_ours) as port:
        code, report, keystore = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
        # The text report says it too (h254: only --json did).
        main(["probe", f"https://localhost:{port}/", "--keystore", str(keystore),
              "--truststore", str(trust), "--password", PASSWORD])  # fmt: skip
        text = capsys.readouterr().out
    assert "  asks for      certificates issued by CN=listed CA,O=mtls.testing\n" in text, text
    assert code == 0, report  # OpenSSL sends ours whatever the list says
    assert report["server_ca_names"] == ["CN=listed CA,O=mtls.testing"], report
    [note] = [n for n in report["notes"] if "Java client" in n]
    assert "would send NO certificate" in note
    assert "issued by CN=listed CA,O=mtls.testing, and ours (CN=gw" in note
    assert "is issued by CN=advice CA" in note
    with openssl_server(openssl_bin, s_server_files, version) as port:
        code, report, _ = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 0, report
    assert report["server_ca_names"] == ["CN=advice CA,O=mtls.testing"], report
    assert not [n for n in report["notes"] if "Java client" in n], report


@pytest.mark.openssl
def test_through_wso2s_profile_file_a_server_java_gets_nothing_from_fails_the_probe(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys
):
    """h248: with the gateway's own profile file, a backend a Java client sends no
    certificate to is a failure (the note alone kept the gate green); with a keystore
    whose other key entry a listed CA issued, Java sends that one instead, and the
    probe names it. Twin: a server listing our CA passes."""
    from tests._helpers import PASSWORD as XML_PASSWORD
    from tests._helpers import profile_xml

    other = CA(name="listed CA")
    listed = tmp_path / "listed.pem"
    listed.write_bytes(other.cert_pem)
    keystore = ca.issue_cert("gw", common_name="gateway").keystore("gateway")
    b = other.issue_cert("gw", common_name="gateway-b")
    keystore.add_key("b", b.private_key, [b.certificate, other.certificate])
    store = tmp_path / "gw.jks"
    keystore.save(store, XML_PASSWORD)
    trust_jks = ca.write_truststore(tmp_path / "t.jks", XML_PASSWORD)
    stores = (
        f"<KeyStore><Location>{store}</Location><Type>JKS</Type><Password>{XML_PASSWORD}"
        f"</Password><KeyPassword>{XML_PASSWORD}</KeyPassword><KeyAlias>gateway</KeyAlias>"
        f"</KeyStore><TrustStore><Location>{trust_jks}</Location><Type>JKS</Type>"
        f"<Password>{XML_PASSWORD}</Password></TrustStore>"
    )
    verify_ours = ("-verifyCAfile", str(s_server_files["ca"]))
    for lists, fails in ((listed, True), (s_server_files["ca"], False)):
        with openssl_server(openssl_bin, {**s_server_files, "ca": lists}, *verify_ours) as port:
            xml = tmp_path / "sslprofiles.xml"
            xml.write_text(
                profile_xml(f"<profile><servers>localhost:{port}</servers>{stores}</profile>")
            )
            code = main(["probe", f"https://localhost:{port}/", "--profiles", str(xml), "--json"])
            report = json.loads(capsys.readouterr().out)
        if not fails:
            assert code == 0 and report["error"] is None, report
            continue
        assert code == 1 and report["error"]["kind"] == "java_sends_no_certificate", report
        message = report["error"]["message"]
        assert "would send the key entry 'b' (CN=gateway-b,O=mtls.testing) instead" in message


# --------------------------------------------------------------------------- other alerts

_ALERTS = {
    "access denied": 49,
    "certificate unknown": 46,
    "decrypt error": 51,
    "bad certificate": 42,
}


@contextlib.contextmanager
def _serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback port whose every connection goes to ``handle`` (on a thread of its
    own; an ``OSError`` ends that connection), and closed at the end."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        listener.close()
        thread.join(5)


def _record(sock: socket.socket) -> bytes:
    """One TLS record (header and body) from ``sock``; b"" at its end."""
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            return b""
        head += chunk
    body = b""
    while len(body) < int.from_bytes(head[3:5], "big"):
        chunk = sock.recv(int.from_bytes(head[3:5], "big") - len(body))
        if not chunk:
            return b""
        body += chunk
    return head + body


def _server_flight(sock: socket.socket) -> bytes:
    """A TLS 1.2 server's first flight, read up to its ServerHelloDone (records whole)."""
    flight, messages = b"", b""
    while True:
        record = _record(sock)
        if not record:
            return flight
        flight += record
        if record[0] != 22:  # not a handshake record (an alert)
            return flight
        messages += record[5:]
        while len(messages) >= 4 and len(messages) >= 4 + int.from_bytes(messages[1:4], "big"):
            if messages[0] == 14:  # ServerHelloDone
                return flight
            messages = messages[4 + int.from_bytes(messages[1:4], "big") :]


@pytest.fixture
def alerting(ca: CA, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A TLS 1.2 server that asks for a client certificate and answers the client's with
    the alert set in ``["alert"]``, as a backend's own check does (``access denied``,
    Java's ``certificate unknown``: neither OpenSSL nor Python's ssl sends them at will).
    A real server (Python's ssl) behind a relay: its first flight, CertificateRequest
    included, goes to the client; the client's answer (its Certificate, ...) gets the
    alert (in the clear: TLS 1.2 encrypts nothing of the server's before its Finished).
    Answering the ClientHello itself would be a server that refused a certificate it
    never asked for (h135)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(ca.issue_cert("localhost").write_pem(tmp_path / "alerting.pem"))
    server.load_verify_locations(cadata=ca.cert_pem.decode())
    server.verify_mode = ssl.CERT_OPTIONAL
    state: dict[str, Any] = {"alert": 49}

    def handshake(conn: socket.socket) -> None:
        server.wrap_socket(conn, server_side=True)  # the relay ends it half-way

    def answer(conn: socket.socket) -> None:
        with socket.create_connection(("127.0.0.1", upstream), timeout=5) as up:
            up.sendall(_record(conn))  # the ClientHello
            conn.sendall(_server_flight(up))
            if _record(conn):  # the client's answer: its Certificate first
                # TLS record: alert (21), TLS 1.2, length 2, fatal (2), description.
                conn.sendall(bytes([21, 3, 3, 0, 2, 2, state["alert"]]))

    with _serving(handshake) as upstream, _serving(answer) as port:
        state["port"] = port
        yield state


@pytest.fixture
def answering_the_hello() -> Iterator[dict[str, Any]]:
    """A loopback server that answers every ClientHello with the alert in ``["alert"]``:
    before any CertificateRequest (a misconfigured backend, or a proxy in front)."""
    state: dict[str, Any] = {"alert": 49}

    def answer(conn: socket.socket) -> None:
        _record(conn)  # the ClientHello
        conn.sendall(bytes([21, 3, 3, 0, 2, 2, state["alert"]]))

    with _serving(answer) as port:
        state["port"] = port
        yield state


@pytest.mark.parametrize(
    ("alert", "number"),
    [("unknown ca", 48), ("bad certificate", 42), ("access denied", 49),
     ("certificate required", 116), ("handshake failure", 40)],
)  # fmt: skip
def test_an_alert_before_any_certificate_request_blames_no_certificate_of_ours(
    ca, trust, tmp_path, capsys, answering_the_hello, alert, number
):
    """A server that ends the handshake before asking for a client certificate never
    saw ours: "unknown ca" told the operator to import our CA into the backend, and
    "certificate required" to pass --keystore, which was passed (h135). The alert is in
    error.alert for each, "handshake failure" too (it was null). Twins: the same
    alerts after the request (test_access_denied_and_certificate_unknown, above)."""
    answering_the_hello["alert"] = number
    code, report, _ = probe(capsys, answering_the_hello["port"], ca.issue_cert("gw"), trust,
                            tmp_path)  # fmt: skip
    assert code == 1
    error = report["error"]
    assert error["alert"] == alert
    assert error["kind"] in ("tls_error", "handshake_failure"), error
    assert "before asking for any" in error["message"]
    for advice in ("import", "pass --keystore", "renew", "refused our"):
        assert advice not in error["message"], error["message"]


@pytest.mark.parametrize("alert", sorted(_ALERTS))
def test_access_denied_and_certificate_unknown(ca, trust, tmp_path, capsys, alerting, alert):
    alerting["alert"] = _ALERTS[alert]
    code, report, _ = probe(capsys, alerting["port"], ca.issue_cert("gw"), trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    if alert == "access denied":
        # Both of what it means: GnuTLS says it for any failed verification, others
        # for an authorisation refusal. Neither is given as the one answer.
        assert "either the backend could not verify it" in message
        assert "does not trust its issuer CN=advice CA" in message
        assert "ask its owners to allow CN=gw" in message
        assert "verified it but" not in message
    elif alert == "decrypt error":
        assert "could not verify a signature" in message
    else:
        # Go's and Java's word for any failed verification: trust, or their own rules.
        assert "does not trust its issuer CN=advice CA" in message
        assert "the backend trusts that CA and its own rules" in message
        assert "refuse our EC secp256r1 key" in message


@pytest.mark.parametrize("alert", ["bad certificate", "certificate unknown", "access denied"])
def test_a_certificate_not_for_client_authentication_is_named_whatever_the_alert(
    ca, trust, tmp_path, capsys, alerting, alert
):
    """Go answers a client certificate without clientAuth with "bad certificate", Java
    with "certificate unknown": the probe told the operator to import a CA the backend
    already trusts. The certificate's purpose comes first; the alert's own reading
    follows, as GnuTLS-based servers do not check the purpose and say the same of a
    certificate they do not trust (the review h131). Twins above: the same alerts for
    a certificate that allows client authentication."""
    alerting["alert"] = _ALERTS[alert]
    client = ca.issue_cert("gw", client_auth=False)
    code, report, keystore = probe(capsys, alerting["port"], client, trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    assert message.index("its extended key usage lacks clientAuth (it allows serverAuth)") < (
        message.index("if the backend does not check the purpose (GnuTLS-based servers do not)")
    )
    assert f"reissue it for TLS client authentication and replace it in {keystore}" in message
    assert f"(the server said only '{alert}')" in message
    assert "does not trust its issuer CN=advice CA" in message


@pytest.mark.parametrize("alert", ["certificate unknown", "bad certificate"])
def test_a_key_usage_without_a_signature_is_named_for_javas_alert(
    ca, trust, tmp_path, capsys, alerting, alert
):
    """A key usage without digitalSignature: OpenSSL and Java refuse it (Java says
    "certificate unknown"), Go does not check it. For Java's alert the key usage is
    named (the review h132: a first version gave trust advice there); Go's "bad
    certificate" is not about it, and keeps the trust advice."""
    from cryptography.hazmat.primitives.asymmetric import ec as ec_keys

    key = ec_keys.generate_private_key(ec_keys.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=gw"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(
            x509.KeyUsage(False, False, False, True, False, False, False, False, False), True
        )  # keyAgreement only
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca.private_key, hashes.SHA256())
    )
    store = mtls.Keystore()
    store.add_key("gw", key, [cert, ca.certificate])
    keystore = tmp_path / "ku.jks"
    store.save(keystore, PASSWORD)
    alerting["alert"] = _ALERTS[alert]
    code = main(
        [
            "probe", f"https://localhost:{alerting['port']}/", "--keystore", str(keystore),
            "--truststore", str(trust), "--password", PASSWORD, "--timeout", "5", "--json",
        ]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    if alert == "certificate unknown":
        assert "its key usage has no digitalSignature" in message, message
        assert "does not trust its issuer CN=advice CA" in message  # the other reading
    else:
        assert "key usage" not in message, message
        assert "does not trust its issuer CN=advice CA" in message


@pytest.mark.parametrize("alert", ["bad certificate", "access denied"])
def test_an_expired_certificate_is_named_whatever_the_alert(
    ca, trust, tmp_path, capsys, alerting, alert
):
    """Go answers an expired client certificate with "bad certificate", gnutls-serv
    with "access denied": the probe blamed trust or authorisation. Our certificate's
    dates come first (the twins above: the same alerts for a certificate in date)."""
    alerting["alert"] = _ALERTS[alert]
    ended = NOW - 3 * DAY
    client = ca.issue_cert("gw", not_after=ended)
    code, report, keystore = probe(capsys, alerting["port"], client, trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == alert
    assert f"it expired on {ended.date()}, 3 days ago" in message and "renew it" in message
    assert f"replace the key entry in {keystore}" in message
    assert f"(the server said only '{alert}')" in message
    assert "truststore" not in message and "denies this identity access" not in message


@pytest.mark.parametrize("expired", [True, False])
def test_profile_probe_names_the_profiles_keystore(ca, trust, tmp_path, capsys, expired):
    """Through --profiles: the advice names the profile's keystore, and its twin passes."""
    client = ca.issue_cert("gw", not_after=NOW - 2 * DAY) if expired else ca.issue_cert("gw")
    keystore = client.write_keystore(tmp_path / "profile-gw.jks", PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        xml = tmp_path / "profiles.xml"
        xml.write_text(
            f'<parameter name="customSSLProfiles"><profile><servers>localhost:{server.port}'
            f"</servers><KeyStore><Location>{keystore}</Location><Password>{PASSWORD}</Password>"
            f"</KeyStore><TrustStore><Location>{trust}</Location><Password>{PASSWORD}"
            "</Password></TrustStore></profile></parameter>"
        )
        code = main(["probe", f"https://localhost:{server.port}/", "--profiles", str(xml)])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    if not expired:
        assert code == 0, out + err
        return
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("mtls: error: ")
    assert f"from {keystore} (certificate expired)" in err
    assert f"it expired on {(NOW - 2 * DAY).date()}, 2 days ago" in err
    assert f"replace the key entry in {keystore}" in err


# --------------------------------------------------------------------------- server dates


@pytest.mark.parametrize("when", ["expired", "not yet valid"])
def test_server_certificate_dates_get_a_fix_and_the_date(ca, trust, tmp_path, capsys, when):
    if when == "expired":
        cert = ca.issue_cert("localhost", not_after=NOW - 4 * DAY)
        expected = f"expired on {(NOW - 4 * DAY).date()}, 4 days ago: the backend must renew it"
    else:
        starts = NOW + 3 * DAY
        cert = ca.issue_cert("localhost", not_before=starts)
        expected = f"valid only from {starts:%Y-%m-%d %H:%M} UTC"
    with MTLSServer(cert, client_ca=ca) as server:
        code, report, _ = probe(capsys, server.port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 1
    assert report["error"]["kind"] == f"server_cert_{when.replace(' ', '_')}"
    assert "CN=localhost" in report["error"]["message"]
    assert expected in report["error"]["message"]


@pytest.mark.openssl
def test_an_expired_anchor_in_our_truststore_is_named(ca, openssl_bin, tmp_path, capsys):
    # s_server sends its leaf alone (its -CAfile is another CA, so no chain is built):
    # only our truststore holds the expired root.
    old = CA(name="old root", not_after=NOW - DAY)
    trust = old.write_truststore(tmp_path / "old-trust.jks", PASSWORD)
    pem = old.issue_cert("localhost", not_after=NOW + 9 * DAY).write_pem(tmp_path / "server.pem")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    files = {"server_cert": pem, "server_key": pem, "ca": tmp_path / "ca.pem"}
    with openssl_server(openssl_bin, files) as port:
        code, report, _ = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 1
    message = report["error"]["message"]
    assert report["error"]["kind"] == "server_cert_expired"
    assert f"the CA certificate in {trust} that anchors its chain is expired" in message
    assert "CN=old root,O=mtls.testing (expired " in message  # named
    # The server's certificate is in date: nothing may tell its backend to renew it.
    assert "nothing the server sent is out of date" in message
    assert "backend must renew" not in message


def test_an_expired_ca_in_the_chain_the_server_sends_is_named(tmp_path, capsys):
    old = CA(name="old root", not_after=NOW - DAY)
    trust = old.write_truststore(tmp_path / "old-trust.jks", PASSWORD)
    with MTLSServer(old.issue_cert("localhost", not_after=NOW + 9 * DAY), client_ca=old) as server:
        code, report, _ = probe(capsys, server.port, old.issue_cert("gw"), trust, tmp_path)
    assert code == 1
    message = report["error"]["message"]
    assert report["error"]["kind"] == "server_cert_expired"
    assert "CA certificate [1] of its chain CN=old root,O=mtls.testing expired on" in message
    assert f"{trust} must hold that certificate (" in message  # a root: replaced there


def test_an_expired_intermediate_the_server_sends_is_named(tmp_path, capsys):
    """An intermediate's renewal is anchored by the root the truststore holds: the
    advice said the truststore must hold the intermediate (h245)."""
    root = CA(name="current root")
    old = root.create_child_ca(name="old intermediate", not_after=NOW - DAY)
    trust = root.write_truststore(tmp_path / "trust.jks", PASSWORD)
    leaf = old.issue_cert("localhost", not_after=NOW + 9 * DAY)
    with MTLSServer(leaf, client_ca=root) as server:
        code, report, _ = probe(capsys, server.port, root.issue_cert("gw"), trust, tmp_path)
    assert code == 1
    message = report["error"]["message"]
    assert report["error"]["kind"] == "server_cert_expired"
    assert "CA certificate [1] of its chain CN=old intermediate,O=mtls.testing expired" in message
    assert f"{trust} must hold that certificate or a CA certificate above it" in message


@pytest.mark.openssl
@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_a_key_no_accepted_signature_fits_is_named_not_a_missing_keystore(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys, version
):
    """A server that takes no RSASSA-PSS signature for client certificates (Go's
    crypto/tls; here s_server -client_sigalgs): OpenSSL sends an empty certificate
    list, and the probe said "we sent none: pass --keystore" to a caller who had.
    The twin: an EC identity, whose signature the server takes, is let in."""
    import subprocess

    key, csr, cert = tmp_path / "pss.key", tmp_path / "pss.csr", tmp_path / "pss.pem"
    (tmp_path / "ca.key").write_bytes(ca.private_key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    for command in (
        ["genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
        ["req", "-new", "-key", key, "-subj", "/CN=pss-client", "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", tmp_path / "ca.pem", "-CAkey", tmp_path / "ca.key",
         "-set_serial", "7", "-days", "5", "-out", cert],
    ):  # fmt: skip
        subprocess.run([openssl_bin, *map(str, command)], check=True, capture_output=True)
    bundle = tmp_path / "pss-bundle.pem"
    bundle.write_bytes(key.read_bytes() + cert.read_bytes())
    sigalgs = ("-client_sigalgs", "RSA+SHA256:ECDSA+SHA256", version)
    with openssl_server(openssl_bin, s_server_files, *sigalgs) as port:
        code, report = probe_bundle(capsys, port, bundle, trust)
        twin, twin_report, _ = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 1 and twin == 0, twin_report
    _, message = refusal(report)
    assert f"we have a client certificate (CN=pss-client from {bundle}) but sent none" in message
    assert "fits its RSASSA-PSS key" in message and "RSA (PKCS#1) or EC key" in message
    assert "pass --keystore" not in message


@pytest.fixture
def closing_server(ca: CA, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A loopback TLS server (Python's ssl) that closes its socket as soon as a
    handshake fails (after the alert), as stunnel does, and answers HTTP otherwise;
    ``["refused"]`` is set once it has closed a refused connection."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity = ca.issue_cert("localhost").write_pem(tmp_path / "closing-server.pem")
    server.load_cert_chain(identity)
    server.load_verify_locations(cadata=ca.cert_pem.decode())
    server.verify_mode = ssl.CERT_REQUIRED
    refused = threading.Event()

    def answer(conn: socket.socket) -> None:
        try:
            tls = server.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()  # refused: the alert is sent, the socket closed at once
            refused.set()
            return
        with tls:
            tls.recv(16384)
            tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with _serving(answer) as port:
        yield {"port": port, "refused": refused}


def test_an_alert_that_arrives_before_our_request_is_still_read(
    ca, trust, tmp_path, capsys, monkeypatch, closing_server
):
    """TLS 1.3: the server checks our certificate after our handshake has ended, then
    sends its alert and closes. When both come before our request is written (the
    probe checked the server's revocation status first, here made to wait for it), the
    write fails (EOF) and the alert waited unread: the probe said "closed the
    connection right after the handshake without answering" (stunnel: 5 to 9 runs in
    10). It now reads the alert. The twin: a good certificate gets its answer."""
    from mtls._cli import _connect

    checked = _connect._revocation_report

    def slow_check(*args: Any) -> None:
        checked(*args)
        # The window: our write waits until the server has sent its alert and closed.
        assert closing_server["refused"].wait(10)

    port = closing_server["port"]
    monkeypatch.setattr(_connect, "_revocation_report", slow_check)
    ended = NOW - 3 * DAY
    expired = ca.issue_cert("gw", not_after=ended)
    code, report, _ = probe(capsys, port, expired, trust, tmp_path)
    monkeypatch.setattr(_connect, "_revocation_report", checked)
    twin, twin_report, _ = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
    assert twin == 0, twin_report
    assert code == 1
    alert, message = refusal(report)
    assert alert == "certificate expired"
    assert f"it expired on {ended.date()}" in message


# --------------------------------------------------------------------------- gnutls-serv

_GNUTLS = shutil.which("gnutls-serv")
needs_gnutls = pytest.mark.skipif(_GNUTLS is None, reason="no gnutls-serv (apt: gnutls-bin)")


def gnutls_server(
    files: dict[str, Path], version: str, *extra: str
) -> contextlib.AbstractContextManager[int]:
    """``gnutls-serv`` demanding and verifying a client certificate, one TLS version."""
    assert _GNUTLS is not None
    gnutls = _GNUTLS

    def command(port: int) -> list[str]:
        return [
            gnutls, "--http", "-p", str(port), "--x509certfile", str(files["server_cert"]),
            "--x509keyfile", str(files["server_key"]), "--x509cafile", str(files["ca"]),
            "--require-client-cert", "--verify-client-cert",
            "--priority", f"NORMAL:-VERS-ALL:+VERS-TLS{version}", *extra,
        ]  # fmt: skip

    return peer_server(command)


@needs_gnutls
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_gnutls_serv_without_our_certificate_says_it_wants_one(
    s_server_files, trust, capsys, version
):
    """gnutls-serv answers TLS 1.2's empty Certificate message with "decode error": the
    probe gave a bare "TLS handshake failed" and no alert. It asked for a certificate
    and we sent none: that is what is said (TLS 1.3 sends "certificate required")."""
    with gnutls_server(s_server_files, version) as port:
        code = main(
            ["probe", f"https://localhost:{port}/", "--truststore", str(trust),
             "--password", PASSWORD, "--timeout", "5", "--json"]
        )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["client_certificate_requested"] is True
    got, message = refusal(report)
    assert got == ("decode error" if version == "1.2" else "certificate required")
    assert message.startswith("the server requires a client certificate and we sent none (")
    assert message.endswith("pass --keystore")


@needs_gnutls
@pytest.mark.parametrize("client", ["trusted", "stranger"])
def test_gnutls_serv_access_denied_is_not_called_an_authorisation_refusal(
    ca, s_server_files, trust, tmp_path, capsys, client
):
    """gnutls-serv says "access denied" for a certificate it cannot verify: the probe
    said the backend had verified it. Twin: a trusted certificate is accepted."""
    identity = ca.issue_cert("gw") if client == "trusted" else CA(name="other CA").issue_cert("gw")
    with gnutls_server(s_server_files, "1.3") as port:
        code, report, _ = probe(capsys, port, identity, trust, tmp_path)
    if client == "trusted":
        assert code == 0 and report["error"] is None
        assert report["server_accepted_client_certificate"] is True, report
        return
    assert code == 1
    got, message = refusal(report)
    assert got == "access denied"
    assert "could not verify it" in message and "does not trust its issuer CN=other CA" in message


@needs_gnutls
def test_gnutls_serv_access_denied_for_a_revoked_certificate_names_revocation(
    ca, s_server_files, trust, tmp_path, capsys
):
    """gnutls-serv checking a CRL says "access denied" for a revoked certificate: the
    advice was to import the CA it already trusted (h245); revocation is named among
    the causes, with the serial. Twin: a certificate the CRL does not list is taken."""
    good, bad = ca.issue_cert("gw"), ca.issue_cert("gw")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(_crl(ca, [bad.serial_number]))
    with gnutls_server(s_server_files, "1.3", "--x509crlfile", str(crl)) as port:
        code, report, _ = probe(capsys, port, good, trust, tmp_path)
        assert code == 0, report
        code, report, _ = probe(capsys, port, bad, trust, tmp_path)
    assert code == 1
    got, message = refusal(report)
    assert got == "access denied"
    assert f"has revoked it, serial {bad.serial_number:x}" in message, message
    assert "if the backend checks its CRL" in message


@needs_gnutls
def test_gnutls_serv_refusing_an_untrusted_certificate_without_client_auth_names_both(
    ca, s_server_files, trust, tmp_path, capsys
):
    """GnuTLS does not check the purpose: a certificate without clientAuth from an
    untrusted CA was blamed on its purpose alone (the review h131), and reissuing it
    from the same CA would change nothing. The untrusted issuer is named too; the twin,
    the same purpose from the trusted CA, is accepted by gnutls-serv."""
    stranger = CA(name="other CA").issue_cert("gw", client_auth=False)
    with gnutls_server(s_server_files, "1.3") as port:
        code, report, _ = probe(capsys, port, stranger, trust, tmp_path)
        assert code == 1
        _, message = refusal(report)
        assert "its extended key usage lacks clientAuth" in message
        assert "does not trust its issuer CN=other CA" in message
        code, report, _ = probe(
            capsys, port, ca.issue_cert("gw", client_auth=False), trust, tmp_path
        )
    assert code == 0 and report["server_accepted_client_certificate"] is True


@pytest.mark.openssl
@pytest.mark.skipif(
    ssl.OPENSSL_VERSION_INFO >= (3, 2),
    reason="OpenSSL 3.2+ signs TLS 1.3 with brainpool: no context is held to TLS 1.2",
)
def test_a_context_held_to_tls12_says_so_to_a_server_that_takes_tls13_only(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys
):
    """A key TLS 1.3 cannot sign with (here EC on brainpoolP256r1) holds the context to
    TLS 1.2; against a server that takes TLS 1.3 only, the probe said "we offer TLS 1.2
    and 1.3". It now says what the context offered, and why. The twin: an EC P-256
    identity gets through the same server."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = serialization.load_pem_private_key(ca.private_key_pem, None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bp-client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=5))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    bundle = tmp_path / "brainpool.pem"
    bundle.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
        + ca.cert_pem
    )
    with openssl_server(openssl_bin, s_server_files, "-tls1_3") as port:
        code, report = probe_bundle(capsys, port, bundle, trust)
        twin, twin_report, _ = probe(capsys, port, ca.issue_cert("gw"), trust, tmp_path)
    assert code == 1 and twin == 0, twin_report
    assert report["error"]["kind"] == "protocol_version", report["error"]
    message = report["error"]["message"]
    assert "we offer TLS 1.2 only, as a context is held for a key TLS 1.3 cannot sign" in message
    assert "1.2 and 1.3" not in message


@pytest.mark.openssl
def test_require_client_auth_fails_a_server_that_verifies_no_certificate(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys
):
    """`openssl s_server -verify 1` without -verify_return_error (nginx's
    ssl_verify_client optional_no_ca) asks for a client certificate and lets any in:
    `--require-client-auth` passed (h159). It tries a self-signed certificate no CA
    issued too now. The twin: a server that verifies refuses that one, and the gate
    passes."""
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "client.jks", PASSWORD, alias="gw")

    def lenient(port: int) -> list[str]:
        return [
            openssl_bin, "s_server", "-accept", f"127.0.0.1:{port}", "-www",
            "-cert", str(s_server_files["server_cert"]), "-key", str(s_server_files["server_key"]),
            "-CAfile", str(s_server_files["ca"]), "-verify", "1",
        ]  # fmt: skip

    def gate(port: int) -> tuple[int, dict[str, Any]]:
        code = main(
            [
                "probe", f"https://localhost:{port}/", "--keystore", str(keystore),
                "--truststore", str(trust), "--password", PASSWORD, "--timeout", "5",
                "--json", "--require-client-auth",
            ]
        )  # fmt: skip
        out, _ = capsys.readouterr()
        return code, json.loads(out)

    with peer_server(lenient) as port:
        code, report = gate(port)
    assert code == 1, report
    assert report["error"]["kind"] == "client_auth_not_enforced"
    assert "self-signed certificate no CA issued" in report["error"]["message"]
    with openssl_server(openssl_bin, s_server_files) as port:
        code, report = gate(port)
    assert code == 0, report
    assert any("was refused, as it should be" in note for note in report["notes"])
    # A server that verifies what it is sent and takes nothing as well (-verify 1
    # -verify_return_error, nginx's ssl_verify_client optional): it refuses the
    # self-signed certificate, and passed the gate (h255).
    with peer_server(lambda port: [*lenient(port), "-verify_return_error"]) as port:
        code, report = gate(port)
    assert code == 1, report
    assert report["error"]["kind"] == "client_auth_not_enforced"
    assert "also let in a client with no certificate" in report["error"]["message"]


@pytest.mark.openssl
@pytest.mark.parametrize("dated", ["leap second", "fraction", "plain"])
def test_a_certificate_whose_dates_openssl_cannot_verify_is_named(
    ca, trust, s_server_files, openssl_bin, tmp_path, capsys, dated
):
    """A leap second in our certificate's notAfter: ``openssl s_server`` refuses it
    ("format error in certificate's notAfter field", alert bad certificate) whatever it
    trusts, and the probe said to import our CA into the backend's truststore (h202).
    A fraction, which Java reads, may be a Java server's refusal for the reason its
    alert gives: that advice follows (h204). The twin: the same identity, plainly
    dated, goes through."""
    from cryptography.hazmat.primitives import serialization

    from mtls import _x509
    from tests._helpers import redated

    identity = ca.issue_cert("gw")
    ends = {"leap second": "U:361231235960Z", "fraction": "G:20611231235959.5Z"}
    der = (
        redated(identity.certificate, ca, "U:200101000000Z", ends[dated])
        if dated in ends
        else identity.certificate.public_bytes(serialization.Encoding.DER)
    )
    bundle = tmp_path / "gw.pem"
    bundle.write_bytes(
        identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + _x509.der_to_pem(der).encode()
    )
    with openssl_server(openssl_bin, s_server_files) as port:
        code, report = probe_bundle(capsys, port, bundle, trust)
    if dated == "plain":
        assert code == 0, report
        return
    assert code == 1
    alert, message = refusal(report)
    assert alert == "bad certificate"
    assert "refuses it whatever it trusts" in message
    if dated == "fraction":
        assert "its notAfter (GeneralizedTime '20611231235959.5Z') is not in the form" in message
        assert "or, for a server that reads such times (Java's), the backend " in message
        return
    assert "its notAfter (UTCTime '361231235960Z') is not a date that exists" in message
    assert "truststore" not in message.split("whatever it trusts")[1]


@needs_gnutls
@pytest.mark.openssl
@pytest.mark.parametrize("usage", ["key_agreement", "digital_signature"])
def test_an_ec_client_certificate_that_cannot_sign_is_named_for_gnutls(
    ca, s_server_files, trust, openssl_bin, tmp_path, capsys, usage
):
    """An EC client key whose key usage allows keyAgreement alone passes OpenSSL's
    purpose check (its servers take the CertificateVerify it signs) and gnutls-serv
    refuses it in TLS 1.2 and 1.3: nothing was said (h204). The warning names GnuTLS
    (and Java and mtls servers, which refuse it too: h259); the twin, digitalSignature, is taken by both and draws none."""
    from mtls import _purpose
    from tests._pki import key_usage_only

    store = key_usage_only(ca, ("gw",), "agreement", usage)
    keystore = tmp_path / "gw.jks"
    store.save(keystore, PASSWORD)
    found = _purpose.usage_warning(store.key_entry("client")[2][0], "client")
    assert (found is not None and found[1] == "Java, mtls and GnuTLS") is (usage == "key_agreement")

    def probed(port: int) -> int:
        code = main(
            ["probe", f"https://localhost:{port}/", "--keystore", str(keystore),
             "--truststore", str(trust), "--password", PASSWORD, "--timeout", "5", "--json"]
        )  # fmt: skip
        capsys.readouterr()
        return code

    for version in ("1.2", "1.3"):
        with gnutls_server(s_server_files, version) as port:
            assert (probed(port) == 0) is (usage == "digital_signature"), version
    with openssl_server(openssl_bin, s_server_files) as port:
        assert probed(port) == 0  # others take it


# ------------------------------------------------ what a Java client refuses, OpenSSL takes


@pytest.mark.parametrize("signs", [False, True])
def test_a_server_certificate_java_refuses_for_its_key_usage_is_named(
    ca, trust, tmp_path, capsys, signs
):
    """h254: an RSA server certificate whose key usage is keyEncipherment alone (an old
    template's): OpenSSL, and a profile set, take it over TLS 1.3; Java's clients (the
    WSO2 gateway) refuse it ("KeyUsage does not allow digital signatures"), and the
    probe said it works. With a keystore, a note; with the gateway's profile file, a
    failure. The twin: with digitalSignature beside it, nothing is said."""
    from tests._pki import key_usage_only

    usages = ("digital_signature", "key_encipherment") if signs else ("key_encipherment",)
    served = key_usage_only(ca, ("localhost",), "legacy backend", *usages, rsa_key=True)
    with MTLSServer(served, client_ca=ca) as backend:
        code, report, _ = probe(capsys, backend.port, ca.issue_cert("gw"), trust, tmp_path)
        gateway, through_profile = _gateway_probe(capsys, backend.port, ca, tmp_path)
    assert code == 0, report  # OpenSSL took it, and so does the backend our certificate
    said = [n for n in report["notes"] if "a Java client (the WSO2 gateway) refuses" in n]
    if signs:
        assert said == [], report
        assert gateway == 0 and through_profile["error"] is None, through_profile
        return
    assert len(said) == 1, report
    assert "over TLSv1.3 (" in said[0] and "its certificate (CN=legacy backend)" in said[0]
    assert "its key usage has no digitalSignature, which Java clients" in said[0]
    assert '("KeyUsage does not allow digital signatures")' in said[0]
    assert "keytool -ext KeyUsage=digitalSignature,keyEncipherment" in said[0]
    assert gateway == 1, through_profile
    assert through_profile["error"]["kind"] == "java_refuses_server"
    assert "a Java client (the WSO2 gateway) refuses" in through_profile["error"]["message"]


def test_the_probe_presents_a_keystores_client_certificate(ca, trust, tmp_path, capsys):
    """A PEM bundle with a key's certificate and a newer one issued without clientAuth:
    the probe's --keystore took the newest, which the server refused, where the profile
    set (and the probe through --profiles) present the one servers take (h257)."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from tests._helpers import same_key

    current = ca.issue_cert("gw", common_name="gateway")
    newer = same_key(
        ca, current, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30),
        client_auth=False,
    )  # fmt: skip
    bundle = tmp_path / "gw.pem"
    bundle.write_bytes(
        current.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        + current.cert_pem + newer.public_bytes(Encoding.PEM)
    )  # fmt: skip
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        code, report = probe_bundle(capsys, server.port, bundle, trust)
    assert code == 0, report
    # Taken: the newer one (both are CN=gateway) is refused ("unsuitable certificate
    # purpose"), as the code before this presented it.
    assert report["server_accepted_client_certificate"] is True, report


def _gateway_probe(
    capsys: pytest.CaptureFixture[str],
    port: int,
    ca: CA,
    d: Path,
    trusted: mtls.Truststore | None = None,
) -> tuple[int, dict[str, Any]]:
    """``mtls probe --profiles --json`` of localhost:``port`` with a profile file (the
    gateway's files: what Java refuses fails the probe) naming a keystore ``ca``
    issued and a truststore of ``ca`` (or ``trusted``)."""
    from tests._helpers import PASSWORD as XML_PASSWORD
    from tests._helpers import profile, profile_xml

    keystore = ca.issue_cert("gw").write_keystore(d / "gateway.jks", XML_PASSWORD)
    trust_jks = d / "gateway-trust.jks"
    (trusted or ca.truststore()).save(trust_jks, XML_PASSWORD)
    xml = d / "gateway-profiles.xml"
    xml.write_text(profile_xml(profile(f"localhost:{port}", keystore, trust_jks)))
    code = main(["probe", f"https://localhost:{port}/", "--profiles", str(xml), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.openssl
@pytest.mark.parametrize("sent", [10, 11])
def test_more_certificates_than_java_takes_fail_the_gateways_probe(
    ca, openssl_bin, tmp_path, capsys, sent
):
    """A backend sending its chain with a bundle of unrelated CAs (11 certificates):
    Java refuses more than 10 ("The certificate chain length (11) exceeds the maximum
    allowed length (10)"); OpenSSL takes it, and the probe said OK (h258). The twin:
    10 certificates pass."""
    issuing = ca.create_child_ca(name="chain issuing")
    server = issuing.issue_cert("localhost").write_pem(tmp_path / "server.pem")
    chain = tmp_path / "chain.pem"
    others = [CA(name=f"unrelated {i}").cert_pem for i in range(sent - 2)]
    chain.write_bytes(issuing.cert_pem + b"".join(others))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    files = {"server_cert": server, "server_key": server, "ca": tmp_path / "ca.pem"}
    with openssl_server(openssl_bin, files, "-cert_chain", str(chain)) as port:
        code, report = _gateway_probe(capsys, port, ca, tmp_path)
    if sent <= 10:
        assert code == 0 and report["error"] is None, report
        return
    assert code == 1 and report["error"]["kind"] == "java_refuses_server", report
    assert (
        "it sent 11 certificates, and Java clients take at most 10" in (report["error"]["message"])
    )


@pytest.mark.openssl
@pytest.mark.parametrize("listed", [1, 250])
def test_a_request_larger_than_java_takes_fails_the_gateways_probe(
    ca, s_server_files, openssl_bin, tmp_path, capsys, listed
):
    """A backend asking for client certificates of 250 CAs: a 40 KiB CertificateRequest,
    over Java's 32,768 bytes ("The size of the handshake message ... exceeds the maximum
    allowed size (32768)"); OpenSSL takes up to 100 KiB, and the probe said OK (h258).
    The twin: one CA listed."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    key = ec.generate_private_key(ec.SECP256R1())  # one key: only the names are sent
    now = dt.datetime.now(dt.UTC)

    def partner(i: int) -> bytes:
        name = x509.Name(
            [
                x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "DE"),
                x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, f"Partner {i:04d} GmbH"),
                x509.NameAttribute(
                    x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "Public Key Infrastructure Services"
                ),
                x509.NameAttribute(
                    x509.NameOID.COMMON_NAME, f"Partner {i:04d} Client Issuing CA G2"
                ),
            ]
        )
        return (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(i + 1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)
        )  # fmt: skip

    names = tmp_path / "client-cas.pem"
    names.write_bytes(ca.cert_pem + b"".join(partner(i) for i in range(listed - 1)))
    files = {**s_server_files, "ca": names}
    with openssl_server(openssl_bin, files) as port:
        code, report = _gateway_probe(capsys, port, ca, tmp_path)
    if listed == 1:
        assert code == 0 and report["error"] is None, report
        return
    assert code == 1 and report["error"]["kind"] == "java_refuses_server", report
    message = report["error"]["message"]
    assert "its CertificateRequest message is " in message
    assert "Java clients take at most 32,768" in message
    assert "list fewer CAs in its request" in message


@pytest.mark.parametrize("critical", [False, True])
def test_a_critical_extension_java_does_not_process_fails_the_gateways_probe(
    ca, tmp_path, capsys, critical
):
    """A backend's certificate with a critical CRL distribution points extension:
    OpenSSL processes it, Java's path validation does not ("unrecognized critical
    extension(s)"), and the probe said OK (h258). The twin: the same, not critical."""
    from tests._pki import _leaf_builder

    key, builder = _leaf_builder(ca, ("localhost",), "cdp backend")
    cert = builder.add_extension(_crl_points(), critical=critical).sign(
        ca.private_key,  # type: ignore[arg-type]
        hashes.SHA256(),
    )
    refused = "its certificate (CN=cdp backend) marks its CRL distribution points extension "
    _java_verdict(capsys, ca, tmp_path, key, [cert, ca.certificate], refused if critical else None)


@pytest.mark.parametrize("holds_it", ["no", "it", "a copy"])
def test_an_intermediate_the_truststore_holds_ends_javas_path(ca, tmp_path, capsys, holds_it):
    """An intermediate with a critical CRL distribution points extension: refused by
    Java when it validates it; but a truststore that holds the intermediate ends Java's
    path there, and the probe failed such a backend Java takes (h260). Java matches a
    trusted certificate by its bytes, or its subject and key: a copy issued again (another
    serial) ends the path too."""
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.UTC)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "cdp intermediate")])

    def intermediate() -> x509.Certificate:
        return (
            x509.CertificateBuilder().subject_name(inter_name)
            .issuer_name(ca.certificate.subject).public_key(inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_crl_points(), critical=True)
            .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
        )  # fmt: skip

    inter = intermediate()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(inter_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(inter_key, hashes.SHA256())
    )  # fmt: skip
    trusted = ca.truststore()
    if holds_it != "no":
        trusted.add("intermediate", inter if holds_it == "it" else intermediate())
    refused = "CA certificate [1] of its chain (CN=cdp intermediate)"
    _java_verdict(
        capsys, ca, tmp_path, key, [leaf, inter], refused if holds_it == "no" else None, trusted
    )


@pytest.mark.parametrize("java_trust", [False, True])
def test_a_truststore_java_reads_as_empty_fails_the_gateways_probe(
    ca, tmp_path, capsys, java_trust
):
    """A profile's PKCS#12 truststore without Java's trust attribute (openssl pkcs12
    -nokeys): mtls trusts its certificates and the probe said OK; WSO2's gateway reads
    no anchor ("the trustAnchors parameter must be non-empty") and fails (h260). The
    twin: the same certificates with the attribute (as keytool writes them)."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    from tests._helpers import PASSWORD as XML_PASSWORD
    from tests._helpers import profile, profile_xml

    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gateway.jks", XML_PASSWORD)
    trust = tmp_path / "trust.p12"
    if java_trust:
        ca.truststore().save(trust, XML_PASSWORD, store_type="PKCS12")
    else:
        trust.write_bytes(
            pkcs12.serialize_key_and_certificates(
                None, None, None, [ca.certificate], BestAvailableEncryption(XML_PASSWORD.encode())
            )
        )
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as backend:
        xml = tmp_path / "p.xml"
        xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
        code = main(["probe", f"https://localhost:{backend.port}/", "--profiles", str(xml),
                     "--json"])  # fmt: skip
        report = json.loads(capsys.readouterr().out)
    if java_trust:
        assert code == 0 and report["error"] is None, report
        return
    assert code == 1 and report["error"]["kind"] == "java_cannot_read_store", report
    message = report["error"]["message"]
    assert f"{trust}: its 1 certificate carries no Java trust attribute" in message


def _java_verdict(
    capsys: pytest.CaptureFixture[str],
    ca: CA,
    d: Path,
    key: Any,
    chain: list[x509.Certificate],
    refused: str | None,
    trusted: mtls.Truststore | None = None,
) -> None:
    """Serve ``key`` and ``chain`` (an mtls server trusting ``ca``'s clients) and probe
    it with the gateway's files (:func:`_gateway_probe`): it works, or with ``refused``
    in its message the probe fails it as Java refuses it (``java_refuses_server``)."""
    served = mtls.Keystore()
    served.add_key("backend", key, chain)
    with MTLSServer(served, client_ca=ca) as backend:
        code, report = _gateway_probe(capsys, backend.port, ca, d, trusted)
    if refused is None:
        assert code == 0 and report["error"] is None, report
        return
    assert code == 1 and report["error"]["kind"] == "java_refuses_server", report
    assert refused in report["error"]["message"], report["error"]["message"]


def _crl_points() -> x509.CRLDistributionPoints:
    """A CRL distribution points extension naming one URL."""
    url = x509.UniformResourceIdentifier("http://crl.test/ca.crl")
    return x509.CRLDistributionPoints([x509.DistributionPoint([url], None, None, None)])


@pytest.mark.openssl
@pytest.mark.parametrize("usage", ["key_encipherment", "digital_signature"])
@pytest.mark.parametrize("prefers_rsa", [False, True])
def test_over_tls12_the_key_usage_is_judged_on_what_the_server_picks_from_java(
    ca, openssl_bin, tmp_path, capsys, prefers_rsa, usage
):
    """An RSA certificate with keyEncipherment alone, behind a TLS 1.2 server: JDK 17
    offers ECDHE first and RSA key transport last, so a server that follows the client's
    order picks ECDHE and Java refuses; one that prefers RSA key transport is taken by
    JDK 17 (not JDK 25). The probe judged its own offer, which has no RSA key transport,
    and failed the second, then let the first pass (h260, h261): it asks with JDK 17's
    offer now. And a certificate with digitalSignature alone is refused by JDK 17 when
    the server picks RSA key transport ("KeyUsage does not allow key encipherment"),
    which the probe never saw (h262)."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_der_private_key,
    )

    from tests._pki import key_usage_only

    served = key_usage_only(ca, ("localhost",), "legacy backend", usage, rsa_key=True)
    _, key_der, chain = served.key_entry("client")
    key = load_der_private_key(key_der, None)
    pem = tmp_path / "server.pem"
    pem.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        + x509.load_der_x509_certificate(chain[0]).public_bytes(Encoding.PEM)
    )
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    files = {"server_cert": pem, "server_key": pem, "ca": tmp_path / "ca.pem"}
    order = ("-serverpref", "-cipher", "AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
    with openssl_server(openssl_bin, files, "-tls1_2", *(order if prefers_rsa else ())) as port:
        code, report = _gateway_probe(capsys, port, ca, tmp_path)
    if usage == "digital_signature":
        if not prefers_rsa:
            assert code == 0 and report["error"] is None, report  # ECDHE: signed
            return
        assert code == 1 and report["error"]["kind"] == "java_refuses_server", report
        assert "its key usage has no keyEncipherment" in report["error"]["message"]
        assert "this server picks RSA key transport" in report["error"]["message"]
        return
    if prefers_rsa:
        assert code == 0 and report["error"] is None, report
        assert any("JDK 17 takes it only because this server picks RSA key transport" in n
                   for n in report["notes"]), report  # fmt: skip
        return
    assert code == 1 and report["error"]["kind"] == "java_refuses_server", report
    assert "over TLSv1.2 (ECDHE-RSA-" in report["error"]["message"]
    assert "unless the server picks" not in report["error"]["message"]


@pytest.mark.parametrize("upper_has_policies", [True, False])
def test_critical_qualifiers_under_a_ca_without_policies_are_not_held(
    ca, tmp_path, capsys, upper_has_policies
):
    """An intermediate's critical certificate policies with qualifiers, under a CA
    with certificate policies: Java refuses ("critical policy qualifiers present in
    certificate"). Under a CA without any, Java's policy tree is empty before it and the
    qualifiers are never read: Java takes the chain, and the probe failed it (h262)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.UTC)
    policy = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.1")

    def issued(subject: str, key, issuer_name, issuer_key, *extensions):  # type: ignore[no-untyped-def]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
        )  # fmt: skip
        for value, critical in extensions:
            builder = builder.add_extension(value, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_ext = (x509.BasicConstraints(ca=True, path_length=None), True)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    upper = issued(
        "upper", keys[0], ca.certificate.subject, ca.private_key, ca_ext,
        *([(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), False)]
          if upper_has_policies else []),
    )  # fmt: skip
    qualified = x509.CertificatePolicies([x509.PolicyInformation(policy, ["https://cps.test/"])])
    lower = issued("lower", keys[1], upper.subject, keys[0], ca_ext, (qualified, True))
    leaf = issued(
        "localhost", keys[2], lower.subject, keys[1],
        (x509.SubjectAlternativeName([x509.DNSName("localhost")]), False),
    )  # fmt: skip
    refused = "CA certificate [1] of its chain (CN=lower) has critical certificate policies"
    _java_verdict(
        capsys, ca, tmp_path, keys[2], [leaf, lower, upper], refused if upper_has_policies else None
    )
