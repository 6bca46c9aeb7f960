"""``mtls storepasswd``, ``keypasswd`` and ``changealias``: keytool's maintenance
operations on a store in place, checked by the JDK's keytool reading the result.

A rotation of passwords is done in two places (the store, then the profile file's
``<Password>``/``<KeyPassword>``): each command must leave every other entry as it
was, and leave the file untouched when it refuses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import mtls
from mtls._pkcs12 import parse_pkcs12
from mtls.testing import CA
from tests._keytool import JDK, run_keytool
from tests.cli.test_cli import PASSWORD, fails, mtls_run, ok

NEW_PASSWORD = "N3w-leakcheck-Pw77"  # distinctive: must never be shown either


def _no_new_password_shown(*runs: object) -> None:
    for run in runs:
        assert NEW_PASSWORD not in run.stdout + run.stderr  # type: ignore[attr-defined]


def _keystore(keytool: JDK, path: Path, store_type: str, keys: dict[str, str]) -> tuple[str, ...]:
    """A keytool-made store with a key entry per alias (under its own key password in
    JKS) and one trusted certificate; keytool's common options for it."""
    store = ("-keystore", str(path), "-storetype", store_type, "-storepass", PASSWORD)
    for alias, key_password in keys.items():
        run_keytool(keytool, "-genkeypair", *store, "-alias", alias, "-keyalg", "EC",
                    "-keypass", key_password, "-dname", f"CN={alias}")  # fmt: skip
    cert = path.parent / "ca.pem"
    cert.write_bytes(CA(name="partner").certificate.public_bytes(Encoding.PEM))
    run_keytool(keytool, "-importcert", *store, "-alias", "partner", "-file", str(cert))
    return store


def _key_opens(keytool: JDK, path: Path, store_type: str, password: str, alias: str,
               key_password: str) -> bool:  # fmt: skip
    """Whether keytool takes key entry ``alias`` out of the store with these passwords."""
    out = path.parent / f"probe-{alias}.p12"
    out.unlink(missing_ok=True)
    try:
        run_keytool(keytool, "-importkeystore", "-srckeystore", str(path), "-srcstoretype",
                    store_type, "-srcstorepass", password, "-srcalias", alias, "-srckeypass",
                    key_password, "-destkeystore", str(out), "-deststoretype", "PKCS12",
                    "-deststorepass", PASSWORD)  # fmt: skip
    except subprocess.CalledProcessError:
        return False
    return True


def test_storepasswd_on_jks_changes_the_store_password_and_leaves_each_key_its_own(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    path = tmp_path / "gw.jks"
    _keystore(jdk_keytool, path, "JKS", {"gw": "key-pass-gw", "old": "key-pass-old"})
    before = path.read_bytes()
    # Twins first, the file untouched by each: a wrong store password, a new one
    # keytool would refuse (under six characters).
    fails(1, "storepasswd", "--keystore", path, "--password", "Wr0ng-but-visible-Pw",
          "--new-password", NEW_PASSWORD)  # fmt: skip
    short = fails(2, "storepasswd", "--keystore", path, "--new-password", "abc")
    assert "at least 6 characters" in short.stderr
    assert path.read_bytes() == before
    done = ok("-storepasswd", "-keystore", path, "-storepass", PASSWORD, "-new", NEW_PASSWORD)
    assert "Changed the store password" in done.stdout and "mtls keypasswd" in done.stdout
    _no_new_password_shown(done)
    # keytool reads it with the new password only.
    assert "gw, " in run_keytool(jdk_keytool, "-list", "-keystore", str(path), "-storepass",
                                 NEW_PASSWORD)  # fmt: skip
    with pytest.raises(subprocess.CalledProcessError):
        run_keytool(jdk_keytool, "-list", "-keystore", str(path), "-storepass", PASSWORD)
    # Each key still opens with its own password, and not with the new store password.
    assert _key_opens(jdk_keytool, path, "JKS", NEW_PASSWORD, "gw", "key-pass-gw")
    assert _key_opens(jdk_keytool, path, "JKS", NEW_PASSWORD, "old", "key-pass-old")
    assert not _key_opens(jdk_keytool, path, "JKS", NEW_PASSWORD, "gw", NEW_PASSWORD)


def test_storepasswd_on_pkcs12_re_encrypts_the_keys_under_the_new_password(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    path = tmp_path / "gw.p12"
    _keystore(jdk_keytool, path, "PKCS12", {"gw": PASSWORD})
    done = ok("storepasswd", "--keystore", path, "--new-password", NEW_PASSWORD)
    assert "(PKCS12, 2 entries)" in done.stdout and "keypasswd" not in done.stdout
    assert _key_opens(jdk_keytool, path, "PKCS12", NEW_PASSWORD, "gw", NEW_PASSWORD)
    assert not _key_opens(jdk_keytool, path, "PKCS12", PASSWORD, "gw", PASSWORD)
    store = mtls.Keystore.load(path, NEW_PASSWORD)
    assert store.key_aliases == ("gw",) and "partner" in store.trusted_aliases
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.load(path, PASSWORD)


def test_the_new_password_comes_from_the_environment_and_never_from_an_empty_variable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    before = path.read_bytes()
    # No terminal, an empty variable: asked for by name, nothing written.
    run = fails(2, "storepasswd", "--keystore", path, env={"MTLS_NEW_PASSWORD": ""})
    assert "--new-password" in run.stderr and "MTLS_NEW_PASSWORD" in run.stderr
    assert path.read_bytes() == before
    done = ok("storepasswd", "--keystore", path, env={"MTLS_NEW_PASSWORD": NEW_PASSWORD})
    _no_new_password_shown(done)
    assert mtls.Keystore.load(path, NEW_PASSWORD).key_aliases == ("gw",)


def test_keypasswd_changes_one_jks_key_and_leaves_the_others_as_they_were(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    path = tmp_path / "gw.jks"
    _keystore(jdk_keytool, path, "JKS", {"gw": "key-pass-gw", "old": "key-pass-old"})
    before = path.read_bytes()
    # Twins first, the file untouched: the wrong key password, a trusted entry, an
    # unknown alias.
    wrong = fails(1, "keypasswd", "--keystore", path, "--alias", "gw", "--key-password",
                  "Wr0ng-but-visible-Pw", "--new-password", NEW_PASSWORD)  # fmt: skip
    assert "does not unlock key entry 'gw'" in wrong.stderr
    trusted = fails(1, "keypasswd", "--keystore", path, "--alias", "partner",
                    "--new-password", NEW_PASSWORD)  # fmt: skip
    assert "trusted certificate" in trusted.stderr
    unknown = fails(1, "keypasswd", "--keystore", path, "--alias", "nope",
                    "--new-password", NEW_PASSWORD)  # fmt: skip
    assert "no entry with alias 'nope'" in unknown.stderr
    assert path.read_bytes() == before
    done = ok("-keypasswd", "-keystore", path, "-alias", "GW", "-keypass", "key-pass-gw",
              "-new", NEW_PASSWORD)  # fmt: skip
    _no_new_password_shown(done)
    assert _key_opens(jdk_keytool, path, "JKS", PASSWORD, "gw", NEW_PASSWORD)
    assert not _key_opens(jdk_keytool, path, "JKS", PASSWORD, "gw", "key-pass-gw")
    assert _key_opens(jdk_keytool, path, "JKS", PASSWORD, "old", "key-pass-old")
    # WSO2's key manager (SunX509) needs every key to open with the one <KeyPassword>:
    # until the other key has it too, neither the library nor Java loads the store.
    with pytest.raises(mtls.WrongPasswordError, match="'old'"):
        mtls.Keystore.load(path, PASSWORD, key_password=NEW_PASSWORD)
    ok("keypasswd", "--keystore", path, "--alias", "old", "--key-password", "key-pass-old",
       "--new-password", NEW_PASSWORD)  # fmt: skip
    store = mtls.Keystore.load(path, PASSWORD, key_password=NEW_PASSWORD)
    assert sorted(store.key_aliases) == ["gw", "old"]


def test_keypasswd_on_pkcs12_says_it_has_one_password(tmp_path: Path) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    before = path.read_bytes()
    run = fails(1, "keypasswd", "--keystore", path, "--alias", "gw", "--new-password",
                NEW_PASSWORD)  # fmt: skip
    assert "one password" in run.stderr and "mtls storepasswd" in run.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("store_type", ["JKS", "PKCS12"])
def test_changealias_renames_an_entry_and_keeps_its_key(
    tmp_path: Path, any_keytool: JDK, store_type: str
) -> None:
    path = tmp_path / f"gw.{'jks' if store_type == 'JKS' else 'p12'}"
    key_password = "key-pass-gw" if store_type == "JKS" else PASSWORD
    _keystore(any_keytool, path, store_type, {"gw": key_password, "old": key_password})
    before = path.read_bytes()
    # Twins first, the file untouched: the new alias is taken (whatever its case), the
    # old one does not exist.
    taken = fails(1, "changealias", "--keystore", path, "--alias", "gw", "--dest-alias", "OLD")
    assert "alias 'OLD' already exists" in taken.stderr
    missing = fails(1, "changealias", "--keystore", path, "--alias", "nope", "--dest-alias", "x")
    assert "no entry with alias 'nope'" in missing.stderr
    # Its own alias: keytool says "Destination alias <gw> already exists" (mtls renamed
    # "gw to gw", exit 0, h234).
    itself = fails(1, "changealias", "--keystore", path, "--alias", "gw", "--dest-alias", "gw")
    assert "is the entry's own" in itself.stderr
    # Named in another case, to its own alias: keytool refuses it the same (h236).
    itself = fails(1, "changealias", "--keystore", path, "--alias", "GW", "--dest-alias", "gw")
    assert "is the entry's own" in itself.stderr
    if store_type == "JKS":
        # A change of case alone changes nothing in a JKS file (it keeps aliases
        # lower-cased): it said "Renamed gw to gw", exit 0 (h272); keytool refuses it.
        cased = fails(1, "changealias", "--keystore", path, "--alias", "gw", "--dest-alias", "GW")
        assert "differs from 'gw' in case only" in cased.stderr
    assert path.read_bytes() == before
    # keytool's -noprompt, which scripts pass to every command, was exit 2 (h234).
    ok("-changealias", "-keystore", path, "-alias", "gw", "-destalias", "gw-2026", "-noprompt")
    ok("changealias", "--keystore", path, "--alias", "partner", "--dest-alias", "partner-ca")
    listed = run_keytool(any_keytool, "-list", "-keystore", str(path), "-storepass", PASSWORD)
    assert "gw-2026, " in listed and "partner-ca, " in listed and "\ngw, " not in listed
    # The key moved with its own password, the other key untouched.
    assert _key_opens(any_keytool, path, store_type, PASSWORD, "gw-2026", key_password)
    assert _key_opens(any_keytool, path, store_type, PASSWORD, "old", key_password)


def test_rename_keeps_the_entry_in_its_place_and_refuses_a_taken_alias() -> None:
    store = mtls.Keystore.generate("gw", "CN=gw", key_type="EC")
    ca = CA()
    store.add_certificate("a", ca.certificate)
    store.add_certificate("b", ca.certificate)
    store.rename("a", "Root")
    assert store.aliases == ("gw", "Root", "b")
    store.rename("root", "ROOT")  # a change of case alone is a rename
    assert store.aliases == ("gw", "ROOT", "b")
    with pytest.raises(mtls.KeyEntryError, match="alias 'B' already exists"):
        store.rename("root", "B")
    with pytest.raises(mtls.KeyEntryError, match="no entry with alias 'x'"):
        store.rename("x", "y")
    with pytest.raises(ValueError, match="must not be empty"):
        store.rename("gw", "")
    assert store.aliases == ("gw", "ROOT", "b")  # unchanged by the refusals
    # A replaced entry keeps its place too (it moved to the end).
    other = CA(name="other").certificate
    store.add_certificate("root", other, replace=True)
    assert store.aliases == ("gw", "root", "b")
    assert store.certificate("root") == other
    key = store.key_entry("gw")
    store.rename("gw", "gw-2026")
    assert store.key_entry("gw-2026")[1:] == key[1:]


def test_a_keytool_command_mtls_lacks_still_says_so() -> None:
    run = mtls_run("-importpass", "-alias", "x")
    assert run.code == 2 and "mtls has no keytool -importpass" in run.stderr
    assert "gencert" in run.stderr and "printcrl" in run.stderr


def test_the_new_password_takes_keytools_env_and_file_forms(tmp_path: Path) -> None:
    """keytool scripts write -new:env NAME and -new:file PATH as they write
    -storepass:env; the value never shows."""
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    done = ok("-storepasswd", "-keystore", path, "-new:env", "GW_NEW_PASS",
              env={"GW_NEW_PASS": NEW_PASSWORD})  # fmt: skip
    _no_new_password_shown(done)
    assert mtls.Keystore.load(path, NEW_PASSWORD).key_aliases == ("gw",)
    secret = tmp_path / "new.txt"
    secret.write_text(PASSWORD + "\n")
    done = ok("storepasswd", "--keystore", path, "--password", NEW_PASSWORD, "-new:file", secret)
    assert mtls.Keystore.load(path, PASSWORD).key_aliases == ("gw",)


def test_an_empty_new_alias_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    before = path.read_bytes()
    run = fails(2, "changealias", "--keystore", path, "--alias", "gw", "--dest-alias", "")
    assert "--dest-alias must not be empty" in run.stderr and "report" not in run.stderr
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- password-less PKCS#12
# The JDK's cacerts format since JDK 18: no MAC, certificates in the clear. Java opens
# it without a password, and keytool keeps the format when it edits the store.


def _java_lists_without_a_password(keytool: JDK, path: Path) -> str:
    """``keytool -list`` answered with an empty password (Java then skips the MAC)."""
    done = subprocess.run(
        [keytool.keytool, "-J-XX:TieredStopAtLevel=1", "-J-Duser.language=en", "-list",
         "-keystore", str(path)],
        input="\n", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def _passwordless_truststore(keytool: JDK, path: Path, cert: Path) -> None:
    run_keytool(keytool, "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
                "-J-Dkeystore.pkcs12.macAlgorithm=NONE", "-importcert", "-keystore", str(path),
                "-storetype", "PKCS12", "-storepass", PASSWORD, "-alias", "root-a",
                "-file", str(cert))  # fmt: skip


def _has_mac(path: Path) -> bool:
    return parse_pkcs12(path.read_bytes(), PASSWORD).mac_verified


@pytest.mark.keytool
def test_edits_keep_a_passwordless_pkcs12_truststore_passwordless(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    """import, changealias and delete write a password-less store back password-less, as
    keytool does: Java, opening it without a password as it opens cacerts, still sees
    every anchor (they were written with a MAC and encrypted certificates, and Java saw
    an empty store)."""
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    first.write_bytes(CA(name="root a").cert_pem)
    second.write_bytes(CA(name="root b").cert_pem)
    path = tmp_path / "cacerts.p12"
    _passwordless_truststore(jdk_keytool, path, first)
    assert not _has_mac(path)
    # Without a password given, keytool asks (an empty answer opens it): the usage
    # error says --password '' is that answer here.
    asked = fails(2, "import", "--keystore", path, "--alias", "root-b", "--file", second,
                  password_env=False)  # fmt: skip
    assert "opens with --password ''" in asked.stderr
    ok("import", "--keystore", path, "--alias", "root-b", "--file", second)
    assert not _has_mac(path)
    assert mtls.Truststore.load(path, None).aliases == ("root-a", "root-b")
    listed = _java_lists_without_a_password(jdk_keytool, path)
    assert "contains 2 entries" in listed and "root-b" in listed
    ok("changealias", "--keystore", path, "--alias", "root-a", "--dest-alias", "root-c")
    ok("delete", "--keystore", path, "--alias", "root-b")
    assert not _has_mac(path)
    listed = _java_lists_without_a_password(jdk_keytool, path)
    assert "contains 1 entry" in listed and "root-c" in listed
    # A key entry added: mtls writes no key without a MAC, so the store is protected
    # from then on, and the command says so (Java needs the password for the anchors).
    added = mtls_run("genkey", "--keystore", path, "--alias", "gw", "--dname", "CN=gw",
                     "--key-type", "EC")  # fmt: skip
    assert added.code == 0, added.stderr
    assert "not written password-less" in added.stderr
    assert _has_mac(path)
    # The twin: a store keytool wrote with a MAC keeps its MAC through the same edit.
    protected = tmp_path / "protected.p12"
    run_keytool(jdk_keytool, "-importcert", "-keystore", str(protected), "-storetype", "PKCS12",
                "-storepass", PASSWORD, "-alias", "root-a", "-file", str(first))  # fmt: skip
    ok("import", "--keystore", protected, "--alias", "root-b", "--file", second)
    assert _has_mac(protected)
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(protected, None)
    assert "contains 2 entries" in run_keytool(
        jdk_keytool, "-list", "-keystore", str(protected), "-storepass", PASSWORD
    )


@pytest.mark.keytool
def test_convert_protects_the_copy_of_a_passwordless_store(
    tmp_path: Path, jdk_keytool: JDK
) -> None:
    """A new store is made, as keytool -importkeystore makes one: under the password
    given for it, whatever the source's protection."""
    cert = tmp_path / "a.pem"
    cert.write_bytes(CA(name="root a").cert_pem)
    path = tmp_path / "cacerts.p12"
    _passwordless_truststore(jdk_keytool, path, cert)
    target = tmp_path / "copy.p12"
    ok("convert", "--keystore", path, "--to", "PKCS12", "--out", target,
       "--out-password", NEW_PASSWORD)  # fmt: skip
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(target, None)
    assert mtls.Truststore.load(target, NEW_PASSWORD).aliases == ("root-a",)


@pytest.mark.keytool
def test_storepasswd_protects_a_passwordless_pkcs12_store(tmp_path: Path, jdk_keytool: JDK) -> None:
    """A new password is asked for: the store is written with a MAC and its certificates
    encrypted under it, not left password-less with the password unused."""
    cert = tmp_path / "a.pem"
    cert.write_bytes(CA(name="root a").cert_pem)
    path = tmp_path / "cacerts.p12"
    _passwordless_truststore(jdk_keytool, path, cert)
    done = ok("storepasswd", "--keystore", path, "--new-password", NEW_PASSWORD)
    _no_new_password_shown(done)
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Truststore.load(path, None)
    assert mtls.Truststore.load(path, NEW_PASSWORD).aliases == ("root-a",)
    assert "root-a" in run_keytool(
        jdk_keytool, "-list", "-keystore", str(path), "-storepass", NEW_PASSWORD
    )


@pytest.mark.keytool
def test_a_pkcs12_keystore_with_an_empty_password_is_refused_in_words(
    tmp_path: Path, openssl_bin: str, jdk_keytool: JDK
) -> None:
    """openssl pkcs12 -export -passout pass: writes one; mtls reads it, but writes no key
    under an empty password: each edit says so and how to go on, the file untouched (it
    said "unexpected ValueError ... please report it"). storepasswd gives it a password."""
    ca = CA(name="ca")
    identity = ca.issue_cert("leaf")
    key, cert, ca_cert = tmp_path / "leaf.key", tmp_path / "leaf.pem", tmp_path / "ca.pem"
    key.write_bytes(identity.private_key_pem)
    cert.write_bytes(identity.cert_pem)
    ca_cert.write_bytes(ca.cert_pem)
    path = tmp_path / "empty.p12"
    subprocess.run([openssl_bin, "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
                    "-name", "leaf", "-passout", "pass:", "-out", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    before = path.read_bytes()
    for args in (
        ("changealias", "--alias", "leaf", "--dest-alias", "other"),
        ("import", "--alias", "ca", "--file", ca_cert),
        ("genkey", "--alias", "second", "--dname", "CN=second"),
    ):
        refused = fails(1, *args, "--keystore", path, "--password", "")
        assert "its password is empty" in refused.stderr
        assert "mtls storepasswd" in refused.stderr and "unexpected" not in refused.stderr
        assert path.read_bytes() == before
    # convert --merge into it ends in the same words (it said "unexpected ValueError").
    source = tmp_path / "other.p12"
    ok("genkey", "--keystore", source, "--alias", "other", "--dname", "CN=other",
       "--key-type", "EC")  # fmt: skip
    merged = fails(1, "convert", "--keystore", source, "--to", "PKCS12", "--out", path,
                   "--merge", "--out-password", "")  # fmt: skip
    assert "its password is empty" in merged.stderr and "unexpected" not in merged.stderr
    assert path.read_bytes() == before
    ok("storepasswd", "--keystore", path, "--password", "", "--new-password", NEW_PASSWORD)
    ok("changealias", "--keystore", path, "--password", NEW_PASSWORD, "--alias", "leaf",
       "--dest-alias", "other")  # fmt: skip
    assert "other" in run_keytool(
        jdk_keytool, "-list", "-keystore", str(path), "-storepass", NEW_PASSWORD
    )


def test_storepasswd_warns_of_a_password_jdk17_cannot_open(tmp_path: Path) -> None:
    """As genkey, import and convert warn when they write such a store: JDK 17's PKCS12
    reader refuses a password outside printable ASCII (keytool 17 -storepasswd refuses
    to set one). delete, changealias and keypasswd show the library's warnings too."""
    unusual = "p\u00e4ssw\u00f6rd-Neu-1"
    for kind in ("PKCS12", "JKS"):
        path = tmp_path / f"gw.{kind.lower()}"
        ok("genkey", "--keystore", path, "--store-type", kind, "--alias", "gw",
           "--dname", "CN=gw", "--key-type", "EC")  # fmt: skip
        done = mtls_run("storepasswd", "--keystore", path, "--new-password", unusual)
        assert done.code == 0, done.stderr
        if kind == "PKCS12":
            assert "mtls: warning:" in done.stderr and "JDK 17" in done.stderr
            assert mtls.Keystore.load(path, unusual).key_aliases == ("gw",)
        else:  # the twin: JKS takes any password on every JDK
            assert done.stderr == ""
        assert unusual not in done.stdout + done.stderr


def test_list_says_what_keytool_would_not_list(tmp_path: Path, openssl_bin: str) -> None:
    """A key in an unencrypted keyBag (openssl -keypbe NONE) is listed, as mtls reads
    it, with the warning mtls check gives: keytool lists 0 entries there, and WSO2's
    gateway has no key. The twin, the same key encrypted, lists without a warning."""
    ca = CA(name="ca")
    identity = ca.issue_cert("leaf")
    key, cert = tmp_path / "leaf.key", tmp_path / "leaf.pem"
    key.write_bytes(identity.private_key_pem)
    cert.write_bytes(identity.cert_pem)
    for name, extra in (("plain.p12", ["-keypbe", "NONE", "-certpbe", "NONE"]), ("ok.p12", [])):
        subprocess.run([openssl_bin, "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
                        "-passout", f"pass:{PASSWORD}", "-out", str(tmp_path / name), *extra],
                       check=True, capture_output=True)  # fmt: skip
    listed = mtls_run("list", "--keystore", tmp_path / "plain.p12")
    assert listed.code == 0 and "PrivateKeyEntry" in listed.stdout
    assert "mtls: warning:" in listed.stderr and "keyBag" in listed.stderr
    as_json = json.loads(mtls_run("list", "--keystore", tmp_path / "plain.p12", "--json").stdout)
    assert any("keyBag" in warning for warning in as_json["warnings"])
    twin = ok("list", "--keystore", tmp_path / "ok.p12")
    assert "PrivateKeyEntry" in twin.stdout


def test_a_new_password_is_counted_in_javas_characters(tmp_path: Path, jdk_keytool: JDK) -> None:
    """keytool counts a password's six characters as Java does (UTF-16 code units):
    three emoji are six, and it takes them; mtls counted three and refused (h137).
    Twin: two emoji (four) are refused, as keytool refuses them."""
    path = tmp_path / "gw.jks"
    _keystore(jdk_keytool, path, "JKS", {"gw": PASSWORD})
    short = fails(2, "storepasswd", "--keystore", path, "--password", PASSWORD,
                  "--new-password", "\U0001f511\U0001f511")  # fmt: skip
    assert "at least 6 characters" in short.stderr
    new = "\U0001f511\U0001f511\U0001f511"
    ok("storepasswd", "--keystore", path, "--password", PASSWORD, "--new-password", new)
    assert "gw, " in run_keytool(jdk_keytool, "-list", "-keystore", str(path), "-storepass", new)


def test_keytools_noprompt_is_taken_by_every_keytool_command(tmp_path: Path) -> None:
    """keytool takes -noprompt (and -storetype) with any command, and scripts pass them
    everywhere: mtls refused them (exit 2, "unrecognized arguments") but for a few
    commands (h234)."""
    store = ("-keystore", tmp_path / "np.p12", "-storepass", PASSWORD)
    ok("-genkeypair", *store, "-alias", "a", "-dname", "CN=a", "-keyalg", "EC", "-noprompt")
    ok("-list", *store, "-noprompt")
    ok("-noprompt", "-list", *store)  # before the command, as keytool takes it too (h236)
    ok("-exportcert", *store, "-alias", "a", "-file", tmp_path / "a.crt", "-noprompt")
    # keytool's -storetype too, which scripts pass to every command (h234).
    typed = ("-storetype", "PKCS12")
    ok("-certreq", *store, "-alias", "a", "-file", tmp_path / "a.csr", "-noprompt", *typed)
    ok("-changealias", *store, "-alias", "a", "-destalias", "b", *typed)
    ok("-changealias", *store, "-alias", "b", "-destalias", "a", *typed)
    ok("-printcert", "-file", tmp_path / "a.crt", "-noprompt")
    ok("-printcertreq", "-file", tmp_path / "a.csr", "-noprompt")
    ok("-storepasswd", *store, "-new", PASSWORD + "-2", "-noprompt", *typed)
    ok("-delete", "-keystore", tmp_path / "np.p12", "-storepass", PASSWORD + "-2", "-alias",
       "a", "-noprompt", *typed)  # fmt: skip


def test_list_reads_a_password_less_pkcs12_without_a_password_as_keytool(
    tmp_path: Path, any_keytool: JDK
) -> None:
    """A PKCS#12 in the JDK's password-less form (KeyStore.store(out, null)) is listed
    by keytool given no password; mtls list asked for one, exit 2 (h235). The twin: a
    store with an integrity check still needs its password."""
    ca = CA()
    open_store = tmp_path / "open.p12"
    ca.truststore().save(open_store, PASSWORD, store_type="PKCS12", passwordless=True)
    listed = subprocess.run(
        [any_keytool.keytool, "-list", "-keystore", str(open_store)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert "trustedCertEntry" in listed.stdout, listed.stdout + listed.stderr
    run = ok("list", "--keystore", open_store, password_env=False)
    assert "ca  trustedCertEntry" in run.stdout
    closed = tmp_path / "closed.p12"
    ca.truststore().save(closed, PASSWORD, store_type="PKCS12")
    needs = fails(2, "list", "--keystore", closed, password_env=False)
    assert "the store password of" in needs.stderr


# --------------------------------------------------------------------------- h272


WRONG_KEY_PASSWORD = "Wr0ngKeyPass-9"


def test_a_pkcs12_key_password_is_ignored_by_every_command_as_keytool_ignores_it(
    tmp_path: Path, any_keytool: JDK
) -> None:
    """certreq, gencert and convert tried --key-password on every PKCS12 key and blamed
    the first ("does not unlock key entry 'first'"), even for an alias the store does
    not hold; keytool ignores it with a warning, as mtls's delete and genkey did (h272)."""
    path = tmp_path / "two.p12"
    _keystore(any_keytool, path, "PKCS12", {"first": PASSWORD, "leaf": PASSWORD})
    wrong = ("--key-password", WRONG_KEY_PASSWORD)
    run = mtls_run("certreq", "--keystore", path, "--alias", "leaf", *wrong)
    assert run.code == 0 and "BEGIN CERTIFICATE REQUEST" in run.stdout, run.stderr
    assert "the key password is ignored" in run.stderr and WRONG_KEY_PASSWORD not in run.stderr
    pem = tmp_path / "leaf.pem"
    run = mtls_run("convert", "--keystore", path, "--alias", "leaf", *wrong, "--to", "PEM",
                   "--out", pem, "--out-password", "")  # fmt: skip
    assert run.code == 0 and "the key password is ignored" in run.stderr, run.stderr
    # probe reads the keystore the same way (h278): the port answers nothing, but the
    # key opened (no "does not unlock key entry 'first'").
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run = mtls_run("probe", f"https://127.0.0.1:{port}/", "--keystore", path, "--alias", "leaf",
                   *wrong, "--timeout", "5")  # fmt: skip
    assert "the key password is ignored" in run.stderr, run.stdout + run.stderr
    assert "does not unlock" not in run.stdout + run.stderr
    # The twins: an alias the store does not hold is named as such, and a JKS key's own
    # password is still checked (each key has one there).
    run = mtls_run("certreq", "--keystore", path, "--alias", "nope", *wrong)
    assert run.code == 1 and "has no key entry 'nope'" in run.stderr, run.stderr
    jks = tmp_path / "two.jks"
    _keystore(any_keytool, jks, "JKS", {"leaf": "Leaf-own-pw1"})
    fails(1, "certreq", "--keystore", jks, "--alias", "leaf", *wrong)


def test_a_jceks_store_holding_secret_keys_is_not_sent_to_a_conversion_that_refuses_it(
    tmp_path: Path, any_keytool: JDK
) -> None:
    """delete (and every change) on a JCEKS store said "convert it first", and convert
    then refused its secret keys: a dead end where keytool -delete works (h272)."""
    path = tmp_path / "c.jceks"
    store = _keystore(any_keytool, path, "JCEKS", {"leaf": PASSWORD})
    run_keytool(any_keytool, "-genseckey", *store, "-alias", "secret1", "-keyalg", "AES",
                "-keysize", "128")  # fmt: skip
    run = fails(1, "delete", "--keystore", path, "--alias", "leaf")
    assert "holding secret keys ('secret1')" in run.stderr and "keytool -delete" in run.stderr
    assert "convert it first" not in run.stderr
    # The twin: one without secret keys is sent to the conversion, which works.
    plain = tmp_path / "p.jceks"
    _keystore(any_keytool, plain, "JCEKS", {"leaf": PASSWORD})
    assert "convert it first" in fails(1, "delete", "--keystore", plain, "--alias", "leaf").stderr
    ok("convert", "--keystore", plain, "--to", "JKS", "--out", tmp_path / "p.jks")


def test_the_commands_a_message_gives_are_quoted_for_the_shell(
    tmp_path: Path, any_keytool: JDK
) -> None:
    """certreq's "next" line printed `--alias rsa 4096 key`, which a shell splits (h272);
    delete named the entry as typed, not as the store spells it."""
    folder = tmp_path / "my stores"
    folder.mkdir()
    path = folder / "gw.p12"
    _keystore(any_keytool, path, "PKCS12", {"RSA 4096 Key": PASSWORD, "plain": PASSWORD})
    run = ok("certreq", "--keystore", path, "--alias", "rsa 4096 key", "--file",
             tmp_path / "req.pem")  # fmt: skip
    assert f"mtls import --keystore '{path}' --alias 'rsa 4096 key' --file REPLY" in run.stdout
    run = ok("certreq", "--keystore", path, "--alias", "plain", "--file", tmp_path / "r2.pem")
    assert "--alias plain --file REPLY" in run.stdout  # the twin: a plain word stays as it is
    deleted = ok("delete", "--keystore", path, "--alias", "PLAIN")
    assert deleted.stdout.startswith("Deleted plain (PrivateKeyEntry)")


def test_export_writes_no_der_to_a_terminal(tmp_path: Path) -> None:
    """keytool -exportcert writes DER to a terminal; a certificate's bytes reach it raw
    then (h272). Refused as gencert refuses it; PEM (--rfc) is written."""
    from tests.cli.test_genkey import Terminal

    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    args = ("export", "--keystore", path, "--password", PASSWORD, "--alias", "gw")
    der = Terminal(*args)
    der.expect("pass --rfc for PEM on a terminal")
    assert der.finish()[0] == 2
    pem = Terminal(*args, "--rfc")
    pem.expect("-----END CERTIFICATE-----")
    assert pem.finish()[0] == 0


def test_a_wrong_password_typed_at_the_prompt_is_said_to_be_that(tmp_path: Path) -> None:
    """The error named --password and MTLS_STORE_PASSWORD, which were not used (h272)."""
    from tests.cli.test_genkey import Terminal

    path = tmp_path / "gw.p12"
    CA().issue_cert("gw").write_keystore(path, PASSWORD, store_type="PKCS12")
    typed = Terminal("list", "--keystore", path)
    typed.expect("Enter keystore password:")
    os.write(typed.fd, WRONG_KEY_PASSWORD.encode() + b"\n")
    code, shown = typed.finish()
    assert code == 1 and "the password typed at the prompt: check it" in shown, shown
    assert WRONG_KEY_PASSWORD not in shown
    # The twin: a wrong --password is still named as the option, in the next command
    # of one process too (h277: the prompt was remembered past its command).
    run = fails(1, "list", "--keystore", path, "--password", WRONG_KEY_PASSWORD)
    assert "comes from --password" in run.stderr
    from mtls._cli import _common

    _common._PROMPTED.add("--password")  # as if a command before had prompted
    _common.remember_argv_secrets(["list"])  # what main() does first
    assert not _common._PROMPTED
