"""Fixtures of the interop tests only."""

from __future__ import annotations

from pathlib import Path

import pytest

CACERTS_CANDIDATES = (
    "/usr/lib/jvm/java-17-openjdk-amd64/lib/security/cacerts",
    "/etc/ssl/certs/java/cacerts",
)


@pytest.fixture(scope="session")
def cacerts_path() -> Path:
    """The JDK's own cacerts (JKS, password changeit)."""
    for candidate in CACERTS_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("no JDK cacerts file on this machine")
