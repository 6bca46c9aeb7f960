"""The quick pre-checks that decide whether a certificate is read under the warnings
guard (mtls._x509._plain; the serial number's alone for the dates): whatever they
let through must read without a warning from cryptography, or an error when its names
are read later. A warning they missed would reach the application's warnings filters
(an error under ``-W error``, or pytest's ``filterwarnings = error``)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import ssl
import types
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mtls
from mtls import _der, _purpose, _x509
from mtls.testing import CA

# country, common name, jurisdiction country (limits), organization (none), and the
# string types a name may hold, with a few that it may not.
_OIDS = ["2.5.4.6", "2.5.4.3", "1.3.6.1.4.1.311.60.2.1.3", "2.5.4.10"]
_TAGS = [0x0C, 0x13, 0x16, 0x12, 0x14, 0x1A, 0x1C, 0x1E, 0x03, 0x04]


def _fresh_pre_check(der: bytes) -> bool:
    """Whether the pre-check (uncached) sends ``der`` under the guard."""
    return _x509._plain.__wrapped__(der) is None  # type: ignore[attr-defined]


def _name(attributes: list[tuple[str, int, bytes]]) -> bytes:
    """A Name of one attribute per RDN."""
    return _rdns([[attribute] for attribute in attributes])


def _rdns(rdns: list[list[tuple[str, int, bytes]]]) -> bytes:
    """A Name of RDNs of any number of attributes (none, one, several)."""
    encoded = b"".join(
        _der.encode(
            _der.SET,
            b"".join(
                _der.encode(_der.SEQUENCE, _der.encode_oid(oid) + _der.encode(tag, value))
                for oid, tag, value in rdn
            ),
        )
        for rdn in rdns
    )
    return _der.encode(_der.SEQUENCE, encoded)


_TEMPLATE = CA().issue_cert("leaf.test").certificate.public_bytes(Encoding.DER)


_ATTRIBUTE = st.tuples(
    st.sampled_from(_OIDS),
    st.one_of(st.sampled_from([0x0C, 0x13]), st.sampled_from(_TAGS)),
    st.one_of(
        st.text("abcXYZ019 *&@", max_size=70).map(str.encode),  # PrintableString's, nearly
        st.text("US", min_size=1, max_size=3).map(str.encode),  # a country, or nearly
        st.binary(max_size=70),
        st.text(max_size=70).map(str.encode),
    ),
)


def _certificate(serial: int, issuer: bytes, subject: bytes) -> bytes:
    der = _TEMPLATE
    spans = _der.tbs_spans(der)

    def whole(index: int) -> bytes:  # the field with its header, as written
        tag, start, stop = spans[index]
        return _der.encode(tag, der[start:stop])

    length = max(1, (serial.bit_length() + 8) // 8)
    fields = [
        _der.encode(0xA0, _der.encode(_der.INTEGER, b"\x02")),
        _der.encode(_der.INTEGER, serial.to_bytes(length, "big", signed=True)),
        whole(1),
        issuer,
        whole(3),
        subject,
        whole(5),
    ]
    tbs = _der.encode(_der.SEQUENCE, b"".join(fields))
    return _der.encode(_der.SEQUENCE, tbs + whole(1) + _der.encode(_der.BIT_STRING, b"\x00\x01"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    serial=st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([0, -1, 1, 2**159])),
    issuer=st.lists(_ATTRIBUTE, min_size=1, max_size=3),
    subject=st.one_of(
        st.lists(_ATTRIBUTE, max_size=3).map(lambda a: [[x] for x in a]),
        st.lists(st.lists(_ATTRIBUTE, max_size=2), max_size=2),  # empty or multi-valued RDNs
    ),
)
def test_what_the_pre_check_lets_through_reads_without_a_warning(
    serial: int,
    issuer: list[tuple[str, int, bytes]],
    subject: list[list[tuple[str, int, bytes]]],
) -> None:
    der = _certificate(serial, _name(issuer), _rdns(subject))
    unusual = _fresh_pre_check(der)
    # The dates alone (every context build reads them) are read without a warning too.
    with warnings.catch_warnings(record=True) as dated:
        warnings.simplefilter("always")
        _x509._plain.cache_clear()
        with contextlib.suppress(ValueError):  # refused, in load_cert's words
            assert _x509.validity(der)[0] < _x509.validity(der)[1]
    assert not dated, [str(w.message) for w in dated]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            event("cryptography refuses it as it loads")
            return
        refused = None
        try:
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
        except (ValueError, TypeError) as exc:
            refused = repr(exc)
    if refused is not None:
        # Names are read on first use: one cryptography refuses must be caught by the
        # pre-check, so that load_cert refuses the certificate as it loads it (a later
        # reader of its names would see a bare error).
        event("cryptography refuses a name")
        assert unusual, f"{refused} slipped past the pre-check"
        _x509._plain.cache_clear()
        with pytest.raises(ValueError):
            _x509.load_cert(der)
        return
    # The CN read from the DER is cryptography's (a CA bundle's aliases come from it).
    assert _x509.common_name_of(der) == _x509.common_name(cert)
    event(f"warned={bool(caught)} unusual={unusual}")
    if caught:
        assert unusual, f"{[str(w.message) for w in caught]} slipped past the pre-check"
    # And load_cert, which uses the pre-check, lets nothing through either.
    with warnings.catch_warnings(record=True) as through:
        warnings.simplefilter("always")
        _x509._plain.cache_clear()
        _x509.load_cert(der).subject.rfc4514_string()
    assert not through, [str(w.message) for w in through]


def test_the_pre_check_tells_a_usual_certificate_from_an_unusual_one() -> None:
    usual = _TEMPLATE
    assert _fresh_pre_check(usual) is False
    zero_serial = _certificate(0, _name([("2.5.4.3", 0x0C, b"ca")]), _name([]))
    long_cn = _certificate(5, _name([("2.5.4.3", 0x0C, b"x" * 65)]), _name([]))
    bmp_country = _certificate(5, _name([("2.5.4.6", 0x1E, b"\x00U\x00S")]), _name([]))
    # An attribute whose OID does not decode (empty, or cut inside an arc): cryptography
    # refuses the certificate, under the guard (h146: comparing OIDs as bytes passed it).
    for der in (zero_serial, long_cn, bmp_country):
        assert _fresh_pre_check(der) is True
    for oid in (b"", b"\x55\x84"):
        attribute = _der.encode(_der.OID, oid) + _der.encode(0x0C, b"x")
        name = _der.encode(
            _der.SEQUENCE, _der.encode(_der.SET, _der.encode(_der.SEQUENCE, attribute))
        )
        der = _certificate(5, _name([("2.5.4.3", 0x0C, b"ca")]), name)
        assert _fresh_pre_check(der) is True
        with pytest.raises(ValueError, match="cannot read"):
            _x509.load_cert(der)


def test_an_anchor_whose_name_cryptography_refuses_is_left_out_not_handed_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CN whose UTF8String is not UTF-8: OpenSSL loads such an anchor, cryptography
    refuses its name only when the name is read. It went through the pre-check, so
    ``Truststore.certificates`` handed on a certificate whose ``.subject`` raised
    (status() and the expiry watch failed with Rust's debug text); it is left out and
    said, as any certificate cryptography cannot read."""
    bad = _certificate(5, _name([("2.5.4.3", 0x0C, b"caf\xe9")]), _name([]))
    good = _TEMPLATE
    path = tmp_path / "trust.pem"
    path.write_text(_x509.der_to_pem(bad) + _x509.der_to_pem(good))
    truststore = mtls.Truststore.load(path)
    assert len(truststore.anchors_der) == 2  # both are anchors for OpenSSL
    readable = truststore.certificates
    assert len(readable) == 1
    for cert in readable.values():
        cert.subject.rfc4514_string()  # raised ValueError for the bad one
    assert "cannot be parsed by cryptography" in caplog.text


def _self_signed(
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    extensions: Sequence[x509.ExtensionType] = (),
    serial: int = 7,
) -> x509.Certificate:
    """A certificate for ``subject`` (with ``extensions``), issued under the name "ca"
    by ``key`` itself."""
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=300))
    )
    for value in extensions:
        builder = builder.add_extension(value, critical=False)
    return builder.sign(key, hashes.SHA256())


def _signed(
    subject: x509.Name, extensions: Sequence[x509.ExtensionType] = ()
) -> tuple[bytes, bytes]:
    """A self-issued EC certificate for ``subject`` (with ``extensions``) and its key's
    PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, subject, extensions, serial=12345)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cert.public_bytes(Encoding.DER), pem


def test_a_leaf_whose_name_cryptography_refuses_still_loads_as_an_identity(
    tmp_path: Path,
) -> None:
    """An IA5String emailAddress holding a Latin-1 byte: OpenSSL serves such a
    certificate, and mtls loaded it before its names went through the guard. The key
    is matched to its certificate by the DER of the public key, which needs no name
    read; adding it to a truststore takes it too (the review of the fix found both
    refused)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "leaf"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "josQQ@example.com"),
        ]
    )
    der, key_pem = _signed(name)
    der = der.replace(b"josQQ", b"jos\xe9Q")  # same length: the DER stays whole
    path = tmp_path / "identity.pem"
    path.write_bytes(key_pem + _x509.der_to_pem(der).encode())
    keystore = mtls.Keystore.load(path, None)
    assert keystore.key_entry()[2] == (der,)
    assert isinstance(mtls.client_context(keystore), ssl.SSLContext)
    truststore = mtls.Truststore.load(path)
    truststore.add_certificate("odd", der)
    assert der in truststore.anchors_der


def test_a_directory_name_in_an_extension_is_read_under_the_guard() -> None:
    """A SAN directoryName whose country has three letters: cryptography warns when it
    reads the extensions, which the names pre-check does not look at. Under this
    suite's ``filterwarnings = error`` the warning escaping would raise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the builder warns as it is given the name
        country = x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False)
        san = x509.SubjectAlternativeName(
            [x509.DNSName("a.example"), x509.DirectoryName(x509.Name([country]))]
        )
    der, _ = _signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]), [san])
    assert _fresh_pre_check(der) is False  # type: ignore[attr-defined]
    _x509._plain.cache_clear()
    assert "DNS:a.example" in _x509.subject_alt_names(_x509.load_cert(der))
    assert _purpose.usage_warning(der, "client") is None


def _resigned(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate of exactly these tbsCertificate bytes, signed with ``key``."""
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.10045.4.3.2"))
    return _der.encode(_der.SEQUENCE, tbs + algorithm + _der.encode(0x03, b"\x00" + signature))


def _crafted(tbs: bytes, defect: str) -> bytes:
    """``tbs`` with a Latin-1 byte in its emailAddress, and ``defect``: its public
    key's length in BER's long form (after the name), or X.509 version 5."""
    tbs = tbs.replace(b"josQQ", b"jos\xe9Q")
    if defect == "version":
        at = tbs.index(b"\xa0\x03\x02\x01\x02") + 4  # right after the header
        assert at < 10
        return tbs[:at] + b"\x04" + tbs[at + 1 :]
    if defect == "none":
        return tbs
    fields = _der.read_single(tbs, _der.SEQUENCE).children()
    encoded = [_der.encode(f.tag, f.value) for f in fields]
    spki = fields[6]  # [0] version, serial, signature, issuer, validity, subject, key
    encoded[6] = bytes([spki.tag, 0x84]) + len(spki.value).to_bytes(4, "big") + spki.value
    return _der.encode(_der.SEQUENCE, b"".join(encoded))


@pytest.mark.parametrize("defect", ["ber", "version"])
def test_a_certificate_refused_for_more_than_a_name_never_wins_a_match(
    tmp_path: Path, defect: str
) -> None:
    """cryptography stops at a certificate's first error. With a name it cannot read
    first, a BER length or a bad version after it went unseen: such a certificate,
    first in a PEM identity, won the key match over the right one and was served, and
    add_certificate took it (h144, HIGH; cryptography 50 refused it). Twin: the same
    name alone is still taken."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem_key = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    def certificate(*attributes: x509.NameAttribute) -> x509.Certificate:
        return _self_signed(key, x509.Name(list(attributes)))

    good = certificate(x509.NameAttribute(NameOID.COMMON_NAME, "good")).public_bytes(Encoding.DER)
    template = certificate(
        x509.NameAttribute(NameOID.COMMON_NAME, "crafted"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "josQQ@example.com"),
    ).tbs_certificate_bytes
    crafted = _resigned(_crafted(template, defect), key)
    name_only = _resigned(_crafted(template, "none"), key)
    assert _x509.openssl_refusal(crafted) is None  # OpenSSL reads (and would serve) it
    assert not _x509.only_a_name_refused(crafted)
    with pytest.raises(ValueError, match="not a certificate"):
        mtls.Truststore().add_certificate("crafted", crafted)
    path = tmp_path / "identity.pem"
    path.write_bytes(pem_key + _x509.der_to_pem(crafted).encode() + _x509.der_to_pem(good).encode())
    assert mtls.Keystore.load(path, None).key_entry()[2] == (good,)
    # The twin: a name cryptography 51 refuses, and nothing else, as DER and as PEM.
    for form in (name_only, _x509.der_to_pem(name_only).encode()):
        truststore = mtls.Truststore()
        truststore.add_certificate("odd", form)
        assert name_only in truststore.anchors_der


def test_a_bad_name_with_a_serial_of_zero_is_taken_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The copy with its names made plain was read outside the guard: with a serial
    number of zero too (WSO2's stores hold such roots), cryptography's own warning
    reached the application, an exception under ``-W error`` (h145)."""
    key = ec.generate_private_key(ec.SECP256R1())
    email = x509.NameAttribute(NameOID.EMAIL_ADDRESS, "josQQ@example.com")
    cn = x509.NameAttribute(NameOID.COMMON_NAME, "zero")
    tbs = _crafted(_self_signed(key, x509.Name([cn, email])).tbs_certificate_bytes, "none")
    assert tbs.count(b"\x02\x01\x07") == 1
    zero = _resigned(tbs.replace(b"\x02\x01\x07", b"\x02\x01\x00"), key)
    with caplog.at_level("WARNING", logger="mtls"):
        truststore = mtls.Truststore()
        truststore.add_certificate("zero", zero)  # warnings are errors in this suite
    assert zero in truststore.anchors_der
    assert "serial number is not positive" in caplog.text


def test_a_bad_name_in_a_multi_valued_rdn_is_not_taken() -> None:
    """Overwriting a value may change the order DER sets an RDN's attributes in, which
    cryptography checks: a set out of order passed, one in order was refused (h145).
    Such a name is left to cryptography, which refuses it."""
    key = ec.generate_private_key(ec.SECP256R1())
    rdn = x509.RelativeDistinguishedName(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "multi"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "josQQ@example.com"),
        ]
    )
    tbs = _self_signed(key, x509.Name([rdn])).tbs_certificate_bytes
    crafted = _resigned(_crafted(tbs, "none"), key)
    assert not _x509.only_a_name_refused(crafted)


def test_a_pem_certificate_is_read_as_before_and_strictly_after(tmp_path: Path) -> None:
    """The PEM path of add_certificate went through OpenSSL's lenient base64 and its
    CERTIFICATE label only: ``X509 CERTIFICATE`` was refused and junk in the base64
    taken (h145). cryptography reads PEM first again; only a certificate it refuses
    for its name is read from a strict CERTIFICATE block."""
    ca = CA()
    pem = ca.cert_pem
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    truststore = mtls.Truststore()
    truststore.add_certificate("x509", pem.replace(b"CERTIFICATE-----", b"X509 CERTIFICATE-----"))
    assert der in truststore.anchors_der
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "odd"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "josQQ@example.com"),
        ]
    )
    odd, _ = _signed(name)
    odd = odd.replace(b"josQQ", b"jos\xe9Q")
    lines = _x509.der_to_pem(odd).splitlines()
    lines[1] = lines[1][:10] + "*!" + lines[1][10:]  # junk in the base64
    with pytest.raises(ValueError, match="not base64"):
        mtls.Truststore().add_certificate("junk", "\n".join(lines).encode())


def test_a_guarded_read_leaves_the_applications_filters_as_they_are(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """load_cert's guard swapped the process's filter list (catch_warnings) for each
    certificate it picks (the serial-0 roots WSO2's truststores hold): an application's
    own block in another thread that ended meanwhile left its filters installed for
    good (h145, on every reload). The block ends here inside the read, as another
    thread's would; the certificate is still reported once."""
    key = ec.generate_private_key(ec.SECP256R1())
    cn = x509.NameAttribute(NameOID.COMMON_NAME, "zero serial")
    tbs = _self_signed(key, x509.Name([cn])).tbs_certificate_bytes
    zero = _resigned(tbs.replace(b"\x02\x01\x07", b"\x02\x01\x00", 1), key)
    real = x509.load_der_x509_certificate
    with warnings.catch_warnings():
        outer, before = warnings.filters, list(warnings.filters)
        application = warnings.catch_warnings()
        application.__enter__()
        warnings.filterwarnings("ignore", message="the application's own")
        ended: list[int] = []

        def read(data: bytes) -> x509.Certificate:
            if not ended:
                ended.append(1)
                application.__exit__(None, None, None)  # its block ends mid-read
            return real(data)

        # Run as mtls._x509's own code: cryptography's warning names its Python caller.
        as_mtls = types.FunctionType(read.__code__, vars(_x509), "read", None, read.__closure__)
        monkeypatch.setattr(x509, "load_der_x509_certificate", as_mtls)
        with caplog.at_level("WARNING", logger="mtls"):
            assert _x509.serial_number(_x509.load_cert(zero)) == 0
        assert ended and warnings.filters is outer and list(warnings.filters) == before
    assert "serial number is not positive" in caplog.text


def _spiffe_identity(tmp_path: Path, subject: x509.Name) -> tuple[Path, Path]:
    """A PEM keystore (key and leaf) whose leaf has ``subject`` and a SPIFFE URI SAN
    only, and a PEM truststore with its CA."""
    now = _dt.datetime.now(_dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    uri = x509.UniformResourceIdentifier("spiffe://cluster.local/ns/shop/sa/orders")
    leaf = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([uri]), critical=not subject)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    keystore, truststore = tmp_path / "svid.pem", tmp_path / "bundle.pem"
    keystore.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        + leaf.public_bytes(Encoding.PEM)
    )
    truststore.write_bytes(ca.public_bytes(Encoding.PEM))
    return keystore, truststore


@pytest.mark.parametrize("named", [False, True], ids=["empty-subject", "named"])
def test_an_identity_named_by_its_uri_san_only_is_shown_by_it(tmp_path, capsys, named):
    """A SPIFFE (service mesh) certificate has an empty subject and names itself in a
    URI SAN (RFC 5280 4.2.1.6: the SAN then critical): status(), health events, log
    lines and mtls check showed nothing (or "subject unreadable") where the identity
    goes (h190). Shown by its alternative names now; the twin: a subject is shown as
    it is."""
    import json

    from mtls.cli import main

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orders")] if named else [])
    keystore, truststore = _spiffe_identity(tmp_path, subject)
    expected = "CN=orders" if named else (
        "(no subject) SAN URI:spiffe://cluster.local/ns/shop/sa/orders"
    )  # fmt: skip
    profile = mtls.SSLProfile(
        servers=("orders.mesh:443",),
        keystore=mtls.StoreConfig(location=keystore, password="", type="PEM"),
        truststore=mtls.StoreConfig(location=truststore, password="", type="PEM"),
    )
    with mtls.SSLProfileSet([profile]) as profiles:
        (status,) = profiles.status().profiles
        assert status.identity is not None and status.identity.subject == expected
    xml = tmp_path / "profiles.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>orders.mesh:443</servers>'
        f"<KeyStore><Location>{keystore}</Location><Type>PEM</Type><Password></Password>"
        "<KeyPassword></KeyPassword></KeyStore>"
        f"<TrustStore><Location>{truststore}</Location><Type>PEM</Type><Password></Password>"
        "</TrustStore></profile></parameter>"
    )
    main(["check", str(xml), "--mtls-only", "--json"])
    (row,) = json.loads(capsys.readouterr().out)["profiles"]
    assert row["client_subject"] == expected


def test_an_empty_subject_with_two_san_extensions_is_no_subject(tmp_path):
    """Showing an empty subject by its SANs read the extensions, which cryptography
    refuses for a certificate with two SubjectAltName extensions (DuplicateExtension,
    an Exception, not a ValueError; OpenSSL loads it): a truststore holding one raised
    it from from_xml, status() and mtls check (h193). It is shown as "(no subject)"."""
    ca = CA()
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    uri = x509.UniformResourceIdentifier("spiffe://td/a")
    made = (
        x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.certificate.subject)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(now - _dt.timedelta(hours=1)).not_valid_after(now + _dt.timedelta(days=300))
        .add_extension(x509.SubjectAlternativeName([uri]), critical=True)
        .add_extension(x509.IssuerAlternativeName([uri]), critical=False)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    # The issuer alternative name made a second subject alternative name (2.5.29.18 ->
    # .17: the same length), signed again.
    tbs = made.tbs_certificate_bytes.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11")
    signature = ca.private_key.sign(tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg,union-attr]
    algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.10045.4.3.2"))
    der = _der.encode(_der.SEQUENCE, tbs + algorithm + _der.encode(0x03, b"\x00" + signature))
    cert = x509.load_der_x509_certificate(der)
    with pytest.raises(x509.DuplicateExtension):
        cert.extensions  # noqa: B018 - what cryptography says of it
    assert _x509.subject_text(cert) == "(no subject)"
    trust = mtls.Truststore()
    trust.add("odd", cert)
    trust.add("ca", ca.certificate)
    path = tmp_path / "trust.jks"
    trust.save(path, "changeit")
    profile = mtls.SSLProfile(
        servers=("a.test:443",),
        truststore=mtls.StoreConfig(location=path, password="changeit", type="JKS"),
    )
    with mtls.SSLProfileSet([profile]) as profiles:
        (status,) = profiles.status().profiles
        assert status.loaded and any(a.subject == "(no subject)" for a in status.anchors)
