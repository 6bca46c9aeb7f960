"""RC2 (RFC 2268) in CBC mode, and RC4, only for reading old PKCS#12 files.

Java before 8u301 / 11.0.12 (and ``openssl pkcs12 -legacy``) encrypted the
certificates of every PKCS#12 keystore with ``pbeWithSHAAnd40BitRC2-CBC``, and
keytool (JDK 17 and 25) still writes ``PBEWithSHA1AndRC4_128`` or ``_40`` when asked
(``keystore.pkcs12.certProtectionAlgorithm`` / ``keyProtectionAlgorithm``).
cryptography's RC2 takes 128-bit keys only, and OpenSSL 3 keeps RC2 and RC4 in its
legacy provider, so we carry both ciphers: a few dozen lines, decrypting a few
kilobytes once per load. Never used to encrypt anything we write.
"""

from __future__ import annotations

import struct

# RFC 2268 section 2: PITABLE, a permutation of 0..255 derived from the digits of pi.
_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)
_M = 0xFFFF


def expand_key(key: bytes, effective_bits: int) -> list[int]:
    """RFC 2268 section 2: the 64 16-bit subkeys for ``key`` at ``effective_bits``."""
    if not 1 <= len(key) <= 128 or not 1 <= effective_bits <= 1024:
        raise ValueError("RC2 keys are 1 to 128 bytes, effective bits 1 to 1024")
    t = len(key)
    expanded = bytearray(128)
    expanded[:t] = key
    for i in range(t, 128):
        expanded[i] = _PITABLE[(expanded[i - 1] + expanded[i - t]) & 0xFF]
    t8 = (effective_bits + 7) // 8
    tm = 0xFF >> (8 * t8 - effective_bits)
    expanded[128 - t8] = _PITABLE[expanded[128 - t8] & tm]
    for i in range(127 - t8, -1, -1):
        expanded[i] = _PITABLE[expanded[i + 1] ^ expanded[i + t8]]
    return [expanded[2 * i] | expanded[2 * i + 1] << 8 for i in range(64)]


def _rol(x: int, s: int) -> int:
    return ((x << s) | (x >> (16 - s))) & _M


def _ror(x: int, s: int) -> int:
    return ((x >> s) | (x << (16 - s))) & _M


_SHIFTS = (1, 2, 3, 5)


def encrypt_block(k: list[int], block: bytes) -> bytes:
    """RFC 2268 section 3: five mixing rounds, a mash, six mixes, a mash, five mixes."""
    r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
    j = 0
    for round_ in range(16):
        for i in range(4):
            # R[i] += K[j] + (R[i-1] & R[i-2]) + (~R[i-1] & R[i-3]), then rotate left.
            mux = ((r[i - 2] ^ r[i - 3]) & r[i - 1]) ^ r[i - 3]
            r[i] = _rol((r[i] + k[j] + mux) & _M, _SHIFTS[i])
            j += 1
        if round_ in (4, 10):
            for i in range(4):
                r[i] = (r[i] + k[r[i - 1] & 63]) & _M
    return b"".join(bytes((w & 0xFF, w >> 8)) for w in r)


def decrypt_block(k: list[int], block: bytes) -> bytes:
    """RFC 2268 section 4: the rounds of :func:`encrypt_block`, undone in reverse."""
    r = [block[2 * i] | block[2 * i + 1] << 8 for i in range(4)]
    j = 63
    for round_ in range(15, -1, -1):
        for i in range(3, -1, -1):
            mux = ((r[i - 2] ^ r[i - 3]) & r[i - 1]) ^ r[i - 3]
            r[i] = (_ror(r[i], _SHIFTS[i]) - k[j] - mux) & _M
            j -= 1
        if round_ in (5, 11):
            for i in range(3, -1, -1):
                r[i] = (r[i] - k[r[i - 1] & 63]) & _M
    return b"".join(bytes((w & 0xFF, w >> 8)) for w in r)


def cbc_decrypt(key: bytes, effective_bits: int, iv: bytes, data: bytes) -> bytes:
    """Decrypt ``data`` (whole 8-byte blocks) in CBC mode; padding is left in place.

    :func:`decrypt_block` for every block, with the rounds written out on four local
    words and the whole input unpacked and packed at once: 3.2x faster than calling
    it (a 64 KiB truststore's certificates, 40-bit RC2 as Java before 8u301 wrote
    them: 205 ms before, 65 ms now). tests/stores/test_rc2.py holds the two equal.
    """
    if len(iv) != 8 or len(data) % 8:
        raise ValueError("RC2-CBC needs an 8-byte IV and whole 8-byte blocks")
    k = expand_key(key, effective_bits)
    count = len(data) // 2
    words = struct.unpack(f"<{count}H", data)
    out = [0] * count
    p0, p1, p2, p3 = struct.unpack("<4H", iv)
    # Each mixing round undone, last first, with its four subkeys (R3's first), and
    # whether a mash is undone after it (RFC 2268 section 4: after rounds 11 and 5).
    rounds = [
        (k[4 * r + 3], k[4 * r + 2], k[4 * r + 1], k[4 * r], r in (5, 11))
        for r in range(15, -1, -1)
    ]
    m = _M
    for at in range(0, count, 4):
        c0, c1, c2, c3 = r0, r1, r2, r3 = words[at : at + 4]
        for k3, k2, k1, k0, mash in rounds:
            # R[i] = ror(R[i], s[i]) - K[j] - ((R[i-2] ^ R[i-3]) & R[i-1]) ^ R[i-3]
            r3 = (((r3 >> 5) | (r3 << 11)) - k3 - (((r1 ^ r0) & r2) ^ r0)) & m
            r2 = (((r2 >> 3) | (r2 << 13)) - k2 - (((r0 ^ r3) & r1) ^ r3)) & m
            r1 = (((r1 >> 2) | (r1 << 14)) - k1 - (((r3 ^ r2) & r0) ^ r2)) & m
            r0 = (((r0 >> 1) | (r0 << 15)) - k0 - (((r2 ^ r1) & r3) ^ r1)) & m
            if mash:
                r3 = (r3 - k[r2 & 63]) & m
                r2 = (r2 - k[r1 & 63]) & m
                r1 = (r1 - k[r0 & 63]) & m
                r0 = (r0 - k[r3 & 63]) & m
        out[at : at + 4] = r0 ^ p0, r1 ^ p1, r2 ^ p2, r3 ^ p3
        p0, p1, p2, p3 = c0, c1, c2, c3
    return struct.pack(f"<{count}H", *out)


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 (the stream cipher: encrypting and decrypting are the same) of ``data``."""
    if not 1 <= len(key) <= 256:
        raise ValueError("RC4 keys are 1 to 256 bytes")
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) & 0xFF
        state[i], state[j] = state[j], state[i]
    out = bytearray(len(data))
    i = j = 0
    for at, byte in enumerate(data):
        i = (i + 1) & 0xFF
        j = (j + state[i]) & 0xFF
        state[i], state[j] = state[j], state[i]
        out[at] = byte ^ state[(state[i] + state[j]) & 0xFF]
    return bytes(out)
