"""Keystore.inspect: keytool -list semantics, no key password, and no accidental use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mtls
from mtls.testing import CA

STORE_PW, KEY_PW = "store-Pa55", "key-Pa55-other"


@pytest.fixture(scope="module")
def separate_passwords(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("inspect")
    ca = CA(name="inspect CA")
    child = ca.create_child_ca(name="inspect intermediate")
    ident = child.issue_cert("gw", common_name="gw")
    jks = ident.write_keystore(d / "gw.jks", STORE_PW, key_password=KEY_PW)
    p12 = ident.write_keystore(d / "gw.p12", STORE_PW, store_type="PKCS12")
    return jks, p12, ident


def test_inspect_needs_no_key_password_and_keeps_the_chain(separate_passwords):
    jks, p12, ident = separate_passwords
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(jks, STORE_PW)  # the key has its own password
    for path in (jks, p12):
        listed = mtls.Keystore.inspect(path, STORE_PW)
        (alias,) = listed.key_aliases
        assert listed.is_key_entry(alias)
        assert listed.certificate_chain(alias) == ident.chain
    assert mtls.Keystore.inspect(jks).key_aliases  # JKS integrity check skipped, as in Java
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.inspect(jks, "wrong")


def test_an_inspected_store_builds_no_context_and_saves_only_as_jks(separate_passwords, tmp_path):
    jks, p12, ident = separate_passwords
    listed = mtls.Keystore.inspect(jks, STORE_PW)
    with pytest.raises(mtls.KeyEntryError, match="inspect"):
        mtls.client_context(listed)
    for target, store_type in (("copy.p12", "PKCS12"), ("copy.pem", "PEM")):
        with pytest.raises(mtls.KeyEntryError, match="inspect"):
            listed.save(tmp_path / target, STORE_PW, store_type=store_type)
        assert not (tmp_path / target).exists()
    with pytest.raises(mtls.KeyEntryError, match="inspect"):  # a PKCS#12's keys: no JKS form
        mtls.Keystore.inspect(p12, STORE_PW).save(tmp_path / "p12.jks", STORE_PW)
    # As JKS, as keytool keeps what it did not decrypt: the key as the file protected it,
    # under its own password, whatever the new store password.
    listed.add_certificate("extra", CA(name="extra").certificate)
    listed.save(tmp_path / "copy.jks", "new-store-Pa55")
    again = mtls.Keystore.load(tmp_path / "copy.jks", "new-store-Pa55", key_password=KEY_PW)
    assert again.certificate_chain("gw") == ident.chain
    assert sorted(again.aliases) == ["extra", "gw"]
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(tmp_path / "copy.jks", "new-store-Pa55", key_password="new-store-Pa55")


def test_cli_list_needs_no_key_password(separate_passwords):
    jks, _, _ = separate_passwords
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "list", "--keystore", str(jks), "--password", STORE_PW],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "PrivateKeyEntry" in done.stdout and "chain of 2" in done.stdout
    assert STORE_PW not in done.stdout + done.stderr


def test_a_pkcs12_key_without_a_certificate_is_refused_by_inspect_as_by_load(tmp_path):
    """keytool lists it with a chain of length 0; load refused it, while inspect (and
    so `mtls list`) showed an empty store. Every reader now says the same."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    ident = CA(name="keyonly CA").issue_cert("keyonly")
    key = serialization.load_pem_private_key(ident.private_key_pem, None)
    encryption = serialization.BestAvailableEncryption(STORE_PW.encode())
    lone = tmp_path / "key-only.p12"
    lone.write_bytes(pkcs12.serialize_key_and_certificates(b"k", key, None, None, encryption))  # type: ignore[arg-type]
    for read in (mtls.Keystore.inspect, mtls.Keystore.load, mtls.Truststore.load):
        with pytest.raises(mtls.KeystoreFormatError, match="has no certificate"):
            read(lone, STORE_PW)
    from mtls.cli import main

    assert main(["list", str(lone), "--password", STORE_PW]) != 0
    # The twin: the same key with its certificate is listed.
    whole = tmp_path / "whole.p12"
    whole.write_bytes(
        pkcs12.serialize_key_and_certificates(b"k", key, ident.certificate, None, encryption)  # type: ignore[arg-type]
    )
    assert mtls.Keystore.inspect(whole, STORE_PW).key_aliases == ("k",)
