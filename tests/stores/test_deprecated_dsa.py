"""cryptography 51 deprecates DSA: each access to its public DSA names and each DSA key
it reads warns. Java stores hold DSA keys (keytool's default before JDK 7), and mtls
reads them as Java does, so the warning must not reach users: it named mtls's lines on
every store written (an RSA one too, through an isinstance check), and became an
exception under ``-W error`` and pytest's ``filterwarnings = error`` (this suite's)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.utils import CryptographyDeprecationWarning

import mtls
from mtls import _x509
from tests._helpers import dsa_private_key
from tests._pki import PKI

PASSWORD = "changeit"


def _dsa_identity(tmp_path: Path) -> tuple[Path, bytes, x509.Certificate]:
    """A self-signed DSA identity as PEM (key, then certificate), its key's DER and its
    certificate (mtls.testing.CA makes no DSA keys)."""
    key = dsa_private_key()
    name = x509.Name.from_rfc4514_string("CN=dsa")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "dsa.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path, key_der, cert


def test_a_dsa_identity_is_read_written_and_served_without_the_warning(tmp_path: Path) -> None:
    """Every step a DSA store takes (PEM's traditional key, PKCS#12 and JKS written and
    read back, a context, the CLI's listing) under warnings as errors."""
    pem, key_der, cert = _dsa_identity(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ks = mtls.Keystore.load(pem, None)
        assert ks.key_entry()[1] == key_der
        for store_type in ("PKCS12", "JKS"):
            path = tmp_path / f"dsa.{store_type.lower()}"
            ks.save(path, PASSWORD, store_type=store_type)
            again = mtls.Keystore.load(path, PASSWORD)
            assert again.key_entry()[1] == key_der and again.certificate("dsa") == cert
        assert mtls.client_context(ks).maximum_version is not None
    done = subprocess.run(
        [sys.executable, "-m", "mtls", "list", "-v", "--keystore", str(tmp_path / "dsa.pkcs12"),
         "--password", PASSWORD],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "DSA 2048" in done.stdout
    assert "deprecated" not in done.stderr, done.stderr


def test_writing_an_rsa_store_names_no_dsa_class(pki: PKI, tmp_path: Path) -> None:
    """The PKCS#12 writer's key-type check named cryptography's public DSA class, which
    warns on access in 51: every PKCS#12 saved warned, whatever its key."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pki.client.keystore().save(tmp_path / "rsa.p12", PASSWORD, store_type="PKCS12")
    assert [str(item.message) for item in caught] == []


def _warn(*messages: tuple[str, type[Warning]]) -> None:
    for text, category in messages:
        warnings.warn(text, category, stacklevel=1)


def _warn_inside(dsa: bool, *messages: tuple[str, type[Warning]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _x509.dsa_call(dsa, _warn, *messages)


def test_the_tolerance_is_for_dsa_only_and_ends_with_its_call() -> None:
    dsa = ("DSA is deprecated, as cryptography says", CryptographyDeprecationWarning)
    _warn_inside(True, dsa)  # silenced
    with pytest.raises(UserWarning, match="another"):
        _warn_inside(True, dsa, ("another warning", UserWarning))
    with pytest.raises(CryptographyDeprecationWarning):
        # Not DSA material: nothing is switched (and the switches above have ended).
        _warn_inside(False, dsa)


def _dsa_module() -> types.ModuleType:
    from cryptography.hazmat.primitives.asymmetric import dsa

    return dsa


def _dsa_pkcs8() -> bytes:
    return dsa_private_key().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_an_application_block_that_ends_during_a_dsa_read_keeps_its_filters() -> None:
    """The first version swapped the whole filter list (catch_warnings) for each DSA
    read: an application's own block in another thread (pytest's around each test)
    ending meanwhile had its filters left installed, or lost, and the DSA warning
    escaped (an error under ``-W error``: a failed reload). The filter now goes into
    the list in service and out of that same list; a read the block's end exposed is
    made again. The block ends here inside the read, as another thread's would."""
    key_der = _dsa_pkcs8()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outer, before = warnings.filters, list(warnings.filters)
        application = warnings.catch_warnings()
        application.__enter__()
        warnings.filterwarnings("ignore", message="the application's own")
        reads: list[int] = []

        def read() -> object:
            if not reads:
                application.__exit__(None, None, None)  # its block ends mid-read
            reads.append(1)
            return serialization.load_der_private_key(key_der, None)

        key = _x509.dsa_call(True, read)
        # Read again where the block's end exposed the warning (cryptography 51 on).
        deprecated = hasattr(_dsa_module(), "_DSAPrivateKey")
        assert isinstance(key, _x509.DSAPrivateKey) and len(reads) == (2 if deprecated else 1)
        assert warnings.filters is outer and list(warnings.filters) == before


def test_other_keys_never_touch_the_warnings_state(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC's key check read every key as if it were DSA (h144): RSA users paid the
    switch too. Twin: a DSA key is read with it."""
    from mtls.integrations import _boringssl

    switches: list[int] = []
    real = _x509._filters_mutated
    monkeypatch.setattr(_x509, "_filters_mutated", lambda: (switches.append(1), real())[1])
    rsa_pem = pki.client.key_pem().decode()
    assert _boringssl.key_verdict(rsa_pem) == (None, None)
    assert switches == []
    dsa_pem = _x509.der_to_pem(_dsa_pkcs8()).replace("CERTIFICATE", "PRIVATE KEY")
    verdict, _ = _boringssl.key_verdict(dsa_pem)
    assert verdict is not None and "DSA" in verdict
    assert switches == [1, 1]


def test_the_dsa_classes_come_from_any_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """cryptography 51 keeps quiet aliases (``_DSAPrivateKey``); 50 has only the public
    names; a release without DSA has neither, and nothing is then a DSA key."""
    from cryptography.hazmat.primitives.asymmetric import dsa

    real, key = _x509._dsa_class("DSAPrivateKey"), dsa_private_key()
    assert isinstance(key, real)
    older = types.ModuleType("dsa")
    older.DSAPrivateKey = real  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.dsa", older)
    monkeypatch.setattr(sys.modules["cryptography.hazmat.primitives.asymmetric"], "dsa", older)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _x509._dsa_class("DSAPrivateKey") is real
        gone = _x509._dsa_class("DSAPublicKey")
    assert gone is _x509._NoDSA and not isinstance(key.public_key(), gone)
    assert dsa is not older


def test_a_dsa_key_signs_requests_with_the_sigalg_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """keytool's SHA224withDSA, and the names a DSA key cannot sign with refused with a
    ValueError saying what to use (SHA-3: cryptography's own error was a traceback)."""
    pem, _, _ = _dsa_identity(tmp_path)
    ks = mtls.Keystore.load(pem, None)
    request = ks.certificate_request(signature_algorithm="SHA224withDSA")
    assert request.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.1"
    with warnings.catch_warnings():  # cryptography's own check warns of DSA
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        assert request.is_signature_valid
    with pytest.raises(ValueError, match="no SHA-3 signature with DSA keys: use SHA256withDSA"):
        ks.certificate_request(signature_algorithm="SHA3-256withDSA")
    # SHA384withDSA is made (Java verifies it), with a warning: OpenSSL 3.0 does not.
    with caplog.at_level("WARNING", logger="mtls"):
        ks.certificate_request(signature_algorithm="SHA384withDSA")
    assert any("OpenSSL 3.0 and 3.1 peers" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="this key is DSA: use SHA256withDSA"):
        ks.certificate_request(signature_algorithm="SHA256withECDSA")
