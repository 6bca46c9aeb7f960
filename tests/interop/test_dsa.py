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
