"""pytest fixtures for mutual TLS, registered through the ``pytest11`` entry point.

Installed with mtls, so any test can ask for them by name:

================================  ========  ==============================================
fixture                           scope     what
================================  ========  ==============================================
``mtls_ca``                       session   a :class:`~mtls.testing.CA`
``mtls_client_identity``          session   ``mtls_ca.issue_cert("client")``
``mtls_server_identity``          session   ``mtls_ca.issue_cert("localhost", "127.0.0.1",
                                            "::1")``
``mtls_server``                   function  a running :class:`~mtls.testing.MTLSServer` with
                                            the server identity, requiring client
                                            certificates from ``mtls_ca``
``mtls_client_context``           function  ``mtls.client_context`` with the client identity,
                                            trusting ``mtls_ca``
``mtls_profiles_file``            function  a factory: writes a WSO2 profile file and its
                                            stores into ``tmp_path``, returns its path
================================  ========  ==============================================

Under pytest-xdist each worker has its own session, hence its own ``mtls_ca``.

pytest imports entry-point plugins, and with them the ``mtls`` package, before
pytest-cov starts measuring. That only matters to a suite measuring the coverage
of mtls itself (mtls's own): it runs with ``-p no:mtls`` and loads this module
from its conftest (``pytest_plugins = ["mtls.testing.pytest_plugin"]``) instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# pytest imports this module in every session of every project where mtls is
# installed: what the fixtures need is imported when a test first asks for one.
if TYPE_CHECKING:
    import ssl

    from .._secret import Secret
    from ._ca import CA, IssuedIdentity
    from ._server import MTLSServer


class _Default:
    """The type of :data:`_DEFAULT`: an argument left out (``None`` means "none")."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT = _Default()

# The identities the session-scoped fixtures issued, and the CA each came from. pytest
# makes a session-scoped fixture once, from the ``mtls_ca`` of the first test that asks:
# where a conftest.py below the root overrides ``mtls_ca``, the tests under it got the
# session's identities from another CA, and failed with "unknown ca" (h234).
_ISSUED: dict[int, tuple[IssuedIdentity, CA]] = {}


def _issued(identity: IssuedIdentity, ca: CA) -> IssuedIdentity:
    _ISSUED[id(identity)] = (identity, ca)
    return identity


def _check_issued(identity: IssuedIdentity, ca: CA, fixture: str) -> None:
    """Fail the test, saying why, when ``identity`` is the one the ``fixture`` fixture
    issued from another CA than this test's ``mtls_ca``."""
    made = _ISSUED.get(id(identity))
    if made is None or made[0] is not identity or made[1] is ca:
        return  # not ours (a conftest's own identity is used as given), or the same CA
    pytest.fail(
        f"{fixture} was issued by {made[1].name!r}, not by this test's mtls_ca "
        f"({ca.name!r}): pytest makes a session-scoped fixture once, from the mtls_ca "
        "of the first test that asks for it, and a conftest.py below the root "
        "overrides mtls_ca. Override mtls_ca in the root conftest.py, or override "
        "mtls_client_identity and mtls_server_identity in the same conftest.py",
        pytrace=False,
    )


class ProfilesFileFactory:
    """What the ``mtls_profiles_file`` fixture returns: call it to write a profile file."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        ca: CA,
        client_identity: IssuedIdentity,
    ) -> None:
        self._request = request
        self._tmp_path = tmp_path
        self._ca = ca
        self._client_identity = client_identity
        self._count = itertools.count(1)

    def __call__(
        self,
        server: MTLSServer | str | Sequence[str] | None = None,
        *,
        servers: str | Sequence[str] | None = None,
        identity: IssuedIdentity | _Default | None = _DEFAULT,
        ca: CA | None = None,
        password: str | Secret = "wso2carbon",  # noqa: S107 - WSO2's shipped default
        store_type: str = "JKS",
    ) -> Path:
        """Write ``sslprofiles.xml`` with a JKS keystore and truststore for one server.

        Each call writes into a new directory under ``tmp_path``
        (``mtls-profiles``, then ``mtls-profiles-2``, ...).

        Args:
            server: the server the profile is for; defaults to the ``mtls_server``
                fixture (started on first use). Its ``<servers>`` entry lists
                ``localhost:PORT`` and ``HOST:PORT``. ``"host:port"`` entries (a
                string or a list) are taken as ``servers``.
            servers: the ``<servers>`` entries instead of a server's.
            identity: the client identity in the keystore; defaults to
                ``mtls_client_identity``; ``None`` writes no ``<KeyStore>`` (a
                profile that presents no client certificate).
            ca: the CA in the truststore; defaults to the root of the CA that issued
                ``server``'s certificate, else ``mtls_ca``.
            password: store and key password.
            store_type: ``"JKS"`` or ``"PKCS12"`` (either case).

        Returns:
            The absolute path of the XML file.
        """
        from ._ca import IssuedIdentity  # noqa: PLC0415 - see the imports above
        from ._profiles import write_profiles_file  # noqa: PLC0415
        from ._server import MTLSServer  # noqa: PLC0415

        n = next(self._count)
        directory = self._tmp_path / ("mtls-profiles" if n == 1 else f"mtls-profiles-{n}")
        target: MTLSServer | str | Sequence[str]
        if server is not None and not isinstance(server, MTLSServer):
            if servers is not None:
                raise TypeError("give the <servers> entries once: first argument or servers=")
            servers, server = server, None
        if servers is not None:
            target = servers
        else:
            if server is None:
                server = self._request.getfixturevalue("mtls_server")
                if not isinstance(server, MTLSServer):
                    raise TypeError(
                        f"the mtls_server fixture gives a {type(server).__name__}, not an "
                        "MTLSServer (a conftest overrides it): pass the server, or "
                        "servers='host:port'"
                    )
            target = server
        if ca is None:
            served = server.identity if server is not None else None
            ca = served.ca.root if isinstance(served, IssuedIdentity) else self._ca
        if isinstance(identity, _Default):  # only when it is used (h236)
            _check_issued(self._client_identity, self._ca, "mtls_client_identity")
        return write_profiles_file(
            directory,
            target,
            identity=self._client_identity if isinstance(identity, _Default) else identity,
            ca=ca,
            password=password,
            store_type=store_type,
        )


@pytest.fixture(scope="session")
def mtls_ca() -> CA:
    """A test certificate authority shared by the session (EC P-256)."""
    from ._ca import CA  # noqa: PLC0415 - see the imports above

    return CA(name="mtls pytest CA")


@pytest.fixture(scope="session")
def mtls_client_identity(mtls_ca: CA) -> IssuedIdentity:
    """A client identity issued by ``mtls_ca``: CN and DNS SAN ``client``."""
    return _issued(mtls_ca.issue_cert("client"), mtls_ca)


@pytest.fixture(scope="session")
def mtls_server_identity(mtls_ca: CA) -> IssuedIdentity:
    """A server identity issued by ``mtls_ca`` for localhost, 127.0.0.1 and ::1."""
    return _issued(mtls_ca.issue_cert("localhost", "127.0.0.1", "::1"), mtls_ca)


@pytest.fixture
def mtls_server(mtls_server_identity: IssuedIdentity, mtls_ca: CA) -> Iterator[MTLSServer]:
    """A running :class:`~mtls.testing.MTLSServer` on 127.0.0.1, requiring client
    certificates issued by ``mtls_ca``; closed after the test."""
    from ._server import MTLSServer  # noqa: PLC0415 - see the imports above

    _check_issued(mtls_server_identity, mtls_ca, "mtls_server_identity")
    with MTLSServer(mtls_server_identity, client_ca=mtls_ca) as server:
        yield server


@pytest.fixture
def mtls_client_context(mtls_client_identity: IssuedIdentity, mtls_ca: CA) -> ssl.SSLContext:
    """A new client context presenting ``mtls_client_identity`` and trusting ``mtls_ca``."""
    from .._context import client_context  # noqa: PLC0415 - see the imports above

    _check_issued(mtls_client_identity, mtls_ca, "mtls_client_identity")
    return client_context(mtls_client_identity.keystore(), mtls_ca.truststore())


@pytest.fixture
def mtls_profiles_file(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mtls_ca: CA,
    mtls_client_identity: IssuedIdentity,
) -> ProfilesFileFactory:
    """A factory writing a WSO2 custom SSL profiles file and its stores into ``tmp_path``.

    Example::

        def test_profile(mtls_server, mtls_profiles_file):
            profiles = mtls.SSLProfileSet.from_xml(mtls_profiles_file(mtls_server))
    """
    return ProfilesFileFactory(request, tmp_path, mtls_ca, mtls_client_identity)
