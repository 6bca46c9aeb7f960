"""Validity times Python's datetime or DER's profile does not hold (h202): year 0, which
OpenSSL and Java read and ``datetime`` cannot; dates that do not exist (a leap second,
an hour 24, 30 February), which OpenSSL's verifier refuses and Java's parser refuses
but for the day of a month; fractions of a second. keytool and ``openssl verify`` are
the oracles; each refusal has its twin."""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import mtls
from mtls import _dates, _der, _x509
from mtls.cli import main
from mtls.testing import CA, IssuedIdentity
from tests._helpers import PASSWORD, der_elements, profile, redated, signed_again, write_xml
from tests._keytool import JDK, run_keytool

NOW = _dt.datetime.now(_dt.UTC)
START = "U:200101000000Z"
YEAR_ZERO = _dt.datetime.min.replace(tzinfo=_dt.UTC)

# name -> (notBefore, notAfter, Java parses it, OpenSSL verifies its form and date)
CASES: dict[str, tuple[str, str, bool, bool]] = {
    "leap second": (START, "U:361231235960Z", False, False),
    "hour 24": (START, "U:361231240000Z", False, False),
    "minute 60": (START, "U:361231126000Z", False, False),
    "month 13": (START, "U:361301120000Z", False, False),
    "day 0": (START, "U:360100120000Z", False, False),
    "day 32": (START, "U:360132120000Z", False, False),
    "month 0": (START, "U:360001120000Z", False, False),
    "offset of 24 hours": (START, "U:361231235959+2400", False, False),
    "offset of 60 minutes": (START, "U:361231235959+0060", False, False),
    "empty fraction": (START, "G:20611231235959.Z", False, False),
    "offset of 24 hours, GeneralizedTime": (START, "G:20611231235959+2400", False, False),
    "offset without seconds": (START, "U:3612312359+0100", False, False),
    "lowercase z": (START, "G:20611231235959z", False, False),
    "fraction in a UTCTime": (START, "U:361231235959.5Z", False, False),
    "leap second notBefore": ("U:161231235960Z", "U:361231120000Z", False, False),
    "leap second, GeneralizedTime": (START, "G:20611231235960Z", False, False),
    "30 February": (START, "U:360230120000Z", True, False),  # Java: 1 March
    "29 February 2037": (START, "U:370229120000Z", True, False),
    "fraction": (START, "G:20611231235959.5Z", True, False),
    "31 April": (START, "U:360431120000Z", True, False),
    "no seconds": (START, "U:3612312359Z", True, False),
    "offset of an hour": (START, "U:361231235959+0100", True, False),
    "offset of 23:59": (START, "U:361231235959+2359", True, False),
    "fraction of 12 digits": (START, "G:20611231235959.123456789012Z", True, False),
    "29 February 2036": (START, "U:360229120000Z", True, True),  # the twin: a real date
    "year 0 notBefore": ("G:00000101000000Z", "U:361231120000Z", True, True),
    "year 0 notAfter": (START, "G:00000101000000Z", True, True),
}


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(name="dates CA")


def _dated(ca: CA, case: str, identity: IssuedIdentity | None = None) -> bytes:
    identity = identity or ca.issue_cert("localhost")
    not_before, not_after, _, _ = CASES[case]
    return redated(identity.certificate, ca, not_before, not_after)


def _pem(der: bytes) -> bytes:
    return _x509.der_to_pem(der).encode()


def _keytool_reads(jdk: JDK, *args: str) -> bool:
    try:
        run_keytool(jdk, *args)
    except subprocess.CalledProcessError:
        return False
    return True


@pytest.mark.openssl
@pytest.mark.parametrize("case", list(CASES))
def test_dates_are_judged_as_java_and_openssl_judge_them(
    ca: CA, case: str, any_keytool: JDK, openssl_bin: str, tmp_path: Path
) -> None:
    """What mtls says Java cannot parse, keytool cannot (-printcert: "Failed to parse
    input"); what it says OpenSSL's verifier refuses, openssl verify refuses as a
    "format error" of that field. Year 0 both read (and datetime cannot hold)."""
    der = _dated(ca, case)
    _, _, java_reads, openssl_verifies = CASES[case]
    (tmp_path / "cert.pem").write_bytes(_pem(der))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    assert (
        _keytool_reads(any_keytool, "-printcert", "-file", str(tmp_path / "cert.pem")) is java_reads
    )
    assert (_dates.java_refused_dates(der) is None) is java_reads
    verified = subprocess.run(
        [openssl_bin, "verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "cert.pem"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ("format error" not in verified.stdout + verified.stderr) is openssl_verifies
    assert (_dates.unverifiable_dates(der) is None) is openssl_verifies
    # Every peer refuses what neither reads: a reload refuses to install it.
    assert (_dates.refused_dates(der) is not None) is (not java_reads and not openssl_verifies)


def test_year_zero_is_the_earliest_time(ca: CA) -> None:
    """cryptography raises ValueError for a year-0 time ("year 0 is out of range"):
    read as the earliest time, a start long past or an end long past, as to OpenSSL."""
    start = x509.load_der_x509_certificate(_dated(ca, "year 0 notBefore"))
    assert _dates.not_before(start) == YEAR_ZERO
    assert _dates.not_after(start).year == 2036
    end = _dated(ca, "year 0 notAfter")
    assert _x509.validity(end)[1] == YEAR_ZERO
    assert _x509.lenient_leaf_info(end)[2] == YEAR_ZERO


def test_a_year_zero_anchor_leaves_status_and_the_expiry_watch_working(
    ca: CA, tmp_path: Path
) -> None:
    """One anchor with a year-0 notBefore in a truststore made status() raise and
    stopped the expiry watch of the whole set: an identity two days from its end
    was never announced (h202). The twin: the same set without it says the same."""
    soon = ca.issue_cert(
        "gw", not_before=NOW - _dt.timedelta(days=300), not_after=NOW + _dt.timedelta(days=2)
    )
    keystore = soon.write_keystore(tmp_path / "gw.jks", PASSWORD)
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(ca.cert_pem + _pem(_dated(ca, "year 0 notBefore")))
    xml = write_xml(tmp_path, profile("a.example:443", keystore, bundle, truststore_type="PEM"))
    with mtls.SSLProfileSet.from_xml(xml, reload_interval=None) as profiles:
        status = profiles.status()
        (entry,) = status.profiles
        assert YEAR_ZERO in [anchor.not_before for anchor in entry.anchors]
        assert status.healthy, entry.refused
        events = profiles.check_health()
    assert [(event.kind, event.role) for event in events] == [("expiring", "identity")]


def _crl_dated(ca: CA, this_update: str) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(NOW - _dt.timedelta(hours=1))
        .next_update(NOW + _dt.timedelta(days=7))
        .sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    tbs, _, _ = der_elements(crl.public_bytes(serialization.Encoding.DER))
    fields = der_elements(tbs)  # version, signature, issuer, thisUpdate, nextUpdate
    fields[3] = _der.encode(0x18, this_update.encode())
    return signed_again(_der.encode(_der.SEQUENCE, b"".join(fields)), ca)


@pytest.mark.parametrize("this_update", ["00000101000000Z", "20200101000000Z"])
def test_a_crl_dated_year_zero_is_read(
    ca: CA, this_update: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mtls printcrl`` ended in "unexpected ValueError", and a profile's CRL file
    raised a bare ValueError, for a thisUpdate of year 0 (OpenSSL reads it). The twin:
    a plain date."""
    path = tmp_path / "ca.crl"
    path.write_bytes(_crl_dated(ca, this_update))
    assert main(["printcrl", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("0001-01-01" in out) is this_update.startswith("0000")
    crls = mtls.CRLSet.load(path)
    crls.check_expiry()
    assert crls.next_update is not None and crls.next_update > NOW


@pytest.fixture(scope="module")
def p12s(ca: CA, openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PKCS#12 keystores (openssl pkcs12 -export: mtls writes no certificate it cannot
    read) of identities dated as CASES, and one plainly dated."""
    d = tmp_path_factory.mktemp("p12")
    out: dict[str, Path] = {}
    for case in ("leap second", "30 February", "plain", "plain again"):
        identity = ca.issue_cert("localhost")
        der = (
            identity.certificate.public_bytes(serialization.Encoding.DER)
            if case.startswith("plain")
            else _dated(ca, case, identity)
        )
        key, cert = d / f"{case}.key", d / f"{case}.pem"
        key.write_bytes(
            identity.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert.write_bytes(_pem(der))
        out[case] = d / f"{case}.p12"
        subprocess.run(
            [openssl_bin, "pkcs12", "-export", "-inkey", key, "-in", cert, "-name", "gw",
             "-passout", f"pass:{PASSWORD}", "-out", out[case]],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        key.unlink()
    return out


@pytest.mark.openssl
@pytest.mark.parametrize("case", ["leap second", "30 February"])
def test_mtls_check_fails_a_keystore_whose_dates_no_parser_reads(
    p12s: dict[str, Path],
    case: str,
    any_keytool: JDK,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A leap second in the client certificate's notAfter: keytool cannot open the
    store ("keystore password was incorrect"), OpenSSL servers refuse the certificate;
    ``mtls check`` said OK (h202). 30 February is the twin Java reads (as 1 March):
    a note that OpenSSL-based servers refuse it, and the check passes."""
    java_reads = case == "30 February"
    listed = _keytool_reads(any_keytool, "-list", "-keystore", str(p12s[case]), "-storetype",
                            "PKCS12", "-storepass", PASSWORD)  # fmt: skip
    assert listed is java_reads
    xml = write_xml(tmp_path, profile("a.example:443", p12s[case], p12s["plain"]))
    code = main(["check", str(xml)])
    out = capsys.readouterr().out
    assert code == (0 if java_reads else 1), out
    assert "is not a date that exists" in out
    assert ("OpenSSL-based servers refuse it" in out) is java_reads
    # The fix for a date is a date in DER's form, not "for TLS client authentication".
    assert ("have it reissued with its dates in DER's form" in out) is java_reads
    assert ("which Java cannot parse" in out) is (not java_reads)


def _current_serial(profiles: mtls.SSLProfileSet) -> str | None:
    identity = profiles.status().profiles[0].identity
    assert identity is not None
    return identity.serial


@pytest.mark.openssl
def test_a_replacement_whose_dates_no_parser_reads_is_not_installed(
    p12s: dict[str, Path], tmp_path: Path
) -> None:
    """Every peer refuses a certificate with a leap second in its dates: the
    identity in service stays, and why is said. The twin: a plainly dated
    replacement goes in."""
    keystore = tmp_path / "gw.p12"
    keystore.write_bytes(p12s["plain"].read_bytes())
    xml = write_xml(tmp_path, profile("a.example:443", keystore, p12s["plain"]))
    with mtls.SSLProfileSet.from_xml(xml, reload_interval=None, settle_delay=0) as profiles:
        first = _current_serial(profiles)
        keystore.write_bytes(p12s["leap second"].read_bytes())
        profiles.reload()
        assert _current_serial(profiles) == first
        (error,) = map(str, profiles.status().errors)
        assert "is not a date that exists" in error and "the previous one stays" in error
        assert "have it reissued with dates that exist" in error
        keystore.write_bytes(p12s["plain again"].read_bytes())
        profiles.reload()
        assert _current_serial(profiles) != first
        assert profiles.status().errors == ()


@pytest.mark.openssl
@pytest.mark.parametrize("case", ["leap second", "plain"])
def test_a_first_load_with_such_dates_is_served_and_not_healthy(
    p12s: dict[str, Path], case: str, tmp_path: Path
) -> None:
    """A first load serves what it has (there is nothing else), and status() said it
    was healthy, its end unknown and never watched: it is refused, saying why."""
    xml = write_xml(tmp_path, profile("a.example:443", p12s[case], p12s["plain"]))
    with mtls.SSLProfileSet.from_xml(xml, reload_interval=None) as profiles:
        status = profiles.status()
    refused = status.profiles[0].refused
    assert status.healthy is (case == "plain")
    assert (refused is not None and "is not a date that exists" in refused) is (case != "plain")


@pytest.mark.parametrize("matching", [True, False])
def test_a_pem_keystore_matches_a_key_to_a_certificate_with_a_fraction(
    ca: CA, matching: bool, tmp_path: Path
) -> None:
    """A PEM keystore whose certificate has a fraction in its notAfter (OpenSSL and
    Python's load_cert_chain take it) failed: "none of its 2 certificates is for this
    key" (h202). The twin: another identity's key is still refused."""
    identity = ca.issue_cert("gw")
    key = (identity if matching else ca.issue_cert("other")).private_key
    der = _dated(ca, "fraction", identity)
    pem = tmp_path / "gw.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + _pem(der)
        + ca.cert_pem
    )
    if not matching:
        with pytest.raises(mtls.KeyEntryError, match="none of its 2 certificates"):
            mtls.Keystore.load(pem, None)
        return
    _, _, chain = mtls.Keystore.load(pem, None).key_entry()
    assert chain[0] == der


@pytest.mark.openssl
def test_a_store_java_cannot_parse_for_its_dates_is_not_written(
    p12s: dict[str, Path], tmp_path: Path
) -> None:
    """keytool -importcert refuses such a certificate and a JKS holding one fails to
    load whole in Java: converting the PKCS#12 writes nothing. The twin: 30 February,
    which Java reads."""
    leap = mtls.Keystore.load(p12s["leap second"], PASSWORD)
    with pytest.raises(mtls.KeyEntryError, match="reissued with validity dates that exist"):
        leap.save(tmp_path / "leap.jks", PASSWORD)
    assert not (tmp_path / "leap.jks").exists()
    mtls.Keystore.load(p12s["30 February"], PASSWORD).save(tmp_path / "feb30.jks", PASSWORD)
    assert mtls.Keystore.load(tmp_path / "feb30.jks", PASSWORD).aliases == ("gw",)


@pytest.mark.parametrize("never", [True, False])
def test_a_certificate_never_valid_is_called_so_everywhere(
    ca: CA, never: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """notBefore after notAfter: ``mtls check`` said "never valid", ``mtls list`` "NOT
    VALID YET", ``status()`` "not valid until" (h202): it must be reissued, not waited
    for. The twin: a certificate valid from 2098 to 2099 is not valid yet."""
    identity = ca.issue_cert("gw")
    dates = ("G:20990101000000Z", "G:20980101000000Z")
    der = redated(identity.certificate, ca, *(dates if never else dates[::-1]))
    store = mtls.Keystore()
    store.add_key("gw", identity.private_key, [x509.load_der_x509_certificate(der)])
    keystore = tmp_path / "gw.jks"
    store.save(keystore, PASSWORD)
    assert main(["list", "--keystore", str(keystore), "--password", PASSWORD]) == 0
    listed = capsys.readouterr().out
    assert ("NEVER VALID" in listed) is never
    assert ("NOT VALID YET" in listed) is not never
    xml = write_xml(tmp_path, profile("a.example:443", keystore, _trust(ca, tmp_path)))
    with mtls.SSLProfileSet.from_xml(xml, reload_interval=None) as profiles:
        refused = profiles.status().profiles[0].refused
    assert refused is not None
    assert ("is never valid" in refused) is never
    assert ("is not valid until 2098" in refused) is not never


def _trust(ca: CA, directory: Path) -> Path:
    return ca.write_truststore(directory / "trust.jks", PASSWORD)


@pytest.mark.openssl
@pytest.mark.parametrize("case", ["leap second", "plain"])
def test_a_rotating_server_serving_such_dates_is_not_healthy(
    ca: CA, p12s: dict[str, Path], case: str, tmp_path: Path
) -> None:
    """The server's status() said healthy, with no end date, while every client
    refused its certificate (h204: the profile set's had been fixed alone)."""
    with mtls.RotatingServerContext(
        p12s[case], _trust(ca, tmp_path), password=PASSWORD, reload_interval=None
    ) as server:
        status = server.status()
    assert status.healthy is (case == "plain")
    refused = status.refused
    assert (refused is not None and "is not a date that exists" in refused) is (case != "plain")


@pytest.mark.parametrize("issued", ["year 0", "yesterday"])
def test_a_crl_dated_year_zero_is_not_announced_as_due(ca: CA, issued: str, tmp_path: Path) -> None:
    """The next list is due half-way through a list's validity: from year 0, 185,000
    days before its nextUpdate, and the list was announced as expiring at once. The
    twin: a list from yesterday to next week is due in days, not announced either."""
    yesterday = (NOW - _dt.timedelta(days=1)).strftime("%Y%m%d%H%M%SZ")
    path = tmp_path / "ca.crl"
    path.write_bytes(_crl_dated(ca, "00000101000000Z" if issued == "year 0" else yesterday))
    keystore = ca.issue_cert("gw").write_keystore(tmp_path / "gw.jks", PASSWORD)
    config = mtls.SSLProfile(
        servers=("a.example:443",),
        keystore=mtls.StoreConfig(location=str(keystore), password=PASSWORD),
        truststore=mtls.StoreConfig(location=str(_trust(ca, tmp_path)), password=PASSWORD),
        crls=(str(path),),
    )
    with mtls.SSLProfileSet([config], reload_interval=None) as profiles:
        events = profiles.check_health()
        assert profiles.status().healthy
    assert [event for event in events if event.role == "crl"] == []


def test_a_ber_validity_is_no_date_only_refusal(ca: CA) -> None:
    """A certificate refused for its dates alone matches its key by our own walk; one
    whose validity's length is written in BER (a byte more than DER's) is refused for
    that too, and must match nothing, as cryptography's comparison would not."""
    der = _dated(ca, "fraction")
    assert _x509.only_dates_refused(der)
    tbs, algorithm, signature = der_elements(der)
    fields = der_elements(tbs)
    validity = fields[4]  # [0] version, serial, signature, issuer, validity
    content = validity[2:]
    assert validity[1] == len(content) < 0x80
    fields[4] = b"\x30\x81" + bytes([len(content)]) + content  # the same length, in BER
    ber_tbs = _der.encode(_der.SEQUENCE, b"".join(fields))
    ber = _der.encode(_der.SEQUENCE, ber_tbs + algorithm + signature)
    assert not _x509.only_dates_refused(ber)


@pytest.mark.parametrize("offset", ["+1300", "+1200"])
def test_a_date_only_java_reads_is_watched(ca: CA, offset: str, tmp_path: Path) -> None:
    """An offset past 12 hours: OpenSSL refuses the form (its verifier, and our own
    reading of OpenSSL's rules), Java reads it: status() showed no end for a
    certificate that expired in 2020, and the expiry watch never saw it (h205). Read
    as Java reads it, it is expired. The twin, +1200, was read already."""
    identity = ca.issue_cert("gw")
    der = redated(identity.certificate, ca, "U:190101000000Z", f"U:210101000000{offset}")
    assert _x509.lenient_leaf_info(der)[2] == _dt.datetime(
        2020, 12, 31, 24 - int(offset[1:3]), tzinfo=_dt.UTC
    )
