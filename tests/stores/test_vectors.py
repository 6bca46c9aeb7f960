"""Other projects' store test vectors (tests/stores/data/<project>/README.md says which).

The oracles: keytool's listing (the aliases below are what ``keytool -list`` shows,
case aside: the JDK's PKCS12KeyStore lowercases them) and cryptography's PKCS#12
loader (the same key and certificates).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
    load_pem_private_key,
    pkcs12,
)
from cryptography.x509 import load_pem_x509_certificate

import mtls
import mtls._pkcs12
from mtls import Keystore, KeystoreFormatError, Truststore, WrongPasswordError, _der
from mtls._der import DERError, encode, to_der
from mtls.testing import CA, MTLSServer
from tests._helpers import whoami
from tests.stores.test_jks_hostile import needs_twofish

DATA = Path(__file__).parent / "data"

# (file, password, the key entry's alias, the other friendlyName in the file, chain length)
P12_VECTORS = [
    # Windows: MAC keyed with the NULL password; key and certificate bags named apart.
    (
        "golang/windows-azure-tools.p12",
        "",
        "{B4A4FEB0-A18A-44BB-B5F2-491EF152BA16}",
        "Paul's Playground-10-2-2014-credentials\0",
        1,
    ),
    # The empty password as None; the key bag named "6BC162DA\0", the certificate otherwise.
    ("cryptography/no-password.p12", None, "6BC162DA\0", "cryptography CA", 1),
    # BER: indefinite lengths and a segmented OCTET STRING; a chain of three.
    (
        "bouncycastle/ber-indefinite.p12",
        "hello world",
        "David G. Hook's VeriSign, Inc. ID",
        None,
        3,
    ),
    # BER, and neither friendlyName nor localKeyId: the JDK numbers the entry.
    ("bouncycastle/ber-no-friendly-name.p12", "sschette12", "1", None, 1),
]
IDS = [vector[0].split("/")[1] for vector in P12_VECTORS]


def oracle(path: Path, password: str | None) -> tuple[bytes, list[bytes]]:
    """cryptography's reading: the PKCS#8 key and every certificate's DER."""
    with warnings.catch_warnings():  # "could not be parsed as DER, falling back to BER"
        warnings.simplefilter("ignore", UserWarning)
        loaded = pkcs12.load_pkcs12(
            path.read_bytes(), None if password is None else password.encode()
        )
    assert loaded.key is not None and loaded.cert is not None
    key = loaded.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    certs = [loaded.cert.certificate, *(c.certificate for c in loaded.additional_certs)]
    return key, [cert.public_bytes(Encoding.DER) for cert in certs]


@pytest.mark.parametrize(
    ("name", "password", "alias", "other_name", "length"), P12_VECTORS, ids=IDS
)
def test_a_p12_vector_reads_as_keytool_and_cryptography_read_it(
    name: str, password: str | None, alias: str, other_name: str | None, length: int
) -> None:
    path = DATA / name
    key, certs = oracle(path, password)
    loaded = Keystore.load(path, password)
    listed = Keystore.inspect(path, password)
    trusted = Truststore.load(path, password)
    # load, inspect and the truststore name the entry alike: by the key bag, as keytool.
    assert loaded.key_aliases == listed.key_aliases == trusted.aliases == (alias,)
    assert other_name not in loaded.aliases + listed.aliases + trusted.aliases
    found, pkcs8, chain = loaded.key_entry()
    assert (found, len(chain)) == (alias, length)
    assert load_pkcs8(pkcs8) == load_pkcs8(key)
    assert set(chain) <= set(certs) and chain[0] == certs[0]
    assert [c.public_bytes(Encoding.DER) for c in listed.certificate_chain(alias)] == list(chain)
    assert trusted.anchors_der == (chain[0],)
    # Declared as PKCS12 with a password, its MAC is found (in BER too) and checked.
    assert Keystore.load(path, password, store_type="PKCS12").key_aliases == (alias,)


def load_pkcs8(der: bytes) -> bytes:
    """The key re-encoded by OpenSSL: two PKCS#8 encodings of one key compare equal."""
    key = load_der_private_key(der, None)
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


@pytest.mark.parametrize("name", [vector[0] for vector in P12_VECTORS], ids=IDS)
def test_a_p12_vector_with_a_wrong_password_is_a_wrong_password(name: str) -> None:
    path = DATA / name
    for read in (Keystore.load, Keystore.inspect, Truststore.load):
        with pytest.raises(WrongPasswordError, match="wrong store password") as info:
            read(path, "not-it")
        assert str(path) in str(info.value) and "not-it" not in str(info.value)


def test_a_vector_identity_handshakes() -> None:
    """The EC key of cryptography's vector, as a client, against a server trusting its leaf."""
    client = Keystore.load(DATA / "cryptography/no-password.p12", None)
    ca = CA(name="vector server CA")
    anchors = Truststore()
    anchors.add("client", client.certificate("6BC162DA\0"))
    ctx = mtls.client_context(client, ca.truststore())
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=anchors) as server:
        assert whoami(ctx, server.port)["client_cn"] == "cryptography CA"
    # The twin: a server that trusts another CA refuses it.
    with (
        MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=CA(name="other")) as other,
        pytest.raises((OSError, ConnectionError)),
    ):
        whoami(ctx, other.port)


# --- BER ------------------------------------------------------------------------------------


def test_ber_is_rewritten_as_der() -> None:
    octets = encode(0x04, b"abc") + encode(0x04, b"def")
    ber = b"\x30\x80" + b"\x24\x80" + octets + b"\0\0" + encode(0x02, b"\x05") + b"\0\0"
    assert to_der(ber) == encode(0x30, encode(0x04, b"abcdef") + encode(0x02, b"\x05"))
    der = encode(0x30, encode(0x04, b"\x30\x80\0\0"))  # BER-looking bytes inside a primitive
    assert to_der(der) is der


@pytest.mark.parametrize(
    ("ber", "message"),
    [
        (b"\x30\x80" + encode(0x02, b"\x01"), "without its end"),
        (b"\x04\x80abc\0\0", "indefinite length on a primitive"),
        (b"\x30\x80" * 40 + b"\0\0" * 40, "nested more than 32 levels"),  # the limit
        (encode(0x30, b"\x30\x00" * 200_001), "more than 200,000 BER elements"),  # the other
        (b"\x24\x80" + encode(0x02, b"\x01") + b"\0\0", "is not of tag 0x04"),
        (b"\x30\x80\0\0\x05\x00", "trailing bytes"),
    ],
    ids=["unterminated", "primitive", "deep", "wide", "foreign-segment", "trailing"],
)
def test_broken_ber_is_a_der_error(ber: bytes, message: str) -> None:
    with pytest.raises(DERError, match=message):
        to_der(ber)


def ber_framed(pfx: bytes) -> bytes:
    """A DER PKCS#12 re-framed as BER, as Bouncy Castle writes it: indefinite lengths and
    the authSafe OCTET STRING in 64-byte segments (its MAC, over the octets, still holds)."""
    version, auth_safe, mac_data = _der.read_single(pfx, _der.SEQUENCE).children()
    oid, explicit = auth_safe.children()
    octets = explicit.children()[0].expect(_der.OCTET_STRING).value
    segments = b"".join(encode(0x04, octets[at : at + 64]) for at in range(0, len(octets), 64))

    def indefinite(tag: int, body: bytes) -> bytes:
        return bytes([tag, 0x80]) + body + b"\0\0"

    info = indefinite(
        0x30, encode(_der.OID, oid.value) + indefinite(0xA0, indefinite(0x24, segments))
    )
    return indefinite(
        0x30, encode(_der.INTEGER, version.value) + info + encode(_der.SEQUENCE, mac_data.value)
    )


@pytest.mark.parametrize("store_type", ["keystore", "truststore"])
def test_our_own_p12_framed_as_ber_reads_the_same(store_type: str) -> None:
    identity = CA(name="ber CA").issue_cert("ber", key_type="EC")
    store: Keystore | Truststore = identity.keystore("ber")
    if store_type == "truststore":
        store = Truststore()
        store.add("anchor", identity.cert_pem)
    der = store.to_bytes("changeit", store_type="PKCS12")
    ber = ber_framed(der)
    assert ber != der and ber[:2] == b"\x30\x80"
    read = Keystore.from_bytes if store_type == "keystore" else Truststore.from_bytes
    assert read(ber, "changeit").aliases == read(der, "changeit").aliases == store.aliases
    if store_type == "keystore":
        assert Keystore.from_bytes(ber, "changeit").key_entry()[1:] == store.key_entry()[1:]
    with pytest.raises(WrongPasswordError):  # the twin: the MAC still guards it
        read(ber, "not-it")
    # Bytes after a BER PFX are ignored, as after a DER one (keytool and OpenSSL).
    assert read(ber + b"\r\n", "changeit").aliases == store.aliases


def test_only_a_ber_p12_is_rewritten(monkeypatch: pytest.MonkeyPatch) -> None:
    """DER files pay nothing for BER: no layer of theirs is walked or rewritten."""
    rewritten: list[int] = []

    def counting(data: bytes, **options: bool) -> bytes:
        rewritten.append(len(data))
        return to_der(data, **options)

    monkeypatch.setattr(_der, "to_der", counting)
    Keystore.load(DATA / "golang/windows-azure-tools.p12", "")
    assert rewritten == []
    Keystore.load(DATA / "bouncycastle/ber-indefinite.p12", "hello world")
    assert rewritten  # the twin: the BER file's layers are


@pytest.mark.parametrize("cut", [60, 400, -2])
def test_a_damaged_ber_p12_is_a_format_error(cut: int, tmp_path: Path) -> None:
    data = (DATA / "bouncycastle/ber-indefinite.p12").read_bytes()
    path = tmp_path / "cut.p12"
    path.write_bytes(data[:cut])
    with pytest.raises(
        KeystoreFormatError, match=r"cut\.p12: damaged or unsupported PKCS#12"
    ) as info:
        Keystore.load(path, "hello world")
    assert "hello world" not in str(info.value)


# --- UBER -------------------------------------------------------------------------------------


@needs_twofish
def test_bouncy_castles_version_2_uber_reads() -> None:
    path = DATA / "bouncycastle/version2.uber"
    store = Keystore.load(path, "fredfred")
    assert store.store_type == "UBER"
    assert list(store.secret_keys) == ["android"]
    with pytest.raises(WrongPasswordError, match="wrong store password"):
        Keystore.load(path, "not-it")


# --- a key without its certificate (openssl pkcs12 -export -nocerts) ---------------------------


def test_a_key_without_its_certificate_names_the_entry_as_keytool_and_the_fix(
    tmp_path: Path,
) -> None:
    identity = CA(name="keyless CA").issue_cert("keyless", key_type="EC")
    key = load_pem_private_key(identity.private_key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = load_pem_x509_certificate(identity.cert_pem)
    seal = BestAvailableEncryption(b"changeit")
    keyless, whole = tmp_path / "keyless.p12", tmp_path / "whole.p12"
    keyless.write_bytes(pkcs12.serialize_key_and_certificates(None, key, None, None, seal))
    whole.write_bytes(pkcs12.serialize_key_and_certificates(None, key, cert, None, seal))
    # keytool lists it as entry "1" with a chain of length 0; TLS cannot use it.
    with pytest.raises(KeystoreFormatError, match=r"key entry '1' has no certificate") as info:
        Keystore.load(keyless, "changeit")
    assert "keyless.p12" in str(info.value) and "export the store again" in str(info.value)
    # The twin: the same key with its certificate is entry "1".
    assert Keystore.load(whole, "changeit").key_aliases == ("1",)


# --- PEM files that hold no certificate or key -------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (["EC PARAMETERS", "X509 CRL"], r"\(only EC PARAMETERS, X509 CRL\): point to the file"),
        (["A", "B", "C", "D"], r"\(only A, B, C, \.\.\.\): point to the file"),
    ],
    ids=["parameters-and-crl", "many"],
)
def test_a_pem_file_without_certificates_says_what_it_holds(
    blocks: list[str], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "other.pem"
    path.write_text("".join(f"-----BEGIN {b}-----\nAAAA\n-----END {b}-----\n" for b in blocks))
    for read in (Keystore.load, Truststore.load):
        with pytest.raises(KeystoreFormatError, match=r"other\.pem: no certificate .*" + message):
            read(path, None)
    # The twin: a certificate next to the same blocks is read.
    cert = CA(name="pem twin").cert_pem.decode()
    path.write_text(path.read_text() + cert)
    assert len(Truststore.load(path).aliases) == 1


# --- how many bags one PKCS#12 file may hold -----------------------------------------------------


def tiny_bags_p12(count: int) -> bytes:
    """A MAC-less PKCS#12 of ``count`` unknown (skipped) bags: 10 bytes each."""
    bag = encode(0x30, encode(_der.OID, b"\x2a\x03") + encode(0xA0, encode(_der.NULL, b"")))
    data_oid = _der.encode_oid("1.2.840.113549.1.7.1")
    info = encode(0x30, data_oid + encode(0xA0, encode(0x04, encode(0x30, bag * count))))
    auth_safe = encode(0xA0, encode(0x04, encode(0x30, info)))
    return encode(0x30, encode(0x02, b"\x03") + encode(0x30, data_oid + auth_safe))


def test_a_p12_of_too_many_bags_is_refused_as_it_is_read() -> None:
    """700,000 bags used to take 11 s to skip; the file is refused at bag 50,000."""
    with pytest.raises(KeystoreFormatError, match=r"more than 50,000 bags and contents"):
        Truststore.from_bytes(tiny_bags_p12(700_000), None)
    # The twin: a file of many bags (but under the limit) is read to its end.
    with pytest.raises(KeystoreFormatError, match="holds no certificates"):
        Truststore.from_bytes(tiny_bags_p12(1_000), None)


def test_the_bag_limit_counts_contents_and_bags(monkeypatch: pytest.MonkeyPatch) -> None:
    anchors = Truststore()
    for name in ("a", "b"):
        anchors.add(name, CA(name=f"limit {name}").cert_pem)
    data = anchors.to_bytes("changeit", store_type="PKCS12")
    items = 1 + 2  # one encrypted ContentInfo holding the two certificate bags
    monkeypatch.setattr(mtls._pkcs12, "MAX_SAFE_ITEMS", items)
    assert Truststore.from_bytes(data, "changeit").aliases == ("a", "b")
    monkeypatch.setattr(mtls._pkcs12, "MAX_SAFE_ITEMS", items - 1)
    with pytest.raises(KeystoreFormatError, match=r"more than 2 bags and contents"):
        Truststore.from_bytes(data, "changeit")
