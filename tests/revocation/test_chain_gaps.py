"""What the online check sees when a handshake leaves gaps in the chain: a resumed
session (OpenSSL verifies no chain then), and a certificate OpenSSL accepts but
cryptography cannot read. Real handshakes over loopback; each case with its twin."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

import mtls
from mtls import (
    CertificateRevokedError,
    RevocationPolicy,
    RevocationUnknownError,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    _der,
)
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests._helpers import PASSWORD, whoami, write_identity, write_trust
from tests.revocation._infra import CRLServer

# Every handshake asks again (a status is kept for a microsecond): what a resumed
# connection does after the cached answer has run out.
NO_CACHE = {"cache_delay": 1e-6, "retry_failed_after": 1e-6, "ocsp": False}


@contextmanager
def tls_server(cert_pem: bytes, key_pem: bytes, tmp: Path) -> Iterator[int]:
    """A plain TLS server (session tickets on, as in any stock server) answering b"ok"."""
    (tmp / "server.pem").write_bytes(cert_pem)
    (tmp / "server.key").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            conn, _ = listener.accept()
            if stop.is_set():
                conn.close()
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        with socket.create_connection(listener.getsockname(), timeout=10):
            pass  # wakes the accept() (closing a listener does not, on Linux)
        thread.join(10)
        listener.close()
        assert not thread.is_alive()


def connect(
    ctx: ssl.SSLContext, port: int, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSession | None, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            assert tls.recv(2) == b"ok"
            return tls.session, tls.session_reused


@pytest.fixture
def chain() -> Iterator[tuple[CA, CA, IssuedIdentity, CRLServer]]:
    """root -> intermediate -> server leaf; the intermediate's CRL is served live."""
    crls = CRLServer()
    try:
        root = CA()
        intermediate = root.create_child_ca()
        intermediate.crl_url = crls.url("/intermediate.crl")
        leaf = intermediate.issue_cert("localhost")
        crls.bodies["/intermediate.crl"] = intermediate.crl()
        yield root, intermediate, leaf, crls
    finally:
        crls.close()


def _resume_after_revocation(
    chain: tuple[CA, CA, IssuedIdentity, CRLServer], tmp_path: Path, *, revoke: bool
) -> tuple[mtls.RevocationChecker, int]:
    root, intermediate, leaf, crls = chain
    checker = mtls.RevocationChecker(RevocationPolicy(full_chain=False, **NO_CACHE))  # type: ignore[arg-type]
    ctx = mtls.client_context(None, root.truststore(), revocation=checker)
    with tls_server(leaf.chain_pem, leaf.private_key_pem, tmp_path) as port:
        session, reused = connect(ctx, port)
        assert not reused and session is not None
        asked = checker.fetches
        assert asked == 1
        if revoke:
            intermediate.revoke(leaf, reason="keyCompromise")
            crls.bodies["/intermediate.crl"] = intermediate.crl()
        _, reused = connect(ctx, port, session)  # raises when revoked
        assert reused, "the server did not resume: the case is not exercised"
    return checker, asked


def test_a_resumed_session_is_checked_again(
    chain: tuple[CA, CA, IssuedIdentity, CRLServer], tmp_path: Path
) -> None:
    # The leaf is issued by an intermediate the truststore does not hold: the chain
    # verified by the first handshake is what lets the resumed one find its issuer.
    with pytest.raises(CertificateRevokedError, match="keyCompromise"):
        _resume_after_revocation(chain, tmp_path, revoke=True)


def test_a_resumed_session_of_a_good_server_connects_and_is_asked_about(
    chain: tuple[CA, CA, IssuedIdentity, CRLServer], tmp_path: Path
) -> None:
    checker, asked = _resume_after_revocation(chain, tmp_path, revoke=False)
    assert checker.fetches == asked + 1  # the resumed handshake asked too


def test_a_resumed_session_whose_first_chain_is_forgotten_says_how_to_recover(
    chain: tuple[CA, CA, IssuedIdentity, CRLServer], tmp_path: Path
) -> None:
    """The kept chain is gone (clear(), or 256 other servers since): the leaf alone
    has an issuer outside the truststore, so hard-fail refuses, saying why and what
    to do (not "add the issuing CA", which would not help)."""
    root, _, leaf, _ = chain
    checker = mtls.RevocationChecker(RevocationPolicy(full_chain=False, **NO_CACHE))  # type: ignore[arg-type]
    ctx = mtls.client_context(None, root.truststore(), revocation=checker)
    with tls_server(leaf.chain_pem, leaf.private_key_pem, tmp_path) as port:
        session, _ = connect(ctx, port)
        checker.clear()
        with pytest.raises(RevocationUnknownError, match=r"session was resumed.*without session="):
            connect(ctx, port, session)
        connect(ctx, port)  # the twin: a full handshake connects


# --------------------------------------------------------------------------- unreadable


def _raw(element: _der.TLV) -> bytes:
    return _der.encode(element.tag, element.value)


def _explicit_default_critical(cert: x509.Certificate, signer: CA) -> bytes:
    """``cert`` re-signed with a non-critical extension's ``critical FALSE`` written out: a
    DER rule (DEFAULT values are omitted) OpenSSL does not enforce and cryptography does."""
    outer = _der.read_tlv(cert.public_bytes(Encoding.DER)).children()
    fields = outer[0].children()
    rebuilt = []
    for field in fields:
        if field.tag == 0xA3:  # [3] extensions
            exts = [_raw(e) for e in field.children()[0].children()]
            # the first extension without a critical field (OID, value): say FALSE
            at = next(
                i for i, e in enumerate(field.children()[0].children()) if len(e.children()) == 2
            )
            oid, value = _der.read_tlv(exts[at]).children()
            exts[at] = _der.encode(
                _der.SEQUENCE, _raw(oid) + _der.encode(0x01, b"\x00") + _raw(value)
            )
            field_raw = _der.encode(0xA3, _der.encode(_der.SEQUENCE, b"".join(exts)))
        else:
            field_raw = _raw(field)
        rebuilt.append(field_raw)
    tbs = _der.encode(_der.SEQUENCE, b"".join(rebuilt))
    key = signer.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _der.encode(_der.SEQUENCE, tbs + _raw(outer[1]) + _der.encode(0x03, b"\x00" + signature))


@pytest.fixture
def unreadable_server(tmp_path: Path) -> Iterator[tuple[CA, int, CRLServer]]:
    """A server whose certificate OpenSSL verifies and cryptography cannot read, and
    which its CA has revoked (the CRL is served)."""
    crls = CRLServer()
    try:
        ca = CA(key_type="EC")
        ca.crl_url = crls.url("/ca.crl")
        leaf = ca.issue_cert("localhost")
        der = _explicit_default_critical(leaf.certificate, ca)
        with pytest.raises(ValueError):
            x509.load_der_x509_certificate(der)
        ca.revoke(leaf, reason="keyCompromise")
        crls.bodies["/ca.crl"] = ca.crl()
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        with tls_server(pem, leaf.private_key_pem, tmp_path) as port:
            yield ca, port, crls
    finally:
        crls.close()


def test_a_server_certificate_cryptography_cannot_read_is_refused_in_hard_fail(
    unreadable_server: tuple[CA, int, CRLServer],
) -> None:
    ca, port, _ = unreadable_server
    ctx = mtls.client_context(None, ca.truststore(), revocation=RevocationPolicy(mode="hard"))
    with pytest.raises(RevocationUnknownError, match="cryptography cannot read it"):
        connect(ctx, port)


def test_soft_fail_lets_it_through_and_says_so(
    unreadable_server: tuple[CA, int, CRLServer], caplog: pytest.LogCaptureFixture
) -> None:
    ca, port, _ = unreadable_server
    ctx = mtls.client_context(None, ca.truststore(), revocation=RevocationPolicy(mode="soft"))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        connect(ctx, port)
    assert any("cryptography cannot read it" in r.getMessage() for r in caplog.records)


def test_without_revocation_checks_the_same_server_connects(
    unreadable_server: tuple[CA, int, CRLServer],
) -> None:
    # OpenSSL itself verifies the certificate: only the status is out of reach.
    ca, port, _ = unreadable_server
    connect(mtls.client_context(None, ca.truststore()), port)


# --------------------------------------------------------------------------- a set's view


def test_a_sets_status_counts_its_checks_and_keeps_statuses_per_port(tmp_path: Path) -> None:
    """Two backends on one host name, one revoked: each profile shows its own
    server's status, and the set's counters (status() and the exporters) count both."""
    crls = CRLServer()
    try:
        ca = CA(crl_url=crls.url("/ca.crl"))
        good, revoked = ca.issue_cert("localhost"), ca.issue_cert("localhost")
        ca.revoke(revoked, reason="keyCompromise")
        crls.bodies["/ca.crl"] = ca.crl()
        client = write_identity(ca.issue_cert("client"), tmp_path / "client.jks")
        trust = write_trust(ca, tmp_path / "trust.jks")
        with MTLSServer(good, client_ca=ca) as one, MTLSServer(revoked, client_ca=ca) as two:
            profiles = [
                SSLProfile(
                    servers=(f"localhost:{server.port}",),
                    keystore=StoreConfig(location=client, type="JKS", password=PASSWORD),
                    truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
                )
                for server in (one, two)
            ]
            policy = RevocationPolicy(ocsp=False)
            with SSLProfileSet(profiles, revocation=policy) as gateway:
                for _ in range(2):
                    whoami(gateway.context_for("localhost", one.port), one.port)
                with pytest.raises(CertificateRevokedError):
                    whoami(gateway.context_for("localhost", two.port), two.port)
                status = gateway.status()
                assert dict(status.revocation_checks) == {"good": 2, "revoked": 1}
                by_port = {
                    p.servers[0]: p.revocation.statuses for p in status.profiles if p.revocation
                }
                ((first,),) = [by_port[f"localhost:{one.port}"]]
                ((second,),) = [by_port[f"localhost:{two.port}"]]
                assert (first.status, first.serial) == ("good", good.serial_number)
                assert (second.status, second.serial) == ("revoked", revoked.serial_number)
    finally:
        crls.close()


# --------------------------------------------------------------------------- cross-signed


def _cert(
    subject: str,
    issuer: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    crl_url: str | None = None,
) -> x509.Certificate:
    import datetime as _dt

    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _crl(issuer: str, signer: ec.EllipticCurvePrivateKey, *revoked: int) -> bytes:
    import datetime as _dt

    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .last_update(now - _dt.timedelta(minutes=1))
        .next_update(now + _dt.timedelta(days=1))
    )
    for serial in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(signer, hashes.SHA256()).public_bytes(Encoding.DER)


def test_a_resumed_session_is_checked_on_its_own_truststores_path(tmp_path: Path) -> None:
    """One intermediate, cross-signed by two roots; two contexts share a checker. B
    trusts root2, and its path runs through the cross-certificate the server sends,
    which root2 has revoked since B's session began. A holds the other certificate of
    the intermediate (root1's) in its truststore, and verifies the path through it.
    B's resumed session must be checked on B's path, not on the one A verified last."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("r1", "r2", "i", "leaf")}
    crls = CRLServer()
    try:
        root1 = _cert("root1", "root1", keys["r1"], keys["r1"], ca=True)
        root2 = _cert("root2", "root2", keys["r2"], keys["r2"], ca=True)
        by_root1 = _cert("inter", "root1", keys["i"], keys["r1"], ca=True, crl_url=crls.url("/r1"))
        by_root2 = _cert("inter", "root2", keys["i"], keys["r2"], ca=True, crl_url=crls.url("/r2"))
        leaf = _cert(
            "localhost", "inter", keys["leaf"], keys["i"], ca=False, crl_url=crls.url("/i")
        )
        crls.bodies.update(
            {"/i": _crl("inter", keys["i"]), "/r1": _crl("root1", keys["r1"]),
             "/r2": _crl("root2", keys["r2"])}
        )  # fmt: skip
        checker = mtls.RevocationChecker(RevocationPolicy(**NO_CACHE))  # type: ignore[arg-type]

        def context(*anchors: x509.Certificate) -> ssl.SSLContext:
            trust = mtls.Truststore()
            for number, anchor in enumerate(anchors):
                trust.add_certificate(f"anchor{number}", anchor)
            return mtls.client_context(None, trust, revocation=checker)

        a, b = context(root1, by_root1), context(root2)
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in (leaf, by_root2))
        from cryptography.hazmat.primitives.serialization import (
            NoEncryption,
            PrivateFormat,
        )

        key_pem = keys["leaf"].private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        with tls_server(pem, key_pem, tmp_path) as port:
            session, _ = connect(b, port)  # root2's path, good so far
            crls.bodies["/r2"] = _crl("root2", keys["r2"], by_root2.serial_number)
            connect(a, port)  # root1's path is still good
            with pytest.raises(CertificateRevokedError):
                connect(b, port, session)
            with pytest.raises(CertificateRevokedError):
                connect(b, port)  # the twin: a full handshake on B's path
    finally:
        crls.close()
