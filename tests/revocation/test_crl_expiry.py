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


def test_an_expired_crl_of_a_ca_not_trusted_is_told_to_go_not_to_be_fetched(
    tmp_path: Path,
) -> None:
    """The signer is judged before the dates: an expired list of a CA the truststore
    does not hold was told "fetch a current one from the CA", which cannot help (h165);
    the twin, the trusted CA's expired list, is still told to be fetched."""
    trusted, stranger = CA(), CA()
    past = _dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)
    profile = _profile(trusted, tmp_path, past + _dt.timedelta(days=2))
    before = past - _dt.timedelta(days=1)
    (tmp_path / "ca.crl").write_bytes(stranger.crl(last_update=before, next_update=past))
    with pytest.raises(CRLError, match="not signed by any certificate of the truststore"):
        SSLProfileSet([profile])
    (tmp_path / "ca.crl").write_bytes(trusted.crl(last_update=before, next_update=past))
    with pytest.raises(CRLError, match=r"expired on .* fetch a current one"):
        SSLProfileSet([profile])


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


def test_a_refused_keystore_costs_no_crl_parse_while_nothing_else_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore staged before its start date is refused at every check until then;
    with the truststore and the CRL unchanged, the refusal is said without reading
    the CRL again (it used to be parsed and verified per profile per check). The twin:
    a CRL that changes is read, and applied with the identity in service."""
    import mtls._build
    from mtls._crl import CRLSet

    ca = CA()
    now = _dt.datetime.now(_dt.UTC)
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(ca.issue_cert("gw").keystore().to_bytes(PASSWORD))
    base = _profile(ca, tmp_path, now + _dt.timedelta(hours=1))
    profiles_list = [
        SSLProfile(
            servers=(f"b{i}.example:443",),
            keystore=StoreConfig(location=keystore, type="JKS", password=PASSWORD),
            truststore=base.truststore,
            crls=base.crls,
        )
        for i in range(3)
    ]
    parsed: list[bytes] = []
    original = CRLSet.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CRLSet], data: bytes, **kwargs: object) -> CRLSet:
        parsed.append(data)
        return original(cls, data, **kwargs)  # type: ignore[no-any-return]

    with SSLProfileSet(profiles_list, settle_delay=0) as profiles:
        staged = ca.issue_cert("gw-2", not_before=now + _dt.timedelta(days=1))
        keystore.write_bytes(staged.keystore().to_bytes(PASSWORD))
        monkeypatch.setattr(mtls._build.CRLSet, "from_bytes", classmethod(counting))
        for _ in range(3):
            assert profiles.reload() is False
            assert "not valid before" in str(profiles.last_error)
        assert parsed == []
        (tmp_path / "ca.crl").write_bytes(
            ca.crl(
                last_update=now - _dt.timedelta(hours=1), next_update=now + _dt.timedelta(hours=2)
            )
        )
        assert profiles.reload() is True  # the new list, with the identity in service
        assert len(parsed) == 1  # once for the three profiles that share it
        assert "not valid before" in str(profiles.last_error)
