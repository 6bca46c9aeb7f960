"""aiohttp: what a session keeps of the set's answers, and when it asks again.

``MTLSClientSession`` keeps, for the set's current snapshot, the context and the
profile each backend was answered with: a keep-alive request makes no lookup. Every
publish (a rotation, a profile renamed, a store moved to equal bytes, a profile that
fails closed) makes a new snapshot, and the next request asks again. These tests pin
each way a kept answer could outlive what the set answers now, against real backends.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import ssl
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import mtls
from mtls import SSLProfileSet
from mtls.integrations import _pools
from mtls.integrations import aiohttp as integration
from mtls.integrations.aiohttp import MTLSClientSession, RedirectProfileError
from tests._helpers import profile, profile_xml
from tests.integrations._backend import (
    PASSWORD,
    Backends,
    counting_lookups,
    hop_server,
    patched_lookup,
)

pytestmark = pytest.mark.keytool


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


def _entry(
    backends: Backends, name: str, keystore: tuple[Path, str] | None = None, attrs: str = ""
) -> str:
    """The ``<profile>`` that sends backend ``name`` its identity (or ``keystore``)."""
    host = "127.0.0.1" if name == "b" else "localhost"
    store, store_type = keystore or backends.pki.stores[name]
    return profile(
        f"{host}:{backends.servers[name].port}",
        store,
        backends.pki.trust,
        attrs=attrs,
        keystore_type=store_type,
        truststore_type="JKS",
    )


def _on_a_copy(tmp_path: Path, backends: Backends) -> tuple[Path, Path]:
    """A copy of backend c's client keystore (to rotate in place), and a profile file
    that sends backend c that copy."""
    keystore = tmp_path / "client.p12"
    shutil.copy(backends.pki.stores["c"][0], keystore)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(_entry(backends, "c", (keystore, "PKCS12"))))
    return keystore, xml


async def _who(http: MTLSClientSession, url: str, **kwargs: Any) -> str:
    async with http.get(url, **kwargs) as response:
        return str((await response.json())["client_cn"])


def test_a_session_asks_the_set_once_per_backend_and_snapshot(
    tmp_path, backends: Backends, monkeypatch
):
    """A second request to a backend asks the set nothing; after a reload (a new
    snapshot), the next request asks again."""
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(*(_entry(backends, name) for name in "ab")))
    asked = counting_lookups(monkeypatch)

    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:

        async def requests(http: MTLSClientSession, names: str) -> list[tuple[str, int]]:
            """Each request's answer, and how many times it asked the set."""
            made = []
            for name in names:
                before = len(asked)
                made.append((await _who(http, backends.url(name, "/who")), len(asked) - before))
            return made

        async def main() -> list[tuple[str, int]]:
            async with MTLSClientSession(profiles) as http:
                made = await requests(http, "aab")
                xml.write_text(profile_xml(*(_entry(backends, name) for name in "abc")))
                assert profiles.reload()
                return made + await requests(http, "aac")

        # A first request for a material asks, finds its HTTP/1.1 context not built,
        # has it built off the loop, and asks again; a second request asks nothing.
        # After the reload, backend a's material is the same (built): one question.
        assert run(main) == [
            ("client-a", 2),
            ("client-a", 0),
            ("client-b", 2),
            ("client-a", 1),
            ("client-a", 0),
            ("client-c", 2),
        ]


def test_a_host_a_reload_gives_a_failing_profile_is_refused_though_asked_before(
    tmp_path, backends: Backends
):
    """The negative twin: a host no profile named (asked already: no certificate, the
    backend refuses) gets a profile whose keystore is missing. The session's kept
    answer is the older snapshot's: the request is refused as the set refuses it,
    never sent as before."""
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(_entry(backends, "b")))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:

        async def main() -> None:
            async with MTLSClientSession(profiles) as http:
                with pytest.raises(aiohttp.ClientError):  # no certificate: refused
                    await _who(http, backends.url("a"))
                missing = (tmp_path / "missing.jks", "JKS")
                xml.write_text(profile_xml(_entry(backends, "b"), _entry(backends, "a", missing)))
                assert profiles.reload()
                for _ in range(2):  # a refusal is never kept as an answer either
                    with pytest.raises(mtls.ProfileUnavailableError):
                        await _who(http, backends.url("a"))

        run(main)


@pytest.mark.parametrize("edit", ["name", "path"])
def test_a_redirect_within_a_profile_after_an_edit_that_changes_no_context(
    tmp_path, backends: Backends, edit
):
    """A profile's ``name=`` edited, or its keystore moved to a copy of the same bytes:
    no context changes (``reload()`` is False, the generation stays), but the set
    publishes a new snapshot whose profile is another object. A session that kept the
    older profile refused this redirect within one profile ("another profile"; a
    review found it, in a cache keyed by the generation, while the edit also made new
    ALPN variants), and must hold the edited one."""
    pki = backends.pki
    ca = pki.client_cas["a"]
    first = tmp_path / "first.p12"
    ca.issue_cert("client-first").write_keystore(first, PASSWORD, store_type="PKCS12")
    copy = tmp_path / "copy.p12"
    shutil.copy(first, copy)
    server_ctx = mtls.server_context(
        pki.server.keystore(), ca.truststore(), require_client_cert=True
    )
    xml = tmp_path / "p.xml"

    def write(port: int, keystore: Path, name: str) -> None:
        both = f"localhost:{port},127.0.0.1:{port}"
        entry = profile(both, keystore, pki.trust, attrs=f'name="{name}"', keystore_type="PKCS12")
        xml.write_text(profile_xml(entry))

    async def main() -> list[object]:
        seen: list[object] = []
        async with hop_server(server_ctx) as port:
            write(port, first, "before")
            with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
                async with MTLSClientSession(profiles) as http:
                    seen.append(await _who(http, f"https://localhost:{port}/hop"))
                    generation, snapshot = profiles.generation, profiles._snapshot
                    if edit == "name":
                        write(port, first, "after")
                    else:
                        write(port, copy, "before")
                    assert profiles.reload() is False  # no context changed ...
                    assert profiles.generation == generation
                    assert profiles._snapshot is not snapshot  # ... but a new snapshot
                    try:
                        seen.append(await _who(http, f"https://localhost:{port}/hop"))
                    except RedirectProfileError as exc:
                        seen.append(exc)
                    # What the session holds as the profile that chose the context is
                    # the edited one, as the set answers now (the guard compares them).
                    origin = ("localhost", port)
                    held = http._chosen(origin, None, redirects=True, build=True)[1]
                    seen.append(held is profiles.profile_for(*origin))
        return seen

    assert run(main) == ["client-first", "client-first", True]


def test_a_server_hostname_is_part_of_what_was_asked(tmp_path, backends: Backends):
    """``DefaultAndLocalhost`` skips the name check for a localhost URL, but not for a
    request that verifies another name (``server_hostname=``). A session that kept the
    first request's answer without that name would send the second with the
    no-name-check context, and it would pass."""
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(_entry(backends, "a")))
    url = backends.url("a", "/who")
    with SSLProfileSet.from_xml(xml, hostname_verifier="DefaultAndLocalhost") as profiles:

        async def main() -> None:
            async with MTLSClientSession(profiles) as http:
                assert await _who(http, url) == "client-a"  # localhost: no name check
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await _who(http, url, server_hostname="orders.example")  # not its name
                assert await _who(http, url) == "client-a"  # and the first answer stands

        run(main)


def test_a_changed_client_id_is_asked_again(tmp_path, backends: Backends):
    """``client_id`` is a plain attribute: a session whose client changes gets the
    other client's identity at once (WSO2's ``<client>`` entries)."""
    pki = backends.pki
    (store_a, type_a), (store_c, type_c) = pki.stores["a"], pki.stores["c"]
    port = backends.servers["c"].port
    stores = (
        f"<TrustStore><Location>{pki.trust}</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password></TrustStore>"
    )
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(
            f"<profile><servers>localhost:{port}</servers>"
            f"<KeyStore><Location>{store_a}</Location><Type>{type_a}</Type>"
            f"<Password>{PASSWORD}</Password></KeyStore>{stores}"
            f"<client><clientID>tenant-c</clientID>"
            f"<KeyStore><Location>{store_c}</Location><Type>{type_c}</Type>"
            f"<Password>{PASSWORD}</Password></KeyStore>{stores}</client></profile>"
        )
    )
    url = backends.url("c", "/who")
    with SSLProfileSet.from_xml(xml) as profiles:

        async def main() -> str:
            async with MTLSClientSession(profiles) as http:
                with pytest.raises(aiohttp.ClientError):  # backend c refuses client-a
                    await _who(http, url)
                http.client_id = "tenant-c"
                return await _who(http, url)

        assert run(main) == "client-c"


def test_a_wrappers_lookup_is_asked_for_every_request(profiles, backends: Backends, monkeypatch):
    """A ``context_for`` that is not the set's own (a wrapper, a patch) may answer
    differently each time: the session keeps nothing of it."""
    asked = patched_lookup(monkeypatch, profiles, "context_for")

    async def main() -> list[str]:
        async with MTLSClientSession(profiles) as http:
            return [await _who(http, backends.url("a", "/who")) for _ in range(3)]

    assert run(main) == ["client-a"] * 3
    assert asked == ["localhost"] * 3


class _Delegating:
    """A wrapper that has only the two lookups every integration needs (no
    ``profile_for``): what ``MTLSClientSession`` accepts."""

    def __init__(self, inner: SSLProfileSet) -> None:
        self.inner = inner
        self.asked = 0

    def context_for(self, host: str, port: int, **kwargs: Any) -> ssl.SSLContext | None:
        self.asked += 1
        return self.inner.context_for(host, port, **kwargs)

    def context_for_url(self, url: str, **kwargs: Any) -> ssl.SSLContext | None:
        return self.inner.context_for_url(url, **kwargs)


def test_a_wrapper_without_profile_for_serves_requests_that_follow_no_redirects(
    profiles, backends: Backends
):
    """Only the redirect guard needs the profile: a request with
    ``allow_redirects=False`` never asks a wrapper for it (a review found the first
    cut of the kept answers asked every time, and such a wrapper failed). Its twin,
    a request that follows redirects, needs ``profile_for`` and says so."""
    wrapper = _Delegating(profiles)

    async def main() -> str:
        async with MTLSClientSession(wrapper) as http:  # type: ignore[arg-type]
            url = backends.url("a", "/who")
            cn = await _who(http, url, allow_redirects=False)
            with pytest.raises(AttributeError, match="profile_for"):
                await _who(http, url)
            return cn

    assert run(main) == "client-a"
    assert wrapper.asked == 2  # each request asked: nothing kept


class _OwnProfileFor(SSLProfileSet):
    """A set whose ``profile_for`` is its own (its ``context_for`` is the set's)."""

    asked = 0

    def profile_for(
        self, host: str, port: int, *, client_id: str | None = None
    ) -> mtls.SSLProfile | None:
        type(self).asked += 1
        return super().profile_for(host, port, client_id=client_id)


def test_a_subclass_with_a_profile_for_of_its_own_is_asked_for_every_request(
    tmp_path, backends: Backends
):
    """Its answers need not be the snapshot's: nothing is kept (the guard asks it
    on every hop too, and the two must agree)."""
    xml = backends.write_profiles(tmp_path / "sslprofiles.xml")
    with _OwnProfileFor.from_xml(xml) as profiles:

        async def main() -> list[str]:
            async with MTLSClientSession(profiles) as http:
                return [await _who(http, backends.url("a", "/who")) for _ in range(3)]

        assert run(main) == ["client-a"] * 3
    assert _OwnProfileFor.asked == 3


def test_a_request_during_whose_lookup_a_rotation_lands_goes_with_the_new_identity(
    tmp_path, backends: Backends, monkeypatch
):
    """The set answers from the snapshot before the rotation; the snapshot has moved
    when the session would keep the answer: it asks again (its context and profile
    from one snapshot), and the request goes with the new identity, never kept for
    either snapshot. Its twin: a request before, with nothing landing, goes with the
    old one."""
    pki = backends.pki
    keystore, xml = _on_a_copy(tmp_path, backends)
    url = backends.url("c", "/who")
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        lookup = SSLProfileSet._lookup  # the set's lookup within (a patched one is never kept)
        landed: list[bool] = []

        def racing(self: SSLProfileSet, *args: Any) -> Any:
            answer = lookup(self, *args)  # from the snapshot it was given
            if not landed:  # now the rotation lands
                identity = pki.client_cas["c"].issue_cert("client-c2", common_name="client-c2")
                identity.write_keystore(keystore, PASSWORD, store_type="PKCS12")
                landed.append(profiles.reload(force=True))
            return answer

        async def main() -> list[str]:
            async with MTLSClientSession(profiles) as http:
                seen = [await _who(http, url)]  # the twin; its HTTP/1.1 context built
            monkeypatch.setattr(SSLProfileSet, "_lookup", racing)
            async with MTLSClientSession(profiles) as http:  # nothing kept yet
                seen += [await _who(http, url), await _who(http, url)]
            return seen

        assert run(main) == ["client-c", "client-c2", "client-c2"]
        assert landed == [True]


def test_a_rotated_out_context_is_not_kept_alive_by_the_session(tmp_path, backends: Backends):
    """When the set lets a snapshot go, the session's answers for it go too: an old
    context lives only as long as its pooled connections."""
    pki = backends.pki
    keystore, xml = _on_a_copy(tmp_path, backends)
    url = backends.url("c", "/who")
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:

        async def main() -> bool:
            connector = aiohttp.TCPConnector(force_close=True)  # no pooled connections
            async with MTLSClientSession(profiles, connector=connector) as http:
                assert await _who(http, url) == "client-c"
                old = integration.request_ssl(profiles, url)
                assert isinstance(old, ssl.SSLContext)
                gone = weakref.ref(old)
                del old
                ca = pki.client_cas["c"]
                ca.issue_cert("client-c2").write_keystore(keystore, PASSWORD, store_type="PKCS12")
                assert profiles.reload(force=True)
                for _ in range(200):  # bounded: the closed connections' transports let go
                    gc.collect()
                    if gone() is None:
                        return True
                    await asyncio.sleep(0.01)
                return False

        assert run(main)


def test_a_session_keeps_a_bounded_number_of_answers(profiles, monkeypatch):
    """A session that calls ever new hosts keeps at most ``ANSWERS_KEPT`` answers."""
    monkeypatch.setattr(_pools, "ANSWERS_KEPT", 4)

    async def main() -> int:
        async with MTLSClientSession(profiles) as http:
            most = 0
            for i in range(10):
                assert http._chosen(
                    (f"host{i}.example", 443), None, redirects=True, build=True
                ) == (True, None)
                assert http._kept is not None
                most = max(most, len(http._kept.current()[1]))
            return most

    assert run(main) == 4


def test_a_storm_of_publishes_while_asking_ends_in_an_answer(profiles, backends, monkeypatch):
    """Every answer given while a publish landed (here: all of them) is asked again,
    a few times, then used as asked without being kept: a request never waits for the
    reloads to stop."""
    kept: list[bool] = []

    def publishing(self: Any, *args: Any) -> bool:
        kept.append(False)
        return False  # as if a publish landed while asking, every time

    monkeypatch.setattr(_pools.KeptAnswers, "keep", publishing)

    async def main() -> list[str]:
        async with MTLSClientSession(profiles) as http:
            return [await _who(http, backends.url("a", "/who")) for _ in range(2)]

    assert run(main) == ["client-a", "client-a"]
    assert len(kept) == 2 * (integration._KEEP_TRIES + 1)  # each request: bounded
