"""`mtls probe` reports the revocation status of the server's chain; deployment.toml
turns WSO2's ``cert_revocation_validation`` into a policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import mtls
from mtls import RevocationPolicy, SSLProfileSet
from mtls import _revocation as mtls_revocation
from mtls.cli import main
from mtls.testing import CA, MTLSServer
from tests._helpers import PASSWORD, profile, profile_xml, write_trust
from tests.revocation._infra import PKI, revocation_pki


@pytest.fixture(scope="module")
def pki(openssl_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PKI]:
    with revocation_pki(openssl_bin, tmp_path_factory.mktemp("probe-ocsp")) as made:
        yield made


#: The keys of CertificateStatus.to_dict(), in order: every entry of a probe report's
#: revocation.certificates has them, whatever the outcome.
STATUS_KEYS = [
    "subject", "serial", "issuer", "status", "source", "reason", "revoked_at", "why",
    "checked_at", "valid_until",
]  # fmt: skip


def _probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    code = main(["probe", *args, "--json", "--timeout", "10"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _toml(tmp_path: Path, pki: PKI, port: int, revocation: str, ca: CA | None = None) -> Path:
    trust = write_trust(ca or pki.ca, tmp_path / "trust.jks")
    (tmp_path / "profiles.xml").write_text(
        profile_xml(profile(f"localhost:{port}", truststore=trust))
    )
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        '[transport.passthru_https.sender.ssl_profile]\nfile_path = "profiles.xml"\n'
        "interval = 0\n" + revocation
    )
    return toml


ENABLED = "[transport.passthru_https.sender.cert_revocation_validation]\nenable = true\n"


def test_probe_reports_a_good_chain(pki: PKI, tmp_path: Path, capsys) -> None:
    with MTLSServer(pki.good, require_client_cert=False) as server:
        trust = write_trust(pki.ca, tmp_path / "trust.jks")
        code, report, _ = _probe(
            capsys, f"https://localhost:{server.port}/", "--truststore", str(trust),
            "--password", PASSWORD,
        )  # fmt: skip
    assert code == 0
    revocation = report["revocation"]
    assert isinstance(revocation, dict)
    assert revocation["enforced"] is False
    (entry,) = revocation["certificates"]
    assert list(entry) == STATUS_KEYS
    assert entry["status"] == "good"
    assert entry["source"] == f"OCSP {pki.ocsp_url}"
    assert "reported only" in str(revocation["note"])


def test_probe_fails_for_a_revoked_server_and_says_why(pki: PKI, tmp_path: Path, capsys) -> None:
    with MTLSServer(pki.revoked, require_client_cert=False) as server:
        trust = write_trust(pki.ca, tmp_path / "trust.jks")
        url = f"https://localhost:{server.port}/"
        code, report, _ = _probe(capsys, url, "--truststore", str(trust), "--password", PASSWORD)
        assert code == 1
        error = report["error"]
        assert isinstance(error, dict) and error["kind"] == "server_cert_revoked"
        # The fix is named, and the request did not go to a revoked server.
        assert "the backend must get a new one from its CA" in error["message"]
        assert report["http_status"] is None
        revocation = report["revocation"]
        assert isinstance(revocation, dict)
        (entry,) = revocation["certificates"]
        assert entry["status"] == "revoked" and entry["reason"] == "keyCompromise"
        # the human form
        assert main(["probe", url, "--truststore", str(trust), "--password", PASSWORD]) == 1
        out = capsys.readouterr().out
        assert "revocation    checked for this report" in out
        assert "revoked on" in out and "keyCompromise" in out


def test_probe_says_why_a_status_is_undetermined(tmp_path: Path, capsys) -> None:
    ca = CA()  # its certificates name no responder and no CRL
    with MTLSServer(ca.issue_cert("localhost"), require_client_cert=False) as server:
        trust = write_trust(ca, tmp_path / "trust.jks")
        code, report, _ = _probe(
            capsys, f"https://localhost:{server.port}/", "--truststore", str(trust),
            "--password", PASSWORD,
        )  # fmt: skip
    assert code == 0  # reported only: not enforced
    revocation = report["revocation"]
    assert isinstance(revocation, dict)
    (entry,) = revocation["certificates"]
    assert entry["status"] == "undetermined"
    assert "names no OCSP and no CRL location" in entry["why"][0]
    # Said once, in the section: the checker's log line for the same certificate is
    # not repeated as a note (a 61-deep chain made 61 of them).
    notes = report["notes"]
    assert isinstance(notes, list)
    assert not any("could not be determined" in note for note in notes), notes


def test_deployment_toml_enables_the_check_and_probe_enforces_it(
    pki: PKI, tmp_path: Path, capsys
) -> None:
    with MTLSServer(pki.revoked, require_client_cert=False) as server:
        toml = _toml(tmp_path, pki, server.port, ENABLED + "cache_size = 10\ncache_delay = 2\n")
        with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
            checker = profiles.revocation
            assert checker is not None
            assert checker.policy == RevocationPolicy(cache_size=10, cache_delay=120.0)
        code, report, _ = _probe(
            capsys, f"https://localhost:{server.port}/", "--deployment-toml", str(toml),
            "--base-dir", str(tmp_path),
        )  # fmt: skip
    assert code == 1
    error = report["error"]
    assert isinstance(error, dict) and error["kind"] == "server_cert_revoked"
    # Said without the host the report names already, and with the backend's fix, as
    # the probe's own check says it (h264: "localhost:PORT: localhost: ... the
    # connection was closed before any request").
    assert error["message"].startswith("certificate "), error["message"]
    assert error["message"].endswith("not revoked, from its CA (our request was not sent)")
    revocation = report["revocation"]
    assert isinstance(revocation, dict)
    assert revocation["enforced"] is True and revocation["mode"] == "hard"
    assert revocation["certificates"][0]["serial"] == f"{pki.revoked.serial_number:x}"
    # A refusal has the documented shape of every entry (CertificateStatus.to_dict),
    # with what the set's check learned: the issuer and when it was asked.
    (entry,) = revocation["certificates"]
    assert list(entry) == STATUS_KEYS
    assert entry["status"] == "revoked" and entry["issuer"] and entry["checked_at"]


def test_deployment_toml_without_the_table_or_disabled_checks_nothing(
    pki: PKI, tmp_path: Path
) -> None:
    for extra in ("", ENABLED.replace("true", "false")):
        toml = _toml(tmp_path, pki, 8443, extra)
        with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
            assert profiles.revocation is None
    toml = _toml(tmp_path, pki, 8443, ENABLED)
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path, revocation=None) as profiles:
        assert profiles.revocation is None  # the argument overrides the file


def _mi_toml(tmp_path: Path, pki: PKI, revocation: str) -> Path:
    trust = write_trust(pki.ca, tmp_path / "trust.jks")
    (tmp_path / "profiles.xml").write_text(profile_xml(profile("a:1", truststore=trust)))
    toml = tmp_path / "deployment.toml"
    toml.write_text(
        "[transport.http]\n"
        'sender.ssl_profile.file_path = "profiles.xml"\n'
        "sender.ssl_profile.read_interval = 0\n" + revocation
    )
    return toml


def test_micro_integrator_spelling(pki: PKI, tmp_path: Path) -> None:
    """The keys Micro Integrator's axis2.xml template reads for its https sender."""
    toml = _mi_toml(
        tmp_path,
        pki,
        "sender.certificate_revocation_verifier_enable = true\n"
        "sender.certificate_revocation_cache_size = 5\n"
        "sender.certificate_revocation_cache_delay = 1\n",
    )
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
        assert profiles.revocation is not None
        assert profiles.revocation.policy.cache_size == 5
        assert profiles.revocation.policy.cache_delay == 60.0
    # Synapse turns it on only for "true" (any case): "TRUE" too, not "false" or "yes".
    for value, on in (('"TRUE"', True), ("false", False), ('"yes"', False)):
        toml = _mi_toml(tmp_path, pki, f"sender.certificate_revocation_verifier_enable = {value}\n")
        with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
            assert (profiles.revocation is not None) is on, value


@pytest.mark.parametrize(
    "written", ['sender.CertificateRevocationVerifier = ""', "sender.CacheSize = 5"]
)
def test_micro_integrator_axis2_names_are_refused(pki: PKI, tmp_path: Path, written: str) -> None:
    """Twin: axis2.xml's parameter names are not deployment.toml keys; Micro Integrator
    never reads them, so a check meant to be on would be off: refused with the fix."""
    toml = _mi_toml(tmp_path, pki, written + "\n")
    with pytest.raises(mtls.ProfileConfigError) as e:
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    text = str(e.value)
    assert str(toml) in text and written.split(" =", maxsplit=1)[0] in text
    assert "sender.certificate_revocation_verifier_enable = true" in text


@pytest.mark.parametrize(
    ("product", "written"),
    [
        ("apim", "enabled = true"),
        ("apim", "Enable = true"),
        ("mi", "sender.certificate_revocation_verifer_enable = true"),
    ],
)
def test_a_misspelt_switch_is_refused_not_left_off(
    pki: PKI, tmp_path: Path, product: str, written: str
) -> None:
    """WSO2 ignores a key it does not read, so the check would be off where the file
    means it on: refused, naming the key and the one to write."""
    if product == "apim":
        toml = _toml(tmp_path, pki, 8443, ENABLED.replace("enable = true", written))
        wanted = "write enable = true"
    else:
        toml = _mi_toml(tmp_path, pki, written + "\n")
        wanted = "write sender.certificate_revocation_verifier_enable = true"
    with pytest.raises(mtls.ProfileConfigError) as e:
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)
    text = str(e.value)
    assert written.split(" =", maxsplit=1)[0] in text and wanted in text and str(toml) in text


def test_a_misspelt_cache_setting_beside_the_switch_is_a_warning(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = _toml(tmp_path, pki, 8443, ENABLED + "cache_sise = 5\n")
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
        assert profiles.revocation is not None  # on, as the switch says
        assert profiles.revocation.policy.cache_size == 50  # Synapse's default
    assert any("cache_sise is not a setting WSO2 reads" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "written",
    ["enabled = false", "cache_sise = 5", "allow_cert_expiry_validation = true"],
)
def test_unknown_keys_that_cannot_mean_on_are_not_refused(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture, written: str
) -> None:
    """Without the switch: a misspelt switch set to false means off, a misspelt cache
    setting turns nothing on, and WSO2's documented allow_cert_expiry_validation is
    no misspelling at all. None is refused; the check stays off, as in WSO2."""
    table = "[transport.passthru_https.sender.cert_revocation_validation]\n"
    toml = _toml(tmp_path, pki, 8443, table + written + "\n")
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
        assert profiles.revocation is None
    key = written.split(" =", maxsplit=1)[0]
    warned = [
        r.getMessage() for r in caplog.records if "is not a setting WSO2 reads" in r.getMessage()
    ]
    assert len(warned) == (0 if key.startswith("allow_") else 1), warned
    assert all(key in message for message in warned)


def test_probe_timeout_bounds_the_enforced_check(pki: PKI, tmp_path: Path, capsys) -> None:
    """--timeout caps the set's per-fetch timeout (5 s by default) and the whole
    check's (10 s): the silent responder is given up on after 1 s, the CRL is not
    asked, and the report says so."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        ca = CA(ocsp_url=url, crl_url=url + "ca.crl")
        with MTLSServer(ca.issue_cert("localhost"), require_client_cert=False) as server:
            toml = _toml(tmp_path, pki, server.port, ENABLED, ca=ca)
            code = main(
                ["probe", f"https://localhost:{server.port}/", "--deployment-toml", str(toml),
                 "--base-dir", str(tmp_path), "--json", "--timeout", "1"]
            )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    error = json.dumps(report["error"])
    # The first fetch spends the 1 s, the CRL is not asked (it had 1 s too, before).
    assert "check's 1 s (check_timeout)" in error, error
    (entry,) = report["revocation"]["certificates"]  # type: ignore[index]
    assert list(entry) == STATUS_KEYS and entry["status"] == "undetermined"
    assert entry["why"], entry
    assert "not asked" in error, error


def test_probe_timeout_bounds_the_report_only_check(tmp_path: Path, capsys) -> None:
    """Without a set that enforces revocation, the probe's own report-only check was
    bounded per fetch only (its check_timeout stayed 10 s: --timeout 2 took 8 s on a
    chain whose responder hangs, h165): the whole check is --timeout now."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        ca = CA(ocsp_url=url, crl_url=url + "ca.crl")
        with MTLSServer(ca.issue_cert("localhost"), require_client_cert=False) as server:
            trust = write_trust(ca, tmp_path / "trust.jks")
            code = main(
                ["probe", f"https://localhost:{server.port}/", "--truststore", str(trust),
                 "--password", PASSWORD, "--json", "--timeout", "1"]
            )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0  # reported only: undetermined passes
    (entry,) = report["revocation"]["certificates"]
    assert entry["status"] == "undetermined"
    said = json.dumps(entry["why"])
    # The OCSP fetch spends the 1 s; the CRL is not asked.
    assert "check's 1 s (check_timeout)" in said and "not asked" in said, said


@pytest.mark.parametrize(
    "setting",
    ['cache_size = "many"', "cache_size = 0.5", "cache_size = 1e400", "cache_delay = 1e400"],
)
def test_a_bad_cache_setting_names_the_setting(pki: PKI, tmp_path: Path, setting: str) -> None:
    toml = _toml(tmp_path, pki, 8443, ENABLED + setting + "\n")
    name = setting.split(maxsplit=1)[0]
    with pytest.raises(mtls.ProfileConfigError, match=f"{name} must be a"):
        SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path)


def test_the_cache_is_synapses_unless_the_file_says(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Synapse keeps 50 statuses for 15 minutes each (certificatevalidation/Constants).
    mtls kept them up to 1,000 minutes (WSO2's documentation examples), so a revoked
    backend was let in about 66 times longer than WSO2 lets it in."""
    with SSLProfileSet.from_deployment_toml(
        _toml(tmp_path, pki, 8443, ENABLED), base_dir=tmp_path
    ) as profiles:
        assert profiles.revocation is not None
        assert profiles.revocation.policy.cache_size == 50
        assert profiles.revocation.policy.cache_delay == 15 * 60.0
    # A day or more: Synapse's default instead, said; the twin: under a day is taken.
    for minutes, kept in ((1440, 15), (2000, 15), (1439, 1439), (1, 1)):
        caplog.clear()
        toml = _toml(tmp_path, pki, 8443, ENABLED + f"cache_delay = {minutes}\n")
        with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
            assert profiles.revocation is not None
            assert profiles.revocation.policy.cache_delay == kept * 60.0, minutes
        warned = [
            r.getMessage() for r in caplog.records if "keeps a revocation status" in r.getMessage()
        ]
        assert len(warned) == (1 if minutes >= 1440 else 0), (minutes, warned)


def test_a_good_cache_size_in_range_is_taken(pki: PKI, tmp_path: Path) -> None:
    toml = _toml(tmp_path, pki, 8443, ENABLED + "cache_size = 1000000\n")
    with SSLProfileSet.from_deployment_toml(toml, base_dir=tmp_path) as profiles:
        assert profiles.revocation is not None
        assert profiles.revocation.policy.cache_size == 1_000_000


@pytest.mark.parametrize(
    "bad",
    [
        {"retry_failed_after": float("inf")},
        {"cache_delay": float("nan")},
        {"timeout": 1e400},
        {"cache_size": 1.5},
        {"cache_size": 10**7},
    ],
)
def test_a_policy_refuses_values_that_are_not_finite_and_bounded(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):
        RevocationPolicy(**bad)  # type: ignore[arg-type]
    # the twin: the largest accepted values work end to end (statuses() does not overflow)
    RevocationPolicy(retry_failed_after=mtls_revocation.MAX_SECONDS, cache_size=10**6)


def _pinned_backend(tmp_path: Path) -> MTLSServer:
    """A backend on a self-signed certificate without basicConstraints (as keytool
    -genkeypair and mtls genkey make it), pinned in ``tmp_path / "trust.jks"``."""
    backend = mtls.Keystore.generate(
        "backend", "CN=localhost", key_type="EC", san=["DNS:localhost"]
    )
    trust = mtls.Truststore()
    trust.add_certificate("backend", backend.certificate("backend"))
    trust.add_certificate("another", CA().certificate)  # a bundle of more than one
    trust.save(tmp_path / "trust.jks", PASSWORD)
    return MTLSServer(backend, client_ca=CA().truststore(), require_client_cert=False)


def test_a_pinned_self_signed_server_is_an_anchor_not_an_unknown(tmp_path: Path, capsys) -> None:
    """A backend's own self-signed certificate in the truststore (keytool -genkeypair
    and mtls genkey make one without basicConstraints) is the anchor. The probe took
    its anchors from the context, which lists only CA certificates, and reported the
    certificate as undetermined, advising to add the CA that is already there."""
    with _pinned_backend(tmp_path) as server:
        code, report, _ = _probe(
            capsys, f"https://localhost:{server.port}/", "--truststore",
            str(tmp_path / "trust.jks"), "--password", PASSWORD,
        )  # fmt: skip
    assert code == 0
    revocation = report["revocation"]
    assert isinstance(revocation, dict)
    assert revocation["certificates"] == []
    assert "the server's certificate is a trust anchor" in str(revocation["note"])


def test_an_enforced_check_is_reported_as_enforced_before_its_cache_fills(
    tmp_path: Path, capsys
) -> None:
    """A checker's len() is its cache's, 0 in a fresh process and still 0 after a chain
    with nothing to check (a pinned self-signed backend): the probe took it for no
    checker, swapped in a soft one, and said "checked for this report", "mode": null."""
    with _pinned_backend(tmp_path) as server:
        (tmp_path / "profiles.xml").write_text(
            profile_xml(profile(f"localhost:{server.port}", truststore=tmp_path / "trust.jks"))
        )
        toml = tmp_path / "deployment.toml"
        toml.write_text(
            '[transport.passthru_https.sender.ssl_profile]\nfile_path = "profiles.xml"\n'
            "interval = 0\n" + ENABLED
        )
        code, report, _ = _probe(
            capsys, f"https://localhost:{server.port}/", "--deployment-toml", str(toml),
            "--base-dir", str(tmp_path),
        )  # fmt: skip
        assert main(["probe", f"https://localhost:{server.port}/", "--deployment-toml",
                     str(toml), "--base-dir", str(tmp_path)]) == 0  # fmt: skip
        human = capsys.readouterr().out
    assert code == 0
    revocation = report["revocation"]
    assert isinstance(revocation, dict)
    assert revocation["enforced"] is True and revocation["mode"] == "hard", revocation
    assert revocation["certificates"] == []
    assert "revocation    enforced, hard-fail" in human
    # The trap itself, for anyone's `if profiles.revocation:`: a checker is always true.
    checker = mtls.RevocationChecker(RevocationPolicy())
    assert len(checker) == 0 and bool(checker) is True
