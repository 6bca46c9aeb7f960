"""WSO2's files as estates have them: deployment.toml as each product writes it, its
placeholders, values from the environment never shown, and hostile profile files."""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls import KeystoreError, ProfileConfigError, SSLProfileSet
from mtls._deployment import (
    DeploymentToml,
    Product,
    detect_product,
    read_deployment_toml,
    resolve_security_file,
)
from mtls._wso2 import parse_profiles_xml
from mtls.cli import main
from mtls.testing import CA, MTLSServer
from tests._helpers import PASSWORD, profile, profile_xml, whoami, write_identity, write_trust

SECURITY = Path("repository", "resources", "security")

# API Manager's [keystore.tls] as the product ships it in repository/conf/deployment.toml
# (wso2/product-apim all-in-one-apim/modules/distribution/product/src/main/conf).
APIM_STOCK_TLS = """[keystore.tls]
file_name =  "wso2carbon.jks"
type =  "JKS"
password =  "wso2carbon"
alias =  "wso2carbon"
key_password =  "wso2carbon"
"""
# Micro Integrator's, as it ships (wso2/micro-integrator distribution/src/conf).
MI_STOCK_STORES = """[keystore.primary]
file_name = "repository/resources/security/wso2carbon.jks"
password = "wso2carbon"
alias = "wso2carbon"
key_password = "wso2carbon"

[truststore]
file_name = "repository/resources/security/client-truststore.jks"
password = "wso2carbon"
alias = "symmetric.key.value"
algorithm = "AES"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("pki")
    ca = CA(name="backend CA")
    backend = ca.issue_cert("localhost", "127.0.0.1", common_name="backend")
    gateway = ca.issue_cert("gateway", common_name="gateway")
    return {
        "ca": ca,
        "backend": backend,
        "gw": write_identity(gateway, d / "gw.jks"),
        "trust": write_trust(ca, d / "trust.jks"),
    }


@pytest.fixture(scope="module")
def backend(pki: dict[str, object]) -> Iterator[MTLSServer]:
    with MTLSServer(pki["backend"], client_ca=pki["ca"]) as server:  # type: ignore[arg-type]
        yield server


def home_with(tmp_path: Path, files: dict[str, Path], under: Path = SECURITY) -> Path:
    """A product home whose ``under`` folder holds symlinks to ``files`` (name -> target)."""
    home = tmp_path / "home"
    (home / under).mkdir(parents=True, exist_ok=True)
    (home / "repository" / "conf").mkdir(parents=True, exist_ok=True)
    for name, target in files.items():
        os.symlink(target, home / under / name)
    return home


def client_cn(profiles: SSLProfileSet, port: int) -> str:
    """The client certificate a localhost backend saw through the profile set's context."""
    ctx = profiles.context_for("localhost", port)
    assert ctx is not None
    return str(whoami(ctx, port)["client_cn"])


def write_toml(home: Path, text: str) -> Path:
    path = home / "repository" / "conf" / "deployment.toml"
    path.write_text(text)
    return path


APIM_SENDER = f"""[transport.passthru_https.sender.parameters]
HostnameVerifier = "DefaultAndLocalhost"

[keystore.tls]
file_name = "gateway.jks"
password = "{PASSWORD}"
key_password = "{PASSWORD}"

[truststore]
file_name = "client-truststore.jks"
password = "{PASSWORD}"
"""


# --------------------------------------------------------------------------- where files are


def test_api_manager_file_names_are_looked_up_in_the_security_folder(tmp_path, pki, backend):
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    # No ssl_profile table: API Manager's default file, repository/resources/security/.
    toml = write_toml(home, APIM_SENDER)
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert client_cn(profiles, backend.port) == "gateway"  # no profile: the sender's default
    files = {f["role"]: f["path"] for f in profiles.status().to_dict()["default"]["files"]}
    assert files["keystore"] == str(home / SECURITY / "gateway.jks")


def test_a_bare_name_is_not_looked_up_beside_the_home(tmp_path, pki):
    """The negative twin: the stores in the home itself are not where API Manager looks,
    and the message names the TOML setting and the rule, not <Location>."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"]}, under=Path("."))
    (home / "p.xml").write_text(profile_xml(profile("only.test:443", None, pki["trust"])))
    toml = write_toml(
        home, '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n' + APIM_SENDER
    )
    with pytest.raises(KeystoreError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    message = str(info.value)
    assert str(home / SECURITY / "gateway.jks") in message
    assert "[keystore.tls] file_name" in message and str(toml) in message
    assert "repository/resources/security/" in message
    assert "<Location>" not in message
    assert PASSWORD not in message


def mi_gateway_home(tmp_path: Path, pki: dict[str, object], profiles: str) -> tuple[Path, str]:
    """A Micro Integrator home with the gateway's stores, a one-profile file
    conf/``profiles``, and the stock store tables naming those stores (to add to)."""
    home = home_with(tmp_path, {"wso2carbon.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / "conf").mkdir()
    (home / "conf" / profiles).write_text(profile_xml(profile("only.test:443")))
    stores = MI_STOCK_STORES.replace('alias = "wso2carbon"', 'alias = "gateway"')
    return home, stores.replace('"wso2carbon"', f'"{PASSWORD}"')


def test_micro_integrator_file_names_start_from_the_home(tmp_path, pki, backend):
    home, stores = mi_gateway_home(tmp_path, pki, "sender.xml")
    toml = write_toml(
        home,
        stores + '[transport.http]\nsender.ssl_profile.file_path = "conf/sender.xml"\n'
        'sender.hostname_verifier = "DefaultAndLocalhost"\n',
    )
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.product == "mi"
    assert settings.keystore is not None
    assert settings.keystore.location == home / SECURITY / "wso2carbon.jks"
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert client_cn(profiles, backend.port) == "gateway"
    # The same file read with API Manager's rule looks one security folder too deep,
    # and the message says to write the bare name.
    with pytest.raises(KeystoreError, match=r"security/repository/resources/security.*bare name"):
        SSLProfileSet.from_deployment_toml(
            toml, base_dir=home, reload_interval=None, product="apim"
        )


def test_the_product_is_detected_from_its_tables():
    assert detect_product({"keystore": {"tls": {"file_name": "a.jks"}}}) == "apim"
    assert detect_product({"transport": {"passthru_https": {}}}) == "apim"
    assert detect_product({"transport": {"http": {"sender": {}}}}) == "mi"
    assert detect_product({"keystore": {"primary": {"file_name": "repository/x/a.jks"}}}) == "mi"
    assert detect_product({"keystore": {"primary": {"file_name": "a.jks"}}}) == "apim"
    assert detect_product({"keystore": {"primary": {"file_name": "/abs/a.jks"}}}) == "apim"


def test_the_product_is_told_by_where_the_file_sits_when_its_tables_do_not_say(tmp_path):
    """Micro Integrator keeps deployment.toml in conf/, API Manager in repository/conf/:
    that decides for a file without tables only one product reads (a test server's
    [server] and [user_store] only) and without store paths."""
    plain = {"server": {"hostname": "localhost"}}
    mi_home, apim_home = tmp_path / "mi", tmp_path / "am"
    (mi_home / "repository").mkdir(parents=True)
    assert detect_product(plain, mi_home / "conf" / "deployment.toml") == "mi"
    # Any other conf/ says nothing (/etc/conf/deployment.toml, a repository checkout).
    assert detect_product(plain, tmp_path / "etc" / "conf" / "deployment.toml") == "apim"
    assert detect_product(plain, apim_home / "repository" / "conf" / "deployment.toml") == "apim"
    assert detect_product(plain, tmp_path / "deployment.toml") == "apim"  # no hint: API Manager
    assert detect_product(plain) == "apim"
    # A product's table beats the location, and so does a store path.
    assert detect_product({"apim": {}}, mi_home / "conf" / "deployment.toml") == "apim"
    tls = {"keystore": {"tls": {"file_name": "a.jks"}}}
    assert detect_product(tls, mi_home / "conf" / "deployment.toml") == "apim"
    mi_stores = {"keystore": {"primary": {"file_name": "repository/x/a.jks"}}}
    assert detect_product(mi_stores, apim_home / "repository" / "conf" / "x.toml") == "mi"


def test_micro_integrators_sender_password_is_named_as_its_docs_write_it(tmp_path, pki):
    """A wrong [transport.http] sender.keystore.password was named
    "[transport.http.sender.keystore] password", the location beside it
    "[transport.http] sender.keystore.location": both as Micro Integrator's docs
    write them now."""
    home = home_with(tmp_path, {"wso2carbon.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / "conf").mkdir()
    toml = write_toml(
        home,
        MI_STOCK_STORES.replace('"wso2carbon"', f'"{PASSWORD}"') + "[transport.http]\n"
        'sender.keystore.location = "repository/resources/security/wso2carbon.jks"\n'
        'sender.keystore.password = "not-the-Pa55"\n',
    )
    with pytest.raises(mtls.WrongPasswordError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "[transport.http] sender.keystore.password" in str(info.value)
    assert "[transport.http.sender.keystore]" not in str(info.value)
    assert "not-the-Pa55" not in str(info.value)


def test_a_file_with_both_products_tables_is_told_by_where_it_sits(tmp_path):
    """API Manager's sender tables copied into a Micro Integrator file: the tables of
    one product decided (API Manager), whatever the file's place; where it sits now
    decides, else API Manager."""
    both = {"transport": {"passthru_https": {}, "http": {"sender": {}}}}
    mi_home = tmp_path / "mi"
    (mi_home / "repository").mkdir(parents=True)
    assert detect_product(both, mi_home / "conf" / "deployment.toml") == "mi"
    assert detect_product(both, tmp_path / "am" / "repository" / "conf" / "x.toml") == "apim"
    assert detect_product(both, tmp_path / "deployment.toml") == "apim"
    # API Manager's sender table alone, copied from its docs into a Micro Integrator
    # file (the stock one has none of Micro Integrator's tables that say so): the
    # file's place, or its Micro Integrator store paths, say Micro Integrator.
    sender = {"transport": {"passthru_https": {}}}
    assert detect_product(sender, mi_home / "conf" / "deployment.toml") == "mi"
    mi_paths = {**sender, "keystore": {"primary": {"file_name": "repository/r/s/a.jks"}}}
    assert detect_product(mi_paths, tmp_path / "deployment.toml") == "mi"
    assert detect_product(sender, tmp_path / "deployment.toml") == "apim"  # nothing else
    # API Manager's own tables ([apim], [keystore.tls]) are never copied: they decide.
    assert detect_product({**sender, "apim": {}}, mi_home / "conf" / "deployment.toml") == "apim"


def test_micro_integrator_reads_none_of_api_managers_sender_keys(tmp_path, pki, backend, caplog):
    """Micro Integrator's axis2.xml template reads no [transport.passthru_https] table;
    mtls read API Manager's keys first whatever the product, so an AllowAll verifier
    (and a profile file) copied from API Manager's docs turned off the name check
    Micro Integrator does (fail-open). Now named in a warning, and not used; the twin:
    API Manager reads them."""
    home, stores = mi_gateway_home(tmp_path, pki, "am.xml")
    toml = write_toml(
        home,
        stores + '[transport.http]\nsender.hostname_verifier = "Strict"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "AllowAll"\n'
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "conf/am.xml"\n'
        "interval = 5000\n",
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        mi = read_deployment_toml(str(toml), base_dir=home, product="mi")
    assert (mi.hostname_verifier, mi.profiles_path, mi.interval_ms) == ("Strict", None, None)
    assert "[transport.passthru_https.sender.parameters] HostnameVerifier" in caplog.text
    assert "[transport.passthru_https.sender.ssl_profile] file_path" in caplog.text
    assert "Micro Integrator does not read" in caplog.text
    profiles = SSLProfileSet.from_deployment_toml(
        toml, base_dir=home, reload_interval=None, product="mi"
    )
    with profiles:
        # Strict: the default stores, and a name check, for every host.
        assert profiles.context_for("localhost", backend.port).check_hostname
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        am = read_deployment_toml(str(toml), base_dir=home, product="apim")
    assert (am.hostname_verifier, am.interval_ms) == ("AllowAll", 5000)
    assert am.profiles_path == home / "conf" / "am.xml"
    assert "Micro Integrator does not read" not in caplog.text


def test_the_command_line_can_say_which_product(tmp_path, pki, capsys):
    """A Micro Integrator file nothing identifies (a bare file_name, outside conf/) is read
    as API Manager's, which wants its default profile file; --product mi reads it as
    Micro Integrator does: no profile file, the store from the home."""
    home = tmp_path / "mi"
    home.mkdir()
    os.symlink(pki["gw"], home / "wso2carbon.jks")
    toml = home / "mi-deployment.toml"
    toml.write_text(f'[keystore.primary]\nfile_name = "wso2carbon.jks"\npassword = "{PASSWORD}"\n')
    args = ["check", "--deployment-toml", str(toml), "--base-dir", str(home)]
    assert main(args) == 1  # API Manager's rules: its default profile file, which is not here
    assert "API Manager" in capsys.readouterr().err
    assert main([*args, "--product", "mi"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and PASSWORD not in out


def test_check_reads_no_default_truststore_for_an_unverified_profile(tmp_path, pki, capsys):
    """A novalidatecert profile without a TrustStore reads none, in the set and in
    `mtls check` alike: check counted and judged the deployment.toml truststore's
    anchors for it, and carried a broken one's error on its row (h288)."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"]})
    broken = home / "repository" / "resources" / "security" / "client-truststore.jks"
    broken.write_bytes(b"not a truststore")
    xml = home / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile novalidatecert="true">'
        "<servers>legacy.test:8443</servers><KeyStore><Location>"
        f"{pki['gw']}</Location><Type>JKS</Type><Password>{PASSWORD}</Password>"
        f"<KeyPassword>{PASSWORD}</KeyPassword></KeyStore></profile></parameter>"
    )
    toml = write_toml(
        home,
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        f'[keystore.tls]\nfile_name = "gateway.jks"\npassword = "{PASSWORD}"\n'
        f'[truststore]\nfile_name = "client-truststore.jks"\npassword = "{PASSWORD}"\n',
    )
    code = main(["check", "--deployment-toml", str(toml), "--base-dir", str(home), "--json"])
    report = json.loads(capsys.readouterr().out)
    (row,) = [p for p in report["profiles"] if p["servers"] == ["legacy.test:8443"]]
    assert row["anchors"] is None and "client-truststore" not in json.dumps(row), row
    # The default profile verifies with that truststore, and fails on it (the twin).
    assert code == 1 and "client-truststore.jks" in json.dumps(report)


def test_resolve_security_file_rules():
    home = Path("/opt/wso2am")
    apim: Product = "apim"
    mi: Product = "mi"
    assert resolve_security_file("a.jks", key="file_name", home=home, product=apim) == Path(
        "/opt/wso2am/repository/resources/security/a.jks"
    )
    assert resolve_security_file("conf/a.jks", key="file_name", home=home, product=mi) == Path(
        "/opt/wso2am/conf/a.jks"
    )
    assert resolve_security_file("conf/a.jks", key="location", home=home, product=apim) == Path(
        "/opt/wso2am/conf/a.jks"
    )
    for product in (apim, mi):  # an absolute path means what it says
        assert resolve_security_file("/etc/a.jks", key="file_name", home=home, product=product) == (
            Path("/etc/a.jks")
        )


def test_the_senders_own_key_store_location_wins(tmp_path, pki):
    home = home_with(tmp_path, {})
    (home / "stores").mkdir()
    os.symlink(pki["gw"], home / "stores" / "sender.jks")
    toml = write_toml(
        home,
        APIM_SENDER + "[transport.passthru_https.sender.key_store]\n"
        'location = "stores/sender.jks"\n',
    )
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None
    assert settings.keystore.location == home / "stores" / "sender.jks"
    assert settings.keystore.password == mtls.Secret(PASSWORD)  # from [keystore.tls]


def test_keystore_tls_takes_each_missing_key_from_keystore_primary(tmp_path, pki):
    home = home_with(tmp_path, {"gateway.jks": pki["gw"]})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    text = (
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[keystore.tls]\nfile_name = "gateway.jks"\n'
        f'[keystore.primary]\nfile_name = "other.jks"\npassword = "{PASSWORD}"\n'
    )
    toml = write_toml(home, text)
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=gateway,")
    # Negative twin: no password in either table: the store does not open.
    write_toml(home, text.replace(f'password = "{PASSWORD}"\n', ""))
    with pytest.raises(KeystoreError):
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)


def _two_keys(pki: dict[str, object], path: Path) -> Path:
    """The gateway keystore with a second key entry, "other"."""
    store = mtls.Keystore.load(pki["gw"], PASSWORD)  # type: ignore[arg-type]
    other = pki["ca"].issue_cert("other", common_name="other")  # type: ignore[attr-defined]
    store.add_key("other", other.private_key, list(other.chain))
    store.save(path, PASSWORD)
    return path


def _tls_and_primary(tls_alias: str | None) -> str:
    """[keystore.tls] on gateway.jks, [keystore.primary] on another file with its alias."""
    alias = f'alias = "{tls_alias}"\n' if tls_alias else ""
    return (
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        f'[keystore.tls]\nfile_name = "gateway.jks"\npassword = "{PASSWORD}"\n{alias}'
        f'[keystore.primary]\nfile_name = "wso2carbon.jks"\npassword = "{PASSWORD}"\n'
        'alias = "wso2carbon"\n'
    )


def test_the_sender_identity_takes_no_alias_from_another_tables_file(tmp_path, pki):
    """[keystore.primary]'s alias names a key in its own file: it is not applied to the
    store [keystore.tls] names (WSO2's sender reads no alias at all)."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"]})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    toml = write_toml(home, _tls_and_primary(None))
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None and settings.keystore.alias is None
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=gateway,")


def test_an_alias_in_the_table_that_names_the_file_is_used_and_checked(tmp_path, pki):
    home = home_with(tmp_path, {"gateway.jks": _two_keys(pki, tmp_path / "two.jks")})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    toml = write_toml(home, _tls_and_primary("other"))
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=other,")
    # Negative twins: an alias that names no entry is refused, saying WSO2 reads none;
    # no alias on a store with two keys is refused, saying where to put one.
    write_toml(home, _tls_and_primary("wso2carbon"))
    with pytest.raises(mtls.KeyEntryError) as wrong:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "no key entry 'wso2carbon'" in str(wrong.value)
    assert "WSO2's sender reads no key alias" in str(wrong.value)
    write_toml(home, _tls_and_primary(None))
    with pytest.raises(mtls.KeyEntryError) as several:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert f"an alias beside [keystore.tls] file_name in {toml}" in str(several.value)
    assert PASSWORD not in str(wrong.value) + str(several.value)


def test_an_alias_from_a_placeholder_in_deployment_toml_is_named_as_written(
    tmp_path, pki, monkeypatch
):
    """It was called a <KeyAlias> the estate does not have, without the setting (h282)."""
    home = home_with(tmp_path, {"gateway.jks": _two_keys(pki, tmp_path / "two.jks")})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    monkeypatch.setenv("GW_ALIAS", "nosuch-hidden")
    toml = write_toml(home, _tls_and_primary("$env{GW_ALIAS}"))
    with pytest.raises(mtls.KeyEntryError) as wrong:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    message = str(wrong.value)
    assert f'alias = "$env{{GW_ALIAS}}" beside [keystore.tls] file_name in {toml}' in message
    assert "<KeyAlias>" not in message and "nosuch-hidden" not in message
    assert "key entries: 'gateway', 'other'" in message
    assert "WSO2's sender reads no key alias" in message
    monkeypatch.setenv("GW_ALIAS", "other")  # the positive twin
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=other,")


def test_a_keystore_tls_alias_names_a_key_in_the_file_it_takes_from_primary(tmp_path, pki):
    """[keystore.tls] sets only alias; its file comes from [keystore.primary] (each key
    falls back there): the alias names a key in that file and wins over primary's own
    (a review caught a first version of the fix ignoring it)."""
    home = home_with(tmp_path, {"gateway.jks": _two_keys(pki, tmp_path / "two.jks")})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    text = (
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[keystore.tls]\nalias = "other"\n'
        f'[keystore.primary]\nfile_name = "gateway.jks"\npassword = "{PASSWORD}"\n'
        'alias = "gateway"\n'
    )
    toml = write_toml(home, text)
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=other,")
    # The twin: without it, primary's alias (its own file) is used.
    write_toml(home, text.replace('[keystore.tls]\nalias = "other"\n', ""))
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=gateway,")


@pytest.mark.parametrize(
    ("wrong", "setting"),
    [
        (
            'file_name = "gateway.jks"\npassword',
            "[keystore.tls] password and [keystore.tls] key_password",
        ),
        ('[truststore]\nfile_name = "client-truststore.jks"\npassword', "[truststore] password"),
    ],
)
def test_a_wrong_password_names_the_toml_setting_to_fix(tmp_path, pki, wrong, setting):
    """Issue #12: the message names the file and the deployment.toml key the password
    came from (both keys for a keystore: either may be the wrong one)."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    text = APIM_SENDER.replace(f'{wrong} = "{PASSWORD}"', f'{wrong} = "not-the-password"')
    assert text != APIM_SENDER
    toml = write_toml(home, text)
    with pytest.raises(mtls.WrongPasswordError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    message = str(info.value)
    assert message.endswith(f"; set by {setting} in {toml}")
    assert "not-the-password" not in message
    # Negative twin: the right passwords load, and a profile file's store names no TOML key.
    write_toml(home, APIM_SENDER)
    SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None).close()


SPACED = " spaced pw "  # keytool takes it; a TOML string keeps it exactly


def test_a_password_keeps_its_leading_and_trailing_spaces(tmp_path, pki):
    """WSO2's template writes a quoted TOML password out as it is: spaces are part of it."""
    ca: CA = pki["ca"]  # type: ignore[assignment]
    spaced = ca.issue_cert("spaced", common_name="spaced").write_keystore(
        tmp_path / "spaced.jks", SPACED
    )
    home = home_with(tmp_path, {"gateway.jks": spaced, "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    text = APIM_SENDER.replace(
        f'file_name = "gateway.jks"\npassword = "{PASSWORD}"\nkey_password = "{PASSWORD}"',
        f'file_name = "gateway.jks"\npassword = "{SPACED}"\nkey_password = "{SPACED}"',
    )
    assert text != APIM_SENDER
    toml = write_toml(home, text)
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None and settings.keystore.password == mtls.Secret(SPACED)
    with SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        assert ps.status().to_dict()["default"]["subject"].startswith("CN=spaced,")
    # Through $ref{}, as API Manager's own templates write the sender's passwords.
    write_toml(
        home,
        text + "[transport.passthru_https.sender.key_store]\n"
        'password = "$ref{keystore.tls.password}"\n'
        'key_password = "$ref{keystore.tls.key_password}"\n',
    )
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None and settings.keystore.password == mtls.Secret(SPACED)
    write_toml(home, text)
    # Negative twin: the store's password without the spaces; the TOML's with them. The
    # message says the whitespace was kept (never what the password is).
    trimmed = ca.issue_cert("trimmed").write_keystore(tmp_path / "trimmed.jks", SPACED.strip())
    (home / SECURITY / "gateway.jks").unlink()
    os.symlink(trimmed, home / SECURITY / "gateway.jks")
    with pytest.raises(mtls.WrongPasswordError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "as written, with its leading or trailing whitespace" in str(info.value)
    assert SPACED.strip() not in str(info.value)


def test_api_manager_reads_transport_http_sender_store_keys_as_the_senders(tmp_path, pki):
    """key-mappings.json maps [transport.http] sender.keystore.{type,password,key_password}
    and sender.truststore.{type,password} onto the passthru sender's stores."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    wrong = APIM_SENDER.replace(f'"{PASSWORD}"', '"not-the-password"')
    mapped = (
        f'[transport.http]\nsender.keystore.password = "{PASSWORD}"\n'
        f'sender.keystore.key_password = "{PASSWORD}"\n'
        f'sender.truststore.password = "{PASSWORD}"\nsender.truststore.type = "JKS"\n'
        # Mapped too, but the template renders location only: not used.
        'sender.truststore.file_name = "elsewhere.jks"\n'
    )
    toml = write_toml(home, wrong + mapped)
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.truststore is not None and settings.keystore is not None
    assert settings.truststore.password == mtls.Secret(PASSWORD)
    assert settings.truststore.location == home / SECURITY / "client-truststore.jks"
    assert settings.keystore.key_password == mtls.Secret(PASSWORD)
    with SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as ps:
        assert ps.status().to_dict()["default"]["subject"].startswith("CN=gateway,")
    # The sender's own table wins over the mapped keys; without either, the store
    # tables' wrong passwords are used and refused.
    own = '[transport.passthru_https.sender.trust_store]\npassword = "not-the-password"\n'
    write_toml(home, wrong + mapped + own)
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.truststore is not None
    assert settings.truststore.password == mtls.Secret("not-the-password")
    write_toml(home, wrong)
    with pytest.raises(mtls.WrongPasswordError):
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)


def test_an_absolute_file_path_is_used_as_written(tmp_path, pki):
    xml = tmp_path / "elsewhere.xml"
    xml.write_text(profile_xml(profile("only.test:443", pki["gw"], pki["trust"])))
    home = home_with(tmp_path, {})
    toml = write_toml(home, f'[transport.passthru_https.sender.ssl_profile]\nfile_path = "{xml}"\n')
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert profiles.context_for("only.test", 443) is not None
    # Relative: from the home (negative twin: not found there, and the setting is named).
    write_toml(home, '[transport.passthru_https.sender.ssl_profile]\nfile_path = "elsewhere.xml"\n')
    with pytest.raises(ProfileConfigError, match=r"ssl_profile\] file_path in .*product home"):
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)


def test_an_absolute_store_file_name_is_said_for_api_manager(tmp_path, pki, caplog, capsys):
    """API Manager's templates write repository/resources/security/$ref{...file_name}:
    an absolute [truststore] file_name is never found by WSO2. mtls opens it as written,
    and said nothing: `mtls check` passed (h158). Twins: the bare name in the security
    folder, Micro Integrator's file (a path it opens as written), and a file whose
    product is only guessed, say nothing."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    sender = '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
    absolute = APIM_SENDER.replace('"client-truststore.jks"', f'"{pki["trust"]}"')
    said = "[truststore] file_name is an absolute path"
    for body, product, warned in (
        (absolute, "apim", True),
        (absolute, None, True),  # [keystore.tls]: API Manager's own table
        (APIM_SENDER, "apim", False),
        (absolute, "mi", False),
        # Neither product's own tables nor its place: read as API Manager's, but only
        # guessed (an MI file checked outside its home: MI opens the path as written).
        (absolute.replace("[keystore.tls]", "[keystore.primary]"), None, False),
    ):
        caplog.clear()
        toml = write_toml(home, sender + body)
        if "[keystore.tls]" not in body:
            toml = toml.rename(tmp_path / "deployment.toml")
        with caplog.at_level(logging.WARNING, logger="mtls"):
            SSLProfileSet.from_deployment_toml(
                toml, base_dir=home, reload_interval=None, product=product
            ).close()
        assert (said in caplog.text) is warned, (product, body)
        if warned:
            assert f"({pki['trust']})" in caplog.text and PASSWORD not in caplog.text
            args = ["check", "--deployment-toml", str(toml), "--base-dir", str(home)]
            assert main(args) == 1
            err = capsys.readouterr().err
            assert said in err
            # The summary names deployment.toml, where the fix goes (it named the
            # profile file alone; h158, h161).
            assert f"first: {toml}: {said}" in err, err


def test_the_default_profile_file_is_named_when_missing(tmp_path):
    home = home_with(tmp_path, {})
    toml = write_toml(home, "[server]\nhostname = 'localhost'\n")
    with pytest.raises(ProfileConfigError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "repository/resources/security/sslprofiles.xml" in str(info.value)
    assert "API Manager's default" in str(info.value)


# --------------------------------------------------------------------------- placeholders


def test_env_sys_and_ref_placeholders_resolve(tmp_path, pki, monkeypatch):
    home = home_with(tmp_path, {"gateway.jks": pki["gw"]})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    monkeypatch.setenv("MTLS_TEST_STORE", "gateway.jks")
    toml = write_toml(
        home,
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[keystore.primary]\npassword = "$sys{store.password}"\n'
        '[keystore.tls]\nfile_name = "$env{MTLS_TEST_STORE}"\n'
        'password = "$ref{keystore.primary.password}"\n',
    )
    profiles = SSLProfileSet.from_deployment_toml(
        toml, base_dir=home, reload_interval=None, properties={"store.password": PASSWORD}
    )
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=gateway,")


def test_an_unset_variable_is_an_error_naming_it_never_an_empty_password(tmp_path, monkeypatch):
    monkeypatch.delenv("MTLS_TEST_UNSET", raising=False)
    home = home_with(tmp_path, {})
    toml = write_toml(
        home, '[keystore.tls]\nfile_name = "a.jks"\npassword = "$env{MTLS_TEST_UNSET}"\n'
    )
    with pytest.raises(ProfileConfigError, match="MTLS_TEST_UNSET") as info:
        read_deployment_toml(str(toml), base_dir=home)
    assert "[keystore.tls] password" in str(info.value)
    monkeypatch.setenv("MTLS_TEST_UNSET", PASSWORD)  # the positive twin
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None and settings.keystore.password == mtls.Secret(PASSWORD)


def test_an_empty_system_property_is_not_set(tmp_path, monkeypatch):
    """WSO2's config mapper refuses an empty system property for $sys{} ("Error while
    retrieving ... system property"); mtls took it as an empty password. It counts as
    not set now: an error naming it (the twin: a non-empty one is read)."""
    monkeypatch.delenv("store.password", raising=False)
    home = home_with(tmp_path, {})
    toml = write_toml(
        home, '[keystore.tls]\nfile_name = "a.jks"\npassword = "$sys{store.password}"\n'
    )
    with pytest.raises(ProfileConfigError, match=r"store\.password"):
        read_deployment_toml(str(toml), base_dir=home, properties={"store.password": ""})
    settings = read_deployment_toml(
        str(toml), base_dir=home, properties={"store.password": PASSWORD}
    )
    assert settings.keystore is not None and settings.keystore.password == mtls.Secret(PASSWORD)


def test_references_to_missing_keys_and_circles_are_errors(tmp_path):
    home = home_with(tmp_path, {})
    toml = write_toml(home, '[keystore.tls]\nfile_name = "a.jks"\npassword = "$ref{x.y}"\n')
    with pytest.raises(ProfileConfigError, match=r"\$ref\{x.y\}.*sets no x.y"):
        read_deployment_toml(str(toml), base_dir=home)
    write_toml(
        home,
        '[keystore.tls]\nfile_name = "a.jks"\npassword = "$ref{keystore.primary.password}"\n'
        '[keystore.primary]\npassword = "$ref{keystore.tls.password}"\n',
    )
    with pytest.raises(ProfileConfigError, match="circle"):
        read_deployment_toml(str(toml), base_dir=home)


def _ref_ladder(levels: int, fan_out: int) -> str:
    """[x] k0 .. k<levels>: each key names the next ``fan_out`` times."""
    rungs = "".join(f'k{i} = "{f"$ref{{x.k{i + 1}}}" * fan_out}"\n' for i in range(levels))
    return (
        '[keystore.tls]\nfile_name = "a.jks"\npassword = "$ref{x.k0}"\n'
        f'[x]\n{rungs}k{levels} = "ab"\n'
    )


@pytest.mark.parametrize(
    ("levels", "fan_out", "refused"),
    [
        (40, 2, "nest deeper than 16 levels"),  # a 1.3 KB file made 2^41 characters
        (300, 1, "nest deeper than 16 levels"),  # a RecursionError escaped
        (9, 4, "longer than 65,536 characters"),
    ],
)
def test_ref_bombs_are_refused_not_expanded(tmp_path, levels, fan_out, refused):
    """$ref{} that each name the next twice doubled the value at every level: a 1 KB
    deployment.toml hung the loader (and `mtls check`) for minutes, and a chain of
    300 raised RecursionError (an adversarial review found both). Each setting is now
    resolved once per read, nesting and length are bounded, and both are errors."""
    home = home_with(tmp_path, {})
    toml = write_toml(home, _ref_ladder(levels, fan_out))
    with pytest.raises(ProfileConfigError, match=refused) as info:
        read_deployment_toml(str(toml), base_dir=home)
    assert "abab" not in str(info.value)
    # The twins: a short ladder resolves, named twice per level and all.
    write_toml(home, _ref_ladder(4, 2))
    settings = read_deployment_toml(str(toml), base_dir=home, require_profiles=False)
    assert settings.keystore is not None and settings.keystore.password is not None
    assert settings.keystore.password.reveal() == "ab" * 16


def test_carbon_home_is_the_base_dir(tmp_path, pki):
    xml = profile_xml(
        profile("only.test:443", Path("${carbon.home}/gw.jks"), Path("$sys{carbon.home}/t.jks"))
    )
    (tmp_path / "gw.jks").symlink_to(pki["gw"])
    (tmp_path / "t.jks").symlink_to(pki["trust"])
    (tmp_path / "p.xml").write_text(xml)
    profiles = SSLProfileSet.from_xml(tmp_path / "p.xml", base_dir=tmp_path)
    assert profiles.context_for("only.test", 443) is not None
    with pytest.raises(KeystoreError, match="no such keystore file"):  # another home: not there
        SSLProfileSet.from_xml(tmp_path / "p.xml", base_dir=tmp_path / "elsewhere")


# --------------------------------------------------------------------------- never shown


SECRET_DIR_NAME = "hidden-dir-Zq81"


def test_values_from_the_environment_are_never_shown(tmp_path, pki, backend, monkeypatch):
    """$env{} in <Location>, <KeyAlias> and <servers>: status(), errors, repr and logs
    show the placeholders as written, never the values."""
    secret_dir = tmp_path / SECRET_DIR_NAME
    secret_dir.mkdir()
    (secret_dir / "gw.jks").symlink_to(pki["gw"])
    monkeypatch.setenv("MTLS_TEST_DIR", str(secret_dir))
    monkeypatch.setenv("MTLS_TEST_ALIAS", "gateway")
    monkeypatch.setenv("MTLS_TEST_HOST", "localhost")
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile>'
        f"<servers>$env{{MTLS_TEST_HOST}}:{backend.port}</servers>"
        "<KeyStore><Location>$env{MTLS_TEST_DIR}/gw.jks</Location>"
        f"<Password>{PASSWORD}</Password><KeyAlias>$env{{MTLS_TEST_ALIAS}}</KeyAlias></KeyStore>"
        f"<TrustStore><Location>{pki['trust']}</Location><Password>{PASSWORD}</Password>"
        "</TrustStore></profile></parameter>"
    )
    profiles = SSLProfileSet.from_xml(xml)
    # The values are used...
    assert client_cn(profiles, backend.port) == "gateway"
    # ...and never shown.
    shown = json.dumps(profiles.status().to_dict()) + repr(profiles.profiles) + repr(profiles)
    assert "$env{MTLS_TEST_DIR}/gw.jks" in shown
    assert f"$env{{MTLS_TEST_HOST}}:{backend.port}" in shown
    for value in (SECRET_DIR_NAME, f"localhost:{backend.port}", "'gateway'"):
        assert value not in shown, value

    # Errors: a missing store, an alias that names nothing, servers that do not parse.
    monkeypatch.setenv("MTLS_TEST_DIR", str(tmp_path / (SECRET_DIR_NAME + "-gone")))
    with pytest.raises(KeystoreError) as missing:
        SSLProfileSet.from_xml(xml)
    assert "$env{MTLS_TEST_DIR}/gw.jks" in str(missing.value)
    assert SECRET_DIR_NAME not in str(missing.value)
    monkeypatch.setenv("MTLS_TEST_DIR", str(secret_dir))
    monkeypatch.setenv("MTLS_TEST_ALIAS", "no-such-alias-Zq81")
    with pytest.raises(KeystoreError) as no_alias:
        SSLProfileSet.from_xml(xml)
    assert "$env{MTLS_TEST_ALIAS}" in str(no_alias.value)
    assert "Zq81" not in str(no_alias.value)
    monkeypatch.setenv("MTLS_TEST_HOST", "bad-host-Zq81:oops")
    with pytest.raises(ProfileConfigError) as info:
        SSLProfileSet.from_xml(xml)
    assert "$env{MTLS_TEST_HOST}" in str(info.value)
    assert "Zq81" not in str(info.value)


def test_a_client_id_from_the_environment_is_never_shown(tmp_path, pki, monkeypatch, caplog):
    """<clientID>$env{...}</clientID>: its value was shown in errors, status(), the
    metrics' labels and repr, where <servers> beside it was not (h282)."""
    monkeypatch.setenv("MTLS_TEST_CID", "client-Zq81")
    keystore = (
        f"<KeyStore><Location>{pki['gw']}</Location><Password>{PASSWORD}</Password></KeyStore>"
        f"<TrustStore><Location>{pki['trust']}</Location><Password>{PASSWORD}</Password>"
        "</TrustStore>"
    )
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>only.test:443</servers>'
        f"<client><clientID>$env{{MTLS_TEST_CID}}</clientID>{keystore}</client>"
        f"<client><clientID>plain</clientID>{keystore}</client>"
        "</profile></parameter>"
    )
    from mtls._metrics import metrics

    with caplog.at_level(logging.DEBUG, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml, reload_interval=None)
        # The value is what requests are matched by...
        assert profiles.profile_for("only.test", 443, client_id="client-Zq81") is not None
        status = profiles.status()
        shown = json.dumps(status.to_dict()) + repr(profiles.profiles) + str(metrics(status, "s"))
        shown += str(profiles.profiles[0])
        # ...and the written form is what is shown; a client written plainly stays so.
        assert "$env{MTLS_TEST_CID}" in shown and "plain" in shown
        profiles.close()
        # Errors: a missing store, and two <client> entries of one client.
        xml.write_text(xml.read_text().replace(str(pki["gw"]), str(tmp_path / "gone.jks"), 1))
        with pytest.raises(KeystoreError) as missing:
            SSLProfileSet.from_xml(xml, reload_interval=None)
        assert "client '$env{MTLS_TEST_CID}'" in str(missing.value)
        assert missing.value.client_id == "$env{MTLS_TEST_CID}"
        written = xml.read_text().replace(str(tmp_path / "gone.jks"), str(pki["gw"]))
        xml.write_text(written.replace("plain", "$env{MTLS_TEST_CID}"))
        with pytest.raises(ProfileConfigError) as twice:
            SSLProfileSet.from_xml(xml, reload_interval=None)
        assert "client '$env{MTLS_TEST_CID}'" in str(twice.value)
    for text in (shown, str(missing.value), str(twice.value), caplog.text):
        assert "Zq81" not in text


def test_toml_values_from_the_environment_are_never_shown(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MTLS_TEST_STORE", f"/{SECRET_DIR_NAME}/gw.jks")
    monkeypatch.setenv("MTLS_TEST_VERIFIER", "Nonsense-Zq81")
    home = home_with(tmp_path, {})
    (home / "p.xml").write_text(profile_xml(profile("only.test:443")))
    toml = write_toml(
        home,
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "$env{MTLS_TEST_VERIFIER}"\n'
        f'[keystore.tls]\nfile_name = "$env{{MTLS_TEST_STORE}}"\npassword = "{PASSWORD}"\n',
    )
    settings = read_deployment_toml(str(toml), base_dir=home)
    assert settings.keystore is not None
    assert settings.keystore.location == Path(f"/{SECRET_DIR_NAME}/gw.jks")
    assert SECRET_DIR_NAME not in repr(settings.keystore)
    with caplog.at_level(logging.WARNING, logger="mtls"), pytest.raises(KeystoreError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "$env{MTLS_TEST_STORE}" in str(info.value)
    assert "[keystore.tls] file_name" in str(info.value)
    assert "Zq81" not in str(info.value) + caplog.text
    assert "$env{MTLS_TEST_VERIFIER}" in caplog.text  # the unknown verifier, as written


def test_a_password_from_the_environment_that_is_not_utf8_reloads_once_fixed(
    tmp_path, pki, backend, monkeypatch
):
    """$env{} with a byte that is not UTF-8 gives a password with a lone surrogate. The
    first load said "wrong password"; every reload after the file changed then failed
    in the comparison of the old and new store configurations ("reload failed
    (UnicodeEncodeError ...)", the password in the kept error's args), so a fixed
    variable never loaded. Now: a wrong password, then the fix loads at the next check."""
    monkeypatch.setenv("MTLS_TEST_PW", "Sekr3t-Zq81\udce4")  # os.environ's b"...\xe4"
    xml = tmp_path / "p.xml"
    body = (
        '<parameter name="customSSLProfiles"><profile>'
        f"<servers>localhost:{backend.port}</servers>"
        f"<KeyStore><Location>{pki['gw']}</Location><Password>$env{{MTLS_TEST_PW}}</Password>"
        "</KeyStore>"
        f"<TrustStore><Location>{pki['trust']}</Location><Password>{PASSWORD}</Password>"
        "</TrustStore></profile></parameter>"
    )
    xml.write_text(body)
    profiles = SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0, skip_failures=True)
    with profiles:
        (error,) = profiles.errors
        assert isinstance(error, mtls.WrongPasswordError), error
        xml.write_text(body + "\n")  # an edit: the configurations are compared again
        profiles.reload()
        error = profiles.last_error
        assert isinstance(error, mtls.WrongPasswordError), error
        shown = json.dumps(profiles.status().to_dict()) + repr(error) + repr(error.__cause__)
        assert "Zq81" not in shown and "UnicodeEncodeError" not in shown
        monkeypatch.setenv("MTLS_TEST_PW", PASSWORD)
        xml.write_text(body)
        assert profiles.reload()
        assert client_cn(profiles, backend.port) == "gateway"


def test_a_password_with_a_brace_fragment_is_never_quoted(tmp_path):
    password = "pa${ss-Zq81}word"
    xml = profile_xml(profile("only.test:443", Path("ks.jks"), password=password))
    with pytest.raises(ProfileConfigError) as info:
        parse_profiles_xml(xml.encode(), path="p.xml", base_dir=tmp_path)
    assert "Zq81" not in str(info.value) and "ss-" not in str(info.value)
    assert "KeyStore/Password" in str(info.value)
    # The same fragment outside a password is named, so it can be fixed.
    xml = profile_xml(profile("only.test:443", Path("${ss-Zq81}/ks.jks"), password=PASSWORD))
    with pytest.raises(ProfileConfigError, match=r"\$\{ss-Zq81\}"):
        parse_profiles_xml(xml.encode(), path="p.xml", base_dir=tmp_path)


# --------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize("encoding", ["Shift_JIS", "EUC-JP", "GB2312", "Big5", "UTF-7"])
def test_multibyte_encodings_are_profile_config_errors(encoding):
    data = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n' + profile_xml(profile("a.test:443"))
    ).encode("ascii")
    with pytest.raises(ProfileConfigError, match=f"p.xml: .*{encoding}.*UTF-8"):
        parse_profiles_xml(data, path="p.xml", base_dir=Path("/"))


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_documents_are_profile_config_errors(codec):
    text = f'<?xml version="1.0" encoding="UTF-32"?>\n{profile_xml(profile("a.test:443"))}'
    with pytest.raises(ProfileConfigError, match=r"UTF-32.*UTF-8"):
        parse_profiles_xml(text.encode(codec), path="p.xml", base_dir=Path("/"))
    # The declaration alone, in ASCII bytes: the parser refuses it the same way.
    with pytest.raises(ProfileConfigError, match="UTF-32"):
        parse_profiles_xml(text.encode("ascii"), path="p.xml", base_dir=Path("/"))


@pytest.mark.parametrize("codec", ["iso-8859-1", "utf-8", "utf-16"])
def test_the_encodings_expat_reads_still_parse(codec):
    name = {"iso-8859-1": "ISO-8859-1", "utf-8": "UTF-8", "utf-16": "UTF-16"}[codec]
    text = f'<?xml version="1.0" encoding="{name}"?>\n{profile_xml(profile("a.test:443"))}'
    (only,) = parse_profiles_xml(text.encode(codec), path="p.xml", base_dir=Path("/"))
    assert only.servers == (("a.test", 443),)


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ("{a=", "}")])
def test_deeply_nested_toml_is_a_profile_config_error(tmp_path, opener, closer):
    toml = tmp_path / "deployment.toml"
    toml.write_text(f"x = {opener * 5000}1{closer * 5000}\n")
    with pytest.raises(ProfileConfigError, match=f"{toml}: .*nest more than 64"):
        read_deployment_toml(str(toml), base_dir=tmp_path)
    toml.write_text(  # the negative twin: a few levels are fine
        f"x = {opener * 5}1{closer * 5}\n"
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
    )
    assert read_deployment_toml(str(toml), base_dir=tmp_path).profiles_path == tmp_path / "p.xml"


def test_a_nul_in_a_path_is_a_profile_config_error(tmp_path):
    toml = tmp_path / "deployment.toml"
    toml.write_text('[transport.passthru_https.sender.ssl_profile]\nfile_path = "a\\u0000b.xml"\n')
    with pytest.raises(ProfileConfigError, match=r"ssl_profile\] file_path contains a NUL"):
        read_deployment_toml(str(toml), base_dir=tmp_path)
    toml.write_text('[keystore.tls]\nfile_name = "a\\u0000b.jks"\n')
    with pytest.raises(ProfileConfigError, match=r"\[keystore.tls\] file_name contains a NUL"):
        read_deployment_toml(str(toml), base_dir=tmp_path)
    # A Location made from a property holding a NUL: named by its element, not its value.
    xml = profile_xml(profile("a.test:443", Path("$sys{dir}/ks.jks")))
    with pytest.raises(ProfileConfigError, match="KeyStore><Location> contains a NUL"):
        parse_profiles_xml(
            xml.encode(), path="p.xml", base_dir=tmp_path, properties={"dir": "x\x00y"}
        )
    with pytest.raises(ProfileConfigError, match="NUL"):
        SSLProfileSet.from_xml(str(tmp_path / "a\x00b.xml"))
    with pytest.raises(ProfileConfigError, match="NUL"):
        mtls.StoreConfig(location=Path("a\x00b.jks"))
    with pytest.raises(ProfileConfigError, match="NUL"):
        DeploymentToml(str(tmp_path / "a\x00b.toml"), base_dir=tmp_path)


# --------------------------------------------------------------------------- WSO2's own files


@pytest.mark.fixtures
def test_api_manager_as_shipped(tmp_path, wso2_fixtures):
    """API Manager's stock [keystore.tls] and sslprofiles.xml, with the product home laid
    out as the product has it: real mutual TLS both ways with WSO2's own stores."""
    home = home_with(
        tmp_path,
        {
            name: wso2_fixtures / name
            for name in ("wso2carbon.jks", "client-truststore.jks", "sslprofiles.xml")
        },
    )
    toml = write_toml(
        home,
        APIM_STOCK_TLS + '\n[truststore]\nfile_name = "client-truststore.jks"\ntype = "JKS"\n'
        'password = "wso2carbon"\n',
    )
    identity = mtls.Keystore.load(wso2_fixtures / "wso2carbon.jks", "wso2carbon")
    trust = mtls.Truststore.load(wso2_fixtures / "client-truststore.jks")
    with (
        MTLSServer(identity, client_ca=trust) as server,
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None) as profiles,
    ):
        assert profiles.status().to_dict()["hostname_verifier"] == "Strict"
        (only,) = profiles.profiles
        assert only.servers == ("*",)
        assert client_cn(profiles, server.port) == "localhost"
    # The negative twin: the backend WSO2's truststore does not hold is refused.
    endpoint = mtls.Keystore.load(wso2_fixtures / "endpoint.jks", "wso2carbon")
    with MTLSServer(endpoint, client_ca=trust, require_client_cert=False) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_cn(profiles, server.port)


@pytest.mark.fixtures
def test_micro_integrator_as_shipped(tmp_path, wso2_fixtures):
    """Micro Integrator's stock store tables (paths from the home) and its test
    deployment.toml's sender settings."""
    home = home_with(
        tmp_path,
        {n: wso2_fixtures / n for n in ("wso2carbon.jks", "client-truststore.jks")},
    )
    toml = write_toml(home, MI_STOCK_STORES)
    settings = read_deployment_toml(str(toml), base_dir=home, require_profiles=False)
    assert settings.product == "mi" and settings.profiles_path is None
    assert settings.keystore is not None and settings.truststore is not None
    assert settings.keystore.location == home / SECURITY / "wso2carbon.jks"
    assert settings.truststore.location == home / SECURITY / "client-truststore.jks"
    profiles = SSLProfileSet.from_deployment_toml(
        toml, base_dir=home, reload_interval=None, profiles_path=wso2_fixtures / "sslprofiles.xml"
    )
    assert profiles.status().to_dict()["default"]["subject"].startswith("CN=localhost")
    # MI's own test file: listener settings and sender.hostname_verifier.
    mi = read_deployment_toml(
        str(wso2_fixtures / "mi-deployment.toml"), base_dir=home, require_profiles=False
    )
    assert mi.product == "mi" and mi.hostname_verifier == "AllowAll"
    assert mi.keystore is not None
    assert mi.keystore.location == home / SECURITY / "wso2carbon.jks"


def _refused_unparsed(
    tmp_path: Path, hostile: str, monkeypatch: pytest.MonkeyPatch, refused: str
) -> Path:
    """Write ``hostile`` as deployment.toml and check that the profile settings and a
    profile set both refuse it (``refused``: a pattern) without tomllib reading it."""
    import tomllib

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("tomllib was asked to parse a hostile file")

    toml = tmp_path / "deployment.toml"
    toml.write_text(hostile)
    with monkeypatch.context() as patched:
        patched.setattr(tomllib, "loads", never)
        with pytest.raises(ProfileConfigError, match=f"{toml}: .*({refused})"):
            read_deployment_toml(str(toml), base_dir=tmp_path)
        with pytest.raises(ProfileConfigError, match=refused):
            SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    return toml


@pytest.mark.parametrize(
    "hostile",
    [
        "a" + ".a" * 20_000 + " = 1\n",  # tomllib: 1.5 GB and 3 s for this 40 KB line
        "[" + "a." * 100_000 + "a]\nx = 1\n",  # a table header 100,000 deep
        # RecursionError inside tomllib; 200,000 brackets are also too many items.
        "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "x = " + "[" * 5_000 + "]" * 5_000 + "\n",
    ],
    ids=["dotted-key", "table-header", "arrays", "arrays-few"],
)
def test_hostile_toml_is_refused_before_it_is_parsed(tmp_path, hostile, monkeypatch):
    """Judged before tomllib reads a byte, on every path that reads deployment.toml:
    the profile settings and the secure vault (which read it first, and let a
    RecursionError out). The twin: the same shapes a few levels deep parse, dots and
    brackets inside strings and comments are not counted."""
    toml = _refused_unparsed(
        tmp_path, hostile, monkeypatch, "nest more than 64|more than 10,000 keys"
    )
    toml.write_text(
        'a.b.c.d = "x.' + "." * 500 + '"\n# ' + "[" * 500 + "\ny = [[1, 2], [3]]\n"
        "[transport.passthru_https.sender.ssl_profile]\nfile_path = 'p.xml'\n"
    )
    assert read_deployment_toml(str(toml), base_dir=tmp_path).profiles_path == tmp_path / "p.xml"


@pytest.mark.parametrize(
    "hostile",
    [
        "".join(f"[t{i}]\na = 1\n" for i in range(6_000)),  # 600,000 of these: 6 to 9 s
        "x = [" + "1," * 20_000 + "1]\n",
        "x = {" + ",".join(f"k{i} = 1" for i in range(20_000)) + "}\n",
        # 5,000 headers of 60 levels: 5,000 brackets, 300,000 key segments (tomllib:
        # seconds and hundreds of MB for twice as many).
        "".join(f"[k{i}{'.a' * 60}]\n" for i in range(5_000)),
    ],
    ids=["tables", "array", "inline-table", "deep-headers"],
)
def test_toml_with_more_items_than_any_product_file_is_refused_unparsed(
    tmp_path, hostile, monkeypatch
):
    """tomllib is pure Python: a file of hundreds of thousands of tables, under the
    8 MiB input limit, took seconds and hundreds of MB. The product's own files have
    a few hundred keys; past 10,000 the file is refused before tomllib reads it, on
    every path that reads it. The twin: items inside strings and comments do not
    count, and a file just under the line parses."""
    toml = _refused_unparsed(tmp_path, hostile, monkeypatch, "more than 10,000 keys")
    toml.write_text(
        'a = "' + "=,[" * 20_000 + '"\n# ' + "=,[" * 20_000 + "\n"
        + "".join(f"[t{i}]\na = 1\n" for i in range(4_000))
        + "[transport.passthru_https.sender.ssl_profile]\nfile_path = 'p.xml'\n"
    )  # fmt: skip
    assert read_deployment_toml(str(toml), base_dir=tmp_path).profiles_path == tmp_path / "p.xml"


def test_deployment_toml_is_parsed_once_for_settings_and_vault(tmp_path, monkeypatch):
    """The profile settings and the secure vault read the same file: parsed once (it
    was three times: once for the settings, twice for the vault's first load)."""
    import tomllib

    calls: list[int] = []
    real = tomllib.loads

    def counting(text: str, **kwargs: object) -> dict[str, object]:
        calls.append(len(text))
        return real(text)

    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml("<profile><servers>a.example:443</servers></profile>"))
    toml = tmp_path / "repository" / "conf" / "deployment.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text(
        f"[transport.passthru_https.sender.ssl_profile]\nfile_path = '{xml}'\n"
        f"# {tmp_path.name}: a document no other test parsed\n"
        '[secrets]\nunused = "[plain]"\n'
    )
    monkeypatch.setattr(tomllib, "loads", counting)
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None):
        pass
    assert len(calls) == 1
    # The parsed document (every password the file holds) does not outlive the load:
    # the next load parses the same file again.
    from mtls._deployment import _PARSED

    assert _PARSED.get() is None
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None):
        pass
    assert len(calls) == 2
    # The profile file alone, with the estate's vault (deployment.toml's [secrets]):
    # once too (the vault's first two loads parsed it twice).
    with SSLProfileSet.from_xml(xml, base_dir=tmp_path, reload_interval=None):
        pass
    assert len(calls) == 3


SECRET_PART = "hunter2-Zq"  # what a password holds by chance between braces


def _vault_down(alias: str) -> str:
    raise ConnectionError(f"vault down while asking for {alias}")


@pytest.mark.parametrize(
    ("password", "resolver", "reason"),
    [
        (f"Pa$secret{{{SECRET_PART}}}", None, "no secure vault is configured"),
        (f"Pa$secret{{{SECRET_PART}}}", {}.get, "an alias the vault lacks"),
        (f"Pa$secret{{{SECRET_PART}}}", _vault_down, "the secret resolver failed"),
        (f"Pa$env{{{SECRET_PART}}}", None, "naming nothing set"),
    ],
    ids=["secret-no-vault", "secret-unknown-alias", "secret-resolver-fails", "env"],
)
def test_a_placeholder_inside_a_password_is_never_quoted(password, resolver, reason, tmp_path):
    """Inside other text, "$secret{...}" may be part of the password: the message names
    the element and why, never the text, and chains no cause (a resolver's own message
    may name the alias). The twin: a password that is one placeholder is a reference,
    and its alias is named (it is not a secret)."""
    xml = profile_xml(profile("a.test:443", tmp_path / "k.jks", tmp_path / "t.jks"))
    data = xml.replace(f"<Password>{PASSWORD}</Password>", f"<Password>{password}</Password>", 1)
    assert password in data
    with pytest.raises(ProfileConfigError) as info:
        parse_profiles_xml(data.encode(), path="p.xml", base_dir=tmp_path, secret_resolver=resolver)
    message = str(info.value)
    assert SECRET_PART not in message and "Password" in message and reason in message
    assert info.value.__cause__ is None
    whole = xml.replace(
        f"<Password>{PASSWORD}</Password>", "<Password>$secret{ks.pw}</Password>", 1
    )
    with pytest.raises(ProfileConfigError, match=r"ks\.pw"):
        parse_profiles_xml(whole.encode(), path="p.xml", base_dir=tmp_path)


def test_a_ref_inside_a_password_is_never_quoted(tmp_path):
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        f'[keystore.tls]\nfile_name = "k.jks"\npassword = "Pa$ref{{a.{SECRET_PART}}}"\n'
    )
    with pytest.raises(ProfileConfigError) as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    assert SECRET_PART not in str(info.value)


def test_a_declared_type_from_a_placeholder_is_not_logged(tmp_path, caplog):
    """A <Type> that is not a store type's name may come from a placeholder: the log
    line about it (content wins over the declared type) does not show it. The twin: a
    real type name is shown."""
    ca = CA()
    keystore = write_identity(ca.issue_cert("gw"), tmp_path / "gw.jks", "JKS")
    for declared, shown in ((SECRET_PART, False), ("PKCS12", True)):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="mtls"):
            mtls.Keystore.load(keystore, PASSWORD, store_type=declared)
        assert "declared type" in caplog.text
        assert (declared in caplog.text) is shown


def test_a_not_well_formed_file_says_what_expat_found(tmp_path):
    """The secure-vault excerpt pasted without its namespace declaration: the message
    gives expat's reason (a kind of fault, never the document's text). The twin: with
    the declaration the same profile parses."""
    body = (
        "<profile><servers>a.test:443</servers><KeyStore><Location>k.jks</Location>"
        '<Password svns:secretAlias="ks.pw">x</Password></KeyStore></profile>'
    )
    with pytest.raises(ProfileConfigError, match=r"line 1, column \d+ \(unbound prefix\)"):
        parse_profiles_xml(
            f"<parameter>{body}</parameter>".encode(), path="p.xml", base_dir=tmp_path
        )
    declared = (
        f'<parameter xmlns:svns="http://org.wso2.securevault/configuration">{body}</parameter>'
    )
    (only,) = parse_profiles_xml(declared.encode(), path="p.xml", base_dir=tmp_path)
    assert only.servers == (("a.test", 443),)


def test_a_huge_alias_is_not_echoed_whole(tmp_path):
    alias = "a" * 100_000
    data = profile_xml(profile("a.test:443", tmp_path / "k.jks")).replace(
        "<Password>",
        f'<Password xmlns:svns="http://org.wso2.securevault/configuration" svns:secretAlias="{alias}">',
        1,
    )
    with pytest.raises(ProfileConfigError) as info:
        parse_profiles_xml(data.encode(), path="p.xml", base_dir=tmp_path, secret_resolver={}.get)
    assert len(str(info.value)) < 1_000 and "aaaa" in str(info.value)


def test_the_depth_prescan_is_linear_on_unclosed_strings(tmp_path):
    """A line of unclosed strings and escapes made the pre-scan quadratic (64 KiB: 8 s
    of CPU, 8 MiB: hours). It now runs in one pass: a 2 MiB line is judged in a child
    process given a generous bound, and the answer is tomllib's own refusal."""
    import subprocess
    import sys

    toml = tmp_path / "deployment.toml"
    toml.write_text('a = "' + '"\\' * (1 << 20) + "\n")
    code = (
        "import sys\nfrom mtls._deployment import _parse_toml\nfrom mtls import ProfileConfigError\n"
        "try:\n    _parse_toml(sys.argv[1])\nexcept ProfileConfigError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(toml)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "not valid TOML" in done.stdout, done.stderr[-500:]


def test_line_ending_backslashes_in_multi_line_strings_are_strings(tmp_path):
    """TOML's line-ending backslash inside a multi-line string: its lines are the
    string's, not keys (a list of host names with dots was counted as one deep key)."""
    hosts = " ".join(f"node{i}.dc1.example.com" for i in range(30))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        'allowed = """\\\n' + hosts + "\\\n  more." + "." * 80 + 'hosts"""\n'
        "[transport.passthru_https.sender.ssl_profile]\nfile_path = 'p.xml'\n"
    )
    assert read_deployment_toml(str(toml), base_dir=tmp_path).profiles_path == tmp_path / "p.xml"


def test_a_never_matching_entry_made_from_placeholders_is_warned_about_as_written(
    tmp_path, caplog, monkeypatch
):
    monkeypatch.setenv("MTLS_TEST_BACKEND", "*.internal-HIDDEN.example:8443")
    xml = profile_xml(profile("$env{MTLS_TEST_BACKEND}", tmp_path / "k.jks"))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_profiles_xml(xml.encode(), path="p.xml", base_dir=tmp_path)
    assert "never matches" in caplog.text and "$env{MTLS_TEST_BACKEND}" in caplog.text
    assert "HIDDEN" not in caplog.text


def test_ref_values_are_shown_resolved_and_env_values_stay_hidden(tmp_path, monkeypatch):
    """API Manager's templates write store names as $ref{} to other keys of the same
    file: those are shown as their values. A $ref{} that leads to $env{...} shows the
    $env{...} as written, never its value; so does a value that is $env{...} itself."""
    monkeypatch.setenv("MTLS_TEST_STORE", "HIDDEN-name.jks")
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[keystore.primary]\nfile_name = "wso2carbon.jks"\n'
        '[keystore.tls]\nfile_name = "$ref{keystore.primary.file_name}"\n'
        '[keystore.other]\nfile_name = "$ref{keystore.env.file_name}"\n'
        '[keystore.env]\nfile_name = "$env{MTLS_TEST_STORE}"\n'
    )
    doc = DeploymentToml(str(toml), base_dir=tmp_path)
    assert doc.shown(doc.written("keystore.tls", "file_name") or "") is None  # its value
    assert doc.text("keystore.tls", "file_name") == "wso2carbon.jks"
    assert doc.shown(doc.written("keystore.other", "file_name") or "") == "$env{MTLS_TEST_STORE}"
    assert doc.shown(doc.written("keystore.env", "file_name") or "") == "$env{MTLS_TEST_STORE}"
    assert doc.shown("$ref{keystore.missing.file_name}") == "$ref{keystore.missing.file_name}"


@pytest.mark.parametrize("digits", [20, 5000])
def test_an_interval_beyond_a_java_long_is_refused_by_name(tmp_path: Path, digits: int) -> None:
    """Synapse reads the interval with Long.parseLong: more than a long holds fails
    there. 5,000 digits was Python's own ValueError ("Exceeds the limit (4300
    digits)") out of from_deployment_toml; 20 digits was taken. Both are refused naming
    the setting; the twin, the largest long, is read."""
    section = "[transport.passthru_https.sender.ssl_profile]"
    (tmp_path / "repository" / "conf").mkdir(parents=True)
    toml = write_toml(tmp_path, f'{section}\ninterval = "{"9" * digits}"\n')
    with pytest.raises(ProfileConfigError, match="interval must be milliseconds"):
        read_deployment_toml(str(toml), base_dir=tmp_path)
    toml = write_toml(tmp_path, f'{section}\ninterval = "{2**63 - 1}"\n')
    assert read_deployment_toml(str(toml), base_dir=tmp_path).interval_ms == 2**63 - 1
    # Leading zeros count for nothing, as in Long.parseLong.
    toml = write_toml(tmp_path, f'{section}\ninterval = "{"0" * 30}600000"\n')
    assert read_deployment_toml(str(toml), base_dir=tmp_path).interval_ms == 600000


def test_an_interval_with_spaces_is_read_and_marked_as_what_wso2_cannot_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Synapse parses the interval with Long.parseLong, which takes no spaces: mtls
    trims them (it reads the file), and says WSO2 cannot, marked so that mtls check
    fails it; the twin without spaces says nothing."""
    section = "[transport.passthru_https.sender.ssl_profile]"
    (tmp_path / "repository" / "conf").mkdir(parents=True)
    for written, marked in (('" 120000 "', True), ('"120000"', False)):
        caplog.clear()
        toml = write_toml(tmp_path, f"{section}\ninterval = {written}\n")
        with caplog.at_level(logging.WARNING, logger="mtls"):
            assert read_deployment_toml(str(toml), base_dir=tmp_path).interval_ms == 120000
        found = [r for r in caplog.records if "spaces around its number" in r.getMessage()]
        assert len(found) == int(marked)
        assert all(getattr(r, "mtls_wso2_cannot_load", False) for r in found)


def test_profiles_without_a_truststore_are_said_to_trust_the_systems_cas(
    tmp_path: Path, pki: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    """WSO2 trusts its JVM's default there: in a WSO2 home, client-truststore.jks
    (Carbon sets javax.net.ssl.trustStore). from_xml trusted the system's CAs and said
    nothing (an independent sweep of WSO2's files found it)."""
    path = tmp_path / "sslprofiles.xml"
    path.write_text(
        profile_xml(
            profile("backend:8443", pki["gw"]),  # type: ignore[arg-type]
            profile("other:8443", pki["gw"], pki["trust"]),  # type: ignore[arg-type]
            profile("lax:8443", pki["gw"], attrs='novalidatecert="true"'),  # type: ignore[arg-type]
        )
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        with SSLProfileSet.from_xml(path):
            pass
    said = [r.getMessage() for r in caplog.records if "without a <TrustStore>" in r.getMessage()]
    assert len(said) == 1 and "(backend:8443) trusts the system's CAs" in said[0]
    assert "client-truststore.jks" in said[0] and "default_truststore=" in said[0]
    # The twin: with the default trust given, nothing is said.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        trust = mtls.StoreConfig(location=pki["trust"], password=PASSWORD)  # type: ignore[arg-type]
        with SSLProfileSet.from_xml(path, default_truststore=trust):
            pass
    assert not [r for r in caplog.records if "without a <TrustStore>" in r.getMessage()]


# --------------------------------------------------------------------------- secrets never shown


@pytest.mark.parametrize(
    ("alias", "extra"),
    [
        ("$env{MTLS_TEST_ALIAS}", ""),
        ("$secret{a}", '[secrets]\na = "[Vault-Alias-Value-456]"\n'),
        ("$ref{keystore.tls.password}", ""),
        ("$ref{secrets.a}", '[secrets]\na = "[Vault-Alias-Value-456]"\n'),
        # a setting a password is resolved through, whatever its name
        ("$ref{custom.pw}", f'[custom]\npw = "{PASSWORD}"\n'),
    ],
)
def test_an_alias_from_a_placeholder_is_never_shown_by_check(
    tmp_path, pki, capsys, monkeypatch, alias: str, extra: str
) -> None:
    """The library named such an alias as written, but `mtls check` printed the store's
    own "has no key entry '<value>'" (the environment's, the vault's decrypted value,
    or, through $ref{} to the password, the password itself). The twin: an alias
    written in the file is named as it is."""
    monkeypatch.setenv("MTLS_TEST_ALIAS", "Env-Alias-Value-123")
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    password = '"$ref{custom.pw}"' if "custom.pw" in alias else f'"{PASSWORD}"'
    toml = write_toml(
        home,
        APIM_SENDER.replace(
            f'file_name = "gateway.jks"\npassword = "{PASSWORD}"',
            f'file_name = "gateway.jks"\npassword = {password}\nalias = "{alias}"',
        )
        + extra,
    )
    secrets = ("Env-Alias-Value-123", "Vault-Alias-Value-456", PASSWORD)
    with pytest.raises(mtls.KeyEntryError) as refused:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert alias in str(refused.value)
    for args in ([], ["--json"]):
        code = main(["check", "--deployment-toml", str(toml), "--base-dir", str(home), *args])
        out, err = capsys.readouterr()
        assert code == 1
        assert alias in out + err, out + err
        for secret in secrets:
            assert secret not in out + err + str(refused.value)
    # The twin: written in the file, the alias is shown.
    write_toml(
        home,
        APIM_SENDER.replace(
            'file_name = "gateway.jks"', 'file_name = "gateway.jks"\nalias = "nosuch"'
        ),
    )
    main(["check", "--deployment-toml", str(toml), "--base-dir", str(home)])
    assert "'nosuch'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "path",
    ["$secret{p}", "$ref{custom.secret_path}", "$ref{keystore.tls.password}", "$ref{secrets.p}"],
)
def test_a_file_path_from_a_secret_is_refused_unshown(tmp_path, pki, path: str) -> None:
    """A profile file path from $secret{}, or from a $ref{} to a password or to
    [secrets] (a review found those got past the first refusal), was shown decrypted
    in every message about the file ("<value>: no such profile file"): refused, unshown."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    toml = write_toml(
        home,
        APIM_SENDER
        + f'[transport.passthru_https.sender.ssl_profile]\nfile_path = "{path}"\n'
        + '[custom]\nsecret_path = "$secret{p}"\n'
        + '[secrets]\np = "[Vault-Path-Value-789]"\n',
    )
    with pytest.raises(ProfileConfigError, match="takes its value from a secret") as info:
        SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert "Vault-Path-Value-789" not in str(info.value) and PASSWORD not in str(info.value)


def test_check_without_a_profile_file_names_the_toml_not_none(tmp_path, capsys) -> None:
    """A Micro Integrator estate with no profile file (the default stores only): a
    failure was said as "mtls: error: None: ...". The twin of the message is the
    profile file's path when there is one (the other tests here)."""
    home = tmp_path / "mi"
    (home / "conf").mkdir(parents=True)
    toml = home / "conf" / "deployment.toml"
    toml.write_text('[keystore.primary]\nfile_name = "missing.jks"\npassword = "x"\n')
    code = main(
        ["check", "--deployment-toml", str(toml), "--base-dir", str(home), "--product", "mi"]
    )
    _, err = capsys.readouterr()
    assert code == 1
    assert "None:" not in err and f"mtls: error: {toml}: " in err, err


@pytest.mark.parametrize(
    ("declared", "loads_in_wso2"), [("FOO", False), ("", False), ("JKS", True)]
)
def test_a_toml_store_type_java_does_not_know_fails_check(
    tmp_path, pki, capsys, declared: str, loads_in_wso2: bool
) -> None:
    """`<Type>FOO</Type>` in a profile file fails `mtls check` (WSO2's
    KeyStore.getInstance refuses it); `type = "FOO"` in deployment.toml passed it, with
    a DEBUG line only. The twin: JKS."""
    home = home_with(tmp_path, {"gateway.jks": pki["gw"], "client-truststore.jks": pki["trust"]})
    (home / SECURITY / "sslprofiles.xml").write_text(profile_xml(profile("only.test:443")))
    toml = write_toml(
        home,
        APIM_SENDER.replace(
            'file_name = "gateway.jks"', f'file_name = "gateway.jks"\ntype = "{declared}"'
        ),
    )
    main(["check", "--deployment-toml", str(toml), "--base-dir", str(home), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is loads_in_wso2
    said = " ".join(report["wso2_cannot_load"])
    assert ("[keystore.tls] type" in said) is not loads_in_wso2
