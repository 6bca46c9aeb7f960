"""Random and mutated store bytes: only MTLSError subclasses may come out of the loaders.

Seeds are valid JKS, JCEKS, PKCS#12 (keystore, truststore, BER-framed), PEM and DER
stores; hypothesis flips bits, truncates, inserts and overwrites, and feeds the
result to Keystore.from_bytes and Truststore.from_bytes with the right password,
a wrong one, and none. Whatever loads is then used (repr, certificates, a
context), which must not fail with anything else either.
"""

from __future__ import annotations

import base64
import contextlib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtls
from mtls._entries import fold
from tests._pki import PKI, Identity, issue
from tests.stores._jceks import build_jceks
from tests.stores.test_vectors import ber_framed

PASSWORD = "fuzz-pass"
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
# Mutations find the interesting cases (a curve OID one bit off, an X.509 version of 4):
# they get more examples. Each is a millisecond or two.
MUTATION_SETTINGS = settings(SETTINGS, max_examples=1000)


def _seeds() -> dict[str, bytes]:
    root = issue("fuzz root", None, ca=True)
    leaf = issue("fuzz leaf", root, san=("localhost",))
    ks = leaf.keystore("leaf")
    ks.add_certificate("root", root.cert)
    single = leaf.keystore("leaf")
    ts = mtls.Truststore()
    ts.add("root", root.cert)
    ts.add("leaf", leaf.cert)
    chain_der = [c.public_bytes(serialization.Encoding.DER) for c in leaf.chain]
    return {
        "jks": ks.to_bytes(PASSWORD, store_type="JKS"),
        "jks-trust": ts.to_bytes(PASSWORD, store_type="JKS"),
        "jceks": build_jceks(
            [("leaf", leaf.key_der(), chain_der)], [("root", chain_der[1])], PASSWORD, PASSWORD
        ),
        "pkcs12": single.to_bytes(PASSWORD, store_type="PKCS12"),
        "pkcs12-ber": ber_framed(single.to_bytes(PASSWORD, store_type="PKCS12")),
        "pkcs12-trust": ts.to_bytes(PASSWORD, store_type="PKCS12"),
        "pem": single.to_bytes(PASSWORD, store_type="PEM"),
        "pem-plain": leaf.key_pem() + leaf.chain_pem(),
        "der": chain_der[0],
    }


SEEDS = _seeds()


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return SEEDS


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


PASSWORDS = st.sampled_from([PASSWORD, None, "wrong-pass", ""])


def _exercise(data: bytes, password: str | None) -> None:
    """Load both ways and use what loads; only MTLSError may escape."""
    try:
        ks = mtls.Keystore.from_bytes(data, password)
    except mtls.MTLSError:
        pass
    else:
        repr(ks)
        for alias in ks.aliases:
            try:
                ks.certificate_chain(alias)
                ks.export_certificate(alias, "PEM")
            except mtls.MTLSError:
                pass
        if ks.key_aliases:
            with contextlib.suppress(mtls.MTLSError):
                assert type(mtls.client_context(ks, alias=ks.key_aliases[0])) is ssl.SSLContext
    try:
        ts = mtls.Truststore.from_bytes(data, password)
    except mtls.MTLSError:
        return
    repr(ts)
    ts.certificates  # noqa: B018 - parsing every anchor must not raise
    ts.to_pem()
    with contextlib.suppress(mtls.MTLSError):
        mtls.client_context(truststore=ts)


def test_seeds_are_valid(seeds: dict[str, bytes]) -> None:
    """The control: unmutated seeds load (so mutations start from real stores)."""
    expected = {
        "jks": "JKS",
        "jks-trust": "JKS",
        "jceks": "JCEKS",
        "pkcs12": "PKCS12",
        "pkcs12-ber": "PKCS12",
        "pkcs12-trust": "PKCS12",
        "pem": "PEM",
        "pem-plain": "PEM",
        "der": "DER",
    }
    for name, data in seeds.items():
        assert mtls.detect_format(data) == expected[name]
        assert len(mtls.Truststore.from_bytes(data, PASSWORD)) >= 1
        if name in ("jks", "jceks", "pkcs12", "pkcs12-ber", "pem", "pem-plain"):
            ks = mtls.Keystore.from_bytes(data, PASSWORD)
            assert ks.key_aliases
            mtls.client_context(ks)


@SETTINGS
@given(data=st.binary(max_size=2048), password=PASSWORDS)
def test_random_bytes_only_raise_mtls_errors(data: bytes, password: str | None) -> None:
    _exercise(data, password)


@SETTINGS
@given(
    prefix=st.sampled_from(
        [
            b"\xfe\xed\xfe\xed\x00\x00\x00\x02",  # JKS version 2
            b"\xce\xce\xce\xce\x00\x00\x00\x02",  # JCEKS version 2
            b"\x30\x82",  # a DER SEQUENCE
            b"\x30\x82\x01\x00\x02\x01\x03",  # PKCS#12 PFX version 3
            b"-----BEGIN CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\n",
        ]
    ),
    data=st.binary(max_size=1024),
    password=PASSWORDS,
)
def test_random_bytes_behind_a_magic_only_raise_mtls_errors(
    prefix: bytes, data: bytes, password: str | None
) -> None:
    _exercise(prefix + data, password)


@MUTATION_SETTINGS
@given(data=mutated(), password=PASSWORDS)
def test_mutated_stores_only_raise_mtls_errors(data: bytes, password: str | None) -> None:
    _exercise(data, password)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_single_byte_truncation(name: str) -> None:
    """Deterministic companion: each seed cut at every 7th length."""
    data = SEEDS[name]
    for end in range(0, len(data), 7):
        _exercise(data[:end], PASSWORD)


# --------------------------------------------------------------------------- regressions
# Inputs hypothesis found that once let a foreign exception out, kept as fixed cases.


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n".encode() + lines + f"\n-----END {label}-----\n".encode()


def test_regression_unknown_curve_oid_in_a_pem_key(pki: PKI) -> None:
    """cryptography raised UnsupportedAlgorithm (not a ValueError) for an EC key on curve 0.26..."""
    key_der = pki.client_ec.key_der()
    p256 = bytes.fromhex("06082a8648ce3d030107")
    assert p256 in key_der
    bad_key = key_der.replace(p256, bytes.fromhex("06081a8648ce3d030107"))
    data = _pem("PRIVATE KEY", bad_key) + pki.client_ec.chain_pem()
    with pytest.raises(mtls.MTLSError):
        mtls.Keystore.from_bytes(data, None)
    _exercise(data, None)


def test_regression_unknown_x509_version(pki: PKI) -> None:
    """cryptography raised InvalidVersion (not a ValueError) for a version-4 certificate."""
    der = pki.root.cert.public_bytes(serialization.Encoding.DER)
    v3 = bytes.fromhex("a003020102")
    assert der.count(v3) == 1
    bad = der.replace(v3, bytes.fromhex("a003020103"))
    ts = mtls.Truststore.from_bytes(bad)  # still an anchor for OpenSSL to judge
    assert ts.aliases == ("cert",)
    assert ts.certificates == {}  # cryptography cannot parse it: left out, and logged
    _exercise(bad, None)
    _exercise(_pem("CERTIFICATE", bad), None)


def test_regression_damaged_subject_in_a_pem_chain(pki: PKI) -> None:
    """cryptography parses names lazily: a damaged subject raised ValueError on access."""
    leaf, root = (c.public_bytes(serialization.Encoding.DER) for c in pki.client_ec.chain)
    name = b"client ec"
    assert leaf.count(name) == 1
    bad_leaf = leaf.replace(name, b"client \xff\xfe")  # invalid UTF-8 in a UTF8String
    data = pki.client_ec.key_pem() + _pem("CERTIFICATE", bad_leaf) + _pem("CERTIFICATE", root)
    _exercise(data, None)


# --------------------------------------------------------------------------- round trips

_ALIAS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda text: bool(text.strip())
)


@pytest.fixture(scope="module")
def pool() -> tuple[list[Identity], list[x509.Certificate]]:
    """Identities under a root and an intermediate, and certificates to trust."""
    root = issue("round-trip root", None, ca=True)
    inter = issue("round-trip intermediate", root, ca=True)
    leaves = [issue(f"leaf {i}", inter if i % 2 else root) for i in range(3)]
    return leaves, [root.cert, inter.cert, issue("other root", None, ca=True).cert]


@given(
    keys=st.lists(st.tuples(st.integers(0, 2), _ALIAS), max_size=3),
    trusted=st.lists(st.tuples(st.integers(0, 2), _ALIAS), max_size=3),
    password=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10),
    store_type=st.sampled_from(["JKS", "PKCS12"]),
)
@settings(SETTINGS, max_examples=60)
def test_what_save_writes_load_reads_back(pool, keys, trusted, password, store_type):
    """Any mix of key entries (chains of one or two, some sharing an intermediate) and
    trusted certificates, any aliases and passwords: what save() writes, load() reads
    back, entry for entry (JKS folds aliases to lower case, as keytool does)."""
    leaves, anchors = pool
    store = mtls.Keystore()
    seen: set[str] = set()
    for index, alias in keys:
        if fold(alias) not in seen:
            seen.add(fold(alias))
            store.add_key(alias, leaves[index].key, leaves[index].chain)
    for index, alias in trusted:
        if fold(alias) not in seen:
            seen.add(fold(alias))
            store.add_certificate(alias, anchors[index])
    data = store.to_bytes(password, store_type=store_type)
    back = mtls.Keystore.from_bytes(data, password)
    assert [fold(a) for a in back.aliases] == [fold(a) for a in store.aliases]
    if store_type == "PKCS12":
        assert back.aliases == store.aliases  # PKCS#12 keeps the case
    for alias in store.key_aliases:
        wrote, read = store.certificate_chain(alias), back.certificate_chain(alias)
        assert read[: len(wrote)] == wrote  # a reader may add an issuer it finds, as Java
        assert back.key_entry(alias)[1] == store.key_entry(alias)[1]
    for alias in store.trusted_aliases:
        assert back.certificate(alias) == store.certificate(alias)
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.from_bytes(data, password + "x")
