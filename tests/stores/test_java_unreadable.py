"""Certificates whose EC key Java cannot parse: a compressed point ("Invalid EC key") or
explicit curve parameters ("Only named ECParameters supported"). keytool -importcert
refuses them, and a JKS or PKCS#12 store holding one fails to load whole in Java
(keytool, WSO2): mtls import and convert wrote such stores with exit 0 (h188 HIGH). An
identity whose chain has explicit parameters is refused by every OpenSSL peer too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import mtls
from mtls import _x509
from mtls.cli import main
from mtls.testing import CA

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
PASSWORD = "unreadable-Pa55"


def _openssl(*args: str | Path) -> bytes:
    return subprocess.run(
        ["openssl", *map(str, args)], check=True, capture_output=True, timeout=60
    ).stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and three leaves it issued: explicit parameters, a compressed point, and a
    named curve (the twin), each with its key as PKCS#8 PEM."""
    d = tmp_path_factory.mktemp("unreadable")
    ca = CA(name="unreadable CA", key_type="EC")
    (d / "ca.pem").write_bytes(ca.cert_pem)
    (d / "ca.key").write_bytes(ca.private_key_pem)
    out: dict[str, Path] = {"ca": d / "ca.pem"}
    for name, keygen in (
        ("explicit", ("-param_enc", "explicit")),
        ("compressed", ()),
        ("named", ()),
    ):
        sec1, key, csr = d / f"{name}.sec1", d / f"{name}.key", d / f"{name}.csr"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", *keygen, "-out", sec1)
        _openssl("pkcs8", "-topk8", "-nocrypt", "-in", sec1, "-out", key)
        _openssl("req", "-new", "-key", sec1, "-subj", f"/CN={name}", "-out", csr)
        force: tuple[str | Path, ...] = ()
        if name == "compressed":
            pub = d / "pubc.pem"
            _openssl("ec", "-in", sec1, "-pubout", "-conv_form", "compressed", "-out", pub)
            force = ("-force_pubkey", pub)
        cert = _openssl("x509", "-req", "-in", csr, "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
                        "-days", "30", *force)  # fmt: skip
        (d / f"{name}.pem").write_bytes(cert)
        (d / f"{name}.identity.pem").write_bytes(key.read_bytes() + cert + ca.cert_pem)
        out[name] = d / f"{name}.pem"
        out[f"{name}.identity"] = d / f"{name}.identity.pem"
    return out


def _der(path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def test_the_encodings_are_told_apart(made: dict[str, Path]) -> None:
    assert _x509.ec_key_encoding(_der(made["explicit"])) == "explicit"
    assert _x509.ec_key_encoding(_der(made["compressed"])) == "compressed"
    assert _x509.ec_key_encoding(_der(made["named"])) is None


@pytest.mark.parametrize("kind", ["explicit", "compressed"])
@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_a_store_java_could_not_open_is_not_written(
    made: dict[str, Path], tmp_path: Path, kind: str, store_type: str
) -> None:
    """The twins: PEM output (not Java's to read) and the named curve are written."""
    trust = mtls.Truststore()
    trust.add("ca", x509.load_pem_x509_certificate(made["ca"].read_bytes()))
    trust.add("partner", x509.load_pem_x509_certificate(made[kind].read_bytes()))
    target = tmp_path / "trust.store"
    with pytest.raises(mtls.KeyEntryError, match="has a certificate Java cannot read") as info:
        trust.save(target, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    assert info.value.alias == "partner" and not target.exists()
    trust.save(tmp_path / "trust.pem", PASSWORD, store_type="PEM")
    named = mtls.Truststore()
    named.add("partner", x509.load_pem_x509_certificate(made["named"].read_bytes()))
    named.save(target, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    assert mtls.Truststore.load(target, PASSWORD).aliases == ("partner",)


def test_mtls_import_leaves_the_truststore_as_it_was(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mtls import printed "Certificate was added to keystore", exit 0, and keytool then
    could open the truststore no more (the gateway lost every anchor in it)."""
    store = tmp_path / "trust.jks"
    base = ["--keystore", str(store), "--password", PASSWORD]
    assert main(["import", *base, "--alias", "root", "--file", str(made["ca"])]) == 0
    before = store.read_bytes()
    capsys.readouterr()
    assert main(["import", *base, "--alias", "partner", "--file", str(made["compressed"])]) == 1
    err = capsys.readouterr().err
    assert "'partner' has a certificate Java cannot read" in err and "compressed point" in err
    assert store.read_bytes() == before
    assert main(["import", *base, "--alias", "named", "--file", str(made["named"])]) == 0


def test_an_identity_no_peer_takes_is_refused_when_its_context_is_built(
    made: dict[str, Path],
) -> None:
    """A leaf with explicit P-256 parameters under a CA: OpenSSL peers refuse it
    ("Certificate public key has explicit ECC parameters"), Java too; client_context
    and server_context took it without a word (h188). The twins: the compressed point
    (OpenSSL peers take it) and the named curve are built."""
    explicit = mtls.Keystore.load(made["explicit.identity"], None)
    for build in (mtls.client_context, mtls.server_context):
        with pytest.raises(mtls.KeyEntryError, match="explicit curve parameters"):
            build(explicit, mtls.Truststore.load(made["ca"]))
    for kind in ("compressed", "named"):
        identity = mtls.Keystore.load(made[f"{kind}.identity"], None)
        assert mtls.client_context(identity, mtls.Truststore.load(made["ca"])) is not None


@pytest.mark.parametrize(
    ("curve", "refused"),
    [("brainpoolP256t1", True), ("SM2", True), ("brainpoolP256r1", False), ("secp256k1", False)],
)
def test_a_curve_java_does_not_know_is_told_apart(
    tmp_path: Path, curve: str, refused: bool
) -> None:
    """Java's CurveDB knows SECG's, X9.62's and the brainpool r1 curves: a certificate
    on brainpoolP256t1 or SM2 fails to parse there ("Unknown named curve"), and was
    written into stores all the same (h189). keytool itself is asked, where there is
    one."""
    from tests._keytool import KEYTOOLS

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    try:
        _openssl("ecparam", "-name", curve, "-genkey", "-noout", "-out", key)
        _openssl("req", "-new", "-x509", "-key", key, "-subj", f"/CN={curve}", "-days", "2",
                 "-out", cert)  # fmt: skip
    except subprocess.CalledProcessError:
        pytest.skip(f"this openssl cannot make a {curve} certificate")
    assert (_x509.ec_key_encoding(_der(cert)) is not None) is refused
    for jdk in KEYTOOLS:
        printed = subprocess.run([jdk.keytool, "-printcert", "-file", str(cert)],
                                 capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert (printed.returncode != 0) is refused, (jdk.major, printed.stdout + printed.stderr)


def test_a_store_written_before_says_java_cannot_open_it(
    made: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stores mtls wrote before (and other tools write) load here, and said nothing:
    mtls check and mtls list passed a truststore keytool and WSO2 cannot open (h189).
    The twin: a store without such a certificate has no note."""
    from mtls import _writers

    trust = mtls.Truststore()
    trust.add("root", x509.load_pem_x509_certificate(made["ca"].read_bytes()))
    clean = tmp_path / "clean.jks"
    trust.save(clean, PASSWORD)
    trust.add("bad", x509.load_pem_x509_certificate(made["compressed"].read_bytes()))
    old = tmp_path / "old.jks"
    with monkeypatch.context() as patched:  # the writer as it was
        patched.setattr(_writers, "refuse_java_unreadable", lambda *args: None)
        trust.save(old, PASSWORD)
    (note,) = mtls.Truststore.load(old, PASSWORD)._java_check_notes()
    assert "certificate 'bad': its EC public key is a compressed point" in note
    assert "refuse the whole store" in note and "mtls delete --alias bad" in note
    assert mtls.Truststore.load(clean, PASSWORD)._java_check_notes() == ()
    # What the command line shows: mtls list, and mtls check's PROBLEMS column.
    assert main(["list", "--keystore", str(old), "--password", PASSWORD]) == 0
    assert "mtls delete --alias bad" in capsys.readouterr().err
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>a.test:443</servers>'
        f"<TrustStore><Location>{old}</Location><Type>JKS</Type><Password>{PASSWORD}"
        "</Password></TrustStore></profile></parameter>"
    )
    assert main(["check", str(xml)]) == 1  # the gateway would have no anchor: it fails
    checked = capsys.readouterr()
    assert "truststore: certificate 'bad': its EC public key" in checked.out
    assert (
        "WSO2 cannot load a store this file names, or an entry of it" in checked.err
        and str(old) in checked.err
    )
    assert main(["check", str(xml), "--mtls-only"]) == 0  # mtls itself reads it
