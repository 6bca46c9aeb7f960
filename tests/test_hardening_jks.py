"""Issue 11, the Java-family stores: JKS, JCEKS, BKS and UBER read safely and as the JDK reads them.

Secret-key entries are walked by their framing and listed (never deserialised), a
wrong integrity hash costs at most one cheap key decryption, empty chains and
duplicate aliases behave, aliases decode as the JDK shows them, Bouncy Castle
stores load, and a password promising integrity refuses a file that has none.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import subprocess
from pathlib import Path

import javaobj
import jks.rfc7292
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import mtls
from mtls import (
    KeyEntryError,
    Keystore,
    KeystoreFormatError,
    Truststore,
    WrongPasswordError,
    _jks,
)
from mtls.cli import main
from mtls.testing import CA, MTLSServer

from ._helpers import PASSWORD, whoami
from .conftest import JDK, build_jceks, keytool_list, run_keytool
from .test_jks_envelopes import JCE_OID, JKS_OID, envelope, jce_params

DATA = Path(__file__).parent / "data" / "pyjks"
JKS_MAGIC, JCEKS_MAGIC = b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"
STAMP = struct.pack(">q", 1_700_000_000_000)


# --------------------------------------------------------------------------- builders


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def utf(raw: bytes) -> bytes:
    """A ``writeUTF`` field from bytes as they are (odd encodings on purpose)."""
    return struct.pack(">H", len(raw)) + raw


def blob(raw: bytes) -> bytes:
    return u32(len(raw)) + raw


def cert_field(der: bytes, version: int = 2) -> bytes:
    return (utf(b"X.509") if version == 2 else b"") + blob(der)


def key_entry(alias: bytes, protected: bytes, chain: list[bytes], version: int = 2) -> bytes:
    certs = b"".join(cert_field(der, version) for der in chain)
    return u32(1) + utf(alias) + STAMP + blob(protected) + u32(len(chain)) + certs


def trusted_entry(alias: bytes, der: bytes, version: int = 2) -> bytes:
    return u32(2) + utf(alias) + STAMP + cert_field(der, version)


def secret_entry(alias: bytes, serialized: bytes) -> bytes:
    return u32(3) + utf(alias) + STAMP + serialized


def container(
    entries: list[bytes], password: str, *, magic: bytes = JKS_MAGIC, version: int = 2
) -> bytes:
    """A JKS/JCEKS store with a correct integrity hash for ``password``."""
    body = magic + u32(version) + u32(len(entries)) + b"".join(entries)
    return rehash(body, password)


def rehash(body: bytes, password: str) -> bytes:
    key = password.encode("utf-16-be") + b"Mighty Aphrodite"
    return body + hashlib.sha1(key + body).digest()


def jks_protected(pkcs8: bytes, password: str) -> bytes:
    return envelope(JKS_OID, jks.sun_crypto.jks_pkey_encrypt(pkcs8, password))


def der(identity: CA | mtls.testing.IssuedIdentity) -> bytes:
    return x509.load_pem_x509_certificate(identity.cert_pem).public_bytes(
        serialization.Encoding.DER
    )


def pkcs8_of(identity: mtls.testing.IssuedIdentity) -> bytes:
    key = serialization.load_pem_private_key(identity.private_key_pem, None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="jks hardening CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


@pytest.fixture
def no_javaobj(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything deserialises a Java object (pyjks's JCEKS path did)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("javaobj was asked to deserialise a Java object")

    monkeypatch.setattr(javaobj, "load", refuse)
    monkeypatch.setattr(javaobj, "loads", refuse)


@pytest.fixture
def jce_decryptions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The iteration count of every JCEKS key decryption that runs."""
    calls: list[int] = []
    real = _jks._jce_decrypt

    def counting(ciphertext: bytes, password: str, salt: bytes, iterations: int) -> bytes:
        calls.append(iterations)
        return real(ciphertext, password, salt, iterations)

    monkeypatch.setattr(_jks, "_jce_decrypt", counting)
    return calls


# --------------------------------------------------------------------------- 2, 8: secret keys


def genseckey_store(kt: JDK, path: Path) -> Path:
    """A JCEKS with keytool's four kinds of secret key, and one key pair."""
    common = ("-storetype", "JCEKS", "-keystore", str(path), "-storepass", PASSWORD,
              "-keypass", PASSWORD)  # fmt: skip
    for alias, algorithm, size in (("aes", "AES", "128"), ("des", "DES", "56"),
                                   ("desede", "DESede", "168")):  # fmt: skip
        run_keytool(kt, "-genseckey", "-alias", alias, "-keyalg", algorithm, "-keysize", size,
                    *common)  # fmt: skip
    subprocess.run(
        [kt.keytool, "-importpass", "-alias", "pbe", *common, "-noprompt"],
        input=b"hunter2\nhunter2\n", check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


def test_keytool_secret_keys_are_listed_without_deserialising(jdk_keytool, tmp_path, no_javaobj):
    path = genseckey_store(jdk_keytool, tmp_path / "secrets.jceks")
    listed = keytool_list(jdk_keytool, path, PASSWORD)
    assert {a: e.entry_type for a, e in listed.items()} == dict.fromkeys(
        ("aes", "des", "desede", "pbe"), "SecretKeyEntry"
    )
    for store in (Keystore.inspect(path, PASSWORD), Keystore.load(path, PASSWORD)):
        assert set(store.aliases) == set(listed) and len(store) == 4
        assert set(store.secret_keys) == set(listed)
        assert all("TLS cannot use it" in kind for kind in store.secret_keys.values())
        assert store.entry_type("AES") == "SecretKeyEntry" and "aes" in store
        assert store.key_aliases == () and not store.is_key_entry("aes")
        assert "4 secret keys" in repr(store)
        with pytest.raises(
            KeyEntryError,
            match="'aes' is a secret key .*TLS cannot use it.: it holds no certificate",
        ):
            store.certificate("aes")
    with pytest.raises(KeyEntryError, match="no private-key entry"):
        mtls.client_context(Keystore.load(path, PASSWORD))
    with pytest.raises(KeystoreFormatError, match=r"no certificates \(only 4 secret-key entries"):
        Truststore.load(path, PASSWORD)


def test_secret_keys_beside_a_key_pair_leave_the_key_usable(any_keytool, tmp_path, backend, ca):
    path = genseckey_store(any_keytool, tmp_path / "mixed.jceks")
    identity = ca.issue_cert("mixed client")
    p12 = tmp_path / "id.p12"
    identity.write_keystore(p12, PASSWORD, store_type="PKCS12")
    run_keytool(any_keytool, "-importkeystore", "-srckeystore", str(p12), "-srcstoretype",
                "PKCS12", "-srcstorepass", PASSWORD, "-destkeystore", str(path),
                "-deststoretype", "JCEKS", "-deststorepass", PASSWORD, "-destkeypass", PASSWORD)  # fmt: skip
    store = Keystore.load(path, PASSWORD)
    assert len(store.key_aliases) == 1 and len(store.secret_keys) == 4
    assert whoami(mtls.client_context(store, ca.truststore()), backend.port)["client_cn"] == (
        "mixed client"
    )
    # Saving would drop what was never decrypted: refused until they are removed.
    with pytest.raises(KeyEntryError, match=r"secret-key entries .* cannot be written"):
        store.save(tmp_path / "out.jks", PASSWORD)
    for alias in list(store.secret_keys):
        store.remove(alias)
    store.save(tmp_path / "out.jks", PASSWORD)
    assert Keystore.load(tmp_path / "out.jks", PASSWORD).key_aliases == store.key_aliases


def test_mtls_list_shows_secret_key_entries(any_keytool, tmp_path, capsys):
    path = genseckey_store(any_keytool, tmp_path / "s.jceks")
    assert main(["list", "--keystore", str(path), "--password", PASSWORD]) == 0
    out = capsys.readouterr().out
    assert "JCEKS, 4 entries" in out and out.count("SecretKeyEntry") == 4
    assert main(["list", "--keystore", str(path), "--password", PASSWORD, "--json"]) == 0
    assert capsys.readouterr().out.count('"kind": "SecretKeyEntry"') == 4


@pytest.mark.parametrize("name", ["AES128", "DES", "DESede", "PBKDF2WithHmacSHA1"])
def test_pyjks_secret_key_stores_list_their_entry(name, no_javaobj):
    store = Keystore.inspect(DATA / f"{name}.jceks", "12345678")
    assert store.aliases == ("mykey",) and store.entry_type("mykey") == "SecretKeyEntry"
    with pytest.raises(WrongPasswordError):  # the store hash is still checked
        Keystore.inspect(DATA / f"{name}.jceks", "1234567")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("unknown_type_of_sealed_object", "a serialized 'org.pyjks.DummyObject'"),
        ("unknown_sealed_object_sealAlg", "a serialized 'javax.crypto.SealedObject'"),
    ],
)
def test_sealed_objects_the_jdk_filter_refuses_are_refused(name, why, no_javaobj):
    with pytest.raises(KeystoreFormatError, match=f"not a sealed key as the JDK writes it .{why}"):
        Keystore.inspect(DATA / f"{name}.jceks", "12345678")


def test_an_unknown_seal_algorithm_is_refused(any_keytool, tmp_path, no_javaobj):
    path = tmp_path / "one.jceks"
    run_keytool(any_keytool, "-genseckey", "-alias", "k", "-keyalg", "AES", "-keysize", "128", "-storetype",
                "JCEKS", "-keystore", str(path), "-storepass", PASSWORD, "-keypass", PASSWORD)  # fmt: skip
    body = path.read_bytes()[:-20]
    assert Keystore.inspect(path, PASSWORD).secret_keys  # the twin: as keytool wrote it
    at = body.rindex(b"PBEWithMD5AndTripleDES")  # sealAlg, the last field written
    altered = rehash(body[:at] + b"PBEWithMD5AndTripleDEZ" + body[at + 22 :], PASSWORD)
    with pytest.raises(KeystoreFormatError, match="sealed with 'PBEWithMD5AndTripleDEZ'"):
        Keystore.from_bytes(altered, PASSWORD)


def nested_shared_arrays(depth: int = 40) -> bytes:
    """Java serialization of Object[] nested ``depth`` deep, each level holding the one
    below twice (a shared reference): tiny, and exponential for a naive deserialiser."""
    stream = b"\xac\xed\x00\x05"
    stream += b"\x75\x72" + utf(b"[Ljava.lang.Object;") + bytes(8) + b"\x02\x00\x00\x78\x70"
    stream += u32(2)
    for _ in range(1, depth):
        stream += b"\x75\x71" + u32(0x7E0000) + u32(2)  # a new array of the same class
    stream += b"\x70\x70"  # the innermost holds two nulls
    for level in range(depth - 1, 0, -1):
        stream += b"\x71" + u32(0x7E0000 + level + 1)  # ... and its sibling is shared
    return stream


def test_hostile_serialized_objects_are_refused_by_their_framing(no_javaobj, caplog):
    sealed_header = (
        b"\xac\xed\x00\x05\x73\x72"
        + utf(b"com.sun.crypto.provider.SealedObjectForKeyProtector")
        + bytes(8)
        + b"\x02\x00\x00\x78\x72"
        + utf(b"javax.crypto.SealedObject")
        + bytes(8)
        + b"\x02\x00\x01\x5b"
        + utf(b"encryptedContent")
        + b"\x74"
        + utf(b"[B")
        + b"\x78\x70"
    )
    hostile = [
        (nested_shared_arrays(), "not a serialized object"),
        # The right classes, but a field holding the nested arrays instead of bytes.
        (sealed_header + nested_shared_arrays()[4:], "an array of"),
        (sealed_header[:12], "truncated"),
    ]
    for serialized, why in hostile:
        store = container([secret_entry(b"k", serialized)], PASSWORD, magic=JCEKS_MAGIC)
        with caplog.at_level(logging.DEBUG):
            for password in (PASSWORD, None):
                with pytest.raises(KeystoreFormatError, match=why):
                    Keystore.from_bytes(store, password, _with_keys=False)
    assert not [r for r in caplog.records if r.name.startswith("javaobj")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- 3: bounded work


def five_entries_at_the_ceiling(cert: bytes) -> list[bytes]:
    protected = envelope(JCE_OID, bytes(48), jce_params(iterations=5_000_000))
    return [key_entry(f"k{i}".encode(), protected, [cert]) for i in range(5)]


def test_a_wrong_hash_decrypts_nothing_expensive(ca, jce_decryptions):
    store = container(five_entries_at_the_ceiling(der(ca)), "the-right-one", magic=JCEKS_MAGIC)
    for load in (
        lambda: Keystore.from_bytes(store, "a-wrong-one"),
        lambda: Keystore.from_bytes(store, "a-wrong-one", _with_keys=False),
        lambda: Truststore.from_bytes(store, "a-wrong-one"),
    ):
        with pytest.raises(WrongPasswordError, match="wrong store password"):
            load()
    assert jce_decryptions == []  # each entry asks for 5M rounds: over the diagnosis budget


def test_an_altered_store_is_diagnosed_with_one_key_entry(pki, jce_decryptions):
    keys = [(f"k{i}", pki.client_ec.key_der(), [c.public_bytes(serialization.Encoding.DER)
             for c in pki.client_ec.chain]) for i in range(5)]  # fmt: skip
    store = bytearray(build_jceks(keys, [], PASSWORD, PASSWORD, iterations=1000))
    assert Keystore.from_bytes(bytes(store), PASSWORD).key_aliases  # the twin: intact
    jce_decryptions.clear()
    store[-1] ^= 1  # the hash no longer matches, the password is right
    with pytest.raises(KeystoreFormatError, match="password unlocks key 'k0': the file was"):
        Keystore.from_bytes(bytes(store), PASSWORD)
    assert jce_decryptions == [1000]  # one entry, not five


def test_the_store_wide_budget_is_charged_before_any_decryption(ca, jce_decryptions):
    store = container(five_entries_at_the_ceiling(der(ca)), PASSWORD, magic=JCEKS_MAGIC)
    with pytest.raises(KeystoreFormatError, match="past 10,000,000 key-derivation rounds"):
        Keystore.from_bytes(store, PASSWORD)
    assert jce_decryptions == []
    # Listing needs no decryption at all, so the same store inspects fine.
    assert len(Keystore.from_bytes(store, PASSWORD, _with_keys=False).key_aliases) == 5


def test_kdf_budget_spends_and_refuses():
    budget = _jks.KDFBudget(100)
    budget.spend(60, "a")
    with pytest.raises(_jks.KDFBudgetExceeded, match="past 100 key-derivation rounds"):
        budget.spend(41, "b")
    budget.spend(40, "c")
    assert budget.left == 0
