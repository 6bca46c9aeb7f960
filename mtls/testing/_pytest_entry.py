"""The ``pytest11`` entry point: the fixtures of :mod:`mtls.testing.pytest_plugin`,
under a module of their own.

A conftest that also lists ``pytest_plugins = ["mtls.testing.pytest_plugin"]`` (as a
suite measuring the coverage of mtls itself does) then registers two plugins with the
same fixtures, the later one used, where one module registered under two names made
pytest stop with "Plugin already registered under a different name".
"""

from __future__ import annotations

from .pytest_plugin import (
    mtls_ca,
    mtls_client_context,
    mtls_client_identity,
    mtls_profiles_file,
    mtls_server,
    mtls_server_identity,
)

__all__ = [
    "mtls_ca",
    "mtls_client_context",
    "mtls_client_identity",
    "mtls_profiles_file",
    "mtls_server",
    "mtls_server_identity",
]
