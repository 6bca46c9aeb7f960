"""The direct key hand-off (:func:`mtls._openssl.use_identity`) on its own: it installs
nothing ``load_cert_chain`` would refuse from a file of the same key and chain, it
leaves OpenSSL's error queue empty, and it is found again after a failure that passes.
The hand-off's every way, with handshakes, is in tests/stores/test_key_handoff.py."""

from __future__ import annotations

import ctypes
import ssl
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given, settings
from hypothesis import strategies as st

import mtls
from mtls import _keyload, _openssl
from mtls._entries import KeyEntry
from tests._helpers import direct_identity_available, self_signed_der
from tests._pki import issue

pytestmark = pytest.mark.skipif(
    not direct_identity_available(), reason="OpenSSL's key-loading calls are not reachable here"
)
# The tests that compare with the file way read it from a memfd (Linux).
needs_memfd = pytest.mark.skipif(
    not _keyload.memfd_available(), reason="the file way compared is a memfd"
)


def test_a_refusal_leaves_no_error_behind_in_openssl() -> None:
    """The direct way refuses a mismatched pair and empties this thread's OpenSSL
    error queue: the next cadata load in the thread (which reads the queue after its
    certificates) succeeds."""
    mine = mtls.Keystore.generate("client", "CN=client", key_type="EC")
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain = [mine.certificate("client").public_bytes(serialization.Encoding.DER)]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(ctx, other, chain) is False
    assert _openssl.use_identity(ctx, b"not a key", chain) is False
    assert _openssl.use_identity(ctx, other, [b"not a certificate"]) is False
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    fresh.load_verify_locations(cadata=chain[0])
    assert fresh.cert_store_stats()["x509"] == 1
    right = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(right, mine.key_entry()[1], chain) is True  # the twin


def _file_way_accepts(key_der: bytes, chain_der: list[bytes]) -> bool:
    """What load_cert_chain says of the same key and chain, read from a memory file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pem = _keyload._memfd_pem(key_der, b"".join(_keyload._cert_pem_line(d) for d in chain_der))
    try:
        _keyload._load_via_memfd(ctx, pem)
    except ssl.SSLError:
        return False
    return True


_ROOT = issue("mutation root", None, ca=True)
_MUTABLE = [issue("mutated rsa", _ROOT, key_type="RSA"), issue("mutated ec", _ROOT)]


@needs_memfd
@settings(max_examples=300, deadline=None, database=None)
@given(
    which=st.sampled_from([0, 1]),
    part=st.sampled_from(["key", "leaf", "ca"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=3),
    tail=st.binary(max_size=8),
)
def test_the_direct_way_accepts_nothing_load_cert_chain_refuses(
    which: int, part: str, cut: int | None, flips: list[tuple[int, int]], tail: bytes
) -> None:
    """Keys and certificates truncated, with bytes flipped, or with bytes after them:
    what the direct way installs, load_cert_chain from a memory file installs too
    (the direct way refuses trailing bytes, which the file way may read; the file
    way then has the last word), the whole hand-off accepts exactly what the file
    way accepts, and nothing crashes the process. The first mutation this found: a
    leaf whose extension is malformed, which load_cert_chain refuses from the error
    it leaves queued (INVALID_CERTIFICATE) although the call itself succeeds. Random
    flips reach that case rarely: the fixed case below holds it."""
    identity = _MUTABLE[which]
    key_der = identity.key_der()
    chain_der = [c.public_bytes(serialization.Encoding.DER) for c in identity.chain]
    data = bytearray(key_der if part == "key" else chain_der[0 if part == "leaf" else 1])
    for at, mask in flips:
        if data:
            data[at % len(data)] ^= mask
    mutated = bytes(data[:cut] if cut is not None else data) + tail
    if part == "key":
        key_der = mutated
    else:
        chain_der[0 if part == "leaf" else 1] = mutated
    file_way = _file_way_accepts(key_der, chain_der)
    direct = _openssl.use_identity(
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        key_der,
        chain_der,
        _keyload.decoder_key_type(key_der),  # as load_identity calls it
    )
    assert file_way or not direct
    whole = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        _keyload.load_identity(whole, key_der, chain_der)
        accepted = True
    except ssl.SSLError:
        accepted = False
    assert accepted is file_way
    if not (cut is not None or flips or tail):
        assert direct  # the twin: unchanged material goes the direct way


def test_a_leaf_with_a_malformed_extension_is_refused_as_load_cert_chain_refuses_it() -> None:
    """OpenSSL 3.0 installs such a leaf and queues INVALID_CERTIFICATE; load_cert_chain
    reads the queue and refuses it, and so does the direct way (the hand-off then
    raises load_cert_chain's own error). The twin: the same leaf unbroken loads. (An
    OpenSSL that takes the leaf, 3.6 (h206), takes it both ways: the two agree.)"""
    identity = _MUTABLE[1]
    chain_der = [c.public_bytes(serialization.Encoding.DER) for c in identity.chain]
    aki = b"\x06\x03\x55\x1d\x23"  # the authority key identifier's OID
    at = chain_der[0].index(aki) + len(aki)
    value = chain_der[0][at:]  # OCTET STRING { SEQUENCE { [0] keyIdentifier } }
    assert value[0] == 0x04 and value[2] == 0x30
    broken = chain_der[0][: at + 2] + b"\x31" + chain_der[0][at + 3 :]  # SET for SEQUENCE
    if _file_way_accepts(identity.key_der(), [broken, chain_der[1]]):
        taken = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _keyload.load_identity(taken, identity.key_der(), [broken, chain_der[1]])
        store = mtls.Keystore()
        store._entries.add_key(KeyEntry("broken", identity.key_der(), (broken, chain_der[1])))
        mtls.client_context(store, verify=False)
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(ctx, identity.key_der(), [broken, chain_der[1]]) is False
    with pytest.raises(ssl.SSLError, match="INVALID_CERTIFICATE"):
        _keyload.load_identity(ctx, identity.key_der(), [broken, chain_der[1]])
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(fresh, identity.key_der(), chain_der) is True
    # Through the public way in: the entry named, and a fix that fits (it said "the
    # key must match the first certificate of its chain").
    store = mtls.Keystore()
    store._entries.add_key(KeyEntry("broken", identity.key_der(), (broken, chain_der[1])))
    with pytest.raises(
        mtls.KeyEntryError, match=r"'broken'.*INVALID_CERTIFICATE.*extension OpenSSL rejects"
    ):
        mtls.client_context(store, verify=False)


@needs_memfd
@pytest.mark.parametrize("form", ["PKCS#1", "SEC1"])
def test_only_pkcs8_keys_go_the_direct_way(form: str) -> None:
    """A PKCS#1 RSA or SEC1 EC key inside the PEM the file way writes (a PRIVATE KEY
    block) is refused there; the direct way takes only PKCS#8, as that block does, so
    the two agree. The twin: the same key as PKCS#8 goes the direct way. (The store
    readers hand over PKCS#8 only; this keeps the direct way to its word.)"""
    identity = issue("traditional", _ROOT, key_type="RSA" if form == "PKCS#1" else "EC")
    key = identity.key
    chain = [identity.cert.public_bytes(serialization.Encoding.DER)]
    traditional = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pkcs8 = identity.key_der()
    assert (
        _openssl.use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), traditional, chain) is False
    )
    assert _file_way_accepts(traditional, chain) is False
    assert _openssl.use_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), pkcs8, chain) is True


@pytest.mark.parametrize(
    "passing",
    [OSError(24, "Too many open files"), ImportError("_ctypes.so: Too many open files")],
    ids=["OSError", "ImportError"],
)
def test_a_failure_that_passes_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch, passing: Exception
) -> None:
    """Out of descriptors when the first context is built, ctypes cannot open OpenSSL
    (OSError), or dlopen cannot open ``_ctypes`` (ImportError): that was remembered
    for the life of the process, and every later
    context went through a memory file, every server context without its session
    cache switch. Now the next call looks again. The twin: a symbol that is missing
    stays missing (no lookup per context)."""
    _openssl._found.cache_clear()
    real = ctypes.CDLL
    try:

        def out_of_descriptors(*args: object, **kwargs: object) -> object:
            raise passing

        monkeypatch.setattr(ctypes, "CDLL", out_of_descriptors)
        assert _openssl._library() is None
        monkeypatch.setattr(ctypes, "CDLL", real)
        assert _openssl._library() is not None  # found once descriptors are free
        _openssl._found.cache_clear()

        def missing(*args: object, **kwargs: object) -> object:
            raise AttributeError("OpenSSL_version_num")

        monkeypatch.setattr(_openssl, "_typed", missing)
        assert _openssl._library() is None
        monkeypatch.undo()
        assert _openssl._library() is None  # remembered: it will not appear later
    finally:
        monkeypatch.undo()
        _openssl._found.cache_clear()
    assert direct_identity_available()


def _pkcs8(key: object) -> bytes:
    assert hasattr(key, "private_bytes")
    der: bytes = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return der


def _rsa_pss() -> bytes:
    """An RSASSA-PSS key (cryptography makes none), from the openssl command."""
    try:
        return subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
             "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no openssl command")


def _dsa() -> bytes:
    with warnings.catch_warnings():  # cryptography's deprecation of DSA
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _pkcs8(dsa.generate_private_key(2048))


_TYPED_KEYS: dict[str, tuple[Callable[[], bytes], bytes]] = {
    "RSA-2048": (lambda: _pkcs8(rsa.generate_private_key(65537, 2048)), b"RSA"),
    "RSA-PSS": (_rsa_pss, b"RSA-PSS"),
    "EC-P256": (lambda: _pkcs8(ec.generate_private_key(ec.SECP256R1())), b"EC"),
    "EC-P384": (lambda: _pkcs8(ec.generate_private_key(ec.SECP384R1())), b"EC"),
    "EC-P521": (lambda: _pkcs8(ec.generate_private_key(ec.SECP521R1())), b"EC"),
    "Ed25519": (lambda: _pkcs8(ed25519.Ed25519PrivateKey.generate()), b"ED25519"),
    "Ed448": (lambda: _pkcs8(ed448.Ed448PrivateKey.generate()), b"ED448"),
    "DSA-2048": (_dsa, b"DSA"),
}


def _private_der(lib: ctypes.CDLL, key: int) -> bytes:
    """``i2d_PrivateKey`` of an ``EVP_PKEY``: every private field, as OpenSSL holds it."""
    write = lib.i2d_PrivateKey
    write.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
    write.restype = ctypes.c_int
    size = write(key, None)
    assert size > 0
    out = ctypes.create_string_buffer(size)
    cursor = ctypes.cast(out, ctypes.c_char_p)
    assert write(key, ctypes.byref(cursor)) == size
    return out.raw


def _crypto() -> tuple[_openssl._Decoder, _openssl._Identity, ctypes.CDLL]:
    library = _openssl._library()
    assert library is not None and library.identity is not None
    decoder = library.identity._decoder
    if decoder is None:
        pytest.skip("OpenSSL before 3.0: no decoders")
    import _ssl

    return decoder, library.identity, ctypes.CDLL(_ssl.__file__)


@pytest.mark.parametrize("name", list(_TYPED_KEYS))
def test_a_key_told_its_type_decodes_to_the_key_the_untyped_search_finds(name: str) -> None:
    """The decoder told the key's type (a third of the cost: the context rows of
    benchmarks/) makes the key EVP_PKCS82PKEY makes: the same type, equal keys."""
    make, expected = _TYPED_KEYS[name]
    der = make()
    assert _keyload.decoder_key_type(der) == expected
    decoder, identity, lib = _crypto()
    typed = decoder.private_key(der, expected)
    assert typed is not None
    info = identity._read(identity.read_pkcs8, identity.free_pkcs8, der)
    assert info is not None
    untyped = identity.pkcs8_key(info)
    identity.free_pkcs8(info)
    try:
        assert untyped
        equal = lib.EVP_PKEY_eq
        equal.argtypes, equal.restype = [ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
        assert equal(typed, untyped) == 1  # the public parts
        assert _private_der(lib, typed) == _private_der(lib, untyped)  # and the private
        type_name = lib.EVP_PKEY_get0_type_name
        type_name.argtypes, type_name.restype = [ctypes.c_void_p], ctypes.c_char_p
        assert type_name(typed) == type_name(untyped)
        assert type_name(typed) is not None
    finally:
        identity.free_key(typed)
        identity.free_key(untyped)
    assert lib.ERR_peek_error() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: _pkcs8(ec.generate_private_key(ec.BrainpoolP256R1())),
        lambda: _pkcs8(ec.generate_private_key(ec.SECP256K1())),
        lambda: _pkcs8(x25519.X25519PrivateKey.generate()),
        lambda: b"",
        lambda: b"\x30\x03\x02\x01\x00",
        lambda: b"not a key",
    ],
    ids=["brainpoolP256r1", "secp256k1", "X25519", "empty", "one-field", "junk"],
)
def test_other_keys_are_left_to_the_untyped_search(make: Callable[[], bytes]) -> None:
    """A curve other than P-256, P-384 or P-521 (which decoder takes it is OpenSSL's
    search to decide), a type no TLS identity has, or bytes that are not PKCS#8:
    no type is named. The twin is the test above."""
    assert _keyload.decoder_key_type(make()) is None


def test_a_key_with_explicit_curve_parameters_is_left_to_the_untyped_search(
    tmp_path: Path,
) -> None:
    """P-256 written out as explicit parameters (openssl ecparam -param_enc explicit):
    the untyped search decides, as before. The twin: the same curve named is EC."""
    sec1 = tmp_path / "k.sec1"
    try:
        subprocess.run(
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-param_enc", "explicit",
             "-noout", "-out", str(sec1)],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(sec1), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no openssl command")
    assert _keyload.key_curve(der) == "1.2.840.10045.3.1.7"  # P-256 by its parameters
    assert _keyload.decoder_key_type(der) is None
    named = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
    assert _keyload.decoder_key_type(named) == b"EC"


def test_a_typed_refusal_goes_the_untyped_way_and_leaves_no_error() -> None:
    """Told a type the key is not, the decoder refuses it (as it refuses trailing
    bytes); the hand-off then reads it the untyped way, installs it, and leaves
    OpenSSL's error queue empty for the next call in the thread."""
    decoder, _, lib = _crypto()
    identity = issue("typed refusal", _ROOT, key_type="RSA")
    key_der = identity.key_der()
    chain = [c.public_bytes(serialization.Encoding.DER) for c in identity.chain]
    assert decoder.private_key(key_der, b"EC") is None
    assert decoder.private_key(key_der + b"\x00", b"RSA") is None
    lib.ERR_clear_error()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(ctx, key_der, chain, b"EC") is True
    assert lib.ERR_peek_error() == 0
    # The twin: told its own type, the same key goes the typed way.
    typed = decoder.private_key(key_der, b"RSA")
    assert typed is not None
    lib.EVP_PKEY_free(ctypes.c_void_p(typed))


def _sec1_read_as_pkcs8() -> tuple[bytes, ec.EllipticCurvePrivateKey, list[bytes]]:
    """A SEC1 ECPrivateKey (not PKCS#8) whose private key OCTET STRING is in BER's
    constructed form, its parts an OID id-ecPublicKey, an OID P-256 and an OCTET
    STRING: walked as PKCS#8 it looks like an EC P-256 key (h147's find). With the key
    it holds, and a certificate for that key."""

    def tlv(tag: int, content: bytes) -> bytes:
        return bytes([tag, len(content)]) + content

    oid_ec, oid_p256 = bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06082a8648ce3d030107")
    rest = bytes(range(1, 18))
    key = ec.derive_private_key(
        int.from_bytes(oid_ec[2:] + oid_p256[2:] + rest, "big"), ec.SECP256R1()
    )
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    der = tlv(
        0x30,
        tlv(0x02, b"\x01")
        + tlv(0x24, oid_ec + oid_p256 + tlv(0x04, rest))
        + tlv(0xA0, oid_p256)
        + tlv(0xA1, tlv(0x03, b"\x00" + point)),
    )
    return der, key, [self_signed_der(key, "sec1")]


@needs_memfd
def test_a_key_that_only_looks_like_pkcs8_is_refused_as_load_cert_chain_refuses_it() -> None:
    """OpenSSL 3.0's decoders, told "PrivateKeyInfo", still take a bare SEC1 key; a
    SEC1 key whose first fields read as an EC P-256 AlgorithmIdentifier went the
    typed way and was installed (h147), where load_cert_chain and keytool refuse it.
    Only bytes d2i_PKCS8_PRIV_KEY_INFO reads whole reach the typed decoder now, and
    the key type needs PKCS#8's fields. The twin: the same key as PKCS#8 goes in."""
    der, key, chain = _sec1_read_as_pkcs8()
    assert _keyload.decoder_key_type(der) is None
    assert _file_way_accepts(der, chain) is False
    with pytest.raises(ssl.SSLError):
        _keyload.load_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), der, chain)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(ctx, der, chain, b"EC") is False  # told EC all the same
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert _openssl.use_identity(fresh, _pkcs8(key), chain, b"EC") is True
