"""The PKCS#12 key derivation (RFC 7292 appendix B.2), run by OpenSSL where we can reach it.

Every PKCS#12 load derives its MAC key this way: keytool uses 10,000 iterations of
SHA-256, which as a Python loop of ``hashlib`` calls cost most of a whole load
(issue #13: 5 of 8.1 ms). Neither ``hashlib`` nor ``cryptography`` exposes this KDF,
and cryptography's own PKCS#12 loader would verify the MAC only by also decrypting
and parsing every key (an RSA check of ~60 ms) and would drop what our reader keeps
(every key, Java trust attributes, legacy algorithms).

The libcrypto that Python's ``ssl`` and ``hashlib`` already loaded does have it:
``PKCS12_key_gen_uni``, stable since OpenSSL 1.1. It is called through ``ctypes``
(which releases the GIL for the call), found among the libraries this process has
already mapped, so nothing new is loaded. Before first use, its output is compared
with the pure-Python derivation on a case that exercises every step (several output
blocks, the block increment, both lengths of input); if the library is missing, a
symbol is absent, a digest is unknown to it, or the outputs differ, the pure-Python
derivation runs instead, with the same results.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when first used: ctypes is a cost PEM and JKS users never pay
    import ctypes

# hashlib name -> (digest size u, block size v) of the RFC 7292 appendix B KDF.
SIZES: dict[str, tuple[int, int]] = {
    "md5": (16, 64),
    "sha1": (20, 64),
    "sha224": (28, 64),
    "sha256": (32, 64),
    "sha384": (48, 128),
    "sha512": (64, 128),
    "sha512_224": (28, 128),
    "sha512_256": (32, 128),
}
# OpenSSL's names where they differ from hashlib's.
_OPENSSL_NAMES = {"sha512_224": b"sha512-224", "sha512_256": b"sha512-256"}


def p12_kdf_python(
    name: str, password: bytes, salt: bytes, *, purpose: int, rounds: int, size: int
) -> bytes:
    """RFC 7292 appendix B.2 in Python (the reference, and the fallback)."""
    u, v = SIZES[name]
    # The named constructor (hashlib.sha1) is twice as fast as hashlib.new in the loop.
    new: Callable[[bytes], Any] = getattr(hashlib, name, None) or partial(hashlib.new, name)

    def stretch(data: bytes) -> bytes:  # copies of data filling a multiple of v bytes
        length = v * -(-len(data) // v)
        return (data * (length // len(data) + 1))[:length] if data else b""

    block = bytearray(stretch(salt) + stretch(password))  # I = S || P
    diversifier = bytes([purpose]) * v  # D
    out = b""
    while True:
        digest: bytes = new(diversifier + block).digest()
        for _ in range(rounds - 1):
            digest = new(digest).digest()
        out += digest
        if len(out) >= size:
            return out[:size]
        increment = int.from_bytes((digest * (v // u + 1))[:v], "big") + 1  # B + 1
        for start in range(0, len(block), v):
            total = int.from_bytes(block[start : start + v], "big") + increment
            block[start : start + v] = (total & ((1 << (8 * v)) - 1)).to_bytes(v, "big")


class _OpenSSL:
    """``PKCS12_key_gen_uni`` of an already-loaded libcrypto, checked before use."""

    def __init__(self, library: ctypes.CDLL) -> None:
        import ctypes  # noqa: PLC0415 - see the module's imports

        self._buffer = ctypes.create_string_buffer
        self._gen = library.PKCS12_key_gen_uni
        self._gen.restype = ctypes.c_int
        self._gen.argtypes = [
            ctypes.c_char_p,  # pass (BMPString with its trailing NUL, as PKCS#12 says)
            ctypes.c_int,
            ctypes.c_char_p,  # salt
            ctypes.c_int,
            ctypes.c_int,  # id: 1 key, 2 IV, 3 MAC key
            ctypes.c_int,  # iterations
            ctypes.c_int,  # bytes wanted
            ctypes.c_void_p,  # out
            ctypes.c_void_p,  # const EVP_MD *
        ]
        # A refused call (OpenSSL 3.0 refuses an empty password and salt: "malloc failure")
        # leaves its error on this thread's OpenSSL error queue, which Python's ssl
        # shares: the next load_verify_locations(cadata=...) in the thread would read
        # it as its own failure. Every refusal is cleared before the Python KDF runs.
        self._clear_errors = library.ERR_clear_error
        self._clear_errors.restype = None
        self._clear_errors.argtypes = []
        by_name = library.EVP_get_digestbyname
        by_name.restype = ctypes.c_void_p
        by_name.argtypes = [ctypes.c_char_p]
        self._digests: dict[str, int] = {}
        for name in SIZES:
            md = by_name(_OPENSSL_NAMES.get(name, name.encode()))
            if md:
                self._digests[name] = md

    def derive(
        self, name: str, password: bytes, salt: bytes, *, purpose: int, rounds: int, size: int
    ) -> bytes | None:
        """The derivation by OpenSSL, or None (the Python one serves): an unknown or
        refused digest, or a number a C ``int`` cannot hold (ctypes would wrap it)."""
        md = self._digests.get(name)
        if md is None or not (0 < rounds <= _INT_MAX and 0 < size <= _INT_MAX):
            return None
        if len(password) > _INT_MAX or len(salt) > _INT_MAX:
            return None
        out = self._buffer(size)
        ok = self._gen(password, len(password), salt, len(salt), purpose, rounds, size, out, md)
        if ok != 1:
            self._clear_errors()
            return None
        return out.raw

    def check(self) -> bool:
        """Keep the digests whose output is the Python derivation's (one refused, say
        MD5 under FIPS, drops only itself); True if any is left."""
        # Several blocks (size over u), salt and password not multiples of v, both ids.
        for name in list(self._digests):
            u, _ = SIZES[name]
            for purpose, password in ((1, b"\0p\0w\0\xe9\0\0"), (3, b"")):
                case = {"purpose": purpose, "rounds": 3, "size": 2 * u + 5}
                ours = p12_kdf_python(name, password, b"salt-9ch", **case)
                if self.derive(name, password, b"salt-9ch", **case) != ours:
                    del self._digests[name]
                    break
        return bool(self._digests)


_INT_MAX = 2**31 - 1  # what a C int holds: the KDF's lengths and counts are ints


def _mapped_libcryptos() -> list[str]:
    """The libcrypto files this process already mapped (``hashlib`` maps one on import)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libcrypto" in line}
    except OSError:  # not Linux: the Python derivation serves
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _first_checked(paths: list[str]) -> _OpenSSL | None:
    """The first library of ``paths`` whose KDF passes the check for some digest."""
    import ctypes  # noqa: PLC0415 - see the module's imports

    for path in paths:
        try:
            openssl = _OpenSSL(ctypes.CDLL(path))
        except (AttributeError, OSError):  # not loadable, or a symbol is missing
            continue
        if openssl.check():
            return openssl
    return None


@functools.cache
def _backend() -> _OpenSSL | None:
    # Found and checked once per process (two threads racing here both find the same).
    try:
        return _first_checked(_mapped_libcryptos())
    except ImportError:  # no ctypes: the Python derivation serves
        return None


def p12_kdf(
    name: str, password: bytes, salt: bytes, *, purpose: int, rounds: int, size: int
) -> bytes:
    """RFC 7292 appendix B.2: the PKCS#12 key derivation (callers charge for it first).

    Args:
        name: the hashlib name of the digest (``sha256``).
        password: the BMPString password with its two NUL bytes (or b"" for none).
        salt: the salt.
        purpose: the ID byte: 1 key, 2 IV, 3 MAC key.
        rounds: the iteration count (already capped by the caller).
        size: bytes wanted.
    """
    openssl = _backend()
    if openssl is not None:
        derived = openssl.derive(name, password, salt, purpose=purpose, rounds=rounds, size=size)
        if derived is not None:
            return derived
    return p12_kdf_python(name, password, salt, purpose=purpose, rounds=rounds, size=size)


def backend_name() -> str:
    """``"openssl"`` when the derivation runs in libcrypto, else ``"python"`` (for benchmarks)."""
    return "openssl" if _backend() is not None else "python"
