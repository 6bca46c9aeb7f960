"""A server that speaks first (SMTP, FTP, a banner), read over asyncio through an mtls
context with a revocation policy: the owed check ran on the first write only, so a
client that reads first waited forever (the read said "want read" and no more data
came). The check now runs on the first application data too, before it reaches the
application. Real handshakes over loopback, a real CRL fetch, each case with its twin."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import pytest

import mtls
from mtls import CertificateRevokedError, RevocationPolicy
from mtls.testing import CA, IssuedIdentity
from tests._helpers import accepting
from tests.revocation._infra import CRLServer

BANNER = b"220 ready\r\n"


def banner_server(identity: IssuedIdentity) -> contextlib.AbstractContextManager[int]:
    """TLS on loopback that sends :data:`BANNER` first, then waits for the client to close."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity.configure_cert(ctx)

    def answer(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(BANNER)
            tls.recv(1)  # until the client closes

    return accepting(answer)


async def read_banner(ctx: ssl.SSLContext, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    try:
        # Bounded: the defect was a read that never returned.
        return await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def test_a_server_that_speaks_first_is_read_after_the_check(web: CRLServer) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    web.bodies["/ca.crl"] = ca.crl()
    checker = mtls.RevocationChecker(RevocationPolicy(mode="hard"))
    ctx = mtls.client_context(None, ca.truststore(), revocation=checker)
    with banner_server(leaf) as port:
        assert asyncio.run(read_banner(ctx, port)) == BANNER
    assert checker.fetches == 1 and web.hits["/ca.crl"] == 1  # checked, on the cache miss


def test_a_revoked_server_that_speaks_first_is_refused_before_its_data(
    web: CRLServer, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA(crl_url=web.url("/ca.crl"))
    leaf = ca.issue_cert("localhost")
    ca.revoke(leaf, reason="keyCompromise")
    web.bodies["/ca.crl"] = ca.crl()
    ctx = mtls.client_context(None, ca.truststore(), revocation=RevocationPolicy(mode="soft"))
    with banner_server(leaf) as port, pytest.raises(CertificateRevokedError):
        asyncio.run(read_banner(ctx, port))  # revoked: refused in soft mode too
