"""`mtls check --fail-within DAYS`: a deploy gate on real certificates near their end."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest

from mtls.cli import main
from mtls.testing import CA
from tests._helpers import PASSWORD, profile, profile_xml, write_identity, write_trust
from tests.health._certs import issue, utcnow

DAY = _dt.timedelta(days=1)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, out, err


def estate(tmp: Path, *, identity_left: _dt.timedelta, anchor_left: _dt.timedelta) -> Path:
    """A profile file with one profile: a client certificate and a CA with the given
    time left."""
    now = utcnow()
    ca = CA(not_before=now - 400 * DAY, not_after=now + anchor_left)
    client = issue(ca, left=identity_left)
    keystore = write_identity(client, tmp / "client.jks")
    truststore = write_trust(ca, tmp / "trust.jks")
    path = tmp / "sslprofiles.xml"
    path.write_text(profile_xml(profile("orders.internal:8443", keystore, truststore)))
    return path


def test_a_client_certificate_ending_within_the_window_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=3000 * DAY)
    code, out, err = run(capsys, "--no-color", "check", str(xml), "--fail-within", "7")
    assert code == 1
    assert "EXPIRING: orders.internal:8443: client certificate CN=client" in out
    assert "within --fail-within 7 days" in out
    assert "1 certificate ends within 7 days" in err
    assert "orders.internal:8443" in err


def test_the_gate_counts_certificates_and_says_time_left_as_people_read_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One client certificate (58 minutes left) and one anchor (expired 3 days and 5
    minutes ago) shared by three profiles: 2 certificates, not 6; "58 min", not "0
    days"; "3 days ago", not "-4 d"; times with their zone."""
    now = utcnow()
    ca = CA(not_before=now - 400 * DAY, not_after=now - 3 * DAY - _dt.timedelta(minutes=5))
    client = ca.issue_cert("client", not_after=now + _dt.timedelta(minutes=58))
    keystore = write_identity(client, tmp_path / "client.jks")
    truststore = write_trust(ca, tmp_path / "trust.jks")
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(*(profile(f"b{i}.internal:8443", keystore, truststore) for i in range(3)))
    )
    code, out, err = run(capsys, "--no-color", "check", str(xml), "--fail-within", "1", "--anchors")
    assert code == 1
    # the soonest (the anchor) has ended: said so in the closing line too
    assert "2 certificates end within 1 days or have ended (first:" in err
    # one line per profile and certificate (EXPIRED: for one past its end)
    assert out.count("EXPIRING:") + out.count("EXPIRED:") == 6
    assert "(57 min)" in out or "(58 min)" in out
    assert "(3 days ago)" in out
    assert " UTC (" in out and "0 days" not in out and "-4 d" not in out


def test_the_same_estate_passes_a_narrower_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=3000 * DAY)
    code, out, _ = run(capsys, "--no-color", "check", str(xml), "--fail-within", "4.5")
    assert code == 0
    assert "EXPIRING" not in out
    code, _, _ = run(capsys, "check", str(xml))  # without the flag: no gate
    assert code == 0


def test_an_expired_client_certificate_fails_any_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=-DAY, anchor_left=3000 * DAY)
    code, out, err = run(capsys, "--no-color", "check", str(xml), "--fail-within", "0")
    assert code == 1
    # Said as past, not "ends ... (1 day ago), within --fail-within 0 days".
    assert "EXPIRED:" in out and " ended " in out and "within --fail-within" not in out
    # The closing line too (it said "1 certificate ends within 0 days").
    assert "1 certificate has ended (first:" in err and "ends within" not in err


def test_anchors_count_only_with_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=300 * DAY, anchor_left=20 * DAY)
    code, _, _ = run(capsys, "check", str(xml), "--fail-within", "30")
    assert code == 0  # the identity has 300 days
    code, out, err = run(
        capsys, "--no-color", "check", str(xml), "--fail-within", "30", "--anchors"
    )
    assert code == 1
    assert "EXPIRING: orders.internal:8443: anchor" in out
    assert "within 30 days" in err


def test_expiring_lines_come_soonest_first_as_the_error_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The EXPIRING lines came in the table's order, and the closing error named the
    soonest as "first:": an anchor ending before the client certificate was listed
    second but named first. Both now go soonest first."""
    xml = estate(tmp_path, identity_left=20 * DAY, anchor_left=10 * DAY)
    code, out, err = run(
        capsys, "--no-color", "check", str(xml), "--fail-within", "30", "--anchors"
    )
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("EXPIRING:")]
    assert len(lines) == 2
    assert ": anchor" in lines[0] and "client certificate" in lines[1]
    named_first = err.split("first: orders.internal:8443: ")[1].split(" on ")[0]
    assert f"anchor {named_first} ends" in lines[0]


def test_json_carries_the_gate_and_the_status_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=20 * DAY)
    code, out, _ = run(capsys, "check", str(xml), "--json", "--fail-within", "30", "--anchors")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    gate = report["fail_within"]
    assert gate["days"] == 30
    assert gate["anchors"] is True
    assert sorted(item["role"] for item in gate["expiring"]) == ["anchor", "identity"]
    identity = next(item for item in gate["expiring"] if item["role"] == "identity")
    assert identity["servers"] == ["orders.internal:8443"]
    assert identity["days_left"] == 4
    # The status records, as ProfileSetStatus.to_dict() gives them.
    status = report["status"]
    (entry,) = status["profiles"]
    assert entry["identity"]["days_left"] == 4
    assert entry["anchors"][0]["days_left"] == 19
    assert status["reloads"] == {"changed": 0, "unchanged": 0, "failed": 0}
    assert status["expiry_warnings"] == [30 * 86400.0, 7 * 86400.0, 86400.0]


def test_json_without_the_gate_still_has_the_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=20 * DAY)
    code, out, _ = run(capsys, "check", str(xml), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["fail_within"] is None
    assert report["status"]["profiles"][0]["identity"]["subject"].startswith("CN=client")


def test_an_intermediate_ending_soon_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow()
    root = CA()
    intermediate = root.create_child_ca(not_before=now - DAY, not_after=now + 3 * DAY)
    client = intermediate.issue_cert("client", not_after=now + 300 * DAY)
    keystore = write_identity(client, tmp_path / "client.jks")
    truststore = write_trust(root, tmp_path / "trust.jks")
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile("orders.internal:8443", keystore, truststore)))
    code, out, _ = run(capsys, "--no-color", "check", str(xml), "--fail-within", "7")
    assert code == 1
    assert "chain certificate" in out


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "40000"])
def test_a_bad_window_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=20 * DAY)
    code, _, err = run(capsys, "check", str(xml), "--fail-within", value)
    assert code == 2
    assert "--fail-within" in err


def test_anchors_without_a_window_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = estate(tmp_path, identity_left=5 * DAY, anchor_left=20 * DAY)
    code, _, err = run(capsys, "check", str(xml), "--anchors")
    assert code == 2
    assert "--anchors needs --fail-within" in err


def test_a_client_certificate_not_valid_yet_is_said_by_status_log_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A first load serves it (nothing else to serve), and says so everywhere; a
    replacement of the same kind is set aside (tests/profiles/test_reloader.py)."""
    import mtls

    ca = CA()
    starts = utcnow() + 2 * DAY
    client = ca.issue_cert("client", not_before=starts)
    keystore = write_identity(client, tmp_path / "client.jks")
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        profile_xml(profile("orders.internal:8443", keystore, write_trust(ca, tmp_path / "t.jks")))
    )
    with mtls.SSLProfileSet.from_xml(xml) as profiles:
        assert profiles.context_for("orders.internal", 8443) is not None
        (record,) = profiles.status().profiles
        assert record.identity is not None and record.identity.not_before is not None
        assert abs(record.identity.not_before - starts) < _dt.timedelta(seconds=1)
        assert record.to_dict()["identity"]["not_before"] == record.identity.not_before.isoformat()
    warned = [r.getMessage() for r in caplog.records if "is not valid before" in r.getMessage()]
    assert len(warned) == 1 and "client.jks" in warned[0] and "servers refuse it" in warned[0]
    code, out, _ = run(capsys, "--no-color", "check", str(xml), "--json")
    assert code == 1  # it loads, but servers refuse it now: the gate fails
    (row,) = json.loads(out)["profiles"]
    assert any("not valid before" in problem for problem in row["problems"]), row
    assert row["loaded"] is True and row["out_of_date"] is True


def test_a_first_load_of_expired_material_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expired client certificate, an expired CA of its chain, or a truststore with
    no anchor in date: served at a first load (nothing else to serve), refused by a
    reload, and peers refuse them now. `mtls check` said "OK" and exited 0."""
    root = CA(name="root")
    old = root.create_child_ca(name="old intermediate", not_after=utcnow() - DAY)
    # A CA whose clock leads: valid in an hour (the check and the log said nothing).
    early = root.create_child_ca(name="early intermediate", not_before=utcnow() + DAY / 24)
    dead = CA(name="dead root", not_after=utcnow() - DAY)
    cases = {
        # name: (identity, its truststore's CA, what the row says)
        "identity": (root.issue_cert("client", not_after=utcnow() - DAY), root, "client "
                     "certificate expired on"),
        "chain": (old.issue_cert("client", not_after=utcnow() + 9 * DAY), root,
                  "CA certificate CN=old intermediate"),
        "future chain": (early.issue_cert("client", not_before=utcnow() - DAY), root,
                         "CA certificate CN=early intermediate,O=mtls.testing of the "
                         "client's chain is not valid before"),
        "anchors": (CA().issue_cert("client"), dead, "it verifies no server"),
        # Not valid until tomorrow: just as dead today (the check passed it).
        "future anchors": (CA().issue_cert("client"), CA(name="future root",
                           not_before=utcnow() + DAY), "1 of 1 trust anchors not valid yet"),
    }  # fmt: skip
    for name, (identity, trusted, said) in cases.items():
        keystore = write_identity(identity, tmp_path / f"{name}.jks")
        trust = write_trust(trusted, tmp_path / f"{name}-trust.jks")
        xml = tmp_path / f"{name.replace(' ', '-')}.xml"
        xml.write_text(profile_xml(profile("orders.internal:8443", keystore, trust)))
        code, out, _ = run(capsys, "--no-color", "check", str(xml), "--json")
        if name == "future chain":  # the first load's log says so too
            said_early = "the CA certificate CN=early intermediate,O=mtls.testing of the chain"
            assert any(said_early in w for w in json.loads(out)["warnings"]), out
        (row,) = json.loads(out)["profiles"]
        assert row["loaded"] is True, (name, row)
        assert code == 1 and row["out_of_date"] is True, (name, row)
        assert any(said in problem for problem in row["problems"]), (name, row)
    # The twin: the same layout in date passes.
    keystore = write_identity(root.issue_cert("client"), tmp_path / "good.jks")
    xml = tmp_path / "good.xml"
    xml.write_text(
        profile_xml(
            profile("orders.internal:8443", keystore, write_trust(root, tmp_path / "g.jks"))
        )
    )
    code, out, _ = run(capsys, "--no-color", "check", str(xml), "--json")
    assert code == 0 and json.loads(out)["profiles"][0]["out_of_date"] is False


def test_a_client_certificate_valid_now_has_no_such_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    xml = estate(tmp_path, identity_left=300 * DAY, anchor_left=3000 * DAY)
    code, out, _ = run(capsys, "--no-color", "check", str(xml), "--json")
    assert code == 0
    (row,) = json.loads(out)["profiles"]
    assert row["problems"] == []
    assert not [r for r in caplog.records if "is not valid before" in r.getMessage()]


def test_a_first_load_says_a_truststore_with_no_anchor_in_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truststore whose only CA starts tomorrow (its CA's clock leads), or has
    ended: served at a first load (nothing else to serve), it verifies no server, and
    the log said nothing (docs/reloading.md promised a warning). The twin: a CA in
    date is not said."""
    import logging

    import mtls

    cases = {
        "future": (CA(name="future root", not_before=utcnow() + DAY), "becomes valid on"),
        "ended": (CA(name="dead root", not_after=utcnow() - DAY), "(all expired)"),
        "current": (CA(name="current root"), None),
    }
    for name, (trusted, said) in cases.items():
        keystore = write_identity(CA().issue_cert("client"), tmp_path / f"{name}.jks")
        trust = write_trust(trusted, tmp_path / f"{name}-trust.jks")
        xml = tmp_path / f"{name}.xml"
        xml.write_text(profile_xml(profile("orders.internal:8443", keystore, trust)))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            mtls.SSLProfileSet.from_xml(xml).close()
        lines = [
            r.getMessage()
            for r in caplog.records
            if "none of the truststore's certificates is valid now" in r.getMessage()
        ]
        if said is None:
            assert lines == [], lines
        else:
            assert len(lines) == 1 and said in lines[0] and f"{name}-trust.jks" in lines[0]


def test_a_never_valid_certificate_and_a_chain_ca_near_its_end_are_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client certificate whose notBefore is after its notAfter (a clock wrong at
    issue, dates edited by hand) was said to have "expired" (rotate it): it was never
    valid, reissue it. A CA of the client's chain ending within 30 days was not said
    at all (only the client certificate's nearness was). The twin: a chain in date
    for long has no such problem."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    import mtls
    from tests._pki import odd_validity

    root = CA(name="root")
    key_pem, cert_pem = odd_validity(root, "inverted", b"200101000000Z")
    store = mtls.Keystore()
    store.add_key(
        "client",
        load_pem_private_key(key_pem, None),  # type: ignore[arg-type]
        [x509.load_pem_x509_certificate(cert_pem), root.certificate],
    )
    inverted = tmp_path / "inverted.jks"
    store.save(inverted, PASSWORD)
    soon = root.create_child_ca(
        name="ending intermediate", not_before=utcnow() - 300 * DAY, not_after=utcnow() + 9 * DAY
    )
    lasting = root.create_child_ca(name="lasting intermediate")
    cases = {
        "inverted": (inverted, "client certificate is never valid: its notBefore ("),
        "soon": (
            write_identity(soon.issue_cert("client", not_before=utcnow() - 200 * DAY,
                                           not_after=utcnow() + 5 * DAY),
                           tmp_path / "soon.jks"),
            "CA certificate CN=ending intermediate,O=mtls.testing of the client's chain "
            "expires in",
        ),
        "lasting": (write_identity(lasting.issue_cert("client"), tmp_path / "l.jks"), None),
    }  # fmt: skip
    trust = write_trust(root, tmp_path / "trust.jks")
    for name, (keystore, said) in cases.items():
        xml = tmp_path / f"{name}.xml"
        xml.write_text(profile_xml(profile("orders.internal:8443", keystore, trust)))
        code, out, _ = run(capsys, "--no-color", "check", str(xml), "--json")
        (row,) = json.loads(out)["profiles"]
        chain_said = [p for p in row["problems"] if "of the client's chain" in p]
        if said is None:
            assert code == 0 and row["problems"] == [], row
            continue
        assert any(said in problem for problem in row["problems"]), (name, row)
        assert not any("expired on" in problem for problem in row["problems"]), (name, row)
        if name == "inverted":
            assert code == 1 and row["out_of_date"] is True, row
            # The first load's log says the same (it said "expired on 2020-01-01").
            warnings = json.loads(out)["warnings"]
            assert any("is never valid: its notBefore" in w for w in warnings), warnings
            assert not any("expired on" in w for w in warnings), warnings
        else:  # a warning, as the client certificate's own nearness is
            assert chain_said and row["out_of_date"] is False, row


def test_a_profile_of_many_servers_is_named_by_its_first_three() -> None:
    """An EXPIRING line named all 32 servers of a profile before the certificate."""
    from mtls._cli._check import _servers_text

    assert _servers_text(["a:1", "b:1"]) == "a:1, b:1"
    assert _servers_text([f"h{i}:443" for i in range(32)]) == "h0:443, h1:443, h2:443 and 29 more"


def test_the_table_names_a_profile_by_its_first_three_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile of 32 servers made its table row about 540 characters; --json keeps
    them all."""
    xml = estate(tmp_path, identity_left=300 * DAY, anchor_left=3000 * DAY)
    many = ",".join(f"h{i}.internal:8443" for i in range(32))
    xml.write_text(xml.read_text().replace("orders.internal:8443", many))
    code, out, _ = run(capsys, "--no-color", "check", str(xml))
    assert code == 0
    assert "h0.internal:8443, h1.internal:8443, h2.internal:8443 and 29 more" in out
    assert "h31.internal" not in out
    code, out, _ = run(capsys, "check", str(xml), "--json")
    assert len(json.loads(out)["profiles"][0]["servers"]) == 32
