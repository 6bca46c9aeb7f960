"""BCFKS (Bouncy Castle's FIPS keystore), read as Java reads it with the BC provider.

The stores are real ones, written by keytool and Bouncy Castle 1.72
(tests/stores/data/bouncycastle/README.md). The oracles are Bouncy Castle's own
reading, as recorded there: the SHA-256 of each key's PKCS#8 encoding as
``KeyStore.getKey(...).getEncoded()`` returns it, and keytool's fingerprints.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtls
from mtls import Keystore, KeystoreFormatError, Truststore, WrongPasswordError, _der, _x509
from mtls.testing import CA, MTLSServer
from tests._helpers import whoami

DATA = Path(__file__).parent / "data" / "bouncycastle"
PASSWORD = "changeit"
# Bouncy Castle's reading of the test CA (trusted certificate entry "ca").
CA_SHA256 = "3abe37f60618646593fc5b48334611e51919d5df9b676abfe7407e7401540c47"
CLIENT_SHA256 = "1643cc036768fa999fe1d9705b4778478e526bddc5c8ce2aeea543d0d05f8fc7"

# (file, key alias, Bouncy Castle's key, chain length). The key as SHA-256: of its PKCS#8
# encoding (RSA), or of its private value in hexadecimal (EC: Bouncy Castle encodes the
# key it returns its own way).
K = "s=8cf4baa66ee1a0282dd5086c26c422bd44ba006036d473c3ee4139eed206cf98"
STORES = [
    # keytool -importkeystore -deststoretype BCFKS: AES-256-CCM, PBKDF2-HMAC-SHA512, 51,200 rounds.
    ("bcfks-client.bcfks", "client.example.com",
     "532191faeaa3c54f57c1c96a2ea591f3c0b5495cbe5257569d30afb1eec8505d", 2),
    # BCFKSLoadStoreParameter: AES key wrap (store and key), HMAC-SHA3-512, PBKDF2-SHA3-512.
    ("bcfks-kwp.bcfks", "ec.example.com",
     "s=7d7c53292b2fe998de06c56816f1b78b87ce2f313bad7afc1ecf7e1e75256e41", 2),
    ("bcfks-ks.bcfks", "k", K, 1),
    ("bcfks-sha3.bcfks", "k", K, 1),  # an HMAC-SHA3-512 MAC
    ("bcfks-scrypt.bcfks", "k", K, 1),  # scrypt for the MAC and the store's key
]  # fmt: skip


def spki(der: bytes) -> bytes:
    return (
        _x509.load_cert(der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(("name", "alias", "digest", "length"), STORES, ids=[s[0] for s in STORES])
def test_a_bcfks_store_loads_as_bouncy_castle_reads_it(
    name: str, alias: str, digest: str, length: int
) -> None:
    """A FIPS-mode WSO2 product keeps its stores as BCFKS (its BCFIPS provider takes no
    JKS); mtls refused them. Every variant Bouncy Castle writes now loads: the key is
    the one Bouncy Castle returns, and it matches its certificate."""
    path = DATA / name
    store = Keystore.load(path, PASSWORD)
    assert store.store_type == "BCFKS" and mtls.detect_format(path.read_bytes()) == "BCFKS"
    found, pkcs8, chain = store.key_entry()
    assert (found, len(chain)) == (alias, length)
    key = load_der_private_key(pkcs8, None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        value = format(key.private_numbers().private_value, "x").encode()
        assert "s=" + hashlib.sha256(value).hexdigest() == digest
    else:
        assert hashlib.sha256(pkcs8).hexdigest() == digest
    public = key.public_key()
    assert public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki(chain[0])
    # Declared as WSO2 declares it; listed without decrypting the key; the leaf trusted.
    assert Keystore.load(path, PASSWORD, store_type="BCFKS").key_aliases == (alias,)
    assert Keystore.inspect(path, PASSWORD).key_aliases == (alias,)
    assert Truststore.load(path, PASSWORD).anchors_der == (chain[0],)


def test_a_bcfks_truststore_and_keystore_make_a_working_context() -> None:
    """The whole flow, over a real handshake: a BCFKS keystore's identity is what the
    server sees, trusted through the CA a BCFKS truststore holds. The twin: a server
    that trusts another CA refuses the same client."""
    trust = Truststore.load(DATA / "bcfks-trust.bcfks", PASSWORD)
    assert trust.aliases == ("ca",)
    assert hashlib.sha256(trust.anchors_der[0]).hexdigest() == CA_SHA256
    client = Keystore.load(DATA / "bcfks-client.bcfks", PASSWORD)
    assert hashlib.sha256(client.key_entry()[2][0]).hexdigest() == CLIENT_SHA256
    server_ca = CA()
    ctx = mtls.client_context(client, server_ca.truststore())
    with MTLSServer(server_ca.issue_cert("localhost", "127.0.0.1"), client_ca=trust) as server:
        assert whoami(ctx, server.port)["client_cn"] == "client.example.com"
    with (
        MTLSServer(server_ca.issue_cert("localhost", "127.0.0.1"), client_ca=CA()) as other,
        pytest.raises((OSError, ConnectionError)),
    ):
        whoami(ctx, other.port)


def test_a_profile_of_bcfks_stores_serves_its_backend(tmp_path: Path) -> None:
    """A WSO2 profile that says <Type>BCFKS</Type> (a FIPS-mode gateway's) is served:
    its backend sees the BCFKS identity. The twin: the same profile with the wrong
    store password does not load."""
    server_ca = CA()
    server_ca.truststore().save(tmp_path / "server-ca.jks", PASSWORD)
    trust = Truststore.load(DATA / "bcfks-trust.bcfks", PASSWORD)
    with MTLSServer(server_ca.issue_cert("localhost", "127.0.0.1"), client_ca=trust) as server:
        for password, loads in ((PASSWORD, True), ("Not-The-Password-71", False)):
            path = tmp_path / "sslprofiles.xml"
            path.write_text(
                '<parameter name="customSSLProfiles"><profile>'
                f"<servers>localhost:{server.port}</servers>"
                f"<KeyStore><Location>{DATA / 'bcfks-client.bcfks'}</Location><Type>BCFKS</Type>"
                f"<Password>{password}</Password><KeyPassword>{password}</KeyPassword></KeyStore>"
                f"<TrustStore><Location>{tmp_path / 'server-ca.jks'}</Location><Type>JKS</Type>"
                f"<Password>{PASSWORD}</Password></TrustStore></profile></parameter>"
            )
            if not loads:
                with pytest.raises(WrongPasswordError):
                    mtls.SSLProfileSet.from_xml(path)
                continue
            with mtls.SSLProfileSet.from_xml(path) as profiles:
                assert profiles.status().healthy
                ctx = profiles.context_for("localhost", server.port)
                assert whoami(ctx, server.port)["client_cn"] == "client.example.com"


@pytest.mark.parametrize("name", ["bcfks-client.bcfks", "bcfks-trust.bcfks", "bcfks-scrypt.bcfks"])
def test_a_bcfks_store_with_a_wrong_or_no_password_is_refused(name: str) -> None:
    path = DATA / name
    for read in (Keystore.load, Keystore.inspect, Truststore.load):
        with pytest.raises(WrongPasswordError, match="wrong store password") as info:
            read(path, "Not-The-Password-71")
        assert info.value.path == str(path) and "Not-The-Password" not in str(info.value)
    # Java's BcFKSKeyStoreSpi cannot read one without its password either.
    for read in (Keystore.inspect, Truststore.load):
        with pytest.raises(WrongPasswordError, match="encrypted: pass its password"):
            read(path, None)


def test_every_key_of_a_bcfks_store_must_unlock_with_the_key_password() -> None:
    """Two key entries under different passwords: as Java's SunX509 key manager, the
    one key password must open them all; the message names the entry that stays shut.
    The store still lists, and trusts, every entry."""
    path = DATA / "bcfks-two-passwords.bcfks"
    with pytest.raises(WrongPasswordError) as info:
        Keystore.load(path, PASSWORD)
    assert info.value.alias == "client.example.com" and "key_password" in str(info.value)
    with pytest.raises(WrongPasswordError) as info:
        Keystore.load(path, PASSWORD, key_password="keypass1")
    assert info.value.alias == "ec.example.com" and "keypass1" not in str(info.value)
    listed = Keystore.inspect(path, PASSWORD)
    assert set(listed.key_aliases) == {"client.example.com", "ec.example.com"}
    trusted = Truststore.load(path, PASSWORD)
    assert set(trusted.aliases) == {"client.example.com", "ec.example.com", "ca"}
    assert CLIENT_SHA256 in {hashlib.sha256(d).hexdigest() for d in trusted.anchors_der}


def test_a_signed_bcfks_store_is_refused_saying_why() -> None:
    """A store whose integrity is a signature: Java reads it only with the signer's key."""
    path = DATA / "bcfks-sig.bcfks"
    for read in (Keystore.load, Truststore.load):
        with pytest.raises(KeystoreFormatError, match="protected by a signature") as info:
            read(path, PASSWORD)
        assert str(info.value).startswith(f"{path}: ") and PASSWORD not in str(info.value)


def test_an_empty_bcfks_store_is_a_store_without_entries() -> None:
    path = DATA / "bcfks-empty.bcfks"
    assert Keystore.load(path, PASSWORD).aliases == ()
    with pytest.raises(KeystoreFormatError, match="no certificates"):
        Truststore.load(path, PASSWORD)


def test_a_hostile_bcfks_iteration_count_is_refused_before_deriving(tmp_path: Path) -> None:
    """The MAC's PBKDF2 iteration count raised to 8,388,607 (over Java's 5,000,000): the
    store is refused before any derivation runs. The twin: the real count loads."""
    data = (DATA / "bcfks-client.bcfks").read_bytes()
    real = bytes.fromhex("020300c800")  # INTEGER 51,200
    mac_part = data.rindex(real)  # the integrity check comes last
    hostile = tmp_path / "hostile.bcfks"
    hostile.write_bytes(data[:mac_part] + bytes.fromhex("0203" + "7fffff") + data[mac_part + 5 :])
    with pytest.raises(KeystoreFormatError, match="iteration count") as info:
        Keystore.load(hostile, PASSWORD)
    assert "store refused" in str(info.value)
    assert Keystore.load(DATA / "bcfks-client.bcfks", PASSWORD).key_aliases


def test_a_bcfks_store_is_not_written_but_saying_how() -> None:
    store = Keystore.load(DATA / "bcfks-client.bcfks", PASSWORD)
    with pytest.raises(ValueError, match="BCFKS is read, not written"):
        store.to_bytes(PASSWORD, store_type="BCFKS")  # type: ignore[arg-type]
    # What it can be saved as, for the JDK without Bouncy Castle.
    again = Keystore.from_bytes(store.to_bytes(PASSWORD, store_type="PKCS12"), PASSWORD)
    assert again.key_entry()[1:] == store.key_entry()[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_bcfks_stores_fail_cleanly(data: st.DataObject) -> None:
    """Any damage (a byte changed, the file cut short) is an MTLSError, never a
    dependency's traceback, and never a secret in the message."""
    name = data.draw(st.sampled_from(["bcfks-trust.bcfks", "bcfks-ks.bcfks", "bcfks-empty.bcfks"]))
    original = (DATA / name).read_bytes()
    _reads_cleanly(_damaged(data, original), Keystore.from_bytes, Truststore.from_bytes)


def _damaged(data: st.DataObject, original: bytes) -> bytes:
    """``original`` with one byte changed, or cut short."""
    pos = data.draw(st.integers(0, len(original) - 1))
    if data.draw(st.booleans()):
        changed = original[pos] ^ data.draw(st.integers(1, 255))
        return original[:pos] + bytes([changed]) + original[pos + 1 :]
    return original[:pos]


def _reads_cleanly(store: bytes, *reads: Callable[[bytes, str], object]) -> None:
    """Each read of ``store`` loads or raises an MTLSError without the password in it
    (anything else propagates, and fails the test)."""
    for read in reads:
        try:
            read(store, PASSWORD)
        except mtls.MTLSError as exc:
            assert PASSWORD not in str(exc)  # noqa: PT017 - any outcome but a leak is fine


# --- a store of our own making, to reach the content reader past the MAC ---------------

_SHA512 = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.113549.2.11") + b"\x05\x00")
_SHA3_512 = _der.encode(_der.SEQUENCE, _der.encode_oid("2.16.840.1.101.3.4.2.16") + b"\x05\x00")


def _integer(value: int) -> bytes:
    """A non-negative INTEGER, minimally encoded."""
    return _der.encode(_der.INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _kdf(salt: bytes, rounds: int, size: int, prf: bytes = _SHA512) -> bytes:
    params = _der.encode(_der.OCTET_STRING, salt) + _integer(rounds) + _integer(size) + prf
    return _der.encode(
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.5.12") + _der.encode(_der.SEQUENCE, params),
    )


def _secret(password: str, purpose: str) -> bytes:
    """Bouncy Castle's key material: each as UTF-16BE and a NUL, an empty one nothing."""
    return b"".join((text + "\0").encode("utf-16-be") for text in (password, purpose) if text)


def _ccm(plain: bytes, password: str, purpose: str) -> bytes:
    """EncryptedPrivateKeyInfo-shaped: PBES2 (PBKDF2, one round) and AES-256-CCM."""
    salt, nonce = b"s" * 16, b"n" * 12
    key = hashlib.pbkdf2_hmac("sha512", _secret(password, purpose), salt, 1, 32)
    ccm = _der.encode(_der.SEQUENCE, _der.encode(_der.OCTET_STRING, nonce))
    scheme = _der.encode(_der.SEQUENCE, _der.encode_oid("2.16.840.1.101.3.4.1.47") + ccm)
    pbes2 = _der.encode(
        _der.SEQUENCE,
        _der.encode_oid("1.2.840.113549.1.5.13")
        + _der.encode(_der.SEQUENCE, _kdf(salt, 1, 32) + scheme),
    )
    sealed = AESCCM(key, 12).encrypt(nonce, plain, None)
    return _der.encode(_der.SEQUENCE, pbes2 + _der.encode(_der.OCTET_STRING, sealed))


def _object(kind: int, alias: str, data: bytes) -> bytes:
    time = _der.encode(0x18, b"20261203120000Z")
    return _der.encode(
        _der.SEQUENCE,
        _der.encode(_der.INTEGER, bytes([kind]))
        + _der.encode(0x0C, alias.encode())
        + time
        + time
        + _der.encode(_der.OCTET_STRING, data),
    )


def _sealed(content: bytes, password: str, mac_kdf: bytes | None = None) -> bytes:
    """ObjectStore { content, its HMAC-SHA512 under a one-round PBKDF2 key }; with
    ``mac_kdf``, that KeyDerivationFunc instead, and a MAC of zeros."""
    salt = b"m" * 16
    key = hashlib.pbkdf2_hmac("sha512", _secret(password, "INTEGRITY_CHECK"), salt, 1, 64)
    mac = hmac.new(key, content, "sha512").digest() if mac_kdf is None else bytes(64)
    check = _der.encode(
        _der.SEQUENCE,
        _SHA512 + (mac_kdf or _kdf(salt, 1, 64)) + _der.encode(_der.OCTET_STRING, mac),
    )
    return _der.encode(_der.SEQUENCE, content + check)


def _store_data(objects: bytes) -> bytes:
    """ObjectStoreData, version 1, its MAC HMAC-SHA512, holding ``objects``."""
    time = _der.encode(0x18, b"20261203120000Z")
    return _der.encode(
        _der.SEQUENCE,
        _der.encode(_der.INTEGER, b"\x01")
        + _SHA512
        + time
        + time
        + _der.encode(_der.SEQUENCE, objects),
    )


def _scrypt(n: int, r: int, size: int = 64) -> bytes:
    params = b"".join(_der.encode(_der.INTEGER, v.to_bytes(4, "big")) for v in (n, r, 1, size))
    return _der.encode(
        _der.SEQUENCE,
        _der.encode_oid("1.3.6.1.4.1.11591.4.11")
        + _der.encode(_der.SEQUENCE, _der.encode(_der.OCTET_STRING, b"s" * 16) + params),
    )


@functools.cache
def _plain_store(password: str) -> bytes:
    """An unencrypted ObjectStoreData (the CHOICE allows it): a key entry with its
    chain (from bcfks-client.bcfks, the key sealed again at one round) and the CA."""
    alias = "client.example.com"
    return _store_data(
        _object(1, alias, _key_data(password))
        + _object(0, "ca", _ca())
        + _object(2, "aes", b"0\x00")
    )


@functools.cache
def _key_data(password: str) -> bytes:
    """EncryptedPrivateKeyData of bcfks-client.bcfks's key, sealed again at one round."""
    _, pkcs8, chain = Keystore.load(DATA / "bcfks-client.bcfks", PASSWORD).key_entry()
    return _der.encode(
        _der.SEQUENCE,
        _ccm(pkcs8, password, "PRIVATE_KEY_ENCRYPTION")
        + _der.encode(_der.SEQUENCE, b"".join(chain)),
    )


def _ca() -> bytes:
    return Truststore.load(DATA / "bcfks-trust.bcfks", PASSWORD).anchors_der[0]


def test_an_unencrypted_bcfks_store_of_our_making_loads() -> None:
    """The oracle for the fuzz below: the store it damages loads whole, its secret key
    listed among the entries TLS cannot use. Its twin: the same store with a wrong
    store password."""
    data = _sealed(_plain_store(PASSWORD), PASSWORD)
    store = Keystore.from_bytes(data, PASSWORD)
    assert store.key_aliases == ("client.example.com",)
    assert (
        store.key_entry()[1] == Keystore.load(DATA / "bcfks-client.bcfks", PASSWORD).key_entry()[1]
    )
    assert set(store.aliases) == {"client.example.com", "ca", "aes"}
    with pytest.raises(WrongPasswordError):
        Keystore.from_bytes(data, "Not-The-Password-71")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_content_behind_a_good_mac_fails_cleanly(data: st.DataObject) -> None:
    """The content reader, reached: the store data damaged, then MAC'd again (what
    someone holding the password could write). Only MTLSErrors, no secret shown."""
    store = _sealed(_damaged(data, _plain_store(PASSWORD)), PASSWORD)

    def listed(data: bytes, password: str) -> Keystore:  # Keystore.inspect, from bytes
        return Keystore._read(
            data, password, store_type=None, allow_unprotected=False, path=None, with_keys=False
        )

    _reads_cleanly(store, Keystore.from_bytes, listed, Truststore.from_bytes)


@pytest.mark.parametrize(
    ("mac_kdf", "said"),
    [
        # RFC 7914 forbids N >= 2^(16 r): OpenSSL raised a bare ValueError from hashlib.
        (_scrypt(65536, 1), "scrypt parameters out of range"),
        # Bouncy Castle runs p = r: a 67 MB block OpenSSL's memory limit refused, raw.
        (_scrypt(2, 724), "scrypt parameters"),
        # 16 output blocks a file asked for, within the budget: 12 s before "wrong password".
        (_kdf(b"s" * 16, 625_000, 1024), "a derived key of 1024 bytes where Bouncy Castle"),
        # Java's ceiling with SHA3-512, which costs 3.7 times SHA-256 per iteration and
        # was counted as twice: 4 to 6 s before "wrong password" (a fuzzing sweep).
        (_kdf(b"s" * 16, 5_000_000, 64, _SHA3_512), "limit per file"),
        # An iteration count of 2^20000: Python's int-to-text limit in the message.
        (_der.encode(
            _der.SEQUENCE,
            _der.encode_oid("1.2.840.113549.1.5.12")
            + _der.encode(
                _der.SEQUENCE,
                _der.encode(_der.OCTET_STRING, b"s") + _der.encode(_der.INTEGER, b"\x01" * 2501),
            ),
        ), "an integer far out of range"),
    ],
    ids=["scrypt-n", "scrypt-r", "long-key", "sha3-at-the-ceiling", "huge-count"],
)  # fmt: skip
def test_a_hostile_mac_derivation_is_refused_before_it_runs(mac_kdf: bytes, said: str) -> None:
    """Found by a review with crafted stores: each raised a dependency's ValueError or
    ran for seconds before the password was checked. Each is a KeystoreFormatError
    now, before any derivation (the twin: the same store with its real MAC loads, in
    test_an_unencrypted_bcfks_store_of_our_making_loads)."""
    data = _sealed(_plain_store(PASSWORD), PASSWORD, mac_kdf)
    for read in (Keystore.from_bytes, Truststore.from_bytes):
        with pytest.raises(KeystoreFormatError, match=said) as info:
            read(data, PASSWORD)
        assert "digits" not in str(info.value) and PASSWORD not in str(info.value)


def test_aliases_that_differ_only_in_case() -> None:
    """Bouncy Castle's aliases are case-sensitive; mtls compares them without case. Two
    certificates "CA" and "ca" loaded as a keystore failed with "alias 'ca' already
    exists" (no file named): the later is read as "ca-2". A key entry among such
    aliases is refused, naming both, for a key alias could take one for the other."""
    certs = _store_data(_object(0, "CA", _ca()) + _object(0, "ca", _ca()))
    for read in (Keystore.from_bytes, Truststore.from_bytes):
        assert read(_sealed(certs, PASSWORD), PASSWORD).aliases == ("CA", "ca-2")
    keys = _store_data(_object(1, "Key", _key_data(PASSWORD)) + _object(0, "key", _ca()))
    with pytest.raises(KeystoreFormatError, match="'Key' and 'key' differ only in case"):
        Keystore.from_bytes(_sealed(keys, PASSWORD), PASSWORD)


def test_a_store_under_the_empty_password_and_bytes_after_it_load_as_in_bouncy_castle() -> None:
    """Bouncy Castle reads load(stream, null) with the empty password, and ignores bytes
    after the store: mtls asked for a password, and said "not a keystore". The twin: a
    store under a password, opened with none, is still said to need it."""
    store = _sealed(_plain_store(""), "")
    assert Keystore.from_bytes(store, None).key_aliases == ("client.example.com",)
    assert Truststore.from_bytes(store + bytes(7)).aliases == ("client.example.com", "ca", "aes")
    with pytest.raises(WrongPasswordError, match="encrypted: pass its password"):
        Truststore.from_bytes(_sealed(_plain_store(PASSWORD), PASSWORD))


def test_a_store_of_190_keys_at_bouncy_castles_defaults_fits_the_budget() -> None:
    """The budget's weights (SHA-3 counts four times) must not refuse what Bouncy
    Castle writes by default: PBKDF2-HMAC-SHA512, 51,200 iterations, for the MAC key
    (64 bytes), the store's key and each entry's (32 bytes). A first cut that counted
    SHA-512 twice refused real stores of over 95 keys (the review, with keytool 17
    and Bouncy Castle 1.72). The twin: with SHA3-512, 46 keys fit and 47 do not."""
    from mtls import _bcfks
    from mtls._budget import MAX_FILE_KDF_ITERATIONS

    def cost(digest: str, size: int) -> int:
        return _bcfks._Derivation("pbkdf2", b"s", 51_200, 0, size, digest).cost

    def store(digest: str, keys: int) -> int:
        return cost(digest, 64) + cost(digest, 32) * (1 + keys)

    assert store("sha512", 190) <= MAX_FILE_KDF_ITERATIONS
    assert store("sha3_512", 46) <= MAX_FILE_KDF_ITERATIONS < store("sha3_512", 47)
