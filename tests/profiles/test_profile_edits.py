"""One profile-file edit that changes a profile's ``<servers>`` and its stores at once,
while the new stores are not there yet (a Kubernetes ConfigMap synced before its
Secret): the hosts it served keep their identity, and a store not valid now is not
installed through the edit (h160). Before, the edited profile matched its previous
entry neither by its servers nor by its store settings, was built as new, and failed
closed (or installed a certificate not valid yet) until the store came."""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtls import Keystore, ProfileUnavailableError, SSLProfileSet
from mtls.testing import CA, MTLSServer, replace_atomically
from tests._helpers import PASSWORD, jks, profile, profile_xml, whoami

NEW_PASSWORD = "a-new-password"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="edit CA")


@pytest.fixture(scope="module")
def backend(ca: CA):
    with MTLSServer(ca.issue_cert("localhost", "127.0.0.1"), client_ca=ca) as server:
        yield server


@pytest.fixture
def stores(tmp_path: Path, ca: CA) -> tuple[Path, Path]:
    """gw.jks (CN=gen-1, :data:`PASSWORD`) and trust.jks."""
    keystore, trust = tmp_path / "gw.jks", tmp_path / "trust.jks"
    keystore.write_bytes(jks(ca, "gen-1"))
    ca.write_truststore(trust, PASSWORD)
    return keystore, trust


def _profile(servers: str, keystore: Path, trust: Path, password: str = PASSWORD) -> str:
    """A profile whose keystore opens with ``password`` (the truststore with PASSWORD)."""
    ours = f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
    body = profile(servers, keystore, trust)
    assert body.count(ours) == 1
    return body.replace(
        ours, f"<Password>{password}</Password><KeyPassword>{password}</KeyPassword>"
    )


def _with_alias(body: str, alias: str) -> str:
    """``body`` with its keystore's ``<KeyAlias>``."""
    assert body.count("</KeyStore>") == 1
    return body.replace("</KeyStore>", f"<KeyAlias>{alias}</KeyAlias></KeyStore>")


def _write(xml: Path, *profiles: str) -> None:
    replace_atomically(xml, profile_xml(*profiles).encode())


def _cn(profiles: SSLProfileSet, host: str, port: int) -> str:
    return str(whoami(profiles.context_for(host, port), port, host)["client_cn"])


@pytest.mark.parametrize("declared", ["JKS", "PKCS12"])
def test_a_host_added_with_a_new_password_keeps_the_hosts_served(
    tmp_path, ca, backend, stores, declared
):
    """The edit adds 127.0.0.1 and names the keystore's next password, which the store
    does not have yet (and, the second time, declares the file PKCS12: the content
    decides the format, h163): localhost keeps gen-1 (it was refused), and the profile
    is said to be in error. Twins: a profile for hosts never served, on the same
    settings, is refused; once the store comes with that password, both hosts get it."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port}", keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        assert _cn(profiles, "localhost", port) == "gen-1"
        both = f"localhost:{port},127.0.0.1:{port}"
        typed = "<Type>JKS</Type>"
        _write(
            xml,
            _profile(both, keystore, trust, NEW_PASSWORD).replace(
                typed, f"<Type>{declared}</Type>", 1
            ),
            _profile("never-served.test:443", keystore, trust, NEW_PASSWORD),
        )
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        entry = {p.servers[0]: p for p in profiles.status().profiles}[f"localhost:{port}"]
        assert entry.loaded and entry.error is not None
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("never-served.test", 443)
        replace_atomically(
            keystore, ca.issue_cert("gen-2", common_name="gen-2").keystore().to_bytes(NEW_PASSWORD)
        )
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-2"
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"


def test_a_host_moved_to_a_profile_of_its_own_on_a_store_not_there_yet(
    tmp_path, ca, backend, stores
):
    """localhost leaves a two-host profile for a profile of its own naming a keystore
    that is not there yet: it keeps what it was served. Twin: when the store comes,
    localhost gets it and 127.0.0.1 keeps the old one."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
    coming = tmp_path / "gw-next.jks"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        _write(
            xml,
            _profile(f"127.0.0.1:{port}", keystore, trust),
            _profile(f"localhost:{port}", coming, trust),
        )
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        coming.write_bytes(jks(ca, "next"))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "next"
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"


@pytest.mark.parametrize("when", ["not yet valid", "expired"])
@pytest.mark.parametrize("edit", ["host moved onto another file", "host added, same file"])
def test_a_store_not_valid_now_is_not_installed_through_a_servers_edit(
    tmp_path, ca, backend, stores, when, edit
):
    """A keystore not valid now (valid from tomorrow, or expired) comes with an edit
    of <servers>: localhost moved out of a two-host profile onto a staged file, or
    127.0.0.1 added while gw.jks itself is replaced. The identity in service stays,
    as for the same store change without the edit; it was installed as a first load,
    and the backend refused it (h160). A host the edit adds never had that identity
    and the file no longer holds it: refused until the file gives one (h222: it was
    lent it, and a host withheld while the file was garbage was released by such a
    file; WSO2 would install the refused certificate, which its backend refuses)."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    both = f"localhost:{port},127.0.0.1:{port}"
    _write(
        xml,
        _profile(both if edit.startswith("host moved") else f"localhost:{port}", keystore, trust),
    )
    now = dt.datetime.now(dt.UTC)
    if when == "expired":
        window = {"not_before": now - dt.timedelta(days=3), "not_after": now - dt.timedelta(days=1)}
    else:
        window = {"not_before": now + dt.timedelta(days=1)}
    staged = jks(ca, "staged", **window)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        if edit.startswith("host moved"):
            (tmp_path / "staged.jks").write_bytes(staged)
            _write(
                xml,
                _profile(f"127.0.0.1:{port}", keystore, trust),
                _profile(f"localhost:{port}", tmp_path / "staged.jks", trust),
            )
        else:
            replace_atomically(keystore, staged)
            _write(xml, _profile(both, keystore, trust))
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        if edit.startswith("host moved"):
            assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        else:
            _refused_for_its_stores(profiles, "127.0.0.1", port)
        assert profiles.status().healthy is False


@pytest.mark.parametrize(
    "added",
    [
        "a host on other files",
        "a catch-all on the same files",
        "an unverified host",
        "another key alias",
    ],
)
def test_hosts_an_edit_adds_are_never_lent_material_not_made_for_them(
    tmp_path, ca, backend, stores, added
):
    """An edit that adds hosts to a profile whose new settings do not load yet: the
    old material is lent to them only when it was read from the files the profile
    names now. Never when the profile points at other files (another identity and
    trust than any configuration gave them), never to a catch-all (every host it
    answers), never unverified material to a profile that now names a truststore,
    never another key entry of the same file. The profile is refused until its
    settings load, as before (h161, h162). The twin: once they load, every host gets
    them."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    if added == "an unverified host":
        _write(xml, profile(f"localhost:{port}", keystore, None, attrs='novalidatecert="true"'))
    else:
        _write(xml, _profile(f"localhost:{port}", keystore, trust))
    coming = tmp_path / "coming.jks"
    pending = tmp_path / "pending-trust.jks"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        both = f"localhost:{port},127.0.0.1:{port}"
        if added == "a host on other files":
            _write(xml, _profile(both, coming, trust))
        elif added == "a catch-all on the same files":
            _write(xml, _profile(f"*,localhost:{port}", keystore, trust, NEW_PASSWORD))
        elif added == "another key alias":
            _write(xml, _with_alias(_profile(both, keystore, trust), "next"))
        else:
            _write(xml, _profile(both, keystore, pending))
        profiles.reload()
        for host in ("localhost", "127.0.0.1"):
            with pytest.raises(ProfileUnavailableError):
                profiles.context_for(host, port)
        if added == "a host on other files":
            coming.write_bytes(jks(ca, "coming"))
        elif added == "a catch-all on the same files":
            replace_atomically(
                keystore,
                ca.issue_cert("coming", common_name="coming").keystore().to_bytes(NEW_PASSWORD),
            )
        elif added == "another key alias":
            identity = ca.issue_cert("coming", common_name="coming")
            replace_atomically(keystore, identity.keystore(alias="next").to_bytes(PASSWORD))
        else:
            ca.write_truststore(pending, PASSWORD)
        profiles.reload()
        expected = "gen-1" if added == "an unverified host" else "coming"
        assert _cn(profiles, "localhost", port) == _cn(profiles, "127.0.0.1", port) == expected


def test_two_profiles_merged_onto_a_store_not_there_are_refused(tmp_path, ca, backend, stores):
    """Two profiles served different identities, merged into one on a keystore not
    there yet: there is no one last good for both hosts, so the merged profile is
    refused until its store comes (as before), rather than sending one host the
    other's identity. Twin: the store comes, both hosts get it."""
    keystore, trust = stores
    port = backend.port
    other = tmp_path / "other.jks"
    other.write_bytes(jks(ca, "other"))
    xml = tmp_path / "sslprofiles.xml"
    _write(
        xml,
        _profile(f"localhost:{port}", keystore, trust),
        _profile(f"127.0.0.1:{port}", other, trust),
    )
    coming = tmp_path / "merged.jks"
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", coming, trust))
        profiles.reload()
        for host in ("localhost", "127.0.0.1"):
            with pytest.raises(ProfileUnavailableError):
                profiles.context_for(host, port)
        coming.write_bytes(jks(ca, "merged"))
        profiles.reload()
        assert _cn(profiles, "localhost", port) == _cn(profiles, "127.0.0.1", port) == "merged"


def test_verification_turned_on_is_never_lent_unverified_material(tmp_path, ca, backend, stores):
    """A profile without a truststore and novalidatecert="true" loses the attribute (its
    peers are verified against the system's CAs from now on), gains a host, and names a
    key entry not there yet: the host it adds must not be reached unverified (h162).
    The twin: once the entry comes, both hosts verify their peer."""
    keystore, _ = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, profile(f"localhost:{port}", keystore, None, attrs='novalidatecert="true"'))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        assert profiles.context_for("localhost", port).verify_mode == ssl.CERT_NONE
        both = f"localhost:{port},127.0.0.1:{port}"
        _write(xml, _with_alias(profile(both, keystore, None), "next"))
        profiles.reload()
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("127.0.0.1", port)
        identity = ca.issue_cert("coming", common_name="coming")
        replace_atomically(keystore, identity.keystore(alias="next").to_bytes(PASSWORD))
        profiles.reload()
        for host in ("localhost", "127.0.0.1"):
            assert profiles.context_for(host, port).verify_mode == ssl.CERT_REQUIRED


def test_a_kept_identity_is_lent_for_what_it_was_made_not_for_the_edit_kept_over_it(
    tmp_path, ca, backend, stores
):
    """An edit naming a key entry not there yet keeps the identity in service (the
    same hosts); a later edit adding a host is matched against what that identity was
    made for (no alias), not against the profile it was kept under (the new alias):
    another key entry is never lent to the added host. The twin: the first edit alone
    keeps localhost served."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port}", keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        _write(xml, _with_alias(_profile(f"localhost:{port}", keystore, trust), "next"))
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"  # kept
        both = f"localhost:{port},127.0.0.1:{port}"
        _write(xml, _with_alias(_profile(both, keystore, trust), "next"))
        profiles.reload()
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("127.0.0.1", port)


@pytest.mark.parametrize("edit", ["another profile edited", "another profile removed"])
def test_a_profile_that_never_loaded_stays_refused_through_an_edit_of_another(
    tmp_path, ca, backend, stores, edit
):
    """A profile added on a keystore that is garbage fails closed; an edit of another
    profile on the same stores (its servers changed, or the profile removed) gave it
    that profile's kept identity, from the keystore still garbage (h208). It stays
    refused until its stores load. The twin: the edited profile keeps its own."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    both = _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust)
    _write(xml, both)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        assert _cn(profiles, "localhost", port) == "gen-1"
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        assert _cn(profiles, "localhost", port) == "gen-1"  # its last good
        added = _profile("never-served.test:443", keystore, trust)
        _write(xml, both, added)
        profiles.reload()
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("never-served.test", 443)
        if edit == "another profile edited":
            _write(xml, _profile(f"localhost:{port}", keystore, trust), added)
        else:
            _write(xml, added)
        profiles.reload()
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("never-served.test", 443)
        (entry,) = [p for p in profiles.status().profiles if "never-served" in p.servers[0]]
        assert not entry.loaded
        if edit == "another profile edited":
            assert _cn(profiles, "localhost", port) == "gen-1"  # the twin: kept
        # Its stores load: it is served.
        keystore.write_bytes(jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert isinstance(profiles.context_for("never-served.test", 443), ssl.SSLContext)


def test_a_profile_split_keeps_its_identity_and_a_renamed_host_waits(tmp_path, ca, backend, stores):
    """The stand-in's purpose: with the keystore garbage, a profile split in two halves
    keeps the identity its hosts had. Its twin: a host renamed in the same state is a
    host that identity never served, refused until the stores load (WSO2 keeps its
    whole previous configuration when a reload fails: the new name has no profile in
    it; h209, h210, h214 found the old rule lent the kept identity to such hosts)."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(
            xml,
            _profile(f"localhost:{port}", keystore, trust),
            _profile(f"127.0.0.1:{port}", keystore, trust),
        )
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        _write(
            xml,
            _profile(f"localhost:{port}", keystore, trust),
            _profile(f"renamed.test:{port}", keystore, trust),
        )
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for("renamed.test", port)
        (entry,) = [p for p in profiles.status().profiles if "renamed" in p.servers[0]]
        assert not entry.loaded
        keystore.write_bytes(jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert isinstance(profiles.context_for("renamed.test", port), ssl.SSLContext)
        assert _cn(profiles, "localhost", port) == "gen-2"


def _refused_for_its_stores(profiles: SSLProfileSet, host: str, port: int) -> None:
    with pytest.raises(ProfileUnavailableError, match="never lent to a host it did not serve"):
        profiles.context_for(host, port)


@pytest.mark.parametrize("edit", ["host added", "catch-all added", "host and a new one split off"])
def test_a_kept_identity_serves_only_the_hosts_it_served(tmp_path, ca, backend, stores, edit):
    """One edit, while the keystore is garbage, that keeps a profile's hosts and adds
    one (to the profile, as '*', or in a profile split off with a host of it): the
    hosts keep the identity they had; the added host is refused, not lent it (h209,
    h210, h214: the old rule served the kept identity to every host of the edited
    profile). Twins: the kept host still presents gen-1 through a handshake; the
    refusal holds at the next checks (the keystore rewritten, another profile edited,
    and the refused host moved to a profile on the keystore's next password); once
    the stores load, every host is served."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    both = f"localhost:{port},127.0.0.1:{port}"
    _write(xml, _profile(both, keystore, trust))
    added = "new.test"
    # The edit, and the same without the added host (for the last step).
    if edit == "host added":
        edited = [_profile(f"{both},{added}:{port}", keystore, trust)]
        rest, moved = [_profile(both, keystore, trust)], f"{added}:{port}"
    elif edit == "catch-all added":
        edited = [_profile(f"{both},*", keystore, trust)]
        rest, moved = [_profile(both, keystore, trust)], "*"
    else:
        rest = [_profile(f"localhost:{port}", keystore, trust)]
        edited = [*rest, _profile(f"127.0.0.1:{port},{added}:{port}", keystore, trust)]
        rest, moved = [*rest, _profile(f"127.0.0.1:{port}", keystore, trust)], f"{added}:{port}"
    other = _profile("other.test:443", keystore, trust)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, *edited)
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        _refused_for_its_stores(profiles, added, port)
        status = profiles.status()
        assert status.healthy is False
        assert [p.withheld for p in status.profiles if p.withheld] == [(moved,)]
        assert [p.to_dict()["withheld"] for p in status.profiles if p.withheld] == [[moved]]
        replace_atomically(keystore, b"still not a keystore")
        profiles.reload()
        _refused_for_its_stores(profiles, added, port)
        _write(xml, *edited, other)
        profiles.reload()
        _refused_for_its_stores(profiles, added, port)
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        # The refused host moved out alone, on the keystore's next password (another
        # definition, judged by the hosts its material served): still refused.
        _write(xml, *rest, _profile(moved, keystore, trust, NEW_PASSWORD))
        profiles.reload()
        with pytest.raises(ProfileUnavailableError):
            profiles.context_for(added, port)
        (alone,) = [p for p in profiles.status().profiles if p.servers == (moved,)]
        assert not alone.loaded  # it has no material: none served its host
        assert _cn(profiles, "localhost", port) == "gen-1"
        _write(xml, *edited)
        profiles.reload()
        keystore.write_bytes(jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"
        assert isinstance(profiles.context_for(added, port), ssl.SSLContext)
        assert profiles.status().healthy is True


def test_many_profiles_renamed_at_once_keep_their_identity(tmp_path, ca, stores):
    """Every profile on one keystore moved to another port in one edit while the
    keystore is garbage: each keeps the context it had (h210: a stricter rule for
    stand-ins served none of 10,000; h214 found the same of a counting rule when one
    profile is added or split in the same edit)."""
    keystore, trust = stores
    xml = tmp_path / "sslprofiles.xml"
    names = [f"backend{i}.test" for i in range(5)]
    _write(xml, *(_profile(f"{name}:8243", keystore, trust) for name in names))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        kept = profiles.context_for(names[0], 8243)
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, *(_profile(f"{name}:9443", keystore, trust) for name in names))
        profiles.reload()
        assert all(profiles.context_for(name, 9443) is kept for name in names)
        assert all(profiles.context_for(name, 8243) is None for name in names)


def test_a_kept_identity_is_not_lent_through_an_edit_naming_the_next_password(
    tmp_path, ca, backend, stores
):
    """The keystore garbage, one edit adds 127.0.0.1 and names the keystore's next
    password: the added host was lent gen-1 (h220: only edits on the same settings were
    judged host by host). Twin: test_a_host_added_with_a_new_password_keeps_the_hosts_
    served, where the file still holds gen-1 (not caught up with the password yet)."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port}", keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust, NEW_PASSWORD))
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        _refused_for_its_stores(profiles, "127.0.0.1", port)


@pytest.mark.parametrize("there", ["loaded on another keystore", "not loaded"])
def test_a_host_port_another_profile_had_is_not_lent_the_kept_identity(
    tmp_path, ca, backend, stores, there
):
    """localhost:PORT on gw.jks, localhost:PORT+1 in another profile (on other.jks, or
    failed closed). The gw.jks garbage, one edit merges the second host into the first
    profile: it was lent gen-1 because localhost had it at another port (h220). A host
    and port another profile had keeps what it had, refused until gw.jks loads. Twin:
    a port no profile had keeps the host's identity (the test above with 10,000)."""
    keystore, trust = stores
    port = backend.port
    other = tmp_path / "other.jks"
    if there.startswith("loaded"):
        other.write_bytes(jks(ca, "other"))
    xml = tmp_path / "sslprofiles.xml"
    mine, theirs = (
        _profile(f"localhost:{port}", keystore, trust),
        _profile(f"localhost:{port + 1}", other, trust),
    )
    _write(xml, mine, theirs)
    with SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True) as profiles:
        kept = profiles.context_for("localhost", port)
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, _profile(f"localhost:{port},localhost:{port + 1}", keystore, trust))
        profiles.reload()
        assert profiles.context_for("localhost", port) is kept
        assert _cn(profiles, "localhost", port) == "gen-1"
        _refused_for_its_stores(profiles, "localhost", port + 1)


@contextlib.contextmanager
def _a_host_withheld(
    tmp_path: Path, stores: tuple[Path, Path], port: int
) -> Iterator[SSLProfileSet]:
    """localhost on gw.jks (gen-1); gw.jks turns to garbage; an edit adds 127.0.0.1 to
    the profile: refused (it never had gen-1). Yields the set in that state."""
    keystore, trust = stores
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, _profile(f"localhost:{port}", keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
        profiles.reload()
        _refused_for_its_stores(profiles, "127.0.0.1", port)
        yield profiles


def test_a_refused_host_served_again_is_a_change(tmp_path, ca, backend, stores):
    """Hosts refused while the keystore was garbage are served once the file is back
    with its old bytes: the same context, so reload() said nothing changed, and
    subscribers (HTTP pools, gRPC channels) were not told (h220)."""
    keystore, _ = stores
    port = backend.port
    good = keystore.read_bytes()
    with _a_host_withheld(tmp_path, stores, port) as profiles:
        told = threading.Event()
        profiles.subscribe(lambda *_: told.set())
        generation = profiles.generation
        replace_atomically(keystore, good)
        assert profiles.reload() is True
        assert profiles.generation == generation + 1
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        assert told.wait(10)


@pytest.mark.parametrize("case", ["truststore garbage", "other truststore, same identity"])
def test_the_identity_the_keystore_holds_is_lent_to_added_hosts(
    tmp_path, ca, backend, stores, case
):
    """Not the withheld case: the keystore file still holds gen-1. The truststore alone
    garbage, an added host shares the profile's identity (and its trust in service);
    two profiles on gw.jks with different truststore files merged while gw.jks is
    garbage both had gen-1, and keep it (h220 found both refused by a first version)."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    if case == "truststore garbage":
        _write(xml, _profile(f"localhost:{port}", keystore, trust))
    else:
        second = ca.write_truststore(tmp_path / "trust2.p12", PASSWORD, store_type="PKCS12")
        _write(
            xml,
            _profile(f"localhost:{port}", keystore, trust),
            _profile(f"127.0.0.1:{port}", keystore, second),
        )
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(trust if case == "truststore garbage" else keystore, b"garbage")
        assert profiles.reload() is False
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
        profiles.reload()
        assert _cn(profiles, "localhost", port) == "gen-1"
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        assert profiles.status().healthy is False


@pytest.mark.parametrize("through", ["a profile without <clientID>", "the catch-all"])
def test_a_lookup_left_to_a_kept_identity_by_a_removal_is_refused(
    tmp_path, ca, backend, stores, through
):
    """gw.jks garbage (its profile keeps gen-1); the edit removes the profile that
    answered localhost for client y (or localhost under a '*' on gw.jks), with another
    identity: the lookup fell through to the kept gen-1, an identity it never had
    (h221). It is refused until gw.jks loads, then served what the file holds; the
    twin: a lookup that had gen-1 through the same fallback keeps it."""
    keystore, trust = stores
    port = backend.port
    other = tmp_path / "other.jks"
    other.write_bytes(jks(ca, "other"))
    xml = tmp_path / "sslprofiles.xml"
    if through == "the catch-all":
        kept, removed = _profile("*", keystore, trust), _profile(f"localhost:{port}", other, trust)
        client, twin = None, ("127.0.0.1", port)
    else:
        kept = _profile(f"localhost:{port}", keystore, trust)
        removed = _client_profile(f"localhost:{port}", other, trust, "y")
        client, twin = "y", None
    _write(xml, kept, removed)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        before = profiles.context_for("localhost", port, client_id=client)
        assert whoami(before, port)["client_cn"] == "other"
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, kept)
        assert profiles.reload() is True
        with pytest.raises(ProfileUnavailableError, match="never lent"):
            profiles.context_for("localhost", port, client_id=client)
        if twin is not None:
            assert whoami(profiles.context_for(*twin), port, twin[0])["client_cn"] == "gen-1"
        (entry,) = [p for p in profiles.status().profiles if p.withheld]
        assert entry.withheld == (f"localhost:{port}" + (f"/{client}" if client else ""),)
        keystore.write_bytes(jks(ca, "gen-2"))
        assert profiles.reload() is True
        now = profiles.context_for("localhost", port, client_id=client)
        assert whoami(now, port)["client_cn"] == "gen-2"


def test_refused_hosts_are_served_when_the_keystore_is_back_though_the_truststore_breaks(
    tmp_path, ca, backend, stores
):
    """127.0.0.1 refused (added while gw.jks was garbage); gw.jks gets its old bytes back
    in the same check as the truststore turns to garbage: the file holds gen-1 again,
    so 127.0.0.1 is lent it with the trust in service, as an added host is when only
    the truststore is broken (h221: it stayed refused until the truststore was fixed)."""
    keystore, trust = stores
    port = backend.port
    good = keystore.read_bytes()
    with _a_host_withheld(tmp_path, stores, port) as profiles:
        replace_atomically(trust, b"garbage")
        replace_atomically(keystore, good)
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        assert profiles.status().healthy is False  # the truststore's error


def _client_profile(servers: str, keystore: Path, trust: Path, client: str) -> str:
    """A profile whose stores are inside a <client> of ID ``client``."""
    body = _profile(servers, keystore, trust)
    start, end = body.index("<KeyStore>"), body.index("</profile>")
    return (
        f"{body[:start]}<client><clientID>{client}</clientID>{body[start:end]}</client>{body[end:]}"
    )


@pytest.mark.parametrize("next_edit", ["removed profile back", "a profile without client added"])
def test_a_lookup_refused_by_a_removal_is_judged_again_at_the_next_edit(
    tmp_path, ca, backend, stores, next_edit
):
    """A lookup refused because an edit removed the profile that answered it (gw.jks
    garbage under a '*'): the next edit puts that profile back, or adds one without a
    client that the lookup stops at first. The refusal was carried: the file was
    refused as a duplicate, or the lookup stayed refused (h222). Judged again: the
    lookup gets what the new profile gives; the '*' keeps gen-1 for the others."""
    keystore, trust = stores
    port = backend.port
    other, third = tmp_path / "other.jks", tmp_path / "third.jks"
    other.write_bytes(jks(ca, "other"))
    third.write_bytes(jks(ca, "third"))
    star = _profile("*", keystore, trust)
    if next_edit == "removed profile back":
        removed, client, back = _profile(f"localhost:{port}", other, trust), None, None
        want = "other"
    else:
        removed = _client_profile(f"localhost:{port}", other, trust, "y")
        client, back, want = "y", _profile(f"localhost:{port}", third, trust), "third"
    xml = tmp_path / "sslprofiles.xml"
    _write(xml, star, removed)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, b"not a keystore")
        assert profiles.reload() is False
        _write(xml, star)
        assert profiles.reload() is True
        with pytest.raises(ProfileUnavailableError, match="never lent"):
            profiles.context_for("localhost", port, client_id=client)
        _write(xml, star, removed if back is None else back)
        assert profiles.reload() is True
        assert profiles.status().config_error is None
        ctx = profiles.context_for("localhost", port, client_id=client)
        assert whoami(ctx, port)["client_cn"] == want
        assert not any(p.withheld for p in profiles.status().profiles)
        assert (
            whoami(profiles.context_for("127.0.0.1", port), port, "127.0.0.1")["client_cn"]
            == "gen-1"
        )


@pytest.mark.parametrize("refused_as", ["not yet valid", "expired"])
def test_a_withheld_host_stays_refused_when_the_file_loads_with_a_refused_certificate(
    tmp_path, ca, backend, stores, refused_as
):
    """127.0.0.1 refused (added while gw.jks was garbage); gw.jks then holds a
    certificate mtls refuses (not valid yet, expired): 127.0.0.1 was released to gen-1,
    an identity it never had and the file does not hold, and kept it when the file
    went back to garbage (h222, as in a keytool renewal done in steps). It stays
    refused; localhost keeps gen-1; a valid certificate serves both."""
    keystore, _ = stores
    port = backend.port
    now = dt.datetime.now(dt.UTC)
    if refused_as == "expired":
        window = {"not_before": now - dt.timedelta(days=3), "not_after": now - dt.timedelta(days=1)}
    else:
        window = {"not_before": now + dt.timedelta(days=1)}
    with _a_host_withheld(tmp_path, stores, port) as profiles:
        replace_atomically(keystore, jks(ca, "refused", **window))
        profiles.reload()
        _refused_for_its_stores(profiles, "127.0.0.1", port)
        assert _cn(profiles, "localhost", port) == "gen-1"
        replace_atomically(keystore, b"garbage again")
        profiles.reload()
        _refused_for_its_stores(profiles, "127.0.0.1", port)
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"


def test_a_new_profile_on_a_keystore_holding_a_refused_certificate_is_not_lent(
    tmp_path, ca, backend, stores
):
    """gw.jks replaced by a certificate not valid yet while an edit adds a profile for
    127.0.0.1 on it beside localhost's: the new profile was lent the identity in service
    (gen-1), which its host never had and the file no longer holds (h222). It is a new
    profile, built from the file as it is, as the next check builds it (h223: refused at
    the edit, it took the staged certificate at the next check with no file changed):
    its status says peers refuse that certificate. localhost keeps gen-1 (h160); a valid
    certificate serves both."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    mine = _profile(f"localhost:{port}", keystore, trust)
    _write(xml, mine)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        replace_atomically(keystore, jks(ca, "staged", not_before=start))
        _write(xml, mine, _profile(f"127.0.0.1:{port}", keystore, trust))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-1"
        (new,) = [p for p in profiles.status().profiles if p.servers == (f"127.0.0.1:{port}",)]
        assert new.loaded and new.subject is not None and "staged" in new.subject
        assert new.refused is not None and not new.healthy
        assert profiles.reload() is False  # the next check finds nothing to change
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"
        assert _cn(profiles, "localhost", port) == "gen-2"


def _refused_keystore(ca: CA, kind: str) -> bytes:
    """gw.jks holding a certificate mtls does not install through a reload: one staged
    before its start date, one not meant for client authentication, or a self-signed
    one in place of the CA's (peers would take its dates and purpose)."""
    if kind == "staged":
        return jks(ca, "staged", not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    if kind == "self-signed":
        return Keystore.generate("gw", "CN=self-signed", key_type="EC").to_bytes(PASSWORD)
    return jks(ca, "server-only", client_auth=False)


@contextlib.contextmanager
def _added_beside(
    xml: Path, ca: CA, stores: tuple[Path, Path], port: int, kind: str, order: str
) -> Iterator[SSLProfileSet]:
    """A set serving localhost gen-1 from gw.jks, which then holds a refused certificate
    (``kind``, see :func:`_refused_keystore`), and an edit that adds a profile for
    127.0.0.1 on it (written after localhost's, or before: ``order``), applied."""
    keystore, trust = stores
    mine = _profile(f"localhost:{port}", keystore, trust)
    _write(xml, mine)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, _refused_keystore(ca, kind))
        added = _profile(f"127.0.0.1:{port}", keystore, trust)
        _write(xml, *((mine, added) if order == "in service first" else (added, mine)))
        assert profiles.reload() is True
        yield profiles


@pytest.mark.parametrize("kind", ["staged", "not for clients", "self-signed"])
@pytest.mark.parametrize("order", ["in service first", "added first"])
def test_merging_a_profile_with_one_added_on_a_refused_certificate_keeps_the_one_in_service(
    tmp_path, ca, backend, stores, kind, order
):
    """localhost's profile keeps gen-1 while gw.jks holds a certificate mtls refuses to
    install for it (h160); a profile added for 127.0.0.1 on it took that certificate (a
    first load). Merging the two into one profile handed localhost the refused
    certificate, which its backend refuses, whichever came first in the file (h223;
    h225: not only a staged one). The identity kept for the hosts in service stands
    in: the one peers accept, and of two they would (a self-signed one has dates and
    a purpose they take), the one kept against the file's content. 127.0.0.1 never
    had gen-1 and the file no longer holds it: it is refused until the file gives an
    identity; a valid certificate serves both."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    with _added_beside(xml, ca, stores, port, kind, order) as profiles:
        assert _cn(profiles, "localhost", port) == "gen-1"
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-1"
        _refused_for_its_stores(profiles, "127.0.0.1", port)
        (merged,) = profiles.status().profiles
        assert merged.subject is not None and "gen-1" in merged.subject
        assert merged.withheld == (f"127.0.0.1:{port}",)
        assert not profiles.status().healthy  # the refused certificate is reported
        assert profiles.reload() is False  # the next check finds nothing to change
        assert _cn(profiles, "localhost", port) == "gen-1"
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-2"
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"


@pytest.mark.parametrize("order", ["in service first", "added first"])
def test_merging_two_profiles_that_both_keep_an_identity_keeps_the_one_peers_accept(
    tmp_path, ca, backend, stores, order
):
    """localhost keeps gen-1 while gw.jks holds a certificate not meant for clients,
    which a profile added for 127.0.0.1 took; then gw.jks is garbage, so both keep what
    they serve, with an error. Merging them gave localhost the unusable certificate
    when its profile came second in the file (h225): the one peers accept stands in,
    whatever the order."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    with _added_beside(xml, ca, stores, port, "not for clients", order) as profiles:
        replace_atomically(keystore, b"garbage")
        profiles.reload()
        assert len(profiles.status().errors) == 2  # both keep what they serve
        _write(xml, _profile(f"localhost:{port},127.0.0.1:{port}", keystore, trust))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-1"
        _refused_for_its_stores(profiles, "127.0.0.1", port)


def test_a_host_served_through_the_catch_all_keeps_its_identity_in_a_profile_of_its_own(
    tmp_path, ca, backend, stores
):
    """A `*` profile keeps gen-1 while gw.jks holds a certificate staged before its
    start; an edit adds a profile of its own for 127.0.0.1 on gw.jks. 127.0.0.1 had
    gen-1 through `*`; the new profile was built as new and installed the staged
    certificate, which its backend refuses, and the log said it had had none (h225).
    It keeps gen-1 (a host no profile served is a new profile: the twin is
    test_a_new_profile_on_a_keystore_holding_a_refused_certificate_is_not_lent)."""
    keystore, trust = stores
    port = backend.port
    xml = tmp_path / "sslprofiles.xml"
    star = _profile("*", keystore, trust)
    _write(xml, star)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        replace_atomically(keystore, _refused_keystore(ca, "staged"))
        assert profiles.reload() is False
        _write(xml, star, _profile(f"127.0.0.1:{port}", keystore, trust))
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-1"
        assert _cn(profiles, "localhost", port) == "gen-1"  # through `*`, as before
        replace_atomically(keystore, jks(ca, "gen-2"))
        assert profiles.reload() is True
        assert _cn(profiles, "127.0.0.1", port) == "gen-2"


@pytest.mark.parametrize("edit", ["left as it was", "a host added to it", "reordered"])
@pytest.mark.parametrize("kind", ["staged", "not for clients"])
def test_a_new_profile_for_a_host_at_another_port_is_not_lent_the_identity_in_service(
    tmp_path, ca, backend, stores, kind, edit
):
    """localhost:PORT keeps gen-1 while gw.jks holds a certificate mtls refuses for it;
    an edit adds a profile for localhost at another port on gw.jks, and leaves the
    first as it was, adds a host to it, or reorders its servers. Nothing moved:
    localhost:PORT is still served. The new profile was lent gen-1, which that
    host:port never had (h227: "a backend moved to another port keeps it" read a host
    still served at its port as moved; h231: so it did when its profile was edited
    too). It is a new profile, as one for another host is (the twin above)."""
    keystore, trust = stores
    port = backend.port
    other = port + 1 if port < 65535 else port - 1
    xml = tmp_path / "sslprofiles.xml"
    before, after = {
        "left as it was": ([f"localhost:{port}"], [f"localhost:{port}"]),
        "a host added to it": ([f"localhost:{port}"], [f"localhost:{port}", f"foo.example:{port}"]),
        "reordered": (
            [f"localhost:{port}", f"foo.example:{port}"],
            [f"foo.example:{port}", f"localhost:{port}"],
        ),
    }[edit]
    _write(xml, _profile(",".join(before), keystore, trust))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        replace_atomically(keystore, _refused_keystore(ca, kind))
        profiles.reload()
        mine = _profile(",".join(after), keystore, trust)
        _write(xml, mine, _profile(f"localhost:{other}", keystore, trust))
        assert profiles.reload() is True
        assert _cn(profiles, "localhost", port) == "gen-1"
        (new,) = [p for p in profiles.status().profiles if p.servers == (f"localhost:{other}",)]
        assert new.subject is not None and "gen-1" not in new.subject, new.subject
        assert new.refused is not None and not new.healthy
        assert profiles.reload() is False
