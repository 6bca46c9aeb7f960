"""The key hand-off to OpenSSL (memfd, the key's base64 on one line) for every key
type and size a keystore may hold: the context it builds completes a mutual-TLS
handshake, and the same identity is refused by a server that does not trust it."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import mtls

KEYS: list[dict[str, Any]] = [
    {"key_type": "RSA", "key_size": 4096},
    {"key_type": "RSA", "key_size": 2048},
    {"key_type": "EC", "curve": "secp256r1"},
    {"key_type": "EC", "curve": "secp521r1"},
    {"key_type": "Ed25519"},
]


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> dict[str, Any]:
    """A whole handshake in memory; returns the client certificate the server saw."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname="server")
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side, out, peer_in in (
            ("client", tls_client, c_out, s_in),
            ("server", tls_server, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            # TLS 1.3: the server's verdict on the client certificate travels after
            # the client finished; one more exchange delivers it.
            tls_client.write(b"x")
            s_in.write(c_out.read())
            assert tls_server.read(1) == b"x"
            return tls_server.getpeercert()
    raise AssertionError("handshake did not finish")


@pytest.fixture(scope="module")
def server() -> mtls.Keystore:
    return mtls.Keystore.generate("server", "CN=server", key_type="EC", san=["DNS:server"])


@pytest.mark.parametrize("spec", KEYS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_every_key_type_is_handed_to_openssl_and_used(
    server: mtls.Keystore, spec: dict[str, Any]
) -> None:
    client = mtls.Keystore.generate("client", "CN=client", **spec)
    trusted_client = mtls.Truststore()
    trusted_client.add("client", client.certificate("client"))
    trusted_server = mtls.Truststore()
    trusted_server.add("server", server.certificate("server"))
    peer = _handshake(
        mtls.server_context(server, trusted_client), mtls.client_context(client, trusted_server)
    )
    assert peer["subject"] == ((("commonName", "client"),),)


@pytest.mark.parametrize("spec", KEYS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_the_same_identity_is_refused_by_a_server_that_does_not_trust_it(
    server: mtls.Keystore, spec: dict[str, Any]
) -> None:
    client = mtls.Keystore.generate("client", "CN=client", **spec)
    stranger = mtls.Keystore.generate("other", "CN=client", **spec)  # same name, other key
    trusted_stranger = mtls.Truststore()
    trusted_stranger.add("other", stranger.certificate("other"))
    trusted_server = mtls.Truststore()
    trusted_server.add("server", server.certificate("server"))
    with pytest.raises(ssl.SSLError, match=r"certificate verify failed|unknown ca"):
        _handshake(
            mtls.server_context(server, trusted_stranger),
            mtls.client_context(client, trusted_server),
        )


def test_a_pkcs8_key_with_too_few_fields_is_a_key_without_a_match(tmp_path: Path) -> None:
    # SEQUENCE { version, AlgorithmIdentifier } and no key: once a bare ValueError.
    from mtls import _der

    key = _der.encode(
        _der.SEQUENCE,
        _der.encode(_der.INTEGER, b"\x00")
        + _der.encode(_der.SEQUENCE, _der.encode_oid("1.2.840.113549.1.1.1")),
    )
    cert = mtls.Keystore.generate("c", "CN=c", key_type="EC").certificate("c")
    path = tmp_path / "bad.pem"
    path.write_bytes(
        b"-----BEGIN PRIVATE KEY-----\n"
        + base64.encodebytes(key)
        + b"-----END PRIVATE KEY-----\n"
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(mtls.KeyEntryError, match="no matching certificate"):
        mtls.Keystore.load(path, None)


def test_a_whole_pkcs8_key_with_its_certificate_loads(tmp_path: Path) -> None:
    source = mtls.Keystore.generate("c", "CN=c", key_type="EC")
    path = tmp_path / "good.pem"
    path.write_bytes(source.to_bytes(None, store_type="PEM"))
    assert mtls.Keystore.load(path, None).key_aliases == ("c",)
