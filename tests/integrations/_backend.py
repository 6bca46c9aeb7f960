"""Backends, identities and profile files for the HTTP client integration tests.

Three mutual-TLS backends, each accepting only client certificates from its own
CA, so a backend that answers at all has seen the identity its profile names:

==========  =========================  ==========================================
backend     profile ``<servers>``      client identity (made by keytool)
==========  =========================  ==========================================
``a``       ``localhost:PORT_A``       JKS     (CN=client-a, issued by CA a)
``b``       ``127.0.0.1:PORT_B``       JCEKS   (CN=client-b, issued by CA b)
``c``       ``localhost:PORT_C``       PKCS#12 (CN=client-c, issued by CA c)
==========  =========================  ==========================================

``https://127.0.0.1:PORT_A`` has no profile: the client sends no certificate and
backend ``a`` refuses it. The server certificates come from one server CA, which
every profile's truststore (JKS) holds; ``other-trust.jks`` holds an unrelated CA.

The client stores are converted by keytool on purpose (an independent writer of JKS and
JCEKS: mtls reads what Java wrote); the certificates come from mtls.testing.CA. keytool
costs a JVM start per store, so the stores are built once per test process (xdist
worker) and cached here.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mtls import SSLProfileSet
from mtls.testing import CA, IssuedIdentity, MTLSServer
from tests._helpers import PASSWORD, profile, profile_xml, wait_for
from tests._keytool import KEYTOOLS, run_keytool

__all__ = [
    "PASSWORD",
    "Backends",
    "Identities",
    "assert_each_backend_sees_its_identity",
    "assert_noted",
    "established",
    "identities",
    "running_backends",
    "settings_of",
    "store_xml",
    "wait_for",
]


def keytool_convert(source_p12: Path, dest: Path, store_type: str) -> Path:
    """``keytool -importkeystore`` a PKCS#12 file into a new JKS, JCEKS or PKCS12 store."""
    run_keytool(
        KEYTOOLS[0],
        "-importkeystore",
        "-srckeystore", str(source_p12), "-srcstoretype", "PKCS12", "-srcstorepass", PASSWORD,
        "-destkeystore", str(dest), "-deststoretype", store_type, "-deststorepass", PASSWORD,
    )  # fmt: skip
    return dest


@dataclass
class Identities:
    """The CAs, backend and client identities, and their store files."""

    dir: Path
    server_ca: CA
    other_ca: CA
    client_cas: dict[str, CA]
    server: IssuedIdentity
    stores: dict[str, tuple[Path, str]] = field(default_factory=dict)  # name -> (path, Type)
    trust: Path = Path()
    other_trust: Path = Path()


_CACHE: dict[str, Identities] = {}


def identities(factory: pytest.TempPathFactory) -> Identities:
    """Build (once per process) the CAs and the keytool-made client stores."""
    if not KEYTOOLS:
        pytest.skip("keytool not found: install a JDK (openjdk-17-jdk-headless)")
    cached = _CACHE.get("pki")
    if cached is not None:
        return cached
    d = factory.mktemp("integrations-pki")
    server_ca = CA(name="integration server CA")
    pki = Identities(
        dir=d,
        server_ca=server_ca,
        other_ca=CA(name="unrelated CA"),
        client_cas={name: CA(name=f"client CA {name}") for name in "abc"},
        server=server_ca.issue_cert("localhost", "127.0.0.1", common_name="backend"),
    )
    for name, store_type, ext in (
        ("a", "JKS", "jks"),
        ("b", "JCEKS", "jceks"),
        ("c", "PKCS12", "p12"),
    ):
        ident = pki.client_cas[name].issue_cert(f"client-{name}", common_name=f"client-{name}")
        source = ident.write_keystore(d / f"source-{name}.p12", PASSWORD, store_type="PKCS12")
        pki.stores[name] = (
            keytool_convert(source, d / f"client-{name}.{ext}", store_type),
            store_type,
        )
        source.unlink()
    pki.trust = server_ca.write_truststore(d / "trust.jks", PASSWORD)
    pki.other_trust = pki.other_ca.write_truststore(d / "other-trust.jks", PASSWORD)
    _CACHE["pki"] = pki
    return pki


@dataclass
class Backends:
    """Running backends ``a``, ``b``, ``c`` and the profile files that route to them."""

    pki: Identities
    servers: dict[str, MTLSServer]

    def url(self, name: str, path: str = "/") -> str:
        """The URL the profile for backend ``name`` matches."""
        host = "127.0.0.1" if name == "b" else "localhost"
        return f"https://{host}:{self.servers[name].port}{path}"

    def unprofiled_url(self, path: str = "/") -> str:
        """Backend ``a`` under a name no profile mentions."""
        return f"https://127.0.0.1:{self.servers['a'].port}{path}"

    def write_profiles(self, path: Path, *, trust: Path | None = None) -> Path:
        """The profile file for the three backends (``trust``: another truststore)."""
        entries = []
        for name in "abc":
            store, store_type = self.pki.stores[name]
            host = "127.0.0.1" if name == "b" else "localhost"
            entries.append(
                store_xml(
                    f"{host}:{self.servers[name].port}",
                    (store, store_type),
                    (trust or self.pki.trust, "JKS"),
                )
            )
        path.write_text(profile_xml(*entries))
        return path


def settings_of(ctx: ssl.SSLContext) -> tuple[Any, ...]:
    """Everything observable about a context's security settings (to show nothing changed them)."""
    return (
        ctx.verify_mode,
        ctx.check_hostname,
        ctx.options,
        ctx.verify_flags,
        ctx.minimum_version,
        ctx.maximum_version,
        ctx.hostname_checks_common_name,
        ctx.get_ca_certs(binary_form=True),
    )


def store_xml(
    servers: str, keystore: tuple[Path, str] | None, truststore: tuple[Path, str] | None
) -> str:
    """One ``<profile>`` element with the stores' declared types."""
    return profile(
        servers,
        keystore[0] if keystore else None,
        truststore[0] if truststore else None,
        keystore_type=keystore[1] if keystore else None,
        truststore_type=truststore[1] if truststore else None,
    )


def assert_each_backend_sees_its_identity(get: Callable[[str], Any], backends: Backends) -> None:
    """``get(url)`` (an httpx or requests client's) reaches each backend with the identity
    its profile names; a second round reuses the keep-alive connections (no new handshake)."""
    counts: list[int] = []
    for _ in range(2):
        for name in "abc":
            response = get(backends.url(name, "/who"))
            assert response.status_code == 200
            assert response.json()["client_cn"] == f"client-{name}"
        counts.append(sum(len(s.handshakes) for s in backends.servers.values()))
    assert counts[0] == counts[1], "HTTP/1.1 keep-alive: no new handshake"


@contextlib.contextmanager
def running_backends(pki: Identities) -> Iterator[Backends]:
    """Start backends a, b, c (HTTP/1.1 keep-alive), each demanding its own CA's clients."""
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(MTLSServer(pki.server, client_ca=pki.client_cas[name]))
            for name in "abc"
        }
        yield Backends(pki, servers)


@contextlib.asynccontextmanager
async def hop_server(
    server_ctx: ssl.SSLContext, on_hop: Callable[[], Awaitable[object]] | None = None
) -> AsyncIterator[int]:
    """An aiohttp mutual-TLS server on 127.0.0.1 (its port yielded): ``/hop`` redirects
    to its own ``/who`` through ``127.0.0.1`` (after awaiting ``on_hop()``, when given),
    and ``/who`` answers the client certificate's CN as ``{"client_cn": ...}``."""
    from aiohttp import web  # the aiohttp tests only

    port = 0

    async def hop(request: web.Request) -> web.Response:
        if on_hop is not None:
            await on_hop()
        raise web.HTTPFound(f"https://127.0.0.1:{port}/who")

    async def who(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        return web.json_response({"client_cn": subject.get("commonName")})

    app = web.Application()
    app.router.add_get("/hop", hop)
    app.router.add_get("/who", who)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


def counting_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The host of every lookup profile sets make from now on: their internal
    ``_lookup``, which a client's kept answers skip (a client keeps answers only while
    the public lookups are the set's own, so patching those would turn keeping off)."""
    asked: list[str] = []
    lookup = SSLProfileSet._lookup

    def counted(self: SSLProfileSet, snapshot: Any, host: str, *args: Any) -> Any:
        asked.append(host)
        return lookup(self, snapshot, host, *args)

    monkeypatch.setattr(SSLProfileSet, "_lookup", counted)
    return asked


def patched_lookup(
    monkeypatch: pytest.MonkeyPatch, profiles: SSLProfileSet, name: str
) -> list[str]:
    """Patch the lookup ``name`` on ``profiles`` itself (as ``mock.patch.object`` does)
    with one that records each host asked and answers as the set's own."""
    asked: list[str] = []
    own = getattr(profiles, name)

    def patched(host: str, port: int, **kwargs: Any) -> Any:
        asked.append(host)
        return own(host, port, **kwargs)

    monkeypatch.setattr(profiles, name, patched)
    return asked


# --------------------------------------------------------------------------- sockets


def _tcp_states() -> dict[tuple[int, int], str]:
    """``(local port, remote port) -> state`` of IPv4 loopback sockets (Linux)."""
    states: dict[tuple[int, int], str] = {}
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            states[(int(local.split(":")[1], 16), int(remote.split(":")[1], 16))] = state
    return states


def established(client_port: int, server_port: int) -> bool:
    """True while the client's TCP connection to the server is open on the client's side.

    Read from the kernel, not from the client library: a connection the client
    closed leaves ESTABLISHED (01) at once.
    """
    return _tcp_states().get((client_port, server_port)) == "01"


def tcp_table_available() -> bool:
    return os.path.exists("/proc/net/tcp")


def assert_noted(exc: BaseException, profiles: SSLProfileSet, url: str) -> None:
    """A failed handshake's exception, as the client raised it, names the profile the
    request went with, its truststore, and the probe that explains it (h284)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    profile = profiles.profile_for(parts.hostname, parts.port)
    assert profile is not None and profile.truststore is not None
    (note,) = [n for n in getattr(exc, "__notes__", ()) if n.startswith("mtls: ")]
    assert f"{parts.hostname}:{parts.port} is served by {profile}" in note
    assert f"truststore {profile.truststore.shown_location}" in note
    assert f"mtls probe https://{parts.hostname}:{parts.port}/" in note
    assert PASSWORD not in note
