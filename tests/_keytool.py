"""The JDK's keytool for the tests: finding each JDK, running keytool, reading ``-list -v``,
and the stores keytool writes once per run for the interop tests.

keytool is an independent oracle on purpose: stores it writes are read by mtls, and stores
mtls writes are listed by it, so neither side checks itself. Stores made by keytool cost a
JVM start each (about 0.15 s, 0.5 s with key generation), so they are built once per JDK for
the whole run, shared by the pytest-xdist workers through a lock file in the common temporary
directory, and described by a JSON manifest (aliases, entry types and fingerprints as
``keytool -list -v`` printed them). The fixtures that hand them out are in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

JDK25_KEYTOOL = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/keytool"
# Faster JVM start for a short-lived tool, and English output whatever the locale.
_JVM_FLAGS = (
    "-J-XX:+UseSerialGC",
    "-J-Duser.language=en",
    "-J-Duser.country=US",
)
# C1 only: a third faster to start; but RSA key generation (BigInteger prime search)
# wants C2 (on JDK 25 it takes 2.5 s under C1 against 1.5 s), so -genkeypair RSA runs without.
_QUICK_JIT = "-J-XX:TieredStopAtLevel=1"
STOREPASS = "st0re-Pass"  # keytool stores: store password
KEYPASS = "k3y-Pass"  # keytool JKS/JCEKS stores: a different key password


@dataclass(frozen=True)
class JDK:
    """One keytool, with the Java version it belongs to."""

    keytool: str
    major: int
    version: str

    @property
    def name(self) -> str:
        return f"jdk{self.major}"


def _jdk_of(keytool: str) -> JDK | None:
    real = os.path.realpath(keytool)
    if not os.access(real, os.X_OK):
        return None
    release = Path(real).parent.parent / "release"
    version = "0"
    with contextlib.suppress(OSError):
        found = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(), re.MULTILINE)
        if found:
            version = found.group(1)
    major = int(re.split(r"[.+-]", version)[0] or 0)
    return JDK(real, major, version)


def find_keytools() -> list[JDK]:
    """The keytools present: the default one on PATH (JDK 17) and JDK 25 beside it."""
    found: list[JDK] = []
    for candidate in (shutil.which("keytool"), JDK25_KEYTOOL):
        jdk = _jdk_of(candidate) if candidate else None
        if jdk is not None and all(j.keytool != jdk.keytool for j in found):
            found.append(jdk)
    return found


KEYTOOLS = find_keytools()


def run_keytool(kt: JDK | str, *args: str, cwd: Path | None = None) -> str:
    """Run ``keytool ARGS -noprompt``; return stdout. Raises CalledProcessError on failure."""
    path = kt.keytool if isinstance(kt, JDK) else kt
    rsa_keygen = "-genkeypair" in args and "RSA" in args
    flags = _JVM_FLAGS if rsa_keygen else (_QUICK_JIT, *_JVM_FLAGS)
    done = subprocess.run(
        [path, *flags, *args, "-noprompt"],
        check=True,
        capture_output=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    return done.stdout.decode("utf-8", "replace")


def keytool_list(kt: JDK | str, store: Path, password: str = STOREPASS) -> dict[str, ListedEntry]:
    """``keytool -list -v`` parsed: alias -> entry type and SHA-256 fingerprints (chain order)."""
    return parse_keytool_list(
        run_keytool(kt, "-list", "-v", "-keystore", str(store), "-storepass", password)
    )


@dataclass
class ListedEntry:
    entry_type: str  # PrivateKeyEntry, trustedCertEntry, SecretKeyEntry
    chain_length: int
    sha256: list[str] = field(default_factory=list)  # keytool's AA:BB:... form, leaf first


def parse_keytool_list(text: str) -> dict[str, ListedEntry]:
    entries: dict[str, ListedEntry] = {}
    for block in text.split("Alias name: ")[1:]:
        alias = block.splitlines()[0].strip()
        kind = re.search(r"^Entry type: (\S+)", block, re.MULTILINE)
        length = re.search(r"^Certificate chain length: (\d+)", block, re.MULTILINE)
        sha = re.findall(r"^\s*SHA256: ([0-9A-F:]+)", block, re.MULTILINE)
        assert kind, f"no entry type for {alias!r} in keytool output"
        entries[alias] = ListedEntry(kind.group(1), int(length.group(1)) if length else 1, sha)
    return entries


# --------------------------------------------------------------------------- stores built once per run


def _shared_root(factory: pytest.TempPathFactory) -> Path:
    # Under xdist every worker has its own basetemp inside one common parent.
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock file shared by the xdist workers; yields False if busy and not ``wait``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class KeytoolStores:
    """Stores written by one keytool, and what keytool said about them."""

    jdk: JDK
    dir: Path
    listing: dict[str, dict[str, ListedEntry]]  # store file -> alias -> entry
    exported: dict[str, str]  # "store/alias" -> file with keytool -exportcert output (DER)

    def path(self, name: str) -> Path:
        return self.dir / name

    def exported_der(self, store: str, alias: str) -> bytes:
        return (self.dir / self.exported[f"{store}/{alias}"]).read_bytes()


# name -> (store type, {alias: keytool entry type}, key password of its key entries)
KEYTOOL_STORES: dict[str, tuple[str, dict[str, str], str | None]] = {
    # JKS, RSA key, key password != store password (a JDK 21+ JKS when made by JDK 25).
    "rsa.jks": ("JKS", {"rsa-key": "PrivateKeyEntry"}, KEYPASS),
    # JCEKS, EC key, key password != store password.
    "ec.jceks": ("JCEKS", {"ec-key": "PrivateKeyEntry"}, KEYPASS),
    # JKS, EC key signed by a keytool CA (chain of 2), plus the CA as a trusted entry.
    "chain.jks": ("JKS", {"leaf": "PrivateKeyEntry", "ca": "trustedCertEntry"}, KEYPASS),
    # PKCS#12 (one password): EC and RSA key entries, the chained entry and the CA.
    "mixed.p12": (
        "PKCS12",
        {
            "ec-key": "PrivateKeyEntry",
            "leaf": "PrivateKeyEntry",
            "rsa-key": "PrivateKeyEntry",
            "ca": "trustedCertEntry",
        },
        None,
    ),
    # PKCS#12 truststore made with -importcert (keytool's trusted-key-usage attribute).
    "trust.p12": ("PKCS12", {"ca": "trustedCertEntry", "rsa-peer": "trustedCertEntry"}, None),
}
# keytool -exportcert output (DER) kept for byte-for-byte comparison: "store/alias" -> file
KEYTOOL_EXPORTS = {
    "rsa.jks/rsa-key": "rsa-key.der",
    "ec.jceks/ec-key": "ec-key.der",
    "mixed.p12/leaf": "leaf.der",
}


def _build_keytool_stores(jdk: JDK, d: Path) -> dict[str, dict[str, ListedEntry]]:
    def kt(*args: str) -> None:
        run_keytool(jdk, *args, cwd=d)

    sp = ("-storepass", STOREPASS)
    san = "san=dns:localhost,ip:127.0.0.1"

    def export(ref: str) -> None:
        store, alias = ref.split("/")
        kt("-exportcert", "-alias", alias, "-keystore", store, *sp, "-file", KEYTOOL_EXPORTS[ref])

    def ca() -> None:
        kt("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1",
           "-dname", "CN=Keytool Test CA, O=mtls tests", "-ext", "bc:c", "-validity", "3650",
           "-storetype", "PKCS12", "-keystore", "ca.p12", *sp)  # fmt: skip
        kt("-exportcert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", *sp, "-file", "ca.pem")

    def rsa_jks() -> None:
        kt("-genkeypair", "-alias", "rsa-key", "-keyalg", "RSA", "-keysize", "2048",
           "-dname", "CN=localhost, OU=RSA", "-ext", san, "-storetype", "JKS",
           "-keystore", "rsa.jks", *sp, "-keypass", KEYPASS)  # fmt: skip
        export("rsa.jks/rsa-key")

    def ec_jceks() -> None:
        kt("-genkeypair", "-alias", "ec-key", "-keyalg", "EC", "-groupname", "secp256r1",
           "-dname", "CN=localhost, OU=EC", "-ext", san, "-storetype", "JCEKS",
           "-keystore", "ec.jceks", *sp, "-keypass", KEYPASS)  # fmt: skip
        export("ec.jceks/ec-key")

    def leaf_request() -> None:
        kt("-genkeypair", "-alias", "leaf", "-keyalg", "EC", "-groupname", "secp256r1",
           "-dname", "CN=localhost, OU=chained", "-storetype", "JKS", "-keystore", "chain.jks",
           *sp, "-keypass", KEYPASS)  # fmt: skip
        kt("-certreq", "-alias", "leaf", "-keystore", "chain.jks", *sp, "-keypass", KEYPASS,
           "-file", "leaf.csr")  # fmt: skip

    def ec_p12() -> None:
        kt("-genkeypair", "-alias", "ec-key", "-keyalg", "EC", "-groupname", "secp384r1",
           "-dname", "CN=p12 ec", "-storetype", "PKCS12", "-keystore", "mixed.p12", *sp)  # fmt: skip

    def chain() -> None:
        # Sign the request with the CA, import the CA, then the reply: a chain of 2.
        kt("-gencert", "-alias", "ca", "-keystore", "ca.p12", *sp, "-infile", "leaf.csr",
           "-outfile", "leaf.pem", "-rfc", "-ext", san, "-validity", "365")  # fmt: skip
        kt("-importcert", "-alias", "ca", "-keystore", "chain.jks", *sp, "-file", "ca.pem")
        kt("-importcert", "-alias", "leaf", "-keystore", "chain.jks", *sp, "-keypass", KEYPASS,
           "-file", "leaf.pem")  # fmt: skip

    def mixed_p12() -> None:
        for src, alias in (("chain.jks", "leaf"), ("rsa.jks", "rsa-key")):
            kt("-importkeystore", "-srckeystore", src, "-srcstorepass", STOREPASS,
               "-srckeypass", KEYPASS, "-srcalias", alias, "-destkeystore", "mixed.p12",
               "-deststoretype", "PKCS12", "-deststorepass", STOREPASS)  # fmt: skip
        kt("-importcert", "-alias", "ca", "-keystore", "mixed.p12", *sp, "-file", "ca.pem")
        export("mixed.p12/leaf")

    def trust_p12() -> None:
        for alias, cert in (("ca", "ca.pem"), ("rsa-peer", "rsa-key.der")):
            kt("-importcert", "-alias", alias, "-file", cert, "-storetype", "PKCS12",
               "-keystore", "trust.p12", *sp)  # fmt: skip

    # Independent lanes run side by side; each lane is a sequence of JVM starts.
    with ThreadPoolExecutor(max_workers=3) as pool:
        for stage in (
            [ca, rsa_jks, ec_jceks, leaf_request, ec_p12],
            [chain, trust_p12],  # need the CA and the RSA entry's certificate
            [mixed_p12],  # needs the chained entry
        ):
            for future in [pool.submit(step) for step in stage]:
                future.result()
        names = list(KEYTOOL_STORES)
        listings = pool.map(lambda n: keytool_list(jdk, d / n), names)
        return dict(zip(names, listings, strict=True))


def _build_once(jdk: JDK, root: Path, *, wait: bool) -> bool:
    """Build the stores of ``jdk`` under ``root`` unless done; False if busy and not ``wait``."""
    manifest = root / "manifest.json"
    with _locked(root.with_suffix(".lock"), wait=wait) as got:
        if not got:
            return False
        if not manifest.is_file():
            if root.exists():
                shutil.rmtree(root)  # a build that failed half-way
            root.mkdir(parents=True)
            listing = _build_keytool_stores(jdk, root)
            data = {s: {a: vars(e) for a, e in entries.items()} for s, entries in listing.items()}
            manifest.write_text(json.dumps(data))
    return True


def _jdks_wanted(session: pytest.Session) -> list[JDK]:
    """The keytools that some collected test of this session is parametrized with."""
    wanted: list[JDK] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        jdk = callspec.params.get("jdk_keytool") if callspec is not None else None
        if isinstance(jdk, JDK) and jdk not in wanted:
            wanted.append(jdk)
    return wanted


def open_keytool_stores(
    jdk_keytool: JDK, tmp_path_factory: pytest.TempPathFactory, session: pytest.Session
) -> KeytoolStores:
    """The stores ``jdk_keytool`` writes, built once per run and shared by the xdist workers."""
    shared = _shared_root(tmp_path_factory)
    # While another worker builds this JDK's stores, build another wanted JDK's stores
    # instead of waiting for the lock.
    others = [j for j in _jdks_wanted(session) if j != jdk_keytool]
    for other in [jdk_keytool, *others]:
        _build_once(other, shared / f"keytool-{other.name}", wait=False)
    root = shared / f"keytool-{jdk_keytool.name}"
    _build_once(jdk_keytool, root, wait=True)
    data = json.loads((root / "manifest.json").read_text())
    listing = {s: {a: ListedEntry(**e) for a, e in entries.items()} for s, entries in data.items()}
    return KeytoolStores(jdk_keytool, root, listing, dict(KEYTOOL_EXPORTS))
