"""Aliases that differ only in case, in JKS: as the JDK finds them (h196).

The JDK's JKS table keeps each alias as written and looks every alias up in lower case
(keytool, and every writer it knows of, writes them in lower case). Of two entries
``ED`` and ``ed`` it finds ``ed``, wherever it stands; ``ED`` alone it lists but finds
by no lookup, so WSO2's gateway cannot use it. keytool is the oracle: ``-exportcert
-alias`` looks the alias up as the gateway does.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import mtls
from mtls.cli import main
from mtls.testing import CA
from tests._keytool import JDK, run_keytool

PASSWORD = "alias-Case-1"


def _jks(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    """A JKS store of trusted certificates under these aliases, written as they are (pyjks
    writes aliases in lower case: the bytes are renamed after, and the store sealed
    again, as a writer that keeps the case would)."""
    import jks

    named = [(f"x{i}" + "z" * (len(alias) - 2), alias) for i, (alias, _) in enumerate(entries)]
    written = [
        jks.TrustedCertEntry.new(temp, der)
        for (temp, _), (_, der) in zip(named, entries, strict=True)
    ]
    body = jks.KeyStore.new("jks", written).saves(PASSWORD)[:-20]
    for temp, alias in named:
        field = len(temp).to_bytes(2, "big") + temp.encode()
        assert body.count(field) == 1
        body = body.replace(field, len(alias).to_bytes(2, "big") + alias.encode())
    seal = hashlib.sha1(PASSWORD.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()
    path.write_bytes(body + seal)
    return path


def _java_finds(keytool: JDK, store: Path, alias: str) -> bytes | None:
    """The certificate the JDK finds under ``alias`` (keytool -exportcert), or None."""
    try:
        run_keytool(
            keytool, "-exportcert", "-keystore", str(store), "-storepass", PASSWORD,
            "-alias", alias, "-file", str(store.with_suffix(".der")),
        )  # fmt: skip
    except subprocess.CalledProcessError:
        return None
    return store.with_suffix(".der").read_bytes()


@pytest.fixture(scope="module")
def two() -> tuple[bytes, bytes]:
    return tuple(  # type: ignore[return-value]
        CA(name=name).certificate.public_bytes(serialization.Encoding.DER)
        for name in ("upper", "lower")
    )


@pytest.mark.keytool
@pytest.mark.parametrize("lower_first", [False, True], ids=["upper-first", "lower-first"])
def test_of_two_aliases_differing_in_case_the_one_java_finds_is_used(
    jdk_keytool: JDK,
    tmp_path: Path,
    two: tuple[bytes, bytes],
    lower_first: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mtls kept the last entry in file order, and served the other certificate (for a
    keystore, the other key) than the gateway under the same alias."""
    upper, lower = two
    entries = [("ED", upper), ("ed", lower)]
    store = _jks(tmp_path / "two.jks", entries[::-1] if lower_first else entries)
    assert _java_finds(jdk_keytool, store, "ED") == lower  # looked up in lower case
    assert _java_finds(jdk_keytool, store, "ed") == lower
    with caplog.at_level(logging.WARNING, logger="mtls"):
        loaded = mtls.Truststore.load(store, PASSWORD)
    assert loaded.aliases == ("ed",)
    assert loaded.certificate("ED").public_bytes(serialization.Encoding.DER) == lower
    assert "appears more than once" in caplog.text
    assert loaded._java_check_notes() == ()  # the entry Java finds is the one in use


@pytest.mark.keytool
def test_an_alias_java_finds_by_no_lookup_is_served_and_noted(
    jdk_keytool: JDK, tmp_path: Path, two: tuple[bytes, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    upper, lower = two
    store = _jks(tmp_path / "one.jks", [("ED", upper), ("ok", lower)])
    assert _java_finds(jdk_keytool, store, "ED") is None  # the gateway's lookups miss it
    assert _java_finds(jdk_keytool, store, "ok") == lower  # the twin, in lower case
    loaded = mtls.Truststore.load(store, PASSWORD)
    assert set(loaded.aliases) == {"ED", "ok"}
    (note,) = loaded._java_check_notes()
    assert "entry 'ED' has an alias not written in lower case" in note
    # What the command line shows: mtls list once, and mtls check fails on it.
    assert main(["list", "--keystore", str(store), "--password", PASSWORD]) == 0
    assert capsys.readouterr().err.count("has an alias not written in lower case") == 1
    xml = tmp_path / "p.xml"
    xml.write_text(
        '<parameter name="customSSLProfiles"><profile><servers>a.test:443</servers>'
        f"<TrustStore><Location>{store}</Location><Type>JKS</Type><Password>{PASSWORD}"
        "</Password></TrustStore></profile></parameter>"
    )
    assert main(["check", str(xml)]) == 1
    assert "WSO2 cannot load a store this file names, or an entry of it" in capsys.readouterr().err
    # The fix the note gives: saved again with mtls, the alias is in lower case.
    loaded.save(tmp_path / "saved.jks", PASSWORD)
    assert _java_finds(jdk_keytool, tmp_path / "saved.jks", "ED") == upper
    assert mtls.Truststore.load(tmp_path / "saved.jks", PASSWORD)._java_check_notes() == ()
