"""A CRL nearing its nextUpdate is announced as a certificate nearing its end is: past
it every handshake the list checks is refused, so the warning must come first, and
only for a list that was not replaced when its CA's next one was due."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import queue
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import mtls
from mtls import _der
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, wait_for, write_trust
from tests.health._certs import utcnow

DAY = _dt.timedelta(days=1)
HOUR = _dt.timedelta(hours=1)
_NEXT_CRL_PUBLISH = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.4")


def _crl_profile(
    ca: CA,
    tmp_path: Path,
    *,
    valid: _dt.timedelta,
    started: _dt.timedelta = HOUR,
    name: str = "ca.crl",
    servers: tuple[str, ...] = ("a.example:443",),
) -> tuple[mtls.SSLProfile, Path]:
    """A profile verifying with ``ca`` and checking its CRL, issued ``started`` ago and
    valid for ``valid`` in all (thisUpdate to nextUpdate)."""
    trust = write_trust(ca, tmp_path / "trust.jks")
    start = (utcnow() - started).replace(microsecond=0)
    crl = tmp_path / name
    crl.parent.mkdir(exist_ok=True)
    crl.write_bytes(ca.crl(last_update=start, next_update=start + valid))
    profile = mtls.SSLProfile(
        servers=servers,
        truststore=mtls.StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(crl,),
    )
    return profile, crl


def _shifted(profiles: mtls.SSLProfileSet, by: _dt.timedelta) -> None:
    profiles._health._clock = lambda: utcnow() + by


def _crl_events(events: tuple[mtls.HealthEvent, ...]) -> list[mtls.HealthEvent]:
    return [e for e in events if e.role == "crl"]


def test_a_weekly_crl_not_replaced_is_warned_half_way_from_its_due_date_then_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 7-day list without NextCRLPublish is due for replacement half-way (3.5 days):
    it is announced half-way from then to its end (1 day 18 hours left), then expired."""
    ca = CA(name="Backend CA")
    profile, crl = _crl_profile(ca, tmp_path, valid=7 * DAY)
    seen: list[mtls.HealthEvent] = []
    with mtls.SSLProfileSet([profile]) as profiles:
        profiles.on_health(seen.append)
        assert profiles.check_health() == ()  # fresh: nothing, though 30 and 7 days are past
        _shifted(profiles, 5 * DAY)  # 1 day 23 hours left
        assert profiles.check_health() == ()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            _shifted(profiles, 5 * DAY + 2 * HOUR)  # 1 day 21 hours left
            assert profiles.check_health() == ()
            _shifted(profiles, 5 * DAY + 6 * HOUR)  # 1 day 17 hours left
            (event,) = profiles.check_health()
        assert (event.kind, event.role, event.threshold) == ("expiring", "crl", DAY + 18 * HOUR)
        assert event.subject == ca.certificate.subject.rfc4514_string()
        assert event.files == (str(crl),)
        assert event.servers == ("a.example:443",)
        assert event.serial == 1  # its CRL number
        # A DER file holds one list: its fingerprint is the file's.
        assert event.fingerprint == hashlib.sha256(crl.read_bytes()).hexdigest()
        assert event.not_after == x509.load_der_x509_crl(crl.read_bytes()).next_update_utc
        assert event.to_dict()["files"] == [str(crl)]
        assert seen == [event]
        (line,) = [r for r in caplog.records if "CRL of" in r.getMessage()]
        assert line.levelno == logging.WARNING
        message = line.getMessage()
        assert str(crl) in message and "a.example:443" in message
        assert "the 1 day 18 h warning" in message and "put a newer list" in message
        assert profiles.check_health() == ()  # once
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            _shifted(profiles, 7 * DAY)
            assert [e.kind for e in _crl_events(profiles.check_health())] == ["expired"]
        (line,) = [r for r in caplog.records if "CRL of" in r.getMessage()]
        assert line.levelno == logging.ERROR
        assert "every handshake it checks is refused" in line.getMessage()


def test_a_daily_crl_replaced_on_schedule_is_never_announced(tmp_path: Path) -> None:
    """A 24-hour list has less than the 1-day certificate threshold left from the
    start: judged by that, every new list would be announced. It is due half-way,
    and announced 6 hours before its end."""
    ca = CA()
    profile, _ = _crl_profile(ca, tmp_path, valid=DAY)
    with mtls.SSLProfileSet([profile]) as profiles:
        assert profiles.check_health() == ()  # 23 hours left
        _shifted(profiles, 16 * HOUR)  # 7 hours left: its successor is overdue
        assert profiles.check_health() == ()
        _shifted(profiles, 18 * HOUR)  # 5 hours left
        assert [(e.role, e.threshold) for e in profiles.check_health()] == [("crl", 6 * HOUR)]


def _ad_cs_crl(
    ca: CA, start: _dt.datetime, publish: _dt.timedelta, overlap: _dt.timedelta
) -> bytes:
    """A list as Microsoft AD CS issues it: NextCRLPublish at ``publish``, valid for
    ``overlap`` longer (10% of the period by default, at most 12 hours)."""
    next_publish = (start + publish).strftime("%y%m%d%H%M%SZ").encode()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(start)
        .next_update(start + publish + overlap)
        .add_extension(x509.CRLNumber(7), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(_NEXT_CRL_PUBLISH, b"\x17\x0d" + next_publish),
            critical=False,
        )
    )
    crl = builder.sign(ca.private_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def test_an_ad_cs_list_is_judged_by_its_next_crl_publish(tmp_path: Path) -> None:
    """AD CS publishes weekly and lists stay valid 12 hours longer: replaced on time,
    a list is replaced with 12 hours left, which half its validity (3 days 18 hours)
    announced every week. NextCRLPublish says when the next is due: announced half-way
    from then to the end, 6 hours before it."""
    ca = CA(name="Corp Issuing CA")
    profile, crl = _crl_profile(ca, tmp_path, valid=DAY)
    start = (utcnow() - HOUR).replace(microsecond=0)
    crl.write_bytes(_ad_cs_crl(ca, start, 7 * DAY, 12 * HOUR))
    with mtls.SSLProfileSet([profile]) as profiles:
        _shifted(profiles, 7 * DAY)  # past NextCRLPublish: 11 hours left
        assert profiles.check_health() == ()
        _shifted(profiles, 7 * DAY + 7 * HOUR)  # 5 hours left
        (event,) = profiles.check_health()
        assert (event.role, event.threshold, event.serial) == ("crl", 6 * HOUR, 7)


def test_crl_warnings_set_the_thresholds_and_an_empty_one_only_the_expiry(
    tmp_path: Path,
) -> None:
    ca = CA()
    profile, _ = _crl_profile(ca, tmp_path, valid=DAY)
    with mtls.SSLProfileSet([profile]) as profiles:
        assert profiles.status().crl_warnings is None  # each list's own
        assert profiles.status().to_dict()["crl_warnings"] is None
    with mtls.SSLProfileSet([profile], crl_warnings=(_dt.timedelta(minutes=30),)) as profiles:
        assert profiles.status().crl_warnings == (_dt.timedelta(minutes=30),)
        assert profiles.status().to_dict()["crl_warnings"] == [1800.0]
        _shifted(profiles, 22 * HOUR)  # 1 hour left: the default would have said so
        assert profiles.check_health() == ()
        _shifted(profiles, 22 * HOUR + 40 * _dt.timedelta(minutes=1))
        assert [e.threshold for e in profiles.check_health()] == [_dt.timedelta(minutes=30)]
    with mtls.SSLProfileSet([profile], crl_warnings=()) as profiles:
        _shifted(profiles, 22 * HOUR + 50 * _dt.timedelta(minutes=1))
        assert profiles.check_health() == ()
        _shifted(profiles, DAY)
        assert [e.kind for e in profiles.check_health()] == ["expired"]
    with pytest.raises(ValueError, match="crl_warnings must be positive"):
        mtls.SSLProfileSet([profile], crl_warnings=(0,))


def test_a_list_in_two_files_names_both(tmp_path: Path) -> None:
    """The same list copied to two places: one event, naming each file (the first cut
    named the first only, which may be the one already replaced)."""
    ca = CA()
    one, first = _crl_profile(ca, tmp_path, valid=DAY, name="x/ca.crl", servers=("a:443",))
    two, second = _crl_profile(ca, tmp_path, valid=DAY, name="y/ca.crl", servers=("b:443",))
    second.write_bytes(first.read_bytes())
    with mtls.SSLProfileSet([one, two]) as profiles:
        _shifted(profiles, 19 * HOUR)
        (event,) = profiles.check_health()
        assert event.files == (str(first), str(second))
        assert event.servers == ("a:443", "b:443")


def test_a_replaced_crl_is_watched_afresh_and_the_old_one_forgotten(tmp_path: Path) -> None:
    ca = CA()
    profile, crl = _crl_profile(ca, tmp_path, valid=DAY, started=19 * HOUR)
    with mtls.SSLProfileSet([profile], settle_delay=0) as profiles:
        (old,) = profiles.check_health()  # 5 hours left
        assert old.role == "crl"
        start = utcnow().replace(microsecond=0) - _dt.timedelta(minutes=1)
        replace_atomically(crl, ca.crl(last_update=start, next_update=start + DAY))
        assert profiles.reload() is True
        assert profiles.check_health() == ()  # the new list: a whole day left
        _shifted(profiles, 19 * HOUR)
        (new,) = profiles.check_health()
        assert new.fingerprint != old.fingerprint
        assert new.fingerprint == hashlib.sha256(crl.read_bytes()).hexdigest()


def test_the_reload_thread_warns_ahead_of_nextupdate_then_reports_it_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 3 a.m. case end to end, in seconds: the background checks announce the
    list, then its expiry (the profile then fails closed and says so)."""
    ca = CA()
    profile, _ = _crl_profile(
        ca, tmp_path, valid=_dt.timedelta(seconds=12), started=_dt.timedelta(seconds=4)
    )
    events: queue.Queue[mtls.HealthEvent] = queue.Queue()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        with mtls.SSLProfileSet([profile], reload_interval=0.1) as profiles:
            profiles.on_health(events.put)
            got: list[mtls.HealthEvent] = []
            while not got or got[-1].kind != "expired":
                event = events.get(timeout=60)  # a deadline, not a sleep
                if event.role == "crl":
                    got.append(event)
            # Its one threshold (3 seconds: half-way from 6 s to 12 s), unless a loaded
            # machine went straight to the expiry; then nothing more.
            assert [e.threshold for e in got[:-1]] in ([_dt.timedelta(seconds=3)], [])
            wait_for(lambda: not profiles.status().healthy)  # failed closed, and said so
    assert any(r.levelno == logging.ERROR and "CRL of" in r.getMessage() for r in caplog.records)


def test_a_pem_list_is_known_by_its_der(tmp_path: Path) -> None:
    """A PEM file (here with text ahead of its block, as ``openssl crl -text`` writes)
    names its list by the SHA-256 of the list's DER, as a DER file of it would."""
    ca = CA()
    profile, crl = _crl_profile(ca, tmp_path, valid=DAY)
    der = crl.read_bytes()
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    crl.write_bytes(b"Certificate Revocation List (CRL):\n    Version 2 (0x1)\n" + pem)
    with mtls.SSLProfileSet([profile]) as profiles:
        _shifted(profiles, 19 * HOUR)
        (event,) = profiles.check_health()
        assert event.fingerprint == hashlib.sha256(der).hexdigest()
        assert event.fingerprint != hashlib.sha256(crl.read_bytes()).hexdigest()


def _with_nextcrlpublish_twice(ca: CA, start: _dt.datetime, end: _dt.datetime) -> bytes:
    """A list signed by ``ca`` that holds NextCRLPublish twice: cryptography raises
    DuplicateExtension (not a ValueError) when its extensions are read. Built with a
    placeholder OID, renamed in the signed bytes, then signed again."""
    value = b"\x17\x0d" + (start + DAY).strftime("%y%m%d%H%M%SZ").encode()
    other = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.5")
    made = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(start)
        .next_update(end)
        .add_extension(x509.UnrecognizedExtension(_NEXT_CRL_PUBLISH, value), critical=False)
        .add_extension(x509.UnrecognizedExtension(other, value), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    tbs = made.tbs_certlist_bytes.replace(
        bytes.fromhex("2b0601040182371505"), bytes.fromhex("2b0601040182371504")
    )
    algorithm = made.public_bytes(serialization.Encoding.DER)[4 + len(made.tbs_certlist_bytes) :]
    algorithm = algorithm[: 2 + algorithm[1]]  # the AlgorithmIdentifier as signed
    key = ca.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())

    return _der.encode(0x30, tbs + algorithm + _der.encode(0x03, b"\x00" + signature))


def test_a_list_whose_extensions_cannot_be_read_is_refused_as_a_crl_error(
    tmp_path: Path,
) -> None:
    """Describing lists for the watch comes after they are checked: a list with an
    extension twice is the profile's CRLError (the first cut read its extensions
    first, and cryptography's DuplicateExtension escaped the whole set, or failed a
    reload of every profile). The twin: the other profile of the set loads."""
    ca = CA()
    bad, crl = _crl_profile(ca, tmp_path, valid=DAY, name="bad/ca.crl", servers=("bad:443",))
    good, _ = _crl_profile(ca, tmp_path, valid=DAY, name="good/ca.crl", servers=("good:443",))
    start = (utcnow() - HOUR).replace(microsecond=0)
    crl.write_bytes(_with_nextcrlpublish_twice(ca, start, start + DAY))
    with pytest.raises(mtls.CRLError, match="cannot be read"):
        mtls.SSLProfileSet([bad])
    with mtls.SSLProfileSet([bad, good], skip_failures=True) as profiles:
        assert profiles.context_for("good", 443) is not None
        with pytest.raises(mtls.ProfileUnavailableError):
            profiles.context_for("bad", 443)
