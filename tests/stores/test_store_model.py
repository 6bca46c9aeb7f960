"""The stores layer after issue #14: one loading path, one error, one import name, one budget."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest

import mtls
from mtls import (
    KeyEntryError,
    Keystore,
    KeystoreError,
    KeystoreNotFoundError,
    Secret,
    SSLProfile,
    SSLProfileSet,
    StoreConfig,
    Truststore,
)
from mtls._budget import MAX_FILE_KDF_ITERATIONS, WorkBudget, WorkLimitError
from mtls._stores import load_store
from mtls.testing import CA

PASSWORD = "changeit"
SECRET = Secret(PASSWORD)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA(key_type="EC")


@pytest.fixture
def stores(ca: CA, tmp_path: Path) -> tuple[Path, Path]:
    keystore = tmp_path / "gw.p12"
    keystore.write_bytes(ca.issue_cert("gw").keystore().to_bytes(PASSWORD, store_type="PKCS12"))
    trust = tmp_path / "trust.jks"
    trust.write_bytes(ca.truststore().to_bytes(PASSWORD))
    return keystore, trust


# --------------------------------------------------------------------------- one loading path


def test_load_store_reads_what_the_direct_loaders_read(stores: tuple[Path, Path]) -> None:
    keystore, trust = stores
    ks = load_store(StoreConfig(location=keystore, password=SECRET), "keystore")
    ts = load_store(StoreConfig(location=trust, password=SECRET, type="JKS"), "truststore")
    assert ks.fingerprint == Keystore.load(keystore, PASSWORD).fingerprint
    assert ts.fingerprint == Truststore.load(trust, PASSWORD).fingerprint
    assert ks.path == str(keystore)
    # Bytes already read (what the reload engine passes) give the same store.
    again = load_store(
        StoreConfig(location=keystore, password=SECRET), "keystore", data=keystore.read_bytes()
    )
    assert again.fingerprint == ks.fingerprint


def test_load_store_applies_the_configuration(stores: tuple[Path, Path]) -> None:
    keystore, _ = stores
    with pytest.raises(mtls.WrongPasswordError):
        load_store(StoreConfig(location=keystore, password=Secret("wrong")), "keystore")
    pem = keystore.with_suffix(".pem")
    pem.write_bytes(Keystore.load(keystore, PASSWORD).to_bytes("", store_type="PEM"))
    promised = StoreConfig(location=pem, password=SECRET, type="PKCS12")
    with pytest.raises(mtls.KeystoreFormatError, match="no integrity check"):
        load_store(promised, "keystore")
    allowed = StoreConfig(location=pem, password=SECRET, type="PKCS12", allow_unprotected=True)
    assert load_store(allowed, "keystore").key_aliases == ("gw",)


def test_a_missing_store_is_the_same_error_everywhere(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jks"
    config = StoreConfig(location=missing, password=SECRET)
    errors: list[BaseException] = []
    for load in (
        lambda: Keystore.load(missing, PASSWORD),
        lambda: Truststore.load(missing, PASSWORD),
        lambda: load_store(config, "keystore"),
        lambda: load_store(config, "truststore"),
        lambda: SSLProfileSet([SSLProfile(servers=(("a.example", 443),), keystore=config)]),
    ):
        with pytest.raises(KeystoreNotFoundError) as info:
            load()
        errors.append(info.value)
    for error in errors:
        assert isinstance(error, FileNotFoundError) and isinstance(error, KeystoreError)
        assert error.path == str(missing) and str(missing) in str(error)
    # Through a configuration, the message names the setting to fix and the role.
    assert "no such keystore file: check <Location>" in str(errors[2])
    assert "no such truststore file" in str(errors[3])


def test_a_missing_store_after_a_reload_keeps_the_last_good(ca: CA, tmp_path: Path) -> None:
    keystore = tmp_path / "gw.jks"
    keystore.write_bytes(ca.issue_cert("gw").keystore().to_bytes(PASSWORD))
    config = StoreConfig(location=keystore, password=SECRET)
    profiles = SSLProfileSet([SSLProfile(servers=(("a.example", 443),), keystore=config)])
    with profiles:
        good = profiles.context_for("a.example", 443)
        assert good is not None and _last_error(profiles) is None
        keystore.unlink()
        assert profiles.reload() is False
        assert isinstance(_last_error(profiles), KeystoreNotFoundError)
        assert profiles.context_for("a.example", 443) is good


def _last_error(profiles: SSLProfileSet) -> BaseException | None:
    return profiles.last_error


def test_a_placeholder_location_is_never_shown(tmp_path: Path) -> None:
    secret_dir = tmp_path / "s3cr3t-dir"
    config = StoreConfig(
        location=secret_dir / "gw.jks", password=SECRET, written_location="$env{STORES}/gw.jks"
    )
    with pytest.raises(KeystoreNotFoundError) as info:
        load_store(config, "keystore")
    assert "$env{STORES}/gw.jks" in str(info.value)
    assert info.value.__cause__ is None  # the OSError would carry the expanded path
    assert "s3cr3t" not in str(info.value)
    # The twin without a placeholder keeps the OSError chained (the cause is useful).
    plain = StoreConfig(location=secret_dir / "gw.jks", password=SECRET)
    with pytest.raises(KeystoreNotFoundError) as info:
        load_store(plain, "keystore")
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_other_read_failures_are_keystore_errors(tmp_path: Path) -> None:
    config = StoreConfig(location=tmp_path, password=SECRET)  # a directory
    with pytest.raises(KeystoreError, match="is a directory, not a keystore") as info:
        load_store(config, "keystore")
    assert not isinstance(info.value, KeystoreNotFoundError)


# --------------------------------------------------------------------------- from_bytes


def test_from_bytes_names_its_source_only_when_told(ca: CA) -> None:
    data = ca.issue_cert("svc").keystore().to_bytes(PASSWORD)
    named = Keystore.from_bytes(data, PASSWORD, path="secret/svc")
    assert named.path == "secret/svc" and named.key_aliases == ("svc",)
    with pytest.raises(mtls.WrongPasswordError, match=r"^secret/svc: "):
        Keystore.from_bytes(data, "wrong", path="secret/svc")
    with pytest.raises(mtls.WrongPasswordError, match=r"^the store: "):
        Keystore.from_bytes(data, "wrong")
    with pytest.raises(mtls.KeystoreFormatError, match=r"^bundle\.pem: "):
        Truststore.from_bytes(b"-----BEGIN CERTIFICATE-----\n", path="bundle.pem")
    assert Keystore.from_bytes(data, PASSWORD).path is None


def test_from_bytes_takes_a_path_object_and_keeps_text(ca: CA) -> None:
    """``path`` is typed and kept as text, as :meth:`load` keeps it: a ``Path`` was
    kept as given (``.path`` a ``PosixPath``, typed ``str``)."""
    data = ca.issue_cert("svc").keystore().to_bytes(PASSWORD)
    named = Keystore.from_bytes(data, PASSWORD, path=Path("secret") / "svc")
    assert named.path == os.path.join("secret", "svc") and type(named.path) is str
    trust_data = ca.truststore().to_bytes(PASSWORD)
    trust = Truststore.from_bytes(trust_data, PASSWORD, path=Path("trust.jks"))
    assert trust.path == "trust.jks" and type(trust.path) is str
    with pytest.raises(mtls.WrongPasswordError, match=r"^secret/svc: "):
        Keystore.from_bytes(data, "wrong", path=Path("secret/svc"))


def test_from_bytes_is_public_and_documented() -> None:
    for cls in (Keystore, Truststore):
        params = inspect.signature(cls.from_bytes).parameters
        assert "path" in params and not [name for name in params if name.startswith("_")]
        doc = cls.from_bytes.__doc__ or ""
        assert "Args:" in doc and "Returns:" in doc and "Raises:" in doc


# --------------------------------------------------------------------------- one import name


def test_add_certificate_is_the_name_on_both_classes(ca: CA) -> None:
    leaf = ca.issue_cert("peer").certificate
    ts, ks = Truststore(), Keystore()
    ts.add_certificate("peer", leaf)
    ks.add_certificate("peer", leaf)
    assert ts.aliases == ks.aliases == ("peer",)
    assert ts.export_certificate("peer", "DER") == ks.export_certificate("peer", "DER")
    # The old name is the same operation, refusals included.
    old = Truststore()
    old.add("peer", leaf)
    assert old.fingerprint == ts.fingerprint
    for store in (ts, ks, old):
        with pytest.raises(KeyEntryError, match="already exists"):
            store.add_certificate("PEER", leaf)  # aliases fold as in Java
    with pytest.raises(KeyEntryError, match="already exists"):
        old.add("Peer", leaf)
    with pytest.raises(ValueError, match="alias must not be empty"):
        ts.add_certificate("", leaf)


# --------------------------------------------------------------------------- one budget


def test_one_budget_for_every_format() -> None:
    budget = WorkBudget()
    assert budget.limit == MAX_FILE_KDF_ITERATIONS
    budget.charge_kdf(MAX_FILE_KDF_ITERATIONS - 1, "the MAC")
    with pytest.raises(WorkLimitError, match="key entry 'k' would take it past 10,000,000"):
        budget.charge_kdf(2, "key entry 'k'")
    budget.charge_kdf(1)  # the refused charge spent nothing
    assert budget.iterations == 0
    rc2 = WorkBudget(rc2_bytes=10)
    rc2.charge_rc2(10)
    with pytest.raises(WorkLimitError, match=r"RC2 \(40- or 64-bit\)"):
        rc2.charge_rc2(1)


def test_package_layers_use_public_names_of_the_model() -> None:
    # _stores builds on the entry model, the readers and the writers through their
    # module-level names: nothing underscored crosses the module boundary.
    source = (Path(mtls.__file__).parent / "_stores.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith("from ._")]
    assert imports, "the module imports its parts"
    for line in imports:
        imported = [name.split()[0] for name in line.split(" import ", 1)[1].split(",")]
        assert not [name for name in imported if name.startswith("_")], line
    assert os.path.exists(Path(mtls.__file__).parent / "_entries.py")


def test_wrong_types_for_store_bytes_and_certificates_say_what_to_pass(tmp_path) -> None:
    """Text, a path or None where bytes go, a certificate as text, or a chain that is
    one certificate failed deep inside: "string argument without an encoding",
    "'PosixPath' object is not subscriptable", "'Certificate' object is not iterable",
    detect_format(None) said "the file is empty", garbage certificate bytes said
    "cryptography cannot read it: ShortData". Each says what to pass now. The twins:
    bytes and a list load."""
    from pathlib import Path

    import mtls
    from mtls.testing import CA

    ca = CA()
    identity = ca.issue_cert("client")
    data = identity.keystore().to_bytes("changeit")
    for wrong, said in ((data.decode("latin-1"), "encode PEM text first"),
                        (Path("x.jks"), "use .load(path)"), (None, "pass the store's bytes")):  # fmt: skip
        for call in (mtls.detect_format, lambda d: mtls.Keystore.from_bytes(d, "changeit"),
                     lambda d: mtls.Truststore.from_bytes(d, "changeit")):  # fmt: skip
            with pytest.raises(TypeError, match=re.escape(said)):
                call(wrong)
    assert mtls.detect_format(data) == "JKS"
    assert mtls.Keystore.from_bytes(bytearray(data), "changeit").key_aliases
    # Any buffer is bytes (an mmap of the file, as before).
    import mmap

    mapped_file = tmp_path / "ks.jks"
    mapped_file.write_bytes(data)
    with mapped_file.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert mtls.Keystore.from_bytes(m, "changeit").key_aliases  # type: ignore[arg-type]
    trust = mtls.Truststore()
    with pytest.raises(TypeError, match=r"not str: encode PEM text first"):
        trust.add("ca", ca.cert_pem.decode())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a certificate in DER or PEM"):
        trust.add("ca", b"garbage")
    trust.add("ca", ca.cert_pem)
    store = mtls.Keystore()
    for chain in (identity.certificate, identity.cert_pem):
        with pytest.raises(TypeError, match=re.escape("chain is a list of certificates")):
            store.add_key("k", identity.private_key, chain)  # type: ignore[arg-type]
    store.add_key("k", identity.private_key, [identity.certificate])


def test_a_keystore_loaded_without_its_password_asks_for_the_stores(tmp_path: Path) -> None:
    """Keystore.load("ks.jks", None) said "pass the key password", where what was
    missing is the store password, which keytool uses for the key too. The twin: the
    store password opens it."""
    path = tmp_path / "ks.jks"
    CA().issue_cert("client").keystore().save(path, PASSWORD)
    with pytest.raises(mtls.WrongPasswordError, match="pass the store's password"):
        Keystore.load(path, None)
    assert Keystore.load(path, PASSWORD).key_aliases == ("client",)


def test_a_store_read_while_another_thread_changes_it_gives_one_state(ca: CA) -> None:
    """A truststore read (its anchors for a context, its fingerprint, its aliases)
    while another thread adds and removes an entry raised "dictionary changed size
    during iteration" (h148). Each read now walks the entries as they were when it
    began: every answer is one of the two states, never an error."""
    import sys
    import threading

    trust = mtls.Truststore()
    for i in range(150):
        trust.add_certificate(f"ca-{i}", ca.certificate)
    extra = CA().certificate
    few, many = 150, 151
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            trust.add_certificate("extra", extra)
            trust.remove("extra")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between almost any two bytecodes
    changing = threading.Thread(target=churn)
    changing.start()
    seen: set[int] = set()
    try:
        for _ in range(300):
            seen.add(len(trust.anchors_der))
            assert len(trust.aliases) in (few, many)
            assert len(trust.certificates) in (few, many)
            trust.fingerprint  # noqa: B018 - what is read is the point
    finally:
        stop.set()
        changing.join(30)
        sys.setswitchinterval(interval)
    assert seen <= {few, many}
    assert len(trust.anchors_der) == few  # the churn ends with the entry removed


def test_a_missing_alias_in_a_big_store_names_the_closest_and_counts_the_rest() -> None:
    """The JDK's cacerts has about 150 aliases: a message listing every one was a
    screenful. Past a dozen, those closest to the alias asked for come first."""
    ca = CA()
    trust = Truststore()
    names = [f"debian:root_{i:03d}.pem" for i in range(40)] + ["debian:isrg_root_x1.pem"]
    for name in names:
        trust.add(name, ca.certificate)
    with pytest.raises(KeyEntryError) as caught:
        trust.certificate("isrg root x1")
    message = str(caught.value)
    assert "aliases are: 'debian:isrg_root_x1.pem', " in message
    assert message.endswith("and 29 more (list them with mtls list)")
    small = Truststore()
    small.add("one", ca.certificate)
    with pytest.raises(KeyEntryError, match=r"aliases are: 'one'$"):
        small.certificate("two")
