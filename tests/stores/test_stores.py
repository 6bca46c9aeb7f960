"""Keystore and Truststore: detection, PEM keys, the read and write API, errors.

Every error test checks the exception class, its ``path``/``alias`` attributes,
that the message names the file, and that no password shows in it.
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import random
import re
import ssl
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

import mtls
from mtls import _files, _x509
from mtls.testing import CA
from tests._keytool import JDK, run_keytool
from tests._pki import PKI, Identity, mismatched

PASSWORD = "Ph0enix-Quartz-9917"  # distinctive: searched for in messages and reprs
KEY_PASSWORD = "Nebula-Kiwi-4402"


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """No password (or key fragment) in the message, nor in the chained exceptions."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{seen} {seen!r}"
        for secret in (PASSWORD, KEY_PASSWORD, *secrets):
            assert secret not in text
        seen = seen.__cause__ or seen.__context__


def assert_store_error(
    info: pytest.ExceptionInfo[mtls.MTLSError],
    path: Path,
    *,
    alias: str | None = None,
    mentions: str = "",
) -> None:
    exc = info.value
    assert exc.path == str(path)
    assert str(path) in str(exc)
    if alias is not None:
        assert isinstance(exc, mtls.KeystoreError)
        assert exc.alias == alias
    if mentions:
        assert mentions in str(exc)
    assert_clean(exc)


@pytest.fixture(scope="module")
def client_ks(pki: PKI) -> mtls.Keystore:
    return pki.client.keystore("client")


# --------------------------------------------------------------------------- detection


def test_detect_format_by_content(pki: PKI, client_ks: mtls.Keystore) -> None:
    cert_der = pki.root.cert.public_bytes(serialization.Encoding.DER)
    cases = {
        "JKS": client_ks.to_bytes(PASSWORD, store_type="JKS"),
        "JCEKS": b"\xce\xce\xce\xce\x00\x00\x00\x02\x00\x00\x00\x00",
        "PKCS12": client_ks.to_bytes(PASSWORD, store_type="PKCS12"),
        "PEM": client_ks.to_bytes(PASSWORD, store_type="PEM"),
        "DER": cert_der,
    }
    for expected, data in cases.items():
        assert mtls.detect_format(data) == expected
    # PEM after a preamble (openssl pkcs12 -nodes writes "Bag Attributes" first).
    preamble = b"Bag Attributes\n    friendlyName: client\nsubject=CN = x\n"
    assert (
        mtls.detect_format(preamble + pki.root.cert.public_bytes(serialization.Encoding.PEM))
        == "PEM"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage that is not a store",
        random.Random(7).randbytes(64).replace(b"\x30", b"\x31"),
        b"\x30\x03\x02\x01\x03",
    ],
    ids=["empty", "text", "random", "tiny-der"],
)
def test_detect_format_refuses_garbage(data: bytes) -> None:
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.detect_format(data)
    assert ("empty" if not data else "not a keystore") in str(info.value)


def test_an_encrypted_pkcs8_key_is_not_taken_for_a_bcfks_store() -> None:
    """An encrypted PKCS#8 key has a BCFKS store's outer shape (two parts): it is not
    read as one (tests/stores/test_bcfks.py reads the real ones)."""
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(mtls.KeystoreFormatError, match="not a keystore or truststore"):
        mtls.detect_format(encrypted)


def test_a_der_crl_or_csr_is_not_taken_for_a_certificate(openssl_bin: str, tmp_path: Path) -> None:
    """A DER CRL and a DER certificate request have a certificate's outer shape
    (SEQUENCE { SEQUENCE, algorithm, BIT STRING }): an interop sweep found them loaded
    as a trusted certificate, saved into a JKS keytool cannot read, and refused only
    when a context was built. They are refused on load, saying what they are. The
    twins: a v3 and a v1 certificate (no version field) in DER still load."""
    ca = CA()
    key = tmp_path / "k.pem"
    csr = tmp_path / "r.der"
    v1 = tmp_path / "v1.der"
    subprocess.run(
        [openssl_bin, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-subj", "/CN=v1", "-outform", "DER", "-out", csr],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [openssl_bin, "x509", "-req", "-inform", "DER", "-in", csr, "-signkey", key,
         "-outform", "DER", "-out", v1],
        check=True, capture_output=True,
    )  # fmt: skip
    assert x509.load_der_x509_certificate(v1.read_bytes()).version == x509.Version.v1
    (tmp_path / "crl.der").write_bytes(ca.crl())
    for name, said in (("crl.der", "a certificate revocation list (DER CRL)"),
                       ("r.der", "a certificate signing request (DER CSR)")):  # fmt: skip
        path = tmp_path / name
        with pytest.raises(mtls.KeystoreFormatError, match=re.escape(said)):
            mtls.detect_format(path.read_bytes())
        for load in (mtls.Truststore.load, lambda p: mtls.Keystore.load(p, None)):
            with pytest.raises(mtls.KeystoreFormatError) as info:
                load(path)
            assert str(info.value).startswith(f"{path}: ") and said in str(info.value)
            assert "replace the file" not in str(info.value)  # its own fix, not the generic one
    v3 = ca.certificate.public_bytes(serialization.Encoding.DER)
    for der in (v3, v1.read_bytes()):
        assert mtls.detect_format(der) == "DER"
        (tmp_path / "c.der").write_bytes(der)
        trust = mtls.Truststore.load(tmp_path / "c.der")
        assert [
            c.public_bytes(serialization.Encoding.DER) for c in trust.certificates.values()
        ] == [der]


def test_a_declared_type_is_named_only_when_it_is_a_store_type(tmp_path: Path) -> None:
    """BCFKS (Bouncy Castle FIPS) is a store type Java estates declare: a file that is
    no store says it was declared BCFKS. Its twin: a type that is none stays unnamed
    (it may come from a placeholder)."""
    path = tmp_path / "fips.bcfks"
    path.write_bytes(b"\x30\x03\x02\x01\x00 not a store mtls reads")
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(path, PASSWORD, store_type="BCFKS")
    assert "(declared BCFKS)" in str(info.value) and "replace the file" in str(info.value)
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(path, PASSWORD, store_type="s3cret-typed-here")
    assert "something that is not a store type" in str(info.value)
    assert "s3cret" not in str(info.value) and "declared BCFKS" not in str(info.value)


@pytest.mark.parametrize("suffix", [".jks", ".p12", ".pem", ".bin"])
def test_file_name_does_not_decide_the_format(
    client_ks: mtls.Keystore, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"store{suffix}"
    path.write_bytes(client_ks.to_bytes(PASSWORD, store_type="PKCS12"))
    ks = mtls.Keystore.load(path, PASSWORD, store_type="JKS")  # declared type is a hint only
    assert ks.store_type == "PKCS12"
    assert ks.fingerprint == client_ks.fingerprint


# --------------------------------------------------------------------------- PEM keys


def _pem_key(identity: Identity, form: str, password: str | None) -> bytes:
    fmt = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }[form]
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return identity.key.private_bytes(serialization.Encoding.PEM, fmt, enc)


KEY_FORMS = [
    # id, identity attribute, form, encrypted, first PEM line
    ("pkcs8-rsa", "client", "pkcs8", False, b"-----BEGIN PRIVATE KEY-----"),
    ("pkcs8-ec", "client_ec", "pkcs8", False, b"-----BEGIN PRIVATE KEY-----"),
    ("pkcs8-encrypted", "client", "pkcs8", True, b"-----BEGIN ENCRYPTED PRIVATE KEY-----"),
    ("pkcs1-rsa", "client", "traditional", False, b"-----BEGIN RSA PRIVATE KEY-----"),
    ("pkcs1-rsa-encrypted", "client", "traditional", True, b"-----BEGIN RSA PRIVATE KEY-----"),
    ("sec1-ec", "client_ec", "traditional", False, b"-----BEGIN EC PRIVATE KEY-----"),
    ("sec1-ec-encrypted", "client_ec", "traditional", True, b"-----BEGIN EC PRIVATE KEY-----"),
]


@pytest.fixture(params=KEY_FORMS, ids=[k[0] for k in KEY_FORMS])
def pem_identity(
    request: pytest.FixtureRequest, pki: PKI, tmp_path: Path
) -> tuple[Path, Identity, bool]:
    _, attr, form, encrypted, first_line = request.param
    identity: Identity = getattr(pki, attr)
    key = _pem_key(identity, form, PASSWORD if encrypted else None)
    assert key.startswith(first_line)
    assert (b"ENCRYPTED" in key) == encrypted
    path = tmp_path / "identity.pem"
    path.write_bytes(key + identity.chain_pem())
    return path, identity, encrypted


def _same_key(ks: mtls.Keystore, identity: Identity) -> None:
    _, key_der, chain = ks.key_entry()
    assert key_der == identity.key_der()  # normalised to PKCS#8, the same key
    assert list(chain) == [c.public_bytes(serialization.Encoding.DER) for c in identity.chain]


def test_pem_key_loads(pem_identity: tuple[Path, Identity, bool]) -> None:
    path, identity, encrypted = pem_identity
    ks = mtls.Keystore.load(path, PASSWORD if encrypted else None)
    assert ks.store_type == "PEM"
    _same_key(ks, identity)
    assert type(mtls.client_context(ks)) is ssl.SSLContext
    # key_password takes precedence over the store password for the key.
    ks2 = mtls.Keystore.load(path, "ignored-store-pw", key_password=PASSWORD if encrypted else None)
    _same_key(ks2, identity)


def test_pem_key_wrong_password(pem_identity: tuple[Path, Identity, bool]) -> None:
    path, identity, encrypted = pem_identity
    if not encrypted:
        # A plain key ignores a password (profiles always carry one), whatever its PEM form.
        _same_key(mtls.Keystore.load(path, "any-password"), identity)
        return
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, "Wrong-" + PASSWORD[:5])
    assert_store_error(info, path, mentions="wrong password")


def test_pem_key_missing_password(pem_identity: tuple[Path, Identity, bool]) -> None:
    path, identity, encrypted = pem_identity
    if not encrypted:
        _same_key(mtls.Keystore.load(path, None), identity)
        return
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, None)
    assert_store_error(info, path, mentions="pass its password")


@pytest.mark.openssl
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openssl_traditional_encrypted_key(
    openssl_bin: str, pki: PKI, tmp_path: Path, kind: str
) -> None:
    """A key encrypted by ``openssl rsa|ec -aes256`` (Proc-Type/DEK-Info headers)."""
    identity = pki.client if kind == "rsa" else pki.client_ec
    plain = tmp_path / "plain.key"
    plain.write_bytes(_pem_key(identity, "traditional", None))
    encrypted = tmp_path / "enc.key"
    extra = ["-traditional"] if kind == "rsa" else []
    subprocess.run(
        [
            openssl_bin,
            kind,
            "-in",
            str(plain),
            "-aes256",
            *extra,
            "-passout",
            f"pass:{PASSWORD}",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
    )
    text = encrypted.read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in text
    assert b"DEK-Info: AES-256-CBC" in text
    path = tmp_path / "identity.pem"
    path.write_bytes(text + identity.chain_pem())

    _same_key(mtls.Keystore.load(path, PASSWORD), identity)
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, "not-the-password")
    assert_store_error(info, path)
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, None)
    assert_store_error(info, path)

    # With CRLF line ends it loads as before (the DEK-Info check must read it too).
    path.write_bytes((text + identity.chain_pem()).replace(b"\n", b"\r\n"))
    _same_key(mtls.Keystore.load(path, PASSWORD), identity)
    # A DEK-Info naming a cipher nothing reads, or a damaged IV, was "wrong password".
    header = re.search(rb"DEK-Info: AES-256-CBC,([0-9A-F]+)", text)
    assert header is not None
    for damaged, why in (
        (text.replace(b"AES-256-CBC", b"NOPE-CBC"), "uses 'NOPE-CBC', which this Python"),
        (text.replace(header.group(1), b"XYZ"), "no valid 16-byte IV for 'AES-256-CBC'"),
        (text.replace(header.group(1), header.group(1)[:8]), "no valid 16-byte IV"),
    ):
        path.write_bytes(damaged + identity.chain_pem())
        for password in (PASSWORD, None):
            if password is None and "NOPE" in why:
                continue  # without a password it is only "encrypted: pass its password"
            with pytest.raises(mtls.KeystoreFormatError, match=why) as caught:
                mtls.Keystore.load(path, password)
            assert not isinstance(caught.value, mtls.WrongPasswordError)


def test_pem_with_crlf_and_preamble(pki: PKI, tmp_path: Path) -> None:
    identity = pki.client_ec
    text = b"Bag Attributes\n    friendlyName: x\n" + identity.key_pem() + identity.chain_pem()
    path = tmp_path / "crlf.pem"
    path.write_bytes(text.replace(b"\n", b"\r\n"))
    _same_key(mtls.Keystore.load(path, None), identity)


def test_pem_key_without_its_certificate(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "mismatch.pem"
    path.write_bytes(pki.client.key_pem() + pki.client_ec.chain_pem())  # key and cert disagree
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.Keystore.load(path, None)
    assert_store_error(info, path, mentions="no matching certificate")
    # Negative twin: the right certificate in the same file makes it load.
    path.write_bytes(pki.client.key_pem() + pki.client.chain_pem())
    assert mtls.Keystore.load(path, None).key_aliases == ("client-rsa",)


def test_pem_damaged_key_body(pki: PKI, tmp_path: Path) -> None:
    pem = pki.client_ec.key_pem()
    lines = pem.splitlines(keepends=True)
    lines[1] = b"!!!!" + lines[1][4:]  # not base64
    path = tmp_path / "bad.pem"
    path.write_bytes(b"".join(lines) + pki.client_ec.chain_pem())
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(path, None)
    assert_store_error(info, path)
    assert_clean(info.value, *pki.client_ec.key_b64_fragments())


# --------------------------------------------------------------------------- read API


def test_read_api(pki: PKI, tmp_path: Path) -> None:
    ks = pki.client.keystore("Client-Key")
    ks.add_certificate("Partner", pki.other_root.cert)
    path = tmp_path / "read.jks"
    ks.save(path, PASSWORD)
    loaded = mtls.Keystore.load(path, PASSWORD)

    assert loaded.aliases == ("client-key", "partner")  # JKS lower-cases aliases, as keytool
    assert loaded.key_aliases == ("client-key",)
    assert loaded.trusted_aliases == ("partner",)
    assert len(loaded) == 2
    assert list(loaded) == ["client-key", "partner"]
    assert loaded.certificate("client-key") == pki.client.cert
    assert loaded.certificate_chain("client-key") == tuple(pki.client.chain)
    assert loaded.certificate_chain("partner") == (pki.other_root.cert,)
    # Case-insensitive lookup, as in Java.
    assert loaded.certificate("CLIENT-KEY") == pki.client.cert
    assert "PARTNER" in loaded
    assert "nobody" not in loaded
    assert loaded.is_key_entry("Client-Key")
    assert not loaded.is_key_entry("partner")
    der = pki.client.cert.public_bytes(serialization.Encoding.DER)
    assert loaded.export_certificate("client-key", "DER") == der
    pem = loaded.export_certificate("client-key")
    assert pem == pki.client.cert.public_bytes(serialization.Encoding.PEM)
    assert x509.load_pem_x509_certificate(pem) == pki.client.cert
    with pytest.raises(ValueError, match="PEM"):
        loaded.export_certificate("client-key", "XML")  # type: ignore[arg-type]


def test_unknown_alias_lists_the_aliases(client_ks: mtls.Keystore) -> None:
    with pytest.raises(mtls.KeyEntryError) as info:
        client_ks.certificate("nobody")
    assert info.value.alias == "nobody"
    assert "client" in str(info.value)
    with pytest.raises(mtls.KeyEntryError):
        client_ks.key_entry("nobody")


def test_truststore_read_api(pki: PKI, tmp_path: Path) -> None:
    ts = pki.truststore(pki.root, pki.other_root, pki.server)
    assert ts.aliases == ("anchor-0", "anchor-1", "anchor-2")
    assert ts.certificates == {
        "anchor-0": pki.root.cert,
        "anchor-1": pki.other_root.cert,
        "anchor-2": pki.server.cert,
    }
    bundle = ts.to_pem()
    assert bundle == b"".join(
        c.public_bytes(serialization.Encoding.PEM)
        for c in (pki.root.cert, pki.other_root.cert, pki.server.cert)
    )
    # The PEM bundle is what raw ssl takes as cafile=.
    path = tmp_path / "bundle.pem"
    path.write_bytes(bundle)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=path)
    assert ctx.cert_store_stats()["x509"] == 3
    # A PEM bundle loads back with aliases named after the CNs.
    back = mtls.Truststore.load(path)
    assert back.store_type == "PEM"
    assert back.anchors_der == ts.anchors_der
    assert back.aliases == ("mtls-test-root", "mtls-other-root", "localhost")


def test_keystore_as_truststore(pki: PKI) -> None:
    ks = pki.client.keystore("client")
    ks.add_certificate("partner", pki.other_root.cert)
    ts = ks.truststore()
    assert ts.certificates == {"client": pki.client.cert, "partner": pki.other_root.cert}


def test_truststore_add_refuses_a_duplicate_alias(pki: PKI) -> None:
    ts = pki.truststore(pki.root)
    with pytest.raises(mtls.KeyEntryError) as info:
        ts.add("ANCHOR-0", pki.other_root.cert)
    assert info.value.alias == "ANCHOR-0"
    ts.add("ANCHOR-0", pki.other_root.cert, replace=True)
    assert ts.certificates == {"ANCHOR-0": pki.other_root.cert}
    ts.remove("anchor-0")
    assert len(ts) == 0
    with pytest.raises(mtls.KeyEntryError):
        ts.remove("anchor-0")


# --------------------------------------------------------------------------- write API


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12", "PEM"])
def test_keystore_round_trip(pki: PKI, tmp_path: Path, store_type: str) -> None:
    ks = pki.client.keystore("client")
    path = tmp_path / f"ks.{store_type.lower()}"
    ks.save(path, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    back = mtls.Keystore.load(path, PASSWORD)
    assert back.store_type == store_type
    # PEM has no aliases: the entry is named after its CN.
    alias = "client-rsa" if store_type == "PEM" else "client"
    assert back.key_entry() == (alias, pki.client.key_der(), ks.key_entry()[2])
    assert back.certificate_chain(alias) == tuple(pki.client.chain)
    # Negative twin: the wrong password does not.
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "not-" + PASSWORD)


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12", "PEM"])
def test_truststore_round_trip(pki: PKI, tmp_path: Path, store_type: str) -> None:
    ts = pki.truststore(pki.root, pki.other_root)
    path = tmp_path / f"ts.{store_type.lower()}"
    ts.save(path, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    back = mtls.Truststore.load(path, PASSWORD)
    assert back.store_type == store_type
    assert back.fingerprint == ts.fingerprint
    assert back.anchors_der == ts.anchors_der
    if store_type != "PEM":
        assert back.aliases == ("anchor-0", "anchor-1")


def test_jks_key_password_differs_from_store_password(pki: PKI, tmp_path: Path) -> None:
    ks = pki.client_ec.keystore("client")
    path = tmp_path / "two-passwords.jks"
    ks.save(path, PASSWORD, key_password=KEY_PASSWORD)
    back = mtls.Keystore.load(path, PASSWORD, key_password=KEY_PASSWORD)
    assert back.fingerprint == ks.fingerprint
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, PASSWORD)  # the store password does not open the key
    assert_store_error(info, path, alias="client", mentions="key_password")
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, PASSWORD, key_password="Wrong-Key-Pw")
    assert_store_error(info, path, alias="client", mentions="key password")
    assert_clean(info.value, "Wrong-Key-Pw")
    # PKCS#12 has one password, as keytool: a different key password is refused.
    with pytest.raises(ValueError, match="one password"):
        ks.to_bytes(PASSWORD, store_type="PKCS12", key_password=KEY_PASSWORD)


def test_save_is_atomic_and_private(pki: PKI, tmp_path: Path) -> None:
    ks = pki.client.keystore("client")
    target = tmp_path / "identity.p12"
    target.write_bytes(b"old content")
    target.chmod(0o600)
    old_inode = target.stat().st_ino
    ks.save(target, PASSWORD, store_type="PKCS12")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["identity.p12"]  # no temp file left
    assert target.stat().st_ino != old_inode  # renamed into place, not rewritten
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it holds a private key
    assert mtls.Keystore.load(target, PASSWORD).fingerprint == ks.fingerprint


def _keytool_type(kt: JDK, path: Path) -> str:
    listed = run_keytool(kt, "-list", "-keystore", str(path), "-storepass", PASSWORD)
    found = re.search(r"^Keystore type: (\S+)", listed, re.M)
    assert found, f"keytool did not say what {path.name} is"
    return found.group(1)


def test_save_writes_the_format_the_name_says_else_the_one_read(
    pki: PKI, tmp_path: Path, any_keytool: JDK
) -> None:
    """``save("gateway.p12", pw)`` wrote JKS whatever the name (a profile's
    ``<Type>PKCS12</Type>`` then failed to open it), and a PKCS#12 read and saved back
    became JKS: the name decides, else the format read from (keytool keeps a store's
    type), else JKS; keytool is the judge."""
    ks = pki.client.keystore("client")
    ks.save(tmp_path / "gateway.p12", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "gateway.p12") == "PKCS12"
    read = mtls.Keystore.load(tmp_path / "gateway.p12", PASSWORD)
    read.save(tmp_path / "gateway", PASSWORD)  # no name to go by: the format read from
    assert _keytool_type(any_keytool, tmp_path / "gateway") == "PKCS12"
    assert read.to_bytes(PASSWORD)[:1] == b"\x30"  # PKCS#12's DER, not JKS's magic
    read.save(tmp_path / "gateway.jks", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "gateway.jks") == "JKS"
    ks.save(tmp_path / "new", PASSWORD)  # a store never read: JKS, as before
    assert _keytool_type(any_keytool, tmp_path / "new") == "JKS"
    # Twin: store_type= says it outright, whatever the name.
    ks.save(tmp_path / "odd.p12", PASSWORD, store_type="JKS")
    assert _keytool_type(any_keytool, tmp_path / "odd.p12") == "JKS"
    ks.save(tmp_path / "client.pem", "")
    assert (tmp_path / "client.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    # A truststore's .crt or .cer is a CA bundle; one read from JKS and saved goes on JKS.
    trust = pki.truststore()
    trust.save(tmp_path / "ca.crt", PASSWORD)
    assert mtls.Truststore.load(tmp_path / "ca.crt").store_type == "PEM"
    trust.save(tmp_path / "trust.jks", PASSWORD)
    mtls.Truststore.load(tmp_path / "trust.jks", PASSWORD).save(tmp_path / "trust", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "trust") == "JKS"
    # A keystore's .crt is no PEM key file: the format read from decides.
    read.save(tmp_path / "odd.crt", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "odd.crt") == "PKCS12"
    # PEM only by name (h248: a bundle read from PEM and saved as "client-truststore"
    # became PEM, which keytool cannot open); a separate key password, only JKS holds.
    bundle = mtls.Truststore.load(tmp_path / "ca.crt")
    bundle.save(tmp_path / "client-truststore", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "client-truststore") == "JKS"
    assert bundle.to_bytes(PASSWORD)[:4] == b"\xfe\xed\xfe\xed"  # JKS's magic
    pem_key = mtls.Keystore.load(tmp_path / "client.pem", "")
    pem_key.save(tmp_path / "gateway.keystore", PASSWORD)
    assert _keytool_type(any_keytool, tmp_path / "gateway.keystore") == "JKS"
    read.save(tmp_path / "two-passwords", PASSWORD, key_password=PASSWORD + "-key")
    assert _keytool_type(any_keytool, tmp_path / "two-passwords") == "JKS"
    # Written back in place, a store keeps its format, whatever its name says, as
    # keytool keeps it (h252: a PKCS#12 truststore keytool made as "client-truststore
    # .crt" became PEM, which Java could not open; a JKS named .p12 with a key password
    # was refused, and rewritten as PKCS#12 by the advice).
    made = tmp_path / "client-truststore.crt"
    run_keytool(any_keytool, "-importcert", "-keystore", str(made), "-storepass", PASSWORD,
                "-alias", "ca", "-file", str(tmp_path / "ca.crt"))  # fmt: skip
    assert _keytool_type(any_keytool, made) == "PKCS12"
    in_place = mtls.Truststore.load(made, PASSWORD)
    in_place.add("another", pki.other_root.cert)
    in_place.save(made, PASSWORD)
    assert _keytool_type(any_keytool, made) == "PKCS12"
    misnamed = tmp_path / "wso2carbon.p12"
    ks.save(misnamed, PASSWORD, store_type="JKS", key_password=PASSWORD + "-key")
    mtls.Keystore.load(misnamed, PASSWORD, key_password=PASSWORD + "-key").save(
        misnamed, PASSWORD, key_password=PASSWORD + "-key"
    )
    assert _keytool_type(any_keytool, misnamed) == "JKS"
    assert mtls.Keystore.load(misnamed, PASSWORD, key_password=PASSWORD + "-key").key_aliases
    # "The file read" is the one load() read, as found then (h253): not a from_bytes
    # label, and not the same name in another directory after a chdir.
    mtls.Truststore.from_bytes(made.read_bytes(), PASSWORD, path=str(made)).save(made, PASSWORD)
    assert made.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")  # by its name
    run_keytool(any_keytool, "-importcert", "-keystore", str(tmp_path / "rel.crt"),
                "-storepass", PASSWORD, "-alias", "ca", "-file", str(tmp_path / "ca.crt"))  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        relative = mtls.Truststore.load("rel.crt", PASSWORD)
        os.chdir(elsewhere)
        relative.save(tmp_path / "rel.crt", PASSWORD)  # the file read: PKCS#12 kept
        relative.save("rel.crt", PASSWORD)  # another file, of that name: PEM
    finally:
        os.chdir(previous)
    assert _keytool_type(any_keytool, tmp_path / "rel.crt") == "PKCS12"
    assert (elsewhere / "rel.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(ValueError, match="JCEKS is read, not written"):
        ks.save(tmp_path / "x.jceks", PASSWORD, store_type="JCEKS")  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [237, 238, 255])
def test_a_store_name_of_up_to_255_bytes_is_written(pki: PKI, tmp_path: Path, length: int) -> None:
    """keytool writes a store whose name is 238 to 255 bytes long (a file name's limit);
    mtls refused ("File name too long"): its temporary file's name is 18 bytes longer.
    The temporary name is cut to fit; the store keeps its name. Multi-byte characters
    are cut between bytes without harm."""
    ks = pki.client.keystore("client")
    name = ("\u00e9" * 200).encode()[: length - 4].decode("utf-8", "ignore")
    target = tmp_path / (name + ".jks")
    ks.save(target, PASSWORD)
    ks.save(target, PASSWORD)  # over an existing file too
    assert sorted(tmp_path.iterdir()) == [target]
    assert mtls.Keystore.load(target, PASSWORD).fingerprint == ks.fingerprint
    # The temporary name is cut between characters (APFS refuses names not UTF-8).
    fd, temporary = _files._create_temporary(tmp_path, target.name, 0o600)
    os.close(fd)
    temporary.unlink()
    assert len(os.fsencode(temporary.name)) <= 255
    os.fsencode(temporary.name).decode("utf-8")  # strict: no half character


def test_a_rewritten_store_keeps_its_group_access(pki: PKI, tmp_path: Path) -> None:
    target = tmp_path / "group.p12"
    ks = pki.client.keystore("client")
    ks.save(target, PASSWORD, store_type="PKCS12")
    target.chmod(0o640)
    ks.save(target, PASSWORD, store_type="PKCS12")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    target.chmod(0o604)  # the twin: the world's access is not kept for a private store
    ks.save(target, PASSWORD, store_type="PKCS12")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner needs root")
def test_a_rewritten_store_keeps_its_owner_group_and_group_access(pki: PKI, tmp_path: Path) -> None:
    """keytool rewrites a store in place: a group-readable store its service reads
    stays so when root rewrites it. mtls renames a new file into place, which had
    root's ownership and mode 0600 (the service could no longer read it)."""
    owner, group = 65534, 65534  # nobody, nogroup
    ks, trust = pki.client.keystore("client"), pki.truststore()
    for store, name, before, after in (
        (ks, "group.p12", 0o640, 0o640),
        (ks, "world.p12", 0o644, 0o640),  # a private store never gains the world's access
        (trust, "trust.jks", 0o644, 0o644),  # certificates only: the mode as it was
    ):
        target = tmp_path / name
        store.save(target, PASSWORD, **({"store_type": "PKCS12"} if name.endswith("p12") else {}))
        os.chown(target, owner, group)
        target.chmod(before)
        store.save(target, PASSWORD, **({"store_type": "PKCS12"} if name.endswith("p12") else {}))
        kept = target.stat()
        assert (kept.st_uid, kept.st_gid, stat.S_IMODE(kept.st_mode)) == (owner, group, after)
    # The twin: a new file is the process's, 0600 for a private store.
    fresh = tmp_path / "fresh.p12"
    ks.save(fresh, PASSWORD, store_type="PKCS12")
    made = fresh.stat()
    assert (made.st_uid, stat.S_IMODE(made.st_mode)) == (0, 0o600)


def test_an_unencrypted_key_keeps_no_group_access_of_the_file_it_replaces(
    pki: PKI, tmp_path: Path
) -> None:
    """A store's group reads it through its password; a PEM key written without one over
    a 0640 (or 0644) file kept the group's read access: the key in the clear for the
    group (mtls convert --to PEM --out-password '' --force, Keystore.save)."""
    ks = pki.client.keystore("client")
    for before in (0o640, 0o644, 0o660):
        target = tmp_path / f"key-{before:o}.pem"
        target.write_bytes(b"old")
        target.chmod(before)
        ks.save(target, "", store_type="PEM")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600, oct(before)
    # The twins: an encrypted PEM key, and a certificate-only PEM, keep the group's read.
    encrypted, certs = tmp_path / "encrypted.pem", tmp_path / "certs.pem"
    for target in (encrypted, certs):
        target.write_bytes(b"old")
        target.chmod(0o640)
    ks.save(encrypted, PASSWORD, store_type="PEM")
    pki.truststore().save(certs, "", store_type="PEM")
    assert stat.S_IMODE(encrypted.stat().st_mode) == 0o640
    assert stat.S_IMODE(certs.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="files of other owners and groups need root")
def test_a_kept_mode_never_opens_a_private_store_to_another_group(pki: PKI, tmp_path: Path) -> None:
    """The old file's group bits applied to whatever group the new file had: in a setgid
    directory (the directory's group), or when a non-root writer could not keep the old
    group (its own group), a private key became readable by a group that could not
    read it before."""
    from mtls._files import atomic_write

    # A setgid directory of group 4: the new file is created in group 4, then given the
    # old file's group (root's), whose bits it keeps.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, 4)
    shared.chmod(0o2775)
    target = shared / "gw.p12"
    target.write_bytes(b"old")
    os.chown(target, 0, 0)
    target.chmod(0o640)
    atomic_write(target, b"new key store", mode=0o600)
    kept = target.stat()
    assert (kept.st_gid, stat.S_IMODE(kept.st_mode)) == (0, 0o640)
    # A writer that may not give the old group (as a non-root writer may not): the
    # group's bits are dropped, not handed to the writer's own group. The refusal is
    # the kernel's for a non-root process; here fchown is made to refuse.
    theirs = tmp_path / "theirs.p12"
    theirs.write_bytes(b"old")
    os.chown(theirs, 0, 4)
    theirs.chmod(0o640)

    def refused(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fchown", refused)
        atomic_write(theirs, b"new", mode=0o600)
    written = theirs.stat()
    assert written.st_gid == os.getegid() != 4
    assert stat.S_IMODE(written.st_mode) == 0o600  # not 0640 for the writer's group
    # No set-id or sticky bit is kept, even for a file without a key.
    plain = tmp_path / "trust.pem"
    plain.write_bytes(b"old")
    plain.chmod(0o6755)
    atomic_write(plain, b"certificates", mode=None)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o755


def _acl_xattr(named_uid: int) -> bytes:
    """A POSIX ACL as Linux stores it: owner rw, user ``named_uid`` r, group none,
    mask r, other none (``ls`` shows 0640: the 4 is the mask)."""
    import struct

    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, named_uid), (0x04, 0, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]  # fmt: skip
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_a_rewritten_store_keeps_its_acl_and_never_turns_its_mask_into_group_access(
    tmp_path: Path,
) -> None:
    """An ACL giving one user read access was lost on rewrite, and its mask (the group
    bits ``stat`` shows) was kept as the owning group's read permission."""
    from mtls import _files

    target = tmp_path / "acl.p12"
    target.write_bytes(b"old")
    target.chmod(0o600)
    try:
        os.setxattr(target, "system.posix_acl_access", _acl_xattr(65534))
    except OSError:
        pytest.skip("no POSIX ACLs on this file system")
    acl = os.getxattr(target, "system.posix_acl_access")
    _files.atomic_write(target, b"new key store", mode=0o600)
    assert os.getxattr(target, "system.posix_acl_access") == acl  # the reader keeps it
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the mask, as before
    # The twin: where the ACL cannot be copied, its mask is not kept as group access.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_files, "_set_acl", lambda fd, acl: False)
        _files.atomic_write(target, b"newer", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="a link of another owner needs root")
def test_a_link_another_user_left_in_a_shared_directory_is_not_followed(tmp_path: Path) -> None:
    """The kernel does not follow it (protected_symlinks); a rename-based write did."""
    from mtls._files import WriteRefused, atomic_write

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.conf"
    victim.write_bytes(b"precious")
    planted = shared / "store.p12"
    planted.symlink_to(victim)
    os.lchown(planted, 65534, 65534)
    with pytest.raises(WriteRefused, match="another user"):
        atomic_write(planted, b"store bytes", mode=0o600)
    assert victim.read_bytes() == b"precious"
    # The twin: root's own link there is followed, as the kernel follows it.
    os.lchown(planted, 0, 0)
    atomic_write(planted, b"store bytes", mode=0o600)
    assert victim.read_bytes() == b"store bytes" and planted.is_symlink()


def test_a_file_this_process_may_not_write_is_refused(tmp_path: Path) -> None:
    """keytool's open() for writing fails on a read-only store; a rename replaced it.
    (os.access answers as the kernel would for a non-root user: root may write all.)"""
    from mtls import _files

    target = tmp_path / "ro.p12"
    target.write_bytes(b"old")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_files.os, "access", lambda path, how: False)
        with pytest.raises(PermissionError, match="read-only to this process"):
            _files.atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"old"
    _files.atomic_write(target, b"new", mode=0o600)  # the twin: writable, written
    assert target.read_bytes() == b"new"


def test_a_store_on_a_read_only_mount_is_said_so(tmp_path: Path) -> None:
    """A store on a file system mounted read-only (a read-only bind mount, a
    Kubernetes secret volume) was "read-only to this process: check its owner and
    mode" (h173): the owner and mode were fine. The twin above: a file this process
    may not write is still said so."""
    import subprocess

    from mtls import _files

    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "store.p12").write_bytes(b"old")
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True, check=False
    )
    if mounted.returncode != 0 or not os.statvfs(ro).f_flag & os.ST_RDONLY:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(ro)], check=False)
        pytest.skip("cannot make a read-only bind mount here (needs root and mount rights)")
    try:
        with pytest.raises(OSError, match="is on a read-only file system") as refused:
            _files.atomic_write(ro / "store.p12", b"new", mode=0o600)
        assert "owner and mode" not in str(refused.value)
        assert (ro / "store.p12").read_bytes() == b"old"
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_truststore_save_follows_umask(pki: PKI, tmp_path: Path) -> None:
    target = tmp_path / "trust.jks"
    old = os.umask(0o022)
    try:
        pki.truststore().save(target, PASSWORD)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # public certificates only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trust.jks"]


def test_a_pem_save_of_several_keys_says_what_save_can_do(tmp_path: Path) -> None:
    """The refusal said "choose one with alias=", which save() does not take (a
    TypeError for whoever followed it). It now says remove() the others, or pick a
    format that holds them all; after remove() the PEM is written."""
    ks = mtls.Keystore.generate("a", "CN=a", key_type="EC")
    ks.add_generated_key("b", "CN=b", key_type="EC")
    target = tmp_path / "two.pem"
    with pytest.raises(mtls.KeyEntryError) as caught:
        ks.save(target, PASSWORD, store_type="PEM")
    assert "alias=" not in str(caught.value) and "remove() the others" in str(caught.value)
    assert not target.exists()
    ks.remove("b")
    ks.save(target, PASSWORD, store_type="PEM")
    assert mtls.Keystore.load(target, PASSWORD).key_aliases == ("a",)


def test_failed_save_leaves_nothing(pki: PKI, tmp_path: Path) -> None:
    ks = pki.client.keystore("client")
    ks.add_certificate("partner", pki.root.cert)
    target = tmp_path / "out.pem"
    with pytest.raises(mtls.KeyEntryError):
        ks.save(target, PASSWORD, store_type="PEM")  # PEM output holds one key entry only
    # A key that is not its certificate's: refused, naming the entry (it was
    # cryptography's bare ValueError), and no file.
    odd = mismatched(pki.client.key, [pki.server.cert], "odd")  # add_key refuses it
    with pytest.raises(mtls.KeyEntryError, match="'odd': its key does not match") as caught:
        odd.save(tmp_path / "out.p12", PASSWORD, store_type="PKCS12")
    assert caught.value.alias == "odd"
    with pytest.raises(ValueError, match="store_type") as bks:
        ks.save(target, PASSWORD, store_type="BKS")  # type: ignore[arg-type]
    assert "JCEKS" not in str(bks.value)
    # JCEKS is read, not written: the message says what to do instead.
    with pytest.raises(ValueError, match=r"JCEKS is read, not written.*-deststoretype JCEKS"):
        ks.save(target, PASSWORD, store_type="JCEKS")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("days", [0, -1, 3_000_000, 1.5, True])
def test_generate_refuses_a_validity_keytool_refuses(days: object) -> None:
    """days=0 made a certificate expired at birth that client_context took; -1 was
    cryptography's bare ValueError and 3,000,000 an OverflowError."""
    with pytest.raises(ValueError, match="days must be a whole number from 1 to 2,900,000"):
        mtls.Keystore.generate("a", "CN=a", key_type="EC", days=days)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "curve"),
    [
        ({"key_size": 384}, "secp384r1"),
        ({"key_size": 521}, "secp521r1"),
        ({"curve": "P-384"}, "secp384r1"),
        ({"key_size": 384, "curve": "secp384r1"}, "secp384r1"),
        ({}, "secp256r1"),
    ],
)
def test_an_ec_key_size_names_its_curve_as_keytool_reads_it(shape, curve) -> None:
    """keytool's -keysize 384 with -keyalg EC is P-384 (and mtls genkey reads it so);
    Keystore.generate(key_type="EC", key_size=384) made a P-256 key, silently, and so
    did key_size=12345 (h185)."""
    cert = mtls.Keystore.generate("a", "CN=a", key_type="EC", **shape).certificate("a")
    assert cert.public_key().curve.name == curve  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("key_type", "shape", "said"),
    [
        ("EC", {"key_size": 12345}, "key_size 12345 names no EC curve"),
        ("EC", {"key_size": 4096}, "key_size 4096 names no EC curve"),
        ("EC", {"key_size": 384, "curve": "secp256r1"}, "is secp384r1, not the curve"),
        ("RSA", {"curve": "secp384r1"}, "curve is for EC keys, not RSA"),
        ("Ed25519", {"key_size": 4096}, "Ed25519 keys have one size"),
        ("RSA", {"key_size": 3072.0}, "key_size must be a whole number"),
        ("RSA", {"key_size": True}, "key_size must be a whole number"),
    ],
)
def test_a_key_shape_the_key_type_does_not_take_is_refused(key_type, shape, said) -> None:
    """The twins: each shape keytool refuses is a ValueError naming it."""
    with pytest.raises(ValueError, match=said):
        mtls.Keystore.generate("a", "CN=a", key_type=key_type, **shape)


@pytest.mark.parametrize(
    ("key_type", "shape", "made"),
    [
        ("EC", {"key_size": 2048}, "secp256r1"),
        ("EC", {"key_size": 2048, "curve": "secp384r1"}, "secp384r1"),
        ("RSA", {"key_size": 3072, "curve": "secp256r1"}, 3072),
        ("Ed25519", {"key_size": 2048, "curve": "secp256r1"}, "ed25519"),
    ],
)
def test_the_former_defaults_given_explicitly_still_mean_nothing(key_type, shape, made) -> None:
    """key_size=2048 and curve="secp256r1" were the signature's defaults, meaningless
    for the other key types: code that passed them explicitly (key_type="EC",
    key_size=2048) made keys before and was refused by the first cut of the EC size
    rule (h187). They are taken as not given; the CLI, as keytool, still refuses them."""
    key = mtls.Keystore.generate("a", "CN=a", key_type=key_type, **shape).certificate("a")
    public = key.public_key()
    got = getattr(getattr(public, "curve", None), "name", None) or getattr(
        public, "key_size", "ed25519"
    )
    assert got == made


def test_generate_takes_the_whole_range() -> None:
    for days in (1, 2_900_000):
        cert = mtls.Keystore.generate("a", "CN=a", key_type="EC", days=days).certificate("a")
        assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == days


def test_generate_like_keytool_genkeypair(tmp_path: Path) -> None:
    ks = mtls.Keystore.generate(
        "gw",
        "CN=gateway, OU=Eng, O=Acme, C=US",
        key_type="EC",
        days=30,
        san=["DNS:gw.example", "IP:10.0.0.1"],
    )
    cert = ks.certificate("gw")
    assert cert.subject == cert.issuer  # self-signed, as -genkeypair
    # keytool's -dname order: C is the first RDN of the encoded name, CN the last.
    assert cert.subject.rfc4514_string() == "CN=gateway,OU=Eng,O=Acme,C=US"
    assert cert.subject.rdns[0].rfc4514_string() == "C=US"
    assert _x509.subject_alt_names(cert) == ["DNS:gw.example", "IP:10.0.0.1"]
    assert 29 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 30
    with pytest.raises(ValueError, match="key_type"):
        mtls.Keystore.generate("x", "CN=x", key_type="DSA")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2048"):
        mtls.Keystore.generate("x", "CN=x", key_type="RSA", key_size=1024)


@pytest.mark.parametrize(
    "san",
    ["dsn:typo.example", "bad name with spaces", "a..b.example", "x.*.example",
     "-lead.example", "oid:not-an-oid", "IP:300.1.1.1", "uri:not a uri"],
)  # fmt: skip
def test_a_san_keytool_refuses_is_refused(san: str) -> None:
    """An unknown type was written as a DNS name (DNS:dsn:typo.example), as was a name
    with spaces or an empty label; keytool refuses them, and so does mtls now."""
    with pytest.raises(ValueError, match=r"not a DNS name|unknown type|not an|not a URI"):
        mtls.Keystore.generate("x", "CN=x", key_type="EC", san=[san])


def test_the_sans_mtls_takes_are_written() -> None:
    # keytool takes these too, but for the underscore of internal names and non-ASCII
    # names (written as their A-labels), which it refuses and mtls accepts on purpose.
    ks = mtls.Keystore.generate(
        "x", "CN=x", key_type="EC",
        san=["*.wild.example", "_srv.internal", "oid:1.2.3.4", "fe80::1", "user@x.example",
             "URI:https://x.example/a", "DNS:bücher.example"],
    )  # fmt: skip
    names = ks.certificate("x").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [
        "*.wild.example", "_srv.internal", "xn--bcher-kva.example"
    ]  # fmt: skip
    assert names.value.get_values_for_type(x509.RegisteredID) == [x509.ObjectIdentifier("1.2.3.4")]
    assert len(names.value.get_values_for_type(x509.IPAddress)) == 1


# --------------------------------------------------------------------------- repr and secrets


def test_repr_never_shows_passwords_or_keys(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "secret.jks"
    pki.client.keystore("client").save(path, PASSWORD, key_password=KEY_PASSWORD)
    ks = mtls.Keystore.load(path, mtls.Secret(PASSWORD), key_password=mtls.Secret(KEY_PASSWORD))
    ts = mtls.Truststore.load(path, PASSWORD)
    key_der = ks.key_entry()[1]
    forbidden = [PASSWORD, KEY_PASSWORD, key_der.hex()[:32], *pki.client.key_b64_fragments()]
    for text in (repr(ks), str(ks), repr(ts), str(ts), repr(ks._entries._keys)):
        for secret in forbidden:
            assert secret not in text
    # What it does show: the type, the file, the alias, the subject.
    assert repr(ks) == (
        f"<Keystore JKS from {str(path)!r}: 1 key entry ['client' "
        f"{pki.client.cert.subject.rfc4514_string()}], 0 trusted certificates>"
    )
    assert "CN=client rsa" in str(ts)
    # The negative control: the fragments really are from the key.
    assert pki.client.key_b64_fragments()[0] in base64.b64encode(key_der).decode()


# --------------------------------------------------------------------------- errors


@pytest.fixture
def jks_file(pki: PKI, tmp_path: Path) -> Path:
    path = tmp_path / "client.jks"
    ks = pki.client_ec.keystore("client")
    ks.add_certificate("partner", pki.other_root.cert)
    ks.save(path, PASSWORD)
    return path


def test_wrong_store_password_jks(jks_file: Path) -> None:
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(jks_file, "Wrong-Store-Pw")
    assert_store_error(info, jks_file, mentions="wrong store password")
    assert_clean(info.value, "Wrong-Store-Pw")
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(jks_file, "Wrong-Store-Pw")


@pytest.mark.parametrize("store_type", ["PKCS12"])
def test_wrong_or_missing_password_pkcs12(
    client_ks: mtls.Keystore, tmp_path: Path, store_type: str
) -> None:
    path = tmp_path / "client.p12"
    client_ks.save(path, PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, "Wrong-Store-Pw")
    assert_store_error(info, path)
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, None)
    assert_store_error(info, path, mentions="pass its password")


def test_tampered_certificate_in_keystore_is_a_format_error(pki: PKI, jks_file: Path) -> None:
    data = bytearray(jks_file.read_bytes())
    der = pki.client_ec.cert.public_bytes(serialization.Encoding.DER)
    at = bytes(data).find(der)
    assert at > 0
    data[at + len(der) // 2] ^= 0x01  # one bit inside the certificate
    jks_file.write_bytes(bytes(data))
    # The password still unlocks the key, so the file was modified: not a password problem.
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(jks_file, PASSWORD)
    assert_store_error(info, jks_file, mentions="modified")


def test_a_store_password_changed_by_keytool_is_named_as_a_cause(
    any_keytool: JDK, jks_file: Path
) -> None:
    """keytool -storepasswd changes a JKS store's password and leaves its key's: the old
    password unlocks the key but fails the integrity check, exactly as a modified file
    does. The message named only "modified or damaged; replace it" (a rotation soak
    found it mid password change); it names the password change first now."""
    run_keytool(any_keytool, "-storepasswd", "-keystore", str(jks_file), "-storepass",
                PASSWORD, "-new", "N3w-store-Pass")  # fmt: skip
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(jks_file, PASSWORD)
    assert "keytool -storepasswd" in str(info.value) and "use the new one" in str(info.value)
    assert PASSWORD not in str(info.value)
    # The twin: with the new store password it opens, its key with the old one.
    store = mtls.Keystore.load(jks_file, "N3w-store-Pass", key_password=PASSWORD)
    assert store.key_aliases == ("client",)


def test_tampered_truststore_jks_is_reported_with_its_two_causes(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "trust.jks"
    pki.truststore(pki.root).save(path, PASSWORD)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    # No key to tell a wrong password from a modified file: the message names both.
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Truststore.load(path, PASSWORD)
    assert_store_error(info, path, mentions="modified")
    assert "password" in str(info.value)


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12", "PEM"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.95])
def test_truncated_store_is_a_format_error(
    client_ks: mtls.Keystore, tmp_path: Path, store_type: str, keep: float
) -> None:
    data = client_ks.to_bytes(PASSWORD, store_type=store_type)  # type: ignore[arg-type]
    path = tmp_path / "cut.store"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Keystore.load(path, PASSWORD)
    assert_store_error(info, path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jks"
    path.write_bytes(b"")
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Truststore.load(path, PASSWORD)
    assert_store_error(info, path, mentions="empty")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jks"
    with pytest.raises(mtls.KeystoreNotFoundError) as info:
        mtls.Keystore.load(path, PASSWORD)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, mtls.KeystoreError)
    assert info.value.filename == str(path)
    assert info.value.errno == 2
    assert_store_error(info, path)
    with pytest.raises(FileNotFoundError):  # code that handles missing files keeps working
        mtls.Truststore.load(path)


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(mtls.KeystoreError) as info:
        mtls.Keystore.load(tmp_path, PASSWORD)
    assert not isinstance(info.value, mtls.KeystoreNotFoundError)
    assert_store_error(info, tmp_path, mentions="directory")


def test_unreadable_path(jks_file: Path) -> None:
    # A path through a regular file: an OSError other than "missing" (ENOTDIR).
    path = jks_file / "inside.jks"
    with pytest.raises(mtls.KeystoreError) as info:
        mtls.Keystore.load(path, PASSWORD)
    assert not isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value.__cause__, OSError)
    assert_store_error(info, path, mentions="cannot read")
    assert "a part of it is a file" in str(info.value)
    assert "permissions" not in str(info.value)  # not the cause: no reason to look there


def test_symbolic_link_loop(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.jks", tmp_path / "a.jks")
    os.symlink(tmp_path / "a.jks", tmp_path / "b.jks")
    with pytest.raises(mtls.KeystoreError) as info:
        mtls.Truststore.load(tmp_path / "a.jks", PASSWORD)
    assert not isinstance(info.value, mtls.KeystoreNotFoundError)  # it is there, looped
    assert_store_error(info, tmp_path / "a.jks", mentions="symbolic links")
    assert "loop" in str(info.value)
    assert "permissions" not in str(info.value)


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a chmod 000 file: permissions cannot be tested"
)
def test_permission_denied(jks_file: Path) -> None:
    jks_file.chmod(0)
    try:
        with pytest.raises(mtls.KeystoreError) as info:
            mtls.Keystore.load(jks_file, PASSWORD)
        assert_store_error(info, jks_file, mentions="permissions")
    finally:
        jks_file.chmod(0o600)


def test_several_key_entries_need_an_alias(pki: PKI, tmp_path: Path) -> None:
    ks = pki.client.keystore("first")
    ks.add_key("second", pki.client_ec.key, pki.client_ec.chain)
    path = tmp_path / "two.jks"
    ks.save(path, PASSWORD)
    loaded = mtls.Keystore.load(path, PASSWORD)
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(loaded)
    assert_store_error(info, path, mentions="'first', 'second'")
    assert "alias=" in str(info.value)
    assert mtls.client_context(loaded, alias="Second") is not None
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(loaded, alias="third")
    assert_store_error(info, path, alias="third", mentions="'first', 'second'")


def test_truststore_file_as_keystore_has_no_key(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "trust.jks"
    pki.truststore().save(path, PASSWORD)
    ks = mtls.Keystore.load(path, PASSWORD)
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(ks)
    assert_store_error(info, path, mentions="no private-key entry")


def test_pem_key_only_is_not_a_truststore(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pki.client_ec.key_pem())
    with pytest.raises(mtls.KeystoreFormatError) as info:
        mtls.Truststore.load(path)
    assert_store_error(info, path, mentions="no certificates")
    assert_clean(info.value, *pki.client_ec.key_b64_fragments())


def test_openssl_nokeys_pkcs12_is_a_truststore(pki: PKI) -> None:
    # No keytool trust attribute: the certificates are what the user means to trust.
    data = pkcs12.serialize_key_and_certificates(
        None,
        None,
        None,
        [pki.root.cert, pki.other_root.cert],
        serialization.BestAvailableEncryption(b"pw"),
    )
    ts = mtls.Truststore.from_bytes(data, "pw")
    assert set(ts.certificates.values()) == {pki.root.cert, pki.other_root.cert}
    ks = mtls.Keystore.from_bytes(data, "pw")
    assert ks.key_aliases == ()


def test_nokeys_pkcs12_certificates_keep_their_friendly_names(pki: PKI) -> None:
    """Aliases are the friendlyName as written (docs/keystores.md); certificates without
    a trust attribute were named by their CN, their friendlyName dropped (pyca's
    no-cert-name vectors: name2, name3, a non-ASCII one). Twin: none, the CN."""
    named = pkcs12.serialize_key_and_certificates(
        None,
        None,
        None,
        [
            pkcs12.PKCS12Certificate(pki.root.cert, b"name2"),
            pkcs12.PKCS12Certificate(pki.other_root.cert, "naïve ☹".encode()),
        ],
        serialization.BestAvailableEncryption(b"pw"),
    )
    ts = mtls.Truststore.from_bytes(named, "pw")
    assert ts.certificates == {"name2": pki.root.cert, "naïve ☹": pki.other_root.cert}
    # An empty friendlyName is a name too (keytool lists it as ""), not a ValueError.
    empty = pkcs12.serialize_key_and_certificates(
        None,
        None,
        None,
        [pkcs12.PKCS12Certificate(pki.root.cert, b"")],
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert mtls.Truststore.from_bytes(empty, "pw").aliases == ("",)
    unnamed = pkcs12.serialize_key_and_certificates(
        None, None, None, [pki.root.cert], serialization.BestAvailableEncryption(b"pw")
    )
    (alias,) = mtls.Truststore.from_bytes(unnamed, "pw").aliases
    pem = pki.root.cert.public_bytes(serialization.Encoding.PEM)
    assert alias == mtls.Truststore.from_bytes(pem).aliases[0] != "name2"


# --------------------------------------------------------------------------- PEM as openssl writes it
# openssl writes these files on purpose: an independent writer of the forms WSO2 estates hold.


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pem") / "ca.pem"
    path.write_bytes(CA(name="pem CA", key_type="RSA").cert_pem)
    return path


def run_openssl(openssl_bin: str, *args: str) -> bytes:
    return subprocess.run([openssl_bin, *args], check=True, capture_output=True, timeout=60).stdout


def test_trusted_certificate_without_settings_loads(
    openssl_bin: str, ca_pem: Path, tmp_path: Path
) -> None:
    out = tmp_path / "trusted.pem"
    run_openssl(
        openssl_bin, "x509", "-in", str(ca_pem), "-trustout", "-setalias", "my ca", "-out", str(out)
    )
    assert b"BEGIN TRUSTED CERTIFICATE" in out.read_bytes()
    trust = mtls.Truststore.load(out)
    assert trust.anchors_der == mtls.Truststore.load(ca_pem).anchors_der


@pytest.mark.parametrize(
    "settings",
    [("-addtrust", "clientAuth"), ("-addtrust", "serverAuth"), ("-addreject", "serverAuth")],
)
def test_trusted_certificate_with_trust_settings_is_refused_not_widened(
    openssl_bin: str, ca_pem: Path, tmp_path: Path, settings: tuple[str, str]
) -> None:
    """OpenSSL narrows trust by these settings (``-addtrust clientAuth`` means: not for
    servers); mtls cannot apply them, so it refuses the block instead of ignoring them."""
    out = tmp_path / "settings.pem"
    run_openssl(openssl_bin, "x509", "-in", str(ca_pem), *settings, "-trustout", "-out", str(out))
    with pytest.raises(mtls.KeystoreFormatError, match="trust or reject settings"):
        mtls.Truststore.load(out)


def test_openssl_text_output_before_the_pem_block(openssl_bin: str, tmp_path: Path) -> None:
    rsa_ca = tmp_path / "ca-rsa.pem"
    rsa_ca.write_bytes(CA(name="big", key_type="RSA").cert_pem)
    text = tmp_path / "text.pem"
    run_openssl(openssl_bin, "x509", "-in", str(rsa_ca), "-text", "-out", str(text))
    assert text.read_bytes().index(b"-----BEGIN") > 1000
    assert len(mtls.Truststore.load(text)) == 1


# --------------------------------------------------------------------------- PKCS#12 writes


def test_pkcs12_needs_a_password_and_says_so(tmp_path: Path) -> None:
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    with pytest.raises(ValueError, match="needs a password"):
        ks.save(tmp_path / "k.p12", "", store_type="PKCS12")
    assert not list(tmp_path.iterdir())


@pytest.mark.keytool
def test_pkcs12_certificates_under_an_empty_password(tmp_path: Path, jdk_keytool: JDK) -> None:
    """Trusted certificates need no encryption: under the empty password (a store
    exported with one, which keytool edits) they are written in the clear under a MAC
    keyed by it, which Java verifies given "" and skips given no password."""
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    path = tmp_path / "t.p12"
    ks.truststore().save(path, "", store_type="PKCS12")
    assert mtls.Truststore.load(path, "").aliases == ("k",)
    assert mtls.Truststore.load(path, None).aliases == ("k",)
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(path, "not-empty")
    listed = run_keytool(jdk_keytool, "-list", "-keystore", str(path), "-storepass", "")
    assert "contains 1 entry" in listed


@pytest.mark.keytool
def test_a_passwordless_pkcs12_is_saved_passwordless_when_asked(
    tmp_path: Path, jdk_keytool: JDK, caplog: pytest.LogCaptureFixture
) -> None:
    """``passwordless`` says a store was read in the JDK's password-less format (no MAC,
    nothing encrypted); ``save(..., passwordless=store.passwordless)`` writes it so
    again, as keytool keeps it, and Java opens it without a password. By default a save
    protects the store with the password given (a password given and silently unused
    was a surprise, and a profile declaring PKCS12 with that password refused the file).
    A key entry is never written without a MAC: that save protects, and says so."""
    cert = tmp_path / "ca.pem"
    cert.write_bytes(CA(name="root").cert_pem)
    source = tmp_path / "cacerts.p12"
    run_keytool(jdk_keytool, "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
                "-J-Dkeystore.pkcs12.macAlgorithm=NONE", "-importcert", "-keystore",
                str(source), "-storetype", "PKCS12", "-storepass", "changeit", "-alias",
                "root", "-file", str(cert))  # fmt: skip
    loaded = mtls.Truststore.load(source, None)
    assert loaded.passwordless
    loaded.add("again", cert.read_bytes())
    kept = tmp_path / "kept.p12"
    loaded.save(kept, "changeit", store_type="PKCS12", passwordless=loaded.passwordless)
    assert set(mtls.Truststore.load(kept, None).aliases) == {"again", "root"}
    assert "contains 2 entries" in subprocess.run(
        [jdk_keytool.keytool, "-list", "-keystore", str(kept)],
        input="\n", capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    protected = tmp_path / "protected.p12"
    loaded.save(protected, "changeit", store_type="PKCS12")
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(protected, None)
    assert not mtls.Truststore.load(protected, "changeit").passwordless
    # A key entry added: protected whatever is asked, with a warning.
    keystore = mtls.Keystore.load(source, None)
    keystore.add_generated_key("k", "CN=k", key_type="EC")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        keystore.save(tmp_path / "k.p12", "changeit", store_type="PKCS12", passwordless=True)
    assert "not written password-less" in caplog.text
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(tmp_path / "k.p12", None)
    with pytest.raises(TypeError, match="passwordless must be True or False"):
        loaded.save(kept, "changeit", store_type="PKCS12", passwordless="yes")  # type: ignore[arg-type]


def test_a_jks_key_entry_needs_a_password(tmp_path: Path) -> None:
    """A JKS key entry under the empty password (or None) was written: its key under a
    keystream anyone can derive, and keytool could not export or convert it ("Too many
    failures"). Refused, as for PKCS#12. The twins: a truststore, which has no key, is
    written with an empty password, and a keystore with a password is."""
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    for password, key_password in (("", None), (None, None), (PASSWORD, "")):
        with pytest.raises(ValueError, match="a JKS key entry needs a password"):
            ks.save(tmp_path / "k.jks", password, key_password=key_password)
    assert not list(tmp_path.iterdir())
    ks.truststore().save(tmp_path / "t.jks", "")
    assert mtls.Truststore.load(tmp_path / "t.jks", "").aliases == ("k",)
    ks.save(tmp_path / "k.jks", PASSWORD)
    assert mtls.Keystore.load(tmp_path / "k.jks", PASSWORD).key_aliases == ("k",)


# What os.environ and sys.argv give for a password byte that is not UTF-8 (a Latin-1
# "ä"): a lone surrogate, which no encoder takes.
NOT_UTF8 = "Sekr3t-Zq81\udce4"


def _chain_text(exc: BaseException | None) -> str:
    """Everything an error reporter could show of ``exc`` and what is chained to it."""
    out = []
    while exc is not None:
        out += [str(exc), repr(exc), repr(exc.args), repr(getattr(exc, "object", ""))]
        exc = exc.__cause__ or exc.__context__
    return "".join(out)


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12", "PEM"])
@pytest.mark.parametrize("which", ["password", "key_password"])
def test_a_password_that_is_not_text_is_refused_without_being_shown(
    tmp_path: Path, store_type: str, which: str
) -> None:
    """A password with a lone surrogate reached the encoders, whose UnicodeEncodeError
    carries the whole password in its args (a secret-hygiene sweep). Refused first,
    naming the cause and not the value. The twin: the same password as UTF-8 is written."""
    ks = mtls.Keystore.generate("k", "CN=k", key_type="EC")
    given = {"password": PASSWORD, "key_password": None}
    given[which] = NOT_UTF8
    if which == "key_password" and store_type != "JKS":
        given["password"] = NOT_UTF8  # one password in these formats
    with pytest.raises(ValueError, match=r"not text .*give it as UTF-8") as info:
        ks.save(tmp_path / "k.store", given["password"], store_type=store_type,  # type: ignore[arg-type]
                key_password=given["key_password"])  # fmt: skip
    assert "Zq81" not in _chain_text(info.value)
    if which == "password":
        with pytest.raises(ValueError, match="not text") as info:
            ks.truststore().to_bytes(NOT_UTF8, store_type=store_type)  # type: ignore[arg-type]
        assert "Zq81" not in _chain_text(info.value)
    assert not list(tmp_path.iterdir())
    latin = NOT_UTF8.encode("utf-8", "surrogateescape").decode("latin-1")  # "...ä"
    ks.save(tmp_path / "k.store", latin, store_type=store_type)  # type: ignore[arg-type]
    assert mtls.Keystore.load(tmp_path / "k.store", latin).key_aliases == ("k",)


def test_secrets_holding_a_lone_surrogate_compare_without_raising() -> None:
    """Secret.__eq__ encoded strictly: comparing two store configurations (a reload
    does, to find what changed) raised a UnicodeEncodeError holding the password, and
    the profile set never reloaded again."""
    assert mtls.Secret(NOT_UTF8) == mtls.Secret(NOT_UTF8)
    assert mtls.Secret(NOT_UTF8) != mtls.Secret(PASSWORD)
    assert mtls.Secret(NOT_UTF8) != mtls.Secret(NOT_UTF8[:-1] + "\udce5")


def test_add_key_refuses_a_key_that_is_not_its_certificates() -> None:
    """A key under another key's certificate was taken, and written as JKS or PEM
    (only the PKCS#12 writer refused it): an identity no peer accepts. Refused when
    added, as are bytes that are not PKCS#8 (a pyasn1 traceback at the JKS save) and
    a password given as bytes (an AttributeError). The twin: the right pair is added."""
    ca = CA()
    a, b = ca.issue_cert("a"), ca.issue_cert("b", key_type="RSA")
    ks = mtls.Keystore()
    for key, cert in ((a.private_key, b.certificate), (b.private_key, a.certificate),
                      (a.private_key, ca.certificate)):  # fmt: skip
        with pytest.raises(mtls.KeyEntryError, match="not the first certificate's") as info:
            ks.add_key("mm", key, [cert])
        assert info.value.alias == "mm"
    with pytest.raises(ValueError, match="PKCS#8 PrivateKeyInfo"):
        ks.add_key("junk", b"\x30\x03\x02\x01\x00", [a.certificate])
    with pytest.raises(TypeError, match="cryptography private key"):
        ks.add_key("junk", "a key", [a.certificate])  # type: ignore[arg-type]
    assert ks.aliases == ()
    ks.add_key("a", a.private_key, [a.certificate, ca.certificate])
    pkcs8 = b.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ks.add_key("b", pkcs8, [b.certificate])
    assert ks.key_aliases == ("a", "b")
    with pytest.raises(TypeError, match="not bytes: decode them first"):
        ks.to_bytes(PASSWORD.encode())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not bytes"):
        mtls.Keystore.from_bytes(ks.to_bytes(PASSWORD), PASSWORD.encode())  # type: ignore[arg-type]


def test_pem_boundaries_as_openssl_and_keytool_take_them(pki: PKI) -> None:
    """A space after a BEGIN line (editors leave them) and OpenSSL's own
    ``X9.42 DH PARAMETERS`` block before the key were refused as "truncated or
    damaged": OpenSSL, Python's load_cert_chain and keytool take both. Twin: a BEGIN
    line with text after it is still refused."""
    key = pki.client_ec.key_pem()
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.client_ec.chain)
    spaced = (key + chain).replace(b"-----\n", b"-----  \n").replace(b"-----\n", b"-----\t\n")
    assert mtls.Keystore.from_bytes(spaced, None).key_entry()[1] == pki.client_ec.key_der()
    dh = b"-----BEGIN X9.42 DH PARAMETERS-----\nMAA=\n-----END X9.42 DH PARAMETERS-----\n"
    assert (
        mtls.Keystore.from_bytes(dh + key + chain, None).key_entry()[1] == pki.client_ec.key_der()
    )
    assert len(mtls.Truststore.from_bytes(dh + chain).aliases) == len(pki.client_ec.chain)
    mangled = (key + chain).replace(
        b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE----- x\n", 1
    )
    with pytest.raises(mtls.KeystoreFormatError, match="no matching END line"):
        mtls.Keystore.from_bytes(mangled, None)


def test_an_openssh_key_is_named_with_its_conversion(pki: PKI) -> None:
    """ssh-keygen's own format (``OPENSSH PRIVATE KEY``) was "cannot be read: fix the
    file". Twin: the same key as PKCS#8 is read."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.client_ec.cert.public_bytes(serialization.Encoding.PEM)
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    with pytest.raises(mtls.KeystoreFormatError, match="ssh-keygen -p -m PKCS8"):
        mtls.Keystore.from_bytes(openssh + cert, None)
    assert mtls.Keystore.from_bytes(pki.client_ec.key_pem() + cert, None).key_aliases


@pytest.mark.parametrize("make", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_a_copied_store_changes_apart_from_its_original(
    make: Callable[[Any], Any],
) -> None:
    """copy.copy of a store shared its entries with the original: a certificate added
    to the copy (or an entry removed from it) changed the original too (h148). Each
    copy now has entries of its own; what the two held at the copy stays equal."""
    ca, other = CA(name="copied"), CA(name="added")
    trust = ca.truststore("ca")
    keystore = other.issue_cert("client").keystore("client")
    trust_copy, keystore_copy = make(trust), make(keystore)
    assert trust_copy.aliases == trust.aliases == ("ca",)
    assert keystore_copy.fingerprint == keystore.fingerprint
    trust_copy.add("other", other.certificate)
    trust_copy.remove("ca")
    keystore_copy.remove("client")
    assert trust.aliases == ("ca",)
    assert trust_copy.aliases == ("other",)
    assert keystore.aliases == ("client",)
    assert keystore_copy.aliases == ()
