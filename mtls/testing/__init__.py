"""Test tools for mutual TLS: a certificate authority, a test server, rotation helpers.

* :class:`CA` issues certificates (and Java keystores) for any name, IP or email,
  passing OpenSSL's strict X.509 checks.
* :class:`MTLSServer` serves HTTPS on a thread, demands client certificates, and
  reports who connected and every refused handshake with its reason.
* :func:`replace_atomically`, :func:`swap_symlinked_dir` and
  :func:`write_in_two_halves` change files the three ways certificates are
  rotated in production, for tests of reload handling.
* The pytest plugin (:mod:`mtls.testing.pytest_plugin`, registered automatically)
  provides the ``mtls_ca``, ``mtls_server``, ``mtls_client_identity`` and
  ``mtls_profiles_file`` fixtures.

See docs/testing.md.
"""

from ._ca import CA, IssuedIdentity
from ._profiles import write_profiles_file
from ._rotation import replace_atomically, swap_symlinked_dir, write_in_two_halves
from ._server import HandshakeRecord, MTLSServer

__all__ = [
    "CA",
    "HandshakeRecord",
    "IssuedIdentity",
    "MTLSServer",
    "replace_atomically",
    "swap_symlinked_dir",
    "write_in_two_halves",
    "write_profiles_file",
]
