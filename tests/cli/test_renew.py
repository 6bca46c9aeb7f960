"""``mtls certreq`` and ``mtls import`` of a CA's reply over a key entry: the renewal
keytool users do with ``-certreq`` and ``-importcert``, checked by the JDK's keytool on
both ends (it reads the request, it signs it with ``-gencert``, it lists and opens the
renewed store).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

import mtls
from mtls.testing import CA
from tests._keytool import JDK, run_keytool
from tests.cli.test_cli import PASSWORD, fails, mtls_run, ok
from tests.cli.test_store_maintenance import _key_opens

KEY_PASSWORD = "K3y-own-Pw-renewal"


def _keytool_ca(keytool: JDK, directory: Path) -> tuple[tuple[str, ...], Path]:
    """A CA in a keytool PKCS#12 store, and its certificate as PEM."""
    store = ("-keystore", str(directory / "ca.p12"), "-storetype", "PKCS12",
             "-storepass", PASSWORD)  # fmt: skip
    run_keytool(keytool, "-genkeypair", *store, "-alias", "ca", "-keyalg", "EC",
                "-dname", "CN=keytool renewal CA", "-ext", "bc:c")  # fmt: skip
    pem = directory / "ca.pem"
    pem.write_text(run_keytool(keytool, "-exportcert", *store, "-alias", "ca", "-rfc"))
    return store, pem


def test_a_jks_entry_is_renewed_through_keytools_own_ca(tmp_path: Path, jdk_keytool: JDK) -> None:
    path = tmp_path / "gw.jks"
    store = ("-keystore", str(path), "-storetype", "JKS", "-storepass", PASSWORD)
    run_keytool(jdk_keytool, "-genkeypair", *store, "-alias", "gw", "-keyalg", "RSA",
                "-keysize", "2048", "-keypass", KEY_PASSWORD, "-dname", "CN=gw.example, O=Acme",
                "-ext", "san=dns:gw.example")  # fmt: skip
    ca_store, ca_pem = _keytool_ca(jdk_keytool, tmp_path)
    csr = tmp_path / "gw.csr"
    # Twin: the key's own password is needed to sign; the store password is not it.
    wrong = fails(1, "certreq", "--keystore", path, "--alias", "gw", "--file", csr)
    assert PASSWORD not in wrong.stderr and not csr.exists()
    made = ok("-certreq", "-keystore", path, "-alias", "gw", "-keypass", KEY_PASSWORD,
              "-file", csr)  # fmt: skip
    assert "mtls import --keystore" in made.stdout and "DNS:gw.example" in made.stdout
    printed = run_keytool(jdk_keytool, "-printcertreq", "-file", str(csr))
    assert "CN=gw.example, O=Acme" in printed and "DNSName: gw.example" in printed
    reply = tmp_path / "gw.crt"
    run_keytool(jdk_keytool, "-gencert", *ca_store, "-alias", "ca", "-infile", str(csr),
                "-outfile", str(reply), "-ext", "san=dns:gw.example")  # fmt: skip
    before = path.read_bytes()
    # Twin: a lone certificate whose issuer is nowhere is refused, the store untouched.
    lone = fails(1, "import", "--keystore", path, "--alias", "gw", "--file", reply)
    assert "Failed to establish chain from reply" in lone.stderr and "--ca" in lone.stderr
    assert path.read_bytes() == before
    # Twin: the keystore's path mistyped: a new store trusting the reply was made, and
    # the command said "Certificate was added" (h255). Refused, nothing written.
    typo = tmp_path / "gw-typo.jks"
    mistyped = fails(2, "import", "--keystore", typo, "--alias", "gw", "--file", reply,
                     "--ca", ca_pem)  # fmt: skip
    assert "does not exist: check the keystore's path" in mistyped.stderr
    assert not typo.exists()
    done = ok("import", "--keystore", path, "--alias", "gw", "--file", reply, "--ca", ca_pem)
    assert "Certificate reply was installed" in done.stdout and "chain of 2" in done.stdout
    listed = run_keytool(jdk_keytool, "-list", "-v", *store, "-alias", "gw")
    assert "Certificate chain length: 2" in listed and "Issuer: CN=keytool renewal CA" in listed
    # The key was never decrypted: it opens with its own password, as before.
    assert _key_opens(jdk_keytool, path, "JKS", PASSWORD, "gw", KEY_PASSWORD)
    renewed = path.read_bytes()
    again = ok("import", "--keystore", path, "--alias", "gw", "--file", reply, "--ca", ca_pem)
    assert "identical" in again.stdout and path.read_bytes() == renewed


def test_a_pkcs12_entry_takes_a_p7b_reply_from_stdout_request(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    path = tmp_path / "gw.p12"
    store = ("-keystore", str(path), "-storetype", "PKCS12", "-storepass", PASSWORD)
    run_keytool(jdk_keytool, "-genkeypair", *store, "-alias", "gw", "-keyalg", "EC",
                "-dname", "CN=gw")  # fmt: skip
    request = ok("certreq", "--keystore", path, "--dname", "CN=gw, O=Renewed",
                 "--san", "DNS:gw.example")  # fmt: skip
    assert request.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    root = CA(name="renewal root")
    issuing = root.create_child_ca(name="renewal issuing")
    leaf, inter = issuing.sign_request(request.stdout.encode())
    assert leaf.subject.rfc4514_string() == "CN=gw,O=Renewed"
    p7b = tmp_path / "reply.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([root.certificate, inter, leaf], Encoding.DER))
    # The root came with the reply alone: installed, with keytool's question as a
    # warning (keytool asks "Install reply anyway?" for a top trusted nowhere).
    done = mtls_run("import", "--keystore", path, "--alias", "gw", "--file", p7b)
    assert done.code == 0, done.stderr
    assert "came with the reply alone" in done.stderr and "renewal root" in done.stderr
    assert "chain of 3" in done.stdout
    listed = run_keytool(jdk_keytool, "-list", "-v", *store, "-alias", "gw")
    assert "Certificate chain length: 3" in listed and "Owner: CN=gw, O=Renewed" in listed
    loaded = mtls.Keystore.load(path, PASSWORD)
    assert loaded.certificate_chain("gw")[0] == leaf


def test_keytools_der_reply_with_its_issuer_glued_on_is_installed(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    """``keytool -gencert`` without ``-rfc`` (its default) writes the new certificate
    and the issuing CA's, DER, one after the other: mtls refused that reply with "no
    certificate found", where keytool installs it."""
    ca_store, ca_pem = _keytool_ca(jdk_keytool, tmp_path)
    issuing = ("-keystore", str(tmp_path / "issuing.jks"), "-storetype", "JKS",
               "-storepass", PASSWORD)  # fmt: skip
    run_keytool(jdk_keytool, "-genkeypair", *issuing, "-alias", "issuing", "-keyalg", "EC",
                "-dname", "CN=keytool issuing CA")  # fmt: skip
    issuing_csr = tmp_path / "issuing.csr"
    run_keytool(jdk_keytool, "-certreq", *issuing, "-alias", "issuing", "-file",
                str(issuing_csr))  # fmt: skip
    issuing_pem = tmp_path / "issuing.pem"
    run_keytool(jdk_keytool, "-gencert", *ca_store, "-alias", "ca", "-infile", str(issuing_csr),
                "-outfile", str(issuing_pem), "-rfc", "-ext", "bc:c")  # fmt: skip
    run_keytool(jdk_keytool, "-importcert", *issuing, "-alias", "root", "-file", str(ca_pem),
                "-noprompt")  # fmt: skip
    run_keytool(jdk_keytool, "-importcert", *issuing, "-alias", "issuing", "-file",
                str(issuing_pem))  # fmt: skip
    path = tmp_path / "gw.p12"
    run_keytool(jdk_keytool, "-genkeypair", "-keystore", str(path), "-storetype", "PKCS12",
                "-storepass", PASSWORD, "-alias", "gw", "-keyalg", "EC", "-dname", "CN=gw")  # fmt: skip
    csr = tmp_path / "gw.csr"
    ok("certreq", "--keystore", path, "--alias", "gw", "--file", csr)
    reply = tmp_path / "gw.der"
    run_keytool(jdk_keytool, "-gencert", *issuing, "-alias", "issuing", "-infile", str(csr),
                "-outfile", str(reply))  # fmt: skip
    assert reply.read_bytes()[:1] == b"\x30" and b"-----" not in reply.read_bytes()
    # Twin: the same reply with a byte after it is no reply, and the store is untouched.
    damaged = tmp_path / "damaged.der"
    damaged.write_bytes(reply.read_bytes() + b"\x00")
    before = path.read_bytes()
    refused = fails(1, "import", "--keystore", path, "--alias", "gw", "--file", damaged)
    assert "damaged.der" in refused.stderr and path.read_bytes() == before
    done = ok("import", "--keystore", path, "--alias", "gw", "--file", reply, "--ca", ca_pem)
    assert "chain of 3" in done.stdout, done.stdout
    listed = run_keytool(jdk_keytool, "-list", "-v", "-keystore", str(path), "-storepass",
                         PASSWORD, "-alias", "gw")  # fmt: skip
    assert "Certificate chain length: 3" in listed and "Issuer: CN=keytool issuing CA" in listed


def test_refusals_leave_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    before = path.read_bytes()
    stranger = CA(name="stranger")
    other = stranger.issue_cert("other")
    reply = tmp_path / "other.pem"
    reply.write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in (*other.chain, stranger.certificate))
    )
    wrong_key = fails(1, "import", "--keystore", path, "--alias", "gw", "--file", reply)
    assert "public keys differ" in wrong_key.stderr and "mtls certreq" in wrong_key.stderr
    # --ca belongs to a reply: on a new alias it is a usage error.
    misuse = fails(2, "import", "--keystore", path, "--alias", "new", "--file", reply,
                   "--ca", reply)  # fmt: skip
    assert "--ca" in misuse.stderr
    # Several certificates under a trusted alias: one at a time, and what a reply is.
    several = fails(1, "import", "--keystore", path, "--alias", "new", "--file", reply)
    assert "--alias KEY" in several.stderr
    assert path.read_bytes() == before
    # A truststore has no key to sign with.
    trust = tmp_path / "trust.p12"
    stranger.write_truststore(trust, PASSWORD, store_type="PKCS12")
    assert "no private-key entry" in fails(1, "certreq", "--keystore", trust).stderr


def test_a_single_certificate_p7b_is_trusted_as_one_certificate(tmp_path: Path) -> None:
    ca = CA(name="p7b anchor")
    p7b = tmp_path / "ca.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([ca.certificate], Encoding.PEM))
    trust = tmp_path / "trust.jks"
    ok("import", "--keystore", trust, "--alias", "anchor", "--file", p7b)
    anchors = mtls.Truststore.load(trust, PASSWORD).certificates
    assert list(anchors.values()) == [ca.certificate]


def test_the_request_verifies_with_openssl(tmp_path: Path, openssl_bin: str) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw.example", "10.1.2.3").write_keystore(path, PASSWORD, store_type="PKCS12")
    csr = tmp_path / "gw.csr"
    ok("certreq", "--keystore", path, "--file", csr)
    done = subprocess.run([openssl_bin, "req", "-in", str(csr), "-noout", "-verify", "-text"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "verify OK" in done.stdout + done.stderr
    assert "DNS:gw.example" in done.stdout and "IP Address:10.1.2.3" in done.stdout
    request = x509.load_pem_x509_csr(csr.read_bytes())
    assert (
        request.public_key()
        == mtls.Keystore.load(path, PASSWORD).certificate("gw.example").public_key()
    )


@pytest.mark.parametrize("spelling", ["-certreq", "certreq"])
def test_certreq_is_no_longer_a_missing_keytool_command(spelling: str, tmp_path: Path) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    assert "BEGIN CERTIFICATE REQUEST" in ok(spelling, "-keystore", path).stdout


def test_certreq_asks_for_the_entry_before_decrypting_any(tmp_path: Path, jdk_keytool: JDK) -> None:
    """Two JKS keys under passwords of their own and no --alias: every key was
    decrypted first, and the one the password did not open was blamed."""
    path = tmp_path / "two.jks"
    store = ("-keystore", str(path), "-storetype", "JKS", "-storepass", PASSWORD)
    for alias in ("a", "b"):
        run_keytool(jdk_keytool, "-genkeypair", *store, "-alias", alias, "-keyalg", "EC",
                    "-keypass", f"{KEY_PASSWORD}-{alias}", "-dname", f"CN={alias}")  # fmt: skip
    several = fails(1, "certreq", "--keystore", path, "--key-password", f"{KEY_PASSWORD}-a")
    assert "2 key entries (" in several.stderr and "choose one with --alias" in several.stderr
    assert "does not unlock" not in several.stderr
    made = ok("certreq", "--keystore", path, "--alias", "B", "--key-password", f"{KEY_PASSWORD}-b")
    assert x509.load_pem_x509_csr(made.stdout.encode()).subject.rfc4514_string() == "CN=b"


def test_a_chain_that_stops_short_of_a_root_is_installed_with_a_warning(tmp_path: Path) -> None:
    """keytool asks "Top-level certificate in reply ... is not trusted. Install reply
    anyway?": mtls installs (as keytool -noprompt) and says what peers need."""
    path = tmp_path / "gw.p12"
    mtls.Keystore.generate("GW", "CN=gw", key_type="EC").save(path, PASSWORD)
    root = CA(name="far root")
    issuing = root.create_child_ca(name="near issuing")
    request = ok("certreq", "--keystore", path).stdout.encode()
    reply = tmp_path / "reply.pem"
    reply.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in issuing.sign_request(request)))
    missing_ca = tmp_path / "nope.pem"
    run = fails(1, "import", "--keystore", path, "--alias", "gw", "--file", reply,
                "--ca", missing_ca)  # fmt: skip
    assert "no such CA certificates file" in run.stderr
    done = mtls_run("import", "--keystore", path, "--alias", "gw", "--file", reply)
    assert done.code == 0, done.stderr
    # (A PKCS#12 keeps the alias as generated, "GW"; the import named it "gw".)
    assert "chain of 2" in done.stdout and "alias    GW (PrivateKeyEntry" in done.stdout
    assert "whose issuer (CN=far root,O=mtls.testing) is in neither" in done.stderr


def test_a_root_the_store_or_ca_files_vouch_for_gives_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "gw.p12"
    mtls.Keystore.generate("gw", "CN=gw", key_type="EC").save(path, PASSWORD)
    root = CA(name="vouched root")
    request = ok("certreq", "--keystore", path).stdout.encode()
    reply = tmp_path / "reply.pem"
    reply.write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in (*root.sign_request(request),
                                                         root.certificate))
    )  # fmt: skip
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(root.cert_pem)
    # ok(): nothing on stderr, the root being one --ca names.
    done = ok("import", "--keystore", path, "--alias", "gw", "--file", reply, "--ca", ca_file)
    assert "chain of 2" in done.stdout


def test_import_still_takes_what_keytool_takes_and_says_why_it_refuses(tmp_path: Path) -> None:
    """Reading the certificate with the store reader (one reader for stores, replies
    and import) refused what import used to take and keytool takes: CR-only line
    ends, a "-----BEGIN " inside the text before the block. And a refusal said only
    "not a certificate" where the reader knew why."""
    pem = CA(name="lenient").cert_pem
    cases = {
        "cr-only.pem": pem.replace(b"\n", b"\r"),
        "text-begin.pem": b"as sent: the part after -----BEGIN is yours\n" + pem,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        ok("import", "--keystore", tmp_path / f"{name}.jks", "--alias", "ca", "--file",
           tmp_path / name)  # fmt: skip
    truncated = tmp_path / "truncated.pem"
    truncated.write_bytes(pem[: pem.index(b"-----END")])
    run = fails(1, "import", "--keystore", tmp_path / "t.jks", "--alias", "ca", "--file",
                truncated)  # fmt: skip
    assert "no matching END line" in run.stderr


def test_certreq_reads_an_encrypted_pem_key_with_the_store_password_variable(
    tmp_path: Path,
) -> None:
    """A PEM keystore's password came from --password only; MTLS_STORE_PASSWORD (which
    mtls_run sets, as a service would) was ignored: "the private key is encrypted"."""
    path = tmp_path / "gw.pem"
    path.write_bytes(
        mtls.Keystore.generate("gw", "CN=gw.pem", key_type="EC").to_bytes(
            PASSWORD, store_type="PEM"
        )
    )
    made = ok("certreq", "--keystore", path)
    assert x509.load_pem_x509_csr(made.stdout.encode()).subject.rfc4514_string() == "CN=gw.pem"
    # Without one, it is asked for (a usage error with nobody to answer), as a Java
    # store's is: keytool prompts too.
    run = fails(2, "certreq", "--keystore", path, password_env=False)
    assert "the store password of" in run.stderr and "--password" in run.stderr
