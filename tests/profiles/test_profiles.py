"""SSLProfileSet: the WSO2 profile file, lookup, sharing, hostname modes, deployment.toml."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import ssl
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mtls
from mtls import ProfileConfigError, SSLProfile, SSLProfileSet, StoreConfig
from mtls.cli import main
from mtls.testing import CA, MTLSServer
from tests._helpers import (
    PASSWORD,
    profile,
    profile_xml,
    wait_for,
    whoami,
    write_identity,
    write_trust,
    write_xml,
)
from tests.conftest import WSO2_FIXTURES as WSO2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two CAs, a backend identity for localhost, two client identities, as JKS files."""
    d = tmp_path_factory.mktemp("pki")
    ca = CA(name="backend CA")
    other = CA(name="other CA")
    backend = ca.issue_cert("localhost", "127.0.0.1", "backend.test", common_name="backend")
    gw1 = ca.issue_cert("gateway-one", common_name="gateway-one")
    gw2 = ca.issue_cert("gateway-two", common_name="gateway-two")
    return {
        "dir": d,
        "ca": ca,
        "other": other,
        "backend": backend,
        "gw1": write_identity(gw1, d / "gw1.jks"),
        "gw2": write_identity(gw2, d / "gw2.p12", "PKCS12"),
        "trust": write_trust(ca, d / "trust.jks"),
        "other_trust": write_trust(other, d / "other-trust.jks"),
    }


@pytest.fixture(scope="module")
def backend(pki: dict[str, object]):
    """A backend on localhost that demands a client certificate from the backend CA."""
    with MTLSServer(pki["backend"], client_ca=pki["ca"]) as server:  # type: ignore[arg-type]
        yield server


# --------------------------------------------------------------------------- parsing


def test_routes_each_backend_to_its_identity(tmp_path, pki, backend):
    xml = write_xml(
        tmp_path,
        profile(f"localhost:{backend.port}", pki["gw1"], pki["trust"]),
        profile(f"backend.test:{backend.port}", pki["gw2"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml)
    assert len(profiles) == 2
    assert (
        whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"]
        == "gateway-one"
    )
    ctx = profiles.context_for("backend.test", backend.port)
    assert whoami(ctx, backend.port, host="backend.test")["client_cn"] == "gateway-two"


def test_no_profile_means_no_context_and_the_backend_refuses_a_client_without_one(
    tmp_path, pki, backend
):
    xml = write_xml(tmp_path, profile(f"localhost:{backend.port}", pki["gw1"], pki["trust"]))
    profiles = SSLProfileSet.from_xml(xml)
    assert profiles.context_for("localhost", backend.port + 1) is None
    assert profiles.context_for_url(f"https://elsewhere.test:{backend.port}/") is None
    # A profile with a truststore but no keystore sends no certificate: refused.
    xml2 = write_xml(tmp_path, profile(f"localhost:{backend.port}", None, pki["trust"]))
    bare = SSLProfileSet.from_xml(xml2).context_for("localhost", backend.port)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        whoami(bare, backend.port)


def test_wrong_truststore_fails_verification(tmp_path, pki, backend):
    xml = write_xml(tmp_path, profile(f"localhost:{backend.port}", pki["gw1"], pki["other_trust"]))
    ctx = SSLProfileSet.from_xml(xml).context_for("localhost", backend.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(ctx, backend.port)


def test_servers_are_trimmed_case_insensitive_and_ipv6_aware(tmp_path, pki):
    xml = write_xml(
        tmp_path,
        profile(
            " Backend.Example.COM:8243 ,\n 10.0.0.5:443, [::1]:8443 ", pki["gw1"], pki["trust"]
        ),
    )
    profiles = SSLProfileSet.from_xml(xml)
    (only,) = profiles.profiles
    assert only.servers == (("backend.example.com", 8243), ("10.0.0.5", 443), ("::1", 8443))
    ctx = profiles.context_for("backend.example.com", 8243)
    assert ctx is not None
    assert profiles.context_for("BACKEND.example.com", 8243) is ctx
    # The lower-case retry of the fast path (h168) and the slow path agree: a trailing
    # dot, a port of another profile, an unknown name in capitals.
    assert profiles.context_for("BACKEND.example.com.", 8243) is ctx
    assert profiles.context_for("BACKEND.example.com", 443) is None
    assert profiles.context_for("OTHER.example.com", 8243) is None
    assert profiles.context_for("10.0.0.5", 443) is ctx
    assert profiles.context_for("::1", 8443) is ctx
    assert profiles.context_for("[::1]", 8443) is ctx
    assert profiles.context_for_url("https://[::1]:8443/x") is ctx
    assert profiles.context_for("backend.example.com", 443) is None
    assert profiles.context_for("10.0.0.6", 443) is None
    # Lookups that can never match are mistakes, not "no profile" (None): a port read
    # from os.environ, a host with its port, a URL without its scheme (a newcomer's).
    with pytest.raises(TypeError, match=r"port must be an int, not str \('8243'\)"):
        profiles.context_for("backend.example.com", "8243")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port must be an int"):
        profiles.profile_for("backend.example.com", "8243")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has a ':' but is not an IPv6 address"):
        profiles.context_for("backend.example.com:8243", 443)
    with pytest.raises(ValueError, match="not an absolute https://"):
        profiles.context_for_url("backend.example.com:8243/api")
    with pytest.raises(ValueError, match="not an absolute https://"):
        profiles.material_for("backend.example.com", 8243) and profiles.context_for_url("/x")
    assert profiles.context_for_url("http://backend.example.com:8243/") is None  # no TLS
    # An int of another type is an int (a review found IntEnum ports refused).
    import enum

    class Port(enum.IntEnum):
        BACKEND = 8243

    assert profiles.context_for("backend.example.com", Port.BACKEND) is ctx


def test_internationalised_names_match_the_form_http_clients_put_on_the_wire(tmp_path, pki):
    """httpx, requests and aiohttp look a host up by its ASCII (IDNA) form: a profile
    written as bücher.example must answer xn--bcher-kva.example, and one written in
    the ASCII form must answer the Unicode one. The twin: a name that is not the same
    falls through to the catch-all, as any other name would."""
    xml = write_xml(
        tmp_path,
        profile("bücher.example:8443", pki["gw1"], pki["trust"]),
        profile("xn--strae-oqa.example:8443", pki["gw2"], pki["trust"]),
        profile("*", pki["gw2"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml)
    books = profiles.context_for("bücher.example", 8443)
    assert books is not None
    assert profiles.context_for("xn--bcher-kva.example", 8443) is books
    assert profiles.context_for("BÜCHER.example.", 8443) is books
    assert profiles.context_for_url("https://xn--bcher-kva.example:8443/orders") is books
    assert profiles.profile_for("straße.example", 8443).servers == (  # type: ignore[union-attr]
        ("xn--strae-oqa.example", 8443),
    )
    caught = profiles.profile_for("buecher.example", 8443)
    assert caught is not None and caught.servers == ("*",)
    assert profiles.context_for("buecher.example", 8443) is not books


def test_a_name_idna_2008_refuses_is_keyed_as_yarl_dials_it(tmp_path, pki):
    """``☃.example``: IDNA 2008 refuses the snowman; yarl (aiohttp) then encodes with
    IDNA 2003 and dials xn--n3h.example. The profile was keyed by the Unicode text, so
    aiohttp's lookup missed it and the catch-all's identity went out instead."""
    xml = write_xml(
        tmp_path,
        profile("☃.example:8443", pki["gw1"], pki["trust"]),
        profile("*", pki["gw2"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml)
    snowman = profiles.profile_for("xn--n3h.example", 8443)
    assert snowman is not None and snowman.servers == (("xn--n3h.example", 8443),)
    assert profiles.context_for("☃.example", 8443) is profiles.context_for("xn--n3h.example", 8443)
    yarl = pytest.importorskip("yarl")
    assert yarl.URL("https://☃.example:8443/").raw_host == "xn--n3h.example"
    # Twin: another name is the catch-all's.
    assert profiles.profile_for("xn--n3i.example", 8443).servers == ("*",)  # type: ignore[union-attr]


def test_location_text_is_trimmed_and_placeholders_resolve(tmp_path, pki, monkeypatch):
    monkeypatch.setenv("MTLS_TEST_DIR", str(pki["dir"]))
    monkeypatch.setenv("MTLS_TEST_PW", PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            "<profile><servers>a:1</servers><KeyStore>\n"
            "<Location>\n   $env{MTLS_TEST_DIR}/gw1.jks\n</Location>\n"
            "<Password>${MTLS_TEST_PW}</Password></KeyStore>"
            "<TrustStore><Location>$sys{trust.dir}/trust.jks</Location>"
            "<Password>$sys{MTLS_TEST_PW}</Password></TrustStore></profile>"
        )
    )
    profiles = SSLProfileSet.from_xml(xml, properties={"trust.dir": str(pki["dir"])})
    (only,) = profiles.profiles
    assert only.keystore is not None and only.keystore.location == pki["gw1"]
    assert only.truststore is not None and only.truststore.location == pki["trust"]


def test_unresolved_placeholder_is_an_error_naming_it(tmp_path):
    xml = write_xml(
        tmp_path, "<profile><servers>$env{MTLS_NOT_SET_ANYWHERE}:443</servers></profile>"
    )
    with pytest.raises(ProfileConfigError, match="MTLS_NOT_SET_ANYWHERE") as info:
        SSLProfileSet.from_xml(xml)
    assert info.value.path == str(xml)


def test_a_long_unresolved_placeholder_is_named_bounded(tmp_path):
    """A nested ``${${${...`` of 12,000 characters was repeated twice in the message
    (16 KB, h174); the usual one (above) is named whole."""
    written = "${" * 3000 + "}" * 3000
    xml = write_xml(
        tmp_path,
        f"<profile><servers>a.test:443</servers><KeyStore><Location>{written}</Location>"
        f"<Password>{PASSWORD}</Password></KeyStore></profile>",
    )
    with pytest.raises(ProfileConfigError, match=r"\.\.\. \(\d+ characters\)") as info:
        SSLProfileSet.from_xml(xml)
    assert len(str(info.value)) < 1500


@pytest.mark.parametrize(
    ("written", "fix"),
    [
        ("$env{MTLS_NOT_SET_ANYWHERE}", "set it in the environment mtls runs in"),
        ("$sys{MTLS_NOT_SET_ANYWHERE}", "set it, or pass properties={...}"),
    ],
    ids=["env", "sys"],
)
def test_unresolved_placeholder_names_the_fix_that_works(tmp_path, pki, written, fix):
    """``$env{}`` reads the environment only (properties= is never asked for it, as in
    WSO2): its message said "or pass properties={...}", which changes nothing."""
    xml = write_xml(
        tmp_path,
        f"<profile><servers>a.test:443</servers><KeyStore><Location>{written}/gw1.jks"
        f"</Location><Password>{PASSWORD}</Password></KeyStore></profile>",
    )
    with pytest.raises(ProfileConfigError, match="MTLS_NOT_SET_ANYWHERE") as info:
        SSLProfileSet.from_xml(xml, properties={"MTLS_NOT_SET": "x"})
    assert fix in str(info.value)
    if written.startswith("$env"):
        assert "properties=" not in str(info.value)


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        ("<KeyStore><Password>x</Password></KeyStore>", "<KeyStore> has no <Location>"),
        ("<KeyStore><Location>gw.jks</Location></KeyStore>", "has no <Password>"),
        (
            "<KeyStore><Location>gw.jks</Location><Password>$env{MTLS_NOT_SET_ANYWHERE}"
            "</Password></KeyStore>",
            "MTLS_NOT_SET_ANYWHERE",
        ),
    ],
    ids=["location", "password", "placeholder"],
)
def test_a_config_error_names_its_profile_among_many(tmp_path, broken, says):
    """In a file of many profiles, "<KeyStore> has no <Location>" did not say whose:
    the servers were in the exception's attribute only (docs/profiles.md says the
    message names the profile)."""
    xml = write_xml(
        tmp_path,
        "<profile><servers>good.test:443</servers></profile>"
        f'<profile name="billing"><servers>billing.test:8243</servers>{broken}</profile>',
    )
    with pytest.raises(ProfileConfigError) as info:
        SSLProfileSet.from_xml(xml)
    message = str(info.value)
    assert message.startswith(f"{xml}: profile billing.test:8243: "), message
    assert says in message and info.value.servers == ("billing.test:8243",)
    assert "x<" not in message  # never the password's text
    # A message that names its profile already is left as it is (not named twice).
    with pytest.raises(ProfileConfigError) as info:
        SSLProfileSet.from_xml(write_xml(tmp_path, f"<profile name='billing'>{broken}</profile>"))
    assert str(info.value).startswith(f"{xml}: profile 1 (billing) has no <servers>")
    assert str(info.value).count(": profile ") == 1


def test_a_key_password_missing_from_a_profile_names_the_element(tmp_path, pki):
    """A JKS key with its own password, the profile without <KeyPassword>: the advice
    was "pass key_password" (Keystore.load's parameter, which a profile file has no
    way to give) and, from `mtls check`, "--key-password" (which check does not take).
    Twin: the same store loaded directly keeps the loader's advice."""
    from mtls.cli import main

    store = tmp_path / "own-key-password.jks"
    pki["ca"].issue_cert("gateway-kp").write_keystore(  # type: ignore[attr-defined]
        store, PASSWORD, key_password="a-key-password"
    )
    written = profile("a.test:443", store).replace(f"<KeyPassword>{PASSWORD}</KeyPassword>", "")
    xml = write_xml(tmp_path, written)
    with pytest.raises(mtls.WrongPasswordError, match="does not unlock key entry") as info:
        SSLProfileSet.from_xml(xml)
    assert "<KeyPassword>" in str(info.value) and "pass key_password" not in str(info.value)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", str(xml)]) == 1
    assert "<KeyPassword>" in err.getvalue() and "--key-password" not in err.getvalue()
    with pytest.raises(mtls.WrongPasswordError, match="pass key_password"):
        mtls.Keystore.load(store, PASSWORD)


def test_a_wrong_key_password_says_where_it_was_given(tmp_path, pki) -> None:
    """A wrong <KeyPassword> said only "the key password does not unlock key entry",
    with no fix (a persistent-failure sweep): it now names where the password was
    given, in each context's words."""
    from mtls.cli import main

    store = tmp_path / "own-key-password.jks"
    pki["ca"].issue_cert("gateway-kp").write_keystore(  # type: ignore[attr-defined]
        store, PASSWORD, key_password="a-key-password"
    )
    xml = write_xml(tmp_path, profile("a.test:443", store))  # <KeyPassword> = the store's
    with pytest.raises(mtls.WrongPasswordError, match="does not unlock key entry") as info:
        SSLProfileSet.from_xml(xml)
    assert "check the profile's <KeyPassword>" in str(info.value), info.value
    with pytest.raises(mtls.WrongPasswordError, match="check the key password given"):
        mtls.Keystore.load(store, PASSWORD, key_password="not-it")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["keypasswd", "--keystore", str(store), "--alias", "gateway-kp",
                     "--password", PASSWORD, "--key-password", "not-it",
                     "--new-password", "a-new-key-password"])  # fmt: skip
    assert code == 1 and "check --key-password" in err.getvalue(), err.getvalue()
    assert "not-it" not in err.getvalue()


def test_a_vault_namespace_below_the_root_is_resolved_with_a_warning(tmp_path, pki, caplog):
    """WSO2's SecretResolverFactory looks for the secure vault's namespace on the root
    only: declared on <Password>, WSO2 uses the element's text. mtls resolves the alias
    and says that WSO2 will not (`mtls check` was green where WSO2 fails)."""
    ns = 'xmlns:svns="http://org.wso2.securevault/configuration"'
    store = (
        f"<KeyStore><Location>{pki['gw1']}</Location>"
        f'<Password {{on_element}}svns:secretAlias="Gw.Store">text</Password>'
        f"<KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
    )
    vault = {"Gw.Store": PASSWORD}
    for on_root, warned in ((False, True), (True, False)):
        body = store.replace("{on_element}", "" if on_root else ns + " ")
        xml = tmp_path / "vault.xml"
        xml.write_text(
            f'<parameter name="customSSLProfiles"{" " + ns if on_root else ""}>'
            f"<profile><servers>a:1</servers>{body}</profile></parameter>"
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            profiles = SSLProfileSet.from_xml(xml, secret_resolver=vault.get)
        assert profiles.context_for("a", 1) is not None
        assert ("declared below the root element" in caplog.text) is warned


def test_secret_alias_goes_through_the_resolver(tmp_path, pki):
    body = (
        '<parameter name="customSSLProfiles" xmlns:svns="http://org.wso2.securevault/configuration">'
        f"<profile><servers>a:1</servers><KeyStore><Location>{pki['gw1']}</Location>"
        '<Password svns:secretAlias="Gw.Store">not-the-password</Password>'
        '<KeyPassword svns:secretAlias="Gw.Key">not-the-password</KeyPassword></KeyStore>'
        "</profile></parameter>"
    )
    xml = tmp_path / "vault.xml"
    xml.write_text(body)
    vault = {"Gw.Store": PASSWORD, "Gw.Key": PASSWORD}
    profiles = SSLProfileSet.from_xml(xml, secret_resolver=vault.get)
    assert profiles.context_for("a", 1) is not None
    # An alias the vault does not know is an error (WSO2 would use the alias as the password).
    with pytest.raises(ProfileConfigError, match=r"Gw\.Store") as info:
        SSLProfileSet.from_xml(xml, secret_resolver={}.get)
    assert PASSWORD not in str(info.value)
    # Without a resolver the element text is used, as in WSO2: here it is wrong.
    with pytest.raises(mtls.WrongPasswordError) as wrong:
        SSLProfileSet.from_xml(xml)
    assert "not-the-password" not in str(wrong.value)


@pytest.mark.parametrize("alias", ["", "  "])
def test_an_empty_secret_alias_means_the_text_is_the_password(tmp_path, pki, alias):
    """WSO2's MiscellaneousUtil.resolve uses the element text when secretAlias is empty,
    vault or not: it is not an alias to look up."""
    body = (
        '<parameter name="customSSLProfiles" xmlns:svns="http://org.wso2.securevault/configuration">'
        f"<profile><servers>a:1</servers><KeyStore><Location>{pki['gw1']}</Location>"
        f'<Password svns:secretAlias="{alias}">{PASSWORD}</Password></KeyStore>'
        "</profile></parameter>"
    )
    xml = tmp_path / "vault.xml"
    xml.write_text(body)
    asked: list[str] = []

    def resolver(name: str) -> str | None:
        asked.append(name)
        return None

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=resolver)
    assert profiles.context_for("a", 1) is not None and asked == []
    # Twin: a named alias is still looked up, and one the vault lacks is an error.
    xml.write_text(body.replace(f'secretAlias="{alias}"', 'secretAlias="Gw.Store"'))
    with pytest.raises(ProfileConfigError, match=r"Gw\.Store"):
        SSLProfileSet.from_xml(xml, secret_resolver=resolver)
    assert asked == ["Gw.Store"]


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ("backend.example.com", "no port"),
        ("", "empty <servers>"),
        (" , ,", "no entry, only commas"),
        ("a.example.com:443\n  b.example.com:8243", "not a comma.*a.example.com:443, b.example"),
        ("backend.example.com:http", "port from 1 to 65535"),
        ("backend.example.com:70000", "port from 1 to 65535"),
    ],
)
def test_bad_servers_are_errors(tmp_path, servers, message):
    xml = write_xml(tmp_path, f"<profile><servers>{servers}</servers></profile>")
    with pytest.raises(ProfileConfigError, match=message) as info:
        SSLProfileSet.from_xml(xml)
    assert info.value.path == str(xml)


def test_a_stray_comma_in_servers_is_ignored_with_a_warning(tmp_path, pki, caplog):
    """WSO2's split(",") drops trailing empty entries, and an inner or leading one is a
    key no request matches: the file loads there, so it loads here, and says so."""
    xml = write_xml(tmp_path, profile(",a.test:443,, b.test:8243,", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    (only,) = profiles.profiles
    assert only.servers == (("a.test", 443), ("b.test", 8243))
    assert profiles.context_for("b.test", 8243) is not None
    assert "stray comma" in caplog.text and "profile 1" in caplog.text
    # Twin: a well-formed list says nothing.
    caplog.clear()
    xml = write_xml(tmp_path, profile("a.test:443, b.test:8243", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    assert "stray comma" not in caplog.text


def test_an_entry_a_placeholder_leaves_empty_is_named_as_such(tmp_path, pki, caplog, monkeypatch):
    """No stray comma to blame: the entry is empty once $env{...} is replaced. The
    message says so, names the entries as written, and never shows the value."""
    monkeypatch.setenv("MTLS_TEST_EMPTY", " ")  # set: "" is not, for a profile file (below)
    monkeypatch.setenv("MTLS_TEST_HOSTS", "hidden-name.test:443,")
    written = "$env{MTLS_TEST_EMPTY},$env{MTLS_TEST_HOSTS}"
    xml = write_xml(tmp_path, profile(written, pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert profiles.profiles[0].servers == (("hidden-name.test", 443),)
    assert "once its placeholders are replaced" in caplog.text
    assert "stray comma" not in caplog.text and "hidden-name" not in caplog.text
    xml = write_xml(tmp_path, profile("$env{MTLS_TEST_EMPTY}", pki["gw1"], pki["trust"]))
    with pytest.raises(ProfileConfigError, match="is empty once its placeholders are replaced"):
        SSLProfileSet.from_xml(xml)


SYNAPSE_NS = "http://ws.apache.org/ns/synapse"


def test_a_default_namespace_hides_the_profiles_elements_as_in_wso2(tmp_path, pki, caplog):
    """Synapse asks Axiom for new QName("servers"), which matches only an element
    without a namespace: a profile file whose root declares a default namespace (a
    block copied from a Synapse configuration) has no <servers> for WSO2, which refuses
    it. mtls matched local names and served it (h140). The twins: the same file without
    the declaration, and with a prefixed one (the secure vault's), load."""
    body = profile("a.test:443", pki["gw1"], pki["trust"])
    path = tmp_path / "sslprofiles.xml"
    path.write_text(f'<parameter xmlns="{SYNAPSE_NS}" name="customSSLProfiles">{body}</parameter>')
    with pytest.raises(ProfileConfigError, match="has no <servers>") as caught:
        SSLProfileSet.from_xml(path)
    assert f"in the namespace '{SYNAPSE_NS}'" in str(caught.value)
    assert 'no default xmlns="..." on the root element' in str(caught.value)
    for root in (
        '<parameter name="customSSLProfiles">',
        f'<parameter xmlns:syn="{SYNAPSE_NS}" name="customSSLProfiles">',
    ):
        path.write_text(f"{root}{body}</parameter>")
        with SSLProfileSet.from_xml(path) as profiles:
            assert profiles.profile_for("a.test", 443).keystore is not None


def test_a_store_element_in_a_namespace_is_ignored_as_in_wso2(tmp_path, pki, caplog):
    """A <KeyStore> in a namespace inside a plain profile is not read by WSO2 (no
    client certificate is sent): mtls does the same, and says so."""
    body = profile("a.test:443", truststore=pki["trust"], extra=(
        f'<KeyStore xmlns="{SYNAPSE_NS}"><Location>{pki["gw1"]}</Location><Type>JKS</Type>'
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
    ))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(write_xml(tmp_path, body))
    with profiles:
        assert profiles.profile_for("a.test", 443).keystore is None
    assert f"ignoring <KeyStore> (namespace '{SYNAPSE_NS}')" in caplog.text
    assert "only without a namespace" in caplog.text


def test_an_empty_environment_variable_is_not_set_in_a_profile_file(tmp_path, pki, monkeypatch):
    """axis2 replaces $env{NAME} only with a value that is not empty, and keeps the
    placeholder as written otherwise: WSO2 then opens "gw.jks$env{SUFFIX}", which does
    not exist. mtls loaded gw.jks (h140). deployment.toml's config mapper takes an empty
    value: tests/profiles/test_wso2_stock.py has that twin."""
    monkeypatch.setenv("MTLS_TEST_SUFFIX", "")
    keystore = pki["gw1"]
    written = profile("a.test:443", Path(f"{keystore}$env{{MTLS_TEST_SUFFIX}}"), pki["trust"])
    with pytest.raises(ProfileConfigError, match="'MTLS_TEST_SUFFIX' is empty") as caught:
        SSLProfileSet.from_xml(write_xml(tmp_path, written))
    assert "WSO2 replaces a placeholder only with a value that is not empty" in str(caught.value)
    # Twin: set to a value, it is replaced.
    monkeypatch.setenv("MTLS_TEST_SUFFIX", keystore.suffix)
    stem = keystore.with_suffix("")
    written = profile("a.test:443", Path(f"{stem}$env{{MTLS_TEST_SUFFIX}}"), pki["trust"])
    with SSLProfileSet.from_xml(write_xml(tmp_path, written)) as profiles:
        assert profiles.context_for("a.test", 443) is not None


@pytest.mark.parametrize(
    ("store", "lacks"),
    [
        (
            "<KeyStore><Location>{gw1}</Location><Type>JKS</Type><Password>{pw}</Password>"
            "</KeyStore>",
            "lacks <KeyPassword>: mtls unlocks the key with the store password",
        ),
        (
            "<TrustStore><Location>{trust}</Location><Type>JKS</Type></TrustStore>",
            "lacks <Password>: mtls reads the truststore without one",
        ),
        (
            "<KeyStore><Location>{gw1}</Location><Password>{pw}</Password></KeyStore>",
            "lacks <Type> and <KeyPassword>",
        ),
        (
            "<TrustStore><Location>{trust}</Location><Password>{pw}</Password></TrustStore>",
            "lacks <Type>: mtls reads the format from the content",
        ),
    ],
)
def test_a_store_wso2_cannot_load_loads_with_a_warning(tmp_path, pki, caplog, store, lacks):
    """WSO2's ClientConnFactoryBuilder calls getText() on <Type> and toCharArray() on the
    passwords without a null check: a profile without them fails the whole file there
    (the NullPointerException is not skipped by ssl.profile.skip.failures). mtls loads
    it by Java's own rules, and says that WSO2 will not, so `mtls check` is a fair gate."""
    body = store.format(gw1=pki["gw1"], trust=pki["trust"], pw=PASSWORD)
    xml = write_xml(tmp_path, f"<profile><servers>a.test:443</servers>{body}</profile>")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert profiles.context_for("a.test", 443) is not None
    assert lacks in caplog.text and "NullPointerException" in caplog.text
    assert "of the profile for a.test:443 lacks" in caplog.text  # which one (h245)
    assert PASSWORD not in caplog.text
    # Twin: the same store with every element says nothing.
    caplog.clear()
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    assert "NullPointerException" not in caplog.text


def test_text_wso2_would_read_with_its_spaces_loads_with_a_warning(tmp_path, pki, caplog):
    """WSO2 uses a store setting's text as written (getText(), never trimmed): a line
    break in <Location>, as in WSO2's own mutual-SSL documentation, is a path that does
    not exist there. mtls trims it, and says WSO2 will not load the store."""
    store = (
        f"<KeyStore><Location>{pki['gw1']}\n    </Location><Type>JKS</Type>"
        f"<Password> {PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword></KeyStore>"
    )
    xml = write_xml(tmp_path, f"<profile><servers>a.test:443</servers>{store}</profile>")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert profiles.context_for("a.test", 443) is not None
    assert "<Location> and <Password> have spaces or line breaks" in caplog.text
    assert "a path that does not exist; a password that does not open" in caplog.text
    assert PASSWORD not in caplog.text
    # Twins: trimmed text, and a password the vault gives (its text is not used), say nothing.
    for password in (
        PASSWORD,
        f' <Password xmlns:svns="{mtls._wso2._VAULT_NS}" svns:secretAlias="a"> x </Password>',
    ):
        caplog.clear()
        body = profile("a.test:443", pki["gw1"])
        if password != PASSWORD:
            body = body.replace(f"<Password>{PASSWORD}</Password>", password)
        with caplog.at_level(logging.WARNING, logger="mtls"):
            SSLProfileSet.from_xml(write_xml(tmp_path, body), secret_resolver=lambda _: PASSWORD)
        assert "spaces or line breaks" not in caplog.text


def _axis2(sender: str) -> str:
    return (
        '<axisconfig name="AxisJava2.0"><transportSender name="https" '
        'class="org.apache.synapse.transport.passthru.PassThroughHttpSSLSender">'
        f"{sender}</transportSender></axisconfig>"
    )


def test_an_axis2_xml_says_which_sender_settings_it_does_not_apply(tmp_path, pki, caplog):
    inline = (
        '<parameter name="customSSLProfiles">'
        f"{profile('a.test:443', pki['gw1'], pki['trust'])}</parameter>"
    )
    xml = tmp_path / "axis2.xml"
    xml.write_text(
        _axis2(
            f'<parameter name="HostnameVerifier">AllowAll</parameter>{inline}'
            '<!-- <parameter name="keystore">commented out</parameter> -->'
        )
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert profiles.context_for("a.test", 443) is not None
    assert "not its transports' other parameters (HostnameVerifier)" in caplog.text
    # Micro Integrator's axis2.xml writes another attribute before the name.
    caplog.clear()
    xml.write_text(
        _axis2(
            f'<parameter locked="false" name="keystore"><KeyStore/></parameter>{inline}'
            "<parameter\n  locked='false'\n  name='truststore'><TrustStore/></parameter>"
        )
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    assert "not its transports' other parameters (keystore, truststore)" in caplog.text
    # Twin: a sender with nothing else to apply says nothing.
    caplog.clear()
    xml.write_text(_axis2(inline))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    assert "other parameters" not in caplog.text


def test_comments_are_dropped_in_one_pass():
    """The comment stripper for axis2.xml's settings: a lazy regex was quadratic on a
    file of unclosed "<!--" (a CDATA section of them: 80 KB took 9 s)."""
    strip = mtls._wso2._without_comments
    assert strip(b"a<!-- x -->b<!--y-->c") == b"abc"
    assert strip(b"a<!-- never closed <parameter") == b"a"
    assert strip(b"<!---->") == b"" and strip(b"plain") == b"plain"
    hostile = b"<!--" * 200_000  # one comment, never closed: the rest is dropped at once
    assert strip(b"keep" + hostile) == b"keep"


def test_an_axis2_xml_that_points_at_its_profile_file_names_it(tmp_path):
    # API Manager's axis2.xml: the sender reads sslprofiles.xml (dynamicSSLProfilesConfig).
    xml = tmp_path / "axis2.xml"
    xml.write_text(
        _axis2(
            '<parameter name="dynamicSSLProfilesConfig"><filePath>'
            "repository/resources/security/sslprofiles.xml</filePath>"
            "<fileReadInterval>600000</fileReadInterval></parameter>"
        )
    )
    named = re.escape("reads its profiles from repository/resources/security/sslprofiles.xml")
    with pytest.raises(ProfileConfigError, match=named):
        SSLProfileSet.from_xml(xml)
    xml.write_text(_axis2(""))
    with pytest.raises(ProfileConfigError, match=r"axis2\.xml without a customSSLProfiles"):
        SSLProfileSet.from_xml(xml)
    # As API Manager ships it: the listener names its own file first, in its receiver
    # (the message named listenerprofiles.xml, whose reading then refused it).
    listener = (
        '<transportReceiver name="https" class="org.apache.synapse.transport.passthru.'
        'PassThroughHttpMultiSSLListener"><parameter name="dynamicSSLProfilesConfig">'
        "<filePath>repository/resources/security/listenerprofiles.xml</filePath>"
        "</parameter></transportReceiver>"
    )
    xml.write_text(
        _axis2(
            '<parameter name="dynamicSSLProfilesConfig"><filePath>'
            "repository/resources/security/sslprofiles.xml</filePath></parameter>"
        ).replace("<transportSender", listener + "<transportSender")
    )
    with pytest.raises(ProfileConfigError, match=named):
        SSLProfileSet.from_xml(xml)
    # A wrapper or a sender-like name before the receiver, and end tags with spaces:
    # still the sender's file (a second review found the listener's named).
    for before, end in (
        (f"<transportSenders>{listener}</transportSenders>", "</transportSender\n>"),
        (
            f"<transportSenderX><filePath>x.xml</filePath></transportSenderX>{listener}",
            "</transportSender >",
        ),
    ):
        xml.write_text(
            f"<axisconfig>{before}"
            '<transportSender name="https" class="x"><parameter name="dynamicSSLProfilesConfig">'
            "<filePath >repository/resources/security/sslprofiles.xml</filePath></parameter>"
            f"{end}</axisconfig>"
        )
        with pytest.raises(ProfileConfigError, match=named):
            SSLProfileSet.from_xml(xml)
    # A sender written self-closing before the receiver: not a block that runs on into
    # the receiver's parameters (a review found the listener's file named).
    xml.write_text(
        '<axisconfig><transportSender name="local" class="x"/>'
        + listener
        + '<transportSender name="https" class="org.apache.synapse.transport.passthru.'
        'PassThroughHttpSSLSender"><parameter name="dynamicSSLProfilesConfig"><filePath>'
        "repository/resources/security/sslprofiles.xml</filePath></parameter>"
        "</transportSender></axisconfig>"
    )
    with pytest.raises(ProfileConfigError, match=named):
        SSLProfileSet.from_xml(xml)


def test_an_axis2_xml_with_inline_profiles_and_a_sender_file_says_which_wso2_uses(
    tmp_path, pki, caplog
):
    """Synapse's sender, given a dynamicSSLProfilesConfig file, uses its profiles and
    ignores the inline customSSLProfiles (found by a sweep of WSO2's files); mtls
    serves the inline ones, and now says so. The listener's file is not the one."""
    inline = (
        '<parameter name="customSSLProfiles">'
        f"{profile('a.test:443', pki['gw1'], pki['trust'])}</parameter>"
    )
    dynamic = (
        '<parameter name="dynamicSSLProfilesConfig"><filePath>'
        "repository/resources/security/sslprofiles.xml</filePath></parameter>"
    )
    xml = tmp_path / "axis2.xml"
    for sender, warned in ((inline + dynamic, True), (inline, False)):
        xml.write_text(
            _axis2(sender).replace(
                "<transportSender",
                '<transportReceiver name="https"><parameter name="dynamicSSLProfilesConfig">'
                "<filePath>listenerprofiles.xml</filePath></parameter></transportReceiver>"
                "<transportSender",
            )
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            with SSLProfileSet.from_xml(xml) as profiles:
                assert profiles.context_for("a.test", 443) is not None
        said = [
            r.getMessage() for r in caplog.records if "dynamicSSLProfilesConfig" in r.getMessage()
        ]
        assert len(said) == (1 if warned else 0), said
        if warned:
            assert "sslprofiles.xml" in said[0] and "listenerprofiles" not in said[0]


@pytest.mark.parametrize(
    ("declared", "said"),
    [
        ("PEM", "<Type>PEM</Type> is"),
        ("Secr3t-typed-here", "its <Type> (the value is not shown) is"),
    ],
)
def test_a_type_java_does_not_know_loads_with_a_warning(tmp_path, pki, caplog, declared, said):
    """mtls reads the format from the content; WSO2's KeyStore.getInstance refuses a
    type Java does not know (`mtls check` said OK). Only a format's name is shown: a
    password typed into <Type> must not reach the log."""
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], keystore_type=declared))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert profiles.context_for("a.test", 443) is not None
    assert f"{said} not a keystore type Java reads from a file" in caplog.text
    assert "Secr3t" not in caplog.text
    # Twin: Java's own types, in any case, say nothing.
    for known in ("jks", "PKCS12"):
        caplog.clear()
        xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], keystore_type=known))
        with caplog.at_level(logging.WARNING, logger="mtls"):
            SSLProfileSet.from_xml(xml)
        assert "not a keystore type Java reads" not in caplog.text


def test_what_wso2_cannot_load_is_said_once_per_store(tmp_path, pki, caplog):
    """300 profiles naming one keystore, each with its own <KeyAlias> (so 300 distinct
    <KeyStore> elements), and no <KeyPassword>: one warning, not 300."""
    profiles = "".join(
        f"<profile><servers>h{i}.test:443</servers><KeyStore><Location>{pki['gw1']}</Location>"
        f"<Type>JKS</Type><Password>{PASSWORD}</Password><KeyAlias>alias{i}</KeyAlias>"
        "</KeyStore></profile>"
        for i in range(300)
    )
    xml = write_xml(tmp_path, profiles)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        mtls._wso2.parse_profiles_xml(xml.read_bytes(), path=str(xml), base_dir=tmp_path)
    assert caplog.text.count("NullPointerException") == 1


def test_duplicate_server_names_both_profiles(tmp_path, pki):
    xml = write_xml(
        tmp_path,
        profile("a.test:443, B.test:443", pki["gw1"], pki["trust"]),
        profile("c.test:443, b.test:443", pki["gw2"], pki["trust"]),
    )
    with pytest.raises(ProfileConfigError, match="two profiles") as info:
        SSLProfileSet.from_xml(xml)
    assert "a.test:443" in str(info.value) and "c.test:443" in str(info.value)


def test_missing_servers_and_missing_location(tmp_path, pki):
    xml = write_xml(tmp_path, "<profile><KeyStore><Location>x</Location></KeyStore></profile>")
    with pytest.raises(ProfileConfigError, match="no <servers>"):
        SSLProfileSet.from_xml(xml)
    xml = write_xml(
        tmp_path,
        "<profile><servers>a:1</servers><KeyStore><Password>x</Password></KeyStore></profile>",
    )
    with pytest.raises(ProfileConfigError, match="no <Location>") as info:
        SSLProfileSet.from_xml(xml)
    assert info.value.servers == ("a:1",)


def test_missing_store_file_names_profile_and_file(tmp_path, pki):
    xml = write_xml(tmp_path, profile("a.test:443", tmp_path / "nope.jks", pki["trust"]))
    with pytest.raises(mtls.KeystoreError, match=r"nope\.jks") as info:
        SSLProfileSet.from_xml(xml)
    assert "a.test:443" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_wrong_password_names_profile_never_the_password(tmp_path, pki):
    xml = write_xml(
        tmp_path, profile("a.test:443", pki["gw1"], pki["trust"], password="Wr0ng-Secret")
    )
    with pytest.raises(mtls.WrongPasswordError) as info:
        SSLProfileSet.from_xml(xml)
    assert "a.test:443" in str(info.value)
    assert "Wr0ng-Secret" not in str(info.value)
    assert "Wr0ng-Secret" not in repr(info.value.__cause__)


@pytest.mark.parametrize(
    "store",
    [
        "<Type>JKS</Type><Password>{pw}</Password><KeyPassword>{pw}</KeyPassword>",
        "<Location>x.jks</Location><Type>JKS</Type><Password>{pw}${{nosuch:X}}</Password>",
    ],
    ids=["no-location", "unresolved-placeholder"],
)
def test_a_refused_store_element_keeps_its_password_out_of_the_whole_traceback(tmp_path, store):
    # What an application logs with logger.exception: the message and every chained
    # exception. A cache miss's KeyError (whose key holds the element's texts) rode
    # along as __context__ and printed the password.
    secret = "Pl41n-T3xt-In-The-XML"
    xml = tmp_path / "ssl.xml"
    xml.write_text(
        profile_xml(
            "<profile><servers>h.test:8443</servers>"
            f"<KeyStore>{store.format(pw=secret)}</KeyStore></profile>"
        )
    )
    with pytest.raises(mtls.MTLSError) as info:
        SSLProfileSet.from_xml(xml)
    assert secret not in "".join(traceback.format_exception(info.value))
    chained = info.value.__context__
    while chained is not None:  # no chained exception carries it either
        assert secret not in repr(chained.args)
        chained = chained.__context__


def _frames_holding(exc: BaseException | None, secret: str) -> list[str]:
    """The frames, in ``exc``'s traceback and every exception chained to it, whose
    local variables hold ``secret`` (what Sentry or capture_locals=True would print)."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code.co_name
            found += [code for value in tb.tb_frame.f_locals.values() if secret in repr(value)]
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return found


def test_a_profile_file_refused_by_a_reload_keeps_no_password_in_its_frames(tmp_path, pki):
    """The error a refused reload keeps (last_error, status()) pointed at frames whose
    locals held the file's passwords (the XML bytes, a store element's texts); a
    refusal at start-up already held none."""
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], pki["trust"]))
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        xml.write_text(xml.read_text().replace(f"<Location>{pki['gw1']}</Location>", ""))
        assert profiles.reload() is False
        error = profiles.last_error
        assert isinstance(error, ProfileConfigError)
        assert _frames_holding(error, PASSWORD) == []
        shown = traceback.TracebackException.from_exception(error, capture_locals=True)
        assert PASSWORD not in "".join(shown.format())


def test_a_reload_that_fails_unexpectedly_keeps_its_error_without_secrets(tmp_path, pki):
    """A check that fails with an exception nobody expected (here a secret resolver's
    BaseException) is kept as the cause of last_error and logged with its traceback:
    its frames' locals are cleared (they held the resolver's token), its type stays."""
    token = "Vault-T0ken-Zq81"
    body = (
        '<parameter name="customSSLProfiles" xmlns:svns="http://org.wso2.securevault/configuration">'
        f"<profile><servers>a:1</servers><KeyStore><Location>{pki['gw1']}</Location>"
        '<Password svns:secretAlias="Gw.Store">x</Password></KeyStore></profile></parameter>'
    )
    xml = tmp_path / "vault.xml"
    xml.write_text(body)
    failing = {"now": False}

    class Interrupted(BaseException):
        pass

    def resolver(alias: str) -> str:
        held = f"{token}:{alias}"  # what a vault client's frame holds
        if failing["now"]:
            raise Interrupted(len(held))
        return PASSWORD

    with SSLProfileSet.from_xml(xml, secret_resolver=resolver, settle_delay=0) as profiles:
        failing["now"] = True
        xml.write_text(body.replace("a:1", "b:2"))

        def callers_own() -> None:  # a frame of the caller's, finished, with a local
            mine = b"caller data \xff"
            mine.decode()

        caught: UnicodeDecodeError | None = None
        try:
            callers_own()
        except UnicodeDecodeError as handling:  # reload() called while handling it
            assert profiles.reload() is False
            caught = handling
        # What the caller was handling is left as it is: its input, its frames.
        assert caught is not None and caught.object == b"caller data \xff"
        frames = [f.f_locals for f, _ in traceback.walk_tb(caught.__traceback__)]
        assert {"mine": b"caller data \xff"} in frames
        error = profiles.last_error
        assert isinstance(error, ProfileConfigError) and "Interrupted" in str(error)
        assert isinstance(error.__cause__, Interrupted)
        assert _frames_holding(error, token) == []
        assert profiles.context_for("a", 1) is not None  # the last good serves on


def test_an_unexpected_codec_error_is_kept_without_the_text_it_could_not_encode() -> None:
    """A UnicodeEncodeError carries the whole string it could not encode (a password,
    once): the kept error keeps its type, position and reason, not the string."""
    from mtls._secret import escaped

    try:
        "Sekr3t-Zq81\udce4".encode()
    except UnicodeEncodeError as exc:
        kept = escaped(exc)
    assert isinstance(kept, UnicodeEncodeError)
    assert "Zq81" not in repr(kept.args) + str(kept) + repr(kept.object)
    assert "position 11" in str(kept) and "surrogates not allowed" in str(kept)
    # Held in another's args, it is shown by its repr: made fit the same way (h268).
    try:
        "Sekr3t-Zq81\udce4".encode()
    except UnicodeEncodeError as exc:
        wrapper = escaped(ValueError("cannot encode", exc))
    assert "Zq81" not in repr(wrapper) + str(wrapper)


def test_skip_failures_loads_the_rest_and_reports(tmp_path, pki):
    xml = write_xml(
        tmp_path,
        profile("good.test:443", pki["gw1"], pki["trust"]),
        profile("bad.test:443", tmp_path / "missing.jks", pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml, skip_failures=True)
    assert profiles.context_for("good.test", 443) is not None
    with pytest.raises(mtls.ProfileUnavailableError):  # fails closed (issue 12)
        profiles.context_for("bad.test", 443)
    assert isinstance(profiles.last_error, mtls.KeystoreError)
    status = profiles.status().to_dict()
    assert status["healthy"] is False
    assert [p["loaded"] for p in status["profiles"]] == [True, False]


def test_unknown_elements_are_ignored_with_a_warning(tmp_path, pki, caplog):
    xml = write_xml(
        tmp_path,
        profile(
            "a.test:443",
            pki["gw1"],
            pki["trust"],
            extra="<SSLProtocol>TLSv1.2</SSLProtocol><PreferredCiphers>x</PreferredCiphers>",
        ),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    text = caplog.text
    assert "<PreferredCiphers>" in text and "<SSLProtocol>" in text


def test_listener_profiles_file_is_refused(tmp_path):
    xml = write_xml(tmp_path, "<profile><bindAddress>0.0.0.0</bindAddress></profile>")
    xml.write_text(
        '<parameter name="SSLProfiles"><profile><bindAddress>0.0.0.0</bindAddress></profile></parameter>'
    )
    with pytest.raises(ProfileConfigError, match="not a customSSLProfiles file"):
        SSLProfileSet.from_xml(xml)


HOSTILE = {
    "billion_laughs": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">'
        '<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>'
        "<parameter><profile><servers>&lol9;</servers></profile></parameter>"
    ),
    "external_entity": (
        '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<parameter><profile><servers>&x;</servers></profile></parameter>"
    ),
    "dtd_only": '<?xml version="1.0"?><!DOCTYPE parameter SYSTEM "http://example.invalid/x.dtd"><parameter/>',
    "malformed": "<parameter><profile><servers>a:1</servers></parameter>",
    "not_xml": "root:x:0:0:root:/root:/bin/bash\n",
    "empty": "",
}


# Why each is refused: a DTD is refused when the parser meets its declaration, before
# any entity is defined, let alone expanded (what would cost minutes and gigabytes).
HOSTILE_WHY = {
    "billion_laughs": "declares a DTD",
    "external_entity": "declares a DTD",
    "dtd_only": "declares a DTD",
    "malformed": "not well-formed XML",
    "not_xml": "not well-formed XML",
    "empty": "not well-formed XML",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_and_malformed_xml_is_refused_without_echoing_content(tmp_path, name):
    xml = tmp_path / "evil.xml"
    xml.write_text(HOSTILE[name])
    with pytest.raises(ProfileConfigError, match=HOSTILE_WHY[name]) as info:
        SSLProfileSet.from_xml(xml)
    message = str(info.value)
    assert "lol" not in message and "root:x" not in message and "/etc/passwd" not in message
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, ProfileConfigError)


def test_a_file_of_too_many_tags_is_refused_before_it_is_parsed(tmp_path, pki):
    """2.8 million nested elements in an 8 MiB file took 795 MB to parse (the
    nesting is not handed over profile by profile): tags are counted first."""
    from mtls._wso2 import MAX_XML_TAGS, parse_profiles_xml

    depth = MAX_XML_TAGS // 2 + 1
    deep = tmp_path / "deep.xml"
    deep.write_bytes(b'<parameter name="customSSLProfiles">' + b"<a>" * depth + b"</a>" * depth)
    with pytest.raises(ProfileConfigError, match=r"refused: 500,00\d XML tags, more than the"):
        SSLProfileSet.from_xml(deep)
    # The twin: the same count of tags in a real file just under the limit is read.
    profile_tags = profile("a.test:1", pki["gw1"], pki["trust"]).count("<")
    many = (MAX_XML_TAGS - 10) // profile_tags
    xml = write_xml(
        tmp_path, *(profile(f"h{i}.test:1", pki["gw1"], pki["trust"]) for i in range(many))
    )
    assert xml.read_bytes().count(b"<") <= MAX_XML_TAGS
    parsed = parse_profiles_xml(xml.read_bytes(), path=str(xml), base_dir=tmp_path)
    assert len(parsed) == many
    # UTF-16: tags are counted as characters, not as bytes 0x3C (which U+043C "м"
    # holds), with a byte-order mark or without.
    text = profile_xml(profile("a.test:1", pki["gw1"], pki["trust"]))
    text = text.replace("</parameter>", "<!--" + "м" * (MAX_XML_TAGS + 1) + "--></parameter>")
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
        data = text.encode(encoding)
        assert data.count(b"<") > MAX_XML_TAGS
        assert len(parse_profiles_xml(data, path="u16.xml", base_dir=tmp_path)) == 1


@pytest.mark.parametrize("split", ["one <servers>", "across profiles"])
def test_a_file_of_too_many_server_entries_is_refused(tmp_path, pki, split):
    """One <servers> of 210,000 IPv6 entries (6 MB, under the size and tag limits)
    took 4.4 s to read, and 120,000 small profiles 1.3 s (h238): past 50,000 entries
    in the file it is refused, at the entry that crosses the limit. The twin: 50,000
    entries are read."""
    from mtls._wso2 import MAX_SERVER_ENTRIES, parse_profiles_xml

    def entries(count: int, start: int = 0) -> str:
        return ",".join(f"[2001:db8::{i:x}]:443" for i in range(start, start + count))

    for count, refused in ((MAX_SERVER_ENTRIES + 1, True), (MAX_SERVER_ENTRIES, False)):
        if split == "one <servers>":
            profiles = [profile(entries(count), pki["gw1"], pki["trust"])]
        else:
            half = count // 2
            profiles = [
                profile(entries(half), pki["gw1"], pki["trust"]),
                profile(entries(count - half, half), pki["gw1"], pki["trust"]),
            ]
        xml = write_xml(tmp_path, *profiles)
        if refused:
            with pytest.raises(ProfileConfigError, match=r"more than 50,000 <servers> entries"):
                parse_profiles_xml(xml.read_bytes(), path=str(xml), base_dir=tmp_path)
        else:
            parsed = parse_profiles_xml(xml.read_bytes(), path=str(xml), base_dir=tmp_path)
            assert sum(len(p.servers) for p in parsed) == count


def test_a_message_keeps_its_start_and_its_fix_not_megabytes(tmp_path, caplog):
    """A 6 MB <servers> text made an 18 MB ProfileConfigError, logged at every failed
    reload and printed whole (24 MB) by mtls check."""
    from mtls._errors import MAX_MESSAGE

    xml = tmp_path / "big.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers><![CDATA['
        + "x" * 1_000_000
        + "]]></servers></profile></parameter>"
    )
    with pytest.raises(ProfileConfigError) as caught:
        SSLProfileSet.from_xml(xml)
    said = str(caught.value)
    assert len(said) <= MAX_MESSAGE + 100 and "characters left out" in said
    assert said.startswith(f"{xml}: profile") and len(caught.value.reason) <= MAX_MESSAGE + 100
    # The twin: a message of ordinary length is whole.
    assert mtls.MTLSError("short").reason == "short"
    # Joined errors keep each one's start and fix, and their reasons are bounded too.
    from mtls._errors import together, with_more

    first = mtls.KeystoreError("A" * 20_000 + " FIX-A")
    both = together(first, mtls.KeystoreError("B" * 20_000 + " FIX-B"), "truststore")
    for text in (str(both), both.reason):
        assert "FIX-A" in text and "truststore was refused too" in text and "FIX-B" in text
        assert len(text) <= MAX_MESSAGE + 200
    more = with_more(first, " MORE")
    assert more.reason.endswith("MORE") and len(more.reason) <= MAX_MESSAGE + 100
    # No escape (a byte that is not UTF-8, shown as \xe9) is cut in two at either end.
    from mtls._errors import bounded

    # Log records too: a 3 MB warning was logged at every reload that met its cause.
    from mtls._log import log

    with caplog.at_level(logging.WARNING, logger="mtls"):
        log.warning("%s: %s", "a.xml", "w" * 1_000_000 + " FIX-W")
        log.warning("x" * 1_000_000 + " FIX-X")
    for record in caplog.records[-2:]:
        said = record.getMessage()
        assert len(said) <= MAX_MESSAGE + 200 and said.endswith(("FIX-W", "FIX-X"))
    escaped = bounded("\\xe9" * 6000 + "z")
    head, _, rest = escaped.partition(" ... [")
    tail = rest.split("] ... ", 1)[1]
    assert head.endswith("\\xe9") and tail.startswith("\\xe9") and tail.endswith("z")


# --------------------------------------------------------------------------- lookup


def test_lookup_order_client_exact_host_catch_all_default(tmp_path, pki):
    def store(path, *, trust=False):
        return (
            f"<{'TrustStore' if trust else 'KeyStore'}><Location>{path}</Location>"
            f"<Password>{PASSWORD}</Password></{'TrustStore' if trust else 'KeyStore'}>"
        )

    xml = write_xml(
        tmp_path,
        f"<profile><servers>api.test:443</servers>"
        f"<client><clientID>tenant-a</clientID>{store(pki['gw2'])}{store(pki['trust'], trust=True)}</client>"
        f"</profile>",
        profile("api.test:8443", pki["gw1"], pki["trust"]),
        profile("*", pki["gw1"], pki["trust"]),
    )
    default = mtls.client_context()
    profiles = SSLProfileSet.from_xml(xml, default=default)
    tenant = profiles.context_for("api.test", 443, client_id="tenant-a")
    star = profiles.context_for("anything.test", 1)
    assert tenant is not None and star is not None and tenant is not star
    # A client without its own profile falls back to the host's, then to '*'.
    assert profiles.context_for("api.test", 443, client_id="tenant-b") is star
    assert profiles.context_for("api.test", 443) is star
    assert profiles.profile_for("api.test", 443, client_id="tenant-a").client_id == "tenant-a"
    assert profiles.profile_for("api.test", 8443).servers == (("api.test", 8443),)
    # The '*' profile wins over the default; the default applies only without '*'.
    assert profiles.context_for("nowhere.test", 9) is star
    no_star = SSLProfileSet.from_xml(
        write_xml(tmp_path, profile("api.test:8443", pki["gw1"], pki["trust"])), default=default
    )
    assert no_star.context_for("nowhere.test", 9) is default
    assert no_star.profile_for("nowhere.test", 9) is None


def _client(client_id: str | None, keystore: Path, truststore: Path | None = None, attrs: str = ""):
    """A ``<client>`` of WSO2's 2025 form (no ``<clientID>`` when ``client_id`` is None)."""
    parts = [f"<client{(' ' + attrs) if attrs else ''}>"]
    if client_id is not None:
        parts.append(f"<clientID>{client_id}</clientID>")
    parts.append(
        f"<KeyStore><Location>{keystore}</Location><Password>{PASSWORD}</Password></KeyStore>"
    )
    if truststore is not None:
        parts.append(
            f"<TrustStore><Location>{truststore}</Location>"
            f"<Password>{PASSWORD}</Password></TrustStore>"
        )
    return "".join(parts) + "</client>"


def test_profile_novalidatecert_does_not_reach_its_clients(tmp_path, pki, backend, caplog):
    # WSO2 reads novalidatecert on each <client> only: a profile-level one turns nothing off.
    server = f"localhost:{backend.port}"
    xml = write_xml(
        tmp_path,
        profile(
            server,
            attrs='novalidatecert="true"',
            extra=_client("strict", pki["gw1"])
            + _client("lax", pki["gw2"], attrs='novalidatecert="true"'),
        ),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert "applies to none of them" in caplog.text
    strict = profiles.context_for("localhost", backend.port, client_id="strict")
    lax = profiles.context_for("localhost", backend.port, client_id="lax")
    assert strict is not None and lax is not None
    # No truststore and verification on: the backend's private CA is not trusted.
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(strict, backend.port)
    assert whoami(lax, backend.port)["client_cn"] == "gateway-two"


@pytest.mark.parametrize("value", ["TRUE", "True", "yes", " true"])
def test_novalidatecert_spelled_otherwise_verifies_and_says_so(
    tmp_path, pki, backend, caplog, value
):
    # WSO2 turns verification off for the exact string "true" only: another spelling
    # of true verifies there, and here (the safe reading), with a warning, since it
    # looks meant. Its twin: "true" turns it off; "false" is silent.
    server = f"localhost:{backend.port}"
    xml = write_xml(
        tmp_path,
        profile(server, pki["gw1"], attrs=f'novalidatecert="{value}"')
        + profile(
            "other.test:443",
            attrs="",
            extra=_client("c", pki["gw2"], attrs=f'novalidatecert="{value}"'),
        ),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    said = [r.getMessage() for r in caplog.records if 'is not "true"' in r.getMessage()]
    assert len(said) == 2, said
    assert f'novalidatecert="{value}" is not "true", so WSO2 verifies' in said[0]
    assert "<client>" in said[1]
    ctx = profiles.context_for("localhost", backend.port)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(ctx, backend.port)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        exact = write_xml(tmp_path, profile(server, pki["gw1"], attrs='novalidatecert="true"'))
        lax = SSLProfileSet.from_xml(exact).context_for("localhost", backend.port)
        off = write_xml(tmp_path, profile(server, pki["gw1"], attrs='novalidatecert="false"'))
        assert SSLProfileSet.from_xml(off).context_for("localhost", backend.port) is not None
    assert 'is not "true"' not in caplog.text
    assert lax is not None and whoami(lax, backend.port)["client_cn"] == "gateway-one"


def test_client_without_client_id_serves_requests_without_one(tmp_path, pki, backend):
    # WSO2 keys a <client> without <clientID> as "": the key of requests without one.
    xml = write_xml(
        tmp_path,
        profile(
            f"localhost:{backend.port}",
            extra=_client(None, pki["gw2"], pki["trust"])
            + _client("tenant-a", pki["gw1"], pki["trust"]),
        ),
    )
    profiles = SSLProfileSet.from_xml(xml)
    anonymous = profiles.context_for("localhost", backend.port)
    assert anonymous is not None
    assert whoami(anonymous, backend.port)["client_cn"] == "gateway-two"
    assert profiles.context_for("localhost", backend.port, client_id="tenant-b") is anonymous
    tenant = profiles.context_for("localhost", backend.port, client_id="tenant-a")
    assert tenant is not None and tenant is not anonymous
    assert whoami(tenant, backend.port)["client_cn"] == "gateway-one"
    # Two of them in one profile are the same key twice: refused, and said as it is.
    twice = write_xml(
        tmp_path,
        profile(f"localhost:{backend.port}", extra=_client(None, pki["gw2"]) * 2),
    )
    with pytest.raises(ProfileConfigError) as caught:
        SSLProfileSet.from_xml(twice)
    assert str(caught.value) == (
        f"{twice}: the profile for (localhost:{backend.port}) has two <client> entries "
        "without a <clientID>: WSO2 would silently let one win; keep one"
    )
    assert caught.value.element == "client"
    named = write_xml(
        tmp_path,
        profile(
            f"localhost:{backend.port}",
            extra=_client("tenant-a", pki["gw2"]) + _client("tenant-a", pki["gw1"]),
        ),
    )
    with pytest.raises(ProfileConfigError, match="two <client> entries for client 'tenant-a'"):
        SSLProfileSet.from_xml(named)
    # The same servers in two <profile> elements are still two profiles.
    two = write_xml(
        tmp_path,
        profile(f"localhost:{backend.port}", extra=_client("tenant-a", pki["gw2"])),
        profile(f"localhost:{backend.port}", extra=_client("tenant-a", pki["gw1"])),
    )
    with pytest.raises(ProfileConfigError, match="appears in two profiles"):
        SSLProfileSet.from_xml(two)
    # Two profiles that name only the shared server are told apart by name and order
    # (the message read "in two profiles (x) and (x)").
    named_two = write_xml(
        tmp_path,
        profile(f"localhost:{backend.port}").replace("<profile>", '<profile name="orders">'),
        profile(f"localhost:{backend.port}"),
    )
    with pytest.raises(ProfileConfigError) as caught:
        SSLProfileSet.from_xml(named_two)
    assert f"one named 'orders' (localhost:{backend.port}) and a later one" in str(caught.value)


def test_names_one_host_only_to_dns_are_refused_as_one_without_blaming_wso2(tmp_path):
    """``A.test:443`` and ``a.test.:443`` are one host to DNS (and to mtls's lookups);
    WSO2 compares the text and keeps them apart: the message says which rule refuses
    them, where it used to say that WSO2 lets one win."""
    xml = write_xml(tmp_path, profile("A.test:443"), profile("a.test.:443"))
    with pytest.raises(ProfileConfigError, match="appears in two profiles") as caught:
        SSLProfileSet.from_xml(xml)
    assert "as DNS does, without case or a final dot" in str(caught.value)
    assert "WSO2 compares the text as written" in str(caught.value)
    # The twin: two different hosts load.
    with SSLProfileSet.from_xml(write_xml(tmp_path, profile("a.test:443"), profile("b.test:443"))):
        pass


def test_star_profile_clients_are_never_looked_up(tmp_path, pki, backend, caplog):
    # WSO2 asks '*' without a client only (ClientConnFactory.getSSLContext).
    xml = write_xml(
        tmp_path,
        profile("*", extra=_client("tenant-a", pki["gw2"], pki["trust"])),
        profile("*", pki["gw1"], pki["trust"]),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert "client 'tenant-a' is never used" in caplog.text
    ctx = profiles.context_for("localhost", backend.port, client_id="tenant-a")
    assert ctx is profiles.context_for("localhost", backend.port)
    assert ctx is not None and whoami(ctx, backend.port)["client_cn"] == "gateway-one"
    # Without a '*' profile for requests without a client: the default, not the client's.
    alone = SSLProfileSet.from_xml(
        write_xml(tmp_path, profile("*", extra=_client("tenant-a", pki["gw2"], pki["trust"])))
    )
    assert alone.context_for("localhost", backend.port, client_id="tenant-a") is None
    assert alone.profile_for("localhost", backend.port, client_id="tenant-a") is None


def test_context_for_url_ports_and_schemes(tmp_path, pki):
    xml = write_xml(tmp_path, profile("api.test:443, api.test:8443", pki["gw1"], pki["trust"]))
    profiles = SSLProfileSet.from_xml(xml)
    ctx = profiles.context_for("api.test", 443)
    assert profiles.context_for_url("https://API.test/path?q=1") is ctx
    assert profiles.context_for_url("https://api.test:8443/") is ctx
    assert profiles.context_for_url("wss://api.test/socket") is ctx
    assert profiles.context_for_url("http://api.test:443/") is None
    assert profiles.context_for_url("https://api.test:444/") is None
    with pytest.raises(ValueError, match="no host"):
        profiles.context_for_url("https:///nohost")


def test_profiles_share_contexts_by_content(tmp_path, pki):
    copy = tmp_path / "copy-of-gw1.jks"
    copy.write_bytes(Path(pki["gw1"]).read_bytes())
    xml = write_xml(
        tmp_path,
        *[profile(f"h{i}.test:443", pki["gw1"], pki["trust"]) for i in range(40)],
        profile("copy.test:443", copy, pki["trust"]),
        profile("other.test:443", pki["gw2"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml)
    contexts = {id(profiles.context_for(f"h{i}.test", 443)) for i in range(40)}
    assert len(contexts) == 1
    # Same bytes under another path: still the same context (keyed on content, not path).
    assert profiles.context_for("copy.test", 443) is profiles.context_for("h0.test", 443)
    assert profiles.context_for("other.test", 443) is not profiles.context_for("h0.test", 443)
    assert len(profiles.contexts()) == 2


def test_profiles_built_in_code(tmp_path, pki, backend):
    ks = StoreConfig(location=pki["gw1"], password=PASSWORD)
    ts = StoreConfig(location=pki["trust"], password=PASSWORD)
    profiles = SSLProfileSet(
        [SSLProfile(servers=(f"localhost:{backend.port}",), keystore=ks, truststore=ts)]
    )
    assert (
        whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"]
        == "gateway-one"
    )
    assert "Pa55" not in repr(profiles.profiles[0])
    with pytest.raises(ProfileConfigError, match="no port"):
        SSLProfile(servers=("localhost",))
    with pytest.raises(ProfileConfigError, match="at least one server"):
        SSLProfile(servers=())
    assert list(profiles) == list(profiles.profiles)


def test_a_relative_location_in_code_is_resolved_once(tmp_path, pki, backend, monkeypatch):
    """``StoreConfig(location="gw.jks")``: each reload opened the path again, relative
    to the working directory of the moment, so a daemon that changed directory after
    making its set presented another directory's keystore. It is resolved when the
    config is made, as from_xml resolves against its base_dir."""
    import shutil

    first, second = tmp_path / "first", tmp_path / "second"
    for d, store in ((first, pki["gw1"]), (second, pki["gw2"])):
        d.mkdir()
        shutil.copy(store, d / "gw.jks")
    monkeypatch.chdir(first)
    ks = StoreConfig(location="gw.jks", password=PASSWORD)
    assert ks.location == first / "gw.jks"
    ts = StoreConfig(location=pki["trust"], password=PASSWORD)
    profiles = SSLProfileSet(
        [SSLProfile(servers=(f"localhost:{backend.port}",), keystore=ks, truststore=ts)]
    )
    cn = whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"]
    assert cn == "gateway-one"
    monkeypatch.chdir(second)
    assert profiles.reload() is False  # nothing moved: the same file
    cn = whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"]
    assert cn == "gateway-one"
    # Twin: a config made in the second directory names its own file.
    assert StoreConfig(location="gw.jks").location == second / "gw.jks"


# --------------------------------------------------------------------------- hostname modes


@pytest.mark.parametrize(
    ("mode", "name", "ok"),
    [
        ("Strict", "backend.test", True),
        ("Strict", "localhost", False),
        ("Strict", "wrong.test", False),
        ("Default", "backend.test", True),
        ("default", "wrong.test", False),
        ("DefaultAndLocalhost", "localhost", True),
        ("DefaultAndLocalhost", "backend.test", True),
        ("DefaultAndLocalhost", "wrong.test", False),
        ("allowall", "wrong.test", True),
        ("AllowAll", "localhost", True),
    ],
)
def test_hostname_modes(tmp_path, pki, mode, name, ok):
    """The backend's certificate names only backend.test; the chain is always verified."""
    ca: CA = pki["ca"]  # type: ignore[assignment]
    named = ca.issue_cert("backend.test", common_name="backend.test")
    with MTLSServer(named, client_ca=ca) as server:
        xml = write_xml(tmp_path, profile(f"{name}:{server.port}", pki["gw1"], pki["trust"]))
        profiles = SSLProfileSet.from_xml(xml, hostname_verifier=mode)
        ctx = profiles.context_for(name, server.port)
        if ok:
            assert whoami(ctx, server.port, host=name)["client_cn"] == "gateway-one"
        else:
            with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
                whoami(ctx, server.port, host=name)


def test_allow_all_still_verifies_the_chain(tmp_path, pki, backend):
    xml = write_xml(tmp_path, profile(f"wrong.test:{backend.port}", pki["gw1"], pki["other_trust"]))
    ctx = SSLProfileSet.from_xml(xml, hostname_verifier="AllowAll").context_for(
        "wrong.test", backend.port
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(ctx, backend.port, host="wrong.test")


def test_unknown_hostname_verifier(tmp_path, pki):
    xml = write_xml(tmp_path, profile("a:1", pki["gw1"], pki["trust"]))
    with pytest.raises(ValueError, match="DefaultAndLocalhost"):
        SSLProfileSet.from_xml(xml, hostname_verifier="Lenient")


def test_novalidatecert_without_truststore_turns_verification_off(tmp_path, pki, backend, caplog):
    xml = write_xml(
        tmp_path,
        profile(f"localhost:{backend.port}", pki["gw1"], None, attrs='novalidatecert="true"'),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        ctx = SSLProfileSet.from_xml(xml).context_for("localhost", backend.port)
    assert "NOT verified" in caplog.text
    assert ctx.verify_mode == ssl.CERT_NONE
    assert whoami(ctx, backend.port)["client_cn"] == "gateway-one"
    # With a TrustStore, the TrustStore wins (WSO2): verification stays on.
    xml2 = write_xml(
        tmp_path,
        profile(
            f"localhost:{backend.port}",
            pki["gw1"],
            pki["other_trust"],
            attrs='novalidatecert="true"',
        ),
    )
    strict = SSLProfileSet.from_xml(xml2).context_for("localhost", backend.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        whoami(strict, backend.port)


def test_novalidatecert_without_truststore_reads_no_default_truststore(tmp_path, pki, backend):
    """Verification off: the set's default truststore was loaded, watched and shown in
    status() as the profile's anchors, and a broken one failed the profile, which never
    uses it (h282; WSO2 trusts all there and reads none)."""
    broken = tmp_path / "broken-trust.jks"
    broken.write_bytes(b"not a truststore")
    default_trust = mtls.StoreConfig(location=broken, password=PASSWORD)
    off = mtls.SSLProfile(
        servers=(f"localhost:{backend.port}",),
        keystore=mtls.StoreConfig(location=pki["gw1"], password=PASSWORD),
        novalidatecert=True,
    )
    with SSLProfileSet([off], default_truststore=default_trust, reload_interval=None) as profiles:
        ctx = profiles.context_for("localhost", backend.port)
        assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
        assert whoami(ctx, backend.port)["client_cn"] == "gateway-one"
        (entry,) = profiles.status().profiles
        assert [f.role for f in entry.files] == ["keystore"]
        assert entry.anchors == () and entry.healthy
    # The twin: a profile that verifies uses the default truststore, and fails on it.
    on = dataclasses.replace(off, novalidatecert=False)
    with pytest.raises(mtls.KeystoreError, match=r"broken-trust\.jks"):
        SSLProfileSet([on], default_truststore=default_trust, reload_interval=None)


def test_key_alias_picks_one_of_several_keys(tmp_path, pki, backend):
    ca: CA = pki["ca"]  # type: ignore[assignment]
    ks = mtls.Keystore()
    for cn in ("first", "second"):
        ident = ca.issue_cert(cn, common_name=cn)
        ks.add_key(cn, ident.private_key, ident.chain)
    both = tmp_path / "both.jks"
    ks.save(both, PASSWORD)
    body = profile(f"localhost:{backend.port}", both, pki["trust"]).replace(
        "</KeyStore>", "<KeyAlias>second</KeyAlias></KeyStore>"
    )
    ctx = SSLProfileSet.from_xml(write_xml(tmp_path, body)).context_for("localhost", backend.port)
    assert whoami(ctx, backend.port)["client_cn"] == "second"
    # Without KeyAlias, two keys are ambiguous: the error lists them, and says how to
    # choose in the file (it said "alias=", which a profile file has no way to write).
    with pytest.raises(
        mtls.KeyEntryError,
        match=r"'first', 'second'.*<KeyAlias>first</KeyAlias> in the <KeyStore>",
    ):
        SSLProfileSet.from_xml(write_xml(tmp_path, profile("a:1", both, pki["trust"])))


# --------------------------------------------------------------------------- deployment.toml


def test_deployment_toml_api_manager(tmp_path, pki, backend):
    home = tmp_path / "home"
    sec = home / "repository" / "resources" / "security"
    sec.mkdir(parents=True)
    os.symlink(pki["gw1"], sec / "gw1.jks")
    os.symlink(pki["trust"], sec / "client-truststore.jks")
    (sec / "sslprofiles.xml").write_text(
        profile_xml(
            profile(f"localhost:{backend.port}", Path("repository/resources/security/gw1.jks"))
        )
    )
    toml = home / "deployment.toml"
    toml.write_text(
        "[transport.passthru_https.sender.ssl_profile]\n"
        'file_path = "repository/resources/security/sslprofiles.xml"\n'
        "interval = 600000\n"
        "[transport.passthru_https.sender.parameters]\n"
        'HostnameVerifier = "DefaultAndLocalhost"\n'
        "[keystore.tls]\n"  # API Manager: a name in repository/resources/security/
        'file_name = "gw1.jks"\n'
        f'password = "{PASSWORD}"\nkey_password = "$env{{MTLS_TEST_KEYPASS}}"\n'
        "[truststore]\n"
        'file_name = "client-truststore.jks"\n'
        f'password = "{PASSWORD}"\n'
    )
    os.environ["MTLS_TEST_KEYPASS"] = PASSWORD
    try:
        with SSLProfileSet.from_deployment_toml(toml, base_dir=home) as profiles:
            assert profiles.reloading
            assert profiles.status().to_dict()["hostname_verifier"] == "DefaultAndLocalhost"
            # The profile has no TrustStore: [truststore] is its trust.
            assert (
                whoami(profiles.context_for("localhost", backend.port), backend.port)["client_cn"]
                == "gateway-one"
            )
            # No profile matches: the sender's default identity ([keystore.tls]) is used.
            assert profiles.context_for("unlisted.test", 443) is not None
        assert not profiles.reloading
    finally:
        del os.environ["MTLS_TEST_KEYPASS"]


def test_deployment_toml_micro_integrator_spelling(tmp_path, pki):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sender.xml").write_text(
        profile_xml(profile("a.test:443", pki["gw1"], pki["trust"]))
    )
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[transport.http]\nsender.ssl_profile.file_path = "conf/sender.xml"\n'
        'sender.ssl_profile.read_interval = "15000"\nsender.hostname_verifier = "AllowAll"\n'
    )
    profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None)
    assert not profiles.reloading
    assert profiles.status().to_dict()["hostname_verifier"] == "AllowAll"
    assert profiles.context_for("a.test", 443).check_hostname is False


def test_deployment_toml_errors(tmp_path, caplog):
    toml = tmp_path / "deployment.toml"
    toml.write_text("[server]\nhostname = 'x'\n")
    with pytest.raises(ProfileConfigError, match="file_path"):
        SSLProfileSet.from_deployment_toml(toml)
    toml.write_text("[server\n")
    with pytest.raises(ProfileConfigError, match="not valid TOML"):
        SSLProfileSet.from_deployment_toml(toml)
    # A profile file passed as deployment.toml is named for what it is (twin: the
    # broken TOML above is not called XML).
    toml.write_text('\n <?xml version="1.0"?>\n<parameter name="customSSLProfiles"/>\n')
    with pytest.raises(ProfileConfigError, match=r"this is XML, not TOML.*from_xml"):
        SSLProfileSet.from_deployment_toml(toml)
    with pytest.raises(ProfileConfigError, match="no such file"):
        SSLProfileSet.from_deployment_toml(tmp_path / "missing.toml")
    toml.write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "x.xml"\ninterval = "soon"\n'
    )
    with pytest.raises(ProfileConfigError, match="milliseconds") as caught:
        SSLProfileSet.from_deployment_toml(toml)
    # int()'s ValueError quotes the value (a resolved $secret{} may be one): it was kept
    # as the error's __context__, reachable though never printed.
    assert caught.value.__context__ is None
    # An unknown HostnameVerifier is warned about, quoted within bounds.
    toml.write_text(
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "' + "V" * 70_000 + '"\n'
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "x.xml"\n'
    )
    with caplog.at_level("WARNING", logger="mtls"):
        with contextlib.suppress(mtls.MTLSError):
            SSLProfileSet.from_deployment_toml(toml)
    (warning,) = [r.getMessage() for r in caplog.records if "HostnameVerifier" in r.getMessage()]
    assert "V" * 60 + "..." in warning and len(warning) < 1000
    # An integer past Python's 4,300-digit limit: tomllib raises a bare ValueError.
    toml.write_text("[server]\noffset = " + "1" * 4301 + "\n")
    with pytest.raises(ProfileConfigError, match="more digits than any setting"):
        SSLProfileSet.from_deployment_toml(toml)


# --------------------------------------------------------------------------- WSO2's own files


@pytest.mark.fixtures
@pytest.mark.skipif(not WSO2.is_dir(), reason=f"{WSO2} is not present (MTLS_WSO2_FIXTURES)")
def test_wso2_shipped_profile_file_loads(tmp_path):
    sec = tmp_path / "repository" / "resources" / "security"
    sec.mkdir(parents=True)
    for name in ("wso2carbon.jks", "client-truststore.jks"):
        os.symlink(WSO2 / name, sec / name)
    profiles = SSLProfileSet.from_xml(WSO2 / "sslprofiles.xml", base_dir=tmp_path)
    (only,) = profiles.profiles
    assert only.servers == ("*",)
    ctx = profiles.context_for("any.backend.example", 8243)
    assert ctx is not None and len(ctx.get_ca_certs()) >= 140
    assert profiles.status().to_dict()["profiles"][0]["subject"].startswith("CN=localhost")


@pytest.mark.fixtures
@pytest.mark.skipif(not WSO2.is_dir(), reason=f"{WSO2} is not present (MTLS_WSO2_FIXTURES)")
def test_wso2_untrusted_endpoint_is_refused(tmp_path):
    """endpoint.jks is not in client-truststore.jks: a backend serving it is refused."""
    sec = tmp_path / "repository" / "resources" / "security"
    sec.mkdir(parents=True)
    for name in ("wso2carbon.jks", "client-truststore.jks"):
        os.symlink(WSO2 / name, sec / name)
    endpoint = mtls.Keystore.load(WSO2 / "endpoint.jks", "wso2carbon")
    trust = mtls.Truststore.load(WSO2 / "client-truststore.jks")
    with MTLSServer(endpoint, client_ca=trust, require_client_cert=False) as server:
        profiles = SSLProfileSet.from_xml(WSO2 / "sslprofiles.xml", base_dir=tmp_path)
        with pytest.raises(ssl.SSLCertVerificationError):
            whoami(profiles.context_for("localhost", server.port), server.port)


def test_deployment_toml_with_a_candidate_profile_file(tmp_path, pki):
    candidate = tmp_path / "candidate.xml"
    candidate.write_text(profile_xml(profile("new.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"
    toml.write_text('[transport.passthru_https.sender.parameters]\nHostnameVerifier = "AllowAll"\n')
    profiles = SSLProfileSet.from_deployment_toml(
        toml, profiles_path=candidate, reload_interval=None
    )
    assert profiles.context_for("new.test", 443) is not None
    assert profiles.status().to_dict()["hostname_verifier"] == "AllowAll"
    assert profiles.failures == ()


def test_contexts_lists_the_default_too(tmp_path, pki):
    default = mtls.client_context()
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], pki["trust"]))
    profiles = SSLProfileSet.from_xml(xml, default=default)
    assert default in profiles.contexts()
    assert profiles.context_for("a.test", 443) in profiles.contexts()


def test_profile_servers_given_as_tuples_are_validated():
    profile_ = SSLProfile(servers=(("Backend.Test", 8443), "*", "[::1]:443"))
    assert profile_.servers == (("backend.test", 8443), "*", ("::1", 443))
    for bad in ((("", 443),), (("host", 0),), (("host", 70000),)):
        with pytest.raises(ProfileConfigError, match="1 to 65535"):
            SSLProfile(servers=bad)


def test_deployment_toml_secret_placeholders_go_through_the_resolver(tmp_path, pki):
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        f'[keystore.tls]\nfile_name = "{pki["gw2"]}"\npassword = "$secret{{keystore_password}}"\n'
    )
    vault = {"keystore_password": PASSWORD}
    profiles = SSLProfileSet.from_deployment_toml(
        toml, base_dir=tmp_path, secret_resolver=vault.get, reload_interval=None
    )
    assert profiles.context_for("unlisted.test", 443) is not None  # the [keystore.tls] default
    with pytest.raises(ProfileConfigError, match=r"\$secret\{keystore_password\}"):
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None)
    with pytest.raises(ProfileConfigError, match="does not know"):
        SSLProfileSet.from_deployment_toml(
            toml, base_dir=tmp_path, secret_resolver={}.get, reload_interval=None
        )

    def broken(alias: str) -> object:
        return 42

    with pytest.raises(ProfileConfigError, match="returned a int"):
        SSLProfileSet.from_deployment_toml(
            toml, base_dir=tmp_path, secret_resolver=broken, reload_interval=None
        )


def test_unknown_hostname_verifier_in_deployment_toml_falls_back_to_default(tmp_path, pki, caplog):
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "DefaultAndLocalHostX"\n'
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None)
    assert profiles.status().to_dict()["hostname_verifier"] == "Default"
    assert "DefaultAndLocalHostX" in caplog.text


@pytest.mark.parametrize("written", [" AllowAll", "AllowAll ", "\tDefaultAndLocalhost"])
def test_a_hostname_verifier_with_spaces_is_default_as_in_wso2(tmp_path, pki, caplog, written):
    """WSO2's template writes the value as it is and Synapse compares it with
    equalsIgnoreCase: " AllowAll" is none of its values, so it checks names (Default).
    mtls trimmed it and turned the name check off (h140, HIGH). The twin: "AllowAll"."""
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"

    def verifier(value: str) -> tuple[str, bool]:
        toml.write_text(
            '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
            f"[transport.passthru_https.sender.parameters]\nHostnameVerifier = {json.dumps(value)}\n"
        )
        with SSLProfileSet.from_deployment_toml(
            toml, base_dir=tmp_path, reload_interval=None
        ) as profiles:
            mode = profiles.status().to_dict()["hostname_verifier"]
            return str(mode), profiles.context_for("a.test", 443).check_hostname

    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert verifier(written) == ("Default", True)
    assert "has spaces around it" in caplog.text and "uses Default" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert verifier(written.strip()) == (written.strip(), written.strip() != "AllowAll")
    assert "has spaces around" not in caplog.text


@pytest.mark.parametrize("target", [" AllowAll", "AllowAll"])
def test_a_hostname_verifier_through_ref_keeps_its_spaces(tmp_path, pki, target):
    """$ref{} hands WSO2's template the value it names as written: " AllowAll" reached
    through one is Default too (h143: the reference came back trimmed, AllowAll)."""
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        f'[custom]\nhv = "{target}"\n'
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "$ref{custom.hv}"\n'
    )
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None) as got:
        checked = got.context_for("a.test", 443).check_hostname
    assert checked is (target != "AllowAll")


@pytest.mark.parametrize(
    ("table", "key", "value", "means"),
    [
        ("keystore.tls", "file_name", "gw.jks ", "a path that does not exist"),
        ("keystore.tls", "type", "JKS ", "a store type Java does not know"),
        ("transport.passthru_https.sender.ssl_profile", "file_path", " p.xml",
         "a path that does not exist"),
    ],
)  # fmt: skip
def test_a_toml_value_with_spaces_loads_with_wso2s_refusal_said(
    tmp_path, pki, caplog, table, key, value, means
):
    """WSO2's template writes a store's file name and type, and the profile file's
    path, as written: Java then opens "gw.jks " and asks for a "JKS " store, and the
    sender does not start. mtls trimmed them without a word (h140); a profile file's
    <Location> with spaces had the warning already. The twin: the same file without
    the spaces says nothing."""
    import shutil

    security = tmp_path / "repository" / "resources" / "security"
    security.mkdir(parents=True)
    shutil.copyfile(pki["gw1"], security / "gw.jks")
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    settings = {
        ("keystore.tls", "file_name"): "gw.jks",
        ("keystore.tls", "type"): "JKS",
        ("keystore.tls", "password"): PASSWORD,
        ("keystore.tls", "key_password"): PASSWORD,
        ("transport.passthru_https.sender.ssl_profile", "file_path"): "p.xml",
    }
    toml = tmp_path / "deployment.toml"

    def load(spaced: dict[tuple[str, str], str]) -> str:
        tables: dict[str, list[str]] = {}
        for (name, setting), text in {**settings, **spaced}.items():
            tables.setdefault(name, []).append(f"{setting} = {json.dumps(text)}")
        toml.write_text(
            "".join(f"[{t}]\n" + "\n".join(lines) + "\n" for t, lines in tables.items())
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mtls"):
            SSLProfileSet.from_deployment_toml(
                toml, base_dir=tmp_path, reload_interval=None
            ).close()
        return caplog.text

    said = load({(table, key): value})
    assert f"[{table}] {key} has spaces around its value" in said
    assert means in said and "WSO2" in said
    assert "has spaces around" not in load({})


def test_an_empty_environment_variable_is_set_in_deployment_toml(tmp_path, pki, monkeypatch):
    """The twin of the profile file's rule: WSO2's config mapper replaces $env{NAME}
    with an empty value too, so the path it makes is the one mtls opens."""
    monkeypatch.setenv("MTLS_TEST_SUFFIX", "")
    (tmp_path / "p.xml").write_text(profile_xml(profile("a.test:443", pki["gw1"], pki["trust"])))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p$env{MTLS_TEST_SUFFIX}.xml"\n'
    )
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, reload_interval=None) as got:
        assert got.context_for("a.test", 443) is not None


def test_ipv6_server_without_brackets_gets_a_useful_hint() -> None:
    with pytest.raises(mtls.ProfileConfigError, match=r"\[::1\]:8443"):
        mtls.SSLProfile(servers=("::1:8443",))
    assert mtls.SSLProfile(servers=("[::1]:8443",)).servers == (("::1", 8443),)  # its twin


@pytest.mark.parametrize("port", ["0443", "+443", "\u0664\u0664\u0663", "4_43", "65536", "0"])
def test_a_port_wso2_would_never_match_is_refused(port):
    """WSO2 compares host:port as text: a port written with a sign, a leading zero or
    digits other than 0-9 never matches there. The twin: the plain port loads."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError, match="plain digits"):
        parse_server(f"a.test:{port}", path="p.xml")
    assert parse_server("a.test:443", path="p.xml") == ("a.test", 443)


@pytest.mark.parametrize("entry", ["*.example.com:443", "*:443", "a b.example:443"])
def test_an_entry_that_can_never_match_loads_with_a_warning(entry, caplog):
    """'*' inside a name is not a wildcard in WSO2 (only '*' alone is the catch-all):
    such an entry loads, as in WSO2, and mtls says it will never match. The twin: an
    ordinary name loads without a word."""
    from mtls._config import parse_server

    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_server(entry, path="p.xml")
    assert "never matches" in caplog.text and entry in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_server("api.example.com:443", path="p.xml")
    assert caplog.text == ""


def test_names_are_normalised_the_same_way_twice(caplog):
    """An ideographic full stop becomes '.' in IDNA: a trailing one must not leave a
    dot a lookup strips. A space next to the port is trimmed, with a warning: WSO2
    trims the entry, not the name inside it, so it never matches there (it loaded
    silently: a file that worked under mtls failed under WSO2)."""
    from mtls._config import normalize_host, parse_server

    assert parse_server("\u00fc.example\u3002:443") == ("xn--tda.example", 443)
    assert normalize_host("\u00fc.example\u3002") == "xn--tda.example"
    assert normalize_host(normalize_host("\u00ea.")) == normalize_host("\u00ea.")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert parse_server("h :443", path="p.xml") == ("h", 443)
    assert "'h :443' has spaces around its name" in caplog.text
    assert "mtls reads it as h:443" in caplog.text


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("::1", "write [::1]:443;"),
        ("[::1]8443", "write [::1]:8443;"),
        ("[::1]:", "write [::1]:443;"),
        ("2001:db8::1:8443", "(or [2001:db8::1]:8443 if 8443 was the port)"),
        ("backend.example", "write backend.example:443;"),
    ],
)
def test_an_entry_without_a_port_is_told_what_to_write(entry, hint):
    """The hint was built from the text as if it were always a name: '::1' got
    "write [::1]:443 (or [:]:1 if 1 was the port)", '[::1]8443' got "write
    [[::1]8443]:443"."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError, match="has no port") as info:
        parse_server(entry, path="p.xml")
    assert hint in str(info.value)
    assert "[[" not in str(info.value) and "[:]" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("https://orders.internal:8443", "write host:port (orders.internal:8443)"),
        ("HTTPS://Orders.Internal/api/v1", "write host:port (orders.internal:443)"),
        ("http://[::1]:8080/x", "write host:port ([::1]:8080)"),
        ("https://a.test:bad/", "write host:port"),
        ("http://[::1", "write host:port"),
        ("https://svc:S3cret-pw@orders.internal:8443/api", "(orders.internal:8443)"),
    ],
)
def test_a_url_in_servers_is_told_the_host_port_to_write(entry, hint):
    """A URL pasted into <servers> never matches (WSO2 compares host:port as text). It
    was read as an IPv6 address without a port: "write [https://a.test:443]:443; IPv6
    addresses go in brackets". The twin: the host:port it names loads."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError, match="is a URL, so it would never match") as info:
        parse_server(entry, path="p.xml")
    message = str(info.value)
    assert message.endswith(hint) and "[https" not in message and "IPv6" not in message
    assert "S3cret-pw" not in message + repr(info.value.servers)  # user:password@ masked
    if "(" in hint:
        host_port = hint.split("(")[1].rstrip(")")
        assert parse_server(host_port) == parse_server(host_port.lower())


@pytest.mark.parametrize("entry", ["user@orders.internal:8443", "orders.internal/api:8443"])
def test_a_name_with_user_info_or_a_path_is_said_never_to_match(entry, caplog):
    """WSO2 compares host:port as text: "user@orders.internal:8443" matches no request,
    and loaded without a word. The twin: the plain name is not warned about."""
    from mtls._config import parse_server

    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_server(entry, path="p.xml")
        parse_server("orders.internal:8443", path="p.xml")
    (said,) = [r.getMessage() for r in caplog.records]
    assert f"server {entry!r} never matches a request" in said


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"novalidatecert": "false"}, "novalidatecert must be True or False, not 'false'"),
        ({"novalidatecert": None}, "novalidatecert must be True or False, not None"),
        ({"keystore": "client.jks"}, "keystore must be an mtls.StoreConfig or None, not str"),
        ({"truststore": mtls.Truststore()}, "a loaded store cannot be"),
        ({"client_id": 7}, "client_id must be a str or None, not int"),
    ],
)
def test_a_profile_made_in_code_refuses_wrong_types_at_once(given, said):
    """novalidatecert="false" (text from the environment) is truthy: the profile turned
    verification off, and the log said novalidatecert="true". A path or a loaded store
    given as keystore or truststore was taken, then the set failed to build with an
    AttributeError. Each is a TypeError when the profile is made now. The twin: the
    same profile with the right types is made, and verifies."""
    with pytest.raises(TypeError, match=re.escape(said)):
        mtls.SSLProfile(servers=("a.test:443",), **given)
    with pytest.raises(TypeError, match=r"default_truststore must be an mtls\.StoreConfig"):
        mtls.SSLProfileSet([], default_truststore="trust.jks")  # type: ignore[arg-type]
    profile = mtls.SSLProfile(servers=("a.test:443",), novalidatecert=False, client_id="c")
    with mtls.SSLProfileSet([profile]) as profiles:
        ctx = profiles.context_for("a.test", 443, client_id="c")
        assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED


def _grpc_credentials(tmp_path, identity, ca, require: object) -> None:
    """gRPC's server_credentials(require_client_auth=...) for the flag test (skipped
    without grpcio)."""
    grpc_integration = pytest.importorskip("mtls.integrations.grpc")
    from tests._helpers import write_identity, write_trust

    keystore = write_identity(identity, tmp_path / "grpc-server.jks")
    trust = write_trust(ca, tmp_path / "grpc-trust.jks")
    credentials = grpc_integration.server_credentials(
        mtls.StoreConfig(location=keystore, password=PASSWORD),
        mtls.StoreConfig(location=trust, password=PASSWORD),
        require_client_auth=require,  # type: ignore[arg-type]
        reload_interval=None,
    )
    credentials.close()


def test_flags_that_weaken_a_check_refuse_text(tmp_path):
    """Each of these flags weakens a check when true, and "false" is true in Python:
    server_context(trust_system_cas="false") trusted every public CA for client
    certificates, Keystore.load(allow_unprotected="no") read an unprotected PEM, and
    SSLProfileSet(skip_failures="false") skipped broken profiles. Text is a TypeError
    now. The twins: True and False (and 1 and 0) are taken as before."""
    from mtls.testing import CA

    ca = CA()
    identity = ca.issue_cert("localhost")
    pem = tmp_path / "id.pem"
    pem.write_bytes(identity.private_key_pem + identity.cert_pem)
    calls = {
        "trust_system_cas": lambda v: mtls.server_context(identity.keystore(), trust_system_cas=v),
        "require_client_cert": lambda v: mtls.server_context(
            identity.keystore(), ca.truststore(), require_client_cert=v
        ),
        "verify": lambda v: mtls.client_context(None, ca.truststore(), verify=v),
        "require_client_auth": lambda v: _grpc_credentials(tmp_path, identity, ca, v),
        "allow_unprotected": lambda v: mtls.Keystore.load(pem, None, allow_unprotected=v),
        "skip_failures": lambda v: mtls.SSLProfileSet([], skip_failures=v).close(),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=f"{name} must be True or False, not 'false'"):
            call("false")
        call(True)
        call(1)


def test_alpn_given_as_one_string_is_refused():
    """alpn="h2" offered the protocols "h" and "2" (a handshake then failed with
    no_application_protocol); an empty name raised a bare ssl.SSLError. The twin: a
    list is taken."""
    profile = mtls.SSLProfile(servers=("a.test:443",))
    with mtls.SSLProfileSet([profile]) as profiles:
        with pytest.raises(TypeError, match="alpn is a list of names"):
            profiles.context_for("a.test", 443, alpn="h2")
        with pytest.raises(ValueError, match="1 to 255 bytes"):
            profiles.context_for("a.test", 443, alpn=[""])
        with pytest.raises(TypeError, match="protocol names are str"):
            profiles.context_for("a.test", 443, alpn=[b"h2"])  # type: ignore[list-item]
        assert profiles.context_for("a.test", 443, alpn=["h2"]) is not None


def test_a_profile_of_many_servers_is_named_by_its_first_ten(tmp_path: Path) -> None:
    """A profile of 300,000 servers whose store was missing made a 6.7-million-character
    message. Messages name the first ten and count the rest; the error's servers
    attribute still holds them all. The twin: a profile of two is named whole."""
    servers = tuple(f"backend{i}.example.com:8243" for i in range(1000))
    missing = mtls.StoreConfig(location=tmp_path / "missing.jks", password="changeit")
    with pytest.raises(mtls.KeystoreError) as caught:
        mtls.SSLProfileSet([mtls.SSLProfile(servers=servers, keystore=missing)])
    message = str(caught.value)
    assert "backend9.example.com:8243 and 990 more" in message
    assert "backend10.example.com" not in message and len(message) < 1000
    assert caught.value.servers == servers
    # str(profile), in logs and the gRPC messages, the same way.
    assert str(mtls.SSLProfile(servers=servers)).endswith("backend9.example.com:8243 and 990 more")
    with pytest.raises(mtls.KeystoreError) as caught:
        mtls.SSLProfileSet([mtls.SSLProfile(servers=servers[:2], keystore=missing)])
    assert str(caught.value).startswith(
        "profile backend0.example.com:8243, backend1.example.com:8243: "
    )


@contextlib.contextmanager
def _stalled_check(tmp_path, pki, monkeypatch) -> Iterator[tuple[SSLProfileSet, threading.Event]]:
    """A set whose reload check is held by a secret resolver that waits (as a vault
    behind a dead network would), running past STALLED_AFTER (60 s; 0.2 s here) on a
    thread: the set, and the event that lets the check (and whatever waits on it) go."""
    from mtls import _engine

    monkeypatch.setattr(_engine, "STALLED_AFTER", 0.2)
    body = (
        '<parameter name="customSSLProfiles" xmlns:svns="http://org.wso2.securevault/configuration">'
        f"<profile><servers>a:1</servers><KeyStore><Location>{pki['gw1']}</Location>"
        '<Password svns:secretAlias="Gw.Store">x</Password></KeyStore></profile>'
        "</parameter>"
    )
    xml = tmp_path / "vault.xml"
    xml.write_text(body)
    entered, release = threading.Event(), threading.Event()
    hold = [False]

    def vault(alias: str) -> str:
        if hold[0]:
            entered.set()
            release.wait(30)
        return PASSWORD

    profiles = SSLProfileSet.from_xml(xml, secret_resolver=vault)
    assert profiles.status().healthy
    hold[0] = True
    xml.write_text(body + "<!-- edited -->")
    checking = threading.Thread(target=profiles.reload)
    checking.start()
    try:
        assert entered.wait(30)
        yield profiles, release
    finally:
        release.set()
        checking.join(30)
        profiles.close()


def test_a_check_that_does_not_return_is_said_by_status(tmp_path, pki, monkeypatch, caplog):
    """A stat or read on a hung network mount holds the set's one check: every
    rotation stops, and status() said healthy (only last_check's age gave it away). A
    check running past STALLED_AFTER is an error in status() while it runs, logged
    once (the log said nothing of it)."""

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "the check in progress has run" in r.getMessage()]

    with _stalled_check(tmp_path, pki, monkeypatch) as (profiles, release):
        with caplog.at_level(logging.WARNING, logger="mtls"):
            status = wait_for(lambda: next((s for s in [profiles.status()] if not s.healthy), None))
            profiles.status()  # asked again: logged once
            # Logged on the set's log relay (a blocked handler holds up no status()).
            wait_for(said)
        assert "the check in progress has run for" in str(status.last_error)
        assert "hung network mount" in str(status.last_error)
        assert "or a secret resolver, does not return" in str(status.last_error)
        assert len(said()) == 1, caplog.text
        assert profiles.context_for("a", 1) is not None  # lookups never wait
        release.set()
        # The twin: once the check ends, nothing is said.
        assert wait_for(lambda: profiles.status().healthy)


def test_a_stalled_check_is_said_without_waiting_on_a_blocked_log_handler(
    tmp_path, pki, monkeypatch
):
    """The stall's log line was written on status()'s own thread: a handler blocked on
    the same dead mount (a log file there) held up status(), and with it the health
    endpoint that was to say the set is not healthy. It goes through the set's log
    relay: status() answers at once."""
    handled, free = threading.Event(), threading.Event()

    class Blocked(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "the check in progress has run" in record.getMessage():
                handled.set()
                free.wait(30)

    handler = Blocked()
    logging.getLogger("mtls").addHandler(handler)
    try:
        with _stalled_check(tmp_path, pki, monkeypatch) as (profiles, _):
            wait_for(profiles._engine.stalled_for)
            answers: list[bool] = []
            asking = threading.Thread(target=lambda: answers.append(profiles.status().healthy))
            asking.start()
            asking.join(10)
            assert answers == [False]  # answered, while the handler is blocked
            assert handled.wait(30)  # the line was handed to the (blocked) handler
            free.set()  # before the check ends: its own records go to the same handler
    finally:
        free.set()
        logging.getLogger("mtls").removeHandler(handler)


def test_idna_2003_does_not_fold_a_name_into_another_host(tmp_path, pki):
    """IDNA 2003 drops a joiner: "ab\\u200d.example" becomes "ab.example", another
    host, whose profile then "appeared twice" (a file that loaded failed to). The
    IDNA 2003 form is taken only when it is an A-label (the twin: the snowman)."""
    from mtls._idna import ascii_host

    assert ascii_host("ab\u200d.example") == "ab\u200d.example"
    assert ascii_host("\u2603.example") == "xn--n3h.example"
    xml = write_xml(
        tmp_path,
        profile("ab.example:443", pki["gw1"], pki["trust"]),
        profile("ab\u200d.example:443", pki["gw2"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml)
    assert profiles.profile_for("ab.example", 443).servers == (("ab.example", 443),)  # type: ignore[union-attr]


def test_a_spaced_entry_from_a_placeholder_keeps_its_value_out_of_the_warning(
    tmp_path, pki, monkeypatch, caplog
):
    """The warning for spaces around a name printed what mtls reads, which for an
    entry made by $env{} is the variable's value: values from the environment are
    never shown."""
    monkeypatch.setenv("MTLS_TEST_SECRET_HOST", "internal-secret-host.corp ")
    xml = write_xml(tmp_path, profile("$env{MTLS_TEST_SECRET_HOST}:443", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml)
    assert "has spaces around its name" in caplog.text
    assert "internal-secret-host" not in caplog.text
    assert "$env{MTLS_TEST_SECRET_HOST}" in caplog.text


def test_a_file_given_as_base_dir_is_said(tmp_path: Path) -> None:
    """`mtls check prof.xml --base-dir prof.xml` said "prof.xml/conf/deployment.toml:
    cannot read (Not a directory)": a path the user never wrote. The twin: the
    directory loads."""
    from mtls.testing import CA
    from tests._helpers import profile, profile_xml, write_trust

    write_trust(CA(), tmp_path / "trust.jks")
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml(profile("a.test:443", None, Path("trust.jks"))))
    with pytest.raises(ProfileConfigError, match="is a file: give the product home"):
        mtls.SSLProfileSet.from_xml(xml, base_dir=xml)
    with mtls.SSLProfileSet.from_xml(xml, base_dir=tmp_path) as profiles:
        assert profiles.context_for("a.test", 443) is not None


def test_a_no_break_space_in_a_password_is_part_of_it(tmp_path: Path, caplog) -> None:
    """Java reads <Password> verbatim, and keytool made the store with the no-break
    space (Option+Space on a Mac, U+3000 from a CJK input method) at its end: WSO2
    opens it. mtls trimmed it with str.strip() (any Unicode space), failed with "wrong
    store password", and warned that WSO2 could not load the store. Only XML's
    whitespace is trimmed now. The twin: an ASCII space is trimmed, with the warning."""
    from mtls.testing import CA
    from tests._helpers import profile_xml, write_identity

    for password in ("geheim12\u00a0", "geheim12\u3000"):
        store = tmp_path / "nbsp.jks"
        CA().issue_cert("client").keystore().save(store, password)
        xml = tmp_path / "p.xml"
        xml.write_text(
            profile_xml(
                f"<profile><servers>a.test:443</servers><KeyStore><Location>{store}"
                f"</Location><Type>JKS</Type><Password>{password}</Password><KeyPassword>"
                f"{password}</KeyPassword></KeyStore></profile>"
            ),
            encoding="utf-8",
        )
        caplog.clear()
        with mtls.SSLProfileSet.from_xml(xml) as profiles:
            assert profiles.context_for("a.test", 443) is not None
        assert "spaces or line breaks" not in caplog.text
    plain = write_identity(CA().issue_cert("client"), tmp_path / "plain.jks")
    xml.write_text(
        profile_xml(
            f"<profile><servers>a.test:443</servers><KeyStore><Location>{plain}</Location>"
            f"<Type>JKS</Type><Password>{PASSWORD} </Password><KeyPassword>{PASSWORD}"
            "</KeyPassword></KeyStore></profile>"
        )
    )
    caplog.clear()
    with mtls.SSLProfileSet.from_xml(xml) as profiles:
        assert profiles.context_for("a.test", 443) is not None
    assert "spaces or line breaks around its text" in caplog.text


def test_a_url_with_a_port_that_is_not_a_number_says_what_to_write() -> None:
    """context_for_url("https://h:abc/") raised urllib's "Port could not be cast to
    integer value as 'abc'"; https://::1:443/ said only "no host". The twins: a good
    port, and the address in brackets, are looked up."""
    with mtls.SSLProfileSet([mtls.SSLProfile(servers=("*",))]) as profiles:
        with pytest.raises(ValueError, match=r"port is not a number .*https://host:8443/"):
            profiles.context_for_url("https://h:abc/")
        with pytest.raises(ValueError, match=re.escape("goes in brackets (https://[::1]:8443/)")):
            profiles.context_for_url("https://::1:443/")
        assert profiles.context_for_url("https://h:8443/") is not None
        assert profiles.context_for_url("https://[::1]:443/") is not None


def test_one_number_as_expiry_warnings_says_to_write_a_sequence() -> None:
    """expiry_warnings=30 failed with "'int' object is not iterable" (a TypeError, as
    it still is, now saying what to write)."""
    with pytest.raises(TypeError, match=re.escape("expiry_warnings=(30,) for one threshold")):
        mtls.SSLProfileSet([], expiry_warnings=30)  # type: ignore[arg-type]
    mtls.SSLProfileSet([], expiry_warnings=(30,)).close()


def test_subscribing_something_that_cannot_be_called_is_refused_at_once() -> None:
    """subscribe(5) and on_health(5) were taken; the TypeError came at the next change,
    as "a reload subscriber raised" in the log of another thread. The twin: a function
    is taken, and its unsubscriber works."""
    with mtls.SSLProfileSet([]) as profiles:
        with pytest.raises(TypeError, match=r"subscribe\(\) takes a function, not int"):
            profiles.subscribe(5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"on_health\(\) takes a function, not str"):
            profiles.on_health("alert")  # type: ignore[arg-type]
        profiles.subscribe(lambda old, new: None)()
        profiles.on_health(lambda event: None)()


def test_with_skip_failures_an_entry_without_a_port_is_left_out_not_the_file(
    tmp_path, pki, backend, caplog
):
    """WSO2's docs write servers = "foo.com"; WSO2 loads the file and never matches that
    entry. mtls refused the whole file even with skip_failures (an independent sweep of
    WSO2's files): every host went down for one entry."""
    xml = write_xml(
        tmp_path,
        profile("foo.com", pki["gw1"], pki["trust"]),
        profile(f"localhost:{backend.port}, bar.com", pki["gw1"], pki["trust"]),
    )
    # Without skip_failures: refused, as the design says (a silent non-match is a bug).
    with pytest.raises(ProfileConfigError, match=r"'foo\.com' has no port"):
        SSLProfileSet.from_xml(xml)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml, skip_failures=True)
    with profiles:
        assert [p.servers for p in profiles.profiles] == [(("localhost", backend.port),)]
        context = profiles.context_for("localhost", backend.port)
        assert whoami(context, backend.port)["client_cn"] == "gateway-one"
        # The entries left out match nothing, as in WSO2 (no * profile, no default here).
        assert profiles.context_for("foo.com", 443) is None
        assert profiles.context_for("bar.com", 443) is None
    said = [r.getMessage() for r in caplog.records if "left out (skip_failures)" in r.getMessage()]
    assert any("'foo.com', has no port" in m and "write foo.com:443" in m for m in said)
    assert any("'bar.com', has no port" in m for m in said)
    assert any("profile 1 has no server with a port" in m for m in said)
    # mtls check (which loads with skip_failures) fails on them, naming the first.
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(xml), "--no-color"])
    assert code == 1 and "entries without a port were left out" in out.getvalue()
    assert "'foo.com', has no port" in err.getvalue()


@pytest.mark.parametrize(
    ("written", "dialled"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("010.0.0.1", "8.0.0.1"),  # inet_aton reads a leading 0 as octal, as curl does
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("1a2b.de", "1a2b.de"),  # a name: no 0x, so no number
        ("1password.com", "1password.com"),
        ("fe80::1%eth0", "fe80::1"),  # the zone is not part of the host
        ("[FE80::0001%25eth0]", "fe80::1"),
        ("::ffff:127.0.0.1%1", "127.0.0.1"),
        ("\uff11\uff12\uff17.\uff11", "127.0.0.1"),  # full-width digits, mapped by IDNA
        ("127\u30021", "127.0.0.1"),  # an ideographic full stop
        ("fe80::1", "fe80::1"),
    ],
)
def test_an_address_is_indexed_as_it_is_dialled(written: str, dialled: str) -> None:
    from mtls._config import normalize_host

    assert normalize_host(written) == dialled
    assert normalize_host(dialled) == dialled


@given(st.text(alphabet="0123456789abcdefx.:%[]AE\u3002\uff11\uff0e\u00fc- \t", max_size=24))
@example("[].")  # brackets were taken off before the final dot: "[]" the first time
@example("[[::1]]")
@example("a . ")  # a space before the final dot: "a " the first time
@settings(max_examples=400, deadline=None)
def test_normalising_a_host_twice_changes_nothing(host: str) -> None:
    """The fast map is keyed by the normalised host and looked up by the raw one: a
    host whose normal form normalises to something else is served by one profile on
    the fast path and another on the slow one ("127\u30021" was "127.1", then
    127.0.0.1)."""
    from mtls._config import normalize_host

    try:
        once = normalize_host(host)
    except ValueError:  # a name IDNA refuses
        return
    assert normalize_host(once) == once


def test_every_spelling_of_an_address_gets_its_profile_or_its_refusal(tmp_path, pki):
    """The resolver dials 127.1, 2130706433, 0x7f000001 and ::ffff:127.0.0.1 as
    127.0.0.1: they were looked up as other hosts and got the catch-all's identity, even
    when 127.0.0.1's own profile had failed and must refuse (an AllowAll set sent it)."""
    xml = write_xml(
        tmp_path,
        profile("127.0.0.1:8443", tmp_path / "missing.jks", pki["trust"]),
        profile("*", pki["gw1"], pki["trust"]),
    )
    profiles = SSLProfileSet.from_xml(xml, skip_failures=True, hostname_verifier="AllowAll")
    for url in ("https://127.0.0.1:8443/", "https://127.1:8443/", "https://2130706433:8443/",
                "https://0x7f000001:8443/", "https://127.000.000.001:8443/",
                "https://[::ffff:127.0.0.1]:8443/", "https://127\u30021:8443/",
                "https://\uff11\uff12\uff17.\uff11:8443/"):  # fmt: skip
        with pytest.raises(mtls.ProfileUnavailableError):
            profiles.context_for_url(url)
    # The twins: another address, and another port, are the catch-all's.
    assert profiles.context_for_url("https://127.0.0.2:8443/") is not None
    assert profiles.context_for_url("https://127.1:8444/") is not None
    profiles.close()


def test_an_ipv6_zone_is_not_part_of_the_host(tmp_path, pki, caplog):
    """A failed profile for an address refuses it written with any zone (a zone does not
    change the host dialled for a global address, and glibc takes one on any address),
    and a zone in <servers> is said not to count. The twin: another address is the
    catch-all's."""
    xml = write_xml(
        tmp_path,
        profile("[2001:db8::1]:443", tmp_path / "missing.jks", pki["trust"]),
        profile("[fe80::1%eth0]:443", tmp_path / "missing.jks", pki["trust"]),
        profile("*", pki["gw1"], pki["trust"]),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml, skip_failures=True, hostname_verifier="AllowAll")
    assert "its zone is not part of the match" in caplog.text
    for host in ("2001:db8::1%eth0", "2001:db8::1%1", "fe80::1", "fe80::1%eth1", "fe80::1%25eth0"):
        with pytest.raises(mtls.ProfileUnavailableError):
            profiles.context_for(host, 443)
    assert profiles.context_for("2001:db8::2%eth0", 443) is not None
    profiles.close()


def test_an_element_written_twice_is_said_to_be_ignored(tmp_path, pki, caplog):
    """WSO2 reads the first of each element, and so does mtls; the rest was ignored in
    silence: a host in a second <servers> went to the catch-all, a second <Password>
    was never tried. Each is warned about, never with a password; <client> elements,
    repeated by design, are not."""
    second_password = "Sec0nd-Pw-never-shown"
    body = profile("a.test:443", pki["gw1"], pki["trust"], extra="<servers>b.test:443</servers>")
    body = body.replace(
        f"<KeyPassword>{PASSWORD}</KeyPassword></KeyStore>",
        f"<KeyPassword>{PASSWORD}</KeyPassword><Password>{second_password}</Password></KeyStore>",
    )
    xml = write_xml(tmp_path, body)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    assert "<servers> appears more than once" in caplog.text
    assert "comma-separated" in caplog.text
    assert "<KeyStore> of a.test:443: <Password> appears more than once" in caplog.text
    assert second_password not in caplog.text and PASSWORD not in caplog.text
    assert profiles.context_for("a.test", 443) is not None
    assert profiles.context_for("b.test", 443) is None  # as in WSO2: the first only
    profiles.close()
    # The twin: the same profile written once each says nothing of the kind.
    caplog.clear()
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml).close()
    assert "more than once" not in caplog.text


def test_a_servers_entry_is_trimmed_as_java_trims_it(caplog):
    """WSO2 trims each <servers> item with String.trim(): characters up to U+0020 only.
    A no-break space after the port was trimmed and matched in silence, where WSO2
    never matches it: it is now the port that is not plain digits. An invisible
    character inside the name is named by its code point (the warning spoke of '*',
    user@ and /path). The twins: ASCII spaces and a tab are trimmed, as by Java."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError, match="plain digits"):
        parse_server("a.test:443\u00a0", path="p.xml")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        parse_server("a\u200b.test:443", path="p.xml")
    assert "invisible or control character (U+200B)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert parse_server(" a.test:443\t", path="p.xml") == ("a.test", 443)
    assert caplog.text == ""


def test_an_address_written_otherwise_than_dialled_is_said_so(caplog):
    """010.0.0.1 is 8.0.0.1 to the resolver (octal), and mtls matches it so, where WSO2
    compares the text and a Java author likely meant 10.0.0.1: say which address it is.
    A zone in <servers> is said not to count. The twins: the usual forms, silent."""
    from mtls._config import parse_server

    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert parse_server("010.0.0.1:443", path="p.xml") == ("8.0.0.1", 443)
        assert parse_server("[fe80::1%eth0]:443", path="p.xml") == ("fe80::1", 443)
        assert parse_server("\uff11\uff12\uff17.\uff11:443", path="p.xml") == ("127.0.0.1", 443)
    assert "it is the address 8.0.0.1" in caplog.text and "write 8.0.0.1" in caplog.text
    assert "it is the address 127.0.0.1" in caplog.text  # full-width digits, as IDNA maps them
    assert "its zone is not part of the match" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtls"):
        for entry in ("10.0.0.1:443", "[::1]:443", "1A.example:443", "backend.test:8243"):
            parse_server(entry, path="p.xml")
    assert caplog.text == ""


@pytest.mark.parametrize("edit", ["name", "copy"])
def test_an_edit_that_changes_no_context_is_applied_without_a_new_generation(tmp_path, pki, edit):
    """A profile renamed, or its keystore moved to a copy of the same bytes: no
    connection needs to change (the same context and the same ALPN variant, the very
    objects clients pool by; ``reload()`` False, no subscriber called), but
    ``profile_for`` answers the edited profile at once. Its twin, a keystore moved to
    other bytes, is a change. (The variant was a new object, built again, with no
    generation to tell clients: their pools on the old one stayed open.)"""
    copy = tmp_path / "copy.jks"
    copy.write_bytes(pki["gw1"].read_bytes())  # type: ignore[attr-defined]
    xml = write_xml(
        tmp_path, profile("backend.test:443", pki["gw1"], pki["trust"], attrs='name="one"')
    )
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        calls: list[tuple[int, int]] = []
        profiles.subscribe(lambda old, new: calls.append((old, new)))
        before = profiles.context_for("backend.test", 443)
        h1 = profiles.context_for("backend.test", 443, alpn=["http/1.1"])
        if edit == "name":
            write_xml(
                tmp_path, profile("backend.test:443", pki["gw1"], pki["trust"], attrs='name="two"')
            )
        else:
            write_xml(tmp_path, profile("backend.test:443", copy, pki["trust"], attrs='name="one"'))
        assert profiles.reload(force=True) is False
        assert profiles.generation == 0 and calls == []
        assert profiles.context_for("backend.test", 443) is before
        assert profiles.context_for("backend.test", 443, alpn=["http/1.1"]) is h1
        edited = profiles.profile_for("backend.test", 443)
        assert edited is not None
        if edit == "name":
            assert edited.name == "two"
        else:
            assert edited.keystore is not None and edited.keystore.location == copy
        # The twin: other bytes are a change, counted and announced.
        write_xml(
            tmp_path, profile("backend.test:443", pki["gw2"], pki["trust"], attrs='name="one"')
        )
        assert profiles.reload(force=True) is True
        assert profiles.generation == 1 and calls == [(0, 1)]
        assert profiles.context_for("backend.test", 443) is not before
        assert profiles.context_for("backend.test", 443, alpn=["http/1.1"]) is not h1


def test_profiles_on_one_material_share_its_alpn_variants_through_an_edit(tmp_path, pki):
    """Two profiles whose keystores hold the same bytes (one a copy) hand out the same
    ALPN variant, and keep it when one edit renames one and moves the other onto the
    copy: a variant belongs to the material, not to a profile or a file (a review found
    the second profile of such an edit was handed the first's new variant, with no
    generation to retire the old one). The twin: other bytes, a new variant."""
    copy = tmp_path / "copy.jks"
    copy.write_bytes(pki["gw1"].read_bytes())  # type: ignore[attr-defined]

    def write(q_name: str, p_keystore: object) -> None:
        write_xml(
            tmp_path,
            profile("other.test:443", copy, pki["trust"], attrs=f'name="{q_name}"'),
            profile("backend.test:443", p_keystore, pki["trust"]),  # type: ignore[arg-type]
        )

    write("q", pki["gw1"])
    with SSLProfileSet.from_xml(tmp_path / "sslprofiles.xml", settle_delay=0) as profiles:
        calls: list[tuple[int, int]] = []
        profiles.subscribe(lambda old, new: calls.append((old, new)))
        h1 = profiles.context_for("backend.test", 443, alpn=["http/1.1"])
        assert profiles.context_for("other.test", 443, alpn=["http/1.1"]) is h1
        write("q2", copy)
        assert profiles.reload(force=True) is False and calls == []
        for host in ("backend.test", "other.test"):
            assert profiles.context_for(host, 443, alpn=["http/1.1"]) is h1
        _, live = profiles._contexts_in_service()
        assert id(h1) in live
        write("q2", pki["gw2"])  # the twin: P on other bytes
        assert profiles.reload(force=True) is True and calls == [(0, 1)]
        assert profiles.context_for("backend.test", 443, alpn=["http/1.1"]) is not h1
        assert profiles.context_for("other.test", 443, alpn=["http/1.1"]) is h1


def test_a_profile_that_stays_broken_publishes_nothing_new_at_each_check(tmp_path, pki):
    """A profile that never loaded (its keystore missing), and one whose keystore went
    missing after it loaded (it keeps its last good): each check retries them, and
    when they fail as before the set publishes nothing new (before, a new snapshot
    at every check, which every HTTP client then asked again). The twins: a failure
    that changes is published, and a recovery is a change."""
    missing = tmp_path / "missing.jks"
    loaded = tmp_path / "loaded.jks"
    loaded.write_bytes(pki["gw1"].read_bytes())  # type: ignore[attr-defined]
    xml = write_xml(
        tmp_path,
        profile("never.test:443", missing, pki["trust"]),
        profile("backend.test:443", loaded, pki["trust"]),
    )
    with SSLProfileSet.from_xml(xml, settle_delay=0, skip_failures=True) as profiles:
        last_good = profiles.context_for("backend.test", 443)
        loaded.unlink()
        assert profiles.reload(force=True) is False
        first = profiles._snapshot
        errors = [str(e) for e in profiles.errors]
        assert len(errors) == 2 and "missing.jks" in errors[0] + errors[1]
        for _ in range(2):
            assert profiles.reload(force=True) is False
            assert profiles._snapshot is first  # nothing new published
        assert profiles.context_for("backend.test", 443) is last_good
        with pytest.raises(mtls.ProfileUnavailableError):
            profiles.context_for("never.test", 443)
        # A failure that changes is published: the file is there now, but damaged.
        missing.write_bytes(b"not a keystore")
        assert profiles.reload(force=True) is False
        assert profiles._snapshot is not first
        assert [str(e) for e in profiles.errors] != errors
        # A recovery is a change.
        missing.write_bytes(pki["gw1"].read_bytes())  # type: ignore[attr-defined]
        loaded.write_bytes(pki["gw1"].read_bytes())  # type: ignore[attr-defined]
        assert profiles.reload(force=True) is True
        assert not profiles.errors
        assert profiles.context_for("never.test", 443) is not None


def test_a_profile_file_that_stays_broken_publishes_nothing_new_at_each_check(tmp_path, pki):
    """The profile file broken (retried at every check): the last good profiles serve
    on, and while it fails the same way the set publishes nothing new. The twins: a
    breakage that says something else is published, and the fixed file is applied."""
    entry = profile("backend.test:443", pki["gw1"], pki["trust"])
    xml = write_xml(tmp_path, entry)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        ctx = profiles.context_for("backend.test", 443)
        xml.write_text(profile_xml(entry).replace("</parameter>", ""))  # cut short
        assert profiles.reload() is False
        first, said = profiles._snapshot, str(profiles.last_error)
        assert "sslprofiles.xml" in said
        for _ in range(3):
            assert profiles.reload(force=True) is False
            assert profiles._snapshot is first
        assert profiles.context_for("backend.test", 443) is ctx
        # Broken another way: a store element with no location.
        xml.write_text(profile_xml(entry.replace(f"<Location>{pki['gw1']}</Location>", "")))
        assert profiles.reload() is False
        assert profiles._snapshot is not first and str(profiles.last_error) != said
        # Fixed.
        xml.write_text(profile_xml(entry, profile("other.test:443", pki["gw2"], pki["trust"])))
        profiles.reload()
        assert profiles.last_error is None
        assert profiles.context_for("other.test", 443) is not None


@pytest.mark.parametrize("caught", ["file", "inputs"])
def test_a_broken_profile_file_caught_mid_write_is_still_broken(tmp_path, pki, monkeypatch, caught):
    """A broken profile file being written again when a check reads it (``file``), or
    a file its secrets come from (``inputs``: a vault file): its error stands until it
    is read whole (it was published as fixed for one check: ``status()`` healthy, its
    problem said resolved, then said again). The twin: read whole and fixed, it is
    applied."""
    from mtls import _reading, _snapshot

    entry = profile("backend.test:443", pki["gw1"], pki["trust"])
    xml = write_xml(tmp_path, entry)
    with SSLProfileSet.from_xml(xml, settle_delay=0) as profiles:
        xml.write_text(profile_xml(entry).replace("</parameter>", ""))  # cut short
        profiles.reload()
        said = str(profiles.last_error)
        read = _reading.Reading.read
        writes = [xml]  # the next read of the file finds it changing

        def mid_write(self: _reading.Reading, path: Path) -> bytes:
            if writes and path == writes[0]:
                writes.pop()
                raise _reading.Unstable(path)
            return read(self, path)

        inputs = _snapshot.ProfilesPlan._inputs

        def inputs_mid_write(self: _snapshot.ProfilesPlan, reading: _reading.Reading) -> object:
            if writes:
                raise _reading.Unstable(writes.pop())
            return inputs(self, reading)

        if caught == "file":
            monkeypatch.setattr(_reading.Reading, "read", mid_write)
        else:
            monkeypatch.setattr(_snapshot.ProfilesPlan, "_inputs", inputs_mid_write)
        profiles.reload(force=True)
        assert not writes  # the check did catch it mid-write
        assert str(profiles.last_error) == said and not profiles.status().healthy
        monkeypatch.setattr(_reading.Reading, "read", read)
        monkeypatch.setattr(_snapshot.ProfilesPlan, "_inputs", inputs)
        profiles.reload(force=True)
        assert str(profiles.last_error) == said  # read whole: still broken
        xml.write_text(profile_xml(entry))
        profiles.reload()
        assert profiles.last_error is None and profiles.status().healthy


def test_an_ipv6_backend_written_as_wso2_names_it_is_served(tmp_path, pki, caplog):
    """WSO2 looks a profile up by Java's text for the backend's address
    (InetSocketAddress.getHostName() of an address with no PTR record: eight groups,
    none compressed, no brackets) and ':port': '2001:db8:0:0:0:0:0:10:443' is the entry
    that matches there. It was refused as an entry without a port, and the whole file
    with it. The twins: a compressed address with a port (which WSO2 never matches) is
    still refused; the WSO2 form with leading zeros loads, warned that WSO2 never
    matches it; another address is the catch-all's."""
    xml = write_xml(
        tmp_path,
        profile("2001:db8:0:0:0:0:0:10:443, 0:0:0:0:0:0:0:1:8443", pki["gw1"], pki["trust"]),
        profile("2001:0db8:0:0:0:0:0:0011:443", pki["gw2"], pki["trust"]),
        profile("*", pki["gw2"], pki["trust"]),
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        profiles = SSLProfileSet.from_xml(xml)
    ctx = profiles.context_for("2001:db8::10", 443)
    assert profiles.context_for_url("https://[2001:db8:0::10]/orders") is ctx
    assert profiles.context_for_url("https://[::1]:8443/") is ctx
    assert profiles.profile_for("2001:db8::11", 443) is profiles.profiles[1]
    assert profiles.profile_for("2001:db8::12", 443) is profiles.profiles[2]  # the catch-all
    assert "Java's text for it, 2001:db8:0:0:0:0:0:11:443" in caplog.text
    assert "2001:db8:0:0:0:0:0:10" not in caplog.text  # WSO2's own form: nothing to say
    profiles.close()
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError, match="has no port"):
        parse_server("2001:db8::10:443", path="p.xml")


def test_brackets_around_a_name_are_said_and_around_no_address_refused(tmp_path, pki, caplog):
    """'[orders.internal]:8443' never matches in WSO2 (its lookup key has no
    brackets) and loaded in silence, check passing it; '[zz::1]:443' and '[a.test:]:443'
    were taken as hosts nothing could ever look up (h185). The twin: an IPv6 address in
    brackets loads with nothing said."""
    from mtls._config import parse_server

    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert parse_server("[orders.internal]:8443", path="p.xml") == ("orders.internal", 8443)
        assert parse_server("[10.0.0.5]:443", path="p.xml") == ("10.0.0.5", 443)
    assert caplog.text.count("brackets are for IPv6 addresses") == 2
    caplog.clear()
    for entry in ("[zz::1]:443", "[a.test:]:443"):
        with pytest.raises(ProfileConfigError, match="in brackets is not an IPv6 address"):
            parse_server(entry, path="p.xml")
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert parse_server("[2001:db8::10]:443", path="p.xml") == ("2001:db8::10", 443)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("a.test : 443", "write a.test:443"),
        ("a.test:", "write a.test:443;"),
        ("host:8443:", "write host:port, one host and its port"),
        ("2001:db8:0:0:0:0:0:10:99999", "write [2001:db8:0:0:0:0:0:10]:443;"),
    ],
)
def test_the_spelling_suggested_for_a_bad_entry_is_one_that_loads(entry, hint):
    """'a.test : 443' was told to write 'a.test :443' (refused again), 'a.test:' to
    write '[a.test:]:443' (no address in brackets), a nine-group address with a bad
    port '[2001:db8:0:0:0:0:0:10:99999]:443' (h185). Each suggestion now loads."""
    from mtls._config import parse_server

    with pytest.raises(ProfileConfigError) as info:
        parse_server(entry, path="p.xml")
    assert hint in str(info.value)
    written = hint.split("write ")[1].rstrip(";")
    if written.startswith(("a.test", "[")):
        parse_server(written, path="p.xml")  # the suggestion itself loads


@pytest.mark.parametrize("port", [True, 8443.0, 8443.9, "08443", "84 43", None])
def test_a_server_tuple_takes_an_int_port_only(port):
    """(host, True) was port 1 and (host, 8443.9) port 8443 (h185). The twins: an int,
    and its digits as text, read so since the first landing (h187)."""
    with pytest.raises(ProfileConfigError, match=r"is not a host \(str\) and a port \(int\)"):
        SSLProfile(servers=(("a.test", port),))
    for good in (8443, "8443", " 8443"):
        assert SSLProfile(servers=(("a.test", good),)).servers == (("a.test", 8443),)


def test_from_xml_takes_the_path_forms_the_stores_take_and_says_what_a_file_is(tmp_path, pki):
    """bytes made a TypeError from inside the path check, '~' got no word about the home
    directory, and a deployment.toml got "not well-formed XML: fix the file" (h185)."""
    xml = write_xml(tmp_path, profile("a.test:443", pki["gw1"], pki["trust"]))
    with SSLProfileSet.from_xml(os.fsencode(xml), reload_interval=None) as profiles:
        assert profiles.context_for("a.test", 443) is not None
    with pytest.raises(ProfileConfigError, match="~ is not your home directory here"):
        SSLProfileSet.from_xml(tmp_path / "~" / "sslprofiles.xml")
    toml = tmp_path / "deployment.toml"
    toml.write_text('# a comment\n\n[keystore.tls]\nfile_name = "wso2carbon.jks"\n')
    with pytest.raises(ProfileConfigError, match=r"this looks like TOML.*from_deployment_toml"):
        SSLProfileSet.from_xml(toml)
    junk = tmp_path / "junk.xml"
    junk.write_text("not xml [at all]")  # the twin: no TOML table, the plain advice
    with pytest.raises(ProfileConfigError, match=r"not well-formed XML.*: fix the file"):
        SSLProfileSet.from_xml(junk)


def test_the_ipv6_form_warning_never_shows_a_placeholders_value(tmp_path, pki, caplog, monkeypatch):
    """A <servers> entry made from a placeholder is named as written, never by its
    value: the warning about WSO2's IPv6 form printed the resolved address (h187). The
    twin: written plainly, the form to write is shown."""
    monkeypatch.setenv("BACKEND_V6", "2001:DB8:0:0:0:0:0:10")
    xml = write_xml(tmp_path, profile("$env{BACKEND_V6}:443", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(xml, reload_interval=None).close()
    assert "WSO2 matches an IPv6 address by Java's text for it (eight groups" in caplog.text
    assert "2001" not in caplog.text.lower() and "db8" not in caplog.text.lower()
    caplog.clear()
    plain = write_xml(tmp_path, profile("2001:DB8:0:0:0:0:0:10:443", pki["gw1"], pki["trust"]))
    with caplog.at_level(logging.WARNING, logger="mtls"):
        SSLProfileSet.from_xml(plain, reload_interval=None).close()
    assert "Java's text for it, 2001:db8:0:0:0:0:0:10:443" in caplog.text
