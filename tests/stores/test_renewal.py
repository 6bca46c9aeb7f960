"""Renewing a key entry's certificate in Python: ``Keystore.certificate_request`` and
``Keystore.install_reply`` (keytool -certreq and -importcert of a reply), and
``CA.sign_request`` answering the request as a CA does.

Each positive has its negative twin: a reply for another key, a lone certificate whose
issuer is unknown, a chain with a stranger in it, a forged issuer (same name, other
key), junk instead of a reply. The handshake at the end shows the renewed entry is
what a server that trusts the CA accepts, and the self-signed one before it was not.
"""

from __future__ import annotations

import datetime
import itertools
import shutil
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtls
from mtls.testing import CA, MTLSServer
from tests._helpers import recertified, whoami

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki() -> tuple[CA, CA]:
    root = CA(name="renewal root")
    return root, root.create_child_ca(name="renewal issuing")


def _fresh(alias: str = "gw", *sans: str) -> mtls.Keystore:
    return mtls.Keystore.generate(alias, "CN=gw.example, O=Acme", key_type="EC", san=sans)


def _chain_subjects(chain: tuple[x509.Certificate, ...]) -> list[str]:
    return [c.subject.rfc4514_string() for c in chain]


def test_the_request_is_signed_by_the_entry_key_and_asks_for_its_names() -> None:
    store = _fresh("gw", "DNS:gw.example", "IP:10.0.0.7")
    request = store.certificate_request()
    assert request.is_signature_valid
    assert request.public_key() == store.certificate("gw").public_key()
    assert request.subject == store.certificate("gw").subject
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gw.example"]
    # Other names asked for, or none; the subject as keytool's -dname takes it.
    other = store.certificate_request("gw", subject="CN=new.example, O=Acme", san=["DNS:new"])
    assert other.subject.rfc4514_string() == "CN=new.example,O=Acme"
    asked = other.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert asked.get_values_for_type(x509.DNSName) == ["new"]
    bare = store.certificate_request(san=())
    with pytest.raises(x509.ExtensionNotFound):
        bare.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("key_type", ["RSA", "EC", "Ed25519"])
def test_every_key_type_keytool_makes_signs_a_request(key_type: str) -> None:
    store = mtls.Keystore.generate("k", "CN=k", key_type=key_type)  # type: ignore[arg-type]
    request = store.certificate_request("k")
    assert request.is_signature_valid
    assert request.public_key() == store.certificate("k").public_key()


def test_a_request_needs_the_decrypted_key_and_a_known_entry(tmp_path: Path) -> None:
    path = tmp_path / "gw.jks"
    _fresh().save(path, "changeit")
    inspected = mtls.Keystore.inspect(path, "changeit")
    with pytest.raises(mtls.KeyEntryError, match="was not decrypted"):
        inspected.certificate_request("gw")
    with pytest.raises(mtls.KeyEntryError, match="no key entry 'nope'"):
        mtls.Keystore.load(path, "changeit").certificate_request("nope")
    with pytest.raises(ValueError, match="DNS"):
        mtls.Keystore.load(path, "changeit").certificate_request(san=["DNS:bad name"])


def test_the_reply_becomes_the_chain_and_the_key_stays(pki: tuple[CA, CA]) -> None:
    root, issuing = pki
    store = _fresh()
    key_before = store.key_entry("gw")[1]
    reply = issuing.sign_request(store.certificate_request())
    assert len(reply) == 2  # the new certificate and the issuing CA
    # Completed from the trusted certificates given, up to the root, as keytool does.
    chain = store.install_reply("gw", reply, trust=root.truststore())
    assert _chain_subjects(chain) == [
        "CN=gw.example,O=Acme",
        issuing.certificate.subject.rfc4514_string(),
        root.certificate.subject.rfc4514_string(),
    ]
    assert store.certificate_chain("gw") == chain
    assert store.key_entry("gw")[1] == key_before
    # The same reply again changes nothing.
    assert store.install_reply("gw", reply, trust=root.truststore()) == chain
    # Without the root the chain stops at the reply's top: keytool -noprompt installs
    # it so too.
    other = _fresh()
    partial = other.install_reply(None, issuing.sign_request(other.certificate_request()))
    assert len(partial) == 2


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_a_pkcs7_reply_in_any_order_is_read(pki: tuple[CA, CA], encoding: str) -> None:
    root, issuing = pki
    store = _fresh()
    leaf, inter = issuing.sign_request(store.certificate_request())
    # The root first and the leaf last: the order of a .p7b is no promise.
    bundle = pkcs7.serialize_certificates(
        [root.certificate, leaf, inter], PEM if encoding == "PEM" else DER
    )
    chain = store.install_reply("gw", bundle)
    assert [c.subject for c in chain] == [leaf.subject, inter.subject, root.certificate.subject]


def test_an_unsorted_pkcs7_set_as_openssl_writes_it_is_read_without_a_warning(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl")
    root, issuing = pki
    store = _fresh()
    leaf, inter = issuing.sign_request(store.certificate_request())
    files = []
    for name, cert in (("leaf", leaf), ("inter", inter), ("root", root.certificate)):
        files += ["-certfile", str(tmp_path / f"{name}.pem")]
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(PEM))
    out = tmp_path / "reply.p7b"
    subprocess.run([openssl, "crl2pkcs7", "-nocrl", *files, "-outform", "DER", "-out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chain = store.install_reply("gw", out)
    assert len(chain) == 3 and chain[0] == leaf


def test_a_reply_for_another_key_is_refused(pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    store, stranger = _fresh(), _fresh()
    reply = issuing.sign_request(stranger.certificate_request())
    before = store.certificate_chain("gw")
    with pytest.raises(mtls.KeyEntryError, match="public keys differ") as caught:
        store.install_reply("gw", reply)
    assert caught.value.alias == "gw"
    assert store.certificate_chain("gw") == before


def test_a_reply_is_completed_from_a_ca_kept_as_a_key_entry_of_the_same_store() -> None:
    """keytool completes a reply from every entry's certificate, key entries' too: an
    internal CA kept in the gateway's own store signs its request (mtls gencert), and
    mtls import of the reply said the issuer was found nowhere."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    root = CA(name="in-store root")
    store = _fresh()
    store.add_key("root", load_pem_private_key(root.private_key_pem, None), [root.certificate])
    reply = store.sign_request(store.certificate_request("gw"), "root")
    assert len(reply) == 1  # the leaf alone: keytool -gencert leaves the self-signed root out
    chain = store.install_reply("gw", reply)
    assert [c.subject for c in chain] == [reply[0].subject, root.certificate.subject]
    # The twin: without the root's entry, no chain is built.
    alone = _fresh()
    alone_reply = store.sign_request(alone.certificate_request("gw"), "root")
    with pytest.raises(mtls.KeyEntryError, match="Failed to establish chain from reply"):
        alone.install_reply("gw", alone_reply)


def _ca_cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    issuer: str,
    days: tuple[int, int],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(name))
        .issuer_name(x509.Name.from_rfc4514_string(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )  # fmt: skip


def test_a_ca_renewed_certificate_given_wins_over_its_expired_one_in_the_store() -> None:
    """Key entries' certificates complete a reply, but after those given: an internal CA
    kept as a key entry with its expired certificate, and its renewed one (same key)
    passed as trust=, gave a chain through the expired one."""
    root_key, ica_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = _ca_cert("CN=Root", root_key, root_key, "CN=Root", (-800, 3000))
    ica_old = _ca_cert("CN=Issuing CA", ica_key, root_key, "CN=Root", (-800, -1))
    ica_new = _ca_cert("CN=Issuing CA", ica_key, root_key, "CN=Root", (-1, 700))
    store = _fresh()
    store.add_key("ica", ica_key, [ica_old, root])
    request = store.certificate_request("gw")
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder().subject_name(request.subject)
        .issuer_name(ica_new.subject).public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
        .sign(ica_key, hashes.SHA256())
    )  # fmt: skip
    chain = store.install_reply("gw", [leaf], trust=[ica_new, root])
    assert chain[1] == ica_new and chain[2] == root
    # The twin: with nothing given, the key entry's own certificate completes it.
    again = _fresh()
    again.add_key("ica", ica_key, [ica_new, root])
    leaf2 = (
        x509.CertificateBuilder().subject_name(request.subject)
        .issuer_name(ica_new.subject).public_key(again.certificate_chain("gw")[0].public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
        .sign(ica_key, hashes.SHA256())
    )  # fmt: skip
    assert again.install_reply("gw", [leaf2])[1] == ica_new


def test_a_lone_certificate_needs_its_issuer(pki: tuple[CA, CA]) -> None:
    root, issuing = pki
    store = _fresh()
    leaf, inter = issuing.sign_request(store.certificate_request())
    with pytest.raises(mtls.KeyEntryError, match="Failed to establish chain from reply"):
        store.install_reply("gw", [leaf])
    # Its issuer given as trusted (a Truststore, or certificates): the chain is built.
    assert len(store.install_reply("gw", [leaf], trust=[inter, root.certificate])) == 3
    again = _fresh()
    leaf2 = issuing.sign_request(again.certificate_request())[0]
    trust = mtls.Truststore()
    trust.add("issuing", inter)
    assert len(again.install_reply("gw", [leaf2], trust=trust)) == 2
    # Or held in the keystore itself, as keytool looks there first.
    third = _fresh()
    third.add_certificate("issuing-ca", inter)
    leaf3 = issuing.sign_request(third.certificate_request())[0]
    assert len(third.install_reply("gw", [leaf3])) == 2


def test_a_forged_issuer_with_the_right_name_is_not_on_the_chain(pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    store = _fresh()
    leaf, inter = issuing.sign_request(store.certificate_request())
    # The issuing CA's name on another key: named right, signed nothing here.
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(inter.subject)
        .issuer_name(inter.subject)
        .public_key(forged_key.public_key())
        .serial_number(7)
        .not_valid_before(inter.not_valid_before_utc)
        .not_valid_after(inter.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(forged_key, hashes.SHA256())
    )
    with pytest.raises(mtls.KeyEntryError, match="not on the chain"):
        store.install_reply("gw", [leaf, forged])
    with pytest.raises(mtls.KeyEntryError, match="Failed to establish chain"):
        store.install_reply("gw", [leaf], trust=[forged])


def test_a_stranger_in_the_reply_is_refused(pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    store = _fresh()
    reply = issuing.sign_request(store.certificate_request())
    with pytest.raises(mtls.KeyEntryError, match="not on the chain") as caught:
        store.install_reply("gw", [*reply, CA(name="unrelated").certificate])
    assert "unrelated" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "no certificate found"),
        (b"not a certificate at all", "no certificate found"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid PEM"),
        (b"-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n", "PKCS#7 bundle"),
    ],
)
def test_junk_instead_of_a_reply_is_a_format_error(data: bytes, match: str) -> None:
    store = _fresh()
    with pytest.raises(mtls.KeystoreFormatError, match=match):
        store.install_reply("gw", data)


def test_a_missing_reply_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(mtls.KeystoreNotFoundError, match="no such reply file"):
        _fresh().install_reply("gw", tmp_path / "reply.p7b")
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        _fresh().install_reply("gw", str(tmp_path / "reply.p7b"))  # type: ignore[arg-type]


def test_a_jks_entry_renewed_without_decrypting_its_key(pki: tuple[CA, CA], tmp_path: Path) -> None:
    """A store opened with inspect (keys as the file protects them) takes a reply; the
    key, under its own password, is written back as it was."""
    root, issuing = pki
    path = tmp_path / "gw.jks"
    _fresh().save(path, "store-pass", key_password="key-pass")
    request = mtls.Keystore.load(path, "store-pass", key_password="key-pass").certificate_request()
    store = mtls.Keystore.inspect(path, "store-pass")
    store.install_reply("gw", issuing.sign_request(request), trust=root.truststore())
    store.save(path, "store-pass")
    renewed = mtls.Keystore.load(path, "store-pass", key_password="key-pass")
    assert len(renewed.certificate_chain("gw")) == 3
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "store-pass")


def test_the_renewed_entry_is_what_a_server_trusting_the_ca_accepts(pki: tuple[CA, CA]) -> None:
    root, issuing = pki
    store = _fresh()
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        trust = root.truststore()
        # Twin: the self-signed certificate before the renewal is refused.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            whoami(mtls.client_context(store, trust), server.port)
        store.install_reply("gw", issuing.sign_request(store.certificate_request()), trust=trust)
        seen = whoami(mtls.client_context(store, trust), server.port)
    assert seen["client_subject"] == "CN=gw.example,O=Acme"


def test_sign_request_refuses_a_request_its_key_did_not_sign(pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    request = _fresh().certificate_request()
    der = bytearray(request.public_bytes(DER))
    der[-5] ^= 0x01  # inside the signature
    # The same class and words as Keystore.sign_request's for the same request.
    with pytest.raises(mtls.KeystoreFormatError, match="does not verify"):
        issuing.sign_request(bytes(der))
    # PEM and DER bytes are taken as the request itself is.
    assert issuing.sign_request(request.public_bytes(PEM))[0].subject == request.subject


def test_the_test_ca_signs_requests_whose_key_cryptography_would_write_otherwise(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    """A compressed EC point and an RSASSA-PSS key (openssl req writes both) were
    signed, then refused by the keystore's own check (which keeps a keystore's key as
    it holds it): a test CA signs what cryptography reads."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH")
    _, issuing = pki
    ec_key, pss_key = tmp_path / "ec.pem", tmp_path / "pss.pem"
    commands = [
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ec_key],
        [openssl, "ec", "-in", ec_key, "-conv_form", "compressed", "-out", ec_key],
        [openssl, "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", pss_key],
    ]  # fmt: skip
    for key in (ec_key, pss_key):
        commands.append([openssl, "req", "-new", "-key", key, "-subj", f"/CN={key.stem}",
                         "-out", key.with_suffix(".csr")])  # fmt: skip
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    for key in (ec_key, pss_key):
        leaf = issuing.sign_request(key.with_suffix(".csr"))[0]
        assert leaf.subject.rfc4514_string() == f"CN={key.stem}"
    # The twin: a keystore signing the same request keeps its own check, in words.
    signer = _fresh("ca")
    with pytest.raises(mtls.KeystoreFormatError, match="in another form than the request"):
        signer.sign_request(ec_key.with_suffix(".csr"))


def test_sign_request_reads_a_file_and_refuses_what_is_not_a_request(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    _, issuing = pki
    request = _fresh().certificate_request()
    path = tmp_path / "gw.csr"
    path.write_bytes(request.public_bytes(PEM))
    assert issuing.sign_request(path)[0].subject == request.subject
    # Twins: garbage (cryptography's "error parsing asn1 value" escaped), a certificate,
    # a missing file, and a str, which could be a path or PEM text.
    for bad in (b"\x30\x5c\x00garbage", issuing.cert_pem):
        with pytest.raises(mtls.KeystoreFormatError, match="request") as caught:
            issuing.sign_request(bad)
        assert "asn1" not in str(caught.value)
    with pytest.raises(mtls.KeystoreNotFoundError, match=r"gone\.csr"):
        issuing.sign_request(tmp_path / "gone.csr")
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        issuing.sign_request(str(path))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fuzzing

_ROOT = CA(name="fuzz root")
_ISSUING = _ROOT.create_child_ca(name="fuzz issuing")
_ENTRY = _fresh().key_entry("gw")
_REQUEST = mtls.Keystore()
_REQUEST.add_key("gw", _ENTRY[1], list(_ENTRY[2]))
_REPLY = _ISSUING.sign_request(_REQUEST.certificate_request())
_SEEDS = {
    "pem": b"".join(c.public_bytes(PEM) for c in (*_REPLY, _ROOT.certificate)),
    "der": _REPLY[0].public_bytes(DER),
    "p7b": pkcs7.serialize_certificates([*_REPLY, _ROOT.certificate], DER),
    "p7b-pem": pkcs7.serialize_certificates(list(_REPLY), PEM),
}


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    seed=st.sampled_from(sorted(_SEEDS)),
    at=st.integers(min_value=0),
    length=st.integers(min_value=0, max_value=64),
    junk=st.binary(max_size=64),
)
def test_a_damaged_reply_is_refused_with_an_mtls_error_or_installed_whole(
    seed: str, at: int, length: int, junk: bytes
) -> None:
    data = _SEEDS[seed]
    at %= len(data) + 1
    damaged = data[:at] + junk + data[at + length :]
    store = mtls.Keystore()
    store.add_key("gw", _ENTRY[1], list(_ENTRY[2]))
    try:
        chain = store.install_reply("gw", damaged, trust=[_ISSUING.certificate])
    except mtls.MTLSError:
        assert store.key_entry("gw") == _ENTRY  # refused: the entry as it was
        return
    # Whatever was read is a chain from the entry's key up, each link signed.
    assert chain[0].public_key() == _REPLY[0].public_key()
    for cert, issuer in itertools.pairwise(chain):
        cert.verify_directly_issued_by(issuer)
    assert store.key_entry("gw")[1] == _ENTRY[1]


# --------------------------------------------------------------------------- review cases


def _openssl(*args: str | Path) -> bytes:
    done = subprocess.run([str(a) for a in args], check=True, capture_output=True)
    return done.stdout


def _resigned_with_duplicate_san(ca: CA, leaf: x509.Certificate) -> bytes:
    """``leaf`` with a second subjectAltName extension (re-signed by ``ca``, RSA: the
    signature keeps its length): what keytool cannot open once in a store."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(leaf.public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), False)
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.2.3.4"),
                x509.SubjectAlternativeName([x509.DNSName("b.example")]).public_bytes(),
            ),
            False,
        )
    )
    signed = builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    tbs = signed.tbs_certificate_bytes
    patched = tbs.replace(b"\x06\x03\x2a\x03\x04", b"\x06\x03\x55\x1d\x11")
    signature = ca.private_key.sign(patched, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
    return signed.public_bytes(DER).replace(tbs, patched).replace(signed.signature, signature)


def test_a_reply_certificate_with_a_duplicated_extension_is_refused() -> None:
    """Installed, it made a store keytool cannot open ("Duplicate extensions not
    allowed"); now refused before anything changes."""
    ca = CA(name="dup", key_type="RSA")
    store = _fresh()
    leaf = ca.sign_request(store.certificate_request())[0]
    duplicated = _resigned_with_duplicate_san(ca, leaf)
    with pytest.raises(x509.DuplicateExtension):
        _ = x509.load_der_x509_certificate(duplicated).extensions
    with pytest.raises(mtls.KeystoreFormatError, match="duplicated extension"):
        store.install_reply("gw", [duplicated, ca.certificate])
    assert len(store.certificate_chain("gw")) == 1
    # The twin: the same certificate as issued.
    assert len(store.install_reply("gw", [leaf, ca.certificate])) == 2


def test_the_old_certificate_in_a_reply_is_not_taken_for_the_new_one(pki: tuple[CA, CA]) -> None:
    root, issuing = pki
    store = _fresh()
    old = store.certificate("gw")
    reply = issuing.sign_request(store.certificate_request())
    chain = store.install_reply("gw", [old, *reply, root.certificate])
    assert chain[0] == reply[0] and len(chain) == 3


def test_a_cross_signed_twin_of_the_root_goes_along(pki: tuple[CA, CA]) -> None:
    """A reply with the root self-signed and cross-signed by an older root (a CA in
    transition): keytool installs it; the twin is not a stranger."""
    root, issuing = pki
    old_root = CA(name="older root")
    cross = recertified(root, old_root)
    store = _fresh()
    reply = issuing.sign_request(store.certificate_request())
    chain = store.install_reply("gw", [*reply, root.certificate, cross])
    assert chain[-1] in (root.certificate, cross) and len(chain) >= 3


def test_a_reply_is_capped_and_named(pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    store = _fresh()
    many = [CA(name=f"c{i}", key_type="EC").certificate for i in range(65)]
    with pytest.raises(mtls.KeystoreFormatError, match="more than the 64"):
        store.install_reply("gw", many)
    junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(mtls.KeystoreFormatError, match="trusted certificates"):
        store.install_reply("gw", issuing.sign_request(store.certificate_request()), trust=[junk])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_a_reply_with_the_key_in_another_encoding_is_refused(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    """A CA that writes the entry's EC key as a compressed point: keytool refuses the
    reply ("Invalid EC key"), and a store holding it no longer opens in Java."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    ca = CA(name="compressing", key_type="EC")
    store = _fresh()
    request = tmp_path / "req.pem"
    request.write_bytes(store.certificate_request().public_bytes(PEM))
    pub = tmp_path / "pub.pem"
    pub.write_bytes(store.certificate("gw").public_key().public_bytes(
        PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    _openssl(openssl, "ec", "-pubin", "-in", pub, "-conv_form", "compressed", "-pubout",
             "-out", tmp_path / "pubc.pem")  # fmt: skip
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(ca.private_key_pem)
    leaf = _openssl(openssl, "x509", "-req", "-in", request, "-CA", tmp_path / "ca.pem",
                    "-CAkey", tmp_path / "ca.key", "-force_pubkey", tmp_path / "pubc.pem",
                    "-days", "30")  # fmt: skip
    with pytest.raises(mtls.KeyEntryError, match="another encoding"):
        store.install_reply("gw", leaf + ca.cert_pem)
    assert len(store.certificate_chain("gw")) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_a_request_that_would_name_another_key_form_is_refused(tmp_path: Path) -> None:
    """An RSASSA-PSS key: cryptography reads it as plain RSA, so the request named an
    rsaEncryption key; the CA's reply then did not pair with the entry in Java."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    key = tmp_path / "pss.key"
    _openssl(openssl, "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", key)  # fmt: skip
    cert = _openssl(openssl, "req", "-new", "-x509", "-key", key, "-subj", "/CN=pss", "-days", "30")
    store = mtls.Keystore.from_bytes(key.read_bytes() + cert, None)
    with pytest.raises(mtls.KeyEntryError, match="another form"):
        store.certificate_request()


def test_a_reply_certificate_whose_key_is_off_its_curve_is_a_format_error() -> None:
    """Found by the fuzzer above: cryptography parsed the certificate, then raised
    ValueError("Invalid key") for its public key, out of install_reply."""
    ca = CA(name="off curve", key_type="RSA")
    store = _fresh()
    leaf = ca.sign_request(store.certificate_request())[0]
    der = leaf.public_bytes(DER)
    point = (
        store.certificate("gw")
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    bad_point = point[:-1] + bytes([point[-1] ^ 0x01])  # y off by one: not on P-256
    tbs = leaf.tbs_certificate_bytes
    patched = tbs.replace(point, bad_point)
    assert patched != tbs
    signature = ca.private_key.sign(patched, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
    broken = der.replace(tbs, patched).replace(leaf.signature, signature)
    with pytest.raises(ValueError, match="Invalid"):
        x509.load_der_x509_certificate(broken).public_key()
    with pytest.raises(mtls.KeystoreFormatError, match="cannot be read"):
        store.install_reply("gw", [broken, ca.certificate])


def test_trust_takes_a_file_or_its_bytes_as_the_reply_does(
    pki: tuple[CA, CA], tmp_path: Path
) -> None:
    """trust=Path raised "'PosixPath' object is not iterable", trust=bytes "not int"."""
    root, issuing = pki
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(issuing.cert_pem + root.cert_pem)
    for trust in (bundle, bundle.read_bytes()):
        store = _fresh()
        leaf = issuing.sign_request(store.certificate_request())[0]
        assert len(store.install_reply("gw", [leaf], trust=trust)) == 3
    with pytest.raises(mtls.KeystoreNotFoundError, match="no such trusted certificates file"):
        _fresh().install_reply("gw", [leaf], trust=tmp_path / "missing.pem")


def test_trust_as_text_says_to_pass_a_path(pki: tuple[CA, CA], tmp_path: Path) -> None:
    root, issuing = pki
    store = _fresh()
    leaf = issuing.sign_request(store.certificate_request())[0]
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        store.install_reply("gw", [leaf], trust=str(tmp_path / "cas.pem"))  # type: ignore[arg-type]
    chain = store.install_reply("gw", [leaf], trust=bytearray(issuing.cert_pem + root.cert_pem))
    assert len(chain) == 3


def test_a_reply_with_spaces_at_its_line_ends_is_read_as_keytool_reads_it(
    pki: tuple[CA, CA],
) -> None:
    """Trailing spaces or tabs on a reply's base64 lines (a mail client, a ticket
    system): "Only base64 data is allowed" where keytool installs the reply."""
    root, issuing = pki
    store = _fresh()
    reply = issuing.sign_request(store.certificate_request())
    pem = b"".join(c.public_bytes(PEM) for c in reply)
    for ending in (b" \n", b"\t\n"):
        chain = store.install_reply("gw", pem.replace(b"\n", ending), trust=root.truststore())
        assert len(chain) == 3
