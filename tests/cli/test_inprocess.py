"""`mtls.cli.main` in-process: the one boundary where errors become exit codes."""

from __future__ import annotations

import json

import pytest

from mtls import Keystore, Secret
from mtls.cli import main

from .._keytool import KEYTOOLS, run_keytool

PASSWORD = "inproc-Pa55word"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, out, err


def test_a_directory_is_not_a_keystore(tmp_path, capsys):
    code, _, err = run(capsys, "list", "--keystore", str(tmp_path), "--password", PASSWORD)
    assert code == 1
    assert "directory" in err
    assert err.count("\n") == 1


def test_missing_file_names_the_path(tmp_path, capsys):
    missing = tmp_path / "nope.jks"
    code, _, err = run(capsys, "list", "--keystore", str(missing), "--password", PASSWORD)
    assert code == 1
    assert str(missing) in err


@pytest.mark.parametrize("command", ["list", "printcert"])
def test_a_file_that_fails_to_read_is_named_with_why(tmp_path, capsys, command):
    """A read error (EIO: /proc/self/mem reads so, as a failing disk or FUSE mount
    does) said "mtls: error: Input/output error" alone, and "OSError" in --json: the
    file and the reason now, as the library says it (h173)."""
    link = tmp_path / "failing.jks"
    link.symlink_to("/proc/self/mem")
    given = ["--keystore", str(link), "--password", PASSWORD]
    code, _, err = run(capsys, command, *(given if command == "list" else ["--file", str(link)]))
    assert code == 1
    assert f"{link}: " in err and ("Input/output error" in err or "failed to read" in err)
    assert "check the device and the mount" in err and "permissions" not in err
    code, out, _ = run(capsys, "list", "--keystore", str(link), "--password", PASSWORD, "--json")
    assert code == 1 and json.loads(out)["error"]["type"] == "KeystoreError"
    message = json.loads(out)["error"]["message"]
    assert "check the device and the mount" in message and "permissions" not in message


def test_debug_shows_the_traceback_and_plain_does_not(tmp_path, capsys):
    bad = tmp_path / "bad.jks"
    bad.write_bytes(b"\xfe\xed\xfe\xed garbage")
    code, _, err = run(capsys, "list", "--keystore", str(bad), "--password", PASSWORD)
    assert code == 1
    assert "Traceback" not in err
    code, _, err = run(capsys, "--debug", "list", "--keystore", str(bad), "--password", PASSWORD)
    assert code == 1
    assert "Traceback" in err


def test_wrong_password_is_exit_1_and_never_echoed(tmp_path, capsys):
    store = tmp_path / "gw.jks"
    Keystore.generate("gw", "CN=gw", key_type="EC").save(store, "right-password")
    code, _, err = run(capsys, "list", "--keystore", str(store), "--password", PASSWORD)
    assert code == 1
    assert "password" in err


def test_no_command_is_a_usage_error(capsys):
    """The message named 10 of the 18 commands (a list written by hand, h185): it is
    the parser's own now, as --help lists them."""
    code, _, err = run(capsys)
    assert code == 2
    assert "choose a command" in err
    named = err.split("choose a command: ")[1].split(" (see")[0].split(", ")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and len(named) == 18
    for name in named:
        assert f"\n    {name} " in out, name
    assert "genkeypair" not in named  # keytool's spellings are aliases


def test_secret_behaves_like_a_value_without_showing_it():
    import pickle

    a, b = Secret("x" * 8), Secret("x" * 8)
    assert a == b and hash(a) == hash(b) and a != Secret("y")
    assert (a == "xxxxxxxx") is False
    assert "x" not in repr(a) and "x" not in str(a) and "x" not in f"{a}"
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_an_ordinary_word_as_password_does_not_garble_messages(tmp_path, capsys):
    store = tmp_path / "gw.jks"
    Keystore.generate("gw", "CN=gw", key_type="EC").save(store, "right-password")
    code = main(["list", "--keystore", str(store), "--password", "wrong"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "wrong store password" in err and "****" not in err


def test_a_new_password_that_is_not_utf8_is_a_usage_error(tmp_path, capsys):
    """A password byte that is not UTF-8 reaches Python as a lone surrogate: the store
    writer's encoder failed with an "unexpected UnicodeEncodeError" naming the
    character. Refused first, as a usage error that shows nothing of it; the twin, the
    same password as UTF-8, makes the store."""
    store = tmp_path / "gw.jks"
    for password in ("Sekr3t-Zq81\udce4", "Sekr3t-Zq81\u00e4"):
        code = main(["genkey", "--keystore", str(store), "--alias", "gw", "--dname", "CN=gw",
                     "--password", password])  # fmt: skip
        out, err = capsys.readouterr()
        if password.isprintable():
            assert code == 0, err
            assert store.exists()
        else:
            assert code == 2, err
            assert "is not UTF-8" in err and "Zq81" not in out + err
            assert not store.exists()


def test_usage_errors_never_echo_a_password(capsys):
    code = main(["list", "--keystore", "x.jks", "--password", PASSWORD, "--bogus", PASSWORD])
    _, err = capsys.readouterr()
    assert code == 2
    assert PASSWORD not in err and "****" in err


def test_check_a_candidate_file_against_deployment_toml(tmp_path, capsys):
    from mtls.testing import CA

    ca = CA(name="candidate")
    ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    (tmp_path / "candidate.xml").write_text(
        '<parameter name="customSSLProfiles"><profile><servers>new.test:443</servers>'
        f"<KeyStore><Location>{tmp_path / 'gw.jks'}</Location><Type>JKS</Type>"
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
        f"</KeyStore><TrustStore><Location>{tmp_path / 'trust.jks'}</Location>"
        f"<Type>JKS</Type><Password>{PASSWORD}</Password></TrustStore></profile></parameter>"
    )
    (tmp_path / "deployment.toml").write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "production.xml"\n'
        '[transport.passthru_https.sender.parameters]\nHostnameVerifier = "AllowAll"\n'
    )
    code, out, _ = run(
        capsys, "check", str(tmp_path / "candidate.xml"),
        "--deployment-toml", str(tmp_path / "deployment.toml"), "--base-dir", str(tmp_path),
        "--json",
    )  # fmt: skip
    assert code == 0, out
    assert '"new.test:443"' in out and "AllowAll" in out


@pytest.mark.parametrize(
    ("keystore_elements", "said"),
    [
        ("<Type>FOO</Type>", "is not a keystore type Java reads from a file"),
        ("<Type></Type>", "an empty <Type> is not a keystore type Java reads from a file"),
        ("<Type>PKCS11</Type>", "<Type>PKCS11</Type> is not a keystore type Java reads"),
        ("", "lacks <Type>"),
        ("<Type> JKS </Type>", "spaces or line breaks around its text"),
    ],
    ids=["unknown", "empty", "not-a-file", "absent", "untrimmed"],
)
def test_check_fails_a_file_wso2_cannot_load_unless_told_only_mtls_reads_it(
    tmp_path, capsys, keystore_elements, said
):
    """mtls loads these, WSO2 does not: check said OK, exit 0, so a deploy gate passed a
    file the gateway refuses (a sweep found it). --mtls-only is for files only mtls reads."""
    from mtls.testing import CA

    ca = CA(name="wso2 loads")
    ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    ca.write_truststore(tmp_path / "trust.jks", PASSWORD)

    def write(elements: str) -> str:
        xml = tmp_path / "p.xml"
        xml.write_text(
            '<parameter name="customSSLProfiles"><profile><servers>b.test:443</servers>'
            f"<KeyStore><Location>{tmp_path / 'gw.jks'}</Location>{elements}"
            f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
            f"</KeyStore><TrustStore><Location>{tmp_path / 'trust.jks'}</Location>"
            f"<Type>JKS</Type><Password>{PASSWORD}</Password></TrustStore></profile></parameter>"
        )
        return str(xml)

    code, out, err = run(capsys, "check", write(keystore_elements))
    assert code == 1, out
    assert "FAILED: WSO2 cannot load this file" in out and said in out
    assert "WSO2 cannot load this file (1 problem, first: <KeyStore>" in err
    assert "--mtls-only" in err and PASSWORD not in out + err
    code, out, _ = run(capsys, "check", write(keystore_elements), "--json")
    report = json.loads(out)
    assert (code, report["ok"], report["loads"]) == (1, False, True)
    assert len(report["wso2_cannot_load"]) == 1 and said in report["wso2_cannot_load"][0]
    code, out, _ = run(capsys, "check", write(keystore_elements), "--mtls-only")
    assert code == 0 and "OK: 1 profile loaded" in out and said in out  # still a note
    # The twin: the file as WSO2 writes it passes without --mtls-only.
    code, out, _ = run(capsys, "check", write("<Type>JKS</Type>"))
    assert code == 0 and "OK: 1 profile loaded" in out and "WSO2" not in out


@pytest.mark.parametrize(
    ("written", "declared", "refused"),
    [
        ("JCEKS", "PKCS12", True),
        ("JCEKS", "JKS", True),
        ("PKCS12", "JCEKS", True),
        ("JKS", "PKCS12", False),  # Java's DualFormatPKCS12 reads JKS
        ("PKCS12", "JKS", False),  # a .jks from a modern keytool is PKCS#12
        ("JKS", "JCEKS", False),  # JceKeyStore reads JKS
        ("PKCS12", "CaseExactJKS", True),  # reads JKS alone (JDK 17 and 25; h187)
        ("JKS", "CaseExactJKS", False),
    ],
)
def test_check_fails_a_declared_type_java_cannot_read_the_content_as(
    tmp_path, capsys, written, declared, refused
):
    """A JCEKS keystore declared PKCS12 (or JKS), or a PKCS#12 declared JCEKS: Java's
    KeyStore.getInstance(type).load refuses it ("Invalid keystore format",
    "DerInputStream.getLength(): lengthTag=78"), so WSO2 fails there, and check said
    "OK: 1 profile loaded" with exit 0 (h186). The twins: the pairs Java reads (JDK 9's
    keystore.type.compat) still pass."""
    from mtls.testing import CA

    ca = CA(name="declared types")
    store = tmp_path / "gw.store"
    if written == "JCEKS":  # made by keytool: mtls reads JCEKS, never writes it
        if not KEYTOOLS:
            pytest.skip("no keytool on this machine")
        ca.issue_cert("gw").write_keystore(tmp_path / "gw.p12", PASSWORD, store_type="PKCS12")
        run_keytool(
            KEYTOOLS[0], "-importkeystore", "-noprompt", "-srckeystore", str(tmp_path / "gw.p12"),
            "-srcstoretype", "PKCS12", "-srcstorepass", PASSWORD, "-destkeystore", str(store),
            "-deststoretype", "JCEKS", "-deststorepass", PASSWORD, "-destkeypass", PASSWORD,
        )  # fmt: skip
    else:
        ca.issue_cert("gw").write_keystore(store, PASSWORD, store_type=written)
    ca.write_truststore(tmp_path / "trust.jks", PASSWORD)
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>b.test:443</servers>'
        f"<KeyStore><Location>{tmp_path / 'gw.store'}</Location><Type>{declared}</Type>"
        f"<Password>{PASSWORD}</Password><KeyPassword>{PASSWORD}</KeyPassword>"
        f"</KeyStore><TrustStore><Location>{tmp_path / 'trust.jks'}</Location>"
        f"<Type>JKS</Type><Password>{PASSWORD}</Password></TrustStore></profile></parameter>"
    )
    code, out, err = run(capsys, "check", str(xml))
    if refused:
        assert code == 1, out
        assert f'KeyStore.getInstance("{declared}").load refuses a {written} file' in out
        assert f"declare it {written}" in out and "FAILED: WSO2 cannot load this file" in out
        assert PASSWORD not in out + err
    else:
        assert code == 0 and "OK: 1 profile loaded" in out and "WSO2" not in out, out
