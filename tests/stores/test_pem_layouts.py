"""PEM files laid out as people make them (h239): a renewed certificate beside the one
it replaced, a certificate twice (``cat key.pem cert.pem fullchain.pem``), one key in
two forms, a comment that quotes a boundary, legacy encrypted keys with the header
spellings OpenSSL reads. Each is read as OpenSSL and stdlib read it, and the
identity chosen is checked by a real handshake, with its negative twin.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import mtls
from mtls.testing import CA, MTLSServer
from tests._helpers import same_key, whoami

PEM = serialization.Encoding.PEM
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def pki() -> tuple[CA, CA]:
    root = CA(name="layout root")
    return root, root.create_child_ca(name="layout issuing")


def _key_pem(identity: mtls.testing.IssuedIdentity, fmt: str = "PKCS8") -> bytes:
    return identity.private_key.private_bytes(
        PEM, getattr(serialization.PrivateFormat, fmt), serialization.NoEncryption()
    )


def _same_key_expired(ca: CA, identity: mtls.testing.IssuedIdentity) -> bytes:
    """The certificate ``identity`` had before its renewal: same key and subject,
    expired yesterday."""
    old = same_key(
        ca, identity, not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)
    )
    return old.public_bytes(PEM)


def test_the_renewed_certificate_is_the_keys_whatever_comes_first(
    tmp_path: Path, pki: tuple[CA, CA]
) -> None:
    """The expired copy first in the file was taken for the key's, and every server
    refused the handshake ("certificate expired")."""
    root, issuing = pki
    client = issuing.issue_cert("client.example")
    expired = _same_key_expired(issuing, client)
    path = tmp_path / "renewed.pem"
    path.write_bytes(
        _key_pem(client) + expired + client.certificate.public_bytes(PEM) + issuing.cert_pem
    )
    store = mtls.Keystore.load(path, None)
    leaf = store.certificate_chain(store.key_aliases[0])[0]
    assert leaf == client.certificate
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        context = mtls.client_context(store, root.truststore())
        assert whoami(context, server.port)["client_cn"] == "client.example"
    # The twin: the expired certificate alone is refused by the same server.
    alone = tmp_path / "expired-only.pem"
    alone.write_bytes(_key_pem(client) + expired + issuing.cert_pem)
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        context = mtls.client_context(mtls.Keystore.load(alone, None), root.truststore())
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            whoami(context, server.port)


def test_of_two_valid_certificates_for_a_key_the_one_issued_last(
    tmp_path: Path, pki: tuple[CA, CA]
) -> None:
    """A reissue keeps the original's end, or ends sooner (a 90-day reissue of a
    one-year certificate): it is the later issued, and it serves (h242), wherever it
    is in the file; of two issued together, the later in the file."""
    _, issuing = pki
    client = issuing.issue_cert("client.example", not_before=NOW - dt.timedelta(days=30))
    reissue = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=reissued.example"))
        .issuer_name(issuing.certificate.subject)
        .public_key(client.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .sign(issuing.private_key, hashes.SHA256())
        .public_bytes(PEM)
    )
    original = client.certificate.public_bytes(PEM)
    path = tmp_path / "reissued.pem"
    for layout in (original + reissue, reissue + original):
        path.write_bytes(_key_pem(client) + layout + issuing.cert_pem)
        store = mtls.Keystore.load(path, None)
        leaf = store.certificate_chain(store.key_aliases[0])[0]
        assert leaf.subject.rfc4514_string() == "CN=reissued.example"


def test_a_certificate_twice_is_one(tmp_path: Path, pki: tuple[CA, CA]) -> None:
    """key + cert + fullchain (cert, intermediate): the leaf's second copy was a
    trusted entry (PEM output refused the store), and a CA 600 times 600 anchors."""
    _, issuing = pki
    client = issuing.issue_cert("client.example")
    leaf = client.certificate.public_bytes(PEM)
    path = tmp_path / "certbot.pem"
    path.write_bytes(_key_pem(client) + leaf + leaf + issuing.cert_pem)
    store = mtls.Keystore.load(path, None)
    assert store.trusted_aliases == ()
    assert len(store.certificate_chain(store.key_aliases[0])) == 2
    assert b"PRIVATE KEY" in store.to_bytes("pem-Pa55", store_type="PEM")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(issuing.cert_pem * 600)
    assert len(mtls.Truststore.load(bundle, None).aliases) == 1
    # Two different certificates stay two.
    bundle.write_bytes(issuing.cert_pem + issuing.root.cert_pem + issuing.cert_pem)
    assert len(mtls.Truststore.load(bundle, None).aliases) == 2


def test_one_key_in_two_forms_is_one_key_entry(tmp_path: Path, pki: tuple[CA, CA]) -> None:
    _, issuing = pki
    client = issuing.issue_cert("client.example", key_type="RSA")
    path = tmp_path / "twice.pem"
    path.write_bytes(
        _key_pem(client) + _key_pem(client, "TraditionalOpenSSL")
        + client.certificate.public_bytes(PEM)
    )  # fmt: skip
    store = mtls.Keystore.load(path, None)
    assert len(store.key_aliases) == 1
    assert mtls.client_context(store).verify_mode is not None  # no alias= needed
    # Two different keys, each with its certificate, stay two.
    other = issuing.issue_cert("other.example", key_type="RSA")
    path.write_bytes(
        _key_pem(client) + client.certificate.public_bytes(PEM)
        + _key_pem(other) + other.certificate.public_bytes(PEM)
    )  # fmt: skip
    assert len(mtls.Keystore.load(path, None).key_aliases) == 2


@pytest.mark.parametrize(
    "comment",
    [
        b"Note: -----BEGIN CERTIFICATE----- below\n",
        b"see the -----BEGIN CERTIFICATE----- line\nand -----END CERTIFICATE----- too\n",
    ],
)
def test_a_comment_quoting_a_boundary_is_text(
    tmp_path: Path, pki: tuple[CA, CA], comment: bytes
) -> None:
    """OpenSSL opens a block only at a BEGIN that starts its line; the comment was
    refused as a truncated block."""
    _, issuing = pki
    path = tmp_path / "commented.pem"
    path.write_bytes(comment + issuing.cert_pem)
    assert list(mtls.Truststore.load(path, None).certificates.values()) == [issuing.certificate]
    stdlib = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stdlib.load_verify_locations(path)
    assert stdlib.cert_store_stats()["x509"] == 1


@pytest.mark.parametrize(
    "damaged",
    [
        # A BEGIN line cut short, and one whose END never comes: still refused.
        lambda pem: pem.replace(b"-----BEGIN CERTIFICATE-----", b"-----BEGIN CERTIF", 1),
        lambda pem: pem[:-100],  # the second block cut short
        lambda pem: pem + b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    ],
)
def test_a_damaged_block_is_still_refused(tmp_path: Path, pki: tuple[CA, CA], damaged) -> None:  # type: ignore[no-untyped-def]
    _, issuing = pki
    path = tmp_path / "damaged.pem"
    path.write_bytes(damaged(issuing.cert_pem + issuing.root.cert_pem))
    with pytest.raises(mtls.KeystoreFormatError, match="no matching END line"):
        mtls.Truststore.load(path, None)


@pytest.mark.parametrize(
    ("proc_type", "dek"),
    [
        (b"Proc-Type:4,ENCRYPTED", b"DEK-Info: AES-256-CBC"),
        (b"Proc-Type:\t4,ENCRYPTED", b"DEK-Info: AES-256-CBC"),
        (b"Proc-Type:  4, ENCRYPTED", b"DEK-Info: AES-256-CBC"),
        (b"Proc-Type: 4,ENCRYPTED", b"DEK-Info: aes-256-cbc"),
    ],
)
def test_legacy_encrypted_key_headers_as_openssl_reads_them(
    tmp_path: Path, pki: tuple[CA, CA], proc_type: bytes, dek: bytes
) -> None:
    """Read as "not encrypted: pass its password" (with the password given), or as a
    cipher cryptography lacks; stdlib's load_cert_chain reads each."""
    _, issuing = pki
    client = issuing.issue_cert("client.example", key_type="RSA")
    key = client.private_key.private_bytes(
        PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"legacy-Pa55"),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in key and b"DEK-Info: AES-256-CBC" in key
    key = key.replace(b"Proc-Type: 4,ENCRYPTED", proc_type).replace(b"DEK-Info: AES-256-CBC", dek)
    path = tmp_path / "legacy.pem"
    path.write_bytes(key + client.certificate.public_bytes(PEM))
    stdlib = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stdlib.load_cert_chain(path, password="legacy-Pa55")
    store = mtls.Keystore.load(path, "legacy-Pa55")
    assert store.certificate_chain(store.key_aliases[0])[0] == client.certificate
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, "not-the-Pa55")


def test_a_byte_order_mark_on_any_block_and_a_begin_after_text(
    tmp_path: Path, pki: tuple[CA, CA]
) -> None:
    """Files saved on Windows, then concatenated, have a byte-order mark before a later
    block: OpenSSL reads it, and so does mtls (h241). A BEGIN line after other text,
    its block following: OpenSSL skips the block, keytool reads it; refused, saying
    so, rather than read one way or the other."""
    _, issuing = pki
    bom = b"\xef\xbb\xbf"
    path = tmp_path / "joined.pem"
    path.write_bytes(bom + issuing.cert_pem + bom + issuing.root.cert_pem)
    assert len(mtls.Truststore.load(path, None).aliases) == 2
    stdlib = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stdlib.load_verify_locations(path)
    assert stdlib.cert_store_stats()["x509"] == 2
    path.write_bytes(issuing.cert_pem + b"see: " + issuing.root.cert_pem)
    with pytest.raises(mtls.KeystoreFormatError, match="line has text before it on its line"):
        mtls.Truststore.load(path, None)


@pytest.mark.parametrize("container", ["PEM", "PKCS12"])
def test_the_role_chooses_among_a_keys_certificates(
    tmp_path: Path, pki: tuple[CA, CA], caplog: pytest.LogCaptureFixture, container: str
) -> None:
    """A key's certificate in service and a newer one issued without clientAuth, in a
    PEM file, or a PKCS#12 whose bags carry no localKeyId (h257: the role reached PEM
    only): read as a client's, the one servers take, with one warning naming both by
    serial; as a server's, or without a role, the newest. A role misspelt is refused.
    A real handshake shows which one a server gets, and the twin refuses the other."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    root, issuing = pki
    current = issuing.issue_cert("client.example")
    newer = same_key(issuing, current, not_before=NOW - dt.timedelta(minutes=30), client_auth=False)
    path = tmp_path / f"gw.{container.lower()}"
    if container == "PEM":
        path.write_bytes(
            _key_pem(current) + current.certificate.public_bytes(PEM) + newer.public_bytes(PEM)
            + issuing.cert_pem
        )  # fmt: skip
    else:
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                None, current.private_key, None,
                [current.certificate, newer, issuing.certificate],
                BestAvailableEncryption(b"Role-Pa55"),
            )
        )  # fmt: skip
    password = None if container == "PEM" else "Role-Pa55"

    def leaf(purpose: str | None) -> x509.Certificate:
        store = mtls.Keystore.load(path, password, purpose=purpose)  # type: ignore[arg-type]
        return store.certificate_chain(store.key_aliases[0])[0]

    caplog.clear()
    with caplog.at_level("WARNING", logger="mtls"):
        assert leaf("client") == current.certificate
        assert leaf("client") == current.certificate  # read again: said once
    said = [r.getMessage() for r in caplog.records if "newest certificate" in r.getMessage()]
    assert len(said) == 1, said
    assert f"serial {newer.serial_number:x}," in said[0]
    assert f"another for the key (serial {current.certificate.serial_number:x}," in said[0]
    assert leaf("server") == newer and leaf(None) == newer
    with pytest.raises(ValueError, match='purpose must be "client", "server" or None'):
        leaf("cilent")
    with pytest.raises(TypeError, match='purpose must be "client", "server" or None'):
        leaf(1)  # type: ignore[arg-type]
    with MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root) as server:
        chosen = mtls.Keystore.load(path, password, purpose="client")
        context = mtls.client_context(chosen, root.truststore())
        assert whoami(context, server.port)["client_cn"] == "client.example"
        # The twin: the newest, which a server refuses.
        context = mtls.client_context(mtls.Keystore.load(path, password), root.truststore())
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            whoami(context, server.port)
