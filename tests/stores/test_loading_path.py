"""Issue #13: the PKCS#12 KDF in OpenSSL, and pyjks imported only when a store needs it."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mtls
from mtls import _kdf
from mtls.testing import CA

PASSWORD = "changeit"
ON_LINUX = sys.platform.startswith("linux")


# --------------------------------------------------------------------------- the KDF


@pytest.mark.skipif(not ON_LINUX, reason="the libcrypto is found through /proc/self/maps")
def test_the_kdf_runs_in_openssl_here() -> None:
    assert _kdf.backend_name() == "openssl"


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(_kdf.SIZES)),
    password=st.binary(max_size=70),
    salt=st.binary(max_size=70),
    purpose=st.sampled_from([1, 2, 3]),
    rounds=st.integers(1, 40),
    size=st.integers(1, 150),
)
def test_openssl_and_python_derive_the_same(
    name: str, password: bytes, salt: bytes, purpose: int, rounds: int, size: int
) -> None:
    expected = _kdf.p12_kdf_python(name, password, salt, purpose=purpose, rounds=rounds, size=size)
    got = _kdf.p12_kdf(name, password, salt, purpose=purpose, rounds=rounds, size=size)
    assert got == expected and len(got) == size


@pytest.mark.parametrize(("password", "salt"), [(b"", b""), (b"\0p\0w\0\0", b""), (b"", b"s")])
def test_a_refused_openssl_call_leaves_no_error_for_ssl_to_trip_on(
    password: bytes, salt: bytes
) -> None:
    """OpenSSL 3.0 refuses an empty password with an empty salt ("malloc failure") and
    left the error on the thread's queue, which the ssl module shares: the next
    load_verify_locations(cadata=) in the thread failed with it. The derivation itself
    falls back to Python. (The other cases are accepted by OpenSSL: same results.)"""
    expected = _kdf.p12_kdf_python("sha256", password, salt, purpose=3, rounds=2, size=32)
    assert _kdf.p12_kdf("sha256", password, salt, purpose=3, rounds=2, size=32) == expected
    der = CA().truststore().anchors_der[0]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=der)  # raised ssl.SSLError: [PROV] malloc failure
    assert ctx.get_ca_certs(binary_form=True) == [der]


# Published vectors for the PKCS#12 KDF (the Bouncy Castle and OpenSSL test suites'
# "smeg"/"queeg" cases): an oracle independent of both implementations here.
KNOWN = [
    ("smeg", "0A58CF64530D823F", 1, 1, "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3"),
    ("smeg", "0A58CF64530D823F", 2, 1, "79993DFE048D3B76"),
    ("queeg", "1682C0FC5B3F7EC5", 1, 1000, "483DD6E919D7DE2E8E648BA8F862F3FBFBDC2BCB2C02957F"),
]


@pytest.mark.parametrize(("password", "salt", "purpose", "rounds", "expected"), KNOWN)
def test_known_answers(password: str, salt: str, purpose: int, rounds: int, expected: str) -> None:
    bmp = (password + "\0").encode("utf-16-be")
    size = len(expected) // 2
    args = {"purpose": purpose, "rounds": rounds, "size": size}
    assert _kdf.p12_kdf("sha1", bmp, bytes.fromhex(salt), **args).hex().upper() == expected
    assert _kdf.p12_kdf_python("sha1", bmp, bytes.fromhex(salt), **args).hex().upper() == expected
    # The negative twin: one salt bit flipped gives another key.
    other = bytes.fromhex(salt)[:-1] + bytes([bytes.fromhex(salt)[-1] ^ 1])
    assert _kdf.p12_kdf("sha1", bmp, other, **args).hex().upper() != expected


def test_a_library_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(self: object, name: str, password: bytes, salt: bytes, **kw: int) -> bytes:
        return b"\0" * kw["size"]

    monkeypatch.setattr(_kdf._OpenSSL, "derive", wrong)
    assert _kdf._first_checked(_kdf._mapped_libcryptos()) is None  # the self-check refuses it
    monkeypatch.undo()
    if ON_LINUX:
        assert _kdf._first_checked(_kdf._mapped_libcryptos()) is not None  # the real one passes


def _mapped(fragment: str) -> str:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return sorted({line.split()[-1] for line in maps if fragment in line})[0]


@pytest.mark.skipif(not ON_LINUX, reason="reads /proc/self/maps")
def test_a_digest_that_disagrees_drops_only_itself() -> None:
    """MD5 refused (as under FIPS) or wrong turns off OpenSSL for MD5 alone."""
    openssl = _kdf._first_checked(_kdf._mapped_libcryptos())
    assert openssl is not None and "md5" in openssl._digests  # the twin: all pass
    openssl._digests["md5"] = openssl._digests["sha1"]  # a real digest, the wrong one
    assert openssl.check() is True
    assert "md5" not in openssl._digests and "sha256" in openssl._digests
    case = {"purpose": 3, "rounds": 5, "size": 20}
    assert openssl.derive("md5", b"", b"salt", **case) is None  # Python serves MD5
    expected = _kdf.p12_kdf_python("sha256", b"", b"salt", **case)
    assert openssl.derive("sha256", b"", b"salt", **case) == expected


@pytest.mark.skipif(not ON_LINUX, reason="reads /proc/self/maps")
def test_every_mapped_library_is_tried_until_one_passes() -> None:
    libc = _mapped("libc.so")  # loads, but has no PKCS12_key_gen_uni
    assert _kdf._first_checked([libc]) is None
    assert _kdf._first_checked([libc, *_kdf._mapped_libcryptos()]) is not None


@pytest.mark.skipif(not ON_LINUX, reason="reads /proc/self/maps")
def test_numbers_a_c_int_cannot_hold_go_to_python() -> None:
    """ctypes would wrap 2**32 + 1 rounds to 1: such calls are left to the fallback."""
    openssl = _kdf._first_checked(_kdf._mapped_libcryptos())
    assert openssl is not None
    case = {"purpose": 1, "size": 20}
    assert openssl.derive("sha1", b"", b"salt", rounds=2**32 + 1, **case) is None
    assert openssl.derive("sha1", b"", b"salt", rounds=2**31, **case) is None
    assert openssl.derive("sha1", b"", b"salt", rounds=1, purpose=1, size=2**31) is None
    one = openssl.derive("sha1", b"", b"salt", rounds=1, **case)  # the twin: in range
    assert one == _kdf.p12_kdf_python("sha1", b"", b"salt", rounds=1, **case)


def test_the_python_fallback_reads_the_same_stores(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = CA()
    data = ca.issue_cert("gw").keystore().to_bytes(PASSWORD, store_type="PKCS12")
    with_openssl = mtls.Keystore.from_bytes(data, PASSWORD)
    monkeypatch.setattr(_kdf, "_backend", lambda: None)
    assert _kdf.backend_name() == "python"
    assert mtls.Keystore.from_bytes(data, PASSWORD).fingerprint == with_openssl.fingerprint
    with pytest.raises(mtls.WrongPasswordError):
        mtls.Keystore.from_bytes(data, "wrong")


# --------------------------------------------------------------------------- lazy pyjks


def _run(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:  # a directory searched before site-packages
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lazy")
    ca = CA()
    identity = ca.issue_cert("gw").keystore()
    (directory / "gw.jks").write_bytes(identity.to_bytes(PASSWORD))
    (directory / "gw.p12").write_bytes(identity.to_bytes(PASSWORD, store_type="PKCS12"))
    (directory / "trust.jks").write_bytes(ca.truststore().to_bytes(PASSWORD))
    (directory / "gw.pem").write_bytes(identity.to_bytes("", store_type="PEM"))
    return directory


BKS = Path(__file__).parent / "data" / "pyjks" / "christmas.bksv2"
PYJKS_MODULES = "('jks', 'pyasn1', 'pyasn1_modules', 'Cryptodome', 'javaobj')"


def test_pyjks_is_imported_only_when_a_store_needs_it(stores: Path) -> None:
    result = _run(
        f"""
        import sys, mtls
        heavy = {PYJKS_MODULES}
        assert not [m for m in heavy if m in sys.modules], "imported with mtls"
        mtls.Keystore.load({str(stores / "gw.p12")!r}, {PASSWORD!r})
        mtls.Keystore.load({str(stores / "gw.pem")!r}, None)
        mtls.Truststore.load({str(stores / "trust.jks")!r}, {PASSWORD!r})
        # JKS and JCEKS keys are decrypted by mtls's own KeyProtector and JCE ciphers.
        loaded = mtls.Keystore.load({str(stores / "gw.jks")!r}, {PASSWORD!r})
        mtls.client_context(loaded)
        assert not [m for m in heavy if m in sys.modules], "imported to read a store"
        loaded.to_bytes({PASSWORD!r})
        assert "jks" in sys.modules, "writing JKS needs pyjks"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("how", ["missing", "broken"])
def test_a_missing_or_broken_pyjks_is_a_clear_error(stores: Path, tmp_path: Path, how: str) -> None:
    fake = tmp_path / "site"
    if how == "broken":  # installed, but raising at import (a half-upgraded dependency)
        (fake / "jks").mkdir(parents=True)
        (fake / "jks" / "__init__.py").write_text("raise RuntimeError('half installed')\n")
    block = "sys.modules['jks'] = None" if how == "missing" else "pass"
    result = _run(
        f"""
        import sys
        {block}
        import mtls
        try:
            mtls.Keystore.load({str(BKS)!r}, "12345678")
        except mtls.KeystoreError as exc:
            print("load:", type(exc).__name__, exc)
        # JKS needs no pyjks to be read.
        print("jks:", mtls.Keystore.load({str(stores / "gw.jks")!r}, {PASSWORD!r}).key_aliases)
        try:
            mtls.Keystore.generate("a", "CN=a", key_type="EC").to_bytes({PASSWORD!r})
        except mtls.KeystoreError as exc:
            print("save:", type(exc).__name__, exc)
        # Writing a file names the file being written, not the one read.
        loaded = mtls.Keystore.load({str(stores / "gw.p12")!r}, {PASSWORD!r})
        try:
            loaded.save({str(tmp_path / "out.jks")!r}, {PASSWORD!r})
        except mtls.KeystoreError as exc:
            print("saved:", exc.path, exc)
        try:
            mtls.Truststore.load({str(stores / "trust.jks")!r}, {PASSWORD!r}).save(
                {str(tmp_path / "trust-out.jks")!r}, {PASSWORD!r}
            )
        except mtls.KeystoreError as exc:
            print("trust saved:", exc.path, exc)
        # What needs no pyjks still works.
        print("p12:", mtls.Keystore.load({str(stores / "gw.p12")!r}, {PASSWORD!r}).key_aliases)
        print("trust:", len(mtls.Truststore.load({str(stores / "trust.jks")!r}, {PASSWORD!r})))
        """,
        path=fake if how == "broken" else None,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    load, save = lines["load"], lines["save"]
    assert load.startswith("KeystoreError ") and str(BKS) in load
    assert "cannot read this BKS store: pyjks does not import" in load
    assert "pip install --force-reinstall pyjks" in load
    assert ("half installed" in load) == (how == "broken")
    assert save.startswith("KeystoreError ") and "cannot write JKS" in save
    for key, target in (("saved", "out.jks"), ("trust saved", "trust-out.jks")):
        shown, message = lines[key].split(" ", 1)
        assert shown == str(tmp_path / target) and message.startswith(f"{tmp_path / target}: ")
        assert "cannot write JKS" in message and str(stores) not in message
    assert PASSWORD not in result.stdout
    assert lines["p12"] == lines["jks"] == "('gw',)" and lines["trust"] == "1"
