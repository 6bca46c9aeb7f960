"""Every integration object says what it is in its ``repr``: its class, the profile set
it follows, its client identifier or target, and never a password or a context."""

from __future__ import annotations

import asyncio
from pathlib import Path

import mtls
from mtls.integrations import grpc as mtls_grpc
from mtls.integrations.aiohttp import MTLSClientSession
from mtls.integrations.httpx import AsyncMTLSTransport, MTLSTransport
from mtls.integrations.requests import MTLSAdapter
from mtls.testing import CA

PASSWORD = "s3cret-store-pw"


def test_integration_reprs_name_the_set_and_no_secret(tmp_path: Path) -> None:
    ca = CA()
    keystore = mtls.StoreConfig(
        location=ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD),
        password=mtls.Secret(PASSWORD),
    )
    truststore = mtls.StoreConfig(
        location=ca.write_truststore(tmp_path / "trust.jks", PASSWORD),
        password=mtls.Secret(PASSWORD),
    )
    profile = mtls.SSLProfile(
        servers=(("backend", 8443),), keystore=keystore, truststore=truststore
    )
    with mtls.SSLProfileSet([profile]) as profiles:
        made: list[object] = [
            MTLSTransport(profiles, client_id="gw-1"),
            AsyncMTLSTransport(profiles),
            MTLSAdapter(profiles),
            mtls_grpc.secure_channel("backend:8443", profiles),
        ]

        async def in_a_loop() -> list[object]:
            return [
                MTLSClientSession(profiles),
                mtls_grpc.aio_secure_channel("backend:8443", profiles),
            ]

        loop = asyncio.new_event_loop()
        made += loop.run_until_complete(in_a_loop())
        credentials = mtls_grpc.server_credentials(keystore, truststore, reload_interval=None)
        try:
            shown = {type(thing).__name__: repr(thing) for thing in made}
            assert shown["MTLSTransport"] == f"<MTLSTransport for {profiles!r} client_id='gw-1'>"
            assert shown["AioRotatingChannel"] == (
                f"<AioRotatingChannel to 'backend:8443' for {profiles!r}>"
            )
            for name, text in [*shown.items(), ("credentials", repr(credentials))]:
                assert text.startswith("<") and " for <SSLProfileSet " in text, (name, text)
                assert PASSWORD not in text and "object at 0x" not in text, (name, text)
        finally:
            made[3].close()  # type: ignore[attr-defined]
            loop.run_until_complete(made[4].close())  # type: ignore[attr-defined]
            loop.run_until_complete(made[5].close())  # type: ignore[attr-defined]
            loop.close()
            credentials.profile_set.close()
