"""What OpenSSL read of a truststore's anchors serves the next context built from the
same Truststore (mtls._context._READ_ANCHORS, mtls._openssl.Anchors): that context
trusts exactly what a fresh read trusts, a truststore changed since is read again (an
anchor removed is no longer trusted), the references go with the truststore, and
many threads building at once get whole stores. Handshakes are real, in memory."""

from __future__ import annotations

import copy
import gc
import pickle
import ssl
import threading
import weakref

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import mtls
from mtls import _context, _openssl
from mtls.testing import CA
from tests._helpers import direct_identity_available, memory_handshake

pytestmark = pytest.mark.skipif(
    not direct_identity_available(), reason="OpenSSL's calls are not reachable here"
)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A whole handshake in memory, to localhost (ssl.SSLError when a side refuses)."""
    memory_handshake(server, client, "localhost")


@pytest.fixture(scope="module")
def cas() -> list[CA]:
    return [CA(name=f"anchor {n}") for n in range(4)]


@pytest.fixture(autouse=True)
def forget() -> None:
    _context._READ_ANCHORS.clear()


def _trust(cas: list[CA]) -> mtls.Truststore:
    store = mtls.Truststore()
    for n, ca in enumerate(cas):
        store.add(f"ca{n}", ca.certificate)
    return store


def _server(ca: CA) -> ssl.SSLContext:
    """A server ``ca`` issued for localhost, asking no client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx


def _anchors(ctx: ssl.SSLContext) -> list[bytes]:
    return sorted(ctx.get_ca_certs(binary_form=True))


def test_a_second_context_trusts_exactly_what_the_first_read(cas: list[CA]) -> None:
    """The second context from a truststore gets the certificates OpenSSL read for the
    first (and the store is no fuller or emptier than a fresh read's); it verifies a
    server its anchors issued, and refuses one from a CA it does not hold."""
    trust = _trust(cas[:3])
    first = mtls.client_context(truststore=trust)
    assert trust in _context._READ_ANCHORS
    second = mtls.client_context(truststore=trust)
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    fresh.load_verify_locations(cadata=trust.to_pem().decode())
    assert _anchors(second) == _anchors(first) == _anchors(fresh) == sorted(trust.anchors_der)
    assert second.cert_store_stats() == first.cert_store_stats() == fresh.cert_store_stats()
    _handshake(_server(cas[1]), second)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(_server(cas[3]), second)  # cas[3] is not in the truststore


def test_the_second_context_does_not_read_the_certificates_again(
    cas: list[CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read is kept and used: OpenSSL is handed the certificates once for two
    contexts. The twin: a truststore changed since is handed over again."""
    from mtls import _keyload

    reads: list[int] = []
    real = _keyload.load_anchors

    def counted(ctx: ssl.SSLContext, anchors: tuple[bytes, ...]) -> None:
        reads.append(len(anchors))
        real(ctx, anchors)

    monkeypatch.setattr(_keyload, "load_anchors", counted)
    trust = _trust(cas[:2])
    mtls.client_context(truststore=trust)
    mtls.client_context(truststore=trust)
    assert reads == [2]
    trust.add("ca2", cas[2].certificate)
    mtls.client_context(truststore=trust)
    assert reads == [2, 3]


def test_a_truststore_past_the_limit_is_read_by_each_context(
    cas: list[CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past KEPT_ANCHORS_MAX, putting the kept certificates in would hold the GIL
    longer than reading them with it released: each context reads them, nothing is
    kept. The twin: at the limit, the read is kept."""
    trust = _trust(cas[:2])
    monkeypatch.setattr(_context, "KEPT_ANCHORS_MAX", 1)
    ctx = mtls.client_context(truststore=trust)
    assert trust not in _context._READ_ANCHORS
    assert _anchors(ctx) == sorted(trust.anchors_der)
    monkeypatch.setattr(_context, "KEPT_ANCHORS_MAX", 2)
    mtls.client_context(truststore=trust)
    assert trust in _context._READ_ANCHORS


def test_what_is_kept_is_the_truststore_s_certificates_and_no_crl(cas: list[CA]) -> None:
    """CRLs go into the same OpenSSL store after the anchors: none is kept, and a
    context built without them after one built with them holds none."""
    trust = _trust(cas[:2])
    crls = mtls.CRLSet.from_bytes(cas[0].crl())
    with_crls = mtls.client_context(truststore=trust, crls=crls)
    assert with_crls.cert_store_stats()["crl"] == 1
    anchors = _context._READ_ANCHORS[trust][1]
    assert len(anchors) == 2
    without = mtls.client_context(truststore=trust)
    assert without.cert_store_stats() == {"x509": 2, "crl": 0, "x509_ca": 2}


def test_each_kept_reference_is_released_once(cas: list[CA]) -> None:
    """An Anchors object gives back the reference it holds on each certificate when
    it goes (and only then)."""
    ctx = mtls.client_context(truststore=_trust(cas[:3]))
    anchors = _openssl.anchors_of(ctx)
    assert anchors is not None
    freed: list[int] = []
    real = anchors._free

    def counted(pointer: int) -> None:
        freed.append(pointer)
        real(pointer)

    anchors._free = counted
    assert freed == []
    del anchors
    gc.collect()
    assert len(freed) == 3
    assert len(set(freed)) == 3
    assert ctx.cert_store_stats()["x509"] == 3  # the context's own references stay


def test_a_truststore_changed_since_is_read_again(cas: list[CA]) -> None:
    """An anchor added is trusted by the next context, and one deleted is not: the
    kept read is for the anchors it was made from, no others."""
    trust = _trust(cas[:2])
    mtls.client_context(truststore=trust)
    trust.add("ca3", cas[3].certificate)
    grown = mtls.client_context(truststore=trust)
    _handshake(_server(cas[3]), grown)
    trust.remove("ca0")
    shrunk = mtls.client_context(truststore=trust)
    assert _anchors(shrunk) == sorted(trust.anchors_der)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(_server(cas[0]), shrunk)
    _handshake(_server(cas[1]), shrunk)  # the twin: still an anchor


def test_a_server_context_shares_its_client_cas_too(cas: list[CA]) -> None:
    """The client CAs a server context verifies clients with come from the same read:
    a client from one of them is accepted by the second server context, one from
    another CA is refused."""
    trust = _trust(cas[:2])
    identity = cas[0].issue_cert("localhost").keystore()
    mtls.server_context(identity, trust)
    server = mtls.server_context(identity, trust)
    assert _anchors(server) == sorted(trust.anchors_der)
    server_trust = mtls.Truststore()
    server_trust.add("ca", cas[0].certificate)

    def client(ca: CA) -> ssl.SSLContext:
        return mtls.client_context(ca.issue_cert("client").keystore(), server_trust)

    _handshake(server, client(cas[1]))
    with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_VERIFY_FAILED|UNKNOWN_CA"):
        _handshake(server, client(cas[2]))


def test_the_read_goes_with_its_truststore() -> None:
    """Kept as long as the Truststore is, not longer: the references are released."""
    trust = CA(name="short-lived").truststore()
    mtls.client_context(truststore=trust)
    assert len(_context._READ_ANCHORS) == 1
    alive = weakref.ref(trust)
    del trust
    gc.collect()
    assert alive() is None
    assert len(_context._READ_ANCHORS) == 0


def test_the_read_is_not_copied_or_pickled(cas: list[CA]) -> None:
    """Its references are this process's and are released once: a copy is the same
    object, and a pickle is refused (a pointer in another process would crash it)."""
    trust = _trust(cas[:1])
    ctx = mtls.client_context(truststore=trust)
    anchors = _openssl.anchors_of(ctx)
    assert anchors is not None and len(anchors) == 1
    assert copy.copy(anchors) is anchors
    assert copy.deepcopy(anchors) is anchors
    with pytest.raises(TypeError, match="this process's OpenSSL objects"):
        pickle.dumps(anchors)


def test_where_the_store_cannot_be_filled_each_context_reads_its_anchors(
    cas: list[CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal to put the kept certificates in (out of memory) leaves the context to
    read them the usual way: it still trusts what it must (and refuses the rest)."""
    trust = _trust(cas[:2])
    mtls.client_context(truststore=trust)
    monkeypatch.setattr(_openssl, "add_anchors", lambda ctx, anchors: False)
    ctx = mtls.client_context(truststore=trust)
    assert _anchors(ctx) == sorted(trust.anchors_der)
    _handshake(_server(cas[0]), ctx)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(_server(cas[2]), ctx)


def test_a_duplicate_anchor_is_one_certificate_both_ways(cas: list[CA]) -> None:
    """The same certificate under two aliases is one in OpenSSL's store, read or put in."""
    trust = _trust(cas[:1])
    trust.add("again", cas[0].certificate)
    first = mtls.client_context(truststore=trust)
    second = mtls.client_context(truststore=trust)
    assert first.cert_store_stats()["x509"] == second.cert_store_stats()["x509"] == 1


@pytest.fixture(scope="module")
def many_cas() -> list[CA]:
    """Enough CAs for more than 32 KiB of certificates: a first read goes to OpenSSL
    as a cafile, with the GIL released (mtls._keyload.GIL_FREE_ANCHOR_BYTES)."""
    return [CA(name=f"many {n}", key_type="RSA") for n in range(48)]


def test_threads_building_from_one_truststore_get_whole_stores(many_cas: list[CA]) -> None:
    """Eight threads build contexts from one truststore at once, its first read with
    the GIL released, while others come and go (their reads released under the
    builders' feet): every context holds every anchor, and the process lives."""
    from mtls import _keyload

    trust = _trust(many_cas)
    assert sum(map(len, trust.anchors_der)) > _keyload.GIL_FREE_ANCHOR_BYTES
    cas = many_cas
    expected = sorted(trust.anchors_der)
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def build() -> None:
        try:
            start.wait()
            for n in range(15):
                ctx = mtls.client_context(truststore=trust)
                assert _anchors(ctx) == expected
                if n % 5 == 0:
                    mtls.client_context(truststore=_trust(cas[:2]))  # read, then dropped
                    gc.collect()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def test_a_store_holding_more_than_the_anchors_is_not_kept(
    cas: list[CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is kept is trusted by every later context from the truststore: a store that
    holds anything besides its anchors when they are read (a certificate from
    elsewhere) is not kept, and the next context trusts only the truststore. The twin:
    the same build without the extra certificate is kept."""
    from mtls import _keyload

    real = _keyload.load_anchors

    def with_extra(ctx: ssl.SSLContext, anchors: tuple[bytes, ...]) -> None:
        real(ctx, anchors)
        ctx.load_verify_locations(cadata=cas[3].certificate.public_bytes(Encoding.DER))

    trust = _trust(cas[:2])
    monkeypatch.setattr(_keyload, "load_anchors", with_extra)
    mtls.client_context(truststore=trust)
    assert trust not in _context._READ_ANCHORS
    monkeypatch.undo()
    clean = mtls.client_context(truststore=trust)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(_server(cas[3]), clean)
    assert trust in _context._READ_ANCHORS
