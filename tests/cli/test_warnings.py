"""Certificates cryptography warns about: one ``mtls: warning:`` line each, never a raw warning.

Real stores hold them (WSO2's shipped truststores and Java's cacerts have roots with
serial number 0); a name attribute outside its RFC 5280 length (``C=USA``) is the
other kind cryptography warns about. The library turns each into one log line on
logger ``mtls`` per certificate; the CLI prints it as ``mtls: warning:``.
The ``python -m mtls`` runs use ``-W always`` (every warning shown) and ``-W error``
(any warning escaping would be an exception).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from mtls import Keystore, Truststore, _x509
from mtls.testing import CA, MTLSServer

NOW = dt.datetime.now(dt.UTC)


def _self_signed(name: x509.Name, serial: int = 7) -> bytes:
    # Built by hand, not with mtls.testing.CA: these certificates are the malformed ones
    # (serial 0, odd names) real truststores hold, which the CA never issues.
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _three_letter_country() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # we mean to build it
        country = x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False)
    return _self_signed(x509.Name([country, x509.NameAttribute(NameOID.COMMON_NAME, "usa")]))


def _serial_zero(openssl: str, d: Path, *, aki_serial: bool = False) -> bytes:
    # cryptography will not build serial 0; openssl does, as old roots have it.
    # aki_serial: the authority key identifier names the issuer's serial (0) too, as
    # Bouncy Castle's test certificates do; cryptography warns again reading it.
    out = d / "zero.pem"
    aki = ["-addext", "authorityKeyIdentifier=keyid:always,issuer:always"] if aki_serial else []
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(d / "zero.key"), "-out", str(out), "-subj", "/CN=zero root",
            "-set_serial", "0", "-days", "30", *aki,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return out.read_bytes()


def mtls_run(*args: str | Path, flag: str = "always") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLS_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-W", flag, "-m", "mtls", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=120,
        check=False,
    )


def assert_no_raw_warning(stderr: str) -> None:
    for word in ("Warning:", "site-packages", ".py:", "Traceback"):
        assert word not in stderr, stderr


@pytest.mark.openssl
@pytest.mark.parametrize("flag", ["always", "error"])
def test_list_prints_one_warning_line_per_odd_certificate(openssl_bin, tmp_path, flag):
    store = tmp_path / "odd.pem"
    store.write_bytes(_serial_zero(openssl_bin, tmp_path) + _three_letter_country())
    run = mtls_run("list", "--keystore", store, flag=flag)
    assert run.returncode == 0, run.stderr
    assert "serial   0" in run.stdout and "C=USA" in run.stdout
    assert_no_raw_warning(run.stderr)
    lines = run.stderr.splitlines()
    assert len(lines) == 2, lines
    assert all(line.startswith("mtls: warning: certificate ") for line in lines)
    assert "CN=zero root" in lines[0] and "serial number is not positive" in lines[0]
    assert "C=USA" in lines[1] and "name attribute" in lines[1]


def test_an_ordinary_store_prints_no_warning(tmp_path):
    store = CA(name="plain").write_truststore(tmp_path / "plain.pem", "unused", store_type="PEM")
    run = mtls_run("list", "--keystore", store)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


def test_the_library_logs_once_per_certificate_and_never_warns(tmp_path, caplog):
    # pytest turns warnings into errors here (filterwarnings = error): reading the
    # store and its certificates twice must raise nothing and log one line.
    pem = tmp_path / "usa.pem"
    pem.write_bytes(_three_letter_country())
    _x509._REPORTED.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        for _ in range(2):
            certificates = Truststore.load(pem).certificates
            (cert,) = certificates.values()
            assert "C=USA" in _x509.subject_text(cert)
    records = [r for r in caplog.records if "name attribute" in r.getMessage()]
    assert len(records) == 1
    assert records[0].name == "mtls"


@pytest.mark.openssl
def test_serial_number_reads_without_a_warning(openssl_bin, tmp_path):
    pem = tmp_path / "zero.pem"
    pem.write_bytes(_serial_zero(openssl_bin, tmp_path))
    (cert,) = Truststore.load(pem).certificates.values()
    assert _x509.serial_number(cert) == 0
    with pytest.warns(CryptographyDeprecationWarning):  # the twin: cryptography's accessor
        assert cert.serial_number == 0


@pytest.mark.fixtures
def test_wso2_shipped_stores_list_check_probe(wso2_fixtures, tmp_path):
    """The stores WSO2 ships hold six roots with serial number 0."""
    home = tmp_path / "home"
    security = home / "repository" / "resources" / "security"
    security.mkdir(parents=True)
    for name in ("wso2carbon.jks", "client-truststore.jks"):
        (security / name).symlink_to(wso2_fixtures / name)
    run = mtls_run(
        "list", "--keystore", wso2_fixtures / "client-truststore.jks", "--password", "wso2carbon"
    )
    assert run.returncode == 0, run.stderr
    assert_no_raw_warning(run.stderr)
    lines = run.stderr.splitlines()
    assert len(lines) == len(set(lines)) == 6, lines
    assert all("serial number is not positive" in line for line in lines)
    assert any("Go Daddy Root Certificate Authority - G2" in line for line in lines)

    run = mtls_run("check", wso2_fixtures / "sslprofiles.xml", "--base-dir", home, flag="error")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    notes = [line for line in run.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 6 and all("serial number is not positive" in n for n in notes)

    identity = Keystore.load(wso2_fixtures / "wso2carbon.jks", "wso2carbon")
    trust = Truststore.load(wso2_fixtures / "client-truststore.jks", "wso2carbon")
    with MTLSServer(identity, client_ca=trust) as server:
        run = mtls_run(
            "probe", f"https://localhost:{server.port}/", "--profiles",
            wso2_fixtures / "sslprofiles.xml", "--base-dir", home, flag="error",
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    assert "OK: TLS with localhost" in run.stdout


@pytest.mark.openssl
def test_import_of_a_serial_zero_pem_warns_once_and_its_twin_fails_cleanly(openssl_bin, tmp_path):
    pem = tmp_path / "zero.pem"
    pem.write_bytes(_serial_zero(openssl_bin, tmp_path))
    store = tmp_path / "trust.jks"
    args = ("import", "--keystore", store, "--password", "import-Pa55", "--alias")
    run = mtls_run(*args, "zero", "--file", pem, flag="error")
    assert run.returncode == 0, run.stderr
    assert "Certificate was added to keystore" in run.stdout
    assert_no_raw_warning(run.stderr)
    assert run.stderr.count("mtls: warning: certificate CN=zero root") == 1
    # A PEM block that is no certificate: one error line, no traceback.
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    run = mtls_run(*args, "bad", "--file", bad)
    assert run.returncode == 1
    # Said why (the block is no DER element), where it said only "not a certificate".
    assert run.stderr == f"mtls: error: {bad}: certificate 1 is not valid PEM: fix the file\n"


@pytest.mark.openssl
@pytest.mark.parametrize("flag", ["always", "error"])
def test_a_key_entry_with_serial_zero_lists_with_one_warning_line(openssl_bin, tmp_path, flag):
    """A key entry's certificate (Bouncy Castle's PKCS#12 test files have them): its
    extensions were first read unguarded for the listing, and cryptography's warning
    came out raw (under -W error, as an exception)."""
    _serial_zero(openssl_bin, tmp_path, aki_serial=True)  # zero.pem and zero.key
    store = tmp_path / "zero.p12"
    subprocess.run(
        [
            openssl_bin, "pkcs12", "-export", "-in", str(tmp_path / "zero.pem"),
            "-inkey", str(tmp_path / "zero.key"), "-name", "zero", "-out", str(store),
            "-passout", "pass:changeit",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    run = mtls_run("list", "--keystore", store, "--password", "changeit", flag=flag)
    assert run.returncode == 0, run.stderr
    assert "serial   0" in run.stdout
    assert_no_raw_warning(run.stderr)
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "serial number is not positive" in lines[0], lines


@pytest.mark.openssl
def test_extensions_read_without_a_warning(openssl_bin, tmp_path):
    pem = tmp_path / "zero.pem"
    pem.write_bytes(_serial_zero(openssl_bin, tmp_path, aki_serial=True))
    (cert,) = Truststore.load(pem).certificates.values()
    # A new object (parsed with its warning logged): its first read of its extensions
    # warns again, which pytest (filterwarnings = error) would raise here.
    fresh = _x509.load_cert(cert.public_bytes(serialization.Encoding.DER))
    assert _x509.extension(fresh, x509.BasicConstraints).ca is True
    assert _x509.extension(fresh, x509.SubjectAlternativeName) is None
    with pytest.warns(CryptographyDeprecationWarning):  # the twin: cryptography's accessor
        assert _x509.load_cert(cert.public_bytes(serialization.Encoding.DER)).extensions


@pytest.mark.openssl
def test_the_revocation_checks_anchor_reading_raises_no_warning(openssl_bin, tmp_path):
    """The per-handshake revocation check reads each anchor's basic constraints; a
    serial-0 root with its serial in the authority key identifier made cryptography
    warn there (an exception under -W error, as pytest runs here)."""
    from mtls import _revocation

    pem = tmp_path / "zero.pem"
    pem.write_bytes(_serial_zero(openssl_bin, tmp_path, aki_serial=True))
    (cert,) = Truststore.load(pem).certificates.values()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert _revocation._issued_anchor(der, [(cert, der)]) is None  # self-issued: not asked
