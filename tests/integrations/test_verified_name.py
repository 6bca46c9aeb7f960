"""DefaultAndLocalhost follows the name the client verifies, not the URL's host.

A client that dials ``127.0.0.1`` (a sidecar, a tunnel) and asks httpx
(``sni_hostname``) or aiohttp (``server_hostname=``) to verify ``orders.internal``
got the localhost variant of the profile's context, which skips the name check: any
certificate the truststore vouches for was taken for ``orders.internal``. The set now
chooses the variant by the name verified. Real handshakes with a backend whose
certificate names ``orders.internal`` only.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

import mtls
from mtls.integrations.aiohttp import MTLSClientSession, request_ssl
from mtls.integrations.httpx import async_client, client
from mtls.testing import CA, MTLSServer
from tests._helpers import PASSWORD, write_identity, write_trust

NAMED = "orders.internal"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[mtls.SSLProfileSet, str]]:
    ca = CA()
    tmp = tmp_path_factory.mktemp("verified-name")
    keystore = write_identity(ca.issue_cert("gateway"), tmp / "gateway.jks")
    truststore = write_trust(ca, tmp / "trust.jks")
    with MTLSServer(ca.issue_cert(NAMED), client_ca=ca) as server:
        profile = mtls.SSLProfile(
            servers=(f"127.0.0.1:{server.port}",),
            keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
            truststore=mtls.StoreConfig(location=truststore, password=PASSWORD),
        )
        with mtls.SSLProfileSet([profile], hostname_verifier="DefaultAndLocalhost") as profiles:
            yield profiles, f"https://127.0.0.1:{server.port}/"


# (the name verified instead of the URL's host, whether the handshake passes)
CASES = [(None, True), (NAMED, True), ("billing.internal", False), ("localhost", True)]


@pytest.mark.parametrize(("name", "passes"), CASES)
def test_context_for_chooses_the_variant_by_the_name_verified(backend, name, passes):
    profiles, url = backend
    ctx = profiles.context_for_url(url, server_hostname=name)
    assert ctx is not None
    # The localhost variant (no name check) only for a localhost name, or none given.
    assert ctx.check_hostname is (name not in (None, "localhost"))
    assert profiles.context_for_url(url) is profiles.context_for_url(url, server_hostname=None)


def _is_name_mismatch(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return "Hostname mismatch" in str(exc) or "doesn't match" in str(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _get_verifying(http: httpx.Client, url: str, name: str | None, *, passes: bool) -> None:
    """A GET through ``http`` that verifies ``name`` (``sni_hostname``; ``None``: the
    URL's host): it reaches the backend, or fails on the name, as ``passes`` says."""
    extensions: dict[str, Any] = {} if name is None else {"sni_hostname": name}
    if passes:
        assert http.get(url, extensions=extensions).json()["client_cn"] == "gateway"
    else:
        with pytest.raises(httpx.ConnectError) as caught:
            http.get(url, extensions=extensions)
        assert _is_name_mismatch(caught.value), caught.value


@pytest.mark.parametrize(("name", "passes"), CASES)
def test_httpx_sni_hostname_is_verified(backend, name, passes):
    profiles, url = backend
    with client(profiles) as http:
        _get_verifying(http, url, name, passes=passes)


@pytest.mark.parametrize(("name", "passes"), CASES)
def test_async_httpx_sni_hostname_is_verified(backend, name, passes):
    profiles, url = backend
    extensions: dict[str, Any] = {} if name is None else {"sni_hostname": name}

    async def main() -> str:
        async with async_client(profiles) as http:
            return str((await http.get(url, extensions=extensions)).json()["client_cn"])

    if passes:
        assert asyncio.run(main()) == "gateway"
    else:
        with pytest.raises(httpx.ConnectError) as caught:
            asyncio.run(main())
        assert _is_name_mismatch(caught.value), caught.value


@pytest.mark.parametrize(("name", "passes"), CASES)
def test_aiohttp_server_hostname_is_verified(backend, name, passes):
    profiles, url = backend
    kwargs: dict[str, Any] = {} if name is None else {"server_hostname": name}

    async def session() -> str:
        async with MTLSClientSession(profiles) as http, http.get(url, **kwargs) as response:
            return str((await response.json())["client_cn"])

    async def by_hand() -> str:
        ssl_arg = request_ssl(profiles, url, server_hostname=name)
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, ssl=ssl_arg, **kwargs) as response,
        ):
            return str((await response.json())["client_cn"])

    for run in (session, by_hand):
        if passes:
            assert asyncio.run(run()) == "gateway"
        else:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                asyncio.run(run())
            assert _is_name_mismatch(caught.value.certificate_error), caught.value


def test_a_remote_host_verified_as_localhost_is_checked(tmp_path) -> None:
    """The other half: dialling a host that is not a localhost name while verifying
    "localhost" must check the name (WSO2 exempts by the host dialled). A first cut of
    server_hostname= chose the variant by the verified name alone, and skipped the
    check there. 127.0.0.2 stands for a remote host; its certificate names
    orders.internal only."""
    ca = CA()
    keystore = write_identity(ca.issue_cert("gateway"), tmp_path / "gateway.jks")
    truststore = write_trust(ca, tmp_path / "trust.jks")
    with MTLSServer(ca.issue_cert(NAMED), client_ca=ca, host="127.0.0.2") as server:
        profile = mtls.SSLProfile(
            servers=(f"127.0.0.2:{server.port}",),
            keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
            truststore=mtls.StoreConfig(location=truststore, password=PASSWORD),
        )
        url = f"https://127.0.0.2:{server.port}/"
        with mtls.SSLProfileSet([profile], hostname_verifier="DefaultAndLocalhost") as profiles:
            for name in ("localhost", None):
                ctx = profiles.context_for_url(url, server_hostname=name)
                assert ctx is not None and ctx.check_hostname, name
            with client(profiles) as http:
                with pytest.raises(httpx.ConnectError) as caught:
                    http.get(url, extensions={"sni_hostname": "localhost"})
                assert _is_name_mismatch(caught.value), caught.value
                # The twin: the name the certificate holds passes.
                ok = http.get(url, extensions={"sni_hostname": NAMED})
                assert ok.json()["client_cn"] == "gateway"


def test_one_client_verifying_each_name_in_turn_gets_each_names_context(backend):
    """A client keeps the set's answers per name verified, not only per host: after a
    request that skipped the name check (a localhost URL, no name given), one that
    verifies another name through the same host is checked, and fails."""
    profiles, url = backend
    with client(profiles) as http:
        # (httpx reuses a pooled connection whatever the name: a failing name comes
        # right after the localhost variant's request, whose pool is another one.)
        for name, passes in [
            (None, True),
            ("billing.internal", False),
            (NAMED, True),
            (None, True),
        ]:
            _get_verifying(http, url, name, passes=passes)


# Names with a final dot are DNS names: glibc's hosts file source does not match
# "localhost." and "127.0.0.1." is no address. The "DNS answer" below sends them to
# the test's backend, whose certificate names attacker.example only.
DOTTED = ["localhost.", "LOCALHOST.", "127.0.0.1.", "localhost.localdomain.", "localhost\u3002"]


@pytest.mark.parametrize(
    ("host", "exempt"),
    [("localhost", True), ("[::1]", True), ("127.1", True), ("[localhost.]", False),
     ("[127.0.0.1.]", False), (" localhost. ", False), ("localhost..", False),
     ("localhost\uff0e", False)],
)  # fmt: skip
def test_the_exemption_is_decided_on_the_host_as_dialled(host, exempt):
    """Brackets around a name with a final dot hid the dot (checked before they were
    taken off, h193): any final dot, however written, is a DNS name."""
    from mtls._context import dials_localhost

    assert dials_localhost(host) is exempt


@pytest.fixture
def dotted_backend(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[mtls.SSLProfileSet, int]]:
    import socket

    ca = CA()
    keystore = write_identity(ca.issue_cert("gateway"), tmp_path / "gateway.jks")
    truststore = write_trust(ca, tmp_path / "trust.jks")
    resolve = socket.getaddrinfo

    def dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        # (and localhost.localdomain as the hosts files of RHEL and others have it)
        dotted = isinstance(host, str) and (host.endswith(".") or host == "localhost.localdomain")
        return resolve("127.0.0.1" if dotted else host, *args, **kwargs)

    with MTLSServer(ca.issue_cert("attacker.example"), client_ca=ca) as server:
        monkeypatch.setattr(socket, "getaddrinfo", dns)
        profile = mtls.SSLProfile(
            servers=(f"localhost:{server.port}", f"127.0.0.1:{server.port}",
                     f"localhost.localdomain:{server.port}"),
            keystore=mtls.StoreConfig(location=keystore, password=PASSWORD),
            truststore=mtls.StoreConfig(location=truststore, password=PASSWORD),
        )  # fmt: skip
        with mtls.SSLProfileSet([profile], hostname_verifier="DefaultAndLocalhost") as profiles:
            yield profiles, server.port


@pytest.mark.parametrize("host", DOTTED)
def test_a_localhost_name_with_a_final_dot_is_checked(dotted_backend, host):
    """DefaultAndLocalhost skipped the name check for "localhost." and "127.0.0.1."
    (the lookup's normal form drops the dot), names the resolver sends to DNS: whoever
    answered got the profile's client certificate with any certificate the truststore
    vouches for (h191 HIGH, with httpx, requests and aiohttp). They still match the
    profile, with the name check. Real handshakes; the twin: "localhost" itself keeps
    its exemption."""
    import socket

    import requests

    from mtls.integrations.requests import session

    profiles, port = dotted_backend
    ctx = profiles.context_for(host, port)
    assert ctx is not None and ctx.check_hostname, host
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname=host.rstrip(".\u3002") + ".")
    url = f"https://{host}:{port}/"
    with client(profiles) as http, pytest.raises(httpx.ConnectError) as caught:
        http.get(url)
    assert _is_name_mismatch(caught.value), caught.value
    if host.isascii():  # requests (urllib3) dials what IDNA makes of the rest too
        with session(profiles) as http, pytest.raises(requests.exceptions.SSLError):
            http.get(url, timeout=10)

    async def aiohttp_get() -> None:
        async with MTLSClientSession(profiles) as http, http.get(url) as response:
            await response.read()

    if host.isascii() and not host[0].isdigit():  # (yarl refuses "127.0.0.1." itself)
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
            asyncio.run(aiohttp_get())
        assert _is_name_mismatch(refused.value.certificate_error), refused.value
    # The twin: the name without its dot is the hosts file's, exempt as WSO2 exempts it.
    plain = host.rstrip(".\u3002").lower()
    ctx = profiles.context_for(plain, port)
    assert ctx is not None and not ctx.check_hostname
    with client(profiles) as http:
        assert http.get(f"https://{plain}:{port}/").json()["client_cn"] == "gateway"
