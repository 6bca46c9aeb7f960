"""A set's own thread calling it again in the middle of a check: what a signal handler
does (Python runs handlers on the main thread, between two steps of whatever it was
doing), and a secret resolver or clock that asks the set. Each deadlocked on a lock
the same thread held (h184: a SIGUSR1 "dump health" handler calling status() during
reload(), a SIGHUP handler calling reload())."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mtls
from mtls.testing import CA, replace_atomically, write_profiles_file


def _set(tmp_path: Path, **kwargs: object) -> tuple[mtls.SSLProfileSet, Path, CA]:
    ca = CA()
    xml = write_profiles_file(
        tmp_path, ["backend.internal:8443"], identity=ca.issue_cert("client"), ca=ca
    )
    return mtls.SSLProfileSet.from_xml(xml, **kwargs), xml, ca  # type: ignore[arg-type]


def test_status_and_reload_from_inside_the_health_judging(tmp_path: Path) -> None:
    """The health watch holds its lock while it judges (here, its clock is asked):
    status() from the same thread waited for it for ever. Now status() answers, and a
    reload() there checks without judging again inside the judging (the next check
    judges). The twin: the reload after it, from outside, judges as usual."""
    profiles, _, ca = _set(tmp_path, reload_interval=None, settle_delay=0)
    seen: list[object] = []

    def clock() -> dt.datetime:
        if not seen:
            seen.append(profiles.status().reloads)
            seen.append(profiles.reload(force=True))
            seen.append(profiles.check_health())
        return dt.datetime.now(dt.UTC)

    profiles._health._clock = clock  # type: ignore[attr-defined]
    keystore = tmp_path / "client-keystore.jks"
    replace_atomically(keystore, ca.issue_cert("client2").keystore().to_bytes("wso2carbon"))
    with profiles:
        assert profiles.reload() is True  # judged: the clock asked the set, and got answers
        assert len(seen) == 3 and isinstance(seen[0], mtls.ReloadCounts)
        assert seen[1] is False and seen[2] == ()  # nothing new; no judging inside judging
        assert profiles.status().reloads.changed == 1
        replace_atomically(keystore, ca.issue_cert("client3").keystore().to_bytes("wso2carbon"))
        assert profiles.reload() is True
        assert profiles.status().reloads.changed == 2


def test_reload_from_inside_a_check_under_its_lock(tmp_path: Path) -> None:
    """A secret resolver runs inside the check, under the set's lock: reload() there
    (as a signal handler's would, landing then) waited for that lock for ever. It
    returns False now; the check under way applies what changed."""
    ca = CA()
    write_profiles_file(tmp_path, ["backend.internal:8443"], identity=ca.issue_cert("c"), ca=ca)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(xml.read_text().replace("<Password>wso2carbon</Password>",
                                           "<Password>$secret{store}</Password>"))  # fmt: skip
    inner: list[bool] = []
    holder: list[mtls.SSLProfileSet] = []

    def resolver(alias: str) -> str:
        if holder:
            inner.append(holder[0].reload(force=True))
        return "wso2carbon"

    profiles = mtls.SSLProfileSet.from_xml(xml, secret_resolver=resolver, reload_interval=None)
    holder.append(profiles)
    with profiles:
        xml.write_text(xml.read_text().replace("backend.internal", "orders.internal"))
        assert profiles.reload(force=True) is True
        assert inner and not any(inner)
        assert profiles.context_for("orders.internal", 8443) is not None
