"""Key material into OpenSSL without the filesystem; trust anchors and CRLs through
memory too.

:meth:`ssl.SSLContext.load_cert_chain` only takes file names. Writing a private key
to a temporary file, even briefly, leaves it in the page cache, on disk after a
crash, and readable by anything that wins the race. So:

* Where the OpenSSL ``ssl`` is linked to can be reached (CPython with OpenSSL;
  tested on Linux): the key's DER and the chain's go straight into it, through the
  calls ``load_cert_chain`` makes after reading its file
  (:func:`mtls._openssl.use_identity`): no file at all, no PEM text of the key.
* Otherwise, and whenever OpenSSL refuses the direct way (so that the error raised is
  ``load_cert_chain``'s own), on Linux: the PEM goes into an anonymous
  ``memfd_create`` file, which lives only in memory and dies with its last
  descriptor; OpenSSL opens it as ``/proc/self/fd/N``.
* Elsewhere: the key is re-encrypted with a random one-time passphrase, written to
  a 0600 temporary file that is removed as soon as OpenSSL has read it. What
  touches the disk is ciphertext under a key that never leaves this process.

The key is never parsed by cryptography on any path: PKCS#8 DER is handed over as is
(wrapped as PEM text for a file, sealed elsewhere), and OpenSSL checks it against the
certificate (about 1 ms for RSA, where cryptography's RSA consistency check costs tens
of milliseconds).

Trust anchors (:func:`load_anchors`) and CRLs (:func:`load_cafile_pem`) are public,
but go through a memfd as well: OpenSSL reads a ``cafile`` with the GIL released,
where ``load_verify_locations(cadata=...)`` holds it for the whole parse.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import hashlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterable, Iterator, Sequence

from . import _der
from ._openssl import use_identity
from ._x509 import EC_OID, der_to_pem, pkcs8_algorithm

_PROC_FD = "/proc/self/fd"


def key_curve(pkcs8_der: bytes) -> str:
    """The named-curve OID of a PKCS#8 EC key's AlgorithmIdentifier. Explicit curve
    parameters (``openssl ecparam -param_enc explicit``) are named when they are P-256's,
    P-384's or P-521's (field, coefficients, generator and order: OpenSSL matches them
    so); any other, or what cannot be read, is ``"explicit parameters"`` or
    ``"unknown"`` (never a curve TLS 1.3 can sign with)."""
    try:
        algorithm = pkcs8_algorithm(pkcs8_der)
        if len(algorithm) < 2:
            return "unknown"
        tag, start, stop = algorithm[1]
        if tag == _der.OID:
            return _der.decode_oid(pkcs8_der[start:stop])
        if tag != _der.SEQUENCE:
            return "unknown"
        return _explicit_curve(_der.read_all(pkcs8_der[start:stop]))
    except (_der.DERError, IndexError):
        return "unknown"


def _explicit_curve(parts: list[_der.TLV]) -> str:
    """ECParameters ::= SEQUENCE { version, fieldID, curve, base, order, cofactor OPTIONAL,
    ... }: the named curve they are, by every parameter, else ``"explicit parameters"``."""
    field = parts[1].children()  # FieldID ::= SEQUENCE { fieldType OID, parameters }
    if _der.decode_oid(field[0].expect(_der.OID).value) != _PRIME_FIELD:
        return "explicit parameters"
    curve = parts[2].children()  # Curve ::= SEQUENCE { a, b, seed BIT STRING OPTIONAL }
    given = (
        int.from_bytes(field[1].expect(_der.INTEGER).value, "big"),
        int.from_bytes(curve[0].expect(_der.OCTET_STRING).value, "big"),
        int.from_bytes(curve[1].expect(_der.OCTET_STRING).value, "big"),
        int.from_bytes(parts[4].expect(_der.INTEGER).value, "big"),
    )
    base = parts[3].expect(_der.OCTET_STRING).value  # the generator, an ECPoint
    for (prime, a, b, gx, gy, order), oid in _NAMED_CURVES.items():
        if given != (prime, a, b, order):
            continue
        size = (prime.bit_length() + 7) // 8
        if int.from_bytes(base[1 : 1 + size], "big") != gx:
            continue
        uncompressed = base[:1] == b"\x04" and len(base) == 1 + 2 * size
        if uncompressed and int.from_bytes(base[1 + size :], "big") == gy:
            return oid
        compressed = base[:1] in (b"\x02", b"\x03") and len(base) == 1 + size
        if compressed and base[0] - 2 == gy & 1:
            return oid
    return "explicit parameters"


_PRIME_FIELD = "1.2.840.10045.1.1"  # prime-field
# (p, a, b, Gx, Gy, n) of the curves TLS 1.3 signs with (SEC 2; read from OpenSSL's
# explicit encodings of prime256v1, secp384r1 and secp521r1).
_NAMED_CURVES = {
    # prime256v1
    (
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ): "1.2.840.10045.3.1.7",
    # secp384r1
    (
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFC,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ): "1.3.132.0.34",
    # secp521r1
    (
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC,
        0x51953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        0xC6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66,
        0x11839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650,
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
    ): "1.3.132.0.35",
}


# A PKCS#8 key's algorithm, as OpenSSL 3's decoders name the key type: telling the
# decoder saves two thirds of reading the key (mtls._openssl._Decoder). EC only where
# the AlgorithmIdentifier names a curve TLS 1.3 signs with (P-256, P-384, P-521): keys
# on other curves, or with their parameters written out, are rare in TLS and left to
# OpenSSL's untyped search, as before (h147 found the typed way gives the same key
# there too; there is little to gain and nothing to prove).
_DECODER_KEY_TYPES = {
    "1.2.840.113549.1.1.1": b"RSA",
    "1.2.840.113549.1.1.10": b"RSA-PSS",
    "1.2.840.10040.4.1": b"DSA",
    "1.3.101.112": b"ED25519",
    "1.3.101.113": b"ED448",
}
_DECODER_EC_CURVES = frozenset(_NAMED_CURVES.values())


def decoder_key_type(pkcs8_der: bytes) -> bytes | None:
    """The type of a PKCS#8 key as OpenSSL's decoders name it (``b"RSA"``, ``b"EC"``),
    read by offsets; ``None``: another type, or bytes that are not PKCS#8."""
    try:
        # PrivateKeyInfo ::= SEQUENCE { INTEGER, AlgorithmIdentifier, OCTET STRING, ... }
        fields = _der.spans(pkcs8_der, *_der.single_span(pkcs8_der, _der.SEQUENCE))
        if [tag for tag, _, _ in fields[:3]] != [_der.INTEGER, _der.SEQUENCE, _der.OCTET_STRING]:
            return None
        algorithm = _der.spans(pkcs8_der, fields[1][1], fields[1][2])
        tag, start, stop = algorithm[0]
        if tag != _der.OID:
            return None
        oid = _der.decode_oid(pkcs8_der[start:stop])
        if oid != EC_OID:
            return _DECODER_KEY_TYPES.get(oid)
        tag, start, stop = algorithm[1]
        named = tag == _der.OID and _der.decode_oid(pkcs8_der[start:stop]) in _DECODER_EC_CURVES
        return b"EC" if named else None
    except (_der.DERError, IndexError):
        return None


def _key_pem(pkcs8_der: bytes) -> bytes:
    """PKCS#8 as RFC 7468 PEM (64 columns): what other TLS stacks are handed."""
    body = binascii.b2a_base64(pkcs8_der, newline=False)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN PRIVATE KEY-----\n" + lines + b"\n-----END PRIVATE KEY-----\n"


def _memfd_pem(pkcs8_der: bytes, chain_pem: bytes) -> bytes:
    # Only OpenSSL reads this (through the memfd). Its PEM reader limits line length
    # only in encrypted (Proc-Type) blocks, since 1.1.0: an unencrypted key may be one
    # line, which is one C call to make. One join: the key's text exists once here,
    # not once per concatenation.
    return b"".join(
        (
            b"-----BEGIN PRIVATE KEY-----\n",
            binascii.b2a_base64(pkcs8_der),
            b"-----END PRIVATE KEY-----\n",
            chain_pem,
        )
    )


def _chain_pem(chain_der: Sequence[bytes]) -> bytes:
    return "".join(der_to_pem(der) for der in chain_der).encode("ascii")


@_der.bytes_cache(256, size=lambda chain: sum(map(len, chain)))
def _identity_chain_pem(chain_der: tuple[bytes, ...]) -> bytes:
    # Public certificates only (never the key), a few KiB each: a rebuild of the same
    # identity (a reload that finds a store changed, a context per ALPN) reuses the text.
    # One base64 line each, as the key: only OpenSSL reads it (through the memfd).
    return b"".join(_cert_pem_line(der) for der in chain_der)


@functools.cache
def memfd_available() -> bool:
    """True where keys are handed to OpenSSL through memory only."""
    return hasattr(os, "memfd_create") and os.path.isdir(_PROC_FD)


def load_identity(ctx: ssl.SSLContext, pkcs8_der: bytes, chain_der: Sequence[bytes]) -> None:
    """Install a private key and its certificate chain (leaf first) into ``ctx``.

    Raises:
        ssl.SSLError: OpenSSL refused the material (for example, the key does not
            match the certificate). Callers translate it.
    """
    if use_identity(ctx, pkcs8_der, chain_der, decoder_key_type(pkcs8_der)):
        return  # DER straight into OpenSSL: no file, no PEM text
    # Not reachable here, or refused: the whole identity again through a file, which
    # replaces what the direct way installed and raises OpenSSL's reason for a refusal.
    if memfd_available():
        _load_via_memfd(ctx, _memfd_pem(pkcs8_der, _identity_chain_pem(tuple(chain_der))))
    else:  # Windows, a Python that hides OpenSSL (tests force this path on Linux too)
        _load_via_encrypted_tempfile(ctx, pkcs8_der, chain_der)


def _memfd_with(data: bytes | Iterable[bytes], name: str) -> int:
    """An anonymous memory file holding ``data`` (or its parts, each written as it is
    made), its descriptor (the caller closes it)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        for part in (data,) if isinstance(data, bytes) else data:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def _load_memfd_cafile(ctx: ssl.SSLContext, pem: bytes | Iterable[bytes], name: str) -> None:
    """``load_verify_locations(cafile=...)`` of ``pem`` (or its parts) in a memfd, which
    OpenSSL reads with the GIL released; the descriptor is closed whatever happens.

    Raises:
        ssl.SSLError: OpenSSL refused the text.
        OSError: no descriptor or memory for the memory file, or OpenSSL could not open it.
    """
    fd = _memfd_with(pem, name)
    try:
        ctx.load_verify_locations(cafile=memfd_path(fd))
    finally:
        os.close(fd)


def _pem_parts(anchors_der: Sequence[bytes], per_part: int = 16) -> Iterator[bytes]:
    """The anchors as PEM (one base64 line each), ``per_part`` certificates at a time:
    each part is written (a system call, the GIL released) before the next is made,
    so that making the text never holds the GIL for long (144 certificates at once
    held it for about 0.3 ms)."""
    for start in range(0, len(anchors_der), per_part):
        yield b"".join(_cert_pem_line(der) for der in anchors_der[start : start + per_part])


def _cert_pem_line(der: bytes) -> bytes:
    """A certificate as PEM whose base64 is one line (one C call to make; OpenSSL limits
    line length in encrypted blocks only)."""
    return b"".join((b"-----BEGIN CERTIFICATE-----\n", binascii.b2a_base64(der), _END_CERT))


#: Anchors of more DER than this are read with the GIL released (see load_anchors):
#: about the interpreter's switch interval (5 ms) of OpenSSL's parsing on a 2-core
#: server of 2026. Below it, a memfd's system calls would cost more than they spare.
GIL_FREE_ANCHOR_BYTES = 32 * 1024


def anchors_memfd(anchors_der: Sequence[bytes]) -> int:
    """The anchors as PEM in a memfd, as :func:`load_anchors` hands a big truststore to
    OpenSSL: its descriptor (OpenSSL opens :func:`memfd_path`), which the caller closes.

    Raises:
        OSError: no descriptor or memory for the memory file.
    """
    return _memfd_with(_pem_parts(anchors_der), "mtls-anchors")


def memfd_path(fd: int) -> str:
    """The path OpenSSL opens a memory file by."""
    return f"{_PROC_FD}/{fd}"


def load_anchors(ctx: ssl.SSLContext, anchors_der: Sequence[bytes]) -> None:
    """Install trust anchors (DER certificates) into ``ctx``.

    ``load_verify_locations(cadata=...)`` parses the certificates holding the GIL:
    23 ms for the JDK's 144-certificate cacerts, during which every other thread of
    the process waits (request threads, an asyncio loop), once per context a reload
    builds. So a truststore of more than :data:`GIL_FREE_ANCHOR_BYTES` is handed to
    OpenSSL as a ``cafile`` in a memfd (the same certificates as PEM, one line each:
    OpenSSL limits line length in encrypted blocks only), which it reads with the
    GIL released. Small ones, other systems, and a process out of descriptors use
    ``cadata``, as PEM as well, so that both ways read one certificate per anchor.

    Raises:
        ssl.SSLError: OpenSSL refused a certificate. Callers translate it.
    """
    if memfd_available() and sum(map(len, anchors_der)) > GIL_FREE_ANCHOR_BYTES:
        try:
            _load_memfd_cafile(ctx, _pem_parts(anchors_der), "mtls-anchors")
            return
        except ssl.SSLError:
            raise  # a certificate refused: the caller names it
        except OSError:
            # No descriptor or memory for the memory file, or OpenSSL's own open of it
            # failed (the memfd took the last descriptor). Nothing was loaded: the
            # GIL-holding way below.
            pass
    # PEM here too: OpenSSL reads one certificate per PEM block, where DER ``cadata``
    # reads on to whatever follows a certificate. The store readers hand one
    # certificate per anchor; this keeps both ways reading exactly those.
    ctx.load_verify_locations(cadata=b"".join(_pem_parts(anchors_der)).decode("ascii"))


_END_CERT = b"-----END CERTIFICATE-----\n"


def load_cafile_pem(ctx: ssl.SSLContext, pem: bytes) -> None:
    """``load_verify_locations(cafile=...)`` of PEM text held in memory (public data
    only: CRLs, certificates; ``cadata`` takes certificates only).

    Raises:
        ssl.SSLError: OpenSSL refused the text.
        OSError: no descriptor or memory for the memory file (Linux), or no temporary
            file (elsewhere).
    """
    if memfd_available():
        _load_memfd_cafile(ctx, pem, "mtls-cafile")
        return
    with tempfile.NamedTemporaryFile(  # pragma: no cover - not Linux
        prefix="mtls-", suffix=".pem", delete=False
    ) as fh:
        fh.write(pem)
    try:  # pragma: no cover
        ctx.load_verify_locations(cafile=fh.name)
    finally:  # pragma: no cover
        os.unlink(fh.name)


def _load_via_memfd(ctx: ssl.SSLContext, pem: bytes) -> None:
    fd = _memfd_with(pem, "mtls-identity")
    try:
        # OpenSSL may refuse the key: leave no reference to it in this frame's locals
        # (error reporters capture them; the callers' frames are scrubbed by
        # mtls._secret.scrub_tracebacks).
        del pem
        # The chain goes in the same memfd after the key: load_cert_chain reads the
        # first certificate as the leaf and the rest as the extra chain.
        ctx.load_cert_chain(memfd_path(fd))
    finally:
        os.close(fd)


def _load_via_encrypted_tempfile(
    ctx: ssl.SSLContext, pkcs8_der: bytes, chain_der: Sequence[bytes]
) -> None:
    """The key sealed under a one-time passphrase in a 0600 temporary file, removed
    once OpenSSL has read it (systems without memfd: macOS, Windows)."""
    passphrase = secrets.token_bytes(32)
    sealed = _sealed_pem(pkcs8_der, passphrase)
    fd, path = tempfile.mkstemp(prefix="mtls-", suffix=".pem")  # mkstemp creates it 0600
    try:
        with open(fd, "wb", closefd=True) as fh:  # closes fd whatever happens
            fh.write(sealed + _chain_pem(chain_der))
        ctx.load_cert_chain(path, password=passphrase)
    finally:
        # A file another process holds open (Windows: a virus scanner) may outlive
        # this: ciphertext under a passphrase nobody has any more. Its removal failing
        # must not turn a load that worked into an error.
        with contextlib.suppress(OSError):
            os.unlink(path)


# PBES2 (RFC 8018) with PBKDF2-HMAC-SHA256 and AES-256-CBC: what OpenSSL 1.1 and 3
# read in an ENCRYPTED PRIVATE KEY block.
_PBES2 = _der.encode_oid("1.2.840.113549.1.5.13")
_PBKDF2 = _der.encode_oid("1.2.840.113549.1.5.12")
_HMAC_SHA256 = _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.113549.2.9") + b"\x05\x00")
_AES256_CBC = _der.encode_oid("2.16.840.1.101.3.4.1.42")
_SEAL_ROUNDS = 1000  # 0x03e8: a positive INTEGER in two bytes


def _sealed_pem(pkcs8_der: bytes, passphrase: bytes) -> bytes:
    """``pkcs8_der`` as an ENCRYPTED PRIVATE KEY block under ``passphrase``.

    The key's PKCS#8 bytes are sealed as they are, never parsed or re-encoded (a
    re-encoding would turn an RSASSA-PSS key into a plain RSA key that no longer
    matches its certificate, and refuses what cryptography cannot read). 1,000 PBKDF2
    rounds: ``passphrase`` is 256 random bits used once, which no stretching
    strengthens (stretching protects passwords people choose); 1,000 is the floor an
    OpenSSL FIPS provider enforces.
    """
    # Imported here: only systems without memfd come this way.
    from cryptography.hazmat.primitives import padding  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha256", passphrase, salt, _SEAL_ROUNDS, 32)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padder.update(pkcs8_der) + padder.finalize()) + encryptor.finalize()
    seq = functools.partial(_der.encode, _der.SEQUENCE)
    kdf_params = seq(
        _der.encode(_der.OCTET_STRING, salt)
        + _der.encode(_der.INTEGER, _SEAL_ROUNDS.to_bytes(2, "big"))
        + _HMAC_SHA256
    )
    algorithm = seq(
        _PBES2
        + seq(seq(_PBKDF2 + kdf_params) + seq(_AES256_CBC + _der.encode(_der.OCTET_STRING, iv)))
    )
    der = seq(algorithm + _der.encode(_der.OCTET_STRING, sealed))
    body = binascii.b2a_base64(der, newline=False)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + lines
        + b"\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
