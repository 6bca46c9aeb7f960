"""The key-protection envelopes we decode ourselves (pyjks issue 79), edge by edge."""

from __future__ import annotations

import jks
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtls import _der, _jks
from mtls._jks import JKSFormatError, JKSKey, JKSKeyPasswordError, decrypt_key

JKS_OID = "1.3.6.1.4.1.42.2.17.1.1"
JCE_OID = "1.3.6.1.4.1.42.2.19.1"
PKCS8 = bytes.fromhex("302e020100300506032b657004220420") + bytes(32)  # an Ed25519 PrivateKeyInfo


def envelope(oid: str, ciphertext: bytes, params: bytes | None = b"\x05\x00") -> bytes:
    algorithm = _der.encode_oid(oid) + (params or b"")
    return _der.encode(
        _der.SEQUENCE,
        _der.encode(_der.SEQUENCE, algorithm) + _der.encode(_der.OCTET_STRING, ciphertext),
    )


def jce_params(salt: bytes = b"12345678", iterations: int = 1000) -> bytes:
    count = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")
    return _der.encode(
        _der.SEQUENCE, _der.encode(_der.OCTET_STRING, salt) + _der.encode(_der.INTEGER, count)
    )


@pytest.mark.parametrize(
    "params", [b"\x05\x00", None], ids=["jdk20-null-params", "jdk21-no-params"]
)
def test_jks_protector_with_and_without_null_params(params):
    ciphertext = jks.sun_crypto.jks_pkey_encrypt(PKCS8, "pw")
    key = JKSKey("k", envelope(JKS_OID, ciphertext, params), (), "JKS")
    assert decrypt_key(key, "pw") == PKCS8
    with pytest.raises(JKSKeyPasswordError):
        decrypt_key(key, "wrong")


def test_malformed_envelopes_are_format_errors():
    for protected in (b"", b"\x30\x00", b"\x04\x03abc", envelope(JKS_OID, b"short")):
        with pytest.raises(JKSFormatError):
            decrypt_key(JKSKey("k", protected, (), "JKS"), "pw")


def test_unknown_protection_and_jce_protector_outside_jceks():
    with pytest.raises(JKSFormatError, match="unknown protection"):
        decrypt_key(JKSKey("k", envelope("1.2.3.4", bytes(48)), (), "JKS"), "pw")
    with pytest.raises(JKSFormatError, match="unknown protection"):
        decrypt_key(JKSKey("k", envelope(JCE_OID, bytes(48), jce_params()), (), "JKS"), "pw")


def test_jce_parameters_are_checked_before_any_work():
    for params in (b"\x05\x00", jce_params(b"short"), jce_params(iterations=0),
                   jce_params(iterations=_jks._MAX_JCE_ITERATIONS + 1)):  # fmt: skip
        key = JKSKey("k", envelope(JCE_OID, bytes(48), params), (), "JCEKS")
        with pytest.raises(JKSFormatError, match="PBE parameters"):
            decrypt_key(key, "pw")
    truncated = JKSKey("k", envelope(JCE_OID, bytes(47), jce_params()), (), "JCEKS")
    with pytest.raises(JKSFormatError, match="truncated"):
        decrypt_key(truncated, "pw")


def test_jce_non_ascii_passwords_are_utf8_as_in_jdk25():
    """JDK 25 encodes JCEKS key passwords as UTF-8 (PBEUtil); older JDKs refused them."""
    import hashlib

    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    password, salt, iterations = "pässwörd€", b"abcdefgh", 20
    derived = b""
    for half in (salt[:4], salt[4:]):
        digest = half
        for _ in range(iterations):
            digest = hashlib.md5(digest + password.encode("utf-8")).digest()
        derived += digest
    padded = PKCS8 + bytes([8 - len(PKCS8) % 8]) * (8 - len(PKCS8) % 8)
    encryptor = Cipher(TripleDES(derived[:24]), modes.CBC(derived[24:])).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    key = JKSKey("k", envelope(JCE_OID, ciphertext, jce_params(salt, iterations)), (), "JCEKS")
    assert decrypt_key(key, password) == PKCS8
    with pytest.raises(JKSKeyPasswordError):
        decrypt_key(key, "passwörd")


JDK25 = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/keytool"


@pytest.mark.skipif(not __import__("os").path.exists(JDK25), reason="JDK 25 is not installed")
def test_jdk25_jceks_with_a_non_ascii_password(tmp_path):
    import subprocess

    import mtls

    store, password = tmp_path / "u.jceks", "pässwörd€"
    subprocess.run(
        [JDK25, "-genkeypair", "-storetype", "JCEKS", "-keystore", str(store), "-storepass",
         password, "-keypass", password, "-alias", "k", "-dname", "CN=u", "-keyalg", "EC"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    ks = mtls.Keystore.load(store, password)
    assert ks.key_aliases == ("k",)
    mtls.client_context(ks)  # the key matches its certificate


def test_jce_wrong_password_that_passes_the_padding_check_is_still_wrong():
    """JCE decryption has only a padding check: a plaintext that is not PKCS#8 means a
    wrong password. Search a wrong password whose garbage happens to end in valid padding."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    salt, iterations = b"abcdefgh", 10
    key_bytes, iv = jks.sun_crypto._jce_pbe_derive_key_and_iv("right", salt, iterations)
    padded = PKCS8 + bytes([8 - len(PKCS8) % 8]) * (8 - len(PKCS8) % 8)
    encryptor = Cipher(TripleDES(key_bytes), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    key = JKSKey("k", envelope(JCE_OID, ciphertext, jce_params(salt, iterations)), (), "JCEKS")
    assert decrypt_key(key, "right") == PKCS8
    for n in range(2000):
        try:
            decrypt_key(key, f"wrong-{n}")
        except JKSKeyPasswordError as exc:
            if "PKCS#8" in str(exc):
                return  # found one that passed the padding check and was still refused
    pytest.fail("no wrong password passed the padding check in 2000 tries (p ~ 1e-4)")


def test_pyjks_failures_become_format_errors():
    with pytest.raises(JKSFormatError):
        _jks.parse_store(b"\xfe\xed\xfe\xed" + b"\x00\x00\x00\x02" + b"\x7f\xff\xff\xff", None)
    with pytest.raises(JKSFormatError):
        _jks.parse_store(b"\xfe\xed\xfe\xed\x00\x00\x00\x09", None)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(min_size=1, max_size=300), password=st.text(max_size=12))
def test_our_jks_key_protector_agrees_with_pyjks(plaintext: bytes, password: str) -> None:
    """pyjks (what keytool interop was tested against before) is the oracle both ways."""
    protected = jks.sun_crypto.jks_pkey_encrypt(plaintext, password)
    assert _jks._jks_unprotect(protected, password) == plaintext
    assert jks.sun_crypto.jks_pkey_decrypt(protected, password) == plaintext
    with pytest.raises(JKSKeyPasswordError):
        _jks._jks_unprotect(protected, password + "x")
    damaged = bytearray(protected)
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(JKSKeyPasswordError):
        _jks._jks_unprotect(bytes(damaged), password)


@given(half=st.binary(min_size=4, max_size=4))
def test_jce_salt_quirk_matches_pyjks(half: bytes) -> None:
    assert _jks._jce_invert_salt_half(half) == jks.sun_crypto._jce_invert_salt_half(half)


def test_jce_equal_salt_halves_decrypt() -> None:
    """Equal halves take the JDK's typo'd "inversion": pyjks's derivation is the oracle."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    salt = b"abcdabcd"
    key_bytes, iv = jks.sun_crypto._jce_pbe_derive_key_and_iv("pw", salt, 20)
    padded = PKCS8 + bytes([8 - len(PKCS8) % 8]) * (8 - len(PKCS8) % 8)
    encryptor = Cipher(TripleDES(key_bytes), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    key = JKSKey("k", envelope(JCE_OID, ciphertext, jce_params(salt, 20)), (), "JCEKS")
    assert decrypt_key(key, "pw") == PKCS8
    with pytest.raises(JKSKeyPasswordError):
        decrypt_key(key, "not-pw")


def test_a_key_password_with_a_lone_surrogate_is_a_wrong_password(tmp_path) -> None:
    """A Java char may be a lone surrogate (and undecodable bytes in an environment
    variable become one in Python): encoded as Java does, never a UnicodeEncodeError."""
    import mtls
    from mtls.testing import CA

    path = tmp_path / "id.jks"
    CA().issue_cert("k").keystore().save(path, "store-pw")
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "store-pw", key_password="\udcff")
    # the twin: the right key password still opens it
    assert mtls.Keystore.load(path, "store-pw", key_password="store-pw").key_aliases == ("k",)
    # JCEKS keys (String.getBytes(UTF_8) writes '?' for it)
    key_bytes, iv = jks.sun_crypto._jce_pbe_derive_key_and_iv("?", b"abcdefgh", 10)
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    padded = PKCS8 + bytes([8 - len(PKCS8) % 8]) * (8 - len(PKCS8) % 8)
    encryptor = Cipher(TripleDES(key_bytes), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    key = JKSKey("k", envelope(JCE_OID, ciphertext, jce_params(b"abcdefgh", 10)), (), "JCEKS")
    assert decrypt_key(key, "\udcff") == PKCS8
    with pytest.raises(JKSKeyPasswordError):
        decrypt_key(key, "\udcff\udcff")
