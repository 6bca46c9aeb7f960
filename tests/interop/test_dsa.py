"""JDK 17 writes DSA certificates that cryptography refuses (extra bytes in the signature
algorithm) while OpenSSL takes them: they must load, serve and list."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import mtls

KEYTOOL = shutil.which("keytool")
pytestmark = pytest.mark.skipif(KEYTOOL is None, reason="needs the JDK's keytool")


@pytest.fixture(scope="module")
def dsa_store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("dsa") / "dsa.jks"
    assert KEYTOOL is not None
    subprocess.run(
        [KEYTOOL, "-genkeypair", "-keystore", str(path), "-storetype", "JKS", "-storepass",
         "changeit", "-keypass", "changeit", "-alias", "d", "-dname", "CN=dsa", "-keyalg",
         "DSA", "-noprompt"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


def test_a_dsa_keystore_builds_contexts_and_profiles(dsa_store):
    ks = mtls.Keystore.load(dsa_store, "changeit")
    assert type(mtls.client_context(ks)) is __import__("ssl").SSLContext
    profiles = mtls.SSLProfileSet(
        [mtls.SSLProfile(servers=("a.test:1",),
                         keystore=mtls.StoreConfig(location=dsa_store, password="changeit"))]
    )  # fmt: skip
    assert profiles.context_for("a.test", 1) is not None
    assert profiles.status().to_dict()["healthy"] is True


def test_mtls_list_shows_what_it_can(dsa_store):
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "list", "--keystore", str(dsa_store), "--password",
         "changeit"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "PrivateKeyEntry" in done.stdout and "SHA256" in done.stdout


def test_export_and_import_of_a_certificate_cryptography_cannot_read(dsa_store, tmp_path):
    """export --file wrote the right bytes, then failed on the summary line (exit 1);
    import failed with "unexpected ValueError ... please report it"."""

    def mtls_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mtls", *args], capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    assert KEYTOOL is not None
    theirs = tmp_path / "keytool.der"
    subprocess.run(
        [KEYTOOL, "-exportcert", "-keystore", str(dsa_store), "-storepass", "changeit",
         "-alias", "d", "-file", str(theirs)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    ours = tmp_path / "mtls.der"
    done = mtls_cli("export", "--keystore", str(dsa_store), "--password", "changeit",
                    "--alias", "d", "--file", str(ours))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ours.read_bytes() == theirs.read_bytes()
    done = mtls_cli("import", "--file", str(theirs), "--alias", "dsa", "--keystore",
                    str(tmp_path / "trust.jks"), "--password", "changeit")  # fmt: skip
    # JDK 17's certificate: a clear refusal naming keytool; a JDK that writes one
    # cryptography reads: imported.
    assert done.returncode in (0, 1), done.stderr
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
    if done.returncode:
        assert "cryptography cannot read this certificate" in done.stderr
        assert "keytool -importcert" in done.stderr


def test_probe_with_a_dsa_identity_cryptography_cannot_read(dsa_store):
    """JDK 17's DSA certificate (a NULL in its signature algorithm) is one cryptography
    refuses: ``mtls probe --keystore`` stopped with "unexpected ValueError ... please
    report it" before connecting (h144). It now probes, with what its DER says."""
    import socket

    with socket.socket() as taken:  # a port nothing listens on once it is closed
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "probe", f"https://127.0.0.1:{port}/", "--keystore",
         str(dsa_store), "--password", "changeit"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "refused the connection" in done.stderr
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
