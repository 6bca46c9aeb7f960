"""Interop with the JDK's own keytool (17 on PATH, and 25 where installed).

Both directions: stores keytool writes load here with the aliases, certificates
and chains keytool itself reports; stores we write are listed, exported and
unlocked by keytool.
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import jks
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from pyasn1.error import PyAsn1Error

import mtls
from mtls import _x509
from mtls.testing import CA
from tests._keytool import (
    JDK,
    KEYPASS,
    KEYTOOL_EXPORTS,
    KEYTOOL_STORES,
    STOREPASS,
    KeytoolStores,
    keytool_list,
    run_keytool,
)

pytestmark = pytest.mark.keytool

KEY_STORES = [
    name
    for name, (_, aliases, _) in KEYTOOL_STORES.items()
    if "PrivateKeyEntry" in aliases.values()
]
TRUST_ONLY = [name for name in KEYTOOL_STORES if name not in KEY_STORES]


def _fingerprints(certs: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> list[str]:
    return [
        _x509.colon_hex(_x509.sha256_hex(c.public_bytes(serialization.Encoding.DER))) for c in certs
    ]


# --------------------------------------------------------------------------- keytool -> us


@pytest.mark.parametrize("name", KEY_STORES)
def test_keytool_keystore_loads_as_keytool_lists_it(
    keytool_stores: KeytoolStores, name: str
) -> None:
    store_type, expected, key_password = KEYTOOL_STORES[name]
    listing = keytool_stores.listing[name]
    assert {a: e.entry_type for a, e in listing.items()} == expected  # the fixture is what we think

    ks = mtls.Keystore.load(keytool_stores.path(name), STOREPASS, key_password=key_password)

    assert ks.store_type == store_type
    assert sorted(ks.aliases) == sorted(listing)
    for alias, entry in listing.items():
        assert ks.is_key_entry(alias) == (entry.entry_type == "PrivateKeyEntry")
        chain = ks.certificate_chain(alias)
        assert len(chain) == entry.chain_length
        assert _fingerprints(chain) == entry.sha256
    # OpenSSL accepts the decrypted key with its certificate: the key bytes are right.
    ctx = mtls.client_context(ks, alias=ks.key_aliases[0])
    assert type(ctx) is ssl.SSLContext


@pytest.mark.parametrize("name", KEY_STORES)
def test_keytool_keystore_with_wrong_key_password_is_refused(
    keytool_stores: KeytoolStores, name: str
) -> None:
    _, _, key_password = KEYTOOL_STORES[name]
    path = keytool_stores.path(name)
    if key_password is None:
        # PKCS#12 has one password: a wrong one is a wrong store password.
        with pytest.raises(mtls.WrongPasswordError) as info:
            mtls.Keystore.load(path, "not-" + STOREPASS)
    else:
        # JKS/JCEKS: the store password is right, the key needs its own.
        with pytest.raises(mtls.WrongPasswordError) as info:
            mtls.Keystore.load(path, STOREPASS)
        assert info.value.alias in KEYTOOL_STORES[name][1]
        assert "key_password" in str(info.value)
        with pytest.raises(mtls.WrongPasswordError):
            mtls.Keystore.load(path, STOREPASS, key_password="not-" + KEYPASS)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert STOREPASS not in str(info.value)
    assert KEYPASS not in str(info.value)


@pytest.mark.parametrize("name", TRUST_ONLY)
def test_keytool_truststore_loads_as_keytool_lists_it(
    keytool_stores: KeytoolStores, name: str
) -> None:
    store_type, expected, _ = KEYTOOL_STORES[name]
    listing = keytool_stores.listing[name]
    assert {a: e.entry_type for a, e in listing.items()} == expected

    ts = mtls.Truststore.load(keytool_stores.path(name), STOREPASS)

    assert ts.store_type == store_type
    assert sorted(ts.aliases) == sorted(listing)
    for alias, cert in ts.certificates.items():
        assert _fingerprints([cert]) == listing[alias].sha256
    # The RSA entry keytool imported is the very certificate of rsa.jks.
    assert ts.export_certificate("rsa-peer", "DER") == keytool_stores.exported_der(
        "rsa.jks", "rsa-key"
    )
    # The key entry's certificate and the imported one are one certificate.
    ks = mtls.Keystore.load(keytool_stores.path("rsa.jks"), STOREPASS, key_password=KEYPASS)
    assert ts.certificate("rsa-peer") == ks.certificate("rsa-key")


@pytest.mark.parametrize("name", TRUST_ONLY)
def test_keytool_truststore_with_wrong_password_is_refused(
    keytool_stores: KeytoolStores, name: str
) -> None:
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Truststore.load(keytool_stores.path(name), "wrong-password")
    assert "wrong-password" not in str(info.value)


@pytest.mark.parametrize("ref", list(KEYTOOL_EXPORTS))
def test_export_certificate_der_equals_keytool_exportcert(
    keytool_stores: KeytoolStores, ref: str
) -> None:
    name, alias = ref.split("/")
    ks = mtls.Keystore.load(
        keytool_stores.path(name), STOREPASS, key_password=KEYTOOL_STORES[name][2]
    )
    der = keytool_stores.exported_der(name, alias)
    assert ks.export_certificate(alias, "DER") == der
    # PEM is keytool -exportcert -rfc: the same DER, base64 in 64-column lines.
    assert ks.export_certificate(alias, "pem") == ssl.DER_cert_to_PEM_cert(der).encode()
    # Negative twin: another entry's export differs.
    others = [r for r in KEYTOOL_EXPORTS if r != ref]
    assert all(keytool_stores.exported_der(*r.split("/")) != der for r in others)


@pytest.mark.parametrize("name", ["chain.jks", "mixed.p12"])
def test_ca_chained_entry_has_the_ca_as_second_certificate(
    keytool_stores: KeytoolStores, name: str
) -> None:
    ks = mtls.Keystore.load(
        keytool_stores.path(name), STOREPASS, key_password=KEYTOOL_STORES[name][2]
    )
    leaf, ca = ks.certificate_chain("leaf")
    assert leaf.issuer == ca.subject
    assert ca.subject.rfc4514_string() == "CN=Keytool Test CA,O=mtls tests"
    assert ks.certificate("ca") == ca  # the trusted entry is the same CA
    assert ks.trusted_aliases == ("ca",)
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_jdk21_jks_key_entries_need_our_decryption(keytool_stores: KeytoolStores) -> None:
    """pyjks 20.0.0 alone cannot decrypt JDK 21+ JKS key entries (pyjks issue 79); we can."""
    path = keytool_stores.path("rsa.jks")
    raw = jks.KeyStore.load(str(path), STOREPASS, try_decrypt_keys=False)
    entry = raw.entries["rsa-key"]
    if keytool_stores.jdk.major >= 21:
        with pytest.raises(PyAsn1Error):
            entry.decrypt(KEYPASS)
    else:
        entry.decrypt(KEYPASS)
        assert entry.is_decrypted()
    ks = mtls.Keystore.load(path, STOREPASS, key_password=KEYPASS)
    _, key_der, _ = ks.key_entry("rsa-key")
    key = serialization.load_der_private_key(key_der, None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == ks.certificate("rsa-key").public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("name", ["rsa.jks", "chain.jks", "ec.jceks"])
def test_truststore_from_keystore_file_needs_no_key_password(
    keytool_stores: KeytoolStores, name: str
) -> None:
    path = keytool_stores.path(name)
    listing = keytool_stores.listing[name]
    for password in (STOREPASS, None):  # None: no integrity check, as Java allows
        ts = mtls.Truststore.load(path, password)
        assert sorted(ts.aliases) == sorted(listing)
        # A key entry's leaf is an anchor (Java's TrustManager does the same).
        for alias, entry in listing.items():
            assert _fingerprints([ts.certificates[alias]]) == entry.sha256[:1]
    # The negative twin: the same file as a Keystore does need the key password.
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, STOREPASS)


def test_truststore_from_pkcs12_keystore_includes_the_leaves(keytool_stores: KeytoolStores) -> None:
    ts = mtls.Truststore.load(keytool_stores.path("mixed.p12"), STOREPASS)
    listing = keytool_stores.listing["mixed.p12"]
    assert sorted(ts.aliases) == sorted(listing) == ["ca", "ec-key", "leaf", "rsa-key"]
    for alias, entry in listing.items():
        assert _fingerprints([ts.certificates[alias]]) == entry.sha256[:1]


def test_several_key_entries_need_an_alias(keytool_stores: KeytoolStores) -> None:
    path = keytool_stores.path("mixed.p12")
    ks = mtls.Keystore.load(path, STOREPASS)
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(ks)
    for alias in ("ec-key", "leaf", "rsa-key"):
        assert alias in str(info.value)
    assert info.value.path == str(path)
    assert "alias=" in str(info.value)
    # Negative twin: naming one (in any case, as Java does) works.
    assert type(mtls.client_context(ks, alias="RSA-Key")) is ssl.SSLContext


@pytest.mark.parametrize(
    ("name", "declared"),
    [("mixed.p12", "JKS"), ("rsa.jks", "PKCS12"), ("ec.jceks", "PKCS12"), ("chain.jks", "JCEKS")],
)
def test_declared_type_that_disagrees_with_content_still_loads(
    keytool_stores: KeytoolStores, name: str, declared: str
) -> None:
    store_type, _, key_password = KEYTOOL_STORES[name]
    ks = mtls.Keystore.load(
        keytool_stores.path(name), STOREPASS, key_password=key_password, store_type=declared
    )
    assert ks.store_type == store_type != declared
    ts = mtls.Truststore.load(keytool_stores.path(name), STOREPASS, store_type=declared)
    assert ts.store_type == store_type


# --------------------------------------------------------------------------- us -> keytool


def _csr_public_key(
    kt: JDK, store: Path, alias: str, store_pass: str, key_pass: str, out: Path
) -> bytes:
    """keytool -certreq signs with the private key: it proves keytool can unlock it."""
    run_keytool(kt, "-certreq", "-alias", alias, "-keystore", str(store), "-storepass", store_pass,
                "-keypass", key_pass, "-file", str(out))  # fmt: skip
    csr = x509.load_pem_x509_csr(out.read_bytes())
    assert csr.is_signature_valid
    return csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_keytool_reads_our_jks_keystore_with_separate_key_password(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    ks = mtls.Keystore.generate("gateway", "CN=gateway, O=mtls", key_type="EC")
    ks.add_generated_key("Backup-RSA", "CN=backup", key_type="RSA")
    ks.add_certificate(
        "partner", mtls.Keystore.generate("p", "CN=partner", key_type="EC").certificate("p")
    )
    path = tmp_path / "ours.jks"
    ks.save(path, "store-pw-1", store_type="JKS", key_password="key-pw-2")

    listing = keytool_list(jdk_keytool, path, "store-pw-1")
    # JKS folds aliases to lower case, as keytool does.
    assert {a: e.entry_type for a, e in listing.items()} == {
        "gateway": "PrivateKeyEntry",
        "backup-rsa": "PrivateKeyEntry",
        "partner": "trustedCertEntry",
    }
    assert listing["gateway"].sha256 == _fingerprints([ks.certificate("gateway")])
    assert listing["partner"].sha256 == _fingerprints([ks.certificate("partner")])

    exported = tmp_path / "gateway.der"
    run_keytool(jdk_keytool, "-exportcert", "-alias", "gateway", "-keystore", str(path),
                "-storepass", "store-pw-1", "-file", str(exported))  # fmt: skip
    assert exported.read_bytes() == ks.export_certificate("gateway", "DER")

    spki = _csr_public_key(
        jdk_keytool, path, "gateway", "store-pw-1", "key-pw-2", tmp_path / "g.csr"
    )
    assert spki == _spki(ks.certificate("gateway"))
    # Negative twin: keytool refuses the key with the store password.
    with pytest.raises(subprocess.CalledProcessError):
        _csr_public_key(
            jdk_keytool, path, "gateway", "store-pw-1", "store-pw-1", tmp_path / "x.csr"
        )


def test_keytool_reads_our_jks_aliases_beyond_the_bmp(jdk_keytool: JDK, tmp_path: Path) -> None:
    """JKS writes aliases in Java's modified UTF-8, where a character outside the BMP is
    two 3-byte surrogates. pyjks wrote plain 4-byte UTF-8: keytool failed on the file
    (UTFDataFormatException) and so did mtls, for an alias such as 'key🔑'."""
    ks = mtls.Keystore.generate("key🔑", "CN=emoji", key_type="EC")
    ks.add_certificate(
        "ca-密钥", mtls.Keystore.generate("c", "CN=c", key_type="EC").certificate("c")
    )
    path = tmp_path / "ours.jks"
    ks.save(path, "store-pw-1")
    assert "key🔑".encode() not in path.read_bytes()  # not plain UTF-8
    listing = keytool_list(jdk_keytool, path, "store-pw-1")
    assert {a: e.entry_type for a, e in listing.items()} == {
        "key🔑": "PrivateKeyEntry",
        "ca-密钥": "trustedCertEntry",
    }
    assert listing["key🔑"].sha256 == _fingerprints([ks.certificate("key🔑")])
    assert mtls.Keystore.load(path, "store-pw-1").aliases == ("key🔑", "ca-密钥")
    # Twin: keytool's own JKS of the same alias reads back the same.
    copy = tmp_path / "keytool.jks"
    run_keytool(jdk_keytool, "-importkeystore", "-srckeystore", str(path), "-srcstorepass",
                "store-pw-1", "-destkeystore", str(copy), "-deststoretype", "JKS",
                "-deststorepass", "store-pw-1")  # fmt: skip
    assert mtls.Keystore.load(copy, "store-pw-1").aliases == ("key🔑", "ca-密钥")
    assert copy.read_bytes().count(b"\xed\xa0\xbd\xed\xb4\x91") == path.read_bytes().count(
        b"\xed\xa0\xbd\xed\xb4\x91"
    )


def test_an_rsassa_pss_key_is_never_written_as_a_plain_rsa_key(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """cryptography reads an RSASSA-PSS key (keytool -keyalg RSASSA-PSS) as RSA and writes
    it as rsaEncryption: the PKCS#12 or encrypted PEM held a key that no longer matched
    its certificate, which mtls, OpenSSL and Java then refused. Now refused before
    writing; JKS and unencrypted PEM keep the key's own bytes and stay usable."""
    source = tmp_path / "pss.p12"
    run_keytool(jdk_keytool, "-genkeypair", "-alias", "pss", "-keyalg", "RSASSA-PSS",
                "-keysize", "2048", "-dname", "CN=pss", "-keystore", str(source),
                "-storetype", "PKCS12", "-storepass", "pss-pass-1")  # fmt: skip
    ks = mtls.Keystore.load(source, "pss-pass-1")
    mtls.client_context(ks)  # usable as keytool wrote it
    for store_type, password in (("PKCS12", "pss-pass-1"), ("PEM", "pss-pass-1")):
        with pytest.raises(mtls.KeyEntryError, match="RSASSA-PSS key") as caught:
            ks.save(tmp_path / f"out.{store_type}", password, store_type=store_type)  # type: ignore[arg-type]
        assert caught.value.alias == "pss"
        assert not (tmp_path / f"out.{store_type}").exists()
    # Twins: JKS and unencrypted PEM keep the key as it is, and it still matches.
    ks.save(tmp_path / "out.jks", "pss-pass-1", store_type="JKS")
    ks.save(tmp_path / "out.pem", "", store_type="PEM")
    for path, password in ((tmp_path / "out.jks", "pss-pass-1"), (tmp_path / "out.pem", None)):
        again = mtls.Keystore.load(path, password)
        assert again.key_entry()[1] == ks.key_entry()[1]
        mtls.client_context(again)


@pytest.mark.parametrize("key_type", ["RSA", "EC"])
def test_keytool_reads_our_pkcs12_keystore(jdk_keytool: JDK, tmp_path: Path, key_type: str) -> None:
    ks = mtls.Keystore.generate(
        "client", "CN=client, O=mtls", key_type=key_type, san=["DNS:client"]
    )  # type: ignore[arg-type]
    path = tmp_path / "ours.p12"
    ks.save(path, "p12-pass", store_type="PKCS12")

    listing = keytool_list(jdk_keytool, path, "p12-pass")
    assert {a: e.entry_type for a, e in listing.items()} == {"client": "PrivateKeyEntry"}
    assert listing["client"].sha256 == _fingerprints([ks.certificate("client")])
    spki = _csr_public_key(jdk_keytool, path, "client", "p12-pass", "p12-pass", tmp_path / "c.csr")
    assert spki == _spki(ks.certificate("client"))


def test_keytool_reads_our_pkcs12_with_every_entry(jdk_keytool: JDK, tmp_path: Path) -> None:
    """keytool -importkeystore writes a store's every entry to PKCS#12; so does save():
    two key entries and a trusted certificate (it refused anything but one key entry,
    so mtls convert could not turn keytool's everyday JKS, a key and its CA, into
    PKCS#12). keytool lists each entry and unlocks each key."""
    ks = mtls.Keystore.generate("Gateway", "CN=gateway, O=mtls", key_type="EC")
    ks.add_generated_key("backup-rsa", "CN=backup", key_type="RSA")
    partner = mtls.Keystore.generate("p", "CN=partner", key_type="EC").certificate("p")
    ks.add_certificate("partner", partner)
    path = tmp_path / "every.p12"
    ks.save(path, "p12-pass-1", store_type="PKCS12")
    listing = keytool_list(jdk_keytool, path, "p12-pass-1")
    assert {a: e.entry_type for a, e in listing.items()} == {
        "gateway": "PrivateKeyEntry",
        "backup-rsa": "PrivateKeyEntry",
        "partner": "trustedCertEntry",
    }
    assert listing["partner"].sha256 == _fingerprints([partner])
    for alias in ("Gateway", "backup-rsa"):
        spki = _csr_public_key(
            jdk_keytool, path, alias, "p12-pass-1", "p12-pass-1", tmp_path / f"{alias}.csr"
        )
        assert spki == _spki(ks.certificate(alias))
    again = mtls.Keystore.load(path, "p12-pass-1")
    assert again.fingerprint == ks.fingerprint
    # Negative twin: the MAC that joins the parts refuses another password.
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "p12-pass-2")
    with pytest.raises(subprocess.CalledProcessError):
        keytool_list(jdk_keytool, path, "p12-pass-2")


def test_keys_under_one_intermediate_keep_their_chains_in_pkcs12(tmp_path: Path) -> None:
    """Two key entries under one intermediate, which only the second entry's chain
    carries: PKCS#12 does not say which certificate belongs to which chain, so a reader
    rebuilds chains by issuer. mtls's reader took each certificate once, so the first
    entry took the intermediate and the second, served from the file, sent no
    intermediate and failed the handshake. Java builds every chain from all the file's
    certificates; so does mtls now."""
    root = CA(name="shared root")
    inter = root.create_child_ca(name="shared intermediate")
    a, b = inter.issue_cert("a.test"), inter.issue_cert("b.test")
    ks = mtls.Keystore()
    ks.add_key("a", a.private_key, [a.certificate])
    ks.add_key("b", b.private_key, [b.certificate, inter.certificate])
    path = tmp_path / "shared.p12"
    ks.save(path, "p12-pass-1", store_type="PKCS12")
    back = mtls.Keystore.load(path, "p12-pass-1")
    assert back.certificate_chain("b") == (b.certificate, inter.certificate)
    assert back.certificate_chain("a") == (a.certificate, inter.certificate)  # as Java reads it
    trust = mtls.Truststore()
    trust.add_certificate("root", root.certificate)
    server = mtls.server_context(back, trust, alias="b")
    client = mtls.client_context(root.issue_cert("client.test").keystore("client"), trust)
    assert _handshake(server, client, "b.test") == "b.test"


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str:
    """One mutual handshake over a socket pair; the server certificate's DNS name."""
    left, right = socket.socketpair()
    done: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(left, server_side=True) as tls:
                tls.recv(1)
        except BaseException as exc:  # reported below, after the client's side
            done.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(right, server_hostname=name) as tls:
            seen = tls.getpeercert()
            tls.sendall(b"x")
    finally:
        right.close()
        thread.join(timeout=30)
    assert not done, done
    assert seen is not None
    return str(dict(seen["subjectAltName"])["DNS"])


def test_a_key_with_pkcs8_attributes_is_written_as_jks(jdk_keytool: JDK, tmp_path: Path) -> None:
    """A Windows export's PKCS#8 carries attributes (its key usage); pyjks's decoder
    refused them and save(store_type="JKS") failed inside pyasn1. The key is written
    without them: the same key, which keytool lists and mtls reads back."""
    import base64

    from mtls import _der

    issued = CA(key_type="RSA").issue_cert("attributed", common_name="attributed")
    key = serialization.load_pem_private_key(issued.private_key_pem, None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _, start, end = _der.header(der)
    usage = _der.encode_oid("2.5.29.15") + _der.encode(0x31, _der.encode(0x03, b"\x07\x80"))
    attributed = _der.encode(0x30, der[start:end] + _der.encode(0xA0, _der.encode(0x30, usage)))
    pem = tmp_path / "attributed.pem"
    pem.write_bytes(
        b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(attributed)
        + b"-----END PRIVATE KEY-----\n" + issued.chain_pem
    )  # fmt: skip
    target = tmp_path / "attributed.jks"
    mtls.Keystore.load(pem, None).save(target, "jks-pass-1", store_type="JKS")
    listing = keytool_list(jdk_keytool, target, "jks-pass-1")
    assert [e.entry_type for e in listing.values()] == ["PrivateKeyEntry"]
    back = mtls.Keystore.load(target, "jks-pass-1")
    _, pkcs8, _ = back.key_entry()
    ours = serialization.load_der_private_key(pkcs8, None).public_key()
    assert _spki_of(ours) == _spki_of(key.public_key())
    with pytest.raises(mtls.WrongPasswordError):  # the twin: the store is protected
        mtls.Keystore.load(target, "jks-pass-2")


def _spki_of(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -dname strings and what keytool makes of them (each checked against keytool 17 and
# 25): the subject it writes, or a refusal.
KEYTOOL_DNAMES = (
    "cn=lower, o=case",
    'CN="Acme, Inc", O=x',
    "EMAILADDRESS=a@b.example, CN=x",
    "CN=x,STREET=Main St,SERIALNUMBER=123,T=Dr",
    "CN=a;O=b",
    "CN=  spaced  , O=x",
    "CN=gw, O=Acme\\, Inc., C=US",
    "CN=a+O=b, C=US",
    "CN=a\\ , O=x",  # an escaped space is kept
    "CN=caf\\C3\\A9",  # escaped bytes are UTF-8
    "CN=#0C03616263",  # the BER of a UTF8String
    'CN=" x "',  # keytool drops the spaces inside quotes too
    "CN=\\ lead",
    'CN="quoted \\" inside"',
    "CN=a=b",
    "CN=a#b",
    'CN=x, OU=\\"q\\"',
    "CN=a\\\\b",
    'CN="a<b>"',
    "CN=ü, O=ß",
)
KEYTOOL_REFUSES = ('CN=a"b"c', 'CN="a"b', 'CN=a"b"', "CN=\\4", "CN=a<b>", "X=1", "CN", 'CN="open')


def test_dnames_keytool_takes_give_the_subject_keytool_writes(
    any_keytool: JDK, tmp_path: Path
) -> None:
    """keytool reads -dname as the JDK's X500Name: any case, quotes, ';', more keywords.
    mtls refused all of these with one generic message; now both write the same
    subject (compared as names, attribute by attribute and in order)."""
    for number, dname in enumerate(KEYTOOL_DNAMES):
        path = tmp_path / f"kt{number}.p12"
        run_keytool(any_keytool, "-genkeypair", "-keystore", str(path), "-storetype", "PKCS12",
                    "-storepass", "dname-pass-1", "-alias", "k", "-keyalg", "EC",
                    "-dname", dname)  # fmt: skip
        theirs = mtls.Keystore.load(path, "dname-pass-1").certificate("k").subject
        ours = mtls.Keystore.generate("k", dname, key_type="EC").certificate("k").subject
        assert [(a.oid, a.value) for a in ours] == [(a.oid, a.value) for a in theirs], dname
        assert len(ours.rdns) == len(theirs.rdns), dname
    # The twin: what keytool refuses, mtls refuses (it wrote some of these, quotes
    # dropped, before a review compared them).
    for number, dname in enumerate(KEYTOOL_REFUSES):
        path = tmp_path / f"refused{number}.p12"
        done = subprocess.run(
            [any_keytool.keytool, "-genkeypair", "-keystore", str(path), "-storetype",
             "PKCS12", "-storepass", "dname-pass-1", "-alias", "k", "-keyalg", "EC",
             "-dname", dname],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode != 0, dname
        with pytest.raises(ValueError, match="malformed distinguished name"):
            mtls.Keystore.generate("k", dname, key_type="EC")


def test_mtls_list_names_an_rsassa_pss_key_as_keytool_does(
    jdk_keytool: JDK, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mtls.cli import main

    for keyalg in ("RSASSA-PSS", "RSA"):  # the twin: a plain RSA key stays RSA
        path = tmp_path / f"{keyalg}.p12"
        run_keytool(jdk_keytool, "-genkeypair", "-keystore", str(path), "-storetype", "PKCS12",
                    "-storepass", "pss-pass-1", "-alias", "k", "-keyalg", keyalg,
                    "-keysize", "2048", "-dname", "CN=pss")  # fmt: skip
        assert main(["list", "--keystore", str(path), "--password", "pss-pass-1"]) == 0
        assert f"key      {keyalg} 2048" in capsys.readouterr().out


def test_an_empty_store_is_written_as_keytool_writes_one(jdk_keytool: JDK, tmp_path: Path) -> None:
    """cryptography writes no PKCS#12 without an entry (save() let its ValueError out);
    Java does, and reads it: an empty AuthenticatedSafe under the MAC."""
    for kind in ("PKCS12", "JKS"):
        path = tmp_path / f"keystore.{kind}"
        mtls.Keystore().save(path, "p12-pass-1", store_type=kind)
        assert "contains 0 entries" in run_keytool(
            jdk_keytool, "-list", "-keystore", str(path), "-storepass", "p12-pass-1"
        )
        assert mtls.Keystore.load(path, "p12-pass-1").aliases == ()
        with pytest.raises(mtls.WrongPasswordError):  # the twin: the password is checked
            mtls.Keystore.load(path, "p12-pass-2")
        # A Truststore refuses to write what Truststore.load refuses to read (it wrote
        # the file, and the load said "holds no certificates").
        with pytest.raises(mtls.KeystoreFormatError, match="holds no certificates"):
            mtls.Truststore.load(path, "p12-pass-1")
        with pytest.raises(ValueError, match=r"holds no certificates.*Keystore\(\)\.save"):
            mtls.Truststore().save(tmp_path / f"truststore.{kind}", "p12-pass-1", store_type=kind)
        assert not (tmp_path / f"truststore.{kind}").exists()


def test_deleting_a_truststores_last_certificate_keeps_an_empty_store(
    jdk_keytool: JDK, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keytool -delete keeps an emptied store; mtls delete does too (through a
    Keystore, since a Truststore does not write an empty file)."""
    from mtls.cli import main

    for kind in ("JKS", "PKCS12"):
        path = tmp_path / f"trust.{kind}"
        trust = mtls.Truststore()
        trust.add("ca", mtls.Keystore.generate("ca", "CN=ca").export_certificate("ca", "DER"))
        trust.save(path, "trust-pass-1", store_type=kind)
        path.chmod(0o644)  # a truststore every local user may read
        assert main(["delete", "--keystore", str(path), "--password", "trust-pass-1",
                     "--alias", "ca"]) == 0  # fmt: skip
        assert "0 entries left" in capsys.readouterr().out
        assert "contains 0 entries" in run_keytool(
            jdk_keytool, "-list", "-keystore", str(path), "-storepass", "trust-pass-1"
        )
        # Its mode kept, as a truststore's (saved as a keystore, it became 0640, and the
        # next import kept that: readers outside the group lost it).
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_mtls_convert_turns_a_keytool_jks_into_pkcs12(
    jdk_keytool: JDK, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keytool's everyday store: -genkeypair, then -importcert of a CA. mtls convert
    --to PKCS12 takes both entries, as keytool -importkeystore does."""
    from mtls.cli import main

    source = tmp_path / "gateway.jks"
    common = ("-keystore", str(source), "-storetype", "JKS", "-storepass", "jks-pass-1")
    run_keytool(jdk_keytool, "-genkeypair", "-alias", "gw", "-keyalg", "EC", "-dname", "CN=gw",
                "-keypass", "jks-pass-1", *common)  # fmt: skip
    ca = mtls.Keystore.generate("ca", "CN=ca", key_type="EC")
    (tmp_path / "ca.crt").write_bytes(ca.export_certificate("ca", "PEM"))
    run_keytool(jdk_keytool, "-importcert", "-alias", "theca", "-file", str(tmp_path / "ca.crt"),
                *common)  # fmt: skip
    target = tmp_path / "gateway.p12"
    code = main(["convert", "--keystore", str(source), "--to", "PKCS12", "--out", str(target),
                 "--password", "jks-pass-1"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    listing = keytool_list(jdk_keytool, target, "jks-pass-1")
    assert {a: e.entry_type for a, e in listing.items()} == {
        "gw": "PrivateKeyEntry",
        "theca": "trustedCertEntry",
    }
    # Twin: PEM still holds one key entry, and says how to pick it.
    code = main(["convert", "--keystore", str(source), "--to", "PEM", "--out",
                 str(tmp_path / "gw.pem"), "--password", "jks-pass-1"])  # fmt: skip
    assert code != 0 and "--alias" in capsys.readouterr().err


def test_a_keytool_ec_key_written_as_pem_carries_its_public_key(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """keytool (JDK 17, 25) encodes an EC key's ECPrivateKey without its optional public
    key; unencrypted PEM passed those bytes on, and GnuTLS cannot read such a key
    ("Element was not found": h128). It is written with its public key, as OpenSSL
    writes one, the same key. Twin: cryptography reads it, and it matches the chain."""
    source = tmp_path / "gw.p12"
    run_keytool(jdk_keytool, "-genkeypair", "-alias", "gw", "-keyalg", "EC", "-groupname",
                "secp256r1", "-dname", "CN=gw", "-keystore", str(source), "-storetype", "PKCS12",
                "-storepass", "p12-pass-1", "-keypass", "p12-pass-1")  # fmt: skip
    ks = mtls.Keystore.load(source, "p12-pass-1")
    _, key_der, _ = ks.key_entry("gw")
    assert not _has_public_key(key_der), "keytool's encoding changed: this test is moot"
    ks.save(tmp_path / "gw.pem", "", store_type="PEM")
    written = mtls.Keystore.load(tmp_path / "gw.pem", None)
    _, pem_key, _ = written.key_entry()
    assert _has_public_key(pem_key)
    ours = serialization.load_der_private_key(pem_key, None)
    theirs = serialization.load_der_private_key(key_der, None)
    assert ours.private_numbers() == theirs.private_numbers()  # type: ignore[union-attr]
    mtls.client_context(written)  # OpenSSL takes the key with its certificate
    certtool = shutil.which("certtool")
    if certtool is not None:  # GnuTLS, where installed (CI installs gnutls-bin)
        done = subprocess.run([certtool, "-k", "--infile", str(tmp_path / "gw.pem")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0 and "EC/ECDSA" in done.stdout, done.stderr


def _has_public_key(pkcs8_der: bytes) -> bool:
    """Whether a PKCS#8 EC key's ECPrivateKey holds the optional [1] publicKey."""
    from mtls import _der

    private = _der.read_single(pkcs8_der, _der.SEQUENCE).children()[2].value
    return any(child.tag == 0xA1 for child in _der.read_single(private, _der.SEQUENCE).children())


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_keytool_reads_our_truststore(jdk_keytool: JDK, tmp_path: Path, store_type: str) -> None:
    ts = mtls.Truststore()
    certs = {
        alias: mtls.Keystore.generate(alias, f"CN={alias}", key_type="EC").certificate(alias)
        for alias in ("backend-a", "backend-b")
    }
    for alias, cert in certs.items():
        ts.add(alias, cert)
    path = tmp_path / f"trust.{store_type.lower()}"
    ts.save(path, "trust-pass", store_type=store_type)  # type: ignore[arg-type]

    listing = keytool_list(jdk_keytool, path, "trust-pass")
    assert {a: e.entry_type for a, e in listing.items()} == {
        "backend-a": "trustedCertEntry",
        "backend-b": "trustedCertEntry",
    }
    for alias, cert in certs.items():
        assert listing[alias].sha256 == _fingerprints([cert])
    # What keytool lists, we read back the same.
    assert mtls.Truststore.load(path, "trust-pass").aliases == ("backend-a", "backend-b")


# --------------------------------------------------------------------------- real truststores


def test_jdk_cacerts_loads_as_truststore(cacerts_path: Path, any_keytool: JDK) -> None:
    text = run_keytool(
        any_keytool, "-list", "-keystore", str(cacerts_path), "-storepass", "changeit"
    )
    # "alias, Nov 28, 2026, trustedCertEntry,\nCertificate fingerprint (SHA-256): AA:..."
    listed = re.compile(
        r"^(.+?), \w{3} \d{1,2}, \d{4}, trustedCertEntry,\s*\n"
        r"Certificate fingerprint \(SHA-256\): ([0-9A-F:]+)",
        re.MULTILINE,
    )
    expected = dict(listed.findall(text))
    count = int(re.search(r"contains (\d+) entries", text).group(1))  # type: ignore[union-attr]
    assert len(expected) == count > 100

    # filterwarnings=error: the serial-0 roots must not raise a warning either.
    ts = mtls.Truststore.load(cacerts_path, "changeit")

    assert len(ts) == count
    assert {
        a: _x509.colon_hex(_x509.sha256_hex(d))
        for a, d in zip(ts.aliases, ts.anchors_der, strict=True)
    } == expected
    assert len(ts.certificates) == count  # every root parses, serial 0 included
    ctx = mtls.client_context(truststore=ts)
    assert ctx.cert_store_stats()["x509"] == count  # OpenSSL took every one of them
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(cacerts_path, "not-changeit")


def test_cacerts_serial_zero_roots_are_anchors(cacerts_path: Path) -> None:
    ts = mtls.Truststore.load(cacerts_path, None)  # no warning: filterwarnings=error
    zero = [der for der in ts.anchors_der if _x509.serial_number(der) <= 0]
    if not zero:
        pytest.skip("this cacerts has no root with a non-positive serial")
    certs = ts.certificates  # parsed, and still no warning
    for cert in certs.values():
        _x509.subject_alt_names(cert)  # reads .extensions: no warning either
    by_der = {c.public_bytes(serialization.Encoding.DER): c for c in certs.values()}
    for der in zero:
        # The root is in the mapping; cryptography does dislike it, once asked for it.
        with pytest.warns(CryptographyDeprecationWarning, match="serial number"):
            assert by_der[der].serial_number <= 0
    # OpenSSL takes them as anchors along with the rest.
    only_zero = mtls.Truststore()
    for n, der in enumerate(zero):
        only_zero.add(f"zero-{n}", der)
    ctx = mtls.client_context(truststore=only_zero)
    assert ctx.cert_store_stats()["x509"] == len(zero)


WSO2_FILES = [
    # file, password, class, key alias, leaf CN, trusted entries, chain length
    ("wso2carbon.jks", "wso2carbon", "Keystore", "wso2carbon", "localhost", 144, 1),
    ("client-truststore.jks", "wso2carbon", "Truststore", None, None, 146, 0),
    ("endpoint.jks", "wso2carbon", "Keystore", "localhost", "localhost", 0, 1),
    ("wso2am.p12", "wso2carbon", "Keystore", "wso2carbon", "wso2am", 0, 1),
    (
        "cert_chain_client.p12",
        "password",
        "Keystore",
        "cert-chain-client",
        "cert-chain-client",
        0,
        3,
    ),
    ("cert_chain_root.p12", "password", "Keystore", "cert-chain-root", "cert-chain-root", 0, 1),
    ("mi-esb.jks", "123456", "Keystore", "esb", "localhost", 0, 1),
    ("mi-clienttruststore.jks", "123456", "Truststore", None, None, 1, 0),
    ("wso2am.pem", None, "Truststore", None, None, 1, 0),
]


@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("name", "password", "kind", "alias", "cn", "trusted", "chain"),
    WSO2_FILES,
    ids=[f[0] for f in WSO2_FILES],
)
def test_real_wso2_files_load(
    wso2_fixtures: Path,
    name: str,
    password: str | None,
    kind: str,
    alias: str | None,
    cn: str | None,
    trusted: int,
    chain: int,
) -> None:
    path = wso2_fixtures / name
    if kind == "Keystore":
        assert alias is not None
        ks = mtls.Keystore.load(path, password)
        assert ks.key_aliases == (alias,)
        assert len(ks.trusted_aliases) == trusted
        assert len(ks.certificate_chain(alias)) == chain
        assert _x509.common_name(ks.certificate(alias)) == cn
        # As a truststore, the key entry's leaf is one more anchor.
        assert len(mtls.Truststore.load(path, password)) == trusted + 1
        with pytest.raises(mtls.WrongPasswordError):
            mtls.Keystore.load(path, f"{password}x")
    else:
        ts = mtls.Truststore.load(path, password)
        assert len(ts) == trusted
        if name == "client-truststore.jks":
            assert {"wso2carbon", "gateway_certificate_alias"} <= set(ts.aliases)


@pytest.mark.fixtures
def test_wso2_chain_client_is_ordered_leaf_to_root(wso2_fixtures: Path) -> None:
    ks = mtls.Keystore.load(wso2_fixtures / "cert_chain_client.p12", "password")
    chain = ks.certificate_chain("cert-chain-client")
    for child, parent in itertools.pairwise(chain):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)


@pytest.mark.fixtures
def test_wso2_legacy_pkcs12_with_two_key_entries(wso2_fixtures: Path) -> None:
    """test.p12: RC2-40 certificates, 3DES keys (old Java/OpenSSL), two key entries."""
    path = wso2_fixtures / "test.p12"
    ks = mtls.Keystore.load(path, "password")
    assert sorted(ks.key_aliases) == ["1", "myalias"]  # as keytool -list shows them
    with pytest.raises(mtls.KeyEntryError) as info:
        mtls.client_context(ks)
    assert "1" in str(info.value)
    assert "myalias" in str(info.value)
    assert type(mtls.client_context(ks, alias="MyAlias")) is ssl.SSLContext
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "passwordx")


def test_a_pkcs12_key_password_keytool_ignored_is_explained(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """keytool ignores -keypass for PKCS12 ("Different store and key passwords not
    supported"): the key is under the store password, and Java refuses the key
    password the user meant (UnrecoverableKeyException). mtls refuses it too, and says
    that the store password is the one that opens the key."""
    path = tmp_path / "kp.p12"
    run_keytool(jdk_keytool, "-genkeypair", "-keystore", str(path), "-storetype", "PKCS12",
                "-storepass", "store-pass-1", "-keypass", "key-pass-22", "-alias", "k",
                "-keyalg", "EC", "-dname", "CN=kp")  # fmt: skip
    with pytest.raises(mtls.WrongPasswordError, match="the store password does") as info:
        mtls.Keystore.load(path, "store-pass-1", key_password="key-pass-22")
    assert "ignores -keypass" in str(info.value) and info.value.alias == "k"
    assert "store-pass-1" not in str(info.value) and "key-pass-22" not in str(info.value)
    assert mtls.Keystore.load(path, "store-pass-1").key_aliases == ("k",)
    # The twin, a key that really has a password of its own (written through Java's
    # KeyStore API), keeps the general message: tests/stores/test_pkcs12.py
    # test_key_password_differs_from_store_password.


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_aliases_java_keeps_apart_stay_apart(
    jdk_keytool: JDK, tmp_path: Path, store_type: str
) -> None:
    """Java folds aliases with toLowerCase(Locale.ENGLISH): 'straße' and 'strasse', or
    'µ-root' (micro sign) and 'μ-root' (Greek mu), are two entries. mtls compared them
    casefolded: a JKS truststore lost one anchor (with a warning that the alias
    "appears more than once"), and a PKCS#12 one renamed it 'strasse-2', so
    certificate('strasse') gave the other CA. The twin: 'Strasse' and 'strasse' are one
    alias to Java and to mtls."""
    cas = {
        alias: CA(name=f"ca {n}")
        for n, alias in enumerate(["straße", "strasse", "µ-root", "μ-root"])
    }
    path = tmp_path / f"trust.{store_type.lower()}"
    for alias, ca in cas.items():
        pem = tmp_path / f"{len(list(tmp_path.iterdir()))}.pem"
        pem.write_bytes(ca.cert_pem)
        run_keytool(jdk_keytool, "-importcert", "-noprompt", "-keystore", str(path),
                    "-storetype", store_type, "-storepass", STOREPASS, "-alias", alias,
                    "-file", str(pem))  # fmt: skip
    assert len(keytool_list(jdk_keytool, path)) == 4
    trust = mtls.Truststore.load(path, STOREPASS)
    assert sorted(trust.aliases) == sorted(cas)
    for alias, ca in cas.items():
        assert trust.certificates[alias] == ca.certificate, alias
    # Written back, keytool still lists four entries with their certificates.
    ours = tmp_path / f"ours.{store_type.lower()}"
    trust.save(ours, STOREPASS, store_type=store_type)  # type: ignore[arg-type]
    listing = keytool_list(jdk_keytool, ours)
    assert sorted(listing) == sorted(cas)
    for alias, ca in cas.items():
        assert listing[alias].sha256 == _fingerprints([ca.certificate]), alias
    # Twin: case alone does not make two aliases, in Java or here.
    with pytest.raises(mtls.KeystoreError, match="already"):
        trust.add("STRASSE", CA().certificate)
