"""mtls.testing.RevocationServer and CA.ocsp_response: a CA's CRL and OCSP answers
served over loopback, checked by mtls's own online revocation check (real handshakes)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

import mtls
from mtls.testing import CA, IssuedIdentity, MTLSServer, RevocationServer

SHA1 = hashes.SHA1()


def _get(server: MTLSServer, ctx: object) -> str:
    with urllib.request.urlopen(server.url, context=ctx, timeout=30) as response:
        return str(json.load(response)["client_cn"])


def _request(identity: IssuedIdentity | x509.Certificate, issuer: CA, nonce: bool = False) -> bytes:
    cert = identity if isinstance(identity, x509.Certificate) else identity.certificate
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer.certificate, SHA1)
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"n" * 16), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_a_revoked_backend_is_refused_at_its_next_check_over_ocsp() -> None:
    with RevocationServer() as responder:
        ca = CA(ocsp_url=responder.ocsp_url, crl_url=responder.crl_url)
        responder.serve(ca)
        backend, client = ca.issue_cert("localhost", "127.0.0.1"), ca.issue_cert("client")
        with MTLSServer(backend, client_ca=ca) as server:
            policy = mtls.RevocationPolicy(mode="hard", cache_delay=1)
            ctx = mtls.client_context(client.keystore(), ca.truststore(), revocation=policy)
            assert _get(server, ctx) == "client"  # good: the request goes through
            ca.revoke(backend, reason="keyCompromise")
            fresh = mtls.client_context(client.keystore(), ca.truststore(), revocation=policy)
            with pytest.raises(mtls.CertificateRevokedError) as caught:
                _get(server, fresh)
        assert caught.value.revocation_reason == "keyCompromise"
        assert caught.value.source == f"OCSP {responder.ocsp_url}"
        assert responder.requests == [("ocsp", backend.serial_number)] * 2


def test_the_crl_is_served_current_when_there_is_no_ocsp() -> None:
    with RevocationServer() as responder:
        ca = CA(crl_url=responder.crl_url)  # a distribution point only
        responder.serve(ca)
        backend, client = ca.issue_cert("localhost", "127.0.0.1"), ca.issue_cert("client")
        ca.revoke(backend)
        with MTLSServer(backend, client_ca=ca) as server:
            ctx = mtls.client_context(
                client.keystore(), ca.truststore(), revocation=mtls.RevocationPolicy()
            )
            with pytest.raises(mtls.CertificateRevokedError, match=r"CRL http://"):
                _get(server, ctx)
        assert responder.requests == [("crl", None)]
        with urllib.request.urlopen(responder.crl_url, timeout=30) as answer:
            listed = x509.load_der_x509_crl(answer.read())
        assert listed.get_revoked_certificate_by_serial_number(backend.serial_number)


def test_a_responder_that_is_down_is_undetermined_hard_and_allowed_soft() -> None:
    with RevocationServer() as responder:
        ca = CA(ocsp_url=responder.ocsp_url)
        responder.serve(ca)
        responder.http_status = 503
        backend, client = ca.issue_cert("localhost", "127.0.0.1"), ca.issue_cert("client")
        with MTLSServer(backend, client_ca=ca) as server:
            hard = mtls.client_context(
                client.keystore(), ca.truststore(), revocation=mtls.RevocationPolicy()
            )
            with pytest.raises(mtls.RevocationUnknownError, match="HTTP 503"):
                _get(server, hard)
            soft = mtls.client_context(
                client.keystore(), ca.truststore(), revocation=mtls.RevocationPolicy(mode="soft")
            )
            assert _get(server, soft) == "client"


def test_ocsp_answers_good_revoked_unknown_unauthorized_and_malformed() -> None:
    ca, other = CA(), CA()
    good, gone = ca.issue_cert("good"), ca.issue_cert("gone")
    ca.revoke(gone, reason="superseded")

    def answer(request: bytes) -> ocsp.OCSPResponse:
        return ocsp.load_der_ocsp_response(ca.ocsp_response(request))

    said = answer(_request(good, ca, nonce=True))
    assert said.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert said.serial_number == good.serial_number
    # Signed by the CA itself, its nonce echoed, current for the next hour.
    ca.certificate.public_key().verify(  # type: ignore[call-arg]
        said.signature, said.tbs_response_bytes, *_verify_args(ca, said)
    )
    assert said.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert said.next_update_utc is not None
    assert said.next_update_utc > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    revoked = answer(_request(gone, ca))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.superseded
    # A serial this CA never issued (same issuer hashes) is unknown.
    stranger = other.issue_cert("stranger").certificate
    never = (
        x509.CertificateBuilder().subject_name(stranger.subject)
        .issuer_name(ca.certificate.subject).public_key(stranger.public_key())
        .serial_number(12345).not_valid_before(stranger.not_valid_before_utc)
        .not_valid_after(stranger.not_valid_after_utc)
        .sign(other.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    assert answer(_request(never, ca)).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # Another CA's certificate, and bytes that are no request.
    assert answer(_request(stranger, other)).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert answer(b"\x30\x03junk").response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _verify_args(ca: CA, said: ocsp.OCSPResponse) -> tuple[object, ...]:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(ca.certificate.public_key(), ec.EllipticCurvePublicKey):
        assert said.signature_hash_algorithm is not None
        return (ec.ECDSA(said.signature_hash_algorithm),)
    return ()


def test_ocsp_by_get_and_an_rsa_ca() -> None:
    """RFC 6960 A.1's GET (the base64 of the request under the responder's URL), and a
    CA whose key is RSA (its issuerKeyHash is over another key encoding)."""
    with RevocationServer(CA(key_type="RSA")) as responder:
        assert responder.ca is not None
        leaf = responder.ca.issue_cert("leaf")
        encoded = base64.b64encode(_request(leaf, responder.ca)).decode()
        url = f"{responder.ocsp_url}/{urllib.request.quote(encoded, safe='')}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            said = ocsp.load_der_ocsp_response(answer.read())
        assert said.certificate_status == ocsp.OCSPCertStatus.GOOD
        with pytest.raises(urllib.error.HTTPError, match="404") as refused:
            urllib.request.urlopen(responder.url + "/elsewhere", timeout=30)
        refused.value.close()  # Python 3.14 warns of an HTTPError left open


def test_lifecycle_and_arguments() -> None:
    responder = RevocationServer()
    with pytest.raises(RuntimeError, match="call start"):
        _ = responder.port
    assert "not started" in repr(responder)
    with pytest.raises(TypeError, match=r"an mtls\.testing\.CA"):
        responder.serve("ca.pem")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"an mtls\.testing\.CA"):
        RevocationServer(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port must be an int from 0"):
        RevocationServer(port="8888")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="host must be the address"):
        RevocationServer(host="")
    with responder:
        assert responder.start() is responder  # once
        # No CA yet: a clear 503, not a traceback in the server thread.
        with pytest.raises(urllib.error.HTTPError, match="503") as refused:
            urllib.request.urlopen(responder.crl_url, timeout=30)
        refused.value.close()
    responder.close()  # twice
    assert "closed" in repr(responder)
    with pytest.raises(RuntimeError, match="closed"):
        responder.start()


def test_requests_it_cannot_read_are_malformed_not_a_dropped_connection(tmp_path) -> None:
    """A request about two certificates (openssl ocsp -cert -cert) or with an MD5
    CertID killed the handler: the client got no answer at all."""
    import shutil
    import socket
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH")
    ca = CA()
    good, other = ca.issue_cert("good"), ca.issue_cert("other")
    for name, item in (
        ("ca.pem", ca.cert_pem),
        ("a.pem", good.cert_pem),
        ("b.pem", other.cert_pem),
    ):
        (tmp_path / name).write_bytes(item)
    with RevocationServer(ca) as responder:
        # openssl applies a digest option to the -cert options after it.
        for before, after in (([], ["-cert", str(tmp_path / "b.pem")]), (["-md5"], [])):
            request = tmp_path / "request.der"
            subprocess.run(
                [openssl, "ocsp", "-issuer", str(tmp_path / "ca.pem"), *before, "-cert",
                 str(tmp_path / "a.pem"), *after, "-no_nonce", "-reqout", str(request)],
                check=True, capture_output=True,
            )  # fmt: skip
            posted = urllib.request.Request(responder.ocsp_url, data=request.read_bytes())
            with urllib.request.urlopen(posted, timeout=30) as answer:
                said = ocsp.load_der_ocsp_response(answer.read())
            assert said.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, before
        # A Content-Length that is no number is a 400, not a dropped connection.
        with socket.create_connection(("127.0.0.1", responder.port), timeout=30) as raw:
            raw.sendall(b"POST /ocsp HTTP/1.0\r\nContent-Length: abc\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.0 400")
        # The twin: a plain request, also by GET without base64 padding, is answered.
        encoded = base64.b64encode(_request(good, ca)).decode().rstrip("=")
        with urllib.request.urlopen(f"{responder.ocsp_url}/{encoded}", timeout=30) as answer:
            said = ocsp.load_der_ocsp_response(answer.read())
        assert said.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert responder.errors == []


def test_an_ipv6_responder_and_the_answer_times() -> None:
    ca = CA()
    gone = ca.issue_cert("gone")
    ca.revoke(gone)
    said = ocsp.load_der_ocsp_response(ca.ocsp_response(_request(gone, ca)))
    assert said.revocation_time_utc is not None
    assert said.this_update_utc <= said.revocation_time_utc  # never dated before it
    with pytest.raises(ValueError, match="next_update must be positive"):
        ca.ocsp_response(_request(gone, ca), next_update=dt.timedelta(hours=-2))
    try:
        responder = RevocationServer(ca, host="[::1]").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with responder:
        assert responder.ocsp_url.startswith("http://[::1]:")
        posted = urllib.request.Request(responder.ocsp_url, data=_request(gone, ca))
        with urllib.request.urlopen(posted, timeout=30) as answer:
            revoked = ocsp.load_der_ocsp_response(answer.read())
        assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    with pytest.raises(RuntimeError, match="closed"):
        _ = responder.port


def test_http_status_200_answers_again_and_close_leaves_nothing_answering() -> None:
    """`http_status = 200` (the natural way back from 503) served "as the test asked" as
    a CRL; and a connection open before close() was answered after it, its thread
    left running (h171). The twin: None answers as before."""
    import socket

    with RevocationServer() as responder:
        ca = CA(crl_url=responder.crl_url)
        responder.serve(ca)
        for status in (None, 200):
            responder.http_status = status
            with urllib.request.urlopen(responder.crl_url, timeout=30) as answer:
                assert answer.headers["Content-Type"] == "application/pkix-crl"
                x509.load_der_x509_crl(answer.read())
        host, port = responder.crl_url.split("/")[2].rsplit(":", 1)
        early = socket.create_connection((host, int(port)), timeout=30)
    try:  # closed (the with above); the connection made before it is shut down
        early.sendall(b"GET /ca.crl HTTP/1.0\r\n\r\n")
        assert early.recv(100) == b""
    except OSError:
        pass  # reset: shut down all the same
    finally:
        early.close()
    assert not [t for t in threading.enumerate() if "process_request" in t.name]
