"""WSO2's own deployment.toml files, as the products ship them (copied into
tests/profiles/data/wso2/, see its README), read the way each product reads them; every
positive has its negative twin."""

from __future__ import annotations

import json
import logging
import re
import ssl
from pathlib import Path

import pytest

import mtls
from mtls.testing import CA, MTLSServer
from mtls.wso2 import SecureVault
from tests._helpers import whoami

DATA = Path(__file__).parent / "data" / "wso2"
SHIPPED_PASSWORD = "wso2carbon"  # the stock files' store passwords


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="stock CA")


def mi_home(root: Path, ca: CA, toml: str) -> Path:
    """A Micro Integrator home: conf/deployment.toml, and the two stores its stock file
    names (made for the test, with the stock passwords) in repository/resources/security."""
    home = root / "mi"
    security = home / "repository" / "resources" / "security"
    security.mkdir(parents=True)
    (home / "conf").mkdir()
    ca.issue_cert("gateway").write_keystore(
        security / "wso2carbon.jks", SHIPPED_PASSWORD, alias="wso2carbon"
    )
    ca.write_truststore(security / "client-truststore.jks", SHIPPED_PASSWORD)
    (home / "conf" / "deployment.toml").write_text(toml)
    return home


def test_micro_integrator_stock_file_sends_with_its_default_stores(tmp_path, ca, caplog) -> None:
    """Micro Integrator's shipped deployment.toml configures no dynamic SSL profiles: its
    sender uses [keystore.primary] and [truststore] for every host, and so does mtls."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    assert "ssl_profile" not in stock.replace("# ", "")  # no profile file, as shipped
    home = mi_home(tmp_path, ca, stock)
    toml = home / "conf" / "deployment.toml"
    with (
        caplog.at_level(logging.INFO, logger="mtls"),
        MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server,
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps,
    ):
        ctx = ps.context_for("localhost", server.port)
        assert ctx is not None
        assert whoami(ctx, server.port)["client_cn"] == "gateway"
        status = ps.status()
        assert status.profiles == () and status.default is not None
        assert [f.path for f in status.default.files] == [
            str(home / "repository" / "resources" / "security" / n)
            for n in ("wso2carbon.jks", "client-truststore.jks")
        ]
    assert "no SSL profile file configured" in caplog.text


def test_micro_integrator_file_with_neither_profiles_nor_stores_is_refused(tmp_path, ca) -> None:
    """Twin: without a profile file, the store tables and the truststore the product
    ships there is nothing to send with: an error naming the file and the settings to
    add. (With the shipped truststore there, the default trusts it, as WSO2's does.)"""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    bare = stock.split("[keystore.primary]")[0] + "[management_api]\n"
    home = mi_home(tmp_path, ca, bare)
    toml = home / "conf" / "deployment.toml"
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded and default.identity is None
        assert any(f.path.endswith("client-truststore.jks") for f in default.files)
    (home / "repository" / "resources" / "security" / "client-truststore.jks").unlink()
    with pytest.raises(mtls.ProfileConfigError) as e:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    text = str(e.value)
    assert str(toml) in text and "no SSL profile file configured" in text
    assert "sender.ssl_profile.file_path" in text and "[keystore.primary]" in text
    assert "Micro Integrator itself falls back to" in text  # what the product does
    assert 'wso2carbon"' not in text and "password wso2carbon" not in text
    assert e.value.path == str(toml)


def test_micro_integrator_stock_file_with_a_missing_store_names_its_setting(tmp_path, ca) -> None:
    """Twin: the default store the stock file names is absent: the error names the
    setting and the rule that placed the file."""
    home = mi_home(tmp_path, ca, (DATA / "mi-deployment-stock.toml").read_text())
    (home / "repository" / "resources" / "security" / "wso2carbon.jks").unlink()
    with pytest.raises(mtls.KeystoreNotFoundError) as e:
        mtls.SSLProfileSet.from_deployment_toml(
            home / "conf" / "deployment.toml", base_dir=home, reload_interval=None
        )
    assert "[keystore.primary] file_name" in str(e.value)


def test_mtls_check_on_the_micro_integrator_stock_file(tmp_path, ca, capsys) -> None:
    """`mtls check --deployment-toml` on the shipped file: no profile file, the default
    stores' row; its twin without store tables fails with the file named."""
    from mtls.cli import main

    home = mi_home(tmp_path, ca, (DATA / "mi-deployment-stock.toml").read_text())
    toml = home / "conf" / "deployment.toml"
    code = main(["--no-color", "check", "--base-dir", str(home), "--deployment-toml", str(toml)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("no profile file: 0 profiles")
    assert "(default)" in out and "repository/resources/security/wso2carbon.jks" in out
    bare = mi_home(tmp_path / "bare", ca, "[management_api]\n")
    (bare / "repository" / "resources" / "security" / "client-truststore.jks").unlink()
    code = main(
        ["--no-color", "check", "--base-dir", str(bare),
         "--deployment-toml", str(bare / "conf" / "deployment.toml")]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert "no SSL profile file configured" in out + err


def test_a_byte_order_mark_before_the_stock_file_is_read_past(tmp_path, ca) -> None:
    """Windows editors save UTF-8 with a byte-order mark; WSO2's TOML parser reads on past
    it, and so does mtls (deployment.toml and the vault's view of [secrets])."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    home = mi_home(tmp_path, ca, "")
    toml = home / "conf" / "deployment.toml"
    toml.write_bytes(b"\xef\xbb\xbf" + (stock + '[secrets]\nk = "[v]"\n').encode())
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        assert ps.status().default is not None and ps.status().default.loaded
    assert SecureVault(home).aliases() == ("k",)
    # Twin: the same character anywhere else is not TOML: an error naming the file.
    toml.write_bytes(stock.replace("[truststore]", "\ufeff[truststore]").encode())
    with pytest.raises(mtls.ProfileConfigError, match="not valid TOML") as e:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert e.value.path == str(toml)


def test_an_interval_of_zero_says_that_nothing_reloads(tmp_path, ca, caplog) -> None:
    """WSO2 re-reads every minute for an interval of 0 or below; mtls runs no reload
    thread for it, and says so. Twin: a positive interval reloads, with no warning."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    for interval, reloads in (("0", False), ("-5", False), ("60000", True)):
        home = mi_home(tmp_path / interval, ca, stock + "\n")
        toml = home / "conf" / "deployment.toml"
        (home / "conf" / "profiles.xml").write_text(
            '<parameter name="customSSLProfiles"><profile><servers>a.example:443</servers>'
            "</profile></parameter>"
        )
        text = stock.replace(
            "[keystore.primary]",
            "[transport.http]\n"
            'sender.ssl_profile.file_path = "conf/profiles.xml"\n'
            f"sender.ssl_profile.read_interval = {interval}\n\n[keystore.primary]",
        )
        toml.write_text(text)
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="mtls"),
            mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home) as profiles,
        ):
            assert profiles.reloading is reloads, interval
        warned = f"SSL profile interval {interval} ms: no reload thread" in caplog.text
        assert warned is not reloads, interval


CUSTOM_TABLES = """
[[keystore.ssl_profile.custom]]
servers = "orders.internal:8243"
[keystore.ssl_profile.custom.keystore]
location = "repository/resources/security/wso2carbon.jks"
type = "JKS"
password = "wso2carbon"
key_password = "wso2carbon"
[keystore.ssl_profile.custom.truststore]
location = "repository/resources/security/client-truststore.jks"
type = "JKS"
password = "wso2carbon"
"""


def apim_home(root: Path, ca: CA, servers: list[str], toml: str) -> Path:
    """An API Manager home: its sslprofiles.xml with a profile per ``servers`` entry."""
    home = root / "apim"
    security = home / "repository" / "resources" / "security"
    security.mkdir(parents=True)
    (home / "repository" / "conf").mkdir()
    ca.issue_cert("gateway").write_keystore(
        security / "wso2carbon.jks", SHIPPED_PASSWORD, alias="wso2carbon"
    )
    ca.write_truststore(security / "client-truststore.jks", SHIPPED_PASSWORD)
    store = (
        "<KeyStore><Location>repository/resources/security/wso2carbon.jks</Location>"
        "<Type>JKS</Type><Password>wso2carbon</Password><KeyPassword>wso2carbon</KeyPassword>"
        "</KeyStore>"
    )
    (security / "sslprofiles.xml").write_text(
        '<parameter name="customSSLProfiles">'
        + "".join(f"<profile><servers>{s}</servers>{store}</profile>" for s in servers)
        + "</parameter>"
    )
    (home / "repository" / "conf" / "deployment.toml").write_text(toml)
    return home


def test_custom_ssl_profile_tables_missing_from_the_file_are_named(tmp_path, ca, caplog) -> None:
    """API Manager's docs put custom profiles in [[keystore.ssl_profile.custom]]; the
    product writes them into sslprofiles.xml when it starts. A file that does not have
    them yet (never started since) is what mtls and the running product read: said."""
    toml = (
        '[keystore.tls]\nfile_name = "wso2carbon.jks"\npassword = "wso2carbon"\n'
        'key_password = "wso2carbon"\n' + CUSTOM_TABLES
    )
    home = apim_home(tmp_path, ca, ["*"], toml)
    path = home / "repository" / "conf" / "deployment.toml"
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None) as ps,
    ):
        assert [p.servers for p in ps.status().profiles] == [("*",)]
    assert "'orders.internal:8243' not in" in caplog.text
    assert "sslprofiles.xml" in caplog.text and "restart API Manager" in caplog.text
    assert SHIPPED_PASSWORD not in caplog.text.replace("wso2carbon.jks", "")
    # Twin: the file as API Manager writes it (default profile, then the custom one).
    written = apim_home(tmp_path / "written", ca, ["*", "orders.internal:8243"], toml)
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(
            written / "repository" / "conf" / "deployment.toml",
            base_dir=written,
            reload_interval=None,
        ),
    ):
        pass
    assert "keystore.ssl_profile.custom" not in caplog.text
    # Twin: the sender reads another file, so WSO2 does not use those tables either.
    other = apim_home(tmp_path / "other", ca, ["*"], "")
    (other / "profiles.xml").write_text(
        (other / "repository" / "resources" / "security" / "sslprofiles.xml").read_text()
    )
    (other / "repository" / "conf" / "deployment.toml").write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "profiles.xml"\n' + toml
    )
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(
            other / "repository" / "conf" / "deployment.toml", base_dir=other, reload_interval=None
        ),
    ):
        pass
    assert "keystore.ssl_profile.custom" not in caplog.text


def test_an_entry_written_from_custom_tables_is_fixed_in_deployment_toml(
    tmp_path, ca, caplog
) -> None:
    """The docs' [[keystore.ssl_profile.custom]] example has servers = "foo.com", no
    port; API Manager writes it into sslprofiles.xml at start-up. The refusal told the
    user to fix the XML, which the next start writes over: it now names the tables."""
    toml = (
        '[keystore.tls]\nfile_name = "wso2carbon.jks"\npassword = "wso2carbon"\n'
        'key_password = "wso2carbon"\n' + CUSTOM_TABLES.replace("orders.internal:8243", "foo.com")
    )
    home = apim_home(tmp_path, ca, ["*", "foo.com"], toml)
    path = home / "repository" / "conf" / "deployment.toml"
    with pytest.raises(mtls.ProfileConfigError, match=r"'foo\.com' has no port") as e:
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None)
    assert "[[keystore.ssl_profile.custom]] tables of" in str(e.value)
    assert str(path) in str(e.value) and e.value.servers == ("foo.com",)
    # With skip_failures the entry is left out, the rest loads, and the fix is still
    # said to be in the tables, not the XML; it is not "missing" from the file (a
    # review found "restart API Manager" said of an entry the file holds).
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(
            path, base_dir=home, reload_interval=None, skip_failures=True
        ) as profiles,
    ):
        assert [p.servers for p in profiles.status().profiles] == [("*",)]
    said = [r.getMessage() for r in caplog.records]
    assert any("servers 'foo.com' have no port: fix servers there" in m for m in said), said
    assert not any("not in" in m and "restart API Manager" in m for m in said), said
    caplog.clear()
    # Twin: an entry the tables do not name is the XML's own, to be fixed there.
    other = apim_home(tmp_path / "other", ca, ["*", "bar.com"], toml)
    with pytest.raises(mtls.ProfileConfigError, match=r"'bar\.com' has no port") as e:
        mtls.SSLProfileSet.from_deployment_toml(
            other / "repository" / "conf" / "deployment.toml", base_dir=other, reload_interval=None
        )
    assert "keystore.ssl_profile.custom" not in str(e.value)

    # Twin: an entry the tables name, refused for its store (an unset placeholder), is
    # not about servers: the advice stays the store's.
    toml_ok = toml.replace('servers = "foo.com"', 'servers = "foo.com:443"')
    placeholder = apim_home(tmp_path / "store", ca, ["*"], toml_ok)
    xml = placeholder / "repository" / "resources" / "security" / "sslprofiles.xml"
    xml.write_text(
        xml.read_text().replace(
            "</parameter>",
            "<profile><servers>foo.com:443</servers><KeyStore><Location>"
            "$env{MTLS_UNSET_STOCK_X}/x.jks</Location><Password>p</Password>"
            "</KeyStore></profile></parameter>",
        )
    )
    with pytest.raises(mtls.ProfileConfigError, match="MTLS_UNSET_STOCK_X") as e:
        mtls.SSLProfileSet.from_deployment_toml(
            placeholder / "repository" / "conf" / "deployment.toml",
            base_dir=placeholder,
            reload_interval=None,
        )
    assert "fix servers there" not in str(e.value)


def test_the_default_keystores_key_password_is_asked_for_where_it_is_set(tmp_path, ca) -> None:
    """[keystore.tls] without key_password, for a JKS whose key has its own: the
    advice named a profile's <KeyPassword>, which the default profile does not have."""
    home = apim_home(tmp_path, ca, ["*"], STOCK_TLS)
    ca.issue_cert("gateway").write_keystore(
        home / "repository" / "resources" / "security" / "wso2carbon.jks",
        SHIPPED_PASSWORD,
        alias="wso2carbon",
        key_password="another-key-password",
    )
    (home / "repository" / "resources" / "security" / "sslprofiles.xml").write_text(
        '<parameter name="customSSLProfiles"><profile><servers>a.test:443</servers>'
        "</profile></parameter>"
    )
    with pytest.raises(mtls.WrongPasswordError, match="the default profile") as e:
        mtls.SSLProfileSet.from_deployment_toml(
            home / "repository" / "conf" / "deployment.toml", base_dir=home, reload_interval=None
        )
    assert "key_password in deployment.toml's [keystore.tls]" in str(e.value)
    assert "<KeyPassword>" not in str(e.value)


STOCK_TLS = '[keystore.tls]\nfile_name = "wso2carbon.jks"\npassword = "wso2carbon"\n'


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        (STOCK_TLS.replace('"wso2carbon.jks"', '["wso2carbon.jks"]'), "[keystore.tls] file_name"),
        (STOCK_TLS.replace('"wso2carbon.jks"', "{ a = 1 }"), "[keystore.tls] file_name"),
        (STOCK_TLS.replace('password = "wso2carbon"', 'password = ["wso2carbon"]'),
         "[keystore.tls] password"),
        (STOCK_TLS + "[transport.passthru_https.sender.ssl_profile]\ninterval = [600000]\n",
         "[transport.passthru_https.sender.ssl_profile] interval"),
        (STOCK_TLS + "[transport.passthru_https.sender.cert_revocation_validation]\n"
         "enable = [true]\n", "[transport.passthru_https.sender.cert_revocation_validation] enable"),
    ],
)  # fmt: skip
def test_an_array_or_table_where_one_value_belongs_is_refused(tmp_path, ca, toml, setting) -> None:
    """WSO2's templates would write the array or table out as text (a path or password
    nobody meant); mtls names the setting instead of reading past it (an array password
    used to leave the store opened with no password at all)."""
    home = apim_home(tmp_path, ca, ["*"], toml)
    path = home / "repository" / "conf" / "deployment.toml"
    with pytest.raises(mtls.ProfileConfigError) as e:
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None)
    assert str(path) in str(e.value) and setting in str(e.value)
    assert "not one value" in str(e.value) and SHIPPED_PASSWORD not in str(e.value).replace(
        "wso2carbon.jks", ""
    )


@pytest.mark.parametrize(
    ("toml", "table"),
    [
        (STOCK_TLS.replace("[keystore.tls]", "[[keystore.tls]]"), "[keystore.tls] is an array"),
        ('[keystore]\ntls = "wso2carbon.jks"\n', "[keystore.tls] is one value"),
        (STOCK_TLS + '[transport.passthru_https.sender]\nssl_profile = "p.xml"\n',
         "[transport.passthru_https.sender.ssl_profile] is one value"),
    ],
    ids=["array-of-tables", "value-for-table", "value-for-profile-table"],
)  # fmt: skip
def test_a_table_written_in_another_shape_is_refused(tmp_path, ca, toml, table) -> None:
    """A table written as an array of tables, or as one value: its keys were not found,
    and the gateway's identity (or its profile file) vanished without a word, where a
    value written as a table was refused. Refused too, naming the table."""
    home = apim_home(tmp_path, ca, ["*"], toml)
    path = home / "repository" / "conf" / "deployment.toml"
    with pytest.raises(mtls.ProfileConfigError, match=re.escape(table)) as e:
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None)
    assert e.value.path == str(path) and "where a table belongs" in str(e.value)


@pytest.mark.parametrize("written", ['"600_000"', '"\u0661\u0662\u0663"'])
def test_an_interval_java_cannot_read_is_refused(tmp_path, ca, written) -> None:
    """Python's int() takes "600_000" and other scripts' digits; Java's parseLong does
    not. The twin: "600000" as text loads."""
    for value, loads in ((written, False), ('"600000"', True)):
        toml = STOCK_TLS + f"[transport.passthru_https.sender.ssl_profile]\ninterval = {value}\n"
        home = apim_home(tmp_path / str(loads), ca, ["*"], toml)
        path = home / "repository" / "conf" / "deployment.toml"
        if loads:
            mtls.SSLProfileSet.from_deployment_toml(
                path, base_dir=home, reload_interval=None
            ).close()
            continue
        with pytest.raises(mtls.ProfileConfigError, match="interval"):
            mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None)


def test_the_same_settings_as_single_values_load(tmp_path, ca) -> None:
    """Twin: each setting above written as one value (a boolean as TOML's true)."""
    toml = (
        STOCK_TLS + 'key_password = "wso2carbon"\n'
        "[transport.passthru_https.sender.ssl_profile]\ninterval = 600000\n"
    )
    home = apim_home(tmp_path, ca, ["*"], toml)
    path = home / "repository" / "conf" / "deployment.toml"
    with mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home) as profiles:
        assert profiles.status().default is not None and profiles.reloading
    # A boolean where a path belongs is shown as WSO2's templates write it: true.
    (home / "repository" / "conf" / "deployment.toml").write_text(toml + "file_path = true\n")
    with pytest.raises(mtls.ProfileConfigError, match=r"/true: no such profile file"):
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home)


def _load_stock_with(
    tmp_path: Path, ca: CA, caplog: pytest.LogCaptureFixture, setting: str
) -> tuple[Path, Path]:
    """Load an API Manager home whose deployment.toml is the stock TLS tables and
    ``setting``, with its warnings in ``caplog``: (home, deployment.toml)."""
    home = apim_home(tmp_path, ca, ["*"], STOCK_TLS + 'key_password = "wso2carbon"\n' + setting)
    path = home / "repository" / "conf" / "deployment.toml"
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None),
    ):
        pass
    return home, path


@pytest.mark.parametrize(
    "setting",
    [
        '[transport.passthru_https.sender.parameters]\nHttpsProtocols = "TLSv1.3"\n',
        '[transport.passthru_https.sender.parameters]\nPreferredCiphers = "TLS_AES_128_GCM_SHA256"\n',
        '[transport.http]\nsender.secured_protocols = "TLSv1.3"\n',
        '[transport.passthru_https.sender.parameters]\nSSLProtocol = "TLSv1.3"\n',
    ],
)
def test_sender_protocols_and_ciphers_are_named_as_not_applied(
    tmp_path, ca, caplog, setting
) -> None:
    """WSO2's sender applies these to every connection; a profile set does not, and says
    so rather than leaving a restriction silently unenforced."""
    home, path = _load_stock_with(tmp_path, ca, caplog, setting)
    key = setting.split("\n")[1].split(" =")[0]
    assert f"{key} not applied" in caplog.text and str(path) in caplog.text
    # Twin: the HostnameVerifier of the same table is applied, and not named.
    caplog.clear()
    (home / "repository" / "conf" / "deployment.toml").write_text(
        STOCK_TLS + 'key_password = "wso2carbon"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "AllowAll"\n'
    )
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(path, base_dir=home, reload_interval=None) as ps,
    ):
        assert ps.status().hostname_verifier == "AllowAll"
    assert "not applied" not in caplog.text


@pytest.mark.parametrize(
    ("enable", "warned"),
    [("false", "false"), ("true", None), ("[]", "[]"), ('"false"', None)],
)
def test_a_disabled_https_sender_is_named(tmp_path, ca, caplog, enable, warned) -> None:
    """axis2.xml.j2 renders the HTTPS sender, profiles and all, only when
    [transport.passthru_https.sender] enable is true (Jinja's truth): with false the
    gateway sends no HTTPS at all, and a profile set reading the file said nothing.
    Another falsy value is named as written, never refused. Twins: true, and "false"
    in quotes (a non-empty string, which Jinja takes as true)."""
    _load_stock_with(
        tmp_path, ca, caplog, f"[transport.passthru_https.sender]\nenable = {enable}\n"
    )
    said = "API Manager starts no HTTPS sender" in caplog.text
    assert said is (warned is not None)
    if warned is not None:
        assert f"enable = {warned}: API Manager" in caplog.text


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        ("false", "false"),
        ('"yes"', "'yes'"),
        ('"S3cret-x"', "a string"),
        ("true", None),
        ('"True"', None),
    ],
)
def test_a_micro_integrator_without_its_https_sender_is_named(
    tmp_path, ca, caplog, value, warned
) -> None:
    """Micro Integrator's axis2.xml.j2 renders the HTTPS sender (and its dynamic SSL
    profiles) only {% if transport.http.sender.secured_enable == true %}: with false
    it sends no HTTPS, and mtls said nothing (API Manager's equivalent was said; h186).
    Jinjava compares as EL does (a string beside a boolean through Boolean.valueOf):
    "yes" is off, "True" on. A text that is no such word is never shown. The twins:
    true, and "True"."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    home = mi_home(tmp_path, ca, f"{stock}\n[transport.http]\nsender.secured_enable = {value}\n")
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(
            home / "conf" / "deployment.toml", base_dir=home, reload_interval=None
        ) as ps,
    ):
        assert ps.context_for("backend.test", 443) is not None  # served as configured
    said = "Micro Integrator starts no HTTPS sender" in caplog.text
    assert said is (warned is not None), caplog.text
    if warned is not None:
        assert f"sender.secured_enable = {warned}: Micro Integrator" in caplog.text
    assert "S3cret" not in caplog.text


def test_micro_integrator_hostname_verifier_in_its_internal_key(tmp_path, ca) -> None:
    """MI maps sender.hostname_verifier to [transport.https.sender.parameter]
    HostnameVerifier and renders every key of that table: both spellings apply."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    for extra in (
        '[transport.https.sender.parameter]\nHostnameVerifier = "AllowAll"\n',
        '[transport.http]\nsender.hostname_verifier = "AllowAll"\n',
    ):
        home = mi_home(tmp_path / str(len(extra)), ca, stock + "\n" + extra)
        with mtls.SSLProfileSet.from_deployment_toml(
            home / "conf" / "deployment.toml", base_dir=home, reload_interval=None
        ) as profiles:
            assert profiles.status().hostname_verifier == "AllowAll", extra
    # Twin: a table of another transport's parameters is not the sender's.
    home = mi_home(
        tmp_path / "other",
        ca,
        stock + '\n[transport.http.listener.parameter]\nHostnameVerifier = "AllowAll"\n',
    )
    with mtls.SSLProfileSet.from_deployment_toml(
        home / "conf" / "deployment.toml", base_dir=home, reload_interval=None
    ) as profiles:
        assert profiles.status().hostname_verifier == "Strict"


def test_a_file_without_a_truststore_table_trusts_the_truststore_the_product_ships(
    tmp_path, ca, caplog
) -> None:
    """WSO2 falls back to the client-truststore.jks it ships when deployment.toml has no
    [truststore] (72 of 74 API Manager files have none): so does mtls, with the shipped
    password. It trusted the system's CAs, which let every public CA back in for an
    estate that pruned that truststore. Here the stock file without its [truststore]
    table: the backend (its CA in the shipped truststore) is reached, and a backend
    whose CA the shipped truststore lacks is refused."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    start = stock.index("[truststore]")
    end = stock.index("\n\n", start)
    without = stock[:start] + stock[end:]
    assert "[truststore]" not in without
    home = mi_home(tmp_path, ca, without)
    toml = home / "conf" / "deployment.toml"
    other = CA(name="not-in-the-shipped-truststore")
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server,
        MTLSServer(other.issue_cert("localhost"), client_ca=ca) as stranger,
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps,
    ):
        assert "no sender truststore" not in caplog.text
        ctx = ps.context_for("localhost", server.port)
        assert ctx is not None and whoami(ctx, server.port)["client_cn"] == "gateway"
        stranger_ctx = ps.context_for("localhost", stranger.port)
        assert stranger_ctx is not None
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(stranger_ctx, stranger.port)
    # Twin: the shipped file is not there (base_dir is not the product home): the
    # system's CAs, said in a warning that names the file and the folder looked in.
    caplog.clear()
    (home / "repository" / "resources" / "security" / "client-truststore.jks").unlink()
    with (
        caplog.at_level(logging.WARNING, logger="mtls"),
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None),
    ):
        warned = [
            r.getMessage() for r in caplog.records if "no sender truststore" in r.getMessage()
        ]
        assert len(warned) == 1 and str(toml) in warned[0]
        assert "client-truststore.jks" in warned[0] and "system's CAs" in warned[0]
        assert str(home / "repository" / "resources" / "security") in warned[0]


def test_the_shipped_truststore_takes_the_truststore_tables_password(tmp_path, ca) -> None:
    """A [truststore] table with a password and no file_name: WSO2 opens its default
    file with that password, and so does mtls."""
    stock = (DATA / "mi-deployment-stock.toml").read_text()
    line = 'file_name = "repository/resources/security/client-truststore.jks"\n'
    assert line in stock
    home = mi_home(tmp_path, ca, stock.replace(line, ""))
    shipped = home / "repository" / "resources" / "security" / "client-truststore.jks"
    ca.write_truststore(shipped, "Other-Pw-2026")
    toml = home / "conf" / "deployment.toml"
    with pytest.raises(mtls.WrongPasswordError) as e:  # the table's stock password
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "client-truststore.jks" in str(e.value)
    text = toml.read_text()
    at = text.index("[truststore]")
    toml.write_text(text[:at] + text[at:].replace(f'"{SHIPPED_PASSWORD}"', '"Other-Pw-2026"', 1))
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded


def test_two_shipped_truststores_are_told_apart_by_type_or_refused(tmp_path, ca) -> None:
    """carbon-kernel 4.11 ships client-truststore.jks, 4.12 client-truststore.p12: with
    both there and no [truststore] file_name, which one the product reads depends on a
    version mtls cannot see: refused, naming both, not guessed; [truststore] type says
    which (each kernel's default.json pairs its file with its type)."""
    home = mi_home(tmp_path, ca, f'[truststore]\npassword = "{SHIPPED_PASSWORD}"\n')
    security = home / "repository" / "resources" / "security"
    ca.write_truststore(security / "client-truststore.p12", SHIPPED_PASSWORD, store_type="PKCS12")
    toml = home / "conf" / "deployment.toml"
    with pytest.raises(mtls.ProfileConfigError, match=r"client-truststore\.p12 exist") as e:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "[truststore] file_name" in str(e.value) and "its type" in str(e.value)
    for declared, suffix in (("JKS", ".jks"), ("PKCS12", ".p12")):
        toml.write_text(f'[truststore]\ntype = "{declared}"\npassword = "{SHIPPED_PASSWORD}"\n')
        with mtls.SSLProfileSet.from_deployment_toml(
            toml, base_dir=home, reload_interval=None
        ) as ps:
            default = ps.status().default
            assert default is not None and default.loaded
            assert [f.path for f in default.files if f.role == "truststore"] == [
                str(security / f"client-truststore{suffix}")
            ]


MI_DEFAULTS = {  # micro-integrator's distribution/src/resources/config-tool/default.json
    "keystore.primary.file_name": "repository/resources/security/wso2carbon.jks",
    "keystore.primary.type": "JKS",
    "keystore.primary.password": "wso2carbon",
    "keystore.primary.alias": "wso2carbon",
    "keystore.primary.key_password": "wso2carbon",
    "truststore.file_name": "repository/resources/security/client-truststore.jks",
    "truststore.type": "JKS",
    "truststore.password": "wso2carbon",
}


def test_what_keystore_primary_leaves_out_comes_from_default_json(tmp_path, ca) -> None:
    """WSO2's config mapper fills a key the file leaves out from the product's
    default.json: Micro Integrator's gives [keystore.primary] key_password
    "wso2carbon" whatever the table's password is. mtls took the store password as
    the key password (a file whose key Micro Integrator cannot open was "ok"), and
    refused a table without a password that Micro Integrator opens."""
    security_file = 'file_name = "repository/resources/security/gw.jks"\n'
    home = mi_home(tmp_path, ca, f'[keystore.primary]\n{security_file}password = "newpw-2026"\n')
    conf = home / "repository" / "resources" / "conf"
    conf.mkdir(parents=True)
    (conf / "default.json").write_text(json.dumps(MI_DEFAULTS))
    security = home / "repository" / "resources" / "security"
    gateway = ca.issue_cert("gateway")
    toml = home / "conf" / "deployment.toml"
    # Key password = store password, as keytool makes it: Micro Integrator tries
    # "wso2carbon" for the key, and so does mtls now.
    gateway.write_keystore(security / "gw.jks", "newpw-2026", alias="gw")
    with pytest.raises(mtls.WrongPasswordError) as e:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "default.json" in str(e.value) and "key_password" in str(e.value)
    assert "newpw-2026" not in str(e.value)
    # The twin: a key under the product's default key password opens, as in WSO2.
    gateway.write_keystore(security / "gw.jks", "newpw-2026", alias="gw", key_password="wso2carbon")
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded
    # No password at all: the product's default one, for the store and its key.
    toml.write_text(f"[keystore.primary]\n{security_file}")
    gateway.write_keystore(security / "gw.jks", "wso2carbon", alias="gw")
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded
    # Without default.json nothing is filled in: the store password serves the key.
    (conf / "default.json").unlink()
    toml.write_text(f'[keystore.primary]\n{security_file}password = "newpw-2026"\n')
    gateway.write_keystore(security / "gw.jks", "newpw-2026", alias="gw")
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded


def test_the_products_default_json_names_the_shipped_truststore(tmp_path, ca) -> None:
    """A product home has the config mapper's defaults in
    repository/resources/conf/default.json: its truststore.file_name, type and password
    are what WSO2 falls back to, so they decide, even with both shipped files there (a
    product that copies a .jks of its own onto a kernel that ships a .p12). A file it
    names that is not there fails as WSO2's start would, never the system's CAs."""
    home = mi_home(tmp_path, ca, '[server]\nhostname = "localhost"\n')
    security = home / "repository" / "resources" / "security"
    ca.write_truststore(security / "client-truststore.p12", "p12-pass", store_type="PKCS12")
    conf = home / "repository" / "resources" / "conf"
    conf.mkdir(parents=True)
    defaults = {
        "truststore.file_name": "client-truststore.p12",
        "truststore.type": "PKCS12",
        "truststore.password": "p12-pass",
        "keystore.primary.file_name": "wso2carbon.p12",
    }
    (conf / "default.json").write_text(json.dumps(defaults))
    toml = home / "conf" / "deployment.toml"
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded
        assert [f.path for f in default.files if f.role == "truststore"] == [
            str(security / "client-truststore.p12")
        ]
    (conf / "default.json").write_text(json.dumps({**defaults, "truststore.file_name": "gone.p12"}))
    with pytest.raises(mtls.KeystoreNotFoundError, match=r"gone\.p12"):
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    # Micro Integrator's default.json names the file from the home (its folders
    # included), which it decides with too.
    ca.write_truststore(security / "client-truststore.jks", "jks-pass")
    mi_defaults = {
        "truststore.file_name": "repository/resources/security/client-truststore.jks",
        "truststore.type": "JKS",
        "truststore.password": "jks-pass",
    }
    (conf / "default.json").write_text(json.dumps(mi_defaults))
    with mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        default = ps.status().default
        assert default is not None and default.loaded
        assert [f.path for f in default.files if f.role == "truststore"] == [
            str(security / "client-truststore.jks")
        ]
    # The twin: without default.json, the two shipped files are refused as ambiguous.
    (conf / "default.json").unlink()
    with pytest.raises(mtls.ProfileConfigError, match=r"client-truststore\.p12 exist"):
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
