"""mtls._pkcs12 against stores written by the real tools: keytool, openssl, cryptography."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtls
from mtls import _der
from mtls._pkcs12 import (
    P12Contents,
    P12FormatError,
    P12PasswordError,
    WorkLimitError,
    looks_like_pkcs12,
    parse_pkcs12,
)
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests._helpers import whoami
from tests._keytool import JDK, keytool_list
from tests.conftest import WSO2_FIXTURES as WSO2

JDK25_KEYTOOL = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/keytool")
PW = "s3cret-pässword"  # non-ASCII on purpose: BMPString for PKCS#12 PBE, UTF-8 for PBES2
JAVA_PW = "changeit-42"  # JDK 17 refuses non-ASCII passwords for PKCS#12 key protection
RC2_40 = "pbeWithSHAAnd40BitRC2-CBC"
# A short-lived JVM starts faster like this; English output whatever the locale.
JVM_FLAGS = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Duser.language=en")


def run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def assert_keys_match_certs(contents: P12Contents) -> None:
    """Every key has exactly one certificate with its localKeyId, holding its public key."""
    for key in contents.keys:
        assert key.local_key_id
        certs = [c for c in contents.certs if c.local_key_id == key.local_key_id]
        assert len(certs) == 1
        private = serialization.load_der_private_key(key.pkcs8_der, None)  # test-side only
        cert = x509.load_der_x509_certificate(certs[0].der)
        assert spki(private.public_key()) == spki(cert.public_key())
        assert certs[0].alias == key.alias
        assert not certs[0].trusted


# --- keytool ---------------------------------------------------------------------------


def _keytools() -> list[object]:
    found: list[object] = []
    if default := shutil.which("keytool"):
        found.append(pytest.param(Path(default).resolve(), id="jdk-default"))
    if JDK25_KEYTOOL.exists():
        found.append(pytest.param(JDK25_KEYTOOL, id="jdk25"))
    return found or [pytest.param(None, id="no-keytool")]


@pytest.fixture(scope="module", params=_keytools())
def keytool(request: pytest.FixtureRequest) -> Path:
    path: Path | None = request.param
    if path is None:
        pytest.skip("keytool is not installed")
    return path


class JavaStores:
    """Stores written once per JDK: keytool is slow to start."""

    def __init__(self, keytool: Path, tmp: Path) -> None:
        self.keytool, self.tmp = keytool, tmp
        self.keystore, self.truststore = tmp / "keystore.p12", tmp / "truststore.p12"
        ks = ("-keystore", self.keystore, "-storetype", "PKCS12", "-storepass", JAVA_PW)
        self.kt("-genkeypair", *ks, "-alias", "MyRSA", "-keyalg", "RSA", "-dname", "CN=rsa")
        self.kt("-genkeypair", *ks, "-alias", "ec", "-keyalg", "EC", "-dname", "CN=ec")
        # A CA signs the EC key's request; the reply installs the chain [ec, ca].
        ca = ("-keystore", tmp / "ca.p12", "-storetype", "PKCS12", "-storepass", JAVA_PW)
        self.kt(
            "-genkeypair", *ca, "-alias", "ca", "-keyalg", "EC", "-dname", "CN=ca", "-ext", "bc:c"
        )
        self.kt("-exportcert", *ca, "-alias", "ca", "-file", tmp / "ca.crt")
        self.kt("-certreq", *ks, "-alias", "ec", "-file", tmp / "ec.csr")
        self.kt(
            "-gencert", *ca, "-alias", "ca", "-infile", tmp / "ec.csr", "-outfile", tmp / "ec.crt"
        )
        self.kt("-importcert", "-noprompt", *ks, "-alias", "theca", "-file", tmp / "ca.crt")
        self.kt("-importcert", *ks, "-alias", "ec", "-file", tmp / "ec.crt")
        self.kt("-genseckey", *ks, "-alias", "sk", "-keyalg", "AES", "-keysize", "128")
        ts = ("-keystore", self.truststore, "-storetype", "PKCS12", "-storepass", JAVA_PW)
        self.kt("-importcert", "-noprompt", *ts, "-alias", "Trusted CA", "-file", tmp / "ca.crt")
        self.ca_der = x509.load_der_x509_certificate((tmp / "ca.crt").read_bytes()).public_bytes(
            serialization.Encoding.DER
        )

    def kt(self, *args: str | Path) -> str:
        return run(self.keytool, *JVM_FLAGS, *args)

    def listed(self, store: Path, kind: str) -> set[str]:
        out = self.kt("-list", "-keystore", store, "-storetype", "PKCS12", "-storepass", JAVA_PW)
        return {line.split(",")[0] for line in out.splitlines() if f", {kind}," in line}

    def convert(self, name: str, *props: str, password: str = JAVA_PW) -> Path:
        """Copy the keystore with keytool -importkeystore under -J-D properties."""
        dest = self.tmp / f"{name}.p12"
        dest.unlink(missing_ok=True)
        java_props = [f"-J-D{p}" for p in props]
        passwords = ("-srcstorepass", JAVA_PW, "-deststorepass", password)
        stores = ("-srckeystore", self.keystore, "-destkeystore", dest, "-deststoretype", "PKCS12")
        self.kt(*java_props, "-importkeystore", "-noprompt", *passwords, *stores)
        return dest


@pytest.fixture(scope="module")
def java(keytool: Path, tmp_path_factory: pytest.TempPathFactory) -> JavaStores:
    return JavaStores(keytool, tmp_path_factory.mktemp("java"))


@pytest.mark.keytool
def test_keytool_key_entries(java: JavaStores) -> None:
    got = parse_pkcs12(java.keystore.read_bytes(), JAVA_PW)
    assert got.mac_verified
    assert len(got.keys) == 2  # RSA and EC; the AES secretBag is skipped
    assert_keys_match_certs(got)
    # keytool -list prints aliases lower-cased; the file holds them as Java stored them.
    assert {k.alias.lower() for k in got.keys if k.alias} == java.listed(
        java.keystore, "PrivateKeyEntry"
    )
    private = [serialization.load_der_private_key(k.pkcs8_der, None) for k in got.keys]
    assert sorted(type(k).__name__ for k in private) == ["ECPrivateKey", "RSAPrivateKey"]


@pytest.mark.keytool
def test_keytool_secret_keys_are_listed_as_keytool_lists_them(java: JavaStores) -> None:
    """keytool -genseckey in a PKCS#12 store writes a secretBag: keytool lists it as a
    SecretKeyEntry, and so does mtls now (it was dropped: aliases and len disagreed with
    keytool). Never decrypted; the key entries stay usable; save() refuses it."""
    store = mtls.Keystore.load(java.keystore, JAVA_PW)
    listed = java.listed(java.keystore, "SecretKeyEntry")
    assert listed == {"sk"} and set(store.secret_keys) == listed
    assert store.entry_type("sk") == "SecretKeyEntry" and "SK" in store
    assert len(store) == len(store.key_aliases) + len(store.secret_keys) + 1  # + theca
    assert "TLS cannot use it" in store.secret_keys["sk"]
    assert mtls.client_context(store, alias="ec").protocol == ssl.PROTOCOL_TLS_CLIENT
    with pytest.raises(mtls.KeyEntryError, match=r"entries .* hold what TLS cannot use"):
        store.save(java.tmp / "copy.p12", JAVA_PW)
    # Twin: the truststore keytool made has none.
    assert mtls.Keystore.load(java.truststore, JAVA_PW).secret_keys == {}


def test_unnamed_entries_are_numbered_as_java_numbers_them(tmp_path: Path) -> None:
    """Java's PKCS12KeyStore numbers entries without a friendlyName with a counter of its
    own ("1", "2", ...), not by position: cryptography's java-truststore vector (one
    named "cert1", one unnamed) is listed by keytool as "cert1" and "1" (mtls said "2")."""
    ca = CA(name="numbering")
    first, second = ca.issue_cert("a.test").certificate, ca.issue_cert("b.test").certificate
    path = tmp_path / "trust.p12"
    path.write_bytes(
        pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(first, b"cert1"), pkcs12.PKCS12Certificate(second, None)],
            serialization.NoEncryption(),
        )
    )
    assert mtls.Truststore.load(path, "").aliases == ("cert1", "1")
    # Twin: two unnamed entries are "1" and "2", in file order.
    path.write_bytes(
        pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(first, None), pkcs12.PKCS12Certificate(second, None)],
            serialization.NoEncryption(),
        )
    )
    assert mtls.Truststore.load(path, "").aliases == ("1", "2")


def _authenticated_safe(pfx: bytes) -> list[bytes]:
    """The ContentInfos of a PFX's AuthenticatedSafe, each as its DER."""
    content = _der.read_single(pfx, _der.SEQUENCE).children()[1].children()[1]
    auth_safe = _der.read_single(content.children()[0].value, _der.SEQUENCE)
    return [_der.encode(info.tag, info.value) for info in auth_safe.children()]


def _pfx(infos: list[bytes], password: str) -> bytes:
    """A PFX of these ContentInfos, with an HMAC-SHA1 MAC under ``password``."""
    from mtls._kdf import p12_kdf

    auth = _der.encode(_der.SEQUENCE, b"".join(infos))
    data = _der.encode(_der.OID, bytes.fromhex("2a864886f70d010701"))  # pkcs7-data
    info = _der.encode(
        _der.SEQUENCE, data + _der.encode(0xA0, _der.encode(_der.OCTET_STRING, auth))
    )
    salt, rounds = b"numbered", 2048
    key = p12_kdf("sha1", (password + "\0").encode("utf-16-be"), salt, purpose=3, rounds=rounds,
                  size=20)  # fmt: skip
    sha1 = _der.encode(_der.SEQUENCE, bytes.fromhex("06052b0e03021a0500"))
    mac = _der.encode(
        _der.SEQUENCE,
        _der.encode(
            _der.SEQUENCE,
            sha1 + _der.encode(_der.OCTET_STRING, hmac.new(key, auth, hashlib.sha1).digest()),
        )
        + _der.encode(_der.OCTET_STRING, salt)
        + _der.encode(_der.INTEGER, rounds.to_bytes(2, "big")),
    )
    return _der.encode(_der.SEQUENCE, _der.encode(_der.INTEGER, b"\x03") + info + mac)


def _java_protection() -> serialization.KeySerializationEncryption:
    """PKCS#12 protection under JAVA_PW that every JDK reads (3DES, SHA-1 MAC)."""
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(JAVA_PW.encode())
    )


def _keyed(identity: IssuedIdentity, name: bytes | None) -> bytes:
    """A key entry as a PKCS#12 file under JAVA_PW (3DES, SHA-1 MAC: every JDK reads it)."""
    return pkcs12.serialize_key_and_certificates(
        name, identity.private_key, identity.certificate, None, _java_protection()
    )


def _key_info(identity: IssuedIdentity, name: bytes | None) -> tuple[bytes, bytes]:
    """The ContentInfo holding ``identity``'s key bag alone (as :func:`_keyed` writes
    it, with ``name``), and the key's localKeyId."""
    infos = _authenticated_safe(_keyed(identity, name))
    key_bag_oid = _der.encode_oid("1.2.840.113549.1.12.10.1.2")
    (keyed,) = [info for info in infos if key_bag_oid in info]
    content = _der.read_single(keyed, _der.SEQUENCE).children()[1].children()[0]
    key_bag = _der.read_single(content.value, _der.SEQUENCE).children()[0]
    local_key_id = next(
        attribute.children()[1].children()[0].value
        for attribute in key_bag.children()[2].children()
        if attribute.children()[0].value == _der.encode_oid("1.2.840.113549.1.9.21")[2:]
    )
    return keyed, local_key_id


def _certificate_named_key_not(identity: IssuedIdentity, name: str) -> bytes:
    """A PKCS#12 under JAVA_PW whose key bag has no friendlyName and whose certificate
    bag has ``name`` (both with the key's localKeyId; the certificate unencrypted)."""
    keyed, local_key_id = _key_info(identity, None)
    return _pfx([keyed, _cert_info(identity.certificate, name, local_key_id)], JAVA_PW)


def _cert_info(certificate: x509.Certificate, name: str, local_key_id: bytes | None) -> bytes:
    """A ContentInfo (unencrypted) of one certificate bag with ``name`` and
    ``local_key_id`` (none: no such attribute)."""

    def attribute(oid: str, value: bytes) -> bytes:
        return _der.encode(_der.SEQUENCE, _der.encode_oid(oid) + _der.encode(0x31, value))

    der = certificate.public_bytes(serialization.Encoding.DER)
    cert_bag = _der.encode(
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.12.10.1.3")
        + _der.encode(
            0xA0,
            _der.encode(
                _der.SEQUENCE,
                _der.encode_oid("1.2.840.113549.1.9.22.1")
                + _der.encode(0xA0, _der.encode(_der.OCTET_STRING, der)),
            ),
        )
        + _der.encode(
            0x31,
            attribute("1.2.840.113549.1.9.20", _der.encode(0x1E, name.encode("utf-16-be")))
            + (
                attribute("1.2.840.113549.1.9.21", _der.encode(_der.OCTET_STRING, local_key_id))
                if local_key_id is not None
                else b""
            ),
        ),
    )
    safe = _der.encode(_der.SEQUENCE, cert_bag)
    return _der.encode(
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.7.1")
        + _der.encode(0xA0, _der.encode(_der.OCTET_STRING, safe)),
    )


@pytest.mark.keytool
def test_a_key_without_a_certificate_beside_a_usable_one_is_left_out_as_java_does(
    jdk_keytool: JDK, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """keytool lists a key whose certificate the file lacks with a chain of length 0, and
    Java's key managers pass it by and serve the other keys; the whole store was
    refused (h263, h283). It is an entry TLS cannot use now, listed in secret_keys
    (keytool's PrivateKeyEntry), and a store left with no other key is still refused."""
    ca = CA(name="certless")
    good, gone = ca.issue_cert("good"), ca.issue_cert("gone")
    orphan, _ = _key_info(gone, b"orphan")
    path = tmp_path / "certless.p12"
    path.write_bytes(_pfx([*_authenticated_safe(_keyed(good, b"good")), orphan], JAVA_PW))
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    assert listed["orphan"].entry_type == "PrivateKeyEntry" and listed["orphan"].chain_length == 0
    assert listed["good"].chain_length == 1
    with caplog.at_level("WARNING", logger="mtls"):
        store = mtls.Keystore.load(path, JAVA_PW)
    assert store.key_aliases == ("good",)
    assert store.entry_type("orphan") == "PrivateKeyEntry"
    kind = store.secret_keys["orphan"]
    assert kind.startswith("private key without a certificate (keytool lists a chain of length 0")
    assert "mtls delete --alias orphan, or keytool -delete -alias orphan" in kind
    assert "key entry 'orphan' has no certificate" in caplog.text
    assert mtls.client_context(store, verify=False) is not None
    with pytest.raises(mtls.KeyEntryError, match="'orphan' is a private key without"):
        store.certificate("orphan")
    # Named as the key to present (a profile's <KeyAlias>): said what it is (h286).
    with pytest.raises(mtls.KeyEntryError, match=r"no key entry 'ORPHAN' \('orphan' is a private"):
        mtls.client_context(store, alias="ORPHAN", verify=False)
    with pytest.raises(mtls.KeyEntryError, match="private keys without a certificate"):
        store.to_bytes(JAVA_PW, store_type="PKCS12")  # never dropped in silence
    # The store commands: writing back would drop it, so they refuse, the file as it
    # was; `delete` of that entry removes it, the other entry kept (keytool reads it).
    from mtls.cli import main

    before = path.read_bytes()
    assert main(["delete", "--keystore", str(path), "--password", JAVA_PW, "--alias", "good"]) == 1
    assert main(["storepasswd", "--keystore", str(path), "--password", JAVA_PW,
                 "--new-password", "changeit-43"]) == 1  # fmt: skip
    assert path.read_bytes() == before
    assert (
        main(["delete", "--keystore", str(path), "--password", JAVA_PW, "--alias", "orphan"]) == 0
    )
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    assert set(listed) == {"good"} and listed["good"].chain_length == 1
    # The twin: the key alone (with a CA certificate) is still no keystore.
    alone = tmp_path / "alone.p12"
    alone.write_bytes(_pfx([orphan, _cert_info(ca.certificate, "ca", b"no-key-has-this")], JAVA_PW))
    with pytest.raises(mtls.KeystoreFormatError, match="and the store has no other key entry"):
        mtls.Keystore.load(alone, JAVA_PW)
    # Listed all the same, as keytool lists it (`mtls list` failed on it, h288).
    assert mtls.Keystore.inspect(alone, JAVA_PW).entry_type("orphan") == "PrivateKeyEntry"
    assert main(["list", "--keystore", str(alone), "--password", JAVA_PW]) == 0


def test_two_keys_without_a_certificate_are_not_deleted_one_by_dropping_the_other(
    tmp_path: Path,
) -> None:
    """Removing one would drop the other unasked: refused, saying how to keep what is
    wanted (mtls convert --alias, or keytool -delete)."""
    ca = CA(name="two certless")
    good = ca.issue_cert("good")
    one, _ = _key_info(ca.issue_cert("one"), b"one")
    two, _ = _key_info(ca.issue_cert("two"), b"two")
    path = tmp_path / "two.p12"
    path.write_bytes(_pfx([*_authenticated_safe(_keyed(good, b"good")), one, two], JAVA_PW))
    loaded = mtls.Keystore.load(path, JAVA_PW)
    assert set(loaded.secret_keys) == {"one", "two"}
    # mtls delete refuses one while the other stays: not advised (h291).
    assert "mtls delete" not in loaded.secret_keys["one"]
    assert "keytool -delete -alias one" in loaded.secret_keys["one"]
    # Listed as keytool lists them (the listing hid them, while every write named
    # them, h288).
    listed = mtls.Keystore.inspect(path, JAVA_PW)
    assert {a: listed.entry_type(a) for a in listed.aliases} == dict.fromkeys(
        ("good", "one", "two"), "PrivateKeyEntry"
    )
    from mtls.cli import main

    before = path.read_bytes()
    assert main(["delete", "--keystore", str(path), "--password", JAVA_PW, "--alias", "one"]) == 1
    assert path.read_bytes() == before
    kept = tmp_path / "kept.p12"
    assert main(["convert", "--keystore", str(path), "--password", JAVA_PW, "--alias", "good",
                 "--to", "PKCS12", "--out", str(kept), "--out-password", JAVA_PW]) == 0  # fmt: skip
    assert mtls.Keystore.load(kept, JAVA_PW).aliases == ("good",)


def _bare_key_info(
    identity: IssuedIdentity, name: bytes | None, *, encrypted: bool = True
) -> bytes:
    """The ContentInfo of ``identity``'s key alone, with no localKeyId: shrouded under
    JAVA_PW, or a plain keyBag."""
    protection = _java_protection() if encrypted else serialization.NoEncryption()
    data = pkcs12.serialize_key_and_certificates(name, identity.private_key, None, None, protection)
    (info,) = _authenticated_safe(data)
    return info


@pytest.mark.keytool
def test_keys_without_a_certificate_as_java_names_and_counts_them(
    jdk_keytool: JDK, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """h286, on the first version of the change above: a certless key that takes the
    only usable key's alias (Java keeps the later one) loaded a store with no usable
    key; the remedy named an alias the entry did not have; `mtls list` failed on a
    plain keyBag without a certificate; convert sent such a store to keytool
    -importkeystore, which fails on it; and a key without a localKeyId read first,
    which Java registers, was said to be no entry keytool lists."""
    from mtls.cli import main

    ca = CA(name="java counts")
    good = _authenticated_safe(_keyed(ca.issue_cert("good"), b"good"))
    # Java keeps the later of two aliases alike: the certless key, no usable one.
    shadowed = tmp_path / "shadowed.p12"
    shadowed.write_bytes(_pfx([*good, _key_info(ca.issue_cert("x"), b"GOOD")[0]], JAVA_PW))
    with pytest.raises(mtls.KeystoreFormatError, match="and the store has no other key entry"):
        mtls.Keystore.load(shadowed, JAVA_PW)
    # A key without a localKeyId after one with it: Java does not register it, and mtls
    # names it apart; the remedy names that alias.
    renamed = tmp_path / "renamed.p12"
    renamed.write_bytes(_pfx([*good, _bare_key_info(ca.issue_cert("y"), b"good")], JAVA_PW))
    assert set(keytool_list(jdk_keytool, renamed, JAVA_PW)) == {"good"}
    store = mtls.Keystore.load(renamed, JAVA_PW)
    assert store.key_aliases == ("good",) and list(store.secret_keys) == ["good-2"]
    assert "keytool lists no such entry" in store.secret_keys["good-2"]
    assert "mtls delete --alias good-2)" in store.secret_keys["good-2"]
    assert main(["delete", "--keystore", str(renamed), "--password", JAVA_PW,
                 "--alias", "good-2"]) == 0  # fmt: skip
    assert mtls.Keystore.load(renamed, JAVA_PW).aliases == ("good",)
    # The same key read first: Java registers it (a chain of length 0).
    first = tmp_path / "first.p12"
    first.write_bytes(_pfx([_bare_key_info(ca.issue_cert("z"), b"lone"), *good], JAVA_PW))
    listed = keytool_list(jdk_keytool, first, JAVA_PW)
    assert listed["lone"].chain_length == 0
    kind = mtls.Keystore.load(first, JAVA_PW).secret_keys["lone"]
    assert "keytool lists a chain of length 0" in kind and "keytool -delete -alias lone" in kind
    # A plain keyBag without a certificate: listed (it failed the listing), and a
    # conversion is refused with what removes it, not keytool -importkeystore.
    bag = tmp_path / "bag.p12"
    bag.write_bytes(_pfx([*good, _bare_key_info(ca.issue_cert("w"), b"bag", encrypted=False)],
                         JAVA_PW))  # fmt: skip
    assert main(["list", "--keystore", str(bag), "--password", JAVA_PW]) == 0
    assert main(["convert", "--keystore", str(bag), "--password", JAVA_PW, "--to", "JKS",
                 "--out", str(tmp_path / "out.jks"), "--out-password", JAVA_PW]) == 1  # fmt: skip
    assert not (tmp_path / "out.jks").exists()
    refused = capsys.readouterr().err
    assert "mtls delete --alias bag" in refused and "importkeystore" not in refused
    assert (
        "cannot convert this store" in refused
        and "convert one entry, named with --alias" in refused
    )


@pytest.mark.keytool
def test_unnamed_entries_take_the_numbers_java_gives_them_past_keys_it_skips(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """Java numbers an unnamed entry ("1", "2") only when it reads it: not a plain
    keyBag, nor a key without a localKeyId after the first. mtls numbered those too,
    so its "1" was another entry than Java's, and a profile's <KeyAlias>1</KeyAlias>
    picked another certificate than WSO2's (h288)."""
    ca = CA(name="numbers")
    plain_first = tmp_path / "plain-first.p12"
    served = ca.issue_cert("served")
    plain_first.write_bytes(
        _pfx([_bare_key_info(ca.issue_cert("x"), None, encrypted=False),
              *_authenticated_safe(_keyed(served, None))], JAVA_PW)
    )  # fmt: skip
    assert {
        a: e.entry_type for a, e in keytool_list(jdk_keytool, plain_first, JAVA_PW).items()
    } == {"1": "PrivateKeyEntry"}
    store = mtls.Keystore.load(plain_first, JAVA_PW)
    assert store.key_aliases == ("1",) and store.certificate("1") == served.certificate
    # A key Java passes by (no localKeyId, not the first), then an unnamed trusted
    # certificate: Java's "1" is the certificate.
    trusted = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(ca.certificate, None)], serialization.NoEncryption()
    )
    skipped = tmp_path / "skipped.p12"
    skipped.write_bytes(
        _pfx([*_authenticated_safe(_keyed(ca.issue_cert("a"), b"a")),
              _bare_key_info(ca.issue_cert("y"), None), *_authenticated_safe(trusted)], JAVA_PW)
    )  # fmt: skip
    listed = keytool_list(jdk_keytool, skipped, JAVA_PW)
    assert listed["1"].entry_type == "trustedCertEntry"
    for read in (mtls.Keystore.load, mtls.Keystore.inspect):
        assert read(skipped, JAVA_PW).entry_type("1") == "trustedCertEntry"


@pytest.mark.keytool
def test_a_key_java_pairs_by_its_number_or_a_lone_certless_key_is_listed_as_java_lists_it(
    jdk_keytool: JDK, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """h289, on the listing of keys without their certificate: an unnamed key ("1" to
    Java) whose certificate carries another localKeyId and the friendlyName "1" is
    paired by Java by that name, and mtls listed it twice, once as certless with advice
    that deleted the store's only key; a store whose only key has no certificate was
    advised `mtls delete`, which refuses it; and `mtls check` counted such a key among
    a truststore's anchors, hiding "no anchor is in date"."""
    from mtls.cli import main

    ca = CA(name="by number")
    leaf = ca.issue_cert("leaf")
    keyed, _ = _key_info(leaf, None)
    numbered = tmp_path / "numbered.p12"
    numbered.write_bytes(_pfx([_cert_info(leaf.certificate, "1", b"\x09"), keyed], JAVA_PW))
    assert set(keytool_list(jdk_keytool, numbered, JAVA_PW)) == {"1"}
    listed = mtls.Keystore.inspect(numbered, JAVA_PW)
    assert listed.aliases == ("1",) and not listed.secret_keys
    # Two unnamed keys, each with a certificate of its number and no localKeyId: Java
    # pairs each by its name; the listing showed none (h291).
    first, second = ca.issue_cert("first"), ca.issue_cert("second")
    two = tmp_path / "two-numbered.p12"
    two.write_bytes(
        _pfx([_cert_info(first.certificate, "1", None), _key_info(first, None)[0],
              _cert_info(second.certificate, "2", None), _key_info(second, None)[0]],
             JAVA_PW)
    )  # fmt: skip
    assert set(keytool_list(jdk_keytool, two, JAVA_PW)) == {"1", "2"}
    listed = mtls.Keystore.inspect(two, JAVA_PW)
    assert {a: listed.certificate(a) for a in listed.key_aliases} == {
        "1": first.certificate,
        "2": second.certificate,
    }
    # A store whose only key has no certificate: keytool -delete, not mtls delete.
    dead = CA(name="dead root", not_after=datetime.datetime.now(datetime.UTC)
              - datetime.timedelta(days=1))  # fmt: skip
    trusted = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(dead.certificate, b"expca")], serialization.NoEncryption()
    )
    lone = tmp_path / "lone.p12"
    lone.write_bytes(
        _pfx([*_authenticated_safe(trusted), _key_info(ca.issue_cert("o"), b"orphan")[0]], JAVA_PW)
    )
    kind = mtls.Keystore.inspect(lone, JAVA_PW).secret_keys["orphan"]
    assert "keytool -delete -alias orphan" in kind and "mtls delete" not in kind
    # As a truststore it has one anchor, out of date: check says it verifies no server.
    keystore = leaf.write_keystore(tmp_path / "gw.jks", JAVA_PW)
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>a.test:443</servers>'
        f"<KeyStore><Location>{keystore}</Location><Type>JKS</Type><Password>{JAVA_PW}"
        f"</Password><KeyPassword>{JAVA_PW}</KeyPassword></KeyStore><TrustStore><Location>"
        f"{lone}</Location><Type>PKCS12</Type><Password>{JAVA_PW}</Password></TrustStore>"
        "</profile></parameter>"
    )
    assert main(["check", str(xml), "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)["profiles"]
    assert row["anchors"] == 1 and row["out_of_date"] is True
    assert any("it verifies no server" in p for p in row["problems"]), row


@pytest.mark.keytool
def test_a_key_takes_its_own_certificate_among_several_with_its_local_key_id(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """Two certificates carry the key's localKeyId, another key's first: mtls took the
    first in file order, and OpenSSL refused the pair (KEY_VALUES_MISMATCH) where Java
    takes the one with the key's friendlyName too, else the last (h283); `mtls list`
    showed the other as a key entry of its own, which keytool does not list."""
    ca = CA(name="same id")
    leaf, other = ca.issue_cert("leaf"), ca.issue_cert("other")
    _, local_key_id = _key_info(leaf, b"leaf")
    path = tmp_path / "same-id.p12"
    path.write_bytes(
        _pfx(
            [_cert_info(other.certificate, "other", local_key_id),
             *_authenticated_safe(_keyed(leaf, b"leaf"))],
            JAVA_PW,
        )
    )  # fmt: skip
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    leaf_sha = leaf.certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert set(listed) == {"leaf"} and listed["leaf"].sha256[0] == leaf_sha
    store = mtls.Keystore.load(path, JAVA_PW)
    assert store.certificate("leaf") == leaf.certificate
    assert mtls.client_context(store, verify=False) is not None
    assert mtls.Keystore.inspect(path, JAVA_PW).key_aliases == ("leaf",)


@pytest.mark.keytool
def test_a_key_bag_without_a_name_is_named_as_java_names_it(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """Java names a key entry by its key bag's friendlyName, else by its number ("1"),
    never by its certificate's: mtls named it by the certificate's, so `mtls check`
    passed a profile whose <KeyAlias> WSO2's gateway cannot find, and refused the one
    it can (h235). The twin: with the key bag named, that name."""
    identity = CA().issue_cert("client")
    path = tmp_path / "named-apart.p12"
    path.write_bytes(_certificate_named_key_not(identity, "client"))
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    assert {a for a, e in listed.items() if e.entry_type == "PrivateKeyEntry"} == {"1"}
    assert mtls.Keystore.load(path, JAVA_PW).key_aliases == ("1",)
    assert mtls.Keystore.inspect(path, JAVA_PW).key_aliases == ("1",)
    path.write_bytes(_keyed(identity, b"client"))
    assert mtls.Keystore.load(path, JAVA_PW).key_aliases == ("client",)
    assert "client" in keytool_list(jdk_keytool, path, JAVA_PW)


def test_unnamed_entries_are_numbered_in_file_order(keytool: Path, tmp_path: Path) -> None:
    """Java numbers unnamed key entries and trusted certificates as it meets them in the
    file: an unnamed trusted certificate first, then an unnamed key, is "1" then "2"
    (mtls numbered keys first), as keytool lists them."""
    ca = CA(name="file order")
    identity = ca.issue_cert("client")
    trusted = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(ca.certificate, None)], serialization.NoEncryption()
    )
    keyed = _keyed(identity, None)
    path = tmp_path / "mixed.p12"
    path.write_bytes(_pfx(_authenticated_safe(trusted) + _authenticated_safe(keyed), JAVA_PW))
    store = mtls.Keystore.load(path, JAVA_PW)
    assert (
        store.entry_type("1") == "trustedCertEntry" and store.entry_type("2") == "PrivateKeyEntry"
    )
    listed = run(keytool, *JVM_FLAGS, "-list", "-keystore", path, "-storetype", "PKCS12",
                 "-storepass", JAVA_PW)  # fmt: skip
    assert "1, " in listed and "trustedCertEntry" in listed.split("1, ", 1)[1].splitlines()[0]
    assert "PrivateKeyEntry" in listed.split("\n2, ", 1)[1].splitlines()[0]
    # Twin: the key is the identity's, whatever its name, and it is usable.
    assert store.certificate("2") == identity.certificate
    mtls.client_context(store, alias="2")


def _listed(keytool: Path, path: Path) -> dict[str, str]:
    """``keytool -list``: alias -> entry type."""
    listed = run(keytool, *JVM_FLAGS, "-list", "-keystore", path, "-storetype", "PKCS12",
                 "-storepass", JAVA_PW)  # fmt: skip
    return {
        line.split(", ")[0]: line.rsplit(", ", 2)[1].strip()
        for line in listed.splitlines()
        if line.count(", ") >= 2 and "Entry" in line
    }


def test_aliases_that_differ_in_case_keep_the_last_entry_as_java_does(
    keytool: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Java's PKCS12KeyStore keys its table by the alias lower-cased, in file order:
    of trusted certificates named "CA" and "ca" (a file cryptography or OpenSSL
    writes; keytool cannot) keytool lists the last alone. mtls kept both (the first as
    "CA", the second numbered "ca-2"): it trusted a certificate WSO2 never trusts,
    and `delete --alias ca` took the entry keytool never showed (h137)."""
    ca = CA(name="case twins")
    first, second = ca.issue_cert("first").certificate, ca.issue_cert("second").certificate
    other = ca.issue_cert("other").certificate
    path = tmp_path / "twins.p12"
    path.write_bytes(
        pkcs12.serialize_java_truststore(
            [
                pkcs12.PKCS12Certificate(first, b"CA"),
                pkcs12.PKCS12Certificate(other, b"other"),
                pkcs12.PKCS12Certificate(second, b"ca"),
            ],
            serialization.BestAvailableEncryption(JAVA_PW.encode()),
        )
    )
    with caplog.at_level("WARNING", logger="mtls"):
        trust = mtls.Truststore.load(path, JAVA_PW)
    assert set(trust.aliases) == {"ca", "other"}
    assert trust.certificate("CA") == second  # the last one, whatever the case asked
    assert first not in [trust.certificate(a) for a in trust.aliases]
    assert "entry 'CA' is left out" in caplog.text and "('ca'" in caplog.text
    assert _listed(keytool, path) == {"ca": "trustedCertEntry", "other": "trustedCertEntry"}

    # Twin, across kinds: a trusted certificate "GW" then a key entry "gw" leaves the
    # key; the key entry first and the certificate after leaves the certificate.
    identity = ca.issue_cert("client")
    keyed = _keyed(identity, b"gw")
    trusted = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(ca.certificate, b"GW")], serialization.NoEncryption()
    )
    for name, infos, kind in (
        ("cert-then-key", _authenticated_safe(trusted) + _authenticated_safe(keyed),
         "PrivateKeyEntry"),
        ("key-then-cert", _authenticated_safe(keyed) + _authenticated_safe(trusted),
         "trustedCertEntry"),
    ):  # fmt: skip
        mixed = tmp_path / f"{name}.p12"
        mixed.write_bytes(_pfx(infos, JAVA_PW))
        store = mtls.Keystore.load(mixed, JAVA_PW)
        # (mtls keeps the friendlyName's case, "GW"; keytool lists aliases lower-cased)
        assert [(a.lower(), store.entry_type(a)) for a in store.aliases] == [("gw", kind)], name
        assert _listed(keytool, mixed) == {"gw": kind}, name


def _bag(bag_type: str, value: bytes, name: str | None = None, key_id: bytes | None = None,
         trusted: bool = False) -> bytes:  # fmt: skip
    """A SafeBag (RFC 7292 4.2) of type 1.2.840.113549.1.12.10.1.``bag_type``."""
    e, oid = _der.encode, _der.encode_oid
    attrs = b""
    if name is not None:
        attrs += e(_der.SEQUENCE, oid("1.2.840.113549.1.9.20")
                   + e(0x31, e(0x1E, name.encode("utf-16-be"))))  # fmt: skip
    if key_id is not None:
        attrs += e(
            _der.SEQUENCE, oid("1.2.840.113549.1.9.21") + e(0x31, e(_der.OCTET_STRING, key_id))
        )
    if trusted:  # Java's trusted-certificate attribute, any extended key usage
        attrs += e(_der.SEQUENCE, oid("2.16.840.1.113894.746875.1.1") + e(0x31, oid("2.5.29.37.0")))
    return e(_der.SEQUENCE, oid("1.2.840.113549.1.12.10.1." + bag_type) + e(0xA0, value)
             + (e(0x31, attrs) if attrs else b""))  # fmt: skip


def _cert_bag(cert: x509.Certificate, **attrs: Any) -> bytes:
    der = cert.public_bytes(serialization.Encoding.DER)
    e = _der.encode
    inner = e(
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.9.22.1") + e(0xA0, e(_der.OCTET_STRING, der)),
    )
    return _bag("3", inner, **attrs)


def _data(*bags: bytes) -> bytes:
    """A data ContentInfo holding ``bags`` as its SafeContents."""
    e = _der.encode
    safe = e(_der.OCTET_STRING, e(_der.SEQUENCE, b"".join(bags)))
    return e(_der.SEQUENCE, _der.encode_oid("1.2.840.113549.1.7.1") + e(0xA0, safe))


def test_an_entry_java_never_reads_leaves_out_none_of_javas(keytool: Path, tmp_path: Path) -> None:
    """Only the entries the JDK's table holds compete for an alias: a plain keyBag
    (Java skips it), a bag nested in a safeContentsBag (Java reads none) or a secret
    before a trusted certificate must not take the place of the certificate Java
    trusts (the review h138: the first version of the rule dropped it). Each of Java's
    entries is in mtls's view, with Java's alias; mtls's own are numbered around them."""
    ca = CA(name="java reads")
    other = CA(name="other ca").certificate
    leaf = ca.issue_cert("leaf")
    pkcs8 = leaf.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    secret = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.113549.1.9.22.1")
                         + _der.encode(0xA0, _der.encode(_der.OCTET_STRING, bytes(16))))  # fmt: skip
    cases = {
        "plain key bag": [_cert_bag(other, name="ca", trusted=True),
                          _cert_bag(leaf.certificate, name="CA", key_id=b"k"),
                          _bag("1", pkcs8, name="CA", key_id=b"k")],
        "nested bag": [_cert_bag(other, name="ca", trusted=True),
                       _bag("6", _der.encode(_der.SEQUENCE,
                                             _cert_bag(ca.certificate, name="CA", trusted=True)))],
        "secret first": [_bag("5", secret, name="s"), _cert_bag(other, name="S", trusted=True)],
    }  # fmt: skip
    for case, bags in cases.items():
        path = tmp_path / f"{case.replace(' ', '-')}.p12"
        path.write_bytes(_pfx([_data(*bags)], JAVA_PW))
        java = _listed(keytool, path)
        store = mtls.Keystore.load(path, JAVA_PW)
        ours = {a.lower(): store.entry_type(a) for a in store.aliases}
        assert java.items() <= ours.items(), (case, java, ours)
        if "ca" in java:  # the anchor Java trusts is the one mtls has under its alias
            assert mtls.Truststore.load(path, JAVA_PW).certificate("ca") == other, case


@pytest.mark.keytool
def test_keytool_chain_and_trusted_entry(java: JavaStores) -> None:
    got = parse_pkcs12(java.keystore.read_bytes(), JAVA_PW)
    (ec_key,) = [k for k in got.keys if k.alias == "ec"]
    leaf = next(c for c in got.certs if c.local_key_id == ec_key.local_key_id)
    issuer = x509.load_der_x509_certificate(java.ca_der)
    x509.load_der_x509_certificate(leaf.der).verify_directly_issued_by(issuer)
    # Java writes the CA twice: once in the key entry's chain (friendlyName = the
    # subject DN, no localKeyId, not trusted), once as the trusted entry "theca".
    ca_bags = [c for c in got.certs if c.der == java.ca_der]
    assert {(c.alias, c.local_key_id, c.trusted) for c in ca_bags} == {
        ("CN=ca", None, False),
        ("theca", None, True),
    }
    assert {c.alias for c in got.certs if c.trusted} == java.listed(
        java.keystore, "trustedCertEntry"
    )


@pytest.mark.keytool
@pytest.mark.parametrize("issuers", ["its CAs", "another CA"])
def test_a_key_chain_is_completed_from_trusted_entries_as_java_completes_it(
    jdk_keytool: JDK, tmp_path: Path, issuers: str
) -> None:
    """The JDK's PKCS12KeyStore builds a key entry's chain from every certificate in
    the file, trusted-certificate entries included: a key stored with its leaf alone
    and its CAs as trusted entries (the KeyStore API's setKeyEntry with a chain of
    one) has a chain of 3 in keytool, and WSO2's gateway sends it. mtls read a chain of
    1 and its handshake with a server that trusts the root failed, where Java's
    succeeds (h235). The trusted entries stay entries. The twin: trusted entries of
    another CA are no issuers."""
    root = CA(name="h235 root")
    intermediate = root.create_child_ca(name="h235 intermediate")
    leaf = intermediate.issue_cert("client")
    others = CA(name="another root")
    store = mtls.Keystore()
    store.add_key("client", leaf.private_key, [leaf.certificate])
    trusted = (intermediate, root) if issuers == "its CAs" else (others.create_child_ca(), others)
    store.add_certificate("interca", trusted[0].certificate)
    store.add_certificate("rootca", trusted[1].certificate)
    path = tmp_path / "leaf-only.p12"
    store.save(path, JAVA_PW, store_type="PKCS12")
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    back = mtls.Keystore.load(path, JAVA_PW)
    expected = 3 if issuers == "its CAs" else 1
    assert len(back.certificate_chain("client")) == listed["client"].chain_length == expected
    assert back.trusted_aliases == ("interca", "rootca")
    server_ca = CA()
    ctx = mtls.client_context(back, server_ca.truststore())
    with MTLSServer(server_ca.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        if issuers == "its CAs":
            assert whoami(ctx, server.port)["client_cn"] == "client"
        else:
            with pytest.raises((OSError, ConnectionError)):
                whoami(ctx, server.port)


@pytest.mark.keytool
def test_a_key_whose_certificate_is_another_keys_issuer_keeps_it_as_java_does(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """A CA's key entry beside a key it issued, stored with a chain of one and written
    first: the leaf's chain took the CA's certificate as its issuer, and the CA's own
    entry was refused ("key entry 'ca' has no certificate"), a file mtls wrote and Java
    reads (h236). The JDK matches a key's certificate whatever chains hold it."""
    ca = mtls.Keystore.generate("ca", "CN=internal CA", key_type="EC", ca=True)
    gateway = mtls.Keystore.generate("gateway", "CN=gateway", key_type="EC")
    (leaf, *_) = ca.sign_request(gateway.certificate_request(), "ca")
    both = mtls.Keystore()
    both.add_key("gateway", gateway.key_entry("gateway")[1], [leaf])
    both.add_key("ca", ca.key_entry("ca")[1], ca.key_entry("ca")[2])
    path = tmp_path / "ca-and-gateway.p12"
    both.save(path, JAVA_PW, store_type="PKCS12")
    listed = keytool_list(jdk_keytool, path, JAVA_PW)
    back = mtls.Keystore.load(path, JAVA_PW)
    assert back.key_aliases == ("gateway", "ca")
    for alias in back.key_aliases:
        assert len(back.certificate_chain(alias)) == listed[alias].chain_length
    assert [len(back.certificate_chain(a)) for a in back.key_aliases] == [2, 1]


@pytest.mark.keytool
def test_a_namesake_with_another_key_is_no_issuer_as_in_java(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    """A root re-keyed under the same name, kept as a trusted entry beside a key whose
    chain the old root signed: the JDK passes it over (its subject key identifier is not
    the leaf's authority key identifier); mtls appended it to the key's chain once
    trusted entries were issuers too (h236), and convert wrote that chain on. The twin:
    the old root, the one that signed it, completes the chain."""
    old = CA(name="re-keyed root")
    leaf = old.issue_cert("client")
    for root, length in ((CA(name="re-keyed root"), 1), (old, 2)):
        assert root.certificate.subject == old.certificate.subject
        store = mtls.Keystore()
        store.add_key("k", leaf.private_key, [leaf.certificate])
        store.add_certificate("root", root.certificate)
        path = tmp_path / f"rekeyed-{length}.p12"
        store.save(path, JAVA_PW, store_type="PKCS12")
        assert keytool_list(jdk_keytool, path, JAVA_PW)["k"].chain_length == length
        assert len(mtls.Keystore.load(path, JAVA_PW).certificate_chain("k")) == length


@pytest.mark.keytool
def test_keytool_truststore(java: JavaStores) -> None:
    data = java.truststore.read_bytes()
    got = parse_pkcs12(data, JAVA_PW, decrypt_keys=False)
    assert got.keys == ()
    assert [(c.alias, c.der, c.trusted) for c in got.certs] == [("Trusted CA", java.ca_der, True)]
    assert {c.alias.lower() for c in got.certs if c.alias} == java.listed(
        java.truststore, "trustedCertEntry"
    )
    with pytest.raises(P12PasswordError, match="MAC does not match") as info:
        parse_pkcs12(data, None)  # the MAC is verified with the empty password, and fails
    assert info.value.which == "store"
    with pytest.raises(P12PasswordError) as info:
        parse_pkcs12(data, "wrong")
    assert info.value.which == "store"


@pytest.mark.keytool
def test_keytool_passwordless_truststore(java: JavaStores) -> None:
    """Java's password-less PKCS#12: certificates in the clear and no MAC."""
    store = java.tmp / "nopass.p12"
    props = [
        "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
        "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
    ]
    java.kt(
        *props,
        "-importcert",
        "-noprompt",
        "-keystore",
        store,
        "-storetype",
        "PKCS12",
        "-storepass",
        JAVA_PW,
        "-alias",
        "ca",
        "-file",
        java.tmp / "ca.crt",
    )
    got = parse_pkcs12(store.read_bytes(), None)
    assert not got.mac_verified
    assert [(c.alias, c.trusted) for c in got.certs] == [("ca", True)]


@pytest.mark.keytool
@pytest.mark.parametrize(
    "props",
    [
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA512AndAES_128",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA1AndAES_256",
                "keystore.pkcs12.macAlgorithm=HmacPBESHA512",
            ),
            id="aes-prf-sha512-sha1-mac-sha512",
        ),
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA224AndAES_256",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA384AndAES_128",
                "keystore.pkcs12.macAlgorithm=HmacPBESHA384",
            ),
            id="aes-prf-sha224-sha384-mac-sha384",
        ),
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndDESede",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndRC2_128",
                "keystore.pkcs12.macAlgorithm=HmacPBESHA224",
            ),
            id="3des-rc2_128-mac-sha224",
        ),
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA512/256AndAES_256",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA512/224AndAES_256",
                "keystore.pkcs12.macAlgorithm=HmacPBESHA512/256",
            ),
            id="aes-prf-sha512_256-mac-sha512_256",
        ),
        # RC4: keytool 17 and 25 still write it when asked (OpenSSL 3 needs -legacy);
        # mtls refused it as "damaged or unsupported" until it carried RC4 itself.
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndRC4_128",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndRC4_40",
            ),
            id="rc4_128-key-rc4_40-certs",
        ),
        pytest.param(
            (
                "keystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndRC4_40",
                "keystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndRC4_128",
            ),
            id="rc4_40-key-rc4_128-certs",
        ),
    ],
)
def test_keytool_algorithms(java: JavaStores, props: tuple[str, ...]) -> None:
    try:
        store = java.convert("converted", *props)
    except AssertionError as exc:
        if "not available" not in str(exc):
            raise
        pytest.skip("this JDK lacks one of the algorithms")  # JDK 17: SHA-512/256 PBES2
    got = parse_pkcs12(store.read_bytes(), JAVA_PW)
    assert got.mac_verified
    assert len(got.keys) == 2
    assert_keys_match_certs(got)
    # Each key decrypts to what keytool put in, whatever protects it.
    original = parse_pkcs12(java.keystore.read_bytes(), JAVA_PW)
    assert {k.alias: k.pkcs8_der for k in got.keys} == {k.alias: k.pkcs8_der for k in original.keys}
    with pytest.raises(P12PasswordError):  # the negative twin
        parse_pkcs12(store.read_bytes(), "not-" + JAVA_PW)
    assert mtls.client_context(mtls.Keystore.load(store, JAVA_PW), alias="ec").protocol == (
        ssl.PROTOCOL_TLS_CLIENT
    )


def test_rc4_is_rc4() -> None:
    """The published vectors (the stream is its own inverse)."""
    from mtls._rc2 import rc4

    assert rc4(b"Key", b"Plaintext").hex() == "bbf316e8d940af0ad3"
    assert rc4(b"Secret", b"Attack at dawn").hex() == "45a01f645fc35b383552544b9bf5"
    assert rc4(b"Key", bytes.fromhex("bbf316e8d940af0ad3")) == b"Plaintext"
    with pytest.raises(ValueError, match="1 to 256 bytes"):
        rc4(b"", b"x")


@pytest.mark.keytool
def test_keytool_legacy_rc2_40_loads(java: JavaStores) -> None:
    """Java's pre-8u301 default encrypts certificates with 40-bit RC2, which
    cryptography cannot decrypt: our RFC 2268 code does, and the keys match."""
    data = java.convert("legacy", "keystore.pkcs12.legacy").read_bytes()
    got = parse_pkcs12(data, JAVA_PW)
    assert got.mac_verified
    assert len(got.keys) == 2
    assert_keys_match_certs(got)
    with pytest.raises(P12PasswordError):
        parse_pkcs12(data, "not-" + JAVA_PW)


@pytest.mark.keytool
def test_keytool_non_ascii_password_with_legacy_pbe(java: JavaStores) -> None:
    """Newer JDKs encrypt with the password's UTF-8 bytes masked to 7 bits (the MAC uses
    the real BMPString); JDK 17 refuses to write such a store at all."""
    legacy = (
        "keystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndDESede",
        "keystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndRC2_128",
        "keystore.pkcs12.macAlgorithm=HmacPBESHA1",
    )
    try:
        store = java.convert("non-ascii", *legacy, password=PW)
    except AssertionError as exc:
        if "not ASCII" not in str(exc):
            raise
        pytest.skip("this JDK refuses non-ASCII passwords for PKCS#12 PBE")
    got = parse_pkcs12(store.read_bytes(), PW)
    assert got.mac_verified
    assert len(got.keys) == 2
    assert_keys_match_certs(got)
    assert not got.java_misencoded  # Java's own encoding: the JDK that wrote it reads it
    with pytest.raises(P12PasswordError) as info:
        parse_pkcs12(store.read_bytes(), PW, key_password="s3cret-pdssword")
    assert info.value.which == "key"
    # PBES2 (the default since 8u301) takes the plain UTF-8 bytes.
    got = parse_pkcs12(java.convert("non-ascii-pbes2", password=PW).read_bytes(), PW)
    assert len(got.keys) == 2
    assert_keys_match_certs(got)


JAVA_KEY_PASSWORD = """
import java.io.*; import java.security.*;
public class KeyPassword { public static void main(String[] a) throws Exception {
    char[] store = a[2].toCharArray(), key = a[3].toCharArray();
    KeyStore src = KeyStore.getInstance("PKCS12");
    try (var in = new FileInputStream(a[0])) { src.load(in, store); }
    KeyStore out = KeyStore.getInstance("PKCS12"); out.load(null, null);
    for (String alias : java.util.Collections.list(src.aliases()))
        if (src.isKeyEntry(alias) && src.getKey(alias, store) instanceof PrivateKey k)
            out.setKeyEntry(alias, k, key, src.getCertificateChain(alias));
    try (var os = new FileOutputStream(a[1])) { out.store(os, store); }
}}
"""


@pytest.mark.keytool
def test_key_password_differs_from_store_password(java: JavaStores) -> None:
    """keytool refuses separate key passwords for PKCS#12, but the KeyStore API writes them."""
    source = java.tmp / "KeyPassword.java"
    source.write_text(JAVA_KEY_PASSWORD)
    store = java.tmp / "keypass.p12"
    jvm = [flag.removeprefix("-J") for flag in JVM_FLAGS]
    run(java.keytool.parent / "java", *jvm, source, java.keystore, store, JAVA_PW, "key-secret")
    data = store.read_bytes()
    with pytest.raises(P12PasswordError) as info:
        parse_pkcs12(data, JAVA_PW)
    assert info.value.which == "key"
    with pytest.raises(P12PasswordError) as info:
        parse_pkcs12(data, JAVA_PW, key_password="wrong")
    assert info.value.which == "key"
    got = parse_pkcs12(data, JAVA_PW, key_password="key-secret")
    assert got.mac_verified
    assert len(got.keys) == 2
    assert_keys_match_certs(got)
    truststore_view = parse_pkcs12(data, JAVA_PW, decrypt_keys=False)
    # Undecrypted keys are still listed, by alias and localKeyId (what names the entry).
    listed = [(k.alias, k.local_key_id, k.pkcs8_der) for k in truststore_view.keys]
    assert listed == [(k.alias, k.local_key_id, b"") for k in got.keys]
    assert truststore_view.certs == got.certs
    # What a user reads: the entry the password does not open, and what to do (the
    # message said only "wrong key password ... check it", with no alias).
    first = got.keys[0].alias
    with pytest.raises(mtls.WrongPasswordError, match="pass key_password") as caught:
        mtls.Keystore.load(store, JAVA_PW)
    assert caught.value.alias == first and f"key entry {first!r}" in str(caught.value)
    with pytest.raises(mtls.WrongPasswordError, match="one key password") as caught:
        mtls.Keystore.load(store, JAVA_PW, key_password="wrong")
    assert caught.value.alias == first and "wrong" not in str(caught.value)
    assert "the store password does" not in str(caught.value)  # it does not, here
    # Twins: the right key password loads; a wrong store password is the store's.
    assert len(mtls.Keystore.load(store, JAVA_PW, key_password="key-secret").key_aliases) == 2
    with pytest.raises(mtls.WrongPasswordError, match="wrong store password") as caught:
        mtls.Keystore.load(store, "not-" + JAVA_PW)
    assert caught.value.alias is None


# --- openssl ---------------------------------------------------------------------------


class OpenSSLFiles:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        ca_key, ca, key = tmp / "ca.key", tmp / "ca.pem", tmp / "leaf.key"
        ca_opts = "-x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca"
        run("openssl", "req", *ca_opts.split(), "-keyout", ca_key, "-out", ca)
        leaf_opts = "-new -newkey rsa:2048 -nodes -subj /CN=openssl-leaf"
        run("openssl", "req", *leaf_opts.split(), "-keyout", key, "-out", tmp / "leaf.csr")
        sign = ("-CA", ca, "-CAkey", ca_key, "-set_serial", "2", "-days", "2")
        run("openssl", "x509", "-req", "-in", tmp / "leaf.csr", *sign, "-out", tmp / "leaf.pem")
        p8 = ("-topk8", "-nocrypt", "-outform", "DER")
        run("openssl", "pkcs8", *p8, "-in", key, "-out", tmp / "leaf.p8")
        self.pkcs8 = (tmp / "leaf.p8").read_bytes()
        self.leaf_der = self.der(tmp / "leaf.pem")
        self.ca_der = self.der(ca)

    @staticmethod
    def der(pem: Path) -> bytes:
        return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )

    def export(self, *options: str, password: str = PW) -> bytes:
        out = self.tmp / "out.p12"
        files = ("-inkey", self.tmp / "leaf.key", "-in", self.tmp / "leaf.pem")
        chain = ("-certfile", self.tmp / "ca.pem", "-name", "leaf key")
        run(
            "openssl",
            "pkcs12",
            "-export",
            *files,
            *chain,
            "-passout",
            f"pass:{password}",
            "-out",
            out,
            *options,
        )
        return out.read_bytes()


@pytest.fixture(scope="module")
def openssl(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLFiles:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return OpenSSLFiles(tmp_path_factory.mktemp("openssl"))


OPENSSL_VARIANTS = {  # name: options of openssl pkcs12 -export
    "default-pbes2-aes256": "",
    "pbe-sha1-3des-mac-sha1": "-certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1",
    "pbe-sha1-2des-mac-sha224": "-certpbe PBE-SHA1-2DES -keypbe PBE-SHA1-2DES -macalg sha224",
    "aes128-des3-mac-sha512": "-certpbe AES-128-CBC -keypbe DES-EDE3-CBC -macalg sha512",
    "aes192-mac-sha384": "-certpbe AES-192-CBC -keypbe AES-192-CBC -macalg sha384",
    "nomac": "-nomac",
    "unencrypted": "-keypbe NONE -certpbe NONE",
}


@pytest.mark.openssl
@pytest.mark.parametrize("options", OPENSSL_VARIANTS.values(), ids=OPENSSL_VARIANTS.keys())
def test_openssl_export(openssl: OpenSSLFiles, options: str) -> None:
    data = openssl.export(*options.split())
    assert looks_like_pkcs12(data)
    got = parse_pkcs12(data, PW)
    assert got.mac_verified is ("-nomac" not in options)
    assert [(k.alias, k.pkcs8_der) for k in got.keys] == [("leaf key", openssl.pkcs8)]
    assert [c.der for c in got.certs] == [openssl.leaf_der, openssl.ca_der]  # file order
    assert [(c.alias, c.trusted) for c in got.certs] == [("leaf key", False), (None, False)]
    assert_keys_match_certs(got)
    truststore_view = parse_pkcs12(data, PW, decrypt_keys=False)
    assert truststore_view.certs == got.certs
    # A plain keyBag is read as it is; a shrouded key is listed undecrypted.
    undecrypted = tuple(replace(k, pkcs8_der=b"") for k in got.keys)
    assert truststore_view.keys == (got.keys if "NONE" in options else undecrypted)


@pytest.mark.openssl
def test_openssl_legacy(openssl: OpenSSLFiles) -> None:
    try:
        rc2_128 = openssl.export(
            "-legacy", "-certpbe", "PBE-SHA1-RC2-128", "-keypbe", "PBE-SHA1-RC2-128"
        )
        default_legacy = openssl.export("-legacy")
    except AssertionError as exc:
        pytest.skip(f"openssl -legacy needs the legacy provider: {exc}")
    got = parse_pkcs12(rc2_128, PW)
    assert [k.pkcs8_der for k in got.keys] == [openssl.pkcs8]
    assert [c.der for c in got.certs] == [openssl.leaf_der, openssl.ca_der]
    # -legacy's certificate default is 40-bit RC2: decrypted by mtls._rc2.
    legacy = parse_pkcs12(default_legacy, PW)
    assert [k.pkcs8_der for k in legacy.keys] == [openssl.pkcs8]
    assert [c.der for c in legacy.certs] == [openssl.leaf_der, openssl.ca_der]


@pytest.mark.openssl
def test_openssl_unencrypted_needs_no_password(openssl: OpenSSLFiles) -> None:
    got = parse_pkcs12(openssl.export("-keypbe", "NONE", "-certpbe", "NONE", "-nomac"), None)
    assert not got.mac_verified  # no MAC to verify
    assert [k.pkcs8_der for k in got.keys] == [openssl.pkcs8]
    assert len(got.certs) == 2
    # With a MAC, None is the empty password: a MAC keyed by another one is refused.
    with pytest.raises(P12PasswordError, match="MAC does not match"):
        parse_pkcs12(openssl.export("-keypbe", "NONE", "-certpbe", "NONE"), None)


@pytest.mark.openssl
def test_openssl_wrong_or_missing_password(openssl: OpenSSLFiles) -> None:
    data = openssl.export()
    for password in ("wrong", "", PW.upper()):
        with pytest.raises(P12PasswordError) as info:
            parse_pkcs12(data, password)
        assert info.value.which == "store"
    with pytest.raises(P12PasswordError, match="MAC does not match") as info:
        parse_pkcs12(data, None)
    assert info.value.which == "store"
    with pytest.raises(P12PasswordError, match="password is needed") as info:
        parse_pkcs12(openssl.export("-nomac"), None)
    assert info.value.which == "store"
    with pytest.raises(P12PasswordError) as info:  # no MAC: the padding check catches it
        parse_pkcs12(openssl.export("-nomac"), "wrong")
    assert info.value.which == "store"


@pytest.mark.openssl
def test_a_macless_store_under_the_empty_password_says_to_pass_it(
    openssl: OpenSSLFiles, tmp_path: Path
) -> None:
    """``openssl pkcs12 -export -nomac -passout pass:`` encrypts the key under the empty
    password and writes no MAC: None reads such a file unverified (what keytool's
    password-less truststores need) and cannot open the key, and the message said only
    "pass its password" of a password that is empty. It names password="" now, which
    opens it (the twin)."""
    path = tmp_path / "empty.p12"
    path.write_bytes(openssl.export("-nomac", password=""))
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.Keystore.load(path, None)
    assert 'password=""' in str(info.value)
    assert mtls.Keystore.load(path, "").key_aliases == ("leaf key",)


@pytest.mark.openssl
def test_openssl_empty_password(openssl: OpenSSLFiles) -> None:
    """OpenSSL, like Java, derives "" as the BMPString terminator alone."""
    for options in ((), ("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES")):
        data = openssl.export(*options, password="")
        got = parse_pkcs12(data, "")
        assert got.mac_verified
        assert [k.pkcs8_der for k in got.keys] == [openssl.pkcs8]
        with pytest.raises(P12PasswordError):
            parse_pkcs12(data, "x")


def _libcrypto() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto")
    if name is None:
        pytest.skip("libcrypto not found")
    lib = ctypes.CDLL(name)
    vp, ci = ctypes.c_void_p, ctypes.c_int
    signatures = {
        "BIO_new_mem_buf": (vp, [ctypes.c_char_p, ci]),
        "BIO_free": (ci, [vp]),
        "PEM_read_bio_PrivateKey": (vp, [vp, vp, vp, vp]),
        "PEM_read_bio_X509": (vp, [vp, vp, vp, vp]),
        "PKCS12_create": (vp, [ctypes.c_char_p, ctypes.c_char_p, vp, vp, vp, ci, ci, ci, ci, ci]),
        "i2d_PKCS12": (ci, [vp, ctypes.POINTER(ctypes.c_char_p)]),
        "PKCS12_free": (None, [vp]),
        "EVP_PKEY_free": (None, [vp]),
        "X509_free": (None, [vp]),
    }
    for function, (restype, argtypes) in signatures.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib


@pytest.mark.openssl
def test_openssl_null_password(openssl: OpenSSLFiles) -> None:
    """OpenSSL's PKCS12_create(NULL, ...) derives from zero bytes, not the terminator;
    OpenSSL's readers try that variant for "", and so do we."""
    lib = _libcrypto()
    pems = [(openssl.tmp / n).read_bytes() for n in ("leaf.key", "leaf.pem")]
    bios = [lib.BIO_new_mem_buf(pem, len(pem)) for pem in pems]
    key = lib.PEM_read_bio_PrivateKey(bios[0], None, None, None)
    cert = lib.PEM_read_bio_X509(bios[1], None, None, None)
    pbe_3des = 146  # NID_pbe_WithSHA1And3_Key_TripleDES_CBC, so the BMP password matters
    p12 = lib.PKCS12_create(None, b"null", key, cert, None, pbe_3des, pbe_3des, 0, 0, 0)
    assert p12
    size = lib.i2d_PKCS12(p12, None)
    buffer = ctypes.create_string_buffer(size)
    cursor = ctypes.c_char_p(ctypes.addressof(buffer))
    assert lib.i2d_PKCS12(p12, ctypes.byref(cursor)) == size
    data = buffer.raw[:size]
    lib.PKCS12_free(p12)
    lib.EVP_PKEY_free(key)
    lib.X509_free(cert)
    for bio in bios:
        lib.BIO_free(bio)
    got = parse_pkcs12(data, "")
    assert got.mac_verified
    assert [(k.alias, k.pkcs8_der) for k in got.keys] == [("null", openssl.pkcs8)]
    assert [c.der for c in got.certs] == [openssl.leaf_der]


# --- PBMAC1 and hostile parameters, on stores rebuilt around a real authSafe ------------


def der_int(n: int) -> bytes:
    return _der.encode(_der.INTEGER, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def seq(*parts: bytes) -> bytes:
    return _der.encode(_der.SEQUENCE, b"".join(parts))


def rebuild(data: bytes, mac_data: bytes) -> bytes:
    """The same PFX with its MacData replaced."""
    version, auth_safe, *_ = _der.read_single(data, _der.SEQUENCE).children()
    return seq(
        _der.encode(version.tag, version.value),
        _der.encode(auth_safe.tag, auth_safe.value),
        mac_data,
    )


def auth_safe_bytes(data: bytes) -> bytes:
    _, auth_safe, *_ = _der.read_single(data, _der.SEQUENCE).children()
    _, content = auth_safe.children()
    return _der.read_single(content.value, _der.OCTET_STRING).value


def pbmac1(
    data: bytes,
    password: str,
    *,
    key_length: int | None = 32,
    salt: bytes = b"pbmac1-salt-1234",
    rounds: int = 2048,
    unused: tuple[bytes, int] = (b"NOT USED", 1),
) -> bytes:
    """RFC 9579 MacData: PBKDF2-HMAC-SHA256 keys an HMAC-SHA256 over the authSafe.
    (Checked by hand against RFC 9579 appendix A.1; OpenSSL 3.0 and JDK 25 cannot write it.)"""
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds, key_length or 32)
    mac = hmac.new(key, auth_safe_bytes(data), "sha256").digest()
    hmac_sha256 = seq(_der.encode_oid("1.2.840.113549.2.9"), _der.encode(_der.NULL, b""))
    length = der_int(key_length) if key_length is not None else b""
    kdf_params = seq(_der.encode(_der.OCTET_STRING, salt), der_int(rounds), length, hmac_sha256)
    kdf = seq(_der.encode_oid("1.2.840.113549.1.5.12"), kdf_params)
    algorithm = seq(_der.encode_oid("1.2.840.113549.1.5.14"), seq(kdf, hmac_sha256))
    return seq(
        seq(algorithm, _der.encode(_der.OCTET_STRING, mac)),
        _der.encode(_der.OCTET_STRING, unused[0]),  # MacData's macSalt and iterations
        der_int(unused[1]),
    )


@pytest.mark.openssl
def test_pbmac1(openssl: OpenSSLFiles) -> None:
    data = openssl.export()
    got = parse_pkcs12(rebuild(data, pbmac1(data, PW)), PW)
    assert got.mac_verified
    assert [k.pkcs8_der for k in got.keys] == [openssl.pkcs8]
    with pytest.raises(P12PasswordError):
        parse_pkcs12(rebuild(data, pbmac1(data, PW)), "wrong")
    with pytest.raises(P12FormatError, match="key length"):
        parse_pkcs12(rebuild(data, pbmac1(data, PW, key_length=None)), PW)
    # macSalt and iterations go unused under PBMAC1, but any bytes there were taken
    # (h157): they are still an OCTET STRING and an INTEGER.
    good = pbmac1(data, PW)
    salt = _der.encode(_der.OCTET_STRING, b"NOT USED")
    for bad in (  # the same lengths, another tag
        good.replace(salt, b"\x05" + salt[1:]),
        good.replace(salt + der_int(1), salt + b"\x04" + der_int(1)[1:]),
    ):
        assert bad != good and len(bad) == len(good)
        with pytest.raises(P12FormatError, match="expected tag"):
            parse_pkcs12(rebuild(data, bad), PW)
    # Their values are not: go-pkcs12's Modern2026 writes an empty macSalt and
    # iterations 0, which OpenSSL reads; mtls refused the file as damaged (h188).
    go_style = pbmac1(data, PW, unused=(b"", 0))
    assert parse_pkcs12(rebuild(data, go_style), PW).mac_verified
    with pytest.raises(P12PasswordError):
        parse_pkcs12(rebuild(data, go_style), "wrong")


@pytest.mark.openssl
@pytest.mark.parametrize("what", ["keystore", "truststore", "empty", "both"])
def test_written_stores_carry_keytools_mac(tmp_path: Path, what: str) -> None:
    """keytool's MAC since JDK 12: 10,000 rounds, a 20-byte salt. cryptography's own
    has 2,048 and 8, which made a one-entry store the cheapest place to guess its
    password (a store of several parts already had keytool's)."""
    issued = CA(key_type="EC").issue_cert("mac")
    if what == "truststore":
        store: mtls.Keystore | mtls.Truststore = mtls.Truststore()
        store.add("ca", issued.certificate)
    else:
        store = mtls.Keystore() if what == "empty" else issued.keystore("mac")
        if what == "both":
            store.add_certificate("ca", issued.certificate)
    target = tmp_path / "mac.p12"
    store.save(target, PW, store_type="PKCS12")
    info = subprocess.run(
        ["openssl", "pkcs12", "-in", str(target), "-info", "-noout", "-passin", f"pass:{PW}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "MAC: sha256, Iteration 10000" in info.stderr + info.stdout
    assert "salt length: 20" in info.stderr + info.stdout
    # The twin: the MAC still decides the password.
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(target, "not-" + PW)


def test_a_non_ascii_pkcs12_password_is_warned_about(tmp_path: Path, caplog) -> None:
    store = CA(key_type="EC").issue_cert("na").keystore("na")
    with caplog.at_level("WARNING", logger="mtls"):
        store.save(tmp_path / "na.p12", "pässwörd-1", store_type="PKCS12")
    assert "JDK 17 and older cannot open this store" in caplog.text
    assert str(tmp_path / "na.p12") in caplog.text and "pässwörd" not in caplog.text
    assert mtls.Keystore.load(tmp_path / "na.p12", "pässwörd-1").key_aliases == ("na",)
    # The twins: an ASCII password, or JKS (which Java 17 reads), says nothing.
    caplog.clear()
    with caplog.at_level("WARNING", logger="mtls"):
        store.save(tmp_path / "a.p12", "password-1 with spaces ~!", store_type="PKCS12")
        store.save(tmp_path / "na.jks", "pässwörd-1", store_type="JKS")
    assert "JDK 17" not in caplog.text


@pytest.mark.parametrize("password", ["tab\there!", "bell\x07", "del\x7f"])
def test_a_pkcs12_password_with_a_control_character_is_warned_about(
    tmp_path: Path, caplog, password: str
) -> None:
    """Java 17's PBE key takes printable ASCII only (space to ~): a tab or another
    control character is as unreadable there as a letter outside ASCII, and keytool 17
    says the password is incorrect; isascii() let them through without a word."""
    store = CA(key_type="EC").issue_cert("c").keystore("c")
    with caplog.at_level("WARNING", logger="mtls"):
        store.save(tmp_path / "c.p12", password, store_type="PKCS12")
    assert "JDK 17 and older cannot open this store" in caplog.text
    assert password not in caplog.text
    assert mtls.Keystore.load(tmp_path / "c.p12", password).key_aliases == ("c",)


@pytest.mark.openssl
@pytest.mark.parametrize("tail", [b"\r\n", b"\0" * 7, b"junk after the store"])
def test_bytes_after_the_pfx_are_ignored_as_java_and_openssl_ignore_them(
    openssl: OpenSSLFiles, tmp_path: Path, tail: bytes
) -> None:
    data = openssl.export()
    padded = tmp_path / "padded.p12"
    padded.write_bytes(data + tail)
    # OpenSSL reads it (the reference), and so does mtls, with the same entry.
    run("openssl", "pkcs12", "-in", padded, "-noout", "-passin", f"pass:{PW}")
    got = mtls.Keystore.load(padded, PW)
    assert got.key_entry()[1] == openssl.pkcs8
    # The twins: the MAC still decides the password, and a store cut short is refused.
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(padded, "wrong")
    padded.write_bytes(data[:-1])
    with pytest.raises(mtls.KeystoreFormatError):
        mtls.Keystore.load(padded, PW)


@pytest.mark.openssl
def test_pbmac1_with_a_short_key_is_refused(openssl: OpenSSLFiles) -> None:
    """A 1-byte PBMAC1 key leaves 256 MACs: a forger picks a salt under which a password
    of their choosing verifies too (go-pkcs12's pbmac1-short-key-bypass vector)."""
    data = openssl.export()
    salt = next(
        salt
        for n in range(100_000)
        if hashlib.pbkdf2_hmac("sha256", PW.encode(), salt := b"s%d" % n, 1, 1)
        == hashlib.pbkdf2_hmac("sha256", b"forged", salt, 1, 1)
    )
    forged = rebuild(data, pbmac1(data, PW, key_length=1, salt=salt, rounds=1))
    for password in (PW, "forged"):
        with pytest.raises(P12FormatError, match="1 bytes long, too short"):
            parse_pkcs12(forged, password)
    # The twin: 20 bytes, the shortest taken as a MAC, verifies the right password only.
    twenty = rebuild(data, pbmac1(data, PW, key_length=20))
    assert parse_pkcs12(twenty, PW).mac_verified
    with pytest.raises(P12PasswordError):
        parse_pkcs12(twenty, "forged")


def nest(data: bytes, depth: int) -> bytes:
    """An unencrypted, MAC-less PFX whose bags sit inside `depth` nested safeContentsBags."""
    auth_safe = _der.read_single(auth_safe_bytes(data), _der.SEQUENCE)
    bags = b"".join(  # every bag of every (plain data) ContentInfo
        _der.read_single(ci.children()[1].children()[0].value, _der.SEQUENCE).value
        for ci in auth_safe.children()
    )
    for _ in range(depth):
        bags = seq(_der.encode_oid("1.2.840.113549.1.12.10.1.6"), _der.encode(0xA0, seq(bags)))
    content = _der.encode(0xA0, _der.encode(_der.OCTET_STRING, seq(bags)))
    content_info = seq(_der.encode_oid("1.2.840.113549.1.7.1"), content)
    outer = _der.encode(0xA0, _der.encode(_der.OCTET_STRING, seq(content_info)))
    return seq(der_int(3), seq(_der.encode_oid("1.2.840.113549.1.7.1"), outer))


@pytest.mark.openssl
def test_nested_safe_contents_bags(openssl: OpenSSLFiles) -> None:
    data = openssl.export("-keypbe", "NONE", "-certpbe", "NONE", "-nomac")
    plain = parse_pkcs12(data, None)
    assert parse_pkcs12(nest(data, 0), None) == plain
    assert parse_pkcs12(nest(data, 2), None) == plain
    # Refused by the reader's own limit, or first by the BER walk's (32 levels of elements).
    with pytest.raises(P12FormatError, match=r"nested (too deeply|more than 32 levels)"):
        parse_pkcs12(nest(data, 50), None)
    with pytest.raises(P12FormatError, match="nested too deeply"):
        parse_pkcs12(nest(data, 5), None)


@pytest.mark.openssl
@pytest.mark.parametrize(
    "iterations", [0, -1, 10_000_001, 2**64, 2**40000], ids=["0", "-1", "cap+1", "2^64", "2^40000"]
)
def test_hostile_iteration_count_fails_fast(openssl: OpenSSLFiles, iterations: int) -> None:
    data = openssl.export()
    sha1 = seq(_der.encode_oid("1.3.14.3.2.26"), _der.encode(_der.NULL, b""))
    mac_data = seq(
        seq(sha1, _der.encode(_der.OCTET_STRING, bytes(20))),
        _der.encode(_der.OCTET_STRING, b"salt"),
        der_int(iterations),
    )
    # Refused while reading the parameters, before any derivation runs (the message
    # names the count): no wall-clock assertion needed.
    # Malformed counts are format errors; a count over Java's cap is a work limit.
    with pytest.raises((P12FormatError, WorkLimitError), match="iteration count"):
        parse_pkcs12(rebuild(data, mac_data), PW)


# --- cryptography-written stores, and fuzzing ---------------------------------------------


def _small_store(algorithm: pkcs12.PBES, password: bytes = b"fuzz") -> bytes:
    # A fixed serial and validity, not mtls.testing.CA: the fuzzed bytes stay the same size.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "fuzz")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1))
        .not_valid_after(datetime.datetime(2040, 1, 1))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(1)
        .key_cert_algorithm(algorithm)
        .hmac_hash(hashes.SHA1())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(b"fuzz", key, cert, [cert], encryption)


FUZZ_BASES = [_small_store(algorithm) for algorithm in pkcs12.PBES]


@pytest.mark.parametrize("base", FUZZ_BASES, ids=[a.name for a in pkcs12.PBES])
def test_cryptography_stores(base: bytes) -> None:
    got = parse_pkcs12(base, "fuzz")
    assert got.mac_verified
    assert [k.alias for k in got.keys] == ["fuzz"]
    assert [c.alias for c in got.certs] == ["fuzz", None]
    assert_keys_match_certs(got)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(FUZZ_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if kind == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[position : position + draw(st.integers(1, 4))]
        if not data:
            break
    return bytes(data)


@settings(
    max_examples=200, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=st.one_of(st.binary(max_size=300), mutated()),
    password=st.sampled_from(["fuzz", "", None]),
    decrypt_keys=st.booleans(),
)
def test_fuzz_only_our_errors_escape(data: bytes, password: str | None, decrypt_keys: bool) -> None:
    looks_like_pkcs12(data)  # never raises
    with contextlib.suppress(P12FormatError, P12PasswordError, WorkLimitError):
        parse_pkcs12(data, password, decrypt_keys=decrypt_keys)


def test_looks_like_pkcs12() -> None:
    base = FUZZ_BASES[0]
    assert looks_like_pkcs12(base)
    assert looks_like_pkcs12(base[:40])  # truncated still sniffs; parsing then says why
    for other in (b"", b"\x30", bytes.fromhex("feedfeed00000002"), b"-----BEGIN", base[1:]):
        assert not looks_like_pkcs12(other)
    with pytest.raises(P12FormatError):
        parse_pkcs12(base[:40], "fuzz")
    # Bytes after the PFX are ignored, as Java and OpenSSL ignore them.
    assert parse_pkcs12(base + b"\0", "fuzz") == parse_pkcs12(base, "fuzz")


# --- real WSO2 files ---------------------------------------------------------------------

needs_wso2 = pytest.mark.skipif(not WSO2.is_dir(), reason=f"{WSO2} is not present")


def _against_cryptography(data: bytes, password: str, got: P12Contents) -> None:
    """cryptography's reader (one key, no trusted flag) agrees on what it can see."""
    theirs = pkcs12.load_pkcs12(data, password.encode())
    assert theirs.key is not None
    assert theirs.cert is not None
    ours = serialization.load_der_private_key(got.keys[0].pkcs8_der, None)
    assert ours.private_numbers() == theirs.key.private_numbers()  # type: ignore[union-attr]
    their_certs = [theirs.cert, *theirs.additional_certs]
    assert sorted(
        c.certificate.public_bytes(serialization.Encoding.DER) for c in their_certs
    ) == sorted(c.der for c in got.certs)


@pytest.mark.fixtures
@needs_wso2
def test_wso2_cert_chain_client() -> None:
    data = (WSO2 / "cert_chain_client.p12").read_bytes()
    got = parse_pkcs12(data, "password")
    assert got.mac_verified
    assert [k.alias for k in got.keys] == ["cert-chain-client"]
    assert_keys_match_certs(got)
    chain = [x509.load_der_x509_certificate(c.der) for c in got.certs]
    assert len(chain) == 3
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(chain[2])
    # Java names a chain's CA certificates by their subject DN.
    assert [c.alias for c in got.certs[1:]] == [c.subject.rfc4514_string() for c in chain[1:]]
    _against_cryptography(data, "password", got)


@pytest.mark.fixtures
@needs_wso2
def test_wso2_cert_chain_root() -> None:
    data = (WSO2 / "cert_chain_root.p12").read_bytes()
    got = parse_pkcs12(data, "password")
    assert [k.alias for k in got.keys] == ["cert-chain-root"]
    assert len(got.certs) == 1
    assert_keys_match_certs(got)
    _against_cryptography(data, "password", got)


@pytest.mark.fixtures
@needs_wso2
def test_wso2am() -> None:
    data = (WSO2 / "wso2am.p12").read_bytes()
    got = parse_pkcs12(data, "wso2carbon")
    assert got.mac_verified
    assert [k.alias for k in got.keys] == ["wso2carbon"]
    assert_keys_match_certs(got)
    cert = x509.load_der_x509_certificate(got.certs[0].der)
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "wso2am"
    _against_cryptography(data, "wso2carbon", got)
    with pytest.raises(P12PasswordError):
        parse_pkcs12(data, "password")


@pytest.mark.fixtures
@needs_wso2
def test_wso2_test_p12_uses_rc2_40() -> None:
    """Two 3DES-shrouded keys, certificates under 40-bit RC2 (Java's old default)."""
    data = (WSO2 / "test.p12").read_bytes()
    assert looks_like_pkcs12(data)
    got = parse_pkcs12(data, "password")
    assert len(got.keys) == 2
    assert_keys_match_certs(got)
    with pytest.raises(P12PasswordError):
        parse_pkcs12(data, "wrong")


# --- chains a PKCS#12 store cannot keep --------------------------------------------------


def _cross_signed_loop() -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """A leaf under CA A, whose certificate B signed, whose certificate A signed: the
    chain [leaf, A, B, A] links by name at every step and comes back to A."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("A", "B", "leaf")}
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, issuer: str, ca: bool) -> x509.Certificate:
        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])

        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(keys[subject].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(keys[issuer], hashes.SHA256())
        )

    a = cert("A", "B", True)
    return keys["leaf"], [cert("leaf", "A", False), a, cert("B", "A", True), a]


def test_a_chain_pkcs12_cannot_keep_is_refused_not_shortened() -> None:
    """PKCS#12 keeps certificates, not their order: readers (keytool, mtls) rebuild a
    chain by issuer names from the leaf. A chain that does not link so was written and
    read back shorter (a JKS with a 3-certificate chain converted to 1); keytool
    -importkeystore refuses it. JKS keeps a chain as given."""
    root = CA()
    intermediate = root.create_child_ca(name="intermediate")
    leaf = intermediate.issue_cert("svc")
    gapped = mtls.Keystore()
    gapped.add_key("svc", leaf.private_key, [leaf.certificate, root.certificate])
    with pytest.raises(
        mtls.KeyEntryError,
        match=r"'svc': certificate 2 of its chain \(CN=mtls testing CA.*\) is not on the issuer "
        r"path from its leaf \(which ends at CN=svc.*issued by CN=intermediate.*read back "
        r"with 1 certificate",
    ):
        gapped.to_bytes("changeit", store_type="PKCS12")
    jks = mtls.Keystore.from_bytes(gapped.to_bytes("changeit"), "changeit")
    assert len(jks.certificate_chain("svc")) == 2

    key, looped = _cross_signed_loop()
    loop = mtls.Keystore()
    loop.add_key("leaf", key, looped)
    with pytest.raises(mtls.KeyEntryError, match=r"certificate 4 of its chain.*back with 3"):
        loop.to_bytes("changeit", store_type="PKCS12")

    # The twins: a chain in order goes through PKCS#12 whole, and so does one given out
    # of order (written in the order every reader rebuilds; it was written so before).
    chain = [leaf.certificate, intermediate.certificate, root.certificate]
    for written in (chain, [leaf.certificate, root.certificate, intermediate.certificate]):
        whole = mtls.Keystore()
        whole.add_key("svc", leaf.private_key, written)
        data = whole.to_bytes("changeit", store_type="PKCS12")
        assert mtls.Keystore.from_bytes(data, "changeit").certificate_chain("svc") == tuple(chain)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain-keybag", "shrouded"])
def test_a_key_without_its_certificate_says_what_keytool_shows(encrypted: bool) -> None:
    """keytool lists a shrouded key without a certificate as a chain of length 0, and
    no entry at all for a key in a plain keyBag (it skips those)."""
    key = ec.generate_private_key(ec.SECP256R1())
    protection = (
        serialization.BestAvailableEncryption(b"changeit")
        if encrypted
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(b"lonely", key, None, None, protection)
    password = "changeit" if encrypted else None
    with pytest.raises(mtls.KeystoreFormatError, match="'lonely' has no certificate") as info:
        mtls.Keystore.from_bytes(data, password, allow_unprotected=not encrypted)
    shown = "a chain of length 0" if encrypted else "no such entry: it skips an unencrypted keyBag"
    assert f"keytool lists {shown}" in str(info.value)


def _openssl_key_and_certificate(tmp_path: Path) -> tuple[str, Path, Path]:
    """openssl's path, and an EC key and self-signed certificate (PEM files) it made
    (the test is skipped without openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=x", "-days", "30"], check=True, capture_output=True)  # fmt: skip
    return openssl, key, cert


def test_a_friendly_name_with_a_lone_surrogate_is_read_as_keytool_lists_it(
    tmp_path: Path,
) -> None:
    """A friendlyName BMPString holding an unpaired surrogate: keytool 17 and 25 list
    the entry (its alias with U+FFFD); mtls refused the whole store ("not a valid
    BMPString"), where its JKS reader maps the same to U+FFFD. The twin: the name as
    written ("AB") reads as it is."""
    openssl, key, cert = _openssl_key_and_certificate(tmp_path)
    plain = tmp_path / "plain.p12"
    subprocess.run([openssl, "pkcs12", "-export", "-nomac", "-certpbe", "NONE", "-inkey",
                    str(key), "-in", str(cert), "-name", "AB", "-passout", "pass:changeit",
                    "-out", str(plain)], check=True, capture_output=True)  # fmt: skip
    data = plain.read_bytes()
    assert mtls.Keystore.from_bytes(data, "changeit", allow_unprotected=True).aliases == ("AB",)
    lone = data.replace(b"\x1e\x04\x00A\x00B", b"\x1e\x04\xd8\x00\x00B")
    assert lone != data
    store = mtls.Keystore.from_bytes(lone, "changeit", allow_unprotected=True)
    assert store.key_aliases == ("\ufffdB",)


def test_a_non_ascii_pkcs12_password_is_noted_for_jdk17(tmp_path: Path) -> None:
    """A PKCS#12 store made by OpenSSL (or JDK 25, or cryptography) with a non-ASCII
    password loads in mtls and JDK 25, and JDK 17 refuses it ("keystore password was
    incorrect"): `mtls check` said OK for a file WSO2 on JDK 17 cannot load. Its keystore
    note says so now. The twin: an ASCII password has no such note."""
    openssl, key, cert = _openssl_key_and_certificate(tmp_path)
    from tests._keytool import KEYTOOLS

    jdk17 = next((jdk for jdk in KEYTOOLS if jdk.major == 17), None)
    for n, (password, noted) in enumerate(
        (("pässwörd", True), ("pass\tword", True), ("password", False))
    ):
        out = tmp_path / f"{n}.p12"
        subprocess.run([openssl, "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
                        "-name", "a", "-passout", f"pass:{password}", "-out", str(out)],
                       check=True, capture_output=True)  # fmt: skip
        store = mtls.Keystore.load(out, password)
        assert store.key_aliases == ("a",)
        said = [note for note in store._java_notes if "outside printable ASCII" in note]
        assert bool(said) is noted, store._java_notes
        if jdk17 is not None:  # what the note claims, asked of JDK 17 itself
            listed = subprocess.run([jdk17.keytool, "-list", "-keystore", str(out),
                                     "-storepass", password], capture_output=True, text=True,
                                    timeout=120, check=False)  # fmt: skip
            assert (listed.returncode != 0) is noted, listed.stdout + listed.stderr


def test_a_non_ascii_password_on_legacy_pbe_is_noted_for_jdk25_too(tmp_path: Path) -> None:
    """The note above said JDK 25 reads such a file: true of PBES2/AES (OpenSSL 3's
    default), not of PKCS#12's own triple DES written by OpenSSL, which encrypts under
    the password's BMPString where Java masks its UTF-8 bytes to 7 bits: keytool 25
    says "keystore password was incorrect" too (h188). Each claim asked of keytool 25
    itself; the twin: the AES file keeps the JDK 17-only note."""
    openssl, key, cert = _openssl_key_and_certificate(tmp_path)
    from tests._keytool import KEYTOOLS

    jdk25 = next((jdk for jdk in KEYTOOLS if jdk.major >= 25), None)
    password = "pässwörd"
    for pbe, jdk25_reads in (("AES-256-CBC", True), ("PBE-SHA1-3DES", False)):
        out = tmp_path / f"{pbe}.p12"
        subprocess.run([openssl, "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
                        "-name", "a", "-passout", f"pass:{password}", "-out", str(out),
                        "-keypbe", pbe, "-certpbe", pbe],
                       check=True, capture_output=True)  # fmt: skip
        notes = mtls.Keystore.load(out, password)._java_notes
        (said,) = [note for note in notes if "outside printable ASCII" in note]
        assert ("though JDK 25 and OpenSSL can" in said) is jdk25_reads, said
        assert ("JDK 25 derives another key" in said) is not jdk25_reads, said
        if jdk25 is not None:
            listed = subprocess.run([jdk25.keytool, "-list", "-keystore", str(out),
                                     "-storepass", password], capture_output=True, text=True,
                                    timeout=120, check=False)  # fmt: skip
            assert (listed.returncode == 0) is jdk25_reads, listed.stdout + listed.stderr


@pytest.mark.parametrize(
    ("options", "noted"),
    [
        (("-keypbe", "AES-192-CBC", "-certpbe", "AES-256-CBC"), "PBES2 and AES-192-CBC, which"),
        (("-keypbe", "AES-256-CBC", "-certpbe", "DES-EDE3-CBC"), "PBES2 and 3DES, which the JDK"),
        (("-keypbe", "AES-128-CBC", "-certpbe", "AES-256-CBC"), None),
        (("-legacy", "-certpbe", "PBE-SHA1-2DES", "-keypbe", "PBE-SHA1-3DES"), "2-key triple"),
        (("-legacy", "-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-2DES"), "2-key triple"),
        (("-legacy", "-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES"), None),
        # PKCS#5's own PBES1 (h219): the JDK refuses these three, reads MD5 with DES.
        (("-legacy", "-certpbe", "PBE-SHA1-DES", "-keypbe", "AES-256-CBC"), "PBE-SHA1-DES)"),
        (("-legacy", "-certpbe", "AES-256-CBC", "-keypbe", "PBE-SHA1-RC2-64"), "SHA1-RC2-64)"),
        (("-legacy", "-certpbe", "PBE-MD5-RC2-64", "-keypbe", "AES-256-CBC"), "MD5-RC2-64)"),
        (("-legacy", "-certpbe", "PBE-MD5-DES", "-keypbe", "AES-256-CBC"), None),
    ],
)
def test_an_encryption_the_jdk_refuses_is_noted(tmp_path: Path, options, noted) -> None:
    """PBES2 with AES-192-CBC or 3DES (OpenSSL and Go write them): the JDK's PKCS12
    reader takes only AES-128-CBC and AES-256-CBC ("expecting the object identifier
    for AES cipher"), so keytool and WSO2 cannot read the certificates or the key.
    mtls loaded it without a word (h157). PKCS#12's own 2-key triple DES (openssl's
    PBE-SHA1-2DES) likewise: "keystore password was incorrect" for certificates
    encrypted so, a key so encrypted never unlocked (h188). Each keytool here is
    asked too, with a conversion that decrypts the key. The twins: AES-128 and AES-256,
    and 3-key triple DES, have no note."""
    openssl, key, cert = _openssl_key_and_certificate(tmp_path)
    from tests._keytool import KEYTOOLS

    out = tmp_path / "store.p12"
    made = subprocess.run([openssl, "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
                           "-name", "a", "-passout", "pass:changeit", *options, "-out", str(out)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode != 0 and "-legacy" in options:
        pytest.skip(f"this openssl has no legacy provider: {made.stderr.strip()}")
    assert made.returncode == 0, made.stderr
    for decrypt_keys in (True, False):  # loaded, and listed (keys not decrypted)
        store = (
            mtls.Keystore.load(out, "changeit")
            if decrypt_keys
            else mtls.Keystore.inspect(out, "changeit")
        )
        said = [note for note in store._java_notes if "does not take" in note]
        assert bool(said) is (noted is not None), store._java_notes
        if noted is not None:
            assert noted in said[0]
    for jdk in KEYTOOLS:  # what the note claims, asked of each JDK
        converted = subprocess.run([jdk.keytool, "-importkeystore", "-srckeystore", str(out),
                                    "-srcstorepass", "changeit", "-destkeystore",
                                    str(tmp_path / f"jdk{jdk.major}.jks"), "-deststoretype",
                                    "JKS", "-deststorepass", "changeit", "-noprompt"],
                                   capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        said_by_java = converted.stdout + converted.stderr
        refused = converted.returncode != 0 or "1 entries successfully" not in said_by_java
        assert refused is (noted is not None), (jdk.major, said_by_java)


def test_a_prf_only_jdk_17_lacks_is_noted_for_jdk_17(tmp_path: Path) -> None:
    """A key JDK 25 wrote under PBKDF2 with HMAC-SHA512/256 and AES-128: the note said
    JDK 17 and JDK 25 refuse it and blamed the cipher (h219). JDK 25 unlocks it, JDK 17
    does not: the note names JDK 17 alone. Both keytools are asked."""
    from tests._keytool import KEYTOOLS

    jdk25 = next((jdk for jdk in KEYTOOLS if jdk.major >= 25), None)
    jdk17 = next((jdk for jdk in KEYTOOLS if jdk.major == 17), None)
    if jdk25 is None or jdk17 is None:
        pytest.skip("needs JDK 17 and JDK 25 keytools")
    out = tmp_path / "store.p12"
    made = subprocess.run([jdk25.keytool,
                           "-J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithHmacSHA512/256AndAES_128",
                           "-genkeypair", "-keystore", str(out), "-storepass", "changeit",
                           "-storetype", "PKCS12", "-alias", "ec", "-keyalg", "EC", "-dname", "CN=ec"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    (said,) = [n for n in mtls.Keystore.load(out, "changeit")._java_notes if "take" in n]
    assert "HMAC-SHA512/256, which JDK 17's PKCS12 reader does not take" in said, said
    assert "JDK 25)" not in said and "AES-128-CBC or" not in said, said
    for jdk, unlocks in ((jdk25, True), (jdk17, False)):
        csr = tmp_path / f"jdk{jdk.major}.csr"
        asked = subprocess.run([jdk.keytool, "-certreq", "-keystore", str(out), "-storepass",
                                "changeit", "-alias", "ec", "-file", str(csr)],
                               capture_output=True, text=True, timeout=120, check=False,
                               stdin=subprocess.DEVNULL)  # fmt: skip
        assert (asked.returncode == 0 and csr.exists()) is unlocks, asked.stdout + asked.stderr


def test_a_password_whose_mac_verifies_and_does_not_decrypt_says_why(tmp_path: Path) -> None:
    """OpenSSL given a password's ISO-8859-1 bytes (and Bouncy Castle with
    setUseISO8859d1ForDecryption) writes a MAC the Unicode password verifies and
    content only those bytes decrypt: "wrong store password", as for a truly wrong
    one, and "pass key_password" from Keystore.load (h157). It says what happened now.
    The twin: a wrong password keeps its message."""
    openssl, key, cert = _openssl_key_and_certificate(tmp_path)
    password = "M\u00f6tley Cr\u00fce"
    secret = tmp_path / "latin1.txt"
    secret.write_bytes(password.encode("latin-1"))
    out = tmp_path / "latin1.p12"
    subprocess.run([openssl, "pkcs12", "-export", "-inkey", str(key), "-in", str(cert),
                    "-passout", f"file:{secret}", "-out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    for load in (mtls.Keystore.load, mtls.Truststore.load):
        with pytest.raises(mtls.WrongPasswordError, match="verifies the file's integrity") as e:
            load(out, password)
        assert "another encoding of this non-ASCII password" in str(e.value)
        assert "key_password" not in str(e.value) and password not in str(e.value)
        with pytest.raises(mtls.WrongPasswordError, match="wrong store password"):
            load(out, "wrong")


def test_a_key_with_its_own_password_under_a_non_ascii_store_password_is_asked_for_it() -> None:
    """The MAC and the certificates open with the non-ASCII store password, the key has a
    password of its own: that is "pass key_password", not another encoding of the
    store password (h163, on the first version of the message above)."""
    from cryptography.hazmat.primitives.serialization import pkcs12 as crypto_pkcs12

    from mtls import _pkcs12
    from mtls._writers import pkcs12_encryption

    identity = CA(name="key password").issue_cert("client", common_name="client")
    store_pw = "p\u00e4ss-w\u00f6rd"

    def infos(password: str) -> list[bytes]:
        return _pkcs12.content_infos(
            crypto_pkcs12.serialize_key_and_certificates(
                b"a", identity.private_key, identity.certificate, None,
                pkcs12_encryption(password),
            )
        )  # fmt: skip

    def encrypted(info: bytes) -> bool:  # an EncryptedData ContentInfo (the certificates)
        return _der.encode_oid("1.2.840.113549.1.7.6") in info[:20]

    certs = [i for i in infos(store_pw) if encrypted(i)]
    key = [i for i in infos("key-own-password") if not encrypted(i)]
    data = _pkcs12.join_pfx(certs + key, store_pw)
    with pytest.raises(mtls.WrongPasswordError, match="pass key_password") as caught:
        mtls.Keystore.from_bytes(data, store_pw)
    assert "another encoding" not in str(caught.value)
    assert mtls.Keystore.from_bytes(data, store_pw, key_password="key-own-password").key_aliases


def test_a_key_scheme_the_java_note_cannot_read_still_lists(tmp_path: Path) -> None:
    """A key bag under PBKDF2 with a PRF mtls does not implement (hmacWithMD5): the
    store listed (Keystore.inspect, keys not decrypted), as keytool lists it, until the
    Java note read every key bag's scheme and refused the store (h163). The twin: loading
    the key says what it cannot decrypt."""
    from cryptography.hazmat.primitives.serialization import pkcs12 as crypto_pkcs12

    from mtls import _pkcs12
    from mtls._writers import pkcs12_encryption

    identity = CA(name="md5 prf").issue_cert("c", common_name="c")
    infos = _pkcs12.content_infos(
        crypto_pkcs12.serialize_key_and_certificates(
            b"c", identity.private_key, identity.certificate, None, pkcs12_encryption("changeit")
        )
    )
    sha256, md5 = _der.encode_oid("1.2.840.113549.2.9"), _der.encode_oid("1.2.840.113549.2.6")
    encrypted_data = _der.encode_oid("1.2.840.113549.1.7.6")
    patched = [i if encrypted_data in i[:20] else i.replace(sha256, md5) for i in infos]
    assert patched != infos
    path = tmp_path / "md5-prf.p12"
    path.write_bytes(_pkcs12.join_pfx(patched, "changeit"))
    assert mtls.Keystore.inspect(path, "changeit").key_aliases == ("c",)
    with pytest.raises(mtls.MTLSError):
        mtls.Keystore.load(path, "changeit")
