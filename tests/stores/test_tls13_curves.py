"""EC keys on curves TLS 1.3 has no signature scheme for in OpenSSL before 3.2 (P-224,
secp256k1, brainpool): OpenSSL loads them, and a client offering TLS 1.3 then sent an
empty certificate, so a backend that only asks for one served the request anonymously
(found by an independent sweep). As for DSA: a client context is held to TLS 1.2 with
a warning, a server context is refused. Real handshakes over loopback."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import mtls
from mtls.testing import CA, MTLSServer

pytestmark = pytest.mark.skipif(
    ssl.OPENSSL_VERSION_INFO >= (3, 2), reason="OpenSSL 3.2+ signs TLS 1.3 with brainpool"
)


def _identity(ca: CA, curve: ec.EllipticCurve, name: str) -> mtls.Keystore:
    key = ec.generate_private_key(curve)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(f"CN={name}"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    store = mtls.Keystore()
    store.add_key(name, key, [cert, ca.certificate])
    return store


def _exchange(ctx: ssl.SSLContext, port: int) -> str | None:
    """A handshake and a request byte through ``ctx``; the TLS version."""
    with ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost"
    ) as tls:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        tls.recv(1)
        return tls.version()


@pytest.mark.parametrize("curve", [ec.BrainpoolP256R1(), ec.SECP256K1(), ec.SECP224R1()])
def test_a_client_key_tls13_cannot_sign_with_is_never_left_unsent(
    curve: ec.EllipticCurve, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA(name="curves")
    identity = _identity(ca, curve, f"gw-{curve.name}")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        ctx = mtls.client_context(identity, ca.truststore())
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert "EC key on" in caplog.text and "TLS 1.2 at most" in caplog.text
    # A backend that asks for a certificate without requiring one: the request went
    # through with none. Now the certificate is offered over TLS 1.2, where this
    # server refuses its curve: a failed handshake, never an anonymous one.
    with MTLSServer(ca.issue_cert("localhost").keystore(), client_ca=ca.truststore(),
                    require_client_cert=False) as server:  # fmt: skip
        with pytest.raises(ssl.SSLError):
            _exchange(ctx, server.port)
        records = server.wait_for_handshakes(1)
    assert not any(r.accepted and r.client_cn is None for r in records), records
    # Refused where it cannot work: a client held above TLS 1.2, and any server.
    with pytest.raises(mtls.KeyEntryError, match="no signature scheme"):
        mtls.client_context(identity, ca.truststore(), minimum_version=ssl.TLSVersion.TLSv1_3)
    with pytest.raises(mtls.KeyEntryError, match="clients would have to offer its curve"):
        mtls.server_context(identity, ca.truststore())


def test_the_twin_a_p256_key_offers_tls13_and_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    ca = CA(name="curves")
    identity = _identity(ca, ec.SECP256R1(), "gw-p256")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        ctx = mtls.client_context(identity, ca.truststore())
    assert ctx.maximum_version != ssl.TLSVersion.TLSv1_2 and "TLS 1.2 at most" not in caplog.text
    with MTLSServer(ca.issue_cert("localhost").keystore(), client_ca=ca.truststore()) as server:
        assert _exchange(ctx, server.port) == "TLSv1.3"
        (record,) = server.wait_for_handshakes(1)
    assert record.accepted and record.client_cn == "gw-p256"
