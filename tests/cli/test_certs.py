"""``mtls gencert``, ``printcert``, ``printcertreq`` and ``printcrl``: keytool's
``-gencert``, ``-printcert``, ``-printcertreq`` and ``-printcrl``, checked against the
JDK's keytool (it makes the requests, installs the replies and lists the result) and a
real server for ``printcert --sslserver``.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

import mtls
from mtls.testing import CA, MTLSServer
from tests._keytool import JDK, run_keytool
from tests.cli.test_cli import PASSWORD, fails, mtls_run, ok


def _keytool_ca(
    keytool: JDK, directory: Path, *, ca_ext: bool = True, ku: str | None = None
) -> tuple[str, ...]:
    store = ("-keystore", str(directory / "ca.p12"), "-storetype", "PKCS12",
             "-storepass", PASSWORD)  # fmt: skip
    exts = (*(("-ext", "bc:c") if ca_ext else ()), *(("-ext", f"ku:c={ku}") if ku else ()))
    run_keytool(keytool, "-genkeypair", *store, "-alias", "ca", "-keyalg", "EC",
                "-dname", "CN=gencert CA", *exts)  # fmt: skip
    return store


def test_keytool_requests_are_signed_and_keytool_installs_the_reply(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    ca_store = _keytool_ca(jdk_keytool, tmp_path)
    requester = ("-keystore", str(tmp_path / "gw.jks"), "-storetype", "JKS",
                 "-storepass", PASSWORD)  # fmt: skip
    run_keytool(jdk_keytool, "-genkeypair", *requester, "-alias", "gw", "-keyalg", "RSA",
                "-keysize", "2048", "-dname", "CN=gw.example")  # fmt: skip
    csr = tmp_path / "gw.csr"
    run_keytool(jdk_keytool, "-certreq", *requester, "-alias", "gw", "-file", str(csr),
                "-ext", "san=dns:gw.example")  # fmt: skip
    reply = tmp_path / "gw.der"
    # keytool's spelling; DER by default, as keytool writes it.
    made = ok("-gencert", "-keystore", tmp_path / "ca.p12", "-alias", "ca", "-infile", csr,
              "-outfile", reply, "-validity", "30")  # fmt: skip
    assert "Certificate issued" in made.stdout and "DNS:gw.example" in made.stdout
    leaf = x509.load_der_x509_certificate(reply.read_bytes())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == _dt.timedelta(days=30)
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_text(run_keytool(jdk_keytool, "-exportcert", *ca_store, "-alias", "ca", "-rfc"))
    run_keytool(jdk_keytool, "-importcert", *requester, "-alias", "root", "-file", str(ca_pem),
                "-noprompt")  # fmt: skip
    run_keytool(jdk_keytool, "-importcert", *requester, "-alias", "gw", "-file", str(reply))
    listed = run_keytool(jdk_keytool, "-list", "-v", *requester, "-alias", "gw")
    assert "Certificate chain length: 2" in listed and "Issuer: CN=gencert CA" in listed
    assert "DNSName: gw.example" in listed
    # Twin: a request altered after signing is refused, and nothing is written.
    altered = tmp_path / "altered.csr"
    data = bytearray(x509.load_pem_x509_csr(csr.read_bytes()).public_bytes(Encoding.DER))
    data[-3] ^= 0x01
    altered.write_bytes(bytes(data))
    out = tmp_path / "nothing.der"
    refused = fails(1, "gencert", "--keystore", tmp_path / "ca.p12", "--infile", altered,
                    "--outfile", out)  # fmt: skip
    assert "signature does not verify" in refused.stderr and not out.exists()


def test_the_reply_with_its_intermediate_installs_with_mtls(tmp_path: Path) -> None:
    root = CA(name="gencert root")
    intermediate = root.create_child_ca(name="gencert intermediate")
    ca = mtls.Keystore()
    ca.add_key("issuing", intermediate.private_key, [intermediate.certificate, root.certificate])
    ca.save(tmp_path / "ca.p12", PASSWORD)
    gw = mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
    gw.save(tmp_path / "gw.p12", PASSWORD)
    ok("certreq", "--keystore", tmp_path / "gw.p12", "--file", tmp_path / "gw.csr")
    pem = ok("gencert", "--keystore", tmp_path / "ca.p12", "--infile", tmp_path / "gw.csr",
             "--rfc", "--ext", "eku=clientAuth")  # fmt: skip
    # The certificate, then the intermediate; the root (self-signed) left out, as keytool.
    assert pem.stdout.count("BEGIN CERTIFICATE") == 2
    (tmp_path / "reply.pem").write_text(pem.stdout)
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(root.cert_pem)
    done = ok("import", "--keystore", tmp_path / "gw.p12", "--alias", "gw", "--file",
              tmp_path / "reply.pem", "--ca", root_pem)  # fmt: skip
    assert "chain of 3" in done.stdout
    # Twin: DER to a terminal is refused; here, with no terminal, DER goes to stdout.
    raw = subprocess.run(
        [sys.executable, "-m", "mtls", "gencert", "--keystore", str(tmp_path / "ca.p12"),
         "--infile", str(tmp_path / "gw.csr"), "--password", PASSWORD],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert (
        mtls.Truststore.from_bytes(raw.stdout).anchors_der
        == [
            c.public_bytes(Encoding.DER)
            for c in (
                x509.load_pem_x509_certificates(pem.stdout.encode())[0],
                intermediate.certificate,
            )
        ]
        or raw.stdout.count(intermediate.certificate.public_bytes(Encoding.DER)) == 1
    )


def test_an_issuer_that_is_no_ca_is_warned_about(tmp_path: Path, jdk_keytool: JDK) -> None:
    _keytool_ca(jdk_keytool, tmp_path, ca_ext=False)
    gw = mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
    gw.save(tmp_path / "gw.p12", PASSWORD)
    ok("certreq", "--keystore", tmp_path / "gw.p12", "--file", tmp_path / "gw.csr")
    run = mtls_run("gencert", "--keystore", tmp_path / "ca.p12", "--infile",
                   tmp_path / "gw.csr", "--outfile", tmp_path / "gw.der")  # fmt: skip
    assert run.code == 0, run.stderr
    assert "is not a CA certificate" in run.stderr
    assert "keyCertSign" not in run.stderr  # no key usage at all: nothing to say of it
    # A CA whose key usage leaves out keyCertSign: every peer refuses what it signs
    # (h128: Go, GnuTLS and OpenSSL), and gencert said nothing of it.
    (tmp_path / "ca.p12").unlink()
    _keytool_ca(jdk_keytool, tmp_path, ku="digitalSignature")
    run = mtls_run("gencert", "--keystore", tmp_path / "ca.p12", "--infile",
                   tmp_path / "gw.csr", "--outfile", tmp_path / "gw.der")  # fmt: skip
    assert run.code == 0, run.stderr
    assert "has a key usage without keyCertSign" in run.stderr
    assert "is not a CA certificate" not in run.stderr
    # The twins: with bc:c it is a CA, and no warning; keyCertSign in its usage too.
    for ku in (None, "keyCertSign,cRLSign"):
        (tmp_path / "ca.p12").unlink()
        _keytool_ca(jdk_keytool, tmp_path, ku=ku)
        ok("gencert", "--keystore", tmp_path / "ca.p12", "--infile", tmp_path / "gw.csr",
           "--outfile", tmp_path / "gw.der", "--validity", "1")  # fmt: skip


def test_gencert_usage_errors(tmp_path: Path) -> None:
    ca = CA(name="usage CA")
    store = mtls.Keystore()
    store.add_key("ca", ca.private_key, [ca.certificate])
    store.save(tmp_path / "ca.p12", PASSWORD)
    csr = tmp_path / "gw.csr"
    csr.write_bytes(
        mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
        .certificate_request()
        .public_bytes(Encoding.PEM)
    )
    wrong = fails(2, "gencert", "--keystore", tmp_path / "ca.p12", "--infile", csr,
                  "-ext", "aia=ocsp:uri:http://x")  # fmt: skip
    assert "make other extensions with keytool" in wrong.stderr
    fails(2, "gencert", "--keystore", tmp_path / "ca.p12", "--infile", csr, "--validity", "0")
    missing = fails(1, "gencert", "--keystore", tmp_path / "ca.p12", "--infile",
                    tmp_path / "absent.csr")  # fmt: skip
    assert "absent.csr" in missing.stderr
    cert = fails(1, "gencert", "--keystore", tmp_path / "ca.p12", "--infile",
                 _write(tmp_path / "c.pem", ca.cert_pem))  # fmt: skip
    assert "not a certificate request" in cert.stderr
    # No request at all (stdin is /dev/null here): said, not a traceback.
    empty = fails(1, "gencert", "--keystore", tmp_path / "ca.p12")
    assert "standard input" in empty.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def chain() -> tuple[CA, CA]:
    root = CA(name="printed root")
    return root, root.create_child_ca(name="printed intermediate")


@pytest.mark.parametrize("form", ["pem", "der-glued", "p7b", "stdin"])
def test_printcert_reads_every_certificate_file(
    chain: tuple[CA, CA], tmp_path: Path, form: str
) -> None:
    root, intermediate = chain
    certs = [intermediate.certificate, root.certificate]
    data = {
        "pem": b"".join(c.public_bytes(Encoding.PEM) for c in certs),
        "stdin": b"".join(c.public_bytes(Encoding.PEM) for c in certs),
        "der-glued": b"".join(c.public_bytes(Encoding.DER) for c in certs),
        "p7b": pkcs7.serialize_certificates(certs, Encoding.DER),
    }[form]
    if form == "stdin":
        done = subprocess.run(
            [sys.executable, "-m", "mtls", "-printcert", "--json"], input=data,
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        document = json.loads(done.stdout)
        assert document["source"] == "standard input"
    else:
        path = _write(tmp_path / f"chain.{form}", data)
        document = json.loads(ok("printcert", "--file", path, "--json").stdout)
        shown = ok("-printcert", "-file", path)
        assert "Certificate[2]:" in shown.stdout and "O=mtls.testing (self-signed)" in shown.stdout
    subjects = [c["subject"] for c in document["certificates"]]
    if form == "p7b":  # a SET: cryptography writes it sorted, as DER wants
        subjects.reverse()
    assert subjects == [
        "CN=printed intermediate,O=mtls.testing",
        "CN=printed root,O=mtls.testing",
    ]


def test_printcert_rfc_round_trips_and_says_what_other_files_are(
    chain: tuple[CA, CA], tmp_path: Path
) -> None:
    root, _ = chain
    der = _write(tmp_path / "root.der", root.certificate.public_bytes(Encoding.DER))
    pem = ok("printcert", "--file", der, "--rfc").stdout
    assert x509.load_pem_x509_certificate(pem.encode()) == root.certificate
    crl = _write(tmp_path / "root.crl", root.crl())
    assert "mtls printcrl" in fails(1, "printcert", "--file", crl).stderr
    store = tmp_path / "t.p12"
    root.truststore().save(store, PASSWORD)
    assert "mtls list" in fails(1, "printcert", "--file", store).stderr
    junk = _write(tmp_path / "junk.bin", b"not a certificate")
    assert "no certificate found" in fails(1, "printcert", "--file", junk).stderr
    # Found by a review: two certificates and a stray byte said "no certificate found";
    # a certificate after a comment naming a request's BEGIN line was taken for a request.
    glued = _write(tmp_path / "glued.der", der.read_bytes() * 2 + b"\x00")
    said = fails(1, "printcert", "--file", glued).stderr
    assert "2 DER certificates, then bytes that are not one" in said
    noted = _write(
        tmp_path / "noted.pem",
        b"# made from -----BEGIN CERTIFICATE REQUEST----- by the CA\n" + root.cert_pem,
    )
    assert "Certificate[1]:" in ok("printcert", "--file", noted).stdout


def test_printcert_sslserver_shows_what_the_server_sends(chain: tuple[CA, CA]) -> None:
    root, intermediate = chain
    identity = intermediate.issue_cert("localhost", "127.0.0.1")
    with MTLSServer(identity, client_ca=root) as server:
        shown = ok("printcert", "--sslserver", f"127.0.0.1:{server.port}", "--json")
    subjects = [c["subject"] for c in json.loads(shown.stdout)["certificates"]]
    assert subjects[0].startswith("CN=localhost,")
    assert "CN=printed intermediate,O=mtls.testing" in subjects
    # A TLS 1.2 server that demands a client certificate ends the handshake (none is
    # sent), after its chain: shown all the same, as keytool shows it (it was "the TLS
    # handshake failed").
    with MTLSServer(identity, client_ca=root, maximum_version=ssl.TLSVersion.TLSv1_2) as tls12:
        shown = ok("printcert", "--sslserver", f"127.0.0.1:{tls12.port}", "--json")
    assert json.loads(shown.stdout)["certificates"][0]["subject"].startswith("CN=localhost,")
    # The twin: nothing listens there any more.
    refused = fails(1, "printcert", "--sslserver", f"127.0.0.1:{server.port}", "--timeout", "2")
    assert "127.0.0.1" in refused.stderr
    both = fails(2, "printcert", "--sslserver", "127.0.0.1:1", "--file", "x.pem")
    assert "not both" in both.stderr
    assert "port 0" in fails(2, "printcert", "--sslserver", "localhost:0").stderr
    assert "in brackets" in fails(2, "printcert", "--sslserver", "::1:44316").stderr


def test_printcertreq_checks_the_signature(tmp_path: Path) -> None:
    gw = mtls.Keystore.generate("gw", "CN=gw", key_type="EC", san=["DNS:gw.example"])
    request = gw.certificate_request().public_bytes(Encoding.PEM)
    good = _write(tmp_path / "gw.csr", request)
    shown = ok("-printcertreq", "-file", good)
    assert "CN=gw" in shown.stdout and "DNS:gw.example" in shown.stdout
    assert "verified" in shown.stdout and "EC secp256r1" in shown.stdout
    document = json.loads(ok("printcertreq", "--file", good, "--json").stdout)
    assert document["request"]["san"] == ["DNS:gw.example"]
    der = bytearray(x509.load_pem_x509_csr(request).public_bytes(Encoding.DER))
    der[-3] ^= 0x01
    bad = fails(1, "printcertreq", "--file", _write(tmp_path / "bad.csr", bytes(der)))
    assert "signature does not verify" in bad.stderr


def test_printcrl_lists_revocations_and_fails_when_stale(
    chain: tuple[CA, CA], tmp_path: Path
) -> None:
    root, _ = chain
    ca = CA(name="crl printer")
    revoked = ca.issue_cert("revoked.example")
    ca.revoke(revoked)
    current = _write(tmp_path / "current.crl", ca.crl(encoding="PEM"))
    shown = ok("-printcrl", "-file", current)
    serial = format(revoked.certificate.serial_number, "x")
    assert "CN=crl printer" in shown.stdout and serial in shown.stdout
    document = json.loads(ok("printcrl", "--file", current, "--json").stdout)
    assert [entry["serial"] for entry in document["crls"][0]["revoked"]] == [serial]
    assert document["crls"][0]["expired"] is False
    # The twin: a list past its next update exits 1, as a profile refuses it.
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)
    stale = _write(tmp_path / "stale.crl", ca.crl(next_update=past))
    run = mtls_run("printcrl", "--file", stale)
    assert run.code == 1 and "EXPIRED" in run.stdout
    assert "mtls: error: the CRL of" in run.stderr and "past its next update" in run.stderr
    cert = _write(tmp_path / "c.pem", root.cert_pem)
    fails(1, "printcrl", "--file", cert)


def _crl_builder(ca: CA) -> x509.CertificateRevocationListBuilder:
    """An empty list from ``ca``, current for a day, to add extensions to and sign."""
    now = _dt.datetime.now(_dt.UTC)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + _dt.timedelta(days=1))
    )


def test_printcrl_refuses_a_list_openssl_would_not_use_without_a_truststore(
    tmp_path: Path,
) -> None:
    """A critical extension OpenSSL does not process makes every handshake fail: said
    without --truststore too (a review found it printed and exit 0)."""
    from cryptography.hazmat.primitives import hashes

    ca = CA(name="odd CRL")
    builder = _crl_builder(ca)
    plain = builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    odd = builder.add_extension(
        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
        critical=True,
    ).sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    odd_file = _write(tmp_path / "odd.crl", odd.public_bytes(Encoding.DER))
    said = fails(1, "printcrl", "--file", odd_file)
    assert "OpenSSL does not process" in said.stderr
    document = json.loads(mtls_run("printcrl", "--file", odd_file, "--json").stdout)
    assert document["checked"]["truststore"] is None
    assert "OpenSSL does not process" in document["checked"]["error"]
    ok("printcrl", "--file", _write(tmp_path / "plain.crl", plain.public_bytes(Encoding.DER)))


def test_printcrl_checks_the_list_as_a_profile_would(tmp_path: Path) -> None:
    ca = CA(name="crl checker")
    ca.revoke(ca.issue_cert("revoked.example"))
    crl = _write(tmp_path / "ca.crl", ca.crl())
    ca.truststore().save(tmp_path / "trust.jks", PASSWORD)
    CA(name="a stranger").truststore().save(tmp_path / "other.jks", PASSWORD)
    plain = ok("printcrl", "--file", crl)
    assert "signature not checked" in plain.stdout
    good = ok("printcrl", "--file", crl, "--truststore", tmp_path / "trust.jks",
              "--truststore-password", PASSWORD)  # fmt: skip
    assert "signed by one of its certificates" in good.stdout
    # The twin: a truststore without the CA refuses it, as a profile's crls= would.
    bad = fails(1, "printcrl", "--file", crl, "--truststore", tmp_path / "other.jks",
                "--truststore-password", PASSWORD)  # fmt: skip
    assert "not signed by any certificate of the truststore" in bad.stderr
    document = json.loads(
        mtls_run("printcrl", "--file", crl, "--truststore", tmp_path / "other.jks", "--json").stdout
    )
    assert "not signed" in document["checked"]["error"]
    wrong = fails(1, "printcrl", "--file", crl, "--truststore", tmp_path / "trust.jks",
                  "--truststore-password", "not-it")  # fmt: skip
    assert "password" in wrong.stderr


def test_a_request_printed_is_not_held_to_what_signing_needs(tmp_path: Path) -> None:
    """An RSASSA-PSS request prints (keytool prints it); only gencert refuses it, as its
    key would go into the certificate in other bytes (a review found printcertreq
    refusing it with gencert's advice)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl")
    csr = tmp_path / "pss.csr"
    subprocess.run(
        [openssl, "req", "-new", "-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048",
         "-nodes", "-keyout", str(tmp_path / "k.pem"), "-subj", "/CN=pss", "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    shown = ok("printcertreq", "--file", csr)
    assert "CN=pss" in shown.stdout and "RSASSA-PSS 2048" in shown.stdout
    ca = CA(name="pss CA")
    store = mtls.Keystore()
    store.add_key("ca", ca.private_key, [ca.certificate])
    store.save(tmp_path / "ca.p12", PASSWORD)
    refused = fails(1, "gencert", "--keystore", tmp_path / "ca.p12", "--infile", csr,
                    "--outfile", tmp_path / "out.der")  # fmt: skip
    assert "another form" in refused.stderr


@pytest.mark.parametrize("command", ["-gencert", "-printcert", "-printcertreq", "-printcrl"])
def test_keytools_spellings_are_no_longer_missing_commands(command: str) -> None:
    run = mtls_run(command, "--help")
    assert run.code == 0 and "usage: mtls" in run.stdout


def test_pem_text_inside_binary_files_is_never_taken_for_their_certificate(
    tmp_path: Path,
) -> None:
    """A certificate, a CRL or a keystore may carry PEM text inside (an extension's
    value): it is their content, not the file's certificate. A second review found a DER
    certificate trusted as the certificate in its extension by mtls import, and
    printcert printing it out of a PKCS#12, a CRL or a JKS."""
    from cryptography.hazmat.primitives import hashes

    ca = CA(name="embedding CA")
    evil = CA(name="EVIL").certificate.public_bytes(Encoding.PEM)
    carrier = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"), evil)
    now = _dt.datetime.now(_dt.UTC)
    legit = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Legit"))
        .issuer_name(ca.certificate.subject)
        .public_key(ca.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(carrier, critical=False)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    # Also with a line break after it (a file handled as text): it fell through to the
    # PEM reader, in printcert, import and Truststore.load (a third review found it).
    for tail in (b"", b"\n", b"\r\n"):
        der = _write(tmp_path / "legit.der", legit.public_bytes(Encoding.DER) + tail)
        shown = ok("printcert", "--file", der)
        assert "CN=Legit" in shown.stdout and "EVIL" not in shown.stdout
        store = tmp_path / f"t{len(tail)}.p12"
        done = ok("import", "--file", der, "--alias", "partner", "--keystore", store)
        assert "CN=Legit" in done.stdout and "EVIL" not in done.stdout
        assert [c.subject for c in mtls.Truststore.load(der).certificates.values()] == [
            legit.subject
        ]
    # What follows the certificate and is not one is refused, never read as PEM.
    appended = _write(tmp_path / "appended.der", legit.public_bytes(Encoding.DER) + evil)
    assert "then bytes that are not one" in fails(1, "printcert", "--file", appended).stderr
    with pytest.raises(mtls.KeystoreFormatError, match="then bytes that are not one"):
        mtls.Truststore.load(appended)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + _dt.timedelta(days=1))
        .add_extension(carrier, critical=False)
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    for tail in (b"", b"\n"):  # a line break after a CRL: still the CRL, not its text
        crl_file = _write(tmp_path / "c.crl", crl.public_bytes(Encoding.DER) + tail)
        assert "mtls printcrl" in fails(1, "printcert", "--file", crl_file).stderr
        with pytest.raises(mtls.KeystoreFormatError, match="revocation list"):
            mtls.Truststore.load(crl_file)
    store = mtls.Truststore()
    store.add("legit", legit)
    for kind in ("PKCS12", "JKS"):
        path = tmp_path / f"trust.{kind.lower()}"
        store.save(path, PASSWORD, store_type=kind)  # type: ignore[arg-type]
        said = fails(1, "printcert", "--file", path).stderr
        assert f"a {kind} keystore" in said and "EVIL" not in said


def test_a_chain_with_a_cut_or_mangled_block_is_refused_never_read_short(
    chain: tuple[CA, CA], tmp_path: Path
) -> None:
    """A chain whose last block lost its END line, or whose BEGIN line lost a dash, was
    read without that certificate by printcert, import or Truststore.load."""
    root, intermediate = chain
    whole = intermediate.cert_pem + root.cert_pem
    damaged = {
        "cut": whole[:-30],
        "mangled": intermediate.cert_pem + root.cert_pem.replace(b"-----BEGIN", b"----BEGIN"),
        "typo": intermediate.cert_pem
        + root.cert_pem.replace(b"CERTIFICATE-----\n", b"CERTIFICAT-----\n", 1),
    }
    for name, data in damaged.items():
        path = _write(tmp_path / f"{name}.pem", data)
        assert "no matching END line" in fails(1, "printcert", "--file", path).stderr, name
        with pytest.raises(mtls.KeystoreFormatError, match="no matching END line"):
            mtls.Truststore.load(path)
    damaged_end = _write(tmp_path / "twice.pem", whole + b"-----END CERTIFICATE-----\n")
    with pytest.raises(mtls.KeystoreFormatError, match="no matching END line"):
        mtls.Truststore.load(damaged_end)  # an END line that ends no block
    # The twins: the whole chain reads, and so does one whose comment mentions an END
    # line mid-line (a regression sweep found it refused by a first version).
    whole_path = _write(tmp_path / "whole.pem", whole)
    assert "Certificate[2]:" in ok("printcert", "--file", whole_path).stdout
    noted = _write(
        tmp_path / "noted.pem", whole + b"# the end marker is -----END CERTIFICATE-----\n"
    )
    assert len(mtls.Truststore.load(noted).anchors_der) == 2


def test_a_server_that_resets_after_its_chain_still_shows_it(tmp_path: Path) -> None:
    """Some TLS 1.2 servers that demand a client certificate reset the connection
    instead of sending their alert; their chain came already (keytool shows it)."""
    import socket
    import struct
    import threading

    ca = CA(name="reset CA")
    identity = ca.issue_cert("localhost", "127.0.0.1")
    context = mtls.server_context(identity.keystore(), CA(name="nobody").truststore())
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        conn.sendall(outgoing.read())
                    data = conn.recv(65536)
                    if not data:
                        break
                    incoming.write(data)
        except ssl.SSLError:
            pass  # its alert stays unsent: the reset below is all the client sees
        conn.close()

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        shown = ok("printcert", "--sslserver", f"127.0.0.1:{port}", "--json")
    finally:
        worker.join(timeout=30)
        listener.close()
    subjects = [c["subject"] for c in json.loads(shown.stdout)["certificates"]]
    assert subjects[0].startswith("CN=localhost,")


def test_printcrl_says_a_delta_crl_is_one(tmp_path: Path) -> None:
    """A delta CRL lists only the changes since its base CRL: printed as a whole list,
    it read as if every other certificate were good. The twin: a complete list says
    nothing of the kind."""
    from cryptography.hazmat.primitives import hashes

    ca = CA(name="delta issuer")
    builder = _crl_builder(ca).add_extension(x509.CRLNumber(8), critical=False)
    delta = builder.add_extension(x509.DeltaCRLIndicator(7), critical=True).sign(
        ca.private_key,  # type: ignore[arg-type]
        hashes.SHA256(),
    )
    complete = builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    delta_file = _write(tmp_path / "delta.crl", delta.public_bytes(Encoding.DER))
    shown = mtls_run("printcrl", "--file", delta_file)
    assert "delta CRL    of base CRL 7" in shown.stdout, shown.stdout + shown.stderr
    document = json.loads(mtls_run("printcrl", "--file", delta_file, "--json").stdout)
    assert document["crls"][0]["delta_of"] == 7
    complete_file = _write(tmp_path / "complete.crl", complete.public_bytes(Encoding.DER))
    plain = ok("printcrl", "--file", complete_file)
    assert "delta CRL" not in plain.stdout
    document = json.loads(ok("printcrl", "--file", complete_file, "--json").stdout)
    assert document["crls"][0]["delta_of"] is None


def test_genkey_makes_a_ca_key_pair_with_keytools_ext(tmp_path: Path, jdk_keytool: JDK) -> None:
    """gencert's warning said "mtls genkey cannot yet" make a CA's key pair (h234):
    ``-ext bc:c`` makes one, as keytool -genkeypair does, and what it signs draws no
    warning. The twin: without it, the warning. ``ku`` and ``eku`` are taken as gencert
    takes them; ``honored=all`` is gencert's and refused."""
    for ext, warned in ((("-ext", "bc:c"), False), ((), True)):
        ca = tmp_path / f"ca{len(ext)}.p12"
        ok("genkey", "--keystore", ca, "--alias", "ca", "--dname", "CN=my CA", "--key-type",
           "EC", *ext)  # fmt: skip
        listed = run_keytool(jdk_keytool, "-list", "-v", "-keystore", str(ca), "-storepass",
                             PASSWORD)  # fmt: skip
        assert ("CA:true" in listed) is not warned
        gw = tmp_path / f"gw{len(ext)}.p12"
        ok("genkey", "--keystore", gw, "--alias", "gw", "--dname", "CN=gw", "--key-type", "EC")
        ok("certreq", "--keystore", gw, "--file", tmp_path / "gw.csr")
        run = mtls_run("gencert", "--keystore", ca, "--infile", tmp_path / "gw.csr",
                       "--outfile", tmp_path / "gw.der")  # fmt: skip
        assert run.code == 0, run.stderr
        assert ("is not a CA certificate" in run.stderr) is warned, run.stderr
    ok("genkey", "--keystore", tmp_path / "client.p12", "--alias", "c", "--dname", "CN=c",
       "-ext", "ku:c=digitalSignature", "-ext", "eku=clientAuth", "-ext", "san=dns:c.example",
       "--san", "DNS:c2.example")  # fmt: skip
    cert = mtls.Keystore.load(tmp_path / "client.p12", PASSWORD).certificate("c")
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["c.example", "c2.example"]
    refused = fails(2, "genkey", "--keystore", tmp_path / "h.p12", "--alias", "h",
                    "--dname", "CN=h", "-ext", "honored=all")  # fmt: skip
    assert "it is for gencert" in refused.stderr
