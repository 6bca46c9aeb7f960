"""WSO2's secure vault: values encrypted by Java itself (javax.crypto.Cipher with the
cipher tool's transformations, the self-contained JSON format, AES-GCM) decrypt with
mtls.wso2.SecureVault; every positive has its negative twin."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

import mtls
from mtls._vault import product_store_path, read_properties
from mtls.testing import CA, MTLSServer
from mtls.wso2 import PASSWORD_ENV, SecureVault, SecureVaultError
from tests._helpers import JAVA_SOURCES, JAVAS, PASSWORD, profile_xml, whoami

SOURCE = JAVA_SOURCES / "VaultEncrypt.java"
needs_java = pytest.mark.skipif(not JAVAS, reason="needs a JDK's java launcher")
KEYTOOL = shutil.which("keytool")
AES_HEX = "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f"
OTHER_AES_HEX = "ff" * 32
ENCRYPTION_KEY = "03BAFEB27A8E871CAD83C5CD4E771DAB"  # WSO2's sample: 32 chars, used as bytes
OAEP = "RSA/ECB/OAEPwithSHA1andMGF1Padding"


def java_encrypt(java: str, keystore: Path | None, alias: str, *jobs: tuple[str, str]) -> list[str]:
    """One JVM run of VaultEncrypt.java: a value per (mode, plaintext) job."""
    args = [java, str(SOURCE), str(keystore) if keystore else "-", PASSWORD, alias]
    for mode, plain in jobs:
        args += [mode, plain]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert len(lines) == len([mode for mode, _ in jobs if not mode.startswith("use:")])
    return lines


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The internal keystores, the gateway identity ("dir": where; "ca": its CA)."""
    d = tmp_path_factory.mktemp("vault-stores")
    vault_ca = CA(name="vault CA", key_type="RSA")
    for name, cn in (("wso2carbon.jks", "internal"), ("other.jks", "other")):
        if KEYTOOL:  # what WSO2 ships: keytool's self-signed RSA entry (Java checks key usage)
            subprocess.run(
                [KEYTOOL, "-genkeypair", "-alias", "wso2carbon", "-keyalg", "RSA",
                 "-keysize", "2048", "-dname", f"CN={cn}", "-storetype", "JKS",
                 "-keystore", str(d / name), "-storepass", PASSWORD, "-keypass", PASSWORD],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        else:
            issued = CA(name=cn, key_type="RSA").issue_cert("localhost", common_name=cn)
            issued.write_keystore(d / name, PASSWORD, alias="wso2carbon")
    # The gateway identity whose password the vault holds.
    gateway = vault_ca.issue_cert("gateway", common_name="gateway")
    gateway.write_keystore(d / "gateway.p12", PASSWORD, store_type="PKCS12")
    vault_ca.write_truststore(d / "trust.jks", PASSWORD)
    for kind in ("JCEKS", "PKCS12") if KEYTOOL else ():  # the symmetric mode's AES key entry
        subprocess.run(
            [str(KEYTOOL), "-genseckey", "-alias", "wso2carbon", "-keyalg", "AES", "-keysize", "256",
             "-storetype", kind, "-keystore", str(d / f"secret.{kind.lower()}"),
             "-storepass", PASSWORD, "-keypass", PASSWORD],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return {"dir": d, "ca": vault_ca}


@pytest.fixture(scope="module", params=JAVAS, ids=lambda p: "jdk25" if "25" in p else "jdk")
def values(request: pytest.FixtureRequest, stores: dict[str, Any]) -> dict[str, str]:
    """Values Java encrypted, by name; the plaintext of each is ``plain-<name>``."""
    java, d = request.param, stores["dir"]
    names = {
        "pkcs1": "rsa:RSA",
        "pkcs1_explicit": "rsa:RSA/ECB/PKCS1Padding",
        "oaep": f"rsa:{OAEP}",
        "sc_oaep": f"selfcontained:{OAEP}",
        "sc_pkcs1": "selfcontained:RSA",
        "gateway": "rsa:RSA",
        "aes_key_rsa": "rsa:RSA",
    }
    plain = {"gateway": PASSWORD, "aes_key_rsa": ENCRYPTION_KEY}
    jobs = [(mode, plain.get(n, f"plain-{n}")) for n, mode in names.items()]
    jobs += [
        (f"aesgcm-key:{AES_HEX}", "plain-aes_key"),
        (f"internal-aesgcm:{ENCRYPTION_KEY}", "plain-aes_internal"),
    ]
    names |= {"aes_key": "", "aes_internal": ""}
    if KEYTOOL:  # the cipher tool's symmetric mode, with the JCEKS secret-key entry
        for kind in ("jceks", "pkcs12"):
            jobs += [
                ("use:wso2carbon", str(d / f"secret.{kind}")),
                ("aesgcm-store", f"plain-{kind}"),
            ]
            names[f"aes_{kind}"] = ""
    # One JVM per JDK: compiling the single-file program is the slow part.
    return dict(
        zip(names, java_encrypt(java, d / "wso2carbon.jks", "wso2carbon", *jobs), strict=True)
    )


def make_home(
    root: Path,
    stores: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    toml_extra: str = "",
    keystore: str = "wso2carbon.jks",
    secret_conf: dict[str, str] | None = None,
    cipher_text: dict[str, str] | None = None,
    password: str | None = PASSWORD,
) -> Path:
    """A product home as API Manager lays it out."""
    home = root / "home"
    conf = home / "repository" / "conf"
    (conf / "security").mkdir(parents=True, exist_ok=True)
    security = home / "repository" / "resources" / "security"
    security.mkdir(parents=True, exist_ok=True)
    shutil.copy(stores["dir"] / keystore, security / Path(keystore).name)
    lines = [
        "[keystore.internal]",
        f'file_name = "{Path(keystore).name}"',
        'alias = "wso2carbon"',
    ]
    if password is not None:
        lines.append(f'password = "{password}"')
    lines.append(toml_extra)
    if secrets is not None:
        lines.append("[secrets]")
        lines += [f'{alias} = "{value}"' for alias, value in secrets.items()]
    (conf / "deployment.toml").write_text("\n".join(lines) + "\n")
    if secret_conf is not None:
        (conf / "security" / "secret-conf.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in secret_conf.items())
        )
    if cipher_text is not None:
        (conf / "security" / "cipher-text.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in cipher_text.items())
        )
    return home


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """No plaintext, password or ciphertext in the message."""
    text = str(exc)
    for secret in (PASSWORD, *secrets):
        assert secret not in text


# --------------------------------------------------------------------------- asymmetric


@needs_java
def test_rsa_default_transformation_decrypts(tmp_path, stores, values) -> None:
    home = make_home(
        tmp_path,
        stores,
        secrets={"a": values["pkcs1"], "b": values["pkcs1_explicit"]},
    )
    vault = SecureVault(home)
    assert vault.configured
    assert vault("a").reveal() == "plain-pkcs1"
    assert vault.resolve("b").reveal() == "plain-pkcs1_explicit"
    assert repr(vault("a")) == "Secret('********')"


@needs_java
def test_rsa_value_from_another_keystore_is_refused(tmp_path, stores, values) -> None:
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]}, keystore="other.jks")
    with pytest.raises(SecureVaultError, match=r"'a' does not decrypt with the private key") as e:
        SecureVault(home)("a")
    assert e.value.alias == "a"
    assert_clean(e.value, values["pkcs1"], "plain-pkcs1")


@needs_java
def test_oaep_needs_the_algorithm_secret_conf_names(tmp_path, stores, values) -> None:
    conf = {"secVault.enabled": "true", "secretRepositories.file.algorithm": OAEP}
    home = make_home(tmp_path / "1", stores, secrets={"a": values["oaep"]}, secret_conf=conf)
    assert SecureVault(home)("a").reveal() == "plain-oaep"
    # Twin: without the algorithm the product (and mtls) use Java's "RSA": PKCS#1 fails.
    home = make_home(tmp_path / "2", stores, secrets={"a": values["oaep"]})
    with pytest.raises(SecureVaultError, match=r"\(RSA\): the value is damaged") as e:
        SecureVault(home)("a")
    # The message says where the padding comes from (a value encrypted with OAEP while
    # secret-conf names none is the usual cause).
    assert "secretRepositories.file.algorithm" in str(e.value)


def test_a_false_pkcs1_pass_is_reported_as_the_wrong_padding(tmp_path, stores) -> None:
    """About one OAEP value in 260 passes PKCS#1 v1.5's padding check and "decrypts" to
    random bytes. The message then said only "not UTF-8 text", without the padding
    advice a failed check gives (a flake of the test above, made deterministic here
    with a raw-RSA block that has valid PKCS#1 padding around bytes that are not text)."""
    keystore = mtls.Keystore.load(stores["dir"] / "wso2carbon.jks", PASSWORD)
    public = keystore.certificate("wso2carbon").public_key().public_numbers()  # type: ignore[union-attr]
    size = (public.n.bit_length() + 7) // 8
    garbage = bytes(range(0x80, 0x100)) * 2
    block = b"\x00\x02" + b"\x5a" * 8 + b"\x00" + garbage
    block = block[:size]
    value = base64.b64encode(
        pow(int.from_bytes(block, "big"), public.e, public.n).to_bytes(size, "big")
    ).decode()
    home = make_home(tmp_path, stores, secrets={"a": value})
    with pytest.raises(SecureVaultError, match=r"\(RSA\): the value is damaged") as e:
        SecureVault(home)("a")
    assert "secretRepositories.file.algorithm" in str(e.value)
    assert "another encoding" in str(e.value)
    assert_clean(e.value, value)
    # Twin: the same padding around UTF-8 text is that text.
    block = (b"\x00\x02" + b"\x5a" * 8 + b"\x00" + b"x" * size)[:size]
    value = base64.b64encode(
        pow(int.from_bytes(block, "big"), public.e, public.n).to_bytes(size, "big")
    ).decode()
    home = make_home(tmp_path / "twin", stores, secrets={"a": value})
    assert SecureVault(home)("a").reveal() == "x" * (size - 11)


@needs_java
def test_self_contained_values_carry_their_transformation(tmp_path, stores, values) -> None:
    home = make_home(tmp_path, stores, secrets={"o": values["sc_oaep"], "p": values["sc_pkcs1"]})
    vault = SecureVault(home)
    assert vault("o").reveal() == "plain-sc_oaep"
    assert vault("p").reveal() == "plain-sc_pkcs1"
    document = json.loads(base64.b64decode(values["sc_oaep"]))
    assert document["t"] == OAEP and document["tpd"] == "SHA-1"


@needs_java
def test_self_contained_thumbprint_mismatch_names_both_certificates(
    tmp_path, stores, values
) -> None:
    home = make_home(tmp_path, stores, secrets={"o": values["sc_oaep"]}, keystore="other.jks")
    expected = json.loads(base64.b64decode(values["sc_oaep"]))["tp"]
    with pytest.raises(SecureVaultError, match="thumbprint") as e:
        SecureVault(home)("o")
    assert expected in str(e.value)
    assert "CN=other" in str(e.value)
    assert_clean(e.value, values["sc_oaep"], "plain-sc_oaep")


@needs_java
def test_a_thumbprint_that_is_no_thumbprint_is_shown_bounded(tmp_path, stores, values) -> None:
    """The twin of the test above: a ``tp`` of 5,000 characters (a file's text, not a
    digest) was repeated whole in the message (h174: 2,270 characters from one value)."""
    document = json.loads(base64.b64decode(values["sc_oaep"]))
    document["tp"] = "AB" * 2500
    written = base64.b64encode(json.dumps(document).encode()).decode()
    home = make_home(tmp_path, stores, secrets={"o": written})
    with pytest.raises(SecureVaultError, match="thumbprint 'ABAB") as e:
        SecureVault(home)("o")
    assert len(str(e.value)) < 1000 and "..." in str(e.value)


@needs_java
def test_damaged_ciphertexts_are_refused(tmp_path, stores, values) -> None:
    raw = bytearray(base64.b64decode(values["pkcs1"]))
    raw[10] ^= 0x40
    damaged = base64.b64encode(bytes(raw)).decode()
    home = make_home(
        tmp_path, stores, secrets={"good": values["pkcs1"], "bad": damaged, "junk": "not!base64"}
    )
    vault = SecureVault(home)
    assert vault("good").reveal() == "plain-pkcs1"
    with pytest.raises(SecureVaultError, match="'bad' does not decrypt") as e:
        vault("bad")
    assert_clean(e.value, damaged)
    with pytest.raises(SecureVaultError, match="'junk' is neither"):
        vault("junk")


def test_an_alias_written_empty_is_said_to_be_empty(tmp_path, stores) -> None:
    """``tls_pw = ""`` in [secrets] is skipped, as WSO2's repository skips an empty
    value: the error said "no secret alias 'tls_pw' ... add it" of an alias that is
    there (h238). It says the value is empty and what to write. The twin: one written
    in brackets is read."""
    home = make_home(tmp_path, stores, secrets={"empty": "", "known": "[value]"})
    with pytest.raises(SecureVaultError, match=r"'empty' in \[secrets\] of .* is empty") as e:
        SecureVault(home)("empty")
    assert "no secret alias" not in str(e.value) and "square brackets" in str(e.value)
    assert SecureVault(home)("known").reveal() == "value"


def test_unknown_alias_is_an_error_naming_it(tmp_path, stores) -> None:
    home = make_home(tmp_path, stores, secrets={"known": "[value]"})
    with pytest.raises(SecureVaultError, match="no secret alias 'missing'") as e:
        SecureVault(home)("missing")
    assert isinstance(e.value, mtls.ProfileConfigError)
    # It names the files it looked in, and only those that are there.
    assert "[secrets] of" in str(e.value) and "cipher-text.properties" not in str(e.value)
    assert SecureVault(home)("known").reveal() == "value"
    # An alias is what the user searches the files for: shown whole, not cut at 60.
    long_alias = "Axis2.Https.Sender.CustomSSLProfile.Profile1.KeyStore.Password"
    with pytest.raises(SecureVaultError, match=f"no secret alias '{re.escape(long_alias)}' in"):
        SecureVault(home)(long_alias)
    (home / "repository" / "conf" / "deployment.toml").unlink()
    with pytest.raises(SecureVaultError, match=r"neither deployment\.toml nor cipher-text") as e:
        SecureVault(home)("missing")
    assert "[secrets] of" not in str(e.value)


@pytest.mark.parametrize(
    ("written", "kind"),
    [("12345", "a number"), ("true", "a boolean"), ("[1, 2]", "an array"), ("{a = 1}", "a table")],
)
def test_a_secret_that_is_not_a_string_is_named_as_such(tmp_path, stores, written, kind) -> None:
    home = make_home(tmp_path, stores, secrets={"known": "[value]"})
    toml = home / "repository" / "conf" / "deployment.toml"
    toml.write_text(toml.read_text() + f"ks_pw = {written}\n")
    with pytest.raises(
        SecureVaultError, match=f"'ks_pw' in \\[secrets\\].* is {kind}, not a string"
    ):
        SecureVault(home)("ks_pw")
    # The twin: the same value in quotes is a value (plain text here).
    toml.write_text(toml.read_text().replace(f"ks_pw = {written}", 'ks_pw = "[12345]"'))
    assert SecureVault(home)("ks_pw").reveal() == "12345"


def test_the_internal_keystore_password_keeps_its_spaces(tmp_path, stores) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    spaced = " spaced pw "
    identity = CA(name="spaced", key_type="RSA").issue_cert("vault")
    identity.write_keystore(tmp_path / "spaced.jks", spaced, alias="wso2carbon")
    public = identity.keystore().certificate("vault").public_key()
    value = base64.b64encode(public.encrypt(b"plain-spaced", padding.PKCS1v15())).decode()  # type: ignore[union-attr]
    home = make_home(
        tmp_path, stores, secrets={"s": value}, keystore=str(tmp_path / "spaced.jks"),
        password=spaced,
    )  # fmt: skip
    assert SecureVault(home)("s").reveal() == "plain-spaced"
    # Twin: the keystore's password is the trimmed one; the TOML's spaces are kept.
    identity.write_keystore(tmp_path / "spaced.jks", spaced.strip(), alias="wso2carbon")
    home = make_home(
        tmp_path, stores, secrets={"s": value}, keystore=str(tmp_path / "spaced.jks"),
        password=spaced,
    )  # fmt: skip
    with pytest.raises(SecureVaultError):
        SecureVault(home)("s")


@needs_java
def test_an_unknown_encryption_mode_is_read_as_rsa_with_a_warning(
    tmp_path, stores, values, caplog
) -> None:
    """WSO2's SecretManager reads any encryptionMode it does not know as RSA: so does
    mtls, saying so once (it refused such a vault, which the server reads)."""
    conf = {"secVault.enabled": "true", "secretRepositories.file.encryptionMode": "RSA"}
    home = make_home(tmp_path, stores, secrets={"s": values["pkcs1"]}, secret_conf=conf)
    vault = SecureVault(home)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert vault("s").reveal() == "plain-pkcs1"
        assert vault("s").reveal() == "plain-pkcs1"
    assert caplog.text.count("encryptionMode='RSA' is not a mode WSO2 knows") == 1
    # The twin: the known asymmetric spelling says nothing.
    caplog.clear()
    conf["secretRepositories.file.encryptionMode"] = "asymmetric"
    home = make_home(tmp_path, stores, secrets={"s": values["pkcs1"]}, secret_conf=conf)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert SecureVault(home)("s").reveal() == "plain-pkcs1"
    assert "encryptionMode" not in caplog.text


@needs_java
def test_the_key_based_symmetric_mode_takes_its_key_as_symmetric_key(
    tmp_path, stores, values
) -> None:
    # Helm's secret-conf for API Manager: the mediation vault's key-based mode, whose AES
    # key the server reads from a key file at start-up; the values are AES-GCM JSON.
    conf = {
        "secVault.enabled": "true",
        "secretRepositories.file.encryptionMode": "key.based.symmetric.encryption",
    }
    home = make_home(tmp_path, stores, secrets={"s": values["aes_key"]}, secret_conf=conf)
    assert SecureVault(home, symmetric_key=AES_HEX)("s").reveal() == "plain-aes_key"
    with pytest.raises(SecureVaultError, match=r"key file at start-up.*symmetric_key="):
        SecureVault(home)("s")


# --------------------------------------------------------------------------- symmetric


@needs_java
def test_aes_gcm_with_a_given_key(tmp_path, stores, values) -> None:
    conf = {"secVault.enabled": "true", "secretRepositories.file.encryptionMode": "symmetric"}
    home = make_home(tmp_path, stores, secrets={"s": values["aes_key"]}, secret_conf=conf)
    assert SecureVault(home, symmetric_key=AES_HEX)("s").reveal() == "plain-aes_key"
    assert SecureVault(home, symmetric_key=bytes.fromhex(AES_HEX))("s").reveal() == (
        "plain-aes_key"
    )
    with pytest.raises(SecureVaultError, match="does not decrypt with the AES key") as e:
        SecureVault(home, symmetric_key=OTHER_AES_HEX)("s")
    assert_clean(e.value, values["aes_key"], "plain-aes_key", AES_HEX)


@needs_java
@pytest.mark.skipif(not KEYTOOL, reason="needs keytool for a secret-key entry")
@pytest.mark.parametrize("kind", ["jceks", "pkcs12"])
def test_aes_gcm_with_the_keystore_secret_key(tmp_path, stores, values, kind) -> None:
    conf = {
        "secVault.enabled": "true",
        "secretRepositories.file.encryptionMode": "symmetric",
        "keystore.identity.location": f"repository/resources/security/secret.{kind}",
        "keystore.identity.alias": "wso2carbon",
    }
    home = make_home(
        tmp_path, stores, secrets={"s": values[f"aes_{kind}"]}, secret_conf=conf,
        keystore=f"secret.{kind}",
    )  # fmt: skip
    assert SecureVault(home)("s").reveal() == f"plain-{kind}"
    # Twin: the value encrypted with another AES key (the one given above).
    home2 = make_home(
        tmp_path / "2", stores, secrets={"s": values["aes_key"]}, secret_conf=conf,
        keystore=f"secret.{kind}",
    )  # fmt: skip
    with pytest.raises(SecureVaultError, match="secret-key entry 'wso2carbon'") as e:
        SecureVault(home2)("s")
    assert_clean(e.value, values["aes_key"], "plain-aes_key")


@needs_java
def test_aes_gcm_internal_format_with_encryption_key(tmp_path, stores, values) -> None:
    extra = f'[encryption]\nkey = "{ENCRYPTION_KEY}"\n'
    home = make_home(tmp_path, stores, secrets={"i": values["aes_internal"]}, toml_extra=extra)
    assert SecureVault(home)("i").reveal() == "plain-aes_internal"
    wrong = '[encryption]\nkey = "13BAFEB27A8E871CAD83C5CD4E771DAB"\n'
    home2 = make_home(
        tmp_path / "2", stores, secrets={"i": values["aes_internal"]}, toml_extra=wrong
    )
    with pytest.raises(SecureVaultError, match=r"\[encryption\] key") as e:
        SecureVault(home2)("i")
    assert_clean(e.value, ENCRYPTION_KEY, "13BAFEB27A8E871CAD83C5CD4E771DAB")
    # The key itself a vault secret (RSA-encrypted by the cipher tool), as estates keep it.
    extra = '[encryption]\nkey = "$secret{encryption_key}"\n'
    home3 = make_home(
        tmp_path / "3", stores, toml_extra=extra,
        secrets={"i": values["aes_internal"], "encryption_key": values["aes_key_rsa"]},
    )  # fmt: skip
    assert SecureVault(home3)("i").reveal() == "plain-aes_internal"
    home4 = make_home(
        tmp_path / "4", stores, toml_extra=extra, secrets={"encryption_key": values["aes_internal"]}
    )
    with pytest.raises(SecureVaultError, match="cannot decrypt itself"):
        SecureVault(home4)("encryption_key")


# --------------------------------------------------------------------------- sources


def test_plain_text_values_resolve_with_one_warning(tmp_path, stores, caplog) -> None:
    home = make_home(tmp_path, stores, secrets={"p": "[not-encrypted-yet]"})
    vault = SecureVault(home)
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert vault("p").reveal() == "not-encrypted-yet"
        assert vault("p").reveal() == "not-encrypted-yet"
    records = [r for r in caplog.records if "plain text" in r.getMessage()]
    assert len(records) == 1 and "'p'" in records[0].getMessage()
    assert "not-encrypted-yet" not in caplog.text
    # WSO2's config mapper refuses a $secret{} naming a plain-text [secrets] value
    # ("Secret references can't be plain text"): marked so that mtls check fails it.
    assert getattr(records[0], "mtls_wso2_cannot_load", False) is True
    assert "-DencryptSecrets=true" in records[0].getMessage()


def test_a_plain_text_cipher_text_properties_value_is_not_marked(tmp_path, stores, caplog) -> None:
    """The twin: plain text in cipher-text.properties is the secure vault's own file, not
    the config mapper's [secrets]: warned about, not marked as what WSO2 cannot load."""
    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"p": "[not-encrypted-yet]"},
    )
    with caplog.at_level(logging.WARNING, logger="mtls"):
        assert SecureVault(home)("p").reveal() == "not-encrypted-yet"
    records = [r for r in caplog.records if "plain text" in r.getMessage()]
    assert len(records) == 1 and not getattr(records[0], "mtls_wso2_cannot_load", False)


def test_a_cipher_text_properties_saved_as_utf16_is_named_as_such(tmp_path, stores) -> None:
    """A Windows editor's UTF-16 file: "no secret alias ...: add it and run ciphertool",
    where the alias was (h282). Java's Properties reads ISO-8859-1, so WSO2 finds none
    either: the message says what the file is. The twin: saved as ASCII, it is found."""
    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"p": "[not-encrypted-yet]"},
    )
    path = home / "repository" / "conf" / "security" / "cipher-text.properties"
    ascii_text = path.read_text()
    path.write_text(ascii_text, encoding="utf-16")
    with pytest.raises(SecureVaultError, match=r"is saved as UTF-16 \(it has NUL bytes\)") as info:
        SecureVault(home)("p")
    assert "not-encrypted-yet" not in str(info.value)
    # A UTF-8 byte-order mark: Java reads it as part of the first alias (h288).
    path.write_bytes(b"\xef\xbb\xbf" + ascii_text.encode())
    with pytest.raises(SecureVaultError, match="starts with a UTF-8 byte-order mark"):
        SecureVault(home)("p")
    # One stray NUL byte is no UTF-16 (h288): the alias is simply not there.
    path.write_bytes(b"q=\x00junk\n")
    with pytest.raises(SecureVaultError) as stray:
        SecureVault(home)("p")
    assert "UTF-16" not in str(stray.value) and "add it and run ciphertool" in str(stray.value)
    path.write_text(ascii_text)
    assert SecureVault(home)("p").reveal() == "not-encrypted-yet"


_FILE_PROVIDER = "org.wso2.securevault.secret.repository.FileBaseSecretRepositoryProvider"
_VAULT_PROVIDER = (
    "org.wso2.carbon.securevault.hashicorp.repository.HashiCorpSecretRepositoryProvider"
)


@pytest.mark.parametrize(
    ("conf", "reads_the_files"),
    [
        ({"secretRepositories": "vault", "secretRepositories.vault.provider": _VAULT_PROVIDER}, False),
        ({"secretRepositories": "file", "secretRepositories.file.provider": _VAULT_PROVIDER}, False),
        ({"secretRepositories": "myrepo", "secretRepositories.myrepo.provider": _FILE_PROVIDER}, False),
        ({"secretRepositories": "hashicorp,custom"}, False),
        ({"secretRepositories": " file , vault"}, False),
        ({"secretRepositories": "file", "secretRepositories.file.provider": _FILE_PROVIDER}, True),
        # No provider for an entry: WSO2's SecretManager stops ("cannot be null").
        ({"secretRepositories": "file"}, False),
        ({"secretRepositories": "file,vault", "secretRepositories.file.provider": _FILE_PROVIDER}, False),
        # Both made: the first in java.util.HashMap's order answers ("file" before
        # "vault" whatever the order written; "kms" before "file").
        ({"secretRepositories": "vault,file", "secretRepositories.file.provider": _FILE_PROVIDER,
          "secretRepositories.vault.provider": _VAULT_PROVIDER}, True),
        ({"secretRepositories": "file,kms", "secretRepositories.file.provider": _FILE_PROVIDER,
          "secretRepositories.kms.provider": _VAULT_PROVIDER}, False),
        # Only the newer secretProviders: no repository answers plain aliases.
        ({"secretProviders": "vault", "secretProviders.vault.provider": _VAULT_PROVIDER}, False),
        ({"secretRepositories": ""}, True),
    ],
)  # fmt: skip
def test_a_vault_without_the_file_repository_reads_no_cipher_text(
    tmp_path, stores, conf, reads_the_files
) -> None:
    """WSO2's SecretManager chains the repository of the entry ``file`` of
    secretRepositories (trimmed as a whole, split at commas, entries not trimmed), made
    by its ``.provider``; the cipher tool's files are FileBaseSecretRepositoryProvider's.
    With ``secretRepositories=vault`` (HashiCorp, as WSO2's docs set it), or a ``file``
    entry whose provider is another, a leftover cipher-text.properties is not read, and
    neither is [secrets]: mtls used the leftover's password, or told the user to add
    the alias to [secrets]. Now every alias says what the file has and what to do."""
    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true", **conf},
        cipher_text={"ks_pw": "[stale-password]"},
    )
    vault = SecureVault(home)
    assert vault.configured
    if reads_the_files:
        assert vault("ks_pw").reveal() == "stale-password"
        return
    with pytest.raises(SecureVaultError) as e:
        vault("ks_pw")
    message = str(e.value)
    assert "WSO2 does not read its aliases from the cipher tool's files" in message
    assert "secret_resolver=" in message and "secret-conf.properties" in message
    assert e.value.alias == "ks_pw"
    assert_clean(e.value, "stale-password")
    # mtls check names it per alias, as it does any alias that does not resolve.
    (entry,) = vault.check()
    assert entry.alias == "ks_pw" and entry.error is not None
    assert "does not read its aliases" in entry.error


def test_no_vault_configured(tmp_path, stores) -> None:
    home = make_home(tmp_path, stores)  # no [secrets], no secret-conf.properties
    assert SecureVault.for_estate(home) is None
    conf = make_home(tmp_path / "2", stores, secret_conf={"secVault.enabled": "true"})
    assert SecureVault.for_estate(conf) is not None
    off = make_home(tmp_path / "3", stores, secret_conf={"secVault.enabled": "false"})
    assert SecureVault.for_estate(off) is None


@needs_java
@pytest.mark.parametrize("source", ["argument", "env", "placeholder", "file", "toml"])
def test_keystore_password_sources(tmp_path, stores, values, monkeypatch, source) -> None:
    home = make_home(
        tmp_path, stores, secrets={"a": values["pkcs1"]},
        password=PASSWORD if source == "toml" else None,
    )  # fmt: skip
    kwargs: dict[str, object] = {}
    if source == "argument":
        kwargs["keystore_password"] = mtls.Secret(PASSWORD)
    elif source == "env":
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    elif source == "placeholder":
        monkeypatch.setenv("VAULT_TEST_PW", PASSWORD)
        kwargs["keystore_password"] = "$env{VAULT_TEST_PW}"
    elif source == "file":
        (home / "password-persist").write_text(PASSWORD + "\n")
    assert SecureVault(home, **kwargs)("a").reveal() == "plain-pkcs1"  # type: ignore[arg-type]
    if source == "file":
        assert (home / "password-persist").exists()  # read, never removed


@needs_java
def test_a_second_line_is_the_key_password_only_under_key_password_true(
    tmp_path, stores, values, monkeypatch
) -> None:
    """WSO2's DefaultSecretCallbackHandler reads the password file's second line as the
    key's password only when started with -Dkey.password=true; otherwise the first line
    is both. mtls took the second line always: a file WSO2 starts with (a stale second
    line left behind) was refused. The twin: with key.password=true the second line is
    the key's password, and a wrong one is refused, saying where it came from."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]}, password=None)
    (home / "password-persist").write_text(PASSWORD + "\nstale-second-line\n")
    assert SecureVault(home)("a").reveal() == "plain-pkcs1"
    with pytest.raises(SecureVaultError) as e:
        SecureVault(home, properties={"key.password": "true"})("a")
    assert "password-persist" in str(e.value)
    assert_clean(e.value, "stale-second-line")
    (home / "password-persist").write_text(PASSWORD + "\n" + PASSWORD + "\n")
    vault = SecureVault(home, properties={"key.password": "true"})
    assert vault("a").reveal() == "plain-pkcs1"


@needs_java
def test_a_password_file_that_is_a_directory_says_so(tmp_path, stores, values, monkeypatch) -> None:
    """A password file that is a directory was told to check its permissions (h130).
    Twin: the same name holding the password opens the vault."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]}, password=None)
    target = home / "password-persist"
    target.mkdir()
    with pytest.raises(SecureVaultError) as e:
        SecureVault(home)("a")
    message = str(e.value)
    assert message.startswith(f"{target}: cannot read the keystore password file")
    assert "it is a directory: give the file's path" in message
    target.rmdir()
    # A loop of symbolic links was "check its permissions" too (h282).
    loop = home / "loop"
    loop.symlink_to(target)
    target.symlink_to(loop)
    with pytest.raises(SecureVaultError, match="its symbolic links form a loop"):
        SecureVault(home)("a")
    target.unlink()
    target.write_text(PASSWORD + "\n")
    assert SecureVault(home)("a").reveal() == "plain-pkcs1"


@needs_java
def test_a_password_file_that_is_a_broken_link_is_named_if_nothing_else_gives_it(
    tmp_path, stores, values, monkeypatch
) -> None:
    """A password file that is a link to nothing (a secret mount gone) was skipped, and
    the vault said no password was configured (h130): it is named. Like WSO2, a later
    file that holds the password is still read (the review h131: raising at the link
    had refused a vault WSO2 opens)."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]}, password=None)
    gone = tmp_path / "secrets" / "vault-password"
    (home / "password").symlink_to(gone)
    with pytest.raises(SecureVaultError) as e:
        SecureVault(home)("a")
    message = str(e.value)
    assert "its password file is a broken link" in message
    assert f"{home / 'password'}: it is a symbolic link to {gone}, which does not exist" in message
    (home / "password-persist").write_text(PASSWORD + "\n")  # WSO2 reads this one
    assert SecureVault(home)("a").reveal() == "plain-pkcs1"
    (home / "password-persist").unlink()
    gone.parent.mkdir()
    gone.write_text(PASSWORD + "\n")  # the mount is back
    assert SecureVault(home)("a").reveal() == "plain-pkcs1"


@needs_java
def test_keystore_password_missing_or_wrong(tmp_path, stores, values, monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]}, password=None)
    with pytest.raises(SecureVaultError, match="needs its password") as e:
        SecureVault(home)("a")
    assert PASSWORD_ENV in str(e.value) and "password-persist" in str(e.value)
    with pytest.raises(SecureVaultError, match="does not open with the password") as e:
        SecureVault(home, keystore_password="not-it")("a")
    assert_clean(e.value, "not-it")


@needs_java
def test_dynamic_secret_from_the_environment(tmp_path, stores, values, monkeypatch) -> None:
    home = make_home(tmp_path, stores, secrets={"d": "$env{VAULT_TEST_CIPHER}"})
    monkeypatch.setenv("VAULT_TEST_CIPHER", values["pkcs1"])
    assert SecureVault(home)("d").reveal() == "plain-pkcs1"
    monkeypatch.delenv("VAULT_TEST_CIPHER")
    with pytest.raises(SecureVaultError, match="VAULT_TEST_CIPHER"):
        SecureVault(home)("d")


@needs_java
def test_a_dollar_brace_secret_is_the_environments_first(tmp_path, stores, values, monkeypatch):
    """WSO2's FileBaseSecretRepository resolves ${NAME} from the environment, then the
    system properties; mtls took properties= first. The twin: $sys{NAME} is the
    properties' first."""
    home = make_home(
        tmp_path, stores, secrets={"d": "${VAULT_TEST_CIPHER}", "s": "$sys{VAULT_TEST_CIPHER}"}
    )
    monkeypatch.setenv("VAULT_TEST_CIPHER", values["pkcs1"])
    vault = SecureVault(home, properties={"VAULT_TEST_CIPHER": "not a ciphertext"})
    assert vault("d").reveal() == "plain-pkcs1"
    with pytest.raises(SecureVaultError):
        vault("s")  # the property, which is no ciphertext


@needs_java
def test_dotted_secret_aliases_are_flattened_as_wso2_reads_them(tmp_path, stores) -> None:
    # `keystore.tls.password = "[...]"` is a dotted key: TOML makes nested tables of it,
    # and WSO2's config mapper and cipher tool flatten them back (dottedKeySet), so
    # $secret{keystore.tls.password} resolves. A segment that is not a bare key is
    # quoted as joinKeyPath writes it (gateway."odd.name"); a key that starts and ends
    # with a quote loses both (config-mapper's extractQuotedContent, and WSO2's own
    # test.toml: "truststore.password" = ...): "only.quoted" is the alias only.quoted.
    # Two keys that give one alias ("whole.key" and whole.key) are refused by name:
    # which one WSO2 takes is its map's order.
    home = make_home(
        tmp_path,
        stores,
        secrets={
            "keystore.tls.password": "[dotted-value]",
            'gateway."odd.name"': "[quoted-segment]",
            "whole.key": "[dotted-b]",
            '"whole.key"': "[quoted-a]",
            '"only.quoted"': "[quoted-only]",
            "plain": "[plain-value]",
        },
    )
    vault = SecureVault(home)
    assert vault.aliases() == (
        'gateway."odd.name"',
        "keystore.tls.password",
        "only.quoted",
        "plain",
        "whole.key",
    )
    assert vault("keystore.tls.password").reveal() == "dotted-value"
    assert vault('gateway."odd.name"').reveal() == "quoted-segment"
    assert vault("only.quoted").reveal() == "quoted-only"
    assert vault("plain").reveal() == "plain-value"
    with pytest.raises(SecureVaultError, match="has both") as info:
        vault("whole.key")
    assert "'whole.key'" in str(info.value) and """'"whole.key"'""" in str(info.value)
    assert "dotted-b" not in str(info.value) and "quoted-a" not in str(info.value)
    with pytest.raises(SecureVaultError, match="no secret alias"):
        vault('"only.quoted"')  # the quotes are not part of the alias
    # A table itself is not an alias: asked for, it is named as one.
    with pytest.raises(SecureVaultError, match=r"'keystore.tls' in \[secrets\].* is a table"):
        vault("keystore.tls")


def test_a_secrets_table_never_hides_a_cipher_text_alias(tmp_path, stores) -> None:
    """[secrets] db.password.old makes a table named db.password, which tomlj does not
    list: the cipher-text.properties alias db.password still resolves (twin: the
    dotted key beside it resolves too)."""
    home = make_home(
        tmp_path,
        stores,
        secrets={"db.password.old": "[from-toml]"},
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"db.password": "[from-properties]"},
    )
    vault = SecureVault(home)
    assert vault("db.password").reveal() == "from-properties"
    assert vault("db.password.old").reveal() == "from-toml"


def _loads_only_with_the_right_secret(
    tmp_path: Path, stores: dict[str, Any], alias: str, good: str, bad: str
) -> None:
    """from_deployment_toml loads the gateway identity when [secrets] ``alias`` is
    ``good``, and refuses it as a wrong password when it is ``bad``."""
    extra = _gateway_tls_toml(tmp_path, stores, alias)
    for name, value in (("ok", good), ("bad", bad)):
        home = make_home(tmp_path / name, stores, secrets={alias: value}, toml_extra=extra)
        toml_path = home / "repository" / "conf" / "deployment.toml"
        if name == "ok":
            with mtls.SSLProfileSet.from_deployment_toml(
                toml_path, base_dir=home, reload_interval=None
            ) as profiles:
                assert profiles.context_for("unlisted.example", 443) is not None  # default
        else:
            with pytest.raises(mtls.WrongPasswordError):
                mtls.SSLProfileSet.from_deployment_toml(
                    toml_path, base_dir=home, reload_interval=None
                )


def _gateway_tls_toml(tmp_path: Path, stores: dict[str, Any], alias: str) -> str:
    """deployment.toml tables for a one-profile file and the gateway identity as
    [keystore.tls], its passwords given as $secret{alias}."""
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml("<profile><servers>a.example:443</servers></profile>"))
    return (
        "[transport.passthru_https.sender.ssl_profile]\n"
        f'file_path = "{xml}"\n'
        "[keystore.tls]\n"
        f'file_name = "{stores["dir"] / "gateway.p12"}"\n'
        'type = "PKCS12"\n'
        f'password = "$secret{{{alias}}}"\n'
        f'key_password = "$secret{{{alias}}}"\n'
    )


def test_dotted_secret_alias_resolves_in_deployment_toml(tmp_path, stores) -> None:
    """The Helm chart's way: [keystore.tls] password = "$secret{keystore.tls.password}"."""
    _loads_only_with_the_right_secret(
        tmp_path, stores, "keystore.tls.password", f"[{PASSWORD}]", f"[not-{PASSWORD}]"
    )


def test_cipher_text_properties_and_toml_precedence(tmp_path, stores, values) -> None:
    home = make_home(
        tmp_path,
        stores,
        secrets={"both": "[from-toml]"},
        secret_conf={
            "secVault.enabled": "true",
            "secretRepositories.file.location": "repository/conf/security/cipher-text.properties",
        },
        cipher_text={"both": values["pkcs1"], "props": values["pkcs1_explicit"]},
    )
    vault = SecureVault(home)
    assert vault.aliases() == ("both", "props")
    assert vault("both").reveal() == "from-toml"  # the product regenerates the file from it
    assert vault("props").reveal() == "plain-pkcs1_explicit"
    entries = {e.alias: e for e in vault.check()}
    assert entries["both"].source == "deployment.toml [secrets]" and not entries["both"].encrypted
    assert entries["props"].error is None and entries["props"].encrypted


@needs_java
def test_base64_wrapped_over_lines_is_read_as_wso2_reads_it(tmp_path, stores, values) -> None:
    # Older cipher tools wrapped base64 at 76 characters; WSO2's own
    # CustomSSLProfileWithSecureVault test ships such values, written with "\n" escapes
    # (and "\=" for the padding) in cipher-text.properties.
    value = values["pkcs1"]
    wrapped = "\\n".join(value[i : i + 76] for i in range(0, len(value), 76))
    home = make_home(
        tmp_path,
        stores,
        secret_conf={
            "secVault.enabled": "true",
            "secretRepositories.file.location": "repository/conf/security/cipher-text.properties",
        },
        cipher_text={
            "wrapped": wrapped.replace("=", "\\="),
            "spaced": f" {value[:40]} \\r\\n {value[40:]}",
        },
    )
    assert "\\n" in wrapped  # the value really is over several lines
    vault = SecureVault(home)
    assert vault("wrapped").reveal() == "plain-pkcs1"
    assert vault("spaced").reveal() == "plain-pkcs1"


@needs_java
def test_the_vault_rereads_changed_files(tmp_path, stores, values) -> None:
    home = make_home(tmp_path, stores, secrets={"a": "[before]"})
    vault = SecureVault(home)
    assert vault("a").reveal() == "before"
    toml = home / "repository" / "conf" / "deployment.toml"
    toml.write_text(toml.read_text().replace('"[before]"', f'"{values["pkcs1"]}"') + "\n")
    assert vault("a").reveal() == "plain-pkcs1"


def test_the_vault_rereads_a_file_rewritten_in_place_with_its_mtime_kept(tmp_path, stores) -> None:
    # `cp -p` over the file, or a tool that keeps timestamps: the same inode, the same
    # size (RSA ciphertexts all have one length) and the old mtime. Only the ctime moves.
    home = make_home(tmp_path, stores, secrets={"a": "[before]"})
    vault = SecureVault(home)
    assert vault("a").reveal() == "before"
    toml = home / "repository" / "conf" / "deployment.toml"
    st = toml.stat()
    with open(toml, "r+b") as fh:  # in place: the inode stays
        fh.write(toml.read_bytes().replace(b"[before]", b"[after!]"))
    os.utime(toml, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = toml.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    if now.st_ctime_ns == st.st_ctime_ns:
        pytest.skip("the file system's ctime did not move (coarse clock)")
    assert vault("a").reveal() == "after!"


def test_the_vault_rereads_a_file_that_changed_while_it_was_read(
    tmp_path, stores, monkeypatch
) -> None:
    home = make_home(tmp_path, stores, secrets={"a": "[before]"})
    toml = home / "repository" / "conf" / "deployment.toml"
    vault = SecureVault(home)
    read = SecureVault._read

    def read_then_rotate(self: SecureVault) -> object:
        config = read(self)
        if "[before]" in toml.read_text():  # the rotation lands just after the read
            toml.write_text(toml.read_text().replace("[before]", "[rotated]"))
        return config

    monkeypatch.setattr(SecureVault, "_read", read_then_rotate)
    assert vault("a").reveal() == "before"  # what was read
    assert vault("a").reveal() == "rotated"  # and the change is not lost


# --------------------------------------------------------------------------- profile sets


def gateway_xml(d: Path, attrs: str = "") -> str:
    ns = 'xmlns:svns="http://org.wso2.securevault/configuration"'
    return profile_xml(
        "<profile><servers>backend.example:443</servers>"
        f"<KeyStore><Location>{d / 'gateway.p12'}</Location><Type>PKCS12</Type>"
        '<Password svns:secretAlias="Gateway.Password">password</Password>'
        '<KeyPassword svns:secretAlias="Gateway.Password">password</KeyPassword></KeyStore>'
        f"<TrustStore><Location>{d / 'trust.jks'}</Location><Type>JKS</Type>"
        '<Password svns:secretAlias="Gateway.Password">password</Password></TrustStore>'
        "</profile>"
    ).replace('name="customSSLProfiles"', f'name="customSSLProfiles" {ns} {attrs}')


def test_a_password_rotated_through_the_vault_is_picked_up_with_its_store(tmp_path, stores) -> None:
    """The stores get a new password, and the vault the new value; the profile file is
    not touched. The set watches the vault's files and resolves the alias anew: the
    new stores load (they failed with a wrong password until the profile file moved)."""
    home = make_home(tmp_path, stores, secrets={"gateway_password": f"[{PASSWORD}]"})
    d = tmp_path / "stores"
    d.mkdir()
    ca = stores["ca"]
    ca.issue_cert("gateway", common_name="gen-1").write_keystore(
        d / "gateway.p12", PASSWORD, store_type="PKCS12"
    )
    ca.write_truststore(d / "trust.jks", PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(d).replace("Gateway.Password", "gateway_password"))
    toml = home / "repository" / "conf" / "deployment.toml"
    with mtls.SSLProfileSet.from_xml(xml, base_dir=home, settle_delay=0) as profiles:
        assert profiles.status().profiles[0].subject.startswith("CN=gen-1")
        # Twin: the keystore alone moves to a new password: refused, the last good kept.
        store = ca.issue_cert("gateway", common_name="gen-2").keystore()
        (d / "gateway.p12").write_bytes(store.to_bytes("n3w-Pa55", store_type="PKCS12"))
        assert profiles.reload() is False
        assert isinstance(profiles.last_error, mtls.WrongPasswordError)
        assert "n3w-Pa55" not in str(profiles.last_error)
        # The vault gets the new value, and the truststore the new password too.
        toml.write_text(toml.read_text().replace(f"[{PASSWORD}]", "[n3w-Pa55]"))
        ca.write_truststore(d / "trust.jks", "n3w-Pa55")
        xml_text = xml.read_text()
        assert profiles.reload() is True
        assert xml.read_text() == xml_text  # the profile file was never touched
        assert profiles.status().profiles[0].subject.startswith("CN=gen-2")
        assert profiles.last_error is None


def test_a_candidate_deployment_toml_uses_its_own_vault_or_none(tmp_path, stores) -> None:
    """A deployment.toml given to from_deployment_toml decides the vault: one without
    ``[secrets]`` (and no secret-conf.properties) has none, so an ``svns:secretAlias``
    element's text is used, as WSO2 does with that file in place. Production's
    deployment.toml under the home is not read (h207: its vault resolved the candidate's
    aliases, and a broken production file failed a candidate that never named it)."""
    home = make_home(tmp_path, stores, secrets={"gateway_password": f"[{PASSWORD}]"})
    d = tmp_path / "stores"
    d.mkdir()
    stores["ca"].issue_cert("gateway").write_keystore(
        d / "gateway.p12", PASSWORD, store_type="PKCS12"
    )
    stores["ca"].write_truststore(d / "trust.jks", PASSWORD)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(
        gateway_xml(d)
        .replace("Gateway.Password", "gateway_password")
        .replace(">password<", ">not-the-password<")
    )
    production = home / "repository" / "conf" / "deployment.toml"
    # The twin: production's own file has the vault, which gives the right password.
    with mtls.SSLProfileSet.from_deployment_toml(
        production, base_dir=home, profiles_path=xml, reload_interval=None
    ) as profiles:
        assert isinstance(profiles.context_for("backend.example", 443), ssl.SSLContext)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text('[keystore.internal]\nfile_name = "wso2carbon.jks"\n')
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.SSLProfileSet.from_deployment_toml(
            candidate, base_dir=home, profiles_path=xml, reload_interval=None
        )
    assert "secure vault" not in str(info.value), info.value
    # Production's file broken: the candidate's load does not read it.
    production.write_text("[broken\n")
    with pytest.raises(mtls.WrongPasswordError):
        mtls.SSLProfileSet.from_deployment_toml(
            candidate, base_dir=home, profiles_path=xml, reload_interval=None
        )


@needs_java
def test_from_xml_uses_the_estate_vault(tmp_path, stores, values) -> None:
    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"Gateway.Password": values["gateway"]},
    )
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(stores["dir"]))
    with mtls.SSLProfileSet.from_xml(xml, base_dir=home) as profiles:
        ctx = profiles.context_for("backend.example", 443)
        assert isinstance(ctx, ssl.SSLContext)
        assert ctx.get_ca_certs()  # the truststore opened with the vault's password
    # Twin: a vault value that is not the store's password fails as a wrong password.
    other = make_home(
        tmp_path / "2",
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"Gateway.Password": values["pkcs1"]},
    )
    with pytest.raises(mtls.WrongPasswordError) as e:
        mtls.SSLProfileSet.from_xml(xml, base_dir=other)
    assert_clean(e.value, "plain-pkcs1")


@needs_java
def test_a_handshake_with_the_vault_password(tmp_path, stores, values) -> None:
    """The decrypted password opens the gateway keystore, and a real mTLS server sees it."""
    ca = stores["ca"]
    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"Gateway.Password": values["gateway"]},
    )
    with MTLSServer(ca.issue_cert("localhost"), client_ca=ca) as server:
        xml = tmp_path / "sslprofiles.xml"
        xml.write_text(
            gateway_xml(stores["dir"]).replace("backend.example:443", f"localhost:{server.port}")
        )
        with mtls.SSLProfileSet.from_xml(xml, base_dir=home) as profiles:
            ctx = profiles.context_for("localhost", server.port)
            assert ctx is not None
            assert whoami(ctx, server.port)["client_cn"] == "gateway"


@needs_java
def test_from_xml_alias_the_vault_cannot_decrypt(tmp_path, stores, values) -> None:
    home = make_home(
        tmp_path, stores, secret_conf={"secVault.enabled": "true"}, keystore="other.jks",
        cipher_text={"Gateway.Password": values["gateway"]},
    )  # fmt: skip
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(stores["dir"]))
    with pytest.raises(SecureVaultError, match=r"'Gateway\.Password'") as e:
        mtls.SSLProfileSet.from_xml(xml, base_dir=home)
    assert e.value.path == str(xml) and e.value.servers == ("backend.example:443",)
    assert_clean(e.value, values["gateway"])
    # An explicit resolver wins over the estate's vault.
    with mtls.SSLProfileSet.from_xml(
        xml, base_dir=home, secret_resolver={"Gateway.Password": PASSWORD}.get
    ) as profiles:
        assert profiles.context_for("backend.example", 443) is not None


def test_a_wrong_password_from_the_vault_says_the_vault_gave_it(tmp_path, stores) -> None:
    """A store refused for a wrong password whose value came from the secure vault
    named only the store: the operator looked at the <Password> text in the file (a
    placeholder the vault replaces) instead of the vault's value. The message now says
    which alias gave it; a password written in the file says nothing of the kind."""
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(stores["dir"]))
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.SSLProfileSet.from_xml(
            xml, secret_resolver={"Gateway.Password": "not-the-password"}.get
        )
    message = str(info.value)
    assert message.endswith(
        "; set by the secure vault (<Password> svns:secretAlias 'Gateway.Password'; "
        f"<KeyPassword> svns:secretAlias 'Gateway.Password' of <KeyStore> in {xml})"
    ), message
    assert "not-the-password" not in message
    # Twin: the same wrong password written in the file itself.
    plain = gateway_xml(stores["dir"]).replace(' svns:secretAlias="Gateway.Password"', "")
    xml.write_text(plain.replace(">password<", ">not-the-password<"))
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.SSLProfileSet.from_xml(xml, secret_resolver={}.get)
    assert "; set by" not in str(info.value) and "secure vault" not in str(info.value)
    # Twin (the review h131): the store password wrong in the file, the key's from the
    # vault: the vault is not blamed.
    key_only = gateway_xml(stores["dir"]).replace(
        '<Password svns:secretAlias="Gateway.Password">password</Password><KeyPassword',
        "<Password>not-the-password</Password><KeyPassword",
    )
    assert key_only != gateway_xml(stores["dir"])
    xml.write_text(key_only)
    with pytest.raises(mtls.WrongPasswordError) as info:
        mtls.SSLProfileSet.from_xml(xml, secret_resolver={"Gateway.Password": PASSWORD}.get)
    assert "; set by" not in str(info.value) and "secure vault" not in str(info.value)


@needs_java
def test_from_deployment_toml_resolves_secret_placeholders(tmp_path, stores, values) -> None:
    _loads_only_with_the_right_secret(
        tmp_path, stores, "tls_password", values["gateway"], values["pkcs1"]
    )


def test_secret_placeholder_without_a_vault_says_how(tmp_path, stores) -> None:
    home = make_home(
        tmp_path, stores, toml_extra='[truststore]\nfile_name = "t.jks"\npassword = "$secret{x}"\n'
    )
    xml = tmp_path / "p.xml"
    xml.write_text(profile_xml("<profile><servers>a.example:443</servers></profile>"))
    with pytest.raises(mtls.ProfileConfigError, match="no secure vault is configured"):
        mtls.SSLProfileSet.from_deployment_toml(
            home / "repository" / "conf" / "deployment.toml",
            base_dir=home,
            profiles_path=xml,
            reload_interval=None,
        )


# --------------------------------------------------------------------------- file formats


def test_properties_parser_follows_java() -> None:
    data = (
        b"# comment\n! also a comment\n"
        b"a=1\n"
        b"b : two words\n"
        b"c\tthree\n"
        b"d=line \\\n    continued\n"
        b"e=\\u0041\\tx\\\\y\n"
        b"f\\=g=h\n"
        b"a=last wins\n"
        b"empty=\n"
    )
    assert read_properties(data) == {
        "a": "last wins",
        "b": "two words",
        "c": "three",
        "d": "line continued",
        "e": "A\tx\\y",
        "f=g": "h",
        "empty": "",
    }


def test_properties_lines_break_where_java_breaks_them() -> None:
    """Only \n, \r and \r\n end a line in Java; \x85, \x0c, \x1c and \u2028 (which
    str.splitlines also breaks at) may be inside a value, as in a cipher tool's
    plain-text password. The twin: the three real line breaks each end a line."""
    data = "Alias=[pass\x85wo\x1crd]\r\nB=2\rC=3\nD=4".encode("iso-8859-1")
    assert read_properties(data) == {"Alias": "[pass\x85wo\x1crd]", "B": "2", "C": "3", "D": "4"}


def test_product_store_path(tmp_path) -> None:
    home = tmp_path
    security = home / "repository" / "resources" / "security"
    assert product_store_path(home, "wso2carbon.jks") == security / "wso2carbon.jks"
    # Micro Integrator writes paths from the home; API Manager bare names (see _wso2).
    assert product_store_path(home, "repository/resources/security/x.jks", "mi") == (
        security / "x.jks"
    )
    assert product_store_path(home, "x.jks", "mi") == home / "x.jks"
    assert product_store_path(home, "$sys{carbon.home}/y.jks") == home / "y.jks"
    assert product_store_path(home, "${carbon.home}/other/x.jks") == home / "other" / "x.jks"
    inside = str(home / "abs" / "x.jks")
    assert product_store_path(home, inside) == Path(inside)


def test_repr_shows_no_secret(tmp_path, stores) -> None:
    home = make_home(tmp_path, stores, secrets={"p": "[hidden-value]"})
    vault = SecureVault(home, keystore_password=PASSWORD, symmetric_key=AES_HEX)
    assert PASSWORD not in repr(vault) and AES_HEX not in repr(vault)
    assert "hidden-value" not in repr(vault.check())


def test_internal_keystore_keys_fall_back_to_primary_one_by_one(
    tmp_path, stores, monkeypatch
) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    public = mtls.Keystore.load(stores["dir"] / "wso2carbon.jks", PASSWORD)
    cert = public.certificate(public.key_aliases[0])
    value = base64.b64encode(cert.public_key().encrypt(b"from-primary", padding.PKCS1v15()))
    secrets = {"a": value.decode()}
    # [keystore.internal] names only its file (and alias): the password is primary's.
    home = make_home(
        tmp_path,
        stores,
        secrets=secrets,
        password=None,
        toml_extra=f'[keystore.primary]\nfile_name = "x.jks"\npassword = "{PASSWORD}"',
    )
    assert SecureVault(home)("a").reveal() == "from-primary"
    # Twin: no password anywhere is an error that says where to put one.
    bare = make_home(tmp_path / "2", stores, secrets=secrets, password=None)
    with pytest.raises(SecureVaultError, match="needs its password"):
        SecureVault(bare)("a")


def _locals_text(exc: BaseException) -> str:
    """repr() of every local of every mtls frame the exception (and its chain) holds."""
    package = str(Path(mtls.__file__).parent)
    out: list[str] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith(package):
                out += [f"{k}={v!r}" for k, v in tb.tb_frame.f_locals.items()]
            tb = tb.tb_next
        pending += [current.__cause__, current.__context__]
    return "\n".join(out)


def test_failures_leave_no_secret_in_traceback_locals(tmp_path, stores) -> None:
    # [encryption] key and the TOML's keystore password must not reach an error
    # reporter that renders locals (Sentry, capture_locals=True), through the vault
    # or through a profile set that uses it.
    key_hex = "03BAFEB27A8E871CAD83C5CD4E771DAB"
    home = make_home(
        tmp_path,
        stores,
        secrets={"broken": "bm90LWEtY2lwaGVydGV4dA=="},  # base64, but no ciphertext
        toml_extra=f'[encryption]\nkey = "{key_hex}"',
    )
    with pytest.raises(SecureVaultError) as direct:
        SecureVault(home).resolve("broken")
    toml = home / "repository" / "conf" / "deployment.toml"
    with toml.open("a") as fh:
        fh.write(
            '[transport.passthru_https.sender.ssl_profile]\nfile_path = "p.xml"\n'
            '[keystore.tls]\nfile_name = "wso2carbon.jks"\npassword = "$secret{broken}"\n'
        )
    (home / "p.xml").write_text("<parameter></parameter>")
    with pytest.raises(mtls.MTLSError) as through_set:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    for exc in (direct.value, through_set.value):
        text = _locals_text(exc)
        assert PASSWORD not in text and key_hex not in text, text[-2000:]


def test_a_placeholder_inside_a_password_is_never_quoted(tmp_path, stores, monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(
        tmp_path, stores, secrets={"p": "bm90LWEtY2lwaGVydGV4dA=="}, password="pa${nope_xyz}ss"
    )
    with pytest.raises(SecureVaultError, match="uses a placeholder") as refused:
        SecureVault(home).resolve("p")
    assert "nope_xyz" not in str(refused.value)
    # Twin: a password that is one placeholder is named, so it can be set.
    home2 = make_home(
        tmp_path / "2", stores, secrets={"p": "bm90LWEtY2lwaGVydGV4dA=="}, password="$env{NOPE_XYZ}"
    )
    with pytest.raises(SecureVaultError, match=r"\$env\{NOPE_XYZ\}"):
        SecureVault(home2).resolve("p")


@needs_java
def test_real_wso2carbon_keystore(tmp_path, wso2_fixtures: Path) -> None:
    """The keystore API Manager ships, named by path as the cipher tool writes it."""
    shipped = wso2_fixtures / "wso2carbon.jks"
    done = subprocess.run(
        [JAVAS[0], str(SOURCE), str(shipped), "wso2carbon", "wso2carbon",
         "rsa:RSA", "shipped", f"selfcontained:{OAEP}", "sc"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    value, sc = done.stdout.split()
    conf = tmp_path / "repository" / "conf"
    (conf / "security").mkdir(parents=True)
    (conf / "deployment.toml").write_text(f'[secrets]\na = "{value}"\nb = "{sc}"\n')
    (conf / "security" / "secret-conf.properties").write_text(
        f"secVault.enabled=true\nkeystore.identity.location={shipped}\n"
        "keystore.identity.alias=wso2carbon\n"
    )
    vault = SecureVault(tmp_path, keystore_password="wso2carbon")
    assert vault("a").reveal() == "shipped"
    assert vault("b").reveal() == "sc"
    with pytest.raises(SecureVaultError, match="does not open with the password"):
        SecureVault(tmp_path, keystore_password="not-wso2carbon")("a")


# --------------------------------------------------------------------------- mtls check


@needs_java
def test_mtls_check_reports_which_aliases_resolve(tmp_path, stores, values, capsys) -> None:
    from mtls.cli import main

    home = make_home(
        tmp_path,
        stores,
        secrets={"plain": "[plain-value-xyz]", "broken": values["sc_pkcs1"][:-8] + "AAAAAAA="},
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"Gateway.Password": values["gateway"]},
    )
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(stores["dir"]))
    code = main(["check", str(xml), "--base-dir", str(home), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    aliases = {item["alias"]: item for item in report["vault"]["aliases"]}
    assert aliases["Gateway.Password"]["resolves"] and aliases["Gateway.Password"]["encrypted"]
    assert aliases["plain"]["resolves"] and not aliases["plain"]["encrypted"]
    assert not aliases["broken"]["resolves"] and "'broken'" in aliases["broken"]["error"]
    code = main(["check", str(xml), "--base-dir", str(home)])
    text = "".join(capsys.readouterr())
    assert "Gateway.Password (cipher-text.properties): resolves" in text
    assert "broken (deployment.toml [secrets]): does not resolve" in text
    for secret in (PASSWORD, "plain-value-xyz", values["gateway"], "plain-sc_pkcs1"):
        assert secret not in out + text


@needs_java
def test_mtls_check_lists_the_vault_when_an_alias_refuses_the_file(
    tmp_path, stores, values, capsys
) -> None:
    """A profile naming an alias the vault does not have refuses the file, and check
    printed that one error alone: now the vault's aliases come first, and the error
    names the profile whose alias it is."""
    from mtls.cli import main

    home = make_home(
        tmp_path,
        stores,
        secret_conf={"secVault.enabled": "true"},
        cipher_text={"Gateway.Password": values["gateway"]},
    )
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(gateway_xml(stores["dir"]).replace("Gateway.Password", "Nope.Alias"))
    code = main(["check", str(xml), "--base-dir", str(home)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Gateway.Password (cipher-text.properties): resolves" in out
    assert "profile backend.example:443" in err and "'Nope.Alias'" in err
    assert PASSWORD not in out + err and values["gateway"] not in out + err
    # --json has them too, under "vault", beside the error (it had the error alone).
    code = main(["check", str(xml), "--base-dir", str(home), "--json"])
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and "'Nope.Alias'" in document["error"]["message"]
    aliases = {item["alias"]: item for item in document["vault"]["aliases"]}
    assert aliases["Gateway.Password"]["resolves"]
    assert PASSWORD not in out + err and values["gateway"] not in out + err


def test_mtls_check_without_a_vault_has_no_vault_lines(tmp_path, stores, capsys) -> None:
    from mtls.cli import main

    home = make_home(tmp_path, stores)
    xml = tmp_path / "sslprofiles.xml"
    xml.write_text(profile_xml("<profile><servers>a.example:443</servers></profile>"))
    assert main(["check", str(xml), "--base-dir", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vault"] is None
    assert main(["check", str(xml), "--base-dir", str(home)]) == 0
    assert "secure vault" not in capsys.readouterr().out


# --------------------------------------------------------------------------- hostile values


def _b64json(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


HOSTILE = [
    "",
    "[",
    "]x[",
    "A" * 70_000,  # longer than any cipher-tool value
    base64.b64encode(b"[" * 40_000).decode(),  # nested without end
    base64.b64encode(b"{" + b'"c":' * 5 + b"}").decode(),
    _b64json({"c": 5, "t": ["x"]}),
    _b64json({"c": "not base64!"}),
    _b64json({"c": "", "t": "RSA/ECB/NoSuchPadding"}),
    _b64json({"c": base64.b64encode(b"x" * 256).decode(), "tp": "00", "tpd": "MD4"}),
    _b64json({"c": base64.b64encode(b"{}").decode(), "t": "AES/GCM/NoPadding"}),
    _b64json({"cipherText": "AAAA", "iv": ""}),
    _b64json({"cipherText": 1, "iv": None}),
    _b64json({"other": 1}),
    _b64json([1, 2, 3]),
    base64.b64encode(b"\xff" * 256).decode(),
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_vault_errors(tmp_path, stores, value) -> None:
    home = make_home(tmp_path, stores, secrets={"h": value}, toml_extra='[encryption]\nkey = "k"\n')
    vault = SecureVault(home, symmetric_key=AES_HEX if "cipherText" in value else None)
    with pytest.raises(SecureVaultError, match="'h'") as e:
        vault("h")
    assert e.value.alias == "h"
    if len(value) > 8:
        assert value[:40] not in str(e.value)


# --------------------------------------------------------------------------- WSO2's own files

MI_SECRET_CONF = Path(__file__).parent / "data" / "wso2" / "mi-secret-conf.properties"


def mi_home(root: Path, stores: dict[str, Any], gateway_value: str, conf_extra: str = "") -> Path:
    """A Micro Integrator home as its secure-vault tests lay it out: their
    secret-conf.properties (``secretRepositories=file``, no ``secVault.enabled``),
    cipher-text.properties, password-tmp and the internal keystore."""
    home = root / "mi"
    (home / "conf" / "security").mkdir(parents=True)
    (home / "conf" / "axis2").mkdir()
    security = home / "repository" / "resources" / "security"
    security.mkdir(parents=True)
    shutil.copy(stores["dir"] / "wso2carbon.jks", security / "wso2carbon.jks")
    (home / "conf" / "security" / "secret-conf.properties").write_bytes(
        MI_SECRET_CONF.read_bytes() + conf_extra.encode()
    )
    (home / "conf" / "security" / "cipher-text.properties").write_text(
        f"Gateway.Password={gateway_value}\n"
    )
    (home / "password-tmp").write_text(PASSWORD + "\n")
    # The profile inline in axis2.xml's https sender, the namespace on the root.
    profile = gateway_xml(stores["dir"])
    (home / "conf" / "axis2" / "axis2.xml").write_text(
        '<axisconfig xmlns:svns="http://org.wso2.securevault/configuration" name="AxisJava2.0">'
        '<transportSender class="org.apache.synapse.transport.passthru.PassThroughHttpSSLSender"'
        f' name="https">{profile}</transportSender></axisconfig>'
    )
    return home


@needs_java
def test_secret_conf_without_the_enabled_flag_turns_the_vault_on(tmp_path, stores, values) -> None:
    """WSO2's SecretManager reads a missing secVault.enabled as true: Micro Integrator's
    own secure-vault estate lists only secretRepositories=file, and its profile passwords
    come from the vault."""
    assert "secVault.enabled" not in MI_SECRET_CONF.read_text()
    home = mi_home(tmp_path, stores, values["gateway"])
    assert SecureVault.for_estate(home) is not None
    axis2 = home / "conf" / "axis2" / "axis2.xml"
    with mtls.SSLProfileSet.from_xml(axis2, base_dir=home) as profiles:
        ctx = profiles.context_for("backend.example", 443)
        assert isinstance(ctx, ssl.SSLContext)
        assert ctx.get_ca_certs()  # the truststore opened with the decrypted password
    # Twin: secVault.enabled=false turns it off; the element text ("password") is used.
    off = mi_home(
        tmp_path / "off", stores, values["gateway"], conf_extra="secVault.enabled=false\n"
    )
    assert SecureVault.for_estate(off) is None
    with pytest.raises(mtls.WrongPasswordError) as e:
        mtls.SSLProfileSet.from_xml(off / "conf" / "axis2" / "axis2.xml", base_dir=off)
    assert_clean(e.value, values["gateway"])


def test_secret_conf_without_repositories_or_flag_configures_no_vault(tmp_path, stores) -> None:
    home = make_home(tmp_path, stores, secret_conf={"keystore.identity.alias": "wso2carbon"})
    assert SecureVault.for_estate(home) is None
    listed = make_home(tmp_path / "2", stores, secret_conf={"secretRepositories": "file"})
    assert SecureVault.for_estate(listed) is not None
    empty_flag = make_home(
        tmp_path / "3", stores, secret_conf={"secVault.enabled": "", "secretRepositories": "file"}
    )
    assert SecureVault.for_estate(empty_flag) is not None
    upper = make_home(tmp_path / "4", stores, secret_conf={"secVault.enabled": "TRUE"})
    assert SecureVault.for_estate(upper) is not None


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("keystore.identity.location", SecureVaultError),
        # A SecureVaultError naming the setting (h265: a ProfileConfigError naming none).
        ("secretRepositories.file.location", SecureVaultError),
    ],
)
def test_a_nul_in_a_secret_conf_path_is_an_error_naming_it(tmp_path, stores, key, error) -> None:
    """Java properties spell a NUL \\u0000: the path it is in cannot be opened, which is
    said with the file, never a ValueError from the operating system call."""
    home = make_home(
        tmp_path,
        stores,
        secrets={"a": "QUJDREVGR0g="},
        secret_conf={"secVault.enabled": "true", key: "repository/a\\u0000b"},
    )
    with pytest.raises(error) as e:
        SecureVault(home, keystore_password=PASSWORD)("a")
    assert "cannot be read" in str(e.value) or "cannot read" in str(e.value)
    if key == "secretRepositories.file.location":
        assert "(secretRepositories.file.location in " in str(e.value)
    # Twin: the same key naming a real file: the keystore opens (the made-up value then
    # does not decrypt with it), the repository file is read.
    real = {
        "keystore.identity.location": "repository/resources/security/wso2carbon.jks",
        "secretRepositories.file.location": "repository/conf/security/other.properties",
    }[key]
    fine = make_home(
        tmp_path / "fine",
        stores,
        secrets={"a": "QUJDREVGR0g="},
        secret_conf={"secVault.enabled": "true", key: real},
    )
    (fine / "repository" / "conf" / "security" / "other.properties").write_text("b=[x]\n")
    vault = SecureVault(fine, keystore_password=PASSWORD)
    if key == "keystore.identity.location":
        with pytest.raises(SecureVaultError, match="does not decrypt"):
            vault("a")
    else:
        assert vault.aliases() == ("a", "b")


def test_text_from_the_files_is_bounded_in_messages(tmp_path, stores) -> None:
    # An alias (from a profile's secretAlias, or a damaged cipher-text.properties line
    # read as one, ciphertext and all) was quoted whole: 100 KB in, 100 KB out.
    home = make_home(tmp_path, stores, secrets={"a": "[plain]"})
    alias = "x" * 100_000
    with pytest.raises(SecureVaultError, match=r"no secret alias 'x{200}\.\.\.' in") as e:
        SecureVault(home)(alias)
    assert len(str(e.value)) < 1000
    assert e.value.alias == alias  # the attribute keeps it whole


# --------------------------------------------------------------------------- chains

CANARY = "Canary-7f3a9-S\xe9cret"  # not ASCII: as Latin-1 bytes, not UTF-8


def _everything(exc: BaseException) -> str:
    """Every text an error reporter can reach from ``exc``: messages, args and
    attributes of each exception in its chain, suppressed contexts included."""
    out: list[str] = []
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out += [str(current), repr(current.args), repr(vars(current))]
        out += [repr(getattr(current, "object", b""))]  # UnicodeDecodeError's input
        out += getattr(current, "__notes__", [])
        pending += [current.__cause__, current.__context__]
    return "\n".join(out)


def _leaks(exc: BaseException, secret: str) -> bool:
    text = _everything(exc)
    forms = (secret, secret.encode("latin-1", "replace").decode("ascii", "backslashreplace"))
    return any(form in text for form in forms)


def test_a_deployment_toml_that_is_not_utf8_keeps_no_password_in_its_error(
    tmp_path, stores
) -> None:
    """The UnicodeDecodeError, the whole file in its args, rode along as the
    suppressed __context__ of "not UTF-8 text": every password in the file was one
    attribute away from an error reporter."""
    home = make_home(tmp_path, stores, secrets={"a": "x"})
    toml = home / "repository" / "conf" / "deployment.toml"
    toml.write_bytes(toml.read_bytes() + f'[x]\npassword = "{CANARY}"\n'.encode("latin-1"))
    with pytest.raises(mtls.ProfileConfigError, match="not UTF-8 text") as info:
        mtls.SSLProfileSet.from_deployment_toml(toml, base_dir=home, reload_interval=None)
    assert not _leaks(info.value, CANARY)
    assert info.value.__context__ is None
    # The twin: the walk finds the password where it is (so the check above can fail).
    probe = ValueError("x")
    probe.__context__ = UnicodeDecodeError("utf-8", CANARY.encode("latin-1"), 0, 1, "bad")
    assert _leaks(probe, CANARY)


def test_a_vault_password_file_that_is_not_utf8_keeps_no_password_in_its_error(
    tmp_path, stores, monkeypatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": "bm90LWEtY2lwaGVydGV4dA=="}, password=None)
    (home / "password").write_bytes(CANARY.encode("latin-1") + b"\n")
    with pytest.raises(SecureVaultError, match="password file is not UTF-8") as info:
        SecureVault(home)("a")
    assert not _leaks(info.value, CANARY)


def test_a_value_that_decrypts_to_latin1_keeps_its_plaintext_out_of_the_error(
    tmp_path, stores
) -> None:
    """Encrypted from Latin-1 bytes (not the UTF-8 the cipher tool encrypts): the
    plaintext was the suppressed context of "damaged or encrypted for another key",
    which is not what happened either."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    keystore = mtls.Keystore.load(stores["dir"] / "wso2carbon.jks", PASSWORD)
    public = keystore.certificate("wso2carbon").public_key()
    sha1 = hashes.SHA1()
    oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)

    def sealed(plain: bytes) -> str:
        return base64.b64encode(public.encrypt(plain, oaep)).decode()  # type: ignore[union-attr]

    home = make_home(
        tmp_path,
        stores,
        secrets={"latin": sealed(CANARY.encode("latin-1")), "utf8": sealed(CANARY.encode())},
        secret_conf={"secVault.enabled": "true", "secretRepositories.file.algorithm": OAEP},
    )
    vault = SecureVault(home)
    with pytest.raises(SecureVaultError, match="not UTF-8 text") as info:
        vault("latin")
    assert not _leaks(info.value, CANARY)
    assert "damaged" not in str(info.value)
    assert vault("utf8").reveal() == CANARY  # the twin: the same text as UTF-8


def test_a_secret_inside_a_password_keeps_its_alias_out_of_the_chain(tmp_path, stores) -> None:
    """``Can$secret{ary-7f3a9}ret``: the alias is part of the password. The message hid
    it, but the vault's error naming it stayed as __context__ (and the message said
    the resolver failed, when the vault only lacks the alias)."""
    home = make_home(tmp_path, stores, secrets={"a": "x"})
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            "<profile><servers>a.example:443</servers><KeyStore>"
            f"<Location>{stores['dir'] / 'wso2carbon.jks'}</Location><Type>JKS</Type>"
            "<Password>Can$secret{ary-7f3a9}ret</Password></KeyStore></profile>"
        )
    )
    with pytest.raises(mtls.ProfileConfigError, match="an alias the vault lacks") as info:
        mtls.SSLProfileSet.from_xml(xml, secret_resolver=SecureVault(home), reload_interval=None)
    assert "ary-7f3a9" not in _everything(info.value)


def test_a_placeholder_value_stays_out_of_chains_at_load_and_in_reload_errors(
    tmp_path, stores, monkeypatch
) -> None:
    """``<Location>$env{GW_DIR}/gw.jks</Location>`` is shown as written; the OSError
    naming the value rode along as a suppressed __context__ (first load), and a
    reload's kept error held the frames of the check that read the files."""
    value = "/srv/Canary-7f3a9-dir"
    monkeypatch.setenv("GW_DIR", value)
    trust = stores["dir"] / "wso2carbon.jks"
    xml = tmp_path / "p.xml"
    xml.write_text(
        profile_xml(
            "<profile><servers>a.example:443</servers><KeyStore>"
            "<Location>$env{GW_DIR}/gw.jks</Location><Type>JKS</Type>"
            f"<Password>{PASSWORD}</Password></KeyStore><TrustStore><Location>{trust}"
            f"</Location><Type>JKS</Type><Password>{PASSWORD}</Password></TrustStore></profile>"
        )
    )
    with pytest.raises(mtls.KeystoreNotFoundError, match=r"\$env\{GW_DIR\}/gw\.jks") as info:
        mtls.SSLProfileSet.from_xml(xml, reload_interval=None)
    assert value not in _everything(info.value)
    # At a reload: the profile loaded from a real directory, which then goes away.
    real = tmp_path / "gw"
    real.mkdir()
    CA().issue_cert("gw").write_keystore(real / "gw.jks", PASSWORD)
    monkeypatch.setenv("GW_DIR", str(real))
    profiles = mtls.SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0)
    (real / "gw.jks").unlink()
    assert profiles.reload() is False
    kept = profiles.last_error
    assert kept is not None and "$env{GW_DIR}/gw.jks" in str(kept)
    assert str(real) not in _everything(kept)
    chain = [kept, kept.__cause__, kept.__context__]
    assert all(e is None or e.__traceback__ is None for e in chain)  # no frames kept


def test_a_password_typed_into_type_is_not_in_repr() -> None:
    """mtls's own warning hid a ``<Type>`` that is no store type ("the value is not
    shown"), and ``repr(StoreConfig)`` printed it."""
    typed = mtls.StoreConfig(location="gw.jks", password="x", type="Canary-7f3a9-Secret")
    assert "Canary" not in repr(typed) and "not a store type" in repr(typed)
    assert "type='PKCS12'" in repr(mtls.StoreConfig(location="gw.jks", type="PKCS12"))  # twin


def test_a_refused_profile_survives_a_reporter_that_captures_locals() -> None:
    """repr() of a half-built SSLProfile raised, and
    TracebackException(capture_locals=True) (Sentry's way) with it."""
    import traceback

    store = mtls.StoreConfig(location="gw.jks", password="x")
    with pytest.raises(mtls.ProfileConfigError) as info:
        mtls.SSLProfile(servers="no-port", keystore=store)
    shown = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    assert "SSLProfile(<not built" in "".join(shown.format())


def test_a_toml_error_quotes_no_key(tmp_path) -> None:
    """tomllib's "Cannot declare ('<key>',) twice" showed a password typed where a key
    goes; the position stays."""
    toml = tmp_path / "deployment.toml"
    toml.write_text("[Canary-7f3a9-Secret]\na = 1\n[Canary-7f3a9-Secret]\nb = 2\n")
    with pytest.raises(mtls.ProfileConfigError, match=r"declare a key twice \(at line 3") as info:
        mtls.SSLProfileSet.from_deployment_toml(toml, reload_interval=None)
    assert "Canary" not in _everything(info.value)


def test_a_password_file_with_a_byte_order_mark_says_so(tmp_path, stores, monkeypatch) -> None:
    """Notepad saves password-tmp with a UTF-8 byte order mark, which is read as part
    of the password (Java's reader keeps it too): the vault's keystore was refused with
    "wrong store password" and nothing pointing at the mark. The twin: the same file
    without the mark opens the keystore."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    home = make_home(tmp_path, stores, secrets={"a": "bm90LWEtY2lwaGVydGV4dA=="}, password=None)
    (home / "password-tmp").write_bytes(b"\xef\xbb\xbf" + PASSWORD.encode() + b"\n")
    with pytest.raises(mtls.MTLSError, match="byte order mark") as info:
        SecureVault(home)("a")
    assert not _leaks(info.value, PASSWORD)
    (home / "password-tmp").write_bytes(PASSWORD.encode() + b"\n")
    with pytest.raises(mtls.MTLSError) as info:
        SecureVault(home)("a")  # opens the keystore; the value is not a ciphertext
    assert "byte order mark" not in str(info.value) and "wrong" not in str(info.value)


def test_a_vault_home_that_is_not_a_directory_says_so(tmp_path, stores) -> None:
    """SecureVault("/nonexist") said the alias was missing and that the home had
    neither deployment.toml nor cipher-text.properties: true, but the home itself was
    the typo. The twin: a real home without the alias says the alias is missing."""
    with pytest.raises(SecureVaultError, match="which is not a directory: give the product home"):
        SecureVault(tmp_path / "no-such-home")("a")
    home = make_home(tmp_path, stores, secrets={"b": "bm90LWEtY2lwaGVydGV4dA=="})
    with pytest.raises(SecureVaultError, match="no secret alias 'a'") as info:
        SecureVault(home)("a")
    assert "not a directory" not in str(info.value)


@needs_java
def test_a_missing_vault_keystore_says_where_relative_paths_start(tmp_path, stores, values) -> None:
    """The commonest cause is a home that is not the product's (mtls check without
    --base-dir starts from the current directory): the message only said to point the
    setting at the cipher tool's keystore, a setting that was right. The twin: the
    keystore there, the value decrypts."""
    home = make_home(tmp_path, stores, secrets={"a": values["pkcs1"]})
    (home / "repository" / "resources" / "security" / "wso2carbon.jks").unlink()
    with pytest.raises(SecureVaultError, match="does not exist") as info:
        SecureVault(home)("a")
    assert "relative paths start from the product home" in str(info.value)
    assert str(home) in str(info.value) and "--base-dir" in str(info.value)
    assert (
        SecureVault(make_home(tmp_path / "twin", stores, secrets={"a": values["pkcs1"]}))(
            "a"
        ).reveal()
        == "plain-pkcs1"
    )


def test_a_failing_resolvers_text_is_not_kept_or_logged(tmp_path, stores, caplog) -> None:
    """A secret_resolver's exception: mtls named its type only ("the secret resolver
    failed (ConnectionError)"), but kept it as __cause__, so the reload's WARNING
    printed its text in the traceback (a vault URL with its token), and so did
    status().last_error's chain."""
    token = "s.Canary-7f3a9-Token"
    up = [True]

    def resolver(alias: str) -> str:
        if not up[0]:
            raise ConnectionError(f"https://vault.internal/v1/{alias}?token={token}: refused")
        return PASSWORD

    store = stores["dir"] / "wso2carbon.jks"
    body = profile_xml(
        "<profile><servers>a.example:443</servers><KeyStore>"
        f"<Location>{store}</Location><Type>JKS</Type>"
        '<Password svns:secretAlias="gw.store">x</Password></KeyStore></profile>'
    ).replace(
        "<parameter ", '<parameter xmlns:svns="http://org.wso2.securevault/configuration" ', 1
    )
    xml = tmp_path / "p.xml"
    xml.write_text(body)
    up[0] = False
    with pytest.raises(
        SecureVaultError, match=r"secret resolver failed \(ConnectionError\)"
    ) as info:
        mtls.SSLProfileSet.from_xml(xml, secret_resolver=resolver, reload_interval=None)
    assert info.value.unknown is False and "gw.store" in str(info.value)
    assert token not in _everything(info.value)
    # At a reload: kept as last_error and logged with its traceback.
    up[0] = True
    profiles = mtls.SSLProfileSet.from_xml(
        xml, secret_resolver=resolver, reload_interval=None, settle_delay=0
    )
    up[0] = False
    xml.write_text(body + "<!-- edited -->")
    with caplog.at_level(logging.DEBUG, logger="mtls"):
        assert profiles.reload() is False
    kept = profiles.last_error
    assert kept is not None and "secret resolver failed (ConnectionError)" in str(kept)
    assert token not in _everything(kept)
    assert "secret resolver failed" in caplog.text and token not in caplog.text
    # The twin: an alias the resolver does not know is said so, not "failed".
    with pytest.raises(mtls.ProfileConfigError, match="which the secret resolver does not know"):
        mtls.SSLProfileSet.from_xml(xml, secret_resolver={}.get, reload_interval=None)
    profiles.close()
