"""The HTTP client integrations' backends: one fixture for httpx, requests and aiohttp.

Three mutual-TLS backends (see tests/integrations/_backend.py), started once per test
module, and the profile set that routes to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mtls import SSLProfileSet
from tests.integrations._backend import Backends, identities, running_backends


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """Backends ``a``, ``b``, ``c``, each accepting only its own CA's client certificates."""
    with running_backends(identities(tmp_path_factory)) as running:
        yield running


@pytest.fixture
def profiles(tmp_path: Path, backends: Backends) -> Iterator[SSLProfileSet]:
    """The profile set whose profiles send each backend the identity it accepts."""
    with SSLProfileSet.from_xml(backends.write_profiles(tmp_path / "sslprofiles.xml")) as ps:
        yield ps
