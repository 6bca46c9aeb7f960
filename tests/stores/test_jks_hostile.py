"""Issue 11, the Java-family stores: JKS, JCEKS, BKS and UBER read safely and as the JDK reads them.

Secret-key entries are walked by their framing and listed (never deserialised), a
wrong integrity hash costs at most one cheap key decryption, empty chains and
duplicate aliases behave, aliases decode as the JDK shows them, Bouncy Castle
stores load, and a password promising integrity refuses a file that has none.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
import ssl
import struct
import subprocess
import sys
from pathlib import Path

import javaobj
import jks.rfc7292
import pytest
from Cryptodome.Cipher import DES3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

import mtls
from mtls import (
    KeyEntryError,
    Keystore,
    KeystoreFormatError,
    ProfileUnavailableError,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    Truststore,
    WrongPasswordError,
    _bks,
    _der,
    _jks,
    _x509,
    detect_format,
)
from mtls._budget import WorkBudget, WorkLimitError
from mtls.cli import main
from mtls.testing import CA, MTLSServer, replace_atomically
from tests._helpers import PASSWORD, profile, profile_xml, python_within, whoami
from tests._keytool import JDK, keytool_list, run_keytool
from tests._pki import indefinite_length, issue
from tests.stores._jceks import build_jceks
from tests.stores.test_jks_envelopes import JCE_OID, JKS_OID, envelope, jce_params

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
            match=r"'aes' is a secret key .*TLS cannot use it.: it holds no certificate",
        ):
            store.certificate("aes")
    with pytest.raises(KeyEntryError, match="no private-key entry"):
        mtls.client_context(Keystore.load(path, PASSWORD))
    with pytest.raises(KeystoreFormatError, match=r"no certificates \(only 4 secret-key entries"):
        Truststore.load(path, PASSWORD)


def test_secret_keys_beside_a_key_pair_leave_the_key_usable(any_keytool, tmp_path, backend, ca):
    path = genseckey_store(any_keytool, tmp_path / "mixed.jceks")
    identity = ca.issue_cert(common_name="mixed client")
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
    with pytest.raises(
        KeyEntryError, match=r"entries .* hold what TLS cannot use .* cannot be written"
    ):
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
    # A wrong password is told as one, before the content is judged (it was reported
    # as the sealed object, whose framing cannot wait for the hash at the end).
    with pytest.raises(WrongPasswordError):
        Keystore.inspect(DATA / f"{name}.jceks", "1234567")


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
    # A class whose parents run 1,000 deep: the walk recursed once per parent
    # (RecursionError, before any integrity check: any password, or none).
    deep = (
        b"\xac\xed\x00\x05\x73"
        + (b"\x72" + utf(b"C") + bytes(8) + b"\x02\x00\x00\x78") * 1000
        + b"\x70"
    )
    hostile = [
        (deep, "a class hierarchy deeper than a sealed key's"),
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
                    _listed(store, password)
    assert not [r for r in caplog.records if r.name.startswith("javaobj")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_secret_keys_iteration_count_past_the_jdks_ceiling_is_refused_before_use(
    jdk_keytool, tmp_path
):
    # The secure vault's symmetric mode decrypts the secret key through pyjks, which
    # took the count from the file: 2**31 - 1 held the vault for hours.
    path = tmp_path / "s.jceks"
    run_keytool(jdk_keytool, "-genseckey", "-alias", "k", "-keyalg", "AES", "-keysize",
                "128", "-storetype", "JCEKS", "-keystore", str(path), "-storepass",
                PASSWORD, "-keypass", PASSWORD)  # fmt: skip
    data = path.read_bytes()[:-20]
    assert _jks.secret_key_entry(rehash(data, PASSWORD), PASSWORD, "k")  # the twin
    at = data.index(b"\x02\x03\x03\x0d\x40")  # iterationCount 200,000 in encodedParams
    # byte[] length, SEQUENCE header, the salt's OCTET STRING, then the count.
    assert data[at - 16 : at - 10] == u32(0x11) + b"\x30\x0f"
    hostile = (
        data[: at - 16] + u32(0x12) + b"\x30\x10" + data[at - 10 : at]
        + b"\x02\x04\x7f\xff\xff\xff" + data[at + 5 :]
    )  # fmt: skip
    with pytest.raises(_jks.JKSFormatError, match="at most 5,000,000 iterations"):
        _jks.secret_key_entry(rehash(hostile, PASSWORD), PASSWORD, "k")


def test_a_vaults_secret_key_is_unsealed_by_the_own_reader_never_javaobj(jdk_keytool, tmp_path):
    """The vault's symmetric mode read its JCEKS secret key through pyjks, whose
    javaobj deserialiser took 944 s and 2 GB on a 623-byte hostile file. The key now
    comes from this project's reader: the same bytes keytool sealed, and neither
    pyjks nor javaobj is imported."""
    path = tmp_path / "s.jceks"
    run_keytool(jdk_keytool, "-genseckey", "-alias", "k", "-keyalg", "AES", "-keysize",
                "256", "-storetype", "JCEKS", "-keystore", str(path), "-storepass",
                PASSWORD, "-keypass", PASSWORD)  # fmt: skip
    script = (
        "import sys\n"
        "from mtls import _jks\n"
        f"data = open({str(path)!r}, 'rb').read()\n"
        f"key = _jks.secret_key_entry(data, {PASSWORD!r}, 'K')\n"  # aliases fold case
        "print(key.hex(), 'javaobj' in sys.modules, 'jks' in sys.modules)\n"
        f"print(_jks.secret_key_entry(data, 'wrong', 'k'), _jks.secret_key_entry(data, {PASSWORD!r}, 'other'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    first, second = done.stdout.splitlines()
    key_hex, javaobj_loaded, pyjks_loaded = first.split()
    assert (javaobj_loaded, pyjks_loaded) == ("False", "False")
    assert second == "None None"  # a wrong password, an unknown alias: no key
    # The same key as pyjks (the reference) reads from the same file.
    store = jks.KeyStore.load(str(path), PASSWORD)
    (entry,) = store.secret_keys.values()
    assert bytes(entry.key).hex() == key_hex and len(entry.key) == 32


@pytest.mark.parametrize("magic", [JKS_MAGIC, JCEKS_MAGIC], ids=["JKS", "JCEKS"])
def test_an_empty_trusted_certificate_is_damage(magic, tmp_path):
    # Loaded as a certificate of no bytes, it reached OpenSSL's load_verify_locations
    # as ValueError("Empty certificate data"), out of client_context and from_xml.
    path = tmp_path / "trust.jks"
    path.write_bytes(container([trusted_entry(b"ca", b"")], PASSWORD, magic=magic))
    with pytest.raises(KeystoreFormatError, match="an empty certificate: remove that entry"):
        Truststore.load(path, PASSWORD)
    with pytest.raises(KeystoreFormatError, match="an empty certificate"):
        Keystore.inspect(path, PASSWORD)


# --------------------------------------------------------------------------- 3: bounded work


def five_entries_at_the_ceiling(cert: bytes) -> list[bytes]:
    protected = envelope(JCE_OID, bytes(48), jce_params(iterations=5_000_000))
    return [key_entry(f"k{i}".encode(), protected, [cert]) for i in range(5)]


def test_a_wrong_hash_decrypts_nothing_expensive(ca, jce_decryptions):
    store = container(five_entries_at_the_ceiling(der(ca)), "the-right-one", magic=JCEKS_MAGIC)
    for load in (
        lambda: Keystore.from_bytes(store, "a-wrong-one"),
        lambda: _listed(store, "a-wrong-one"),
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
    with pytest.raises(KeystoreFormatError, match="password unlocks key 'k0': either the store"):
        Keystore.from_bytes(bytes(store), PASSWORD)
    assert jce_decryptions == [1000]  # one entry, not five


def test_a_jks_key_is_charged_by_its_size_and_the_passwords_length(
    ca, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sun's key protector hashes the password again per 20 bytes of key: telling a
    wrong password from an altered file decrypted a 7 MiB key under a 1 MiB password
    for more than ten minutes (uncharged, "nothing to charge")."""
    unprotected: list[int] = []
    real = _jks._jks_unprotect

    def counting(protected: bytes, password: str) -> bytes:
        unprotected.append(len(protected))
        return real(protected, password)

    monkeypatch.setattr(_jks, "_jks_unprotect", counting)
    identity = ca.issue_cert("jks-key")
    short, long = "short-pw", "p" * 65536
    big = envelope(JKS_OID, jks.sun_crypto.jks_pkey_encrypt(os.urandom(400_000), short))
    for password, tried in ((short, 1), (long, 0)):
        unprotected.clear()
        altered = bytearray(container([key_entry(b"k", big, [der(identity)])], password))
        altered[-1] ^= 1
        with pytest.raises(WrongPasswordError, match="wrong store password"):
            Keystore.from_bytes(bytes(altered), password)
        # 20,000 blocks under a short password are cheap and tried; under 64 KiB, each
        # hashes 128 KiB: over the diagnosis budget, not tried.
        assert len(unprotected) == tried, password[:8]
    # The twin: a real key under a 64 KiB password is still diagnosed (one decryption),
    # and loads when the file is intact.
    small = jks_protected(pkcs8_of(identity), long)
    intact = container([key_entry(b"k", small, [der(identity)])], long)
    assert Keystore.from_bytes(intact, long).key_aliases == ("k",)
    unprotected.clear()
    altered = bytearray(intact)
    altered[-1] ^= 1
    with pytest.raises(KeystoreFormatError, match="password unlocks key 'k'"):
        Keystore.from_bytes(bytes(altered), long)
    assert len(unprotected) == 1


def test_an_intact_jks_charges_its_keys_before_decrypting_them(
    ca, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load of an intact JKS skipped the charge ("nothing to charge"): a 2 MiB key
    under a 16 KiB key password ran uncharged, and the cost grows with both."""
    from mtls import _readers

    unprotected: list[int] = []
    real = _jks._jks_unprotect
    monkeypatch.setattr(
        _jks, "_jks_unprotect", lambda p, pw: unprotected.append(len(p)) or real(p, pw)
    )
    monkeypatch.setattr(_readers, "WorkBudget", lambda: WorkBudget(100_000))  # for speed
    identity = ca.issue_cert("jks-budget")
    key_password = "k" * 8192  # about 129 rounds per 20 bytes of key
    big = envelope(JKS_OID, jks.sun_crypto.jks_pkey_encrypt(os.urandom(40_000), key_password))
    store = container([key_entry(b"k", big, [der(identity)])], PASSWORD)
    with pytest.raises(KeystoreFormatError, match="key-derivation iterations") as caught:
        Keystore.from_bytes(store, PASSWORD, key_password=key_password)
    assert "key entry 'k'" in str(caught.value)
    assert unprotected == []  # refused before any hashing
    # The twin: a real key under the same password is within the budget, and loads.
    small = jks_protected(pkcs8_of(identity), key_password)
    store = container([key_entry(b"k", small, [der(identity)])], PASSWORD)
    assert Keystore.from_bytes(store, PASSWORD, key_password=key_password).key_aliases == ("k",)
    assert len(unprotected) == 1


def test_the_store_wide_budget_is_charged_before_any_decryption(ca, jce_decryptions):
    store = container(five_entries_at_the_ceiling(der(ca)), PASSWORD, magic=JCEKS_MAGIC)
    with pytest.raises(
        KeystoreFormatError, match="past 10,000,000 key-derivation iterations"
    ) as info:
        Keystore.from_bytes(store, PASSWORD)
    assert "re-create it with keytool's defaults" in str(info.value)
    assert jce_decryptions == []
    # Listing needs no decryption at all, so the same store inspects fine.
    assert len(_listed(store, PASSWORD).key_aliases) == 5


def test_kdf_budget_spends_and_refuses():
    budget = WorkBudget(100)
    budget.charge_kdf(60, "a")
    with pytest.raises(WorkLimitError, match="b would take it past 100 key-derivation iterations"):
        budget.charge_kdf(41, "b")
    budget.charge_kdf(40, "c")  # a refused charge spends nothing
    assert budget.iterations == 0


# --------------------------------------------------------------------------- 9: empty chains


def empty_chain_store(identity: mtls.testing.IssuedIdentity, magic: bytes) -> bytes:
    return container(
        [key_entry(b"k", jks_protected(pkcs8_of(identity), PASSWORD), [])], PASSWORD, magic=magic
    )


@pytest.mark.parametrize("magic", [JKS_MAGIC, JCEKS_MAGIC], ids=["jks", "jceks"])
def test_a_key_entry_without_a_chain_is_a_format_error_everywhere(ca, tmp_path, magic):
    identity = ca.issue_cert("chainless")
    path = tmp_path / "chainless.store"
    path.write_bytes(empty_chain_store(identity, magic))
    for load in (
        lambda: Keystore.load(path, PASSWORD),
        lambda: Keystore.inspect(path, PASSWORD),
        lambda: Keystore.inspect(path),
        lambda: Truststore.load(path, PASSWORD),
    ):
        with pytest.raises(KeystoreFormatError, match="key entry 'k' has no certificate"):
            load()
    # The twin: the same key with its certificate loads.
    whole = [key_entry(b"k", jks_protected(pkcs8_of(identity), PASSWORD), [der(identity)])]
    path.write_bytes(container(whole, PASSWORD, magic=magic))
    assert Keystore.load(path, PASSWORD).key_aliases == ("k",)


def test_one_chainless_store_never_stops_the_other_profiles(ca, tmp_path, backend):
    good, bad = tmp_path / "good.jks", tmp_path / "bad.jks"
    trust = tmp_path / "trust.jks"
    ca.write_truststore(trust, PASSWORD)
    good.write_bytes(ca.issue_cert("good-1").keystore().to_bytes(PASSWORD))
    bad.write_bytes(empty_chain_store(ca.issue_cert("bad"), JKS_MAGIC))
    xml = tmp_path / "profiles.xml"
    xml.write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", good, trust),
            profile(f"127.0.0.1:{backend.port}", bad, trust),
        )
    )
    with pytest.raises(KeystoreFormatError, match="has no certificate"):
        SSLProfileSet.from_xml(xml)
    profiles = SSLProfileSet.from_xml(xml, skip_failures=True, settle_delay=0)
    assert whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"] == (
        "good-1"
    )
    # Fails closed: its host is refused, never served by another profile or default.
    with pytest.raises(ProfileUnavailableError, match="has no certificate") as refused:
        profiles.context_for("127.0.0.1", backend.port)
    assert isinstance(refused.value.cause, KeystoreFormatError)
    assert isinstance(profiles.last_error, KeystoreFormatError)

    # On reload: the bad store comes back good, then goes bad again while the good one rotates.
    replace_atomically(bad, ca.issue_cert("bad-fixed").keystore().to_bytes(PASSWORD))
    assert profiles.reload() is True and profiles.last_error is None
    fixed = profiles.context_for("127.0.0.1", backend.port)
    replace_atomically(bad, empty_chain_store(ca.issue_cert("bad"), JKS_MAGIC))
    replace_atomically(good, ca.issue_cert("good-2").keystore().to_bytes(PASSWORD))
    assert profiles.reload() is True
    assert isinstance(profiles.last_error, KeystoreFormatError)
    assert whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"] == (
        "good-2"
    )
    assert profiles.context_for("127.0.0.1", backend.port) is fixed  # the last good
    assert profiles.status().to_dict()["healthy"] is False


# --------------------------------------------------------------------------- 10: duplicates


def test_duplicate_aliases_keep_the_last_entry_as_the_jdk_does(ca, tmp_path, any_keytool, caplog):
    first, last = CA(name="first"), CA(name="last")
    store = container(
        [trusted_entry(b"dup", der(first)), trusted_entry(b"other", der(ca)),
         trusted_entry(b"dup", der(last))], PASSWORD,
    )  # fmt: skip
    path = tmp_path / "dup.jks"
    path.write_bytes(store)
    listed = keytool_list(any_keytool, path, PASSWORD)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        trust = Truststore.load(path, PASSWORD)
    assert sorted(trust.aliases) == sorted(listed) == ["dup", "other"]
    sha = hashlib.sha256(trust.export_certificate("dup", "DER")).hexdigest().upper()
    assert listed["dup"].sha256 == [":".join(sha[i : i + 2] for i in range(0, 64, 2))]
    assert trust.export_certificate("dup", "DER") == der(last)
    assert "alias 'dup' appears more than once" in caplog.text
    with pytest.raises(WrongPasswordError):  # the twin: still integrity-checked
        Truststore.load(path, "not-the-password")


@pytest.mark.parametrize("name", ["duplicate_aliases.jks", "duplicate_aliases.jceks"])
def test_pyjks_duplicate_alias_stores_load(name, caplog):
    with caplog.at_level(logging.WARNING, logger="mtls"):
        trust = Truststore.load(DATA / name, "12345678")
    assert trust.aliases == ("my_alias",)
    assert "'my_alias' appears more than once" in caplog.text


# --------------------------------------------------------------------------- 11: odd aliases

ODD_ALIASES = {
    b"nul\x00": "nul\x00",  # a raw NUL, which readUTF accepts
    b"c080\xc0\x80": "c080\x00",  # Java's own encoding of NUL
    b"caf\xc3\xa9": "café",
    b"smile\xed\xa0\xbd\xed\xb8\x80": "smile\U0001f600",  # a surrogate pair, CESU style
    b"\xc1\xa1bc": "abc-overlong",  # an overlong 'a', which readUTF accepts
}


def test_aliases_decode_as_the_jdk_shows_them(ca, tmp_path, any_keytool):
    entries = [trusted_entry(raw, der(CA(name=f"odd {i}"))) for i, raw in enumerate(ODD_ALIASES)]
    path = tmp_path / "odd.jks"
    path.write_bytes(container(entries, PASSWORD))
    listed = keytool_list(any_keytool, path, PASSWORD)
    expected = {text if text != "abc-overlong" else "abc" for text in ODD_ALIASES.values()}
    assert set(listed) == expected
    assert set(Truststore.load(path, PASSWORD).aliases) == expected


def test_aliases_java_cannot_read_are_refused_like_the_jdk_does(ca, tmp_path, any_keytool):
    path = tmp_path / "four-byte.jks"
    path.write_bytes(container([trusted_entry(b"\xf0\x9f\x98\x80", der(ca))], PASSWORD))
    with pytest.raises(subprocess.CalledProcessError):
        keytool_list(any_keytool, path, PASSWORD)
    with pytest.raises(KeystoreFormatError, match="not modified UTF-8"):
        Truststore.load(path, PASSWORD)
    # A lone surrogate is a valid Java string that cannot be shown: U+FFFD stands for it.
    path.write_bytes(container([trusted_entry(b"x\xed\xa0\xbd", der(ca))], PASSWORD))
    assert Truststore.load(path, PASSWORD).aliases == ("x\ufffd",)


def test_version_1_stores_have_no_certificate_type(ca):
    store = container([trusted_entry(b"v1", der(ca), version=1)], PASSWORD, version=1)
    assert Truststore.from_bytes(store, PASSWORD).aliases == ("v1",)
    with pytest.raises(KeystoreFormatError, match="format version 3 is unknown"):
        Truststore.from_bytes(container([], PASSWORD, version=3), PASSWORD)
    typed = container([u32(2) + utf(b"t") + STAMP + utf(b"PGP") + blob(b"x")], PASSWORD)
    with pytest.raises(KeystoreFormatError, match="certificate of type 'PGP'"):
        Truststore.from_bytes(typed, PASSWORD)


@pytest.mark.parametrize("kind", [b"X509", b"x.509", b"x509"])
def test_the_x509_alias_java_reads_is_a_certificate_type(ca, tmp_path, kind):
    """keystore-go, which writes cert-manager's and trust-manager's JKS files, names each
    certificate's type "X509", the SUN provider's alias of "X.509" (the JCA matches
    names in any case). Every such keystore and truststore was refused ("remove that
    entry": the identity), where keytool 17 and 25, and so WSO2, read them (h190).
    Asked of keytool itself here; the twin: a type Java has no factory for ('PGP',
    above) is still refused."""
    from tests._keytool import KEYTOOLS, keytool_list

    written = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    body = written.read_bytes()[:-20]
    chain = body.count(b"\x00\x05X.509")  # each certificate of the key's chain
    assert chain >= 1
    store = tmp_path / f"gw-{kind.decode()}.jks"
    store.write_bytes(rehash(body.replace(b"\x00\x05X.509", utf(kind)), PASSWORD))
    keystore = Keystore.load(store, PASSWORD)
    assert keystore.key_aliases == ("gw",) and len(keystore.key_entry("gw")[2]) == chain
    assert mtls.client_context(keystore, Truststore.from_bytes(ca.cert_pem)) is not None
    for jdk in KEYTOOLS:  # what Java does with the same file
        listed = keytool_list(jdk, store, PASSWORD)["gw"]
        assert (listed.entry_type, listed.chain_length) == ("PrivateKeyEntry", chain), jdk


# --------------------------------------------------------------------------- 12: BKS and UBER


def _twofish_imports() -> bool:
    try:
        _bks._import_twofish()
    except _jks.JKSFormatError:
        return False
    return True


# The twofish package pyjks decrypts UBER with: mtls makes it import on 3.12+ (no imp),
# but its C extension may still fail to build somewhere.
needs_twofish = pytest.mark.skipif(not _twofish_imports(), reason="twofish does not import")
CHRISTMAS = [
    "christmas.bksv1",
    "christmas.bksv2",
    pytest.param("christmas.uber", marks=needs_twofish),
]
CHRISTMAS_SECRETS = {"plain_key", "sealed_public_key", "sealed_secret_key", "stored_value"}


def bks_store(entries: bytes, password: str, *, version: int = 2, iterations: int = 1024) -> bytes:
    """A BKS store as Bouncy Castle's BcKeyStoreSpi writes it (HMAC-SHA1 over the entries)."""
    salt = os.urandom(20)
    size = 2 if version == 1 else 20  # version 1's 20-bit MAC key
    key = jks.rfc7292.derive_key(hashlib.sha1, 3, password, salt, iterations, size)
    body = entries + b"\0"
    mac = hmac.new(key, body, hashlib.sha1).digest()
    return u32(version) + blob(salt) + u32(iterations) + body + mac


def uber_store(entries: bytes, password: str, *, iterations: int = 1024, version: int = 1) -> bytes:
    """An UBER store: Twofish-CBC over the entries and their SHA-1 (Bouncy Castle
    writes version 2 since 1.47; the layout is the same)."""
    salt = os.urandom(20)
    body = entries + b"\0"
    plain = body + hashlib.sha1(body).digest()
    sealed = jks.rfc7292.encrypt_PBEWithSHAAndTwofishCBC(plain, password, salt, iterations)
    return u32(version) + blob(salt) + u32(iterations) + sealed


def bks_sealed_key(
    alias: bytes, pkcs8: bytes, chain: list[bytes], password: str, *, public: bool = False
) -> bytes:
    """A type-4 entry: the key sealed with PBEWithSHAAnd3-KeyTripleDES-CBC (``public``:
    ``pkcs8`` is a SubjectPublicKeyInfo, sealed as a public key, which BC allows)."""
    salt, iterations = os.urandom(20), 1500
    key = jks.rfc7292.derive_key(hashlib.sha1, 1, password, salt, iterations, 24)
    iv = jks.rfc7292.derive_key(hashlib.sha1, 2, password, salt, iterations, 8)
    kind, encoding = (b"\1", b"X.509") if public else (b"\0", b"PKCS#8")
    inner = kind + utf(encoding) + utf(b"EC") + blob(pkcs8)
    pad = 8 - len(inner) % 8
    sealed = DES3.new(key, DES3.MODE_CBC, iv=iv).encrypt(inner + bytes([pad]) * pad)
    certs = b"".join(utf(b"X.509") + blob(d) for d in chain)
    return (
        b"\x04"
        + utf(alias)
        + STAMP
        + u32(len(chain))
        + certs
        + blob(blob(salt) + u32(1500) + sealed)
    )


def bks_cert(alias: bytes, cert: bytes) -> bytes:
    return b"\x01" + utf(alias) + STAMP + u32(0) + utf(b"X.509") + blob(cert)


@pytest.mark.parametrize("name", CHRISTMAS)
def test_bouncy_castle_stores_load_with_their_integrity_checks(name):
    data = (DATA / name).read_bytes()
    kind = name.rpartition(".")[2].upper()[:4]
    assert detect_format(data) == ("UBER" if kind == "UBER" else "BKS")
    store = Keystore.load(DATA / name, "12345678")
    assert store.key_aliases == ("sealed_private_key",)
    assert store.trusted_aliases == ("cert",)
    assert set(store.secret_keys) == CHRISTMAS_SECRETS
    assert store.secret_keys["plain_key"] == "secret key (DES; TLS cannot use it)"
    _, key_der, chain = store.key_entry()
    key = serialization.load_der_private_key(key_der, None)
    assert key.public_key() == _x509.load_cert(chain[0]).public_key()  # serial 0: tolerated
    # OpenSSL reads the key as it comes out (PKCS#8); it is 1024-bit RSA, which
    # OpenSSL's default security level refuses for TLS, so the handshake test below
    # uses a store written the same way with an EC key.
    openssl = shutil.which("openssl")
    if openssl:
        done = subprocess.run([openssl, "pkey", "-inform", "DER", "-noout", "-text"],
                              input=key_der, capture_output=True, check=False)  # fmt: skip
        assert done.returncode == 0 and b"1024 bit" in done.stdout
    assert set(Truststore.load(DATA / name, "12345678").aliases) == {
        "sealed_private_key", "cert", *CHRISTMAS_SECRETS,
    }  # fmt: skip
    with pytest.raises(WrongPasswordError):
        Keystore.load(DATA / name, "87654321")


@pytest.mark.parametrize("name", CHRISTMAS)
def test_a_password_byte_that_is_not_utf8_is_a_wrong_password_for_bks_and_uber(name):
    """A Latin-1 byte in a password (a Latin-1 terminal, an environment variable)
    reaches Python as a lone surrogate. pyjks's KDF encodes passwords as UTF-16: a bare
    UnicodeEncodeError escaped, with the whole password in its arguments (and the CLI
    printed "unexpected UnicodeEncodeError ... please report it"). JKS, JCEKS, PKCS#12
    and BCFKS said "wrong password"; so do BKS and UBER now, the store's and a key's,
    with no exception in the chain that holds the password. The twin: the right
    password loads (test_bouncy_castle_stores_load_with_their_integrity_checks)."""
    password = os.fsdecode(b"p\xe4sswort")
    with pytest.raises(WrongPasswordError) as caught:
        Keystore.load(DATA / name, password)
    chain: BaseException | None = caught.value
    while chain is not None:
        assert password not in repr(chain.args), chain
        chain = chain.__cause__ or chain.__context__
    if not name.endswith("uber"):  # a key password: the store opens, the key does not
        with pytest.raises(mtls.MTLSError, match="password") as caught_key:
            Keystore.load(DATA / name, "12345678", key_password=password)
        assert password not in str(caught_key.value)


def test_bks_is_listed_without_its_password_and_uber_is_not():
    listed = Keystore.inspect(DATA / "christmas.bksv2")  # no password: no HMAC check, as BC
    assert listed.key_aliases == ("sealed_private_key",)
    with pytest.raises(WrongPasswordError, match="UBER store is encrypted: pass its password"):
        Keystore.inspect(DATA / "christmas.uber")


def test_uber_reads_where_the_imp_module_is_gone(monkeypatch):
    # Python 3.12 removed imp, which twofish finds its C library with: mtls lends it
    # the one function it calls, for that import only. Simulated here on any Python.
    monkeypatch.setitem(sys.modules, "imp", None)  # what `import imp` finds on 3.12+
    monkeypatch.delitem(sys.modules, "twofish", raising=False)
    store = Keystore.load(DATA / "christmas.uber", "12345678")
    assert "sealed_private_key" in store.aliases
    assert sys.modules["imp"] is None  # nothing else ever sees the stand-in
    assert sys.modules["twofish"] is not None


def test_uber_without_twofish_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "twofish", None)  # what Python 3.12+ gives
    with pytest.raises(KeystoreFormatError, match="reading UBER needs the twofish package"):
        Keystore.load(DATA / "christmas.uber", "12345678")


def test_an_altered_bks_is_told_from_a_wrong_password():
    data = (DATA / "christmas.bksv2").read_bytes()
    at = data.index(b"stored_value")
    altered = data[:at] + b"stored_valuf" + data[at + 12 :]
    with pytest.raises(KeystoreFormatError, match="the file was modified"):
        Keystore.from_bytes(altered, "12345678")
    with pytest.raises(WrongPasswordError, match="wrong store password"):
        Keystore.from_bytes(altered, "not-it")


def test_sealed_keys_with_their_own_passwords(tmp_path):
    path = DATA / "custom_entry_passwords.bksv2"
    store = Keystore.inspect(path, "store_password")
    assert len(store.key_aliases) == 3  # sealed entries with chains: keys until decrypted
    with pytest.raises(WrongPasswordError, match="does not unlock key entry 'sealed_private_key'"):
        Keystore.load(path, "store_password")


@pytest.mark.parametrize(
    "kind", ["bks1", "bks2", *(pytest.param(k, marks=needs_twofish) for k in ("uber", "uber2"))]
)
def test_a_bks_identity_makes_a_working_context(kind, ca, backend, tmp_path):
    identity = ca.issue_cert(common_name="android client", key_type="EC")
    entries = bks_sealed_key(b"client", pkcs8_of(identity), [der(identity)], PASSWORD)
    entries += bks_cert(b"ca", der(ca))
    data = {
        "bks1": lambda: bks_store(entries, PASSWORD, version=1),
        "bks2": lambda: bks_store(entries, PASSWORD),
        "uber": lambda: uber_store(entries, PASSWORD),
        "uber2": lambda: uber_store(entries, PASSWORD, version=2),
    }[kind]()
    path = tmp_path / "client.bks"
    path.write_bytes(data)
    store = Keystore.load(path, PASSWORD)
    ctx = mtls.client_context(store, Truststore.load(path, PASSWORD))
    assert whoami(ctx, backend.port)["client_cn"] == "android client"
    # The twin: the backend refuses this client once it trusts another CA only.
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=CA(name="other")) as other:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            whoami(ctx, other.port)


def test_a_sealed_public_key_with_a_chain_is_passed_by_for_the_private_key(ca, backend, tmp_path):
    """Bouncy Castle seals a public key with a certificate chain when asked
    (setKeyEntry; pyjks's custom_entry_passwords.bksv2 has one): the whole store was
    refused ("holds a public key ... remove the entry"). Java's key managers pass
    such an entry by; so does mtls, listing it with the entries TLS cannot use. The
    twin: with the public key alone, there is no key entry to use, and it says so."""
    identity = ca.issue_cert(common_name="bc client", key_type="EC")
    public = identity.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sealed_public = bks_sealed_key(b"public", public, [der(identity)], PASSWORD, public=True)
    path = tmp_path / "client.bks"
    path.write_bytes(
        bks_store(
            sealed_public
            + bks_sealed_key(b"client", pkcs8_of(identity), [der(identity)], PASSWORD),
            PASSWORD,
        )
    )
    store = Keystore.load(path, PASSWORD)
    assert store.key_aliases == ("client",)
    assert store.secret_keys["public"] == "sealed public key (EC; TLS cannot use it)"
    with pytest.raises(mtls.KeyEntryError, match="entries 'public' hold what TLS cannot use"):
        store.save(tmp_path / "out.jks", PASSWORD)  # kept as read: never written as a secret
    ctx = mtls.client_context(store, ca.truststore())
    assert whoami(ctx, backend.port)["client_cn"] == "bc client"
    alone = tmp_path / "public-only.bks"
    alone.write_bytes(bks_store(sealed_public, PASSWORD))
    with pytest.raises(mtls.KeyEntryError, match="has no private-key entry"):
        mtls.client_context(Keystore.load(alone, PASSWORD))


@needs_twofish
def test_uber_ciphertext_that_frames_as_an_empty_bks_is_still_uber(ca):
    """A first ciphertext byte of 0 reads as an empty BKS entry list: the MAC length decides."""
    entries = bks_cert(b"ca", der(ca))
    for _ in range(5000):
        data = uber_store(entries, PASSWORD, iterations=1)
        if data[32] == 0:  # u32 version, u32 + 20-byte salt, u32 count: ciphertext at 32
            break
    else:
        pytest.fail("no ciphertext starting with 0 in 5000 tries (p ~ 3e-9)")
    assert detect_format(data) == "UBER"
    assert Truststore.from_bytes(data, PASSWORD).aliases == ("ca",)
    bks = bks_store(entries, PASSWORD, version=1)
    assert detect_format(bks) == "BKS"


def test_bks_limits_are_checked_before_any_work(ca):
    entries = bks_cert(b"ca", der(ca))
    assert Truststore.from_bytes(bks_store(entries, PASSWORD, iterations=65_536), PASSWORD)
    with pytest.raises(KeystoreFormatError, match="over 65,536"):
        Truststore.from_bytes(bks_store(entries, PASSWORD, iterations=65_537), PASSWORD)
    huge = u32(1) + blob(bytes(20)) + u32(1024) + b"\xff" * _bks.MAX_UBER_BYTES
    assert detect_format(huge) == "UBER"
    with pytest.raises(KeystoreFormatError, match="over mtls's 1,048,576-byte limit for UBER"):
        Truststore.from_bytes(huge, PASSWORD)
    with pytest.raises(KeystoreFormatError, match="not JKS, JCEKS, PKCS#12, BKS, UBER"):
        Truststore.from_bytes(u32(7) + bytes(40), PASSWORD)


# --------------------------------------------------------------------------- 13: integrity


@pytest.fixture
def replacements(tmp_path: Path, openssl_bin: str) -> dict[str, Path]:
    """Another CA's certificate as PEM, DER and a MAC-less PKCS#12."""
    other = CA(name="another CA")
    pem = tmp_path / "other.pem"
    pem.write_bytes(other.cert_pem)
    der_path = tmp_path / "other.der"
    der_path.write_bytes(der(other))
    p12 = tmp_path / "other.p12"
    subprocess.run(
        [openssl_bin, "pkcs12", "-export", "-nokeys", "-nomac", "-certpbe", "NONE",
         "-in", str(pem), "-out", str(p12), "-passout", f"pass:{PASSWORD}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return {"PEM": pem, "DER": der_path, "PKCS12": p12}


@pytest.mark.parametrize("fmt", ["PEM", "DER", "PKCS12"])
def test_a_password_promising_integrity_refuses_an_unprotected_file(fmt, replacements):
    path = replacements[fmt]
    with pytest.raises(KeystoreFormatError, match="no integrity check the password could verify"):
        Truststore.load(path, PASSWORD, store_type="JKS")
    with pytest.raises(KeystoreFormatError, match="no integrity check"):
        Truststore.from_bytes(path.read_bytes(), PASSWORD, store_type="PKCS12")
    # Allowed explicitly, or when nothing promised a check.
    assert Truststore.load(path, PASSWORD, store_type="JKS", allow_unprotected=True)
    assert Truststore.load(path, PASSWORD)  # no declared type: the content decides
    assert Truststore.load(path, None, store_type="JKS")  # no password: nothing to check
    if fmt in ("PEM", "DER"):
        assert Truststore.load(path, PASSWORD, store_type=fmt)


@pytest.mark.parametrize("fmt", ["PEM", "PKCS12"])
def test_an_empty_password_promises_no_integrity_check(fmt, ca, replacements, tmp_path):
    """A MAC keyed by "" is one anyone computes: an empty password promises nothing to
    check. trust-manager's password-less PKCS#12 named with <Password></Password> was
    refused ("declared PKCS12 with a password"), where keytool -storepass "" lists it
    (h190). The twin: a real password still refuses the same file."""
    path = replacements[fmt]
    if fmt == "PKCS12":  # the JDK's password-less format, trust attribute and all
        path = tmp_path / "passwordless.p12"
        Truststore.from_bytes(ca.cert_pem).save(path, "", store_type="PKCS12", passwordless=True)
    assert Truststore.load(path, "", store_type="PKCS12").aliases
    config = mtls.StoreConfig(location=path, password="", type="PKCS12")
    with SSLProfileSet([mtls.SSLProfile(servers=("a.test:443",), truststore=config)]) as set_:
        assert set_.status().healthy
    with pytest.raises(KeystoreFormatError, match="no integrity check"):
        Truststore.load(path, PASSWORD, store_type="PKCS12")
    if fmt == "PKCS12":
        from tests._keytool import KEYTOOLS, keytool_list

        for jdk in KEYTOOLS:  # what Java does with <Password></Password>
            assert len(keytool_list(jdk, path, "")) == 1, jdk


def test_a_truncated_pkcs12_is_damaged_not_unprotected(ca, tmp_path):
    """A PKCS#12 cut short must be refused as damaged: taking it for a store without a
    MAC gave advice to drop the password (found by `mtls check` on a cut file)."""
    whole = ca.issue_cert("client").keystore().to_bytes(PASSWORD, store_type="PKCS12")
    for cut in (len(whole) // 2, 1000, 40):
        for store in (Truststore, Keystore):
            with pytest.raises(KeystoreFormatError, match="damaged or unsupported PKCS#12") as e:
                store.from_bytes(whole[:cut], PASSWORD, store_type="PKCS12")
            assert "without a MAC" not in str(e.value) and "allow_unprotected" not in str(e.value)
    # Twins: the whole file loads with the same declared type, and so does one with
    # bytes after its PFX (a trailing newline), which Java and the parser ignore.
    assert Keystore.from_bytes(whole, PASSWORD, store_type="PKCS12").key_aliases
    assert Keystore.from_bytes(whole + b"\n", PASSWORD, store_type="PKCS12").key_aliases


def test_protected_replacements_still_load(ca, tmp_path):
    p12 = tmp_path / "trust.p12"
    ca.write_truststore(p12, PASSWORD, store_type="PKCS12")  # with a MAC
    assert Truststore.load(p12, PASSWORD, store_type="JKS")  # JKS and PKCS12 read each other
    bks = tmp_path / "trust.bks"
    bks.write_bytes(bks_store(bks_cert(b"ca", der(ca)), PASSWORD))
    assert Truststore.load(bks, PASSWORD, store_type="JKS").aliases == ("ca",)


def test_a_keystore_declared_pkcs12_refuses_a_pem_identity(ca, tmp_path):
    identity = ca.issue_cert(common_name="pem client")
    path = identity.write_pem(tmp_path / "client.pem")
    with pytest.raises(KeystoreFormatError, match="declared PKCS12 with a password"):
        Keystore.load(path, PASSWORD, store_type="PKCS12")
    assert Keystore.load(path, PASSWORD, store_type="PKCS12", allow_unprotected=True).key_aliases


def test_profiles_refuse_a_truststore_replaced_by_pem(ca, tmp_path, backend, replacements):
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(ca.issue_cert("gw").keystore().to_bytes(PASSWORD))
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile(f"localhost:{backend.port}", keystore, trust)))
    profiles = SSLProfileSet.from_xml(xml, settle_delay=0)
    good = profiles.context_for("localhost", backend.port)
    replace_atomically(trust, replacements["PEM"].read_bytes())
    assert profiles.reload() is False
    assert "no integrity check the password could verify" in str(profiles.last_error)
    assert profiles.context_for("localhost", backend.port) is good
    # A profile made in code can allow it on purpose.
    allowed = SSLProfileSet(
        [
            SSLProfile(
                servers=(("localhost", backend.port),),
                keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
                truststore=StoreConfig(
                    location=trust, type="JKS", password=PASSWORD, allow_unprotected=True
                ),
            )
        ]
    )
    assert allowed.context_for("localhost", backend.port) is not None
    with pytest.raises(KeystoreFormatError, match="no integrity check"):
        SSLProfileSet(
            [
                SSLProfile(
                    servers=(("localhost", backend.port),),
                    truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
                )
            ]
        )


@pytest.mark.parametrize("lenient_first", [True, False])
def test_one_profiles_opt_out_never_lets_anothers_pem_through(ca, tmp_path, backend, lenient_first):
    # Two profiles in one set read the same PEM declared JKS with a password: only the
    # one that allows unprotected files may load it, whichever is built first.
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(ca.issue_cert("gw").keystore().to_bytes(PASSWORD))
    trust.write_bytes(ca.cert_pem)
    lenient = SSLProfile(
        servers=(("lenient.test", 443),),
        keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
        truststore=StoreConfig(
            location=trust, type="JKS", password=PASSWORD, allow_unprotected=True
        ),
    )
    strict = SSLProfile(
        servers=(("strict.test", 443),),
        keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
        truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
    )
    order = [lenient, strict] if lenient_first else [strict, lenient]
    profiles = SSLProfileSet(order, skip_failures=True)
    assert profiles.context_for("lenient.test", 443) is not None
    with pytest.raises(ProfileUnavailableError, match="no integrity check"):
        profiles.context_for("strict.test", 443)


def test_a_non_store_names_its_file_in_inspect(tmp_path):
    path = tmp_path / "junk.jks"
    path.write_bytes(b"\x07" * 64)
    with pytest.raises(KeystoreFormatError, match=str(path)):
        Keystore.inspect(path, PASSWORD)


# --------------------------------------------------------------------------- fuzzing

FUZZ_SEEDS = {
    name: (DATA / name).read_bytes()
    for name in [
        "christmas.bksv1",
        "christmas.bksv2",
        "AES128.jceks",
        "custom_entry_passwords.jceks",
        "duplicate_aliases.jks",
        *(["christmas.uber"] if _twofish_imports() else []),
    ]
}


@st.composite
def mutated_java_stores(draw: st.DrawFn) -> bytes:
    data = bytearray(FUZZ_SEEDS[draw(st.sampled_from(sorted(FUZZ_SEEDS)))])
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[max(at, 1) :]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@given(data=mutated_java_stores(), password=st.sampled_from(["12345678", "wrong", None]))
@settings(max_examples=300, deadline=None, database=None)
def test_mutated_java_family_stores_raise_only_mtls_errors(data, password):
    for load in (
        lambda: Keystore.from_bytes(data, password),
        lambda: _listed(data, password),
        lambda: Truststore.from_bytes(data, password),
    ):
        try:
            store = load()
        except mtls.MTLSError:
            continue
        repr(store)
        for alias in store.aliases:
            store.entry_type(alias)


def test_an_empty_alias_loads_as_the_jdk_lists_it(ca, tmp_path, any_keytool):
    path = tmp_path / "empty-alias.jks"
    path.write_bytes(container([trusted_entry(b"", der(ca))], PASSWORD))
    assert "" in keytool_list(any_keytool, path, PASSWORD)
    trust = Truststore.load(path, PASSWORD)
    assert trust.aliases == ("",) and trust.export_certificate("", "DER") == der(ca)
    assert Keystore.load(path, PASSWORD).trusted_aliases == ("",)
    with pytest.raises(ValueError, match="must not be empty"):  # the twin: new entries need one
        trust.add("", ca.cert_pem)


def _listed(data: bytes, password: str | None) -> Keystore:
    """What ``Keystore.inspect`` reads, from bytes: every entry, no key decrypted."""
    return Keystore._read(
        data, password, store_type=None, allow_unprotected=False, path=None, with_keys=False
    )


_ROOT_DER = issue("ber root", None, ca=True).cert.public_bytes(serialization.Encoding.DER)


@settings(max_examples=500, deadline=None, database=None)
@given(data=st.binary(max_size=64), tail=st.binary(max_size=32))
def test_ber_end_reads_one_element_as_the_jdk_does(data: bytes, tail: bytes) -> None:
    """The end of a certificate field's first element, as the JDK's readBERInternal
    finds it: any bytes give an end inside them or a DERError (never another error, never
    past the end); a certificate, definite or indefinite, ends where it ends whatever
    follows it; lengths of five bytes and primitive indefinite elements are refused."""
    try:
        end = _jks.ber_end(data)
    except _der.DERError:
        pass
    else:
        assert 2 <= end <= len(data)
    assert _jks.ber_end(_ROOT_DER + tail) == len(_ROOT_DER)
    indefinite = indefinite_length(_ROOT_DER)
    assert _jks.ber_end(indefinite + tail) == len(indefinite)
    # Nested indefinite elements close in order, and an open one is truncated.
    nested = b"\x30\x80\x30\x80\x02\x01\x05\0\0\x04\x00\0\0"
    assert _jks.ber_end(nested + tail) == len(nested)
    with pytest.raises(_der.DERError, match=r"truncated|runs past"):
        _jks.ber_end(nested[:-2])
    with pytest.raises(_der.DERError, match="more than four bytes"):
        _jks.ber_end(b"\x30\x85\0\0\0\0\x01\x05" + tail)
    with pytest.raises(_der.DERError, match="primitive element of indefinite length"):
        _jks.ber_end(b"\x30\x80\x04\x80" + tail)


def test_a_long_password_is_charged_for_every_jce_round_it_is_hashed_in(any_keytool, tmp_path):
    """Each JCE key-derivation round hashes the password again: the budget counted
    rounds alone, so a 32,768-character key password made one keytool-default entry
    (200,000 rounds) take 25 s, and 1 MiB more than two minutes, before "wrong
    password". Rounds are charged in MD5 blocks now: such a password is refused over
    the budget at once (the bound is a generous subprocess wait, not a timing); the
    twin, the right password, opens the store."""
    path = tmp_path / "k.jceks"
    run_keytool(any_keytool, "-genkeypair", "-keystore", str(path), "-storetype", "JCEKS",
                "-storepass", "changeit", "-keypass", "changeit", "-alias", "k", "-keyalg",
                "EC", "-dname", "CN=k")  # fmt: skip
    script = (
        "import sys, mtls\n"
        "try:\n"
        "    mtls.Keystore.load(sys.argv[1], 'changeit', key_password='x' * 1_048_576)\n"
        "except mtls.MTLSError as e:\n"
        "    print(type(e).__name__, 'key-derivation iterations' in str(e))\n"
    )
    done = python_within(script, path)
    assert done.stdout.split()[-1:] == ["True"], done.stdout + done.stderr[-2000:]
    assert mtls.Keystore.load(path, "changeit").key_aliases == ("k",)


@pytest.mark.parametrize("version", ["christmas.bksv1", "christmas.bksv2"])
def test_a_bks_cut_at_a_block_boundary_is_a_truncated_bks_not_uber(tmp_path, version):
    """BKS and UBER have no magic: a BKS cut so that whole 16-byte blocks follow its
    header (every cut at a 1, 2 or 4 KiB boundary, as an interrupted copy leaves) was
    taken for UBER, and its right password was said to be wrong (h157). It is a
    truncated BKS, with or without the password. Twin: the UBER file is still UBER."""
    data = (DATA / version).read_bytes()
    header = 4 + 4 + int.from_bytes(data[4:8], "big") + 4  # version, salt blob, iterations
    for size in (1024, 2048, header + 16 * ((len(data) - header) // 16 - 1)):
        cut = tmp_path / f"cut-{size}.bks"
        cut.write_bytes(data[:size])
        assert (size - header) % 16 == 0
        assert mtls.detect_format(data[:size]) == "BKS", size
        for password in ("12345678", None):
            with pytest.raises(mtls.KeystoreFormatError, match="truncated BKS"):
                Truststore.load(cut, password)
    assert mtls.detect_format((DATA / "christmas.uber").read_bytes()) == "UBER"
