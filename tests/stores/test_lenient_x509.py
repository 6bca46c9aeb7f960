"""Certificates cryptography refuses and OpenSSL serves: their dates and subject, read
by our own walk of the DER (a validity time DER forbids: no seconds, a fraction, an
offset), so expiry checks and status() do not go blind on them."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from mtls import _dates, _x509
from mtls.testing import CA
from tests._pki import odd_validity

UTC = dt.UTC


@pytest.mark.parametrize(
    ("written", "tag", "expected"),
    [
        (b"4912312359Z", 0x17, dt.datetime(2049, 12, 31, 23, 59, tzinfo=UTC)),
        (b"5001010000Z", 0x17, dt.datetime(1950, 1, 1, tzinfo=UTC)),  # RFC 5280: 50 is 1950
        (b"491231235959+0100", 0x17, dt.datetime(2049, 12, 31, 22, 59, 59, tzinfo=UTC)),
        (b"491231235959-0130", 0x17, dt.datetime(2050, 1, 1, 1, 29, 59, tzinfo=UTC)),
        (b"20491231235959.5Z", 0x18, dt.datetime(2049, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
        (b"20491231235959,25Z", 0x18, dt.datetime(2049, 12, 31, 23, 59, 59, 250000, tzinfo=UTC)),
        (b"204912312359Z", 0x18, dt.datetime(2049, 12, 31, 23, 59, tzinfo=UTC)),
    ],
)
def test_validity_forms_der_forbids_are_read(written, tag, expected) -> None:
    ca = CA(name="lenient CA")
    _, cert_pem = odd_validity(ca, "odd", written, tag=tag)
    der = _der_of(cert_pem)
    with pytest.raises(ValueError, match="cryptography cannot read it") as info:
        _x509.load_cert(der)
    assert "ParseError {" not in str(info.value)  # words, not Rust's debug dump
    subject, start, end, serial = _x509.lenient_leaf_info(der)
    assert subject == "CN=odd"
    assert end == expected
    assert start is not None and abs(start - dt.datetime.now(UTC)) < dt.timedelta(days=1)
    assert serial is not None and serial > 0


def test_a_certificate_cryptography_reads_is_read_the_same() -> None:
    """The twin: on a DER certificate our walk agrees with cryptography, escapes
    included."""
    ca = CA(name='lenient, "quoted" CA')
    # A NUL (cryptography writes \00) and a value that is one space (escaped once) were
    # rendered otherwise (a fuzzing sweep).
    names = (" a+b #;", "a\x00b", " ", "#x ")
    for cert in (
        ca.certificate,
        *(ca.issue_cert("localhost", common_name=name).certificate for name in names),
    ):
        der = cert.public_bytes(serialization.Encoding.DER)
        assert _x509.lenient_leaf_info(der) == (
            cert.subject.rfc4514_string(),
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            cert.serial_number,
        )


def test_bytes_that_are_not_a_certificate_read_as_nothing() -> None:
    assert _x509.lenient_leaf_info(b"\x30\x03\x02\x01\x01") == (None, None, None, None)
    assert _x509.lenient_leaf_info(b"") == (None, None, None, None)


def _der_of(pem: bytes) -> bytes:
    import base64

    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


@pytest.mark.parametrize(
    ("written", "tag"),
    [
        (b"99991231235959-1200", 0x18),  # "never expires", with an offset: past datetime.max
        (b"00010101000000+0100", 0x18),  # before datetime.min
        (b"491231235959+9999", 0x17),  # an offset OpenSSL refuses
        (b"20491231235959", 0x18),  # no zone: local time, which OpenSSL refuses
        (b"2049123123.5Z", 0x18),  # no minutes
    ],
)
def test_a_time_out_of_range_is_not_read_and_does_not_raise(written, tag) -> None:
    """A date that overflows datetime raised OverflowError out of the store's load (a
    file that loaded before the lenient reader existed failed to). Such times, and
    forms OpenSSL refuses too, are read as no date."""
    ca = CA(name="range CA")
    _, cert_pem = odd_validity(ca, "far", written, tag=tag)
    subject, start, end, serial = _x509.lenient_leaf_info(_der_of(cert_pem))
    assert subject == "CN=far" and serial is not None and start is not None
    assert end is None


@pytest.mark.parametrize(
    ("written", "tag"),
    [(b"4912312359Z", 0x17), (b"491231235959+0100", 0x17), (b"20491231235959.5Z", 0x18)],
)
def test_an_anchor_whose_dates_openssl_cannot_verify_is_said_to_trust_nothing(
    written: bytes, tag: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Such a certificate loads in OpenSSL (and in Java), but OpenSSL's verifier takes
    only DER's time forms: every chain through it fails "format error in
    certificate's notBefore field". The store's log said it was "still a trust anchor
    for TLS (OpenSSL reads it)" (a fuzzing sweep). The handshake below shows the
    refusal; the log now says it trusts nothing."""
    import socket
    import ssl
    import threading

    import mtls

    ca = CA(name="odd anchor CA")
    key_pem, cert_pem = odd_validity(ca, "localhost", written, tag=tag)
    assert _dates.unverifiable_dates(_der_of(cert_pem)) is not None
    truststore = mtls.Truststore.from_bytes(cert_pem)  # the certificate pinned as anchor
    with caplog.at_level("WARNING", logger="mtls"):
        assert truststore.certificates == {}
    assert "OpenSSL refuses every chain through it" in caplog.text
    assert "it trusts nothing here" in caplog.text and "still a trust anchor" not in caplog.text

    if _x509.openssl_refusal(_der_of(cert_pem)) is not None:
        # OpenSSL 3.6 reads no such certificate (3.0 does, and refuses it in
        # verification, below): the context is refused, saying why (h206).
        with pytest.raises(mtls.KeystoreFormatError, match="reads no such certificate") as info:
            mtls.client_context(truststore=truststore)
        assert "not in the form OpenSSL verifies" in str(info.value), info.value
        return
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_pem_files(key_pem, cert_pem), password=_KEY_PASSWORD)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                server_ctx.wrap_socket(conn, server_side=True).close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = mtls.client_context(truststore=truststore)
        with (
            socket.create_connection(listener.getsockname(), timeout=30) as sock,
            pytest.raises(ssl.SSLCertVerificationError, match="format error"),
        ):
            client.wrap_socket(sock, server_hostname="localhost")
        thread.join(30)


_KEY_PASSWORD = "odd-anchor-key"


def _pem_files(key_pem: bytes, cert_pem: bytes) -> tuple[str, str]:
    """The certificate and its key (encrypted: never a key in clear on disk) as files."""
    import tempfile

    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        load_pem_private_key,
    )

    folder = tempfile.mkdtemp()
    cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert, "wb") as out:
        out.write(cert_pem)
    sealed = load_pem_private_key(key_pem, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        BestAvailableEncryption(_KEY_PASSWORD.encode()),
    )
    with open(key, "wb") as out:
        out.write(sealed)
    return cert, key


def test_a_certificate_in_der_form_has_verifiable_dates() -> None:
    """The twin: a certificate cryptography reads has dates OpenSSL verifies."""
    der = CA().issue_cert("localhost").certificate.public_bytes(serialization.Encoding.DER)
    assert _dates.unverifiable_dates(der) is None
    assert _dates.unverifiable_dates(b"not a certificate") is None
