"""PKCS#7 certificate bundles (``.p7b``, ``.p7c``), what Windows and many CA portals
export a CA chain as: a truststore in DER or PEM, and a key's chain in a PEM file.

Before, a ``.p7b`` was "not a keystore or truststore" (DER) or "convert the PKCS#7
bundle with openssl pkcs7 -print_certs" (PEM).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

import mtls
from mtls.testing import CA, MTLSServer
from tests._helpers import whoami
from tests._keytool import JDK, run_keytool
from tests.cli.test_cli import PASSWORD, ok


@pytest.fixture(scope="module")
def chain() -> tuple[CA, CA]:
    root = CA(name="p7b root")
    return root, root.create_child_ca(name="p7b issuing")


@pytest.mark.parametrize("encoding", [Encoding.DER, Encoding.PEM], ids=["der", "pem"])
def test_a_p7b_is_a_truststore_and_verifies_its_servers(
    chain: tuple[CA, CA], encoding: Encoding, tmp_path: Path
) -> None:
    root, issuing = chain
    path = tmp_path / "chain.p7b"
    path.write_bytes(
        pkcs7.serialize_certificates([issuing.certificate, root.certificate], encoding)
    )
    assert mtls.detect_format(path.read_bytes()) == ("DER" if encoding == Encoding.DER else "PEM")
    trust = mtls.Truststore.load(path)
    assert set(trust.certificates.values()) == {issuing.certificate, root.certificate}
    client = root.issue_cert("client").keystore()
    with MTLSServer(issuing.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        assert whoami(mtls.client_context(client, trust), server.port)["client_cn"] == "client"
        # The twin: a bundle of another CA does not verify this server.
        other = tmp_path / "other.p7b"
        other.write_bytes(pkcs7.serialize_certificates([CA(name="other").certificate], encoding))
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(mtls.client_context(client, mtls.Truststore.load(other)), server.port)


def test_an_unsorted_bundle_from_openssl_is_read_without_a_warning(
    chain: tuple[CA, CA], tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl")
    root, issuing = chain
    files = []
    for name, ca in (("root", root), ("issuing", issuing)):
        (tmp_path / f"{name}.pem").write_bytes(ca.cert_pem)
        files += ["-certfile", str(tmp_path / f"{name}.pem")]
    for form in ("DER", "PEM"):
        out = tmp_path / f"bundle.{form.lower()}.p7b"
        subprocess.run([openssl, "crl2pkcs7", "-nocrl", *files, "-outform", form, "-out",
                        str(out)], check=True, capture_output=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # cryptography warns on the unsorted SET
            trust = mtls.Truststore.load(out)
        assert len(trust.certificates) == 2


def test_a_key_with_its_chain_in_a_pkcs7_block(chain: tuple[CA, CA], tmp_path: Path) -> None:
    """A key file and the CA's .p7b reply, concatenated: one key entry, its chain whole."""
    root, issuing = chain
    identity = issuing.issue_cert("gateway")
    path = tmp_path / "gateway.pem"
    path.write_bytes(
        identity.private_key_pem
        + pkcs7.serialize_certificates([root.certificate, *identity.chain], Encoding.PEM)
    )
    store = mtls.Keystore.load(path, None)
    assert [c.subject for c in store.certificate_chain(store.key_aliases[0])] == [
        identity.certificate.subject,
        issuing.certificate.subject,
        root.certificate.subject,
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n",
        # signedData's OID, then nothing a bundle needs.
        bytes.fromhex("300d06092a864886f70d010702a000"),
    ],
    ids=["pem", "der"],
)
def test_a_bundle_without_a_readable_certificate_is_a_format_error(data: bytes) -> None:
    with pytest.raises(mtls.KeystoreFormatError, match=r"PKCS#?7 (block|bundle)"):
        mtls.Truststore.from_bytes(data)


def test_a_bundle_with_a_certificate_of_an_unknown_version_is_a_format_error(
    chain: tuple[CA, CA],
) -> None:
    """Found by fuzzing replies: cryptography's bundle reader raised its InvalidVersion
    (not a ValueError) out of Truststore.load and install_reply."""
    root, _ = chain
    bundle = pkcs7.serialize_certificates([root.certificate], Encoding.DER)
    version_3 = bytes.fromhex("a003020102")
    assert bundle.count(version_3) == 1
    broken = bundle.replace(version_3, bytes.fromhex("a003020103"))  # X.509 "v4"
    with pytest.raises(mtls.KeystoreFormatError, match="PKCS#7 bundle"):
        mtls.Truststore.from_bytes(broken)
    store = mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
    with pytest.raises(mtls.KeystoreFormatError):
        store.install_reply("gw", broken)


def test_der_certificates_end_to_end_are_a_truststore(chain: tuple[CA, CA]) -> None:
    """What ``keytool -gencert`` and ``-exportcert`` of a chain write without ``-rfc``:
    DER certificates one after another, which Java's CertificateFactory reads. They were
    "not a keystore or truststore"."""
    root, issuing = chain
    ders = [ca.certificate.public_bytes(Encoding.DER) for ca in (issuing, root)]
    glued = b"".join(ders)
    assert mtls.detect_format(glued) == "DER"
    trust = mtls.Truststore.from_bytes(glued)
    assert sorted(trust.anchors_der) == sorted(ders)
    # Twins: anything after the certificates that is not one is not read as a store,
    # nor is a certificate glued to a CRL.
    # A line break after them (a file handled as text) is nothing, as for keytool.
    assert len(mtls.Truststore.from_bytes(glued + b"\r\n").anchors_der) == 2
    for tail in (b"\x00\x00", b"\nx", b"\x30\x03\x02\x01\x01", root.crl()):
        with pytest.raises(mtls.KeystoreFormatError):
            mtls.Truststore.from_bytes(glued + tail)


def test_a_p7b_converts_to_the_truststore_keytool_reads(
    chain: tuple[CA, CA], tmp_path: Path, jdk_keytool: JDK
) -> None:
    """A Windows .p7b is not a store Java opens: `mtls convert` makes the JKS
    truststore a WSO2 profile names, and keytool lists both anchors."""
    root, issuing = chain
    p7b = tmp_path / "chain.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([issuing.certificate, root.certificate],
                                                 Encoding.DER))  # fmt: skip
    out = tmp_path / "client-truststore.jks"
    done = ok("convert", "--keystore", p7b, "--to", "JKS", "--out", out)
    assert "2 trusted certificates" in done.stdout
    listed = run_keytool(jdk_keytool, "-list", "-keystore", str(out), "-storepass", PASSWORD)
    assert listed.count("trustedCertEntry") == 2
