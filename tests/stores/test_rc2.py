"""RC2 (RFC 2268), kept for reading old PKCS#12 files: the RFC's own test vectors."""

from __future__ import annotations

import os

import pytest

from mtls import _rc2

# RFC 2268 section 5: (key, effective bits, plaintext, ciphertext)
VECTORS = [
    ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
    ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
    ("3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"),
    ("88", 64, "0000000000000000", "61a8a244adacccf0"),
    ("88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"),
    ("88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"),
    ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
]


@pytest.mark.parametrize(("key", "bits", "plain", "cipher"), VECTORS)
def test_rfc2268_vectors(key: str, bits: int, plain: str, cipher: str) -> None:
    k = _rc2.expand_key(bytes.fromhex(key), bits)
    assert _rc2.encrypt_block(k, bytes.fromhex(plain)).hex() == cipher
    assert _rc2.decrypt_block(k, bytes.fromhex(cipher)).hex() == plain


def test_cbc_round_trip_and_chaining() -> None:
    key, iv = os.urandom(5), os.urandom(8)
    k = _rc2.expand_key(key, 40)
    plain = os.urandom(64)
    blocks, previous = [], iv
    for at in range(0, len(plain), 8):
        block = _rc2.encrypt_block(
            k, bytes(a ^ b for a, b in zip(plain[at : at + 8], previous, strict=True))
        )
        blocks.append(block)
        previous = block
    assert _rc2.cbc_decrypt(key, 40, iv, b"".join(blocks)) == plain


@pytest.mark.parametrize("bits", [40, 64, 128])
def test_cbc_decrypt_is_decrypt_block_chained(bits: int) -> None:
    """The unrolled CBC loop gives what decrypt_block (checked against the RFC's
    vectors above) gives, block by block, over many random blocks and keys."""
    for size in (8, 16, 4096):
        key, iv, data = os.urandom(bits // 8), os.urandom(8), os.urandom(size)
        k = _rc2.expand_key(key, bits)
        expected, previous = bytearray(), iv
        for at in range(0, size, 8):
            block = data[at : at + 8]
            plain = _rc2.decrypt_block(k, block)
            expected += bytes(a ^ b for a, b in zip(plain, previous, strict=True))
            previous = block
        assert _rc2.cbc_decrypt(key, bits, iv, data) == bytes(expected)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="8-byte"):
        _rc2.cbc_decrypt(b"k" * 5, 40, b"short", b"x" * 8)
    with pytest.raises(ValueError, match="8-byte"):
        _rc2.cbc_decrypt(b"k" * 5, 40, b"8bytes!!", b"x" * 7)
    with pytest.raises(ValueError, match="1 to 128 bytes"):
        _rc2.expand_key(b"", 40)
