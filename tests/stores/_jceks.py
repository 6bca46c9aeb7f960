"""A JCEKS writer for the tests: pyjks reads JCEKS but cannot write it."""

from __future__ import annotations

import os


def build_jceks(
    keys: list[tuple[str, bytes, list[bytes]]],
    certs: list[tuple[str, bytes]],
    store_password: str,
    key_password: str,
    *,
    iterations: int = 1000,
) -> bytes:
    """A JCEKS store as Java's JceKeyStore writes it (pyjks can read but not write JCEKS).

    Key entries are protected with PBEWithMD5AndTripleDES (OID 1.3.6.1.4.1.42.2.19.1);
    ``iterations`` is kept low so that tests stay fast (keytool uses 200,000).
    """
    import hashlib
    import struct
    import time

    from Cryptodome.Cipher import DES3
    from jks import sun_crypto

    from mtls import _der

    def utf(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack(">H", len(raw)) + raw

    def data(raw: bytes) -> bytes:
        return struct.pack(">I", len(raw)) + raw

    stamp = struct.pack(">q", int(time.time() * 1000))
    body = b"\xce\xce\xce\xce" + struct.pack(">II", 2, len(keys) + len(certs))
    for alias, pkcs8, chain in keys:
        salt = os.urandom(8)
        key, iv = sun_crypto._jce_pbe_derive_key_and_iv(key_password, salt, iterations)
        pad = 8 - len(pkcs8) % 8
        ciphertext = DES3.new(key, DES3.MODE_CBC, iv=iv).encrypt(pkcs8 + bytes([pad]) * pad)
        params = _der.encode(
            _der.SEQUENCE,
            _der.encode(_der.OCTET_STRING, salt)
            + _der.encode(_der.INTEGER, iterations.to_bytes(4, "big").lstrip(b"\0")),
        )
        algorithm = _der.encode(_der.SEQUENCE, _der.encode_oid("1.3.6.1.4.1.42.2.19.1") + params)
        envelope = _der.encode(
            _der.SEQUENCE, algorithm + _der.encode(_der.OCTET_STRING, ciphertext)
        )
        body += struct.pack(">I", 1) + utf(alias) + stamp + data(envelope)
        body += struct.pack(">I", len(chain)) + b"".join(utf("X.509") + data(d) for d in chain)
    for alias, der in certs:
        body += struct.pack(">I", 2) + utf(alias) + stamp + utf("X.509") + data(der)
    digest = hashlib.sha1(store_password.encode("utf-16be") + b"Mighty Aphrodite" + body).digest()
    return body + digest
