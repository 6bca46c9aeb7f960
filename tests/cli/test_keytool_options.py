"""keytool's ``-sigalg``, ``-startdate`` and ``-cacerts``, as scripts copied from
tutorials pass them: the certificates and requests mtls makes with them are read back
by the JDK's keytool (each JDK present), and what keytool refuses, or mtls refuses
where keytool would make something peers reject, is refused with one error line.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

import mtls
from mtls._keygen import parse_startdate
from mtls.testing import CA
from tests._keytool import JDK, run_keytool
from tests.cli.test_cli import PASSWORD, fails, mtls_run, ok

STORE = ("-storepass", PASSWORD)


def _listed_sigalg(keytool: JDK, store: Path, alias: str) -> str:
    text = run_keytool(keytool, "-list", "-v", "-keystore", str(store), *STORE, "-alias", alias)
    found = re.search(r"Signature algorithm name: (\S+)", text)
    assert found is not None, text
    return found.group(1)


@pytest.mark.parametrize(
    ("keyalg", "sigalg", "oid"),
    [
        (("-keyalg", "RSA"), "SHA384withRSA", "1.2.840.113549.1.1.12"),
        (("-keyalg", "RSA"), "sha512withrsa", "1.2.840.113549.1.1.13"),  # any case, as Java
        (("-keyalg", "RSA"), "RSASSA-PSS", "1.2.840.113549.1.1.10"),
        (("-keyalg", "EC", "-groupname", "secp384r1"), "SHA256withECDSA", "1.2.840.10045.4.3.2"),
        (("-keyalg", "EC"), "SHA3-256withECDSA", "2.16.840.1.101.3.4.3.10"),
        (("-keyalg", "Ed25519"), "EdDSA", "1.3.101.112"),
    ],
)
def test_genkey_signs_with_the_sigalg_keytool_reads(
    tmp_path: Path, jdk_keytool: JDK, keyalg: tuple[str, ...], sigalg: str, oid: str
) -> None:
    store = tmp_path / "k.p12"
    run = mtls_run("-genkeypair", "-keystore", store, *STORE, "-alias", "k", *keyalg,
                   "-dname", "CN=k", "-sigalg", sigalg)  # fmt: skip
    assert run.code == 0, run.stderr
    # OpenSSL 3.0 verifies no ECDSA signature over SHA-3: said, and made (Java does).
    assert ("OpenSSL 3.0 and 3.1 peers" in run.stderr) is sigalg.startswith("SHA3-"), run.stderr
    cert = mtls.Keystore.load(store, PASSWORD).certificate("k")
    assert cert.signature_algorithm_oid.dotted_string == oid
    listed = _listed_sigalg(jdk_keytool, store, "k")
    expected = {"EdDSA": "Ed25519"}.get(sigalg, sigalg)
    assert listed.lower() == expected.lower()
    if sigalg == "RSASSA-PSS":
        # The JDK's parameters for a 2048-bit key: SHA-256, MGF1 with SHA-256, salt 32.
        params = cert.signature_algorithm_parameters
        assert isinstance(params, padding.PSS)
        assert params._salt_length == 32
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == "sha256"


def test_genkey_without_sigalg_signs_as_keytool_does(tmp_path: Path, jdk_keytool: JDK) -> None:
    ours, theirs = tmp_path / "ours.jks", tmp_path / "theirs.jks"
    ok("-genkeypair", "-keystore", ours, *STORE, "-alias", "k", "-keyalg", "EC", "-groupname",
       "secp521r1", "-dname", "CN=k")  # fmt: skip
    run_keytool(jdk_keytool, "-genkeypair", "-keystore", str(theirs), *STORE, "-alias", "k",
                "-keyalg", "EC", "-groupname", "secp521r1", "-dname", "CN=k")  # fmt: skip
    assert _listed_sigalg(jdk_keytool, ours, "k") == _listed_sigalg(jdk_keytool, theirs, "k")


@pytest.mark.parametrize(
    ("keyalg", "sigalg", "says"),
    [
        ("RSA", "SHA256withECDSA", "signs with EC keys; this key is RSA: use SHA256withRSA"),
        ("EC", "SHA256withRSA", "signs with RSA keys; this key is EC: use SHA256withECDSA"),
        ("RSA", "Ed25519", "signs with Ed25519 keys; this key is RSA"),
        ("EC", "RSASSA-PSS", "signs with RSA keys; this key is EC"),
        ("RSA", "MD5withRSA", "MD5 signatures are broken"),
        ("RSA", "SHA1withRSA", "SHA-1 signatures are refused"),
        ("RSA", "bogus", "unknown signature algorithm 'bogus'"),
    ],
)
def test_a_sigalg_keytool_refuses_or_peers_refuse_writes_nothing(
    tmp_path: Path, keyalg: str, sigalg: str, says: str
) -> None:
    store = tmp_path / "k.p12"
    run = fails(2, "-genkeypair", "-keystore", store, *STORE, "-alias", "k", "-keyalg", keyalg,
                "-dname", "CN=k", "-sigalg", sigalg)  # fmt: skip
    assert says in run.stderr
    assert not store.exists()


def test_certreq_and_gencert_take_sigalg(tmp_path: Path, jdk_keytool: JDK) -> None:
    ca = ("-keystore", str(tmp_path / "ca.p12"), *STORE)
    ok("-genkeypair", *ca, "-alias", "ca", "-keyalg", "EC", "-groupname", "secp384r1",
       "-dname", "CN=ca", "-ext", "bc:c")  # fmt: skip
    gw = ("-keystore", str(tmp_path / "gw.jks"), *STORE)
    run_keytool(jdk_keytool, "-genkeypair", *gw, "-alias", "gw", "-keyalg", "RSA",
                "-dname", "CN=gw")  # fmt: skip
    csr = tmp_path / "gw.csr"
    ok("-certreq", *gw, "-alias", "gw", "-file", csr, "-sigalg", "SHA512withRSA")
    printed = run_keytool(jdk_keytool, "-printcertreq", "-file", str(csr))
    assert "SHA512withRSA" in printed
    reply = tmp_path / "gw.cer"
    ok("-gencert", *ca, "-alias", "ca", "-infile", csr, "-outfile", reply, "-rfc",
       "-sigalg", "SHA256withECDSA")  # fmt: skip
    assert "SHA256withECDSA" in run_keytool(jdk_keytool, "-printcert", "-file", str(reply))
    # The CA's key is EC: an RSA signature is refused, and nothing is written.
    other = tmp_path / "other.cer"
    run = fails(2, "-gencert", *ca, "-alias", "ca", "-infile", csr, "-outfile", other,
                "-sigalg", "SHA256withRSA")  # fmt: skip
    assert "this key is EC" in run.stderr
    assert not other.exists()
    run = fails(2, "-certreq", *gw, "-alias", "gw", "-sigalg", "SHA256withECDSA")
    assert "this key is RSA" in run.stderr


def test_startdate_in_keytools_forms(tmp_path: Path, jdk_keytool: JDK) -> None:
    store = tmp_path / "k.jks"
    ok("-genkeypair", "-keystore", store, *STORE, "-alias", "past", "-dname", "CN=k",
       "-startdate", "2025/02/28 01:02:03", "-validity", "10")  # fmt: skip
    # A value starting with "-" is the option's value, as keytool reads it.
    ok("-genkeypair", "-keystore", store, *STORE, "-alias", "yesterday", "-dname", "CN=k",
       "-startdate", "-1d")  # fmt: skip
    loaded = mtls.Keystore.load(store, PASSWORD)
    past = loaded.certificate("past")
    local = _dt.datetime(2025, 2, 28, 1, 2, 3).astimezone()  # keytool's: local time
    assert past.not_valid_before_utc == local.astimezone(_dt.UTC)
    assert past.not_valid_after_utc - past.not_valid_before_utc == _dt.timedelta(days=10)
    yesterday = loaded.certificate("yesterday").not_valid_before_utc
    now = _dt.datetime.now(_dt.UTC)
    assert _dt.timedelta(hours=23) < now - yesterday < _dt.timedelta(hours=25)
    text = run_keytool(jdk_keytool, "-list", "-v", "-keystore", str(store), *STORE,
                       "-alias", "past")  # fmt: skip
    assert "Valid from: Fri Feb 28 01:02:03" in text  # both read the machine's time zone


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("+1y2m", "give [+-]nnn[ymdHMS]"),  # keytool refuses it too: every part has a sign
        ("2025-02-28", "give [+-]nnn[ymdHMS]"),
        ("2025/02/30", "no such date"),  # keytool rolls it over to March 2nd
        ("+1x", "give [+-]nnn[ymdHMS]"),
    ],
)
def test_a_startdate_that_is_no_date_writes_nothing(tmp_path: Path, value: str, says: str) -> None:
    store = tmp_path / "k.jks"
    run = fails(2, "-genkeypair", "-keystore", store, *STORE, "-alias", "k", "-dname", "CN=k",
                "-startdate", value)  # fmt: skip
    assert says in run.stderr
    assert not store.exists()


def test_a_start_whose_validity_ends_after_9999_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "k.jks"
    run = fails(2, "-genkeypair", "-keystore", store, *STORE, "-alias", "k", "-dname", "CN=k",
                "-startdate", "9999/01/01", "-validity", "400")  # fmt: skip
    assert "ends after the year 9999" in run.stderr
    assert not store.exists()


def test_relative_startdates_follow_javas_calendar() -> None:
    # Noon on January 31st in this machine's time zone, whatever it is.
    now = _dt.datetime(2024, 1, 31, 12, 0).astimezone()
    wall = now.replace(tzinfo=None)

    def on_the_wall(text: str) -> _dt.datetime:
        return parse_startdate(text, now).replace(tzinfo=None)

    # A month after January 31st is the last of February, as Calendar.add makes it.
    assert on_the_wall("+1m") == wall.replace(month=2, day=29)
    assert on_the_wall("+1y+1m") == wall.replace(year=2025, month=2, day=28)
    assert on_the_wall("-1m") == wall.replace(year=2023, month=12)
    assert parse_startdate("-5H+30M", now) == now - _dt.timedelta(hours=4, minutes=30)
    assert on_the_wall("+0d") == wall
    assert on_the_wall("10:11:12") == wall.replace(hour=10, minute=11, second=12)
    assert on_the_wall("2020/06/01") == wall.replace(year=2020, month=6, day=1)
    for far in ("+8000y", "-2025y", "+99999999d"):
        with pytest.raises(ValueError, match="before the year 1 or after 9999"):
            parse_startdate(far, now)
    for malformed in ("+1234567890d", "+\u0663d", "2025/0\u0663/01"):  # 10 digits; Arabic 3
        with pytest.raises(ValueError, match=r"give \[\+-\]nnn\[ymdHMS\]"):
            parse_startdate(malformed, now)


@pytest.mark.parametrize(
    ("startdate", "not_before"),
    [
        # A local time that does not exist (clocks go 02:00 -> 03:00) and one that
        # happens twice (03:00 -> 02:00): Java's calendar takes the later offset.
        ("2026/03/29 02:30:00", _dt.datetime(2026, 3, 29, 1, 30, tzinfo=_dt.UTC)),
        ("2026/10/25 02:30:00", _dt.datetime(2026, 10, 25, 1, 30, tzinfo=_dt.UTC)),
        ("2026/07/01 12:00:00", _dt.datetime(2026, 7, 1, 10, 0, tzinfo=_dt.UTC)),
    ],
)
def test_startdate_across_daylight_saving_as_keytool(
    tmp_path: Path, jdk_keytool: JDK, startdate: str, not_before: _dt.datetime
) -> None:
    berlin = {"TZ": "Europe/Berlin"}
    ours, theirs = tmp_path / "ours.p12", tmp_path / "theirs.p12"
    ok("-genkeypair", "-keystore", ours, *STORE, "-alias", "k", "-keyalg", "EC",
       "-dname", "CN=k", "-startdate", startdate, env=berlin)  # fmt: skip
    assert mtls.Keystore.load(ours, PASSWORD).certificate("k").not_valid_before_utc == not_before
    run_keytool(
        jdk_keytool, "-J-Duser.timezone=Europe/Berlin", "-genkeypair", "-keystore",
        str(theirs), *STORE, "-alias", "k", "-keyalg", "EC", "-dname", "CN=k",
        "-startdate", startdate,
    )  # fmt: skip
    assert mtls.Keystore.load(theirs, PASSWORD).certificate("k").not_valid_before_utc == not_before


def test_relative_hours_are_time_elapsed(tmp_path: Path) -> None:
    """Java adds hours, minutes and seconds as time elapsed, days on the calendar: 3,000
    hours from a Berlin winter day crosses a clock change and is still 125 days."""
    store = tmp_path / "k.p12"
    before = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    ok("-genkeypair", "-keystore", store, *STORE, "-alias", "k", "-keyalg", "EC",
       "-dname", "CN=k", "-startdate", "+3000H", env={"TZ": "Europe/Berlin"})  # fmt: skip
    after = _dt.datetime.now(_dt.UTC)
    start = mtls.Keystore.load(store, PASSWORD).certificate("k").not_valid_before_utc
    assert before + _dt.timedelta(hours=3000) <= start <= after + _dt.timedelta(hours=3000)
    # The far end, in a zone west of UTC: refused, never an OverflowError.
    run = fails(2, "-genkeypair", "-keystore", store, *STORE, "-alias", "j", "-dname", "CN=j",
                "-startdate", "9999/12/31 23:59:59", env={"TZ": "America/New_York"})  # fmt: skip
    assert "after 9999" in run.stderr


def _fake_jdk(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A JAVA_HOME holding a cacerts file, and an environment without a keytool."""
    home = tmp_path / "jdk"
    cacerts = home / "lib" / "security" / "cacerts"
    cacerts.parent.mkdir(parents=True)
    trust = mtls.Truststore()
    trust.add_certificate("root one", CA(name="cacerts root").certificate)
    trust.save(cacerts, PASSWORD, store_type="JKS")
    return cacerts, {"JAVA_HOME": str(home), "PATH": str(tmp_path / "no-bin")}


def test_cacerts_is_the_jdks_truststore(tmp_path: Path) -> None:
    cacerts, env = _fake_jdk(tmp_path)
    listed = ok("-list", "-cacerts", *STORE, env=env)
    assert str(cacerts) in listed.stdout and "root one" in listed.stdout
    ok("-changealias", "-cacerts", *STORE, "-alias", "root one", "-destalias", "root two", env=env)
    assert mtls.Truststore.load(cacerts, PASSWORD).aliases == ("root two",)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("-list", "-cacerts", "-keystore", "x.jks"), "give -keystore or -cacerts, not both"),
        (("-list", "-cacerts", "-storetype", "JKS"), "give -keystore or -cacerts, not both"),
        (("-genkeypair", "-cacerts", "-alias", "x", "-dname", "CN=x"), "goes with list, export"),
    ],
)
def test_cacerts_refused_where_keytool_refuses_it(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    _, env = _fake_jdk(tmp_path)
    assert says in fails(2, *args, *STORE, env=env).stderr


def test_cacerts_without_a_jdk_says_how_to_name_one(tmp_path: Path) -> None:
    env = {"JAVA_HOME": str(tmp_path / "none"), "PATH": str(tmp_path / "no-bin")}
    run = fails(1, "-list", "-cacerts", *STORE, env=env)
    assert "no JDK with a cacerts file found" in run.stderr and "JAVA_HOME" in run.stderr


def test_keytool_command_lines_as_tutorials_write_them(tmp_path: Path, jdk_keytool: JDK) -> None:
    """h240: -v on every command (WSO2's "keytool -import -v -trustcacerts ..."; genkey
    read it as -validity), options before the command, -J options (the JVM's: ignored,
    said, never echoed: one may carry a password), -keypass on export, keytool's
    default alias mykey, -keyalg EdDSA."""
    store = tmp_path / "rel.jks"
    ok("-genkey", "-v", "-keystore", store, "-keyalg", "RSA", "-validity", "10000",
       "-dname", "CN=Android", *STORE)  # fmt: skip
    listed = run_keytool(jdk_keytool, "-list", "-keystore", str(store), *STORE)
    assert "mykey," in listed  # keytool's default alias
    cert = mtls.Keystore.load(store, PASSWORD).certificate("mykey")
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 10000
    exported = tmp_path / "mykey.cer"
    ok("-exportcert", "-v", "-keystore", store, *STORE, "-keypass", PASSWORD, "-file", exported)
    assert x509.load_der_x509_certificate(exported.read_bytes()) == cert
    trust = tmp_path / "trust.jks"
    ok("-import", "-v", "-trustcacerts", "-alias", "gw", "-file", exported, "-keystore", trust,
       *STORE, "-noprompt")  # fmt: skip
    # Options before the command, as keytool takes them.
    before = ok("-keystore", trust, *STORE, "-v", "-list")
    assert "gw" in before.stdout and "trustedCertEntry" in before.stdout
    csr = tmp_path / "k.csr"
    ok("-alias", "mykey", *STORE, "-keystore", store, "-certreq", "-file", csr)
    assert csr.read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    secret = "jvm-Secret-Pw9"
    run = mtls_run("-J-Duser.language=en", "-list", "-keystore", trust, *STORE,
                   f"-J-Djavax.net.ssl.keyStorePassword={secret}")  # fmt: skip
    assert run.code == 0, run.stderr
    assert "2 -J options ignored" in run.stderr and secret not in run.stderr + run.stdout
    ed = tmp_path / "ed.p12"
    ok("-genkeypair", "-keyalg", "EdDSA", "-keystore", ed, *STORE, "-dname", "CN=ed")
    assert "Ed25519" in run_keytool(jdk_keytool, "-list", "-v", "-keystore", str(ed), *STORE)
    # The twins: an option keytool does not have is still refused, and a command line
    # with no command says so.
    assert "unrecognized arguments: -bogus" in fails(2, "-list", "-keystore", trust, *STORE,
                                                     "-bogus").stderr  # fmt: skip
    fails(2, "-keystore", trust, *STORE)


def test_a_missing_alias_is_named_among_every_key_entry(tmp_path: Path) -> None:
    """certreq and gencert on a JKS store load the named key alone: a missing alias was
    said to be among "key aliases: (none)" (h240); delete listed every alias."""
    store = tmp_path / "gw.jks"
    ok("-genkeypair", "-alias", "gw", "-keystore", store, *STORE, "-dname", "CN=gw")
    run = fails(1, "-certreq", "-alias", "nope", "-keystore", store, *STORE)
    assert "has no key entry 'nope'; key aliases are: 'gw'" in run.stderr
    run = fails(1, "-gencert", "-alias", "ca", "-keystore", store, *STORE, "-infile", store)
    assert "key aliases are: 'gw'" in run.stderr
    many = mtls.Truststore()
    for i in range(30):
        many.add(f"root{i:02d}", CA(name=f"root {i}").certificate)
    big = tmp_path / "big.jks"
    many.save(big, PASSWORD, store_type="JKS")
    run = fails(1, "-delete", "-alias", "root77", "-keystore", big, *STORE)
    assert "and 18 more (list them with mtls list)" in run.stderr


def test_a_wrong_key_password_given_is_refused_as_keytool_refuses_it(tmp_path: Path) -> None:
    """changealias and import of a reply keep a JKS key as the file protects it, and took
    a wrong -keypass in silence (h240): the user then wrote it into WSO2's config. A
    given key password is checked; the right one, or none, still works."""
    store = tmp_path / "kp.jks"
    ok("-genkeypair", "-alias", "kp", "-keystore", store, *STORE, "-keypass", "own-Key-Pw1",
       "-dname", "CN=kp")  # fmt: skip
    ca = ("-keystore", tmp_path / "ca.p12", *STORE)
    ok("-genkeypair", *ca, "-alias", "ca", "-dname", "CN=ca", "-ext", "bc:c")
    csr, reply = tmp_path / "kp.csr", tmp_path / "kp.pem"
    ok("-certreq", "-alias", "kp", "-keystore", store, *STORE, "-keypass", "own-Key-Pw1",
       "-file", csr)  # fmt: skip
    ok("-gencert", *ca, "-alias", "ca", "-infile", csr, "-outfile", reply, "-rfc")
    root = tmp_path / "ca.pem"
    ok("-exportcert", *ca, "-alias", "ca", "-rfc", "-file", root)
    ok("-importcert", "-alias", "root", "-file", root, "-keystore", store, *STORE, "-noprompt")
    wrong = ("-keystore", store, *STORE, "-keypass", "WRONG-pass1")
    for args in (("-changealias", "-alias", "kp", "-destalias", "kp2"),
                 ("-importcert", "-alias", "kp", "-file", reply, "-noprompt")):  # fmt: skip
        run = fails(1, *args, *wrong)
        assert "does not unlock key entry 'kp'" in run.stderr and "WRONG-pass1" not in run.stderr
    assert len(mtls.Keystore.inspect(store, PASSWORD).certificate_chain("kp")) == 1
    ok("-importcert", "-alias", "kp", "-file", reply, "-noprompt", "-keystore", store, *STORE,
       "-keypass", "own-Key-Pw1")  # fmt: skip
    assert len(mtls.Keystore.inspect(store, PASSWORD).certificate_chain("kp")) == 2
    ok("-changealias", "-alias", "kp", "-destalias", "kp2", "-keystore", store, *STORE,
       "-keypass", "own-Key-Pw1")  # fmt: skip
    ok("-changealias", "-alias", "kp2", "-destalias", "kp3", "-keystore", store, *STORE)
    assert mtls.Keystore.inspect(store, PASSWORD).key_aliases == ("kp3",)
    assert mtls.Keystore.load(store, PASSWORD, key_password="own-Key-Pw1").key_aliases == ("kp3",)


def test_sigalg_by_oid_and_the_default_named_by_key_size(tmp_path: Path) -> None:
    """keytool takes a signature algorithm's OID (with or without "OID."); a refusal
    names the key's own default: SHA384withRSA for RSA 4096, not SHA256withRSA (h241).
    Spaces around a name are refused, as keytool refuses them."""
    store = tmp_path / "k.p12"
    ok("-genkeypair", "-keystore", store, *STORE, "-alias", "k", "-dname", "CN=k",
       "-sigalg", "OID.1.2.840.113549.1.1.12")  # fmt: skip
    cert = mtls.Keystore.load(store, PASSWORD).certificate("k")
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.12"
    # genkey's default validity: days from now, the start five minutes before now.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == _dt.timedelta(
        days=365, minutes=5
    )
    for keyalg, wrong, default in (
        (("-keyalg", "RSA", "-keysize", "4096"), "SHA256withECDSA", "SHA384withRSA"),
        (("-keyalg", "EC", "-groupname", "secp521r1"), "1.2.840.113549.1.1.11", "SHA512withECDSA"),
    ):
        run = fails(2, "-genkeypair", "-keystore", tmp_path / "x.p12", *STORE, "-alias", "x",
                    "-dname", "CN=x", *keyalg, "-sigalg", wrong)  # fmt: skip
        assert f"use {default} (or give none" in run.stderr
    run = fails(2, "-genkeypair", "-keystore", tmp_path / "x.p12", *STORE, "-alias", "x",
                "-dname", "CN=x", "-sigalg", " SHA256withRSA")  # fmt: skip
    assert "unknown signature algorithm" in run.stderr
