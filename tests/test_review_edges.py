"""Edge cases an outside review found: PEM trust settings, text before PEM, PKCS#12 writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa

import mtls
from mtls.testing import CA

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pem") / "ca.pem"
    path.write_bytes(CA(name="pem CA", key_type="RSA").cert_pem)
    return path


def openssl(*args: str) -> bytes:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60).stdout


@needs_openssl
def test_trusted_certificate_without_settings_loads(ca_pem, tmp_path):
    out = tmp_path / "trusted.pem"
    openssl("x509", "-in", str(ca_pem), "-trustout", "-setalias", "my ca", "-out", str(out))
    assert b"BEGIN TRUSTED CERTIFICATE" in out.read_bytes()
    trust = mtls.Truststore.load(out)
    assert trust.anchors_der == mtls.Truststore.load(ca_pem).anchors_der


@needs_openssl
@pytest.mark.parametrize(
    "settings",
    [("-addtrust", "clientAuth"), ("-addtrust", "serverAuth"), ("-addreject", "serverAuth")],
)
def test_trusted_certificate_with_trust_settings_is_refused_not_widened(ca_pem, tmp_path, settings):
    """OpenSSL narrows trust by these settings (``-addtrust clientAuth`` means: not for
    servers); mtls cannot apply them, so it refuses the block instead of ignoring them."""
    out = tmp_path / "settings.pem"
    openssl("x509", "-in", str(ca_pem), *settings, "-trustout", "-out", str(out))
    with pytest.raises(mtls.KeystoreFormatError, match="trust or reject settings"):
        mtls.Truststore.load(out)


@needs_openssl
def test_openssl_text_output_before_the_pem_block(ca_pem, tmp_path):
    big = CA(name="big", key_type="RSA")
    rsa4096 = tmp_path / "ca4096.pem"
    rsa4096.write_bytes(big.cert_pem)
    text = tmp_path / "text.pem"
    openssl("x509", "-in", str(rsa4096), "-text", "-out", str(text))
    assert text.read_bytes().index(b"-----BEGIN") > 1000
    assert len(mtls.Truststore.load(text)) == 1


def test_pkcs12_needs_a_password_and_says_so(tmp_path):
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    with pytest.raises(ValueError, match="needs a password"):
        ks.save(tmp_path / "k.p12", "", store_type="PKCS12")
    with pytest.raises(ValueError, match="needs a password"):
        ks.truststore().save(tmp_path / "t.p12", "", store_type="PKCS12")
    assert not list(tmp_path.iterdir())


def test_dsa_keys_write_as_pkcs12_and_read_back(tmp_path):
    import datetime as dt

    key = dsa.generate_private_key(2048)
    name = x509.Name.from_rfc4514_string("CN=dsa")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    ks = mtls.Keystore()
    ks.add_key("d", key, [cert])
    path = tmp_path / "d.p12"
    ks.save(path, "changeit", store_type="PKCS12")
    again = mtls.Keystore.load(path, "changeit")
    assert again.certificate("d") == cert


def test_ipv6_server_without_brackets_gets_a_useful_hint():
    with pytest.raises(mtls.ProfileConfigError, match=r"\[::1\]:8443"):
        mtls.SSLProfile(servers=("::1:8443",))


def test_mtls_list_reads_text_before_pem(tmp_path):
    path = tmp_path / "noted.pem"
    path.write_bytes(b"Certificate:\n    some notes\n" * 200 + CA(name="n").cert_pem)
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "list", "--keystore", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trustedCertEntry" in done.stdout
