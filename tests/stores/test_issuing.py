"""``Keystore.sign_request``: the CA's side of a renewal (``keytool -gencert``), for an
internal CA kept in a keystore. The request comes from ``certificate_request``, keytool
or openssl; the reply goes back through ``install_reply``; a server that trusts the CA
accepts the renewed entry, and one that trusts another CA does not.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtls
from mtls._issuing import parse_ext, read_request
from mtls.testing import CA, MTLSServer
from tests._helpers import whoami

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def _ca_store(ca: CA, alias: str = "ca") -> mtls.Keystore:
    """A keystore holding ``ca``'s key and chain, as an estate's internal CA is kept."""
    store = mtls.Keystore()
    chain, above = [ca.certificate], ca.parent
    while above is not None:
        chain.append(above.certificate)
        above = above.parent
    store.add_key(alias, ca.private_key, chain)
    return store


@pytest.fixture(scope="module")
def pki() -> tuple[CA, CA]:
    root = CA(name="issuing root")
    return root, root.create_child_ca(name="issuing intermediate")


def test_a_renewal_round_trip_through_a_ca_kept_in_a_keystore(pki: tuple[CA, CA]) -> None:
    root, intermediate = pki
    ca = _ca_store(intermediate)
    requester = mtls.Keystore.generate("gw", "CN=gw.example", key_type="EC", san=["DNS:gw.example"])
    reply = ca.sign_request(requester.certificate_request("gw"), days=30)
    leaf = reply[0]
    assert leaf.issuer == intermediate.certificate.subject
    assert leaf.subject.rfc4514_string() == "CN=gw.example"
    # keytool's reply: the certificate, then the issuer's chain without the root.
    assert list(reply[1:]) == [intermediate.certificate]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == _dt.timedelta(days=30)
    # The request's names are kept (keytool drops them without -ext honored=all).
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.example"]
    leaf.verify_directly_issued_by(intermediate.certificate)
    requester.install_reply("gw", list(reply), trust=[root.certificate])
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        context = mtls.client_context(requester, root.truststore())
        assert whoami(context, server.port)["client_cn"] == "gw.example"
    # The twin: a server that trusts another CA refuses the renewed entry.
    other = CA(name="another estate")
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=other) as server:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            whoami(mtls.client_context(requester, root.truststore()), server.port)


def test_extensions_as_keytool_gives_them(pki: tuple[CA, CA]) -> None:
    _, intermediate = pki
    ca = _ca_store(intermediate)
    requester = mtls.Keystore.generate("gw", "CN=gw", key_type="EC", san=["DNS:gw"])
    asked = requester.certificate_request("gw")
    extensions, honored = parse_ext(
        [
            "bc:c=ca:true,pathlen:0",
            "ku=dig,keyCertSign",
            "eku=serverAuth,clientAuth",
            "san=dns:other.example,ip:10.0.0.1",
        ]
    )
    assert not honored
    leaf = ca.sign_request(asked, extensions=extensions)[0]
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_cert_sign and not usage.key_encipherment
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    # The given SAN replaces the request's; the key identifiers are keytool's.
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["other.example"]
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())  # type: ignore[arg-type]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = intermediate.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value
    assert aki.key_identifier == issuer_ski.digest


def test_requested_extensions_are_copied_only_when_honored(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl")
    _, intermediate = pki
    csr = tmp_path / "req.csr"
    subprocess.run(
        [openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "k.pem"), "-subj", "/CN=asked", "-out", str(csr),
         "-addext", "subjectAltName=DNS:asked.example",
         "-addext", "extendedKeyUsage=clientAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    ca = _ca_store(intermediate)
    plain = ca.sign_request(csr)[0]
    oids = {ext.oid for ext in plain.extensions}
    assert ExtensionOID.SUBJECT_ALTERNATIVE_NAME in oids
    assert ExtensionOID.EXTENDED_KEY_USAGE not in oids  # keytool drops it unless honored
    honored = ca.sign_request(csr.read_bytes(), honored=True)[0]
    assert list(honored.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_a_request_whose_signature_fails_is_refused(pki: tuple[CA, CA]) -> None:
    _, intermediate = pki
    der = bytearray(
        mtls.Keystore.generate("gw", "CN=gw", key_type="EC").certificate_request().public_bytes(DER)
    )
    der[-3] ^= 0x01  # inside the signature
    with pytest.raises(mtls.KeystoreFormatError, match="signature does not verify"):
        _ca_store(intermediate).sign_request(bytes(der))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a certificate request"),
        (b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n", "holds CERTIFICATE"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
            "not valid base64",
        ),
    ],
)
def test_what_is_not_a_request_says_so(data: bytes, match: str) -> None:
    with pytest.raises(mtls.KeystoreFormatError, match=match):
        read_request(data, path=None)


def test_a_certificate_is_not_taken_for_a_request(pki: tuple[CA, CA]) -> None:
    root, _ = pki
    with pytest.raises(mtls.KeystoreFormatError, match="but a certificate"):
        read_request(root.certificate.public_bytes(DER), path="root.der")


def test_the_signing_entry_must_hold_its_decrypted_key(tmp_path: Path, pki: tuple[CA, CA]) -> None:
    _, intermediate = pki
    path = tmp_path / "ca.jks"
    _ca_store(intermediate).save(path, "changeit", store_type="JKS")
    inspected = mtls.Keystore.inspect(path, "changeit")
    request = mtls.Keystore.generate("gw", "CN=gw", key_type="EC").certificate_request()
    with pytest.raises(mtls.KeyEntryError, match="was not decrypted"):
        inspected.sign_request(request)
    with pytest.raises(mtls.KeyEntryError, match="has no key entry 'nope'"):
        mtls.Keystore.load(path, "changeit").sign_request(request, "nope")
    with pytest.raises(ValueError, match="days"):
        mtls.Keystore.load(path, "changeit").sign_request(request, days=0)
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        mtls.Keystore.load(path, "changeit").sign_request("req.csr")  # type: ignore[arg-type]


def _request_with_a_duplicated_san() -> bytes:
    """A request whose extensionRequest holds the same SAN twice, signed by its key (a
    builder refuses to make one; a CA receives what others make)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from mtls import _der

    key = ec.generate_private_key(ec.SECP256R1())
    made = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=dup"))
        .sign(key, hashes.SHA256())
    )
    info = _der.read_single(made.public_bytes(DER), _der.SEQUENCE).children()[0].children()
    san = bytes.fromhex("30140603551d11040d300b8209") + b"a.example"
    request = _der.encode(  # extensionRequest: SET { Extensions }
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.9.14")
        + _der.encode(0x31, _der.encode(_der.SEQUENCE, san + san)),
    )
    body = _der.encode(
        _der.SEQUENCE,
        bytes.fromhex("020100")
        + _der.encode(_der.SEQUENCE, info[1].value)
        + _der.encode(_der.SEQUENCE, info[2].value)
        + _der.encode(0xA0, request),
    )
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.10045.4.3.2"))
    return _der.encode(_der.SEQUENCE, body + algorithm + _der.encode(0x03, b"\x00" + signature))


def test_a_request_with_a_duplicated_extension_is_a_format_error(pki: tuple[CA, CA]) -> None:
    """cryptography raises DuplicateExtension, which is not a ValueError: it came out of
    sign_request, and mtls gencert and printcertreq said "unexpected" (a review found it)."""
    _, intermediate = pki
    data = _request_with_a_duplicated_san()
    with pytest.raises(mtls.KeystoreFormatError, match="cannot be read"):
        _ca_store(intermediate).sign_request(data)
    with pytest.raises(mtls.KeystoreFormatError, match="cannot be read"):
        read_request(data, path=None, to_sign=False)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("ian=dns:x", "make other extensions with keytool"),
        ("bc=pathlen:1", "a path length is for a CA"),
        ("bc=99999999999999999999", "a path length is a number"),
        ("bc=ca:true,pathlen:x", "a path length is a number"),
        ("eku=9.9.9", "not an OID"),
        ("eku=1.50.3", "not an OID"),
        ("ku=c", "ambiguous"),  # cRLSign or contentCommitment, as keytool says
        ("1.2.3.4=0500", "make other extensions with keytool"),
        ("ku=d", "ambiguous"),
        ("ku=sign", "not a key usage"),
        ("eku=webA", "not an extended key usage"),
        ("ku=encipherOnly", "need keyAgreement"),
        ("eku=webAuth", "not an extended key usage"),
        ("bc=ca:false,pathlen:1", "path length is for a CA"),
        ("bc=ca:maybe", "bc takes"),
        ("san:x=dns:a", "only :critical"),
        ("honored=some", "only honored=all"),
        ("honored:c=all", "honored takes no flag"),
        ("eku=", "give a value"),
    ],
)
def test_ext_values_keytool_has_and_this_does_not_are_refused(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_ext([value])


_SEED = (
    mtls.Keystore.generate("gw", "CN=gw", key_type="EC", san=["DNS:gw"])
    .certificate_request()
    .public_bytes(PEM)
)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(at=st.integers(min_value=0), length=st.integers(0, 16), junk=st.binary(max_size=16))
def test_a_damaged_request_is_read_whole_or_refused_with_an_mtls_error(
    at: int, length: int, junk: bytes
) -> None:
    at %= len(_SEED) + 1
    damaged = _SEED[:at] + junk + _SEED[at + length :]
    try:
        request, _ = read_request(damaged, path=None)
    except mtls.MTLSError:
        return
    assert request.is_signature_valid


def test_keytools_abbreviations_are_taken_as_keytool_takes_them() -> None:
    """keytool's oneOf: a start of the name, or its capitals (sA for serverAuth, dS for
    digitalSignature); a review found eku=sA,cA refused."""
    (eku, ku, bc), _ = parse_ext(["eku=sA,cA", "ku=dS,keyE,cRLS", "bc=ca:true,pathlen:0"])
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ku.value.digital_signature and ku.value.key_encipherment and ku.value.crl_sign
    assert bc.value.ca and bc.value.path_length == 0
    # keytool: a bc value without ca:true is not a CA; a number alone is a CA's path length.
    # keytool's oneOf, step by step: the name, then its start or camel-case form, then
    # the same in any case (a second review compared each with keytool 17 and 25).
    cases = {
        "ku=kE": "key_encipherment", "ku=co": "content_commitment", "ku=cC": "content_commitment",
        "k=dig": "digital_signature", "basic=0": None, "bc:crit": None, "e=sA": None,
        "san=d:a.example,i:10.0.0.1": None, "bc=-1": None, "bc=+1": None,
    }  # fmt: skip
    for written, usage in cases.items():
        (made,), _ = parse_ext([written])
        if usage is not None:
            assert getattr(made.value, usage), written
    assert parse_ext(["bc:crit"])[0][0].critical
    assert parse_ext(["bc=-1"])[0][0].value.path_length is None  # no limit, as in Java
    assert parse_ext(["bc=+1"])[0][0].value.path_length == 1
    san = parse_ext(["san=d:a.example,i:10.0.0.1"])[0][0].value
    assert san.get_values_for_type(x509.DNSName) == ["a.example"]
    (plain,), _ = parse_ext(["bc=ca:false"])
    assert not plain.value.ca
    (number,), _ = parse_ext(["bc=2"])
    assert number.value.ca and number.value.path_length == 2


@pytest.mark.parametrize("ca", [True, False], ids=["ca=True", "no CA"])
def test_the_documented_internal_ca_signs_chains_openssl_peers_accept(
    ca: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/keystores.md's CA's side: Keystore.generate made no CA certificate (no
    basicConstraints CA:true), sign_request signed with it without a word, and every
    OpenSSL peer refused the chain ("invalid CA certificate", h234). ``ca=True`` makes
    a CA's certificate, whose chains a real handshake accepts; without it, the twin,
    the signature is logged as refused by peers, and a real server refuses it."""
    issuer = mtls.Keystore.generate("ca", "CN=Acme Internal CA", key_type="EC", ca=ca)
    cert = issuer.certificate("ca")
    if ca:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    gateway = mtls.Keystore.generate("gateway", "CN=gateway.example", key_type="EC")
    caplog.set_level("WARNING", logger="mtls")
    reply = issuer.sign_request(gateway.certificate_request(), "ca", days=90)
    refused = [r.getMessage() for r in caplog.records if "is not a CA certificate" in r.message]
    assert bool(refused) is not ca, refused
    gateway.install_reply("gateway", list(reply), trust=[cert])
    server_ca = CA()
    ctx = mtls.client_context(gateway, server_ca.truststore())
    anchors = mtls.Truststore()
    anchors.add("ca", cert)
    with MTLSServer(server_ca.issue_cert("localhost", "127.0.0.1"), client_ca=anchors) as server:
        if ca:
            assert whoami(ctx, server.port)["client_cn"] == "gateway.example"
        else:
            with pytest.raises((OSError, ConnectionError)):
                whoami(ctx, server.port)


def test_generated_extensions_replace_those_of_the_same_type_and_must_be_extensions() -> None:
    """``extensions`` go over ``ca``'s and ``san``'s, one per type; anything but an
    ``x509.Extension`` is a TypeError saying what to give."""
    pathlen = x509.BasicConstraints(ca=True, path_length=0)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    store = mtls.Keystore.generate(
        "ca", "CN=ca", key_type="EC", ca=True, san=["DNS:ca.example"],
        extensions=[x509.Extension(pathlen.oid, True, pathlen), x509.Extension(eku.oid, False, eku)],
    )  # fmt: skip
    extensions = store.certificate("ca").extensions
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == eku
    assert extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ca.example"]
    assert len({e.oid for e in extensions}) == len(list(extensions))
    with pytest.raises(TypeError, match=r"x509\.Extension objects"):
        mtls.Keystore.generate("x", "CN=x", extensions=[pathlen])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        mtls.Keystore.generate("x", "CN=x", ca="yes")  # type: ignore[arg-type]


def test_signature_algorithms_by_their_java_names(pki: tuple[CA, CA]) -> None:
    """``signature_algorithm`` (keytool's ``-sigalg``) on the three calls that sign:
    the self-signed certificate, the request and the issued certificate; a name for
    another key type, a broken digest or an unknown name is refused before anything
    is made, and a server trusting the CA still accepts the chain signed so."""
    root, issuing = pki
    store = mtls.Keystore.generate(
        "gw", "CN=gw", key_type="RSA", signature_algorithm="RSASSA-PSS",
        not_before=_dt.datetime(2024, 5, 1, 8, 30), days=30,
    )  # fmt: skip
    made = store.certificate("gw")
    assert made.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.10"
    assert made.not_valid_before_utc == _dt.datetime(2024, 5, 1, 8, 30, tzinfo=_dt.UTC)
    assert made.not_valid_after_utc == _dt.datetime(2024, 5, 31, 8, 30, tzinfo=_dt.UTC)
    request = store.certificate_request("gw", signature_algorithm="SHA384withRSA")
    assert request.signature_hash_algorithm is not None
    assert request.signature_hash_algorithm.name == "sha384"
    assert request.is_signature_valid
    signer = _ca_store(issuing)
    chain = signer.sign_request(request, signature_algorithm="sha512withecdsa", days=5)
    assert chain[0].signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.4"
    chain[0].verify_directly_issued_by(issuing.certificate)
    for wrong, says in (
        ("SHA256withRSA", "signs with RSA keys; this key is EC"),
        ("SHA1withECDSA", "SHA-1 signatures are refused"),
        ("whirlpoolwithRSA", "unknown signature algorithm"),
    ):
        with pytest.raises(ValueError, match=says):
            signer.sign_request(request, signature_algorithm=wrong)
    with pytest.raises(ValueError, match="this key is RSA: use SHA256withRSA"):
        store.certificate_request("gw", signature_algorithm="SHA256withECDSA")
    with pytest.raises(ValueError, match="MD5 signatures are broken"):
        mtls.Keystore.generate("x", "CN=x", signature_algorithm="MD5withRSA")
    with pytest.raises(ValueError, match="signs with Ed25519 keys; this key is EC"):
        mtls.Keystore.generate("x", "CN=x", key_type="EC", signature_algorithm="Ed25519")
    with pytest.raises(TypeError, match="a signature algorithm is a str"):
        mtls.Keystore.generate("x", "CN=x", signature_algorithm=256)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ends after the year 9999"):
        mtls.Keystore.generate("x", "CN=x", not_before=_dt.datetime(9999, 6, 1), days=365)
    with pytest.raises(TypeError, match="not_before must be a datetime"):
        mtls.Keystore.generate("x", "CN=x", not_before="2024/05/01")  # type: ignore[arg-type]
    # The renewed leaf (a PSS-signed request, an ECDSA-signed certificate) is accepted by
    # a server that trusts its CA, and refused by one that trusts another.
    renewed = signer.sign_request(
        store.certificate_request("gw"), signature_algorithm="SHA384withECDSA"
    )
    store.install_reply("gw", list(renewed), trust=[root.certificate])
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        assert (
            whoami(mtls.client_context(store, root.truststore()), server.port)["client_cn"] == "gw"
        )
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=CA()) as server:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            whoami(mtls.client_context(store, root.truststore()), server.port)
