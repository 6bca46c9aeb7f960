"""aiohttp: the ssl= recipe and MTLSClientSession against real mutual-TLS backends."""

from __future__ import annotations

import asyncio
import importlib
import ssl
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import mtls
from mtls import SSLProfileSet
from mtls.integrations.aiohttp import MTLSClientSession, RedirectProfileError, request_ssl
from tests._helpers import profile_xml, wait_for
from tests.integrations._backend import PASSWORD, Backends, hop_server, store_xml

pytestmark = pytest.mark.keytool


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


def test_the_ssl_recipe_with_a_plain_session(profiles, backends: Backends):
    async def main() -> list[str]:
        seen = []
        async with aiohttp.ClientSession() as http:
            for name in "abc":
                url = backends.url(name)
                async with http.get(url, ssl=request_ssl(profiles, url)) as response:
                    seen.append((await response.json())["client_cn"])
        return seen

    assert run(main) == ["client-a", "client-b", "client-c"]


def test_each_backend_sees_the_identity_its_profile_names(profiles, backends: Backends):
    async def main() -> list[str]:
        seen = []
        async with MTLSClientSession(profiles) as http:
            for _ in range(2):
                for name in "abc":
                    async with http.get(backends.url(name, "/who")) as response:
                        assert response.status == 200
                        seen.append((await response.json())["client_cn"])
        return seen

    assert run(main) == ["client-a", "client-b", "client-c"] * 2


def test_a_url_without_profile_sends_no_certificate_and_is_refused(profiles, backends: Backends):
    # The connector's ssl= is what URLs without a profile get: trust the backend,
    # so the only thing missing is the client certificate.
    trust_only = mtls.client_context(truststore=backends.pki.server_ca.truststore())
    server = backends.servers["a"]
    before = len(server.handshakes)
    assert request_ssl(profiles, backends.unprofiled_url()) is True

    async def main() -> None:
        connector = aiohttp.TCPConnector(ssl=trust_only)
        async with MTLSClientSession(profiles, connector=connector) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(backends.unprofiled_url()) as response:
                    await response.read()
            async with http.get(backends.url("a")) as response:
                assert (await response.json())["client_cn"] == "client-a"

    run(main)
    # Each connection's thread records its own handshake: the refused one may be
    # recorded after the accepted one that followed it.
    # (aiohttp may try the refused request twice.)
    records = wait_for(
        lambda: (
            (found := server.handshakes[before:])
            and any(r.accepted for r in found)
            and not all(r.accepted for r in found)
            and found
        )
    )
    assert {(r.accepted, r.reason) for r in records} == {
        (False, "no client certificate"),
        (True, None),
    }


def test_wrong_ca_in_the_truststore_fails_verification(tmp_path, backends: Backends):
    xml = backends.write_profiles(tmp_path / "p.xml", trust=backends.pki.other_trust)

    async def main() -> None:
        with SSLProfileSet.from_xml(xml) as profiles:
            async with MTLSClientSession(profiles) as http:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.get(backends.url("b"))

    run(main)


def test_aiohttp_leaves_the_contexts_unchanged(profiles, backends: Backends):
    contexts = [profiles.context_for_url(backends.url(name), alpn=("http/1.1",)) for name in "abc"]

    def snapshot() -> list[tuple[Any, ...]]:
        return [
            (c.verify_mode, c.check_hostname, c.options, c.verify_flags, c.get_ca_certs(True))
            for c in contexts
            if c is not None
        ]

    before = snapshot()

    async def main() -> None:
        async with MTLSClientSession(profiles) as http:
            for name in "abcabc":
                async with http.get(backends.url(name)) as response:
                    await response.read()

    run(main)
    assert snapshot() == before


@asynccontextmanager
async def redirector(backends: Backends) -> AsyncIterator[int]:
    """A mutual-TLS aiohttp server (client CA a) that redirects within itself and to backend b."""
    pki = backends.pki
    server_ctx = mtls.server_context(
        pki.server.keystore(), pki.client_cas["a"].truststore(), require_client_cert=True
    )

    async def cross(request: web.Request) -> web.Response:
        raise web.HTTPFound(backends.url("b"))

    async def same(request: web.Request) -> web.Response:
        raise web.HTTPFound("/final")

    async def final(request: web.Request) -> web.Response:
        return web.json_response({"final": True})

    app = web.Application()
    app.router.add_get("/cross", cross)
    app.router.add_get("/same", same)
    app.router.add_get("/final", final)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def redirect_profiles(path: Path, backends: Backends, port: int) -> Path:
    """A profile file for the redirector (identity a) on ``port``, and backend b."""
    pki = backends.pki
    path.write_text(
        profile_xml(
            store_xml(f"localhost:{port}", pki.stores["a"], (pki.trust, "JKS")),
            store_xml(
                f"127.0.0.1:{backends.servers['b'].port}", pki.stores["b"], (pki.trust, "JKS")
            ),
        )
    )
    return path


def test_redirects_within_an_origin_are_followed_and_across_profiles_refused(
    tmp_path, backends: Backends
):
    async def main() -> None:
        async with redirector(backends) as port:
            xml = redirect_profiles(tmp_path / "p.xml", backends, port)
            with SSLProfileSet.from_xml(xml) as profiles:
                async with MTLSClientSession(profiles) as http:
                    async with http.get(f"https://localhost:{port}/same") as response:
                        assert await response.json() == {"final": True}
                    with pytest.raises(RedirectProfileError) as caught:
                        await http.get(f"https://localhost:{port}/cross")
                    assert caught.value.location == backends.url("b")
                    assert isinstance(caught.value, mtls.MTLSError)
                    # A URL's userinfo is never repeated: not in the message, not kept.
                    with pytest.raises(RedirectProfileError) as caught:
                        await http.get(f"https://bob:hunter2@localhost:{port}/cross")
                    assert "hunter2" not in str(caught.value) + caught.value.url
                    assert caught.value.url == f"https://localhost:{port}/cross"
                    assert isinstance(caught.value, aiohttp.ClientError)
                    # Followed by hand, each hop gets its own profile.
                    async with http.get(
                        f"https://localhost:{port}/cross", allow_redirects=False
                    ) as response:
                        location = response.headers["Location"]
                    async with http.get(location) as response:
                        assert (await response.json())["client_cn"] == "client-b"

    run(main)


def test_an_explicit_ssl_argument_is_used_as_given(profiles, backends: Backends):
    trust_only = mtls.client_context(truststore=backends.pki.server_ca.truststore())
    server = backends.servers["c"]
    before = len(server.handshakes)

    async def main() -> None:
        async with MTLSClientSession(profiles) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(backends.url("c"), ssl=trust_only) as response:
                    await response.read()

    run(main)
    assert server.wait_for_handshakes(before + 1)[before].reason == "no client certificate"


@pytest.mark.parametrize(
    "given",
    [
        {"ssl": True},
        {"ssl": None},
        {"verify_ssl": True},
        {"ssl_context": None},
        {"fingerprint": None},
    ],
    ids=["ssl=True", "ssl=None", "verify_ssl=True", "ssl_context=None", "fingerprint=None"],
)
def test_ssl_arguments_that_ask_only_for_aiohttps_default_keep_the_profile(
    profiles, backends: Backends, given
):
    """ssl=True, ssl=None and the deprecated spellings' defaults ask aiohttp for its
    normal verification, not for other settings: the profile's identity and trust
    still apply. They replaced the profile with aiohttp's default trust and no client
    certificate, silently."""

    async def main() -> str:
        async with MTLSClientSession(profiles) as http:
            async with http.get(backends.url("c"), **given) as response:
                return str((await response.json())["client_cn"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the deprecated spellings
        assert run(main) == "client-c"


@pytest.mark.parametrize("change", ["rotate", "move", "drop"])
def test_a_change_between_redirect_hops_is_followed_only_as_a_rotation(
    tmp_path, backends: Backends, change
):
    """While the first hop is served:

    - ``rotate``: both origins in one profile, its keystore rotated. The second hop's
      context is a newer generation of the first's, and the redirect was refused as
      "another profile".
    - ``move``: the hop's origin was in its own profile (another identity), and the
      profile file, reloaded, puts both origins in that one: the hop would have gone
      with the first profile's identity (a review found the rotation fix let it).
    - ``drop``: the profile file, reloaded, names neither origin: refused too.
    """
    pki = backends.pki
    ca = pki.client_cas["a"]
    first, other = tmp_path / "first.p12", tmp_path / "other.p12"
    ca.issue_cert("client-first").write_keystore(first, PASSWORD, store_type="PKCS12")
    ca.issue_cert("client-other").write_keystore(other, PASSWORD, store_type="PKCS12")
    server_ctx = mtls.server_context(
        pki.server.keystore(), ca.truststore(), require_client_cert=True
    )
    xml = tmp_path / "p.xml"
    reloaded: list[bool] = []

    def write(*profiles: str) -> None:
        xml.write_text(profile_xml(*profiles))

    def one(servers: str, keystore: Path) -> str:
        return store_xml(servers, (keystore, "PKCS12"), (pki.trust, "JKS"))

    async def main() -> object:
        profiles: SSLProfileSet | None = None

        async def change_on_the_first_hop() -> None:
            assert profiles is not None
            if change == "rotate":
                ca.issue_cert("client-first2").write_keystore(first, PASSWORD, store_type="PKCS12")
            elif change == "move":
                write(one(f"localhost:{port},127.0.0.1:{port}", other))
            else:
                write(one("elsewhere.test:443", other))
            reloaded.append(await asyncio.to_thread(profiles.reload))

        async with hop_server(server_ctx, change_on_the_first_hop) as port:
            if change == "rotate":
                write(one(f"localhost:{port},127.0.0.1:{port}", first))
            else:
                write(one(f"localhost:{port}", first), one(f"127.0.0.1:{port}", other))
            with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
                async with MTLSClientSession(profiles) as http:
                    try:
                        async with http.get(f"https://localhost:{port}/hop") as response:
                            return await response.json()
                    except RedirectProfileError as exc:
                        return exc

    outcome = run(main)
    assert reloaded == [True]  # the hops really had different contexts
    if change == "rotate":
        assert outcome == {"client_cn": "client-first"}  # the identity it began with
    else:
        assert isinstance(outcome, RedirectProfileError), outcome


def test_a_url_without_a_scheme_is_an_aiohttp_invalid_url(profiles, backends: Backends):
    """``//host/path`` raised yarl's bare ValueError from inside the redirect check."""

    async def main() -> None:
        async with MTLSClientSession(profiles, base_url=backends.url("b")) as http:
            with pytest.raises(aiohttp.InvalidURL, match="no scheme"):
                http.get("//localhost:1/z")
            # Its twin: a path relative to base_url still goes to base_url's profile.
            async with http.get("/who") as response:
                assert (await response.json())["client_cn"] == "client-b"

    run(main)


def test_base_url_is_resolved_before_choosing_the_profile(profiles, backends: Backends):
    async def main() -> str:
        async with MTLSClientSession(profiles, base_url=backends.url("b")) as http:
            async with http.get("/relative") as response:
                body = await response.json()
                assert body["path"] == "/relative"
                return str(body["client_cn"])

    assert run(main) == "client-b"


def test_a_missing_aiohttp_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    monkeypatch.delitem(sys.modules, "mtls.integrations.aiohttp")
    with pytest.raises(ImportError, match=r'pip install "mtls-profiles\[aiohttp\]"'):
        importlib.import_module("mtls.integrations.aiohttp")


def test_request_ssl_for_plain_http_is_aiohttps_default(profiles):
    assert request_ssl(profiles, "http://localhost:1/") is True
    assert isinstance(request_ssl(profiles, "https://nowhere.test/"), bool)
    assert not isinstance(request_ssl(profiles, "https://nowhere.test/"), ssl.SSLContext)


def test_request_ssl_refuses_a_relative_url_rather_than_send_it_without_its_profile(profiles):
    """With a base_url session, request_ssl("/orders") was True (aiohttp's own
    verification, no client certificate): the request left without its identity."""
    with pytest.raises(ValueError, match=r"not an absolute https://.*base URL"):
        request_ssl(profiles, "/orders")
    assert request_ssl(profiles, "https://nowhere.test/orders") is True  # the twin
