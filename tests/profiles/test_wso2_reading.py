"""Where WSO2 reads a profile file's text otherwise than mtls, and mtls says so: the
placeholders axis2 replaces once per value, a ``<clientID>`` compared as written.

mtls keeps its reading (docs/profiles.md, "What mtls does"), and warns, so that
``mtls check`` fails on a file WSO2 would read differently (h158)."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pytest

from mtls import ProfileConfigError, SSLProfileSet
from mtls.cli import main
from mtls.testing import CA
from tests._helpers import PASSWORD, profile, write_identity, write_trust, write_xml

AXIS2 = "replaces only the first $sys{} or, without one, the first $env{}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A CA, a client identity it issued as a JKS keystore, and a truststore holding it."""
    d = tmp_path_factory.mktemp("pki")
    ca = CA(name="backend CA")
    gw1 = ca.issue_cert("gateway-one", common_name="gateway-one")
    return {
        "ca": ca,
        "gw1": write_identity(gw1, d / "gw1.jks"),
        "trust": write_trust(ca, d / "trust.jks"),
    }


def _check(xml: Path) -> tuple[int, str]:
    """``mtls check`` on ``xml``: its exit code and what it wrote."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(xml), "--no-color"])
    return code, out.getvalue() + err.getvalue()


def test_a_second_placeholder_in_a_value_is_text_to_wso2(tmp_path, pki, monkeypatch, caplog):
    """axis2's Utils.replaceSystemProperty replaces the first $env{} name of a value and
    returns: in WSO2 `$env{B}:8243` beside `$env{A}:8243` stays text (a host that never
    matches) and a Location made of two placeholders is a path it cannot open. mtls
    replaces both, and said nothing: `mtls check` passed (h158). Twins: one placeholder
    per value, and a value repeating one name (replaceAll replaces every occurrence),
    say nothing and pass."""
    monkeypatch.setenv("MTLS_T_HOST_A", "a.test")
    monkeypatch.setenv("MTLS_T_HOST_B", "b.test")
    monkeypatch.setenv("MTLS_T_DIR", str(pki["gw1"].parent))
    monkeypatch.setenv("MTLS_T_FILE", pki["gw1"].name)
    body = profile(
        "$env{MTLS_T_HOST_A}:8243, $env{MTLS_T_HOST_B}:8243",
        Path("$env{MTLS_T_DIR}/$env{MTLS_T_FILE}"),
        pki["trust"],
    )
    xml = write_xml(tmp_path, body)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    with profiles:  # mtls's reading is unchanged: both hosts, the store found
        assert profiles.profile_for("b.test", 8243) is profiles.profile_for("a.test", 8243)
        assert profiles.context_for("b.test", 8243) is not None
    assert f"{AXIS2} name of a value, so in WSO2 $env{{MTLS_T_HOST_B}} stays" in caplog.text
    assert "so in WSO2 $env{MTLS_T_FILE} stays as written" in caplog.text
    assert "put the whole value in one placeholder" in caplog.text
    code, said = _check(xml)
    assert code == 1 and "$env{MTLS_T_HOST_B} stays as written" in said

    caplog.clear()
    twin = profile(
        "$env{MTLS_T_HOST_A}:8243, $env{MTLS_T_HOST_A}:9443",
        Path(f"{pki['gw1'].parent}/$env{{MTLS_T_FILE}}"),
        pki["trust"],
    )
    xml = write_xml(tmp_path, twin)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml).close()
    assert "replaceSystemProperty" not in caplog.text
    assert _check(xml)[0] == 0


def test_sys_wins_over_env_and_dollar_brace_in_one_value(tmp_path, pki, monkeypatch, caplog):
    """With a $sys{} in a value, axis2 replaces that name only: a $env{} and a ${} beside
    it stay text in WSO2. Twin: ${} alone, however many, are all replaced by WSO2 too."""
    monkeypatch.setenv("MTLS_T_FILE", pki["gw1"].name)
    location = Path("$sys{t.dir}/${MTLS_T_FILE}")
    body = profile("a.test:443", location, pki["trust"])
    props = {"t.dir": str(pki["gw1"].parent)}
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(write_xml(tmp_path, body), properties=props).close()
    assert "so in WSO2 ${MTLS_T_FILE} stays as written" in caplog.text

    caplog.clear()
    monkeypatch.setenv("MTLS_T_DIR", str(pki["gw1"].parent))
    twin = profile("a.test:443", Path("${MTLS_T_DIR}/${MTLS_T_FILE}"), pki["trust"])
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(write_xml(tmp_path, twin)).close()
    assert "replaceSystemProperty" not in caplog.text


def test_a_dollar_in_a_value_env_puts_in_is_said(tmp_path, pki, monkeypatch, caplog):
    """axis2 puts a $env{} value in with String.replaceAll, which reads '$' as a group
    reference: a password 'pa$word' from the environment throws there (WSO2 cannot load
    the file). The password itself is never shown. Twins: the same value through ${},
    which WSO2 puts in as it is, and a password without '$', say nothing."""
    secret = "pa$word-" + PASSWORD
    keystore = tmp_path / "dollar.jks"
    pki["ca"].issue_cert("dollar").write_keystore(keystore, secret)  # type: ignore[attr-defined]
    monkeypatch.setenv("MTLS_T_PASSWORD", secret)
    ours = f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
    for written, warned in (
        ("$env{MTLS_T_PASSWORD}", True),
        ("${MTLS_T_PASSWORD}", False),
    ):
        caplog.clear()
        body = profile("a.test:443", keystore, pki["trust"])
        theirs = f"<Password>{written}</Password><KeyPassword>{written}</KeyPassword>"
        assert body.count(ours) == 1
        xml = write_xml(tmp_path, body.replace(ours, theirs))
        with caplog.at_level(logging.WARNING, logger="mtls"):
            with SSLProfileSet.from_xml(xml) as profiles:
                assert profiles.context_for("a.test", 443) is not None
        assert ("reads as a group reference" in caplog.text) is warned, written
        assert secret not in caplog.text and "pa$" not in caplog.text
        if warned:
            assert "the value $env{MTLS_T_PASSWORD} gives has a '$'" in caplog.text
            code, said = _check(xml)
            assert code == 1 and secret not in said
    monkeypatch.setenv("MTLS_T_PASSWORD", PASSWORD)
    caplog.clear()
    body = profile("a.test:443", pki["gw1"], pki["trust"], password="$env{MTLS_T_PASSWORD}")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(write_xml(tmp_path, body)).close()
    assert "replaceSystemProperty" not in caplog.text


def test_a_password_with_two_placeholders_is_warned_without_naming_them(
    tmp_path, pki, monkeypatch, caplog
):
    """Inside a password, a placeholder may be part of the password itself: the warning
    names none of them."""
    monkeypatch.setenv("MTLS_T_PW_HEAD", PASSWORD[:3])
    monkeypatch.setenv("MTLS_T_PW_TAIL", PASSWORD[3:])
    written = "$env{MTLS_T_PW_HEAD}$env{MTLS_T_PW_TAIL}"
    body = profile("a.test:443", pki["gw1"], pki["trust"], password=written)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(write_xml(tmp_path, body)).close()
    assert "so in WSO2 its other placeholders stay as written" in caplog.text
    assert "MTLS_T_PW" not in caplog.text and PASSWORD not in caplog.text


def test_a_client_id_with_spaces_around_it_is_said(tmp_path, pki, caplog):
    """Synapse compares <clientID>'s getText() as written: with spaces around it, no
    request's identifier matches in WSO2. mtls trims it (and matches), and said nothing:
    `mtls check` passed (h158). Twin: a trimmed <clientID> says nothing."""
    client = (
        "<client><clientID>{}</clientID><KeyStore><Location>{}</Location><Type>JKS</Type>"
        "<Password>{}</Password><KeyPassword>{}</KeyPassword></KeyStore></client>"
    )
    for written, warned in ((" orders-app\n ", True), ("orders-app", False)):
        caplog.clear()
        body = profile(
            "a.test:443",
            truststore=pki["trust"],
            extra=client.format(written, pki["gw1"], PASSWORD, PASSWORD),
        )
        xml = write_xml(tmp_path, body)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            with SSLProfileSet.from_xml(xml) as profiles:
                chosen = profiles.profile_for("a.test", 443, client_id="orders-app")
                assert chosen is not None and chosen.keystore is not None
        said = "<clientID> ' orders-app\\n ' has spaces or line breaks around its text"
        assert (said in caplog.text) is warned
        assert (_check(xml)[0] == 1) is warned


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        # Entries separated by a semicolon: the fix is commas, not brackets (h158).
        ("a.example.com:443;b.example.com:443", "write a.example.com:443, b.example.com:443"),
        ("a.example.com:443; b.example.com:443", "write a.example.com:443, b.example.com:443"),
        # WSO2's own documentation example: what to write instead.
        ("localhost:port", "write localhost:443, with the backend's port"),
        # An unrendered template: render it (not "write {{...}}:443").
        ("{{profile.servers}}", "render the template first"),
        ("{{ host }}:{{ port }}", "render the template first"),
    ],
)
def test_a_servers_entry_wso2_never_matches_says_what_to_write(entry, fix):
    """Each refusal ends with the fix that applies. The twin: the entry as the fix
    writes it is read."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError) as caught:
        parse_server(entry, path="p.xml")
    assert str(caught.value).endswith(fix), str(caught.value)
    if fix.startswith("write "):
        written = fix.removeprefix("write ").split(", with")[0]
        assert [parse_server(e.strip()) for e in written.split(",")]


def test_a_template_entry_with_a_port_is_said_never_to_match(caplog):
    """`{{profile.servers}}:443` is a literal to WSO2 (it never matches): it loaded
    without a word (h158). The twin: a plain name is not warned about."""
    from mtls._config import parse_server

    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_server("{{profile.servers}}:443", path="p.xml")
        parse_server("orders.internal:443", path="p.xml")
    (said,) = [r.getMessage() for r in caplog.records]
    assert "never matches a request" in said and "render the template first" in said


def test_an_unrendered_deployment_toml_template_says_so(tmp_path):
    """A Helm chart's deployment.toml, not rendered: the TOML error says to render it.
    The twin: a file that is merely broken keeps "fix the file"."""
    toml = tmp_path / "deployment.toml"
    toml.write_text('[server]\nhostname = "{{ .Values.host }}"\n{{- if .Values.x }}\n')
    with pytest.raises(ProfileConfigError, match="render the template first"):
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    toml.write_text("[server\n")
    with pytest.raises(ProfileConfigError, match=r"fix the file$"):
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
