"""Incremental reloads: a check patches only the profiles whose files moved.

Every test checks the two things patching could get wrong: the profiles a change
concerns see the new material (or keep their last good, with an error), and every
other profile keeps its very same context object. After each step, the snapshot's
patched maps and the expiry watch's incrementally kept certificates are compared with
the same things computed afresh from the snapshot's entries.
"""

from __future__ import annotations

import datetime as _dt
import ssl
from pathlib import Path

import pytest

import mtls
from mtls._health import certificates_in_use
from mtls._snapshot import Snapshot, build_index
from mtls.testing import CA, IssuedIdentity, replace_atomically
from tests._helpers import (
    PASSWORD,
    profile,
    profile_xml,
    stats_settled,
    write_identity,
    write_trust,
)
from tests.health._certs import issue

DAY = _dt.timedelta(days=1)
KEYSTORES = 4
PER_KEYSTORE = 3


def host(keystore: int, n: int) -> str:
    return f"backend-{keystore}-{n}.internal"


def rewrite(path: Path, identity: IssuedIdentity) -> None:
    """Replace ``path`` atomically with ``identity`` as JKS (a rotation as deployed)."""
    staged = path.with_suffix(".staged")
    write_identity(identity, staged)
    replace_atomically(path, staged.read_bytes())


def snapshot_of(profiles: mtls.SSLProfileSet) -> Snapshot:
    snapshot: Snapshot = profiles._snapshot
    return snapshot


def assert_patched_as_computed(profiles: mtls.SSLProfileSet) -> None:
    """The snapshot's patched index and maps, and the expiry watch's certificates, are
    exactly what a full computation from the snapshot's entries gives."""
    snapshot = snapshot_of(profiles)
    index, fast, fresh = build_index(snapshot.items, None)
    kept = snapshot.materials
    assert kept.served.keys() == fresh.served.keys()
    assert all(kept.served[k] is fresh.served[k] for k in fresh.served)
    assert dict(kept.users) == dict(fresh.users)
    assert dict(kept.readers) == dict(fresh.readers)
    assert kept.retry == fresh.retry
    assert dict(snapshot.index) == index
    assert dict(snapshot.fast) == fast
    health = profiles._health
    health.evaluate(snapshot)
    assert health._in_use.records(snapshot) == certificates_in_use(snapshot)


@pytest.fixture
def estate(tmp_path: Path) -> tuple[CA, list[Path], Path, list[mtls.SSLProfile]]:
    """4 keystores, 3 profiles on each, one shared truststore."""
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    keystores = [
        write_identity(ca.issue_cert(f"client{k}"), tmp_path / f"client{k}.jks")
        for k in range(KEYSTORES)
    ]
    trust_config = mtls.StoreConfig(location=trust, password=mtls.Secret(PASSWORD))
    configs = [
        mtls.StoreConfig(location=path, password=mtls.Secret(PASSWORD)) for path in keystores
    ]
    items = [
        mtls.SSLProfile(servers=((host(k, n), 443),), keystore=configs[k], truststore=trust_config)
        for k in range(KEYSTORES)
        for n in range(PER_KEYSTORE)
    ]
    stats_settled(trust, *keystores)  # else the first check reads them again
    return ca, keystores, trust, items


def contexts(profiles: mtls.SSLProfileSet) -> dict[str, ssl.SSLContext]:
    out: dict[str, ssl.SSLContext] = {}
    for k in range(KEYSTORES):
        for n in range(PER_KEYSTORE):
            ctx = profiles.context_for(host(k, n), 443)
            assert ctx is not None
            out[host(k, n)] = ctx
    return out


def rebuilt(before: dict[str, ssl.SSLContext], profiles: mtls.SSLProfileSet) -> set[str]:
    """The hosts whose context is no longer the very object it was in ``before``."""
    now = contexts(profiles)
    return {name for name in before if now[name] is not before[name]}


def of_keystore(k: int) -> set[str]:
    return {host(k, n) for n in range(PER_KEYSTORE)}


def subject(profiles: mtls.SSLProfileSet, name: str) -> str:
    """The common name the profile for ``name`` presents."""
    (entry,) = [p for p in profiles.status().profiles if p.servers == (f"{name}:443",)]
    assert entry.identity is not None and entry.identity.subject is not None
    return entry.identity.subject.split(",")[0]


def test_a_changed_keystore_rebuilds_only_the_profiles_that_use_it(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
) -> None:
    ca, keystores, _, items = estate
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        before = contexts(profiles)
        rewrite(keystores[1], ca.issue_cert("rotated1"))
        assert profiles.reload()
        assert rebuilt(before, profiles) == of_keystore(1)
        # The three profiles of that keystore share one new context, as at start-up.
        assert len({id(contexts(profiles)[name]) for name in of_keystore(1)}) == 1
        assert subject(profiles, host(1, 0)) == "CN=rotated1"
        assert subject(profiles, host(0, 0)) == "CN=client0"
        assert profiles.generation == 1 and not profiles.errors
        assert_patched_as_computed(profiles)


def test_the_same_bytes_rewritten_rebuild_nothing(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
) -> None:
    _, keystores, _, items = estate
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        before = contexts(profiles)
        old = snapshot_of(profiles)
        replace_atomically(keystores[2], keystores[2].read_bytes())  # new inode, same bytes
        assert not profiles.reload()
        assert not rebuilt(before, profiles)
        assert snapshot_of(profiles).materials is old.materials
        assert profiles.generation == 0
        assert_patched_as_computed(profiles)


def test_a_shared_truststore_change_reads_no_keystore_again(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every profile is rebuilt with the new trust, and each unchanged keystore comes
    from the cache by its surveyed hash: it was read again, file by file, for every
    rebuild (1,000 reads when a truststore behind 1,000 keystores rotates)."""
    import mtls._reading as reading_module

    ca, keystores, trust, items = estate
    read: list[Path] = []
    real = reading_module.read_input

    def counted(path: Path, *args: object, **kwargs: object) -> bytes:
        read.append(Path(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reading_module, "read_input", counted)
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        before = contexts(profiles)
        read.clear()
        other = CA()
        both = ca.truststore()
        both.add("other", other.certificate)
        replace_atomically(trust, both.to_bytes(PASSWORD))
        assert profiles.reload()
        assert rebuilt(before, profiles) == set(before)  # every profile has the new trust
        assert set(read) == {trust}
        # The twin: a keystore that changed as well is read.
        read.clear()
        rewrite(keystores[0], ca.issue_cert("rotated0"))
        replace_atomically(trust, ca.truststore().to_bytes(PASSWORD))
        assert profiles.reload()
        assert set(read) == {trust, keystores[0]}
        assert subject(profiles, host(0, 0)) == "CN=rotated0"
        assert_patched_as_computed(profiles)


def test_a_change_that_fails_keeps_the_last_good_of_only_those_profiles(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
) -> None:
    ca, keystores, _, items = estate
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        before = contexts(profiles)
        replace_atomically(keystores[2], b"not a keystore at all")
        profiles.reload()
        assert not rebuilt(before, profiles)  # the last good, every one
        failing = {p.servers[0] for p in profiles.status().profiles if p.error is not None}
        assert failing == {f"{name}:443" for name in of_keystore(2)}
        assert all(str(keystores[2]) in str(error) for error in profiles.errors)
        assert_patched_as_computed(profiles)
        # Meanwhile another keystore rotates: it is applied; the failing ones keep theirs.
        rewrite(keystores[0], ca.issue_cert("rotated0"))
        assert profiles.reload()
        assert rebuilt(before, profiles) == of_keystore(0)
        again = contexts(profiles)
        assert len(profiles.errors) == PER_KEYSTORE
        assert_patched_as_computed(profiles)
        # The fix is picked up, and the set is clean again.
        rewrite(keystores[2], ca.issue_cert("fixed2"))
        assert profiles.reload()
        assert rebuilt(again, profiles) == of_keystore(2)
        assert not profiles.errors and subject(profiles, host(2, 1)) == "CN=fixed2"
        assert_patched_as_computed(profiles)


def test_a_shared_truststore_gone_is_one_warning_not_one_per_profile(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sweep removed the truststore 200 profiles share: 400 warning lines, one per
    profile and one "resolved" per profile. The same error is one problem: one line
    naming how many profiles and the first few, and one "resolved"; each profile's
    own error stays in status()."""
    import logging

    _, _, trust, items = estate
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet(items, settle_delay=0) as profiles,
    ):
        good = trust.read_bytes()
        trust.unlink()
        assert profiles.reload() is False
        assert len(profiles.errors) == KEYSTORES * PER_KEYSTORE  # each profile says so
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1, warned
        assert f": {KEYSTORES * PER_KEYSTORE} profiles (backend-0-0.internal:443; " in warned[0]
        assert "; and 9 more)" in warned[0] and "keeping their last good contexts" in warned[0]
        replace_atomically(trust, good)
        profiles.reload()
        resolved = [r.getMessage() for r in caplog.records if "resolved" in r.getMessage()]
        assert len(resolved) == 1 and not profiles.errors
        # A keystore of three profiles: all three named, none "more" (a single
        # profile's failure keeps its own line: test_the_same_reload_failure_is_warned_once).
        caplog.clear()
        replace_atomically(items[0].keystore.location, b"garbage")  # type: ignore[union-attr]
        profiles.reload()
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        names = "; ".join(f"{host(0, n)}:443" for n in range(PER_KEYSTORE))
        assert len(warned) == 1 and f": 3 profiles ({names}): " in warned[0]


def _counting_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts of every profile the builder is asked to build, as they come."""
    from mtls._build import Builder

    asked: list[str] = []
    real = Builder.build

    def build(self: Builder, profile: mtls.SSLProfile, **kwargs: object) -> object:
        asked.append(profile.servers[0][0])
        return real(self, profile, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Builder, "build", build)
    return asked


def test_a_replacement_refused_for_its_bytes_is_not_rebuilt_until_a_file_moves(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A truststore all of whose anchors expired is refused; every profile behind it
    keeps its last good, with the error, and was rebuilt at every check to be refused
    again (9 ms a check for 100 profiles). Refused for the files' bytes, the same
    files are not built again; the fixed file is, at the next check."""
    ca, keystores, trust, items = estate
    asked = _counting_builds(monkeypatch)
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        before = contexts(profiles)
        expired = CA(name="expired CA", not_after=_dt.datetime.now(_dt.UTC) - DAY)
        replace_atomically(trust, expired.truststore().to_bytes(PASSWORD))
        assert profiles.reload() is False
        assert len(profiles.errors) == len(items) and not rebuilt(before, profiles)
        asked.clear()
        for _ in range(3):
            assert profiles.reload() is False
        assert asked == []  # nothing built: the same bytes give the same refusal
        assert len(profiles.errors) == len(items)  # and it is still reported
        assert_patched_as_computed(profiles)
        # A keystore of one group moves: only its profiles are built (and still refused).
        rewrite(keystores[1], ca.issue_cert("rotated1"))
        profiles.reload()
        assert sorted(set(asked)) == sorted(of_keystore(1))
        # The fix: the next check installs it everywhere.
        asked.clear()
        fixed = ca.truststore()
        fixed.add("other", CA(name="other CA").certificate)
        replace_atomically(trust, fixed.to_bytes(PASSWORD))
        assert profiles.reload() is True
        assert not profiles.errors and len(set(asked)) == len(items)
        assert len(profiles.context_for(host(2, 0), 443).get_ca_certs()) == 2
        assert subject(profiles, host(1, 0)) == "CN=rotated1"
        assert_patched_as_computed(profiles)


def test_a_refusal_for_other_bytes_saying_the_same_is_not_rebuilt_either(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refused truststore written again as other bytes that are refused the same
    way (another expired CA added): the entries are replaced, with the digests
    of the bytes now, so the checks after build nothing. (Kept as they were because
    the message did not change, they carried the old digests and were rebuilt at
    every check.)"""
    _, _, trust, items = estate
    asked = _counting_builds(monkeypatch)
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        expired = CA(name="expired CA", not_after=_dt.datetime.now(_dt.UTC) - DAY)
        refused = expired.truststore()
        replace_atomically(trust, refused.to_bytes(PASSWORD))
        assert profiles.reload() is False
        said = sorted(str(e) for e in profiles.errors)
        other = CA(name="expired CA 2", not_after=_dt.datetime.now(_dt.UTC) - DAY)
        refused.add("second", other.certificate)  # refused the same way, other bytes
        again = refused.to_bytes(PASSWORD)
        asked.clear()
        replace_atomically(trust, again)
        assert profiles.reload() is False
        assert sorted(str(e) for e in profiles.errors) == said  # refused the same way
        assert len(set(asked)) == len(items)  # the moved file's profiles were built
        asked.clear()
        for _ in range(3):
            assert profiles.reload() is False
        assert asked == []  # and not again while the bytes stay


def test_a_refusal_that_may_pass_with_time_or_retry_is_built_every_check(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The twins: what is not refused for the bytes alone is retried at every check:
    a certificate not valid yet (the first check after its start installs it), and a
    file that cannot be opened (a descriptor limit, a permission: not the bytes)."""
    ca, keystores, _, items = estate
    asked = _counting_builds(monkeypatch)
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        later = _dt.datetime.now(_dt.UTC) + DAY
        rewrite(keystores[0], ca.issue_cert("staged", not_before=later))
        assert profiles.reload() is False and "not valid before" in str(profiles.last_error)
        asked.clear()
        profiles.reload()
        assert sorted(set(asked)) == sorted(of_keystore(0))  # retried
        keystores[2].unlink()
        profiles.reload()
        asked.clear()
        profiles.reload()
        assert set(of_keystore(2)) <= set(asked)  # a file that cannot be read: retried


def test_a_profile_that_never_loaded_is_retried_until_its_keystore_appears(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
) -> None:
    ca, keystores, _, items = estate
    keystores[3].unlink()
    with mtls.SSLProfileSet(items, settle_delay=0, skip_failures=True) as profiles:
        assert len(profiles.failures) == PER_KEYSTORE
        with pytest.raises(mtls.ProfileUnavailableError):
            profiles.context_for(host(3, 0), 443)
        loaded = {name: profiles.context_for(name, 443) for name in (host(0, 0), host(2, 2))}
        assert_patched_as_computed(profiles)
        assert not profiles.reload()  # still missing: nothing changes
        write_identity(ca.issue_cert("late3"), keystores[3])
        assert profiles.reload()
        assert not profiles.failures
        assert subject(profiles, host(3, 0)) == "CN=late3"
        assert all(profiles.context_for(n, 443) is ctx for n, ctx in loaded.items())
        assert_patched_as_computed(profiles)


def test_a_rewritten_profile_file_that_adds_and_removes_profiles_is_indexed_afresh(
    tmp_path: Path,
) -> None:
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    stores = [write_identity(ca.issue_cert(f"c{k}"), tmp_path / f"c{k}.jks") for k in range(3)]
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(
            profile("kept.internal:443", stores[0], trust),
            profile("removed.internal:443", stores[1], trust),
        )
    )
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        kept = profiles.context_for("kept.internal", 443)
        assert profiles.context_for("removed.internal", 443) is not None
        replace_atomically(
            xml,
            profile_xml(
                profile("kept.internal:443", stores[0], trust),
                profile("added.internal:443", stores[2], trust),
            ).encode(),
        )
        assert profiles.reload()
        assert profiles.context_for("removed.internal", 443) is None  # no default: no match
        assert profiles.context_for("kept.internal", 443) is kept
        added = profiles.context_for("added.internal", 443)
        assert added is not None and added is not kept
        assert sorted(p.server_names for p in profiles.profiles) == [
            ("added.internal:443",),
            ("kept.internal:443",),
        ]
        assert_patched_as_computed(profiles)
        # The removed profile's keystore is no longer watched: a change to it is no change.
        rewrite(stores[1], ca.issue_cert("ignored"))
        assert not profiles.reload()
        # Patching goes on from the new file's profiles.
        rewrite(stores[2], ca.issue_cert("c2-rotated"))
        assert profiles.reload()
        assert profiles.context_for("kept.internal", 443) is kept
        assert profiles.context_for("added.internal", 443) is not added
        assert_patched_as_computed(profiles)


def test_the_expiry_watch_after_incremental_updates_matches_a_full_computation(
    estate: tuple[CA, list[Path], Path, list[mtls.SSLProfile]],
) -> None:
    ca, keystores, _, items = estate
    events: list[mtls.HealthEvent] = []
    with mtls.SSLProfileSet(items, settle_delay=0) as profiles:
        profiles.on_health(events.append)
        assert not profiles.check_health()  # every certificate far from its end
        near = issue(ca, left=5 * DAY, name="near1")
        rewrite(keystores[1], near)
        assert profiles.reload()
        assert_patched_as_computed(profiles)
        (event,) = events
        assert event.kind == "expiring" and event.role == "identity"
        assert event.subject is not None and event.subject.startswith("CN=near1,")
        assert event.servers == tuple(sorted(f"{name}:443" for name in of_keystore(1)))
        # Announced once: further checks and evaluations say nothing more about it.
        assert not profiles.check_health()
        rewrite(keystores[0], ca.issue_cert("far0"))
        assert profiles.reload()
        assert len(events) == 1
        assert_patched_as_computed(profiles)
        # Rotated out, it is forgotten; the same certificate back is announced afresh.
        rewrite(keystores[1], ca.issue_cert("far1"))
        assert profiles.reload()
        assert_patched_as_computed(profiles)
        assert near.fingerprint_sha256 not in {
            fp for fp, *_ in certificates_in_use(snapshot_of(profiles))
        }
        rewrite(keystores[3], near)
        assert profiles.reload()
        assert len(events) == 2
        assert events[1].fingerprint == event.fingerprint
        assert events[1].servers == tuple(sorted(f"{host(3, n)}:443" for n in range(PER_KEYSTORE)))
        assert_patched_as_computed(profiles)


def test_a_grouped_problem_that_shrinks_or_regroups_is_not_called_resolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two profiles on one broken keystore are one warning. When one of them leaves
    (its profile now names another keystore), the other is still broken: the log said
    "resolved: 2 profiles (...)". It now names only the one that left; a profile that
    joins another's problem is regrouped, not resolved; the fix is one "resolved"."""
    import logging

    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    broken = write_identity(ca.issue_cert("one"), tmp_path / "one.jks")
    good = write_identity(ca.issue_cert("two"), tmp_path / "two.jks")
    xml = tmp_path / "profiles.xml"

    def write(b_keystore: Path, a_servers: str = "a.internal:443") -> None:
        replace_atomically(
            xml,
            profile_xml(
                profile(a_servers, broken, trust),
                profile("b.internal:443", b_keystore, trust),
            ).encode(),
        )

    def lines() -> list[str]:
        out = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        caplog.clear()
        return out

    write(broken)
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles,
    ):
        kept = broken.read_bytes()
        replace_atomically(broken, b"garbage")
        assert profiles.reload() is False
        (grouped,) = lines()
        assert "2 profiles (a.internal:443; b.internal:443)" in grouped
        # b leaves for a good keystore: a alone is still broken, and says so.
        write(good)
        profiles.reload()
        warned = lines()
        assert len(warned) == 2, warned
        assert f"profile a.internal:443: {broken}: " in warned[0]
        assert warned[0].endswith("keeping its last good context")
        assert ": resolved for b.internal:443: 2 profiles (" in warned[1]
        assert [e.servers for e in profiles.errors] == [("a.internal:443",)]
        # b comes back to the broken keystore: a's problem is now two profiles' (no
        # "resolved" for a, whose keystore is as broken as before).
        write(broken)
        profiles.reload()
        (regrouped,) = lines()
        assert "2 profiles (a.internal:443; b.internal:443)" in regrouped
        # a's servers reordered, and hosts added: still a problem of the same profile,
        # said again (its line changed: it names the added hosts it refuses, which its
        # last good never served), and nothing "resolved".
        write(broken, "a2.internal:443,a.internal:443")
        profiles.reload()
        write(broken, "a.internal:443,a2.internal:443,a3.internal:443")
        profiles.reload()
        warned = lines()
        assert not any("resolved" in line for line in warned), warned
        assert warned[-1].endswith("refusing until it loads: a2.internal:443, a3.internal:443")
        # The fix: said for each problem (a's, apart now, and b's), each once.
        replace_atomically(broken, kept)
        assert profiles.reload() is True
        resolved = lines()
        assert len(resolved) == 2 and not profiles.errors, resolved
        assert all(": resolved: profile " in line for line in resolved), resolved
        assert {"a3.internal:443" in line for line in resolved} == {True, False}


def test_a_problem_whose_profile_was_removed_is_not_called_resolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing profile taken out of the file was logged as "resolved:", as if its
    store had been fixed: whoever had the warning thought the backend would work. Its
    end now says "no longer configured"; a group that loses one profile that way and
    one that is fixed says each."""
    import logging

    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    broken = write_identity(ca.issue_cert("one"), tmp_path / "one.jks")
    good = write_identity(ca.issue_cert("two"), tmp_path / "two.jks")
    xml = tmp_path / "profiles.xml"

    def write(*entries: tuple[str, Path]) -> None:
        body = profile_xml(*(profile(servers, store, trust) for servers, store in entries))
        replace_atomically(xml, body.encode())

    def lines() -> list[str]:
        out = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        caplog.clear()
        return out

    write(("a.internal:443", broken), ("b.internal:443", broken), ("c.internal:443", broken))
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles,
    ):
        kept = broken.read_bytes()
        replace_atomically(broken, b"garbage")
        profiles.reload()
        (grouped,) = lines()
        assert "3 profiles (a.internal:443; b.internal:443; c.internal:443)" in grouped
        # b is taken out of the file, c moves to a good keystore: a still fails.
        write(("a.internal:443", broken), ("c.internal:443", good))
        profiles.reload()
        warned = lines()
        assert len(warned) == 3, warned
        assert f"profile a.internal:443: {broken}: " in warned[0]
        assert ": resolved for c.internal:443: 3 profiles (" in warned[1]
        assert ": no longer configured for b.internal:443: 3 profiles (" in warned[2]
        # a is taken out too: its problem ends, and not as fixed.
        write(("c.internal:443", good))
        profiles.reload()
        (ended,) = lines()
        assert ": no longer configured: profile a.internal:443: " in ended, ended
        assert "resolved" not in ended
        assert not profiles.errors
        # A profile that fails and is fixed still says "resolved" (the contrast).
        write(("c.internal:443", good), ("d.internal:443", broken))
        profiles.reload()
        (failing,) = lines()
        assert "profile d.internal:443" in failing
        replace_atomically(broken, kept)
        profiles.reload()
        (fixed,) = lines()
        assert ": resolved: profile d.internal:443: " in fixed, fixed


# ------------------------------------------------------------- what stays broken


def _one_profile(tmp_path: Path, **kwargs: object) -> tuple[CA, Path, mtls.SSLProfile]:
    """A CA, the keystore file of one profile for backend.test:443, and the profile."""
    ca = CA(name="stays-broken CA")
    keystore = write_identity(ca.issue_cert("gw", common_name="gw"), tmp_path / "gw.jks")
    trust = write_trust(ca, tmp_path / "trust.jks")
    item = mtls.SSLProfile(
        servers=(("backend.test", 443),),
        keystore=mtls.StoreConfig(location=keystore, password=mtls.Secret(PASSWORD)),
        truststore=mtls.StoreConfig(location=trust, password=mtls.Secret(PASSWORD)),
        **kwargs,  # type: ignore[arg-type]
    )
    return ca, keystore, item


def _stage(keystore: Path, identity: IssuedIdentity) -> None:
    staged = keystore.with_name("staged.jks")
    write_identity(identity, staged)
    replace_atomically(keystore, staged.read_bytes())


@pytest.mark.parametrize("case", ["default-never-loaded", "default-gone", "with-crls"])
def test_what_stays_broken_publishes_nothing_new_at_each_check(tmp_path: Path, case: str) -> None:
    """A default profile that never loaded, or whose keystore went missing, and a
    profile with CRLs whose replacement keystore is refused for its bytes (such a
    refusal carries no digests): each check retries them; failing as before, the set
    publishes nothing new (a review found these three still did)."""
    ca, keystore, item = _one_profile(tmp_path)
    if case == "with-crls":
        crl = tmp_path / "ca.crl"
        crl.write_bytes(ca.crl())
        item = mtls.SSLProfile(
            servers=item.servers, keystore=item.keystore, truststore=item.truststore, crls=(crl,)
        )
        profiles = mtls.SSLProfileSet([item], settle_delay=0)
        expired = ca.issue_cert("gw", common_name="gw", not_after=_dt.datetime.now(_dt.UTC) - DAY)
        _stage(keystore, expired)
    else:
        default_keystore = tmp_path / "default.jks"
        default_keystore.write_bytes(keystore.read_bytes())
        default = mtls.SSLProfile(
            servers=(("default.invalid", 1),),
            keystore=mtls.StoreConfig(location=default_keystore, password=mtls.Secret(PASSWORD)),
            truststore=item.truststore,
        )
        if case == "default-never-loaded":
            default_keystore.unlink()
        profiles = mtls.SSLProfileSet([item], default=default, settle_delay=0, skip_failures=True)
        if case == "default-gone":
            default_keystore.unlink()
    with profiles:
        assert profiles.reload(force=True) is False
        assert profiles.errors
        first = profiles._snapshot
        for _ in range(3):
            assert profiles.reload(force=True) is False
            assert profiles._snapshot is first


def test_a_refusal_saying_something_new_is_published(tmp_path: Path) -> None:
    """The twin: a replacement refused as not valid yet, then another refused the
    same way with another start date (the same error type, the same identity in
    service, another message): the new message is published, not the old one kept."""
    ca, keystore, item = _one_profile(tmp_path)
    now = _dt.datetime.now(_dt.UTC)
    with mtls.SSLProfileSet([item], settle_delay=0) as profiles:
        _stage(keystore, ca.issue_cert("gw", common_name="gw", not_before=now + 2 * DAY))
        assert profiles.reload() is False
        said, first = str(profiles.errors[0]), profiles._snapshot
        _stage(keystore, ca.issue_cert("gw", common_name="gw", not_before=now + 5 * DAY))
        assert profiles.reload() is False
        now_said = str(profiles.errors[0])
        assert now_said != said and profiles._snapshot is not first
        assert str(profiles.status().profiles[0].error) == now_said


def test_an_error_names_the_file_of_its_profile_when_another_has_the_same_bytes(
    tmp_path: Path,
) -> None:
    """Two keystores with the same bytes: the second profile's <KeyAlias> is wrong. The
    store read for the first was shared, and the error named the first file (h218).
    Twin: the first profile, whose alias is right, loads."""
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    first = write_identity(ca.issue_cert("one"), tmp_path / "a.jks")
    copy = tmp_path / "b.jks"
    copy.write_bytes(first.read_bytes())
    wrong = profile("b.example:443", copy, trust).replace(
        "</KeyStore>", "<KeyAlias>typo</KeyAlias></KeyStore>"
    )
    xml = tmp_path / "profiles.xml"
    xml.write_text(profile_xml(profile("a.example:443", first, trust), wrong))
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True) as profiles:
        assert isinstance(profiles.context_for("a.example", 443), ssl.SSLContext)
        with pytest.raises(mtls.ProfileUnavailableError) as info:
            profiles.context_for("b.example", 443)
        assert "typo" in str(info.value) and str(copy) in str(info.value)
        assert str(first) not in str(info.value)
        (error,) = profiles.errors
        assert error.path == str(copy)


def test_a_cached_store_failure_keeps_no_frames_of_its_check(tmp_path: Path) -> None:
    """A keystore on a wrong password fails the same at every check without a parse;
    the failure kept for that held the frames of the check that raised it (the file's
    bytes, the material in service) until the file changed, close() or not (h218)."""
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    first = write_identity(ca.issue_cert("one"), tmp_path / "a.jks")
    second = write_identity(ca.issue_cert("two"), tmp_path / "b.jks")
    xml = tmp_path / "profiles.xml"
    xml.write_text(
        profile_xml(profile("a.example:443", first, trust), profile("b.example:443", second, trust))
    )
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        ca.issue_cert("two-2").write_keystore(second, "another-password")
        ca.issue_cert("one-2").write_keystore(first, PASSWORD)
        assert profiles.reload(force=True) is True  # a's rotation; b's refused
        assert [e.servers for e in profiles.errors] == [("b.example:443",)]
        failed = list(profiles._engine._plan.builder._failed.values())  # type: ignore[union-attr]
    assert failed, "the failure is cached (what this test is about)"
    assert all(exc.__traceback__ is None for exc in failed)


def test_status_shows_each_truststore_s_own_aliases(tmp_path: Path) -> None:
    """Two truststore files with the same CA under other aliases: the second profile's
    status() showed the first file's alias (records kept by the anchors' fingerprint,
    which leaves aliases out; h218). Twin: the first shows its own."""
    ca = CA()
    keystore = write_identity(ca.issue_cert("one"), tmp_path / "k.jks")
    trusts = []
    for name in ("first-alias", "second-alias"):
        store = mtls.Truststore()
        store.add(name, ca.certificate)
        store.save(tmp_path / f"{name}.jks", PASSWORD)
        trusts.append(tmp_path / f"{name}.jks")
    xml = tmp_path / "profiles.xml"
    xml.write_text(
        profile_xml(
            profile("a.example:443", keystore, trusts[0]),
            profile("b.example:443", keystore, trusts[1]),
        )
    )
    with mtls.SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        shown = {p.servers[0]: [a.alias for a in p.anchors] for p in profiles.status().profiles}
    assert shown == {"a.example:443": ["first-alias"], "b.example:443": ["second-alias"]}
