"""Hostile files of namesakes: linking certificates by signature is bounded.

Among certificates of one name only a signature tells the issuer. A small file of
namesakes in the worst order made the linking quadratic (a PKCS#12 or PEM keystore's
chain, a replacement's issuing path at reload) or cubic (a CRL file's intermediates)
in their count: seconds to minutes from a file of under 64 KiB (h174). Each such piece
of work now verifies at most three signatures per item and 32, and never more than
``_x509.MAX_SIGNATURE_TRIES`` (``_x509.SignatureBudget``). The tests count the
signatures verified, never the time; each has its twin that real files still link.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import mtls
from mtls import _crl, _der, _entries, _refusals, _x509

NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def linear(items: int) -> int:
    """The most signatures linking ``items`` certificates (and lists) may verify: the
    budget's three per item and 32."""
    return 3 * items + 32


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many signatures were verified (certificates' and CRLs')."""
    count = [0]
    verify, crl_signed = _x509.verify_issued_by, _crl._crl_signed_by

    def counted_verify(child: x509.Certificate, issuer: x509.Certificate) -> None:
        count[0] += 1
        verify(child, issuer)

    def counted_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        count[0] += 1
        return crl_signed(crl, issuer)

    monkeypatch.setattr(_x509, "verify_issued_by", counted_verify)
    monkeypatch.setattr(_crl, "_crl_signed_by", counted_crl)
    _crl._issued.cache_clear()
    yield count
    _crl._issued.cache_clear()


def _namesake_keystore(pairs: int) -> tuple[bytes, bytes]:
    """A PEM key and chain: a leaf issued by "X", then ``pairs`` certificates named X
    (issued by Y) and as many named Y (issued by X), none of which signed anything."""
    leaf_key = _key()
    leaf = _cert("leaf", "X", leaf_key, _key())
    namesakes = [_cert("X", "Y", _key(), _key()) for _ in range(pairs)]
    namesakes += [_cert("Y", "X", _key(), _key()) for _ in range(pairs)]
    key_pem = leaf_key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, b"".join(c.public_bytes(PEM) for c in (leaf, *namesakes))


def test_a_chain_of_namesakes_in_a_keystore_is_linked_within_the_budget(verified):
    key_pem, chain_pem = _namesake_keystore(30)
    store = mtls.Keystore.from_bytes(key_pem + chain_pem, None)
    assert len(store.key_entry()[2]) >= 1  # loads: the leaf, and what it linked by name
    assert 0 < verified[0] <= linear(61)  # 3,600 tries without the budget


def test_namesakes_of_a_real_issuer_still_link_it(verified):
    """The twin: a renewed intermediate beside its old namesake (the old one first in
    the file, and another key): the chain takes the one whose key signed the leaf."""
    root_key, old_key, new_key, leaf_key = _key(), _key(), _key(), _key()
    root = _cert("Root", "Root", root_key, root_key)
    old = _cert("Issuing CA", "Root", old_key, root_key)
    new = _cert("Issuing CA", "Root", new_key, root_key)
    leaf = _cert("leaf", "Issuing CA", leaf_key, new_key)
    key_pem = leaf_key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain_pem = b"".join(c.public_bytes(PEM) for c in (leaf, old, new, root))
    chain = mtls.Keystore.from_bytes(key_pem + chain_pem, None).key_entry()[2]
    assert chain[1] == new.public_bytes(serialization.Encoding.DER)
    assert chain[2] == root.public_bytes(serialization.Encoding.DER)
    assert verified[0] >= 1


def test_a_replacements_issuing_path_through_namesakes_is_bounded(verified):
    """The reload's judgement of a replacement's chain (its issuing path) over a chain
    of namesakes in the worst order: a hostile chain's path ends where the budget does."""
    keys = [_key() for _ in range(61)]
    # leaf <- c1 <- c2 ... <- c60, all CAs named X, written in reverse order.
    chain = [_cert("leaf", "X", keys[0], keys[1])]
    chain += [_cert("X", "X", keys[i], keys[i + 1]) for i in range(1, 60)]
    ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    path = _refusals.issuing_path([ders[0], *reversed(ders[1:])])
    assert 2 <= len(path) < 60
    assert verified[0] <= linear(60)  # about 1,800 without the budget


def test_a_real_chain_written_out_of_order_is_followed_to_its_root(verified):
    """The twin: leaf, root, intermediate (out of order) is followed up to the root."""
    root_key, mid_key, leaf_key = _key(), _key(), _key()
    root = _cert("Root", "Root", root_key, root_key)
    mid = _cert("Mid", "Root", mid_key, root_key)
    leaf = _cert("leaf", "Mid", leaf_key, mid_key)
    ders = [c.public_bytes(serialization.Encoding.DER) for c in (leaf, root, mid)]
    path = _refusals.issuing_path(ders)
    assert [der for der, _ in path] == [ders[0], ders[2], ders[1]]


def _crl_of(issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateRevocationList:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer))
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=7))
        .sign(key, hashes.SHA256())
    )


def _crl_file(intermediates: int) -> tuple[bytes, bytes]:
    """An anchor named X, then ``intermediates`` CAs named X, each issued by the one
    before, written deepest first, and a CRL signed by the deepest: (anchor DER, the
    CRL file's PEM)."""
    keys = [_key() for _ in range(intermediates + 1)]
    anchor = _cert("X", "X", keys[0], keys[0])
    chain = [_cert("X", "X", keys[i], keys[i - 1]) for i in range(1, intermediates + 1)]
    crl = _crl_of("X", keys[-1])
    body = crl.public_bytes(PEM) + b"".join(c.public_bytes(PEM) for c in reversed(chain))
    return anchor.public_bytes(serialization.Encoding.DER), body


def test_a_crl_file_of_namesake_intermediates_is_placed_within_the_budget(verified):
    anchor, body = _crl_file(40)
    crls = mtls.CRLSet.from_bytes(body)
    with pytest.raises(mtls.CRLError, match="was not checked: the CRL files and truststore"):
        crls.check([anchor])
    assert verified[0] <= linear(42)  # over 30,000 tries without it


def test_a_crl_signed_by_an_intermediate_of_its_file_is_still_accepted(verified):
    """The twin: two intermediates of the anchor's name, deepest first, the CRL signed
    by the deepest: placed in two passes, the CRL accepted."""
    anchor, body = _crl_file(2)
    mtls.CRLSet.from_bytes(body).check([anchor])
    kept, others = mtls.CRLSet.from_bytes(body).signed_by([anchor])
    assert len(kept._crls) == 1
    assert others == []
    assert verified[0] >= 2


def test_a_bundle_under_a_renewed_intermediate_links_each_entry_to_its_signer():
    """The twin at scale (the review h175): 160 key entries, half under an intermediate
    and half under its renewed namesake (another key), each entry with its own copy of
    the chain, as mtls and keytool write a PKCS#12 bundle. A budget of one file's
    tries, capped at 128, ran out and linked entries by name alone, to the wrong
    intermediate (h175: 13 to 29 of 80; a served chain peers refuse); the budget grows
    with the file now, and each pair is tried once."""
    from mtls.testing import CA

    root = CA(name="bundle root")
    old, new = root.create_child_ca(name="Issuing CA"), root.create_child_ca(name="Issuing CA")
    store, expected = mtls.Keystore(), {}
    for i in range(160):
        ica = old if i % 2 == 0 else new
        ident = ica.issue_cert(f"host{i}.example")
        store.add_key(
            f"host{i}", ident.private_key, [ident.certificate, ica.certificate, root.certificate]
        )
        expected[f"host{i}"] = ica.certificate.public_bytes(serialization.Encoding.DER)
    loaded = mtls.Keystore.from_bytes(store.to_bytes("pw", store_type="PKCS12"), "pw")
    wrong = [a for a in loaded.key_aliases if loaded.key_entry(a)[2][1] != expected[a]]
    assert wrong == [] and len(loaded.key_aliases) == 160


@pytest.mark.parametrize("intermediates", [False, True])
def test_two_hundred_cas_each_with_its_crl_are_all_accepted(intermediates):
    """The twin (h175): 129 lists or more, each of a CA with its own name, were refused
    as "not signed by any certificate of the truststore" once the budget, capped at 128
    and spent one try per list, ran out. A lone candidate costs no try now."""
    anchors, body = [], b""
    for i in range(200):
        key = _key()
        anchors.append(
            _cert(f"Root {i}", f"Root {i}", key, key).public_bytes(serialization.Encoding.DER)
        )
        if intermediates:  # the list signed by an intermediate that travels in the file
            signer = _key()
            body += _crl_of(f"Issuing {i}", signer).public_bytes(PEM)
            body += _cert(f"Issuing {i}", f"Root {i}", signer, key).public_bytes(PEM)
        else:
            body += _crl_of(f"Root {i}", key).public_bytes(PEM)
    crls = mtls.CRLSet.from_bytes(body)
    crls.check(anchors)
    assert crls.signed_by(anchors)[1] == []


def _rsa_key_with_exponent(bits: int) -> rsa.RSAPrivateKey:
    """An RSA-2048 key whose public exponent has ``bits`` bits (odd, coprime)."""
    numbers = rsa.generate_private_key(65537, 2048).private_numbers()
    p, q = numbers.p, numbers.q
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    e = (1 << (bits - 1)) | 1
    while math.gcd(e, lam) != 1:
        e += 2
    d = pow(e, -1, lam)
    public = rsa.RSAPublicNumbers(e, p * q)
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q), public
    ).private_key()


@pytest.mark.parametrize("bits", [17, 300])
def test_linking_passes_over_an_exponent_no_ca_uses_and_nothing_else_does(bits):
    """An RSA exponent of thousands of bits makes each verification hundreds of times
    as long (3,070 bits: 6.5 ms): files of such keys made linking take a minute within
    the budget (h176). Over 256 bits (the CA/Browser Forum's bound) linking passes
    over such an issuer; every other check verifies it as it is: refusing it there
    let a self-signed replacement in and a revoked certificate through (h177). The
    twin: 65537, linked like any key."""
    from mtls import _readers

    key = _rsa_key_with_exponent(bits)
    issuer = _cert("RSA CA", "RSA CA", key, key)  # type: ignore[arg-type]
    child = _cert("leaf", "RSA CA", _key(), key)  # type: ignore[arg-type]
    _x509.verify_issued_by(child, issuer)  # a signature check as such: verified
    _x509.verify_issued_by(issuer, issuer)  # and self-signed is self-signed
    issuer_der = issuer.public_bytes(serialization.Encoding.DER)
    linked = _readers._verifies(child, issuer_der)
    assert _x509.costly_key(issuer) is (bits > _x509.MAX_RSA_EXPONENT_BITS)
    assert linked is (bits <= _x509.MAX_RSA_EXPONENT_BITS)
    chain = [c.public_bytes(serialization.Encoding.DER) for c in (child, issuer)]
    assert len(_refusals.issuing_path(chain)) == (1 if bits > 256 else 2)


def _certificate_of(size: int) -> bytes:
    key = _key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"big {size}"))
        .issuer_name(_name(f"big {size}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), bytes(size)),
            critical=False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(PEM)
    )


@pytest.mark.parametrize("cache", [_x509._plain, _entries._cn_alias], ids=["_plain", "_cn_alias"])
def test_a_big_certificate_is_not_kept_by_the_caches(cache: _der.BytesCache[..., object]):
    """A store of a certificate bigger than CACHED_BYTES, loaded again and again by a
    reloader, is not kept by the caches of certificate facts (20 loads of 7 MiB
    certificates kept 143 MiB); a usual one is (its twin)."""
    cached = cache
    cached.cache_clear()
    mtls.Truststore.from_bytes(_certificate_of(_der.CACHED_BYTES + 1))
    assert cached.cache_info().currsize == 0
    mtls.Truststore.from_bytes(_certificate_of(100))
    assert cached.cache_info().currsize >= 1
