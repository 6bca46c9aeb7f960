"""The online check sees the chain OpenSSL verified, on every supported Python.

The truststore holds only the root; the server sends its leaf and the intermediate
that issued it. Python 3.13 has ``get_verified_chain()``; 3.11 and 3.12 have the same
call on the connection's ``_ssl`` object, which :func:`mtls._revocation.peer_chain`
reads. Before, 3.11/3.12 gave the check only the leaf: its issuer was unknown, and
hard-fail refused even a good server (``undetermined``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import mtls
from mtls import CertificateRevokedError, RevocationChecker, RevocationPolicy
from mtls import _revocation as mtls_revocation
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests.revocation._infra import free_port, ocsp_responder


@dataclass
class Chain:
    root: CA
    inter: CA
    good: IssuedIdentity
    revoked: IssuedIdentity


@pytest.fixture(scope="module")
def chain(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    directory = tmp_path_factory.mktemp("verified-chain")
    root = CA(name="chain root")
    root.ocsp_url = f"http://127.0.0.1:{free_port()}/"  # answers for the intermediate
    inter = root.create_child_ca(
        name="chain intermediate", ocsp_url=f"http://127.0.0.1:{free_port()}/"
    )
    good = inter.issue_cert("localhost")
    revoked = inter.issue_cert("localhost")
    inter.revoke(revoked, reason="keyCompromise")
    port = lambda url: int(url.rsplit(":", 1)[1].strip("/"))  # noqa: E731
    with (
        ocsp_responder(openssl_bin, root, directory / "root", port=port(root.ocsp_url)),
        ocsp_responder(openssl_bin, inter, directory / "inter", port=port(inter.ocsp_url)),
    ):
        yield Chain(root, inter, good, revoked)


def _connect(ctx: mtls_revocation.ssl.SSLContext, port: int) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return mtls_revocation.peer_chain(tls)


def test_the_whole_verified_chain_is_checked_with_a_roots_only_truststore(chain: Chain) -> None:
    checker = RevocationChecker(RevocationPolicy(mode="hard", crl=False))
    ctx = mtls.client_context(truststore=chain.root.truststore(), revocation=checker)
    with MTLSServer(chain.good, require_client_cert=False) as server:
        seen = _connect(ctx, server.port)
    assert seen == [
        chain.good.certificate.public_bytes(mtls_revocation.serialization.Encoding.DER),
        chain.inter.certificate.public_bytes(mtls_revocation.serialization.Encoding.DER),
        chain.root.certificate.public_bytes(mtls_revocation.serialization.Encoding.DER),
    ]
    checked = {(s.serial, s.status) for s in checker.cached()}
    # the leaf (by the intermediate's responder) and the intermediate (by the root's)
    assert checked == {
        (chain.good.serial_number, "good"),
        (chain.inter.certificate.serial_number, "good"),
    }
    # Negative twin: the revoked leaf is refused, in the handshake's own check.
    with MTLSServer(chain.revoked, require_client_cert=False) as server:
        with pytest.raises(CertificateRevokedError) as caught:
            _connect(ctx, server.port)
    assert caught.value.serial == chain.revoked.serial_number


def test_a_pinned_certificate_whose_ca_is_trusted_is_still_checked(chain: Chain) -> None:
    """The backend's own certificate imported beside its CA (keytool -importcert, as
    the seed does): OpenSSL's verified chain ends at that anchor, and anchors were never
    asked about, so a revoked backend was served under hard-fail with no request to
    the responder. Now an anchor another anchor issued is checked against it. The
    twins: the good backend pinned the same way is served, and a certificate pinned
    alone (no issuer among the anchors) stays an anchor, unchecked, as in Java."""
    der = mtls_revocation.serialization.Encoding.DER
    trust = mtls.Truststore()
    trust.add("ca", chain.inter.certificate)
    trust.add("backend", chain.revoked.certificate)
    trust.add("good", chain.good.certificate)
    checker = RevocationChecker(RevocationPolicy(mode="hard", crl=False))
    ctx = mtls.client_context(truststore=trust, revocation=checker)
    with MTLSServer(chain.revoked, require_client_cert=False) as server:
        with pytest.raises(CertificateRevokedError) as caught:
            _connect(ctx, server.port)
    assert caught.value.serial == chain.revoked.serial_number
    with MTLSServer(chain.good, require_client_cert=False) as server:
        assert _connect(ctx, server.port)[0] == chain.good.certificate.public_bytes(der)
    assert (chain.good.serial_number, "good") in {(s.serial, s.status) for s in checker.cached()}
    alone = mtls.Truststore()
    alone.add("backend", chain.revoked.certificate)
    fresh = RevocationChecker(RevocationPolicy(mode="hard", crl=False))
    assert fresh.check([chain.revoked.certificate.public_bytes(der)], alone.anchors_der) == ()
    assert fresh.fetches == 0
