"""Fixtures the revocation tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.revocation._infra import CRLServer


@pytest.fixture
def web() -> Iterator[CRLServer]:
    """A loopback HTTP server answering CRLs (GET) and OCSP (POST) with fixed bodies."""
    server = CRLServer()
    try:
        yield server
    finally:
        server.close()
