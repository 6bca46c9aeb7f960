"""CRL files expire: at load (no clock skew), while loaded (the profile fails and
says so), and never make a lookup raise."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

from mtls import CRLError, SSLProfile, SSLProfileSet, StoreConfig
from mtls.testing import CA
from tests._helpers import PASSWORD, wait_for, write_trust


def _profile(ca: CA, tmp_path: Path, next_update: _dt.datetime) -> SSLProfile:
    trust = write_trust(ca, tmp_path / "trust.jks")
    now = _dt.datetime.now(_dt.UTC)
    (tmp_path / "ca.crl").write_bytes(
        ca.crl(last_update=now - _dt.timedelta(hours=1), next_update=next_update)
    )
    return SSLProfile(
        servers=("a.example:443",),
        truststore=StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(tmp_path / "ca.crl",),
    )


def _wait_past(moment: _dt.datetime) -> None:
    wait_for(lambda: _dt.datetime.now(_dt.UTC) > moment, timeout=60, interval=0.05)


def test_a_crl_expired_by_seconds_is_refused_at_load(tmp_path: Path) -> None:
    # within the old five-minute skew: OpenSSL allows none and would fail every handshake
    ca = CA()
    profile = _profile(ca, tmp_path, _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=2))
    with pytest.raises(CRLError, match="expired on"):
        SSLProfileSet([profile])
    # the twin: a current list loads
    profile = _profile(ca, tmp_path, _dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=1))
    with SSLProfileSet([profile]) as profiles:
        assert profiles.status().healthy


def test_a_crl_that_expires_while_loaded_makes_the_profile_fail_and_say_so(
    tmp_path: Path,
) -> None:
    ca = CA()
    expires = (_dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=2)).replace(microsecond=0)
    with SSLProfileSet([_profile(ca, tmp_path, expires)], reload_interval=0.1) as profiles:
        assert profiles.status().healthy  # the twin: before nextUpdate all is well
        # the background check reports it, though no file moved
        wait_for(lambda: not profiles.status().healthy, timeout=60, interval=0.05)
        assert _dt.datetime.now(_dt.UTC) >= expires
        (error,) = profiles.errors
        assert "expired on" in str(error)
        assert isinstance(error, CRLError)


def test_an_alpn_lookup_never_raises_a_crl_error(tmp_path: Path) -> None:
    ca = CA()
    expires = (_dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=1)).replace(microsecond=0)
    with SSLProfileSet([_profile(ca, tmp_path, expires)], reload_interval=None) as profiles:
        assert profiles.context_for("a.example", 443) is not None
        _wait_past(expires)
        # the CRLs were validated once, when the profile was built: the ALPN variant
        # installs them without checking again (a lookup never raises CRLError)
        ctx = profiles.context_for("a.example", 443, alpn=["h2", "http/1.1"])
        assert ctx is not profiles.context_for("a.example", 443)
