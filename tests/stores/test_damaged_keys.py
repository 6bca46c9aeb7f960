"""A key that decrypts to damaged bytes is refused as Java's getKey refuses it (h196).

JCEKS protects a key with 3DES-CBC and nothing else: a wrong password passes the
padding check 1 time in 256, and an entry damaged before its store was sealed again
(whoever holds the store password can re-seal it) decrypts to bytes of the right shape
whose key is not one. mtls served such bytes, to fail later as a key that "must match
the certificate"; Java's ``getKey`` (and so keytool -importkeystore, WSO2's key
manager) refuses them. PKCS#12 key bags likewise. keytool is the oracle where it runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given, settings
from hypothesis import strategies as st

import mtls
from mtls import _der
from mtls._x509 import pkcs8_well_formed
from mtls.testing import CA
from tests._helpers import der_elements
from tests._keytool import JDK, STOREPASS, KeytoolStores, run_keytool
from tests.stores.test_pkcs12 import _bag, _cert_bag, _data, _pfx

PASSWORD = "damaged-Pa55"


def _pkcs8(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _damaged_ec(pkcs8: bytes) -> bytes:
    """An EC PKCS#8 key whose ECPrivateKey says version 2 (RFC 5915 has only 1): the
    shape of a key, not a key."""
    assert pkcs8.count(b"\x02\x01\x01\x04") == 1  # ECPrivateKey: INTEGER 1, OCTET STRING
    return pkcs8.replace(b"\x02\x01\x01\x04", b"\x02\x01\x02\x04")


REAL_KEYS = {
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
    "ec": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
    "x25519": x25519.X25519PrivateKey.generate,
    "dsa": lambda: dsa.generate_private_key(2048),
}


def _made(kind: str) -> bytes:
    """A new key of ``kind`` as PKCS#8."""
    with warnings.catch_warnings():  # cryptography 51 deprecates DSA
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _pkcs8(REAL_KEYS[kind]())


@pytest.mark.parametrize("kind", sorted(REAL_KEYS))
def test_real_keys_are_well_formed_and_their_damage_is_not(kind: str) -> None:
    pkcs8 = _made(kind)
    assert pkcs8_well_formed(pkcs8)
    # A byte after the whole, or a byte cut from it: not a key.
    assert not pkcs8_well_formed(pkcs8 + b"\x00")
    assert not pkcs8_well_formed(pkcs8[:-1])
    # The key itself (the privateKey OCTET STRING's content) a byte longer or shorter,
    # the PKCS#8 around it well formed: not a key either.
    version, algorithm, key, *rest = der_elements(pkcs8)
    inner = _der.read_single(key, _der.OCTET_STRING).value
    for other in (inner + b"\x00", inner[:-1]):
        body = version + algorithm + _der.encode(_der.OCTET_STRING, other) + b"".join(rest)
        assert not pkcs8_well_formed(_der.encode(_der.SEQUENCE, body))


def test_a_key_of_an_algorithm_java_does_not_know_is_left_unread() -> None:
    """Java keeps such a key as it is (no key factory parses it): so does the check."""
    algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.3.6.1.4.1.99999.7"))
    body = (
        _der.encode(_der.INTEGER, b"\x00") + algorithm + _der.encode(_der.OCTET_STRING, b"whatever")
    )
    assert pkcs8_well_formed(_der.encode(_der.SEQUENCE, body))
    assert not pkcs8_well_formed(_der.encode(_der.SEQUENCE, body[:-1]))  # damaged DER
    # Known algorithms' keys are read: an ECPrivateKey of version 2 is no key.
    assert not pkcs8_well_formed(_damaged_ec(_pkcs8(ec.generate_private_key(ec.SECP256R1()))))


def _jceks(path: Path, pkcs8: bytes, chain: list[bytes]) -> Path:
    """A JCEKS store with one key entry "gw" of these PKCS#8 bytes, whatever they are,
    under the JDK's PBEWithMD5AndTripleDES key protection, written as the JDK's
    JceKeyStore writes it (pyjks reads JCEKS but writes none)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from jks.sun_crypto import _jce_pbe_derive_key_and_iv

    e, oid = _der.encode, _der.encode_oid
    salt, rounds = os.urandom(8), 1000
    key, iv = _jce_pbe_derive_key_and_iv(PASSWORD, salt, rounds)
    padder = PKCS7(64).padder()
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(pkcs8) + padder.finalize()) + encryptor.finalize()
    params = e(
        _der.SEQUENCE, e(_der.OCTET_STRING, salt) + e(_der.INTEGER, rounds.to_bytes(2, "big"))
    )
    protected = e(
        _der.SEQUENCE,
        e(_der.SEQUENCE, oid("1.3.6.1.4.1.42.2.19.1") + params) + e(_der.OCTET_STRING, ciphertext),
    )

    def utf(text: str) -> bytes:
        return len(text).to_bytes(2, "big") + text.encode()

    body = b"\xce\xce\xce\xce" + (2).to_bytes(4, "big") + (1).to_bytes(4, "big")
    body += (1).to_bytes(4, "big") + utf("gw") + (0).to_bytes(8, "big")
    body += len(protected).to_bytes(4, "big") + protected + len(chain).to_bytes(4, "big")
    for der in chain:
        body += utf("X.509") + len(der).to_bytes(4, "big") + der
    seal = hashlib.sha1(PASSWORD.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()
    path.write_bytes(body + seal)
    return path


def _java_recovers(keytool: JDK, store: Path, store_type: str, out: Path) -> bool:
    """Whether the JDK's getKey recovers every key (keytool -importkeystore calls it)."""
    try:
        run_keytool(
            keytool, "-importkeystore", "-srckeystore", str(store), "-srcstoretype", store_type,
            "-srcstorepass", PASSWORD, "-destkeystore", str(out), "-deststoretype", "PKCS12",
            "-deststorepass", PASSWORD,
        )  # fmt: skip
    except subprocess.CalledProcessError:
        return False
    return True


@pytest.mark.keytool
def test_a_jceks_key_that_decrypts_to_damage_is_refused_as_java_refuses_it(
    jdk_keytool: JDK, tmp_path: Path
) -> None:
    identity = CA(name="damaged keys").issue_cert("gw", key_type="EC")
    chain = [identity.certificate.public_bytes(serialization.Encoding.DER)]
    pkcs8 = _pkcs8(identity.private_key)
    good = _jceks(tmp_path / "good.jceks", pkcs8, chain)
    bad = _jceks(tmp_path / "bad.jceks", _damaged_ec(pkcs8), chain)
    # The twin: the intact key loads, and Java recovers it.
    assert mtls.Keystore.load(good, PASSWORD).key_entry("gw")[1] == pkcs8
    assert _java_recovers(jdk_keytool, good, "JCEKS", tmp_path / "good.p12")
    assert not _java_recovers(jdk_keytool, bad, "JCEKS", tmp_path / "bad.p12")
    with pytest.raises(mtls.KeystoreFormatError, match="'gw' decrypts to a damaged key") as info:
        mtls.Keystore.load(bad, PASSWORD)
    assert PASSWORD not in str(info.value)
    with pytest.raises(mtls.WrongPasswordError):  # a wrong password is still said so
        mtls.Keystore.load(good, PASSWORD, key_password="not-" + PASSWORD)


def _pbes2(pkcs8: bytes, password: str) -> bytes:
    """An EncryptedPrivateKeyInfo of these bytes: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC
    (what keytool 25 and OpenSSL 3 write)."""
    e, oid = _der.encode, _der.encode_oid
    salt, iv, rounds = os.urandom(16), os.urandom(16), 2048
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(password.encode())
    padder = PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(pkcs8) + padder.finalize()) + encryptor.finalize()
    prf = e(_der.SEQUENCE, oid("1.2.840.113549.2.9") + b"\x05\x00")
    kdf = e(_der.SEQUENCE, oid("1.2.840.113549.1.5.12") + e(_der.SEQUENCE, e(
        _der.OCTET_STRING, salt) + e(_der.INTEGER, rounds.to_bytes(2, "big")) + prf))  # fmt: skip
    cipher = e(_der.SEQUENCE, oid("2.16.840.1.101.3.4.1.42") + e(_der.OCTET_STRING, iv))
    scheme = e(_der.SEQUENCE, oid("1.2.840.113549.1.5.13") + e(_der.SEQUENCE, kdf + cipher))
    return e(_der.SEQUENCE, scheme + e(_der.OCTET_STRING, ciphertext))


def test_a_pkcs12_key_bag_of_damage_is_refused(tmp_path: Path) -> None:
    identity = CA(name="damaged bags").issue_cert("gw", key_type="EC")
    pkcs8 = _pkcs8(identity.private_key)

    def store(key: bytes, name: str) -> Path:
        bag = _bag("2", _pbes2(key, PASSWORD), name="gw", key_id=b"k")
        path = tmp_path / name
        path.write_bytes(
            _pfx([_data(_cert_bag(identity.certificate, name="gw", key_id=b"k"), bag)], PASSWORD)
        )
        return path

    loaded = mtls.Keystore.load(store(pkcs8, "good.p12"), PASSWORD)  # the twin
    assert loaded.key_entry("gw")[1] == pkcs8
    with pytest.raises(mtls.KeystoreFormatError, match="decrypts to a damaged key"):
        mtls.Keystore.load(store(_damaged_ec(pkcs8), "bad.p12"), PASSWORD)


def test_a_key_password_given_as_the_store_password_is_still_a_wrong_password(
    tmp_path: Path,
) -> None:
    """A store whose certificates are not encrypted and whose key has its own password
    (keytool 25 with certProtectionAlgorithm NONE and -keypass): given the key's
    password as the store's, the MAC fails and the key opens with it; that was called
    a damaged file (h200). Only the certificates, always under the store password,
    tell damage from a wrong password."""
    identity = CA(name="own key password").issue_cert("gw", key_type="EC")
    key_password = "the-key-" + PASSWORD
    bag = _bag("2", _pbes2(_pkcs8(identity.private_key), key_password), name="gw", key_id=b"k")
    path = tmp_path / "own.p12"
    path.write_bytes(
        _pfx([_data(_cert_bag(identity.certificate, name="gw", key_id=b"k"), bag)], PASSWORD)
    )
    with pytest.raises(mtls.WrongPasswordError, match="wrong store password"):
        mtls.Keystore.load(path, key_password)
    loaded = mtls.Keystore.load(path, PASSWORD, key_password=key_password)  # the twin
    assert loaded.key_aliases == ("gw",)


_SEEDS = {kind: _made(kind) for kind in sorted(REAL_KEYS)}


@given(
    st.sampled_from(sorted(_SEEDS)),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), min_size=1, max_size=3),
)
@settings(max_examples=400, deadline=None)
def test_a_key_cryptography_reads_is_never_called_damaged(
    kind: str, flips: list[tuple[int, int]]
) -> None:
    """The check never refuses a key OpenSSL's and cryptography's parsers read (it would
    refuse a store Java serves), and never raises. Keys of every kind, bytes flipped."""
    from cryptography.exceptions import InternalError, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    data = bytearray(_SEEDS[kind])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    judged = pkcs8_well_formed(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            load_der_private_key(bytes(data), None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError, UnsupportedAlgorithm, InternalError):
            return
    assert judged, (kind, flips)


def test_a_pem_key_whose_algorithm_does_not_fit_its_bytes_is_a_format_error(
    tmp_path: Path,
) -> None:
    """An Ed448 key's bytes under Ed25519's OID: OpenSSL's key setup fails inside
    cryptography, whose InternalError escaped Keystore.load raw. The twin: the key as
    it was loads."""
    import base64

    identity = CA(name="misfit").issue_cert("gw", key_type="EC")
    key = _made("ed448")
    assert key.count(b"\x06\x03\x2b\x65\x71") == 1  # id-Ed448
    misfit = key.replace(b"\x06\x03\x2b\x65\x71", b"\x06\x03\x2b\x65\x70")  # id-Ed25519

    def pem(der: bytes) -> bytes:
        body = base64.encodebytes(der)
        return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"

    path = tmp_path / "misfit.pem"
    path.write_bytes(pem(misfit) + identity.cert_pem)
    with pytest.raises(mtls.KeystoreFormatError, match="a private key cannot be read"):
        mtls.Keystore.load(path, None)
    path.write_bytes(pem(_pkcs8(identity.private_key)) + identity.cert_pem)
    assert mtls.Keystore.load(path, None).key_aliases


def _mac_digest_span(pfx: bytes) -> tuple[int, int]:
    """Where the MAC's digest lies in a PFX: macData's DigestInfo's OCTET STRING."""
    fields = _der.spans(pfx, *_der.single_span(pfx, _der.SEQUENCE))
    _, mac_start, mac_stop = fields[2]
    digest_info = _der.spans(pfx, mac_start, mac_stop)[0]
    _, start, stop = _der.spans(pfx, digest_info[1], digest_info[2])[1]
    return start, stop


@pytest.mark.keytool
@pytest.mark.parametrize("store", ["mixed.p12", "trust.p12"])
def test_a_pkcs12_whose_mac_is_damaged_is_not_called_a_wrong_password(
    keytool_stores: KeytoolStores, tmp_path: Path, store: str
) -> None:
    """The MAC failed, so mtls said "wrong store password" for a damaged file, where
    Java says "Integrity check failed": the password still decrypts what the store
    encrypts (h196). A wrong password is still said to be one; the twin loads."""
    data = keytool_stores.path(store).read_bytes()
    start, _ = _mac_digest_span(data)
    damaged = tmp_path / store
    damaged.write_bytes(data[:start] + bytes([data[start] ^ 0x10]) + data[start + 1 :])
    listed = subprocess.run(
        [keytool_stores.jdk.keytool, "-list", "-keystore", str(damaged), "-storepass", STOREPASS],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.returncode != 0
    assert "Integrity check failed" in listed.stdout + listed.stderr  # not "password was incorrect"
    load = mtls.Truststore.load if store == "trust.p12" else mtls.Keystore.load
    with pytest.raises(mtls.KeystoreFormatError, match=r"integrity check \(MAC\) fails, yet"):
        load(damaged, STOREPASS)
    with pytest.raises(mtls.WrongPasswordError, match="or replace the file if it was damaged"):
        load(damaged, "not-" + STOREPASS)
    load(keytool_stores.path(store), STOREPASS)  # the twin


@pytest.mark.openssl
def test_a_pkcs12_under_two_passwords_says_so_for_either(openssl_bin: str, tmp_path: Path) -> None:
    """``openssl pkcs12 -twopass``: the MAC under one password, the content under
    another (Java reads neither). Given the content's password, the MAC fails where the
    content opens; given the MAC's, the content does not open where the MAC verifies:
    that was "wrong store password" (h200). The twin: a third password is wrong."""
    identity = CA(name="two passwords").issue_cert("gw", key_type="EC")
    pem = identity.write_pem(tmp_path / "gw.pem")
    target = tmp_path / "two.p12"
    mac, content = "mac-" + PASSWORD, "content-" + PASSWORD
    subprocess.run(
        [openssl_bin, "pkcs12", "-export", "-twopass", "-in", str(pem), "-out", str(target)],
        input=f"{mac}\n{mac}\n{content}\n{content}\n".encode(),  # the MAC's first
        check=True, capture_output=True,
    )  # fmt: skip
    info = subprocess.run(
        [openssl_bin, "pkcs12", "-in", str(target), "-info", "-noout", "-passin", f"pass:{mac}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Mac verify error" not in info.stderr  # the MAC is under the first password
    with pytest.raises(mtls.WrongPasswordError, match="verifies the PKCS#12 integrity check"):
        mtls.Keystore.load(target, mac)
    with pytest.raises(mtls.KeystoreFormatError, match=r"openssl pkcs12 -twopass"):
        mtls.Keystore.load(target, content)
    with pytest.raises(mtls.WrongPasswordError, match="wrong store password"):
        mtls.Keystore.load(target, "neither-" + PASSWORD)


@pytest.mark.keytool
@pytest.mark.parametrize("store", ["mixed.p12", "trust.p12"])
def test_a_password_with_a_trailing_nul_is_named_not_called_damage(
    keytool_stores: KeytoolStores, store: str
) -> None:
    """PBKDF2 keys HMAC with the password's bytes, which HMAC pads with zeros: a
    trailing NUL (an environment variable or file written with one) decrypts a keytool
    PKCS#12, and its MAC fails: an intact store was called modified or damaged (h265).
    The twin: the password without it loads."""
    load = mtls.Truststore.load if store == "trust.p12" else mtls.Keystore.load
    path = keytool_stores.path(store)
    with pytest.raises(mtls.WrongPasswordError, match=r"ends with a NUL character") as caught:
        load(path, STOREPASS + "\x00")
    assert "damaged" not in str(caught.value) and STOREPASS not in str(caught.value)
    load(path, STOREPASS)
