"""cryptography's parse errors (Rust debug dumps) reach users in words (a fuzzing sweep)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

import mtls

DER = serialization.Encoding.DER
NOW = dt.datetime.now(dt.UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _cert(subject: str, serial: int, ca: bool, ocsp_url: str | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name("ca"))
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ocsp_url is not None:
        where = x509.UniformResourceIdentifier(ocsp_url)
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, where)]
            ),
            critical=False,
        )
    return builder.sign(KEY, hashes.SHA256())


def _no_dump(text: str) -> None:
    assert "ParseError" not in text and "Tag {" not in text, text
    assert "cryptography cannot read it: UnexpectedTag" in text, text


def test_a_crl_extension_that_cannot_be_read_is_said_in_words() -> None:
    ca = _cert("ca", 1, True)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name("ca"))
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        # a CRLNumber that is an OCTET STRING, not an INTEGER
        .add_extension(x509.UnrecognizedExtension(ExtensionOID.CRL_NUMBER, b"\x04\x00"), False)
        .sign(KEY, hashes.SHA256())
    )
    crls = mtls.CRLSet.from_bytes(crl.public_bytes(DER), path="ca.crl")
    with pytest.raises(mtls.CRLError, match="has an extension that cannot be read") as caught:
        crls.check([ca.public_bytes(DER)])
    _no_dump(str(caught.value))


def test_an_ocsp_answer_that_cannot_be_read_is_said_in_words() -> None:
    """The responder's name is read before its signature is checked: whoever is on the
    plain-HTTP path put the dump into the error, the status and the soft-fail log."""
    ca = _cert("ca", 1, True)
    leaf = _cert("leaf", 77, False, ocsp_url="http://ocsp.test/")
    answer = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=ca,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, ca)
        .sign(KEY, hashes.SHA256())
        .public_bytes(DER)
    )
    # The responder's CN retagged from UTF8String (0x0c) to RELATIVE-OID (0x0d).
    bad = answer.replace(b"\x06\x03\x55\x04\x03\x0c\x02ca", b"\x06\x03\x55\x04\x03\x0d\x02ca")
    assert bad != answer
    checker = mtls.RevocationChecker(mtls.RevocationPolicy(crl=False))
    checker._fetch = lambda *args: bad  # type: ignore[method-assign]  # the responder's answer
    with pytest.raises(mtls.RevocationUnknownError, match="a malformed answer") as caught:
        checker.check([leaf.public_bytes(DER)], [ca.public_bytes(DER)], host="backend")
    _no_dump(str(caught.value))


def _bit_string_issuer_crl(common_name: str) -> bytes:
    """A CRL whose issuer's common name is encoded as a BIT STRING (an attribute
    cryptography refuses to build, with a TypeError, when the name is read)."""
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(common_name))
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    der = crl.public_bytes(DER)
    utf8 = b"\x06\x03\x55\x04\x03\x0c" + bytes([len(common_name)]) + common_name.encode()
    assert der.count(utf8) == 1
    # BIT STRING of the same length: an unused-bits byte, then the rest of the name.
    bits = (
        b"\x06\x03\x55\x04\x03\x03" + bytes([len(common_name)]) + b"\x00" + common_name[1:].encode()
    )
    return der.replace(utf8, bits)


def test_a_crl_whose_issuer_name_cannot_be_built_is_a_crl_error(tmp_path) -> None:
    """A TypeError from cryptography escaped CRLSet.load, client_context and a profile
    set's constructor, and failed a running set's whole reload (h265)."""
    path = tmp_path / "ca.crl"
    path.write_bytes(_bit_string_issuer_crl("bad issuer"))
    with pytest.raises(mtls.CRLError, match=r"ca\.crl: its issuer's name cannot be read \("):
        mtls.CRLSet.load(path)
    # the twin: the same CRL with its name as written loads
    path.write_bytes(
        _bit_string_issuer_crl("bad issuer").replace(
            b"\x03\x0a\x00ad issuer", b"\x0c\x0abad issuer"
        )
    )
    assert len(mtls.CRLSet.load(path)) == 1


def test_a_crl_bundles_certificate_with_serial_zero_is_read_as_stores_read_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A PEM bundle's issuer certificate with a serial number of zero (WSO2's stores
    hold such roots) drew cryptography's deprecation warning, an exception under
    ``-W error`` (this suite's setting), where a store logs one line (h265)."""
    import ssl

    ca = _cert("ca", 7, True)
    der = ca.public_bytes(DER)
    assert der.count(b"\x02\x01\x07") == 1
    zero = der.replace(b"\x02\x01\x07", b"\x02\x01\x00")
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name("ca"))
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    bundle = crl.public_bytes(serialization.Encoding.PEM) + ssl.DER_cert_to_PEM_cert(zero).encode()
    with caplog.at_level("WARNING", logger="mtls"):
        crls = mtls.CRLSet.from_bytes(bundle)
    assert len(crls) == 1 and len(crls._issuers) == 1
    assert "serial number is not positive" in caplog.text
