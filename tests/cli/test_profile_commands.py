"""`mtls probe` notes only the profile probed; `mtls check --deployment-toml` counts the
default's anchors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mtls.cli import main
from mtls.testing import CA, MTLSServer

PASSWORD = "profiles-Pa55word"
NOW = dt.datetime.now(dt.UTC)


def _profile(server: str, keystore: Path | None, trust: Path | None, extra: str = "") -> str:
    # Every element WSO2 reads, so that WSO2 could load the file too (mtls check fails
    # on what it cannot: a missing <Type> or <KeyPassword>).
    ks = (
        f"<KeyStore><Location>{keystore}</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
        if keystore
        else ""
    )
    ts = (
        f"<TrustStore><Location>{trust}</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password></TrustStore>"
        if trust
        else ""
    )
    return f"<profile><servers>{server}</servers>{ks}{ts}{extra}</profile>"


def _xml(path: Path, *profiles: str) -> Path:
    path.write_text('<parameter name="customSSLProfiles">' + "".join(profiles) + "</parameter>")
    return path


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="profiles CA")


@pytest.mark.parametrize("ours_expired", [False, True])
def test_probe_notes_only_the_probed_profile(ca, tmp_path, capsys, ours_expired):
    expired = ca.issue_cert("old", not_after=NOW - dt.timedelta(days=1))
    other = expired.write_keystore(tmp_path / "other.jks", PASSWORD)
    # Another expired identity: the same one would share the other profile's context.
    ours = ca.issue_cert("mine", not_after=NOW - dt.timedelta(days=1)) if ours_expired else None
    mine = (ours or ca.issue_cert("gw")).write_keystore(tmp_path / "mine.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        xml = _xml(
            tmp_path / "profiles.xml",
            _profile("other.test:443", other, trust, "<Unknown/>"),
            _profile(f"localhost:{server.port}", mine, trust, "<Mine/>"),
        )
        code = main(
            ["probe", f"https://localhost:{server.port}/", "--profiles", str(xml), "--json"]
        )
    report = json.loads(capsys.readouterr().out)
    notes = report["notes"]
    # Ours: the unknown element of our profile, and our keystore when it has expired.
    assert any("<Mine>" in n for n in notes), notes
    assert any(str(mine) in n and "expired" in n for n in notes) is ours_expired
    # Never the other profile's.
    assert not any("other.test" in n or str(other) in n or "<Unknown>" in n for n in notes), notes
    assert code == (1 if ours_expired else 0)


def _stores(ca: CA, d: Path, anchors: int) -> tuple[Path, Path]:
    keystore = ca.issue_cert("gw").write_keystore(d / "gw.jks", PASSWORD)
    trust = d / "trust.jks"
    store = ca.truststore()
    for index in range(anchors - 1):
        store.add(f"extra{index}", CA(name=f"extra {index}").certificate)
    store.save(trust, PASSWORD)
    return keystore, trust


@pytest.mark.parametrize("with_truststore", [True, False])
def test_check_deployment_toml_counts_the_default_anchors(ca, tmp_path, capsys, with_truststore):
    keystore, trust = _stores(ca, tmp_path, anchors=3)
    xml = _xml(
        tmp_path / "profiles.xml",
        _profile("own.test:443", keystore, trust),
        _profile("borrows.test:443", keystore, None),  # uses [truststore] when there is one
    )
    toml = (
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{xml}"\n'
        "[keystore.tls]\n"
        f'file_name = "{keystore}"\npassword = "{PASSWORD}"\n'
    )
    if with_truststore:
        toml += f'[truststore]\nfile_name = "{trust}"\npassword = "{PASSWORD}"\n'
    (tmp_path / "deployment.toml").write_text(toml)
    # Absolute store file_names, which API Manager would not find: a file only mtls reads.
    args = ["check", "--mtls-only", "--deployment-toml", str(tmp_path / "deployment.toml")]
    code = main([*args, "--base-dir", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert PASSWORD not in out
    report = json.loads(out)
    assert code == 0, report
    rows = {row["servers"][0]: row for row in report["profiles"]}
    assert rows["own.test:443"]["anchors"] == 3
    assert report["default"]["client_subject"] == "CN=gw,O=mtls.testing"
    if with_truststore:
        assert report["default"]["anchors"] == 3
        assert rows["borrows.test:443"]["anchors"] == 3
    else:  # the twin: no truststore anywhere, so no anchors to count
        assert report["default"]["anchors"] is None
        assert rows["borrows.test:443"]["anchors"] is None
    # The table shows the number, not "-".
    main([*args, "--base-dir", str(tmp_path)])
    table = capsys.readouterr().out
    default_line = next(line for line in table.splitlines() if line.startswith("(default)"))
    assert (" 3 " in default_line) is with_truststore


def test_check_says_when_only_the_default_failed(ca, tmp_path, capsys):
    """Every profile loads but [keystore.tls] names a missing file: the summary and the
    error say the default did not load (they said "0 of 1 profiles did not load"),
    and the default row states the problem once."""
    keystore, trust = _stores(ca, tmp_path, anchors=1)
    xml = _xml(tmp_path / "profiles.xml", _profile("own.test:443", keystore, trust))
    toml = tmp_path / "deployment.toml"

    def write(default_store: Path) -> None:
        toml.write_text(
            "[transport.passthru_https.sender.ssl_profile]\n"
            f'file_path = "{xml}"\n'
            "[keystore.tls]\n"
            f'file_name = "{default_store}"\npassword = "{PASSWORD}"\n'
        )

    write(tmp_path / "missing.jks")
    # Absolute store file_names, which API Manager would not find: a file only mtls reads.
    args = ["check", "--mtls-only", "--deployment-toml", str(toml), "--base-dir", str(tmp_path)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "FAILED: the default profile did not load" in captured.out
    assert "0 of 1" not in captured.out + captured.err
    assert "the default profile" in captured.err and "missing.jks" in captured.err
    default_line = next(line for line in captured.out.splitlines() if line.startswith("(default)"))
    assert default_line.count("no such keystore file") == 1
    assert main([*args, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 0 and report["default"]["loaded"] is False
    # Twin: the default store present, all is well.
    write(keystore)
    assert main(args) == 0
    assert "OK: 1 profile loaded" in capsys.readouterr().out


@pytest.mark.parametrize("nokeys", [True, False], ids=["openssl-nokeys", "keytool-trust"])
def test_check_warns_of_a_truststore_java_reads_as_empty(ca, tmp_path, capsys, openssl_bin, nokeys):
    """An `openssl pkcs12 -export -nokeys` truststore has no Java trust attribute: mtls
    takes its certificates as anchors, keytool lists 0 entries and WSO2's gateway
    fails ("trustAnchors parameter must be non-empty"). check said OK with 1 anchor,
    then named it and still passed."""
    import subprocess

    pem = tmp_path / "ca.pem"
    pem.write_bytes(ca.cert_pem)
    trust = tmp_path / "trust.p12"
    if nokeys:
        subprocess.run(
            [openssl_bin, "pkcs12", "-export", "-nokeys", "-in", str(pem), "-out", str(trust),
             "-passout", f"pass:{PASSWORD}", "-name", "root"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    else:
        ca.write_truststore(trust, PASSWORD, store_type="PKCS12")
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    xml = _xml(tmp_path / "profiles.xml", _profile("backend.test:443", keystore, trust))
    code = main(["check", str(xml), "--json"])
    report = json.loads(capsys.readouterr().out)
    (row,) = report["profiles"]
    assert row["anchors"] == 1 and row["loaded"] is True
    warned = [p for p in row["problems"] if "no Java trust attribute" in p]
    assert bool(warned) is nokeys, row["problems"]
    # mtls serves it; WSO2's gateway would have no anchor: the check fails on it (it
    # said OK), as on any store the JDK refuses; --mtls-only passes.
    assert report["loads"] is True and code == (1 if nokeys else 0)
    assert len(report["stores_wso2_cannot_load"]) == int(nokeys)
    assert main(["check", str(xml), "--mtls-only"]) == 0


@pytest.mark.parametrize("made", ["plain-keybag", "pbmac1", "keytool-like"])
def test_check_warns_of_a_keystore_java_cannot_use(ca, tmp_path, capsys, openssl_bin, made):
    """A PKCS#12 keystore mtls reads and the JDK's reader does not: a key in a plain
    keyBag (openssl -keypbe NONE, cryptography's NoEncryption: keytool lists no entry)
    or a PBMAC1 integrity check (RFC 9579: keytool 17 and 25 refuse the file). check
    said OK; it now names what WSO2's gateway would not take, and fails as on the
    profile file's own WSO2-cannot-load notes (exit 1; --mtls-only passes: mtls serves
    it). The twin: a keystore written as keytool writes it has no such note."""
    import subprocess

    from tests.stores.test_pkcs12 import pbmac1, rebuild

    identity = ca.issue_cert("gw")
    keystore = tmp_path / "gw.p12"
    if made == "keytool-like":
        identity.write_keystore(keystore, PASSWORD, store_type="PKCS12")
    else:
        cert, key = tmp_path / "gw.pem", tmp_path / "gw.key"
        cert.write_bytes(identity.cert_pem)
        key.write_bytes(identity.private_key_pem)
        keypbe = ["-keypbe", "NONE"] if made == "plain-keybag" else []
        subprocess.run(
            [openssl_bin, "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
             "-out", str(keystore), "-passout", f"pass:{PASSWORD}", "-name", "gw", *keypbe],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        if made == "pbmac1":
            data = keystore.read_bytes()
            keystore.write_bytes(rebuild(data, pbmac1(data, PASSWORD)))
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = _xml(tmp_path / "profiles.xml", _profile("backend.test:443", keystore, trust))
    code = main(["check", str(xml), "--json"])
    report = json.loads(capsys.readouterr().out)
    (row,) = report["profiles"]
    assert row["loaded"] is True and report["loads"] is True  # mtls serves it
    notes = [p for p in row["problems"] if p.startswith("keystore: ")]
    expected = {
        "plain-keybag": "key entry 'gw' is stored unencrypted (a PKCS#12 keyBag)",
        "pbmac1": "its integrity check is PBMAC1 (RFC 9579)",
    }.get(made)
    if expected is None:
        assert notes == [] and report["wso2_cannot_load"] == [], notes
        assert code == 0 and report["ok"] is True
        return
    assert len(notes) == 1 and expected in notes[0], row["problems"]
    assert "keytool and WSO2's gateway" in notes[0]
    # The gateway cannot use this keystore: the check fails, naming the file.
    assert code == 1 and report["ok"] is False
    (refused,) = report["wso2_cannot_load"]
    assert refused.startswith(f"{keystore}: ") and expected in refused
    code = main(["check", str(xml)])
    err = capsys.readouterr().err
    assert (
        code == 1
        and "WSO2 cannot load a store this file names, or an entry of it" in err
        and str(keystore) in err
        and "--mtls-only" in err
    ), err
    assert main(["check", str(xml), "--mtls-only"]) == 0
    assert expected in capsys.readouterr().out  # the note stays


def test_probe_leaves_out_another_profiles_failure_on_a_shared_keystore(ca, tmp_path, capsys):
    """Two profiles on one keystore, the other one with a wrong password: its failure
    names the shared file, and was shown in this profile's probe (docs/cli.md says a
    message naming another profile's servers is left out)."""
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        wrong = _profile("other.test:443", keystore, trust).replace(
            f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>",
            "<Password>wrong-pass</Password><KeyPassword>wrong-pass</KeyPassword></KeyStore>",
        )
        xml = _xml(tmp_path / "p.xml", wrong, _profile(f"localhost:{server.port}", keystore, trust))
        code = main(
            ["probe", f"https://localhost:{server.port}/", "--profiles", str(xml), "--json"]
        )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert not any("other.test" in note for note in report["notes"]), report["notes"]
    # Its twin: probing the failed profile reports its failure.
    code = main(["probe", "https://other.test:443/", "--profiles", str(xml), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code != 0 and report["error"]["kind"] == "profile_error"


@pytest.mark.parametrize("client_auth", [False, True], ids=["serverAuth-only", "clientAuth"])
def test_check_fails_a_client_certificate_servers_refuse_for_its_usage(
    ca, tmp_path, capsys, client_auth
):
    """A client certificate whose extended key usage lacks clientAuth: the row said
    "servers will refuse it" and check exited 0, so a deploy gate let it through."""
    identity = ca.issue_cert("gw", client_auth=client_auth)
    keystore = identity.write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = _xml(tmp_path / "p.xml", _profile("backend.test:443", keystore, trust))
    code = main(["check", str(xml), "--json"])
    (row,) = json.loads(capsys.readouterr().out)["profiles"]
    assert row["out_of_date"] is (not client_auth)
    assert code == (0 if client_auth else 1)


def test_probe_reports_a_catch_all_or_default_that_did_not_load(ca, tmp_path, capsys):
    """The '*' profile (WSO2's shipped file) or the default not loaded: the probe's own
    report (kind profile_error, which profile), not the generic error document."""
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    star = _profile("*", keystore, trust).replace(
        f"<Password>{PASSWORD}</Password><KeyPassword>",
        "<Password>wrong-pass</Password><KeyPassword>",
    )
    xml = _xml(tmp_path / "star.xml", star)
    code = main(["probe", "https://backend.test:8243/", "--profiles", str(xml), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["error"]["kind"] == "profile_error", report["error"]
    assert "wrong store password" in report["error"]["message"]
    # Named as the '*' profile it is, not as one "for backend.test:8243".
    assert report["error"]["message"].startswith(
        "the catch-all ('*') profile, which serves backend.test:8243, in "
    ), report["error"]["message"]
    assert report["matched"] == "catch-all"
    assert report["profile"] == {"servers": ["*"], "client_id": None}
    # The same in words: the report, with the profile it matched.
    assert main(["probe", "https://backend.test:8243/", "--profiles", str(xml)]) == 1
    out = capsys.readouterr().out
    assert "catch-all profile * [*]" in out and "FAILED (profile_error)" in out
    # The default (deployment.toml's [keystore.tls]) names a missing store.
    own = _xml(tmp_path / "own.xml", _profile("own.test:443", keystore, trust))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{own}"\n'
        "[keystore.tls]\n"
        f'file_name = "{tmp_path / "missing.jks"}"\npassword = "{PASSWORD}"\n'
    )
    args = ["probe", "https://elsewhere.test:8243/", "--deployment-toml", str(toml), "--json"]
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["kind"] == "profile_error", report["error"]
    assert report["error"]["message"].startswith("the default profile in ")
    assert "missing.jks" in report["error"]["message"]
    assert report["matched"] == "default" and report["profile"] is None
    # Twin: a named profile that did not load is reported with its servers.
    named = _xml(tmp_path / "named.xml", star.replace("<servers>*<", "<servers>backend.test:8243<"))
    assert main(["probe", "https://backend.test:8243/", "--profiles", str(named), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["kind"] == "profile_error"
    assert report["matched"] == "profile"
    assert report["error"]["message"].startswith("the profile for backend.test:8243 in ")
    assert report["profile"] == {"servers": ["backend.test:8243"], "client_id": None}


def test_probe_without_a_client_id_ignores_client_profiles(ca, tmp_path, capsys):
    """Profiles named only by <client> entries serve no request without a client ID
    (the library's lookup): the probe says no profile, not another client's failure."""
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)

    def client(name: str, store: Path) -> str:
        return (
            f"<client><clientID>{name}</clientID><KeyStore><Location>{store}</Location>"
            f"<Type>JKS</Type><Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}"
            f"</KeyPassword></KeyStore><TrustStore><Location>{trust}</Location><Type>JKS</Type>"
            f"<Password>{PASSWORD}</Password></TrustStore></client>"
        )

    xml = _xml(
        tmp_path / "clients.xml",
        f"<profile><servers>api.test:8243</servers>{client('c1', keystore)}"
        f"{client('c2', tmp_path / 'nope.jks')}</profile>",
    )
    args = ["probe", "https://api.test:8243/", "--profiles", str(xml), "--json"]
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["kind"] == "no_profile", report["error"]
    assert "only for client IDs (c1, c2): pass --client-id" in report["error"]["message"]
    # Twin: with the failing client's ID, its failure.
    assert main([*args, "--client-id", "c2"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["kind"] == "profile_error" and "nope.jks" in report["error"]["message"]
    assert report["profile"] == {"servers": ["api.test:8243"], "client_id": "c2"}


def test_probe_of_a_client_id_from_a_placeholder(ca, tmp_path, capsys, monkeypatch):
    """<clientID>$env{CID}</clientID>: the probe matched the profile, found no status()
    entry for it (status names the client as written), and said no client certificate
    and the system's trust, so --require-client-auth failed a server that requires one
    (h287); it also showed the value. The twin: the ID written plainly."""
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    monkeypatch.setenv("MTLS_TEST_CID", "tenant-Zq81")
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        for written in ("$env{MTLS_TEST_CID}", "tenant-Zq81"):
            xml = _xml(
                tmp_path / "cid.xml",
                f"<profile><servers>localhost:{server.port}</servers><client><clientID>"
                f"{written}</clientID><KeyStore><Location>{keystore}</Location><Type>JKS"
                f"</Type><Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
                f"</KeyStore><TrustStore><Location>{trust}</Location><Type>JKS</Type>"
                f"<Password>{PASSWORD}</Password></TrustStore></client></profile>",
            )
            args = ["probe", f"https://localhost:{server.port}/", "--profiles", str(xml),
                    "--client-id", "tenant-Zq81", "--require-client-auth"]  # fmt: skip
            assert main([*args, "--json"]) == 0, capsys.readouterr()
            report = json.loads(capsys.readouterr().out)
            assert report["client_certificate"]["subject"].startswith("CN=gw")
            assert report["truststore"] == str(trust)
            assert report["profile"]["client_id"] == written
            assert main(args) == 0
            shown = capsys.readouterr().out
            assert f"client {written!r}" in shown
            if written.startswith("$"):
                assert "Zq81" not in shown + json.dumps(report)
        # Another ID: said to be none of those the profile names, not "add the host
        # to <servers>", which has it (h288).
        assert main([*args[:-3], "--client-id", "other", "--json"]) == 1
        message = json.loads(capsys.readouterr().out)["error"]["message"]
        assert "profiles name it for other client IDs (tenant-Zq81)" in message
        assert "--client-id other is none of them" in message and "<servers>" not in message


def test_check_names_a_profile_that_did_not_load_as_the_first(ca, tmp_path, capsys):
    """The line "2 of 3 profiles did not load (first: ...)" named a profile loaded with an
    expired client certificate, listed before the two that failed."""
    expired = ca.issue_cert("old", not_after=NOW - dt.timedelta(days=1))
    old = expired.write_keystore(tmp_path / "old.jks", PASSWORD)
    good = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = _xml(
        tmp_path / "p.xml",
        _profile("expired.test:443", old, trust),
        _profile("missing.test:443", tmp_path / "nope.jks", trust),
        _profile("good.test:443", good, trust),
    )
    assert main(["check", str(xml)]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 profiles did not load (first: missing.test:443: " in err, err
    assert "expired.test" not in err
    # The twin: none failed, one is out of date: "not healthy" names that one first.
    healthy = _xml(
        tmp_path / "q.xml",
        _profile("good.test:443", good, trust),
        _profile("expired.test:443", old, trust),
    )
    assert main(["check", str(healthy)]) == 1
    err = capsys.readouterr().err
    assert "not healthy (first: expired.test:443: client certificate expired" in err, err


def test_check_suggests_base_dir_only_for_a_missing_relative_location(ca, tmp_path, capsys):
    """The closing hint "set --base-dir to the product home" followed every missing
    store, an absolute <Location> too, where the base directory plays no part."""
    home = tmp_path / "home"
    home.mkdir()
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    hint = "is it the product home? (--base-dir)"  # given: it is not told to set it (h185)
    absolute = _xml(tmp_path / "abs.xml", _profile("a.test:443", tmp_path / "gone.jks", trust))
    assert main(["check", str(absolute), "--base-dir", str(home)]) == 1
    out = capsys.readouterr().out
    assert "gone.jks: no such keystore file" in out and hint not in out
    # Twin: written relative, looked for under the base directory: the hint.
    relative = _xml(tmp_path / "rel.xml", _profile("a.test:443", Path("gone.jks"), trust))
    assert main(["check", str(relative), "--base-dir", str(home)]) == 1
    out = capsys.readouterr().out
    assert f"base directory ({home}): {hint}" in out, out
    # And made from ${carbon.home}, which is the base directory unless told otherwise.
    carbon = _xml(
        tmp_path / "carbon.xml", _profile("a.test:443", Path("${carbon.home}/gone.jks"), trust)
    )
    assert main(["check", str(carbon), "--base-dir", str(home)]) == 1
    out = capsys.readouterr().out
    assert "${carbon.home}/gone.jks: no such" in out and hint in out, out
    # Without --base-dir, the working directory: told to set it.
    assert main(["check", str(relative)]) == 1
    assert "set --base-dir to the product home" in capsys.readouterr().out


def test_a_certificate_not_valid_yet_is_flagged_as_an_expired_one_is(ca, tmp_path, capsys):
    """`mtls list` and the probe's client certificate line flagged an expired
    certificate ("EXPIRED on ...") and said nothing of one not valid yet, which peers
    refuse the same way."""
    later = ca.issue_cert("later", not_before=NOW + dt.timedelta(days=2))
    early = later.write_keystore(tmp_path / "later.jks", PASSWORD)
    now_valid = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    assert main(["list", "--keystore", str(early), "--password", PASSWORD, "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "NOT VALID YET (from " in out and ("in 1 day)" in out or "in 2 days)" in out), out
    assert main(["list", "--keystore", str(now_valid), "--password", PASSWORD]) == 0
    assert "NOT VALID YET" not in capsys.readouterr().out  # the twin
    trust = ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        xml = _xml(tmp_path / "p.xml", _profile(f"localhost:{server.port}", early, trust))
        main(["probe", f"https://localhost:{server.port}/", "--profiles", str(xml), "--no-color"])
    out = capsys.readouterr().out
    client = next(line for line in out.splitlines() if line.strip().startswith("client cert"))
    assert "CN=later" in client and "NOT VALID YET (from " in client, out


def test_a_problem_said_again_with_where_its_password_was_set_is_merged():
    """The row's error said "X" (a store shared with a profile failed first, without the
    setting); reading the store again for the table said "X; set by ...": the row showed
    X twice. Now once, followed by where the password was set; other problems stay."""
    from mtls._cli._check import _add_problem

    error = "the default profile (used when no profile matches): /s/gw.jks: wrong store password"
    problems = [error]
    _add_problem(problems, "/s/gw.jks: wrong store password; set by [keystore.tls] password")
    assert problems == [f"{error}; set by [keystore.tls] password"]
    _add_problem(problems, "/s/gw.jks: wrong store password")  # said already: nothing
    _add_problem(problems, "/s/trust.jks: no such truststore file")  # the twin: another
    assert len(problems) == 2 and problems[1] == "/s/trust.jks: no such truststore file"
    # Said whole already (after another problem that names it in part): nothing added,
    # nothing merged into the partial one; and no problem gets two origins.
    problems = ["keystore: X", "X; set by S"]
    _add_problem(problems, "X; set by S")
    assert problems == ["keystore: X", "X; set by S"]
    problems = ["Y; set by [keystore.tls] password"]
    _add_problem(problems, "Y; set by [truststore] password")
    assert problems == ["Y; set by [keystore.tls] password", "Y; set by [truststore] password"]
