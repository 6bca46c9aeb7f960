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
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("curve", "capped"),
    [("secp224r1", True), ("brainpoolP256r1", True), ("prime256v1", False), ("secp384r1", False)],
)
def test_a_key_with_explicit_curve_parameters_is_judged_by_its_curve(
    curve: str, capped: bool, openssl_bin: str, tmp_path: Path
) -> None:
    """A PKCS#8 key whose curve is spelled out as parameters (openssl ecparam
    -param_enc explicit) reaches OpenSSL as it is: it was taken for a curve TLS 1.3
    signs with, and a P-224 key so written went out as an empty certificate again (a
    review found it). Named by its group order now; P-256 and P-384 so written are
    the twins, offered TLS 1.3 and sent."""
    sec1, pkcs8, cert = tmp_path / "k.sec1", tmp_path / "k.p8", tmp_path / "k.crt"

    def run(*args: str | Path) -> None:
        subprocess.run([openssl_bin, *map(str, args)], check=True, capture_output=True)

    run("ecparam", "-name", curve, "-param_enc", "explicit", "-genkey", "-noout", "-out", sec1)
    run("pkcs8", "-topk8", "-nocrypt", "-in", sec1, "-out", pkcs8)
    run("req", "-new", "-x509", "-key", sec1, "-subj", "/CN=localhost", "-days", "30",
        "-addext", "subjectAltName=DNS:localhost", "-out", cert)  # fmt: skip
    pem = tmp_path / "identity.pem"
    pem.write_bytes(pkcs8.read_bytes() + cert.read_bytes())
    identity = mtls.Keystore.load(pem, None)
    ca = CA(name="server side")
    ctx = mtls.client_context(identity, ca.truststore())
    assert (ctx.maximum_version == ssl.TLSVersion.TLSv1_2) is capped
    client_ca = mtls.Truststore.load(cert)
    with MTLSServer(ca.issue_cert("localhost").keystore(), client_ca=client_ca,
                    require_client_cert=False) as server:  # fmt: skip
        if capped:
            with pytest.raises(ssl.SSLError):
                _exchange(ctx, server.port)
        else:
            assert _exchange(ctx, server.port) == "TLSv1.3"
        records = server.wait_for_handshakes(1)
    assert not any(r.accepted and r.client_cn is None for r in records), records


@pytest.mark.parametrize("form", ["uncompressed", "compressed"])
def test_explicit_parameters_are_a_named_curve_only_when_every_parameter_is(
    form: str, openssl_bin: str, tmp_path: Path
) -> None:
    """Judged by the group order alone, P-256's order with another generator passed
    for P-256 (OpenSSL does not match it, and TLS 1.3 sent an empty certificate; a
    review built one): the field, coefficients, generator and order are compared."""
    from mtls import _keyload

    sec1, pkcs8 = tmp_path / "k.sec1", tmp_path / "k.p8"
    subprocess.run([openssl_bin, "ecparam", "-name", "prime256v1", "-param_enc", "explicit",
                    "-conv_form", form, "-genkey", "-noout", "-outform", "DER", "-out", str(sec1)],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([openssl_bin, "pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-in", str(sec1),
                    "-outform", "DER", "-out", str(pkcs8)], check=True, capture_output=True)  # fmt: skip
    der = pkcs8.read_bytes()
    assert _keyload.key_curve(der) == "1.2.840.10045.3.1.7"
    gx = bytes.fromhex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296")
    assert der.count(gx) == 1
    other = bytes(gx[:-1]) + bytes([gx[-1] ^ 1])  # another generator, the same length
    assert _keyload.key_curve(der.replace(gx, other)) == "explicit parameters"


def _tlv_key_algorithm(der: bytes) -> str | None:
    """The object-per-field reading the offset walk replaced (the reference)."""
    from mtls import _der

    try:
        algorithm = _der.read_single(der, _der.SEQUENCE).children()[1]
        return _der.decode_oid(algorithm.children()[0].expect(_der.OID).value)
    except (_der.DERError, IndexError):
        return None


def _tlv_key_curve(der: bytes) -> str:
    from mtls import _der, _keyload

    try:
        algorithm = _der.read_single(der, _der.SEQUENCE).children()[1].children()
        if len(algorithm) < 2:
            return "unknown"
        params = algorithm[1]
        if params.tag == _der.OID:
            return _der.decode_oid(params.value)
        if params.tag != _der.SEQUENCE:
            return "unknown"
        return _keyload._explicit_curve(params.children())
    except (_der.DERError, IndexError):
        return "unknown"


def _real_keys() -> list[bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    keys = [
        rsa.generate_private_key(65537, 2048),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ]
    return [
        k.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for k in keys
    ]


_KEYS = _real_keys()


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_KEYS), st.data())
def test_the_key_type_read_by_offsets_is_what_the_element_reading_read(
    key: bytes, data: st.DataObject
) -> None:
    """Every context build reads its key's type and curve; the reading moved from an
    object per element (which copied the private key into one) to offsets. On real
    keys and damaged ones (bytes flipped, cut, inserted), both read the same."""
    from mtls import _keyload, _x509

    edit = data.draw(st.sampled_from(["none", "flip", "cut", "insert"]))
    # Most edits land in the first bytes: the headers and the AlgorithmIdentifier.
    at = data.draw(st.integers(0, 40) | st.integers(0, len(key) - 1)) % len(key)
    if edit == "flip":
        key = key[:at] + bytes([key[at] ^ data.draw(st.integers(1, 255))]) + key[at + 1 :]
    elif edit == "cut":
        key = key[:at]
    elif edit == "insert":
        key = key[:at] + data.draw(st.binary(min_size=1, max_size=4)) + key[at:]
    assert _x509.key_algorithm(key) == _tlv_key_algorithm(key)
    assert _keyload.key_curve(key) == _tlv_key_curve(key)
