"""The key hand-off to OpenSSL for every key type and size a keystore may hold, every
way it goes: DER straight into the OpenSSL ``ssl`` uses (where it can be reached), a
memfd (Linux; the key's base64 on one line), and the sealed temporary file of systems
without memfd (Windows), the last two forced here. The context it builds completes a
mutual-TLS handshake, and the same identity is refused by a server that does not
trust it."""

from __future__ import annotations

import base64
import os
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import mtls
from mtls import _build, _keyload
from tests._helpers import direct_identity_available
from tests._helpers import memory_handshake as _handshake
from tests._pki import PKI, issue, mismatched

KEYS: list[dict[str, Any]] = [
    {"key_type": "RSA", "key_size": 4096},
    {"key_type": "RSA", "key_size": 2048},
    {"key_type": "EC", "curve": "secp256r1"},
    {"key_type": "EC", "curve": "secp521r1"},
    {"key_type": "Ed25519"},
]


@pytest.fixture(params=["direct", "memfd", "sealed-tempfile"], autouse=True)
def handoff(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test every way: DER into OpenSSL, the memfd, and the path of systems
    without either."""
    if request.param == "direct" and not direct_identity_available():
        pytest.skip("OpenSSL's key-loading calls are not reachable from this Python")
    if request.param == "memfd" and not _keyload.memfd_available():
        pytest.skip("memfd_create is Linux only")
    if request.param != "direct":
        monkeypatch.setattr(_keyload, "use_identity", lambda *args: False)
    if request.param == "sealed-tempfile":
        monkeypatch.setattr(_keyload, "memfd_available", lambda: False)
        monkeypatch.setattr(_build, "memfd_available", lambda: False)
    return str(request.param)


@pytest.fixture
def memfds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the memory files made while a test runs."""
    made: list[str] = []
    create = os.memfd_create if hasattr(os, "memfd_create") else None

    def recording(name: str, *args: Any) -> int:
        made.append(name)
        assert create is not None
        return create(name, *args)

    if create is not None:
        monkeypatch.setattr(_keyload.os, "memfd_create", recording)
    return made


@pytest.fixture
def temp_files(handoff: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """(mode, content) of every file the hand-off removes, read just before it goes."""
    seen: list[tuple[int, bytes]] = []
    unlink = os.unlink

    def recording(path: Any, *args: Any, **kwargs: Any) -> None:
        seen.append((stat.S_IMODE(os.stat(path).st_mode), Path(path).read_bytes()))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(_keyload.os, "unlink", recording)
    return seen


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


def test_a_pkcs8_key_with_too_few_fields_is_an_unreadable_key(tmp_path: Path) -> None:
    # SEQUENCE { version, AlgorithmIdentifier } and no key: once a bare ValueError, then
    # "no matching certificate" (the certificate was there: the key is what is damaged).
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
    with pytest.raises(mtls.KeystoreFormatError, match="a private key cannot be read"):
        mtls.Keystore.load(path, None)


def test_a_whole_pkcs8_key_with_its_certificate_loads(tmp_path: Path) -> None:
    source = mtls.Keystore.generate("c", "CN=c", key_type="EC")
    path = tmp_path / "good.pem"
    path.write_bytes(source.to_bytes(None, store_type="PEM"))
    assert mtls.Keystore.load(path, None).key_aliases == ("c",)


def test_no_plaintext_key_reaches_a_file_and_the_file_is_gone(
    handoff: str, temp_files: list[tuple[int, bytes]]
) -> None:
    """Without memfd the key goes through a temporary file: 0600, sealed under a
    one-time passphrase (never the key's own bytes, in DER or base64), removed once
    OpenSSL read it. With memfd, no file at all; straight into OpenSSL, not even a
    memory file."""
    client = mtls.Keystore.generate("client", "CN=client", key_type="RSA")
    key_der = client.key_entry()[1]
    mtls.client_context(client, verify=False)
    if handoff in ("direct", "memfd"):
        assert temp_files == []
        return
    ((mode, content),) = temp_files
    assert mode == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in content
    assert b"-----BEGIN PRIVATE KEY-----" not in content
    body = base64.b64encode(key_der[-48:-24])  # the key's private tail, as base64 and DER
    assert key_der[-48:-24] not in content and body not in content


def test_a_key_that_is_not_its_certificates_is_a_key_entry_error(handoff: str) -> None:
    """OpenSSL refuses the pair on either path, and the message names the entry."""
    mine = mtls.Keystore.generate("client", "CN=client", key_type="EC")
    other = ec.generate_private_key(ec.SECP256R1())
    swapped = mismatched(other, [mine.certificate("client")], alias="client")
    with pytest.raises(mtls.KeyEntryError, match="'client'"):
        mtls.client_context(swapped, verify=False)
    mtls.client_context(mine, verify=False)  # the twin: its own key


def test_an_rsa_pss_key_keeps_its_algorithm(tmp_path: Path, handoff: str) -> None:
    """The key's PKCS#8 bytes are sealed as they are. Re-encoded by cryptography, an
    RSASSA-PSS key became a plain RSA key OpenSSL would not pair with its RSASSA-PSS
    certificate: the path without memfd refused such stores outright."""
    key = tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(key)], check=True,
                       capture_output=True)  # fmt: skip
        cert = subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(key), "-subj",
                               "/CN=pss", "-days", "30"], check=True,
                              capture_output=True).stdout  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no openssl command")
    ks = mtls.Keystore.from_bytes(key.read_bytes() + cert, None)
    ctx = mtls.client_context(ks, verify=False)
    assert isinstance(ctx, ssl.SSLContext)


def test_the_identity_goes_through_a_memory_file_only_when_not_straight_in(
    handoff: str, memfds: list[str]
) -> None:
    """Straight into OpenSSL: no memory file is made. The twins: the memfd way makes
    one (the test can see it), and so does a refusal of the direct way (the file way
    then says why)."""
    if handoff == "sealed-tempfile":
        pytest.skip("no memory file on this path")
    client = mtls.Keystore.generate("client", "CN=client", key_type="EC")
    mtls.client_context(client, verify=False)
    assert memfds == ([] if handoff == "direct" else ["mtls-identity"])
    memfds.clear()
    other = ec.generate_private_key(ec.SECP256R1())
    swapped = mismatched(other, [client.certificate("client")], alias="client")
    with pytest.raises(mtls.KeyEntryError, match="KEY_VALUES_MISMATCH"):
        mtls.client_context(swapped, verify=False)
    assert memfds == ["mtls-identity"]


def test_the_chain_is_sent_as_the_server_needs_it(
    pki: PKI, server: mtls.Keystore, handoff: str
) -> None:
    """The intermediate travels with the leaf: a server that trusts only the root
    accepts the client. The twin without the intermediate in the
    keystore is refused, so the test sees what is sent."""
    intermediate = issue("mtls intermediate", pki.root, ca=True)
    client = issue("client via intermediate", intermediate)
    served = mtls.server_context(server, pki.truststore())  # the root only
    trust = mtls.Truststore()
    trust.add("server", server.certificate("server"))
    peer = _handshake(served, mtls.client_context(client.keystore(), trust))
    assert (("commonName", "client via intermediate"),) in peer["subject"]
    leaf_only = mtls.Keystore()
    leaf_only.add_key("client", client.key, client.chain[:1])
    with pytest.raises(ssl.SSLError, match=r"certificate verify failed|unknown ca"):
        _handshake(served, mtls.client_context(leaf_only, trust))
