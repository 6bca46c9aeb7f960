"""A CRL file many profiles check is read and checked once per content and truststore,
not once per profile (a 1 MB list of 40,000 entries took 80 ms a profile), and never
vouched for against a truststore it was not checked with."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

import mtls
from mtls import _crl
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, write_identity, write_trust

HOUR = _dt.timedelta(hours=1)


def _profile(host: str, keystore: Path, trust: Path, crl: Path) -> mtls.SSLProfile:
    return mtls.SSLProfile(
        servers=(f"{host}:443",),
        keystore=mtls.StoreConfig(location=keystore, type="JKS", password=PASSWORD),
        truststore=mtls.StoreConfig(location=trust, type="JKS", password=PASSWORD),
        crls=(crl,),
    )


def _fresh_crl(ca: CA) -> bytes:
    start = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=1)
    return ca.crl(last_update=start, next_update=start + 24 * HOUR)


@pytest.fixture
def entry_scans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each walk of a list's entries (the check's costliest step), recorded."""
    seen: list[object] = []
    real = _crl.critical_entry_extension

    def counted(crl: object, handled: frozenset[str]) -> str | None:
        seen.append(crl)
        return real(crl, handled)  # type: ignore[arg-type]

    monkeypatch.setattr(_crl, "critical_entry_extension", counted)
    return seen


def test_a_crl_many_profiles_check_is_checked_once_per_content(
    tmp_path: Path, entry_scans: list[object]
) -> None:
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(_fresh_crl(ca))
    profiles = []
    for i in range(12):  # a keystore each: twelve materials, one list
        keystore = write_identity(ca.issue_cert(f"c{i}"), tmp_path / f"k{i}.jks")
        profiles.append(_profile(f"h{i}.test", keystore, trust, crl))
    with mtls.SSLProfileSet(profiles, settle_delay=0) as profiles_set:
        assert len(entry_scans) == 1
        assert all(profiles_set.context_for(f"h{i}.test", 443) for i in range(12))
        # A new list: checked once again, for all twelve.
        ca.revoke(ca.issue_cert("revoked"))
        replace_atomically(crl, _fresh_crl(ca))
        assert profiles_set.reload() is True
        assert len(entry_scans) == 2
        assert profiles_set.status().healthy


def test_a_crl_checked_with_one_truststore_is_checked_again_with_another(
    tmp_path: Path,
) -> None:
    """The same file, checked for a profile that trusts its CA, is still refused for
    one whose truststore does not hold its signer: what was checked is the contents
    with a truststore, never the contents alone (the context build checks the lists
    against its own anchors too, as a second guard)."""
    ca, other = CA(name="CRL CA"), CA(name="Other CA")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(_fresh_crl(ca))
    good = _profile(
        "good.test",
        write_identity(ca.issue_cert("g"), tmp_path / "g.jks"),
        write_trust(ca, tmp_path / "trust.jks"),
        crl,
    )
    bad = _profile(
        "bad.test",
        write_identity(other.issue_cert("b"), tmp_path / "b.jks"),
        write_trust(other, tmp_path / "other-trust.jks"),
        crl,
    )
    with mtls.SSLProfileSet([good, bad], skip_failures=True) as profiles:
        assert profiles.context_for("good.test", 443) is not None
        with pytest.raises(mtls.ProfileUnavailableError, match="not signed by any certificate"):
            profiles.context_for("bad.test", 443)


def test_a_rotated_crl_leaves_nothing_checked_behind(tmp_path: Path) -> None:
    """Only the contents in use stay checked: a list replaced hourly must not keep every
    old one (each holds its parsed entries and its PEM, megabytes for a big CA)."""
    ca = CA()
    trust = write_trust(ca, tmp_path / "trust.jks")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(_fresh_crl(ca))
    keystore = write_identity(ca.issue_cert("c"), tmp_path / "c.jks")
    with mtls.SSLProfileSet([_profile("h.test", keystore, trust, crl)], settle_delay=0) as ps:
        builder = ps._crl_next_update.__self__  # type: ignore[attr-defined]
        for _ in range(5):
            ca.revoke(ca.issue_cert("revoked"))
            replace_atomically(crl, _fresh_crl(ca))
            assert ps.reload() is True
        assert len(builder._crl_checked) == 1  # with its lists' watch records
        assert ps.status().healthy
