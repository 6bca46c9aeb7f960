"""Test tools for mutual TLS: a certificate authority, a test server, rotation helpers.

* :class:`CA` issues certificates (and Java keystores) for any name, IP or email,
  passing OpenSSL's strict X.509 checks.
* :class:`MTLSServer` serves HTTPS on a thread, demands client certificates, and
  reports who connected and every refused handshake with its reason.
* :class:`RevocationServer` serves a CA's CRL and OCSP answers over loopback HTTP,
  current with every :meth:`CA.revoke`, for tests of online revocation checks.
* :func:`replace_atomically`, :func:`swap_symlinked_dir` and
  :func:`write_in_two_halves` change files the three ways certificates are
  rotated in production, for tests of reload handling.
* The pytest plugin (:mod:`mtls.testing.pytest_plugin`, registered automatically)
  provides the ``mtls_ca``, ``mtls_server``, ``mtls_client_identity`` and
  ``mtls_profiles_file`` fixtures.

See docs/testing.md.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:  # what __getattr__ below loads, spelled out for type checkers
    from ._ca import CA, IssuedIdentity
    from ._profiles import write_profiles_file
    from ._responder import RevocationServer
    from ._rotation import replace_atomically, swap_symlinked_dir, write_in_two_halves
    from ._server import HandshakeRecord, MTLSServer

__all__ = [
    "CA",
    "HandshakeRecord",
    "IssuedIdentity",
    "MTLSServer",
    "RevocationServer",
    "replace_atomically",
    "swap_symlinked_dir",
    "write_in_two_halves",
    "write_profiles_file",
]

# Loaded on first use, as mtls's own names: pytest imports the plugin (a submodule,
# hence this package) in every session of every project where mtls is installed,
# and most never ask for a fixture.
_LAZY = {
    "CA": "._ca",
    "IssuedIdentity": "._ca",
    "write_profiles_file": "._profiles",
    "replace_atomically": "._rotation",
    "swap_symlinked_dir": "._rotation",
    "write_in_two_halves": "._rotation",
    "HandshakeRecord": "._server",
    "MTLSServer": "._server",
    "RevocationServer": "._responder",
}

if not typing.TYPE_CHECKING:  # hidden from type checkers: a misspelt name is an error

    def __getattr__(name: str) -> typing.Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, __name__)
        globals()[name] = value = getattr(loaded, name)
        return value


def __dir__() -> list[str]:
    # Not the imports this module needs for itself (they are no API of the package).
    return sorted((set(globals()) | set(__all__)) - {"annotations", "importlib", "typing"})
