"""Metrics: the Prometheus text exposition parsed back, OpenTelemetry through the SDK's
in-memory reader; reload counts and the status records they are read from."""

from __future__ import annotations

import datetime as _dt
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls.testing import CA
from tests._helpers import PASSWORD, profile, profile_xml, write_identity
from tests.health._certs import issue, profile_for

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from mtls.integrations.prometheus import register  # noqa: E402

DAY = _dt.timedelta(days=1)


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[mtls.SSLProfileSet, mtls.testing.IssuedIdentity]]:
    """One healthy profile whose client certificate has 5 days left, one that never
    loaded, and a default profile."""
    ca = CA()
    client = issue(ca, left=5 * DAY)
    good = profile_for(tmp_path, client, ca, servers=("orders.internal:8443",))
    broken = profile_for(tmp_path, client, ca, servers=("billing.internal:443",), name="b")
    assert broken.keystore is not None
    broken.keystore.location.write_bytes(b"not a keystore")
    default = profile_for(tmp_path, issue(ca, left=300 * DAY), ca, servers=("*",), name="d")
    with mtls.SSLProfileSet([good, broken], default=default, skip_failures=True) as profiles:
        yield profiles, client


def scrape(registry: object) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = prometheus_client.generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


# --------------------------------------------------------------------------- reload counts


def test_reload_checks_are_counted_by_outcome(tmp_path: Path) -> None:
    ca = CA()
    profile = profile_for(tmp_path, issue(ca, left=300 * DAY), ca)
    assert profile.keystore is not None
    with mtls.SSLProfileSet([profile]) as profiles:
        assert profiles.status().reloads == mtls.ReloadCounts()  # the first load is no check
        profiles.reload()
        profiles.reload()
        write_identity(issue(ca, left=200 * DAY), profile.keystore.location)
        assert profiles.reload() is True
        profile.keystore.location.write_bytes(b"broken")
        assert profiles.reload() is False
        assert profiles.reload() is False  # still broken: every retry counts
        counts = profiles.status().reloads
        assert counts == mtls.ReloadCounts(changed=1, unchanged=2, failed=2)
        assert profiles.status().to_dict()["reloads"] == {
            "changed": 1,
            "unchanged": 2,
            "failed": 2,
        }


def test_check_health_is_not_a_reload(tmp_path: Path) -> None:
    ca = CA()
    with mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=3 * DAY), ca)]) as profiles:
        profiles.check_health()
        assert profiles.status().reloads == mtls.ReloadCounts()


# --------------------------------------------------------------------------- Prometheus


def test_the_exposition_carries_expiry_health_and_reloads(
    estate: tuple[mtls.SSLProfileSet, mtls.testing.IssuedIdentity],
) -> None:
    profiles, client = estate
    registry = prometheus_client.CollectorRegistry()
    register(profiles, registry=registry, name="gateway")
    profiles.reload()
    profiles._health.count_revocation("good")  # the revocation checker's hook
    profiles._health.count_revocation("good")
    profiles._health.count_revocation("revoked")
    metrics = scrape(registry)

    expiry = metrics["mtls_certificate_expiry_timestamp_seconds"]
    keystore = str(profiles.status().profiles[0].files[0].path)
    assert keystore.endswith("client.jks")
    identity = [
        (labels, value)
        for labels, value in expiry
        if labels["role"] == "identity" and labels["store"] == keystore
    ]
    assert identity == [
        (
            {
                "set": "gateway",
                "store": keystore,
                "role": "identity",
                "alias": "client",  # the key entry's: two key aliases are two series
                "subject": client.subject,
                "serial": f"{client.serial_number:x}",
            },
            client.certificate.not_valid_after_utc.timestamp(),
        )
    ]
    # per store file: the loaded profile's stores and the default's (the broken one has none)
    assert {Path(labels["store"]).name for labels, _ in expiry} == {
        "client.jks",
        "client-trust.jks",
        "d.jks",
        "d-trust.jks",
    }
    assert {labels["role"] for labels, _ in expiry} == {"identity", "anchor"}

    healthy = {labels["profile"]: value for labels, value in metrics["mtls_profile_healthy"]}
    assert healthy == {"orders.internal:8443": 1.0, "billing.internal:443": 0.0, "(default)": 1.0}
    states = {labels["state"]: value for labels, value in metrics["mtls_profiles"]}
    assert states == {"healthy": 2.0, "failing": 0.0, "not_loaded": 1.0}
    reloads = {labels["outcome"]: value for labels, value in metrics["mtls_reloads_total"]}
    assert reloads == {"changed": 0.0, "unchanged": 0.0, "failed": 1.0}  # a profile is broken
    revocation = {
        labels["result"]: value for labels, value in metrics["mtls_revocation_checks_total"]
    }
    # Every result from 0 once checking is on (an increase() alert missed the first
    # "revoked", which appeared at 2).
    assert revocation == {"good": 2.0, "revoked": 1.0, "undetermined": 0.0}
    ((labels, last),) = metrics["mtls_last_reload_timestamp_seconds"]
    assert labels == {"set": "gateway"}
    assert last == profiles.status().last_reload.timestamp()
    # The set's own health and its last check: a broken profile makes the set unhealthy
    # (a broken profile file or a stalled check, which no per-profile gauge shows, too).
    ((labels, healthy_set),) = metrics["mtls_set_healthy"]
    assert labels == {"set": "gateway"} and healthy_set == 0.0
    ((_, checked),) = metrics["mtls_last_check_timestamp_seconds"]
    status = profiles.status()
    assert status.last_check is not None and checked == status.last_check.timestamp()


def test_a_broken_profile_file_and_a_path_not_in_utf8_show_in_the_scrape(
    tmp_path: Path,
) -> None:
    """A profile file that no longer parses (its last good profiles serving) left every
    gauge at 1: the set's own health is exported now. A store in a directory whose name
    is not UTF-8 made the whole scrape fail (the application's own metrics too):
    labels show the byte as \\xe9."""
    import os

    ca = CA()
    odd = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9")))
    odd.mkdir()
    identity = issue(ca, left=300 * DAY)
    write_identity(identity, odd / "k.jks")
    trust = odd / "t.jks"
    ca.write_truststore(trust, PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml(profile("orders.internal:8443", Path("k.jks"), Path("t.jks"))))
    registry = prometheus_client.CollectorRegistry()
    with mtls.SSLProfileSet.from_xml(xml, base_dir=odd, settle_delay=0) as profiles:
        register(profiles, registry=registry, name="gw")
        text = prometheus_client.generate_latest(registry).decode()  # raised UnicodeEncodeError
        assert "caf\\\\xe9" in text  # the label's backslash, escaped in the exposition
        assert 'mtls_set_healthy{set="gw"} 1.0' in text  # the twin: healthy
        xml.write_text("<parameter><profile>")
        profiles.reload()
        text = prometheus_client.generate_latest(registry).decode()
        assert 'mtls_set_healthy{set="gw"} 0.0' in text
        assert (
            'mtls_profile_healthy{client_id="",profile="orders.internal:8443",set="gw"} 1.0' in text
        )


def test_a_scrape_follows_a_rotation(tmp_path: Path) -> None:
    ca = CA()
    profile = profile_for(tmp_path, issue(ca, left=300 * DAY), ca)
    assert profile.keystore is not None
    registry = prometheus_client.CollectorRegistry()
    with mtls.SSLProfileSet([profile]) as profiles:
        register(profiles, registry=registry)
        newer = issue(ca, left=100 * DAY)
        write_identity(newer, profile.keystore.location)
        profiles.reload()
        expiry = scrape(registry)["mtls_certificate_expiry_timestamp_seconds"]
        (value,) = [v for labels, v in expiry if labels["role"] == "identity"]
        assert value == newer.certificate.not_valid_after_utc.timestamp()
        ((labels, _),) = scrape(registry)["mtls_reloads_total"][:1]
        assert labels["set"] == "profiles"  # a set made in code


def test_two_sets_share_the_families_and_a_name_is_never_reused(tmp_path: Path) -> None:
    ca = CA()
    one = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    two = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="x")])
    registry = prometheus_client.CollectorRegistry()
    stop_one = register(one, registry=registry, name="one")
    register(two, registry=registry, name="two")
    with pytest.raises(ValueError, match="set='two'"):
        register(one, registry=registry, name="two")
    sets = {labels["set"] for labels, _ in scrape(registry)["mtls_profile_healthy"]}
    assert sets == {"one", "two"}
    # Two names the label shows alike are one name (they were one series, h281).
    three = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="y")])
    register(three, registry=registry, name="t\n")
    with pytest.raises(ValueError, match=r"set='t\\\\n'"):
        register(two, registry=registry, name="t\\n")
    three.close()
    stop_one()
    sets = {labels["set"] for labels, _ in scrape(registry)["mtls_profile_healthy"]}
    assert sets == {"two"}
    one.close()
    # A closed set drops out of the scrape and frees its name for its replacement.
    two.close()
    assert "mtls_profile_healthy" not in scrape(registry)
    register(one_more := mtls.SSLProfileSet([]), registry=registry, name="two")
    assert {labels["set"] for labels, _ in scrape(registry)["mtls_profiles"]} == {"two"}
    one_more.close()


def test_a_set_whose_status_raises_leaves_the_others_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # One set's status() raising failed the whole scrape (the application's own
    # metrics too) and every OpenTelemetry callback of the collection (h281).
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations.otel import instrument

    ca = CA()
    one = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    two = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="x")])
    registry = prometheus_client.CollectorRegistry()
    register(one, registry=registry, name="one")
    register(two, registry=registry, name="two")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(one, meter_provider=provider, name="one")
    instrument(two, meter_provider=provider, name="two")
    working = one.status

    def broken() -> object:
        raise RuntimeError("secret-in-a-message")

    monkeypatch.setattr(one, "status", broken)
    with caplog.at_level("WARNING", logger="mtls"):
        for _ in range(2):
            sets = {labels["set"] for labels, _ in scrape(registry)["mtls_profile_healthy"]}
            assert sets == {"two"}
            assert _otel_sets(reader) == ["two"]
    said = [r.getMessage() for r in caplog.records if "status of the set" in r.getMessage()]
    assert said == [
        "mtls: metrics: the status of the set one raised RuntimeError; it is left out of "
        "this and later collections until its status works again (the other sets are "
        "reported)"
    ]
    assert "secret-in-a-message" not in caplog.text
    # A set closed and replaced under its name, failing too, is said again (it was
    # remembered by name, and the replacement left every scrape in silence, h287).
    one.close()
    three = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="y")])
    register(three, registry=registry, name="one")
    working = three.status
    monkeypatch.setattr(three, "status", broken)
    caplog.clear()
    with caplog.at_level("WARNING", logger="mtls"):
        assert {labels["set"] for labels, _ in scrape(registry)["mtls_profile_healthy"]} == {"two"}
    assert "status of the set one raised RuntimeError" in caplog.text
    monkeypatch.setattr(three, "status", working)
    sets = {labels["set"] for labels, _ in scrape(registry)["mtls_profile_healthy"]}
    assert sets == {"one", "two"}
    three.close()
    two.close()
    provider.shutdown()


def test_a_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mtls.integrations.prometheus")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r'pip install "mtls-profiles\[prometheus\]"'):
        importlib.import_module("mtls.integrations.prometheus")


# --------------------------------------------------------------------------- OpenTelemetry


def test_opentelemetry_reports_the_same_numbers(
    estate: tuple[mtls.SSLProfileSet, mtls.testing.IssuedIdentity],
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    from mtls.integrations.otel import instrument

    profiles, client = estate
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(profiles, meter_provider=provider, name="gateway")
    profiles.reload()
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        metric.name: metric
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert set(found) == {
        "mtls.certificate.expiry_timestamp",
        "mtls.profile.healthy",
        "mtls.profiles",
        "mtls.reloads",
        "mtls.last_reload_timestamp",
        "mtls.last_check_timestamp",
        "mtls.set.healthy",
    }  # no revocation checks yet: an instrument without points is not exported

    def points(name: str, *keys: str) -> dict[tuple[object, ...], float]:
        out: dict[tuple[object, ...], float] = {}
        for point in found[name].data.data_points:
            assert isinstance(point, NumberDataPoint)
            attributes = point.attributes or {}
            out[tuple(attributes[k] for k in keys)] = point.value
        return out

    assert found["mtls.certificate.expiry_timestamp"].unit == "s"
    expiry = points("mtls.certificate.expiry_timestamp", "store", "role")
    keystore = str(profiles.status().profiles[0].files[0].path)
    assert expiry[(keystore, "identity")] == (client.certificate.not_valid_after_utc.timestamp())
    reloads = points("mtls.reloads", "outcome")
    assert reloads == {("changed",): 0, ("unchanged",): 0, ("failed",): 1}
    states = points("mtls.profiles", "state")
    assert states == {("healthy",): 2, ("failing",): 0, ("not_loaded",): 1}


@pytest.mark.parametrize("alias", ["gen-1", "gen-2"])
def test_opentelemetry_expiry_attributes_do_not_change_with_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alias: str
) -> None:
    """The SDK keeps every attribute set an instrument ever reported. With `subject`
    and `serial` among the expiry gauge's attributes each rotation added one for good,
    and after 2,000 the current certificate was reported under otel.metric.overflow
    with no store or role (an alert on role="identity" went blind). The attributes are
    the same before and after a rotation now, a chain told apart by `position`; the
    value follows the new certificate. (Prometheus keeps subject and serial: its
    collector keeps nothing between scrapes; test above.) A rotation that brings
    another key alias (gateway-2026 to gateway-2027) added one too (h213): a store's
    one alias is reported as "" (two in use keep theirs: the test below)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations import otel
    from mtls.integrations.otel import instrument
    from mtls.testing import replace_atomically

    monkeypatch.setattr(otel, "STATUS_TTL", 0.0)  # each collection reads status() afresh
    root = CA(name="root")
    ica = root.create_child_ca(name="ica")
    profile = profile_for(tmp_path, ica.issue_cert("gen-1"), root)
    assert profile.keystore is not None
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def expiry() -> dict[tuple[tuple[str, object], ...], float]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            tuple(sorted((point.attributes or {}).items())): point.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "mtls.certificate.expiry_timestamp"
            for point in metric.data.data_points
        }

    with mtls.SSLProfileSet([profile], settle_delay=0) as profiles:
        instrument(profiles, meter_provider=provider, name="rotating")
        before = expiry()
        chain = [dict(k) for k in before if dict(k)["role"] == "chain"]
        assert [c["position"] for c in chain] == ["0"] and len(before) == 3  # + the anchor
        assert all("subject" not in dict(k) and "serial" not in dict(k) for k in before)
        later = ica.issue_cert("gen-2", not_after=ica.certificate.not_valid_after_utc)
        scratch = tmp_path / "scratch.jks"
        later.write_keystore(scratch, PASSWORD, alias=alias)  # kept, or a new one
        replace_atomically(profile.keystore.location, scratch.read_bytes())
        assert profiles.reload() is True
        after = expiry()
    assert set(after) == set(before)  # no new attribute set for the SDK to keep
    identity = next(k for k in after if dict(k)["role"] == "identity")
    assert after[identity] == later.certificate.not_valid_after_utc.timestamp()
    assert after[identity] != before[identity]


def _otel_sets(reader: object) -> list[str]:
    """The ``set`` attribute of each ``mtls.profiles`` point a collection reports."""
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    if data is None:
        return []
    return sorted(
        str((point.attributes or {})["set"])
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "mtls.profiles"
        for point in metric.data.data_points
        if (point.attributes or {})["state"] == "healthy"
    )


def test_opentelemetry_reports_every_set_and_stops_when_told_or_dropped(tmp_path: Path) -> None:
    # The SDK keeps the first callbacks of an instrument created twice: a second set
    # given instruments of its own was never reported. And the callbacks held every
    # set for good: a set dropped by the application stayed alive and reported.
    pytest.importorskip("opentelemetry.sdk")
    import gc
    import weakref

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations.otel import instrument, uninstrument

    ca = CA()
    one = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    two = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="x")])
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = instrument(one, meter_provider=provider, name="one")
    assert instrument(one, meter_provider=provider, name="one") is meter  # no-op again
    instrument(two, meter_provider=provider, name="two")
    assert _otel_sets(reader) == ["one", "two"]
    with pytest.raises(ValueError, match="set='two'"):
        instrument(one, meter_provider=provider, name="two")
    # Two names the attribute shows alike are one name (they were one series, h281).
    instrument(two, meter_provider=provider, name="t\n")
    with pytest.raises(ValueError, match=r"set='t\\\\n'"):
        instrument(one, meter_provider=provider, name="t\\n")
    instrument(two, meter_provider=provider, name="two")
    assert uninstrument(one, meter_provider=provider) is True
    assert uninstrument(one, meter_provider=provider) is False
    assert _otel_sets(reader) == ["two"]
    gone = weakref.ref(two)
    two.close()
    del two
    gc.collect()
    assert gone() is None
    assert _otel_sets(reader) == []
    # The name is free again once its set is gone.
    instrument(one, meter_provider=provider, name="two")
    assert _otel_sets(reader) == ["two"]
    # Instrumenting a set again moves it: one set, one name (it was counted twice).
    instrument(one, meter_provider=provider, name="orders")
    assert _otel_sets(reader) == ["orders"]
    # A closed set drops out and frees its name: a replacement from the same file is
    # instrumented before the old one is closed, or after.
    replacement = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    with pytest.raises(ValueError, match="or close the other"):
        instrument(replacement, meter_provider=provider, name="orders")
    one.close()
    assert _otel_sets(reader) == []
    instrument(replacement, meter_provider=provider, name="orders")
    assert _otel_sets(reader) == ["orders"]
    replacement.close()
    provider.shutdown()


def _otel_reloads(reader: object, name: str = "gw") -> dict[str, tuple[float, int]]:
    """``mtls.reloads`` of set ``name`` by outcome: (value, start time) of each point a
    collection has."""
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    if data is None:
        return {}
    return {
        str((point.attributes or {})["outcome"]): (point.value, point.start_time_unix_nano)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "mtls.reloads"
        for point in metric.data.data_points
        if (point.attributes or {})["set"] == name
    }


def _set_counting_as_gw(
    tmp_path: Path, ca: CA, provider: object, reloads: int
) -> mtls.SSLProfileSet:
    """A set instrumented as ``gw`` with ``provider``, reloaded ``reloads`` times."""
    from mtls.integrations.otel import instrument

    profiles = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    instrument(profiles, meter_provider=provider, name="gw")  # type: ignore[arg-type]
    for _ in range(reloads):
        profiles.reload()
    return profiles


def test_an_opentelemetry_counter_goes_on_under_the_name_of_the_set_it_replaces(
    tmp_path: Path,
) -> None:
    """A set closed and replaced under its name (as the docs advise) made every counter
    fall to the new set's counts with the same start time: a decrease exporters read as
    a negative delta (h276). The counts go on from the old set's; the twin: a set taken
    off alive and put back counts on from its own totals, not twice."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations.otel import instrument, uninstrument

    ca = CA()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    old = _set_counting_as_gw(tmp_path, ca, provider, reloads=5)
    before = _otel_reloads(reader)
    assert before["unchanged"][0] >= 5
    old.close()
    _otel_reloads(reader)  # the collection that finds it closed
    new = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    instrument(new, meter_provider=provider, name="gw")
    new.reload()
    after = _otel_reloads(reader)
    assert after["unchanged"][0] == before["unchanged"][0] + 1
    assert after["unchanged"][1] == before["unchanged"][1]  # one series, never lower
    # The twin: taken off alive and put back, a set is not counted twice.
    assert uninstrument(new, meter_provider=provider) is True
    instrument(new, meter_provider=provider, name="gw")
    again = _otel_reloads(reader)
    assert again["unchanged"][0] == after["unchanged"][0]
    # Moved to another name and back, it is not counted twice either (h280).
    instrument(new, meter_provider=provider, name="elsewhere")
    instrument(new, meter_provider=provider, name="gw")
    assert _otel_reloads(reader)["unchanged"][0] == after["unchanged"][0]
    # Taken off before it is closed (h277: the teardown order that fell), moved to
    # another name, or instrumented again and closed before any collection (h280), a
    # set's counts still carry on under the name it left.
    for leave in ("uninstrument", "rename", "again"):
        before = _otel_reloads(reader)["unchanged"][0]
        if leave == "uninstrument":
            uninstrument(new, meter_provider=provider)
        elif leave == "rename":
            instrument(new, meter_provider=provider, name=f"elsewhere-{id(new)}")
        else:
            instrument(new, meter_provider=provider, name="gw")
        new.close()
        new = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
        instrument(new, meter_provider=provider, name="gw")
        new.reload()
        assert _otel_reloads(reader)["unchanged"][0] == before + 1, leave
    new.close()
    provider.shutdown()


def test_a_name_in_use_keeps_its_counts_past_the_names_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SERIES_NAMES names, the oldest was forgotten even while a set still reported
    under it, and its counter fell when that set was replaced (h281). The oldest name
    no set reports under goes instead; the twin: that one is forgotten."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations import otel
    from mtls.integrations.otel import instrument

    monkeypatch.setattr(otel, "SERIES_NAMES", 3)
    ca = CA()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    kept = _set_counting_as_gw(tmp_path, ca, provider, reloads=4)
    before = _otel_reloads(reader)["unchanged"][0]
    roaming = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca, name="r")])
    for number in range(6):
        instrument(roaming, meter_provider=provider, name=f"name-{number}")
    instruments = otel._providers[provider]
    assert "gw" in instruments._series and "name-0" not in instruments._series
    kept.close()
    _otel_reloads(reader)
    replacement = mtls.SSLProfileSet([profile_for(tmp_path, issue(ca, left=9 * DAY), ca)])
    instrument(replacement, meter_provider=provider, name="gw")
    replacement.reload()
    assert _otel_reloads(reader)["unchanged"][0] == before + 1
    replacement.close()
    roaming.close()
    provider.shutdown()


_GLOBAL_PROVIDER_SCRIPT = """
import sys
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import mtls
from mtls.integrations.otel import instrument

reader = InMemoryMetricReader()
sdk = MeterProvider(metric_readers=[reader])
sets = {name: mtls.SSLProfileSet([]) for name in ("one", "two", "three")}
if sys.argv[1] == "proxy-first":  # instrumented before the application sets the global
    instrument(sets["one"], name="one")
    metrics.set_meter_provider(sdk)
    instrument(sets["two"], name="two")
    instrument(sets["three"], meter_provider=sdk, name="three")
else:  # the provider given explicitly, then made the global one
    instrument(sets["one"], meter_provider=sdk, name="one")
    metrics.set_meter_provider(sdk)
    instrument(sets["two"], name="two")
    instrument(sets["three"], meter_provider=metrics.get_meter_provider(), name="three")
data = reader.get_metrics_data()
print(sorted(
    point.attributes["set"]
    for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    if m.name == "mtls.last_reload_timestamp" for point in m.data.data_points
))
"""


@pytest.mark.parametrize("order", ["proxy-first", "explicit-first"])
def test_opentelemetry_one_provider_reached_as_the_global_and_by_name_reports_every_set(
    order: str,
) -> None:
    # One provider reached two ways (the global proxy before set_meter_provider, the
    # global after, the object itself) had two sets of instruments on one meter: the
    # SDK dropped one's callbacks, and its sets were never reported. A fresh
    # interpreter: the global provider can be set once per process.
    pytest.importorskip("opentelemetry.sdk")
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDER_SCRIPT, order],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.split("\n")[-2] == "['one', 'three', 'two']"


def test_a_store_shared_by_many_profiles_is_exported_once(tmp_path: Path) -> None:
    """10,000 profiles on two stores gave 60,000 expiry samples (14 MiB, 2.8 s a scrape):
    status() now shares one record per material and the exposition one series per
    store file and certificate."""
    ca = CA()
    shared = profile_for(tmp_path, issue(ca, left=90 * DAY), ca)
    profiles_list = [
        mtls.SSLProfile(
            servers=((f"backend{i}.internal", 443),),
            keystore=shared.keystore,
            truststore=shared.truststore,
        )
        for i in range(50)
    ]
    other = profile_for(tmp_path, issue(ca, left=30 * DAY), ca, servers=("x.internal:1",), name="o")
    with mtls.SSLProfileSet([*profiles_list, other]) as profiles:
        status = profiles.status()
        records = {id(p.identity) for p in status.profiles}
        assert len(records) == 2  # one identity record per material, shared
        registry = prometheus_client.CollectorRegistry()
        register(profiles, registry=registry)
        metrics = scrape(registry)
    expiry = metrics["mtls_certificate_expiry_timestamp_seconds"]
    identities = sorted(
        (Path(labels["store"]).name, value)
        for labels, value in expiry
        if labels["role"] == "identity"
    )
    assert [name for name, _ in identities] == ["client.jks", "o.jks"]
    assert len(expiry) == len({tuple(sorted(labels.items())) for labels, _ in expiry}) == 4
    # Negative twin: health stays per profile (51 profiles, 51 samples).
    assert len(metrics["mtls_profile_healthy"]) == 51


def test_a_rotating_server_is_refused_at_registration_not_at_every_scrape(
    tmp_path: Path,
) -> None:
    """register(server) returned normally, then every scrape of the registry failed
    (the application's own metrics too) with an AttributeError; instrument(server)
    broke every callback of the provider, other sets' included."""
    ca = CA()
    keystore = write_identity(ca.issue_cert("localhost"), tmp_path / "s.jks")
    trust = tmp_path / "t.jks"
    ca.write_truststore(trust, PASSWORD)
    registry = prometheus_client.CollectorRegistry()
    app = prometheus_client.Counter("app_requests", "requests", registry=registry)
    app.inc()
    with mtls.RotatingServerContext(keystore, trust, password=PASSWORD) as server:
        with pytest.raises(TypeError, match="takes an SSLProfileSet, not RotatingServerContext"):
            register(server, registry=registry)  # type: ignore[arg-type]
        assert "app_requests_total 1.0" in prometheus_client.generate_latest(registry).decode()
        pytest.importorskip("opentelemetry.sdk")
        from opentelemetry.sdk.metrics import MeterProvider

        from mtls.integrations.otel import instrument

        with pytest.raises(TypeError, match="takes an SSLProfileSet"):
            instrument(server, meter_provider=MeterProvider())  # type: ignore[arg-type]


def test_two_key_aliases_of_one_keystore_are_two_series_in_any_order(tmp_path: Path) -> None:
    """Two profiles on one keystore file with two key aliases had the same expiry
    attributes but `position`, given in the order the profiles were walked: adding,
    removing or reordering a profile swapped which certificate a series (and its
    alert) tracked. The key alias is in `alias` now, in Prometheus and OpenTelemetry;
    the twin: the same mapping whichever profile comes first."""
    pytest.importorskip("opentelemetry.sdk")
    from mtls._metrics import metrics
    from mtls.integrations.otel import _stable_expiry

    ca = CA()
    short, long_ = issue(ca, left=5 * DAY), issue(ca, left=300 * DAY)
    store = mtls.Keystore()
    store.add_key("short", short.private_key, [short.certificate])
    store.add_key("long", long_.private_key, [long_.certificate])
    path = tmp_path / "two.jks"
    store.save(path, PASSWORD)

    def profile(alias: str, server: str) -> mtls.SSLProfile:
        return mtls.SSLProfile(
            servers=(server,),
            keystore=mtls.StoreConfig(location=path, password=PASSWORD, alias=alias),
        )

    seen = []
    for order in (("short", "long"), ("long", "short")):
        made = [profile(a, f"{a}.internal:443") for a in order]
        with mtls.SSLProfileSet(made) as profiles:
            (expiry,) = [m for m in metrics(profiles.status(), "s") if "expiry" in m.name]
            points = _stable_expiry(expiry)
        seen.append(
            {
                (p.attributes["alias"], p.attributes["position"]): p.value
                for p in points
                if p.attributes["role"] == "identity"
            }
        )
    assert seen[0] == seen[1]
    assert seen[0][("short", "0")] == short.certificate.not_valid_after_utc.timestamp()
    assert seen[0][("long", "0")] == long_.certificate.not_valid_after_utc.timestamp()


@pytest.mark.parametrize("limit", [2, 3])
def test_more_series_than_an_sdk_keeps_is_said(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    limit: int,
) -> None:
    """An OpenTelemetry SDK keeps 2,000 series per instrument unless told more, and
    merges the rest into one otel.metric.overflow point: 10,000 profiles' health became
    one unlabelled point, saying nothing (h180). It is said once, with the fix; twin:
    within the limit, nothing is said."""
    pytest.importorskip("opentelemetry.sdk")
    import logging

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from mtls.integrations import otel

    monkeypatch.setattr(otel, "SDK_SERIES", limit)
    ca = CA()
    one = profile_for(tmp_path, ca.issue_cert("client"), ca)
    profiles = [
        mtls.SSLProfile(
            servers=(f"backend{n}.example:443",), keystore=one.keystore, truststore=one.truststore
        )
        for n in range(3)
    ]
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with mtls.SSLProfileSet(profiles) as profile_set, caplog.at_level(logging.WARNING, "mtls"):
        otel.instrument(profile_set, meter_provider=provider, name="estate")
        reader.get_metrics_data()
        reader.get_metrics_data()
    said = [r.getMessage() for r in caplog.records if "series" in r.getMessage()]
    if limit == 3:
        assert said == []
    else:
        healthy = [m for m in said if m.startswith("mtls: OpenTelemetry: mtls.profile.healthy")]
        assert len(healthy) == 1, said  # once, though collected twice
        assert healthy[0].startswith("mtls: OpenTelemetry: mtls.profile.healthy reports 3 series")
        assert "aggregation_cardinality_limit" in healthy[0]
        assert len(said) == len({m.split(" reports ")[0] for m in said})  # once each
