"""A CRL nearing its nextUpdate is announced as a certificate nearing its end is: past
it every handshake the list checks is refused, so the warning must come first."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import queue
from pathlib import Path

import pytest
from cryptography import x509

import mtls
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, wait_for, write_trust
from tests.health._certs import utcnow

DAY = _dt.timedelta(days=1)
HOUR = _dt.timedelta(hours=1)


def _crl_profile(
    ca: CA, tmp_path: Path, *, valid: _dt.timedelta, started: _dt.timedelta = HOUR
) -> tuple[mtls.SSLProfile, Path]:
    """A profile verifying with ``ca`` and checking its CRL, issued ``started`` ago and
    valid for ``valid`` in all (thisUpdate to nextUpdate)."""
    trust = write_trust(ca, tmp_path / "trust.jks")
    start = (utcnow() - started).replace(microsecond=0)
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.crl(last_update=start, next_update=start + valid))
    profile = mtls.SSLProfile(
        servers=("a.example:443",),
        truststore=mtls.StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(crl,),
    )
    return profile, crl


def _shifted(profiles: mtls.SSLProfileSet, by: _dt.timedelta) -> None:
    profiles._health._clock = lambda: utcnow() + by


def _crl_events(events: tuple[mtls.HealthEvent, ...]) -> list[mtls.HealthEvent]:
    return [e for e in events if e.role == "crl"]


def test_a_weekly_crl_not_replaced_is_warned_at_half_its_validity_then_a_day_then_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = CA(name="Backend CA")
    profile, crl = _crl_profile(ca, tmp_path, valid=7 * DAY)
    seen: list[mtls.HealthEvent] = []
    with mtls.SSLProfileSet([profile]) as profiles:
        profiles.on_health(seen.append)
        # Fresh: 30 and 7 days are past already for a 7-day list, and said nothing.
        assert profiles.check_health() == ()
        _shifted(profiles, 3 * DAY)  # 3 days 23 hours left: above half (3.5 days)
        assert profiles.check_health() == ()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            _shifted(profiles, 3 * DAY + 13 * HOUR)  # 3 days 10 hours left
            (event,) = profiles.check_health()
        assert (event.kind, event.role, event.threshold) == ("expiring", "crl", 3.5 * DAY)
        assert event.subject == ca.certificate.subject.rfc4514_string()
        assert event.path == str(crl)
        assert event.servers == ("a.example:443",)
        assert event.serial == 1  # its CRL number
        assert event.fingerprint == hashlib.sha256(crl.read_bytes()).hexdigest()
        assert event.not_after == x509.load_der_x509_crl(crl.read_bytes()).next_update_utc
        assert event.to_dict()["path"] == str(crl)
        assert seen == [event]
        (line,) = [r for r in caplog.records if "CRL of" in r.getMessage()]
        assert line.levelno == logging.WARNING
        assert str(crl) in line.getMessage() and "a.example:443" in line.getMessage()
        assert "put a newer list" in line.getMessage()
        assert profiles.check_health() == ()  # once
        _shifted(profiles, 6 * DAY + 12 * HOUR)  # 11 hours left
        assert [(e.kind, e.threshold) for e in profiles.check_health()] == [("expiring", DAY)]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            _shifted(profiles, 7 * DAY)
            assert [e.kind for e in _crl_events(profiles.check_health())] == ["expired"]
        (line,) = [r for r in caplog.records if "CRL of" in r.getMessage()]
        assert line.levelno == logging.ERROR
        assert "every handshake it checks is refused" in line.getMessage()


def test_a_daily_crl_is_not_warned_about_when_loaded_only_at_half_its_day(
    tmp_path: Path,
) -> None:
    """A 24-hour list has less than the 1-day threshold left from the start: without
    the cap at half its validity, every new list would be warned about."""
    ca = CA()
    profile, _ = _crl_profile(ca, tmp_path, valid=DAY)
    with mtls.SSLProfileSet([profile]) as profiles:
        assert profiles.check_health() == ()  # 23 hours left
        _shifted(profiles, 10 * HOUR)  # 13 hours left
        assert profiles.check_health() == ()
        _shifted(profiles, 12 * HOUR)  # 11 hours left
        assert [(e.role, e.threshold) for e in profiles.check_health()] == [("crl", 12 * HOUR)]


def test_a_replaced_crl_is_watched_afresh_and_the_old_one_forgotten(tmp_path: Path) -> None:
    ca = CA()
    profile, crl = _crl_profile(ca, tmp_path, valid=DAY, started=13 * HOUR)
    with mtls.SSLProfileSet([profile], settle_delay=0) as profiles:
        (old,) = profiles.check_health()  # 11 hours left: past half its day
        assert old.role == "crl"
        start = utcnow().replace(microsecond=0) - _dt.timedelta(minutes=1)
        replace_atomically(crl, ca.crl(last_update=start, next_update=start + DAY))
        assert profiles.reload() is True
        assert profiles.check_health() == ()  # the new list: a whole day left
        _shifted(profiles, 13 * HOUR)
        (new,) = profiles.check_health()
        assert new.fingerprint != old.fingerprint
        assert new.fingerprint == hashlib.sha256(crl.read_bytes()).hexdigest()


def test_the_reload_thread_warns_ahead_of_nextupdate_then_reports_it_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 3 a.m. case end to end, in seconds: the background checks announce each
    threshold, then the expiry (the profile then fails closed and says so)."""
    ca = CA()
    profile, _ = _crl_profile(
        ca, tmp_path, valid=_dt.timedelta(seconds=9), started=_dt.timedelta(seconds=3)
    )
    events: queue.Queue[mtls.HealthEvent] = queue.Queue()
    thresholds = (_dt.timedelta(seconds=4), _dt.timedelta(seconds=2))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        with mtls.SSLProfileSet(
            [profile], reload_interval=0.1, expiry_warnings=thresholds
        ) as profiles:
            profiles.on_health(events.put)
            got: list[mtls.HealthEvent] = []
            while not got or got[-1].kind != "expired":
                event = events.get(timeout=60)  # a deadline, not a sleep
                if event.role == "crl":
                    got.append(event)
            crossed = [e.threshold for e in got[:-1]]
            assert crossed and crossed == sorted(set(crossed), reverse=True)
            assert set(crossed) <= set(thresholds)
            wait_for(lambda: not profiles.status().healthy)  # failed closed, and said so
    assert any(r.levelno == logging.ERROR and "CRL of" in r.getMessage() for r in caplog.records)
