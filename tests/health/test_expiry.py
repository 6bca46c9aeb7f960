"""Expiry watched over time: thresholds crossed once each, health events, the log."""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
from pathlib import Path

import pytest

import mtls
from mtls.testing import CA
from tests._helpers import PASSWORD, wait_for, write_identity
from tests.health._certs import issue, profile_for, utcnow

DAY = _dt.timedelta(days=1)


def _set(*profiles: mtls.SSLProfile, **kwargs: object) -> mtls.SSLProfileSet:
    return mtls.SSLProfileSet(profiles, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- thresholds


def test_a_certificate_inside_two_thresholds_is_announced_once_for_the_tightest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA()
    client = issue(ca, left=5 * DAY)
    seen: list[mtls.HealthEvent] = []
    with _set(profile_for(tmp_path, client, ca)) as profiles:
        profiles.on_health(seen.append)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            events = profiles.check_health()
        assert [(e.kind, e.role, e.threshold) for e in events] == [
            ("expiring", "identity", 7 * DAY)
        ]
        event = events[0]
        assert seen == [event]
        assert event.servers == ("backend.internal:8443",)
        assert event.subject == client.subject
        assert event.serial == client.serial_number
        assert event.fingerprint == client.fingerprint_sha256.replace(":", "").lower()
        assert event.days_left == 4
        assert event.not_after == client.certificate.not_valid_after_utc
        # The log says what, for whom, and when, once.
        lines = [r for r in caplog.records if "client certificate" in r.getMessage()]
        assert len(lines) == 1
        assert lines[0].levelno == logging.WARNING
        assert "backend.internal:8443" in lines[0].getMessage()
        assert "expires in 4 days" in lines[0].getMessage()
        # Not on every check: the same threshold is never announced twice.
        caplog.clear()
        assert profiles.check_health() == ()
        assert profiles.reload() is False
        assert seen == [event]
        assert not [r for r in caplog.records if "client certificate" in r.getMessage()]


def test_a_certificate_far_from_its_end_is_not_announced(tmp_path: Path) -> None:
    ca = CA()
    with _set(profile_for(tmp_path, issue(ca, left=400 * DAY), ca)) as profiles:
        assert profiles.check_health() == ()


def test_the_thresholds_are_configurable(tmp_path: Path) -> None:
    ca = CA()
    profile = profile_for(tmp_path, issue(ca, left=50 * DAY), ca)
    with _set(profile) as default:
        assert default.check_health() == ()  # 30, 7 and 1 days
        assert default.status().expiry_warnings == (30 * DAY, 7 * DAY, DAY)
    with _set(profile, expiry_warnings=(90, 60)) as wide:
        (event,) = wide.check_health()
        assert event.threshold == 60 * DAY
        assert wide.status().to_dict()["expiry_warnings"] == [90 * 86400.0, 60 * 86400.0]


@pytest.mark.parametrize(
    "bad", [(0,), (-1,), (float("nan"),), (True,), ("30",), "30", (_dt.timedelta(0),)]
)
def test_bad_thresholds_are_refused_before_anything_loads(bad: object) -> None:
    with pytest.raises(ValueError, match="expiry_warnings"):
        mtls.SSLProfileSet([], expiry_warnings=bad)  # type: ignore[arg-type]


def test_no_thresholds_still_announces_expiry(tmp_path: Path) -> None:
    ca = CA()
    soon = profile_for(tmp_path, issue(ca, left=DAY / 2), ca, servers=("soon:1",))
    gone = profile_for(tmp_path, issue(ca, left=-DAY), ca, servers=("gone:1",), name="gone")
    with _set(soon, gone, expiry_warnings=()) as profiles:
        (event,) = profiles.check_health()
        assert (event.kind, event.servers) == ("expired", ("gone:1",))


# --------------------------------------------------------------------------- expired


def test_an_expired_identity_is_an_error_in_the_log_and_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA()
    client = issue(ca, left=-2 * DAY)
    with _set(profile_for(tmp_path, client, ca)) as profiles:
        with caplog.at_level(logging.WARNING, logger="mtls"):
            (event,) = profiles.check_health()
        assert event.kind == "expired"
        assert event.role == "identity"
        assert event.threshold is None
        assert event.days_left == -3  # floored, as status() does: two days and a bit
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "expired 2 days ago" in errors[0].getMessage()
        assert client.subject in errors[0].getMessage()
        assert profiles.check_health() == ()  # once


def test_an_expired_anchor_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    ca = CA(not_before=now - 400 * DAY, not_after=now - DAY)
    client = CA().issue_cert("client")  # valid, from another CA
    with _set(profile_for(tmp_path, client, ca)) as profiles:
        with caplog.at_level(logging.WARNING, logger="mtls"):
            (event,) = profiles.check_health()
        assert (event.kind, event.role, event.subject) == (
            "expired",
            "anchor",
            ca.certificate.subject.rfc4514_string(),
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r for r in caplog.records if "trust anchor" in r.getMessage()]


# --------------------------------------------------------------------------- chains and anchors


def test_the_presented_chain_and_the_anchors_are_watched(tmp_path: Path) -> None:
    now = utcnow()
    # Long validities near their ends (a 21-day CA is not "expiring" at its start).
    root = CA(not_before=now - 100 * DAY, not_after=now + 20 * DAY)
    intermediate = root.create_child_ca(not_before=now - 100 * DAY, not_after=now + 5 * DAY)
    client = intermediate.issue_cert("client", not_after=now + 300 * DAY)
    with _set(profile_for(tmp_path, client, root)) as profiles:
        events = {e.role: e for e in profiles.check_health()}
        assert set(events) == {"chain", "anchor"}  # the identity has 300 days
        assert events["chain"].threshold == 7 * DAY
        assert events["chain"].subject == intermediate.certificate.subject.rfc4514_string()
        assert events["anchor"].threshold == 30 * DAY
        # status() names the anchors expiring soonest, with their fingerprints.
        (status,) = profiles.status().profiles
        assert status.anchors[0].fingerprint == events["anchor"].fingerprint
        assert status.anchors[0].days_left == 19
        assert status.identity is not None
        assert status.identity.fingerprint is not None
        assert status.identity.fingerprint != events["chain"].fingerprint


def test_a_certificate_shared_by_profiles_is_one_event_naming_them_all(tmp_path: Path) -> None:
    ca = CA()
    client = issue(ca, left=3 * DAY)
    one = profile_for(tmp_path, client, ca, servers=("a.internal:443",))
    two = profile_for(tmp_path, client, ca, servers=("b.internal:443", "c.internal:443"))
    default = profile_for(tmp_path, client, ca, servers=("*",), name="default")
    with mtls.SSLProfileSet([one, two], default=default) as profiles:
        (event,) = profiles.check_health()
        assert event.servers == ("*", "a.internal:443", "b.internal:443", "c.internal:443")


def test_a_profile_that_never_loaded_contributes_nothing(tmp_path: Path) -> None:
    ca = CA()
    good = profile_for(tmp_path, issue(ca, left=400 * DAY), ca, servers=("good:1",))
    broken = profile_for(tmp_path, issue(ca, left=2 * DAY), ca, servers=("bad:1",), name="x")
    assert broken.keystore is not None
    broken.keystore.location.write_bytes(b"not a keystore")
    with _set(good, broken, skip_failures=True) as profiles:
        assert profiles.check_health() == ()
        assert profiles.status().profiles[1].loaded is False


# --------------------------------------------------------------------------- rotation


def test_a_rotated_certificate_is_announced_afresh(tmp_path: Path) -> None:
    ca = CA()
    first = issue(ca, left=5 * DAY)
    profile = profile_for(tmp_path, first, ca)
    assert profile.keystore is not None
    path = profile.keystore.location
    seen: list[int | None] = []
    with _set(profile) as profiles:
        profiles.on_health(lambda e: seen.append(e.serial))
        profiles.check_health()
        assert seen == [first.serial_number]
        # Rotated out, the first certificate is forgotten: when it comes back (a
        # rollback), it is announced again, as is the one in between.
        newer = issue(ca, left=6 * DAY)
        write_identity(newer, path)
        assert profiles.reload() is True  # reload() evaluates too, after its check
        write_identity(first, path)
        assert profiles.reload() is True
        assert seen == [first.serial_number, newer.serial_number, first.serial_number]
        assert profiles.check_health() == ()


def test_an_older_snapshot_evaluated_late_never_rolls_the_watch_back(tmp_path: Path) -> None:
    """check_health() reads the snapshot, and a reload publishes and evaluates a newer
    one before check_health's evaluation runs (reload() and the thread evaluate outside
    the engine's lock). Going back to the older snapshot forgot what had been announced
    for the new certificate, and the next check announced it again."""
    ca = CA()
    profile = profile_for(tmp_path, issue(ca, left=400 * DAY), ca)
    seen: list[mtls.HealthEvent] = []
    with _set(profile) as profiles:
        profiles.on_health(seen.append)
        read_first = profiles._snapshot  # what check_health() read, then lost the CPU
        assert profile.keystore is not None
        newer = issue(ca, left=6 * DAY)
        write_identity(newer, profile.keystore.location)
        assert profiles.reload() is True  # publishes and evaluates the newer snapshot
        assert profiles._health.evaluate(read_first) == ()  # the late evaluation
        assert profiles.reload() is False  # the next check: nothing new to say
        assert profiles.check_health() == ()
        assert [(e.serial, e.threshold) for e in seen] == [(newer.serial_number, 7 * DAY)]


def test_reload_delivers_the_events_of_its_check(tmp_path: Path) -> None:
    ca = CA()
    profile = profile_for(tmp_path, issue(ca, left=400 * DAY), ca)
    seen: list[mtls.HealthEvent] = []
    with _set(profile) as profiles:
        profiles.on_health(seen.append)
        assert profile.keystore is not None
        newer = issue(ca, left=6 * DAY)
        write_identity(newer, profile.keystore.location)
        assert profiles.reload() is True
        assert [(e.serial, e.threshold) for e in seen] == [(newer.serial_number, 7 * DAY)]


# --------------------------------------------------------------------------- callbacks


def test_a_callback_that_raises_is_logged_and_the_others_still_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA()
    seen: list[mtls.HealthEvent] = []

    def broken(event: mtls.HealthEvent) -> None:
        raise RuntimeError("pager down")

    with _set(profile_for(tmp_path, issue(ca, left=3 * DAY), ca)) as profiles:
        profiles.on_health(broken)
        unsubscribe = profiles.on_health(seen.append)
        with caplog.at_level(logging.ERROR, logger="mtls"):
            events = profiles.check_health()
        assert len(events) == 1
        assert seen == list(events)
        assert any("health callback raised" in r.getMessage() for r in caplog.records)
        unsubscribe()
        unsubscribe()  # idempotent


def test_event_to_dict_is_json_ready(tmp_path: Path) -> None:
    ca = CA()
    with _set(profile_for(tmp_path, issue(ca, left=3 * DAY), ca)) as profiles:
        (event,) = profiles.check_health()
    data = event.to_dict()
    assert data["kind"] == "expiring"
    assert data["serial"] == f"{event.serial:x}"
    assert data["threshold_seconds"] == 7 * 86400
    assert 2 * 86400 < data["time_left_seconds"] <= 3 * 86400
    with pytest.raises(AttributeError):
        event.kind = "expired"  # type: ignore[misc]


# --------------------------------------------------------------------------- on the reload thread


def test_the_reload_thread_crosses_each_threshold_once_then_reports_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate issued to expire in seconds, thresholds in seconds: the reload
    thread (the only thread) announces each crossing, then the expiry, and nothing more."""
    ca = CA()
    client = issue(ca, left=_dt.timedelta(seconds=4))
    events: queue.Queue[tuple[mtls.HealthEvent, str]] = queue.Queue()
    thresholds = (_dt.timedelta(seconds=3), _dt.timedelta(seconds=1.5))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = _set(
            profile_for(tmp_path, client, ca), reload_interval=0.1, expiry_warnings=thresholds
        )
        with profiles:
            profiles.on_health(lambda e: events.put((e, threading.current_thread().name)))
            got: list[mtls.HealthEvent] = []
            while not got or got[-1].kind != "expired":
                event, thread = events.get(timeout=30)  # a deadline, not a sleep
                assert thread.startswith("mtls-reloader-")
                got.append(event)
            # Each threshold at most once, widest first (a loaded machine may skip
            # straight to a tighter one), then the expiry.
            crossed = [e.threshold for e in got[:-1] if e.threshold is not None]
            assert len(crossed) == len(got) - 1
            assert crossed == sorted(set(crossed), reverse=True)
            assert set(crossed) <= set(thresholds)
            assert got[-1].role == "identity"
            assert got[-1].time_left <= _dt.timedelta(0)
            # Later checks (the thread keeps running) announce nothing more.
            profiles.reload()
            profiles.reload()
            assert events.empty()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "expired" in errors[0].getMessage()


def test_without_a_reload_thread_nothing_is_announced_until_asked(tmp_path: Path) -> None:
    ca = CA()
    seen: list[mtls.HealthEvent] = []
    with _set(profile_for(tmp_path, issue(ca, left=3 * DAY), ca)) as profiles:
        profiles.on_health(seen.append)
        assert not profiles.reloading
        assert seen == []
        profiles.check_health()
        assert len(seen) == 1


def test_a_wall_clock_that_ran_ahead_does_not_use_up_the_warnings(tmp_path: Path) -> None:
    """A clock that jumped forward (a bad NTP step) said "expired" for a certificate
    with 20 days left; once set right, the watch never looked at that certificate
    again: no 7-day warning, no 1-day warning, no real expiry. Levels said ahead of
    time are lowered when the clock steps back, and said again when they come true."""
    ca = CA()
    shift = [_dt.timedelta(0)]
    with _set(profile_for(tmp_path, issue(ca, left=20 * DAY), ca)) as profiles:
        profiles._health._clock = lambda: utcnow() + shift[0]
        assert [e.threshold for e in profiles.check_health()] == [30 * DAY]
        shift[0] = 25 * DAY  # ahead by 25 days
        assert [e.kind for e in profiles.check_health()] == ["expired"]
        shift[0] = _dt.timedelta(0)  # set right: nothing new to say
        assert profiles.check_health() == ()
        shift[0] = 14 * DAY  # six days left, for real
        assert [(e.kind, e.threshold) for e in profiles.check_health()] == [("expiring", 7 * DAY)]
        assert profiles.check_health() == ()  # and once
        shift[0] = 21 * DAY
        assert [e.kind for e in profiles.check_health()] == ["expired"]


def test_the_warning_at_build_follows_the_sets_thresholds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Building a context warned at a fixed 30 days, whatever the set's
    expiry_warnings: with () (warnings off) a certificate 10 days from its end still
    logged a WARNING at every renewal of short-lived certificates. A set's build now
    warns at its widest threshold, and not at all with ()."""
    ca = CA()
    cases = [((), False), ((5,), False), ((30, 7, 1), True)]
    for warnings_at, warned in cases:
        client = issue(ca, left=10 * DAY)  # a certificate per case: warnings are once a day each
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            with _set(profile_for(tmp_path, client, ca), expiry_warnings=warnings_at) as s:
                assert s.context_for("backend.internal", 8443) is not None
        said = [r for r in caplog.records if "expires in" in r.getMessage()]
        assert bool(said) is warned, (warnings_at, caplog.text)


def test_a_rotating_server_announces_its_certificate_nearing_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RotatingServerContext had no expiry watch: a server certificate 40 days from
    its end was warned about only if a context was built within 30 days of it, and
    nothing at all said when it expired while served. It now has the profile set's
    watch: after every check (and check_health()), once per threshold, as a log line
    and an on_health event; the twin: expiry_warnings=() says nothing."""
    from tests.health._certs import utcnow as now

    ca = CA()
    served = issue(ca, left=5 * DAY, name="backend")
    keystore = write_identity(served, tmp_path / "server.jks")
    trust = tmp_path / "clients.jks"
    ca.write_truststore(trust, PASSWORD)
    seen: list[mtls.HealthEvent] = []
    with mtls.RotatingServerContext(keystore, trust, password=PASSWORD) as server:
        server.on_health(seen.append)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            events = server.check_health()
        assert [(e.kind, e.role, e.threshold) for e in events] == [
            ("expiring", "identity", 7 * DAY)
        ]
        assert seen == list(events)
        assert events[0].subject == served.subject and events[0].servers == ("this server",)
        assert "server certificate" in caplog.text and "expires in 4 days" in caplog.text
        assert server.check_health() == ()  # once per threshold
        shift = [_dt.timedelta(0)]
        server._health._clock = lambda: now() + shift[0]
        shift[0] = 6 * DAY
        assert [e.kind for e in server.check_health()] == ["expired"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        other = write_identity(issue(ca, left=5 * DAY, name="backend"), tmp_path / "o.jks")
        with mtls.RotatingServerContext(
            other, trust, password=PASSWORD, expiry_warnings=()
        ) as quiet:
            assert quiet.check_health() == ()
    assert "expires in" not in caplog.text  # nor at build: () turns it all off
    # With a reload thread, the watch runs after each of its checks. The certificate
    # is 40 days from its end, outside every threshold, until the watch's clock moves
    # on after the callback is in: a first check before it (the thread starts with
    # the server) announced it to no one, once, and the test waited in vain.
    found: list[mtls.HealthEvent] = []
    later = write_identity(issue(ca, left=40 * DAY, name="backend"), tmp_path / "later.jks")
    with mtls.RotatingServerContext(
        later, trust, password=PASSWORD, reload_interval=0.05
    ) as watched:
        watched.on_health(found.append)
        watched._health._clock = lambda: now() + 35 * DAY
        wait_for(lambda: found)
    assert [(e.kind, e.threshold) for e in found] == [("expiring", 7 * DAY)]


def test_two_evaluations_at_once_announce_once(tmp_path: Path) -> None:
    """check_health() and the reload thread's watch at the same moment: the one that
    read the clock first, and evaluated second, saw a clock that "stepped back" and
    lowered the level the other had just announced; the next evaluation announced it
    again. The clock is read under the watch's lock now. Here the first reader waits
    (bounded) for the second to evaluate, and a threshold lies between their times."""
    import threading

    ca = CA()
    seen: list[mtls.HealthEvent] = []
    first_read, second_done = threading.Event(), threading.Event()
    with _set(profile_for(tmp_path, issue(ca, left=8 * DAY), ca)) as profiles:
        profiles.on_health(seen.append)
        slow = threading.get_ident()

        def clock() -> _dt.datetime:
            if threading.get_ident() == slow and not first_read.is_set():
                first_read.set()
                now = utcnow()  # 8 days left: the 30-day level
                second_done.wait(2)  # the other cannot evaluate while this one holds the lock
                return now
            return utcnow() + 2 * DAY  # 6 days left: the 7-day level

        profiles._health._clock = clock
        second = threading.Thread(
            target=lambda: (first_read.wait(10), profiles.check_health(), second_done.set())
        )
        second.start()
        profiles.check_health()
        second.join(10)
        profiles.check_health()
    assert sorted(e.threshold for e in seen if e.threshold) == [7 * DAY, 30 * DAY], seen


def _odd_anchor_xml(tmp_path: Path) -> Path:
    """A profile file whose truststore holds an anchor cryptography cannot parse (OpenSSL
    loads it): the health watch's first read of the anchors warns of it."""
    from tests._helpers import profile, profile_xml
    from tests._pki import odd_validity, skip_unless_openssl_reads

    ca = CA(name="relay CA")
    _, odd = odd_validity(ca, "odd", b"4912312359Z")
    skip_unless_openssl_reads(odd)
    trust = tmp_path / "trust.pem"
    trust.write_bytes(odd + ca.cert_pem)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile("localhost:1", None, trust, truststore_type="PEM")))
    return xml


def test_what_the_watch_logs_as_it_reads_new_anchors_holds_no_lock(tmp_path: Path) -> None:
    """The watch's first read of a truststore's anchors warns of one cryptography cannot
    parse (OpenSSL loads it). That line was handled on the reload thread while it held
    the watch's lock, so a log handler that blocked held status() and reload() too (h149).
    It is kept with the check's records and handed to the set's log relay."""
    xml = _odd_anchor_xml(tmp_path)
    main = threading.current_thread()
    handled_on: list[str] = []
    entered, free = threading.Event(), threading.Event()

    class Blocked(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot be parsed" in record.getMessage() and threading.current_thread() is not main:
                handled_on.append(threading.current_thread().name)
                entered.set()
                free.wait(30)

    handler = Blocked()
    logging.getLogger("mtls").addHandler(handler)
    profiles = mtls.SSLProfileSet.from_xml(xml, reload_interval=0.05)
    try:
        assert entered.wait(30)  # a background check's watch read the anchors
        answers: list[object] = []
        asking = threading.Thread(
            target=lambda: answers.extend([profiles.status(), profiles.reload()])
        )
        asking.start()
        asking.join(10)
        assert len(answers) == 2  # answered while the handler blocks
        assert handled_on == [f"{profiles._engine._timer.name}-log"]  # type: ignore[union-attr]
    finally:
        free.set()
        logging.getLogger("mtls").removeHandler(handler)
        profiles.close()


def test_check_health_says_what_it_logged_once_it_let_go_of_the_watch(tmp_path: Path) -> None:
    """check_health() reads new anchors too: its warning is handled after the watch's
    lock is released, so a handler that blocks on it holds neither status() nor
    reload() on other threads (h150)."""
    xml = _odd_anchor_xml(tmp_path)
    entered, free = threading.Event(), threading.Event()
    asker = "mtls-test-check-health"

    class Blocked(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot be parsed" in record.getMessage() and (
                threading.current_thread().name == asker
            ):
                entered.set()
                free.wait(30)

    handler = Blocked()
    logging.getLogger("mtls").addHandler(handler)
    profiles = mtls.SSLProfileSet.from_xml(xml)
    checking = threading.Thread(target=profiles.check_health, name=asker)
    try:
        checking.start()
        assert entered.wait(30)
        answers: list[object] = []
        asking = threading.Thread(
            target=lambda: answers.extend([profiles.status(), profiles.reload()])
        )
        asking.start()
        asking.join(10)
        assert len(answers) == 2  # answered while check_health()'s handler blocks
    finally:
        free.set()
        checking.join(30)
        logging.getLogger("mtls").removeHandler(handler)
        profiles.close()


@pytest.mark.parametrize("how", ["reload", "check_health"])
def test_what_the_watch_logged_is_said_when_its_judging_then_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """The anchors of a snapshot are read once: a warning logged while reading them, and
    lost because judging failed afterwards (a bug, an interrupt), was never said (h150).
    It is said, then the failure."""
    from mtls import _health

    xml = _odd_anchor_xml(tmp_path)
    profiles = mtls.SSLProfileSet.from_xml(xml)

    def broken(*args: object) -> None:
        raise RuntimeError("a judging bug")

    monkeypatch.setattr(_health.Health, "_crossed", broken)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        if how == "reload":
            assert profiles.reload() is False  # the watcher's failure is logged, not raised
        else:
            with pytest.raises(RuntimeError, match="a judging bug"):
                profiles.check_health()
    said = [r.getMessage() for r in caplog.records]
    assert any("cannot be parsed" in line for line in said), said
    if how == "reload":
        assert said[-1] == "mtls: a reload watcher raised; carrying on"
    profiles.close()


@pytest.mark.parametrize(
    ("life", "expected"),
    [
        # A one-hour certificate: 30, 7 and 1 days all cross at its start; warned when
        # a sixth is left (10 minutes), a renewal at 2/3 or 1/2 of its life overdue.
        (_dt.timedelta(hours=1), (_dt.timedelta(minutes=10),)),
        # Three days: a third is the day itself, crossed before a renewal at two
        # thirds: a sixth, 12 hours.
        (3 * DAY, (DAY / 2,)),
        # Fourteen days: the day stays; 7 days (half) was crossed before every renewal
        # (h195: a threshold of half its validity, kept for a time, did that).
        (14 * DAY, (DAY,)),
        # 90 days (Let's Encrypt, cert-manager's default): 7 and 1; 30 days is when
        # certbot and cert-manager renew it.
        (90 * DAY, (7 * DAY, DAY)),
        # A year's: all three.
        (365 * DAY, (30 * DAY, 7 * DAY, DAY)),
    ],
    ids=["1h", "3d", "14d", "90d", "365d"],
)
def test_thresholds_longer_than_a_third_of_a_short_validity_are_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, life, expected
) -> None:
    """A short-lived certificate (SPIFFE, cert-manager at one hour) was inside the
    default 30, 7 and 1 days from the moment it was issued: a WARNING at every load
    and an `expiring` event for on_health (the paging hook) at every healthy rotation,
    and nothing told an overdue renewal apart (h190). The watch and the load warning
    use the thresholds under a third of its validity now, else a sixth of it."""
    ca = CA()
    start = utcnow() - _dt.timedelta(seconds=30)
    client = ca.issue_cert("client", not_before=start, not_after=start + life)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = _set(profile_for(tmp_path, client, ca))
    try:
        assert not [r for r in caplog.records if "expires in" in r.getMessage()], life
        assert [e.role for e in profiles.check_health()] == []  # fresh: nothing to say
        # Past the widest threshold that applies: one event, at that threshold.
        shift = life - expected[0] + _dt.timedelta(seconds=31)
        profiles._health._clock = lambda: utcnow() + shift
        (event,) = profiles.check_health()
        assert (event.kind, event.role, event.threshold) == ("expiring", "identity", expected[0])
        # Twin: just before it, nothing (a fresh watch, the clock short of it).
    finally:
        profiles.close()
    with _set(profile_for(tmp_path, client, ca)) as again:
        early = life - expected[0] - _dt.timedelta(seconds=60)
        again._health._clock = lambda: utcnow() + early
        assert again.check_health() == ()


def test_mtls_check_does_not_call_a_fresh_short_lived_certificate_expiring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """mtls check said "client certificate expires in 59 minutes" of a one-hour
    certificate just issued, as of one ending within 30 days of a year's. The twin: a
    year's certificate with 20 days left is still said."""
    import json

    from mtls.cli import main
    from tests._helpers import profile, profile_xml, write_trust

    ca = CA()
    now = utcnow()
    fresh = ca.issue_cert("client", not_before=now - _dt.timedelta(minutes=1),
                          not_after=now + _dt.timedelta(minutes=59))  # fmt: skip
    ending = ca.issue_cert("client", not_before=now - 345 * DAY, not_after=now + 20 * DAY)
    trust = write_trust(ca, tmp_path / "trust.jks")
    for name, identity, said in (("fresh", fresh, False), ("ending", ending, True)):
        keystore = write_identity(identity, tmp_path / f"{name}.jks")
        xml = tmp_path / f"{name}.xml"
        xml.write_text(profile_xml(profile("orders.internal:8443", keystore, trust)))
        main(["check", str(xml), "--json"])
        (row,) = json.loads(capsys.readouterr().out)["profiles"]
        assert any("expires in" in p for p in row["problems"]) is said, (name, row["problems"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Given: as given (h193: 40 minutes, on a one-hour certificate renewed early).
        ((_dt.timedelta(minutes=40),), _dt.timedelta(minutes=40)),
        # The defaults written out are the defaults (h195: they were taken as given).
        ((30, 7, 1), _dt.timedelta(minutes=10)),
        ([1, 7, 30.0], _dt.timedelta(minutes=10)),
    ],
    ids=["40-minutes", "defaults-written-out", "defaults-as-a-list"],
)
def test_thresholds_the_user_gave_are_taken_as_given(tmp_path: Path, given, expected) -> None:
    """Only the default thresholds are judged by a certificate's validity; others
    given are used as they are, for the watch and the load warning."""
    ca = CA()
    start = utcnow() - _dt.timedelta(seconds=30)
    client = ca.issue_cert("client", not_before=start, not_after=start + _dt.timedelta(hours=1))
    with _set(profile_for(tmp_path, client, ca), expiry_warnings=given) as profiles:
        assert profiles.check_health() == ()
        shift = _dt.timedelta(hours=1) - expected + _dt.timedelta(seconds=31)
        profiles._health._clock = lambda: utcnow() + shift
        (event,) = profiles.check_health()
        assert (event.kind, event.threshold) == ("expiring", expected)
