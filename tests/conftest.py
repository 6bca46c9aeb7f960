"""Fixtures shared by more than one test directory: keytool, openssl, WSO2's files, a test PKI.

What each one is built from lives beside it: the keytool helpers and the stores keytool
writes once per run in tests/_keytool.py, the PKI in tests/_pki.py, small shared helpers in
tests/_helpers.py. A fixture used by one directory only is in that directory's conftest.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests._keytool import (  # noqa: F401  (also importable from here, as before the split)
    JDK,
    KEYPASS,
    KEYTOOL_EXPORTS,
    KEYTOOL_STORES,
    KEYTOOLS,
    STOREPASS,
    KeytoolStores,
    ListedEntry,
    keytool_list,
    open_keytool_stores,
    parse_keytool_list,
    run_keytool,
)
from tests._pki import PKI, Identity, issue, make_pki  # noqa: F401
from tests.stores._jceks import build_jceks  # noqa: F401

# Registered here rather than through its pytest11 entry point (disabled in pyproject's
# addopts with -p no:mtls), so that coverage measures the package from its first import.
pytest_plugins = ["mtls.testing.pytest_plugin"]

# MTLS_WSO2_FIXTURES: the folder, when the checkout is not beside ../shared (a worktree).
WSO2_FIXTURES = Path(
    os.environ.get("MTLS_WSO2_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "wso2"
)
OPENSSL = shutil.which("openssl")


_KEYTOOL_PARAMS: list[JDK | None] = [*KEYTOOLS] or [None]


@pytest.fixture(scope="session", params=_KEYTOOL_PARAMS, ids=lambda j: j.name if j else "nojdk")
def jdk_keytool(request: pytest.FixtureRequest) -> JDK:
    """Each keytool present (JDK 17 on PATH, JDK 25 when installed)."""
    if request.param is None:
        pytest.skip("keytool not found: install openjdk-17-jdk-headless (.ci/run does)")
    jdk: JDK = request.param
    return jdk


@pytest.fixture(scope="session")
def any_keytool() -> JDK:
    """One keytool, for tests that need a JDK but not each of them."""
    if not KEYTOOLS:
        pytest.skip("keytool not found: install openjdk-17-jdk-headless (.ci/run does)")
    return KEYTOOLS[0]


@pytest.fixture(scope="session")
def keytool_stores(
    jdk_keytool: JDK, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> KeytoolStores:
    """Stores written by each keytool, built once per run and shared by xdist workers."""
    return open_keytool_stores(jdk_keytool, tmp_path_factory, request.session)


@pytest.fixture(scope="session")
def openssl_bin() -> str:
    """The openssl command line (an independent oracle: its stores and servers are not ours)."""
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed")
    return OPENSSL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads the WSO2 fixtures is marked ``fixtures`` (so that
    ``pytest -m fixtures`` runs all of them), whether or not it says so itself."""
    for item in items:
        if "wso2_fixtures" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fixtures)


@pytest.fixture(scope="session")
def wso2_fixtures() -> Path:
    """The real WSO2 files in ../shared/fixtures/wso2 (read in place, never copied)."""
    if not (WSO2_FIXTURES / "README.md").is_file():
        pytest.skip(f"{WSO2_FIXTURES} is not present (MTLS_WSO2_FIXTURES)")
    return WSO2_FIXTURES


@pytest.fixture(scope="session")
def pki() -> PKI:
    """Two unrelated CAs and the identities the store, context and handshake tests need."""
    return make_pki()
