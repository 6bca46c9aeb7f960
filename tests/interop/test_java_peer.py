"""A Java TLS peer (the JDK's own KeyManager and PKIX TrustManager, client auth
required) against our contexts: stores we write are what Java serves with and
trusts, and the profile set's contexts are what Java accepts or refuses."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls.testing import CA
from tests._helpers import JAVA_SOURCES, JAVAS, PASSWORD, profile, profile_xml

SOURCE = JAVA_SOURCES / "MtlsServer.java"
pytestmark = pytest.mark.skipif(not JAVAS, reason="needs a JDK's java launcher")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("java-peer")
    ca = CA(name="java peer CA", key_type="RSA")
    other = CA(name="someone else")
    backend = ca.issue_cert("localhost", common_name="backend")
    # What the Java backend serves with and trusts: stores written by mtls.
    backend.write_keystore(d / "backend.p12", PASSWORD, store_type="PKCS12")
    ca.write_truststore(d / "backend-trust.jks", PASSWORD)
    ca.issue_cert("gateway", common_name="gateway").write_keystore(d / "gateway.jks", PASSWORD)
    ca.write_truststore(d / "gateway-trust.jks", PASSWORD)
    other.issue_cert("intruder", common_name="intruder").write_keystore(
        d / "intruder.jks", PASSWORD
    )
    return {"dir": d, "ca": ca}


@pytest.fixture(scope="module", params=JAVAS, ids=lambda p: "jdk25" if "25" in p else "jdk-default")
def java_backend(request: pytest.FixtureRequest, pki) -> Iterator[int]:
    d: Path = pki["dir"]  # type: ignore[assignment]
    process = subprocess.Popen(
        [request.param, str(SOURCE), str(d / "backend.p12"), PASSWORD,
         str(d / "backend-trust.jks"), PASSWORD],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            pytest.fail(f"the Java server did not start: {line!r} {process.stderr.read()}")
        yield int(line)
    finally:
        process.kill()
        process.communicate(timeout=30)  # reaps it and closes the pipes


def talk(ctx: ssl.SSLContext, port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            data = b""
            while not data.endswith(b"\n"):
                chunk = tls.recv(1024)
                if not chunk:
                    break
                data += chunk
            return data.decode().strip()


def profiles_for(pki, port: int, keystore: str | None) -> mtls.SSLProfileSet:
    d: Path = pki["dir"]
    xml = d / f"profiles-{port}-{keystore}.xml"
    xml.write_text(
        profile_xml(
            profile(
                f"localhost:{port}", d / keystore if keystore else None, d / "gateway-trust.jks"
            )
        )
    )
    return mtls.SSLProfileSet.from_xml(xml)


def test_java_accepts_the_profiles_identity(pki, java_backend):
    ctx = profiles_for(pki, java_backend, "gateway.jks").context_for("localhost", java_backend)
    assert "CN=gateway" in talk(ctx, java_backend)


def test_java_refuses_no_certificate(pki, java_backend):
    ctx = profiles_for(pki, java_backend, None).context_for("localhost", java_backend)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        talk(ctx, java_backend)


def test_java_refuses_a_certificate_from_another_ca(pki, java_backend):
    ctx = profiles_for(pki, java_backend, "intruder.jks").context_for("localhost", java_backend)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        talk(ctx, java_backend)


def test_we_refuse_a_java_server_our_truststore_does_not_hold(pki, java_backend):
    d: Path = pki["dir"]
    other = CA(name="not the backend's CA")
    other.write_truststore(d / "wrong-trust.jks", PASSWORD)
    ctx = mtls.client_context(
        mtls.Keystore.load(d / "gateway.jks", PASSWORD), mtls.Truststore.load(d / "wrong-trust.jks")
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        talk(ctx, java_backend)


CLIENT = JAVA_SOURCES / "MtlsClient.java"


@pytest.mark.parametrize("java", JAVAS, ids=lambda p: "jdk25" if "25" in p else "jdk-default")
def test_a_java_gateway_reaches_our_backend_and_its_twin_is_refused(pki, java, tmp_path):
    """server_context as the backend half: a Java client with the gateway's keystore
    gets in; one with a certificate from another CA does not."""
    from mtls.testing import MTLSServer

    d: Path = pki["dir"]
    backend = mtls.Keystore.load(d / "backend.p12", PASSWORD)
    with MTLSServer(backend, client_ca=mtls.Truststore.load(d / "backend-trust.jks")) as server:

        def run(keystore: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [java, str(CLIENT), str(d / keystore), PASSWORD, str(d / "gateway-trust.jks"),
                 PASSWORD, str(server.port)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip

        ok = run("gateway.jks")
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert "200" in ok.stdout.splitlines()[0]
        assert '"client_cn": "gateway"' in ok.stdout
        refused = run("intruder.jks")
        assert refused.returncode != 0 or "200" not in refused.stdout
        records = server.wait_for_handshakes(2, timeout=20)
        assert [r.accepted for r in records[:2]] == [True, False]
